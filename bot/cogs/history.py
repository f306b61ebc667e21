"""History and privacy: /history, /channel-history, /mood, /forget-me, /opt-in."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.charts import mood_chart
from bot.cogs.options import refuse_bad_options
from bot.interactions import (
    reply_when_ready,
    send,
    storage_failure,
    unavailable_message,
)
from bot.render import history_embed, plural, summary_embed
from bot.storage import HistoryFilter, Storage, StorageError

if TYPE_CHECKING:
    from bot.client import SentimentBot

log = logging.getLogger(__name__)

PAGE_SIZE = 10
READ_YOUR_WRITES_S = 2.0  # how long a query waits for just-made predictions to be written
PAGER_TIMEOUT_S = 600.0
PAGE_TURN_S = 2.5  # a page turn is answered in place (no defer): within Discord's 3 s
MoodChoice = Literal["positive", "negative", "neutral"]
Channel = discord.TextChannel | discord.Thread | discord.VoiceChannel


def can_moderate(interaction: discord.Interaction[Any], channel: Channel | None = None) -> bool:
    """Manage Messages or Manage Server where it matters: in ``channel`` when the query is about
    one channel, else server-wide (from roles). Not the permissions in the channel the command
    was typed in: a moderator of #help is no moderator of #staff."""
    user = interaction.user
    if not isinstance(user, discord.Member):
        return False
    perms = channel.permissions_for(user) if channel is not None else user.guild_permissions
    return perms.manage_messages or perms.manage_guild


def since_days(days: int | None) -> datetime | None:
    return datetime.now(UTC) - timedelta(days=days) if days else None


class HistoryPager(discord.ui.View):
    """Previous / next buttons over a history query; only the person who asked can turn pages."""

    def __init__(
        self, storage: Storage, flt: HistoryFilter, *, title: str, total: int, owner_id: int
    ) -> None:
        super().__init__(timeout=PAGER_TIMEOUT_S)
        self.storage = storage
        self.flt = flt
        self.title = title
        self.total = total
        self.owner_id = owner_id
        self.page = 1
        self.pages = max(1, math.ceil(total / PAGE_SIZE))
        self._sync_buttons()

    async def render(self) -> discord.Embed:
        rows = await self.storage.history(
            self.flt, limit=PAGE_SIZE, offset=(self.page - 1) * PAGE_SIZE
        )
        return history_embed(
            rows,
            title=self.title,
            page=self.page,
            pages=self.pages,
            total=self.total,
            show_user=self.flt.user_id is None,
        )

    def _sync_buttons(self) -> None:
        self.previous.disabled = self.page <= 1
        self.next.disabled = self.page >= self.pages

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        # Unanswered, the click would show "This interaction failed": say why instead.
        await send(
            interaction,
            content="Only the person who asked for this history can turn its pages. "
            "Run `/history` to see your own.",
            ephemeral=True,
        )
        return False

    async def _turn(self, interaction: discord.Interaction[Any], step: int) -> None:
        page = self.page
        self.page = min(self.pages, max(1, self.page + step))
        try:
            embed = await asyncio.wait_for(self.render(), PAGE_TURN_S)
        except (sqlite3.Error, StorageError, TimeoutError) as exc:
            self.page = page
            reason = storage_failure(exc, self.storage) or str(exc)
            log.warning("history page: storage unavailable (%s)", str(exc) or reason)
            await send(interaction, content=unavailable_message(reason, None), ephemeral=True)
            return
        self._sync_buttons()
        await interaction.response.edit_message(embed=embed, view=self)

    @discord.ui.button(label="◀ Newer", style=discord.ButtonStyle.secondary)
    async def previous(
        self, interaction: discord.Interaction[Any], button: discord.ui.Button[HistoryPager]
    ) -> None:
        await self._turn(interaction, -1)

    @discord.ui.button(label="Older ▶", style=discord.ButtonStyle.secondary)
    async def next(
        self, interaction: discord.Interaction[Any], button: discord.ui.Button[HistoryPager]
    ) -> None:
        await self._turn(interaction, +1)


class HistoryCog(commands.Cog):
    def __init__(self, bot: SentimentBot) -> None:
        self.bot = bot

    async def _read_your_writes(self) -> None:
        """Land predictions still in the writer's queue (made a moment ago) before a query, so
        /sentiment followed by /history shows it; on a failing database, query what is there."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.bot.storage.flush(), READ_YOUR_WRITES_S)

    async def _send_history(
        self, interaction: discord.Interaction[Any], flt: HistoryFilter, title: str
    ) -> None:
        async def work() -> dict[str, Any]:
            await self._read_your_writes()
            total = await self.bot.storage.count(flt)
            pager = HistoryPager(
                self.bot.storage, flt, title=title, total=total, owner_id=interaction.user.id
            )
            embed = await pager.render()
            return {"embed": embed, "view": pager} if total > PAGE_SIZE else {"embed": embed}

        await reply_when_ready(
            interaction,
            work(),
            lambda kwargs: kwargs,
            ephemeral=True,
            storage=self.bot.storage,
        )

    @app_commands.command(name="history", description="Your sentiment history in this server")
    @app_commands.guild_only()
    @app_commands.describe(
        member="Someone else's history (needs Manage Messages or Manage Server)",
        channel="Only this channel",
        mood="Only this mood",
        days="Only the last N days",
    )
    async def history(
        self,
        interaction: discord.Interaction[Any],
        member: discord.Member | None = None,
        channel: Channel | None = None,
        mood: MoodChoice | None = None,
        days: app_commands.Range[int, 1, 3650] | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        if await refuse_bad_options(interaction):
            return
        target = member or interaction.user
        if target.id != interaction.user.id and not can_moderate(interaction, channel):
            await send(
                interaction,
                content="Only members with Manage Messages or Manage Server can see someone "
                "else's history. Leave out `member` to see your own.",
                ephemeral=True,
            )
            return
        flt = HistoryFilter(
            guild_id=interaction.guild_id,
            user_id=target.id,
            channel_id=channel.id if channel else None,
            mood=mood,
            since=since_days(days),
            # Private predictions (/sentiment private:True, the context menu) only for their
            # requester; never the words of a member who opted out.
            audience="requester" if target.id == interaction.user.id else "others",
        )
        whose = "Your" if target.id == interaction.user.id else f"{target.display_name}'s"
        await self._send_history(interaction, flt, f"{whose} sentiment history")

    @app_commands.command(
        name="channel-history", description="Everyone's predictions in a channel (moderators)"
    )
    @app_commands.guild_only()
    @app_commands.describe(
        channel="The channel", mood="Only this mood", days="Only the last N days"
    )
    async def channel_history(
        self,
        interaction: discord.Interaction[Any],
        channel: Channel,
        mood: MoodChoice | None = None,
        days: app_commands.Range[int, 1, 3650] | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        if await refuse_bad_options(interaction):
            return
        if not can_moderate(interaction, channel):
            await send(
                interaction,
                content="Only members with Manage Messages or Manage Server can see a "
                "channel's history. `/history` shows your own.",
                ephemeral=True,
            )
            return
        flt = HistoryFilter(
            guild_id=interaction.guild_id,
            channel_id=channel.id,
            mood=mood,
            since=since_days(days),
            audience="others",  # no private prediction, no opted-out member's words
        )
        await self._send_history(interaction, flt, f"Sentiment history of #{channel.name}")

    @app_commands.command(name="mood", description="The mood of this server: counts and a chart")
    @app_commands.guild_only()
    @app_commands.describe(
        days="Period in days (default 30)",
        channel="Only this channel",
        private="Only you see the answer",
    )
    async def mood(
        self,
        interaction: discord.Interaction[Any],
        days: app_commands.Range[int, 1, 3650] = 30,
        channel: Channel | None = None,
        private: bool = False,
    ) -> None:
        assert interaction.guild_id is not None
        if await refuse_bad_options(interaction):
            return
        flt = HistoryFilter(
            guild_id=interaction.guild_id,
            channel_id=channel.id if channel else None,
            since=since_days(days),
            audience="others",  # the server's mood (maybe shown to all): no private prediction
        )
        bucket: Literal["hour", "day", "week"] = (
            "hour" if days <= 2 else "day" if days <= 90 else "week"
        )
        where = (
            f"#{channel.name}"
            if channel
            else (interaction.guild.name if interaction.guild else "this server")
        )
        title = f"Mood in {where}, last {days} days"

        async def work() -> dict[str, Any]:
            await self._read_your_writes()
            counts = await self.bot.storage.mood_counts(flt)
            series = await self.bot.storage.mood_over_time(flt, bucket=bucket)
            # matplotlib is slow and blocking: render in a worker thread, never on the loop
            png = await asyncio.to_thread(mood_chart, series, title=title, bucket=bucket)
            embed = summary_embed(counts, title=title)
            embed.set_image(url="attachment://mood.png")
            return {"embed": embed, "file": discord.File(io.BytesIO(png), filename="mood.png")}

        await reply_when_ready(
            interaction,
            work(),
            lambda kwargs: kwargs,
            ephemeral=private,
            storage=self.bot.storage,
        )

    @app_commands.command(
        name="forget-me", description="Erase all your predictions and stop analysing your messages"
    )
    async def forget_me(self, interaction: discord.Interaction[Any]) -> None:
        async def work() -> int:
            return await self.bot.storage.forget_user(interaction.user.id)

        await reply_when_ready(
            interaction,
            work(),
            lambda removed: {
                "content": f"Done: erased {plural(removed, 'prediction')} about you. The bot "
                "will no longer react to or log your messages; `/opt-in` undoes the opt-out."
            },
            ephemeral=True,
            storage=self.bot.storage,
            request="your request to forget you (erase your predictions and opt you out)",
        )

    @app_commands.command(name="opt-in", description="Let the bot analyse your messages again")
    async def opt_in(self, interaction: discord.Interaction[Any]) -> None:
        await reply_when_ready(
            interaction,
            self.bot.storage.set_opt_out(interaction.user.id, False),
            lambda _: {"content": "The bot will react to and log your messages again."},
            ephemeral=True,
            storage=self.bot.storage,
            request="your request to opt back in",
        )


async def setup(bot: SentimentBot) -> None:
    await bot.add_cog(HistoryCog(bot))
