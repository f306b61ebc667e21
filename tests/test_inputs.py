"""Options out of their declared ranges, sent as a forged client could (Discord checks ranges,
lengths and choices only in its own clients): the bot checks them itself and answers one
private line naming the option and what it takes; nothing is stored, nothing is logged as an
error. And the reaction emoji: exactly one real emoji."""

from __future__ import annotations

import math
from typing import Any

import pytest
from e2e_support import ALICE, GENERAL, GUILD, MOD, OWNER, POSITIVE, World, react_to

from bot.cogs.admin import emoji_problem
from bot.cogs.options import band_problem

CLIENT_SIDE_CHECKS = ("min_value", "max_value", "min_length", "max_length", "choices")


def forge(world: World, name: str) -> None:
    """Remove what Discord's clients check from the synced command ``name``: the fake then
    sends any value, as a modified client or a raw API call could."""

    def strip(options: list[dict[str, Any]]) -> None:
        for option in options:
            for key in CLIENT_SIDE_CHECKS:
                option.pop(key, None)
            strip(option.get("options") or [])

    (command,) = [c for c in world.fake.synced_commands[GUILD] if c["name"] == name]
    strip(command.get("options") or [])


def assert_refused(reply: Any, *expected: str) -> None:
    assert reply.ephemeral, reply.text
    assert reply.text.count("\n") == 0, reply.text  # one line
    for part in expected:
        assert part in reply.text, reply.text


async def test_band_and_retention_out_of_range_are_refused_and_nothing_changes(
    world: World,
) -> None:
    forge(world, "sentiment-admin")
    admin = {"user": OWNER, "subcommand": "band"}
    for low, high, expected in [
        (0.9, 0.1, "`low` must be a number from 0 to 0.5 (got 0.9)"),
        (0.4, 0.1, "`high` must be a number from 0.5 to 1 (got 0.1)"),
        (0.5, 0.5, "`low` and `high` must be 0 ≤ low ≤ 0.5 ≤ high ≤ 1 with low below high"),
        (-0.5, 0.7, "`low` must be a number from 0 to 0.5 (got -0.5)"),
        (0.2, 1.5, "`high` must be a number from 0.5 to 1 (got 1.5)"),
    ]:
        reply = await world.slash("sentiment-admin", {"low": low, "high": high}, **admin)
        assert_refused(reply, expected)
    for days, named in [(-5, "-5"), (10**12, str(10**12))]:
        reply = await world.slash(
            "sentiment-admin", {"days": days}, user=OWNER, subcommand="retention"
        )
        assert_refused(reply, "`days`", "from 0 to 36500", f"(got {named})")
    settings = await world.bot.storage.guild_settings(GUILD)
    assert settings.band is None and settings.retention_days is None  # nothing stored

    # the edges still work
    ok = await world.slash("sentiment-admin", {"low": 0.5, "high": 1.0}, **admin)
    assert "updated" in ok.text
    ok = await world.slash("sentiment-admin", {"days": 36500}, user=OWNER, subcommand="retention")
    assert "Retention updated" in ok.text
    settings = await world.bot.storage.guild_settings(GUILD)
    assert settings.band == (0.5, 1.0) and settings.retention_days == 36500


async def test_days_out_of_range_are_refused_by_mood_and_history(world: World) -> None:
    for name in ("mood", "history", "channel-history"):
        forge(world, name)
    await world.slash("sentiment", {"text": POSITIVE}, user=ALICE)
    for days in (0, -1, 10**12):
        mood = await world.slash("mood", {"days": days}, user=ALICE)
        assert_refused(mood, "`days` must be a whole number from 1 to 3650", f"(got {days})")
        assert "last" not in mood.text and not mood.files
        history = await world.slash("history", {"days": days}, user=ALICE)
        assert_refused(history, "`days` must be a whole number from 1 to 3650")
        channel = await world.slash("channel-history", {"channel": GENERAL, "days": days}, user=MOD)
        assert_refused(channel, "`days` must be a whole number from 1 to 3650")
    forged = await world.slash("history", {"mood": "happy"}, user=ALICE)
    assert_refused(forged, "`mood` must be one of positive, negative, neutral")
    # in range, the same commands answer
    assert "Mood in" in (await world.slash("mood", {"days": 3650}, user=ALICE)).text
    assert "history" in (await world.slash("history", {"days": 3650}, user=ALICE)).text


async def test_sentiment_text_longer_than_declared_is_refused_unstored(world: World) -> None:
    forge(world, "sentiment")
    reply = await world.slash("sentiment", {"text": "good " * 1000}, user=ALICE)
    assert_refused(reply, "`text` must be 1 to 4000 characters long (got 5000)")
    assert await world.rows() == []


@pytest.mark.parametrize(
    "bad", ["\u200b", "→", "👍👎", "👍\u200b", "a", "", "🇫", "<:party:12>", "👍\u200d👎"]
)
def test_emoji_problem_refuses_what_is_not_exactly_one_emoji(bad: str) -> None:
    assert emoji_problem(bad) is not None and "is not an emoji" in str(emoji_problem(bad))


@pytest.mark.parametrize(
    "good",
    ["👍", "🎉", "👍🏽", "🏳️‍🌈", "👨‍👩‍👧", "🇫🇷", "1️⃣", "❤️", " 😡 ", "<:party:123456789012345678>"],
)
def test_emoji_problem_accepts_one_emoji(good: str) -> None:
    assert emoji_problem(good) is None


def test_band_problem() -> None:
    assert band_problem(0.4, 0.6) is None and band_problem(0.0, 1.0) is None
    assert band_problem(0.5, 1.0) is None and band_problem(0.0, 0.5) is None
    for low, high in [(0.9, 0.1), (0.5, 0.5), (0.6, 0.9), (0.1, 0.4), (math.nan, 0.7)]:
        assert band_problem(low, high) is not None


async def test_emoji_setting_accepts_exactly_one_real_emoji(world: World) -> None:
    emoji = {"user": OWNER, "subcommand": "emoji"}
    for bad in ("\u200b", "→", "👍👎"):
        reply = await world.slash("sentiment-admin", {"positive": bad}, **emoji)
        assert_refused(reply, f"{bad!r} is not an emoji")
    # one good and one bad: refused as a whole, nothing stored
    reply = await world.slash("sentiment-admin", {"positive": "🎉", "negative": "→"}, **emoji)
    assert_refused(reply, "'→' is not an emoji")
    settings = await world.bot.storage.guild_settings(GUILD)
    assert (settings.positive_emoji, settings.negative_emoji) == ("👍", "👎")

    # A custom emoji of another server: Discord answers 10014 Unknown Emoji for this one.
    world.fake.fail_next(
        "GET", rf"/guilds/{GUILD}/emojis/", 404, json={"message": "Unknown Emoji", "code": 10014}
    )
    foreign = "<:elsewhere:123456789012345678>"
    reply = await world.slash("sentiment-admin", {"positive": foreign}, **emoji)
    assert_refused(reply, f"{foreign!r} is not an emoji of this server")
    assert (await world.bot.storage.guild_settings(GUILD)).positive_emoji == "👍"

    # One of this server's (the fake keeps no emoji: Discord's answer is scripted here).
    world.fake.fail_next(
        "GET",
        rf"/guilds/{GUILD}/emojis/",
        200,
        json={"id": "234567890123456789", "name": "party", "animated": False, "roles": [],
              "require_colons": True, "managed": False, "available": True},
    )  # fmt: skip
    reply = await world.slash(
        "sentiment-admin", {"positive": "<:party:234567890123456789>", "negative": "👎🏽"}, **emoji
    )
    assert reply.ephemeral and "Emoji updated" in reply.text
    settings = await world.bot.storage.guild_settings(GUILD)
    assert (settings.positive_emoji, settings.negative_emoji) == (
        "<:party:234567890123456789>",
        "👎🏽",
    )
    message_id = await react_to(world, POSITIVE)
    assert world.fake.active_reactions(message_id) == ["party:234567890123456789"]
