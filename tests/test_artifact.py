"""Artifact round trip and every way a file can be unusable (the safetensors format and the
legacy joblib loader's refusals: tests/test_artifact_safety.py)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from model.serving.adapter import adapter_digest
from model.serving.artifact import (
    SCHEMA_VERSION,
    Artifact,
    ArtifactError,
    default_artifact_path,
    load_artifact,
    read_payload,
    save_artifact,
    write_payload,
)
from model.serving.encoder import EncoderSpec
from model.training.finetune import FinetuneOptions


def make_artifact() -> Artifact:
    return Artifact(
        encoder=EncoderSpec("some/encoder", "cls", 128, False),
        coef=np.linspace(-1, 1, 8),
        intercept=0.25,
        band=(0.3, 0.7),
        metrics={"test": {"accuracy": 0.8}},
        training={"C": 1.0},
        versions={"numpy": np.__version__},
        encoder_fingerprint="abc",
    )


def test_round_trip(tmp_path: Path) -> None:
    original = make_artifact()
    path = tmp_path / "a.safetensors"
    save_artifact(original, path)
    loaded = load_artifact(path)
    assert loaded.encoder == original.encoder
    np.testing.assert_array_equal(loaded.coef, original.coef)
    assert (loaded.intercept, loaded.band) == (0.25, (0.3, 0.7))
    assert loaded.metrics == original.metrics and loaded.training == original.training
    assert loaded.encoder_fingerprint == "abc"
    assert loaded.version == original.version


def test_payload_holds_only_plain_values(tmp_path: Path) -> None:
    """No pickled estimator: the file loads with nothing from scikit-learn imported."""
    path = tmp_path / "a.safetensors"
    save_artifact(make_artifact(), path)
    payload = read_payload(path)

    def plain(value: Any) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return isinstance(value, str | int | float | bool | np.ndarray) or value is None

    assert plain(payload)


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "a.safetensors"
    save_artifact(make_artifact(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArtifactError, match="truncated or corrupt"):
        load_artifact(path)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "a.joblib"
    path.write_bytes(b"\x00not a joblib file at all" * 10)
    with pytest.raises(ArtifactError, match="truncated or corrupt"):
        load_artifact(path)


def test_foreign_pickle(tmp_path: Path) -> None:
    path = tmp_path / "a.joblib"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(ArtifactError, match="not a Sentiment Bot classifier artifact"):
        load_artifact(path)


def changed_file(path: Path, **changes: Any) -> Path:
    """A payload with changes: safetensors for a .safetensors path, else a legacy joblib file
    (which can hold values no safetensors array can, e.g. a string for 'coef')."""
    payload = make_artifact().to_payload()
    for key, value in changes.items():
        if value is None:
            del payload[key]
        else:
            payload[key] = value
    if path.suffix == ".safetensors":
        write_payload(payload, path)
    else:
        joblib.dump(payload, path)
    return path


@pytest.mark.parametrize("name", ["a.safetensors", "a.joblib"])
def test_missing_key(tmp_path: Path, name: str) -> None:
    path = changed_file(tmp_path / name, coef=None)
    with pytest.raises(ArtifactError, match="missing 'coef'"):
        load_artifact(path)


@pytest.mark.parametrize("name", ["a.safetensors", "a.joblib"])
def test_too_new_schema_version(tmp_path: Path, name: str) -> None:
    path = changed_file(tmp_path / name, schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(ArtifactError, match="newer Sentiment Bot"):
        load_artifact(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema_version": "1"}, "not an integer"),
        ({"schema_version": 0}, "unknown schema version"),
        ({"coef": np.array([1.0, np.nan])}, "finite 1-D"),
        ({"coef": np.zeros((2, 2))}, "finite 1-D"),
        ({"coef": "weights"}, "finite 1-D"),
        ({"band": [0.6, 0.7]}, "'band'"),
        ({"intercept": float("inf")}, "'intercept'"),
        ({"encoder": {"name": "x", "pooling": "max", "max_length": 8}}, "unknown pooling"),
        (
            {"encoder": {"name": "x", "pooling": "cls", "max_length": 8, "precision": "fp16"}},
            "unknown encoder precision",
        ),
    ],
)
def test_wrong_contents(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    path = changed_file(tmp_path / "a.joblib", **change)
    with pytest.raises(ArtifactError, match=message):
        load_artifact(path)
    if not isinstance(change.get("coef", 0.0), str):  # the same through the safetensors format
        path = changed_file(tmp_path / "a.safetensors", **change)
        with pytest.raises(ArtifactError, match=message):
            load_artifact(path)


def test_missing_file_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="sentiment-train --output"):
        load_artifact(tmp_path / "none.safetensors")


def test_committed_default_is_valid() -> None:
    """The default is the three-way chat model: all-MiniLM-L6-v2 fine-tuned with a committed
    LoRA adapter, taught from the SST-2 adapter; the binary SST-2 model stays available as
    sst2.safetensors, the frozen encoder as frozen.safetensors. Converting them from joblib to
    safetensors kept every model's version."""
    path = default_artifact_path()
    assert path.name == "default.safetensors"
    artifact = load_artifact(path)
    assert artifact.version == "ee37311d91d1"
    # fitted on its int8 embeddings (the serving path), fp32 and bf16 validated on dev
    assert artifact.encoder.precision == "int8"
    assert artifact.allowed_paths == ("int8", "fp32", "bf16")
    report = json.loads(path.with_suffix(".report.json").read_text(encoding="utf-8"))
    assert all(check["allowed"] for check in report["serving_paths"].values())
    assert artifact.encoder.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert artifact.encoder.pooling == "mean"
    assert artifact.three_way and artifact.coef.shape == (3, 384)
    assert artifact.labels == ("negative", "neutral", "positive")
    assert artifact.training["train_on"] == "both"
    assert artifact.training["task"] == "three-way"
    assert artifact.encoder.text_normalizer == "chat"
    assert artifact.encoder.adapter == str(path.with_suffix(".adapter").resolve())
    assert artifact.encoder.adapter_digest == adapter_digest(path.with_suffix(".adapter"))
    tuned = artifact.training["finetune"]
    assert tuned["adapter_digest"] == artifact.encoder.adapter_digest
    assert tuned["finetune_on"] == "both"
    sst2 = load_artifact(path.with_name("sst2.safetensors"))
    assert sst2.version == "49b7d7735d29"
    assert tuned["init_adapter_digest"] == sst2.encoder.adapter_digest
    # the README's command: one epoch from the SST-2 adapter, the other fine-tuning defaults
    defaults = FinetuneOptions().identity()
    assert {key: tuned[key] for key in defaults} == {**defaults, "epochs": 1}
    # the reactions it makes are at least 90% right on chat dev
    assert artifact.metrics["chat_dev"]["voicing"]["precision"] >= 0.9

    # the binary SST-2 model, trained with the fine-tuning defaults
    assert not sst2.three_way and sst2.coef.shape == (384,)
    assert sst2.encoder.adapter == str(path.with_name("sst2.adapter").resolve())
    assert sst2.encoder.adapter_digest == adapter_digest(path.with_name("sst2.adapter"))
    assert {key: sst2.training["finetune"][key] for key in defaults} == defaults

    frozen = load_artifact(path.with_name("frozen.safetensors"))
    assert frozen.version == "88bbc84967fa"
    assert frozen.encoder.adapter is None and frozen.encoder.text_normalizer == "chat"
    assert frozen.training["train_on"] == "both"


def test_artifact_without_a_precision_is_fp32(tmp_path: Path) -> None:
    """Artifacts written before the bf16 path record none: their vectors were fp32."""
    payload = make_artifact().to_payload()
    del payload["encoder"]["precision"]
    joblib.dump(payload, tmp_path / "old.joblib")
    assert load_artifact(tmp_path / "old.joblib").encoder.precision == "fp32"
