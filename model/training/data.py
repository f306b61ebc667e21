"""Labelled sentence files: SST-2 TSV (with or without a header) and CSV with text/label columns.

Where the files live is the caller's argument (the commands take it from a flag or
``SENTIMENT_DATA_DIR``). Without one, the tutorial's SST-2 files are looked for in ``data/sst2``
and downloaded there when missing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

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


BINARY: tuple[str, ...] = ("negative", "positive")
THREE_WAY: tuple[str, ...] = ("negative", "neutral", "positive")
CORRECTIONS = "corrections"  # the origin of training rows from the bot's corrections


@dataclass(frozen=True)
class Dataset:
    """Texts with labels, in file order: indices into ``classes`` (binary: 0 negative,
    1 positive; three-way: 0 negative, 1 neutral, 2 positive). ``origin`` names, per row, the
    part of a mixture it came from (e.g. ``sst2`` or ``chat``), so training can weight the
    parts deliberately; None for a single file."""

    texts: list[str]
    labels: NDArray[np.int64]
    source: str
    skipped: int = 0
    classes: tuple[str, ...] = BINARY
    origin: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int | None) -> Dataset:
        """The first ``n`` rows (all of them when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        return replace(
            self,
            texts=self.texts[:n],
            labels=self.labels[:n],
            source=f"{self.source}[:{n}]",
            origin=None if self.origin is None else self.origin[:n],
        )

    def digest(self) -> str:
        """SHA-256 over the rows, so an artifact can name exactly the data it was trained on."""
        h = hashlib.sha256()
        if self.classes != BINARY:  # binary data keeps the digest it always had
            h.update(repr(self.classes).encode())
        for text, label in zip(self.texts, self.labels, strict=True):
            h.update(text.encode("utf-8", "surrogatepass"))
            h.update(b"\t%d\n" % int(label))
        return h.hexdigest()

    def as_three_way(self) -> Dataset:
        """Binary rows relabelled for a three-way model (negative 0, positive 2)."""
        if self.classes == THREE_WAY:
            return self
        if self.classes != BINARY:
            raise ValueError(f"cannot map classes {self.classes} to {THREE_WAY}")
        return replace(
            self, labels=np.where(self.labels == 1, 2, 0).astype(np.int64), classes=THREE_WAY
        )

    def named(self, origin: str) -> Dataset:
        """The same rows, every one marked as coming from ``origin``."""
        return replace(self, origin=(origin,) * len(self))

    @staticmethod
    def concat(parts: Sequence[Dataset]) -> Dataset:
        """Rows of all parts; a text seen before is dropped (its first label wins)."""
        classes = {p.classes for p in parts}
        if len(classes) != 1:
            raise ValueError(f"cannot mix data sets with classes {sorted(classes)}")
        seen: set[str] = set()
        texts: list[str] = []
        labels: list[int] = []
        origin: list[str] = []
        with_origin = all(p.origin is not None for p in parts)
        for part in parts:
            origins = part.origin if part.origin is not None else ("",) * len(part)
            for text, label, where in zip(part.texts, part.labels, origins, strict=True):
                if text not in seen:
                    seen.add(text)
                    texts.append(text)
                    labels.append(int(label))
                    origin.append(where)
        return Dataset(
            texts,
            np.asarray(labels, dtype=np.int64),
            " + ".join(p.source for p in parts),
            sum(p.skipped for p in parts),
            classes=classes.pop(),
            origin=tuple(origin) if with_origin else None,
        )


def row_weights(
    data: Dataset,
    shares: dict[str, float] | None,
    *,
    balance_classes: bool = False,
    fixed: Mapping[str, float] | None = None,
) -> NDArray[np.float64] | None:
    """Per-row loss weights that give each part of a mixture (``data.origin``) its share of
    the total weight, e.g. ``{"sst2": 0.5, "chat": 0.5}``; rows of one part weigh the same, or
    with ``balance_classes`` each class within a part gets an equal share of that part's
    weight. The weights average 1. None (every row weighs 1) without shares.

    ``fixed`` names parts whose rows each weigh a set amount, outside the shares (e.g.
    ``{"corrections": 10.0}``: each correction counts as ten ordinary rows); the weights of
    the other rows then average 1 (every one 1 without shares)."""
    fixed = dict(fixed or {})
    if shares is None and not fixed:
        return None
    if data.origin is None:
        raise DataError("weighting by source needs rows that say where they come from")
    origin = np.asarray(data.origin, dtype=object)
    weights = np.ones(len(data), dtype=np.float64)
    parts = set(data.origin) - set(fixed)
    if shares is not None:
        unknown = sorted(parts - set(shares))
        if unknown:
            raise DataError(f"no weight given for rows from {', '.join(unknown)}")
        n = sum(1 for o in data.origin if o in parts)  # the rows the shares divide
        total = sum(shares[name] for name in parts)
        for name in parts:
            members = origin == name
            if not balance_classes:
                weights[members] = shares[name] / total * n / int(members.sum())
                continue
            present = np.unique(data.labels[members])
            for label in present:
                rows = members & (data.labels == label)
                weights[rows] = shares[name] / total / len(present) * n / int(rows.sum())
    for name, weight in fixed.items():
        weights[origin == name] = weight
    return weights


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
    content = _read_utf8(path, "Save the file as UTF-8.")
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


def _read_utf8(path: Path, fix: str) -> str:
    """The file's text (a UTF-8 BOM dropped); bytes that are not UTF-8 are a
    :class:`DataError` naming the file, the line and ``fix``."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text ({exc.reason}). {fix}") from None


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


def find_split(
    split: str,
    data_dir: Path | None = None,
    *,
    download_dir: Path = DEFAULT_DATA_DIR,
    url_template: str = SST2_URL,
    progress: bool = True,
) -> Path:
    """Path of an SST-2 split (``train``, ``dev`` or ``test``).

    With ``data_dir`` (the user's) the file must be there as ``{split}.tsv`` or
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
            f"in {folder.resolve()}, or point --data-dir / SENTIMENT_DATA_DIR at the folder that "
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
            "SENTIMENT_DATA_DIR at the folder that holds them."
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


def find_phrases(path: str | Path | None, data_dir: Path | None) -> Path:
    """GLUE's phrase-level SST-2 training file (67,349 rows, with a header): ``path``, else
    ``sst2-phrases/train.tsv`` beside the SST-2 folder."""
    if path is not None:
        path = Path(path).expanduser()
    else:
        base = data_dir if data_dir is not None else DEFAULT_DATA_DIR
        path = base.parent / "sst2-phrases" / "train.tsv"
    if not path.is_file():
        raise DataError(
            f"SST-2 phrase file not found: {path} does not exist. It is GLUE's SST-2 train.tsv "
            f"(67,349 phrases; in {GLUE_SST2_URL}). Put it there, or pass --phrases / set "
            "SENTIMENT_PHRASES_FILE to its path."
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


# --------------------------------------------------------------------------------------------
# Chat data: GoEmotions (Reddit comments, 27 emotions + neutral), mapped to three moods

DEFAULT_CHAT_DATA_DIR = Path("data/goemotions")
GOEMOTIONS_URL = "https://github.com/google-research/google-research/raw/master/goemotions/data/"
# The test split is held out on purpose: never looked for, never downloaded.
CHAT_SPLITS = ("train", "dev")
# label names: "labels.txt" in the shared copy, "emotions.txt" upstream (the same 28 lines)
_LABEL_FILES = ("labels.txt", "emotions.txt")
_GROUPS_FILE = "sentiment_dict.json"
AMBIGUOUS_CHOICES = ("neutral", "drop")
MIXED_CHOICES = ("polar", "drop")


@dataclass(frozen=True)
class ChatMapping:
    """How GoEmotions' emotions become three moods, by the authors' grouping of the 27 emotions
    into positive, negative and ambiguous (plus ``neutral``).

    A comment whose labels all fall in one group takes that group's mood. ``ambiguous``: a
    comment with only ambiguous emotions (surprise, curiosity, confusion, realization) is
    ``neutral`` or dropped. ``mixed``: a comment with exactly one polar group and otherwise
    ambiguous or neutral labels takes that polar mood (``polar``) or is dropped; a comment
    with both positive and negative emotions is always dropped.
    """

    ambiguous: str = "neutral"
    mixed: str = "polar"

    def __post_init__(self) -> None:
        if self.ambiguous not in AMBIGUOUS_CHOICES:
            raise ValueError(f"ambiguous must be one of {', '.join(AMBIGUOUS_CHOICES)}")
        if self.mixed not in MIXED_CHOICES:
            raise ValueError(f"mixed must be one of {', '.join(MIXED_CHOICES)}")

    def mood(self, groups: frozenset[str]) -> int | None:
        """Index into ``THREE_WAY`` for a comment's set of groups, or None to drop it."""
        polar = groups & {"positive", "negative"}
        if len(polar) == 2:
            return None
        if len(groups) == 1:
            (group,) = groups
            if group == "ambiguous":
                return THREE_WAY.index("neutral") if self.ambiguous == "neutral" else None
            return THREE_WAY.index(group)
        if polar:
            return THREE_WAY.index(next(iter(polar))) if self.mixed == "polar" else None
        # ambiguous + neutral
        return THREE_WAY.index("neutral") if self.ambiguous == "neutral" else None

    def describe(self) -> str:
        return f"ambiguous={self.ambiguous}, mixed={self.mixed}"


def find_chat_files(
    data_dir: Path | None,
    *,
    download_dir: Path = DEFAULT_CHAT_DATA_DIR,
    url: str = GOEMOTIONS_URL,
    progress: bool = True,
) -> Path:
    """The GoEmotions folder, with train.tsv, dev.tsv, the label names and the grouping.

    With ``data_dir`` (the user's) the files must be there. Without it,
    ``download_dir`` is used and missing files are downloaded from the dataset's repository.
    """
    folder = data_dir if data_dir is not None else download_dir
    wanted = [f"{s}.tsv" for s in CHAT_SPLITS]
    missing = [name for name in wanted if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in _LABEL_FILES):
        missing.append("emotions.txt")
    if not (folder / _GROUPS_FILE).is_file():
        missing.append(_GROUPS_FILE)
    if not missing:
        return folder
    hint = (
        f"Put GoEmotions' train.tsv, dev.tsv, emotions.txt (or labels.txt) and {_GROUPS_FILE} "
        f"(from {url}) in {folder.resolve()}, or point --chat-data / SENTIMENT_CHAT_DATA_DIR at "
        "the folder that holds them."
    )
    if data_dir is not None:
        raise DataError(
            f"GoEmotions files missing in {folder.resolve()}: {', '.join(missing)}. " + hint
        )
    for name in missing:
        try:
            download(url + name, folder / name, progress=progress)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            raise DataError(
                f"GoEmotions {name} not found in {folder.resolve()} and the download from "
                f"{url + name} failed ({exc}). Offline? {hint}"
            ) from None
    return folder


def _emotion_groups(folder: Path) -> list[str]:
    """For each GoEmotions label id, its group: positive, negative, ambiguous or neutral."""
    labels_file = next(folder / n for n in _LABEL_FILES if (folder / n).is_file())
    names = [line.strip() for line in labels_file.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    groups_path = folder / _GROUPS_FILE
    try:
        grouping = json.loads(groups_path.read_text(encoding="utf-8"))
        group_of = {e: g for g, emotions in grouping.items() for e in emotions}
    except (ValueError, AttributeError, TypeError) as exc:
        raise DataError(
            f"{groups_path}: not the GoEmotions grouping (a JSON object of group -> emotions: "
            f"{exc}). Download it again from {GOEMOTIONS_URL}{_GROUPS_FILE}."
        ) from None
    group_of["neutral"] = "neutral"
    unknown = [n for n in names if n not in group_of]
    if unknown:
        raise DataError(
            f"{labels_file}: emotions {', '.join(unknown)} are not in {groups_path}. The two "
            "files must come from the same GoEmotions release."
        )
    return [group_of[n] for n in names]


def load_goemotions(
    split: str,
    folder: Path,
    mapping: ChatMapping | None = None,
    *,
    skip_malformed: bool = False,
) -> tuple[Dataset, dict[str, int]]:
    """One GoEmotions split mapped to three moods, and how many comments had each combination
    of groups (e.g. ``positive``, ``ambiguous+positive``) and how many were dropped.

    Rows are ``text<TAB>label ids, comma-separated<TAB>comment id``. A malformed row raises
    :class:`DataError` naming file and line, or with ``skip_malformed`` is skipped and counted.
    """
    if split not in CHAT_SPLITS:
        raise DataError(
            f"GoEmotions split {split!r}: only {', '.join(CHAT_SPLITS)} are used; the test split "
            "is held out on purpose."
        )
    mapping = mapping or ChatMapping()
    path = folder / f"{split}.tsv"
    groups_of = _emotion_groups(folder)
    content = _read_utf8(path, "Download it again.")

    texts: list[str] = []
    labels: list[int] = []
    counts: dict[str, int] = {}
    skipped = dropped = 0
    for lineno, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        problem: str | None = None
        ids: list[int] = []
        if len(fields) != 3:
            problem = f"{len(fields)} tab-separated fields, expected 3 (text, label ids, id)"
        elif not fields[0].strip():
            problem = "empty text"
        else:
            try:
                ids = [int(x) for x in fields[1].split(",")]
            except ValueError:
                problem = f"label ids {fields[1]!r} are not comma-separated whole numbers"
            else:
                if not all(0 <= i < len(groups_of) for i in ids):
                    problem = f"label ids {fields[1]!r} outside 0..{len(groups_of) - 1}"
        if problem is not None:
            if skip_malformed:
                skipped += 1
                continue
            raise DataError(
                f"{path}:{lineno}: {problem}. Fix the row, or pass --skip-malformed to skip and "
                "count such rows."
            )
        groups = frozenset(groups_of[i] for i in ids)
        key = "+".join(sorted(groups))
        counts[key] = counts.get(key, 0) + 1
        mood = mapping.mood(groups)
        if mood is None:
            dropped += 1
            continue
        texts.append(fields[0].strip())
        labels.append(mood)
    if not texts:
        raise DataError(f"{path}: no usable rows ({skipped} malformed, {dropped} dropped).")
    counts["dropped"] = dropped
    data = Dataset(texts, np.asarray(labels, dtype=np.int64), str(path), skipped, classes=THREE_WAY)
    return data, counts
