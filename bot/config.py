"""Bot settings from the environment (and a ``.env`` file), validated once at start-up.

Every setting is documented in ``.env.example``. A bad value raises :class:`SettingsError`
whose message is one line naming the variable, the value and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

DEFAULT_DATABASE = Path("data/sentiment.db")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(Exception):
    """A missing or malformed setting."""


class Secret:
    """A string that never shows itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    token: Secret = field(default_factory=lambda: Secret(""))
    artifact: Path | None = None  # None: the committed default
    database: Path = DEFAULT_DATABASE
    dev_guild_id: int | None = None
    max_batch: int = 256
    max_wait_ms: float = 5.0
    max_queue: int = 1000
    encoder_batch_size: int = 64
    torch_threads: int | None = None
    precision: str | None = None  # None: the path the artifact was fitted on
    retention_days: int | None = 90
    log_level: str = "INFO"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, require_token: bool = True
    ) -> Settings:
        """Read settings from ``env`` (default: ``os.environ`` after loading ``.env``)."""
        if env is None:
            from dotenv import load_dotenv

            load_dotenv(override=False)
            env = os.environ
        reader = _Reader(env)
        token = reader.text("DISCORD_TOKEN")
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
        artifact = reader.text("SENTIMENT_ARTIFACT")
        level = (reader.text("SENTIMENT_LOG_LEVEL") or "INFO").upper()
        if level not in LOG_LEVELS:
            raise SettingsError(
                f"SENTIMENT_LOG_LEVEL={level!r} is not one of {', '.join(LOG_LEVELS)}."
            )
        precision = reader.text("SENTIMENT_PRECISION").lower() or None
        if precision not in (None, "auto", "fp32", "bf16"):
            raise SettingsError(
                f"SENTIMENT_PRECISION={precision!r} is not auto, fp32 or bf16 (or empty: the "
                "path the classifier was fitted on)."
            )
        retention = reader.parse("SENTIMENT_RETENTION_DAYS", _retention, "a whole number >= 1 or 0")
        return cls(
            token=Secret(token),
            artifact=Path(artifact).expanduser() if artifact else None,
            database=Path(reader.text("SENTIMENT_DB") or DEFAULT_DATABASE).expanduser(),
            dev_guild_id=reader.parse("SENTIMENT_DEV_GUILD_ID", _snowflake, "a Discord id"),
            max_batch=_or(reader.positive_int("SENTIMENT_MAX_BATCH"), cls.max_batch),
            max_wait_ms=_or(
                reader.parse("SENTIMENT_MAX_WAIT_MS", _ms, "milliseconds from 0 to 1000"),
                cls.max_wait_ms,
            ),
            max_queue=_or(reader.positive_int("SENTIMENT_MAX_QUEUE"), cls.max_queue),
            encoder_batch_size=_or(
                reader.positive_int("SENTIMENT_BATCH_SIZE"), cls.encoder_batch_size
            ),
            torch_threads=reader.positive_int("SENTIMENT_TORCH_THREADS"),
            precision=precision,
            retention_days=cls.retention_days if retention is None else (retention or None),
            log_level=level,
        )


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str:
        return self.env.get(name, "").strip()

    def parse(self, name: str, parse: Callable[[str], T], what: str) -> T | None:
        raw = self.text(name)
        if not raw:
            return None
        try:
            return parse(raw)
        except ValueError:
            raise SettingsError(
                f"{name}={raw!r} is not {what}. Fix it in .env or the environment."
            ) from None

    def positive_int(self, name: str) -> int | None:
        return self.parse(name, _positive_int, "a whole number >= 1")


def _or(value: T | None, default: T) -> T:
    return default if value is None else value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError(raw)
    return value


def _retention(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(raw)
    return value


def _snowflake(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 2**64:
        raise ValueError(raw)
    return value


def _ms(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1000.0:
        raise ValueError(raw)
    return value
