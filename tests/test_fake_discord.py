"""The fake Discord drives the real, unpatched discord.py client over real sockets.

A small probe bot (defined here, not the product bot) logs in, syncs commands, reacts to
messages and answers slash commands, a context menu and buttons; the tests check what a user
of Discord would see, plus the fault injection and reconnect paths the e2e tests rely on.
"""

from __future__ import annotations

import asyncio
import io
import json
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from fakediscord import (
    ClientDiedError,
    FakeDiscord,
    FakeEvent,
    FakeFile,
    FakeInteraction,
    StrictModeError,
    point_discord_py_at,
    running_client,
)

GUILD = 900_000_000_000_000_001
GENERAL = 900_000_000_000_000_101
RANDOM = 900_000_000_000_000_102
MODS = 900_000_000_000_000_201
OWNER = 900_000_000_000_000_301
ALICE = 900_000_000_000_000_302
BOB = 900_000_000_000_000_303
AS_ALICE = {"user_id": ALICE, "channel_id": GENERAL, "guild_id": GUILD}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(32))

AppCommand = app_commands.Command[Any, ..., Any] | app_commands.Group | app_commands.ContextMenu


class Pager(discord.ui.View):
    """Two pages; "prev" is disabled on the first."""

    def __init__(self, page: int = 1) -> None:
        super().__init__(timeout=60)
        self.page = page
        self.prev.disabled = page == 1
        self.next.disabled = page == 2

    @discord.ui.button(label="Prev", custom_id="pager:prev")
    async def prev(
        self, interaction: discord.Interaction, button: discord.ui.Button[Pager]
    ) -> None:
        await interaction.response.edit_message(content="page 1", view=Pager(1))

    @discord.ui.button(label="Next", custom_id="pager:next")
    async def next(
        self, interaction: discord.Interaction, button: discord.ui.Button[Pager]
    ) -> None:
        await interaction.response.edit_message(content="page 2", view=Pager(2))


class Picker(discord.ui.View):
    @discord.ui.select(custom_id="picker", options=[discord.SelectOption(label=x) for x in "abc"])
    async def pick(
        self, interaction: discord.Interaction, select: discord.ui.Select[Picker]
    ) -> None:
        await interaction.response.send_message(f"picked {select.values}", ephemeral=True)


class ProbeBot(commands.Bot):
    """Reacts 👍 to messages containing "good"; a few app commands for each reply path."""

    def __init__(self, *, members: bool = False, message_content: bool = True) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.message_content = message_content
        intents.members = members
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            guild_ready_timeout=0.1,
        )
        self.seen: list[discord.Message] = []
        self.errors: list[Exception] = []

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py sleeps 5 s before every IDENTIFY but the first; no need against a fake."""

    async def setup_hook(self) -> None:
        for command in build_commands(self):
            self.tree.add_command(command)
        await self.tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        self.seen.append(message)
        if "good" in message.content:
            try:
                await message.add_reaction("👍")
            except discord.HTTPException as exc:
                self.errors.append(exc)


def build_commands(bot: ProbeBot) -> list[AppCommand]:
    @app_commands.command(description="Say it back")
    @app_commands.describe(text="What to say")
    async def echo(interaction: discord.Interaction, text: str) -> None:
        await interaction.response.send_message(text)

    @app_commands.command(description="Think, then answer in a follow-up")
    async def slow(interaction: discord.Interaction, text: str, private: bool = False) -> None:
        await interaction.response.defer(thinking=True, ephemeral=private)
        await asyncio.sleep(0.01)
        await interaction.followup.send(text.upper(), ephemeral=private)

    @app_commands.command(description="Think, then edit the original response")
    async def edit(interaction: discord.Interaction, text: str) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content=f"edited: {text}")

    @app_commands.command(description="Resolved options")
    async def whois(
        interaction: discord.Interaction,
        user: discord.Member,
        where: discord.TextChannel,
        times: app_commands.Range[int, 1, 5],
        loud: bool,
    ) -> None:
        await interaction.response.send_message(
            f"{user.display_name} in #{where.name} x{times} loud={loud}"
        )

    @app_commands.command(description="A chart as a PNG")
    async def chart(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        embed = discord.Embed(title="Mood").set_image(url="attachment://chart.png")
        await interaction.followup.send(
            embed=embed, file=discord.File(io.BytesIO(PNG), filename="chart.png")
        )

    @app_commands.command(description="Paginated")
    async def pages(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("page 1", view=Pager(1))

    @app_commands.command(description="Too slow to answer")
    async def sleepy(interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.4)
        try:
            await interaction.response.send_message("late")
        except discord.NotFound as exc:
            bot.errors.append(exc)

    config = app_commands.Group(
        name="config",
        description="Settings",
        default_permissions=discord.Permissions(manage_guild=True),
    )

    @config.command(description="Switch reactions")
    async def react(interaction: discord.Interaction, enabled: bool) -> None:
        await interaction.response.send_message(f"reactions {'on' if enabled else 'off'}")

    @app_commands.command(description="A select menu")
    async def pick(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pick one", view=Picker())

    @app_commands.command(description="A bug")
    async def boom(interaction: discord.Interaction) -> None:
        raise RuntimeError("boom")

    @app_commands.context_menu(name="Who is")
    async def who_is(interaction: discord.Interaction, member: discord.Member) -> None:
        await interaction.response.send_message(f"that is {member.display_name}")

    @app_commands.context_menu(name="Count chars")
    async def count_chars(interaction: discord.Interaction, message: discord.Message) -> None:
        await interaction.response.send_message(
            f"{len(message.content)} characters", ephemeral=True
        )

    return [echo, slow, edit, whois, chart, pages, sleepy, config, pick, boom, who_is, count_chars]


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(bot_name="Sentiment Bot") as fake:
        guild = fake.add_guild(GUILD, "Test Guild", owner_id=OWNER)
        guild.add_channel(GENERAL, "general")
        guild.add_channel(RANDOM, "random")
        guild.add_role(MODS, "mods", discord.Permissions(manage_guild=True).value)
        guild.add_member(OWNER, "olive")
        guild.add_member(ALICE, "alice")
        guild.add_member(BOB, "bob", roles=[MODS])
        yield fake


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[ProbeBot]:
    client = ProbeBot()
    async with running_client(client, fake):
        yield client


async def slash(
    fake: FakeDiscord,
    name: str,
    options: Mapping[str, object] | None = None,
    *,
    user_id: int = ALICE,
    subcommand: str | None = None,
) -> FakeInteraction:
    """Run a slash command in #general, as Alice unless told otherwise."""
    return await fake.invoke_slash(
        name,
        options or {},
        user_id=user_id,
        channel_id=GENERAL,
        guild_id=GUILD,
        subcommand=subcommand,
    )


# ------------------------------------------------------------------------------ login, gateway


async def test_login_connects_syncs_and_caches_the_guild(fake: FakeDiscord, bot: ProbeBot) -> None:
    assert bot.user is not None and bot.user.id == fake.bot_user_id
    assert bot.application_id == fake.application_id
    paths = [(r.method, r.path) for r in fake.requests]
    assert ("GET", "/users/@me") in paths
    assert ("GET", "/oauth2/applications/@me") in paths
    assert ("PUT", f"/applications/{fake.application_id}/commands") in paths
    names = {c["name"] for c in fake.synced_commands[None]}
    expected = [
        "echo",
        "slow",
        "edit",
        "whois",
        "chart",
        "pages",
        "sleepy",
        "config",
        "pick",
        "boom",
    ]
    assert names == {*expected, "Who is", "Count chars"}
    guild = bot.get_guild(GUILD)
    assert guild is not None and guild.name == "Test Guild"
    assert {c.name for c in guild.text_channels} == {"general", "random"}
    assert guild.me.guild_permissions.add_reactions
    # discord.py asked for a zlib-compressed stream and got one it could read.
    assert fake.gateway_connections[0].compression == "zlib-stream"
    assert fake.gateway_connections[0].query["v"] == "10"
    assert fake.identify_count == 1 and fake.ready.is_set()


async def test_members_intent_gets_chunked_members(fake: FakeDiscord) -> None:
    client = ProbeBot(members=True)
    async with running_client(client, fake):
        guild = client.get_guild(GUILD)
        assert guild is not None and guild.chunked
        assert {m.name for m in guild.members} == {"olive", "alice", "bob", "Sentiment Bot"}
        assert any(frame.get("op") == 8 for frame in fake.gateway_received)


async def test_raw_gateway_without_compression_speaks_text_frames(fake: FakeDiscord) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(fake.gateway_url + "?v=10&encoding=json") as ws,
    ):
        hello = json.loads(await ws.receive_str(timeout=5))
        assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
        await ws.send_json({"op": 1, "d": None})
        assert json.loads(await ws.receive_str(timeout=5))["op"] == 11
        intents = (1 << 0) | (1 << 1) | (1 << 9)
        await ws.send_json({"op": 2, "d": {"token": "t", "intents": intents, "properties": {}}})
        ready = json.loads(await ws.receive_str(timeout=5))
        assert (ready["t"], ready["s"]) == ("READY", 1)
        assert ready["d"]["guilds"] == [{"id": str(GUILD), "unavailable": True}]
        assert ready["d"]["resume_gateway_url"] == fake.gateway_url
        created = json.loads(await ws.receive_str(timeout=5))
        assert (created["t"], created["s"]) == ("GUILD_CREATE", 2)
        everyone = next(r for r in created["d"]["roles"] if r["id"] == str(GUILD))
        assert everyone["name"] == "@everyone"
        await ws.send_json({"op": 8, "d": {"guild_id": GUILD, "query": "", "limit": 0}})
        chunk = json.loads(await ws.receive_str(timeout=5))
        assert (chunk["t"], chunk["s"]) == ("GUILD_MEMBERS_CHUNK", 3)
        assert len(chunk["d"]["members"]) == 4


async def test_raw_gateway_zlib_stream_is_one_stream_of_sync_flushed_binary_frames(
    fake: FakeDiscord,
) -> None:
    inflate = zlib.decompressobj()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(fake.gateway_url + "?v=10&encoding=json&compress=zlib-stream") as ws,
    ):
        for expected_op in (10, 11):
            frame = await ws.receive_bytes(timeout=5)
            assert frame.endswith(b"\x00\x00\xff\xff")
            assert json.loads(inflate.decompress(frame))["op"] == expected_op
            if expected_op == 10:
                await ws.send_json({"op": 1, "d": None})


# ------------------------------------------------------------------------------ messages


async def test_good_message_gets_exactly_one_reaction(fake: FakeDiscord, bot: ProbeBot) -> None:
    events: list[FakeEvent] = []
    fake.add_listener(events.append)
    message_id = await fake.send_message(GENERAL, ALICE, "what a good day")
    await fake.wait_for(lambda: len(fake.reactions) == 1)
    (reaction,) = fake.reactions
    assert (reaction.channel_id, reaction.message_id, reaction.emoji) == (GENERAL, message_id, "👍")
    assert len(fake.requests_to("PUT", r"/reactions/")) == 1
    assert fake.active_reactions(message_id) == ["👍"]
    assert any(e.kind == "reaction_added" and "👍" in e.description for e in events)
    # The bot's cache got a full message: author, member, created_at from the snowflake.
    seen = bot.seen[0]
    assert seen.author.id == ALICE and isinstance(seen.author, discord.Member)
    assert abs((discord.utils.utcnow() - seen.created_at).total_seconds()) < 60


async def test_message_without_good_gets_no_reaction(fake: FakeDiscord, bot: ProbeBot) -> None:
    await fake.send_message(GENERAL, ALICE, "just a message")
    await fake.wait_for(lambda: len(bot.seen) == 1)  # on_message for it has returned
    later = await fake.send_message(GENERAL, ALICE, "a good one")
    await fake.wait_for(lambda: len(fake.reactions) == 1)
    assert [r.message_id for r in fake.reactions] == [later]


async def test_without_message_content_intent_content_is_empty(fake: FakeDiscord) -> None:
    client = ProbeBot(message_content=False)
    async with running_client(client, fake):
        await fake.send_message(GENERAL, ALICE, "good things")
        await fake.send_message(GENERAL, ALICE, f"<@{fake.bot_user_id}> good things")
        await fake.wait_for(lambda: len(client.seen) == 2)
    assert client.seen[0].content == ""
    assert client.seen[1].content.endswith("good things")  # mentions keep content


async def test_fetch_and_delete_messages(fake: FakeDiscord, bot: ProbeBot) -> None:
    first = await fake.send_message(GENERAL, ALICE, "one")
    second = await fake.send_message(GENERAL, BOB, "two")
    third = await fake.send_message(GENERAL, BOB, "three")
    channel = bot.get_channel(GENERAL)
    assert isinstance(channel, discord.TextChannel)
    fetched = await channel.fetch_message(first)
    assert (fetched.content, fetched.author.id) == ("one", ALICE)

    deleted = asyncio.ensure_future(bot.wait_for("raw_message_delete", timeout=5))
    await fake.delete_message(GENERAL, first)
    assert (await deleted).message_id == first
    with pytest.raises(discord.NotFound) as info:
        await channel.fetch_message(first)
    assert info.value.code == 10008

    purged = asyncio.ensure_future(bot.wait_for("raw_bulk_message_delete", timeout=5))
    await fake.bulk_delete(GENERAL, [second, third])
    assert (await purged).message_ids == {second, third}


async def test_bot_messages_are_recorded_and_echoed(fake: FakeDiscord, bot: ProbeBot) -> None:
    channel = bot.get_channel(GENERAL)
    assert isinstance(channel, discord.TextChannel)
    echoed = asyncio.ensure_future(bot.wait_for("message", timeout=5))
    sent = await channel.send("hello", file=discord.File(io.BytesIO(PNG), filename="a.png"))
    assert (await echoed).id == sent.id  # Discord sends the bot its own messages too
    (record,) = fake.sent_messages
    assert record.content == "hello" and record.files[0].data == PNG
    assert await sent.attachments[0].read() == PNG  # served by the fake's CDN
    await sent.edit(content="hello again")
    await sent.delete()
    assert record.content == "hello again" and record.deleted


# ------------------------------------------------------------------------------ interactions


async def test_slash_command_reply(fake: FakeDiscord, bot: ProbeBot) -> None:
    interaction = await slash(fake, "echo", {"text": "hello there"})
    reply = await interaction.wait_for_reply()
    assert reply.content == "hello there"
    assert (reply.via, reply.ephemeral) == ("response", False)
    assert interaction.response_type == 4
    assert (
        interaction.response is not None
        and interaction.response["data"]["content"] == "hello there"
    )


async def test_message_context_menu_is_ephemeral(fake: FakeDiscord, bot: ProbeBot) -> None:
    target = await fake.send_message(GENERAL, BOB, "hello world")
    interaction = await fake.invoke_message_command(
        "Count chars", target_message_id=target, user_id=ALICE, channel_id=GENERAL, guild_id=GUILD
    )
    reply = await interaction.wait_for_reply()
    assert reply.content == "11 characters" and reply.ephemeral
    assert interaction.response is not None and interaction.response["data"]["flags"] & 64


@pytest.mark.parametrize("private", [False, True])
async def test_deferred_reply_then_followup(
    fake: FakeDiscord, bot: ProbeBot, private: bool
) -> None:
    interaction = await slash(fake, "slow", {"text": "done", "private": private})
    reply = await interaction.wait_for_reply()
    assert interaction.response_type == 5
    assert (reply.content, reply.via, reply.ephemeral) == ("DONE", "followup", private)
    # The follow-up replaced the "thinking" message, as on Discord.
    assert interaction.original is not None and reply.message_id == interaction.original.id


async def test_deferred_reply_then_edit_original(fake: FakeDiscord, bot: ProbeBot) -> None:
    reply = await (await slash(fake, "edit", {"text": "x"})).wait_for_reply()
    assert (reply.content, reply.via) == ("edited: x", "edit")


async def test_options_are_typed_and_resolved(fake: FakeDiscord, bot: ProbeBot) -> None:
    options = {"user": BOB, "where": RANDOM, "times": 3, "loud": True}
    reply = await (await slash(fake, "whois", options)).wait_for_reply()
    assert reply.content == "bob in #random x3 loud=True"
    with pytest.raises(ValueError, match="must be <= 5"):
        await slash(fake, "whois", {**options, "times": 9})
    with pytest.raises(ValueError, match="missing required"):
        await slash(fake, "whois", {"user": BOB})
    with pytest.raises(LookupError, match=r"tree\.sync"):
        await slash(fake, "nope")


async def test_subcommand_respects_default_permissions(fake: FakeDiscord, bot: ProbeBot) -> None:
    with pytest.raises(PermissionError):
        await slash(fake, "config", {"enabled": True}, subcommand="react")
    interaction = await slash(fake, "config", {"enabled": True}, subcommand="react", user_id=BOB)
    assert (await interaction.wait_for_reply()).content == "reactions on"


async def test_file_reply_keeps_png_bytes(fake: FakeDiscord, bot: ProbeBot) -> None:
    reply = await (await slash(fake, "chart")).wait_for_reply()
    (png,) = reply.files
    assert (png.filename, png.data, png.guessed_type) == ("chart.png", PNG, "image/png")
    assert reply.embeds[0]["image"]["url"] == "attachment://chart.png"
    assert reply.text == "Mood"


async def test_buttons_update_the_message(fake: FakeDiscord, bot: ProbeBot) -> None:
    first = await (await slash(fake, "pages")).wait_for_reply()
    assert first.content == "page 1"
    with pytest.raises(ValueError, match="disabled"):
        await fake.click_button(first.message_id, "pager:prev", **AS_ALICE)
    with pytest.raises(LookupError, match="pager:next"):
        await fake.click_button(first.message_id, "nope", **AS_ALICE)
    click = await fake.click_button(first.message_id, "pager:next", **AS_ALICE)
    second = await click.wait_for_reply()
    assert (second.content, second.via, second.message_id) == ("page 2", "update", first.message_id)
    assert fake.messages[first.message_id].content == "page 2"


async def test_select_menu_and_user_context_menu(fake: FakeDiscord, bot: ProbeBot) -> None:
    menu = await (await slash(fake, "pick")).wait_for_reply()
    chosen = await fake.choose_select(menu.message_id, "picker", ["b"], **AS_ALICE)
    assert (await chosen.wait_for_reply()).content == "picked ['b']"
    who = await fake.invoke_user_command("Who is", target_user_id=BOB, **AS_ALICE)
    assert (await who.wait_for_reply()).content == "that is bob"


async def test_bot_can_dm_a_user(fake: FakeDiscord, bot: ProbeBot) -> None:
    user = await bot.fetch_user(ALICE)
    await user.send("psst")
    (message,) = fake.sent_messages
    assert message.guild_id is None and fake.channels[message.channel_id].recipient_id == ALICE
    assert message.content == "psst"


async def test_late_acknowledgement_gets_unknown_interaction(
    fake: FakeDiscord, bot: ProbeBot
) -> None:
    fake.interaction_timeout = 0.2
    interaction = await slash(fake, "sleepy")
    await fake.wait_for(lambda: bool(bot.errors))
    (error,) = bot.errors
    assert isinstance(error, discord.NotFound) and error.code == 10062
    assert interaction.response is None and interaction.reply() is None


# ------------------------------------------------------------------------------ faults


async def test_injected_403_reaches_the_bot_as_forbidden(fake: FakeDiscord, bot: ProbeBot) -> None:
    fault = fake.fail_next("PUT", r"/reactions/", 403)
    await fake.send_message(GENERAL, ALICE, "good")
    await fake.wait_for(lambda: bool(bot.errors))
    (error,) = bot.errors
    assert isinstance(error, discord.Forbidden) and error.code == 50013
    assert fault.hits == 1 and fake.reactions == []
    await fake.send_message(GENERAL, ALICE, "good again")  # only the next one failed
    await fake.wait_for(lambda: len(fake.reactions) == 1)


async def test_missing_permission_is_enforced(fake: FakeDiscord, bot: ProbeBot) -> None:
    everyone = fake.guilds[GUILD].everyone
    everyone.permissions &= ~discord.Permissions(add_reactions=True).value
    await fake.send_message(GENERAL, ALICE, "good")
    await fake.wait_for(lambda: bool(bot.errors))
    assert isinstance(bot.errors[0], discord.Forbidden)


async def test_429_is_retried_by_discord_py(fake: FakeDiscord, bot: ProbeBot) -> None:
    fault = fake.fail_next("PUT", r"/reactions/", 429, retry_after=0.05)
    await fake.send_message(GENERAL, ALICE, "good")
    await fake.wait_for(lambda: len(fake.reactions) == 1)
    assert fault.hits == 1 and len(fake.requests_to("PUT", r"/reactions/")) == 2
    assert bot.errors == []


# ------------------------------------------------------------------------------ reconnects


async def test_dropped_gateway_resumes_and_replays(fake: FakeDiscord, bot: ProbeBot) -> None:
    resumed = asyncio.ensure_future(bot.wait_for("resumed", timeout=5))
    await fake.drop_gateway(4000)
    missed = await fake.send_message(GENERAL, ALICE, "good while away")  # replayed on RESUME
    await resumed
    await fake.wait_for(lambda: fake.ready.is_set())
    assert (fake.identify_count, fake.resume_count) == (1, 1)
    await fake.wait_for(lambda: fake.active_reactions(missed) == ["👍"])
    later = await fake.send_message(GENERAL, ALICE, "good after")
    await fake.wait_for(lambda: fake.active_reactions(later) == ["👍"])


async def test_reconnect_request_resumes(fake: FakeDiscord, bot: ProbeBot) -> None:
    await fake.request_reconnect()
    await fake.wait_for(lambda: fake.resume_count == 1 and fake.ready.is_set())
    message_id = await fake.send_message(GENERAL, ALICE, "good")
    await fake.wait_for(lambda: fake.active_reactions(message_id) == ["👍"])


async def test_refused_resume_identifies_again(fake: FakeDiscord, bot: ProbeBot) -> None:
    fake.refuse_resume = True
    await fake.drop_gateway(4000)
    await fake.wait_for(lambda: fake.identify_count == 2 and fake.ready.is_set())
    assert fake.resume_count == 0
    message_id = await fake.send_message(GENERAL, ALICE, "good")
    await fake.wait_for(lambda: fake.active_reactions(message_id) == ["👍"])


# ------------------------------------------------------------------------------ harness


async def test_dead_client_task_fails_fast(fake: FakeDiscord) -> None:
    with pytest.raises(ClientDiedError) as info:
        async with running_client(ProbeBot(), fake):
            # A payload missing "content" kills discord.py's gateway reader.
            broken = {"id": "1", "channel_id": str(GENERAL), "guild_id": str(GUILD), "type": 0}
            await fake.dispatch("MESSAGE_CREATE", broken)
            await fake.wait_for(lambda: False, timeout=5)
    assert isinstance(info.value.__cause__, KeyError)


async def test_error_in_a_command_fails_waits_at_once(fake: FakeDiscord) -> None:
    with pytest.raises(StrictModeError, match="boom"):
        async with running_client(ProbeBot(), fake):
            interaction = await slash(fake, "boom")
            await interaction.wait_for_reply(timeout=5)  # would time out without strict mode


async def test_wrong_token_fails_login() -> None:
    async with FakeDiscord(bot_name="Sentiment Bot", token="right") as fake:
        with pytest.raises(ClientDiedError) as info:
            async with running_client(ProbeBot(), fake, token="wrong"):
                pass
    assert isinstance(info.value.__cause__, discord.LoginFailure)


async def test_privileged_intent_not_enabled_closes_with_4014() -> None:
    async with FakeDiscord(bot_name="Sentiment Bot", enabled_privileged_intents=0) as fake:
        with pytest.raises(ClientDiedError) as info:
            async with running_client(ProbeBot(message_content=True), fake, reconnect=True):
                pass
    assert isinstance(info.value.__cause__, discord.PrivilegedIntentsRequired)


async def test_wait_for_timeout_explains_what_it_saw(fake: FakeDiscord) -> None:
    with pytest.raises(TimeoutError, match="the moon") as info:
        await fake.wait_for(lambda: False, timeout=0.05, description="the moon")
    assert "identifies=0" in str(info.value)


async def test_point_discord_py_at_restores_globals(fake: FakeDiscord) -> None:
    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    with point_discord_py_at(fake):
        assert fake.api_base_url == discord.http.Route.BASE
        assert fake.gateway_url == str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    assert base == discord.http.Route.BASE
    assert gateway == discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY


async def test_user_attachments_are_downloadable(fake: FakeDiscord, bot: ProbeBot) -> None:
    await fake.send_message(GENERAL, ALICE, "see", attachments=[FakeFile("pic.png", PNG)])
    await fake.wait_for(lambda: len(bot.seen) == 1)
    (attachment,) = bot.seen[0].attachments
    assert attachment.content_type == "image/png"
    assert await attachment.read() == PNG
