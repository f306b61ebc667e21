"""The :class:`FakeDiscord` server: it assembles the world, the gateway, the REST routes, the
interaction driver and fault injection on one aiohttp server, and is the one object a test
builds the world with, drives the bot through and observes."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from fakediscord import cdn
from fakediscord.activity import Activity
from fakediscord.faults import Fault, FaultInjector
from fakediscord.gateway import Gateway
from fakediscord.interactions import FakeInteraction, InteractionDriver
from fakediscord.model import FakeFile, FakeGuild, FakeMessage, FakeUser
from fakediscord.protocol import (
    API_VERSION,
    DEFAULT_APPLICATION_ID,
    DEFAULT_BOT_USER_ID,
    DEFAULT_EVERYONE_PERMISSIONS,
    GUILDS_PER_RECOMMENDED_SHARD,
    JSON,
    MAX_GUILDS_PER_SHARD,
    PRIVILEGED_INTENTS,
)
from fakediscord.records import FakeEvent, RecordedRequest
from fakediscord.rest.app import rest_app
from fakediscord.rest.plumbing import FAKE, PREFIX
from fakediscord.user_messages import UserMessages
from fakediscord.world import World

_log = logging.getLogger(__name__)


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
    ``gateway_delay``, ``recommended_shards``, ``max_guilds_per_shard``.

    Sharding: a client may IDENTIFY as ``[shard_id, shard_count]`` (several clients, or one
    ``AutoShardedClient``, as the shards of one application); each guild's events, and the
    interactions in it, go only to the session of its shard (:func:`shard_of`), direct
    messages to shard 0. ``deliveries`` records which session got each dispatch.

    The parts are ``world`` (the model), ``gateway``, ``activity`` (the
    record and the waits) and ``faults``.
    """

    def __init__(
        self,
        *,
        bot_name: str,
        application_id: int = DEFAULT_APPLICATION_ID,
        bot_user_id: int = DEFAULT_BOT_USER_ID,
        token: str | None = None,
        heartbeat_interval_ms: int = 41_250,
        interaction_timeout: float = 3.0,
        enabled_privileged_intents: int = PRIVILEGED_INTENTS,
        attachment_size_limit: int = 10 * 1024 * 1024,
    ) -> None:
        """``bot_name``: the bot user's (and application's) name.  ``token``: when set, REST
        calls and IDENTIFY with another token are refused (401 / close 4004), so a wrong-token
        path can be tested; None accepts any token."""
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
        #: The shard count ``GET /gateway/bot`` recommends; None: one per 1,000 guilds, as
        #: Discord does.
        self.recommended_shards: int | None = None
        #: An IDENTIFY whose shard would hold more guilds than this is closed with 4011
        #: (sharding required), as Discord does from 2,500 guilds.
        self.max_guilds_per_shard = MAX_GUILDS_PER_SHARD
        self.port: int | None = None

        self.world = World(
            application_id=application_id,
            bot_user_id=bot_user_id,
            bot_name=bot_name,
            base_url=lambda: self.base_url,
        )
        self.activity = Activity(lambda: self.gateway.status_line())
        self.gateway = Gateway(self.world, self.activity, self)
        self.faults = FaultInjector()
        self._user_messages = UserMessages(self.world, self.gateway)
        self._interactions = InteractionDriver(self.world, self.gateway, self.activity, self)
        self._runner: web.AppRunner | None = None

        # The parts' state, under the names tests read (the same objects, not copies).
        self.bot_user: FakeUser = self.world.bot_user
        self.users = self.world.users
        self.guilds = self.world.guilds
        self.channels = self.world.channels
        self.messages = self.world.messages
        self.interactions = self.world.interactions
        #: Synced application commands: key None = global, else the guild id.
        self.synced_commands = self.world.synced_commands
        #: Every HTTP request, in arrival order.
        self.requests = self.activity.requests
        #: Requests no route of the fake knows (answered 404); usually a gap in the fake.
        self.unhandled_requests = self.activity.unhandled_requests
        #: Reactions the bot added (removal sets ``removed_at``).
        self.reactions = self.activity.reactions
        #: Messages the bot sent with ``POST /channels/{c}/messages`` (objects from ``messages``).
        self.sent_messages = self.activity.sent_messages
        #: Exceptions raised inside the fake itself (bugs in the fake), surfaced by running_client.
        self.internal_errors = self.activity.internal_errors
        #: Every gateway frame the client sent (heartbeats included), decoded.
        self.gateway_received = self.gateway.received
        #: Every gateway connection the client opened.
        self.gateway_connections = self.gateway.connections
        #: Every dispatch given to a session: event, guild, shard, connection (Delivery).
        self.deliveries = self.gateway.deliveries
        #: Set while a client session is live (after READY + GUILD_CREATEs, or RESUMED).
        self.ready: asyncio.Event = self.gateway.ready

    @property
    def identify_count(self) -> int:
        return self.gateway.identify_count

    @property
    def resume_count(self) -> int:
        return self.gateway.resume_count

    @property
    def live_shards(self) -> list[tuple[int, int]]:
        """(shard id, shard count) of each live gateway session ((0, 1) for a client that did
        not ask for sharding)."""
        return self.gateway.live_shards

    def recommended_shard_count(self) -> int:
        """What ``GET /gateway/bot`` answers as ``shards``."""
        if self.recommended_shards is not None:
            return self.recommended_shards
        return max(1, math.ceil(len(self.guilds) / GUILDS_PER_RECOMMENDED_SHARD))

    @property
    def presence(self) -> JSON | None:
        """The last presence (op 3) the client sent."""
        return self.gateway.presence

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
        max_size = self.attachment_size_limit + 1024 * 1024
        app = web.Application(client_max_size=max_size)
        app[FAKE] = self
        app.router.add_get("/gateway", self.gateway.handler)
        app.router.add_get("/gateway/", self.gateway.handler)
        app.router.add_routes(cdn.routes)
        app.add_subapp(PREFIX, rest_app(max_size))
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(runner.addresses[0][1])
        self._runner = runner
        _log.debug("fake Discord listening on %s", self.base_url)

    async def close(self) -> None:
        """Close every gateway websocket (code 1000) and stop the server."""
        await self.gateway.close()
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
        return self.world.add_guild(
            guild_id,
            name,
            owner_id=owner_id,
            everyone_permissions=everyone_permissions,
            bot_roles=bot_roles,
        )

    def add_user(self, user_id: int, name: str, *, bot: bool = False) -> FakeUser:
        """Add a user who is in no guild (e.g. for DMs); members are created by add_member."""
        return self.world.add_user(user_id, name, bot=bot)

    def open_dm(self, user_id: int) -> int:
        """The DM channel id between the bot and ``user_id`` (created if needed)."""
        return self.world.open_dm(user_id)

    def bot_permissions(self, guild_id: int) -> int:
        """The bot's guild-level permission bitfield in ``guild_id``."""
        return self.guilds[guild_id].permissions_of(self.bot_user_id)

    # ---------------------------------------------------------------- observing

    def add_listener(self, callback: Callable[[FakeEvent], None]) -> None:
        """Call ``callback(event)`` for every :class:`FakeEvent` (e.g. the sandbox console)."""
        self.activity.add_listener(callback)

    def remove_listener(self, callback: Callable[[FakeEvent], None]) -> None:
        self.activity.remove_listener(callback)

    def watch_task(self, task: asyncio.Task[Any]) -> None:
        """Make every wait of the fake fail at once (ClientDiedError) if ``task`` crashes."""
        self.activity.watch_task(task)

    def unwatch_task(self, task: asyncio.Task[Any]) -> None:
        self.activity.unwatch_task(task)

    def add_failure_check(self, check: Callable[[], None]) -> None:
        """Call ``check()`` on every poll of every wait; whatever it raises ends the wait.

        :func:`running_client` uses this to fail waits as soon as discord.py logs an error.
        """
        self.activity.add_failure_check(check)

    def remove_failure_check(self, check: Callable[[], None]) -> None:
        self.activity.remove_failure_check(check)

    def requests_to(self, method: str, path_regex: str) -> list[RecordedRequest]:
        """Recorded requests with that method (``*`` = any) whose path matches ``path_regex``."""
        pattern = re.compile(path_regex)
        return [r for r in self.requests if method in ("*", r.method) and pattern.search(r.path)]

    def active_reactions(self, message_id: int) -> list[str]:
        """Emojis the bot currently has on ``message_id``."""
        return [r.emoji for r in self.reactions if r.message_id == message_id and r.active]

    def messages_in(self, channel_id: int, *, include_deleted: bool = False) -> list[FakeMessage]:
        """Messages in a channel, oldest first."""
        return self.world.messages_in(channel_id, include_deleted=include_deleted)

    def message_payload(self, message: FakeMessage, *, for_intents: int | None = None) -> JSON:
        """The Discord message object for ``message``.

        With ``for_intents`` (a gateway session's intents) the content is blanked like Discord
        does for bots without the MESSAGE_CONTENT intent (unless the bot is the author, is
        mentioned, or it is a DM).
        """
        return self.world.message_payload(message, for_intents=for_intents)

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
        await self.activity.wait_for(predicate, timeout, description=description)

    async def wait_idle(self, idle: float = 0.2, timeout: float = 10.0) -> None:
        """Wait until no request or gateway frame arrived for ``idle`` seconds.

        Only for asserting that something did *not* happen; prefer :meth:`wait_for`.
        """
        await self.activity.wait_idle(idle, timeout)

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
        return self.faults.add(
            method,
            path_regex,
            status,
            times=times,
            retry_after=retry_after,
            json=json,
            is_global=is_global,
        )

    def clear_faults(self) -> None:
        self.faults.clear()

    # ---------------------------------------------------------------- the gateway

    async def dispatch(self, event: str, data: JSON) -> bool:
        """Send a raw DISPATCH (op 0) event to the session of its guild's shard (``guild_id``,
        or ``id`` for GUILD_* events; none: shard 0); returns False if no session took it
        (filtered by intents, or no session of that shard).

        Raises RuntimeError when no client has identified yet.  While the client is
        disconnected the event is kept and replayed if the client RESUMEs.
        """
        return await self.gateway.dispatch(event, data)

    async def drop_gateway(
        self, code: int = 4000, *, end_session: bool | None = None, shard_id: int | None = None
    ) -> None:
        """Close the client's websocket with ``code`` (with several shards connected, the one
        of ``shard_id``).

        discord.py tries to RESUME after every code but 4004, 4010-4014 and a clean 1000 it
        asked for (on those it gives up).  Like Discord, the fake ends the session itself on
        4007 (invalid seq) and 4009 (session timed out): the RESUME is answered with op 9 and
        the client IDENTIFYs again, and events sent meanwhile are never delivered.
        ``end_session`` overrides that choice for any code.  Wait for the reconnection with
        ``await fake.wait_for(lambda: fake.ready.is_set())``.
        """
        await self.gateway.drop(code, end_session=end_session, shard_id=shard_id)

    async def remove_bot_from_guild(self, guild_id: int) -> None:
        """The bot is removed from a guild (kicked, banned, or the guild deleted): GUILD_DELETE
        without ``unavailable`` (with it, it would be an outage), so discord.py dispatches
        ``on_guild_remove``. The guild is then out of the bot's world (not in READY, its
        channels and members unreachable) until :meth:`add_bot_to_guild`."""
        self.world.remove_bot(guild_id)
        await self.gateway.dispatch_if_connected("GUILD_DELETE", {"id": str(guild_id)})
        self.activity.emit("gateway", f"the bot was removed from guild {guild_id}")

    async def add_bot_to_guild(self, guild_id: int) -> None:
        """The bot is added back to a guild it was removed from: GUILD_CREATE without
        ``unavailable`` (a join, not a guild coming back from an outage), so discord.py
        dispatches ``on_guild_join``."""
        guild = self.world.add_bot(guild_id)
        bot_member = guild.members.get(self.bot_user_id)
        payload = guild.to_payload([bot_member] if bot_member else [])
        payload.pop("unavailable", None)
        await self.gateway.dispatch_if_connected("GUILD_CREATE", payload)
        self.activity.emit("gateway", f"the bot was added to guild {guild_id}")

    async def request_reconnect(self, *, shard_id: int | None = None) -> None:
        """Send op 7 RECONNECT (to ``shard_id``'s connection when several are connected): the
        client closes and RESUMEs."""
        await self.gateway.request_reconnect(shard_id=shard_id)

    # ---------------------------------------------------------------- a user's messages

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
        return await self._user_messages.send(
            channel_id, author_id, content, attachments=attachments, reply_to=reply_to
        )

    async def edit_message(self, channel_id: int, message_id: int, content: str) -> None:
        """A user edits their message: MESSAGE_UPDATE."""
        await self._user_messages.edit(channel_id, message_id, content)

    async def delete_message(self, channel_id: int, message_id: int) -> None:
        """A message is deleted (by its author or a moderator): MESSAGE_DELETE."""
        await self._user_messages.delete(channel_id, message_id)

    async def bulk_delete(self, channel_id: int, message_ids: list[int]) -> None:
        """Messages are purged by a moderator: MESSAGE_DELETE_BULK."""
        await self._user_messages.bulk_delete(channel_id, message_ids)

    # ---------------------------------------------------------------- a user's interactions

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
        return await self._interactions.invoke_slash(
            name,
            options,
            user_id=user_id,
            channel_id=channel_id,
            guild_id=guild_id,
            subcommand=subcommand,
        )

    async def invoke_message_command(
        self, name: str, *, target_message_id: int, user_id: int, channel_id: int, guild_id: int
    ) -> FakeInteraction:
        """A user runs a message context-menu command (type 2, ``data.type`` 3) on a message."""
        return await self._interactions.invoke_message_command(
            name,
            target_message_id=target_message_id,
            user_id=user_id,
            channel_id=channel_id,
            guild_id=guild_id,
        )

    async def invoke_user_command(
        self, name: str, *, target_user_id: int, user_id: int, channel_id: int, guild_id: int
    ) -> FakeInteraction:
        """A user runs a user context-menu command (type 2, ``data.type`` 2) on a member."""
        return await self._interactions.invoke_user_command(
            name,
            target_user_id=target_user_id,
            user_id=user_id,
            channel_id=channel_id,
            guild_id=guild_id,
        )

    async def click_button(
        self, message_id: int, custom_id: str, *, user_id: int, channel_id: int, guild_id: int
    ) -> FakeInteraction:
        """A user clicks a button on a bot message (INTERACTION_CREATE type 3).

        Raises ``LookupError`` if the message has no such button (listing the ones it has)
        and ``ValueError`` if it is disabled or the message was deleted.
        """
        return await self._interactions.use_component(
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
        return await self._interactions.use_component(
            message_id,
            custom_id,
            3,
            values,
            user_id=user_id,
            channel_id=channel_id,
            guild_id=guild_id,
        )
