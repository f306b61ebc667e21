"""The one ``sentiment`` command: its subcommands are the existing entry points."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.command import SUBCOMMANDS, main

REPO = Path(__file__).resolve().parent.parent


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("bot", "train", "evaluate", "history", "sandbox", "db"):
        assert f"\n  {name} " in out


def test_no_subcommand_prints_the_usage_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: sentiment {bot,train,evaluate,history,sandbox,db}" in capsys.readouterr().err


def test_an_unknown_subcommand_is_one_line_naming_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["trian"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unknown command 'trian'" in err and "train" in err and "sentiment --help" in err


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_each_subcommand_is_its_entry_point_under_its_new_name(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: sentiment {name} ")


def test_a_subcommands_errors_name_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.db"
    assert main(["history", "--db", str(missing)]) != 0
    assert str(missing) in capsys.readouterr().err


def test_the_command_runs_as_a_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot.command", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "sandbox" in done.stdout
