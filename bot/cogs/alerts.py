"""The Discord side of mood alerts: ``/sentiment-admin alerts ...`` (its subcommands are
declared on :class:`bot.cogs.admin.AdminCog`, which checks Manage Server, and carried out
here) and the posting of alerts in the alert channel. Not an extension (no ``setup``): the
rules are in bot/alerts.py, the checking in bot/alert_service.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord

from bot.alert_service import AlertPostError
from bot.alerts import (
    AlertNotice,
    Notice,
    WatchRule,
    default_resolve,
    rule_problem,
)
from bot.cogs.options import refuse, refuse_bad_options
from bot.decisions import reacts_in
from bot.interactions import reply_when_ready
from bot.render import alert_embed, alert_settings_embed, resolved_line
from bot.storage.alerts import AlertConfig

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from bot.client import SentimentBot


async def post_notice(bot: discord.Client, notice: Notice) -> int:
    """Post an alert (an embed) or a "resolved" line in the guild's alert channel; the new
    message's id. :class:`AlertPostError`, naming the channel and the fix, when Discord refuses."""
    channel = bot.get_partial_messageable(notice.alert_channel_id, guild_id=notice.guild_id)
    try:
        if isinstance(notice, AlertNotice):
            message = await channel.send(embed=alert_embed(notice))
        else:
            message = await channel.send(content=resolved_line(notice))
    except discord.Forbidden as exc:
        raise AlertPostError(
            f"the bot may not post in the alert channel {notice.alert_channel_id} (it needs "
            "View Channel, Send Messages and Embed Links there), or choose another with "
            f"/sentiment-admin alerts channel ({exc.text or exc.status})"
        ) from exc
    except discord.NotFound as exc:
        raise AlertPostError(
            f"the alert channel {notice.alert_channel_id} no longer exists; choose another "
            "with /sentiment-admin alerts channel"
        ) from exc
    except discord.HTTPException as exc:
        raise AlertPostError(
            f"Discord refused the message ({exc.status}); tried again later"
        ) from exc
    return message.id


async def _answer(
    bot: SentimentBot,
    interaction: discord.Interaction[Any],
    config: Awaitable[AlertConfig],
    note: str,
    request: str | None = None,
) -> None:
    await reply_when_ready(
        interaction,
        config,
        lambda done: {"embed": alert_settings_embed(done, note)},
        ephemeral=True,
        storage=bot.storage,
        request=request,
    )


async def show(bot: SentimentBot, interaction: discord.Interaction[Any]) -> None:
    assert interaction.guild_id is not None
    await _answer(bot, interaction, bot.storage.alert_config(interaction.guild_id), "")


async def set_channel(
    bot: SentimentBot,
    interaction: discord.Interaction[Any],
    channel: discord.abc.GuildChannel | discord.Thread | None,
    hourly_cap: int | None,
) -> None:
    assert interaction.guild_id is not None
    if await refuse_bad_options(interaction):
        return
    if channel is None:
        note = "Alerts are off: none will be posted until an alert channel is set again."
    else:
        note = f"Mood alerts will be posted in {channel.mention}."
    await _answer(
        bot,
        interaction,
        bot.storage.set_alert_channel(
            interaction.guild_id, None if channel is None else channel.id, hourly_cap=hourly_cap
        ),
        note,
        "the alert channel change",
    )


async def watch(
    bot: SentimentBot,
    interaction: discord.Interaction[Any],
    channel: discord.abc.GuildChannel | discord.Thread,
    *,
    threshold: int,
    window: int,
    minimum: int,
    resolve_below: int | None,
    cooldown: int,
) -> None:
    guild_id = interaction.guild_id
    assert guild_id is not None
    if await refuse_bad_options(interaction):
        return
    share = threshold / 100
    resolve = default_resolve(share) if resolve_below is None else resolve_below / 100
    problem = None
    if resolve >= share:
        problem = (
            f"`resolve_below` ({resolve_below}%) must be below `threshold` ({threshold}%): "
            f"leave it out for {default_resolve(share):.0%}."
        )
    if await refuse(interaction, problem):
        return
    rule = WatchRule(share, resolve, window, minimum, cooldown)
    assert rule_problem(rule) is None  # the options' ranges (checked above) keep to the rule's
    settings = await bot.storage.guild_settings(guild_id)
    notes = [f"Watching {channel.mention}."]
    if not reacts_in(settings, channel.id, getattr(channel, "parent_id", None)):
        notes.append(
            "Automatic reactions are off there: the bot reads and logs its messages for the "
            "alert without reacting."
        )
    if (await bot.storage.alert_config(guild_id)).alert_channel_id is None:
        notes.append("No alert channel yet: set one with `/sentiment-admin alerts channel`.")
    await _answer(
        bot,
        interaction,
        bot.storage.watch_channel(guild_id, channel.id, rule),
        " ".join(notes),
        f"watching {channel.mention}",
    )


async def unwatch(
    bot: SentimentBot,
    interaction: discord.Interaction[Any],
    channel: discord.abc.GuildChannel | discord.Thread,
) -> None:
    guild_id = interaction.guild_id
    assert guild_id is not None

    async def work() -> tuple[bool, AlertConfig]:
        return await bot.storage.unwatch_channel(guild_id, channel.id)

    await reply_when_ready(
        interaction,
        work(),
        lambda done: {
            "embed": alert_settings_embed(
                done[1],
                f"No longer watching {channel.mention}."
                if done[0]
                else f"{channel.mention} was not watched; nothing changed.",
            )
        },
        ephemeral=True,
        storage=bot.storage,
        request=f"unwatching {channel.mention}",
    )
