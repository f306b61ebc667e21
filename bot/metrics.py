"""The bot's Prometheus metrics (``/metrics``, bot/endpoint.py), in a registry of its own.

Nothing is counted twice. Counts that only exist here are kept by prometheus-client as they
happen: texts classified and shed per shard (told by :class:`bot.mood.MoodService` through
:class:`bot.mood.MoodEvents`), the histograms of model calls and answers (told by
:class:`bot.inference.InferenceService` through :class:`bot.inference.InferenceObserver`) and
of event-loop lag (each sample of :class:`bot.monitor.LoopLagMonitor`). Counts the bot
already keeps (the inference service's stats, the storage writer's stats, the gateway's
shards) are read when ``/metrics`` is scraped, by a collector given functions that return them
(:meth:`BotMetrics.follow`).

The registry belongs to one :class:`BotMetrics`, never prometheus-client's global one, so
several bots in one process (tests, the load test) do not collide. A guild's shard is
``(guild_id >> 22) % shard_count`` (Discord's rule); a direct message counts on shard 0, where
Discord delivers them; a bot that is not sharded is shard 0.

This module knows nothing of discord objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.health import ShardState
from bot.inference import InferenceStats
from bot.storage import Source, WriterStats

__all__ = ["BotMetrics", "shard_of"]

SOURCES: tuple[Source, ...] = get_args(Source)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def shard_of(guild_id: int | None, shard_count: int) -> int:
    """The shard that serves ``guild_id`` (None, a direct message: shard 0)."""
    if guild_id is None or shard_count <= 1:
        return 0
    return (guild_id >> 22) % shard_count


class BotMetrics:
    """The metrics of one bot. Is a :class:`bot.mood.MoodEvents` and a
    :class:`bot.inference.InferenceObserver`; ``loop_lag.observe`` takes lag samples."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self._classified = Counter(
            "sentiment_messages_classified",
            "Texts the model classified, by the shard of their guild and their source "
            "(auto: a chat message; command: /sentiment; context_menu: Analyze sentiment).",
            ["shard", "source"],
            registry=registry,
        )
        self._shed = Counter(
            "sentiment_messages_shed",
            "Chat messages not classified (no automatic reaction) because the inference queue "
            "was full, by the shard of their guild.",
            ["shard"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "sentiment_inference_batch_size",
            "Texts per model call (micro-batch), failed calls included.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "sentiment_inference_batch_seconds",
            "Duration of each successful model call on a batch, in seconds.",
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.request_seconds = Histogram(
            "sentiment_inference_request_seconds",
            "From a text entering the inference queue to its prediction, in seconds.",
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.loop_lag = Histogram(
            "sentiment_event_loop_lag_seconds",
            "How late the event loop woke a task that asked to wake at a given time "
            "(a probe every 50 ms), in seconds.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self._shard_count: Callable[[], int] = lambda: 1
        self._live: _LiveStats | None = None

    # -- what the services tell (MoodEvents, InferenceObserver) ------------------------------

    def classified(self, guild_id: int | None, source: Source) -> None:
        self._classified.labels(str(shard_of(guild_id, self._shard_count())), source).inc()

    def shed(self, guild_id: int | None) -> None:
        self._shed.labels(str(shard_of(guild_id, self._shard_count()))).inc()

    def batch(self, size: int, seconds: float | None) -> None:
        self.batch_size.observe(size)
        if seconds is not None:
            self.batch_seconds.observe(seconds)

    def answered(self, seconds: float) -> None:
        self.request_seconds.observe(seconds)

    # -- what is read when scraped -----------------------------------------------------------

    def follow(
        self,
        *,
        inference: Callable[[], InferenceStats],
        writer: Callable[[], WriterStats],
        shards: Callable[[], Sequence[ShardState]],
        shard_count: Callable[[], int],
    ) -> None:
        """Read these when scraped: the inference service's and the writer's stats, the
        gateway's shards, and the application's shard count (which places a guild's texts on
        their shard). Once per :class:`BotMetrics`."""
        if self._live is not None:
            raise RuntimeError("these metrics already follow a bot")
        self._shard_count = shard_count
        self._live = _LiveStats(inference, writer, shards)
        self.registry.register(self._live)

    def shards_started(self, shard_ids: Iterable[int]) -> None:
        """Show the per-shard counters of these shards at 0 before their first text (a counter
        that appears only on its first increment hides that first increase from rate())."""
        for shard_id in shard_ids:
            label = str(shard_id)
            self._shed.labels(label)
            for source in SOURCES:
                self._classified.labels(label, source)


class _LiveStats(Collector):
    """The counts the bot keeps anyway, read at each scrape."""

    def __init__(
        self,
        inference: Callable[[], InferenceStats],
        writer: Callable[[], WriterStats],
        shards: Callable[[], Sequence[ShardState]],
    ) -> None:
        self._inference = inference
        self._writer = writer
        self._shards = shards

    def describe(self) -> Iterable[Metric]:
        return []  # the names are only known by collecting: no check against other metrics

    def collect(self) -> Iterable[Metric]:
        inference = self._inference()
        yield GaugeMetricFamily(
            "sentiment_inference_queue_depth",
            "Texts waiting for the model (not yet in a batch).",
            value=inference.queue_depth,
        )
        yield CounterMetricFamily(
            "sentiment_inference_errors",
            "Model calls that failed (each caller in the batch got an error).",
            value=inference.errors,
        )
        w = self._writer()
        yield GaugeMetricFamily(
            "sentiment_storage_backlog",
            "Predictions submitted and not yet committed to the database.",
            value=w.pending,
        )
        yield GaugeMetricFamily(
            "sentiment_storage_backlog_limit",
            "The most predictions kept waiting; beyond it new ones are not stored.",
            value=w.limit,
        )
        yield GaugeMetricFamily(
            "sentiment_storage_writable",
            "1 while the database writer runs without failing, else 0.",
            value=int(w.running and not w.failing and w.unavailable is None),
        )
        yield CounterMetricFamily(
            "sentiment_storage_written", "Prediction rows committed.", value=w.written
        )
        yield CounterMetricFamily(
            "sentiment_storage_write_errors",
            "Failed attempts to commit a batch of predictions (each one retried).",
            value=w.failed_batches,
        )
        yield CounterMetricFamily(
            "sentiment_storage_rejected",
            "Predictions the database refused for their content (not stored; logged).",
            value=w.rejected,
        )
        yield CounterMetricFamily(
            "sentiment_storage_dropped",
            "Predictions not stored because the backlog was at its limit.",
            value=w.over_bound,
        )
        connected = GaugeMetricFamily(
            "sentiment_gateway_connected",
            "1 while the shard's gateway websocket is open, else 0.",
            labels=["shard"],
        )
        latency = GaugeMetricFamily(
            "sentiment_gateway_latency_seconds",
            "The shard's last heartbeat round trip, in seconds (absent before the first).",
            labels=["shard"],
        )
        for shard in self._shards():
            connected.add_metric([str(shard.id)], int(shard.connected))
            if shard.latency is not None:
                latency.add_metric([str(shard.id)], shard.latency)
        yield connected
        yield latency
