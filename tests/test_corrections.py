"""Corrections without Discord: storage (insert, change, forget-me, deletions, purge, the
read-only path, the migration), the rules of who may correct and what becomes of a reaction,
and the correction service. No bot, no sockets, no model."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.corrections import GONE, NO_REACTION_ROW, REFUSED, CorrectionService
from bot.decisions import (
    NOT_A_MODERATOR,
    NOT_YOUR_ANSWER,
    answer_correction_refusal,
    mood_emoji,
    reaction_change,
    reaction_correction_refusal,
    shown_mood,
)
from bot.storage import (
    MIGRATIONS,
    SCHEMA_VERSION,
    CorrectionFilter,
    CorrectionRecord,
    GuildSettings,
    PredictionRecord,
    Storage,
    read_correction_count,
    read_corrections,
)
from bot.storage.dsn import Dsn

T0 = datetime(2024, 5, 8, 12, 30, tzinfo=UTC)
GUILD, CHANNEL, MESSAGE, ASKER, AUTHOR, MOD = 1, 10, 500, 100, 200, 300


def fix(**changes: Any) -> CorrectionRecord:
    values: dict[str, Any] = {
        "prediction_id": 1,
        "guild_id": GUILD,
        "channel_id": CHANNEL,
        "message_id": MESSAGE,
        "user_id": MOD,
        "author_id": AUTHOR,
        "source": "auto",
        "mood": "positive",
        "model_mood": "negative",
        "model_version": "test-1",
        "created_at": T0,
        "text": None,
    }
    values.update(changes)
    return CorrectionRecord(**values)


def prediction(**changes: Any) -> PredictionRecord:
    values: dict[str, Any] = {
        "guild_id": GUILD,
        "channel_id": CHANNEL,
        "message_id": MESSAGE,
        "user_id": AUTHOR,
        "source": "auto",
        "label": "negative",
        "p_positive": 0.1,
        "in_band": False,
        "model_version": "test-1",
        "created_at": T0,
    }
    values.update(changes)
    return PredictionRecord(**values)


@pytest.fixture
async def store(database: Path | Dsn) -> AsyncIterator[Storage]:
    storage = await Storage.open(database)
    yield storage
    await storage.close()


# --- storage ---------------------------------------------------------------------------------


async def test_a_correction_is_stored_and_a_second_press_changes_it(store: Storage) -> None:
    first = await store.add_correction(fix(text="so sick"))
    assert first is not None
    (row,) = await store.corrections()
    assert (row.id, row.user_id, row.author_id, row.mood, row.model_mood, row.text) == (
        first,
        MOD,
        AUTHOR,
        "positive",
        "negative",
        "so sick",
    )
    assert row.created_at == T0 and row.model_version == "test-1"
    # the same person on the same prediction: one row, the new mood
    again = await store.add_correction(fix(mood="neutral", created_at=T0 + timedelta(minutes=1)))
    assert again == first
    (row,) = await store.corrections()
    assert row.mood == "neutral" and row.text is None
    # someone else on the same prediction: a second row; the latest is what the reaction shows
    await store.add_correction(fix(user_id=MOD + 1, created_at=T0 + timedelta(minutes=2)))
    assert await store.count_corrections() == 2
    latest = await store.latest_correction(MESSAGE)
    assert latest is not None and (latest.user_id, latest.mood) == (MOD + 1, "positive")
    # a correction of a menu answer about the message does not say what the reaction shows
    await store.add_correction(
        fix(prediction_id=2, source="context_menu", mood="negative", created_at=T0 + timedelta(3))
    )
    latest = await store.latest_correction(MESSAGE)
    assert latest is not None and latest.mood == "positive"
    with_text = CorrectionFilter(with_text=True)
    assert await store.count_corrections(with_text) == 0


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"mood": "happy"}, "mood must be one of"),
        ({"model_mood": None}, "model_mood must be one of"),
        ({"source": "dm"}, "source must be one of"),
        ({"user_id": -1}, "user_id must be an integer id"),
        ({"created_at": datetime(2024, 1, 1)}, "created_at must be timezone-aware"),
    ],
)
def test_bad_corrections_are_refused_naming_the_field(change: dict[str, Any], problem: str) -> None:
    with pytest.raises((ValueError, TypeError), match=problem):
        fix(**change)


async def test_forget_me_erases_the_correctors_and_the_authors_corrections(
    store: Storage,
) -> None:
    await store.add_correction(fix())  # MOD corrects AUTHOR's words
    await store.add_correction(fix(prediction_id=2, user_id=ASKER, author_id=ASKER))
    await store.add_correction(fix(prediction_id=3, user_id=ASKER + 1, author_id=ASKER + 1))
    await store.forget_user(AUTHOR)
    assert {r.user_id for r in await store.corrections()} == {ASKER, ASKER + 1}
    await store.forget_user(ASKER)
    assert [r.user_id for r in await store.corrections()] == [ASKER + 1]
    # and from then on nothing is stored about them, as corrector or as author
    assert await store.add_correction(fix(prediction_id=9, user_id=ASKER, author_id=None)) is None
    assert await store.add_correction(fix(prediction_id=9, user_id=MOD)) is None  # AUTHOR's words
    assert await store.count_corrections() == 1


async def test_a_deleted_message_takes_its_corrections_along(store: Storage) -> None:
    await store.add_correction(fix())
    await store.add_correction(fix(prediction_id=2, message_id=MESSAGE + 1))
    await store.delete_messages([MESSAGE])
    assert [r.message_id for r in await store.corrections()] == [MESSAGE + 1]
    assert await store.add_correction(fix(user_id=MOD + 5)) is None  # deleted: refused


async def test_the_retention_purge_removes_old_corrections(store: Storage) -> None:
    await store.update_guild_settings(GUILD, retention_days=7)
    for n, days in enumerate((3, 10)):
        for guild in (GUILD, 2, None):
            await store.add_correction(
                fix(
                    prediction_id=10 * n + (guild or 0),
                    guild_id=guild,
                    created_at=T0 - timedelta(days),
                )
            )
    await store.add(prediction(created_at=T0 - timedelta(days=10)))
    # the count is of predictions, as before; corrections go by the same rule
    assert await store.purge(default_days=None, now=T0) == 1
    ages = sorted(((r.guild_id or 0), (T0 - r.created_at).days) for r in await store.corrections())
    assert ages == [(0, 3), (0, 10), (1, 3), (2, 3), (2, 10)]
    await store.purge(default_days=5, now=T0)
    ages = sorted(((r.guild_id or 0), (T0 - r.created_at).days) for r in await store.corrections())
    assert ages == [(0, 3), (1, 3), (2, 3)]


async def test_the_operator_reads_corrections_read_only(database: Path | Dsn) -> None:
    path = database
    store = await Storage.open(path)
    await store.add_correction(fix(text="first"))
    await store.add_correction(fix(prediction_id=2, guild_id=2, created_at=T0 + timedelta(1)))
    await store.close()
    rows = read_corrections(path, CorrectionFilter(), limit=10)
    assert [r.prediction_id for r in rows] == [2, 1]  # newest first
    assert read_correction_count(path, CorrectionFilter(guild_id=GUILD)) == 1
    assert [r.text for r in read_corrections(path, CorrectionFilter(with_text=True))] == ["first"]


async def test_the_migration_adds_the_table_to_an_older_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for step in MIGRATIONS[: SCHEMA_VERSION - 1]:
            for statement in step:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
        conn.execute("PRAGMA application_id = 1397050964")
    conn.close()
    store = await Storage.open(path)
    try:
        assert await store.add_correction(fix()) is not None
    finally:
        await store.close()


# --- the rules -------------------------------------------------------------------------------


def test_only_the_asker_may_say_what_they_meant() -> None:
    assert answer_correction_refusal(ASKER, ASKER) is None
    assert answer_correction_refusal(MOD, ASKER) == NOT_YOUR_ANSWER  # a moderator neither


def test_only_moderators_correct_reactions() -> None:
    assert reaction_correction_refusal(True) is None
    assert reaction_correction_refusal(False) == NOT_A_MODERATOR


def test_what_a_correction_does_to_the_reaction() -> None:
    settings = GuildSettings(guild_id=GUILD, positive_emoji="🎉", negative_emoji="😡")
    assert mood_emoji("neutral", settings) is None
    assert reaction_change("negative", "positive", settings) == ("😡", "🎉")
    assert reaction_change("negative", "neutral", settings) == ("😡", None)
    assert reaction_change("neutral", "negative", settings) == (None, "😡")
    assert reaction_change("positive", "positive", settings) == (None, None)
    assert shown_mood("negative", None) == "negative"
    assert shown_mood("negative", "positive") == "positive"


# --- the service -----------------------------------------------------------------------------


async def test_the_service_finds_the_answer_by_its_time_and_keeps_text_by_the_rules(
    store: Storage,
) -> None:
    service = CorrectionService(store)
    asked = T0 + timedelta(microseconds=123_457)
    await store.add(
        prediction(source="command", user_id=ASKER, message_id=None, created_at=asked, text="hi")
    )
    gone = await service.correct_answer(
        asker_id=ASKER, asked_at=asked + timedelta(0, 1), meant="positive"
    )
    assert not gone.stored and gone.why_not == GONE
    done = await service.correct_answer(asker_id=ASKER, asked_at=asked, meant="positive")
    assert done.stored and done.kept_text and done.model_mood == "negative"
    # a member's message in a guild that stores no text: the text is not kept
    await store.add(prediction(source="context_menu", user_id=ASKER, created_at=T0, text="x"))
    done = await service.correct_answer(asker_id=ASKER, asked_at=T0, meant="neutral")
    assert done.stored and not done.kept_text
    texts = sorted(str(r.text) for r in await store.corrections())
    assert texts == ["None", "hi"]


async def test_the_service_tells_how_the_reaction_changes(store: Storage) -> None:
    service = CorrectionService(store)
    missing = await service.correct_reaction(moderator_id=MOD, message_id=MESSAGE, meant="positive")
    assert not missing.stored and missing.why_not == NO_REACTION_ROW
    await store.add(prediction())
    done = await service.correct_reaction(moderator_id=MOD, message_id=MESSAGE, meant="positive")
    assert (done.remove, done.add, done.channel_id) == ("👎", "👍", CHANNEL)
    again = await service.correct_reaction(moderator_id=MOD, message_id=MESSAGE, meant="positive")
    assert (again.remove, again.add) == (None, None)  # already shows 👍
    await store.forget_user(MOD)
    refused = await service.correct_reaction(moderator_id=MOD, message_id=MESSAGE, meant="neutral")
    assert not refused.stored and refused.why_not == REFUSED
