"""The bot's settings: environment variables (and a ``.env`` file), typed and checked once.

Every setting is documented in ``.env.example``. The classifier's variables, which the model's
commands read too, come from :class:`model.settings.ClassifierSettings`; how variables are read
and how a malformed one becomes a one-line :class:`SettingsError` is in ``model/settings.py``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, get_args

from pydantic import AfterValidator, BeforeValidator, PlainValidator, SecretStr, ValidationError

from bot.storage.dsn import Dsn, database_location, is_dsn
from model.settings import (
    WHOLE,
    ClassifierSettings,
    SettingsError,
    variable,
)

DEFAULT_DATABASE = Path("data/sentiment.db")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)


class Secret(SecretStr):
    """The bot token: shown as stars in reprs, logs, tracebacks and dumps; ``reveal()`` is
    called only where it is sent to Discord."""

    def reveal(self) -> str:
        return self.get_secret_value()


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _zero_is_forever(days: int | None) -> int | None:
    return days or None


_HOST_NAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?", re.I)


def _host(value: str) -> str:
    """An IP address (v4 or v6) or a host name, checked before anything tries to listen on it."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if len(value) > 253 or not _HOST_NAME.fullmatch(value):
            raise ValueError("not an IP address or host name") from None
    return value


# --- sharding (issue 13): the shards of the bot this process runs -----------------------------

SHARD_IDS = "shard ids like 0,1 or 0-3 (whole numbers >= 0, each once)"
MAX_SHARD_COUNT = 100_000


def parse_shard_ids(value: Any) -> Any:
    """``"0,1"``, ``"0-3"``, ``"0-3, 8"`` -> a sorted tuple of distinct ids (ValueError
    otherwise); a list or tuple of ints (settings built in code) is checked the same way."""
    if isinstance(value, str):
        ids: list[int] = []
        for part in value.split(","):
            first, dash, last = part.strip().partition("-")
            if not first.strip().isdigit() or (dash and not last.strip().isdigit()):
                raise ValueError(f"not {SHARD_IDS}")
            low, high = int(first), int(last) if dash else int(first)
            if not low <= high < MAX_SHARD_COUNT:
                raise ValueError(f"not {SHARD_IDS}")
            ids.extend(range(low, high + 1))
        value = ids
    if isinstance(value, (list, tuple)):
        if (
            not value
            or len(set(value)) != len(value)
            or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value)
        ):
            raise ValueError(f"not {SHARD_IDS}")
        return tuple(sorted(value))
    return value


def describe_shards(shard_ids: tuple[int, ...], shard_count: int) -> str:
    """``shards 0-3 of 8``, ``shard 1 of 2``, ``shards 0, 2 of 4``: what a log line says."""
    if len(shard_ids) == 1:
        return f"shard {shard_ids[0]} of {shard_count}"
    first, last = shard_ids[0], shard_ids[-1]
    if last - first + 1 == len(shard_ids):
        return f"shards {first}-{last} of {shard_count}"
    return f"shards {', '.join(map(str, shard_ids))} of {shard_count}"


# ----------------------------------------------------------------------------------------------


def _database(value: Any) -> Path | Dsn:
    """SENTIMENT_DB: a PostgreSQL address (postgresql:// or postgres://) or a file path."""
    if not isinstance(value, str | Path | Dsn):
        raise ValueError("a file path or a postgresql:// address is needed")
    return database_location(value)


DATABASE_WHAT = "a file path or a PostgreSQL address (postgresql://user:password@host/dbname)"


class Settings(ClassifierSettings):
    """What ``sentiment-bot`` runs with. ``from_env`` reads it; built in code, it reads nothing."""

    FIX_IN: ClassVar[str] = ".env or the environment"

    token: Secret = variable(Secret(""), "DISCORD_TOKEN", "a bot token")
    # A Path (SQLite) or a Dsn (PostgreSQL, shown with its password masked).
    database: Annotated[Path | Dsn, PlainValidator(_database)] = variable(
        DEFAULT_DATABASE, "SENTIMENT_DB", DATABASE_WHAT
    )
    dev_guild_id: int | None = variable(
        None, "SENTIMENT_DEV_GUILD_ID", "a Discord id", gt=0, lt=2**64
    )
    max_batch: int = variable(256, "SENTIMENT_MAX_BATCH", WHOLE, ge=1)
    max_wait_ms: float = variable(
        5.0, "SENTIMENT_MAX_WAIT_MS", "milliseconds from 0 to 1000", ge=0.0, le=1000.0
    )
    max_queue: int = variable(1000, "SENTIMENT_MAX_QUEUE", WHOLE, ge=1)
    # Prepare (language gate, normaliser, tokenizer) the next batch on a thread of its own while
    # the model runs this one (bot/inference.py); false: one model call per batch.
    prepare_ahead: bool = variable(True, "SENTIMENT_PREPARE_AHEAD", "true or false")
    # None: keep forever (the variable's 0)
    retention_days: Annotated[int | None, AfterValidator(_zero_is_forever)] = variable(
        90, "SENTIMENT_RETENTION_DAYS", "a whole number >= 1 or 0", ge=0
    )
    # How long the settings and rows of a guild that removed the bot are kept (in case the bot
    # is added back) before the purge deletes them.
    leave_grace_days: int = variable(
        30, "SENTIMENT_LEAVE_GRACE_DAYS", "a whole number of days from 1 to 36500", ge=1, le=36500
    )
    # How often mood alerts check the watched channels (bot/alert_service.py).
    alert_check_s: float = variable(
        30.0, "SENTIMENT_ALERT_CHECK_S", "seconds from 0.1 to 3600", ge=0.1, le=3600.0
    )
    log_level: Annotated[LogLevel, BeforeValidator(_upper)] = variable(
        "INFO", "SENTIMENT_LOG_LEVEL", f"one of {', '.join(LOG_LEVELS)}"
    )
    # The health and metrics endpoint (bot/endpoint.py): 0 is off.
    http_port: int = variable(
        0, "SENTIMENT_HTTP_PORT", "a port from 1 to 65535, or 0 for no endpoint", ge=0, le=65535
    )
    http_host: Annotated[str, AfterValidator(_host)] = variable(
        "127.0.0.1", "SENTIMENT_HTTP_HOST", "an IP address or host name to listen on"
    )
    # Sharding (issue 13). None: one connection for every guild, as before. A number: the
    # bot's shards, all processes together; this process runs shard_ids (None: all of them).
    shard_count: int | None = variable(
        None,
        "SENTIMENT_SHARD_COUNT",
        f"a whole number from 1 to {MAX_SHARD_COUNT}",
        ge=1,
        le=MAX_SHARD_COUNT,
    )
    shard_ids: Annotated[tuple[int, ...] | None, BeforeValidator(parse_shard_ids)] = variable(
        None, "SENTIMENT_SHARD_IDS", SHARD_IDS
    )

    @property
    def sharded(self) -> bool:
        return self.shard_count is not None

    @property
    def shards(self) -> tuple[int, ...]:
        """The shard ids this process runs (all of them when SENTIMENT_SHARD_IDS is unset)."""
        if self.shard_count is None:
            return ()
        return self.shard_ids or tuple(range(self.shard_count))

    def check_sharding(self) -> None:
        """SettingsError (one line) when the shard ids do not fit the shard count."""
        if self.shard_ids is None:
            return
        if self.shard_count is None:
            raise SettingsError(
                "SENTIMENT_SHARD_IDS is set but SENTIMENT_SHARD_COUNT is not: set "
                "SENTIMENT_SHARD_COUNT to the number of shards of the bot, all processes "
                f"together. Fix it in {self.FIX_IN}."
            )
        outside = [i for i in self.shard_ids if i >= self.shard_count]
        if outside:
            raise SettingsError(
                f"SENTIMENT_SHARD_IDS names shard {outside[0]}, but with "
                f"SENTIMENT_SHARD_COUNT={self.shard_count} the shard ids run from 0 to "
                f"{self.shard_count - 1}. Fix one of them in {self.FIX_IN}."
            )

    # --- several processes on one database (issue 13: PostgreSQL) ---
    # PostgreSQL: the most connections this process opens (the writer's, the queries').
    db_pool_size: int = variable(
        4, "SENTIMENT_DB_POOL_SIZE", "a whole number of connections from 1 to 100", ge=1, le=100
    )
    # How old a guild's cached settings may get before they are read again, and how often the
    # opt-outs and alert settings are re-read: the bound on how long a change made through
    # another process sharing the database takes to hold here. 0: cached until changed here.
    settings_refresh_s: float = variable(
        5.0, "SENTIMENT_SETTINGS_REFRESH_S", "seconds from 0 to 3600", ge=0.0, le=3600.0
    )

    @classmethod
    def _one_line(cls, exc: ValidationError) -> str:
        error = exc.errors(include_url=False)[0]
        value = error["input"]
        field = error["loc"][0] in ("SENTIMENT_DB", "database")
        if field and isinstance(value, str) and is_dsn(value):
            # never the password: the address masked, and what is wrong with it
            try:
                shown = str(Dsn(value))
            except ValueError:
                shown = value.split("://", 1)[0] + "://..."
            reason = str(error.get("ctx", {}).get("error", error["msg"]))
            return (
                f"SENTIMENT_DB={shown!r} is not a usable PostgreSQL address ({reason}). "
                f"Fix it in {cls.FIX_IN}."
            )
        return super()._one_line(exc)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        flags: Mapping[str, Any] | None = None,
        require_token: bool = True,
    ) -> Self:
        """The settings from ``env`` (default: ``os.environ`` after loading ``.env``, whose
        variables do not replace those already set)."""
        if env is None:
            from dotenv import load_dotenv

            load_dotenv(override=False)
        settings = super().from_env(env, flags=flags)
        settings.check_sharding()
        token = settings.token.get_secret_value()
        if require_token and not token:
            raise SettingsError(
                "DISCORD_TOKEN is not set. Put your bot token in .env (see .env.example and the "
                "README's 'Creating the Discord application'), or try the bot without one: "
                "sentiment-sandbox."
            )
        if token and (len(token) < 50 or any(c.isspace() for c in token)):
            raise SettingsError(
                "DISCORD_TOKEN does not look like a bot token (they are about 70 characters "
                "without spaces). Copy it again from the Developer Portal's Bot page."
            )
        return settings
