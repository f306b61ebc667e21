"""The operator CLI reads the bot's database: table, CSV, stats, clear errors."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import history_main
from bot.storage import PredictionRecord, Storage


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    path = tmp_path / "bot.db"
    storage = await Storage.open(path)
    now = datetime.now(UTC)
    rows = [
        (1, 10, 100, "positive", 0.95, False, "what a great day", now),
        (1, 10, 101, "negative", 0.05, False, None, now - timedelta(days=3)),
        (1, 11, 102, "positive", 0.55, True, "meh, fine", now - timedelta(days=40)),
        (2, 12, 103, "negative", 0.10, False, "awful; DROP TABLE predictions;--", now),
    ]
    for guild, user, message, label, p, in_band, text, when in rows:
        await storage.add(
            PredictionRecord(
                guild_id=guild, channel_id=guild * 1000, message_id=message, user_id=user,
                source="auto" if text is None else "command", label=label, p_positive=p,
                in_band=in_band, model_version="abc123", created_at=when, text=text,
            )
        )  # fmt: skip
    await storage.close()
    return path


def test_table_with_filters(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert history_main(["--db", str(db), "--guild", "1", "--days", "30"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["id", "time_utc", "guild"]
    assert "what a great day" in out and "meh" not in out  # 40 days old: filtered out
    assert lines[-1] == "(2 of 2 matching predictions, from row 1)"


def test_csv_round_trips_text_exactly(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert history_main(["--db", str(db), "--csv", "--mood", "negative"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["message"] for r in rows] == ["103", "101"]  # newest first
    assert rows[0]["text"] == "awful; DROP TABLE predictions;--"
    assert rows[0]["mood"] == "negative" and rows[0]["guild"] == "2"


def test_stats(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert history_main(["--db", str(db), "--stats", "--guild", "1"]) == 0
    out = capsys.readouterr().out
    assert "4 predictions" in out and "matching the filter: 3" in out
    assert "neutral" in out and "33.3%" in out


def test_missing_database_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert history_main(["--db", str(tmp_path / "nope.db")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no database at") and "SENTIMENT_DB" in err
