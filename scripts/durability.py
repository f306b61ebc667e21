#!/usr/bin/env python3
"""Durability check: SIGKILL the real bot at random moments; no reacted prediction may be lost.

The promise checked: a prediction whose reaction went out is already committed to SQLite, so a
crash of the process (``kill -9``, the OOM killer) cannot lose it. Each run:

1. starts the real bot process (``sentiment-bot``'s ``main``, real model, real SQLite) against
   a fake Discord served from this script's process (127.0.0.1, real HTTP and websockets);
2. waits until it reacts to a first message, then posts messages at ``--rate`` per second;
3. SIGKILLs the bot after a random ``--min-s`` .. ``--max-s`` seconds of traffic;
4. starts the bot again on the same database (SQLite recovers the write-ahead log) and
   counts the messages that got a reaction but have no row: "reacted but missing".

Every run uses the same database file, which grows from run to run. The exit code is 1 if any
run lost a reacted prediction (or the bot never became ready), else 0.

    .venv/bin/python scripts/durability.py --runs 20
    .venv/bin/python scripts/durability.py --runs 3 --rate 100 --seed 7 --keep data/durability

The bot's logs (stderr, one file per start) are kept beside the database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GUILD = 930_000_000_000_000_001
GENERAL = 930_000_000_000_000_002
OWNER = 930_000_000_000_000_003
MEMBER = 930_000_000_000_000_004
TOKEN = "MTE" + "x" * 67  # the fake takes any token
TEXTS = (
    "I absolutely love this, what a wonderful day!",
    "This is terrible, I hate it.",
    "Best concert I have been to in years, the band was on fire",
    "the food was cold and the waiter was rude",
    "thanks so much for the help earlier, it worked!",
    "this update broke everything, worst release ever",
)
READY_TIMEOUT_S = 120.0


@dataclass
class Run:
    sent: int
    reacted: int
    stored: int
    missing: list[int]
    killed_after_s: float


def _child(api_base: str, gateway: str) -> int:
    """The bot process: ``sentiment-bot`` pointed at the fake Discord."""
    import yarl
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    import bot.cli

    Route.BASE = api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    return bot.cli.main([])


class Harness:
    def __init__(self, folder: Path, rate: float, rng: random.Random) -> None:
        from fakediscord import FakeDiscord

        self.folder = folder
        self.db = folder / "bot.db"
        self.rate = rate
        self.rng = rng
        self.fake = FakeDiscord(bot_name="Sentiment Bot")
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> Harness:
        from bot.storage import Storage

        guild = self.fake.add_guild(GUILD, "Durability", owner_id=OWNER)
        guild.add_channel(GENERAL, "general")
        guild.add_member(OWNER, "owner")
        guild.add_member(MEMBER, "member")
        await self.fake.start()
        storage = await Storage.open(self.db)  # automatic reactions on in #general
        try:
            await storage.set_auto_channel(GUILD, GENERAL, True)
        finally:
            await storage.close()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(signal.SIGTERM)
        await self.fake.close()

    async def start(self) -> None:
        """Start the bot process and wait until it reacts to a message."""
        self.starts += 1
        env = {
            **os.environ,
            "DISCORD_TOKEN": TOKEN,
            "SENTIMENT_DB": str(self.db),
            "SENTIMENT_DEV_GUILD_ID": str(GUILD),
            "SENTIMENT_LOG_LEVEL": "WARNING",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        log = (self.folder / f"bot-{self.starts:03d}.log").open("wb")
        code = f"import sys; sys.path.insert(0, {str(REPO)!r}); from scripts.durability import _child; sys.exit(_child({self.fake.api_base_url!r}, {self.fake.gateway_url!r}))"  # noqa: E501
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], cwd=self.folder, env=env, stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the bot exited with {self.process.returncode} before it was ready; see "
                    f"{self.folder / f'bot-{self.starts:03d}.log'}"
                )
            if self.fake.ready.is_set():
                probe = await self.fake.send_message(GENERAL, MEMBER, TEXTS[0])
                with contextlib.suppress(Exception):
                    await self.fake.wait_for(functools.partial(self._reacted, probe), 5)
                if self.fake.active_reactions(probe):
                    return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the bot did not react within {READY_TIMEOUT_S:.0f} s of starting")

    def _reacted(self, message_id: int) -> bool:
        return bool(self.fake.active_reactions(message_id))

    async def stop(self, sig: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if process.poll() is None:
            process.kill()
            process.wait()

    async def run(self, min_s: float, max_s: float) -> Run:
        """Traffic, SIGKILL at a random moment, restart, count reacted rows that are missing."""
        if self.process is None:
            await self.start()
        after = self.rng.uniform(min_s, max_s)
        sent: list[int] = []
        started = time.monotonic()
        interval = 1.0 / self.rate
        while time.monotonic() - started < after:
            text = f"{self.rng.choice(TEXTS)} #{self.rng.randrange(10**9)}"
            sent.append(await self.fake.send_message(GENERAL, MEMBER, text))
            await asyncio.sleep(interval)
        await self.stop(signal.SIGKILL)
        reacted = [m for m in sent if self.fake.active_reactions(m)]
        await self.start()  # the same database: SQLite recovers the write-ahead log
        stored = _auto_rows(self.db, sent)
        return Run(
            sent=len(sent),
            reacted=len(reacted),
            stored=len(stored),
            missing=[m for m in reacted if m not in stored],
            killed_after_s=after,
        )


def _auto_rows(db: Path, message_ids: Sequence[int]) -> set[int]:
    if not message_ids:
        return set()
    conn = sqlite3.connect(db.as_uri() + "?mode=ro", uri=True, timeout=10)
    try:
        marks = ",".join("?" * len(message_ids))
        rows = conn.execute(
            f"SELECT message_id FROM predictions WHERE source = 'auto' AND message_id IN ({marks})",
            list(message_ids),
        ).fetchall()
    finally:
        conn.close()
    return {int(r[0]) for r in rows}


@contextlib.asynccontextmanager
async def _folder(keep: Path | None) -> AsyncIterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="durability-") as tmp:
        yield Path(tmp)


async def main_async(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    total_missing = 0
    total_reacted = 0
    async with _folder(args.keep) as folder, Harness(folder, args.rate, rng) as harness:
        for i in range(1, args.runs + 1):
            run = await harness.run(args.min_s, args.max_s)
            total_missing += len(run.missing)
            total_reacted += run.reacted
            print(
                f"run {i:>3}: killed after {run.killed_after_s:4.1f} s; sent {run.sent:>4}, "
                f"reacted {run.reacted:>4}, stored {run.stored:>4}, "
                f"reacted but missing {len(run.missing)}"
                + (f" {run.missing[:5]}" if run.missing else ""),
                flush=True,
            )
    print(
        f"{args.runs} runs: {total_reacted} reacted predictions, "
        f"{total_missing} reacted but missing after SIGKILL"
    )
    return 1 if total_missing else 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="kill-and-restart cycles (20)")
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second (50)")
    parser.add_argument("--min-s", type=float, default=0.5, help="traffic before the kill, min")
    parser.add_argument("--max-s", type=float, default=3.0, help="traffic before the kill, max")
    parser.add_argument("--seed", type=int, default=None, help="random seed (kill moments)")
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep the database and logs in this folder"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.rate <= 0 or not 0 < args.min_s <= args.max_s:
        parser.error("need --runs >= 1, --rate > 0 and 0 < --min-s <= --max-s")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
