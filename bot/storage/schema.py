"""The SQLite schema, its migrations, and how a file is recognised as one of ours.

``PRAGMA user_version`` is the index into :data:`MIGRATIONS`; all pending steps run in one
``BEGIN IMMEDIATE`` transaction with the version bump, so a failed upgrade leaves the file as it
was. ``PRAGMA application_id`` marks the file as a Sentiment Bot database. A step only ever adds
(tables, indexes, nullable or defaulted columns): rows written by an older version keep every
value they had; step 4 only fills its new ``author_id`` column where the author is known.
A partial UNIQUE index on ``(message_id, source) WHERE source = 'auto'`` keeps one automatic
prediction per message when the gateway replays an event (the writer inserts with
``ON CONFLICT DO NOTHING``).

A file of another program (other ``application_id``, or tables but no schema version) or one
written by a newer version is refused with a :class:`StorageError` naming the file and the fix,
before anything is written.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Final

import aiosqlite

from bot.storage.errors import StorageError

__all__ = [
    "APPLICATION_ID",
    "IDENTITY_SQL",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "check_identity",
    "migrate",
    "newer_error",
]

log = logging.getLogger("bot.storage")  # one logger for the whole package

APPLICATION_ID: Final = 0x53454E54  # b"SENT": marks the file as a Sentiment Bot database

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
    # 5: guilds the bot was removed from, and when. Their rows are deleted once the grace
    # period has passed (bot/storage/departures.py); the bot being re-added deletes the row.
    (
        """CREATE TABLE guild_departures (
            guild_id INTEGER PRIMARY KEY,
            left_at  REAL NOT NULL                 -- UTC unix seconds
        )""",
    ),
    # 6: mood alerts. A guild's alert channel and hourly cap; each watched channel's rule and
    # its state between checks; the alerts posted (for the hourly cap, kept one day).
    (
        """CREATE TABLE alert_settings (
            guild_id         INTEGER PRIMARY KEY,
            alert_channel_id INTEGER,              -- NULL: alerts are not posted
            hourly_cap       INTEGER NOT NULL CHECK (hourly_cap BETWEEN 1 AND 60)
        )""",
        """CREATE TABLE alert_watches (
            guild_id         INTEGER NOT NULL,
            channel_id       INTEGER NOT NULL,
            threshold        REAL    NOT NULL CHECK (threshold > 0.0 AND threshold <= 1.0),
            resolve_below    REAL    NOT NULL
                             CHECK (resolve_below >= 0.0 AND resolve_below < threshold),
            window_minutes   INTEGER NOT NULL CHECK (window_minutes >= 1),
            min_messages     INTEGER NOT NULL CHECK (min_messages >= 1),
            cooldown_minutes INTEGER NOT NULL CHECK (cooldown_minutes >= 1),
            alerting         INTEGER NOT NULL DEFAULT 0 CHECK (alerting IN (0, 1)),
            last_alert_at    REAL,                 -- UTC unix seconds
            alert_message_id INTEGER,
            PRIMARY KEY (guild_id, channel_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE alert_log (
            guild_id   INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            posted_at  REAL    NOT NULL            -- UTC unix seconds
        )""",
        "CREATE INDEX alert_log_guild_time ON alert_log (guild_id, posted_at)",
    ),
    # 7: corrections ("that's what I meant", a moderator's "Correct sentiment"). One row per
    # prediction corrected and person correcting (pressing again changes the mood). No foreign
    # key to predictions: either may be deleted first, each by the same privacy rules.
    (
        """CREATE TABLE corrections (
            id            INTEGER PRIMARY KEY,
            prediction_id INTEGER NOT NULL,        -- the predictions row corrected (may be gone)
            guild_id      INTEGER,                 -- NULL: direct message
            channel_id    INTEGER,
            message_id    INTEGER,                 -- NULL: /sentiment on typed text
            user_id       INTEGER NOT NULL,        -- who corrected
            author_id     INTEGER,                 -- whose words (NULL: unknown)
            source        TEXT    NOT NULL CHECK (source IN ('auto', 'command', 'context_menu')),
            mood          TEXT    NOT NULL CHECK (mood IN ('positive', 'negative', 'neutral')),
            model_mood    TEXT    NOT NULL
                          CHECK (model_mood IN ('positive', 'negative', 'neutral')),
            model_version TEXT    NOT NULL,
            created_at    REAL    NOT NULL,        -- UTC unix seconds
            text          TEXT,                    -- NULL unless the text may be kept
            UNIQUE (prediction_id, user_id)
        )""",
        "CREATE INDEX corrections_user ON corrections (user_id)",
        "CREATE INDEX corrections_author ON corrections (author_id) WHERE author_id IS NOT NULL",
        "CREATE INDEX corrections_message ON corrections (message_id) WHERE message_id IS NOT NULL",
        "CREATE INDEX corrections_guild_time ON corrections (guild_id, created_at)",
        "CREATE INDEX corrections_time ON corrections (created_at)",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

# The file's schema version, its application_id, and whether it has any table at all.
IDENTITY_SQL: Final = (
    "SELECT (SELECT user_version FROM pragma_user_version),"
    " (SELECT application_id FROM pragma_application_id),"
    " EXISTS (SELECT 1 FROM sqlite_master)"
)


def newer_error(path: Path, version: int) -> StorageError:
    """The refusal of a file written by a newer version."""
    return StorageError(
        f"{path} was written by a newer Sentiment Bot (schema {version}, this version knows "
        f"{SCHEMA_VERSION}); upgrade or point SENTIMENT_DB at another file"
    )


def check_identity(path: Path, version: int, app_id: int, has_tables: bool) -> None:
    """Raise StorageError unless the file (as :data:`IDENTITY_SQL` describes it) is ours or
    empty, and not from a newer version."""
    if version > SCHEMA_VERSION:
        raise newer_error(path, version)
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


async def migrate(db: aiosqlite.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION in one transaction; refuse a newer file."""
    rows = list(await db.execute_fetchall("PRAGMA user_version"))
    if rows[0][0] == SCHEMA_VERSION:
        return
    await db.execute("BEGIN IMMEDIATE")
    try:
        rows = list(await db.execute_fetchall("PRAGMA user_version"))  # may have moved meanwhile
        version = int(rows[0][0])
        if version > SCHEMA_VERSION:
            raise newer_error(path, version)
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
