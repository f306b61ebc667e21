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

    If the work is not done within :data:`DEFER_AFTER_S`, the interaction is deferred (the user
    sees "thinking...") and the answer comes as a follow-up.
    """
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=DEFER_AFTER_S)
    if not done:
        await interaction.response.defer(ephemeral=ephemeral, thinking=True)
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
