"""The operator's read-only path (``sentiment-history``): plain, synchronous sqlite3 on a
``file:...?mode=ro`` connection, so it can never write, running the very same queries as
:class:`bot.storage.Storage` (:mod:`bot.storage.queries`). A file that is missing, empty, not
ours or from a newer version is refused with a StorageError naming the file and the fix.

Also the note of which program created a database (:func:`write_origin`): the sandbox marks
its own files so that only those are ever deleted; the bot never reads it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bot.storage import corrections as fixes
from bot.storage.corrections import CorrectionFilter, StoredCorrection
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


def _read(path: str | Path, query: Query, parse: Callable[[list[Any]], Any]) -> Any:
    with _open_readonly(path) as (conn, _, _):
        sql, params = query
        return parse(conn.execute(sql, params).fetchall())


def read_history(
    path: str | Path, flt: HistoryFilter, *, limit: int = 10, offset: int = 0
) -> list[StoredPrediction]:
    """Like :meth:`Storage.history`, from a read-only connection."""
    rows: list[StoredPrediction] = _read(
        path, history_query(flt, limit, offset), lambda rows: [row_to_prediction(r) for r in rows]
    )
    return rows


def read_count(path: str | Path, flt: HistoryFilter) -> int:
    """Like :meth:`Storage.count`, from a read-only connection."""
    n: int = _read(path, count_query(flt), lambda rows: int(rows[0][0]))
    return n


def read_mood_counts(path: str | Path, flt: HistoryFilter) -> dict[str, int]:
    """Like :meth:`Storage.mood_counts`, from a read-only connection."""
    counts: dict[str, int] = _read(path, mood_counts_query(flt), mood_counts_result)
    return counts


def read_mood_over_time(
    path: str | Path, flt: HistoryFilter, *, bucket: Bucket = "day"
) -> list[tuple[datetime, dict[str, int]]]:
    """Like :meth:`Storage.mood_over_time`, from a read-only connection."""
    series: list[tuple[datetime, dict[str, int]]] = _read(
        path,
        mood_over_time_query(flt, bucket),
        lambda rows: mood_over_time_result(rows, bucket),
    )
    return series


def _read_corrections(path: str | Path, query: Query, parse: Callable[[list[Any]], Any]) -> Any:
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
    path: str | Path, flt: CorrectionFilter, *, limit: int = 10, offset: int = 0
) -> list[StoredCorrection]:
    """Like :meth:`Storage.corrections`, from a read-only connection."""
    rows: list[StoredCorrection] = _read_corrections(
        path,
        fixes.corrections_query(flt, limit, offset),
        lambda rows: [fixes.row_to_correction(r) for r in rows],
    )
    return rows


def read_correction_count(path: str | Path, flt: CorrectionFilter) -> int:
    """Like :meth:`Storage.count_corrections`, from a read-only connection."""
    n: int = _read_corrections(path, fixes.count_query(flt), lambda rows: int(rows[0][0]))
    return n


def read_stats(path: str | Path) -> DatabaseStats:
    """Like :meth:`Storage.stats`, from a read-only connection."""
    with _open_readonly(path) as (conn, resolved, version):
        by_source = conn.execute(STATS_QUERIES[0]).fetchall()
        span = conn.execute(STATS_QUERIES[1]).fetchone()
        return stats_result(resolved, version, by_source, span, file_size(resolved))


def read_export(
    path: str | Path,
    guild_id: int | None,
    user_id: int,
    write: Callable[[str], object],
    *,
    now: datetime | None = None,
) -> ExportSummary:
    """Like :meth:`Storage.export_member`, from a read-only connection, in one read
    transaction (a consistent snapshot, however long it takes)."""
    steps = export_steps(guild_id, user_id, now=datetime.now(UTC) if now is None else now)
    with _open_readonly(path) as (conn, _, _):
        conn.execute("BEGIN")
        try:
            item = next(steps)
            while True:
                if isinstance(item, str):
                    write(item)
                    item = steps.send(None)
                else:
                    sql, params = item
                    item = steps.send(conn.execute(sql, params).fetchall())
        except StopIteration as stop:
            summary: ExportSummary = stop.value
            return summary
        finally:
            conn.rollback()


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
