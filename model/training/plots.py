"""The plots written beside an artifact: the reliability diagram and fine-tuning's loss curve
(matplotlib, drawn off-screen)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def plot_reliability(report: dict[str, Any], path: Path, title: str) -> None:
    """Reliability diagram (predicted vs observed share positive) with a count histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = report["reliability_bins"]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    centers = [(b["low"] + b["high"]) / 2 for b in bins]
    width = bins[0]["high"] - bins[0]["low"] if bins else 0.1
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    top.bar(
        centers,
        [b["observed"] for b in bins],
        width=width * 0.9,
        alpha=0.6,
        color="tab:blue",
        edgecolor="black",
        label="observed share positive",
    )
    top.plot(
        [b["predicted"] for b in bins],
        [b["observed"] for b in bins],
        "o-",
        color="tab:orange",
        label="bin mean",
    )
    low, high = report["band"]["low"], report["band"]["high"]
    for ax in (top, bottom):
        ax.axvspan(low, high, color="grey", alpha=0.15)
    top.set_ylabel("observed share positive")
    top.set_ylim(0, 1)
    top.set_title(
        f"{title}\nECE {report['ece']:.3f}, accuracy {report['accuracy']:.1%}; grey: neutral band",
        fontsize=9,
    )
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(centers, [b["count"] for b in bins], width=width * 0.9, color="tab:grey")
    bottom.set_xlabel("predicted probability of positive")
    bottom.set_ylabel("rows")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_loss_curve(
    points: list[dict[str, float]], path: Path, title: str, classes: int = 2
) -> None:
    """Fine-tuning's training loss (mean over each checkpoint window) against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.plot([p["step"] for p in points], [p["loss"] for p in points], "-", color="tab:blue")
    ax.axhline(math.log(classes), linestyle="--", color="grey", label=f"chance (ln {classes})")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (cross-entropy)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
