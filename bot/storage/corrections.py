"""Corrections: a person saying which mood a text really had ("that's what I meant" under an
answer, a moderator's "Correct sentiment" on an automatic reaction).

One row per prediction corrected and person correcting (``UNIQUE (prediction_id, user_id)``):
pressing another mood later changes the row rather than adding one. A row records who
corrected (``user_id``), whose words were read (``author_id``), the mood meant and the model's
mood and version; the ``text`` only where it may be kept (typed into ``/sentiment``, or a guild
that stores message text: the caller's policy, :func:`bot.decisions.keeps_text`). Privacy
treats corrections like predictions (:mod:`bot.storage.privacy`): refused for a member who
opted out or a deleted message, erased by ``/forget-me``, by a message's deletion and by the
retention purge.

The SQL lives here, one copy, shared by :class:`bot.storage.Storage` and the operator's
read-only path; ``sentiment-train --corrections`` reads the table with its own small reader
(``model/corrections.py``), which needs only ``text``, ``mood`` and ``created_at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from bot.storage.records import (
    ANY_GUILD,
    MOODS,
    SOURCES,
    AnyGuild,
    Mood,
    Source,
    check_aware,
    check_id,
    from_ts,
    safe_text,
    to_ts,
)

__all__ = [
    "COUNT_SQL",
    "ID_SQL",
    "UPSERT_SQL",
    "CorrectionFilter",
    "CorrectionRecord",
    "StoredCorrection",
    "correction_params",
    "corrections_query",
    "count_query",
    "latest_for_message_query",
    "row_to_correction",
]

_COLUMNS: Final = (
    "id, prediction_id, guild_id, channel_id, message_id, user_id, author_id, source, mood,"
    " model_mood, model_version, created_at, text"
)

# Insert, or (the same person correcting the same prediction again) change the mood meant.
UPSERT_SQL: Final = (
    "INSERT INTO corrections (prediction_id, guild_id, channel_id, message_id, user_id,"
    " author_id, source, mood, model_mood, model_version, created_at, text)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (prediction_id, user_id) DO UPDATE SET mood = excluded.mood,"
    " created_at = excluded.created_at, text = excluded.text"
)
ID_SQL: Final = "SELECT id FROM corrections WHERE prediction_id = ? AND user_id = ?"
COUNT_SQL: Final = "SELECT COUNT(*) FROM corrections"


@dataclass(frozen=True)
class CorrectionRecord:
    """One correction to store. Validated on creation (ValueError / TypeError name the field).

    ``prediction_id`` is the row of ``predictions`` corrected; ``source`` its source (what
    was corrected: an automatic reaction, a ``/sentiment`` answer, a menu answer); ``mood``
    the mood meant, ``model_mood`` and ``model_version`` what the model had said.
    """

    prediction_id: int
    guild_id: int | None
    channel_id: int | None
    message_id: int | None
    user_id: int
    author_id: int | None
    source: Source
    mood: Mood
    model_mood: Mood
    model_version: str
    created_at: datetime
    text: str | None = None

    def __post_init__(self) -> None:
        check_id("prediction_id", self.prediction_id, nullable=False)
        check_id("guild_id", self.guild_id, nullable=True)
        check_id("channel_id", self.channel_id, nullable=True)
        check_id("message_id", self.message_id, nullable=True)
        check_id("user_id", self.user_id, nullable=False)
        check_id("author_id", self.author_id, nullable=True)
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        for name in ("mood", "model_mood"):
            if getattr(self, name) not in MOODS:
                raise ValueError(
                    f"{name} must be one of {', '.join(MOODS)}, got {getattr(self, name)!r}"
                )
        if not isinstance(self.model_version, str):
            raise TypeError(f"model_version must be a str, got {self.model_version!r}")
        if self.text is not None and not isinstance(self.text, str):
            raise TypeError(f"text must be a str or None, got {type(self.text).__name__}")
        object.__setattr__(self, "created_at", check_aware("created_at", self.created_at))


@dataclass(frozen=True, kw_only=True)
class StoredCorrection(CorrectionRecord):
    """A correction read back from the database, with its row id."""

    id: int


@dataclass(frozen=True)
class CorrectionFilter:
    """Which corrections a listing shows: one guild (None: direct messages) or every one, one
    person correcting, only those with text (what training can use)."""

    guild_id: int | AnyGuild | None = ANY_GUILD
    user_id: int | None = None
    with_text: bool = False

    def __post_init__(self) -> None:
        if self.guild_id is not ANY_GUILD:
            check_id("guild_id", self.guild_id, nullable=True)
        check_id("user_id", self.user_id, nullable=True)


def correction_params(record: CorrectionRecord) -> tuple[object, ...]:
    """The parameters of :data:`UPSERT_SQL` for ``record``, in the stored form."""
    return (
        record.prediction_id,
        record.guild_id,
        record.channel_id,
        record.message_id,
        record.user_id,
        record.author_id,
        record.source,
        record.mood,
        record.model_mood,
        safe_text(record.model_version),
        to_ts(record.created_at),
        None if record.text is None else safe_text(record.text),
    )


def _where(flt: CorrectionFilter) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if flt.guild_id is not ANY_GUILD:
        clauses.append("guild_id IS ?")
        params.append(flt.guild_id)
    if flt.user_id is not None:
        clauses.append("user_id = ?")
        params.append(flt.user_id)
    if flt.with_text:
        clauses.append("text IS NOT NULL")
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def corrections_query(flt: CorrectionFilter, limit: int, offset: int) -> tuple[str, list[object]]:
    """Corrections matching ``flt``, newest first (ValueError for a negative limit/offset)."""
    for name, value in (("limit", limit), ("offset", offset)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    where, params = _where(flt)
    sql = (
        f"SELECT {_COLUMNS} FROM corrections {where}"
        " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
    )
    return sql, [*params, limit, offset]


def count_query(flt: CorrectionFilter) -> tuple[str, list[object]]:
    where, params = _where(flt)
    return f"{COUNT_SQL} {where}", params


def latest_for_message_query(message_id: int) -> tuple[str, list[object]]:
    """The newest correction of a message's automatic reading (zero or one row): what its
    reaction shows now. Corrections of menu answers about the message do not count."""
    return (
        f"SELECT {_COLUMNS} FROM corrections WHERE message_id = ? AND source = 'auto'"
        " ORDER BY created_at DESC, id DESC LIMIT 1",
        [message_id],
    )


def row_to_correction(row: Sequence[Any]) -> StoredCorrection:
    """A row of these queries as a value."""
    return StoredCorrection(
        id=row[0],
        prediction_id=row[1],
        guild_id=row[2],
        channel_id=row[3],
        message_id=row[4],
        user_id=row[5],
        author_id=row[6],
        source=row[7],
        mood=row[8],
        model_mood=row[9],
        model_version=row[10],
        created_at=from_ts(row[11]),
        text=row[12],
    )
