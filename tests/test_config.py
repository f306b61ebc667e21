"""Bot settings: defaults, validation with one clear line, the token never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Secret, Settings
from model.settings import SettingsError

TOKEN = "MTAxMDEwMTAxMDEwMTAxMDEw.GxYzAb.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"


def test_defaults() -> None:
    s = Settings.from_env({"DISCORD_TOKEN": TOKEN})
    assert s.token.reveal() == TOKEN
    assert s.artifact is None and s.database == Path("data/sentiment.db")
    assert (s.max_batch, s.max_wait_ms, s.max_queue) == (256, 5.0, 1000)
    assert s.retention_days == 90 and s.dev_guild_id is None and s.log_level == "INFO"


def test_every_setting_is_read() -> None:
    s = Settings.from_env({
        "DISCORD_TOKEN": TOKEN, "SENTIMENT_ARTIFACT": "a.joblib", "SENTIMENT_DB": "x.db",
        "SENTIMENT_DEV_GUILD_ID": "123456789012345678", "SENTIMENT_MAX_BATCH": "8",
        "SENTIMENT_MAX_WAIT_MS": "2.5", "SENTIMENT_MAX_QUEUE": "50", "SENTIMENT_BATCH_SIZE": "16",
        "SENTIMENT_TORCH_THREADS": "2", "SENTIMENT_RETENTION_DAYS": "0",
        "SENTIMENT_LOG_LEVEL": "debug",
    })  # fmt: skip
    assert s.artifact == Path("a.joblib") and s.database == Path("x.db")
    assert s.dev_guild_id == 123456789012345678
    assert (s.max_batch, s.max_wait_ms, s.max_queue) == (8, 2.5, 50)
    assert (s.encoder_batch_size, s.torch_threads) == (16, 2)
    assert s.retention_days is None  # 0: keep forever
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "DISCORD_TOKEN is not set"),
        ({"DISCORD_TOKEN": "short"}, "does not look like a bot token"),
        ({"DISCORD_TOKEN": TOKEN, "SENTIMENT_MAX_BATCH": "0"}, "SENTIMENT_MAX_BATCH='0'"),
        ({"DISCORD_TOKEN": TOKEN, "SENTIMENT_MAX_WAIT_MS": "soon"}, "SENTIMENT_MAX_WAIT_MS"),
        ({"DISCORD_TOKEN": TOKEN, "SENTIMENT_DEV_GUILD_ID": "-4"}, "not a Discord id"),
        ({"DISCORD_TOKEN": TOKEN, "SENTIMENT_LOG_LEVEL": "LOUD"}, "SENTIMENT_LOG_LEVEL"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_token_never_shows() -> None:
    s = Settings.from_env({"DISCORD_TOKEN": TOKEN})
    for text in (repr(s), str(s), repr(s.token), f"{s.token}"):
        assert TOKEN not in text
    assert Secret(TOKEN) == s.token


def test_main_without_token_points_to_the_sandbox(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # one line
    assert "DISCORD_TOKEN is not set" in err and "sentiment-sandbox" in err


def test_main_with_a_bad_setting_prints_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("SENTIMENT_MAX_QUEUE", "many")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: SENTIMENT_MAX_QUEUE='many'")
