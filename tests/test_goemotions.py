"""The GoEmotions chat data: mapping emotions to moods, malformed rows, missing files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from model.training.data import (
    THREE_WAY,
    ChatMapping,
    DataError,
    Dataset,
    find_chat_files,
    load_goemotions,
    row_weights,
)

# label ids of the shared copy's labels.txt
JOY, ANGER, SURPRISE, CURIOSITY, NEUTRAL = 17, 2, 26, 7, 27


def small_copy(source: Path, folder: Path, rows: list[str]) -> Path:
    """A GoEmotions folder with the real label files and the given train/dev rows."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("labels.txt", "sentiment_dict.json"):
        shutil.copy(source / name, folder / name)
    for split in ("train", "dev"):
        (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


ROWS = [
    f"I love this so much\t{JOY}\ta1",
    f"this makes me furious\t{ANGER}\ta2",
    f"the bus leaves at nine\t{NEUTRAL}\ta3",
    f"wait, what is that?\t{CURIOSITY}\ta4",
    f"wow, great news\t{SURPRISE},{JOY}\ta5",
    f"glad and angry at once\t{JOY},{ANGER}\ta6",
    f"happy, I guess\t{JOY},{NEUTRAL}\ta7",
]


def moods(data: Dataset) -> dict[str, str]:
    return {t: THREE_WAY[int(y)] for t, y in zip(data.texts, data.labels, strict=True)}


def test_mapping_by_the_authors_grouping(goemotions_dir: Path, tmp_path: Path) -> None:
    folder = small_copy(goemotions_dir, tmp_path / "ge", ROWS)
    data, counts = load_goemotions("train", folder)
    assert data.classes == THREE_WAY
    assert moods(data) == {
        "I love this so much": "positive",
        "this makes me furious": "negative",
        "the bus leaves at nine": "neutral",
        "wait, what is that?": "neutral",  # ambiguous only: neutral by default
        "wow, great news": "positive",  # one polar group beside ambiguous: that mood
        "happy, I guess": "positive",  # one polar group beside neutral: that mood
    }  # positive and negative together: dropped
    assert counts["dropped"] == 1 and counts["negative+positive"] == 1
    assert counts["ambiguous+positive"] == 1 and counts["ambiguous"] == 1

    strict, counts = load_goemotions("dev", folder, ChatMapping(ambiguous="drop", mixed="drop"))
    assert set(moods(strict)) == {
        "I love this so much",
        "this makes me furious",
        "the bus leaves at nine",
    }
    assert counts["dropped"] == 4


def test_the_shared_splits_load_with_the_readme_counts(goemotions_dir: Path) -> None:
    data, counts = load_goemotions("dev", goemotions_dir, ChatMapping("drop", "drop"))
    # the figures in ../shared/data/goemotions/README.md
    assert np.bincount(data.labels, minlength=3).tolist() == [1014, 1592, 1941]
    assert counts["ambiguous"] == 459


def test_malformed_rows_are_named_by_file_and_line(goemotions_dir: Path, tmp_path: Path) -> None:
    bad = [*ROWS[:2], "no label here", f"text\t{JOY},x\tid", "text\t99\tid", f"\t{JOY}\tid"]
    folder = small_copy(goemotions_dir, tmp_path / "bad", bad)
    with pytest.raises(DataError) as info:
        load_goemotions("train", folder)
    message = str(info.value)
    assert f"{folder / 'train.tsv'}:3:" in message and "--skip-malformed" in message
    data, _ = load_goemotions("train", folder, skip_malformed=True)
    assert len(data) == 2 and data.skipped == 4
    (folder / "train.tsv").write_text(f"text\t{JOY},x\tid\n")
    with pytest.raises(DataError, match=r"train.tsv:1: label ids '17,x'"):
        load_goemotions("train", folder)
    (folder / "train.tsv").write_text("text\t99\tid\n")
    with pytest.raises(DataError, match=r"train.tsv:1: .*outside 0\.\.27"):
        load_goemotions("train", folder)


def test_the_test_split_is_never_read(goemotions_dir: Path) -> None:
    with pytest.raises(DataError, match="held out on purpose"):
        load_goemotions("test", goemotions_dir)


def test_missing_files_say_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        find_chat_files(tmp_path / "none")
    message = str(info.value)
    assert "train.tsv" in message and "sentiment_dict.json" in message
    assert "--chat-data" in message and "SENTIMENT_CHAT_DATA_DIR" in message


def test_offline_download_gives_one_clear_message(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        find_chat_files(
            None, download_dir=tmp_path / "dl", url="http://127.0.0.1:9/", progress=False
        )
    message = str(info.value)
    assert "download" in message and "Offline?" in message and str(tmp_path / "dl") in message
    assert not list((tmp_path / "dl").glob("*.tsv"))  # nothing half-written


def test_sources_get_their_share_of_the_weight() -> None:
    sst = Dataset(["a", "b", "c"], np.array([0, 1, 1]), "sst").as_three_way().named("sst2")
    chat = Dataset(["d"], np.array([1]), "chat", classes=THREE_WAY).named("chat")
    both = Dataset.concat([sst, chat])
    assert both.labels.tolist() == [0, 2, 2, 1] and both.origin == ("sst2",) * 3 + ("chat",)
    w = row_weights(both, {"sst2": 0.5, "chat": 0.5})
    assert w is not None
    assert w[:3].sum() == pytest.approx(w[3:].sum()) and w.mean() == pytest.approx(1.0)
    assert row_weights(both, None) is None
    with pytest.raises(DataError, match="no weight given for rows from chat"):
        row_weights(both, {"sst2": 1.0})
    with pytest.raises(ValueError, match="cannot mix"):
        Dataset.concat([Dataset(["x"], np.array([1]), "s"), chat])
