"""bot.storage: the prediction log and guild settings in SQLite, as a user would notice them."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import storage as storage_module
from bot.storage import (
    ANY_GUILD,
    DEFAULT_NEGATIVE_EMOJI,
    DEFAULT_POSITIVE_EMOJI,
    MIGRATIONS,
    SCHEMA_VERSION,
    GuildSettings,
    HistoryFilter,
    PredictionRecord,
    Storage,
    StorageError,
    StorageUnavailableError,
    read_count,
    read_history,
    read_mood_counts,
    read_mood_over_time,
    read_stats,
    safe_text,
)
from bot.storage import queries as storage_queries
from bot.storage import readonly as storage_readonly
from bot.storage import schema as storage_schema
from bot.storage import writer as storage_writer
from bot.storage.dsn import Dsn

T0 = datetime(2024, 5, 8, 12, 30, tzinfo=UTC)  # a Wednesday
# A test of SQLite's own mechanics (its connections, PRAGMAs, the file): not run on PostgreSQL.
SQLITE_ONLY = pytest.mark.engines("sqlite")
LOGGER = "bot.storage"


def rec(**changes: Any) -> PredictionRecord:
    values: dict[str, Any] = {
        "guild_id": 1,
        "channel_id": 10,
        "message_id": None,
        "user_id": 100,
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
    return tmp_path / "data" / "sentiment.db"


@pytest.fixture
def database(engine: str, db_path: Path, request: pytest.FixtureRequest) -> Path | Dsn:
    """SQLite: the file at ``db_path``; PostgreSQL: a fresh database (tests/engines.py)."""
    if engine == "sqlite":
        return db_path
    dsn: Dsn = request.getfixturevalue("fresh_postgres")
    return dsn


@pytest.fixture
async def store(database: Path | Dsn) -> AsyncIterator[Storage]:
    storage = await Storage.open(database)
    yield storage
    await storage.close()


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` (not a timing assertion: only a bound against hanging)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition never became true"
        await asyncio.sleep(0.005)


def plain(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def storage_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == level]


# --- opening files ---------------------------------------------------------------------------


async def test_fresh_database_is_private_wal_and_current(db_path: Path) -> None:
    storage = await Storage.open(db_path)
    try:
        assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
        await storage.add(rec())
        wal = db_path.with_name(db_path.name + "-wal")
        assert wal.exists()
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
        pragmas = {
            name: next(iter(await storage._backend.db.execute_fetchall(f"PRAGMA {name}")))[0]
            for name in ("journal_mode", "foreign_keys", "busy_timeout", "user_version")
        }
        assert pragmas == {
            "journal_mode": "wal",
            "foreign_keys": 1,
            "busy_timeout": 5000,
            "user_version": SCHEMA_VERSION,
        }
    finally:
        await storage.close()
    with plain(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


async def test_older_file_is_migrated_and_keeps_its_rows(db_path: Path) -> None:
    db_path.parent.mkdir()
    conn = plain(db_path)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO predictions (guild_id, channel_id, message_id, user_id, source, label,"
        " p_positive, in_band, model_version, created_at, text)"
        " VALUES (1, 10, 555, 100, 'auto', 'negative', 0.1, 0, 'old', ?, 'kept')",
        [T0.timestamp()],
    )
    conn.close()

    storage = await Storage.open(db_path)
    try:
        (row,) = await storage.history(HistoryFilter(guild_id=1))
        assert (row.message_id, row.label, row.text, row.created_at) == (
            555,
            "negative",
            "kept",
            T0,
        )
        settings = await storage.update_guild_settings(1, retention_days=30)  # a v2 table
        assert settings.retention_days == 30
        await storage.forget_user(7)
        assert storage.opted_out(7)
    finally:
        await storage.close()
    conn = plain(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


# A database as the binary-era bot (schema 2) left it: predictions of every kind, settings,
# channels and opt-outs. Column order as in schema 2's CREATE TABLE, without the id.
BINARY_ERA_ROWS: list[tuple[object, ...]] = [
    (1, 10, 555, 100, "auto", "negative", 0.1, 0, "old", T0.timestamp(), None),
    (1, 10, None, 100, "command", "positive", 0.9375, 0, "old", T0.timestamp() + 1.5, "yay 😄"),
    (1, 11, 556, 200, "auto", "positive", 0.55, 1, "old", T0.timestamp() + 2, None),
    (1, 11, 557, 200, "context_menu", "neutral", 0.5, 1, "old", T0.timestamp() + 3, "\u200b"),
    (None, 30, None, 100, "command", "negative", 0.0, 0, "older", 0.000001, "a\x00b"),
    (2**63 - 1, 2**63 - 1, 2**63 - 1, 2**63 - 1, "auto", "positive", 1.0, 0, "", 4e9, None),
]


def binary_era_database(path: Path) -> list[tuple[object, ...]]:
    """Create ``path`` with the schema-2 migration steps only (the previous version's DDL, run
    as the previous version ran it), fill it, and return every row of every table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = plain(path)
    for step in MIGRATIONS[:2]:
        for statement in step:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(f"PRAGMA application_id = {storage_module.APPLICATION_ID}")
    conn.executemany(
        "INSERT INTO predictions (guild_id, channel_id, message_id, user_id, source, label,"
        " p_positive, in_band, model_version, created_at, text) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        BINARY_ERA_ROWS,
    )
    conn.execute(
        "INSERT INTO guild_settings VALUES (1, '🎉', NULL, 0.3, 0.7, 1, 30)",
    )
    conn.execute("INSERT INTO auto_channels VALUES (1, 10)")
    conn.execute("INSERT INTO opt_outs VALUES (300, 1.0)")
    snapshot = dump(conn)
    conn.close()
    return snapshot


def dump(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    """Every row of the schema-2 tables, the predictions by their schema-2 columns."""
    rows: list[tuple[object, ...]] = []
    rows += conn.execute(
        "SELECT id, guild_id, channel_id, message_id, user_id, source, label, p_positive,"
        " in_band, model_version, created_at, text FROM predictions ORDER BY id"
    ).fetchall()
    for table in ("guild_settings", "auto_channels", "opt_outs"):
        rows += [(table, *row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2")]
    return rows


async def test_binary_era_database_migrates_without_changing_a_row(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = binary_era_database(db_path)
    caplog.set_level(logging.INFO, logger=LOGGER)
    storage = await Storage.open(db_path)
    try:
        assert f"Migrated {db_path} from schema 2 to {SCHEMA_VERSION}" in caplog.text
        # every old row reads back as it was written, with no three-way fields
        rows = await storage.history(HistoryFilter(guild_id=ANY_GUILD), limit=100)
        assert len(rows) == len(BINARY_ERA_ROWS)
        for row in rows:
            old = BINARY_ERA_ROWS[row.id - 1]
            assert (
                row.guild_id,
                row.channel_id,
                row.message_id,
                row.user_id,
                row.source,
                row.label,
                row.p_positive,
                int(row.in_band),
                row.model_version,
                row.created_at.timestamp(),
                row.text,
            ) == old
            assert (row.p_negative, row.p_neutral, row.unread) == (None, None, None)
            assert row.probabilities is None and row.read
            assert not row.private
        # whose words: the requester's for automatic and /sentiment rows; the one menu row
        # (message 557, never reacted to) has an unknown author
        assert {r.id: r.author_id for r in rows} == {
            1: 100,
            2: 100,
            3: 200,
            4: None,
            5: 100,
            6: 2**63 - 1,
        }
        # what the old rows meant is what they mean now: moods, filters, settings, opt-outs
        assert await storage.mood_counts(HistoryFilter(guild_id=1)) == {
            "positive": 1,
            "negative": 1,
            "neutral": 2,
            "unread": 0,
        }
        neutral = await storage.history(HistoryFilter(guild_id=1, mood="neutral"))
        assert [r.message_id for r in neutral] == [557, 556]
        settings = await storage.guild_settings(1)
        assert (settings.positive_emoji, settings.band, settings.retention_days) == (
            "🎉",
            (0.3, 0.7),
            30,
        )
        assert settings.auto_channels == frozenset({10}) and settings.store_auto_text
        assert storage.opted_out(300)
        # new rows keep the new fields, beside the old ones
        three = rec(message_id=600, p_negative=0.125, p_neutral=0.25, created_at=T0 + timedelta(1))
        unread = rec(
            message_id=601,
            label="neutral",
            p_positive=0.5,
            in_band=True,
            unread="language:fr",
            created_at=T0 + timedelta(2),
        )
        storage.start_writer()
        assert storage.submit(three) and storage.submit(unread)
        await storage.flush()
        new = {r.message_id: r for r in await storage.history(HistoryFilter(guild_id=1))}
        assert (new[600].p_negative, new[600].p_neutral, new[600].unread) == (0.125, 0.25, None)
        assert new[600].probabilities == (0.125, 0.25, 0.625)
        assert (new[601].unread, new[601].p_negative, new[601].read) == ("language:fr", None, False)
    finally:
        await storage.close()
    conn = plain(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        after = dump(conn)
        assert [r for r in after if r[0] not in (7, 8)] == before  # the two new rows aside
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
    # the operator CLI reads the migrated file too
    assert len(read_history(db_path, HistoryFilter(guild_id=ANY_GUILD), limit=100)) == 8


async def test_a_failed_migration_leaves_the_binary_era_file_as_it_was(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = binary_era_database(db_path)
    broken = (*MIGRATIONS[:2], (*MIGRATIONS[2][:2], "ALTER TABLE nowhere ADD COLUMN x"))
    monkeypatch.setattr(storage_schema, "MIGRATIONS", broken)
    with pytest.raises(StorageError, match="cannot use"):
        await Storage.open(db_path)
    conn = plain(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert dump(conn) == before
        columns = [row[1] for row in conn.execute("PRAGMA table_info(predictions)")]
        assert "p_negative" not in columns and "unread" not in columns
    finally:
        conn.close()


# A database as the three-way bot (schema 3) left it. Column order as in schema 3, without id.
SCHEMA_3_ROWS: list[tuple[object, ...]] = [
    # an automatic prediction of 200's message 700, and alice (100)'s menu on it: author 200
    (1, 10, 700, 200, "auto", "negative", 0.1, 0, "v3", T0.timestamp(), None, 0.8, 0.1, None),
    (
        1,
        10,
        700,
        100,
        "context_menu",
        "negative",
        0.1,
        0,
        "v3",
        T0.timestamp() + 1,
        "ugh",
        0.8,
        0.1,
        None,
    ),
    # a menu on a message the bot never saw (reactions off there): author unknown
    (
        1,
        11,
        701,
        100,
        "context_menu",
        "positive",
        0.9,
        0,
        "v3",
        T0.timestamp() + 2,
        "nice",
        None,
        None,
        None,
    ),
    # /sentiment, one of them private then (nothing recorded it): the requester's words
    (
        1,
        11,
        None,
        300,
        "command",
        "positive",
        0.875,
        0,
        "v3",
        T0.timestamp() + 3,
        "yay",
        0.0625,
        0.0625,
        None,
    ),
    (
        None,
        12,
        None,
        300,
        "command",
        "neutral",
        0.5,
        1,
        "v3",
        T0.timestamp() + 4,
        "hm",
        0.25,
        0.5,
        None,
    ),
    # a text the model did not read
    (
        1,
        10,
        702,
        300,
        "auto",
        "neutral",
        0.5,
        1,
        "v3",
        T0.timestamp() + 5,
        None,
        None,
        None,
        "language:fr",
    ),
]
SCHEMA_3_COLUMNS = (
    "guild_id, channel_id, message_id, user_id, source, label, p_positive, in_band,"
    " model_version, created_at, text, p_negative, p_neutral, unread"
)


def schema_3_database(path: Path) -> list[tuple[object, ...]]:
    """Create ``path`` with the schema-3 migration steps only, fill it, return every row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = plain(path)
    for step in MIGRATIONS[:3]:
        for statement in step:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    conn.execute(f"PRAGMA application_id = {storage_module.APPLICATION_ID}")
    conn.executemany(
        f"INSERT INTO predictions ({SCHEMA_3_COLUMNS}) VALUES ({', '.join('?' * 14)})",
        SCHEMA_3_ROWS,
    )
    conn.execute("INSERT INTO guild_settings VALUES (1, NULL, '😢', NULL, NULL, 1, 7)")
    conn.execute("INSERT INTO auto_channels VALUES (1, 10)")
    conn.execute("INSERT INTO opt_outs VALUES (400, 2.0)")
    snapshot = dump_3(conn)
    conn.close()
    return snapshot


def dump_3(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    """Every row of the schema-3 tables, the predictions by their schema-3 columns."""
    rows: list[tuple[object, ...]] = []
    rows += conn.execute(f"SELECT id, {SCHEMA_3_COLUMNS} FROM predictions ORDER BY id").fetchall()
    for table in ("guild_settings", "auto_channels", "opt_outs"):
        rows += [(table, *row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2")]
    return rows


async def test_schema_3_database_migrates_keeping_every_row_and_learns_whose_words(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = schema_3_database(db_path)
    caplog.set_level(logging.INFO, logger=LOGGER)
    storage = await Storage.open(db_path)
    try:
        assert f"Migrated {db_path} from schema 3 to {SCHEMA_VERSION}" in caplog.text
        rows = {r.id: r for r in await storage.history(HistoryFilter(guild_id=ANY_GUILD), limit=99)}
        assert len(rows) == len(SCHEMA_3_ROWS)
        assert rows[1].probabilities == pytest.approx((0.8, 0.1, 0.1))
        assert rows[6].unread == "language:fr"
        # auto and /sentiment: the requester's words; the menu on a message the bot reacted
        # to: that message's author; the other menu row: unknown. Nothing was private before.
        assert {i: r.author_id for i, r in rows.items()} == {
            1: 200,
            2: 200,
            3: None,
            4: 300,
            5: 300,
            6: 300,
        }
        assert not any(r.private for r in rows.values())
        settings = await storage.guild_settings(1)
        assert (settings.negative_emoji, settings.retention_days) == ("😢", 7)
        assert storage.opted_out(400)
        # forget-me of the author now also erases the menu row holding their words
        assert await storage.forget_user(200) == 2
        assert sorted(r.id for r in await storage.history(HistoryFilter(guild_id=ANY_GUILD))) == [
            3,
            4,
            5,
            6,
        ]
    finally:
        await storage.close()
    conn = plain(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        after = dump_3(conn)
        # the rest kept every value; 200 is opted out now
        assert [r for r in after if r[:2] != ("opt_outs", 200)] == [
            r for r in before if r[0] not in (1, 2)
        ]
        assert ("opt_outs", 200, ANY) in after
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()


async def test_rows_record_whose_words_and_privacy(store: Storage) -> None:
    own = rec(user_id=5, source="command", private=True)
    assert own.author_id == 5  # /sentiment: the requester's own words
    menu = rec(user_id=5, source="context_menu", message_id=9, author_id=6, private=True)
    await store.add(own)
    await store.add(menu)
    rows = await store.history(HistoryFilter(guild_id=1, user_id=5))
    assert {(r.source, r.author_id, r.private) for r in rows} == {
        ("command", 5, True),
        ("context_menu", 6, True),
    }
    with pytest.raises(ValueError, match="only context_menu rows hold someone else's words"):
        rec(user_id=5, source="auto", author_id=6)
    with pytest.raises(ValueError, match="needs the requester's user_id"):
        HistoryFilter(guild_id=1, audience="requester")


async def test_an_opted_out_authors_words_are_never_stored_nor_shown(store: Storage) -> None:
    store.start_writer()
    await store.add(rec(user_id=5, message_id=1, source="context_menu", author_id=6))
    await store.add(rec(user_id=6, message_id=2, source="auto"))
    await store.add(rec(user_id=5, message_id=3, source="context_menu", author_id=7))
    await store.add(rec(user_id=8, source="command"))
    # 6 forgets: their own row and 5's menu row on their message go
    assert await store.forget_user(6) == 2
    # and nothing holding their words is stored again, whoever asks, queued or direct
    later = rec(user_id=5, message_id=4, source="context_menu", author_id=6, text="6's words")
    assert not store.submit(later)
    assert await store.add(later) is None
    await store.flush()
    assert [r.message_id for r in await store.history(HistoryFilter(guild_id=1, user_id=5))] == [3]
    # 7 opts out without forgetting (set_opt_out): their words are kept but shown to no member
    await store.set_opt_out(7, True)
    mine = HistoryFilter(guild_id=1, user_id=5, audience="requester")
    assert await store.count(mine) == 0
    assert await store.count(HistoryFilter(guild_id=1, user_id=5)) == 1  # the operator's view


async def test_private_rows_only_in_their_requesters_own_view(store: Storage) -> None:
    await store.add(rec(user_id=5, private=True, label="negative", p_positive=0.1))
    await store.add(rec(user_id=5, message_id=9, source="context_menu", author_id=6, private=True))
    await store.add(rec(user_id=5, text="public"))
    await store.add(rec(user_id=6, source="auto", message_id=10))
    own = HistoryFilter(guild_id=1, user_id=5, audience="requester")
    assert await store.count(own) == 3
    by_moderator = HistoryFilter(guild_id=1, user_id=5, audience="others")
    assert [r.text for r in await store.history(by_moderator)] == ["public"]
    channel = HistoryFilter(guild_id=1, channel_id=10, audience="others")
    assert await store.count(channel) == 2
    assert await store.mood_counts(HistoryFilter(guild_id=1, audience="others")) == {
        "positive": 2,
        "negative": 0,
        "neutral": 0,
        "unread": 0,
    }
    over_time = await store.mood_over_time(HistoryFilter(guild_id=1, audience="others"))
    assert [counts["negative"] for _, counts in over_time] == [0]
    assert read_count(store.path, channel) == 2  # the operator CLI's helpers: the same SQL
    assert await store.count(HistoryFilter(guild_id=1)) == 4  # the operator sees every row


async def test_three_way_probabilities_and_unread_reasons_round_trip(store: Storage) -> None:
    records = [
        rec(message_id=1, p_negative=0.1, p_neutral=0.2, p_positive=0.875),
        rec(message_id=2, label="neutral", in_band=True, p_negative=0.05, p_neutral=0.9),
        rec(message_id=3, label="negative", p_positive=0.0, p_negative=1.0, p_neutral=0.0),
        rec(message_id=4),  # a binary model's
        *(
            rec(message_id=5 + i, label="neutral", p_positive=0.5, in_band=True, unread=reason)
            for i, reason in enumerate(["empty", "unknown", "language:fr", "language:zh"])
        ),
    ]
    for i, record in enumerate(records):
        await store.add(replace(record, created_at=T0 + timedelta(minutes=i)))
    rows = {r.message_id: r for r in await store.history(HistoryFilter(guild_id=1), limit=20)}
    for record in records:
        stored = rows[record.message_id]
        assert (stored.p_negative, stored.p_neutral, stored.unread) == (
            record.p_negative,
            record.p_neutral,
            record.unread,
        )
    assert read_history(store.path, HistoryFilter(guild_id=1), limit=20) == await store.history(
        HistoryFilter(guild_id=1), limit=20
    )
    # a text not read counts under no mood, and no mood filter finds it
    flt = HistoryFilter(guild_id=1)
    assert await store.mood_counts(flt) == {
        "positive": 2,
        "negative": 1,
        "neutral": 1,
        "unread": 4,
    }
    assert read_mood_counts(store.path, flt) == await store.mood_counts(flt)
    assert await ids(store, replace(flt, mood="neutral")) == [2]
    assert await ids(store, replace(flt, mood="positive")) == [4, 1]
    assert await store.count(flt) == 8
    (bucket,) = await store.mood_over_time(flt, bucket="day")
    assert bucket[1] == {"positive": 2, "negative": 1, "neutral": 1, "unread": 4}


@SQLITE_ONLY  # its PostgreSQL counterpart: tests/test_postgres.py
async def test_the_database_refuses_inconsistent_three_way_rows(store: Storage) -> None:
    """The CHECK constraints hold even for a writer that skips PredictionRecord's checks."""
    good = storage_writer._record_params(rec(p_negative=0.5, p_neutral=0.25))
    bad_rows = {
        "one probability alone": (*good[:11], 0.5, None, None, *good[14:]),
        "a probability above 1": (*good[:11], 1.5, 0.0, None, *good[14:]),
        "more than 1 in all": (*good[:11], 0.75, 0.5, None, *good[14:]),
        "an unknown reason": (*good[:11], None, None, "because", *good[14:]),
        "probabilities of a text not read": (*good[:11], 0.5, 0.25, "empty", *good[14:]),
        "private neither yes nor no": (*good[:15], 2),
    }
    for what, row in bad_rows.items():
        with pytest.raises(sqlite3.IntegrityError):
            await store._backend.db.execute(storage_writer._INSERT_SQL, row)
        assert await store.count(HistoryFilter(guild_id=1)) == 0, what
    await store._backend.db.execute(storage_writer._INSERT_SQL, good)
    assert await store.count(HistoryFilter(guild_id=1)) == 1


async def test_newer_file_is_refused_and_untouched(db_path: Path) -> None:
    storage = await Storage.open(db_path)
    await storage.add(rec(text="precious"))
    await storage.close()
    conn = plain(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = db_path.read_bytes()

    with pytest.raises(StorageError) as caught:
        await Storage.open(db_path)
    message = str(caught.value)
    assert str(db_path) in message
    assert f"newer Sentiment Bot (schema {SCHEMA_VERSION + 1}, this version knows" in message
    assert f"knows {SCHEMA_VERSION}); upgrade or point SENTIMENT_DB at another file" in message
    with pytest.raises(StorageError, match="newer Sentiment Bot"):
        read_history(db_path, HistoryFilter(guild_id=ANY_GUILD))
    assert db_path.read_bytes() == before


@pytest.mark.parametrize(
    "content", [b"my diary: today was a good day\n" * 20, b"\x00\x01binary junk" * 100]
)
async def test_non_sqlite_file_is_refused_and_untouched(db_path: Path, content: bytes) -> None:
    db_path.parent.mkdir()
    db_path.write_bytes(content)
    with pytest.raises(StorageError) as caught:
        await Storage.open(db_path)
    message = str(caught.value)
    assert str(db_path) in message
    assert "not a SQLite database" in message
    assert "move it aside or restore a backup" in message
    assert db_path.read_bytes() == content
    assert sorted(p.name for p in db_path.parent.iterdir()) == [db_path.name]
    with pytest.raises(StorageError, match="not a SQLite database"):
        read_count(db_path, HistoryFilter(guild_id=1))


async def test_other_programs_database_is_refused_and_untouched(db_path: Path) -> None:
    db_path.parent.mkdir()
    conn = plain(db_path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.close()
    before = db_path.read_bytes()
    with pytest.raises(StorageError, match="not a Sentiment Bot one"):
        await Storage.open(db_path)
    assert db_path.read_bytes() == before


async def test_folder_in_place_of_the_file_is_refused(db_path: Path) -> None:
    db_path.mkdir(parents=True)
    with pytest.raises(StorageError, match="is a folder"):
        await Storage.open(db_path)


def test_read_only_helpers_never_create_a_file(db_path: Path) -> None:
    with pytest.raises(StorageError, match="no database at"):
        read_history(db_path, HistoryFilter(guild_id=1))
    assert not db_path.exists()


# --- records ---------------------------------------------------------------------------------


def test_records_are_validated_with_clear_messages() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        rec(created_at=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="source must be one of"):
        rec(source="webhook")
    with pytest.raises(ValueError, match="label must be one of"):
        rec(label="meh")
    with pytest.raises(ValueError, match=r"p_positive must lie in \[0, 1\]"):
        rec(p_positive=1.5)
    with pytest.raises(ValueError, match="p_positive"):
        rec(p_positive=float("nan"))
    with pytest.raises(ValueError, match="user_id"):
        rec(user_id=2**64)
    with pytest.raises(ValueError, match="timezone-aware"):
        HistoryFilter(guild_id=1, since=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match=r"since .* is after until"):
        HistoryFilter(guild_id=1, since=T0, until=T0 - timedelta(1))
    assert rec(in_band=True).mood == "neutral"
    assert rec(label="negative").mood == "negative"
    # a three-way model's probabilities: both or neither, each in [0, 1], P(positive) >= 0
    with pytest.raises(ValueError, match="p_negative and p_neutral go together"):
        rec(p_negative=0.2)
    with pytest.raises(ValueError, match="p_negative and p_neutral go together"):
        rec(p_neutral=0.2)
    with pytest.raises(ValueError, match=r"p_neutral must lie in \[0, 1\]"):
        rec(p_negative=0.1, p_neutral=-0.1)
    with pytest.raises(ValueError, match="p_negative must lie"):
        rec(p_negative=float("nan"), p_neutral=0.1)
    with pytest.raises(TypeError, match="p_negative must be a float"):
        rec(p_negative=True, p_neutral=0.0)
    with pytest.raises(ValueError, match=r"p_negative \+ p_neutral must be at most 1"):
        rec(p_negative=0.7, p_neutral=0.4)
    # why a text was not read: a known reason, and then no probabilities
    for bad in ("", "french", "language:", "language:f r", "EMPTY", 3):
        with pytest.raises(ValueError, match="unread must be None, 'empty', 'unknown'"):
            rec(label="neutral", in_band=True, unread=bad)
    with pytest.raises(ValueError, match="has no probabilities"):
        rec(unread="language:fr", p_negative=0.1, p_neutral=0.1)
    three = rec(p_negative=0.25, p_neutral=0.5, p_positive=0.5)
    assert three.probabilities == (0.25, 0.5, 0.25) and three.read
    assert rec().probabilities is None  # a binary model's
    assert rec(p_negative=0.6, p_neutral=0.4 + 1e-9).probabilities == (0.6, 0.4 + 1e-9, 0.0)
    unread = rec(label="neutral", p_positive=0.5, in_band=True, unread="language:fr")
    assert not unread.read and unread.mood == "neutral" and unread.probabilities is None
    assert rec(created_at=T0.astimezone(timezone(timedelta(hours=-5)))).created_at.tzinfo is UTC


async def test_times_round_trip_to_the_microsecond_in_utc(store: Storage) -> None:
    moment = datetime(2031, 2, 3, 4, 5, 6, 789012, tzinfo=timezone(timedelta(hours=9)))
    await store.add(rec(created_at=moment))
    (row,) = await store.history(HistoryFilter(guild_id=1))
    assert row.created_at == moment
    assert row.created_at.tzinfo is UTC


# --- the writer ------------------------------------------------------------------------------


@SQLITE_ONLY  # its PostgreSQL counterpart: tests/test_postgres.py
async def test_writer_writes_submitted_records_in_batches(
    store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    real = store._backend.db.executemany

    def spy(sql: str, rows: list[tuple[object, ...]]) -> Any:
        sizes.append(len(rows))
        return real(sql, rows)

    monkeypatch.setattr(store._backend.db, "executemany", spy)
    store.start_writer(batch_size=100, flush_interval=60)
    for i in range(250):
        assert store.submit(rec(user_id=i))
    assert store.writer_stats.pending == 250
    await store.flush()
    assert await store.count(HistoryFilter(guild_id=1)) == 250
    assert sizes == [100, 100, 50]
    stats = store.writer_stats
    assert (stats.pending, stats.written, stats.batches, stats.failed_batches) == (0, 250, 3, 0)


async def test_writer_writes_within_the_flush_interval_without_flush(store: Storage) -> None:
    store.start_writer(flush_interval=0.01)
    store.submit(rec())
    await wait_until(lambda: store.writer_stats.written == 1)
    assert await store.count(HistoryFilter(guild_id=1)) == 1


async def test_full_batch_is_written_before_the_interval(store: Storage) -> None:
    store.start_writer(batch_size=5, flush_interval=3600)
    for i in range(5):
        store.submit(rec(user_id=i))
    await wait_until(lambda: store.writer_stats.written == 5)


@pytest.mark.parametrize("with_writer", [True, False])
async def test_close_writes_everything_queued(database: Path | Dsn, with_writer: bool) -> None:
    storage = await Storage.open(database)
    if with_writer:
        storage.start_writer(flush_interval=3600)
    for i in range(30):
        storage.submit(rec(user_id=i))
    await storage.close()
    await storage.close()  # harmless
    with pytest.raises(StorageError, match="closed"):
        storage.submit(rec())
    assert read_count(database, HistoryFilter(guild_id=1)) == 30


async def test_flush_without_a_writer_writes_the_queue(store: Storage) -> None:
    for i in range(3):
        store.submit(rec(user_id=i))
    assert await store.count(HistoryFilter(guild_id=1)) == 0
    await store.flush()
    assert await store.count(HistoryFilter(guild_id=1)) == 3
    assert store.writer_stats.pending == 0


async def test_close_gives_up_after_its_timeout_and_says_what_was_lost(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = await Storage.open(db_path, busy_timeout=0.01)
    storage.start_writer(flush_interval=0, retry_initial=0.01, retry_max=0.01)
    other = plain(db_path)
    other.execute("BEGIN IMMEDIATE")  # held for good
    try:
        for i in range(7):
            storage.submit(rec(user_id=i))
        await asyncio.wait_for(storage.close(timeout=0.2), 10)
    finally:
        other.rollback()
        other.close()
    (error,) = storage_records(caplog, logging.ERROR)
    assert "7 predictions not written" in error.getMessage()


async def test_locked_database_is_retried_and_logged_once(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    storage = await Storage.open(db_path, busy_timeout=0.02)
    try:
        storage.start_writer(flush_interval=0, retry_initial=0.01, retry_max=0.02)
        other = plain(db_path)  # another process holds the write lock
        other.execute("BEGIN IMMEDIATE")
        for i in range(10):
            storage.submit(rec(user_id=i))
        flushing = asyncio.create_task(storage.flush())
        await wait_until(lambda: storage.writer_stats.failed_batches >= 3)
        assert not flushing.done()
        assert storage.writer_stats.failing
        assert storage.writer_stats.pending == 10
        other.rollback()
        other.close()
        await asyncio.wait_for(flushing, 10)
        assert await storage.count(HistoryFilter(guild_id=1)) == 10
        assert not storage.writer_stats.failing
    finally:
        await storage.close()
    warnings = storage_records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert "database is locked" in warnings[0].getMessage()
    assert "retrying" in warnings[0].getMessage()
    assert any("works again" in r.getMessage() for r in storage_records(caplog, logging.INFO))


@SQLITE_ONLY  # its PostgreSQL counterpart: tests/test_postgres.py
async def test_each_failure_streak_logs_one_warning(
    store: Storage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = store._backend.db.executemany
    failures = iter([True, True, False, True, True, True, False])

    def flaky(sql: str, rows: list[tuple[object, ...]]) -> Any:
        if next(failures):
            raise sqlite3.OperationalError("database or disk is full")
        return real(sql, rows)

    monkeypatch.setattr(store._backend.db, "executemany", flaky)
    store.start_writer(retry_initial=0.001, retry_max=0.002)
    store.submit(rec(user_id=1))
    await store.flush()
    store.submit(rec(user_id=2))
    await store.flush()
    assert await store.count(HistoryFilter(guild_id=1)) == 2
    assert store.writer_stats.failed_batches == 5
    warnings = storage_records(caplog, logging.WARNING)
    assert len(warnings) == 2
    assert all("database or disk is full" in w.getMessage() for w in warnings)


async def test_a_row_the_database_refuses_does_not_block_the_others(
    store: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    bad = rec(user_id=2)
    object.__setattr__(bad, "label", "bogus")  # slips past validation; the CHECK refuses it
    store.start_writer()
    store.submit(rec(user_id=1))
    store.submit(bad)
    store.submit(rec(user_id=3))
    await store.flush()
    rows = await store.history(HistoryFilter(guild_id=1))
    assert sorted(r.user_id for r in rows) == [1, 3]
    assert store.writer_stats.rejected == 1
    assert len(storage_records(caplog, logging.ERROR)) == 1


# --- queries ---------------------------------------------------------------------------------


async def seed(store: Storage) -> None:
    """Guild 1: users 100/200 in channels 10/11; guild 2; a DM; one hour apart each."""
    rows = [
        rec(user_id=100, channel_id=10, label="positive", p_positive=0.9),
        rec(user_id=100, channel_id=11, label="negative", p_positive=0.1),
        rec(user_id=200, channel_id=10, label="positive", p_positive=0.55, in_band=True),
        rec(user_id=200, channel_id=11, label="negative", p_positive=0.05),
        rec(user_id=100, channel_id=10, label="neutral", p_positive=0.5, in_band=True),
        rec(guild_id=2, user_id=100, channel_id=20, label="positive"),
        rec(guild_id=None, user_id=100, channel_id=30, label="negative", p_positive=0.2),
    ]
    for i, row in enumerate(rows):
        await store.add(replace(row, created_at=T0 + timedelta(hours=i), message_id=1000 + i))


async def ids(store: Storage, flt: HistoryFilter, **kw: int) -> list[int | None]:
    return [r.message_id for r in await store.history(flt, **kw)]


async def test_history_filters_and_counts(store: Storage) -> None:
    await seed(store)
    g1 = HistoryFilter(guild_id=1)
    assert await ids(store, g1) == [1004, 1003, 1002, 1001, 1000]  # newest first
    assert await store.count(g1) == 5
    cases: list[tuple[HistoryFilter, list[int]]] = [
        (replace(g1, user_id=100), [1004, 1001, 1000]),
        (replace(g1, channel_id=11), [1003, 1001]),
        (replace(g1, user_id=200, channel_id=10), [1002]),
        (replace(g1, mood="positive"), [1000]),  # 1002 is positive but in the band
        (replace(g1, mood="negative"), [1003, 1001]),
        (replace(g1, mood="neutral"), [1004, 1002]),
        (replace(g1, since=T0 + timedelta(hours=1)), [1004, 1003, 1002, 1001]),  # inclusive
        (replace(g1, until=T0 + timedelta(hours=1)), [1000]),  # exclusive
        (replace(g1, since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3)), [1002, 1001]),
        (HistoryFilter(guild_id=2), [1005]),
        (HistoryFilter(guild_id=None), [1006]),  # direct messages
        (HistoryFilter(guild_id=ANY_GUILD, user_id=100), [1006, 1005, 1004, 1001, 1000]),
        (HistoryFilter(guild_id=3), []),
    ]
    for flt, expected in cases:
        assert await ids(store, flt) == expected, flt
        assert await store.count(flt) == len(expected), flt


async def test_history_pages_newest_first_without_gaps(store: Storage) -> None:
    for i in range(25):  # five predictions share each timestamp: ties broken by newest row
        await store.add(rec(message_id=i, created_at=T0 + timedelta(minutes=i // 5)))
    flt = HistoryFilter(guild_id=1)
    pages = [await ids(store, flt, limit=10, offset=offset) for offset in (0, 10, 20)]
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [i for page in pages for i in page] == list(range(24, -1, -1))
    assert await store.history(flt, limit=0) == []
    with pytest.raises(ValueError, match="offset must be a non-negative integer"):
        await store.history(flt, offset=-1)


async def test_mood_counts(store: Storage) -> None:
    await seed(store)
    assert await store.mood_counts(HistoryFilter(guild_id=1)) == {
        "positive": 1,
        "negative": 2,
        "neutral": 2,
        "unread": 0,
    }
    assert await store.mood_counts(HistoryFilter(guild_id=1, user_id=200)) == {
        "positive": 0,
        "negative": 1,
        "neutral": 1,
        "unread": 0,
    }
    assert await store.mood_counts(HistoryFilter(guild_id=9)) == {
        "positive": 0,
        "negative": 0,
        "neutral": 0,
        "unread": 0,
    }


async def test_mood_over_time_buckets_in_utc(store: Storage) -> None:
    monday = datetime(2024, 5, 6, tzinfo=UTC)
    times_and_labels = [
        (monday + timedelta(hours=1, minutes=5), "positive"),
        (monday + timedelta(hours=1, minutes=55), "negative"),
        (monday + timedelta(days=1, hours=3), "positive"),
        (monday + timedelta(days=6, hours=23, minutes=59), "positive"),  # Sunday night
        (monday + timedelta(days=7), "negative"),  # next Monday 00:00
    ]
    for moment, label in times_and_labels:
        await store.add(rec(created_at=moment, label=label))
    flt = HistoryFilter(guild_id=1)

    def c(pos: int = 0, neg: int = 0, neu: int = 0) -> dict[str, int]:
        return {"positive": pos, "negative": neg, "neutral": neu, "unread": 0}

    assert await store.mood_over_time(flt, bucket="hour") == [
        (monday + timedelta(hours=1), c(1, 1)),
        (monday + timedelta(days=1, hours=3), c(1)),
        (monday + timedelta(days=6, hours=23), c(1)),
        (monday + timedelta(days=7), c(neg=1)),
    ]
    assert await store.mood_over_time(flt) == [
        (monday, c(1, 1)),
        (monday + timedelta(days=1), c(1)),
        (monday + timedelta(days=6), c(1)),
        (monday + timedelta(days=7), c(neg=1)),
    ]
    assert await store.mood_over_time(flt, bucket="week") == [
        (monday, c(3, 1)),
        (monday + timedelta(days=7), c(neg=1)),
    ]
    since = monday + timedelta(days=1)
    assert await store.mood_over_time(replace(flt, since=since), bucket="week") == [
        (monday, c(2)),
        (monday + timedelta(days=7), c(neg=1)),
    ]
    with pytest.raises(ValueError, match="bucket must be one of"):
        await store.mood_over_time(flt, bucket="month")  # type: ignore[arg-type]


@SQLITE_ONLY  # its PostgreSQL counterpart: tests/test_postgres.py
async def test_history_queries_use_an_index(store: Storage) -> None:
    filters = [
        HistoryFilter(guild_id=1),
        HistoryFilter(guild_id=None, user_id=5),
        HistoryFilter(guild_id=1, user_id=5, since=T0, until=T0 + timedelta(1)),
        HistoryFilter(guild_id=1, channel_id=5, since=T0, mood="neutral"),
        HistoryFilter(guild_id=1, until=T0),
        HistoryFilter(guild_id=ANY_GUILD, user_id=5, since=T0),
        HistoryFilter(guild_id=ANY_GUILD, since=T0, until=T0 + timedelta(1)),
    ]
    for flt in filters:
        for sql, params in (
            storage_queries.history_query(flt, 10, 0),
            storage_queries.count_query(flt),
            storage_queries.mood_counts_query(flt),
            storage_queries.mood_over_time_query(flt, "day"),
        ):
            plan = [
                row[3]
                for row in await store._backend.db.execute_fetchall(
                    f"EXPLAIN QUERY PLAN {sql}", params
                )
            ]
            assert any("predictions USING" in step for step in plan), (flt, plan)
            assert not any(step == "SCAN predictions" for step in plan), (flt, plan)


# --- idempotency, deletion, privacy ----------------------------------------------------------


async def test_automatic_prediction_is_stored_once_per_message(store: Storage) -> None:
    auto = rec(source="auto", message_id=77)
    assert not await store.has_auto_prediction(77)
    assert await store.add(auto) is not None
    assert await store.add(auto) is None  # gateway replay
    store.start_writer()
    store.submit(auto)
    store.submit(replace(auto, p_positive=0.8))
    await store.flush()
    assert await store.count(HistoryFilter(guild_id=1)) == 1
    assert store.writer_stats.duplicates == 3
    assert await store.has_auto_prediction(77)
    # Only automatic predictions are deduplicated: asking about a message twice is two rows.
    await store.add(rec(source="context_menu", message_id=77))
    await store.add(rec(source="context_menu", message_id=77))
    assert await store.count(HistoryFilter(guild_id=1)) == 3


async def test_queued_automatic_prediction_counts_as_present(store: Storage) -> None:
    store.submit(rec(source="auto", message_id=88))  # no writer: stays queued
    assert await store.has_auto_prediction(88)
    assert not await store.has_auto_prediction(89)


async def test_delete_messages_removes_stored_and_queued_rows(store: Storage) -> None:
    await store.add(rec(message_id=1, source="auto"))
    await store.add(rec(message_id=1, source="context_menu"))
    await store.add(rec(message_id=2, source="auto"))
    store.start_writer(flush_interval=3600)
    assert store.submit(rec(message_id=3, source="auto"))  # queued, not yet written
    # the queued one lands first and is counted among the deleted rows
    assert await store.delete_messages([1, 3, 3, 999]) == 3
    assert await ids(store, HistoryFilter(guild_id=1)) == [2]
    # A late classification of a deleted message is not stored.
    assert not store.submit(rec(message_id=3, source="auto"))
    assert await store.add(rec(message_id=1, source="auto")) is None
    await store.flush()
    assert await ids(store, HistoryFilter(guild_id=1)) == [2]
    assert await store.delete_messages([]) == 0


async def test_forget_user_deletes_everywhere_and_opts_out_across_restarts(
    database: Path | Dsn,
) -> None:
    storage = await Storage.open(database)
    await storage.add(rec(user_id=5, guild_id=1))
    await storage.add(rec(user_id=5, guild_id=2))
    await storage.add(rec(user_id=5, guild_id=None))
    await storage.add(rec(user_id=6, guild_id=1))
    storage.start_writer(flush_interval=3600)
    storage.submit(rec(user_id=5, guild_id=1))  # queued: written, then deleted and counted
    assert await storage.forget_user(5) == 4
    assert not storage.submit(rec(user_id=5))
    assert await storage.add(rec(user_id=5)) is None
    assert storage.opted_out(5)
    assert await storage.is_opted_out(5)
    assert not storage.opted_out(6)
    await storage.close()

    assert read_count(database, HistoryFilter(guild_id=ANY_GUILD, user_id=5)) == 0
    assert read_count(database, HistoryFilter(guild_id=ANY_GUILD)) == 1
    storage = await Storage.open(database)
    try:
        assert storage.opted_out(5)
        assert not storage.submit(rec(user_id=5))
        await storage.set_opt_out(5, False)
        assert storage.submit(rec(user_id=5))
        await storage.flush()
    finally:
        await storage.close()
    storage = await Storage.open(database)
    try:
        assert not await storage.is_opted_out(5)
        assert await storage.count(HistoryFilter(guild_id=ANY_GUILD, user_id=5)) == 1
        await storage.set_opt_out(6, True)
    finally:
        await storage.close()
    storage = await Storage.open(database)
    try:
        assert storage.opted_out(6)
        assert await storage.count(HistoryFilter(guild_id=ANY_GUILD, user_id=6)) == 1  # kept
    finally:
        await storage.close()


async def test_purge_uses_each_guilds_retention_or_the_default(store: Storage) -> None:
    now = T0
    await store.update_guild_settings(1, retention_days=7)
    await store.update_guild_settings(3, retention_days=365)  # longer than the default
    for guild in (1, 2, 3, None):
        for days in (3, 10, 40):
            await store.add(rec(guild_id=guild, created_at=now - timedelta(days=days)))

    async def ages(guild: int | None) -> list[int]:
        rows = await store.history(HistoryFilter(guild_id=guild))
        return sorted((now - r.created_at).days for r in rows)

    assert await store.purge(default_days=None, now=now) == 2  # only guild 1 has a limit
    assert await ages(1) == [3]
    assert await ages(2) == [3, 10, 40]
    assert await store.purge(default_days=30, now=now) == 2  # guild 2 and the DM
    assert (await ages(1), await ages(2), await ages(3), await ages(None)) == (
        [3],
        [3, 10],
        [3, 10, 40],
        [3, 10],
    )
    assert await store.purge(default_days=30, now=now) == 0
    with pytest.raises(ValueError, match="default_days must be a whole number of days"):
        await store.purge(default_days=0)


# --- settings --------------------------------------------------------------------------------


async def test_guild_settings_defaults_updates_and_persistence(database: Path | Dsn) -> None:
    storage = await Storage.open(database)
    try:
        assert await storage.guild_settings(1) == GuildSettings(guild_id=1)
        defaults = await storage.guild_settings(1)
        assert (defaults.positive_emoji, defaults.negative_emoji) == (
            DEFAULT_POSITIVE_EMOJI,
            DEFAULT_NEGATIVE_EMOJI,
        )
        assert defaults.band is None and defaults.retention_days is None
        assert not defaults.store_auto_text and defaults.auto_channels == frozenset()

        updated = await storage.update_guild_settings(
            1, positive_emoji="🎉", band=(0.4, 0.6), store_auto_text=True, retention_days=90
        )
        assert updated == GuildSettings(1, "🎉", DEFAULT_NEGATIVE_EMOJI, (0.4, 0.6), True, 90)
        assert await storage.guild_settings(1) == updated  # the cache was refreshed
        await storage.set_auto_channel(1, 10, True)
        await storage.set_auto_channel(1, 11, True)
        await storage.set_auto_channel(1, 11, True)  # twice is fine
        assert (await storage.guild_settings(1)).auto_channels == {10, 11}
        after = await storage.set_auto_channel(1, 10, False)
        assert after.auto_channels == {11}
        await storage.set_auto_channel(2, 20, True)  # a guild with no settings row yet
        assert (await storage.guild_settings(2)).auto_channels == {20}
        assert (await storage.guild_settings(3)).auto_channels == frozenset()
    finally:
        await storage.close()

    storage = await Storage.open(database)
    try:
        settings = await storage.guild_settings(1)
        assert settings == GuildSettings(1, "🎉", "👎", (0.4, 0.6), True, 90, frozenset({11}))
        reset = await storage.update_guild_settings(1, band="reset", retention_days="reset")
        assert (reset.band, reset.retention_days, reset.positive_emoji) == (None, None, "🎉")
    finally:
        await storage.close()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"band": (0.6, 0.7)}, "0 <= low <= 0.5 <= high <= 1"),
        ({"band": (0.4, 1.2)}, "0 <= low <= 0.5 <= high <= 1"),
        ({"band": (0.45, float("nan"))}, "0 <= low <= 0.5 <= high <= 1"),
        ({"band": ("low", "high")}, "band must be a pair of numbers"),
        ({"retention_days": 0}, "retention_days must be a whole number of days from 1"),
        ({"retention_days": 2.5}, "retention_days must be a whole number"),
        ({"positive_emoji": "  "}, "positive_emoji must be a non-empty emoji"),
        ({"negative_emoji": "x" * 500}, "negative_emoji is too long"),
    ],
)
async def test_bad_settings_are_refused_and_change_nothing(
    store: Storage, changes: dict[str, Any], message: str
) -> None:
    before = await store.update_guild_settings(1, band=(0.3, 0.7), retention_days=5)
    with pytest.raises(ValueError, match=message):
        await store.update_guild_settings(1, store_auto_text=True, **changes)
    assert await store.guild_settings(1) == before


@SQLITE_ONLY  # its PostgreSQL counterpart: tests/test_postgres.py
async def test_settings_are_served_from_memory(
    store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.set_auto_channel(1, 10, True)
    first = await store.guild_settings(1)

    def no_disk(*args: object) -> Awaitable[object]:
        raise AssertionError("the hot path read the disk")

    for connection in (store._backend.db, store._backend.reader):
        monkeypatch.setattr(connection, "execute_fetchall", no_disk)
    for _ in range(3):
        assert await store.guild_settings(1) is first


# --- text ------------------------------------------------------------------------------------


@SQLITE_ONLY  # its PostgreSQL counterpart: tests/test_postgres.py
async def test_sql_looking_text_is_stored_verbatim(store: Storage) -> None:
    texts = [
        "'); DROP TABLE predictions; --",
        "Robert'); DELETE FROM opt_outs WHERE ('1'='1",
        '%s %d ? :name $1 \\ " ` ;',
        "a\x00b",
    ]
    for i, text in enumerate(texts):
        await store.add(rec(message_id=i, text=text, model_version="v'1; --"))
    rows = await store.history(HistoryFilter(guild_id=1), limit=100)
    assert sorted((r.message_id, r.text) for r in rows) == list(enumerate(texts))
    assert {r.model_version for r in rows} == {"v'1; --"}
    assert await store.count(HistoryFilter(guild_id=1)) == 4


_ALPHABET = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),  # lone surrogates: not encodable as UTF-8
    st.sampled_from(["\x00", "'", '"', ";", "-", "\\", "%", "?", "😄", "\u200d", "`"]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(st.text(_ALPHABET, max_size=60), min_size=1, max_size=8))
def test_any_text_round_trips_to_its_safe_form(tmp_path: Path, texts: list[str]) -> None:
    async def scenario() -> list[str | None]:
        storage = await Storage.open(tmp_path / f"prop-{os.urandom(6).hex()}.db")
        try:
            for i, text in enumerate(texts):
                await storage.add(rec(message_id=i, text=text, created_at=T0 + timedelta(i)))
            rows = await storage.history(HistoryFilter(guild_id=1), limit=len(texts))
            return [r.text for r in reversed(rows)]
        finally:
            await storage.close()

    stored = asyncio.run(scenario())
    assert stored == [safe_text(t) for t in texts]
    for original, kept in zip(texts, stored, strict=True):
        assert kept is not None and len(kept) == len(original)
        if not any(0xD800 <= ord(ch) <= 0xDFFF for ch in original):
            assert kept == original  # exact for everything UTF-8 can hold, NUL included


def test_safe_text_replaces_only_surrogates() -> None:
    assert safe_text("ok \x00 😄") == "ok \x00 😄"
    assert safe_text("a\ud800b\udfff") == "a\ufffdb\ufffd"


# --- read-only helpers -----------------------------------------------------------------------


async def test_read_only_helpers_match_the_async_queries(store: Storage) -> None:
    await seed(store)
    filters = [
        HistoryFilter(guild_id=1),
        HistoryFilter(guild_id=1, user_id=100, mood="neutral"),
        HistoryFilter(guild_id=ANY_GUILD, since=T0 + timedelta(hours=2)),
        HistoryFilter(guild_id=None),
    ]
    for flt in filters:
        assert read_history(store.path, flt, limit=3, offset=1) == await store.history(
            flt, limit=3, offset=1
        )
        assert read_count(store.path, flt) == await store.count(flt)
        assert read_mood_counts(store.path, flt) == await store.mood_counts(flt)
        assert read_mood_over_time(store.path, flt, bucket="hour") == await store.mood_over_time(
            flt, bucket="hour"
        )
    sync_stats, async_stats = read_stats(store.path), await store.stats()
    assert sync_stats.rows == async_stats.rows == 7
    assert sync_stats.rows_by_source == async_stats.rows_by_source
    assert sync_stats.rows_by_source == {"auto": 0, "command": 7, "context_menu": 0}
    assert (sync_stats.oldest, sync_stats.newest) == (T0, T0 + timedelta(hours=6))
    assert sync_stats.schema_version == SCHEMA_VERSION
    assert async_stats.size_bytes > 0


def test_read_only_helpers_cannot_write(db_path: Path) -> None:
    async def make() -> None:
        storage = await Storage.open(db_path)
        await storage.add(rec())
        await storage.close()

    asyncio.run(make())
    with (
        storage_readonly._open_readonly(db_path) as (conn, _, _),
        pytest.raises(sqlite3.OperationalError, match="readonly"),
    ):
        conn.execute("DELETE FROM predictions")
    assert read_count(db_path, HistoryFilter(guild_id=1)) == 1


# --- durability, corruption, file identity, bounded backlog (issue 11) --------------------------


@SQLITE_ONLY  # its PostgreSQL counterpart: tests/test_postgres.py
async def test_save_returns_once_the_row_is_committed_and_batches_concurrent_saves(
    store: Storage, db_path: Path
) -> None:
    store.start_writer()
    results = await asyncio.gather(*(store.save(rec(user_id=i)) for i in range(50)))
    assert results == [True] * 50
    # Committed: another connection sees every row at once.
    assert plain(db_path).execute("SELECT COUNT(*) FROM predictions").fetchone() == (50,)
    assert store.writer_stats.batches < 50  # group commit: saves share transactions


@SQLITE_ONLY  # its PostgreSQL counterpart: tests/test_postgres.py
async def test_synchronous_is_full(store: Storage) -> None:
    ((level,),) = await store._backend.db.execute_fetchall("PRAGMA synchronous")
    assert level == 2  # FULL


@SQLITE_ONLY  # its PostgreSQL counterpart: tests/test_postgres.py
async def test_corruption_on_insert_is_not_retried_and_refuses_at_once(
    store: Storage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def corrupt(sql: str, rows: list[tuple[object, ...]]) -> Any:
        nonlocal calls
        calls += 1
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(store._backend.db, "executemany", corrupt)
    store.start_writer(retry_initial=0.001, retry_max=0.002)
    with pytest.raises(StorageUnavailableError, match="damaged"):
        await asyncio.wait_for(store.save(rec(user_id=1)), 10)
    assert calls == 1  # not retried
    with pytest.raises(StorageUnavailableError, match="damaged"):
        store.submit(rec(user_id=2))
    (error,) = storage_records(caplog, logging.ERROR)
    assert str(store.path) in error.getMessage() and "restore a backup" in error.getMessage()
    assert storage_records(caplog, logging.WARNING) == []
    assert store.writer_stats.unavailable is not None and not store.writer_stats.running


@SQLITE_ONLY  # its PostgreSQL counterpart: tests/test_postgres.py
async def test_deleted_file_is_noticed_before_the_commit(
    store: Storage, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.start_writer()
    assert await store.save(rec(user_id=1))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(StorageUnavailableError, match="deleted or replaced"):
        await asyncio.wait_for(store.save(rec(user_id=2)), 10)
    (error,) = storage_records(caplog, logging.ERROR)
    assert "deleted or replaced" in error.getMessage() and str(db_path) in error.getMessage()


async def test_backlog_is_bounded_and_its_duplicate_check_sees_queued_records(
    store: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    store.start_writer(max_pending=3)  # the writer has not run yet: everything stays queued
    for i in range(3):
        assert store.submit(rec(source="auto", message_id=100 + i, user_id=i))
    with pytest.raises(StorageUnavailableError, match="3 predictions are already waiting"):
        store.submit(rec(source="auto", message_id=200))
    assert await store.has_auto_prediction(101)
    assert not await store.has_auto_prediction(200)
    assert store.writer_stats.over_bound == 1
    assert len(storage_records(caplog, logging.ERROR)) == 1
    await store.flush()
    assert await store.has_auto_prediction(101)  # now from the database
    assert store._writer._pending_auto == {}
    assert store.submit(rec(source="auto", message_id=200))  # room again


async def test_quick_check_refuses_a_damaged_file_at_open(db_path: Path) -> None:
    storage = await Storage.open(db_path)
    storage.start_writer()
    for i in range(400):
        storage.submit(rec(source="auto", message_id=1000 + i, user_id=i))
    await storage.close()
    conn = plain(db_path)
    ((root,),) = conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'predictions_auto_once'"
    ).fetchall()
    ((page_size,),) = conn.execute("PRAGMA page_size").fetchall()
    conn.close()
    with db_path.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * page_size)
    with pytest.raises(StorageError, match=r"damaged.*REINDEX"):
        await Storage.open(db_path)
