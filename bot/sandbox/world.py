"""The sandbox's server and how the console names what is in it.

:func:`build_world` creates the one server the sandbox runs in ("Sandbox": #general, #random;
members *you* the owner, *alice*, and *mod* with Manage Messages) on the fake Discord, with
fixed ids so that a sandbox database kept between runs still matches it. :class:`World` is
the pure data the rest of the console resolves names with (``alice``, ``#random``, a mention)
and renders ids back into names. :class:`UsageError` is the console's one kind of user
mistake, raised here first and by every layer above.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import discord

from fakediscord import FakeDiscord, snowflake_at


class UsageError(ValueError):
    """A user mistake: printed as one ``error:`` line, never as a traceback."""


# Fixed ids, so that a sandbox database kept between runs still matches the world.
_EPOCH = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
GUILD_ID = snowflake_at(_EPOCH, 1)
GENERAL_ID = snowflake_at(_EPOCH, 2)
RANDOM_ID = snowflake_at(_EPOCH, 3)
MOD_ROLE_ID = snowflake_at(_EPOCH, 4)
YOU_ID = snowflake_at(_EPOCH, 5)
ALICE_ID = snowflake_at(_EPOCH, 6)
MOD_ID = snowflake_at(_EPOCH, 7)


@dataclass(frozen=True)
class World:
    """Names and ids of the sandbox server (pure data; what the console resolves names with)."""

    guild_id: int
    members: Mapping[str, int]
    channels: Mapping[str, int]
    roles: Mapping[str, int] = field(default_factory=dict)
    others: Mapping[int, str] = field(default_factory=dict)  # e.g. the bot, for rendering

    def user_name(self, user_id: int) -> str:
        names = {v: k for k, v in self.members.items()} | dict(self.others)
        return names.get(user_id, str(user_id))

    def channel_name(self, channel_id: int) -> str:
        return {v: k for k, v in self.channels.items()}.get(channel_id, str(channel_id))

    def role_name(self, role_id: int) -> str:
        return {v: k for k, v in self.roles.items()}.get(role_id, str(role_id))

    def find_member(self, text: str) -> int:
        return _find(text, self.members, "member", r"<@!?(\d+)>", "@")

    def find_channel(self, text: str) -> int:
        return _find(text, self.channels, "channel", r"<#(\d+)>", "#")

    def find_role(self, text: str) -> int:
        return _find(text, self.roles, "role", r"<@&(\d+)>", "@")


def _find(text: str, names: Mapping[str, int], what: str, mention: str, prefix: str) -> int:
    """An id from a name (``alice``, ``@alice``), a mention (``<@123>``) or a known id."""
    match = re.fullmatch(mention, text)
    key = match[1] if match else text.removeprefix(prefix).lower()
    if key.isdigit() and int(key) in names.values():
        return int(key)
    if key in names:
        return names[key]
    known = ", ".join(prefix + n if prefix == "#" else n for n in names)
    raise UsageError(f"no {what} named {text!r}; the {what}s are: {known}")


def build_world(fake: FakeDiscord) -> World:
    """Create the sandbox server on ``fake`` (before the bot connects) and return its names."""
    guild = fake.add_guild(GUILD_ID, "Sandbox", owner_id=YOU_ID)
    guild.add_channel(GENERAL_ID, "general", topic="Automatic reactions are on here")
    guild.add_channel(RANDOM_ID, "random", topic="Automatic reactions are off here")
    guild.add_role(MOD_ROLE_ID, "moderator", discord.Permissions(manage_messages=True).value)
    guild.add_member(YOU_ID, "you")
    guild.add_member(ALICE_ID, "alice")
    guild.add_member(MOD_ID, "mod", roles=[MOD_ROLE_ID])
    return World(
        guild_id=GUILD_ID,
        members={"you": YOU_ID, "alice": ALICE_ID, "mod": MOD_ID},
        channels={"general": GENERAL_ID, "random": RANDOM_ID},
        roles={"moderator": MOD_ROLE_ID, "everyone": GUILD_ID},
        others={fake.bot_user_id: fake.bot_user.name},
    )
