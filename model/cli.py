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
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from model.adapter import adapter_digest
from model.artifact import (
    ARTIFACT_ENV,
    ArtifactError,
    artifact_path_from,
    save_artifact,
)
from model.cache import CACHE_DIR_ENV, EmbeddingCache, default_cache_dir
from model.chateval import (
    ChatSet,
    ChatSetError,
    default_chat_set_path,
    evaluate_chat,
    format_chat_report,
    load_chat_set,
)
from model.classifier import SentimentClassifier
from model.data import (
    AMBIGUOUS_CHOICES,
    CHAT_DATA_DIR_ENV,
    DATA_DIR_ENV,
    MIXED_CHOICES,
    PHRASES_ENV,
    SPLITS,
    ChatMapping,
    DataError,
    Dataset,
    TrainOn,
    chat_data_dir_from,
    data_dir_from,
    find_chat_files,
    find_split,
    load_goemotions,
    load_labelled,
    load_training_data,
    row_weights,
)
from model.encoder import (
    BUNDLED_ENCODER,
    DEFAULT_BATCH_SIZE,
    POOLINGS,
    PRECISIONS,
    Encoder,
    EncoderError,
)
from model.finetune import FinetuneError, FinetuneOptions, finetune
from model.metrics import (
    evaluate_probabilities,
    evaluate_three_way_binary,
    format_report,
    format_three_way_report,
    plot_loss_curve,
    plot_reliability,
    said_report,
    three_way_report,
)
from model.textnorm import DEFAULT_NORMALIZER, NORMALIZERS
from model.train import (
    CALIBRATIONS,
    DEFAULT_C_GRID,
    THREE_WAY_C_GRID,
    TrainOptions,
    embed,
    train_classifier,
    train_three_way,
)

DEFAULT_OUTPUT = Path("artifacts/classifier.safetensors")
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


def _share(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"a share must lie strictly between 0 and 1, got {raw!r}")
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


def _chat_set(flag: Path | None) -> ChatSet | None:
    """The chat set named by the flag (which must exist), else the committed one if present."""
    if flag is not None:
        return load_chat_set(flag)
    path = default_chat_set_path()
    return load_chat_set(path) if path.is_file() else None


def _write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True, default=float) + "\n")


def _check_writable(
    path: Path, flag: str = "--output", *, given: Path | None = None, folder: bool = False
) -> None:
    """Fail at once, before any work, if ``path`` cannot be written: it is a folder where a
    file goes (or a file where a folder goes, ``folder=True``), an existing one is read-only,
    or its parent folder cannot be created or written. ``flag`` names the option to fix and
    ``given`` its value, when ``path`` is a file written beside it (``x.report.json``)."""
    what = f"{flag} {path}" if given is None else f"{path} (written beside {flag} {given})"
    if folder:
        if path.exists() and not path.is_dir():
            raise UsageError(
                f"{what} is a file where a folder goes. Move it aside or pick another {flag}."
            )
    elif path.is_dir():
        fix = (
            f"give a file path, e.g. {path / _default_name(flag)}"
            if given is None
            else f"move it aside or pick another {flag}"
        )
        raise UsageError(f"{what} is a folder; {fix}.")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{what} exists and is not writable. Pick another {flag}.")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        msg = f"cannot create the folder {parent} for {what} ({reason}). Pick another {flag}."
        raise UsageError(msg) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{parent} is not writable ({what}). Pick another {flag}.")


def _default_name(flag: str) -> str:
    return {"--report": "report.json", "--plot": "reliability.png"}.get(flag, DEFAULT_OUTPUT.name)


def _run(main: Callable[[list[str] | None], int], argv: Sequence[str] | None) -> int:
    try:
        return main(list(argv) if argv is not None else None)
    except (UsageError, DataError, ArtifactError, EncoderError, FinetuneError, ChatSetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# --------------------------------------------------------------------------------------------


def _train(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="sentiment-train",
        description="Train the sentiment classifier (encoder + logistic regression) on SST-2: "
        "optionally fine-tune the encoder once with LoRA adapters (--finetune), then freeze it, "
        "choose C and the neutral band on dev, evaluate on test, write artifact + report.",
    )
    parser.add_argument(
        "--task",
        choices=("binary", "three-way"),
        default="binary",
        help="binary: positive / negative on SST-2, with a neutral band (the tutorial's); "
        "three-way: negative / neutral / positive on SST-2 plus the GoEmotions chat data "
        "(the bot's default model). Default binary",
    )
    parser.add_argument(
        "--train-on",
        choices=("sentences", "phrases", "both"),
        default="sentences",
        help="SST-2 sentences (6,920), GLUE phrases (67,349), or both (default: sentences)",
    )
    chat_data = parser.add_argument_group("chat data (--task three-way)")
    chat_data.add_argument(
        "--chat-data",
        help=f"GoEmotions folder with train.tsv, dev.tsv, emotions.txt and sentiment_dict.json "
        f"[{CHAT_DATA_DIR_ENV}; default data/goemotions, downloaded when missing]",
    )
    chat_data.add_argument(
        "--chat-ambiguous",
        choices=AMBIGUOUS_CHOICES,
        default="neutral",
        help="comments with only ambiguous emotions (surprise, curiosity, confusion, "
        "realization): neutral, or drop them (default neutral)",
    )
    chat_data.add_argument(
        "--chat-mixed",
        choices=MIXED_CHOICES,
        default="polar",
        help="comments with one polar group besides ambiguous or neutral labels: that polar "
        "mood, or drop them; positive and negative together are always dropped (default polar)",
    )
    chat_data.add_argument(
        "--chat-share",
        type=_share,
        default=0.5,
        help="share of the total training weight on the chat rows, the rest on SST-2, in "
        "fine-tuning and in the classifier (default 0.5)",
    )
    chat_data.add_argument(
        "--fit-chat-share",
        type=_share,
        help="share of the chat rows in the classifier's weight, when it should differ from "
        "--chat-share (which then applies to fine-tuning only)",
    )
    chat_data.add_argument(
        "--balance-classes",
        action="store_true",
        help="in the classifier, give each mood an equal share of its source's weight (default: "
        "every row of a source weighs the same)",
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
        "--chat-set",
        type=Path,
        help="hand-labelled chat messages to report on too (default: tests/data/chat_eval.tsv "
        "when it is there)",
    )
    parser.add_argument(
        "--text-normalizer",
        choices=NORMALIZERS,
        default=DEFAULT_NORMALIZER,
        help=f"how chat text is rewritten before the tokenizer (default {DEFAULT_NORMALIZER})",
    )
    tune = parser.add_argument_group(
        "fine-tuning (LoRA adapters, trained once; the classifier is then fitted as usual)"
    )
    tune.add_argument(
        "--finetune",
        action="store_true",
        help="fine-tune the encoder with low-rank adapters before fitting the classifier; the "
        "adapter folder is written next to the artifact (<output>.adapter/)",
    )
    tune.add_argument(
        "--adapter",
        type=Path,
        help="use this already trained adapter folder instead of fine-tuning again",
    )
    tune.add_argument(
        "--init-adapter",
        type=Path,
        help="start fine-tuning from this adapter (same rank) instead of from zero, e.g. "
        "model/artifacts/sst2.adapter for the three-way model",
    )
    tune.add_argument(
        "--finetune-on",
        choices=("sentences", "phrases", "both"),
        help="rows the encoder is fine-tuned on (default: the same as --train-on)",
    )
    defaults = FinetuneOptions()
    tune.add_argument(
        "--epochs", type=_positive_int_arg, default=defaults.epochs, help="default %(default)s"
    )
    tune.add_argument(
        "--learning-rate",
        type=_c_value,
        default=defaults.learning_rate,
        help="AdamW learning rate (default %(default)s)",
    )
    tune.add_argument(
        "--lora-rank", type=_positive_int_arg, default=defaults.rank, help="default %(default)s"
    )
    tune.add_argument(
        "--lora-alpha", type=_positive_int_arg, default=defaults.alpha, help="default %(default)s"
    )
    tune.add_argument(
        "--finetune-batch-size",
        type=_positive_int_arg,
        default=defaults.batch_size,
        help="rows per training step (default %(default)s)",
    )
    tune.add_argument(
        "--max-steps", type=_positive_int_arg, help="stop fine-tuning after N steps (trials)"
    )
    tune.add_argument(
        "--device",
        default="auto",
        help="auto (the GPU when there is one, else the CPU), cpu or cuda (default auto)",
    )
    tune.add_argument(
        "--checkpoint-dir",
        type=Path,
        help="where interrupted runs are resumed from (default: finetune/ in the embedding cache "
        "folder, ~/.cache/sentiment-bot/embeddings/finetune)",
    )
    parser.add_argument(
        "--C",
        dest="c_grid",
        type=_c_value,
        nargs="+",
        help="candidate C values, the best on dev wins (default: "
        f"{' '.join(map(str, DEFAULT_C_GRID))}; three-way: "
        f"{' '.join(map(str, THREE_WAY_C_GRID))})",
    )
    parser.add_argument(
        "--band-precision",
        type=_band_precision,
        default=0.9,
        help="precision the bot's voiced predictions must reach on dev (default 0.9)",
    )
    parser.add_argument(
        "--calibration",
        choices=CALIBRATIONS,
        default="temperature",
        help="temperature: scale the logistic regression's confidence so that its probabilities "
        "match how often it is right on dev (no prediction changes side); none: keep them as "
        "fitted (default temperature)",
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
    # Everything the run will write, checked now rather than after minutes of training.
    _check_writable(args.output)
    if args.report is not None:
        _check_writable(args.report, "--report")
    for suffix in (".report.json", ".reliability.png", ".finetune.png"):
        if suffix != ".report.json" or args.report is None:
            _check_writable(args.output.with_suffix(suffix), given=args.output)
    if args.finetune:
        _check_writable(args.output.with_suffix(".adapter"), given=args.output, folder=True)

    if args.finetune and args.adapter is not None:
        raise UsageError("give --finetune (train a new adapter) or --adapter DIR, not both.")
    if args.finetune_on is not None and not args.finetune:
        raise UsageError("--finetune-on only applies with --finetune.")
    if args.init_adapter is not None and not args.finetune:
        raise UsageError("--init-adapter only applies with --finetune.")
    three_way = args.task == "three-way"
    chat_flags = [
        flag
        for flag, given in (
            ("--chat-data", args.chat_data is not None),
            ("--fit-chat-share", args.fit_chat_share is not None),
            ("--balance-classes", args.balance_classes),
        )
        if given
    ]
    if chat_flags and not three_way:
        raise UsageError(f"{', '.join(chat_flags)} only apply with --task three-way.")

    started = time.perf_counter()
    batch, threads = _runtime(args)
    pooling = args.pooling or _env("SENTIMENT_POOLING", str, "cls or mean")
    if pooling is not None and pooling not in POOLINGS:
        raise UsageError(f"SENTIMENT_POOLING={pooling!r} is not cls or mean.")

    def make_encoder(precision: str, adapter: Path | None) -> Encoder:
        return Encoder(
            args.encoder or os.environ.get("SENTIMENT_ENCODER") or BUNDLED_ENCODER,
            pooling=pooling,
            max_length=args.max_length
            or _env("SENTIMENT_MAX_LENGTH", _positive_int, "a whole number >= 1"),
            batch_size=batch,
            threads=threads,
            precision=precision,
            adapter=adapter,
            text_normalizer=args.text_normalizer,
        )

    data_dir = data_dir_from(args.data_dir)
    mapping = ChatMapping(ambiguous=args.chat_ambiguous, mixed=args.chat_mixed)
    chat_folder = (
        find_chat_files(chat_data_dir_from(args.chat_data), progress=not args.quiet)
        if three_way
        else None
    )

    def chat_split(split: str) -> tuple[Dataset, dict[str, int]]:
        assert chat_folder is not None
        data, counts = load_goemotions(
            split, chat_folder, mapping, skip_malformed=args.skip_malformed
        )
        return data.head(args.limit), counts

    chat_train, chat_counts = chat_split("train") if three_way else (None, {})

    def training_rows(which: TrainOn) -> Dataset:
        sst = load_training_data(
            which,
            data_dir,
            phrases=args.phrases,
            skip_malformed=args.skip_malformed,
            progress=not args.quiet,
        ).head(args.limit)
        if chat_train is None:
            return sst
        return Dataset.concat([sst.as_three_way().named("sst2"), chat_train.named("chat")])

    shares = {"sst2": 1.0 - args.chat_share, "chat": args.chat_share} if three_way else None
    train = training_rows(args.train_on)
    precision = _precision_setting(args) or "auto"
    adapter: Path | None = args.adapter
    finetuned: dict[str, Any] | None = None
    if args.finetune:
        finetune_on = args.finetune_on or args.train_on
        rows = train if finetune_on == args.train_on else training_rows(finetune_on)
        tune_options = FinetuneOptions(
            epochs=args.epochs,
            batch_size=args.finetune_batch_size,
            learning_rate=args.learning_rate,
            rank=args.lora_rank,
            alpha=args.lora_alpha,
            seed=args.seed,
            max_steps=args.max_steps,
            device=args.device,
        )
        adapter = args.output.with_suffix(".adapter")
        tuned = finetune(
            make_encoder("fp32", None),
            rows,
            adapter,
            options=tune_options,
            checkpoint_root=args.checkpoint_dir,
            progress=not args.quiet,
            weights=row_weights(rows, shares),
            init_adapter=args.init_adapter,
        )
        finetuned = {
            "finetune_on": finetune_on,
            "rows": len(rows),
            **({"chat_share": args.chat_share} if three_way else {}),
            **(
                {"init_adapter_digest": adapter_digest(args.init_adapter)}
                if args.init_adapter is not None
                else {}
            ),
            **tune_options.identity(),
            **tuned.summary(),
        }
    encoder = make_encoder(precision, adapter)
    spec = encoder.spec
    print(
        f"encoder {spec.name}{f' + adapter {adapter}' if adapter else ''}: {spec.pooling} "
        f"pooling, max {spec.max_length} tokens, {encoder.dim} dims"
        f"{', L2-normalised' if spec.normalize else ''}, {spec.precision}, text normaliser "
        f"{spec.text_normalizer}"
    )
    dev, test = _split("dev", args), _split("test", args)
    skipped = train.skipped + dev.skipped + test.skipped
    print(
        f"data: train {len(train)} rows ({args.train_on}), dev {len(dev)}, test {len(test)}"
        + (f"; {skipped} malformed rows skipped" if skipped else "")
    )
    options = TrainOptions(
        c_grid=tuple(args.c_grid)
        if args.c_grid
        else (THREE_WAY_C_GRID if three_way else DEFAULT_C_GRID),
        random_state=args.seed,
        band_precision=args.band_precision,
        calibration=args.calibration,
        train_on=args.train_on,
        finetune=finetuned,
        chat_share=(args.fit_chat_share or args.chat_share) if three_way else None,
        balance_classes=args.balance_classes,
        chat_mapping=asdict(mapping) if three_way else None,
    )
    if three_way:
        chat_dev, chat_dev_counts = chat_split("dev")
        print(
            f"chat data ({mapping.describe()}): train {len(chat_train or ())} comments, dev "
            f"{len(chat_dev)}; dropped {chat_counts['dropped']} and {chat_dev_counts['dropped']}"
        )
        result = train_three_way(
            encoder,
            train,
            dev.as_three_way(),
            chat_dev,
            test.as_three_way(),
            options=options,
            cache=_cache(args, encoder),
            chat=_chat_set(args.chat_set),
            chat_counts={"train": chat_counts, "dev": chat_dev_counts},
            progress=not args.quiet,
        )
    else:
        result = train_classifier(
            encoder,
            train,
            dev,
            test,
            options=options,
            cache=_cache(args, encoder),
            chat=_chat_set(args.chat_set),
            progress=not args.quiet,
        )
    save_artifact(result.artifact, args.output)
    report_path = args.report or args.output.with_suffix(".report.json")
    plot_path = args.output.with_suffix(".reliability.png")
    result.report["artifact"] = str(args.output)
    _write_report(result.report, report_path)
    title = f"SST-2 test, model {result.artifact.version} (C={result.artifact.training['C']:g})"
    plot_reliability(result.report["test"], plot_path, title)
    written = [str(report_path), str(plot_path)]
    if finetuned is not None and finetuned["loss_curve"]:
        loss_path = args.output.with_suffix(".finetune.png")
        epochs = finetuned["epochs"]
        plot_loss_curve(
            finetuned["loss_curve"],
            loss_path,
            f"LoRA fine-tuning of {spec.name}{' (three-way)' if three_way else ''}\n"
            f"{finetuned['rows']:,} rows ({finetuned['finetune_on']}"
            f"{' + chat' if three_way else ''}), {epochs} epoch{'s' if epochs != 1 else ''}, "
            f"{finetuned['steps']:,} steps",
            classes=3 if three_way else 2,
        )
        written.append(str(loss_path))

    print()
    print(format_report(result.report["dev"], f"dev ({dev.source})"))
    print()
    print(format_report(result.report["test"], f"test ({test.source})"))
    if "chat_dev" in result.report:
        print()
        print(format_three_way_report(result.report["chat_dev"], "chat dev (GoEmotions dev)"))
    if "chat" in result.report:
        print()
        print(
            format_chat_report(result.report["chat"], f"chat set ({result.report['chat']['data']})")
        )
    t = result.timings
    print()
    print(
        f"timings: embed train {t['embed_train_s']:.1f} s, dev {t['embed_dev_s']:.1f} s, "
        f"test {t['embed_test_s']:.1f} s; fit {t['fit_s']:.1f} s; evaluate "
        f"{t['evaluate_s']:.2f} s; total {time.perf_counter() - started:.1f} s "
        "(including model load)"
    )
    print(f"wrote {args.output} (model {result.artifact.version}), {', '.join(written)}")
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
    source.add_argument(
        "--chat",
        nargs="?",
        type=Path,
        const=default_chat_set_path(),
        help="the hand-labelled chat set (positive/negative/neutral), or another file like it",
    )
    source.add_argument(
        "--chat-dev",
        action="store_true",
        help="GoEmotions dev, three-way (mapped as the artifact was trained, else the default "
        "mapping): accuracy, macro recall, per-class precision of the reactions",
    )
    parser.add_argument(
        "--chat-data",
        help=f"GoEmotions folder for --chat-dev [{CHAT_DATA_DIR_ENV}; default data/goemotions]",
    )
    parser.add_argument("--report", type=Path, help="also write the report as JSON here")
    parser.add_argument("--plot", type=Path, help="also draw the reliability diagram (PNG) here")
    _add_runtime_options(parser)
    args = parser.parse_args(argv)
    # The outputs, checked before the model is loaded and the data embedded.
    if args.report is not None:
        _check_writable(args.report, "--report")
    if args.plot is not None:
        _check_writable(args.plot, "--plot")

    batch, threads = _runtime(args)
    path = artifact_path_from(args.artifact)
    classifier = SentimentClassifier.load(
        path, batch_size=batch, threads=threads, precision=_precision_setting(args)
    )
    artifact = classifier.artifact
    if args.chat is not None:
        chat = load_chat_set(args.chat)
        t0 = time.perf_counter()
        chat_metrics = evaluate_chat(classifier, chat)
        seconds = time.perf_counter() - t0
        chat_metrics.update({"artifact": str(path), "model_version": artifact.version})
        print(format_chat_report(chat_metrics, f"{chat_metrics['data']}: model {artifact.version}"))
        print(f"  classifying took {seconds:.1f} s")
        if args.report:
            _write_report(chat_metrics, args.report)
            print(f"wrote {args.report}")
        return 0
    if args.chat_dev:
        return _evaluate_chat_dev(classifier, args, path)
    if args.data is not None:
        data = load_labelled(args.data, skip_malformed=args.skip_malformed).head(args.limit)
    else:
        data = _split(args.split, args)
    x, seconds = _embed_timed(classifier, data, args)
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
    print(f"  embedding took {seconds:.1f} s ({len(data) / max(seconds, 1e-9):.0f} texts/s)")
    if args.report:
        _write_report(report, args.report)
        print(f"wrote {args.report}")
    if args.plot:
        plot_reliability(report, args.plot, title)
        print(f"wrote {args.plot}")
    return 0


def _embed_timed(
    classifier: SentimentClassifier, data: Dataset, args: argparse.Namespace
) -> tuple[Any, float]:
    """The data's embeddings (through the cache unless --no-cache) and the seconds it took."""
    t0 = time.perf_counter()
    x = embed(
        classifier.encoder,
        data,
        _cache(args, classifier.encoder),
        progress=not args.quiet,
        desc="Embedding",
    )
    return x, time.perf_counter() - t0


def _evaluate_chat_dev(
    classifier: SentimentClassifier, args: argparse.Namespace, path: Path
) -> int:
    artifact = classifier.artifact
    recorded = artifact.training.get("chat_mapping")
    mapping = ChatMapping(**recorded) if isinstance(recorded, dict) else ChatMapping()
    folder = find_chat_files(chat_data_dir_from(args.chat_data), progress=not args.quiet)
    data, counts = load_goemotions("dev", folder, mapping, skip_malformed=args.skip_malformed)
    data = data.head(args.limit)
    x, seconds = _embed_timed(classifier, data, args)
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
    print(f"  embedding took {seconds:.1f} s ({len(data) / max(seconds, 1e-9):.0f} texts/s)")
    if args.report:
        _write_report(report, args.report)
        print(f"wrote {args.report}")
    return 0


def train_main(argv: Sequence[str] | None = None) -> int:
    return _run(_train, argv)


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    return _run(_evaluate, argv)
