"""The operator CLI reads the bot's database: table, CSV, stats, clear errors."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import history_main
from bot.storage import PredictionRecord, Storage
from bot.storage.dsn import Dsn


def as_argument(database: Path | Dsn) -> Path | str:
    """What the operator types after --db: the file, or the address as given."""
    return database.reveal() if isinstance(database, Dsn) else database


@pytest.fixture
async def db(database: Path | Dsn) -> Path | str:
    path = as_argument(database)
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


@pytest.fixture
async def three_way_db(database: Path | Dsn) -> Path | str:
    """A binary row, two three-way rows and a text in French the model did not read."""
    path = as_argument(database)
    storage = await Storage.open(path)
    now = datetime.now(UTC)
    common = {"guild_id": 1, "channel_id": 1000, "user_id": 10, "model_version": "abc123"}
    records = [
        PredictionRecord(
            **common, message_id=200, source="auto", label="positive", p_positive=0.9,
            in_band=False, created_at=now - timedelta(minutes=3),
        ),
        PredictionRecord(
            **common, message_id=201, source="auto", label="negative", p_positive=0.1,
            in_band=False, created_at=now - timedelta(minutes=2), p_negative=0.75, p_neutral=0.15,
        ),
        PredictionRecord(
            **common, message_id=202, source="auto", label="neutral", p_positive=0.5,
            in_band=True, created_at=now - timedelta(minutes=1), p_negative=0.1, p_neutral=0.8,
        ),
        PredictionRecord(
            **common, message_id=203, source="command", label="neutral", p_positive=0.5,
            in_band=True, created_at=now, text="je ne sais pas", unread="language:fr",
        ),
    ]  # fmt: skip
    for record in records:
        await storage.add(record)
    await storage.close()
    return path


def test_csv_has_the_probabilities_and_why_a_text_was_not_read(
    three_way_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert history_main(["--db", str(three_way_db), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    by_message = {r["message"]: r for r in rows}
    assert list(rows[0])[-3:] == ["p_negative", "p_neutral", "unread"]  # appended
    assert {k: by_message["201"][k] for k in ("mood", "p_negative", "p_neutral", "unread")} == {
        "mood": "negative",
        "p_negative": "0.750",
        "p_neutral": "0.150",
        "unread": "",
    }
    assert (by_message["200"]["p_negative"], by_message["200"]["p_neutral"]) == ("", "")
    french = by_message["203"]
    assert (french["mood"], french["unread"], french["p_negative"]) == (
        "unread",
        "language:fr",
        "",
    )


def test_table_says_not_read_and_stats_count_it_apart(
    three_way_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert history_main(["--db", str(three_way_db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "p_negative" in lines[0] and "p_neutral" in lines[0]
    (french,) = [line for line in lines if "je ne sais pas" in line]
    assert "not read (language:fr)" in french
    (neutral,) = [line for line in lines if " 202 " in line]
    assert "neutral" in neutral and "0.100" in neutral and "0.800" in neutral

    assert history_main(["--db", str(three_way_db), "--stats"]) == 0
    out = capsys.readouterr().out
    assert "matching the filter: 4 (1 not read)" in out
    assert "33.3%" in out  # each mood: one of the three texts read
    assert re.search(r"not read\s+1\b", out)

    assert history_main(["--db", str(three_way_db), "--stats", "--csv"]) == 0
    stats = {r["mood"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert stats["positive"]["count"] == "1" and stats["positive"]["share"] == "0.3333"
    assert (stats["unread"]["count"], stats["unread"]["share"]) == ("1", "0.2500")
