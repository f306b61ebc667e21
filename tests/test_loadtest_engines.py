"""scripts/loadtest.py on either database engine (``--db``): the same invariants hold on
SQLite and on PostgreSQL, and the report says which database it ran on. No timing is asserted.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from scripts_support import load_script

from bot.storage.dsn import Dsn
from model import SentimentClassifier


@pytest.fixture(scope="module")
def loadtest() -> ModuleType:
    return load_script("loadtest")


@pytest.fixture(scope="module")
def classifier() -> SentimentClassifier:
    return SentimentClassifier.load()


def test_the_load_test_runs_on_either_engine(
    loadtest: ModuleType,
    classifier: SentimentClassifier,
    engine: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # PostgreSQL: the session's server; the script creates a database of its own and drops it
    db = "sqlite" if engine == "sqlite" else request.getfixturevalue("postgres_server").reveal()
    out = tmp_path / "report.json"
    args = ["--messages", "60", "--raw-messages", "0", "--timeout", "30", "--db", db]
    assert loadtest.main([*args, "--json", str(out)], classifier=classifier) == 0
    text = capsys.readouterr().out
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["ok"] and report["rows"] == 60 - report["shed"]
    expected = "database: SQLite" if engine == "sqlite" else "database: PostgreSQL"
    assert expected in text and report["database"].startswith(expected.split(": ")[1])


def test_a_database_choice_that_is_neither_is_refused(
    loadtest: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        loadtest.parse_args(["--db", "mysql"])
    assert "--db takes sqlite, postgresql" in capsys.readouterr().err


def test_the_shard_comparison_splits_its_guilds_over_both_shards() -> None:
    shards = load_script("loadtest_shards")
    args = shards.parse_args(["--guilds", "6", "--cores", ""])
    assert len(args.cores) == 2 or len(shards.os.sched_getaffinity(0)) < 2
    assert [g >> 22 for g in shards.guild_ids(4)] == [1_000_000, 1_000_001, 1_000_002, 1_000_003]
    assert {name: len(procs) for name, (_, procs) in shards.LAYOUTS.items()} == {"1x2": 1, "2x1": 2}


@pytest.mark.engines("postgresql")  # SQLite: tests/test_loadtest.py
def test_the_bot_in_a_process_of_its_own_runs_on_postgresql(
    loadtest: ModuleType,
    engine: str,
    postgres_server: Dsn,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    loadtest_bot = load_script("loadtest_bot")
    out = tmp_path / "report.json"
    args = ["--messages", "60", "--raw-messages", "0", "--timeout", "30"]
    rc = loadtest_bot.main([*args, "--db", postgres_server.reveal(), "--json", str(out)])
    text = capsys.readouterr().out
    report = json.loads(out.read_text(encoding="utf-8"))
    assert rc == 0, text
    assert report["ok"] and report["rows"] == 60 - report["shed"]
    assert "database: PostgreSQL" in text and report["database"].startswith("PostgreSQL")
    assert report["peak_rss_mib"] > 0 and report["raw_throughput"] is None
