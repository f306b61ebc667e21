"""Sentiment classifier: a frozen transformer encoder + logistic regression.

Public API (the only part the bot uses)::

    from model import SentimentClassifier
    clf = SentimentClassifier.load()          # the bundled default, or load(path)
    clf.predict_batch(["I love it", "meh"])   # -> [Prediction(label, p_positive, in_band,
                                              #     probabilities, unread), ...]
    explain(clf, "I hate this").top(3)        # -> the words that moved the mood most

This package knows nothing of Discord. ``model.serving`` holds what runs a model (all the
bot imports), ``model.training`` what makes one, ``model.cli`` the two commands.
"""

from model.serving.artifact import Artifact, ArtifactError, default_artifact_path, load_artifact
from model.serving.classifier import (
    EMPTY_PREDICTION,
    Prediction,
    SentimentClassifier,
    threshold,
)
from model.serving.explain import Explanation, WordEffect, explain
from model.serving.moods import MOODS, Mood, mood_of
from model.serving.spec import BUNDLED_ENCODER, EncoderError

__all__ = [
    "BUNDLED_ENCODER",
    "EMPTY_PREDICTION",
    "MOODS",
    "Artifact",
    "ArtifactError",
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


def __getattr__(name: str) -> object:
    # The torch encoder is imported on first use: a bot serving the int8 path never loads torch.
    if name == "Encoder":
        from model.serving.encoder import Encoder

        return Encoder
    raise AttributeError(f"module 'model' has no attribute {name!r}")
