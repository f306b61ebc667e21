"""Answering interactions: defer only when the work may outlast Discord's 3-second window, and
turn service errors into one friendly ephemeral line."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import discord

from bot.inference import InferenceError, Overloaded, ServiceClosed
from bot.storage import Storage, StorageError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Discord drops an interaction not answered within 3 s; past this much work, defer first.
DEFER_AFTER_S = 2.0
# How long a command waits for the database before it answers that storage is unavailable
# (after deferring: the answer comes as a follow-up). A little over SQLite's busy_timeout (5 s),
# so that a lock is reported as "database is locked" rather than as a timeout.
STORAGE_WAIT_S = 6.0


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


def storage_failure(exc: BaseException, storage: Storage | None = None) -> str | None:
    """Why storage failed, in a few words for the user; None when ``exc`` is no storage failure.

    SQLite's own words for a transient failure ("database is locked", "database or disk is
    full"); a timeout names what the writer is failing with, if it knows.
    """
    if isinstance(exc, sqlite3.Error):
        return str(exc) or type(exc).__name__
    if isinstance(exc, StorageError):
        return "the database is broken or closed; the operator has been told"
    if isinstance(exc, TimeoutError):
        failure = storage.failure if storage is not None else None
        return failure or "the database did not answer in time"
    return None


def unavailable_message(reason: str, request: str | None, *, queued: bool = False) -> str:
    """The line a user sees when storage failed: what failed and what became of the request."""
    message = f"Storage is unavailable right now ({reason})"
    if request is None:
        return f"{message}; try again later."
    if queued:
        return f"{message}: {request} is queued and will be carried out when it recovers."
    return f"{message}: {request} was not carried out; try again later."


async def reply_when_ready(
    interaction: discord.Interaction[Any],
    work: Awaitable[T],
    render: Callable[[T], dict[str, Any]],
    *,
    ephemeral: bool,
    storage: Storage | None = None,
    request: str | None = None,
    storage_wait_s: float = STORAGE_WAIT_S,
) -> None:
    """Await ``work`` and send ``render(result)`` as the reply (kwargs of ``send_message``).

    If the work is not done :data:`DEFER_AFTER_S` after the user sent the command, the
    interaction is deferred (the user sees "thinking...") and the answer comes as a follow-up.
    The time counts from the interaction's creation, not its arrival: on a slow gateway the
    event may arrive a second or more into Discord's 3-second window.

    With ``storage`` (work that uses the database), the work gets ``storage_wait_s`` seconds
    (default :data:`STORAGE_WAIT_S`; longer for work that reads many rows): past
    that it is cancelled, and a storage failure (locked, full, broken, or that timeout) is
    answered with :func:`unavailable_message`, saying that ``request`` (e.g. "your request to
    forget you"; None for a read) was not carried out, and logged as one WARNING line.
    """
    if storage is not None:
        work = asyncio.wait_for(work, storage_wait_s)
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
        reason = storage_failure(exc, storage) if storage is not None else None
        if reason is not None:
            log.warning(
                "/%s: storage unavailable (%s)%s",
                command_name(interaction),
                str(exc) or reason,
                f"; {request} was not carried out" if request else "",
            )
            content = unavailable_message(reason, request)
            await send(interaction, content=content, ephemeral=True)
            return
        message = friendly_error(exc)
        if message is None:
            raise
        log.warning("/%s failed: %s", command_name(interaction), exc)
        await send(interaction, content=message, ephemeral=True)
        return
    await send(interaction, ephemeral=ephemeral, **render(result))


async def send(interaction: discord.Interaction[Any], *, ephemeral: bool, **kwargs: Any) -> None:
    """Reply, or follow up when the interaction was already answered or deferred."""
    if interaction.response.is_done():
        await interaction.followup.send(ephemeral=ephemeral, **kwargs)
    else:
        await interaction.response.send_message(ephemeral=ephemeral, **kwargs)


def command_name(interaction: discord.Interaction[Any]) -> str:
    """The command's name as people type it (``sentiment-admin reactions``), for log lines."""
    command = interaction.command
    return command.qualified_name if command is not None else "interaction"
