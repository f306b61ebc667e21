"""Mood alerts end to end: the real bot against the fake Discord, configured with
``/sentiment-admin alerts ...``, checking every 0.2 s (``SENTIMENT_ALERT_CHECK_S``)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from e2e_support import ALICE, GENERAL, GUILD, NEGATIVE, OWNER, POSITIVE, RANDOM, World, open_world

from bot.alerts import jump_link
from fakediscord import FakeMessage

if TYPE_CHECKING:
    from model import SentimentClassifier

CHECK_S = 0.2
NEGATIVES = (
    NEGATIVE,
    "I hate this so much, it is awful and disgusting.",
    "Worst day ever, everything is horrible and I am furious.",
    "This is garbage, you are all terrible and I hate it here.",
)
POSITIVES = (
    POSITIVE,
    "Thank you so much, this is great and I love it!",
    "What a fantastic game, well played everyone, so happy!",
)


@pytest.fixture
async def world(tmp_path: Path, classifier: SentimentClassifier) -> AsyncIterator[World]:
    async with open_world(tmp_path, classifier, alert_check_s=CHECK_S) as world:
        yield world


async def admin(world: World, subcommand: str, **options: object) -> str:
    reply = await world.slash(
        "sentiment-admin", dict(options), user=OWNER, subcommand=f"alerts {subcommand}"
    )
    assert reply.ephemeral
    return reply.text


async def post(world: World, channel: int, texts: Sequence[str]) -> list[int]:
    """Send ``texts`` in ``channel``; return once the bot has stored all their predictions and
    finished a check of the watched channels that started after that."""
    ids = [await world.fake.send_message(channel, ALICE, t) for t in texts]

    async def stored() -> set[int]:
        return {r.message_id for r in await world.rows(channel_id=channel) if r.message_id}

    deadline = time.monotonic() + 60
    while not set(ids) <= await stored():
        assert time.monotonic() < deadline, "the bot did not store every message"
        await world.fake.wait_idle(idle=0.05, timeout=5)
    await world.bot.alerts.wait_checked(time.monotonic(), timeout=15)
    return ids


def bot_posts(world: World, channel: int) -> list[FakeMessage]:
    """What the bot posted in ``channel`` on its own (not answers to commands)."""
    bot_id = world.fake.bot_user_id
    return [
        m
        for m in world.fake.messages_in(channel)
        if m.author_id == bot_id and m.interaction_id is None
    ]


def alerts_in(world: World, channel: int) -> list[FakeMessage]:
    return [m for m in bot_posts(world, channel) if m.embeds]


def resolved_in(world: World, channel: int) -> list[FakeMessage]:
    return [m for m in bot_posts(world, channel) if m.content.startswith("✅ Resolved")]


def field(message: FakeMessage, name: str) -> str:
    return next(str(f["value"]) for f in message.embeds[0]["fields"] if f["name"] == name)


async def test_a_burst_alerts_once_a_second_burst_is_capped_and_calm_resolves(
    world: World,
) -> None:
    text = await admin(world, "channel", channel=RANDOM)
    assert "Mood alerts will be posted in <#" in text
    text = await admin(
        world, "watch", channel=GENERAL, threshold=50, window=10, minimum=4, cooldown=60
    )
    assert "alert at 50% negative over 10 minutes (at least 4 messages), resolved below 35%" in (
        text
    )

    burst = await post(world, GENERAL, NEGATIVES)
    rows = await world.rows(channel_id=GENERAL)
    assert [r.mood for r in rows] == ["negative"] * 4, "the test's texts must read as negative"
    [alert] = alerts_in(world, RANDOM)
    assert (
        "**100%** negative (4 of 4 messages read in the last 10 minutes)"
        in alert.embeds[0]["description"]
    )
    assert field(alert, "Usual level") == "no messages read in the previous 7 days"
    worst = field(alert, "Most negative")
    linked = [int(m) for m in re.findall(rf"/channels/{GUILD}/{GENERAL}/(\d+)\)", worst)]
    assert len(linked) == 3 and set(linked) <= set(burst)
    assert jump_link(GUILD, GENERAL, linked[0]) in worst
    assert "hate" not in worst  # the guild keeps no text: links alone

    # A second burst while alerting: nothing more (hysteresis).
    await post(world, GENERAL, NEGATIVES)
    assert len(alerts_in(world, RANDOM)) == 1 and not resolved_in(world, RANDOM)

    # Calm: 8 negative of 23 is 35%, not below 35%; one more positive message resolves it.
    await post(world, GENERAL, [POSITIVES[i % 3] for i in range(15)])
    if not resolved_in(world, RANDOM):
        await post(world, GENERAL, POSITIVES[:1])
    [resolved] = resolved_in(world, RANDOM)
    assert f"<#{GENERAL}> has calmed" in resolved.content
    assert jump_link(GUILD, RANDOM, alert.id) in resolved.content

    # A third burst, back above the threshold, inside the channel's 60-minute cap: no alert.
    await post(world, GENERAL, [NEGATIVES[i % 4] for i in range(10)])
    assert len(alerts_in(world, RANDOM)) == 1 and len(resolved_in(world, RANDOM)) == 1
    shown = await admin(world, "show")
    assert f"Alert channel: <#{RANDOM}>" in shown and f"<#{GENERAL}>: alert at 50%" in shown


async def test_a_watched_channel_without_reactions_alerts_with_the_text_the_guild_keeps(
    world: World,
) -> None:
    reply = await world.slash(
        "sentiment-admin", {"enabled": True}, user=OWNER, subcommand="store-text"
    )
    assert "Text storage is on" in reply.text
    refused = await admin(world, "watch", channel=RANDOM, threshold=40, resolve_below=40)
    assert refused == "`resolve_below` (40%) must be below `threshold` (40%): leave it out for 28%."
    text = await admin(world, "watch", channel=RANDOM, threshold=40, minimum=3)
    assert "Automatic reactions are off there" in text
    assert "No alert channel yet" in text
    # No alert channel: nothing is posted, however sour the channel.
    await post(world, RANDOM, NEGATIVES[:3])
    assert not bot_posts(world, GENERAL)
    await admin(world, "channel", channel=GENERAL, hourly_cap=2)
    ids = await post(world, RANDOM, NEGATIVES[3:])
    assert not any(world.fake.active_reactions(i) for i in ids)  # read, never reacted to
    [alert] = alerts_in(world, GENERAL)
    worst = field(alert, "Most negative")
    assert worst.count(f"https://discord.com/channels/{GUILD}/{RANDOM}/") == 3
    assert "> " in worst and "hate" in worst.lower()  # the guild keeps text: shown
    # Opened to everyone in the server's settings, the commands still need Manage Server.
    command = next(c for c in world.fake.synced_commands[GUILD] if c["name"] == "sentiment-admin")
    command["default_member_permissions"] = None
    for subcommand, options in (("unwatch", {"channel": RANDOM}), ("channel", {})):
        reply = await world.slash(
            "sentiment-admin", options, user=ALICE, subcommand=f"alerts {subcommand}"
        )
        assert reply.text == "You need the Manage Server permission to use this command."
    config = await world.bot.storage.alert_config(GUILD)
    assert config.alert_channel_id == GENERAL and RANDOM in config.watches
    shown = await admin(world, "unwatch", channel=RANDOM)
    assert f"No longer watching <#{RANDOM}>" in shown
    # Unwatched and reactions off: its messages are no longer read at all.
    before = len(await world.rows(channel_id=RANDOM))
    await world.fake.send_message(RANDOM, ALICE, NEGATIVE)
    await world.settle()
    assert len(await world.rows(channel_id=RANDOM)) == before
