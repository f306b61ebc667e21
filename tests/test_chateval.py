"""The committed chat evaluation set, its strict loader, and the chat report."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from model.training.chateval import (
    CHAT_LABELS,
    ChatSet,
    ChatSetError,
    chat_report,
    default_chat_set_path,
    load_chat_set,
)
from model.training.formatting import format_chat_report

CATEGORIES = {
    "emoji",
    "custom_emoji",
    "slang",
    "negation",
    "sarcasm",
    "question",
    "statement",
    "mention_url",
    "code",
    "plain",
}


# --- the committed set ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_set() -> ChatSet:
    return load_chat_set(default_chat_set_path())


def test_default_path_is_the_committed_file() -> None:
    path = default_chat_set_path()
    assert path.is_file()
    assert path.parts[-3:] == ("model", "training", "chat_eval.tsv")


def test_committed_set_size_and_labels(chat_set: ChatSet) -> None:
    assert len(chat_set) >= 300
    counts = Counter(chat_set.labels)
    assert set(counts) == set(CHAT_LABELS)
    assert counts["neutral"] >= 80
    assert counts["positive"] >= 100
    assert counts["negative"] >= 100
    assert len(chat_set.texts) == len(chat_set.labels) == len(chat_set.categories)


def test_committed_set_categories(chat_set: ChatSet) -> None:
    counts = Counter(chat_set.categories)
    assert set(counts) == CATEGORIES
    thin = {name: count for name, count in counts.items() if count < 15}
    assert not thin, f"categories with fewer than 15 rows: {thin}"


def test_committed_set_has_no_duplicates(chat_set: ChatSet) -> None:
    normalised = Counter(" ".join(text.lower().split()) for text in chat_set.texts)
    duplicates = [text for text, count in normalised.items() if count > 1]
    assert not duplicates


def test_committed_file_is_strictly_formatted() -> None:
    raw = default_chat_set_path().read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf"), "no byte-order mark"
    assert b"\r" not in raw
    lines = raw.decode("utf-8").split("\n")
    assert lines[0] == "text\tlabel\tcategory"
    assert lines[-1] == "", "file ends with a newline"
    for number, line in enumerate(lines[1:-1], start=2):
        fields = line.split("\t")
        assert len(fields) == 3, f"line {number}: {line!r}"
        assert fields[0] == fields[0].strip() and fields[0], f"line {number}"
        assert fields[1] in CHAT_LABELS, f"line {number}"
        assert fields[2] in CATEGORIES, f"line {number}"


def test_committed_set_is_chat_like(chat_set: ChatSet) -> None:
    by_category: dict[str, list[str]] = {}
    for text, category in zip(chat_set.texts, chat_set.categories, strict=True):
        by_category.setdefault(category, []).append(text)
    assert all("<:" in t or "<a:" in t for t in by_category["custom_emoji"])
    assert all("`" in t for t in by_category["code"])
    assert all("<@" in t or "<#" in t or "http" in t for t in by_category["mention_url"])
    assert any("```" in t for t in by_category["code"])
    # sarcasm is labelled by what it means, so it is mostly negative despite positive words
    sarcasm = Counter(
        label
        for label, category in zip(chat_set.labels, chat_set.categories, strict=True)
        if category == "sarcasm"
    )
    assert sarcasm["negative"] > sarcasm["positive"]


# --- the loader ----------------------------------------------------------------------------


def _write(tmp_path: Path, content: str, name: str = "set.tsv") -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def test_load_three_columns_with_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "text\tlabel\tcategory\nlove it 😍\tpositive\temoji\n\nmeh\t Neutral \t\nugh\tnegative\n",
    )
    loaded = load_chat_set(path)
    assert loaded.texts == ["love it 😍", "meh", "ugh"]
    assert loaded.labels == ["positive", "neutral", "negative"]
    assert loaded.categories == ["emoji", "plain", "plain"]
    assert loaded.source == str(path)


def test_load_two_column_header(tmp_path: Path) -> None:
    path = _write(tmp_path, "text\tlabel\nnot bad\tpositive\n")
    loaded = load_chat_set(path)
    assert loaded.categories == ["plain"]


def test_load_keeps_quotes_literally(tmp_path: Path) -> None:
    path = _write(tmp_path, 'text\tlabel\n"quick fix" broke it\tnegative\n')
    assert load_chat_set(path).texts == ['"quick fix" broke it']


def test_load_tolerates_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.tsv"
    path.write_bytes("text\tlabel\nok\tneutral\n".encode("utf-8-sig"))
    assert load_chat_set(path).labels == ["neutral"]


def test_bad_label_names_line_and_allowed_labels(tmp_path: Path) -> None:
    path = _write(tmp_path, "text\tlabel\tcategory\nfine\tpositive\temoji\nhmm\tmixed\tplain\n")
    with pytest.raises(ChatSetError) as caught:
        load_chat_set(path)
    message = str(caught.value)
    assert str(path) in message
    assert "line 3" in message
    assert "'mixed'" in message
    assert all(label in message for label in CHAT_LABELS)


def test_missing_header_names_line_one(tmp_path: Path) -> None:
    path = _write(tmp_path, "great stuff\tpositive\temoji\n")
    with pytest.raises(ChatSetError, match=r"line 1: expected the header"):
        load_chat_set(path)


def test_empty_text_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "text\tlabel\nok\tneutral\n  \tpositive\n")
    with pytest.raises(ChatSetError, match=r"line 3: the text is empty"):
        load_chat_set(path)


def test_wrong_column_count_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "text\tlabel\nok\tneutral\nhas\ta tab\tpositive\n")
    with pytest.raises(ChatSetError, match=r"line 3: expected 2 \(text, label\)"):
        load_chat_set(path)
    path = _write(tmp_path, "text\tlabel\tcategory\nlonely\n", name="one.tsv")
    with pytest.raises(ChatSetError, match=r"line 2: expected 2 or 3 .* found 1"):
        load_chat_set(path)


def test_missing_file_says_where_it_looked(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "chat.tsv"
    with pytest.raises(ChatSetError) as caught:
        load_chat_set(path)
    assert "looked for" in str(caught.value)
    assert str(path.resolve()) in str(caught.value)


def test_empty_file_and_header_only_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ChatSetError, match="empty"):
        load_chat_set(_write(tmp_path, "\n\n", name="empty.tsv"))
    with pytest.raises(ChatSetError, match=r"no messages after the header \(line 1\)"):
        load_chat_set(_write(tmp_path, "text\tlabel\tcategory\n", name="header.tsv"))


def test_invalid_utf8_is_a_chat_set_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.tsv"
    path.write_bytes("text\tlabel\ncafé\tpositive\n".encode("latin-1"))
    with pytest.raises(ChatSetError, match="UTF-8"):
        load_chat_set(path)


def test_chat_set_error_is_a_value_error() -> None:
    assert issubclass(ChatSetError, ValueError)


# --- the report ----------------------------------------------------------------------------

# Band (0.4, 0.7): inside means 0.4 < p < 0.7 strictly.
#  i  label     p     inside  three-way pred  three-way right  polar right (p >= 0.5 = positive)
#  0  positive  0.90  no      positive        yes              yes
#  1  positive  0.55  yes     neutral         no               yes
#  2  negative  0.20  no      negative        yes              yes
#  3  negative  0.60  yes     neutral         no               no
#  4  neutral   0.50  yes     neutral         yes              -
#  5  neutral   0.95  no      positive        no               -
#  6  positive  0.30  no      negative        no               no
#  7  negative  0.40  no (=low)  negative     yes              yes
#  8  neutral   0.70  no (=high) positive     no               -
LABELS = [
    "positive",
    "positive",
    "negative",
    "negative",
    "neutral",
    "neutral",
    "positive",
    "negative",
    "neutral",
]
P = np.array([0.9, 0.55, 0.2, 0.6, 0.5, 0.95, 0.3, 0.4, 0.7])
BAND = (0.4, 0.7)
CATS = [
    "emoji",
    "emoji",
    "sarcasm",
    "sarcasm",
    "statement",
    "statement",
    "emoji",
    "sarcasm",
    "statement",
]


def test_report_hand_computed() -> None:
    report = chat_report(LABELS, P, BAND, CATS)
    assert report["n"] == 9
    assert report["n_polar"] == 6  # rows 0, 1, 2, 3, 6, 7
    assert report["n_neutral"] == 3  # rows 4, 5, 8
    assert report["band"] == [0.4, 0.7]
    assert report["polar_accuracy"] == 4 / 6  # rows 0, 1, 2, 7
    assert report["polar_voiced_rate"] == 4 / 6  # rows 0, 2, 6, 7 lie outside the band
    assert report["polar_voiced_accuracy"] == 3 / 4  # of those, 0, 2, 7 right
    assert report["neutral_caught_rate"] == 1 / 3  # row 4 only; 8 sits on the edge
    assert report["three_way_accuracy"] == 4 / 9  # rows 0, 2, 4, 7
    assert report["by_category"] == {
        "emoji": {"n": 3, "three_way_accuracy": 1 / 3, "polar_accuracy": 2 / 3},
        "sarcasm": {"n": 3, "three_way_accuracy": 2 / 3, "polar_accuracy": 2 / 3},
        "statement": {"n": 3, "three_way_accuracy": 1 / 3, "polar_accuracy": None},
    }


def test_report_is_plain_json() -> None:
    report = chat_report(LABELS, P, BAND, CATS)
    assert json.loads(json.dumps(report)) == report
    assert type(report["n"]) is int
    assert type(report["polar_accuracy"]) is float
    assert type(report["by_category"]["emoji"]["n"]) is int


def test_report_without_neutral_rows() -> None:
    report = chat_report(["positive", "negative"], np.array([0.8, 0.1]), (0.3, 0.7))
    assert report["n_neutral"] == 0
    assert report["neutral_caught_rate"] is None
    assert report["polar_accuracy"] == 1.0
    assert report["three_way_accuracy"] == 1.0
    assert report["by_category"] == {}


def test_report_with_nothing_voiced_or_no_polar_rows() -> None:
    inside = chat_report(["positive", "negative"], np.array([0.5, 0.5]), (0.2, 0.8))
    assert inside["polar_voiced_rate"] == 0.0
    assert inside["polar_voiced_accuracy"] is None
    only_neutral = chat_report(["neutral"], np.array([0.5]), (0.2, 0.8), ["question"])
    assert only_neutral["polar_accuracy"] is None
    assert only_neutral["polar_voiced_rate"] is None
    assert only_neutral["neutral_caught_rate"] == 1.0
    assert only_neutral["by_category"]["question"]["polar_accuracy"] is None


def test_report_on_nothing() -> None:
    report = chat_report([], np.array([], dtype=np.float64), (0.4, 0.6), [])
    assert report["n"] == 0
    for key in (
        "polar_accuracy",
        "polar_voiced_rate",
        "polar_voiced_accuracy",
        "neutral_caught_rate",
        "three_way_accuracy",
    ):
        assert report[key] is None
    assert report["by_category"] == {}
    assert "0 messages" in format_chat_report(report, "empty")


def test_degenerate_band_catches_nothing() -> None:
    report = chat_report(["neutral", "positive"], np.array([0.5, 0.5]), (0.5, 0.5))
    assert report["neutral_caught_rate"] == 0.0
    assert report["polar_voiced_rate"] == 1.0


@pytest.mark.parametrize(
    ("labels", "p", "band", "categories", "match"),
    [
        (["positive"], np.array([0.5, 0.5]), (0.4, 0.6), None, "one per label"),
        (["happy"], np.array([0.5]), (0.4, 0.6), None, "unknown labels"),
        (["neutral"], np.array([np.nan]), (0.4, 0.6), None, "finite"),
        (["neutral"], np.array([1.5]), (0.4, 0.6), None, "within"),
        (["neutral"], np.array([0.5]), (0.7, 0.3), None, "band low"),
        (["neutral"], np.array([0.5]), (0.4, 0.6), ["a", "b"], "categories"),
    ],
)
def test_report_rejects_bad_input(
    labels: list[str],
    p: np.ndarray,
    band: tuple[float, float],
    categories: list[str] | None,
    match: str,
) -> None:
    with pytest.raises(ValueError, match=match):
        chat_report(labels, p, band, categories)


def test_format_contains_key_figures() -> None:
    text = format_chat_report(chat_report(LABELS, P, BAND, CATS), "chat set (x.tsv)")
    lines = text.splitlines()
    assert lines[0] == "chat set (x.tsv): 9 messages (6 positive/negative, 3 neutral)"
    assert "0.400 < p < 0.700" in text
    assert "positive/negative accuracy   66.7%" in text
    assert "66.7% of them, 75.0% right" in text
    assert "neutral left silent          33.3%" in text
    assert "three-way accuracy           44.4%" in text
    assert "emoji 33.3% (3), sarcasm 66.7% (3), statement 33.3% (3)" in text
    assert all(len(line) <= 100 for line in lines)


def test_format_shows_missing_figures_as_na() -> None:
    report = chat_report(["positive"], np.array([0.5]), (0.4, 0.6))
    text = format_chat_report(report, "tiny")
    assert "100.0%" in text  # polar accuracy
    assert "0.0% of them, n/a right" in text
    assert "neutral left silent          n/a" in text
    assert "by category" not in text


def test_format_wraps_many_categories(chat_set: ChatSet) -> None:
    p = np.where(np.asarray(chat_set.labels) == "positive", 0.9, 0.1)
    report = chat_report(chat_set.labels, p, (0.4, 0.6), chat_set.categories)
    assert set(report["by_category"]) == CATEGORIES
    assert report["polar_accuracy"] == 1.0
    # The title is the caller's; the category lines below it are wrapped whatever the path.
    text = format_chat_report(report, f"chat set ({'/deep' * 30}{chat_set.source})")
    assert all(len(line) <= 100 for line in text.splitlines()[1:])
    for name in CATEGORIES:
        assert f"{name} " in text
