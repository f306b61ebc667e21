"""``sentiment-evaluate``: an artifact's report on a labelled file, an SST-2 split, the
hand-labelled chat set or GoEmotions dev."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from model.cli.common import (
    check_writable,
    embedding_cache,
    load_split,
    run_command,
    settings_from,
)
from model.cli.options import evaluate_parser
from model.cli.report import describe_speed, write_report
from model.serving.artifact import default_artifact_path
from model.serving.classifier import SentimentClassifier
from model.settings import ModelSettings
from model.training.chateval import evaluate_chat, load_chat_set
from model.training.data import (
    ChatMapping,
    Dataset,
    find_chat_files,
    load_goemotions,
    load_labelled,
)
from model.training.formatting import format_chat_report, format_report, format_three_way_report
from model.training.metrics import (
    evaluate_probabilities,
    evaluate_three_way_binary,
    said_report,
    three_way_report,
)
from model.training.plots import plot_reliability
from model.training.train import embed


def evaluate_main(argv: Sequence[str] | None = None, prog: str = "sentiment-evaluate") -> int:
    return run_command(partial(_evaluate, prog=prog), argv)


def _evaluate(argv: list[str] | None, *, prog: str) -> int:
    args = evaluate_parser(prog).parse_args(argv)
    # The outputs, checked before the model is loaded and the data embedded.
    if args.report is not None:
        check_writable(args.report, "--report")
    if args.plot is not None:
        check_writable(args.plot, "--plot")
    settings = settings_from(args)
    path = settings.artifact or default_artifact_path()
    classifier = SentimentClassifier.load(
        path,
        batch_size=settings.encoder_batch_size,
        threads=settings.torch_threads,
        precision=settings.precision,
        serving_cache=settings.serving_cache,
    )
    if args.chat is not None:
        _evaluate_chat_set(classifier, args, path)
    elif args.chat_dev:
        _evaluate_chat_dev(classifier, args, settings, path)
    else:
        _evaluate_labelled(classifier, args, settings, path)
    return 0


def _evaluate_chat_set(
    classifier: SentimentClassifier, args: argparse.Namespace, path: Path
) -> None:
    artifact = classifier.artifact
    chat = load_chat_set(args.chat)
    t0 = time.perf_counter()
    report = evaluate_chat(classifier, chat)
    seconds = time.perf_counter() - t0
    report.update({"artifact": str(path), "model_version": artifact.version})
    print(format_chat_report(report, f"{report['data']}: model {artifact.version}"))
    print(f"  classifying took {seconds:.1f} s")
    _write_json(report, args)


def _evaluate_labelled(
    classifier: SentimentClassifier, args: argparse.Namespace, settings: ModelSettings, path: Path
) -> None:
    """A labelled file (--data) or an SST-2 split: binary accuracy and the voiced predictions."""
    artifact = classifier.artifact
    if args.data is not None:
        data = load_labelled(args.data, skip_malformed=args.skip_malformed).head(args.limit)
    else:
        data = load_split(args.split, args, settings)
    x, seconds = _embed_timed(classifier, data, args, settings)
    if classifier.three_way:
        probs = classifier.class_probabilities(x)
        report = evaluate_three_way_binary(data.labels, probs, artifact.band)
    else:
        report = evaluate_probabilities(data.labels, classifier.probabilities(x), artifact.band)
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
    print(describe_speed(len(data), seconds))
    _write_json(report, args)
    if args.plot:
        plot_reliability(report, args.plot, title)
        print(f"wrote {args.plot}")


def _evaluate_chat_dev(
    classifier: SentimentClassifier, args: argparse.Namespace, settings: ModelSettings, path: Path
) -> None:
    """GoEmotions dev, three-way, mapped as the artifact was trained (else the default)."""
    artifact = classifier.artifact
    recorded = artifact.training.get("chat_mapping")
    mapping = ChatMapping(**recorded) if isinstance(recorded, dict) else ChatMapping()
    folder = find_chat_files(settings.chat_data_dir, progress=not args.quiet)
    data, counts = load_goemotions("dev", folder, mapping, skip_malformed=args.skip_malformed)
    data = data.head(args.limit)
    x, seconds = _embed_timed(classifier, data, args, settings)
    if classifier.three_way:
        report = three_way_report(data.labels, classifier.class_probabilities(x), artifact.band)
    else:  # a binary model says neutral inside its band
        p = classifier.probabilities(x)
        low, high = artifact.band
        said = np.where(p >= high, 2, np.where(p <= low, 0, 1)).astype(np.int64)
        report = said_report(data.labels, said)
    report.update(
        {
            "artifact": str(path),
            "model_version": artifact.version,
            "data": data.source,
            "mapping": mapping.describe(),
            "dropped": counts["dropped"],
            "skipped_rows": data.skipped,
        }
    )
    print(
        format_three_way_report(
            report,
            f"GoEmotions dev ({mapping.describe()}; {counts['dropped']} comments dropped): "
            f"model {artifact.version}",
        )
    )
    print(describe_speed(len(data), seconds))
    _write_json(report, args)


def _embed_timed(
    classifier: SentimentClassifier,
    data: Dataset,
    args: argparse.Namespace,
    settings: ModelSettings,
) -> tuple[Any, float]:
    """The data's embeddings (through the cache unless --no-cache) and the seconds it took."""
    t0 = time.perf_counter()
    x = embed(
        classifier.encoder,
        data,
        embedding_cache(args, settings, classifier.encoder),
        progress=not args.quiet,
        desc="Embedding",
    )
    return x, time.perf_counter() - t0


def _write_json(report: dict[str, Any], args: argparse.Namespace) -> None:
    if args.report:
        write_report(report, args.report)
        print(f"wrote {args.report}")
