"""The classifier artifact: plain arrays and metadata in a safetensors file, never a pickle.

A scikit-learn upgrade cannot break it: the logistic regression is stored as its coefficients
and intercept (with the standardisation folded in), two float64 arrays; everything else is one
canonical JSON string in the safetensors metadata. Reading it cannot run code, and the sizes the
header declares are checked before any array is read. Loading validates the schema and says
clearly what is wrong with a corrupt, truncated, foreign, oversized or too-new file.

Artifacts written before this format (joblib, i.e. pickle) still load, through an unpickler
that admits only what such an artifact holds (numpy arrays and plain values) and refuses
anything else before it runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import warnings
import zlib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
from numpy.typing import NDArray

from model.serving.spec import POOLINGS, PRECISIONS, EncoderSpec, Precision
from model.serving.textnorm import NORMALIZERS

SCHEMA = "sentiment-bot/classifier"
# 1: binary (a weight vector and one intercept); 2: adds three-way artifacts (a K x D matrix).
SCHEMA_VERSION = 2
LABELS = ("negative", "positive")
THREE_WAY_LABELS = ("negative", "neutral", "positive")
_REQUIRED = (
    "schema",
    "schema_version",
    "encoder",
    "labels",
    "coef",
    "intercept",
    "band",
    "metrics",
    "training",
    "versions",
)
SUFFIX = ".safetensors"
# the safetensors metadata key holding the payload (all but the arrays) as canonical JSON
_PAYLOAD_KEY = "sentiment-bot/classifier"
_ARRAYS = ("coef", "intercept")
# Size bounds, checked before anything is read into memory: far beyond any real classifier
# (the default is 3 x 384 weights and 13 KB of metadata), far below a memory problem.
MAX_CLASSES = 16
MAX_DIM = 16_384
_MAX_HEADER_BYTES = 1 << 20
_MAX_LEGACY_BYTES = 8 << 20  # a legacy file, and its pickle stream once decompressed


class ArtifactError(Exception):
    """The artifact file is missing or unusable. The message names the file and the fix."""


def default_artifact_path() -> Path:
    """The classifier committed with the package (bundled encoder, trained on SST-2)."""
    return Path(str(resources.files("model") / "artifacts" / f"default{SUFFIX}"))


def sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -500.0, 500.0))), dtype=np.float64)


def softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row-wise softmax, stable for any logits."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True), dtype=np.float64)


@dataclass(frozen=True)
class Artifact:
    """A logistic regression on the encoder's embedding, as plain arrays.

    Binary (the tutorial's): ``coef`` is a (dim,) vector and ``intercept`` one number, giving
    P(positive); ``band`` is the neutral band of P(positive) (silent when low < p < high).
    Three-way: ``coef`` is a (K, dim) matrix and ``intercept`` a (K,) vector over ``labels``
    (negative, neutral, positive; a softmax gives the probabilities); ``band`` holds the
    per-class confidence thresholds as (1 - t_negative, t_positive): a positive is voiced when
    P(positive) >= t_positive, a negative when P(negative) >= t_negative.
    """

    encoder: EncoderSpec
    coef: NDArray[np.float64]  # (dim,) or (K, dim): weights on the raw embedding
    intercept: float | NDArray[np.float64]  # a number, or (K,)
    band: tuple[float, float]
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    encoder_fingerprint: str = ""
    labels: tuple[str, ...] = LABELS
    # Numeric paths besides encoder.precision whose embeddings training checked on dev against
    # the path the classifier was fitted on (sentiment train --serve-paths); what `auto` may
    # choose among at serving time (see allowed_paths).
    serving_paths: tuple[Precision, ...] = ()

    @property
    def allowed_paths(self) -> tuple[Precision, ...]:
        """The paths this artifact may be served on: the one it was fitted on, those training
        validated, and for a bf16 artifact fp32 (a CPU without native bf16 falls back to it)."""
        paths: list[Precision] = [self.encoder.precision, *self.serving_paths]
        if self.encoder.precision == "bf16":
            paths.append("fp32")
        return tuple(dict.fromkeys(paths))

    @property
    def three_way(self) -> bool:
        return self.coef.ndim == 2

    def class_probabilities(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        """Rows of probabilities over ``labels``."""
        z = embeddings.astype(np.float64) @ self.coef.T + self.intercept
        if self.three_way:
            return softmax(z)
        p = sigmoid(z)
        return np.stack([1.0 - p, p], axis=1)

    @property
    def version(self) -> str:
        """Short content digest: names the model in logs and in every stored prediction."""
        h = hashlib.sha256()
        # where the adapter lies on this machine is not part of the model; its digest is
        h.update(repr(replace(self.encoder, adapter=None)).encode())
        h.update(np.ascontiguousarray(self.coef, dtype=np.float64).tobytes())
        if self.three_way:
            h.update(np.ascontiguousarray(self.intercept, dtype=np.float64).tobytes())
            h.update(repr((self.labels, self.band)).encode())
        else:  # as binary artifacts were always named
            h.update(repr((float(self.intercept), self.band)).encode())
        return h.hexdigest()[:12]

    def to_payload(self, folder: Path | None = None) -> dict[str, Any]:
        """The payload: plain values, ``coef`` an array; the adapter path is written relative
        to ``folder`` (where the artifact is saved), so the artifact and its adapter folder can
        move together."""
        adapter = self.encoder.adapter
        if adapter is not None and folder is not None:
            adapter = os.path.relpath(Path(adapter).resolve(), folder.resolve())
        intercept: float | list[float] = (
            [float(v) for v in np.ravel(self.intercept)]
            if self.three_way
            else float(self.intercept)
        )
        return {
            "schema": SCHEMA,
            # binary artifacts keep schema 1, so an older bot still loads them
            "schema_version": SCHEMA_VERSION if self.three_way else 1,
            "encoder": {
                "name": self.encoder.name,
                "pooling": self.encoder.pooling,
                "max_length": self.encoder.max_length,
                "normalize": self.encoder.normalize,
                "precision": self.encoder.precision,
                "fingerprint": self.encoder_fingerprint,
                "adapter": adapter,
                "adapter_digest": self.encoder.adapter_digest,
                "text_normalizer": self.encoder.text_normalizer,
                # only when set: artifacts written before it keep their bytes
                **({"serving_paths": list(self.serving_paths)} if self.serving_paths else {}),
            },
            "labels": list(self.labels),
            "coef": np.ascontiguousarray(self.coef, dtype=np.float64),
            "intercept": intercept,
            "band": [float(self.band[0]), float(self.band[1])],
            "metrics": self.metrics,
            "training": self.training,
            "versions": dict(self.versions),
        }


def save_artifact(artifact: Artifact, path: Path) -> None:
    """Write atomically: a crash never leaves a half-written artifact under the final name.

    The file is safetensors whatever its name; a ``.joblib`` name (the old format's) is warned
    about, since the file is no longer joblib."""
    if path.suffix == ".joblib":
        warnings.warn(
            f"{path}: classifier artifacts are safetensors files now; writing that format under "
            f"the .joblib name. Name the output {path.with_suffix(SUFFIX).name} instead.",
            UserWarning,
            stacklevel=2,
        )
    write_payload(artifact.to_payload(path.parent), path)


def write_payload(payload: dict[str, Any], path: Path) -> None:
    """Write a payload (as :meth:`Artifact.to_payload` makes it) atomically as safetensors:
    ``coef`` and ``intercept`` as float64 arrays, the rest as canonical JSON in the metadata.
    The same payload always gives the same bytes."""
    arrays = {
        key: np.array(payload[key], dtype="<f8", order="C") for key in _ARRAYS if key in payload
    }
    rest = {key: value for key, value in payload.items() if key not in _ARRAYS}
    data = safetensors.numpy.save(arrays, metadata={_PAYLOAD_KEY: _canonical_json(rest)})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_artifact(path: Path) -> Artifact:
    """Read and validate an artifact; any problem is an :class:`ArtifactError`."""
    return _from_payload(read_payload(path), path)


def read_payload(path: Path) -> dict[str, Any]:
    """The payload of an artifact file (safetensors, or a legacy joblib file read without
    running code), its sizes checked before its arrays are read; not yet validated."""
    if not path.is_file():
        raise ArtifactError(
            f"classifier artifact {path} not found. Train one with "
            f"`sentiment-train --output {path}`, or unset SENTIMENT_ARTIFACT to use the bundled "
            "default."
        )
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(9)
            declared = int.from_bytes(head[:8], "little")
            if len(head) == 9 and head[8:] == b"{" and declared <= size - 8:
                return _read_safetensors(f, path, size, declared)
            if head[:1] in (b"\x80", b"\x78"):  # a pickle; a zlib stream (joblib's compress=3)
                return _read_legacy(f, path, size)
    except ArtifactError:
        raise
    except Exception as exc:  # json/numpy/pickle/zlib raise many types for a damaged file
        raise _corrupt(path, f"{type(exc).__name__}: {exc}") from None
    raise _corrupt(path, "neither safetensors nor a plain or zlib-compressed joblib file")


def _corrupt(path: Path, problem: str) -> ArtifactError:
    return ArtifactError(
        f"{path} is not a readable classifier artifact: the file is truncated or corrupt "
        f"({problem}). Copy it again or retrain it with sentiment-train."
    )


def _too_large(path: Path, problem: str) -> ArtifactError:
    return ArtifactError(
        f"{path} is refused unread: {problem}, more than any classifier artifact holds (at most "
        f"{MAX_CLASSES} classes x {MAX_DIM:,} weights). It is not a Sentiment Bot artifact or "
        "it is damaged: point SENTIMENT_ARTIFACT / --artifact at a file written by "
        "sentiment-train, or retrain it."
    )


def _foreign(path: Path) -> ArtifactError:
    return ArtifactError(
        f"{path} is not a Sentiment Bot classifier artifact (no '{SCHEMA}' schema tag). "
        "Point SENTIMENT_ARTIFACT / --artifact at a file written by sentiment-train."
    )


def _read_safetensors(f: io.BufferedReader, path: Path, size: int, declared: int) -> dict[str, Any]:
    """Header first (8-byte length, JSON): the declared arrays must be ours, float64, within
    the bounds, and account for the whole file; only then are the arrays read."""
    if declared > _MAX_HEADER_BYTES:
        raise _too_large(path, f"its header is {declared:,} bytes")
    f.seek(8)
    header = json.loads(f.read(declared))
    if not isinstance(header, dict):
        raise _corrupt(path, "the safetensors header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    text = meta.get(_PAYLOAD_KEY) if isinstance(meta, dict) else None
    payload = json.loads(text) if isinstance(text, str) else None
    if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
        raise _foreign(path)
    if any(key in payload for key in _ARRAYS):
        raise _corrupt(path, "the metadata holds 'coef' or 'intercept', which are arrays")
    unknown = sorted(set(header) - set(_ARRAYS))
    if unknown:
        raise _corrupt(path, f"unexpected arrays {', '.join(map(repr, unknown))}")
    spans = []
    for name, info in header.items():
        shape = info.get("shape") if isinstance(info, dict) else None
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (
            not isinstance(shape, list)
            or not all(isinstance(n, int) and n >= 0 for n in shape)
            or not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(n, int) for n in offsets)
        ):
            raise _corrupt(path, f"the header entry of {name!r} is malformed")
        most = (MAX_CLASSES, MAX_DIM)[1 if name == "intercept" else 0 :]
        bounds = most[len(most) - len(shape) :] if len(shape) <= len(most) else None
        if bounds is None or any(n > m for n, m in zip(shape, bounds, strict=True)):
            raise _too_large(path, f"its header declares {name!r} of shape {tuple(shape)}")
        if info.get("dtype") != "F64":
            raise _corrupt(path, f"{name!r} is {info.get('dtype')}, not F64")
        if offsets[1] - offsets[0] != 8 * math.prod(shape):
            raise _corrupt(path, f"the offsets of {name!r} do not match its shape")
        spans.append(offsets)
    spans.sort()
    if spans and [s[0] for s in spans] != [0] + [s[1] for s in spans[:-1]]:
        raise _corrupt(path, "the arrays' offsets are not contiguous")
    need = 8 + declared + (spans[-1][1] if spans else 0)
    if size != need:
        raise _corrupt(path, f"{size:,} bytes where the header accounts for {need:,}")
    f.seek(0)
    arrays = safetensors.numpy.load(f.read(need))
    for name, array in arrays.items():
        payload[name] = float(array) if array.ndim == 0 else array
    return payload


_LEGACY_GLOBALS = {
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): NumpyArrayWrapper,
}
# numpy's array and scalar rebuilders (numpy.core before numpy 2, numpy._core since)
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_SCALAR = np.float64(0).__reduce__()[0]
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _LEGACY_GLOBALS[(_module, "_reconstruct")] = _RECONSTRUCT
    _LEGACY_GLOBALS[(_module, "scalar")] = _SCALAR
del _module


_WRAPPER_FIELDS = {
    "subclass",
    "shape",
    "order",
    "dtype",
    "allow_mmap",
    "numpy_array_alignment_bytes",
}


def _read_legacy(f: io.BufferedReader, path: Path, size: int) -> dict[str, Any]:
    """A joblib artifact (a pickle, zlib-compressed or not), read by :class:`_LegacyUnpickler`."""
    if size > _MAX_LEGACY_BYTES:
        raise _too_large(path, f"it is {size:,} bytes")
    f.seek(0)
    data = f.read()
    if data[:1] == b"\x78":
        inflate = zlib.decompressobj()
        data = inflate.decompress(data, _MAX_LEGACY_BYTES + 1)
        if len(data) > _MAX_LEGACY_BYTES:
            raise _too_large(path, f"it inflates to over {_MAX_LEGACY_BYTES:,} bytes")
        if not inflate.eof:
            raise _corrupt(path, "the compressed stream ends early")
    payload = _LegacyUnpickler(path, io.BytesIO(data)).load()
    if not isinstance(payload, dict):
        raise _foreign(path)
    return payload


class _LegacyUnpickler(NumpyUnpickler):  # type: ignore[misc]
    """joblib's unpickler, admitting only what a legacy artifact holds: dicts, lists, numbers,
    strings, numpy dtypes, scalars and arrays of numbers within the size bounds. Any other
    global, and any call a plain pickle of those never makes, is refused before it happens."""

    dispatch = NumpyUnpickler.dispatch.copy()

    def __init__(self, path: Path, stream: io.BytesIO) -> None:
        super().__init__(str(path), stream, ensure_native_byte_order=True)
        self.path = path

    def refuse(self, what: str) -> ArtifactError:
        return ArtifactError(
            f"Sentiment Bot refuses to load {self.path}: this legacy joblib (pickle) file asks to "
            f"run {what}, which no classifier artifact holds, and a pickle can run code as it "
            "loads. Do not use it; retrain the artifact with sentiment-train, which writes the "
            "safetensors format."
        )

    def find_class(self, module: str, name: str) -> Any:
        found = _LEGACY_GLOBALS.get((module, name))
        if found is None:
            raise self.refuse(f"{module}.{name}")
        return found

    def load_reduce(self) -> None:
        """Only the calls a pickle of arrays, dtypes and numpy scalars makes: an empty array
        (its contents come next, from the stream), a dtype by name, a scalar from its bytes."""
        func, args = self.stack[-2], self.stack[-1]
        first = args[0] if isinstance(args, tuple) and args else None
        ok = (
            (func is _RECONSTRUCT and args[:2] == (np.ndarray, (0,)))
            or (func is np.dtype and isinstance(first, str))
            or (func is _SCALAR and isinstance(first, np.dtype) and first.itemsize <= 1024)
        )
        if not ok:
            raise self.refuse(f"{getattr(func, '__name__', func)!s}{args!r:.60}")
        super().load_reduce()

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self) -> None:
        if self.stack[-2] is not NumpyArrayWrapper or self.stack[-1] != ():
            raise self.refuse(f"{getattr(self.stack[-2], '__name__', '?')}.__new__")
        super().load_newobj()

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_build(self) -> None:
        super(NumpyUnpickler, self).load_build()  # pickle's: set the state of the object on top
        wrapper = self.stack[-1]
        if isinstance(wrapper, NumpyArrayWrapper):  # now read the array it describes
            dtype, shape = getattr(wrapper, "dtype", None), getattr(wrapper, "shape", None)
            if (
                not set(vars(wrapper)) <= _WRAPPER_FIELDS
                or getattr(wrapper, "subclass", None) is not np.ndarray
                or not isinstance(dtype, np.dtype)
                or dtype.kind not in "biuf"
                or dtype.shape != ()
                or not isinstance(shape, tuple)
                or not all(isinstance(n, int) and n >= 0 for n in shape)
                or getattr(wrapper, "order", None) not in ("C", "F")
            ):
                raise self.refuse(f"an array of {dtype!r}, shape {shape!r}")
            if len(shape) > 2 or math.prod(shape) > MAX_CLASSES * MAX_DIM:
                raise _too_large(self.path, f"it declares an array of shape {shape}")
            self.stack[-1] = NumpyArrayWrapper.read(wrapper, self, self.ensure_native_byte_order)

    dispatch[pickle.BUILD[0]] = load_build

    def _refuse_opcode(self) -> None:
        raise self.refuse("a pickle instruction no artifact uses")

    for _code in (pickle.INST, pickle.OBJ, pickle.NEWOBJ_EX, pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_code[0]] = _refuse_opcode
    del _code


def _from_payload(payload: Any, path: Path) -> Artifact:
    def bad(problem: str) -> ArtifactError:
        return ArtifactError(
            f"{path} is not a valid classifier artifact: {problem}. Retrain it with "
            "sentiment-train."
        )

    if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
        raise _foreign(path)
    version = payload.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad(f"schema_version is {version!r}, not an integer")
    if version > SCHEMA_VERSION:
        raise ArtifactError(
            f"{path} was written by a newer Sentiment Bot (artifact schema {version}; this "
            f"version reads up to {SCHEMA_VERSION}). Upgrade sentiment-bot, or retrain the "
            "artifact with this version's sentiment-train."
        )
    if version < 1:
        raise bad(f"unknown schema version {version}")
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise bad(f"missing {', '.join(repr(k) for k in missing)}")

    enc = payload["encoder"]
    if not isinstance(enc, dict) or not all(k in enc for k in ("name", "pooling", "max_length")):
        raise bad("the 'encoder' entry lacks name, pooling or max_length")
    if enc["pooling"] not in POOLINGS:
        raise bad(f"unknown pooling {enc['pooling']!r}")
    if not isinstance(enc["max_length"], int) or enc["max_length"] < 2:
        raise bad(f"max_length is {enc['max_length']!r}")
    precision = enc.get("precision", "fp32")  # artifacts before the bf16 path: fp32
    if precision not in PRECISIONS:
        raise bad(f"unknown encoder precision {precision!r}")
    serving_paths = enc.get("serving_paths", [])
    if not isinstance(serving_paths, list) or not all(p in PRECISIONS for p in serving_paths):
        raise bad(f"serving_paths is {serving_paths!r}, not a list of {', '.join(PRECISIONS)}")
    adapter = enc.get("adapter")
    adapter_digest = enc.get("adapter_digest")
    if adapter is not None:
        if not isinstance(adapter, str) or not isinstance(adapter_digest, str):
            raise bad("the encoder's adapter entry has no path or no digest")
        adapter = str((path.parent / adapter).resolve())  # relative to the artifact's folder
    normalizer = enc.get("text_normalizer", "none")  # artifacts before chat normalisation
    if normalizer not in NORMALIZERS:
        raise ArtifactError(
            f"{path} needs text normaliser {normalizer!r}, which this version does not know "
            f"(it knows {', '.join(NORMALIZERS)}). Upgrade sentiment-bot, or retrain the "
            "artifact with this version's sentiment-train."
        )
    labels = payload["labels"]
    if not isinstance(labels, list | tuple) or tuple(str(x) for x in labels) not in (
        LABELS,
        THREE_WAY_LABELS,
    ):
        raise bad(
            f"'labels' is {labels!r}, not {list(LABELS)} (binary) or {list(THREE_WAY_LABELS)}"
        )
    labels = tuple(str(x) for x in labels)
    three_way = len(labels) == 3
    coef = np.asarray(payload["coef"], dtype=np.float64) if _is_numeric(payload["coef"]) else None
    shape_ok = coef is not None and (
        coef.ndim == 2 and coef.shape[0] == len(labels) if three_way else coef.ndim == 1
    )
    if coef is not None and coef.shape[-1:] and coef.shape[-1] > MAX_DIM:
        raise bad(f"'coef' has {coef.shape[-1]:,} weights per class, more than {MAX_DIM:,}")
    if coef is None or not shape_ok or coef.size == 0 or not np.isfinite(coef).all():
        want = f"a finite {len(labels)} x dim matrix" if three_way else "a finite 1-D array"
        raise bad(f"'coef' is not {want} of weights")
    raw_intercept = payload["intercept"]
    intercept: float | NDArray[np.float64]
    if three_way:
        arr = np.asarray(raw_intercept, dtype=np.float64) if _is_numeric(raw_intercept) else None
        if arr is None or arr.shape != (len(labels),) or not np.isfinite(arr).all():
            raise bad(f"'intercept' is {raw_intercept!r}, not {len(labels)} finite numbers")
        intercept = arr
    else:
        if not isinstance(raw_intercept, int | float) or not math.isfinite(raw_intercept):
            raise bad(f"'intercept' is {raw_intercept!r}, not a finite number")
        intercept = float(raw_intercept)
    band = payload["band"]
    if (
        not isinstance(band, list | tuple)
        or len(band) != 2
        or not all(isinstance(b, int | float) for b in band)
        or not 0.0 <= band[0] <= 0.5 <= band[1] <= 1.0
    ):
        raise bad(f"'band' is {band!r}, not [low <= 0.5 <= high] within [0, 1]")
    for key in ("metrics", "training", "versions"):
        if not isinstance(payload[key], dict):
            raise bad(f"'{key}' is not a mapping")
    return Artifact(
        encoder=EncoderSpec(
            name=str(enc["name"]),
            pooling=enc["pooling"],
            max_length=int(enc["max_length"]),
            normalize=bool(enc.get("normalize", False)),
            precision=precision,
            adapter=adapter,
            adapter_digest=adapter_digest if adapter is not None else None,
            text_normalizer=normalizer,
        ),
        coef=coef,
        intercept=intercept,
        band=(float(band[0]), float(band[1])),
        metrics=payload["metrics"],
        training=payload["training"],
        versions={str(k): str(v) for k, v in payload["versions"].items()},
        encoder_fingerprint=str(enc.get("fingerprint", "")),
        labels=labels,
        serving_paths=tuple(serving_paths),
    )


def _is_numeric(value: Any) -> bool:
    try:
        arr = np.asarray(value)
    except Exception:
        return False
    return arr.dtype.kind in "fiu"


def _canonical_json(value: Any) -> str:
    """One JSON text per payload: sorted keys, no spaces, ASCII; NaN and infinities (a metric
    with nothing to measure) become null."""
    return json.dumps(
        _plain(value, "payload"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    )


def _plain(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, int | bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, v in value.items():
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise TypeError(f"artifact {where} has a key {key!r} that JSON cannot hold")
            name = key if isinstance(key, str) else json.dumps(key)
            out[name] = _plain(v, f"{where}.{name}")
        return out
    raise TypeError(f"artifact {where} is a {type(value).__name__}, which JSON cannot hold")
