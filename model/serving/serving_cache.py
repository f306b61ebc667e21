"""The serving cache: an artifact's int8 encoder, built once and loaded at every later start.

Building the int8 model means loading torch, the base encoder and the adapter, merging them and
exporting the result (tens of seconds). That happens once per artifact: the result is kept in
``<cache>/<artifact digest>-int8-v<format>/`` (``SENTIMENT_SERVING_CACHE``, by default
``sentiment-bot/serving`` in ``XDG_CACHE_HOME``) with a ``meta.json`` naming the artifact's
SHA-256 and every file's. A start that finds it loads :class:`Int8Encoder`, which needs only
numpy, onnxruntime and tokenizers: no torch, no transformers, no peft.

- missing, or made by another format or onnxruntime version: built (the log says so, and that
  the first start takes longer);
- corrupt (a file's digest differs from meta.json, or the model does not load): refused with
  a warning naming the folder, deleted and rebuilt;
- a folder that cannot be written: built in a temporary folder for this process only, with a
  warning saying which setting to fix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from model.serving.int8 import INT8_MODEL_FILE, TOKENIZER_FILE, Int8Session
from model.serving.spec import (
    CHARS_PER_TOKEN_CAP,
    INT8_GRAPH,
    EncoderError,
    EncoderSpec,
    clean_text,
    encode_in_length_order,
    encoder_cache_key,
)
from model.serving.textnorm import NormalizerError, get_normalizer

log = logging.getLogger(__name__)

FORMAT = INT8_GRAPH  # the layout of an entry and the int8 graph's version
META_FILE = "meta.json"


def default_serving_cache(cache_home: Path | None = None) -> Path:
    """``sentiment-bot/serving`` in ``cache_home`` (the user's ``XDG_CACHE_HOME``), by default
    ``~/.cache``."""
    home = cache_home or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return home / "sentiment-bot" / "serving"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _onnxruntime_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


class CorruptCacheError(Exception):
    """A serving cache entry that is not what its meta.json says."""


class StaleCacheError(Exception):
    """A serving cache entry made by another format or onnxruntime version."""


class Int8Encoder:
    """The int8 encoder of one artifact, from its serving cache entry: the same interface as
    :class:`model.serving.encoder.Encoder` for serving (``tokenize``, ``readable``,
    ``encode``, ``encode_ids``, ``spec``, ``dim``), and no torch."""

    def __init__(
        self,
        folder: Path,
        spec: EncoderSpec,
        meta: dict[str, Any],
        *,
        batch_size: int,
        threads: int | None = None,
    ) -> None:
        from tokenizers import Tokenizer

        try:
            self._normalize_text = get_normalizer(spec.text_normalizer)
        except NormalizerError as exc:
            raise EncoderError(str(exc)) from None
        try:
            self._tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        except Exception as exc:  # tokenizers raises plain Exception for a bad file
            raise CorruptCacheError(f"{folder / TOKENIZER_FILE} does not load: {exc}") from None
        self._session = Int8Session(folder / INT8_MODEL_FILE, threads=threads)
        self.spec = replace(spec, precision="int8")
        self.folder = folder
        self._dim = int(meta["dim"])
        self._fingerprint = str(meta["fingerprint"])
        self._special = frozenset(int(i) for i in meta["special_ids"])
        self._pad = int(meta["pad_id"])
        self.batch_size = batch_size
        self.calls = 0

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def fingerprint(self) -> str:
        """Of the fp32 weights the int8 ones were made from (as the torch encoder's)."""
        return self._fingerprint

    @property
    def cache_key(self) -> str:
        return encoder_cache_key(self._fingerprint, self.spec)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, exactly as the torch encoder's ``tokenize`` gives them."""
        if not texts:
            return []
        max_chars = self.spec.max_length * CHARS_PER_TOKEN_CAP
        cleaned = [self._normalize_text(clean_text(t, max_chars)) for t in texts]
        return [list(e.ids) for e in self._tokenizer.encode_batch(cleaned)]

    def readable(self, ids: Sequence[int]) -> bool:
        """True when the text has at least one token the model knows (not [UNK] or special)."""
        return any(i not in self._special for i in ids)

    def pad(self, rows: Sequence[Sequence[int]]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        longest = max(len(r) for r in rows)
        ids = np.full((len(rows), longest), self._pad, dtype=np.int64)
        mask = np.zeros((len(rows), longest), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return ids, mask

    def encode(
        self, texts: Sequence[str], *, progress: bool = False, desc: str = "Encoding"
    ) -> NDArray[np.float32]:
        return self.encode_ids(self.tokenize(texts), progress=progress, desc=desc)

    def encode_ids(
        self, ids: Sequence[Sequence[int]], *, progress: bool = False, desc: str = "Encoding"
    ) -> NDArray[np.float32]:
        if not ids:
            return np.empty((0, self.dim), dtype=np.float32)
        self.calls += 1
        return encode_in_length_order(
            ids,
            dim=self.dim,
            batch_size=self.batch_size,
            run=lambda rows: self._session.run(*self.pad(rows)),
            progress=progress,
            desc=desc,
            map_batches=self._session.map,
        )


class ServingCache:
    """Where int8 encoders are kept, one folder per artifact digest."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_serving_cache()
        self._scratch: list[tempfile.TemporaryDirectory[str]] = []

    def entry(self, artifact_digest: str) -> Path:
        return self.root / f"{artifact_digest[:32]}-int8-v{FORMAT}"

    def int8_encoder(
        self,
        artifact_path: Path,
        spec: EncoderSpec,
        fingerprint: str | None,
        *,
        batch_size: int,
        threads: int | None = None,
    ) -> Int8Encoder:
        """The artifact's int8 encoder: loaded from the cache, else built (and kept)."""
        digest = file_digest(artifact_path)
        folder = self.entry(digest)
        if folder.is_dir():
            try:
                meta = self._check(folder, digest)
                return Int8Encoder(folder, spec, meta, batch_size=batch_size, threads=threads)
            except (CorruptCacheError, EncoderError) as exc:
                log.warning(
                    "serving cache %s is corrupt (%s): refusing it, deleting it and building "
                    "the int8 encoder again",
                    folder,
                    exc,
                )
                shutil.rmtree(folder, ignore_errors=True)
            except StaleCacheError as exc:
                log.info("serving cache %s is stale (%s): building it again", folder, exc)
                shutil.rmtree(folder, ignore_errors=True)
        folder = self._build(artifact_path, digest, spec, fingerprint, threads)
        meta = self._check(folder, digest)
        return Int8Encoder(folder, spec, meta, batch_size=batch_size, threads=threads)

    def _check(self, folder: Path, digest: str) -> dict[str, Any]:
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CorruptCacheError(f"{META_FILE} unreadable: {exc}") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("files"), dict):
            raise CorruptCacheError(f"{META_FILE} is not a serving cache description")
        if meta.get("format") != FORMAT or meta.get("onnxruntime") != _onnxruntime_version():
            raise StaleCacheError(
                f"made by format {meta.get('format')} and onnxruntime "
                f"{meta.get('onnxruntime')}, this is format {FORMAT} and onnxruntime "
                f"{_onnxruntime_version()}"
            )
        if meta.get("artifact_sha256") != digest:
            raise CorruptCacheError("made for another artifact")
        for name, expected in meta["files"].items():
            path = folder / name
            if not path.is_file() or file_digest(path) != expected:
                raise CorruptCacheError(f"{name} is missing or differs from {META_FILE}")
        return meta

    def _build(
        self,
        artifact_path: Path,
        digest: str,
        spec: EncoderSpec,
        fingerprint: str | None,
        threads: int | None,
    ) -> Path:
        from model.serving.encoder import Encoder

        log.info(
            "building the int8 encoder of %s once (torch, merge, export: about half a minute); "
            "later starts load it from %s",
            artifact_path,
            self.entry(digest),
        )
        started = time.perf_counter()
        encoder = Encoder.from_spec(spec, threads=threads, precision="fp32")
        if fingerprint and encoder.fingerprint != fingerprint:
            raise EncoderError(
                f"encoder {spec.name!r} has other weights than {artifact_path} was trained on: "
                "retrain the artifact with `sentiment train`."
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".building-", dir=self.root))
            keep = True
        except OSError as exc:
            log.warning(
                "cannot write the serving cache %s (%s): building in a temporary folder for "
                "this process only. Set SENTIMENT_SERVING_CACHE to a writable folder.",
                self.root,
                exc.strerror or exc,
            )
            scratch = tempfile.TemporaryDirectory(prefix="sentiment-serving-")
            self._scratch.append(scratch)
            staging = Path(scratch.name)
            keep = False
        meta = encoder.export_int8(staging)
        meta.update(
            format=FORMAT,
            onnxruntime=_onnxruntime_version(),
            artifact=str(artifact_path),
            artifact_sha256=digest,
            fingerprint=encoder.fingerprint,
            files={name: file_digest(staging / name) for name in (INT8_MODEL_FILE, TOKENIZER_FILE)},
        )
        (staging / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if not keep:
            return staging
        final = self.entry(digest)
        try:
            staging.replace(final)
        except OSError:  # another process built it first: use theirs, drop ours
            shutil.rmtree(staging, ignore_errors=True)
        log.info("int8 encoder built in %.1f s: %s", time.perf_counter() - started, final)
        return final
