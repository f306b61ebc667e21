"""``sentiment db migrate``: a SQLite file of the bot copied into PostgreSQL, every table and
setting, resumable, verified; and its refusals, of the source and of the target, one line each.

The source files are built by ``scripts/migrate_bench.py``'s generator (every table filled),
plus rows with the values that the engines store differently (NUL, non-ASCII, floats).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from scripts_support import load_script

from bot.command import main as sentiment
from bot.storage import (
    ANY_GUILD,
    SCHEMA_VERSION,
    CorrectionFilter,
    HistoryFilter,
    PredictionRecord,
    Storage,
    StorageError,
)
from bot.storage.dsn import Dsn
from bot.storage.transfer import TableSpec, canonical_row, copy_to_postgres, schema_tables

pytestmark = pytest.mark.engines("postgresql")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("migrate_bench")


EDGE_TEXTS = ("nul\x00inside", "\ufffd already", "naïve café 日本 🙂", "", "'; DROP TABLE x; --")


@pytest.fixture
def source(bench: ModuleType, tmp_path: Path) -> Path:
    """A bot's SQLite file with rows in every table, and rows with awkward values."""
    path = tmp_path / "sentiment.db"
    bench.build_source(path, 300, seed=7)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        for i, text in enumerate(EDGE_TEXTS):
            conn.execute(
                "INSERT INTO predictions (guild_id, channel_id, message_id, user_id, source, label,"
                " p_positive, in_band, model_version, created_at, text) VALUES"
                " (NULL, 5, ?, 6, 'auto', 'positive', ?, 0, 'm', ?, ?)",
                [90_000 + i, (0.1, 1 / 3, 0.0, 1.0, 5e-324)[i], 1_700_000_000 + i / 3, text],
            )
        # an integer where SQLite's REAL column keeps it as an integer
        conn.execute("INSERT INTO opt_outs VALUES (1, 1700000000)")
    return path


def _run(*args: str) -> int:
    return sentiment(["db", "migrate", *args, "--no-progress"])


async def _tables(dsn: Dsn) -> dict[str, int]:
    conn = await asyncpg.connect(dsn.reveal())
    try:
        names = [
            r[0]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
        return {n: int(await conn.fetchval(f'SELECT count(*) FROM "{n}"')) for n in names}
    finally:
        await conn.close()


def _file_counts(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in schema_tables()}


async def _everything(where: Path | Dsn) -> dict[str, Any]:
    """What the bot reads back from a database, through Storage, for every table."""
    storage = await Storage.open(where)
    try:
        guilds = sorted({p.guild_id for p in await storage.history(
            HistoryFilter(guild_id=ANY_GUILD), limit=10_000) if p.guild_id})  # fmt: skip
        return {
            "predictions": await storage.history(HistoryFilter(guild_id=ANY_GUILD), limit=10_000),
            "settings": [await storage.guild_settings(g) for g in guilds],
            "alerts": dict(await storage.alert_configs()),
            "departures": [await storage.guild_departure(g) for g in guilds],
            "opted_out": [await storage.is_opted_out(u) for u in (1, 5_000, 4_999)],
            "corrections": await storage.corrections(
                CorrectionFilter(guild_id=ANY_GUILD), limit=10_000
            ),
            "alerts_sent": [
                await storage.alerts_since(g, datetime.fromtimestamp(0, UTC)) for g in guilds
            ],
        }
    finally:
        await storage.close()


def test_the_tables_copied_are_the_schemas(tmp_path: Path) -> None:
    async def create() -> None:
        await (await Storage.open(tmp_path / "s.db")).close()

    asyncio.run(create())
    with contextlib.closing(sqlite3.connect(tmp_path / "s.db")) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert set(schema_tables()) == names
    assert schema_tables()[:3] == ("predictions", "guild_settings", "auto_channels")


def test_every_row_and_setting_is_copied_and_verified(
    source: Path, database: Dsn, capsys: pytest.CaptureFixture[str]
) -> None:
    counts = _file_counts(source)
    assert all(counts.values()), counts  # every table of the schema has rows to copy
    assert _run("--from", str(source), "--to", database.reveal(), "--batch-rows", "64") == 0
    out = capsys.readouterr().out
    assert f"verified: {len(counts)} tables, {sum(counts.values()):,} rows" in out
    for table, n in counts.items():
        assert f"{n:,}" in next(line for line in out.splitlines() if line.startswith(table))
    there = asyncio.run(_tables(database))
    assert {t: there[t] for t in counts} == counts
    # The bot reads back the same predictions, settings, alerts, opt-outs and corrections.
    mine, theirs = asyncio.run(_everything(source)), asyncio.run(_everything(database))
    nul = [p for p in theirs["predictions"] if p.text and p.text.startswith("nul")]
    assert [p.text for p in nul] == ["nul\ufffdinside"]  # PostgreSQL cannot hold NUL
    for p in mine["predictions"]:
        if p.text is not None:
            object.__setattr__(p, "text", p.text.replace("\x00", "\ufffd"))
    assert mine == theirs
    assert theirs["opted_out"] == [True, True, False]


def test_the_bot_writes_on_after_the_copy(source: Path, database: Dsn) -> None:
    """The identity sequences were moved past the ids copied: new rows get new ids."""
    assert _run("--from", str(source), "--to", database.reveal()) == 0

    async def write() -> tuple[int | None, int]:
        storage = await Storage.open(database)
        try:
            record = PredictionRecord(
                guild_id=1, channel_id=2, message_id=3, user_id=4, source="command",
                label="positive", p_positive=0.9, in_band=False, model_version="m",
                created_at=datetime.now(UTC),
            )  # fmt: skip
            new = await storage.add(record)
            return new, await storage.count(HistoryFilter(guild_id=ANY_GUILD))
        finally:
            await storage.close()

    new_id, total = asyncio.run(write())
    assert new_id is not None and new_id > 300 + len(EDGE_TEXTS)
    assert total == 300 + len(EDGE_TEXTS) + 1


def _stop_after(batches: int) -> Callable[..., contextlib.AbstractContextManager[Any]]:
    """A progress report that raises KeyboardInterrupt once ``batches`` are committed."""
    done = [0]

    @contextlib.contextmanager
    def progress(table: str, total: int, held: int) -> Iterator[Callable[[int], None]]:
        def advance(n: int) -> None:
            done[0] += 1
            if done[0] == batches:
                raise KeyboardInterrupt

        yield advance

    return progress


def test_an_interrupted_copy_goes_on_where_it_stopped(
    source: Path, database: Dsn, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(copy_to_postgres(source, database, batch_rows=40, progress=_stop_after(3)))
    assert asyncio.run(_tables(database))["predictions"] == 120  # three whole batches
    assert asyncio.run(_tables(database))["guild_settings"] == 0
    # Stopped again, in the second table this time.
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(copy_to_postgres(source, database, batch_rows=40, progress=_stop_after(6)))
    there = asyncio.run(_tables(database))
    total = _file_counts(source)["predictions"]
    assert there["predictions"] == total and there["guild_settings"] == 20
    capsys.readouterr()
    assert _run("--from", str(source), "--to", database.reveal()) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("predictions"))
    assert line.split()[1:4] == [f"{total:,}", f"{total:,}", "0"]  # nothing copied twice
    assert "counts and checksums equal" in out
    assert asyncio.run(_tables(database))["predictions"] == total


def test_ctrl_c_says_how_to_go_on(
    source: Path, database: Dsn, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    import bot.db_cli

    monkeypatch.setattr(bot.db_cli, "_bars", lambda enabled: _stop_after(2))
    assert _run("--from", str(source), "--to", database.reveal(), "--batch-rows", "50") == 130
    assert "run the same command again to go on" in capsys.readouterr().err
    assert asyncio.run(_tables(database))["predictions"] == 100


def _one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for word in words:
        assert word in err, err
    return err


def _set_pragma(path: Path, sql: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(sql)
        conn.commit()


@pytest.mark.parametrize(
    ("spoil", "words"),
    [
        ("text", ("not a SQLite database",)),
        ("other_program", ("another program",)),
        ("newer", ("newer", f"knows {SCHEMA_VERSION}")),
        ("older", ("older", "start this version")),
        ("unknown_table", ("does not know", "surprise")),
        ("missing", ("no file at",)),
    ],
)
def test_a_source_that_is_not_this_bots_file_is_refused(
    source: Path,
    database: Dsn,
    capsys: pytest.CaptureFixture[str],
    spoil: str,
    words: tuple[str, ...],
) -> None:
    if spoil == "text":
        source.write_text("not a database\n" * 10)
    elif spoil == "other_program":
        _set_pragma(source, "PRAGMA application_id = 42")
    elif spoil == "newer":
        _set_pragma(source, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    elif spoil == "older":
        _set_pragma(source, f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    elif spoil == "unknown_table":
        _set_pragma(source, "CREATE TABLE surprise (x INTEGER)")
    elif spoil == "missing":
        source.unlink()
    before = source.read_bytes() if source.exists() else None
    assert _run("--from", str(source), "--to", database.reveal()) == 2
    _one_line_error(capsys, *words)
    assert asyncio.run(_tables(database)) == {}  # the target was not even set up
    assert (source.read_bytes() if source.exists() else None) == before  # only ever read


def test_the_sandboxs_note_is_not_copied(
    source: Path, database: Dsn, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.storage import write_origin

    write_origin(source, "sentiment-sandbox")
    assert _run("--from", str(source), "--to", database.reveal()) == 0
    assert "created_by" not in asyncio.run(_tables(database))


def test_a_target_that_is_not_postgresql_is_refused(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("--from", str(source), "--to", str(tmp_path / "copy.db")) == 2
    _one_line_error(capsys, "--to must be a PostgreSQL address")
    assert not (tmp_path / "copy.db").exists()
    assert _run("--from", "postgresql://u@/d?host=/x", "--to", "postgresql://u@/d") == 2
    _one_line_error(capsys, "--from is the bot's SQLite file")
    assert _run("--from", str(source), "--to", "postgresql://u@h:notaport/d") == 2
    _one_line_error(capsys, "--to is not a usable PostgreSQL address", "port")
    assert _run("--from", str(source), "--to", "postgresql://u:secret@/d?host=/nowhere") == 2
    err = _one_line_error(capsys, "cannot reach")
    assert "secret" not in err


async def _spoil_target(dsn: Dsn, how: str) -> None:
    if how == "rows":  # the bot already ran on it
        storage = await Storage.open(dsn)
        try:
            await storage.set_opt_out(77, True)
        finally:
            await storage.close()
        return
    conn = await asyncpg.connect(dsn.reveal())
    try:
        if how == "other_program":
            await conn.execute("CREATE TABLE invoices (id BIGINT PRIMARY KEY)")
        elif how == "newer":
            await (await Storage.open(dsn)).close()
            await conn.execute("UPDATE sentiment_schema SET version = version + 1")
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("how", "words"),
    [
        ("rows", ("already holds rows in opt_outs", "not this file's")),
        ("other_program", ("tables of another program",)),
        ("newer", ("newer",)),
    ],
)
def test_a_target_holding_something_else_is_refused(
    source: Path, database: Dsn, capsys: pytest.CaptureFixture[str], how: str, words: Any
) -> None:
    asyncio.run(_spoil_target(database, how))
    before = asyncio.run(_tables(database))
    assert _run("--from", str(source), "--to", database.reveal()) == 2
    _one_line_error(capsys, *words)
    if how != "rows":
        assert asyncio.run(_tables(database)) == before  # nothing written
    else:  # the tables before opt_outs were copied (they matched); opt_outs left alone
        assert asyncio.run(_tables(database))["opt_outs"] == 1


def test_a_target_changed_after_the_copy_is_refused_on_the_next_run(
    source: Path, database: Dsn, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("--from", str(source), "--to", database.reveal()) == 0

    async def tamper() -> None:
        conn = await asyncpg.connect(database.reveal())
        try:
            await conn.execute("UPDATE guild_settings SET positive_emoji = 'x' WHERE true")
        finally:
            await conn.close()

    asyncio.run(tamper())
    capsys.readouterr()
    assert _run("--from", str(source), "--to", database.reveal()) == 2
    _one_line_error(capsys, "already holds rows in guild_settings")


def test_the_checksum_reads_each_value_as_both_engines_store_it() -> None:
    spec = TableSpec("t", ("id", "x", "s"), ("INTEGER", "REAL", "TEXT"), ("id",))
    assert canonical_row(spec, (1, 2, "a\x00b")) == canonical_row(spec, (1, 2.0, "a\ufffdb"))
    assert canonical_row(spec, (1, 0.1, None)) != canonical_row(spec, (1, 0.1, ""))
    assert canonical_row(spec, (1, 0.1, "é")) != canonical_row(spec, (1, 0.1000000000000001, "é"))
    assert canonical_row(spec, (1, 1 / 3, "é")) == b'[1,0.3333333333333333,"\\u00e9"]\n'
    with pytest.raises(StorageError, match=r"t\.s holds b'x'"):
        canonical_row(spec, (1, 0.5, b"x"))


def test_only_plain_names_reach_the_sql_text() -> None:
    spec = TableSpec("t; DROP TABLE predictions", ("id",), ("INTEGER",), ("id",))
    with pytest.raises(StorageError, match="not a plain SQL identifier"):
        spec.sql("all")
    with pytest.raises(StorageError, match="not a plain SQL identifier"):
        TableSpec("t", ('id" --',), ("INTEGER",), ('id" --',)).sql("count")
