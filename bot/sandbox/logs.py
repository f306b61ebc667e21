"""Where the logs go while the console runs, and the errors the console points at.

The bot's and discord.py's logs would cut into the console's lines, so :func:`setup_logging`
sends them to a file (or to stderr with ``--verbose``); the fake Discord's
:class:`~fakediscord.ErrorLogCollector`, on the root logger, keeps the ERROR records, so that the
session can say "the bot logged an error" next to the line that caused it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import discord

from fakediscord import ErrorLogCollector


def setup_logging(log: Path, *, verbose: bool) -> ErrorLogCollector:
    """Bot and discord.py logs at INFO to ``log`` (or stderr with --verbose), not the console."""
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler()
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log, encoding="utf-8")
        logging.captureWarnings(True)
        from transformers.utils import logging as hf_logging

        # "Loading weights" progress bars would cut into the console
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        hf_logging.disable_default_handler()
        hf_logging.enable_propagation()
    # discord.py would colour the file too when it runs inside Docker
    formatter = (
        discord.utils.MISSING
        if verbose
        else logging.Formatter(
            "[{asctime}] [{levelname:<8}] {name}: {message}", "%Y-%m-%d %H:%M:%S", style="{"
        )
    )
    discord.utils.setup_logging(handler=handler, formatter=formatter, level=logging.INFO, root=True)
    errors = ErrorLogCollector()  # discord.py's and the bot's errors
    logging.getLogger().addHandler(errors)
    return errors
