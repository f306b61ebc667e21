"""scripts/loadtest.py (and scripts/loadtest_bot.py, the bot in a process of its own) on a
small burst: the invariants hold and every figure is printed.

No timing is asserted: speed is what the script measures, not what a test checks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from scripts_support import load_script

from model import SentimentClassifier

FIGURES = (
    "messages sent",
    "predictions logged",
    "reactions seen",
    "read as neutral (silent)",
    "shed (queue full)",
    "throughput",
    "raw classifier",
    "bot / raw",
    "latency p50 / p95 / p99",
    "event-loop lag p99",
    "peak RSS",
    "neutral band off",
)


@pytest.fixture(scope="module")
def loadtest() -> ModuleType:
    return load_script("loadtest")


@pytest.fixture(scope="module")
def loadtest_bot(loadtest: ModuleType) -> ModuleType:
    return load_script("loadtest_bot")


@pytest.fixture(scope="module")
def classifier() -> SentimentClassifier:
    return SentimentClassifier.load()


def _run(
    loadtest: ModuleType,
    classifier: SentimentClassifier,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *args: str,
) -> tuple[int, str, dict[str, Any]]:
    out = tmp_path / "report.json"
    rc = loadtest.main([*args, "--json", str(out), "--timeout", "30"], classifier=classifier)
    return rc, capsys.readouterr().out, json.loads(out.read_text(encoding="utf-8"))


def test_burst_every_message_gets_one_row_and_one_reaction(
    loadtest: ModuleType,
    classifier: SentimentClassifier,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc, text, report = _run(
        loadtest,
        classifier,
        tmp_path,
        capsys,
        *("--messages", "100", "--guilds", "2", "--channels", "2", "--members", "5"),
        *("--raw-messages", "32"),
    )
    assert rc == 0, text
    for figure in FIGURES:
        assert figure in text
    assert "invariants: PASS" in text and "FAIL" not in text
    assert report["ok"] is True and report["completed"] is True
    assert report["sent"] == 100 and report["shed"] == 0  # the default queue holds them all
    # a three-way model stays silent on what it reads as neutral: stored, not reacted to
    assert report["rows"] == report["reactions"] + report["silent"] == 100
    assert report["reactions"] > 50
    assert all(report["invariants"].values()) and len(report["invariants"]) >= 5
    assert report["raw_texts"] == 32 and report["raw_throughput"]


def test_a_tiny_queue_sheds_but_loses_nothing(
    loadtest: ModuleType,
    classifier: SentimentClassifier,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc, text, report = _run(
        loadtest,
        classifier,
        tmp_path,
        capsys,
        *("--messages", "60", "--guilds", "1", "--channels", "3", "--members", "4"),
        *("--max-queue", "2", "--max-batch", "4", "--raw-messages", "0"),
    )
    assert rc == 0, text
    assert report["ok"] is True
    assert report["rows"] == report["reactions"] + report["silent"] == 60 - report["shed"]
    assert report["raw_throughput"] is None  # --raw-messages 0 skips the bare timing


def test_bad_arguments_exit_with_a_message(
    loadtest: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        loadtest.main(["--messages", "0"])
    assert exc.value.code == 2
    assert "--messages must be >= 1" in capsys.readouterr().err


def test_the_bot_in_a_process_of_its_own_reports_its_own_figures(
    loadtest_bot: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    rc = loadtest_bot.main(
        [
            *("--messages", "200", "--guilds", "2", "--channels", "2", "--members", "5"),
            *("--raw-messages", "64", "--timeout", "30", "--json", str(out)),
        ]
    )
    text = capsys.readouterr().out
    report = json.loads(out.read_text(encoding="utf-8"))
    assert rc == 0, text
    assert "invariants: PASS" in text and "FAIL" not in text
    assert report["ok"] is True and report["completed"] is True
    assert report["sent"] == 200 and report["shed"] == 0
    assert report["rows"] == report["reactions"] + report["silent"] == 200
    assert all(report["invariants"].values()) and len(report["invariants"]) >= 5
    # The path the bot's process served, resolved as the bot resolves it, is the one timed raw.
    path = report["precision"]
    assert path in ("fp32", "bf16", "int8") and report["raw_precision"] == path
    assert report["precision_asked"] == (os.environ.get("SENTIMENT_PRECISION") or "auto")
    assert f"serving path: {path} (asked: {report['precision_asked']}" in text
    if path == "int8":  # the bot's process serves int8 without torch, as sentiment-bot does
        assert report["torch_threads"] == 0
    # Its own figures: memory (VmHWM of that process), CPU of its threads, its loop's lag.
    assert report["peak_rss_mib"] >= report["ready_rss_mib"] > 50
    assert {"event loop", "model thread"} <= set(report["cpu_seconds"])
    assert report["cpu_wall_seconds"] > 0 and report["cpu_ms_per_message"] > 0
    assert report["loop_lag_ms"]["samples"] > 0 and report["harness_cpu_seconds"] > 0
    # Raw timed before and after the burst; throughput counts every message answered.
    assert report["raw_texts"] == 64 and report["raw_before"] and report["raw_after"]
    assert report["throughput"] > 0 and report["ratio"] == pytest.approx(
        report["throughput"] / report["raw_throughput"]
    )
    assert report["machine"] and f"machine: {report['machine']}" in text
    for figure in (*FIGURES, "peak RSS once ready", "bot CPU during the burst", "CPU per message"):
        assert figure in text
    assert "VmHWM of the bot's process" in text and "database: SQLite" in text


def test_the_bot_process_load_test_refuses_a_bad_path_in_one_line(
    loadtest_bot: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as exc:
        loadtest_bot.main(["--precision", "int4"])
    assert exc.value.code == 2
    assert "argument --precision: invalid choice: 'int4'" in capsys.readouterr().err
    monkeypatch.setenv("SENTIMENT_PRECISION", "int4")
    with pytest.raises(SystemExit) as exc:
        loadtest_bot.main([])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("loadtest_bot: error: SENTIMENT_PRECISION='int4' is not auto, fp32")
