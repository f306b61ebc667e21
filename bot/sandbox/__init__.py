"""The ``sentiment-sandbox`` console: the real bot against the fake Discord (:mod:`fakediscord`).

The fake Discord is a development package (``fake-discord``, in ``fakediscord/``), not part of
an install of the bot: :func:`main` checks for it first and says in one line how to get it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

MISSING_FAKE = (
    "error: sentiment-sandbox needs the fake Discord (package fake-discord), which an install of "
    "the bot does not include; from a checkout run scripts/bootstrap.sh, or: "
    "pip install -e ./fakediscord"
)


def main(argv: Sequence[str] | None = None, prog: str = "sentiment-sandbox") -> int:
    """Entry point of ``sentiment-sandbox``: the console, or one line when the fake is missing."""
    if importlib.util.find_spec("fakediscord") is None:
        print(MISSING_FAKE, file=sys.stderr)
        return 2
    from bot.sandbox.cli import main as console

    return console(argv, prog)
