"""The bot's side of "Why" (no model): the embed's "Words that moved it most", the explanation
run on the model's thread through the inference service, and MoodService.explain."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import discord
import pytest

from bot.inference import InferenceError, InferenceService, ServiceClosed
from bot.mood import MoodService
from bot.render import WHY_TITLE, prediction_embed, why_lines
from bot.storage import Storage
from model import Explanation, Prediction, WordEffect

HANG = 5.0
BAND = (0.32, 0.71)
NEGATIVE = Prediction("negative", 0.1, False, probabilities=(0.8, 0.1, 0.1))
FRENCH = Prediction("neutral", 0.5, True, unread="language:fr")


def effect(word: str, change: tuple[float, float, float], count: int = 1) -> WordEffect:
    return WordEffect(word, count, change, 0)


EXPLANATION = Explanation(
    (
        effect("hate", (0.42, -0.30, -0.12)),
        effect("bad", (0.20, -0.15, -0.05), count=2),
        effect("lol", (-0.01, 0.07, -0.06)),
        effect("this", (0.0, 0.0, 0.03)),
        effect("the", (0.001, -0.001, 0.0)),
    ),
    (0.8, 0.1, 0.1),
)


def fields(embed: discord.Embed) -> dict[str, str]:
    return {str(f.name): str(f.value) for f in embed.fields}


# ------------------------------------------------------------------------------ render


def test_the_answer_shows_the_top_three_words_with_direction_and_size() -> None:
    embed = prediction_embed("I hate this, bad bad lol", NEGATIVE, BAND, EXPLANATION)
    assert fields(embed)[WHY_TITLE].splitlines() == [
        "**hate** pushed it negative by 0.42",
        "**bad** (×2) pushed it negative by 0.20",
        "**lol** pushed it neutral by 0.07",
    ]
    assert embed.fields[-1].name == WHY_TITLE  # after the probabilities
    assert "Probabilities" in fields(embed)


def test_the_answer_says_what_was_not_tried_and_when_nothing_moved_it() -> None:
    long = Explanation((effect("the", (0.001, -0.001, 0.0)),), (0.3, 0.4, 0.3), skipped=12)
    assert why_lines(long).splitlines() == [
        "No single word moved it by 0.01 or more.",
        "Only the first 40 words were tried; 12 more words were not.",
    ]
    one = Explanation((effect("hate", (0.5, -0.5, 0.0)),), None, skipped=1, max_words=1)
    assert why_lines(one).endswith("Only the first 1 word was tried; 1 more word was not.")
    assert why_lines(Explanation((), (0.1, 0.8, 0.1))) == (
        "No words to weigh (only punctuation or symbols)."
    )


def test_words_are_shown_literally_and_long_ones_cut() -> None:
    tricky = Explanation(
        (effect("**x**", (0.3, -0.3, 0.0)), effect("a" * 60, (0.2, -0.2, 0.0))), None
    )
    first, second = why_lines(tricky).splitlines()
    assert first == r"**\*\*x\*\*** pushed it negative by 0.30"
    assert second == f"**{'a' * 39}…** pushed it negative by 0.20"


def test_no_explanation_no_field_and_unread_text_gets_none() -> None:
    assert WHY_TITLE not in fields(prediction_embed("I hate this", NEGATIVE, BAND))
    unread = Explanation((), None, unread="language:fr")
    embed = prediction_embed("je ne sais pas", FRENCH, BAND, unread)
    assert embed.fields == [] and "French" in str(embed.description)


# ------------------------------------------------------------------------------ the model thread


class Model:
    """Answers every text negative; records the threads jobs ran on."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def predict_batch(self, texts: Sequence[str]) -> list[Prediction]:
        return [NEGATIVE for _ in texts]

    def explain(self, text: str, prediction: Prediction) -> Explanation:
        self.threads.append(threading.current_thread())
        if text == "boom":
            raise RuntimeError("the encoder broke")
        return EXPLANATION


async def test_run_executes_on_the_model_thread_and_wraps_failures() -> None:
    model = Model()
    async with asyncio.timeout(HANG), InferenceService(model) as service:
        assert await service.run(lambda: model.explain("hi", NEGATIVE)) is EXPLANATION
        with pytest.raises(InferenceError, match="RuntimeError: the encoder broke"):
            await service.run(lambda: model.explain("boom", NEGATIVE))
        assert service.stats.jobs == 2 and service.stats.errors == 1
        assert service.stats.as_dict()["jobs"] == 2
    (thread, _) = model.threads
    assert thread is not threading.current_thread()
    assert thread.name.startswith("inference")
    with pytest.raises(ServiceClosed):
        await service.run(lambda: None)


async def test_close_waits_for_a_job_under_way() -> None:
    started, release = threading.Event(), threading.Event()

    def job() -> str:
        started.set()
        release.wait(HANG)
        return "done"

    async with asyncio.timeout(HANG):
        service = InferenceService(Model())
        await service.start()
        running = asyncio.ensure_future(service.run(job))
        await asyncio.to_thread(started.wait, HANG)
        closing = asyncio.ensure_future(service.close())
        await asyncio.sleep(0.05)
        assert not closing.done()  # the job is still running: close waits for it
        release.set()
        await closing
        assert await running == "done"


async def test_mood_service_explains_read_texts_only(tmp_path: Path) -> None:
    model = Model()
    storage = await Storage.open(tmp_path / "bot.db")
    try:
        async with asyncio.timeout(HANG), InferenceService(model) as inference:
            mood = MoodService(inference, storage, "v1", BAND, explainer=model.explain)
            assert await mood.explain("I hate this", NEGATIVE) is EXPLANATION
            assert await mood.explain("je ne sais pas", FRENCH) is None  # not read: not run
            assert len(model.threads) == 1
            with pytest.raises(InferenceError):
                await mood.explain("boom", NEGATIVE)
            plain = MoodService(inference, storage, "v1", BAND)  # no explainer: no words
            assert await plain.explain("I hate this", NEGATIVE) is None
    finally:
        await storage.close()
