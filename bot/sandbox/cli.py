"""``sentiment-sandbox``: try the real bot without a Discord token.

Starts the fake Discord (:class:`FakeDiscord`) on 127.0.0.1 with a small server
("Sandbox": #general with automatic reactions on, #random off; members *you* the owner,
*alice*, and *mod* with Manage Messages), runs the real :class:`~bot.client.SentimentBot`
against it, and reads lines from stdin (a terminal or a pipe):

* a plain line is a message from the current user in the current channel; the console prints
  the bot's reaction, or why there is none;
* ``/name [subcommand] [option=value ...] [words]`` runs a slash command as the current user
  and prints the reply; attached files (the /mood chart) are saved to a folder;
* ``:analyze N``, ``:delete N``, ``:click LABEL``, ``:as USER``, ``:in CHANNEL``, ``:help``,
  ``:quit`` (see :data:`~bot.sandbox.parsing.HELP`).

This module is the command itself: its arguments, the start-up (database, logs, the fake, the
bot) and the loop that feeds stdin's lines to the session. The parts: :mod:`.world` (the
server), :mod:`.parsing` (the console's language), :mod:`.display` (what it prints),
:mod:`.session` (running a line against the bot), :mod:`.reader` (stdin), :mod:`.logs`,
:mod:`.database` (the sandbox's own database and ``--fresh``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import Secret, Settings
from bot.sandbox.database import create_sandbox_database, remove_database
from bot.sandbox.display import echo, plain
from bot.sandbox.logs import setup_logging
from bot.sandbox.reader import LineReader
from bot.sandbox.world import GENERAL_ID, GUILD_ID, UsageError, build_world
from bot.storage import StorageError
from fakediscord import (
    DEFAULT_TOKEN,
    ClientDiedError,
    ErrorLogCollector,
    FakeDiscord,
    running_client,
)

DEFAULT_DB = Path("data/sandbox.db")
DEFAULT_OUT = Path("data/sandbox-out")
DEFAULT_LOG = Path("data/sandbox.log")

READY_TIMEOUT_S = 120.0  # login includes loading the model
ALERT_CHECK_S = 5.0  # mood alerts: a message in a watched channel also brings a check forward

BANNER = """\
Sentiment Bot sandbox: the real bot, connected to a fake Discord on 127.0.0.1 (no token needed).
Server "Sandbox": #general (automatic reactions on), #random (off).
Members: you (the owner), alice, mod (Manage Messages). You speak as "you" in #general.

  Type a message and see the bot's reaction. Slash commands work as on Discord:
    /sentiment I love it              /sentiment private this is awful
    /history   /history alice negative days=7   /channel-history #random
    /mood 7    /forget-me   /opt-in   /sentiment-admin reactions #random on
    /sentiment-admin alerts channel #random   /sentiment-admin alerts watch #general 50 minimum=3
  :analyze N  the "Analyze sentiment" menu on message #N    :delete N  delete message #N
  :as alice   speak as alice (or mod, you)                  :in random  switch channel
  :help       all commands and options                      :quit       exit (or Ctrl-D)"""


async def run(args: argparse.Namespace, errors: ErrorLogCollector) -> int:
    # These import torch: slow, so only once we run.
    from bot.app import create_bot
    from bot.sandbox.session import Sandbox, switch_on_reactions
    from model import ArtifactError, EncoderError

    if not args.db.exists():  # ours: marked, so that a later --fresh may delete it
        try:
            await create_sandbox_database(args.db)
        except (StorageError, OSError) as exc:
            echo(f"error: {exc}")
            return 2
    settings = Settings(
        token=Secret(DEFAULT_TOKEN),
        artifact=args.artifact,
        database=args.db,
        dev_guild_id=GUILD_ID,
        alert_check_s=ALERT_CHECK_S,
    )
    log_hint = "the log on stderr" if args.verbose else str(args.log)
    echo(f"Loading the model; the bot's log goes to {log_hint} ...")
    async with FakeDiscord(bot_name="Sentiment Bot") as fake:
        world = build_world(fake)
        try:
            bot = await create_bot(settings, guild_ready_timeout=0.1)
        except (ArtifactError, EncoderError, StorageError) as exc:
            echo(f"error: {exc}")
            return 2
        try:
            async with running_client(bot, fake, strict=False, timeout=READY_TIMEOUT_S) as running:
                note = await switch_on_reactions(fake, GENERAL_ID)
                echo(BANNER, "", f"({plain(note, world)})", "")
                sandbox = Sandbox(
                    running, world, out_dir=args.out, log_hint=log_hint, errors=errors
                )
                reader = LineReader(interactive=sys.stdin.isatty())
                while (line := await reader.readline(sandbox.prompt)) is not None:
                    if not await sandbox.handle(line):
                        break
                echo("Closing the bot (it flushes its database) ...")
        except ClientDiedError as exc:
            echo(f"error: the bot stopped: {exc.__cause__ or exc!r}. See {log_hint}")
            return 1
        except TimeoutError as exc:
            echo(f"error: the bot did not get ready: {str(exc).splitlines()[0]}. See {log_hint}")
            return 1
    echo("Bye.")
    return 0


def parse_args(argv: Sequence[str] | None, prog: str = "sentiment-sandbox") -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Try Sentiment Bot without a Discord token: the real bot against a fake "
        "Discord on 127.0.0.1, driven from this console (or a pipe). Type :help inside.",
    )
    parser.add_argument(
        "--db", type=Path, default=DEFAULT_DB, help=f"sandbox database (default {DEFAULT_DB})"
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="delete the sandbox database first (only a file the sandbox created, never the "
        "bot's database)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"where charts are saved ({DEFAULT_OUT})"
    )
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG, help=f"log file ({DEFAULT_LOG})")
    parser.add_argument("--verbose", action="store_true", help="logs to stderr instead of --log")
    parser.add_argument(
        "--artifact", type=Path, help="classifier artifact (default: the committed default)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, prog: str = "sentiment-sandbox") -> int:
    args = parse_args(argv, prog)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")  # emoji on a console that cannot show them
    if args.fresh:
        try:
            remove_database(args.db)
        except (UsageError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if sys.stdin.isatty():
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401 (line editing and history for input())
    echo(f"Starting the bot against a fake Discord (database {args.db}) ...")
    try:
        errors = setup_logging(args.log, verbose=args.verbose)
        return asyncio.run(run(args, errors))
    except KeyboardInterrupt:  # asyncio.run has cancelled the session: the bot is closed
        echo("", "Interrupted.")
        return 0


if __name__ == "__main__":
    sys.exit(main())
