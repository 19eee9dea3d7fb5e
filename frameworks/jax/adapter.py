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
    OpImpl,
    Unsupported,
    Workload,
    distribution_versions,
    require,
    require_parameter,
)
from harness.catalog.ops import Case
from harness.catalog.workloads import LEARNING_RATE

Array = np.ndarray
Outputs = dict[str, Any]
CANONICAL_LSTM = "ifgo"  # the catalog's gate order for the throughput LSTM
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
        import jax
        import jax.numpy as jnp

        self.jax = jax
        self.jnp = jnp
        self._dev: Any = None
        self.compiles = CompileCounter(jax.monitoring)

    # ------------------------------------------------------------------------------------------ identity
    def versions(self) -> dict[str, str]:
        return distribution_versions("jax", "jaxlib", "flax", "optax", "numpy", "onnx", "onnxruntime", "jax2onnx",
                                     "jaxonnxruntime", "jax-cuda12-plugin")

    def _platform(self) -> str:
        return "cpu" if self.device == "cpu" else "gpu"

    def device_available(self) -> tuple[bool, str]:
        try:
            devices = self.jax.devices(self._platform())
        except RuntimeError as exc:
            return False, f"jax {self.jax.__version__} has no {self._platform()} backend: {str(exc)[:200]}"
        index = int(self.device.partition(":")[2] or 0)
        if index >= len(devices):
            return False, f"jax sees {len(devices)} {self._platform()} device(s), not index {index}"
        return True, ""

    @property
    def dev(self) -> Any:
        """The jax.Device of self.device (looked up on first use, after device_available)."""
        if self._dev is None:
            self._dev = self.jax.devices(self._platform())[int(self.device.partition(":")[2] or 0)]
            self.jax.config.update("jax_default_device", self._dev)
        return self._dev

    def device_info(self) -> dict[str, Any]:
        d = self.dev
        info: dict[str, Any] = {"platform": d.platform, "device_kind": d.device_kind, "backend": self.jax.default_backend()}
        stats = getattr(d, "memory_stats", lambda: None)()
        if stats and "bytes_limit" in stats:
            info["memory_bytes"] = int(stats["bytes_limit"])
        return info

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
    def _train_model(self, spec_id: str, a: dict[str, Array]) -> tuple[Any, dict[str, Any], dict[str, Any], Any,
                                                                        Callable[[Any], dict[str, Array]], list[str]]:
        """(module, trainable params, frozen params, input data in Flax's layout, the map from trained Flax
        parameters back to the catalog's names and layouts, notes) for a training workload."""
        nn = self._api("flax.linen")
        jnp = self.jnp
        notes: list[str] = []
        frozen: dict[str, Any] = {}
        x = a["x"]
        if spec_id == "mlp_train":
            h, c = a["w1"].shape[1], a["w3"].shape[1]

            class MLP(nn.Module):  # type: ignore[misc, name-defined]
                @nn.compact
                def __call__(self, x: Any) -> Any:
                    x = nn.relu(nn.Dense(h, name="fc1")(x))
                    x = nn.relu(nn.Dense(h, name="fc2")(x))
                    return nn.Dense(c, name="fc3")(x)

            params = {f"fc{i}": {"kernel": a[f"w{i}"], "bias": a[f"b{i}"]} for i in (1, 2, 3)}

            def mlp_catalog(p: Any) -> dict[str, Array]:
                return {f"{k}{i}": self.N(p[f"fc{i}"][leaf]) for i in (1, 2, 3) for k, leaf in (("w", "kernel"), ("b", "bias"))}

            return MLP(), params, frozen, x, mlp_catalog, notes
        if spec_id == "cnn_train":
            c1, c2, classes = a["conv1_w"].shape[0], a["conv2_w"].shape[0], a["fc_w"].shape[1]

            class CNN(nn.Module):  # type: ignore[misc, name-defined]
                @nn.compact
                def __call__(self, x: Any) -> Any:  # x: NHWC
                    for name, features in (("conv1", c1), ("conv2", c2)):
                        x = nn.relu(nn.Conv(features, (3, 3), padding=((1, 1), (1, 1)), name=name)(x))
                        x = nn.max_pool(x, window_shape=(2, 2), strides=(2, 2))
                    x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)  # flatten in the catalog's NCHW order
                    return nn.Dense(classes, name="fc")(x)

            params = {"conv1": {"kernel": oihw_to_hwio(a["conv1_w"]), "bias": a["conv1_b"]},
                      "conv2": {"kernel": oihw_to_hwio(a["conv2_w"]), "bias": a["conv2_b"]},
                      "fc": {"kernel": a["fc_w"], "bias": a["fc_b"]}}

            def cnn_catalog(p: Any) -> dict[str, Array]:
                out = {f"{n}_w": hwio_to_oihw(self.N(p[n]["kernel"])) for n in ("conv1", "conv2")}
                out |= {f"{n}_b": self.N(p[n]["bias"]) for n in ("conv1", "conv2")}
                return out | {"fc_w": self.N(p["fc"]["kernel"]), "fc_b": self.N(p["fc"]["bias"])}

            notes.append("input converted once to Flax's NHWC layout outside the step; flattened in NCHW order inside")
            return CNN(), params, frozen, np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1))), cnn_catalog, notes
        if spec_id == "lstm_train":
            hid, classes = a["wh"].shape[0], a["fc_w"].shape[1]

            class LSTMClassifier(nn.Module):  # type: ignore[misc, name-defined]
                @nn.compact
                def __call__(self, x: Any) -> Any:
                    (_, h), _ = nn.RNN(nn.OptimizedLSTMCell(hid, name="cell"), return_carry=True, name="rnn")(x)
                    return nn.Dense(classes, name="fc")(h)

            wx, wh = gate_blocks(a["wx"], CANONICAL_LSTM), gate_blocks(a["wh"], CANONICAL_LSTM)
            cell: dict[str, Any] = {}
            for gate, fg in FLAX_LSTM_GATES.items():
                cell[f"i{fg}"] = {"kernel": wx[gate]}
                cell[f"h{fg}"] = {"kernel": wh[gate]}
                frozen[f"h{fg}"] = {"bias": np.zeros(hid, np.float32)}

            def lstm_catalog(p: Any) -> dict[str, Array]:
                cells = p["cell"]
                stack = {side: np.concatenate([self.N(cells[f"{side}{FLAX_LSTM_GATES[g]}"]["kernel"]) for g in CANONICAL_LSTM],
                                              axis=-1) for side in ("i", "h")}
                return {"wx": stack["i"], "wh": stack["h"], "fc_w": self.N(p["fc"]["kernel"]), "fc_b": self.N(p["fc"]["bias"])}

            notes.append("Flax's LSTM cells always carry a bias (on hi/hf/hg/ho): held at zero and not trained, so the "
                         "trained parameters are the catalog's bias-free LSTM")
            return (LSTMClassifier(), {"cell": cell, "fc": {"kernel": a["fc_w"], "bias": a["fc_b"]}}, {"cell": frozen}, x,
                    lstm_catalog, notes)
        raise KeyError(spec_id)

    def _merge(self, trainable: Any, frozen: Any) -> Any:
        """Nested-dict union of trainable and frozen parameters."""
        from flax import traverse_util

        flat = {**traverse_util.flatten_dict(trainable), **traverse_util.flatten_dict(frozen)}
        return traverse_util.unflatten_dict(flat)

    def _check_tree(self, model: Any, params: dict[str, Any], x: Array) -> None:
        """The copied parameters must be exactly the module's own (Flax ignores extra entries, which would make
        the parameter count a lie)."""
        jax = self.jax
        expected = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), self.jnp.zeros(x.shape, self.jnp.float32)))
        want = jax.tree_util.tree_map(lambda v: tuple(v.shape), expected["params"])
        got = jax.tree_util.tree_map(lambda v: tuple(np.shape(v)), params)
        if want != got:
            raise ValueError(f"copied parameters {got} do not match the module's {want}")

    def workload(self, spec: Any, arrays: dict[str, Array], mode: str) -> Workload:
        jax, jnp = self.jax, self.jnp
        compiled = mode == "compiled"
        path = "jax.jit" if compiled else None
        last: list[Any] = [None]
        traced = [0]

        def sync() -> None:
            if last[0] is not None:
                jax.block_until_ready(last[0])

        def jit(fn: Callable[..., Any], **options: Any) -> Any:
            """jax.jit of fn with a counter in its Python body: that body runs only while JAX traces it, so the
            counter is the number of traces."""

            @functools.wraps(fn)
            def body(*args: Any) -> Any:
                traced[0] += 1
                return fn(*args)

            return jax.jit(body, **options)

        traces: Callable[[], int | None] = (lambda: traced[0]) if compiled else (lambda: None)
        precision = ("matmuls and convolutions at jax.default_matmul_precision('highest'), full float32 (JAX's "
                     "default on recent NVIDIA GPUs would be TF32)")

        if spec.kind == "op":
            if spec.id == "gemm":
                a, b = self.J(arrays["a"]), self.J(arrays["b"])
                f: Callable[..., Any] = jnp.matmul
                args: tuple[Any, ...] = (a, b)
                notes = [precision]
            elif spec.id == "conv2d":
                conv = self._api("jax.lax.conv_general_dilated")
                x, w = self.J(arrays["x"]), self.J(arrays["w"])

                def f(p: Any, q: Any) -> Any:
                    return conv(p, q, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))

                args = (x, w)
                notes = ["jax.lax.conv_general_dilated on NCHW/OIHW directly (JAX's convolution takes any layout)", precision]
            else:
                raise KeyError(spec.id)
            g = jit(f) if compiled else f
            if compiled:
                notes.append("the op is one jax.jit; traces() counts runs of its Python body (tracing only)")

            def op_step() -> Any:
                with self._precise():
                    last[0] = g(*args)
                return last[0]

            return Workload(self._watch_compiles(op_step, sync, notes), sync, 0, path, notes,
                            observe=lambda y: {"y": self.N(y)}, compile_scope="op" if compiled else None, traces=traces)

        optax = self._api("optax")
        model, params_np, frozen_np, x_np, to_catalog, notes = self._train_model(spec.id, arrays)
        self._check_tree(model, self._merge(params_np, frozen_np), x_np)
        trainable = jax.tree_util.tree_map(lambda v: self.J(v, np.float32), params_np)
        frozen = jax.tree_util.tree_map(lambda v: self.J(v, np.float32), frozen_np)
        x, labels = self.J(x_np, np.float32), self.J(arrays["labels"], np.int32)
        tx = optax.sgd(LEARNING_RATE)
        notes.append(f"optax.sgd({LEARNING_RATE}) on the mean of optax.softmax_cross_entropy_with_integer_labels")
        notes.append(precision)

        def loss_fn(p: Any, fz: Any, xb: Any, yb: Any) -> Any:
            logits = model.apply({"params": self._merge(p, fz)}, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        def train_step(p: Any, opt_state: Any, fz: Any, xb: Any, yb: Any) -> tuple[Any, Any, Any]:
            loss, grads = jax.value_and_grad(loss_fn)(p, fz, xb, yb)
            updates, opt_state = tx.update(grads, opt_state, p)
            return optax.apply_updates(p, updates), opt_state, loss

        if compiled:
            step_fn = jit(train_step, donate_argnums=(0, 1))
            notes.append("the whole step (forward, loss, gradient, optax SGD update) is one jax.jit; parameters and "
                         "optimizer state are donated; traces() counts runs of its Python body (tracing only)")
        else:
            step_fn = train_step
            notes.append("op-by-op JAX without jit (jax.value_and_grad, optax SGD)")
            if spec.id == "lstm_train":
                notes.append("flax.linen.RNN runs the time loop as one lax.scan; outside jit JAX compiles that scan and "
                             "its transpose again at every call (jax_log_compiles shows it), which dominates the step")
        state = {"params": trainable, "opt": tx.init(trainable)}

        def step() -> Any:
            with self._precise():
                state["params"], state["opt"], loss = step_fn(state["params"], state["opt"], frozen, x, labels)
            last[0] = (loss, state["params"])
            return loss

        def observe(loss: Any) -> dict[str, Any]:
            return {"loss": self.N(loss), **to_catalog(state["params"])}

        count = sum(int(v.size) for v in jax.tree_util.tree_leaves(trainable))
        return Workload(self._watch_compiles(step, sync, notes), sync, count, path, notes, observe=observe,
                        compile_scope="step" if compiled else None, traces=traces)

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
        helper process) plus a jitted shard_map'd lax.psum over a one-device-per-process mesh; on CPU XLA runs the
        cross-process collective through its built-in Gloo (jax_cpu_collectives_implementation). initialize must
        come before the backend exists: the adapter's constructor creates no array, so nothing has started it."""
        jax = self.jax
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        if self.device == "cpu":
            jax.config.update("jax_cpu_collectives_implementation", "gloo")  # the default in 0.10; said explicitly
        # timeouts under the probe's 150 s per child, so a missing peer is an error, not a hang
        jax.distributed.initialize(coordinator_address=f"{host}:{port}", num_processes=world, process_id=rank,
                                   initialization_timeout=60, shutdown_timeout_seconds=30)
        try:
            devices = jax.devices(self._platform())
            # one device per process (the first of each), in process order, as the mesh axis "p"
            per_process = [min((d for d in devices if d.process_index == p), key=lambda d: d.id) for p in range(world)]
            mesh = Mesh(np.array(per_process), ("p",))
            local = jax.device_put(np.asarray(value, np.float32)[None], per_process[rank])
            spec = PartitionSpec("p")
            stacked = jax.make_array_from_single_device_arrays((world, *value.shape), NamedSharding(mesh, spec), [local])
            psum = jax.jit(jax.shard_map(lambda x: jax.lax.psum(x, "p"), mesh=mesh, in_specs=spec, out_specs=spec))
            out = np.asarray(psum(stacked).addressable_data(0))[0]
            collectives = f", {jax.config.jax_cpu_collectives_implementation}" if self.device == "cpu" else ""
            return AllReduceResult(f"jax.distributed + jax.shard_map(jax.lax.psum){collectives}", True, out,
                                   ["the reduced array is a global jax.Array of shape (world, *value.shape), one row "
                                    "per process, built with jax.make_array_from_single_device_arrays"])
        finally:
            jax.distributed.shutdown()

    # ------------------------------------------------------------------------------------------ onnx
    def _onnx_model(self, model: Any) -> tuple[Callable[[Any], Any], list[str]]:
        """The catalog model as a pure function of its input (weights closed over), and any notes."""
        nn = self._api("flax.linen")
        jnp = self.jnp
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

    def onnx_export(self, model: Any, path: str, opset: int | None) -> ExportResult:
        to_onnx = self._api("jax2onnx.to_onnx")
        import onnx

        fn, notes = self._onnx_model(model)
        x = model.sample_input()
        with self._precise():
            expected = self.N(fn(self.J(x)))
        kwargs: dict[str, Any] = {"input_names": ["x"], "output_names": ["y"], "model_name": f"showdown_{model.id}"}
        if opset is not None:
            kwargs["opset"] = opset
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proto = to_onnx(fn, [self.jax.ShapeDtypeStruct(x.shape, self.jnp.float32)], **kwargs)
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

        return ImportResult("jaxonnxruntime", distribution_versions("jaxonnxruntime")["jaxonnxruntime"], run)
