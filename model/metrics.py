"""Evaluation: accuracy, F1, confusion matrix, calibration, confident-prediction coverage, band.

Everything works on ``y`` (0/1 labels) and ``p`` (probability of positive), so the same code
reports on any split, any artifact, any file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss

from model.moods import MOODS

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
CONFIDENCE_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
ECE_BINS = 15


def expected_calibration_error(
    y: IntArray, p: FloatArray, n_bins: int = ECE_BINS
) -> tuple[float, list[dict[str, float]]]:
    """ECE over equal-width bins of the predicted probability of positive.

    Returns the ECE and the bins (mean predicted, observed positive share, count): the points of
    the reliability diagram.
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    bins: list[dict[str, float]] = []
    ece = 0.0
    for b in range(n_bins):
        in_bin = which == b
        count = int(in_bin.sum())
        if count == 0:
            continue
        predicted = float(p[in_bin].mean())
        observed = float(y[in_bin].mean())
        ece += count / len(y) * abs(predicted - observed)
        bins.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "predicted": predicted,
                "observed": observed,
                "count": count,
            }
        )
    return float(ece), bins


def choose_band(y: IntArray, p: FloatArray, target: float = 0.9) -> tuple[float, float]:
    """The neutral band (low, high) around 0.5, chosen on held-out data.

    ``high`` is the smallest threshold >= 0.5 at which the predictions ``p >= high`` are at least
    ``target`` precise (share truly positive); ``low`` likewise for negatives (``p <= low``).
    Inside the band the bot stays silent. With no threshold reaching the target, that side's
    edge goes to the most extreme probability seen (almost nothing is said on that side).
    """
    if not 0.5 <= target < 1.0:
        raise ValueError(f"band precision target must be in [0.5, 1), got {target}")
    return _edge(y, p, target, positive=False), _edge(y, p, target, positive=True)


def _edge(y: IntArray, p: FloatArray, target: float, *, positive: bool) -> float:
    # Scores oriented so that larger = more confident on this side.
    s = p if positive else 1.0 - p
    hit = (y == 1) if positive else (y == 0)
    order = np.argsort(-s, kind="stable")
    s_sorted, hits = s[order], hit[order].astype(np.float64)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    # Candidate cut-offs are the distinct scores >= 0.5; keep the loosest one meeting the target.
    ok = (precision >= target) & (s_sorted >= 0.5)
    # A cut must not split equal scores: take positions where the next score is smaller.
    last_of_run = np.append(s_sorted[1:] < s_sorted[:-1], True)
    ok &= last_of_run
    # The edge is the cut row's own probability, never 1 - (1 - p): that can round past p and
    # leave the cut row itself inside the band.
    if ok.any():
        return float(p[order[np.flatnonzero(ok)[-1]]])
    if not len(p):
        return 1.0 if positive else 0.0
    extreme = float(p[order[0]])
    return max(extreme, 0.5) if positive else min(extreme, 0.5)


def band_stats(y: IntArray, p: FloatArray, band: tuple[float, float]) -> dict[str, float]:
    """Coverage and precision of the predictions the bot would voice with this band."""
    low, high = band
    pos = p >= high
    neg = p <= low
    said = pos | neg
    n = len(y)
    return {
        "low": low,
        "high": high,
        "coverage": float(said.mean()) if n else 0.0,
        "accuracy_outside": float(((pos & (y == 1)) | (neg & (y == 0)))[said].mean())
        if said.any()
        else float("nan"),
        "precision_positive": float((y[pos] == 1).mean()) if pos.any() else float("nan"),
        "precision_negative": float((y[neg] == 0).mean()) if neg.any() else float("nan"),
        "coverage_positive": float(pos.mean()) if n else 0.0,
        "coverage_negative": float(neg.mean()) if n else 0.0,
    }


def confidence_table(y: IntArray, p: FloatArray) -> list[dict[str, float]]:
    """For each confidence level: share of predictions at least that confident, and accuracy."""
    confidence = np.maximum(p, 1.0 - p)
    correct = (p >= 0.5).astype(np.int64) == y
    rows = []
    for level in CONFIDENCE_LEVELS:
        kept = confidence >= level
        rows.append(
            {
                "confidence": level,
                "coverage": float(kept.mean()),
                "precision": float(correct[kept].mean()) if kept.any() else float("nan"),
            }
        )
    return rows


def evaluate_probabilities(y: IntArray, p: FloatArray, band: tuple[float, float]) -> dict[str, Any]:
    """The full report for one labelled set."""
    pred = (p >= 0.5).astype(np.int64)
    ece, bins = expected_calibration_error(y, p)
    cm = confusion_matrix(y, pred, labels=[0, 1])
    return {
        "rows": len(y),
        "accuracy": float(accuracy_score(y, pred)),
        "f1_positive": float(f1_score(y, pred, pos_label=1, zero_division=0.0)),
        "f1_macro": float(f1_score(y, pred, average="macro", zero_division=0.0)),
        "confusion_matrix": {
            "labels": ["negative", "positive"],
            "rows_true_cols_predicted": cm.astype(int).tolist(),
        },
        "ece": ece,
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if len(y) else float("nan"),
        "reliability_bins": bins,
        "confident": confidence_table(y, p),
        "band": band_stats(y, p, band),
    }


def _pct(value: float, width: int = 0) -> str:
    text = "-" if value != value else f"{value:.1%}"  # NaN: nothing to measure
    return text.rjust(width)


def format_report(report: dict[str, Any], title: str) -> str:
    """Human-readable text for the terminal."""
    cm = report["confusion_matrix"]["rows_true_cols_predicted"]
    band = report["band"]
    lines = [
        title,
        f"  rows           {report['rows']}",
        f"  accuracy       {report['accuracy']:.2%}",
        f"  F1 (positive)  {report['f1_positive']:.4f}   F1 (macro) {report['f1_macro']:.4f}",
        f"  ECE ({ECE_BINS} bins)   {report['ece']:.4f}   log-loss {report['log_loss']:.4f}",
        "  confusion matrix        predicted neg  predicted pos",
        f"    true negative         {cm[0][0]:>13}  {cm[0][1]:>13}",
        f"    true positive         {cm[1][0]:>13}  {cm[1][1]:>13}",
        "  confident predictions   confidence >=  coverage  precision",
    ]
    for row in report["confident"]:
        lines.append(
            f"                          {row['confidence']:>12.2f}  {_pct(row['coverage'], 8)}"
            f"  {_pct(row['precision'], 9)}"
        )
    voicing = report.get("voicing")
    if voicing is not None:  # a three-way model: its reactions, by its per-mood thresholds
        predicted = report.get("three_way_predicted", [0, 0, 0])
        lines.append(
            f"  three-way: predicted {predicted[0]} negative, {predicted[1]} neutral, "
            f"{predicted[2]} positive; reacts on {_pct(voicing['coverage'])} of rows "
            f"(P >= {voicing['t_negative']:.3f} negative, >= {voicing['t_positive']:.3f} "
            f"positive), {_pct(voicing['precision'])} of them right"
        )
    else:
        lines.append(
            f"  neutral band {band['low']:.3f}..{band['high']:.3f}: the bot speaks on "
            f"{_pct(band['coverage'])} of rows, {_pct(band['accuracy_outside'])} of them right "
            f"(positive {_pct(band['precision_positive'])}, negative "
            f"{_pct(band['precision_negative'])})"
        )
    return "\n".join(lines)


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


# --------------------------------------------------------------------------------------------
# Three-way (negative / neutral / positive): ``y`` holds indices into MOODS, ``probs`` rows of
# P(negative), P(neutral), P(positive). ``band`` is (1 - t_negative, t_positive): a positive is
# voiced when it is the most probable mood and P(positive) >= t_positive, a negative likewise.


def voiced_moods(probs: FloatArray, band: tuple[float, float]) -> IntArray:
    """Index of the mood the bot would voice per row: the most probable one when it is positive
    or negative and confident enough, else neutral (1)."""
    label = probs.argmax(axis=1)
    t_neg, t_pos = 1.0 - band[0], band[1]
    voiced_pos = (label == 2) & (probs[:, 2] >= t_pos)
    voiced_neg = (label == 0) & (probs[:, 0] >= t_neg)
    return np.where(voiced_pos, 2, np.where(voiced_neg, 0, 1)).astype(np.int64)


def choose_thresholds(
    y: IntArray, probs: FloatArray, target: float = 0.9, step: float = 0.005
) -> tuple[float, float]:
    """The confidence per polar mood below which the bot stays silent, chosen on held-out data:
    of all pairs (t_negative, t_positive) on a grid from 0.5 up, the one that voices the largest
    mean share of the negative and the positive rows while the reactions it makes (both moods
    together) are at least ``target`` precise. A mood is voiced only where it is the most
    probable. Returned as a band (1 - t_negative, t_positive); with no pair reaching the target,
    (0, 1): the bot never reacts."""
    if not 0.5 <= target < 1.0:
        raise ValueError(f"precision target must be in [0.5, 1), got {target}")
    grid = np.round(np.arange(0.5, 1.0, step), 6)  # clean values: 0.735, not 0.7350000000000002
    label = probs.argmax(axis=1)
    counts = []
    for mood in (0, 2):
        mine = label == mood
        # reactions, right reactions, for each threshold on the grid
        said = mine[None, :] & (probs[None, :, mood] >= grid[:, None])
        counts.append((said.sum(axis=1), (said & (y == mood)[None, :]).sum(axis=1)))
    (n_neg, ok_neg), (n_pos, ok_pos) = counts
    total = n_neg[:, None] + n_pos[None, :]
    right = ok_neg[:, None] + ok_pos[None, :]
    precise = (total > 0) & (right >= target * total)
    if not precise.any():
        return 0.0, 1.0
    share = ok_neg[:, None] / max(int((y == 0).sum()), 1) + ok_pos[None, :] / max(
        int((y == 2).sum()), 1
    )
    i, j = np.unravel_index(np.argmax(np.where(precise, share, -1.0)), share.shape)
    return float(1.0 - grid[i]), float(grid[j])


def voicing_stats(y: IntArray, said: IntArray) -> dict[str, Any]:
    """What the bot voices: ``said`` holds, per row, the mood it would say (neutral = silent).
    Per polar mood: how many reactions, how precise they are, and the share of that mood's
    rows it voices; overall: the share of rows it reacts on and how many of those are right."""
    out: dict[str, Any] = {}
    react = said != 1
    out["coverage"] = float(react.mean()) if len(y) else 0.0
    out["precision"] = float((said[react] == y[react]).mean()) if react.any() else float("nan")
    for mood in (0, 2):
        name = MOODS[mood]
        hit = said == mood
        truly = y == mood
        out[f"precision_{name}"] = float((y[hit] == mood).mean()) if hit.any() else float("nan")
        out[f"voiced_share_{name}"] = float(hit[truly].mean()) if truly.any() else float("nan")
        out[f"reactions_{name}"] = int(hit.sum())
    return out


def mood_stats(y: IntArray, pred: IntArray) -> dict[str, Any]:
    """Accuracy, macro recall, per-mood recall and precision, confusion matrix of moods."""
    recall = {
        MOODS[k]: float((pred[y == k] == k).mean()) if (y == k).any() else float("nan")
        for k in range(3)
    }
    precision = {
        MOODS[k]: float((y[pred == k] == k).mean()) if (pred == k).any() else float("nan")
        for k in range(3)
    }
    present = [r for r in recall.values() if r == r]
    cm = confusion_matrix(y, pred, labels=[0, 1, 2])
    return {
        "rows": len(y),
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "macro_recall": float(np.mean(present)) if present else float("nan"),
        "recall": recall,
        "precision": precision,
        "f1_macro": float(f1_score(y, pred, labels=[0, 1, 2], average="macro", zero_division=0.0)),
        "confusion_matrix": {"labels": list(MOODS), "rows_true_cols_predicted": cm.tolist()},
    }


def said_report(y: IntArray, said: IntArray) -> dict[str, Any]:
    """The report of what a model says (voiced moods, silent = neutral), for models that give
    no three-way probabilities (a binary model with its neutral band)."""
    return {**mood_stats(y, said), "said": mood_stats(y, said), "voicing": voicing_stats(y, said)}


def three_way_report(y: IntArray, probs: FloatArray, band: tuple[float, float]) -> dict[str, Any]:
    """For one three-way labelled set: the most probable mood's accuracy, macro recall,
    per-mood recall and precision and confusion matrix; calibration; and what the bot says
    with its thresholds (``said``: silent = neutral; ``voicing``: its reactions)."""
    said = voiced_moods(probs, band)
    ece, _bins = expected_calibration_error(
        (probs.argmax(axis=1) == y).astype(np.int64), probs.max(axis=1)
    )
    return {
        **mood_stats(y, probs.argmax(axis=1)),
        "log_loss": float(log_loss(y, probs, labels=[0, 1, 2])) if len(y) else float("nan"),
        "ece_top": ece,
        "thresholds": {"negative": 1.0 - band[0], "positive": band[1]},
        "said": mood_stats(y, said),
        "voicing": voicing_stats(y, said),
    }


def format_three_way_report(report: dict[str, Any], title: str) -> str:
    """Human-readable text for a three-way report (or a binary model's ``said_report``)."""
    cm = report["confusion_matrix"]["rows_true_cols_predicted"]
    v = report["voicing"]
    said = report["said"]
    lines = [
        title,
        f"  rows           {report['rows']}",
        f"  accuracy       {report['accuracy']:.2%}   macro recall {report['macro_recall']:.2%}"
        f"   F1 (macro) {report['f1_macro']:.4f}",
        "  recall         " + "  ".join(f"{m} {_pct(report['recall'][m])}" for m in MOODS),
    ]
    if "log_loss" in report:
        lines.append(
            f"  log-loss       {report['log_loss']:.4f}   ECE (most probable, {ECE_BINS} bins) "
            f"{report['ece_top']:.4f}"
        )
    lines.append("  confusion matrix   predicted neg  predicted neu  predicted pos")
    for k, mood in enumerate(MOODS):
        lines.append(f"    true {mood:<9} {cm[k][0]:>14} {cm[k][1]:>14} {cm[k][2]:>14}")
    rule = ""
    if "thresholds" in report:
        t = report["thresholds"]
        rule = f" (P >= {t['negative']:.3f} negative, >= {t['positive']:.3f} positive)"
    lines.append(
        f"  what the bot says{rule}: {said['accuracy']:.2%} right three-way (silent = "
        f"neutral), macro recall {said['macro_recall']:.2%}"
    )
    lines.append(
        f"  reactions on {_pct(v['coverage'])} of rows, {_pct(v['precision'])} of them right"
    )
    for mood in ("positive", "negative"):
        lines.append(
            f"    {mood:<9} {v[f'reactions_{mood}']:>6} reactions, {_pct(v[f'precision_{mood}'])} "
            f"precise, voicing {_pct(v[f'voiced_share_{mood}'])} of the {mood} rows"
        )
    return "\n".join(lines)


def evaluate_three_way_binary(
    y: IntArray, probs: FloatArray, band: tuple[float, float]
) -> dict[str, Any]:
    """The binary report (positive against negative) of a three-way model on binary labels
    ``y`` (0 negative, 1 positive), plus what the bot would voice there by its thresholds."""
    p = probs[:, 2] / np.maximum(probs[:, 0] + probs[:, 2], 1e-300)
    report = evaluate_probabilities(y, p, band)
    said = voiced_moods(probs, band)
    report["voicing"] = voicing_stats(np.where(y == 1, 2, 0).astype(np.int64), said)
    report["voicing"].update({"t_negative": 1.0 - band[0], "t_positive": band[1]})
    report["three_way_predicted"] = np.bincount(probs.argmax(axis=1), minlength=3).tolist()
    return report
