"""What the commands print and the JSON reports they write: the lines that describe a run, the
metric tables (formatted by ``model.training.formatting``) and the timings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from model.serving.encoder import Encoder
from model.training.data import ChatMapping, Dataset
from model.training.formatting import format_chat_report, format_report, format_three_way_report
from model.training.train import TrainResult


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True, default=float) + "\n")


def describe_encoder(encoder: Encoder, adapter: Path | None) -> str:
    spec = encoder.spec
    return (
        f"encoder {spec.name}{f' + adapter {adapter}' if adapter else ''}: {spec.pooling} "
        f"pooling, max {spec.max_length} tokens, {encoder.dim} dims"
        f"{', L2-normalised' if spec.normalize else ''}, {spec.precision}, text normaliser "
        f"{spec.text_normalizer}"
    )


def describe_data(train_on: str, train: Dataset, dev: Dataset, test: Dataset) -> str:
    skipped = train.skipped + dev.skipped + test.skipped
    return f"data: train {len(train)} rows ({train_on}), dev {len(dev)}, test {len(test)}" + (
        f"; {skipped} malformed rows skipped" if skipped else ""
    )


def describe_chat_data(
    mapping: ChatMapping,
    train: Dataset | None,
    dev: Dataset,
    train_counts: dict[str, int],
    dev_counts: dict[str, int],
) -> str:
    return (
        f"chat data ({mapping.describe()}): train {len(train or ())} comments, dev "
        f"{len(dev)}; dropped {train_counts['dropped']} and {dev_counts['dropped']}"
    )


def describe_speed(texts: int, seconds: float) -> str:
    return f"  embedding took {seconds:.1f} s ({texts / max(seconds, 1e-9):.0f} texts/s)"


def print_training_reports(
    result: TrainResult, dev_source: str, test_source: str, total_s: float
) -> None:
    """The dev and test tables, the chat data's when there are some, and the timings."""
    report = result.report
    print()
    print(format_report(report["dev"], f"dev ({dev_source})"))
    print()
    print(format_report(report["test"], f"test ({test_source})"))
    if "chat_dev" in report:
        print()
        print(format_three_way_report(report["chat_dev"], "chat dev (GoEmotions dev)"))
    if "chat" in report:
        print()
        print(format_chat_report(report["chat"], f"chat set ({report['chat']['data']})"))
    t = result.timings
    print()
    print(
        f"timings: embed train {t['embed_train_s']:.1f} s, dev {t['embed_dev_s']:.1f} s, "
        f"test {t['embed_test_s']:.1f} s; fit {t['fit_s']:.1f} s; evaluate "
        f"{t['evaluate_s']:.2f} s; total {total_s:.1f} s (including model load)"
    )
