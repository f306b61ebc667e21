"""The console's language: what a typed line asks for, and how a slash command is filled in.

:func:`parse_line` tells a message, a ``/command`` and a ``:console`` command apart;
:func:`build_call` turns ``/name [sub] [option=value ...] [words]`` into the subcommand and
typed option values the fake Discord takes, from the definitions the bot synced (so the
console knows no command of the bot's and follows the cogs as they change). The ``:help`` text
(:data:`HELP`, :func:`command_help`) describes this same language. Pure functions: no I/O.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import discord
from discord.enums import try_enum

from bot.sandbox.world import UsageError, World

JSON = dict[str, Any]

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
  :correct N                the moderators' menu "Correct sentiment" on message #N; then
                            :click the mood the author meant (the reaction follows)
  :delete N                 delete message #N (the bot must forget its prediction)
  :click LABEL              click a button of the last answer (e.g. :click older)
  :leave                    the owner removes the bot from the server (what it keeps, how long)
  :rejoin                   the owner adds the bot back (nothing is deleted)
  :later DAYS               the bot's purge runs as if DAYS days had passed (retention, and
                            the data of a server it left past SENTIMENT_LEAVE_GRACE_DAYS)
  :as NAME                  speak as another member: {users}
  :in NAME                  switch channel: {channels}
  :help  :quit              this help; exit (also Ctrl-D, Ctrl-C)

Commands the bot synced:
{commands}"""

META_COMMANDS = {
    "analyze": "a message number, e.g. :analyze 1",
    "correct": "a message number, e.g. :correct 1",
    "delete": "a message number, e.g. :delete 1",
    "click": "a button label, e.g. :click older",
    "leave": None,
    "rejoin": None,
    "later": "a number of days, e.g. :later 31",
    "as": "a member name, e.g. :as alice",
    "in": "a channel name, e.g. :in random",
    "help": None,
    "quit": None,
    "exit": None,
}

# The bot's message menus and the console commands that run them.
MENUS = {"Analyze sentiment": "analyze", "Correct sentiment": "correct"}

# Discord's application-command option types, as discord.py names them.
Option = discord.AppCommandOptionType
TRUE_WORDS = ("true", "yes", "on", "y", "1")
FALSE_WORDS = ("false", "no", "off", "n", "0")


def option_type(option: JSON) -> discord.AppCommandOptionType:
    """The Discord type of a synced option (a number discord.py does not know stays unknown)."""
    return try_enum(Option, int(option.get("type", 0)))


def command_type(command: JSON) -> discord.AppCommandType:
    """Whether a synced command is a slash command (``chat_input``) or a menu."""
    return try_enum(discord.AppCommandType, int(command.get("type", 1)))


_SUBCOMMANDS = (Option.subcommand, Option.subcommand_group)


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
    while any(option_type(o) in _SUBCOMMANDS for o in schema):
        subs = {o["name"]: o for o in schema if option_type(o) in _SUBCOMMANDS}
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
    while words and option_type(by_name.get(words[0], {})) is Option.boolean:
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
    return option_type(option) is Option.string and not option.get("choices")


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
    name, kind = option["name"], option_type(option)
    if kind is Option.string:
        return value
    if kind in (Option.integer, Option.number):
        try:
            return int(value) if kind is Option.integer else float(value)
        except ValueError:
            what = "a whole number" if kind is Option.integer else "a number"
            raise UsageError(f"{name}={value}: {name} takes {what}") from None
    if kind is Option.boolean:
        if value.lower() in TRUE_WORDS + FALSE_WORDS:
            return value.lower() in TRUE_WORDS
        raise UsageError(f"{name}={value}: {name} takes yes or no (on/off, true/false)")
    if kind is Option.user:
        return world.find_member(value)
    if kind is Option.channel:
        return world.find_channel(value)
    if kind is Option.role:
        return world.find_role(value)
    if kind is Option.mentionable:
        with contextlib.suppress(UsageError):
            return world.find_member(value)
        return world.find_role(value)
    raise UsageError(f"{name}: options of Discord type {kind.value} cannot be given in the sandbox")


_KINDS = {
    Option.string: "text",
    Option.integer: "whole number",
    Option.number: "number",
    Option.boolean: "yes/no",
    Option.user: "member",
    Option.channel: "#channel",
    Option.role: "role",
    Option.mentionable: "member or role",
    Option.attachment: "file",
}


def describe_options(schema: Sequence[JSON]) -> str:
    """``days (whole number 1..3650), mood (positive|negative|neutral)``."""
    parts = []
    for option in schema:
        choices = option.get("choices")
        kind = (
            "|".join(str(c["value"]) for c in choices)
            if choices
            else _KINDS.get(option_type(option), "?")
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
        if command_type(command) is discord.AppCommandType.message:
            meta = MENUS.get(str(command["name"]), "analyze")
            lines.append(f"  :{meta} N\n      the message menu {command['name']!r}")
            continue
        if command_type(command) is not discord.AppCommandType.chat_input:
            continue
        options = list(command.get("options") or [])
        subs = [o for o in options if option_type(o) is Option.subcommand]
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
