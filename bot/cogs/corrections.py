"""Corrections: the "I meant ..." buttons under every /sentiment and "Analyze sentiment" answer,
and the moderators' "Correct sentiment" message menu for automatic reactions.

The buttons (bot/cogs/correction_buttons.py) are persistent-safe: their custom ids carry all a
press needs, so a press works after a restart as well as before. Who may press is a rule
of bot/decisions.py; what is stored, the correction service's (bot/corrections.py). Every press
is answered ephemerally.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.correction_buttons import FixButton, MeantButton, fix_view
from bot.corrections import NO_REACTION_ROW, Corrected
from bot.decisions import (
    answer_correction_refusal,
    mood_emoji,
    reaction_correction_refusal,
)
from bot.interactions import reply_when_ready, send
from bot.storage import GuildSettings, Mood, StoredPrediction

if TYPE_CHECKING:
    from bot.client import SentimentBot

log = logging.getLogger(__name__)

MENU_NAME: Final = "Correct sentiment"


def meant_line(done: Corrected) -> str:
    """The ephemeral answer to an "I meant ..." press."""
    if not done.stored:
        return done.why_not or "Not stored."
    if done.meant == done.model_mood:
        line = f"Thanks: noted that **{done.meant}** was right."
    else:
        line = (
            f"Thanks: noted that you meant **{done.meant}** (the model read "
            f"**{done.model_mood}**). Corrections like this one teach the model when it is "
            "retrained."
        )
    if not done.kept_text:
        line += " Only your choice is kept, not the text: this server does not store it."
    return line


def fix_line(done: Corrected, reaction_note: str) -> str:
    """The ephemeral answer to a moderator's choice of mood."""
    if not done.stored:
        return done.why_not or "Not stored."
    return (
        f"Recorded: the author meant **{done.meant}** (the model read **{done.model_mood}**). "
        f"{reaction_note}"
    )


class CorrectionsCog(commands.Cog):
    def __init__(self, bot: SentimentBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name=MENU_NAME, callback=self.correct_message)
        self.menu.guild_only = True
        self.menu.default_permissions = discord.Permissions(manage_messages=True)

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(MeantButton, FixButton)
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)
        self.bot.remove_dynamic_items(MeantButton, FixButton)

    # -- "I meant ..." under an answer -------------------------------------------------------

    async def meant_pressed(
        self, interaction: discord.Interaction[Any], button: MeantButton
    ) -> None:
        refusal = answer_correction_refusal(interaction.user.id, button.asker_id)
        if refusal is not None:
            await send(interaction, content=refusal, ephemeral=True)
            return
        with self.bot.handling():
            await reply_when_ready(
                interaction,
                self.bot.corrections.correct_answer(
                    asker_id=button.asker_id, asked_at=button.asked_at, meant=button.mood
                ),
                lambda done: {"content": meant_line(done)},
                ephemeral=True,
                storage=self.bot.storage,
                request="your correction",
            )

    # -- "Correct sentiment" on a message (moderators) ---------------------------------------

    async def correct_message(
        self, interaction: discord.Interaction[Any], message: discord.Message
    ) -> None:
        refusal = reaction_correction_refusal(interaction.permissions.manage_messages)
        if refusal is not None:
            await send(interaction, content=refusal, ephemeral=True)
            return

        async def work() -> tuple[tuple[StoredPrediction, Mood] | None, GuildSettings | None]:
            reading = await self.bot.corrections.reaction_reading(message.id)
            guild_id = interaction.guild_id
            settings = None if guild_id is None else await self.bot.storage.guild_settings(guild_id)
            return reading, settings

        def render(
            result: tuple[tuple[StoredPrediction, Mood] | None, GuildSettings | None],
        ) -> dict[str, Any]:
            reading, settings = result
            if reading is None:
                return {"content": NO_REACTION_ROW}
            _, shown = reading
            emoji = mood_emoji(shown, settings) if settings is not None else None
            reacted = f" and reacted {emoji}" if emoji else " (no reaction)"
            return {
                "content": f"The bot read this message as **{shown}**{reacted}. Which mood did "
                "its author mean? The reaction follows your choice.",
                "view": fix_view(message.id),
            }

        with self.bot.handling():
            await reply_when_ready(
                interaction, work(), render, ephemeral=True, storage=self.bot.storage
            )

    async def fix_pressed(self, interaction: discord.Interaction[Any], button: FixButton) -> None:
        refusal = reaction_correction_refusal(interaction.permissions.manage_messages)
        if refusal is not None:
            await send(interaction, content=refusal, ephemeral=True)
            return

        async def work() -> tuple[Corrected, str]:
            done = await self.bot.corrections.correct_reaction(
                moderator_id=interaction.user.id, message_id=button.message_id, meant=button.mood
            )
            return done, await self._apply(done)

        with self.bot.handling():
            await reply_when_ready(
                interaction,
                work(),
                lambda result: {"content": fix_line(*result)},
                ephemeral=True,
                storage=self.bot.storage,
                request="your correction",
            )

    async def _apply(self, done: Corrected) -> str:
        """Replace the bot's reaction as the correction says; a sentence on what happened."""
        if not done.stored:
            return ""
        if done.remove is None and done.add is None:
            return "The reaction stays as it is."
        assert done.channel_id is not None and done.message_id is not None
        target = self.bot.get_partial_messageable(done.channel_id).get_partial_message(
            done.message_id
        )
        try:
            if done.remove is not None and self.bot.user is not None:
                await target.remove_reaction(
                    discord.PartialEmoji.from_str(done.remove), self.bot.user
                )
            if done.add is not None:
                await target.add_reaction(discord.PartialEmoji.from_str(done.add))
        except discord.NotFound:
            return "The message is gone, so its reaction is too."
        except discord.HTTPException as exc:  # Forbidden included
            log.warning("could not change the reaction on message %s: %s", done.message_id, exc)
            return (
                f"The reaction could not be changed ({exc.status}: the bot needs Add Reactions "
                "and Read Message History in that channel)."
            )
        if done.add is None:
            return f"Reaction {done.remove} removed (a neutral message gets none)."
        if done.remove is None:
            return f"Reacted {done.add}."
        return f"Reaction changed: {done.remove} → {done.add}."


async def setup(bot: SentimentBot) -> None:
    await bot.add_cog(CorrectionsCog(bot))
