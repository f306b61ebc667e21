"""bot.render: what /sentiment, the menu, /history and /mood show, for binary and three-way
models and for texts the model did not read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import discord
import pytest

from bot.render import (
    history_embed,
    prediction_embed,
    probability_bars,
    summary_embed,
    unread_line,
    why_silent,
)
from bot.storage import Mood, StoredPrediction
from model import EMPTY_PREDICTION, Prediction

BAND = (0.32, 0.71)  # three-way: 👍 when P(positive) >= 0.71, 👎 when P(negative) >= 0.68
TEXT = "what a lovely surprise"


def fields(embed: discord.Embed) -> dict[str, str]:
    return {str(f.name): str(f.value) for f in embed.fields}


def three_way(label: Mood, probabilities: tuple[float, float, float]) -> Prediction:
    """A three-way model's prediction judged against BAND (a neutral label is always silent)."""
    negative, _, positive = probabilities
    prediction = Prediction(
        label, positive / (positive + negative), label == "neutral", probabilities=probabilities
    )
    return prediction.with_band(BAND)


def test_three_way_answer_shows_three_bars_and_the_mood_in_the_title() -> None:
    embed = prediction_embed(TEXT, three_way("positive", (0.12, 0.08, 0.80)), BAND)
    assert embed.title == "😊 Positive"
    assert embed.description == f"> {TEXT}"
    assert embed.colour == discord.Colour.green()
    bars = fields(embed)["Probabilities"]
    assert bars.startswith("```\n") and bars.endswith("\n```")
    assert bars.splitlines()[1:4] == [
        "negative █░░░░░░░░░  12%",
        "neutral  █░░░░░░░░░   8%",
        "positive ████████░░  80%",
    ]
    assert "Not confident enough" not in fields(embed)
    assert "P(positive)" not in fields(embed) and "Neutral band" not in fields(embed)


def test_three_way_neutral_answer() -> None:
    embed = prediction_embed(TEXT, three_way("neutral", (0.1, 0.85, 0.05)), BAND)
    assert embed.title == "😐 Neutral"
    assert "neutral  ████████░░  85%" in fields(embed)["Probabilities"]
    assert set(fields(embed)) == {"Probabilities"}


@pytest.mark.parametrize(
    ("label", "probabilities", "says"),
    [
        ("positive", (0.1, 0.28, 0.62), "P(positive) 0.62 is below the 0.71"),
        ("negative", (0.6, 0.3, 0.1), "P(negative) 0.60 is below the 0.68"),
    ],
)
def test_three_way_answer_not_confident_enough_says_so(
    label: str, probabilities: tuple[float, float, float], says: str
) -> None:
    prediction = three_way(label, probabilities)
    assert prediction.in_band and prediction.mood == "neutral"
    embed = prediction_embed(TEXT, prediction, BAND)
    assert embed.title == "😐 Neutral"
    note = fields(embed)["Not confident enough"]
    assert f"It leans {label}" in note and says in note and "stay silent" in note


def test_binary_answer_is_unchanged() -> None:
    embed = prediction_embed(TEXT, Prediction("positive", 0.9, False), BAND)
    assert embed.title == "😊 Positive"
    assert fields(embed) == {"Confidence": "`█████████░ 90%`", "P(positive)": "0.900"}
    in_band = prediction_embed(TEXT, Prediction("positive", 0.6, True), (0.3, 0.7))
    assert in_band.title == "😊 Positive" and in_band.colour == discord.Colour.light_grey()
    assert "0.60 lies between 0.30 and 0.70" in fields(in_band)["Neutral band"]


@pytest.mark.parametrize(
    ("code", "line"),
    [
        ("fr", "Not read: this looks like French (fr), and the model reads English only."),
        ("zh", "Not read: this looks like Chinese (zh), and the model reads English only."),
        (
            "xx",
            "Not read: this looks like another language (xx), and the model reads English only.",
        ),
    ],
)
def test_text_in_another_language_is_answered_in_one_line(code: str, line: str) -> None:
    prediction = Prediction("neutral", 0.5, True, unread=f"language:{code}")
    embed = prediction_embed("je ne sais pas", prediction, BAND)
    assert (embed.description or "").startswith(f"😐 {line}")
    assert embed.title is None and embed.fields == []
    assert "\n" not in (embed.description or "")


@pytest.mark.parametrize("unread", ["empty", "unknown"])
def test_nothing_to_read_keeps_its_wording(unread: str) -> None:
    embed = prediction_embed("\u200b", Prediction("neutral", 0.5, True, unread=unread), BAND)
    assert embed.title == "😐 Nothing to read"
    assert "no words the model knows" in (embed.description or "")
    assert prediction_embed(" ", EMPTY_PREDICTION, BAND).title == "😐 Nothing to read"
    assert unread_line(unread).startswith("Not read: the text has no words the model knows")


def row(i: int, **changes: Any) -> StoredPrediction:
    values: dict[str, Any] = {
        "id": i,
        "guild_id": 1,
        "channel_id": 10,
        "message_id": i,
        "user_id": 100,
        "source": "auto",
        "label": "positive",
        "p_positive": 0.9,
        "in_band": False,
        "model_version": "v",
        "created_at": datetime(2024, 5, 8, tzinfo=UTC),
        "text": None,
    }
    values.update(changes)
    return StoredPrediction(**values)


def test_history_lines_for_binary_three_way_and_unread_rows() -> None:
    rows = [
        row(1),
        row(2, p_negative=0.05, p_neutral=0.15),
        row(3, p_negative=0.1, p_neutral=0.28, p_positive=0.86, in_band=True),
        row(4, label="neutral", in_band=True, p_positive=0.5, p_negative=0.1, p_neutral=0.75),
        row(5, label="neutral", in_band=True, p_positive=0.5, unread="language:fr"),
        row(6, label="neutral", in_band=True, p_positive=0.5, unread="empty"),
    ]
    embed = history_embed(rows, title="t", page=1, pages=1, total=6, show_user=False)
    lines = (embed.description or "").splitlines()
    assert lines[0].startswith("😊 **positive** 0.90 · ")  # binary: P(positive)
    assert lines[1].startswith("😊 **positive** 0.80 · ")  # three-way: P(positive) of three
    assert lines[2].startswith("😐 **neutral** (leans positive 0.62) · ")
    assert lines[3].startswith("😐 **neutral** 0.75 · ")
    assert lines[4].startswith("😐 **not read** (French (fr)) · ")
    assert lines[5].startswith("😐 **not read** · ")


def test_mood_summary_counts_unread_texts_apart() -> None:
    counts = {"positive": 2, "negative": 1, "neutral": 1, "unread": 3}
    embed = summary_embed(counts, title="Mood")
    assert fields(embed) == {
        "😊 positive": "2 (50%)",
        "😐 neutral": "1 (25%)",
        "😞 negative": "1 (25%)",
    }
    assert embed.footer.text == "4 predictions · 3 messages not read"
    only_unread = summary_embed(
        {"positive": 0, "neutral": 0, "negative": 0, "unread": 1}, title="x"
    )
    assert only_unread.description is not None
    assert only_unread.description.startswith("No predictions in this period. (1 message not read")
    plain = summary_embed({"positive": 1, "neutral": 0, "negative": 0, "unread": 0}, title="x")
    assert plain.footer.text == "1 prediction"


def test_why_the_bot_stayed_silent() -> None:
    assert why_silent(row(1, label="neutral", in_band=True, unread="language:de"), BAND) == (
        "not read: this looks like German (de), and the model reads English only."
    )
    assert why_silent(row(1, p_positive=0.6, in_band=True), (0.3, 0.7)) == (
        "neutral, P(positive) 0.60 lies inside the band 0.30..0.70, too close to call"
    )
    leaning = row(1, label="negative", in_band=True, p_positive=0.2, p_negative=0.5, p_neutral=0.4)
    assert why_silent(leaning, BAND) == (
        "it leans negative, but P(negative) 0.50 is below the 0.68 a reaction needs: not "
        "confident enough"
    )


def test_probability_bars_are_aligned() -> None:
    lines = probability_bars((0.0, 0.004, 0.996)).splitlines()
    assert lines == [
        "negative ░░░░░░░░░░   0%",
        "neutral  ░░░░░░░░░░   0%",
        "positive ██████████ 100%",
    ]
    assert len({len(line) for line in lines}) == 1
