"""The inference service: micro-batching, shedding, errors, cancellation, shutdown.

Fake predictors record every batch they receive and can block on a ``threading.Event`` (the
gate) so a test decides when the model "finishes". No assertion depends on how long anything
takes: timeouts here only turn a hang into a failure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import numpy as np
import pytest

from bot.inference import (
    InferenceError,
    InferenceService,
    Overloaded,
    ServiceClosed,
)
from model import Artifact, Prediction, SentimentClassifier, default_artifact_path

HANG = 5.0  # seconds before a stuck await fails the test (never reached when things work)


def expected(text: str) -> Prediction:
    """What the fake model answers: computable from the text alone."""
    p = len(text) / 100
    return Prediction(label="positive" if p >= 0.5 else "negative", p_positive=p, in_band=False)


class FakePredictor:
    """Records each batch and the thread that ran it; optionally waits for ``gate``."""

    def __init__(
        self,
        gate: threading.Event | None = None,
        *,
        fail: Callable[[list[str]], Exception | None] | None = None,
    ) -> None:
        self.gate = gate
        self.fail = fail
        self.batches: list[list[str]] = []
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def predict_batch(self, texts: Sequence[str]) -> list[Prediction]:
        with self._lock:
            self.batches.append(list(texts))
            self.threads.append(threading.current_thread())
        if self.gate is not None and not self.gate.wait(10):
            raise RuntimeError("the test never opened the gate")
        if self.fail is not None and (error := self.fail(list(texts))) is not None:
            raise error
        return [expected(t) for t in texts]

    @property
    def seen(self) -> list[str]:
        return [t for batch in self.batches for t in batch]


class ShortPredictor:
    """A broken model: one prediction too few."""

    def predict_batch(self, texts: Sequence[str]) -> list[Prediction]:
        return [expected(t) for t in texts][:-1]


async def wait_until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition`` holds (fails after HANG seconds)."""
    async with asyncio.timeout(HANG):
        while not condition():
            await asyncio.sleep(0.001)


@pytest.fixture
def gate() -> threading.Event:
    return threading.Event()


MakeService = Callable[..., InferenceService]


@pytest.fixture
async def make_service(gate: threading.Event) -> AsyncIterator[MakeService]:
    """Build services; at teardown open the gate (no thread left blocked) and close them."""
    services: list[InferenceService] = []

    def make(predictor: Any, **kwargs: Any) -> InferenceService:
        service = InferenceService(predictor, **kwargs)
        services.append(service)
        return service

    yield make
    gate.set()
    for service in services:
        await service.close(timeout=HANG)


async def test_concurrent_requests_are_gathered_into_batches(make_service: MakeService) -> None:
    fake = FakePredictor()
    service = make_service(fake, max_batch=16, max_wait_ms=5)
    texts = ["x" * n for n in range(1, 51)]  # distinct lengths: distinct answers

    results = await asyncio.gather(*(service.predict(t) for t in texts))

    assert results == [expected(t) for t in texts]  # each caller got its own answer
    assert 1 < len(fake.batches) < 50
    assert all(1 <= len(batch) <= 16 for batch in fake.batches)
    assert sorted(fake.seen) == sorted(texts)  # every text ran exactly once
    stats = service.stats
    assert stats.requests == stats.predicted == stats.batched == 50
    assert stats.batches == len(fake.batches)
    assert stats.max_batch_seen == max(len(b) for b in fake.batches) <= 16
    assert stats.queue_depth == 0 and stats.in_flight == 0
    assert len(stats.batch_seconds) == stats.batches and len(stats.request_seconds) == 50
    snapshot = stats.as_dict()
    assert snapshot["predicted"] == 50 and snapshot["errors"] == 0
    assert snapshot["batch_ms_p95"] is not None and snapshot["batch_ms_p95"] >= 0


async def test_a_lone_request_is_answered_without_a_full_batch(make_service: MakeService) -> None:
    fake = FakePredictor()
    service = make_service(fake, max_batch=1000, max_wait_ms=5)
    async with asyncio.timeout(HANG):
        assert await service.predict("hello") == expected("hello")
    assert fake.batches == [["hello"]]


async def test_a_full_batch_does_not_wait_out_max_wait(make_service: MakeService) -> None:
    fake = FakePredictor()
    service = make_service(fake, max_batch=4, max_wait_ms=60_000)  # a wait no test survives
    texts = ["a", "bb", "ccc", "dddd"]
    async with asyncio.timeout(HANG):
        results = await asyncio.gather(*(service.predict(t) for t in texts))
    assert results == [expected(t) for t in texts]
    assert fake.batches == [texts]


async def test_full_queue_sheds_reactions_but_never_commands(
    make_service: MakeService, gate: threading.Event
) -> None:
    fake = FakePredictor(gate)
    service = make_service(fake, max_batch=1, max_wait_ms=0, max_queue=3)
    first = asyncio.create_task(service.predict("first", sheddable=True))
    await wait_until(lambda: len(fake.batches) == 1)  # the model is busy with it
    backlog = [asyncio.create_task(service.predict(f"s{i}", sheddable=True)) for i in range(3)]
    await wait_until(lambda: service.stats.queue_depth == 3)

    async with asyncio.timeout(HANG):  # refused at once, never queued
        with pytest.raises(Overloaded, match="queue is full"):
            await service.predict("shed me", sheddable=True)
    assert service.stats.shed == 1
    command = asyncio.create_task(service.predict("command"))  # a slash command: never shed
    await wait_until(lambda: service.stats.queue_depth == 4)
    assert not command.done()

    gate.set()
    async with asyncio.timeout(HANG):
        assert await command == expected("command")
        assert await first == expected("first")
        assert [await t for t in backlog] == [expected(f"s{i}") for i in range(3)]
    assert fake.batches[1] == ["command"]  # served ahead of the sheddable backlog
    assert "shed me" not in fake.seen
    assert service.stats.shed == 1 and service.stats.predicted == 5


async def test_predict_many_keeps_order_and_is_shed_all_or_nothing(
    make_service: MakeService, gate: threading.Event
) -> None:
    fake = FakePredictor(gate)
    service = make_service(fake, max_batch=3, max_wait_ms=0, max_queue=3)
    assert await service.predict_many([]) == []
    assert fake.batches == []

    busy = asyncio.create_task(service.predict("busy"))
    await wait_until(lambda: len(fake.batches) == 1)
    waiting = asyncio.create_task(service.predict_many(["w1", "w2"], sheddable=True))
    await wait_until(lambda: service.stats.queue_depth == 2)
    async with asyncio.timeout(HANG):
        with pytest.raises(Overloaded):
            await service.predict_many(["r1", "r2"], sheddable=True)  # only one place left
    assert service.stats.shed == 2 and service.stats.queue_depth == 2

    gate.set()
    texts = ["y" * n for n in range(1, 11)]  # more than one batch
    async with asyncio.timeout(HANG):
        assert await service.predict_many(texts) == [expected(t) for t in texts]
        assert await waiting == [expected("w1"), expected("w2")]
        assert await busy == expected("busy")
    assert "r1" not in fake.seen and "r2" not in fake.seen


async def test_a_model_exception_answers_the_batch_and_the_service_goes_on(
    make_service: MakeService,
) -> None:
    def boom(texts: list[str]) -> Exception | None:
        return ValueError("tokenizer exploded") if "boom" in texts else None

    fake = FakePredictor(fail=boom)
    service = make_service(fake, max_batch=3, max_wait_ms=60_000)  # exactly one batch of 3
    async with asyncio.timeout(HANG):
        results = await asyncio.gather(
            service.predict("a"), service.predict("boom"), service.predict("ccc"),
            return_exceptions=True,
        )  # fmt: skip
    assert fake.batches == [["a", "boom", "ccc"]]
    for result in results:
        assert isinstance(result, InferenceError)
        assert "ValueError" in str(result) and "tokenizer exploded" in str(result)
        assert isinstance(result.__cause__, ValueError)
    assert len({id(r) for r in results}) == 3  # each caller has its own exception object
    assert service.stats.errors == 1

    async with asyncio.timeout(HANG):
        later = await service.predict_many(["d", "ee", "fff"])
    assert later == [expected("d"), expected("ee"), expected("fff")]
    assert service.stats.errors == 1 and service.stats.predicted == 3


async def test_a_wrong_number_of_predictions_is_an_inference_error(
    make_service: MakeService,
) -> None:
    service = make_service(ShortPredictor(), max_batch=2, max_wait_ms=60_000)
    async with asyncio.timeout(HANG):
        results = await asyncio.gather(
            service.predict("a"), service.predict("b"), return_exceptions=True
        )
    for result in results:
        assert isinstance(result, InferenceError)
        assert "returned 1 predictions for 2 texts" in str(result)
    assert service.stats.errors == 1


async def test_the_model_runs_off_the_event_loop(
    make_service: MakeService, gate: threading.Event
) -> None:
    fake = FakePredictor(gate)
    service = make_service(fake)
    call = asyncio.create_task(service.predict("hello"))
    await wait_until(lambda: len(fake.batches) == 1)
    # The model is blocked inside its call, yet the loop keeps running other work.
    ticks = 0
    for _ in range(3):
        await asyncio.sleep(0.001)
        ticks += 1
    assert ticks == 3 and not call.done()
    gate.set()
    async with asyncio.timeout(HANG):
        assert await call == expected("hello")
    model_thread = fake.threads[0]
    assert model_thread is not threading.current_thread()
    assert model_thread.name.startswith("inference")


async def test_a_cancelled_waiting_caller_does_not_break_the_others(
    make_service: MakeService, gate: threading.Event
) -> None:
    fake = FakePredictor(gate)
    service = make_service(fake, max_batch=10, max_wait_ms=0)
    blocker = asyncio.create_task(service.predict("blocker"))
    await wait_until(lambda: len(fake.batches) == 1)
    a, b, c = (asyncio.create_task(service.predict(t)) for t in ("aa", "bbb", "cccc"))
    await wait_until(lambda: service.stats.queue_depth == 3)

    b.cancel()
    await wait_until(lambda: service.stats.queue_depth == 2)  # its place is freed at once
    gate.set()
    async with asyncio.timeout(HANG):
        assert await a == expected("aa")
        assert await c == expected("cccc")
        assert await blocker == expected("blocker")
        with pytest.raises(asyncio.CancelledError):
            await b
    assert "bbb" not in fake.seen  # a caller that left never costs model time
    assert service.stats.cancelled == 1


async def test_a_caller_cancelled_in_flight_does_not_break_its_batch(
    make_service: MakeService, gate: threading.Event
) -> None:
    fake = FakePredictor(gate)
    service = make_service(fake, max_batch=3, max_wait_ms=60_000)
    a, b, c = (asyncio.create_task(service.predict(t)) for t in ("aa", "bbb", "cccc"))
    await wait_until(lambda: len(fake.batches) == 1)
    b.cancel()
    gate.set()
    async with asyncio.timeout(HANG):
        assert await a == expected("aa")
        assert await c == expected("cccc")
        with pytest.raises(asyncio.CancelledError):
            await b
    assert fake.batches == [["aa", "bbb", "cccc"]]
    assert service.stats.cancelled == 1 and service.stats.predicted == 2


async def test_close_finishes_queued_and_in_flight_work_then_refuses(
    make_service: MakeService, gate: threading.Event
) -> None:
    fake = FakePredictor(gate)
    service = make_service(fake, max_batch=2, max_wait_ms=60_000)
    in_flight = [asyncio.create_task(service.predict(t)) for t in ("a", "bb")]
    await wait_until(lambda: len(fake.batches) == 1)
    queued = asyncio.create_task(service.predict("ccc"))  # half a batch: would wait 60 s
    await wait_until(lambda: service.stats.queue_depth == 1)

    closing = asyncio.create_task(service.close(timeout=HANG))
    await wait_until(lambda: service.closed)
    with pytest.raises(ServiceClosed):
        await service.predict("late")
    with pytest.raises(ServiceClosed):
        await service.predict_many(["late"], sheddable=True)
    assert not closing.done()  # still waiting for the model

    gate.set()
    async with asyncio.timeout(HANG):
        await closing
    assert [t.result() for t in in_flight] == [expected("a"), expected("bb")]
    assert queued.result() == expected("ccc")  # close flushed the partial batch
    assert "late" not in fake.seen
    # The executor the service created is shut down: its thread ends.
    model_thread = fake.threads[0]
    await asyncio.to_thread(model_thread.join, HANG)
    assert not model_thread.is_alive()
    await service.close()  # a second close is harmless
    with pytest.raises(ServiceClosed):
        await service.start()


async def test_close_past_its_timeout_answers_every_caller(
    make_service: MakeService, gate: threading.Event
) -> None:
    fake = FakePredictor(gate)  # the gate stays shut: the model never finishes
    service = make_service(fake, max_batch=1, max_wait_ms=0)
    stuck = asyncio.create_task(service.predict("stuck"))
    await wait_until(lambda: len(fake.batches) == 1)
    queued = asyncio.create_task(service.predict("queued"))
    await wait_until(lambda: service.stats.queue_depth == 1)

    await service.close(timeout=0.05)
    async with asyncio.timeout(HANG):
        for task in (stuck, queued):
            with pytest.raises(ServiceClosed, match="shut down before answering"):
                await task
    assert service.stats.queue_depth == 0 and service.stats.in_flight == 0


async def test_close_leaves_a_borrowed_executor_running(make_service: MakeService) -> None:
    fake = FakePredictor()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        async with InferenceService(fake, executor=executor) as service:
            assert await service.predict("x") == expected("x")
        assert service.closed
        assert executor.submit(lambda: 42).result(timeout=HANG) == 42


async def test_requests_must_be_text(make_service: MakeService) -> None:
    fake = FakePredictor()
    service = make_service(fake)
    with pytest.raises(TypeError, match="not one string"):
        await service.predict_many("abc")
    with pytest.raises(TypeError, match="must be str"):
        await service.predict(123)  # type: ignore[arg-type]
    assert service.stats.requests == 0 and fake.batches == []


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_batch": 0}, "max_batch"),
        ({"max_wait_ms": -1}, "max_wait_ms"),
        ({"max_wait_ms": float("nan")}, "max_wait_ms"),
        ({"max_queue": 0}, "max_queue"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        InferenceService(FakePredictor(), **kwargs)


# -- the real model --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_classifier(request: pytest.FixtureRequest) -> SentimentClassifier:
    """The bundled default artifact; while it is not trained yet, a small classifier on the
    bundled encoder with fixed random weights (the service must not care which)."""
    if default_artifact_path().is_file():
        return SentimentClassifier.load()
    encoder = request.getfixturevalue("bundled_encoder")
    coef = np.random.default_rng(0).normal(0.0, 1.0, encoder.dim)
    artifact = Artifact(encoder=encoder.spec, coef=coef, intercept=0.0, band=(0.4, 0.6))
    return SentimentClassifier(artifact, encoder)


async def test_the_real_model_gives_the_same_answers_through_the_service(
    real_classifier: SentimentClassifier,
) -> None:
    texts = [
        "I love this so much",
        "This is the worst day ever.",
        "",
        "   ",
        "meh",
        "The film was not very good at all, and the ending dragged on forever.",
        "what a wonderful surprise 🎉",
        "ugh",
        "ok",
        "Absolutely brilliant performance by the whole cast!",
        "I hate waiting in line",
        "It's fine I guess",
        "lol",
        "the service was slow but the food was great",
        "never again",
        "Thanks, that helped a lot!",
        "boring boring boring",
        "a" * 3000,
        "¿Qué tal?",
        "10/10 would recommend",
    ]
    direct = real_classifier.predict_batch(texts)

    async with InferenceService(real_classifier, max_batch=8, max_wait_ms=5) as service:
        served = await asyncio.gather(
            *(service.predict(t, sheddable=i % 2 == 0) for i, t in enumerate(texts))
        )

    assert service.stats.predicted == 20 and service.stats.batches < 20
    for text, want, got in zip(texts, direct, served, strict=True):
        assert got.label == want.label, text
        assert got.in_band == want.in_band, text
        # bf16: batch-mates (padding) move p slightly; see tests/test_hostile_input.py
        assert got.p_positive == pytest.approx(want.p_positive, abs=0.02), text
