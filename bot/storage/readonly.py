"""The operator's read-only path (``sentiment-history``): plain, synchronous sqlite3 on a
``file:...?mode=ro`` connection, so it can never write, running the very same queries as
:class:`bot.storage.Storage` (:mod:`bot.storage.queries`). A file that is missing, empty, not
ours or from a newer version is refused with a StorageError naming the file and the fix.
Given a PostgreSQL address (:class:`bot.storage.dsn.Dsn`), the same functions read through
one asyncpg connection whose transactions are read-only (``default_transaction_read_only``),
run on an event loop of its own thread (so they stay synchronous, callable from anywhere).

Also the note of which program created a database (:func:`write_origin`): the sandbox marks
its own files so that only those are ever deleted; the bot never reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from bot.storage import corrections as fixes
from bot.storage.corrections import CorrectionFilter, StoredCorrection
from bot.storage.dsn import Dsn, database_location
from bot.storage.errors import StorageError
from bot.storage.export import ExportSummary, export_steps
from bot.storage.queries import (
    STATS_QUERIES,
    Query,
    count_query,
    history_query,
    mood_counts_query,
    mood_counts_result,
    mood_over_time_query,
    mood_over_time_result,
    row_to_prediction,
    stats_result,
)
from bot.storage.records import Bucket, DatabaseStats, HistoryFilter, StoredPrediction
from bot.storage.schema import IDENTITY_SQL, check_identity
from bot.storage.sqlite import FIX, check_existing_file, file_size

__all__ = [
    "read_correction_count",
    "read_corrections",
    "read_count",
    "read_export",
    "read_history",
    "read_mood_counts",
    "read_mood_over_time",
    "read_origin",
    "read_stats",
    "write_origin",
]


T = TypeVar("T")


class _Reader(Protocol):
    """A read-only connection to a Sentiment Bot database, either engine."""

    @property
    def location(self) -> Path | Dsn: ...

    @property
    def version(self) -> int: ...

    def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[Any]: ...

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """One read transaction: every query inside sees the same data."""
        ...

    def size_bytes(self) -> int: ...


class _SqliteReader:
    def __init__(self, conn: sqlite3.Connection, location: Path, version: int) -> None:
        self.conn, self.location, self.version = conn, location, version

    def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.rollback()

    def size_bytes(self) -> int:
        return file_size(self.location)


class _PostgresReader:
    """asyncpg on an event loop of its own thread, driven synchronously."""

    def __init__(self, dsn: Dsn) -> None:
        from bot.storage import postgres

        self._pg = postgres
        self.location = dsn
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._session = postgres.read_only(dsn)
        try:
            self.conn, self.version = self._run(self._session.__aenter__())
        except BaseException:
            self._stop()
            raise

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        try:
            return self._run(self._pg.fetch(self.conn, sql, params))
        except self._pg.ERRORS as exc:
            raise self._pg.connect_error(self.location, exc) from None

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        self._run(self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        try:
            yield
        finally:
            self._run(self.conn.execute("ROLLBACK"))

    def size_bytes(self) -> int:
        return int(self.fetchall("SELECT pg_database_size(current_database())")[0][0])

    def close(self) -> None:
        try:
            self._run(self._session.__aexit__(None, None, None))
        finally:
            self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


@contextlib.contextmanager
def _open_reader(path: str | Path | Dsn) -> Iterator[_Reader]:
    """A read-only connection to a Sentiment Bot database (a file, or a PostgreSQL address)."""
    where = database_location(path)
    if isinstance(where, Dsn):
        reader = _PostgresReader(where)
        try:
            yield reader
        finally:
            reader.close()
        return
    with _open_readonly(where) as (conn, resolved, version):
        yield _SqliteReader(conn, resolved, version)


@contextlib.contextmanager
def _open_readonly(path: str | Path) -> Iterator[tuple[sqlite3.Connection, Path, int]]:
    """A read-only plain sqlite3 connection to a Sentiment Bot database, its path and version."""
    path = Path(path).expanduser().resolve()
    if not check_existing_file(path):
        raise StorageError(
            f"no database at {path}: the bot creates it on its first start; check SENTIMENT_DB"
        )
    try:
        conn = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {path} read-only ({exc}); {FIX}") from exc
    try:
        try:
            version, app_id, has_tables = conn.execute(IDENTITY_SQL).fetchone()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot read {path} ({exc}); {FIX}") from exc
        check_identity(path, version, app_id, bool(has_tables))
        if version == 0:
            raise StorageError(f"{path} is empty: the bot has not written to it yet")
        yield conn, path, version
    finally:
        conn.close()


def _read(path: str | Path | Dsn, query: Query, parse: Callable[[list[Any]], Any]) -> Any:
    with _open_reader(path) as reader:
        sql, params = query
        return parse(reader.fetchall(sql, params))


def read_history(
    path: str | Path | Dsn, flt: HistoryFilter, *, limit: int = 10, offset: int = 0
) -> list[StoredPrediction]:
    """Like :meth:`Storage.history`, from a read-only connection."""
    rows: list[StoredPrediction] = _read(
        path, history_query(flt, limit, offset), lambda rows: [row_to_prediction(r) for r in rows]
    )
    return rows


def read_count(path: str | Path | Dsn, flt: HistoryFilter) -> int:
    """Like :meth:`Storage.count`, from a read-only connection."""
    n: int = _read(path, count_query(flt), lambda rows: int(rows[0][0]))
    return n


def read_mood_counts(path: str | Path | Dsn, flt: HistoryFilter) -> dict[str, int]:
    """Like :meth:`Storage.mood_counts`, from a read-only connection."""
    counts: dict[str, int] = _read(path, mood_counts_query(flt), mood_counts_result)
    return counts


def read_mood_over_time(
    path: str | Path | Dsn, flt: HistoryFilter, *, bucket: Bucket = "day"
) -> list[tuple[datetime, dict[str, int]]]:
    """Like :meth:`Storage.mood_over_time`, from a read-only connection."""
    series: list[tuple[datetime, dict[str, int]]] = _read(
        path,
        mood_over_time_query(flt, bucket),
        lambda rows: mood_over_time_result(rows, bucket),
    )
    return series


def _read_corrections(
    path: str | Path | Dsn, query: Query, parse: Callable[[list[Any]], Any]
) -> Any:
    """:func:`_read` on the corrections table, which a database of an older version lacks."""
    try:
        return _read(path, query, parse)
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        raise StorageError(
            f"{path} holds no corrections table: an older version of the bot wrote it; start "
            "this version once to upgrade it"
        ) from None


def read_corrections(
    path: str | Path | Dsn, flt: CorrectionFilter, *, limit: int = 10, offset: int = 0
) -> list[StoredCorrection]:
    """Like :meth:`Storage.corrections`, from a read-only connection."""
    rows: list[StoredCorrection] = _read_corrections(
        path,
        fixes.corrections_query(flt, limit, offset),
        lambda rows: [fixes.row_to_correction(r) for r in rows],
    )
    return rows


def read_correction_count(path: str | Path | Dsn, flt: CorrectionFilter) -> int:
    """Like :meth:`Storage.count_corrections`, from a read-only connection."""
    n: int = _read_corrections(path, fixes.count_query(flt), lambda rows: int(rows[0][0]))
    return n


def read_stats(path: str | Path | Dsn) -> DatabaseStats:
    """Like :meth:`Storage.stats`, from a read-only connection."""
    with _open_reader(path) as reader:
        by_source = reader.fetchall(STATS_QUERIES[0])
        span = reader.fetchall(STATS_QUERIES[1])[0]
        return stats_result(reader.location, reader.version, by_source, span, reader.size_bytes())


def read_export(
    path: str | Path | Dsn,
    guild_id: int | None,
    user_id: int,
    write: Callable[[str], object],
    *,
    now: datetime | None = None,
) -> ExportSummary:
    """Like :meth:`Storage.export_member`, from a read-only connection, in one read
    transaction (a consistent snapshot, however long it takes)."""
    steps = export_steps(guild_id, user_id, now=datetime.now(UTC) if now is None else now)
    with _open_reader(path) as reader, reader.snapshot():
        try:
            item = next(steps)
            while True:
                if isinstance(item, str):
                    write(item)
                    item = steps.send(None)
                else:
                    sql, params = item
                    item = steps.send(reader.fetchall(sql, params))
        except StopIteration as stop:
            summary: ExportSummary = stop.value
            return summary


# --------------------------------------------------------------------------------------------
# Which program created a file (the sandbox marks its databases; the bot never reads this)

_ORIGIN_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS created_by (origin TEXT NOT NULL, created_at REAL NOT NULL)"
)


def write_origin(path: str | Path, origin: str) -> None:
    """Note in the Sentiment Bot database at ``path`` that ``origin`` (e.g. ``sentiment-
    sandbox``) created it: a table of its own, outside the migrated schema. Never creates a
    file; raises StorageError if ``path`` is not an existing Sentiment Bot database."""
    with _open_readonly(path) as (_, resolved, _):
        pass  # the checks: an existing file, ours, migrated
    with contextlib.closing(sqlite3.connect(resolved, timeout=5.0)) as conn, conn:
        conn.execute(_ORIGIN_TABLE)
        conn.execute(
            "INSERT INTO created_by (origin, created_at) VALUES (?, ?)", [origin, time.time()]
        )


def read_origin(path: str | Path) -> str | None:
    """The ``origin`` that :func:`write_origin` noted in the database at ``path``; None for a
    file without one, a missing file, or one that is not a Sentiment Bot database. Reads only."""
    try:
        with _open_readonly(path) as (conn, _, _):
            row = conn.execute("SELECT origin FROM created_by ORDER BY rowid LIMIT 1").fetchone()
    except (StorageError, sqlite3.Error):
        return None
    return None if row is None else str(row[0])
