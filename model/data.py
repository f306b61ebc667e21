"""Labelled sentence files: SST-2 TSV (with or without a header) and CSV with text/label columns.

Where the files live comes from a flag or ``SENTIMENT_DATA_DIR``. With neither, the tutorial's
SST-2 files are looked for in ``data/sst2`` and downloaded there when missing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

DATA_DIR_ENV = "SENTIMENT_DATA_DIR"
PHRASES_ENV = "SENTIMENT_PHRASES_FILE"
DEFAULT_DATA_DIR = Path("data/sst2")
SST2_URL = (
    "https://github.com/clairett/pytorch-sentiment-classification/raw/master/data/SST2/{split}.tsv"
)
GLUE_SST2_URL = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
SPLITS = ("train", "dev", "test")
TrainOn = Literal["sentences", "phrases", "both"]

_TEXT_COLUMNS = ("text", "sentence", "message", "content")
_LABEL_COLUMNS = ("label", "sentiment", "target")


class DataError(Exception):
    """A data file is missing or malformed. The message names the file, the line and the fix."""


@dataclass(frozen=True)
class Dataset:
    """Sentences with 0/1 labels (1 = positive), in file order."""

    texts: list[str]
    labels: NDArray[np.int64]
    source: str
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int | None) -> Dataset:
        """The first ``n`` rows (all of them when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        return Dataset(self.texts[:n], self.labels[:n], f"{self.source}[:{n}]", self.skipped)

    def digest(self) -> str:
        """SHA-256 over the rows, so an artifact can name exactly the data it was trained on."""
        h = hashlib.sha256()
        for text, label in zip(self.texts, self.labels, strict=True):
            h.update(text.encode("utf-8", "surrogatepass"))
            h.update(b"\t%d\n" % int(label))
        return h.hexdigest()

    @staticmethod
    def concat(parts: Sequence[Dataset]) -> Dataset:
        """Rows of all parts; a text seen before is dropped (its first label wins)."""
        seen: set[str] = set()
        texts: list[str] = []
        labels: list[int] = []
        for part in parts:
            for text, label in zip(part.texts, part.labels, strict=True):
                if text not in seen:
                    seen.add(text)
                    texts.append(text)
                    labels.append(int(label))
        return Dataset(
            texts,
            np.asarray(labels, dtype=np.int64),
            " + ".join(p.source for p in parts),
            sum(p.skipped for p in parts),
        )


# --------------------------------------------------------------------------------------------
# Parsing


def load_labelled(path: str | Path, *, skip_malformed: bool = False) -> Dataset:
    """Read a labelled file: ``.csv`` with text/label columns, anything else as TSV.

    A malformed row raises :class:`DataError` naming file and line, or, with
    ``skip_malformed``, is skipped and counted in ``Dataset.skipped``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file. Check the path, or point --data-dir at the folder.")
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text ({exc.reason}). Save the file as UTF-8."
        ) from None
    rows = _csv_rows(path, content) if path.suffix.lower() == ".csv" else _tsv_rows(content)

    texts: list[str] = []
    labels: list[int] = []
    skipped = 0
    for lineno, text, label, problem in rows:
        if problem is None:
            text = text.strip()
            label = label.strip()
            if not text:
                problem = "empty text"
            elif label not in ("0", "1"):
                problem = f"label {label!r} is not 0 (negative) or 1 (positive)"
        if problem is not None:
            if skip_malformed:
                skipped += 1
                continue
            raise DataError(
                f"{path}:{lineno}: {problem}. Fix the row, or pass --skip-malformed to skip "
                "and count such rows."
            )
        texts.append(text)
        labels.append(int(label))
    if not texts:
        raise DataError(
            f"{path}: no usable rows ({skipped} malformed). Expected 'sentence<TAB>label' lines "
            "(TSV) or a CSV with text and label columns."
        )
    return Dataset(texts, np.asarray(labels, dtype=np.int64), str(path), skipped)


_Row = tuple[int, str, str, str | None]  # line number, text, label, problem (None when fine)


def _tsv_rows(content: str) -> Iterator[_Row]:
    text_col, label_col = -1, -1  # without a header: sentence<TAB>label, split on the last tab
    first = True
    for lineno, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if first:
            first = False
            names = [f.strip().lower() for f in fields]
            header = _header_columns(names)
            if header is not None:
                text_col, label_col = header
                continue
        if len(fields) < 2:
            yield lineno, "", "", "no tab between text and label (expected 'sentence<TAB>label')"
        elif text_col < 0:
            text, label = line.rsplit("\t", 1)
            yield lineno, text, label, None
        elif max(text_col, label_col) >= len(fields):
            yield lineno, "", "", f"{len(fields)} fields, the header names more"
        else:
            yield lineno, fields[text_col], fields[label_col], None


def _header_columns(names: Sequence[str]) -> tuple[int, int] | None:
    text = next((i for i, n in enumerate(names) if n in _TEXT_COLUMNS), None)
    label = next((i for i, n in enumerate(names) if n in _LABEL_COLUMNS), None)
    if text is None or label is None:
        return None
    return text, label


def _csv_rows(path: Path, content: str) -> Iterator[_Row]:
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return
    columns = _header_columns([h.strip().lower() for h in header])
    if columns is None:
        raise DataError(
            f"{path}:1: the header {header!r} has no text column ({', '.join(_TEXT_COLUMNS)}) "
            f"or no label column ({', '.join(_LABEL_COLUMNS)}). Name the columns text,label."
        )
    text_col, label_col = columns
    try:
        for fields in reader:
            lineno = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if max(text_col, label_col) >= len(fields):
                yield lineno, "", "", f"{len(fields)} fields, the header names {len(header)}"
            else:
                yield lineno, fields[text_col], fields[label_col], None
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: broken CSV ({exc}).") from None


# --------------------------------------------------------------------------------------------
# Locating (and downloading) SST-2


def data_dir_from(flag: str | Path | None) -> Path | None:
    """The data folder the user named: the flag, else ``SENTIMENT_DATA_DIR``, else None."""
    value = flag if flag is not None else os.environ.get(DATA_DIR_ENV) or None
    return Path(value).expanduser() if value is not None else None


def find_split(
    split: str,
    data_dir: Path | None = None,
    *,
    download_dir: Path = DEFAULT_DATA_DIR,
    url_template: str = SST2_URL,
    progress: bool = True,
) -> Path:
    """Path of an SST-2 split (``train``, ``dev`` or ``test``).

    With ``data_dir`` (flag or environment) the file must be there as ``{split}.tsv`` or
    ``{split}.csv``. Without it, ``download_dir`` is searched and the tutorial's file is
    downloaded into it when missing.
    """
    folder = data_dir if data_dir is not None else download_dir
    for suffix in (".tsv", ".csv"):
        candidate = folder / f"{split}{suffix}"
        if candidate.is_file():
            return candidate
    if data_dir is not None:
        raise DataError(
            f"SST-2 {split} split not found: {folder / (split + '.tsv')} does not exist. "
            f"Put {', '.join(s + '.tsv' for s in SPLITS)} (one 'sentence<TAB>label' per line) "
            f"in {folder.resolve()}, or point --data-dir / {DATA_DIR_ENV} at the folder that "
            "holds them."
        )
    url = url_template.format(split=split)
    target = folder / f"{split}.tsv"
    try:
        download(url, target, progress=progress)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise DataError(
            f"SST-2 {split} split not found in {folder.resolve()} and the download from {url} "
            f"failed ({exc}). Offline? Put {', '.join(s + '.tsv' for s in SPLITS)} "
            f"(one 'sentence<TAB>label' per line) in {folder.resolve()}, or point --data-dir / "
            f"{DATA_DIR_ENV} at the folder that holds them."
        ) from None
    return target


def download(url: str, target: Path, *, progress: bool = True, timeout: float = 30.0) -> None:
    """Fetch ``url`` into ``target`` with a progress bar; the file appears only when complete."""
    partial = target.with_name(target.name + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as response:
        target.parent.mkdir(parents=True, exist_ok=True)
        total = int(response.headers.get("Content-Length") or 0) or None
        with (
            partial.open("wb") as out,
            tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=f"Downloading {target.name}",
                disable=not progress,
            ) as bar,
        ):
            while chunk := response.read(1 << 16):
                out.write(chunk)
                bar.update(len(chunk))
    partial.replace(target)


def find_phrases(flag: str | Path | None, data_dir: Path | None) -> Path:
    """GLUE's phrase-level SST-2 training file (67,349 rows, with a header)."""
    value = flag if flag is not None else os.environ.get(PHRASES_ENV) or None
    if value is not None:
        path = Path(value).expanduser()
    else:
        base = data_dir if data_dir is not None else DEFAULT_DATA_DIR
        path = base.parent / "sst2-phrases" / "train.tsv"
    if not path.is_file():
        raise DataError(
            f"SST-2 phrase file not found: {path} does not exist. It is GLUE's SST-2 train.tsv "
            f"(67,349 phrases; in {GLUE_SST2_URL}). Put it there, or pass --phrases / set "
            f"{PHRASES_ENV} to its path."
        )
    return path


def load_training_data(
    train_on: TrainOn,
    data_dir: Path | None,
    *,
    phrases: str | Path | None = None,
    skip_malformed: bool = False,
    progress: bool = True,
) -> Dataset:
    """The training rows: the SST-2 sentences, the GLUE phrases, or both (duplicates dropped)."""
    parts: list[Dataset] = []
    if train_on in ("sentences", "both"):
        path = find_split("train", data_dir, progress=progress)
        parts.append(load_labelled(path, skip_malformed=skip_malformed))
    if train_on in ("phrases", "both"):
        path = find_phrases(phrases, data_dir)
        parts.append(load_labelled(path, skip_malformed=skip_malformed))
    if not parts:
        raise DataError(f"unknown training set {train_on!r}: use sentences, phrases or both.")
    return parts[0] if len(parts) == 1 else Dataset.concat(parts)


def digest_all(datasets: Iterable[Dataset]) -> str:
    """One digest over several data sets (training data plus the dev split that chose C)."""
    h = hashlib.sha256()
    for ds in datasets:
        h.update(ds.digest().encode())
    return h.hexdigest()
