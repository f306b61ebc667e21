"""Sentence encoder: a frozen Hugging Face transformer that turns each text into one vector.

Pooling is ``cls`` (the first position, as in the tutorial for DistilBERT/BERT) or ``mean``
(mask-aware mean over tokens, as sentence-transformers models do). Texts are tokenised in one
call, sorted by length and padded per batch, so short texts never pay for long ones.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from model.serving.adapter import AdapterError, merge_adapter
from model.serving.int8 import INT8_MODEL_FILE, TOKENIZER_FILE, Int8Session
from model.serving.spec import (
    BUNDLED_ENCODER,
    CHARS_PER_TOKEN_CAP,
    DEFAULT_BATCH_SIZE,
    POOLINGS,
    PRECISION_CHOICES,
    PRECISIONS,
    EncoderError,
    EncoderSpec,
    Pooling,
    Precision,
    clean_text,
    encode_in_length_order,
    encoder_cache_key,
    model_defaults,
    resolve_source,
)
from model.serving.textnorm import DEFAULT_NORMALIZER, NormalizerError, get_normalizer

__all__ = [  # the spec's names are re-exported: this module was their home before spec.py
    "BUNDLED_ENCODER",
    "DEFAULT_BATCH_SIZE",
    "POOLINGS",
    "PRECISIONS",
    "PRECISION_CHOICES",
    "Encoder",
    "EncoderError",
    "EncoderSpec",
    "Pooling",
    "Precision",
    "clean_text",
    "cpu_has_native_bf16",
    "model_defaults",
    "pool",
    "resolve_precision",
    "resolve_source",
]


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
        self._int8: Int8Session | None = None
        if resolved_precision == "int8":
            _ = self.fingerprint  # of the fp32 weights the int8 ones are made from
            self._int8_files = tempfile.TemporaryDirectory(prefix="sentiment-int8-")
            folder = Path(self._int8_files.name)
            self.export_int8(folder)
            self._int8 = Int8Session(folder / INT8_MODEL_FILE, threads=threads)
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

    def export_int8(self, folder: Path) -> dict[str, Any]:
        """Write the int8 serving model (see model/serving/int8.py) and a copy of the tokenizer
        set up as :meth:`tokenize` uses it into ``folder``; what a loader needs to know of them."""
        from model.serving import int8

        layers = int8.build(
            self.model,
            folder / INT8_MODEL_FILE,
            pooling=self.spec.pooling,
            normalize=self.spec.normalize,
        )
        backend = type(self.tokenizer.backend_tokenizer).from_str(
            self.tokenizer.backend_tokenizer.to_str()
        )
        backend.no_padding()
        backend.enable_truncation(self.spec.max_length)
        backend.save(str(folder / TOKENIZER_FILE))
        return {
            "dim": self.dim,
            "special_ids": sorted(self._no_meaning_ids),
            "pad_id": int(self.tokenizer.pad_token_id or 0),
            "quantised_layers": layers,
        }

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
        return encoder_cache_key(self.fingerprint, self.spec)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text (chat text normalised, special tokens added, truncated to
        ``max_length``), no padding."""
        if not texts:
            return []
        max_chars = self.spec.max_length * CHARS_PER_TOKEN_CAP
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
        if not ids:
            return np.empty((0, self.dim), dtype=np.float32)
        self.calls += 1
        with torch.inference_mode():
            return encode_in_length_order(
                ids,
                dim=self.dim,
                batch_size=self.batch_size,
                run=self._run_batch,
                progress=progress,
                desc=desc,
                map_batches=None if self._int8 is None else self._int8.map,
            )

    def _run_batch(self, rows: list[Sequence[int]]) -> NDArray[np.float32]:
        input_ids, mask = self.pad(rows)
        if self._int8 is not None:
            return self._int8.run(input_ids.numpy(), mask.numpy())
        hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return pool(hidden, mask, self.spec.pooling, self.spec.normalize).numpy()
