"""A hand-labelled chat-style evaluation set and a report on how the model and its band do on it.

The set is a UTF-8, tab-separated file with a header line ``text<TAB>label<TAB>category``
(category optional, default ``plain``); labels are ``positive``, ``negative`` or ``neutral``.
There is no quoting: a text is everything before the first tab and may not hold a tab itself.

The report scores predictions ``p`` (probability of positive) against those labels, with the
neutral band ``(low, high)``: a prediction strictly inside the band is neutral (the bot stays
silent), otherwise it is positive when ``p >= 0.5`` and negative below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from model.serving.classifier import SentimentClassifier

CHAT_LABELS = ("negative", "neutral", "positive")
DEFAULT_CATEGORY = "plain"
_HEADER_HINT = "text<TAB>label<TAB>category"


class ChatSetError(ValueError):
    """A chat set file that cannot be used; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class ChatSet:
    """Messages with their labels (one of ``CHAT_LABELS``) and categories, in file order."""

    texts: list[str]
    labels: list[str]
    categories: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.texts)


def default_chat_set_path() -> Path:
    """The committed chat set, ``chat_eval.tsv`` beside this module (package data, so it is in
    an installed package too)."""
    return Path(str(resources.files("model.training") / "chat_eval.tsv"))


def load_chat_set(path: str | Path) -> ChatSet:
    """Read a chat set file strictly; any problem raises ``ChatSetError`` naming file and line.

    Blank lines are skipped. Every other line after the header must hold 2 columns (text, label)
    or, when the header has a category column, 3 (an empty category counts as ``plain``).
    """
    file = Path(path)
    if not file.is_file():
        raise ChatSetError(
            f"chat set not found: looked for {file.resolve()}; pass the path of a "
            f"tab-separated file with the header {_HEADER_HINT}"
        )
    try:
        content = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ChatSetError(
            f"{file}: not valid UTF-8 ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from exc

    lines = content.splitlines()
    header_no = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_no is None:
        raise ChatSetError(f"{file}: the file is empty; add the header {_HEADER_HINT} and rows")
    columns = _parse_header(file, header_no + 1, lines[header_no])

    texts: list[str] = []
    labels: list[str] = []
    categories: list[str] = []
    for index in range(header_no + 1, len(lines)):
        line = lines[index]
        if not line.strip():
            continue
        number = index + 1
        fields = line.split("\t")
        if len(fields) not in (2, columns):
            expected = "2 (text, label)" if columns == 2 else "2 or 3 (text, label, category)"
            raise ChatSetError(
                f"{file}, line {number}: expected {expected} tab-separated columns, found "
                f"{len(fields)}; separate the columns with single tabs and keep tabs out of "
                "the text"
            )
        text = fields[0].strip()
        if not text:
            raise ChatSetError(f"{file}, line {number}: the text is empty; write the message")
        label = fields[1].strip().lower()
        if label not in CHAT_LABELS:
            raise ChatSetError(
                f"{file}, line {number}: unknown label {fields[1].strip()!r}; "
                f"use one of {', '.join(CHAT_LABELS)}"
            )
        category = fields[2].strip().lower() if len(fields) == 3 else ""
        texts.append(text)
        labels.append(label)
        categories.append(category or DEFAULT_CATEGORY)

    if not texts:
        raise ChatSetError(
            f"{file}: no messages after the header (line {header_no + 1}); add rows below it"
        )
    return ChatSet(texts=texts, labels=labels, categories=categories, source=str(path))


def _parse_header(file: Path, number: int, line: str) -> int:
    names = [name.strip().lower() for name in line.split("\t")]
    if names in (["text", "label"], ["text", "label", "category"]):
        return len(names)
    raise ChatSetError(
        f"{file}, line {number}: expected the header {_HEADER_HINT} (category optional), "
        f"found {line.strip()[:60]!r}; add the header as the first line"
    )


def evaluate_chat(classifier: SentimentClassifier, chat: ChatSet) -> dict[str, Any]:
    """``chat_report`` for what the classifier says to each message, exactly as it serves them
    (normalised text; nothing readable is a neutral 0.5)."""
    predictions = classifier.predict_batch(chat.texts)
    p = np.array([x.p_positive for x in predictions], dtype=np.float64)
    report = chat_report(
        chat.labels, p, classifier.band, chat.categories, moods=[x.mood for x in predictions]
    )
    report["unread"] = sum(1 for x in predictions if not x.read)
    if classifier.three_way:  # the band holds per-mood thresholds, not a band of p
        low, high = classifier.band
        report["thresholds"] = {"negative": 1.0 - low, "positive": high}
        # the classifier's own reading, before the bot's silence below its thresholds
        truth = np.asarray(chat.labels, dtype=object)
        label = np.asarray([x.label for x in predictions], dtype=object)
        report["most_probable_accuracy"] = float((label == truth).mean()) if len(truth) else None
        report["most_probable_recall"] = {
            mood: _share(label == truth, truth == mood) for mood in CHAT_LABELS
        }
    report["data"] = _display_path(chat.source)
    return report


def _display_path(source: str) -> str:
    """``source`` relative to the repository when it lies inside it: reports and artifacts do
    not carry the folder a checkout happens to be in."""
    root = Path(__file__).resolve().parents[2]  # the checkout (or site-packages), above model/
    try:
        return Path(source).resolve().relative_to(root).as_posix()
    except ValueError:
        return source


def chat_report(
    labels: Sequence[str],
    p_positive: NDArray[np.float64],
    band: tuple[float, float],
    categories: Sequence[str] | None = None,
    moods: Sequence[str] | None = None,
) -> dict[str, Any]:
    """How predictions ``p_positive`` and the neutral ``band`` do against chat labels.

    ``moods`` are what the bot would say (a three-way model's voiced moods); without them a
    prediction is neutral strictly inside the band, else positive when ``p >= 0.5``.

    Rates are ``None`` where there is nothing to divide by (no polar messages, no neutral ones,
    none voiced). ``by_category`` is empty when no categories are given.
    """
    p = np.asarray(p_positive, dtype=np.float64)
    n = len(labels)
    if p.shape != (n,):
        raise ValueError(f"expected {n} probabilities, one per label, got shape {p.shape}")
    if n and not (np.isfinite(p).all() and (p >= 0.0).all() and (p <= 1.0).all()):
        raise ValueError("probabilities must be finite and within [0, 1]")
    unknown = sorted(set(labels) - set(CHAT_LABELS))
    if unknown:
        raise ValueError(f"unknown labels {unknown}; use one of {', '.join(CHAT_LABELS)}")
    if categories is not None and len(categories) != n:
        raise ValueError(f"expected {n} categories, one per label, got {len(categories)}")
    low, high = float(band[0]), float(band[1])
    if not low <= high:
        raise ValueError(f"band low must not exceed high, got ({low}, {high})")

    truth = np.asarray(labels, dtype=object)
    said_positive = p >= 0.5
    if moods is None:
        inside = (p > low) & (p < high)
        predicted = np.where(inside, "neutral", np.where(said_positive, "positive", "negative"))
    else:
        if len(moods) != n:
            raise ValueError(f"expected {n} moods, one per label, got {len(moods)}")
        predicted = np.asarray(moods, dtype=object)
        inside = predicted == "neutral"
    three_way_right = predicted == truth
    polar = truth != "neutral"
    polar_right = said_positive == (truth == "positive")
    voiced = polar & ~inside
    neutral = ~polar

    report: dict[str, Any] = {
        "n": n,
        "n_polar": int(polar.sum()),
        "n_neutral": int(neutral.sum()),
        "band": [low, high],
        "polar_accuracy": _share(polar_right, polar),
        "polar_voiced_rate": _share(voiced, polar),
        "polar_voiced_accuracy": _share(polar_right, voiced),
        "neutral_caught_rate": _share(inside, neutral),
        "three_way_accuracy": _share(three_way_right, np.ones(n, dtype=bool)),
        # every reaction the bot makes, neutral messages included: how many are right
        "reactions_precision": _share(three_way_right, predicted != "neutral"),
        "by_category": {},
    }
    if categories is not None:
        cats = np.asarray(categories, dtype=object)
        for name in sorted(set(categories)):
            members = cats == name
            report["by_category"][name] = {
                "n": int(members.sum()),
                "three_way_accuracy": _share(three_way_right, members),
                "polar_accuracy": _share(polar_right, members & polar),
            }
    return report


def _share(hit: NDArray[np.bool_], among: NDArray[np.bool_]) -> float | None:
    """Share of ``among`` where ``hit`` holds, or None when ``among`` is empty."""
    count = int(among.sum())
    return None if count == 0 else float((hit & among).sum()) / count
