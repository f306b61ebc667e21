"""Which numeric path serves an artifact: the one asked for, or (``auto``) the fastest of those
the artifact allows, measured once on this machine and remembered.

``auto`` (SENTIMENT_PRECISION unset or ``auto``) never serves a path the artifact was not
validated for (:attr:`Artifact.allowed_paths`), nor bf16 on a CPU that would emulate it. With
one candidate left it serves that one; with several it times each on the same few batches of
chat-like text, serves the fastest (so never one slower than fp32 when fp32 is allowed) and
writes the figures to ``choice-<artifact>-<machine>.json`` in the serving cache, so later starts
load only the chosen path. A forced path (``fp32``, ``bf16``, ``int8``) is served as asked; one
the artifact was not fitted on is warned about.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from model.serving.artifact import Artifact
from model.serving.machine import machine
from model.serving.serving_cache import ServingCache, file_digest
from model.serving.spec import PRECISIONS, EncoderError, Precision

log = logging.getLogger(__name__)

# What the timing runs on: chat of every length the bot meets, as a burst of 256 texts (the
# bot's largest batch by default, SENTIMENT_MAX_BATCH): several encoder batches, which the int8
# path runs side by side.
_SAMPLE = [
    "lol",
    "gg wp",
    "ty!! that helped a lot",
    "anyone up for a game tonight?",
    "I can't believe they cancelled the show, this is so disappointing",
    "the meeting moved to 3pm, check the calendar",
    "honestly the new update is pretty good, the menus are way faster now",
    "nope",
    "this is the worst customer service I have ever had, waited two hours for nothing",
    "does anyone know how to fix the login error on the beta build?",
    "congrats on the new job!! so happy for you",
    "meh",
    "I think we should try the other approach first and see whether it scales before we "
    "rewrite everything, because last time the rewrite took three weeks and broke the exports",
    "brb",
    "that movie was a beautiful, moving, quietly devastating piece of work",
    "ok",
]
SAMPLE_BATCH = _SAMPLE * 16
TIMING_ROUNDS = 3


def machine_key() -> str:
    """What makes timings differ between machines: CPU model, its flags, the cores this process
    may use, and the engines' versions."""
    here = machine()
    versions = []
    for dist in ("torch", "onnxruntime"):
        try:
            versions.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist}=none")
    flags = ",".join(sorted(here.flags or ()))
    text = f"{here.cpu}|{flags}|{here.cores}|{'|'.join(versions)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX), read from /proc/cpuinfo
    without importing torch; where there is no /proc/cpuinfo, torch's own probe."""
    here = machine()
    if here.flags is not None:
        return bool(here.has("avx512_bf16") or here.has("amx_bf16"))
    from model.serving.encoder import cpu_has_native_bf16

    return cpu_has_native_bf16()


def throughput(encoder: Any) -> float:
    """Texts a second on :data:`SAMPLE_BATCH` (median of a few rounds, after a warm-up)."""
    ids = encoder.tokenize(SAMPLE_BATCH)
    encoder.encode_ids(ids)
    runs = []
    for _ in range(TIMING_ROUNDS):
        started = time.perf_counter()
        encoder.encode_ids(ids)
        runs.append(time.perf_counter() - started)
    return len(ids) / statistics.median(runs)


def candidates(artifact: Artifact, native_bf16: Callable[[], bool]) -> list[Precision]:
    """The paths ``auto`` may choose among: those the artifact allows, without an emulated
    bf16 (unless nothing else is allowed)."""
    allowed = list(artifact.allowed_paths)
    kept = [p for p in allowed if p != "bf16" or native_bf16()]
    return kept or allowed


def choose(
    artifact: Artifact,
    artifact_path: Path,
    requested: str | None,
    *,
    open_path: Callable[[Precision], Any],
    cache: ServingCache,
    native_bf16: Callable[[], bool],
) -> Any:
    """The encoder to serve ``artifact`` with (see the module's docstring)."""
    fitted = artifact.encoder.precision
    if requested not in (None, "auto"):
        if requested not in PRECISIONS:
            raise EncoderError(
                f"unknown precision {requested!r}: use one of auto, {', '.join(PRECISIONS)}."
            )
        path: Precision = requested
        if path not in artifact.allowed_paths:
            log.warning(
                "serving with %s embeddings, but the logistic regression was fitted on %s "
                "embeddings and %s was not validated for it: predictions may shift. Retrain "
                "with sentiment-train --precision %s, or --serve-paths %s.",
                path,
                fitted,
                path,
                path,
                path,
            )
        return open_path(path)
    paths = candidates(artifact, native_bf16)
    if fitted not in paths and fitted == "bf16":
        log.warning(
            "the classifier was fitted on bf16 embeddings, but this CPU has no native bf16 "
            "(it would be emulated, slowly): serving fp32, whose embeddings agree to a "
            "cosine similarity above 0.999"
        )
    if len(paths) == 1:
        return open_path(paths[0])
    record = cache.root / f"choice-{file_digest(artifact_path)[:32]}-{machine_key()}.json"
    remembered = _read_choice(record, paths)
    if remembered is not None:
        log.info(
            "precision auto: serving %s (%s texts/s, measured before: %s)",
            remembered[0],
            _fmt(remembered[1]),
            record,
        )
        return open_path(remembered[0])
    figures: dict[str, float] = {}
    encoders: dict[str, Any] = {}
    for path in paths:
        encoders[path] = open_path(path)
        figures[path] = throughput(encoders[path])
    chosen = max(paths, key=lambda p: figures[p])
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(
            json.dumps({"chosen": chosen, "texts_per_s": figures, "machine": machine().describe()})
            + "\n",
            encoding="utf-8",
        )
        where = f"remembered in {record}"
    except OSError as exc:
        where = f"not remembered: {exc.strerror or exc}; set SENTIMENT_SERVING_CACHE"
    log.info(
        "precision auto: serving %s, the fastest here (%s texts/s on %d chat texts; %s)",
        chosen,
        _fmt(figures),
        len(SAMPLE_BATCH),
        where,
    )
    return encoders[chosen]


def _read_choice(record: Path, paths: list[Precision]) -> tuple[Precision, dict[str, float]] | None:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        chosen, figures = data["chosen"], data["texts_per_s"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if chosen not in paths or not isinstance(figures, dict):
        return None  # the artifact's allowed paths changed: measure again
    return chosen, {str(k): float(v) for k, v in figures.items()}


def _fmt(figures: dict[str, float]) -> str:
    return ", ".join(f"{path} {value:.0f}" for path, value in figures.items())
