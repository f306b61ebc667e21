"""Console commands: ``sentiment-bot`` (run the bot) and ``sentiment-history`` (operator CLI)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import re
import signal
import sqlite3
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import discord

from bot.config import Settings, describe_shards
from bot.endpoint import EndpointError
from bot.sharding import ShardTagFormatter, sharding_refusal
from bot.storage import (
    ANY_GUILD,
    CorrectionFilter,
    HistoryFilter,
    StorageError,
    read_correction_count,
    read_corrections,
    read_count,
    read_export,
    read_history,
    read_mood_counts,
    read_stats,
)
from bot.storage.dsn import Dsn, database_location
from model import ArtifactError, EncoderError
from model.settings import SettingsError

if TYPE_CHECKING:  # imported when run: it loads torch
    from bot.client import SentimentBot

log = logging.getLogger("bot")

NO_TOKEN = (
    "error: DISCORD_TOKEN is not set. Put the bot's token in .env (README: 'Creating the "
    "Discord application'), or try the bot now without one: sentiment-sandbox"
)


class DiscordUnreachableError(Exception):
    """Logging in failed before any answer from Discord (DNS, refused connection, TLS, 5xx)."""


# Errors of the connection itself. Once logged in, discord.py retries them (reconnect=True):
# one that ends ``start`` came from logging in or from the first command sync.
_NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, discord.DiscordServerError)
# On SIGINT / SIGTERM, how long the connection may take to end after close(); discord.py sleeps
# between reconnect attempts (up to minutes) and close() does not wake it: it is then cancelled.
CONNECTION_GRACE_S = 3.0


async def _login(bot: SentimentBot, token: str) -> None:
    """Log in (and run ``setup_hook``: the cogs, the command sync)."""
    try:
        await bot.login(token)
    except _NETWORK_ERRORS as exc:
        raise DiscordUnreachableError(_describe(exc)) from exc


def _describe(exc: BaseException) -> str:
    """The error on one short line (a proxy's error page can be long HTML)."""
    if isinstance(exc, discord.DiscordServerError):
        text = f"Discord answered {exc.status} {exc.text or ''}"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    flat = " ".join(text.split())
    return flat if len(flat) <= 200 else flat[:199] + "…"


async def run_bot(settings: Settings) -> None:
    """Run until the connection ends or SIGINT / SIGTERM asks for a graceful shutdown.

    The local parts first, cheapest check first (the database, then the model: bot/app.py),
    then log in, then stay connected. A signal during one of these steps stops it there.
    """
    from bot.app import create_bot  # loads torch: only when the bot runs

    stop = asyncio.Event()

    def on_signal() -> None:
        if not stop.is_set():
            log.info("signal received: shutting down")
            stop.set()

    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        loop.add_signal_handler(sig, on_signal)
    try:
        assembling = asyncio.create_task(create_bot(settings), name="assemble")
        if not await _unless_stopped(assembling, stop):
            return  # create_bot closed what it had opened
        async with assembling.result() as bot:  # its close() closes the parts
            login = asyncio.create_task(_login(bot, settings.token.reveal()), name="login")
            if not await _unless_stopped(login, stop):
                return
            login.result()  # LoginFailure, DiscordUnreachableError, a failed command sync
            runner = asyncio.create_task(bot.connect(), name="bot")
            await _unless_stopped(runner, stop, cancel=False)
            if stop.is_set():
                await bot.close()
                await asyncio.wait({runner}, timeout=CONNECTION_GRACE_S)
            if not runner.done():  # asleep before a reconnect attempt
                runner.cancel()
                await asyncio.wait({runner})
            if not runner.cancelled():
                runner.result()  # the connection's own error, if it ended with one
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            if handler is not None:
                signal.signal(sig, handler)  # what the host process had, not just the default


async def _unless_stopped(
    task: asyncio.Task[Any], stop: asyncio.Event, *, cancel: bool = True
) -> bool:
    """Wait until ``task`` ends or ``stop`` is set; then, with ``cancel``, cancel ``task`` if
    it is still running (and wait for it). True when the task ran to its end (with a result
    or an error): a step that completes just as a signal comes is not lost."""
    stopper = asyncio.create_task(stop.wait(), name="signals")
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if cancel:
            task.cancel()  # nothing if it ended; else a signal came, or run_bot was cancelled
    if cancel:
        await asyncio.wait({task})
    return task.done() and not task.cancelled()


def main(argv: Sequence[str] | None = None, prog: str = "sentiment-bot") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run Sentiment Bot. Settings come from the environment and .env "
        "(see .env.example).",
    )
    parser.parse_args(argv)
    try:
        settings = Settings.from_env(require_token=False)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not settings.token:
        print(NO_TOKEN, file=sys.stderr)
        return 2
    handler = logging.StreamHandler()
    discord.utils.setup_logging(
        handler=handler, level=getattr(logging, settings.log_level), root=True
    )
    if settings.shard_count is not None:  # several processes may log to one place
        tag = describe_shards(settings.shards, settings.shard_count)
        handler.setFormatter(ShardTagFormatter(handler.formatter or logging.Formatter(), tag))
    try:
        from bot.app import run_event_loop

        run_event_loop(run_bot(settings))
    except discord.LoginFailure:
        print(
            "error: Discord refused DISCORD_TOKEN. Reset the token on the Developer Portal's "
            "Bot page and put the new one in .env.",
            file=sys.stderr,
        )
        return 2
    except DiscordUnreachableError as exc:
        print(
            f"error: cannot reach Discord to log in ({exc}). Check the network connection and "
            "DNS, any proxy or firewall in the way (HTTPS to discord.com), the system clock and "
            "CA certificates for TLS errors, and that DISCORD_TOKEN is the bot's token.",
            file=sys.stderr,
        )
        return 2
    except discord.PrivilegedIntentsRequired:
        print(
            "error: the Message Content intent is not enabled for this bot. Switch it on in "
            "the Developer Portal: Bot > Privileged Gateway Intents.",
            file=sys.stderr,
        )
        return 2
    except (ArtifactError, EncoderError, StorageError, EndpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except discord.ConnectionClosed as exc:
        refusal = sharding_refusal(exc.code, settings)
        if refusal is None:
            raise
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    return 0


# --------------------------------------------------------------------------------------------
# Operator CLI


def history_main(argv: Sequence[str] | None = None, prog: str = "sentiment-history") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Print prediction history and mood statistics from the bot's database "
        "(read-only; safe while the bot runs).",
    )
    parser.add_argument(
        "--db",
        type=_database_arg,
        help="database file or postgresql:// address [SENTIMENT_DB, data/sentiment.db]",
    )
    parser.add_argument("--guild", type=int, help="only this guild id")
    parser.add_argument("--user", type=int, help="only this user id")
    parser.add_argument("--channel", type=int, help="only this channel id")
    parser.add_argument("--mood", choices=("positive", "negative", "neutral"))
    parser.add_argument("--days", type=int, help=f"only the last N days (1 to {MAX_DAYS})")
    parser.add_argument("--limit", type=int, default=20, help="rows to print (default 20)")
    parser.add_argument("--offset", type=int, default=0, help="rows to skip (paging)")
    parser.add_argument("--csv", action="store_true", help="CSV instead of a table")
    parser.add_argument("--stats", action="store_true", help="totals and mood shares only")
    parser.add_argument(
        "--export-user",
        type=int,
        metavar="USER_ID",
        help="a member's data-access request: print as JSON every row held about USER_ID in "
        "--guild (what /my-data sends them); redirect it to a file",
    )
    parser.add_argument(
        "--corrections",
        action="store_true",
        help='the corrections people made ("I meant ...", "Correct sentiment") instead of '
        "predictions, for review before sentiment-train --corrections; --guild and --user "
        "filter them",
    )
    parser.add_argument(
        "--export",
        type=Path,
        metavar="FILE",
        help="with --corrections: write every correction that kept its text to FILE (CSV, "
        "oldest first, text unchanged) for sentiment-train --corrections FILE",
    )
    args = parser.parse_args(argv)
    # Every mistake in the arguments, one line each, before the database is opened.
    mistakes = _argument_mistakes(args)
    if mistakes:
        for line in mistakes:
            print(f"error: {line}", file=sys.stderr)
        return 2
    try:
        db = args.db or Settings.from_env(require_token=False).database
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if isinstance(db, Path) and not db.is_file():
        print(
            f"error: no database at {db}. Pass --db or set SENTIMENT_DB to the bot's "
            "database file.",
            file=sys.stderr,
        )
        return 2
    flt = HistoryFilter(
        guild_id=args.guild if args.guild is not None else ANY_GUILD,
        user_id=args.user,
        channel_id=args.channel,
        mood=args.mood,
        since=datetime.now(UTC) - timedelta(days=args.days) if args.days else None,
    )
    try:
        if args.export_user is not None:
            summary = read_export(db, args.guild, args.export_user, sys.stdout.write)
            sys.stdout.flush()
            counts = ", ".join(f"{name} {n}" for name, n in summary.counts.items())
            print(
                f"exported user {args.export_user} in guild {args.guild}: {counts} "
                f"({summary.size_bytes} bytes)",
                file=sys.stderr,
            )
        elif args.corrections:
            fixes = CorrectionFilter(
                guild_id=args.guild if args.guild is not None else ANY_GUILD, user_id=args.user
            )
            if args.export is not None:
                written = export_corrections(db, fixes, args.export)
                print(
                    f"wrote {written} corrections with text to {args.export}; train on them "
                    f"with sentiment train --corrections {args.export}"
                )
            else:
                print_corrections(db, fixes, args.limit, args.offset, as_csv=args.csv)
        elif args.stats:
            _print_stats(db, flt, as_csv=args.csv)
        else:
            _print_history(db, flt, args.limit, args.offset, as_csv=args.csv)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:
        if _errorname(exc) not in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
            raise  # not damage: a bug, with its traceback
        # damage found mid-query, past the checks made when the file is opened
        print(
            f"error: cannot read {db} ({exc}): the file is damaged. Restore a backup "
            "(README: Backup and restore) or pass --db with another file.",
            file=sys.stderr,
        )
        return 2
    return 0


def _database_arg(value: str) -> Path | Dsn:
    """--db: a file path, or a PostgreSQL address (checked; the password never shown)."""
    try:
        return database_location(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a usable PostgreSQL address: {exc}") from None


def _errorname(exc: sqlite3.Error) -> str:
    """SQLite's primary result code name (``SQLITE_CORRUPT`` for ``SQLITE_CORRUPT_INDEX``)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return "_".join(name.split("_")[:2])


MAX_ID = 2**63 - 1  # Discord snowflakes and SQLite integers are signed 64-bit
MAX_DAYS = 36500  # a hundred years: as far back as a date can sensibly go
MAX_ROWS = 2**63 - 1  # SQLite's largest LIMIT / OFFSET


def _argument_mistakes(args: argparse.Namespace) -> list[str]:
    """One line for each argument out of its range (value, range and fix), in flag order."""
    mistakes = []
    for flag in ("guild", "user", "channel"):
        value = getattr(args, flag)
        if value is not None and not 0 <= value <= MAX_ID:
            mistakes.append(
                f"--{flag} {value} is not a Discord id: give a whole number from 0 to {MAX_ID} "
                "(Discord: right-click > Copy ID, with Developer Mode on)."
            )
    if args.export_user is not None:
        if not 0 <= args.export_user <= MAX_ID:
            mistakes.append(
                f"--export-user {args.export_user} is not a Discord id: give the member's user "
                f"id, a whole number from 0 to {MAX_ID}."
            )
        if args.guild is None:
            mistakes.append(
                "--export-user needs --guild GUILD_ID: the server whose data the member asks "
                "for (/my-data gives a member their data in one server)."
            )
        others = [
            f"--{flag.replace('_', '-')}"
            for flag in ("user", "channel", "mood", "days", "csv", "stats", "corrections", "export")
            if getattr(args, flag) not in (None, False)
        ]
        if others:
            mistakes.append(
                f"--export-user exports every row of the member: leave out {', '.join(others)}."
            )
    if args.days is not None and not 1 <= args.days <= MAX_DAYS:
        mistakes.append(
            f"--days {args.days} is out of range: give 1 to {MAX_DAYS}, or leave it out for "
            "all time."
        )
    if not 1 <= args.limit <= MAX_ROWS:
        mistakes.append(f"--limit {args.limit} is out of range: give 1 to {MAX_ROWS}.")
    if not 0 <= args.offset <= MAX_ROWS:
        mistakes.append(f"--offset {args.offset} is out of range: give 0 to {MAX_ROWS}.")
    if args.export is not None and not args.corrections:
        mistakes.append("--export only applies with --corrections: --corrections --export FILE.")
    if args.corrections:
        for flag in ("channel", "mood", "days", "stats"):
            if getattr(args, flag) not in (None, False):
                mistakes.append(
                    f"--{flag} and --corrections do not go together: corrections are filtered "
                    "by --guild and --user only."
                )
    return mistakes


COLUMNS = (
    "id",
    "time_utc",
    "guild",
    "channel",
    "message",
    "user",
    "source",
    "mood",
    "p_positive",
    "model",
    "text",
    # schema 3 (appended, so that the columns before keep their places): a three-way model's
    # P(negative) and P(neutral) (P(positive) of the three is what they leave; empty for a
    # binary model), and why the model did not read the text (empty when it did)
    "p_negative",
    "p_neutral",
    "unread",
)
TABLE_COLUMNS = (*COLUMNS[:9], "p_negative", "p_neutral", "model", "text")
NOT_READ = "not read"  # the table's mood of a text the model did not read


def _probability(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _print_history(
    db: Path | Dsn, flt: HistoryFilter, limit: int, offset: int, *, as_csv: bool
) -> None:
    rows = read_history(db, flt, limit=limit, offset=offset)
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(COLUMNS)
        # Stored text goes out unchanged, except that a cell a spreadsheet would run as a
        # formula is made plain text; on a terminal (no redirect) control characters are
        # shown instead of obeyed, as in the table.
        visible = sys.stdout.isatty()
        writer.writerows(
            [
                _csv_cell(_visible(cell) if visible else cell)
                for cell in (
                    str(r.id),
                    r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    str(r.guild_id or "DM"),
                    str(r.channel_id or ""),
                    str(r.message_id or ""),
                    str(r.user_id),
                    r.source,
                    r.mood if r.read else "unread",
                    f"{r.p_positive:.3f}",
                    r.model_version,
                    r.text or "",
                    _probability(r.p_negative),
                    _probability(r.p_neutral),
                    r.unread or "",
                )
            ]
            for r in rows
        )
        return
    table = [
        (
            str(r.id),
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            str(r.guild_id or "DM"),
            str(r.channel_id or ""),
            str(r.message_id or ""),
            str(r.user_id),
            _visible(r.source),
            r.mood if r.read else f"{NOT_READ} ({_visible(r.unread or '')})",
            f"{r.p_positive:.3f}",
            _probability(r.p_negative),
            _probability(r.p_neutral),
            _visible(r.model_version),
            _clip(r.text or "", 40),
        )
        for r in rows
    ]
    total = read_count(db, flt)
    widths = [max([len(c)] + [len(r[i]) for r in table]) for i, c in enumerate(TABLE_COLUMNS)]
    print("  ".join(c.ljust(w) for c, w in zip(TABLE_COLUMNS, widths, strict=True)))
    for row in table:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    print(f"({len(rows)} of {total} matching predictions, from row {offset + 1})")


def _print_stats(db: Path | Dsn, flt: HistoryFilter, *, as_csv: bool) -> None:
    """Mood counts and shares. A text the model did not read has no mood: shares are of the
    texts read, and those not read are counted apart (their share: of all matching)."""
    counts = read_mood_counts(db, flt)
    unread = counts.pop("unread", 0)
    read = sum(counts.values())
    total = read + unread
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(("mood", "count", "share"))
        for mood, n in counts.items():
            writer.writerow((mood, n, f"{n / read:.4f}" if read else "0"))
        writer.writerow(("unread", unread, f"{unread / total:.4f}" if total else "0"))
        return
    stats = read_stats(db)
    print(
        f"database {stats.path}: schema {stats.schema_version}, {stats.rows} predictions, "
        f"{stats.size_bytes / 1024:.0f} KiB"
    )
    if stats.oldest and stats.newest:
        print(
            f"from {stats.oldest:%Y-%m-%d %H:%M} to {stats.newest:%Y-%m-%d %H:%M} UTC; by "
            "source: " + ", ".join(f"{k} {v}" for k, v in stats.rows_by_source.items())
        )
    print(f"matching the filter: {total}" + (f" ({unread} {NOT_READ})" if unread else ""))
    for mood, n in counts.items():
        share = n / read if read else 0.0
        print(f"  {mood:<8} {n:>8}  {share:6.1%}  {'█' * round(share * 40)}")
    if unread:
        print(f"  {NOT_READ:<8} {unread:>8}  (no mood: no words the model knows, or not English)")


CORRECTION_COLUMNS = (
    "id",
    "time_utc",
    "guild",
    "channel",
    "message",
    "user",
    "author",
    "corrected",
    "mood",
    "model_mood",
    "model",
    "text",
)
CORRECTED = {"auto": "reaction", "command": "/sentiment", "context_menu": "menu"}


def print_corrections(
    db: Path | Dsn, flt: CorrectionFilter, limit: int, offset: int, *, as_csv: bool
) -> None:
    """The corrections, newest first: who corrected what, the mood meant and the model's."""
    rows = [
        (
            str(r.id),
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            str(r.guild_id or "DM"),
            str(r.channel_id or ""),
            str(r.message_id or ""),
            str(r.user_id),
            str(r.author_id or ""),
            CORRECTED[r.source],
            r.mood,
            r.model_mood,
            r.model_version,
            r.text or "",
        )
        for r in read_corrections(db, flt, limit=limit, offset=offset)
    ]
    if as_csv:
        visible = sys.stdout.isatty()
        writer = csv.writer(sys.stdout)
        writer.writerow(CORRECTION_COLUMNS)
        writer.writerows([_csv_cell(_visible(c) if visible else c) for c in row] for row in rows)
        return
    table = [(*row[:10], _visible(row[10]), _clip(row[11], 40)) for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in table]) for i, c in enumerate(CORRECTION_COLUMNS)]
    print("  ".join(c.ljust(w) for c, w in zip(CORRECTION_COLUMNS, widths, strict=True)))
    for line in table:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)))
    total = read_correction_count(db, flt)
    print(f"({len(rows)} of {total} corrections, from row {offset + 1})")


def export_corrections(db: Path | Dsn, flt: CorrectionFilter, path: Path) -> int:
    """Every correction matching ``flt`` that kept its text, oldest first, as CSV for
    ``sentiment train --corrections``: the text goes out unchanged (no spreadsheet guard: it is
    training data), with the mood meant and the model's. How many were written."""
    rows = read_corrections(db, replace(flt, with_text=True), limit=MAX_ROWS)
    rows.reverse()  # oldest first: the trainer keeps the latest correction of each text
    try:
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(("text", "mood", "model_mood", "model_version", "time_utc"))
            writer.writerows(
                (r.text, r.mood, r.model_mood, r.model_version, f"{r.created_at:%Y-%m-%d %H:%M:%S}")
                for r in rows
            )
    except OSError as exc:
        raise StorageError(
            f"cannot write --export {path} ({exc.strerror}); pick another file"
        ) from None
    return len(rows)


def _clip(text: str, width: int) -> str:
    """The text on one line (runs of spaces, tabs and newlines made one space), its control
    characters visible, cut to ``width`` characters."""
    flat = _visible(_BLANKS.sub(" ", text).strip(" "))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


_BLANKS = re.compile("[ \t\n]+")
# Characters a terminal obeys instead of showing, or that reorder what follows: C0 and C1
# controls (ESC starts colour, cursor, clear-screen and OSC title sequences; CR and backspace
# overwrite), DEL, line / paragraph separators, and the bidirectional embeddings, overrides and
# isolates (text that reads differently from how it is stored).
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _unsafe(char: str) -> bool:
    return char in _BIDI or unicodedata.category(char) in ("Cc", "Zl", "Zp")


def _visible(text: str) -> str:
    """``text`` with every control character written out (ESC as ``\\x1b``, U+202E as
    ``\\u202e``), so that printing it shows the characters instead of obeying them."""
    if not any(_unsafe(c) for c in text):
        return text
    return "".join(
        (f"\\x{ord(c):02x}" if ord(c) <= 0xFF else f"\\u{ord(c):04x}") if _unsafe(c) else c
        for c in text
    )


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...),
# +cmd|..., -2+3, @SUM(...)); tab and CR can hide the sign in front of one (OWASP CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: str) -> str:
    """``value`` for a CSV cell: a leading single quote where a spreadsheet would see a formula,
    otherwise unchanged."""
    return "'" + value if value.startswith(_FORMULA_START) else value
