"""/sentiment-admin: per-guild configuration, for members with Manage Server."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Literal

import discord
import emoji
from discord import app_commands
from discord.ext import commands

from bot.alerts import (
    DEFAULT_COOLDOWN_MINUTES,
    DEFAULT_MIN_MESSAGES,
    DEFAULT_WINDOW_MINUTES,
    MAX_COOLDOWN_MINUTES,
    MAX_HOURLY_CAP,
    MAX_MIN_MESSAGES,
    MAX_WINDOW_MINUTES,
)
from bot.cogs import alerts as alert_commands
from bot.cogs.options import band_problem, refuse, refuse_bad_options
from bot.decisions import guild_band
from bot.interactions import reply_when_ready, send
from bot.storage import GuildSettings
from model import threshold

if TYPE_CHECKING:
    from bot.client import SentimentBot

Channel = discord.TextChannel | discord.Thread | discord.VoiceChannel


# A custom emoji as Discord writes it in a message: <:name:id>, animated <a:name:id>.
_CUSTOM = re.compile(r"<(a?):(\w{2,32}):(\d{15,20})>", re.ASCII)
MAX_ID = 2**63 - 1


def _not_an_emoji(value: str) -> str:
    return (
        f"{value!r} is not an emoji. Use a Unicode emoji such as 👍 or a custom one of this "
        "server, like <:party:123456789012345678>."
    )


def custom_emoji_id(value: str) -> int | None:
    """The id of a custom emoji ``<:name:id>`` / ``<a:name:id>``, or None for anything else."""
    found = _CUSTOM.fullmatch(value.strip())
    if found is None or int(found[3]) > MAX_ID:
        return None
    return int(found[3])


def emoji_problem(value: str) -> str | None:
    """Why ``value`` cannot be used as a reaction emoji, or None when it can.

    Exactly one emoji: one Unicode emoji (a skin tone, a ZWJ sequence such as 🏳️‍🌈, a flag
    or a keycap counts as one), or one custom emoji (whether it belongs to this server is
    checked by :meth:`AdminCog.emoji` with Discord). Text, ASCII faces like ":)", invisible
    characters, arrows and other symbols that are not emoji, and two emoji together are
    refused: Discord would refuse every reaction with them.
    """
    value = value.strip()
    if custom_emoji_id(value) is not None or emoji.is_emoji(value):
        return None
    return _not_an_emoji(value)


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class AdminCog(commands.GroupCog, name="sentiment-admin"):
    """Configure Sentiment Bot in this server (Manage Server)."""

    def __init__(self, bot: SentimentBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        """Every subcommand needs Manage Server, checked by the bot itself.

        ``default_permissions`` only hides the command by default: a server can open it to
        anyone (Server Settings > Integrations). ``checks.has_permissions`` on a GroupCog class
        is silently ignored by discord.py, hence this cog-wide check.
        """
        if not interaction.permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        return True

    async def _show(
        self,
        interaction: discord.Interaction[Any],
        settings: Awaitable[GuildSettings],
        note: str,
        request: str | None = None,
    ) -> None:
        """Answer with the settings ``settings`` gives (a read, or a change that returns the new
        settings), deferring if the database is slow; if it fails, say that storage is
        unavailable and that ``request`` (the change) was not carried out."""
        await reply_when_ready(
            interaction,
            settings,
            lambda done: {"embed": self._embed(done, note)},
            ephemeral=True,
            storage=self.bot.storage,
            request=request,
        )

    def _embed(self, settings: GuildSettings, note: str) -> discord.Embed:
        band = guild_band(settings, self.bot.classifier.band)
        channels = ", ".join(f"<#{c}>" for c in sorted(settings.auto_channels)) or "none"
        retention = settings.retention_days or self.bot.settings.retention_days
        embed = discord.Embed(
            title="Sentiment Bot settings", description=note, colour=discord.Colour.blurple()
        )
        embed.add_field(name="Automatic reactions in", value=channels, inline=False)
        embed.add_field(
            name="Emoji", value=f"{settings.positive_emoji} / {settings.negative_emoji}"
        )
        whose = "" if settings.band else " (model's)"
        if self.bot.classifier.three_way:
            # The band read as per-class thresholds (see model.Prediction).
            embed.add_field(
                name="Reacts",
                value=f"{settings.positive_emoji} when P(positive) ≥ "
                f"{threshold('positive', band):.2f}, {settings.negative_emoji} when "
                f"P(negative) ≥ {threshold('negative', band):.2f}{whose}",
                inline=False,
            )
        else:
            embed.add_field(name="Neutral band", value=f"{band[0]:.2f} … {band[1]:.2f}{whose}")
        embed.add_field(
            name="Store text of reacted messages", value="on" if settings.store_auto_text else "off"
        )
        embed.add_field(
            name="Retention",
            value=f"{retention} days" if retention else "forever",
        )
        return embed

    @app_commands.command(name="show", description="Show this server's settings")
    async def show(self, interaction: discord.Interaction[Any]) -> None:
        assert interaction.guild_id is not None
        await self._show(interaction, self.bot.storage.guild_settings(interaction.guild_id), "")

    @app_commands.command(name="reactions", description="Switch automatic reactions in a channel")
    @app_commands.describe(channel="The channel", enabled="On or off")
    async def reactions(
        self, interaction: discord.Interaction[Any], channel: Channel, enabled: bool
    ) -> None:
        assert interaction.guild_id is not None
        state = "on" if enabled else "off"
        await self._show(
            interaction,
            self.bot.storage.set_auto_channel(interaction.guild_id, channel.id, enabled),
            f"Automatic reactions are {state} in {channel.mention}.",
            f"switching automatic reactions {state} in {channel.mention}",
        )

    @app_commands.command(name="emoji", description="The reaction emoji for positive and negative")
    @app_commands.describe(
        positive="Emoji for positive messages", negative="Emoji for negative messages"
    )
    async def emoji(
        self,
        interaction: discord.Interaction[Any],
        positive: str | None = None,
        negative: str | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        chosen: dict[str, str] = {}
        for name, value in (("positive", positive), ("negative", negative)):
            if value is None:
                continue
            problem = emoji_problem(value)
            if problem is None and custom_emoji_id(value) is not None:
                problem, value = await self._custom_emoji(interaction, value.strip())
            if await refuse(interaction, problem):
                return
            chosen[f"{name}_emoji"] = value.strip()
        settings = self.bot.storage.update_guild_settings(
            interaction.guild_id,
            positive_emoji=chosen.get("positive_emoji"),
            negative_emoji=chosen.get("negative_emoji"),
        )
        await self._show(interaction, settings, "Emoji updated.", "the emoji change")

    async def _custom_emoji(
        self, interaction: discord.Interaction[Any], value: str
    ) -> tuple[str | None, str]:
        """(why not, the emoji as Discord writes it): a custom emoji must be one of this
        server's; anywhere else the bot cannot react with it. Asked of Discord (the bot does
        not cache the server's emoji)."""
        emoji_id = custom_emoji_id(value)
        guild = interaction.guild
        assert emoji_id is not None and guild is not None
        known = guild.get_emoji(emoji_id)
        if known is not None:
            return None, str(known)
        try:
            fetched = await guild.fetch_emoji(emoji_id)
        except discord.NotFound:
            return (
                f"{value!r} is not an emoji of this server: the bot can only react with "
                "Unicode emoji and this server's own (Server Settings > Emoji).",
                value,
            )
        except discord.HTTPException as exc:
            return f"Discord did not confirm {value!r} ({exc.status}); try again.", value
        return None, str(fetched)

    @app_commands.command(
        name="band",
        description="Override when the bot reacts (leave both out to reset to the model's)",
    )
    @app_commands.describe(
        low="Binary model: silent above this P(positive) (0-0.5). "
        "Three-way: 👎 needs P(negative) ≥ 1 - low",
        high="Binary model: ...and below this (0.5-1). Three-way: 👍 needs P(positive) ≥ high",
    )
    async def band(
        self,
        interaction: discord.Interaction[Any],
        low: app_commands.Range[float, 0.0, 0.5] | None = None,
        high: app_commands.Range[float, 0.5, 1.0] | None = None,
    ) -> None:
        # For a binary model, low..high is the neutral band of P(positive); for a three-way
        # model the same pair reads as thresholds: 👍 when P(positive) >= high, 👎 when
        # P(negative) >= 1 - low (see model.Prediction).
        assert interaction.guild_id is not None
        if await refuse_bad_options(interaction):
            return
        if (low is None) != (high is None):
            await send(
                interaction,
                content="Give both `low` and `high`, or neither to reset to the model's band.",
                ephemeral=True,
            )
            return
        if (
            low is not None
            and high is not None
            and await refuse(interaction, band_problem(low, high))
        ):
            return
        band: tuple[float, float] | Literal["reset"] = (
            (low, high) if low is not None and high is not None else "reset"
        )
        settings = self.bot.storage.update_guild_settings(interaction.guild_id, band=band)
        what = "Reaction thresholds" if self.bot.classifier.three_way else "Neutral band"
        await self._show(interaction, settings, f"{what} updated.", f"the {what.lower()} change")

    @app_commands.command(
        name="store-text", description="Keep the text of messages the bot reacts to"
    )
    @app_commands.describe(enabled="On: text is stored with each automatic prediction")
    async def store_text(self, interaction: discord.Interaction[Any], enabled: bool) -> None:
        assert interaction.guild_id is not None
        state = "on" if enabled else "off"
        settings = self.bot.storage.update_guild_settings(
            interaction.guild_id, store_auto_text=enabled
        )
        await self._show(
            interaction, settings, f"Text storage is {state}.", f"switching text storage {state}"
        )

    @app_commands.command(name="retention", description="Delete predictions older than N days")
    @app_commands.describe(days="Days to keep (0: the bot's default)")
    async def retention(
        self, interaction: discord.Interaction[Any], days: app_commands.Range[int, 0, 36500]
    ) -> None:
        assert interaction.guild_id is not None
        if await refuse_bad_options(interaction):
            return
        settings = self.bot.storage.update_guild_settings(
            interaction.guild_id, retention_days=days if days else "reset"
        )
        await self._show(interaction, settings, "Retention updated.", "the retention change")

    # -- /sentiment-admin alerts ... (carried out in bot/cogs/alerts.py) --------------------

    alerts = app_commands.Group(
        name="alerts", description="Mood alerts: tell moderators when a channel turns sour"
    )

    @alerts.command(name="show", description="Show the alert channel and the watched channels")
    async def alerts_show(self, interaction: discord.Interaction[Any]) -> None:
        await alert_commands.show(self.bot, interaction)

    @alerts.command(name="channel", description="Where mood alerts are posted")
    @app_commands.describe(
        channel="The moderators' channel for alerts (leave out to stop posting alerts)",
        hourly_cap=f"At most this many alerts per hour in this server (1-{MAX_HOURLY_CAP})",
    )
    async def alerts_channel(
        self,
        interaction: discord.Interaction[Any],
        channel: Channel | None = None,
        hourly_cap: app_commands.Range[int, 1, MAX_HOURLY_CAP] | None = None,
    ) -> None:
        await alert_commands.set_channel(self.bot, interaction, channel, hourly_cap)

    @alerts.command(
        name="watch", description="Alert when a channel's negative share crosses a threshold"
    )
    @app_commands.describe(
        channel="The channel to watch",
        threshold="Alert when at least this percent of the messages are negative (1-100)",
        window="Over the last this many minutes (default 10)",
        minimum="...with at least this many messages read in them (default 10)",
        resolve_below="Resolved when the share falls below this percent (default 70% of "
        "the threshold)",
        cooldown="At most one alert per this many minutes for the channel (default 60)",
    )
    async def alerts_watch(
        self,
        interaction: discord.Interaction[Any],
        channel: Channel,
        threshold: app_commands.Range[int, 1, 100],
        window: app_commands.Range[int, 1, MAX_WINDOW_MINUTES] = DEFAULT_WINDOW_MINUTES,
        minimum: app_commands.Range[int, 1, MAX_MIN_MESSAGES] = DEFAULT_MIN_MESSAGES,
        resolve_below: app_commands.Range[int, 0, 99] | None = None,
        cooldown: app_commands.Range[int, 1, MAX_COOLDOWN_MINUTES] = DEFAULT_COOLDOWN_MINUTES,
    ) -> None:
        await alert_commands.watch(
            self.bot,
            interaction,
            channel,
            threshold=threshold,
            window=window,
            minimum=minimum,
            resolve_below=resolve_below,
            cooldown=cooldown,
        )

    @alerts.command(name="unwatch", description="Stop watching a channel")
    @app_commands.describe(channel="The channel")
    async def alerts_unwatch(self, interaction: discord.Interaction[Any], channel: Channel) -> None:
        await alert_commands.unwatch(self.bot, interaction, channel)


async def setup(bot: SentimentBot) -> None:
    await bot.add_cog(AdminCog(bot))
