#!/usr/bin/env python3
"""Time to ready and memory at rest of a serving process, measured as whole processes.

Each run starts a fresh Python process that imports the bot (``bot.app``, with everything the
bot imports), loads the classifier as the bot does (SENTIMENT_* settings; the artifact's
``auto`` path unless --precision), answers one text, and reports: seconds from the process's
start to that answer, its peak RSS, and whether torch was imported. The first run may build the
int8 serving cache (reported apart); the figures are the median of --runs runs after it.

    python scripts/ready.py                      # the committed default, 5 runs
    python scripts/ready.py --precision fp32     # the torch path, for comparison
    python scripts/ready.py --artifact A --serving-cache /tmp/cache --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
started = float(sys.argv[1])
import bot.app  # noqa: F401  (everything the bot imports)
from model import SentimentClassifier
from model.settings import ClassifierSettings
settings = ClassifierSettings.from_env()
classifier = SentimentClassifier.load(
    settings.artifact, batch_size=settings.encoder_batch_size, threads=settings.torch_threads,
    precision=sys.argv[2] or settings.precision, serving_cache=settings.serving_cache,
)
prediction = classifier.predict("honestly the new update is pretty good")
ready = time.time() - started
print(json.dumps({
    "ready_s": ready,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "path": classifier.encoder.spec.precision,
    "torch": "torch" in sys.modules,
    "mood": prediction.mood,
}))
"""


def run_once(precision: str, env: dict[str, str]) -> dict[str, object]:
    started = time.time()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, repr(started), precision],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"error: the serving process failed:\n{out.stderr[-3000:]}")
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs (median), default 5")
    parser.add_argument("--artifact", help="artifact to serve [SENTIMENT_ARTIFACT]")
    parser.add_argument("--precision", default="", help="force a path [SENTIMENT_PRECISION]")
    parser.add_argument("--serving-cache", help="serving cache folder [SENTIMENT_SERVING_CACHE]")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if args.artifact:
        env["SENTIMENT_ARTIFACT"] = args.artifact
    if args.serving_cache:
        env["SENTIMENT_SERVING_CACHE"] = args.serving_cache

    from model.serving.machine import machine

    print(f"machine: {machine().describe()}")
    first = run_once(args.precision, env)
    print(
        f"first start (may build the serving cache): {first['ready_s']:.2f} s, "
        f"peak RSS {first['peak_rss_mib']:.0f} MiB, path {first['path']}"
    )
    runs = [run_once(args.precision, env) for _ in range(args.runs)]
    ready = [float(r["ready_s"]) for r in runs]  # type: ignore[arg-type]
    rss = [float(r["peak_rss_mib"]) for r in runs]  # type: ignore[arg-type]
    print(
        f"later starts ({args.runs} runs): ready in {statistics.median(ready):.2f} s "
        f"(min {min(ready):.2f}, max {max(ready):.2f}), peak RSS {statistics.median(rss):.0f} MiB, "
        f"path {runs[0]['path']}, torch imported: {'yes' if runs[0]['torch'] else 'no'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
