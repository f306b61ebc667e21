"""The REST sub-application: every resource's routes behind the recording middleware."""

from __future__ import annotations

from aiohttp import web

from fakediscord.rest import (
    applications,
    channels,
    gateway,
    guilds,
    interactions,
    messages,
    reactions,
    users,
    webhooks,
)
from fakediscord.rest.plumbing import rest_middleware

_RESOURCES = (
    gateway,
    users,
    applications,
    guilds,
    channels,
    messages,
    reactions,
    interactions,
    webhooks,
)


def rest_app(client_max_size: int) -> web.Application:
    """The API's routes, to mount at ``/api/v10`` on an app that holds ``plumbing.FAKE``."""
    app = web.Application(middlewares=[rest_middleware], client_max_size=client_max_size)
    for module in _RESOURCES:
        app.router.add_routes(module.routes)
    return app
