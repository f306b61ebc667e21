"""The public API the bot uses: load an artifact once, predict batches of texts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from model.serving.artifact import Artifact, default_artifact_path, load_artifact
from model.serving.artifact import sigmoid as sigmoid  # re-exported: training and tests use it
from model.serving.moods import MOODS, Mood, mood_of
from model.serving.spec import DEFAULT_BATCH_SIZE, Precision

if TYPE_CHECKING:
    from model.serving.encoder import Encoder
    from model.serving.language import LanguageGate
    from model.serving.serving_cache import Int8Encoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """One text's answer.

    ``label`` is the classifier's decision: ``negative`` / ``positive`` for a binary model,
    ``negative`` / ``neutral`` / ``positive`` (the most probable) for a three-way model.
    ``p_positive`` is the probability of positive against negative, leaving neutral aside (for a
    binary model, its one probability). ``probabilities`` holds P(negative), P(neutral),
    P(positive) for a three-way model (they sum to 1), None for a binary one.

    ``in_band`` says the bot stays silent: the label is ``neutral``, or not confident enough.
    For a binary model that is ``low < p_positive < high`` (the neutral band); for a three-way
    model a positive is voiced when ``P(positive) >= high`` and a negative when
    ``P(negative) >= 1 - low`` (the same band read as per-class confidence thresholds).

    ``unread`` is None when the model read the text, else why it did not: ``empty`` (nothing
    but whitespace), ``unknown`` (no token the encoder knows: invisible characters only), or
    ``language:xx`` (another language than the encoder reads, ``xx`` its ISO 639-1 code). Such a
    text is ``neutral``, 0.5, in the band, without running the encoder.
    """

    label: Mood
    p_positive: float
    in_band: bool
    probabilities: tuple[float, float, float] | None = None
    unread: str | None = None

    @property
    def mood(self) -> Mood:
        """What a person is told and what the bot reacts to: ``neutral`` when silent."""
        return mood_of(self.label, self.in_band)

    @property
    def read(self) -> bool:
        """False when the model did not read the text (see ``unread``)."""
        return self.unread is None

    def probability(self, mood: Mood) -> float:
        """P(mood): the three-way model's, or for a binary model P(positive) / P(negative)
        (and 0 for neutral, which a binary model does not predict)."""
        if self.probabilities is not None:
            return self.probabilities[MOODS.index(mood)]
        if mood == "positive":
            return self.p_positive
        return 1.0 - self.p_positive if mood == "negative" else 0.0

    def with_band(self, band: tuple[float, float]) -> Prediction:
        """The same prediction judged against another band (e.g. a guild's override)."""
        if self.label == "neutral":
            return self
        return replace(
            self, in_band=not voiced(self.label, self.p_positive, self.probabilities, band)
        )

    @property
    def confidence(self) -> float:
        """Probability of the predicted label."""
        if self.probabilities is not None:
            return max(self.probabilities)
        return max(self.p_positive, 1.0 - self.p_positive)


def voiced(
    label: str,
    p_positive: float,
    probabilities: tuple[float, float, float] | None,
    band: tuple[float, float],
) -> bool:
    """Whether the bot speaks for ``label`` under ``band`` (see :class:`Prediction`)."""
    low, high = band
    if label == "neutral":
        return False
    if probabilities is None:
        return not low < p_positive < high
    return probabilities[MOODS.index(label)] >= threshold(label, band)


def threshold(label: str, band: tuple[float, float]) -> float:
    """The probability a three-way model's ``label`` needs to be voiced under ``band``: a
    positive needs P(positive) >= high, a negative P(negative) >= 1 - low."""
    low, high = band
    return high if label == "positive" else 1.0 - low


@dataclass(frozen=True)
class Prepared:
    """Texts made ready for the encoder (:meth:`SentimentClassifier.prepare`).

    ``unread[i]`` is text i's answer when the model will not read it (empty, another language,
    no known token), else None; ``rows`` are the indices of the texts it reads, ``ids`` their
    token ids, in the same order."""

    unread: tuple[Prediction | None, ...]
    rows: tuple[int, ...]
    ids: tuple[list[int], ...]

    def __len__(self) -> int:
        return len(self.unread)


EMPTY_PREDICTION = Prediction(label="neutral", p_positive=0.5, in_band=True, unread="empty")
# Text with no token the encoder knows (invisible characters only, say).
UNREAD_PREDICTION = replace(EMPTY_PREDICTION, unread="unknown")


class SentimentClassifier:
    """Encoder + logistic regression from an artifact. Thread-safe for predictions."""

    def __init__(
        self,
        artifact: Artifact,
        encoder: Encoder | Int8Encoder,
        language_gate: LanguageGate | None = None,
    ) -> None:
        if encoder.dim != artifact.coef.shape[-1]:
            raise ValueError(
                f"encoder {artifact.encoder.name!r} gives {encoder.dim}-dim vectors but the "
                f"artifact has {artifact.coef.shape[-1]} weights per class"
            )
        self.artifact = artifact
        self.encoder = encoder
        # Text in another language than the encoder reads is left unread (see language.py)
        self.language_gate = language_gate

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
        precision: str | None = None,
        check_fingerprint: bool = True,
        language_gate: bool = True,
        serving_cache: Path | None = None,
    ) -> SentimentClassifier:
        """Load an artifact (``path``, else the bundled default).

        ``precision`` (None or ``auto``: chosen among the paths the artifact allows, measured
        once on this machine; see model/serving/paths.py) forces a numeric path otherwise. The
        int8 path loads its encoder from the serving cache (``serving_cache``, by default
        ``~/.cache/sentiment-bot/serving``), building it there on first use, and imports no
        torch. With ``language_gate``, text in another language than English is left unread
        (see model/serving/language.py).
        """
        from model.serving.paths import choose, native_bf16
        from model.serving.serving_cache import ServingCache

        artifact_path = Path(path).expanduser() if path is not None else default_artifact_path()
        artifact = load_artifact(artifact_path)
        cache = ServingCache(serving_cache)

        def open_path(wanted: Precision) -> Encoder | Int8Encoder:
            if wanted == "int8":
                return cache.int8_encoder(
                    artifact_path,
                    artifact.encoder,
                    artifact.encoder_fingerprint or None,
                    batch_size=batch_size,
                    threads=threads,
                )
            from model.serving.encoder import Encoder

            encoder = Encoder.from_spec(
                artifact.encoder, batch_size=batch_size, threads=threads, precision=wanted
            )
            if (
                check_fingerprint
                and artifact.encoder_fingerprint
                and encoder.fingerprint != artifact.encoder_fingerprint
            ):
                log.warning(
                    "encoder %r has other weights than the artifact was trained on; "
                    "predictions may be off. Retrain the artifact with sentiment-train.",
                    artifact.encoder.name,
                )
            return encoder

        encoder = choose(
            artifact,
            artifact_path,
            precision,
            open_path=open_path,
            cache=cache,
            native_bf16=native_bf16,
        )
        gate = None
        if language_gate:
            from model.serving.language import LanguageGate

            gate = LanguageGate()
        return cls(artifact, encoder, gate)

    @property
    def version(self) -> str:
        return self.artifact.version

    @property
    def band(self) -> tuple[float, float]:
        return self.artifact.band

    @property
    def three_way(self) -> bool:
        """True for a negative / neutral / positive model, False for a binary one."""
        return self.artifact.three_way

    def class_probabilities(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        """Rows of probabilities over ``artifact.labels`` (binary: negative, positive)."""
        return self.artifact.class_probabilities(embeddings)

    def probabilities(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        """P(positive) against negative for rows of embeddings (neutral left aside)."""
        return positive_vs_negative(self.artifact.labels, self.class_probabilities(embeddings))

    def predict_batch(
        self, texts: Sequence[str], *, band: tuple[float, float] | None = None
    ) -> list[Prediction]:
        """One :class:`Prediction` per text, in order. ``band`` overrides the artifact's.

        The same as ``predict_prepared(prepare(texts), band)``."""
        return self.predict_prepared(self.prepare(texts), band)

    def prepare(self, texts: Sequence[str]) -> Prepared:
        """The work before the encoder, on one thread (no torch): the language gate, the chat
        normaliser and the tokenizer. A caller may prepare the next batch while
        :meth:`predict_prepared` runs the model on this one."""
        out: list[Prediction | None] = [EMPTY_PREDICTION] * len(texts)
        candidates = [i for i, t in enumerate(texts) if t.strip()]
        if self.language_gate is not None and candidates:
            languages = self.language_gate.foreign([texts[i] for i in candidates])
            kept = []
            for i, language in zip(candidates, languages, strict=True):
                if language is None:
                    kept.append(i)
                else:
                    out[i] = replace(UNREAD_PREDICTION, unread=f"language:{language}")
            candidates = kept
        ids = self.encoder.tokenize([texts[i] for i in candidates])
        rows, readable = [], []
        for i, x in zip(candidates, ids, strict=True):
            if self.encoder.readable(x):
                out[i] = None
                rows.append(i)
                readable.append(x)
            else:
                out[i] = UNREAD_PREDICTION
        return Prepared(tuple(out), tuple(rows), tuple(readable))

    def predict_prepared(
        self, prepared: Prepared, band: tuple[float, float] | None = None
    ) -> list[Prediction]:
        """The predictions for texts :meth:`prepare` made ready: runs the encoder."""
        band = band if band is not None else self.artifact.band
        read: dict[int, NDArray[np.float64]] = {}
        if prepared.ids:
            probs = self.class_probabilities(self.encoder.encode_ids(prepared.ids))
            read = dict(zip(prepared.rows, probs, strict=True))
        return [
            unread if unread is not None else self._prediction(read[i], band)
            for i, unread in enumerate(prepared.unread)
        ]

    def _prediction(self, row: NDArray[np.float64], band: tuple[float, float]) -> Prediction:
        labels = self.artifact.labels
        p_positive = float(positive_vs_negative(labels, row[None, :])[0])
        if not self.three_way:
            label: Mood = "positive" if p_positive >= 0.5 else "negative"
            return Prediction(label, p_positive, in_band=False).with_band(band)
        by_mood = dict(zip(labels, (float(v) for v in row), strict=True))
        probabilities = (by_mood["negative"], by_mood["neutral"], by_mood["positive"])
        label = MOODS[int(np.argmax(probabilities))]
        return Prediction(
            label,
            p_positive,
            in_band=not voiced(label, p_positive, probabilities, band),
            probabilities=probabilities,
        )

    def predict(self, text: str) -> Prediction:
        return self.predict_batch([text])[0]


def positive_vs_negative(
    labels: Sequence[str], probabilities: NDArray[np.float64]
) -> NDArray[np.float64]:
    """P(positive) / (P(positive) + P(negative)) for rows of class probabilities."""
    pos = probabilities[:, list(labels).index("positive")]
    neg = probabilities[:, list(labels).index("negative")]
    return np.asarray(pos / np.maximum(pos + neg, 1e-300), dtype=np.float64)
