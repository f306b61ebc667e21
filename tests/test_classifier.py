"""The public API the bot uses, on the committed default artifact."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from model import EMPTY_PREDICTION, SentimentClassifier, default_artifact_path, load_artifact
from model.serving.artifact import save_artifact
from model.training.data import load_labelled


@pytest.fixture(scope="module")
def classifier() -> SentimentClassifier:
    return SentimentClassifier.load()


def test_clear_sentences(classifier: SentimentClassifier) -> None:
    good, bad = classifier.predict_batch(
        ["an absolutely wonderful , moving film", "a dull , lifeless and boring mess"]
    )
    assert (good.label, bad.label) == ("positive", "negative")
    assert good.p_positive > 0.9 > 0.1 > bad.p_positive
    assert not good.in_band and not bad.in_band
    assert good.mood == "positive" and bad.mood == "negative"


def test_empty_text_is_answered_without_the_encoder(classifier: SentimentClassifier) -> None:
    calls = classifier.encoder.calls
    out = classifier.predict_batch(["", "   ", "\n\t"])
    assert out == [EMPTY_PREDICTION] * 3
    assert out[0].label == "neutral" and out[0].in_band and out[0].p_positive == 0.5
    assert classifier.encoder.calls == calls


def test_mixed_batch_keeps_order(classifier: SentimentClassifier) -> None:
    out = classifier.predict_batch(["", "I love it", " ", "I hate it"])
    assert out[0] == out[2] == EMPTY_PREDICTION
    assert out[1].label == "positive" and out[3].label == "negative"


def test_very_long_and_mixed_script_text(classifier: SentimentClassifier) -> None:
    texts = [
        "wonderful " * 4000,
        "this movie is great 😍 とても良い映画 очень хороший фильм فيلم رائع",
        "\ud83d broken surrogate and \x00 null",
        "\u200b\u200b\u200b",
    ]
    out = classifier.predict_batch(texts)
    assert len(out) == 4
    assert out[0].label == "positive"
    for pred in out:
        assert 0.0 <= pred.p_positive <= 1.0


def test_band_override(classifier: SentimentClassifier) -> None:
    text = ["it was fine I guess"]
    wide = classifier.predict_batch(text, band=(0.0, 1.0))[0]
    narrow = classifier.predict_batch(text, band=(0.5, 0.5))[0]
    assert wide.in_band and not narrow.in_band
    assert wide.p_positive == narrow.p_positive


def test_default_artifact_reaches_89_percent_on_sst2_test(
    classifier: SentimentClassifier, sst2_dir: Path
) -> None:
    """Measured for real on all 1,821 test sentences: the fine-tuned default (89.40% recorded;
    the frozen encoder stops at about 81.7%)."""
    test = load_labelled(sst2_dir / "test.tsv")
    preds = classifier.predict_batch(test.texts)
    correct = sum((p.p_positive >= 0.5) == bool(y) for p, y in zip(preds, test.labels, strict=True))
    accuracy = correct / len(test)
    assert accuracy >= 0.89
    # the recorded figure (the default is fp32; bf16 serving would move it a hair)
    assert accuracy == pytest.approx(classifier.artifact.metrics["test"]["accuracy"], abs=3e-3)


def test_text_without_a_known_token_is_nothing_to_read(classifier: SentimentClassifier) -> None:
    """Invisible-only text is all [UNK] to the encoder: neutral, no model call."""
    calls = classifier.encoder.calls
    answers = classifier.predict_batch(["\u200b\u200b", "\u2800", "\u200e\u202e", " "])
    assert answers == [replace(EMPTY_PREDICTION, unread="unknown")] * 3 + [EMPTY_PREDICTION]
    assert all(not a.read and a.mood == "neutral" for a in answers)
    assert classifier.encoder.calls == calls


def test_emoji_are_read(classifier: SentimentClassifier) -> None:
    """The chat normaliser turns emoji into their names: emoji-only messages have a mood now
    (before, they were all [UNK] and nothing to read)."""
    angry, happy, heart, mixed = classifier.predict_batch(
        ["😡😡😡", "😍🎉", "😍", "I am so angry 😡😡😡"]
    )
    # read ("enraged face", "smiling face with heart eyes") and on the right side
    assert angry.mood == "negative" and angry.p_positive < 0.2
    assert happy.label == "positive" and happy.p_positive > 0.8  # just below the 👍 threshold
    assert heart.mood == "positive"
    assert mixed.mood == "negative"


def test_serving_path_other_than_the_fitted_one_is_warned(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from model.serving import paths as module

    artifact = load_artifact(default_artifact_path())
    fitted_fp32 = replace(
        artifact, encoder=replace(artifact.encoder, precision="fp32"), serving_paths=()
    )
    save_artifact(fitted_fp32, tmp_path / "fp32.safetensors")
    with caplog.at_level("WARNING", logger="model.serving.paths"):
        bf16 = SentimentClassifier.load(tmp_path / "fp32.safetensors", precision="bf16")
    assert bf16.encoder.spec.precision == "bf16"
    assert "fitted on fp32" in caplog.text and "--precision bf16" in caplog.text
    # the committed default was validated for bf16: forcing it is not warned about
    caplog.clear()
    with caplog.at_level("WARNING", logger="model.serving.paths"):
        SentimentClassifier.load(precision="bf16")
    assert "was not validated" not in caplog.text

    # an artifact fitted on bf16, on a CPU without native bf16: served fp32, with a warning
    fitted_bf16 = replace(
        artifact, encoder=replace(artifact.encoder, precision="bf16"), serving_paths=()
    )
    save_artifact(fitted_bf16, tmp_path / "bf16.safetensors")
    caplog.clear()
    monkeypatch.setattr(module, "native_bf16", lambda: False)
    with caplog.at_level("WARNING", logger="model.serving.paths"):
        fallback = SentimentClassifier.load(tmp_path / "bf16.safetensors")
    assert fallback.encoder.spec.precision == "fp32"
    assert "no native bf16" in caplog.text
    # and the answers barely move
    text = ["an absolutely wonderful , moving film"]
    assert fallback.predict_batch(text)[0].label == "positive"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_bot_and_serving_never_import_the_training_code() -> None:
    """The bot uses ``model`` (the public API), ``model.serving`` and the shared settings; the
    serving code stands without ``model.training``."""
    repo = Path(__file__).resolve().parent.parent
    sources = [*(repo / "bot").rglob("*.py"), *(repo / "model" / "serving").glob("*.py")]
    sources.append(repo / "model" / "__init__.py")
    assert len(sources) > 20
    offenders: dict[str, list[str]] = {}
    for path in sources:
        training = sorted(n for n in _imported_modules(path) if n.startswith("model.training"))
        if training:
            offenders[str(path.relative_to(repo))] = training
    assert offenders == {}


def test_loading_the_bot_loads_no_training_module() -> None:
    code = (
        "import json, sys, bot.app, bot.cli, bot.client, bot.command, bot.config, model; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('model.'))))"
    )
    repo = Path(__file__).resolve().parent.parent
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True
    )
    loaded = json.loads(run.stdout)
    assert "model.serving.classifier" in loaded  # the probe sees what the bot loads
    assert [m for m in loaded if m.startswith("model.training")] == []


def test_prepare_then_predict_prepared_is_predict_batch(classifier: SentimentClassifier) -> None:
    texts = [
        "I love this so much",
        "",
        "   ",
        "\u200b\u200b",  # no known token
        "Je ne sais pas du tout ce que tu veux dire par là, mon ami.",  # another language
        "the plot is a mess and the acting is wooden",
        "what a wonderful surprise 🎉",
    ]
    prepared = classifier.prepare(texts)
    assert len(prepared) == len(texts)
    assert prepared.rows == (0, 5, 6)  # the texts the encoder will read, in order
    assert prepared.unread[1] is prepared.unread[2] is EMPTY_PREDICTION
    assert prepared.unread[3] is not None and prepared.unread[3].unread == "unknown"
    assert prepared.unread[4] is not None and prepared.unread[4].unread == "language:fr"
    calls = classifier.encoder.calls
    assert classifier.prepare(texts[1:5]).ids == ()  # nothing for the encoder to read
    assert classifier.encoder.calls == calls  # preparing never runs the encoder

    assert classifier.predict_prepared(prepared) == classifier.predict_batch(texts)
    band = (0.2, 0.99)
    assert classifier.predict_prepared(prepared, band) == classifier.predict_batch(texts, band=band)
    assert classifier.predict_prepared(classifier.prepare([])) == []
