"""PyTorch adapter: torch.nn, torch.nn.functional, torch.optim (gradients of every catalog parameter by autograd,
mapped back to the catalog's layouts); catalog models built node by node from torch layers and trained with
torch.optim.SGD, eagerly or through torch.compile of the whole step; strict float32 by default (TF32 and
reduced-precision reductions off), TF32 or bfloat16 autocast per workload on CUDA; TorchScript tracing;
torch.distributed (NCCL on a rank's own GPU, gloo on the CPU); torch.onnx.export with its default exporter, and the
onnx2torch importer."""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Callable, Mapping, Sequence
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
    reorder_gates,
    require_parameter,
    resolve,
)
from harness.catalog.models import NORM_EPS
from harness.catalog.ops import Case
from harness.catalog.workloads import LEARNING_RATE

Array = np.ndarray
CANONICAL_LSTM = "ifgo"  # the catalog's gate order (lstm op default, lstm_last node kind)
CANONICAL_GRU = "rzn"  # the catalog's gate order of the gru node kind
TORCH_LSTM = "ifgo"  # torch.nn.LSTM's gate order (documented on nn.LSTM: W_ii|W_if|W_ig|W_io)
TORCH_GRU = "rzn"  # torch.nn.GRU's gate order (W_ir|W_iz|W_in), reset gate applied after the matmul


def cuda_index(device: str) -> int | None:
    """The CUDA device index a device string names: "cuda:N" -> N, "cuda" -> 0 (the first device), "cpu" -> None.
    Anything else raises ValueError."""
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return None
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"not a device string this adapter takes: {device!r} (cpu, cuda or cuda:N)")
    return int(index) if index else 0


def torch_device_string(device: str) -> str:
    """The device string handed to torch.device: always with its index on CUDA, so every tensor, layer and compiled
    function lands on the GPU the harness named (a bare "cuda" would follow torch's current device instead)."""
    index = cuda_index(device)
    return "cpu" if index is None else f"cuda:{index}"


#: the strict-float32 switches the adapter sets at start-up, torch's legacy flags (torch 2.13 refuses to read a flag
#: after the newer fp32_precision API has set it, so the adapter writes only these and reads the newer view back)
STRICT_FP32 = {
    "torch.backends.cuda.matmul.allow_tf32": False,
    "torch.backends.cudnn.allow_tf32": False,
    "torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction": False,
    "torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction": False,
    "torch.backends.cuda.matmul.allow_fp16_accumulation": False,
}

GradBack = Callable[[dict[str, Array]], Array]  # torch parameter gradients by name -> one catalog gradient


def _same(name: str) -> GradBack:
    """A catalog parameter loaded as is into torch parameter `name`."""
    return lambda grads: grads[name]


def _transposed(name: str) -> GradBack:
    """A catalog (in, out) weight loaded transposed into torch's (out, in) parameter `name`."""
    return lambda grads: grads[name].T


def _gates_back(name: str, torch_order: str, catalog_order: str, transposed: bool = False) -> GradBack:
    """A catalog recurrent weight (I, G*H) or bias (G*H), gate-reordered (and transposed) into torch's `name`."""
    return lambda grads: reorder_gates(grads[name].T if transposed else grads[name], torch_order, catalog_order)


class TorchAdapter(Adapter):
    name = "torch"
    distribution = "torch"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        import torch

        self.torch = torch
        self.nn = torch.nn
        self.F = torch.nn.functional
        self.dev = torch.device(torch_device_string(device))
        self.precision_set = self._strict_float32()
        if self.dev.type == "cuda" and self.device_available()[0]:
            torch.cuda.set_device(self.dev)  # the rank's own GPU for NCCL and for anything that follows the current device
        torch.manual_seed(0)

    # ------------------------------------------------------------------------------------------ precision
    def _flag_owner(self, dotted: str) -> tuple[Any, str]:
        """The object holding a switch named like "torch.backends.cudnn.allow_tf32", and the attribute's name."""
        *path, attribute = dotted.split(".")
        return resolve(self.torch, ".".join(path)), attribute

    def _read_switch(self, dotted: str) -> Any:
        try:
            owner, attribute = self._flag_owner(dotted)
            return getattr(owner, attribute)
        except (Unsupported, AttributeError) as exc:
            return f"not in this torch ({exc})"
        except RuntimeError as exc:  # torch refuses to read a legacy flag once the newer API has set it
            return f"unreadable: {str(exc).splitlines()[0][:120]}"

    def _strict_float32(self) -> dict[str, Any]:
        """TF32 and reduced-precision reductions off: every switch in STRICT_FP32, and float32 matmul precision
        "highest" (torch.set_float32_matmul_precision, which also covers oneDNN matmuls on the CPU). Returns what torch
        reads back for each, plus the newer fp32_precision view of the same state ("ieee" is strict float32; "none"
        defers to the parent backend's setting, whose legacy flag is the one above)."""
        for dotted, value in STRICT_FP32.items():
            try:
                owner, attribute = self._flag_owner(dotted)
                setattr(owner, attribute, value)
            except (Unsupported, AttributeError):
                pass  # an older torch without this switch: read back below as "not in this torch"
        self.torch.set_float32_matmul_precision("highest")
        out: dict[str, Any] = {name: self._read_switch(name) for name in STRICT_FP32}
        out["torch.get_float32_matmul_precision()"] = self.torch.get_float32_matmul_precision()
        for name in ("torch.backends.cuda.matmul.fp32_precision", "torch.backends.cudnn.conv.fp32_precision",
                     "torch.backends.cudnn.rnn.fp32_precision", "torch.backends.mkldnn.matmul.fp32_precision",
                     "torch.backends.mkldnn.conv.fp32_precision"):
            out[name] = self._read_switch(name)
        return out

    def _tf32_on(self) -> Callable[[Callable[[], Any]], Any]:
        """Runs a function with TF32 allowed for cuBLAS matmuls and cuDNN convolutions/RNNs, restoring the strict
        switches afterwards (set outside any compiled function: dynamo guards on the matmul switch)."""
        backends = self.torch.backends

        def run(fn: Callable[[], Any]) -> Any:
            matmul, cudnn = backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32
            backends.cuda.matmul.allow_tf32 = backends.cudnn.allow_tf32 = True
            try:
                return fn()
            finally:
                backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32 = matmul, cudnn

        return run

    def _precision_context(self, precision: str) -> tuple[Callable[[Callable[[], Any]], Any], bool, list[str]]:
        """For a workload precision: how to run its step (TF32 switched on around it, or as is), whether forward and
        loss run under bfloat16 autocast, and what the record should say. Unsupported where torch cannot."""
        if precision == "fp32":
            return (lambda fn: fn()), False, ["strict float32: TF32 and reduced-precision reductions off "
                                              "(device_info()['precision'])"]
        if precision == "tf32":
            if self.dev.type != "cuda":
                raise Unsupported("TF32 is a CUDA tensor-core mode: torch's TF32 switches act on cuBLAS and cuDNN only",
                                  looked_up=["torch.backends.cuda.matmul.allow_tf32 (cuBLAS)",
                                             "torch.backends.cudnn.allow_tf32 (cuDNN)", f"device {self.dev}"])
            return self._tf32_on(), False, ["TF32 on for this workload's step only (torch.backends.cuda.matmul."
                                           "allow_tf32 and torch.backends.cudnn.allow_tf32 set True around it, "
                                           "restored after)"]
        if precision == "bf16":
            autocast = self._api("torch.autocast")
            if self.dev.type == "cuda":
                supported = self._api("torch.cuda.is_bf16_supported")
                if not supported():
                    raise Unsupported(f"torch says {self.dev} cannot compute in bfloat16",
                                      looked_up=["torch.cuda.is_bf16_supported() is False"])
            require_parameter(autocast, "dtype", "torch.autocast")
            return (lambda fn: fn()), True, [f"torch.autocast(device_type={self.dev.type!r}, dtype=torch.bfloat16) "
                                             "around forward and loss; float32 parameters, SGD update in float32"]
        raise KeyError(f"unknown precision {precision!r}")

    # ------------------------------------------------------------------------------------------ identity
    def versions(self) -> dict[str, str]:
        return distribution_versions("torch", "numpy", "onnx", "onnxruntime", "onnxscript", "onnx2torch")

    def device_available(self) -> tuple[bool, str]:
        try:
            index = cuda_index(self.device)
        except ValueError as exc:
            return False, str(exc)
        if index is None:
            return True, ""
        t = self.torch
        if not t.cuda.is_available():
            build = f"built for CUDA {t.version.cuda}" if t.version.cuda else "a CPU-only build"
            return False, f"torch {t.__version__} ({build}) sees no CUDA device (torch.cuda.is_available() is False)"
        count = t.cuda.device_count()
        if index >= count:
            return False, f"torch sees {count} CUDA device(s): there is no {self.device}"
        return True, ""

    def gpu_count(self) -> int:
        t = self.torch
        return int(t.cuda.device_count()) if t.cuda.is_available() else 0

    def device_info(self) -> dict[str, Any]:
        t = self.torch
        info: dict[str, Any] = {"device": str(self.dev), "precision": dict(self.precision_set)}
        if self.dev.type == "cpu":
            info.update(threads=t.get_num_threads(), torch_cuda=t.version.cuda)
            return info
        available, why = self.device_available()
        info.update(available=available, torch_cuda=t.version.cuda)
        if not available:
            info["why_not"] = why
            return info
        props = t.cuda.get_device_properties(self.dev)
        info.update(name=props.name, index=self.dev.index, capability=f"{props.major}.{props.minor}",
                    memory_bytes=int(props.total_memory), multiprocessors=props.multi_processor_count,
                    cudnn=t.backends.cudnn.version() if t.backends.cudnn.is_available() else None,
                    nccl=self._nccl_version(),
                    bf16_supported=bool(t.cuda.is_bf16_supported()))
        return info

    def _nccl_version(self) -> str | None:
        try:
            return ".".join(map(str, self.torch.cuda.nccl.version()))
        except Exception:  # a build without NCCL
            return None

    # ------------------------------------------------------------------------------------------ helpers
    def T(self, a: Array, grad: bool = False) -> Any:
        t = self.torch.from_numpy(np.ascontiguousarray(a)).to(self.dev)
        if grad:
            t.requires_grad_(True)
        return t

    @staticmethod
    def N(t: Any) -> Array:
        t = t.detach()
        if t.is_floating_point() and t.element_size() < 4:  # bfloat16/float16 results: NumPy gets them as float32
            t = t.float()
        return np.asarray(t.cpu().numpy())

    def _load(self, module: Any, **params: Array) -> Any:
        """Copy catalog arrays into a module's parameters/buffers (already in torch's layout)."""
        with self.torch.no_grad():
            for name, value in params.items():
                getattr(self._owner(module, name), name.rsplit(".", 1)[-1]).copy_(self.T(np.asarray(value, np.float32)))
        return module.to(self.dev)

    @staticmethod
    def _owner(module: Any, dotted: str) -> Any:
        *path, _ = dotted.split(".")
        for part in path:
            module = getattr(module, part)
        return module

    def _pin(self, module: Any, *names: str) -> Any:
        """Freeze parameters the adapter adds and holds at their loaded value (a second RNN bias set to 0): they are
        not catalog parameters and are not trained."""
        for name in names:
            getattr(self._owner(module, name), name.rsplit(".", 1)[-1]).requires_grad_(False)
        return module

    def _result(self, case: Case, outputs: dict[str, Any], inputs: dict[str, Any], module: Any = None,
                back: Mapping[str, Callable[[dict[str, Array]], Array]] | None = None) -> dict[str, Array]:
        """Outputs as NumPy and, when the case asks, "grads": the gradient of sum_k sum(output_k * cotangent_k) for
        every name in case.wrt. Names in `inputs` are tensors fed to the op; every other name is a catalog parameter,
        got from the gradients of the module's parameters (by torch name) through back[name], which inverts the
        transform that loaded it (transpose, gate reorder, slice of a fused projection)."""
        out: dict[str, Any] = {k: self.N(v) for k, v in outputs.items()}
        if case.grad_wrt is None:
            return out
        named = {n: p for n, p in module.named_parameters() if p.requires_grad} if module is not None else {}
        direct = [n for n in case.wrt if n in inputs]
        targets = [inputs[n] for n in direct] + list(named.values())
        keys = list(case.cotangents)
        found = self.torch.autograd.grad([outputs[k] for k in keys], targets, [self.T(case.cotangents[k]) for k in keys],
                                         allow_unused=True)
        as_numpy = [np.zeros(tuple(t.shape), np.float32) if g is None else self.N(g) for t, g in zip(targets, found)]
        grads: dict[str, Array] = dict(zip(direct, as_numpy[: len(direct)]))
        by_torch_name = dict(zip(named, as_numpy[len(direct):]))
        for name in case.wrt:
            if name not in grads:
                grads[name] = np.ascontiguousarray((back or {})[name](by_torch_name))
        out["grads"] = grads
        return out

    def _module_op(self, api: str, build: Callable[[Case], tuple[Any, dict[str, Any]]],
                   forward: Callable[[Any, Any, Case], dict[str, Any]], kind: str = "native", variant: str | None = None,
                   note: str = "") -> OpImpl:
        """An op that is one module applied to the case's grad_wrt input; build returns the module and, for every
        catalog parameter, how to map its torch gradient back (APIs are resolved by the caller)."""

        def run(case: Case) -> dict[str, Array]:
            module, back = build(case)
            x = self.T(case.arrays[case.grad_wrt or "x"], grad=True)
            return self._result(case, forward(module, x, case), {case.grad_wrt or "x": x}, module, back)

        return OpImpl(kind, api, run, variant, note)

    def _api(self, dotted: str) -> Any:
        """Resolve 'torch.nn.Conv3d' at run time; a missing name raises Unsupported naming it."""
        return resolve(self.torch, dotted)

    # ------------------------------------------------------------------------------------------ layers
    def op_dense(self) -> OpImpl:
        Linear = self._api("torch.nn.Linear")
        return self._module_op(
            "torch.nn.Linear",
            lambda c: (self._load(Linear(*c.arrays["w"].shape), weight=c.arrays["w"].T, bias=c.arrays["b"]),
                       {"w": _transposed("weight"), "b": _same("bias")}),
            lambda m, x, c: {"y": m(x)},
        )

    def _conv(self, api: str) -> OpImpl:
        Conv = self._api(api)

        def build(c: Case) -> tuple[Any, dict[str, Any]]:
            w = c.arrays["w"]
            m = Conv(w.shape[1], w.shape[0], w.shape[2:], stride=c.config["stride"], padding=c.config["padding"],
                     dilation=c.config["dilation"])
            return self._load(m, weight=w, bias=c.arrays["b"]), {"w": _same("weight"), "b": _same("bias")}

        return self._module_op(api, build, lambda m, x, c: {"y": m(x)})

    def op_conv1d(self) -> OpImpl:
        return self._conv("torch.nn.Conv1d")

    def op_conv2d(self) -> OpImpl:
        return self._conv("torch.nn.Conv2d")

    def op_conv3d(self) -> OpImpl:
        return self._conv("torch.nn.Conv3d")

    def op_conv_transpose2d(self) -> OpImpl:
        ConvT = self._api("torch.nn.ConvTranspose2d")

        def build(c: Case) -> tuple[Any, dict[str, Any]]:
            w = c.arrays["w"]  # (C_in, C_out, kH, kW): torch's own layout
            m = ConvT(w.shape[0], w.shape[1], w.shape[2:], stride=c.config["stride"], padding=c.config["padding"])
            return self._load(m, weight=w, bias=c.arrays["b"]), {"w": _same("weight"), "b": _same("bias")}

        return self._module_op("torch.nn.ConvTranspose2d", build, lambda m, x, c: {"y": m(x)})

    def op_separable_conv2d(self) -> OpImpl:
        Conv = self._api("torch.nn.Conv2d")
        Sequential = self._api("torch.nn.Sequential")

        def build(c: Case) -> tuple[Any, dict[str, Any]]:
            dw, pw = c.arrays["w_depthwise"], c.arrays["w_pointwise"]
            ch = dw.shape[0]
            depth = self._load(Conv(ch, ch, dw.shape[2:], stride=c.config["stride"], padding=c.config["padding"], groups=ch,
                                    bias=False), weight=dw)
            point = self._load(Conv(ch, pw.shape[0], 1), weight=pw, bias=c.arrays["b"])
            return Sequential(depth, point), {"w_depthwise": _same("0.weight"), "w_pointwise": _same("1.weight"),
                                              "b": _same("1.bias")}

        return self._module_op("torch.nn.Conv2d(groups=C) + torch.nn.Conv2d(1x1)", build, lambda m, x, c: {"y": m(x)},
                               kind="composed", note="torch has no separable-convolution layer: depthwise (grouped) conv then 1x1 conv")

    def op_max_pool2d(self) -> OpImpl:
        Pool = self._api("torch.nn.MaxPool2d")
        return self._module_op(
            "torch.nn.MaxPool2d", lambda c: (Pool(c.config["kernel"], c.config["stride"], c.config.get("padding", 0)), {}),
            lambda m, x, c: {"y": m(x)}, note="implicit padding is -inf: padded cells never win",
        )

    def op_avg_pool2d(self) -> OpImpl:
        Pool = self._api("torch.nn.AvgPool2d")
        return self._module_op(
            "torch.nn.AvgPool2d", lambda c: (Pool(c.config["kernel"], c.config["stride"], c.config["padding"]), {}),
            lambda m, x, c: {"y": m(x)}, note="default count_include_pad=True",
        )

    def op_global_avg_pool2d(self) -> OpImpl:
        Pool = self._api("torch.nn.AdaptiveAvgPool2d")
        return self._module_op("torch.nn.AdaptiveAvgPool2d(1)", lambda c: (Pool(1), {}), lambda m, x, c: {"y": m(x).flatten(1)})

    def op_upsample_nearest2d(self) -> OpImpl:
        Up = self._api("torch.nn.Upsample")
        return self._module_op("torch.nn.Upsample(mode='nearest')", lambda c: (Up(scale_factor=c.config["scale"], mode="nearest"), {}),
                               lambda m, x, c: {"y": m(x)})

    def op_batch_norm(self) -> OpImpl:
        BN = self._api("torch.nn.BatchNorm2d")

        def build(c: Case) -> tuple[Any, dict[str, Any]]:
            a = c.arrays
            m = self._load(BN(a["gamma"].shape[0], eps=c.config["eps"]), weight=a["gamma"], bias=a["beta"],
                           running_mean=a["running_mean"], running_var=a["running_var"])
            return m, {"gamma": _same("weight"), "beta": _same("bias")}

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            m.eval()
            y_eval = m(x)
            m.train()
            return {"y_train": m(x), "y_eval": y_eval}

        return self._module_op("torch.nn.BatchNorm2d", build, forward)

    def op_layer_norm(self) -> OpImpl:
        LN = self._api("torch.nn.LayerNorm")
        return self._module_op(
            "torch.nn.LayerNorm",
            lambda c: (self._load(LN(c.arrays["gamma"].shape[0], eps=c.config["eps"]), weight=c.arrays["gamma"], bias=c.arrays["beta"]),
                       {"gamma": _same("weight"), "beta": _same("bias")}),
            lambda m, x, c: {"y": m(x)},
        )

    def op_group_norm(self) -> OpImpl:
        GN = self._api("torch.nn.GroupNorm")
        return self._module_op(
            "torch.nn.GroupNorm",
            lambda c: (self._load(GN(c.config["groups"], c.arrays["gamma"].shape[0], eps=c.config["eps"]),
                                  weight=c.arrays["gamma"], bias=c.arrays["beta"]),
                       {"gamma": _same("weight"), "beta": _same("bias")}),
            lambda m, x, c: {"y": m(x)},
        )

    def op_local_response_norm(self) -> OpImpl:
        LRN = self._api("torch.nn.LocalResponseNorm")
        return self._module_op(
            "torch.nn.LocalResponseNorm",
            lambda c: (LRN(c.config["size"], alpha=c.config["alpha"], beta=c.config["beta"], k=c.config["k"]), {}),
            lambda m, x, c: {"y": m(x)}, note="alpha divided by size, as the catalog states",
        )

    def op_dropout(self) -> OpImpl:
        Drop = self._api("torch.nn.Dropout")

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            m.eval()
            y_eval = m(x)
            m.train()
            return {"y_train": m(x), "y_eval": y_eval}

        return self._module_op("torch.nn.Dropout", lambda c: (Drop(c.config["p"]), {}), forward)

    def op_embedding(self) -> OpImpl:
        Emb = self._api("torch.nn.Embedding")

        def run(c: Case) -> dict[str, Array]:
            w = c.arrays["weight"]
            m = self._load(Emb(*w.shape), weight=w)
            return self._result(c, {"y": m(self.T(c.arrays["indices"]))}, {}, m, {"weight": _same("weight")})

        return OpImpl("native", "torch.nn.Embedding", run)

    def op_simple_rnn(self) -> OpImpl:
        RNN = self._api("torch.nn.RNN")

        def build(c: Case) -> tuple[Any, dict[str, Any]]:
            a = c.arrays
            m = RNN(a["wx"].shape[0], c.config["hidden"], batch_first=True, nonlinearity="tanh")
            m = self._load(m, weight_ih_l0=a["wx"].T, weight_hh_l0=a["wh"].T, bias_ih_l0=a["b"], bias_hh_l0=np.zeros_like(a["b"]))
            return self._pin(m, "bias_hh_l0"), {"wx": _transposed("weight_ih_l0"), "wh": _transposed("weight_hh_l0"),
                                                "b": _same("bias_ih_l0")}

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            y, h = m(x)
            return {"y": y, "h": h[0]}

        return self._module_op("torch.nn.RNN", build, forward, note="torch keeps two biases; the second is pinned to 0")

    def op_lstm(self) -> OpImpl:
        LSTM = self._api("torch.nn.LSTM")

        def build(c: Case) -> tuple[Any, dict[str, Any]]:
            a, order = c.arrays, c.config["gate_order"]
            m = LSTM(a["wx"].shape[0], c.config["hidden"], batch_first=True)
            m = self._load(m, weight_ih_l0=reorder_gates(a["wx"], order, TORCH_LSTM).T,
                           weight_hh_l0=reorder_gates(a["wh"], order, TORCH_LSTM).T,
                           bias_ih_l0=reorder_gates(a["b"], order, TORCH_LSTM), bias_hh_l0=np.zeros_like(a["b"]))
            return self._pin(m, "bias_hh_l0"), {"wx": _gates_back("weight_ih_l0", TORCH_LSTM, order, transposed=True),
                                                "wh": _gates_back("weight_hh_l0", TORCH_LSTM, order, transposed=True),
                                                "b": _gates_back("bias_ih_l0", TORCH_LSTM, order)}

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            y, (h, cell) = m(x)
            return {"y": y, "h": h[0], "c": cell[0]}

        return self._module_op("torch.nn.LSTM", build, forward, note=f"gate order {TORCH_LSTM}; second bias pinned to 0")

    def op_gru(self) -> OpImpl:
        GRU = self._api("torch.nn.GRU")

        def build(c: Case) -> tuple[Any, dict[str, Any]]:
            a, order = c.arrays, c.config["gate_order"]
            m = GRU(a["wx"].shape[0], c.config["hidden"], batch_first=True)
            m = self._load(m, weight_ih_l0=reorder_gates(a["wx"], order, TORCH_GRU).T,
                           weight_hh_l0=reorder_gates(a["wh"], order, TORCH_GRU).T,
                           bias_ih_l0=reorder_gates(a["bx"], order, TORCH_GRU), bias_hh_l0=reorder_gates(a["bh"], order, TORCH_GRU))
            return m, {"wx": _gates_back("weight_ih_l0", TORCH_GRU, order, transposed=True),
                       "wh": _gates_back("weight_hh_l0", TORCH_GRU, order, transposed=True),
                       "bx": _gates_back("bias_ih_l0", TORCH_GRU, order), "bh": _gates_back("bias_hh_l0", TORCH_GRU, order)}

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            y, h = m(x)
            return {"y": y, "h": h[0]}

        return self._module_op("torch.nn.GRU", build, forward, note=f"gate order {TORCH_GRU}")

    def op_bidirectional_rnn(self) -> OpImpl:
        RNN = self._api("torch.nn.RNN")

        def build(c: Case) -> tuple[Any, dict[str, Any]]:
            a = c.arrays
            m = RNN(a["x"].shape[2], c.config["hidden"], batch_first=True, bidirectional=True)
            zeros = np.zeros_like(a["b_fw"])
            m = self._load(m, weight_ih_l0=a["wx_fw"].T, weight_hh_l0=a["wh_fw"].T, bias_ih_l0=a["b_fw"], bias_hh_l0=zeros,
                           weight_ih_l0_reverse=a["wx_bw"].T, weight_hh_l0_reverse=a["wh_bw"].T,
                           bias_ih_l0_reverse=a["b_bw"], bias_hh_l0_reverse=zeros)
            back = {f"{kind}_{d}": (_transposed(f"{torch_name}{suffix}") if kind != "b" else _same(f"{torch_name}{suffix}"))
                    for d, suffix in (("fw", ""), ("bw", "_reverse"))
                    for kind, torch_name in (("wx", "weight_ih_l0"), ("wh", "weight_hh_l0"), ("b", "bias_ih_l0"))}
            return self._pin(m, "bias_hh_l0", "bias_hh_l0_reverse"), back

        return self._module_op("torch.nn.RNN(bidirectional=True)", build, lambda m, x, c: {"y": m(x)[0]},
                               note="a flag on the recurrent layers rather than a wrapper; output [forward, backward]; "
                                    "second biases pinned to 0")

    def op_multi_head_attention(self) -> OpImpl:
        MHA = self._api("torch.nn.MultiheadAttention")

        def run(c: Case) -> dict[str, Array]:
            a = c.arrays
            e = c.config["embed_dim"]
            m = MHA(e, c.config["heads"], batch_first=True)
            # torch fuses the three input projections into in_proj_weight (3E, E) = [Wq^T; Wk^T; Wv^T] and in_proj_bias
            self._load(m, in_proj_weight=np.concatenate([a["wq"].T, a["wk"].T, a["wv"].T]),
                       in_proj_bias=np.concatenate([a["bq"], a["bk"], a["bv"]]),
                       **{"out_proj.weight": a["wo"].T, "out_proj.bias": a["bo"]})
            back: dict[str, Any] = {"wo": _transposed("out_proj.weight"), "bo": _same("out_proj.bias")}
            for i, name in enumerate("qkv"):
                rows = slice(i * e, (i + 1) * e)
                back[f"w{name}"] = lambda g, rows=rows: g["in_proj_weight"][rows].T
                back[f"b{name}"] = lambda g, rows=rows: g["in_proj_bias"][rows]
            q = self.T(a["q"], grad=True)
            y, _ = m(q, self.T(a["k"]), self.T(a["v"]), need_weights=False)
            return self._result(c, {"y": y}, {"q": q}, m, back)

        return OpImpl("native", "torch.nn.MultiheadAttention", run, note="fused in_proj_weight split back into wq, wk, wv")

    def op_prelu(self) -> OpImpl:
        PReLU = self._api("torch.nn.PReLU")
        return self._module_op(
            "torch.nn.PReLU",
            lambda c: (self._load(PReLU(c.arrays["alpha"].shape[0]), weight=c.arrays["alpha"]), {"alpha": _same("weight")}),
            lambda m, x, c: {"y": m(x)},
        )

    def op_hierarchical_softmax(self) -> OpImpl:
        Adaptive = self._api("torch.nn.AdaptiveLogSoftmaxWithLoss")

        def build(c: Case) -> tuple[Any, dict[str, Any]]:
            a = c.arrays
            m = Adaptive(a["x"].shape[1], c.config["vocab"], cutoffs=c.config["cutoffs"], div_value=c.config["div_value"], head_bias=True)
            m = self._load(m, **{"head.weight": a["w_head"].T, "head.bias": a["b_head"],
                                 "tail.0.0.weight": a["w_proj"].T, "tail.0.1.weight": a["w_tail"].T})
            return m, {"w_head": _transposed("head.weight"), "b_head": _same("head.bias"),
                       "w_proj": _transposed("tail.0.0.weight"), "w_tail": _transposed("tail.0.1.weight")}

        return self._module_op("torch.nn.AdaptiveLogSoftmaxWithLoss", build,
                               lambda m, x, c: {"y": m(x, self.T(c.arrays["targets"])).output},
                               kind="variant", variant="adaptive_softmax",
                               note="torch has no hierarchical softmax; adaptive softmax is the close variant it ships")

    def op_ctc_loss(self) -> OpImpl:
        ctc = self._api("torch.nn.functional.ctc_loss")

        def forward(m: Any, logits: Any, c: Case) -> dict[str, Any]:
            a = c.arrays
            y = ctc(self.F.log_softmax(logits, dim=-1), self.T(a["targets"]), self.T(a["input_lengths"]),
                    self.T(a["target_lengths"]), blank=c.config["blank"], reduction="none")
            return {"y": y}

        return self._module_op("torch.nn.functional.ctc_loss", lambda c: (None, {}), forward,
                               note="log-softmax applied first, as the API expects")

    # ------------------------------------------------------------------------------------------ optimizers
    def _optimizer(self, api: str, make: Callable[[Any, dict[str, Any]], Any], note: str = "") -> OpImpl:
        Opt = self._api(api)

        def run(c: Case) -> dict[str, Array]:
            w = self.nn.Parameter(self.T(c.arrays["w"].copy()))
            opt = make(Opt, {"params": [w], **c.config})
            history = []
            for g in c.arrays["grads"]:
                opt.zero_grad()
                (w * self.T(g)).sum().backward()  # d/dw of sum(w * g) is g: the catalog's gradient, via autograd
                opt.step()
                history.append(self.N(w).copy())
            return {"w": np.stack(history)}

        return OpImpl("native", api, run, note=note)

    def op_sgd(self) -> OpImpl:
        return self._optimizer("torch.optim.SGD", lambda opt_cls, h: opt_cls(h["params"], lr=h["lr"]))

    def op_momentum(self) -> OpImpl:
        return self._optimizer("torch.optim.SGD", lambda opt_cls, h: opt_cls(h["params"], lr=h["lr"], momentum=h["mu"]))

    def op_nesterov(self) -> OpImpl:
        return self._optimizer("torch.optim.SGD", lambda opt_cls, h: opt_cls(h["params"], lr=h["lr"], momentum=h["mu"], nesterov=True))

    def op_adagrad(self) -> OpImpl:
        def make(opt_cls: Any, h: dict[str, Any]) -> Any:
            require_parameter(opt_cls, "initial_accumulator_value", "torch.optim.Adagrad")
            return opt_cls(h["params"], lr=h["lr"], eps=h["eps"], initial_accumulator_value=h["initial_accumulator"])

        return self._optimizer("torch.optim.Adagrad", make)

    def op_adadelta(self) -> OpImpl:
        def make(opt_cls: Any, h: dict[str, Any]) -> Any:
            require_parameter(opt_cls, "lr", "torch.optim.Adadelta")
            return opt_cls(h["params"], lr=h["lr"], rho=h["rho"], eps=h["eps"])

        return self._optimizer("torch.optim.Adadelta", make)

    def op_rmsprop(self) -> OpImpl:
        return self._optimizer("torch.optim.RMSprop", lambda opt_cls, h: opt_cls(h["params"], lr=h["lr"], alpha=h["rho"], eps=h["eps"]))

    def op_adam(self) -> OpImpl:
        return self._optimizer("torch.optim.Adam", lambda opt_cls, h: opt_cls(h["params"], lr=h["lr"], betas=(h["b1"], h["b2"]), eps=h["eps"]))

    def op_adamw(self) -> OpImpl:
        return self._optimizer("torch.optim.AdamW", lambda opt_cls, h: opt_cls(h["params"], lr=h["lr"], betas=(h["b1"], h["b2"]), eps=h["eps"],
                                                                     weight_decay=h["weight_decay"]))

    # ------------------------------------------------------------------------------------------ graphs
    def graph_namespace(self) -> Any:
        t = self.torch
        return types.SimpleNamespace(sum=t.sum, tanh=t.tanh, matmul=t.matmul, item=lambda v: v.item())

    def value_and_grad(self, fn: Callable[..., Any], args: Sequence[Array]) -> tuple[float, Array]:
        tensors = [self.T(a, grad=(i == 0)) for i, a in enumerate(args)]
        value = fn(self.graph_namespace(), *tensors)
        (g,) = self.torch.autograd.grad(value, [tensors[0]])
        return float(value), self.N(g)

    def compile_paths(self) -> list[str]:
        paths = []
        if hasattr(self.torch, "compile"):
            paths.append("torch.compile")
        if hasattr(getattr(self.torch, "jit", None), "trace"):
            paths.append("torch.jit.trace")
        return paths

    def compile_path_lookups(self) -> list[str]:
        return ["torch.compile", "torch.jit.trace"]

    def _graph_count(self) -> int | None:
        try:
            from torch._dynamo.utils import counters

            return int(counters["stats"]["unique_graphs"])
        except Exception:
            return None

    def compile(self, fn: Callable[..., Any], path: str) -> CompiledFunction:
        F = self.graph_namespace()
        if path == "torch.compile":
            compiled = self.torch.compile(lambda *ts: fn(F, *ts))

            def call(args: Sequence[Array]) -> tuple[float, Array]:
                ts = [self.T(a, grad=(i == 0)) for i, a in enumerate(args)]
                value = compiled(*ts)
                (g,) = self.torch.autograd.grad(value, [ts[0]])
                return float(value), self.N(g)

            return CompiledFunction(path, call, self._graph_count)
        if path == "torch.jit.trace":
            traced: dict[str, Any] = {}

            def call(args: Sequence[Array]) -> tuple[float, Array]:
                ts = [self.T(a, grad=(i == 0)) for i, a in enumerate(args)]
                if "fn" not in traced:  # traced once, on the first input, as TorchScript tracing works
                    traced["fn"] = self.torch.jit.trace(lambda *xs: fn(F, *xs), tuple(ts), check_trace=False)
                value = traced["fn"](*ts)
                (g,) = self.torch.autograd.grad(value, [ts[0]])
                return float(value), self.N(g)

            return CompiledFunction(path, call, lambda: 1 if traced else 0)
        return super().compile(fn, path)

    # ------------------------------------------------------------------------------------------ throughput
    def _sync(self) -> None:
        if self.dev.type == "cuda":
            self.torch.cuda.synchronize(self.dev)

    def _peak_memory(self) -> Callable[[], int | None]:
        """Resets torch's peak counter of the device (after dropping what earlier workloads left unreferenced) and
        returns the reader of that peak: torch.cuda.max_memory_allocated; None on the CPU, where torch keeps none."""
        t = self.torch
        if self.dev.type != "cuda":
            return lambda: None
        gc.collect()
        t.cuda.empty_cache()
        t.cuda.reset_peak_memory_stats(self.dev)
        return lambda: int(t.cuda.max_memory_allocated(self.dev))

    def _layer_types(self) -> Any:
        """The small nn.Module classes the catalog's node kinds need around torch's own layers (made once, here,
        because torch is imported only inside the framework's environment)."""
        if getattr(self, "_layers_cache", None) is not None:
            return self._layers_cache
        t, nn = self.torch, self.nn

        class Add(nn.Module):
            """A residual connection: the elementwise sum of two nodes' outputs."""

            def forward(self, a: Any, b: Any) -> Any:
                return a + b

        class LastHidden(nn.Module):
            """nn.LSTM, giving its last hidden state (h_n of the single layer)."""

            def __init__(self, rnn: Any) -> None:
                super().__init__()
                self.rnn = rnn

            def forward(self, x: Any) -> Any:
                _, (h, _) = self.rnn(x)
                return h[-1]

        class AllSteps(nn.Module):
            """nn.GRU, giving the hidden state of every step."""

            def __init__(self, rnn: Any) -> None:
                super().__init__()
                self.rnn = rnn

            def forward(self, x: Any) -> Any:
                y, _ = self.rnn(x)
                return y

        class Positional(nn.Module):
            """A learned (T, D) position table added to (N, T, D) (torch has no layer for it)."""

            def __init__(self, length: int, dim: int) -> None:
                super().__init__()
                self.table = nn.Parameter(t.zeros(length, dim))

            def forward(self, x: Any) -> Any:
                return x + self.table

        class SelfAttention(nn.Module):
            """nn.MultiheadAttention of a sequence on itself (query = key = value), batch first, no mask."""

            def __init__(self, dim: int, heads: int) -> None:
                super().__init__()
                self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

            def forward(self, x: Any) -> Any:
                return self.attn(x, x, x, need_weights=False)[0]

        class MeanTokens(nn.Module):
            def forward(self, x: Any) -> Any:
                return x.mean(dim=1)

        class CatalogModel(nn.Module):
            """A catalog model: one module per node in an nn.ModuleDict, run in the catalog's node order, each fed
            the outputs of the nodes it names (a value is dropped after its last reader)."""

            def __init__(self, layers: dict[str, Any], wiring: list[tuple[str, tuple[str, ...], tuple[str, ...]]],
                         output: str) -> None:
                super().__init__()
                self.layers = nn.ModuleDict(layers)
                self.wiring = wiring  # (node, its inputs, the values nobody reads after it)
                self.output = output

            def forward(self, x: Any) -> Any:
                values = {"input": x}
                for name, inputs, done in self.wiring:
                    values[name] = self.layers[name](*[values[i] for i in inputs])
                    for finished in done:
                        del values[finished]
                return values[self.output]

        self._layers_cache = types.SimpleNamespace(
            Add=Add, LastHidden=LastHidden, AllSteps=AllSteps, Positional=Positional, SelfAttention=SelfAttention,
            MeanTokens=MeanTokens, CatalogModel=CatalogModel)
        return self._layers_cache

    def _node_layer(self, node: Any, shapes: list[tuple[int, ...]], params: dict[str, Array], prefix: str
                    ) -> tuple[Any, dict[str, Array], dict[str, GradBack]]:
        """One catalog node as a torch module: the module, its parameters in torch's layout (by torch name, under
        `prefix`), and for every catalog parameter how to read it back (from arrays by torch name) in the catalog's
        layout. `params` holds the node's catalog parameters by their short name ("w", "gamma"...)."""
        nn, L = self.nn, self._layer_types()
        kind, a, x = node.kind, node.attrs, shapes[0] if shapes else ()
        p = prefix
        if kind == "dense":
            m = nn.Linear(x[-1], a["out"], bias="b" in params)
            load = {f"{p}weight": params["w"].T, **({f"{p}bias": params["b"]} if "b" in params else {})}
            back = {"w": _transposed(f"{p}weight"), **({"b": _same(f"{p}bias")} if "b" in params else {})}
            return m, load, back
        if kind == "conv2d":
            m = nn.Conv2d(x[1], a["out"], a["kernel"], stride=a["stride"], padding=a["padding"], bias="b" in params)
            load = {f"{p}weight": params["w"], **({f"{p}bias": params["b"]} if "b" in params else {})}
            return m, load, {"w": _same(f"{p}weight"), **({"b": _same(f"{p}bias")} if "b" in params else {})}
        if kind in ("batch_norm", "layer_norm"):
            # BatchNorm2d in training mode normalises by the batch's statistics over N, H, W (biased variance)
            m = nn.BatchNorm2d(x[1], eps=NORM_EPS) if kind == "batch_norm" else nn.LayerNorm(x[-1], eps=NORM_EPS)
            return m, {f"{p}weight": params["gamma"], f"{p}bias": params["beta"]}, \
                {"gamma": _same(f"{p}weight"), "beta": _same(f"{p}bias")}
        if kind == "relu":
            return nn.ReLU(), {}, {}
        if kind == "gelu":
            return nn.GELU(approximate="none"), {}, {}  # the exact erf form
        if kind == "max_pool":
            return nn.MaxPool2d(a["kernel"], a["stride"], a["padding"]), {}, {}  # implicit -inf padding
        if kind == "global_avg_pool":
            return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), {}, {}
        if kind == "flatten":
            return nn.Flatten(), {}, {}  # over the logical NCHW shape, whatever the memory format
        if kind == "add":
            return L.Add(), {}, {}
        if kind == "lstm_last":
            m = L.LastHidden(nn.LSTM(x[-1], a["hidden"], batch_first=True, bias=False))
            load = {f"{p}rnn.weight_ih_l0": reorder_gates(params["wx"], CANONICAL_LSTM, TORCH_LSTM).T,
                    f"{p}rnn.weight_hh_l0": reorder_gates(params["wh"], CANONICAL_LSTM, TORCH_LSTM).T}
            back = {"wx": _gates_back(f"{p}rnn.weight_ih_l0", TORCH_LSTM, CANONICAL_LSTM, transposed=True),
                    "wh": _gates_back(f"{p}rnn.weight_hh_l0", TORCH_LSTM, CANONICAL_LSTM, transposed=True)}
            return m, load, back
        if kind == "gru":
            m = L.AllSteps(nn.GRU(x[-1], a["hidden"], batch_first=True))  # reset gate after the recurrent matmul
            load = {f"{p}rnn.weight_ih_l0": reorder_gates(params["wx"], CANONICAL_GRU, TORCH_GRU).T,
                    f"{p}rnn.weight_hh_l0": reorder_gates(params["wh"], CANONICAL_GRU, TORCH_GRU).T,
                    f"{p}rnn.bias_ih_l0": reorder_gates(params["bx"], CANONICAL_GRU, TORCH_GRU),
                    f"{p}rnn.bias_hh_l0": reorder_gates(params["bh"], CANONICAL_GRU, TORCH_GRU)}
            back = {"wx": _gates_back(f"{p}rnn.weight_ih_l0", TORCH_GRU, CANONICAL_GRU, transposed=True),
                    "wh": _gates_back(f"{p}rnn.weight_hh_l0", TORCH_GRU, CANONICAL_GRU, transposed=True),
                    "bx": _gates_back(f"{p}rnn.bias_ih_l0", TORCH_GRU, CANONICAL_GRU),
                    "bh": _gates_back(f"{p}rnn.bias_hh_l0", TORCH_GRU, CANONICAL_GRU)}
            return m, load, back
        if kind == "embedding":
            return nn.Embedding(a["vocab"], a["dim"]), {f"{p}weight": params["table"]}, {"table": _same(f"{p}weight")}
        if kind == "positional":
            return L.Positional(x[1], x[2]), {f"{p}table": params["table"]}, {"table": _same(f"{p}table")}
        if kind == "self_attention":
            d = x[-1]
            m = L.SelfAttention(d, a["heads"])
            # torch fuses the three input projections: in_proj_weight (3D, D) = [Wq^T; Wk^T; Wv^T]
            load = {f"{p}attn.in_proj_weight": np.concatenate([params[f"w{c}"].T for c in "qkv"]),
                    f"{p}attn.in_proj_bias": np.concatenate([params[f"b{c}"] for c in "qkv"]),
                    f"{p}attn.out_proj.weight": params["wo"].T, f"{p}attn.out_proj.bias": params["bo"]}
            back: dict[str, GradBack] = {"wo": _transposed(f"{p}attn.out_proj.weight"), "bo": _same(f"{p}attn.out_proj.bias")}
            for i, c in enumerate("qkv"):
                rows = slice(i * d, (i + 1) * d)
                back[f"w{c}"] = lambda g, rows=rows: g[f"{p}attn.in_proj_weight"][rows].T
                back[f"b{c}"] = lambda g, rows=rows: g[f"{p}attn.in_proj_bias"][rows]
            return m, load, back
        if kind == "mean_tokens":
            return L.MeanTokens(), {}, {}
        raise NotMapped(f"the torch adapter maps no catalog node kind {kind!r}")

    def _catalog_model(self, model: Any, arrays: dict[str, Array]) -> tuple[Any, dict[str, GradBack]]:
        """The catalog model built node by node from torch layers, loaded with the catalog's initial parameters, and
        for every catalog parameter ("<node>.<param>") how to read it back from the module's parameters."""
        shapes, param_shapes = model.shapes(), model.param_shapes()
        layers: dict[str, Any] = {}
        load: dict[str, Array] = {}
        back: dict[str, GradBack] = {}
        for node in model.nodes:
            own = {full.split(".", 1)[1]: np.asarray(arrays[full], np.float32) for full in param_shapes
                   if full.split(".", 1)[0] == node.name}
            layer, node_load, node_back = self._node_layer(node, [shapes[i] for i in node.inputs], own,
                                                           f"layers.{node.name}.")
            layers[node.name] = layer
            load.update(node_load)
            back.update({f"{node.name}.{pname}": read for pname, read in node_back.items()})
        missing = set(param_shapes) - set(back)
        if missing:
            raise NotMapped(f"the torch adapter reads no value back for {sorted(missing)}")
        last_use = {name: i for i, node in enumerate(model.nodes) for name in node.inputs}
        wiring = [(node.name, tuple(node.inputs),
                   tuple(sorted({v for v in node.inputs if last_use[v] == i and v != model.output})))
                  for i, node in enumerate(model.nodes)]
        net = self._layer_types().CatalogModel(layers, wiring, model.output)
        return self._load(net, **load), back

    def _graph_breaks(self) -> dict[str, int]:
        """What dynamo declined so far (graph breaks, and frames it gave up on and left to run eagerly), by the first
        line of the reason, from dynamo's own counters."""
        try:
            from torch._dynamo.utils import counters
        except Exception:
            return {}
        out: dict[str, int] = {}
        for kind in ("graph_break", "unimplemented"):  # the same reason may be counted under both: not added up
            per_kind: dict[str, int] = {}
            for reason, n in counters[kind].items():
                key = str(reason).strip().splitlines()[0][:160]
                per_kind[key] = per_kind.get(key, 0) + int(n)
            for key, n in per_kind.items():
                out[key] = max(out.get(key, 0), n)
        return out

    def _forward_capture(self, model: Any, x: Any) -> None:
        """Whether torch.compile can capture the model's forward whole, found by tracing it once with
        torch._dynamo.explain (which runs the forward without touching the parameters); a forward that runs
        partly or wholly eagerly under torch.compile leaves no compile scope that would describe the step honestly,
        so the compiled workload is unsupported, with what dynamo said as the evidence."""
        explain = self._api("torch._dynamo.explain")
        breaks_before = self._graph_breaks()
        found = explain(model)(x)
        if found.graph_count >= 1 and found.graph_break_count == 0:
            return
        reasons = [str(getattr(r, "reason", r)).strip().splitlines()[0][:200] for r in (found.break_reasons or [])]
        # a frame dynamo gives up on entirely (it falls back to eager) leaves no break reason in explain's output,
        # only in dynamo's graph-break counter
        reasons += [k for k, n in self._graph_breaks().items() if n > breaks_before.get(k, 0) and k not in reasons]
        dynamo_says = "; ".join(reasons) or "no reason given"
        raise Unsupported(
            f"torch.compile cannot capture this model's forward whole (torch._dynamo.explain: {found.graph_count} "
            f"graph(s) captured; dynamo: {dynamo_says}); its layers would run eagerly inside the compiled step, which "
            "no compile scope describes",
            looked_up=[f"torch._dynamo.explain({type(model).__name__}): graph_count={found.graph_count}, "
                       f"graph_break_count={found.graph_break_count}", *(f"dynamo graph break: {r}" for r in reasons)])

    def _fresh_compiler_state(self) -> None:
        """torch.compiler.reset(): dynamo's in-memory caches cleared, as in a fresh process, before each compiled
        workload. Every workload's step is the same Python function over another model, and dynamo stops compiling a
        function after a fixed number of recompilations (torch._dynamo.config.recompile_limit), after which it
        would silently run eagerly; the reset also makes each compile time that of a cold process (inductor's files
        on disk are kept)."""
        self._api("torch.compiler.reset")()

    def _channels_last(self, model: Any) -> bool:
        """Whether the model runs in torch.channels_last memory format: on CUDA, for a model with convolutions, as
        torch's channels-last tutorial and performance tuning guide recommend for convolutional networks there (NHWC
        in memory for the 4-D input, activations and convolution weights; the logical NCHW shapes, the flatten order
        and the values read back are unchanged)."""
        return self.dev.type == "cuda" and any(node.kind == "conv2d" for node in model.nodes)

    def workload(self, spec: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """The single-op workloads: gemm (torch.matmul) and conv2d (torch.nn.functional.conv2d, padding 1)."""
        t = self.torch
        compiled = mode == "compiled"
        run, autocast, notes = self._precision_context(precision)
        peak = self._peak_memory()
        if spec.id == "gemm":
            args: tuple[Any, ...] = (self.T(arrays["a"]), self.T(arrays["b"]))

            def op(p: Any, q: Any) -> Any:
                return t.matmul(p, q)
        elif spec.id == "conv2d":
            args = (self.T(arrays["x"]), self.T(arrays["w"]))

            def op(p: Any, q: Any) -> Any:
                return self.F.conv2d(p, q, padding=1)
        else:
            raise NotMapped(f"the torch adapter has no single-op workload {spec.id}")
        before = None
        if compiled:
            self._api("torch.compile")
            self._fresh_compiler_state()
            before = self._graph_count()
        f = t.compile(op) if compiled else op
        dev_type = self.dev.type

        def op_step() -> Any:
            with t.no_grad():
                if autocast:
                    with t.autocast(device_type=dev_type, dtype=t.bfloat16):
                        return f(*args)
                return f(*args)

        return Workload(lambda: run(op_step), self._sync, 0, "torch.compile (inductor)" if compiled else None, notes,
                        observe=lambda y: {"y": self.N(y)}, compile_scope="op" if compiled else None,
                        traces=self._traces_since(before) if compiled else (lambda: None), peak_memory=peak,
                        precision=precision)

    def model_workload(self, model: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """Any catalog model's training step: the model from torch layers per node kind, mean softmax cross-entropy
        (over the batch, or over every token), backward, torch.optim.SGD at the catalog's learning rate."""
        t = self.torch
        compiled = mode == "compiled"
        if compiled:
            self._api("torch.compile")
        run, autocast, notes = self._precision_context(precision)
        peak = self._peak_memory()
        net, back = self._catalog_model(model, arrays)
        net.train()
        x, labels = self.T(arrays["x"]), self.T(arrays["labels"]).reshape(-1)
        if self._channels_last(model):
            channels_last = t.channels_last
            net = net.to(memory_format=channels_last)
            x = x.contiguous(memory_format=channels_last) if x.dim() == 4 else x
            notes = [*notes, "input, activations and convolution weights in torch.channels_last memory format (NHWC in "
                             "memory, logical NCHW shapes), as torch's channels-last tutorial and performance tuning "
                             "guide recommend for convolutional networks on CUDA (their measured gains are with Tensor "
                             "Cores, i.e. TF32/mixed precision); kept in every precision so the precisions differ in "
                             "nothing else"]
        if self.dev.type == "cuda":
            notes = [*notes, f"peak memory: torch.cuda.max_memory_allocated({self.dev}) since the workload was built "
                             "(torch.cuda.reset_peak_memory_stats then), which includes whatever else the process still "
                             "held on the device"]
        opt = t.optim.SGD(net.parameters(), lr=LEARNING_RATE)
        count = int(sum(p.numel() for p in net.parameters() if p.requires_grad))
        dev_type = self.dev.type
        F = self.F

        def forward_loss() -> Any:
            logits = net(x)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels)

        def train_step() -> Any:
            opt.zero_grad(set_to_none=True)
            if autocast:
                with t.autocast(device_type=dev_type, dtype=t.bfloat16):
                    loss = forward_loss()
            else:
                loss = forward_loss()
            loss.backward()
            opt.step()
            return loss

        def observe(loss: Any) -> dict[str, Any]:
            params = {n: self.N(p) for n, p in net.named_parameters()}
            return {"loss": float(loss.detach().float()), **{name: read(params) for name, read in back.items()}}

        if not compiled:
            return Workload(lambda: run(train_step), self._sync, count, None, notes, observe=observe,
                            peak_memory=peak, precision=precision)

        self._fresh_compiler_state()
        self._forward_capture(net, x)
        step = t.compile(train_step)
        before, breaks_before = self._graph_count(), self._graph_breaks()
        notes = [*notes, "torch.compile of the whole training step (zero_grad, forward, cross-entropy, backward, SGD "
                         "step): dynamo captures the forward and loss (AOTAutograd compiles their backward with them) "
                         "and the SGD update; zero_grad and the loss.backward() call itself are graph breaks that run "
                         "eagerly (the backward they start is the compiled one)",
                 "torch.compiler.reset() before building: dynamo's caches start empty for each workload"]
        first = [True]

        def compiled_step() -> Any:
            loss = step()
            if first[0]:
                first[0] = False
                now = self._graph_breaks()
                new = {k: n - breaks_before.get(k, 0) for k, n in now.items() if n > breaks_before.get(k, 0)}
                after = self._graph_count()
                if before is not None and after is not None:
                    notes.append(f"the first call captured {after - before} graph(s)")
                if new:
                    notes.append("graph breaks: " + "; ".join(f"{k} (x{n})" for k, n in new.items()))
            return loss

        return Workload(lambda: run(compiled_step), self._sync, count, "torch.compile (inductor)", notes,
                        observe=observe, compile_scope="step", traces=self._traces_since(before), peak_memory=peak,
                        precision=precision)

    def _traces_since(self, before: int | None) -> Callable[[], int | None]:
        def traces() -> int | None:
            now = self._graph_count()
            return None if now is None or before is None else now - before

        return traces

    # ------------------------------------------------------------------------------------------ numerics
    def array_api(self) -> ArrayAPI:
        return ArrayAPI("torch", self.torch, self.T, self.N, self.torch.from_dlpack)

    # ------------------------------------------------------------------------------------------ scale
    def allreduce(self, rank: int, world: int, host: str, port: int, value: Array) -> AllReduceResult:
        """torch.distributed on this adapter's device: NCCL for a CUDA device (the process bound to its own GPU with
        torch.cuda.set_device and the group's device_id), gloo for CPU tensors."""
        dist = self._api("torch.distributed")
        kwargs: dict[str, Any] = {}
        if self.dev.type == "cuda":
            backend = "nccl"
            self.torch.cuda.set_device(self.dev)
            require_parameter(dist.init_process_group, "device_id", "torch.distributed.init_process_group")
            kwargs["device_id"] = self.dev
        else:
            backend = "gloo"
        dist.init_process_group(backend, init_method=f"tcp://{host}:{port}", rank=rank, world_size=world, **kwargs)
        try:
            t = self.T(value.copy())
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            self._sync()
            return AllReduceResult(f"torch.distributed.all_reduce ({backend})", True, self.N(t),
                                   [f"rank {rank} reduced a tensor on {t.device} through the {dist.get_backend()} backend"])
        finally:
            dist.destroy_process_group()

    # ------------------------------------------------------------------------------------------ onnx
    def _onnx_model(self, model: Any) -> Any:
        nn = self.nn
        if model.catalog is not None:  # the catalog model from the same torch layers as its training workloads
            return self._catalog_model(model.model(), model.weights())[0]
        w = model.weights()
        if model.id == "mlp":
            m = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10))
            return self._load(m, **{"0.weight": w["w1"].T, "0.bias": w["b1"], "2.weight": w["w2"].T, "2.bias": w["b2"]})
        if model.id == "cnn":
            m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10))
            return self._load(m, **{"0.weight": w["conv_w"], "0.bias": w["conv_b"], "4.weight": w["fc_w"].T, "4.bias": w["fc_b"]})
        raise KeyError(model.id)

    def onnx_export(self, model: Any, path: str, opset: int | None) -> ExportResult:
        t = self.torch
        export = self._api("torch.onnx.export")
        m = self._onnx_model(model).eval()
        x = self.T(model.sample_input())
        with t.no_grad():
            expected = self.N(m(x))
        kwargs: dict[str, Any] = {"dynamo": True, "external_data": False}
        if opset is not None:
            kwargs["opset_version"] = opset
        export(m, (x,), path, input_names=["x"], output_names=["y"], **kwargs)
        return ExportResult("torch.onnx.export (dynamo=True, its default)", t.__version__, opset or 0, expected)

    def _onnx2torch(self) -> tuple[Any, list[str]]:
        try:
            import onnx2torch

            return onnx2torch, []
        except (ImportError, RuntimeError) as exc:
            if "torchvision" not in repr(exc) and "nms" not in str(exc):
                raise
            # onnx2torch imports torchvision for its NonMaxSuppression and RoiAlign converters only. PyPI's
            # torchvision is built against the CUDA torch and cannot load beside a CPU torch build, so those two
            # converters are replaced by stubs that fail if used; the reference models use neither.
            stub, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")

            def unavailable(*_: Any, **__: Any) -> Any:
                raise RuntimeError("torchvision is unusable beside this torch build")

            ops.nms = ops.roi_align = ops.box_convert = unavailable  # type: ignore[attr-defined]
            stub.ops = ops  # type: ignore[attr-defined]
            sys.modules["torchvision"], sys.modules["torchvision.ops"] = stub, ops
            for name in [n for n in sys.modules if n.startswith("onnx2torch")]:
                del sys.modules[name]
            import onnx2torch

            return onnx2torch, [f"torchvision unusable here ({str(exc)[:80]}); onnx2torch's NMS/RoiAlign converters stubbed"]

    def onnx_import(self, path: str) -> ImportResult:
        onnx2torch, notes = self._onnx2torch()
        import onnx

        module = onnx2torch.convert(onnx.load(path)).to(self.dev).eval()

        def run(x: Array) -> Array:
            with self.torch.no_grad():
                return self.N(module(self.T(x)))

        def value(t: Any) -> Any:  # an output as NumPy, in its own dtype (bfloat16, which NumPy lacks, as float32)
            if isinstance(t, (list, tuple)):
                return [value(item) for item in t]
            if t is None or not isinstance(t, self.torch.Tensor):
                return t
            t = t.detach().cpu()
            return np.asarray((t.float() if t.dtype == self.torch.bfloat16 else t).numpy())

        def run_many(inputs: list[Any]) -> list[Any]:
            def tensor(v: Any) -> Any:
                return None if v is None else [tensor(i) for i in v] if isinstance(v, list) else self.T(v)

            with self.torch.no_grad():
                out = module(*[tensor(v) for v in inputs])
            return [value(o) for o in out] if isinstance(out, (list, tuple)) else [value(out)]

        from onnx2torch.node_converters import registry as converters

        versions = [d.version for d in converters._CONVERTER_REGISTRY if d.domain in ("", "ai.onnx")]
        top = max(versions) if versions else None
        why = (f"the highest operator version among the {len(versions)} default-domain converters registered in "
               f"onnx2torch.node_converters.registry._CONVERTER_REGISTRY")
        return ImportResult("onnx2torch", distribution_versions("onnx2torch")["onnx2torch"], run, notes,
                            run_many=run_many, max_opset=top, max_opset_evidence=why)
