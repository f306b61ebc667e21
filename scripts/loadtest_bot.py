#!/usr/bin/env python3
"""Load test with the bot in a process of its own: the bot's own memory, event loop and CPU.

The same burst as scripts/loadtest.py (same flags, world, plan, invariants; ``--db`` for SQLite
or PostgreSQL), but the real bot runs in a process of its own (scripts/bot_process.py: loaded
as ``sentiment-bot`` loads it, on the serving path that SENTIMENT_PRECISION or the artifact's
``auto`` resolves; ``--precision`` forces one), while this process serves the fake Discord and
sends the messages. So the figures are the bot's alone:

* its peak RSS (``VmHWM`` of the bot's process: model loaded, through the burst) and the same
  once it was ready, before the burst;
* its event-loop lag (the bot's loop only, not shared with the fake);
* the CPU seconds of each of its threads during the burst (event loop, model thread, prepare
  thread, the model's worker threads, SQLite) and per message answered.

The bare classifier, loaded the same way in this process, is timed on the same texts in the
bot's batches before the burst and again after it (never beside it); raw is over both, so a
machine that got busier or quieter meanwhile errs neither way. Throughput counts the messages
answered (reacted to, or read as neutral: each one classified and stored, as the raw timing
counts every text), first send to last reaction; bot / raw is the share of the bare
classifier's speed the bot keeps while it also reads the gateway, stores and reacts. The fake
Discord and the load generator still share the machine's cores with the bot.

    .venv/bin/python scripts/loadtest_bot.py --messages 10000
    .venv/bin/python scripts/loadtest_bot.py --messages 2000 --db postgresql --precision fp32
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # loadtest, bot_process: beside this
import loadtest
from bot_process import READY_TIMEOUT_S, BotProcess

from bot.app import load_classifier
from bot.config import Settings
from bot.monitor import LagStats
from bot.storage.dsn import Dsn
from fakediscord import FakeDiscord
from fakediscord.protocol import DEFAULT_TOKEN
from model.serving.machine import machine
from model.serving.spec import PRECISION_CHOICES
from model.settings import PRECISION_WORDS, ClassifierSettings, SettingsError

NOTES = {
    "throughput": "messages reacted to or read as neutral",
    "lag": "the bot's own loop",
    "rss": "VmHWM of the bot's process: model loaded, through the burst",
}


@dataclass
class ProcessReport(loadtest.Report):
    """:class:`loadtest.Report` and the figures of the bot's own process."""

    machine: str = ""
    precision: str = ""  # the serving path the bot's classifier resolved
    precision_asked: str = ""  # --precision, else SENTIMENT_PRECISION, else auto
    raw_precision: str = ""  # the path of this process's bare classifier (the same)
    prepare_ahead: bool = True
    ready_rss_mib: float = 0.0  # VmHWM of the bot's process once ready, before the burst
    # CPU seconds of the bot's threads during the burst, by kind (bot_process.py)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    cpu_wall_seconds: float = 0.0
    cpu_ms_per_message: float | None = None
    harness_cpu_seconds: float = 0.0  # this process (fake Discord, load generator) meanwhile
    raw_before: float | None = None  # texts/s of the bare classifier before the burst
    raw_after: float | None = None  # and after it (raw_throughput is over both)
    raw_cpu_ms: float | None = None  # CPU milliseconds per text of the raw timings


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Settings()
    parser = loadtest.make_parser("loadtest_bot", (__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--prepare-ahead",
        action=argparse.BooleanOptionalAction,
        default=defaults.prepare_ahead,
        help="bot's SENTIMENT_PREPARE_AHEAD (default: on)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default=None,
        help=f"serving path: {PRECISION_WORDS} [SENTIMENT_PRECISION, else auto]",
    )
    args = loadtest.parse_args(argv, parser)
    flags = {"artifact": args.artifact, "torch_threads": args.threads, "precision": args.precision}
    try:
        args.classifier = ClassifierSettings.from_env(flags=flags)
    except SettingsError as exc:
        parser.error(str(exc))
    return args


def bot_config(
    args: argparse.Namespace, fake: FakeDiscord, db: Path | Dsn, plan: list[tuple[int, int, str]]
) -> dict[str, Any]:
    """What scripts/bot_process.py runs with: the bot's settings, the fake's addresses."""
    return {
        "api_base": fake.api_base_url,
        "gateway": fake.gateway_url,
        "token": fake.token or DEFAULT_TOKEN,
        "settings": {
            **args.classifier.model_dump(mode="json"),
            "database": db.reveal() if isinstance(db, Dsn) else str(db),
            "max_batch": args.max_batch,
            "max_wait_ms": args.max_wait_ms,
            "max_queue": args.max_queue,
            "prepare_ahead": args.prepare_ahead,
        },
        "gc_freeze": args.gc_freeze,
        "log_level": args.log_level,
        "warmup": [text for _, _, text in plan[: args.max_batch]],
    }


async def run_bot_burst(
    args: argparse.Namespace, plan: list[tuple[int, int, str]], report: ProcessReport
) -> None:
    async with loadtest.world(args, report) as (fake, db, folder):
        bot = await BotProcess.start(bot_config(args, fake, db, plan), folder)
        try:
            if await bot.wait(lambda: bot.ready is not None, READY_TIMEOUT_S + 60.0):
                assert bot.ready is not None
                report.model_version = bot.ready["model_version"]
                report.precision = bot.ready["precision"]
                report.torch_threads = bot.ready["torch_threads"]
                report.ready_rss_mib = bot.ready["ready_rss_mib"]
                sent_at: dict[int, float] = {}
                cpu = _process_cpu_seconds()
                bot.send("reset")  # lag and CPU during the burst only, not start-up
                await loadtest.send_plan(fake, plan, sent_at, args, report)
                await loadtest.settle(
                    fake,
                    len(plan),
                    args,
                    report,
                    shed=lambda: int(bot.progress["shed"]),
                    silent=lambda: int(bot.progress["silent"]),
                    gone=lambda: bot.gone,
                )
                report.harness_cpu_seconds = round(_process_cpu_seconds() - cpu, 2)
                if (final := await bot.stop()) is not None:
                    _take_final(final, report)
                loadtest.check(fake, db, sent_at, report)  # the bot's writer has flushed
                if report.burst_seconds:
                    answered = report.reactions + report.silent
                    report.throughput = answered / report.burst_seconds
            else:
                report.problems.append(bot.problem or "the bot was not ready in time")
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


def _take_final(final: dict[str, Any], report: ProcessReport) -> None:
    report.loop_lag_ms = loadtest.lag_ms(LagStats(**final["loop_lag_s"]))
    report.inference = final["inference"]
    report.shed = final["shed"]
    report.peak_rss_mib = final["peak_rss_mib"]
    report.cpu_seconds = final["cpu_seconds"]
    report.cpu_wall_seconds = final["cpu_wall_seconds"]
    report.problems += final["problems"]


def take_raw(
    report: ProcessReport, texts: int, before: loadtest.RawTiming, after: loadtest.RawTiming
) -> None:
    """The raw figures from the timings before and after the burst: the rate is over both."""
    loadtest.take_raw(report, 2 * texts, before.seconds + after.seconds, None)
    report.raw_texts = texts
    if after.one_call_seconds is not None:
        report.raw_best_throughput = texts / after.one_call_seconds
    report.raw_before = texts / before.seconds
    report.raw_after = texts / after.seconds
    report.raw_cpu_ms = round((before.cpu_seconds + after.cpu_seconds) * 1000.0 / (2 * texts), 2)


def render(report: ProcessReport, args: argparse.Namespace) -> str:
    num = loadtest.num
    cpu = report.cpu_seconds
    busy = sum(cpu.values())
    answered = report.reactions + report.silent
    if answered and cpu:
        report.cpu_ms_per_message = round(busy * 1000 / answered, 2)
    cores = f"{busy / report.cpu_wall_seconds:.2f} cores" if report.cpu_wall_seconds else "-"
    about = [
        f"  serving path: {report.precision or '-'} (asked: {report.precision_asked}), "
        f"prepare ahead {'on' if report.prepare_ahead else 'off'}; bare classifier "
        f"here: {report.raw_precision or 'not timed'}",
        f"  machine: {report.machine}",
    ]
    raw_note = (
        f"; {num(report.raw_before)} before the burst, {num(report.raw_after)} after"
        if report.raw_before is not None
        else ""
    )
    more = [
        f"  {'peak RSS once ready':<28}{num(report.ready_rss_mib, ' MiB', 0):>10}   "
        "(VmHWM of the bot's process before the burst: model loaded and warm)",
        f"  {'bot CPU during the burst':<28}{busy:>8,.1f} s   ({cores} of "
        f"{report.cpu_wall_seconds:.1f} s: "
        + ", ".join(f"{kind} {seconds:,.1f}" for kind, seconds in cpu.items())
        + ")",
        f"  {'CPU per message':<28}{num(report.cpu_ms_per_message, ' ms', 2):>10}   (bot: "
        + ", ".join(f"{kind} {s * 1000 / answered:.2f}" for kind, s in cpu.items() if s)
        + f"; bare classifier {num(report.raw_cpu_ms, ' ms', 2)} a text)",
        f"  {'fake Discord + load CPU':<28}{report.harness_cpu_seconds:>8,.1f} s   "
        "(this process, meanwhile: the same cores)",
    ]
    return loadtest.render(report, args, notes=NOTES, about=about, raw_note=raw_note, more=more)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report, plan = loadtest.start(args, ProcessReport)
    report.machine = machine().describe()
    report.prepare_ahead = args.prepare_ahead
    report.precision_asked = args.classifier.precision or "auto"
    raw_texts = loadtest.raw_texts_of(args, plan)
    classifier, before = None, None
    if raw_texts:  # timed before and after the burst, never beside the bot's process
        classifier = load_classifier(args.classifier)
        report.raw_precision = classifier.encoder.spec.precision
        classifier.predict_batch([text for _, _, text in plan[: args.max_batch]])  # warm up
        before = loadtest.time_raw(classifier, raw_texts, args.max_batch)
    asyncio.run(run_bot_burst(args, plan, report))
    if classifier is not None and before is not None:
        after = loadtest.time_raw(classifier, raw_texts, args.max_batch, one_call=True)
        take_raw(report, len(raw_texts), before, after)
    if report.raw_precision and report.precision and report.raw_precision != report.precision:
        report.problems.append(
            f"the bot served {report.precision} but the bare classifier ran {report.raw_precision}"
            ": bot / raw compares two paths"
        )
    return loadtest.finish(report, render(report, args), args)


if __name__ == "__main__":
    sys.exit(main())
