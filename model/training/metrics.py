"""Evaluation: accuracy, F1, confusion matrix, calibration, confident-prediction coverage, band;
the three-way reports and the reaction thresholds. It only computes: the tables are in
``formatting.py``, the plots in ``plots.py``.

Everything works on ``y`` (0/1 labels) and ``p`` (probability of positive), so the same code
reports on any split, any artifact, any file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss

from model.serving.moods import MOODS

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
