"""bot.mood.MoodService: each prediction is logged with what the model said, a three-way model's
probabilities and why a text was not read included, under the guild's band."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from bot.inference import InferenceService
from bot.mood import MoodService
from bot.storage import ANY_GUILD, HistoryFilter, Storage, StoredPrediction
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
        yield MoodService(inference, storage, "v1")
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
