"""sentiment-sandbox shows "Why": the /sentiment answer and the menu's, as the console prints
them, end with the words that moved the mood most."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SCRIPT = """\
/sentiment I hate this
thanks so much, you are the best
:analyze 1
:quit
"""


def test_the_console_prints_the_words_that_moved_the_mood(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("SENTIMENT_ARTIFACT", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.sandbox.cli",
            "--db",
            str(tmp_path / "sandbox.db"),
            "--fresh",
            "--out",
            str(tmp_path / "out"),
            "--log",
            str(tmp_path / "sandbox.log"),
        ],
        input=SCRIPT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert "Traceback" not in output + result.stderr
    command, menu = output.split("you@#general> :analyze 1")
    # /sentiment: the bold of "**hate**" is made plain by the console
    assert re.search(r"\| Words that moved it most: hate pushed it negative by 0\.\d\d", command)
    assert re.search(r"thanks pushed it positive by 0\.\d\d", menu)  # the menu on message #1
    assert "! the bot logged an error" not in output
