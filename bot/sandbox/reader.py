"""Reading the console's lines from stdin without blocking the event loop the bot runs on."""

from __future__ import annotations

import asyncio
import queue
import sys
import threading

from bot.sandbox.display import echo


class LineReader:
    """Reads one line per request in a daemon thread.

    The bot shares the event loop, so stdin is never read on it; and a daemon thread stuck in
    ``input()`` does not keep the process alive after Ctrl-C (a default executor would).
    """

    def __init__(self, *, interactive: bool) -> None:
        self.interactive = interactive
        self._requests: queue.SimpleQueue[tuple[str, asyncio.Future[str | None]]] = (
            queue.SimpleQueue()
        )
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._run, name="sandbox-stdin", daemon=True).start()

    async def readline(self, prompt: str) -> str | None:
        """The next line without its newline, or None at end of input (Ctrl-D, end of pipe)."""
        future: asyncio.Future[str | None] = self._loop.create_future()
        self._requests.put((prompt, future))
        line = await future
        if not self.interactive:
            echo(prompt + line if line is not None else "")  # a pipe reads like a typed session
        elif line is None:
            echo("")  # end the prompt's line after Ctrl-D
        return line

    def _run(self) -> None:
        while True:
            prompt, future = self._requests.get()
            line: str | None
            try:
                if self.interactive:
                    line = input(prompt)
                else:
                    raw = sys.stdin.readline()
                    line = raw.rstrip("\r\n") if raw else None
            except (EOFError, OSError, ValueError):
                line = None
            try:
                self._loop.call_soon_threadsafe(_resolve, future, line)
            except RuntimeError:  # the loop is closed: the console is gone
                return


def _resolve(future: asyncio.Future[str | None], line: str | None) -> None:
    if not future.done():
        future.set_result(line)
