"""The bot's storage: the prediction log, per-guild settings and privacy, in one database
(a SQLite file by default, or PostgreSQL for several processes). It knows nothing of Discord
objects: it takes plain ids and values.

Where each job lives:

* ``facade.py``: :class:`Storage`, the one object the bot holds; it opens a backend and puts
  the parts below in front of it.
* ``records.py``: the values taken and returned (records, filters, settings, statistics) and
  how they are checked; how probabilities, times and text are stored.
* ``queries.py``: the SQL of every query, one copy, shared by :class:`Storage` and the
  operator's read-only path; audiences, mood counts, time buckets.
* ``readonly.py``: the operator's read-only path (``sentiment-history``), and the note of
  which program created a database.
* ``writer.py``: the batched writer: queue, group commit, waiters, backoff, its counters.
* ``settings.py``: per-guild settings, cached in memory.
* ``alerts.py``: mood-alert settings (alert channel, hourly cap, watched channels) and each
  watched channel's state, cached in memory; the log of alerts posted.
* ``privacy.py``: opt-outs, deleted messages, /forget-me, retention.
* ``export.py``: a member's data as one JSON document (/my-data): the list of the per-user
  sections, streamed page by page.
* ``departures.py``: guilds the bot was removed from; their deletion after a grace period
  (the list of per-guild tables).
* ``corrections.py``: corrections of the mood (records, filters, their SQL).
* ``backend.py``: the interface a database engine implements (connections, transactions,
  SQL placeholders, what its errors mean), so that a second engine is a second
  implementation rather than a fork.
* ``sqlite.py``: that interface for SQLite: safe file handling, two connections, durability
  (WAL, ``synchronous=FULL``), corruption and replaced-file detection.
* ``schema.py``: the schema and its migrations (``PRAGMA user_version``).
* ``postgres.py``: the interface for PostgreSQL (asyncpg, a pool): the shared SQL rewritten,
  batches as one statement, savepoints, what its errors mean; the operator's read-only path.
* ``pg_schema.py``: the same migrations in PostgreSQL's DDL, run once under an advisory lock.
* ``transfer.py``: ``sentiment db migrate``: a SQLite file copied into PostgreSQL in batches
  (every table of the schema, resumable), checked by row counts and a checksum per table.
* ``dsn.py``: where the database is: a file path, or a PostgreSQL address shown with its
  password masked.
* ``errors.py``: :class:`StorageError` and :class:`StorageUnavailableError`.

Everything a caller needs is imported from ``bot.storage`` itself.
"""

from bot.storage.corrections import CorrectionFilter, CorrectionRecord, StoredCorrection
from bot.storage.departures import GUILD_DATA, Departure
from bot.storage.errors import StorageError, StorageUnavailableError
from bot.storage.export import SECTIONS, ExportSummary, Section
from bot.storage.facade import Storage
from bot.storage.readonly import (
    read_correction_count,
    read_corrections,
    read_count,
    read_export,
    read_history,
    read_mood_counts,
    read_mood_over_time,
    read_origin,
    read_stats,
    write_origin,
)
from bot.storage.records import (
    ANY_GUILD,
    COUNT_KEYS,
    DEFAULT_NEGATIVE_EMOJI,
    DEFAULT_POSITIVE_EMOJI,
    MOODS,
    SOURCES,
    AnyGuild,
    Audience,
    Bucket,
    DatabaseStats,
    GuildSettings,
    HistoryFilter,
    Mood,
    PredictionRecord,
    Source,
    StoredPrediction,
    safe_text,
)
from bot.storage.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from bot.storage.sqlite import is_sqlite_file
from bot.storage.writer import MAX_PENDING, WriterStats

__all__ = [
    "ANY_GUILD",
    "APPLICATION_ID",
    "COUNT_KEYS",
    "DEFAULT_NEGATIVE_EMOJI",
    "DEFAULT_POSITIVE_EMOJI",
    "GUILD_DATA",
    "MAX_PENDING",
    "MIGRATIONS",
    "MOODS",
    "SCHEMA_VERSION",
    "SECTIONS",
    "SOURCES",
    "AnyGuild",
    "Audience",
    "Bucket",
    "CorrectionFilter",
    "CorrectionRecord",
    "DatabaseStats",
    "Departure",
    "ExportSummary",
    "GuildSettings",
    "HistoryFilter",
    "Mood",
    "PredictionRecord",
    "Section",
    "Source",
    "Storage",
    "StorageError",
    "StorageUnavailableError",
    "StoredCorrection",
    "StoredPrediction",
    "WriterStats",
    "is_sqlite_file",
    "read_correction_count",
    "read_corrections",
    "read_count",
    "read_export",
    "read_history",
    "read_mood_counts",
    "read_mood_over_time",
    "read_origin",
    "read_stats",
    "safe_text",
    "write_origin",
]
