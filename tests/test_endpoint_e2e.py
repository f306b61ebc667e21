"""The health and metrics endpoint, end to end: the real SentimentBot against the fake Discord
with SENTIMENT_HTTP_PORT set, scraped over real HTTP as Prometheus and a health check would.

What an operator notices: the counters move with the messages, /metrics parses as the
Prometheus text format, /healthz says 200 while all is well and 503 (naming why) while the
database cannot write, a wedged event loop answers nothing, and a port already taken stops
the bot before it connects, with one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from e2e_support import GENERAL, NEGATIVE, POSITIVE, World, open_world, react_to
from prometheus_client.parser import text_string_to_metric_families

from bot.app import create_bot
from bot.config import Secret, Settings
from bot.endpoint import EndpointError
from model import SentimentClassifier

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def listening() -> Iterator[int]:
    """A port some other program holds."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def url(world: World, path: str) -> str:
    settings = world.bot.settings
    return f"http://{settings.http_host}:{settings.http_port}{path}"


async def get(world: World, path: str) -> tuple[int, str, str]:
    """Status, content type and body of ``GET path``, over a real socket."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(url(world, path), timeout=aiohttp.ClientTimeout(total=10)) as response,
    ):
        return response.status, response.headers["Content-Type"], await response.text()


async def healthz(world: World) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url(world, "/healthz"), timeout=aiohttp.ClientTimeout(total=10)) as response,
    ):
        assert response.headers["Content-Type"].startswith("application/json")
        return response.status, await response.json()


async def scrape(world: World) -> Samples:
    """Every sample of /metrics by name and labels, parsed by prometheus-client's parser."""
    status, content_type, text = await get(world, "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
async def world(tmp_path: Path, classifier: SentimentClassifier) -> Any:
    async with open_world(tmp_path, classifier, http_port=free_port()) as world:
        yield world


async def test_metrics_count_the_messages_and_parse_as_prometheus_text(world: World) -> None:
    before = await scrape(world)
    assert value(before, "sentiment_messages_classified_total", shard="0", source="auto") == 0
    assert value(before, "sentiment_messages_shed_total", shard="0") == 0

    for i in range(3):
        await react_to(world, f"{POSITIVE} ({i})")
    await react_to(world, NEGATIVE)
    reply = await world.slash("sentiment", {"text": POSITIVE})
    assert "Positive" in reply.text
    await world.settle()

    after = await scrape(world)
    assert value(after, "sentiment_messages_classified_total", shard="0", source="auto") == 4
    assert value(after, "sentiment_messages_classified_total", shard="0", source="command") == 1
    assert value(after, "sentiment_messages_shed_total", shard="0") == 0
    calls = value(after, "sentiment_inference_batch_size_count")
    assert 1 <= calls <= 5 and value(after, "sentiment_inference_batch_size_sum") == 5
    assert value(after, "sentiment_inference_batch_seconds_count") == calls
    assert value(after, "sentiment_inference_request_seconds_count") == 5
    assert value(after, "sentiment_inference_request_seconds_bucket", le="+Inf") == 5
    assert value(after, "sentiment_inference_queue_depth") == 0
    assert value(after, "sentiment_inference_errors_total") == 0
    assert value(after, "sentiment_event_loop_lag_seconds_count") > value(
        before, "sentiment_event_loop_lag_seconds_count"
    )
    assert value(after, "sentiment_storage_written_total") == 5
    assert value(after, "sentiment_storage_backlog") == 0
    assert value(after, "sentiment_storage_backlog_limit") == 10_000
    assert value(after, "sentiment_storage_writable") == 1
    assert value(after, "sentiment_storage_write_errors_total") == 0
    assert value(after, "sentiment_gateway_connected", shard="0") == 1
    assert value(after, "sentiment_gateway_latency_seconds", shard="0") >= 0


async def test_healthz_is_200_with_the_gateway_database_and_backlog(world: World) -> None:
    await react_to(world, POSITIVE)
    await world.settle()
    status, body = await healthz(world)
    assert status == 200, body
    assert body["healthy"] is True and body["problems"] == []
    gateway = body["gateway"]
    assert gateway["ready"] is True and gateway["closing"] is False
    assert gateway["shard_count"] == 1
    (shard,) = gateway["shards"]
    assert shard["id"] == 0 and shard["connected"] is True
    assert body["database"] == {
        "writable": True,
        "failing": False,
        "failure": None,
        "unavailable": None,
    }
    assert body["storage"]["backlog"] == 0 and body["storage"]["written"] == 1
    assert body["storage"]["backlog_limit"] == 10_000


async def test_healthz_is_503_while_the_database_cannot_write_and_200_again_after(
    world: World,
) -> None:
    storage = world.bot.storage
    db = storage._backend.db  # type: ignore[attr-defined]
    # Root ignores file modes: SQLite's own switch gives the error a read-only file gives.
    await db.execute("PRAGMA query_only = ON")
    try:
        await world.fake.send_message(GENERAL, 900_000_000_000_001_002, POSITIVE)
        await world.fake.wait_for(
            lambda: storage.writer_stats.failing, description="a failed write"
        )
        status, body = await healthz(world)
        assert status == 503
        assert body["healthy"] is False and body["database"]["writable"] is False
        (problem,) = body["problems"]
        assert problem.startswith("database not writable:") and "readonly" in problem
        assert body["storage"]["backlog"] == 1
        samples = await scrape(world)
        assert value(samples, "sentiment_storage_writable") == 0
        assert value(samples, "sentiment_storage_write_errors_total") >= 1
        assert value(samples, "sentiment_storage_backlog") == 1
    finally:
        await db.execute("PRAGMA query_only = OFF")
    await asyncio.wait_for(storage.flush(), 15)
    await world.fake.wait_for(lambda: not storage.writer_stats.failing)
    status, body = await healthz(world)
    assert status == 200 and body["storage"]["backlog"] == 0, body


async def test_a_wedged_event_loop_answers_nothing_then_answers_again(world: World) -> None:
    target = url(world, "/healthz")
    asking = threading.Event()
    outcome: list[str] = []

    def ask() -> None:  # another thread: the loop it asks is the one that is wedged
        asking.wait()
        try:
            with urllib.request.urlopen(target, timeout=1.0) as response:
                outcome.append(str(response.status))
        except TimeoutError:
            outcome.append("timeout")
        except urllib.error.URLError as exc:
            outcome.append(f"error: {exc.reason}")

    thread = threading.Thread(target=ask)
    thread.start()
    asking.set()
    time.sleep(4.0)  # wedge the bot's (and the test's) event loop: a blocking call on it
    thread.join(10)
    assert outcome == ["timeout"]
    status, _ = await healthz(world)  # the loop runs again: so does the endpoint
    assert status == 200


async def test_the_endpoint_stops_with_the_bot(
    tmp_path: Path, classifier: SentimentClassifier
) -> None:
    port = free_port()
    async with open_world(tmp_path, classifier, http_port=port) as world:
        assert world.bot.endpoint is not None
        status, _ = await healthz(world)
        assert status == 200
        assert open_files(tmp_path)  # the database, while the bot runs
    with pytest.raises(aiohttp.ClientConnectionError):
        await healthz(world)


async def test_no_endpoint_unless_a_port_is_set(
    tmp_path: Path, classifier: SentimentClassifier
) -> None:
    async with open_world(tmp_path, classifier) as world:
        assert world.bot.endpoint is None
        assert world.bot.health().healthy  # the same answer is there for whoever asks


async def test_a_port_in_use_stops_the_assembly_with_one_line(
    tmp_path: Path, classifier: SentimentClassifier
) -> None:
    with listening() as port:
        settings = Settings(token=Secret(""), database=tmp_path / "bot.db", http_port=port)
        with pytest.raises(EndpointError) as caught:
            await create_bot(settings, classifier=classifier)
    message = str(caught.value)
    assert "\n" not in message
    assert f"127.0.0.1:{port}" in message and "the port is in use" in message
    assert "SENTIMENT_HTTP_PORT" in message
    assert open_files(tmp_path) == []  # what create_bot had opened, it closed again


def open_files(folder: Path) -> list[str]:
    """The files under ``folder`` this process holds open (Linux: /proc/self/fd)."""
    held = []
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = str(fd.readlink())
            if target.startswith(str(folder)):
                held.append(target)
    return held
