"""The SQL of every query, one copy each, and how its rows become values: shared by
:class:`bot.storage.Storage` (async, on its backend's query connection) and the operator's
read-only path (:mod:`bot.storage.readonly`, plain sqlite3).

Each builder returns ``(sql, params)``: the text only ever holds constants and ``?``
placeholders, the values travel as parameters. A filter's ``audience`` decides what a member
may see: never the words of an author who opted out, and someone else's private request only
when they asked for it themselves. A text the model did not read counts under ``unread``,
under no mood. Time buckets are UTC; weeks start on Monday.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeAlias

from bot.storage.dsn import Dsn
from bot.storage.records import (
    ANY_GUILD,
    COUNT_KEYS,
    SOURCES,
    Bucket,
    DatabaseStats,
    HistoryFilter,
    StoredPrediction,
    from_ts,
    to_ts,
)

__all__ = [
    "STATS_QUERIES",
    "Query",
    "auto_prediction_query",
    "auto_row_query",
    "channel_moods_query",
    "count_query",
    "history_query",
    "mood_counts_query",
    "mood_counts_result",
    "mood_over_time_query",
    "mood_over_time_result",
    "most_negative_query",
    "prediction_at_query",
    "row_to_prediction",
    "stats_result",
]

Query: TypeAlias = tuple[str, list[object]]

_COLUMNS: Final = (
    "id, guild_id, channel_id, message_id, user_id, source, label, p_positive, in_band,"
    " model_version, created_at, text, p_negative, p_neutral, unread, author_id, private"
)
# What a row counts as in mood statistics: a text the model did not read counts under no mood.
_MOOD_SQL: Final = (
    "CASE WHEN unread IS NOT NULL THEN 'unread'"
    " WHEN in_band = 1 OR label = 'neutral' THEN 'neutral' ELSE label END"
)
# bucket -> (width in seconds, shift): bucket start = index * width - shift. Weeks start on a
# Monday: 1969-12-29 00:00 UTC is 3 days before the epoch (a Thursday).
_BUCKETS: Final[dict[str, tuple[int, int]]] = {
    "hour": (3_600, 0),
    "day": (86_400, 0),
    "week": (604_800, 259_200),
}


def _where(flt: HistoryFilter) -> Query:
    """The WHERE clause (with its leading keyword, or empty) and its parameters."""
    clauses: list[str] = []
    params: list[object] = []
    if flt.guild_id is not ANY_GUILD:
        clauses.append("guild_id IS ?")  # IS: also matches NULL (direct messages)
        params.append(flt.guild_id)
    if flt.user_id is not None:
        clauses.append("user_id = ?")
        params.append(flt.user_id)
    if flt.channel_id is not None:
        clauses.append("channel_id = ?")
        params.append(flt.channel_id)
    if flt.mood == "neutral":  # a text the model did not read has no mood
        clauses.append("(in_band = 1 OR label = 'neutral') AND unread IS NULL")
    elif flt.mood is not None:
        clauses.append("(in_band = 0 AND label = ? AND unread IS NULL)")
        params.append(flt.mood)
    if flt.audience != "operator":
        # Never the words of a member who opted out (rows from before the opt-out, or whose
        # author opted out since), whoever asks.
        clauses.append("(author_id IS NULL OR author_id NOT IN (SELECT user_id FROM opt_outs))")
    if flt.audience == "others":
        clauses.append("private = 0")
    if flt.since is not None:
        clauses.append("created_at >= ?")
        params.append(to_ts(flt.since))
    if flt.until is not None:
        clauses.append("created_at < ?")
        params.append(to_ts(flt.until))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def history_query(flt: HistoryFilter, limit: int, offset: int) -> Query:
    """Rows matching ``flt``, newest first (ValueError for a negative limit or offset)."""
    for name, value in (("limit", limit), ("offset", offset)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    where, params = _where(flt)
    sql = (
        f"SELECT {_COLUMNS} FROM predictions {where}"
        " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
    )
    return sql, [*params, limit, offset]


def count_query(flt: HistoryFilter) -> Query:
    where, params = _where(flt)
    return f"SELECT COUNT(*) FROM predictions {where}", params


def mood_counts_query(flt: HistoryFilter) -> Query:
    where, params = _where(flt)
    return f"SELECT {_MOOD_SQL} AS mood, COUNT(*) FROM predictions {where} GROUP BY mood", params


def mood_over_time_query(flt: HistoryFilter, bucket: Bucket) -> Query:
    """Mood counts per bucket (ValueError for an unknown bucket)."""
    if bucket not in _BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(_BUCKETS)}, got {bucket!r}")
    width, shift = _BUCKETS[bucket]
    where, params = _where(flt)
    sql = (
        f"SELECT CAST((created_at + ?) / ? AS INTEGER) AS bucket, {_MOOD_SQL} AS mood, COUNT(*)"
        f" FROM predictions {where} GROUP BY bucket, mood ORDER BY bucket"
    )
    return sql, [shift, width, *params]


# channel_moods_query and most_negative_query read a channel's own messages over a time span,
# as a mood alert reads them: the automatic predictions (one per message; /sentiment and the
# menu are no chat), never the words of an author who opted out. The same WHERE clause, written
# out in each; served by the (guild_id, channel_id, created_at) index.


def channel_moods_query(guild_id: int, channel_id: int, since: datetime, until: datetime) -> Query:
    """Mood counts of a channel's messages in ``[since, until)`` (rows as
    :func:`mood_counts_result` takes them)."""
    sql = (
        f"SELECT {_MOOD_SQL} AS mood, COUNT(*) FROM predictions"
        " WHERE guild_id = ? AND channel_id = ? AND created_at >= ? AND created_at < ?"
        " AND source = 'auto'"
        " AND (author_id IS NULL OR author_id NOT IN (SELECT user_id FROM opt_outs))"
        " GROUP BY mood"
    )
    return sql, [guild_id, channel_id, to_ts(since), to_ts(until)]


def most_negative_query(
    guild_id: int, channel_id: int, since: datetime, until: datetime, limit: int
) -> Query:
    """A channel's negative messages in ``[since, until)``, the most negative first (a
    three-way model's P(negative), else 1 - P(positive))."""
    sql = (
        f"SELECT {_COLUMNS} FROM predictions"
        " WHERE guild_id = ? AND channel_id = ? AND created_at >= ? AND created_at < ?"
        " AND source = 'auto'"
        " AND (author_id IS NULL OR author_id NOT IN (SELECT user_id FROM opt_outs))"
        " AND message_id IS NOT NULL AND unread IS NULL AND in_band = 0 AND label = 'negative'"
        " ORDER BY COALESCE(p_negative, 1.0 - p_positive) DESC, id LIMIT ?"
    )
    return sql, [guild_id, channel_id, to_ts(since), to_ts(until), limit]


def auto_prediction_query(message_id: int) -> Query:
    """Whether an automatic prediction of the message is stored (one row: 0 or 1)."""
    return (
        "SELECT EXISTS (SELECT 1 FROM predictions WHERE message_id = ? AND source = 'auto')",
        [message_id],
    )


def auto_row_query(message_id: int) -> Query:
    """The automatic prediction of a message (zero or one row)."""
    return (
        f"SELECT {_COLUMNS} FROM predictions WHERE message_id = ? AND source = 'auto' LIMIT 1",
        [message_id],
    )


def prediction_at_query(user_id: int, created_at: datetime) -> Query:
    """The requester's prediction made at ``created_at`` (zero or one row): how an answer's
    buttons find their row again, after a restart too. Within half a microsecond, the
    precision of a stored time."""
    ts = to_ts(created_at)
    return (
        f"SELECT {_COLUMNS} FROM predictions WHERE user_id = ? AND created_at BETWEEN ? AND ?"
        " ORDER BY id LIMIT 1",
        [user_id, ts - 5e-7, ts + 5e-7],
    )


# Rows per source; the oldest and newest row's time.
STATS_QUERIES: Final = (
    "SELECT source, COUNT(*) FROM predictions GROUP BY source",
    "SELECT MIN(created_at), MAX(created_at) FROM predictions",
)


def row_to_prediction(row: Sequence[Any]) -> StoredPrediction:
    """A row of :func:`history_query` as a value."""
    return StoredPrediction(
        id=row[0],
        guild_id=row[1],
        channel_id=row[2],
        message_id=row[3],
        user_id=row[4],
        source=row[5],
        label=row[6],
        p_positive=row[7],
        in_band=bool(row[8]),
        model_version=row[9],
        created_at=from_ts(row[10]),
        text=row[11],
        p_negative=row[12],
        p_neutral=row[13],
        unread=row[14],
        author_id=row[15],
        private=bool(row[16]),
    )


def mood_counts_result(rows: Iterable[Sequence[Any]]) -> dict[str, int]:
    """The rows of :func:`mood_counts_query` as ``{mood: n}``, every key of COUNT_KEYS."""
    counts: dict[str, int] = dict.fromkeys(COUNT_KEYS, 0)
    for mood, n in rows:
        counts[mood] = n
    return counts


def mood_over_time_result(
    rows: Iterable[Sequence[Any]], bucket: Bucket
) -> list[tuple[datetime, dict[str, int]]]:
    """The rows of :func:`mood_over_time_query` as ``[(bucket start, {mood: n}), ...]``."""
    width, shift = _BUCKETS[bucket]
    out: dict[int, dict[str, int]] = {}
    for index, mood, n in rows:
        out.setdefault(index, dict.fromkeys(COUNT_KEYS, 0))[mood] = n
    return [(from_ts(index * width - shift), counts) for index, counts in sorted(out.items())]


def stats_result(
    path: Path | Dsn,
    version: int,
    by_source: Iterable[Sequence[Any]],
    span: Sequence[Any],
    size_bytes: int,
) -> DatabaseStats:
    """The rows of :data:`STATS_QUERIES` (and what the caller knows of the file) as a value."""
    counts: dict[str, int] = dict.fromkeys(SOURCES, 0)
    for source, n in by_source:
        counts[source] = n
    oldest, newest = span
    return DatabaseStats(
        path=path,
        schema_version=version,
        rows=sum(counts.values()),
        rows_by_source=counts,
        oldest=None if oldest is None else from_ts(oldest),
        newest=None if newest is None else from_ts(newest),
        size_bytes=size_bytes,
    )
