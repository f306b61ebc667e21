"""An interaction's webhook: follow-ups (the first after a "thinking" defer replaces it) and
reading, editing and deleting the original response or a follow-up."""

from __future__ import annotations

from aiohttp import web

from fakediscord.errors import not_found
from fakediscord.interactions import FakeInteraction
from fakediscord.model import FakeMessage
from fakediscord.protocol import CALLBACK_DEFERRED_UPDATE, FLAG_EPHEMERAL, FLAG_LOADING, JSON
from fakediscord.rest.interactions import component_message, new_interaction_message
from fakediscord.rest.plumbing import (
    body_of,
    check_app,
    check_upload_size,
    fake_of,
    json_response,
    no_content,
    record_of,
)

routes = web.RouteTableDef()

_WEBHOOK = r"/webhooks/{app_id:\d+}/{token}"
_WEBHOOK_MESSAGE = _WEBHOOK + r"/messages/{message:@original|\d+}"


def _interaction_by_token(request: web.Request) -> FakeInteraction:
    check_app(request)
    token = request.match_info["token"]
    for interaction in fake_of(request).world.interactions.values():
        if interaction.token == token:
            return interaction
    raise not_found(10015, "Unknown Webhook")


def _target(request: web.Request, interaction: FakeInteraction) -> FakeMessage:
    """The original response (``@original``) or the follow-up the path names."""
    which = request.match_info["message"]
    if which == "@original":
        if interaction.original is None and interaction.response_type == CALLBACK_DEFERRED_UPDATE:
            return component_message(fake_of(request).world, interaction)
        if interaction.original is None or interaction.original.deleted:
            raise not_found()
        return interaction.original
    message = next((m for m in interaction.followups if m.id == int(which)), None)
    if message is None or message.deleted:
        raise not_found()
    return message


@routes.post(_WEBHOOK)
async def post_followup(request: web.Request) -> web.Response:
    fake = fake_of(request)
    interaction = _interaction_by_token(request)
    if interaction.response is None:
        raise not_found(10015, "Unknown Webhook")
    body = body_of(request)
    record = record_of(request)
    files = record.files
    check_upload_size(fake, files)
    original = interaction.original
    if original is not None and original.loading and not interaction.followups:
        # Discord: the first follow-up after a "thinking" defer replaces the loading message.
        original.flags &= ~FLAG_LOADING
        fake.world.apply_message_body(original, body, files, editing=False)
        message = original
        echo = "MESSAGE_UPDATE"
    else:
        flags = int(body.get("flags") or 0) & FLAG_EPHEMERAL
        message = new_interaction_message(fake.world, interaction, body, files, flags=flags)
        echo = "MESSAGE_CREATE"
    interaction.followups.append(message)
    interaction.show(message, "followup")
    fake.activity.emit(
        "interaction_followup",
        f"bot follow-up to {interaction.name}: {message.summary()}",
        interaction_id=interaction.id,
        message_id=message.id,
    )
    if not message.ephemeral and fake.echo_bot_messages:
        await fake.gateway.dispatch_message(echo, message)
    if record.query.get("wait", "false").lower() in ("1", "true"):
        return json_response(fake.world.message_payload(message))
    return no_content()


@routes.get(_WEBHOOK_MESSAGE)
async def get_webhook_message(request: web.Request) -> web.Response:
    interaction = _interaction_by_token(request)
    return json_response(fake_of(request).world.message_payload(_target(request, interaction)))


@routes.patch(_WEBHOOK_MESSAGE)
async def patch_webhook_message(request: web.Request) -> web.Response:
    fake = fake_of(request)
    interaction = _interaction_by_token(request)
    message = _target(request, interaction)
    body = body_of(request)
    files = record_of(request).files
    check_upload_size(fake, files)
    message.flags &= ~FLAG_LOADING
    fake.world.apply_message_body(message, body, files, editing=True)
    interaction.edits.append(body)
    if request.match_info["message"] == "@original":
        interaction.original = message
    interaction.show(message, "edit")
    fake.activity.emit(
        "interaction_edit",
        f"bot edited its answer to {interaction.name}: {message.summary()}",
        interaction_id=interaction.id,
        message_id=message.id,
    )
    if not message.ephemeral and fake.echo_bot_messages:
        await fake.gateway.dispatch_message("MESSAGE_UPDATE", message)
    return json_response(fake.world.message_payload(message))


@routes.delete(_WEBHOOK_MESSAGE)
async def delete_webhook_message(request: web.Request) -> web.Response:
    fake = fake_of(request)
    interaction = _interaction_by_token(request)
    message = _target(request, interaction)
    message.deleted = True
    interaction.hide(message)
    fake.activity.emit(
        "message_deleted",
        f"bot deleted its answer {message.id} to {interaction.name}",
        interaction_id=interaction.id,
        message_id=message.id,
    )
    if not message.ephemeral and fake.echo_bot_messages:
        payload: JSON = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id is not None:
            payload["guild_id"] = str(message.guild_id)
        await fake.gateway.dispatch_if_connected("MESSAGE_DELETE", payload)
    return no_content()
