"""The metric tables the commands print: a binary report, a three-way report, the chat set's.

Each takes a report dict made by :mod:`model.training.metrics` or
:mod:`model.training.chateval` (as saved in the JSON reports) and returns lines of text.
"""

from __future__ import annotations

from typing import Any

from model.serving.moods import MOODS
from model.training.chateval import CHAT_LABELS
from model.training.metrics import ECE_BINS


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


def _chat_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100.0 * value:.1f}%"


def format_chat_report(report: dict[str, Any], title: str) -> str:
    """A short multi-line text block of ``chat_report``'s figures, percentages to 1 decimal."""
    lines = [
        f"{title}: {report['n']} messages ({report['n_polar']} positive/negative, "
        f"{report['n_neutral']} neutral)"
    ]
    if "thresholds" in report:
        t = report["thresholds"]
        lines.append(
            f"  reacts when                  P(negative) >= {t['negative']:.3f}, "
            f"P(positive) >= {t['positive']:.3f}"
        )
    elif "band" in report:
        low, high = report["band"]
        lines.append(f"  neutral band                 {low:.3f} < p < {high:.3f}")
    lines += [
        f"  positive/negative accuracy   {_chat_pct(report['polar_accuracy'])}",
        f"  voiced                       {_chat_pct(report['polar_voiced_rate'])} of them, "
        f"{_chat_pct(report['polar_voiced_accuracy'])} right",
        f"  neutral left silent          {_chat_pct(report['neutral_caught_rate'])}",
        f"  three-way accuracy           {_chat_pct(report['three_way_accuracy'])}",
    ]
    if report.get("most_probable_accuracy") is not None:
        recall = report["most_probable_recall"]
        lines.append(
            f"  most probable mood right     {_chat_pct(report['most_probable_accuracy'])} (recall "
            + ", ".join(f"{mood} {_chat_pct(recall[mood])}" for mood in CHAT_LABELS)
            + ")"
        )
    if report.get("reactions_precision") is not None:
        lines.append(f"  reactions right              {_chat_pct(report['reactions_precision'])}")
    if report.get("unread"):
        lines.append(f"  left unread                  {report['unread']}")
    by_category: dict[str, dict[str, Any]] = report.get("by_category") or {}
    if by_category:
        parts = [
            f"{name} {_chat_pct(entry['three_way_accuracy'])} ({entry['n']})"
            for name, entry in by_category.items()
        ]
        lines += _wrap_parts("  by category (three-way): ", parts, indent="    ", width=100)
    return "\n".join(lines)


def _wrap_parts(lead: str, parts: list[str], *, indent: str, width: int) -> list[str]:
    """``parts`` joined by ", " after ``lead``, wrapped only between parts."""
    lines: list[str] = []
    current = lead
    for index, part in enumerate(parts):
        piece = part + ("," if index < len(parts) - 1 else "")
        if current not in (lead, indent) and len(current) + len(piece) > width:
            lines.append(current.rstrip())
            current = indent
        current += piece + " "
    lines.append(current.rstrip())
    return lines
