"""``sentiment db``: the operator's database jobs. ``sentiment db migrate --from FILE --to
postgresql://...`` copies the bot's SQLite file into PostgreSQL (:mod:`bot.storage.transfer`
does the copy; this module reads the arguments, shows the progress and prints the check).

Safe while the bot runs on the file: the file is opened read-only and read in one read
transaction, so the bot is neither blocked nor changed; but the copy is the file as it was when
the run started. For the switch: stop the bot, run the migration (again: it goes on from where
it stopped), point SENTIMENT_DB at the PostgreSQL address, start the bot. Never start the bot on
the target before the migration has finished: its new rows would make the target refuse to be
continued.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bot.storage import StorageError
from bot.storage.dsn import Dsn, is_dsn
from bot.storage.transfer import BATCH_ROWS, TableResult, copy_to_postgres

_FORM = "postgresql://user:password@host:5432/dbname"


def main(argv: Sequence[str] | None = None, prog: str = "sentiment db") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="The bot's database, for operators.")
    jobs = parser.add_subparsers(dest="job", metavar="{migrate}")
    move = jobs.add_parser(
        "migrate",
        help="copy the SQLite database into PostgreSQL (resumable, verified)",
        description="Copy every row and setting of the bot's SQLite file into a PostgreSQL "
        "database (empty, or partly copied by an earlier run: it goes on from there), then "
        "compare row counts and a checksum of every table on both sides. The file is only "
        "read: safe while the bot runs, but rows it writes after the start are not copied, so "
        "stop the bot before the last run.",
    )
    move.add_argument(
        "--from", dest="source", required=True, metavar="FILE",
        help="the bot's SQLite file (SENTIMENT_DB, e.g. data/sentiment.db)",
    )  # fmt: skip
    move.add_argument(
        "--to", dest="target", required=True, metavar="ADDRESS",
        help=f"the PostgreSQL database, {_FORM} (created with createdb, empty)",
    )  # fmt: skip
    move.add_argument(
        "--batch-rows", type=int, default=BATCH_ROWS, metavar="N",
        help=f"rows per committed batch (default {BATCH_ROWS})",
    )  # fmt: skip
    move.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.job is None:
        parser.print_usage(sys.stderr)
        print(f"{prog}: error: name a job: {prog} migrate --help", file=sys.stderr)
        return 2
    return migrate(args.source, args.target, args.batch_rows, progress=not args.no_progress)


def _refusal(source: str, target: str, batch_rows: int) -> str | None:
    """The one-line reason not to start, or None."""
    if batch_rows < 1:
        return f"--batch-rows must be at least 1, got {batch_rows}"
    if is_dsn(source):
        return "--from is the bot's SQLite file (e.g. data/sentiment.db); --to is the address"
    if not is_dsn(target):
        return (
            f"--to must be a PostgreSQL address ({_FORM}), got {target!r}; copying into "
            "another SQLite file is a file copy (README: Backup and restore)"
        )
    if not Path(source).expanduser().is_file():
        return f"no file at {source}: --from names the bot's SQLite file (e.g. data/sentiment.db)"
    return None


def migrate(source: str, target: str, batch_rows: int, *, progress: bool = True) -> int:
    refusal = _refusal(source, target, batch_rows)
    if refusal is not None:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    try:
        dsn = Dsn(target)
    except ValueError as exc:
        print(f"error: --to is not a usable PostgreSQL address: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        results = asyncio.run(
            copy_to_postgres(
                Path(source).expanduser(),
                dsn,
                batch_rows=batch_rows,
                progress=_bars(enabled=progress),
            )
        )
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "stopped: the batches committed stay in the target; run the same command again to "
            "go on",
            file=sys.stderr,
        )
        return 130
    return _report(results, dsn, time.perf_counter() - started)


def _bars(*, enabled: bool) -> Callable[[str, int, int], contextlib.AbstractContextManager[Any]]:
    @contextlib.contextmanager
    def bar(table: str, total: int, done: int) -> Iterator[Callable[[int], None]]:
        from tqdm import tqdm

        with tqdm(
            total=total, initial=done, desc=f"{table:<16}", unit=" rows",
            file=sys.stderr, disable=not enabled, leave=True,
        ) as shown:  # fmt: skip
            yield shown.update

    return bar


def _report(results: list[TableResult], dsn: Dsn, seconds: float) -> int:
    print(f"{'table':<16} {'file rows':>10} {'target rows':>11} {'copied now':>10}  sha256")
    for r in results:
        mark = "equal" if r.equal else f"DIFFERS (target {r.target.sha256[:16]})"
        print(
            f"{r.name:<16} {r.source.rows:>10,} {r.target.rows:>11,} {r.copied:>10,}  "
            f"{r.source.sha256[:16]} {mark}"
        )
    rows = sum(r.source.rows for r in results)
    differ = [r.name for r in results if not r.equal]
    if differ:
        print(
            f"error: the copy in {dsn} differs from the file in {', '.join(differ)} (counts or "
            "checksums above); the file is unchanged: drop the target database, create it "
            "again and migrate anew",
            file=sys.stderr,
        )
        return 1
    print(
        f"verified: {len(results)} tables, {rows:,} rows, counts and checksums equal "
        f"({seconds:.1f} s); now set SENTIMENT_DB={dsn} and start the bot"
    )
    return 0
