"""``sentiment-bot`` start-up and shutdown with real processes and signals (issue 11, item 12).

Discord unreachable at start-up gives one line and a non-zero exit; SIGTERM while discord.py
waits to reconnect ends the process within seconds, after the graceful steps; the database is
checked before the model loads (seconds), and both before Discord is contacted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from e2e_support import GENERAL, GUILD, OWNER

import bot.cli
from fakediscord import FakeDiscord

REPO = Path(__file__).resolve().parent.parent
TOKEN = "MTE" + "x" * 67
START_BUDGET_S = 120.0  # importing torch and loading the model on a busy 2-core machine
SIGNAL_BUDGET_S = 10.0

# The bot process: ``sentiment-bot`` pointed at argv[1] (API) and argv[2] (gateway). With
# argv[3] == "slow-reconnect", discord.py waits an hour before each reconnect attempt (its
# backoff grows to minutes in a real outage), so that a signal surely comes during the wait.
CHILD = """
import sys
import yarl
import discord.client
from discord.gateway import DiscordWebSocket
from discord.http import Route
Route.BASE = sys.argv[1]
DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(sys.argv[2])
if sys.argv[3] == "slow-reconnect":
    class Hour:
        def delay(self):
            return 3600.0
    discord.client.ExponentialBackoff = Hour
import bot.cli
sys.exit(bot.cli.main([]))
"""


def _lines(log: Path) -> list[str]:
    """The log's lines, less transformers' "Loading weights" progress bar (drawn on stderr)."""
    text = log.read_text(encoding="utf-8")
    return [line for line in text.split("\n") if line and "Loading weights" not in line]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there now: connections are refused


async def _start_bot(
    tmp_path: Path, api: str, gateway: str, *, level: str, mode: str = ""
) -> tuple[asyncio.subprocess.Process, Path]:
    env = {
        **os.environ,
        "DISCORD_TOKEN": TOKEN,
        "SENTIMENT_DB": str(tmp_path / "bot.db"),
        "SENTIMENT_DEV_GUILD_ID": str(GUILD),
        "SENTIMENT_LOG_LEVEL": level,
        # the artifact's own numeric path: a forced other one (the CI runs the suite with
        # SENTIMENT_PRECISION set) adds a legitimate warning to the one line these tests count
        "SENTIMENT_PRECISION": "",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    log = tmp_path / "bot.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, api, gateway, mode,
            cwd=tmp_path, env=env, stdout=out, stderr=out,
        )  # fmt: skip
    return process, log


def _tail(log: Path, lines: int = 40) -> str:
    """The end of the bot's log, for a failure message."""
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


async def _wait_for_log(process: asyncio.subprocess.Process, log: Path, text: str) -> None:
    deadline = time.monotonic() + START_BUDGET_S
    while text not in log.read_text(encoding="utf-8", errors="replace"):
        assert process.returncode is None, log.read_text(encoding="utf-8", errors="replace")
        assert time.monotonic() < deadline, f"no {text!r} in the log within {START_BUDGET_S} s"
        await asyncio.sleep(0.2)


async def test_discord_unreachable_at_start_up_is_one_line_and_a_non_zero_exit(
    tmp_path: Path,
) -> None:
    port = _closed_port()
    process, log = await _start_bot(
        tmp_path,
        f"http://127.0.0.1:{port}/api/v10",
        f"ws://127.0.0.1:{port}/gateway",
        level="WARNING",
    )
    try:
        status = await asyncio.wait_for(process.wait(), START_BUDGET_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    lines = _lines(log)
    assert status == 2, lines
    (line,) = lines  # at WARNING nothing else: no traceback, no unclosed session
    assert line.startswith("error: cannot reach Discord"), line
    assert f"127.0.0.1:{port}" in line  # what failed
    assert "network" in line and "proxy" in line and "DISCORD_TOKEN" in line  # what to check


async def test_invalid_token_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    wrong_token = "MTE" + "y" * 67  # not the bot's token: 401
    async with FakeDiscord(bot_name="Sentiment Bot", token=wrong_token) as fake:
        process, log = await _start_bot(
            tmp_path, fake.api_base_url, fake.gateway_url, level="WARNING"
        )
        try:
            status = await asyncio.wait_for(process.wait(), START_BUDGET_S)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    lines = _lines(log)
    assert status == 2, lines
    (line,) = lines
    assert line.startswith("error: Discord refused DISCORD_TOKEN"), line
    assert TOKEN not in log.read_text(encoding="utf-8")  # the token is never shown


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_while_waiting_to_reconnect_ends_the_process_within_seconds(
    tmp_path: Path, sig: signal.Signals
) -> None:
    fake = FakeDiscord(bot_name="Sentiment Bot")
    fake.add_guild(GUILD, "Test Guild", owner_id=OWNER).add_channel(GENERAL, "general")
    await fake.start()
    try:
        process, log = await _start_bot(
            tmp_path, fake.api_base_url, fake.gateway_url, level="INFO", mode="slow-reconnect"
        )
        await _wait_for_log(process, log, "connected as")
    finally:
        await fake.close()  # Discord goes away: the port is closed, the gateway dropped
    try:
        await _wait_for_log(process, log, "Attempting a reconnect in 3600.00s")
        sent = time.monotonic()
        process.send_signal(sig)
        try:
            status = await asyncio.wait_for(process.wait(), SIGNAL_BUDGET_S)
        except TimeoutError:
            pytest.fail(f"still running {SIGNAL_BUDGET_S:g} s after {sig.name}:\n{_tail(log)}")
        took = time.monotonic() - sent
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = log.read_text(encoding="utf-8")
    assert status == 0, text
    assert took < SIGNAL_BUDGET_S
    # the graceful steps ran, and only then the clean line
    steps = ["signal received", "shutting down: finishing predictions", "shut down cleanly"]
    places = [text.find(step) for step in steps]
    assert -1 not in places and places == sorted(places), text
    assert len(re.findall(r"model \S+ loaded", text)) == 1, text  # loaded (and logged) once


@pytest.mark.parametrize("broken", ["corrupt file", "unwritable path"])
def test_bad_database_stops_the_bot_before_the_model_loads_or_discord_is_contacted(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    broken: str,
) -> None:
    if broken == "corrupt file":
        database = tmp_path / "bot.db"
        database.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
        database.chmod(0o600)  # as the bot creates it: no warning about its mode
    else:
        (tmp_path / "a-file").write_text("not a folder")
        database = tmp_path / "a-file" / "bot.db"
    port = _closed_port()  # had the bot tried Discord, it would say so instead
    monkeypatch.setattr("discord.http.Route.BASE", f"http://127.0.0.1:{port}/api/v10")
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("SENTIMENT_DB", str(database))
    monkeypatch.setenv("SENTIMENT_LOG_LEVEL", "WARNING")
    loads: list[object] = []
    monkeypatch.setattr("bot.app.SentimentClassifier.load", lambda *a, **k: loads.append(a))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        status = bot.cli.main([])
    finally:  # sentiment-bot installs discord.py's log handler on the root logger
        root.handlers[:] = handlers
        root.setLevel(level)
    err = capsys.readouterr().err
    assert status == 2, err
    (line,) = err.splitlines()
    assert line.startswith("error: ") and str(database) in line, line
    assert loads == []  # the model was never loaded


def test_bad_artifact_stops_the_bot_before_discord_is_contacted_and_closes_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = tmp_path / "classifier.safetensors"
    artifact.write_bytes(b"not an artifact")
    database = tmp_path / "bot.db"
    port = _closed_port()  # had the bot tried Discord, it would say so instead
    monkeypatch.setattr("discord.http.Route.BASE", f"http://127.0.0.1:{port}/api/v10")
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("SENTIMENT_DB", str(database))
    monkeypatch.setenv("SENTIMENT_ARTIFACT", str(artifact))
    monkeypatch.setenv("SENTIMENT_LOG_LEVEL", "WARNING")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        status = bot.cli.main([])
    finally:  # sentiment-bot installs discord.py's log handler on the root logger
        root.handlers[:] = handlers
        root.setLevel(level)
    err = capsys.readouterr().err
    assert status == 2, err
    (line,) = err.splitlines()
    assert line.startswith("error: ") and str(artifact) in line, line
    # The database was opened first (the cheap check) and closed again on the way out.
    assert database.is_file() and not Path(f"{database}-wal").exists()
