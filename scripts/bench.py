#!/usr/bin/env python3
"""Benchmark: how fast, and how accurate, each way of embedding SST-2 with the same encoder is.

Paths, all with the bundled all-MiniLM-L6-v2 (mean pooling, L2-normalised):

  a  one-at-a-time   each sentence alone through transformers (fp32): what one chat message costs
  b  tutorial        the whole set padded to its longest sentence, large batches (fp32)
  c  st              sentence_transformers.SentenceTransformer(...).encode(batch_size=64)
  d  ours            model.Encoder, torch's auto path (bf16 where the CPU has it natively):
                     one tokeniser call, length-sorted batches of 64, padded per batch
  e  ours-fp32       model.Encoder forced to fp32, for reference
  f  ours-int8       the int8 serving path (model/serving/int8.py): ONNX Runtime, every Linear
                     layer in 8 bits with per-row activation scales, loaded from a serving cache
                     built once (not timed), as the bot serves it

With --artifact, every path runs that artifact's encoder instead: for a fine-tuned artifact,
its base with the LoRA adapter merged in (what the bot serves), saved once to a temporary folder
that all paths load, so the figures compare like with like and show what fine-tuning costs at
serving time (nothing: the merged model has the base's architecture).

For each: sentences/s on the 1,821 SST-2 test sentences (median of --runs after a warm-up),
SST-2 test accuracy of a logistic regression re-fitted on that path's own embeddings (C chosen
on dev), the ratio to (c), single-message latency p50/p99, and the peak RSS of a process that
runs only that path. Each path runs in its own subprocess so memory figures do not mix.

On a shared or noisy machine, --rounds R times the paths R times, side by side: after the
full run of every path, R-1 more rounds each start every path afresh, in turn, for its timed
runs alone. A path's sentences/s is then the median over the rounds, and "vs (c)" the median of
the rounds' own ratios (each round's paths ran minutes apart, not hours), with their range.

    python scripts/bench.py                 # all paths, prints a table (about 6 minutes, 2 cores)
    python scripts/bench.py --quick         # fewer training rows and runs, for a smoke test
    python scripts/bench.py --json bench.json
    python scripts/bench.py --artifact model/artifacts/default.safetensors --paths de  # tuned
    python scripts/bench.py --artifact model/artifacts/default.safetensors --paths cef --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model.settings import ModelSettings
from model.training.data import DEFAULT_DATA_DIR

PATHS = {
    "a": "one-at-a-time (transformers, fp32)",
    "b": "tutorial: pad to longest, batches of 256 (fp32)",
    "c": "sentence-transformers encode(batch_size=64)",
    "d": "ours, torch auto (bf16 if native)",
    "e": "ours, fp32",
    "f": "ours, int8 (ONNX Runtime)",
}
Embed = Callable[[Sequence[str]], np.ndarray]


def machine_line() -> str:
    """The CPU, the cores this process may use, and the instruction sets the paths use."""
    from model.serving.machine import machine

    return f"machine: {machine().describe()}"


def data_dir(flag: str | None) -> Path:
    """SST-2 where the model commands look: the flag, else SENTIMENT_DATA_DIR, else data/sst2."""
    return Path(flag) if flag else (ModelSettings.from_env().data_dir or DEFAULT_DATA_DIR)


# --------------------------------------------------------------------------------------------
# One path, inside its own process


def build(path: str, threads: int | None, model_dir: str | None) -> tuple[Embed, str]:
    """The embedding function of a path, and a note on what it ran on. ``model_dir``: a merged
    artifact encoder (see ``merged_model_dir``) instead of the bundled one."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from model.serving.encoder import BUNDLED_ENCODER, Encoder, resolve_source

    if threads:
        torch.set_num_threads(threads)
    source = model_dir or resolve_source(BUNDLED_ENCODER)

    if path in ("d", "e"):
        encoder = Encoder(source, precision="auto" if path == "d" else "fp32")
        return encoder.encode, encoder.spec.precision

    if path == "f":
        # as served: the int8 model and tokenizer built once into a folder, then loaded alone
        import tempfile

        from model.serving.serving_cache import Int8Encoder

        built = Encoder(source, precision="fp32")
        folder = Path(tempfile.mkdtemp(prefix="bench-int8-"))
        meta = built.export_int8(folder)
        meta["fingerprint"] = built.fingerprint
        spec = built.spec
        del built
        int8 = Int8Encoder(folder, spec, meta, batch_size=64, threads=threads)
        return int8.encode, "int8"

    if path == "c":
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(source, device="cpu")
        return (
            lambda texts: st.encode(list(texts), batch_size=64, convert_to_numpy=True),
            "fp32",
        )

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source).eval()

    def pool(hidden: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=1).numpy()

    if path == "a":

        def one_at_a_time(texts: Sequence[str]) -> np.ndarray:
            rows = []
            with torch.inference_mode():
                for text in texts:
                    enc = tokenizer([text], truncation=True, max_length=256, return_tensors="pt")
                    rows.append(pool(model(**enc).last_hidden_state, enc["attention_mask"]))
            return np.concatenate(rows)

        return one_at_a_time, "fp32"

    def tutorial(texts: Sequence[str]) -> np.ndarray:
        # As in the tutorial's notebook: pad every sentence to the longest one in the set.
        enc = tokenizer(
            list(texts), truncation=True, max_length=256, padding="longest", return_tensors="pt"
        )
        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), 256):
                ids = enc["input_ids"][start : start + 256]
                mask = enc["attention_mask"][start : start + 256]
                rows.append(pool(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask))
        return np.concatenate(rows)

    return tutorial, "fp32"


def worker(path: str, args: argparse.Namespace) -> dict[str, Any]:
    from model.training.data import load_labelled
    from model.training.train import TrainOptions, fit_logistic

    folder = data_dir(args.data_dir)
    train = load_labelled(folder / "train.tsv").head(args.train_rows)
    dev = load_labelled(folder / "dev.tsv")
    test = load_labelled(folder / "test.tsv")
    embed, precision = build(path, args.threads, args.model_dir)

    embed(test.texts[:64])  # warm-up
    runs = []
    for _ in range(args.runs):
        start = time.perf_counter()
        x_test = embed(test.texts)
        runs.append(time.perf_counter() - start)
    seconds = statistics.median(runs)
    if args.speed_only:  # a later round of --rounds: the timing alone
        return {"path": path, "sentences_per_s": len(test) / seconds, "runs_s": runs}

    latencies, alone = [], []
    for text in test.texts[: args.latency_messages]:
        start = time.perf_counter()
        alone.append(embed([text])[0])
        latencies.append(time.perf_counter() - start)
    # the same texts alone and inside the length-sorted batches of the timed runs
    together = x_test[: len(alone)]
    cosines = (np.stack(alone) * together).sum(1) / (
        np.linalg.norm(alone, axis=1) * np.linalg.norm(together, axis=1)
    )

    x_train, x_dev = embed(train.texts), embed(dev.texts)
    coef, intercept, c, _ = fit_logistic(
        x_train, train.labels, x_dev, dev.labels, TrainOptions(), log=lambda _: None
    )
    accuracy = float((((x_test @ coef + intercept) >= 0).astype(int) == test.labels).mean())
    return {
        "path": path,
        "name": PATHS[path],
        "precision": precision,
        "sentences_per_s": len(test) / seconds,
        "runs_s": runs,
        "test_accuracy": accuracy,
        "C": c,
        "train_rows": len(train),
        "alone_vs_batched_min_cosine": float(cosines.min()),
        "latency_p50_ms": float(np.percentile(latencies, 50) * 1000),
        "latency_p99_ms": float(np.percentile(latencies, 99) * 1000),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "embeddings_sample": x_test[:200].astype(float).tolist(),
    }


# --------------------------------------------------------------------------------------------
# The driver


def merged_model_dir(artifact_path: Path, folder: Path) -> str:
    """The artifact's encoder (adapter merged) saved as a plain sentence-transformers folder."""
    import shutil

    from model.serving.artifact import load_artifact
    from model.serving.encoder import Encoder, resolve_source

    spec = load_artifact(artifact_path).encoder
    if spec.pooling != "mean" or not spec.normalize:
        raise SystemExit(
            f"error: {artifact_path} uses {spec.pooling} pooling; the benchmark's paths pool "
            "like all-MiniLM-L6-v2 (mean, L2-normalised)"
        )
    encoder = Encoder.from_spec(spec, precision="fp32")
    encoder.model.save_pretrained(folder)
    encoder.tokenizer.save_pretrained(folder)
    base = Path(resolve_source(spec.name))
    for extra in ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"):
        if (base / extra).is_file():
            shutil.copy(base / extra, folder / extra)
    for sub in base.iterdir():
        if sub.is_dir() and sub.name[0].isdigit():  # 1_Pooling, 2_Normalize
            shutil.copytree(sub, folder / sub.name, dirs_exist_ok=True)
    return str(folder)


def run_path(path: str, argv: list[str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        target = Path(out.name)
    try:
        cmd = [sys.executable, __file__, "--worker", path, "--worker-out", str(target), *argv]
        subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        result: dict[str, Any] = json.loads(target.read_text())
        return result
    finally:
        target.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--paths", default="abcdef", help="which paths (default abcdef)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per path (median)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--train-rows", type=int, help="SST-2 training rows for the LR refit")
    parser.add_argument("--latency-messages", type=int, default=200)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="time the paths this many times, side by side (see above; default 1)",
    )
    parser.add_argument("--data-dir", help="SST-2 folder [SENTIMENT_DATA_DIR]")
    parser.add_argument("--quick", action="store_true", help="1,000 training rows, 2 runs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--artifact",
        type=Path,
        help="run every path on this artifact's encoder (a fine-tuned one with its adapter "
        "merged) instead of the bundled all-MiniLM-L6-v2",
    )
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=sorted(PATHS), help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--speed-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.train_rows = 2, args.train_rows or 1000
    if args.rounds < 1 or args.runs < 1:
        parser.error("--rounds and --runs must be at least 1")
    if args.worker:
        args.worker_out.write_text(json.dumps(worker(args.worker, args)))
        return 0
    if not (data_dir(args.data_dir) / "test.tsv").is_file():
        print(
            f"error: SST-2 not found in {data_dir(args.data_dir)}; pass --data-dir or set "
            "SENTIMENT_DATA_DIR",
            file=sys.stderr,
        )
        return 2

    passthrough = ["--runs", str(args.runs), "--latency-messages", str(args.latency_messages)]
    for flag, value in (
        ("--threads", args.threads),
        ("--train-rows", args.train_rows),
        ("--data-dir", args.data_dir),
    ):
        if value is not None:
            passthrough += [flag, str(value)]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        if args.artifact is not None:
            passthrough += ["--model-dir", merged_model_dir(args.artifact, Path(tmp))]
        for path in args.paths:
            print(f"running {path}: {PATHS[path]} ...", file=sys.stderr, flush=True)
            results[path] = run_path(path, passthrough)
        for round_ in range(2, args.rounds + 1):
            for path in args.paths:
                print(f"round {round_}/{args.rounds}: {path} ...", file=sys.stderr, flush=True)
                again = run_path(path, [*passthrough, "--speed-only"])
                results[path].setdefault("rounds_sentences_per_s", []).append(
                    again["sentences_per_s"]
                )
    rounds = {
        path: [r["sentences_per_s"], *r.get("rounds_sentences_per_s", [])]
        for path, r in results.items()
    }
    for path, r in results.items():
        r["rounds_sentences_per_s"] = rounds[path]
        r["sentences_per_s"] = statistics.median(rounds[path])

    base = results.get("c")
    fp32 = np.asarray(results["e"]["embeddings_sample"]) if "e" in results else None
    print()
    print(
        f"SST-2 test, {len(np.asarray(next(iter(results.values()))['embeddings_sample']))}-row "
        f"embedding sample; LR refit on {next(iter(results.values()))['train_rows']} training "
        f"rows; {os.cpu_count()} CPUs, torch threads {args.threads or 'default'}; encoder "
        f"{args.artifact or 'bundled all-MiniLM-L6-v2'}"
    )
    print(machine_line())
    header = (
        f"{'path':<50} {'sent/s':>8} {'vs (c)':>7} {'test acc':>9} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'RSS MiB':>8} {'min cos':>8} {'alone':>9}"
        + (f" {'vs (c), rounds':>16}" if args.rounds > 1 else "")
    )
    print(header)
    print("-" * len(header))
    for path, r in results.items():
        ratios = (
            [mine / theirs for mine, theirs in zip(rounds[path], rounds["c"], strict=True)]
            if base
            else [float("nan")]
        )
        ratio = statistics.median(ratios)
        spread = f" {min(ratios):>7.2f}-{max(ratios):.2f}x" if args.rounds > 1 else ""
        cos = float("nan")
        if fp32 is not None:
            x = np.asarray(r["embeddings_sample"])
            cos = float(
                np.min((x * fp32).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(fp32, axis=1))
            )
        r["ratio_to_c"], r["min_cosine_to_fp32"] = ratio, cos
        r["rounds_ratio_to_c"] = ratios
        name = f"({path}) {r['name']}" + (f" [{r['precision']}]" if path == "d" else "")
        print(
            f"{name:<50} {r['sentences_per_s']:>8.0f} {ratio:>6.2f}x {r['test_accuracy']:>8.2%} "
            f"{r['latency_p50_ms']:>7.1f} {r['latency_p99_ms']:>7.1f} {r['peak_rss_mib']:>8.0f} "
            f"{cos:>8.5f} {r['alone_vs_batched_min_cosine']:>9.6f}{spread}"
        )
    if args.rounds > 1:
        print(
            f"sent/s: median of {args.rounds} rounds; vs (c): median of the rounds' own ratios, "
            "and their range"
        )
    if args.json:
        for r in results.values():
            r.pop("embeddings_sample", None)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
