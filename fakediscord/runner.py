"""Running a real discord.py client against the fake: pointing discord.py at it, starting the
client as a task, waiting until it is ready, and failing fast (and on exit) when it dies,
logs an error or calls a route the fake lacks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from fakediscord.errors import ClientDiedError, StrictModeError
from fakediscord.protocol import DEFAULT_TOKEN

if TYPE_CHECKING:
    from fakediscord.fake import FakeDiscord

_log = logging.getLogger(__name__)


@contextlib.contextmanager
def point_discord_py_at(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py's REST base and default gateway at ``fake`` (restored on exit).

    Sets ``discord.http.Route.BASE`` (read whenever a Route is built, so also used by the
    webhook adapter for interaction callbacks and follow-ups) and
    ``DiscordWebSocket.DEFAULT_GATEWAY`` (a ``yarl.URL``; discord.py adds ``v``, ``encoding``
    and ``compress`` query parameters itself).  A plain ``Client``/``commands.Bot`` never
    calls ``GET /gateway``; an ``AutoShardedClient`` calls ``GET /gateway/bot``, which the
    fake also answers.  Keep it active for the whole life of the client: RESUME after an
    invalid session reconnects to ``DEFAULT_GATEWAY``.  Not safe to use with two fakes at once.
    """
    old_base = Route.BASE
    old_gateway = DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = fake.api_base_url
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        Route.BASE = old_base
        DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


class ErrorLogCollector(logging.Handler):
    """Keeps every ERROR record of the loggers it is added to."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class RunningClient:
    """A discord.py client running against a fake (yielded by :func:`running_client`)."""

    client: discord.Client
    task: asyncio.Task[None]
    fake: FakeDiscord
    #: ERROR records logged by discord.py (e.g. "Ignoring exception in on_message").
    error_logs: list[logging.LogRecord]

    def raise_if_died(self) -> None:
        """Raise :class:`ClientDiedError` if the client task ended with an exception."""
        if self.task.done() and not self.task.cancelled() and self.task.exception() is not None:
            raise ClientDiedError(
                f"client task died: {self.task.exception()!r}"
            ) from self.task.exception()

    def raise_if_problems(self) -> None:
        """Raise :class:`StrictModeError` listing :meth:`problems`, if there are any."""
        problems = self.problems()
        if problems:
            raise StrictModeError("problems while the client ran:\n  " + "\n  ".join(problems))

    def problems(self) -> list[str]:
        """Error logs, unanswered requests and fake-internal errors, as readable lines."""
        lines = [
            f"discord.py logged {r.levelname} from {r.name}: {r.getMessage()}"
            + (f" ({r.exc_info[1]!r})" if r.exc_info and r.exc_info[1] else "")
            for r in self.error_logs
        ]
        lines += [
            f"fake has no route for {r.method} {r.path}" for r in self.fake.unhandled_requests
        ]
        lines += [f"fake internal error: {e!r}" for e in self.fake.internal_errors]
        return lines


async def _login_and_connect(client: discord.Client, token: str, reconnect: bool) -> None:
    await client.login(token)
    await client.connect(reconnect=reconnect)


@contextlib.asynccontextmanager
async def running_client(
    client: discord.Client,
    fake: FakeDiscord,
    *,
    token: str | None = None,
    timeout: float = 10.0,
    strict: bool = True,
    reconnect: bool = False,
) -> AsyncIterator[RunningClient]:
    """Run ``client`` against ``fake`` until the block ends; wait until it is ready first.

    Runs ``client.login(token)`` + ``client.connect(reconnect=reconnect)`` as a task while
    discord.py is pointed at the fake, and waits (up to ``timeout``) until the client has
    dispatched ``on_ready`` (set ``guild_ready_timeout`` low on the client, e.g. 0.1, or this
    takes 2 s).  The fake's waits raise :class:`ClientDiedError` at once if the task dies and,
    with ``strict``, :class:`StrictModeError` at once if discord.py logs an error, the client
    calls a route the fake lacks, or the fake fails; the same checks run on exit, after the
    client is closed and its task awaited.  Use ``strict=False`` for a test that provokes
    such an error on purpose (then inspect ``error_logs``).

    ``reconnect=False`` (the default) makes failures surface at once; resumable gateway
    closes are still RESUMEd.  Pass ``reconnect=True`` to get discord.py's production
    behaviour, e.g. a 4014 close raising ``PrivilegedIntentsRequired`` (with ``False``
    discord.py raises the bare ``ConnectionClosed`` before it maps the code).
    """
    collector = ErrorLogCollector()
    discord_logger = logging.getLogger("discord")
    discord_logger.addHandler(collector)
    with point_discord_py_at(fake):
        task: asyncio.Task[None] = asyncio.create_task(
            _login_and_connect(client, token or fake.token or DEFAULT_TOKEN, reconnect),
            name=f"discord.py client ({type(client).__name__})",
        )
        runner = RunningClient(client, task, fake, collector.records)
        fake.watch_task(task)
        if strict:
            fake.add_failure_check(runner.raise_if_problems)
        try:
            await _wait_until_ready(client, fake, task, timeout)
            yield runner
        finally:
            fake.unwatch_task(task)
            fake.remove_failure_check(runner.raise_if_problems)
            await _stop_client(client, task, timeout)
            discord_logger.removeHandler(collector)
    runner.raise_if_died()
    if strict:
        runner.raise_if_problems()


async def _stop_client(client: discord.Client, task: asyncio.Task[None], timeout: float) -> None:
    """Close the client and wait for its task; never raises (the task keeps its outcome)."""
    try:
        await asyncio.wait_for(client.close(), timeout)
    except Exception:
        _log.exception("closing the discord.py client failed")
    await asyncio.wait({task}, timeout=timeout)
    if not task.done():
        _log.error(
            "the discord.py client task did not end %ss after close(); cancelling it", timeout
        )
        task.cancel()
        await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # mark it retrieved; raise_if_died re-raises it


async def _wait_until_ready(
    client: discord.Client, fake: FakeDiscord, task: asyncio.Task[None], timeout: float
) -> None:
    try:
        await fake.wait_for(
            lambda: client.is_ready() or task.done(),
            timeout,
            description="the client to become ready (on_ready; hint: guild_ready_timeout=0.1)",
        )
    except ClientDiedError as exc:
        raise ClientDiedError(f"client task ended before it was ready: {exc.__cause__!r}") from (
            exc.__cause__
        )
    if not client.is_ready():
        raise ClientDiedError("client task ended before it was ready (without an exception)")
