"""What every REST route shares: Discord-shaped JSON answers, the middleware that records each
request (body and uploads decoded), applies injected faults, checks the token and turns route
errors into Discord error bodies, and the lookups and permission checks routes start with."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

import aiohttp
from aiohttp import web

from fakediscord.errors import ApiError, missing_permissions, not_found
from fakediscord.model import FakeChannel, FakeFile, FakeGuild, FakeMessage
from fakediscord.protocol import API_VERSION, JSON
from fakediscord.records import RecordedRequest

if TYPE_CHECKING:
    from fakediscord.fake import FakeDiscord

_log = logging.getLogger(__name__)

#: The fake a route serves, on the root application (read through ``request.config_dict``).
FAKE: Final[web.AppKey[FakeDiscord]] = web.AppKey("fakediscord.fake")
_RECORD: Final = web.RequestKey("fakediscord.record", RecordedRequest)
PREFIX: Final = f"/api/v{API_VERSION}"


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON reply with ``Content-Type`` exactly ``application/json`` (no charset).

    discord.py compares the header with ``==``; ``web.json_response`` would append
    ``; charset=utf-8`` and discord.py would then treat the body as text.
    """
    all_headers = {"Content-Type": "application/json"}
    if headers:
        all_headers.update(headers)
    return web.Response(body=json.dumps(data).encode(), status=status, headers=all_headers)


def no_content() -> web.Response:
    return web.Response(status=204)


# ---------------------------------------------------------------- the middleware


@web.middleware
async def rest_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Record, fault, authorise and answer one REST request; a bug in the fake answers 500."""
    fake = request.config_dict[FAKE]
    fake.activity.request_started()
    try:
        return await _handle(fake, request, handler)
    except Exception as exc:  # a bug in the fake: answer 500, record it, do not hide it
        _log.exception("FakeDiscord failed on %s %s", request.method, request.path)
        fake.activity.internal_errors.append(exc)
        return json_response({"message": f"fake internal error: {exc!r}", "code": 0}, 500)
    finally:
        fake.activity.request_finished()


async def _handle(fake: FakeDiscord, request: web.Request, handler: Any) -> web.StreamResponse:
    raw_tail = request.rel_url.raw_path.split(PREFIX, 1)[1]
    path = "/".join(unquote(part) for part in raw_tail.split("/"))
    try:
        body, files = await _read_body(request)
    except ValueError as exc:
        return json_response({"message": f"bad body: {exc}", "code": 50109}, 400)
    record = RecordedRequest(
        method=request.method,
        path=path,
        query=dict(request.query),
        json=body,
        files=files,
        time=time.monotonic(),
        headers=dict(request.headers),
    )
    fake.activity.requests.append(record)
    request[_RECORD] = record
    _log.debug("fake Discord <- %s %s", request.method, path)
    response = await _answer(fake, request, record, handler)
    record.status = response.status
    return response


async def _answer(
    fake: FakeDiscord, request: web.Request, record: RecordedRequest, handler: Any
) -> web.StreamResponse:
    path = record.path
    fault = fake.faults.take(request.method, path)
    if fault is not None:
        return fault.response()
    needs_auth = not path.startswith(("/interactions/", "/webhooks/"))
    authorized = request.headers.get("Authorization") == f"Bot {fake.token}"
    if needs_auth and fake.token is not None and not authorized:
        return json_response({"message": "401: Unauthorized", "code": 0}, 401)
    unmatched = request.match_info.http_exception
    if isinstance(unmatched, web.HTTPMethodNotAllowed):
        return json_response({"message": "405: Method Not Allowed", "code": 0}, 405)
    if unmatched is not None:
        fake.activity.unhandled_requests.append(record)
        _log.warning("FakeDiscord has no route for %s %s (answered 404)", request.method, path)
        fake.activity.emit(
            "unhandled_request", f"no fake route for {request.method} {path}", path=path
        )
        return json_response({"message": "404: Not Found", "code": 0}, 404)
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as exc:
        return json_response({"message": exc.message, "code": exc.code}, exc.status)
    except Exception as exc:
        _log.exception("FakeDiscord handler for %s %s failed", request.method, path)
        fake.activity.internal_errors.append(exc)
        return json_response({"message": f"fake internal error: {exc!r}", "code": 0}, 500)


async def _read_body(request: web.Request) -> tuple[Any, list[FakeFile]]:
    """Decode a JSON or multipart (``payload_json`` + ``files[n]``) request body."""
    if request.content_type == "multipart/form-data":
        payload: Any = None
        uploads: dict[int, FakeFile] = {}
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, aiohttp.BodyPartReader):
                raise ValueError("nested multipart is not supported")
            name = part.name or ""
            if name == "payload_json":
                payload = json.loads(await part.text())
                continue
            found = re.fullmatch(r"files\[(\d+)\]", name) or re.fullmatch(r"file(\d*)", name)
            if found is None:
                raise ValueError(f"unexpected multipart field {name!r}")
            index = int(found.group(1) or 0)
            content_type = part.headers.get(aiohttp.hdrs.CONTENT_TYPE)
            uploads[index] = FakeFile(
                filename=part.filename or f"file{index}",
                data=bytes(await part.read(decode=False)),
                content_type=None
                if content_type in (None, "application/octet-stream")
                else content_type,
            )
        return payload, [uploads[i] for i in sorted(uploads)]
    raw = await request.read()
    if not raw:
        return None, []
    if request.content_type == "application/json":
        return json.loads(raw), []
    return raw.decode(errors="replace"), []


# ---------------------------------------------------------------- what routes start with


def fake_of(request: web.Request) -> FakeDiscord:
    return request.config_dict[FAKE]


def record_of(request: web.Request) -> RecordedRequest:
    """The request as the middleware recorded it (decoded path, JSON body, uploads)."""
    return request[_RECORD]


def body_of(request: web.Request) -> JSON:
    """The JSON object body; 400 (50109) when it is not an object."""
    body = record_of(request).json
    if not isinstance(body, dict):
        raise ApiError(400, 50109, "The request body contains invalid JSON.")
    return body


def int_param(request: web.Request, name: str) -> int:
    return int(request.match_info[name])


def channel_of(request: web.Request) -> FakeChannel:
    channel = fake_of(request).world.channels.get(int_param(request, "channel_id"))
    if channel is None:
        raise not_found(10003, "Unknown Channel")
    return channel


def message_of(request: web.Request, channel: FakeChannel) -> FakeMessage:
    """The path's message in ``channel``; 404 if deleted, elsewhere or ephemeral."""
    message = fake_of(request).world.messages.get(int_param(request, "message_id"))
    if message is None or message.deleted or message.channel_id != channel.id:
        raise not_found()
    if message.ephemeral:
        raise not_found()
    return message


def guild_of(request: web.Request) -> FakeGuild:
    guild = fake_of(request).world.guilds.get(int_param(request, "guild_id"))
    if guild is None:
        raise not_found(10004, "Unknown Guild")
    return guild


def check_app(request: web.Request) -> None:
    if int_param(request, "app_id") != fake_of(request).world.application_id:
        raise not_found(10002, "Unknown Application")


def check_bot(fake: FakeDiscord, channel: FakeChannel, needed: int) -> None:
    """403 (50013) unless the bot has the ``needed`` permissions where ``channel`` is."""
    if not fake.check_permissions or channel.guild_id is None:
        return
    perms = fake.world.guilds[channel.guild_id].permissions_of(fake.world.bot_user_id)
    if needed & ~perms:
        raise missing_permissions()


def check_upload_size(fake: FakeDiscord, files: list[FakeFile]) -> None:
    if sum(len(f.data) for f in files) > fake.attachment_size_limit:
        raise ApiError(413, 40005, "Request entity too large")
