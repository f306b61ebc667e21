"""End to end: the real SentimentBot (real discord.py, real model, real SQLite) against the fake
Discord on 127.0.0.1, over real HTTP and websocket sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.client import SentimentBot
from bot.config import Secret, Settings
from bot.sandbox.fake_discord import FakeDiscord, running_client
from bot.storage import ANY_GUILD, HistoryFilter, StoredPrediction
from model import SentimentClassifier

GUILD = 900_000_000_000_000_001
GENERAL, RANDOM = 900_000_000_000_000_101, 900_000_000_000_000_102
OWNER, MOD, ALICE, BOB, OTHER_BOT = (900_000_000_000_001_000 + i for i in range(5))
MOD_ROLE = 900_000_000_000_000_201
MANAGE_MESSAGES = 1 << 13
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

POSITIVE = "I absolutely love this, what a wonderful and happy day!"
NEGATIVE = "This is terrible, I hate it, worst experience ever."


@pytest.fixture(scope="module")
def classifier() -> SentimentClassifier:
    return SentimentClassifier.load()


@dataclass
class World:
    fake: FakeDiscord
    bot: SentimentBot

    async def rows(self, **filters: object) -> list[StoredPrediction]:
        await self.bot.storage.flush()
        flt = HistoryFilter(guild_id=filters.pop("guild_id", ANY_GUILD), **filters)
        return await self.bot.storage.history(flt, limit=1000)

    async def slash(
        self,
        name: str,
        options: dict[str, object] | None = None,
        *,
        user: int = ALICE,
        channel: int = GENERAL,
        subcommand: str | None = None,
    ):
        interaction = await self.fake.invoke_slash(
            name,
            options or {},
            user_id=user,
            channel_id=channel,
            guild_id=GUILD,
            subcommand=subcommand,
        )
        return await interaction.wait_for_reply(timeout=15)

    async def settle(self) -> None:
        """Wait until the bot has stopped talking to the fake, and its writer is flushed."""
        await self.fake.wait_idle(idle=0.3, timeout=15)
        await self.bot.storage.flush()


@pytest.fixture
async def world(tmp_path: Path, classifier: SentimentClassifier) -> AsyncIterator[World]:
    async with FakeDiscord() as fake:
        guild = fake.add_guild(GUILD, "Test Guild", owner_id=OWNER)
        guild.add_channel(GENERAL, "general")
        guild.add_channel(RANDOM, "random")
        guild.add_role(MOD_ROLE, "mods", MANAGE_MESSAGES)
        guild.add_member(OWNER, "owner")
        guild.add_member(MOD, "mod", roles=[MOD_ROLE])
        guild.add_member(ALICE, "alice")
        guild.add_member(BOB, "bob")
        guild.add_member(OTHER_BOT, "otherbot", bot=True)
        settings = Settings(
            token=Secret(fake.token or ""), database=tmp_path / "bot.db", dev_guild_id=GUILD
        )
        bot = SentimentBot(settings, classifier=classifier, guild_ready_timeout=0.1)
        async with running_client(bot, fake):
            world = World(fake, bot)
            reply = await world.slash(
                "sentiment-admin",
                {"channel": GENERAL, "enabled": True},
                user=OWNER,
                subcommand="reactions",
            )
            assert "Automatic reactions are on" in reply.text
            yield world


async def test_login_syncs_every_command_to_the_dev_guild(world: World) -> None:
    names = {c["name"] for c in world.fake.synced_commands[GUILD]}
    assert names == {
        "sentiment",
        "Analyze sentiment",
        "history",
        "channel-history",
        "mood",
        "forget-me",
        "opt-in",
        "sentiment-admin",
    }
    admin = next(c for c in world.fake.synced_commands[GUILD] if c["name"] == "sentiment-admin")
    assert int(admin["default_member_permissions"]) == 1 << 5  # Manage Server


@pytest.mark.parametrize(
    ("text", "emoji", "label"), [(POSITIVE, "👍", "positive"), (NEGATIVE, "👎", "negative")]
)
async def test_message_in_enabled_channel_gets_one_reaction_and_one_row(
    world: World, text: str, emoji: str, label: str
) -> None:
    message_id = await world.fake.send_message(GENERAL, ALICE, text)
    await world.fake.wait_for(lambda: bool(world.fake.active_reactions(message_id)))
    await world.settle()
    assert world.fake.active_reactions(message_id) == [emoji]
    assert len(world.fake.requests_to("PUT", rf"/messages/{message_id}/reactions/")) == 1
    rows = await world.rows()
    assert len(rows) == 1
    row = rows[0]
    assert (row.message_id, row.user_id, row.channel_id, row.guild_id) == (
        message_id,
        ALICE,
        GENERAL,
        GUILD,
    )
    assert (row.source, row.label, row.in_band) == ("auto", label, False)
    assert row.model_version == world.bot.classifier.version
    assert row.text is None  # the guild did not turn text storage on


async def test_no_reaction_in_disabled_channel_from_opted_out_member_or_bots(world: World) -> None:
    await world.slash("forget-me", user=BOB)
    ignored = [
        await world.fake.send_message(RANDOM, ALICE, POSITIVE),
        await world.fake.send_message(GENERAL, BOB, POSITIVE),
        await world.fake.send_message(GENERAL, OTHER_BOT, POSITIVE),
    ]
    control = await world.fake.send_message(GENERAL, ALICE, POSITIVE)
    await world.fake.wait_for(lambda: bool(world.fake.active_reactions(control)))
    await world.settle()
    for message_id in ignored:
        assert world.fake.active_reactions(message_id) == []
    assert [r.message_id for r in await world.rows()] == [control]


async def test_neutral_band_logs_but_stays_silent(world: World) -> None:
    await world.slash("sentiment-admin", {"low": 0.0, "high": 1.0}, user=OWNER, subcommand="band")
    message_id = await world.fake.send_message(GENERAL, ALICE, POSITIVE)
    await world.settle()
    assert world.fake.active_reactions(message_id) == []
    (row,) = await world.rows()
    assert row.message_id == message_id and row.in_band and row.mood == "neutral"


async def test_slash_sentiment_replies_and_logs_with_text(world: World) -> None:
    reply = await world.slash("sentiment", {"text": NEGATIVE}, channel=RANDOM)
    assert "Negative" in reply.text and "Confidence" in reply.text
    assert not reply.ephemeral
    private = await world.slash("sentiment", {"text": POSITIVE, "private": True})
    assert "Positive" in private.text and private.ephemeral
    rows = await world.rows()
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


async def test_history_for_oneself_a_moderator_and_refused_for_others(world: World) -> None:
    await world.slash("sentiment", {"text": POSITIVE}, user=ALICE)
    await world.slash("sentiment", {"text": NEGATIVE}, user=BOB)
    await world.bot.storage.flush()

    own = await world.slash("history", user=ALICE)
    assert own.ephemeral and "Your sentiment history" in own.text and "positive" in own.text
    assert "negative" not in own.text.split("history", 1)[1]

    by_mod = await world.slash("history", {"member": ALICE}, user=MOD)
    assert by_mod.ephemeral and "alice's sentiment history" in by_mod.text

    refused = await world.slash("history", {"member": ALICE}, user=BOB)
    assert refused.ephemeral and "Only members with Manage Messages" in refused.text
    assert "sentiment history" not in refused.text

    channel = await world.slash("channel-history", {"channel": GENERAL}, user=MOD)
    assert "2 predictions" in channel.text
    refused_channel = await world.slash("channel-history", {"channel": GENERAL}, user=ALICE)
    assert "Only members with Manage Messages" in refused_channel.text


async def test_deleting_a_message_removes_its_row(world: World) -> None:
    kept = await world.fake.send_message(GENERAL, ALICE, POSITIVE)
    gone = await world.fake.send_message(GENERAL, ALICE, NEGATIVE)
    await world.fake.wait_for(lambda: len(world.fake.reactions) == 2)
    await world.settle()
    await world.fake.delete_message(GENERAL, gone)
    await world.settle()
    assert [r.message_id for r in await world.rows()] == [kept]
    await world.fake.bulk_delete(GENERAL, [kept])
    await world.settle()
    assert await world.rows() == []


async def test_forget_me_erases_and_opts_out(world: World) -> None:
    await world.slash("sentiment", {"text": POSITIVE}, user=ALICE)
    await world.slash("sentiment", {"text": POSITIVE}, user=BOB)
    reply = await world.slash("forget-me", user=ALICE)
    assert reply.ephemeral and "1 predictions about you were erased" in reply.text
    assert {r.user_id for r in await world.rows()} == {BOB}
    message_id = await world.fake.send_message(GENERAL, ALICE, POSITIVE)
    await world.settle()
    assert world.fake.active_reactions(message_id) == []
    assert {r.user_id for r in await world.rows()} == {BOB}
    await world.slash("opt-in", user=ALICE)
    again = await world.fake.send_message(GENERAL, ALICE, POSITIVE)
    await world.fake.wait_for(lambda: bool(world.fake.active_reactions(again)))


async def test_mood_chart_is_a_png_with_data(world: World) -> None:
    for text in (POSITIVE, POSITIVE, NEGATIVE):
        await world.fake.send_message(GENERAL, ALICE, text)
    await world.fake.wait_for(lambda: len(world.fake.reactions) == 3)
    await world.settle()
    reply = await world.slash("mood", {"days": 7})
    assert "positive" in reply.text and "2 (67%)" in reply.text and "3 predictions" in reply.text
    (png,) = reply.files
    assert png.filename == "mood.png" and png.data.startswith(PNG_MAGIC)
    assert len(png.data) > 10_000  # bars and axes drawn, not an empty canvas


async def test_close_during_a_burst_keeps_every_prediction(
    tmp_path: Path, classifier: SentimentClassifier
) -> None:
    """Graceful shutdown: whatever the bot predicted before closing is in SQLite afterwards."""
    from bot.storage import read_count

    async with FakeDiscord() as fake:
        guild = fake.add_guild(GUILD, "Test Guild", owner_id=OWNER)
        guild.add_channel(GENERAL, "general")
        guild.add_member(OWNER, "owner")
        guild.add_member(ALICE, "alice")
        settings = Settings(
            token=Secret(fake.token or ""), database=tmp_path / "bot.db", dev_guild_id=GUILD
        )
        bot = SentimentBot(settings, classifier=classifier, guild_ready_timeout=0.1)
        async with running_client(bot, fake):
            await bot.storage.set_auto_channel(GUILD, GENERAL, True)
            for i in range(40):
                await fake.send_message(GENERAL, ALICE, f"{POSITIVE} number {i}")
            await fake.wait_for(lambda: bot.inference.stats.predicted > 0)
            await bot.close()
        predicted = bot.inference.stats.predicted
    assert predicted > 0
    assert read_count(settings.database, HistoryFilter(guild_id=GUILD)) == predicted
