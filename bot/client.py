"""The Discord client: start-up (setup_hook), the cogs, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot.config import Settings
from bot.inference import InferenceService, Predictor
from bot.interactions import friendly_error, send, undeliverable
from bot.monitor import LoopLagMonitor
from bot.mood import MoodService
from bot.storage import Storage
from model import SentimentClassifier

log = logging.getLogger(__name__)

EXTENSIONS = ("bot.cogs.sentiment", "bot.cogs.history", "bot.cogs.admin")
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
    """Loads the classifier once, opens the database, starts the services, loads the cogs.

    ``classifier`` may be passed in (tests share one across bots); by default it is loaded from
    ``settings.artifact`` (or the committed default) in a worker thread.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        classifier: SentimentClassifier | None = None,
        **options: Any,
    ) -> None:
        options.setdefault("allowed_mentions", discord.AllowedMentions.none())
        super().__init__(
            command_prefix=commands.when_mentioned, intents=intents(), help_command=None, **options
        )
        self.settings = settings
        self._classifier = classifier
        self._storage: Storage | None = None  # opened by prepare()
        self._prepared = False
        self._services_started = False
        self.setup_done = False  # setup_hook finished: from now on close() alone stops the bot
        self._busy: set[asyncio.Task[Any]] = set()
        self.closing = False
        # Event-loop lag (started in setup_hook); logged with the inference counters.
        self.loop_lag = LoopLagMonitor(log_every=STATS_LOG_EVERY_S, extra=self._stats_line)

    # set in setup_hook
    classifier: SentimentClassifier
    storage: Storage
    inference: InferenceService
    mood: MoodService

    async def prepare(self) -> None:
        """The local start-up work, cheapest check first: open the database (with its integrity
        quick check), then load the model (seconds). ``sentiment-bot`` runs this before it logs
        in, so that a damaged database or an unwritable path fails before the model loads and
        before Discord is contacted; ``setup_hook`` runs it when it has not run yet. Idempotent.
        """
        if self._prepared:
            return
        settings = self.settings
        if self._storage is None:
            self._storage = await Storage.open(settings.database)
            self.storage = self._storage
        if self._classifier is None:
            self._classifier = await asyncio.to_thread(
                SentimentClassifier.load,
                settings.artifact,
                batch_size=settings.encoder_batch_size,
                threads=settings.torch_threads,
                precision=settings.precision,
            )
        self.classifier = self._classifier
        low, high = self.classifier.band
        log.info(
            "model %s loaded (%s, %s pooling, %s; %s)",
            self.classifier.version,
            self.classifier.artifact.encoder.name,
            self.classifier.artifact.encoder.pooling,
            self.classifier.encoder.spec.precision,
            f"three-way, reacts at P(positive) >= {high:.3f} or P(negative) >= {1 - low:.3f}"
            if self.classifier.three_way
            else f"neutral band {low:.3f}..{high:.3f}",
        )
        self._prepared = True

    async def setup_hook(self) -> None:
        settings = self.settings
        await self.prepare()
        self.storage.start_writer()
        predictor: Predictor = self.classifier
        self.inference = InferenceService(
            predictor,
            max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue,
        )
        await self.inference.start()
        self._services_started = True
        self.mood = MoodService(
            self.inference, self.storage, self.classifier.version, self.classifier.band
        )
        self.tree.error(self.on_app_command_error)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        await self.sync_commands()
        self.purge_old_rows.start()
        self.loop_lag.start()
        self.setup_done = True

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
        try:
            removed = await self.storage.purge(default_days=self.settings.retention_days)
        except Exception:
            log.exception("retention purge failed; it runs again in %d hours", PURGE_EVERY_HOURS)
            return
        if removed:
            log.info("retention purge removed %d predictions", removed)

    def _stats_line(self) -> str:
        s = self.inference.stats
        w = self.storage.writer_stats
        p95 = s.percentile(s.request_seconds, 95)
        latency = "-" if p95 is None else f"{p95 * 1000:.0f}"
        return (
            f"inference: {s.predicted} predicted, {s.shed} shed, {s.errors} failed batches, "
            f"mean batch {s.mean_batch_size:.1f}, queue {s.queue_depth}, request p95 {latency} "
            f"ms; storage: {w.written} written, {w.pending} pending"
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
                log.warning("could not answer /%s: %s", _command_name(interaction), reason)
                return
            message = friendly_error(original) or "Something went wrong; the error was logged."
            log.error("command %s failed", _command_name(interaction), exc_info=original)
        with contextlib.suppress(discord.HTTPException):  # an expired interaction: nothing to do
            await send(interaction, content=message, ephemeral=True)

    async def on_ready(self) -> None:
        user = self.user
        log.info(
            "connected as %s (%s) to %d guilds", user, user.id if user else "?", len(self.guilds)
        )

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
        await self.loop_lag.stop()
        try:
            if self._services_started:
                # Handlers already under way (new ones see ``closing`` and stop) classify with
                # the model still running, instead of being refused half-way...
                await self._finish_handlers()
                await self.inference.close()
                # ...then any that got their predictions from the last batches log them and
                # send their reactions and replies while the connection is still open.
                await self._finish_handlers()
            if self._storage is not None:
                await self._storage.close()
        finally:
            await super().close()
        if self._storage is not None and self._storage.writer_stats.pending:
            return  # storage.close said what was not written: not a clean shutdown
        log.info("shut down cleanly")


def _permission_name(flag: str) -> str:
    """``manage_guild`` -> ``Manage Server``: the name Discord's client shows."""
    return flag.replace("guild", "server").replace("_", " ").title()


def _command_name(interaction: discord.Interaction[Any]) -> str:
    command = interaction.command
    return command.qualified_name if command is not None else "?"
