"""Discord's numbers, as the fake speaks them: API version, snowflakes, permission and intent
bits, gateway opcodes, interaction, callback, message and channel types, message flags."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Final

import discord

#: A JSON object as Discord sends and takes it.
JSON = dict[str, Any]

API_VERSION: Final = 10
DISCORD_EPOCH_MS: Final = 1_420_070_400_000


def snowflake_at(when: dt.datetime, increment: int = 0) -> int:
    """A Discord snowflake for ``when`` (timezone-aware), so ``created_at`` is meaningful."""
    ms = int(when.timestamp() * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (1 << 17) | (increment & 0xFFF)


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


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard a guild's events go to: ``(guild_id >> 22) % shard_count``, as on Discord."""
    return (guild_id >> 22) % shard_count


#: Discord's guidance: about one shard per this many guilds (``GET /gateway/bot``).
GUILDS_PER_RECOMMENDED_SHARD: Final = 1000
#: A session with more guilds than this is refused with close code 4011 (sharding required).
MAX_GUILDS_PER_SHARD: Final = 2500

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

# Gateway close codes the fake sends on its own.
CLOSE_INVALID_SHARD: Final = 4010
CLOSE_SHARDING_REQUIRED: Final = 4011

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
