"""The world's objects: users, roles, channels, members, guilds, files and messages, each with
the Discord payload it is sent as."""

from __future__ import annotations

import datetime as dt
import mimetypes
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fakediscord.protocol import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    CHANNEL_DM,
    CHANNEL_GUILD_TEXT,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    JSON,
    MESSAGE_DEFAULT,
)

if TYPE_CHECKING:
    from fakediscord.world import World


def now_iso() -> str:
    """The current time as Discord writes timestamps."""
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass(eq=False)
class FakeUser:
    """A Discord user (a human or a bot)."""

    id: int
    name: str
    bot: bool = False
    global_name: str | None = None

    def to_payload(self) -> JSON:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "public_flags": 0,
            "bot": self.bot,
        }


@dataclass(eq=False)
class FakeRole:
    """A guild role; the @everyone role has ``id == guild.id``."""

    id: int
    name: str
    permissions: int
    position: int = 0

    def to_payload(self) -> JSON:
        return {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }


@dataclass(eq=False)
class FakeChannel:
    """A guild text channel (``type`` 0) or a DM channel (``type`` 1, ``guild_id`` None)."""

    id: int
    name: str
    guild_id: int | None
    type: int = CHANNEL_GUILD_TEXT
    position: int = 0
    topic: str | None = None
    nsfw: bool = False
    recipient_id: int | None = None

    def to_payload(self, users: Mapping[int, FakeUser]) -> JSON:
        """The channel object; ``users`` resolves a DM channel's recipient."""
        if self.type == CHANNEL_DM:
            recipients = [users[self.recipient_id].to_payload()] if self.recipient_id else []
            return {
                "id": str(self.id),
                "type": CHANNEL_DM,
                "last_message_id": None,
                "recipients": recipients,
                "flags": 0,
            }
        return {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "topic": self.topic,
            "nsfw": self.nsfw,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }


@dataclass(eq=False)
class FakeMember:
    """A user's membership of one guild."""

    user: FakeUser
    roles: list[int]
    joined_at: str = field(default_factory=now_iso)
    nick: str | None = None

    def to_payload(self, *, with_user: bool = True, permissions: int | None = None) -> JSON:
        payload: JSON = {
            "roles": [str(r) for r in self.roles],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_user:
            payload["user"] = self.user.to_payload()
        if permissions is not None:
            payload["permissions"] = str(permissions)
        return payload


class FakeGuild:
    """A guild: channels, roles and members.  Build it before the client connects.

    Created by :meth:`FakeDiscord.add_guild`, which also makes the bot a member.
    """

    def __init__(
        self,
        world: World,
        guild_id: int,
        name: str,
        *,
        owner_id: int,
        everyone_permissions: int,
    ) -> None:
        self._world = world
        self.id = guild_id
        self.name = name
        self.owner_id = owner_id
        self.joined_at = now_iso()
        self.channels: dict[int, FakeChannel] = {}
        self.roles: dict[int, FakeRole] = {
            guild_id: FakeRole(guild_id, "@everyone", everyone_permissions, position=0)
        }
        self.members: dict[int, FakeMember] = {}

    def __repr__(self) -> str:
        return f"<FakeGuild id={self.id} name={self.name!r}>"

    @property
    def everyone(self) -> FakeRole:
        """The @everyone role (its permissions are every member's base permissions)."""
        return self.roles[self.id]

    def add_channel(
        self, channel_id: int, name: str, *, topic: str | None = None, nsfw: bool = False
    ) -> FakeChannel:
        """Add a text channel (``type`` 0)."""
        if channel_id in self._world.channels:
            raise ValueError(f"channel id {channel_id} is already used")
        channel = FakeChannel(
            channel_id, name, self.id, position=len(self.channels), topic=topic, nsfw=nsfw
        )
        self.channels[channel_id] = channel
        self._world.channels[channel_id] = channel
        return channel

    def add_role(
        self, role_id: int, name: str, permissions: int, *, position: int | None = None
    ) -> FakeRole:
        """Add a role with a Discord permission bitfield (``discord.Permissions(...).value``).

        ``role_id == guild.id`` replaces the @everyone role's permissions.
        """
        if role_id == self.id:
            self.everyone.permissions = permissions
            return self.everyone
        role = FakeRole(role_id, name, permissions, position=position or len(self.roles))
        self.roles[role_id] = role
        return role

    def add_member(
        self,
        user_id: int,
        name: str,
        *,
        roles: Iterable[int] = (),
        bot: bool = False,
        nick: str | None = None,
    ) -> FakeMember:
        """Add (or replace) a member; the user is created on the fake if it is new."""
        role_ids = list(roles)
        for role_id in role_ids:
            if role_id not in self.roles:
                raise ValueError(
                    f"role {role_id} does not exist in guild {self.id}; add_role first"
                )
        user = self._world.add_user(user_id, name, bot=bot)
        member = FakeMember(user, role_ids, nick=nick)
        self.members[user_id] = member
        return member

    def permissions_of(self, user_id: int) -> int:
        """Guild-level permissions: owner or ADMINISTRATOR = all, else @everyone | roles."""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        member = self.members.get(user_id)
        value = self.everyone.permissions
        if member is not None:
            for role_id in member.roles:
                role = self.roles.get(role_id)
                if role is not None:
                    value |= role.permissions
        if value & ADMINISTRATOR:
            return ALL_PERMISSIONS
        return value

    def to_payload(self, members: Iterable[FakeMember]) -> JSON:
        """A GUILD_CREATE payload with the given members listed."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "features": [],
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500000,
            "roles": [r.to_payload() for r in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "joined_at": self.joined_at,
            "large": False,
            "unavailable": False,
            "member_count": len(self.members),
            "voice_states": [],
            "members": [m.to_payload() for m in members],
            "channels": [c.to_payload(self._world.users) for c in self.channels.values()],
            "threads": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


@dataclass(frozen=True)
class FakeFile:
    """An uploaded file: what a bot attached (bytes kept) or what a user uploads."""

    filename: str
    data: bytes
    content_type: str | None = None
    description: str | None = None

    @property
    def guessed_type(self) -> str:
        """``content_type`` or a guess from the file name (discord.py sends octet-stream)."""
        return (
            self.content_type
            or mimetypes.guess_type(self.filename)[0]
            or "application/octet-stream"
        )


@dataclass(eq=False)
class FakeMessage:
    """A message the fake knows: sent by a user (driven by a test) or by the bot."""

    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content: str = ""
    embeds: list[JSON] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    attachments: list[JSON] = field(default_factory=list)
    files: list[FakeFile] = field(default_factory=list)
    flags: int = 0
    type: int = MESSAGE_DEFAULT
    timestamp: str = field(default_factory=now_iso)
    edited_timestamp: str | None = None
    deleted: bool = False
    reference_id: int | None = None
    interaction_id: int | None = None
    webhook_id: int | None = None
    reactions: dict[str, set[int]] = field(default_factory=dict)
    edits: list[JSON] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """True while this is a "bot is thinking..." placeholder from a deferred interaction."""
        return bool(self.flags & FLAG_LOADING)

    def summary(self) -> str:
        """One line for event descriptions: content, embed titles, files, components."""
        parts: list[str] = []
        if self.content:
            parts.append(
                repr(self.content if len(self.content) <= 80 else self.content[:77] + "...")
            )
        if self.embeds:
            titles = [
                str(e.get("title") or e.get("description") or "embed")[:40] for e in self.embeds
            ]
            parts.append(f"embeds {titles}")
        if self.files:
            parts.append(f"files {[f.filename for f in self.files]}")
        if self.components:
            parts.append(f"{sum(1 for _ in walk_components(self.components))} components")
        if self.ephemeral:
            parts.append("(ephemeral)")
        return " ".join(parts) or "(empty)"


def walk_components(components: Iterable[Any]) -> Iterator[JSON]:
    """Every component, depth first (action rows, sections' accessories, containers...)."""
    for component in components:
        if not isinstance(component, dict):
            continue
        yield component
        yield from walk_components(component.get("components") or [])
        accessory = component.get("accessory")
        if isinstance(accessory, dict):
            yield from walk_components([accessory])
