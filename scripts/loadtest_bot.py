#!/usr/bin/env python3
"""The bot's side of scripts/loadtest.py: the real bot in a process of its own.

The load test serves the fake Discord and sends the messages from its own process and starts
this one, so that the bot's figures are the bot's: its peak RSS, its event loop (not shared
with the fake), the CPU each of its threads used during the burst. As in production, the bot
and "Discord" share nothing but sockets (and, on this machine, the cores).

:class:`BotProcess` is the load test's end: it starts this script and reads what it says.

The process is the real bot (``bot.app.create_bot``: real model, real SQLite, real discord.py)
pointed at the fake's URLs. It talks to the load test over its stdin and stdout, one JSON
object a line (anything else the process prints goes to stderr):

* it writes ``{"event": "ready", ...}`` once the bot is connected and ready;
* ``reset`` (the burst starts): the event-loop lag and the threads' CPU times start from
  zero; from then on it writes ``{"event": "progress", "shed": n, "silent": n}`` every
  ``PROGRESS_EVERY_S`` seconds (silent: read as neutral, stored, no reaction);
* ``stop``: it flushes the database writer, writes ``{"event": "final", ...}`` with every
  figure, closes the bot and exits 0.

    python scripts/loadtest_bot.py CONFIG.json      (the load test starts it)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import resource
import sys
import threading
import time
from asyncio.subprocess import PIPE
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PROGRESS_EVERY_S = 0.2
BOT_SCRIPT = Path(__file__).resolve()
READY_TIMEOUT_S = 180.0


class BotProcess:
    """The bot in its own process (scripts/loadtest_bot.py), spoken to in JSON lines."""

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
        path = folder / "bot.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(BOT_SCRIPT), str(path), stdin=PIPE, stdout=PIPE
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


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process's threads, by kind.

    Kinds: ``event loop`` (the main thread: discord.py, the bot's handlers, the storage
    writer's task), ``model thread`` (the inference service's thread, ``inference_*``),
    ``prepare thread`` (its first stage under a backlog: language gate, normaliser, tokenizer),
    ``torch workers`` (threads Python does not know: torch's OpenMP pool), ``sqlite`` (the
    database connections' threads) and ``other``. Empty where ``/proc/self/task`` is missing.
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
    if name is None:
        return "torch workers"
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

    from bot.app import create_bot
    from bot.config import Secret, Settings
    from fakediscord.runner import ErrorLogCollector
    from model import SentimentClassifier

    Route.BASE = config["api_base"]
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config["gateway"])
    classifier = SentimentClassifier.load(config["artifact"], threads=config["threads"])
    classifier.predict_batch(config["warmup"])  # as the raw timing is warm
    settings = Settings(
        token=Secret(config["token"]),
        database=Path(config["database"]),
        max_batch=config["max_batch"],
        max_wait_ms=config["max_wait_ms"],
        max_queue=config["max_queue"],
        prepare_ahead=config["prepare_ahead"],
        torch_threads=config["threads"],
    )
    errors = ErrorLogCollector()
    logging.getLogger("discord").addHandler(errors)
    bot = await create_bot(settings, classifier=classifier, guild_ready_timeout=0.1)
    silent = [0]
    classify = bot.mood.classify

    async def counting_classify(*a: Any, **k: Any) -> Any:
        prediction = await classify(*a, **k)
        if prediction.mood == "neutral":
            silent[0] += 1
        return prediction

    bot.mood.classify = counting_classify  # type: ignore[method-assign]
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
        out.send(
            "ready",
            model_version=classifier.version,
            precision=classifier.encoder.spec.precision,
            torch_threads=_torch_threads(),
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
        }
        await bot.close()
        await asyncio.wait({runner}, timeout=30)
    gc.unfreeze()
    final["problems"] = [
        f"discord.py logged {r.levelname} from {r.name}: {r.getMessage()}" for r in errors.records
    ]
    if runner.done() and not runner.cancelled() and runner.exception() is not None:
        final["problems"].append(f"the client task died: {runner.exception()!r}")
    final["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out.send("final", **final)
    return 0


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _ended(task: asyncio.Task[None]) -> str:
    if not task.done():
        return "still connecting"
    if task.cancelled():
        return "the connection was cancelled"
    return f"the connection ended: {task.exception()!r}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: loadtest_bot.py CONFIG.json (scripts/loadtest.py starts it)", file=sys.stderr)
        return 2
    config = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    out = _Protocol()
    logging.basicConfig(level=getattr(logging, str(config["log_level"]).upper(), logging.WARNING))
    return asyncio.run(_serve(config, out))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
