"""A real train + evaluate on a few hundred SST-2 rows, through the console commands."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from model.cli.evaluate import evaluate_main
from model.cli.train import train_main
from model.serving.adapter import ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapter_digest
from model.serving.artifact import load_artifact
from model.serving.classifier import SentimentClassifier, sigmoid
from model.training.metrics import choose_band
from model.training.train import TrainOptions, fit_temperature

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(sst2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Train once on 300 rows per split; later tests read its output."""
    work = tmp_path_factory.mktemp("train")
    argv = ["--data-dir", str(sst2_dir), "--limit", "300", "--cache-dir", str(work / "cache"),
            "--quiet", "--C", "0.01", "0.1", "1"]  # fmt: skip
    first = work / "first.safetensors"
    assert train_main([*argv, "--output", str(first)]) == 0
    return {"work": work, "argv": argv, "first": first}


def test_train_writes_artifact_report_and_reliability_diagram(trained: dict) -> None:
    first: Path = trained["first"]
    artifact = load_artifact(first)
    report = json.loads(first.with_suffix(".report.json").read_text())
    png = first.with_suffix(".reliability.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000

    assert artifact.encoder.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert artifact.encoder.pooling == "mean"
    assert artifact.coef.shape == (384,)
    assert artifact.training["C"] in (0.01, 0.1, 1)
    assert artifact.training["train_rows"] == 300
    assert len(artifact.training["data_digest"]) == 64
    assert {"torch", "transformers", "scikit-learn", "numpy"} <= set(artifact.versions)
    test = report["test"]
    # 300 training sentences already beat chance clearly
    assert test["accuracy"] > 0.7
    assert test["confusion_matrix"]["rows_true_cols_predicted"][0][0] > 0
    assert sum(map(sum, test["confusion_matrix"]["rows_true_cols_predicted"])) == 300
    assert 0.0 <= test["ece"] < 0.5
    assert [row["confidence"] for row in test["confident"]][:2] == [0.5, 0.6]
    low, high = artifact.band
    assert low <= 0.5 <= high
    # the band is chosen on dev so that what the bot says there is >= 90% right
    assert report["dev"]["band"]["accuracy_outside"] >= 0.9
    assert 0 < report["dev"]["band"]["coverage"] < 1


def test_retrain_from_cache_is_fast_and_reproducible(
    trained: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    second = trained["work"] / "second.safetensors"
    capsys.readouterr()
    assert train_main([*trained["argv"], "--output", str(second)]) == 0
    out = capsys.readouterr().out
    assert "(300 from cache, 0 encoded)" in out
    assert "timings: embed train" in out
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (trained["first"], second)]
    assert digest[0] == digest[1], "the same inputs must give the same artifact bytes"


def test_artifact_probabilities_match_scikit_learn(sst2_dir: Path, trained: dict) -> None:
    """The stored weights (scaler folded in) predict exactly what the fitted pipeline did."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from model.training.data import load_labelled

    clf = SentimentClassifier.load(trained["first"])
    train = load_labelled(sst2_dir / "train.tsv").head(300)
    x = clf.encoder.encode(train.texts)
    c = clf.artifact.training["C"]
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000, random_state=0))
    pipe.fit(x, train.labels)
    # the stored weights are the pipeline's, divided by the temperature fitted on dev
    temperature = clf.artifact.training["temperature"]
    assert clf.artifact.training["calibration"] == "temperature" and temperature != 1.0
    expected = sigmoid(pipe.decision_function(x) / temperature)
    np.testing.assert_allclose(clf.probabilities(x), expected, atol=1e-5)


def test_calibration_changes_confidence_never_a_decision(
    sst2_dir: Path, trained: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same training without temperature scaling: every prediction keeps its side and the
    band voices the same dev rows, while dev log-loss (what the temperature minimises) is no
    worse with it."""
    from model.training.data import load_labelled

    raw_path = trained["work"] / "raw.safetensors"
    argv = [*trained["argv"], "--calibration", "none", "--output", str(raw_path)]
    assert train_main(argv) == 0
    assert "calibrated on dev" not in capsys.readouterr().out
    calibrated, raw = SentimentClassifier.load(trained["first"]), SentimentClassifier.load(raw_path)
    assert raw.artifact.training["temperature"] == 1.0
    assert calibrated.version != raw.version

    dev = load_labelled(sst2_dir / "dev.tsv").head(300)
    x = calibrated.encoder.encode(dev.texts)
    p_cal, p_raw = calibrated.probabilities(x), raw.probabilities(x)
    assert not np.allclose(p_cal, p_raw, atol=1e-3)
    np.testing.assert_array_equal(p_cal >= 0.5, p_raw >= 0.5)
    # the band moves with the probabilities, so it voices the same dev rows
    t = calibrated.artifact.training["temperature"]
    raw_edges = np.array(raw.band)
    moved = sigmoid(np.log(raw_edges / (1 - raw_edges)) / t)
    np.testing.assert_allclose(calibrated.band, moved, rtol=1e-6)
    bands = [c.artifact.metrics["dev"]["band"] for c in (calibrated, raw)]
    assert bands[0]["coverage"] == bands[1]["coverage"] < 1.0
    assert bands[0]["accuracy_outside"] == bands[1]["accuracy_outside"]

    def log_loss(p: np.ndarray) -> float:
        return float(-np.mean(np.where(dev.labels == 1, np.log(p), np.log(1 - p))))

    assert log_loss(p_cal) <= log_loss(p_raw)


@pytest.mark.parametrize("true_t", [0.4, 1.0, 3.0])
def test_fit_temperature_recovers_the_temperature(true_t: float) -> None:
    """Labels drawn from sigmoid(z / T): the fitted temperature is T (over-confident z for
    T > 1, under-confident for T < 1)."""
    rng = np.random.default_rng(1)
    z = rng.normal(0.0, 4.0, 40_000)
    y = (rng.random(z.size) < sigmoid(z / true_t)).astype(np.int64)
    assert fit_temperature(y, z) == pytest.approx(true_t, rel=0.05)


def test_evaluate_prints_the_same_report(
    trained: dict, sst2_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = trained["work"] / "eval.json"
    plot = trained["work"] / "eval.png"
    capsys.readouterr()
    cache = str(trained["work"] / "cache")
    code = evaluate_main(
        ["--artifact", str(trained["first"]), "--data-dir", str(sst2_dir), "--limit", "300",
         "--cache-dir", cache, "--quiet", "--report", str(report_path), "--plot", str(plot)]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "confusion matrix" in out and "neutral band" in out
    evaluated = json.loads(report_path.read_text())
    trained_report = json.loads(trained["first"].with_suffix(".report.json").read_text())
    assert evaluated["accuracy"] == pytest.approx(trained_report["test"]["accuracy"])
    assert evaluated["ece"] == pytest.approx(trained_report["test"]["ece"])
    assert plot.read_bytes().startswith(PNG_MAGIC)


def test_evaluate_any_labelled_csv(
    trained: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "chat.csv"
    data.write_text("text,label\nI love this so much,1\nthis is terrible,0\nnot ok,x\n")
    code = evaluate_main(["--artifact", str(trained["first"]), "--data", str(data),
                          "--no-cache", "--quiet", "--skip-malformed"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "rows           2" in out and "1 malformed rows skipped" in out


def test_user_mistakes_give_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert evaluate_main(["--artifact", str(tmp_path / "missing.safetensors"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: classifier artifact") and "sentiment-train" in err
    assert "Traceback" not in err

    monkeypatch.setenv("SENTIMENT_BATCH_SIZE", "lots")
    assert train_main(["--data-dir", str(tmp_path), "--quiet"]) == 2
    assert "SENTIMENT_BATCH_SIZE='lots' is not a whole number" in capsys.readouterr().err

    monkeypatch.delenv("SENTIMENT_BATCH_SIZE")
    assert train_main(["--data-dir", str(tmp_path / "nowhere"), "--quiet", "--no-cache"]) == 2
    assert "SST-2 train split not found" in capsys.readouterr().err


def test_band_choice_reaches_the_precision_target() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    p = np.clip(y * 0.3 + rng.normal(0.35, 0.2, 2000), 0, 1)
    low, high = choose_band(y, p, 0.9)
    assert low <= 0.5 <= high
    assert (y[p >= high] == 1).mean() >= 0.9
    assert (y[p <= low] == 0).mean() >= 0.9
    # and it is the loosest such cut: one step looser falls below the target
    looser = np.sort(p[p < high])[-1]
    assert (y[p >= looser] == 1).mean() < 0.9 or looser < 0.5


def test_band_edge_keeps_its_own_row() -> None:
    """The negative edge is the cut row's probability itself: 1 - (1 - p) rounds above this p,
    and would have left the row the band was cut at inside the band."""
    edge = 0.45637778863886086
    assert 1 - (1 - edge) > edge
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, edge, 0.9, 0.95])
    low, high = choose_band(y, p, 0.9)
    assert low == edge and high == 0.9
    assert int((p <= low).sum()) == 2


def test_evaluate_on_the_chat_set(
    trained: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "chat.json"
    code = evaluate_main(
        ["--artifact", str(trained["first"]), "--chat", "--quiet", "--report", str(report_path)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "chat_eval.tsv" in out and "355 messages" in out
    assert "neutral left silent" in out and "three-way accuracy" in out
    report = json.loads(report_path.read_text())
    assert report["n"] == 355 and report["n_neutral"] == 95
    assert 0.5 < report["polar_accuracy"] <= 1.0
    # a chat file with a mistake in it: one clear line, no traceback
    bad = tmp_path / "bad.tsv"
    bad.write_text("text\tlabel\nfine\tgood\n", encoding="utf-8")
    assert evaluate_main(["--artifact", str(trained["first"]), "--chat", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "line 2: unknown label 'good'" in err and "Traceback" not in err


def test_finetune_through_the_command(
    sst2_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--finetune on the bundled encoder, a few steps: adapter next to the artifact, the
    artifact loads with it merged, the report says how it was tuned, and a loss picture."""
    output = tmp_path / "m" / "tuned.safetensors"
    argv = ["--data-dir", str(sst2_dir), "--limit", "64", "--quiet", "--C", "1",
            "--cache-dir", str(tmp_path / "cache"),
            "--checkpoint-dir", str(tmp_path / "ckpt")]  # fmt: skip
    code = train_main(
        [*argv, "--finetune", "--max-steps", "4", "--finetune-batch-size", "16",
         "--output", str(output)]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "tuned.finetune.png" in out
    adapter = output.with_suffix(".adapter")
    # the adapter's two files, and how it was tuned (outside the adapter's digest)
    assert sorted(p.name for p in adapter.iterdir()) == [
        ADAPTER_CONFIG,
        ADAPTER_WEIGHTS,
        "finetune.json",
    ]
    report = json.loads(output.with_suffix(".report.json").read_text())
    tuned = report["training"]["finetune"]
    assert tuned["steps"] == 4 and tuned["rows"] == 64 and tuned["finetune_on"] == "sentences"
    assert tuned["adapter_digest"] == adapter_digest(adapter)
    # the committed chat set is reported on, named relative to the checkout (no machine paths)
    assert report["chat"]["data"] == "model/training/chat_eval.tsv"
    assert output.with_suffix(".finetune.png").read_bytes().startswith(PNG_MAGIC)
    classifier = SentimentClassifier.load(output)
    assert classifier.artifact.encoder.adapter_digest == tuned["adapter_digest"]
    assert not any("lora" in name for name, _ in classifier.encoder.model.named_parameters())

    # and with the adapter given back: only the classifier is refitted, to the same model
    again = tmp_path / "again.safetensors"
    assert train_main([*argv, "--adapter", str(adapter), "--output", str(again)]) == 0
    assert load_artifact(again).version == load_artifact(output).version
    # which still records how its encoder was tuned
    assert load_artifact(again).training["finetune"] == tuned


def test_finetune_mistakes_give_one_clear_line(
    sst2_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--data-dir", str(sst2_dir), "--quiet", "--output", str(tmp_path / "x.safetensors")]
    assert train_main([*argv, "--finetune", "--adapter", str(tmp_path)]) == 2
    assert "not both" in capsys.readouterr().err
    assert train_main([*argv, "--finetune-on", "phrases"]) == 2
    assert "--finetune-on only applies with --finetune" in capsys.readouterr().err
    assert train_main([*argv, "--adapter", str(tmp_path / "nowhere"), "--limit", "8"]) == 2
    err = capsys.readouterr().err
    assert "adapter folder" in err and "not found" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"c_grid": ()}, "the C grid is empty"),
        ({"calibration": "platt"}, "calibration must be one of temperature, none"),
    ],
)
def test_train_options_are_checked_when_made(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainOptions(**options)  # type: ignore[arg-type]
