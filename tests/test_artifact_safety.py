"""The artifact format cannot run code and cannot exhaust memory: safetensors with its sizes
checked before any array is read; legacy joblib files read only through a refusing unpickler."""

from __future__ import annotations

import json
import os
import pickle
import tracemalloc
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from safetensors import safe_open

from model.serving.artifact import (
    THREE_WAY_LABELS,
    Artifact,
    ArtifactError,
    default_artifact_path,
    load_artifact,
    read_payload,
    save_artifact,
    write_payload,
)
from model.serving.encoder import EncoderSpec

SPEC = EncoderSpec("some/encoder", "mean", 64, True)


def binary() -> Artifact:
    return Artifact(
        encoder=SPEC,
        coef=np.linspace(-1, 1, 8),
        intercept=0.25,
        band=(0.3, 0.7),
        metrics={"test": {"accuracy": 0.8, "counts": [1, 2]}, "chat": {"precision": 0.9}},
        training={"C": 1.0, "grid": [0.1, 1.0]},
        versions={"numpy": "2.0"},
        encoder_fingerprint="abc",
    )


def three_way() -> Artifact:
    return Artifact(
        encoder=SPEC,
        coef=np.random.default_rng(0).normal(size=(3, 8)),
        intercept=np.array([0.1, 0.2, -0.3]),
        band=(0.25, 0.8),
        labels=THREE_WAY_LABELS,
        metrics={"chat_dev": {"accuracy": 0.7}},
    )


def write_marker(path: str) -> None:
    """What a malicious artifact would run: here, harmlessly, create a file."""
    Path(path).write_text("ran")


class Payload:
    """An object that, unpickled, calls ``func(*args)``: the classic pickle exploit."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.call = (func, args)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.call


# --- the safetensors format -------------------------------------------------------------------


@pytest.mark.parametrize("make", [binary, three_way], ids=["binary", "three-way"])
def test_round_trip_and_same_bytes(tmp_path: Path, make: Any) -> None:
    original = make()
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_artifact(original, first)
    loaded = load_artifact(first)
    assert loaded.version == original.version
    assert loaded.encoder == original.encoder and loaded.labels == original.labels
    np.testing.assert_array_equal(loaded.coef, original.coef)
    np.testing.assert_array_equal(loaded.intercept, original.intercept)
    assert isinstance(loaded.intercept, float) == (not original.three_way)
    assert (loaded.band, loaded.metrics, loaded.training) == (
        original.band,
        original.metrics,
        original.training,
    )
    # byte for byte: saving the same artifact again, or the loaded one, gives the same file
    save_artifact(original, second)
    assert second.read_bytes() == first.read_bytes()
    save_artifact(loaded, second)
    assert second.read_bytes() == first.read_bytes()


@pytest.mark.parametrize("name", ["default", "sst2", "frozen"])
def test_committed_artifacts_are_canonical(tmp_path: Path, name: str) -> None:
    """Each committed artifact is exactly what this version writes for its payload."""
    path = default_artifact_path().with_name(f"{name}.safetensors")
    write_payload(read_payload(path), tmp_path / path.name)
    assert (tmp_path / path.name).read_bytes() == path.read_bytes()


def test_file_is_plain_safetensors(tmp_path: Path) -> None:
    """Any safetensors reader opens it: two float64 arrays, the rest one JSON string."""
    path = tmp_path / "m.safetensors"
    save_artifact(three_way(), path)
    with safe_open(str(path), framework="numpy") as f:
        assert sorted(f.keys()) == ["coef", "intercept"]
        assert f.get_tensor("coef").shape == (3, 8) and f.get_tensor("coef").dtype == np.float64
        meta = f.metadata()
    assert list(meta) == ["sentiment-bot/classifier"]
    payload = json.loads(meta["sentiment-bot/classifier"])
    assert payload["schema"] == "sentiment-bot/classifier" and payload["schema_version"] == 2
    assert "coef" not in payload and "intercept" not in payload
    assert meta["sentiment-bot/classifier"] == json.dumps(
        payload, sort_keys=True, separators=(",", ":")
    )


def test_nan_metrics_are_stored_as_null(tmp_path: Path) -> None:
    """A metric with nothing to measure is NaN in memory; JSON has no NaN, so it loads as None."""
    artifact = binary()
    metrics = {"chat": {"precision": float("nan"), "n": np.int64(3), "r": np.float64(0.5)}}
    path = tmp_path / "m.safetensors"
    save_artifact(Artifact(**{**artifact.__dict__, "metrics": metrics}), path)
    loaded = load_artifact(path)
    assert loaded.metrics == {"chat": {"precision": None, "n": 3, "r": 0.5}}
    assert loaded.version == artifact.version


def test_joblib_output_name_is_warned_and_written_as_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "old-style.joblib"
    with pytest.warns(UserWarning, match=r"safetensors files now.*old-style\.safetensors"):
        save_artifact(binary(), path)
    with safe_open(str(path), framework="numpy") as f:
        assert sorted(f.keys()) == ["coef", "intercept"]
    assert load_artifact(path).version == binary().version


def test_truncated_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_artifact(three_way(), path)
    whole = path.read_bytes()
    for cut in (4, 20, len(whole) // 2, len(whole) - 8):
        path.write_bytes(whole[:cut])
        with pytest.raises(ArtifactError) as info:
            load_artifact(path)
        message = str(info.value)
        assert str(path) in message and "truncated or corrupt" in message
        assert "retrain it with sentiment-train" in message


def safetensors_file(path: Path, header: dict[str, Any], data: bytes = b"") -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)
    return path


def our_metadata() -> dict[str, str]:
    payload = binary().to_payload()
    del payload["coef"], payload["intercept"]
    return {"sentiment-bot/classifier": json.dumps(payload)}


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("coef", [3, 100_000_000]),  # 2.4 GB declared in a file of a few hundred bytes
        ("coef", [200_000_000]),
        ("coef", [17, 384]),
        ("coef", [2, 3, 384]),
        ("intercept", [1_000_000]),
    ],
)
def test_oversized_declared_arrays_are_refused_unread(
    tmp_path: Path, name: str, shape: list[int]
) -> None:
    size = 8 * int(np.prod(shape))
    header: dict[str, Any] = {
        "__metadata__": our_metadata(),
        name: {"dtype": "F64", "shape": shape, "data_offsets": [0, size]},
    }
    path = safetensors_file(tmp_path / "big.safetensors", header, b"\0" * 64)
    tracemalloc.start()
    try:
        with pytest.raises(ArtifactError, match="refused unread") as info:
            load_artifact(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    assert str(path) in str(info.value) and "sentiment-train" in str(info.value)


def test_file_larger_than_its_header_says_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_artifact(binary(), path)
    path.write_bytes(path.read_bytes() + b"\0" * 10_000)
    with pytest.raises(ArtifactError, match="where the header accounts for"):
        load_artifact(path)


def test_huge_header_is_refused(tmp_path: Path) -> None:
    header = {"__metadata__": {"sentiment-bot/classifier": "x" * (2 << 20)}}
    path = safetensors_file(tmp_path / "m.safetensors", header)
    with pytest.raises(ArtifactError, match="refused unread: its header is"):
        load_artifact(path)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, "not a Sentiment"),
        (
            {"coef": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
            "'coef' is F32, not F64",
        ),
        (
            {"coef": {"dtype": "F64", "shape": [2], "data_offsets": [0, 8]}},
            "do not match its shape",
        ),
        (
            {"extra": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}},
            "unexpected arrays 'extra'",
        ),
    ],
)
def test_foreign_or_malformed_safetensors(
    tmp_path: Path, header: dict[str, Any], message: str
) -> None:
    if "weight" not in header:
        header = {"__metadata__": our_metadata(), **header}
    path = safetensors_file(tmp_path / "m.safetensors", header, b"\0" * 8)
    with pytest.raises(ArtifactError, match=message):
        load_artifact(path)


# --- legacy joblib files ----------------------------------------------------------------------


@pytest.mark.parametrize("compress", [0, 3])
def test_legacy_joblib_artifact_still_loads(tmp_path: Path, compress: int) -> None:
    for artifact in (binary(), three_way()):
        path = tmp_path / "old.joblib"
        payload = artifact.to_payload(tmp_path)
        payload["metrics"] = {"x": np.float64(0.5), "n": np.int64(2), "t": (1, 2)}
        joblib.dump(payload, path, compress=compress)
        loaded = load_artifact(path)
        assert loaded.version == artifact.version
        np.testing.assert_array_equal(loaded.coef, artifact.coef)
        assert loaded.metrics["x"] == 0.5 and loaded.metrics["t"] == (1, 2)


@pytest.mark.parametrize("compress", [0, 3])
@pytest.mark.parametrize("func", ["marker", "os.system"])
def test_malicious_legacy_joblib_is_refused_without_running_code(
    tmp_path: Path, compress: int, func: str
) -> None:
    marker = tmp_path / "ran"
    evil = (
        Payload(write_marker, str(marker))
        if func == "marker"
        else Payload(os.system, f"touch {marker}")
    )
    payload = binary().to_payload()
    payload["metrics"] = {"test": evil}  # an otherwise valid artifact
    path = tmp_path / "evil.joblib"
    joblib.dump(payload, path, compress=compress)

    with pytest.raises(ArtifactError) as info:
        load_artifact(path)
    assert not marker.exists()
    message = str(info.value)
    assert "refuses to load" in message and str(path) in message
    assert ("write_marker" if func == "marker" else "system") in message
    assert "retrain the artifact with sentiment-train" in message

    # the file is a real exploit: an unguarded joblib.load runs it
    joblib.load(path)
    assert marker.exists()


@pytest.mark.parametrize(
    "evil",
    [
        Payload(np.ndarray, (10**10,)),  # an allowed class, called to allocate 80 GB
        Payload(np.ndarray.__reduce__(np.zeros(0))[0], np.ndarray, (10**10,), b"b"),
        Payload(eval, "__import__('os').getcwd()"),
    ],
    ids=["ndarray", "reconstruct", "eval"],
)
def test_legacy_calls_no_artifact_makes_are_refused(tmp_path: Path, evil: Payload) -> None:
    path = tmp_path / "evil.joblib"
    path.write_bytes(pickle.dumps({"schema": "x", "e": evil}, protocol=4))
    with pytest.raises(ArtifactError, match="refuses to load"):
        load_artifact(path)


def test_legacy_oversized_arrays_are_refused_before_allocation(tmp_path: Path) -> None:
    """The issue's file: 200 million zeros compress to 7 MB and inflated to 1.99 GB."""
    bomb = tmp_path / "bomb.joblib"
    joblib.dump({"coef": np.zeros(200_000_000)}, bomb, compress=3)
    big = tmp_path / "big.joblib"  # within the file-size bound, beyond the array bound
    joblib.dump({"coef": np.zeros(300_000)}, big)
    huge = tmp_path / "huge.joblib"
    huge.write_bytes(b"\x80" + b"\0" * (9 << 20))
    tracemalloc.start()
    try:
        for path, message in (
            (bomb, "inflates to over"),
            (big, r"array of shape \(300000,\)"),
            (huge, "bytes"),
        ):
            with pytest.raises(ArtifactError, match=message) as info:
                load_artifact(path)
            assert "refused unread" in str(info.value) and str(path) in str(info.value)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 60_000_000  # the reads and the bounded inflation, never the declared arrays


# --- the training command ---------------------------------------------------------------------


def test_train_names_every_output_after_a_safetensors_artifact(
    sst2_dir: Path, tmp_path: Path
) -> None:
    """--output x.safetensors: x.report.json and x.reliability.png beside it; --output
    x.joblib (the old name) still writes safetensors, with a warning to rename it."""
    from model.cli.train import train_main

    argv = ["--data-dir", str(sst2_dir), "--limit", "60", "--cache-dir", str(tmp_path / "cache"),
            "--quiet", "--C", "1", "--precision", "fp32"]  # fmt: skip
    output = tmp_path / "m.safetensors"
    assert train_main([*argv, "--output", str(output)]) == 0
    assert output.with_suffix(".report.json").is_file()
    assert output.with_suffix(".reliability.png").is_file()
    old_name = tmp_path / "old.joblib"
    with pytest.warns(UserWarning, match=r"old\.safetensors instead"):
        assert train_main([*argv, "--output", str(old_name)]) == 0
    assert old_name.with_suffix(".report.json").is_file()
    with safe_open(str(old_name), framework="numpy") as f:
        assert sorted(f.keys()) == ["coef", "intercept"]
    assert load_artifact(old_name).version == load_artifact(output).version
