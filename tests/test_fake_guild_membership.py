"""The fake Discord removes the bot from a guild and adds it back, as Discord does: GUILD_DELETE
(no ``unavailable``: a removal, not an outage) and GUILD_CREATE (a join), which the real
discord.py client turns into ``on_guild_remove`` and ``on_guild_join``."""

from __future__ import annotations

import asyncio

import discord
import pytest

from fakediscord import FakeDiscord, running_client

GUILD, OTHER = 900_000_000_000_000_001, 900_000_000_000_000_002
GENERAL = 900_000_000_000_000_101
OWNER, ALICE = 900_000_000_000_000_301, 900_000_000_000_000_302


async def test_removing_and_re_adding_the_bot() -> None:
    async with FakeDiscord(bot_name="Probe") as fake:
        guild = fake.add_guild(GUILD, "Test Guild", owner_id=OWNER)
        guild.add_channel(GENERAL, "general")
        guild.add_member(ALICE, "alice")
        fake.add_guild(OTHER, "Other", owner_id=OWNER)
        intents = discord.Intents.none()
        intents.guilds = True
        client = discord.Client(intents=intents, guild_ready_timeout=0.1)
        async with running_client(client, fake):
            assert {g.id for g in client.guilds} == {GUILD, OTHER}
            removed = asyncio.ensure_future(client.wait_for("guild_remove", timeout=5))
            await fake.remove_bot_from_guild(GUILD)
            assert (await removed).id == GUILD
            assert {g.id for g in client.guilds} == {OTHER}
            # the guild is out of reach while the bot is not in it, with a clear reason
            with pytest.raises(ValueError, match="the bot is not in guild"):
                await fake.send_message(GENERAL, ALICE, "hello?")
            with pytest.raises(ValueError, match="it is in it"):
                await fake.add_bot_to_guild(OTHER)

            joined = asyncio.ensure_future(client.wait_for("guild_join", timeout=5))
            await fake.add_bot_to_guild(GUILD)
            back = await joined
            assert back.id == GUILD and back.get_channel(GENERAL) is not None
            assert {g.id for g in client.guilds} == {GUILD, OTHER}
