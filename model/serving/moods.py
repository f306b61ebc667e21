"""The three moods and the one rule that turns a label and the band into what a person is told.

Light on purpose (no torch): storage and the metrics use it without loading the encoder.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

Mood: TypeAlias = Literal["negative", "neutral", "positive"]
# The order of a three-way model's classes and probabilities.
MOODS: Final[tuple[Mood, ...]] = ("negative", "neutral", "positive")


def mood_of(label: Mood, in_band: bool) -> Mood:
    """What a person is told and what the bot reacts to: ``neutral`` when the prediction is
    silent (inside the band, or below its mood's threshold), else the label. (Storage's mood
    statistics write the same rule in SQL: ``bot/storage/queries.py``.)"""
    return "neutral" if in_band else label
