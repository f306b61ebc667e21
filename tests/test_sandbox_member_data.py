"""The sandbox shows /my-data (the JSON file saved) and the bot leaving the server: what it
keeps, the re-join that keeps everything, and the purge past the grace period."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SCRIPT = """\
I absolutely love this, what a wonderful day!
/my-data
:leave
hello?
:rejoin
:later 31
:leave
:later 29
:later 31
:rejoin
:quit
"""


def test_sandbox_shows_my_data_and_leaving(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("SENTIMENT_ARTIFACT", None)
    env.pop("SENTIMENT_LEAVE_GRACE_DAYS", None)
    result = subprocess.run(
        [
            sys.executable, "-m", "bot.sandbox.cli", "--db", str(tmp_path / "sandbox.db"),
            "--fresh", "--out", str(out), "--log", str(tmp_path / "sandbox.log"),
        ],
        input=SCRIPT, capture_output=True, text=True, encoding="utf-8", cwd=REPO, env=env,
        timeout=120, check=False,
    )  # fmt: skip
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert "Traceback" not in output + result.stderr
    assert "! the bot logged an error" not in output
    assert "Everything the bot holds about you in Sandbox: 1 prediction you made" in output
    (saved,) = out.glob("my-data-*.json")
    data = json.loads(saved.read_text(encoding="utf-8"))
    assert len(data["predictions"]) == 1 and data["predictions"][0]["source"] == "auto"
    assert f"[file saved: {saved}]" in output
    assert "the bot was removed from Sandbox. It keeps the server's settings and 1 prediction " \
        "for 30 days" in output  # fmt: skip
    assert "error: the bot is not in this server (:leave); :rejoin adds it back" in output
    assert "the bot is back in Sandbox: nothing was deleted (1 prediction)" in output
    assert "31 days later, the bot's purge ran: 0 predictions past retention deleted, 1 kept" in (
        output
    )
    assert "29 days later, the bot's purge ran: 0 predictions past retention deleted" in output
    assert "31 days later, the bot's purge ran: the server's settings and all its predictions " \
        "are deleted" in output  # fmt: skip
    assert "the bot is back in Sandbox, starting afresh: its data was deleted" in output
