"""The gateway: the websocket endpoint, HELLO and heartbeats, IDENTIFY (READY and the guilds),
RESUME with replay, member chunks, intent filtering, dispatching events (optionally late, for
a slow gateway) and dropping or recycling the connection.

Sharding as on Discord: IDENTIFY may carry ``shard: [shard_id, shard_count]``; each shard is
its own session, and a guild's events (GUILD_CREATE, messages, interactions ...) go only to the
session of shard ``(guild_id >> 22) % shard_count``, direct messages to shard 0. READY lists
the shard's guilds. A bad shard is closed with 4010, a shard with more guilds than
``max_guilds_per_shard`` with 4011. A client without ``shard`` is one session for every guild.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from fakediscord.activity import Activity
from fakediscord.model import FakeGuild, FakeMessage
from fakediscord.protocol import (
    API_VERSION,
    CLOSE_INVALID_SHARD,
    CLOSE_SHARDING_REQUIRED,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILD_PRESENCES,
    INTENT_MESSAGE_CONTENT,
    JSON,
    OP_DISPATCH,
    OP_HEARTBEAT,
    OP_HEARTBEAT_ACK,
    OP_HELLO,
    OP_IDENTIFY,
    OP_INVALID_SESSION,
    OP_PRESENCE,
    OP_RECONNECT,
    OP_REQUEST_MEMBERS,
    OP_RESUME,
    OP_VOICE_STATE,
    PRIVILEGED_INTENTS,
)
from fakediscord.records import Delivery
from fakediscord.wire import (
    GatewayConnection,
    GatewayConnectionInfo,
    GatewaySession,
    zstd_available,
)
from fakediscord.world import World

_log = logging.getLogger(__name__)

_MESSAGE_EVENTS = ("MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK")
_GUILD_EVENTS = ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE")  # the guild's id is "id"


def event_guild(event: str, data: JSON) -> int | None:
    """The guild an event is about (it decides the shard), None for none (a direct message)."""
    raw = data.get("id") if event in _GUILD_EVENTS else data.get("guild_id")
    return None if raw is None else int(raw)


def check_shard(shard: object) -> tuple[int, int] | None:
    """IDENTIFY's ``shard`` as (id, count), None when absent; ValueError when Discord would
    close with 4010 (not two whole numbers, count below 1, id outside 0..count-1)."""
    if shard is None:
        return None
    if (
        isinstance(shard, list)
        and len(shard) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) for x in shard)
        and shard[1] >= 1
        and 0 <= shard[0] < shard[1]
    ):
        return shard[0], shard[1]
    raise ValueError(f"invalid shard {shard!r}")


class GatewaySettings(Protocol):
    """The settings the gateway reads each time (a test may change them at any time)."""

    token: str | None
    heartbeat_interval_ms: int
    enabled_privileged_intents: int
    refuse_resume: bool
    gateway_delay: float
    max_guilds_per_shard: int

    @property
    def gateway_url(self) -> str: ...


class Gateway:
    """The client's gateway session and connections, and every frame sent on them."""

    def __init__(self, world: World, activity: Activity, settings: GatewaySettings) -> None:
        self._world = world
        self._activity = activity
        self._settings = settings
        #: Set while every identified session (shard) is live (after READY + GUILD_CREATEs,
        #: or RESUMED) and connected.
        self.ready = asyncio.Event()
        #: Every gateway frame the client sent (heartbeats included), decoded.
        self.received: list[JSON] = []
        #: Every gateway connection the client opened.
        self.connections: list[GatewayConnectionInfo] = []
        self.identify_count = 0
        self.resume_count = 0
        #: The last presence (op 3) the client sent.
        self.presence: JSON | None = None
        #: Every dispatch given to a session, in order (see :class:`Delivery`).
        self.deliveries: list[Delivery] = []
        #: The sessions by shard id (0 for a client that did not ask for sharding); a new
        #: IDENTIFY for a shard replaces its session.
        self._sessions: dict[int, GatewaySession] = {}
        self._open: set[GatewayConnection] = set()
        self._counter = 0
        self._delayed: deque[tuple[float, GatewayConnection, JSON]] = deque()
        self._delayer: asyncio.Task[None] | None = None

    @property
    def has_session(self) -> bool:
        """Whether a client has identified (events can be dispatched)."""
        return bool(self._sessions)

    def require_session(self, action: str) -> None:
        """Raise RuntimeError naming ``action`` while no client has identified."""
        if not self._sessions:
            raise RuntimeError(
                f"{action}: no client has identified yet "
                "(use running_client or await fake.ready.wait())"
            )

    @property
    def live_shards(self) -> list[tuple[int, int]]:
        """(shard id, shard count) of each live session, by shard id ((0, 1) unsharded)."""
        return [
            (s.shard_id, s.shard_count)
            for _, s in sorted(self._sessions.items())
            if s.live and s.connection is not None
        ]

    def _update_ready(self) -> None:
        sessions = self._sessions.values()
        if sessions and all(s.live and s.connection is not None for s in sessions):
            self.ready.set()
        else:
            self.ready.clear()

    def status_line(self) -> str:
        shards = ", ".join(
            f"shard {s.shard_id}/{s.shard_count} {'live' if s.live else 'down'}"
            for _, s in sorted(self._sessions.items())
        )
        sharded = f" ({shards})" if len(self._sessions) > 1 else ""
        return (
            f"gateway: session live={self.ready.is_set()}{sharded}, "
            f"identifies={self.identify_count}, resumes={self.resume_count}"
        )

    async def close(self) -> None:
        """Stop sending late frames and close every websocket (code 1000)."""
        if self._delayer is not None:
            self._delayer.cancel()
            await asyncio.gather(self._delayer, return_exceptions=True)
            self._delayed.clear()
        for conn in list(self._open):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=1000), timeout=2.0)
        self._open.clear()
        for session in self._sessions.values():
            session.live = False
        self.ready.clear()

    # ---------------------------------------------------------------- dispatching

    def _sessions_for(self, guild_id: int | None) -> list[GatewaySession]:
        """The sessions that get a guild's events: those of its shard."""
        return [s for _, s in sorted(self._sessions.items()) if s.covers(guild_id)]

    async def dispatch(self, event: str, data: JSON) -> bool:
        """Send a DISPATCH to the session of the event's shard (see :meth:`FakeDiscord.dispatch`);
        False when no session took it (filtered by intents, or its shard has no session)."""
        if not self._sessions:
            raise RuntimeError(
                f"cannot dispatch {event}: no client has identified (await fake.ready.wait())"
            )
        return await self.dispatch_if_connected(event, data)

    async def dispatch_if_connected(self, event: str, data: JSON) -> bool:
        taken = False
        for session in self._sessions_for(event_guild(event, data)):
            taken = await self._send_dispatch(session, event, data) or taken
        return taken

    async def dispatch_message(self, event: str, message: FakeMessage) -> None:
        """MESSAGE_CREATE / MESSAGE_UPDATE with the message as the session's intents see it,
        to the session of the message's shard."""
        for session in self._sessions_for(message.guild_id):
            payload = self._world.message_payload(message, for_intents=session.intents)
            await self._send_dispatch(session, event, payload)

    async def _send_dispatch(self, session: GatewaySession, event: str, data: JSON) -> bool:
        if event in _MESSAGE_EVENTS:
            needed = INTENT_GUILD_MESSAGES if "guild_id" in data else INTENT_DIRECT_MESSAGES
            if not session.intents & needed:
                return False
        session.seq += 1
        frame: JSON = {"op": OP_DISPATCH, "s": session.seq, "t": event, "d": data}
        session.history.append(frame)
        conn = session.connection
        raw_id = data.get("id")
        self.deliveries.append(
            Delivery(
                event=event,
                guild_id=event_guild(event, data),
                shard=None if session.shard is None else (session.shard_id, session.shard_count),
                connection=None if conn is None else conn.number,
                seq=session.seq,
                object_id=int(raw_id) if isinstance(raw_id, str) and raw_id.isdigit() else None,
            )
        )
        if conn is not None and self._settings.gateway_delay > 0:
            self._send_later(conn, frame)
        elif conn is not None:
            try:
                await conn.send(frame)
            except (ConnectionError, RuntimeError) as exc:
                _log.debug(
                    "could not send %s (client disconnected: %r); kept for RESUME", event, exc
                )
        self._activity.notify()
        return True

    def _send_later(self, conn: GatewayConnection, frame: JSON) -> None:
        """Send ``frame`` on ``conn`` after ``gateway_delay`` seconds, after earlier ones."""
        self._delayed.append((time.monotonic() + self._settings.gateway_delay, conn, frame))
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
            self._activity.notify()

    def _connected(self, shard_id: int | None, action: str) -> GatewaySession:
        """The session ``action`` is for: ``shard_id``'s, or the one connected session."""
        if shard_id is not None:
            session = self._sessions.get(shard_id)
            if session is None or session.connection is None:
                raise RuntimeError(f"{action}: shard {shard_id} has no live gateway connection")
            return session
        connected = [s for _, s in sorted(self._sessions.items()) if s.connection is not None]
        if not connected:
            raise RuntimeError(f"{action}: no live gateway connection")
        if len(connected) > 1:
            shards = ", ".join(str(s.shard_id) for s in connected)
            raise RuntimeError(f"{action}: shards {shards} are connected; pass shard_id=")
        return connected[0]

    async def drop(
        self, code: int = 4000, *, end_session: bool | None = None, shard_id: int | None = None
    ) -> None:
        """Close a session's websocket (see :meth:`FakeDiscord.drop_gateway`)."""
        session = self._connected(shard_id, "drop the gateway")
        conn = session.connection
        assert conn is not None
        session.connection = None
        session.live = False
        self._update_ready()
        if end_session if end_session is not None else code in (4007, 4009):
            session.resumable = False
        await asyncio.wait_for(conn.ws.close(code=code, message=b"dropped by FakeDiscord"), 5.0)
        self._activity.emit("gateway", f"gateway dropped with close code {code}", code=code)

    async def request_reconnect(self, *, shard_id: int | None = None) -> None:
        """Send op 7 RECONNECT: the client closes and RESUMEs."""
        session = self._connected(shard_id, "request a reconnect")
        assert session.connection is not None
        session.live = False
        self._update_ready()
        await session.connection.send({"op": OP_RECONNECT, "d": None, "s": None, "t": None})

    # ---------------------------------------------------------------- the websocket

    async def handler(self, request: web.Request) -> web.StreamResponse:
        """The ``/gateway`` route: one websocket connection, until either side closes it."""
        compression = request.query.get("compress")
        if compression not in (None, "zlib-stream", "zstd-stream"):
            raise web.HTTPBadRequest(text=f"unsupported compress={compression}")
        if compression == "zstd-stream" and not zstd_available():
            raise web.HTTPBadRequest(text="zstd-stream requested but no zstd module is importable")
        if request.query.get("encoding", "json") != "json":
            raise web.HTTPBadRequest(text="only encoding=json is supported")
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=4 * 1024 * 1024)
        await ws.prepare(request)
        self._counter += 1
        conn = GatewayConnection(ws, compression, self._counter)
        self._open.add(conn)
        self.connections.append(
            GatewayConnectionInfo(conn.number, dict(request.query), compression)
        )
        self._activity.emit("gateway", f"client connected (#{conn.number}, compress={compression})")
        try:
            hello = {
                "heartbeat_interval": self._settings.heartbeat_interval_ms,
                "_trace": ["fake-gw"],
            }
            await conn.send({"op": OP_HELLO, "d": hello, "s": None, "t": None})
            async for msg in ws:
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    raw = msg.data if isinstance(msg.data, str) else msg.data.decode()
                    try:
                        frame = json.loads(raw)
                    except ValueError:
                        await ws.close(code=4002, message=b"Error while decoding payload.")
                        break
                    await self._on_frame(conn, frame)
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    break
        except ConnectionError:
            pass
        except Exception as exc:  # a bug in the fake: record it, do not hide it
            _log.exception("FakeDiscord gateway handler failed")
            self._activity.internal_errors.append(exc)
            with contextlib.suppress(Exception):
                await ws.close(code=4000, message=b"fake internal error")
        finally:
            self._open.discard(conn)
            session = conn.session
            if session is not None and session.connection is conn:
                session.connection = None
                session.live = False
                self._update_ready()
            self._activity.emit(
                "gateway", f"client disconnected (#{conn.number}, close code {ws.close_code})"
            )
        return ws

    async def _on_frame(self, conn: GatewayConnection, frame: JSON) -> None:
        self.received.append(frame)
        self._activity.touch()
        op = frame.get("op")
        data = frame.get("d")
        if op == OP_HEARTBEAT:
            ack: JSON = {"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None}
            if self._settings.gateway_delay > 0:
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
        self._activity.notify()

    async def _identify(self, conn: GatewayConnection, data: JSON) -> None:
        settings = self._settings
        if conn.session is not None:
            await conn.ws.close(code=4005, message=b"Already authenticated.")
            return
        if settings.token is not None and data.get("token") != settings.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = int(data.get("intents", 0))
        if intents & PRIVILEGED_INTENTS & ~settings.enabled_privileged_intents:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        try:
            shard = check_shard(data.get("shard"))
        except ValueError:
            await conn.ws.close(code=CLOSE_INVALID_SHARD, message=b"Invalid shard.")
            self._activity.emit("gateway", f"IDENTIFY refused: invalid shard {data.get('shard')}")
            return
        session = GatewaySession(
            session_id=secrets.token_hex(16),
            intents=intents,
            shard=None if shard is None else list(shard),
        )
        world = self._world
        guilds = [g for g in world.guilds.values() if session.covers(g.id)]
        if len(guilds) > settings.max_guilds_per_shard:
            await conn.ws.close(code=CLOSE_SHARDING_REQUIRED, message=b"Sharding required.")
            self._activity.emit(
                "gateway", f"IDENTIFY refused: {len(guilds)} guilds on one shard, shard more"
            )
            return
        old = self._sessions.get(session.shard_id)
        if old is not None and old.connection is not None and old.connection is not conn:
            with contextlib.suppress(Exception):
                await old.connection.ws.close(code=4000, message=b"session replaced")
        self._sessions[session.shard_id] = session
        session.connection = conn
        conn.session = session
        self.identify_count += 1
        await self._send_dispatch(session, "READY", self._ready_payload(session, guilds))
        for guild in guilds:
            # Like Discord without the presences intent: only the bot itself is listed;
            # with the members intent the client asks for the rest with op 8.
            bot_member = guild.members.get(world.bot_user_id)
            await self._send_dispatch(
                session, "GUILD_CREATE", guild.to_payload([bot_member] if bot_member else [])
            )
        session.live = True
        self._update_ready()
        on_shard = "" if shard is None else f", shard {shard[0]} of {shard[1]}"
        self._activity.emit(
            "gateway",
            f"client identified (intents={intents}{on_shard})",
            intents=intents,
            shard=None if shard is None else list(shard),
        )

    def _ready_payload(self, session: GatewaySession, guilds: list[FakeGuild]) -> JSON:
        enabled = self._settings.enabled_privileged_intents
        flags = 0
        if enabled & INTENT_GUILD_PRESENCES:
            flags |= 1 << 13
        if enabled & INTENT_GUILD_MEMBERS:
            flags |= 1 << 15
        if enabled & INTENT_MESSAGE_CONTENT:
            flags |= 1 << 19
        world = self._world
        ready: JSON = {
            "v": API_VERSION,
            "user": {
                **world.bot_user.to_payload(),
                "verified": True,
                "mfa_enabled": False,
                "flags": 0,
                "email": None,
            },
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self._settings.gateway_url,
            "application": {"id": str(world.application_id), "flags": flags},
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
        return ready

    async def _resume(self, conn: GatewayConnection, data: JSON) -> None:
        wanted = data.get("session_id")
        session = next((s for s in self._sessions.values() if s.session_id == wanted), None)
        token = self._settings.token
        last_seq = int(data.get("seq") or 0)
        resumable = (
            not self._settings.refuse_resume
            and session is not None
            and session.resumable
            and data.get("session_id") == session.session_id
            and (token is None or data.get("token") == token)
            and (not session.history or session.history[0]["s"] <= last_seq + 1)
        )
        if not resumable or session is None:
            await conn.send({"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            self._activity.emit("gateway", "RESUME refused (op 9 invalid session)")
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
        session.live = True
        self._update_ready()
        self._activity.emit("gateway", f"client resumed session (from seq {last_seq})")

    async def _request_members(self, conn: GatewayConnection, data: JSON) -> None:
        session = conn.session
        raw_ids: Any = data.get("guild_id")
        guild_ids: list[Any] = raw_ids if isinstance(raw_ids, list) else [raw_ids]
        if session is None:
            await conn.ws.close(code=4003, message=b"Not authenticated.")
            return
        for raw in guild_ids:
            guild = self._world.guilds.get(int(raw)) if raw is not None else None
            if guild is None or not session.covers(guild.id):
                continue  # Discord answers only for the guilds of the connection's shard
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
