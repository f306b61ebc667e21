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

from pydantic import AfterValidator, BeforeValidator, SecretStr

from model.settings import (
    WHOLE,
    ClassifierSettings,
    SettingsError,
    UserPath,
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


class Settings(ClassifierSettings):
    """What ``sentiment-bot`` runs with. ``from_env`` reads it; built in code, it reads nothing."""

    FIX_IN: ClassVar[str] = ".env or the environment"

    token: Secret = variable(Secret(""), "DISCORD_TOKEN", "a bot token")
    database: UserPath = variable(DEFAULT_DATABASE, "SENTIMENT_DB", "a file path")
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
    # The health and metrics endpoint (bot/endpoint.py): 0 is off.
    http_port: int = variable(
        0, "SENTIMENT_HTTP_PORT", "a port from 1 to 65535, or 0 for no endpoint", ge=0, le=65535
    )
    http_host: Annotated[str, AfterValidator(_host)] = variable(
        "127.0.0.1", "SENTIMENT_HTTP_HOST", "an IP address or host name to listen on"
    )

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
