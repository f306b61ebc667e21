"""``/gateway`` and ``/gateway/bot``: where the websocket is (an AutoShardedClient asks)."""

from __future__ import annotations

from aiohttp import web

from fakediscord.rest.plumbing import fake_of, json_response

routes = web.RouteTableDef()


@routes.get("/gateway")
async def get_gateway(request: web.Request) -> web.Response:
    return json_response({"url": fake_of(request).gateway_url})


@routes.get("/gateway/bot")
async def get_gateway_bot(request: web.Request) -> web.Response:
    return json_response(
        {
            "url": fake_of(request).gateway_url,
            "shards": fake_of(request).recommended_shard_count(),
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 14_400_000,
                "max_concurrency": 1,
            },
        }
    )
