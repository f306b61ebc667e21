"""The values storage takes and gives back: plain ids, strings and timezone-aware datetimes,
checked once, when a value is made (ValueError / TypeError name the field).

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
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, TypeAlias

from bot.storage.dsn import Dsn
from model.serving.moods import Mood, mood_of

__all__ = [
    "ANY_GUILD",
    "COUNT_KEYS",
    "DEFAULT_NEGATIVE_EMOJI",
    "DEFAULT_POSITIVE_EMOJI",
    "MOODS",
    "SOURCES",
    "AnyGuild",
    "Audience",
    "Bucket",
    "DatabaseStats",
    "GuildSettings",
    "HistoryFilter",
    "Mood",
    "PredictionRecord",
    "Source",
    "StoredPrediction",
    "check_aware",
    "check_id",
    "from_ts",
    "safe_text",
    "to_ts",
]

Source: TypeAlias = Literal["auto", "command", "context_menu"]
Bucket: TypeAlias = Literal["hour", "day", "week"]
# Who looks at a query's rows (HistoryFilter.audience): the operator (every row), the member
# who made the predictions (their private rows too), or anyone else (no private rows).
Audience: TypeAlias = Literal["operator", "requester", "others"]

SOURCES: Final[tuple[Source, ...]] = ("auto", "command", "context_menu")
# The moods in the order people read them (summaries, option lists, messages).
MOODS: Final[tuple[Mood, ...]] = ("positive", "negative", "neutral")
# The keys of mood_counts / mood_over_time: the moods, and the texts the model did not read.
COUNT_KEYS: Final[tuple[str, ...]] = (*MOODS, "unread")
# Why a text was not read (model.Prediction.unread): nothing but whitespace, no token the
# encoder knows, or another language (an ISO 639-1 code such as ``language:fr``).
_UNREAD: Final = re.compile(r"empty|unknown|language:[A-Za-z0-9_-]{1,16}")
_PROBABILITY_SLACK: Final = 1e-6  # rounding allowed in p_negative + p_neutral <= 1
DEFAULT_POSITIVE_EMOJI: Final = "👍"
DEFAULT_NEGATIVE_EMOJI: Final = "👎"
_MAX_ID: Final = 2**63 - 1


class AnyGuild(enum.Enum):
    """Type of :data:`ANY_GUILD`."""

    ANY_GUILD = "any guild"


ANY_GUILD: Final = AnyGuild.ANY_GUILD
"""``HistoryFilter(guild_id=ANY_GUILD)``: rows of every guild and of direct messages."""


def check_id(name: str, value: object, *, nullable: bool) -> None:
    """Raise ValueError unless ``value`` is a Discord id (an int in 0 .. 2**63-1), or None when
    ``nullable``."""
    if value is None and nullable:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_ID:
        kind = "an integer id" + (" or None" if nullable else "")
        raise ValueError(f"{name} must be {kind} between 0 and 2**63-1, got {value!r}")


def check_aware(name: str, value: datetime) -> datetime:
    """``value`` in UTC; TypeError / ValueError unless it is a timezone-aware datetime."""
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


def to_ts(value: datetime) -> float:
    """The stored form of a time: UTC unix seconds."""
    return value.timestamp()


def from_ts(value: float) -> datetime:
    """A stored time as a timezone-aware UTC datetime."""
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
        check_id("guild_id", self.guild_id, nullable=True)
        check_id("channel_id", self.channel_id, nullable=True)
        check_id("message_id", self.message_id, nullable=True)
        check_id("user_id", self.user_id, nullable=False)
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
        check_id("author_id", self.author_id, nullable=True)
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
        object.__setattr__(self, "created_at", check_aware("created_at", self.created_at))

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
        return mood_of(self.label, self.in_band)

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
            check_id("guild_id", self.guild_id, nullable=True)
        check_id("user_id", self.user_id, nullable=True)
        check_id("channel_id", self.channel_id, nullable=True)
        if self.mood is not None and self.mood not in MOODS:
            raise ValueError(f"mood must be one of {', '.join(MOODS)} or None, got {self.mood!r}")
        if self.since is not None:
            object.__setattr__(self, "since", check_aware("since", self.since))
        if self.until is not None:
            object.__setattr__(self, "until", check_aware("until", self.until))
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError(f"since ({self.since}) is after until ({self.until})")


@dataclass(frozen=True)
class DatabaseStats:
    """What the operator CLI shows about a database (a file, or a PostgreSQL database)."""

    path: Path | Dsn  # a Dsn shows its password masked
    schema_version: int
    rows: int
    rows_by_source: dict[str, int]
    oldest: datetime | None
    newest: datetime | None
    size_bytes: int  # database file plus its write-ahead log; PostgreSQL: the database
