"""What the console prints: Discord's answers as a user would read them, in plain text.

:func:`plain` makes Discord markup readable (mentions by name, timestamps, no bold or code
marks); :func:`print_reply` prints one answer of the bot (its text, the files it attached, saved
to a folder, and its buttons); :func:`echo` is the one way the console writes a line.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import discord

from bot.sandbox.world import World
from fakediscord import FakeFile, Reply

JSON = dict[str, Any]

_TIMESTAMP = re.compile(r"<t:(-?\d+)(?::([tTdDfFR]))?>")
_MENTION = re.compile(r"<(@!?|@&|#)(\d+)>")
_ESCAPED = re.compile(r"\\([\\*_~`|>\[\]])")
_BUTTON = discord.ComponentType.button.value


def echo(*lines: str) -> None:
    for line in lines:
        print(line, flush=True)


def plain(text: str, world: World, now: float | None = None) -> str:
    """Discord markup made readable: mentions by name, timestamps, no bold or code marks."""
    now = time.time() if now is None else now

    def timestamp(match: re.Match[str]) -> str:
        when = int(match[1])
        if match[2] == "R":
            return _ago(now - when)
        return dt.datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M")

    def mention(match: re.Match[str]) -> str:
        kind, ident = match[1], int(match[2])
        if kind == "#":
            return "#" + world.channel_name(ident)
        return "@" + (world.role_name(ident) if kind == "@&" else world.user_name(ident))

    text = _TIMESTAMP.sub(timestamp, text)
    text = _MENTION.sub(mention, text)
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text).replace("`", "")
    return _ESCAPED.sub(r"\1", text)


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''} ago"
    return f"{int(seconds)} s ago"


def print_reply(reply: Reply, world: World, out_dir: Path) -> bool:
    """Print what the user sees: content, embeds, saved files, buttons; whether it has buttons."""
    who = "only you see this" if reply.ephemeral else "everyone sees this"
    echo(f"  bot ({who}):")
    for line in plain(reply.text, world).splitlines():
        echo(f"  | {line}")
    for upload in reply.files:
        echo(f"  | [file saved: {save_file(out_dir, upload)}]")
    shown = list(buttons(reply.components))
    if shown:
        labels = " · ".join(
            str(b.get("label")) + (" (disabled)" if b.get("disabled") else "") for b in shown
        )
        echo(f"  | [buttons: {labels}]  (:click LABEL)")
    return bool(shown)


def save_file(folder: Path, upload: FakeFile) -> Path:
    """Write an attachment as ``folder/<stem>-<n><suffix>`` with the first free ``n``."""
    folder.mkdir(parents=True, exist_ok=True)
    name = Path(upload.filename).name or "file"
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 1
    while (folder / f"{stem}-{n}{suffix}").exists():
        n += 1
    path = folder / f"{stem}-{n}{suffix}"
    path.write_bytes(upload.data)
    return path


def buttons(components: Sequence[Any]) -> Iterator[JSON]:
    """The clickable buttons among a message's components, in order, inside rows too."""
    for component in components:
        if isinstance(component, dict):
            if component.get("type") == _BUTTON and component.get("custom_id"):
                yield component
            yield from buttons(component.get("components") or [])
