"""The inference service's two-stage pipeline (bot/inference.py): while the model runs one
batch, the next full batch is prepared on a thread of its own.

The fake predictor's stages block on gates (``threading.Event``) so that a test decides when
each stage "finishes" and observes what ran meanwhile. No assertion depends on how long
anything takes: timeouts only turn a hang into a failure.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from bot.inference import (
    InferenceError,
    InferenceService,
    PreparingPredictor,
    ServiceClosed,
    splits_its_work,
)
from model import Prediction, SentimentClassifier

HANG = 5.0


def expected(text: str) -> Prediction:
    p = len(text) / 100
    return Prediction(label="positive" if p >= 0.5 else "negative", p_positive=p, in_band=False)


class Gate:
    """Opened by the test; counts how often a stage reached it."""

    def __init__(self, open_: bool = True) -> None:
        self.event = threading.Event()
        if open_:
            self.event.set()

    def wait(self) -> None:
        if not self.event.wait(10):
            raise RuntimeError("the test never opened the gate")


class StagedPredictor:
    """Records each stage's calls, in order, and the thread that ran them."""

    def __init__(
        self,
        *,
        model_gate: Gate | None = None,
        fail_prepare: Callable[[list[str]], Exception | None] | None = None,
        fail_model: Callable[[list[str]], Exception | None] | None = None,
    ) -> None:
        self.model_gate = model_gate or Gate()
        self.fail_prepare = fail_prepare
        self.fail_model = fail_model
        self.events: list[tuple[str, list[str]]] = []  # ("prepare" | "model" | "batch", texts)
        self.threads: dict[str, set[str]] = {"prepare": set(), "model": set()}
        self._lock = threading.Lock()

    def _record(self, stage: str, texts: list[str]) -> None:
        with self._lock:
            self.events.append((stage, texts))
            self.threads.setdefault(stage, set()).add(threading.current_thread().name)

    def prepare(self, texts: Sequence[str]) -> list[str]:
        self._record("prepare", list(texts))
        if self.fail_prepare is not None and (error := self.fail_prepare(list(texts))):
            raise error
        return [t.upper() for t in texts]  # what the model takes: not the texts themselves

    def predict_prepared(self, prepared: list[str]) -> list[Prediction]:
        texts = [t.lower() for t in prepared]
        self._record("model", texts)
        self.model_gate.wait()
        if self.fail_model is not None and (error := self.fail_model(texts)):
            raise error
        return [expected(t) for t in texts]

    def predict_batch(self, texts: Sequence[str]) -> list[Prediction]:
        self._record("batch", list(texts))
        return [expected(t) for t in texts]

    def stage(self, name: str) -> list[list[str]]:
        return [texts for stage, texts in self.events if stage == name]


async def wait_until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(HANG):
        while not condition():
            await asyncio.sleep(0.001)


@pytest.fixture
async def services() -> AsyncIterator[list[tuple[InferenceService, StagedPredictor]]]:
    made: list[tuple[InferenceService, StagedPredictor]] = []
    yield made
    for service, predictor in made:
        predictor.model_gate.event.set()
        await service.close(timeout=HANG)


def make(
    made: list[tuple[InferenceService, StagedPredictor]],
    predictor: StagedPredictor,
    **kwargs: Any,
) -> InferenceService:
    service = InferenceService(predictor, max_wait_ms=0, **kwargs)
    made.append((service, predictor))
    return service


def texts(n: int) -> list[str]:
    return ["x" * k for k in range(1, n + 1)]  # distinct lengths: distinct answers


class Wrapper:
    """Forwards everything to a staged predictor but has a predict_batch of its own."""

    def __init__(self, base: StagedPredictor) -> None:
        self._base = base
        self.own_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def predict_batch(self, texts: Sequence[str]) -> list[Prediction]:
        self.own_calls += 1
        return self._base.predict_batch(texts)


def test_the_classifier_and_the_fake_split_their_work() -> None:
    assert isinstance(StagedPredictor(), PreparingPredictor)
    assert issubclass(SentimentClassifier, PreparingPredictor)
    assert splits_its_work(StagedPredictor())
    assert not splits_its_work(Wrapper(StagedPredictor()))


async def test_a_wrapper_with_its_own_predict_batch_is_run_through_it(
    services: list[tuple[InferenceService, StagedPredictor]],
) -> None:
    base = StagedPredictor()
    wrapper = Wrapper(base)
    service = InferenceService(wrapper, max_batch=2, max_wait_ms=0)
    services.append((service, base))
    assert await service.predict_many(texts(3)) == [expected(t) for t in texts(3)]
    assert wrapper.own_calls == 2 and base.stage("prepare") == []


async def test_the_next_full_batch_is_prepared_while_the_model_runs(
    services: list[tuple[InferenceService, StagedPredictor]],
) -> None:
    gate = Gate(open_=False)
    predictor = StagedPredictor(model_gate=gate)
    service = make(services, predictor, max_batch=2)
    first = asyncio.ensure_future(service.predict("a"))
    await wait_until(lambda: len(predictor.stage("model")) == 1)  # the model holds ["a"]
    rest = asyncio.ensure_future(service.predict_many(texts(6)))
    # Six texts wait, the model is busy: the next batch of two is prepared meanwhile, once.
    await wait_until(lambda: len(predictor.stage("prepare")) == 2)
    await asyncio.sleep(0.05)  # nothing else may start while the model holds its batch
    assert predictor.stage("prepare") == [["a"], ["x", "xx"]]
    assert predictor.stage("model") == [["a"]]
    assert service.stats.in_flight == 3 and service.stats.queue_depth == 4
    gate.event.set()

    assert await first == expected("a")
    assert await rest == [expected(t) for t in texts(6)]  # each caller its own answer, in order
    assert predictor.stage("model") == [["a"], *[texts(6)[i : i + 2] for i in (0, 2, 4)]]
    assert predictor.stage("prepare") == predictor.stage("model")  # each batch once, in order
    assert predictor.stage("batch") == []
    assert predictor.threads["prepare"] == {"prepare_0"}
    assert predictor.threads["model"] == {"inference_0"}
    stats = service.stats
    assert stats.batches == 4 and stats.predicted == 7 and stats.in_flight == 0
    assert len(stats.batch_seconds) == 4


async def test_under_light_load_the_next_batch_grows_while_the_model_works(
    services: list[tuple[InferenceService, StagedPredictor]],
) -> None:
    gate = Gate(open_=False)
    predictor = StagedPredictor(model_gate=gate)
    service = make(services, predictor, max_batch=8)
    first = asyncio.ensure_future(service.predict("a"))
    await wait_until(lambda: len(predictor.stage("model")) == 1)
    more = [asyncio.ensure_future(service.predict(t)) for t in texts(3)]
    await wait_until(lambda: service.stats.queue_depth == 3)
    await asyncio.sleep(0.05)
    assert predictor.stage("prepare") == [["a"]]  # fewer than a full batch: not taken yet
    gate.event.set()
    assert await first == expected("a")
    assert await asyncio.gather(*more) == [expected(t) for t in texts(3)]
    assert predictor.stage("model") == [["a"], texts(3)]  # one batch of three, not three


async def test_a_failed_preparation_answers_only_its_own_batch(
    services: list[tuple[InferenceService, StagedPredictor]],
) -> None:
    gate = Gate(open_=False)
    boom = ValueError("tokenizer exploded")
    predictor = StagedPredictor(
        model_gate=gate, fail_prepare=lambda batch: boom if "xxx" in batch else None
    )
    service = make(services, predictor, max_batch=2)
    first = asyncio.ensure_future(service.predict("a"))
    await wait_until(lambda: len(predictor.stage("model")) == 1)
    calls = [asyncio.ensure_future(service.predict(t)) for t in texts(6)]
    await wait_until(lambda: len(predictor.stage("prepare")) == 2)
    gate.event.set()
    results = await asyncio.gather(first, *calls, return_exceptions=True)

    assert results[0] == expected("a")
    assert results[1:3] == [expected("x"), expected("xx")]
    for failed in results[3:5]:  # the batch ["xxx", "xxxx"]: failed in the first stage
        assert isinstance(failed, InferenceError) and failed.__cause__ is boom
    assert failed is not results[3]  # each caller its own exception
    assert results[5:] == [expected("x" * 5), expected("x" * 6)]  # the service carried on
    assert ["xxx", "xxxx"] not in predictor.stage("model")
    assert service.stats.errors == 1 and service.stats.predicted == 5


async def test_a_failed_model_call_answers_only_its_batch_while_the_next_is_prepared(
    services: list[tuple[InferenceService, StagedPredictor]],
) -> None:
    gate = Gate(open_=False)
    boom = RuntimeError("out of memory")
    predictor = StagedPredictor(model_gate=gate, fail_model=lambda b: boom if "a" in b else None)
    service = make(services, predictor, max_batch=2)
    first = asyncio.ensure_future(service.predict("a"))
    await wait_until(lambda: len(predictor.stage("model")) == 1)
    rest = [asyncio.ensure_future(service.predict(t)) for t in texts(4)]
    await wait_until(lambda: len(predictor.stage("prepare")) == 2)  # prepared ahead
    gate.event.set()

    with pytest.raises(InferenceError) as info:
        await first
    assert info.value.__cause__ is boom
    assert await asyncio.gather(*rest) == [expected(t) for t in texts(4)]


async def test_close_drains_the_batch_in_the_model_the_one_prepared_ahead_and_the_queue(
    services: list[tuple[InferenceService, StagedPredictor]],
) -> None:
    gate = Gate(open_=False)
    predictor = StagedPredictor(model_gate=gate)
    service = make(services, predictor, max_batch=2)
    calls = [asyncio.ensure_future(service.predict(t)) for t in texts(7)]
    await wait_until(lambda: len(predictor.stage("prepare")) == 2)
    closing = asyncio.ensure_future(service.close(timeout=HANG))
    await asyncio.sleep(0)
    with pytest.raises(ServiceClosed):
        await service.predict("too late")
    gate.event.set()
    await closing

    assert await asyncio.gather(*calls) == [expected(t) for t in texts(7)]
    assert [t for batch in predictor.stage("model") for t in batch] == texts(7)
    assert service.stats.queue_depth == 0 and service.stats.in_flight == 0


async def test_close_past_its_timeout_answers_the_batch_prepared_ahead_too(
    services: list[tuple[InferenceService, StagedPredictor]],
) -> None:
    gate = Gate(open_=False)
    predictor = StagedPredictor(model_gate=gate)
    service = make(services, predictor, max_batch=2)
    calls = [asyncio.ensure_future(service.predict(t)) for t in texts(6)]
    await wait_until(lambda: len(predictor.stage("prepare")) == 2)
    await service.close(timeout=0.05)  # the model never finishes in time
    results = await asyncio.gather(*calls, return_exceptions=True)
    gate.event.set()

    assert all(isinstance(r, ServiceClosed) for r in results)  # none left hanging
    assert service.stats.in_flight == 0


async def test_without_prepare_ahead_each_batch_is_one_call(
    services: list[tuple[InferenceService, StagedPredictor]],
) -> None:
    predictor = StagedPredictor()
    service = make(services, predictor, max_batch=3, prepare_ahead=False)
    assert await service.predict_many(texts(7)) == [expected(t) for t in texts(7)]
    assert predictor.stage("prepare") == predictor.stage("model") == []
    assert [t for batch in predictor.stage("batch") for t in batch] == texts(7)
