"""bot.mood.MoodService: each prediction is logged with what the model said, a three-way model's
probabilities and why a text was not read included, under the guild's band; a chat message gets
an automatic reaction, or none, by the rules of bot/decisions.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.decisions import ChatMessage
from bot.inference import InferenceService
from bot.mood import MoodService
from bot.storage import (
    ANY_GUILD,
    DEFAULT_NEGATIVE_EMOJI,
    DEFAULT_POSITIVE_EMOJI,
    HistoryFilter,
    Storage,
    StoredPrediction,
)
from model import Prediction

ANSWERS = {
    "binary": Prediction("positive", 0.9, False),
    "three-way": Prediction("positive", 0.8, False, probabilities=(0.2, 0.0, 0.8)),
    "leaning": Prediction("negative", 0.3, False, probabilities=(0.6, 0.14, 0.26)),
    "french": Prediction("neutral", 0.5, True, unread="language:fr"),
    " ": Prediction("neutral", 0.5, True, unread="empty"),
}


class Answers:
    """A predictor that answers each text from ANSWERS."""

    def predict_batch(self, texts: Sequence[str]) -> list[Prediction]:
        return [ANSWERS[t] for t in texts]


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[MoodService]:
    storage = await Storage.open(tmp_path / "bot.db")
    async with InferenceService(Answers()) as inference:
        yield MoodService(inference, storage, "v1", (0.4, 0.6))
    await storage.close()


async def classify(
    service: MoodService, text: str, band: tuple[float, float] | None = None
) -> tuple[Prediction, StoredPrediction]:
    """``text`` through the service as /sentiment would send it; the prediction and its row."""
    prediction = await service.classify(
        text,
        source="command",
        user_id=1,
        guild_id=2,
        channel_id=3,
        message_id=None,
        store_text=True,
        band=band,
    )
    await service.storage.flush()
    (row,) = [
        r
        for r in await service.storage.history(HistoryFilter(guild_id=ANY_GUILD), limit=100)
        if r.text == text
    ]
    return prediction, row


async def test_three_way_probabilities_are_logged(service: MoodService) -> None:
    prediction, row = await classify(service, "three-way")
    assert prediction == ANSWERS["three-way"]
    assert (row.label, row.p_positive, row.in_band, row.unread) == ("positive", 0.8, False, None)
    assert (row.p_negative, row.p_neutral) == (0.2, 0.0)
    assert row.probabilities == pytest.approx((0.2, 0.0, 0.8))


async def test_binary_predictions_have_no_three_way_fields(service: MoodService) -> None:
    _, row = await classify(service, "binary")
    assert (row.p_negative, row.p_neutral, row.unread, row.probabilities) == (None,) * 4


@pytest.mark.parametrize(("text", "reason"), [("french", "language:fr"), (" ", "empty")])
async def test_why_a_text_was_not_read_is_logged(
    service: MoodService, text: str, reason: str
) -> None:
    prediction, row = await classify(service, text)
    assert not prediction.read and prediction.mood == "neutral"
    assert (row.unread, row.read, row.mood, row.p_negative) == (reason, False, "neutral", None)


async def test_the_guilds_band_decides_and_is_logged(service: MoodService) -> None:
    # P(negative) 0.6: voiced when a negative needs 0.55 (low 0.45), silent when it needs 0.7
    loud, row = await classify(service, "leaning", band=(0.45, 0.9))
    assert (loud.mood, row.mood, row.in_band) == ("negative", "negative", False)
    quiet = await service.classify(
        "leaning",
        source="auto",
        user_id=1,
        guild_id=2,
        channel_id=3,
        message_id=99,
        store_text=False,
        band=(0.3, 0.9),
    )
    await service.storage.flush()
    (stored,) = await service.storage.history(HistoryFilter(guild_id=2, mood="neutral"))
    assert quiet.in_band and stored.message_id == 99 and stored.p_negative == 0.6


# --------------------------------------------------------------------------------------------
# Automatic reactions: the rules of bot/decisions.py applied to what storage says

GUILD, CHANNEL, ALICE = 2, 3, 1


def message(text: str, message_id: int = 99, **change: object) -> ChatMessage:
    fields: dict[str, Any] = {
        "id": message_id,
        "guild_id": GUILD,
        "channel_id": CHANNEL,
        "parent_id": None,
        "author_id": ALICE,
        "author_is_bot": False,
        "webhook": False,
        "content": text,
    }
    return ChatMessage(**(fields | change))


async def auto_rows(service: MoodService) -> list[StoredPrediction]:
    await service.storage.flush()
    rows = await service.storage.history(HistoryFilter(guild_id=ANY_GUILD), limit=100)
    return [r for r in rows if r.source == "auto"]


async def test_a_voiced_message_gets_the_guilds_emoji_and_its_row(service: MoodService) -> None:
    await service.storage.set_auto_channel(GUILD, CHANNEL, True)
    await service.storage.update_guild_settings(GUILD, positive_emoji="🎉")
    assert await service.auto_reaction(message("binary")) == "🎉"
    (row,) = await auto_rows(service)
    assert (row.message_id, row.user_id, row.mood, row.text) == (99, ALICE, "positive", None)


async def test_the_guilds_band_and_text_storage_apply(service: MoodService) -> None:
    await service.storage.set_auto_channel(GUILD, CHANNEL, True)
    # P(negative) 0.6: voiced under the model's band (needs 0.6), silent under (0.3, 0.9)
    assert await service.auto_reaction(message("leaning", 1)) == DEFAULT_NEGATIVE_EMOJI
    await service.storage.update_guild_settings(GUILD, band=(0.3, 0.9), store_auto_text=True)
    assert await service.auto_reaction(message("leaning", 2)) is None
    rows = {r.message_id: r for r in await auto_rows(service)}
    assert (rows[1].mood, rows[1].text) == ("negative", None)
    assert (rows[2].mood, rows[2].text) == ("neutral", "leaning")  # logged, not reacted to


async def test_a_text_the_model_did_not_read_is_logged_without_a_reaction(
    service: MoodService,
) -> None:
    await service.storage.set_auto_channel(GUILD, CHANNEL, True)
    assert await service.auto_reaction(message("french")) is None
    (row,) = await auto_rows(service)
    assert row.unread == "language:fr"


@pytest.mark.parametrize(
    "case", ["closing", "direct message", "bot", "webhook", "attachment", "off", "opted out"]
)
async def test_skipped_messages_are_not_classified_nor_logged(
    service: MoodService, case: str
) -> None:
    await service.storage.set_auto_channel(GUILD, CHANNEL, True)
    msg = message("binary")
    closing = case == "closing"
    if case == "direct message":
        msg = message("binary", guild_id=None)
    elif case == "bot":
        msg = message("binary", author_is_bot=True)
    elif case == "webhook":
        msg = message("binary", webhook=True)
    elif case == "attachment":
        msg = message("")
    elif case == "off":
        msg = message("binary", channel_id=CHANNEL + 1)
    elif case == "opted out":
        await service.storage.set_opt_out(ALICE, True)
    assert await service.auto_reaction(msg, closing=closing) is None
    assert service.inference.stats.requests == 0
    assert await auto_rows(service) == []


async def test_a_message_delivered_again_is_classified_once(service: MoodService) -> None:
    await service.storage.set_auto_channel(GUILD, CHANNEL, True)
    # twice at once (a replay while the first is classified), then once more afterwards
    first, second = await asyncio.gather(
        service.auto_reaction(message("binary")), service.auto_reaction(message("binary"))
    )
    assert {first, second} == {DEFAULT_POSITIVE_EMOJI, None}
    assert await service.auto_reaction(message("binary")) is None
    assert service.inference.stats.requests == 1
    assert len(await auto_rows(service)) == 1
