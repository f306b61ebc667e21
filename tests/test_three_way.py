"""The three-way (negative / neutral / positive) model: artifact, predictions, thresholds, a
tiny training run through the command; and the tutorial's binary configuration beside it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from model.cli.evaluate import evaluate_main
from model.cli.train import train_main
from model.serving.artifact import (
    THREE_WAY_LABELS,
    Artifact,
    ArtifactError,
    load_artifact,
    read_payload,
    save_artifact,
    write_payload,
)
from model.serving.classifier import EMPTY_PREDICTION, Prediction, SentimentClassifier
from model.serving.encoder import EncoderSpec
from model.training.metrics import choose_thresholds, three_way_report, voiced_moods

SPEC = EncoderSpec(name="enc", pooling="mean", max_length=32, normalize=True)


def three_way_artifact(dim: int = 4) -> Artifact:
    rng = np.random.default_rng(0)
    return Artifact(
        encoder=SPEC,
        coef=rng.normal(size=(3, dim)),
        intercept=np.array([0.1, 0.2, -0.3]),
        band=(0.3, 0.7),
        labels=THREE_WAY_LABELS,
    )


def test_three_way_artifact_round_trip(tmp_path: Path) -> None:
    artifact = three_way_artifact()
    path = tmp_path / "m.safetensors"
    save_artifact(artifact, path)
    payload = read_payload(path)
    # plain arrays and numbers: loadable after any library upgrade
    assert payload["schema_version"] == 2 and payload["labels"] == list(THREE_WAY_LABELS)
    assert isinstance(payload["coef"], np.ndarray) and payload["coef"].shape == (3, 4)
    assert payload["intercept"] == pytest.approx([0.1, 0.2, -0.3])
    loaded = load_artifact(path)
    assert loaded.three_way and loaded.version == artifact.version
    np.testing.assert_array_equal(loaded.coef, artifact.coef)
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    probs = loaded.class_probabilities(x)
    assert probs.shape == (5, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_binary_artifacts_stay_schema_1(tmp_path: Path) -> None:
    binary = Artifact(encoder=SPEC, coef=np.ones(4), intercept=0.5, band=(0.3, 0.7))
    save_artifact(binary, tmp_path / "b.safetensors")
    assert read_payload(tmp_path / "b.safetensors")["schema_version"] == 1
    assert not load_artifact(tmp_path / "b.safetensors").three_way


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"coef": np.ones((2, 4))}, "3 x dim matrix"),
        ({"intercept": [0.0, 1.0]}, "not 3 finite numbers"),
        ({"labels": ["negative", "meh", "positive"]}, "'labels'"),
        ({"coef": np.full((3, 4), np.nan)}, "3 x dim matrix"),
    ],
)
def test_broken_three_way_artifacts_are_refused(
    tmp_path: Path, change: dict[str, object], problem: str
) -> None:
    path = tmp_path / "m.safetensors"
    save_artifact(three_way_artifact(), path)
    payload = read_payload(path)
    payload.update(change)
    write_payload(payload, path)
    with pytest.raises(ArtifactError, match=problem) as info:
        load_artifact(path)
    assert "Retrain it with sentiment-train" in str(info.value)


def test_three_way_prediction_voices_only_confident_polar_moods() -> None:
    confident = Prediction("positive", 0.9, in_band=False, probabilities=(0.08, 0.12, 0.80))
    assert confident.mood == "positive" and confident.probability("neutral") == 0.12
    assert confident.confidence == 0.80
    # a guild band (low, high): positive needs P(positive) >= high
    assert confident.with_band((0.3, 0.85)).mood == "neutral"
    assert confident.with_band((0.3, 0.75)).mood == "positive"
    negative = Prediction("negative", 0.2, in_band=False, probabilities=(0.66, 0.2, 0.14))
    assert negative.with_band((0.3, 0.7)).in_band  # P(negative) 0.66 < 1 - 0.3
    assert not negative.with_band((0.4, 0.7)).in_band
    neutral = Prediction("neutral", 0.5, in_band=True, probabilities=(0.2, 0.6, 0.2))
    assert neutral.with_band((0.0, 1.0)).mood == "neutral"
    # binary predictions keep their meaning
    binary = Prediction("positive", 0.8, in_band=False)
    assert binary.probabilities is None and binary.probability("negative") == pytest.approx(0.2)
    assert binary.with_band((0.2, 0.85)).in_band
    assert not EMPTY_PREDICTION.read and EMPTY_PREDICTION.unread == "empty"


def test_thresholds_reach_the_precision_target() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=3000)
    logits = rng.normal(size=(3000, 3))
    logits[np.arange(3000), y] += 1.5  # informative but noisy
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    band = choose_thresholds(y, probs, 0.9)
    t_neg, t_pos = 1 - band[0], band[1]
    assert 0.5 <= t_neg <= 1 and 0.5 <= t_pos <= 1
    said = voiced_moods(probs, band)
    react = said != 1
    assert (said[react] == y[react]).mean() >= 0.9  # the reactions, both moods together
    report = three_way_report(y, probs, band)
    assert report["voicing"]["precision"] >= 0.9
    assert 0 < report["voicing"]["voiced_share_positive"] < 1
    assert 0 < report["voicing"]["voiced_share_negative"] < 1
    # a stricter target voices less
    stricter = choose_thresholds(y, probs, 0.97)
    assert (voiced_moods(probs, stricter) != 1).sum() < react.sum()
    # nothing precise enough: the bot never reacts
    assert choose_thresholds(y, np.full((3000, 3), 1 / 3), 0.9) == (0.0, 1.0)
    assert report["accuracy"] > 0.5 and len(report["confusion_matrix"]["labels"]) == 3


@pytest.fixture(scope="module")
def tiny_three_way(
    sst2_dir: Path, goemotions_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    work = tmp_path_factory.mktemp("three")
    output = work / "chat.safetensors"
    argv = ["--task", "three-way", "--data-dir", str(sst2_dir), "--chat-data",
            str(goemotions_dir), "--limit", "150", "--cache-dir", str(work / "cache"),
            "--quiet", "--C", "0.1", "1", "--precision", "fp32",
            "--output", str(output)]  # fmt: skip
    assert train_main(argv) == 0
    return output


def test_tiny_three_way_training(tiny_three_way: Path, capsys: pytest.CaptureFixture[str]) -> None:
    artifact = load_artifact(tiny_three_way)
    assert artifact.three_way and artifact.coef.shape == (3, 384)
    assert artifact.labels == THREE_WAY_LABELS
    training = artifact.training
    assert training["task"] == "three-way" and training["chat_share"] == 0.5
    assert training["train_rows_by_source"] == {"sst2": 150, "chat": 150}
    assert training["chat_mapping"] == {"ambiguous": "neutral", "mixed": "polar"}
    assert training["thresholds"]["positive"] >= 0.5
    report = json.loads(tiny_three_way.with_suffix(".report.json").read_text())
    chat_dev = report["chat_dev"]
    assert chat_dev["rows"] == 150 and 0.3 < chat_dev["accuracy"] <= 1
    assert set(chat_dev["recall"]) == {"negative", "neutral", "positive"}
    assert report["test"]["accuracy"] > 0.6  # SST-2, positive against negative
    assert "voicing" in report["test"]
    assert report["chat"]["three_way_accuracy"] is not None

    classifier = SentimentClassifier.load(tiny_three_way, language_gate=False)
    predictions = classifier.predict_batch(["I love this, thank you so much!", "", "ok"])
    first = predictions[0]
    assert first.probabilities is not None and sum(first.probabilities) == pytest.approx(1.0)
    assert first.p_positive == pytest.approx(
        first.probabilities[2] / (first.probabilities[0] + first.probabilities[2])
    )
    assert predictions[1] == EMPTY_PREDICTION

    # evaluate reads the same artifact: SST-2 positive against negative, and the chat set
    assert evaluate_main(["--artifact", str(tiny_three_way), "--chat", "--quiet"]) == 0
    assert "three-way accuracy" in capsys.readouterr().out


def test_tutorial_configuration_end_to_end(
    sst2_dir: Path, tiny_distilbert: Path, tmp_path: Path
) -> None:
    """The tutorial: DistilBERT's [CLS] vector + a binary logistic regression on SST-2; it
    trains, loads and serves with the neutral band (a tiny random DistilBERT stands in for
    distilbert-base-uncased, which needs the hub)."""
    output = tmp_path / "distilbert.safetensors"
    argv = ["--encoder", str(tiny_distilbert), "--pooling", "cls", "--data-dir", str(sst2_dir),
            "--limit", "64", "--quiet", "--no-cache", "--C", "1", "--precision", "fp32",
            "--output", str(output)]  # fmt: skip
    assert train_main(argv) == 0
    artifact = load_artifact(output)
    assert not artifact.three_way and artifact.encoder.pooling == "cls"
    classifier = SentimentClassifier.load(output, language_gate=False)
    (p,) = classifier.predict_batch(["good movie"])
    assert p.probabilities is None and p.label in ("positive", "negative")
    assert p.in_band == (artifact.band[0] < p.p_positive < artifact.band[1])
    assert replace(p, in_band=False).with_band((0.0, 1.0)).in_band
