"""The public API the bot uses: load an artifact once, predict batches of texts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from model.artifact import Artifact, artifact_path_from, load_artifact
from model.encoder import (
    DEFAULT_BATCH_SIZE,
    Encoder,
    cpu_has_native_bf16,
    resolve_precision,
)

log = logging.getLogger(__name__)

Label = Literal["negative", "positive", "neutral"]
Mood = Literal["negative", "positive", "neutral"]


@dataclass(frozen=True)
class Prediction:
    """One text's answer.

    ``label`` is the classifier's decision (``negative``/``positive``); ``in_band`` says the
    probability lies in the neutral band, where the bot stays silent. Text with nothing to read
    (empty, whitespace only, or without a single token the encoder knows: invisible characters
    only, or emoji only for an artifact without the chat normaliser, which reads emoji as their
    names) is ``neutral`` with probability 0.5 and in the band, without running the encoder.
    """

    label: Label
    p_positive: float
    in_band: bool

    @property
    def mood(self) -> Mood:
        """What a person would be told: ``neutral`` inside the band, else the label."""
        return "neutral" if self.in_band else self.label

    def with_band(self, band: tuple[float, float]) -> Prediction:
        """The same prediction judged against another neutral band (e.g. a guild's override)."""
        if self.label == "neutral":
            return self
        low, high = band
        return Prediction(self.label, self.p_positive, low < self.p_positive < high)

    @property
    def confidence(self) -> float:
        """Probability of the predicted label."""
        return max(self.p_positive, 1.0 - self.p_positive)


EMPTY_PREDICTION = Prediction(label="neutral", p_positive=0.5, in_band=True)


def sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -500.0, 500.0))), dtype=np.float64)


class SentimentClassifier:
    """Encoder + logistic regression from an artifact. Thread-safe for predictions."""

    def __init__(self, artifact: Artifact, encoder: Encoder) -> None:
        if encoder.dim != artifact.coef.shape[0]:
            raise ValueError(
                f"encoder {artifact.encoder.name!r} gives {encoder.dim}-dim vectors but the "
                f"artifact has {artifact.coef.shape[0]} weights"
            )
        self.artifact = artifact
        self.encoder = encoder

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
        precision: str | None = None,
        check_fingerprint: bool = True,
    ) -> SentimentClassifier:
        """Load an artifact (``path``, else ``SENTIMENT_ARTIFACT``, else the bundled default).

        The encoder runs on the numeric path the coefficients were fitted on (the artifact
        records it); ``precision`` overrides that, with a warning.
        """
        artifact = load_artifact(artifact_path_from(path))
        fitted = artifact.encoder.precision
        wanted = fitted if precision is None else resolve_precision(precision)
        if precision is None and wanted == "bf16" and not cpu_has_native_bf16():
            log.warning(
                "the classifier was fitted on bf16 embeddings, but this CPU has no native bf16 "
                "(it would be emulated, slowly): serving fp32, whose embeddings agree to a "
                "cosine similarity above 0.999"
            )
            wanted = "fp32"
        elif wanted != fitted:
            log.warning(
                "serving with %s embeddings, but the logistic regression was fitted on %s "
                "embeddings: predictions may shift slightly. Retrain with sentiment-train "
                "--precision %s to match.",
                wanted,
                fitted,
                wanted,
            )
        encoder = Encoder.from_spec(
            artifact.encoder, batch_size=batch_size, threads=threads, precision=wanted
        )
        if (
            check_fingerprint
            and artifact.encoder_fingerprint
            and encoder.fingerprint != artifact.encoder_fingerprint
        ):
            log.warning(
                "encoder %r has other weights than the artifact was trained on; predictions "
                "may be off. Retrain the artifact with sentiment-train.",
                artifact.encoder.name,
            )
        return cls(artifact, encoder)

    @property
    def version(self) -> str:
        return self.artifact.version

    @property
    def band(self) -> tuple[float, float]:
        return self.artifact.band

    def probabilities(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        """P(positive) for rows of embeddings."""
        z = embeddings.astype(np.float64) @ self.artifact.coef + self.artifact.intercept
        return sigmoid(z)

    def predict_batch(
        self, texts: Sequence[str], *, band: tuple[float, float] | None = None
    ) -> list[Prediction]:
        """One :class:`Prediction` per text, in order. ``band`` overrides the artifact's."""
        band = band if band is not None else self.artifact.band
        out = [EMPTY_PREDICTION] * len(texts)
        candidates = [i for i, t in enumerate(texts) if t.strip()]
        ids = self.encoder.tokenize([texts[i] for i in candidates])
        readable = [
            (i, x) for i, x in zip(candidates, ids, strict=True) if self.encoder.readable(x)
        ]
        if readable:
            probs = self.probabilities(self.encoder.encode_ids([x for _, x in readable]))
            for (i, _), p in zip(readable, probs.tolist(), strict=True):
                label: Label = "positive" if p >= 0.5 else "negative"
                out[i] = Prediction(label, p, in_band=False).with_band(band)
        return out

    def predict(self, text: str) -> Prediction:
        return self.predict_batch([text])[0]
