"""Sharding across processes, without Discord: the settings and their one-line errors, which
guilds a process answers for, the log tag, the lines for Discord's sharding closes, and the
parts that must leave another process's guilds alone (departures, mood alerts).

The processes themselves run in tests/test_shards_e2e.py.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import discord
import pytest

import bot.cli
from bot.alert_service import AlertService
from bot.alerts import Notice, WatchRule
from bot.cli import main
from bot.config import Settings, describe_shards
from bot.decisions import serves, shard_of
from bot.sharding import ShardTagFormatter, sharding_refusal
from bot.storage import PredictionRecord, Storage
from model.settings import SettingsError

TOKEN = "MTAxMDEwMTAxMDEwMTAxMDEw.GxYzAb.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"
GUILD_0 = (1_000_000 << 22) | 5  # shard 0 of 2
GUILD_1 = (1_000_001 << 22) | 5  # shard 1 of 2
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def settings(**env: str) -> Settings:
    return Settings.from_env({"DISCORD_TOKEN": TOKEN, **env})


def test_unset_is_one_connection_for_every_guild_as_before() -> None:
    s = settings()
    assert (s.shard_count, s.shard_ids, s.sharded, s.shards) == (None, None, False, ())
    assert serves(GUILD_0, None, ()) and serves(GUILD_1, None, ())


@pytest.mark.parametrize(
    ("count", "ids", "shards"),
    [
        ("2", "", (0, 1)),  # no ids: every shard in this process
        ("2", "1", (1,)),
        ("8", "0-3", (0, 1, 2, 3)),
        ("16", " 4-5, 0 ,9", (0, 4, 5, 9)),
        ("1", "0", (0,)),
    ],
)
def test_shard_settings_are_read(count: str, ids: str, shards: tuple[int, ...]) -> None:
    s = settings(SENTIMENT_SHARD_COUNT=count, SENTIMENT_SHARD_IDS=ids)
    assert s.sharded and s.shard_count == int(count) and s.shards == shards


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SENTIMENT_SHARD_COUNT": "0"}, "SENTIMENT_SHARD_COUNT='0' is not a whole number from 1"),
        ({"SENTIMENT_SHARD_COUNT": "two"}, "SENTIMENT_SHARD_COUNT='two'"),
        ({"SENTIMENT_SHARD_COUNT": "2", "SENTIMENT_SHARD_IDS": "a"}, "SENTIMENT_SHARD_IDS='a'"),
        ({"SENTIMENT_SHARD_COUNT": "4", "SENTIMENT_SHARD_IDS": "3-1"}, "like 0,1 or 0-3"),
        ({"SENTIMENT_SHARD_COUNT": "4", "SENTIMENT_SHARD_IDS": "0,0"}, "each once"),
        ({"SENTIMENT_SHARD_COUNT": "4", "SENTIMENT_SHARD_IDS": "0-2,1"}, "each once"),
        ({"SENTIMENT_SHARD_COUNT": "4", "SENTIMENT_SHARD_IDS": "-1"}, "SENTIMENT_SHARD_IDS"),
        (
            {"SENTIMENT_SHARD_COUNT": "2", "SENTIMENT_SHARD_IDS": "0-2"},
            "names shard 2, but with SENTIMENT_SHARD_COUNT=2 the shard ids run from 0 to 1",
        ),
        ({"SENTIMENT_SHARD_IDS": "0"}, "SENTIMENT_SHARD_IDS is set but SENTIMENT_SHARD_COUNT"),
    ],
)
def test_bad_shard_settings_are_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        settings(**env)
    assert "\n" not in str(caught.value) and "Fix" in str(caught.value)


def test_main_refuses_bad_shard_settings_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("SENTIMENT_SHARD_COUNT", "2")
    monkeypatch.setenv("SENTIMENT_SHARD_IDS", "2")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: SENTIMENT_SHARD_IDS names shard 2")


def test_a_guild_belongs_to_one_shard_as_on_discord() -> None:
    assert (shard_of(GUILD_0, 2), shard_of(GUILD_1, 2)) == (0, 1)
    assert serves(GUILD_0, 2, (0,)) and not serves(GUILD_1, 2, (0,))
    assert serves(GUILD_1, 2, (0, 1))
    # every guild has exactly one shard whichever the count
    for count in (1, 3, 7):
        owners = [s for s in range(count) if serves(GUILD_1, count, (s,))]
        assert owners == [shard_of(GUILD_1, count)]


def test_log_lines_name_the_shards() -> None:
    assert describe_shards((1,), 2) == "shard 1 of 2"
    assert describe_shards((0, 1, 2, 3), 8) == "shards 0-3 of 8"
    assert describe_shards((0, 2), 4) == "shards 0, 2 of 4"
    formatter = ShardTagFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"), "x")
    record = logging.LogRecord("bot.client", logging.INFO, __file__, 1, "%d guilds", (3,), None)
    assert formatter.format(record) == "INFO bot.client: [x] 3 guilds"
    assert record.getMessage() == "3 guilds"  # other handlers see the record unchanged


@pytest.mark.parametrize(
    ("code", "env", "words"),
    [
        (4011, {}, "Discord requires sharding"),
        (4011, {"SENTIMENT_SHARD_COUNT": "2"}, "SENTIMENT_SHARD_COUNT=2 a shard holds more"),
        (4010, {"SENTIMENT_SHARD_COUNT": "2", "SENTIMENT_SHARD_IDS": "1"}, "SHARD_IDS=1"),
    ],
)
def test_sharding_closes_are_one_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    code: int,
    env: dict[str, str],
    words: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    async def closed(_: Settings) -> None:
        socket = SimpleNamespace(close_code=code)
        raise discord.ConnectionClosed(socket, shard_id=None, code=code)  # type: ignore[arg-type]

    monkeypatch.setattr(bot.cli, "run_bot", closed)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert main([]) == 2
    finally:  # sentiment-bot installs discord.py's log handler on the root logger
        root.handlers[:] = handlers
        root.setLevel(level)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and words in err
    assert sharding_refusal(4000, settings()) is None  # any other close is not about shards


def _record(guild_id: int, message_id: int, *, at: datetime) -> PredictionRecord:
    return PredictionRecord(
        guild_id=guild_id,
        channel_id=2,
        message_id=message_id,
        user_id=10,
        source="auto",
        label="negative",
        p_positive=0.1,
        in_band=False,
        model_version="test",
        created_at=at,
        text=None,
        author_id=10,
    )


async def test_departures_leave_another_shards_guilds_alone(tmp_path: Path) -> None:
    """A process sees only its shards' guilds: the others are not "gone" to it."""
    storage = await Storage.open(tmp_path / "bot.db")
    try:
        for n, guild_id in enumerate((GUILD_0, GUILD_1)):
            await storage.add(_record(guild_id, n + 1, at=NOW))
        mine = lambda guild_id: serves(guild_id, 2, (0,))  # noqa: E731
        # shard 0's process is in GUILD_0; GUILD_1 is on shard 1, not left
        assert await storage.reconcile_guilds([GUILD_0], owns=mine) == ([], [])
        assert await storage.guild_departure(GUILD_1) is None
        # unsharded, the same view means the bot left GUILD_1 (as before)
        assert await storage.reconcile_guilds([GUILD_0]) == ([], [GUILD_1])
        # and the purge: shard 0's process never deletes GUILD_1 (shard 1 answers for it)
        later = NOW + timedelta(days=400)
        assert await storage.purge_departed_guilds(grace_days=30, now=later, owns=mine) == {}
        deleted = await storage.purge_departed_guilds(grace_days=30, now=later)
        assert list(deleted) == [GUILD_1]
    finally:
        await storage.close()


async def test_mood_alerts_check_only_the_processs_guilds(tmp_path: Path) -> None:
    """Two processes would otherwise post the same alert twice."""
    storage = await Storage.open(tmp_path / "bot.db")
    posted: list[Notice] = []

    async def post(notice: Notice) -> int:
        posted.append(notice)
        return 1000 + len(posted)

    rule = WatchRule(
        threshold=0.5, resolve_below=0.3, window_minutes=10, min_messages=5, cooldown_minutes=60
    )
    service = AlertService(
        storage, post, interval=60, clock=lambda: NOW, serves=lambda g: serves(g, 2, (1,))
    )
    try:
        await service.start()
        for n, guild_id in enumerate((GUILD_0, GUILD_1)):
            await storage.set_alert_channel(guild_id, 50)
            await storage.watch_channel(guild_id, 2, rule)
            for i in range(5):
                await storage.add(_record(guild_id, n * 100 + i, at=NOW - timedelta(minutes=1)))
        await service.check()
        assert [n.guild_id for n in posted] == [GUILD_1]
    finally:
        await service.stop()
        await storage.close()
