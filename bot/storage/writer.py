"""The batched writer: the in-memory queue of predictions, group commit, the callers waiting
for their row, retries with backoff, and the counters of it all (:class:`WriterStats`).

``submit`` appends to an in-memory deque (at most ``max_pending`` records) and returns at once;
one task commits as soon as it has records, up to ``batch_size`` rows per transaction, and what
arrives while a commit runs goes into the next one. ``save`` (what :class:`bot.mood.MoodService`
uses) waits for the commit of its record, so a reaction or reply is only sent for a durable
row; the wait is an await, the event loop never blocks. Rows are inserted with
``ON CONFLICT DO NOTHING`` (not ``INSERT OR IGNORE``, which would also silently skip rows that
break a CHECK constraint): an automatic prediction the gateway replays is stored once.

A transient error (``database is locked``, ``disk full``, ``readonly``, ...) keeps the batch
and retries with exponential backoff, logging one WARNING per failure streak and one INFO on
recovery. If the database refuses a batch for its content (a constraint), the batch is written
row by row so that the bad row alone is skipped (counted as ``rejected``, logged at ERROR) and
cannot block the queue. ``flush`` (and so deleting and forgetting) waits through a failure
streak. ``close`` waits up to ``timeout`` for the queue to drain; if the database keeps failing,
it logs at ERROR how many predictions were not written. Errors that retrying cannot cure (a
corrupt database, a file deleted or replaced while the bot runs: see the backend) are not
retried: one ERROR names the database and the fix, the writer stops, waiters and later
``submit`` calls get :class:`StorageUnavailableError` at once.

Which records are refused (opted-out users, deleted messages) is privacy's rule, given to the
writer as ``accepts``: it is asked at submit time and again just before writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bot.storage.backend import Backend
from bot.storage.errors import StorageError, StorageUnavailableError
from bot.storage.records import PredictionRecord, safe_text, to_ts

__all__ = ["MAX_PENDING", "Writer", "WriterStats"]

log = logging.getLogger("bot.storage")  # one logger for the whole package

# The writer keeps at most this many predictions in memory while the database cannot take
# them (about 1 KiB each with text); beyond it new predictions are refused.
MAX_PENDING: Final = 10_000

_INSERT_SQL: Final = (
    "INSERT INTO predictions (guild_id, channel_id, message_id, user_id, source, label,"
    " p_positive, in_band, model_version, created_at, text, p_negative, p_neutral, unread,"
    " author_id, private)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


def _record_params(record: PredictionRecord) -> tuple[object, ...]:
    """The parameters of :data:`_INSERT_SQL` for ``record``, in the stored form."""
    return (
        record.guild_id,
        record.channel_id,
        record.message_id,
        record.user_id,
        record.source,
        record.label,
        record.p_positive,
        int(record.in_band),
        safe_text(record.model_version),
        to_ts(record.created_at),
        None if record.text is None else safe_text(record.text),
        record.p_negative,
        record.p_neutral,
        record.unread,
        record.author_id,
        int(record.private),
    )


@dataclass(frozen=True)
class WriterStats:
    """The batching writer's counters since open."""

    pending: int  # submitted, not yet committed (queued or in the batch being written)
    written: int  # rows inserted
    duplicates: int  # automatic predictions already stored for their message
    refused: int  # not stored because the user opted out or the message was deleted
    rejected: int  # refused by the database itself (constraint); logged at ERROR
    batches: int  # committed batches
    failed_batches: int  # failed write attempts (each one retried)
    running: bool  # the writer task is running
    failing: bool  # in a failure streak now
    over_bound: int = 0  # refused because MAX_PENDING records already waited (not stored)
    unavailable: str | None = None  # why nothing is stored any more (corrupt, deleted file)
    limit: int = MAX_PENDING  # the most records kept pending (max_pending); more are refused


@dataclass
class _Counts:
    """What the writer counts as it goes; :attr:`Writer.stats` is a snapshot of it."""

    submitted: int = 0  # records queued since open (their sequence numbers)
    processed: int = 0  # queued records written, found duplicate or refused
    written: int = 0
    duplicates: int = 0
    refused: int = 0
    rejected: int = 0
    batches: int = 0
    failed_batches: int = 0
    over_bound: int = 0


class Writer:
    """The queue in front of a backend and the one task that writes it; made by Storage."""

    def __init__(self, backend: Backend, accepts: Callable[[PredictionRecord], bool]) -> None:
        self._backend = backend
        self._accepts = accepts  # privacy's rule: False for a record that must not be stored
        self._pending: deque[PredictionRecord] = deque()
        self._inflight: list[PredictionRecord] = []
        self._pending_auto: dict[int, int] = {}  # message id -> queued automatic records
        self._drain_lock = asyncio.Lock()  # one consumer of the queue at a time (FIFO)
        self._wake = asyncio.Event()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._batch_size = 100
        self._flush_interval = 0.5
        self._retry_initial = 0.1
        self._retry_max = 30.0
        self._max_pending = MAX_PENDING
        self._counts = _Counts()
        self._failing = False
        self._failure: str | None = None  # what the writer last failed with, while failing
        self._full_since: float | None = None  # backlog at its bound since (monotonic)
        self._unavailable: str | None = None  # why nothing can be stored any more
        self._stopping = False
        self._closed = False

    def _ensure_open(self) -> None:
        if self._closed:
            raise StorageError(f"storage for {self._backend.path} is closed")

    # -- the API Storage passes on ------------------------------------------------------------

    def start(
        self,
        *,
        batch_size: int,
        flush_interval: float,
        retry_initial: float,
        retry_max: float,
        max_pending: int,
    ) -> None:
        """Start the task that writes submitted records (see :meth:`Storage.start_writer`)."""
        self._ensure_open()
        if self._task is not None and not self._task.done():
            raise StorageError("the writer is already running")
        if batch_size < 1 or max_pending < 1:
            raise ValueError(
                f"batch_size and max_pending must be at least 1, got {batch_size}, {max_pending}"
            )
        if flush_interval < 0 or retry_initial <= 0 or retry_max < retry_initial:
            raise ValueError(
                "flush_interval must be >= 0 and 0 < retry_initial <= retry_max, got "
                f"{flush_interval}, {retry_initial}, {retry_max}"
            )
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._max_pending = max_pending
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="sentiment-storage-writer"
        )
        self._task.add_done_callback(self._task_done)

    def submit(self, record: PredictionRecord) -> bool:
        """Queue ``record``; never blocks; constant time (see :meth:`Storage.submit`)."""
        self._ensure_open()
        if not isinstance(record, PredictionRecord):
            raise TypeError(f"submit takes a PredictionRecord, got {type(record).__name__}")
        if self._unavailable is not None:
            raise StorageUnavailableError(self._unavailable)
        if not self._accepts(record):
            self._counts.refused += 1
            return False
        if len(self._pending) + len(self._inflight) >= self._max_pending:
            self._counts.over_bound += 1
            if self._full_since is None:
                self._full_since = time.monotonic()
                log.error(
                    "%d predictions are waiting for %s, the most kept in memory; new "
                    "predictions are not stored (and not reacted to) until the database takes "
                    "the backlog",
                    self._max_pending,
                    self._backend.path,
                )
            raise StorageUnavailableError(
                f"{self._max_pending} predictions are already waiting for {self._backend.path}"
            )
        self._pending.append(record)
        self._counts.submitted += 1
        if record.source == "auto" and record.message_id is not None:
            self._pending_auto[record.message_id] = self._pending_auto.get(record.message_id, 0) + 1
        if len(self._pending) == 1 or len(self._pending) >= self._batch_size:
            self._wake.set()
        return True

    async def save(self, record: PredictionRecord) -> bool:
        """Submit ``record`` and return once it is committed (see :meth:`Storage.save`)."""
        if not self.submit(record):
            return False
        target = self._counts.submitted
        if self._task is None or self._task.done():
            await self._drain()
        elif self._counts.processed < target:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append((target, future))
            await future
        if self._unavailable is not None and self._counts.processed < target:
            raise StorageUnavailableError(self._unavailable)
        return True

    async def flush(self) -> None:
        """Return once everything submitted before the call is committed (or refused)."""
        self._ensure_open()
        target = self._counts.submitted
        if self._counts.processed >= target:
            return
        if self._task is None or self._task.done():
            await self._drain()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        self._wake.set()
        await future

    async def add(self, record: PredictionRecord) -> int | None:
        """Insert ``record`` now, bypassing the queue (see :meth:`Storage.add`)."""
        if not self._accepts(record):
            self._counts.refused += 1
            return None
        async with self._backend.transaction() as tx:
            row_id = await tx.execute_insert(_INSERT_SQL, _record_params(record))
            if row_id is None:
                self._counts.duplicates += 1
                return None
            self._counts.written += 1
            return row_id

    def queued_auto(self, message_id: int) -> bool:
        """Whether an automatic prediction of the message waits in the queue (constant time)."""
        return message_id in self._pending_auto

    @property
    def stats(self) -> WriterStats:
        """Counters of the batching writer since open."""
        counts = self._counts
        return WriterStats(
            pending=len(self._pending) + len(self._inflight),
            written=counts.written,
            duplicates=counts.duplicates,
            refused=counts.refused,
            rejected=counts.rejected,
            batches=counts.batches,
            failed_batches=counts.failed_batches,
            running=self._task is not None and not self._task.done(),
            failing=self._failing,
            over_bound=counts.over_bound,
            unavailable=self._unavailable,
            limit=self._max_pending,
        )

    @property
    def failure(self) -> str | None:
        """The database's words for why writes are failing and being retried, or None."""
        return self._failure if self._failing else None

    async def close(self, timeout: float | None) -> None:
        """Write everything queued (waiting at most ``timeout`` seconds), then refuse more and
        free everyone still waiting."""
        path = self._backend.path
        self._stopping = True
        self._wake.set()
        try:
            if self._task is not None and not self._task.done():
                await asyncio.wait_for(self._task, timeout)
            else:
                await asyncio.wait_for(self._drain(), timeout)
        except TimeoutError:
            log.error(
                "Closing %s with %d predictions not written: the database kept failing for %s "
                "seconds (see the warning above)",
                path,
                len(self._pending),
                timeout,
            )
        finally:
            self._closed = True
            self._fail_waiters(StorageUnavailableError(f"storage for {path} is closed"))

    # -- the task ----------------------------------------------------------------------------

    def _urgent(self) -> bool:
        return self._stopping or bool(self._waiters)

    async def _run(self) -> None:
        while True:
            while not self._pending and not self._stopping:
                self._wake.clear()
                await self._wake.wait()
            if not self._pending or self._unavailable is not None:
                return  # stopping, and everything is written; or nothing can be written
            if (
                self._flush_interval > 0
                and len(self._pending) < self._batch_size
                and not self._urgent()
            ):
                self._wake.clear()  # set again by a full batch, flush() or close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._flush_interval)
            try:
                await self._drain()
            except StorageUnavailableError:
                return  # logged once by _break_down; submit() now refuses

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            error = StorageError("the storage writer was cancelled")
        elif (exc := task.exception()) is not None:
            log.error("The storage writer stopped", exc_info=exc)
            error = StorageError(f"the storage writer stopped: {exc!r}")
        else:
            return
        self._fail_waiters(error)

    def _fail_waiters(self, error: BaseException) -> None:
        waiters, self._waiters = self._waiters, []
        for _, future in waiters:
            if not future.done():
                future.set_exception(error)

    def _resolve_waiters(self) -> None:
        still: list[tuple[int, asyncio.Future[None]]] = []
        for target, future in self._waiters:
            if future.done():
                continue
            if self._counts.processed >= target:
                future.set_result(None)
            else:
                still.append((target, future))
        self._waiters = still

    async def _drain(self) -> None:
        """Write everything queued, in order, in batches; the only consumer of the queue."""
        async with self._drain_lock:
            while self._pending and self._unavailable is None:
                n = min(len(self._pending), self._batch_size)
                self._inflight = [self._pending.popleft() for _ in range(n)]
                try:
                    await self._write_batch(self._inflight)
                except BaseException:
                    # Cancelled (close timed out) or a bug: keep the records counted as pending.
                    self._pending.extendleft(reversed(self._inflight))
                    raise
                finally:
                    done, self._inflight = self._inflight, []
                for record in done:
                    if record.source == "auto" and record.message_id is not None:
                        left = self._pending_auto.pop(record.message_id, 1) - 1
                        if left > 0:
                            self._pending_auto[record.message_id] = left
                self._counts.processed += n
                if self._full_since is not None:
                    log.info(
                        "%s takes predictions again after %.0f s; %d were not stored meanwhile",
                        self._backend.path,
                        time.monotonic() - self._full_since,
                        self._counts.over_bound,
                    )
                    self._full_since = None
                self._resolve_waiters()

    async def _write_batch(self, batch: list[PredictionRecord]) -> None:
        """Commit ``batch``, retrying transient errors until it lands."""
        backend, counts = self._backend, self._counts
        rows = [_record_params(r) for r in batch if self._accepts(r)]
        counts.refused += len(batch) - len(rows)
        if not rows:
            return
        one_by_one = False
        rejected = 0
        delay = self._retry_initial
        while True:
            try:
                if one_by_one:
                    inserted, rejected = await self._insert_each(rows)
                else:
                    async with backend.transaction() as tx:
                        inserted = await tx.executemany(_INSERT_SQL, rows)
                        backend.ensure_same_database()  # before COMMIT: a deleted file rolls back
                break
            except StorageUnavailableError as exc:
                self._break_down(len(batch), exc)
                raise
            except backend.row_errors as exc:
                if one_by_one:
                    raise
                # The database refuses some row for itself: find it by writing rows one by one.
                log.debug("batch refused (%s); writing its rows one by one", exc)
                one_by_one = True
            except backend.errors as exc:
                counts.failed_batches += 1
                if backend.is_corruption(exc):
                    self._break_down(len(batch), exc)
                    raise StorageUnavailableError(self._unavailable) from exc
                self._failure = str(exc)
                if not self._failing:
                    self._failing = True
                    log.warning(
                        "Cannot write %d predictions to %s (%s); keeping them in memory and "
                        "retrying (%d queued in all)",
                        len(rows),
                        backend.path,
                        exc,
                        len(self._pending) + len(batch),
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
        if self._failing:
            self._failing = False
            log.info(
                "Writing predictions to %s works again (%d failed attempts so far)",
                backend.path,
                counts.failed_batches,
            )
        counts.batches += 1
        counts.written += inserted
        counts.duplicates += len(rows) - inserted - rejected
        counts.rejected += rejected

    def _break_down(self, batch: int, exc: BaseException) -> None:
        """Storage cannot work any more: say so once, stop accepting, free everyone waiting."""
        if self._unavailable is not None:
            return
        what, fix = self._backend.breakdown(exc)
        self._unavailable = f"{what}; predictions are not being stored"
        queued = len(self._pending) + batch
        log.error(
            "%s. Predictions are no longer stored and automatic reactions stop; /sentiment "
            "still answers, saying the answer was not saved. %d predictions in memory are not "
            "written. %s, then restart the bot.",
            what,
            queued,
            fix,
        )
        self._fail_waiters(StorageUnavailableError(self._unavailable))

    async def _insert_each(self, rows: list[tuple[object, ...]]) -> tuple[int, int]:
        """Insert rows one at a time in one transaction, skipping (and logging) refused rows.

        Returns (rows inserted, rows refused).
        """
        inserted = 0
        rejected = 0
        async with self._backend.transaction() as tx:
            for row in rows:
                try:
                    inserted += await tx.execute(_INSERT_SQL, row)
                except self._backend.row_errors as exc:
                    rejected += 1
                    log.error(
                        "The database refused a prediction (%s); it is not stored: "
                        "user_id=%s message_id=%s source=%s label=%s",
                        exc,
                        row[3],
                        row[2],
                        row[4],
                        row[5],
                    )
        return inserted, rejected
