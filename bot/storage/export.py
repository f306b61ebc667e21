"""A member's data: every row the bot holds about one member in one guild, as one JSON document
(``/my-data``, and ``sentiment-history --export-user`` for a request that arrives by mail).

The document is a list of sections, one per entry of :data:`SECTIONS`; each section is one
parameterised query selecting exactly that member's rows, and one function turning a row into
a JSON object. A new per-user table (corrections, say) is one more :class:`Section` in that
list: the export, its counts and the summary line follow.

Exactly the member's rows, and nothing of anyone else: a prediction the member asked for about
someone else's message is listed without that person's words (``text`` is null) or id; a
prediction someone else asked for about the member's message is listed without who asked, or
whether they asked privately. Ids are strings (JavaScript cannot hold a Discord id in a number).

Large histories are streamed: :func:`export_steps` is a plain generator that yields the JSON
text piece by piece and the queries it needs, one page of :data:`EXPORT_PAGE` rows at a time
(keyset paging along an index, so each page costs the same however deep it is); the caller runs
each query and sends the rows back (:meth:`bot.storage.Storage.export_member`, async, and
:func:`bot.storage.read_export`, sqlite3). Nothing holds more than one page in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from bot.storage.queries import Query
from bot.storage.records import check_aware, check_id, from_ts

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_PAGE",
    "SECTIONS",
    "ExportSummary",
    "Section",
    "export_steps",
]

EXPORT_FORMAT: Final = "sentiment-bot member data, version 1"
EXPORT_PAGE: Final = 500  # rows per query

Row = Sequence[Any]
JSONObject = dict[str, object]


@dataclass(frozen=True)
class Section:
    """One list of the export: the member's rows of one kind.

    ``sql`` selects the member's rows of page after page: its parameters are ``params(guild_id,
    user_id)``, then the paging key of the last row of the previous page (``start`` for the
    first page), then the page size; its rows come in key order. ``key(row)`` is a row's paging
    key, ``to_json(row)`` what the member is given of it. ``about`` says in the file what the
    list holds.
    """

    name: str
    about: str
    sql: str
    params: Callable[[int | None, int], list[object]]
    start: tuple[object, ...]
    key: Callable[[Row], tuple[object, ...]]
    to_json: Callable[[Row], JSONObject]


def _id(value: int | None) -> str | None:
    return None if value is None else str(value)


def _time(value: float, timespec: str = "microseconds") -> str:
    """UTC, ISO 8601, fixed width (stored times are exact to the microsecond)."""
    return from_ts(value).isoformat(timespec=timespec).replace("+00:00", "Z")


def _mood(label: str, in_band: int, unread: str | None) -> str:
    if unread is not None:
        return "unread"
    return "neutral" if in_band or label == "neutral" else label


def _prediction(row: Row, *, text: str | None) -> JSONObject:
    """A row of either prediction section: ``created_at, id, guild_id, channel_id, message_id,
    source, label, in_band, p_positive, p_negative, p_neutral, unread, model_version, text``."""
    (created_at, row_id, _, channel, message, source, label, in_band) = row[:8]
    (p_positive, p_negative, p_neutral, unread, model_version) = row[8:13]
    return {
        "id": row_id,
        "time": _time(created_at),
        "channel_id": _id(channel),
        "message_id": _id(message),
        "source": source,
        "mood": _mood(label, in_band, unread),
        "label": label,
        "in_band": bool(in_band),
        "p_positive": p_positive,
        "p_negative": p_negative,
        "p_neutral": p_neutral,
        "unread": unread,
        "model_version": model_version,
        "text": text,
    }


def _own_prediction(row: Row) -> JSONObject:
    # the last two columns: whether the words are the member's own, whether they asked privately
    yours, private = bool(row[14]), bool(row[15])
    return {
        **_prediction(row, text=row[13] if yours else None),
        "your_words": yours,
        "private": private,
    }


def _correction(row: Row, *, text: str | None) -> JSONObject:
    """A row of either correction section: ``id, created_at, channel_id, message_id, source,
    mood, model_mood, model_version, text``."""
    (row_id, created_at, channel, message, source, mood, model_mood, model_version) = row[:8]
    return {
        "id": row_id,
        "time": _time(created_at),
        "channel_id": _id(channel),
        "message_id": _id(message),
        "source": source,
        "mood_meant": mood,
        "model_mood": model_mood,
        "model_version": model_version,
        "text": text,
    }


SECTIONS: Final[tuple[Section, ...]] = (
    Section(
        name="predictions",
        about="Predictions you made: your messages read for automatic reactions, your "
        "/sentiment requests, and the messages you analysed with the message menu (those "
        "without their author's words or id).",
        sql=(
            "SELECT created_at, id, guild_id, channel_id, message_id, source, label, in_band,"
            " p_positive, p_negative, p_neutral, unread, model_version, text,"
            " CASE WHEN author_id = user_id THEN 1 ELSE 0 END, private"
            " FROM predictions WHERE guild_id IS ? AND user_id = ?"
            " AND (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?"
        ),
        params=lambda guild_id, user_id: [guild_id, user_id],
        start=(float("-inf"), -1),
        key=lambda row: (row[0], row[1]),
        to_json=_own_prediction,
    ),
    Section(
        name="predictions_by_others",
        about="Predictions other members made about your messages with the message menu "
        "(without who asked).",
        sql=(
            "SELECT created_at, id, guild_id, channel_id, message_id, source, label, in_band,"
            " p_positive, p_negative, p_neutral, unread, model_version, text FROM predictions"
            " WHERE author_id = ? AND guild_id IS ? AND user_id <> author_id"
            " AND id > ? ORDER BY id LIMIT ?"
        ),
        params=lambda guild_id, user_id: [user_id, guild_id],
        start=(-1,),
        key=lambda row: (row[1],),
        to_json=lambda row: _prediction(row, text=row[13]),
    ),
    Section(
        name="corrections",
        about='Corrections you made ("I meant ...", and as a moderator "Correct '
        "sentiment\"): the mood you said was meant (another member's words without their text).",
        sql=(
            "SELECT id, created_at, channel_id, message_id, source, mood, model_mood,"
            " model_version, text, CASE WHEN author_id = user_id THEN 1 ELSE 0 END FROM corrections"
            " WHERE guild_id IS ? AND user_id = ? AND id > ? ORDER BY id LIMIT ?"
        ),
        params=lambda guild_id, user_id: [guild_id, user_id],
        start=(-1,),
        key=lambda row: (row[0],),
        to_json=lambda row: _correction(row, text=row[8] if row[9] else None),
    ),
    Section(
        name="corrections_by_others",
        about="Corrections moderators made to the bot's reading of your messages (without "
        "who made them).",
        sql=(
            "SELECT id, created_at, channel_id, message_id, source, mood, model_mood,"
            " model_version, text FROM corrections WHERE author_id = ? AND guild_id IS ?"
            " AND user_id <> author_id AND id > ? ORDER BY id LIMIT ?"
        ),
        params=lambda guild_id, user_id: [user_id, guild_id],
        start=(-1,),
        key=lambda row: (row[0],),
        to_json=lambda row: _correction(row, text=row[8]),
    ),
    Section(
        name="opt_out",
        about="Whether you opted out of analysis with /forget-me (in every server), and since "
        "when; empty if you did not.",
        sql=(
            "SELECT user_id, since FROM opt_outs WHERE user_id = ? AND user_id > ?"
            " ORDER BY user_id LIMIT ?"
        ),
        params=lambda guild_id, user_id: [user_id],
        start=(-1,),
        key=lambda row: (row[0],),
        to_json=lambda row: {"opted_out": True, "since": _time(row[1])},
    ),
)


@dataclass(frozen=True)
class ExportSummary:
    """What an export held: rows per section (every name of :data:`SECTIONS`), and its size."""

    counts: dict[str, int]
    size_bytes: int

    @property
    def opted_out(self) -> bool:
        return self.counts.get("opt_out", 0) > 0

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


def _page_query(
    section: Section, guild_id: int | None, user_id: int, after: tuple[object, ...], page: int
) -> Query:
    return section.sql, [*section.params(guild_id, user_id), *after, page]


def _dump(value: object, indent: str) -> str:
    text = json.dumps(value, ensure_ascii=False, indent=2)
    return text.replace("\n", "\n" + indent)


def export_steps(
    guild_id: int | None,
    user_id: int,
    *,
    now: datetime,
    sections: Sequence[Section] = SECTIONS,
    page: int = EXPORT_PAGE,
) -> Generator[str | Query, list[Row] | None, ExportSummary]:
    """The export of ``user_id``'s rows in ``guild_id`` (None: direct messages), step by step.

    Yields pieces of the JSON text (write them in order) and queries (send back their rows
    with ``.send(rows)``; send None after a piece of text); returns an :class:`ExportSummary`.
    """
    check_id("guild_id", guild_id, nullable=True)
    check_id("user_id", user_id, nullable=False)
    now = check_aware("now", now)
    if not isinstance(page, int) or isinstance(page, bool) or page < 1:
        raise ValueError(f"page must be a whole number >= 1, got {page!r}")
    head = {
        "format": EXPORT_FORMAT,
        "exported_at": _time(now.timestamp(), "seconds"),
        "guild_id": _id(guild_id),
        "user_id": str(user_id),
        "about": {s.name: s.about for s in sections},
    }
    size = 0
    counts: dict[str, int] = {}

    def text(piece: str) -> str:
        nonlocal size
        size += len(piece.encode("utf-8"))
        return piece

    yield text(_dump(head, "")[:-2] + ",\n")  # the head object, left open
    for section in sections:
        yield text(f"  {json.dumps(section.name)}: [")
        after, n = section.start, 0
        while True:
            rows = yield _page_query(section, guild_id, user_id, after, page)
            rows = rows or []
            if rows:
                items = ",".join("\n    " + _dump(section.to_json(r), "    ") for r in rows)
                yield text(("," if n else "") + items)
                n += len(rows)
                after = section.key(rows[-1])
            if len(rows) < page:
                break
        counts[section.name] = n
        yield text(("\n  ]" if n else "]") + ",\n")
    yield text(f'  "counts": {json.dumps(counts)}\n}}\n')
    return ExportSummary(counts, size)
