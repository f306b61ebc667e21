"""The fake Discord's sharding, as Discord does it: IDENTIFY with ``[shard_id, shard_count]``,
each guild's events (and interactions) only to the session of shard
``(guild_id >> 22) % shard_count``, direct messages to shard 0, READY per shard, 4010 for a bad
shard, 4011 when one shard would hold too many guilds, ``GET /gateway/bot``'s shard count.

Real discord.py clients (a plain client per shard, and one ``AutoShardedClient``) over real
sockets, plus a raw websocket for the close codes discord.py would not provoke.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from fakediscord import FakeDiscord, running_client, shard_of

# Two guilds on different shards of two: (id >> 22) % 2 is 0 for A and 1 for B.
GUILD_A = (1_000_000 << 22) | 7
GUILD_B = (1_000_001 << 22) | 7
GENERAL_A, GENERAL_B = 910_000_000_000_000_101, 910_000_000_000_000_201
OWNER, ALICE = 910_000_000_000_000_301, 910_000_000_000_000_302


def test_guilds_are_routed_by_their_id_as_on_discord() -> None:
    assert (shard_of(GUILD_A, 2), shard_of(GUILD_B, 2)) == (0, 1)
    assert shard_of(GUILD_A, 1) == shard_of(GUILD_B, 1) == 0
    # the timestamp part of the id decides, not the low bits
    assert shard_of((5 << 22) | 0x3FFFFF, 4) == 1


class Probe(discord.Client):
    """Records the messages and interactions it gets; answers /ping with its shard."""

    def __init__(self, **options: Any) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.dm_messages = True
        intents.message_content = True
        super().__init__(intents=intents, guild_ready_timeout=0.1, **options)
        self.tree = app_commands.CommandTree(self)
        self.seen: list[int] = []

        @self.tree.command(description="Which shard answers")
        async def ping(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(f"pong from shard {self.shard_id}")

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py sleeps 5 s before every IDENTIFY but the first; no need against a fake."""

    async def setup_hook(self) -> None:
        await self.tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(message.id)


class AutoProbe(discord.AutoShardedClient):
    """One process running several shards."""

    def __init__(self, **options: Any) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        super().__init__(intents=intents, guild_ready_timeout=0.1, **options)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        pass


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(bot_name="Probe") as fake:
        for guild_id, channel_id in ((GUILD_A, GENERAL_A), (GUILD_B, GENERAL_B)):
            guild = fake.add_guild(guild_id, f"guild {guild_id}", owner_id=OWNER)
            guild.add_channel(channel_id, "general")
            guild.add_member(OWNER, "owner")
            guild.add_member(ALICE, "alice")
        yield fake


@contextlib.asynccontextmanager
async def two_shards(fake: FakeDiscord) -> AsyncIterator[tuple[Probe, Probe]]:
    """Two clients, as two processes would be: shard 0 and shard 1 of 2."""
    zero, one = Probe(shard_id=0, shard_count=2), Probe(shard_id=1, shard_count=2)
    async with running_client(zero, fake), running_client(one, fake):
        await fake.wait_for(lambda: fake.live_shards == [(0, 2), (1, 2)])
        yield zero, one


async def test_each_shard_gets_ready_with_only_its_guilds(fake: FakeDiscord) -> None:
    async with two_shards(fake) as (zero, one):
        assert [g.id for g in zero.guilds] == [GUILD_A]
        assert [g.id for g in one.guilds] == [GUILD_B]
        readies = [f for f in fake.gateway_received if f.get("op") == 2]
        assert sorted(tuple(f["d"]["shard"]) for f in readies) == [(0, 2), (1, 2)]
        creates = {(d.guild_id, d.shard) for d in fake.deliveries if d.event == "GUILD_CREATE"}
        assert creates == {(GUILD_A, (0, 2)), (GUILD_B, (1, 2))}
        assert fake.ready.is_set()


async def test_a_guilds_messages_go_only_to_its_shard(fake: FakeDiscord) -> None:
    async with two_shards(fake) as (zero, one):
        in_a = await fake.send_message(GENERAL_A, ALICE, "hello A")
        in_b = await fake.send_message(GENERAL_B, ALICE, "hello B")
        await fake.wait_for(lambda: zero.seen == [in_a] and one.seen == [in_b])
        await fake.wait_idle(idle=0.2)
        assert (zero.seen, one.seen) == ([in_a], [in_b])  # and nothing else, to either
        creates = [d for d in fake.deliveries if d.event == "MESSAGE_CREATE"]
        assert [(d.object_id, d.shard) for d in creates] == [(in_a, (0, 2)), (in_b, (1, 2))]


async def test_direct_messages_go_to_shard_zero(fake: FakeDiscord) -> None:
    async with two_shards(fake) as (zero, one):
        dm = fake.open_dm(ALICE)
        message_id = await fake.send_message(dm, ALICE, "psst")
        await fake.wait_for(lambda: zero.seen == [message_id])
        assert one.seen == []


async def test_an_interaction_goes_to_the_shard_of_its_guild(fake: FakeDiscord) -> None:
    async with two_shards(fake):
        for guild_id, channel_id, shard in ((GUILD_A, GENERAL_A, 0), (GUILD_B, GENERAL_B, 1)):
            interaction = await fake.invoke_slash(
                "ping", user_id=ALICE, channel_id=channel_id, guild_id=guild_id
            )
            reply = await interaction.wait_for_reply()
            assert reply.content == f"pong from shard {shard}"
        routed = [d.shard for d in fake.deliveries if d.event == "INTERACTION_CREATE"]
        assert routed == [(0, 2), (1, 2)]


async def test_a_shard_down_gets_nothing_and_the_other_is_unaffected(fake: FakeDiscord) -> None:
    async with two_shards(fake) as (zero, one):
        with pytest.raises(RuntimeError, match="shards 0, 1 are connected; pass shard_id="):
            await fake.drop_gateway(4000)
        await fake.drop_gateway(4009, shard_id=1)  # session ended: shard 1 identifies again
        assert not fake.ready.is_set()  # not every shard is live
        in_a = await fake.send_message(GENERAL_A, ALICE, "while shard 1 is away")
        await fake.wait_for(lambda: zero.seen == [in_a])
        await fake.wait_for(lambda: fake.live_shards == [(0, 2), (1, 2)] and fake.ready.is_set())
        assert fake.identify_count == 3 and fake.resume_count == 0
        in_b = await fake.send_message(GENERAL_B, ALICE, "back")
        await fake.wait_for(lambda: in_b in one.seen)
        assert in_a not in one.seen and in_b not in zero.seen


async def test_a_dropped_shard_resumes_with_only_its_missed_events(fake: FakeDiscord) -> None:
    async with two_shards(fake) as (zero, one):
        await fake.drop_gateway(4000, shard_id=1)
        missed = await fake.send_message(GENERAL_B, ALICE, "sent while shard 1 was away")
        await fake.wait_for(lambda: fake.resume_count == 1 and fake.ready.is_set())
        await fake.wait_for(lambda: one.seen == [missed])
        assert zero.seen == []


async def test_an_auto_sharded_client_runs_the_recommended_shards(fake: FakeDiscord) -> None:
    fake.recommended_shards = 2
    client = AutoProbe()  # no shard_count: it asks GET /gateway/bot
    async with running_client(client, fake):
        await fake.wait_for(lambda: fake.live_shards == [(0, 2), (1, 2)])
        assert client.shard_count == 2
        assert {g.id: g.shard_id for g in client.guilds} == {GUILD_A: 0, GUILD_B: 1}
    assert fake.requests_to("GET", r"^/gateway/bot$")


async def test_gateway_bot_recommends_one_shard_per_thousand_guilds(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake.api_base_url}/gateway/bot") as response:
            assert (await response.json())["shards"] == 1
        for n in range(999):
            fake.add_guild(GUILD_B + ((n + 1) << 22), f"g{n}", owner_id=OWNER)
        async with http.get(f"{fake.api_base_url}/gateway/bot") as response:
            assert (await response.json())["shards"] == 2  # 1,001 guilds


async def _identify_raw(fake: FakeDiscord, shard: object) -> tuple[int | None, list[Any]]:
    """IDENTIFY on a raw websocket; the close code (None if still open) and the dispatches."""
    frames: list[Any] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(fake.gateway_url) as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["op"] == 10
        data: dict[str, Any] = {"token": "x", "intents": 1, "properties": {}}
        if shard is not None:
            data["shard"] = shard
        await ws.send_str(json.dumps({"op": 2, "d": data}))
        while True:
            message = await ws.receive(timeout=5)
            if message.type != aiohttp.WSMsgType.TEXT:
                return ws.close_code, frames
            frames.append(json.loads(message.data))
            if frames[-1].get("t") == "GUILD_CREATE":
                return None, frames


@pytest.mark.parametrize(
    "shard", [[2, 2], [0, 0], [-1, 2], [0], "0,2", [0, "2"], [True, 2]], ids=str
)
async def test_a_bad_shard_is_closed_with_4010(fake: FakeDiscord, shard: object) -> None:
    code, frames = await _identify_raw(fake, shard)
    assert (code, frames) == (4010, [])
    assert fake.identify_count == 0


async def test_too_many_guilds_on_one_shard_is_closed_with_4011(fake: FakeDiscord) -> None:
    fake.max_guilds_per_shard = 1
    assert await _identify_raw(fake, None) == (4011, [])
    assert (await _identify_raw(fake, [0, 1]))[0] == 4011
    code, frames = await _identify_raw(fake, [1, 2])  # one guild on that shard: accepted
    assert code is None
    ready, create = frames[0], frames[1]
    assert ready["t"] == "READY" and ready["d"]["shard"] == [1, 2]
    assert ready["d"]["guilds"] == [{"id": str(GUILD_B), "unavailable": True}]
    assert create["t"] == "GUILD_CREATE" and create["d"]["id"] == str(GUILD_B)
