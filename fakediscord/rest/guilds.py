"""Guilds: the guild, its channels, roles and members."""

from __future__ import annotations

from aiohttp import web

from fakediscord.errors import not_found
from fakediscord.rest.plumbing import fake_of, guild_of, int_param, json_response

routes = web.RouteTableDef()

_GUILD = r"/guilds/{guild_id:\d+}"


@routes.get(_GUILD)
async def get_guild(request: web.Request) -> web.Response:
    payload = guild_of(request).to_payload([])
    for key in ("members", "channels", "threads", "presences", "voice_states", "joined_at"):
        payload.pop(key, None)
    return json_response(payload)


@routes.get(_GUILD + "/channels")
async def get_guild_channels(request: web.Request) -> web.Response:
    users = fake_of(request).world.users
    return json_response([c.to_payload(users) for c in guild_of(request).channels.values()])


@routes.get(_GUILD + "/roles")
async def get_guild_roles(request: web.Request) -> web.Response:
    return json_response([r.to_payload() for r in guild_of(request).roles.values()])


@routes.get(_GUILD + r"/members/{user_id:\d+}")
async def get_member(request: web.Request) -> web.Response:
    member = guild_of(request).members.get(int_param(request, "user_id"))
    if member is None:
        raise not_found(10007, "Unknown Member")
    return json_response(member.to_payload())
