"""The PostgreSQL backend: its SQL rewriting, its address (never showing the password), what it
does where SQLite's own mechanics are tested in test_storage.py (constraints, batches,
failures, locks, corruption, indexes, text), and several processes sharing one database:
one row per message, migrations once, settings and opt-outs seen within the refresh bound."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from bot.cli import history_main
from bot.config import Settings
from bot.storage import (
    ANY_GUILD,
    SCHEMA_VERSION,
    HistoryFilter,
    PredictionRecord,
    Storage,
    StorageError,
    StorageUnavailableError,
    read_export,
    read_stats,
)
from bot.storage import postgres as pg
from bot.storage import queries as storage_queries
from bot.storage import settings as storage_settings
from bot.storage import writer as storage_writer
from bot.storage.dsn import Dsn, database_location
from model.settings import SettingsError

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 5, 8, 12, 30, tzinfo=UTC)
LOGGER = "bot.storage"
ON_POSTGRES = pytest.mark.engines("postgresql")


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


def auto(message_id: int, **changes: Any) -> PredictionRecord:
    return rec(message_id=message_id, source="auto", author_id=100, **changes)


async def wait_until(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    """Poll ``condition`` (not a timing assertion: only a bound against hanging)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


async def sql(dsn: Dsn, statement: str, *args: object) -> Any:
    conn = await asyncpg.connect(dsn.reveal())
    try:
        return await conn.fetch(statement, *args)
    finally:
        await conn.close()


@pytest.fixture
async def store(database: Path | Dsn) -> AsyncIterator[Storage]:
    storage = await Storage.open(database)
    yield storage
    await storage.close()


# --- the SQL, rewritten (no server needed) -------------------------------------------------


@pytest.mark.parametrize(
    ("shared", "params", "postgres", "sent"),
    [
        ("WHERE b = ? AND c < ?", [1, 2], "WHERE b = $1 AND c < $2", [1, 2]),
        ("WHERE guild_id IS ? AND x = ?", [7, 2], "WHERE guild_id = $1 AND x = $2", [7, 2]),
        ("WHERE guild_id IS ? AND x = ?", [None, 2], "WHERE guild_id IS NULL AND x = $1", [2]),
        ("WHERE label = '?' AND x = ?", [3], "WHERE label = '?' AND x = $1", [3]),
        (
            "SELECT CAST((created_at + ?) / ? AS INTEGER) AS bucket",
            [0, 3600],
            "SELECT CAST(TRUNC((created_at + $1) / $2) AS BIGINT) AS bucket",
            [0, 3600],
        ),
        ("SELECT CAST(x AS TEXT)", [], "SELECT CAST(x AS TEXT)", []),
        ("WHERE x IS NULL AND y = ?", ["a\x00b"], "WHERE x IS NULL AND y = $1", ["a\ufffdb"]),
    ],
)  # fmt: skip
def test_shared_sql_is_rewritten_for_postgresql(
    shared: str, params: list[object], postgres: str, sent: list[object]
) -> None:
    assert pg.translate(shared, params) == (postgres, sent)


def test_every_query_of_the_history_rewrites_its_placeholders() -> None:
    flt = HistoryFilter(guild_id=None, user_id=5, since=T0, until=T0 + timedelta(1))
    for text, params in (
        storage_queries.history_query(flt, 10, 0),
        storage_queries.mood_over_time_query(flt, "week"),
    ):
        rewritten, sent = pg.translate(text, params)
        assert "?" not in rewritten and "guild_id IS NULL" in rewritten
        assert len(sent) == len(params) - 1  # the NULL guild is spelled out, not sent
        assert f"${len(sent)}" in rewritten and f"${len(sent) + 1}" not in rewritten


def test_a_batch_is_one_multi_row_insert() -> None:
    text = pg._multi_row(storage_writer._INSERT_SQL, 3)
    assert text is not None and text.count("(") - storage_writer._INSERT_SQL.count("(") == 2
    assert "$48" in text and "$49" not in text and text.endswith("ON CONFLICT DO NOTHING")


# --- the address ----------------------------------------------------------------------------


def read_settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env, require_token=False)


def test_an_address_selects_postgresql_and_a_path_keeps_sqlite() -> None:
    for value in ("postgresql://bot:pw@db.example:5432/sentiment", "postgres://bot@/s?host=/x"):
        assert isinstance(read_settings({"SENTIMENT_DB": value}).database, Dsn)
    for value in ("data/sentiment.db", "/srv/bot.db", "postgresql.db"):
        assert isinstance(read_settings({"SENTIMENT_DB": value}).database, Path)
    assert read_settings({}).database == Path("data/sentiment.db")


def test_the_password_is_never_shown() -> None:
    dsn = Dsn("postgresql://bot:s3cr3t-pw@db.example:5432/sentiment?sslmode=require")
    assert "s3cr3t" not in f"{dsn} {dsn!r} {Settings(database=dsn)!r}"
    assert str(dsn) == "postgresql://bot:***@db.example:5432/sentiment?sslmode=require"
    assert "s3cr3t" not in str(Dsn("postgresql://db.example/s?password=s3cr3t"))
    assert dsn.reveal().startswith("postgresql://bot:s3cr3t-pw@")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("postgresql://bot:s3cr3t@db.example:port/sentiment", "port is not a number"),
        ("postgresql://bot:s3cr3t@[db.example/sentiment", "cannot be read as an address"),
    ],
)
def test_a_malformed_address_is_one_line_without_the_password(value: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        read_settings({"SENTIMENT_DB": value})
    message = str(caught.value)
    assert says in message and "SENTIMENT_DB" in message and "\n" not in message
    assert "s3cr3t" not in message


async def test_an_unreachable_server_is_one_line_naming_the_fix() -> None:
    with pytest.raises(StorageError) as caught:
        await Storage.open(Dsn("postgresql://bot:s3cr3t@127.0.0.1:1/sentiment"))
    message = str(caught.value)
    assert message.startswith("cannot reach the PostgreSQL server of postgresql://bot:***@")
    assert "check that it runs" in message and "s3cr3t" not in message


# --- opening --------------------------------------------------------------------------------


@ON_POSTGRES
async def test_a_missing_database_names_createdb(database: Dsn) -> None:
    with pytest.raises(StorageError, match=r"does not exist .*createdb nope_"):
        await Storage.open(database.with_database("nope_not_there"))


@ON_POSTGRES
async def test_a_database_of_another_program_is_refused_and_untouched(database: Dsn) -> None:
    await sql(database, "CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StorageError, match="holds tables of another program"):
        await Storage.open(database)
    tables = await sql(database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert [r[0] for r in tables] == ["invoices"]


@ON_POSTGRES
async def test_a_newer_schema_is_refused_and_untouched(database: Dsn) -> None:
    await (await Storage.open(database)).close()
    await sql(database, "UPDATE sentiment_schema SET version = $1", SCHEMA_VERSION + 1)
    with pytest.raises(StorageError, match=r"newer Sentiment Bot \(schema 8"):
        await Storage.open(database)
    assert (await sql(database, "SELECT version FROM sentiment_schema"))[0][0] == 8


@ON_POSTGRES
async def test_processes_starting_at_once_migrate_once(database: Dsn) -> None:
    stores = await asyncio.gather(*(Storage.open(database) for _ in range(4)))
    for storage in stores:
        await storage.close()
    rows = await sql(database, "SELECT version, application_id FROM sentiment_schema")
    assert [tuple(r) for r in rows] == [(SCHEMA_VERSION, 0x53454E54)]


# --- what test_storage.py checks through SQLite's own connections ---------------------------


@ON_POSTGRES
async def test_the_database_refuses_inconsistent_rows(store: Storage) -> None:
    good = storage_writer._record_params(rec(p_negative=0.5, p_neutral=0.25))
    bad_rows = {
        "one probability alone": (*good[:11], 0.5, None, None, *good[14:]),
        "a probability above 1": (*good[:11], 1.5, 0.0, None, *good[14:]),
        "more than 1 in all": (*good[:11], 0.75, 0.5, None, *good[14:]),
        "an unknown reason": (*good[:11], None, None, "because", *good[14:]),
        "private neither yes nor no": (*good[:15], 2),
    }
    backend = store._backend
    for what, row in bad_rows.items():
        with pytest.raises(asyncpg.IntegrityConstraintViolationError):
            async with backend.transaction() as tx:
                await tx.execute(storage_writer._INSERT_SQL, row)
        assert await store.count(HistoryFilter(guild_id=1)) == 0, what
    async with backend.transaction() as tx:
        assert await tx.execute(storage_writer._INSERT_SQL, good) == 1
    assert await store.count(HistoryFilter(guild_id=1)) == 1


@ON_POSTGRES
async def test_a_refused_row_does_not_undo_the_rest_of_its_transaction(store: Storage) -> None:
    bad = rec(user_id=2)
    object.__setattr__(bad, "label", "bogus")  # slips past validation; the CHECK refuses it
    store.start_writer()
    for record in (rec(user_id=1), bad, rec(user_id=3)):
        store.submit(record)
    await store.flush()
    rows = await store.history(HistoryFilter(guild_id=1))
    assert sorted(r.user_id for r in rows) == [1, 3]
    assert store.writer_stats.rejected == 1


@ON_POSTGRES
async def test_the_writer_sends_each_batch_as_one_statement(
    store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    real = pg._Transaction.executemany

    async def spy(self: Any, text: str, rows: list[tuple[object, ...]]) -> int:
        sizes.append(len(rows))
        return await real(self, text, rows)

    monkeypatch.setattr(pg._Transaction, "executemany", spy)
    store.start_writer(batch_size=100, flush_interval=60)
    for i in range(250):
        assert store.submit(auto(i % 200))  # 50 replays of a message: stored once
    await store.flush()
    assert sizes == [100, 100, 50]
    assert await store.count(HistoryFilter(guild_id=1)) == 200
    stats = store.writer_stats
    assert (stats.written, stats.duplicates, stats.batches) == (200, 50, 3)


@ON_POSTGRES
async def test_a_server_error_is_retried_with_one_warning_per_streak(
    store: Storage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = pg._Transaction.executemany
    failures = iter([True, True, False, True, False])

    async def flaky(self: Any, text: str, rows: list[tuple[object, ...]]) -> int:
        if next(failures):
            raise asyncpg.DiskFullError("could not extend file: No space left on device")
        return await real(self, text, rows)

    monkeypatch.setattr(pg._Transaction, "executemany", flaky)
    store.start_writer(retry_initial=0.001, retry_max=0.002)
    store.submit(rec(user_id=1))
    await store.flush()
    store.submit(rec(user_id=2))
    await store.flush()
    assert await store.count(HistoryFilter(guild_id=1)) == 2
    assert store.writer_stats.failed_batches == 3
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("No space left" in w.getMessage() for w in warnings)


@ON_POSTGRES
async def test_a_lock_held_elsewhere_is_waited_out_and_logged_once(
    database: Dsn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    storage = await Storage.open(database, busy_timeout=0.05)
    other = await asyncpg.connect(database.reveal())  # another session holds the table
    try:
        storage.start_writer(retry_initial=0.01, retry_max=0.05)
        lock = other.transaction()
        await lock.start()
        await other.execute("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE")
        for i in range(10):
            storage.submit(rec(user_id=i))
        flushing = asyncio.create_task(storage.flush())

        async def failed_thrice() -> bool:
            return storage.writer_stats.failed_batches >= 3

        await wait_until(failed_thrice)
        assert not flushing.done() and storage.writer_stats.pending == 10
        await lock.rollback()
        await asyncio.wait_for(flushing, 10)
        assert await storage.count(HistoryFilter(guild_id=1)) == 10
    finally:
        await other.close()
        await storage.close()
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "lock timeout" in warnings[0].getMessage()
    assert any("works again" in r.getMessage() for r in caplog.records if r.name == LOGGER)


@ON_POSTGRES
async def test_corruption_is_not_retried(
    store: Storage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def corrupt(self: Any, text: str, rows: list[tuple[object, ...]]) -> int:
        raise asyncpg.DataCorruptedError("invalid page in block 7 of relation predictions")

    monkeypatch.setattr(pg._Transaction, "executemany", corrupt)
    store.start_writer(retry_initial=0.001)
    with pytest.raises(StorageUnavailableError, match="reports damage"):
        await store.save(rec())
    assert store.writer_stats.failed_batches == 1
    with pytest.raises(StorageUnavailableError):
        store.submit(rec())
    assert any("REINDEX" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


@ON_POSTGRES
async def test_history_queries_use_an_index(store: Storage) -> None:
    filters = [
        HistoryFilter(guild_id=1),
        HistoryFilter(guild_id=None, user_id=5),
        HistoryFilter(guild_id=1, user_id=5, since=T0, until=T0 + timedelta(1)),
        HistoryFilter(guild_id=1, channel_id=5, since=T0, mood="neutral"),
        HistoryFilter(guild_id=ANY_GUILD, user_id=5, since=T0),
        HistoryFilter(guild_id=ANY_GUILD, since=T0, until=T0 + timedelta(1)),
    ]
    async with store._backend.transaction() as tx:
        # An empty table is cheapest to scan: ask whether an index *can* serve each query.
        await tx.execute("SET LOCAL enable_seqscan = off")
        for flt in filters:
            for text, params in (
                storage_queries.history_query(flt, 10, 0),
                storage_queries.count_query(flt),
                storage_queries.mood_over_time_query(flt, "day"),
            ):
                plan = "\n".join(r[0] for r in await tx.execute_fetchall(f"EXPLAIN {text}", params))
                assert "Index" in plan and "Seq Scan on predictions" not in plan, (flt, plan)


@ON_POSTGRES
async def test_text_is_stored_verbatim_except_nul(store: Storage) -> None:
    texts = ["'); DROP TABLE predictions; --", "? $1 %s :name", "😄\u200d", "a\x00b"]
    for i, text in enumerate(texts):
        await store.add(rec(message_id=i, text=text))
    rows = await store.history(HistoryFilter(guild_id=1))
    assert sorted((r.message_id, r.text) for r in rows) == [
        (0, texts[0]),
        (1, texts[1]),
        (2, texts[2]),
        (3, "a\ufffdb"),  # PostgreSQL's text cannot hold NUL
    ]


@ON_POSTGRES
async def test_settings_are_served_from_memory_until_their_ttl(
    database: Dsn, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(storage_settings.time, "monotonic", lambda: clock[0])
    storage = await Storage.open(database, settings_refresh_s=5.0)
    try:
        await storage.set_auto_channel(1, 10, True)
        first = await storage.guild_settings(1)
        real = storage._backend.execute_fetchall

        async def no_database(*args: object) -> Any:
            raise AssertionError("the hot path read the database")

        monkeypatch.setattr(storage._backend, "execute_fetchall", no_database)
        clock[0] += 4.9
        assert await storage.guild_settings(1) is first
        monkeypatch.setattr(storage._backend, "execute_fetchall", real)
        clock[0] += 0.2  # older than the ttl: read again
        assert await storage.guild_settings(1) == first
        assert await storage.guild_settings(1) is not first
    finally:
        await storage.close()


# --- several processes on one database ------------------------------------------------------


@ON_POSTGRES
async def test_two_processes_writing_the_same_messages_store_one_row_each(database: Dsn) -> None:
    """Two real processes, each its own pool, replaying overlapping gateway events at once."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from datetime import UTC, datetime
        from bot.storage import PredictionRecord, Storage

        async def main(dsn, first):
            storage = await Storage.open(dsn)
            storage.start_writer(batch_size=50)
            now = datetime.now(UTC)
            for message_id in range(first, first + 600):
                storage.submit(PredictionRecord(
                    guild_id=1, channel_id=2, message_id=message_id, user_id=3, author_id=3,
                    source="auto", label="positive", p_positive=0.9, in_band=False,
                    model_version="m", created_at=now))
            await storage.close()
            stats = storage.writer_stats
            print(stats.written, stats.duplicates)

        asyncio.run(main(sys.argv[1], int(sys.argv[2])))
        """
    )
    env = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    runs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            database.reveal(),
            str(first),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        for first in (0, 400)
    ]
    outputs = [await asyncio.wait_for(run.communicate(), 120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err.decode()[-2000:] for _, err in outputs]
    written, duplicates = zip(*(map(int, out.split()) for out, _ in outputs), strict=True)
    assert sum(written) == 1000 and sum(duplicates) == 200  # messages 400-599 sent twice
    counts = await sql(
        database, "SELECT COUNT(*), COUNT(DISTINCT message_id), MIN(message_id), MAX(message_id)"
        " FROM predictions"
    )  # fmt: skip
    assert tuple(counts[0]) == (1000, 1000, 0, 999)


@ON_POSTGRES
async def test_settings_changed_in_one_process_hold_in_another_within_the_bound(
    database: Dsn,
) -> None:
    a = await Storage.open(database, settings_refresh_s=0.2)
    b = await Storage.open(database, settings_refresh_s=0.2)
    try:
        assert (await b.guild_settings(1)).auto_channels == frozenset()  # cached in b
        await a.set_auto_channel(1, 10, True)
        await a.update_guild_settings(1, positive_emoji="🎉")

        async def seen_by_b() -> bool:
            settings = await b.guild_settings(1)
            return settings.positive_emoji == "🎉" and settings.auto_channels == {10}

        await wait_until(seen_by_b)
    finally:
        await a.close()
        await b.close()


@ON_POSTGRES
async def test_an_opt_out_in_one_process_stops_the_other_within_the_bound(database: Dsn) -> None:
    a = await Storage.open(database, settings_refresh_s=0.1)
    b = await Storage.open(database, settings_refresh_s=0.1)
    try:
        b.start_writer()
        assert await b.save(auto(1, created_at=datetime.now(UTC) - timedelta(hours=1)))
        await a.forget_user(100)  # in process a: b learns of it by its refresh task
        await b.save(auto(2, created_at=datetime.now(UTC)))  # stored or not, it must not stay

        async def b_refuses() -> bool:
            return await b.is_opted_out(100)

        await wait_until(b_refuses)
        assert not await b.save(auto(3, created_at=datetime.now(UTC)))  # refused now

        async def nothing_left() -> bool:  # row 2, if b stored it, goes at b's refresh
            return await a.count(HistoryFilter(guild_id=ANY_GUILD)) == 0

        await wait_until(nothing_left)
    finally:
        await a.close()
        await b.close()


@ON_POSTGRES
async def test_rows_written_after_an_opt_out_elsewhere_are_undone_at_the_refresh(
    database: Dsn,
) -> None:
    a = await Storage.open(database)
    b = await Storage.open(database)  # no refresh task: refreshed by hand below
    try:
        before = datetime.now(UTC) - timedelta(hours=1)
        assert await b.add(auto(1, created_at=before)) is not None
        await a.set_opt_out(100, True)  # an opt-out keeps what was stored before it
        assert await b.add(auto(2, created_at=datetime.now(UTC))) is not None  # b did not know
        await b._privacy.refresh()
        assert await b.is_opted_out(100)
        rows = await a.history(HistoryFilter(guild_id=ANY_GUILD))
        assert [r.message_id for r in rows] == [1]
        assert await b.add(auto(3, created_at=datetime.now(UTC))) is None
        await a.set_opt_out(100, False)
        await b._privacy.refresh()
        assert not await b.is_opted_out(100)
    finally:
        await a.close()
        await b.close()


# --- the operator's path --------------------------------------------------------------------


@ON_POSTGRES
async def test_the_operator_cli_reads_an_address_and_masks_its_password(
    database: Dsn, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = await Storage.open(database)
    await storage.add(rec(message_id=5, text="hello there"))
    live = await storage.export_member(1, 100, lambda _: None, now=T0)
    await storage.close()
    # the test cluster trusts local connections: any password goes, and must not be shown
    with_password = Dsn(
        database.reveal().replace("postgresql://postgres@", "postgresql://postgres:s3cr3t@")
    )
    assert history_main(["--db", with_password.reveal(), "--stats"]) == 0
    out = capsys.readouterr().out
    assert "postgres:***@" in out and "s3cr3t" not in out and "1 predictions" in out
    assert history_main(["--db", database.reveal(), "--csv"]) == 0
    assert "hello there" in capsys.readouterr().out
    assert read_stats(database).rows == 1
    assert read_export(database, 1, 100, lambda _: None, now=T0).counts == live.counts
    assert database_location(database.reveal()) == database
