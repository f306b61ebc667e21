"""Interactions from the user's side: the :class:`FakeInteraction` record (what the bot did to
answer, and the reply the user sees) and the driver that builds and dispatches slash commands,
context-menu commands, button clicks and select choices as a Discord client would."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from fakediscord.activity import Activity
from fakediscord.gateway import Gateway
from fakediscord.model import FakeFile, FakeGuild, FakeMessage, walk_components
from fakediscord.options import build_options
from fakediscord.protocol import (
    CALLBACK_DEFERRED_MESSAGE,
    CALLBACK_DEFERRED_UPDATE,
    INTERACTION_APPLICATION_COMMAND,
    INTERACTION_COMPONENT,
    JSON,
)
from fakediscord.records import Reply
from fakediscord.world import World

Via = Literal["response", "update", "followup", "edit"]


@dataclass(eq=False)
class FakeInteraction:
    """An interaction the fake dispatched, and everything the bot did to answer it.

    ``response`` is the callback body (``{"type": 4|5|6|7|8|9, "data": {...}}``); ``followups``
    are messages from ``POST /webhooks/{app}/{token}``; ``edits`` are the bodies of
    ``PATCH .../messages/@original``.  :meth:`wait_for_reply` gives what the user sees,
    whichever path the bot used.
    """

    activity: Activity = field(repr=False)
    id: int
    token: str
    type: int
    name: str
    guild_id: int | None
    channel_id: int
    user_id: int
    payload: JSON = field(repr=False)
    created_at: float
    target_message_id: int | None = None
    response: JSON | None = None
    response_files: list[FakeFile] = field(default_factory=list)
    responded_at: float | None = None
    original: FakeMessage | None = None
    followups: list[FakeMessage] = field(default_factory=list)
    edits: list[JSON] = field(default_factory=list)
    _visible: tuple[FakeMessage, Via] | None = None

    @property
    def response_type(self) -> int | None:
        """The callback type: 4 message, 5 deferred (thinking), 6 deferred update, 7 update..."""
        return None if self.response is None else int(self.response["type"])

    @property
    def acknowledged(self) -> bool:
        return self.response is not None

    @property
    def deferred(self) -> bool:
        return self.response_type in (CALLBACK_DEFERRED_MESSAGE, CALLBACK_DEFERRED_UPDATE)

    def show(self, message: FakeMessage, via: Via) -> None:
        """``message`` is now the answer the user sees (set by the fake's routes)."""
        self._visible = (message, via)

    def hide(self, message: FakeMessage) -> None:
        """``message`` was deleted: if it was the visible answer, there is none now."""
        if self._visible is not None and self._visible[0] is message:
            self._visible = None

    def reply(self) -> Reply | None:
        """The latest answer the user can see, or None while there is none (or only "thinking")."""
        if self._visible is None:
            return None
        message, via = self._visible
        return Reply(
            content=message.content,
            embeds=list(message.embeds),
            files=list(message.files),
            components=list(message.components),
            ephemeral=message.ephemeral,
            message_id=message.id,
            via=via,
        )

    async def wait_for_response(self, timeout: float = 10.0) -> JSON:
        """Wait for the acknowledgement (the callback body), whatever its type."""
        await self.activity.wait_for(
            lambda: self.response is not None,
            timeout,
            description=lambda: f"an acknowledgement of interaction {self.describe()}",
        )
        assert self.response is not None
        return self.response

    async def wait_for_reply(self, timeout: float = 10.0) -> Reply:
        """Wait until the user can see an answer and return it.

        Covers an immediate reply (callback type 4), an update of a component's message (7),
        and a defer (5 or 6) followed by a follow-up or an edit of the original response.
        Returns the first visible answer; if the bot keeps editing afterwards, poll
        :meth:`reply` with :meth:`FakeDiscord.wait_for`.
        """
        await self.activity.wait_for(
            lambda: self._visible is not None,
            timeout,
            description=lambda: f"a visible reply to interaction {self.describe()}",
        )
        reply = self.reply()
        assert reply is not None
        return reply

    def describe(self) -> str:
        state = (
            "no acknowledgement" if self.response is None else f"callback type {self.response_type}"
        )
        return (
            f"{self.name!r} (id {self.id}, {state}, {len(self.followups)} follow-ups, "
            f"{len(self.edits)} edits)"
        )


class InteractionSettings(Protocol):
    """What the driver reads from the fake's settings."""

    attachment_size_limit: int


class InteractionDriver:
    """Builds INTERACTION_CREATE payloads like a Discord client and dispatches them.

    The public methods are documented on :class:`FakeDiscord`, which delegates to them.
    """

    def __init__(
        self,
        world: World,
        gateway: Gateway,
        activity: Activity,
        settings: InteractionSettings,
    ) -> None:
        self._world = world
        self._gateway = gateway
        self._activity = activity
        self._settings = settings

    async def invoke_slash(
        self,
        name: str,
        options: Mapping[str, Any] | None,
        *,
        user_id: int,
        channel_id: int,
        guild_id: int,
        subcommand: str | None,
    ) -> FakeInteraction:
        guild = self._world.guild(guild_id)
        command = self._world.find_command(name, 1, guild_id)
        self._check_can_use(command, guild, user_id)
        resolved: JSON = {}
        schema: list[JSON] = list(command.get("options") or [])
        path: list[tuple[str, int]] = []
        for part in (subcommand or "").split():
            match = next((o for o in schema if o["name"] == part and o.get("type") in (1, 2)), None)
            if match is None:
                choices = [o["name"] for o in schema if o.get("type") in (1, 2)]
                raise LookupError(f"/{name} has no subcommand {part!r}; it has {choices}")
            path.append((part, int(match["type"])))
            schema = list(match.get("options") or [])
        if any(o.get("type") in (1, 2) for o in schema):
            choices = [o["name"] for o in schema if o.get("type") in (1, 2)]
            raise ValueError(f"/{name} needs a subcommand (subcommand=...): one of {choices}")
        given = {k: v for k, v in (options or {}).items() if v is not None}
        label = f"/{name} {subcommand or ''}".strip()
        built = build_options(self._world, label, schema, given, guild, resolved)
        for part, kind in reversed(path):
            built = [{"name": part, "type": kind, "options": built}]
        data: JSON = {"id": str(command["id"]), "name": name, "type": 1, "options": built}
        if command.get("guild_id"):
            data["guild_id"] = str(command["guild_id"])
        if resolved:
            data["resolved"] = resolved
        label = f"/{name}" + (f" {subcommand}" if subcommand else "")
        return await self._dispatch(
            INTERACTION_APPLICATION_COMMAND, label, data, guild, channel_id, user_id
        )

    async def invoke_message_command(
        self, name: str, *, target_message_id: int, user_id: int, channel_id: int, guild_id: int
    ) -> FakeInteraction:
        world = self._world
        guild = world.guild(guild_id)
        command = world.find_command(name, 3, guild_id)
        self._check_can_use(command, guild, user_id)
        target = world.message_in(channel_id, target_message_id)
        if target.deleted:
            raise ValueError(f"message {target_message_id} is deleted")
        data: JSON = {
            "id": str(command["id"]),
            "name": name,
            "type": 3,
            "target_id": str(target.id),
            "resolved": {"messages": {str(target.id): world.message_payload(target)}},
        }
        if command.get("guild_id"):
            data["guild_id"] = str(command["guild_id"])
        return await self._dispatch(
            INTERACTION_APPLICATION_COMMAND,
            name,
            data,
            guild,
            channel_id,
            user_id,
            target_message_id=target.id,
        )

    async def invoke_user_command(
        self, name: str, *, target_user_id: int, user_id: int, channel_id: int, guild_id: int
    ) -> FakeInteraction:
        world = self._world
        guild = world.guild(guild_id)
        command = world.find_command(name, 2, guild_id)
        self._check_can_use(command, guild, user_id)
        if target_user_id not in world.users:
            raise ValueError(f"unknown user {target_user_id}")
        resolved: JSON = {"users": {str(target_user_id): world.users[target_user_id].to_payload()}}
        member = guild.members.get(target_user_id)
        if member is not None:
            resolved["members"] = {
                str(target_user_id): member.to_payload(
                    with_user=False, permissions=guild.permissions_of(target_user_id)
                )
            }
        data: JSON = {
            "id": str(command["id"]),
            "name": name,
            "type": 2,
            "target_id": str(target_user_id),
            "resolved": resolved,
        }
        if command.get("guild_id"):
            data["guild_id"] = str(command["guild_id"])
        return await self._dispatch(
            INTERACTION_APPLICATION_COMMAND, name, data, guild, channel_id, user_id
        )

    async def use_component(
        self,
        message_id: int,
        custom_id: str,
        component_type: int,
        values: list[str] | None,
        *,
        user_id: int,
        channel_id: int,
        guild_id: int,
    ) -> FakeInteraction:
        """Click a button (component type 2) or pick ``values`` in a select menu (type 3)."""
        guild = self._world.guild(guild_id)
        message = self._world.message_in(channel_id, message_id)
        if message.deleted:
            raise ValueError(f"message {message_id} was deleted")
        found = [c for c in walk_components(message.components) if c.get("type") == component_type]
        component = next((c for c in found if c.get("custom_id") == custom_id), None)
        if component is None:
            have = [c.get("custom_id") for c in found]
            raise LookupError(
                f"message {message_id} has no component type {component_type} with "
                f"custom_id {custom_id!r}; it has {have}"
            )
        if component.get("disabled"):
            raise ValueError(f"component {custom_id!r} on message {message_id} is disabled")
        data: JSON = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = values
        return await self._dispatch(
            INTERACTION_COMPONENT,
            custom_id,
            data,
            guild,
            channel_id,
            user_id,
            message=message,
            target_message_id=message.id,
        )

    def _check_can_use(self, command: JSON, guild: FakeGuild, user_id: int) -> None:
        if user_id not in guild.members:
            raise ValueError(f"user {user_id} is not a member of guild {guild.id}")
        needed = command.get("default_member_permissions")
        if needed is None:
            return
        perms = guild.permissions_of(user_id)
        if int(needed) & ~perms:
            raise PermissionError(
                f"user {user_id} cannot see command {command['name']!r}: it needs permissions "
                f"{int(needed)} and the user has {perms}"
            )

    async def _dispatch(
        self,
        itype: int,
        label: str,
        data: JSON,
        guild: FakeGuild,
        channel_id: int,
        user_id: int,
        *,
        message: FakeMessage | None = None,
        target_message_id: int | None = None,
    ) -> FakeInteraction:
        world = self._world
        channel = world.channel(channel_id)
        if channel.guild_id != guild.id:
            raise ValueError(f"channel {channel_id} is not in guild {guild.id}")
        member = guild.members.get(user_id)
        if member is None:
            raise ValueError(f"user {user_id} is not a member of guild {guild.id}")
        self._gateway.require_session(f"interaction {label}")
        interaction_id = world.next_id()
        token = "fake-interaction." + secrets.token_urlsafe(48)
        bot_perms = guild.permissions_of(world.bot_user_id)
        channel_payload = channel.to_payload(world.users)
        channel_payload["permissions"] = str(bot_perms)
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(world.application_id),
            "type": itype,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "channel_id": str(channel_id),
            "channel": channel_payload,
            "member": member.to_payload(permissions=guild.permissions_of(user_id)),
            "token": token,
            "version": 1,
            "app_permissions": str(bot_perms),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": self._settings.attachment_size_limit,
        }
        if message is not None:
            payload["message"] = world.message_payload(message)
        interaction = FakeInteraction(
            activity=self._activity,
            id=interaction_id,
            token=token,
            type=itype,
            name=label,
            guild_id=guild.id,
            channel_id=channel_id,
            user_id=user_id,
            payload=payload,
            created_at=time.monotonic(),
            target_message_id=target_message_id,
        )
        world.interactions[interaction_id] = interaction
        await self._gateway.dispatch("INTERACTION_CREATE", payload)
        return interaction
