"""Messages in a channel: history, send (with uploads and replies), edit, delete, bulk delete;
what the bot sends, edits and deletes is echoed back on the gateway."""

from __future__ import annotations

from aiohttp import web

from fakediscord.errors import ApiError
from fakediscord.model import FakeMessage
from fakediscord.protocol import (
    ATTACH_FILES,
    JSON,
    MANAGE_MESSAGES,
    MESSAGE_DEFAULT,
    MESSAGE_REPLY,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    VIEW_CHANNEL,
)
from fakediscord.rest.plumbing import (
    body_of,
    channel_of,
    check_bot,
    check_upload_size,
    fake_of,
    json_response,
    message_of,
    no_content,
    record_of,
)

routes = web.RouteTableDef()

_MESSAGES = r"/channels/{channel_id:\d+}/messages"
_MESSAGE = _MESSAGES + r"/{message_id:\d+}"


@routes.get(_MESSAGES)
async def get_messages(request: web.Request) -> web.Response:
    fake = fake_of(request)
    channel = channel_of(request)
    check_bot(fake, channel, VIEW_CHANNEL | READ_MESSAGE_HISTORY)
    query = record_of(request).query
    limit = max(1, min(100, int(query.get("limit", 50))))
    found = [m for m in fake.world.messages_in(channel.id) if not m.ephemeral]
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
    return json_response([fake.world.message_payload(m) for m in found])


@routes.get(_MESSAGE)
async def get_message(request: web.Request) -> web.Response:
    fake = fake_of(request)
    channel = channel_of(request)
    check_bot(fake, channel, VIEW_CHANNEL | READ_MESSAGE_HISTORY)
    return json_response(fake.world.message_payload(message_of(request, channel)))


@routes.post(_MESSAGES)
async def post_message(request: web.Request) -> web.Response:
    fake = fake_of(request)
    world = fake.world
    channel = channel_of(request)
    body = body_of(request)
    files = record_of(request).files
    check_bot(fake, channel, VIEW_CHANNEL | SEND_MESSAGES | (ATTACH_FILES if files else 0))
    check_upload_size(fake, files)
    if (
        not any(body.get(k) for k in ("content", "embeds", "components", "sticker_ids"))
        and not files
    ):
        raise ApiError(400, 50006, "Cannot send an empty message")
    reference = body.get("message_reference") or {}
    reference_id = int(reference["message_id"]) if reference.get("message_id") else None
    if reference_id is not None and reference_id not in world.messages:
        raise ApiError(400, 50035, "Invalid Form Body: Unknown message")
    message = FakeMessage(
        id=world.next_id(),
        channel_id=channel.id,
        guild_id=channel.guild_id,
        author_id=world.bot_user_id,
        type=MESSAGE_REPLY if reference_id is not None else MESSAGE_DEFAULT,
        reference_id=reference_id,
    )
    world.apply_message_body(message, body, files, editing=False)
    world.messages[message.id] = message
    fake.activity.sent_messages.append(message)
    fake.activity.emit(
        "message_sent",
        f"bot in #{channel.name or channel.id}: {message.summary()}",
        channel_id=channel.id,
        message_id=message.id,
    )
    if fake.echo_bot_messages:
        await fake.gateway.dispatch_message("MESSAGE_CREATE", message)
    return json_response(world.message_payload(message))


@routes.patch(_MESSAGE)
async def patch_message(request: web.Request) -> web.Response:
    fake = fake_of(request)
    channel = channel_of(request)
    message = message_of(request, channel)
    if message.author_id != fake.world.bot_user_id:
        raise ApiError(403, 50005, "Cannot edit a message authored by another user")
    fake.world.apply_message_body(message, body_of(request), record_of(request).files, editing=True)
    fake.activity.emit(
        "message_edited",
        f"bot edited {message.id}: {message.summary()}",
        channel_id=channel.id,
        message_id=message.id,
    )
    if fake.echo_bot_messages:
        await fake.gateway.dispatch_message("MESSAGE_UPDATE", message)
    return json_response(fake.world.message_payload(message))


@routes.delete(_MESSAGE)
async def delete_message(request: web.Request) -> web.Response:
    fake = fake_of(request)
    channel = channel_of(request)
    message = message_of(request, channel)
    if message.author_id != fake.world.bot_user_id:
        check_bot(fake, channel, VIEW_CHANNEL | MANAGE_MESSAGES)
    message.deleted = True
    fake.activity.emit(
        "message_deleted",
        f"bot deleted message {message.id}",
        channel_id=channel.id,
        message_id=message.id,
    )
    if fake.echo_bot_messages:
        payload: JSON = {"id": str(message.id), "channel_id": str(channel.id)}
        if channel.guild_id is not None:
            payload["guild_id"] = str(channel.guild_id)
        await fake.gateway.dispatch_if_connected("MESSAGE_DELETE", payload)
    return no_content()


@routes.post(_MESSAGES + "/bulk-delete")
async def bulk_delete_messages(request: web.Request) -> web.Response:
    fake = fake_of(request)
    channel = channel_of(request)
    check_bot(fake, channel, VIEW_CHANNEL | MANAGE_MESSAGES)
    ids = [int(i) for i in body_of(request).get("messages", [])]
    if not 2 <= len(ids) <= 100:
        raise ApiError(400, 50016, "You must provide at least 2 and fewer than 100 messages")
    for message_id in ids:
        message = fake.world.messages.get(message_id)
        if message is not None and message.channel_id == channel.id:
            message.deleted = True
    fake.activity.emit(
        "message_deleted", f"bot bulk-deleted {len(ids)} messages", channel_id=channel.id
    )
    if fake.echo_bot_messages:
        payload: JSON = {"ids": [str(i) for i in ids], "channel_id": str(channel.id)}
        if channel.guild_id is not None:
            payload["guild_id"] = str(channel.guild_id)
        await fake.gateway.dispatch_if_connected("MESSAGE_DELETE_BULK", payload)
    return no_content()
