"""End to end, the real bot against the fake Discord: /my-data hands a member exactly their own
rows; a guild that removed the bot keeps nothing once the grace period has passed."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from e2e_support import ALICE, BOB, GENERAL, GUILD, NEGATIVE, POSITIVE, World, react_to

from bot.storage import ANY_GUILD, HistoryFilter


def exported(reply: Any) -> dict[str, Any]:
    (upload,) = reply.files
    data = gzip.decompress(upload.data) if upload.filename.endswith(".gz") else upload.data
    result: dict[str, Any] = json.loads(data)
    return result


async def test_my_data_holds_exactly_the_members_rows(world: World) -> None:
    alice_message = await react_to(world, POSITIVE, user=ALICE)
    bob_message = await react_to(world, NEGATIVE, user=BOB)
    await world.slash("sentiment", {"text": "alice typed this, lovely"}, user=ALICE)
    await world.slash("sentiment", {"text": "bob typed this, awful", "private": True}, user=BOB)
    # Bob analyses Alice's message: Alice's words, Bob's request
    menu = await world.fake.invoke_message_command(
        "Analyze sentiment",
        target_message_id=alice_message,
        user_id=BOB,
        channel_id=GENERAL,
        guild_id=GUILD,
    )
    await menu.wait_for_reply(timeout=15)

    reply = await world.slash("my-data", user=ALICE)
    assert reply.ephemeral
    assert "Everything the bot holds about you in Test Guild" in reply.text
    assert "2 predictions you made" in reply.text
    assert "1 prediction by others on your messages" in reply.text
    assert "not opted out" in reply.text and "my-data.json" in reply.text
    assert reply.files[0].filename == "my-data.json"
    data = exported(reply)
    assert (data["guild_id"], data["user_id"]) == (str(GUILD), str(ALICE))
    own = data["predictions"]
    assert {(p["source"], p["message_id"]) for p in own} == {
        ("auto", str(alice_message)),
        ("command", None),
    }
    assert [p["message_id"] for p in data["predictions_by_others"]] == [str(alice_message)]
    # every row of Alice's, and none of Bob's, against the database itself
    rows = await world.rows(guild_id=GUILD)
    alices = {r.id for r in rows if ALICE in (r.user_id, r.author_id)}
    assert {p["id"] for p in own + data["predictions_by_others"]} == alices
    text = json.dumps(data)
    for foreign in (str(BOB), str(bob_message), "bob typed this"):
        assert foreign not in text

    bob = exported(await world.slash("my-data", user=BOB))
    assert {p["source"] for p in bob["predictions"]} == {"auto", "command", "context_menu"}
    assert bob["predictions_by_others"] == []
    assert "alice typed this" not in json.dumps(bob) and str(ALICE) not in json.dumps(bob)

    # after /forget-me: nothing left but the opt-out itself
    await world.slash("forget-me", user=ALICE)
    after = await world.slash("my-data", user=ALICE)
    assert "0 predictions you made" in after.text and "; opted out;" in after.text
    data = exported(after)
    assert data["predictions"] == [] and len(data["opt_out"]) == 1


async def test_my_data_too_large_for_discord_is_gzipped_or_refused(world: World) -> None:
    for _ in range(3):
        await world.slash("sentiment", {"text": POSITIVE}, user=ALICE)
    plain = await world.slash("my-data", user=ALICE)
    size = len(plain.files[0].data)
    # a server whose upload limit (the interaction's attachment_size_limit) is below the plain
    # file: gzipped
    world.fake.attachment_size_limit = size - 1
    packed = await world.slash("my-data", user=ALICE)
    assert packed.files[0].filename == "my-data.json.gz"
    assert len(packed.files[0].data) < size
    assert exported(packed)["counts"] == exported(plain)["counts"]
    # below even that: no file, and the way to get it from the operator
    world.fake.attachment_size_limit = 100
    refused = await world.slash("my-data", user=ALICE)
    assert refused.files == [] and "nothing attached" in refused.text
    assert f"sentiment-history --export-user {ALICE} --guild {GUILD}" in refused.text


async def test_a_guild_removed_past_the_grace_period_has_no_rows_left(world: World) -> None:
    bot, fake = world.bot, world.fake
    await react_to(world, POSITIVE, user=ALICE)
    await world.slash("sentiment", {"text": NEGATIVE}, user=BOB)
    await world.bot.storage.flush()
    assert await bot.storage.count(HistoryFilter(guild_id=GUILD)) == 2
    grace = bot.settings.leave_grace_days

    # removed, then added back within the grace period: nothing is deleted
    await fake.remove_bot_from_guild(GUILD)
    await fake.wait_for(lambda: bot.get_guild(GUILD) is None, description="GUILD_DELETE")
    departure = await _wait_for_departure(world)
    assert departure is not None
    await fake.add_bot_to_guild(GUILD)
    await fake.wait_for(lambda: bot.get_guild(GUILD) is not None, description="GUILD_CREATE")
    await _wait_for_departure(world, gone=True)
    await bot.purge(now=datetime.now(UTC) + timedelta(days=grace + 1))
    assert await bot.storage.count(HistoryFilter(guild_id=GUILD)) == 2

    # removed for good: kept through the grace period, then nothing left
    await fake.remove_bot_from_guild(GUILD)
    await _wait_for_departure(world)
    await bot.purge(now=datetime.now(UTC) + timedelta(days=grace - 1))
    assert await bot.storage.count(HistoryFilter(guild_id=GUILD)) == 2
    await bot.purge(now=datetime.now(UTC) + timedelta(days=grace + 1))
    assert await bot.storage.count(HistoryFilter(guild_id=ANY_GUILD)) == 0
    settings = await bot.storage.guild_settings(GUILD)
    assert settings.auto_channels == frozenset()  # reactions in #general were switched on
    assert await bot.storage.guild_departure(GUILD) is None


async def _wait_for_departure(world: World, *, gone: bool = False) -> object:
    async def probe() -> object:
        return await world.bot.storage.guild_departure(GUILD)

    result: object = None
    for _ in range(200):
        result = await probe()
        if (result is None) == gone:
            return result
        await world.fake.wait_idle(idle=0.05, timeout=5)
    raise AssertionError(f"the departure was {'still there' if gone else 'never recorded'}")
