"""Reading labelled files, and finding / downloading SST-2."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from model.training.data import (
    DataError,
    Dataset,
    find_phrases,
    find_split,
    load_labelled,
    load_training_data,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_sst2_tsv_without_header(tmp_path: Path) -> None:
    f = write(tmp_path / "train.tsv", "a great movie\t1\nboring , boring\t0\n\n")
    ds = load_labelled(f)
    assert ds.texts == ["a great movie", "boring , boring"]
    assert ds.labels.tolist() == [1, 0]
    assert ds.skipped == 0


def test_glue_tsv_with_header_and_trailing_spaces(tmp_path: Path) -> None:
    f = write(
        tmp_path / "train.tsv", "sentence\tlabel\nhide new secretions \t0\nkids , spirit \t1\n"
    )
    ds = load_labelled(f)
    assert ds.texts == ["hide new secretions", "kids , spirit"]
    assert ds.labels.tolist() == [0, 1]


def test_header_column_order_is_respected(tmp_path: Path) -> None:
    f = write(tmp_path / "x.tsv", "label\ttext\n1\tlovely\n0\tdreadful\n")
    assert load_labelled(f).texts == ["lovely", "dreadful"]


def test_csv_with_text_and_label_columns(tmp_path: Path) -> None:
    f = write(tmp_path / "chat.csv", 'id,text,label\n1,"hello, world",1\n2,"so ""bad""",0\n')
    ds = load_labelled(f)
    assert ds.texts == ["hello, world", 'so "bad"']
    assert ds.labels.tolist() == [1, 0]


def test_csv_without_text_column_names_the_columns(tmp_path: Path) -> None:
    f = write(tmp_path / "chat.csv", "body,y\nhi,1\n")
    with pytest.raises(DataError, match=r"chat\.csv:1: .*no text column"):
        load_labelled(f)


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        ("good\t1\nno tab here\n", 2, "no tab"),
        ("good\t1\nfine\t1\nbad movie\t2\n", 3, "label '2' is not 0"),
        ("good\t1\n \t0\n", 2, "empty text"),
        ("good\tpositive\n", 1, "label 'positive'"),
    ],
)
def test_malformed_row_names_file_and_line(
    tmp_path: Path, content: str, line: int, problem: str
) -> None:
    f = write(tmp_path / "train.tsv", content)
    with pytest.raises(DataError) as err:
        load_labelled(f)
    message = str(err.value)
    assert f"train.tsv:{line}:" in message
    assert problem in message
    assert "--skip-malformed" in message


def test_skip_malformed_skips_and_counts(tmp_path: Path) -> None:
    f = write(tmp_path / "train.tsv", "good\t1\nno tab\nbad\t7\n\t1\nawful\t0\n")
    ds = load_labelled(f, skip_malformed=True)
    assert ds.texts == ["good", "awful"]
    assert ds.skipped == 3


def test_file_with_no_usable_rows(tmp_path: Path) -> None:
    f = write(tmp_path / "train.tsv", "no tab\n")
    with pytest.raises(DataError, match="no usable rows"):
        load_labelled(f, skip_malformed=True)


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "train.tsv"
    f.write_bytes(b"good\t1\ncaf\xe9\t1\n")
    with pytest.raises(DataError, match=r"train\.tsv:2: not UTF-8"):
        load_labelled(f)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_labelled(tmp_path / "nope.tsv")


def test_real_sst2_splits_have_the_documented_sizes(sst2_dir: Path) -> None:
    sizes = {s: len(load_labelled(sst2_dir / f"{s}.tsv")) for s in ("train", "dev", "test")}
    assert sizes == {"train": 6920, "dev": 872, "test": 1821}


def test_concat_drops_duplicate_texts() -> None:
    import numpy as np

    a = Dataset(["x", "y"], np.array([1, 0]), "a")
    b = Dataset(["y", "z"], np.array([1, 1]), "b")
    both = Dataset.concat([a, b])
    assert both.texts == ["x", "y", "z"]
    assert both.labels.tolist() == [1, 0, 1]
    assert both.digest() != a.digest()


# --- locating and downloading -------------------------------------------------------------


def test_explicit_folder_without_the_split_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        find_split("dev", tmp_path)
    message = str(err.value)
    assert str(tmp_path.resolve()) in message
    assert "dev.tsv" in message and "SENTIMENT_DATA_DIR" in message


@pytest.fixture()
def file_server(tmp_path: Path) -> Iterator[str]:
    served = tmp_path / "served"
    served.mkdir()
    (served / "dev.tsv").write_text("nice\t1\nugly\t0\n", encoding="utf-8")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{{split}}.tsv"
    server.shutdown()
    server.server_close()


def test_missing_split_is_downloaded(tmp_path: Path, file_server: str) -> None:
    target = tmp_path / "data" / "sst2"
    path = find_split("dev", None, download_dir=target, url_template=file_server, progress=False)
    assert path == target / "dev.tsv"
    assert load_labelled(path).texts == ["nice", "ugly"]
    assert not list(target.glob("*.part"))


def test_offline_download_failure_says_where_to_put_the_files(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port with nobody listening: like being offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = tmp_path / "data" / "sst2"
    with pytest.raises(DataError) as err:
        find_split(
            "train", None, download_dir=target,
            url_template=f"http://127.0.0.1:{port}/{{split}}.tsv", progress=False,
        )  # fmt: skip
    message = str(err.value)
    assert "download" in message and str(target.resolve()) in message
    assert "train.tsv, dev.tsv, test.tsv" in message
    assert not (target / "train.tsv").exists()


def test_phrases_missing_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTIMENT_PHRASES_FILE", raising=False)
    with pytest.raises(DataError, match="SENTIMENT_PHRASES_FILE"):
        find_phrases(None, tmp_path / "sst2")


def test_training_data_both_reads_sentences_and_phrases(tmp_path: Path) -> None:
    sst2 = tmp_path / "sst2"
    sst2.mkdir()
    write(sst2 / "train.tsv", "a fine film\t1\nawful\t0\n")
    (tmp_path / "sst2-phrases").mkdir()
    write(tmp_path / "sst2-phrases" / "train.tsv", "sentence\tlabel\nawful \t0\nfine\t1\n")
    ds = load_training_data("both", sst2)
    assert ds.texts == ["a fine film", "awful", "fine"]
