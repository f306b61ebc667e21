"""End to end: the real SentimentBot (real discord.py, real model, real SQLite) against the fake
Discord on 127.0.0.1, over real HTTP and websocket sockets."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    ALICE,
    BOB,
    GENERAL,
    GUILD,
    MOD,
    NEGATIVE,
    OTHER_BOT,
    OWNER,
    PNG_MAGIC,
    POSITIVE,
    RANDOM,
    SlowClassifier,
    World,
    buttons,
    open_world,
    react_to,
)

from bot.app import create_bot
from bot.cli import run_bot
from bot.client import SentimentBot
from bot.config import Secret, Settings
from bot.storage import HistoryFilter, Storage, StoredPrediction, read_count
from bot.storage.dsn import Dsn
from fakediscord import FakeDiscord, point_discord_py_at, running_client
from model import SentimentClassifier


@pytest.mark.parametrize(
    ("text", "emoji", "label"), [(POSITIVE, "👍", "positive"), (NEGATIVE, "👎", "negative")]
)
async def test_message_in_enabled_channel_gets_one_reaction_and_one_row(
    any_world: World, text: str, emoji: str, label: str
) -> None:
    message_id = await any_world.fake.send_message(GENERAL, ALICE, text)
    await any_world.fake.wait_for(lambda: bool(any_world.fake.active_reactions(message_id)))
    await any_world.settle()
    assert any_world.fake.active_reactions(message_id) == [emoji]
    assert len(any_world.fake.requests_to("PUT", rf"/messages/{message_id}/reactions/")) == 1
    rows = await any_world.rows()
    assert len(rows) == 1
    row = rows[0]
    assert (row.message_id, row.user_id, row.channel_id, row.guild_id) == (
        message_id,
        ALICE,
        GENERAL,
        GUILD,
    )
    assert (row.source, row.label, row.in_band) == ("auto", label, False)
    assert row.model_version == any_world.bot.classifier.version
    assert row.text is None  # the guild did not turn text storage on


async def test_no_reaction_in_disabled_channel_from_opted_out_member_or_bots(
    any_world: World,
) -> None:
    await any_world.slash("forget-me", user=BOB)
    ignored = [
        await any_world.fake.send_message(RANDOM, ALICE, POSITIVE),
        await any_world.fake.send_message(GENERAL, BOB, POSITIVE),
        await any_world.fake.send_message(GENERAL, OTHER_BOT, POSITIVE),
    ]
    control = await any_world.fake.send_message(GENERAL, ALICE, POSITIVE)
    await any_world.fake.wait_for(lambda: bool(any_world.fake.active_reactions(control)))
    await any_world.settle()
    for message_id in ignored:
        assert any_world.fake.active_reactions(message_id) == []
    assert [r.message_id for r in await any_world.rows()] == [control]


async def test_neutral_band_logs_but_stays_silent(world: World) -> None:
    await world.slash("sentiment-admin", {"low": 0.0, "high": 1.0}, user=OWNER, subcommand="band")
    message_id = await world.fake.send_message(GENERAL, ALICE, POSITIVE)
    # no reaction will come to wait for: wait for the prediction itself
    await world.fake.wait_for(lambda: world.bot.inference.stats.predicted >= 1)
    await world.settle()
    assert world.fake.active_reactions(message_id) == []
    (row,) = await world.rows()
    assert row.message_id == message_id and row.in_band and row.mood == "neutral"


def answer_detail(bot: SentimentBot) -> str:
    """The field every answer of the loaded model has: three bars, or one confidence bar."""
    return "Probabilities" if bot.classifier.three_way else "Confidence"


async def test_slash_sentiment_replies_and_logs_with_text(any_world: World) -> None:
    reply = await any_world.slash("sentiment", {"text": NEGATIVE}, channel=RANDOM)
    assert "Negative" in reply.text and answer_detail(any_world.bot) in reply.text
    assert not reply.ephemeral
    private = await any_world.slash("sentiment", {"text": POSITIVE, "private": True})
    assert "Positive" in private.text and private.ephemeral
    rows = await any_world.rows()
    assert {(r.source, r.label, r.text) for r in rows} == {
        ("command", "negative", NEGATIVE),
        ("command", "positive", POSITIVE),
    }


async def test_context_menu_answers_privately(world: World) -> None:
    message_id = await world.fake.send_message(RANDOM, BOB, NEGATIVE)
    interaction = await world.fake.invoke_message_command(
        "Analyze sentiment",
        target_message_id=message_id,
        user_id=ALICE,
        channel_id=RANDOM,
        guild_id=GUILD,
    )
    reply = await interaction.wait_for_reply(timeout=15)
    assert reply.ephemeral and "Negative" in reply.text
    (row,) = await world.rows()
    assert (row.source, row.message_id, row.user_id) == ("context_menu", message_id, ALICE)


async def test_history_for_oneself_a_moderator_and_refused_for_others(any_world: World) -> None:
    await any_world.slash("sentiment", {"text": POSITIVE}, user=ALICE)
    await any_world.slash("sentiment", {"text": NEGATIVE}, user=BOB)
    await any_world.bot.storage.flush()

    own = await any_world.slash("history", user=ALICE)
    assert own.ephemeral and "Your sentiment history" in own.text and "positive" in own.text
    assert "negative" not in own.text.split("history", 1)[1]

    by_mod = await any_world.slash("history", {"member": ALICE}, user=MOD)
    assert by_mod.ephemeral and "alice's sentiment history" in by_mod.text

    refused = await any_world.slash("history", {"member": ALICE}, user=BOB)
    assert refused.ephemeral and "Only members with Manage Messages" in refused.text
    assert "sentiment history" not in refused.text

    channel = await any_world.slash("channel-history", {"channel": GENERAL}, user=MOD)
    assert "2 predictions" in channel.text
    refused_channel = await any_world.slash("channel-history", {"channel": GENERAL}, user=ALICE)
    assert "Only members with Manage Messages" in refused_channel.text


async def test_deleting_a_message_removes_its_row(any_world: World) -> None:
    kept = await any_world.fake.send_message(GENERAL, ALICE, POSITIVE)
    gone = await any_world.fake.send_message(GENERAL, ALICE, NEGATIVE)
    await any_world.fake.wait_for(lambda: len(any_world.fake.reactions) == 2)
    await any_world.settle()
    await any_world.fake.delete_message(GENERAL, gone)
    await any_world.settle()
    assert [r.message_id for r in await any_world.rows()] == [kept]
    await any_world.fake.bulk_delete(GENERAL, [kept])
    await any_world.settle()
    assert await any_world.rows() == []


async def test_forget_me_erases_and_opts_out(any_world: World) -> None:
    await any_world.slash("sentiment", {"text": POSITIVE}, user=ALICE)
    await any_world.slash("sentiment", {"text": POSITIVE}, user=BOB)
    reply = await any_world.slash("forget-me", user=ALICE)
    assert reply.ephemeral and "erased 1 prediction about you" in reply.text
    assert {r.user_id for r in await any_world.rows()} == {BOB}
    message_id = await any_world.fake.send_message(GENERAL, ALICE, POSITIVE)
    await any_world.settle()
    assert any_world.fake.active_reactions(message_id) == []
    assert {r.user_id for r in await any_world.rows()} == {BOB}
    await any_world.slash("opt-in", user=ALICE)
    again = await any_world.fake.send_message(GENERAL, ALICE, POSITIVE)
    await any_world.fake.wait_for(lambda: bool(any_world.fake.active_reactions(again)))


async def test_mood_chart_is_a_png_with_data(any_world: World) -> None:
    for text in (POSITIVE, POSITIVE, NEGATIVE):
        await any_world.fake.send_message(GENERAL, ALICE, text)
    await any_world.fake.wait_for(lambda: len(any_world.fake.reactions) == 3)
    await any_world.settle()
    reply = await any_world.slash("mood", {"days": 7})
    assert "positive" in reply.text and "2 (67%)" in reply.text and "3 predictions" in reply.text
    (png,) = reply.files
    assert png.filename == "mood.png" and png.data.startswith(PNG_MAGIC)
    assert len(png.data) > 10_000  # bars and axes drawn, not an empty canvas


async def test_close_during_a_burst_keeps_every_prediction(
    database: Path | Dsn, classifier: SentimentClassifier
) -> None:
    """Graceful shutdown: whatever the bot predicted before closing is in the database
    afterwards (SQLite and PostgreSQL)."""
    from bot.storage import read_count

    async with FakeDiscord(bot_name="Sentiment Bot") as fake:
        guild = fake.add_guild(GUILD, "Test Guild", owner_id=OWNER)
        guild.add_channel(GENERAL, "general")
        guild.add_member(OWNER, "owner")
        guild.add_member(ALICE, "alice")
        settings = Settings(token=Secret(fake.token or ""), database=database, dev_guild_id=GUILD)
        bot = await create_bot(settings, classifier=classifier, guild_ready_timeout=0.1)
        async with running_client(bot, fake):
            await bot.storage.set_auto_channel(GUILD, GENERAL, True)
            for i in range(40):
                await fake.send_message(GENERAL, ALICE, f"{POSITIVE} number {i}")
            await fake.wait_for(lambda: bot.inference.stats.predicted > 0)
            await bot.close()
        predicted = bot.inference.stats.predicted
        assert predicted > 0
        assert read_count(settings.database, HistoryFilter(guild_id=GUILD)) == predicted

        # A restart carries on with the same database: settings kept, new rows added.
        again = await create_bot(settings, classifier=classifier, guild_ready_timeout=0.1)
        async with running_client(again, fake):
            message_id = await fake.send_message(GENERAL, ALICE, POSITIVE)
            await fake.wait_for(lambda: bool(fake.active_reactions(message_id)))
            await again.storage.flush()
    assert read_count(settings.database, HistoryFilter(guild_id=GUILD)) == predicted + 1


# --------------------------------------------------------------------------------------------
# Slow model, reaction faults, guild settings, pagination, permissions, SIGTERM


def bot_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "bot.cogs.sentiment" and r.levelno >= logging.WARNING
    ]


async def test_slow_model_defers_then_answers_with_a_followup(
    tmp_path: Path, classifier: SentimentClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.interactions.DEFER_AFTER_S", 0.2)
    async with open_world(tmp_path, SlowClassifier(classifier, delay=0.8)) as world:
        for private in (False, True):
            interaction = await world.fake.invoke_slash(
                "sentiment",
                {"text": NEGATIVE, "private": private},
                user_id=ALICE,
                channel_id=GENERAL,
                guild_id=GUILD,
            )
            await interaction.wait_for_response()
            assert interaction.response_type == 5  # deferred: the user sees "thinking..."
            assert interaction.reply() is None
            reply = await interaction.wait_for_reply(timeout=15)
            assert reply.via == "followup"
            assert "Negative" in reply.text and answer_detail(world.bot) in reply.text
            assert reply.ephemeral is private
        rows = await world.rows()
        assert [(r.source, r.label, r.text) for r in rows] == [
            ("command", "negative", NEGATIVE)
        ] * 2


async def test_forbidden_reactions_warn_once_and_later_messages_still_get_reactions(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.cogs.sentiment")
    fault = world.fake.fail_next("PUT", r"/reactions/", 403, times=3)
    refused = [
        await world.fake.send_message(GENERAL, ALICE, f"{POSITIVE} (take {i})") for i in range(3)
    ]
    await world.fake.wait_for(lambda: fault.hits == 3, description="three refused reactions")
    later = await react_to(world, NEGATIVE)
    await world.settle()
    assert not world.bot.is_closed()
    warnings = bot_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert f"cannot react in channel {GENERAL}" in warnings[0]
    assert "Add Reactions" in warnings[0]
    for message_id in refused:
        assert world.fake.active_reactions(message_id) == []
    assert world.fake.active_reactions(later) == ["👎"]
    assert sorted(r.message_id for r in await world.rows()) == sorted([*refused, later])


async def test_message_deleted_before_the_reaction_is_not_a_warning(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Discord answers 404 when the message went away between the prediction and the reaction.

    (The fake still has the message, so the row stays; a real deletion also removes the row:
    test_deleting_a_message_removes_its_row.)"""
    caplog.set_level(logging.DEBUG, logger="bot.cogs.sentiment")
    fault = world.fake.fail_next("PUT", r"/reactions/", 404)
    gone = await world.fake.send_message(GENERAL, ALICE, POSITIVE)
    await world.fake.wait_for(lambda: fault.hits == 1, description="the 404 on the reaction")
    await world.settle()
    assert bot_warnings(caplog) == []
    assert any(f"message {gone} was deleted" in r.getMessage() for r in caplog.records)
    assert world.fake.active_reactions(gone) == []
    (row,) = await world.rows()
    assert (row.message_id, row.label) == (gone, "positive")
    await react_to(world, POSITIVE)  # still reacting


async def test_rate_limited_reaction_is_retried_and_lands_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fault = world.fake.fail_next("PUT", r"/reactions/", 429, retry_after=0.2)
    message_id = await react_to(world, POSITIVE)
    await world.settle()
    assert fault.hits == 1
    puts = world.fake.requests_to("PUT", rf"/messages/{message_id}/reactions/")
    assert [r.status for r in puts] == [429, 204]
    assert [r.emoji for r in world.fake.reactions if r.message_id == message_id] == ["👍"]
    assert bot_warnings(caplog) == []  # discord.py handled it; the bot saw a success
    assert any("rate limited" in r.getMessage() for r in caplog.records if r.name == "discord.http")
    (row,) = await world.rows()
    assert row.message_id == message_id


async def test_store_text_keeps_the_text_of_automatic_predictions_from_then_on(
    world: World,
) -> None:
    before = await react_to(world, POSITIVE)
    reply = await world.slash(
        "sentiment-admin", {"enabled": True}, user=OWNER, subcommand="store-text"
    )
    assert reply.ephemeral and "Text storage is on" in reply.text
    after = await react_to(world, NEGATIVE)
    texts = {r.message_id: r.text for r in await world.rows()}
    assert texts == {before: None, after: NEGATIVE}
    off = await world.slash(
        "sentiment-admin", {"enabled": False}, user=OWNER, subcommand="store-text"
    )
    assert "Text storage is off" in off.text
    again = await react_to(world, NEGATIVE)
    assert {r.message_id: r.text for r in await world.rows()}[again] is None


async def test_custom_emoji_is_used_for_the_next_reactions(world: World) -> None:
    reply = await world.slash("sentiment-admin", {"positive": "🎉"}, user=OWNER, subcommand="emoji")
    assert reply.ephemeral and "Emoji updated" in reply.text and "🎉 / 👎" in reply.text
    positive = await react_to(world, POSITIVE)
    negative = await react_to(world, NEGATIVE)
    assert world.fake.active_reactions(positive) == ["🎉"]
    assert world.fake.active_reactions(negative) == ["👎"]
    keycap = await world.slash("sentiment-admin", {"negative": "1️⃣"}, user=OWNER, subcommand="emoji")
    assert "🎉 / 1️⃣" in keycap.text


@pytest.mark.parametrize("bad", ["hello", ":)", "👍 👎", "<3", ":tada:"])
async def test_invalid_emoji_is_refused_and_nothing_changes(world: World, bad: str) -> None:
    await world.slash("sentiment-admin", {"positive": "🎉"}, user=OWNER, subcommand="emoji")
    reply = await world.slash(
        "sentiment-admin", {"positive": bad, "negative": "😡"}, user=OWNER, subcommand="emoji"
    )
    assert reply.ephemeral
    assert reply.text.startswith(f"{bad!r} is not an emoji")
    assert "Use a Unicode emoji such as 👍" in reply.text
    settings = await world.bot.storage.guild_settings(GUILD)
    assert (settings.positive_emoji, settings.negative_emoji) == ("🎉", "👎")
    message_id = await react_to(world, POSITIVE)
    assert world.fake.active_reactions(message_id) == ["🎉"]


async def test_history_pages_with_buttons_only_for_the_person_who_asked(world: World) -> None:
    sent = [
        await world.fake.send_message(GENERAL, ALICE, f"{POSITIVE} (number {i})") for i in range(12)
    ]
    await world.fake.wait_for(lambda: all(world.fake.active_reactions(m) for m in sent), timeout=15)
    await world.settle()

    first = await world.slash("history", user=ALICE)
    assert first.ephemeral and "page 1 of 2 · 12 predictions" in first.text
    assert first.text.count("**positive**") == 10
    pager = buttons(first)
    assert set(pager) == {"◀ Newer", "Older ▶"}
    assert pager["◀ Newer"].get("disabled") and not pager["Older ▶"].get("disabled")

    click = await world.fake.click_button(
        first.message_id,
        pager["Older ▶"]["custom_id"],
        user_id=ALICE,
        channel_id=GENERAL,
        guild_id=GUILD,
    )
    second = await click.wait_for_reply()
    assert click.response_type == 7 and second.via == "update"
    assert second.message_id == first.message_id
    assert "page 2 of 2 · 12 predictions" in second.text
    assert second.text.count("**positive**") == 2
    pager = buttons(second)
    assert not pager["◀ Newer"].get("disabled") and pager["Older ▶"].get("disabled")

    # Someone else cannot turn the pages: a private explanation, and the message is unchanged.
    other = await world.fake.click_button(
        first.message_id,
        pager["◀ Newer"]["custom_id"],
        user_id=BOB,
        channel_id=GENERAL,
        guild_id=GUILD,
    )
    refusal = await other.wait_for_reply()
    assert other.response_type == 4 and refusal.ephemeral
    assert "Only the person who asked" in refusal.text
    assert refusal.message_id != first.message_id
    assert "page 2 of 2" in world.fake.messages[first.message_id].embeds[0]["footer"]["text"]


async def test_admin_commands_need_manage_server(world: World) -> None:
    # Discord itself hides the command from members without Manage Server
    # (default_member_permissions), so the fake refuses to send the interaction at all.
    with pytest.raises(PermissionError, match="cannot see command 'sentiment-admin'"):
        await world.fake.invoke_slash(
            "sentiment-admin",
            {"positive": "🎉"},
            user_id=ALICE,
            channel_id=GENERAL,
            guild_id=GUILD,
            subcommand="emoji",
        )
    # A server admin can open the command to everyone (Server Settings > Integrations): the
    # bot's own runtime check must still refuse a member without Manage Server.
    admin = next(c for c in world.fake.synced_commands[GUILD] if c["name"] == "sentiment-admin")
    admin["default_member_permissions"] = None
    for subcommand, options in [
        ("emoji", {"positive": "🎉"}),
        ("store-text", {"enabled": True}),
        ("reactions", {"channel": RANDOM, "enabled": True}),
        ("show", {}),
    ]:
        reply = await world.slash("sentiment-admin", options, user=ALICE, subcommand=subcommand)
        assert reply.ephemeral
        assert reply.text == "You need the Manage Server permission to use this command."
    settings = await world.bot.storage.guild_settings(GUILD)
    assert settings.positive_emoji == "👍" and not settings.store_auto_text
    assert settings.auto_channels == frozenset({GENERAL})
    # The moderator has Manage Messages but not Manage Server: refused too; the owner is not.
    refused = await world.slash("sentiment-admin", user=MOD, subcommand="show")
    assert "Manage Server" in refused.text
    shown = await world.slash("sentiment-admin", user=OWNER, subcommand="show")
    assert "Sentiment Bot settings" in shown.text


@pytest.fixture
def host_sigterm_handler() -> Iterator[object]:
    """A SIGTERM handler of the "host process" (the test) that run_bot must replace while it
    runs and restore afterwards; it also keeps a stray SIGTERM from killing pytest."""

    def handler(signum: int, frame: object) -> None:
        raise AssertionError("SIGTERM reached the host's handler, not run_bot's")

    previous = signal.signal(signal.SIGTERM, handler)
    yield handler
    signal.signal(signal.SIGTERM, previous)


async def test_sigterm_stops_run_bot_cleanly_and_keeps_every_prediction(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    host_sigterm_handler: object,
) -> None:
    """The production entry point (run_bot, real model loading) against the fake, then SIGTERM."""
    database = tmp_path / "bot.db"
    storage = await Storage.open(database)
    await storage.set_auto_channel(GUILD, GENERAL, True)
    await storage.close()

    bots: list[SentimentBot] = []

    class RecordedBot(SentimentBot):  # only remembers itself, to read its counters afterwards
        def __init__(self, settings: Settings, **options: Any) -> None:
            super().__init__(settings, **options)
            bots.append(self)

    monkeypatch.setattr("bot.app.SentimentBot", RecordedBot)
    caplog.set_level(logging.INFO, logger="bot")
    async with FakeDiscord(bot_name="Sentiment Bot") as fake:
        guild = fake.add_guild(GUILD, "Test Guild", owner_id=OWNER)
        guild.add_channel(GENERAL, "general")
        guild.add_member(OWNER, "owner")
        guild.add_member(ALICE, "alice")
        settings = Settings(token=Secret(fake.token or ""), database=database, dev_guild_id=GUILD)
        with point_discord_py_at(fake):
            task = asyncio.create_task(run_bot(settings), name="run_bot")
            fake.watch_task(task)
            try:
                await fake.wait_for(
                    lambda: fake.ready.is_set() and GUILD in fake.synced_commands,
                    timeout=60,
                    description="run_bot to connect and sync its commands",
                )
                assert signal.getsignal(signal.SIGTERM) is not host_sigterm_handler
                first = [
                    await fake.send_message(GENERAL, ALICE, f"{text} ({i})")
                    for i, text in enumerate([POSITIVE, NEGATIVE, POSITIVE])
                ]
                await fake.wait_for(lambda: all(fake.active_reactions(m) for m in first))
                for i in range(5):  # still on their way when the signal comes
                    await fake.send_message(GENERAL, ALICE, f"{NEGATIVE} (late {i})")
                os.kill(os.getpid(), signal.SIGTERM)
                await asyncio.wait_for(asyncio.shield(task), timeout=30)
            finally:
                fake.unwatch_task(task)
                if not task.done():
                    task.cancel()
    assert task.result() is None
    assert signal.getsignal(signal.SIGTERM) is host_sigterm_handler  # restored by run_bot
    (closed,) = bots
    assert closed.is_closed()
    predicted = closed.inference.stats.predicted
    assert predicted >= len(first)
    assert read_count(database, HistoryFilter(guild_id=GUILD)) == predicted
    assert any("signal received: shutting down" in r.getMessage() for r in caplog.records)
    # Messages already being handled were finished, not refused half-way; nothing failed.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_sigterm_while_the_model_loads_stops_run_bot_without_error(
    tmp_path: Path,
    classifier: SentimentClassifier,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    host_sigterm_handler: object,
) -> None:
    """Ctrl-C / SIGTERM during start-up: a quiet exit, not a traceback, and nothing half-open."""
    loading, release = threading.Event(), threading.Event()

    def slow_load(*args: object, **kwargs: object) -> SentimentClassifier:
        loading.set()
        release.wait(timeout=30)
        return classifier

    monkeypatch.setattr("bot.app.SentimentClassifier.load", slow_load)
    database = tmp_path / "bot.db"
    async with FakeDiscord(bot_name="Sentiment Bot") as fake:
        guild = fake.add_guild(GUILD, "Test Guild", owner_id=OWNER)
        guild.add_channel(GENERAL, "general")
        guild.add_member(OWNER, "owner")
        settings = Settings(token=Secret(fake.token or ""), database=database, dev_guild_id=GUILD)
        with point_discord_py_at(fake):
            task = asyncio.create_task(run_bot(settings), name="run_bot")
            try:
                assert await asyncio.to_thread(loading.wait, 30)
                os.kill(os.getpid(), signal.SIGTERM)
                await asyncio.wait_for(asyncio.shield(task), timeout=10)
            finally:
                release.set()
                if not task.done():
                    task.cancel()
    assert task.result() is None
    assert fake.synced_commands == {} and fake.identify_count == 0
    # The database is checked before the model loads (the cheap check first), and was closed
    # on the way out: its write-ahead log is gone.
    assert database.exists() and not Path(f"{database}-wal").exists()
    assert signal.getsignal(signal.SIGTERM) is host_sigterm_handler
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_history_and_mood_include_a_prediction_made_a_moment_ago(any_world: World) -> None:
    """The writer batches inserts; a query right after /sentiment still sees its row."""
    await any_world.slash("sentiment", {"text": NEGATIVE}, user=ALICE)
    own = await any_world.slash("history", user=ALICE)
    assert "negative" in own.text and "1 prediction" in own.text
    mood = await any_world.slash("mood", {"days": 1}, user=ALICE)
    assert "1 (100%)" in mood.text


# --------------------------------------------------------------------------------------------
# The three-way model: neutral text, text in another language, three probabilities

PLAIN = "the meeting is at 3pm in room 204"
FRENCH = "je ne sais pas ce que tu veux dire, mais c'est la vie"


async def silent_row(world: World, text: str) -> tuple[int, StoredPrediction]:
    """Post ``text`` in #general (reactions on), wait until it is classified and logged; the
    message id and its row. The control message after it is reacted to: the bot is alive."""
    message_id = await world.fake.send_message(GENERAL, ALICE, text)
    await world.fake.wait_for(lambda: world.bot.inference.stats.predicted >= 1)
    await react_to(world, POSITIVE)  # the next message gets its reaction...
    await world.settle()  # ...and nothing more comes for the first
    (row,) = [r for r in await world.rows() if r.message_id == message_id]
    return message_id, row


async def test_plainly_neutral_message_gets_no_reaction(world: World) -> None:
    message_id, row = await silent_row(world, PLAIN)
    assert world.fake.active_reactions(message_id) == []
    assert world.fake.requests_to("PUT", rf"/messages/{message_id}/reactions/") == []
    assert row.read and row.mood == "neutral" and row.in_band
    if world.bot.classifier.three_way:
        assert row.probabilities is not None and row.label == "neutral", row


async def test_message_in_another_language_is_not_read_and_gets_no_reaction(
    world: World,
) -> None:
    message_id, row = await silent_row(world, FRENCH)
    assert world.fake.active_reactions(message_id) == []
    assert (row.unread, row.label, row.in_band, row.probabilities) == (
        "language:fr",
        "neutral",
        True,
        None,
    )
    assert not row.read
    # asked about it, the bot says why in one line; the history says "not read"
    reply = await world.slash("sentiment", {"text": FRENCH})
    assert reply.text == (
        "😐 Not read: this looks like French (fr), and the model reads English only."
    )
    history = await world.slash("history", user=ALICE)
    assert "**not read** (French (fr))" in history.text
    mood = await world.slash("mood", {"days": 1}, user=ALICE)
    assert "2 messages not read" in mood.text and "1 prediction" in mood.text


async def test_slash_sentiment_shows_three_probabilities(world: World) -> None:
    if not world.bot.classifier.three_way:
        pytest.skip("the loaded model is binary")
    reply = await world.slash("sentiment", {"text": POSITIVE})
    (embed,) = reply.embeds
    assert embed["title"] == "😊 Positive"
    (field,) = [f for f in embed["fields"] if f["name"] == "Probabilities"]
    lines = field["value"].strip("`\n").splitlines()
    assert [line.split()[0] for line in lines] == ["negative", "neutral", "positive"]
    (row,) = await world.rows()
    assert row.probabilities is not None and row.unread is None
    shown = [int(line.split()[-1].rstrip("%")) for line in lines]
    assert shown == [round(p * 100) for p in row.probabilities]
    assert shown[2] == max(shown) and row.mood == "positive"


async def test_admin_show_names_the_models_thresholds(world: World) -> None:
    shown = await world.slash("sentiment-admin", user=OWNER, subcommand="show")
    low, high = world.bot.classifier.band
    if world.bot.classifier.three_way:
        assert (
            f"Reacts: 👍 when P(positive) ≥ {high:.2f}, 👎 when P(negative) ≥ {1 - low:.2f} "
            "(model's)"
        ) in shown.text
        assert "Neutral band" not in shown.text
    else:
        assert f"Neutral band: {low:.2f} … {high:.2f} (model's)" in shown.text
    changed = await world.slash(
        "sentiment-admin", {"low": 0.25, "high": 0.8}, user=OWNER, subcommand="band"
    )
    if world.bot.classifier.three_way:
        assert "Reaction thresholds updated." in changed.text
        assert "👍 when P(positive) ≥ 0.80, 👎 when P(negative) ≥ 0.75" in changed.text
    else:
        assert "Neutral band updated." in changed.text and "0.25 … 0.80" in changed.text
