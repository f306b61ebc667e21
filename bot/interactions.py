"""Answering interactions: defer only when the work may outlast Discord's 3-second window, and
turn service errors into one friendly ephemeral line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import discord

from bot.inference import InferenceError, Overloaded, ServiceClosed
from bot.storage import StorageError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Discord drops an interaction not answered within 3 s; past this much work, defer first.
DEFER_AFTER_S = 2.0


UNKNOWN_WEBHOOK = 10015  # a follow-up after the token's 15 minutes
UNKNOWN_INTERACTION = 10062  # an answer after Discord's 3-second window


def undeliverable(exc: BaseException) -> str | None:
    """Why Discord could not take an answer to an interaction, or None for any other error.

    Sending anything more to that interaction would fail the same way (and discord.py already
    retried a 5xx five times, over 25 s), so the caller logs this once and gives up on it.
    """
    if isinstance(exc, discord.DiscordServerError):
        return f"Discord failed with {exc.status} {exc.response.reason} after discord.py's retries"
    if isinstance(exc, discord.NotFound) and exc.code in (UNKNOWN_INTERACTION, UNKNOWN_WEBHOOK):
        return "the interaction expired before the answer reached Discord"
    return None


def friendly_error(exc: BaseException) -> str | None:
    """The line a user sees for a known failure, or None for a bug."""
    if isinstance(exc, ServiceClosed):
        return "The bot is restarting; try again in a minute."
    if isinstance(exc, Overloaded):
        return "The bot is very busy right now; try again in a moment."
    if isinstance(exc, InferenceError):
        return "The model failed on this text; the error was logged. Try again later."
    if isinstance(exc, StorageError):
        return "The bot's database is unavailable right now; the error was logged."
    return None


async def reply_when_ready(
    interaction: discord.Interaction[Any],
    work: Awaitable[T],
    render: Callable[[T], dict[str, Any]],
    *,
    ephemeral: bool,
) -> None:
    """Await ``work`` and send ``render(result)`` as the reply (kwargs of ``send_message``).

    If the work is not done :data:`DEFER_AFTER_S` after the user sent the command, the
    interaction is deferred (the user sees "thinking...") and the answer comes as a follow-up.
    The time counts from the interaction's creation, not its arrival: on a slow gateway the
    event may arrive a second or more into Discord's 3-second window.
    """
    task = asyncio.ensure_future(work)
    age = (discord.utils.utcnow() - interaction.created_at).total_seconds()
    budget = min(DEFER_AFTER_S, max(0.0, DEFER_AFTER_S - age))  # clocks may disagree: clamp
    done, _ = await asyncio.wait({task}, timeout=budget)
    if not done:
        try:
            await interaction.response.defer(ephemeral=ephemeral, thinking=True)
        except BaseException:
            # The work still finishes (its prediction is logged); nobody awaits it any more.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            raise
    try:
        result = await task
    except Exception as exc:
        message = friendly_error(exc)
        if message is None:
            raise
        log.warning("/%s failed: %s", _name(interaction), exc)
        await send(interaction, content=message, ephemeral=True)
        return
    await send(interaction, ephemeral=ephemeral, **render(result))


async def send(interaction: discord.Interaction[Any], *, ephemeral: bool, **kwargs: Any) -> None:
    """Reply, or follow up when the interaction was already answered or deferred."""
    if interaction.response.is_done():
        await interaction.followup.send(ephemeral=ephemeral, **kwargs)
    else:
        await interaction.response.send_message(ephemeral=ephemeral, **kwargs)


def _name(interaction: discord.Interaction[Any]) -> str:
    command = interaction.command
    return command.qualified_name if command is not None else "interaction"
