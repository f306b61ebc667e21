"""A member's data (the export behind /my-data and ``sentiment-history --export-user``) and
leaving no trace (a guild's rows deleted once the bot has been gone past the grace period):
storage alone, no bot, no model."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.storage import (
    ANY_GUILD,
    GUILD_DATA,
    SECTIONS,
    CorrectionRecord,
    HistoryFilter,
    PredictionRecord,
    Storage,
    read_export,
)
from bot.storage import departures as storage_departures
from bot.storage.dsn import Dsn
from bot.storage.export import EXPORT_FORMAT, export_steps

T0 = datetime(2024, 5, 8, 12, 30, tzinfo=UTC)
GUILD, OTHER_GUILD = 1, 2
ALICE, BOB, CAROL = 111_111_111_111_111, 222_222_222_222_222, 333_333_333_333_333


def rec(**changes: Any) -> PredictionRecord:
    values: dict[str, Any] = {
        "guild_id": GUILD,
        "channel_id": 10,
        "message_id": None,
        "user_id": ALICE,
        "source": "command",
        "label": "positive",
        "p_positive": 0.9,
        "in_band": False,
        "model_version": "test-1",
        "created_at": T0,
        "text": None,
    }
    values.update(changes)
    return PredictionRecord(**values)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sentiment.db"


@pytest.fixture
def database(engine: str, db_path: Path, request: pytest.FixtureRequest) -> Path | Dsn:
    """SQLite: the file at ``db_path``; PostgreSQL: a fresh database (tests/engines.py)."""
    if engine == "sqlite":
        return db_path
    dsn: Dsn = request.getfixturevalue("fresh_postgres")
    return dsn


# A test that reads the SQLite file itself: not run on PostgreSQL.
SQLITE_ONLY = pytest.mark.engines("sqlite")


@pytest.fixture
async def store(database: Path | Dsn) -> AsyncIterator[Storage]:
    storage = await Storage.open(database)
    yield storage
    await storage.close()


async def export(store: Storage, guild_id: int | None, user_id: int) -> tuple[dict[str, Any], Any]:
    out = io.StringIO()
    summary = await store.export_member(guild_id, user_id, out.write, now=T0)
    return json.loads(out.getvalue()), summary


async def two_members(store: Storage) -> None:
    """Alice and Bob in one guild, and Alice elsewhere, each kind of row once or more."""
    for i in range(3):  # Alice's messages, read for reactions (one with its text kept)
        await store.add(
            rec(
                source="auto",
                message_id=1000 + i,
                created_at=T0 + timedelta(minutes=i),
                text="alice says hi" if i == 0 else None,
            )
        )
    await store.add(rec(text="alice typed this", private=True))  # /sentiment private
    # Alice analyses Bob's message with the menu: Bob's words
    await store.add(
        rec(source="context_menu", message_id=2000, author_id=BOB, text="bob's secret words")
    )
    # Bob analyses Alice's message privately: Alice's words, Bob's request
    await store.add(
        rec(
            source="context_menu",
            message_id=1000,
            user_id=BOB,
            author_id=ALICE,
            text="alice says hi",
            private=True,
        )
    )
    await store.add(rec(user_id=BOB, text="bob typed this"))  # Bob's own
    await store.add(rec(user_id=CAROL, source="auto", message_id=3000))  # Carol's
    await store.add(rec(guild_id=OTHER_GUILD, text="alice elsewhere"))  # Alice, other guild
    await store.add(rec(guild_id=None, text="alice in a DM"))  # Alice, direct message


# --- the export ------------------------------------------------------------------------------


def fix(**changes: Any) -> CorrectionRecord:
    values: dict[str, Any] = {
        "prediction_id": 1,
        "guild_id": GUILD,
        "channel_id": 10,
        "message_id": None,
        "user_id": ALICE,
        "author_id": ALICE,
        "source": "command",
        "mood": "positive",
        "model_mood": "negative",
        "model_version": "test-1",
        "created_at": T0,
        "text": None,
    }
    values.update(changes)
    return CorrectionRecord(**values)


async def test_the_export_holds_the_members_corrections_and_no_one_elses_words(
    store: Storage,
) -> None:
    await two_members(store)
    # Alice: "I meant positive" on her own /sentiment (her words, kept)
    assert await store.add_correction(fix(prediction_id=4, text="alice typed this")) is not None
    # Bob, a moderator, corrects the bot's reading of Alice's message: her words
    bob_on_alice = fix(
        prediction_id=2, message_id=1001, source="auto", user_id=BOB, text="alice again"
    )
    assert await store.add_correction(bob_on_alice) is not None
    # Alice, a moderator, corrects Bob's message: Bob's words
    alice_on_bob = fix(
        prediction_id=5, message_id=2000, author_id=BOB, source="auto", text="bob's secret words"
    )
    assert await store.add_correction(alice_on_bob) is not None
    # Carol's own, and Alice's in another guild: in neither export below
    assert await store.add_correction(fix(prediction_id=9, user_id=CAROL, author_id=CAROL))
    assert await store.add_correction(fix(prediction_id=10, guild_id=OTHER_GUILD, text="far"))

    alice, summary = await export(store, GUILD, ALICE)
    assert [(c["message_id"], c["text"]) for c in alice["corrections"]] == [
        (None, "alice typed this"),
        ("2000", None),  # Bob's words are not hers to take
    ]
    assert [(c["message_id"], c["text"]) for c in alice["corrections_by_others"]] == [
        ("1001", "alice again")
    ]
    assert summary.counts["corrections"] == 2 and summary.counts["corrections_by_others"] == 1
    dumped = json.dumps(alice)
    assert "bob's secret words" not in dumped and "far" not in dumped
    assert str(BOB) not in dumped and str(CAROL) not in dumped  # who corrected is not shown

    bob, _ = await export(store, GUILD, BOB)
    assert [(c["message_id"], c["text"]) for c in bob["corrections"]] == [("1001", None)]
    assert [(c["message_id"], c["text"]) for c in bob["corrections_by_others"]] == [
        ("2000", "bob's secret words")
    ]
    assert "alice" not in json.dumps(bob["corrections"])


async def test_export_holds_exactly_the_members_rows_of_this_guild(store: Storage) -> None:
    await two_members(store)
    data, summary = await export(store, GUILD, ALICE)
    assert data["format"] == EXPORT_FORMAT
    assert (data["guild_id"], data["user_id"]) == (str(GUILD), str(ALICE))
    own = data["predictions"]
    # in time order (then row order): the first message, /sentiment and the menu at T0
    assert [(p["source"], p["your_words"]) for p in own] == [
        ("auto", True),
        ("command", True),
        ("context_menu", False),  # Alice's menu on Bob's message: not her words
        ("auto", True),
        ("auto", True),
    ]
    by_others = data["predictions_by_others"]
    assert [(p["message_id"], p["text"]) for p in by_others] == [("1000", "alice says hi")]
    assert data["opt_out"] == []
    assert (
        data["counts"]
        == summary.counts
        == {
            "predictions": 5,
            "predictions_by_others": 1,
            "corrections": 0,
            "corrections_by_others": 0,
            "opt_out": 0,
        }
    )
    text = json.dumps(data)
    # nobody else's words or id, nor whether Bob asked privately; nothing of other guilds
    for foreign in ("bob's secret words", "bob typed this", str(BOB), str(CAROL), "elsewhere"):
        assert foreign not in text
    assert "private" not in by_others[0] and "user_id" not in by_others[0]
    assert {p["text"] for p in own} == {"alice says hi", None, "alice typed this"}


async def test_two_members_get_disjoint_exports(store: Storage) -> None:
    await two_members(store)
    alice, _ = await export(store, GUILD, ALICE)
    bob, _ = await export(store, GUILD, BOB)
    ids = {p["id"] for p in alice["predictions"]}
    assert ids.isdisjoint({p["id"] for p in bob["predictions"]})
    # the menu Bob ran on Alice's message: Bob's request, Alice's words: in both, each side's view
    assert [p["source"] for p in bob["predictions"]] == ["context_menu", "command"]
    menu = next(p for p in bob["predictions"] if p["source"] == "context_menu")
    assert menu["text"] is None and menu["your_words"] is False  # Alice's words: not Bob's
    assert menu["private"] is True
    assert "alice" not in json.dumps(bob)
    rows = await store.history(HistoryFilter(guild_id=GUILD), limit=100)
    alice_or_bob = [r for r in rows if ALICE in (r.user_id, r.author_id) or r.user_id == BOB]
    exported = ids | {p["id"] for p in bob["predictions"]}
    assert exported == {r.id for r in alice_or_bob}  # every row of theirs, once


async def test_export_of_direct_messages_and_opt_out(store: Storage) -> None:
    await two_members(store)
    await store.set_opt_out(ALICE, True)
    data, summary = await export(store, None, ALICE)
    assert [p["text"] for p in data["predictions"]] == ["alice in a DM"]
    assert data["opt_out"] == [{"opted_out": True, "since": data["opt_out"][0]["since"]}]
    assert summary.opted_out and summary.counts["predictions"] == 1


async def test_a_member_with_no_rows_gets_an_empty_valid_document(store: Storage) -> None:
    data, summary = await export(store, GUILD, 999)
    assert {s.name: data[s.name] for s in SECTIONS} == {s.name: [] for s in SECTIONS}
    assert set(data["about"]) == {s.name for s in SECTIONS}
    assert summary.rows == 0 and not summary.opted_out


async def test_export_pages_through_a_long_history_in_order(store: Storage) -> None:
    for i in range(1234):
        store.submit(rec(created_at=T0 + timedelta(seconds=i % 7), text=f"n{i}"))
    await store.flush()
    pages: list[int] = []
    steps = export_steps(GUILD, ALICE, now=T0, page=100)
    out = io.StringIO()
    item = next(steps)
    try:
        while True:
            if isinstance(item, str):
                out.write(item)
                item = steps.send(None)
            else:
                rows = await store._fetchall(item)
                pages.append(len(rows))
                item = steps.send(rows)
    except StopIteration as stop:
        summary = stop.value
    data = json.loads(out.getvalue())
    assert summary.counts["predictions"] == 1234 == len(data["predictions"])
    assert max(pages) == 100  # never more than a page in memory
    keys = [(p["time"], p["id"]) for p in data["predictions"]]
    assert keys == sorted(keys) and len(set(keys)) == 1234  # each row once, in time order


@SQLITE_ONLY
async def test_operator_export_reads_the_same_document_without_writing(
    store: Storage, db_path: Path
) -> None:
    await two_members(store)
    await store.flush()
    live, _ = await export(store, GUILD, ALICE)
    before = db_path.read_bytes()
    out = io.StringIO()
    summary = read_export(db_path, GUILD, ALICE, out.write, now=T0)
    assert json.loads(out.getvalue()) == live
    assert summary.counts == live["counts"]
    assert db_path.read_bytes() == before


def test_export_refuses_bad_ids() -> None:
    with pytest.raises(ValueError, match="user_id must be an integer id"):
        next(export_steps(GUILD, -1, now=T0))
    with pytest.raises(ValueError, match="timezone-aware"):
        next(export_steps(GUILD, ALICE, now=datetime(2024, 1, 1)))


# --- leaving a guild -------------------------------------------------------------------------


async def guild_rows(store: Storage, guild_id: int) -> int:
    return await store.count(HistoryFilter(guild_id=guild_id))


async def two_guilds(store: Storage) -> None:
    for guild_id in (GUILD, OTHER_GUILD):
        for i in range(7):
            await store.add(rec(guild_id=guild_id, message_id=guild_id * 100 + i, source="auto"))
        await store.set_auto_channel(guild_id, 10, True)
        await store.update_guild_settings(guild_id, positive_emoji="🎉", retention_days=365)
    await store.add(rec(guild_id=None))


async def test_departure_is_recorded_once_and_cancelled_by_a_rejoin(store: Storage) -> None:
    assert await store.guild_departure(GUILD) is None
    await store.record_guild_departure(GUILD, at=T0)
    await store.record_guild_departure(GUILD, at=T0 + timedelta(days=3))  # a replayed event
    departure = await store.guild_departure(GUILD)
    assert departure is not None and departure.left_at == T0
    assert await store.cancel_guild_departure(GUILD) is True
    assert await store.guild_departure(GUILD) is None
    assert await store.cancel_guild_departure(GUILD) is False  # nothing was pending


@SQLITE_ONLY
async def test_purge_after_grace_deletes_the_guild_and_nothing_else(
    store: Storage, db_path: Path
) -> None:
    await two_guilds(store)
    await store.record_guild_departure(GUILD, at=T0)
    # within the grace period: nothing
    assert await store.purge_departed_guilds(grace_days=30, now=T0 + timedelta(days=29)) == {}
    assert await guild_rows(store, GUILD) == 7
    # past it: every row and the settings of that guild, small batches included
    deleted = await storage_departures.purge_departed(
        store._backend, grace_days=30, now=T0 + timedelta(days=31), batch=3
    )
    store._settings.forget(GUILD)
    assert deleted == {GUILD: 7 + 1 + 1}  # predictions, the auto channel, the settings row
    assert await guild_rows(store, GUILD) == 0
    settings = await store.guild_settings(GUILD)
    assert settings.positive_emoji == "👍" and settings.auto_channels == frozenset()
    assert await store.guild_departure(GUILD) is None
    with sqlite3.connect(db_path) as conn:
        for table, column in (
            ("predictions", "guild_id"),
            ("auto_channels", "guild_id"),
            ("guild_settings", "guild_id"),
            ("guild_departures", "guild_id"),
        ):
            n = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", [GUILD]).fetchone()
            assert n == (0,), table
    # the other guild and the direct message: untouched
    assert await guild_rows(store, OTHER_GUILD) == 7
    other = await store.guild_settings(OTHER_GUILD)
    assert other.positive_emoji == "🎉" and other.auto_channels == frozenset({10})
    assert await store.count(HistoryFilter(guild_id=None)) == 1
    assert await store.count(HistoryFilter(guild_id=ANY_GUILD)) == 8


async def test_purge_through_storage_forgets_cached_settings(store: Storage) -> None:
    await two_guilds(store)
    assert (await store.guild_settings(GUILD)).positive_emoji == "🎉"  # cached
    await store.record_guild_departure(GUILD, at=T0)
    deleted = await store.purge_departed_guilds(grace_days=1, now=T0 + timedelta(days=2))
    assert list(deleted) == [GUILD]
    assert (await store.guild_settings(GUILD)).positive_emoji == "👍"


async def test_rejoin_within_grace_keeps_everything(store: Storage) -> None:
    await two_guilds(store)
    await store.record_guild_departure(GUILD, at=T0)
    await store.cancel_guild_departure(GUILD)
    assert await store.purge_departed_guilds(grace_days=30, now=T0 + timedelta(days=400)) == {}
    assert await guild_rows(store, GUILD) == 7
    assert (await store.guild_settings(GUILD)).positive_emoji == "🎉"


@SQLITE_ONLY
async def test_rejoin_while_a_purge_runs_stops_it(store: Storage) -> None:
    await two_guilds(store)
    await store.record_guild_departure(GUILD, at=T0)
    backend = store._backend
    original = backend.transaction
    calls = 0

    def rejoining_after_first_batch() -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:  # the owner re-adds the bot between two batches
            backend.transaction = original  # type: ignore[method-assign]
            conn = sqlite3.connect(store.path)
            with conn:
                conn.execute("DELETE FROM guild_departures")
            conn.close()
        return original()

    backend.transaction = rejoining_after_first_batch  # type: ignore[method-assign]
    deleted = await storage_departures.purge_departed(
        backend, grace_days=1, now=T0 + timedelta(days=2), batch=3
    )
    assert deleted == {}
    assert await guild_rows(store, GUILD) == 4  # one batch of 3 went before the re-join
    assert (await store.guild_settings(GUILD)).positive_emoji == "🎉"


async def test_guild_data_lists_every_table_with_a_guild_column(db_path: Path) -> None:
    """A new table holding guild rows must be added to GUILD_DATA (else it outlives the guild)."""
    await (await Storage.open(db_path)).close()
    with sqlite3.connect(db_path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        with_guild = {
            t
            for t in tables
            if any(c[1] == "guild_id" for c in conn.execute(f"PRAGMA table_info({t})"))
        }
    deleted = {statement.split()[2] for statement in GUILD_DATA}
    assert with_guild - {"guild_departures"} == deleted


async def test_bad_grace_days_are_refused(store: Storage) -> None:
    with pytest.raises(ValueError, match="grace_days must be a whole number of days from 1"):
        await store.purge_departed_guilds(grace_days=0)


async def test_a_guild_the_bot_is_in_is_never_deleted(store: Storage) -> None:
    await two_guilds(store)
    await store.record_guild_departure(GUILD, at=T0)
    later = T0 + timedelta(days=31)
    assert await store.purge_departed_guilds(grace_days=30, now=later, keep=[GUILD]) == {}
    assert await guild_rows(store, GUILD) == 7


async def test_reconcile_catches_up_with_what_happened_while_offline(store: Storage) -> None:
    await two_guilds(store)  # rows in GUILD and OTHER_GUILD; settings of both
    await store.update_guild_settings(3, store_auto_text=True)  # settings only
    await store.record_guild_departure(GUILD, at=T0)  # left; re-added while offline
    cancelled, recorded = await store.reconcile_guilds([GUILD], at=T0 + timedelta(days=1))
    assert (cancelled, recorded) == ([GUILD], [OTHER_GUILD, 3])
    assert await store.guild_departure(GUILD) is None
    departure = await store.guild_departure(OTHER_GUILD)
    assert departure is not None and departure.left_at == T0 + timedelta(days=1)
    # a second READY changes nothing: the first time is kept
    assert await store.reconcile_guilds([GUILD], at=T0 + timedelta(days=5)) == ([], [])
    gone = await store.purge_departed_guilds(grace_days=30, now=T0 + timedelta(days=32))
    assert sorted(gone) == [OTHER_GUILD, 3]
    assert await guild_rows(store, GUILD) == 7 and await guild_rows(store, OTHER_GUILD) == 0


async def test_a_new_per_user_table_is_one_more_section(store: Storage) -> None:
    """One Section (its query and its JSON) and the export, its counts and the summary line
    follow (as corrections were added)."""
    from bot.render import member_data_line
    from bot.storage import Section

    await two_members(store)
    notes = Section(
        name="notes",
        about="Notes about you.",
        sql="SELECT id, label FROM predictions WHERE guild_id IS ? AND user_id = ?"
        " AND id > ? ORDER BY id LIMIT ?",
        params=lambda guild_id, user_id: [guild_id, user_id],
        start=(-1,),
        key=lambda row: (row[0],),
        to_json=lambda row: {"id": row[0], "label": row[1]},
    )
    steps = export_steps(GUILD, BOB, now=T0, sections=[*SECTIONS, notes])
    out, item = io.StringIO(), next(steps)
    try:
        while True:
            if isinstance(item, str):
                out.write(item)
                item = steps.send(None)
            else:
                item = steps.send(await store._fetchall(item))
    except StopIteration as stop:
        summary = stop.value
    data = json.loads(out.getvalue())
    assert [c["label"] for c in data["notes"]] == ["positive", "positive"]
    assert data["counts"]["notes"] == 2 == summary.counts["notes"]
    line = member_data_line(summary.counts, opted_out=False, where="Test", attached="x.json")
    assert line == (
        "Everything the bot holds about you in Test: 2 predictions you made, 1 prediction by "
        "others on your messages, 0 corrections you made, 0 corrections by moderators on your "
        "messages, 2 notes; not opted out; attached: `x.json`. `/forget-me` erases it."
    )
