"""End to end against the fake Discord: `/sentiment` and the "Analyze sentiment" menu show the
words that moved the mood most, and they are the ones whose removal moves the probability most
(checked by leaving each word out, one text per model call); the explanation is one batched
model call; an answer whose explanation fails still tells the mood."""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pytest
from e2e_support import ALICE, BOB, GENERAL, GUILD, RANDOM, World

from bot.render import WHY_TITLE
from model import MOODS, SentimentClassifier

LINE = re.compile(
    r"\*\*(.+?)\*\*(?: \(×\d+\))? pushed it (negative|neutral|positive) by (\d\.\d\d)"
)


def why(reply_embeds: list[dict[str, Any]]) -> list[tuple[str, str, float]]:
    """The (word, mood, size) lines of the answer's "Words that moved it most"."""
    (embed,) = reply_embeds
    (field,) = [f for f in embed.get("fields", []) if f["name"] == WHY_TITLE]
    shown = []
    for line in field["value"].splitlines():
        match = LINE.fullmatch(line)
        assert match is not None, line
        shown.append((match[1], match[2], float(match[3])))
    return shown


def mood_probabilities(classifier: SentimentClassifier, text: str) -> np.ndarray:
    row = classifier.class_probabilities(classifier.encoder.encode([text]))[0]
    out = np.zeros(3)
    for label, p in zip(classifier.artifact.labels, row, strict=True):
        out[MOODS.index(label)] = p
    return out


def brute_force(classifier: SentimentClassifier, text: str) -> list[tuple[str, str, float]]:
    """Every word of a plain text, left out one at a time: (word, the mood whose probability
    it raised most, by how much), largest first."""
    base = mood_probabilities(classifier, text)
    found = []
    for word in dict.fromkeys(text.split()):
        change = base - mood_probabilities(
            classifier, " ".join(w for w in text.split() if w != word)
        )
        found.append((word, MOODS[int(np.argmax(change))], float(change.max())))
    return sorted(found, key=lambda item: -item[2])


async def test_slash_sentiment_shows_the_words_whose_removal_moves_the_mood_most(
    world: World, classifier: SentimentClassifier
) -> None:
    text = "the food was great but the service was awful"
    calls = classifier.encoder.calls
    reply = await world.slash("sentiment", {"text": text})
    # the mood (one call), then the text with each word left out (one batched call)
    assert classifier.encoder.calls == calls + 2
    shown = why(reply.embeds)
    expected = brute_force(classifier, text)
    assert len(shown) == 3
    by_word = {word: (mood, size) for word, mood, size in expected}
    fourth = expected[3][2]
    for word, mood, size in shown:
        want_mood, want_size = by_word[word]
        assert mood == want_mood
        assert size == pytest.approx(want_size, abs=0.006)  # shown to two decimals
        assert want_size > fourth - 0.005  # no word left out moved it more (ties aside)
    assert [size for _, _, size in shown] == sorted((size for _, _, size in shown), reverse=True)
    assert shown[0][:2] == ("awful", "negative")
    (row,) = await world.rows()
    assert row.text == text  # the explanation adds no row


async def test_the_menu_explains_the_message_privately(world: World) -> None:
    message_id = await world.fake.send_message(RANDOM, BOB, "I hate this")
    interaction = await world.fake.invoke_message_command(
        "Analyze sentiment",
        target_message_id=message_id,
        user_id=ALICE,
        channel_id=RANDOM,
        guild_id=GUILD,
    )
    reply = await interaction.wait_for_reply(timeout=15)
    assert reply.ephemeral
    word, mood, size = why(reply.embeds)[0]
    assert (word, mood) == ("hate", "negative") and size > 0.3


async def test_text_not_read_gets_no_explanation(
    world: World, classifier: SentimentClassifier
) -> None:
    calls = classifier.encoder.calls
    reply = await world.slash("sentiment", {"text": "je ne sais pas quoi faire de ma vie"})
    assert "French" in reply.text and WHY_TITLE not in reply.text
    assert classifier.encoder.calls == calls  # not read: the model ran for neither


async def test_a_failed_explanation_still_tells_the_mood(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr("bot.client.explain", broken)
    caplog.set_level(logging.WARNING)
    reply = await world.slash("sentiment", {"text": "I hate this"}, channel=GENERAL)
    assert "Negative" in reply.text and WHY_TITLE not in reply.text
    assert any(
        "answered without the words that moved the mood" in r.getMessage() for r in caplog.records
    )
    (row,) = await world.rows()
    assert row.label == "negative"
