"""The classifier artifact: plain arrays and metadata in a joblib file, never a pickled estimator.

A scikit-learn upgrade cannot break it: the logistic regression is stored as its coefficients
and intercept (with the standardisation folded in). Loading validates the schema and says
clearly what is wrong with a corrupt, truncated, foreign or too-new file.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from numpy.typing import NDArray

from model.encoder import POOLINGS, PRECISIONS, EncoderSpec
from model.textnorm import NORMALIZERS

SCHEMA = "sentiment-bot/classifier"
# 1: binary (a weight vector and one intercept); 2: adds three-way artifacts (a K x D matrix).
SCHEMA_VERSION = 2
ARTIFACT_ENV = "SENTIMENT_ARTIFACT"
LABELS = ("negative", "positive")
THREE_WAY_LABELS = ("negative", "neutral", "positive")
_REQUIRED = (
    "schema",
    "schema_version",
    "encoder",
    "labels",
    "coef",
    "intercept",
    "band",
    "metrics",
    "training",
    "versions",
)


class ArtifactError(Exception):
    """The artifact file is missing or unusable. The message names the file and the fix."""


def default_artifact_path() -> Path:
    """The classifier committed with the package (bundled encoder, trained on SST-2)."""
    return Path(str(resources.files("model") / "artifacts" / "default.joblib"))


def artifact_path_from(flag: str | Path | None) -> Path:
    """The artifact the user named (flag, then ``SENTIMENT_ARTIFACT``), else the default."""
    value = flag if flag is not None else os.environ.get(ARTIFACT_ENV) or None
    return Path(value).expanduser() if value is not None else default_artifact_path()


def sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -500.0, 500.0))), dtype=np.float64)


def softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row-wise softmax, stable for any logits."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True), dtype=np.float64)


@dataclass(frozen=True)
class Artifact:
    """A logistic regression on the encoder's embedding, as plain arrays.

    Binary (the tutorial's): ``coef`` is a (dim,) vector and ``intercept`` one number, giving
    P(positive); ``band`` is the neutral band of P(positive) (silent when low < p < high).
    Three-way: ``coef`` is a (K, dim) matrix and ``intercept`` a (K,) vector over ``labels``
    (negative, neutral, positive; a softmax gives the probabilities); ``band`` holds the
    per-class confidence thresholds as (1 - t_negative, t_positive): a positive is voiced when
    P(positive) >= t_positive, a negative when P(negative) >= t_negative.
    """

    encoder: EncoderSpec
    coef: NDArray[np.float64]  # (dim,) or (K, dim): weights on the raw embedding
    intercept: float | NDArray[np.float64]  # a number, or (K,)
    band: tuple[float, float]
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    encoder_fingerprint: str = ""
    labels: tuple[str, ...] = LABELS

    @property
    def three_way(self) -> bool:
        return self.coef.ndim == 2

    def class_probabilities(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        """Rows of probabilities over ``labels``."""
        z = embeddings.astype(np.float64) @ self.coef.T + self.intercept
        if self.three_way:
            return softmax(z)
        p = sigmoid(z)
        return np.stack([1.0 - p, p], axis=1)

    @property
    def version(self) -> str:
        """Short content digest: names the model in logs and in every stored prediction."""
        h = hashlib.sha256()
        # where the adapter lies on this machine is not part of the model; its digest is
        h.update(repr(replace(self.encoder, adapter=None)).encode())
        h.update(np.ascontiguousarray(self.coef, dtype=np.float64).tobytes())
        if self.three_way:
            h.update(np.ascontiguousarray(self.intercept, dtype=np.float64).tobytes())
            h.update(repr((self.labels, self.band)).encode())
        else:  # as binary artifacts were always named
            h.update(repr((float(self.intercept), self.band)).encode())
        return h.hexdigest()[:12]

    def to_payload(self, folder: Path | None = None) -> dict[str, Any]:
        """The joblib payload; the adapter path is written relative to ``folder`` (where the
        artifact is saved), so the artifact and its adapter folder can move together."""
        adapter = self.encoder.adapter
        if adapter is not None and folder is not None:
            adapter = os.path.relpath(Path(adapter).resolve(), folder.resolve())
        intercept: float | list[float] = (
            [float(v) for v in np.ravel(self.intercept)]
            if self.three_way
            else float(self.intercept)
        )
        return {
            "schema": SCHEMA,
            # binary artifacts keep schema 1, so an older bot still loads them
            "schema_version": SCHEMA_VERSION if self.three_way else 1,
            "encoder": {
                "name": self.encoder.name,
                "pooling": self.encoder.pooling,
                "max_length": self.encoder.max_length,
                "normalize": self.encoder.normalize,
                "precision": self.encoder.precision,
                "fingerprint": self.encoder_fingerprint,
                "adapter": adapter,
                "adapter_digest": self.encoder.adapter_digest,
                "text_normalizer": self.encoder.text_normalizer,
            },
            "labels": list(self.labels),
            "coef": np.ascontiguousarray(self.coef, dtype=np.float64),
            "intercept": intercept,
            "band": [float(self.band[0]), float(self.band[1])],
            "metrics": self.metrics,
            "training": self.training,
            "versions": dict(self.versions),
        }


def save_artifact(artifact: Artifact, path: Path) -> None:
    """Write atomically: a crash never leaves a half-written artifact under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        joblib.dump(artifact.to_payload(path.parent), tmp, compress=3)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_artifact(path: Path) -> Artifact:
    """Read and validate an artifact; any problem is an :class:`ArtifactError`."""
    if not path.is_file():
        raise ArtifactError(
            f"classifier artifact {path} not found. Train one with "
            f"`sentiment-train --output {path}`, or unset {ARTIFACT_ENV} to use the bundled "
            "default."
        )
    try:
        payload = joblib.load(path)
    except Exception as exc:  # joblib/pickle/zlib raise many types for a damaged file
        raise ArtifactError(
            f"{path} is not a readable classifier artifact: the file is truncated or corrupt "
            f"({type(exc).__name__}: {exc}). Copy it again or retrain it with sentiment-train."
        ) from None
    return _from_payload(payload, path)


def _from_payload(payload: Any, path: Path) -> Artifact:
    def bad(problem: str) -> ArtifactError:
        return ArtifactError(
            f"{path} is not a valid classifier artifact: {problem}. Retrain it with "
            "sentiment-train."
        )

    if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
        raise ArtifactError(
            f"{path} is not a Sentiment Bot classifier artifact (no '{SCHEMA}' schema tag). "
            "Point SENTIMENT_ARTIFACT / --artifact at a file written by sentiment-train."
        )
    version = payload.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad(f"schema_version is {version!r}, not an integer")
    if version > SCHEMA_VERSION:
        raise ArtifactError(
            f"{path} was written by a newer Sentiment Bot (artifact schema {version}; this "
            f"version reads up to {SCHEMA_VERSION}). Upgrade sentiment-bot, or retrain the "
            "artifact with this version's sentiment-train."
        )
    if version < 1:
        raise bad(f"unknown schema version {version}")
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise bad(f"missing {', '.join(repr(k) for k in missing)}")

    enc = payload["encoder"]
    if not isinstance(enc, dict) or not all(k in enc for k in ("name", "pooling", "max_length")):
        raise bad("the 'encoder' entry lacks name, pooling or max_length")
    if enc["pooling"] not in POOLINGS:
        raise bad(f"unknown pooling {enc['pooling']!r}")
    if not isinstance(enc["max_length"], int) or enc["max_length"] < 2:
        raise bad(f"max_length is {enc['max_length']!r}")
    precision = enc.get("precision", "fp32")  # artifacts before the bf16 path: fp32
    if precision not in PRECISIONS:
        raise bad(f"unknown encoder precision {precision!r}")
    adapter = enc.get("adapter")
    adapter_digest = enc.get("adapter_digest")
    if adapter is not None:
        if not isinstance(adapter, str) or not isinstance(adapter_digest, str):
            raise bad("the encoder's adapter entry has no path or no digest")
        adapter = str((path.parent / adapter).resolve())  # relative to the artifact's folder
    normalizer = enc.get("text_normalizer", "none")  # artifacts before chat normalisation
    if normalizer not in NORMALIZERS:
        raise ArtifactError(
            f"{path} needs text normaliser {normalizer!r}, which this version does not know "
            f"(it knows {', '.join(NORMALIZERS)}). Upgrade sentiment-bot, or retrain the "
            "artifact with this version's sentiment-train."
        )
    labels = payload["labels"]
    if not isinstance(labels, list | tuple) or tuple(str(x) for x in labels) not in (
        LABELS,
        THREE_WAY_LABELS,
    ):
        raise bad(
            f"'labels' is {labels!r}, not {list(LABELS)} (binary) or {list(THREE_WAY_LABELS)}"
        )
    labels = tuple(str(x) for x in labels)
    three_way = len(labels) == 3
    coef = np.asarray(payload["coef"], dtype=np.float64) if _is_numeric(payload["coef"]) else None
    shape_ok = coef is not None and (
        coef.ndim == 2 and coef.shape[0] == len(labels) if three_way else coef.ndim == 1
    )
    if coef is None or not shape_ok or coef.size == 0 or not np.isfinite(coef).all():
        want = f"a finite {len(labels)} x dim matrix" if three_way else "a finite 1-D array"
        raise bad(f"'coef' is not {want} of weights")
    raw_intercept = payload["intercept"]
    intercept: float | NDArray[np.float64]
    if three_way:
        arr = np.asarray(raw_intercept, dtype=np.float64) if _is_numeric(raw_intercept) else None
        if arr is None or arr.shape != (len(labels),) or not np.isfinite(arr).all():
            raise bad(f"'intercept' is {raw_intercept!r}, not {len(labels)} finite numbers")
        intercept = arr
    else:
        if not isinstance(raw_intercept, int | float) or not math.isfinite(raw_intercept):
            raise bad(f"'intercept' is {raw_intercept!r}, not a finite number")
        intercept = float(raw_intercept)
    band = payload["band"]
    if (
        not isinstance(band, list | tuple)
        or len(band) != 2
        or not all(isinstance(b, int | float) for b in band)
        or not 0.0 <= band[0] <= 0.5 <= band[1] <= 1.0
    ):
        raise bad(f"'band' is {band!r}, not [low <= 0.5 <= high] within [0, 1]")
    for key in ("metrics", "training", "versions"):
        if not isinstance(payload[key], dict):
            raise bad(f"'{key}' is not a mapping")
    return Artifact(
        encoder=EncoderSpec(
            name=str(enc["name"]),
            pooling=enc["pooling"],
            max_length=int(enc["max_length"]),
            normalize=bool(enc.get("normalize", False)),
            precision=precision,
            adapter=adapter,
            adapter_digest=adapter_digest if adapter is not None else None,
            text_normalizer=normalizer,
        ),
        coef=coef,
        intercept=intercept,
        band=(float(band[0]), float(band[1])),
        metrics=payload["metrics"],
        training=payload["training"],
        versions={str(k): str(v) for k, v in payload["versions"].items()},
        encoder_fingerprint=str(enc.get("fingerprint", "")),
        labels=labels,
    )


def _is_numeric(value: Any) -> bool:
    try:
        arr = np.asarray(value)
    except Exception:
        return False
    return arr.dtype.kind in "fiu"
