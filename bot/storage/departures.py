"""Leaving no trace: guilds the bot was removed from, and the deletion of everything stored
about them once a grace period has passed.

When the bot is removed from a guild, :func:`record_departure` notes when (once: a replayed
event keeps the first time). If the bot is added back, :func:`cancel_departure` forgets the
departure and nothing is deleted. The purge (:func:`purge_departed`, run by the bot's purge
loop) deletes, for each guild gone longer than the grace period, every row of every table in
:data:`GUILD_DATA` (its predictions, its settings), then the departure itself.

Deletion goes in bounded transactions of at most :data:`DELETE_BATCH` rows, so that a large
guild does not hold the write lock (and the prediction writer) for long. Each transaction first
checks that the guild is still departed past its grace period: if the bot is re-added while a
purge runs, the purge stops there (what it already deleted stays deleted). A purge that is
interrupted (crash, locked database) resumes with the next one: the departure row goes last.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from bot.storage.backend import Backend, Transaction
from bot.storage.records import check_aware, check_id, from_ts, to_ts
from bot.storage.settings import check_retention

__all__ = [
    "DELETE_BATCH",
    "GUILD_DATA",
    "Departure",
    "cancel_departure",
    "departure",
    "purge_departed",
    "reconcile",
    "record_departure",
]

DELETE_BATCH: Final = 5_000  # rows per DELETE transaction

# Every table holding rows of one guild: each statement deletes at most ``?`` (the batch)
# rows of the guild ``?``, and is repeated until it deletes fewer. A new per-guild table is one
# more entry here (children before the rows they reference).
GUILD_DATA: Final[tuple[str, ...]] = (
    "DELETE FROM predictions WHERE id IN (SELECT id FROM predictions WHERE guild_id = ? LIMIT ?)",
    "DELETE FROM corrections WHERE id IN (SELECT id FROM corrections WHERE guild_id = ? LIMIT ?)",
    "DELETE FROM auto_channels WHERE (guild_id, channel_id) IN"
    " (SELECT guild_id, channel_id FROM auto_channels WHERE guild_id = ? LIMIT ?)",
    "DELETE FROM guild_settings WHERE guild_id IN"
    " (SELECT guild_id FROM guild_settings WHERE guild_id = ? LIMIT ?)",
    "DELETE FROM alert_log WHERE rowid IN (SELECT rowid FROM alert_log WHERE guild_id = ? LIMIT ?)",
    "DELETE FROM alert_watches WHERE (guild_id, channel_id) IN"
    " (SELECT guild_id, channel_id FROM alert_watches WHERE guild_id = ? LIMIT ?)",
    "DELETE FROM alert_settings WHERE guild_id IN"
    " (SELECT guild_id FROM alert_settings WHERE guild_id = ? LIMIT ?)",
)


@dataclass(frozen=True)
class Departure:
    """A guild the bot was removed from, and when."""

    guild_id: int
    left_at: datetime


async def record_departure(backend: Backend, guild_id: int, *, at: datetime | None = None) -> None:
    """Note that the bot was removed from ``guild_id`` (at ``at``, default now). A departure
    already noted keeps its first time: a replayed event does not push the deletion back."""
    check_id("guild_id", guild_id, nullable=False)
    when = time.time() if at is None else to_ts(check_aware("at", at))
    async with backend.transaction() as tx:
        await tx.execute(
            "INSERT INTO guild_departures (guild_id, left_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [guild_id, when],
        )


async def cancel_departure(backend: Backend, guild_id: int) -> bool:
    """The bot is in ``guild_id`` (again): nothing of it is to be deleted. Whether a departure
    was noted (the bot was re-added within the grace period)."""
    check_id("guild_id", guild_id, nullable=False)
    async with backend.transaction() as tx:
        removed = await tx.execute("DELETE FROM guild_departures WHERE guild_id = ?", [guild_id])
    return removed > 0


async def departure(backend: Backend, guild_id: int) -> Departure | None:
    """The guild's pending departure, or None while the bot is in it (or its rows are gone)."""
    check_id("guild_id", guild_id, nullable=False)
    rows = await backend.execute_fetchall(
        "SELECT left_at FROM guild_departures WHERE guild_id = ?", [guild_id]
    )
    return Departure(guild_id, from_ts(rows[0][0])) if rows else None


# Every guild with rows: the settings, and the guilds of predictions (a skip-scan along the
# predictions_guild_time index: one lookup per guild, not one per row).
_GUILDS_WITH_DATA: Final = (
    "WITH RECURSIVE seen(guild_id) AS ("
    " SELECT MIN(guild_id) FROM predictions"
    " UNION ALL"
    " SELECT (SELECT MIN(guild_id) FROM predictions WHERE guild_id > seen.guild_id)"
    " FROM seen WHERE seen.guild_id IS NOT NULL)"
    " SELECT guild_id FROM seen WHERE guild_id IS NOT NULL"
    " UNION SELECT guild_id FROM guild_settings"
)


async def reconcile(
    backend: Backend,
    present: Collection[int],
    *,
    at: datetime | None = None,
    owns: Callable[[int], bool] | None = None,
) -> tuple[list[int], list[int]]:
    """After connecting, with ``present`` the guilds the bot is in: cancel their departures
    (re-added while the bot was offline), and record one for each guild with rows the bot is
    no longer in (removed while it was offline). ``(cancelled, recorded)``, each sorted.

    ``owns``: the guilds this process answers for (a process running some of the bot's shards
    sees only their guilds in ``present``); the others are left alone. None: every guild."""
    present = set(present)
    for guild_id in present:
        check_id("guild_id", guild_id, nullable=False)
    when = time.time() if at is None else to_ts(check_aware("at", at))
    with_data = {row[0] for row in await backend.execute_fetchall(_GUILDS_WITH_DATA)}
    if owns is not None:
        with_data = {guild_id for guild_id in with_data if owns(guild_id)}
    cancelled: list[int] = []
    recorded: list[int] = []
    async with backend.transaction() as tx:
        pending = {
            row[0] for row in await tx.execute_fetchall("SELECT guild_id FROM guild_departures")
        }
        for guild_id in sorted(pending & present):
            await tx.execute("DELETE FROM guild_departures WHERE guild_id = ?", [guild_id])
            cancelled.append(guild_id)
        for guild_id in sorted(with_data - present - pending):
            await tx.execute(
                "INSERT INTO guild_departures (guild_id, left_at) VALUES (?, ?)"
                " ON CONFLICT DO NOTHING",
                [guild_id, when],
            )
            recorded.append(guild_id)
    return cancelled, recorded


async def _still_due(tx: Transaction, guild_id: int, cutoff: float) -> bool:
    rows = await tx.execute_fetchall(
        "SELECT EXISTS (SELECT 1 FROM guild_departures WHERE guild_id = ? AND left_at < ?)",
        [guild_id, cutoff],
    )
    return bool(rows[0][0])


async def purge_departed(
    backend: Backend,
    *,
    grace_days: int,
    now: datetime | None = None,
    keep: Collection[int] = (),
    owns: Callable[[int], bool] | None = None,
    batch: int = DELETE_BATCH,
) -> dict[int, int]:
    """Delete every row of each guild the bot left more than ``grace_days`` ago, then its
    departure; ``{guild_id: rows deleted}`` for the guilds wholly deleted. Guilds in ``keep``
    (those the bot is in now, whatever the table says) are never deleted, nor guilds ``owns``
    says another process answers for (None: this one answers for all). ValueError for
    ``grace_days`` outside 1 .. MAX_RETENTION_DAYS."""
    check_retention("grace_days", grace_days)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"batch must be a whole number >= 1, got {batch!r}")
    now = datetime.now(UTC) if now is None else check_aware("now", now)
    cutoff = to_ts(now - timedelta(days=grace_days))
    due = await backend.execute_fetchall(
        "SELECT guild_id FROM guild_departures WHERE left_at < ? ORDER BY left_at", [cutoff]
    )
    deleted: dict[int, int] = {}
    for (guild_id,) in due:
        if guild_id in keep or (owns is not None and not owns(guild_id)):
            continue
        count = 0
        finished = False
        for statement in GUILD_DATA:
            while True:
                async with backend.transaction() as tx:
                    if not await _still_due(tx, guild_id, cutoff):
                        break  # re-added meanwhile: stop deleting
                    n = await tx.execute(statement, [guild_id, batch])
                count += n
                if n < batch:
                    break
        async with backend.transaction() as tx:
            if await _still_due(tx, guild_id, cutoff):
                await tx.execute("DELETE FROM guild_departures WHERE guild_id = ?", [guild_id])
                finished = True
        if finished:
            deleted[guild_id] = count
    return deleted
