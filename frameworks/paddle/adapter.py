"""PaddlePaddle adapter: paddle.nn, paddle.nn.functional, paddle.optimizer in dygraph (eager) mode; paddle.jit.to_static
as the compile path (SOT bytecode translation, the 3.x default, and the AST transcriber with full_graph=True); ONNX
export through paddle.onnx.export, whose converter is the separate paddle2onnx package; ONNX import with the separate
x2paddle converter. Layer gradients (the input's and every parameter's) come from paddle.autograd.backward. Training
workloads are catalog models built node by node from paddle.nn layers (model_workload)."""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import shutil
import tempfile
import types
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
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
    distribution_versions,
    reorder_gates,
    require_parameter,
    resolve,
)
from harness.catalog.models import NORM_EPS
from harness.catalog.ops import Case
from harness.catalog.workloads import LEARNING_RATE

Array = np.ndarray
#: a catalog parameter's Paddle tensor, and how its gradient maps back to the catalog's layout (None: same layout)
ParamGrad = tuple[Any, Callable[[Array], Array] | None]
#: catalog parameter name -> the layer's parameter name (named_parameters()), or (that name, gradient mapping)
ParamNames = dict[str, "str | tuple[str, Callable[[Array], Array]]"]
# paddle.nn.LSTMCell documents weight_ih as the concatenation of W_ii, W_if, W_ig, W_io (rows), i.e. gates i, f, g, o.
PADDLE_LSTM = "ifgo"
# paddle.nn.GRUCell documents weight_ih as W_ir, W_iz, W_ic (r, z, candidate) with the reset gate applied to
# (W_hc h + b_hc), i.e. after the recurrent matmul.
PADDLE_GRU = "rzn"
CATALOG_GATES = {"lstm_last": "ifgo", "gru": "rzn"}  # the orders the catalog's node kinds state
#: the autograd node of a static program run from dygraph: Dy2StGradNode in Paddle 3.x, GradNodeRunProgram (legacy IR)
#: and PirGradNodeRunProgram in 2.6
STATIC_GRAD_NODES = frozenset({"Dy2StGradNode", "GradNodeRunProgram", "PirGradNodeRunProgram"})
SOT_PATH = "paddle.jit.to_static"  # the default since Paddle 2.6: full_graph=False, SOT bytecode translation
AST_PATH = "paddle.jit.to_static(full_graph=True)"  # the AST transcriber: the whole function as one static program
#: set before paddle is imported (both are read when the libraries load)
ENVIRONMENT = {
    # Paddle's default allocator since 2.0, made explicit: device memory is taken as tensors need it, not reserved
    # up front as a fraction of the GPU (the naive_best_fit strategy), so other processes on the GPU are not starved
    "FLAGS_allocator_strategy": "auto_growth",
    # oneDNN (bundled with Paddle's CPU kernels) computes float32 as float32: no implicit bf16/tf32 down-conversion
    "ONEDNN_DEFAULT_FPMATH_MODE": "STRICT",
}


def paddle_place(device: str) -> str:
    """Paddle's place string for a harness device: 'cpu' -> 'cpu', 'cuda' -> 'gpu:0', 'cuda:N' -> 'gpu:N'."""
    if device == "cpu":
        return "cpu"
    kind, _, index = device.partition(":")
    if kind != "cuda" or not (index == "" or index.isdigit()):
        raise ValueError(f"not a device this adapter knows: {device!r} (cpu, cuda or cuda:N)")
    return f"gpu:{int(index or 0)}"


def rank_environment(rank: int, world: int, host: str, port: int, place: str) -> dict[str, str]:
    """The environment paddle.distributed.launch would give this rank, read by paddle.distributed.init_parallel_env:
    host:port is the master (the TCP store every rank joins); NCCL on a GPU place with FLAGS_selected_gpus naming that
    rank's own GPU, gloo on the CPU. Only the master endpoint is dialled by the process-group path; the others are
    the nominal per-rank endpoints init_parallel_env checks for, one port above the master per rank."""
    backend = "gloo" if place == "cpu" else "nccl"
    endpoints = [f"{host}:{port + r}" for r in range(world)]
    env = {"PADDLE_TRAINER_ID": str(rank), "PADDLE_TRAINERS_NUM": str(world),
           "PADDLE_TRAINER_ENDPOINTS": ",".join(endpoints), "PADDLE_CURRENT_ENDPOINT": endpoints[rank],
           "PADDLE_MASTER": endpoints[0], "MASTER_ADDR": host, "MASTER_PORT": str(port),
           "PADDLE_DISTRI_BACKEND": backend}
    if backend == "nccl":
        env["FLAGS_selected_gpus"] = place.partition(":")[2]
    return env


def _prepare_environment() -> None:
    """Before paddle is imported: ENVIRONMENT, and quiet logs (Paddle logs through glog and warns about a missing
    ccache on import)."""
    os.environ.update(ENVIRONMENT)
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("GLOG_v", "0")
    os.environ.setdefault("FLAGS_call_stack_level", "1")
    warnings.filterwarnings("ignore", message=".*ccache.*")


def _train_step(model: Any, opt: Any, inputs: Any, targets: Any) -> Any:
    """One training step: the model returns the loss (forward and cross-entropy), then backward and the SGD update.
    A module-level function taking everything as arguments: SOT cannot resume a function with free variables after a
    graph break ("Break graph in closure is not support"), and Tensor.backward is one, so a closure would fall back
    to running the whole step eagerly."""
    loss = model(inputs, targets)
    loss.backward()
    opt.step()
    opt.clear_grad()
    return loss


def _train_step_autocast(model: Any, opt: Any, inputs: Any, targets: Any, autocast: Any) -> Any:
    """_train_step with forward and loss inside an automatic mixed-precision context (autocast() makes it)."""
    with autocast():
        loss = model(inputs, targets)
    loss.backward()
    opt.step()
    opt.clear_grad()
    return loss


class PaddleAdapter(Adapter):
    name = "paddle"
    distribution = "paddlepaddle"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self.place = paddle_place(device)
        _prepare_environment()
        import paddle

        self.paddle = paddle
        self.nn = paddle.nn
        self.F = paddle.nn.functional
        self.precision_switches = self._strict_float32()
        self._use_device()
        paddle.seed(0)
        self._copies = 0  # functions given a code object of their own (see _own_code)

    def _use_device(self) -> None:
        """Make this adapter's device Paddle's current one (paddle.set_device('gpu:N') for cuda:N), where it exists:
        layers, parameters and compiled programs are placed there."""
        if self.device_available()[0]:
            self.paddle.set_device(self.place)

    def _tf32_switches(self) -> tuple[Any, Any, Any, Any] | None:
        """Paddle's TF32 switches: paddle.base.core.set_cublas_switch / set_cudnn_switch and their getters (None where
        this paddle lacks them). Both default to on. GPUContext::CublasCall, through which float32 GEMMs go, picks its
        CUBLAS_TF32_TENSOR_OP_MATH handle only while the cuBLAS switch is on, and the cuDNN convolution kernels take
        their math type from the cuDNN switch. In a CPU build they exist and govern nothing."""
        core = self.paddle.base.core
        names = ("set_cublas_switch", "get_cublas_switch", "set_cudnn_switch", "get_cudnn_switch")
        found = [getattr(core, n, None) for n in names]
        return None if any(f is None for f in found) else (found[0], found[1], found[2], found[3])

    def _strict_float32(self) -> dict[str, Any]:
        """Turn TF32 off for the whole process (the verdict is strict float32) and say what was set, and what does not
        exist in this build."""
        p = self.paddle
        cuda = p.device.is_compiled_with_cuda()
        out: dict[str, Any] = {"build": f"paddle {p.__version__}, " + (
            f"CUDA {p.version.cuda()}, cuDNN {p.version.cudnn()}" if cuda else "CPU only (no CUDA: no TF32 anywhere)")}
        switches = self._tf32_switches()
        if switches is None:
            out["paddle.base.core.set_cublas_switch (cuBLAS TF32)"] = "absent in this paddle"
            out["paddle.base.core.set_cudnn_switch (cuDNN TF32)"] = "absent in this paddle"
        else:
            set_cublas, get_cublas, set_cudnn, get_cudnn = switches
            set_cublas(False)
            set_cudnn(False)
            out["paddle.base.core.set_cublas_switch (cuBLAS TF32)"] = bool(get_cublas())
            out["paddle.base.core.set_cudnn_switch (cuDNN TF32)"] = bool(get_cudnn())
        if cuda:
            out["cuDNN RNN (paddle.nn.LSTM / GRU)"] = (
                "no switch reaches it: Paddle's RNN kernels set up cuDNN with cudnnSetRNNDescriptor_v6 and no math "
                "type (CUDNN_DEFAULT_MATH, which lets cuDNN use TF32 on Ampere and later); only NVIDIA_TF32_OVERRIDE=0 "
                "would rule it out, and it would also keep the tf32 workloads from turning TF32 on, so it is not set")
        flags = ("FLAGS_enable_cublas_tensor_op_math", "FLAGS_gemm_use_half_precision_compute_type", "FLAGS_use_onednn",
                 "FLAGS_allocator_strategy")
        for flag in flags:
            try:
                out[flag] = p.get_flags([flag])[flag]
            except Exception:  # a flag this build does not define
                out[flag] = "not defined in this build"
        for var in ("ONEDNN_DEFAULT_FPMATH_MODE", "NVIDIA_TF32_OVERRIDE"):
            out[var] = os.environ.get(var, "unset")
        return out

    # ------------------------------------------------------------------------------------------ identity
    def versions(self) -> dict[str, str]:
        found = distribution_versions("paddlepaddle", "paddlepaddle-gpu", "numpy", "onnx", "onnxruntime", "paddle2onnx",
                                      "x2paddle", "onnx-graphsurgeon", "polygraphy")
        if found["paddlepaddle"] == "not installed" and found["paddlepaddle-gpu"] != "not installed":
            found["paddlepaddle"] = found["paddlepaddle-gpu"]  # the CUDA build is its own distribution on PyPI
        p = self.paddle
        cuda = p.version.cuda()
        found["paddle_running"] = (f"{p.__version__} (" + (f"CUDA {cuda}, cuDNN {p.version.cudnn()} build"
                                   if p.device.is_compiled_with_cuda() else "CPU build") + ")")
        return found

    def device_available(self) -> tuple[bool, str]:
        p = self.paddle
        if self.place == "cpu":
            return True, ""
        if not p.device.is_compiled_with_cuda():
            return False, f"paddle {p.__version__} is a CPU build (paddle.device.is_compiled_with_cuda() is False)"
        count = p.device.cuda.device_count()
        index = int(self.place.partition(":")[2])
        if index >= count:
            return False, f"paddle {p.__version__} sees {count} CUDA device(s) (paddle.device.cuda.device_count()); no {self.device}"
        return True, ""

    def gpu_count(self) -> int:
        p = self.paddle
        return int(p.device.cuda.device_count()) if p.device.is_compiled_with_cuda() else 0

    def device_info(self) -> dict[str, Any]:
        p = self.paddle
        info: dict[str, Any] = {"paddle": p.__version__, "compiled_with_cuda": p.device.is_compiled_with_cuda(),
                                "device": self.device, "paddle_place": self.place, "precision": self.precision_switches}
        if self.place != "cpu":
            ok, why = self.device_available()
            if not ok:
                info["unavailable"] = why
                return info
            props = p.device.cuda.get_device_properties(self.place)
            info.update(name=props.name, capability=f"{props.major}.{props.minor}", memory_bytes=int(props.total_memory),
                        cuda=p.version.cuda(), cudnn=p.version.cudnn(),
                        paddle_device=p.get_device())
        return info

    # ------------------------------------------------------------------------------------------ helpers
    def T(self, a: Array, grad: bool = False) -> Any:
        t = self.paddle.to_tensor(np.ascontiguousarray(a), place=self.place)
        t.stop_gradient = not grad
        return t

    @staticmethod
    def N(t: Any) -> Array:
        return np.asarray(t.detach().cpu().numpy())

    def _load(self, layer: Any, **params: Array) -> Any:
        """Copy catalog arrays into a layer's parameters/buffers (already mapped to Paddle's layout by the caller)."""
        state = layer.state_dict()
        for name, value in params.items():
            if name not in state:
                raise KeyError(f"{type(layer).__name__} has no parameter {name!r} (it has {sorted(state)})")
            value = np.asarray(value, np.float32)
            if tuple(state[name].shape) != value.shape:
                raise ValueError(f"{name}: Paddle expects shape {tuple(state[name].shape)}, the case gives {value.shape}")
            state[name].set_value(value)
        return layer

    def _result(self, case: Case, wrt: Any, outputs: dict[str, Any], params: dict[str, ParamGrad] | None = None) -> dict[str, Any]:
        """Outputs as NumPy, plus "grads": the vector-Jacobian product with the case's cotangents w.r.t. the input
        `wrt` and every trainable parameter of the case, in the catalog's layout.

        `params` maps each catalog parameter name to the Paddle tensor it was loaded into and the function that maps
        that tensor's gradient back to the catalog's layout (None: same layout). The gradients come from
        paddle.autograd.backward (the path training takes) and are read from each tensor's `.grad`. paddle.grad
        (outputs, [x], cotangents) is not used for layers: asking for the input's gradient alone makes Paddle 3.3.1
        skip the parameters' gradients, and then the LayerNorm input gradient comes out wrong and the RNN and
        HSigmoidLoss backward kernels fail ("Required tensor shall not be nullptr").
        """
        out: dict[str, Any] = {k: self.N(v) for k, v in outputs.items()}
        if case.grad_wrt is None:
            return out
        params = params or {}
        unmapped = [n for n in case.params if n != case.grad_wrt and n not in params]
        if unmapped:
            raise KeyError(f"the adapter maps no Paddle tensor for the case's parameters {unmapped}")
        names = list(case.cotangents)
        self.paddle.autograd.backward([outputs[k] for k in names], [self.T(case.cotangents[k]) for k in names])
        grads: dict[str, Array] = {}
        for name, (tensor, to_catalog) in {case.grad_wrt: (wrt, None), **params}.items():
            if tensor.grad is None:  # Paddle computed none: left out, and the probe records it as not returned
                continue
            g = self.N(tensor.grad)
            grads[name] = g if to_catalog is None else to_catalog(g)
        out["grads"] = grads
        return out

    @staticmethod
    def _params(layer: Any, names: ParamNames) -> dict[str, ParamGrad]:
        """catalog name -> (the layer's parameter, gradient-to-catalog mapping), from catalog name -> the parameter's
        name in layer.named_parameters() (or (name, mapping) where the layout differs)."""
        own = dict(layer.named_parameters())
        out: dict[str, ParamGrad] = {}
        for catalog, spec in names.items():
            key, to_catalog = (spec, None) if isinstance(spec, str) else spec
            out[catalog] = (own[key], to_catalog)
        return out

    def _module_op(self, api: str, build: Callable[[Case], Any], forward: Callable[[Any, Any, Case], dict[str, Any]],
                   params: ParamNames | Callable[[Any, Case], dict[str, ParamGrad]] | None = None, kind: str = "native",
                   variant: str | None = None, note: str = "") -> OpImpl:
        """An op that is one layer applied to the case's grad_wrt input (APIs are resolved by the caller); `params`
        names the layer's parameters that hold the case's trainable arrays (see _params), or finds them itself."""

        def run(case: Case) -> dict[str, Any]:
            layer = build(case)
            x = self.T(case.arrays[case.grad_wrt or "x"], grad=True)
            outputs = forward(layer, x, case)
            found = params(layer, case) if callable(params) else self._params(layer, params) if params else {}
            return self._result(case, x, outputs, found)

        return OpImpl(kind, api, run, variant, note)

    def _api(self, dotted: str) -> Any:
        """Resolve 'paddle.nn.Conv3D' at run time; a missing name raises Unsupported naming it."""
        return resolve(self.paddle, dotted)

    @staticmethod
    def _y(layer: Any, x: Any, case: Case) -> dict[str, Any]:
        return {"y": layer(x)}

    # ------------------------------------------------------------------------------------------ layers
    def op_dense(self) -> OpImpl:
        Linear = self._api("paddle.nn.Linear")
        # paddle.nn.Linear stores its weight as (in, out): the catalog's layout, no transpose
        return self._module_op("paddle.nn.Linear",
                               lambda c: self._load(Linear(*c.arrays["w"].shape), weight=c.arrays["w"], bias=c.arrays["b"]),
                               self._y, {"w": "weight", "b": "bias"}, note="weight stored (in, out) as in the catalog")

    def _conv(self, api: str) -> OpImpl:
        Conv = self._api(api)

        def build(c: Case) -> Any:
            w = c.arrays["w"]  # (O, C, *k): Paddle's own layout
            layer = Conv(w.shape[1], w.shape[0], list(w.shape[2:]), stride=c.config["stride"], padding=c.config["padding"],
                         dilation=c.config["dilation"])
            return self._load(layer, weight=w, bias=c.arrays["b"])

        return self._module_op(api, build, self._y, {"w": "weight", "b": "bias"})

    def op_conv1d(self) -> OpImpl:
        return self._conv("paddle.nn.Conv1D")

    def op_conv2d(self) -> OpImpl:
        return self._conv("paddle.nn.Conv2D")

    def op_conv3d(self) -> OpImpl:
        return self._conv("paddle.nn.Conv3D")

    def op_conv_transpose2d(self) -> OpImpl:
        ConvT = self._api("paddle.nn.Conv2DTranspose")

        def build(c: Case) -> Any:
            w = c.arrays["w"]  # (C_in, C_out, kH, kW): Paddle's own layout for transposed convolution
            layer = ConvT(w.shape[0], w.shape[1], list(w.shape[2:]), stride=c.config["stride"], padding=c.config["padding"])
            return self._load(layer, weight=w, bias=c.arrays["b"])

        return self._module_op("paddle.nn.Conv2DTranspose", build, self._y, {"w": "weight", "b": "bias"})

    def op_separable_conv2d(self) -> OpImpl:
        Conv = self._api("paddle.nn.Conv2D")
        Sequential = self._api("paddle.nn.Sequential")

        def build(c: Case) -> Any:
            dw, pw = c.arrays["w_depthwise"], c.arrays["w_pointwise"]
            ch = dw.shape[0]
            depth = self._load(Conv(ch, ch, list(dw.shape[2:]), padding=c.config["padding"], groups=ch, bias_attr=False), weight=dw)
            point = self._load(Conv(ch, pw.shape[0], 1), weight=pw, bias=c.arrays["b"])
            return Sequential(depth, point)

        return self._module_op("paddle.nn.Conv2D(groups=C) + paddle.nn.Conv2D(1x1)", build, self._y,
                               {"w_depthwise": "0.weight", "w_pointwise": "1.weight", "b": "1.bias"}, kind="composed",
                               note="paddle.nn has no separable-convolution layer: depthwise (grouped) conv then 1x1 conv")

    def op_max_pool2d(self) -> OpImpl:
        Pool = self._api("paddle.nn.MaxPool2D")
        return self._module_op("paddle.nn.MaxPool2D",
                               lambda c: Pool(c.config["kernel"], c.config["stride"], padding=c.config.get("padding", 0)),
                               self._y, note="Paddle's max pooling pads with -inf: padded cells never win")

    def op_avg_pool2d(self) -> OpImpl:
        Pool = self._api("paddle.nn.AvgPool2D")
        # The catalog does not fix the border divisor, so Paddle's default (exclusive=True) is left as it is.
        return self._module_op("paddle.nn.AvgPool2D",
                               lambda c: Pool(c.config["kernel"], c.config["stride"], c.config["padding"]), self._y,
                               note="Paddle's default exclusive=True: padded cells are left out of the divisor")

    def op_global_avg_pool2d(self) -> OpImpl:
        Pool = self._api("paddle.nn.AdaptiveAvgPool2D")
        return self._module_op("paddle.nn.AdaptiveAvgPool2D(1)", lambda c: Pool(1),
                               lambda m, x, c: {"y": m(x).flatten(1)})

    def op_upsample_nearest2d(self) -> OpImpl:
        Up = self._api("paddle.nn.Upsample")
        return self._module_op("paddle.nn.Upsample(mode='nearest')",
                               lambda c: Up(scale_factor=c.config["scale"], mode="nearest"), self._y)

    def op_batch_norm(self) -> OpImpl:
        BN = self._api("paddle.nn.BatchNorm2D")

        def build(c: Case) -> Any:
            a = c.arrays
            return self._load(BN(a["gamma"].shape[0], epsilon=c.config["eps"]), weight=a["gamma"], bias=a["beta"],
                              _mean=a["running_mean"], _variance=a["running_var"])

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            m.eval()
            y_eval = m(x)
            m.train()
            return {"y_train": m(x), "y_eval": y_eval}

        return self._module_op("paddle.nn.BatchNorm2D", build, forward, {"gamma": "weight", "beta": "bias"},
                               note="running statistics are the _mean/_variance buffers")

    def op_layer_norm(self) -> OpImpl:
        LN = self._api("paddle.nn.LayerNorm")
        return self._module_op(
            "paddle.nn.LayerNorm",
            lambda c: self._load(LN(c.arrays["gamma"].shape[0], epsilon=c.config["eps"]), weight=c.arrays["gamma"], bias=c.arrays["beta"]),
            self._y, {"gamma": "weight", "beta": "bias"},
        )

    def op_group_norm(self) -> OpImpl:
        GN = self._api("paddle.nn.GroupNorm")
        return self._module_op(
            "paddle.nn.GroupNorm",
            lambda c: self._load(GN(c.config["groups"], c.arrays["gamma"].shape[0], epsilon=c.config["eps"]),
                                 weight=c.arrays["gamma"], bias=c.arrays["beta"]),
            self._y, {"gamma": "weight", "beta": "bias"},
        )

    def op_local_response_norm(self) -> OpImpl:
        LRN = self._api("paddle.nn.LocalResponseNorm")
        return self._module_op(
            "paddle.nn.LocalResponseNorm",
            lambda c: LRN(c.config["size"], alpha=c.config["alpha"], beta=c.config["beta"], k=c.config["k"]), self._y,
            note="alpha passed as the catalog states; Paddle divides it by size (documented formula alpha / n)",
        )

    def op_dropout(self) -> OpImpl:
        Drop = self._api("paddle.nn.Dropout")

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            m.eval()
            y_eval = m(x)
            m.train()
            return {"y_train": m(x), "y_eval": y_eval}

        return self._module_op("paddle.nn.Dropout", lambda c: Drop(c.config["p"]), forward,
                               note="default mode='upscale_in_train' (inverted dropout)")

    def op_embedding(self) -> OpImpl:
        Emb = self._api("paddle.nn.Embedding")

        def run(c: Case) -> dict[str, Any]:
            w = c.arrays["weight"]
            m = self._load(Emb(*w.shape), weight=w)
            return self._result(c, m.weight, {"y": m(self.T(c.arrays["indices"]))})

        return OpImpl("native", "paddle.nn.Embedding", run, note="the gradient w.r.t. the table is dense (sparse=False)")

    @staticmethod
    def _gates(framework: str, catalog: str, transpose: bool) -> Callable[[Array], Array]:
        """A Paddle RNN gradient (gate blocks in Paddle's order; weights (out, in)) back to the catalog's layout."""
        def back(g: Array) -> Array:
            return reorder_gates(g.T if transpose else g, framework, catalog)
        return back

    def op_simple_rnn(self) -> OpImpl:
        RNN = self._api("paddle.nn.SimpleRNN")

        def build(c: Case) -> Any:
            a = c.arrays
            # Paddle keeps weights as (out, in) like torch: weight_ih_l0 (H, I), weight_hh_l0 (H, H)
            m = RNN(a["wx"].shape[0], c.config["hidden"], activation="tanh")
            return self._load(m, weight_ih_l0=a["wx"].T, weight_hh_l0=a["wh"].T, bias_ih_l0=a["b"], bias_hh_l0=np.zeros_like(a["b"]))

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            y, h = m(x)
            return {"y": y, "h": h[0]}

        return self._module_op("paddle.nn.SimpleRNN", build, forward,
                               {"wx": ("weight_ih_l0", np.transpose), "wh": ("weight_hh_l0", np.transpose), "b": "bias_ih_l0"},
                               note="Paddle keeps two biases; the second is set to 0 (not a catalog parameter)")

    def op_lstm(self) -> OpImpl:
        LSTM = self._api("paddle.nn.LSTM")

        def build(c: Case) -> Any:
            a, order = c.arrays, c.config["gate_order"]
            m = LSTM(a["wx"].shape[0], c.config["hidden"])
            return self._load(m, weight_ih_l0=reorder_gates(a["wx"], order, PADDLE_LSTM).T,
                              weight_hh_l0=reorder_gates(a["wh"], order, PADDLE_LSTM).T,
                              bias_ih_l0=reorder_gates(a["b"], order, PADDLE_LSTM), bias_hh_l0=np.zeros_like(a["b"]))

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            y, (h, cell) = m(x)
            return {"y": y, "h": h[0], "c": cell[0]}

        def params(m: Any, c: Case) -> dict[str, ParamGrad]:
            order = c.config["gate_order"]
            return self._params(m, {"wx": ("weight_ih_l0", self._gates(PADDLE_LSTM, order, True)),
                                    "wh": ("weight_hh_l0", self._gates(PADDLE_LSTM, order, True)),
                                    "b": ("bias_ih_l0", self._gates(PADDLE_LSTM, order, False))})

        return self._module_op("paddle.nn.LSTM", build, forward, params,
                               note=f"gate order {PADDLE_LSTM} (documented); second bias set to 0 (not a catalog parameter)")

    def op_gru(self) -> OpImpl:
        GRU = self._api("paddle.nn.GRU")

        def build(c: Case) -> Any:
            a, order = c.arrays, c.config["gate_order"]
            m = GRU(a["wx"].shape[0], c.config["hidden"])
            return self._load(m, weight_ih_l0=reorder_gates(a["wx"], order, PADDLE_GRU).T,
                              weight_hh_l0=reorder_gates(a["wh"], order, PADDLE_GRU).T,
                              bias_ih_l0=reorder_gates(a["bx"], order, PADDLE_GRU), bias_hh_l0=reorder_gates(a["bh"], order, PADDLE_GRU))

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            y, h = m(x)
            return {"y": y, "h": h[0]}

        def params(m: Any, c: Case) -> dict[str, ParamGrad]:
            order = c.config["gate_order"]
            return self._params(m, {"wx": ("weight_ih_l0", self._gates(PADDLE_GRU, order, True)),
                                    "wh": ("weight_hh_l0", self._gates(PADDLE_GRU, order, True)),
                                    "bx": ("bias_ih_l0", self._gates(PADDLE_GRU, order, False)),
                                    "bh": ("bias_hh_l0", self._gates(PADDLE_GRU, order, False))})

        return self._module_op("paddle.nn.GRU", build, forward, params,
                               note=f"gate order {PADDLE_GRU} (documented: r, z, candidate)")

    def op_bidirectional_rnn(self) -> OpImpl:
        BiRNN = self._api("paddle.nn.BiRNN")
        Cell = self._api("paddle.nn.SimpleRNNCell")

        def build(c: Case) -> Any:
            a = c.arrays
            size, hidden = a["x"].shape[2], c.config["hidden"]
            zeros = np.zeros_like(a["b_fw"])
            cells = []
            for d in ("fw", "bw"):
                cell = Cell(size, hidden, activation="tanh")
                cells.append(self._load(cell, weight_ih=a[f"wx_{d}"].T, weight_hh=a[f"wh_{d}"].T, bias_ih=a[f"b_{d}"], bias_hh=zeros))
            return BiRNN(cells[0], cells[1])

        names: ParamNames = {}
        for d in ("fw", "bw"):
            names |= {f"wx_{d}": (f"cell_{d}.weight_ih", np.transpose), f"wh_{d}": (f"cell_{d}.weight_hh", np.transpose),
                      f"b_{d}": f"cell_{d}.bias_ih"}
        return self._module_op("paddle.nn.BiRNN(SimpleRNNCell, SimpleRNNCell)", build, lambda m, x, c: {"y": m(x)[0]}, names,
                               note="a wrapper over a forward and a backward cell; output [forward, backward]; each "
                                    "cell's second bias is set to 0 (not a catalog parameter)")

    def op_multi_head_attention(self) -> OpImpl:
        MHA = self._api("paddle.nn.MultiHeadAttention")
        proj = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "out_proj"}

        def run(c: Case) -> dict[str, Any]:
            a = c.arrays
            m = MHA(c.config["embed_dim"], c.config["heads"])
            # separate q/k/v/out projections, each a paddle.nn.Linear with an (in, out) weight: the catalog's layout
            self._load(m, **{f"{p}.weight": a[f"w{k}"] for k, p in proj.items()}, **{f"{p}.bias": a[f"b{k}"] for k, p in proj.items()})
            q = self.T(a["q"], grad=True)
            y = m(q, self.T(a["k"]), self.T(a["v"]))
            names: ParamNames = {f"{kind}{k}": f"{p}.{'weight' if kind == 'w' else 'bias'}" for k, p in proj.items() for kind in "wb"}
            return self._result(c, q, {"y": y}, self._params(m, names))

        return OpImpl("native", "paddle.nn.MultiHeadAttention", run, note="batch first; separate q/k/v projections")

    def op_prelu(self) -> OpImpl:
        PReLU = self._api("paddle.nn.PReLU")
        return self._module_op("paddle.nn.PReLU",
                               lambda c: self._load(PReLU(c.arrays["alpha"].shape[0]), _weight=c.arrays["alpha"]), self._y,
                               {"alpha": "_weight"}, note="one slope per channel (num_parameters=C), data_format NCHW")

    def op_hierarchical_softmax(self) -> list[OpImpl]:
        """Paddle ships two close variants; both are tried, the hierarchical sigmoid first (it is Paddle's own
        hierarchical layer), and the record keeps both attempts."""
        return [self._hsigmoid(), self._adaptive_softmax()]

    def _adaptive_softmax(self) -> OpImpl:
        Adaptive = self._api("paddle.nn.AdaptiveLogSoftmaxWithLoss")

        def build(c: Case) -> Any:
            a = c.arrays
            m = Adaptive(a["x"].shape[1], c.config["vocab"], cutoffs=c.config["cutoffs"], div_value=c.config["div_value"],
                         head_bias=True)
            # head_weight is (in, shortlist + clusters) like the catalog's; the tail projections live in a plain list
            # (tail_weights[0] = [projection (D, D), output (D, 4)]), not registered as parameters
            self._load(m, head_weight=a["w_head"], head_bias=a["b_head"])
            m.tail_weights[0][0].set_value(a["w_proj"])
            m.tail_weights[0][1].set_value(a["w_tail"])
            return m

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            output, _loss = m(x, self.T(c.arrays["targets"]))
            return {"y": output.reshape([-1])}

        def params(m: Any, c: Case) -> dict[str, ParamGrad]:
            proj, out = m.tail_weights[0]
            return {**self._params(m, {"w_head": "head_weight", "b_head": "head_bias"}), "w_proj": (proj, None), "w_tail": (out, None)}

        return self._module_op("paddle.nn.AdaptiveLogSoftmaxWithLoss", build, forward, params, kind="variant",
                               variant="adaptive_softmax",
                               note="its tail weights are not registered as parameters (an optimizer given "
                                    "m.parameters() would not train them); their gradients are read from the tensors")

    def _hsigmoid(self) -> OpImpl:
        HSigmoid = self._api("paddle.nn.HSigmoidLoss")

        def build(c: Case) -> Any:
            a = c.arrays
            nodes, dim = a["w_nodes"].shape
            # custom tree: num_classes is the number of internal nodes, weight (nodes, D), bias (nodes, 1)
            m = HSigmoid(dim, nodes, is_custom=True)
            return self._load(m, weight=a["w_nodes"], bias=a["b_nodes"].reshape(-1, 1))

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            a = c.arrays
            t = a["targets"]
            # per-example paths and codes: the case gives them per class; HSigmoidLoss wants one row per example
            loss = m(x, self.T(t.reshape(-1, 1)), path_table=self.T(a["path_table"][t]), path_code=self.T(a["path_code"][t]))
            return {"y": -loss.reshape([-1])}  # the loss is -log p(target); the catalog's output is log p(target)

        return self._module_op("paddle.nn.HSigmoidLoss(is_custom=True)", build, forward,
                               {"w_nodes": "weight", "b_nodes": ("bias", lambda g: g.reshape(-1))}, kind="variant",
                               variant="hierarchical_sigmoid",
                               note="hierarchical sigmoid over the case's binary tree, given to Paddle as per-example "
                                    "path table and codes (is_custom=True); the loss is negated to log p(target)")

    def op_ctc_loss(self) -> OpImpl:
        ctc = self._api("paddle.nn.functional.ctc_loss")

        def forward(m: Any, logits: Any, c: Case) -> dict[str, Any]:
            a = c.arrays
            # Paddle's ctc_loss wraps warp-ctc, which applies softmax itself: it takes the unnormalised logits
            # (the argument is named log_probs but documented as "unscaled probability"). Labels must be int32.
            y = ctc(logits, self.T(a["targets"].astype(np.int32)), self.T(a["input_lengths"]), self.T(a["target_lengths"]),
                    blank=c.config["blank"], reduction="none", norm_by_times=False)
            return {"y": y.reshape([-1])}

        return self._module_op("paddle.nn.functional.ctc_loss", lambda c: None, forward,
                               note="warp-ctc: unnormalised logits in, softmax applied inside; reduction='none'")

    # ------------------------------------------------------------------------------------------ optimizers
    def _optimizer(self, api: str, make: Callable[[Any, dict[str, Any]], Any], note: str = "") -> OpImpl:
        Opt = self._api(api)

        def run(c: Case) -> dict[str, Array]:
            w = self.paddle.create_parameter(list(c.arrays["w"].shape), "float32")
            w.set_value(c.arrays["w"].copy())
            opt = make(Opt, {"params": [w], **c.config})
            history = []
            for g in c.arrays["grads"]:
                opt.clear_grad()
                (w * self.T(g)).sum().backward()  # d/dw of sum(w * g) is g: the catalog's gradient, via autograd
                opt.step()
                history.append(self.N(w).copy())
            return {"w": np.stack(history)}

        return OpImpl("native", api, run, note=note)

    def op_sgd(self) -> OpImpl:
        return self._optimizer("paddle.optimizer.SGD", lambda opt_cls, h: opt_cls(learning_rate=h["lr"], parameters=h["params"]))

    def op_momentum(self) -> OpImpl:
        return self._optimizer("paddle.optimizer.Momentum",
                               lambda opt_cls, h: opt_cls(learning_rate=h["lr"], momentum=h["mu"], parameters=h["params"], use_nesterov=False))

    def op_nesterov(self) -> OpImpl:
        return self._optimizer("paddle.optimizer.Momentum",
                               lambda opt_cls, h: opt_cls(learning_rate=h["lr"], momentum=h["mu"], parameters=h["params"], use_nesterov=True),
                               note="use_nesterov=True")

    def op_adagrad(self) -> OpImpl:
        def make(opt_cls: Any, h: dict[str, Any]) -> Any:
            require_parameter(opt_cls, "initial_accumulator_value", "paddle.optimizer.Adagrad")
            return opt_cls(learning_rate=h["lr"], epsilon=h["eps"], parameters=h["params"],
                           initial_accumulator_value=h["initial_accumulator"])

        return self._optimizer("paddle.optimizer.Adagrad", make, note="initial_accumulator_value is the case's initial accumulator")

    def op_adadelta(self) -> OpImpl:
        return self._optimizer("paddle.optimizer.Adadelta",
                               lambda opt_cls, h: opt_cls(learning_rate=h["lr"], epsilon=h["eps"], rho=h["rho"], parameters=h["params"]))

    def op_rmsprop(self) -> OpImpl:
        return self._optimizer("paddle.optimizer.RMSProp",
                               lambda opt_cls, h: opt_cls(learning_rate=h["lr"], rho=h["rho"], epsilon=h["eps"], momentum=0.0, centered=False,
                                              parameters=h["params"]))

    def op_adam(self) -> OpImpl:
        return self._optimizer("paddle.optimizer.Adam",
                               lambda opt_cls, h: opt_cls(learning_rate=h["lr"], beta1=h["b1"], beta2=h["b2"], epsilon=h["eps"], parameters=h["params"]))

    def op_adamw(self) -> OpImpl:
        # Paddle's AdamW decays every parameter by learning_rate * weight_decay (coeff) per step unless
        # apply_decay_param_fun excludes it; lr_ratio (a per-parameter multiplier of the learning rate) stays unset.
        return self._optimizer("paddle.optimizer.AdamW",
                               lambda opt_cls, h: opt_cls(learning_rate=h["lr"], beta1=h["b1"], beta2=h["b2"], epsilon=h["eps"],
                                              weight_decay=h["weight_decay"], parameters=h["params"]),
                               note="weight_decay is the coefficient; the decay applied is lr * coeff * w")

    # ------------------------------------------------------------------------------------------ graphs
    def graph_namespace(self) -> Any:
        p = self.paddle
        return types.SimpleNamespace(sum=p.sum, tanh=p.tanh, matmul=p.matmul, item=lambda t: t.item())

    def value_and_grad(self, fn: Callable[..., Any], args: Sequence[Array]) -> tuple[float, Array]:
        tensors = [self.T(a, grad=(i == 0)) for i, a in enumerate(args)]
        value = fn(self.graph_namespace(), *tensors)
        (g,) = self.paddle.grad([value], [tensors[0]])
        return float(value), self.N(g)

    def graph_notes(self) -> list[str]:
        return ["dygraph (eager) mode, Paddle's default; F.item is Tensor.item(); the gradient comes from paddle.grad"]

    def compile_paths(self) -> list[str]:
        if not hasattr(getattr(self.paddle, "jit", None), "to_static"):
            return []
        return [SOT_PATH, AST_PATH]

    def compile_path_lookups(self) -> list[str]:
        return ["paddle.jit.to_static"]

    @staticmethod
    def _fixed_arity(fn: Callable[..., Any], F: Any, arity: int) -> Callable[..., Any]:
        """to_static reads the signature of what it wraps and takes no *args: give it a function of fixed arity."""
        if arity == 1:
            def one(a: Any) -> Any:
                return fn(F, a)
            return one
        if arity == 3:
            def three(a: Any, b: Any, c: Any) -> Any:
                return fn(F, a, b, c)
            return three
        raise ValueError(f"no fixed-arity wrapper for {arity} arguments")

    def _sot_translations(self) -> int | None:
        """SOT's own count of translated frames (process-wide; the probe compares it before and after a call)."""
        try:
            from paddle.jit.sot.opcode_translator.executor.executor_cache import OpcodeExecutorCache

            return int(OpcodeExecutorCache().translate_count)
        except Exception:
            return None

    def compile(self, fn: Callable[..., Any], path: str) -> CompiledFunction:
        if path not in (SOT_PATH, AST_PATH):
            return super().compile(fn, path)
        import inspect

        arity = len(inspect.signature(fn).parameters) - 1
        wrapped = self._fixed_arity(fn, self.graph_namespace(), arity)
        if path == SOT_PATH:  # the AST transcriber finds the function in its source by name: no renamed copy there
            wrapped = self._own_code(wrapped, fn.__name__)
        static = self.paddle.jit.to_static(wrapped, full_graph=(path == AST_PATH))

        def call(args: Sequence[Array]) -> tuple[float, Array]:
            ts = [self.T(a, grad=(i == 0)) for i, a in enumerate(args)]
            value = static(*ts)
            try:
                (g,) = self.paddle.grad([value], [ts[0]])
            except Exception as exc:  # say that the forward ran and the backward did not
                raise RuntimeError(f"forward gave {float(value):.6g}; the gradient failed: {str(exc).strip()[:300]}") from exc
            return float(value), self.N(g)

        if path == AST_PATH:
            return CompiledFunction(path, call, lambda: len(static.program_cache), [
                "full_graph=True: the AST transcriber rewrites the function (Python while/if on tensors become static "
                "while_loop/cond) into one static program; trace count = len(program_cache)"])
        return CompiledFunction(path, call, self._sot_translations, [
            "the default mode (full_graph=False): SOT translates the Python bytecode into static subgraphs, guarded, and "
            "runs what it cannot capture as Python; trace count = SOT's process-wide translate_count"])

    def _own_code(self, fn: Callable[..., Any], tag: str) -> Callable[..., Any]:
        """A copy of `fn` with a code object of its own.

        SOT keeps its translations per code object, guarded by what each call saw. Functions built from one `def`
        (the workloads' steps, the graph probes' fixed-arity wrappers) would share one entry and its guards, and a
        later workload's translation would land next to an earlier one's; with its own code object each compiled
        function is translated on its own, and what SOT captured for it is its alone.
        """
        self._copies += 1
        code = fn.__code__.replace(co_name=f"{fn.__name__}_{tag}_{self._copies}")
        return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)

    @staticmethod
    def _sot_cache() -> dict[Any, Any] | None:
        """SOT's cache of compiled subgraphs (each a static program run through paddle.jit.to_static(full_graph=True)),
        or None when this Paddle does not keep it where 3.3.1 does."""
        try:
            from paddle.jit.sot.symbolic.compile_cache import CompileSIRCache

            return dict(CompileSIRCache().cache)
        except Exception:
            return None

    @staticmethod
    def _grad_nodes(t: Any) -> set[str]:
        """The names of the autograd nodes that `t`'s gradient flows through."""
        seen: set[int] = set()
        names: set[str] = set()
        todo = [getattr(t, "grad_fn", None)]
        while todo:
            node = todo.pop()
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            names.add(node.name())
            todo.extend(node.next_functions)
        return names

    def _check_step_capture(self, loss: Any, before: dict[Any, Any], notes: list[str]) -> None:
        """After a compiled training step: what SOT captured, from Paddle's own records. The loss's autograd
        graph must consist of static programs' backward nodes (STATIC_GRAD_NODES) and the parameters' accumulation nodes
        only (forward and backward compiled), and no captured program may hold an optimizer op (the update is
        eager). Anything else contradicts the stated scope 'forward_backward' and raises."""
        after = self._sot_cache() or {}
        programs = [w for k, w in after.items() if k not in before]
        ops: set[str] = set()
        for wrapper in programs:
            concrete = getattr(wrapper, "concrete_program", None)
            if concrete is not None:  # PIR operations name themselves (3.x); the legacy IR's operators have a type (2.6)
                ops |= {op.name() if callable(getattr(op, "name", None)) else op.type
                        for op in concrete.main_program.global_block().ops}
        nodes = self._grad_nodes(loss)
        static = {n for n in nodes if n in STATIC_GRAD_NODES}
        eager = sorted(nodes - static - {"GradNodeAccumulation"})
        update_ops = sorted(op for op in ops if "sgd" in op)
        compute = sorted(op for op in ops if not op.startswith("builtin.") and op not in ("pd_op.data", "feed", "fetch"))
        seen = (f"SOT captured {len(programs)} static subgraph(s) with ops {compute}; the loss's autograd graph has "
                f"nodes {sorted(nodes)}")
        if not any(n.endswith(seen) for n in notes):
            notes.append(f"checked after each checked step: {seen}")
        if not static or eager:
            raise RuntimeError(f"SOT did not compile the whole forward pass: the loss's autograd graph has eager nodes "
                               f"{eager or sorted(nodes)}, so the scope is not 'forward_backward'")
        if update_ops:
            raise RuntimeError(f"the captured programs hold the update ({update_ops}): the scope is 'step', not 'forward_backward'")

    # ------------------------------------------------------------------------------------------ throughput
    def _sync(self) -> None:
        if self.place != "cpu":
            self.paddle.device.synchronize(self.place)

    def _precision(self, precision: str) -> tuple[Callable[[], Any] | None, Callable[[Callable[[], Any]], Callable[[], Any]], list[str]]:
        """How a workload computes in `precision`: (a factory of the autocast context that forward and loss run in,
        or None; a wrapper around the step that holds the TF32 switches on while it runs; notes)."""
        if precision not in PRECISIONS:
            raise KeyError(f"unknown precision {precision!r}")

        def unchanged(step: Callable[[], Any]) -> Callable[[], Any]:
            return step

        if precision == "fp32":
            return None, unchanged, []
        if precision == "tf32":
            switches = self._tf32_switches()
            lookups = ["paddle.base.core.set_cublas_switch", "paddle.base.core.set_cudnn_switch"]
            if switches is None:
                raise Unsupported(f"paddle {self.paddle.__version__} has no TF32 switches", looked_up=lookups)
            if not self.paddle.device.is_compiled_with_cuda():
                raise Unsupported(f"paddle {self.paddle.__version__} is a CPU build: TF32 is a CUDA tensor-core mode",
                                  looked_up=["paddle.device.is_compiled_with_cuda()"])
            if self.place == "cpu":
                raise Unsupported("Paddle's TF32 switches govern cuBLAS and cuDNN only; this workload runs on the CPU",
                                  looked_up=[f"{n} (for CPU kernels)" for n in lookups])
            set_cublas, get_cublas, set_cudnn, get_cudnn = switches

            def hold(step: Callable[[], Any]) -> Callable[[], Any]:
                def tf32_step() -> Any:
                    saved = (bool(get_cublas()), bool(get_cudnn()))
                    set_cublas(True)
                    set_cudnn(True)
                    try:
                        return step()
                    finally:
                        set_cublas(saved[0])
                        set_cudnn(saved[1])
                return tf32_step

            return None, hold, ["TF32 on for this workload's steps only: paddle.base.core.set_cublas_switch(True) and "
                                "set_cudnn_switch(True) around each step, the strict settings restored after it"]
        auto_cast = self._api("paddle.amp.auto_cast")
        require_parameter(auto_cast, "dtype", "paddle.amp.auto_cast")
        if not self._api("paddle.amp.is_bfloat16_supported")(self.place):
            raise Unsupported(f"paddle.amp.is_bfloat16_supported({self.place!r}) is False",
                              looked_up=[f"bfloat16 automatic mixed precision on {self.place}"])

        def autocast() -> Any:
            return auto_cast(enable=True, level="O1", dtype="bfloat16")

        # auto_cast is a no-op outside CUDA/XPU/custom places (it warns and computes float32): ask it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with autocast():
                probe = self.paddle.matmul(self.T(np.ones((2, 2), np.float32)), self.T(np.ones((2, 2), np.float32)))
        if probe.dtype != self.paddle.bfloat16:
            raise Unsupported(f"paddle.amp.auto_cast(dtype='bfloat16') has no effect on {self.place}: a float32 matmul "
                              f"under it gives {probe.dtype}",
                              looked_up=[f"paddle.amp.auto_cast(level='O1', dtype='bfloat16') on {self.place}"])

        return autocast, unchanged, ["paddle.amp.auto_cast(level='O1', dtype='bfloat16') around forward and loss: the "
                                     "ops on Paddle's O1 list run in bfloat16, parameters, gradients and the SGD update "
                                     "stay float32"]

    def _peak_memory(self) -> tuple[Callable[[], int | None], list[str]]:
        """The device memory Paddle's allocator has held at most since now (the counter is reset here), or None on the
        CPU. Paddle 2.6 has no reset: its peak counts only once it passes the peak held before the workload."""
        if self.place == "cpu":
            return (lambda: None), []
        cuda = self.paddle.device.cuda
        reset = getattr(cuda, "reset_max_memory_allocated", None)
        if reset is not None:
            reset(self.place)
            return (lambda: int(cuda.max_memory_allocated(self.place))), []
        floor = int(cuda.max_memory_allocated(self.place))

        def peak() -> int | None:
            now = int(cuda.max_memory_allocated(self.place))
            return now if now > floor else None

        return peak, [f"paddle {self.paddle.__version__} has no paddle.device.cuda.reset_max_memory_allocated: the peak "
                      "is known only when it passes the process's peak before the workload was built (None otherwise)"]

    def _catalog_layers(self) -> types.SimpleNamespace:
        """The paddle.nn.Layer classes that wrap Paddle's layers where a node kind needs a little glue (made once per
        adapter, as paddle is imported at run time). Their forward methods read only their arguments and attributes:
        no free variables, so SOT captures them whole."""
        if getattr(self, "_layer_classes", None) is not None:
            return self._layer_classes
        nn = self.nn

        class Add(nn.Layer):
            def forward(self, a: Any, b: Any) -> Any:
                return a + b

        class Positional(nn.Layer):
            """A learned (length, dim) table added to (N, length, dim)."""

            def __init__(self, length: int, dim: int) -> None:
                super().__init__()
                self.table = self.create_parameter([length, dim], dtype="float32")

            def forward(self, x: Any) -> Any:
                return x + self.table

        class MeanTokens(nn.Layer):
            def forward(self, x: Any) -> Any:
                return x.mean(axis=1)

        class SelfAttention(nn.Layer):
            """paddle.nn.MultiHeadAttention of a sequence on itself (query = key = value), no mask, no dropout."""

            def __init__(self, dim: int, heads: int) -> None:
                super().__init__()
                self.attention = nn.MultiHeadAttention(dim, heads)

            def forward(self, x: Any) -> Any:
                return self.attention(x, x, x)

        class LastHidden(nn.Layer):
            """paddle.nn.LSTM (batch first, h0 = c0 = 0): the last hidden state."""

            def __init__(self, size: int, hidden: int) -> None:
                super().__init__()
                self.lstm = nn.LSTM(size, hidden)

            def forward(self, x: Any) -> Any:
                _, (h, _) = self.lstm(x)
                return h[0]

        class AllHidden(nn.Layer):
            """paddle.nn.GRU (batch first, h0 = 0): the hidden state at every step."""

            def __init__(self, size: int, hidden: int) -> None:
                super().__init__()
                self.gru = nn.GRU(size, hidden)

            def forward(self, x: Any) -> Any:
                y, _ = self.gru(x)
                return y

        class CatalogNet(nn.Layer):
            """A catalog model: its nodes' layers in execution order, each fed the outputs of the nodes it names; the
            output node's logits go through paddle.nn.CrossEntropyLoss (softmax, mean over every row: the batch, or
            every token)."""

            def __init__(self, steps: list[tuple[str, Any, tuple[str, ...]]], output: str) -> None:
                super().__init__()
                for name, layer, _ in steps:
                    self.add_sublayer(f"node_{name}", layer)
                self.steps = steps
                self.output = output
                self.loss = nn.CrossEntropyLoss()

            def logits(self, x: Any) -> Any:
                values = {"input": x}
                for name, layer, inputs in self.steps:
                    args = []
                    for i in inputs:
                        args.append(values[i])
                    values[name] = layer(*args)
                return values[self.output]

            def forward(self, x: Any, labels: Any) -> Any:
                logits = self.logits(x)
                return self.loss(logits.reshape([-1, logits.shape[-1]]), labels.reshape([-1]))

        class Logits(nn.Layer):
            """A CatalogNet's forward pass without the loss: the logits of x (what the ONNX export saves)."""

            def __init__(self, net: Any) -> None:
                super().__init__()
                self.net = net

            def forward(self, x: Any) -> Any:
                return self.net.logits(x)

        self._layer_classes = types.SimpleNamespace(Add=Add, Positional=Positional, MeanTokens=MeanTokens,
                                                    SelfAttention=SelfAttention, LastHidden=LastHidden,
                                                    AllHidden=AllHidden, CatalogNet=CatalogNet, Logits=Logits)
        return self._layer_classes

    def _node_layer(self, node: Any, x: tuple[int, ...], own: set[str]) -> tuple[Any, dict[str, tuple[str, Any, Any]], dict[str, Array]]:
        """The Paddle layer of one catalog node (x: its first input's shape; own: its catalog parameter names), with
        the layout of each catalog parameter (the layer's attribute path, catalog -> Paddle, Paddle -> catalog; None:
        the same layout) and the tensors the adapter adds and pins (attribute path -> value)."""
        nn, L = self.nn, self._catalog_layers()
        k, a = node.kind, node.attrs
        same = None
        if k == "dense":  # paddle.nn.Linear keeps its weight (in, out): the catalog's layout
            layer = nn.Linear(x[-1], a["out"], bias_attr=None if "b" in own else False)
            return layer, {"w": ("weight", same, same), **({"b": ("bias", same, same)} if "b" in own else {})}, {}
        if k == "conv2d":  # (O, C, k, k), NCHW: Paddle's own layout
            layer = nn.Conv2D(x[1], a["out"], a["kernel"], stride=a["stride"], padding=a["padding"],
                              bias_attr=None if "b" in own else False)
            return layer, {"w": ("weight", same, same), **({"b": ("bias", same, same)} if "b" in own else {})}, {}
        if k == "batch_norm":  # training mode: batch statistics, biased variance
            return nn.BatchNorm2D(x[1], epsilon=NORM_EPS), {"gamma": ("weight", same, same), "beta": ("bias", same, same)}, {}
        if k == "layer_norm":
            return nn.LayerNorm(x[-1], epsilon=NORM_EPS), {"gamma": ("weight", same, same), "beta": ("bias", same, same)}, {}
        if k == "relu":
            return nn.ReLU(), {}, {}
        if k == "gelu":
            return nn.GELU(approximate=False), {}, {}
        if k == "max_pool":  # pads with -inf: padded cells never win
            return nn.MaxPool2D(a["kernel"], stride=a["stride"], padding=a["padding"]), {}, {}
        if k == "global_avg_pool":
            return nn.Sequential(nn.AdaptiveAvgPool2D(1), nn.Flatten()), {}, {}
        if k == "flatten":  # Paddle computes NCHW: flattening keeps the catalog's order
            return nn.Flatten(), {}, {}
        if k == "add":
            return L.Add(), {}, {}
        if k == "embedding":  # (vocab, dim): Paddle's layout; a dense gradient (sparse=False)
            return nn.Embedding(a["vocab"], a["dim"]), {"table": ("weight", same, same)}, {}
        if k == "positional":
            return L.Positional(x[1], x[2]), {"table": ("table", same, same)}, {}
        if k == "mean_tokens":
            return L.MeanTokens(), {}, {}
        if k == "self_attention":  # separate q/k/v/out projections, each a paddle.nn.Linear with an (in, out) weight
            layout = {}
            for c, proj in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "out_proj")):
                layout[f"w{c}"] = (f"attention.{proj}.weight", same, same)
                layout[f"b{c}"] = (f"attention.{proj}.bias", same, same)
            return L.SelfAttention(x[-1], a["heads"]), layout, {}
        if k in ("lstm_last", "gru"):
            # Paddle keeps recurrent weights (gates * hidden, in) with its own documented gate blocks
            ours, theirs = CATALOG_GATES[k], PADDLE_LSTM if k == "lstm_last" else PADDLE_GRU

            def weight_in(w: Array) -> Array:
                return reorder_gates(w, ours, theirs).T

            def weight_out(w: Array) -> Array:
                return reorder_gates(w.T, theirs, ours)

            def bias_in(b: Array) -> Array:
                return reorder_gates(b, ours, theirs)

            def bias_out(b: Array) -> Array:
                return reorder_gates(b, theirs, ours)

            if k == "gru":
                return L.AllHidden(x[-1], a["hidden"]), {
                    "wx": ("gru.weight_ih_l0", weight_in, weight_out), "wh": ("gru.weight_hh_l0", weight_in, weight_out),
                    "bx": ("gru.bias_ih_l0", bias_in, bias_out), "bh": ("gru.bias_hh_l0", bias_in, bias_out)}, {}
            zeros = np.zeros(4 * a["hidden"], np.float32)
            return L.LastHidden(x[-1], a["hidden"]), {
                "wx": ("lstm.weight_ih_l0", weight_in, weight_out), "wh": ("lstm.weight_hh_l0", weight_in, weight_out)}, {
                "lstm.bias_ih_l0": zeros, "lstm.bias_hh_l0": zeros}
        raise NotMapped(f"the {self.name} adapter maps no catalog node kind {k!r}")

    @staticmethod
    def _attribute(layer: Any, path: str) -> Any:
        for part in path.split("."):
            layer = getattr(layer, part)
        return layer

    def _catalog_net(self, model: Any, arrays: dict[str, Array]) -> tuple[Any, dict[str, tuple[Any, Any]], list[Any], list[str]]:
        """The model as a Paddle layer with the catalog's initial parameters loaded; for every catalog parameter its
        Paddle tensor and the map back to the catalog's layout; the trainable tensors (what the optimizer updates);
        notes."""
        shapes, param_shapes = model.shapes(), model.param_shapes()
        steps: list[tuple[str, Any, tuple[str, ...]]] = []
        found: dict[str, tuple[Any, Any]] = {}
        pinned: dict[int, tuple[str, Any, Array]] = {}
        notes: list[str] = []
        for node in model.nodes:
            own = {full.split(".", 1)[1] for full in param_shapes if full.split(".", 1)[0] == node.name}
            layer, layout, pins = self._node_layer(node, shapes[node.inputs[0]], own)
            if set(layout) != own:
                raise RuntimeError(f"node {node.name} ({node.kind}): the catalog has parameters {sorted(own)}, the "
                                   f"Paddle layer maps {sorted(layout)}")
            for pname, (path, to_paddle, to_catalog) in layout.items():
                tensor = self._attribute(layer, path)
                value = arrays[f"{node.name}.{pname}"]
                value = np.asarray(value if to_paddle is None else to_paddle(value), np.float32)
                if tuple(tensor.shape) != value.shape:
                    raise ValueError(f"{node.name}.{pname}: Paddle's {path} has shape {tuple(tensor.shape)}, the catalog "
                                     f"gives {value.shape} after mapping")
                tensor.set_value(value)
                found[f"{node.name}.{pname}"] = (tensor, to_catalog)
            for path, value in pins.items():
                tensor = self._attribute(layer, path)
                tensor.set_value(value)
                pinned[id(tensor)] = (f"{node.name}: {path}", tensor, value)
            if pins and node.kind == "lstm_last":
                note = ("lstm_last: paddle.nn.LSTM (its fused rnn kernel: cuDNN on CUDA, Paddle's own on the CPU) with "
                        "its two bias vectors set to zero and left out of the optimizer, so they stay zero and are not "
                        "counted: without biases (bias_ih_attr=False) its CPU kernel dies with SIGSEGV, and biases "
                        "with stop_gradient=True make its backward fail (\"Required tensor shall not be nullptr\"), so "
                        "they keep taking gradients that nothing applies")
                if note not in notes:
                    notes.append(note)
            steps.append((node.name, layer, tuple(node.inputs)))
        net = self._catalog_layers().CatalogNet(steps, model.output)
        trainable = [q for q in net.parameters() if not q.stop_gradient and id(q) not in pinned]
        mapped = {id(t) for t, _ in found.values()}
        extra = [q.name for q in trainable if id(q) not in mapped]
        missing = [n for n, (t, _) in found.items() if t.stop_gradient]
        if extra or missing:
            raise RuntimeError(f"the Paddle model's trainable parameters differ from the catalog's: unmapped {extra}, "
                               f"frozen {missing}")
        net.pinned = list(pinned.values())
        return net, found, trainable, notes

    def model_workload(self, model: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """Any catalog model, built node by node from paddle.nn layers (see _node_layer); the step is _train_step:
        forward and loss, backward, paddle.optimizer.SGD at the catalog's learning rate."""
        p = self.paddle
        if mode not in ("eager", "compiled"):
            raise KeyError(f"unknown mode {mode!r}")
        compiled = mode == "compiled"
        self._use_device()
        autocast, hold, notes = self._precision(precision)
        peak, memory_notes = self._peak_memory()
        before = self._sot_cache() if compiled else None
        net, found, trainable, net_notes = self._catalog_net(model, arrays)
        net.train()
        opt = p.optimizer.SGD(learning_rate=LEARNING_RATE, parameters=trainable)
        count = int(sum(math.prod(q.shape) for q in trainable))
        x, labels = self.T(arrays["x"]), self.T(arrays["labels"])
        float32_loss: list[float] = []  # bf16: the loss of a float32 forward, to see that autocast changed the step
        if autocast is not None:
            with p.no_grad():
                float32_loss.append(float(net(x, labels)))
        fn = _train_step if autocast is None else _train_step_autocast
        args = (net, opt, x, labels) if autocast is None else (net, opt, x, labels, autocast)
        notes = [*net_notes, *notes, *memory_notes]
        if compiled:
            fn = p.jit.to_static(self._own_code(fn, "model"))
            notes.append("the whole train step (forward, cross-entropy, backward, SGD update) goes through "
                         "paddle.jit.to_static in its default SOT mode: the forward pass and the loss become a static "
                         "program whose backward is a static program too, while Tensor.backward and Optimizer.step are "
                         "graph breaks (SOT supports neither), so the backward call and the SGD update run eagerly; "
                         "checked from Paddle's records after each checked step")
        compiled_fn = fn

        def step() -> Any:
            return compiled_fn(*args)

        def observe(loss: Any) -> dict[str, Any]:
            if compiled:
                self._check_step_capture(loss, before or {}, notes)
            for where, tensor, value in net.pinned:
                if not np.array_equal(self.N(tensor), value):
                    raise RuntimeError(f"{where} should stay pinned at its initial value and moved")
            out: dict[str, Any] = {"loss": self.N(loss.astype("float32")).reshape(())}
            if float32_loss:  # the first step's loss, from the same parameters as the float32 forward
                reference = float32_loss.pop()
                if abs(float(out["loss"]) - reference) <= 2.0**-20 * abs(reference):
                    raise RuntimeError(f"the bf16 step's loss {float(out['loss'])!r} equals a float32 forward's "
                                       f"({reference!r}) to float32 precision: autocast changed nothing")
            for name, (tensor, to_catalog) in found.items():
                value = self.N(tensor)
                out[name] = value if to_catalog is None else to_catalog(value)
            return out

        return Workload(hold(step), self._sync, count, f"{SOT_PATH} (default: full_graph=False, SOT)" if compiled else None,
                        notes, observe=observe, compile_scope="forward_backward" if compiled else None,
                        traces=self._traces(before) if compiled else (lambda: None), peak_memory=peak, precision=precision)

    def _traces(self, before: dict[Any, Any] | None) -> Callable[[], int | None]:
        def traces() -> int | None:
            """Static subgraphs SOT compiled since the workload was built (Paddle's own compile cache)."""
            now = self._sot_cache()
            return None if now is None or before is None else len(now.keys() - before.keys())
        return traces

    def workload(self, spec: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """The single-op workloads: paddle.matmul and paddle.nn.functional.conv2d, forward only."""
        p = self.paddle
        compiled = mode == "compiled"
        self._use_device()
        autocast, hold, notes = self._precision(precision)
        peak, memory_notes = self._peak_memory()
        before = self._sot_cache() if compiled else None
        wrap: Callable[[Any], Any] = (lambda f: p.jit.to_static(self._own_code(f, spec.id))) if compiled else (lambda f: f)
        if spec.id == "gemm":
            args: tuple[Any, ...] = (self.T(arrays["a"]), self.T(arrays["b"]))

            def gemm(a: Any, b: Any) -> Any:
                return p.matmul(a, b)

            f = wrap(gemm)
        elif spec.id == "conv2d":
            args = (self.T(arrays["x"]), self.T(arrays["w"]))

            def conv(x: Any, w: Any) -> Any:
                return self.F.conv2d(x, w, padding=1)

            f = wrap(conv)
        else:
            raise NotMapped(f"the {self.name} adapter has no single-op workload {spec.id}")

        def op_step() -> Any:
            with p.no_grad():
                if autocast is None:
                    return f(*args)
                with autocast():
                    return f(*args)

        return Workload(hold(op_step), self._sync, 0, f"{SOT_PATH} (default: full_graph=False, SOT)" if compiled else None,
                        [*notes, *memory_notes], observe=lambda y: {"y": self.N(y.astype("float32"))},
                        compile_scope="op" if compiled else None, traces=self._traces(before) if compiled else (lambda: None),
                        peak_memory=peak, precision=precision)

    # ------------------------------------------------------------------------------------------ numerics
    def array_api(self) -> ArrayAPI:
        return ArrayAPI("paddle", self.paddle, self.paddle.to_tensor, lambda t: np.asarray(t.numpy()),
                        self._api("paddle.utils.dlpack.from_dlpack"))

    # ------------------------------------------------------------------------------------------ scale
    def allreduce(self, rank: int, world: int, host: str, port: int, value: Array) -> AllReduceResult:
        """paddle.distributed takes its group from the environment that paddle.distributed.launch would set, not from
        arguments: set it for this rank (rank_environment: NCCL on this adapter's own GPU, gloo on the CPU), let
        init_parallel_env build the process group, all-reduce a tensor on this adapter's device, and put the
        environment back."""
        dist = self._api("paddle.distributed")
        env = rank_environment(rank, world, host, port, self.place)
        backend = env["PADDLE_DISTRI_BACKEND"]
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            dist.init_parallel_env()
            try:
                t = self.T(value.copy())
                dist.all_reduce(t, op=dist.ReduceOp.SUM)
                where = str(t.place)
                return AllReduceResult(f"paddle.distributed.all_reduce ({backend})", True, self.N(t),
                                       ["the group is configured through PADDLE_* / MASTER_* environment variables "
                                        "(what paddle.distributed.launch sets), read by paddle.distributed.init_parallel_env",
                                        f"this rank reduced a tensor on {where} (device {self.device})"])
            finally:
                dist.destroy_process_group()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    # ------------------------------------------------------------------------------------------ onnx
    def _onnx_model(self, model: Any) -> Any:
        nn = self.nn
        if model.catalog is not None:  # the catalog model from the same Paddle layers as its training workloads
            return self._catalog_layers().Logits(self._catalog_net(model.model(), model.weights())[0])
        w = model.weights()
        if model.id == "mlp":
            m = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10))
            return self._load(m, **{"0.weight": w["w1"], "0.bias": w["b1"], "2.weight": w["w2"], "2.bias": w["b2"]})
        if model.id == "cnn":
            m = nn.Sequential(nn.Conv2D(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(), nn.Linear(64, 10))
            return self._load(m, **{"0.weight": w["conv_w"], "0.bias": w["conv_b"], "4.weight": w["fc_w"], "4.bias": w["fc_b"]})
        raise KeyError(model.id)

    def onnx_export(self, model: Any, path: str, opset: int | None) -> ExportResult:
        from harness.catalog.onnx_models import DEFAULT_OPSET

        p = self.paddle
        export = self._api("paddle.onnx.export")
        m = self._onnx_model(model)
        m.eval()
        x = model.sample_input()
        with p.no_grad():
            expected = self.N(m(self.T(x)))
        target = Path(path)
        if target.suffix != ".onnx":
            raise ValueError(f"paddle.onnx.export appends .onnx to its path prefix; cannot write {path}")
        spec = [p.static.InputSpec(shape=list(x.shape), dtype=str(x.dtype), name="x")]
        use = opset or DEFAULT_OPSET
        # paddle.onnx.export saves the layer with paddle.jit.save, then hands the program to paddle2onnx, which logs
        # and swallows its own errors: a missing file afterwards is the failure.
        export(m, str(target.with_suffix("")), input_spec=spec, opset_version=use)
        if not target.exists():
            raise RuntimeError("paddle.onnx.export (paddle2onnx) wrote no file; its log says why")
        notes = ["paddle.onnx.export is Paddle's API, but the converter it calls is paddle2onnx, a separate distribution "
                 "(not shipped in paddlepaddle)",
                 f"opset {use} requested explicitly (paddle.onnx.export defaults to opset 9)",
                 "paddle2onnx folds constants with polygraphy and sets POLYGRAPHY_AUTOINSTALL_DEPS=1: onnx-graphsurgeon is "
                 "pinned so nothing is installed at run time"]
        versions = distribution_versions("paddle2onnx")
        return ExportResult("paddle.onnx.export (paddle2onnx)", versions["paddle2onnx"], use, expected, notes)

    def onnx_import(self, path: str) -> ImportResult:
        version = distribution_versions("x2paddle")["x2paddle"]
        if version == "not installed":
            raise Unsupported("x2paddle (the ONNX importer for Paddle) is not installed", looked_up=["x2paddle (distribution)"])
        from x2paddle.convert import onnx2paddle

        # its own folder (the model's folder may be shared, e.g. the conformance case cache), gone once loaded
        out = Path(tempfile.mkdtemp(prefix="x2paddle-"))
        try:
            # x2paddle writes Paddle code and a static model, building the model in dygraph with parameters named
            # after the ONNX initializers (x2paddle_w1...). Paddle refuses a parameter name used before in the
            # process, so the conversion runs in a fresh name namespace (paddle.utils.unique_name.guard), as a second
            # conversion of the same names would otherwise fail. disable_feedback=True: x2paddle otherwise posts usage
            # statistics from a thread.
            printed = io.StringIO()
            with self.paddle.utils.unique_name.guard(), contextlib.redirect_stdout(printed):
                try:
                    onnx2paddle(path, str(out), disable_feedback=True)
                except SystemExit as exc:  # x2paddle prints the error and calls exit(0) when saving its model fails
                    said = [line.strip() for line in printed.getvalue().splitlines() if line.strip()]
                    raise RuntimeError(f"x2paddle onnx2paddle called exit({exc.code}) saving the converted model"
                                       + (f": {said[-1][:300]}" if said else "")) from None
            model_file = out / "inference_model" / "model"
            if not (out / "inference_model").exists():
                raise RuntimeError("x2paddle onnx2paddle wrote no inference model")
            layer = self.paddle.jit.load(str(model_file))
        finally:
            shutil.rmtree(out, ignore_errors=True)
        layer.eval()

        def run(x: Array) -> Array:
            with self.paddle.no_grad():
                y = layer(self.T(x))
            return self.N(y[0] if isinstance(y, (list, tuple)) else y)

        # the loaded model's inputs are the ONNX graph's that x2paddle kept, named x2paddle_<ONNX name> (other
        # characters than letters, digits and '_' as '_'); an input x2paddle dropped (e.g. one it reads as a
        # constant) is not fed
        import onnx

        proto = onnx.load(path)
        initializers = {i.name for i in proto.graph.initializer}
        onnx_names = [i.name for i in proto.graph.input if i.name not in initializers]
        taken = list(getattr(layer, "_input_args_names", None) or [])

        def position(name: str) -> int:
            for i, onnx_name in enumerate(onnx_names):
                if name in (f"x2paddle_{onnx_name}", f"x2paddle_{re.sub(r'[^0-9A-Za-z_]', '_', onnx_name)}"):
                    return i
            raise KeyError(f"x2paddle's model takes an input {name!r} that is no ONNX input ({onnx_names})")

        order = [position(n) for n in taken] if taken else list(range(len(onnx_names)))

        def run_many(inputs: list[Any]) -> list[Any]:
            fed = [inputs[i] for i in order]
            for i, v in zip(order, fed):
                if v is None or isinstance(v, list):
                    raise TypeError(f"input {onnx_names[i]!r}: x2paddle's model takes tensors only (here "
                                    f"{'an omitted optional' if v is None else 'a sequence'})")
            with self.paddle.no_grad():
                y = layer(*[self.T(np.asarray(v)) for v in fed])
            return [self.N(t) for t in y] if isinstance(y, (list, tuple)) else [self.N(y)]

        notes = ["x2paddle.convert.onnx2paddle (disable_feedback=True) inside paddle.utils.unique_name.guard(), then "
                 "paddle.jit.load of the inference model it writes"]
        # x2paddle's highest opset: the OpSet<N> mappers its ONNXOpMapper chooses from (a newer model is converted
        # with the highest of them), read from the module at run time
        from x2paddle.op_mapper.onnx2paddle import onnx_op_mapper

        opsets = sorted(int(n[5:]) for n in dir(onnx_op_mapper) if n.startswith("OpSet") and n[5:].isdigit())
        why = (f"the OpSet<N> mapper classes in x2paddle.op_mapper.onnx2paddle.onnx_op_mapper: {opsets} (ONNXOpMapper "
               "converts a model of a higher opset with the highest of them)")
        return ImportResult("x2paddle", version, run, notes, run_many=run_many,
                            max_opset=opsets[-1] if opsets else None, max_opset_evidence=why)
