"""The bot's corrections as training data (``sentiment-train --corrections FILE``): the reader of
the file the bot's operator CLI exports (``sentiment-history --corrections --export FILE``), the
held-out split, and the report of how the predictions on the held-out corrections moved.

The model side knows nothing of Discord and reads no database: the bot exports its corrections
that kept their text as CSV (a header naming at least ``text`` and ``mood``, the mood meant:
negative, neutral or positive), oldest first; of several corrections of the same text, the
latest wins. Given the bot's database itself, it says how to export it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from model.training.data import BINARY, CORRECTIONS, THREE_WAY, DataError, Dataset

_SQLITE_HEADER: Final = b"SQLite format 3\x00"
DEFAULT_HELD_OUT: Final = 0.3
DEFAULT_WEIGHT: Final = 10.0


def load_corrections(path: Path, classes: tuple[str, ...]) -> Dataset:
    """The corrections exported to ``path``, labelled as ``classes`` (a binary model: the
    neutral ones are left out). DataError naming the file, the line and the fix for a missing
    file, the bot's database given instead of its export, a malformed row, or no row."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"--corrections {path}: no such file; export the bot's corrections with "
            "sentiment-history --corrections --export FILE"
        ) from None
    except OSError as exc:
        raise DataError(f"--corrections {path}: cannot read it ({exc.strerror})") from None
    if raw.startswith(_SQLITE_HEADER):
        raise DataError(
            f"--corrections {path} is the bot's database; export its corrections first: "
            f"sentiment-history --db {path} --corrections --export corrections.csv, then pass "
            "--corrections corrections.csv"
        )
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"--corrections {path} is not UTF-8 text; export it again") from None
    reader = csv.reader(io.StringIO(content, newline=""))
    header = [name.strip().lower() for name in next(reader, [])]
    if "text" not in header or "mood" not in header:
        raise DataError(
            f"--corrections {path}: the first line must name the columns text and mood (as "
            "sentiment-history --corrections --export writes them)"
        )
    text_at, mood_at = header.index("text"), header.index("mood")
    latest: dict[str, str] = {}
    for row in reader:
        if not row:
            continue
        line = reader.line_num
        if len(row) <= max(text_at, mood_at):
            raise DataError(f"{path}:{line}: the row has {len(row)} columns, not {len(header)}")
        text, mood = row[text_at], row[mood_at].strip()
        if mood not in THREE_WAY:
            raise DataError(
                f"{path}:{line}: mood {mood!r} is not negative, neutral or positive; fix the row "
                "or export the file again"
            )
        if text.strip():
            latest.pop(text, None)  # re-inserted: the latest correction of a text wins
            latest[text] = mood
    kept = [(text, mood) for text, mood in latest.items() if mood in classes]
    if not kept:
        raise DataError(
            f"--corrections {path} holds no correction with text"
            + (" and a polar mood" if classes == BINARY else "")
            + ": the text is kept only for /sentiment answers and in servers that store message "
            "text (/sentiment-admin)"
        )
    return Dataset(
        [text for text, _ in kept],
        np.asarray([classes.index(mood) for _, mood in kept], dtype=np.int64),
        f"{path} (corrections)",
        classes=classes,
        origin=(CORRECTIONS,) * len(kept),
    )


def split_held_out(data: Dataset, share: float, seed: int) -> tuple[Dataset, Dataset]:
    """(rows to train on, rows held out): a seeded shuffle, ``share`` of them held out (at
    least one, and at least one left to train on when there are two or more)."""
    n = len(data)
    held = min(max(1, round(n * share)), n - 1) if n > 1 else 1
    order = np.random.default_rng(seed).permutation(n)
    held_idx, train_idx = sorted(order[:held]), sorted(order[held:])

    def pick(idx: list[int], part: str) -> Dataset:
        return Dataset(
            [data.texts[i] for i in idx],
            data.labels[idx] if idx else np.zeros(0, dtype=np.int64),
            f"{data.source} {part}",
            classes=data.classes,
            origin=(CORRECTIONS,) * len(idx),
        )

    return pick(train_idx, "trained on"), pick(held_idx, "held out")


def held_out_report(
    held: Dataset, before: NDArray[np.float64], after: NDArray[np.float64]
) -> dict[str, Any]:
    """How the predictions on the held-out corrections moved: accuracy (the most probable mood
    is the one meant) and the mean probability of the mood meant, before and after, and how
    many predictions were fixed or broken."""
    rows = np.arange(len(held))
    y = held.labels
    right_before, right_after = before.argmax(axis=1) == y, after.argmax(axis=1) == y
    p_before, p_after = before[rows, y], after[rows, y]
    return {
        "held_out": len(held),
        "before": {"accuracy": float(right_before.mean()), "p_meant": float(p_before.mean())},
        "after": {"accuracy": float(right_after.mean()), "p_meant": float(p_after.mean())},
        "fixed": int((~right_before & right_after).sum()),
        "broken": int((right_before & ~right_after).sum()),
        "moved_towards_meant": int((p_after > p_before).sum()),
    }


def format_corrections_report(report: dict[str, Any]) -> str:
    """The lines ``sentiment-train`` prints about the corrections."""
    before, after = report["before"], report["after"]
    gain = (after["accuracy"] - before["accuracy"]) * 100
    return "\n".join(
        [
            f"corrections ({report['file']}): {report['rows']} with text, "
            f"{report['trained_on']} trained on (weight {report['weight']:g} each), "
            f"{report['held_out']} held out",
            f"  held-out accuracy {before['accuracy']:.1%} -> {after['accuracy']:.1%} "
            f"({gain:+.1f} points); mean P(mood meant) {before['p_meant']:.3f} -> "
            f"{after['p_meant']:.3f}",
            f"  {report['fixed']} fixed, {report['broken']} broken, "
            f"{report['moved_towards_meant']} of {report['held_out']} moved towards the mood "
            "meant (before: the same training without the corrections)",
        ]
    )
