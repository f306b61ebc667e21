"""Privacy: opt-outs, deleted messages, /forget-me, and retention, for predictions and
corrections alike (a correction holds the words of a prediction's author, and its corrector's
judgement: it goes wherever either's data goes).

Each row records whose words it holds (``author_id``, schema 4): the requester's for automatic
and ``/sentiment`` rows, the message's author's for the context menu (NULL for menu rows
written before schema 4 whose author the migration could not tell). ``private`` marks a
request made privately (``/sentiment private:True``, the context menu): only its requester
sees it (``HistoryFilter.audience``, applied by the queries).

Opt-outs live in a table and in an in-memory set loaded at open, so the writer refuses
(:meth:`Privacy.accepts`), without touching the disk, any record whose requester *or author*
opted out: no row at all, not even one without text. Deleting messages and forgetting a user
first flush the writer (so what is queued lands and is counted), then mark the ids (so later
submissions, and records queued in between, are refused), then delete: nothing queued
survives them. Deleted message ids are remembered (the last :data:`TOMBSTONES_KEPT`, in memory
only) so a late classification of a deleted message is not stored.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from bot.storage.backend import Backend
from bot.storage.corrections import CorrectionRecord
from bot.storage.records import PredictionRecord, check_aware, check_id, to_ts
from bot.storage.settings import check_retention

__all__ = ["TOMBSTONES_KEPT", "Privacy", "load_opt_outs"]

TOMBSTONES_KEPT: Final = 10_000
_CHUNK: Final = 500  # ids per DELETE ... IN (...) statement


# The retention purge, per table: (a guild with its own retention, the default for the others
# and direct messages, whether the rows count in what purge returns). Corrections are kept no
# longer than predictions; the count is of predictions, as it always was.
_PURGES: Final = (
    (
        "DELETE FROM predictions WHERE guild_id = ? AND created_at < ?",
        "DELETE FROM predictions WHERE created_at < ? AND (guild_id IS NULL OR guild_id NOT IN"
        " (SELECT guild_id FROM guild_settings WHERE retention_days IS NOT NULL))",
        True,
    ),
    (
        "DELETE FROM corrections WHERE guild_id = ? AND created_at < ?",
        "DELETE FROM corrections WHERE created_at < ? AND (guild_id IS NULL OR guild_id NOT IN"
        " (SELECT guild_id FROM guild_settings WHERE retention_days IS NOT NULL))",
        False,
    ),
)


# Rows written after a user's opt-out by a process that did not know of it yet.
_SINCE_OPT_OUT: Final = (
    "DELETE FROM predictions WHERE (user_id = ? OR author_id = ?) AND created_at >= ?",
    "DELETE FROM corrections WHERE (user_id = ? OR author_id = ?) AND created_at >= ?",
)


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


def _chunks(values: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


async def load_opt_outs(backend: Backend) -> set[int]:
    """The users who opted out, as stored."""
    return {row[0] for row in await backend.execute_fetchall("SELECT user_id FROM opt_outs")}


class Privacy:
    """Who opted out and which messages were deleted; made by Storage.

    ``flush`` waits until the writer's queue is written (:meth:`Storage.flush`).
    """

    def __init__(
        self, backend: Backend, opted_out: set[int], *, flush: Callable[[], Awaitable[None]]
    ) -> None:
        self._backend = backend
        self._opted_out = opted_out
        self._tombstones: OrderedDict[int, None] = OrderedDict()
        self._flush = flush
        # Held while an opt-out is being stored, so that a refresh cannot undo it meanwhile.
        self._changing = asyncio.Lock()

    def accepts(self, record: PredictionRecord) -> bool:
        """False for a record that must not be stored: its requester or its author opted out,
        or its message was deleted."""
        return (
            record.user_id not in self._opted_out and record.author_id not in self._opted_out
        ) and (record.message_id is None or record.message_id not in self._tombstones)

    def accepts_correction(self, record: CorrectionRecord) -> bool:
        """False for a correction that must not be stored: the person correcting or the author
        of the words opted out, or the message was deleted."""
        return (
            record.user_id not in self._opted_out and record.author_id not in self._opted_out
        ) and (record.message_id is None or record.message_id not in self._tombstones)

    def opted_out(self, user_id: int) -> bool:
        """Whether the user opted out (from memory: no disk access)."""
        return user_id in self._opted_out

    async def refresh(self) -> None:
        """Read the opt-outs again: another process sharing the database may have changed
        them. The set becomes what is stored. For a user who opted out elsewhere since the last
        read, the rows this process wrote after their opt-out (``since``, before it knew) are
        deleted, so nothing of theirs stored after it survives."""
        async with self._changing:
            rows = await self._backend.execute_fetchall("SELECT user_id, since FROM opt_outs")
            stored = {int(user_id): float(since) for user_id, since in rows}
            new = [(user, since) for user, since in stored.items() if user not in self._opted_out]
            self._opted_out.intersection_update(stored)
            self._opted_out.update(stored)
            if not new:
                return
            # Records already past the writer's check land first (queued ones are refused
            # from now on), so that the deletion below comes after them.
            await self._flush()
            async with self._backend.transaction() as tx:
                for user_id, since in new:
                    for sql in _SINCE_OPT_OUT:
                        await tx.execute(sql, [user_id, user_id, since])

    def _add_tombstones(self, message_ids: Iterable[int]) -> None:
        for message_id in message_ids:
            self._tombstones[message_id] = None
            self._tombstones.move_to_end(message_id)
        while len(self._tombstones) > TOMBSTONES_KEPT:
            self._tombstones.popitem(last=False)

    async def delete_messages(self, message_ids: Sequence[int]) -> int:
        """Delete every prediction about these messages; the rows deleted."""
        ids = list(dict.fromkeys(message_ids))
        for message_id in ids:
            check_id("message_id", message_id, nullable=False)
        if not ids:
            return 0
        # Land what is queued first, so the count covers it; from then on, records for these
        # messages are refused (queued ones are dropped at write time).
        await self._flush()
        self._add_tombstones(ids)
        deleted = 0
        async with self._backend.transaction() as tx:
            for chunk in _chunks(ids, _CHUNK):
                deleted += await tx.execute(
                    f"DELETE FROM predictions WHERE message_id IN ({_placeholders(len(chunk))})",
                    list(chunk),
                )
                await tx.execute(  # corrections of these messages go with them
                    f"DELETE FROM corrections WHERE message_id IN ({_placeholders(len(chunk))})",
                    list(chunk),
                )
        return deleted

    async def forget_user(self, user_id: int) -> int:
        """Delete every prediction of the user or holding their words, and opt them out; the
        rows deleted."""
        check_id("user_id", user_id, nullable=False)
        await self._flush()  # land what is queued, so the count covers it
        async with self._changing:
            return await self._forget(user_id)

    async def _forget(self, user_id: int) -> int:
        was_out = user_id in self._opted_out
        self._opted_out.add(user_id)  # refuse queued and new records from now on
        try:
            async with self._backend.transaction() as tx:
                deleted = await tx.execute(
                    "DELETE FROM predictions WHERE user_id = ? OR author_id = ?",
                    [user_id, user_id],
                )
                # Their corrections, and corrections of their words by others.
                await tx.execute(
                    "DELETE FROM corrections WHERE user_id = ? OR author_id = ?",
                    [user_id, user_id],
                )
                await tx.execute(
                    "INSERT INTO opt_outs (user_id, since) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    [user_id, time.time()],
                )
        except BaseException:
            if not was_out:  # not carried out (e.g. the database is locked): nothing changed
                self._opted_out.discard(user_id)
            raise
        return deleted

    async def set_opt_out(self, user_id: int, opted_out: bool) -> None:
        """Opt the user out of (or back into) prediction logging; persisted."""
        check_id("user_id", user_id, nullable=False)
        async with self._changing:
            await self._set_opt_out(user_id, opted_out)

    async def _set_opt_out(self, user_id: int, opted_out: bool) -> None:
        if opted_out:
            self._opted_out.add(user_id)
            async with self._backend.transaction() as tx:
                await tx.execute(
                    "INSERT INTO opt_outs (user_id, since) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    [user_id, time.time()],
                )
        else:
            async with self._backend.transaction() as tx:
                await tx.execute("DELETE FROM opt_outs WHERE user_id = ?", [user_id])
            self._opted_out.discard(user_id)

    async def purge(self, *, default_days: int | None, now: datetime | None = None) -> int:
        """Delete predictions past their guild's retention, or ``default_days``; the rows
        deleted."""
        if default_days is not None:
            check_retention("default_days", default_days)
        now = datetime.now(UTC) if now is None else check_aware("now", now)
        deleted = 0
        async with self._backend.transaction() as tx:
            custom = await tx.execute_fetchall(
                "SELECT guild_id, retention_days FROM guild_settings"
                " WHERE retention_days IS NOT NULL"
            )
            for by_guild, by_default, counted in _PURGES:
                for guild_id, days in custom:
                    n = await tx.execute(by_guild, [guild_id, to_ts(now - timedelta(days=days))])
                    deleted += n if counted else 0
                if default_days is not None:
                    n = await tx.execute(by_default, [to_ts(now - timedelta(days=default_days))])
                    deleted += n if counted else 0
        return deleted
