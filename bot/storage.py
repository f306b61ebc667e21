"""The prediction log and per-guild settings, in one SQLite file (aiosqlite).

Storage knows nothing of Discord objects: it takes plain ids and values. One :class:`Storage`
owns one aiosqlite connection; the operator CLI reads the same file with the synchronous,
read-only ``read_*`` helpers, which run the very same SQL (built once by :func:`_where` and the
``_*_query`` builders).

Public API
==========

Records and filters (frozen dataclasses)::

    PredictionRecord(guild_id, channel_id, message_id, user_id, source, label, p_positive,
                     in_band, model_version, created_at, text=None,
                     p_negative=None, p_neutral=None, unread=None,
                     author_id=None, private=False)   # validated on creation
        author_id: whose words (auto/command: user_id; context_menu: the message's author)
        .mood -> 'neutral' if in_band or label == 'neutral' else label
        .read -> unread is None
        .probabilities -> (P(negative), P(neutral), P(positive)) of a three-way model, or None
    StoredPrediction(PredictionRecord + id)          # what queries return (text in safe form)
    GuildSettings(guild_id, positive_emoji, negative_emoji, band, store_auto_text,
                  retention_days, auto_channels)
    HistoryFilter(guild_id, user_id=None, channel_id=None, mood=None, since=None, until=None,
                  audience='operator')
        guild_id: an id, None for direct messages, or ANY_GUILD for every guild and DMs;
        since is inclusive, until exclusive (both timezone-aware);
        audience: 'operator' sees every row; members never see an opted-out author's words;
        'requester' (the member user_id) also sees their private rows, 'others' none.
    WriterStats / DatabaseStats                       # numbers for logs and the operator CLI

``Storage`` (all coroutines unless marked *sync*)::

    Storage.open(path, *, busy_timeout=5.0) -> Storage    create / migrate / refuse (StorageError)
    close(*, timeout=30.0)            stop the writer after it wrote everything queued, then close
    start_writer(*, batch_size=100, flush_interval=0.0, retry_initial=0.1, retry_max=30.0,
                 max_pending=MAX_PENDING)  sync
    submit(record) -> bool            sync, never blocks, constant time; False if refused
                                      (opted-out user or deleted message), else queued;
                                      StorageUnavailableError if the database is broken or
                                      max_pending records already wait
    save(record) -> bool              submit, then wait until that record is committed
                                      (group commit); StorageUnavailableError if it cannot be
    flush()                           wait until everything submitted so far is committed
    add(record) -> int | None         direct insert; the row id, or None if nothing was stored
    writer_stats -> WriterStats       property: pending, written, duplicates, refused, rejected,
                                      batches, failed_batches, running, failing,
                                      over_bound, unavailable
    history(flt, *, limit=10, offset=0) -> list[StoredPrediction]        newest first
    count(flt) -> int
    mood_counts(flt) -> {'positive': n, 'negative': n, 'neutral': n, 'unread': n}
                                      unread rows are counted apart, under no mood
    mood_over_time(flt, *, bucket='day') -> [(bucket_start_utc, {mood: n}), ...]  ascending,
                                      non-empty buckets only; weeks start on Monday 00:00 UTC;
                                      the same four keys
    has_auto_prediction(message_id) -> bool      also sees queued, not yet written records
    delete_messages(message_ids) -> int          rows deleted, queued ones included
    forget_user(user_id) -> int                  delete every row of the user or holding their
                                                 words (author_id), opt them out
    set_opt_out(user_id, opted_out) ; is_opted_out(user_id) -> bool ; opted_out(user_id) (sync)
    purge(*, default_days, now=None) -> int      retention: per guild, else default_days
    guild_settings(guild_id) -> GuildSettings    cached; defaults when nothing is stored
    set_auto_channel(guild_id, channel_id, enabled) -> GuildSettings
    update_guild_settings(guild_id, *, positive_emoji=None, negative_emoji=None, band=None,
                          store_auto_text=None, retention_days=None) -> GuildSettings
        None leaves a setting as it is; band='reset' / retention_days='reset' go back to the
        model's band / the bot-wide default. Bad values raise ValueError.
    stats() -> DatabaseStats

Read-only helpers for the operator CLI (plain sqlite3, ``file:...?mode=ro``)::

    read_history(path, flt, *, limit=10, offset=0); read_count(path, flt)
    read_mood_counts(path, flt); read_mood_over_time(path, flt, *, bucket='day'); read_stats(path)
    read_origin(path) -> str | None    which program noted it created the file (write_origin)

    write_origin(path, origin)   note in an existing database which program created it (the
                                 sandbox marks its own files so that only those are deleted)

Design decisions
================

* **File safety.** A missing file is created with ``os.open(..., 0o600)`` (parent folders with
  0o700) before SQLite touches it; SQLite gives the ``-wal``/``-shm`` files the same mode. An
  existing file is checked before connecting: a file that is not SQLite, a SQLite file of another
  program (other ``application_id``, or tables but no schema version) or one written by a newer
  version raises :class:`StorageError` naming the file and the fix, and nothing is written.
  No file is ever deleted, truncated or overwritten.
* **Schema.** ``PRAGMA user_version`` is the index into :data:`MIGRATIONS`; all pending steps run
  in one ``BEGIN IMMEDIATE`` transaction with the version bump, so a failed upgrade leaves the
  file as it was. WAL journal, ``busy_timeout``, ``foreign_keys=ON``. A step only ever adds
  (tables, indexes, nullable or defaulted columns): rows written by an older version keep every
  value they had; step 4 only fills its new ``author_id`` column where the author is known.
* **Probabilities.** ``p_positive`` is P(positive) against negative, for every model (a binary
  model's one probability). A three-way model's answer adds ``p_negative`` and ``p_neutral``
  (schema 3); P(positive) of the three is ``1 - p_negative - p_neutral``, so the three are
  stored once, in two columns that are both NULL or both set. Rows of a binary model, and rows
  written before schema 3, have neither. ``unread`` says why the model did not read a text
  (``empty``, ``unknown``, ``language:xx``); NULL when it did, and in rows before schema 3.
* **Time** is stored as UTC unix seconds (REAL, ``created_at``): compact, indexable, exact to the
  microsecond for dates up to 2106, and readable in the sqlite3 shell with
  ``datetime(created_at, 'unixepoch')``. Python values are timezone-aware UTC datetimes.
* **Text.** Any Python ``str`` is accepted. SQLite stores UTF-8, which cannot encode surrogate
  code points (``'\\ud800'``); each one is stored as U+FFFD (see :func:`safe_text`). Everything
  else, NUL characters included, round-trips exactly. Whether an automatic prediction keeps its
  text (``store_auto_text``) is the caller's policy: storage stores what it is given.
* **Idempotency.** A partial UNIQUE index on ``(message_id, source) WHERE source = 'auto'`` and
  ``INSERT ... ON CONFLICT DO NOTHING`` keep one automatic prediction per message when the gateway
  replays an event. (``ON CONFLICT DO NOTHING`` rather than ``INSERT OR IGNORE``: OR IGNORE would
  also silently skip rows that break a CHECK constraint.)
* **Writer (group commit).** ``submit`` appends to an in-memory deque (at most
  ``max_pending`` records) and returns at once; one task commits as soon as it has records,
  up to ``batch_size`` rows per transaction, and what arrives while a commit runs goes into the
  next one. ``save`` (what :class:`bot.mood.MoodService` uses) waits for the commit of its
  record, so a reaction or reply is only sent for a durable row; the wait is an await, the
  event loop never blocks. ``synchronous=FULL`` in WAL mode: a committed row survives a
  process kill and a power loss. A transient error (``database is
  locked``, ``disk full``, ``readonly``, ...) keeps the batch and retries with exponential
  backoff, logging one WARNING per failure streak and one INFO on recovery. If the database
  refuses a batch for its content (a constraint), the batch is written row by row so that the
  bad row alone is skipped (counted as ``rejected``, logged at ERROR) and cannot block the queue.
  ``flush`` (and so ``delete_messages``/``forget_user``) waits through a failure streak.
  ``close`` waits up to ``timeout`` for the queue to drain; if the database keeps failing, it
  logs at ERROR how many predictions were not written. Errors that retrying cannot cure are
  not retried: a corrupt file (SQLITE_CORRUPT, SQLITE_NOTADB: "database disk image is
  malformed", "file is not a database") or a file deleted or replaced while the bot runs
  (its ``(st_dev, st_ino)`` is compared with the one opened before every COMMIT). Then one
  ERROR names the file and the fix, the writer stops, waiters and later ``submit`` calls get
  :class:`StorageUnavailableError` at once. At open, ``PRAGMA quick_check`` (bounded by
  ``quick_check_s``) refuses a damaged file.
* **Privacy.** Each row records whose words it holds (``author_id``, schema 4): the requester's
  for automatic and ``/sentiment`` rows, the message's author's for the context menu (NULL for
  menu rows written before schema 4 whose author the migration could not tell). ``private``
  marks a request made privately (``/sentiment private:True``, the context menu): only its
  requester sees it (``HistoryFilter.audience``). Opt-outs live in a table and in an in-memory
  set loaded at open, so ``submit`` refuses, without touching the disk, any record whose
  requester *or author* opted out: no row at all, not even one without text. ``delete_messages`` and
  ``forget_user`` first flush (so what is queued lands and is counted), then mark the ids (so
  later submissions, and records queued in between, are refused), then delete: nothing queued
  survives them. Deleted message ids are remembered (the last
  :data:`TOMBSTONES_KEPT`, in memory only) so a late classification of a deleted message is not
  stored.
* **Settings** are cached in memory after the first read and reloaded after each change, so the
  message hot path never reads the disk.
* **Concurrency.** Two connections, each serialised by its own aiosqlite thread: one writes
  (transactions serialised by an asyncio lock), the other (``query_only``) runs the queries. In
  WAL mode a reader never waits for a writer, so while another program holds the write lock
  the writer waits (``busy_timeout``, then retries) but queries, and with them the message hot
  path (:meth:`Storage.has_auto_prediction`), carry on. Errors from SQLite in queries propagate
  as ``sqlite3.Error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import os
import re
import sqlite3
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import aiosqlite

__all__ = [
    "ANY_GUILD",
    "COUNT_KEYS",
    "DEFAULT_NEGATIVE_EMOJI",
    "DEFAULT_POSITIVE_EMOJI",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "AnyGuild",
    "Audience",
    "Bucket",
    "DatabaseStats",
    "GuildSettings",
    "HistoryFilter",
    "Mood",
    "PredictionRecord",
    "Source",
    "Storage",
    "StorageError",
    "StorageUnavailableError",
    "StoredPrediction",
    "WriterStats",
    "read_count",
    "read_history",
    "read_mood_counts",
    "read_mood_over_time",
    "read_origin",
    "read_stats",
    "safe_text",
    "write_origin",
]

log = logging.getLogger(__name__)

Source: TypeAlias = Literal["auto", "command", "context_menu"]
Mood: TypeAlias = Literal["positive", "negative", "neutral"]
Bucket: TypeAlias = Literal["hour", "day", "week"]
# Who looks at a query's rows (HistoryFilter.audience): the operator (every row), the member
# who made the predictions (their private rows too), or anyone else (no private rows).
Audience: TypeAlias = Literal["operator", "requester", "others"]

SOURCES: Final[tuple[Source, ...]] = ("auto", "command", "context_menu")
MOODS: Final[tuple[Mood, ...]] = ("positive", "negative", "neutral")
# The keys of mood_counts / mood_over_time: the moods, and the texts the model did not read.
COUNT_KEYS: Final[tuple[str, ...]] = (*MOODS, "unread")
# Why a text was not read (model.Prediction.unread): nothing but whitespace, no token the
# encoder knows, or another language (an ISO 639-1 code such as ``language:fr``).
_UNREAD: Final = re.compile(r"empty|unknown|language:[A-Za-z0-9_-]{1,16}")
_PROBABILITY_SLACK: Final = 1e-6  # rounding allowed in p_negative + p_neutral <= 1
DEFAULT_POSITIVE_EMOJI: Final = "👍"
DEFAULT_NEGATIVE_EMOJI: Final = "👎"
MAX_RETENTION_DAYS: Final = 36_500
MAX_EMOJI_LENGTH: Final = 100
TOMBSTONES_KEPT: Final = 10_000
# The writer keeps at most this many predictions in memory while the database cannot take
# them (about 1 KiB each with text); beyond it new predictions are refused.
MAX_PENDING: Final = 10_000
# PRAGMA quick_check at start-up stops after this many seconds on a very large file.
QUICK_CHECK_S: Final = 10.0
# SQLite result codes (primary) that mean the file itself is damaged: no retry can help.
_SQLITE_CORRUPT: Final = 11
_SQLITE_NOTADB: Final = 26
APPLICATION_ID: Final = 0x53454E54  # b"SENT": marks the file as a Sentiment Bot database
_SQLITE_HEADER: Final = b"SQLite format 3\x00"
_MAX_ID: Final = 2**63 - 1
_CHUNK: Final = 500  # ids per DELETE ... IN (...) statement


class StorageError(Exception):
    """The database cannot be used; the message names the file and what to do."""


class StorageUnavailableError(StorageError):
    """Storage cannot take (or confirm) this prediction: the database is corrupt, was deleted
    while the bot ran, the writer is closed, or the in-memory backlog is full. Callers should
    not tell users a prediction was saved; the message says why and what to do."""


class AnyGuild(enum.Enum):
    """Type of :data:`ANY_GUILD`."""

    ANY_GUILD = "any guild"


ANY_GUILD: Final = AnyGuild.ANY_GUILD
"""``HistoryFilter(guild_id=ANY_GUILD)``: rows of every guild and of direct messages."""


# --------------------------------------------------------------------------------------------
# Schema

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: the prediction log.
    (
        """CREATE TABLE predictions (
            id            INTEGER PRIMARY KEY,
            guild_id      INTEGER,                 -- NULL: direct message
            channel_id    INTEGER,
            message_id    INTEGER,                 -- NULL: /sentiment on typed text
            user_id       INTEGER NOT NULL,
            source        TEXT    NOT NULL CHECK (source IN ('auto', 'command', 'context_menu')),
            label         TEXT    NOT NULL CHECK (label IN ('positive', 'negative', 'neutral')),
            p_positive    REAL    NOT NULL CHECK (p_positive BETWEEN 0.0 AND 1.0),
            in_band       INTEGER NOT NULL CHECK (in_band IN (0, 1)),
            model_version TEXT    NOT NULL,
            created_at    REAL    NOT NULL,        -- UTC unix seconds
            text          TEXT                     -- NULL unless text is kept
        )""",
        """CREATE UNIQUE INDEX predictions_auto_once ON predictions (message_id, source)
            WHERE source = 'auto' AND message_id IS NOT NULL""",
        "CREATE INDEX predictions_guild_user_time ON predictions (guild_id, user_id, created_at)",
        "CREATE INDEX predictions_guild_channel_time"
        " ON predictions (guild_id, channel_id, created_at)",
        "CREATE INDEX predictions_guild_time ON predictions (guild_id, created_at)",
        "CREATE INDEX predictions_message ON predictions (message_id)",
        "CREATE INDEX predictions_user_time ON predictions (user_id, created_at)",
        "CREATE INDEX predictions_time ON predictions (created_at)",
    ),
    # 2: per-guild settings and privacy.
    (
        """CREATE TABLE guild_settings (
            guild_id        INTEGER PRIMARY KEY,
            positive_emoji  TEXT,                  -- NULL: DEFAULT_POSITIVE_EMOJI
            negative_emoji  TEXT,                  -- NULL: DEFAULT_NEGATIVE_EMOJI
            band_low        REAL,                  -- NULL: the model's band
            band_high       REAL,
            store_auto_text INTEGER NOT NULL DEFAULT 0 CHECK (store_auto_text IN (0, 1)),
            retention_days  INTEGER CHECK (retention_days IS NULL OR retention_days >= 1),
            CHECK ((band_low IS NULL) = (band_high IS NULL)),
            CHECK (band_low IS NULL
                   OR (0.0 <= band_low AND band_low <= 0.5 AND 0.5 <= band_high
                       AND band_high <= 1.0))
        )""",
        """CREATE TABLE auto_channels (
            guild_id   INTEGER NOT NULL REFERENCES guild_settings (guild_id) ON DELETE CASCADE,
            channel_id INTEGER NOT NULL,
            PRIMARY KEY (guild_id, channel_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE opt_outs (
            user_id INTEGER PRIMARY KEY,
            since   REAL NOT NULL                  -- UTC unix seconds
        )""",
    ),
    # 3: three-way probabilities and why a text was not read. Nullable columns added in place
    # (no table rewrite): rows of schemas 1 and 2 read back exactly as before, with NULLs.
    (
        "ALTER TABLE predictions ADD COLUMN p_negative REAL CHECK (p_negative BETWEEN 0.0 AND 1.0)",
        """ALTER TABLE predictions ADD COLUMN p_neutral REAL
            CHECK ((p_negative IS NULL) = (p_neutral IS NULL)
                   AND (p_neutral IS NULL
                        OR (p_neutral BETWEEN 0.0 AND 1.0
                            AND p_negative + p_neutral - 1.0 <= 1e-6)))""",
        """ALTER TABLE predictions ADD COLUMN unread TEXT
            CHECK (unread IS NULL
                   OR ((unread IN ('empty', 'unknown') OR unread LIKE 'language:_%')
                       AND p_negative IS NULL))""",
    ),
    # 4: privacy. Whose words a row holds (author_id: the requester's own for automatic and
    # /sentiment rows; the message's author for the context menu, NULL where unknown) and
    # whether the requester asked privately. Nullable / defaulted columns added in place; the
    # UPDATEs only fill the new column of existing rows: an automatic or /sentiment row holds
    # its requester's words, an old menu row its message's author's when the bot also reacted
    # to that message (the automatic row names the author), else it stays unknown (NULL).
    (
        "ALTER TABLE predictions ADD COLUMN author_id INTEGER",
        "ALTER TABLE predictions ADD COLUMN private INTEGER NOT NULL DEFAULT 0"
        " CHECK (private IN (0, 1))",
        "UPDATE predictions SET author_id = user_id WHERE source IN ('auto', 'command')",
        """UPDATE predictions SET author_id = (
            SELECT auto.user_id FROM predictions AS auto
            WHERE auto.message_id = predictions.message_id AND auto.source = 'auto')
            WHERE source = 'context_menu' AND message_id IS NOT NULL""",
        "CREATE INDEX predictions_author ON predictions (author_id) WHERE author_id IS NOT NULL",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_COLUMNS: Final = (
    "id, guild_id, channel_id, message_id, user_id, source, label, p_positive, in_band,"
    " model_version, created_at, text, p_negative, p_neutral, unread, author_id, private"
)
_INSERT_SQL: Final = (
    "INSERT INTO predictions (guild_id, channel_id, message_id, user_id, source, label,"
    " p_positive, in_band, model_version, created_at, text, p_negative, p_neutral, unread,"
    " author_id, private)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
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


# --------------------------------------------------------------------------------------------
# Values


def _check_id(name: str, value: object, *, nullable: bool) -> None:
    if value is None and nullable:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_ID:
        kind = "an integer id" + (" or None" if nullable else "")
        raise ValueError(f"{name} must be {kind} between 0 and 2**63-1, got {value!r}")


def _check_aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware (e.g. datetime.now(UTC)), got naive {value}"
        )
    return value.astimezone(UTC)


_SURROGATES: Final = re.compile("[\ud800-\udfff]")


def safe_text(value: str) -> str:
    """The form in which ``value`` is stored and read back.

    ``value`` itself, except that surrogate code points (which UTF-8, and so SQLite, cannot
    encode) become U+FFFD REPLACEMENT CHARACTER, one for one.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", value)
    return value


def _to_ts(value: datetime) -> float:
    return value.timestamp()


def _from_ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True)
class PredictionRecord:
    """One prediction to log. Validated on creation (ValueError/TypeError name the field).

    ``created_at`` must be timezone-aware; it is normalised to UTC. ``text`` may be any str
    (see :func:`safe_text` for how it is stored).

    ``p_positive`` is P(positive) against negative (neutral left aside). A three-way model's
    answer also gives ``p_negative`` and ``p_neutral`` (both or neither; P(positive) of the
    three is what they leave: see :attr:`probabilities`). ``unread`` is None when the model
    read the text, else why not: ``empty``, ``unknown`` or ``language:xx``; an unread text has
    no probabilities.

    ``author_id`` is whose words the text is: for ``auto`` and ``command`` rows always the
    requester (``user_id``; None is taken to mean that), for ``context_menu`` the author of the
    message analysed (None: unknown, rows written before schema 4). ``private``: the requester
    asked privately (``/sentiment private:True``, the context menu); only they see the row.
    """

    guild_id: int | None
    channel_id: int | None
    message_id: int | None
    user_id: int
    source: Source
    label: Mood
    p_positive: float
    in_band: bool
    model_version: str
    created_at: datetime
    text: str | None = None
    p_negative: float | None = None
    p_neutral: float | None = None
    unread: str | None = None
    author_id: int | None = None
    private: bool = False

    def __post_init__(self) -> None:
        _check_id("guild_id", self.guild_id, nullable=True)
        _check_id("channel_id", self.channel_id, nullable=True)
        _check_id("message_id", self.message_id, nullable=True)
        _check_id("user_id", self.user_id, nullable=False)
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.label not in MOODS:
            raise ValueError(f"label must be one of {', '.join(MOODS)}, got {self.label!r}")
        if isinstance(self.p_positive, bool) or not isinstance(self.p_positive, int | float):
            raise TypeError(f"p_positive must be a float, got {self.p_positive!r}")
        if not 0.0 <= self.p_positive <= 1.0:  # also refuses NaN
            raise ValueError(f"p_positive must lie in [0, 1], got {self.p_positive!r}")
        object.__setattr__(self, "p_positive", float(self.p_positive))
        object.__setattr__(self, "in_band", bool(self.in_band))
        object.__setattr__(self, "private", bool(self.private))
        _check_id("author_id", self.author_id, nullable=True)
        if self.source != "context_menu":
            # An automatic or /sentiment row holds its requester's own words.
            if self.author_id not in (None, self.user_id):
                raise ValueError(
                    f"author_id of a {self.source} prediction is its user_id ({self.user_id}), "
                    f"got {self.author_id!r}; only context_menu rows hold someone else's words"
                )
            object.__setattr__(self, "author_id", self.user_id)
        self._check_probabilities()
        if self.unread is not None:
            if not isinstance(self.unread, str) or not _UNREAD.fullmatch(self.unread):
                raise ValueError(
                    "unread must be None, 'empty', 'unknown' or 'language:xx' (an ISO 639-1 "
                    f"code), got {self.unread!r}"
                )
            if self.p_negative is not None:
                raise ValueError(
                    f"a text the model did not read ({self.unread}) has no probabilities, got "
                    f"p_negative={self.p_negative!r}, p_neutral={self.p_neutral!r}"
                )
        if not isinstance(self.model_version, str):
            raise TypeError(f"model_version must be a str, got {self.model_version!r}")
        if self.text is not None and not isinstance(self.text, str):
            raise TypeError(f"text must be a str or None, got {type(self.text).__name__}")
        object.__setattr__(self, "created_at", _check_aware("created_at", self.created_at))

    def _check_probabilities(self) -> None:
        if (self.p_negative is None) != (self.p_neutral is None):
            raise ValueError(
                "p_negative and p_neutral go together (a three-way model's probabilities) or "
                f"are both None, got p_negative={self.p_negative!r}, p_neutral={self.p_neutral!r}"
            )
        if self.p_negative is None:
            return
        for name in ("p_negative", "p_neutral"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a float or None, got {value!r}")
            if not 0.0 <= value <= 1.0:  # also refuses NaN
                raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
            object.__setattr__(self, name, float(value))
        assert self.p_neutral is not None
        if self.p_negative + self.p_neutral > 1.0 + _PROBABILITY_SLACK:
            raise ValueError(
                "p_negative + p_neutral must be at most 1 (P(positive) is what they leave), "
                f"got {self.p_negative!r} + {self.p_neutral!r}"
            )

    @property
    def mood(self) -> Mood:
        """What a person is told: ``neutral`` inside the band, else the label."""
        return "neutral" if self.in_band or self.label == "neutral" else self.label

    @property
    def read(self) -> bool:
        """False when the model did not read the text (see ``unread``)."""
        return self.unread is None

    @property
    def probabilities(self) -> tuple[float, float, float] | None:
        """P(negative), P(neutral), P(positive) of a three-way model; None for a binary model,
        a text not read, and rows written before schema 3."""
        if self.p_negative is None or self.p_neutral is None:
            return None
        return (
            self.p_negative,
            self.p_neutral,
            max(0.0, 1.0 - self.p_negative - self.p_neutral),
        )


@dataclass(frozen=True, kw_only=True)
class StoredPrediction(PredictionRecord):
    """A prediction read back from the database, with its row id."""

    id: int


@dataclass(frozen=True)
class GuildSettings:
    """A guild's settings; defaults for a guild that never changed anything."""

    guild_id: int
    positive_emoji: str = DEFAULT_POSITIVE_EMOJI
    negative_emoji: str = DEFAULT_NEGATIVE_EMOJI
    band: tuple[float, float] | None = None  # None: the model's band
    store_auto_text: bool = False
    retention_days: int | None = None  # None: the bot-wide default
    auto_channels: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True)
class HistoryFilter:
    """Which predictions a query sees.

    ``guild_id``: one guild, ``None`` for direct messages, or :data:`ANY_GUILD`.
    ``mood`` filters on what the user was told (``neutral`` includes in-band predictions; a
    text the model did not read matches no mood).
    ``since`` is inclusive, ``until`` exclusive; both must be timezone-aware.
    ``audience``: who will see the rows. ``operator`` (the default: the operator CLI, tests)
    sees every row. A member never sees the rows of an author who opted out; ``requester``,
    the member ``user_id`` looking at their own predictions, also sees their private ones;
    ``others`` (a moderator, a channel's history, the server's mood) sees no private row.
    """

    guild_id: int | AnyGuild | None
    user_id: int | None = None
    channel_id: int | None = None
    mood: Mood | None = None
    since: datetime | None = None
    until: datetime | None = None
    audience: Audience = "operator"

    def __post_init__(self) -> None:
        if self.audience not in ("operator", "requester", "others"):
            raise ValueError(
                f"audience must be operator, requester or others, got {self.audience!r}"
            )
        if self.audience == "requester" and self.user_id is None:
            raise ValueError("audience='requester' needs the requester's user_id")
        if self.guild_id is not ANY_GUILD:
            _check_id("guild_id", self.guild_id, nullable=True)
        _check_id("user_id", self.user_id, nullable=True)
        _check_id("channel_id", self.channel_id, nullable=True)
        if self.mood is not None and self.mood not in MOODS:
            raise ValueError(f"mood must be one of {', '.join(MOODS)} or None, got {self.mood!r}")
        if self.since is not None:
            object.__setattr__(self, "since", _check_aware("since", self.since))
        if self.until is not None:
            object.__setattr__(self, "until", _check_aware("until", self.until))
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError(f"since ({self.since}) is after until ({self.until})")


@dataclass(frozen=True)
class WriterStats:
    """The batching writer's counters since open."""

    pending: int  # submitted, not yet committed (queued or in the batch being written)
    written: int  # rows inserted
    duplicates: int  # automatic predictions already stored for their message
    refused: int  # not stored because the user opted out or the message was deleted
    rejected: int  # refused by the database itself (constraint); logged at ERROR
    batches: int  # committed batches
    failed_batches: int  # failed write attempts (each one retried)
    running: bool  # the writer task is running
    failing: bool  # in a failure streak now
    over_bound: int = 0  # refused because MAX_PENDING records already waited (not stored)
    unavailable: str | None = None  # why nothing is stored any more (corrupt, deleted file)


@dataclass(frozen=True)
class DatabaseStats:
    """What the operator CLI shows about a database file."""

    path: Path
    schema_version: int
    rows: int
    rows_by_source: dict[str, int]
    oldest: datetime | None
    newest: datetime | None
    size_bytes: int  # database file plus its write-ahead log


# --------------------------------------------------------------------------------------------
# SQL builders: one piece of code for each query, shared by the async and the read-only API.

_Query: TypeAlias = tuple[str, list[object]]


def _where(flt: HistoryFilter) -> _Query:
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
        params.append(_to_ts(flt.since))
    if flt.until is not None:
        clauses.append("created_at < ?")
        params.append(_to_ts(flt.until))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def _history_query(flt: HistoryFilter, limit: int, offset: int) -> _Query:
    for name, value in (("limit", limit), ("offset", offset)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    where, params = _where(flt)
    sql = (
        f"SELECT {_COLUMNS} FROM predictions {where}"
        " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
    )
    return sql, [*params, limit, offset]


def _count_query(flt: HistoryFilter) -> _Query:
    where, params = _where(flt)
    return f"SELECT COUNT(*) FROM predictions {where}", params


def _mood_counts_query(flt: HistoryFilter) -> _Query:
    where, params = _where(flt)
    return f"SELECT {_MOOD_SQL} AS mood, COUNT(*) FROM predictions {where} GROUP BY mood", params


def _mood_over_time_query(flt: HistoryFilter, bucket: Bucket) -> _Query:
    if bucket not in _BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(_BUCKETS)}, got {bucket!r}")
    width, shift = _BUCKETS[bucket]
    where, params = _where(flt)
    sql = (
        f"SELECT CAST((created_at + ?) / ? AS INTEGER) AS bucket, {_MOOD_SQL} AS mood, COUNT(*)"
        f" FROM predictions {where} GROUP BY bucket, mood ORDER BY bucket"
    )
    return sql, [shift, width, *params]


_STATS_QUERIES: Final = (
    "SELECT source, COUNT(*) FROM predictions GROUP BY source",
    "SELECT MIN(created_at), MAX(created_at) FROM predictions",
)


def _row_to_prediction(row: Sequence[Any]) -> StoredPrediction:
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
        created_at=_from_ts(row[10]),
        text=row[11],
        p_negative=row[12],
        p_neutral=row[13],
        unread=row[14],
        author_id=row[15],
        private=bool(row[16]),
    )


def _mood_counts_result(rows: Iterable[Sequence[Any]]) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(COUNT_KEYS, 0)
    for mood, n in rows:
        counts[mood] = n
    return counts


def _mood_over_time_result(
    rows: Iterable[Sequence[Any]], bucket: Bucket
) -> list[tuple[datetime, dict[str, int]]]:
    width, shift = _BUCKETS[bucket]
    out: dict[int, dict[str, int]] = {}
    for index, mood, n in rows:
        out.setdefault(index, dict.fromkeys(COUNT_KEYS, 0))[mood] = n
    return [(_from_ts(index * width - shift), counts) for index, counts in sorted(out.items())]


def _stats_result(
    path: Path, version: int, by_source: Iterable[Sequence[Any]], span: Sequence[Any]
) -> DatabaseStats:
    counts: dict[str, int] = dict.fromkeys(SOURCES, 0)
    for source, n in by_source:
        counts[source] = n
    size = 0
    for file in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(OSError):
            size += file.stat().st_size
    oldest, newest = span
    return DatabaseStats(
        path=path,
        schema_version=version,
        rows=sum(counts.values()),
        rows_by_source=counts,
        oldest=None if oldest is None else _from_ts(oldest),
        newest=None if newest is None else _from_ts(newest),
        size_bytes=size,
    )


def _record_params(record: PredictionRecord) -> tuple[object, ...]:
    return (
        record.guild_id,
        record.channel_id,
        record.message_id,
        record.user_id,
        record.source,
        record.label,
        record.p_positive,
        int(record.in_band),
        safe_text(record.model_version),
        _to_ts(record.created_at),
        None if record.text is None else safe_text(record.text),
        record.p_negative,
        record.p_neutral,
        record.unread,
        record.author_id,
        int(record.private),
    )


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


def _chunks(values: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# --------------------------------------------------------------------------------------------
# Opening files


_FIX = "move it aside or restore a backup, or point SENTIMENT_DB at another file"


def _newer_error(path: Path, version: int) -> StorageError:
    return StorageError(
        f"{path} was written by a newer Sentiment Bot (schema {version}, this version knows "
        f"{SCHEMA_VERSION}); upgrade or point SENTIMENT_DB at another file"
    )


def _check_existing_file(path: Path) -> bool:
    """True if ``path`` exists (and looks like SQLite or is empty); raises StorageError if it
    cannot be a database. Reads only."""
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        raise StorageError(f"{path} is a folder, not a database file; {_FIX}") from None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}; check its permissions") from exc
    if header and header != _SQLITE_HEADER:
        raise StorageError(
            f"{path} is not a SQLite database (nothing was changed); {_FIX}. "
            "Sentiment Bot never deletes or overwrites a file it does not recognise."
        )
    return True


def _create_file(path: Path) -> None:
    """Create the parent folders (0o700) and an empty database file readable by its owner only."""
    try:
        # Each missing folder 0o700: mkdir(parents=True) gives the intermediate ones the
        # umask's default (0o755, or 0o777 under umask 0).
        missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
        for folder in reversed(missing):
            folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # created meanwhile by someone else: opened like any existing file
    except OSError as exc:
        raise StorageError(
            f"cannot create the database {path}: {exc.strerror}; check that the folder is "
            "writable or point SENTIMENT_DB at another file"
        ) from exc
    os.close(fd)


def _check_identity(path: Path, version: int, app_id: int, has_tables: bool) -> None:
    if version > SCHEMA_VERSION:
        raise _newer_error(path, version)
    if app_id not in (0, APPLICATION_ID):
        raise StorageError(
            f"{path} is a SQLite database of another program (application_id {app_id:#x}); "
            "point SENTIMENT_DB at another file"
        )
    if version == 0 and has_tables:
        raise StorageError(
            f"{path} is a SQLite database but not a Sentiment Bot one (it has tables and no "
            "schema version); point SENTIMENT_DB at another file"
        )


_IDENTITY_SQL: Final = (
    "SELECT (SELECT user_version FROM pragma_user_version),"
    " (SELECT application_id FROM pragma_application_id),"
    " EXISTS (SELECT 1 FROM sqlite_master)"
)


@contextlib.contextmanager
def _open_readonly(path: str | Path) -> Iterator[tuple[sqlite3.Connection, Path, int]]:
    """A read-only plain sqlite3 connection to a Sentiment Bot database, its path and version."""
    path = Path(path).expanduser().resolve()
    if not _check_existing_file(path):
        raise StorageError(
            f"no database at {path}: the bot creates it on its first start; check SENTIMENT_DB"
        )
    try:
        conn = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {path} read-only ({exc}); {_FIX}") from exc
    try:
        try:
            version, app_id, has_tables = conn.execute(_IDENTITY_SQL).fetchone()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot read {path} ({exc}); {_FIX}") from exc
        _check_identity(path, version, app_id, bool(has_tables))
        if version == 0:
            raise StorageError(f"{path} is empty: the bot has not written to it yet")
        yield conn, path, version
    finally:
        conn.close()


_SYNCHRONOUS_SQL: Final = "PRAGMA synchronous = FULL"


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of ``path``: tells the file the bot opened from one put in its place."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _quick_check(path: Path, limit_s: float) -> tuple[list[str] | None, float]:
    """``PRAGMA quick_check`` on its own read-only connection, stopped after ``limit_s``.

    Returns (the problems found, or None if stopped; seconds taken). ``["ok"]`` is a clean file.
    """
    started = time.monotonic()
    deadline = started + limit_s
    conn = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True, timeout=5.0)
    try:
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            rows = conn.execute("PRAGMA quick_check(20)").fetchall()
        except sqlite3.OperationalError as exc:
            if "interrupt" in str(exc):
                return None, time.monotonic() - started
            raise
        return [str(r[0]) for r in rows], time.monotonic() - started
    finally:
        conn.close()


async def _check_integrity(path: Path, limit_s: float) -> None:
    """Refuse a damaged file at start-up (StorageError naming the file and the fix)."""
    if limit_s <= 0:
        return
    try:
        problems, took = await asyncio.to_thread(_quick_check, path, limit_s)
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot use {path} ({exc}); {_FIX}") from exc
    if problems is None:
        log.warning(
            "%s: the integrity check (PRAGMA quick_check) was stopped after %.0f s on this large "
            "file; run it by hand while the bot is stopped: sqlite3 %s 'PRAGMA quick_check'",
            path,
            took,
            path,
        )
    elif problems != ["ok"]:
        lines = [
            line.strip()
            for problem in problems
            for line in problem.splitlines()
            if line.strip() and not line.startswith("***")
        ]
        raise StorageError(
            f"{path} is damaged (the integrity check, quick_check, found: "
            f"{'; '.join(lines[:3])}); nothing was changed. {_CORRUPT_FIX.format(path=path)}"
        )
    else:
        log.debug("%s: quick_check ok in %.2f s", path, took)


_CORRUPT_FIX: Final = (
    "Stop the bot and restore a backup (README, Backup and restore); if only an index is "
    "damaged, `sqlite3 {path} REINDEX` repairs it; or move the file (and its -wal and -shm) "
    "aside and start afresh"
)


# --------------------------------------------------------------------------------------------
# The async storage


class Storage:
    """The prediction log and settings of one bot; create with :meth:`open`."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        path: Path,
        opted_out: set[int],
        reader: aiosqlite.Connection | None = None,
    ) -> None:
        """Private: use :meth:`Storage.open`."""
        self.path = path
        self._db = db
        # Queries run on their own connection: in WAL mode a read never waits for a write
        # lock, so a writer stuck on a locked file (busy_timeout) cannot stall the hot path.
        self._reader = db if reader is None else reader
        self._tx_lock = asyncio.Lock()  # one write transaction at a time
        self._settings_lock = asyncio.Lock()  # cache fills and settings changes
        self._settings: dict[int, GuildSettings] = {}
        self._opted_out = opted_out
        self._tombstones: OrderedDict[int, None] = OrderedDict()
        # writer state
        self._pending: deque[PredictionRecord] = deque()
        self._inflight: list[PredictionRecord] = []
        self._drain_lock = asyncio.Lock()  # one consumer of the queue at a time (FIFO)
        self._wake = asyncio.Event()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._batch_size = 100
        self._flush_interval = 0.5
        self._retry_initial = 0.1
        self._retry_max = 30.0
        self._submitted = 0
        self._processed = 0
        self._written = 0
        self._duplicates = 0
        self._refused = 0
        self._rejected = 0
        self._batches = 0
        self._failed_batches = 0
        self._failing = False
        self._failure: str | None = None  # what the writer last failed with, while failing
        self._stopping = False
        self._closed = False
        self._max_pending = MAX_PENDING
        self._pending_auto: dict[int, int] = {}  # message id -> queued automatic records
        self._full_since: float | None = None  # backlog at its bound since (monotonic)
        self._over_bound = 0  # predictions refused because the backlog was full
        self._unavailable: str | None = None  # why nothing can be stored any more
        self._identity = _file_identity(path)  # (st_dev, st_ino) of the file opened

    # -- opening and closing -----------------------------------------------------------------

    @classmethod
    async def open(
        cls, path: str | Path, *, busy_timeout: float = 5.0, quick_check_s: float = QUICK_CHECK_S
    ) -> Storage:
        """Open (creating or migrating) the database at ``path``.

        Raises StorageError for a file that is not a Sentiment Bot database, one written by a
        newer version, one that cannot be created or read, or one that ``PRAGMA quick_check``
        finds damaged (stopped after ``quick_check_s`` seconds on a huge file: a WARNING);
        such a file is left unchanged.
        """
        path = Path(path).expanduser().resolve()
        if not _check_existing_file(path):
            _create_file(path)
        else:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                log.warning(
                    "%s can be read by other users (mode %o); chmod 600 it to keep "
                    "predictions private",
                    path,
                    mode,
                )
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {path} ({exc}); {_FIX}") from exc
        try:
            await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000):d}")
            await db.execute("PRAGMA foreign_keys = ON")
            rows = list(await db.execute_fetchall(_IDENTITY_SQL))
            version, app_id, has_tables = rows[0]
            _check_identity(path, version, app_id, bool(has_tables))
            # Only now write anything: the file is ours (or empty) and not from the future.
            mode_rows = list(await db.execute_fetchall("PRAGMA journal_mode = WAL"))
            if str(mode_rows[0][0]).lower() != "wal":
                log.warning("%s: WAL journal mode unavailable, using %s", path, mode_rows[0][0])
            # Group commit makes each commit carry many rows, so syncing the WAL on every
            # commit is cheap: FULL keeps a committed row through a power loss, not only a
            # crash of the process (NORMAL would; see README, Operations).
            await db.execute(_SYNCHRONOUS_SQL)
            if has_tables:
                await _check_integrity(path, quick_check_s)
            await _migrate(db, path)
            opted_out = {
                row[0] for row in await db.execute_fetchall("SELECT user_id FROM opt_outs")
            }
            reader = await _connect_reader(path, busy_timeout)
        except BaseException as exc:
            await db.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise StorageError(f"cannot use {path} ({exc}); {_FIX}") from exc
            raise
        return cls(db, path, opted_out, reader)

    async def close(self, *, timeout: float | None = 30.0) -> None:
        """Write everything queued (waiting at most ``timeout`` seconds), then close.

        If the database keeps failing past ``timeout``, the predictions still queued are not
        written and an ERROR says how many. Closing twice is harmless.
        """
        if self._closed:
            return
        self._stopping = True
        self._wake.set()
        try:
            if self._writer is not None and not self._writer.done():
                await asyncio.wait_for(self._writer, timeout)
            else:
                await asyncio.wait_for(self._drain(), timeout)
        except TimeoutError:
            log.error(
                "Closing %s with %d predictions not written: the database kept failing for %s "
                "seconds (see the warning above)",
                self.path,
                len(self._pending),
                timeout,
            )
        finally:
            self._closed = True
            self._fail_waiters(StorageUnavailableError(f"storage for {self.path} is closed"))
            try:
                await self._db.close()
            finally:
                if self._reader is not self._db:
                    await self._reader.close()

    def _ensure_open(self) -> None:
        if self._closed:
            raise StorageError(f"storage for {self.path} is closed")

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back on any error."""
        self._ensure_open()
        async with self._tx_lock:
            try:
                # Inside the try: a caller cancelled while BEGIN waits for a lock (a command's
                # bounded wait) must not leave the connection in a transaction; the ROLLBACK
                # runs after the BEGIN in aiosqlite's thread.
                await self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                await self._db.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    await self._db.rollback()
                raise

    # -- the writer --------------------------------------------------------------------------

    def start_writer(
        self,
        *,
        batch_size: int = 100,
        flush_interval: float = 0.0,
        retry_initial: float = 0.1,
        retry_max: float = 30.0,
        max_pending: int = MAX_PENDING,
    ) -> None:
        """Start the task that writes submitted records in batches (call inside the loop).

        Group commit: with ``flush_interval`` 0 (the default) the writer commits as soon as it
        has records; what arrives while a commit runs goes into the next one (up to
        ``batch_size`` rows per transaction). A positive ``flush_interval`` waits that long
        for a batch to fill (unless someone awaits :meth:`save`, :meth:`flush` or
        :meth:`close`). Failed writes are retried after ``retry_initial`` seconds, doubling up
        to ``retry_max``. At most ``max_pending`` records wait in memory.
        """
        self._ensure_open()
        if self._writer is not None and not self._writer.done():
            raise StorageError("the writer is already running")
        if batch_size < 1 or max_pending < 1:
            raise ValueError(
                f"batch_size and max_pending must be at least 1, got {batch_size}, {max_pending}"
            )
        if flush_interval < 0 or retry_initial <= 0 or retry_max < retry_initial:
            raise ValueError(
                "flush_interval must be >= 0 and 0 < retry_initial <= retry_max, got "
                f"{flush_interval}, {retry_initial}, {retry_max}"
            )
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._max_pending = max_pending
        self._writer = asyncio.get_running_loop().create_task(
            self._run_writer(), name="sentiment-storage-writer"
        )
        self._writer.add_done_callback(self._writer_done)

    def submit(self, record: PredictionRecord) -> bool:
        """Queue ``record`` for the writer; never blocks; constant time.

        Returns False, storing nothing, if the user opted out or the message was deleted.
        Raises :class:`StorageUnavailableError` if the database is broken (corrupt, deleted) or
        ``max_pending`` records already wait for a database that cannot write.
        """
        self._ensure_open()
        if not isinstance(record, PredictionRecord):
            raise TypeError(f"submit takes a PredictionRecord, got {type(record).__name__}")
        if self._unavailable is not None:
            raise StorageUnavailableError(self._unavailable)
        if not self._accepts(record):
            self._refused += 1
            return False
        if len(self._pending) + len(self._inflight) >= self._max_pending:
            self._over_bound += 1
            if self._full_since is None:
                self._full_since = time.monotonic()
                log.error(
                    "%d predictions are waiting for %s, the most kept in memory; new "
                    "predictions are not stored (and not reacted to) until the database takes "
                    "the backlog",
                    self._max_pending,
                    self.path,
                )
            raise StorageUnavailableError(
                f"{self._max_pending} predictions are already waiting for {self.path}"
            )
        self._pending.append(record)
        self._submitted += 1
        if record.source == "auto" and record.message_id is not None:
            self._pending_auto[record.message_id] = self._pending_auto.get(record.message_id, 0) + 1
        if len(self._pending) == 1 or len(self._pending) >= self._batch_size:
            self._wake.set()
        return True

    async def save(self, record: PredictionRecord) -> bool:
        """Submit ``record`` and return once it is committed (group commit: it shares its
        transaction with whatever else is queued). False if refused (see :meth:`submit`).

        Waits through transient failures (locked, disk full, read-only: retried). Raises
        :class:`StorageUnavailableError` if the database breaks, the backlog is full, or storage
        closes before the record is written: then it is not known to be stored.
        """
        if not self.submit(record):
            return False
        target = self._submitted
        if self._writer is None or self._writer.done():
            await self._drain()
        elif self._processed < target:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append((target, future))
            await future
        if self._unavailable is not None and self._processed < target:
            raise StorageUnavailableError(self._unavailable)
        return True

    async def flush(self) -> None:
        """Return once everything submitted before the call is committed (or refused).

        Waits through write failures (they are retried); wrap it in ``asyncio.wait_for`` to
        bound the wait. Without a running writer, writes the queue itself.
        """
        self._ensure_open()
        target = self._submitted
        if self._processed >= target:
            return
        if self._writer is None or self._writer.done():
            await self._drain()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        self._wake.set()
        await future

    async def add(self, record: PredictionRecord) -> int | None:
        """Insert ``record`` now, bypassing the queue.

        Returns the new row id, or None when nothing was stored: an automatic prediction
        already stored for that message, an opted-out user, or a deleted message.
        """
        if not self._accepts(record):
            self._refused += 1
            return None
        async with self._transaction() as db:
            cursor = await db.execute(_INSERT_SQL, _record_params(record))
            if cursor.rowcount != 1:
                self._duplicates += 1
                return None
            self._written += 1
            return cursor.lastrowid

    @property
    def writer_stats(self) -> WriterStats:
        """Counters of the batching writer since open."""
        return WriterStats(
            pending=len(self._pending) + len(self._inflight),
            written=self._written,
            duplicates=self._duplicates,
            refused=self._refused,
            rejected=self._rejected,
            batches=self._batches,
            failed_batches=self._failed_batches,
            running=self._writer is not None and not self._writer.done(),
            failing=self._failing,
            over_bound=self._over_bound,
            unavailable=self._unavailable,
        )

    @property
    def failure(self) -> str | None:
        """SQLite's words for why the writer's writes are failing and being retried (e.g.
        "database is locked"), or None while they are not."""
        return self._failure if self._failing else None

    def _accepts(self, record: PredictionRecord) -> bool:
        # Neither the requester nor the author of the words may have opted out.
        return (
            record.user_id not in self._opted_out and record.author_id not in self._opted_out
        ) and (record.message_id is None or record.message_id not in self._tombstones)

    def _urgent(self) -> bool:
        return self._stopping or bool(self._waiters)

    async def _run_writer(self) -> None:
        while True:
            while not self._pending and not self._stopping:
                self._wake.clear()
                await self._wake.wait()
            if not self._pending or self._unavailable is not None:
                return  # stopping, and everything is written; or nothing can be written
            if (
                self._flush_interval > 0
                and len(self._pending) < self._batch_size
                and not self._urgent()
            ):
                self._wake.clear()  # set again by a full batch, flush() or close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._flush_interval)
            try:
                await self._drain()
            except StorageUnavailableError:
                return  # logged once by _break_down; submit() now refuses

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            error = StorageError("the storage writer was cancelled")
        elif (exc := task.exception()) is not None:
            log.error("The storage writer stopped", exc_info=exc)
            error = StorageError(f"the storage writer stopped: {exc!r}")
        else:
            return
        self._fail_waiters(error)

    def _fail_waiters(self, error: BaseException) -> None:
        waiters, self._waiters = self._waiters, []
        for _, future in waiters:
            if not future.done():
                future.set_exception(error)

    def _resolve_waiters(self) -> None:
        still: list[tuple[int, asyncio.Future[None]]] = []
        for target, future in self._waiters:
            if future.done():
                continue
            if self._processed >= target:
                future.set_result(None)
            else:
                still.append((target, future))
        self._waiters = still

    async def _drain(self) -> None:
        """Write everything queued, in order, in batches; the only consumer of the queue."""
        async with self._drain_lock:
            while self._pending and self._unavailable is None:
                n = min(len(self._pending), self._batch_size)
                self._inflight = [self._pending.popleft() for _ in range(n)]
                try:
                    await self._write_batch(self._inflight)
                except BaseException:
                    # Cancelled (close timed out) or a bug: keep the records counted as pending.
                    self._pending.extendleft(reversed(self._inflight))
                    raise
                finally:
                    done, self._inflight = self._inflight, []
                for record in done:
                    if record.source == "auto" and record.message_id is not None:
                        left = self._pending_auto.pop(record.message_id, 1) - 1
                        if left > 0:
                            self._pending_auto[record.message_id] = left
                self._processed += n
                if self._full_since is not None:
                    log.info(
                        "%s takes predictions again after %.0f s; %d were not stored meanwhile",
                        self.path,
                        time.monotonic() - self._full_since,
                        self._over_bound,
                    )
                    self._full_since = None
                self._resolve_waiters()

    async def _write_batch(self, batch: list[PredictionRecord]) -> None:
        """Commit ``batch``, retrying transient errors until it lands."""
        rows = [_record_params(r) for r in batch if self._accepts(r)]
        self._refused += len(batch) - len(rows)
        if not rows:
            return
        one_by_one = False
        rejected = 0
        delay = self._retry_initial
        while True:
            try:
                if one_by_one:
                    inserted, rejected = await self._insert_each(rows)
                else:
                    async with self._transaction() as db:
                        cursor = await db.executemany(_INSERT_SQL, rows)
                        inserted = cursor.rowcount
                        self._check_file()  # before COMMIT: a deleted file rolls back
                break
            except StorageUnavailableError:
                self._break_down(len(batch), None)
                raise
            except _ROW_ERRORS as exc:
                if one_by_one:
                    raise
                # The database refuses some row for itself: find it by writing rows one by one.
                log.debug("batch refused (%s); writing its rows one by one", exc)
                one_by_one = True
            except (sqlite3.Error, OSError) as exc:
                self._failed_batches += 1
                if _is_corruption(exc):
                    self._break_down(len(batch), exc)
                    raise StorageUnavailableError(self._unavailable) from exc
                self._failure = str(exc)
                if not self._failing:
                    self._failing = True
                    log.warning(
                        "Cannot write %d predictions to %s (%s); keeping them in memory and "
                        "retrying (%d queued in all)",
                        len(rows),
                        self.path,
                        exc,
                        len(self._pending) + len(batch),
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
        if self._failing:
            self._failing = False
            log.info(
                "Writing predictions to %s works again (%d failed attempts so far)",
                self.path,
                self._failed_batches,
            )
        self._batches += 1
        self._written += inserted
        self._duplicates += len(rows) - inserted - rejected
        self._rejected += rejected

    def _check_file(self) -> None:
        """Raise StorageUnavailableError if the file opened is gone or another file took its place
        (SQLite would go on writing to the deleted inode, which nobody can open again)."""
        if self._identity is not None and _file_identity(self.path) != self._identity:
            raise StorageUnavailableError(
                f"the database file {self.path} was deleted or replaced while the bot ran"
            )

    def _break_down(self, batch: int, exc: BaseException | None) -> None:
        """Storage cannot work any more: say so once, stop accepting, free everyone waiting."""
        if self._unavailable is not None:
            return
        if exc is None:
            what = (
                f"the database file {self.path} was deleted or replaced while the bot ran "
                "(its device and inode changed)"
            )
            fix = (
                "Restart the bot to create a new file, or stop it and restore a backup "
                "(README, Backup and restore)"
            )
        else:
            what = f"the database {self.path} is damaged ({exc})"
            fix = _CORRUPT_FIX.format(path=self.path)
        self._unavailable = f"{what}; predictions are not being stored"
        queued = len(self._pending) + batch
        log.error(
            "%s. Predictions are no longer stored and automatic reactions stop; /sentiment "
            "still answers, saying the answer was not saved. %d predictions in memory are not "
            "written. %s, then restart the bot.",
            what,
            queued,
            fix,
        )
        self._fail_waiters(StorageUnavailableError(self._unavailable))

    async def _insert_each(self, rows: list[tuple[object, ...]]) -> tuple[int, int]:
        """Insert rows one at a time in one transaction, skipping (and logging) refused rows.

        Returns (rows inserted, rows refused).
        """
        inserted = 0
        rejected = 0
        async with self._transaction() as db:
            for row in rows:
                try:
                    cursor = await db.execute(_INSERT_SQL, row)
                except _ROW_ERRORS as exc:
                    rejected += 1
                    log.error(
                        "The database refused a prediction (%s); it is not stored: "
                        "user_id=%s message_id=%s source=%s label=%s",
                        exc,
                        row[3],
                        row[2],
                        row[4],
                        row[5],
                    )
                    continue
                inserted += cursor.rowcount
        return inserted, rejected

    # -- queries -----------------------------------------------------------------------------

    async def _fetchall(self, query: _Query) -> list[Sequence[Any]]:
        self._ensure_open()
        sql, params = query
        return list(await self._reader.execute_fetchall(sql, params))

    async def history(
        self, flt: HistoryFilter, *, limit: int = 10, offset: int = 0
    ) -> list[StoredPrediction]:
        """Predictions matching ``flt``, newest first."""
        rows = await self._fetchall(_history_query(flt, limit, offset))
        return [_row_to_prediction(row) for row in rows]

    async def count(self, flt: HistoryFilter) -> int:
        """How many predictions match ``flt``."""
        rows = await self._fetchall(_count_query(flt))
        return int(rows[0][0])

    async def mood_counts(self, flt: HistoryFilter) -> dict[str, int]:
        """``{'positive': n, 'negative': n, 'neutral': n, 'unread': n}`` over the predictions
        matching; texts the model did not read count under ``unread`` only."""
        return _mood_counts_result(await self._fetchall(_mood_counts_query(flt)))

    async def mood_over_time(
        self, flt: HistoryFilter, *, bucket: Bucket = "day"
    ) -> list[tuple[datetime, dict[str, int]]]:
        """Mood counts per UTC hour/day/week (weeks start Monday); non-empty buckets, ascending."""
        rows = await self._fetchall(_mood_over_time_query(flt, bucket))
        return _mood_over_time_result(rows, bucket)

    async def has_auto_prediction(self, message_id: int) -> bool:
        """Whether an automatic prediction for ``message_id`` is stored or queued.

        The queue is looked up in constant time (an index by message id), whatever its size.
        """
        if message_id in self._pending_auto:
            return True
        rows = await self._fetchall(
            (
                "SELECT EXISTS (SELECT 1 FROM predictions"
                " WHERE message_id = ? AND source = 'auto')",
                [message_id],
            )
        )
        return bool(rows[0][0])

    async def stats(self) -> DatabaseStats:
        """Rows, rows per source, time span and file size, for the operator CLI."""
        by_source = await self._fetchall((_STATS_QUERIES[0], []))
        span = await self._fetchall((_STATS_QUERIES[1], []))
        return _stats_result(self.path, SCHEMA_VERSION, by_source, span[0])

    # -- deletion and privacy ----------------------------------------------------------------

    def _add_tombstones(self, message_ids: Iterable[int]) -> None:
        for message_id in message_ids:
            self._tombstones[message_id] = None
            self._tombstones.move_to_end(message_id)
        while len(self._tombstones) > TOMBSTONES_KEPT:
            self._tombstones.popitem(last=False)

    async def delete_messages(self, message_ids: Sequence[int]) -> int:
        """Delete every prediction about these messages; returns the rows deleted.

        Predictions for them that are queued, or submitted later, are not stored either.
        """
        ids = list(dict.fromkeys(message_ids))
        for message_id in ids:
            _check_id("message_id", message_id, nullable=False)
        if not ids:
            return 0
        # Land what is queued first, so the count covers it; from then on, records for these
        # messages are refused (queued ones are dropped at write time).
        await self.flush()
        self._add_tombstones(ids)
        deleted = 0
        async with self._transaction() as db:
            for chunk in _chunks(ids, _CHUNK):
                cursor = await db.execute(
                    f"DELETE FROM predictions WHERE message_id IN ({_placeholders(len(chunk))})",
                    list(chunk),
                )
                deleted += cursor.rowcount
        return deleted

    async def forget_user(self, user_id: int) -> int:
        """Delete every prediction of the user, and every one holding their words (someone
        else's context menu on their message), in every guild, and opt them out.

        Returns the rows deleted. Nothing queued for or about the user survives, and nothing
        new is stored until :meth:`set_opt_out` (user_id, False).
        """
        _check_id("user_id", user_id, nullable=False)
        await self.flush()  # land what is queued, so the count covers it
        was_out = user_id in self._opted_out
        self._opted_out.add(user_id)  # refuse queued and new records from now on
        try:
            async with self._transaction() as db:
                cursor = await db.execute(
                    "DELETE FROM predictions WHERE user_id = ? OR author_id = ?",
                    [user_id, user_id],
                )
                deleted = cursor.rowcount
                await db.execute(
                    "INSERT INTO opt_outs (user_id, since) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    [user_id, time.time()],
                )
        except BaseException:
            if not was_out:  # not carried out (e.g. the database is locked): nothing changed
                self._opted_out.discard(user_id)
            raise
        return deleted

    async def set_opt_out(self, user_id: int, opted_out: bool) -> None:
        """Opt the user out of (or back into) prediction logging; persisted."""
        _check_id("user_id", user_id, nullable=False)
        if opted_out:
            self._opted_out.add(user_id)
            async with self._transaction() as db:
                await db.execute(
                    "INSERT INTO opt_outs (user_id, since) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    [user_id, time.time()],
                )
        else:
            async with self._transaction() as db:
                await db.execute("DELETE FROM opt_outs WHERE user_id = ?", [user_id])
            self._opted_out.discard(user_id)

    async def is_opted_out(self, user_id: int) -> bool:
        """Whether the user opted out (from memory: no disk access)."""
        return user_id in self._opted_out

    def opted_out(self, user_id: int) -> bool:
        """Whether the user opted out; synchronous, for the message hot path."""
        return user_id in self._opted_out

    async def purge(self, *, default_days: int | None, now: datetime | None = None) -> int:
        """Delete predictions older than their guild's ``retention_days``, or ``default_days``
        for guilds without one and for direct messages (None: keep those forever).

        Returns the rows deleted.
        """
        if default_days is not None:
            _check_retention("default_days", default_days)
        now = datetime.now(UTC) if now is None else _check_aware("now", now)
        deleted = 0
        async with self._transaction() as db:
            custom = list(
                await db.execute_fetchall(
                    "SELECT guild_id, retention_days FROM guild_settings"
                    " WHERE retention_days IS NOT NULL"
                )
            )
            for guild_id, days in custom:
                cursor = await db.execute(
                    "DELETE FROM predictions WHERE guild_id = ? AND created_at < ?",
                    [guild_id, _to_ts(now - timedelta(days=days))],
                )
                deleted += cursor.rowcount
            if default_days is not None:
                cursor = await db.execute(
                    "DELETE FROM predictions WHERE created_at < ? AND (guild_id IS NULL OR"
                    " guild_id NOT IN (SELECT guild_id FROM guild_settings"
                    " WHERE retention_days IS NOT NULL))",
                    [_to_ts(now - timedelta(days=default_days))],
                )
                deleted += cursor.rowcount
        return deleted

    # -- settings ----------------------------------------------------------------------------

    async def guild_settings(self, guild_id: int) -> GuildSettings:
        """The guild's settings (defaults if none stored); served from memory after first use."""
        cached = self._settings.get(guild_id)
        if cached is not None:
            return cached
        _check_id("guild_id", guild_id, nullable=False)
        async with self._settings_lock:
            cached = self._settings.get(guild_id)
            if cached is None:
                cached = self._settings[guild_id] = await self._load_settings(guild_id)
            return cached

    async def _load_settings(self, guild_id: int) -> GuildSettings:
        rows = await self._fetchall(
            (
                "SELECT positive_emoji, negative_emoji, band_low, band_high, store_auto_text,"
                " retention_days FROM guild_settings WHERE guild_id = ?",
                [guild_id],
            )
        )
        channels = await self._fetchall(
            ("SELECT channel_id FROM auto_channels WHERE guild_id = ?", [guild_id])
        )
        auto_channels = frozenset(int(row[0]) for row in channels)
        if not rows:
            return GuildSettings(guild_id=guild_id, auto_channels=auto_channels)
        positive, negative, low, high, store_text, retention = rows[0]
        return GuildSettings(
            guild_id=guild_id,
            positive_emoji=positive or DEFAULT_POSITIVE_EMOJI,
            negative_emoji=negative or DEFAULT_NEGATIVE_EMOJI,
            band=None if low is None else (float(low), float(high)),
            store_auto_text=bool(store_text),
            retention_days=retention,
            auto_channels=auto_channels,
        )

    async def set_auto_channel(
        self, guild_id: int, channel_id: int, enabled: bool
    ) -> GuildSettings:
        """Switch automatic reactions on or off in a channel; returns the new settings."""
        _check_id("guild_id", guild_id, nullable=False)
        _check_id("channel_id", channel_id, nullable=False)
        async with self._settings_lock:
            async with self._transaction() as db:
                if enabled:
                    await db.execute(
                        "INSERT INTO guild_settings (guild_id) VALUES (?) ON CONFLICT DO NOTHING",
                        [guild_id],
                    )
                    await db.execute(
                        "INSERT INTO auto_channels (guild_id, channel_id) VALUES (?, ?)"
                        " ON CONFLICT DO NOTHING",
                        [guild_id, channel_id],
                    )
                else:
                    await db.execute(
                        "DELETE FROM auto_channels WHERE guild_id = ? AND channel_id = ?",
                        [guild_id, channel_id],
                    )
            self._settings.pop(guild_id, None)
            settings = self._settings[guild_id] = await self._load_settings(guild_id)
            return settings

    async def update_guild_settings(
        self,
        guild_id: int,
        *,
        positive_emoji: str | None = None,
        negative_emoji: str | None = None,
        band: tuple[float, float] | Literal["reset"] | None = None,
        store_auto_text: bool | None = None,
        retention_days: int | Literal["reset"] | None = None,
    ) -> GuildSettings:
        """Change some settings of a guild (None: unchanged; 'reset': back to the default).

        Raises ValueError, changing nothing, if a value is out of range.
        """
        _check_id("guild_id", guild_id, nullable=False)
        changes: list[tuple[str, object]] = []
        for column, emoji in (
            ("positive_emoji", positive_emoji),
            ("negative_emoji", negative_emoji),
        ):
            if emoji is not None:
                changes.append((column, _check_emoji(column, emoji)))
        if band == "reset":
            changes += [("band_low", None), ("band_high", None)]
        elif band is not None:
            low, high = _check_band(band)
            changes += [("band_low", low), ("band_high", high)]
        if store_auto_text is not None:
            changes.append(("store_auto_text", int(bool(store_auto_text))))
        if retention_days == "reset":
            changes.append(("retention_days", None))
        elif retention_days is not None:
            changes.append(("retention_days", _check_retention("retention_days", retention_days)))
        async with self._settings_lock:
            async with self._transaction() as db:
                await db.execute(
                    "INSERT INTO guild_settings (guild_id) VALUES (?) ON CONFLICT DO NOTHING",
                    [guild_id],
                )
                if changes:
                    # Column names come from the fixed list above, never from the caller.
                    assignments = ", ".join(f"{column} = ?" for column, _ in changes)
                    await db.execute(
                        f"UPDATE guild_settings SET {assignments} WHERE guild_id = ?",
                        [*(value for _, value in changes), guild_id],
                    )
            self._settings.pop(guild_id, None)
            settings = self._settings[guild_id] = await self._load_settings(guild_id)
            return settings


# Errors that mean "the database refuses this row", not "the database is unavailable".
_ROW_ERRORS: Final = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    sqlite3.ProgrammingError,
    ValueError,
    TypeError,
    OverflowError,
)


def _is_corruption(exc: BaseException) -> bool:
    """Whether SQLite says the file itself is damaged: retrying cannot help."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return True
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def _check_emoji(name: str, value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty emoji, got {value!r}")
    value = safe_text(value.strip())
    if len(value) > MAX_EMOJI_LENGTH:
        raise ValueError(
            f"{name} is too long ({len(value)} characters, at most {MAX_EMOJI_LENGTH})"
        )
    return value


def _check_band(band: tuple[float, float]) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in band)
    except (TypeError, ValueError):
        raise ValueError(f"band must be a pair of numbers (low, high), got {band!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and 0.0 <= low <= 0.5 <= high <= 1.0):
        raise ValueError(
            f"band must satisfy 0 <= low <= 0.5 <= high <= 1, got low={low}, high={high}"
        )
    return low, high


def _check_retention(name: str, days: object) -> int:
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_RETENTION_DAYS:
        raise ValueError(
            f"{name} must be a whole number of days from 1 to {MAX_RETENTION_DAYS}, got {days!r}"
        )
    return days


async def _connect_reader(path: Path, busy_timeout: float) -> aiosqlite.Connection:
    """A second connection for queries only (``query_only``: it can never write)."""
    reader = await aiosqlite.connect(path, isolation_level=None)
    try:
        await reader.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000):d}")
        await reader.execute("PRAGMA query_only = ON")
    except BaseException:
        await reader.close()
        raise
    return reader


async def _migrate(db: aiosqlite.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION in one transaction; refuse a newer file."""
    rows = list(await db.execute_fetchall("PRAGMA user_version"))
    if rows[0][0] == SCHEMA_VERSION:
        return
    await db.execute("BEGIN IMMEDIATE")
    try:
        rows = list(await db.execute_fetchall("PRAGMA user_version"))  # may have moved meanwhile
        version = int(rows[0][0])
        if version > SCHEMA_VERSION:
            raise _newer_error(path, version)
        for step in MIGRATIONS[version:]:
            for statement in step:
                await db.execute(statement)
        # PRAGMA takes no parameters; both values are integer constants of this module.
        await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        await db.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
        await db.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            await db.rollback()
        raise
    if version:
        log.info("Migrated %s from schema %d to %d", path, version, SCHEMA_VERSION)


# --------------------------------------------------------------------------------------------
# Read-only helpers for the operator CLI (same SQL as the async queries)


def _read(path: str | Path, query: _Query, parse: Callable[[list[Any]], Any]) -> Any:
    with _open_readonly(path) as (conn, _, _):
        sql, params = query
        return parse(conn.execute(sql, params).fetchall())


def read_history(
    path: str | Path, flt: HistoryFilter, *, limit: int = 10, offset: int = 0
) -> list[StoredPrediction]:
    """Like :meth:`Storage.history`, from a read-only connection."""
    rows: list[StoredPrediction] = _read(
        path, _history_query(flt, limit, offset), lambda rows: [_row_to_prediction(r) for r in rows]
    )
    return rows


def read_count(path: str | Path, flt: HistoryFilter) -> int:
    """Like :meth:`Storage.count`, from a read-only connection."""
    n: int = _read(path, _count_query(flt), lambda rows: int(rows[0][0]))
    return n


def read_mood_counts(path: str | Path, flt: HistoryFilter) -> dict[str, int]:
    """Like :meth:`Storage.mood_counts`, from a read-only connection."""
    counts: dict[str, int] = _read(path, _mood_counts_query(flt), _mood_counts_result)
    return counts


def read_mood_over_time(
    path: str | Path, flt: HistoryFilter, *, bucket: Bucket = "day"
) -> list[tuple[datetime, dict[str, int]]]:
    """Like :meth:`Storage.mood_over_time`, from a read-only connection."""
    series: list[tuple[datetime, dict[str, int]]] = _read(
        path,
        _mood_over_time_query(flt, bucket),
        lambda rows: _mood_over_time_result(rows, bucket),
    )
    return series


def read_stats(path: str | Path) -> DatabaseStats:
    """Like :meth:`Storage.stats`, from a read-only connection."""
    with _open_readonly(path) as (conn, resolved, version):
        by_source = conn.execute(_STATS_QUERIES[0]).fetchall()
        span = conn.execute(_STATS_QUERIES[1]).fetchone()
        return _stats_result(resolved, version, by_source, span)


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
