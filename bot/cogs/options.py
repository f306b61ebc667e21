"""Slash-command options checked by the bot itself.

A command declares its options' ranges, lengths and choices (``app_commands.Range``,
``Literal``), and Discord's clients keep to them; but Discord does not check what reaches the
bot, and discord.py passes any value through. So every command checks its own declaration
again here before doing anything: a value outside it gets one ephemeral line naming the option
and what it takes, and nothing is stored. Not a cog (no ``setup``): the cogs import it.
"""

from __future__ import annotations

import math
from typing import Any

import discord
from discord import app_commands

from bot.interactions import send

_INTEGER = discord.AppCommandOptionType.integer
_NUMBER = discord.AppCommandOptionType.number
_STRING = discord.AppCommandOptionType.string


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _got(value: object) -> str:
    """`` (got 0)`` for a number; nothing for text, which is not echoed back (it could be
    anything, and the sender knows what they sent)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    return f" (got {_number(value)})"


def option_problem(parameter: app_commands.Parameter, value: Any) -> str | None:
    """Why ``value`` is outside what ``parameter`` declares, or None when it fits."""
    name = f"`{parameter.display_name}`"
    low, high = parameter.min_value, parameter.max_value
    if parameter.choices:
        allowed = [c.value for c in parameter.choices]
        if value not in allowed:
            listed = ", ".join(str(v) for v in allowed)
            return f"{name} must be one of {listed}{_got(value)}."
    if parameter.type in (_INTEGER, _NUMBER):
        integer = parameter.type is _INTEGER
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name} must be a number{_got(value)}."
        if integer and not isinstance(value, int):
            return f"{name} must be a whole number{_got(value)}."
        within = math.isfinite(value) and (low is None or value >= low)
        within = within and (high is None or value <= high)
        if not within:
            what = "a whole number" if integer else "a number"
            if low is not None and high is not None:
                limits = f"from {_number(low)} to {_number(high)}"
            elif low is not None:
                limits = f"of at least {_number(low)}"
            else:
                limits = f"of at most {_number(high)}" if high is not None else "that is finite"
            return f"{name} must be {what} {limits}{_got(value)}."
    elif parameter.type is _STRING and isinstance(value, str):
        short = low is not None and len(value) < low
        if short or (high is not None and len(value) > high):
            low_text = int(low) if low is not None else 0
            limits = f"{low_text} to {int(high)}" if high is not None else f"at least {low_text}"
            return f"{name} must be {limits} characters long (got {len(value)})."
    return None


def options_problem(interaction: discord.Interaction[Any]) -> str | None:
    """The first option of the invoked command that is outside its declaration, or None."""
    command = interaction.command
    if not isinstance(command, app_commands.Command):
        return None
    for parameter in command.parameters:
        value = getattr(interaction.namespace, parameter.display_name, None)
        if value is None:
            continue  # left out: the default applies
        problem = option_problem(parameter, value)
        if problem:
            return problem
    return None


async def refuse(interaction: discord.Interaction[Any], problem: str | None) -> bool:
    """Answer ``problem`` privately and return True, or return False when there is none."""
    if problem is None:
        return False
    await send(interaction, content=problem, ephemeral=True)
    return True


async def refuse_bad_options(interaction: discord.Interaction[Any]) -> bool:
    """Answer the first option out of its declared range (and return True), if any.

    Call first in a command: ``if await refuse_bad_options(interaction): return``.
    """
    return await refuse(interaction, options_problem(interaction))


def band_problem(low: float, high: float) -> str | None:
    """Why ``low``..``high`` is no band, or None: 0 ≤ low ≤ 0.5 ≤ high ≤ 1 and low < high."""
    if not (0.0 <= low <= 0.5 <= high <= 1.0 and low < high):
        return (
            "`low` and `high` must be 0 ≤ low ≤ 0.5 ≤ high ≤ 1 with low below high "
            f"(got low {_number(low)}, high {_number(high)})."
        )
    return None
