"""``sentiment``: one command with a subcommand for each job.

``sentiment bot`` runs the bot, ``train`` and ``evaluate`` build and measure the classifier,
``history`` reads the database as the operator, ``db migrate`` copies it into PostgreSQL,
``sandbox`` tries the bot against the fake Discord. Each subcommand is the existing entry
point (its flags, its settings, its one-line errors), imported only when it runs.
``sentiment train --corrections`` also takes the bot's database: the corrections that kept
their text are exported to a temporary CSV (through the bot's read-only path) for the model
side, which reads no database. The old names (``sentiment-bot``, ``sentiment-train``, ...)
stay as aliases for this release.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol


class _EntryPoint(Protocol):
    def __call__(self, argv: Sequence[str] | None = ..., prog: str = ...) -> int: ...


# name -> (what it does, module, function)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "bot": ("run the bot (settings from the environment and .env)", "bot.cli", "main"),
    "train": ("train the classifier and write its artifact", "model.cli.train", "train_main"),
    "evaluate": (
        "measure an artifact on SST-2, the chat set or chat dev",
        "model.cli.evaluate",
        "evaluate_main",
    ),
    "history": (
        "read predictions and statistics from the database (read-only)",
        "bot.cli",
        "history_main",
    ),
    "sandbox": ("try the real bot against a fake Discord, no token needed", "bot.sandbox", "main"),
    "db": ("database jobs: db migrate copies SQLite into PostgreSQL", "bot.db_cli", "main"),
}


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, (what, _, _) in SUBCOMMANDS.items()]
    return (
        "usage: sentiment {" + ",".join(SUBCOMMANDS) + "} [options]\n\n"
        "Sentiment Bot: a Discord bot that reads the mood of chat messages.\n\n"
        "commands:\n" + "\n".join(lines) + "\n\n"
        "sentiment COMMAND --help shows a command's options."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(
            f"error: unknown command {name!r}: use one of {', '.join(SUBCOMMANDS)} "
            "(sentiment --help says what each does)",
            file=sys.stderr,
        )
        return 2
    _, module, function = SUBCOMMANDS[name]
    entry: _EntryPoint = getattr(importlib.import_module(module), function)
    if name != "train":
        return entry(rest, prog=f"sentiment {name}")
    with _corrections_from_database(rest) as (argv, error):
        if error is not None:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return entry(argv, prog=f"sentiment {name}")


@contextlib.contextmanager
def _corrections_from_database(argv: list[str]) -> Iterator[tuple[list[str], str | None]]:
    """``argv`` with a ``--corrections`` that names the bot's database replaced by a temporary
    CSV of its corrections (deleted afterwards); other arguments unchanged. With an error
    line instead when the database cannot be read."""
    flag = "--corrections"
    at = next((i for i, a in enumerate(argv) if a == flag or a.startswith(flag + "=")), None)
    if at is None:
        yield argv, None
        return
    given = argv[at].partition("=")[2] if "=" in argv[at] else None
    value = given if given is not None else (argv[at + 1] if at + 1 < len(argv) else None)
    from bot.storage import ANY_GUILD, CorrectionFilter, StorageError, is_sqlite_file
    from bot.storage.dsn import database_location, is_dsn

    # a missing or unreadable file, or a CSV, goes on: the trainer speaks of it in its words
    if value is None or not (is_dsn(value) or is_sqlite_file(Path(value))):
        yield argv, None
        return
    from bot.cli import export_corrections

    with tempfile.TemporaryDirectory(prefix="sentiment-corrections-") as folder:
        csv = Path(folder) / "corrections.csv"
        try:
            where = database_location(value)
            written = export_corrections(where, CorrectionFilter(guild_id=ANY_GUILD), csv)
        except (StorageError, ValueError) as exc:
            yield argv, str(exc)
            return
        print(f"corrections: {written} with text read from the database {where}")
        rest = argv[at + 1 :] if given is not None else argv[at + 2 :]
        yield [*argv[:at], flag, str(csv), *rest], None


if __name__ == "__main__":
    raise SystemExit(main())
