"""A fake Discord (REST API + gateway websocket) for driving the real discord.py client offline.

:class:`FakeDiscord` is a small aiohttp server on ``127.0.0.1`` that speaks enough of Discord's
HTTP API (v10) and gateway protocol for the *real, unpatched* discord.py client to log in,
connect, receive events and answer them over real sockets.  It keeps a tiny world model
(guilds, channels, roles, members, messages) and records everything the bot does (HTTP
requests, reactions, messages, interaction replies, synced commands) so that tests, and
interactive consoles, can drive a bot like a user and observe what a user would see.

Typical use in a test::

    async with FakeDiscord(bot_name="Probe") as fake:
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
* Sharding as on Discord: a client may IDENTIFY as ``[shard_id, shard_count]`` (several
  processes, or one ``AutoShardedClient``); READY lists the shard's guilds, and a guild's events
  and interactions go only to the session of shard ``(guild_id >> 22) % shard_count`` (direct
  messages to shard 0); a bad shard is closed with 4010, too many guilds on one shard with 4011,
  and ``GET /gateway/bot`` recommends one shard per 1,000 guilds.
* Intents matter: without ``message_content`` the bot gets empty ``content`` (unless it is
  mentioned); without ``guild_messages`` it gets no MESSAGE_CREATE; privileged intents not
  enabled on the fake "developer portal" close the gateway with 4014.
* Permissions are computed from @everyone + roles (owner / ADMINISTRATOR = all) and enforced on
  the endpoints a bot commonly uses (send, react, read history, delete, attach files).
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

Layout, by protocol layer: ``protocol`` (Discord's numbers), ``model`` and ``world`` (the
world model), ``gateway`` and ``wire`` (the websocket), ``rest/`` (one module per resource on
aiohttp's router, ``plumbing`` for what they share, ``app`` to mount them), ``cdn`` (uploaded
files), ``user_messages``, ``interactions`` and ``options`` (what a user does), ``faults``,
``activity`` and ``records`` (what happened, and waiting for it), ``fake`` (the server that
assembles them) and ``runner`` (a discord.py client against the fake).
"""

from fakediscord.errors import ClientDiedError, StrictModeError
from fakediscord.fake import FakeDiscord
from fakediscord.faults import Fault
from fakediscord.interactions import FakeInteraction
from fakediscord.model import (
    FakeChannel,
    FakeFile,
    FakeGuild,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
)
from fakediscord.protocol import (
    ALL_PERMISSIONS,
    DEFAULT_APPLICATION_ID,
    DEFAULT_BOT_USER_ID,
    DEFAULT_EVERYONE_PERMISSIONS,
    DEFAULT_TOKEN,
    SnowflakeGenerator,
    shard_of,
    snowflake_at,
)
from fakediscord.records import Delivery, FakeEvent, Reaction, RecordedRequest, Reply
from fakediscord.runner import (
    ErrorLogCollector,
    RunningClient,
    point_discord_py_at,
    running_client,
)
from fakediscord.wire import GatewayConnectionInfo

__all__ = [
    "ALL_PERMISSIONS",
    "DEFAULT_APPLICATION_ID",
    "DEFAULT_BOT_USER_ID",
    "DEFAULT_EVERYONE_PERMISSIONS",
    "DEFAULT_TOKEN",
    "ClientDiedError",
    "Delivery",
    "ErrorLogCollector",
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
    "shard_of",
    "snowflake_at",
]
