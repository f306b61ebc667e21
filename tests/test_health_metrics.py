"""Health and metrics, unit by unit: what "healthy" means (bot/health.py), the bot's own
Prometheus registry and what feeds it (bot/metrics.py, the inference service's observer, the
mood service's events, the loop-lag probe), the HTTP endpoint (bot/endpoint.py) and its
settings. End to end, scraped from the running bot: tests/test_endpoint_e2e.py."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.config import Settings
from bot.endpoint import EndpointError, HttpEndpoint
from bot.health import HealthReport, ShardState, assess
from bot.inference import InferenceService, InferenceStats, Overloaded
from bot.metrics import BotMetrics, shard_of
from bot.monitor import LagStats, LoopLagMonitor
from bot.mood import MoodService
from bot.storage import Storage, WriterStats
from model import Prediction
from model.settings import SettingsError

TOKEN = "MTAxMDEwMTAxMDEwMTAxMDEw.GxYzAb.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"
WRITER = WriterStats(
    pending=3,
    written=10,
    duplicates=0,
    refused=0,
    rejected=1,
    batches=4,
    failed_batches=2,
    running=True,
    failing=False,
    over_bound=5,
    limit=100,
)
SHARD_0 = ShardState(0, True, 0.042)


def report(**changes: Any) -> HealthReport:
    state: dict[str, Any] = {
        "ready": True,
        "closing": False,
        "shard_count": 1,
        "shards": [SHARD_0],
        "writer": WRITER,
        "failure": None,
        "queue_depth": 0,
        "loop_lag": LagStats(10, 0.0001, 0.002, 0.003),
    }
    state.update(changes)
    return assess(**state)


def samples(metrics: BotMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# --------------------------------------------------------------------------------------------
# What healthy means


def test_healthy_is_200_with_every_part_reported() -> None:
    health = report()
    assert health.healthy and health.status == 200 and health.problems == ()
    body = health.body
    assert body["gateway"] == {
        "ready": True,
        "closing": False,
        "shard_count": 1,
        "shards": [{"id": 0, "connected": True, "latency_ms": 42.0}],
    }
    assert body["database"]["writable"] is True
    assert body["storage"] == {
        "backlog": 3,
        "backlog_limit": 100,
        "written": 10,
        "failed_writes": 2,
    }
    assert body["event_loop_lag_ms"] == {"p50": 0.1, "p99": 2.0, "max": 3.0}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"closing": True}, "shutting down"),
        ({"ready": False}, "gateway not ready"),
        ({"shards": []}, "no gateway shard started"),
        ({"shards": [SHARD_0, ShardState(1, False, None)]}, "shard 1 disconnected"),
        (
            {"writer": replace(WRITER, failing=True), "failure": "disk I/O error"},
            "database not writable: disk I/O error",
        ),
        (
            {"writer": replace(WRITER, unavailable="the file was deleted")},
            "database unavailable: the file was deleted",
        ),
        ({"writer": replace(WRITER, running=False)}, "database writer stopped"),
        ({"writer": replace(WRITER, pending=100)}, "storage backlog full (100 of 100)"),
    ],
)
def test_each_failing_part_makes_it_503_and_is_named(changes: dict[str, Any], problem: str) -> None:
    health = report(**changes)
    assert not health.healthy and health.status == 503
    assert health.problems == (problem,)
    assert health.body["problems"] == [problem] and health.body["healthy"] is False


def test_latency_and_lag_are_reported_not_judged() -> None:
    health = report(
        shards=[ShardState(0, True, None)], loop_lag=LagStats(3, 0.5, 2.0, 2.0), queue_depth=900
    )
    assert health.healthy
    assert health.body["gateway"]["shards"][0]["latency_ms"] is None
    assert health.body["inference"] == {"queue_depth": 900}


# --------------------------------------------------------------------------------------------
# The registry and what feeds it


def test_shard_of_a_guild_follows_discords_rule() -> None:
    guild = (123_456 << 22) | 99  # the shard depends on the id's timestamp bits only
    assert [shard_of(guild, n) for n in (1, 2, 4, 7)] == [0, 0, 0, 123_456 % 7]
    assert shard_of(None, 4) == 0  # direct messages arrive on shard 0
    assert shard_of((5 << 22) | 7, 4) == 1


def test_counters_are_per_shard_in_a_registry_of_the_bots_own() -> None:
    one, two = BotMetrics(), BotMetrics()  # two bots in one process: no clash
    one.follow(
        inference=InferenceStats,
        writer=lambda: WRITER,
        shards=lambda: [SHARD_0, ShardState(1, False, None)],
        shard_count=lambda: 2,
    )
    one.shards_started([0, 1])
    one.classified((1 << 22) | 5, "auto")  # shard 1 of 2
    one.classified(2 << 22, "auto")  # shard 0
    one.classified(None, "command")  # a direct message: shard 0
    one.shed(3 << 22)  # shard 1
    two.classified(1 << 22, "auto")  # not following a bot: one shard
    got = samples(one)
    classified = "sentiment_messages_classified_total"
    assert got[(classified, (("shard", "1"), ("source", "auto")))] == 1
    assert got[(classified, (("shard", "0"), ("source", "auto")))] == 1
    assert got[(classified, (("shard", "0"), ("source", "command")))] == 1
    assert got[(classified, (("shard", "1"), ("source", "context_menu")))] == 0  # started at 0
    assert got[("sentiment_messages_shed_total", (("shard", "1"),))] == 1
    assert got[("sentiment_messages_shed_total", (("shard", "0"),))] == 0
    assert samples(two)[(classified, (("shard", "0"), ("source", "auto")))] == 1
    # what the bot keeps anyway, read at the scrape
    assert got[("sentiment_storage_backlog", ())] == 3
    assert got[("sentiment_storage_backlog_limit", ())] == 100
    assert got[("sentiment_storage_written_total", ())] == 10
    assert got[("sentiment_storage_write_errors_total", ())] == 2
    assert got[("sentiment_storage_rejected_total", ())] == 1
    assert got[("sentiment_storage_dropped_total", ())] == 5
    assert got[("sentiment_storage_writable", ())] == 1
    assert got[("sentiment_gateway_connected", (("shard", "0"),))] == 1
    assert got[("sentiment_gateway_connected", (("shard", "1"),))] == 0
    assert got[("sentiment_gateway_latency_seconds", (("shard", "0"),))] == 0.042
    assert ("sentiment_gateway_latency_seconds", (("shard", "1"),)) not in got
    # never prometheus-client's global registry
    assert b"sentiment_" not in generate_latest(REGISTRY)


def test_a_registry_follows_one_bot() -> None:
    metrics = BotMetrics()
    follow = {
        "inference": InferenceStats,
        "writer": lambda: WRITER,
        "shards": list,
        "shard_count": lambda: 1,
    }
    metrics.follow(**follow)
    with pytest.raises(RuntimeError, match="already follow"):
        metrics.follow(**follow)


class Gate:
    """A predictor that holds each batch until released, and fails on the text "fail"."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def predict_batch(self, texts: Sequence[str]) -> list[Prediction]:
        self.release.wait(10)
        if "fail" in texts:
            raise RuntimeError("boom")
        return [Prediction("positive", 0.9, False) for _ in texts]


async def test_the_inference_service_reports_each_model_call_and_answer() -> None:
    metrics = BotMetrics()
    gate = Gate()
    gate.release.set()
    async with InferenceService(gate, max_batch=4, max_wait_ms=50, observer=metrics) as service:
        await service.predict_many([f"text {i}" for i in range(6)])  # batches of 4 and 2
        with pytest.raises(Exception, match="boom"):
            await service.predict("fail")
    got = samples(metrics)
    assert got[("sentiment_inference_batch_size_count", ())] == 3  # the failed call counts
    assert got[("sentiment_inference_batch_size_sum", ())] == 7
    assert got[("sentiment_inference_batch_size_bucket", (("le", "2.0"),))] == 2
    assert got[("sentiment_inference_batch_seconds_count", ())] == 2  # not the failed one
    assert got[("sentiment_inference_request_seconds_count", ())] == 6


async def test_the_mood_service_tells_what_it_classified_and_shed_per_shard(
    tmp_path: Path,
) -> None:
    metrics = BotMetrics()
    metrics.follow(
        inference=InferenceStats, writer=lambda: WRITER, shards=list, shard_count=lambda: 2
    )
    storage = await Storage.open(tmp_path / "bot.db")
    storage.start_writer()
    gate = Gate()
    try:
        async with InferenceService(gate, max_batch=1, max_queue=1) as inference:
            mood = MoodService(inference, storage, "v1", (0.4, 0.6), events=metrics)

            def classify(text: str, guild_id: int) -> asyncio.Task[Prediction]:
                return asyncio.create_task(
                    mood.classify(
                        text,
                        source="auto",
                        user_id=1,
                        guild_id=guild_id,
                        channel_id=3,
                        message_id=None,
                        store_text=False,
                    )
                )

            running = classify("first", 1 << 22)  # shard 1: in the model
            async with asyncio.timeout(10):
                while inference.stats.in_flight != 1:
                    await asyncio.sleep(0.01)
            waiting = classify("second", 0)  # shard 0: queued (the queue is now full)
            await asyncio.sleep(0)
            with pytest.raises(Overloaded):
                await classify("third", 1 << 22)  # shard 1: shed
            gate.release.set()
            await asyncio.gather(running, waiting)
    finally:
        await storage.close()
    got = samples(metrics)
    classified = "sentiment_messages_classified_total"
    assert got[(classified, (("shard", "1"), ("source", "auto")))] == 1
    assert got[(classified, (("shard", "0"), ("source", "auto")))] == 1
    assert got[("sentiment_messages_shed_total", (("shard", "1"),))] == 1
    assert ("sentiment_messages_shed_total", (("shard", "0"),)) not in got


async def test_the_loop_lag_probe_feeds_its_histogram() -> None:
    metrics = BotMetrics()
    monitor = LoopLagMonitor(interval=0.01, observe=metrics.loop_lag.observe)
    monitor.start()
    try:
        async with asyncio.timeout(5):
            while monitor.stats().samples < 5:
                await asyncio.sleep(0.01)
    finally:
        await monitor.stop()
    got = samples(metrics)
    assert got[("sentiment_event_loop_lag_seconds_count", ())] == monitor.stats().samples


# --------------------------------------------------------------------------------------------
# The endpoint and its settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_the_endpoint_answers_health_and_metrics_over_http() -> None:
    metrics = BotMetrics()
    metrics.classified(None, "command")
    health = {"now": report()}
    endpoint = HttpEndpoint(
        "127.0.0.1", free_port(), health=lambda: health["now"], registry=metrics.registry
    )
    await endpoint.start()
    base = f"http://127.0.0.1:{endpoint.port}"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/healthz") as response:
                assert response.status == 200 and (await response.json())["healthy"] is True
            health["now"] = report(ready=False)
            async with session.get(f"{base}/healthz") as response:
                assert response.status == 503
                assert (await response.json())["problems"] == ["gateway not ready"]
            async with session.get(f"{base}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                text = await response.text()
            assert 'sentiment_messages_classified_total{shard="0",source="command"} 1.0' in text
            # a Prometheus server asking for OpenMetrics gets it
            openmetrics = {"Accept": "application/openmetrics-text; version=1.0.0"}
            async with session.get(f"{base}/metrics", headers=openmetrics) as response:
                assert response.headers["Content-Type"].startswith("application/openmetrics-text")
                assert (await response.text()).endswith("# EOF\n")
            async with session.get(f"{base}/other") as response:
                assert response.status == 404
    finally:
        await endpoint.stop()
        await endpoint.stop()  # twice is harmless


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "the port is in use"),
        ("192.0.2.1", "the address is not one of this machine's"),  # TEST-NET-1
    ],
)
async def test_an_endpoint_that_cannot_listen_says_so_in_one_line(host: str, reason: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        endpoint = HttpEndpoint(host, port, health=report, registry=BotMetrics().registry)
        with pytest.raises(EndpointError) as caught:
            await endpoint.start()
    message = str(caught.value)
    assert "\n" not in message and f"{host}:{port}" in message and reason in message
    assert "SENTIMENT_HTTP_PORT" in message and "SENTIMENT_HTTP_HOST" in message
    await endpoint.stop()  # nothing to stop: harmless


def test_the_endpoint_is_off_and_local_by_default() -> None:
    settings = Settings.from_env({"DISCORD_TOKEN": TOKEN})
    assert (settings.http_port, settings.http_host) == (0, "127.0.0.1")
    settings = Settings.from_env({
        "DISCORD_TOKEN": TOKEN, "SENTIMENT_HTTP_PORT": "9100", "SENTIMENT_HTTP_HOST": "::",
    })  # fmt: skip
    assert (settings.http_port, settings.http_host) == (9100, "::")
    for host in ("0.0.0.0", "localhost", "bot-0.sentiment.internal", "fd00::1"):
        assert Settings.from_env({"DISCORD_TOKEN": TOKEN, "SENTIMENT_HTTP_HOST": host})


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SENTIMENT_HTTP_PORT", "65536", "not a port from 1 to 65535, or 0 for no endpoint"),
        ("SENTIMENT_HTTP_PORT", "-1", "not a port"),
        ("SENTIMENT_HTTP_PORT", "metrics", "not a port"),
        ("SENTIMENT_HTTP_HOST", "http://localhost", "not an IP address or host name"),
        ("SENTIMENT_HTTP_HOST", "my host", "not an IP address or host name"),
        ("SENTIMENT_HTTP_HOST", "-bad-.example", "not an IP address or host name"),
    ],
)
def test_a_bad_endpoint_setting_is_one_line_naming_it(
    variable: str, value: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"DISCORD_TOKEN": TOKEN, variable: value})
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{variable}={value!r} is {expected}")


def test_sentiment_bot_prints_the_endpoint_error_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import bot.cli

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]

    async def run_bot(settings: Settings) -> None:  # as create_bot starts the endpoint
        await HttpEndpoint(
            settings.http_host, settings.http_port, health=report, registry=BotMetrics().registry
        ).start()

    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("SENTIMENT_HTTP_PORT", str(port))
    monkeypatch.setattr(bot.cli, "run_bot", run_bot)
    monkeypatch.setattr(bot.cli.discord.utils, "setup_logging", lambda **_: None)  # root's own
    with taken:
        assert bot.cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: cannot serve /healthz and /metrics on 127.0.0.1:{port}")
