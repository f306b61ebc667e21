#!/usr/bin/env python3
"""How to treat GoEmotions' ambiguous and mixed comments, and how much weight the chat rows
get: the three-way classifier refitted for each choice on one encoder's embeddings (from the
embedding cache that sentiment-train fills), every one scored on the same dev rows.

    python scripts/chat_choices.py --artifact model/artifacts/default.safetensors
    python scripts/chat_choices.py --C 0.1 --limit 2000 \\
        --artifact model/artifacts/default.safetensors

Each choice is judged on three dev sets that do not depend on it: SST-2 dev (positive against
negative), GoEmotions dev "clean" (comments whose emotions all fall in one group: positive,
negative or neutral) and GoEmotions dev mapped the default way (ambiguous -> neutral, one polar
group among ambiguous or neutral labels -> that mood). Only dev splits: the choice is made here,
the test sets are never read. The encoder stays the artifact's: a fine-tuned encoder was tuned
with the default choices, so this measures the classifier's choice on it, not the tuning's.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from model.serving.classifier import SentimentClassifier
from model.settings import ModelSettings
from model.training.cache import EmbeddingCache
from model.training.data import (
    AMBIGUOUS_CHOICES,
    MIXED_CHOICES,
    ChatMapping,
    Dataset,
    find_chat_files,
    find_split,
    load_goemotions,
    load_labelled,
    load_training_data,
    row_weights,
)
from model.training.train import TrainOptions, embed, fit_three_way


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", required=True, help="whose encoder embeds the rows")
    parser.add_argument("--data-dir", help="SST-2 folder [SENTIMENT_DATA_DIR]")
    parser.add_argument(
        "--chat-data",
        dest="chat_data_dir",
        metavar="CHAT_DATA",
        help="GoEmotions folder [SENTIMENT_CHAT_DATA_DIR]",
    )
    parser.add_argument("--C", type=float, nargs="+", default=[0.1], help="C grid (default 0.1)")
    parser.add_argument("--limit", type=int, help="first N rows of each part (smoke test)")
    parser.add_argument("--ambiguous", nargs="+", choices=AMBIGUOUS_CHOICES,
                        default=list(AMBIGUOUS_CHOICES), help="choices to try (all)")  # fmt: skip
    parser.add_argument("--mixed", nargs="+", choices=MIXED_CHOICES, default=list(MIXED_CHOICES),
                        help="mixed choices to try (all)")  # fmt: skip
    parser.add_argument("--balance", choices=("no", "yes", "both"), default="both",
                        help="balance the moods in each source: no, yes, or both")  # fmt: skip
    parser.add_argument("--shares", type=float, nargs="+", default=[0.5],
                        help="chat shares of the training weight to try (default 0.5)")  # fmt: skip
    args = parser.parse_args()

    classifier = SentimentClassifier.load(args.artifact, language_gate=False)
    encoder = classifier.encoder
    settings = ModelSettings.from_env(
        flags={"data_dir": args.data_dir, "chat_data_dir": args.chat_data_dir}
    )
    cache = EmbeddingCache(settings.embedding_cache_dir, encoder.cache_key, encoder.dim)
    data_dir = settings.data_dir
    folder = find_chat_files(settings.chat_data_dir)
    sst = load_training_data("both", data_dir, phrases=settings.phrases_file).head(args.limit)
    sst = sst.as_three_way().named("sst2")
    sst_dev = load_labelled(find_split("dev", data_dir))
    dev_default, _ = load_goemotions("dev", folder, ChatMapping())
    dev_clean, _ = load_goemotions("dev", folder, ChatMapping("drop", "drop"))

    def x_of(data: Dataset, name: str) -> np.ndarray:
        return embed(encoder, data, cache, progress=True, desc=f"Embedding {name}")

    x_sst_dev = x_of(sst_dev, "SST-2 dev")
    x_dev_default, x_dev_clean = x_of(dev_default, "dev"), x_of(dev_clean, "dev (clean)")

    def scores(coef: np.ndarray, intercept: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        z = x_sst_dev.astype(np.float64) @ coef.T + intercept
        out["sst2_dev"] = float(((z[:, 2] >= z[:, 0]).astype(int) == sst_dev.labels).mean())
        for name, x, d in (
            ("clean", x_dev_clean, dev_clean),
            ("default", x_dev_default, dev_default),
        ):
            pred = (x.astype(np.float64) @ coef.T + intercept).argmax(axis=1)
            out[f"{name}_acc"] = float((pred == d.labels).mean())
            out[f"{name}_macro"] = float(
                np.mean([(pred[d.labels == k] == k).mean() for k in range(3)])
            )
        return out

    choices = [
        ChatMapping(ambiguous, mixed) for ambiguous in args.ambiguous for mixed in args.mixed
    ]
    print(
        f"{'ambiguous':<10} {'mixed':<6} {'share':>5} {'balanced':>8} {'C':>6} {'rows':>7} | "
        f"{'SST-2 dev':>9} | "
        f"{'clean acc':>9} {'macro':>6} | {'default acc':>11} {'macro':>6} | {'fit s':>5}"
    )
    for mapping in choices:
        chat, _ = load_goemotions("train", folder, mapping)
        train = Dataset.concat([sst, chat.head(args.limit).named("chat")])
        x_train = x_of(train, "train")
        balances = {"no": [False], "yes": [True], "both": [False, True]}[args.balance]
        for share, balance in [(s, b) for s in args.shares for b in balances]:
            weights = row_weights(
                train, {"sst2": 1 - share, "chat": share}, balance_classes=balance
            )
            assert weights is not None

            def score(coef: np.ndarray, intercept: np.ndarray) -> float:
                s = scores(coef, intercept)
                return (s["sst2_dev"] + s["default_acc"] + s["default_macro"]) / 3

            t0 = time.perf_counter()
            coef, intercept, c, _ = fit_three_way(
                x_train,
                train,
                weights,
                score,
                TrainOptions(c_grid=tuple(args.C)),
                log=lambda _: None,
            )
            s = scores(coef, intercept)
            print(
                f"{mapping.ambiguous:<10} {mapping.mixed:<6} {share:>5g} "
                f"{'yes' if balance else 'no':>8} {c:>6g} {len(train):>7} | "
                f"{s['sst2_dev']:>9.2%} | {s['clean_acc']:>9.2%} {s['clean_macro']:>6.1%} | "
                f"{s['default_acc']:>11.2%} {s['default_macro']:>6.1%} | "
                f"{time.perf_counter() - t0:>5.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
