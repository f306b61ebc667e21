"""What happened and waiting for it: the record of the bot's requests, reactions and sent
messages, the listeners told of each event, and the waits that wake on activity and fail fast
when a watched client task dies or a failure check raises."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from fakediscord.errors import ClientDiedError
from fakediscord.model import FakeMessage
from fakediscord.records import FakeEvent, Reaction, RecordedRequest

_log = logging.getLogger(__name__)


class Activity:
    """The fake's record of traffic and the waits on it.

    ``status`` gives a line on the gateway's state for timeout messages.
    """

    def __init__(self, status: Callable[[], str]) -> None:
        #: Every HTTP request, in arrival order.
        self.requests: list[RecordedRequest] = []
        #: Requests no route of the fake knows (answered 404); usually a gap in the fake.
        self.unhandled_requests: list[RecordedRequest] = []
        #: Reactions the bot added (removal sets ``removed_at``).
        self.reactions: list[Reaction] = []
        #: Messages the bot sent with ``POST /channels/{c}/messages``.
        self.sent_messages: list[FakeMessage] = []
        #: Exceptions raised inside the fake itself (bugs in the fake).
        self.internal_errors: list[BaseException] = []
        self._status = status
        self._listeners: list[Callable[[FakeEvent], None]] = []
        self._watched: list[asyncio.Task[Any]] = []
        self._failure_checks: list[Callable[[], None]] = []
        self._change = asyncio.Event()
        self._last_activity = time.monotonic()
        self._inflight = 0

    # ---------------------------------------------------------------- events

    def add_listener(self, callback: Callable[[FakeEvent], None]) -> None:
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[FakeEvent], None]) -> None:
        self._listeners.remove(callback)

    def emit(self, kind: str, description: str, **data: Any) -> None:
        """Tell every listener of a :class:`FakeEvent`, then wake the waits."""
        event = FakeEvent(kind, description, data)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                _log.exception("FakeDiscord listener failed on %s", kind)
        self.notify()

    def notify(self) -> None:
        """Something changed: note the time and wake every wait to re-check."""
        self._last_activity = time.monotonic()
        self._change.set()
        self._change = asyncio.Event()

    def touch(self) -> None:
        """Note traffic (for :meth:`wait_idle`) without waking the waits."""
        self._last_activity = time.monotonic()

    def request_started(self) -> None:
        self._inflight += 1

    def request_finished(self) -> None:
        self._inflight -= 1
        self.notify()

    # ---------------------------------------------------------------- failing fast

    def watch_task(self, task: asyncio.Task[Any]) -> None:
        self._watched.append(task)

    def unwatch_task(self, task: asyncio.Task[Any]) -> None:
        with contextlib.suppress(ValueError):
            self._watched.remove(task)

    def add_failure_check(self, check: Callable[[], None]) -> None:
        self._failure_checks.append(check)

    def remove_failure_check(self, check: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._failure_checks.remove(check)

    def _check_watched(self) -> None:
        for task in self._watched:
            if task.done() and not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                raise ClientDiedError(
                    f"the discord.py client task {task.get_name()!r} died: {exc!r}"
                ) from exc
        for check in list(self._failure_checks):
            check()

    # ---------------------------------------------------------------- waits

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,
        *,
        description: str | Callable[[], str] | None = None,
    ) -> None:
        """Wait until ``predicate()`` is true (see :meth:`FakeDiscord.wait_for`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._check_watched()
            if predicate():
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                what = description() if callable(description) else description
                raise TimeoutError(self._timeout_message(what or repr(predicate), timeout))
            # Wake on any change; re-poll at least every 20 ms for state the fake cannot see
            # (the client's own timers, e.g. on_ready after guild_ready_timeout).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._change.wait(), timeout=min(remaining, 0.02))

    async def wait_idle(self, idle: float = 0.2, timeout: float = 10.0) -> None:
        """Wait until no request or gateway frame arrived for ``idle`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._check_watched()
            quiet = time.monotonic() - self._last_activity
            if self._inflight == 0 and quiet >= idle:
                return
            if loop.time() >= deadline:
                raise TimeoutError(self._timeout_message(f"{idle}s of quiet", timeout))
            await asyncio.sleep(max(0.01, min(idle - quiet, deadline - loop.time())))

    def _timeout_message(self, what: str, timeout: float) -> str:
        lines = [f"timed out after {timeout:g}s waiting for {what}", self._status()]
        if self.unhandled_requests:
            lines.append("requests the fake could not answer (404):")
            lines += [f"  {r.method} {r.path}" for r in self.unhandled_requests[-5:]]
        lines.append(f"last requests ({len(self.requests)} in all):")
        lines += [f"  {r.method} {_short(r.path)} -> {r.status}" for r in self.requests[-8:]]
        for task in self._watched:
            if task.done():
                lines.append(f"client task {task.get_name()!r} has finished")
        return "\n".join(lines)


def _short(path: str) -> str:
    """A path with interaction tokens shortened, for messages."""
    return re.sub(r"(fake-interaction\.[\w-]{6})[\w-]+", r"\1...", path)
