"""The world model: every user, guild, channel, message, interaction and synced command the
fake knows, the lookups on them, and the Discord message object built from them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from fakediscord.model import (
    FakeChannel,
    FakeFile,
    FakeGuild,
    FakeMember,
    FakeMessage,
    FakeUser,
    now_iso,
)
from fakediscord.protocol import (
    CHANNEL_DM,
    DEFAULT_EVERYONE_PERMISSIONS,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    INTENT_MESSAGE_CONTENT,
    INTERACTION_COMPONENT,
    JSON,
    SnowflakeGenerator,
)

if TYPE_CHECKING:
    from fakediscord.interactions import FakeInteraction

_USER_MENTION: Final = re.compile(r"<@!?(\d{15,20})>")
_ROLE_MENTION: Final = re.compile(r"<@&(\d{15,20})>")


class World:
    """Users, guilds, channels, messages, interactions and commands, keyed by id.

    ``base_url`` gives the server's address (for attachment URLs) once it listens.
    """

    def __init__(
        self, *, application_id: int, bot_user_id: int, bot_name: str, base_url: Callable[[], str]
    ) -> None:
        self.application_id = application_id
        self.bot_user_id = bot_user_id
        self.bot_user = FakeUser(bot_user_id, bot_name, bot=True)
        self.users: dict[int, FakeUser] = {bot_user_id: self.bot_user}
        self.guilds: dict[int, FakeGuild] = {}
        #: Guilds the bot was removed from (:meth:`remove_bot`), kept for :meth:`add_bot`.
        self.departed_guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, FakeMessage] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        #: Synced application commands: key None = global, else the guild id.
        self.synced_commands: dict[int | None, list[JSON]] = {}
        #: Uploaded files by attachment id, served at ``/cdn/attachments/{id}/{filename}``.
        self.attachment_files: dict[int, FakeFile] = {}
        self.next_id = SnowflakeGenerator()
        self._base_url = base_url
        self._command_ids: dict[tuple[int | None, str, int], int] = {}

    # ---------------------------------------------------------------- building

    def add_guild(
        self,
        guild_id: int,
        name: str,
        *,
        owner_id: int,
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        bot_roles: Iterable[int] = (),
    ) -> FakeGuild:
        if guild_id in self.guilds:
            raise ValueError(f"guild {guild_id} already exists")
        guild = FakeGuild(
            self, guild_id, name, owner_id=owner_id, everyone_permissions=everyone_permissions
        )
        self.guilds[guild_id] = guild
        guild.add_member(self.bot_user_id, self.bot_user.name, roles=bot_roles, bot=True)
        return guild

    def remove_bot(self, guild_id: int) -> FakeGuild:
        """The bot leaves ``guild_id``: the guild is out of the bot's world until
        :meth:`add_bot`."""
        guild = self.guild(guild_id)
        del self.guilds[guild_id]
        self.departed_guilds[guild_id] = guild
        return guild

    def add_bot(self, guild_id: int) -> FakeGuild:
        """The bot is added back to a guild it was removed from."""
        guild = self.departed_guilds.pop(guild_id, None)
        if guild is None:
            state = "is in it" if guild_id in self.guilds else "never was in it"
            raise ValueError(
                f"cannot add the bot back to guild {guild_id}: it {state}; "
                "remove_bot_from_guild first"
            )
        guild.joined_at = now_iso()
        self.guilds[guild_id] = guild
        return guild

    def add_user(self, user_id: int, name: str, *, bot: bool = False) -> FakeUser:
        user = self.users.get(user_id)
        if user is None:
            user = self.users[user_id] = FakeUser(
                user_id, name, bot=bot, global_name=None if bot else name
            )
        return user

    def open_dm(self, user_id: int) -> int:
        if user_id not in self.users:
            raise ValueError(f"unknown user {user_id}: add_user or add_member first")
        for channel in self.channels.values():
            if channel.type == CHANNEL_DM and channel.recipient_id == user_id:
                return channel.id
        channel = FakeChannel(self.next_id(), "", None, type=CHANNEL_DM, recipient_id=user_id)
        self.channels[channel.id] = channel
        return channel.id

    def store_file(self, upload: FakeFile) -> JSON:
        """Keep ``upload`` for the CDN route; its Discord attachment object."""
        attachment_id = self.next_id()
        self.attachment_files[attachment_id] = upload
        url = f"{self._base_url()}/cdn/attachments/{attachment_id}/{upload.filename}"
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

    def apply_message_body(
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
            self._apply_attachments(message, body, files)
        if editing:
            message.edited_timestamp = now_iso()
            message.edits.append(body)

    def _apply_attachments(self, message: FakeMessage, body: JSON, files: list[FakeFile]) -> None:
        """Keep the attachments the body lists by id, add the uploads (``id`` = upload index)."""
        existing = {
            int(a["id"]): (a, f) for a, f in zip(message.attachments, message.files, strict=False)
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
                        upload.filename, upload.data, upload.content_type, str(entry["description"])
                    )
                used_uploads.add(entry_id)
                new_attachments.append(self.store_file(upload))
                new_files.append(upload)
        for index, upload in enumerate(files):
            if index not in used_uploads:
                new_attachments.append(self.store_file(upload))
                new_files.append(upload)
        message.attachments = new_attachments
        message.files = new_files

    def sync_commands(self, guild_id: int | None, items: list[Any]) -> list[JSON]:
        """Replace the synced commands of a scope (None = global); ids stay stable by name."""
        stored: list[JSON] = []
        for item in items:
            kind = int(item.get("type", 1))
            key = (guild_id, str(item["name"]), kind)
            command_id = self._command_ids.setdefault(key, self.next_id())
            command: JSON = {
                "default_member_permissions": None,
                "dm_permission": True,
                "nsfw": False,
                "description": "",
                **item,
                "id": str(command_id),
                "application_id": str(self.application_id),
                "version": str(self.next_id()),
                "type": kind,
            }
            if guild_id is not None:
                command["guild_id"] = str(guild_id)
            stored.append(command)
        self.synced_commands[guild_id] = stored
        return stored

    # ---------------------------------------------------------------- lookups

    def channel(self, channel_id: int) -> FakeChannel:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise ValueError(f"unknown channel {channel_id}: add it with guild.add_channel first")
        return channel

    def guild(self, guild_id: int) -> FakeGuild:
        guild = self.guilds.get(guild_id)
        if guild is None and guild_id in self.departed_guilds:
            raise ValueError(
                f"the bot is not in guild {guild_id} (removed with remove_bot_from_guild); "
                "add_bot_to_guild puts it back"
            )
        if guild is None:
            raise ValueError(f"unknown guild {guild_id}: add it with fake.add_guild first")
        return guild

    def message_in(self, channel_id: int, message_id: int) -> FakeMessage:
        message = self.messages.get(message_id)
        if message is None or message.channel_id != channel_id:
            raise ValueError(f"no message {message_id} in channel {channel_id}")
        return message

    def member_of(self, guild_id: int | None, user_id: int) -> FakeMember | None:
        if guild_id is None:
            return None
        guild = self.guilds.get(guild_id)
        return None if guild is None else guild.members.get(user_id)

    def messages_in(self, channel_id: int, *, include_deleted: bool = False) -> list[FakeMessage]:
        return sorted(
            (
                m
                for m in self.messages.values()
                if m.channel_id == channel_id and (include_deleted or not m.deleted)
            ),
            key=lambda m: m.id,
        )

    def find_command(self, name: str, kind: int, guild_id: int) -> JSON:
        """The synced command a user in ``guild_id`` can run (guild commands first)."""
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

    # ---------------------------------------------------------------- the message object

    def message_payload(self, message: FakeMessage, *, for_intents: int | None = None) -> JSON:
        """The Discord message object for ``message`` (see :meth:`FakeDiscord.message_payload`)."""
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
            member = self.member_of(message.guild_id, message.author_id)
            if member is not None and message.webhook_id is None:
                payload["member"] = member.to_payload(with_user=False)
        if message.webhook_id is not None:
            payload["webhook_id"] = str(message.webhook_id)
            payload["application_id"] = str(self.application_id)
        if message.interaction_id is not None and message.interaction_id in self.interactions:
            self._add_interaction_metadata(
                payload, message, self.interactions[message.interaction_id]
            )
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

    def _add_interaction_metadata(
        self, payload: JSON, message: FakeMessage, interaction: FakeInteraction
    ) -> None:
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
        if interaction.target_message_id is not None and interaction.type == INTERACTION_COMPONENT:
            metadata["interacted_message_id"] = str(interaction.target_message_id)
        payload["interaction_metadata"] = metadata
        payload["interaction"] = {
            "id": str(interaction.id),
            "type": interaction.type,
            "name": interaction.name,
            "user": user,
        }

    def _user_with_member(self, guild_id: int | None, user_id: int) -> JSON:
        payload = self.users[user_id].to_payload()
        member = self.member_of(guild_id, user_id)
        if member is not None:
            payload["member"] = member.to_payload(with_user=False)
        return payload


def _emoji_payload(emoji: str) -> JSON:
    """``name:id`` (custom emoji, as discord.py sends it) or a unicode emoji."""
    name, _, emoji_id = emoji.rpartition(":")
    if name and emoji_id.isdigit():
        return {"id": emoji_id, "name": name.removeprefix("a:")}
    return {"id": None, "name": emoji}
