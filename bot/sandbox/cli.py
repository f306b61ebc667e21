"""``sentiment-sandbox``: try the real bot without a Discord token.

Starts :class:`~bot.sandbox.fake_discord.FakeDiscord` on 127.0.0.1 with a small server
("Sandbox": #general with automatic reactions on, #random off; members *you* the owner,
*alice*, and *mod* with Manage Messages), runs the real :class:`~bot.client.SentimentBot`
against it, and reads lines from stdin (a terminal or a pipe):

* a plain line is a message from the current user in the current channel; the console prints
  the bot's reaction, or why there is none;
* ``/name [subcommand] [option=value ...] [words]`` runs a slash command as the current user
  and prints the reply; attached files (the /mood chart) are saved to a folder;
* ``:analyze N``, ``:delete N``, ``:click LABEL``, ``:as USER``, ``:in CHANNEL``, ``:help``,
  ``:quit`` (see :data:`HELP`).

Nothing here knows the bot's commands: they are read from what the bot synced, so the console
follows the cogs as they change. Parsing (:func:`parse_line`, :func:`build_call`) and rendering
(:func:`plain`) are pure functions; :class:`Sandbox` is the thin layer that drives the fake.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import io
import logging
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import discord

from bot.config import DEFAULT_DATABASE, Secret, Settings
from bot.decisions import guild_band, reacts_in
from bot.render import mood_probability, why_silent
from bot.sandbox.fake_discord import (
    DEFAULT_TOKEN,
    ClientDiedError,
    FakeDiscord,
    FakeFile,
    FakeInteraction,
    FakeMessage,
    RunningClient,
    running_client,
    snowflake_at,
)
from bot.storage import (
    HistoryFilter,
    Storage,
    StorageError,
    StoredPrediction,
    read_origin,
    write_origin,
)

JSON = dict[str, Any]
T = TypeVar("T")

DEFAULT_DB = Path("data/sandbox.db")
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # where scripts/run starts the bot
DEFAULT_OUT = Path("data/sandbox-out")
DEFAULT_LOG = Path("data/sandbox.log")

READY_TIMEOUT_S = 120.0  # login includes loading the model
CLASSIFY_TIMEOUT_S = 30.0  # the first prediction warms the encoder up
REACTION_TIMEOUT_S = 5.0
STORED_TIMEOUT_S = 10.0  # the writer commits every 0.5 s, retrying while the file is busy
REPLY_TIMEOUT_S = 60.0

# Fixed ids, so that a sandbox database kept between runs still matches the world.
_EPOCH = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
GUILD_ID = snowflake_at(_EPOCH, 1)
GENERAL_ID = snowflake_at(_EPOCH, 2)
RANDOM_ID = snowflake_at(_EPOCH, 3)
MOD_ROLE_ID = snowflake_at(_EPOCH, 4)
YOU_ID = snowflake_at(_EPOCH, 5)
ALICE_ID = snowflake_at(_EPOCH, 6)
MOD_ID = snowflake_at(_EPOCH, 7)

BANNER = """\
Sentiment Bot sandbox: the real bot, connected to a fake Discord on 127.0.0.1 (no token needed).
Server "Sandbox": #general (automatic reactions on), #random (off).
Members: you (the owner), alice, mod (Manage Messages). You speak as "you" in #general.

  Type a message and see the bot's reaction. Slash commands work as on Discord:
    /sentiment I love it              /sentiment private this is awful
    /history   /history alice negative days=7   /channel-history #random
    /mood 7    /forget-me   /opt-in   /sentiment-admin reactions #random on
  :analyze N  the "Analyze sentiment" menu on message #N    :delete N  delete message #N
  :as alice   speak as alice (or mod, you)                  :in random  switch channel
  :help       all commands and options                      :quit       exit (or Ctrl-D)"""

HELP = """\
Lines:
  any text                  a message from the current user in the current channel (#1, #2 ...)
  /name [sub] [option=value ...] [words]
                            a slash command. Words fill the options in order, each in the first
                            option it fits (a member, a #channel, a number, a choice); a text
                            option takes the rest of the line. A yes/no option named first is
                            switched on (/sentiment private ...). Quote values with spaces:
                            text="a b". Yes/no values: yes/no, on/off, true/false.
  :analyze N                the message menu "Analyze sentiment" on message #N (or an id)
  :delete N                 delete message #N (the bot must forget its prediction)
  :click LABEL              click a button of the last answer (e.g. :click older)
  :as NAME                  speak as another member: {users}
  :in NAME                  switch channel: {channels}
  :help  :quit              this help; exit (also Ctrl-D, Ctrl-C)

Commands the bot synced:
{commands}"""

META_COMMANDS = {
    "analyze": "a message number, e.g. :analyze 1",
    "delete": "a message number, e.g. :delete 1",
    "click": "a button label, e.g. :click older",
    "as": "a member name, e.g. :as alice",
    "in": "a channel name, e.g. :in random",
    "help": None,
    "quit": None,
    "exit": None,
}

# Discord's application-command option types.
SUB_COMMAND, SUB_GROUP, STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE = range(1, 10)
NUMBER, ATTACHMENT = 10, 11
MESSAGE_COMMAND = 3
TRUE_WORDS = ("true", "yes", "on", "y", "1")
FALSE_WORDS = ("false", "no", "off", "n", "0")


class UsageError(ValueError):
    """A user mistake: printed as one ``error:`` line, never as a traceback."""


# --------------------------------------------------------------------------------------------
# The world


@dataclass(frozen=True)
class World:
    """Names and ids of the sandbox server (pure data; what the console resolves names with)."""

    guild_id: int
    members: Mapping[str, int]
    channels: Mapping[str, int]
    roles: Mapping[str, int] = field(default_factory=dict)
    others: Mapping[int, str] = field(default_factory=dict)  # e.g. the bot, for rendering

    def user_name(self, user_id: int) -> str:
        names = {v: k for k, v in self.members.items()} | dict(self.others)
        return names.get(user_id, str(user_id))

    def channel_name(self, channel_id: int) -> str:
        return {v: k for k, v in self.channels.items()}.get(channel_id, str(channel_id))

    def role_name(self, role_id: int) -> str:
        return {v: k for k, v in self.roles.items()}.get(role_id, str(role_id))

    def find_member(self, text: str) -> int:
        return _find(text, self.members, "member", r"<@!?(\d+)>", "@")

    def find_channel(self, text: str) -> int:
        return _find(text, self.channels, "channel", r"<#(\d+)>", "#")

    def find_role(self, text: str) -> int:
        return _find(text, self.roles, "role", r"<@&(\d+)>", "@")


def _find(text: str, names: Mapping[str, int], what: str, mention: str, prefix: str) -> int:
    """An id from a name (``alice``, ``@alice``), a mention (``<@123>``) or a known id."""
    match = re.fullmatch(mention, text)
    key = match[1] if match else text.removeprefix(prefix).lower()
    if key.isdigit() and int(key) in names.values():
        return int(key)
    if key in names:
        return names[key]
    known = ", ".join(prefix + n if prefix == "#" else n for n in names)
    raise UsageError(f"no {what} named {text!r}; the {what}s are: {known}")


def build_world(fake: FakeDiscord) -> World:
    """Create the sandbox server on ``fake`` (before the bot connects) and return its names."""
    guild = fake.add_guild(GUILD_ID, "Sandbox", owner_id=YOU_ID)
    guild.add_channel(GENERAL_ID, "general", topic="Automatic reactions are on here")
    guild.add_channel(RANDOM_ID, "random", topic="Automatic reactions are off here")
    guild.add_role(MOD_ROLE_ID, "moderator", discord.Permissions(manage_messages=True).value)
    guild.add_member(YOU_ID, "you")
    guild.add_member(ALICE_ID, "alice")
    guild.add_member(MOD_ID, "mod", roles=[MOD_ROLE_ID])
    return World(
        guild_id=GUILD_ID,
        members={"you": YOU_ID, "alice": ALICE_ID, "mod": MOD_ID},
        channels={"general": GENERAL_ID, "random": RANDOM_ID},
        roles={"moderator": MOD_ROLE_ID, "everyone": GUILD_ID},
        others={fake.bot_user_id: fake.bot_user.name},
    )


# --------------------------------------------------------------------------------------------
# Parsing a line (pure)


@dataclass(frozen=True)
class Say:
    """A plain message."""

    text: str


@dataclass(frozen=True)
class Slash:
    """``/name`` with its bare words and its ``option=value`` pairs, not yet checked."""

    name: str
    words: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Meta:
    """A console command: ``:name arg``."""

    name: str
    arg: str = ""


Line = Say | Slash | Meta

_TOKEN = re.compile(r'([a-z][a-z0-9_-]*)=(?:"([^"]*)"|(\S*))|(\S+)')


def parse_line(line: str) -> Line | None:
    """What a console line asks for; None for a blank line. Raises :class:`UsageError`."""
    text = line.strip()
    if not text:
        return None
    if re.match(r":[a-zA-Z]", text):  # ":)" and ":-(" are messages
        name, _, arg = text[1:].partition(" ")
        name, arg = name.lower(), arg.strip()
        if name not in META_COMMANDS:
            known = " ".join(f":{n}" for n in META_COMMANDS if n != "exit")
            raise UsageError(f"unknown console command :{name}; they are: {known}")
        needs = META_COMMANDS[name]
        if needs and not arg:
            raise UsageError(f":{name} needs {needs}")
        return Meta(name, arg)
    if not text.startswith("/"):
        return Say(text)
    name, _, rest = text[1:].partition(" ")
    if not name:
        raise UsageError("type a command name after /, e.g. /sentiment I love it")
    words: list[str] = []
    options: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(rest):
        key, quoted, value, word = match.groups()
        if word is not None:
            words.append(word)
        else:
            options.append((key, quoted if quoted is not None else value))
    keys = [k for k, _ in options]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise UsageError(f"option {duplicates[0]}= is given twice")
    return Slash(name.lower(), tuple(words), tuple(options))


def build_call(command: JSON, slash: Slash, world: World) -> tuple[str | None, dict[str, Any]]:
    """The subcommand and the typed option values for ``fake.invoke_slash``.

    ``command`` is the synced definition (options with Discord's types), so the same code
    serves every command of the bot. Raises :class:`UsageError` naming what was wrong.
    """
    label = f"/{command['name']}"
    schema: list[JSON] = list(command.get("options") or [])
    words = list(slash.words)
    path: list[str] = []
    while any(int(o["type"]) in (SUB_COMMAND, SUB_GROUP) for o in schema):
        subs = {o["name"]: o for o in schema if int(o["type"]) in (SUB_COMMAND, SUB_GROUP)}
        if not words:
            raise UsageError(f"{label} needs a subcommand: {' | '.join(subs)}")
        word = words.pop(0).lower()
        if word not in subs:
            raise UsageError(f"{label} has no subcommand {word!r}; it has: {' | '.join(subs)}")
        path.append(word)
        label += f" {word}"
        schema = list(subs[word].get("options") or [])
    by_name = {o["name"]: o for o in schema}
    raw = dict(slash.options)
    unknown = [k for k in raw if k not in by_name]
    if unknown:
        raise UsageError(
            f"{label} has no option {unknown[0]!r}; it takes: {describe_options(schema)}"
        )
    raw |= _assign_words(label, schema, words, raw, world)
    missing = [o["name"] for o in schema if o.get("required") and o["name"] not in raw]
    if missing:
        raise UsageError(f"{label} needs {', '.join(missing)}; usage: {usage(label, schema)}")
    values = {name: convert(by_name[name], value, world) for name, value in raw.items()}
    return (" ".join(path) or None), values


def _assign_words(
    label: str, schema: list[JSON], words: list[str], given: Mapping[str, str], world: World
) -> dict[str, str]:
    """Give bare words to options: leading yes/no option names switch them on; then each word
    goes to the first free option it fits, and a free-text option takes the rest of the line
    (unless another free-text option follows, as in ``/sentiment-admin emoji 🎉 😡``)."""
    assigned: dict[str, str] = {}
    by_name = {o["name"]: o for o in schema}
    while words and int(by_name.get(words[0], {}).get("type", 0)) == BOOLEAN:
        if words[0] in given or words[0] in assigned:
            break
        assigned[words.pop(0)] = "yes"
    while words:
        free = [o for o in schema if o["name"] not in given and o["name"] not in assigned]
        if not free:
            raise UsageError(f"{label} takes nothing more; left over: {' '.join(words)!r}")
        target = next((o for o in free if _fits(o, words[0], world)), None)
        if target is None:
            raise UsageError(
                f"{label}: {words[0]!r} fits none of its options "
                f"({describe_options(free)}); write option=value"
            )
        later_text = [o for o in free[free.index(target) + 1 :] if _is_free_text(o)]
        if _is_free_text(target) and not later_text:
            assigned[target["name"]] = " ".join(words)
            words = []
        else:
            assigned[target["name"]] = words.pop(0)
    return assigned


def _is_free_text(option: JSON) -> bool:
    return int(option["type"]) == STRING and not option.get("choices")


def _fits(option: JSON, word: str, world: World) -> bool:
    try:
        convert(option, word, world)
    except UsageError:
        return False
    choices = option.get("choices")
    return not choices or word in [c["value"] for c in choices]


def convert(option: JSON, value: str, world: World) -> Any:
    """A console string as the value type of a synced option; UsageError if it is not one.

    Ranges, lengths and choices are left to the fake, which checks them like a Discord client.
    """
    name, kind = option["name"], int(option["type"])
    if kind == STRING:
        return value
    if kind in (INTEGER, NUMBER):
        try:
            return int(value) if kind == INTEGER else float(value)
        except ValueError:
            what = "a whole number" if kind == INTEGER else "a number"
            raise UsageError(f"{name}={value}: {name} takes {what}") from None
    if kind == BOOLEAN:
        if value.lower() in TRUE_WORDS + FALSE_WORDS:
            return value.lower() in TRUE_WORDS
        raise UsageError(f"{name}={value}: {name} takes yes or no (on/off, true/false)")
    if kind == USER:
        return world.find_member(value)
    if kind == CHANNEL:
        return world.find_channel(value)
    if kind == ROLE:
        return world.find_role(value)
    if kind == MENTIONABLE:
        with contextlib.suppress(UsageError):
            return world.find_member(value)
        return world.find_role(value)
    raise UsageError(f"{name}: options of Discord type {kind} cannot be given in the sandbox")


_KINDS = {
    STRING: "text",
    INTEGER: "whole number",
    NUMBER: "number",
    BOOLEAN: "yes/no",
    USER: "member",
    CHANNEL: "#channel",
    ROLE: "role",
    MENTIONABLE: "member or role",
    ATTACHMENT: "file",
}


def describe_options(schema: Sequence[JSON]) -> str:
    """``days (whole number 1..3650), mood (positive|negative|neutral)``."""
    parts = []
    for option in schema:
        choices = option.get("choices")
        kind = (
            "|".join(str(c["value"]) for c in choices)
            if choices
            else _KINDS.get(int(option["type"]), "?")
        )
        low, high = option.get("min_value"), option.get("max_value")
        if low is not None or high is not None:
            kind += f" {'' if low is None else low}..{'' if high is None else high}"
        parts.append(f"{option['name']} ({kind}{', required' if option.get('required') else ''})")
    return ", ".join(parts) or "no options"


def usage(label: str, schema: Sequence[JSON]) -> str:
    """``/history [member] [channel] [mood] [days]``; required options without brackets."""
    parts = [label]
    for option in schema:
        parts.append(option["name"] if option.get("required") else f"[{option['name']}]")
    return " ".join(parts)


def command_help(commands: Sequence[JSON]) -> list[str]:
    """One line per synced slash command (per subcommand), plus the message menus."""
    lines: list[str] = []
    for command in sorted(commands, key=lambda c: str(c["name"])):
        if int(command.get("type", 1)) == MESSAGE_COMMAND:
            lines.append(f"  :analyze N\n      the message menu {command['name']!r}")
            continue
        if int(command.get("type", 1)) != 1:
            continue
        options = list(command.get("options") or [])
        subs = [o for o in options if int(o["type"]) == SUB_COMMAND]
        entries = [(f"/{command['name']}", options, str(command.get("description", "")))]
        if subs:
            entries = [
                (f"/{command['name']} {s['name']}", s.get("options") or [], s["description"])
                for s in subs
            ]
        for label, schema, description in entries:
            lines.append(f"  {usage(label, schema)}")
            lines.append(f"      {description}")
            if schema:
                lines.append(f"      {describe_options(schema)}")
    return lines


# --------------------------------------------------------------------------------------------
# Rendering Discord markup as plain text (pure)

_TIMESTAMP = re.compile(r"<t:(-?\d+)(?::([tTdDfFR]))?>")
_MENTION = re.compile(r"<(@!?|@&|#)(\d+)>")
_ESCAPED = re.compile(r"\\([\\*_~`|>\[\]])")


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


def permission_names(value: int) -> str:
    """``Manage Server``: the names a Discord user sees for a permission bitfield."""
    names = [n for n, on in discord.Permissions(value) if on]
    return ", ".join(n.replace("guild", "server").replace("_", " ").title() for n in names)


# --------------------------------------------------------------------------------------------
# The session


def echo(*lines: str) -> None:
    for line in lines:
        print(line, flush=True)


@contextlib.contextmanager
def user_mistake() -> Iterator[None]:
    """What the fake refuses, as a Discord client would (unknown id, bad value, not allowed)."""
    try:
        yield
    except KeyError:
        raise
    except (ValueError, LookupError, PermissionError) as exc:
        raise UsageError(str(exc)) from exc


async def poll(check: Callable[[], Awaitable[T]], timeout: float) -> T | None:
    """Await ``check()`` every 20 ms until it gives something truthy; None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.02)
    return result


class ErrorLog(logging.Handler):
    """Collects ERROR records (discord.py's and the bot's) so the console can point at them."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Sandbox:
    """One console session: who speaks where, the numbered messages, and the bot's answers."""

    def __init__(
        self,
        running: RunningClient,
        world: World,
        *,
        out_dir: Path,
        log_hint: str,
        errors: ErrorLog,
    ) -> None:
        from bot.client import SentimentBot

        assert isinstance(running.client, SentimentBot)
        self.bot = running.client
        self.running = running
        self.fake = running.fake
        self.world = world
        self.out_dir = out_dir
        self.log_hint = log_hint
        self.errors = errors
        self.errors_seen = len(errors.records)
        self.user_id = YOU_ID
        self.channel_id = GENERAL_ID
        self.sent: list[int] = []  # message ids; #n is sent[n - 1]
        self.last_buttons: int | None = None  # the last answer that had buttons

    @property
    def prompt(self) -> str:
        return f"{self.world.user_name(self.user_id)}@#{self.world.channel_name(self.channel_id)}> "

    def commands(self) -> list[JSON]:
        synced = self.fake.synced_commands
        return [*synced.get(self.world.guild_id, []), *synced.get(None, [])]

    # -- dispatch ----------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Run one console line; False when the session should end."""
        try:
            parsed = parse_line(line)
            if isinstance(parsed, Say):
                await self.say(parsed.text)
            elif isinstance(parsed, Slash):
                await self.slash(parsed)
            elif isinstance(parsed, Meta):
                if parsed.name in ("quit", "exit"):
                    return False
                await self.meta(parsed)
        except UsageError as exc:
            echo(f"  error: {exc}")
        except TimeoutError as exc:
            echo(
                f"  (gave up waiting for the bot: {str(exc).splitlines()[0]}; see {self.log_hint})"
            )
        self.running.raise_if_died()
        self.report_errors()
        return True

    async def meta(self, command: Meta) -> None:
        if command.name == "help":
            echo(
                HELP.format(
                    users=", ".join(self.world.members),
                    channels=", ".join(self.world.channels),
                    commands="\n".join(command_help(self.commands())),
                )
            )
        elif command.name == "as":
            self.user_id = self.world.find_member(command.arg)
            echo(f"  now speaking as {self.world.user_name(self.user_id)}")
        elif command.name == "in":
            self.channel_id = self.world.find_channel(command.arg)
            echo(f"  now in #{self.world.channel_name(self.channel_id)}")
        elif command.name == "analyze":
            await self.analyze(self.message(command.arg))
        elif command.name == "delete":
            await self.delete(self.message(command.arg))
        elif command.name == "click":
            await self.click(command.arg)

    def report_errors(self) -> None:
        for record in self.errors.records[self.errors_seen :]:
            echo(f"  ! the bot logged an error ({record.name}): {record.getMessage()}")
            echo(f"    details in {self.log_hint}")
        self.errors_seen = len(self.errors.records)

    # -- messages ----------------------------------------------------------------------------

    async def say(self, text: str) -> None:
        with user_mistake():
            message_id = await self.fake.send_message(self.channel_id, self.user_id, text)
        self.sent.append(message_id)
        outcome = await self.reaction_to(message_id)
        echo(f"  #{len(self.sent)} · {outcome}")

    async def reaction_to(self, message_id: int) -> str:
        """Wait until the bot is done with a message; its reaction, or why there is none."""
        storage = self.bot.storage
        settings = await storage.guild_settings(self.world.guild_id)
        channel = "#" + self.world.channel_name(self.channel_id)
        if not reacts_in(settings, self.channel_id):
            await self.fake.wait_idle(idle=0.3)
            return self._reacted(message_id) or (
                f"no reaction: automatic reactions are off in {channel} "
                f"(/sentiment-admin reactions {channel} on switches them on)"
            )
        if storage.opted_out(self.user_id):
            await self.fake.wait_idle(idle=0.3)
            return self._reacted(message_id) or (
                "no reaction: you opted out with /forget-me (/opt-in undoes it)"
            )
        if not await poll(lambda: storage.has_auto_prediction(message_id), CLASSIFY_TIMEOUT_S):
            return f"no reaction within {CLASSIFY_TIMEOUT_S:g} s; see {self.log_hint}"
        # The writer commits in batches (every 0.5 s): wait for the row rather than flush, so
        # that the bot keeps its own timing.
        row = await poll(lambda: self._auto_row(message_id), STORED_TIMEOUT_S)
        if row is None:
            return "no reaction, and the bot stored no prediction for it"
        if row.mood == "neutral":
            band = guild_band(settings, self.bot.classifier.band)
            return f"no reaction: {why_silent(row, band)}"
        with contextlib.suppress(TimeoutError):
            await self.fake.wait_for(
                lambda: bool(self.fake.active_reactions(message_id)), REACTION_TIMEOUT_S
            )
        return self._reacted(message_id, f" ({row.mood}, {mood_probability(row)})") or (
            f"no reaction although the bot read it as {row.mood} "
            f"({mood_probability(row)}); see {self.log_hint}"
        )

    async def _auto_row(self, message_id: int) -> StoredPrediction | None:
        """The bot's stored automatic prediction for a message of the current user and channel."""
        flt = HistoryFilter(
            guild_id=self.world.guild_id, user_id=self.user_id, channel_id=self.channel_id
        )
        rows = await self.bot.storage.history(flt, limit=20)
        return next((r for r in rows if r.message_id == message_id and r.source == "auto"), None)

    def _reacted(self, message_id: int, note: str = "") -> str:
        emojis = self.fake.active_reactions(message_id)
        return f"bot reacted {' '.join(emojis)}{note}" if emojis else ""

    def message(self, ref: str) -> FakeMessage:
        """Message ``#n`` of this session, or any message by id."""
        key = ref.removeprefix("#")
        if not key.isdigit():
            raise UsageError(
                f"{ref!r} is not a message number; messages are #1 to #{len(self.sent)}"
            )
        n = int(key)
        if 1 <= n <= len(self.sent):
            message = self.fake.messages[self.sent[n - 1]]
        elif n in self.fake.messages:
            message = self.fake.messages[n]
        else:
            span = f"#1 to #{len(self.sent)}" if self.sent else "none yet: type a message first"
            raise UsageError(f"no message #{n}; messages are {span}")
        if message.deleted:
            raise UsageError(f"{self._label(message)} was deleted")
        return message

    async def delete(self, message: FakeMessage) -> None:
        storage = self.bot.storage
        had_row = await storage.has_auto_prediction(message.id)
        with user_mistake():
            await self.fake.delete_message(message.channel_id, message.id)
        label = self._label(message)
        if not had_row:
            await self.fake.wait_idle(idle=0.3)
            echo(f"  {label} deleted (the bot had stored no reaction prediction for it)")
            return

        async def erased() -> bool:
            return not await storage.has_auto_prediction(message.id)

        if await poll(erased, STORED_TIMEOUT_S):
            echo(f"  {label} deleted; the bot erased its stored prediction of it")
        else:
            echo(f"  {label} deleted, but the bot still stores its prediction: a bug")

    def _label(self, message: FakeMessage) -> str:
        if message.id in self.sent:
            return f"#{self.sent.index(message.id) + 1}"
        return f"message {message.id}"

    # -- interactions ------------------------------------------------------------------------

    async def slash(self, slash: Slash) -> None:
        command = next(
            (c for c in self.commands() if c["name"] == slash.name and int(c.get("type", 1)) == 1),
            None,
        )
        if command is None:
            names = sorted({f"/{c['name']}" for c in self.commands() if int(c.get("type", 1)) == 1})
            raise UsageError(f"unknown command /{slash.name}; the bot has: {' '.join(names)}")
        # Discord hides a command from members without its default permissions.
        needed = int(command.get("default_member_permissions") or 0)
        lacking = needed & ~self.fake.guilds[self.world.guild_id].permissions_of(self.user_id)
        if lacking:
            raise UsageError(
                f"{self.world.user_name(self.user_id)} cannot use /{slash.name}: it needs "
                f"{permission_names(lacking)}"
            )
        subcommand, options = build_call(command, slash, self.world)
        with user_mistake():
            interaction = await self.fake.invoke_slash(
                slash.name,
                options,
                user_id=self.user_id,
                channel_id=self.channel_id,
                guild_id=self.world.guild_id,
                subcommand=subcommand,
            )
        await self.show_answer(interaction)

    async def analyze(self, message: FakeMessage) -> None:
        menus = [c for c in self.commands() if int(c.get("type", 1)) == MESSAGE_COMMAND]
        if not menus:
            raise UsageError("the bot has no message menu command")
        with user_mistake():
            interaction = await self.fake.invoke_message_command(
                str(menus[0]["name"]),
                target_message_id=message.id,
                user_id=self.user_id,
                channel_id=message.channel_id,
                guild_id=self.world.guild_id,
            )
        await self.show_answer(interaction)

    async def click(self, label: str) -> None:
        if self.last_buttons is None:
            raise UsageError("no answer with buttons yet")
        message = self.fake.messages[self.last_buttons]
        asker = (
            self.fake.interactions[message.interaction_id].user_id
            if message.interaction_id
            else None
        )
        if message.ephemeral and asker not in (None, self.user_id):
            raise UsageError(
                f"{self.world.user_name(self.user_id)} cannot see that answer: only "
                f"{self.world.user_name(asker)} can (it is ephemeral)"
            )
        buttons = list(_buttons(message.components))
        wanted = label.lower()
        button = next((b for b in buttons if wanted in str(b.get("label", "")).lower()), None)
        if button is None:
            have = ", ".join(str(b.get("label")) for b in buttons)
            raise UsageError(f"the last answer has no button {label!r}; it has: {have}")
        with user_mistake():
            interaction = await self.fake.click_button(
                message.id,
                str(button["custom_id"]),
                user_id=self.user_id,
                channel_id=message.channel_id,
                guild_id=self.world.guild_id,
            )
        await self.show_answer(interaction)

    async def show_answer(self, interaction: FakeInteraction) -> None:
        """Print what the user sees: content, embeds, saved files, buttons."""
        try:
            await interaction.wait_for_response(self.fake.interaction_timeout + 2.0)
            reply = await interaction.wait_for_reply(REPLY_TIMEOUT_S)
        except TimeoutError:
            echo(
                "  (no answer: the bot did not respond; on Discord the user would see "
                f"'The application did not respond'. See {self.log_hint})"
            )
            return
        who = "only you see this" if reply.ephemeral else "everyone sees this"
        echo(f"  bot ({who}):")
        for line in plain(reply.text, self.world).splitlines():
            echo(f"  | {line}")
        for upload in reply.files:
            echo(f"  | [file saved: {save_file(self.out_dir, upload)}]")
        buttons = list(_buttons(reply.components))
        if buttons:
            self.last_buttons = reply.message_id
            labels = " · ".join(
                str(b.get("label")) + (" (disabled)" if b.get("disabled") else "") for b in buttons
            )
            echo(f"  | [buttons: {labels}]  (:click LABEL)")


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


def _buttons(components: Sequence[Any]) -> Iterator[JSON]:
    for component in components:
        if isinstance(component, dict):
            if component.get("type") == 2 and component.get("custom_id"):
                yield component
            yield from _buttons(component.get("components") or [])


# --------------------------------------------------------------------------------------------
# Reading stdin without blocking the event loop


class LineReader:
    """Reads one line per request in a daemon thread.

    The bot shares the event loop, so stdin is never read on it; and a daemon thread stuck in
    ``input()`` does not keep the process alive after Ctrl-C (a default executor would).
    """

    def __init__(self, *, interactive: bool) -> None:
        self.interactive = interactive
        self._requests: queue.SimpleQueue[tuple[str, asyncio.Future[str | None]]] = (
            queue.SimpleQueue()
        )
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._run, name="sandbox-stdin", daemon=True).start()

    async def readline(self, prompt: str) -> str | None:
        """The next line without its newline, or None at end of input (Ctrl-D, end of pipe)."""
        future: asyncio.Future[str | None] = self._loop.create_future()
        self._requests.put((prompt, future))
        line = await future
        if not self.interactive:
            echo(prompt + line if line is not None else "")  # a pipe reads like a typed session
        elif line is None:
            echo("")  # end the prompt's line after Ctrl-D
        return line

    def _run(self) -> None:
        while True:
            prompt, future = self._requests.get()
            line: str | None
            try:
                if self.interactive:
                    line = input(prompt)
                else:
                    raw = sys.stdin.readline()
                    line = raw.rstrip("\r\n") if raw else None
            except (EOFError, OSError, ValueError):
                line = None
            try:
                self._loop.call_soon_threadsafe(_resolve, future, line)
            except RuntimeError:  # the loop is closed: the console is gone
                return


def _resolve(future: asyncio.Future[str | None], line: str | None) -> None:
    if not future.done():
        future.set_result(line)


# --------------------------------------------------------------------------------------------
# Start-up


async def switch_on_reactions(fake: FakeDiscord, channel_id: int) -> str:
    """``/sentiment-admin reactions channel:<id> enabled:True`` as the owner: the real path."""
    interaction = await fake.invoke_slash(
        "sentiment-admin",
        {"channel": channel_id, "enabled": True},
        subcommand="reactions",
        user_id=YOU_ID,
        channel_id=channel_id,
        guild_id=GUILD_ID,
    )
    reply = await interaction.wait_for_reply(REPLY_TIMEOUT_S)
    return reply.text.splitlines()[1] if len(reply.text.splitlines()) > 1 else reply.text


async def run(args: argparse.Namespace, errors: ErrorLog) -> int:
    from bot.app import create_bot  # imports torch: slow, so only once we run
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


def setup_logging(log: Path, *, verbose: bool) -> ErrorLog:
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
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    return errors


SANDBOX_ORIGIN = "sentiment-sandbox"  # noted inside each database the sandbox creates


async def create_sandbox_database(db: Path) -> None:
    """Create ``db`` as the bot would (schema, mode 0600), and note inside it that the sandbox
    created it, so that a later ``--fresh`` may delete it (and nothing without that note)."""
    storage = await Storage.open(db)
    await storage.close()
    write_origin(db, SANDBOX_ORIGIN)


def is_sandbox_database(db: Path) -> bool:
    """Whether ``db`` is a Sentiment Bot database that the sandbox created."""
    return read_origin(db) == SANDBOX_ORIGIN


def _dotenv_files() -> list[Path]:
    """Every ``.env`` the bot could read: python-dotenv looks from the bot's package folder
    upwards (what ``Settings.from_env`` loads); the current folder and its parents too."""
    import bot.config

    found: list[Path] = []
    for start in (Path(bot.config.__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            candidate = folder / ".env"
            if candidate.is_file() and candidate not in found:
                found.append(candidate)
    return found


def settings_databases() -> list[tuple[str, Path]]:
    """Every file the bot's settings can name as its database, from any source, with where the
    name comes from: SENTIMENT_DB in the environment and in each ``.env`` file (a relative path
    taken from the current folder, the project folder and the ``.env``'s), and the default."""
    from dotenv import dotenv_values

    here, root = Path.cwd(), PROJECT_ROOT
    sources: list[tuple[str, str | None, tuple[Path, ...]]] = [
        ("SENTIMENT_DB in the environment", os.environ.get("SENTIMENT_DB"), (here, root))
    ]
    for env_file in _dotenv_files():
        value = dotenv_values(env_file).get("SENTIMENT_DB")
        sources.append((f"SENTIMENT_DB in {env_file}", value, (here, root, env_file.parent)))
    sources.append((f"the default {DEFAULT_DATABASE}", str(DEFAULT_DATABASE), (here, root)))
    named: list[tuple[str, Path]] = []
    for source, value, bases in sources:
        if value:
            for base in bases:
                named.append((source, (base / Path(value).expanduser()).resolve()))
    return named


def remove_database(db: Path) -> bool:
    """--fresh: delete ``db`` (and its -wal, -shm) if the sandbox created it.

    Refuses (UsageError, nothing deleted) a file the bot's settings name, from any source (the
    environment, a .env file, the default), the same file under another name (a link), and any
    file without the sandbox's mark. Returns whether a database was deleted.
    """
    path = db.expanduser().resolve()
    sidecars = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    if not path.exists():
        if any(p.exists() for p in sidecars):
            raise UsageError(
                f"--fresh refuses to delete the leftover {db}-wal / -shm without their "
                "database; delete them yourself if you are sure"
            )
        return False
    for source, real in settings_databases():
        if path == real or (real.exists() and path.samefile(real)):
            raise UsageError(
                f"--fresh refuses to delete {db}: it is the bot's database ({source}); give "
                "the sandbox a file of its own with --db"
            )
    if not is_sandbox_database(path):
        raise UsageError(
            f"--fresh refuses to delete {db}: the sandbox did not create it (it has no sandbox "
            "mark); pick another --db, or delete it yourself if you are sure"
        )
    for file in (*sidecars, path):
        file.unlink(missing_ok=True)
    return True


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sentiment-sandbox",
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
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
