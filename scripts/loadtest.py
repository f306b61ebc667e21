#!/usr/bin/env python3
"""Load test: a burst of messages through the fake Discord to the real bot, then the invariants.

Builds guilds, channels and members in a :class:`~fakediscord.FakeDiscord`,
switches automatic reactions on in every channel and the neutral band off (every guild's band
is (0.5, 0.5), so every message the bot does not shed gets a reaction, but for those a
three-way model reads as neutral), runs the real
``SentimentBot`` (real discord.py over real sockets, real model, a real database: a SQLite
file in a temporary folder, or PostgreSQL with ``--db``, see scripts/bench_db.py) and posts
``--messages`` messages from random members in random channels, as fast as possible
(``--rate 0``) or at a given rate. It waits until every message has its reaction or was shed
(the inference service's ``shed`` counter), then checks:

* every message was reacted to, shed, or read as neutral (stored, silent): nothing dropped;
* each reacted message has exactly one reaction (one PUT) and exactly one row in the database,
  and the emoji matches the stored label; rows == messages - shed, no duplicates.

Then it times the bare classifier on the same texts (``predict_batch`` in batches of the
bot's ``max_batch``, and in one call with the encoder's own length-sorted batching) and
prints the bot's throughput next to it. The exit code is 1 when an invariant fails.

Everything runs in one process and one event loop: the event-loop lag (measured inside the
bot) and the peak RSS include the fake Discord and the load generator, not only the bot.
scripts/loadtest_bot.py runs the same load test with the bot in a process of its own.

    .venv/bin/python scripts/loadtest.py --messages 2000
    .venv/bin/python scripts/loadtest.py --messages 10000 --max-queue 10000 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import gc
import json
import logging
import random
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_db, beside this script
from bench_db import BenchDatabases, add_db_argument, fetch_rows
from bot_process import count_neutral

from bot.app import create_bot
from bot.client import SentimentBot
from bot.config import Secret, Settings
from bot.monitor import LagStats, percentile
from bot.storage import DEFAULT_NEGATIVE_EMOJI, DEFAULT_POSITIVE_EMOJI, Storage
from bot.storage.dsn import Dsn
from fakediscord import ClientDiedError, FakeDiscord, running_client
from model import SentimentClassifier
from model.settings import ModelSettings
from model.training.data import DEFAULT_DATA_DIR, DataError, load_labelled

GUILD_BASE = 910_000_000_000_000_000
USER_BASE = 920_000_000_000_000_000
NO_BAND = (0.5, 0.5)  # low < p < high is never true: every prediction is voiced

FALLBACK_TEXTS = (
    "I absolutely love this, what a wonderful day!",
    "This is terrible, I hate it.",
    "the movie was fine, nothing special",
    "Best concert I have been to in years, the band was on fire",
    "ugh, the train is late again and I'm soaked",
    "thanks so much for the help earlier, it worked!",
    "I can't believe they cancelled the show, so disappointing",
    "new patch fixed the crash, finally",
    "the food was cold and the waiter was rude",
    "what a beautiful sunset tonight",
    "meh. it's ok I guess",
    "this update broke everything, worst release ever",
    "congrats on the new job!!",
    "I'm so tired of this endless meeting",
    "a charming, funny and heartfelt film",
    "the plot is a mess and the acting is wooden",
)
_REACTION_PATH = re.compile(r"^/channels/\d+/messages/(\d+)/reactions/")


@dataclass
class Report:
    """Every figure the run measured (``--json`` writes this)."""

    messages: int
    guilds: int
    channels_per_guild: int
    members_per_guild: int
    rate: float
    max_batch: int
    max_wait_ms: float
    max_queue: int
    texts_source: str
    database: str = ""  # the engine and how it was set up (--db)
    gc_freeze: bool = False
    torch_threads: int = 0
    model_version: str = ""
    completed: bool = False  # every message reacted, shed or read as neutral before the timeout
    sent: int = 0
    send_seconds: float = 0.0
    rows: int = 0
    reactions: int = 0
    shed: int = 0
    silent: int = 0  # read as neutral (a three-way model): stored, no reaction
    burst_seconds: float = 0.0  # first message sent to last reaction
    throughput: float = 0.0  # reacted messages per second over burst_seconds
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    loop_lag_ms: dict[str, float | None] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    inference: dict[str, Any] = field(default_factory=dict)
    raw_texts: int = 0
    raw_throughput: float | None = None  # predict_batch in batches of max_batch
    raw_best_throughput: float | None = None  # one predict_batch call, encoder batching
    ratio: float | None = None  # throughput / raw_throughput
    invariants: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.completed and all(self.invariants.values()) and not self.problems


def make_parser(
    prog: str = "loadtest",
    description: str = "Burst of messages through the fake Discord to the real bot; prints "
    "throughput, latency, event-loop lag, peak RSS and checks that no message was lost.",
) -> argparse.ArgumentParser:
    """The load test's flags (scripts/loadtest_bot.py adds its own to them)."""
    defaults = Settings()
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add = parser.add_argument
    add("--messages", type=int, default=10_000, help="messages to send (default 10000)")
    add("--guilds", type=int, default=3, help="guilds (default 3)")
    add("--channels", type=int, default=4, help="channels per guild (default 4)")
    add("--members", type=int, default=200, help="members per guild (default 200)")
    add("--rate", type=float, default=0.0, help="messages/s; 0 = as fast as possible (default)")
    add("--max-batch", type=int, default=defaults.max_batch, help="bot's SENTIMENT_MAX_BATCH")
    add("--max-wait-ms", type=float, default=defaults.max_wait_ms, help="SENTIMENT_MAX_WAIT_MS")
    add("--max-queue", type=int, default=defaults.max_queue, help="bot's SENTIMENT_MAX_QUEUE")
    add("--threads", type=int, default=None, help="torch threads (default: torch's)")
    add("--artifact", type=Path, default=None, help="classifier artifact (default: committed)")
    add("--data-dir", type=Path, default=None, help="SST-2 folder [SENTIMENT_DATA_DIR]")
    add(
        "--raw-messages",
        type=int,
        default=None,
        help="texts for the bare-classifier timing (default: all; 0 skips it)",
    )
    add("--timeout", type=float, default=60.0, help="give up after this long without progress")
    add(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() once the bot is ready (what-if: shorter full-collection pauses)",
    )
    add("--seed", type=int, default=0, help="random seed for authors and channels")
    add("--json", type=Path, default=None, help="also write every figure to this JSON file")
    add("--log-level", default="WARNING", help="log level of the bot and discord.py")
    add_db_argument(parser)
    return parser


def parse_args(
    argv: Sequence[str] | None, parser: argparse.ArgumentParser | None = None
) -> argparse.Namespace:
    """The flags of :func:`make_parser` (or of ``parser``, built by it), checked."""
    parser = parser or make_parser()
    args = parser.parse_args(argv)
    for name in ("messages", "guilds", "channels", "members", "max_batch", "max_queue"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.rate < 0 or args.timeout <= 0 or (args.raw_messages or 0) < 0:
        parser.error("--rate and --raw-messages must be >= 0 and --timeout > 0")
    return args


def load_texts(data_dir: Path | None) -> tuple[list[str], str]:
    """SST-2 test sentences (flag, SENTIMENT_DATA_DIR, data/sst2: where the model commands
    look), else built-ins."""
    folder = data_dir or ModelSettings.from_env().data_dir or DEFAULT_DATA_DIR
    try:
        texts = [t for t in load_labelled(folder / "test.tsv").texts if t.strip()]
    except DataError:
        texts = []
    if texts:
        return texts, f"SST-2 test sentences ({len(texts)}, cycled) from {folder}"
    return list(FALLBACK_TEXTS), f"{len(FALLBACK_TEXTS)} built-in sentences (no SST-2 in {folder})"


@dataclass(frozen=True)
class Guild:
    id: int
    channel_ids: list[int]
    member_ids: list[int]


def layout(args: argparse.Namespace) -> list[Guild]:
    """The ids of the world: ``--guilds`` guilds, each with its channels and members."""
    return [
        Guild(
            id=GUILD_BASE + g * 1_000_000,
            channel_ids=[GUILD_BASE + g * 1_000_000 + 1000 + c for c in range(args.channels)],
            member_ids=[USER_BASE + g * 1_000_000 + m for m in range(args.members)],
        )
        for g in range(args.guilds)
    ]


def build_world(fake: FakeDiscord, guilds: list[Guild]) -> None:
    for g, spec in enumerate(guilds):
        guild = fake.add_guild(spec.id, f"Load {g}", owner_id=spec.member_ids[0])
        for m, member_id in enumerate(spec.member_ids):
            guild.add_member(member_id, f"member{g}-{m}")
        for c, channel_id in enumerate(spec.channel_ids):
            guild.add_channel(channel_id, f"chat-{c}")


async def configure(db: Path | Dsn, guilds: list[Guild]) -> None:
    """Reactions on in every channel, the neutral band off, before the bot opens the file."""
    storage = await Storage.open(db)
    try:
        for guild in guilds:
            for channel_id in guild.channel_ids:
                await storage.set_auto_channel(guild.id, channel_id, True)
            await storage.update_guild_settings(guild.id, band=NO_BAND)
    finally:
        await storage.close()


@contextlib.asynccontextmanager
async def world(
    args: argparse.Namespace, report: Report
) -> AsyncIterator[tuple[FakeDiscord, Path | Dsn, Path]]:
    """The fake Discord serving the guilds of ``args`` and a fresh database of ``--db`` set up
    for them; yields (the fake, the database, a temporary folder for the run)."""
    with (
        tempfile.TemporaryDirectory(prefix="loadtest-") as tmp,
        BenchDatabases(args.db, Path(tmp)) as databases,
    ):
        db = databases.fresh("loadtest")
        report.database = databases.describe()
        async with FakeDiscord(bot_name="Sentiment Bot") as fake:
            guilds = layout(args)
            build_world(fake, guilds)
            await configure(db, guilds)
            yield fake, db, Path(tmp)


async def run_bot_burst(
    args: argparse.Namespace,
    classifier: SentimentClassifier,
    plan: list[tuple[int, int, str]],
    report: Report,
) -> None:
    async with world(args, report) as (fake, db, _):
        settings = Settings(
            token=Secret(fake.token or ""),
            database=db,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            max_queue=args.max_queue,
            torch_threads=args.threads,
        )
        bot = await create_bot(settings, classifier=classifier, guild_ready_timeout=0.1)
        sent_at: dict[int, float] = {}
        # strict=False: problems are collected and reported, not raised half-way.
        async with running_client(bot, fake, timeout=60.0, strict=False) as runner:
            await _burst(fake, bot, plan, sent_at, args, report)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bot.storage.flush(), 30)
            report.loop_lag_ms = lag_ms(bot.loop_lag.stats())
            report.inference = bot.inference.stats.as_dict()
            report.shed = bot.inference.stats.shed
        # The bot is closed here: its writer flushed, every reaction it sent is recorded.
        if runner.task.done() and not runner.task.cancelled() and runner.task.exception():
            report.problems.append(f"the client task died: {runner.task.exception()!r}")
        report.problems += runner.problems()
        check(fake, db, sent_at, report)


async def _burst(
    fake: FakeDiscord,
    bot: SentimentBot,
    plan: list[tuple[int, int, str]],
    sent_at: dict[int, float],
    args: argparse.Namespace,
    report: Report,
) -> None:
    stats = bot.inference.stats
    # A three-way model reads some messages as neutral and stays silent on them, whatever the
    # band: count those answers, so the wait below knows no reaction will come for them.
    silent = count_neutral(bot)
    if args.gc_freeze:
        gc.collect()
        gc.freeze()
    bot.loop_lag.reset()  # lag during the burst only, not start-up
    await send_plan(fake, plan, sent_at, args, report)
    await settle(fake, len(plan), args, report, shed=lambda: stats.shed, silent=lambda: silent[0])


async def send_plan(
    fake: FakeDiscord,
    plan: list[tuple[int, int, str]],
    sent_at: dict[int, float],
    args: argparse.Namespace,
    report: Report,
) -> None:
    """Post every message of ``plan`` (at ``--rate``), noting when each was sent."""
    start = time.monotonic()
    for i, (channel_id, author_id, text) in enumerate(plan):
        if args.rate > 0:
            delay = start + i / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        t = time.monotonic()
        message_id = await fake.send_message(channel_id, author_id, text)
        sent_at[message_id] = t
        if args.rate <= 0:
            await asyncio.sleep(0)  # one message per loop turn: the bot reads as we write
    report.sent = len(sent_at)
    report.send_seconds = time.monotonic() - start


async def settle(
    fake: FakeDiscord,
    total: int,
    args: argparse.Namespace,
    report: Report,
    *,
    shed: Callable[[], int],
    silent: Callable[[], int],
    gone: Callable[[], bool] = lambda: False,
) -> None:
    """Wait (O(1) per wake-up) until every one of ``total`` messages was reacted to, shed or
    read as neutral (``shed``, ``silent``: the bot's counts so far); give up when nothing moves
    for --timeout seconds, or when the bot is ``gone`` (its caller says why)."""

    def settled() -> bool:
        return len(fake.reactions) + shed() + silent() >= total

    progress, last_move = -1, time.monotonic()
    while not settled():
        done = len(fake.reactions) + shed() + silent()
        if done != progress:
            progress, last_move = done, time.monotonic()
        elif time.monotonic() - last_move > args.timeout:
            report.problems.append(
                f"no progress for {args.timeout:g}s: {len(fake.reactions)} reactions + "
                f"{shed()} shed + {silent()} read as neutral of {total} messages"
            )
            return
        if gone():
            return
        try:
            await fake.wait_for(settled, timeout=1.0)
        except TimeoutError:
            pass
        except ClientDiedError as exc:
            report.problems.append(str(exc))
            return
    report.completed = True


def check(fake: FakeDiscord, db: Path | Dsn, sent_at: dict[int, float], report: Report) -> None:
    reactions = list(fake.reactions)
    per_message = Counter(r.message_id for r in reactions)
    puts = Counter(
        int(m.group(1))
        for r in fake.requests
        if r.method == "PUT" and (m := _REACTION_PATH.match(r.path))
    )
    rows = fetch_rows(
        db, "SELECT message_id, label, in_band FROM predictions WHERE source = 'auto'"
    )
    row_ids = Counter(int(r[0]) for r in rows)
    labels = {int(r[0]): r[1] for r in rows}
    # a three-way model stays silent on what it reads as neutral (or under 0.5), whatever the band
    silent = {int(r[0]) for r in rows if r[2]}
    emoji_for = {"positive": DEFAULT_POSITIVE_EMOJI, "negative": DEFAULT_NEGATIVE_EMOJI}

    report.reactions = len(reactions)
    report.rows = len(rows)
    report.silent = len(silent)
    expected = report.sent - report.shed
    report.invariants = {
        "every message reacted to, shed or read as neutral": set(per_message) <= set(sent_at)
        and len(per_message) + report.shed + len(silent) == report.sent,
        "one reaction per reacted message": all(n == 1 for n in per_message.values())
        and all(puts[m] == 1 for m in per_message)
        and sum(puts.values()) == len(per_message),
        "rows == messages - shed": report.rows == expected,
        "one row per message, no duplicates": all(n == 1 for n in row_ids.values()),
        "rows and reactions name the same messages": set(row_ids) - silent == set(per_message),
        "emoji matches the stored label": all(
            emoji_for.get(labels.get(r.message_id, ""), "?") == r.emoji for r in reactions
        ),
    }
    latencies = [r.time - sent_at[r.message_id] for r in reactions if r.message_id in sent_at]
    report.latency_ms = {q: _ms(percentile(latencies, v)) for q, v in _QUANTILES.items()}
    if reactions and sent_at:
        report.burst_seconds = max(r.time for r in reactions) - min(sent_at.values())
        report.throughput = len(reactions) / report.burst_seconds


_QUANTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 1)


def lag_ms(lag: LagStats) -> dict[str, float | None]:
    """The event-loop lag's quantiles in milliseconds, and its number of samples."""
    return {"p50": _ms(lag.p50), "p99": _ms(lag.p99), "max": _ms(lag.max), "samples": lag.samples}


@dataclass(frozen=True)
class RawTiming:
    seconds: float  # predict_batch over the texts in batches of max_batch
    cpu_seconds: float  # CPU seconds of this process meanwhile (nothing else runs in it then)
    one_call_seconds: float | None  # one predict_batch call on them all (when asked)


def time_raw(
    classifier: SentimentClassifier, texts: list[str], max_batch: int, *, one_call: bool = False
) -> RawTiming:
    """The bare classifier on the bot's texts, in batches of the bot's ``max_batch`` (and, with
    ``one_call``, in one call: the encoder's own length-sorted batching).

    Runs in one worker thread, as the bot's inference service runs the model: calling torch
    from the main thread measured 2-3x slower here on a busy 2-core machine (OpenMP).
    """

    def timed() -> RawTiming:
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(texts), max_batch):
            classifier.predict_batch(texts[i : i + max_batch])
        batched, cpu = time.perf_counter() - started, time.process_time() - cpu
        if not one_call:
            return RawTiming(batched, cpu, None)
        started = time.perf_counter()
        classifier.predict_batch(texts)
        return RawTiming(batched, cpu, time.perf_counter() - started)

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="raw") as pool:
        return pool.submit(timed).result()


def take_raw(report: Report, texts: int, seconds: float, one_call: float | None) -> None:
    """The raw figures: ``texts`` in ``seconds`` (batches of max_batch) and in ``one_call``."""
    report.raw_texts = texts
    report.raw_throughput = texts / seconds
    report.raw_best_throughput = None if one_call is None else texts / one_call
    if report.throughput:
        report.ratio = report.throughput / report.raw_throughput


def make_plan(args: argparse.Namespace, texts: list[str]) -> list[tuple[int, int, str]]:
    """(channel, author, text) per message: random channel and member, texts in order, cycled."""
    rng = random.Random(args.seed)
    channels = [(c, guild.member_ids) for guild in layout(args) for c in guild.channel_ids]
    plan = []
    for i in range(args.messages):
        channel_id, members = rng.choice(channels)
        plan.append((channel_id, rng.choice(members), texts[i % len(texts)]))
    return plan


# What a figure of :func:`render` means, where scripts/loadtest_bot.py says otherwise.
NOTES = {
    "throughput": "reacted messages",
    "lag": "measured inside the bot, shared with the fake",
    "rss": "whole process: bot, model, fake Discord and load generator",
}


def num(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def render(
    report: Report,
    args: argparse.Namespace,
    *,
    notes: dict[str, str] = NOTES,
    about: Sequence[str] = (),
    raw_note: str = "",
    more: Sequence[str] = (),
) -> str:
    """The report as text; scripts/loadtest_bot.py gives its own ``notes`` and adds lines
    ``about`` the bot, a ``raw_note`` and ``more`` figures."""
    threads = (
        f"torch threads {report.torch_threads}" if report.torch_threads else "torch not imported"
    )
    pace = "as fast as possible" if args.rate <= 0 else f"at {args.rate:g} msg/s"
    lat, lag, inf = report.latency_ms, report.loop_lag_ms, report.inference
    send_rate = report.sent / report.send_seconds if report.send_seconds else None
    lines = [
        f"Load test: {report.messages:,} messages from {args.members} members in each of "
        f"{args.guilds} guilds x {args.channels} channels, sent {pace}",
        f"  bot: max_batch {report.max_batch}, max_wait {report.max_wait_ms:g} ms, max_queue "
        f"{report.max_queue}; model {report.model_version}, {threads}",
        *about,
        "  neutral band off: every guild's band is (0.5, 0.5), so every message that is not "
        "shed gets a reaction (a three-way model: every one it does not read as neutral)",
        f"  texts: {report.texts_source}",
        f"  database: {report.database}",
        *(["  gc.freeze() after start-up (--gc-freeze)"] if args.gc_freeze else []),
        "",
        f"  {'messages sent':<28}{report.sent:>10,}   ({num(send_rate, ' msg/s', 0)} offered)",
        f"  {'predictions logged':<28}{report.rows:>10,}",
        f"  {'reactions seen':<28}{report.reactions:>10,}",
        f"  {'read as neutral (silent)':<28}{report.silent:>10,}",
        f"  {'shed (queue full)':<28}{report.shed:>10,}",
        f"  {'throughput':<28}{num(report.throughput, ' msg/s'):>10}   "
        f"({notes['throughput']}, first send to last reaction: {report.burst_seconds:.1f} s)",
        f"  {'raw classifier':<28}{num(report.raw_throughput, ' texts/s'):>10}   "
        f"(predict_batch, batches of {report.max_batch}, same {report.raw_texts:,} texts"
        f"{raw_note})",
        f"  {'bot / raw':<28}{num(report.ratio, 'x', 2):>10}",
        f"  {'raw, best batching':<28}{num(report.raw_best_throughput, ' texts/s'):>10}   "
        "(one predict_batch call: length-sorted encoder batches)",
        f"  {'latency p50 / p95 / p99':<28}{num(lat.get('p50'))} / {num(lat.get('p95'))} / "
        f"{num(lat.get('p99'))} ms   (message sent to reaction received)",
        f"  {'event-loop lag p99':<28}{num(lag.get('p99'))} ms   (p50 {num(lag.get('p50'))}, "
        f"max {num(lag.get('max'))}; {notes['lag']})",
        f"  {'peak RSS':<28}{num(report.peak_rss_mib, ' MiB', 0):>10}   ({notes['rss']})",
        f"  {'model calls':<28}{inf.get('batches', 0):>10,}   (mean batch "
        f"{inf.get('mean_batch_size', 0):.1f}, max {inf.get('max_batch_seen', 0)})",
        *more,
        "",
        f"invariants: {'PASS' if report.ok else 'FAIL'}",
    ]
    if not report.completed:
        lines.append(
            "  [FAIL] every message reacted to, shed or read as neutral before the timeout"
        )
    lines += [f"  [{'ok' if ok else 'FAIL'}] {name}" for name, ok in report.invariants.items()]
    lines += [f"  [FAIL] {problem}" for problem in report.problems]
    return "\n".join(lines)


R = TypeVar("R", bound=Report)


def start(args: argparse.Namespace, kind: type[R]) -> tuple[R, list[tuple[int, int, str]]]:
    """Logging set up, the report (of ``kind``) begun and the plan of messages."""
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING))
    texts, source = load_texts(args.data_dir)
    report = kind(
        messages=args.messages,
        guilds=args.guilds,
        channels_per_guild=args.channels,
        members_per_guild=args.members,
        rate=args.rate,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        texts_source=source,
        gc_freeze=args.gc_freeze,
    )
    return report, make_plan(args, texts)


def raw_texts_of(args: argparse.Namespace, plan: list[tuple[int, int, str]]) -> list[str]:
    """The texts of the bare-classifier timing (--raw-messages of the plan's)."""
    raw_n = args.messages if args.raw_messages is None else args.raw_messages
    return [text for _, _, text in plan[:raw_n]]


def finish(report: Report, text: str, args: argparse.Namespace) -> int:
    """Print ``text``, write the report to --json; the exit code (1: an invariant failed)."""
    print(text)
    if args.json is not None:
        args.json.write_text(
            json.dumps({**asdict(report), "ok": report.ok}, indent=2) + "\n", encoding="utf-8"
        )
    return 0 if report.ok else 1


def main(
    argv: Sequence[str] | None = None, *, classifier: SentimentClassifier | None = None
) -> int:
    """Run the load test; ``classifier`` may be passed in (tests share one)."""
    args = parse_args(argv)
    report, plan = start(args, Report)
    if classifier is None:
        classifier = SentimentClassifier.load(args.artifact, threads=args.threads)
    import torch  # here: scripts/loadtest_bot.py reuses this module and may serve without it

    report.model_version = classifier.version
    report.torch_threads = torch.get_num_threads()
    classifier.predict_batch([text for _, _, text in plan[: args.max_batch]])  # warm up
    try:
        asyncio.run(run_bot_burst(args, classifier, plan, report))
    finally:
        gc.unfreeze()  # no-op without --gc-freeze
    report.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if raw_texts := raw_texts_of(args, plan):
        timing = time_raw(classifier, raw_texts, args.max_batch, one_call=True)
        take_raw(report, len(raw_texts), timing.seconds, timing.one_call_seconds)
    return finish(report, render(report, args), args)


if __name__ == "__main__":
    sys.exit(main())
