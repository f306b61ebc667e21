"""A fake Discord (REST API + gateway websocket) for driving the real discord.py client offline.

:class:`FakeDiscord` is a small aiohttp server on ``127.0.0.1`` that speaks enough of Discord's
HTTP API (v10) and gateway protocol for the *real, unpatched* discord.py client to log in,
connect, receive events and answer them over real sockets.  It keeps a tiny world model
(guilds, channels, roles, members, messages) and records everything the bot does (HTTP
requests, reactions, messages, interaction replies, synced commands) so that tests, and the
interactive sandbox console, can drive the bot like a user and observe what a user would see.

Typical use in a test::

    async with FakeDiscord() as fake:
        guild = fake.add_guild(1, "Test", owner_id=10)
        guild.add_channel(100, "general")
        guild.add_member(10, "alice")
        async with running_client(make_bot(), fake):
            message_id = await fake.send_message(100, 10, "what a good day")
            await fake.wait_for(lambda: len(fake.reactions) == 1)
            interaction = await fake.invoke_slash("echo", {"text": "hi"}, user_id=10,
                                                 channel_id=100, guild_id=1)
            reply = await interaction.wait_for_reply()

Pointing discord.py at the fake is a global patch of ``discord.http.Route.BASE`` and
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (see :func:`point_discord_py_at`);
:func:`running_client` does it for the lifetime of one client and also surfaces a crashed
client task, error logs from discord.py and requests the fake could not answer.

What behaves like Discord (because bots get these wrong in production):

* JSON replies carry exactly ``Content-Type: application/json``; uploads are parsed from
  ``multipart/form-data`` (``payload_json`` + ``files[n]``) and the bytes are kept.
* The gateway honours ``compress=zlib-stream`` (one ``zlib.compressobj`` per connection,
  ``Z_SYNC_FLUSH``, binary frames) and ``zstd-stream`` when a zstd module is importable, and
  works uncompressed (text frames).  Sequence numbers, heartbeats, RESUME with replay of missed
  events, INVALID_SESSION, REQUEST_GUILD_MEMBERS chunking and close codes are implemented.
* Intents matter: without ``message_content`` the bot gets empty ``content`` (unless it is
  mentioned); without ``guild_messages`` it gets no MESSAGE_CREATE; privileged intents not
  enabled on the fake "developer portal" close the gateway with 4014.
* Permissions are computed from @everyone + roles (owner / ADMINISTRATOR = all) and enforced on
  the endpoints a sentiment bot uses (send, react, read history, delete, attach files).
* Interactions must be acknowledged within :attr:`FakeDiscord.interaction_timeout` (3 s, like
  Discord) or the callback gets ``404 Unknown interaction``; a second acknowledgement gets 400.
  The first follow-up after a "thinking" defer replaces the loading message, as on Discord.
* Messages the bot sends are echoed back as MESSAGE_CREATE / MESSAGE_UPDATE / MESSAGE_DELETE,
  so a bot that does not ignore its own messages is caught.
* :meth:`FakeDiscord.fail_next` injects 429 (with Discord's rate-limit body and headers,
  including the ``Via`` header discord.py checks to tell a Discord 429 from a Cloudflare ban),
  403, 404 and 5xx answers.  :meth:`FakeDiscord.drop_gateway` closes the websocket with
  any code (4007 and 4009 end the session, so the RESUME is refused, as on Discord), and
  :attr:`FakeDiscord.gateway_delay` makes the gateway slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib
import json
import logging
import mimetypes
import re
import secrets
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import unquote

import aiohttp
import discord
import yarl
from aiohttp import web
from discord.gateway import DiscordWebSocket
from discord.http import Route

__all__ = [
    "ALL_PERMISSIONS",
    "DEFAULT_APPLICATION_ID",
    "DEFAULT_BOT_USER_ID",
    "DEFAULT_EVERYONE_PERMISSIONS",
    "DEFAULT_TOKEN",
    "ClientDiedError",
    "FakeChannel",
    "FakeDiscord",
    "FakeEvent",
    "FakeFile",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "Fault",
    "GatewayConnectionInfo",
    "Reaction",
    "RecordedRequest",
    "Reply",
    "RunningClient",
    "SnowflakeGenerator",
    "StrictModeError",
    "point_discord_py_at",
    "running_client",
    "snowflake_at",
]

_log = logging.getLogger(__name__)

JSON = dict[str, Any]

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

API_VERSION: Final = 10
DISCORD_EPOCH_MS: Final = 1_420_070_400_000


def snowflake_at(when: dt.datetime, increment: int = 0) -> int:
    """A Discord snowflake for ``when`` (timezone-aware), so ``created_at`` is meaningful."""
    ms = int(when.timestamp() * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (1 << 17) | (increment & 0xFFF)


DEFAULT_APPLICATION_ID: Final = snowflake_at(dt.datetime(2024, 1, 2, tzinfo=dt.UTC), 1)
DEFAULT_BOT_USER_ID: Final = DEFAULT_APPLICATION_ID  # like Discord: the bot user id == app id
DEFAULT_TOKEN: Final = "fake-token.for-the-fake-discord"

ALL_PERMISSIONS: Final[int] = discord.Permissions.all().value
ADMINISTRATOR: Final[int] = discord.Permissions(administrator=True).value
DEFAULT_EVERYONE_PERMISSIONS: Final[int] = discord.Permissions(
    create_instant_invite=True,
    add_reactions=True,
    view_channel=True,
    send_messages=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    use_external_emojis=True,
    connect=True,
    speak=True,
    change_nickname=True,
    use_application_commands=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    use_external_stickers=True,
).value
_P = discord.Permissions
VIEW_CHANNEL: Final = _P(view_channel=True).value
SEND_MESSAGES: Final = _P(send_messages=True).value
ADD_REACTIONS: Final = _P(add_reactions=True).value
READ_MESSAGE_HISTORY: Final = _P(read_message_history=True).value
MANAGE_MESSAGES: Final = _P(manage_messages=True).value
ATTACH_FILES: Final = _P(attach_files=True).value

INTENT_GUILDS: Final = 1 << 0
INTENT_GUILD_MEMBERS: Final = 1 << 1
INTENT_GUILD_PRESENCES: Final = 1 << 8
INTENT_GUILD_MESSAGES: Final = 1 << 9
INTENT_DIRECT_MESSAGES: Final = 1 << 12
INTENT_MESSAGE_CONTENT: Final = 1 << 15
PRIVILEGED_INTENTS: Final = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

# Gateway opcodes.
OP_DISPATCH: Final = 0
OP_HEARTBEAT: Final = 1
OP_IDENTIFY: Final = 2
OP_PRESENCE: Final = 3
OP_VOICE_STATE: Final = 4
OP_RESUME: Final = 6
OP_RECONNECT: Final = 7
OP_REQUEST_MEMBERS: Final = 8
OP_INVALID_SESSION: Final = 9
OP_HELLO: Final = 10
OP_HEARTBEAT_ACK: Final = 11

# Interaction types and callback types.
INTERACTION_APPLICATION_COMMAND: Final = 2
INTERACTION_COMPONENT: Final = 3
CALLBACK_MESSAGE: Final = 4
CALLBACK_DEFERRED_MESSAGE: Final = 5
CALLBACK_DEFERRED_UPDATE: Final = 6
CALLBACK_UPDATE_MESSAGE: Final = 7
CALLBACK_AUTOCOMPLETE: Final = 8
CALLBACK_MODAL: Final = 9

FLAG_EPHEMERAL: Final = 1 << 6
FLAG_LOADING: Final = 1 << 7

MESSAGE_DEFAULT: Final = 0
MESSAGE_REPLY: Final = 19
MESSAGE_CHAT_INPUT_COMMAND: Final = 20
MESSAGE_CONTEXT_MENU_COMMAND: Final = 23

CHANNEL_GUILD_TEXT: Final = 0
CHANNEL_DM: Final = 1

_DEFAULT_ERRORS: Final[dict[int, tuple[int, str]]] = {
    400: (50035, "Invalid Form Body"),
    401: (0, "401: Unauthorized"),
    403: (50013, "Missing Permissions"),
    404: (10008, "Unknown Message"),
    405: (0, "405: Method Not Allowed"),
    413: (40005, "Request entity too large"),
}

_USER_MENTION = re.compile(r"<@!?(\d{15,20})>")
_ROLE_MENTION = re.compile(r"<@&(\d{15,20})>")


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON reply with ``Content-Type`` exactly ``application/json`` (no charset).

    discord.py compares the header with ``==``; ``web.json_response`` would append
    ``; charset=utf-8`` and discord.py would then treat the body as text.
    """
    all_headers = {"Content-Type": "application/json"}
    if headers:
        all_headers.update(headers)
    return web.Response(body=json.dumps(data).encode(), status=status, headers=all_headers)


def _no_content() -> web.Response:
    return web.Response(status=204)


# --------------------------------------------------------------------------------------------
# Snowflakes
# --------------------------------------------------------------------------------------------


class SnowflakeGenerator:
    """Monotonic, time-based snowflakes (so ``discord.utils.snowflake_time`` works)."""

    def __init__(self, worker_id: int = 2) -> None:
        self._worker = worker_id & 0x1F
        self._last_ms = 0
        self._increment = 0

    def __call__(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        if ms <= self._last_ms:
            ms = self._last_ms
            self._increment += 1
            if self._increment > 0xFFF:
                ms += 1
                self._increment = 0
        else:
            self._increment = 0
        self._last_ms = ms
        return (ms << 22) | (self._worker << 17) | self._increment


# --------------------------------------------------------------------------------------------
# World model
# --------------------------------------------------------------------------------------------


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

    def to_payload(self, fake: FakeDiscord) -> JSON:
        if self.type == CHANNEL_DM:
            recipients = [fake.users[self.recipient_id].to_payload()] if self.recipient_id else []
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
    joined_at: str = field(default_factory=_now_iso)
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
        fake: FakeDiscord,
        guild_id: int,
        name: str,
        *,
        owner_id: int,
        everyone_permissions: int,
    ) -> None:
        self._fake = fake
        self.id = guild_id
        self.name = name
        self.owner_id = owner_id
        self.joined_at = _now_iso()
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
        if channel_id in self._fake.channels:
            raise ValueError(f"channel id {channel_id} is already used")
        channel = FakeChannel(
            channel_id, name, self.id, position=len(self.channels), topic=topic, nsfw=nsfw
        )
        self.channels[channel_id] = channel
        self._fake.channels[channel_id] = channel
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
        user = self._fake.users.get(user_id)
        if user is None:
            user = FakeUser(user_id, name, bot=bot, global_name=None if bot else name)
            self._fake.users[user_id] = user
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
            "channels": [c.to_payload(self._fake) for c in self.channels.values()],
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
    timestamp: str = field(default_factory=_now_iso)
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


@dataclass
class RecordedRequest:
    """One HTTP request the client made (``path`` is decoded and relative to ``/api/v10``).

    ``json`` is the JSON body (for multipart, the ``payload_json`` part); ``status`` is the
    status the fake answered with (None while the request is being handled).
    """

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[FakeFile]
    time: float
    headers: dict[str, str] = field(repr=False)
    status: int | None = None


@dataclass
class Reaction:
    """A reaction the bot added with ``PUT .../reactions/{emoji}/@me``."""

    channel_id: int
    message_id: int
    emoji: str
    user_id: int
    time: float
    removed_at: float | None = None

    @property
    def active(self) -> bool:
        return self.removed_at is None


@dataclass(frozen=True)
class Reply:
    """What a user sees as the answer to an interaction (see :meth:`FakeInteraction.reply`)."""

    content: str
    embeds: list[JSON]
    files: list[FakeFile]
    components: list[JSON]
    ephemeral: bool
    message_id: int
    via: Literal["response", "update", "followup", "edit"]

    @property
    def text(self) -> str:
        """Content plus embed titles, descriptions, field names/values and footers, one per line."""
        parts = [self.content] if self.content else []
        for embed in self.embeds:
            for key in ("title", "description"):
                if embed.get(key):
                    parts.append(str(embed[key]))
            for item in embed.get("fields", []):
                parts.append(f"{item.get('name', '')}: {item.get('value', '')}")
            footer = embed.get("footer") or {}
            if footer.get("text"):
                parts.append(str(footer["text"]))
        return "\n".join(parts)


@dataclass(frozen=True)
class FakeEvent:
    """Something observable happened; passed to listeners added with ``add_listener``.

    ``kind`` is one of: ``gateway`` (connect/identify/resume/disconnect), ``commands_synced``,
    ``message_sent``, ``message_edited``, ``message_deleted``, ``reaction_added``,
    ``reaction_removed``, ``interaction_response``, ``interaction_followup``,
    ``interaction_edit``, ``typing``, ``unhandled_request``.
    """

    kind: str
    description: str
    data: JSON = field(default_factory=dict)


@dataclass
class Fault:
    """An injected HTTP failure (see :meth:`FakeDiscord.fail_next`)."""

    method: str
    path_regex: re.Pattern[str]
    status: int
    remaining: int
    retry_after: float | None = None
    json: JSON | None = None
    is_global: bool = False
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0
            and self.method in ("*", method)
            and self.path_regex.search(path) is not None
        )


class ClientDiedError(RuntimeError):
    """The discord.py client task ended with an exception (it is the ``__cause__``)."""


class StrictModeError(AssertionError):
    """A strict :func:`running_client` saw a problem while the client ran.

    Either discord.py logged an ERROR (that is how it reports an exception in an event
    handler, an app command or a view callback: it logs and carries on, so without this a
    test would only time out), or the client made a request the fake has no route for, or
    the fake itself failed.  Raised by the fake's waits as soon as it happens, and on exit.
    """


class _ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message


def _not_found(code: int = 10008, message: str = "Unknown Message") -> _ApiError:
    return _ApiError(404, code, message)


def _missing_permissions() -> _ApiError:
    return _ApiError(403, 50013, "Missing Permissions")


# --------------------------------------------------------------------------------------------
# Interactions
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class FakeInteraction:
    """An interaction the fake dispatched, and everything the bot did to answer it.

    ``response`` is the callback body (``{"type": 4|5|6|7|8|9, "data": {...}}``); ``followups``
    are messages from ``POST /webhooks/{app}/{token}``; ``edits`` are the bodies of
    ``PATCH .../messages/@original``.  :meth:`wait_for_reply` gives what the user sees,
    whichever path the bot used.
    """

    fake: FakeDiscord = field(repr=False)
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
    _visible: tuple[FakeMessage, Literal["response", "update", "followup", "edit"]] | None = None

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
        await self.fake.wait_for(
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
        await self.fake.wait_for(
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


# --------------------------------------------------------------------------------------------
# Gateway plumbing
# --------------------------------------------------------------------------------------------


class _ZstdStream:
    """Streaming zstd compression compatible with discord.py's zstd-stream decompressor."""

    def __init__(self) -> None:
        self._flush: Callable[[bytes], bytes]
        try:
            zstandard: Any = importlib.import_module("zstandard")
        except ImportError:
            stdlib: Any = importlib.import_module("compression.zstd")  # Python 3.14+
            compressor = stdlib.ZstdCompressor()
            block = stdlib.ZstdCompressor.FLUSH_BLOCK
            self._flush = lambda data: bytes(compressor.compress(data, mode=block))
        else:
            obj = zstandard.ZstdCompressor().compressobj()
            flush_mode = zstandard.COMPRESSOBJ_FLUSH_BLOCK
            self._flush = lambda data: bytes(obj.compress(data) + obj.flush(flush_mode))

    def compress(self, data: bytes) -> bytes:
        return self._flush(data)


def _zstd_available() -> bool:
    for name in ("zstandard", "compression.zstd"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
            return True
    return False


class _GatewayConnection:
    """One websocket connection; owns its compressor so frames stay in compressor order."""

    def __init__(self, ws: web.WebSocketResponse, compression: str | None, number: int) -> None:
        self.ws = ws
        self.compression = compression
        self.number = number
        self.session: _GatewaySession | None = None
        self._lock = asyncio.Lock()
        self._zlib = zlib.compressobj() if compression == "zlib-stream" else None
        self._zstd = _ZstdStream() if compression == "zstd-stream" else None

    async def send(self, payload: JSON) -> None:
        await self.send_many([payload])

    async def send_many(self, payloads: list[JSON]) -> None:
        """Send frames in order, holding the lock so no other frame interleaves."""
        async with self._lock:
            for payload in payloads:
                text = json.dumps(payload, separators=(",", ":"))
                if self._zlib is not None:
                    data = self._zlib.compress(text.encode())
                    await self.ws.send_bytes(data + self._zlib.flush(zlib.Z_SYNC_FLUSH))
                elif self._zstd is not None:
                    await self.ws.send_bytes(self._zstd.compress(text.encode()))
                else:
                    await self.ws.send_str(text)


@dataclass(eq=False)
class _GatewaySession:
    session_id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    history: deque[JSON] = field(default_factory=lambda: deque(maxlen=2000))
    connection: _GatewayConnection | None = None
    resumable: bool = True  # False after a close code that ends the session (4007, 4009)


@dataclass(frozen=True)
class GatewayConnectionInfo:
    """What one gateway connection asked for (for assertions about the client)."""

    number: int
    query: dict[str, str]
    compression: str | None


_Handler = Callable[["_Request"], Awaitable[web.Response]]


@dataclass
class _Request:
    record: RecordedRequest
    params: dict[str, str]

    @property
    def json(self) -> Any:
        return self.record.json

    def body(self) -> JSON:
        body = self.record.json
        if not isinstance(body, dict):
            raise _ApiError(400, 50109, "The request body contains invalid JSON.")
        return body

    def int_param(self, name: str) -> int:
        return int(self.params[name])


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------


class FakeDiscord:
    """A fake Discord HTTP API + gateway on 127.0.0.1 for the real discord.py client.

    Build the world (:meth:`add_guild`, :meth:`FakeGuild.add_channel` ...), :meth:`start`,
    point discord.py at it (:func:`point_discord_py_at` / :func:`running_client`), then drive
    the bot as a user would (:meth:`send_message`, :meth:`invoke_slash`, :meth:`click_button`
    ...) and observe ``requests``, ``reactions``, ``sent_messages``, ``synced_commands`` and
    the returned :class:`FakeInteraction` objects.  All waits take a timeout and fail fast
    with a description of what the fake saw.

    Settings you may change at any time: ``refuse_resume``, ``interaction_timeout``,
    ``check_permissions``, ``echo_bot_messages``, ``enabled_privileged_intents``,
    ``gateway_delay``.
    """

    def __init__(
        self,
        *,
        application_id: int = DEFAULT_APPLICATION_ID,
        bot_user_id: int = DEFAULT_BOT_USER_ID,
        bot_name: str = "Sentiment Bot",
        token: str | None = None,
        heartbeat_interval_ms: int = 41_250,
        interaction_timeout: float = 3.0,
        enabled_privileged_intents: int = PRIVILEGED_INTENTS,
        attachment_size_limit: int = 10 * 1024 * 1024,
    ) -> None:
        """``token``: when set, REST calls and IDENTIFY with another token are refused
        (401 / close 4004), so a wrong-token path can be tested; None accepts any token."""
        self.application_id = application_id
        self.bot_user_id = bot_user_id
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.interaction_timeout = interaction_timeout
        self.enabled_privileged_intents = enabled_privileged_intents
        self.attachment_size_limit = attachment_size_limit
        #: When True, every RESUME is answered with INVALID_SESSION (op 9, not resumable).
        self.refuse_resume = False
        #: When True, missing bot permissions get 403 50013 like on Discord.
        self.check_permissions = True
        #: When True, messages the bot creates/edits/deletes are dispatched back to it.
        self.echo_bot_messages = True
        #: Latency of the gateway in seconds (a slow gateway): each event and heartbeat ACK
        #: reaches the client this much later, in order, without holding up the REST API.
        #: An interaction's 3 s window still starts when it is created, as on Discord.
        self.gateway_delay = 0.0

        self.bot_user = FakeUser(bot_user_id, bot_name, bot=True)
        self.users: dict[int, FakeUser] = {bot_user_id: self.bot_user}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, FakeMessage] = {}
        self.interactions: dict[int, FakeInteraction] = {}

        #: Every HTTP request, in arrival order.
        self.requests: list[RecordedRequest] = []
        #: Requests no route of the fake knows (answered 404); usually a gap in the fake.
        self.unhandled_requests: list[RecordedRequest] = []
        #: Reactions the bot added (removal sets ``removed_at``).
        self.reactions: list[Reaction] = []
        #: Messages the bot sent with ``POST /channels/{c}/messages`` (objects from ``messages``).
        self.sent_messages: list[FakeMessage] = []
        #: Synced application commands: key None = global, else the guild id.
        self.synced_commands: dict[int | None, list[JSON]] = {}
        #: Every gateway frame the client sent (heartbeats included), decoded.
        self.gateway_received: list[JSON] = []
        #: Every gateway connection the client opened.
        self.gateway_connections: list[GatewayConnectionInfo] = []
        #: Exceptions raised inside the fake itself (bugs in the fake), surfaced by running_client.
        self.internal_errors: list[BaseException] = []
        self.identify_count = 0
        self.resume_count = 0
        #: The last presence (op 3) the client sent.
        self.presence: JSON | None = None
        #: Set while a client session is live (after READY + GUILD_CREATEs, or RESUMED).
        self.ready = asyncio.Event()

        self._next_id = SnowflakeGenerator()
        self._faults: list[Fault] = []
        self._listeners: list[Callable[[FakeEvent], None]] = []
        self._session: _GatewaySession | None = None
        self._connections: set[_GatewayConnection] = set()
        self._connection_counter = 0
        self._command_ids: dict[tuple[int | None, str, int], int] = {}
        self._attachment_files: dict[int, FakeFile] = {}
        self._watched: list[asyncio.Task[Any]] = []
        self._failure_checks: list[Callable[[], None]] = []
        self._change = asyncio.Event()
        self._last_activity = time.monotonic()
        self._inflight = 0
        self._delayed: deque[tuple[float, _GatewayConnection, JSON]] = deque()
        self._delayer: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._routes: list[tuple[str, re.Pattern[str], _Handler]] = []
        self._install_routes()

    # ---------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._require_port()}"

    @property
    def api_base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v10``: the value for ``discord.http.Route.BASE``."""
        return f"{self.base_url}/api/v{API_VERSION}"

    @property
    def gateway_url(self) -> str:
        """``ws://127.0.0.1:PORT/gateway``: the gateway (and ``resume_gateway_url``)."""
        return f"ws://127.0.0.1:{self._require_port()}/gateway"

    def _require_port(self) -> int:
        if self.port is None:
            raise RuntimeError("FakeDiscord is not started: await fake.start() first")
        return self.port

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port (``self.port``)."""
        if self._runner is not None:
            raise RuntimeError("FakeDiscord is already started")
        app = web.Application(client_max_size=self.attachment_size_limit + 1024 * 1024)
        app.router.add_get("/gateway", self._gateway_handler)
        app.router.add_get("/gateway/", self._gateway_handler)
        app.router.add_get("/cdn/attachments/{attachment_id}/{filename}", self._cdn_handler)
        app.router.add_route("*", "/api/v{version}/{tail:.*}", self._rest_handler)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(runner.addresses[0][1])
        self._runner = runner
        _log.debug("fake Discord listening on %s", self.base_url)

    async def close(self) -> None:
        """Close every gateway websocket (code 1000) and stop the server."""
        if self._delayer is not None:
            self._delayer.cancel()
            await asyncio.gather(self._delayer, return_exceptions=True)
            self._delayed.clear()
        for conn in list(self._connections):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=1000), timeout=2.0)
        self._connections.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.ready.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---------------------------------------------------------------- world building

    def add_guild(
        self,
        guild_id: int,
        name: str,
        *,
        owner_id: int,
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        bot_roles: Iterable[int] = (),
    ) -> FakeGuild:
        """Add a guild the bot is a member of (sent as GUILD_CREATE on IDENTIFY).

        The bot member gets ``bot_roles`` (role ids must be added first with ``add_role``; or
        call ``guild.add_member(fake.bot_user_id, ...)`` again later to change its roles).
        """
        if guild_id in self.guilds:
            raise ValueError(f"guild {guild_id} already exists")
        guild = FakeGuild(
            self, guild_id, name, owner_id=owner_id, everyone_permissions=everyone_permissions
        )
        self.guilds[guild_id] = guild
        guild.add_member(self.bot_user_id, self.bot_user.name, roles=bot_roles, bot=True)
        return guild

    def add_user(self, user_id: int, name: str, *, bot: bool = False) -> FakeUser:
        """Add a user who is in no guild (e.g. for DMs); members are created by add_member."""
        user = self.users.get(user_id)
        if user is None:
            user = self.users[user_id] = FakeUser(
                user_id, name, bot=bot, global_name=None if bot else name
            )
        return user

    def open_dm(self, user_id: int) -> int:
        """The DM channel id between the bot and ``user_id`` (created if needed)."""
        if user_id not in self.users:
            raise ValueError(f"unknown user {user_id}: add_user or add_member first")
        for channel in self.channels.values():
            if channel.type == CHANNEL_DM and channel.recipient_id == user_id:
                return channel.id
        channel = FakeChannel(self._next_id(), "", None, type=CHANNEL_DM, recipient_id=user_id)
        self.channels[channel.id] = channel
        return channel.id

    def bot_permissions(self, guild_id: int) -> int:
        """The bot's guild-level permission bitfield in ``guild_id``."""
        return self.guilds[guild_id].permissions_of(self.bot_user_id)

    # ---------------------------------------------------------------- observing

    def add_listener(self, callback: Callable[[FakeEvent], None]) -> None:
        """Call ``callback(event)`` for every :class:`FakeEvent` (e.g. the sandbox console)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[FakeEvent], None]) -> None:
        self._listeners.remove(callback)

    def watch_task(self, task: asyncio.Task[Any]) -> None:
        """Make every wait of the fake fail at once (ClientDiedError) if ``task`` crashes."""
        self._watched.append(task)

    def unwatch_task(self, task: asyncio.Task[Any]) -> None:
        with contextlib.suppress(ValueError):
            self._watched.remove(task)

    def add_failure_check(self, check: Callable[[], None]) -> None:
        """Call ``check()`` on every poll of every wait; whatever it raises ends the wait.

        :func:`running_client` uses this to fail waits as soon as discord.py logs an error.
        """
        self._failure_checks.append(check)

    def remove_failure_check(self, check: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._failure_checks.remove(check)

    def requests_to(self, method: str, path_regex: str) -> list[RecordedRequest]:
        """Recorded requests with that method (``*`` = any) whose path matches ``path_regex``."""
        pattern = re.compile(path_regex)
        return [r for r in self.requests if method in ("*", r.method) and pattern.search(r.path)]

    def active_reactions(self, message_id: int) -> list[str]:
        """Emojis the bot currently has on ``message_id``."""
        return [r.emoji for r in self.reactions if r.message_id == message_id and r.active]

    def messages_in(self, channel_id: int, *, include_deleted: bool = False) -> list[FakeMessage]:
        """Messages in a channel, oldest first."""
        return sorted(
            (
                m
                for m in self.messages.values()
                if m.channel_id == channel_id and (include_deleted or not m.deleted)
            ),
            key=lambda m: m.id,
        )

    def _emit(self, kind: str, description: str, **data: Any) -> None:
        event = FakeEvent(kind, description, data)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                _log.exception("FakeDiscord listener failed on %s", kind)
        self._notify()

    def _notify(self) -> None:
        self._last_activity = time.monotonic()
        self._change.set()
        self._change = asyncio.Event()

    def _check_watched(self) -> None:
        for task in self._watched:
            if task.done() and not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                raise ClientDiedError(
                    f"the discord.py client task {task.get_name()!r} died: {exc!r}"
                ) from exc
        for check in list(self._failure_checks):
            check()

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,
        *,
        description: str | Callable[[], str] | None = None,
    ) -> None:
        """Wait until ``predicate()`` is true; it is re-checked whenever the fake sees activity.

        Raises ``TimeoutError`` after ``timeout`` seconds with ``description`` (a string, or a
        callable evaluated at the timeout so it can describe the final state) and a summary of
        recent traffic, or :class:`ClientDiedError` as soon as a watched client task crashed.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._check_watched()
            if predicate():
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                what = description() if callable(description) else description
                raise TimeoutError(self._timeout_message(what or repr(predicate), timeout))
            # Wake on any change; re-poll at least every 20 ms for state the fake cannot see
            # (the client's own timers, e.g. on_ready after guild_ready_timeout).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._change.wait(), timeout=min(remaining, 0.02))

    async def wait_idle(self, idle: float = 0.2, timeout: float = 10.0) -> None:
        """Wait until no request or gateway frame arrived for ``idle`` seconds.

        Only for asserting that something did *not* happen; prefer :meth:`wait_for`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._check_watched()
            quiet = time.monotonic() - self._last_activity
            if self._inflight == 0 and quiet >= idle:
                return
            if loop.time() >= deadline:
                raise TimeoutError(self._timeout_message(f"{idle}s of quiet", timeout))
            await asyncio.sleep(max(0.01, min(idle - quiet, deadline - loop.time())))

    def _timeout_message(self, what: str, timeout: float) -> str:
        lines = [f"timed out after {timeout:g}s waiting for {what}"]
        lines.append(
            f"gateway: session live={self.ready.is_set()}, identifies={self.identify_count}, "
            f"resumes={self.resume_count}"
        )
        if self.unhandled_requests:
            lines.append("requests the fake could not answer (404):")
            lines += [f"  {r.method} {r.path}" for r in self.unhandled_requests[-5:]]
        lines.append(f"last requests ({len(self.requests)} in all):")
        lines += [f"  {r.method} {_short(r.path)} -> {r.status}" for r in self.requests[-8:]]
        for task in self._watched:
            if task.done():
                lines.append(f"client task {task.get_name()!r} has finished")
        return "\n".join(lines)

    # ---------------------------------------------------------------- fault injection

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        json: JSON | None = None,
        is_global: bool = False,
    ) -> Fault:
        """Answer the next ``times`` matching requests with ``status`` instead of handling them.

        ``method`` is an HTTP method or ``*``; ``path_regex`` is searched in the decoded path
        relative to ``/api/v10`` (e.g. ``r"/reactions/"``).  Bodies follow Discord: 429 gets
        ``{"message", "retry_after", "global"}`` with ``Retry-After``, ``X-RateLimit-*`` and
        ``Via`` headers (``retry_after`` defaults to 0.1 s; discord.py sleeps and retries);
        403 ``{code 50013 Missing Permissions}``; 404 ``{code 10008 Unknown Message}``;
        5xx a plain error (discord.py retries 500/502/504 up to 5 times, sleeping 1+2n s).
        ``json`` replaces the body.  Returns the :class:`Fault`; its ``hits`` counts uses.
        """
        fault = Fault(
            method=method.upper(),
            path_regex=re.compile(path_regex),
            status=status,
            remaining=times,
            retry_after=retry_after,
            json=json,
            is_global=is_global,
        )
        self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self._faults.clear()

    def _fault_response(self, fault: Fault) -> web.Response:
        if fault.status == 429:
            retry = 0.1 if fault.retry_after is None else fault.retry_after
            body: JSON = {
                "message": "You are being rate limited.",
                "retry_after": retry,
                "global": fault.is_global,
            }
            headers = {
                "Retry-After": str(max(1, int(retry + 0.999))),
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + retry:.3f}",
                "X-RateLimit-Reset-After": f"{retry:.3f}",
                "X-RateLimit-Bucket": "fake-bucket",
                "X-RateLimit-Scope": "shared" if not fault.is_global else "global",
                "Via": "1.1 google",
            }
            if fault.is_global:
                headers["X-RateLimit-Global"] = "true"
            return _json_response(fault.json or body, fault.status, headers)
        if fault.status >= 500:
            code, message = 0, f"{fault.status}: Internal Server Error"
        else:
            code, message = _DEFAULT_ERRORS.get(fault.status, (0, f"{fault.status}: Error"))
        return _json_response(fault.json or {"message": message, "code": code}, fault.status)

    # ---------------------------------------------------------------- gateway: dispatching

    def _session_wants(self, session: _GatewaySession, event: str, data: JSON) -> bool:
        if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK"):
            needed = INTENT_GUILD_MESSAGES if "guild_id" in data else INTENT_DIRECT_MESSAGES
            return bool(session.intents & needed)
        return True

    async def dispatch(self, event: str, data: JSON) -> bool:
        """Send a raw DISPATCH (op 0) event to the client session; returns False if filtered.

        Raises RuntimeError when no client has identified yet.  While the client is
        disconnected the event is kept and replayed if the client RESUMEs.
        """
        session = self._session
        if session is None:
            raise RuntimeError(
                f"cannot dispatch {event}: no client has identified (await fake.ready.wait())"
            )
        return await self._send_dispatch(session, event, data)

    async def _dispatch_if_connected(self, event: str, data: JSON) -> None:
        if self._session is not None:
            await self._send_dispatch(self._session, event, data)

    async def _send_dispatch(self, session: _GatewaySession, event: str, data: JSON) -> bool:
        if not self._session_wants(session, event, data):
            return False
        session.seq += 1
        frame: JSON = {"op": OP_DISPATCH, "s": session.seq, "t": event, "d": data}
        session.history.append(frame)
        conn = session.connection
        if conn is not None and self.gateway_delay > 0:
            self._send_later(conn, frame)
        elif conn is not None:
            try:
                await conn.send(frame)
            except (ConnectionError, RuntimeError) as exc:
                _log.debug(
                    "could not send %s (client disconnected: %r); kept for RESUME", event, exc
                )
        self._notify()
        return True

    def _send_later(self, conn: _GatewayConnection, frame: JSON) -> None:
        """Send ``frame`` on ``conn`` after ``gateway_delay`` seconds, after earlier ones."""
        self._delayed.append((time.monotonic() + self.gateway_delay, conn, frame))
        if self._delayer is None or self._delayer.done():
            self._delayer = asyncio.create_task(self._send_delayed(), name="fake gateway delay")

    async def _send_delayed(self) -> None:
        while self._delayed:
            due, conn, frame = self._delayed[0]
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            self._delayed.popleft()
            if conn.ws.closed:
                continue  # dispatches stay in the session's history for a RESUME
            try:
                await conn.send(frame)
            except (ConnectionError, RuntimeError) as exc:
                _log.debug("could not send a delayed frame (client disconnected: %r)", exc)
            self._notify()

    async def drop_gateway(self, code: int = 4000, *, end_session: bool | None = None) -> None:
        """Close the client's websocket with ``code``.

        discord.py tries to RESUME after every code but 4004, 4010-4014 and a clean 1000 it
        asked for (on those it gives up).  Like Discord, the fake ends the session itself on
        4007 (invalid seq) and 4009 (session timed out): the RESUME is answered with op 9 and
        the client IDENTIFYs again, and events sent meanwhile are never delivered.
        ``end_session`` overrides that choice for any code.  Wait for the reconnection with
        ``await fake.wait_for(lambda: fake.ready.is_set())``.
        """
        session = self._session
        conn = session.connection if session is not None else None
        if conn is None:
            raise RuntimeError("no live gateway connection to drop")
        self.ready.clear()
        assert session is not None
        session.connection = None
        if end_session if end_session is not None else code in (4007, 4009):
            session.resumable = False
        await asyncio.wait_for(conn.ws.close(code=code, message=b"dropped by FakeDiscord"), 5.0)
        self._emit("gateway", f"gateway dropped with close code {code}", code=code)

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: the client closes and RESUMEs."""
        session = self._session
        if session is None or session.connection is None:
            raise RuntimeError("no live gateway connection")
        self.ready.clear()
        await session.connection.send({"op": OP_RECONNECT, "d": None, "s": None, "t": None})

    # ---------------------------------------------------------------- gateway: websocket

    async def _gateway_handler(self, request: web.Request) -> web.StreamResponse:
        compression = request.query.get("compress")
        if compression not in (None, "zlib-stream", "zstd-stream"):
            raise web.HTTPBadRequest(text=f"unsupported compress={compression}")
        if compression == "zstd-stream" and not _zstd_available():
            raise web.HTTPBadRequest(text="zstd-stream requested but no zstd module is importable")
        if request.query.get("encoding", "json") != "json":
            raise web.HTTPBadRequest(text="only encoding=json is supported")
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=4 * 1024 * 1024)
        await ws.prepare(request)
        self._connection_counter += 1
        conn = _GatewayConnection(ws, compression, self._connection_counter)
        self._connections.add(conn)
        self.gateway_connections.append(
            GatewayConnectionInfo(conn.number, dict(request.query), compression)
        )
        self._emit("gateway", f"client connected (#{conn.number}, compress={compression})")
        try:
            await conn.send(
                {
                    "op": OP_HELLO,
                    "d": {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fake-gw"]},
                    "s": None,
                    "t": None,
                }
            )
            async for msg in ws:
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    raw = msg.data if isinstance(msg.data, str) else msg.data.decode()
                    try:
                        frame = json.loads(raw)
                    except ValueError:
                        await ws.close(code=4002, message=b"Error while decoding payload.")
                        break
                    await self._on_gateway_frame(conn, frame)
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    break
        except ConnectionError:
            pass
        except Exception as exc:  # a bug in the fake: record it, do not hide it
            _log.exception("FakeDiscord gateway handler failed")
            self.internal_errors.append(exc)
            with contextlib.suppress(Exception):
                await ws.close(code=4000, message=b"fake internal error")
        finally:
            self._connections.discard(conn)
            session = conn.session
            if session is not None and session.connection is conn:
                session.connection = None
                self.ready.clear()
            self._emit(
                "gateway", f"client disconnected (#{conn.number}, close code {ws.close_code})"
            )
        return ws

    async def _on_gateway_frame(self, conn: _GatewayConnection, frame: JSON) -> None:
        self.gateway_received.append(frame)
        self._last_activity = time.monotonic()
        op = frame.get("op")
        data = frame.get("d")
        if op == OP_HEARTBEAT:
            ack: JSON = {"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None}
            if self.gateway_delay > 0:
                self._send_later(conn, ack)
            else:
                await conn.send(ack)
        elif op == OP_IDENTIFY:
            await self._identify(conn, data if isinstance(data, dict) else {})
        elif op == OP_RESUME:
            await self._resume(conn, data if isinstance(data, dict) else {})
        elif op == OP_REQUEST_MEMBERS:
            await self._request_members(conn, data if isinstance(data, dict) else {})
        elif op == OP_PRESENCE:
            self.presence = data if isinstance(data, dict) else None
        elif op == OP_VOICE_STATE:
            pass
        else:
            await conn.ws.close(code=4001, message=b"Unknown opcode.")
        self._notify()

    async def _identify(self, conn: _GatewayConnection, data: JSON) -> None:
        if conn.session is not None:
            await conn.ws.close(code=4005, message=b"Already authenticated.")
            return
        if self.token is not None and data.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = int(data.get("intents", 0))
        if intents & PRIVILEGED_INTENTS & ~self.enabled_privileged_intents:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        shard = data.get("shard")
        session = _GatewaySession(
            session_id=secrets.token_hex(16),
            intents=intents,
            shard=list(shard) if isinstance(shard, list) else None,
        )
        old = self._session
        if old is not None and old.connection is not None and old.connection is not conn:
            with contextlib.suppress(Exception):
                await old.connection.ws.close(code=4000, message=b"session replaced")
        self._session = session
        session.connection = conn
        conn.session = session
        self.identify_count += 1
        flags = 0
        if self.enabled_privileged_intents & INTENT_GUILD_PRESENCES:
            flags |= 1 << 13
        if self.enabled_privileged_intents & INTENT_GUILD_MEMBERS:
            flags |= 1 << 15
        if self.enabled_privileged_intents & INTENT_MESSAGE_CONTENT:
            flags |= 1 << 19
        ready: JSON = {
            "v": API_VERSION,
            "user": {
                **self.bot_user.to_payload(),
                "verified": True,
                "mfa_enabled": False,
                "flags": 0,
                "email": None,
            },
            "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": flags},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "_trace": ["fake-gw"],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        await self._send_dispatch(session, "READY", ready)
        for guild in self.guilds.values():
            # Like Discord without the presences intent: only the bot itself is listed;
            # with the members intent the client asks for the rest with op 8.
            bot_member = guild.members.get(self.bot_user_id)
            await self._send_dispatch(
                session, "GUILD_CREATE", guild.to_payload([bot_member] if bot_member else [])
            )
        self.ready.set()
        self._emit("gateway", f"client identified (intents={intents})", intents=intents)

    async def _resume(self, conn: _GatewayConnection, data: JSON) -> None:
        session = self._session
        last_seq = int(data.get("seq") or 0)
        resumable = (
            not self.refuse_resume
            and session is not None
            and session.resumable
            and data.get("session_id") == session.session_id
            and (self.token is None or data.get("token") == self.token)
            and (not session.history or session.history[0]["s"] <= last_seq + 1)
        )
        if not resumable or session is None:
            await conn.send({"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            self._emit("gateway", "RESUME refused (op 9 invalid session)")
            return
        missed = [f for f in session.history if f["s"] > last_seq]
        session.seq += 1
        resumed: JSON = {"op": OP_DISPATCH, "s": session.seq, "t": "RESUMED", "d": {"_trace": []}}
        session.history.append(resumed)
        session.connection = conn
        conn.session = session
        # One lock hold, so no new dispatch can slip in between the replayed events.
        await conn.send_many([*missed, resumed])
        self.resume_count += 1
        self.ready.set()
        self._emit("gateway", f"client resumed session (from seq {last_seq})")

    async def _request_members(self, conn: _GatewayConnection, data: JSON) -> None:
        session = conn.session
        raw_ids: Any = data.get("guild_id")
        guild_ids: list[Any] = raw_ids if isinstance(raw_ids, list) else [raw_ids]
        if session is None:
            await conn.ws.close(code=4003, message=b"Not authenticated.")
            return
        for raw in guild_ids:
            guild = self.guilds.get(int(raw)) if raw is not None else None
            if guild is None:
                continue
            members = list(guild.members.values())
            not_found: list[str] = []
            user_ids = data.get("user_ids")
            if user_ids:
                wanted = [int(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids])]
                not_found = [str(u) for u in wanted if u not in guild.members]
                members = [guild.members[u] for u in wanted if u in guild.members]
            else:
                query = str(data.get("query") or "").lower()
                members = [m for m in members if m.user.name.lower().startswith(query)]
                limit = int(data.get("limit") or 0)
                if limit:
                    members = members[:limit]
            chunks = [members[i : i + 1000] for i in range(0, len(members), 1000)] or [[]]
            for index, chunk in enumerate(chunks):
                payload: JSON = {
                    "guild_id": str(guild.id),
                    "members": [m.to_payload() for m in chunk],
                    "chunk_index": index,
                    "chunk_count": len(chunks),
                    "not_found": not_found if index == 0 else [],
                }
                if data.get("nonce") is not None:
                    payload["nonce"] = data["nonce"]
                await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", payload)

    # ---------------------------------------------------------------- payload builders

    def _member_of(self, guild_id: int | None, user_id: int) -> FakeMember | None:
        if guild_id is None:
            return None
        guild = self.guilds.get(guild_id)
        return None if guild is None else guild.members.get(user_id)

    def _user_with_member(self, guild_id: int | None, user_id: int) -> JSON:
        payload = self.users[user_id].to_payload()
        member = self._member_of(guild_id, user_id)
        if member is not None:
            payload["member"] = member.to_payload(with_user=False)
        return payload

    def message_payload(self, message: FakeMessage, *, for_intents: int | None = None) -> JSON:
        """The Discord message object for ``message``.

        With ``for_intents`` (a gateway session's intents) the content is blanked like Discord
        does for bots without the MESSAGE_CONTENT intent (unless the bot is the author, is
        mentioned, or it is a DM).
        """
        author = self.users[message.author_id]
        mentioned = [int(m) for m in _USER_MENTION.findall(message.content) if int(m) in self.users]
        payload: JSON = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "author": author.to_payload(),
            "content": message.content,
            "timestamp": message.timestamp,
            "edited_timestamp": message.edited_timestamp,
            "tts": False,
            "mention_everyone": "@everyone" in message.content,
            "mentions": [self._user_with_member(message.guild_id, uid) for uid in mentioned],
            "mention_roles": [
                r
                for r in _ROLE_MENTION.findall(message.content)
                if message.guild_id is not None and int(r) in self.guilds[message.guild_id].roles
            ],
            "attachments": [dict(a) for a in message.attachments],
            "embeds": [dict(e) for e in message.embeds],
            "components": [dict(c) for c in message.components],
            "pinned": False,
            "type": message.type,
            "flags": message.flags,
        }
        if message.reactions:
            payload["reactions"] = [
                {
                    "emoji": _emoji_payload(emoji),
                    "count": len(users),
                    "count_details": {"burst": 0, "normal": len(users)},
                    "me": self.bot_user_id in users,
                    "me_burst": False,
                    "burst_colors": [],
                }
                for emoji, users in message.reactions.items()
                if users
            ]
        if message.guild_id is not None:
            payload["guild_id"] = str(message.guild_id)
            member = self._member_of(message.guild_id, message.author_id)
            if member is not None and message.webhook_id is None:
                payload["member"] = member.to_payload(with_user=False)
        if message.webhook_id is not None:
            payload["webhook_id"] = str(message.webhook_id)
            payload["application_id"] = str(self.application_id)
        if message.interaction_id is not None and message.interaction_id in self.interactions:
            interaction = self.interactions[message.interaction_id]
            user = self.users[interaction.user_id].to_payload()
            metadata: JSON = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": user,
                "authorizing_integration_owners": (
                    {"0": str(interaction.guild_id)}
                    if interaction.guild_id
                    else {"1": str(interaction.user_id)}
                ),
            }
            if interaction.original is not None and interaction.original is not message:
                metadata["original_response_message_id"] = str(interaction.original.id)
            if (
                interaction.target_message_id is not None
                and interaction.type == INTERACTION_COMPONENT
            ):
                metadata["interacted_message_id"] = str(interaction.target_message_id)
            payload["interaction_metadata"] = metadata
            payload["interaction"] = {
                "id": str(interaction.id),
                "type": interaction.type,
                "name": interaction.name,
                "user": user,
            }
        if message.reference_id is not None:
            payload["message_reference"] = {
                "type": 0,
                "message_id": str(message.reference_id),
                "channel_id": str(message.channel_id),
                **({"guild_id": str(message.guild_id)} if message.guild_id is not None else {}),
            }
            referenced = self.messages.get(message.reference_id)
            if referenced is not None and not referenced.deleted:
                inner = self.message_payload(referenced, for_intents=for_intents)
                inner.pop("referenced_message", None)
                payload["referenced_message"] = inner
            else:
                payload["referenced_message"] = None
        if for_intents is not None and not for_intents & INTENT_MESSAGE_CONTENT:
            exempt = (
                message.author_id == self.bot_user_id
                or self.bot_user_id in mentioned
                or message.guild_id is None
            )
            if not exempt:
                payload.update(content="", embeds=[], attachments=[], components=[])
        return payload

    async def _dispatch_message_event(self, event: str, message: FakeMessage) -> None:
        session = self._session
        if session is None:
            return
        await self._send_dispatch(
            session, event, self.message_payload(message, for_intents=session.intents)
        )

    def _channel(self, channel_id: int) -> FakeChannel:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise ValueError(f"unknown channel {channel_id}: add it with guild.add_channel first")
        return channel

    def _guild(self, guild_id: int) -> FakeGuild:
        guild = self.guilds.get(guild_id)
        if guild is None:
            raise ValueError(f"unknown guild {guild_id}: add it with fake.add_guild first")
        return guild

    def _store_file(self, upload: FakeFile) -> JSON:
        attachment_id = self._next_id()
        self._attachment_files[attachment_id] = upload
        url = f"{self.base_url}/cdn/attachments/{attachment_id}/{upload.filename}"
        payload: JSON = {
            "id": str(attachment_id),
            "filename": upload.filename,
            "size": len(upload.data),
            "url": url,
            "proxy_url": url,
            "content_type": upload.guessed_type,
        }
        if upload.description is not None:
            payload["description"] = upload.description
        return payload

    # ---------------------------------------------------------------- driving the bot

    async def send_message(
        self,
        channel_id: int,
        author_id: int,
        content: str,
        *,
        attachments: list[FakeFile | JSON] | None = None,
        reply_to: int | None = None,
    ) -> int:
        """A user posts a message: MESSAGE_CREATE.  Returns the new message id.

        ``attachments`` are :class:`FakeFile` (served by the fake, so ``Attachment.read()``
        works) or raw Discord attachment dicts.  The author must be a member of the channel's
        guild (or, in a DM channel from :meth:`open_dm`, its recipient).
        """
        await self._require_session("send_message")
        channel = self._channel(channel_id)
        if channel.guild_id is not None:
            if author_id not in self.guilds[channel.guild_id].members:
                raise ValueError(
                    f"user {author_id} is not a member of guild {channel.guild_id}; "
                    "guild.add_member first"
                )
        elif channel.recipient_id != author_id:
            raise ValueError(f"user {author_id} is not the recipient of DM channel {channel_id}")
        message = FakeMessage(
            id=self._next_id(),
            channel_id=channel_id,
            guild_id=channel.guild_id,
            author_id=author_id,
            content=content,
            type=MESSAGE_REPLY if reply_to is not None else MESSAGE_DEFAULT,
            reference_id=reply_to,
        )
        for item in attachments or []:
            if isinstance(item, FakeFile):
                message.attachments.append(self._store_file(item))
                message.files.append(item)
            else:
                message.attachments.append(dict(item))
        self.messages[message.id] = message
        await self._dispatch_message_event("MESSAGE_CREATE", message)
        return message.id

    async def edit_message(self, channel_id: int, message_id: int, content: str) -> None:
        """A user edits their message: MESSAGE_UPDATE."""
        await self._require_session("edit_message")
        message = self._message_in(channel_id, message_id)
        message.content = content
        message.edited_timestamp = _now_iso()
        await self._dispatch_message_event("MESSAGE_UPDATE", message)

    async def delete_message(self, channel_id: int, message_id: int) -> None:
        """A message is deleted (by its author or a moderator): MESSAGE_DELETE."""
        await self._require_session("delete_message")
        message = self._message_in(channel_id, message_id)
        message.deleted = True
        payload: JSON = {"id": str(message_id), "channel_id": str(channel_id)}
        if message.guild_id is not None:
            payload["guild_id"] = str(message.guild_id)
        await self.dispatch("MESSAGE_DELETE", payload)

    async def bulk_delete(self, channel_id: int, message_ids: list[int]) -> None:
        """Messages are purged by a moderator: MESSAGE_DELETE_BULK."""
        await self._require_session("bulk_delete")
        channel = self._channel(channel_id)
        for message_id in message_ids:
            self._message_in(channel_id, message_id).deleted = True
        payload: JSON = {"ids": [str(m) for m in message_ids], "channel_id": str(channel_id)}
        if channel.guild_id is not None:
            payload["guild_id"] = str(channel.guild_id)
        await self.dispatch("MESSAGE_DELETE_BULK", payload)

    def _message_in(self, channel_id: int, message_id: int) -> FakeMessage:
        message = self.messages.get(message_id)
        if message is None or message.channel_id != channel_id:
            raise ValueError(f"no message {message_id} in channel {channel_id}")
        return message

    async def _require_session(self, action: str) -> None:
        if self._session is None:
            raise RuntimeError(
                f"{action}: no client has identified yet "
                "(use running_client or await fake.ready.wait())"
            )

    async def invoke_slash(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        user_id: int,
        channel_id: int,
        guild_id: int,
        subcommand: str | None = None,
    ) -> FakeInteraction:
        """A user runs ``/name`` (INTERACTION_CREATE type 2, chat input).

        The command must have been synced (global or to ``guild_id``); option types come from
        the synced definition.  Values: str, int, bool, float; user/member options take a user
        id, channel options a channel id, role options a role id, attachment options a
        :class:`FakeFile`.  ``subcommand`` is ``"sub"`` or ``"group sub"``.  Raises
        ``LookupError`` / ``ValueError`` / ``PermissionError`` for what a Discord client would
        not let a user send.
        """
        guild = self._guild(guild_id)
        command = self._find_command(name, 1, guild_id)
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
        built = self._build_options(
            f"/{name} {subcommand or ''}".strip(), schema, given, guild, resolved
        )
        for part, kind in reversed(path):
            built = [{"name": part, "type": kind, "options": built}]
        data: JSON = {"id": str(command["id"]), "name": name, "type": 1, "options": built}
        if command.get("guild_id"):
            data["guild_id"] = str(command["guild_id"])
        if resolved:
            data["resolved"] = resolved
        label = f"/{name}" + (f" {subcommand}" if subcommand else "")
        return await self._dispatch_interaction(
            INTERACTION_APPLICATION_COMMAND, label, data, guild, channel_id, user_id
        )

    async def invoke_message_command(
        self, name: str, *, target_message_id: int, user_id: int, channel_id: int, guild_id: int
    ) -> FakeInteraction:
        """A user runs a message context-menu command (type 2, ``data.type`` 3) on a message."""
        guild = self._guild(guild_id)
        command = self._find_command(name, 3, guild_id)
        self._check_can_use(command, guild, user_id)
        target = self._message_in(channel_id, target_message_id)
        if target.deleted:
            raise ValueError(f"message {target_message_id} is deleted")
        data: JSON = {
            "id": str(command["id"]),
            "name": name,
            "type": 3,
            "target_id": str(target.id),
            "resolved": {"messages": {str(target.id): self.message_payload(target)}},
        }
        if command.get("guild_id"):
            data["guild_id"] = str(command["guild_id"])
        interaction = await self._dispatch_interaction(
            INTERACTION_APPLICATION_COMMAND,
            name,
            data,
            guild,
            channel_id,
            user_id,
            target_message_id=target.id,
        )
        return interaction

    async def invoke_user_command(
        self, name: str, *, target_user_id: int, user_id: int, channel_id: int, guild_id: int
    ) -> FakeInteraction:
        """A user runs a user context-menu command (type 2, ``data.type`` 2) on a member."""
        guild = self._guild(guild_id)
        command = self._find_command(name, 2, guild_id)
        self._check_can_use(command, guild, user_id)
        if target_user_id not in self.users:
            raise ValueError(f"unknown user {target_user_id}")
        resolved: JSON = {"users": {str(target_user_id): self.users[target_user_id].to_payload()}}
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
        return await self._dispatch_interaction(
            INTERACTION_APPLICATION_COMMAND, name, data, guild, channel_id, user_id
        )

    async def click_button(
        self, message_id: int, custom_id: str, *, user_id: int, channel_id: int, guild_id: int
    ) -> FakeInteraction:
        """A user clicks a button on a bot message (INTERACTION_CREATE type 3).

        Raises ``LookupError`` if the message has no such button (listing the ones it has)
        and ``ValueError`` if it is disabled or the message was deleted.
        """
        return await self._component_interaction(
            message_id,
            custom_id,
            2,
            None,
            user_id=user_id,
            channel_id=channel_id,
            guild_id=guild_id,
        )

    async def choose_select(
        self,
        message_id: int,
        custom_id: str,
        values: list[str],
        *,
        user_id: int,
        channel_id: int,
        guild_id: int,
    ) -> FakeInteraction:
        """A user picks ``values`` in a string select menu (component type 3)."""
        return await self._component_interaction(
            message_id,
            custom_id,
            3,
            values,
            user_id=user_id,
            channel_id=channel_id,
            guild_id=guild_id,
        )

    async def _component_interaction(
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
        guild = self._guild(guild_id)
        message = self._message_in(channel_id, message_id)
        if message.deleted:
            raise ValueError(f"message {message_id} was deleted")
        found = [c for c in _walk_components(message.components) if c.get("type") == component_type]
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
        return await self._dispatch_interaction(
            INTERACTION_COMPONENT,
            custom_id,
            data,
            guild,
            channel_id,
            user_id,
            message=message,
            target_message_id=message.id,
        )

    def _find_command(self, name: str, kind: int, guild_id: int) -> JSON:
        for scope in (guild_id, None):
            for command in self.synced_commands.get(scope, []):
                if command["name"] == name and int(command.get("type", 1)) == kind:
                    return command
        synced = {
            "global" if scope is None else f"guild {scope}": [c["name"] for c in cmds]
            for scope, cmds in self.synced_commands.items()
        }
        kinds = {1: "slash", 2: "user", 3: "message"}
        raise LookupError(
            f"no {kinds.get(kind, kind)} command {name!r} is synced for guild {guild_id} "
            f"(the bot must call tree.sync()); synced: {synced}"
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

    def _build_options(
        self,
        label: str,
        schema: list[JSON],
        values: Mapping[str, Any],
        guild: FakeGuild,
        resolved: JSON,
    ) -> list[JSON]:
        by_name = {o["name"]: o for o in schema}
        unknown = sorted(set(values) - set(by_name))
        if unknown:
            described = ", ".join(
                f"{o['name']} ({_OPTION_TYPES.get(int(o['type']), o['type'])}"
                f"{', required' if o.get('required') else ''})"
                for o in schema
            )
            raise ValueError(f"{label} has no option(s) {unknown}; it takes: {described or 'none'}")
        missing = [o["name"] for o in schema if o.get("required") and o["name"] not in values]
        if missing:
            raise ValueError(f"{label} is missing required option(s) {missing}")
        built: list[JSON] = []
        for option in schema:
            if option["name"] not in values:
                continue
            kind = int(option["type"])
            value = self._convert_option(label, option, values[option["name"]], guild, resolved)
            built.append({"name": option["name"], "type": kind, "value": value})
        return built

    def _convert_option(
        self, label: str, option: JSON, value: Any, guild: FakeGuild, resolved: JSON
    ) -> Any:
        """Check ``value`` against the synced option like a Discord client; fill ``resolved``."""
        name = f"{label} option {option['name']!r}"
        kind = int(option["type"])
        if kind == 3:
            if not isinstance(value, str):
                raise ValueError(f"{name} takes a string, got {value!r}")
            if option.get("min_length") is not None and len(value) < int(option["min_length"]):
                raise ValueError(f"{name} needs at least {option['min_length']} characters")
            if option.get("max_length") is not None and len(value) > int(option["max_length"]):
                raise ValueError(f"{name} takes at most {option['max_length']} characters")
        elif kind in (4, 10):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} takes a number, got {value!r}")
            if kind == 4 and not isinstance(value, int):
                raise ValueError(f"{name} takes an integer, got {value!r}")
            if option.get("min_value") is not None and value < option["min_value"]:
                raise ValueError(f"{name} must be >= {option['min_value']}")
            if option.get("max_value") is not None and value > option["max_value"]:
                raise ValueError(f"{name} must be <= {option['max_value']}")
        elif kind == 5:
            if not isinstance(value, bool):
                raise ValueError(f"{name} takes a bool, got {value!r}")
        elif kind in (6, 7, 8, 9):
            return self._resolve_snowflake_option(
                name, kind, option, _as_id(name, value), guild, resolved
            )
        elif kind == 11:
            if not isinstance(value, FakeFile):
                raise ValueError(f"{name} takes a FakeFile, got {value!r}")
            attachment = self._store_file(value)
            resolved.setdefault("attachments", {})[attachment["id"]] = attachment
            return attachment["id"]
        choices = option.get("choices")
        if choices and value not in [c["value"] for c in choices]:
            raise ValueError(
                f"{name} must be one of {[c['value'] for c in choices]}, got {value!r}"
            )
        return value

    def _resolve_snowflake_option(
        self, name: str, kind: int, option: JSON, value: int, guild: FakeGuild, resolved: JSON
    ) -> str:
        if kind in (6, 9) and value in self.users:
            resolved.setdefault("users", {})[str(value)] = self.users[value].to_payload()
            member = guild.members.get(value)
            if member is not None:
                resolved.setdefault("members", {})[str(value)] = member.to_payload(
                    with_user=False, permissions=guild.permissions_of(value)
                )
            return str(value)
        if kind in (8, 9) and value in guild.roles:
            resolved.setdefault("roles", {})[str(value)] = guild.roles[value].to_payload()
            return str(value)
        if kind == 7:
            channel = self.channels.get(value)
            if channel is None or channel.guild_id != guild.id:
                raise ValueError(f"{name}: no channel {value} in guild {guild.id}")
            allowed = option.get("channel_types")
            if allowed and channel.type not in allowed:
                raise ValueError(f"{name} accepts channel types {allowed}, not {channel.type}")
            entry = channel.to_payload(self)
            entry["permissions"] = str(guild.permissions_of(self.bot_user_id))
            resolved.setdefault("channels", {})[str(value)] = entry
            return str(value)
        raise ValueError(f"{name}: {value} is not a known {_OPTION_TYPES[kind]} id")

    async def _dispatch_interaction(
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
        channel = self._channel(channel_id)
        if channel.guild_id != guild.id:
            raise ValueError(f"channel {channel_id} is not in guild {guild.id}")
        member = guild.members.get(user_id)
        if member is None:
            raise ValueError(f"user {user_id} is not a member of guild {guild.id}")
        await self._require_session(f"interaction {label}")
        interaction_id = self._next_id()
        token = "fake-interaction." + secrets.token_urlsafe(48)
        bot_perms = guild.permissions_of(self.bot_user_id)
        channel_payload = channel.to_payload(self)
        channel_payload["permissions"] = str(bot_perms)
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
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
            "attachment_size_limit": self.attachment_size_limit,
        }
        if message is not None:
            payload["message"] = self.message_payload(message)
        interaction = FakeInteraction(
            fake=self,
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
        self.interactions[interaction_id] = interaction
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    # ---------------------------------------------------------------- HTTP: plumbing

    def _install_routes(self) -> None:
        snowflake = r"(?P<{}>\d+)"
        c, m, g, a = (
            snowflake.format(n) for n in ("channel_id", "message_id", "guild_id", "app_id")
        )
        token = r"(?P<token>[^/]+)"
        add = self._route
        add("GET", r"/gateway", self._get_gateway)
        add("GET", r"/gateway/bot", self._get_gateway_bot)
        add("GET", r"/users/@me", self._get_me)
        add("POST", r"/users/@me/channels", self._create_dm)
        add("GET", r"/users/" + snowflake.format("user_id"), self._get_user)
        add("GET", r"/oauth2/applications/@me", self._get_application)
        add("GET", r"/applications/@me", self._get_application)
        add("PUT", rf"/applications/{a}/commands", self._put_commands)
        add("GET", rf"/applications/{a}/commands", self._get_commands)
        add("PUT", rf"/applications/{a}/guilds/{g}/commands", self._put_commands)
        add("GET", rf"/applications/{a}/guilds/{g}/commands", self._get_commands)
        add("GET", rf"/guilds/{g}", self._get_guild)
        add("GET", rf"/guilds/{g}/channels", self._get_guild_channels)
        add("GET", rf"/guilds/{g}/roles", self._get_guild_roles)
        add("GET", rf"/guilds/{g}/members/" + snowflake.format("user_id"), self._get_member)
        add("GET", rf"/channels/{c}", self._get_channel)
        add("POST", rf"/channels/{c}/typing", self._typing)
        add("GET", rf"/channels/{c}/messages", self._get_messages)
        add("POST", rf"/channels/{c}/messages", self._post_message)
        add("POST", rf"/channels/{c}/messages/bulk-delete", self._bulk_delete_messages)
        add("GET", rf"/channels/{c}/messages/{m}", self._get_message)
        add("PATCH", rf"/channels/{c}/messages/{m}", self._patch_message)
        add("DELETE", rf"/channels/{c}/messages/{m}", self._delete_message)
        reaction = rf"/channels/{c}/messages/{m}/reactions/(?P<emoji>[^/]+)/(?P<user>@me|\d+)"
        add("PUT", reaction, self._put_reaction)
        add("DELETE", reaction, self._delete_reaction)
        add("POST", rf"/interactions/(?P<interaction_id>\d+)/{token}/callback", self._callback)
        add("POST", rf"/webhooks/{a}/{token}", self._post_followup)
        webhook_message = rf"/webhooks/{a}/{token}/messages/(?P<message>@original|\d+)"
        add("GET", webhook_message, self._get_webhook_message)
        add("PATCH", webhook_message, self._patch_webhook_message)
        add("DELETE", webhook_message, self._delete_webhook_message)
        add("POST", r"/auth/logout", self._logout)

    def _route(self, method: str, pattern: str, handler: _Handler) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    async def _rest_handler(self, request: web.Request) -> web.StreamResponse:
        self._inflight += 1
        try:
            return await self._handle_rest(request)
        except Exception as exc:  # a bug in the fake: answer 500, record it, do not hide it
            _log.exception("FakeDiscord failed on %s %s", request.method, request.path)
            self.internal_errors.append(exc)
            return _json_response({"message": f"fake internal error: {exc!r}", "code": 0}, 500)
        finally:
            self._inflight -= 1
            self._notify()

    async def _handle_rest(self, request: web.Request) -> web.StreamResponse:
        raw_tail = request.rel_url.raw_path.split(f"/api/v{request.match_info['version']}", 1)[1]
        path = "/".join(unquote(part) for part in raw_tail.split("/"))
        try:
            body, files = await _read_body(request)
        except ValueError as exc:
            return _json_response({"message": f"bad body: {exc}", "code": 50109}, 400)
        record = RecordedRequest(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=body,
            files=files,
            time=time.monotonic(),
            headers=dict(request.headers),
        )
        self.requests.append(record)
        _log.debug("fake Discord <- %s %s", request.method, path)
        response = await self._answer(request, record)
        record.status = response.status
        return response

    async def _answer(self, request: web.Request, record: RecordedRequest) -> web.Response:
        path = record.path
        for fault in self._faults:
            if fault.matches(request.method, path):
                fault.remaining -= 1
                fault.hits += 1
                return self._fault_response(fault)
        needs_auth = not path.startswith(("/interactions/", "/webhooks/"))
        authorized = request.headers.get("Authorization") == f"Bot {self.token}"
        if needs_auth and self.token is not None and not authorized:
            return _json_response({"message": "401: Unauthorized", "code": 0}, 401)
        method_mismatch = False
        for method, pattern, handler in self._routes:
            found = pattern.match(path)
            if found is None:
                continue
            if method != request.method:
                method_mismatch = True
                continue
            try:
                return await handler(_Request(record, found.groupdict()))
            except _ApiError as exc:
                return _json_response({"message": exc.message, "code": exc.code}, exc.status)
            except Exception as exc:
                _log.exception("FakeDiscord handler for %s %s failed", request.method, path)
                self.internal_errors.append(exc)
                return _json_response({"message": f"fake internal error: {exc!r}", "code": 0}, 500)
        if method_mismatch:
            return _json_response({"message": "405: Method Not Allowed", "code": 0}, 405)
        self.unhandled_requests.append(record)
        _log.warning("FakeDiscord has no route for %s %s (answered 404)", request.method, path)
        self._emit("unhandled_request", f"no fake route for {request.method} {path}", path=path)
        return _json_response({"message": "404: Not Found", "code": 0}, 404)

    async def _cdn_handler(self, request: web.Request) -> web.StreamResponse:
        upload = self._attachment_files.get(int(request.match_info["attachment_id"]))
        if upload is None:
            raise web.HTTPNotFound()
        return web.Response(body=upload.data, headers={"Content-Type": upload.guessed_type})

    def _check_bot(self, channel: FakeChannel, needed: int) -> None:
        if not self.check_permissions or channel.guild_id is None:
            return
        perms = self.guilds[channel.guild_id].permissions_of(self.bot_user_id)
        if needed & ~perms:
            raise _missing_permissions()

    def _http_channel(self, req: _Request) -> FakeChannel:
        channel = self.channels.get(req.int_param("channel_id"))
        if channel is None:
            raise _not_found(10003, "Unknown Channel")
        return channel

    def _http_message(self, req: _Request, channel: FakeChannel) -> FakeMessage:
        message = self.messages.get(req.int_param("message_id"))
        if message is None or message.deleted or message.channel_id != channel.id:
            raise _not_found()
        if message.ephemeral:
            raise _not_found()
        return message

    def _http_guild(self, req: _Request) -> FakeGuild:
        guild = self.guilds.get(req.int_param("guild_id"))
        if guild is None:
            raise _not_found(10004, "Unknown Guild")
        return guild

    def _check_app(self, req: _Request) -> None:
        if req.int_param("app_id") != self.application_id:
            raise _not_found(10002, "Unknown Application")

    # ---------------------------------------------------------------- HTTP: handlers

    async def _get_gateway(self, req: _Request) -> web.Response:
        return _json_response({"url": self.gateway_url})

    async def _get_gateway_bot(self, req: _Request) -> web.Response:
        return _json_response(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def _get_me(self, req: _Request) -> web.Response:
        return _json_response(
            {**self.bot_user.to_payload(), "verified": True, "mfa_enabled": False, "flags": 0}
        )

    async def _get_user(self, req: _Request) -> web.Response:
        user = self.users.get(req.int_param("user_id"))
        if user is None:
            raise _not_found(10013, "Unknown User")
        return _json_response(user.to_payload())

    async def _create_dm(self, req: _Request) -> web.Response:
        recipient = int(req.body().get("recipient_id", 0))
        if recipient not in self.users:
            raise _not_found(10013, "Unknown User")
        return _json_response(self.channels[self.open_dm(recipient)].to_payload(self))

    async def _get_application(self, req: _Request) -> web.Response:
        owner = next(
            (self.users[g.owner_id] for g in self.guilds.values() if g.owner_id in self.users),
            FakeUser(1, "owner"),
        )
        return _json_response(
            {
                "id": str(self.application_id),
                "name": self.bot_user.name,
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": owner.to_payload(),
                "verify_key": "0" * 64,
                "team": None,
                "flags": 0,
                "tags": [],
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "bot": self.bot_user.to_payload(),
            }
        )

    async def _put_commands(self, req: _Request) -> web.Response:
        self._check_app(req)
        guild_id = int(req.params["guild_id"]) if "guild_id" in req.params else None
        if guild_id is not None:
            self._http_guild(req)
        body = req.json
        if not isinstance(body, list):
            raise _ApiError(400, 50035, "Invalid Form Body: expected a list of commands")
        stored: list[JSON] = []
        for item in body:
            kind = int(item.get("type", 1))
            key = (guild_id, str(item["name"]), kind)
            command_id = self._command_ids.setdefault(key, self._next_id())
            command: JSON = {
                "default_member_permissions": None,
                "dm_permission": True,
                "nsfw": False,
                "description": "",
                **item,
                "id": str(command_id),
                "application_id": str(self.application_id),
                "version": str(self._next_id()),
                "type": kind,
            }
            if guild_id is not None:
                command["guild_id"] = str(guild_id)
            stored.append(command)
        self.synced_commands[guild_id] = stored
        scope = "globally" if guild_id is None else f"to guild {guild_id}"
        names = ", ".join(c["name"] for c in stored)
        self._emit("commands_synced", f"synced {len(stored)} commands {scope}: {names}")
        return _json_response(stored)

    async def _get_commands(self, req: _Request) -> web.Response:
        self._check_app(req)
        guild_id = int(req.params["guild_id"]) if "guild_id" in req.params else None
        return _json_response(self.synced_commands.get(guild_id, []))

    async def _get_guild(self, req: _Request) -> web.Response:
        payload = self._http_guild(req).to_payload([])
        for key in ("members", "channels", "threads", "presences", "voice_states", "joined_at"):
            payload.pop(key, None)
        return _json_response(payload)

    async def _get_guild_channels(self, req: _Request) -> web.Response:
        guild = self._http_guild(req)
        return _json_response([c.to_payload(self) for c in guild.channels.values()])

    async def _get_guild_roles(self, req: _Request) -> web.Response:
        guild = self._http_guild(req)
        return _json_response([r.to_payload() for r in guild.roles.values()])

    async def _get_member(self, req: _Request) -> web.Response:
        member = self._http_guild(req).members.get(req.int_param("user_id"))
        if member is None:
            raise _not_found(10007, "Unknown Member")
        return _json_response(member.to_payload())

    async def _get_channel(self, req: _Request) -> web.Response:
        return _json_response(self._http_channel(req).to_payload(self))

    async def _typing(self, req: _Request) -> web.Response:
        channel = self._http_channel(req)
        self._check_bot(channel, VIEW_CHANNEL | SEND_MESSAGES)
        self._emit(
            "typing", f"bot is typing in #{channel.name or channel.id}", channel_id=channel.id
        )
        return _no_content()

    async def _get_messages(self, req: _Request) -> web.Response:
        channel = self._http_channel(req)
        self._check_bot(channel, VIEW_CHANNEL | READ_MESSAGE_HISTORY)
        query = req.record.query
        limit = max(1, min(100, int(query.get("limit", 50))))
        found = [m for m in self.messages_in(channel.id) if not m.ephemeral]
        if "around" in query:
            around = int(query["around"])
            found.sort(key=lambda m: abs(m.id - around))
            found = sorted(found[:limit], key=lambda m: m.id, reverse=True)
        elif "after" in query:
            found = [m for m in found if m.id > int(query["after"])][:limit]
            found.reverse()
        else:
            if "before" in query:
                found = [m for m in found if m.id < int(query["before"])]
            found = list(reversed(found))[:limit]
        return _json_response([self.message_payload(m) for m in found])

    async def _get_message(self, req: _Request) -> web.Response:
        channel = self._http_channel(req)
        self._check_bot(channel, VIEW_CHANNEL | READ_MESSAGE_HISTORY)
        return _json_response(self.message_payload(self._http_message(req, channel)))

    def _apply_message_body(
        self, message: FakeMessage, body: JSON, files: list[FakeFile], *, editing: bool
    ) -> None:
        """Apply a create/edit body (content, embeds, components, flags, attachments)."""
        if "content" in body or not editing:
            message.content = str(body.get("content") or "")
        if "embeds" in body or not editing:
            message.embeds = list(body.get("embeds") or [])
        if "components" in body or not editing:
            message.components = list(body.get("components") or [])
        if "flags" in body and body["flags"] is not None:
            kept = message.flags & (FLAG_EPHEMERAL | FLAG_LOADING)
            message.flags = (int(body["flags"]) & ~(FLAG_EPHEMERAL | FLAG_LOADING)) | kept
        if "attachments" in body or files:
            existing = {
                int(a["id"]): (a, f)
                for a, f in zip(message.attachments, message.files, strict=False)
            }
            new_attachments: list[JSON] = []
            new_files: list[FakeFile] = []
            used_uploads: set[int] = set()
            for entry in body.get("attachments") or []:
                entry_id = int(entry["id"])
                if entry_id in existing:
                    new_attachments.append(existing[entry_id][0])
                    new_files.append(existing[entry_id][1])
                elif 0 <= entry_id < len(files):
                    upload = files[entry_id]
                    if entry.get("description"):
                        upload = FakeFile(
                            upload.filename,
                            upload.data,
                            upload.content_type,
                            str(entry["description"]),
                        )
                    used_uploads.add(entry_id)
                    new_attachments.append(self._store_file(upload))
                    new_files.append(upload)
            for index, upload in enumerate(files):
                if index not in used_uploads:
                    new_attachments.append(self._store_file(upload))
                    new_files.append(upload)
            message.attachments = new_attachments
            message.files = new_files
        if editing:
            message.edited_timestamp = _now_iso()
            message.edits.append(body)

    def _check_upload_size(self, files: list[FakeFile]) -> None:
        if sum(len(f.data) for f in files) > self.attachment_size_limit:
            raise _ApiError(413, 40005, "Request entity too large")

    async def _post_message(self, req: _Request) -> web.Response:
        channel = self._http_channel(req)
        body = req.body()
        files = req.record.files
        self._check_bot(channel, VIEW_CHANNEL | SEND_MESSAGES | (ATTACH_FILES if files else 0))
        self._check_upload_size(files)
        if (
            not any(body.get(k) for k in ("content", "embeds", "components", "sticker_ids"))
            and not files
        ):
            raise _ApiError(400, 50006, "Cannot send an empty message")
        reference = body.get("message_reference") or {}
        reference_id = int(reference["message_id"]) if reference.get("message_id") else None
        if reference_id is not None and reference_id not in self.messages:
            raise _ApiError(400, 50035, "Invalid Form Body: Unknown message")
        message = FakeMessage(
            id=self._next_id(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author_id=self.bot_user_id,
            type=MESSAGE_REPLY if reference_id is not None else MESSAGE_DEFAULT,
            reference_id=reference_id,
        )
        self._apply_message_body(message, body, files, editing=False)
        self.messages[message.id] = message
        self.sent_messages.append(message)
        self._emit(
            "message_sent",
            f"bot in #{channel.name or channel.id}: {_summary(message)}",
            channel_id=channel.id,
            message_id=message.id,
        )
        if self.echo_bot_messages:
            await self._dispatch_message_event("MESSAGE_CREATE", message)
        return _json_response(self.message_payload(message))

    async def _patch_message(self, req: _Request) -> web.Response:
        channel = self._http_channel(req)
        message = self._http_message(req, channel)
        if message.author_id != self.bot_user_id:
            raise _ApiError(403, 50005, "Cannot edit a message authored by another user")
        self._apply_message_body(message, req.body(), req.record.files, editing=True)
        self._emit(
            "message_edited",
            f"bot edited {message.id}: {_summary(message)}",
            channel_id=channel.id,
            message_id=message.id,
        )
        if self.echo_bot_messages:
            await self._dispatch_message_event("MESSAGE_UPDATE", message)
        return _json_response(self.message_payload(message))

    async def _delete_message(self, req: _Request) -> web.Response:
        channel = self._http_channel(req)
        message = self._http_message(req, channel)
        if message.author_id != self.bot_user_id:
            self._check_bot(channel, VIEW_CHANNEL | MANAGE_MESSAGES)
        message.deleted = True
        self._emit(
            "message_deleted",
            f"bot deleted message {message.id}",
            channel_id=channel.id,
            message_id=message.id,
        )
        if self.echo_bot_messages:
            payload: JSON = {"id": str(message.id), "channel_id": str(channel.id)}
            if channel.guild_id is not None:
                payload["guild_id"] = str(channel.guild_id)
            await self._dispatch_if_connected("MESSAGE_DELETE", payload)
        return _no_content()

    async def _bulk_delete_messages(self, req: _Request) -> web.Response:
        channel = self._http_channel(req)
        self._check_bot(channel, VIEW_CHANNEL | MANAGE_MESSAGES)
        ids = [int(i) for i in req.body().get("messages", [])]
        if not 2 <= len(ids) <= 100:
            raise _ApiError(400, 50016, "You must provide at least 2 and fewer than 100 messages")
        for message_id in ids:
            message = self.messages.get(message_id)
            if message is not None and message.channel_id == channel.id:
                message.deleted = True
        self._emit(
            "message_deleted", f"bot bulk-deleted {len(ids)} messages", channel_id=channel.id
        )
        if self.echo_bot_messages:
            payload: JSON = {"ids": [str(i) for i in ids], "channel_id": str(channel.id)}
            if channel.guild_id is not None:
                payload["guild_id"] = str(channel.guild_id)
            await self._dispatch_if_connected("MESSAGE_DELETE_BULK", payload)
        return _no_content()

    async def _put_reaction(self, req: _Request) -> web.Response:
        channel = self._http_channel(req)
        if req.params["user"] != "@me":
            raise _ApiError(405, 0, "405: Method Not Allowed")
        self._check_bot(channel, VIEW_CHANNEL | READ_MESSAGE_HISTORY | ADD_REACTIONS)
        message = self._http_message(req, channel)
        emoji = req.params["emoji"]
        users = message.reactions.setdefault(emoji, set())
        if self.bot_user_id not in users:  # Discord: adding twice is a no-op
            users.add(self.bot_user_id)
            self.reactions.append(
                Reaction(channel.id, message.id, emoji, self.bot_user_id, time.monotonic())
            )
            self._emit(
                "reaction_added",
                f"bot reacted {emoji} to message {message.id}",
                channel_id=channel.id,
                message_id=message.id,
                emoji=emoji,
            )
        return _no_content()

    async def _delete_reaction(self, req: _Request) -> web.Response:
        channel = self._http_channel(req)
        message = self._http_message(req, channel)
        who = req.params["user"]
        user_id = self.bot_user_id if who == "@me" else int(who)
        if user_id != self.bot_user_id:
            self._check_bot(channel, VIEW_CHANNEL | MANAGE_MESSAGES)
        emoji = req.params["emoji"]
        users = message.reactions.get(emoji, set())
        if user_id in users:
            users.discard(user_id)
            for reaction in self.reactions:
                if (
                    reaction.message_id == message.id
                    and reaction.emoji == emoji
                    and reaction.user_id == user_id
                    and reaction.active
                ):
                    reaction.removed_at = time.monotonic()
            self._emit(
                "reaction_removed",
                f"bot removed reaction {emoji} from message {message.id}",
                channel_id=channel.id,
                message_id=message.id,
                emoji=emoji,
            )
        return _no_content()

    async def _logout(self, req: _Request) -> web.Response:
        return _no_content()

    # ---------------------------------------------------------------- HTTP: interactions

    def _interaction_by_token(self, req: _Request) -> FakeInteraction:
        self._check_app(req)
        token = req.params["token"]
        for interaction in self.interactions.values():
            if interaction.token == token:
                return interaction
        raise _not_found(10015, "Unknown Webhook")

    def _new_interaction_message(
        self, interaction: FakeInteraction, body: JSON, files: list[FakeFile], *, flags: int
    ) -> FakeMessage:
        if interaction.type == INTERACTION_APPLICATION_COMMAND:
            is_slash = interaction.name.startswith("/")
            mtype = MESSAGE_CHAT_INPUT_COMMAND if is_slash else MESSAGE_CONTEXT_MENU_COMMAND
        else:
            mtype = MESSAGE_DEFAULT
        message = FakeMessage(
            id=self._next_id(),
            channel_id=interaction.channel_id,
            guild_id=interaction.guild_id,
            author_id=self.bot_user_id,
            type=mtype,
            interaction_id=interaction.id,
            webhook_id=self.application_id,
        )
        self._apply_message_body(message, body, files, editing=False)
        message.flags = (message.flags & ~(FLAG_EPHEMERAL | FLAG_LOADING)) | flags
        self.messages[message.id] = message
        return message

    async def _callback(self, req: _Request) -> web.Response:
        interaction = self.interactions.get(req.int_param("interaction_id"))
        if interaction is None or interaction.token != req.params["token"]:
            raise _not_found(10062, "Unknown interaction")
        if time.monotonic() - interaction.created_at > self.interaction_timeout:
            raise _not_found(10062, "Unknown interaction")
        if interaction.response is not None:
            raise _ApiError(400, 40060, "Interaction has already been acknowledged.")
        body = req.body()
        kind = int(body.get("type", 0))
        data: JSON = body.get("data") or {}
        files = req.record.files
        self._check_upload_size(files)
        if kind not in (1, 4, 5, 6, 7, 8, 9, 12):
            raise _ApiError(400, 50035, f"Invalid Form Body: unknown callback type {kind}")
        if kind in (CALLBACK_DEFERRED_UPDATE, CALLBACK_UPDATE_MESSAGE):
            self._component_message(interaction)  # 400 unless it is a component interaction
        interaction.response = body
        interaction.response_files = files
        interaction.responded_at = time.monotonic()
        message: FakeMessage | None = None
        echo: str | None = None
        if kind == CALLBACK_MESSAGE:
            flags = int(data.get("flags") or 0) & FLAG_EPHEMERAL
            message = self._new_interaction_message(interaction, data, files, flags=flags)
            interaction.original = message
            interaction._visible = (message, "response")
            echo = "MESSAGE_CREATE"
        elif kind == CALLBACK_DEFERRED_MESSAGE:
            flags = (int(data.get("flags") or 0) & FLAG_EPHEMERAL) | FLAG_LOADING
            message = self._new_interaction_message(interaction, {}, [], flags=flags)
            interaction.original = message
            echo = "MESSAGE_CREATE"
        elif kind == CALLBACK_UPDATE_MESSAGE:
            message = self._component_message(interaction)
            self._apply_message_body(message, data, files, editing=True)
            interaction.original = message
            interaction._visible = (message, "update")
            echo = "MESSAGE_UPDATE"
        self._emit(
            "interaction_response",
            f"bot answered {interaction.name} (callback type {kind})"
            + (f": {_summary(message)}" if message is not None and not message.loading else ""),
            interaction_id=interaction.id,
            type=kind,
        )
        if echo and message is not None and not message.ephemeral and self.echo_bot_messages:
            await self._dispatch_message_event(echo, message)
        result: JSON = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_loading": kind == CALLBACK_DEFERRED_MESSAGE,
                "response_message_ephemeral": bool(message is not None and message.ephemeral),
            }
        }
        if message is not None:
            result["interaction"]["response_message_id"] = str(message.id)
            result["resource"] = {"type": kind, "message": self.message_payload(message)}
        return _json_response(result)

    def _component_message(self, interaction: FakeInteraction) -> FakeMessage:
        if interaction.type != INTERACTION_COMPONENT or interaction.target_message_id is None:
            raise _ApiError(
                400, 50035, "Invalid Form Body: this interaction has no message to update"
            )
        return self.messages[interaction.target_message_id]

    async def _post_followup(self, req: _Request) -> web.Response:
        interaction = self._interaction_by_token(req)
        if interaction.response is None:
            raise _not_found(10015, "Unknown Webhook")
        body = req.body()
        files = req.record.files
        self._check_upload_size(files)
        original = interaction.original
        if original is not None and original.loading and not interaction.followups:
            # Discord: the first follow-up after a "thinking" defer replaces the loading message.
            original.flags &= ~FLAG_LOADING
            self._apply_message_body(original, body, files, editing=False)
            message = original
            echo = "MESSAGE_UPDATE"
        else:
            flags = int(body.get("flags") or 0) & FLAG_EPHEMERAL
            message = self._new_interaction_message(interaction, body, files, flags=flags)
            echo = "MESSAGE_CREATE"
        interaction.followups.append(message)
        interaction._visible = (message, "followup")
        self._emit(
            "interaction_followup",
            f"bot follow-up to {interaction.name}: {_summary(message)}",
            interaction_id=interaction.id,
            message_id=message.id,
        )
        if not message.ephemeral and self.echo_bot_messages:
            await self._dispatch_message_event(echo, message)
        if req.record.query.get("wait", "false").lower() in ("1", "true"):
            return _json_response(self.message_payload(message))
        return _no_content()

    def _webhook_target(self, req: _Request, interaction: FakeInteraction) -> FakeMessage:
        which = req.params["message"]
        if which == "@original":
            if (
                interaction.original is None
                and interaction.response_type == CALLBACK_DEFERRED_UPDATE
            ):
                return self._component_message(interaction)
            if interaction.original is None or interaction.original.deleted:
                raise _not_found()
            return interaction.original
        message = next((m for m in interaction.followups if m.id == int(which)), None)
        if message is None or message.deleted:
            raise _not_found()
        return message

    async def _get_webhook_message(self, req: _Request) -> web.Response:
        interaction = self._interaction_by_token(req)
        return _json_response(self.message_payload(self._webhook_target(req, interaction)))

    async def _patch_webhook_message(self, req: _Request) -> web.Response:
        interaction = self._interaction_by_token(req)
        message = self._webhook_target(req, interaction)
        body = req.body()
        self._check_upload_size(req.record.files)
        message.flags &= ~FLAG_LOADING
        self._apply_message_body(message, body, req.record.files, editing=True)
        interaction.edits.append(body)
        if req.params["message"] == "@original":
            interaction.original = message
        interaction._visible = (message, "edit")
        self._emit(
            "interaction_edit",
            f"bot edited its answer to {interaction.name}: {_summary(message)}",
            interaction_id=interaction.id,
            message_id=message.id,
        )
        if not message.ephemeral and self.echo_bot_messages:
            await self._dispatch_message_event("MESSAGE_UPDATE", message)
        return _json_response(self.message_payload(message))

    async def _delete_webhook_message(self, req: _Request) -> web.Response:
        interaction = self._interaction_by_token(req)
        message = self._webhook_target(req, interaction)
        message.deleted = True
        if interaction._visible is not None and interaction._visible[0] is message:
            interaction._visible = None
        self._emit(
            "message_deleted",
            f"bot deleted its answer {message.id} to {interaction.name}",
            interaction_id=interaction.id,
            message_id=message.id,
        )
        if not message.ephemeral and self.echo_bot_messages:
            payload: JSON = {"id": str(message.id), "channel_id": str(message.channel_id)}
            if message.guild_id is not None:
                payload["guild_id"] = str(message.guild_id)
            await self._dispatch_if_connected("MESSAGE_DELETE", payload)
        return _no_content()


_OPTION_TYPES: Final[dict[int, str]] = {
    1: "subcommand",
    2: "subcommand group",
    3: "string",
    4: "integer",
    5: "boolean",
    6: "user",
    7: "channel",
    8: "role",
    9: "mentionable",
    10: "number",
    11: "attachment",
}


def _as_id(name: str, value: Any) -> int:
    """A snowflake from an int, a numeric string or a Fake{User,Member,Channel,Role}."""
    if isinstance(value, FakeMember):
        return value.user.id
    if isinstance(value, FakeUser | FakeChannel | FakeRole):
        return value.id
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ValueError(f"{name} takes an id (int) or a Fake user/member/channel/role, got {value!r}")


def _short(path: str) -> str:
    """A path with interaction tokens shortened, for messages."""
    return re.sub(r"(fake-interaction\.[\w-]{6})[\w-]+", r"\1...", path)


def _emoji_payload(emoji: str) -> JSON:
    """``name:id`` (custom emoji, as discord.py sends it) or a unicode emoji."""
    name, _, emoji_id = emoji.rpartition(":")
    if name and emoji_id.isdigit():
        return {"id": emoji_id, "name": name.removeprefix("a:")}
    return {"id": None, "name": emoji}


def _walk_components(components: Iterable[Any]) -> Iterator[JSON]:
    """Every component, depth first (action rows, sections' accessories, containers...)."""
    for component in components:
        if not isinstance(component, dict):
            continue
        yield component
        yield from _walk_components(component.get("components") or [])
        accessory = component.get("accessory")
        if isinstance(accessory, dict):
            yield from _walk_components([accessory])


def _summary(message: FakeMessage) -> str:
    parts: list[str] = []
    if message.content:
        parts.append(
            repr(message.content if len(message.content) <= 80 else message.content[:77] + "...")
        )
    if message.embeds:
        titles = [
            str(e.get("title") or e.get("description") or "embed")[:40] for e in message.embeds
        ]
        parts.append(f"embeds {titles}")
    if message.files:
        parts.append(f"files {[f.filename for f in message.files]}")
    if message.components:
        parts.append(f"{sum(1 for _ in _walk_components(message.components))} components")
    if message.ephemeral:
        parts.append("(ephemeral)")
    return " ".join(parts) or "(empty)"


async def _read_body(request: web.Request) -> tuple[Any, list[FakeFile]]:
    """Decode a JSON or multipart (``payload_json`` + ``files[n]``) request body."""
    if request.content_type == "multipart/form-data":
        payload: Any = None
        uploads: dict[int, FakeFile] = {}
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, aiohttp.BodyPartReader):
                raise ValueError("nested multipart is not supported")
            name = part.name or ""
            if name == "payload_json":
                payload = json.loads(await part.text())
                continue
            found = re.fullmatch(r"files\[(\d+)\]", name) or re.fullmatch(r"file(\d*)", name)
            if found is None:
                raise ValueError(f"unexpected multipart field {name!r}")
            index = int(found.group(1) or 0)
            content_type = part.headers.get(aiohttp.hdrs.CONTENT_TYPE)
            uploads[index] = FakeFile(
                filename=part.filename or f"file{index}",
                data=bytes(await part.read(decode=False)),
                content_type=None
                if content_type in (None, "application/octet-stream")
                else content_type,
            )
        return payload, [uploads[i] for i in sorted(uploads)]
    raw = await request.read()
    if not raw:
        return None, []
    if request.content_type == "application/json":
        return json.loads(raw), []
    return raw.decode(errors="replace"), []


# --------------------------------------------------------------------------------------------
# Pointing discord.py at the fake, and running a client against it
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def point_discord_py_at(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py's REST base and default gateway at ``fake`` (restored on exit).

    Sets ``discord.http.Route.BASE`` (read whenever a Route is built, so also used by the
    webhook adapter for interaction callbacks and follow-ups) and
    ``DiscordWebSocket.DEFAULT_GATEWAY`` (a ``yarl.URL``; discord.py adds ``v``, ``encoding``
    and ``compress`` query parameters itself).  A plain ``Client``/``commands.Bot`` never
    calls ``GET /gateway``; an ``AutoShardedClient`` calls ``GET /gateway/bot``, which the
    fake also answers.  Keep it active for the whole life of the client: RESUME after an
    invalid session reconnects to ``DEFAULT_GATEWAY``.  Not safe to use with two fakes at once.
    """
    old_base = Route.BASE
    old_gateway = DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = fake.api_base_url
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        Route.BASE = old_base
        DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


class _ErrorLogCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class RunningClient:
    """A discord.py client running against a fake (yielded by :func:`running_client`)."""

    client: discord.Client
    task: asyncio.Task[None]
    fake: FakeDiscord
    #: ERROR records logged by discord.py (e.g. "Ignoring exception in on_message").
    error_logs: list[logging.LogRecord]

    def raise_if_died(self) -> None:
        """Raise :class:`ClientDiedError` if the client task ended with an exception."""
        if self.task.done() and not self.task.cancelled() and self.task.exception() is not None:
            raise ClientDiedError(
                f"client task died: {self.task.exception()!r}"
            ) from self.task.exception()

    def raise_if_problems(self) -> None:
        """Raise :class:`StrictModeError` listing :meth:`problems`, if there are any."""
        problems = self.problems()
        if problems:
            raise StrictModeError("problems while the client ran:\n  " + "\n  ".join(problems))

    def problems(self) -> list[str]:
        """Error logs, unanswered requests and fake-internal errors, as readable lines."""
        lines = [
            f"discord.py logged {r.levelname} from {r.name}: {r.getMessage()}"
            + (f" ({r.exc_info[1]!r})" if r.exc_info and r.exc_info[1] else "")
            for r in self.error_logs
        ]
        lines += [
            f"fake has no route for {r.method} {r.path}" for r in self.fake.unhandled_requests
        ]
        lines += [f"fake internal error: {e!r}" for e in self.fake.internal_errors]
        return lines


async def _login_and_connect(client: discord.Client, token: str, reconnect: bool) -> None:
    await client.login(token)
    await client.connect(reconnect=reconnect)


@contextlib.asynccontextmanager
async def running_client(
    client: discord.Client,
    fake: FakeDiscord,
    *,
    token: str | None = None,
    timeout: float = 10.0,
    strict: bool = True,
    reconnect: bool = False,
) -> AsyncIterator[RunningClient]:
    """Run ``client`` against ``fake`` until the block ends; wait until it is ready first.

    Runs ``client.login(token)`` + ``client.connect(reconnect=reconnect)`` as a task while
    discord.py is pointed at the fake, and waits (up to ``timeout``) until the client has
    dispatched ``on_ready`` (set ``guild_ready_timeout`` low on the client, e.g. 0.1, or this
    takes 2 s).  The fake's waits raise :class:`ClientDiedError` at once if the task dies and,
    with ``strict``, :class:`StrictModeError` at once if discord.py logs an error, the client
    calls a route the fake lacks, or the fake fails; the same checks run on exit, after the
    client is closed and its task awaited.  Use ``strict=False`` for a test that provokes
    such an error on purpose (then inspect ``error_logs``).

    ``reconnect=False`` (the default) makes failures surface at once; resumable gateway
    closes are still RESUMEd.  Pass ``reconnect=True`` to get discord.py's production
    behaviour, e.g. a 4014 close raising ``PrivilegedIntentsRequired`` (with ``False``
    discord.py raises the bare ``ConnectionClosed`` before it maps the code).
    """
    collector = _ErrorLogCollector()
    discord_logger = logging.getLogger("discord")
    discord_logger.addHandler(collector)
    with point_discord_py_at(fake):
        task: asyncio.Task[None] = asyncio.create_task(
            _login_and_connect(client, token or fake.token or DEFAULT_TOKEN, reconnect),
            name=f"discord.py client ({type(client).__name__})",
        )
        runner = RunningClient(client, task, fake, collector.records)
        fake.watch_task(task)
        if strict:
            fake.add_failure_check(runner.raise_if_problems)
        try:
            await _wait_until_ready(client, fake, task, timeout)
            yield runner
        finally:
            fake.unwatch_task(task)
            fake.remove_failure_check(runner.raise_if_problems)
            await _stop_client(client, task, timeout)
            discord_logger.removeHandler(collector)
    runner.raise_if_died()
    if strict:
        runner.raise_if_problems()


async def _stop_client(client: discord.Client, task: asyncio.Task[None], timeout: float) -> None:
    """Close the client and wait for its task; never raises (the task keeps its outcome)."""
    try:
        await asyncio.wait_for(client.close(), timeout)
    except Exception:
        _log.exception("closing the discord.py client failed")
    await asyncio.wait({task}, timeout=timeout)
    if not task.done():
        _log.error(
            "the discord.py client task did not end %ss after close(); cancelling it", timeout
        )
        task.cancel()
        await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # mark it retrieved; raise_if_died re-raises it


async def _wait_until_ready(
    client: discord.Client, fake: FakeDiscord, task: asyncio.Task[None], timeout: float
) -> None:
    try:
        await fake.wait_for(
            lambda: client.is_ready() or task.done(),
            timeout,
            description="the client to become ready (on_ready; hint: guild_ready_timeout=0.1)",
        )
    except ClientDiedError as exc:
        raise ClientDiedError(f"client task ended before it was ready: {exc.__cause__!r}") from (
            exc.__cause__
        )
    if not client.is_ready():
        raise ClientDiedError("client task ended before it was ready (without an exception)")
