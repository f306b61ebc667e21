"""Channels: the channel object and the typing indicator."""

from __future__ import annotations

from aiohttp import web

from fakediscord.protocol import SEND_MESSAGES, VIEW_CHANNEL
from fakediscord.rest.plumbing import channel_of, check_bot, fake_of, json_response, no_content

routes = web.RouteTableDef()


@routes.get(r"/channels/{channel_id:\d+}")
async def get_channel(request: web.Request) -> web.Response:
    return json_response(channel_of(request).to_payload(fake_of(request).world.users))


@routes.post(r"/channels/{channel_id:\d+}/typing")
async def typing(request: web.Request) -> web.Response:
    fake = fake_of(request)
    channel = channel_of(request)
    check_bot(fake, channel, VIEW_CHANNEL | SEND_MESSAGES)
    fake.activity.emit(
        "typing", f"bot is typing in #{channel.name or channel.id}", channel_id=channel.id
    )
    return no_content()
