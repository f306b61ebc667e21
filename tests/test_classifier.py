"""The public API the bot uses, on the committed default artifact."""

from __future__ import annotations

from pathlib import Path

import pytest

from model import EMPTY_PREDICTION, SentimentClassifier
from model.data import load_labelled


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


def test_default_artifact_reaches_81_percent_on_sst2_test(
    classifier: SentimentClassifier, sst2_dir: Path
) -> None:
    """The mission's bar, measured for real on all 1,821 test sentences."""
    test = load_labelled(sst2_dir / "test.tsv")
    preds = classifier.predict_batch(test.texts)
    correct = sum((p.p_positive >= 0.5) == bool(y) for p, y in zip(preds, test.labels, strict=True))
    accuracy = correct / len(test)
    assert accuracy >= 0.81
    # the recorded figure; a CPU without native bf16 serves fp32 embeddings, a hair different
    assert accuracy == pytest.approx(classifier.artifact.metrics["test"]["accuracy"], abs=3e-3)


def test_text_without_a_known_token_is_nothing_to_read(classifier: SentimentClassifier) -> None:
    """Emoji-only or invisible-only text is all [UNK] to the encoder: neutral, no model call."""
    calls = classifier.encoder.calls
    assert classifier.predict_batch(["😡😡😡", "\u200b\u200b", "\u2800"]) == [EMPTY_PREDICTION] * 3
    assert classifier.encoder.calls == calls
    angry = classifier.predict("I am so angry 😡😡😡")
    assert angry.label == "negative"


def test_serving_path_other_than_the_fitted_one_is_warned(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from model import classifier as module

    with caplog.at_level("WARNING", logger="model.classifier"):
        fp32 = SentimentClassifier.load(precision="fp32")
    assert fp32.encoder.spec.precision == "fp32"
    assert "fitted on bf16" in caplog.text and "--precision fp32" in caplog.text

    caplog.clear()
    monkeypatch.setattr(module, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level("WARNING", logger="model.classifier"):
        fallback = SentimentClassifier.load()
    assert fallback.encoder.spec.precision == "fp32"
    assert "no native bf16" in caplog.text
    # and the answers barely move
    text = ["an absolutely wonderful , moving film"]
    assert fallback.predict_batch(text)[0].label == "positive"
