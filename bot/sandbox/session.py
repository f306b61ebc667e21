"""One console session: the real bot driven through the fake Discord, line by line.

:class:`Sandbox` keeps who speaks where and the numbered messages, runs each parsed line on
the fake Discord as that member would (send, delete, slash command, message menu, button) and
waits for the bot's answer, its reaction, or the reason there is none. Imported once the bot
runs: it needs the bot's client (and so torch).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import discord

from bot.client import SentimentBot, _permission_name
from bot.decisions import guild_band, reacts_in
from bot.render import mood_probability, plural, why_silent
from bot.sandbox.display import buttons, echo, plain, print_reply
from bot.sandbox.parsing import (
    HELP,
    MENUS,
    Meta,
    Say,
    Slash,
    build_call,
    command_help,
    command_type,
    parse_line,
)
from bot.sandbox.world import GENERAL_ID, GUILD_ID, YOU_ID, UsageError, World
from bot.storage import Departure, HistoryFilter, StoredPrediction
from fakediscord import (
    ErrorLogCollector,
    FakeDiscord,
    FakeInteraction,
    FakeMessage,
    Reply,
    RunningClient,
)

JSON = dict[str, Any]
T = TypeVar("T")

CLASSIFY_TIMEOUT_S = 30.0  # the first prediction warms the encoder up
REACTION_TIMEOUT_S = 5.0
STORED_TIMEOUT_S = 10.0  # the writer commits every 0.5 s, retrying while the file is busy
REPLY_TIMEOUT_S = 60.0
ALERT_CHECK_TIMEOUT_S = 10.0  # a mood-alert check after a message in a watched channel
MENU = discord.AppCommandType.message
SLASH = discord.AppCommandType.chat_input


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


class Sandbox:
    """One console session: who speaks where, the numbered messages, and the bot's answers."""

    def __init__(
        self,
        running: RunningClient,
        world: World,
        *,
        out_dir: Path,
        log_hint: str,
        errors: ErrorLogCollector,
    ) -> None:
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
        self.posts_seen: set[int] = {m.id for m in self._bot_posts()}  # printed already

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
        self.show_posts()
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
        elif command.name in ("analyze", "correct"):
            await self.analyze(self.message(command.arg), command.name)
        elif command.name == "delete":
            await self.delete(self.message(command.arg))
        elif command.name == "click":
            await self.click(command.arg)
        elif command.name == "leave":
            await self.leave()
        elif command.name == "rejoin":
            await self.rejoin()
        elif command.name == "later":
            await self.later(command.arg)

    def bot_here(self) -> None:
        """UsageError while the bot is not in the sandbox server (after :leave)."""
        if self.world.guild_id in self.fake.world.departed_guilds:
            raise UsageError("the bot is not in this server (:leave); :rejoin adds it back")

    def report_errors(self) -> None:
        for record in self.errors.records[self.errors_seen :]:
            echo(f"  ! the bot logged an error ({record.name}): {record.getMessage()}")
            echo(f"    details in {self.log_hint}")
        self.errors_seen = len(self.errors.records)

    # -- messages ----------------------------------------------------------------------------

    async def say(self, text: str) -> None:
        self.bot_here()
        with user_mistake():
            message_id = await self.fake.send_message(self.channel_id, self.user_id, text)
        self.sent.append(message_id)
        outcome = await self.reaction_to(message_id)
        echo(f"  #{len(self.sent)} · {outcome}")
        if self.bot.storage.watched(self.world.guild_id, self.channel_id):
            # Its prediction is stored: wait for the mood-alert check that follows.
            with contextlib.suppress(TimeoutError):
                await self.bot.alerts.wait_checked(time.monotonic(), ALERT_CHECK_TIMEOUT_S)

    async def reaction_to(self, message_id: int) -> str:
        """Wait until the bot is done with a message; its reaction, or why there is none."""
        storage = self.bot.storage
        settings = await storage.guild_settings(self.world.guild_id)
        channel = "#" + self.world.channel_name(self.channel_id)
        watched = storage.watched(self.world.guild_id, self.channel_id)
        if not reacts_in(settings, self.channel_id) and watched:
            row = await poll(lambda: self._auto_row(message_id), CLASSIFY_TIMEOUT_S)
            read = f"{row.mood}, {mood_probability(row)}" if row else "not stored"
            return (
                f"no reaction: automatic reactions are off in {channel}, but mood alerts "
                f"watch it, so the bot read it ({read})"
            )
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

    def _bot_posts(self) -> list[FakeMessage]:
        """What the bot posted on its own (mood alerts), in every channel: no answers."""
        bot_id = self.fake.bot_user_id
        return [
            m
            for channel_id in self.world.channels.values()
            for m in self.fake.messages_in(channel_id)
            if m.author_id == bot_id and m.interaction_id is None and not m.ephemeral
        ]

    def show_posts(self) -> None:
        """Print what the bot posted on its own since the last line (an alert, a resolved
        line), wherever it posted it."""
        for message in self._bot_posts():
            if message.id in self.posts_seen:
                continue
            self.posts_seen.add(message.id)
            echo(f"  bot posted in #{self.world.channel_name(message.channel_id)}:")
            post = Reply(
                message.content, list(message.embeds), [], [], False, message.id, "response"
            )
            for line in plain(post.text, self.world).splitlines():
                echo(f"  | {line}")

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
        self.bot_here()
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
        self.bot_here()
        command = next(
            (c for c in self.commands() if c["name"] == slash.name and command_type(c) is SLASH),
            None,
        )
        if command is None:
            names = sorted({f"/{c['name']}" for c in self.commands() if command_type(c) is SLASH})
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

    async def analyze(self, message: FakeMessage, meta: str = "analyze") -> None:
        """The message menu that ``:meta`` names (MENUS) on ``message``."""
        self.bot_here()
        menus = [c for c in self.commands() if command_type(c) is MENU]
        menu = next((c for c in menus if MENUS.get(str(c["name"]), "analyze") == meta), None)
        if menu is None:
            raise UsageError(f"the bot has no message menu for :{meta}")
        needed = int(menu.get("default_member_permissions") or 0)
        lacking = needed & ~self.fake.guilds[self.world.guild_id].permissions_of(self.user_id)
        if lacking:  # Discord hides the menu from members without its permissions
            raise UsageError(
                f"{self.world.user_name(self.user_id)} cannot use {menu['name']!r}: it needs "
                f"{permission_names(lacking)}"
            )
        with user_mistake():
            interaction = await self.fake.invoke_message_command(
                str(menu["name"]),
                target_message_id=message.id,
                user_id=self.user_id,
                channel_id=message.channel_id,
                guild_id=self.world.guild_id,
            )
        await self.show_answer(interaction)

    async def click(self, label: str) -> None:
        self.bot_here()
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
        shown = list(buttons(message.components))
        wanted = label.lower()
        button = next((b for b in shown if wanted in str(b.get("label", "")).lower()), None)
        if button is None:
            have = ", ".join(str(b.get("label")) for b in shown)
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
        """Wait for the bot's answer and print what the user sees."""
        try:
            await interaction.wait_for_response(self.fake.interaction_timeout + 2.0)
            reply = await interaction.wait_for_reply(REPLY_TIMEOUT_S)
        except TimeoutError:
            echo(
                "  (no answer: the bot did not respond; on Discord the user would see "
                f"'The application did not respond'. See {self.log_hint})"
            )
            return
        if print_reply(reply, self.world, self.out_dir):
            self.last_buttons = reply.message_id

    # -- the bot leaving the server -----------------------------------------------------------

    async def _departure(self, *, expect: bool) -> Departure | None:
        storage = self.bot.storage

        async def settled() -> Departure | bool | None:
            found = await storage.guild_departure(self.world.guild_id)
            return found if expect else found is None

        found = await poll(settled, STORED_TIMEOUT_S)
        return found if isinstance(found, Departure) else None

    @property
    def guild_name(self) -> str:
        world, guild_id = self.fake.world, self.world.guild_id
        guild = world.guilds.get(guild_id) or world.departed_guilds.get(guild_id)
        return guild.name if guild else "the server"

    async def leave(self) -> None:
        if self.world.guild_id in self.fake.world.departed_guilds:
            raise UsageError("the bot already left this server; :rejoin adds it back")
        await self.fake.remove_bot_from_guild(self.world.guild_id)
        departure = await self._departure(expect=True)
        if departure is None:
            echo(f"  the bot left, but recorded no departure; see {self.log_hint}")
            return
        rows = await self.bot.storage.count(HistoryFilter(guild_id=self.world.guild_id))
        days = self.bot.settings.leave_grace_days
        deleted_on = departure.left_at + timedelta(days=days)
        kept = plural(rows, "prediction")
        echo(
            f"  the bot was removed from {self.guild_name}. It keeps the server's settings "
            f"and {kept} for {days} days (SENTIMENT_LEAVE_GRACE_DAYS), in case it "
            f"is added back, then deletes them all (from {deleted_on:%Y-%m-%d}).",
            "  :rejoin adds it back; :later DAYS runs its purge as if DAYS days had passed",
        )

    async def rejoin(self) -> None:
        if self.world.guild_id not in self.fake.world.departed_guilds:
            raise UsageError("the bot is in this server; :leave removes it first")
        pending = await self.bot.storage.guild_departure(self.world.guild_id)
        await self.fake.add_bot_to_guild(self.world.guild_id)
        await self._departure(expect=False)
        if await self.bot.storage.guild_departure(self.world.guild_id) is not None:
            echo(f"  the bot is back, but its departure is still recorded; see {self.log_hint}")
            return
        rows = await self.bot.storage.count(HistoryFilter(guild_id=self.world.guild_id))
        if pending is None:  # the purge already ran
            echo(f"  the bot is back in {self.guild_name}, starting afresh: its data was deleted")
        else:
            kept = plural(rows, "prediction")
            echo(f"  the bot is back in {self.guild_name}: nothing was deleted ({kept})")

    async def later(self, arg: str) -> None:
        if not arg.isdigit() or not 0 <= int(arg) <= 36500:
            raise UsageError(f"{arg!r} is not a number of days; e.g. :later 31")
        days = int(arg)
        storage, guild_id = self.bot.storage, self.world.guild_id
        flt = HistoryFilter(guild_id=guild_id)
        before = await storage.count(flt)
        await self.bot.purge(now=datetime.now(UTC) + timedelta(days=days))
        after = await storage.count(flt)
        gone = guild_id in self.fake.world.departed_guilds and (
            await storage.guild_departure(guild_id) is None
        )
        what = (
            "the server's settings and all its predictions are deleted"
            if gone
            else f"{before - after} predictions past retention deleted, {after} kept"
        )
        echo(f"  {days} days later, the bot's purge ran: {what}")


def permission_names(value: int) -> str:
    """``Manage Server``: the names a Discord user sees for a permission bitfield."""
    return ", ".join(_permission_name(name) for name, on in discord.Permissions(value) if on)


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
