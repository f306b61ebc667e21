"""Training: embed (cached), fit logistic regression with C chosen on dev, calibrate its
probabilities on dev (temperature scaling), choose the neutral band on dev, evaluate on test,
build the artifact.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from numpy.typing import NDArray
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from model.serving.artifact import Artifact, softmax
from model.serving.classifier import SentimentClassifier, sigmoid
from model.serving.encoder import Encoder
from model.serving.spec import TextEncoder
from model.training.cache import EmbeddingCache
from model.training.chateval import ChatSet, evaluate_chat
from model.training.data import CORRECTIONS, THREE_WAY, Dataset, digest_all, row_weights
from model.training.metrics import (
    choose_band,
    choose_thresholds,
    evaluate_probabilities,
    evaluate_three_way_binary,
    expected_calibration_error,
    three_way_report,
)

CALIBRATIONS = ("temperature", "none")
DEFAULT_C_GRID = (1e-4, 3e-4, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
# The three-way model on a fine-tuned encoder wants strong regularisation: its best C on dev lay
# at the bottom of the binary grid, so the three-way grid reaches lower.
THREE_WAY_C_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 0.001, 0.003, 0.01, 0.1, 1.0)
Log = Callable[[str], None]


@dataclass(frozen=True)
class TrainOptions:
    c_grid: tuple[float, ...] = DEFAULT_C_GRID
    random_state: int = 0
    band_precision: float = 0.9
    calibration: str = "temperature"
    max_iter: int = 3000
    n_jobs: int = -1
    train_on: str = "sentences"
    finetune: dict[str, Any] | None = None  # how the encoder was fine-tuned, if it was
    chat_share: float | None = None  # three-way: share of the training weight on chat rows
    chat_mapping: dict[str, str] | None = None  # three-way: how GoEmotions was mapped to moods
    balance_classes: bool = False  # three-way: each mood an equal share of its source's weight
    # Each training row from the bot's corrections (origin "corrections") weighs this much.
    corrections_weight: float = 1.0

    def __post_init__(self) -> None:
        # checked once, here: every function that takes the options can rely on them
        if not self.c_grid:
            raise ValueError("the C grid is empty")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}")


@dataclass
class TrainResult:
    artifact: Artifact
    report: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("sentiment-bot", "torch", "transformers", "scikit-learn", "numpy", "joblib"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "unknown"
    return versions


def embed(
    encoder: TextEncoder,
    data: Dataset,
    cache: EmbeddingCache | None,
    *,
    progress: bool,
    desc: str,
) -> NDArray[np.float32]:
    """Embeddings for a data set, through the cache when there is one."""

    def compute(texts: list[str]) -> NDArray[np.float32]:
        return encoder.encode(texts, progress=progress, desc=desc)

    return cache.get(data.texts, compute) if cache is not None else compute(data.texts)


def fit_logistic(
    x_train: NDArray[np.float32],
    y_train: NDArray[np.int64],
    x_dev: NDArray[np.float32],
    y_dev: NDArray[np.int64],
    options: TrainOptions,
    log: Log = print,
    sample_weight: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], float, float, list[dict[str, float]]]:
    """Standardise + LogisticRegression for each C; keep the best on dev (ties: smaller C).

    Returns weights and intercept on the raw embedding (the scaler folded in), the chosen C,
    and the search table. ``sample_weight``: per-row loss weights (None: all 1).
    """

    def fit(c: float) -> Any:
        pipe = make_pipeline(
            StandardScaler(),
            LogisticRegression(C=c, max_iter=options.max_iter, random_state=options.random_state),
        )
        if sample_weight is None:
            return pipe.fit(x_train, y_train)
        return pipe.fit(x_train, y_train, logisticregression__sample_weight=sample_weight)

    # One fit per C, in parallel threads (the heavy parts release the GIL); each fit is
    # deterministic, so the result does not depend on the scheduling.
    pipes = Parallel(n_jobs=options.n_jobs, prefer="threads")(
        delayed(fit)(c) for c in options.c_grid
    )
    search: list[dict[str, float]] = []
    best: tuple[float, float, Any] | None = None
    for c, pipe in zip(options.c_grid, pipes, strict=True):
        dev_acc = float((pipe.predict(x_dev) == y_dev).mean())
        search.append({"C": c, "dev_accuracy": dev_acc})
        log(f"  C={c:<7g} dev accuracy {dev_acc:.2%}")
        if best is None or dev_acc > best[1]:  # ties keep the smaller C
            best = (c, dev_acc, pipe)
    assert best is not None
    chosen_c, _, pipe = best
    scaler, lr = pipe[0], pipe[-1]
    coef = np.asarray(lr.coef_[0] / scaler.scale_, dtype=np.float64)
    intercept = float(lr.intercept_[0] - np.dot(coef, scaler.mean_))
    return coef, intercept, chosen_c, search


def _fit_record(
    options: TrainOptions, chosen_c: float, search: list[dict[str, float]], temperature: float
) -> dict[str, Any]:
    """How the logistic regression was fitted, for the artifact's training record."""
    record: dict[str, Any] = {
        "C": chosen_c,
        "c_search": search,
        "random_state": options.random_state,
        "calibration": options.calibration,
        "temperature": temperature,
        "band_precision_target": options.band_precision,
        "max_iter": options.max_iter,
    }
    if options.finetune is not None:
        record["finetune"] = options.finetune
    return record


def fit_temperature(y: NDArray[np.int64], z: NDArray[np.float64]) -> float:
    """Temperature scaling (Guo et al., 2017): the T > 0 for which sigmoid(z / T) has the least
    log-loss on held-out labels ``y``. One number, so it fixes over- or under-confidence without
    moving any decision: p >= 0.5 exactly where z >= 0, whatever T is."""
    sign = np.where(np.asarray(y) == 1, 1.0, -1.0)
    z = np.asarray(z, dtype=np.float64)

    def log_loss(log_t: float) -> float:
        return float(np.logaddexp(0.0, -sign * z / np.exp(log_t)).mean())

    # T from 1/50 to 50: far wider than any logistic regression needs
    found = minimize_scalar(log_loss, bounds=(-np.log(50.0), np.log(50.0)), method="bounded")
    return float(np.exp(found.x))


def train_classifier(
    encoder: Encoder,
    train: Dataset,
    dev: Dataset,
    test: Dataset,
    *,
    options: TrainOptions | None = None,
    cache: EmbeddingCache | None = None,
    chat: ChatSet | None = None,
    progress: bool = True,
    log: Log = print,
) -> TrainResult:
    """Embed, fit, calibrate on dev, choose the band, evaluate on test (and on the chat set
    when given)."""
    options = options or TrainOptions()
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def timed(name: str, data: Dataset) -> NDArray[np.float32]:
        t0 = time.perf_counter()
        before = cache.stats.computed if cache is not None else 0
        x = embed(encoder, data, cache, progress=progress, desc=f"Embedding {name}")
        timings[f"embed_{name}_s"] = time.perf_counter() - t0
        computed = (cache.stats.computed - before) if cache is not None else len(data)
        log(
            f"embedded {name}: {len(data)} rows in {timings[f'embed_{name}_s']:.1f} s "
            f"({len(data) - computed} from cache, {computed} encoded)"
        )
        return x

    x_train, x_dev, x_test = timed("train", train), timed("dev", dev), timed("test", test)

    log(f"fitting logistic regression on {len(train)} rows, C chosen on dev:")
    t0 = time.perf_counter()
    coef, intercept, chosen_c, search = fit_logistic(
        x_train, train.labels, x_dev, dev.labels, options, log, corrections_weights(train, options)
    )
    timings["fit_s"] = time.perf_counter() - t0

    temperature = 1.0
    if options.calibration == "temperature":
        z_dev = x_dev.astype(np.float64) @ coef + intercept
        temperature = fit_temperature(dev.labels, z_dev)
        # folded into the weights: the artifact stays "embedding, then logistic regression"
        coef, intercept = coef / temperature, intercept / temperature
        before, _ = expected_calibration_error(dev.labels, sigmoid(z_dev))
        after, _ = expected_calibration_error(dev.labels, sigmoid(z_dev / temperature))
        log(
            f"calibrated on dev: temperature {temperature:.3f}, dev ECE {before:.4f} -> "
            f"{after:.4f} (no prediction changes side)"
        )

    t0 = time.perf_counter()
    p_dev = sigmoid(x_dev.astype(np.float64) @ coef + intercept)
    p_test = sigmoid(x_test.astype(np.float64) @ coef + intercept)
    band = choose_band(dev.labels, p_dev, options.band_precision)
    dev_report = evaluate_probabilities(dev.labels, p_dev, band)
    test_report = evaluate_probabilities(test.labels, p_test, band)
    timings["evaluate_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    training = {
        "train_on": options.train_on,
        "train_sources": [Path(s).name for s in train.source.split(" + ")],
        "train_rows": len(train),
        "dev_rows": len(dev),
        "test_rows": len(test),
        "skipped_rows": train.skipped + dev.skipped + test.skipped,
        "data_digest": digest_all([train, dev]),
        "test_digest": test.digest(),
        **_fit_record(options, chosen_c, search, temperature),
    }
    artifact = Artifact(
        encoder=encoder.spec,
        coef=coef,
        intercept=intercept,
        band=band,
        metrics={"dev": dev_report, "test": test_report},
        training=training,
        versions=library_versions(),
        encoder_fingerprint=encoder.fingerprint,
    )
    if chat is not None:
        t0 = time.perf_counter()
        chat_metrics = evaluate_chat(SentimentClassifier(artifact, encoder), chat)
        timings["chat_s"] = time.perf_counter() - t0
        artifact.metrics["chat"] = chat_metrics
    report = {
        "model_version": artifact.version,
        "encoder": artifact.to_payload()["encoder"],
        "training": training,
        "dev": dev_report,
        "test": test_report,
        **({"chat": artifact.metrics["chat"]} if chat is not None else {}),
        "timings": timings,
    }
    return TrainResult(artifact, report, timings)


def corrections_weights(train: Dataset, options: TrainOptions) -> NDArray[np.float64] | None:
    """Loss weights for a binary fit: None (all 1) unless the rows include corrections, which
    then weigh ``options.corrections_weight`` each."""
    if train.origin is None or CORRECTIONS not in train.origin:
        return None
    return row_weights(train, None, fixed={CORRECTIONS: options.corrections_weight})


def fit_temperature_softmax(y: NDArray[np.int64], z: NDArray[np.float64]) -> float:
    """Temperature scaling for a softmax: the T > 0 for which softmax(z / T) has the least
    log-loss on held-out labels ``y``. The most probable mood of every row stays the same."""
    z = np.asarray(z, dtype=np.float64)
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        scaled = z / np.exp(log_t)
        return float((logsumexp(scaled, axis=1) - scaled[rows, y]).mean())

    found = minimize_scalar(nll, bounds=(-np.log(50.0), np.log(50.0)), method="bounded")
    return float(np.exp(found.x))


def fit_three_way(
    x_train: NDArray[np.float32],
    train: Dataset,
    weights: NDArray[np.float64],
    score: Callable[[NDArray[np.float64], NDArray[np.float64]], float],
    options: TrainOptions,
    log: Log = print,
) -> tuple[NDArray[np.float64], NDArray[np.float64], float, list[dict[str, float]]]:
    """Standardise + multinomial LogisticRegression (weighted rows) for each C; keep the one
    whose ``score(coef, intercept)`` on dev is best (ties: smaller C). Returns the K x D weights
    and K intercepts on the raw embedding (the scaler folded in), the chosen C, the search."""

    def fit(c: float) -> Any:
        pipe = make_pipeline(
            StandardScaler(),
            LogisticRegression(C=c, max_iter=options.max_iter, random_state=options.random_state),
        )
        return pipe.fit(x_train, train.labels, logisticregression__sample_weight=weights)

    pipes = Parallel(n_jobs=options.n_jobs, prefer="threads")(
        delayed(fit)(c) for c in options.c_grid
    )
    search: list[dict[str, float]] = []
    best: tuple[float, float, NDArray[np.float64], NDArray[np.float64]] | None = None
    for c, pipe in zip(options.c_grid, pipes, strict=True):
        scaler, lr = pipe[0], pipe[-1]
        coef = np.asarray(lr.coef_ / scaler.scale_, dtype=np.float64)
        intercept = np.asarray(lr.intercept_ - coef @ scaler.mean_, dtype=np.float64)
        value = score(coef, intercept)
        search.append({"C": c, "dev_score": value})
        log(f"  C={c:<7g} dev score {value:.2%}")
        if best is None or value > best[1]:
            best = (c, value, coef, intercept)
    assert best is not None
    return best[2], best[3], best[0], search


def train_three_way(
    encoder: Encoder,
    train: Dataset,
    sst_dev: Dataset,
    chat_dev: Dataset,
    sst_test: Dataset,
    *,
    options: TrainOptions | None = None,
    cache: EmbeddingCache | None = None,
    chat: ChatSet | None = None,
    chat_counts: dict[str, dict[str, int]] | None = None,
    progress: bool = True,
    log: Log = print,
) -> TrainResult:
    """The three-way chat model: embed, fit a multinomial logistic regression on SST-2 rows
    (positive and negative) and chat rows (all three moods), each part given its share of the
    weight, with C chosen on dev (the mean of SST-2 dev accuracy, chat dev accuracy and chat
    dev macro recall); calibrate on chat dev (one temperature); choose per class on chat dev the
    confidence below which the bot stays silent; evaluate on SST-2 test (positive against
    negative) and on the chat set."""
    options = options or TrainOptions()
    if options.chat_share is None:
        raise ValueError("a three-way model needs chat_share")
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def timed(name: str, data: Dataset) -> NDArray[np.float32]:
        t0 = time.perf_counter()
        x = embed(encoder, data, cache, progress=progress, desc=f"Embedding {name}")
        timings[f"embed_{name}_s"] = time.perf_counter() - t0
        log(f"embedded {name}: {len(data)} rows in {timings[f'embed_{name}_s']:.1f} s")
        return x

    x_train = timed("train", train)
    x_sst_dev, x_chat_dev = timed("dev", sst_dev), timed("chat_dev", chat_dev)
    x_test = timed("test", sst_test)
    weights = row_weights(
        train,
        {"sst2": 1.0 - options.chat_share, "chat": options.chat_share},
        balance_classes=options.balance_classes,
        fixed={CORRECTIONS: options.corrections_weight},
    )
    assert weights is not None
    sst_dev_y = (sst_dev.labels == 2).astype(np.int64)

    def dev_score(coef: NDArray[np.float64], intercept: NDArray[np.float64]) -> float:
        chat_pred = (x_chat_dev.astype(np.float64) @ coef.T + intercept).argmax(axis=1)
        z = x_sst_dev.astype(np.float64) @ coef.T + intercept
        sst_right = ((z[:, 2] >= z[:, 0]).astype(np.int64) == sst_dev_y).mean()
        recalls = [(chat_pred[chat_dev.labels == k] == k).mean() for k in range(3)]
        return float((sst_right + (chat_pred == chat_dev.labels).mean() + np.mean(recalls)) / 3)

    log(
        f"fitting a three-way logistic regression on {len(train)} rows (chat share "
        f"{options.chat_share:g}), C chosen on dev:"
    )
    t0 = time.perf_counter()
    coef, intercept, chosen_c, search = fit_three_way(
        x_train, train, weights, dev_score, options, log
    )
    timings["fit_s"] = time.perf_counter() - t0

    temperature = 1.0
    if options.calibration == "temperature":
        z_dev = x_chat_dev.astype(np.float64) @ coef.T + intercept
        temperature = fit_temperature_softmax(chat_dev.labels, z_dev)
        coef, intercept = coef / temperature, intercept / temperature
        log(f"calibrated on chat dev: temperature {temperature:.3f} (no mood changes)")

    t0 = time.perf_counter()

    def probs(x: NDArray[np.float32]) -> NDArray[np.float64]:
        return softmax(x.astype(np.float64) @ coef.T + intercept)

    p_chat_dev = probs(x_chat_dev)
    band = choose_thresholds(chat_dev.labels, p_chat_dev, options.band_precision)
    chat_dev_report = three_way_report(chat_dev.labels, p_chat_dev, band)

    def binary_report(data: Dataset, x: NDArray[np.float32]) -> dict[str, Any]:
        y = (data.labels == 2).astype(np.int64)
        return evaluate_three_way_binary(y, probs(x), band)

    dev_report, test_report = binary_report(sst_dev, x_sst_dev), binary_report(sst_test, x_test)
    timings["evaluate_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    training = {
        "task": "three-way",
        "train_on": options.train_on,
        "train_sources": [Path(s).name for s in train.source.split(" + ")],
        "train_rows": len(train),
        "train_rows_by_source": {
            name: int(sum(1 for o in (train.origin or ()) if o == name))
            for name in ("sst2", "chat", CORRECTIONS)
            if name != CORRECTIONS or CORRECTIONS in (train.origin or ())
        },
        "train_rows_by_mood": dict(
            zip(THREE_WAY, np.bincount(train.labels, minlength=3).tolist(), strict=True)
        ),
        "chat_share": options.chat_share,
        "balance_classes": options.balance_classes,
        "chat_mapping": options.chat_mapping,
        "chat_groups": chat_counts or {},
        "dev_rows": len(sst_dev),
        "chat_dev_rows": len(chat_dev),
        "test_rows": len(sst_test),
        "skipped_rows": train.skipped + sst_dev.skipped + chat_dev.skipped + sst_test.skipped,
        "data_digest": digest_all([train, sst_dev, chat_dev]),
        "test_digest": sst_test.digest(),
        "selection": "mean of SST-2 dev accuracy, chat dev accuracy and chat dev macro recall",
        "thresholds": {"negative": 1.0 - band[0], "positive": band[1]},
        **_fit_record(options, chosen_c, search, temperature),
    }
    artifact = Artifact(
        encoder=encoder.spec,
        coef=coef,
        intercept=intercept,
        band=band,
        metrics={"dev": dev_report, "chat_dev": chat_dev_report, "test": test_report},
        training=training,
        versions=library_versions(),
        encoder_fingerprint=encoder.fingerprint,
        labels=THREE_WAY,
    )
    if chat is not None:
        t0 = time.perf_counter()
        artifact.metrics["chat"] = evaluate_chat(SentimentClassifier(artifact, encoder), chat)
        timings["chat_s"] = time.perf_counter() - t0
    report = {
        "model_version": artifact.version,
        "encoder": artifact.to_payload()["encoder"],
        "training": training,
        "dev": dev_report,
        "chat_dev": chat_dev_report,
        "test": test_report,
        **({"chat": artifact.metrics["chat"]} if chat is not None else {}),
        "timings": timings,
    }
    return TrainResult(artifact, report, timings)
