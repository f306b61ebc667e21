"""Two ``sentiment-bot`` processes as the two shards of one bot (issue 13, item 4): one fake
Discord, one shared database, real processes started from the bot's entry point.

What this test guarantees, and how it knows:

* Each guild's messages are handled exactly once, by the process running its shard: the fake
  delivered each MESSAGE_CREATE to one session only, the session of shard
  ``(guild_id >> 22) % 2``; the reaction's ``PUT`` is in the log of that shard's process only
  (discord.py logs every request at DEBUG); one reaction and one row per message.
* A setting changed through a shard's process holds for its guild: ``/sentiment-admin`` in a
  guild is delivered to that guild's shard only, so a per-guild setting is only ever changed by
  the process that serves the guild (the settings cache of that process is the one the change
  went through), and a restarted process reads it back from the database.
* A member's ``/forget-me`` made through one shard holds in a guild of the other shard: in the
  other process while it runs (it re-reads the opt-outs every ``SENTIMENT_SETTINGS_REFRESH_S``,
  here 0.5 s; the test waits four times that), and in a process started after it (opt-outs are
  read from the database when a process starts).
* Each process's ``/metrics`` (``SENTIMENT_HTTP_PORT``) speaks for its own shard only: the
  gateway gauge and the classified counter carry ``shard="0"`` in shard 0's process and
  ``shard="1"`` in shard 1's, never the other's.
* SIGKILL of one process mid-run loses nothing it had told a user: every message it had
  reacted to has its row (a reaction is only added once its prediction is committed). The
  other shard keeps working meanwhile. Restarted, the process identifies again for its shard
  and serves its guilds (its settings read back from the database).
* Not guaranteed, as on Discord: messages sent while a shard's process is down are not
  delivered to the new session (Discord replays missed events only to a RESUME of the same
  session, which a new process cannot do); they get no reaction and no row.

The test runs on both engines (the ``database`` fixture): one SQLite file in WAL mode (two
processes on one machine), and one PostgreSQL database (processes on any machines).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_endpoint_e2e import free_port

from bot.storage import ANY_GUILD, HistoryFilter, Storage, StoredPrediction
from bot.storage.dsn import Dsn
from fakediscord import FakeDiscord, shard_of

REPO = Path(__file__).resolve().parent.parent
TOKEN = "MTE" + "x" * 67
START_BUDGET_S = 120.0  # importing torch and loading the model on a busy 2-core machine
WAIT_S = 30.0

GUILD_A = (1_000_000 << 22) | 1  # shard 0 of 2
GUILD_B = (1_000_001 << 22) | 1  # shard 1 of 2
GENERAL_A, GENERAL_B = 920_000_000_000_000_101, 920_000_000_000_000_201
OWNER, ALICE, BOB = 920_000_000_000_000_301, 920_000_000_000_000_302, 920_000_000_000_000_303
CAROL = 920_000_000_000_000_304
REFRESH_S = 0.5  # SENTIMENT_SETTINGS_REFRESH_S of both processes
POSITIVE = "I absolutely love this, what a wonderful and happy day!"
NEGATIVE = "This is terrible, I hate it, worst experience ever."

# The bot process: ``sentiment-bot`` with discord.py pointed at the fake (argv[1], argv[2]).
CHILD = """
import sys
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route
Route.BASE = sys.argv[1]
DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(sys.argv[2])
import bot.cli
sys.exit(bot.cli.main([]))
"""


@pytest.fixture
def shared_database(database: Path | Dsn) -> str:
    """SENTIMENT_DB for both processes: a SQLite file, or a PostgreSQL address."""
    return database.reveal() if isinstance(database, Dsn) else str(database)


@dataclass
class Shard:
    """One bot process running one shard."""

    shard_id: int
    process: asyncio.subprocess.Process
    log: Path
    port: int

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


async def _start(fake: FakeDiscord, folder: Path, database: str, shard_id: int) -> Shard:
    port = free_port()
    env = {
        **os.environ,
        "DISCORD_TOKEN": TOKEN,
        "SENTIMENT_DB": database,
        "SENTIMENT_SHARD_COUNT": "2",
        "SENTIMENT_SHARD_IDS": str(shard_id),
        "SENTIMENT_LOG_LEVEL": "DEBUG",  # discord.py logs each request and event
        "SENTIMENT_TORCH_THREADS": "1",  # two processes on two cores
        "SENTIMENT_PRECISION": "",
        "SENTIMENT_SETTINGS_REFRESH_S": str(REFRESH_S),
        "SENTIMENT_HTTP_PORT": str(port),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("SENTIMENT_DEV_GUILD_ID", None)  # commands synced globally: both guilds see them
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"shard{shard_id}-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, fake.api_base_url, fake.gateway_url,
            cwd=folder, env=env, stdout=out, stderr=out,
        )  # fmt: skip
    return Shard(shard_id, process, log, port)


async def _ready(fake: FakeDiscord, shard: Shard) -> None:
    """Wait until the process says its shard is ready and the fake has its session live."""
    deadline = time.monotonic() + START_BUDGET_S
    line = f"shard {shard.shard_id} of 2 ready: 1 guilds"
    while line not in shard.text() or (shard.shard_id, 2) not in fake.live_shards:
        assert shard.process.returncode is None, shard.tail()
        assert time.monotonic() < deadline, f"no {line!r} within {START_BUDGET_S} s:\n" + (
            shard.tail()
        )
        await asyncio.sleep(0.2)


async def _stop(shard: Shard) -> None:
    if shard.process.returncode is None:
        shard.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(shard.process.wait(), 20)
        except TimeoutError:
            shard.process.kill()
            await shard.process.wait()


async def _rows(database: str) -> list[StoredPrediction]:
    storage = await Storage.open(database)
    try:
        return await storage.history(HistoryFilter(guild_id=ANY_GUILD), limit=10_000)
    finally:
        await storage.close()


async def _metrics(shard: Shard) -> dict[str, set[str]]:
    """The shard labels each sample of the process's /metrics carries, by sample name."""
    url = f"http://127.0.0.1:{shard.port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        text = await response.text()
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "shard" in sample.labels:
                labels.setdefault(sample.name, set()).add(sample.labels["shard"])
    return labels


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(bot_name="Sentiment Bot") as fake:
        for guild_id, channel_id in ((GUILD_A, GENERAL_A), (GUILD_B, GENERAL_B)):
            guild = fake.add_guild(guild_id, f"guild {guild_id}", owner_id=OWNER)
            guild.add_channel(channel_id, "general")
            for user_id, name in ((OWNER, "owner"), (ALICE, "alice"), (BOB, "bob"), (CAROL, "c")):
                guild.add_member(user_id, name)
        yield fake


def _reacted(fake: FakeDiscord, message_id: int) -> bool:
    return bool(fake.active_reactions(message_id))


async def _logged_put(shard: Shard, message_id: int) -> None:
    """Wait until the process has logged the reaction's answer (it logs after the fake
    recorded the reaction)."""
    deadline = time.monotonic() + WAIT_S
    while _puts_in(shard, message_id) == 0:
        assert time.monotonic() < deadline, f"no reaction PUT for {message_id} in the log"
        await asyncio.sleep(0.1)


def _puts_in(shard: Shard, message_id: int) -> int:
    """How many reaction PUTs for the message the process logged (discord.http, DEBUG)."""
    return sum(
        1
        for line in shard.text().splitlines()
        if f"/messages/{message_id}/reactions/" in line and "has returned 204" in line
    )


async def _reactions_on(fake: FakeDiscord, owner: int, guild_id: int, channel_id: int) -> None:
    interaction = await fake.invoke_slash(
        "sentiment-admin",
        {"channel": channel_id, "enabled": True},
        user_id=owner,
        channel_id=channel_id,
        guild_id=guild_id,
        subcommand="reactions",
    )
    reply = await interaction.wait_for_reply(timeout=WAIT_S)
    assert "on" in reply.text.lower(), reply.text


async def test_two_shards_in_two_processes_share_one_database(
    fake: FakeDiscord, tmp_path: Path, shared_database: str
) -> None:
    assert (shard_of(GUILD_A, 2), shard_of(GUILD_B, 2)) == (0, 1)
    folder = tmp_path / "run"
    zero = await _start(fake, folder, shared_database, 0)
    one = await _start(fake, folder, shared_database, 1)
    try:
        await asyncio.gather(_ready(fake, zero), _ready(fake, one))
        assert "[shard 0 of 2]" in zero.text() and "[shard 1 of 2]" in one.text()

        # Per-guild settings: each guild's command reaches its own shard's process only.
        await _reactions_on(fake, OWNER, GUILD_A, GENERAL_A)
        await _reactions_on(fake, OWNER, GUILD_B, GENERAL_B)
        commands = [d for d in fake.deliveries if d.event == "INTERACTION_CREATE"]
        assert [(d.guild_id, d.shard) for d in commands] == [(GUILD_A, (0, 2)), (GUILD_B, (1, 2))]

        # Messages to both guilds: each handled once, by the process of its shard.
        sent: dict[int, list[int]] = {GUILD_A: [], GUILD_B: []}
        for text in (POSITIVE, NEGATIVE, POSITIVE):
            sent[GUILD_A].append(await fake.send_message(GENERAL_A, ALICE, text))
            sent[GUILD_B].append(await fake.send_message(GENERAL_B, BOB, text))
        every = sent[GUILD_A] + sent[GUILD_B]
        await fake.wait_for(lambda: all(_reacted(fake, m) for m in every), WAIT_S)
        for guild_id, shard, other in ((GUILD_A, zero, one), (GUILD_B, one, zero)):
            for message_id in sent[guild_id]:
                creates = [
                    d
                    for d in fake.deliveries
                    if d.event == "MESSAGE_CREATE" and d.object_id == message_id
                ]
                assert [d.shard for d in creates] == [(shard.shard_id, 2)]
                assert len(fake.active_reactions(message_id)) == 1
                await _logged_put(shard, message_id)
                assert (_puts_in(shard, message_id), _puts_in(other, message_id)) == (1, 0)
        rows = await _rows(shared_database)
        assert sorted(r.message_id for r in rows if r.message_id) == sorted(every)
        assert {r.guild_id for r in rows} == {GUILD_A, GUILD_B}

        # Each process's /metrics: its own shard's gateway and texts, never the other's.
        for shard in (zero, one):
            labels = await _metrics(shard)
            mine = {str(shard.shard_id)}
            assert labels["sentiment_gateway_connected"] == mine, labels
            assert labels["sentiment_messages_classified_total"] == mine, labels

        # Live across processes: carol's /forget-me through shard 0 (guild A) holds in shard
        # 1's running process (guild B) once it has re-read the opt-outs.
        before = await fake.send_message(GENERAL_B, CAROL, POSITIVE)
        await fake.wait_for(lambda: _reacted(fake, before), WAIT_S)
        forget = await fake.invoke_slash(
            "forget-me", user_id=CAROL, channel_id=GENERAL_A, guild_id=GUILD_A
        )
        assert "erased 1 prediction" in (await forget.wait_for_reply(timeout=WAIT_S)).text
        await asyncio.sleep(4 * REFRESH_S)
        carol_in_b = await fake.send_message(GENERAL_B, CAROL, NEGATIVE)
        await fake.wait_idle(idle=0.5, timeout=WAIT_S)
        await asyncio.sleep(2 * REFRESH_S)  # a row written before the refresh would go now
        assert not _reacted(fake, carol_in_b)
        assert CAROL not in {r.user_id for r in await _rows(shared_database)}
        assert one.process.returncode is None and _puts_in(one, carol_in_b) == 0

        # Shard 1's process is killed in the middle of a burst of messages.
        burst = [await fake.send_message(GENERAL_B, BOB, POSITIVE) for _ in range(8)]
        await fake.wait_for(lambda: any(_reacted(fake, m) for m in burst), WAIT_S)
        one.process.send_signal(signal.SIGKILL)
        await one.process.wait()
        reacted = [m for m in burst if _reacted(fake, m)]
        stored = [r.message_id for r in await _rows(shared_database)]
        assert len(stored) == len(set(stored))  # one row per message, never two
        assert set(reacted) <= set(stored), "a message reacted to before the kill has no row"
        assert set(stored) <= set(every) | set(burst)

        # While it is down: shard 0 carries on; shard 1's guild is not served.
        while_down_a = await fake.send_message(GENERAL_A, BOB, NEGATIVE)
        while_down_b = await fake.send_message(GENERAL_B, BOB, NEGATIVE)
        await fake.wait_for(lambda: _reacted(fake, while_down_a), WAIT_S)
        # A member's /forget-me through shard 0 (guild A; alice wrote there, not in B) ...
        forget = await fake.invoke_slash(
            "forget-me", user_id=ALICE, channel_id=GENERAL_A, guild_id=GUILD_A
        )
        assert "erased 3 predictions" in (await forget.wait_for_reply(timeout=WAIT_S)).text

        # Restarted, the process identifies again as shard 1 and serves guild B.
        identifies = fake.identify_count
        one = await _start(fake, folder, shared_database, 1)
        await _ready(fake, one)
        assert fake.identify_count == identifies + 1 and fake.live_shards == [(0, 2), (1, 2)]
        after = await fake.send_message(GENERAL_B, BOB, POSITIVE)
        # ... holds in guild B on shard 1: nothing of alice's is stored or reacted to there.
        alice_in_b = await fake.send_message(GENERAL_B, ALICE, POSITIVE)
        await fake.wait_for(lambda: _reacted(fake, after), WAIT_S)  # B's setting held
        await _logged_put(one, after)
        assert (_puts_in(one, after), _puts_in(zero, after)) == (1, 0)
        await fake.wait_idle(idle=0.5, timeout=WAIT_S)
        assert not _reacted(fake, alice_in_b)

        rows = await _rows(shared_database)
        stored = [r.message_id for r in rows]
        assert len(stored) == len(set(stored))
        assert after in stored and while_down_a in stored
        assert alice_in_b not in stored and ALICE not in {r.user_id for r in rows}
        # Sent while shard 1 had no live session: kept by Discord for a RESUME of the old
        # session only; the new process never got it.
        assert while_down_b not in stored and not _reacted(fake, while_down_b)
        assert _puts_in(one, while_down_b) == 0
    finally:
        await asyncio.gather(_stop(zero), _stop(one))
    for shard in (zero, one):
        assert shard.process.returncode == 0, shard.tail()
