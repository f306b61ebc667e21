"""The interaction callback (``POST /interactions/{id}/{token}/callback``): the first answer,
within the time limit, once; and the messages an interaction's answers create."""

from __future__ import annotations

import time

from aiohttp import web

from fakediscord.errors import ApiError, not_found
from fakediscord.interactions import FakeInteraction
from fakediscord.model import FakeFile, FakeMessage
from fakediscord.protocol import (
    CALLBACK_DEFERRED_MESSAGE,
    CALLBACK_DEFERRED_UPDATE,
    CALLBACK_MESSAGE,
    CALLBACK_UPDATE_MESSAGE,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    INTERACTION_APPLICATION_COMMAND,
    INTERACTION_COMPONENT,
    JSON,
    MESSAGE_CHAT_INPUT_COMMAND,
    MESSAGE_CONTEXT_MENU_COMMAND,
    MESSAGE_DEFAULT,
)
from fakediscord.rest.plumbing import (
    body_of,
    check_upload_size,
    fake_of,
    int_param,
    json_response,
    record_of,
)
from fakediscord.world import World

routes = web.RouteTableDef()


def new_interaction_message(
    world: World, interaction: FakeInteraction, body: JSON, files: list[FakeFile], *, flags: int
) -> FakeMessage:
    """A message the bot creates in answer to ``interaction`` (response or follow-up)."""
    if interaction.type == INTERACTION_APPLICATION_COMMAND:
        is_slash = interaction.name.startswith("/")
        mtype = MESSAGE_CHAT_INPUT_COMMAND if is_slash else MESSAGE_CONTEXT_MENU_COMMAND
    else:
        mtype = MESSAGE_DEFAULT
    message = FakeMessage(
        id=world.next_id(),
        channel_id=interaction.channel_id,
        guild_id=interaction.guild_id,
        author_id=world.bot_user_id,
        type=mtype,
        interaction_id=interaction.id,
        webhook_id=world.application_id,
    )
    world.apply_message_body(message, body, files, editing=False)
    message.flags = (message.flags & ~(FLAG_EPHEMERAL | FLAG_LOADING)) | flags
    world.messages[message.id] = message
    return message


def component_message(world: World, interaction: FakeInteraction) -> FakeMessage:
    """The message whose component was used; 400 for any other kind of interaction."""
    if interaction.type != INTERACTION_COMPONENT or interaction.target_message_id is None:
        raise ApiError(400, 50035, "Invalid Form Body: this interaction has no message to update")
    return world.messages[interaction.target_message_id]


@routes.post(r"/interactions/{interaction_id:\d+}/{token}/callback")
async def callback(request: web.Request) -> web.Response:
    fake = fake_of(request)
    world = fake.world
    interaction = world.interactions.get(int_param(request, "interaction_id"))
    if interaction is None or interaction.token != request.match_info["token"]:
        raise not_found(10062, "Unknown interaction")
    if time.monotonic() - interaction.created_at > fake.interaction_timeout:
        raise not_found(10062, "Unknown interaction")
    if interaction.response is not None:
        raise ApiError(400, 40060, "Interaction has already been acknowledged.")
    body = body_of(request)
    kind = int(body.get("type", 0))
    data: JSON = body.get("data") or {}
    files = record_of(request).files
    check_upload_size(fake, files)
    if kind not in (1, 4, 5, 6, 7, 8, 9, 12):
        raise ApiError(400, 50035, f"Invalid Form Body: unknown callback type {kind}")
    if kind in (CALLBACK_DEFERRED_UPDATE, CALLBACK_UPDATE_MESSAGE):
        component_message(world, interaction)  # 400 unless it is a component interaction
    interaction.response = body
    interaction.response_files = files
    interaction.responded_at = time.monotonic()
    message: FakeMessage | None = None
    echo: str | None = None
    if kind == CALLBACK_MESSAGE:
        flags = int(data.get("flags") or 0) & FLAG_EPHEMERAL
        message = new_interaction_message(world, interaction, data, files, flags=flags)
        interaction.original = message
        interaction.show(message, "response")
        echo = "MESSAGE_CREATE"
    elif kind == CALLBACK_DEFERRED_MESSAGE:
        flags = (int(data.get("flags") or 0) & FLAG_EPHEMERAL) | FLAG_LOADING
        message = new_interaction_message(world, interaction, {}, [], flags=flags)
        interaction.original = message
        echo = "MESSAGE_CREATE"
    elif kind == CALLBACK_UPDATE_MESSAGE:
        message = component_message(world, interaction)
        world.apply_message_body(message, data, files, editing=True)
        interaction.original = message
        interaction.show(message, "update")
        echo = "MESSAGE_UPDATE"
    fake.activity.emit(
        "interaction_response",
        f"bot answered {interaction.name} (callback type {kind})"
        + (f": {message.summary()}" if message is not None and not message.loading else ""),
        interaction_id=interaction.id,
        type=kind,
    )
    if echo and message is not None and not message.ephemeral and fake.echo_bot_messages:
        await fake.gateway.dispatch_message(echo, message)
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
        result["resource"] = {"type": kind, "message": world.message_payload(message)}
    return json_response(result)
