"""The bot's settings: environment variables (and a ``.env`` file), typed and checked once.

Every setting is documented in ``.env.example``. The classifier's variables, which the model's
commands read too, come from :class:`model.settings.ClassifierSettings`; how variables are read
and how a malformed one becomes a one-line :class:`SettingsError` is in ``model/settings.py``.
"""

from __future__ import annotations

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
