"""``sentiment-history --export-user``: a data-access request that arrives by mail, answered
from the read-only path with the same document /my-data sends."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli import history_main
from bot.storage import PredictionRecord, Storage

T0 = datetime(2024, 5, 8, 12, 30, tzinfo=UTC)
ALICE, BOB = 111_111_111_111_111, 222_222_222_222_222


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    path = tmp_path / "bot.db"
    storage = await Storage.open(path)
    for guild, user, text in ((1, ALICE, "alice in one"), (1, BOB, "bob"), (2, ALICE, "two")):
        await storage.add(
            PredictionRecord(
                guild_id=guild, channel_id=10, message_id=None, user_id=user, source="command",
                label="positive", p_positive=0.9, in_band=False, model_version="v",
                created_at=T0, text=text,
            )
        )  # fmt: skip
    live = io.StringIO()
    await storage.export_member(1, ALICE, live.write, now=T0)
    (path.parent / "live.json").write_text(live.getvalue())
    await storage.close()
    return path


def test_export_user_prints_the_members_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = db.read_bytes()
    assert history_main(["--db", str(db), "--export-user", str(ALICE), "--guild", "1"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert [p["text"] for p in data["predictions"]] == ["alice in one"]
    live = json.loads((db.parent / "live.json").read_text())
    assert {**data, "exported_at": None} == {**live, "exported_at": None}  # what /my-data sends
    assert "bob" not in captured.out and "two" not in captured.out
    assert captured.err.strip() == (
        f"exported user {ALICE} in guild 1: predictions 1, predictions_by_others 0, "
        "corrections 0, corrections_by_others 0, opt_out 0 "
        f"({len(captured.out.encode())} bytes)"
    )
    assert db.read_bytes() == before  # read-only


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--export-user", str(ALICE)], "--export-user needs --guild GUILD_ID"),
        (["--export-user", "-5", "--guild", "1"], "--export-user -5 is not a Discord id"),
        (
            ["--export-user", str(ALICE), "--guild", "1", "--mood", "positive", "--csv"],
            "--export-user exports every row of the member: leave out --mood, --csv.",
        ),
    ],
)
def test_export_user_mistakes_get_one_line(
    db: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert history_main(["--db", str(db), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"error: {message}" in captured.err and captured.err.count("\n") == 1
