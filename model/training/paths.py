"""Which other numeric paths may serve a freshly fitted classifier (``sentiment train
--serve-paths``): each is checked on the dev splits against the path the classifier was fitted
on, and kept only within the accuracy budget of issue 14 (at most 0.3 points lost on SST-2 dev,
0.5 on chat dev accuracy and on chat dev macro recall). What it lost is recorded either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from model.serving.artifact import Artifact
from model.serving.classifier import positive_vs_negative
from model.serving.spec import Precision, TextEncoder
from model.training.data import Dataset
from model.training.metrics import mood_stats

# The most each measure may drop (in points) for a path to be allowed.
BUDGET = {"sst2_dev_accuracy": 0.3, "chat_dev_accuracy": 0.5, "chat_dev_macro_recall": 0.5}


def dev_scores(
    artifact: Artifact, embed: Callable[[Dataset], NDArray[np.float32]], sets: Mapping[str, Dataset]
) -> dict[str, float]:
    """SST-2 dev accuracy (positive against negative) and, with chat dev, its three-way
    accuracy and macro recall, in points, of ``artifact`` on the embeddings ``embed`` gives."""
    scores: dict[str, float] = {}
    sst2 = sets["sst2_dev"]
    probs = artifact.class_probabilities(embed(sst2))
    p_positive = positive_vs_negative(artifact.labels, probs)
    scores["sst2_dev_accuracy"] = 100 * float(((p_positive >= 0.5) == (sst2.labels == 1)).mean())
    if "chat_dev" in sets:
        chat = sets["chat_dev"]
        stats = mood_stats(chat.labels, artifact.class_probabilities(embed(chat)).argmax(axis=1))
        scores["chat_dev_accuracy"] = 100 * stats["accuracy"]
        scores["chat_dev_macro_recall"] = 100 * stats["macro_recall"]
    return scores


def validate_paths(
    artifact: Artifact,
    fitted: TextEncoder,
    others: Mapping[Precision, Callable[[], TextEncoder]],
    sets: Mapping[str, Dataset],
    embed: Callable[[TextEncoder, Dataset], NDArray[np.float32]],
    log: Callable[[str], None] = print,
) -> tuple[Artifact, dict[str, Any]]:
    """``artifact`` with ``serving_paths`` set to the paths of ``others`` within
    :data:`BUDGET` of ``fitted`` on ``sets``, and a report of every path's scores."""
    base = dev_scores(artifact, lambda data: embed(fitted, data), sets)
    report: dict[str, Any] = {fitted.spec.precision: {"scores": base, "allowed": True}}
    allowed: list[Precision] = []
    for path, make in others.items():
        encoder = make()
        scores = dev_scores(artifact, partial(embed, encoder), sets)
        lost = {k: round(base[k] - scores[k], 3) for k in scores}
        ok = all(lost[k] <= BUDGET[k] for k in lost)
        report[path] = {"scores": scores, "lost": lost, "allowed": ok}
        if ok:
            allowed.append(path)
        figures = ", ".join(f"{k} {scores[k]:.2f} ({-lost[k]:+.2f})" for k in scores)
        log(f"serving path {path}: {figures} -> {'allowed' if ok else 'not allowed'}")
    return replace(artifact, serving_paths=tuple(allowed)), report
