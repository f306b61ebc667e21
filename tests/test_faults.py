"""Faults, end to end: "nothing lost, nothing crashes".

The real SentimentBot against the fake Discord (tests/e2e_support.py) while the gateway
drops, the database refuses to write and Discord answers with errors. Each test checks what a
user or an operator would notice: every message still gets exactly one reaction and one row,
the failure is logged once, and nothing is retried in a storm.

Covered elsewhere: 403, 404 and 429 on reactions (tests/test_bot_e2e.py:
test_forbidden_reactions_warn_once..., test_message_deleted_before_the_reaction...,
test_rate_limited_reaction_is_retried...), a database of another program or a newer version,
and the writer's unit behaviour (tests/test_storage.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from e2e_support import (
    ALICE,
    GENERAL,
    GUILD,
    NEGATIVE,
    OWNER,
    POSITIVE,
    RANDOM,
    SlowClassifier,
    World,
    open_world,
    react_to,
)

import bot.cli
from bot.app import create_bot
from bot.config import Secret, Settings
from bot.storage import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    HistoryFilter,
    PredictionRecord,
    Storage,
    read_count,
)
from fakediscord import FakeDiscord, point_discord_py_at, running_client
from model import SentimentClassifier

REPO = Path(__file__).resolve().parent.parent
LONG_POSITIVE = " ".join([POSITIVE] * 60)  # about 3,400 characters: needs new database pages


# --------------------------------------------------------------------------------------------
# Helpers


async def _identify_at_once(shard_id: int | None, *, initial: bool = False) -> None:
    """discord.py waits 5 s before every IDENTIFY but the first; the tests do not."""


@contextlib.asynccontextmanager
async def production_world(tmp_path: Path, classifier: SentimentClassifier) -> AsyncIterator[World]:
    """Like ``open_world``, but the client runs as ``SentimentBot.start`` runs it
    (``reconnect=True``), and re-IDENTIFYs without discord.py's 5 s pause."""
    async with FakeDiscord(bot_name="Sentiment Bot") as fake:
        guild = fake.add_guild(GUILD, "Test Guild", owner_id=OWNER)
        guild.add_channel(GENERAL, "general")
        guild.add_member(OWNER, "owner")
        guild.add_member(ALICE, "alice")
        settings = Settings(token=Secret(""), database=tmp_path / "bot.db", dev_guild_id=GUILD)
        sentiment_bot = await create_bot(settings, classifier=classifier, guild_ready_timeout=0.1)
        sentiment_bot.before_identify_hook = _identify_at_once
        async with running_client(sentiment_bot, fake, reconnect=True):
            await sentiment_bot.storage.set_auto_channel(GUILD, GENERAL, True)
            yield World(fake, sentiment_bot)


async def post(world: World, texts: list[str]) -> list[int]:
    return [await world.fake.send_message(GENERAL, ALICE, text) for text in texts]


async def wait_for_reactions(world: World, message_ids: list[int], timeout: float = 15) -> None:
    fake = world.fake
    await fake.wait_for(
        lambda: all(fake.active_reactions(m) for m in message_ids),
        timeout,
        description=lambda: (
            "reactions to "
            f"{sum(not fake.active_reactions(m) for m in message_ids)} more of the messages"
        ),
    )


async def assert_one_reaction_and_one_row_each(world: World, message_ids: list[int]) -> None:
    await world.settle()
    for message_id in message_ids:
        puts = world.fake.requests_to("PUT", rf"/messages/{message_id}/reactions/")
        assert len(puts) == 1, f"message {message_id}: {len(puts)} reaction requests"
    rows = await world.rows(guild_id=GUILD)
    assert sorted(r.message_id for r in rows if r.source == "auto") == sorted(message_ids)


def records(
    caplog: pytest.LogCaptureFixture, logger: str, level: int = logging.WARNING
) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if (r.name == logger or r.name.startswith(logger + ".")) and r.levelno >= level
    ]


# --------------------------------------------------------------------------------------------
# Gateway


@pytest.mark.parametrize("how", ["close 4000", "op 7 RECONNECT"])
async def test_gateway_drop_mid_burst_resumes_and_every_message_gets_one_reaction(
    tmp_path: Path, classifier: SentimentClassifier, how: str
) -> None:
    async with production_world(tmp_path, classifier) as world:
        fake = world.fake
        before = await post(world, [f"{POSITIVE} ({i})" for i in range(5)])
        if how == "close 4000":
            await fake.drop_gateway(4000)  # while those five are still being classified
            # Posted while the bot is away: Discord keeps them and replays them on RESUME.
            during = await post(world, [f"{NEGATIVE} (away {i})" for i in range(5)])
        else:
            await fake.request_reconnect()
            during = []
        await fake.wait_for(lambda: fake.ready.is_set() and fake.resume_count == 1)
        after = await post(world, [f"{POSITIVE} (back {i})" for i in range(5)])
        everything = before + during + after
        await wait_for_reactions(world, everything)
        await assert_one_reaction_and_one_row_each(world, everything)
        assert (fake.identify_count, fake.resume_count) == (1, 1)


@pytest.mark.parametrize(
    ("code", "refuse_resume"),
    [(4009, False), (4000, True)],
    ids=["close 4009 session timed out", "RESUME refused with op 9"],
)
async def test_session_that_cannot_resume_identifies_again_and_keeps_reacting(
    tmp_path: Path, classifier: SentimentClassifier, code: int, refuse_resume: bool
) -> None:
    async with production_world(tmp_path, classifier) as world:
        fake = world.fake
        before = await post(world, [f"{POSITIVE} ({i})" for i in range(5)])
        fake.refuse_resume = refuse_resume
        await fake.drop_gateway(code)
        await fake.wait_for(lambda: fake.identify_count == 2 and fake.ready.is_set())
        # discord.py tried to RESUME, was told the session is gone (op 9), and IDENTIFYed.
        assert [f["op"] for f in fake.gateway_received if f["op"] in (2, 6)] == [2, 6, 2]
        assert fake.resume_count == 0
        after = await post(world, [f"{NEGATIVE} (new session {i})" for i in range(5)])
        await wait_for_reactions(world, before + after)
        await assert_one_reaction_and_one_row_each(world, before + after)
        assert not world.bot.is_closed()


async def test_event_delivered_twice_gives_one_row_and_one_reaction(
    tmp_path: Path, classifier: SentimentClassifier
) -> None:
    async with production_world(tmp_path, classifier) as world:
        fake = world.fake
        handled = await react_to(world, POSITIVE)
        await fake.drop_gateway(4000)
        missed = await fake.send_message(GENERAL, ALICE, NEGATIVE)  # replayed by the RESUME
        await fake.wait_for(lambda: fake.ready.is_set() and fake.resume_count == 1)
        # Around the resume Discord sends events the bot had already handled...
        await fake.dispatch("MESSAGE_CREATE", fake.message_payload(fake.messages[handled]))
        await fake.dispatch("MESSAGE_CREATE", fake.message_payload(fake.messages[missed]))
        # ...and a copy arrives while the first is still being classified.
        fresh = await fake.send_message(GENERAL, ALICE, f"{POSITIVE} again")
        await fake.dispatch("MESSAGE_CREATE", fake.message_payload(fake.messages[fresh]))
        await wait_for_reactions(world, [handled, missed, fresh])
        await assert_one_reaction_and_one_row_each(world, [handled, missed, fresh])
        assert world.bot.inference.stats.predicted == 3  # the copies were not classified again


# --------------------------------------------------------------------------------------------
# Database


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another program holds the database's write lock (BEGIN IMMEDIATE) until the block ends."""
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield other
        other.execute("ROLLBACK")
    finally:
        other.close()


def reaction_puts(world: World, message_ids: list[int]) -> int:
    return sum(
        len(world.fake.requests_to("PUT", rf"/messages/{m}/reactions/")) for m in message_ids
    )


async def test_short_write_lock_holds_reactions_until_their_rows_are_committed(
    tmp_path: Path, classifier: SentimentClassifier, caplog: pytest.LogCaptureFixture
) -> None:
    """A lock shorter than busy_timeout: the writer waits it out silently. A reaction tells the
    user the prediction is stored, so none goes out before its row is committed."""
    caplog.set_level(logging.INFO, logger="bot")
    async with open_world(tmp_path, classifier) as world:
        await world.bot.storage._backend.db.execute("PRAGMA busy_timeout = 60000")
        with write_lock(world.bot.storage.path) as other:
            sent = await post(world, [f"{POSITIVE} ({i})" for i in range(4)])
            await world.fake.wait_for(lambda: world.bot.storage.writer_stats.pending == 4)
            await asyncio.sleep(0.5)
            (count,) = other.execute("SELECT COUNT(*) FROM predictions").fetchone()
            assert count == 0  # nothing could be written yet...
            assert reaction_puts(world, sent) == 0  # ...so nothing was reacted to
        await wait_for_reactions(world, sent)  # the lock went: rows committed, then reactions
        await assert_one_reaction_and_one_row_each(world, sent)
        assert records(caplog, "bot") == []


async def _lock(world: World) -> Callable[[], Awaitable[None]]:
    # A lock held longer than busy_timeout: lower the bot's 5 s to keep the test short.
    storage = world.bot.storage
    await storage._backend.db.execute("PRAGMA busy_timeout = 200")
    holder = write_lock(storage.path)
    holder.__enter__()

    async def undo() -> None:
        holder.__exit__(None, None, None)
        await storage._backend.db.execute("PRAGMA busy_timeout = 5000")

    return undo


async def _full_disk(world: World) -> Callable[[], Awaitable[None]]:
    # The file may not grow by one page: what SQLite reports when the disk is full.
    db = world.bot.storage._backend.db
    ((pages,),) = await db.execute_fetchall("PRAGMA page_count")
    await db.execute(f"PRAGMA max_page_count = {pages}")

    async def undo() -> None:
        await db.execute("PRAGMA max_page_count = 1073741823")

    return undo


async def _read_only(world: World) -> Callable[[], Awaitable[None]]:
    # Root ignores file modes, so chmod cannot make the file read-only in the test: SQLite's
    # own switch gives the bot's connection the same error a read-only file or folder gives.
    db = world.bot.storage._backend.db
    await db.execute("PRAGMA query_only = ON")

    async def undo() -> None:
        await db.execute("PRAGMA query_only = OFF")

    return undo


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (_lock, "database is locked"),
        (_full_disk, "database or disk is full"),
        (_read_only, "attempt to write a readonly database"),
    ],
    ids=["locked by another writer", "disk full", "read-only"],
)
async def test_database_that_cannot_write_holds_reactions_and_writes_the_rows_later(
    tmp_path: Path,
    classifier: SentimentClassifier,
    caplog: pytest.LogCaptureFixture,
    fault: Callable[[World], Awaitable[Callable[[], Awaitable[None]]]],
    reason: str,
) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    async with open_world(tmp_path, classifier) as world:
        storage = world.bot.storage
        await storage.update_guild_settings(GUILD, store_auto_text=True)  # long texts: pages
        undo = await fault(world)
        try:
            sent = await post(world, [f"{LONG_POSITIVE} ({i})" for i in range(4)])
            await world.fake.wait_for(
                lambda: (
                    storage.writer_stats.failed_batches >= 3 and storage.writer_stats.pending == 4
                ),
                description="three retries",
            )
            stats = storage.writer_stats
            assert (stats.written, stats.pending, stats.failing) == (0, 4, True)
            assert read_count(storage.path, HistoryFilter(guild_id=GUILD)) == 0
            assert reaction_puts(world, sent) == 0  # not stored yet: not reacted to yet
        finally:
            await undo()
        await asyncio.wait_for(storage.flush(), 10)
        await wait_for_reactions(world, sent)
        assert storage.writer_stats.failed_batches < 12  # backed off: no retry storm
        await assert_one_reaction_and_one_row_each(world, sent)
        assert {r.text for r in await world.rows()} == {f"{LONG_POSITIVE} ({i})" for i in range(4)}
    (warning,) = records(caplog, "bot")  # one line for the whole failure streak
    assert str(storage.path) in warning and reason in warning
    assert "keeping them in memory and retrying" in warning
    assert any("works again" in m for m in records(caplog, "bot.storage", logging.INFO))


async def test_shutdown_while_the_database_fails_reports_what_was_not_written(
    tmp_path: Path, classifier: SentimentClassifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    async with open_world(tmp_path, classifier) as world:
        sentiment_bot, storage = world.bot, world.bot.storage
        await _read_only(world)
        sent = await post(world, [f"{POSITIVE} ({i})" for i in range(3)])
        # Pending and already failing: closing before the first failed commit would wait out the
        # handlers' grace instead (a race of the test, not of the bot).
        await world.fake.wait_for(
            lambda: storage.writer_stats.pending == 3 and storage.writer_stats.failing
        )
        # SentimentBot.close waits 30 s for the database; 1 s here.
        storage.close = functools.partial(storage.close, timeout=1.0)
        started = time.monotonic()
        await sentiment_bot.close()
        assert time.monotonic() - started < 10
    errors = records(caplog, "bot", logging.ERROR)
    assert len(errors) == 1
    assert f"Closing {storage.path} with 3 predictions not written" in errors[0]
    assert read_count(storage.path, HistoryFilter(guild_id=GUILD)) == 0
    assert reaction_puts(world, sent) == 0  # no reaction claims a prediction that was lost


@contextlib.contextmanager
def fake_in_a_thread() -> Iterator[FakeDiscord]:
    """A started FakeDiscord on its own event loop, for code that runs ``asyncio.run``."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake discord", daemon=True)
    thread.start()

    async def start() -> FakeDiscord:
        fake = FakeDiscord(bot_name="Sentiment Bot")
        fake.add_guild(GUILD, "Test Guild", owner_id=OWNER).add_channel(GENERAL, "general")
        await fake.start()
        return fake

    fake = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    """``sentiment-bot`` installs discord.py's log handler on the root logger: take it off."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def _a_real_database(path: Path) -> None:
    storage = await Storage.open(path)
    storage.start_writer()
    for i in range(400):
        storage.submit(
            PredictionRecord(
                GUILD, GENERAL, 10_000 + i, ALICE, "auto", "positive", 0.9, False, "v",
                datetime.now(UTC), text=POSITIVE,
            )
        )  # fmt: skip
    await storage.close()


@pytest.mark.parametrize("damage", ["truncated", "garbage after the header"])
def test_corrupt_database_stops_sentiment_bot_with_one_line_and_leaves_the_file_alone(
    tmp_path: Path,
    classifier: SentimentClassifier,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_root_logging: None,
    damage: str,
) -> None:
    database = tmp_path / "bot.db"
    asyncio.run(_a_real_database(database))
    good = database.read_bytes()
    broken = good[: len(good) // 2] if damage == "truncated" else good[:100] + os.urandom(8192)
    database.write_bytes(broken)
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("DISCORD_TOKEN", "MTE" + "x" * 67)  # the fake takes any token
    monkeypatch.setenv("SENTIMENT_DB", str(database))
    monkeypatch.setenv("SENTIMENT_LOG_LEVEL", "WARNING")
    monkeypatch.setattr("bot.app.SentimentClassifier.load", lambda *a, **k: classifier)
    with fake_in_a_thread() as fake, point_discord_py_at(fake):
        status = bot.cli.main([])
    err = capsys.readouterr().err
    assert status == 2
    (line,) = err.splitlines()  # at SENTIMENT_LOG_LEVEL=WARNING nothing else is printed
    assert line.startswith("error: ") and str(database) in line
    assert "malformed" in line or "not a database" in line
    assert "move it aside or restore a backup" in line
    assert database.read_bytes() == broken  # left exactly as it was


async def test_database_of_an_older_version_is_migrated_and_keeps_its_rows(
    tmp_path: Path, classifier: SentimentClassifier, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "bot.db"
    old = sqlite3.connect(database, isolation_level=None)
    for statement in MIGRATIONS[0]:  # the version-1 schema: predictions only
        old.execute(statement)
    old.execute("PRAGMA user_version = 1")
    old.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    an_hour_ago = time.time() - 3600
    old.executemany(
        "INSERT INTO predictions (guild_id, channel_id, message_id, user_id, source, label,"
        " p_positive, in_band, model_version, created_at, text) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [  # recent rows: the retention purge at start-up keeps them
            (GUILD, GENERAL, 1, ALICE, "auto", "positive", 0.9, 0, "old", an_hour_ago, None),
            (GUILD, GENERAL, None, ALICE, "command", "negative", 0.1, 0, "old", an_hour_ago, "a"),
        ],
    )
    old.close()
    database.chmod(0o600)
    caplog.set_level(logging.INFO, logger="bot")
    async with open_world(tmp_path, classifier) as world:  # its set-up uses the new tables
        message_id = await react_to(world, NEGATIVE)
        rows = await world.rows()
    assert sorted((r.source, r.message_id or 0) for r in rows if r.model_version == "old") == [
        ("auto", 1),
        ("command", 0),
    ]
    assert rows[0].message_id == message_id
    migrated = f"Migrated {database} from schema 1 to {SCHEMA_VERSION}"
    assert migrated in records(caplog, "bot.storage", logging.INFO)
    with sqlite3.connect(database) as check:
        assert check.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


# --------------------------------------------------------------------------------------------
# Discord


async def test_5xx_once_on_the_interaction_callback_is_retried_by_discord_py(
    world_with_logs: tuple[World, pytest.LogCaptureFixture],
) -> None:
    world, caplog = world_with_logs
    fault = world.fake.fail_next("POST", r"/interactions/.*/callback", 500)
    reply = await world.slash("sentiment", {"text": POSITIVE})
    assert fault.hits == 1 and "Positive" in reply.text
    callbacks = world.fake.requests_to("POST", r"/interactions/.*/callback")
    assert [r.status for r in callbacks[-2:]] == [500, 200]
    assert records(caplog, "bot") == []
    (row,) = [r for r in await world.rows() if r.source == "command"]
    assert row.text == POSITIVE


@pytest.fixture
async def world_with_logs(
    tmp_path: Path, classifier: SentimentClassifier, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[tuple[World, pytest.LogCaptureFixture]]:
    caplog.set_level(logging.INFO, logger="bot")
    async with open_world(tmp_path, classifier) as world:
        yield world, caplog


def fast_webhook_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """discord.py sleeps 1, 3, 5, 7 and 9 s between its five tries of an interaction callback
    that gets 5xx; a hundredth of that here (only in discord.py's webhook module)."""
    import discord.webhook.async_ as webhook

    async def sleep(delay: float, *args: Any) -> Any:
        return await asyncio.sleep(delay / 100, *args)

    fast = SimpleNamespace(**{k: getattr(asyncio, k) for k in dir(asyncio) if k[0] != "_"})
    fast.sleep = sleep
    monkeypatch.setattr(webhook, "asyncio", fast)


async def test_interaction_callback_failing_with_5xx_is_logged_once_and_not_retried_again(
    world_with_logs: tuple[World, pytest.LogCaptureFixture], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, caplog = world_with_logs
    fast_webhook_retries(monkeypatch)
    fault = world.fake.fail_next("POST", r"/interactions/.*/callback", 503, times=100)
    interaction = await world.fake.invoke_slash(
        "sentiment", {"text": NEGATIVE}, user_id=ALICE, channel_id=GENERAL, guild_id=GUILD
    )
    await world.fake.wait_for(lambda: fault.hits == 5, description="discord.py's five tries")
    await world.settle()
    assert fault.hits == 5  # discord.py's own tries, and no second round from the bot
    assert interaction.reply() is None
    (warning,) = records(caplog, "bot")
    assert "/sentiment" in warning and "503" in warning
    (row,) = [r for r in await world.rows() if r.source == "command"]
    assert (row.label, row.text) == ("negative", NEGATIVE)  # the prediction is still logged
    world.fake.clear_faults()
    await react_to(world, POSITIVE)  # still working
    assert "Positive" in (await world.slash("sentiment", {"text": POSITIVE})).text


async def test_interaction_that_expired_during_a_5xx_retry_is_logged_once(
    world_with_logs: tuple[World, pytest.LogCaptureFixture],
) -> None:
    """A 5xx, discord.py waits 1 s to retry, and by then Discord's window has closed."""
    world, caplog = world_with_logs
    world.fake.interaction_timeout = 0.9  # discord.py retries a 5xx after 1 s: too late
    fault = world.fake.fail_next("POST", r"/interactions/.*/callback", 502)
    interaction = await world.fake.invoke_slash(
        "sentiment", {"text": NEGATIVE}, user_id=ALICE, channel_id=GENERAL, guild_id=GUILD
    )
    callbacks = rf"/interactions/{interaction.id}/.*/callback"
    await world.fake.wait_for(
        lambda: len(world.fake.requests_to("POST", callbacks)) == 2,
        description="the 502 and the retry",
    )
    await world.settle()
    statuses = [r.status for r in world.fake.requests_to("POST", callbacks)]
    assert fault.hits == 1 and statuses == [502, 404]  # and no third try
    (warning,) = records(caplog, "bot")
    assert "/sentiment" in warning and "expired" in warning
    assert len([r for r in await world.rows() if r.source == "command"]) == 1


async def test_slow_gateway_still_gets_answers_in_time(
    tmp_path: Path,
    classifier: SentimentClassifier,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Events and heartbeat ACKs arrive 1.5 s late. A command whose model call takes 1.7 s is
    deferred early enough for Discord's 3 s window, which started when the user sent it."""
    caplog.set_level(logging.INFO)
    async with open_world(tmp_path, SlowClassifier(classifier, delay=1.7)) as world:
        fake = world.fake
        fake.heartbeat_interval_ms = 2000  # in the HELLO of the next connection
        await fake.request_reconnect()
        await fake.wait_for(lambda: fake.ready.is_set() and fake.resume_count == 1)
        fake.gateway_delay = 1.5
        sent = await post(world, [POSITIVE, NEGATIVE])
        interaction = await fake.invoke_slash(
            "sentiment", {"text": POSITIVE}, user_id=ALICE, channel_id=GENERAL, guild_id=GUILD
        )
        reply = await interaction.wait_for_reply(timeout=15)
        assert interaction.response_type == 5 and reply.via == "followup"
        assert "Positive" in reply.text
        await wait_for_reactions(world, sent)
        await assert_one_reaction_and_one_row_each(world, sent)
        # Heartbeats are answered 1.5 s late, and the bot does not mind.
        await fake.wait_for(lambda: world.bot.latency > 1.4, description="a late ACK")
        assert (fake.identify_count, fake.resume_count) == (1, 1)  # no reconnection
    assert records(caplog, "bot") == []
    assert records(caplog, "discord") == []


# --------------------------------------------------------------------------------------------
# Data that must not be lost (issue 11)


def test_sigkill_loses_no_reacted_prediction() -> None:
    """Real processes and signals: the bot is SIGKILLed at random moments under steady traffic
    and restarted on the same database; every message that got a reaction has its row."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "durability.py"), "--runs", "2", "--seed", "11"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "0 reacted but missing after SIGKILL" in out
    reacted = int(out.split(" reacted predictions")[0].rsplit(" ", 1)[1])
    assert reacted > 0, out  # traffic really flowed before the kills


def _corrupt_page(path: Path, name: str) -> None:
    """Overwrite the root page of the b-tree ``name`` (a table or index) with garbage."""
    with sqlite3.connect(path) as conn:
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", [name]
        ).fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with path.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * page_size)


def test_corrupt_index_stops_the_bot_at_start_up_with_one_line(
    tmp_path: Path,
    classifier: SentimentClassifier,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_root_logging: None,
) -> None:
    """PRAGMA quick_check at start-up finds the damaged duplicate-check index."""
    database = tmp_path / "bot.db"
    asyncio.run(_a_real_database(database))
    _corrupt_page(database, "predictions_auto_once")
    broken = database.read_bytes()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISCORD_TOKEN", "MTE" + "x" * 67)
    monkeypatch.setenv("SENTIMENT_DB", str(database))
    monkeypatch.setenv("SENTIMENT_LOG_LEVEL", "WARNING")
    monkeypatch.setattr("bot.app.SentimentClassifier.load", lambda *a, **k: classifier)
    with fake_in_a_thread() as fake, point_discord_py_at(fake):
        status = bot.cli.main([])
    err = capsys.readouterr().err
    assert status == 2, err
    assert len(err.splitlines()) == 1, err
    (line,) = err.splitlines()
    assert str(database) in line and "damaged" in line and "quick_check" in line
    assert "REINDEX" in line and "restore a backup" in line
    assert database.read_bytes() == broken


async def test_corrupt_index_found_while_running_logs_one_error_not_a_traceback_per_message(
    tmp_path: Path,
    classifier: SentimentClassifier,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Damage the start-up check did not see (it was stopped on a huge file, or came later):
    the duplicate check fails for every message. One ERROR, no traceback, no reaction."""
    caplog.set_level(logging.INFO)
    database = tmp_path / "bot.db"
    await _a_real_database(database)
    _corrupt_page(database, "predictions_auto_once")

    async def check_stopped(path: Path, limit_s: float) -> None:
        """What a quick_check cut short on a very large file amounts to."""

    monkeypatch.setattr("bot.storage.sqlite._check_integrity", check_stopped)
    async with open_world(tmp_path, classifier) as world:  # strict: no discord.py tracebacks
        sent = await post(world, [f"{POSITIVE} ({i})" for i in range(5)])
        await world.fake.wait_for(
            lambda: any("automatic reactions are failing" in m for m in records(caplog, "bot")),
            description="the ERROR",
        )
        await asyncio.sleep(0.5)
        assert reaction_puts(world, sent) == 0
    errors = [m for m in records(caplog, "bot", logging.ERROR) if "reactions are failing" in m]
    assert len(errors) == 1 and "malformed" in errors[0]
    assert not [r for r in caplog.records if r.exc_info]  # no traceback at all
    assert records(caplog, "discord", logging.ERROR) == []


async def _fail_inserts_as_corrupt(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every insert meets a damaged page, as SQLite reports it."""

    def corrupt(sql: str, rows: list[tuple[object, ...]]) -> Any:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(world.bot.storage._backend.db, "executemany", corrupt)


async def _delete_the_files(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone deletes the database and its -wal and -shm while the bot runs."""
    path = world.bot.storage.path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@pytest.mark.parametrize(
    ("fault", "what"),
    [
        (_fail_inserts_as_corrupt, "is damaged (database disk image is malformed)"),
        (_delete_the_files, "was deleted or replaced while the bot ran"),
    ],
    ids=["corrupt on insert", "file deleted while running"],
)
async def test_broken_database_stops_reactions_says_so_once_and_commands_still_answer(
    tmp_path: Path,
    classifier: SentimentClassifier,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fault: Callable[[World, pytest.MonkeyPatch], Awaitable[None]],
    what: str,
) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    async with open_world(tmp_path, classifier) as world:
        storage = world.bot.storage
        before = await react_to(world, POSITIVE)  # works until the fault
        await fault(world, monkeypatch)
        sent = await post(world, [f"{POSITIVE} ({i})" for i in range(4)])
        await world.fake.wait_for(
            lambda: storage.writer_stats.unavailable is not None, description="the breakdown"
        )
        started = time.monotonic()
        reply = await world.slash("sentiment", {"text": NEGATIVE})
        assert time.monotonic() - started < 5  # told at once, not left waiting
        assert "Negative" in reply.text and "not saved" in reply.text
        more = await post(world, [f"{NEGATIVE} ({i})" for i in range(4)])
        await world.settle()
        await asyncio.sleep(0.3)
        assert reaction_puts(world, sent + more) == 0  # no reaction claims a stored row
        assert reaction_puts(world, [before]) == 1
        assert not storage.writer_stats.running  # the writer stopped retrying
    errors = records(caplog, "bot", logging.ERROR)
    storage_errors = records(caplog, "bot.storage", logging.ERROR)
    (error,) = storage_errors  # one ERROR for the breakdown, naming the file and the fix
    assert str(storage.path) in error and what in error
    assert "restore a backup" in error or "restore a backup" in error.lower()
    assert len(errors) <= 2  # plus at most one for the /sentiment that was not saved
    assert not [r for r in caplog.records if r.exc_info]


async def test_long_outage_keeps_a_bounded_backlog_and_says_so_once(
    tmp_path: Path, classifier: SentimentClassifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    async with open_world(tmp_path, classifier) as world:
        storage = world.bot.storage
        storage._writer._max_pending = 3  # MAX_PENDING (10,000) in production
        undo = await _lock(world)
        try:
            kept = await post(world, [f"{POSITIVE} (kept {i})" for i in range(3)])
            await world.fake.wait_for(lambda: storage.writer_stats.pending == 3)
            over = await post(world, [f"{POSITIVE} (over {i})" for i in range(3)])
            await world.fake.wait_for(lambda: storage.writer_stats.over_bound == 3)
            assert storage.writer_stats.pending == 3
        finally:
            await undo()
        await wait_for_reactions(world, kept)
        await world.settle()
        assert reaction_puts(world, over) == 0
        rows = await world.rows(guild_id=GUILD)
        assert sorted(r.message_id for r in rows if r.source == "auto") == sorted(kept)
    errors = records(caplog, "bot.storage", logging.ERROR)
    (error,) = errors
    assert "3 predictions are waiting" in error and "not stored" in error
    assert any("takes predictions again" in m for m in records(caplog, "bot.storage", logging.INFO))


# --------------------------------------------------------------------------------------------
# Commands answer in time while the database fails (issue 11, item 9)


async def _locked_with_a_backlog(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], Awaitable[None]]:
    """Another program holds the write lock, and a prediction waits in the writer's queue: a
    command that needs the queue written first (/forget-me) would wait for the lock."""
    undo = await _lock(world)
    await post(world, [POSITIVE])
    await world.fake.wait_for(lambda: world.bot.storage.writer_stats.failing, description="retry")
    return undo


async def _broken(world: World, monkeypatch: pytest.MonkeyPatch) -> Callable[[], Awaitable[None]]:
    """Every statement that writes meets a damaged page, as SQLite reports it."""
    db = world.bot.storage._backend.db

    async def malformed(*args: object, **kwargs: object) -> Any:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(db, "execute", malformed)
    monkeypatch.setattr(db, "executemany", malformed)

    async def undo() -> None:
        monkeypatch.undo()

    return undo


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (_locked_with_a_backlog, "database is locked"),
        (_broken, "database disk image is malformed"),
    ],
    ids=["write-locked by another program", "broken"],
)
async def test_commands_answer_in_time_that_storage_is_unavailable_while_the_database_fails(
    tmp_path: Path,
    classifier: SentimentClassifier,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fault: Callable[[World, pytest.MonkeyPatch], Awaitable[Callable[[], Awaitable[None]]]],
    reason: str,
) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    async with open_world(tmp_path, classifier) as world:
        storage = world.bot.storage
        await react_to(world, NEGATIVE)  # a row about Alice
        undo = await fault(world, monkeypatch)
        try:
            started = time.monotonic()
            forget = await world.fake.invoke_slash(
                "forget-me", {}, user_id=ALICE, channel_id=GENERAL, guild_id=GUILD
            )
            admin = await world.fake.invoke_slash(
                "sentiment-admin",
                {"channel": RANDOM, "enabled": True},
                user_id=OWNER,
                channel_id=GENERAL,
                guild_id=GUILD,
                subcommand="reactions",
            )
            forget_reply = await forget.wait_for_reply(timeout=15)
            admin_reply = await admin.wait_for_reply(timeout=15)
            assert time.monotonic() - started < 10  # a few seconds, not "when it recovers"
            for reply in (forget_reply, admin_reply):
                assert "Storage is unavailable right now" in reply.text
                assert reason in reply.text and "was not carried out" in reply.text
                assert reply.ephemeral
            assert "forget you" in forget_reply.text
            assert "automatic reactions on" in admin_reply.text
            assert not storage.opted_out(ALICE)  # not carried out: nothing changed
        finally:
            await undo()
        await world.settle()
        assert RANDOM not in (await storage.guild_settings(GUILD)).auto_channels
        assert [r for r in await world.rows() if r.user_id == ALICE]  # nothing was erased
        # Once the database works again, so does the command.
        assert "Done: erased" in (await world.slash("forget-me")).text
        assert not [r for r in await world.rows() if r.user_id == ALICE]
    warnings = records(caplog, "bot.interactions")
    assert len(warnings) == 2 and all("storage unavailable" in w for w in warnings)
    assert any("/forget-me" in w and "was not carried out" in w for w in warnings)
    assert not [r for r in caplog.records if r.exc_info]  # no traceback
    assert records(caplog, "discord", logging.ERROR) == []


async def test_sentiment_answers_in_time_while_its_row_waits_for_a_locked_database(
    tmp_path: Path,
    classifier: SentimentClassifier,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """/sentiment waits for its row's commit, but not past a few seconds: the mood is told,
    with a line saying the row is queued and will be saved when the database recovers."""
    caplog.set_level(logging.INFO, logger="bot")
    async with open_world(tmp_path, classifier) as world:
        undo = await _lock(world)
        try:
            started = time.monotonic()
            interaction = await world.fake.invoke_slash(
                "sentiment", {"text": NEGATIVE}, user_id=ALICE, channel_id=GENERAL, guild_id=GUILD
            )
            reply = await interaction.wait_for_reply(timeout=15)
            assert time.monotonic() - started < 10
            assert interaction.response_type == 5 and reply.via == "followup"
            assert "Negative" in reply.text and "database is locked" in reply.text
            assert "queued and will be carried out when it recovers" in reply.text
        finally:
            await undo()
        await world.settle()
        (row,) = [r for r in await world.rows() if r.source == "command"]
        assert row.text == NEGATIVE  # written once the lock went
    assert not [r for r in caplog.records if r.exc_info]
