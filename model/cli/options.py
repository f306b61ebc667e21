"""The command lines of ``sentiment-train`` and ``sentiment-evaluate``: flags and value checks.

A flag that overrides an environment variable has the settings field's name as its ``dest``
(see :func:`model.cli.common.settings_from`), so binding flags to settings is not done by hand.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from model.serving.spec import (
    BUNDLED_ENCODER,
    DEFAULT_BATCH_SIZE,
    POOLINGS,
    PRECISION_CHOICES,
    PRECISIONS,
)
from model.serving.textnorm import DEFAULT_NORMALIZER, NORMALIZERS
from model.training.chateval import default_chat_set_path
from model.training.corrections import DEFAULT_HELD_OUT, DEFAULT_WEIGHT
from model.training.data import AMBIGUOUS_CHOICES, MIXED_CHOICES, SPLITS
from model.training.finetune import FinetuneOptions
from model.training.train import CALIBRATIONS, DEFAULT_C_GRID, THREE_WAY_C_GRID

DEFAULT_OUTPUT = Path("artifacts/classifier.safetensors")


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number >= 1")
    return value


def _c_value(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"C must be a positive number, got {raw!r}")
    return value


def _serve_paths(raw: str) -> tuple[str, ...]:
    paths = tuple(dict.fromkeys(p.strip().lower() for p in raw.split(",") if p.strip()))
    unknown = [p for p in paths if p not in PRECISIONS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown path {unknown[0]!r}: give paths among {', '.join(PRECISIONS)}, "
            "comma-separated"
        )
    return paths


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
    """The options both commands take."""
    parser.add_argument(
        "--data-dir", help="folder with SST-2 train/dev/test.tsv [SENTIMENT_DATA_DIR]"
    )
    parser.add_argument(
        "--limit", type=_positive_int, help="use only the first N rows of each split"
    )
    parser.add_argument(
        "--batch-size",
        dest="encoder_batch_size",
        metavar="BATCH_SIZE",
        type=_positive_int,
        help=f"texts per encoder batch [SENTIMENT_BATCH_SIZE, {DEFAULT_BATCH_SIZE}]",
    )
    parser.add_argument(
        "--threads",
        dest="torch_threads",
        metavar="THREADS",
        type=_positive_int,
        help="torch CPU threads; int8: batches at once [SENTIMENT_TORCH_THREADS, one per core]",
    )
    parser.add_argument(
        "--cache-dir",
        help="embedding cache folder [SENTIMENT_CACHE_DIR, ~/.cache/sentiment-bot/embeddings]",
    )
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    parser.add_argument(
        "--skip-malformed",
        action="store_true",
        help="skip (and count) malformed rows instead of stopping at the first",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        help="numeric path of the encoder: fp32, bf16 or int8 [SENTIMENT_PRECISION; train: auto = "
        "bf16 where the CPU has native bf16, else fp32; evaluate: auto = the fastest the "
        "artifact allows]",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def train_parser(prog: str = "sentiment-train") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
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
        dest="chat_data_dir",
        metavar="CHAT_DATA",
        help="GoEmotions folder with train.tsv, dev.tsv, emotions.txt and sentiment_dict.json "
        "[SENTIMENT_CHAT_DATA_DIR; default data/goemotions, downloaded when missing]",
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
    parser.add_argument(
        "--phrases",
        dest="phrases_file",
        metavar="PHRASES",
        help="GLUE SST-2 phrase file train.tsv [SENTIMENT_PHRASES_FILE]",
    )
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
        type=_positive_int,
        help="tokens kept per text [SENTIMENT_MAX_LENGTH; default: the model's]",
    )
    parser.add_argument(
        "--chat-set",
        type=Path,
        help="hand-labelled chat messages to report on too (default: the committed chat set, "
        "model/training/chat_eval.tsv)",
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
        "--epochs", type=_positive_int, default=defaults.epochs, help="default %(default)s"
    )
    tune.add_argument(
        "--learning-rate",
        type=_c_value,
        default=defaults.learning_rate,
        help="AdamW learning rate (default %(default)s)",
    )
    tune.add_argument(
        "--lora-rank", type=_positive_int, default=defaults.rank, help="default %(default)s"
    )
    tune.add_argument(
        "--lora-alpha", type=_positive_int, default=defaults.alpha, help="default %(default)s"
    )
    tune.add_argument(
        "--finetune-batch-size",
        type=_positive_int,
        default=defaults.batch_size,
        help="rows per training step (default %(default)s)",
    )
    tune.add_argument(
        "--max-steps", type=_positive_int, help="stop fine-tuning after N steps (trials)"
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
        "--serve-paths",
        type=_serve_paths,
        default=(),
        metavar="PATHS",
        help="other numeric paths the bot may serve this classifier on, comma-separated (e.g. "
        "fp32,bf16): each is checked on dev against the fitted path and recorded as allowed only "
        "within 0.3 points on SST-2 dev and 0.5 on chat dev; `auto` then picks the fastest",
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
    fixes = parser.add_argument_group(
        'the bot\'s corrections ("I meant ..." and moderators\' "Correct sentiment")'
    )
    fixes.add_argument(
        "--corrections",
        type=Path,
        metavar="FILE",
        help="the bot's corrections that kept their text, as exported by sentiment-history "
        "--corrections --export FILE: added to training; a share is held out, and the report "
        "shows the accuracy on those before (the same training without corrections) and after",
    )
    fixes.add_argument(
        "--corrections-held-out",
        type=_share,
        metavar="SHARE",
        help=f"share of the corrections held out for the report (default {DEFAULT_HELD_OUT})",
    )
    fixes.add_argument(
        "--corrections-weight",
        type=_c_value,
        metavar="WEIGHT",
        help="how many ordinary training rows one correction counts as (default "
        f"{DEFAULT_WEIGHT:g})",
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
    return parser


def evaluate_parser(prog: str = "sentiment-evaluate") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Evaluate a classifier artifact on a labelled file (TSV or CSV) or an SST-2 "
        "split and print the report.",
    )
    parser.add_argument(
        "--artifact",
        help="artifact to evaluate [SENTIMENT_ARTIFACT, the bundled default]",
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
        dest="chat_data_dir",
        metavar="CHAT_DATA",
        help="GoEmotions folder for --chat-dev [SENTIMENT_CHAT_DATA_DIR; default data/goemotions]",
    )
    parser.add_argument("--report", type=Path, help="also write the report as JSON here")
    parser.add_argument("--plot", type=Path, help="also draw the reliability diagram (PNG) here")
    _add_runtime_options(parser)
    return parser
