"""``sentiment-history --corrections --export FILE`` then ``sentiment-train --corrections FILE``:
the bot's corrections with text join the training rows, a share is held out, and the report
says how the predictions on those moved; and the operator's listing for review."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import history_main
from bot.storage import CorrectionRecord, Storage
from model.cli.train import train_main
from model.training.corrections import load_corrections, split_held_out
from model.training.data import BINARY, THREE_WAY

T0 = datetime(2024, 5, 1, tzinfo=UTC)
# Gamers' praise that a model trained on film reviews reads as negative: each one corrected
# to positive by the member who typed it into /sentiment.
THINGS = ["boss fight", "combo", "new map", "build", "clutch", "trailer", "drop", "beat",
          "skin", "edit", "play", "goal", "trick", "solo", "update", "stream", "riff", "jump",
          "save", "finish", "headshot", "remix", "speedrun", "collab", "set", "dunk", "move",
          "shot", "track", "fit"]  # fmt: skip


def correction(
    i: int, text: str | None, mood: str = "positive", **changes: object
) -> CorrectionRecord:
    values: dict[str, object] = {
        "prediction_id": i + 1,
        "guild_id": 1,
        "channel_id": 2,
        "message_id": None,
        "user_id": 100 + i,
        "author_id": 100 + i,
        "source": "command",
        "mood": mood,
        "model_mood": "negative",
        "model_version": "test",
        "created_at": T0 + timedelta(minutes=i),
        "text": text,
    }
    values.update(changes)
    return CorrectionRecord(**values)  # type: ignore[arg-type]


def make_database(path: Path, records: list[CorrectionRecord]) -> Path:
    async def write() -> None:
        store = await Storage.open(path)
        for record in records:
            await store.add_correction(record)
        await store.close()

    asyncio.run(write())
    return path


@pytest.fixture(scope="module")
def corrections_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fixes") / "bot.db"
    records = [correction(i, f"that {thing} was sick") for i, thing in enumerate(THINGS)]
    records.append(correction(90, None))  # no text kept: not used for training
    return make_database(path, records)


def export(db: Path, target: Path) -> Path:
    assert history_main(["--db", str(db), "--corrections", "--export", str(target)]) == 0
    return target


def test_the_reader_takes_the_latest_correction_of_each_text(tmp_path: Path) -> None:
    db = make_database(
        tmp_path / "bot.db",
        [
            correction(0, "meh", "negative"),
            correction(1, "meh", "neutral"),  # someone else, later: wins
            correction(2, "fine", "neutral"),
            correction(3, None),
            correction(4, 'a "quoted",\ttabbed\nline', "negative"),  # exported unchanged
        ],
    )
    db = export(db, tmp_path / "fixes.csv")
    data = load_corrections(db, THREE_WAY)
    assert data.texts == ["meh", "fine", 'a "quoted",\ttabbed\nline']
    assert data.labels.tolist() == [1, 1, 0]
    assert len(load_corrections(db, BINARY)) == 1  # a binary model has no neutral
    train, held = split_held_out(load_corrections(db, THREE_WAY), 0.3, seed=0)
    assert len(train) == 2 and len(held) == 1


def test_bad_corrections_files_get_one_line(
    tmp_path: Path, sst2_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--data-dir", str(sst2_dir), "--limit", "10", "--quiet",
            "--output", str(tmp_path / "m.safetensors")]  # fmt: skip
    assert train_main([*base, "--corrections", str(tmp_path / "missing.csv")]) == 2
    assert "no such file; export the bot's corrections with" in capsys.readouterr().err
    db = make_database(tmp_path / "bot.db", [correction(0, "meh", "neutral")])
    assert train_main([*base, "--corrections", str(db)]) == 2
    assert f"sentiment-history --db {db} --corrections --export" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("text,mood\nfine,happy\n")
    assert train_main([*base, "--corrections", str(tmp_path / "notes.txt")]) == 2
    assert "notes.txt:2: mood 'happy' is not negative, neutral or positive" in (
        capsys.readouterr().err
    )
    fixes = export(db, tmp_path / "fixes.csv")  # neutral only: nothing for a binary model
    capsys.readouterr()
    assert train_main([*base, "--corrections", str(fixes)]) == 2
    assert "no correction with text and a polar mood" in capsys.readouterr().err
    assert train_main([*base, "--corrections-weight", "5"]) == 2
    assert "only applies with --corrections" in capsys.readouterr().err


def test_training_on_corrections_moves_the_held_out_ones_towards_the_mood_meant(
    corrections_db: Path,
    sst2_dir: Path,
    goemotions_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = tmp_path / "chat.safetensors"
    argv = ["--task", "three-way", "--data-dir", str(sst2_dir), "--chat-data",
            str(goemotions_dir), "--limit", "100", "--cache-dir", str(tmp_path / "cache"),
            "--quiet", "--C", "0.1", "1", "--precision", "fp32", "--output", str(output),
            "--corrections", str(export(corrections_db, tmp_path / "fixes.csv"))]  # fmt: skip
    assert train_main(argv) == 0
    out = capsys.readouterr().out
    report = json.loads(output.with_suffix(".report.json").read_text())["corrections"]
    assert (report["rows"], report["trained_on"], report["held_out"]) == (30, 21, 9)
    before, after = report["before"], report["after"]
    # the right direction: more of the held-out corrections read as meant, and every one's
    # probability of the mood meant went up
    assert after["accuracy"] > before["accuracy"]
    assert after["p_meant"] > before["p_meant"] + 0.1
    assert report["moved_towards_meant"] == 9 and report["broken"] == 0
    # ... and the report says by how much
    gain = (after["accuracy"] - before["accuracy"]) * 100
    assert (
        f"held-out accuracy {before['accuracy']:.1%} -> {after['accuracy']:.1%} ({gain:+.1f} "
        "points)" in out
    )
    assert "21 trained on (weight 10 each), 9 held out" in out
    training = json.loads(output.with_suffix(".report.json").read_text())["training"]
    assert training["train_rows_by_source"]["corrections"] == 21


def test_the_operator_lists_corrections_for_review(
    corrections_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert history_main(["--db", str(corrections_db), "--corrections", "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert "that track was sick" in out and "positive" in out and "negative" in out
    assert "(3 of 31 corrections, from row 1)" in out
    assert history_main(["--db", str(corrections_db), "--corrections", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("id,time_utc,guild,channel,message,user,author,corrected,mood,")
    assert len(lines) == 1 + 20  # the default limit
    assert history_main(["--db", str(corrections_db), "--corrections", "--stats"]) == 2
    assert "--stats and --corrections" in capsys.readouterr().err


def test_sentiment_train_takes_the_bots_database_itself(
    corrections_db: Path,
    sst2_dir: Path,
    goemotions_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The one command reads the database through the bot's read-only path and hands the
    model side a CSV; the same corrections as the export, so the same report."""
    from bot.command import main as sentiment

    output = tmp_path / "chat.safetensors"
    argv = ["train", "--task", "three-way", "--data-dir", str(sst2_dir), "--chat-data",
            str(goemotions_dir), "--limit", "100", "--cache-dir", str(tmp_path / "cache"),
            "--quiet", "--C", "0.1", "1", "--precision", "fp32", "--output", str(output),
            f"--corrections={corrections_db}"]  # fmt: skip
    assert sentiment(argv) == 0
    assert f"corrections: 30 with text read from the database {corrections_db}" in (
        capsys.readouterr().out
    )
    report = json.loads(output.with_suffix(".report.json").read_text())["corrections"]
    assert (report["rows"], report["trained_on"], report["held_out"]) == (30, 21, 9)
    assert report["after"]["p_meant"] > report["before"]["p_meant"]
    # a database that cannot be read is one line
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    assert sentiment(["train", "--corrections", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
