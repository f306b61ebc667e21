"""Sentiment classifier: a frozen transformer encoder + logistic regression.

Public API (the only part the bot uses)::

    from model import SentimentClassifier
    clf = SentimentClassifier.load()          # the bundled default, or load(path)
    clf.predict_batch(["I love it", "meh"])   # -> [Prediction(label, p_positive, in_band,
                                              #     probabilities, unread), ...]

This package knows nothing of Discord.
"""

from model.artifact import Artifact, ArtifactError, default_artifact_path, load_artifact
from model.classifier import (
    EMPTY_PREDICTION,
    Prediction,
    SentimentClassifier,
    threshold,
)
from model.data import DataError
from model.encoder import BUNDLED_ENCODER, Encoder, EncoderError
from model.moods import MOODS, Mood, mood_of

__all__ = [
    "BUNDLED_ENCODER",
    "EMPTY_PREDICTION",
    "MOODS",
    "Artifact",
    "ArtifactError",
    "DataError",
    "Encoder",
    "EncoderError",
    "Mood",
    "Prediction",
    "SentimentClassifier",
    "default_artifact_path",
    "load_artifact",
    "mood_of",
    "threshold",
]
