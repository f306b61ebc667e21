#!/usr/bin/env python3
"""Benchmark: what "Why" (model/serving/explain.py) adds to a /sentiment answer, by message length.

For SST-2 dev sentences (real sentences, 2 to 50+ words) and for synthetic long messages, it
times, one message at a time as /sentiment runs them: the prediction alone
(``classifier.predict``) and the explanation (``explain``: the text with each of up to
MAX_WORDS words left out, one batched encoder call). It prints p50 / p95 milliseconds per
bucket of distinct words, and the explanation's share of the answer's model time.

    python scripts/bench_explain.py                  # 120 dev sentences + 10 long messages
    python scripts/bench_explain.py --messages 40    # quicker
    python scripts/bench_explain.py --json why.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model import SentimentClassifier, explain  # noqa: E402
from model.serving.explain import MAX_WORDS, words  # noqa: E402
from model.training.data import DataError, find_split, load_labelled  # noqa: E402

BUCKETS = ((1, 10), (11, 20), (21, MAX_WORDS), (MAX_WORDS + 1, 10_000))


def ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=120, help="SST-2 dev sentences timed")
    parser.add_argument("--data-dir", help="SST-2 folder [SENTIMENT_DATA_DIR]")
    parser.add_argument("--artifact", help="artifact to explain (default: the bundled one)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or os.environ.get("SENTIMENT_DATA_DIR")
    try:
        dev = load_labelled(find_split("dev", Path(data_dir) if data_dir else None)).texts
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    texts = dev[: args.messages] + [" ".join(dev[i : i + 6]) for i in range(0, 60, 6)]
    classifier = SentimentClassifier.load(args.artifact, threads=args.threads)
    explain(classifier, "warm up the encoder please")
    rows = []
    for text in texts:
        started = time.perf_counter()
        prediction = classifier.predict(text)
        predicted = time.perf_counter()
        explain(classifier, text, prediction=prediction)
        rows.append((len(words(text)), predicted - started, time.perf_counter() - predicted))
    report = []
    print(f"{'distinct words':>15} {'n':>4} {'predict p50/p95 ms':>20} {'explain p50/p95 ms':>20}")
    for low, high in BUCKETS:
        inside = [r for r in rows if low <= r[0] <= high]
        if not inside:
            continue
        predict, why = [r[1] for r in inside], [r[2] for r in inside]
        name = f"{low}-{high}" if high < 10_000 else f">{MAX_WORDS} (capped)"
        line = {
            "words": name,
            "n": len(inside),
            "predict_ms": (ms(predict, 0.5), ms(predict, 0.95)),
            "explain_ms": (ms(why, 0.5), ms(why, 0.95)),
        }
        report.append(line)
        shown = [f"{ms(s, 0.5)} / {ms(s, 0.95)}" for s in (predict, why)]
        print(f"{name:>15} {len(inside):>4} {shown[0]:>20} {shown[1]:>20}")
    share = statistics.fmean(r[2] / (r[1] + r[2]) for r in rows)
    print(f"the explanation's share of the answer's model time: {share:.0%} on average")
    if args.json:
        args.json.write_text(json.dumps({"buckets": report, "share": share}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
