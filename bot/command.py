"""``sentiment``: one command with a subcommand for each job.

``sentiment bot`` runs the bot, ``train`` and ``evaluate`` build and measure the classifier,
``history`` reads the database as the operator, ``sandbox`` tries the bot against the fake
Discord. Each subcommand is the existing entry point (its flags, its settings, its one-line
errors), imported only when it runs. The old
names (``sentiment-bot``, ``sentiment-train``, ...) stay as aliases for this release.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
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
    return entry(rest, prog=f"sentiment {name}")


if __name__ == "__main__":
    raise SystemExit(main())
