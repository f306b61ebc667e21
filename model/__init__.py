"""Sentiment classifier: a frozen transformer encoder + logistic regression.

Public API (the only part the bot uses)::

    from model import SentimentClassifier
    clf = SentimentClassifier.load()          # the bundled default, or load(path)
    clf.predict_batch(["I love it", "meh"])   # -> [Prediction(label, p_positive, in_band,
                                              #     probabilities, unread), ...]
    explain(clf, "I hate this").top(3)        # -> the words that moved the mood most

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
from model.explain import Explanation, WordEffect, explain
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
    "Explanation",
    "Mood",
    "Prediction",
    "SentimentClassifier",
    "WordEffect",
    "default_artifact_path",
    "explain",
    "load_artifact",
    "mood_of",
    "threshold",
]
