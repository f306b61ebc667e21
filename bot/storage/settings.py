"""Per-guild settings (emoji, band, whether automatic predictions keep their text, retention,
the channels with automatic reactions), cached in memory after the first read and reloaded
after each change, so the message hot path never reads the disk. Bad values raise ValueError
and change nothing.

With a ``ttl`` (several processes sharing one database), a guild's cached settings older than
``ttl`` seconds are read again on their next use, so a change made through another process is
seen within ``ttl`` seconds; if that read fails, the cached settings are served meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Final, Literal

from bot.storage.backend import Backend
from bot.storage.records import (
    DEFAULT_NEGATIVE_EMOJI,
    DEFAULT_POSITIVE_EMOJI,
    GuildSettings,
    check_id,
    safe_text,
)

__all__ = ["MAX_EMOJI_LENGTH", "MAX_RETENTION_DAYS", "GuildSettingsCache", "check_retention"]

log = logging.getLogger("bot.storage")

MAX_RETENTION_DAYS: Final = 36_500
MAX_EMOJI_LENGTH: Final = 100


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


def check_retention(name: str, days: object) -> int:
    """``days`` if it is a whole number of days from 1 to MAX_RETENTION_DAYS, else ValueError."""
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_RETENTION_DAYS:
        raise ValueError(
            f"{name} must be a whole number of days from 1 to {MAX_RETENTION_DAYS}, got {days!r}"
        )
    return days


class GuildSettingsCache:
    """Every guild's settings, read through a cache; made by Storage."""

    def __init__(self, backend: Backend, *, ttl: float | None = None) -> None:
        self._backend = backend
        self._ttl = ttl  # None: cached until changed through this cache
        self._lock = asyncio.Lock()  # cache fills and settings changes
        self._cache: dict[int, GuildSettings] = {}
        self._loaded_at: dict[int, float] = {}  # guild -> when read (monotonic), with a ttl

    def clear(self) -> None:
        """Forget what is cached: the next read of each guild goes to the database."""
        self._cache.clear()

    def forget(self, guild_id: int) -> None:
        """Forget one guild's cached settings (they were deleted)."""
        self._cache.pop(guild_id, None)

    def _fresh(self, guild_id: int) -> bool:
        return self._ttl is None or (
            time.monotonic() - self._loaded_at.get(guild_id, -math.inf) < self._ttl
        )

    async def get(self, guild_id: int) -> GuildSettings:
        """The guild's settings (defaults if none stored); served from memory after first use
        (and, with a ttl, read again once older than it)."""
        cached = self._cache.get(guild_id)
        if cached is not None and self._fresh(guild_id):
            return cached
        check_id("guild_id", guild_id, nullable=False)
        async with self._lock:
            cached = self._cache.get(guild_id)
            if cached is None or not self._fresh(guild_id):
                try:
                    cached = await self._store(guild_id)
                except self._backend.errors as exc:
                    if cached is None:
                        raise
                    log.debug("Serving guild %d's cached settings: %s", guild_id, exc)
            return cached

    async def _store(self, guild_id: int) -> GuildSettings:
        settings = await self._load(guild_id)
        self._cache[guild_id] = settings
        if self._ttl is not None:
            self._loaded_at[guild_id] = time.monotonic()
        return settings

    async def _load(self, guild_id: int) -> GuildSettings:
        rows = await self._backend.execute_fetchall(
            "SELECT positive_emoji, negative_emoji, band_low, band_high, store_auto_text,"
            " retention_days FROM guild_settings WHERE guild_id = ?",
            [guild_id],
        )
        channels = await self._backend.execute_fetchall(
            "SELECT channel_id FROM auto_channels WHERE guild_id = ?", [guild_id]
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

    async def _reload(self, guild_id: int) -> GuildSettings:
        """After a change (inside the lock): the settings as stored now, cached."""
        self._cache.pop(guild_id, None)
        return await self._store(guild_id)

    async def set_auto_channel(
        self, guild_id: int, channel_id: int, enabled: bool
    ) -> GuildSettings:
        """Switch automatic reactions on or off in a channel; returns the new settings."""
        check_id("guild_id", guild_id, nullable=False)
        check_id("channel_id", channel_id, nullable=False)
        async with self._lock:
            async with self._backend.transaction() as tx:
                if enabled:
                    await tx.execute(
                        "INSERT INTO guild_settings (guild_id) VALUES (?) ON CONFLICT DO NOTHING",
                        [guild_id],
                    )
                    await tx.execute(
                        "INSERT INTO auto_channels (guild_id, channel_id) VALUES (?, ?)"
                        " ON CONFLICT DO NOTHING",
                        [guild_id, channel_id],
                    )
                else:
                    await tx.execute(
                        "DELETE FROM auto_channels WHERE guild_id = ? AND channel_id = ?",
                        [guild_id, channel_id],
                    )
            return await self._reload(guild_id)

    async def update(
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
        check_id("guild_id", guild_id, nullable=False)
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
            changes.append(("retention_days", check_retention("retention_days", retention_days)))
        async with self._lock:
            async with self._backend.transaction() as tx:
                await tx.execute(
                    "INSERT INTO guild_settings (guild_id) VALUES (?) ON CONFLICT DO NOTHING",
                    [guild_id],
                )
                if changes:
                    # Column names come from the fixed list above, never from the caller.
                    assignments = ", ".join(f"{column} = ?" for column, _ in changes)
                    await tx.execute(
                        f"UPDATE guild_settings SET {assignments} WHERE guild_id = ?",
                        [*(value for _, value in changes), guild_id],
                    )
            return await self._reload(guild_id)
