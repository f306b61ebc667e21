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
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from model.artifact import Artifact
from model.cache import EmbeddingCache
from model.chateval import ChatSet, evaluate_chat
from model.classifier import SentimentClassifier, sigmoid
from model.data import Dataset, digest_all
from model.encoder import Encoder
from model.metrics import choose_band, evaluate_probabilities, expected_calibration_error

CALIBRATIONS = ("temperature", "none")
DEFAULT_C_GRID = (1e-4, 3e-4, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
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
    encoder: Encoder,
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
) -> tuple[NDArray[np.float64], float, float, list[dict[str, float]]]:
    """Standardise + LogisticRegression for each C; keep the best on dev (ties: smaller C).

    Returns weights and intercept on the raw embedding (the scaler folded in), the chosen C,
    and the search table.
    """

    def fit(c: float) -> Any:
        pipe = make_pipeline(
            StandardScaler(),
            LogisticRegression(C=c, max_iter=options.max_iter, random_state=options.random_state),
        )
        return pipe.fit(x_train, y_train)

    if not options.c_grid:
        raise ValueError("the C grid is empty")
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
    if options.calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}")
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
        x_train, train.labels, x_dev, dev.labels, options, log
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
        "C": chosen_c,
        "c_search": search,
        "random_state": options.random_state,
        "calibration": options.calibration,
        "temperature": temperature,
        "band_precision_target": options.band_precision,
        "max_iter": options.max_iter,
    }
    if options.finetune is not None:
        training["finetune"] = options.finetune
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
