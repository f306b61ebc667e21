"""The Discord client: the cogs and command sync (setup_hook), the purge loop, its health and
metrics, graceful shutdown of the parts it is given."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot.alert_service import AlertService
from bot.alerts import Notice
from bot.cogs.alerts import post_notice
from bot.config import Settings, describe_shards
from bot.corrections import CorrectionService
from bot.decisions import serves
from bot.endpoint import HttpEndpoint
from bot.health import HealthReport, assess, gateway_shards
from bot.inference import InferenceService
from bot.interactions import command_name, friendly_error, send, undeliverable
from bot.metrics import BotMetrics
from bot.monitor import LoopLagMonitor, percentile
from bot.mood import MoodService
from bot.storage import Storage
from model import SentimentClassifier, explain

log = logging.getLogger(__name__)

EXTENSIONS = (
    "bot.cogs.sentiment",
    "bot.cogs.history",
    "bot.cogs.admin",
    "bot.cogs.privacy",
    "bot.cogs.corrections",
)
PURGE_EVERY_HOURS = 6
HANDLER_GRACE_S = 10.0  # on shutdown, how long event handlers may take to finish their replies
STATS_LOG_EVERY_S = 600.0  # how often event-loop lag and inference counters are logged (INFO)


# The bot never joins voice: silence discord.py's start-up warnings about voice libraries.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False


def intents() -> discord.Intents:
    """Guilds and guild messages, plus the privileged Message Content intent (the text)."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.message_content = True
    return wanted


class SentimentBot(commands.Bot):
    """The Discord side of the bot: the cogs, command sync, the purge loop, graceful shutdown.

    It is given its parts already open and running (bot/app.py assembles them): the
    ``classifier``, the ``storage`` with its writer started, the ``inference`` service in
    front of the classifier, and the ``metrics`` it reports to (the inference service already
    does). It owns them from then on: :meth:`close` shuts them down, in the order a graceful
    shutdown needs (the handlers under way finish with the model, the database and the
    connection still there), and stops the HTTP ``endpoint`` last, when bot/app.py gave it one.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        classifier: SentimentClassifier,
        storage: Storage,
        inference: InferenceService,
        metrics: BotMetrics,
        **options: Any,
    ) -> None:
        options.setdefault("allowed_mentions", discord.AllowedMentions.none())
        super().__init__(
            command_prefix=commands.when_mentioned, intents=intents(), help_command=None, **options
        )
        self.settings = settings
        self.classifier = classifier
        self.storage = storage
        self.inference = inference
        self.metrics = metrics
        self.endpoint: HttpEndpoint | None = None  # /healthz and /metrics, set by bot/app.py
        self.mood = MoodService(
            inference,
            storage,
            classifier.version,
            classifier.band,
            explainer=lambda text, prediction: explain(classifier, text, prediction=prediction),
            events=metrics,
        )
        self.alerts = AlertService(
            storage, self._post_notice, interval=settings.alert_check_s, serves=self.serves
        )
        self.corrections = CorrectionService(storage)
        self._busy: set[asyncio.Task[Any]] = set()
        self.closing = False  # close() was called: handlers take no new work
        # Event-loop lag (started in setup_hook); logged with the inference counters.
        self.loop_lag = LoopLagMonitor(
            log_every=STATS_LOG_EVERY_S, extra=self._stats_line, observe=metrics.loop_lag.observe
        )
        metrics.follow(
            inference=lambda: inference.stats,
            writer=lambda: storage.writer_stats,
            shards=lambda: gateway_shards(self),
            shard_count=lambda: self.shard_count or 1,
        )

    async def setup_hook(self) -> None:
        self.tree.error(self.on_app_command_error)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        await self.sync_commands()
        await self.alerts.start()
        self.purge_old_rows.start()
        self.loop_lag.start()

    async def sync_commands(self) -> None:
        """To the development guild when one is set (instant), else globally (up to an hour)."""
        if self.settings.dev_guild_id is not None:
            guild = discord.Object(id=self.settings.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to guild %s", len(synced), guild.id)
        else:
            synced = await self.tree.sync()
            log.info("synced %d global commands", len(synced))

    @tasks.loop(hours=PURGE_EVERY_HOURS)
    async def purge_old_rows(self) -> None:
        await self.purge()

    async def purge(self, *, now: datetime | None = None) -> None:
        """The purge loop's work (``now``: as if it ran then): predictions past retention, and
        every row of the guilds the bot left more than SENTIMENT_LEAVE_GRACE_DAYS ago."""
        try:
            removed = await self.storage.purge(default_days=self.settings.retention_days, now=now)
        except Exception:
            log.exception("retention purge failed; it runs again in %d hours", PURGE_EVERY_HOURS)
        else:
            if removed:
                log.info("retention purge removed %d predictions", removed)
        if not self.is_ready():
            # Not before READY has said which guilds the bot is in (the privacy cog's
            # on_ready cancels the departures of guilds that added it back while offline).
            return
        try:
            gone = await self.storage.purge_departed_guilds(
                grace_days=self.settings.leave_grace_days,
                now=now,
                keep=[guild.id for guild in self.guilds],  # never a guild the bot is in
                owns=self.serves,  # nor one of another process's shards
            )
        except Exception:
            log.exception(
                "purge of departed guilds failed; it runs again in %d hours", PURGE_EVERY_HOURS
            )
            return
        for guild_id, rows in gone.items():
            log.info(
                "deleted guild %s (left more than %d days ago): %d rows and its settings",
                guild_id,
                self.settings.leave_grace_days,
                rows,
            )

    def serves(self, guild_id: int) -> bool:
        """Whether this process answers for the guild (its shards' guilds; every guild when
        the bot is not sharded)."""
        return serves(guild_id, self.settings.shard_count, self.settings.shards)

    async def _post_notice(self, notice: Notice) -> int:
        """Post a mood alert or its "resolved" line (bot/cogs/alerts.py)."""
        return await post_notice(self, notice)

    def _stats_line(self) -> str:
        s = self.inference.stats
        w = self.storage.writer_stats
        p95 = percentile(s.request_seconds, 95)
        latency = "-" if p95 is None else f"{p95 * 1000:.0f}"
        return (
            f"inference: {s.predicted} predicted, {s.shed} shed, {s.errors} failed batches, "
            f"mean batch {s.mean_batch_size:.1f}, queue {s.queue_depth}, request p95 {latency} "
            f"ms; storage: {w.written} written, {w.pending} pending"
        )

    def health(self) -> HealthReport:
        """What ``/healthz`` answers (bot/health.py says what healthy means)."""
        return assess(
            ready=self.is_ready(),
            closing=self.closing,
            shard_count=self.shard_count or 1,
            shards=gateway_shards(self),
            writer=self.storage.writer_stats,
            failure=self.storage.failure,
            queue_depth=self.inference.stats.queue_depth,
            loop_lag=self.loop_lag.stats(),
        )

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        """Mark the current task as handling an event: close() lets it finish its reply."""
        task = asyncio.current_task()
        if task is not None:
            self._busy.add(task)
        try:
            yield
        finally:
            self._busy.discard(task)

    async def on_app_command_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        """One friendly line for the user; a traceback in the log only for real bugs."""
        if isinstance(error, app_commands.MissingPermissions):
            needed = " and ".join(_permission_name(p) for p in error.missing_permissions)
            plural = "s" if len(error.missing_permissions) > 1 else ""
            message = f"You need the {needed} permission{plural} to use this command."
        elif isinstance(error, app_commands.CheckFailure):
            message = "You cannot use this command here."
        else:
            original = getattr(error, "original", error)
            if (reason := undeliverable(original)) is not None:
                # Discord did not take the answer: a second try (the error line) would fail too.
                log.warning("could not answer /%s: %s", command_name(interaction), reason)
                return
            message = friendly_error(original) or "Something went wrong; the error was logged."
            log.error("command %s failed", command_name(interaction), exc_info=original)
        with contextlib.suppress(discord.HTTPException):  # an expired interaction: nothing to do
            await send(interaction, content=message, ephemeral=True)

    async def on_ready(self) -> None:
        user = self.user
        settings = self.settings
        log.info(
            "connected as %s (%s) to %d guilds%s",
            user,
            user.id if user else "?",
            len(self.guilds),
            f" ({describe_shards(settings.shards, settings.shard_count)})"
            if settings.shard_count is not None
            else "",
        )
        self.metrics.shards_started(shard.id for shard in gateway_shards(self))

    async def on_message(self, message: discord.Message, /) -> None:
        """No text commands: the bot only answers slash commands and menus.

        ``commands.Bot`` would parse every message that starts with the bot's mention (its
        prefix) as a command and log "@bot hello" as an ERROR (CommandNotFound). The cogs'
        ``on_message`` listeners still see every message.
        """

    async def _finish_handlers(self) -> None:
        busy = self._busy - {asyncio.current_task()}
        # A handler waits for its prediction's commit before it reacts or replies; while the
        # database fails that wait would only hold up the shutdown (storage.close reports
        # what was not written, and the handlers then give up without reacting).
        if busy and not self.storage.writer_stats.failing:
            await asyncio.wait(busy, timeout=HANDLER_GRACE_S)

    async def close(self) -> None:
        """Stop taking work, finish predictions in flight, flush the writer, close the database."""
        if self.closing:
            return
        self.closing = True
        log.info("shutting down: finishing predictions in flight, flushing the database")
        self.purge_old_rows.cancel()
        await self.alerts.stop()
        await self.loop_lag.stop()
        try:
            # Handlers already under way (new ones see ``closing`` and stop) classify with the
            # model still running, instead of being refused half-way...
            await self._finish_handlers()
            await self.inference.close()
            # ...then any that got their predictions from the last batches log them and send
            # their reactions and replies while the connection is still open.
            await self._finish_handlers()
            await self.storage.close()
        finally:
            try:
                await super().close()
            finally:
                if self.endpoint is not None:  # the last answer: 503, shutting down
                    await self.endpoint.stop()
        if self.storage.writer_stats.pending:
            return  # storage.close said what was not written: not a clean shutdown
        log.info("shut down cleanly")


class ShardedSentimentBot(SentimentBot, commands.AutoShardedBot):
    """The bot as some shards of a sharded bot: discord.py's AutoShardedBot opens one gateway
    connection per shard in ``settings.shards`` (of ``settings.shard_count``), and Discord sends
    each connection only its guilds' events. Other processes run the other shards, sharing the
    database; each answers only for its own guilds (:meth:`SentimentBot.serves`)."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        if settings.shard_count is None:
            raise ValueError("ShardedSentimentBot needs settings.shard_count")
        kwargs.setdefault("shard_count", settings.shard_count)
        kwargs.setdefault("shard_ids", list(settings.shards))
        super().__init__(settings, **kwargs)

    async def on_shard_ready(self, shard_id: int) -> None:
        guilds = sum(1 for guild in self.guilds if guild.shard_id == shard_id)
        log.info("shard %d of %d ready: %d guilds", shard_id, self.shard_count, guilds)

    async def on_shard_resumed(self, shard_id: int) -> None:
        log.info("shard %d of %d resumed its session", shard_id, self.shard_count)


def _permission_name(flag: str) -> str:
    """``manage_guild`` -> ``Manage Server``: the name Discord's client shows."""
    return flag.replace("guild", "server").replace("_", " ").title()
