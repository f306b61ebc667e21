"""scripts/loadtest.py on a small burst: the invariants hold and every figure is printed.

No timing is asserted: speed is what the script measures, not what a test checks.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from model import SentimentClassifier

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "loadtest.py"
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
    spec = importlib.util.spec_from_file_location("loadtest", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["loadtest"] = module
    spec.loader.exec_module(module)
    return module


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
    # The bot runs in a process of its own: its figures are its own.
    assert report["raw_before"] and report["raw_after"] and report["ratio"]
    assert report["peak_rss_mib"] > 100  # the bot's process holds the model
    assert {"event loop", "model thread"} <= set(report["cpu_seconds"])
    assert report["harness_cpu_seconds"] > 0 and report["machine"]
    assert f"machine: {report['machine']}" in text and "bot CPU during the burst" in text


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
