"""/sentiment, the "Analyze sentiment" context menu, automatic reactions, deleted messages:
Discord's events and interactions translated into calls on the services (the rules:
bot/decisions.py), their answers into replies and reactions, their failures into log lines."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.correction_buttons import meant_view
from bot.cogs.options import refuse_bad_options
from bot.decisions import ChatMessage, guild_band, keeps_text
from bot.inference import InferenceError, Overloaded, ServiceClosed
from bot.interactions import STORAGE_WAIT_S, reply_when_ready, unavailable_message
from bot.mood import NotSavedError
from bot.render import prediction_embed
from bot.storage import GuildSettings, Source, StorageError
from model import Explanation, Prediction

if TYPE_CHECKING:
    from bot.client import SentimentBot

log = logging.getLogger(__name__)

NOT_SAVED = (
    "This answer was not saved to your history: the bot's database is unavailable "
    "(the operator has been told)."
)
MAX_TEXT = 4000  # Discord's message limit for Nitro users; the encoder truncates by tokens anyway
WARN_EVERY_S = 600.0  # the same problem in the same place is logged at most this often
# What an answer is made of: the prediction, the band it was judged by, why it was not saved
# (None: saved), the words that moved its mood (None: none to show).
Answer = tuple[Prediction, tuple[float, float], NotSavedError | None, Explanation | None]


class SentimentCog(commands.Cog):
    def __init__(self, bot: SentimentBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(
            name="Analyze sentiment", callback=self.analyze_message
        )
        self._warned: dict[tuple[str, int], float] = {}

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    # -- commands ----------------------------------------------------------------------------

    @app_commands.command(name="sentiment", description="Tell the mood of a text")
    @app_commands.describe(
        text="The text to read", private="Only you see the answer (default: the whole channel)"
    )
    async def sentiment(
        self,
        interaction: discord.Interaction[Any],
        text: app_commands.Range[str, 1, MAX_TEXT],
        private: bool = False,
    ) -> None:
        if await refuse_bad_options(interaction):  # e.g. a text longer than MAX_TEXT
            return
        await self._answer(interaction, text, "command", ephemeral=private, message_id=None)

    async def analyze_message(
        self, interaction: discord.Interaction[Any], message: discord.Message
    ) -> None:
        """Message context menu: the same answer, only for the person asking.

        The row records the message's author (whose words it holds) and is private to the
        requester; nothing is stored if the author opted out (storage refuses it)."""
        await self._answer(
            interaction,
            message.content,
            "context_menu",
            ephemeral=True,
            message_id=message.id,
            author_id=message.author.id,
        )

    async def _answer(
        self,
        interaction: discord.Interaction[Any],
        text: str,
        source: Source,
        *,
        ephemeral: bool,
        message_id: int | None,
        author_id: int | None = None,
    ) -> None:
        guild_id = interaction.guild_id
        asked_at = datetime.now(UTC)  # the row's time: the "I meant ..." buttons find it by it
        with self.bot.handling():

            async def work() -> Answer:
                prediction, band, not_saved = await classify()
                return prediction, band, not_saved, await self._explain(text, prediction)

            async def classify() -> tuple[Prediction, tuple[float, float], NotSavedError | None]:
                settings = await self._settings(guild_id)
                band = guild_band(settings, self.bot.classifier.band)
                try:
                    prediction = await self.bot.mood.classify(
                        text,
                        source=source,
                        user_id=interaction.user.id,
                        guild_id=guild_id,
                        channel_id=interaction.channel_id,
                        message_id=message_id,
                        store_text=keeps_text(source, settings),
                        band=band,
                        author_id=author_id,
                        private=ephemeral,  # an answer only the requester sees: a private row
                        save_timeout=STORAGE_WAIT_S,  # then answer: the row stays queued
                        created_at=asked_at,
                    )
                except NotSavedError as exc:
                    # The mood can still be told; the user learns it was not saved.
                    if exc.queued:
                        self._warn(
                            "not-saved-yet",
                            0,
                            "/%s answered before its row was saved: %s; it stays queued",
                            source,
                            exc,
                        )
                    else:
                        self._error("not-saved", 0, "/%s answered but not saved: %s", source, exc)
                    return exc.prediction, band, exc
                return prediction, band, None

            def render(result: Answer) -> dict[str, Any]:
                prediction, band, not_saved, explanation = result
                embed = prediction_embed(text, prediction, band, explanation)
                if not_saved is not None and not_saved.queued:
                    value = unavailable_message(
                        not_saved.reason, "saving this answer to your history", queued=True
                    )
                    embed.add_field(name="Not saved yet", value=value, inline=False)
                elif not_saved is not None:
                    embed.add_field(name="Not saved", value=NOT_SAVED, inline=False)
                if not_saved is None and self._correctable(
                    prediction, interaction.user.id, author_id
                ):
                    return {"embed": embed, "view": meant_view(interaction.user.id, asked_at)}
                return {"embed": embed}

            await reply_when_ready(interaction, work(), render, ephemeral=ephemeral)

    async def _explain(self, text: str, prediction: Prediction) -> Explanation | None:
        """The words that moved the mood most; None (the answer goes without them) when the
        model fails on them or is shutting down: the mood itself is already known."""
        try:
            return await self.bot.mood.explain(text, prediction)
        except (InferenceError, ServiceClosed) as exc:
            self._warn("explain", 0, "answered without the words that moved the mood: %s", exc)
            return None

    def _correctable(self, prediction: Prediction, asker_id: int, author_id: int | None) -> bool:
        """Whether an answer gets the "I meant ..." buttons: the model read the text and its
        row is stored (nobody whose data it is opted out)."""
        storage = self.bot.storage
        return prediction.read and not any(
            who is not None and storage.opted_out(who) for who in (asker_id, author_id)
        )

    async def _settings(self, guild_id: int | None) -> GuildSettings | None:
        """The guild's settings for a command; None (the defaults) in a DM, or when the
        database cannot be read: the mood can be told all the same."""
        if guild_id is None:
            return None
        try:
            return await asyncio.wait_for(self.bot.storage.guild_settings(guild_id), 1.0)
        except (sqlite3.Error, StorageError, TimeoutError) as exc:
            self._warn("settings", guild_id, "using default settings: cannot read them (%s)", exc)
            return None

    # -- automatic reactions -----------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        where = message.guild.id if message.guild is not None else 0
        # Mood alerts watch the channel: read it even where reactions are off.
        watched = bool(where) and self.bot.storage.watched(where, message.channel.id)
        with self.bot.handling():
            try:
                emoji = await self.bot.mood.auto_reaction(
                    _chat_message(message), closing=self.bot.closing, watched=watched
                )
            except Overloaded:
                return  # shed under load; counted in the inference stats
            except NotSavedError as exc:
                # No reaction for a prediction that is not stored: a reaction means it is
                # durable.
                self._warn("not-saved", where, "automatic reaction skipped: %s", exc)
                return
            except (InferenceError, ServiceClosed, StorageError) as exc:
                self._warn("classify", where, "automatic reaction skipped: %s", exc)
                return
            except sqlite3.Error as exc:
                # A damaged database (e.g. a corrupt index under the duplicate check) must not
                # print a traceback per message: one ERROR, then at most one per WARN_EVERY_S.
                self._error(
                    "storage",
                    0,
                    "automatic reactions are failing: the database cannot be read (%s); "
                    "stop the bot and check the file (README, Operations)",
                    exc,
                )
                return
            if watched:
                self.bot.alerts.poke()  # its prediction is stored: check the channel soon
            if emoji is not None:
                await self._react(message, emoji)

    async def _react(self, message: discord.Message, emoji: str) -> None:
        try:
            await message.add_reaction(discord.PartialEmoji.from_str(emoji))
        except discord.Forbidden:
            self._warn(
                "forbidden",
                message.channel.id,
                "cannot react in channel %s: the bot lacks Add Reactions / Read Message History "
                "there (or the emoji %r is unavailable); reactions there are skipped",
                message.channel.id,
                emoji,
            )
        except discord.NotFound:
            log.debug("message %s was deleted before the reaction", message.id)
        except discord.HTTPException as exc:
            self._warn(
                "http", message.channel.id, "reaction failed in %s: %s", message.channel.id, exc
            )

    def _warn(
        self, kind: str, where: int, msg: str, *args: object, level: int = logging.WARNING
    ) -> None:
        """Log a warning at most once per WARN_EVERY_S for the same kind of problem and place."""
        now = time.monotonic()
        if now - self._warned.get((kind, where), -WARN_EVERY_S) >= WARN_EVERY_S:
            self._warned[(kind, where)] = now
            log.log(level, msg, *args)

    def _error(self, kind: str, where: int, msg: str, *args: object) -> None:
        """Like :meth:`_warn`, at ERROR."""
        self._warn(kind, where, msg, *args, level=logging.ERROR)

    # -- deletions ---------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.bot.storage.delete_messages([payload.message_id])

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        await self.bot.storage.delete_messages(sorted(payload.message_ids))


def _chat_message(message: discord.Message) -> ChatMessage:
    return ChatMessage(
        id=message.id,
        guild_id=message.guild.id if message.guild is not None else None,
        channel_id=message.channel.id,
        parent_id=getattr(message.channel, "parent_id", None),  # threads follow their channel
        author_id=message.author.id,
        author_is_bot=message.author.bot,
        webhook=message.webhook_id is not None,
        content=message.content,
    )


async def setup(bot: SentimentBot) -> None:
    await bot.add_cog(SentimentCog(bot))
