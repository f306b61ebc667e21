"""Applications: the bot's application info and its synced commands (global and per guild)."""

from __future__ import annotations

from aiohttp import web

from fakediscord.errors import ApiError
from fakediscord.model import FakeUser
from fakediscord.rest.plumbing import (
    check_app,
    fake_of,
    guild_of,
    json_response,
    record_of,
)

routes = web.RouteTableDef()

_COMMANDS = r"/applications/{app_id:\d+}/commands"
_GUILD_COMMANDS = r"/applications/{app_id:\d+}/guilds/{guild_id:\d+}/commands"


@routes.get("/oauth2/applications/@me")
@routes.get("/applications/@me")
async def get_application(request: web.Request) -> web.Response:
    world = fake_of(request).world
    owner = next(
        (world.users[g.owner_id] for g in world.guilds.values() if g.owner_id in world.users),
        FakeUser(1, "owner"),
    )
    return json_response(
        {
            "id": str(world.application_id),
            "name": world.bot_user.name,
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": owner.to_payload(),
            "verify_key": "0" * 64,
            "team": None,
            "flags": 0,
            "tags": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "bot": world.bot_user.to_payload(),
        }
    )


@routes.put(_COMMANDS)
@routes.put(_GUILD_COMMANDS)
async def put_commands(request: web.Request) -> web.Response:
    """``tree.sync()``: replace the scope's commands; answer them with ids."""
    fake = fake_of(request)
    check_app(request)
    guild_id = guild_of(request).id if "guild_id" in request.match_info else None
    body = record_of(request).json
    if not isinstance(body, list):
        raise ApiError(400, 50035, "Invalid Form Body: expected a list of commands")
    stored = fake.world.sync_commands(guild_id, body)
    scope = "globally" if guild_id is None else f"to guild {guild_id}"
    names = ", ".join(c["name"] for c in stored)
    fake.activity.emit("commands_synced", f"synced {len(stored)} commands {scope}: {names}")
    return json_response(stored)


@routes.get(_COMMANDS)
@routes.get(_GUILD_COMMANDS)
async def get_commands(request: web.Request) -> web.Response:
    check_app(request)
    guild_id = int(request.match_info["guild_id"]) if "guild_id" in request.match_info else None
    return json_response(fake_of(request).world.synced_commands.get(guild_id, []))
