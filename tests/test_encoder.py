"""The encoder: pooling rules, per-batch padding, defaults from the model, clear errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from model.serving.encoder import Encoder, EncoderError, model_defaults, resolve_source

TEXTS = ["good", "the movie was not very good at all", "bad film", "a"]


def manual(encoder: Encoder, text: str, pooling: str) -> np.ndarray:
    """The reference: one text alone, no padding, pooled by hand."""
    batch = encoder.tokenizer([text], return_tensors="pt", truncation=True,
                              max_length=encoder.spec.max_length)  # fmt: skip
    with torch.no_grad():
        hidden = encoder.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state[0]
    vec = hidden[0] if pooling == "cls" else hidden.mean(dim=0)
    if encoder.spec.normalize:
        vec = vec / vec.norm()
    return vec.numpy()


@pytest.mark.parametrize("fixture", ["tiny_distilbert", "tiny_bert"])
def test_tutorial_models_default_to_cls_pooling(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    folder: Path = request.getfixturevalue(fixture)
    encoder = Encoder(str(folder), batch_size=3)
    assert encoder.spec.pooling == "cls"
    assert encoder.spec.normalize is False
    assert encoder.dim == 32
    out = encoder.encode(TEXTS)
    assert out.shape == (4, 32) and out.dtype == np.float32
    # padding inside a batch (with longer texts) must not change any text's [CLS] vector
    for text, row in zip(TEXTS, out, strict=True):
        np.testing.assert_allclose(row, manual(encoder, text, "cls"), atol=1e-5)


def test_pooling_flag_overrides_the_default(tiny_bert: Path) -> None:
    encoder = Encoder(str(tiny_bert), pooling="mean", batch_size=2)
    out = encoder.encode(TEXTS)
    for text, row in zip(TEXTS, out, strict=True):
        np.testing.assert_allclose(row, manual(encoder, text, "mean"), atol=1e-5)


def test_bundled_minilm_uses_its_declared_mean_pooling(bundled_encoder: Encoder) -> None:
    spec = bundled_encoder.spec
    assert (spec.pooling, spec.normalize, spec.max_length) == ("mean", True, 256)
    assert bundled_encoder.dim == 384
    out = bundled_encoder.encode(TEXTS)
    for text, row in zip(TEXTS, out, strict=True):
        np.testing.assert_allclose(row, manual(bundled_encoder, text, "mean"), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_bundled_encoder_is_found_offline_by_hub_name() -> None:
    assert Path(resolve_source("sentence-transformers/all-MiniLM-L6-v2")).is_dir()
    pooling, normalize, max_length = model_defaults(
        resolve_source("sentence-transformers/all-MiniLM-L6-v2")
    )
    assert (pooling, normalize, max_length) == ("mean", True, 256)


def test_long_text_is_truncated_to_max_length(tiny_distilbert: Path) -> None:
    encoder = Encoder(str(tiny_distilbert), max_length=16)
    long_text = "good " * 5000
    out = encoder.encode([long_text, "good " * 14])
    # 14 words + [CLS] + [SEP] = 16 tokens: truncation makes the two inputs identical
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)


def test_any_unicode_is_accepted(bundled_encoder: Encoder) -> None:
    texts = ["日本語のテキスト", "مرحبا بالعالم", "🔥🔥🔥", "null\x00byte", "lone \ud800 surrogate",
             "zero\u200bwidth \u202eRTL"]  # fmt: skip
    out = bundled_encoder.encode(texts)
    assert np.isfinite(out).all() and out.shape == (len(texts), 384)


def test_fingerprint_depends_on_weights(tiny_bert: Path, tiny_distilbert: Path) -> None:
    a, b = Encoder(str(tiny_bert)), Encoder(str(tiny_bert))
    assert a.fingerprint == b.fingerprint
    assert a.cache_key != Encoder(str(tiny_bert), pooling="mean").cache_key
    assert a.fingerprint != Encoder(str(tiny_distilbert)).fingerprint


def test_unknown_model_name_gives_a_clear_error() -> None:
    with pytest.raises(EncoderError, match="could not load encoder 'no-such/model-xyz'"):
        Encoder("no-such/model-xyz")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pooling": "max"}, "unknown pooling"),
        ({"batch_size": 0}, "batch size"),
        ({"max_length": 1000}, "exceeds"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_settings_are_refused(tiny_bert: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(EncoderError, match=message):
        Encoder(str(tiny_bert), **kwargs)


@pytest.mark.parametrize("fixture", ["bundled", "tiny_distilbert"])
def test_bf16_path_stays_close_to_fp32(fixture: str, request: pytest.FixtureRequest) -> None:
    """The reduced-precision path must give (nearly) the same vectors: cosine >= 0.999."""
    name = "sentence-transformers/all-MiniLM-L6-v2"
    if fixture != "bundled":
        name = str(request.getfixturevalue(fixture))
    fp32, bf16 = Encoder(name, precision="fp32"), Encoder(name, precision="bf16")
    assert bf16.spec.precision == "bf16" and fp32.spec.precision == "fp32"
    texts = [*TEXTS, "what a wonderful , moving film", "a dull and lifeless mess " * 20]
    a, b = fp32.encode(texts), bf16.encode(texts)
    assert b.dtype == np.float32
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() >= 0.999
    # same weights as published, but another path: another embedding cache
    assert bf16.fingerprint == fp32.fingerprint
    assert bf16.cache_key != fp32.cache_key


def test_auto_precision_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from model.serving import encoder as module

    monkeypatch.setattr(module, "cpu_has_native_bf16", lambda: False)
    assert module.resolve_precision("auto") == "fp32"
    monkeypatch.setattr(module, "cpu_has_native_bf16", lambda: True)
    assert module.resolve_precision(None) == "bf16"
    assert module.resolve_precision("fp32") == "fp32"
    with pytest.raises(EncoderError, match="unknown precision 'fp16'"):
        module.resolve_precision("fp16")


def test_batches_of_long_texts_are_cut_to_a_token_budget() -> None:
    """At most batch_size texts and batch_size x TOKENS_PER_ROW tokens (padding included) a
    batch, longest first, every text once and its row back in input order."""
    from model.serving.spec import TOKENS_PER_ROW, encode_in_length_order

    lengths = [256, 3, 256, 40, 5, 200, 1, 0, 64, 2] * 7
    ids = [[n] * n for n in lengths]
    batches: list[list[int]] = []

    def run(rows: list[Sequence[int]]) -> np.ndarray:
        batches.append([len(r) for r in rows])
        return np.array([[len(r), len(rows)] for r in rows], dtype=np.float32)

    out = encode_in_length_order(ids, dim=2, batch_size=8, run=run)
    np.testing.assert_array_equal(out[:, 0], lengths)
    assert sorted(n for b in batches for n in b) == sorted(lengths)
    budget = 8 * TOKENS_PER_ROW
    for batch in batches:
        assert len(batch) <= 8 and batch[0] == max(batch)
        assert len(batch) == 1 or len(batch) * batch[0] <= budget
    assert [len(b) for b in batches][:3] == [1, 1, 1]  # 256 tokens: one text a batch
    assert max(len(b) for b in batches) == 8  # short texts still fill a batch
