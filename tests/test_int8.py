"""The int8 serving path (model/serving/int8.py), its serving cache (serving_cache.py) and how
``auto`` chooses a path (paths.py).

The committed default is built once into a temporary serving cache for the whole module; the
cache's failure cases (missing, stale, corrupt, unwritable) use a tiny random BERT, whose build
takes a second.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from model import SentimentClassifier
from model.serving.artifact import Artifact, default_artifact_path, load_artifact, save_artifact
from model.serving.encoder import Encoder
from model.serving.paths import choose
from model.serving.serving_cache import META_FILE, Int8Encoder, ServingCache
from model.serving.spec import EncoderError, EncoderSpec

CHAT = [
    "lol this is sick 🔥🔥",
    "I hate mondays so much",
    "the meeting moved to 3pm",
    "ty!! that helped a lot",
    "this is the worst update they have ever shipped, everything is broken",
    "gg",
    "anyone know how to fix the login error? <@123456789012345678>",
    "an absolutely wonderful , moving film",
]


@pytest.fixture(scope="module")
def serving_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serving-cache")


@pytest.fixture(scope="module")
def int8_default(serving_cache: Path) -> SentimentClassifier:
    """The committed default on the int8 path, built into the module's serving cache."""
    return SentimentClassifier.load(precision="int8", serving_cache=serving_cache)


def test_int8_default_loads_and_predicts_like_fp32(int8_default: SentimentClassifier) -> None:
    assert isinstance(int8_default.encoder, Int8Encoder)
    assert int8_default.encoder.spec.precision == "int8"
    fp32 = SentimentClassifier.load(precision="fp32", language_gate=False)
    int8 = int8_default.predict_batch(CHAT)
    ref = fp32.predict_batch(CHAT)
    assert [p.label for p in int8] == [p.label for p in ref]
    for a, b in zip(int8, ref, strict=True):
        assert a.probabilities is not None and b.probabilities is not None
        assert max(abs(x - y) for x, y in zip(a.probabilities, b.probabilities, strict=True)) < 0.1


def test_int8_embedding_is_the_same_alone_and_in_any_batch(
    int8_default: SentimentClassifier,
) -> None:
    encoder = int8_default.encoder
    batched = encoder.encode(CHAT)
    alone = np.stack([encoder.encode([text])[0] for text in CHAT])
    shuffled = encoder.encode(CHAT[::-1])[::-1]
    for other in (alone, shuffled):
        cosine = (batched * other).sum(axis=1)
        assert cosine.min() >= 0.9999
    moods_alone = [int8_default.predict(text).mood for text in CHAT]
    assert moods_alone == [p.mood for p in int8_default.predict_batch(CHAT)]


def test_int8_batches_run_side_by_side_give_the_same_vectors_in_order(
    int8_default: SentimentClassifier,
) -> None:
    """Two threads, each running whole batches, give exactly the one-thread vectors, in input
    order, and the batches really ran on the session's own threads."""
    import threading

    encoder = int8_default.encoder
    assert isinstance(encoder, Int8Encoder)
    texts = [f"{text} #{i}" for i in range(40) for text in CHAT]  # 320 texts: 5+ batches
    session = encoder._session
    seen: set[str] = set()
    run = session.run

    def spy(*args: object) -> np.ndarray:
        seen.add(threading.current_thread().name)
        return run(*args)  # type: ignore[arg-type]

    threads = session.threads
    session.run = spy  # type: ignore[method-assign]
    try:
        session.threads = 1
        one = encoder.encode(texts)
        assert seen == {threading.current_thread().name}
        seen.clear()
        session.threads = 2
        two = encoder.encode(texts)
    finally:
        session.run, session.threads = run, threads  # type: ignore[method-assign]
    np.testing.assert_array_equal(one, two)
    assert len(seen) == 2 and all(name.startswith("int8-encoder") for name in seen)


def test_int8_tokenizer_gives_the_torch_encoders_ids(int8_default: SentimentClassifier) -> None:
    torch_encoder = Encoder.from_spec(load_artifact(default_artifact_path()).encoder)
    texts = [
        *CHAT,
        "",
        "\u200b\u200b",
        "ÉCOLE naïve café — “quoted” ünïcödé",
        "word " * 600,  # truncated at max_length
        "<:pepe_sad:123456789012345678> https://example.com/x?y=1 `code`",
        "\ud800 lone surrogate",
    ]
    assert int8_default.encoder.tokenize(texts) == torch_encoder.tokenize(texts)
    for ids in torch_encoder.tokenize(texts):
        assert int8_default.encoder.readable(ids) == torch_encoder.readable(ids)


def test_a_cached_int8_start_imports_no_torch(
    int8_default: SentimentClassifier, serving_cache: Path
) -> None:
    code = (
        "import sys; from pathlib import Path; from model import SentimentClassifier; "
        "c = SentimentClassifier.load(precision=sys.argv[2], serving_cache=Path(sys.argv[1])); "
        "p = c.predict('I hate mondays so much'); "
        "print(p.mood, *(m in sys.modules for m in ('torch', 'transformers', 'peft')))"
    )
    for precision in ("int8", "auto"):  # auto: once the choice is remembered
        if precision == "auto":
            SentimentClassifier.load(serving_cache=serving_cache)  # measures and remembers
        out = subprocess.run(
            [sys.executable, "-c", code, str(serving_cache), precision],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            timeout=120,
        )
        assert out.stdout.split() == ["negative", "False", "False", "False"], out.stderr[-2000:]
        assert "building" not in out.stderr


# --------------------------------------------------------------------------------------------
# The serving cache, on a tiny random BERT


@pytest.fixture
def tiny_artifact(tiny_bert: Path, tmp_path: Path) -> Path:
    spec = EncoderSpec(
        name=str(tiny_bert), pooling="mean", max_length=32, normalize=True, precision="fp32"
    )
    rng = np.random.default_rng(0)
    artifact = Artifact(
        encoder=spec,
        coef=rng.normal(size=(3, 32)),
        intercept=np.zeros(3),
        band=(0.3, 0.7),
        labels=("negative", "neutral", "positive"),
        encoder_fingerprint=Encoder.from_spec(spec).fingerprint,
    )
    path = tmp_path / "tiny.safetensors"
    save_artifact(artifact, path)
    return path


def load_tiny(path: Path, cache: Path, precision: str | None = "int8") -> SentimentClassifier:
    return SentimentClassifier.load(
        path, precision=precision, serving_cache=cache, language_gate=False
    )


TEXTS = ["good movie", "bad film", "the a the"]


def test_missing_cache_is_built_once_then_loaded(
    tiny_artifact: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    with caplog.at_level(logging.INFO):
        first = load_tiny(tiny_artifact, cache)
    assert "building the int8 encoder" in caplog.text
    entries = [p for p in cache.iterdir() if p.is_dir()]
    assert len(entries) == 1 and (entries[0] / META_FILE).is_file()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = load_tiny(tiny_artifact, cache)
    assert "building" not in caplog.text
    np.testing.assert_array_equal(first.encoder.encode(TEXTS), second.encoder.encode(TEXTS))


def test_stale_cache_is_rebuilt(
    tiny_artifact: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    load_tiny(tiny_artifact, cache)
    (entry,) = [p for p in cache.iterdir() if p.is_dir()]
    meta = json.loads((entry / META_FILE).read_text())
    meta["onnxruntime"] = "0.0.1"  # made by another onnxruntime
    (entry / META_FILE).write_text(json.dumps(meta))
    with caplog.at_level(logging.INFO):
        load_tiny(tiny_artifact, cache)
    assert "stale" in caplog.text and "building the int8 encoder" in caplog.text
    assert json.loads((entry / META_FILE).read_text())["onnxruntime"] != "0.0.1"


@pytest.mark.parametrize("damage", ["model bytes", "tokenizer", "meta", "missing file"])
def test_corrupt_cache_is_refused_with_a_message_and_rebuilt(
    damage: str, tiny_artifact: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    before = load_tiny(tiny_artifact, cache).encoder.encode(TEXTS)
    (entry,) = [p for p in cache.iterdir() if p.is_dir()]
    if damage == "model bytes":
        data = bytearray((entry / "encoder.onnx").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (entry / "encoder.onnx").write_bytes(bytes(data))
    elif damage == "tokenizer":
        (entry / "tokenizer.json").write_text("{not json")
    elif damage == "meta":
        (entry / META_FILE).write_text("garbage")
    else:
        (entry / "encoder.onnx").unlink()
    with caplog.at_level(logging.WARNING):
        after = load_tiny(tiny_artifact, cache).encoder.encode(TEXTS)
    assert "is corrupt" in caplog.text and str(entry) in caplog.text
    np.testing.assert_allclose(after, before, atol=1e-6)  # rebuilt: the same model again


def test_unwritable_cache_serves_from_a_temporary_build(
    tiny_artifact: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING):
        classifier = load_tiny(tiny_artifact, blocker / "cache")
    assert "cannot write the serving cache" in caplog.text
    assert "SENTIMENT_SERVING_CACHE" in caplog.text
    assert classifier.predict_batch(TEXTS)[0].read


def test_int8_cache_refuses_an_encoder_with_other_weights(tiny_bert: Path, tmp_path: Path) -> None:
    spec = EncoderSpec(name=str(tiny_bert), pooling="mean", max_length=32, normalize=True)
    artifact = Artifact(
        encoder=spec,
        coef=np.ones(32),
        intercept=0.0,
        band=(0.4, 0.6),
        encoder_fingerprint="0" * 64,  # trained on other weights
    )
    save_artifact(artifact, tmp_path / "other.safetensors")
    with pytest.raises(EncoderError, match="other weights"):
        load_tiny(tmp_path / "other.safetensors", tmp_path / "cache")


# --------------------------------------------------------------------------------------------
# auto


class Recorder:
    def __init__(self, speeds: dict[str, float]) -> None:
        self.speeds, self.opened = speeds, []  # type: ignore[var-annotated]

    def __call__(self, path: str) -> object:
        self.opened.append(path)
        return FakeSpeed(path, self.speeds[path])


class FakeSpeed:
    """An encoder whose speed is set by the test: what `auto` measures, not what it serves."""

    def __init__(self, path: str, texts_per_s: float) -> None:
        self.path, self.texts_per_s = path, texts_per_s

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [[1] for _ in texts]

    def encode_ids(self, ids: list[list[int]]) -> None:
        import time

        time.sleep(len(ids) / self.texts_per_s)


def test_auto_never_picks_a_path_the_artifact_was_not_validated_for(
    tiny_artifact: Path, tmp_path: Path
) -> None:
    artifact = load_artifact(tiny_artifact)  # fitted on fp32, no other path validated
    opener = Recorder({"fp32": 500.0, "int8": 50_000.0, "bf16": 50_000.0})
    chosen = choose(
        artifact, tiny_artifact, None, open_path=opener, cache=ServingCache(tmp_path),
        native_bf16=lambda: True,
    )  # fmt: skip
    assert chosen.path == "fp32" and opener.opened == ["fp32"]  # nothing else even opened


def test_auto_measures_the_allowed_paths_once_and_remembers(
    tiny_artifact: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    artifact = replace(load_artifact(tiny_artifact), serving_paths=("int8",))
    save_artifact(artifact, tiny_artifact)
    opener = Recorder({"fp32": 2_000.0, "int8": 8_000.0, "bf16": 1e9})
    with caplog.at_level(logging.INFO):
        chosen = choose(
            artifact, tiny_artifact, "auto", open_path=opener, cache=ServingCache(tmp_path),
            native_bf16=lambda: True,
        )  # fmt: skip
    assert chosen.path == "int8" and sorted(opener.opened) == ["fp32", "int8"]  # bf16 not allowed
    assert "serving int8, the fastest here" in caplog.text
    (record,) = tmp_path.glob("choice-*.json")
    assert json.loads(record.read_text())["chosen"] == "int8"
    # the next start reads the choice and opens only that path
    opener.opened.clear()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = choose(
            artifact, tiny_artifact, None, open_path=opener, cache=ServingCache(tmp_path),
            native_bf16=lambda: True,
        )  # fmt: skip
    assert again.path == "int8" and opener.opened == ["int8"]
    assert "measured before" in caplog.text
    # a forced path is served as asked, whatever was measured
    opener.opened.clear()
    forced = choose(
        artifact, tiny_artifact, "fp32", open_path=opener, cache=ServingCache(tmp_path),
        native_bf16=lambda: True,
    )  # fmt: skip
    assert forced.path == "fp32" and opener.opened == ["fp32"]


def test_auto_skips_emulated_bf16(tiny_artifact: Path, tmp_path: Path) -> None:
    artifact = replace(load_artifact(tiny_artifact), serving_paths=("bf16",))
    opener = Recorder({"fp32": 100.0, "bf16": 1e9})
    chosen = choose(
        artifact, tiny_artifact, None, open_path=opener, cache=ServingCache(tmp_path),
        native_bf16=lambda: False,
    )  # fmt: skip
    assert chosen.path == "fp32" and opener.opened == ["fp32"]


def test_unknown_forced_path_is_one_clear_error(tiny_artifact: Path, tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="unknown precision 'fp16'"):
        choose(
            load_artifact(tiny_artifact), tiny_artifact, "fp16", open_path=Recorder({}),
            cache=ServingCache(tmp_path), native_bf16=lambda: True,
        )  # fmt: skip


def test_serving_paths_round_trip_and_old_artifacts_keep_their_bytes(
    tiny_artifact: Path, tmp_path: Path
) -> None:
    artifact = load_artifact(tiny_artifact)
    assert artifact.serving_paths == () and artifact.allowed_paths == ("fp32",)
    save_artifact(artifact, tmp_path / "again.safetensors")
    assert (tmp_path / "again.safetensors").read_bytes() == tiny_artifact.read_bytes()
    widened = replace(artifact, serving_paths=("int8", "bf16"))
    save_artifact(widened, tmp_path / "wide.safetensors")
    back = load_artifact(tmp_path / "wide.safetensors")
    assert back.allowed_paths == ("fp32", "int8", "bf16")
    assert back.version == artifact.version  # which engines may serve it is not the model


def test_int8_export_uses_eager_attention_and_leaves_the_model_as_it_was(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """Graph 3 is exported with eager attention (no SDPA Where/IsNaN passes), every Linear layer
    runs as MatMulIntegerToFloat, and the torch model keeps its own attention afterwards."""
    import onnx

    from model.serving import int8

    encoder = Encoder(str(tiny_bert), precision="fp32")
    encoder.model.set_attn_implementation("sdpa")
    layers = int8.build(encoder.model, tmp_path / "e.onnx", pooling="mean", normalize=True)
    assert encoder.model.config._attn_implementation == "sdpa"
    ops = [node.op_type for node in onnx.load(str(tmp_path / "e.onnx")).graph.node]
    assert "IsNaN" not in ops
    assert ops.count("MatMulIntegerToFloat") == layers > 0
    assert "MatMulInteger" not in ops and "MatMul" in ops  # attention scores stay fp32
