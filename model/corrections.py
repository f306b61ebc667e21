"""The bot's corrections as training data (``sentiment-train --corrections DATABASE``): a small
read-only reader of the bot's SQLite file, the held-out split, and the report of how the
predictions on the held-out corrections moved.

The model side knows nothing of Discord and imports nothing of the bot: it reads one table of
the database with :mod:`sqlite3`, opened read-only (safe while the bot runs), and needs only
three of its columns: ``text`` (NULL where the text was not kept: such rows are skipped),
``mood`` (the mood meant) and ``created_at``. Of several corrections of the same text, the
latest wins.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from model.data import BINARY, CORRECTIONS, DataError, Dataset

_SQLITE_HEADER: Final = b"SQLite format 3\x00"
_QUERY: Final = "SELECT text, mood FROM corrections WHERE text IS NOT NULL ORDER BY created_at, id"
DEFAULT_HELD_OUT: Final = 0.3
DEFAULT_WEIGHT: Final = 10.0


def load_corrections(path: Path, classes: tuple[str, ...]) -> Dataset:
    """The corrections with text in the bot's database at ``path``, labelled as ``classes``
    (a binary model: the neutral ones are left out). DataError naming the file and the fix for
    a missing file, one that is not a database, or one without corrections with text."""
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        raise DataError(
            f"--corrections {path}: no such file; give the bot's database (SENTIMENT_DB, by "
            "default data/sentiment.db)"
        ) from None
    except OSError as exc:
        raise DataError(f"--corrections {path}: cannot read it ({exc.strerror})") from None
    if header != _SQLITE_HEADER:
        raise DataError(f"--corrections {path} is not a SQLite database; give the bot's database")
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5.0)
        try:
            rows = conn.execute(_QUERY).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise DataError(
            f"--corrections {path}: cannot read its corrections ({exc}); is it the bot's "
            "database, and has a bot with corrections run on it?"
        ) from None
    latest: dict[str, str] = {}
    for text, mood in rows:
        latest.pop(text, None)  # re-inserted: the latest correction of a text wins, in order
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
            f"corrections ({report['database']}): {report['rows']} with text, "
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
