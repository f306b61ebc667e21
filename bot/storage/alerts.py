"""Mood-alert settings and state: each guild's alert channel and hourly cap, its watched
channels (rule and state), and the log of alerts posted (for the hourly cap; kept one day).

Every guild's configuration is read once (:meth:`AlertStore.load`) and kept in memory, and
reloaded after each change, so that the message hot path asks :meth:`AlertStore.watched`
without touching the disk. The rules and states are the plain values of :mod:`bot.alerts`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Final

from bot.alerts import DEFAULT_HOURLY_CAP, MAX_HOURLY_CAP, WatchRule, WatchState
from bot.storage.backend import Backend
from bot.storage.records import check_id, from_ts, to_ts

__all__ = ["AlertConfig", "AlertStore", "Watch"]

LOG_KEPT: Final = timedelta(days=1)


@dataclass(frozen=True)
class Watch:
    """One watched channel: how it is watched and what is remembered of it."""

    channel_id: int
    rule: WatchRule
    state: WatchState = field(default_factory=WatchState)


@dataclass(frozen=True)
class AlertConfig:
    """A guild's alert settings. ``alert_channel_id`` None: alerts are not posted."""

    guild_id: int
    alert_channel_id: int | None = None
    hourly_cap: int = DEFAULT_HOURLY_CAP
    watches: Mapping[int, Watch] = field(default_factory=lambda: MappingProxyType({}))


def _check_cap(cap: int) -> int:
    if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= MAX_HOURLY_CAP:
        raise ValueError(
            f"hourly_cap must be a whole number from 1 to {MAX_HOURLY_CAP}, got {cap!r}"
        )
    return cap


class AlertStore:
    """Every guild's alert configuration, cached; made by Storage."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = asyncio.Lock()
        self._configs: dict[int, AlertConfig] | None = None  # None: not loaded yet

    async def load(self) -> Mapping[int, AlertConfig]:
        """Every guild with alert settings or watches (read once, then from memory)."""
        if self._configs is None:
            async with self._lock:
                if self._configs is None:
                    self._configs = await self._read_all()
        return MappingProxyType(self._configs)

    async def refresh(self) -> None:
        """Read every guild's configuration again, if it was loaded (another process sharing
        the database may have changed it)."""
        if self._configs is not None:
            async with self._lock:
                self._configs = await self._read_all()

    def watched(self, guild_id: int, channel_id: int) -> bool:
        """Whether the channel is watched (from memory; False until :meth:`load`)."""
        config = (self._configs or {}).get(guild_id)
        return config is not None and channel_id in config.watches

    def forget(self, guild_id: int) -> None:
        """Drop the guild's cached alert settings (its rows were deleted: it left)."""
        if self._configs is not None:
            self._configs.pop(guild_id, None)

    async def get(self, guild_id: int) -> AlertConfig:
        """The guild's alert settings (the defaults if it has none)."""
        check_id("guild_id", guild_id, nullable=False)
        configs = await self.load()
        return configs.get(guild_id) or AlertConfig(guild_id)

    async def _read_all(self, guild_id: int | None = None) -> dict[int, AlertConfig]:
        # guild_id None: every guild.
        params = [guild_id]
        settings = await self._backend.execute_fetchall(
            "SELECT guild_id, alert_channel_id, hourly_cap FROM alert_settings"
            " WHERE guild_id = COALESCE(?, guild_id)",
            params,
        )
        watches = await self._backend.execute_fetchall(
            "SELECT guild_id, channel_id, threshold, resolve_below, window_minutes, min_messages,"
            " cooldown_minutes, alerting, last_alert_at, alert_message_id FROM alert_watches"
            " WHERE guild_id = COALESCE(?, guild_id)",
            params,
        )
        found: dict[int, tuple[int | None, int, dict[int, Watch]]] = {
            int(g): (c, int(cap), {}) for g, c, cap in settings
        }
        for g, c, threshold, resolve, window, minimum, cooldown, alerting, last, msg in watches:
            rule = WatchRule(float(threshold), float(resolve), window, minimum, cooldown)
            state = WatchState(bool(alerting), None if last is None else from_ts(last), msg)
            found.setdefault(int(g), (None, DEFAULT_HOURLY_CAP, {}))[2][int(c)] = Watch(
                int(c), rule, state
            )
        return {g: AlertConfig(g, c, cap, MappingProxyType(w)) for g, (c, cap, w) in found.items()}

    async def _reload(self, guild_id: int) -> AlertConfig:
        """After a change (inside the lock): the guild's config as stored now, cached."""
        assert self._configs is not None  # every change loads first
        fresh = (await self._read_all(guild_id)).get(guild_id)
        if fresh is None:
            self._configs.pop(guild_id, None)
            return AlertConfig(guild_id)
        self._configs[guild_id] = fresh
        return fresh

    async def set_channel(
        self, guild_id: int, channel_id: int | None, hourly_cap: int | None = None
    ) -> AlertConfig:
        """Post the guild's alerts in ``channel_id`` (None: post none); ``hourly_cap`` None
        keeps the guild's (or the default)."""
        check_id("guild_id", guild_id, nullable=False)
        check_id("channel_id", channel_id, nullable=True)
        cap = None if hourly_cap is None else _check_cap(hourly_cap)
        await self.load()
        async with self._lock:
            async with self._backend.transaction() as tx:
                await tx.execute(
                    "INSERT INTO alert_settings (guild_id, alert_channel_id, hourly_cap)"
                    " VALUES (?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET"
                    " alert_channel_id = excluded.alert_channel_id,"
                    " hourly_cap = COALESCE(?, alert_settings.hourly_cap)",
                    [guild_id, channel_id, cap or DEFAULT_HOURLY_CAP, cap],
                )
            return await self._reload(guild_id)

    async def watch(self, guild_id: int, channel_id: int, rule: WatchRule) -> AlertConfig:
        """Watch the channel under ``rule`` (a channel already watched keeps its state)."""
        check_id("guild_id", guild_id, nullable=False)
        check_id("channel_id", channel_id, nullable=False)
        await self.load()
        async with self._lock:
            async with self._backend.transaction() as tx:
                await tx.execute(
                    "INSERT INTO alert_watches (guild_id, channel_id, threshold, resolve_below,"
                    " window_minutes, min_messages, cooldown_minutes) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (guild_id, channel_id) DO UPDATE SET"
                    " threshold = excluded.threshold, resolve_below = excluded.resolve_below,"
                    " window_minutes = excluded.window_minutes,"
                    " min_messages = excluded.min_messages,"
                    " cooldown_minutes = excluded.cooldown_minutes",
                    [
                        guild_id,
                        channel_id,
                        rule.threshold,
                        rule.resolve_below,
                        rule.window_minutes,
                        rule.min_messages,
                        rule.cooldown_minutes,
                    ],
                )
            return await self._reload(guild_id)

    async def unwatch(self, guild_id: int, channel_id: int) -> tuple[bool, AlertConfig]:
        """Stop watching the channel: (whether it was watched, the new settings)."""
        check_id("guild_id", guild_id, nullable=False)
        check_id("channel_id", channel_id, nullable=False)
        await self.load()
        async with self._lock:
            async with self._backend.transaction() as tx:
                removed = await tx.execute(
                    "DELETE FROM alert_watches WHERE guild_id = ? AND channel_id = ?",
                    [guild_id, channel_id],
                )
            return bool(removed), await self._reload(guild_id)

    async def record(
        self, guild_id: int, channel_id: int, state: WatchState, *, posted_at: datetime | None
    ) -> None:
        """Store the channel's new state; ``posted_at``: an alert was posted then (it counts
        toward the guild's hourly cap). Alerts older than a day are forgotten."""
        async with self._lock:
            async with self._backend.transaction() as tx:
                await tx.execute(
                    "UPDATE alert_watches SET alerting = ?, last_alert_at = ?,"
                    " alert_message_id = ? WHERE guild_id = ? AND channel_id = ?",
                    [
                        int(state.alerting),
                        None if state.last_alert_at is None else to_ts(state.last_alert_at),
                        state.alert_message_id,
                        guild_id,
                        channel_id,
                    ],
                )
                if posted_at is not None:
                    await tx.execute(
                        "INSERT INTO alert_log (guild_id, channel_id, posted_at) VALUES (?, ?, ?)",
                        [guild_id, channel_id, to_ts(posted_at)],
                    )
                    await tx.execute(
                        "DELETE FROM alert_log WHERE guild_id = ? AND posted_at < ?",
                        [guild_id, to_ts(posted_at - LOG_KEPT)],
                    )
            if self._configs is not None and guild_id in self._configs:
                config = self._configs[guild_id]
                watch = config.watches.get(channel_id)
                if watch is not None:
                    watches = dict(config.watches)
                    watches[channel_id] = Watch(channel_id, watch.rule, state)
                    self._configs[guild_id] = AlertConfig(
                        guild_id, config.alert_channel_id, config.hourly_cap,
                        MappingProxyType(watches),
                    )  # fmt: skip

    async def alerts_since(self, guild_id: int, since: datetime) -> int:
        """How many alerts were posted for the guild since ``since``."""
        rows = await self._backend.execute_fetchall(
            "SELECT COUNT(*) FROM alert_log WHERE guild_id = ? AND posted_at >= ?",
            [guild_id, to_ts(since)],
        )
        return int(rows[0][0])
