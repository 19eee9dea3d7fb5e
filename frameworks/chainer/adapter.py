"""Chainer adapter: chainer.links, chainer.functions, chainer.optimizers; the experimental chainer.static_graph
(trace once, replay a static schedule) as the only compile path; the onnx_chainer exporter that the chainer 7.8.1
distribution ships; no ONNX importer.

Chainer is in maintenance mode since 2019 (7.8.1 is its last release). Two of its habits shape this adapter:
- Variables refuse Python comparisons (`v < 1.0` raises TypeError: Chainer code compares `v.array`), so the graph
  namespace's `sum` returns a Variable that compares by its array, the Chainer idiom, leaving the programs as written.
- Links hold weights as (out, in) and recurrent links keep one weight block per gate (w0..w7 for NStepLSTM), so every
  catalog array is mapped explicitly below, citing the order Chainer documents (or, where its docs and its
  code disagree, the order the code runs).

Training workloads are catalog models (harness.catalog.models): model_workload builds each node with the link or
function for its kind (_node) and wires the nodes by name, so any model made of the catalog's node kinds runs.

Precision: on CUDA Chainer computes through CuPy (cuBLAS) and cuDNN. CuPy's TF32 switch is the CUPY_TF32 environment
variable (documented, default 0, read once per process); cuDNN picks each float32 convolution's math mode by its own
heuristics (TF32 allowed on Ampere and later) unless NVIDIA_TF32_OVERRIDE=0, which turns TF32 off in NVIDIA's
libraries for the whole process. Both are set to 0 before chainer (and with it cupy) is imported.
"""

from __future__ import annotations

import importlib.util
import math
import os
import socket
import time
import types
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import numpy as np

from harness.adapter import (
    PRECISIONS,
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
    device_index,
    distribution_versions,
    reorder_gates,
    require,
    require_parameter,
    resolve,
)
from harness.catalog.models import NORM_EPS
from harness.catalog.ops import Case
from harness.catalog.workloads import LEARNING_RATE

Array = np.ndarray
CANONICAL_LSTM = "ifgo"  # the catalog's gate order
# chainer.functions.n_step_lstm's docstring says i = W0 x + W4 h, f = W1, o = W2, a (= g) = W3, but its code feeds
# [W2, W0, W1, W3] to chainer.functions.lstm, whose gates are (a, i, f, o): W2 is the cell input g and W3 the output
# gate (chainer issue #8579, closed unfixed). The code decides what runs: i, f, g, o
CHAINER_LSTM = "ifgo"
# chainer.functions.n_step_gru documents r = W0 x + W3 h, z = W1 x + W4 h, h' = tanh(W2 x + b2 + r * (W5 h + b5)):
# gate order r, z, n with the reset gate applied after the recurrent matmul
CHAINER_GRU = "rzn"
CANONICAL_GRU = "rzn"  # the catalog's gru node: gates r, z, n
STATIC_GRAPH = "chainer.static_graph"
#: a catalog parameter for _result: the chainer Variable holding it as is, or (chainer variables, their gradients ->
#: the catalog's layout)
Params = dict[str, Any]
Forward = Any  # outputs, or (outputs, Params)
#: strict float32, set in os.environ before chainer and cupy are imported (see the module docstring)
STRICT_FP32_ENV = {"CUPY_TF32": "0", "NVIDIA_TF32_OVERRIDE": "0"}
#: node kinds chainer has no layer for, and how model_workload composes them
_COMPOSED_KINDS = {
    "gelu": "gelu as 0.5 x (1 + erf(x / sqrt 2)) from chainer.functions.erf (chainer 7.8.1 has no gelu)",
    "self_attention": "self_attention from four chainer.links.Linear and chainer.functions.matmul / softmax (chainer has "
                      "no multi-head attention)",
    "positional": "positional: a Link holding the (T, D) table, added through chainer.functions.broadcast_to (chainer has "
                  "no position-embedding link)",
    "lstm_last": "lstm_last: chainer.functions.n_step_lstm (the function behind chainer.links.NStepLSTM) on the node's "
                 "weights with constant zero biases, since the NStepLSTM link always trains 8 bias vectors",
}


def cuda_version(number: int) -> str:
    """CUDA's encoded version (1000 major + 10 minor, e.g. 12040) as "12.4"."""
    return f"{number // 1000}.{number % 1000 // 10}"


def cudnn_version(number: int) -> str:
    """cuDNN's encoded version as "major.minor.patch": 1000 major + 100 minor + patch before cuDNN 9 (8801 is
    8.8.1), 10000 major + 100 minor + patch from cuDNN 9 (90100 is 9.1.0)."""
    if number >= 90000:
        return f"{number // 10000}.{number % 10000 // 100}.{number % 100}"
    return f"{number // 1000}.{number % 1000 // 100}.{number % 100}"


def chainer_device_spec(device: str) -> str:
    """The chainer device specifier of a device string: '@numpy' for the CPU, '@cupy:N' for cuda:N."""
    index = device_index(device)
    return "@numpy" if index is None else f"@cupy:{index}"


def gate_blocks(w: Array, src: str, dst: str, axis: int = -1) -> list[Array]:
    """Split stacked gate blocks along `axis` (order `src`) and return them in order `dst`."""
    blocks = np.split(w, len(src), axis=axis)
    return [blocks[src.index(g)] for g in dst]


def code_tree(path_table: Array, path_code: Array) -> tuple[Any, list[int]]:
    """The catalog's binary tree (each class's nodes and codes, root first, padded with -1) as the nested
    (left, right) tuples chainer's BinaryHierarchicalSoftmax parses, plus the catalog node behind each of chainer's
    node numbers. Chainer numbers internal nodes in depth-first pre-order and scores the left child with +W.x
    (code 1.0) and the right one with -W.x, so the catalog's code-1 child (probability sigmoid(score)) goes left."""
    children: dict[int, dict[int, Any]] = {}
    for cls, (nodes, codes) in enumerate(zip(path_table, path_code)):
        path = [(int(n), int(b)) for n, b in zip(nodes, codes) if n >= 0]
        for (node, bit), nxt in zip(path, [p[0] for p in path[1:]] + [None]):
            children.setdefault(node, {})[bit] = ("node", nxt) if nxt is not None else ("leaf", cls)
    order: list[int] = []

    def build(node: int) -> Any:
        order.append(node)
        sides = []
        for bit in (1, 0):
            kind, value = children[node][bit]
            sides.append(build(value) if kind == "node" else value)
        return tuple(sides)

    return build(int(path_table[0][0])), order


class ChainerAdapter(Adapter):
    name = "chainer"
    distribution = "chainer"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self._index = device_index(device)  # checks the string only: nothing here queries a GPU
        # strict float32 before chainer imports cupy (which reads CUPY_TF32) and before any NVIDIA library loads
        # (they read NVIDIA_TF32_OVERRIDE when they initialise)
        os.environ.update(STRICT_FP32_ENV)
        import chainer
        import chainer.functions as F
        import chainer.links as L
        import chainer.optimizers as O

        self.chainer = chainer
        self.F, self.L, self.O = F, L, O
        # links allocate their parameters in config.dtype (CHAINER_DTYPE may say float16 or mixed16); cuDNN tensor
        # cores only when asked ('never': not even for float16); cuDNN's persistent batch normalisation off
        chainer.global_config.dtype = np.dtype(np.float32)
        chainer.global_config.use_cudnn_tensor_core = "never"
        chainer.global_config.cudnn_fast_batch_normalization = False
        self._precision = {**{k: os.environ[k] for k in STRICT_FP32_ENV},
                           "chainer.config.dtype": str(chainer.global_config.dtype),
                           "chainer.config.use_cudnn_tensor_core": chainer.global_config.use_cudnn_tensor_core,
                           "chainer.config.cudnn_fast_batch_normalization": chainer.global_config.cudnn_fast_batch_normalization}
        self._dev: Any = None
        self._comparable = self._comparable_variable_class()

    @property
    def dev(self) -> Any:
        """The chainer device, made on first use (a GPU one needs CuPy and the GPU, so device_available() comes
        first); a GPU becomes this process's current CUDA device, where CuPy allocates and launches kernels."""
        if self._dev is None:
            dev = self.chainer.get_device(chainer_device_spec(self.device))
            if self._index is not None:
                dev.use()
            self._dev = dev
        return self._dev

    # ------------------------------------------------------------------------------------------ identity
    def versions(self) -> dict[str, str]:
        names = ["chainer", "numpy", "onnx", "onnxruntime", "protobuf", "mpi4py", "mpich"]
        return distribution_versions(*names, *(["cupy-cuda12x", "nvidia-nccl-cu12"] if self._index is not None else []))

    def _cuda_devices(self) -> tuple[int, str]:
        """How many CUDA devices CuPy sees, and why none when it sees none."""
        cuda = self.chainer.backends.cuda
        if not cuda.available:
            err = getattr(cuda, "_resolution_error", None)
            why = f": {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}" if err is not None else ""
            return 0, f"chainer {self.chainer.__version__} cannot use CuPy, so it has no CUDA backend{why}"
        try:
            count = int(cuda.cupy.cuda.runtime.getDeviceCount())
        except Exception as exc:  # CUDARuntimeError without a driver or a device
            return 0, f"CuPy {cuda.cupy.__version__} finds no CUDA device: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return count, "" if count else f"CuPy {cuda.cupy.__version__} sees no CUDA device"

    def gpu_count(self) -> int:
        return self._cuda_devices()[0]

    def device_available(self) -> tuple[bool, str]:
        if self._index is None:
            return True, ""
        count, why = self._cuda_devices()
        if not count:
            return False, why
        if self._index >= count:
            return False, f"{self.device} asked for, and CuPy sees {count} CUDA device(s) (cuda:0 to cuda:{count - 1})"
        return True, ""

    def device_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"device": self.device, "precision": dict(self._precision),
                                "precision_notes": "CUPY_TF32=0: CuPy's cuBLAS matmuls in full float32 (its default); "
                                                   "NVIDIA_TF32_OVERRIDE=0: no TF32 in cuBLAS or cuDNN, whose float32 "
                                                   "convolutions chainer and CuPy otherwise leave to cuDNN's math-mode "
                                                   "heuristics; on the CPU chainer computes with NumPy, which has no TF32",
                                "chainerx": self.chainer.backend.chainerx.is_available()}
        if self._index is None:
            info["array_backend"] = "numpy"
            return info
        ok, why = self.device_available()
        if not ok:
            info["unavailable"] = why
            return info
        cuda = self.chainer.backends.cuda
        cupy = cuda.cupy
        runtime = cupy.cuda.runtime
        props = runtime.getDeviceProperties(self._index)
        name = props["name"]
        info.update(array_backend=f"cupy {cupy.__version__}", gpu_index=self._index,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    memory_bytes=int(props["totalGlobalMem"]), compute_capability=f"{props['major']}.{props['minor']}",
                    cuda_runtime=cuda_version(runtime.runtimeGetVersion()), cuda_driver=cuda_version(runtime.driverGetVersion()))
        if cuda.cudnn_enabled:
            info["cudnn"] = cudnn_version(int(cuda.libcudnn.getVersion()))
        else:
            err = getattr(cuda, "_resolution_error", None)
            info["cudnn"] = None
            info["cudnn_unavailable"] = ("disabled by CHAINER_CUDNN=0" if getattr(cuda, "_cudnn_disabled_by_user", False)
                                         else f"{type(err).__name__}: {str(err).splitlines()[0][:200]}" if err is not None
                                         else "chainer.backends.cuda.cudnn_enabled is False")
        return info

    # ------------------------------------------------------------------------------------------ helpers
    def T(self, a: Array, dtype: Any = None) -> Any:
        """A NumPy array on the adapter's device (float32 unless `dtype` says otherwise)."""
        return self.dev.send(np.ascontiguousarray(a, dtype=dtype or np.float32))

    def P(self, a: Array) -> Any:
        """A Parameter holding a copy of a catalog array (on the CPU, chainer would otherwise train the caller's
        NumPy array in place)."""
        return self.chainer.Parameter(self.T(np.array(a, dtype=np.float32, copy=True)))

    def V(self, a: Array) -> Any:
        return self.chainer.Variable(self.T(a))

    def ints(self, a: Array) -> Any:
        """Integer indices as int32, the only index type chainer's EmbedID, CTC and hierarchical softmax accept."""
        return self.T(a, np.int32)

    def N(self, v: Any) -> Array:
        array = v.array if isinstance(v, self.chainer.Variable) else v
        return np.asarray(self.chainer.backend.CpuDevice().send(array))

    def _set(self, target: Any, value: Array) -> None:
        """Copy a catalog array (already in chainer's layout) into a Parameter or a persistent array."""
        value = np.asarray(value, np.float32)
        current = target.array if isinstance(target, self.chainer.Variable) else target
        if tuple(current.shape) != value.shape:
            raise ValueError(f"layout mapping error: chainer expects {tuple(current.shape)}, got {value.shape}")
        current[...] = self.T(value)

    def _api(self, dotted: str) -> Any:
        """Resolve 'chainer.links.Linear' at run time; a missing name raises Unsupported naming it."""
        return resolve(self.chainer, dotted)

    def _to_device(self, link: Any) -> Any:
        link.to_device(self.dev)
        return link

    def _result(self, case: Case, wrt: Any, outputs: dict[str, Any], params: Params | None = None) -> dict[str, Array]:
        """Outputs as NumPy, plus "grads": the vector-Jacobian product with the case's cotangents w.r.t. the input
        `wrt` (named case.grad_wrt) and every catalog parameter in `params`.

        `params` maps a catalog name to the chainer Variable/Parameter that holds it in the catalog's layout, or to
        (variables, to_catalog): the chainer parameters it was loaded into and a function that maps their gradients
        (NumPy, in chainer's layouts) back to the catalog's layout. Every gradient comes from one chainer.grad call."""
        out = {k: self.N(v) for k, v in outputs.items()}
        if case.grad_wrt is None:
            return out
        specs: dict[str, tuple[Sequence[Any], Callable[..., Array]]] = {}
        for name, spec in {case.grad_wrt: wrt, **(params or {})}.items():
            specs[name] = spec if isinstance(spec, tuple) else ([spec], lambda g: g)
        sources: dict[int, Any] = {}
        for variables, _ in specs.values():
            for v in variables:
                sources.setdefault(id(v), v)
        names = list(case.cotangents)
        grads = self.chainer.grad([outputs[k] for k in names], list(sources.values()),
                                  [self.V(case.cotangents[k]) for k in names])
        # chainer.grad gives None for an input the outputs do not depend on: its gradient is zero
        by_id = {key: (np.zeros(v.shape, np.float32) if g is None else self.N(g)) for (key, v), g in zip(sources.items(), grads)}
        out["grads"] = {name: to_catalog(*(by_id[id(v)] for v in variables)) for name, (variables, to_catalog) in specs.items()}
        return out

    def _input_op(self, api: str, forward: Callable[[Any, Case], Forward], kind: str = "native",
                  variant: str | None = None, note: str = "") -> OpImpl:
        """An op applied to the case's grad_wrt input (APIs are resolved by the caller, before this). `forward`
        returns the outputs, or (outputs, params) with the catalog parameters as `_result` takes them."""

        def run(case: Case) -> dict[str, Array]:
            x = self.V(case.arrays[case.grad_wrt or "x"])
            result = forward(x, case)
            outputs, params = result if isinstance(result, tuple) else (result, {})
            return self._result(case, x, outputs, params)

        return OpImpl(kind, api, run, variant, note)

    @staticmethod
    def _transposed(param: Any) -> tuple[list[Any], Callable[[Array], Array]]:
        """A catalog (in, out) weight held by chainer as (out, in)."""
        return [param], lambda g: g.T

    @staticmethod
    def _gates(params: Sequence[Any], src: str, dst: str, transposed: bool) -> tuple[list[Any], Callable[..., Array]]:
        """A catalog array of stacked gate blocks (order `dst`) held by chainer as one parameter per gate (order
        `src`, each (H, in) when `transposed`): their gradients stacked back in the catalog's order and layout."""

        def to_catalog(*grads: Array) -> Array:
            stacked = np.concatenate([g.T if transposed else g for g in grads], axis=-1)
            return reorder_gates(stacked, src, dst)

        return list(params), to_catalog

    # ------------------------------------------------------------------------------------------ layers
    def op_dense(self) -> OpImpl:
        Linear = self._api("chainer.links.Linear")

        def forward(x: Any, c: Case) -> dict[str, Any]:
            w = c.arrays["w"]
            m = self._to_device(Linear(*w.shape))
            self._set(m.W, w.T)  # chainer's Linear.W is (out, in); the catalog's W is (in, out)
            self._set(m.b, c.arrays["b"])
            return {"y": m(x)}, {"w": self._transposed(m.W), "b": m.b}

        return self._input_op("chainer.links.Linear", forward, note="W transposed: chainer keeps (out, in)")

    def _conv(self, api: str, ndim: int) -> OpImpl:
        Conv = self._api(api)

        def forward(x: Any, c: Case) -> dict[str, Any]:
            w = c.arrays["w"]  # (O, C, *k): chainer's own layout for Convolution1D/2D/3D
            m = self._to_device(Conv(w.shape[1], w.shape[0], w.shape[2:], stride=c.config["stride"], pad=c.config["padding"],
                                     dilate=c.config["dilation"]))
            self._set(m.W, w)
            self._set(m.b, c.arrays["b"])
            return {"y": m(x)}, {"w": m.W, "b": m.b}

        return self._input_op(api, forward, note=f"{ndim}-D, default cover_all=False")

    def op_conv1d(self) -> OpImpl:
        return self._conv("chainer.links.Convolution1D", 1)

    def op_conv2d(self) -> OpImpl:
        return self._conv("chainer.links.Convolution2D", 2)

    def op_conv3d(self) -> OpImpl:
        return self._conv("chainer.links.Convolution3D", 3)

    def op_conv_transpose2d(self) -> OpImpl:
        Deconv = self._api("chainer.links.Deconvolution2D")

        def forward(x: Any, c: Case) -> dict[str, Any]:
            w = c.arrays["w"]  # (C_in, C_out, kH, kW): chainer's Deconvolution2D layout too
            m = self._to_device(Deconv(w.shape[0], w.shape[1], w.shape[2:], stride=c.config["stride"], pad=c.config["padding"]))
            self._set(m.W, w)
            self._set(m.b, c.arrays["b"])
            return {"y": m(x)}, {"w": m.W, "b": m.b}

        return self._input_op("chainer.links.Deconvolution2D", forward)

    def op_separable_conv2d(self) -> OpImpl:
        Depthwise = self._api("chainer.links.DepthwiseConvolution2D")
        Conv = self._api("chainer.links.Convolution2D")

        def forward(x: Any, c: Case) -> dict[str, Any]:
            dw, pw = c.arrays["w_depthwise"], c.arrays["w_pointwise"]
            ch = dw.shape[0]
            depth = self._to_device(Depthwise(ch, 1, dw.shape[2:], stride=c.config["stride"], pad=c.config["padding"], nobias=True))
            self._set(depth.W, dw.transpose(1, 0, 2, 3))  # chainer: (channel_multiplier, C, kH, kW); catalog: (C, 1, kH, kW)
            point = self._to_device(Conv(ch, pw.shape[0], 1))
            self._set(point.W, pw)
            self._set(point.b, c.arrays["b"])
            return {"y": point(depth(x))}, {"w_depthwise": ([depth.W], lambda g: g.transpose(1, 0, 2, 3)),
                                            "w_pointwise": point.W, "b": point.b}

        return self._input_op("chainer.links.DepthwiseConvolution2D + chainer.links.Convolution2D(1x1)", forward, kind="composed",
                              note="chainer has no separable-convolution layer: its depthwise convolution, then a 1x1 convolution")

    def op_max_pool2d(self) -> OpImpl:
        pool = self._api("chainer.functions.max_pooling_2d")
        return self._input_op("chainer.functions.max_pooling_2d",
                              lambda x, c: {"y": pool(x, c.config["kernel"], c.config["stride"], pad=c.config.get("padding", 0),
                                                      cover_all=False)},
                              note="cover_all=False set explicitly (chainer's default True can add an output row/column); "
                                   "chainer pads with -inf, so padded cells never win")

    def op_avg_pool2d(self) -> OpImpl:
        pool = self._api("chainer.functions.average_pooling_2d")
        return self._input_op("chainer.functions.average_pooling_2d",
                              lambda x, c: {"y": pool(x, c.config["kernel"], c.config["stride"], c.config["padding"])},
                              note="chainer's 2-D average pooling always divides by the kernel area")

    def op_global_avg_pool2d(self) -> OpImpl:
        mean = self._api("chainer.functions.mean")
        return self._input_op("chainer.functions.mean(axis=(2, 3))", lambda x, c: {"y": mean(x, axis=(2, 3))}, kind="composed",
                              note="chainer has no global pooling layer: the mean over H and W")

    def op_upsample_nearest2d(self) -> OpImpl:
        unpool = self._api("chainer.functions.unpooling_2d")
        return self._input_op(
            "chainer.functions.unpooling_2d",
            lambda x, c: {"y": unpool(x, c.config["scale"], c.config["scale"], cover_all=False)},
            note="chainer's nearest-neighbour upsampling (each value spread over a scale x scale block); cover_all=False",
        )

    def op_batch_norm(self) -> OpImpl:
        BN = self._api("chainer.links.BatchNormalization")

        def forward(x: Any, c: Case) -> dict[str, Any]:
            a = c.arrays
            m = self._to_device(BN(a["gamma"].shape[0], eps=c.config["eps"]))
            self._set(m.gamma, a["gamma"])
            self._set(m.beta, a["beta"])
            self._set(m.avg_mean, a["running_mean"])
            self._set(m.avg_var, a["running_var"])
            with self.chainer.using_config("train", False):
                y_eval = m(x)
            with self.chainer.using_config("train", True):
                y_train = m(x)
            return {"y_train": y_train, "y_eval": y_eval}, {"gamma": m.gamma, "beta": m.beta}

        return self._input_op("chainer.links.BatchNormalization", forward, note="eval under chainer.using_config('train', False)")

    def op_layer_norm(self) -> OpImpl:
        LN = self._api("chainer.links.LayerNormalization")

        def forward(x: Any, c: Case) -> dict[str, Any]:
            m = self._to_device(LN(c.arrays["gamma"].shape[0], eps=c.config["eps"]))
            self._set(m.gamma, c.arrays["gamma"])
            self._set(m.beta, c.arrays["beta"])
            lead = x.shape[:-1]
            return {"y": m(x.reshape(-1, x.shape[-1])).reshape(*lead, x.shape[-1])}, {"gamma": m.gamma, "beta": m.beta}

        return self._input_op("chainer.links.LayerNormalization", forward,
                              note="the link takes 2-D (batch, features) input only: leading axes flattened and restored")

    def op_group_norm(self) -> OpImpl:
        GN = self._api("chainer.links.GroupNormalization")

        def forward(x: Any, c: Case) -> dict[str, Any]:
            m = self._to_device(GN(c.config["groups"], c.arrays["gamma"].shape[0], eps=c.config["eps"]))
            self._set(m.gamma, c.arrays["gamma"])
            self._set(m.beta, c.arrays["beta"])
            return {"y": m(x)}, {"gamma": m.gamma, "beta": m.beta}

        return self._input_op("chainer.links.GroupNormalization", forward)

    def op_local_response_norm(self) -> OpImpl:
        lrn = self._api("chainer.functions.local_response_normalization")

        def forward(x: Any, c: Case) -> dict[str, Any]:
            cfg = c.config
            # chainer's alpha multiplies the window sum directly; the catalog's (Caffe) alpha is divided by size
            return {"y": lrn(x, n=cfg["size"], k=cfg["k"], alpha=cfg["alpha"] / cfg["size"], beta=cfg["beta"])}

        return self._input_op("chainer.functions.local_response_normalization", forward,
                              note="alpha passed as alpha / size: chainer does not divide it by n")

    def op_dropout(self) -> OpImpl:
        dropout = self._api("chainer.functions.dropout")

        def forward(x: Any, c: Case) -> dict[str, Any]:
            with self.chainer.using_config("train", False):
                y_eval = dropout(x, ratio=c.config["p"])
            with self.chainer.using_config("train", True):
                y_train = dropout(x, ratio=c.config["p"])
            return {"y_train": y_train, "y_eval": y_eval}

        return self._input_op("chainer.functions.dropout", forward, note="ratio = drop probability; identity when train is False")

    def op_embedding(self) -> OpImpl:
        Embed = self._api("chainer.links.EmbedID")

        def run(c: Case) -> dict[str, Array]:
            w = c.arrays["weight"]
            m = self._to_device(Embed(*w.shape))
            self._set(m.W, w)
            return self._result(c, m.W, {"y": m(self.ints(c.arrays["indices"]))})

        return OpImpl("native", "chainer.links.EmbedID", run, note="indices passed as int32 (EmbedID rejects int64)")

    def _nstep(self, link: Any, x: Any, states: int = 1) -> tuple[Any, ...]:
        """Run an NStep* link on a batch-first (B, T, F) Variable from zero initial states (None): chainer takes a
        list of B (T, F) sequences and returns the final states and the list of B output sequences."""
        return link(*([None] * states), list(self.F.separate(x, axis=0)))

    def op_simple_rnn(self) -> OpImpl:
        RNN = self._api("chainer.links.NStepRNNTanh")

        def forward(x: Any, c: Case) -> dict[str, Any]:
            a = c.arrays
            m = self._to_device(RNN(1, a["wx"].shape[0], c.config["hidden"], 0.0))
            # chainer.functions.n_step_rnn: h_t = tanh(W0 x_t + W1 h_{t-1} + b0 + b1), W as (out, in)
            self._set(m.ws[0][0], a["wx"].T)
            self._set(m.ws[0][1], a["wh"].T)
            self._set(m.bs[0][0], a["b"])
            self._set(m.bs[0][1], np.zeros_like(a["b"]))
            hy, ys = self._nstep(m, x)
            params = {"wx": self._transposed(m.ws[0][0]), "wh": self._transposed(m.ws[0][1]), "b": m.bs[0][0]}
            return {"y": self.F.stack(ys, axis=0), "h": hy[0]}, params

        return self._input_op("chainer.links.NStepRNNTanh", forward, note="chainer keeps two biases; the second is set to 0")

    def op_lstm(self) -> OpImpl:
        LSTM = self._api("chainer.links.NStepLSTM")

        def forward(x: Any, c: Case) -> dict[str, Any]:
            a, order = c.arrays, c.config["gate_order"]
            m = self._to_device(LSTM(1, a["wx"].shape[0], c.config["hidden"], 0.0))
            wx, wh = gate_blocks(a["wx"], order, CHAINER_LSTM), gate_blocks(a["wh"], order, CHAINER_LSTM)
            bx = gate_blocks(a["b"], order, CHAINER_LSTM)
            for k in range(4):  # w0..w3 act on x, w4..w7 on h, each (H, in); b4..b7 are the second biases, set to 0
                self._set(m.ws[0][k], wx[k].T)
                self._set(m.ws[0][4 + k], wh[k].T)
                self._set(m.bs[0][k], bx[k])
                self._set(m.bs[0][4 + k], np.zeros_like(bx[k]))
            hy, cy, ys = self._nstep(m, x, states=2)
            ws, bs = m.ws[0], m.bs[0]
            params = {"wx": self._gates(ws[:4], CHAINER_LSTM, order, True), "wh": self._gates(ws[4:], CHAINER_LSTM, order, True),
                      "b": self._gates(bs[:4], CHAINER_LSTM, order, False)}
            return {"y": self.F.stack(ys, axis=0), "h": hy[0], "c": cy[0]}, params

        return self._input_op("chainer.links.NStepLSTM", forward,
                              note=f"gate order {CHAINER_LSTM} as the code runs it (w0..w3 input, w4..w7 recurrent; the docstring's order "
                                   "i, f, o, g is wrong, chainer issue #8579); second biases set to 0")

    def op_gru(self) -> OpImpl:
        GRU = self._api("chainer.links.NStepGRU")

        def forward(x: Any, c: Case) -> dict[str, Any]:
            a, order = c.arrays, c.config["gate_order"]
            m = self._to_device(GRU(1, a["wx"].shape[0], c.config["hidden"], 0.0))
            wx, wh = gate_blocks(a["wx"], order, CHAINER_GRU), gate_blocks(a["wh"], order, CHAINER_GRU)
            bx, bh = gate_blocks(a["bx"], order, CHAINER_GRU), gate_blocks(a["bh"], order, CHAINER_GRU)
            for k in range(3):  # w0..w2 and b0..b2 act on x, w3..w5 and b3..b5 on h
                self._set(m.ws[0][k], wx[k].T)
                self._set(m.ws[0][3 + k], wh[k].T)
                self._set(m.bs[0][k], bx[k])
                self._set(m.bs[0][3 + k], bh[k])
            hy, ys = self._nstep(m, x)
            ws, bs = m.ws[0], m.bs[0]
            params = {"wx": self._gates(ws[:3], CHAINER_GRU, order, True), "wh": self._gates(ws[3:], CHAINER_GRU, order, True),
                      "bx": self._gates(bs[:3], CHAINER_GRU, order, False), "bh": self._gates(bs[3:], CHAINER_GRU, order, False)}
            return {"y": self.F.stack(ys, axis=0), "h": hy[0]}, params

        return self._input_op("chainer.links.NStepGRU", forward, note=f"gate order {CHAINER_GRU} (w0..w2 input, w3..w5 recurrent)")

    def op_bidirectional_rnn(self) -> OpImpl:
        BiRNN = self._api("chainer.links.NStepBiRNNTanh")

        def forward(x: Any, c: Case) -> dict[str, Any]:
            a = c.arrays
            m = self._to_device(BiRNN(1, a["x"].shape[2], c.config["hidden"], 0.0))
            for i, d in enumerate(("fw", "bw")):  # ws[0] runs forward in time, ws[1] backward
                self._set(m.ws[i][0], a[f"wx_{d}"].T)
                self._set(m.ws[i][1], a[f"wh_{d}"].T)
                self._set(m.bs[i][0], a[f"b_{d}"])
                self._set(m.bs[i][1], np.zeros_like(a[f"b_{d}"]))
            _, ys = self._nstep(m, x)
            params: Params = {}
            for i, d in enumerate(("fw", "bw")):
                params |= {f"wx_{d}": self._transposed(m.ws[i][0]), f"wh_{d}": self._transposed(m.ws[i][1]), f"b_{d}": m.bs[i][0]}
            return {"y": self.F.stack(ys, axis=0)}, params

        return self._input_op("chainer.links.NStepBiRNNTanh", forward,
                              note="a bidirectional link of its own rather than a wrapper; output [forward, backward]")

    def op_multi_head_attention(self) -> OpImpl:
        looked = [("chainer.links", self.L, "MultiHeadAttention"), ("chainer.functions", self.F, "multihead_attention")]
        found = [f"{where}.{name}" for where, mod, name in looked if hasattr(mod, name)]
        if not found:
            raise Unsupported(f"chainer {self.chainer.__version__} has no multi-head attention: "
                              + "; ".join(f"{where} has no {name}" for where, _, name in looked),
                              looked_up=[f"{where}.{name}" for where, _, name in looked])
        raise NotMapped(f"{', '.join(found)} exists, but this adapter does not map its parameters yet")

    def op_prelu(self) -> OpImpl:
        PReLU = self._api("chainer.links.PReLU")

        def forward(x: Any, c: Case) -> dict[str, Any]:
            alpha = c.arrays["alpha"]
            m = self._to_device(PReLU(shape=alpha.shape))  # W broadcast from axis 1, the channel axis
            self._set(m.W, alpha)
            return {"y": m(x)}, {"alpha": m.W}

        return self._input_op("chainer.links.PReLU", forward)

    def op_hierarchical_softmax(self) -> OpImpl:
        BHSM = self._api("chainer.links.BinaryHierarchicalSoftmax")

        def forward(x: Any, c: Case) -> dict[str, Any]:
            a = c.arrays
            tree, order = code_tree(a["path_table"], a["path_code"])
            w = np.concatenate([a["w_nodes"], a["b_nodes"][:, None]], axis=1)[order]
            m = self._to_device(BHSM(w.shape[1], tree))
            self._set(m.W, w)
            # the link has no node biases: x gets a constant 1 feature whose weight is the node's bias
            xb = self.F.concat([x, self.T(np.ones((x.shape[0], 1)))], axis=1)
            t = self.ints(a["targets"])
            # the link returns the loss summed over the batch; one call per example gives log p(target) per example
            y = self.F.stack([-m(xb[i : i + 1], t[i : i + 1]) for i in range(x.shape[0])])

            def to_catalog(g: Array) -> Array:  # chainer's row i is catalog node order[i]; the last column is the bias
                rows = np.empty_like(g)
                rows[order] = g
                return rows

            d = a["w_nodes"].shape[1]
            return {"y": y}, {"w_nodes": ([m.W], lambda g: to_catalog(g)[:, :d]), "b_nodes": ([m.W], lambda g: to_catalog(g)[:, d])}

        return self._input_op("chainer.links.BinaryHierarchicalSoftmax", forward, kind="variant", variant="hierarchical_sigmoid",
                              note="chainer's hierarchical softmax is a binary tree (built by its create_huffman_tree from word "
                                   "counts, or given as tuples), not the two-level class softmax; run on the catalog's tree; "
                                   "it has no node biases, so x is extended by a constant 1 whose weights are the biases")

    def op_ctc_loss(self) -> OpImpl:
        ctc = self._api("chainer.functions.connectionist_temporal_classification")

        def forward(logits: Any, c: Case) -> dict[str, Any]:
            a = c.arrays
            y = ctc(list(self.F.separate(logits, axis=0)), self.ints(a["targets"]), c.config["blank"],
                    input_length=self.ints(a["input_lengths"]), label_length=self.ints(a["target_lengths"]), reduce="no")
            return {"y": y}

        return self._input_op("chainer.functions.connectionist_temporal_classification", forward,
                              note="takes a list of T (B, C) unnormalised score arrays and applies the softmax itself")

    # ------------------------------------------------------------------------------------------ optimizers
    def _optimizer(self, api: str, make: Callable[[Any, dict[str, Any]], Any], note: str = "") -> OpImpl:
        Opt = self._api(api)

        def run(c: Case) -> dict[str, Array]:
            link = self.chainer.Link()
            with link.init_scope():
                link.w = self.chainer.Parameter(self.T(c.arrays["w"].copy()))
            link.to_device(self.dev)
            opt = make(Opt, c.config)
            opt.setup(link)
            history = []
            for g in c.arrays["grads"]:
                link.cleargrads()
                self.F.sum(link.w * self.V(g)).backward()  # d/dw of sum(w * g) is g: the catalog's gradient, via autograd
                opt.update()
                history.append(self.N(link.w).copy())
            return {"w": np.stack(history)}

        return OpImpl("native", api, run, note=note)

    def op_sgd(self) -> OpImpl:
        return self._optimizer("chainer.optimizers.SGD", lambda opt, h: opt(lr=h["lr"]))

    def op_momentum(self) -> OpImpl:
        return self._optimizer("chainer.optimizers.MomentumSGD", lambda opt, h: opt(lr=h["lr"], momentum=h["mu"]),
                               note="v = momentum v - lr g; w += v")

    def op_nesterov(self) -> OpImpl:
        return self._optimizer("chainer.optimizers.NesterovAG", lambda opt, h: opt(lr=h["lr"], momentum=h["mu"]),
                               note="chainer's NesterovAG does v = mu v - lr g; w += mu^2 v - (1 + mu) lr g with the UPDATED v, "
                                    "where the paper it cites (Bengio et al. 2013, eq. 7) uses the previous v, which equals the "
                                    "catalog's form (chainer issue #4274, closed unfixed): its iterates differ")

    def op_adagrad(self) -> OpImpl:
        def make(opt: Any, h: dict[str, Any]) -> Any:
            # chainer's AdaGradRule starts its accumulator h at zeros; another start needs a parameter for it
            extra: dict[str, Any] = {}
            if h["initial_accumulator"] != 0.0:
                require_parameter(opt, "initial_accumulator", "chainer.optimizers.AdaGrad")
                extra["initial_accumulator"] = h["initial_accumulator"]
            return opt(lr=h["lr"], eps=h["eps"], **extra)

        return self._optimizer("chainer.optimizers.AdaGrad", make,
                               note="the accumulator starts at 0, as the default case asks; chainer's AdaGrad takes no "
                                    "initial-accumulator parameter, so the case with one is unsupported")

    def op_adadelta(self) -> OpImpl:
        def make(opt: Any, h: dict[str, Any]) -> Any:
            # chainer's update is w -= dx (Zeiler's algorithm as published, i.e. lr 1): any other rate needs a parameter
            extra: dict[str, Any] = {}
            if h["lr"] != 1.0:
                require_parameter(opt, "lr", "chainer.optimizers.AdaDelta")
                extra["lr"] = h["lr"]
            return opt(rho=h["rho"], eps=h["eps"], **extra)

        return self._optimizer("chainer.optimizers.AdaDelta", make,
                               note="chainer's AdaDelta takes no learning rate (w -= dx, i.e. lr 1.0): it matches the "
                                    "catalog's lr 1.0 and could not express any other")

    def op_rmsprop(self) -> OpImpl:
        return self._optimizer("chainer.optimizers.RMSprop",
                               lambda opt, h: opt(lr=h["lr"], alpha=h["rho"], eps=h["eps"], eps_inside_sqrt=False),
                               note="alpha = rho; eps_inside_sqrt=False (chainer's default) set explicitly")

    def op_adam(self) -> OpImpl:
        return self._optimizer("chainer.optimizers.Adam",
                               lambda opt, h: opt(alpha=h["lr"], beta1=h["b1"], beta2=h["b2"], eps=h["eps"], eta=1.0,
                                                  weight_decay_rate=0.0, amsgrad=False, adabound=False),
                               note="alpha = lr; eta 1, no weight decay, amsgrad and adabound off, all set explicitly")

    def op_adamw(self) -> OpImpl:
        # chainer: w -= eta * (alpha_t m / (sqrt(v) + eps) + weight_decay_rate * w): the decay is scaled by eta, not by
        # alpha, so the catalog's decay "scaled by lr" is weight_decay_rate = lr * weight_decay
        return self._optimizer("chainer.optimizers.AdamW",
                               lambda opt, h: opt(alpha=h["lr"], beta1=h["b1"], beta2=h["b2"], eps=h["eps"], eta=1.0,
                                                  weight_decay_rate=h["lr"] * h["weight_decay"]),
                               note="weight_decay_rate = lr * weight_decay: chainer scales the decay by eta (1), not alpha")

    # ------------------------------------------------------------------------------------------ graphs
    def _comparable_variable_class(self) -> type:
        """A Variable subclass whose comparisons (and truth value) use its array, as Chainer code writes
        `v.array < c`; plain Variables raise TypeError for `<` by design."""
        Variable = self.chainer.Variable

        class ComparableVariable(Variable):
            def __lt__(self, other: Any) -> bool:
                return bool(self.array < other)

            def __le__(self, other: Any) -> bool:
                return bool(self.array <= other)

            def __gt__(self, other: Any) -> bool:
                return bool(self.array > other)

            def __ge__(self, other: Any) -> bool:
                return bool(self.array >= other)

            def __bool__(self) -> bool:
                return bool(self.array)

        return ComparableVariable

    def graph_namespace(self) -> Any:
        F = self.F

        def total(x: Any) -> Any:
            v = F.sum(x)
            v.__class__ = self._comparable  # same object and graph node; only its comparisons change
            return v

        # item: Variable.item(), chainer's own scalar read (the array's .item(), a host sync on GPU)
        return types.SimpleNamespace(sum=total, tanh=F.tanh, matmul=F.matmul, item=lambda v: v.item())

    def graph_notes(self) -> list[str]:
        return ["chainer.Variable does not support < or >: the namespace's sum returns a Variable that compares by "
                "its .array, as Chainer code does by hand; the catalog programs are unchanged"]

    def value_and_grad(self, fn: Callable[..., Any], args: Sequence[Array]) -> tuple[float, Array]:
        xs = [self.V(a) for a in args]
        value = fn(self.graph_namespace(), *xs)
        (g,) = self.chainer.grad([value], [xs[0]])
        return float(self.N(value)), self.N(g)

    def compile_paths(self) -> list[str]:
        return [STATIC_GRAPH] if hasattr(self.chainer, "static_graph") else []

    def compile_path_lookups(self) -> list[str]:
        return [STATIC_GRAPH]

    def _static_chain(self, body: Callable[..., Any], links: dict[str, Any] | None = None,
                      traced: list[int] | None = None) -> Any:
        """A Chain whose __call__ runs `body` under chainer.static_graph: the define-by-run body runs (and is traced
        into a static schedule) on the first call for each input signature; later calls replay the schedule and do
        not run the body. `traced`, when given, counts the runs of the body, i.e. the traces."""
        chainer = self.chainer
        static_graph = require(chainer, "static_graph")

        class StaticChain(chainer.Chain):
            def __init__(self) -> None:
                super().__init__()
                with self.init_scope():
                    for name, link in (links or {}).items():
                        setattr(self, name, link)

            @static_graph
            def __call__(self, *xs: Any) -> Any:
                if traced is not None:
                    traced[0] += 1
                return body(self, *xs)

        return StaticChain()

    @staticmethod
    def _schedule_count(chain: Any) -> int | None:
        manager = getattr(chain, "schedule_manager", None)
        if manager is None:
            return 0
        schedules = getattr(manager, "schedules", None)
        return None if schedules is None else sum(len(v) for v in schedules.values())

    def compile(self, fn: Callable[..., Any], path: str) -> CompiledFunction:
        if path != STATIC_GRAPH:
            return super().compile(fn, path)
        F = self.graph_namespace()
        chain = self._static_chain(lambda _self, *xs: fn(F, *xs))

        def call(args: Sequence[Array]) -> tuple[float, Array]:
            xs = [self.V(a) for a in args]
            value = chain(*xs)
            (g,) = self.chainer.grad([value], [xs[0]])
            return float(self.N(value)), self.N(g)

        notes = ["chainer.static_graph records a schedule on the first call per input signature and replays it: "
                 "control flow that depends on values is not re-evaluated on later calls"]
        return CompiledFunction(path, call, lambda: self._schedule_count(chain), notes)

    # ------------------------------------------------------------------------------------------ throughput
    def _sync(self) -> None:
        if self.device != "cpu":
            self.dev.device.synchronize()

    def _linear(self, w: Array, b: Array | None) -> Any:
        m = self._to_device(self.L.Linear(w.shape[0], w.shape[1], nobias=b is None))
        self._set(m.W, w.T)
        if b is not None:
            self._set(m.b, b)
        return m

    def _conv2d(self, w: Array, b: Array | None, pad: int, stride: int = 1) -> Any:
        m = self._to_device(self.L.Convolution2D(w.shape[1], w.shape[0], w.shape[2:], stride=stride, pad=pad, nobias=b is None))
        self._set(m.W, w)
        if b is not None:
            self._set(m.b, b)
        return m

    def _check_precision(self, precision: str) -> None:
        """Strict float32 is what every workload computes; TF32 and bfloat16 are refused with what was looked up."""
        if precision == "fp32":
            return
        if precision not in PRECISIONS:
            raise KeyError(f"unknown precision {precision!r}")
        chainer = self.chainer
        if precision == "bf16":
            looked = ["chainer.bfloat16", "numpy.dtype('bfloat16')", "chainer.mixed16.dtype"]
            try:  # chainer's dtypes are NumPy's, and its only mixed precision (mixed16) computes in float16
                np.dtype("bfloat16")
                numpy_bf16 = "numpy.dtype('bfloat16') exists"
            except TypeError:
                numpy_bf16 = "NumPy has no bfloat16 dtype"
            mixed = getattr(chainer, "mixed16", None)
            raise Unsupported(
                f"chainer {chainer.__version__} has no bfloat16: "
                + ("it has chainer.bfloat16, which this adapter does not map; " if hasattr(chainer, "bfloat16") else "no chainer.bfloat16; ")
                + f"{numpy_bf16} (chainer computes on NumPy/CuPy dtypes); its mixed precision, chainer.mixed16 "
                  f"(CHAINER_DTYPE=mixed16), computes in {getattr(getattr(mixed, 'dtype', None), 'name', 'an unknown dtype')}",
                looked_up=looked)
        # tf32: chainer itself has no TF32 setting; CuPy's is an environment variable read once per process
        config_keys = sorted(k for k in vars(chainer.global_config) if "tf32" in k.lower())
        cupy_names: list[str] = []
        if self.device != "cpu" and self.chainer.backends.cuda.available:
            cupy = self.chainer.backends.cuda.cupy
            cupy_names = sorted(n for n in dir(cupy) if "tf32" in n.lower() or "compute_type" in n.lower())
        raise Unsupported(
            "chainer has no TF32 switch (chainer.config has " + (", ".join(config_keys) or "no TF32 entry")
            + "); CuPy's, the CUPY_TF32 environment variable, is read once per process (on the first float32 matmul, "
              "then cached), so it cannot be turned on for one workload and off again; CuPy's public namespace offers "
            + (", ".join(cupy_names) if cupy_names else "no per-call TF32 or compute-type setting")
            + "; cuDNN convolutions take their math mode from cuDNN's heuristics, limited only by the process-wide "
              "NVIDIA_TF32_OVERRIDE, which this adapter sets to 0 for strict float32",
            looked_up=["chainer.config.*tf32*", "cupy.*tf32* / cupy.*compute_type* (a per-call switch)",
                       "CUPY_TF32 (read once per process)"])

    def _peak_memory(self) -> tuple[Callable[[], None], Callable[[], int | None]]:
        """(sample, peak) of the device memory CuPy's default memory pool holds on this GPU: the pool's cached free
        blocks are released when the workload is built (the starting point), and the pool's total_bytes (blocks in
        use plus blocks cached for reuse, i.e. what Chainer holds on the device) is sampled after every step; the
        largest sample is the peak. None on the CPU."""
        if self._index is None:
            return (lambda: None), (lambda: None)
        cupy = self.chainer.backends.cuda.cupy
        pool = cupy.get_default_memory_pool()
        device = self.dev.device
        with device:
            pool.free_all_blocks()
        peak = [0]

        def sample() -> None:
            with device:
                peak[0] = max(peak[0], pool.total_bytes())

        def read() -> int | None:
            sample()
            return peak[0]

        sample()
        return sample, read

    def _memory_notes(self) -> list[str]:
        if self._index is None:
            return []
        return [f"peak memory: the largest total_bytes of CuPy's default memory pool on {self.device} (blocks in use plus "
                "blocks cached for reuse: what chainer holds on the GPU), sampled after every step, from a pool emptied "
                "of its cached blocks when the workload was built; CuPy keeps no peak counter of its own"]

    def workload(self, spec: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        chainer, F = self.chainer, self.F
        self._check_precision(precision)
        compiled = mode == "compiled"
        if compiled:
            require(chainer, "static_graph")
        traced = [0]  # runs of the static chain's define-by-run body: one per trace
        if spec.id == "gemm":
            args: tuple[Any, ...] = (self.V(arrays["a"]), self.V(arrays["b"]))

            def body(_chain: Any, p: Any, q: Any) -> Any:
                return F.matmul(p, q)
        elif spec.id == "conv2d":
            args = (self.V(arrays["x"]), self.V(arrays["w"]))

            def body(_chain: Any, p: Any, q: Any) -> Any:
                return F.convolution_2d(p, q, pad=1)
        else:
            raise NotMapped(f"the chainer adapter has no single-op workload {spec.id}")
        run = self._static_chain(body, traced=traced) if compiled else (lambda *xs: body(None, *xs))
        sample, peak = self._peak_memory()

        def op_step() -> Any:
            with chainer.using_config("train", False), chainer.no_backprop_mode():
                y = run(*args)
            sample()
            return y

        notes = ["forward only, under train=False and no_backprop_mode (a static chain reuses its schedule there)",
                 *self._memory_notes()]
        return Workload(op_step, self._sync, 0, STATIC_GRAPH if compiled else None, notes, observe=lambda y: {"y": self.N(y)},
                        compile_scope="op" if compiled else None, traces=(lambda: traced[0]) if compiled else (lambda: None),
                        peak_memory=peak, precision=precision)

    # one builder per catalog node kind: (link holding the node's parameters or None, the node's function of its
    # input Variables, readers of its parameters in the catalog's layout)
    def _node(self, node: Any, shapes: dict[str, tuple[int, ...]], p: dict[str, Array]) -> tuple[Any, Callable[[list[Any]], Any], dict[str, Callable[[], Array]]]:
        F, L, chainer = self.F, self.L, self.chainer
        kind, a = node.kind, node.attrs
        x_shape = shapes[node.inputs[0]] if node.inputs else ()
        N = self.N
        if kind == "dense":
            m = self._linear(p["w"], p.get("b"))
            reads = {"w": lambda: N(m.W).T, **({"b": lambda: N(m.b)} if "b" in p else {})}
            # Linear applies to the last axis when every leading axis is a batch axis
            return m, lambda xs: m(xs[0], n_batch_axes=xs[0].ndim - 1), reads
        if kind == "conv2d":
            m = self._conv2d(p["w"], p.get("b"), a["padding"], a["stride"])  # (O, C, k, k): chainer's own layout
            return m, lambda xs: m(xs[0]), {"w": lambda: N(m.W), **({"b": lambda: N(m.b)} if "b" in p else {})}
        if kind in ("batch_norm", "layer_norm"):
            Norm = L.BatchNormalization if kind == "batch_norm" else L.LayerNormalization
            m = self._to_device(Norm(p["gamma"].shape[0], eps=NORM_EPS))
            self._set(m.gamma, p["gamma"])
            self._set(m.beta, p["beta"])
            reads = {"gamma": lambda: N(m.gamma), "beta": lambda: N(m.beta)}
            if kind == "batch_norm":  # chainer.config.train is True: batch statistics, biased variance
                return m, lambda xs: m(xs[0]), reads

            def layer_norm(xs: list[Any]) -> Any:  # the link takes (batch, features): leading axes folded and restored
                x = xs[0]
                return F.reshape(m(F.reshape(x, (-1, x.shape[-1]))), x.shape)

            return m, layer_norm, reads
        if kind == "relu":
            return None, lambda xs: F.relu(xs[0]), {}
        if kind == "gelu":
            # chainer 7.8.1 has no gelu: the exact form from its erf
            return None, lambda xs: 0.5 * xs[0] * (1.0 + F.erf(xs[0] * (1.0 / math.sqrt(2.0)))), {}
        if kind == "max_pool":  # chainer pads with -inf: padded cells never win; cover_all=False keeps the catalog's size
            return None, lambda xs: F.max_pooling_2d(xs[0], a["kernel"], a["stride"], pad=a["padding"], cover_all=False), {}
        if kind == "global_avg_pool":
            return None, lambda xs: F.mean(xs[0], axis=(2, 3)), {}
        if kind == "flatten":  # NCHW arrays, so the row-major reshape is the catalog's order
            return None, lambda xs: F.reshape(xs[0], (xs[0].shape[0], -1)), {}
        if kind == "add":
            return None, lambda xs: xs[0] + xs[1], {}
        if kind == "mean_tokens":
            return None, lambda xs: F.mean(xs[0], axis=1), {}
        if kind == "embedding":
            m = self._to_device(L.EmbedID(*p["table"].shape))
            self._set(m.W, p["table"])
            return m, lambda xs: m(xs[0]), {"table": lambda: N(m.W)}
        if kind == "positional":
            # chainer has no position-embedding link: a Link holding the (T, D) table, broadcast over the batch
            m = chainer.Link()
            with m.init_scope():
                m.table = self.P(p["table"])
            return m, lambda xs: xs[0] + F.broadcast_to(m.table, xs[0].shape), {"table": lambda: N(m.table)}
        if kind == "self_attention":
            return self._attention(p, a["heads"])
        if kind == "lstm_last":
            return self._lstm_last(p, x_shape)
        if kind == "gru":
            return self._gru(p)
        raise NotMapped(f"the chainer adapter has no mapping for node kind {kind!r}")

    def _attention(self, p: dict[str, Array], heads: int) -> tuple[Any, Callable[[list[Any]], Any], dict[str, Callable[[], Array]]]:
        """Chainer has no multi-head attention (see op_multi_head_attention): four Linear links and F.matmul /
        F.softmax over (batch * heads) stacks of (T, D / heads) matrices."""
        F, N = self.F, self.N
        m = self.chainer.Chain()
        with m.init_scope():
            for c in "qkvo":
                setattr(m, c, self._linear(p[f"w{c}"], p[f"b{c}"]))

        def attend(xs: list[Any]) -> Any:
            x = xs[0]
            n, t, d = x.shape
            dh = d // heads

            def split(y: Any) -> Any:  # (N, T, D) -> (N * heads, T, dh)
                return F.reshape(F.transpose(F.reshape(y, (n, t, heads, dh)), (0, 2, 1, 3)), (n * heads, t, dh))

            q, k, v = (split(getattr(m, c)(x, n_batch_axes=2)) for c in "qkv")
            att = F.softmax(F.matmul(q, k, transb=True) * (1.0 / math.sqrt(dh)), axis=-1)
            o = F.reshape(F.transpose(F.reshape(F.matmul(att, v), (n, heads, t, dh)), (0, 2, 1, 3)), (n, t, d))
            return m.o(o, n_batch_axes=2)

        reads: dict[str, Callable[[], Array]] = {}
        for c in "qkvo":
            link = getattr(m, c)
            reads[f"w{c}"] = (lambda link=link: N(link.W).T)
            reads[f"b{c}"] = (lambda link=link: N(link.b))
        return m, attend, reads

    def _lstm_last(self, p: dict[str, Array], x_shape: tuple[int, ...]) -> tuple[Any, Callable[[list[Any]], Any], dict[str, Callable[[], Array]]]:
        """chainer's NStepLSTM link always carries 8 bias vectors; the node has none, so its weights are Parameters
        of a plain Link fed to chainer.functions.n_step_lstm (the function behind NStepLSTM), with constant zero
        biases that are not parameters. w0..w3 act on x, w4..w7 on h, each (H, in), gates in CHAINER_LSTM order."""
        F, N = self.F, self.N
        hidden, batch = p["wh"].shape[0], x_shape[0]
        cell = self.chainer.Link()
        wx, wh = gate_blocks(p["wx"], CANONICAL_LSTM, CHAINER_LSTM), gate_blocks(p["wh"], CANONICAL_LSTM, CHAINER_LSTM)
        with cell.init_scope():
            for k in range(4):
                setattr(cell, f"w{k}", self.P(wx[k].T))
                setattr(cell, f"w{4 + k}", self.P(wh[k].T))
        zeros_b = [self.T(np.zeros(hidden))] * 8
        h0 = self.T(np.zeros((1, batch, hidden)))

        def lstm(xs: list[Any]) -> Any:
            # the function takes the sequence time-major: a list of T (B, in) steps
            steps = list(F.separate(xs[0], axis=1))
            hy, _, _ = F.n_step_lstm(1, 0.0, h0, h0, [[getattr(cell, f"w{k}") for k in range(8)]], [zeros_b], steps)
            return hy[0]

        def stacked(first: int) -> Array:  # w{first}..w{first+3}, each (H, in), as the catalog's (in, 4H)
            blocks = np.concatenate([N(getattr(cell, f"w{first + k}")).T for k in range(4)], axis=-1)
            return reorder_gates(blocks, CHAINER_LSTM, CANONICAL_LSTM)

        return cell, lstm, {"wx": lambda: stacked(0), "wh": lambda: stacked(4)}

    def _gru(self, p: dict[str, Array]) -> tuple[Any, Callable[[list[Any]], Any], dict[str, Callable[[], Array]]]:
        """chainer.links.NStepGRU: w0..w2 and b0..b2 act on x, w3..w5 and b3..b5 on h (each W (H, in)), gates in
        CHAINER_GRU order, reset gate applied after the recurrent matmul: the catalog's gru, both biases trainable."""
        F, N = self.F, self.N
        hidden = p["wh"].shape[0]
        m = self._to_device(self.L.NStepGRU(1, p["wx"].shape[0], hidden, 0.0))
        wx, wh = gate_blocks(p["wx"], CANONICAL_GRU, CHAINER_GRU), gate_blocks(p["wh"], CANONICAL_GRU, CHAINER_GRU)
        bx, bh = gate_blocks(p["bx"], CANONICAL_GRU, CHAINER_GRU), gate_blocks(p["bh"], CANONICAL_GRU, CHAINER_GRU)
        for k in range(3):
            self._set(m.ws[0][k], wx[k].T)
            self._set(m.ws[0][3 + k], wh[k].T)
            self._set(m.bs[0][k], bx[k])
            self._set(m.bs[0][3 + k], bh[k])

        def gru(xs: list[Any]) -> Any:
            _, ys = self._nstep(m, xs[0])  # B sequences of (T, H)
            return F.stack(ys, axis=0)

        def stacked(params: Sequence[Any], transposed: bool) -> Array:
            blocks = np.concatenate([N(q).T if transposed else N(q) for q in params], axis=-1)
            return reorder_gates(blocks, CHAINER_GRU, CANONICAL_GRU)

        ws, bs = m.ws[0], m.bs[0]
        return m, gru, {"wx": lambda: stacked(ws[:3], True), "wh": lambda: stacked(ws[3:], True),
                        "bx": lambda: stacked(bs[:3], False), "bh": lambda: stacked(bs[3:], False)}

    def _catalog_layers(self, model: Any, arrays: dict[str, Array]) -> tuple[dict[str, Any], Callable[[Any, Any], Any], dict[str, Callable[[], Array]]]:
        """A catalog model's nodes, each built by _node for its kind from the catalog's parameters: (the links that
        hold parameters, by attribute name; the forward pass forward(chain, x) wiring the nodes by their input names;
        for every catalog parameter a reader of its current value in the catalog's layout)."""
        self.dev  # noqa: B018 -- makes the device current before anything is allocated on it
        shapes = model.shapes()
        param_names = list(model.param_shapes())
        links: dict[str, Any] = {}
        steps: list[tuple[Any, Callable[[list[Any]], Any]]] = []
        readers: dict[str, Callable[[], Array]] = {}
        for index, node in enumerate(model.nodes):
            prefix = f"{node.name}."
            p = {k[len(prefix):]: arrays[k] for k in param_names if k.startswith(prefix)}
            link, fn, reads = self._node(node, shapes, p)
            if set(reads) != set(p):
                raise ValueError(f"node {node.name} ({node.kind}): read back {sorted(reads)}, the catalog has {sorted(p)}")
            if link is not None:
                links[f"node{index}"] = link  # attribute names chainer accepts, whatever the node is called
            steps.append((node, fn))
            readers.update({prefix + k: r for k, r in reads.items()})

        def forward(_chain: Any, x: Any) -> Any:
            values = {"input": x}
            for node, fn in steps:
                values[node.name] = fn([values[i] for i in node.inputs])
            return values[model.output]

        return links, forward, readers

    def model_workload(self, model: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """Any catalog model: every node built by _node for its kind and wired by its input names; the loss (mean
        softmax cross-entropy over the batch, or over every token) and chainer.optimizers.SGD outside the model."""
        chainer, F = self.chainer, self.F
        self._check_precision(precision)
        compiled = mode == "compiled"
        if compiled:
            require(chainer, "static_graph")
        links, forward, readers = self._catalog_layers(model, arrays)
        traced = [0]
        if compiled:
            # the model is the static chain and the loss is applied to its output, as in chainer's static-graph
            # examples (the decorated model wrapped in L.Classifier): softmax_cross_entropy cannot be inside the chain,
            # because its backward node keeps the softmax of the forward it was built in (self.y), so the replayed
            # backward schedule would reuse the first step's softmax on every later step
            net = self._static_chain(forward, links, traced)
        else:
            net = chainer.Chain()
            with net.init_scope():
                for name, link in links.items():
                    setattr(net, name, link)
        net.to_device(self.dev)
        opt = self.O.SGD(lr=LEARNING_RATE)
        opt.setup(net)
        # the input needs no gradient, except in a static chain: chainer.static_graph replays the whole schedule as
        # one function node whose inputs are the chain's arguments (its parameters are not), so when no argument
        # requires a gradient chainer never runs that node's backward, the parameters get no gradient, and the
        # chain traces again on every call
        x = chainer.Variable(self.ints(arrays["x"]) if model.input_kind == "tokens" else self.T(arrays["x"]),  # EmbedID: int32
                             requires_grad=compiled)
        labels = self.ints(arrays["labels"].reshape(-1))
        call = net if compiled else (lambda v: forward(net, v))
        sample, peak = self._peak_memory()

        def train_step() -> Any:
            net.cleargrads()
            logits = call(x)
            # the mean over the batch, or over every token (normalize=True, the default, divides by the label count)
            loss = F.softmax_cross_entropy(F.reshape(logits, (-1, logits.shape[-1])), labels)
            loss.backward()
            opt.update()
            sample()
            return loss

        def observe(loss: Any) -> dict[str, Any]:
            return {"loss": self.N(loss), **{name: read() for name, read in readers.items()}}

        kinds = set(model.kinds())
        composed = [text for kind, text in _COMPOSED_KINDS.items() if kind in kinds]
        notes = [f"node kinds: {', '.join(sorted(kinds))}; each built with chainer's own link or function"
                 + (f", except: {'; '.join(composed)}" if composed else "")]
        if "gelu" in kinds and self._index is None and importlib.util.find_spec("scipy") is None:
            notes.append("chainer.functions.erf on the CPU calls scipy.special.erf when SciPy is installed and math.erf "
                         "element by element otherwise; SciPy is not in this environment")
        if compiled:
            notes += ["the model is a static chain: chainer.static_graph records its forward schedule on the first call and "
                      "its backward schedule on the first backward, and replays both; the softmax cross-entropy on its output "
                      "(forward and backward) and the SGD update (chainer.optimizers.SGD.update) run eagerly",
                      "the loss stays outside the static chain: inside it, softmax_cross_entropy's backward node keeps the "
                      "softmax of the step it was traced in, and the replayed backward reuses it (gradients wrong from the "
                      "second step on, while the first step, the traced one, is right)",
                      "the model's input is passed as a Variable that requires a gradient: the replayed schedule is one "
                      "function node whose inputs are the chain's arguments, and chainer skips its backward (no parameter "
                      "gradients) when none of them requires one"]
            if "batch_norm" in kinds:
                notes.append("chainer.functions.batch_normalization builds its backward node with the batch mean and "
                             "inverse standard deviation of the forward call it belongs to (BatchNormalizationGrad(..., "
                             "self.mean, ..., self.inv_std)); the replayed backward schedule keeps the traced step's node, "
                             "so from the second step on it differentiates with the first step's batch statistics")
        notes += self._memory_notes()
        count = int(sum(q.size for q in net.params()))
        return Workload(train_step, self._sync, count, STATIC_GRAPH if compiled else None, notes, observe=observe,
                        compile_scope="forward_backward" if compiled else None,
                        traces=(lambda: traced[0]) if compiled else (lambda: None), peak_memory=peak, precision=precision)

    # ------------------------------------------------------------------------------------------ numerics
    def array_api(self) -> ArrayAPI:
        """Chainer's own array library is ChainerX (the chainerx module), present only in a chainer built with
        CHAINER_BUILD_CHAINERX=1; it is used when chainer.backend.chainerx.is_available() says so. Otherwise Chainer
        computes on NumPy (CPU) or CuPy (GPU) arrays, which chainer.backend.get_array_module hands out: on the CPU that
        is NumPy itself, which the numerics probe records as such."""
        chainerx = self.chainer.backend.chainerx
        if chainerx.is_available():
            device = "native:0" if self._index is None else f"cuda:{self._index}"
            return ArrayAPI(f"chainerx {self.chainer.__version__} ({device})", chainerx,
                            lambda a: chainerx.array(a, device=device), lambda t: chainerx.to_numpy(t),
                            getattr(chainerx, "from_dlpack", None))
        # the module of an array on this adapter's device: NumPy on the CPU, CuPy on a GPU
        xp = self.chainer.backend.get_array_module(self.T(np.zeros(1)))
        where = "" if self._index is None else f" {getattr(xp, '__version__', '')} on {self.device}"
        name = f"{xp.__name__}{where} (chainer.backend.get_array_module; chainer.backend.chainerx.is_available() is False)"
        # NumPy arrays go to the device as chainer sends them (to_gpu onto this GPU; on the CPU the array itself)
        to_device = (lambda a: xp.asarray(a)) if self._index is None else (lambda a: self.dev.send(np.asarray(a)))
        return ArrayAPI(name, xp, to_device, lambda t: np.asarray(self.chainer.backend.CpuDevice().send(t)),
                        getattr(xp, "from_dlpack", None))

    # ------------------------------------------------------------------------------------------ scale
    @staticmethod
    def _mpi_port_exchange(rank: int, host: str, port: int, name: str | None) -> str:
        """Hand rank 0's MPI port name to rank 1 over a TCP socket on host:port (the probe's rendezvous)."""
        if rank == 0:
            with socket.create_server((host, port)) as srv:
                srv.settimeout(120)
                conn, _ = srv.accept()
                with conn:
                    conn.sendall(f"{name}\0".encode())
            return str(name)
        deadline = time.monotonic() + 120
        while True:
            try:
                conn = socket.create_connection((host, port), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        buf = b""
        with conn:
            while not buf.endswith(b"\0"):
                chunk = conn.recv(4096)
                if not chunk:
                    raise ConnectionError(f"rank 0 closed {host}:{port} before sending its MPI port name")
                buf += chunk
        return buf[:-1].decode()

    def _nccl_missing(self) -> str:
        """Why ChainerMN's NCCL communicator cannot run here ('' when it can): it needs CuPy's NCCL binding, which
        CuPy 13 loads from an installed nvidia-nccl-cu12 wheel or the system's libnccl."""
        try:
            from chainermn import nccl
        except ImportError as exc:
            return f"chainermn.nccl cannot be imported: {exc}"
        if not getattr(nccl, "_available", False):
            try:
                import cupy.cuda.nccl as cupy_nccl
            except Exception as exc:
                return f"CuPy has no NCCL binding (cupy.cuda.nccl: {type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
            if not getattr(cupy_nccl, "available", True):
                return "cupy.cuda.nccl.available is False: CuPy could not load libnccl.so.2 (from nvidia-nccl-cu12 or the system)"
            return "chainermn.nccl could not import NCCL from cupy.cuda.nccl"
        return ""

    def allreduce(self, rank: int, world: int, host: str, port: int, value: Array) -> AllReduceResult:
        """ChainerMN (chainer's own distributed package since v5) reduces through a communicator over MPI (mpi4py).
        The ranks are started independently, not by mpiexec, so each is an MPI singleton: rank 0 opens an MPI port,
        hands its name to rank 1 over host:port, and the two Accept/Connect and merge into one 2-process
        communicator, which chainermn.create_communicator(..., mpi_comm=...) wraps. The MPI is PyPI's mpich wheel
        (pinned with mpi4py in the requirements), not a system MPI.

        On the CPU: the 'naive' communicator's allreduce, MPI_Allreduce of NumPy buffers. On a GPU (cuda:<rank>,
        made the current device before NCCL starts): the 'pure_nccl' communicator, ChainerMN's GPU communicator.
        Its collective is multi_node_mean_grad, an NCCL sum all-reduce of a link's gradients on the GPU divided by
        the number of processes, so the value is the gradient of a one-parameter link and the mean times `world`
        is the sum. ChainerMN's allreduce() of an array hands MPI the array's memory, so a CuPy array would need a
        CUDA-aware MPI, which PyPI's mpich is not (its configure has no CUDA)."""
        if world != 2:
            raise NotMapped(f"the chainer adapter joins exactly two singleton MPI processes, not {world}")
        on_gpu = self._index is not None
        if on_gpu:
            # every rank checks before joining, so a missing NCCL fails both ranks at once instead of hanging one
            missing = self._nccl_missing()
            if missing:
                raise RuntimeError(f"ChainerMN's GPU all-reduce (the pure_nccl communicator) needs NCCL: {missing}")
            self.dev  # noqa: B018 -- cuda:<rank> becomes current: NCCL binds its communicator to the current device
        os.environ.setdefault("UCX_NET_DEVICES", "lo")  # MPICH's UCX netmod: keep any TCP wire-up on loopback
        try:  # importing mpi4py (chainermn does) runs MPI_Init: each rank starts as a singleton
            import chainermn
            from mpi4py import MPI
        except ImportError as exc:
            raise Unsupported(f"chainermn needs mpi4py and an MPI library: {exc}", looked_up=["chainermn", "mpi4py"]) from exc
        if rank == 0:
            name = MPI.Open_port()
            self._mpi_port_exchange(rank, host, port, name)
            inter = MPI.COMM_SELF.Accept(name)
            MPI.Close_port(name)
        else:
            inter = MPI.COMM_SELF.Connect(self._mpi_port_exchange(rank, host, port, None))
        comm = inter.Merge(high=rank == 1)
        try:
            if on_gpu:
                cmn = chainermn.create_communicator("pure_nccl", mpi_comm=comm)
                link = self.chainer.Link()
                with link.init_scope():
                    link.w = self.P(np.zeros_like(value))
                link.w.grad = self.T(value)
                try:
                    cmn.multi_node_mean_grad(link)
                    out = self.N(link.w.grad * world)
                finally:
                    cmn.finalize()
            else:
                cmn = chainermn.create_communicator("naive", mpi_comm=comm)
                out = self.N(cmn.allreduce(self.T(value)))
        finally:
            comm.Free()
            inter.Disconnect()
        notes = [f"MPI: {' '.join(MPI.Get_library_version().split()[:3])} via mpi4py {metadata.version('mpi4py')} "
                 "(PyPI wheels); singletons joined by MPI Open_port/Accept/Connect + Intercomm.Merge, port name "
                 "passed over the probe's TCP port",
                 "mpich 5.0.x wheels refuse singleton Connect/Accept (pmodels/mpich#7805), Open MPI 5.0.11's wheel "
                 "fails it with MPI_ERR_INTERN: mpich is pinned at 4.3.2"]
        if on_gpu:
            notes.append(f"on {self.device}: NCCL all-reduce through the pure_nccl communicator's multi_node_mean_grad "
                         f"(ChainerMN's GPU collective, a mean), multiplied by the {world} processes to give the sum")
            api = "chainermn.create_communicator('pure_nccl').multi_node_mean_grad (NCCL on the rank's GPU) x world"
        else:
            api = "chainermn.create_communicator('naive').allreduce (MPI via mpi4py)"
        return AllReduceResult(api, True, out, notes)

    # ------------------------------------------------------------------------------------------ onnx
    def _onnx_model(self, model: Any) -> Any:
        chain = self.chainer.Chain()
        if model.catalog is not None:  # the catalog model from the same links and functions as its training workloads
            links, forward, _ = self._catalog_layers(model.model(), model.weights())
            with chain.init_scope():
                for name, link in links.items():
                    setattr(chain, name, link)
            chain.forward = lambda x: forward(chain, x)
            chain.to_device(self.dev)
            return chain
        F, w = self.F, model.weights()
        with chain.init_scope():
            if model.id == "mlp":
                chain.l1, chain.l2 = self._linear(w["w1"], w["b1"]), self._linear(w["w2"], w["b2"])
                chain.forward = lambda x: chain.l2(F.relu(chain.l1(x)))
            elif model.id == "cnn":
                chain.conv, chain.fc = self._conv2d(w["conv_w"], w["conv_b"], 1), self._linear(w["fc_w"], w["fc_b"])

                def cnn(x: Any) -> Any:
                    h = F.max_pooling_2d(F.relu(chain.conv(x)), 2, 2, cover_all=False)
                    return chain.fc(F.reshape(h, (h.shape[0], -1)))

                chain.forward = cnn
            else:
                raise KeyError(model.id)
        return chain

    def onnx_export(self, model: Any, path: str, opset: int | None) -> ExportResult:
        try:
            import onnx_chainer
        except ImportError as exc:
            raise Unsupported(f"onnx_chainer (shipped with chainer) cannot be imported: {exc}", looked_up=["onnx_chainer"]) from None
        export = require(onnx_chainer, "export", "onnx_chainer")
        chain = self._onnx_model(model)
        sample = model.sample_input()
        x = self.T(sample, sample.dtype if np.issubdtype(sample.dtype, np.integer) else None)  # token ids stay int64
        # train=False: inference mode (BatchNormalization normalises with its running statistics, a fresh link's mean 0
        # and variance 1)
        with self.chainer.using_config("train", False), self.chainer.no_backprop_mode():
            expected = self.N(chain(x))
            kwargs: dict[str, Any] = {} if opset is None else {"opset_version": opset}
            proto = export(chain, x, filename=path, input_names=["x"], output_names=["y"], **kwargs)
        used = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=opset or 0)
        notes = [f"onnx_chainer exports opsets {onnx_chainer.MINIMUM_OPSET_VERSION}-{onnx_chainer.MAXIMUM_OPSET_VERSION}; "
                 f"it wrote opset {used}",
                 "onnx_chainer was written for onnx < 1.7 (its install hint asks for onnx<1.7.0) and imports the deprecated "
                 "onnx.mapping, so onnx is pinned to 1.18.0, the last release that has it",
                 "onnx_chainer lists the initializers among the graph inputs (onnxruntime warns, results unaffected)"]
        return ExportResult("onnx_chainer.export", self.chainer.__version__, used, expected, notes)

    def onnx_import(self, path: str) -> ImportResult:
        try:
            import onnx_chainer
        except ImportError:
            onnx_chainer = None
        offered = sorted(n for n in dir(onnx_chainer) if not n.startswith("_") and callable(getattr(onnx_chainer, n))) \
            if onnx_chainer else []
        importers = [n for n in offered if "import" in n.lower() or "load" in n.lower()]
        if not importers:
            raise Unsupported(f"chainer {self.chainer.__version__} has no ONNX importer: its onnx_chainer package offers only "
                              f"{', '.join(offered) or 'nothing'} (exporters), and chainer has no other ONNX reader",
                              looked_up=["onnx_chainer: a callable named *import* or *load*"])
        raise NotMapped(f"onnx_chainer has {', '.join(importers)}, which this adapter does not use yet")
