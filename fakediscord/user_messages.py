"""A user's messages: posting (with attachments and replies), editing, deleting and a
moderator's bulk delete, each stored in the world and dispatched as its gateway event."""

from __future__ import annotations

from fakediscord.gateway import Gateway
from fakediscord.model import FakeFile, FakeMessage, now_iso
from fakediscord.protocol import JSON, MESSAGE_DEFAULT, MESSAGE_REPLY
from fakediscord.world import World


class UserMessages:
    """What users do with messages (documented on :class:`FakeDiscord`, which delegates)."""

    def __init__(self, world: World, gateway: Gateway) -> None:
        self._world = world
        self._gateway = gateway

    async def send(
        self,
        channel_id: int,
        author_id: int,
        content: str,
        *,
        attachments: list[FakeFile | JSON] | None,
        reply_to: int | None,
    ) -> int:
        self._gateway.require_session("send_message")
        world = self._world
        channel = world.channel(channel_id)
        if channel.guild_id is not None:
            if author_id not in world.guild(channel.guild_id).members:
                raise ValueError(
                    f"user {author_id} is not a member of guild {channel.guild_id}; "
                    "guild.add_member first"
                )
        elif channel.recipient_id != author_id:
            raise ValueError(f"user {author_id} is not the recipient of DM channel {channel_id}")
        message = FakeMessage(
            id=world.next_id(),
            channel_id=channel_id,
            guild_id=channel.guild_id,
            author_id=author_id,
            content=content,
            type=MESSAGE_REPLY if reply_to is not None else MESSAGE_DEFAULT,
            reference_id=reply_to,
        )
        for item in attachments or []:
            if isinstance(item, FakeFile):
                message.attachments.append(world.store_file(item))
                message.files.append(item)
            else:
                message.attachments.append(dict(item))
        world.messages[message.id] = message
        await self._gateway.dispatch_message("MESSAGE_CREATE", message)
        return message.id

    async def edit(self, channel_id: int, message_id: int, content: str) -> None:
        self._gateway.require_session("edit_message")
        message = self._world.message_in(channel_id, message_id)
        message.content = content
        message.edited_timestamp = now_iso()
        await self._gateway.dispatch_message("MESSAGE_UPDATE", message)

    async def delete(self, channel_id: int, message_id: int) -> None:
        self._gateway.require_session("delete_message")
        message = self._world.message_in(channel_id, message_id)
        message.deleted = True
        payload: JSON = {"id": str(message_id), "channel_id": str(channel_id)}
        if message.guild_id is not None:
            payload["guild_id"] = str(message.guild_id)
        await self._gateway.dispatch("MESSAGE_DELETE", payload)

    async def bulk_delete(self, channel_id: int, message_ids: list[int]) -> None:
        self._gateway.require_session("bulk_delete")
        channel = self._world.channel(channel_id)
        for message_id in message_ids:
            self._world.message_in(channel_id, message_id).deleted = True
        payload: JSON = {"ids": [str(m) for m in message_ids], "channel_id": str(channel_id)}
        if channel.guild_id is not None:
            payload["guild_id"] = str(channel.guild_id)
        await self._gateway.dispatch("MESSAGE_DELETE_BULK", payload)
