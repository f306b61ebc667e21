"""Fine-tuning with LoRA adapters on a tiny model: the loss falls, the adapter round-trips through
save / load / merge, an altered or missing adapter is refused, an interrupted run resumes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from model.serving.adapter import ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapter_digest
from model.serving.artifact import load_artifact, save_artifact
from model.serving.classifier import SentimentClassifier
from model.serving.encoder import Encoder, EncoderError
from model.training.data import Dataset
from model.training.finetune import FinetuneError, FinetuneOptions, epoch_batches, finetune
from model.training.train import TrainOptions, train_classifier

POSITIVE = ["good movie", "great film", "love it", "the film was fun", "very good", "a great movie"]
NEGATIVE = ["bad movie", "awful film", "hate it", "the film was boring", "very bad", "not good"]


def toy_data(repeat: int = 4) -> Dataset:
    texts = (POSITIVE + NEGATIVE) * repeat
    labels = np.array(([1] * len(POSITIVE) + [0] * len(NEGATIVE)) * repeat, dtype=np.int64)
    return Dataset(texts, labels, "toy")


# One loss point per epoch (6 batches of 8); 12 epochs take a few seconds on the tiny model.
OPTIONS = FinetuneOptions(
    epochs=12, batch_size=8, learning_rate=1e-2, rank=4, alpha=8, dropout=0.0, checkpoint_every=6
)


@pytest.fixture
def tiny_encoder(tiny_bert: Path) -> Encoder:
    return Encoder(str(tiny_bert), pooling="mean")


def run(encoder: Encoder, out: Path, ckpt: Path, options: FinetuneOptions = OPTIONS):  # type: ignore[no-untyped-def]
    return finetune(
        encoder, toy_data(), out, options=options, checkpoint_root=ckpt, progress=False,
        log=lambda _: None,
    )  # fmt: skip


def test_a_tiny_run_lowers_its_training_loss(tiny_encoder: Encoder, tmp_path: Path) -> None:
    result = run(tiny_encoder, tmp_path / "adapter", tmp_path / "ckpt")
    curve = [point["loss"] for point in result.losses]
    assert result.steps == 6 * 12  # 48 rows in batches of 8, twelve epochs
    assert len(curve) == 12
    # the last two epochs' mean loss is less than half the first epoch's (chance: ln 2 = 0.69)
    assert (curve[-1] + curve[-2]) / 2 < 0.5 * curve[0], curve
    # only the adapter is written, a few kB here (a few MB for MiniLM)
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == sorted(
        [ADAPTER_CONFIG, ADAPTER_WEIGHTS]
    )
    config = json.loads((tmp_path / "adapter" / ADAPTER_CONFIG).read_text())
    assert config["base_model_name_or_path"] == tiny_encoder.spec.name  # not a local path
    # written in a fixed order (peft's comes from a salted set): same run, same digest
    assert config["target_modules"] == sorted(config["target_modules"])
    assert result.adapter_digest == adapter_digest(tmp_path / "adapter")


def test_the_base_encoder_is_left_unchanged(tiny_encoder: Encoder, tmp_path: Path) -> None:
    before = tiny_encoder.encode(POSITIVE)
    run(tiny_encoder, tmp_path / "adapter", tmp_path / "ckpt")
    np.testing.assert_array_equal(tiny_encoder.encode(POSITIVE), before)


def test_adapter_round_trip_merges_to_the_trained_model(
    tiny_bert: Path, tiny_encoder: Encoder, tmp_path: Path
) -> None:
    """Merged at load: the plain model gives the embeddings the adapter-wrapped model gives."""
    from peft import PeftModel

    result = run(tiny_encoder, tmp_path / "adapter", tmp_path / "ckpt")
    merged = Encoder(
        str(tiny_bert), pooling="mean", adapter=result.adapter_dir,
        adapter_digest=result.adapter_digest,
    )  # fmt: skip
    assert merged.spec.adapter_digest == result.adapter_digest
    # no LoRA layers left: serving runs the same architecture as the frozen encoder
    assert type(merged.model) is type(tiny_encoder.model)
    assert not any("lora" in name for name, _ in merged.model.named_parameters())

    wrapped = PeftModel.from_pretrained(Encoder(str(tiny_bert)).model, str(result.adapter_dir))
    wrapped.eval()
    texts = POSITIVE + NEGATIVE
    batch = merged.tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = wrapped(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    np.testing.assert_allclose(merged.encode(texts), expected, atol=1e-4)
    # and fine-tuning moved the embeddings
    assert not np.allclose(merged.encode(texts), tiny_encoder.encode(texts), atol=1e-3)
    assert merged.fingerprint != tiny_encoder.fingerprint


def test_adapter_is_stored_in_half_precision(tiny_encoder: Encoder, tmp_path: Path) -> None:
    """fp16 on disk halves what is committed; the checkpoint (for resuming) stays fp32."""
    from safetensors import safe_open

    result = run(tiny_encoder, tmp_path / "adapter", tmp_path / "ckpt")
    with safe_open(str(result.adapter_dir / ADAPTER_WEIGHTS), "pt") as stored:
        dtypes = {stored.get_tensor(name).dtype for name in stored.keys()}  # noqa: SIM118
    assert dtypes == {torch.float16}
    (checkpoint,) = (tmp_path / "ckpt").rglob("*.pt")
    lora = torch.load(checkpoint, weights_only=False)["lora"]
    assert lora and {t.dtype for t in lora.values()} == {torch.float32}


def test_artifact_records_the_adapter_and_travels_with_it(
    tiny_bert: Path, tiny_encoder: Encoder, tmp_path: Path
) -> None:
    result = run(tiny_encoder, tmp_path / "m" / "clf.adapter", tmp_path / "ckpt")
    encoder = Encoder(str(tiny_bert), pooling="mean", adapter=result.adapter_dir)
    data = toy_data(2)
    trained = train_classifier(
        encoder, data, data, data, options=TrainOptions(c_grid=(1.0,), n_jobs=1),
        progress=False, log=lambda _: None,
    )  # fmt: skip
    save_artifact(trained.artifact, tmp_path / "m" / "clf.safetensors")
    # the artifact stores the adapter relative to itself: move the folder, it still loads
    shutil.move(tmp_path / "m", tmp_path / "moved")
    loaded = load_artifact(tmp_path / "moved" / "clf.safetensors")
    assert loaded.encoder.adapter == str((tmp_path / "moved" / "clf.adapter").resolve())
    assert loaded.encoder.adapter_digest == result.adapter_digest
    assert loaded.version == trained.artifact.version  # the adapter's place is not the model
    # the moved artifact answers exactly as the model that was trained: same merged encoder,
    # same weights (whatever numeric path this CPU gives both)
    classifier = SentimentClassifier.load(
        tmp_path / "moved" / "clf.safetensors", language_gate=False
    )
    assert classifier.encoder.fingerprint == encoder.fingerprint
    p = classifier.probabilities(classifier.encoder.encode(data.texts))
    expected = SentimentClassifier(trained.artifact, encoder).probabilities(
        encoder.encode(data.texts)
    )
    np.testing.assert_allclose(p, expected, atol=1e-6)
    assert ((p >= 0.5) == (data.labels == 1)).mean() > 0.5  # and it learned something


def test_an_altered_adapter_is_refused(tiny_encoder: Encoder, tmp_path: Path) -> None:
    result = run(tiny_encoder, tmp_path / "adapter", tmp_path / "ckpt")
    weights = tmp_path / "adapter" / ADAPTER_WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(EncoderError, match="not the one the artifact was trained with"):
        Encoder(
            tiny_encoder.spec.name, pooling="mean", adapter=result.adapter_dir,
            adapter_digest=result.adapter_digest,
        )  # fmt: skip


def test_a_missing_adapter_is_refused(tiny_bert: Path, tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match=r"adapter folder .* not found"):
        Encoder(str(tiny_bert), adapter=tmp_path / "nowhere", adapter_digest="0" * 64)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / ADAPTER_CONFIG).write_text("{}")
    with pytest.raises(EncoderError, match=f"lacks {ADAPTER_WEIGHTS}"):
        Encoder(str(tiny_bert), adapter=tmp_path / "half")


def test_an_adapter_for_another_base_is_refused(
    tiny_distilbert: Path, tiny_encoder: Encoder, tmp_path: Path
) -> None:
    result = run(tiny_encoder, tmp_path / "adapter", tmp_path / "ckpt")
    with pytest.raises(EncoderError, match="does not fit this encoder"):
        Encoder(str(tiny_distilbert), adapter=result.adapter_dir)


def test_an_interrupted_run_resumes_to_the_same_adapter(
    tiny_encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = run(tiny_encoder, tmp_path / "straight", tmp_path / "ckpt-a")

    calls = {"n": 0}
    real_clip = torch.nn.utils.clip_grad_norm_

    def crash_at_step_13(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 13:
            raise KeyboardInterrupt
        return real_clip(*args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", crash_at_step_13)
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        finetune(
            tiny_encoder, toy_data(), tmp_path / "resumed", options=OPTIONS,
            checkpoint_root=tmp_path / "ckpt-b", progress=False, log=said.append,
        )  # fmt: skip
    assert "last checkpoint (step 12 of 72)" in said[-1]
    assert "run the same command again to resume" in said[-1]
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", real_clip)
    assert not (tmp_path / "resumed").exists()

    resumed = run(tiny_encoder, tmp_path / "resumed", tmp_path / "ckpt-b")
    assert resumed.resumed_from == 12  # the last checkpoint before the crash
    assert resumed.adapter_digest == straight.adapter_digest
    assert resumed.losses == straight.losses
    # the training time counts the interrupted process's part too
    assert resumed.total_seconds is not None and resumed.total_seconds > resumed.seconds


def test_epoch_batches_are_seeded_length_bucketed_and_complete() -> None:
    lengths = list(np.random.default_rng(0).integers(2, 60, size=1000))
    first = epoch_batches(lengths, 16, seed=0, epoch=0)
    assert [b.tolist() for b in first] == [b.tolist() for b in epoch_batches(lengths, 16, 0, 0)]
    assert [b.tolist() for b in first] != [b.tolist() for b in epoch_batches(lengths, 16, 0, 1)]
    assert sorted(np.concatenate(first).tolist()) == list(range(1000))
    # sorted windows: the padding is a small share of the tokens
    padded = sum(len(b) * max(lengths[i] for i in b) for b in first)
    assert padded < 1.1 * sum(lengths)


def test_bad_fine_tuning_requests_are_clear(tiny_encoder: Encoder, tmp_path: Path) -> None:
    one_label = Dataset(["good", "great"], np.array([1, 1]), "one-label")
    with pytest.raises(FinetuneError, match="only one label"):
        finetune(tiny_encoder, one_label, tmp_path / "a", progress=False, log=lambda _: None)
    with pytest.raises(FinetuneError, match="unknown device"):
        finetune(
            tiny_encoder, toy_data(), tmp_path / "a", options=FinetuneOptions(device="tpu9"),
            progress=False, log=lambda _: None,
        )  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_gpu_without_one_is_clear(tiny_encoder: Encoder, tmp_path: Path) -> None:
    with pytest.raises(FinetuneError, match="no GPU is visible"):
        finetune(
            tiny_encoder, toy_data(), tmp_path / "a", options=FinetuneOptions(device="cuda"),
            progress=False, log=lambda _: None,
        )  # fmt: skip


@pytest.mark.parametrize("field", ["epochs", "batch_size", "rank"])
def test_finetune_options_are_checked_when_made(field: str) -> None:
    with pytest.raises(FinetuneError, match="epochs, batch size and rank must each be at least 1"):
        FinetuneOptions(**{field: 0})  # type: ignore[arg-type]
