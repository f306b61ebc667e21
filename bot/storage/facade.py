""":class:`Storage`, the one object the bot holds: it opens a backend and puts the writer, the
queries, the guild settings and privacy in front of it. It takes plain ids and values, never a
Discord object; each method says what it does, the modules beside it say how.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from bot.alerts import WatchRule, WatchState
from bot.storage import corrections as fixes
from bot.storage.alerts import AlertConfig, AlertStore
from bot.storage.backend import Backend
from bot.storage.corrections import (
    ID_SQL,
    UPSERT_SQL,
    CorrectionFilter,
    CorrectionRecord,
    StoredCorrection,
    correction_params,
)
from bot.storage.departures import (
    Departure,
    cancel_departure,
    departure,
    purge_departed,
    reconcile,
    record_departure,
)
from bot.storage.dsn import Dsn, database_location
from bot.storage.export import ExportSummary, export_steps
from bot.storage.privacy import Privacy, load_opt_outs
from bot.storage.queries import (
    STATS_QUERIES,
    Query,
    auto_prediction_query,
    auto_row_query,
    channel_moods_query,
    count_query,
    history_query,
    mood_counts_query,
    mood_counts_result,
    mood_over_time_query,
    mood_over_time_result,
    most_negative_query,
    prediction_at_query,
    row_to_prediction,
    stats_result,
)
from bot.storage.records import (
    Bucket,
    DatabaseStats,
    GuildSettings,
    HistoryFilter,
    PredictionRecord,
    StoredPrediction,
)
from bot.storage.schema import SCHEMA_VERSION
from bot.storage.settings import GuildSettingsCache
from bot.storage.sqlite import QUICK_CHECK_S, SqliteBackend
from bot.storage.writer import MAX_PENDING, Writer, WriterStats

__all__ = ["Storage"]

log = logging.getLogger("bot.storage")


class Storage:
    """The prediction log and settings of one bot; create with :meth:`open`."""

    def __init__(
        self, backend: Backend, opted_out: set[int], *, refresh_s: float | None = None
    ) -> None:
        """Private: use :meth:`Storage.open`."""
        self._backend = backend
        self.path: Path | Dsn = backend.path
        self._privacy = Privacy(backend, opted_out, flush=self.flush)
        self._writer = Writer(backend, accepts=self._privacy.accepts)
        self._settings = GuildSettingsCache(backend, ttl=refresh_s)
        self._alerts = AlertStore(backend)
        self._refresh_s = refresh_s
        self._refresher: asyncio.Task[None] | None = None

    # -- opening and closing -----------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: str | Path | Dsn,
        *,
        busy_timeout: float = 5.0,
        quick_check_s: float = QUICK_CHECK_S,
        pool_size: int | None = None,
        settings_refresh_s: float | None = None,
    ) -> Storage:
        """Open (creating or migrating) the database: the SQLite file at ``path``, or the
        PostgreSQL database a ``postgresql://`` address names (a pool of at most
        ``pool_size`` connections).

        Raises StorageError for a file that is not a Sentiment Bot database, one written by a
        newer version, one that cannot be created or read, or one that ``PRAGMA quick_check``
        finds damaged (stopped after ``quick_check_s`` seconds on a huge file: a WARNING);
        such a file is left unchanged. For PostgreSQL: a server that cannot be reached,
        refused credentials, a database of another program or a newer version (one line each,
        the password masked). ValueError for a malformed address.

        ``settings_refresh_s``: for several processes sharing one database, how old a guild's
        cached settings may get before they are read again, and how often the opt-outs and
        alert settings are re-read (by the task :meth:`start_writer` starts); None: cached
        until changed through this Storage.
        """
        where = database_location(path)
        backend: Backend
        if isinstance(where, Dsn):
            from bot.storage.postgres import POOL_SIZE, PostgresBackend

            backend = await PostgresBackend.open(
                where, busy_timeout=busy_timeout, pool_size=pool_size or POOL_SIZE
            )
        else:
            backend = await SqliteBackend.open(
                where, busy_timeout=busy_timeout, quick_check_s=quick_check_s
            )
        if settings_refresh_s is not None and settings_refresh_s <= 0:
            settings_refresh_s = None
        try:
            opted_out = await load_opt_outs(backend)
        except BaseException as exc:
            await backend.close()
            error = backend.open_error(exc)
            if error is None:
                raise
            raise error from exc
        return cls(backend, opted_out, refresh_s=settings_refresh_s)

    async def close(self, *, timeout: float | None = 30.0) -> None:
        """Write everything queued (waiting at most ``timeout`` seconds), then close.

        If the database keeps failing past ``timeout``, the predictions still queued are not
        written and an ERROR says how many. Closing twice is harmless.
        """
        if self._backend.closed:
            return
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        try:
            await self._writer.close(timeout)
        finally:
            await self._backend.close()

    # -- the writer --------------------------------------------------------------------------

    def start_writer(
        self,
        *,
        batch_size: int = 100,
        flush_interval: float = 0.0,
        retry_initial: float = 0.1,
        retry_max: float = 30.0,
        max_pending: int = MAX_PENDING,
    ) -> None:
        """Start the task that writes submitted records in batches (call inside the loop).

        Group commit: with ``flush_interval`` 0 (the default) the writer commits as soon as it
        has records; what arrives while a commit runs goes into the next one (up to
        ``batch_size`` rows per transaction). A positive ``flush_interval`` waits that long
        for a batch to fill (unless someone awaits :meth:`save`, :meth:`flush` or
        :meth:`close`). Failed writes are retried after ``retry_initial`` seconds, doubling up
        to ``retry_max``. At most ``max_pending`` records wait in memory.
        """
        self._writer.start(
            batch_size=batch_size,
            flush_interval=flush_interval,
            retry_initial=retry_initial,
            retry_max=retry_max,
            max_pending=max_pending,
        )
        if self._refresh_s is not None and self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh(self._refresh_s), name="sentiment-storage-refresh"
            )

    async def _refresh(self, every: float) -> None:
        """Re-read what other processes sharing the database may change: opt-outs (so that a
        /forget-me made through another process stops this one storing within ``every``
        seconds) and mood-alert settings. Guild settings expire on their own (their TTL)."""
        failing = False
        while True:
            await asyncio.sleep(every)
            try:
                await self._privacy.refresh()
                await self._alerts.refresh()
            except self._backend.errors as exc:
                if not failing:
                    log.warning("Cannot re-read opt-outs and alert settings (%s); retrying", exc)
                failing = True
            else:
                failing = False

    def submit(self, record: PredictionRecord) -> bool:
        """Queue ``record`` for the writer; never blocks; constant time.

        Returns False, storing nothing, if the user opted out or the message was deleted.
        Raises :class:`StorageUnavailableError` if the database is broken (corrupt, deleted) or
        ``max_pending`` records already wait for a database that cannot write.
        """
        return self._writer.submit(record)

    async def save(self, record: PredictionRecord) -> bool:
        """Submit ``record`` and return once it is committed (group commit: it shares its
        transaction with whatever else is queued). False if refused (see :meth:`submit`).

        Waits through transient failures (locked, disk full, read-only: retried). Raises
        :class:`StorageUnavailableError` if the database breaks, the backlog is full, or storage
        closes before the record is written: then it is not known to be stored.
        """
        return await self._writer.save(record)

    async def flush(self) -> None:
        """Return once everything submitted before the call is committed (or refused).

        Waits through write failures (they are retried); wrap it in ``asyncio.wait_for`` to
        bound the wait. Without a running writer, writes the queue itself.
        """
        await self._writer.flush()

    async def add(self, record: PredictionRecord) -> int | None:
        """Insert ``record`` now, bypassing the queue.

        Returns the new row id, or None when nothing was stored: an automatic prediction
        already stored for that message, an opted-out user, or a deleted message.
        """
        return await self._writer.add(record)

    @property
    def writer_stats(self) -> WriterStats:
        """Counters of the batching writer since open."""
        return self._writer.stats

    @property
    def failure(self) -> str | None:
        """The database's words for why the writer's writes are failing and being retried
        (e.g. "database is locked"), or None while they are not."""
        return self._writer.failure

    # -- queries -----------------------------------------------------------------------------

    async def _fetchall(self, query: Query) -> list[Sequence[Any]]:
        sql, params = query
        return await self._backend.execute_fetchall(sql, params)

    async def history(
        self, flt: HistoryFilter, *, limit: int = 10, offset: int = 0
    ) -> list[StoredPrediction]:
        """Predictions matching ``flt``, newest first."""
        rows = await self._fetchall(history_query(flt, limit, offset))
        return [row_to_prediction(row) for row in rows]

    async def count(self, flt: HistoryFilter) -> int:
        """How many predictions match ``flt``."""
        rows = await self._fetchall(count_query(flt))
        return int(rows[0][0])

    async def mood_counts(self, flt: HistoryFilter) -> dict[str, int]:
        """``{'positive': n, 'negative': n, 'neutral': n, 'unread': n}`` over the predictions
        matching; texts the model did not read count under ``unread`` only."""
        return mood_counts_result(await self._fetchall(mood_counts_query(flt)))

    async def mood_over_time(
        self, flt: HistoryFilter, *, bucket: Bucket = "day"
    ) -> list[tuple[datetime, dict[str, int]]]:
        """Mood counts per UTC hour/day/week (weeks start Monday); non-empty buckets, ascending."""
        rows = await self._fetchall(mood_over_time_query(flt, bucket))
        return mood_over_time_result(rows, bucket)

    async def has_auto_prediction(self, message_id: int) -> bool:
        """Whether an automatic prediction for ``message_id`` is stored or queued.

        The queue is looked up in constant time (an index by message id), whatever its size.
        """
        if self._writer.queued_auto(message_id):
            return True
        rows = await self._fetchall(auto_prediction_query(message_id))
        return bool(rows[0][0])

    async def auto_prediction(self, message_id: int) -> StoredPrediction | None:
        """The stored automatic prediction of a message, or None."""
        rows = await self._fetchall(auto_row_query(message_id))
        return row_to_prediction(rows[0]) if rows else None

    async def prediction_at(self, user_id: int, created_at: datetime) -> StoredPrediction | None:
        """The prediction ``user_id`` asked for at ``created_at`` (the time it was logged with),
        or None when it is not stored (any more)."""
        rows = await self._fetchall(prediction_at_query(user_id, created_at))
        return row_to_prediction(rows[0]) if rows else None

    async def stats(self) -> DatabaseStats:
        """Rows, rows per source, time span and file size, for the operator CLI."""
        by_source = await self._fetchall((STATS_QUERIES[0], []))
        span = await self._fetchall((STATS_QUERIES[1], []))
        return stats_result(
            self.path, SCHEMA_VERSION, by_source, span[0], await self._backend.size_bytes()
        )

    # -- corrections -------------------------------------------------------------------------

    async def add_correction(self, record: CorrectionRecord) -> int | None:
        """Store a correction now (the same person correcting the same prediction again
        changes its mood); its row id, or None when refused: the person correcting or the
        author opted out, or the message was deleted."""
        async with self._backend.transaction() as tx:
            # Inside the transaction: forget-me and deletions, serialised with it, either
            # come first (and refuse it here) or after (and delete it).
            if not self._privacy.accepts_correction(record):
                return None
            await tx.execute(UPSERT_SQL, correction_params(record))
            rows = await tx.execute_fetchall(ID_SQL, [record.prediction_id, record.user_id])
        return int(rows[0][0])

    async def corrections(
        self, flt: CorrectionFilter | None = None, *, limit: int = 10, offset: int = 0
    ) -> list[StoredCorrection]:
        """Corrections matching ``flt`` (default: all), newest first."""
        query = fixes.corrections_query(flt or CorrectionFilter(), limit, offset)
        return [fixes.row_to_correction(row) for row in await self._fetchall(query)]

    async def count_corrections(self, flt: CorrectionFilter | None = None) -> int:
        """How many corrections match ``flt`` (default: all)."""
        rows = await self._fetchall(fixes.count_query(flt or CorrectionFilter()))
        return int(rows[0][0])

    async def latest_correction(self, message_id: int) -> StoredCorrection | None:
        """The newest correction of a message's automatic reading, by anyone, or None."""
        rows = await self._fetchall(fixes.latest_for_message_query(message_id))
        return fixes.row_to_correction(rows[0]) if rows else None

    # -- deletion and privacy ----------------------------------------------------------------

    async def delete_messages(self, message_ids: Sequence[int]) -> int:
        """Delete every prediction about these messages; returns the rows deleted.

        Predictions for them that are queued, or submitted later, are not stored either.
        """
        return await self._privacy.delete_messages(message_ids)

    async def forget_user(self, user_id: int) -> int:
        """Delete every prediction of the user, and every one holding their words (someone
        else's context menu on their message), in every guild, and opt them out. Their
        corrections, and corrections of their words, go too.

        Returns the rows deleted. Nothing queued for or about the user survives, and nothing
        new is stored until :meth:`set_opt_out` (user_id, False).
        """
        return await self._privacy.forget_user(user_id)

    async def set_opt_out(self, user_id: int, opted_out: bool) -> None:
        """Opt the user out of (or back into) prediction logging; persisted."""
        await self._privacy.set_opt_out(user_id, opted_out)

    async def is_opted_out(self, user_id: int) -> bool:
        """Whether the user opted out (from memory: no disk access)."""
        return self._privacy.opted_out(user_id)

    def opted_out(self, user_id: int) -> bool:
        """Whether the user opted out; synchronous, for the message hot path."""
        return self._privacy.opted_out(user_id)

    async def purge(self, *, default_days: int | None, now: datetime | None = None) -> int:
        """Delete predictions older than their guild's ``retention_days``, or ``default_days``
        for guilds without one and for direct messages (None: keep those forever).

        Returns the rows deleted.
        """
        return await self._privacy.purge(default_days=default_days, now=now)

    async def export_member(
        self,
        guild_id: int | None,
        user_id: int,
        write: Callable[[str], object],
        *,
        now: datetime | None = None,
    ) -> ExportSummary:
        """Every row held about ``user_id`` in ``guild_id`` (None: direct messages), as JSON
        text handed to ``write`` piece by piece (:mod:`bot.storage.export`); its counts.

        Reads one page at a time; rows committed while it runs may or may not be included.
        """
        steps = export_steps(guild_id, user_id, now=datetime.now(UTC) if now is None else now)
        item = next(steps)
        try:
            while True:
                if isinstance(item, str):
                    write(item)
                    item = steps.send(None)
                else:
                    item = steps.send(await self._fetchall(item))
        except StopIteration as stop:
            summary: ExportSummary = stop.value
            return summary

    # -- leaving guilds ----------------------------------------------------------------------

    async def record_guild_departure(self, guild_id: int, *, at: datetime | None = None) -> None:
        """The bot was removed from the guild (at ``at``, default now): its rows and settings
        are deleted by :meth:`purge_departed_guilds` once the grace period has passed, unless
        :meth:`cancel_guild_departure` comes first. A second call keeps the first time."""
        await record_departure(self._backend, guild_id, at=at)

    async def cancel_guild_departure(self, guild_id: int) -> bool:
        """The bot is in the guild (again): nothing of it will be deleted. Whether a departure
        was pending."""
        return await cancel_departure(self._backend, guild_id)

    async def reconcile_guilds(
        self,
        present: Collection[int],
        *,
        at: datetime | None = None,
        owns: Callable[[int], bool] | None = None,
    ) -> tuple[list[int], list[int]]:
        """On connecting, ``present`` being every guild the bot is in: cancel their departures
        (the bot was added back while offline) and record one for each other guild with rows
        (removed while offline); ``(cancelled, recorded)``. ``owns``: the guilds this process
        answers for (its shards'); None: every guild."""
        return await reconcile(self._backend, present, at=at, owns=owns)

    async def guild_departure(self, guild_id: int) -> Departure | None:
        """The guild's pending departure, or None."""
        return await departure(self._backend, guild_id)

    async def purge_departed_guilds(
        self,
        *,
        grace_days: int,
        now: datetime | None = None,
        keep: Collection[int] = (),
        owns: Callable[[int], bool] | None = None,
    ) -> dict[int, int]:
        """Delete every row and the settings of each guild the bot left more than
        ``grace_days`` ago, except those in ``keep`` (the guilds it is in now) and those
        ``owns`` says another process answers for; ``{guild_id: rows deleted}``."""
        deleted = await purge_departed(
            self._backend, grace_days=grace_days, now=now, keep=frozenset(keep), owns=owns
        )
        for guild_id in deleted:
            self._settings.forget(guild_id)
            self._alerts.forget(guild_id)
        return deleted

    # -- settings ----------------------------------------------------------------------------

    async def guild_settings(self, guild_id: int) -> GuildSettings:
        """The guild's settings (defaults if none stored); served from memory after first use."""
        return await self._settings.get(guild_id)

    async def set_auto_channel(
        self, guild_id: int, channel_id: int, enabled: bool
    ) -> GuildSettings:
        """Switch automatic reactions on or off in a channel; returns the new settings."""
        return await self._settings.set_auto_channel(guild_id, channel_id, enabled)

    async def update_guild_settings(
        self,
        guild_id: int,
        *,
        positive_emoji: str | None = None,
        negative_emoji: str | None = None,
        band: tuple[float, float] | Literal["reset"] | None = None,
        store_auto_text: bool | None = None,
        retention_days: int | Literal["reset"] | None = None,
    ) -> GuildSettings:
        """Change some settings of a guild (None: unchanged; 'reset': back to the model's band
        or the bot-wide default).

        Raises ValueError, changing nothing, if a value is out of range.
        """
        return await self._settings.update(
            guild_id,
            positive_emoji=positive_emoji,
            negative_emoji=negative_emoji,
            band=band,
            store_auto_text=store_auto_text,
            retention_days=retention_days,
        )

    # -- mood alerts -------------------------------------------------------------------------

    async def alert_configs(self) -> Mapping[int, AlertConfig]:
        """Every guild's alert settings and watched channels (read once, then from memory)."""
        return await self._alerts.load()

    async def alert_config(self, guild_id: int) -> AlertConfig:
        """The guild's alert settings (the defaults if it has none)."""
        return await self._alerts.get(guild_id)

    def watched(self, guild_id: int, channel_id: int) -> bool:
        """Whether mood alerts watch the channel; synchronous, for the message hot path
        (False until :meth:`alert_configs` was first awaited)."""
        return self._alerts.watched(guild_id, channel_id)

    async def set_alert_channel(
        self, guild_id: int, channel_id: int | None, *, hourly_cap: int | None = None
    ) -> AlertConfig:
        """Post the guild's alerts in ``channel_id`` (None: none); ``hourly_cap`` None keeps
        the current cap. ValueError, changing nothing, for a cap out of range."""
        return await self._alerts.set_channel(guild_id, channel_id, hourly_cap)

    async def watch_channel(self, guild_id: int, channel_id: int, rule: WatchRule) -> AlertConfig:
        """Watch the channel under ``rule``; a channel already watched keeps its state."""
        return await self._alerts.watch(guild_id, channel_id, rule)

    async def unwatch_channel(self, guild_id: int, channel_id: int) -> tuple[bool, AlertConfig]:
        """Stop watching the channel: (whether it was watched, the new settings)."""
        return await self._alerts.unwatch(guild_id, channel_id)

    async def record_alert_state(
        self, guild_id: int, channel_id: int, state: WatchState, *, posted_at: datetime | None
    ) -> None:
        """Store a watched channel's state; ``posted_at``: when an alert was posted (counted
        toward the guild's hourly cap)."""
        await self._alerts.record(guild_id, channel_id, state, posted_at=posted_at)

    async def alerts_since(self, guild_id: int, since: datetime) -> int:
        """How many alerts were posted for the guild since ``since``."""
        return await self._alerts.alerts_since(guild_id, since)

    async def channel_moods(
        self, guild_id: int, channel_id: int, since: datetime, until: datetime
    ) -> dict[str, int]:
        """Mood counts of the channel's messages (automatic predictions) in ``[since,
        until)``, as :meth:`mood_counts` gives them."""
        rows = await self._fetchall(channel_moods_query(guild_id, channel_id, since, until))
        return mood_counts_result(rows)

    async def most_negative(
        self, guild_id: int, channel_id: int, since: datetime, until: datetime, *, limit: int
    ) -> list[StoredPrediction]:
        """The channel's most negative messages in ``[since, until)``, most negative first."""
        query = most_negative_query(guild_id, channel_id, since, until, limit)
        return [row_to_prediction(row) for row in await self._fetchall(query)]
