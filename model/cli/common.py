"""What both commands share: settings from flags and environment, output checks made before
any work, the data and cache they read, and one ``error: ...`` line for a user's mistake."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from model.cli.options import DEFAULT_OUTPUT
from model.serving.artifact import ArtifactError
from model.serving.encoder import EncoderError
from model.serving.spec import TextEncoder
from model.settings import ModelSettings, SettingsError
from model.training.cache import EmbeddingCache
from model.training.chateval import ChatSet, ChatSetError, default_chat_set_path, load_chat_set
from model.training.data import DataError, Dataset, find_split, load_labelled
from model.training.finetune import FinetuneError


class UsageError(Exception):
    """A bad combination of flags, or an output that cannot be written."""


def run_command(main: Callable[[list[str] | None], int], argv: Sequence[str] | None) -> int:
    """``main(argv)``, with a user's mistake printed as one line and exit code 2."""
    try:
        return main(list(argv) if argv is not None else None)
    except (
        UsageError,
        SettingsError,
        DataError,
        ArtifactError,
        EncoderError,
        FinetuneError,
        ChatSetError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def settings_from(args: argparse.Namespace) -> ModelSettings:
    """The environment's settings, each flag given (its ``dest`` is the field) winning."""
    fields = ModelSettings.model_fields
    return ModelSettings.from_env(flags={k: v for k, v in vars(args).items() if k in fields})


def embedding_cache(
    args: argparse.Namespace, settings: ModelSettings, encoder: TextEncoder
) -> EmbeddingCache | None:
    if args.no_cache:
        return None
    return EmbeddingCache(settings.embedding_cache_dir, encoder.cache_key, encoder.dim)


def load_split(name: str, args: argparse.Namespace, settings: ModelSettings) -> Dataset:
    """An SST-2 split, malformed rows skipped with --skip-malformed, cut to --limit rows."""
    path = find_split(name, settings.data_dir, progress=not args.quiet)
    return load_labelled(path, skip_malformed=args.skip_malformed).head(args.limit)


def chat_set(flag: Path | None) -> ChatSet | None:
    """The chat set named by the flag (which must exist), else the committed one if present."""
    if flag is not None:
        return load_chat_set(flag)
    path = default_chat_set_path()
    return load_chat_set(path) if path.is_file() else None


def check_writable(
    path: Path, flag: str = "--output", *, given: Path | None = None, folder: bool = False
) -> None:
    """Fail at once, before any work, if ``path`` cannot be written: it is a folder where a
    file goes (or a file where a folder goes, ``folder=True``), an existing one is read-only,
    or its parent folder cannot be created or written. ``flag`` names the option to fix and
    ``given`` its value, when ``path`` is a file written beside it (``x.report.json``)."""
    what = f"{flag} {path}" if given is None else f"{path} (written beside {flag} {given})"
    if folder:
        if path.exists() and not path.is_dir():
            raise UsageError(
                f"{what} is a file where a folder goes. Move it aside or pick another {flag}."
            )
    elif path.is_dir():
        fix = (
            f"give a file path, e.g. {path / _default_name(flag)}"
            if given is None
            else f"move it aside or pick another {flag}"
        )
        raise UsageError(f"{what} is a folder; {fix}.")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{what} exists and is not writable. Pick another {flag}.")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        msg = f"cannot create the folder {parent} for {what} ({reason}). Pick another {flag}."
        raise UsageError(msg) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{parent} is not writable ({what}). Pick another {flag}.")


def _default_name(flag: str) -> str:
    return {"--report": "report.json", "--plot": "reliability.png"}.get(flag, DEFAULT_OUTPUT.name)
