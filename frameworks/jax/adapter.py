"""JAX adapter: Flax Linen layers, Optax optimizers and losses; eager op-by-op JAX and jax.jit; the jax2onnx
exporter and the jaxonnxruntime importer.

Why Flax Linen rather than Flax NNX: Linen's GRUCell has the recurrent bias on the candidate gate (b_hn, inside
r * (W_hn h + b_hn)) that the catalog's cuDNN-form GRU needs, while flax.nnx.GRUCell (flax 0.12.8) builds its
recurrent Dense without any bias, so it cannot express that case; and Linen parameters are plain pytrees handed to
`apply`, so copying the catalog's arrays in is one explicit dict per layer and jax.grad/jax.jit apply to a pure
function with no split/merge step.

Flax is channels-last: images go NCHW -> NHWC (and back) explicitly, kernels (O, C, *k) -> (*k, C, O).

Layer gradients: one jax.vjp per case w.r.t. a dict holding the input and every trainable parameter in the
catalog's layout; the function differentiated builds the Flax variables from that dict with jax.numpy (transposes,
per-gate splits, per-head reshapes, the GRU bias fold), so the pullback hands back every gradient in the catalog's
layout under the catalog's name.

Training workloads are catalog models (harness.catalog.models): CatalogLayers turns any list of nodes into one Flax
Linen module (a layer per node kind) and maps the catalog's parameters into Flax's layouts once, at build time; the
step is jax.value_and_grad of the optax cross-entropy plus optax.sgd, jitted whole in the compiled mode.

Precision: strict float32 from start-up (jax_default_matmul_precision 'highest', set again around every step); tf32
workloads run their step under 'tensorfloat32', bf16 workloads use Flax's dtype=bfloat16 with float32 parameters.
On CUDA, XLA_PYTHON_CLIENT_PREALLOCATE=false is set before jax is imported, and cuda:N is jax.devices('gpu')[N].
"""

from __future__ import annotations

import contextlib
import functools
import os
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from harness.adapter import (
    Adapter,
    AllReduceResult,
    ArrayAPI,
    CompiledFunction,
    ExportResult,
    ImportResult,
    NotMapped,
    OpImpl,
    Unsupported,
    Workload,
    distribution_versions,
    require,
    require_parameter,
)
from harness.catalog.models import NORM_EPS
from harness.catalog.ops import Case
from harness.catalog.workloads import LEARNING_RATE

Array = np.ndarray
Outputs = dict[str, Any]
# flax.linen.OptimizedLSTMCell (and LSTMCell) keep one kernel per gate rather than stacked blocks: ii/if/ig/io on the
# input side (no bias) and hi/hf/hg/ho on the recurrent side (with the one bias); the docstring defines
# i = sigma(W_ii x + W_hi h + b_hi), f, g (tanh), o the same way, and the carry is (c, h). Catalog gate -> Flax suffix:
FLAX_LSTM_GATES = {"i": "i", "f": "f", "g": "g", "o": "o"}
# flax.linen.GRUCell: ir/iz/in (input side, with biases), hr/hz (recurrent, no bias), hn (recurrent, with bias); its
# docstring: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), i.e. the reset gate applied after the matmul (cuDNN form).


def gate_blocks(w: Array, order: str) -> dict[str, Array]:
    """Split stacked gate blocks along the last axis into a dict keyed by gate letter (order e.g. 'ifgo')."""
    return dict(zip(order, np.split(np.asarray(w, np.float32), len(order), axis=-1)))


def nchw_to_nhwc(nd: int) -> tuple[int, ...]:
    """Axis permutation taking (N, C, *spatial) to (N, *spatial, C)."""
    return (0, *range(2, 2 + nd), 1)


def nhwc_to_nchw(nd: int) -> tuple[int, ...]:
    """Axis permutation taking (N, *spatial, C) to (N, C, *spatial)."""
    return (0, nd + 1, *range(1, nd + 1))


def hwio_axes(nd: int) -> tuple[int, ...]:
    """Axis permutation taking a catalog kernel (O, C, *k) to Flax's (*k, C, O)."""
    return (*range(2, 2 + nd), 1, 0)


def oihw_to_hwio(w: Array) -> Array:
    """Catalog/torch kernel (O, C, *k) to Flax's (*k, C, O)."""
    return np.ascontiguousarray(np.transpose(w, hwio_axes(w.ndim - 2)))


def hwio_to_oihw(w: Array) -> Array:
    """Flax kernel (*k, C, O) back to the catalog's (O, C, *k)."""
    return np.ascontiguousarray(np.transpose(w, np.argsort(hwio_axes(w.ndim - 2))))


# ---------------------------------------------------------------------------------------------- devices
PREALLOCATE = "XLA_PYTHON_CLIENT_PREALLOCATE"  # read by jaxlib.xla_client.generate_pjrt_gpu_plugin_options when the
#                                               CUDA backend is created; unset, XLA takes 75% of the GPU's memory


def jax_platform(device: str) -> str | None:
    """The jax.devices() platform of a harness device string: 'cpu' -> 'cpu', 'cuda' / 'cuda:N' -> 'gpu'."""
    if device == "cpu":
        return "cpu"
    kind, _, index = device.partition(":")
    if kind == "cuda" and (index == "" or index.isdigit()):
        return "gpu"
    return None


def device_index(device: str) -> int:
    """The index N of 'cuda:N' (0 for 'cuda' and 'cpu'): the position in jax.devices('gpu')."""
    _, _, index = device.partition(":")
    return int(index) if index else 0


def cuda_version(v: int) -> str:
    """A CUDA runtime/driver version as CUDA encodes it (1000 major + 10 minor) -> 'major.minor'."""
    return f"{v // 1000}.{(v % 1000) // 10}"


def cudnn_version(v: int) -> str:
    """A cuDNN version as cudnnGetVersion() encodes it (cuDNN 9: 10000 major + 100 minor + patch; before 9: 1000 major
    + 100 minor + patch) -> 'major.minor.patch'."""
    if v >= 90000:
        return f"{v // 10000}.{(v % 10000) // 100}.{v % 100}"
    return f"{v // 1000}.{(v % 1000) // 100}.{v % 100}"


# ---------------------------------------------------------------------------------------------- precision
#: jax_default_matmul_precision per workload precision. The adapter sets "highest" at start-up (strict float32 for
#: every dot and convolution on 32-bit inputs); a step runs inside jax.default_matmul_precision(<this>), which JAX
#: makes part of the jit cache key, so a tf32 step is traced with TF32 and nothing outside it is.
PRECISION_SETTINGS = {"fp32": "highest", "tf32": "tensorfloat32", "bf16": "highest"}
PRECISION_NOTES = {
    "fp32": "strict float32: the step runs under jax.default_matmul_precision('highest') (full float32 dots and "
            "convolutions; on recent NVIDIA GPUs JAX's default would be TF32)",
    "tf32": "TF32: the step runs under jax.default_matmul_precision('tensorfloat32') (TF32 dots and convolutions on "
            "float32 data); the adapter's 'highest' holds everywhere else",
    "bf16": "bfloat16 mixed precision: Flax layers with dtype=jax.numpy.bfloat16 (compute) and param_dtype float32 "
            "(parameters, gradients and the SGD update in float32); the loss is computed in float32",
}


# ---------------------------------------------------------------------------------------------- catalog models
CATALOG_LSTM_GATES = "ifgo"  # harness.catalog.models: lstm_last gate blocks i, f, g, o
CATALOG_GRU_GATES = "rzn"  # gru gate blocks r, z, n
CHANNELS_LAST, CATALOG_LAYOUT = "NHWC", "catalog"  # the layout a 4-D value is held in while the model runs
#: how each catalog node kind is built (also the notes of a workload that uses the kind)
LAYER_APIS = {
    "dense": "flax.linen.Dense (kernel (in, out) is the catalog's w)",
    "conv2d": "flax.linen.Conv, channels-last: kernel (O, C, k, k) -> (k, k, C, O), explicit zero padding (p, p)",
    "batch_norm": "flax.linen.BatchNorm(use_running_average=False, use_fast_variance=False): batch statistics, the "
                  "batch_stats collection mutable (running averages updated, not used)",
    "layer_norm": "flax.linen.LayerNorm(use_fast_variance=False)",
    "relu": "flax.linen.relu",
    "gelu": "flax.linen.gelu(approximate=False): the exact erf form",
    "max_pool": "flax.linen.max_pool with explicit padding (padded with -inf: padded cells never win)",
    "global_avg_pool": "jax.numpy.mean over H and W (Flax has no global pooling layer)",
    "flatten": "NHWC -> NCHW transpose, then reshape: the catalog's NCHW order",
    "add": "jax.numpy add of the two inputs",
    "lstm_last": "flax.linen.RNN(OptimizedLSTMCell, return_carry=True): the last h; per-gate kernels ii..io / hi..ho "
                 "from the catalog's i, f, g, o blocks; Flax's recurrent biases hi..ho held at zero and not trained",
    "gru": "flax.linen.RNN(GRUCell) (reset gate applied after the recurrent matmul, as the catalog's): per-gate "
           "kernels from the catalog's r, z, n blocks; GRUCell has no recurrent bias on r and z, so the catalog's bh_r "
           "and bh_z are trained as their own arrays and added to the input biases inside the step (exact: the sum "
           "is what the gate sees, and each receives the gate's gradient)",
    "embedding": "flax.linen.Embed",
    "positional": "flax.linen.Embed over positions 0..T-1, added to the input",
    "self_attention": "flax.linen.MultiHeadDotProductAttention on itself (no mask, no dropout): the catalog's (D, D) "
                      "projections reshaped to Flax's per-head (D, heads, D/heads) and (heads, D/heads, D) kernels",
    "mean_tokens": "jax.numpy.mean over the token axis",
}


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Nested-dict union (b's leaves added to a's)."""
    out = dict(a)
    for key, value in b.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class CatalogLayers:
    """A catalog model (harness.catalog.models) in Flax Linen: a module whose __call__ walks the model's nodes in
    order, wiring each by its input names, one Flax layer (or jax.numpy op where Flax has none) per node kind
    (LAYER_APIS); and the maps between the catalog's parameters ("<node>.<param>", catalog layouts) and the
    module's Flax parameter tree (params[<node>][...], Flax layouts). Nothing here depends on which model it is.

    Images are channels-last while the model runs: the input is transposed once, outside the step; each 4-D value
    carries its layout, and a node whose semantics are stated in NCHW (flatten, or a kind that is not spatial)
    gets it back in the catalog's layout."""

    def __init__(self, adapter: Any, model: Any, dtype: Any, param_dtype: Any = None, inference: bool = False) -> None:
        unknown = sorted({n.kind for n in model.nodes} - set(LAYER_APIS))
        if unknown:
            raise NotMapped(f"the jax adapter builds no node of kind {', '.join(unknown)}")
        self.adapter, self.model, self.dtype = adapter, model, dtype
        #: inference mode (the ONNX export): batch normalisation normalises with the running statistics
        self.inference = inference
        self.nn, self.jnp = adapter._api("flax.linen"), adapter.jnp
        self.param_dtype = self.jnp.float32 if param_dtype is None else param_dtype
        self.params = model.param_shapes()

    def notes(self) -> list[str]:
        kinds = sorted({n.kind for n in self.model.nodes}, key=list(LAYER_APIS).index)
        out = [f"{kind}: {LAYER_APIS[kind]}" for kind in kinds]
        if self.inference and "batch_norm" in kinds:
            out.append("inference mode: flax.linen.BatchNorm(use_running_average=True) with a fresh module's "
                       "batch_stats (mean 0, var 1)")
        if self.inference and any(n.kind == "max_pool" and n.attrs["padding"] for n in self.model.nodes):
            out.append("inference mode: a padded max pool is jax.numpy.pad with -inf, then flax.linen.max_pool "
                       "'VALID' (jax2onnx's max_pool takes only 'VALID' or 'SAME')")
        if self.model.input_kind == "image":
            out.append("images: input transposed once to Flax's NHWC outside the step; values stay NHWC between "
                       "spatial layers")
        return out

    # ------------------------------------------------------------------------------------------ layouts
    def input_array(self, x: Array) -> Array:
        if self.model.input_kind == "tokens":
            return np.asarray(x, np.int32)
        x = np.asarray(x, np.float32)
        return np.ascontiguousarray(np.transpose(x, nchw_to_nhwc(2))) if self.model.input_kind == "image" else x

    def _last(self, value: tuple[Any, str]) -> Any:
        x, layout = value
        return x if layout == CHANNELS_LAST else self.jnp.transpose(x, nchw_to_nhwc(x.ndim - 2))

    def _catalog(self, value: tuple[Any, str]) -> Any:
        x, layout = value
        return self.jnp.transpose(x, nhwc_to_nchw(x.ndim - 2)) if layout == CHANNELS_LAST else x

    # ------------------------------------------------------------------------------------------ the module
    def module(self) -> Any:
        nn, layers, model = self.nn, self, self.model
        first = CHANNELS_LAST if model.input_kind == "image" else CATALOG_LAYOUT

        class CatalogModel(nn.Module):  # type: ignore[misc, name-defined]
            @nn.compact
            def __call__(self, x: Any) -> Any:
                values: dict[str, tuple[Any, str]] = {"input": (x, first)}
                for node in model.nodes:
                    values[node.name] = layers._node(node, [values[i] for i in node.inputs])
                return layers._catalog(values[model.output])

        return CatalogModel()

    def _node(self, node: Any, ins: list[tuple[Any, str]]) -> tuple[Any, str]:
        """One node, called inside CatalogModel.__call__ (so its Flax layers are that module's children, named by
        the node)."""
        nn, jnp, k, a, name = self.nn, self.jnp, node.kind, node.attrs, node.name
        kw: dict[str, Any] = {"dtype": self.dtype, "param_dtype": self.param_dtype, "name": name}
        has_bias = f"{name}.b" in self.params
        if k == "dense":
            return nn.Dense(a["out"], use_bias=has_bias, **kw)(self._catalog(ins[0])), CATALOG_LAYOUT
        if k == "conv2d":
            p, kk, s = a["padding"], a["kernel"], a["stride"]
            conv = nn.Conv(a["out"], (kk, kk), strides=(s, s), padding=((p, p), (p, p)), use_bias=has_bias, **kw)
            return conv(self._last(ins[0])), CHANNELS_LAST
        if k == "batch_norm":
            bn = nn.BatchNorm(use_running_average=self.inference, axis=-1, momentum=0.9, epsilon=NORM_EPS, use_fast_variance=False, **kw)
            return bn(self._last(ins[0])), CHANNELS_LAST
        if k == "layer_norm":
            return nn.LayerNorm(epsilon=NORM_EPS, use_fast_variance=False, **kw)(self._catalog(ins[0])), CATALOG_LAYOUT
        if k == "relu":
            return nn.relu(ins[0][0]), ins[0][1]
        if k == "gelu":
            return nn.gelu(ins[0][0], approximate=False), ins[0][1]
        if k == "max_pool":
            p, kk, s = a["padding"], a["kernel"], a["stride"]
            x = self._last(ins[0])
            if p and self.inference:
                # jax2onnx's flax.linen.max_pool takes only "VALID" or "SAME": the same -inf padding, done first
                x, p = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=-jnp.inf), 0
            # keywords: jax2onnx replaces flax.linen.max_pool by a function taking window_shape and strides as
            # keywords only
            padding = ((p, p), (p, p)) if p else "VALID"
            return nn.max_pool(x, window_shape=(kk, kk), strides=(s, s), padding=padding), CHANNELS_LAST
        if k == "global_avg_pool":
            x, layout = ins[0]
            return jnp.mean(x, axis=(1, 2) if layout == CHANNELS_LAST else (2, 3)), CATALOG_LAYOUT
        if k == "flatten":
            x = self._catalog(ins[0])
            return x.reshape(x.shape[0], -1), CATALOG_LAYOUT
        if k == "add":
            if ins[0][1] == ins[1][1]:
                return ins[0][0] + ins[1][0], ins[0][1]
            return self._catalog(ins[0]) + self._catalog(ins[1]), CATALOG_LAYOUT
        if k == "lstm_last":
            cell = nn.OptimizedLSTMCell(a["hidden"], **kw)
            (_, h), _ = nn.RNN(cell, return_carry=True, name=f"{name}:time_loop")(self._catalog(ins[0]))
            return h, CATALOG_LAYOUT
        if k == "gru":
            cell = nn.GRUCell(a["hidden"], **kw)
            return nn.RNN(cell, name=f"{name}:time_loop")(self._catalog(ins[0])), CATALOG_LAYOUT
        if k == "embedding":
            return nn.Embed(a["vocab"], a["dim"], **kw)(ins[0][0]), CATALOG_LAYOUT
        if k == "positional":
            x = self._catalog(ins[0])
            table = nn.Embed(x.shape[1], x.shape[2], **kw)(jnp.arange(x.shape[1]))
            return x + table[None], CATALOG_LAYOUT
        if k == "self_attention":
            x = self._catalog(ins[0])
            d = x.shape[-1]
            mha = nn.MultiHeadDotProductAttention(num_heads=a["heads"], qkv_features=d, out_features=d, dropout_rate=0.0,
                                                  deterministic=True, **kw)
            return mha(x), CATALOG_LAYOUT
        if k == "mean_tokens":
            return jnp.mean(self._catalog(ins[0]), axis=1), CATALOG_LAYOUT
        raise NotMapped(f"the jax adapter builds no node of kind {k}")

    # ------------------------------------------------------------------------------------------ parameters
    def load(self, arrays: dict[str, Array]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(trainable, frozen) Flax parameter trees from the catalog's arrays, in Flax's layouts (NumPy float32).
        frozen: what Flax's layers hold and the catalog's model does not (held at zero, not trained)."""
        trainable: dict[str, Any] = {}
        frozen: dict[str, Any] = {}
        for node in self.model.nodes:
            name, k = node.name, node.kind
            p = {full.split(".", 1)[1]: np.asarray(arrays[full], np.float32) for full in self.params if full.split(".", 1)[0] == name}
            t: dict[str, Any] = {}
            if k in ("dense", "conv2d"):
                t = {"kernel": oihw_to_hwio(p["w"]) if k == "conv2d" else p["w"], **({"bias": p["b"]} if "b" in p else {})}
            elif k in ("batch_norm", "layer_norm"):
                t = {"scale": p["gamma"], "bias": p["beta"]}
            elif k == "lstm_last":
                wx, wh = gate_blocks(p["wx"], CATALOG_LSTM_GATES), gate_blocks(p["wh"], CATALOG_LSTM_GATES)
                for gate, fg in FLAX_LSTM_GATES.items():
                    t[f"i{fg}"], t[f"h{fg}"] = {"kernel": wx[gate]}, {"kernel": wh[gate]}
                frozen[name] = {f"h{fg}": {"bias": np.zeros(node.attrs["hidden"], np.float32)} for fg in FLAX_LSTM_GATES.values()}
            elif k == "gru":
                wx, wh, bx, bh = (gate_blocks(p[q], CATALOG_GRU_GATES) for q in ("wx", "wh", "bx", "bh"))
                for g in CATALOG_GRU_GATES:
                    t[f"i{g}"], t[f"h{g}"] = {"kernel": wx[g], "bias": bx[g]}, {"kernel": wh[g], "bias": bh[g]}
            elif k in ("embedding", "positional"):
                t = {"embedding": p["table"]}
            elif k == "self_attention":
                d, heads = p["wq"].shape[0], node.attrs["heads"]
                t = {role: {"kernel": p[f"w{role[0]}"].reshape(d, heads, d // heads), "bias": p[f"b{role[0]}"].reshape(heads, d // heads)}
                     for role in ("query", "key", "value")}
                t["out"] = {"kernel": p["wo"].reshape(heads, d // heads, d), "bias": p["bo"]}
            if t:
                trainable[name] = t
        return trainable, frozen

    def flax_params(self, trainable: Any, frozen: Any) -> dict[str, Any]:
        """The module's params tree from the trained and the frozen parameters (inside the differentiated function,
        so gradients reach each trained array): the union, with each GRU's recurrent r and z biases added to its
        input biases (GRUCell has no recurrent bias there; the gate sees the sum either way)."""
        out = _merge(trainable, frozen)
        for node in self.model.nodes:
            if node.kind == "gru":
                cell = dict(out[node.name])
                for g in "rz":
                    h = dict(cell[f"h{g}"])
                    cell[f"i{g}"] = {**cell[f"i{g}"], "bias": cell[f"i{g}"]["bias"] + h.pop("bias")}
                    cell[f"h{g}"] = h
                out[node.name] = cell
        return out

    def catalog_params(self, trainable: Any, dtype: Any = np.float32) -> dict[str, Array]:
        """Every trained parameter back under the catalog's name and in its layout (NumPy, in `dtype`)."""
        out: dict[str, Array] = {}
        for node in self.model.nodes:
            t = trainable.get(node.name) or {}
            if t:
                out.update(self._node_catalog_params(node, t, dtype))
        return out

    @staticmethod
    def _node_catalog_params(node: Any, t: Any, dtype: Any) -> dict[str, Array]:
        """One node's trained Flax parameters `t` in the catalog's names and layouts."""
        name, k = node.name, node.kind

        def leaf(*path: str) -> Array:
            return np.asarray(functools.reduce(lambda d, key: d[key], path, t), dtype)

        out: dict[str, Array] = {}
        if k in ("dense", "conv2d"):
            out[f"{name}.w"] = hwio_to_oihw(leaf("kernel")) if k == "conv2d" else leaf("kernel")
            if "bias" in t:
                out[f"{name}.b"] = leaf("bias")
        elif k in ("batch_norm", "layer_norm"):
            out[f"{name}.gamma"], out[f"{name}.beta"] = leaf("scale"), leaf("bias")
        elif k == "lstm_last":
            for side, catalog_side in (("i", "x"), ("h", "h")):
                out[f"{name}.w{catalog_side}"] = np.concatenate(
                    [leaf(f"{side}{FLAX_LSTM_GATES[g]}", "kernel") for g in CATALOG_LSTM_GATES], axis=-1)
        elif k == "gru":
            for side, catalog_side in (("i", "x"), ("h", "h")):
                out[f"{name}.w{catalog_side}"] = np.concatenate([leaf(f"{side}{g}", "kernel") for g in CATALOG_GRU_GATES], axis=-1)
                out[f"{name}.b{catalog_side}"] = np.concatenate([leaf(f"{side}{g}", "bias") for g in CATALOG_GRU_GATES], axis=-1)
        elif k in ("embedding", "positional"):
            out[f"{name}.table"] = leaf("embedding")
        elif k == "self_attention":
            d = leaf("out", "bias").shape[0]
            for role in ("query", "key", "value"):
                out[f"{name}.w{role[0]}"] = leaf(role, "kernel").reshape(d, d)
                out[f"{name}.b{role[0]}"] = leaf(role, "bias").reshape(d)
            out[f"{name}.wo"], out[f"{name}.bo"] = leaf("out", "kernel").reshape(d, d), leaf("out", "bias")
        return out

    def check_tree(self, module: Any, trainable: dict[str, Any], frozen: dict[str, Any], x: Array) -> dict[str, Any]:
        """The loaded parameters must be exactly the module's own (Flax would ignore an extra entry, which would make
        the parameter count a lie); returns the module's initial batch_stats (Flax's: mean 0, var 1), or {}."""
        jax = self.adapter.jax
        abstract = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), self.jnp.zeros(x.shape, x.dtype)))
        want = jax.tree_util.tree_map(lambda v: tuple(v.shape), abstract["params"])
        got = jax.tree_util.tree_map(lambda v: tuple(np.shape(v)), self.flax_params(trainable, frozen))
        if want != got:
            raise ValueError(f"loaded parameters {got} do not match the Flax module's {want}")
        stats = abstract.get("batch_stats", {})
        return jax.tree_util.tree_map_with_path(
            lambda path, v: (np.ones if path[-1].key == "var" else np.zeros)(v.shape, np.float32), dict(stats))


COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # what jax._src.dispatch records per XLA compilation


class CompileCounter:
    """XLA compilations seen through jax.monitoring, so a workload can say whether its steady steps still compile."""

    def __init__(self, monitoring: Any) -> None:
        self.count, self.seconds = 0, 0.0
        register: Any = getattr(monitoring, "register_event_duration_secs_listener", None)
        self.available = callable(register)
        if callable(register):
            register(self._listen)

    def _listen(self, event: str, duration: float, **_: Any) -> None:
        if event == COMPILE_EVENT:
            self.count += 1
            self.seconds += float(duration)


class JaxAdapter(Adapter):
    name = "jax"
    distribution = "jax"
    distributions = ("jax", "flax", "optax")  # the row is JAX with Flax (layers) and Optax (optimizers)

    def __init__(self, device: str) -> None:
        super().__init__(device)
        # Before jax is imported: no C++ log noise from XLA, and no probing for accelerators on a CPU run.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if device == "cpu":
            os.environ.setdefault("JAX_PLATFORMS", "cpu")
        # No preallocation: JAX's CUDA client otherwise reserves 75% of the GPU's memory when it starts, starving any
        # other process on that GPU; set before jax is imported (the client reads it when the backend is created).
        os.environ[PREALLOCATE] = "false"
        import jax
        import jax.numpy as jnp

        self.jax = jax
        self.jnp = jnp
        # Strict float32: full-precision dots and convolutions on 32-bit inputs everywhere (each step sets it again).
        jax.config.update("jax_default_matmul_precision", PRECISION_SETTINGS["fp32"])
        self._dev: Any = None
        self._available: tuple[bool, str] | None = None
        self.compiles = CompileCounter(jax.monitoring)

    # ------------------------------------------------------------------------------------------ identity
    def versions(self) -> dict[str, str]:
        return distribution_versions("jax", "jaxlib", "flax", "optax", "numpy", "onnx", "onnxruntime", "jax2onnx",
                                     "jaxonnxruntime", "jax-cuda12-plugin")

    def _platform(self) -> str:
        return jax_platform(self.device) or self.device

    def device_available(self) -> tuple[bool, str]:
        """Whether self.device exists for JAX; nothing else queries a device before this says yes."""
        if self._available is None:
            self._available = self._find_device()
        return self._available

    def _find_device(self) -> tuple[bool, str]:
        platform = jax_platform(self.device)
        if platform is None:
            return False, f"the jax adapter knows no device {self.device!r} (cpu, cuda or cuda:N)"
        try:
            devices = self.jax.devices(platform)
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return False, f"jax {self.jax.__version__} has no {platform} backend: {first[:200]}"
        index = device_index(self.device)
        if index >= len(devices):
            return False, f"jax sees {len(devices)} {platform} device(s), not index {index}"
        return True, ""

    @property
    def dev(self) -> Any:
        """The jax.Device of self.device: jax.devices('gpu')[N] for cuda:N (looked up on first use, once
        device_available() has said yes); it is also JAX's default device from then on."""
        if self._dev is None:
            ok, why = self.device_available()
            if not ok:
                raise RuntimeError(why)
            self._dev = self.jax.devices(self._platform())[device_index(self.device)]
            self.jax.config.update("jax_default_device", self._dev)
        return self._dev

    def gpu_count(self) -> int:
        """CUDA devices JAX sees (0 without a GPU backend, and on a CPU run, which starts JAX with JAX_PLATFORMS=cpu)."""
        try:
            return len(self.jax.devices("gpu"))
        except RuntimeError:
            return 0

    def precision_switches(self) -> dict[str, Any]:
        """What the adapter set for strict float32, and the related switches as they stand."""
        return {
            "jax_default_matmul_precision": str(self.jax.config.jax_default_matmul_precision),
            "jax_default_matmul_precision covers": "jax.lax.dot_general and jax.lax.conv_general_dilated on 32-bit "
                                                   "inputs (every Flax Dense, Conv, attention einsum, RNN cell matmul)",
            "per step": "each throughput step runs inside jax.default_matmul_precision: 'highest' (fp32, bf16) or "
                        "'tensorfloat32' (tf32 workloads only); layer, graph and ONNX checks run at 'highest'",
            "reduced-precision reductions": "no JAX or XLA switch: at 'highest' float32 dots and convolutions "
                                            "accumulate in float32, and jax.numpy reductions of float32 stay float32",
            "NVIDIA_TF32_OVERRIDE": os.environ.get("NVIDIA_TF32_OVERRIDE", "not set (left unset: it would force TF32 "
                                                   "off for the tf32 workloads too)"),
            "XLA_FLAGS": os.environ.get("XLA_FLAGS", "not set"),
        }

    def device_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"device": self.device, "precision": self.precision_switches(),
                                "memory": {PREALLOCATE: os.environ.get(PREALLOCATE, "not set")}}
        ok, why = self.device_available()
        if not ok:
            return {**info, "available": False, "reason": why}
        d = self.dev
        info.update(available=True, platform=d.platform, name=d.device_kind, id=d.id, backend=self.jax.default_backend())
        stats = d.memory_stats() or {}
        if "bytes_limit" in stats:
            info["memory"]["allocator_limit_bytes"] = int(stats["bytes_limit"])
        if d.platform == "gpu":
            info.update(self._cuda_info(d))
        return info

    def _cuda_info(self, d: Any) -> dict[str, Any]:
        """Compute capability and the CUDA / cuDNN versions, as the jaxlib CUDA plugin reports them (its _versions
        module, which JAX itself loads as jax._src.lib.cuda_versions)."""
        out: dict[str, Any] = {"local_hardware_id": getattr(d, "local_hardware_id", None)}
        capability = getattr(d, "compute_capability", None)
        try:
            from jax._src.lib import cuda_versions
        except ImportError:
            cuda_versions = None
        if cuda_versions is None:
            out["compute_capability"] = capability
            out["cuda_versions"] = "jaxlib has no CUDA versions module (no CUDA plugin loaded)"
            return out

        def read(fn: str, fmt: Callable[[int], str]) -> str:
            try:
                value = int(getattr(cuda_versions, fn)())
            except Exception as exc:  # a library the plugin cannot load: say so, do not fail the environment
                return f"unavailable ({type(exc).__name__}: {str(exc)[:80]})"
            return f"{fmt(value)} ({value})"

        if capability is None and hasattr(cuda_versions, "cuda_compute_capability"):
            with contextlib.suppress(Exception):
                cc = int(cuda_versions.cuda_compute_capability(out["local_hardware_id"] or 0))
                capability = f"{cc // 10}.{cc % 10}"
        out.update(compute_capability=capability, cuda_runtime=read("cuda_runtime_get_version", cuda_version),
                   cuda_driver=read("cuda_driver_get_version", cuda_version), cudnn=read("cudnn_get_version", cudnn_version),
                   cuda_built_against=read("cuda_runtime_build_version", cuda_version),
                   cudnn_built_against=read("cudnn_build_version", cudnn_version),
                   cuda_versions_module=getattr(cuda_versions, "__name__", "?"))
        return out

    # ------------------------------------------------------------------------------------------ helpers
    def J(self, a: Any, dtype: Any = None) -> Any:
        """A NumPy array on the adapter's device."""
        arr = np.asarray(a) if dtype is None else np.asarray(a, dtype)
        return self.jax.device_put(arr, self.dev)

    @staticmethod
    def N(t: Any) -> Array:
        return np.asarray(t)

    def _api(self, dotted: str) -> Any:
        """Resolve e.g. 'flax.linen.GRUCell' or 'optax.adamw' at run time; a missing name raises Unsupported."""
        import importlib

        root, *rest = dotted.split(".")
        try:
            obj: Any = importlib.import_module(root)
        except ImportError as exc:
            raise Unsupported(f"{root} cannot be imported: {exc}", looked_up=[root]) from None
        for i, part in enumerate(rest, start=1):
            owner = ".".join([root, *rest[: i - 1]])
            if not hasattr(obj, part):
                with contextlib.suppress(ImportError):
                    importlib.import_module(f"{owner}.{part}")  # submodules such as flax.linen
            obj = require(obj, part, owner)
        return obj

    @contextlib.contextmanager
    def _precise(self) -> Iterator[None]:
        """Full float32 matmuls/convs for the correctness probes (JAX defaults to TF32 on recent NVIDIA GPUs)."""
        with self.jax.default_matmul_precision("highest"):
            yield

    def _vjp(self, case: Case, f: Callable[[dict[str, Any]], Outputs]) -> dict[str, Any]:
        """Outputs of f(a), where a maps every name in case.wrt (the input, then every trainable parameter) to its
        array in the catalog's layout as a float32 device array, and, when the case differentiates anything,
        "grads": one jax.vjp of all outputs with the case's cotangents (zeros for outputs the case does not weight,
        e.g. batch norm's y_eval) w.r.t. the whole dict. f does every layout change (transpose, gate split,
        reshape) with jax.numpy on its way into the Flax variables, so JAX's pullback carries each gradient back
        through the same change into the catalog's layout, keyed by the catalog's names."""
        a = {name: self.J(case.arrays[name], np.float32) for name in case.wrt}
        if not case.wrt:
            return {k: self.N(v) for k, v in f(a).items()}
        outs, pullback = self.jax.vjp(f, a)
        result: dict[str, Any] = {k: self.N(v) for k, v in outs.items()}
        cts = {k: self.J(case.cotangents[k], np.float32) if k in case.cotangents else self.jnp.zeros_like(v)
               for k, v in outs.items()}
        (grads,) = pullback(cts)
        result["grads"] = {name: self.N(grads[name]) for name in case.wrt}
        return result

    def _op(self, api: str, forward: Callable[[dict[str, Any], Case], Outputs], kind: str = "native",
            variant: str | None = None, note: str = "") -> OpImpl:
        """An op whose outputs are forward(a, case): a holds the case's differentiated arrays (see _vjp); anything
        else (indices, running statistics, lengths) forward reads from case.arrays. APIs are resolved by the caller."""

        def run(case: Case) -> dict[str, Any]:
            with self._precise():
                return self._vjp(case, lambda a: forward(a, case))

        return OpImpl(kind, api, run, variant, note)

    def _params(self, **arrays: Any) -> dict[str, Any]:
        """{'params': ...} from NumPy arrays, every leaf a float32 device array (nested dicts allowed)."""
        return {"params": self.jax.tree_util.tree_map(lambda a: self.J(a, np.float32), arrays)}

    @staticmethod
    def _vars(**params: Any) -> dict[str, Any]:
        """Flax variables {'params': ...} from (possibly traced) jax arrays, nested dicts allowed."""
        return {"params": params}

    def _hwio(self, w: Any) -> Any:
        """A catalog kernel (O, C, *k) as Flax's (*k, C, O), with jax.numpy (differentiable)."""
        return self.jnp.transpose(w, hwio_axes(w.ndim - 2))

    def _gates(self, w: Any, order: str) -> dict[str, Any]:
        """Stacked gate blocks along the last axis, split with jax.numpy into a dict keyed by gate letter."""
        return dict(zip(order, self.jnp.split(w, len(order), axis=-1)))

    def _to_last(self, x: Any) -> Any:
        return self.jnp.transpose(x, nchw_to_nhwc(x.ndim - 2))

    def _to_first(self, x: Any) -> Any:
        return self.jnp.transpose(x, nhwc_to_nchw(x.ndim - 2))

    # ------------------------------------------------------------------------------------------ layers
    def op_dense(self) -> OpImpl:
        Dense = self._api("flax.linen.Dense")

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            w = a["w"]  # (in, out): Flax's Dense kernel layout already
            return {"y": Dense(w.shape[1]).apply(self._vars(kernel=w, bias=a["b"]), a["x"])}

        return self._op("flax.linen.Dense", forward)

    def _conv(self, nd: int) -> OpImpl:
        Conv = self._api("flax.linen.Conv")

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            w, cfg = a["w"], c.config
            p = cfg["padding"]
            m = Conv(w.shape[0], w.shape[2:], strides=cfg["stride"], padding=[(p, p)] * nd, kernel_dilation=cfg["dilation"])
            y = m.apply(self._vars(kernel=self._hwio(w), bias=a["b"]), self._to_last(a["x"]))
            return {"y": self._to_first(y)}

        return self._op("flax.linen.Conv", forward, note="channels-last: input NC... -> N...C, kernel (O,C,*k) -> (*k,C,O); "
                        "explicit zero padding (p, p) per spatial axis")

    def op_conv1d(self) -> OpImpl:
        return self._conv(1)

    def op_conv2d(self) -> OpImpl:
        return self._conv(2)

    def op_conv3d(self) -> OpImpl:
        return self._conv(3)

    def op_conv_transpose2d(self) -> OpImpl:
        ConvT = self._api("flax.linen.ConvTranspose")

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            w, s, p = a["w"], c.config["stride"], c.config["padding"]
            k = w.shape[2:]
            # transpose_kernel=True makes ConvTranspose the gradient of a convolution whose kernel it is given in
            # the forward conv's (kH, kW, in, out) layout: that conv maps C_out -> C_in, so the catalog's
            # (C_in, C_out, kH, kW) becomes (kH, kW, C_out, C_in). Explicit padding k - 1 - p on the dilated input
            # gives the catalog's output size (H - 1) * s - 2p + k.
            m = ConvT(w.shape[1], k, strides=(s, s), padding=[(kk - 1 - p, kk - 1 - p) for kk in k], transpose_kernel=True)
            kernel = self.jnp.transpose(w, (2, 3, 1, 0))
            return {"y": self._to_first(m.apply(self._vars(kernel=kernel, bias=a["b"]), self._to_last(a["x"])))}

        return self._op("flax.linen.ConvTranspose(transpose_kernel=True)", forward,
                        note="kernel (C_in, C_out, kH, kW) -> (kH, kW, C_out, C_in); padding k-1-p")

    def op_separable_conv2d(self) -> OpImpl:
        Conv = self._api("flax.linen.Conv")
        Sequential = self._api("flax.linen.Sequential")

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            dw, pw, p = a["w_depthwise"], a["w_pointwise"], c.config["padding"]
            ch = dw.shape[0]
            m = Sequential([Conv(ch, dw.shape[2:], padding=[(p, p)] * 2, feature_group_count=ch, use_bias=False),
                            Conv(pw.shape[0], (1, 1))])
            variables = self._vars(layers_0={"kernel": self._hwio(dw)},  # (C, 1, 3, 3) -> (3, 3, 1, C)
                                   layers_1={"kernel": self._hwio(pw), "bias": a["b"]})
            return {"y": self._to_first(m.apply(variables, self._to_last(a["x"])))}

        return self._op("flax.linen.Conv(feature_group_count=C) + flax.linen.Conv(1x1)", forward, kind="composed",
                        note="Flax has no separable-convolution layer: depthwise (grouped) conv then 1x1 conv")

    def op_max_pool2d(self) -> OpImpl:
        max_pool = self._api("flax.linen.max_pool")

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            k, s, p = c.config["kernel"], c.config["stride"], c.config.get("padding", 0)
            y = max_pool(self._to_last(a["x"]), (k, k), strides=(s, s), padding=((p, p), (p, p)))
            return {"y": self._to_first(y)}

        return self._op("flax.linen.max_pool", forward, note="explicit padding ((p, p), (p, p)): flax pads with the "
                        "reduction's initial value -inf, so padded cells never win")

    def op_avg_pool2d(self) -> OpImpl:
        avg_pool = self._api("flax.linen.avg_pool")

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            k, s, p = c.config["kernel"], c.config["stride"], c.config["padding"]
            y = avg_pool(self._to_last(a["x"]), (k, k), strides=(s, s), padding=((p, p), (p, p)))
            return {"y": self._to_first(y)}

        return self._op("flax.linen.avg_pool", forward, note="Flax's default divisor (count_include_pad=True); the "
                        "function also takes count_include_pad=False")

    def op_global_avg_pool2d(self) -> OpImpl:
        jnp = self.jnp
        return self._op("jax.numpy.mean(axis=(H, W))", lambda a, c: {"y": jnp.mean(a["x"], axis=(2, 3))}, kind="composed",
                        note="Flax has no global-average-pooling layer: a mean over the spatial axes")

    def op_upsample_nearest2d(self) -> OpImpl:
        resize = self._api("jax.image.resize")

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            x, s = a["x"], c.config["scale"]
            n, ch, h, w = x.shape
            return {"y": resize(x, (n, ch, h * s, w * s), method="nearest")}

        return self._op("jax.image.resize(method='nearest')", forward,
                        note="Flax has no upsampling layer; JAX's own image resize does nearest upsampling")

    def op_batch_norm(self) -> OpImpl:
        BN = self._api("flax.linen.BatchNorm")

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            m = BN(axis=-1, epsilon=c.config["eps"], momentum=0.9)
            variables = {**self._vars(scale=a["gamma"], bias=a["beta"]),
                         "batch_stats": {"mean": self.J(c.arrays["running_mean"], np.float32),
                                         "var": self.J(c.arrays["running_var"], np.float32)}}
            xl = self._to_last(a["x"])
            y_eval = m.apply(variables, xl, use_running_average=True)
            y_train, _ = m.apply(variables, xl, use_running_average=False, mutable=["batch_stats"])
            return {"y_train": self._to_first(y_train), "y_eval": self._to_first(y_eval)}

        return self._op("flax.linen.BatchNorm", forward, note="channels-last (axis=-1); running statistics as batch_stats")

    def op_layer_norm(self) -> OpImpl:
        LN = self._api("flax.linen.LayerNorm")
        return self._op("flax.linen.LayerNorm", lambda a, c: {"y": LN(epsilon=c.config["eps"]).apply(
            self._vars(scale=a["gamma"], bias=a["beta"]), a["x"])})

    def op_group_norm(self) -> OpImpl:
        GN = self._api("flax.linen.GroupNorm")

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            m = GN(num_groups=c.config["groups"], epsilon=c.config["eps"])
            return {"y": self._to_first(m.apply(self._vars(scale=a["gamma"], bias=a["beta"]), self._to_last(a["x"])))}

        return self._op("flax.linen.GroupNorm", forward, note="channels-last: groups of consecutive channels on the last axis")

    def op_local_response_norm(self) -> OpImpl:
        avg_pool = self._api("flax.linen.avg_pool")

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            x = a["x"]
            size, alpha, beta, k = c.config["size"], c.config["alpha"], c.config["beta"], c.config["k"]
            # Flax pools over the axes between batch and features: on (N, C, H, W) those are C and H, so a
            # (size, 1) window over zero-padded squares is the across-channel mean; alpha * mean = alpha/size * sum.
            mean_sq = avg_pool(x * x, (size, 1), strides=(1, 1), padding=((size // 2, (size - 1) // 2), (0, 0)),
                               count_include_pad=True)
            return {"y": x / (k + alpha * mean_sq) ** beta}

        return self._op("flax.linen.avg_pool of squares across channels", forward, kind="composed",
                        note="Flax has no LRN layer: an average pool of x^2 over a channel window (Caffe alpha/size)")

    def op_dropout(self) -> OpImpl:
        Dropout = self._api("flax.linen.Dropout")
        key = self.jax.random.PRNGKey(0)

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            m = Dropout(rate=c.config["p"])
            return {"y_train": m.apply({}, a["x"], deterministic=False, rngs={"dropout": key}),
                    "y_eval": m.apply({}, a["x"], deterministic=True)}

        return self._op("flax.linen.Dropout", forward, note="rate = drop probability; the mask comes from the 'dropout' rng")

    def op_embedding(self) -> OpImpl:
        Embed = self._api("flax.linen.Embed")

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            table = a["weight"]
            idx = self.J(c.arrays["indices"], np.int32)
            return {"y": Embed(*table.shape).apply(self._vars(embedding=table), idx)}

        return self._op("flax.linen.Embed", forward)

    def op_simple_rnn(self) -> OpImpl:
        RNN, Cell = self._api("flax.linen.RNN"), self._api("flax.linen.SimpleCell")

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            # SimpleCell: h' = tanh(W_i x + b_i + W_h h): parameters 'i' (kernel, bias) and 'h' (kernel only)
            variables = self._vars(cell={"i": {"kernel": a["wx"], "bias": a["b"]}, "h": {"kernel": a["wh"]}})
            h, y = RNN(Cell(c.config["hidden"]), return_carry=True).apply(variables, a["x"])
            return {"y": y, "h": h}

        return self._op("flax.linen.RNN(SimpleCell)", forward, note="batch first (time_major=False); tanh")

    def op_lstm(self) -> OpImpl:
        RNN, Cell = self._api("flax.linen.RNN"), self._api("flax.linen.OptimizedLSTMCell")

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            wx, wh, b = (self._gates(a[k], c.config["gate_order"]) for k in ("wx", "wh", "b"))
            cell: dict[str, Any] = {}
            for gate, flax_gate in FLAX_LSTM_GATES.items():
                cell[f"i{flax_gate}"] = {"kernel": wx[gate]}  # input kernels have no bias in Flax
                cell[f"h{flax_gate}"] = {"kernel": wh[gate], "bias": b[gate]}  # the one bias sits on the h side
            (cell_state, h), y = RNN(Cell(c.config["hidden"]), return_carry=True).apply(self._vars(cell=cell), a["x"])
            return {"y": y, "h": h, "c": cell_state}

        return self._op("flax.linen.RNN(OptimizedLSTMCell)", forward,
                        note="per-gate kernels ii/if/ig/io and hi/hf/hg/ho (bias on h side); carry is (c, h)")

    def op_gru(self) -> OpImpl:
        RNN, Cell = self._api("flax.linen.RNN"), self._api("flax.linen.GRUCell")

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            order = c.config["gate_order"]
            wx, wh, bx, bh = (self._gates(a[k], order) for k in ("wx", "wh", "bx", "bh"))
            # Flax has no recurrent bias on r and z; they are summed with the input bias before the sigmoid, so
            # folding b_hr, b_hz into b_ir, b_iz is exact (and the sum hands the same gradient to both). b_hn stays
            # on 'hn' (inside r * (W_hn h + b_hn)).
            cell = {"ir": {"kernel": wx["r"], "bias": bx["r"] + bh["r"]}, "iz": {"kernel": wx["z"], "bias": bx["z"] + bh["z"]},
                    "in": {"kernel": wx["n"], "bias": bx["n"]}, "hr": {"kernel": wh["r"]}, "hz": {"kernel": wh["z"]},
                    "hn": {"kernel": wh["n"], "bias": bh["n"]}}
            h, y = RNN(Cell(c.config["hidden"]), return_carry=True).apply(self._vars(cell=cell), a["x"])
            return {"y": y, "h": h}

        return self._op("flax.linen.RNN(GRUCell)", forward,
                        note="gates r, z, n; recurrent r/z biases folded into the input biases (exact)")

    def op_bidirectional_rnn(self) -> OpImpl:
        Bi, RNN, Cell = (self._api(f"flax.linen.{n}") for n in ("Bidirectional", "RNN", "SimpleCell"))

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            h = c.config["hidden"]
            variables = self._vars(**{f"{d}ward_rnn": {"cell": {"i": {"kernel": a[f"wx_{s}"], "bias": a[f"b_{s}"]},
                                                                 "h": {"kernel": a[f"wh_{s}"]}}}
                                      for d, s in (("for", "fw"), ("back", "bw"))})
            return {"y": Bi(RNN(Cell(h)), RNN(Cell(h))).apply(variables, a["x"])}

        return self._op("flax.linen.Bidirectional(RNN(SimpleCell))", forward,
                        note="a wrapper; the backward RNN runs reversed and keeps time order; the default merge "
                             "concatenates [forward, backward]")

    def op_multi_head_attention(self) -> OpImpl:
        MHA = self._api("flax.linen.MultiHeadDotProductAttention")

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            e, heads = c.config["embed_dim"], c.config["heads"]
            d = e // heads
            # DenseGeneral kernels: projections (E, heads, head_dim), output (heads, head_dim, E); the catalog's
            # (E, E) matrices keep each head's columns contiguous, so a reshape maps them.
            proj = {n: {"kernel": a[f"w{n[0]}"].reshape(e, heads, d), "bias": a[f"b{n[0]}"].reshape(heads, d)}
                    for n in ("query", "key", "value")}
            variables = self._vars(**proj, out={"kernel": a["wo"].reshape(heads, d, e), "bias": a["bo"]})
            m = MHA(num_heads=heads, qkv_features=e, out_features=e, dropout_rate=0.0, deterministic=True)
            k, v = (self.J(c.arrays[n], np.float32) for n in ("k", "v"))
            return {"y": m.apply(variables, a["q"], k, v)}

        return self._op("flax.linen.MultiHeadDotProductAttention", forward,
                        note="query/key/value/out DenseGeneral kernels are reshapes of the catalog's (E, E) matrices")

    def op_prelu(self) -> OpImpl:
        PReLU = self._api("flax.linen.PReLU")
        jnp = self.jnp
        # Ask the layer what slope it learns for a 3-channel (channels-last) input: per channel or one scalar.
        init = self.jax.eval_shape(lambda: PReLU().init(self.jax.random.PRNGKey(0), jnp.zeros((1, 2, 2, 3))))
        shape = tuple(init["params"]["negative_slope"].shape)
        if shape != ():

            def native(a: dict[str, Any], c: Case) -> Outputs:
                slope = a["alpha"].reshape(shape)
                return {"y": self._to_first(PReLU().apply(self._vars(negative_slope=slope), self._to_last(a["x"])))}

            return self._op("flax.linen.PReLU", native, note=f"slope shape {shape} for channels-last input")

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            x = a["x"]
            alpha = a["alpha"].reshape((1, -1) + (1,) * (x.ndim - 2))
            return {"y": jnp.where(x >= 0, x, alpha * x)}

        return self._op("jax.numpy.where(x >= 0, x, alpha_c * x)", forward, kind="composed",
                        note="flax.linen.PReLU learns one scalar slope (shape ()), not one per channel: composed with where")

    def op_hierarchical_softmax(self) -> OpImpl:
        log_softmax = self._api("jax.nn.log_softmax")
        jnp = self.jnp

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            x, wc, bc, ww, bw = (a[k] for k in ("x", "w_cluster", "b_cluster", "w_word", "b_word"))
            size = ww.shape[2]
            t = np.asarray(c.arrays["targets"])
            cluster, within = self.J(t // size, np.int32), self.J(t % size, np.int32)
            lp_cluster = jnp.take_along_axis(log_softmax(x @ wc + bc), cluster[:, None], axis=1)[:, 0]
            word_logits = jnp.einsum("bd,bds->bs", x, ww[cluster]) + bw[cluster]
            lp_word = jnp.take_along_axis(log_softmax(word_logits), within[:, None], axis=1)[:, 0]
            return {"y": lp_cluster + lp_word}

        return self._op("jax.nn.log_softmax x2 + gather", forward, kind="composed",
                        note="Flax has no hierarchical softmax: two-level class softmax from two log-softmaxes and a gather")

    def op_ctc_loss(self) -> OpImpl:
        ctc = self._api("optax.ctc_loss")
        jnp = self.jnp

        def forward(a: dict[str, Any], c: Case) -> Outputs:
            logits, arr = a["logits"], c.arrays
            t = logits.shape[0]
            n = arr["targets"].shape[1]
            logit_pad = (np.arange(t)[None, :] >= arr["input_lengths"][:, None]).astype(np.float32)  # 1 = padding
            label_pad = (np.arange(n)[None, :] >= arr["target_lengths"][:, None]).astype(np.float32)
            y = ctc(jnp.transpose(logits, (1, 0, 2)), self.J(logit_pad), self.J(arr["targets"], np.int32), self.J(label_pad),
                    blank_id=c.config["blank"])
            return {"y": y}

        return self._op("optax.ctc_loss", forward,
                        note="batch-major (B, T, K) logits (time-major input transposed); lengths as 0/1 paddings; "
                             "optax applies log-softmax itself")

    # ------------------------------------------------------------------------------------------ optimizers
    def _optimizer(self, api: str, make: Callable[[Any, dict[str, Any]], Any], note: str = "") -> OpImpl:
        factory = self._api(api)
        apply_updates = self._api("optax.apply_updates")
        jnp = self.jnp

        def run(c: Case) -> dict[str, Array]:
            tx = make(factory, c.config)
            w = self.J(c.arrays["w"], np.float32)
            state = tx.init(w)
            history = []
            objective = self.jax.grad(lambda p, g: jnp.sum(p * g))  # d/dw sum(w * g) = g, through JAX's autodiff
            for g in c.arrays["grads"]:
                grad = objective(w, self.J(g, np.float32))
                updates, state = tx.update(grad, state, w)
                w = apply_updates(w, updates)
                history.append(self.N(w).copy())
            return {"w": np.stack(history)}

        return OpImpl("native", api, run, note=note)

    def op_sgd(self) -> OpImpl:
        return self._optimizer("optax.sgd", lambda f, h: f(h["lr"]))

    def op_momentum(self) -> OpImpl:
        return self._optimizer("optax.sgd", lambda f, h: f(h["lr"], momentum=h["mu"], nesterov=False),
                               note="optax.sgd(momentum=mu)")

    def op_nesterov(self) -> OpImpl:
        return self._optimizer("optax.sgd", lambda f, h: f(h["lr"], momentum=h["mu"], nesterov=True),
                               note="optax.sgd(momentum=mu, nesterov=True)")

    def op_adagrad(self) -> OpImpl:
        def make(f: Any, h: dict[str, Any]) -> Any:
            require_parameter(f, "initial_accumulator_value", "optax.adagrad")
            return f(h["lr"], initial_accumulator_value=h["initial_accumulator"], eps=h["eps"])

        return self._optimizer("optax.adagrad", make, note="initial_accumulator_value = the case's initial accumulator")

    def op_adadelta(self) -> OpImpl:
        def make(f: Any, h: dict[str, Any]) -> Any:
            require_parameter(f, "learning_rate", "optax.adadelta")
            return f(learning_rate=h["lr"], rho=h["rho"], eps=h["eps"])

        return self._optimizer("optax.adadelta", make,
                               note="optax chains scale_by_adadelta (which accumulates the unscaled delta) with the "
                                    "learning rate")

    def op_rmsprop(self) -> OpImpl:
        return self._optimizer("optax.rmsprop", lambda f, h: f(h["lr"], decay=h["rho"], eps=h["eps"], initial_scale=0.0,
                                                                centered=False, momentum=None),
                               note="decay = rho, initial_scale 0, not centred, no momentum")

    def op_adam(self) -> OpImpl:
        return self._optimizer("optax.adam", lambda f, h: f(h["lr"], b1=h["b1"], b2=h["b2"], eps=h["eps"], eps_root=0.0))

    def op_adamw(self) -> OpImpl:
        return self._optimizer("optax.adamw", lambda f, h: f(h["lr"], b1=h["b1"], b2=h["b2"], eps=h["eps"], eps_root=0.0,
                                                              weight_decay=h["weight_decay"]),
                               note="optax multiplies weight_decay by the learning rate (decoupled, lr-scaled)")

    # ------------------------------------------------------------------------------------------ graphs
    def graph_namespace(self) -> Any:
        jnp = self.jnp
        # item: jax.Array.item(), JAX's method for "an element of an array as a standard Python scalar"
        return types.SimpleNamespace(sum=jnp.sum, tanh=jnp.tanh, matmul=jnp.matmul, item=lambda t: t.item())

    def value_and_grad(self, fn: Callable[..., Any], args: Sequence[Array]) -> tuple[float, Array]:
        """Plain JAX without jit: jax.value_and_grad runs the Python once per call with JVP tracers over concrete
        arrays, op by op."""
        F = self.graph_namespace()
        with self._precise():
            value, grad = self.jax.value_and_grad(lambda *xs: fn(F, *xs))(*(self.J(a) for a in args))
        return float(value), self.N(grad)

    def graph_notes(self) -> list[str]:
        return [f"jax.value_and_grad without jit (jax {self.jax.__version__}): the program runs as Python on every call, "
                "with JVP tracers whose primal values are concrete arrays",
                "F.item is jax.Array.item(), which converts through jax.core.concrete_or_error: outside jit that "
                "accepts a JVP tracer with a concrete primal and returns a Python float, as bool() of a comparison "
                "does for the program's while/if; Python's float() of the same tracer does not look at the primal "
                "(Tracer.__float__) and raises ConcretizationTypeError"]

    def compile_paths(self) -> list[str]:
        return ["jax.jit"] if hasattr(self.jax, "jit") else []

    def compile_path_lookups(self) -> list[str]:
        return ["jax.jit"]

    def compile(self, fn: Callable[..., Any], path: str) -> CompiledFunction:
        if path != "jax.jit":
            return super().compile(fn, path)
        F = self.graph_namespace()
        jitted = self.jax.jit(self.jax.value_and_grad(lambda *xs: fn(F, *xs)))

        def call(args: Sequence[Array]) -> tuple[float, Array]:
            try:
                with self._precise():
                    value, grad = jitted(*(self.J(a) for a in args))
            except Exception as exc:
                # JAX appends a note about its filtered traceback frames; it would hide the error in one-line summaries
                notes = getattr(exc, "__notes__", None)
                if notes:
                    exc.__notes__ = [n for n in notes if "removed its internal frames" not in n]
                raise
            return float(value), self.N(grad)

        cache_size = getattr(jitted, "_cache_size", None)
        traces: Callable[[], int | None] = (lambda: int(cache_size())) if callable(cache_size) else (lambda: None)
        counted = "traces() is the jitted function's _cache_size()" if callable(cache_size) else "no trace count"
        notes = [f"jax.jit of jax.value_and_grad(program); {counted}",
                 "JAX's appended note about filtered traceback frames is dropped from raised errors, so the one-line "
                 "error in the record is the error itself"]
        return CompiledFunction(path, call, traces, notes)

    # ------------------------------------------------------------------------------------------ throughput
    def _step_precision(self, precision: str) -> str:
        """The jax_default_matmul_precision a workload's step runs under (see PRECISION_SETTINGS)."""
        if precision not in PRECISION_SETTINGS:
            raise Unsupported(f"no JAX setting for precision {precision!r}", looked_up=[f"precision {precision!r}"])
        return PRECISION_SETTINGS[precision]

    def _bf16(self) -> Any:
        """jax.numpy.bfloat16, looked up at run time."""
        return require(self.jnp, "bfloat16", "jax.numpy")

    def _peak_memory(self) -> tuple[Callable[[], int | None], list[str]]:
        """peak_memory() for a workload built now, and what it means. JAX has no reset of the allocator's peak
        counter (Device.memory_stats()['peak_bytes_in_use'] covers the whole process), so the workload's own peak is
        known exactly only when it raised that counter above its value at build time; otherwise None."""
        if self.device == "cpu":
            return (lambda: None), []
        d = self.dev
        stats = d.memory_stats() or {}
        if "peak_bytes_in_use" not in stats:
            return (lambda: None), [f"{d.device_kind}: memory_stats() has no peak_bytes_in_use: peak memory not known"]
        baseline = int(stats["peak_bytes_in_use"])

        def peak() -> int | None:
            now = int((d.memory_stats() or {}).get("peak_bytes_in_use", 0))
            return now if now > baseline else None

        return peak, [f"peak memory: {d.device_kind} memory_stats()['peak_bytes_in_use'] when this workload raised it "
                      f"above its value when the workload was built ({baseline} bytes); JAX has no call that resets "
                      "that process-wide counter, so a workload that stayed below an earlier peak reports none"]

    def _counting_jit(self, fn: Callable[..., Any], traced: list[int], **options: Any) -> Any:
        """jax.jit of fn with a counter in its Python body: that body runs only while JAX traces it, so the counter is
        the number of traces."""

        @functools.wraps(fn)
        def body(*args: Any) -> Any:
            traced[0] += 1
            return fn(*args)

        return self.jax.jit(body, **options)

    def workload(self, spec: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """The single-op workloads: gemm (jax.numpy.matmul) and conv2d (jax.lax.conv_general_dilated on NCHW/OIHW)."""
        jax, jnp = self.jax, self.jnp
        if spec.kind != "op":
            raise NotMapped(f"{spec.id} is a training workload: the harness builds it through model_workload")
        setting = self._step_precision(precision)
        compiled = mode == "compiled"
        last: list[Any] = [None]
        traced = [0]
        if spec.id == "gemm":
            operands = (self.J(arrays["a"], np.float32), self.J(arrays["b"], np.float32))
            f: Callable[..., Any] = jnp.matmul
            notes = []
        elif spec.id == "conv2d":
            conv = self._api("jax.lax.conv_general_dilated")
            operands = (self.J(arrays["x"], np.float32), self.J(arrays["w"], np.float32))

            def f(p: Any, q: Any) -> Any:
                return conv(p, q, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))

            notes = ["jax.lax.conv_general_dilated on NCHW/OIHW directly (JAX's convolution takes any layout)"]
        else:
            raise NotMapped(f"the jax adapter has no single-op workload {spec.id}")
        notes.append(PRECISION_NOTES[precision])
        if precision == "bf16":
            bf16, inner = self._bf16(), f

            def f(p: Any, q: Any) -> Any:  # noqa: F811 (the op in bfloat16: operands cast inside the step)
                return inner(p.astype(bf16), q.astype(bf16))

            notes.append("operands cast to bfloat16 inside the step; the output is bfloat16")
        g = self._counting_jit(f, traced) if compiled else f
        if compiled:
            notes.append("the op is one jax.jit; traces() counts runs of its Python body (tracing only)")

        def sync() -> None:
            if last[0] is not None:
                jax.block_until_ready(last[0])

        def op_step() -> Any:
            with jax.default_matmul_precision(setting):
                last[0] = g(*operands)
            return last[0]

        peak, peak_notes = self._peak_memory()
        notes.extend(peak_notes)
        return Workload(self._watch_compiles(op_step, sync, notes), sync, 0, "jax.jit" if compiled else None,
                        notes, observe=lambda y: {"y": np.asarray(y, np.float32)},
                        compile_scope="op" if compiled else None,
                        traces=(lambda: traced[0]) if compiled else (lambda: None), peak_memory=peak, precision=precision)

    def model_workload(self, model: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """The training step of any catalog model: a Flax Linen module whose __call__ walks the model's nodes (one
        Flax layer, or jax.numpy where Flax has none, per node kind: CatalogLayers), the catalog's parameters loaded
        into Flax's layouts (CatalogLayers.load), the mean softmax cross-entropy of optax, jax.value_and_grad and
        optax.sgd; compiled: the whole step in one jax.jit."""
        jax = self.jax
        optax = self._api("optax")
        setting = self._step_precision(precision)
        compiled = mode == "compiled"
        dtype = self._bf16() if precision == "bf16" else self.jnp.float32
        layers = CatalogLayers(self, model, dtype)
        module = layers.module()
        trainable_np, frozen_np = layers.load(arrays)
        x_np = layers.input_array(arrays["x"])
        stats_np = layers.check_tree(module, trainable_np, frozen_np, x_np)
        put = functools.partial(self.J, dtype=None)
        trainable = jax.tree_util.tree_map(put, trainable_np)
        frozen = jax.tree_util.tree_map(put, frozen_np)
        stats = jax.tree_util.tree_map(put, stats_np)
        x, labels = put(x_np), self.J(arrays["labels"], np.int32)
        tx = optax.sgd(LEARNING_RATE)
        xent = optax.softmax_cross_entropy_with_integer_labels
        mutable = ["batch_stats"] if stats_np else False

        def loss_fn(p: Any, fz: Any, bs: Any, xb: Any, yb: Any) -> tuple[Any, Any]:
            variables = {"params": layers.flax_params(p, fz), **({"batch_stats": bs} if mutable else {})}
            if mutable:
                logits, updated = module.apply(variables, xb, mutable=mutable)
                new_stats = updated["batch_stats"]
            else:
                logits, new_stats = module.apply(variables, xb), bs
            return xent(logits.astype(self.jnp.float32), yb).mean(), new_stats

        def train_step(p: Any, opt_state: Any, bs: Any, fz: Any, xb: Any, yb: Any) -> tuple[Any, Any, Any, Any]:
            (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, fz, bs, xb, yb)
            updates, opt_state = tx.update(grads, opt_state, p)
            return optax.apply_updates(p, updates), opt_state, new_stats, loss

        notes = layers.notes()
        notes.append(f"optax.sgd({LEARNING_RATE}) on the mean of optax.softmax_cross_entropy_with_integer_labels "
                     "(logits in float32)")
        notes.append(PRECISION_NOTES[precision])
        traced = [0]
        if compiled:
            step_fn = self._counting_jit(train_step, traced, donate_argnums=(0, 1, 2))
            notes.append("the whole step (forward, loss, gradient, optax SGD update, batch statistics) is one jax.jit; "
                         "parameters, optimizer state and batch statistics are donated; traces() counts runs of its "
                         "Python body (tracing only)")
        else:
            step_fn = train_step
            notes.append("plain JAX without jit: jax.value_and_grad and the optax update run op by op")
            if any(n.kind in ("lstm_last", "gru") for n in model.nodes):
                notes.append("flax.linen.RNN runs the time loop as one lax.scan; outside jit JAX compiles that scan and "
                             "its transpose again at every call (jax_log_compiles shows it), which dominates the step")
        state = {"params": trainable, "opt": tx.init(trainable), "stats": stats}
        last: list[Any] = [None]

        def step() -> Any:
            with jax.default_matmul_precision(setting):
                state["params"], state["opt"], state["stats"], loss = step_fn(
                    state["params"], state["opt"], state["stats"], frozen, x, labels)
            last[0] = (loss, state["params"])
            return loss

        def sync() -> None:
            if last[0] is not None:
                jax.block_until_ready(last[0])

        def observe(loss: Any) -> dict[str, Any]:
            return {"loss": np.asarray(loss, np.float64), **layers.catalog_params(state["params"])}

        peak, peak_notes = self._peak_memory()
        notes.extend(peak_notes)
        count = sum(int(np.size(v)) for v in jax.tree_util.tree_leaves(trainable_np))
        return Workload(self._watch_compiles(step, sync, notes), sync, count, "jax.jit" if compiled else None,
                        notes, observe=observe, compile_scope="step" if compiled else None,
                        traces=(lambda: traced[0]) if compiled else (lambda: None), peak_memory=peak, precision=precision)

    def _watch_compiles(self, step: Callable[[], Any], sync: Callable[[], None], notes: list[str]) -> Callable[[], Any]:
        """The step (returning what it returns), noting once how many XLA compilations its second call (a steady
        step) triggered."""
        calls = [0]

        def watched() -> Any:
            calls[0] += 1
            if calls[0] != 2 or not self.compiles.available:
                return step()
            before, seconds = self.compiles.count, self.compiles.seconds
            result = step()
            sync()
            n = self.compiles.count - before
            spent = f" ({self.compiles.seconds - seconds:.2f} s of compiling inside a steady step)" if n else ""
            notes.append(f"XLA compilations during the second step: {n}{spent}")
            return result

        return watched

    # ------------------------------------------------------------------------------------------ numerics
    def array_api(self) -> ArrayAPI:
        return ArrayAPI("jax.numpy", self.jnp, self.jnp.asarray, lambda t: np.asarray(t), getattr(self.jnp, "from_dlpack", None))

    # ------------------------------------------------------------------------------------------ scale
    def allreduce(self, rank: int, world: int, host: str, port: int, value: Array) -> AllReduceResult:
        """jax.distributed (JAX's own multi-process runtime: rank 0 hosts the coordinator service on host:port, no
        helper process) plus a jitted shard_map'd lax.psum over a one-device-per-process mesh. On CPU XLA runs the
        cross-process collective through its built-in Gloo (jax_cpu_collectives_implementation); on CUDA each
        process owns exactly the GPU of its device (local_device_ids=[N] for cuda:N, so two ranks never share one)
        and XLA's GPU collectives (NCCL) do the reduction. initialize must come before the backend exists: the
        adapter's constructor creates no array, so nothing has started it."""
        jax = self.jax
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        platform = jax_platform(self.device)
        options: dict[str, Any] = {}
        if platform == "cpu":
            jax.config.update("jax_cpu_collectives_implementation", "gloo")  # the default in 0.10; said explicitly
        elif platform == "gpu":
            options["local_device_ids"] = [device_index(self.device)]
        else:
            raise NotMapped(f"the jax adapter knows no device {self.device!r}")
        # timeouts under the probe's 150 s per child, so a missing peer is an error, not a hang
        jax.distributed.initialize(coordinator_address=f"{host}:{port}", num_processes=world, process_id=rank,
                                   initialization_timeout=60, shutdown_timeout_seconds=30, **options)
        try:
            devices = jax.devices(platform)
            # one device per process (the first of each), in process order, as the mesh axis "p"
            per_process = [min((d for d in devices if d.process_index == p), key=lambda d: d.id) for p in range(world)]
            mine = per_process[rank]
            mesh = Mesh(np.array(per_process), ("p",))
            local = jax.device_put(np.asarray(value, np.float32)[None], mine)
            spec = PartitionSpec("p")
            stacked = jax.make_array_from_single_device_arrays((world, *value.shape), NamedSharding(mesh, spec), [local])
            psum = jax.jit(jax.shard_map(lambda x: jax.lax.psum(x, "p"), mesh=mesh, in_specs=spec, out_specs=spec))
            out = np.asarray(psum(stacked).addressable_data(0))[0]
            collectives = jax.config.jax_cpu_collectives_implementation if platform == "cpu" else "nccl"
            notes = ["the reduced array is a global jax.Array of shape (world, *value.shape), one row per process, "
                     "built with jax.make_array_from_single_device_arrays"]
            if platform == "gpu":
                notes.append(f"rank {rank} on {self.device}: jax.distributed.initialize(local_device_ids="
                             f"{options['local_device_ids']}); its device is {mine.device_kind} id {mine.id} "
                             f"(local hardware id {getattr(mine, 'local_hardware_id', '?')})")
            return AllReduceResult(f"jax.distributed + jax.shard_map(jax.lax.psum), {collectives}", True, out, notes)
        finally:
            jax.distributed.shutdown()

    # ------------------------------------------------------------------------------------------ onnx
    def _onnx_model(self, model: Any) -> tuple[Callable[[Any], Any], list[str]]:
        """The catalog model as a pure function of its input (weights closed over), and any notes."""
        nn = self._api("flax.linen")
        jnp = self.jnp
        if model.catalog is not None:  # the catalog model from the same Flax layers as its training workloads
            return self._catalog_function(model.model(), model.weights())
        w = model.weights()
        if model.id == "mlp":
            class MLP(nn.Module):  # type: ignore[misc, name-defined]
                @nn.compact
                def __call__(self, x: Any) -> Any:
                    return nn.Dense(10, name="fc2")(nn.relu(nn.Dense(32, name="fc1")(x)))

            params = self._params(fc1={"kernel": w["w1"], "bias": w["b1"]}, fc2={"kernel": w["w2"], "bias": w["b2"]})
            return (lambda x: MLP().apply(params, x)), []
        if model.id == "cnn":
            class CNN(nn.Module):  # type: ignore[misc, name-defined]
                @nn.compact
                def __call__(self, x: Any) -> Any:  # x: NCHW, as the catalog gives it
                    h = nn.Conv(4, (3, 3), padding=((1, 1), (1, 1)), name="conv")(jnp.transpose(x, (0, 2, 3, 1)))
                    # keyword arguments: jax2onnx replaces flax.linen.max_pool by a function taking window_shape
                    # and strides as keywords only
                    h = nn.max_pool(nn.relu(h), window_shape=(2, 2), strides=(2, 2))
                    h = jnp.transpose(h, (0, 3, 1, 2)).reshape(h.shape[0], -1)
                    return nn.Dense(10, name="fc")(h)

            params = self._params(conv={"kernel": oihw_to_hwio(w["conv_w"]), "bias": w["conv_b"]},
                                  fc={"kernel": w["fc_w"], "bias": w["fc_b"]})
            return (lambda x: CNN().apply(params, x)), [
                "flax.linen.max_pool called with keyword window_shape/strides: jax2onnx's patched max_pool rejects them "
                "positionally"]
        raise KeyError(model.id)

    def _catalog_function(self, model: Any, arrays: dict[str, Array]) -> tuple[Callable[[Any], Any], list[str]]:
        """A catalog model's inference forward pass as a function of its input in the catalog's layout (NCHW images
        are transposed to Flax's NHWC inside it), built by CatalogLayers as model_workload builds it, in inference
        mode, with the catalog's parameters and a fresh module's batch statistics."""
        layers = CatalogLayers(self, model, self.jnp.float32, inference=True)
        module = layers.module()
        trainable, frozen = layers.load(arrays)
        stats = layers.check_tree(module, trainable, frozen, layers.input_array(model.batch()["x"]))
        variables = self.jax.tree_util.tree_map(
            lambda a: self.J(a, np.float32),
            {"params": layers.flax_params(trainable, frozen), **({"batch_stats": stats} if stats else {})})
        image = model.input_kind == "image"

        def forward(x: Any) -> Any:
            return module.apply(variables, self.jnp.transpose(x, nchw_to_nhwc(2)) if image else x)

        notes = layers.notes()
        if image:
            notes.append("the exported function takes NCHW and transposes to NHWC itself (one Transpose in the graph)")
        return forward, notes

    def onnx_export(self, model: Any, path: str, opset: int | None) -> ExportResult:
        to_onnx = self._api("jax2onnx.to_onnx")
        import onnx

        fn, notes = self._onnx_model(model)
        x = model.sample_input()
        tokens = np.issubdtype(x.dtype, np.integer)
        kwargs: dict[str, Any] = {"input_names": ["x"], "output_names": ["y"], "model_name": f"showdown_{model.id}"}
        if opset is not None:
            kwargs["opset"] = opset
        # int64 token inputs stay int64 only with JAX's 64-bit types on (else JAX narrows them to int32); the
        # parameters are float32 arrays either way
        x64 = self._api("jax.enable_x64")(True) if tokens else contextlib.nullcontext()
        if tokens:
            notes = [*notes, "int64 token input: traced and exported under jax.enable_x64(True)"]
        with x64:
            with self._precise():
                expected = self.N(fn(self.J(x) if tokens else self.J(x, np.float32)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                proto = to_onnx(fn, [self.jax.ShapeDtypeStruct(x.shape, x.dtype if tokens else self.jnp.float32)],
                                **kwargs)
        onnx.save(proto, path)
        used = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
        return ExportResult("jax2onnx.to_onnx", distribution_versions("jax2onnx")["jax2onnx"], opset or int(used),
                            expected, notes)

    def onnx_import(self, path: str) -> ImportResult:
        backend = self._api("jaxonnxruntime.backend.Backend")
        import onnx

        rep = backend.prepare(onnx.load(path), self._platform())

        def run(x: Array) -> Array:
            with self._precise():
                (y, *_) = rep.run({"x": self.J(np.asarray(x, np.float32))})
            return self.N(y)

        proto = onnx.load(path)
        initializers = {i.name for i in proto.graph.initializer}
        names = [i.name for i in proto.graph.input if i.name not in initializers]

        def value(v: Any) -> Any:
            return None if v is None else [value(i) for i in v] if isinstance(v, (list, tuple)) else self.N(v)

        def run_many(inputs: list[Any]) -> list[Any]:
            def feed(v: Any) -> Any:
                return None if v is None else [feed(i) for i in v] if isinstance(v, list) else self.J(v)

            with self._precise():
                out = rep.run({n: feed(v) for n, v in zip(names, inputs)})
            return [value(o) for o in out]

        # jaxonnxruntime says no highest opset: its handlers resolve any version through onnx's schemas
        return ImportResult("jaxonnxruntime", distribution_versions("jaxonnxruntime")["jaxonnxruntime"], run,
                            run_many=run_many)
