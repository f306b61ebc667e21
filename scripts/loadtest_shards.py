#!/usr/bin/env python3
"""Two shards on the same CPU cores: two bot processes of one torch thread each (one shard
each) against one process of two torch threads (both shards), messages per second of each.

Each run starts a fake Discord in this process with ``--guilds`` guilds (half on each of the
two shards), switches automatic reactions on in every channel and the neutral band off in a
fresh database (``--db``: SQLite, or PostgreSQL, see scripts/bench_db.py), starts the bot
processes (``sentiment-bot`` itself, pointed at the fake) pinned to ``--cores`` (default: the
first two CPUs this process may use; this process, the fake and the load generator, runs on the
others where there are others), waits until every shard is ready (``/healthz`` answers 200),
sends ``--warmup`` messages and waits for their rows, then sends ``--messages`` messages as
fast as it can and times them from the first sent to the last row committed (every message
gets a row: automatic reactions on, nothing shed with ``SENTIMENT_MAX_QUEUE`` above the
burst). It checks one row per message, no duplicates. Runs alternate between the two layouts
(``--repeat`` times each) and the medians are printed: the machine may be shared, so compare
within one run of this script.

    .venv/bin/python scripts/loadtest_shards.py --messages 3000 --repeat 3
    .venv/bin/python scripts/loadtest_shards.py --db postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

import aiohttp  # noqa: E402
from bench_db import BenchDatabases, add_db_argument, bench_databases, fetch_rows  # noqa: E402
from bot_process import peak_rss_mib  # noqa: E402

from bot.storage import ANY_GUILD, HistoryFilter, Storage  # noqa: E402
from bot.storage.dsn import Dsn  # noqa: E402
from fakediscord import FakeDiscord, shard_of  # noqa: E402

TOKEN = "MTE" + "x" * 67
USER_BASE = 930_000_000_000_000_000
NO_BAND = (0.5, 0.5)  # every prediction is voiced: every message gets a reaction and a row
# layout name -> what it is, and per process: (its shard ids, its torch threads)
LAYOUTS: dict[str, tuple[str, list[tuple[str, int]]]] = {
    "1x2": ("1 process x 2 threads (shards 0,1)", [("0,1", 2)]),
    "2x1": ("2 processes x 1 thread (a shard each)", [("0", 1), ("1", 1)]),
}
CHILD = """
import sys
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route
Route.BASE = sys.argv[1]
DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(sys.argv[2])
import bot.cli
sys.exit(bot.cli.main([]))
"""


@dataclass
class Bot:
    process: asyncio.subprocess.Process
    port: int
    log: Path


@dataclass
class Run:
    layout: str
    rate: float  # messages per second
    seconds: float
    peak_rss_mib: float  # the bot processes together
    ok: bool
    problem: str = ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--messages", type=int, default=3_000, help="timed messages per run (default 3000)")
    add("--warmup", type=int, default=100, help="messages before timing (default 100)")
    add("--guilds", type=int, default=4, help="guilds, half on each shard (default 4)")
    add("--channels", type=int, default=3, help="channels per guild (default 3)")
    add("--members", type=int, default=50, help="members per guild (default 50)")
    add("--repeat", type=int, default=3, help="runs of each layout (default 3; the median)")
    add("--cores", default="", help="CPUs for the bots, e.g. 0,1 (default: the first two)")
    add("--timeout", type=float, default=120.0, help="give up after this long without progress")
    add_db_argument(parser)
    args = parser.parse_args(argv)
    if min(args.messages, args.guilds, args.channels, args.members, args.repeat) < 1:
        parser.error("--messages, --guilds, --channels, --members and --repeat must be >= 1")
    if args.guilds % 2:
        parser.error("--guilds must be even (half on each shard)")
    allowed = sorted(os.sched_getaffinity(0))
    try:
        args.cores = [int(c) for c in args.cores.split(",")] if args.cores else allowed[:2]
    except ValueError:
        parser.error(f"--cores takes CPU numbers like 0,1, got {args.cores!r}")
    if len(args.cores) != 2 or not set(args.cores) <= set(allowed):
        parser.error(f"--cores must name two of the CPUs this process may use ({allowed})")
    return args


def guild_ids(n: int) -> list[int]:
    """``n`` guild ids, alternately on shard 0 and shard 1 of 2."""
    ids = [((1_000_000 + i) << 22) | 1 for i in range(n)]
    assert [shard_of(g, 2) for g in ids] == [i % 2 for i in range(n)]
    return ids


def build(fake: FakeDiscord, args: argparse.Namespace) -> list[tuple[int, list[int]]]:
    """The guilds, channels and members; returns (channel, its members) for the load."""
    channels = []
    for g, guild_id in enumerate(guild_ids(args.guilds)):
        members = [USER_BASE + g * 1_000 + m for m in range(args.members)]
        guild = fake.add_guild(guild_id, f"Load {g}", owner_id=members[0])
        for m, member_id in enumerate(members):
            guild.add_member(member_id, f"member{g}-{m}")
        for c in range(args.channels):
            channel_id = guild_id + 1_000 + c
            guild.add_channel(channel_id, f"chat-{c}")
            channels.append((channel_id, members))
    return channels


async def configure(db: Path | Dsn, args: argparse.Namespace) -> None:
    storage = await Storage.open(db)
    try:
        for guild_id in guild_ids(args.guilds):
            for c in range(args.channels):
                await storage.set_auto_channel(guild_id, guild_id + 1_000 + c, True)
            await storage.update_guild_settings(guild_id, band=NO_BAND)
    finally:
        await storage.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def start(
    fake: FakeDiscord, db: Path | Dsn, shards: str, threads: int, args: argparse.Namespace,
    folder: Path,
) -> Bot:  # fmt: skip
    port = _free_port()
    env = {
        **os.environ,
        "DISCORD_TOKEN": TOKEN,
        "SENTIMENT_DB": db.reveal() if isinstance(db, Dsn) else str(db),
        "SENTIMENT_SHARD_COUNT": "2",
        "SENTIMENT_SHARD_IDS": shards,
        "SENTIMENT_TORCH_THREADS": str(threads),
        "SENTIMENT_MAX_QUEUE": str(2 * (args.messages + args.warmup)),
        "SENTIMENT_HTTP_PORT": str(port),
        "SENTIMENT_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("SENTIMENT_DEV_GUILD_ID", None)
    log = folder / f"bot-{shards.replace(',', '_')}-{time.monotonic_ns()}.log"
    cores = set(args.cores)
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, fake.api_base_url, fake.gateway_url, cwd=folder,
            env=env, stdout=out, stderr=out, preexec_fn=lambda: os.sched_setaffinity(0, cores),
        )  # fmt: skip
    return Bot(process, port, log)


async def ready(fake: FakeDiscord, bots: list[Bot], budget: float = 300.0) -> None:
    deadline = time.monotonic() + budget
    async with aiohttp.ClientSession() as session:
        for bot in bots:
            while True:
                if bot.process.returncode is not None:
                    tail = bot.log.read_text(errors="replace")[-2000:]
                    raise SystemExit(f"a bot process ended at start-up:\n{tail}")
                if time.monotonic() > deadline:
                    raise SystemExit(f"a bot process was not healthy within {budget:.0f} s")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"http://127.0.0.1:{bot.port}/healthz") as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.5)
    while sorted(fake.live_shards) != [(0, 2), (1, 2)]:
        await asyncio.sleep(0.1)


async def wait_rows(storage: Storage, target: int, timeout: float) -> bool:
    """Wait until the database holds ``target`` rows; False when nothing moved for
    ``timeout`` seconds."""
    everything = HistoryFilter(guild_id=ANY_GUILD)
    last, moved = -1, time.monotonic()
    while (n := await storage.count(everything)) < target:
        if n != last:
            last, moved = n, time.monotonic()
        elif time.monotonic() - moved > timeout:
            return False
        await asyncio.sleep(0.05)
    return True


async def send(fake: FakeDiscord, plan: list[tuple[int, int, str]]) -> None:
    for channel_id, author_id, text in plan:
        await fake.send_message(channel_id, author_id, text)
        await asyncio.sleep(0)  # one message per loop turn


async def run_layout(
    name: str, databases: BenchDatabases, args: argparse.Namespace, texts: list[str], seed: int
) -> Run:
    db = databases.fresh(f"shards_{name}")
    folder = databases.folder / f"{name}-{seed}"
    folder.mkdir()
    bots: list[Bot] = []
    async with FakeDiscord(bot_name="Sentiment Bot") as fake:
        channels = build(fake, args)
        await configure(db, args)
        rng = random.Random(seed)
        plan = []
        for i in range(args.warmup + args.messages):
            channel_id, members = rng.choice(channels)
            plan.append((channel_id, rng.choice(members), texts[i % len(texts)]))
        try:
            for shards, threads in LAYOUTS[name][1]:
                bots.append(await start(fake, db, shards, threads, args, folder))
            await ready(fake, bots)
            storage = await Storage.open(db)
            try:
                await send(fake, plan[: args.warmup])
                if not await wait_rows(storage, args.warmup, args.timeout):
                    return Run(name, 0.0, 0.0, 0.0, False, "the warm-up did not finish")
                started = time.monotonic()
                await send(fake, plan[args.warmup :])
                done = await wait_rows(storage, len(plan), args.timeout)
                seconds = time.monotonic() - started
            finally:
                await storage.close()
            rss = sum(peak_rss_mib(b.process.pid) for b in bots)
        finally:
            for bot in bots:
                if bot.process.returncode is None:
                    bot.process.send_signal(signal.SIGTERM)
            for bot in bots:
                try:
                    await asyncio.wait_for(bot.process.wait(), 30)
                except TimeoutError:
                    bot.process.kill()
                    await bot.process.wait()
    rows, distinct = fetch_rows(db, "SELECT count(*), count(DISTINCT message_id) FROM predictions")[
        0
    ]
    ok = done and rows == distinct == len(plan)
    problem = "" if ok else f"{rows} rows, {distinct} messages, {len(plan)} sent"
    return Run(name, args.messages / seconds, seconds, rss, ok, problem)


def load_texts() -> list[str]:
    from loadtest import load_texts as from_sst2

    return from_sst2(None)[0]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    others = set(os.sched_getaffinity(0)) - set(args.cores)
    if others:  # this process (the fake, the load) keeps off the bots' cores
        os.sched_setaffinity(0, others)
    texts = load_texts()
    runs: list[Run] = []
    with bench_databases(args.db) as databases:
        shared = "" if others else ", shared with this process (the fake Discord and the load)"
        print(
            f"Two shards on CPUs {','.join(map(str, args.cores))}{shared}: {args.messages:,} "
            f"messages per run after {args.warmup} warm-up, {args.guilds} guilds x "
            f"{args.channels} channels\n  database: {databases.describe()}",
            flush=True,
        )
        for r in range(args.repeat):
            order = ["1x2", "2x1"] if r % 2 == 0 else ["2x1", "1x2"]
            for name in order:
                run = asyncio.run(run_layout(name, databases, args, texts, seed=r))
                runs.append(run)
                print(
                    f"  run {r + 1} {LAYOUTS[name][0]:<38} {run.rate:8.1f} msg/s "
                    f"({run.seconds:.1f} s, peak RSS {run.peak_rss_mib:,.0f} MiB)"
                    + ("" if run.ok else f"  FAIL: {run.problem}"),
                    flush=True,
                )
    medians = {
        name: statistics.median(r.rate for r in runs if r.layout == name) for name in LAYOUTS
    }
    print()
    for name, (what, _) in LAYOUTS.items():
        rss = statistics.median(r.peak_rss_mib for r in runs if r.layout == name)
        print(f"  median {what:<38} {medians[name]:8.1f} msg/s   peak RSS {rss:,.0f} MiB")
    print(f"  2 processes / 1 process: {medians['2x1'] / medians['1x2']:.2f}x")
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
