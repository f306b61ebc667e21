"""Console commands ``sentiment-train`` and ``sentiment-evaluate``.

Every option has an environment variable (see .env.example); a flag wins over the environment.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from model.artifact import (
    ARTIFACT_ENV,
    ArtifactError,
    artifact_path_from,
    save_artifact,
)
from model.cache import CACHE_DIR_ENV, EmbeddingCache, default_cache_dir
from model.classifier import SentimentClassifier
from model.data import (
    DATA_DIR_ENV,
    PHRASES_ENV,
    SPLITS,
    DataError,
    Dataset,
    data_dir_from,
    find_split,
    load_labelled,
    load_training_data,
)
from model.encoder import (
    BUNDLED_ENCODER,
    DEFAULT_BATCH_SIZE,
    POOLINGS,
    PRECISIONS,
    Encoder,
    EncoderError,
)
from model.metrics import evaluate_probabilities, format_report, plot_reliability
from model.train import DEFAULT_C_GRID, TrainOptions, embed, train_classifier

DEFAULT_OUTPUT = Path("artifacts/classifier.joblib")
T = TypeVar("T")


class UsageError(Exception):
    """A bad flag or environment value."""


def _env(name: str, parse: Callable[[str], T], what: str) -> T | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return parse(raw.strip())
    except ValueError:
        msg = f"{name}={raw!r} is not {what}. Fix it in the environment or .env."
        raise UsageError(msg) from None


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError(raw)
    return value


def _positive_int_arg(raw: str) -> int:
    try:
        return _positive_int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number >= 1") from None


def _c_value(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"C must be a positive number, got {raw!r}")
    return value


def _band_precision(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.5 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"band precision must be in [0.5, 1), got {raw!r}")
    return value


def _add_runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help=f"folder with SST-2 train/dev/test.tsv [{DATA_DIR_ENV}]")
    parser.add_argument(
        "--limit", type=_positive_int_arg, help="use only the first N rows of each split"
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int_arg,
        help=f"texts per encoder batch [SENTIMENT_BATCH_SIZE, {DEFAULT_BATCH_SIZE}]",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int_arg,
        help="torch CPU threads [SENTIMENT_TORCH_THREADS, torch's default]",
    )
    parser.add_argument(
        "--cache-dir", help=f"embedding cache folder [{CACHE_DIR_ENV}, ~/.cache/sentiment-bot]"
    )
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    parser.add_argument(
        "--skip-malformed",
        action="store_true",
        help="skip (and count) malformed rows instead of stopping at the first",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", *PRECISIONS),
        help="numeric path of the encoder: bf16 or fp32 [SENTIMENT_PRECISION; train: auto = bf16 "
        "where the CPU has native bf16, else fp32; evaluate: the artifact's]",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _precision_setting(args: argparse.Namespace) -> str | None:
    value = args.precision or os.environ.get("SENTIMENT_PRECISION", "").strip() or None
    if value is not None and value not in ("auto", *PRECISIONS):
        raise UsageError(f"SENTIMENT_PRECISION={value!r} is not auto, fp32 or bf16.")
    return value


def _runtime(args: argparse.Namespace) -> tuple[int, int | None]:
    batch = args.batch_size or _env("SENTIMENT_BATCH_SIZE", _positive_int, "a whole number >= 1")
    threads = args.threads or _env("SENTIMENT_TORCH_THREADS", _positive_int, "a whole number >= 1")
    return batch or DEFAULT_BATCH_SIZE, threads


def _cache(args: argparse.Namespace, encoder: Encoder) -> EmbeddingCache | None:
    if args.no_cache:
        return None
    root = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    return EmbeddingCache(root, encoder.cache_key, encoder.dim)


def _split(name: str, args: argparse.Namespace) -> Dataset:
    path = find_split(name, data_dir_from(args.data_dir), progress=not args.quiet)
    return load_labelled(path, skip_malformed=args.skip_malformed).head(args.limit)


def _write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True, default=float) + "\n")


def _check_writable(path: Path) -> None:
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create {folder} for the output ({exc}). Pick another --output."
        raise UsageError(msg) from None
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{folder} is not writable. Pick another --output.")


def _run(main: Callable[[list[str] | None], int], argv: Sequence[str] | None) -> int:
    try:
        return main(list(argv) if argv is not None else None)
    except (UsageError, DataError, ArtifactError, EncoderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# --------------------------------------------------------------------------------------------


def _train(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="sentiment-train",
        description="Train the sentiment classifier (frozen encoder + logistic regression) on "
        "SST-2, choose C and the neutral band on dev, evaluate on test, write artifact + report.",
    )
    parser.add_argument(
        "--train-on",
        choices=("sentences", "phrases", "both"),
        default="sentences",
        help="SST-2 sentences (6,920), GLUE phrases (67,349), or both (default: sentences)",
    )
    parser.add_argument("--phrases", help=f"GLUE SST-2 phrase file train.tsv [{PHRASES_ENV}]")
    parser.add_argument(
        "--encoder",
        help=f"Hugging Face name or local folder [SENTIMENT_ENCODER, {BUNDLED_ENCODER}]",
    )
    parser.add_argument(
        "--pooling",
        choices=POOLINGS,
        help="cls or mean [SENTIMENT_POOLING; default: what the model declares, else cls]",
    )
    parser.add_argument(
        "--max-length",
        type=_positive_int_arg,
        help="tokens kept per text [SENTIMENT_MAX_LENGTH; default: the model's]",
    )
    parser.add_argument(
        "--C",
        dest="c_grid",
        type=_c_value,
        nargs="+",
        help="candidate C values, the best on dev wins (default: "
        f"{' '.join(map(str, DEFAULT_C_GRID))})",
    )
    parser.add_argument(
        "--band-precision",
        type=_band_precision,
        default=0.9,
        help="precision the bot's voiced predictions must reach on dev (default 0.9)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random_state (default 0)")
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"artifact path (default {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--report", type=Path, help="report JSON path (default: next to the artifact)"
    )
    _add_runtime_options(parser)
    args = parser.parse_args(argv)
    _check_writable(args.output)

    started = time.perf_counter()
    batch, threads = _runtime(args)
    pooling = args.pooling or _env("SENTIMENT_POOLING", str, "cls or mean")
    if pooling is not None and pooling not in POOLINGS:
        raise UsageError(f"SENTIMENT_POOLING={pooling!r} is not cls or mean.")
    encoder = Encoder(
        args.encoder or os.environ.get("SENTIMENT_ENCODER") or BUNDLED_ENCODER,
        pooling=pooling,
        max_length=args.max_length
        or _env("SENTIMENT_MAX_LENGTH", _positive_int, "a whole number >= 1"),
        batch_size=batch,
        threads=threads,
        precision=_precision_setting(args) or "auto",
    )
    spec = encoder.spec
    print(
        f"encoder {spec.name}: {spec.pooling} pooling, max {spec.max_length} tokens, "
        f"{encoder.dim} dims{', L2-normalised' if spec.normalize else ''}, {spec.precision}"
    )
    data_dir = data_dir_from(args.data_dir)
    train = load_training_data(
        args.train_on,
        data_dir,
        phrases=args.phrases,
        skip_malformed=args.skip_malformed,
        progress=not args.quiet,
    ).head(args.limit)
    dev, test = _split("dev", args), _split("test", args)
    skipped = train.skipped + dev.skipped + test.skipped
    print(
        f"data: train {len(train)} rows ({args.train_on}), dev {len(dev)}, test {len(test)}"
        + (f"; {skipped} malformed rows skipped" if skipped else "")
    )
    options = TrainOptions(
        c_grid=tuple(args.c_grid) if args.c_grid else DEFAULT_C_GRID,
        random_state=args.seed,
        band_precision=args.band_precision,
        train_on=args.train_on,
    )
    result = train_classifier(
        encoder,
        train,
        dev,
        test,
        options=options,
        cache=_cache(args, encoder),
        progress=not args.quiet,
    )
    save_artifact(result.artifact, args.output)
    report_path = args.report or args.output.with_suffix(".report.json")
    plot_path = args.output.with_suffix(".reliability.png")
    result.report["artifact"] = str(args.output)
    _write_report(result.report, report_path)
    title = f"SST-2 test, model {result.artifact.version} (C={result.artifact.training['C']:g})"
    plot_reliability(result.report["test"], plot_path, title)

    print()
    print(format_report(result.report["dev"], f"dev ({dev.source})"))
    print()
    print(format_report(result.report["test"], f"test ({test.source})"))
    t = result.timings
    print()
    print(
        f"timings: embed train {t['embed_train_s']:.1f} s, dev {t['embed_dev_s']:.1f} s, "
        f"test {t['embed_test_s']:.1f} s; fit {t['fit_s']:.1f} s; evaluate "
        f"{t['evaluate_s']:.2f} s; total {time.perf_counter() - started:.1f} s "
        "(including model load)"
    )
    print(f"wrote {args.output} (model {result.artifact.version}), {report_path}, {plot_path}")
    return 0


def _evaluate(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="sentiment-evaluate",
        description="Evaluate a classifier artifact on a labelled file (TSV or CSV) or an SST-2 "
        "split and print the report.",
    )
    parser.add_argument(
        "--artifact", help=f"artifact to evaluate [{ARTIFACT_ENV}, the bundled default]"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, help="labelled file: sentence<TAB>label TSV or CSV")
    source.add_argument(
        "--split", choices=SPLITS, default="test", help="SST-2 split (default test)"
    )
    parser.add_argument("--report", type=Path, help="also write the report as JSON here")
    parser.add_argument("--plot", type=Path, help="also draw the reliability diagram (PNG) here")
    _add_runtime_options(parser)
    args = parser.parse_args(argv)

    batch, threads = _runtime(args)
    path = artifact_path_from(args.artifact)
    classifier = SentimentClassifier.load(
        path, batch_size=batch, threads=threads, precision=_precision_setting(args)
    )
    artifact = classifier.artifact
    if args.data is not None:
        data = load_labelled(args.data, skip_malformed=args.skip_malformed).head(args.limit)
    else:
        data = _split(args.split, args)
    t0 = time.perf_counter()
    x = embed(
        classifier.encoder,
        data,
        _cache(args, classifier.encoder),
        progress=not args.quiet,
        desc="Embedding",
    )
    seconds = time.perf_counter() - t0
    p = classifier.probabilities(x)
    report = evaluate_probabilities(data.labels, p, artifact.band)
    report.update(
        {
            "artifact": str(path),
            "model_version": artifact.version,
            "data": data.source,
            "skipped_rows": data.skipped,
            "embed_s": seconds,
        }
    )
    title = (
        f"{data.source}: model {artifact.version} ({artifact.encoder.name}, "
        f"{artifact.encoder.pooling} pooling)"
    )
    print(format_report(report, title))
    if data.skipped:
        print(f"  {data.skipped} malformed rows skipped")
    print(f"  embedding took {seconds:.1f} s ({len(data) / max(seconds, 1e-9):.0f} texts/s)")
    if args.report:
        _write_report(report, args.report)
        print(f"wrote {args.report}")
    if args.plot:
        plot_reliability(report, args.plot, title)
        print(f"wrote {args.plot}")
    return 0


def train_main(argv: Sequence[str] | None = None) -> int:
    return _run(_train, argv)


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    return _run(_evaluate, argv)
