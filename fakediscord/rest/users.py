"""Users: the bot's own user (``/users/@me``, logout), other users, and opening a DM."""

from __future__ import annotations

from aiohttp import web

from fakediscord.errors import not_found
from fakediscord.rest.plumbing import body_of, fake_of, int_param, json_response, no_content

routes = web.RouteTableDef()


@routes.get("/users/@me")
async def get_me(request: web.Request) -> web.Response:
    bot_user = fake_of(request).world.bot_user
    return json_response(
        {**bot_user.to_payload(), "verified": True, "mfa_enabled": False, "flags": 0}
    )


@routes.post("/users/@me/channels")
async def create_dm(request: web.Request) -> web.Response:
    world = fake_of(request).world
    recipient = int(body_of(request).get("recipient_id", 0))
    if recipient not in world.users:
        raise not_found(10013, "Unknown User")
    return json_response(world.channels[world.open_dm(recipient)].to_payload(world.users))


@routes.get(r"/users/{user_id:\d+}")
async def get_user(request: web.Request) -> web.Response:
    user = fake_of(request).world.users.get(int_param(request, "user_id"))
    if user is None:
        raise not_found(10013, "Unknown User")
    return json_response(user.to_payload())


@routes.post("/auth/logout")
async def logout(request: web.Request) -> web.Response:
    return no_content()
