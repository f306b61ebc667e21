"""Inference service: an async queue in front of a thread pool.

Callers on the event loop ``await service.predict(text)``; a single worker task gathers
concurrent requests into micro-batches (up to ``max_batch`` texts, or ``max_wait_ms`` after
the oldest waiting text arrived, whichever comes first) and runs ``predictor.predict_batch``
in an executor, so the event loop never runs the model.

A predictor that splits its work (:class:`PreparingPredictor`: ``prepare`` is the language
gate, normaliser and tokenizer, ``predict_prepared`` the encoder) gets a two-stage pipeline:
each batch is prepared on a thread of its own, and while the model runs batch N, batch N+1 is
prepared, when a full batch is already waiting (a backlog: under lighter load the next batch
keeps growing while the model works, as without the pipeline). Answers, errors and shutdown
are per batch either way: a failure in either stage answers only that batch's callers.

Two lanes share one bound. Sheddable requests (automatic reactions) are refused at once with
:class:`Overloaded` when ``max_queue`` texts are already waiting; non-sheddable ones (slash
commands, context menus) are always queued and are served first. A model exception answers
every caller of that batch with :class:`InferenceError`; the worker carries on with the next
batch. :meth:`InferenceService.close` stops taking work and finishes what was queued or in
flight before it returns. An optional :class:`InferenceObserver` is told of each model call and
each answer as they happen (the ``/metrics`` histograms, bot/metrics.py).

This module knows nothing of Discord.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any, Protocol, Self, TypeGuard, TypeVar, runtime_checkable

from bot.monitor import percentile
from model import Prediction

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = [
    "InferenceError",
    "InferenceObserver",
    "InferenceService",
    "InferenceStats",
    "Overloaded",
    "Predictor",
    "PreparingPredictor",
    "ServiceClosed",
    "splits_its_work",
]

DEFAULT_MAX_BATCH = 32
DEFAULT_MAX_WAIT_MS = 5.0
DEFAULT_MAX_QUEUE = 1000
DEFAULT_CLOSE_TIMEOUT = 30.0
LATENCY_SAMPLES = 512  # how many recent batch / request latencies the stats keep


class Predictor(Protocol):
    """What the service needs from a model: ``SentimentClassifier`` satisfies it.

    Called from an executor thread, one call at a time per service. Must return one
    prediction per text, in order.
    """

    def predict_batch(self, texts: Sequence[str]) -> Sequence[Prediction]: ...


@runtime_checkable
class PreparingPredictor(Predictor, Protocol):
    """A :class:`Predictor` whose work splits in two stages the service can overlap:
    ``predict_prepared(prepare(texts))`` must equal ``predict_batch(texts)``. ``prepare``
    runs on the service's preparing thread, ``predict_prepared`` on the model's thread; each
    is called one at a time, and a batch is prepared before the model gets it."""

    def prepare(self, texts: Sequence[str]) -> Any: ...

    def predict_prepared(self, prepared: Any) -> Sequence[Prediction]: ...


def splits_its_work(predictor: Predictor) -> TypeGuard[PreparingPredictor]:
    """Whether ``predictor``'s class itself defines both stages. A wrapper that forwards
    other attributes (``__getattr__``) but has its own ``predict_batch`` (a slower one in a
    test, say) is run through that ``predict_batch``, never around it."""
    return all(
        callable(getattr(type(predictor), name, None)) for name in ("prepare", "predict_prepared")
    )


class InferenceObserver(Protocol):
    """Told of the service's work as it happens, on the event loop; must not block."""

    def batch(self, size: int, seconds: float | None) -> None:
        """A model call on ``size`` texts ended; ``seconds`` it took, None when it failed."""

    def answered(self, seconds: float) -> None:
        """A caller got its prediction ``seconds`` after its text was queued."""


class Overloaded(Exception):  # noqa: N818 (the API names a state, as ServiceClosed does)
    """A sheddable request was refused because the queue is full. Nothing was queued."""

    def __init__(self, waiting: int, limit: int, texts: int = 1) -> None:
        super().__init__(
            f"inference queue is full ({waiting} texts waiting, limit {limit}); "
            f"{texts} sheddable text(s) refused"
        )
        self.waiting = waiting
        self.limit = limit
        self.texts = texts


class InferenceError(Exception):
    """The model failed on the batch holding this request; ``__cause__`` is the original."""


class ServiceClosed(Exception):  # noqa: N818
    """The service is closed (or shut down before this request could be answered)."""


@dataclass
class InferenceStats:
    """Live counters for ``/stats``, logs and load tests. Counts are in texts unless named.

    ``queue_depth`` is the number of texts waiting (not yet handed to the model);
    ``in_flight`` the number handed on: in the batch the model is running now, and in the
    next one while it is prepared ahead. The two deques hold the
    most recent model-call durations and request latencies (enqueue to answer), in seconds.
    """

    requests: int = 0  # texts accepted into the queue
    predicted: int = 0  # texts answered with a prediction
    batches: int = 0  # model calls, successful or not
    batched: int = 0  # texts handed to the model
    errors: int = 0  # model calls that failed (every caller in them got InferenceError)
    shed: int = 0  # sheddable texts refused with Overloaded
    cancelled: int = 0  # texts whose caller stopped waiting before the answer
    max_batch_seen: int = 0
    jobs: int = 0  # other model calls run with InferenceService.run (explanations)
    queue_depth: int = 0
    in_flight: int = 0
    batch_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    request_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))

    @property
    def mean_batch_size(self) -> float:
        """Texts per model call (0.0 before the first call)."""
        return (self.batched / self.batches) if self.batches else 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot, latencies as p50/p95 milliseconds over the recent window."""

        def ms(samples: Sequence[float], q: float) -> float | None:
            value = percentile(samples, q)
            return None if value is None else round(value * 1000.0, 3)

        return {
            "requests": self.requests,
            "predicted": self.predicted,
            "batches": self.batches,
            "batched": self.batched,
            "errors": self.errors,
            "shed": self.shed,
            "cancelled": self.cancelled,
            "max_batch_seen": self.max_batch_seen,
            "jobs": self.jobs,
            "mean_batch_size": round(self.mean_batch_size, 3),
            "queue_depth": self.queue_depth,
            "in_flight": self.in_flight,
            "batch_ms_p50": ms(self.batch_seconds, 50),
            "batch_ms_p95": ms(self.batch_seconds, 95),
            "request_ms_p50": ms(self.request_seconds, 50),
            "request_ms_p95": ms(self.request_seconds, 95),
        }


@dataclass(eq=False, slots=True)
class _Staged:
    """A batch on its way to the model: ``prepared`` resolves to what the model takes and
    the seconds preparing it took."""

    batch: list[_Request]
    prepared: asyncio.Future[tuple[Any, float]]


@dataclass(eq=False, slots=True)
class _Request:
    text: str
    future: asyncio.Future[Prediction]
    enqueued: float  # loop.time()
    queued: bool = True  # still counted in the queue depth


class InferenceService:
    """Micro-batching front of a :class:`Predictor`. Use from one event loop.

    ``executor`` defaults to a one-thread pool named ``inference`` that the service owns and
    shuts down in :meth:`close` (torch parallelises inside one call; one model call runs at a
    time). An executor passed in is left running for its owner. A
    :class:`PreparingPredictor` also gets a one-thread pool named ``prepare`` (owned by the
    service) for its first stage, unless ``prepare_ahead`` is False: then each batch is one
    ``predict_batch`` call on the model's thread.

    The worker starts with :meth:`start` (or ``async with``), or on the first request.
    """

    def __init__(
        self,
        predictor: Predictor,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
        max_queue: int = DEFAULT_MAX_QUEUE,
        executor: concurrent.futures.Executor | None = None,
        observer: InferenceObserver | None = None,
        prepare_ahead: bool = True,
    ) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be a whole number of texts >= 1, got {max_batch!r}")
        if not isinstance(max_wait_ms, int | float) or not 0.0 <= max_wait_ms < math.inf:
            raise ValueError(f"max_wait_ms must be a finite number >= 0, got {max_wait_ms!r}")
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise ValueError(f"max_queue must be a whole number of texts >= 1, got {max_queue!r}")
        self._predictor = predictor
        self.max_batch = max_batch
        self.max_wait = float(max_wait_ms) / 1000.0
        self.max_queue = max_queue
        self._owns_executor = executor is None
        self._executor: concurrent.futures.Executor = (
            executor
            if executor is not None
            else concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="inference"
            )
        )
        # The first stage's thread: the model's thread is never kept waiting for tokenising.
        self._preparer: concurrent.futures.ThreadPoolExecutor | None = None
        self._stages: PreparingPredictor | None = None
        if prepare_ahead and splits_its_work(predictor):
            self._stages = predictor
            self._preparer = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="prepare"
            )
        self.stats = InferenceStats()
        self._observer = observer
        self._priority: deque[_Request] = deque()  # non-sheddable: commands, context menus
        self._sheddable: deque[_Request] = deque()  # automatic reactions
        self._depth = 0  # live texts waiting in both lanes
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._in_flight: list[_Request] = []
        self._ahead: _Staged | None = None  # the next batch, being prepared
        self._model_busy = False  # the model's thread is running a batch
        self._closing = False
        self._executor_shut = False
        self._jobs: set[asyncio.Future[Any]] = set()  # run() calls not finished yet

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called: new requests raise :class:`ServiceClosed`."""
        return self._closing

    async def start(self) -> None:
        """Start the worker task on the running loop. Idempotent."""
        if self._closing:
            raise ServiceClosed("the inference service is closed; create a new one to restart")
        self._ensure_worker()

    async def close(self, *, timeout: float | None = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Stop taking work, answer everything queued or in flight, release the executor.

        New requests raise :class:`ServiceClosed` from the moment this is called. Waits up to
        ``timeout`` seconds (``None``: no limit) for the backlog; past it, the callers still
        waiting get :class:`ServiceClosed` (a model call already running in its thread cannot
        be interrupted and is abandoned). Safe to call more than once.
        """
        self._closing = True
        if self._arrived is not None:
            self._arrived.set()  # wake the worker: it flushes without waiting for more
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        worker = self._worker
        if worker is not None and not worker.done():
            try:
                await asyncio.wait_for(asyncio.shield(worker), timeout)
            except TimeoutError:
                log.warning(
                    "inference service: %d texts still unanswered after %ss; giving up on them",
                    self._depth + len(self._in_flight) + len(self._ahead_requests()),
                    timeout,
                )
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
        if self._jobs:  # run() calls under way finish before the executor goes
            left = None if deadline is None else max(0.0, deadline - loop.time())
            await asyncio.wait(set(self._jobs), timeout=left)
        # Nothing can be left unless the worker never ran or was cancelled; answer them anyway.
        self._fail_all(ServiceClosed("the inference service shut down before answering"))
        if self._owns_executor and not self._executor_shut:
            self._executor_shut = True
            # The worker is done, so no call is pending (unless abandoned after the timeout):
            # never block the loop on a thread.
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._preparer is not None:
            self._preparer.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- requests --------------------------------------------------------------------------

    async def predict(self, text: str, *, sheddable: bool = False) -> Prediction:
        """The prediction for ``text``.

        ``sheddable=True`` (automatic reactions) raises :class:`Overloaded` at once when
        ``max_queue`` texts are waiting; otherwise the request is always queued, ahead of the
        sheddable backlog. Raises :class:`InferenceError` when the model fails on the batch
        and :class:`ServiceClosed` after :meth:`close`.
        """
        (future,) = self._submit((text,), sheddable=sheddable)
        return await future

    async def predict_many(
        self, texts: Sequence[str], *, sheddable: bool = False
    ) -> list[Prediction]:
        """Predictions for ``texts``, in order (they may span several batches).

        With ``sheddable=True`` the texts are accepted all together or refused all together
        (:class:`Overloaded`) when they do not fit under ``max_queue``.
        """
        futures = self._submit(texts, sheddable=sheddable)
        if not futures:
            return []
        # return_exceptions: a failure in one batch must not leave the others' errors
        # unretrieved; cancelling this call still cancels every pending future.
        results = await asyncio.gather(*futures, return_exceptions=True)
        out: list[Prediction] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            out.append(result)
        return out

    async def run(self, job: Callable[[], T]) -> T:
        """Run ``job`` (model work that is one call of its own, such as an explanation) on
        the model's thread, between batches: never on the event loop, never beside another
        model call of this service.

        Raises :class:`ServiceClosed` after :meth:`close` and :class:`InferenceError` when
        the job fails (``__cause__`` is the original). Not sheddable: commands ask for it.
        """
        if self._closing:
            raise ServiceClosed("the inference service is shutting down; no new work")
        future = asyncio.get_running_loop().run_in_executor(self._executor, job)
        self._jobs.add(future)
        future.add_done_callback(self._jobs.discard)
        self.stats.jobs += 1
        try:
            return await future
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.errors += 1
            log.error("inference: a model job failed", exc_info=exc)
            raise InferenceError(f"the model failed: {type(exc).__name__}: {exc}") from exc

    def _submit(self, texts: Sequence[str], *, sheddable: bool) -> list[asyncio.Future[Prediction]]:
        if isinstance(texts, str):
            raise TypeError("predict_many takes a sequence of texts, not one string")
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must be str, got {type(text).__name__}")
        if self._closing:
            raise ServiceClosed("the inference service is shutting down; no new predictions")
        worker = self._ensure_worker()
        if worker.done():
            raise ServiceClosed("the inference worker has stopped; restart the service")
        count = len(texts)
        if sheddable and self._depth + count > self.max_queue:
            self.stats.shed += count
            raise Overloaded(self._depth, self.max_queue, count)
        loop = asyncio.get_running_loop()
        now = loop.time()
        lane = self._sheddable if sheddable else self._priority
        futures: list[asyncio.Future[Prediction]] = []
        for text in texts:
            future: asyncio.Future[Prediction] = loop.create_future()
            request = _Request(text, future, now)
            future.add_done_callback(partial(self._on_done, request))
            lane.append(request)
            futures.append(future)
        self._depth += count
        self.stats.requests += count
        self.stats.queue_depth = self._depth
        if count and self._arrived is not None:
            self._arrived.set()
        if self._model_busy:
            self._take_ahead()
        return futures

    def _on_done(self, request: _Request, future: asyncio.Future[Prediction]) -> None:
        # A caller that stops waiting frees its place in the queue at once.
        if future.cancelled() and request.queued:
            request.queued = False
            self._depth -= 1
            self.stats.queue_depth = self._depth
            self.stats.cancelled += 1

    # -- worker ----------------------------------------------------------------------------

    def _ensure_worker(self) -> asyncio.Task[None]:
        if self._worker is None:
            self._arrived = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(
                self._run(), name="inference-worker"
            )
        return self._worker

    def _pop(self) -> _Request | None:
        """The next live waiting request, commands first; drops callers that went away."""
        for lane in (self._priority, self._sheddable):
            while lane:
                request = lane.popleft()
                if not request.queued:
                    continue  # cancelled and already uncounted
                request.queued = False
                self._depth -= 1
                self.stats.queue_depth = self._depth
                if request.future.done():  # cancelled; its callback has not run yet
                    self.stats.cancelled += 1
                    continue
                return request
        return None

    async def _next_first(self) -> _Request | None:
        """Wait (without spinning) for a request; ``None`` once closing and drained."""
        assert self._arrived is not None
        while True:
            request = self._pop()
            if request is not None:
                return request
            if self._closing:
                return None
            self._arrived.clear()
            await self._arrived.wait()

    async def _collect(self, first: _Request) -> list[_Request]:
        """Fill a batch: up to ``max_batch`` texts or ``max_wait`` after ``first`` arrived."""
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        batch = [first]
        while True:
            while len(batch) < self.max_batch:
                request = self._pop()
                if request is None:
                    break
                batch.append(request)
            if len(batch) >= self.max_batch or self._closing:
                return batch
            # Commands jump the queue, so the oldest text may not be the first one taken.
            deadline = min(r.enqueued for r in batch) + self.max_wait
            remaining = deadline - loop.time()
            if remaining <= 0:
                return batch
            self._arrived.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            except TimeoutError:
                pass  # the loop takes what arrived meanwhile, then sees the deadline

    async def _run(self) -> None:
        try:
            while True:
                staged, self._ahead = self._ahead, None
                if staged is None:
                    first = await self._next_first()
                    if first is None:
                        return
                    staged = self._stage(await self._collect(first))
                try:
                    await self._run_batch(staged)
                except Exception as exc:  # a bug here must not kill the worker
                    log.exception("inference worker: unexpected error; failing the batch")
                    self._fail(staged.batch, InferenceError(f"inference failed: {exc}"), exc)
        finally:
            # Cancelled (close timed out, loop shutting down): nobody may be left hanging.
            self._fail_all(ServiceClosed("the inference service shut down before answering"))

    def _stage(self, batch: list[_Request]) -> _Staged:
        """Start preparing ``batch`` on the preparing thread (without one: nothing to do)."""
        texts = [request.text for request in batch]
        loop = asyncio.get_running_loop()
        if self._preparer is None or self._stages is None:
            prepared: asyncio.Future[tuple[Any, float]] = loop.create_future()
            prepared.set_result((texts, 0.0))
        else:
            prepared = loop.run_in_executor(self._preparer, _timed, self._stages.prepare, texts)
        return _Staged(batch, prepared)

    def _take_ahead(self) -> None:
        """While the model runs, start preparing the next batch if a full one is waiting."""
        if self._preparer is None or self._ahead is not None or self._depth < self.max_batch:
            return
        batch: list[_Request] = []
        while len(batch) < self.max_batch and (request := self._pop()) is not None:
            batch.append(request)
        if batch:
            self._ahead = self._stage(batch)
            self.stats.in_flight = len(self._in_flight) + len(batch)

    def _ahead_requests(self) -> list[_Request]:
        return [] if self._ahead is None else list(self._ahead.batch)

    async def _run_batch(self, staged: _Staged) -> None:
        batch = staged.batch
        stats = self.stats
        stats.batches += 1
        stats.batched += len(batch)
        stats.max_batch_seen = max(stats.max_batch_seen, len(batch))
        self._in_flight = batch
        stats.in_flight = len(batch) + len(self._ahead_requests())
        loop = asyncio.get_running_loop()
        try:
            try:
                prepared, prepare_seconds = await staged.prepared
                call: Callable[[Any], Sequence[Prediction]] = (
                    self._predictor.predict_batch
                    if self._stages is None
                    else self._stages.predict_prepared
                )
                running = loop.run_in_executor(self._executor, _timed, call, prepared)
                self._model_busy = True
                self._take_ahead()  # prepared while the model runs (or once a batch is waiting)
                try:
                    answers, model_seconds = await running
                finally:
                    self._model_busy = False
                predictions = list(answers)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                stats.errors += 1
                if self._observer is not None:
                    self._observer.batch(len(batch), None)
                log.error(
                    "inference: the model failed on a batch of %d texts", len(batch), exc_info=exc
                )
                self._fail(
                    batch,
                    InferenceError(f"the model failed: {type(exc).__name__}: {exc}"),
                    exc,
                )
                return
            seconds = prepare_seconds + model_seconds
            stats.batch_seconds.append(seconds)
            if self._observer is not None:
                self._observer.batch(len(batch), seconds)
            if len(predictions) != len(batch):
                stats.errors += 1
                log.error(
                    "inference: the model returned %d predictions for %d texts",
                    len(predictions),
                    len(batch),
                )
                self._fail(
                    batch,
                    InferenceError(
                        f"the model returned {len(predictions)} predictions for {len(batch)} texts"
                    ),
                    None,
                )
                return
            now = loop.time()
            for request, prediction in zip(batch, predictions, strict=True):
                if request.future.done():  # the caller cancelled while it ran
                    stats.cancelled += 1
                    continue
                request.future.set_result(prediction)
                stats.predicted += 1
                stats.request_seconds.append(now - request.enqueued)
                if self._observer is not None:
                    self._observer.answered(now - request.enqueued)
        except asyncio.CancelledError:
            self._fail(batch, ServiceClosed("the inference service shut down before answering"))
            raise
        finally:
            self._in_flight = []
            stats.in_flight = len(self._ahead_requests())

    # -- failing callers -------------------------------------------------------------------

    def _fail(
        self, batch: Sequence[_Request], error: Exception, cause: BaseException | None = None
    ) -> None:
        """Answer each live caller with its own copy of ``error`` (tracebacks stay separate)."""
        for request in batch:
            if request.future.done():
                self.stats.cancelled += int(request.future.cancelled())
                continue
            own = type(error)(*error.args)
            own.__cause__ = cause
            request.future.set_exception(own)

    def _fail_all(self, error: Exception) -> None:
        leftover = list(self._in_flight) + self._ahead_requests()
        if self._ahead is not None:
            self._ahead.prepared.cancel()  # its outcome (even an error) is nobody's now
        self._in_flight = []
        self._ahead = None
        self.stats.in_flight = 0
        while (request := self._pop()) is not None:
            leftover.append(request)
        self._fail(leftover, error, None)


def _timed(call: Callable[[Any], T], argument: Any) -> tuple[T, float]:
    """``call(argument)`` and the seconds it took (run in a worker thread)."""
    started = time.perf_counter()
    return call(argument), time.perf_counter() - started
