#!/usr/bin/env python3
"""Load test: a burst of messages through the fake Discord to the real bot, then the invariants.

Builds guilds, channels and members in a :class:`~fakediscord.FakeDiscord` served from this
process, switches automatic reactions on in every channel and the neutral band off (every
guild's band is (0.5, 0.5), so every message the bot does not shed gets a reaction, but for
those a three-way model reads as neutral), starts the real ``SentimentBot`` in a process of
its own (scripts/loadtest_bot.py: real discord.py over real sockets, real model, real SQLite
in a temporary folder) and posts ``--messages`` messages from random members in random
channels, as fast as possible (``--rate 0``) or at a given rate. It waits until every message
has its reaction, was shed (the inference service's ``shed`` counter) or was read as neutral,
then checks:

* every message was reacted to, shed, or read as neutral (stored, silent): nothing dropped;
* each reacted message has exactly one reaction (one PUT) and exactly one row in SQLite, and
  the emoji matches the stored label; rows == messages - shed, no duplicates.

Then it times the bare classifier on the same texts in this process, once the bot's has
ended (``predict_batch`` in batches of the bot's ``max_batch``, and in one call with the
encoder's own length-sorted batching), and prints the bot's throughput next to it: bot / raw
is the share of the bare classifier's speed the bot keeps while it also reads the gateway,
stores and reacts. The exit code is 1 when an invariant fails.

The bot's process is the bot alone: its peak RSS, its event-loop lag and the CPU seconds of
each of its threads during the burst are its own. The fake Discord and the load generator
still share the machine's cores with it (on a 2-core machine they cost the bot some speed).

    .venv/bin/python scripts/loadtest.py --messages 2000
    .venv/bin/python scripts/loadtest.py --messages 10000 --max-queue 10000 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import logging
import random
import re
import resource
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.monitor import percentile
from bot.storage import DEFAULT_NEGATIVE_EMOJI, DEFAULT_POSITIVE_EMOJI, Storage
from fakediscord import FakeDiscord
from fakediscord.protocol import DEFAULT_TOKEN
from model import SentimentClassifier
from model.serving.machine import machine
from model.settings import ModelSettings
from model.training.data import DEFAULT_DATA_DIR, DataError, load_labelled

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder: its sibling below
from loadtest_bot import BotProcess

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
    gc_freeze: bool = False
    machine: str = ""
    torch_threads: int = 0
    precision: str = ""
    model_version: str = ""
    completed: bool = False  # every message reacted, shed or read as neutral before the timeout
    sent: int = 0
    send_seconds: float = 0.0
    rows: int = 0
    reactions: int = 0
    shed: int = 0
    silent: int = 0  # read as neutral (a three-way model): stored, no reaction
    burst_seconds: float = 0.0  # first message sent to last reaction
    # Messages answered (reacted to or read as neutral: each one classified and stored, the
    # work the raw timing does per text) per second over burst_seconds.
    throughput: float = 0.0
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    loop_lag_ms: dict[str, float | None] = field(default_factory=dict)
    peak_rss_mib: float = 0.0  # the bot's process
    # CPU seconds of the bot's threads during the burst, by kind (loadtest_bot.py)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    cpu_wall_seconds: float = 0.0
    harness_cpu_seconds: float = 0.0  # this process (fake Discord, load generator) meanwhile
    inference: dict[str, Any] = field(default_factory=dict)
    raw_texts: int = 0
    raw_throughput: float | None = None  # predict_batch in batches of max_batch
    raw_before: float | None = None  # the same, timed before the bot's burst
    raw_after: float | None = None  # and after it (raw_throughput is over both)
    raw_cpu_ms: float | None = None  # CPU milliseconds per text of the raw timings
    raw_best_throughput: float | None = None  # one predict_batch call, encoder batching
    ratio: float | None = None  # throughput / raw_throughput
    invariants: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.completed and all(self.invariants.values()) and not self.problems


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="loadtest",
        description="Burst of messages through the fake Discord to the real bot; prints "
        "throughput, latency, event-loop lag, peak RSS and checks that no message was lost.",
    )
    add = parser.add_argument
    add("--messages", type=int, default=10_000, help="messages to send (default 10000)")
    add("--guilds", type=int, default=3, help="guilds (default 3)")
    add("--channels", type=int, default=4, help="channels per guild (default 4)")
    add("--members", type=int, default=200, help="members per guild (default 200)")
    add("--rate", type=float, default=0.0, help="messages/s; 0 = as fast as possible (default)")
    add("--max-batch", type=int, default=defaults.max_batch, help="bot's SENTIMENT_MAX_BATCH")
    add("--max-wait-ms", type=float, default=defaults.max_wait_ms, help="SENTIMENT_MAX_WAIT_MS")
    add("--max-queue", type=int, default=defaults.max_queue, help="bot's SENTIMENT_MAX_QUEUE")
    add(
        "--prepare-ahead",
        action=argparse.BooleanOptionalAction,
        default=defaults.prepare_ahead,
        help="bot's SENTIMENT_PREPARE_AHEAD",
    )
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


async def configure(db: Path, guilds: list[Guild]) -> None:
    """Reactions on in every channel, the neutral band off, before the bot opens the file."""
    storage = await Storage.open(db)
    try:
        for guild in guilds:
            for channel_id in guild.channel_ids:
                await storage.set_auto_channel(guild.id, channel_id, True)
            await storage.update_guild_settings(guild.id, band=NO_BAND)
    finally:
        await storage.close()


async def run_bot_burst(
    args: argparse.Namespace,
    plan: list[tuple[int, int, str]],
    report: Report,
) -> None:
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        db = Path(tmp) / "bot.db"
        async with FakeDiscord(bot_name="Sentiment Bot") as fake:
            guilds = layout(args)
            build_world(fake, guilds)
            await configure(db, guilds)
            bot = await BotProcess.start(
                {
                    "api_base": fake.api_base_url,
                    "gateway": fake.gateway_url,
                    "token": fake.token or DEFAULT_TOKEN,
                    "database": str(db),
                    "artifact": None if args.artifact is None else str(args.artifact),
                    "threads": args.threads,
                    "max_batch": args.max_batch,
                    "max_wait_ms": args.max_wait_ms,
                    "max_queue": args.max_queue,
                    "prepare_ahead": args.prepare_ahead,
                    "gc_freeze": args.gc_freeze,
                    "log_level": args.log_level,
                    "warmup": [text for _, _, text in plan[: args.max_batch]],
                },
                Path(tmp),
            )
            try:
                if await bot.wait(lambda: bot.ready is not None, 300.0):
                    assert bot.ready is not None
                    report.model_version = bot.ready["model_version"]
                    report.precision = bot.ready["precision"]
                    report.torch_threads = bot.ready["torch_threads"]
                    sent_at: dict[int, float] = {}
                    cpu = _process_cpu_seconds()
                    await _burst(fake, bot, plan, sent_at, args, report)
                    report.harness_cpu_seconds = round(_process_cpu_seconds() - cpu, 2)
                    final = await bot.stop()
                    if final is not None:
                        _take_final(final, report)
                    check(fake, db, sent_at, report)
                else:
                    report.problems.append(bot.problem or "the bot was not ready within 300 s")
            finally:
                await bot.stop()
            if bot.problem:
                report.problems.append(bot.problem)
            report.problems += [
                f"fake has no route for {r.method} {r.path}" for r in fake.unhandled_requests
            ]
            report.problems += [f"fake internal error: {e!r}" for e in fake.internal_errors]


def _process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _take_final(final: dict[str, Any], report: Report) -> None:
    lag = final["loop_lag_s"]
    report.loop_lag_ms = {q: _ms(lag[q]) for q in ("p50", "p99", "max")}
    report.loop_lag_ms["samples"] = lag["samples"]
    report.inference = final["inference"]
    report.shed = final["shed"]
    report.peak_rss_mib = final["peak_rss_mib"]
    report.cpu_seconds = final["cpu_seconds"]
    report.cpu_wall_seconds = final["cpu_wall_seconds"]
    report.problems += final["problems"]


async def _burst(
    fake: FakeDiscord,
    bot: BotProcess,
    plan: list[tuple[int, int, str]],
    sent_at: dict[int, float],
    args: argparse.Namespace,
    report: Report,
) -> None:
    total = len(plan)
    bot.send("reset")  # lag and CPU during the burst only, not start-up
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

    # Wait until every message was reacted to, shed or read as neutral (a three-way model
    # stays silent on those: the bot's process counts them); give up only when nothing moves
    # for --timeout seconds.
    def done() -> int:
        return len(fake.reactions) + int(bot.progress["shed"]) + int(bot.progress["silent"])

    progress, last_move = -1, time.monotonic()
    while done() < total:
        if done() != progress:
            progress, last_move = done(), time.monotonic()
        elif time.monotonic() - last_move > args.timeout:
            report.problems.append(
                f"no progress for {args.timeout:g}s: {len(fake.reactions)} reactions + "
                f"{bot.progress['shed']} shed + {bot.progress['silent']} read as neutral of "
                f"{total} messages"
            )
            return
        if bot.process.returncode is not None or bot.problem:
            return  # run_bot_burst reports why
        with contextlib.suppress(TimeoutError):
            await fake.wait_for(lambda: done() >= total, timeout=0.5)
    report.completed = True


def check(fake: FakeDiscord, db: Path, sent_at: dict[int, float], report: Report) -> None:
    reactions = list(fake.reactions)
    per_message = Counter(r.message_id for r in reactions)
    puts = Counter(
        int(m.group(1))
        for r in fake.requests
        if r.method == "PUT" and (m := _REACTION_PATH.match(r.path))
    )
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT message_id, label, in_band FROM predictions WHERE source = 'auto'"
        ).fetchall()
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
        report.throughput = (len(reactions) + report.silent) / report.burst_seconds


_QUANTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 1)


def time_raw(
    classifier: SentimentClassifier, texts: list[str], max_batch: int, *, one_call: bool = False
) -> tuple[float, float, float | None]:
    """Seconds the bare classifier takes on ``texts`` in batches of ``max_batch``, the CPU
    seconds that took (this process's threads: nothing else runs here meanwhile) and, with
    ``one_call``, the seconds of one ``predict_batch`` call (length-sorted encoder batches).

    Runs in one worker thread, as the bot's inference service runs the model: calling torch
    from the main thread measured 2-3x slower here on a busy 2-core machine (OpenMP).
    """

    def timed() -> tuple[float, float, float | None]:
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(texts), max_batch):
            classifier.predict_batch(texts[i : i + max_batch])
        batched, cpu = time.perf_counter() - started, time.process_time() - cpu
        if not one_call:
            return batched, cpu, None
        started = time.perf_counter()
        classifier.predict_batch(texts)
        return batched, cpu, time.perf_counter() - started

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="raw") as pool:
        return pool.submit(timed).result()


def take_raw(
    report: Report, texts: int, before: float, after: float, best: float | None, cpu: float
) -> None:
    """The raw figures from the timings before and after the bot's burst (seconds; ``cpu``:
    CPU seconds of both): the rate is over both, so that a machine that got busier or quieter
    meanwhile errs neither way."""
    report.raw_texts = texts
    report.raw_cpu_ms = round(cpu * 1000.0 / (2 * texts), 2)
    report.raw_before = texts / before
    report.raw_after = texts / after
    report.raw_throughput = 2 * texts / (before + after)
    report.raw_best_throughput = None if best is None else texts / best
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


def render(report: Report, args: argparse.Namespace) -> str:
    def num(value: float | None, unit: str = "", digits: int = 1) -> str:
        return "-" if value is None else f"{value:,.{digits}f}{unit}"

    pace = "as fast as possible" if args.rate <= 0 else f"at {args.rate:g} msg/s"
    lat, lag, inf = report.latency_ms, report.loop_lag_ms, report.inference
    send_rate = report.sent / report.send_seconds if report.send_seconds else None
    cpu = report.cpu_seconds
    busy = sum(cpu.values())
    answered = report.reactions + report.silent
    per_message = busy * 1000 / answered if answered and cpu else None
    cores = f"{busy / report.cpu_wall_seconds:.2f} cores" if report.cpu_wall_seconds else "-"
    lines = [
        f"Load test: {report.messages:,} messages from {args.members} members in each of "
        f"{args.guilds} guilds x {args.channels} channels, sent {pace}",
        f"  bot: max_batch {report.max_batch}, max_wait {report.max_wait_ms:g} ms, max_queue "
        f"{report.max_queue}, prepare ahead {'on' if args.prepare_ahead else 'off'}; "
        f"model {report.model_version} ({report.precision}), torch threads "
        f"{report.torch_threads}",
        f"  machine: {report.machine}",
        "  neutral band off: every guild's band is (0.5, 0.5), so every message that is not "
        "shed gets a reaction (a three-way model: every one it does not read as neutral)",
        f"  texts: {report.texts_source}",
        *(["  gc.freeze() after start-up (--gc-freeze)"] if args.gc_freeze else []),
        "",
        f"  {'messages sent':<28}{report.sent:>10,}   ({num(send_rate, ' msg/s', 0)} offered)",
        f"  {'predictions logged':<28}{report.rows:>10,}",
        f"  {'reactions seen':<28}{report.reactions:>10,}",
        f"  {'read as neutral (silent)':<28}{report.silent:>10,}",
        f"  {'shed (queue full)':<28}{report.shed:>10,}",
        f"  {'throughput':<28}{num(report.throughput, ' msg/s'):>10}   "
        f"(messages reacted to or read as neutral, first send to last reaction: "
        f"{report.burst_seconds:.1f} s)",
        f"  {'raw classifier':<28}{num(report.raw_throughput, ' texts/s'):>10}   "
        f"(predict_batch, batches of {report.max_batch}, same {report.raw_texts:,} texts; "
        f"{num(report.raw_before, '', 1)} before the burst, {num(report.raw_after, '', 1)} "
        "after)",
        f"  {'bot / raw':<28}{num(report.ratio, 'x', 2):>10}",
        f"  {'raw, best batching':<28}{num(report.raw_best_throughput, ' texts/s'):>10}   "
        "(one predict_batch call: length-sorted encoder batches)",
        f"  {'latency p50 / p95 / p99':<28}{num(lat.get('p50'))} / {num(lat.get('p95'))} / "
        f"{num(lat.get('p99'))} ms   (message sent to reaction received)",
        f"  {'event-loop lag p99':<28}{num(lag.get('p99'))} ms   (p50 {num(lag.get('p50'))}, "
        f"max {num(lag.get('max'))}; the bot's own loop)",
        f"  {'peak RSS':<28}{num(report.peak_rss_mib, ' MiB', 0):>10}   "
        "(the bot's process, model loaded, through the burst)",
        f"  {'bot CPU during the burst':<28}{busy:>8,.1f} s   ({cores} of "
        f"{report.cpu_wall_seconds:.1f} s: "
        + ", ".join(f"{kind} {seconds:,.1f}" for kind, seconds in cpu.items())
        + ")",
        f"  {'CPU per message':<28}{num(per_message, ' ms', 2):>10}   (bot: "
        + ", ".join(f"{kind} {s * 1000 / answered:.2f}" for kind, s in cpu.items() if s)
        + f"; raw classifier {num(report.raw_cpu_ms, ' ms', 2)} a text)",
        f"  {'fake Discord + load CPU':<28}{report.harness_cpu_seconds:>8,.1f} s   "
        "(the load test's own process, meanwhile: the same cores)",
        f"  {'model calls':<28}{inf.get('batches', 0):>10,}   (mean batch "
        f"{inf.get('mean_batch_size', 0):.1f}, max {inf.get('max_batch_seen', 0)})",
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


def main(
    argv: Sequence[str] | None = None, *, classifier: SentimentClassifier | None = None
) -> int:
    """Run the load test; ``classifier`` may be passed in (tests share one)."""
    args = parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING))
    texts, source = load_texts(args.data_dir)
    report = Report(
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
    report.machine = machine().describe()
    plan = make_plan(args, texts)
    raw_n = args.messages if args.raw_messages is None else args.raw_messages
    raw_texts = [text for _, _, text in plan[:raw_n]]
    before = cpu_before = 0.0
    if raw_texts:  # timed before and after the burst, never beside the bot's process
        if classifier is None:
            classifier = SentimentClassifier.load(args.artifact, threads=args.threads)
        classifier.predict_batch([text for _, _, text in plan[: args.max_batch]])  # warm up
        before, cpu_before, _ = time_raw(classifier, raw_texts, args.max_batch)
    asyncio.run(run_bot_burst(args, plan, report))
    if raw_texts and classifier is not None:
        after, cpu_after, best = time_raw(classifier, raw_texts, args.max_batch, one_call=True)
        take_raw(report, len(raw_texts), before, after, best, cpu_before + cpu_after)
    print(render(report, args))
    if args.json is not None:
        args.json.write_text(
            json.dumps({**asdict(report), "ok": report.ok}, indent=2) + "\n", encoding="utf-8"
        )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
