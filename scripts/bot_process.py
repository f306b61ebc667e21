#!/usr/bin/env python3
"""The bot's side of scripts/loadtest_bot.py: the real bot in a process of its own.

The load test serves the fake Discord and sends the messages from its own process and starts
this one, so that the bot's figures are the bot's: its peak RSS (``VmHWM``), its event loop
(not shared with the fake), the CPU each of its threads used during the burst. As in
production, the bot and "Discord" share nothing but sockets (and, on one machine, the cores).
This module imports only the standard library until it serves: what the bot process holds
is what the bot imports.

:class:`BotProcess` is the load test's end: it starts this script and reads what it says.

The process is the real bot (``bot.app``: the classifier loaded as the bot loads it, on the
serving path SENTIMENT_PRECISION or ``auto`` resolves; the real database, SQLite or
PostgreSQL; real discord.py) pointed at the fake's URLs. It talks to the load test over its
stdin and stdout, one JSON object a line (anything else it prints goes to stderr):

* it writes ``{"event": "ready", ...}`` once the bot is connected and ready;
* ``reset`` (the burst starts): the event-loop lag and the threads' CPU times start from
  zero; from then on it writes ``{"event": "progress", "shed": n, "silent": n}`` every
  ``PROGRESS_EVERY_S`` seconds (silent: read as neutral, stored, no reaction);
* ``stop``: it flushes the database writer, writes ``{"event": "final", ...}`` with every
  figure, closes the bot and exits 0.

    python scripts/bot_process.py CONFIG.json      (scripts/loadtest_bot.py starts it)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import logging.handlers
import os
import sys
import threading
import time
from asyncio.subprocess import PIPE
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.client import SentimentBot

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PROGRESS_EVERY_S = 0.2
SCRIPT = Path(__file__).resolve()
READY_TIMEOUT_S = 180.0


class BotProcess:
    """The bot in its own process (this script), spoken to in JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.ready: dict[str, Any] | None = None
        self.progress: dict[str, Any] = {"shed": 0, "silent": 0}
        self.final: dict[str, Any] | None = None
        self.problem: str | None = None
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="bot process")

    @classmethod
    async def start(cls, config: dict[str, Any], folder: Path) -> BotProcess:
        """Start the bot with ``config`` (written to ``folder``: it may hold a password)."""
        path = folder / "bot.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(config), encoding="utf-8")
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPT), str(path), stdin=PIPE, stdout=PIPE
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            message = json.loads(line)
            event = message.pop("event")
            if event == "ready":
                self.ready = message
            elif event == "progress":
                self.progress = message
            elif event == "final":
                self.final = message
            elif event == "failed":
                self.problem = message["problem"]
            self._changed.set()
        code = await self.process.wait()
        if self.final is None and self.problem is None:
            self.problem = f"the bot's process exited with code {code} (its errors: above)"
        self._changed.set()

    @property
    def gone(self) -> bool:
        """The process ended or gave up (``problem`` says why)."""
        return self._reader.done() or self.problem is not None

    async def wait(self, what: Callable[[], bool], timeout: float) -> bool:
        """Until ``what()`` or the process ended; False past ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not what() and not self._reader.done():
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return what()

    def send(self, command: str) -> None:
        if self.process.stdin is not None and self.process.returncode is None:
            with contextlib.suppress(ConnectionError):
                self.process.stdin.write(command.encode() + b"\n")

    async def stop(self) -> dict[str, Any] | None:
        """Ask the bot to flush, report and exit; its final figures (None: it died)."""
        self.send("stop")
        if not await self.wait(lambda: self.final is not None, 90.0):
            self.problem = self.problem or "the bot's process did not stop within 90 s"
        if self.process.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 30.0)
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        await self._reader
        return self.final


def peak_rss_mib(pid: int | str = "self") -> float:
    """The peak resident memory of process ``pid`` (``VmHWM``), 0.0 where unknown."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process's threads, by kind.

    Kinds: ``event loop`` (the main thread: discord.py, the bot's handlers, the storage
    writer's task), ``model thread`` (the inference service's thread, ``inference_*``),
    ``prepare thread`` (its first stage under a backlog: language gate, normaliser, tokenizer),
    ``model workers`` (torch's OpenMP pool, or the int8 path's ``int8-encoder`` threads),
    ``sqlite`` (the database connections' threads) and ``other``. Empty where
    ``/proc/self/task`` is missing.
    """
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for entry in tasks.iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the thread ended meanwhile
        seconds = (int(fields[11]) + int(fields[12])) / tick
        kind = _kind(names.get(int(entry.name)))
        out[kind] = out.get(kind, 0.0) + seconds
    return out


def _kind(name: str | None) -> str:
    if name is None or name.startswith("int8-encoder"):
        return "model workers"
    if name == "MainThread":
        return "event loop"
    if name.startswith("inference"):
        return "model thread"
    if name.startswith("prepare"):
        return "prepare thread"
    if "connection_worker" in name:
        return "sqlite"
    return "other"


def cpu_since(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {k: round(v - before.get(k, 0.0), 2) for k, v in sorted(after.items())}


def count_neutral(bot: SentimentBot) -> list[int]:
    """Count the bot's answers read as neutral (a three-way model stays silent on those,
    whatever the band): the returned one-item list holds the count so far."""
    silent = [0]
    classify = bot.mood.classify

    async def counting_classify(*a: Any, **k: Any) -> Any:
        prediction = await classify(*a, **k)
        if prediction.mood == "neutral":
            silent[0] += 1
        return prediction

    bot.mood.classify = counting_classify  # type: ignore[method-assign]
    return silent


class _Protocol:
    """JSON lines to the load test on the real stdout; ``print`` goes to stderr."""

    def __init__(self) -> None:
        self._out: IO[str] = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        os.dup2(2, 1)

    def send(self, event: str, **fields: Any) -> None:
        self._out.write(json.dumps({"event": event, **fields}) + "\n")


async def _serve(config: dict[str, Any], out: _Protocol) -> int:
    import yarl
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    from bot.app import create_bot, load_classifier
    from bot.config import Secret, Settings

    Route.BASE = config["api_base"]
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config["gateway"])
    settings = Settings(**config["settings"], token=Secret(config["token"]))
    classifier = load_classifier(settings)
    classifier.predict_batch(config["warmup"])  # as the raw timing is warm
    errors = logging.handlers.BufferingHandler(capacity=1 << 30)
    errors.setLevel(logging.ERROR)
    logging.getLogger("discord").addHandler(errors)
    bot = await create_bot(settings, classifier=classifier, guild_ready_timeout=0.1)
    silent = count_neutral(bot)
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    async with bot:
        await bot.login(config["token"])
        runner = asyncio.create_task(bot.connect(reconnect=False), name="bot")
        ready = asyncio.create_task(bot.wait_until_ready())
        await asyncio.wait({runner, ready}, timeout=READY_TIMEOUT_S, return_when="FIRST_COMPLETED")
        if not ready.done():
            ready.cancel()
            out.send("failed", problem=f"the bot was not ready: {_ended(runner)}")
            return 1
        torch = sys.modules.get("torch")
        out.send(
            "ready",
            model_version=classifier.version,
            precision=classifier.encoder.spec.precision,
            torch_threads=0 if torch is None else int(torch.get_num_threads()),
            ready_rss_mib=peak_rss_mib(),
        )
        cpu_before: dict[str, float] = {}
        started = time.monotonic()
        progress: asyncio.Task[None] | None = None

        async def report_progress() -> None:
            while True:
                out.send("progress", shed=bot.inference.stats.shed, silent=silent[0])
                await asyncio.sleep(PROGRESS_EVERY_S)

        while line := (await commands.readline()).decode().strip():
            if line == "reset":
                if config["gc_freeze"]:
                    gc.collect()
                    gc.freeze()
                bot.loop_lag.reset()
                cpu_before, started = thread_cpu_seconds(), time.monotonic()
                progress = progress or asyncio.create_task(report_progress())
            elif line == "stop":
                break
        if progress is not None:
            progress.cancel()
        cpu = cpu_since(cpu_before, thread_cpu_seconds())
        wall = time.monotonic() - started
        with contextlib.suppress(Exception):
            await asyncio.wait_for(bot.storage.flush(), 30)
        lag = bot.loop_lag.stats()
        final: dict[str, Any] = {
            "shed": bot.inference.stats.shed,
            "silent": silent[0],
            "inference": bot.inference.stats.as_dict(),
            "loop_lag_s": {"p50": lag.p50, "p99": lag.p99, "max": lag.max, "samples": lag.samples},
            "cpu_seconds": cpu,
            "cpu_wall_seconds": round(wall, 2),
            "peak_rss_mib": peak_rss_mib(),
        }
        await bot.close()
        await asyncio.wait({runner}, timeout=30)
    gc.unfreeze()
    final["problems"] = [
        f"discord.py logged {r.levelname} from {r.name}: {r.getMessage()}" for r in errors.buffer
    ]
    if runner.done() and not runner.cancelled() and runner.exception() is not None:
        final["problems"].append(f"the client task died: {runner.exception()!r}")
    out.send("final", **final)
    return 0


def _ended(task: asyncio.Task[None]) -> str:
    if not task.done():
        return "still connecting"
    if task.cancelled():
        return "the connection was cancelled"
    return f"the connection ended: {task.exception()!r}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(
            "usage: bot_process.py CONFIG.json (scripts/loadtest_bot.py starts it)", file=sys.stderr
        )
        return 2
    config = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    out = _Protocol()
    logging.basicConfig(level=getattr(logging, str(config["log_level"]).upper(), logging.WARNING))
    from bot.app import run_event_loop

    return run_event_loop(_serve(config, out))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
