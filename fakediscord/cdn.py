"""The CDN: serves the files users and the bot uploaded, at the URLs their attachments carry."""

from __future__ import annotations

from aiohttp import web

from fakediscord.rest.plumbing import fake_of

routes = web.RouteTableDef()


@routes.get("/cdn/attachments/{attachment_id}/{filename}")
async def get_attachment(request: web.Request) -> web.StreamResponse:
    upload = fake_of(request).world.attachment_files.get(int(request.match_info["attachment_id"]))
    if upload is None:
        raise web.HTTPNotFound()
    return web.Response(body=upload.data, headers={"Content-Type": upload.guessed_type})
