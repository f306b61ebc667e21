"""On-disk embedding cache, keyed by encoder and text.

One folder per encoder key (weights + pooling settings); inside, append-only ``.npz`` shards of
(text digests, vectors). Retraining with another C or band reads every vector back in a moment.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray


def default_cache_dir(cache_home: Path | None = None) -> Path:
    """``sentiment-bot/embeddings`` in ``cache_home`` (the user's ``XDG_CACHE_HOME``), by
    default in ``~/.cache``."""
    return (cache_home or Path.home() / ".cache") / "sentiment-bot" / "embeddings"


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


@dataclass
class CacheStats:
    hits: int = 0
    computed: int = 0


class EmbeddingCache:
    """Vectors for texts under one encoder key; missing ones are computed once and stored."""

    def __init__(self, root: Path, encoder_key: str, dim: int) -> None:
        self.folder = root / encoder_key
        self.dim = dim
        self._index: dict[bytes, NDArray[np.float32]] | None = None
        self.stats = CacheStats()

    def _load(self) -> dict[bytes, NDArray[np.float32]]:
        if self._index is None:
            index: dict[bytes, NDArray[np.float32]] = {}
            for shard in sorted(self.folder.glob("shard-*.npz")):
                try:
                    with np.load(shard) as data:
                        keys, vectors = data["keys"], data["vectors"]
                except (OSError, ValueError, KeyError):
                    continue  # a damaged shard only costs recomputation
                if vectors.ndim != 2 or vectors.shape[1] != self.dim:
                    continue
                for key, row in zip(keys, vectors, strict=True):
                    index[key.tobytes()] = row
            self._index = index
        return self._index

    def get(
        self,
        texts: Sequence[str],
        compute: Callable[[list[str]], NDArray[np.float32]],
    ) -> NDArray[np.float32]:
        """Vectors for ``texts`` in order; ``compute`` runs once, on the texts not yet cached."""
        index = self._load()
        keys = [text_key(t) for t in texts]
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in index and key not in missing:
                missing[key] = text
        self.stats.hits += len(texts) - sum(1 for k in keys if k in missing)
        if missing:
            new_keys = list(missing)
            vectors = np.asarray(compute(list(missing.values())), dtype=np.float32)
            self.stats.computed += len(new_keys)
            self._write_shard(new_keys, vectors)
            for key, row in zip(new_keys, vectors, strict=True):
                index[key] = row
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, key in enumerate(keys):
            out[i] = index[key]
        return out

    def _write_shard(self, keys: list[bytes], vectors: NDArray[np.float32]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(b"".join(keys)).hexdigest()[:16]
        target = self.folder / f"shard-{digest}.npz"
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                # raw uint8 rows: numpy's bytes dtype would strip a digest's trailing NULs
                packed = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), -1)
                np.savez(f, keys=packed, vectors=vectors)
            Path(tmp).replace(target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
