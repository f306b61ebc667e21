"""The int8 serving path: the encoder in ONNX Runtime, every Linear layer in 8-bit integers.

How it is quantised, and why this way (figures in the README's Speed section):

- **Weights** per output column, symmetric: ``W = Wq * w_scale[col]``, built once.
- **Activations** per row, symmetric, at run time: each token's input vector to a Linear layer
  gets its own scale (its largest absolute value / 127). A text's tokens never share a scale
  with another text's, so a text's embedding is the same alone and in any batch. ONNX Runtime's
  own dynamic quantiser takes one scale for the whole batch tensor, which made a text's
  embedding depend on its neighbours (cosine 0.96-0.98 between alone and batched); its static
  quantiser (scales calibrated once) lost too much on this encoder (cosine to fp32 down to 0.35).
- **Kernels**: ``MatMulIntegerToFloat`` with uint8 activations (the int8 values shifted by a
  zero point of 128) and int8 weights, which MLAS runs with VNNI where the CPU has it (int8 x
  int8 takes a slow path), the weight's column scales applied as the int32 sums are converted;
  the row scales are one ``Mul`` after it. Attention (exported eager: torch's SDPA adds Where
  and IsNaN passes), softmax, LayerNorm and GELU stay fp32, as ONNX Runtime's own graph
  optimisations leave them: its transformer fusions (``SkipLayerNormalization``,
  ``MultiHeadAttention``, ``BiasGelu``) were measured slower on this CPU.
- ONNX Runtime's ``MatMulIntegerToFloatFusion`` assumes one activation scale per tensor; it
  fused the first version of this graph (``MatMulInteger``, ``Cast``, ``Mul``) wrongly, so it
  stays switched off (:data:`DISABLED_OPTIMIZERS`).
- :data:`~model.serving.spec.INT8_GRAPH` numbers the graph's arithmetic: embeddings cached for
  one version are never mixed with another's, and serving caches of an older one are rebuilt.

Building (:func:`build`) needs torch and the ``onnx`` package; running (:class:`Int8Session`)
needs only numpy and onnxruntime, so a serving process that loads a built model never imports
torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from model.serving.spec import EncoderError

if TYPE_CHECKING:
    import torch

DISABLED_OPTIMIZERS = ["MatMulIntegerToFloatFusion"]
INT8_MODEL_FILE = "encoder.onnx"
TOKENIZER_FILE = "tokenizer.json"
OPSET = 17
_EPS = 1e-12
_T = TypeVar("_T")
_R = TypeVar("_R")


def build(model: torch.nn.Module, target: Path, *, pooling: str, normalize: bool) -> int:
    """Export ``model`` (a Hugging Face encoder, adapter merged, fp32) with its pooling to
    ``target`` as an int8 ONNX graph. Returns how many Linear layers were quantised."""
    model = model.float().eval()
    # eager attention exports as plain MatMul / Add / Softmax; torch's SDPA exports with extra
    # Where and IsNaN passes over every score tensor (graph 3: about 6% faster than SDPA's)
    before = getattr(getattr(model, "config", None), "_attn_implementation", None)
    switch = getattr(model, "set_attn_implementation", None)
    if before in (None, "eager") or switch is None:
        return _export_and_quantise(model, target, pooling, normalize)
    switch("eager")
    try:
        return _export_and_quantise(model, target, pooling, normalize)
    finally:
        switch(before)


def _export_and_quantise(
    model: torch.nn.Module, target: Path, pooling: str, normalize: bool
) -> int:
    import tempfile
    import warnings

    import onnx
    import torch

    from model.serving.encoder import pool

    class Pooled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask)
            return pool(hidden.last_hidden_state, attention_mask, pooling, normalize)

    # any ids the vocabulary has: the graph is traced once, with dynamic batch and length axes
    ids = torch.tensor([[1, 2, 3, 1], [1, 2, 1, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    with tempfile.TemporaryDirectory(prefix="sentiment-int8-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Pooled(model),
                (ids, mask),
                str(fp32),
                input_names=["input_ids", "attention_mask"],
                output_names=["embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "embedding": {0: "batch"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
        graph = onnx.load(str(fp32))
    count = quantise_linear_layers(graph)
    onnx.checker.check_model(graph)
    onnx.save(graph, str(target))
    return count


def quantise_linear_layers(model: Any) -> int:
    """Rewrite, in place, every ``MatMul`` of the ONNX ``model`` whose right side is a constant
    matrix (a Linear layer's weight) into per-row int8 x per-column int8 (see the module's
    docstring). An activation feeding several layers (query, key, value) is quantised once.

    Each activation ``x`` (``[..., K]``) is flattened to token rows ``[M, K]``; its per-row scale
    is ``max|x| / 127`` and one ``QuantizeLinear`` (per axis 0: a scale and a zero point of 128
    per row) makes the uint8 rows. Each layer is then one ``MatMulIntegerToFloat`` (the int32
    sums times the weight's column scales, in one pass), one ``Mul`` by the row scales and a
    ``Reshape`` back to ``[..., N]``: three passes over the data where the first version of this
    graph took eight element-wise ones (Speed in the README has the figures)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    constants: dict[str, Any] = {}

    def const(name: str, value: NDArray[Any]) -> str:
        if name not in constants:
            constants[name] = numpy_helper.from_array(value, name)
        return name

    const("i8_eps", np.array(_EPS, np.float32))
    const("i8_inv127", np.array(1 / 127.0, np.float32))
    const("i8_one", np.array(1.0, np.float32))
    const("i8_zero_point", np.array(128, np.uint8))
    const("i8_zero_points", np.array([128], np.uint8))
    const("i8_axis1", np.array([1], np.int64))
    quantised: dict[str, str] = {}  # activation -> the prefix of its quantised rows
    nodes = []
    count = 0
    for node in graph.node:
        weight = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or len(weight.dims) != 2:
            nodes.append(node)
            continue
        w = numpy_helper.to_array(weight).astype(np.float32)  # in x out
        k, n = w.shape
        w_scale = (np.maximum(np.abs(w).max(axis=0), _EPS) / 127.0).astype(np.float32)
        w_q = np.clip(np.round(w / w_scale), -127, 127).astype(np.int8)
        p = f"i8_l{count}_"
        count += 1
        const(p + "w", w_q)
        const(p + "ws", w_scale)
        x, y = node.input[0], node.output[0]
        if x not in quantised:
            a = f"i8_a{len(quantised)}_"
            nodes += [
                helper.make_node("Shape", [x], [a + "lead"], end=-1),
                helper.make_node(
                    "Reshape", [x, const(f"i8_rows{k}", np.array([-1, k]))], [a + "x"]
                ),
                helper.make_node("Abs", [a + "x"], [a + "abs"]),
                helper.make_node("ReduceMax", [a + "abs"], [a + "max"], axes=[1], keepdims=0),
                helper.make_node("Max", [a + "max", "i8_eps"], [a + "max1"]),
                helper.make_node("Mul", [a + "max1", "i8_inv127"], [a + "scale"]),
                helper.make_node("Shape", [a + "scale"], [a + "m"]),
                helper.make_node("Expand", ["i8_zero_points", a + "m"], [a + "zp"]),
                helper.make_node(
                    "QuantizeLinear", [a + "x", a + "scale", a + "zp"], [a + "q"], axis=0
                ),
                helper.make_node("Unsqueeze", [a + "scale", "i8_axis1"], [a + "col"]),
            ]
            quantised[x] = a
        a = quantised[x]
        nodes += [
            helper.make_node(
                "MatMulIntegerToFloat",
                [a + "q", p + "w", "i8_one", p + "ws", "i8_zero_point"],
                [p + "sums"],
                domain="com.microsoft",
            ),
            helper.make_node("Mul", [p + "sums", a + "col"], [p + "y"]),
            helper.make_node(
                "Concat", [a + "lead", const(f"i8_cols{n}", np.array([n]))], [p + "shape"], axis=0
            ),
            helper.make_node("Reshape", [p + "y", p + "shape"], [y]),
        ]
    used = {name for node in nodes for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept + [t for name, t in constants.items() if name in used])
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return count


class Int8Session:
    """An int8 encoder graph from :func:`build`, run by ONNX Runtime on the CPU.

    Each batch runs on one thread, and up to ``threads`` batches run at once (:meth:`map`):
    ONNX Runtime splitting each of the graph's many small operations over two threads scaled
    1.3-1.8x on the 2-core EPYC, from one run to the next, where two batches side by side scale
    1.7-1.9x (README, Speed). A text's vector does not depend on which thread or batch runs it.
    """

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # a memory plan cached per input shape: with every batch a new length, it kept about
        # 40-80 MB more for no speed (alternating runs: 1.00-1.05x without it)
        options.enable_mem_pattern = False
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(path),
                options,
                providers=["CPUExecutionProvider"],
                disabled_optimizers=DISABLED_OPTIMIZERS,
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise EncoderError(
                f"cannot load the int8 encoder {path}: {exc}. Delete it to have it rebuilt."
            ) from None
        self.threads = threads or _torch_like_threads()
        self._pool: ThreadPoolExecutor | None = None

    def run(self, input_ids: NDArray[np.int64], mask: NDArray[np.int64]) -> NDArray[np.float32]:
        """Pooled embeddings of one padded batch (``run`` may be called from several threads
        at once: ONNX Runtime sessions allow it)."""
        (out,) = self._session.run(None, {"input_ids": input_ids, "attention_mask": mask})
        return np.asarray(out, dtype=np.float32)

    def map(self, fn: Callable[[_T], _R], batches: Sequence[_T]) -> Iterable[_R]:
        """``fn`` over ``batches``, results in order: up to :attr:`threads` at once on this
        session's threads (named ``int8-encoder``), or here when there is only one."""
        if self.threads <= 1 or len(batches) <= 1:
            return map(fn, batches)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="int8-encoder")
        return self._pool.map(fn, batches)


def _torch_like_threads() -> int:
    """As many intra-op threads as torch would take: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
