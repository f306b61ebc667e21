"""Assembling the bot: the one place where its parts are opened and handed to it.

The database is opened first (with its integrity check: seconds at most), then the model is
loaded (seconds), then the database writer and the inference service start, and only then is
the :class:`~bot.client.SentimentBot` built around them, as discord.py's
``examples/advanced_startup.py`` builds its bot around a database pool. So a damaged database
or a bad artifact stops the program before anything is sent to Discord, and the bot has no
half-started state to track. With SENTIMENT_HTTP_PORT set, the health and metrics endpoint
(bot/endpoint.py) is started last, still before anything is sent to Discord (a port in use
stops the program with one line), and handed to the bot, whose ``close()`` stops it.
``sentiment-bot`` (bot/cli.py), the sandbox, the load test and the end-to-end tests all
assemble it here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.client import SentimentBot, ShardedSentimentBot
from bot.config import Settings, describe_shards
from bot.endpoint import HttpEndpoint
from bot.inference import InferenceService
from bot.metrics import BotMetrics
from bot.storage import Storage
from model import SentimentClassifier, threshold
from model.settings import ClassifierSettings

log = logging.getLogger(__name__)

_T = TypeVar("_T")


def run_event_loop(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)``, on uvloop where it is installed (a dependency on Linux and macOS):
    under a burst the bot's event loop (discord.py's gateway and HTTP, the bot's handlers)
    costs CPU beside the model, and uvloop's loop is leaner than asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


@dataclass(frozen=True)
class Parts:
    """The bot's parts, open and running."""

    classifier: SentimentClassifier
    storage: Storage
    inference: InferenceService
    metrics: BotMetrics  # the bot's own registry; the inference service reports to it


async def open_parts(settings: Settings, *, classifier: SentimentClassifier | None = None) -> Parts:
    """Open the database, load the model (unless ``classifier`` is given: tests share one),
    start the writer and the inference service.

    Raises ``StorageError``, ``ArtifactError`` or ``EncoderError`` (each one line that names
    the file and the fix); on any failure or cancellation, what was opened is closed again.
    """
    storage = await Storage.open(
        settings.database,
        pool_size=settings.db_pool_size,
        settings_refresh_s=settings.settings_refresh_s,
    )
    try:
        if classifier is None:
            classifier = await asyncio.to_thread(load_classifier, settings)
        _log_model(classifier)
        storage.start_writer()
        metrics = BotMetrics()
        inference = InferenceService(
            classifier,
            max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue,
            observer=metrics,
            prepare_ahead=settings.prepare_ahead,
        )
        await inference.start()
    except BaseException:
        await storage.close()
        raise
    return Parts(classifier, storage, inference, metrics)


def load_classifier(settings: ClassifierSettings) -> SentimentClassifier:
    """The classifier as the bot serves it: SENTIMENT_ARTIFACT, SENTIMENT_BATCH_SIZE,
    SENTIMENT_TORCH_THREADS, SENTIMENT_PRECISION and SENTIMENT_SERVING_CACHE (the load test
    times the bare classifier loaded the same way)."""
    return SentimentClassifier.load(
        settings.artifact,
        batch_size=settings.encoder_batch_size,
        threads=settings.torch_threads,
        precision=settings.precision,
        serving_cache=settings.serving_cache,
    )


async def create_bot(
    settings: Settings, *, classifier: SentimentClassifier | None = None, **options: Any
) -> SentimentBot:
    """:func:`open_parts`, then the bot that owns them (its ``close()`` closes them): a
    :class:`ShardedSentimentBot` running ``settings.shards`` when SENTIMENT_SHARD_COUNT is set,
    else a :class:`SentimentBot` (one connection for every guild).

    ``options`` go to discord.py's client (e.g. ``guild_ready_timeout``). With
    ``settings.http_port``, the endpoint is listening when this returns; raises
    :class:`bot.endpoint.EndpointError` when it cannot."""
    parts = await open_parts(settings, classifier=classifier)
    bot_class = SentimentBot
    if settings.shard_count is not None:
        bot_class = ShardedSentimentBot
        log.info("running %s", describe_shards(settings.shards, settings.shard_count))
    try:
        bot = bot_class(
            settings,
            classifier=parts.classifier,
            storage=parts.storage,
            inference=parts.inference,
            metrics=parts.metrics,
            **options,
        )
        if settings.http_port:
            endpoint = HttpEndpoint(
                settings.http_host,
                settings.http_port,
                health=bot.health,
                registry=parts.metrics.registry,
            )
            await endpoint.start()
            bot.endpoint = endpoint  # the bot's close() stops it
    except BaseException:
        await parts.inference.close()
        await parts.storage.close()
        raise
    return bot


def _log_model(classifier: SentimentClassifier) -> None:
    low, high = classifier.band
    when = (
        f"three-way, reacts at P(positive) >= {threshold('positive', classifier.band):.3f} "
        f"or P(negative) >= {threshold('negative', classifier.band):.3f}"
        if classifier.three_way
        else f"neutral band {low:.3f}..{high:.3f}"
    )
    log.info(
        "model %s loaded (%s, %s pooling, %s; %s)",
        classifier.version,
        classifier.artifact.encoder.name,
        classifier.artifact.encoder.pooling,
        classifier.encoder.spec.precision,
        when,
    )
