"""Apache MXNet adapter (1.9.1, the last release): Gluon layers and losses (mxnet.gluon.nn / rnn / loss), mxnet.nd
operators where Gluon has no block, mxnet.optimizer for the update rules; eager NDArrays under mx.autograd, and
HybridBlock.hybridize() as the symbolic compile path; the built-in mx.onnx exporter and mx.contrib.onnx importer.

MXNet's engine is asynchronous: every value is read back with asnumpy() (which waits for it), and the throughput
workloads synchronise with mx.nd.waitall().

Training workloads are catalog models (harness.catalog.models) built node by node from Gluon layers (_node), wired by
the nodes' input names inside one HybridBlock. Strict float32 is set through environment variables before mxnet is
imported (STRICT_FP32): MXNet 1.9.1 has no runtime precision switches. "cuda:N" is mx.gpu(N) everywhere.
"""

from __future__ import annotations

import gc
import math
import os
import shutil
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
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
    require,
    require_parameter,
    resolve,
)
from harness.catalog.models import NORM_EPS
from harness.catalog.ops import Case
from harness.catalog.workloads import LEARNING_RATE

# Quiet MXNet's own chatter (subgraph passes on hybridize, storage fallbacks) before it is imported.
os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")
os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")

Array = np.ndarray
CANONICAL_LSTM = "ifgo"  # the catalog's gate order
CANONICAL_GRU = "rzn"
# The fused RNN operator behind gluon.rnn documents its packed gate blocks as i, f, c (the catalog's g), o for the
# LSTM and r, z, n for the GRU, cuDNN's layout, with the GRU reset gate applied after the recurrent matmul.
MXNET_LSTM = "ifgo"
MXNET_GRU = "rzn"
HYBRIDIZE = "gluon.HybridBlock.hybridize"
STATIC_HYBRIDIZE = "gluon.HybridBlock.hybridize(static_alloc=True, static_shape=True)"
# A ps-lite helper (scheduler or server): importing mxnet with DMLC_ROLE set to either runs that node's loop and exits
# the interpreter when the job finalizes; the watchdog thread ends it if the rank that started it dies first.
PS_HELPER = ("import os, threading, time\n"
             "parent = os.getppid()\n"
             "def watch():\n"
             "    while os.getppid() == parent: time.sleep(0.5)\n"
             "    os._exit(1)\n"
             "threading.Thread(target=watch, daemon=True).start()\n"
             "import mxnet\n")

#: strict float32, set in the environment before mxnet is imported (every switch is an environment variable, read by
#: the library that owns it when it first needs it, never again in the process):
STRICT_FP32 = {
    # MXNet: no tensor-core algorithms in its CUDA operators (cached on first use; its documentation: "can only be
    # set once in a session")
    "MXNET_CUDA_ALLOW_TENSOR_CORE": "0",
    # MXNet: no implicit float32 -> float16 casts to reach tensor cores (convolution, RNN, batched GEMM)
    "MXNET_CUDA_TENSOR_OP_MATH_ALLOW_CONVERSION": "0",
    # cuBLAS and cuDNN: never TF32. MXNet 1.9.1 has no TF32 switch of its own: built with CUDA 11 it requests
    # CUBLAS_TF32_TENSOR_OP_MATH for its float32 GEMMs (FullyConnected, batch_dot) and leaves cuDNN convolutions and
    # RNNs on CUDNN_DEFAULT_MATH, which allow TF32 on Ampere and newer; NVIDIA's process-wide override turns it off
    "NVIDIA_TF32_OVERRIDE": "0",
    # oneDNN (MXNet's CPU kernels): float32 primitives compute in float32, no implicit bf16/f16 math (its default,
    # named explicitly)
    "DNNL_DEFAULT_FPMATH_MODE": "STRICT",
}


#: the CUDA libraries libmxnet.so (mxnet-cu117) links by name, as NVIDIA's nvidia-*-cu11 wheels install them
CUDA_LIBRARIES = ("libcudart.so.11.0", "libnvrtc.so.11.2", "libnvToolsExt.so.1", "libcublasLt.so.11", "libcublas.so.11",
                  "libcufft.so.10", "libcurand.so.10", "libcusparse.so.11", "libcusolver.so.11", "libcudnn.so.8",
                  "libnccl.so.2")


def nvidia_library_dirs() -> list[str]:
    """site-packages/nvidia/*/lib folders (NVIDIA's CUDA runtime wheels), where requirements-cuda.txt puts them."""
    import glob
    import sysconfig

    return sorted(glob.glob(os.path.join(sysconfig.get_paths()["purelib"], "nvidia", "*", "lib")))


def preload_cuda_libraries() -> list[str]:
    """Load the CUDA libraries libmxnet.so links (CUDA_LIBRARIES) from the nvidia-*-cu11 wheels, globally, before
    mxnet is imported: the dynamic loader then finds each by its name already in the process (libmxnet's RPATH names
    only its own folder, and LD_LIBRARY_PATH is read at process start). A library another loads first (cuBLAS needs
    cuBLASLt) is retried until nothing more loads. Returns the paths loaded (none in the CPU environment)."""
    import ctypes

    found = [os.path.join(d, name) for name in CUDA_LIBRARIES for d in nvidia_library_dirs()
             if os.path.exists(os.path.join(d, name))]
    loaded: list[str] = []
    while found:
        left = []
        for path in found:
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                loaded.append(path)
            except OSError:
                left.append(path)
        if len(left) == len(found):
            break  # what still fails is left to the loader's own error when mxnet is imported
        found = left
    return loaded


def parse_device(device: str) -> tuple[str, int]:
    """The MXNet context for a harness device string: "cpu" -> ("cpu", 0); "cuda" or "cuda:N" -> ("gpu", N)."""
    if device == "cpu":
        return "cpu", 0
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"unknown device {device!r}: expected 'cpu', 'cuda' or 'cuda:<index>'")
    return "gpu", int(index or 0)


def _decode_version(library: str, value: int) -> str:
    """A CUDA library's integer version as major.minor[.patch]: cudaRuntimeGetVersion (and cudaDriverGetVersion)
    11070 -> 11.7; cudnnGetVersion 8500 -> 8.5.0 (cuDNN 9 counts major * 10000); ncclGetVersion 21403 -> 2.14.3
    (before 2.9, major * 1000)."""
    if library in ("cudart", "driver"):
        return f"{value // 1000}.{value % 1000 // 10}"
    if library == "cudnn":
        major, rest = (value // 10000, value % 10000) if value >= 90000 else (value // 1000, value % 1000)
        return f"{major}.{rest // 100}.{rest % 100}"
    major, rest = (value // 10000, value % 10000) if value >= 20900 else (value // 1000, value % 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


class MxnetAdapter(Adapter):
    name = "mxnet"
    distribution = "mxnet"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self.strict_fp32_before_import = "mxnet" not in sys.modules
        os.environ.update(STRICT_FP32)
        self.cuda_libraries = preload_cuda_libraries()
        import mxnet as mx

        self.mx = mx
        self.nd = mx.nd
        self.gluon = mx.gluon
        self.autograd = mx.autograd
        kind, self.index = parse_device(device)
        self.ctx = mx.gpu(self.index) if kind == "gpu" else mx.cpu()
        mx.random.seed(0)

    # ------------------------------------------------------------------------------------------ identity
    def versions(self) -> dict[str, str]:
        out = distribution_versions("mxnet", "mxnet-cu117", "numpy", "onnx", "onnxruntime", "protobuf")
        out["mxnet"] = self.mx.__version__  # the CUDA wheel is a different distribution with the same module
        return out

    def _cuda_built(self) -> bool:
        return bool(self.mx.runtime.Features().is_enabled("CUDA"))

    def device_available(self) -> tuple[bool, str]:
        if self.device == "cpu":
            return True, ""
        if not self._cuda_built():
            return False, f"mxnet {self.mx.__version__} is a CPU build (mx.runtime.Features(): CUDA off)"
        try:
            gpus = self.mx.context.num_gpus()
        except self.mx.base.MXNetError as exc:
            return False, f"mx.context.num_gpus() failed: {str(exc).strip().splitlines()[0][:200]}"
        if gpus == 0:
            return False, f"mxnet {self.mx.__version__} sees no GPU (mx.context.num_gpus() is 0)"
        if self.index >= gpus:
            return False, f"{self.device} asked for, mxnet sees {gpus} GPU(s) (mx.context.num_gpus())"
        try:  # one of MXNet's own kernels (a fill): its GPU code must exist for this device's architecture
            self.nd.ones((1,), ctx=self.ctx).asnumpy()
        except self.mx.base.MXNetError as exc:
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")[:200]
            try:
                cc = int(self.mx.util.get_cuda_compute_capability(self.ctx))
                arch = f"compute capability {cc // 10}.{cc % 10}"
            except (OSError, RuntimeError, ValueError):
                arch = "compute capability unknown"
            return False, f"mxnet {self.mx.__version__} cannot run a kernel on {self.device} ({arch}): {first}"
        return True, ""

    def gpu_count(self) -> int:
        if not self._cuda_built():
            return 0
        try:
            return int(self.mx.context.num_gpus())
        except self.mx.base.MXNetError:
            return 0

    def precision_switches(self) -> dict[str, Any]:
        """The strict-float32 switches as the C runtime MXNet runs in sees them (mx.util.getenv reads libmxnet's own
        environment, not Python's copy)."""
        return {name: self.mx.util.getenv(name) for name in STRICT_FP32}

    def device_info(self) -> dict[str, Any]:
        features = self.mx.runtime.Features()
        enabled = sorted(name for name in ("CUDA", "CUDNN", "NCCL", "CUDA_RTC", "TENSORRT", "MKLDNN", "BLAS_OPEN",
                                           "BLAS_MKL", "OPENMP", "DIST_KVSTORE") if features.is_enabled(name))
        info: dict[str, Any] = {
            "device": self.device, "context": str(self.ctx), "features": enabled,
            "precision": self.precision_switches(),
            "precision_notes": [
                "set in the environment before mxnet was imported" if self.strict_fp32_before_import else
                "set after mxnet had been imported in this process (each is read on first use, so it still applies "
                "unless a CUDA operator or oneDNN primitive had already run)",
                "MXNet 1.9.1 has no TF32 switch: NVIDIA_TF32_OVERRIDE=0 (cuBLAS, cuDNN) is what keeps its float32 "
                "GEMMs, convolutions and RNNs out of TF32 on Ampere and newer GPUs",
            ],
        }
        if self.device == "cpu":
            return info
        available, why = self.device_available()
        if not available:
            info["unavailable"] = why
            return info
        free, total = self.mx.context.gpu_memory_info(self.index)
        info.update({"index": self.index, "gpus_visible": self.gpu_count(), "memory_total_bytes": int(total),
                     "memory_free_bytes": int(free), "cuda_libraries_preloaded": self.cuda_libraries})
        try:
            cc = int(self.mx.util.get_cuda_compute_capability(self.ctx))
            info["compute_capability"] = f"{cc // 10}.{cc % 10}"
        except (OSError, RuntimeError, ValueError) as exc:
            info["compute_capability"] = f"unknown ({exc})"
        info["name"] = self._cuda_device_name()
        info.update(self._cuda_library_versions())
        return info

    def _cuda_device_name(self) -> str:
        """The device's name from the CUDA driver (the library mx.util.get_cuda_compute_capability asks; MXNet itself
        has no name query)."""
        import ctypes

        try:
            cuda = ctypes.CDLL("libcuda.so.1")
            device, name = ctypes.c_int(), ctypes.create_string_buffer(256)
            if cuda.cuInit(0) or cuda.cuDeviceGet(ctypes.byref(device), self.index) or cuda.cuDeviceGetName(name, 256, device):
                return "unknown (a CUDA driver call failed)"
            return name.value.decode(errors="replace")
        except OSError as exc:
            return f"unknown ({exc})"

    def _cuda_library_versions(self) -> dict[str, Any]:
        """The CUDA runtime, cuDNN and NCCL versions this process runs with: asked of the shared libraries libmxnet
        loaded (found in /proc/self/maps), through each library's own version call. mx.runtime.Features only says
        whether CUDA/cuDNN/NCCL were built in, not which versions."""
        import ctypes

        calls = {"cudart": ("libcudart.so", "cudaRuntimeGetVersion", True), "driver": ("libcudart.so", "cudaDriverGetVersion", True),
                 "cudnn": ("libcudnn.so", "cudnnGetVersion", False), "nccl": ("libnccl.so", "ncclGetVersion", True)}
        try:
            with open("/proc/self/maps") as fh:
                loaded = {line.split()[-1] for line in fh if "/" in line}
        except OSError:
            loaded = set()
        out: dict[str, Any] = {}
        for key, (prefix, function, by_pointer) in calls.items():
            home = os.path.dirname(self.mx.__file__)  # the copy libmxnet loaded from its own package first
            paths = sorted((p for p in loaded if os.path.basename(p).startswith(prefix)), key=lambda p: (not p.startswith(home), p))
            label = {"cudart": "cuda_runtime_version", "driver": "cuda_driver_supports", "cudnn": "cudnn_version",
                     "nccl": "nccl_version"}[key]
            if not paths:
                out[label] = f"unknown: no {prefix}* among the libraries loaded in this process (statically linked?)"
                continue
            try:
                lib = ctypes.CDLL(paths[0])
                if by_pointer:
                    value = ctypes.c_int()
                    status = getattr(lib, function)(ctypes.byref(value))
                    out[label] = _decode_version(key, value.value) if status == 0 else f"unknown ({function} returned {status})"
                else:
                    getattr(lib, function).restype = ctypes.c_size_t
                    out[label] = _decode_version(key, int(getattr(lib, function)()))
                out[f"{label}_library"] = paths[0]
            except (OSError, AttributeError) as exc:
                out[label] = f"unknown ({exc})"
        return out

    # ------------------------------------------------------------------------------------------ helpers
    def A(self, a: Any, grad: bool = False) -> Any:
        """A float32 NDArray on the adapter's context (MXNet takes indices and labels as floats too)."""
        t = self.nd.array(np.asarray(a, dtype=np.float32), ctx=self.ctx, dtype=np.float32)
        if grad:
            t.attach_grad()
        return t

    @staticmethod
    def N(t: Any) -> Array:
        return np.asarray(t.asnumpy())

    def _api(self, dotted: str) -> Any:
        """Resolve 'mxnet.gluon.nn.Dense' at run time; a missing name raises Unsupported naming it."""
        return resolve(self.mx, dotted)

    def _set(self, block: Any, **values: Array) -> Any:
        """Copy catalog arrays (already in MXNet's layout) into a block's parameters, by attribute name."""
        for name, value in values.items():
            param = getattr(block, name)
            param.set_data(self.A(value))
        return block

    def _init(self, block: Any) -> Any:
        block.initialize(ctx=self.ctx)
        return block

    def _grad(self, param: Any) -> Array:
        """A Gluon parameter's gradient (after backward) as NumPy."""
        return self.N(param.grad(self.ctx))

    def _backward(self, case: Case, outputs: dict[str, Any], grads: Callable[[], dict[str, Array]]) -> dict[str, Any]:
        """Outputs as NumPy, plus, when the case asks, the vector-Jacobian product with its cotangents: one gradient
        per name in case.wrt, read by `grads()` after backward (in the catalog's layouts)."""
        out: dict[str, Any] = {k: self.N(v) for k, v in outputs.items()}
        if case.grad_wrt is not None:
            names = list(case.cotangents)
            self.autograd.backward([outputs[k] for k in names], [self.A(case.cotangents[k]) for k in names])
            out["grads"] = grads()
        return out

    def _block_op(self, api: str, build: Callable[[Case], Any], forward: Callable[[Any, Any, Case], dict[str, Any]],
                  kind: str = "native", note: str = "", eval_forward: Callable[[Any, Any, Case], dict[str, Any]] | None = None,
                  params: Callable[[Any, Case], dict[str, Array]] | None = None) -> OpImpl:
        """An op that is one block applied to the case's grad_wrt input, recorded for autograd.

        params(block, case), called after backward, gives the gradients of the case's trainable parameters in the
        catalog's layouts (the adapter maps Gluon's transposed or gate-reordered parameters back). eval_forward,
        when given, runs first and outside autograd.record(), i.e. in MXNet's inference mode."""

        def run(case: Case) -> dict[str, Any]:
            block = build(case)
            x = self.A(case.arrays[case.grad_wrt or "x"], grad=True)
            outputs: dict[str, Any] = dict(eval_forward(block, x, case)) if eval_forward else {}
            with self.autograd.record():  # train_mode=True: BatchNorm uses batch statistics, Dropout drops
                outputs.update(forward(block, x, case))
            return self._backward(case, outputs, lambda: {case.grad_wrt or "x": self.N(x.grad),
                                                          **(params(block, case) if params else {})})

        return OpImpl(kind, api, run, None, note)

    def _traced_block(self, fn: Callable[..., Any], **children: Any) -> Any:
        """A HybridBlock whose hybrid_forward is fn(F, block, *inputs) over the given child blocks; it counts the
        calls made with Symbols, i.e. how often MXNet traced its Python into a graph for the CachedOp."""
        mx = self.mx

        class Traced(self.gluon.HybridBlock):  # type: ignore[name-defined, misc]
            def __init__(self) -> None:
                super().__init__()
                self.traces = 0
                for name, child in children.items():
                    setattr(self, name, child)  # registers the child block (and so its parameters)

            def hybrid_forward(self, F: Any, *inputs: Any) -> Any:
                if F is mx.sym:  # called with Symbols: MXNet is tracing the graph for its CachedOp
                    self.traces += 1
                return fn(F, self, *inputs)

        return Traced()

    # ------------------------------------------------------------------------------------------ layers
    def op_dense(self) -> OpImpl:
        Dense = self._api("mxnet.gluon.nn.Dense")

        def build(c: Case) -> Any:
            w = c.arrays["w"]  # (in, out); Gluon's Dense weight is (out, in)
            return self._set(self._init(Dense(w.shape[1], in_units=w.shape[0])), weight=w.T, bias=c.arrays["b"])

        return self._block_op("mxnet.gluon.nn.Dense", build, lambda m, x, c: {"y": m(x)},
                              params=lambda m, c: {"w": self._grad(m.weight).T, "b": self._grad(m.bias)},
                              note="weight stored (out, in): loaded transposed, its gradient transposed back")

    def _weight_and_bias(self, m: Any, c: Case) -> dict[str, Array]:
        return {"w": self._grad(m.weight), "b": self._grad(m.bias)}

    def _conv(self, api: str) -> OpImpl:
        Conv = self._api(api)

        def build(c: Case) -> Any:
            w, cfg = c.arrays["w"], c.config  # (O, C, *k): Gluon's own layout (NCW / NCHW / NCDHW)
            m = Conv(w.shape[0], w.shape[2:], strides=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
                     in_channels=w.shape[1])
            return self._set(self._init(m), weight=w, bias=c.arrays["b"])

        return self._block_op(api, build, lambda m, x, c: {"y": m(x)}, params=self._weight_and_bias)

    def op_conv1d(self) -> OpImpl:
        return self._conv("mxnet.gluon.nn.Conv1D")

    def op_conv2d(self) -> OpImpl:
        return self._conv("mxnet.gluon.nn.Conv2D")

    def op_conv3d(self) -> OpImpl:
        return self._conv("mxnet.gluon.nn.Conv3D")

    def op_conv_transpose2d(self) -> OpImpl:
        ConvT = self._api("mxnet.gluon.nn.Conv2DTranspose")

        def build(c: Case) -> Any:
            w = c.arrays["w"]  # (C_in, C_out, kH, kW): the Deconvolution operator's own weight layout
            m = ConvT(w.shape[1], w.shape[2:], strides=c.config["stride"], padding=c.config["padding"], in_channels=w.shape[0])
            return self._set(self._init(m), weight=w, bias=c.arrays["b"])

        return self._block_op("mxnet.gluon.nn.Conv2DTranspose", build, lambda m, x, c: {"y": m(x)}, params=self._weight_and_bias)

    def op_separable_conv2d(self) -> OpImpl:
        Conv = self._api("mxnet.gluon.nn.Conv2D")
        Seq = self._api("mxnet.gluon.nn.HybridSequential")

        def build(c: Case) -> Any:
            dw, pw = c.arrays["w_depthwise"], c.arrays["w_pointwise"]
            ch = dw.shape[0]
            depth = Conv(ch, dw.shape[2:], strides=c.config["stride"], padding=c.config["padding"], groups=ch,
                         use_bias=False, in_channels=ch)
            point = Conv(pw.shape[0], 1, in_channels=ch)
            seq = Seq()
            seq.add(depth, point)
            self._init(seq)
            self._set(depth, weight=dw)
            self._set(point, weight=pw, bias=c.arrays["b"])
            return seq

        def params(m: Any, c: Case) -> dict[str, Array]:
            return {"w_depthwise": self._grad(m[0].weight), "w_pointwise": self._grad(m[1].weight), "b": self._grad(m[1].bias)}

        return self._block_op("mxnet.gluon.nn.Conv2D(groups=C) + mxnet.gluon.nn.Conv2D(1x1)", build, lambda m, x, c: {"y": m(x)},
                              kind="composed", params=params,
                              note="Gluon has no separable-convolution layer: depthwise (grouped) conv then 1x1 conv")

    def op_max_pool2d(self) -> OpImpl:
        Pool = self._api("mxnet.gluon.nn.MaxPool2D")
        return self._block_op("mxnet.gluon.nn.MaxPool2D",
                              lambda c: Pool(c.config["kernel"], c.config["stride"], c.config.get("padding", 0)),
                              lambda m, x, c: {"y": m(x)})

    def op_avg_pool2d(self) -> OpImpl:
        Pool = self._api("mxnet.gluon.nn.AvgPool2D")
        return self._block_op(
            "mxnet.gluon.nn.AvgPool2D",
            lambda c: Pool(c.config["kernel"], c.config["stride"], c.config["padding"], count_include_pad=True),
            lambda m, x, c: {"y": m(x)}, note="count_include_pad=True (Gluon's default, set explicitly)",
        )

    def op_global_avg_pool2d(self) -> OpImpl:
        Pool = self._api("mxnet.gluon.nn.GlobalAvgPool2D")
        return self._block_op("mxnet.gluon.nn.GlobalAvgPool2D", lambda c: Pool(), lambda m, x, c: {"y": m(x).flatten()},
                              note="the block keeps (N, C, 1, 1); flattened to (N, C)")

    def op_upsample_nearest2d(self) -> OpImpl:
        up = self._api("mxnet.nd.UpSampling")
        return self._block_op("mxnet.nd.UpSampling(sample_type='nearest')", lambda c: None,
                              lambda m, x, c: {"y": up(x, scale=c.config["scale"], sample_type="nearest")},
                              note="Gluon has no upsampling block; the UpSampling operator is MXNet's own")

    def _gamma_beta(self, m: Any, c: Case) -> dict[str, Array]:
        return {"gamma": self._grad(m.gamma), "beta": self._grad(m.beta)}

    def op_batch_norm(self) -> OpImpl:
        BN = self._api("mxnet.gluon.nn.BatchNorm")

        def build(c: Case) -> Any:
            a = c.arrays
            m = BN(axis=1, momentum=0.9, epsilon=c.config["eps"], center=True, scale=True, in_channels=a["gamma"].shape[0])
            return self._set(self._init(m), gamma=a["gamma"], beta=a["beta"], running_mean=a["running_mean"],
                             running_var=a["running_var"])

        return self._block_op("mxnet.gluon.nn.BatchNorm", build, lambda m, x, c: {"y_train": m(x)},
                              eval_forward=lambda m, x, c: {"y_eval": m(x)}, params=self._gamma_beta,
                              note="y_eval outside autograd.record() (inference mode), y_train inside it")

    def op_layer_norm(self) -> OpImpl:
        LN = self._api("mxnet.gluon.nn.LayerNorm")

        def build(c: Case) -> Any:
            g = c.arrays["gamma"]
            return self._set(self._init(LN(axis=-1, epsilon=c.config["eps"], in_channels=g.shape[0])), gamma=g, beta=c.arrays["beta"])

        return self._block_op("mxnet.gluon.nn.LayerNorm", build, lambda m, x, c: {"y": m(x)}, params=self._gamma_beta)

    def op_group_norm(self) -> list[OpImpl]:
        """Gluon's GroupNorm itself (its affine must be per channel), then, when it is not, the layer without its
        affine followed by the catalog's per-channel scale and shift."""
        GN = self._api("mxnet.gluon.nn.GroupNorm")

        def build_native(c: Case) -> Any:
            g = c.arrays["gamma"]
            m = self._init(GN(num_groups=c.config["groups"], epsilon=c.config["eps"]))
            have = tuple(m.gamma.shape)
            if have != g.shape:
                raise Unsupported(f"mxnet.gluon.nn.GroupNorm keeps its affine gamma/beta per group (shape {have} for "
                                  f"{c.config['groups']} groups), not per channel {g.shape}: the catalog's per-channel "
                                  "affine cannot be expressed in this layer",
                                  looked_up=[f"mxnet.gluon.nn.GroupNorm(num_groups={c.config['groups']}).gamma of shape {g.shape}"])
            return self._set(m, gamma=g, beta=c.arrays["beta"])

        native = self._block_op("mxnet.gluon.nn.GroupNorm", build_native, lambda m, x, c: {"y": m(x)}, params=self._gamma_beta)

        def build_composed(c: Case) -> Any:
            norm = self._init(GN(num_groups=c.config["groups"], epsilon=c.config["eps"], center=False, scale=False))
            return norm, self.A(c.arrays["gamma"], grad=True), self.A(c.arrays["beta"], grad=True)

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            norm, gamma, beta = m
            shape = (1, -1) + (1,) * (x.ndim - 2)
            return {"y": norm(x) * gamma.reshape(shape) + beta.reshape(shape)}

        composed = self._block_op("mxnet.gluon.nn.GroupNorm(center=False, scale=False) + per-channel affine", build_composed,
                                  forward, kind="composed",
                                  params=lambda m, c: {"gamma": self.N(m[1].grad), "beta": self.N(m[2].grad)},
                                  note="Gluon's GroupNorm has per-group gamma/beta: the layer normalises without its "
                                       "affine, then a per-channel scale and shift (broadcast NDArray ops)")
        return [native, composed]

    def op_local_response_norm(self) -> OpImpl:
        lrn = self._api("mxnet.nd.LRN")
        return self._block_op(
            "mxnet.nd.LRN", lambda c: None,
            lambda m, x, c: {"y": lrn(x, alpha=c.config["alpha"], beta=c.config["beta"], knorm=c.config["k"], nsize=c.config["size"])},
            note="Gluon has no LRN block; the LRN operator (alpha divided by nsize, Caffe convention) is MXNet's own",
        )

    def op_dropout(self) -> OpImpl:
        Drop = self._api("mxnet.gluon.nn.Dropout")
        return self._block_op("mxnet.gluon.nn.Dropout", lambda c: Drop(rate=c.config["p"]), lambda m, x, c: {"y_train": m(x)},
                              eval_forward=lambda m, x, c: {"y_eval": m(x)},
                              note="y_eval outside autograd.record() (inference mode), y_train inside it")

    def op_embedding(self) -> OpImpl:
        Emb = self._api("mxnet.gluon.nn.Embedding")

        def run(c: Case) -> dict[str, Any]:
            w = c.arrays["weight"]
            m = self._set(self._init(Emb(*w.shape)), weight=w)
            idx = self.A(c.arrays["indices"])
            with self.autograd.record():
                y = m(idx)
            return self._backward(c, {"y": y}, lambda: {"weight": self._grad(m.weight)})

        return OpImpl("native", "mxnet.gluon.nn.Embedding", run)

    def _rnn_states(self, m: Any, x: Any) -> Any:
        return m.begin_state(batch_size=x.shape[0], ctx=self.ctx)

    def _rnn_grads(self, m: Any, prefix: str, src: str, dst: str, **names: str) -> dict[str, Array]:
        """Gradients of a Gluon recurrent layer's `prefix` parameters (i2h_weight, h2h_weight (gates*H, in), biases
        in gate order `src`) in the catalog's layouts (weights (in, gates*H), gate order `dst`); `names` maps a
        catalog name to the Gluon parameter suffix."""
        out = {}
        for catalog, suffix in names.items():
            g = self._grad(getattr(m, f"{prefix}_{suffix}"))
            out[catalog] = reorder_gates(g.T if suffix.endswith("weight") else g, src, dst)
        return out

    def op_simple_rnn(self) -> OpImpl:
        RNN = self._api("mxnet.gluon.rnn.RNN")

        def build(c: Case) -> Any:
            a = c.arrays
            m = RNN(c.config["hidden"], activation="tanh", layout="NTC", input_size=a["wx"].shape[0])
            return self._set(self._init(m), l0_i2h_weight=a["wx"].T, l0_h2h_weight=a["wh"].T, l0_i2h_bias=a["b"],
                             l0_h2h_bias=np.zeros_like(a["b"]))

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            y, (h,) = m(x, self._rnn_states(m, x))
            return {"y": y, "h": h[0]}

        return self._block_op("mxnet.gluon.rnn.RNN", build, forward,
                              params=lambda m, c: self._rnn_grads(m, "l0", "g", "g", wx="i2h_weight", wh="h2h_weight", b="i2h_bias"),
                              note="Gluon keeps two biases; the recurrent one is set to 0 (b is the input bias)")

    def op_lstm(self) -> OpImpl:
        LSTM = self._api("mxnet.gluon.rnn.LSTM")

        def build(c: Case) -> Any:
            a, order = c.arrays, c.config["gate_order"]
            m = LSTM(c.config["hidden"], layout="NTC", input_size=a["wx"].shape[0])
            return self._set(self._init(m), l0_i2h_weight=reorder_gates(a["wx"], order, MXNET_LSTM).T,
                             l0_h2h_weight=reorder_gates(a["wh"], order, MXNET_LSTM).T,
                             l0_i2h_bias=reorder_gates(a["b"], order, MXNET_LSTM), l0_h2h_bias=np.zeros_like(a["b"]))

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            y, (h, cell) = m(x, self._rnn_states(m, x))
            return {"y": y, "h": h[0], "c": cell[0]}

        def params(m: Any, c: Case) -> dict[str, Array]:
            return self._rnn_grads(m, "l0", MXNET_LSTM, c.config["gate_order"], wx="i2h_weight", wh="h2h_weight", b="i2h_bias")

        return self._block_op("mxnet.gluon.rnn.LSTM", build, forward, params=params,
                              note=f"gate order {MXNET_LSTM} (i, f, c, o); recurrent bias set to 0")

    def op_gru(self) -> OpImpl:
        GRU = self._api("mxnet.gluon.rnn.GRU")

        def build(c: Case) -> Any:
            a, order = c.arrays, c.config["gate_order"]
            m = GRU(c.config["hidden"], layout="NTC", input_size=a["wx"].shape[0])
            return self._set(self._init(m), l0_i2h_weight=reorder_gates(a["wx"], order, MXNET_GRU).T,
                             l0_h2h_weight=reorder_gates(a["wh"], order, MXNET_GRU).T,
                             l0_i2h_bias=reorder_gates(a["bx"], order, MXNET_GRU), l0_h2h_bias=reorder_gates(a["bh"], order, MXNET_GRU))

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            y, (h,) = m(x, self._rnn_states(m, x))
            return {"y": y, "h": h[0]}

        def params(m: Any, c: Case) -> dict[str, Array]:
            return self._rnn_grads(m, "l0", MXNET_GRU, c.config["gate_order"], wx="i2h_weight", wh="h2h_weight",
                                   bx="i2h_bias", bh="h2h_bias")

        return self._block_op("mxnet.gluon.rnn.GRU", build, forward, params=params, note=f"gate order {MXNET_GRU}")

    def op_bidirectional_rnn(self) -> OpImpl:
        RNN = self._api("mxnet.gluon.rnn.RNN")

        def build(c: Case) -> Any:
            a = c.arrays
            m = RNN(c.config["hidden"], activation="tanh", layout="NTC", bidirectional=True, input_size=a["x"].shape[2])
            zeros = np.zeros_like(a["b_fw"])
            return self._set(self._init(m), l0_i2h_weight=a["wx_fw"].T, l0_h2h_weight=a["wh_fw"].T, l0_i2h_bias=a["b_fw"],
                             l0_h2h_bias=zeros, r0_i2h_weight=a["wx_bw"].T, r0_h2h_weight=a["wh_bw"].T,
                             r0_i2h_bias=a["b_bw"], r0_h2h_bias=zeros)

        def params(m: Any, c: Case) -> dict[str, Array]:
            out = {}
            for prefix, d in (("l0", "fw"), ("r0", "bw")):
                out |= self._rnn_grads(m, prefix, "g", "g", **{f"wx_{d}": "i2h_weight", f"wh_{d}": "h2h_weight", f"b_{d}": "i2h_bias"})
            return out

        return self._block_op("mxnet.gluon.rnn.RNN(bidirectional=True)", build, lambda m, x, c: {"y": m(x)}, params=params,
                              note="a flag on the recurrent layers (l0_* forward, r0_* backward); output [forward, backward]; "
                                   "recurrent biases set to 0")

    def op_multi_head_attention(self) -> OpImpl:
        places = ("mxnet.gluon.nn", "mxnet.gluon.contrib.nn")
        looked_up = []
        for where in places:
            try:
                self._api(f"{where}.MultiHeadAttention")
            except Unsupported as exc:
                looked_up += exc.looked_up
                continue
            raise NotImplementedError(f"{where}.MultiHeadAttention exists: map the catalog's projections into it")
        kernels = hasattr(self.nd.contrib, "interleaved_matmul_selfatt_qk")
        raise Unsupported(f"{' and '.join(places)} have no MultiHeadAttention"
                          + (" (only fused attention kernels such as mxnet.nd.contrib.interleaved_matmul_selfatt_qk)" if kernels else ""),
                          looked_up=looked_up)

    def op_prelu(self) -> OpImpl:
        PReLU = self._api("mxnet.gluon.nn.PReLU")

        def build(c: Case) -> Any:
            alpha = c.arrays["alpha"]
            return self._set(self._init(PReLU(in_channels=alpha.shape[0])), alpha=alpha)

        return self._block_op("mxnet.gluon.nn.PReLU", build, lambda m, x, c: {"y": m(x)},
                              params=lambda m, c: {"alpha": self._grad(m.alpha)}, note="one slope per channel (axis 1)")

    def op_hierarchical_softmax(self) -> OpImpl:
        nd = self.nd
        log_softmax, pick = self._api("mxnet.nd.log_softmax"), self._api("mxnet.nd.pick")
        names = ("w_cluster", "b_cluster", "w_word", "b_word")

        def build(c: Case) -> dict[str, Any]:
            return {k: self.A(c.arrays[k], grad=True) for k in names}

        def forward(p: dict[str, Any], x: Any, c: Case) -> dict[str, Any]:
            size = c.config["cluster_size"]
            targets = np.asarray(c.arrays["targets"])
            cluster, within = self.A(targets // size), self.A(targets % size)
            lp_cluster = log_softmax(nd.dot(x, p["w_cluster"]) + p["b_cluster"], axis=-1)
            w_word = nd.take(p["w_word"], cluster)  # (B, D, S): each example's cluster's word weights
            word_logits = nd.batch_dot(x.expand_dims(1), w_word).reshape((0, -1)) + nd.take(p["b_word"], cluster)
            lp_word = log_softmax(word_logits, axis=-1)
            return {"y": pick(lp_cluster, cluster, axis=-1) + pick(lp_word, within, axis=-1)}

        return self._block_op("mxnet.nd.log_softmax x2 + mxnet.nd.pick", build, forward, kind="composed",
                              params=lambda p, c: {k: self.N(p[k].grad) for k in names},
                              note="MXNet has no hierarchical (or adaptive) softmax: two log-softmaxes and a gather")

    def op_ctc_loss(self) -> OpImpl:
        CTC = self._api("mxnet.gluon.loss.CTCLoss")

        def forward(m: Any, logits: Any, c: Case) -> dict[str, Any]:
            a, blank = c.arrays, c.config["blank"]
            classes = logits.shape[-1]
            # Gluon's CTCLoss reserves the LAST class for the blank; the catalog's blank is class `blank`. Move that
            # class to the end (inside the recorded graph, so the gradient maps back) and renumber the labels.
            order = [k for k in range(classes) if k != blank] + [blank]
            moved = self.nd.take(logits, self.A(order), axis=2)
            targets = np.asarray(a["targets"])
            labels = np.where(targets > blank, targets - 1, targets).astype(np.float32)
            for b, length in enumerate(np.asarray(a["target_lengths"])):
                labels[b, int(length):] = -1  # Gluon's padding value
            y = m(moved, self.A(labels), self.A(a["input_lengths"]), self.A(a["target_lengths"]))
            return {"y": y}

        return self._block_op("mxnet.gluon.loss.CTCLoss", lambda c: CTC(layout="TNC", label_layout="NT"), forward,
                              note="layout TNC; the blank is the last class in Gluon, so class 0 is moved there and labels "
                                   "renumbered; labels padded with -1; softmax applied by the loss")

    # ------------------------------------------------------------------------------------------ optimizers
    def _optimizer(self, api: str, make: Callable[[Any, dict[str, Any]], Any], note: str = "") -> OpImpl:
        Opt = self._api(api)

        def run(c: Case) -> dict[str, Array]:
            # rescale_grad 1, wd 0 and no clipping, stated so MXNet's Optimizer defaults cannot alter the update
            opt = make(Opt, {"rescale_grad": 1.0, "wd": 0.0, "clip_gradient": None, **c.config})
            w = self.A(c.arrays["w"].copy(), grad=True)
            state = opt.create_state_multi_precision(0, w)
            history = []
            for g in c.arrays["grads"]:
                with self.autograd.record():
                    loss = (w * self.A(g)).sum()  # d/dw of sum(w * g) is g: the catalog's gradient, via autograd
                loss.backward()
                opt.update_multi_precision(0, w, w.grad, state)
                history.append(self.N(w).copy())
            return {"w": np.stack(history)}

        return OpImpl("native", api, run, note=note)

    @staticmethod
    def _require_option(opt_cls: Any, parameter: str, where: str) -> None:
        """Unsupported (with every signature looked up) unless the optimizer's constructor takes `parameter`, either
        itself or through **kwargs forwarded to a base class's constructor (MXNet optimizers forward theirs to
        mxnet.optimizer.Optimizer)."""
        import inspect

        looked_up: list[str] = []
        for klass in opt_cls.__mro__:
            if "__init__" not in vars(klass):
                continue
            name = where if klass is opt_cls else f"mxnet.optimizer.{klass.__name__}"
            params = inspect.signature(klass.__init__).parameters
            if parameter in params:
                return
            looked_up.append(f"{name}({parameter}=...)")
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
                try:
                    require_parameter(klass, parameter, name)
                except Unsupported as exc:
                    chain = " -> ".join(looked_up)
                    raise Unsupported(f"{exc} (looked up along {chain})", looked_up=looked_up) from None
                return
        raise Unsupported(f"no constructor along {' -> '.join(looked_up)} takes {parameter!r}", looked_up=looked_up)

    @staticmethod
    def _require_learning_rate_applied(opt_cls: Any, where: str) -> None:
        """Unsupported unless the optimizer's update reads its learning rate: every MXNet optimizer takes
        learning_rate through mxnet.optimizer.Optimizer's constructor, and an update rule that uses it reads it
        with Optimizer._get_lr / _get_lrs."""
        readers = {"_get_lr", "_get_lrs", "lr"}
        methods = [m for m in ("update", "update_multi_precision", "fused_step", "step") if m in vars(opt_cls)]
        names = set().union(*(vars(opt_cls)[m].__code__.co_names for m in methods)) if methods else set()
        if methods and not names & readers:
            raise Unsupported(f"{where} takes learning_rate only through mxnet.optimizer.Optimizer(**kwargs), and "
                              f"nothing in {where}.{' / '.join(methods)} reads it (no Optimizer._get_lr): the update applies "
                              "the delta as is, so a learning rate other than 1 cannot be expressed",
                              looked_up=[f"{where}.{m} reading the learning rate (Optimizer._get_lr)" for m in methods])

    @staticmethod
    def _base(h: dict[str, Any]) -> dict[str, Any]:
        return {"learning_rate": h["lr"], "rescale_grad": h["rescale_grad"], "wd": h["wd"], "clip_gradient": h["clip_gradient"]}

    def op_sgd(self) -> OpImpl:
        return self._optimizer("mxnet.optimizer.SGD", lambda opt_cls, h: opt_cls(momentum=0.0, **self._base(h)))

    def op_momentum(self) -> OpImpl:
        return self._optimizer("mxnet.optimizer.SGD", lambda opt_cls, h: opt_cls(momentum=h["mu"], **self._base(h)),
                               note="MXNet's form v = mu v + lr g; w -= v (same iterates as the catalog's at constant lr)")

    def op_nesterov(self) -> OpImpl:
        return self._optimizer("mxnet.optimizer.NAG", lambda opt_cls, h: opt_cls(momentum=h["mu"], **self._base(h)))

    def op_adagrad(self) -> OpImpl:
        def make(opt_cls: Any, h: dict[str, Any]) -> Any:
            if h["initial_accumulator"] != 0.0:  # MXNet's create_state starts the history at zeros
                self._require_option(opt_cls, "initial_accumulator_value", "mxnet.optimizer.AdaGrad")
            return opt_cls(eps=h["eps"], **self._base(h))

        return self._optimizer("mxnet.optimizer.AdaGrad", make,
                               note="the accumulator starts at 0 (MXNet's create_state); a case with another initial "
                                    "value is unsupported unless the constructor takes one")

    def op_adadelta(self) -> OpImpl:
        def make(opt_cls: Any, h: dict[str, Any]) -> Any:
            if h["lr"] != 1.0:  # an update without a learning rate is the rule with lr 1
                self._require_learning_rate_applied(opt_cls, "mxnet.optimizer.AdaDelta")
            return opt_cls(rho=h["rho"], epsilon=h["eps"], **self._base(h))

        return self._optimizer("mxnet.optimizer.AdaDelta", make,
                               note="MXNet's AdaDelta update is weight -= delta (no learning rate): a case with lr other "
                                    "than 1 is unsupported unless its update reads the learning rate")

    def op_rmsprop(self) -> OpImpl:
        return self._optimizer("mxnet.optimizer.RMSProp",
                               lambda opt_cls, h: opt_cls(gamma1=h["rho"], epsilon=h["eps"], centered=False, clip_weights=None, **self._base(h)),
                               note="centered=False: no momentum term (gamma2 is used only when centered)")

    def op_adam(self) -> OpImpl:
        return self._optimizer("mxnet.optimizer.Adam",
                               lambda opt_cls, h: opt_cls(beta1=h["b1"], beta2=h["b2"], epsilon=h["eps"], lazy_update=False, **self._base(h)))

    def op_adamw(self) -> OpImpl:
        try:
            self._api("mxnet.optimizer.AdamW")
        except Unsupported as exc:
            kernel = hasattr(self.nd.contrib, "adamw_update")
            raise Unsupported(f"{exc} (mxnet.optimizer.Adam's wd is coupled L2 added to the gradient, not decoupled"
                              + ("; only the fused kernel mxnet.nd.contrib.adamw_update exists, without bias correction, "
                                 "for callers that bring their own optimizer" if kernel else "") + ")",
                              looked_up=exc.looked_up) from None
        raise NotImplementedError("mxnet.optimizer.AdamW exists: map the catalog's hyperparameters into it")

    # ------------------------------------------------------------------------------------------ graphs
    @staticmethod
    def _namespace(F: Any) -> Any:
        """The catalog's F over mx.nd (imperative) or mx.sym (inside a hybridized block); item reads a one-element
        NDArray as a Python float (asscalar() waits for the value; a Symbol has no value to read)."""
        return types.SimpleNamespace(sum=F.sum, tanh=F.tanh, matmul=F.dot, item=lambda t: float(t.asscalar()))

    def graph_namespace(self) -> Any:
        return self._namespace(self.nd)

    def value_and_grad(self, fn: Callable[..., Any], args: Sequence[Array]) -> tuple[float, Array]:
        arrays = [self.A(a, grad=(i == 0)) for i, a in enumerate(args)]
        with self.autograd.record():
            value = fn(self.graph_namespace(), *arrays)
        value.backward()
        return float(value.asscalar()), self.N(arrays[0].grad)

    def compile_paths(self) -> list[str]:
        return [HYBRIDIZE] if hasattr(self.gluon, "HybridBlock") else []

    def compile_path_lookups(self) -> list[str]:
        return ["mxnet.gluon.HybridBlock"]

    def _program_block(self, fn: Callable[..., Any]) -> Any:
        """A HybridBlock whose hybrid_forward runs the catalog program on F; it counts its symbolic traces."""
        namespace = self._namespace
        return self._traced_block(lambda F, block, *inputs: fn(namespace(F), *inputs))

    def compile(self, fn: Callable[..., Any], path: str) -> CompiledFunction:
        if path != HYBRIDIZE:
            return super().compile(fn, path)
        block = self._program_block(fn)
        block.hybridize()

        def call(args: Sequence[Array]) -> tuple[float, Array]:
            arrays = [self.A(a, grad=(i == 0)) for i, a in enumerate(args)]
            with self.autograd.record():
                value = block(*arrays)
            value.backward()
            return float(value.asscalar()), self.N(arrays[0].grad)

        return CompiledFunction(path, call, lambda: block.traces)

    # ------------------------------------------------------------------------------------------ throughput
    def _sync(self) -> None:
        self.nd.waitall()

    def _data(self, param: Any) -> Array:
        return self.N(param.data(self.ctx))

    def _require_precision(self, precision: str) -> None:
        """Strict float32 is what every workload is built in; TF32 and bfloat16 raise Unsupported with what was
        looked up (see _tf32_unsupported, _bf16_unsupported)."""
        if precision == "fp32":
            return
        if precision == "tf32":
            raise self._tf32_unsupported()
        if precision == "bf16":
            raise self._bf16_unsupported()
        raise KeyError(f"unknown precision {precision!r}")

    def _tf32_unsupported(self) -> Exception:
        from mxnet.contrib import amp

        mx = self.mx
        features = [k for k in mx.runtime.Features().keys() if "TF32" in k.upper()]
        modules = (mx.util, mx.context, mx.runtime, amp, amp.amp)
        names = [f"{m.__name__}.{n}" for m in modules for n in dir(m) if "tf32" in n.lower()]
        if features or names:
            raise NotImplementedError(f"MXNet names a TF32 switch ({', '.join(features + names)}): map it")
        return Unsupported(
            f"MXNet {mx.__version__} has no TF32 switch: mx.runtime.Features() lists no TF32 feature and "
            "mxnet.util / context / runtime / contrib.amp no tf32 name. Its tensor-core environment variable "
            "MXNET_CUDA_ALLOW_TENSOR_CORE governs float16 tensor-core algorithms and is read once per process; its "
            "CUDA 11 builds request TF32 math for float32 GEMMs unconditionally, so this worker keeps NVIDIA's "
            "process-wide NVIDIA_TF32_OVERRIDE=0 for strict float32, which cannot be lifted for one workload's step",
            looked_up=["mxnet.runtime.Features(): a TF32 feature",
                       *(f"{m.__name__}: a name containing 'tf32'" for m in modules)])

    def _bf16_unsupported(self) -> Exception:
        """MXNet's AMP (mxnet.contrib.amp) takes target_dtype 'bfloat16', but its bfloat16 operator lists are
        oneDNN's (CPU): on a GPU the bfloat16 compute must come from the CUDA kernels, so one AMP-cast
        FullyConnected (a layer AMP puts in bfloat16) is run on the adapter's GPU and its outcome recorded."""
        from mxnet.contrib import amp

        if self.device == "cpu":
            return NotMapped("bfloat16 is asked on CUDA only; MXNet's CPU (oneDNN) bfloat16 AMP is not mapped")
        bf16 = amp.amp.bfloat16
        lp16 = amp.list_lp16_ops(bf16)
        looked_up = [f"mxnet.contrib.amp.list_lp16_ops(bfloat16) = {lp16}"]
        try:
            x, w = self.nd.ones((2, 4), ctx=self.ctx), self.nd.ones((3, 4), ctx=self.ctx)
            y = self.nd.FullyConnected(self.nd.amp_cast(x, dtype=bf16), self.nd.amp_cast(w, dtype=bf16), no_bias=True,
                                       num_hidden=3)
            y.wait_to_read()
        except self.mx.base.MXNetError as exc:
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")[:240]
            looked_up.append(f"mxnet.nd.FullyConnected on bfloat16 (amp_cast) arrays on {self.ctx}: {first}")
            return Unsupported(f"MXNet {self.mx.__version__}'s AMP offers bfloat16, but its GPU kernels do not compute "
                               f"in it: FullyConnected on bfloat16 arrays on {self.ctx} fails ({first}); its "
                               "bfloat16 operator lists are oneDNN's (CPU); on the GPU its AMP is float16",
                               looked_up=looked_up)
        return NotMapped(f"FullyConnected ran in bfloat16 on {self.ctx}: a bfloat16 AMP training path may exist, and "
                         "the adapter does not map it")

    def _memory_peak(self) -> Callable[[], int | None]:
        """On a GPU: the device memory this workload made MXNet hold at most. MXNet 1.9 has no peak counter; its GPU
        pool (the default 'Naive' pool) keeps every buffer it ever allocated for reuse instead of returning it, so the
        device's used memory (mx.context.gpu_memory_info: total - free) only grows while the workload runs. The pool
        is emptied when the workload is built and that reading taken as the baseline; peak = reading - baseline
        (it includes anything another process allocates on the same GPU meanwhile). None on the CPU."""
        if self.device == "cpu":
            return lambda: None
        self.nd.waitall()
        gc.collect()
        self.ctx.empty_cache()
        free, total = self.mx.context.gpu_memory_info(self.index)
        baseline = total - free

        def peak() -> int | None:
            self.nd.waitall()
            free_now, total_now = self.mx.context.gpu_memory_info(self.index)
            return max(int(total_now - free_now - baseline), 0)

        return peak

    def workload(self, spec: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """The single-op workloads: one GEMM (mx.nd.dot) or one convolution (gluon.nn.Conv2D); compiled, the op as a
        hybridized block."""
        if spec.kind != "op":
            raise NotMapped(f"{spec.id} is a training workload: model_workload builds it")
        self._require_precision(precision)
        compiled = mode == "compiled"
        peak = self._memory_peak()
        if spec.id == "gemm":
            args: tuple[Any, ...] = (self.A(arrays["a"]), self.A(arrays["b"]))
            block = self._traced_block(lambda F, blk, p, q: F.dot(p, q))
            eager: Callable[..., Any] = self.nd.dot
        elif spec.id == "conv2d":
            w = arrays["w"]
            conv = self.gluon.nn.Conv2D(w.shape[0], w.shape[2:], padding=1, use_bias=False, in_channels=w.shape[1])
            self._set(self._init(conv), weight=w)
            block = self._traced_block(lambda F, blk, x: blk.conv(x), conv=conv)
            eager = conv
            args = (self.A(arrays["x"]),)
        else:
            raise NotMapped(f"the mxnet adapter has no single-op workload {spec.id}")
        if compiled:
            block.hybridize(static_alloc=True, static_shape=True)
        fn = block if compiled else eager

        def step() -> Any:
            return fn(*args)

        return Workload(step, self._sync, 0, STATIC_HYBRIDIZE if compiled else None, observe=lambda y: {"y": self.N(y)},
                        compile_scope="op" if compiled else None,
                        traces=(lambda: block.traces) if compiled else (lambda: None), peak_memory=peak, precision=precision)

    # ------------------------------------------------------------------------------------------ catalog models
    def _node(self, node: Any, shape: tuple[int, ...]) -> tuple[Any, Callable[..., Any], list[tuple[str, Any, Callable[[Array], Array], Callable[[Array], Array]]], list[Any]]:
        """One catalog node in Gluon: (its block or None, its forward fn(F, *inputs), its parameters as (catalog
        name, Gluon parameter, catalog -> Gluon layout, Gluon -> catalog layout), parameters pinned and untrained).
        `shape` is the shape of the node's (first) input."""
        nn, rnn = self.gluon.nn, self.gluon.rnn
        k, a = node.kind, node.attrs
        same: Callable[[Array], Array] = lambda v: v  # noqa: E731
        transposed: Callable[[Array], Array] = lambda v: v.T  # noqa: E731

        def call(block: Any) -> Callable[..., Any]:
            return lambda F, x: block(x)

        if k == "dense":  # Gluon keeps the weight (out, in): the catalog's (in, out) transposed
            bias = a.get("bias", True)
            blk = nn.Dense(a["out"], use_bias=bias, flatten=False, in_units=shape[-1])
            maps = [("w", blk.weight, transposed, transposed)] + ([("b", blk.bias, same, same)] if bias else [])
            return blk, call(blk), maps, []
        if k == "conv2d":  # NCHW, weight (O, C, kH, kW): the catalog's layout
            bias = a.get("bias", False)
            blk = nn.Conv2D(a["out"], a["kernel"], strides=a["stride"], padding=a["padding"], use_bias=bias,
                            in_channels=shape[1])
            return blk, call(blk), [("w", blk.weight, same, same)] + ([("b", blk.bias, same, same)] if bias else []), []
        if k == "batch_norm":  # inside autograd.record() (train mode) Gluon's BatchNorm uses the batch statistics
            blk = nn.BatchNorm(axis=1, momentum=0.9, epsilon=NORM_EPS, in_channels=shape[1])
            return blk, call(blk), [("gamma", blk.gamma, same, same), ("beta", blk.beta, same, same)], []
        if k == "layer_norm":
            blk = nn.LayerNorm(axis=-1, epsilon=NORM_EPS, in_channels=shape[-1])
            return blk, call(blk), [("gamma", blk.gamma, same, same), ("beta", blk.beta, same, same)], []
        if k == "relu":
            blk = nn.Activation("relu")
            return blk, call(blk), [], []
        if k == "gelu":  # LeakyReLU(act_type='gelu'): 0.5 x (1 + erf(x / sqrt 2)), the exact form
            blk = nn.GELU()
            return blk, call(blk), [], []
        if k == "max_pool":
            blk = nn.MaxPool2D(pool_size=a["kernel"], strides=a["stride"], padding=a["padding"])
            return blk, call(blk), [], []
        if k == "global_avg_pool":  # the block keeps (N, C, 1, 1)
            blk = nn.GlobalAvgPool2D()
            return blk, lambda F, x: F.flatten(blk(x)), [], []
        if k == "flatten":  # (N, C, H, W) -> (N, C*H*W), row-major: the NCHW order
            blk = nn.Flatten()
            return blk, call(blk), [], []
        if k == "add":
            return None, lambda F, x, y: F.elemwise_add(x, y), [], []
        if k == "mean_tokens":
            return None, lambda F, x: F.mean(x, axis=1), [], []
        if k == "embedding":  # token ids arrive as float32 (MXNet's index convention), exact below 2**24
            blk = nn.Embedding(a["vocab"], a["dim"])
            return blk, call(blk), [("table", blk.weight, same, same)], []
        if k == "positional":
            blk = self._table_block(shape[1], shape[2])
            return blk, call(blk), [("table", blk.table, same, same)], []
        if k == "self_attention":
            blk = self._attention_block(shape[-1], a["heads"], shape[1])
            maps = []
            for p in "qkvo":
                dense = getattr(blk, p)
                maps += [(f"w{p}", dense.weight, transposed, transposed), (f"b{p}", dense.bias, same, same)]
            return blk, call(blk), maps, []
        if k in ("lstm_last", "gru"):
            cell, src, fw = (rnn.LSTM, CANONICAL_LSTM, MXNET_LSTM) if k == "lstm_last" else (rnn.GRU, CANONICAL_GRU, MXNET_GRU)
            blk = cell(a["hidden"], layout="NTC", input_size=shape[-1])

            def to_fw(v: Array, src: str = src, fw: str = fw) -> Array:  # (in, gates*H) -> (gates*H, in), MXNet's order
                return reorder_gates(v, src, fw).T if v.ndim == 2 else reorder_gates(v, src, fw)

            def to_catalog(v: Array, src: str = src, fw: str = fw) -> Array:
                return reorder_gates(v.T, fw, src) if v.ndim == 2 else reorder_gates(v, fw, src)

            maps = [("wx", blk.l0_i2h_weight, to_fw, to_catalog), ("wh", blk.l0_h2h_weight, to_fw, to_catalog)]
            if k == "gru":  # reset gate after the recurrent matmul, with both biases: the catalog's GRU
                maps += [("bx", blk.l0_i2h_bias, to_fw, to_catalog), ("bh", blk.l0_h2h_bias, to_fw, to_catalog)]
                return blk, call(blk), maps, []
            # gluon.rnn.LSTM always has two bias vectors: pinned at 0, not trained; the last hidden state is the output
            return blk, lambda F, x: F.reshape(F.slice_axis(blk(x), axis=1, begin=-1, end=None), shape=(0, -1)), maps, \
                [blk.l0_i2h_bias, blk.l0_h2h_bias]
        raise NotMapped(f"the mxnet adapter has no mapping for node kind {k!r}")

    def _table_block(self, length: int, dim: int) -> Any:
        """A learned (length, dim) table added to every sequence of the batch: Gluon has no positional-embedding
        layer, so a HybridBlock with one parameter and a broadcast add."""

        class Positional(self.gluon.HybridBlock):  # type: ignore[name-defined, misc]
            def __init__(self) -> None:
                super().__init__()
                with self.name_scope():
                    self.table = self.params.get("table", shape=(length, dim))

            def hybrid_forward(self, F: Any, x: Any, table: Any) -> Any:
                return F.broadcast_add(x, F.expand_dims(table, axis=0))

        return Positional()

    def _attention_block(self, dim: int, heads: int, length: int) -> Any:
        """Multi-head self-attention from Gluon layers and MXNet operators (Gluon 1.9 has no attention layer): four
        Dense(flatten=False) projections; heads split by reshape/transpose into the batch axis; batch_dot, softmax,
        batch_dot; heads merged back; the output projection. The reshapes use only ONNX's own shape codes (0: keep,
        -1: infer), none of MXNet's -3/-4, which mxnet.onnx.export_model cannot translate; `length` is T."""
        Dense = self.gluon.nn.Dense
        scale = math.sqrt(dim // heads)

        class SelfAttention(self.gluon.HybridBlock):  # type: ignore[name-defined, misc]
            def __init__(self) -> None:
                super().__init__()
                with self.name_scope():
                    self.q, self.k, self.v, self.o = (Dense(dim, flatten=False, in_units=dim) for _ in range(4))

            def hybrid_forward(self, F: Any, x: Any) -> Any:
                def split(t: Any) -> Any:  # (N, T, D) -> (N*heads, T, D/heads)
                    heads_first = F.transpose(F.reshape(t, shape=(0, 0, heads, -1)), axes=(0, 2, 1, 3))
                    return F.reshape(heads_first, shape=(-1, length, dim // heads))

                q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
                att = F.softmax(F.batch_dot(q, k, transpose_b=True) / scale, axis=-1)
                ctx = F.batch_dot(att, v)  # (N*heads, T, D/heads) -> (N, T, D)
                merged = F.reshape(F.transpose(F.reshape(ctx, shape=(-1, heads, length, dim // heads)), axes=(0, 2, 1, 3)),
                                   shape=(0, 0, -1))
                return self.o(merged)

        return SelfAttention()

    def _catalog_net(self, model: Any, with_loss: bool = True) -> tuple[Any, list[tuple[str, Any, Callable[[Array], Array], Callable[[Array], Array]]], list[Any]]:
        """The model as one HybridBlock: every node's block registered under the node's name, the nodes run in order
        wired by their input names, the mean softmax cross-entropy on top (with_loss; else the block maps x to the
        model's output); it counts its symbolic traces."""
        mx = self.mx
        shapes = model.shapes()
        steps: list[tuple[str, tuple[str, ...], Callable[..., Any]]] = []
        blocks: list[tuple[str, Any]] = []
        maps: list[tuple[str, Any, Callable[[Array], Array], Callable[[Array], Array]]] = []
        pinned: list[Any] = []
        for node in model.nodes:
            block, forward, node_maps, node_pinned = self._node(node, shapes[node.inputs[0]])
            steps.append((node.name, node.inputs, forward))
            if block is not None:
                blocks.append((node.name, block))
            maps += [(f"{node.name}.{name}", param, to_fw, to_cat) for name, param, to_fw, to_cat in node_maps]
            pinned += node_pinned
        # per example: the mean over the batch (target "class") or, with labels (N, T), over every token (Gluon
        # averages each example's tokens, and every example has T of them)
        loss = self.gluon.loss.SoftmaxCrossEntropyLoss(axis=-1)
        loss_name = "loss"
        while loss_name in shapes:
            loss_name += "_"
        output = model.output

        class CatalogNet(self.gluon.HybridBlock):  # type: ignore[name-defined, misc]
            def __init__(self) -> None:
                super().__init__()
                self.traces = 0
                for name, block in blocks:
                    self.register_child(block, name)
                self.register_child(loss, loss_name)
                self.plan = tuple(steps)  # (node, inputs, forward fn): the forward fns call the registered blocks

            def hybrid_forward(self, F: Any, x: Any, labels: Any = None) -> Any:
                if F is mx.sym:  # called with Symbols: MXNet is tracing the graph for its CachedOp
                    self.traces += 1
                values = {"input": x}
                for name, inputs, forward in self.plan:
                    values[name] = forward(F, *(values[i] for i in inputs))
                return F.mean(loss(values[output], labels)) if with_loss else values[output]

        return CatalogNet(), maps, pinned

    def _load_catalog(self, net: Any, maps: list[tuple[str, Any, Callable[[Array], Array], Callable[[Array], Array]]],
                      pinned: list[Any], arrays: dict[str, Array]) -> None:
        """Initialize a _catalog_net block with the catalog's parameters (in Gluon's layouts); pinned parameters at
        zero and frozen."""
        net.initialize(ctx=self.ctx)
        for name, param, to_fw, _ in maps:
            param.set_data(self.A(to_fw(arrays[name])))
        for param in pinned:
            param.set_data(self.nd.zeros(param.shape, ctx=self.ctx))
            param.grad_req = "null"

    def model_workload(self, model: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """Any catalog model in Gluon (see _node for each kind), loaded with the catalog's parameters; one step:
        forward and the mean softmax cross-entropy under autograd.record(), backward, gluon.Trainer's SGD at the
        catalog's learning rate. Compiled: the model with its loss as one hybridized block (one CachedOp, traced
        once, which runs forward and its backward); the Trainer's update stays imperative."""
        self._require_precision(precision)
        compiled = mode == "compiled"
        peak = self._memory_peak()
        net, maps, pinned = self._catalog_net(model)
        self._load_catalog(net, maps, pinned, arrays)
        trainable = {p.name: p for p in net.collect_params().values() if p.grad_req != "null"}
        trainer = self.gluon.Trainer(trainable, "sgd", {"learning_rate": LEARNING_RATE, "momentum": 0.0, "wd": 0.0})
        if compiled:
            net.hybridize(static_alloc=True, static_shape=True)
        x, labels = self.A(arrays["x"]), self.A(arrays["labels"])

        def train_step() -> Any:
            with self.autograd.record():  # train mode: BatchNorm on batch statistics
                loss = net(x, labels)
            loss.backward()  # grad_req 'write': every step's gradients replace the last (no zeroing needed)
            trainer.step(1)  # the loss is already the mean: no further rescaling
            return loss

        def observe(loss: Any) -> dict[str, Any]:
            return {"loss": float(loss.asscalar()), **{name: to_cat(self._data(param)) for name, param, _, to_cat in maps}}

        notes = ["catalog layouts mapped: Dense weights (out, in) transposed; recurrent weights (gates*H, in) "
                 f"transposed with gate orders {MXNET_LSTM} (LSTM) and {MXNET_GRU} (GRU), MXNet's fused RNN layout; "
                 "token ids as float32",
                 "self_attention composed from 4 gluon.nn.Dense and reshape/transpose/batch_dot/softmax (Gluon 1.9 has "
                 "no attention layer); positional as a HybridBlock with one (T, D) parameter"]
        if pinned:
            notes.append("gluon.rnn.LSTM always has two bias vectors: both fixed at 0 and frozen (grad_req='null'), "
                         "so the trainable parameters are the catalog's")
        if compiled:
            notes.append("the model and its softmax cross-entropy are one hybridized block (one CachedOp: forward and "
                         "its backward); gluon.Trainer's SGD update runs imperatively after it (Gluon 1.x puts no "
                         "optimizer update into a CachedOp)")
        if self.device != "cpu":
            notes.append("peak memory: device memory in use (mx.context.gpu_memory_info) after the steps minus its "
                         "value when the workload was built with MXNet's pool emptied (MXNet 1.9 has no peak counter; "
                         "its pool keeps what it allocated)")
        count = sum(int(np.prod(p.shape)) for p in trainable.values())
        return Workload(train_step, self._sync, count, STATIC_HYBRIDIZE if compiled else None, notes, observe=observe,
                        compile_scope="forward_backward" if compiled else None,
                        traces=(lambda: net.traces) if compiled else (lambda: None), peak_memory=peak, precision=precision)

    # ------------------------------------------------------------------------------------------ numerics
    def array_api(self) -> ArrayAPI:
        mnp = self._api("mxnet.np")  # MXNet's NumPy-compatible interface
        self.mx.npx.set_np()  # mx.np arrays need NumPy semantics switched on (process-wide, in this worker only)
        if self.device != "cpu":  # mx.np's constructors place arrays on the current default context: make it ours
            self.ctx.__enter__()  # (the `with mx.gpu(i):` scope, held for the rest of this worker)
        return ArrayAPI("mxnet.np", mnp, lambda a: mnp.array(a, ctx=self.ctx), lambda t: t.asnumpy(),
                        getattr(self.mx.nd, "from_dlpack", None))

    # ------------------------------------------------------------------------------------------ scale
    def allreduce(self, rank: int, world: int, host: str, port: int, value: Array) -> AllReduceResult:
        """MXNet's own multi-machine API is the distributed kvstore on ps-lite: rank 0 starts the scheduler (on
        host:port) and one server as helper processes, every worker pushes its array and pulls the servers' sum.

        ps-lite reads the DMLC_* variables when the kvstore is created (not when mxnet is imported), so setting them
        here, after the adapter has imported mxnet, is enough."""
        ps = {"DMLC_PS_ROOT_URI": host, "DMLC_PS_ROOT_PORT": str(port), "DMLC_NODE_HOST": host,
              "DMLC_NUM_SERVER": "1", "DMLC_NUM_WORKER": str(world)}
        helpers: list[subprocess.Popen[bytes]] = []
        if rank == 0:
            for role in ("scheduler", "server"):
                helpers.append(subprocess.Popen([sys.executable, "-c", PS_HELPER], env={**os.environ, **ps, "DMLC_ROLE": role,
                                                                                      **self._library_path()}))
        os.environ.update(ps, DMLC_ROLE="worker")
        try:
            kv = self.mx.kv.create("dist_sync")
            key, n = 0, value.shape
            kv.init(key, self.nd.zeros(n, ctx=self.ctx))  # only kvstore rank 0 sends it; the others wait at a barrier
            kv.push(key, self.A(value))  # dist_sync: the server sums one push from every worker
            out = self.nd.zeros(n, ctx=self.ctx)
            kv.pull(key, out=out)
            result = self.N(out)
            notes = [f"ps-lite scheduler on {host}:{port} and 1 server started by rank 0 as subprocesses; "
                     f"the kvstore numbered this worker {kv.rank} of {kv.num_workers} (ps-lite orders workers by "
                     f"arrival, not by the caller's rank); this rank's arrays on {self.ctx}"]
            if self.device != "cpu":
                notes.append("on GPUs the dist kvstore still sums through ps-lite over TCP (MXNet 1.9's kvstore 'nccl' "
                             "is single-process, multi-GPU), staging each GPU array in pinned host memory that its "
                             "kvstore allocates as Context::CPUPinned(0) (src/kvstore/comm.h): that allocation makes GPU 0 "
                             "current, so a rank on another GPU also opens a CUDA context on GPU 0 (no data computed there)")
            del kv, out
            gc.collect()  # freeing the kvstore finalizes ps-lite (a barrier over all nodes); the helpers then exit
            return AllReduceResult("mxnet.kvstore.create('dist_sync') init/push/pull (ps-lite)", True, result, notes)
        finally:
            for helper in helpers:  # after a clean finalize they have exited or are about to; otherwise end them
                try:
                    helper.wait(timeout=30 if sys.exc_info()[0] is None else 0.1)
                except subprocess.TimeoutExpired:
                    helper.kill()
                    helper.wait()

    @staticmethod
    def _library_path() -> dict[str, str]:
        """LD_LIBRARY_PATH for a helper process that imports mxnet: the nvidia-*-cu11 library folders first (empty
        in the CPU environment, where nothing changes)."""
        dirs = nvidia_library_dirs()
        if not dirs:
            return {}
        return {"LD_LIBRARY_PATH": os.pathsep.join([*dirs, *filter(None, [os.environ.get("LD_LIBRARY_PATH", "")])])}

    # ------------------------------------------------------------------------------------------ onnx
    def _onnx_block(self, model: Any) -> Any:
        nn = self.gluon.nn
        if model.catalog is not None:  # the catalog model from the same Gluon blocks as its training workloads;
            # called outside autograd.record() (inference mode): BatchNorm normalises with its running statistics,
            # a fresh block's mean 0 and variance 1
            net, maps, pinned = self._catalog_net(model.model(), with_loss=False)
            self._load_catalog(net, maps, pinned, model.weights())
            return net
        w = model.weights()
        net = nn.HybridSequential()
        if model.id == "mlp":
            net.add(nn.Dense(32, in_units=16, activation="relu"), nn.Dense(10, in_units=32))
            self._init(net)
            self._set(net[0], weight=w["w1"].T, bias=w["b1"])
            self._set(net[1], weight=w["w2"].T, bias=w["b2"])
            return net
        if model.id == "cnn":
            net.add(nn.Conv2D(4, 3, padding=1, in_channels=3, activation="relu"), nn.MaxPool2D(2), nn.Flatten(),
                    nn.Dense(10, in_units=64))
            self._init(net)
            self._set(net[0], weight=w["conv_w"], bias=w["conv_b"])
            self._set(net[3], weight=w["fc_w"].T, bias=w["fc_b"])
            return net
        raise KeyError(model.id)

    def onnx_export(self, model: Any, path: str, opset: int | None) -> ExportResult:
        export_model = self._api("mxnet.onnx.export_model")
        import onnx
        from onnx.defs import onnx_opset_version

        written = onnx_opset_version()  # what export_model stamps when it is given no opset
        chosen: dict[str, Any] = {}
        if opset is not None and opset != written:
            require_parameter(export_model, "opset_version", "mxnet.onnx.export_model")
            chosen, written = {"opset_version": opset}, opset
        net = self._onnx_block(model)
        net.hybridize()
        x = model.sample_input()
        expected = self.N(net(self.A(x)))  # token ids as float32 (MXNet's index convention), as in training
        with tempfile.TemporaryDirectory() as tmp:
            prefix = os.path.join(tmp, model.id)
            net.export(prefix)  # symbol JSON + parameters, the exporter's input
            export_model(f"{prefix}-symbol.json", f"{prefix}-0000.params", [x.shape], [x.dtype.type], path, **chosen)
        notes = [f"export_model has no opset argument: it stamps opset {written} (the installed onnx's newest)"]
        if model.catalog is not None:
            notes.append("catalog model: the training workload's Gluon blocks (without the loss) called outside "
                         "autograd.record(), so BatchNorm uses its running statistics (a fresh block's mean 0, var 1)")
        if x.dtype != np.float32:
            notes.append(f"input declared to export_model as {x.dtype} (in_types)")
        registry = getattr(getattr(self.mx.onnx.mx2onnx, "_export_onnx", None), "MXNetGraph", None)
        if registry is not None and getattr(registry, "registry_", None):
            notes[0] += f"; its operator translations are registered for opsets {sorted(registry.registry_)}"
        graph = onnx.load(path).graph
        doubled = {i.name for i in graph.input} & {t.name for t in graph.initializer}
        if doubled:
            notes.append(f"the exporter lists {len(doubled)} weights as graph inputs as well as initializers")
        return ExportResult("mxnet.onnx.export_model", self.mx.__version__, written, expected, notes)

    def onnx_import(self, path: str) -> ImportResult:
        import_model = self._api("mxnet.contrib.onnx.import_model")
        import onnx
        from onnx import helper

        proto = onnx.load(path)
        initializers = {init.name for init in proto.graph.initializer}
        listed = {i.name for i in proto.graph.input}
        missing = [init for init in proto.graph.initializer if init.name not in listed]
        for init in missing:  # MXNet's importer looks every initializer up among the graph inputs
            proto.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
        # written to a folder of its own (the model's folder may be shared, e.g. the conformance case cache)
        scratch = tempfile.mkdtemp(prefix="mxnet-onnx-")
        try:
            rewritten = os.path.join(scratch, "model.onnx")
            onnx.save(proto, rewritten)
            sym, arg_params, aux_params = import_model(rewritten)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        data_names = [n for n in sym.list_inputs() if n not in arg_params and n not in aux_params]
        block = self.gluon.SymbolBlock(sym, [self.mx.sym.var(n) for n in data_names])
        block.collect_params().load_dict({**arg_params, **aux_params}, ctx=self.ctx)

        def run(x: Array) -> Array:
            return self.N(block(self.A(x)))

        # every graph input, in the model's order, bound by name with its own dtype (A() would make it float32)
        order = [i.name for i in proto.graph.input if i.name in data_names]
        bind = require(sym, "bind", "mxnet.symbol.Symbol")  # how 1.x runs a Symbol (an Executor)

        def run_many(inputs: list[Any]) -> list[Any]:
            feeds = dict(zip([i.name for i in proto.graph.input if i.name not in initializers], inputs))
            for name in order:
                if feeds.get(name) is None or isinstance(feeds[name], list):
                    raise TypeError(f"input {name!r}: MXNet's importer takes arrays only (here "
                                    f"{'an omitted optional' if feeds.get(name) is None else 'a sequence'})")
            given = {n: self.nd.array(np.asarray(feeds[n]), ctx=self.ctx, dtype=np.asarray(feeds[n]).dtype) for n in order}
            aux = set(sym.list_auxiliary_states())  # e.g. BatchNormalization's mean and variance fed as graph inputs
            exe = bind(self.ctx, args={**{n: v for n, v in given.items() if n not in aux}, **arg_params},
                       aux_states={**{n: v for n, v in given.items() if n in aux}, **aux_params}, grad_req="null")
            return [self.N(o) for o in exe.forward(is_train=False)]

        notes = [f"rewritten before import: {len(missing)} initializers also listed as graph inputs "
                 "(mxnet.contrib.onnx.import_model raises KeyError on initializers that are not inputs)",
                 "run through gluon.SymbolBlock with the imported parameters"] if missing else ["run through gluon.SymbolBlock"]
        # MXNet's importer names no highest opset: import_model passes the model's own opset to GraphProto.from_onnx,
        # whose op translations branch on it, and nothing refuses a newer one
        graph_proto = self._api("mxnet.contrib.onnx.onnx2mx.import_onnx.GraphProto")
        why = (f"the importer does not say: {graph_proto.__module__}.GraphProto.from_onnx takes the model's own opset "
               "(import_model passes max(opset_import)) and has no highest one to refuse a newer model; every case is counted")
        return ImportResult("mxnet.contrib.onnx.import_model", self.mx.__version__, run, notes, run_many=run_many,
                            max_opset=None, max_opset_evidence=why)
