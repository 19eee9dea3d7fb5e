"""TensorFlow adapter: Keras 3 on the TensorFlow backend (keras.layers, keras.optimizers), tf.nn where Keras has no
layer; eager GradientTape, tf.function and tf.function(jit_compile=True) (XLA); ONNX export through Keras' own
model.export(format="onnx") and import through the onnx2tf converter.

Keras is channels-last: the catalog's channels-first inputs and outputs are transposed explicitly in the graph (so
gradients flow back to the NCHW input) and (O, C, k...) kernels are transposed to Keras' (k..., C, O) at load time.

Devices: "cpu" hides every GPU from TensorFlow; "cuda:N" makes physical GPU N the only visible one (so it is this
process's logical /GPU:0, where everything is placed), with memory growth on every GPU. Precision: strict float32 is
set at start-up (TF32 off, oneDNN's float32 math mode strict, Keras' dtype policy float32); device_info() says so.
"""

from __future__ import annotations

import os

# Before TensorFlow is imported: keep its C++ info/warning chatter out of the probe logs, and put Keras 3 on the
# TensorFlow backend whatever the caller's environment says (this adapter measures Keras on TensorFlow).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"
# GPU memory is taken as it is needed, never preallocated: read by TensorFlow in this process and in every child
# that imports TensorFlow (the onnx2tf converter), so none starves the other processes on the GPU.
os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
# Strict float32 in TensorFlow's oneDNN CPU kernels: TF_SET_ONEDNN_FPMATH_MODE=BF16 would let them compute float32
# ops in bfloat16 (read once, by TensorFlow's MKL utilities), and oneDNN's own default math mode is read from
# ONEDNN_DEFAULT_FPMATH_MODE; both are fixed here, before TensorFlow loads oneDNN.
os.environ.pop("TF_SET_ONEDNN_FPMATH_MODE", None)
os.environ["ONEDNN_DEFAULT_FPMATH_MODE"] = "STRICT"

import functools
import json
import re
import shutil
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
    require,
    require_parameter,
    resolve,
)
from harness.catalog.models import NORM_EPS
from harness.catalog.ops import Case
from harness.probes.conformance import CASES_ENV as CONFORMANCE_CASES_ENV

Array = np.ndarray
CANONICAL_LSTM = "ifgo"  # the catalog's LSTM gate order
# keras.layers.LSTM's cell splits kernel, recurrent kernel and bias into the gates i, f, c, o (k_i, k_f, k_c, k_o in
# keras/src/layers/rnn/lstm.py); its "c" is the catalog's candidate g.
KERAS_LSTM = "ifgo"
# keras.layers.GRU's cell splits them into z, r, h (x_z, x_r, x_h in keras/src/layers/rnn/gru.py): update, reset,
# candidate; the catalog's order is r, z, n.
KERAS_GRU = "zrn"
CANONICAL_GRU = "rzn"  # the catalog's GRU gate order
XLA = "tf.function(jit_compile=True)"
GRAPH = "tf.function"
# onnx2tf reads calibration images from this file in its working directory and downloads it when missing.
ONNX2TF_CALIBRATION = "calibration_image_sample_data_20x128x128x3_float32.npy"
# onnx2tf changes process-wide state when imported (TF_USE_LEGACY_KERAS=1, op determinism, a huge recursion limit),
# so it converts in a child process of this environment's Python, one per conversion; in a conformance run (thousands of
# models one after another, harness.probes.conformance) one child is kept for them all, as importing onnx2tf takes
# seconds. The child reads one JSON request per line ([model, output folder, the option that
# keeps inputs in the ONNX layout, input names],
# run in the model's folder) and answers one JSON line: the Keras model's input and output names, in the ONNX graph's
# order (the SavedModel signature's names), or what onnx2tf raised.
# onnx2tf prints to its standard output: the answers go to a duplicate of it, and the output itself to /dev/null.
ONNX2TF_SERVER = """
import json, os, sys
answer = os.fdopen(os.dup(1), "w")
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
import onnx2tf
answer.write(json.dumps({"ready": True}) + "\\n"); answer.flush()
for line in sys.stdin:
    source, out, option, keep = json.loads(line)
    os.chdir(os.path.dirname(source))
    try:
        model = onnx2tf.convert(input_onnx_file_path=source, output_folder_path=out, non_verbose=True,
                                not_use_onnxsim=True, **{option: keep or None})
        said = {"inputs": list(model.input_names), "outputs": list(model.output_names)}
    except BaseException as exc:  # SystemExit too: onnx2tf exits on some models
        said = {"error": f"onnx2tf.convert raised {type(exc).__name__}: {exc}".strip()}
    answer.write(json.dumps(said) + "\\n"); answer.flush()
"""
ONNX2TF_TIMEOUT_S = 240.0
# how the imported model takes its inputs in the ONNX layout: keep_shape_absolutely_input_names (every input, its
# shape kept as it is), or keep_ncw_or_nchw_or_ncdhw_input_names (its 3-5-D inputs, read as NCW/NCHW/NCDHW). Over
# onnx 1.18.0's node tests the first passes 516 cases, the second 461 (62 pass with the first only, mostly
# elementwise operators on 3-5-D tensors; 7 with the second only: DepthToSpace, SpaceToDepth, Upsample, RoiAlign)
ONNX2TF_KEEP_INPUTS = "keep_shape_absolutely_input_names"
ONNX2TF_RESTART_AFTER = 200  # conversions per child: a fresh child now and then keeps TensorFlow's memory in check



def cuda_index(device: str) -> int | None:
    """The GPU index of a device string: 'cuda:N' -> N, 'cuda' -> 0, anything else (the CPU) -> None."""
    if device == "cuda":
        return 0
    if device.startswith("cuda:"):
        index = device.split(":", 1)[1]
        if not index.isdigit():
            raise ValueError(f"device {device!r}: the GPU index must be a number")
        return int(index)
    return None


def to_keras_kernel(w: Array) -> Array:
    """(O, C, k1..kn) channels-first kernel -> Keras' (k1..kn, C, O)."""
    nd = w.ndim - 2
    return np.ascontiguousarray(w.transpose(*range(2, 2 + nd), 1, 0))


def from_keras_kernel(k: Array) -> Array:
    """Keras' (k1..kn, C, O) kernel (or its gradient) -> the catalog's (O, C, k1..kn)."""
    nd = k.ndim - 2
    return np.ascontiguousarray(k.transpose(nd + 1, nd, *range(nd)))


def fc_rows_chw_to_hwc(w: Array, c: int, h: int, wd: int) -> Array:
    """Rows of a dense kernel that follows a (C, H, W) flatten, reordered for Keras' (H, W, C) flatten."""
    out = w.shape[1]
    return np.ascontiguousarray(w.reshape(c, h, wd, out).transpose(1, 2, 0, 3).reshape(c * h * wd, out))


def same_padding_matches(pad: int, kernel: Sequence[int], dilation: int, stride: int, size: Sequence[int]) -> bool:
    """Whether Keras/TensorFlow padding='same' pads exactly `pad` cells on both sides of every spatial axis of this
    input: TensorFlow's SAME gives ceil(n / stride) outputs and pads max((out - 1) * stride + dilation * (k - 1) + 1
    - n, 0) cells in all, the smaller half before."""
    for k, n in zip(kernel, size):
        out = -(-n // stride)
        total = max((out - 1) * stride + dilation * (k - 1) + 1 - n, 0)
        if total // 2 != pad or total - total // 2 != pad:
            return False
    return True


#: a trainable array of the case, as the framework holds it: the variable (or watched tensor) and the function that
#: maps the framework's gradient (a NumPy array in the framework's layout) back to the catalog's layout
Source = tuple[Any, Callable[[Array], Array] | None]


class TensorflowAdapter(Adapter):
    name = "tensorflow"
    # tf-keras (needed by onnx2tf) depends on `tensorflow` by name, so the CPU environment carries the full
    # `tensorflow` distribution, not `tensorflow-cpu` (see requirements-cpu.txt).
    distribution = "tensorflow"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        import tensorflow as tf

        self.tf = tf
        self._device_problem = ""
        try:
            self.gpu_index = cuda_index(device)
        except ValueError as exc:
            self.gpu_index, self._device_problem = None, str(exc)
        if self.gpu_index is None and device != "cpu" and not self._device_problem:
            self._device_problem = f"the tensorflow adapter runs on 'cpu' or 'cuda[:N]', not {device!r}"
        # Before anything allocates on a GPU (these settings are refused once TensorFlow's runtime has started):
        # memory growth on every GPU, then only the GPU in use made visible (none for the CPU).
        self._gpus = tf.config.list_physical_devices("GPU")
        try:
            for gpu in self._gpus:
                tf.config.experimental.set_memory_growth(gpu, True)
            if self.gpu_index is None:
                if self._gpus:
                    tf.config.set_visible_devices([], "GPU")  # a CPU run stays on the CPU even where a GPU is visible
            elif self.gpu_index < len(self._gpus):
                tf.config.set_visible_devices([self._gpus[self.gpu_index]], "GPU")
        except RuntimeError as exc:
            self._device_problem = f"TensorFlow's GPU settings could not be made ({exc})"
        # Strict float32: no TF32 in cuBLAS/cuDNN kernels, and XLA lowers float32 dots and convolutions at precision
        # HIGHEST while this is off
        tf.config.experimental.enable_tensor_float_32_execution(False)
        import keras

        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(f"Keras runs on the {keras.backend.backend()!r} backend, not tensorflow "
                               "(was keras imported before this adapter?)")
        keras.config.set_dtype_policy("float32")  # float32 variables and compute, unless a workload asks for bf16
        self.keras = keras
        keras.utils.set_random_seed(0)

    # ------------------------------------------------------------------------------------------ identity
    def versions(self) -> dict[str, str]:
        return distribution_versions("tensorflow", "tensorflow-cpu", "keras", "tf-keras", "numpy", "protobuf", "onnx",
                                     "onnxruntime", "tf2onnx", "onnx2tf", "onnx-graphsurgeon", "ai-edge-litert")

    def device_available(self) -> tuple[bool, str]:
        if self._device_problem:
            return False, self._device_problem
        if self.gpu_index is None:
            return True, ""
        if self.gpu_index >= len(self._gpus):
            return False, (f"tensorflow {self.tf.__version__} sees {len(self._gpus)} GPU(s) "
                           f"(tf.config.list_physical_devices('GPU')): no {self.device}")
        logical = self.tf.config.list_logical_devices("GPU")
        if len(logical) != 1:
            return False, f"{self.device}: expected the one visible GPU, TensorFlow lists {[d.name for d in logical]}"
        return True, ""

    def gpu_count(self) -> int:
        """The GPUs TensorFlow sees (physical devices: hiding all but the one in use does not change this)."""
        return len(self._gpus)

    def _logical_device(self) -> str:
        """The device everything runs on: physical GPU N is this process's only visible GPU, so its logical
        device is GPU:0; the CPU otherwise."""
        return "/CPU:0" if self.gpu_index is None else "GPU:0"

    def precision_switches(self) -> dict[str, Any]:
        """The switches that make float32 strict, as they are now."""
        tf = self.tf
        return {
            "tf.config.experimental.enable_tensor_float_32_execution": tf.config.experimental.tensor_float_32_execution_enabled(),
            "TF_SET_ONEDNN_FPMATH_MODE": os.environ.get("TF_SET_ONEDNN_FPMATH_MODE", "unset"),
            "ONEDNN_DEFAULT_FPMATH_MODE": os.environ.get("ONEDNN_DEFAULT_FPMATH_MODE", "unset"),
            "keras.config.dtype_policy": self.keras.config.dtype_policy().name,
        }

    def device_info(self) -> dict[str, Any]:
        tf = self.tf
        build = dict(tf.sysconfig.get_build_info())
        info: dict[str, Any] = {
            "device": self.device,
            "keras_backend": self.keras.backend.backend(),
            "image_data_format": self.keras.config.image_data_format(),
            "built_with_cuda": bool(build.get("is_cuda_build", False)),
            "cuda_build": build.get("cuda_version"),
            "cudnn_build": build.get("cudnn_version"),
            "gpus_seen": len(self._gpus),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "precision": self.precision_switches(),
            "precision_notes": [
                "TF32 off: cuBLAS/cuDNN float32 kernels compute in float32, and XLA lowers float32 dots and "
                "convolutions at PrecisionConfig HIGHEST (it reads the same switch when it compiles)",
                "TF_SET_ONEDNN_FPMATH_MODE unset (only 'BF16' would let oneDNN CPU kernels compute float32 in "
                "bfloat16) and ONEDNN_DEFAULT_FPMATH_MODE=STRICT, both fixed before TensorFlow is imported",
                "TensorFlow has no separate switch for reduced-precision reductions of float32: its cuBLAS float32 "
                "GEMMs compute in float32 with TF32 off, bfloat16 GEMMs always accumulate in float32",
            ],
        }
        if self.gpu_index is not None and self.gpu_index < len(self._gpus) and not self._device_problem:
            gpu = self._gpus[self.gpu_index]
            details = tf.config.experimental.get_device_details(gpu)
            memory = tf.config.experimental.get_memory_info(self._logical_device())
            info.update(
                name=details.get("device_name"), compute_capability=details.get("compute_capability"),
                physical_device=gpu.name, logical_device=self._logical_device(),
                visible_gpus=[d.name for d in tf.config.get_visible_devices("GPU")],
                memory_growth=tf.config.experimental.get_memory_growth(gpu),
                memory_in_use_bytes=memory.get("current"),
                memory_total="not reported by TensorFlow (get_device_details gives the name and compute capability "
                             "only): see the environment's nvidia-smi entry",
            )
        return info

    # ------------------------------------------------------------------------------------------ helpers
    def T(self, a: Array) -> Any:
        return self.tf.constant(np.ascontiguousarray(a))

    @staticmethod
    def N(t: Any) -> Array:
        return np.asarray(t.numpy() if hasattr(t, "numpy") else t)

    def _api(self, dotted: str) -> Any:
        """Resolve 'keras.layers.Conv3D' or 'tf.nn.ctc_loss' at run time; a missing name raises Unsupported."""
        parts = dotted.split(".")
        roots = {"tf": self.tf, "keras": self.keras}
        if parts[0] not in roots:
            raise ValueError(f"unknown API root in {dotted!r}")
        return resolve(roots[parts[0]], dotted)

    @staticmethod
    def _load(layer: Any, **values: Array) -> Any:
        """Copy catalog arrays (already in Keras' layout) into a built layer's variables, matched by the end of
        their paths ('kernel' matches 'dense/kernel', 'query/kernel' matches 'multi_head_attention/query/kernel').
        Every variable of the layer must be set: none is left at its random initial value."""
        variables = list(layer.weights)
        assigned: set[int] = set()
        for key, value in values.items():
            hits = [i for i, v in enumerate(variables) if v.path == key or v.path.endswith("/" + key)]
            if len(hits) != 1:
                raise KeyError(f"{key!r} matches {len(hits)} of {[v.path for v in variables]}")
            var = variables[hits[0]]
            arr = np.asarray(value, np.float32)
            if tuple(var.shape) != arr.shape:
                raise ValueError(f"{var.path}: shape {tuple(var.shape)}, catalog gives {arr.shape}")
            var.assign(arr)
            assigned.add(hits[0])
        missing = [v.path for i, v in enumerate(variables) if i not in assigned]
        if missing:
            raise KeyError(f"variables not set from the case: {missing}")
        return layer

    def _first_to_last(self, t: Any) -> Any:
        """(N, C, *spatial) -> (N, *spatial, C)."""
        n = len(t.shape)
        return self.tf.transpose(t, [0, *range(2, n), 1])

    def _last_to_first(self, t: Any) -> Any:
        """(N, *spatial, C) -> (N, C, *spatial)."""
        n = len(t.shape)
        return self.tf.transpose(t, [0, n - 1, *range(1, n - 1)])

    @staticmethod
    def _var(owner: Any, key: str) -> Any:
        """The one variable of layer `owner` whose path is `key` or ends with '/' + key."""
        hits = [v for v in owner.weights if v.path == key or v.path.endswith("/" + key)]
        if len(hits) != 1:
            raise KeyError(f"{key!r} matches {len(hits)} of {[v.path for v in owner.weights]}")
        return hits[0]

    def _params(self, owner: Any, **spec: tuple[str, Callable[[Array], Array] | None]) -> dict[str, Source]:
        """Catalog parameter name -> (the layer's variable, map of its gradient back to the catalog's layout), from
        name=(variable path suffix, back-map or None for the same layout)."""
        return {name: (self._var(owner, key), back) for name, (key, back) in spec.items()}

    def _result(self, case: Case, tape: Any, outputs: dict[str, Any], sources: dict[str, Source],
                layer: Any = None) -> dict[str, Any]:
        """Outputs as NumPy, and under "grads" the vector-Jacobian product of the outputs with the case's cotangents
        w.r.t. every array of `case.wrt`, each mapped back to the catalog's layout. `sources` names, for every such
        array, the tensor or variable the framework differentiated; every trainable variable of `layer` must be one
        of them (a parameter the catalog has and the gradient leaves out would go unchecked)."""
        out: dict[str, Any] = {k: self.N(v) for k, v in outputs.items()}
        if case.grad_wrt is None:
            return out
        missing = [n for n in case.wrt if n not in sources]
        if missing:
            raise KeyError(f"no framework array for the catalog's {missing}")
        if layer is not None:
            mapped = {id(src) for src, _ in sources.values()}
            loose = [v.path for v in layer.trainable_variables if id(v) not in mapped]
            if loose:
                raise KeyError(f"trainable variables with no catalog parameter: {loose}")
        names = list(case.cotangents)
        tf = self.tf
        grads = tape.gradient([outputs[k] for k in names], [sources[n][0] for n in case.wrt],
                              output_gradients=[self.T(case.cotangents[k]) for k in names],
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        out["grads"] = {}
        for name, g in zip(case.wrt, grads):
            arr = self.N(tf.convert_to_tensor(g))  # an Embedding's gradient comes as IndexedSlices
            back = sources[name][1]
            out["grads"][name] = back(arr) if back is not None else arr
        return out

    def _layer_op(self, api: str, build: Callable[[Case], tuple[Any, dict[str, Source]]],
                  forward: Callable[[Any, Any, Case], dict[str, Any]], note: str = "") -> OpImpl:
        """An op that is one layer applied to the case's grad_wrt input. build(case) -> (layer or None, the
        catalog's trainable parameters as the layer's variables); APIs are resolved by the caller."""

        def run(case: Case) -> dict[str, Any]:
            layer, params = build(case)
            x = self.T(case.arrays[case.grad_wrt or "x"])
            with self.tf.GradientTape() as tape:
                tape.watch(x)
                outputs = forward(layer, x, case)
            return self._result(case, tape, outputs, {case.grad_wrt or "x": (x, None), **params}, layer)

        return OpImpl("native", api, run, note=note)

    @staticmethod
    def _nhwc(shape: Sequence[int]) -> tuple[int, ...]:
        """(N, C, *spatial) -> (N, *spatial, C)."""
        return (shape[0], *shape[2:], shape[1])

    def _channels_last(self, layer: Any, x: Any) -> Any:
        """Apply a channels-last Keras layer to a channels-first tensor, returning channels-first."""
        return self._last_to_first(layer(self._first_to_last(x)))

    @staticmethod
    def _padding(pad: int, kernel: Sequence[int], dilation: int, stride: int, size: Sequence[int]) -> str | None:
        """Keras convolutions and pools take 'valid' or 'same', not a number: 'valid' for no padding, 'same' where it
        pads exactly `pad` cells on each side of this input, else None (no Keras padding mode matches)."""
        if pad == 0:
            return "valid"
        if same_padding_matches(pad, kernel, dilation, stride, size):
            return "same"
        return None

    def _numeric_padding(self, api: str, make: Callable[..., Any], pad: int, shape: Sequence[int], why: str) -> Exception:
        """The evidence that a Keras layer takes no numeric padding: built with padding=<pad> and called on a
        channels-last input of `shape`, it raises (Keras checks the padding only when the layer runs)."""
        try:
            make(padding=pad)(np.zeros(shape, np.float32))
        except Exception as exc:  # whatever the layer raises is the evidence
            said = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines() if line.strip())
            return Unsupported(f"{api}(padding={pad}) raises {type(exc).__name__} ({said[:200]}); {why}",
                               looked_up=[f"{api}(padding={pad})"])
        return NotMapped(f"{api} runs with padding={pad}; the adapter does not map numeric padding for it")

    # ------------------------------------------------------------------------------------------ layers
    def op_dense(self) -> OpImpl:
        Dense = self._api("keras.layers.Dense")

        def build(c: Case) -> tuple[Any, dict[str, Source]]:
            w = c.arrays["w"]
            layer = Dense(w.shape[1])
            layer.build((None, w.shape[0]))
            self._load(layer, kernel=w, bias=c.arrays["b"])  # Keras' Dense kernel is (in, out), as the catalog
            return layer, self._params(layer, w=("kernel", None), b=("bias", None))

        return self._layer_op("keras.layers.Dense", build, lambda m, x, c: {"y": m(x)})

    def _conv(self, nd: int) -> OpImpl:
        api = f"keras.layers.Conv{nd}D"
        Conv = self._api(api)
        ZeroPad = self._api(f"keras.layers.ZeroPadding{nd}D")
        Sequential = self._api("keras.Sequential")

        def build(c: Case) -> tuple[Any, dict[str, Source]]:
            w, cfg = c.arrays["w"], c.config
            kernel, spatial = w.shape[2:], c.arrays["x"].shape[2:]
            padding = self._padding(cfg["padding"], kernel, cfg["dilation"], cfg["stride"], spatial)
            conv = Conv(w.shape[0], kernel, strides=cfg["stride"], padding=padding or "valid", dilation_rate=cfg["dilation"])
            layers = [conv] if padding else [ZeroPad(cfg["padding"]), conv]
            conv.build((None, *[s + (0 if padding else 2 * cfg["padding"]) for s in spatial], w.shape[1]))
            self._load(conv, kernel=to_keras_kernel(w), bias=c.arrays["b"])
            return Sequential(layers), self._params(conv, w=("kernel", from_keras_kernel), b=("bias", None))

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            return {"y": self._channels_last(m, x)}

        return self._layer_op(api, build, forward,
                              note="channels-last transposes; kernel (O,C,k..) -> (k..,C,O) and its gradient back; numeric "
                                   "padding as padding='same' where that pads exactly as much on each side, else "
                                   "ZeroPadding then 'valid'")

    def op_conv1d(self) -> OpImpl:
        return self._conv(1)

    def op_conv2d(self) -> OpImpl:
        return self._conv(2)

    def op_conv3d(self) -> OpImpl:
        return self._conv(3)

    def op_conv_transpose2d(self) -> OpImpl:
        ConvT = self._api("keras.layers.Conv2DTranspose")
        Crop = self._api("keras.layers.Cropping2D")
        Sequential = self._api("keras.Sequential")

        def build(c: Case) -> tuple[Any, dict[str, Source]]:
            w, cfg = c.arrays["w"], c.config  # w: (C_in, C_out, kH, kW)
            layer = ConvT(w.shape[1], w.shape[2:], strides=cfg["stride"], padding="valid")
            layer.build((None, *c.arrays["x"].shape[2:], w.shape[0]))
            # Keras' Conv2DTranspose kernel is (kH, kW, out, in): (C_in, C_out, kH, kW) -> (kH, kW, C_out, C_in)
            self._load(layer, kernel=np.ascontiguousarray(w.transpose(2, 3, 1, 0)), bias=c.arrays["b"])
            params = self._params(layer, w=("kernel", lambda g: np.ascontiguousarray(g.transpose(3, 2, 0, 1))), b=("bias", None))
            # 'valid' gives the full (H - 1) * stride + k output; the catalog's padding crops it on each side
            return (Sequential([layer, Crop(cfg["padding"])]) if cfg["padding"] else layer), params

        return self._layer_op("keras.layers.Conv2DTranspose", build, lambda m, x, c: {"y": self._channels_last(m, x)},
                              note="kernel (C_in,C_out,kH,kW) -> Keras (kH,kW,C_out,C_in) and its gradient back; padding='valid'")

    def op_separable_conv2d(self) -> OpImpl:
        Sep = self._api("keras.layers.SeparableConv2D")
        ZeroPad = self._api("keras.layers.ZeroPadding2D")
        Sequential = self._api("keras.Sequential")

        def build(c: Case) -> tuple[Any, dict[str, Source]]:
            dw, pw, cfg = c.arrays["w_depthwise"], c.arrays["w_pointwise"], c.config
            spatial = c.arrays["x"].shape[2:]
            padding = self._padding(cfg["padding"], dw.shape[2:], 1, cfg["stride"], spatial)
            layer = Sep(pw.shape[0], dw.shape[2:], strides=cfg["stride"], padding=padding or "valid", depth_multiplier=1)
            layer.build((None, *[s + (0 if padding else 2 * cfg["padding"]) for s in spatial], dw.shape[0]))
            # depthwise (C, 1, kH, kW) <-> Keras (kH, kW, C, depth_multiplier); pointwise (O, C, 1, 1) <-> (1, 1, C, O)
            self._load(layer, depthwise_kernel=np.ascontiguousarray(dw.transpose(2, 3, 0, 1)),
                       pointwise_kernel=to_keras_kernel(pw), bias=c.arrays["b"])
            params = self._params(layer, w_depthwise=("depthwise_kernel", lambda g: np.ascontiguousarray(g.transpose(2, 3, 0, 1))),
                                  w_pointwise=("pointwise_kernel", from_keras_kernel), b=("bias", None))
            return (layer if padding else Sequential([ZeroPad(cfg["padding"]), layer])), params

        return self._layer_op("keras.layers.SeparableConv2D", build, lambda m, x, c: {"y": self._channels_last(m, x)},
                              note="native depthwise-separable layer; numeric padding as padding='same' where that pads "
                                   "exactly as much on each side, else ZeroPadding then 'valid'")

    def op_max_pool2d(self) -> OpImpl:
        api = "keras.layers.MaxPooling2D"
        Pool = self._api(api)

        def build(c: Case) -> tuple[Any, dict[str, Source]]:
            cfg = c.config
            kernel, stride, pad = cfg["kernel"], cfg["stride"], cfg.get("padding", 0)
            padding = self._padding(pad, (kernel,) * 2, 1, stride, c.arrays["x"].shape[2:])
            if padding is None:  # zeros would win over negative inputs: only 'same' (which never picks a pad) will do
                raise self._numeric_padding(api, lambda **kw: Pool(kernel, stride, **kw), pad, self._nhwc(c.arrays["x"].shape),
                                            "and padding='same' does not pad this input by that much on each side")
            return Pool(kernel, stride, padding=padding), {}

        return self._layer_op(api, build, lambda m, x, c: {"y": self._channels_last(m, x)},
                              note="numeric padding as padding='same' where that pads exactly as much on each side "
                                   "(TensorFlow's SAME max pooling never picks a padded cell)")

    def op_avg_pool2d(self) -> OpImpl:
        api = "keras.layers.AveragePooling2D"
        Pool = self._api(api)

        def build(c: Case) -> tuple[Any, dict[str, Source]]:
            cfg = c.config
            padding = self._padding(cfg["padding"], (cfg["kernel"],) * 2, 1, cfg["stride"], c.arrays["x"].shape[2:])
            if padding is None:
                raise self._numeric_padding(api, lambda **kw: Pool(cfg["kernel"], cfg["stride"], **kw), cfg["padding"],
                                            self._nhwc(c.arrays["x"].shape),
                                            "and padding='same' does not pad this input by that much on each side")
            return Pool(cfg["kernel"], cfg["stride"], padding=padding), {}

        return self._layer_op(api, build, lambda m, x, c: {"y": self._channels_last(m, x)},
                              note="padding 1 as padding='same' (kernel 3, stride 1)")

    def op_global_avg_pool2d(self) -> OpImpl:
        Pool = self._api("keras.layers.GlobalAveragePooling2D")
        return self._layer_op("keras.layers.GlobalAveragePooling2D", lambda c: (Pool(), {}),
                              lambda m, x, c: {"y": m(self._first_to_last(x))})

    def op_upsample_nearest2d(self) -> OpImpl:
        Up = self._api("keras.layers.UpSampling2D")
        return self._layer_op("keras.layers.UpSampling2D(interpolation='nearest')",
                              lambda c: (Up(size=c.config["scale"], interpolation="nearest"), {}),
                              lambda m, x, c: {"y": self._channels_last(m, x)})

    def op_batch_norm(self) -> OpImpl:
        BN = self._api("keras.layers.BatchNormalization")

        def build(c: Case) -> tuple[Any, dict[str, Source]]:
            a = c.arrays
            layer = BN(axis=1, epsilon=c.config["eps"])  # the catalog's channel axis, given to Keras directly
            layer.build(a["x"].shape)
            self._load(layer, gamma=a["gamma"], beta=a["beta"], moving_mean=a["running_mean"], moving_variance=a["running_var"])
            return layer, self._params(layer, gamma=("gamma", None), beta=("beta", None))

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            y_eval = m(x, training=False)  # before the training call updates the moving statistics
            return {"y_train": m(x, training=True), "y_eval": y_eval}

        return self._layer_op("keras.layers.BatchNormalization", build, forward, note="axis=1")

    def op_layer_norm(self) -> OpImpl:
        LN = self._api("keras.layers.LayerNormalization")

        def build(c: Case) -> tuple[Any, dict[str, Source]]:
            layer = LN(axis=-1, epsilon=c.config["eps"])
            layer.build(c.arrays["x"].shape)
            self._load(layer, gamma=c.arrays["gamma"], beta=c.arrays["beta"])
            return layer, self._params(layer, gamma=("gamma", None), beta=("beta", None))

        return self._layer_op("keras.layers.LayerNormalization", build, lambda m, x, c: {"y": m(x)})

    def op_group_norm(self) -> OpImpl:
        GN = self._api("keras.layers.GroupNormalization")

        def build(c: Case) -> tuple[Any, dict[str, Source]]:
            layer = GN(groups=c.config["groups"], axis=1, epsilon=c.config["eps"])  # channel axis 1, as the catalog
            layer.build(c.arrays["x"].shape)
            self._load(layer, gamma=c.arrays["gamma"], beta=c.arrays["beta"])
            return layer, self._params(layer, gamma=("gamma", None), beta=("beta", None))

        return self._layer_op("keras.layers.GroupNormalization", build, lambda m, x, c: {"y": m(x)}, note="axis=1")

    def op_local_response_norm(self) -> OpImpl:
        lrn = self._api("tf.nn.local_response_normalization")

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            cfg = c.config
            if cfg["size"] % 2 != 1:
                raise Unsupported(f"tf.nn.local_response_normalization sums a symmetric window of 2 * depth_radius + 1 "
                                  f"channels; the catalog's size {cfg['size']} is even",
                                  looked_up=["tf.nn.local_response_normalization(depth_radius=...)"])
            # TF sums over [c - depth_radius, c + depth_radius] and does not divide alpha by the window size:
            # depth_radius = (size - 1) / 2, alpha_tf = alpha / size (the catalog's Caffe convention), bias = k.
            y = lrn(self._first_to_last(x), depth_radius=(cfg["size"] - 1) // 2, bias=cfg["k"],
                    alpha=cfg["alpha"] / cfg["size"], beta=cfg["beta"])
            return {"y": self._last_to_first(y)}

        return self._layer_op("tf.nn.local_response_normalization", lambda c: (None, {}), forward,
                              note="Keras 3 has no LRN layer: TensorFlow's own op; depth_radius=(size-1)/2, alpha/size "
                                   "mapped explicitly; channels-last")

    def op_dropout(self) -> OpImpl:
        Drop = self._api("keras.layers.Dropout")

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            return {"y_train": m(x, training=True), "y_eval": m(x, training=False)}

        return self._layer_op("keras.layers.Dropout", lambda c: (Drop(rate=c.config["p"], seed=0), {}), forward)

    def op_embedding(self) -> OpImpl:
        Emb = self._api("keras.layers.Embedding")

        def run(c: Case) -> dict[str, Any]:
            w, idx = c.arrays["weight"], c.arrays["indices"]
            layer = Emb(*w.shape)
            layer.build(idx.shape)
            self._load(layer, embeddings=w)
            with self.tf.GradientTape() as tape:
                y = layer(self.T(idx))
            return self._result(c, tape, {"y": y}, self._params(layer, weight=("embeddings", None)), layer)

        return OpImpl("native", "keras.layers.Embedding", run, note="gradient w.r.t. the table (IndexedSlices, densified)")

    def op_simple_rnn(self) -> OpImpl:
        RNN = self._api("keras.layers.SimpleRNN")

        def build(c: Case) -> tuple[Any, dict[str, Source]]:
            a = c.arrays
            layer = RNN(c.config["hidden"], activation="tanh", return_sequences=True, return_state=True)
            layer.build(a["x"].shape)
            self._load(layer, kernel=a["wx"], recurrent_kernel=a["wh"], bias=a["b"])
            return layer, self._params(layer, wx=("kernel", None), wh=("recurrent_kernel", None), b=("bias", None))

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            y, h = m(x)
            return {"y": y, "h": h}

        return self._layer_op("keras.layers.SimpleRNN", build, forward, note="one bias, as the catalog")

    def op_lstm(self) -> OpImpl:
        LSTM = self._api("keras.layers.LSTM")

        def build(c: Case) -> tuple[Any, dict[str, Source]]:
            a, order = c.arrays, c.config["gate_order"]
            layer = LSTM(c.config["hidden"], return_sequences=True, return_state=True)
            layer.build(a["x"].shape)
            self._load(layer, kernel=reorder_gates(a["wx"], order, KERAS_LSTM),
                       recurrent_kernel=reorder_gates(a["wh"], order, KERAS_LSTM), bias=reorder_gates(a["b"], order, KERAS_LSTM))

            def back(g: Array) -> Array:
                return reorder_gates(g, KERAS_LSTM, order)

            return layer, self._params(layer, wx=("kernel", back), wh=("recurrent_kernel", back), b=("bias", back))

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            y, h, cell = m(x)
            return {"y": y, "h": h, "c": cell}

        return self._layer_op("keras.layers.LSTM", build, forward, note=f"gate order {KERAS_LSTM} (Keras: i, f, c, o); one bias")

    def op_gru(self) -> OpImpl:
        GRU = self._api("keras.layers.GRU")

        def build(c: Case) -> tuple[Any, dict[str, Source]]:
            a, order = c.arrays, c.config["gate_order"]
            layer = GRU(c.config["hidden"], reset_after=True, return_sequences=True, return_state=True)
            layer.build(a["x"].shape)
            # reset_after=True keeps a (2, 3H) bias: row 0 the input bias, row 1 the recurrent bias
            bias = np.stack([reorder_gates(a["bx"], order, KERAS_GRU), reorder_gates(a["bh"], order, KERAS_GRU)])
            self._load(layer, kernel=reorder_gates(a["wx"], order, KERAS_GRU),
                       recurrent_kernel=reorder_gates(a["wh"], order, KERAS_GRU), bias=bias)

            def back(g: Array) -> Array:
                return reorder_gates(g, KERAS_GRU, order)

            return layer, self._params(layer, wx=("kernel", back), wh=("recurrent_kernel", back),
                                       bx=("bias", lambda g: back(g[0])), bh=("bias", lambda g: back(g[1])))

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            y, h = m(x)
            return {"y": y, "h": h}

        return self._layer_op("keras.layers.GRU", build, forward,
                              note=f"gate order {KERAS_GRU} (Keras: z, r, h); reset_after=True, bias (2, 3H) = [input; recurrent]")

    def op_bidirectional_rnn(self) -> OpImpl:
        Bi = self._api("keras.layers.Bidirectional")
        RNN = self._api("keras.layers.SimpleRNN")

        def build(c: Case) -> tuple[Any, dict[str, Source]]:
            a = c.arrays
            layer = Bi(RNN(c.config["hidden"], return_sequences=True), merge_mode=c.config["merge"])
            layer.build(a["x"].shape)
            params: dict[str, Source] = {}
            for d, rnn in (("fw", layer.forward_layer), ("bw", layer.backward_layer)):
                self._load(rnn, kernel=a[f"wx_{d}"], recurrent_kernel=a[f"wh_{d}"], bias=a[f"b_{d}"])
                params |= self._params(rnn, **{f"wx_{d}": ("kernel", None), f"wh_{d}": ("recurrent_kernel", None),
                                               f"b_{d}": ("bias", None)})
            return layer, params

        return self._layer_op("keras.layers.Bidirectional(SimpleRNN)", build, lambda m, x, c: {"y": m(x)},
                              note="a wrapper; merge_mode='concat' gives [forward, backward]")

    def op_multi_head_attention(self) -> OpImpl:
        MHA = self._api("keras.layers.MultiHeadAttention")

        def run(c: Case) -> dict[str, Any]:
            a = c.arrays
            e, heads = c.config["embed_dim"], c.config["heads"]
            d = e // heads
            layer = MHA(num_heads=heads, key_dim=d)
            layer.build(a["q"].shape, a["v"].shape, a["k"].shape)
            # Keras keeps per-head projections: query/key/value kernels (E, heads, d), biases (heads, d), output
            # kernel (heads, d, E). The catalog's (E, E) columns are heads-major, so a reshape maps them (and their
            # gradients back).
            values = {"attention_output/kernel": a["wo"].reshape(heads, d, e), "attention_output/bias": a["bo"]}
            back = {"wo": ("attention_output/kernel", lambda g: g.reshape(e, e)), "bo": ("attention_output/bias", None)}
            for name, s in (("query", "q"), ("key", "k"), ("value", "v")):
                values |= {f"{name}/kernel": a[f"w{s}"].reshape(e, heads, d), f"{name}/bias": a[f"b{s}"].reshape(heads, d)}
                back |= {f"w{s}": (f"{name}/kernel", lambda g: g.reshape(e, e)), f"b{s}": (f"{name}/bias", lambda g: g.reshape(e))}
            self._load(layer, **values)
            q = self.T(a["q"])
            with self.tf.GradientTape() as tape:
                tape.watch(q)
                y = layer(q, self.T(a["v"]), self.T(a["k"]))
            return self._result(c, tape, {"y": y}, {"q": (q, None), **self._params(layer, **back)}, layer)

        return OpImpl("native", "keras.layers.MultiHeadAttention", run,
                      note="call(query, value, key); per-head (E, heads, d) kernels reshaped to and from the catalog's (E, E)")

    def op_prelu(self) -> OpImpl:
        PReLU = self._api("keras.layers.PReLU")

        def build(c: Case) -> tuple[Any, dict[str, Source]]:
            x = c.arrays["x"]
            layer = PReLU(shared_axes=list(range(2, x.ndim)))  # one slope per channel (axis 1): share the others
            layer.build(x.shape)
            self._load(layer, alpha=c.arrays["alpha"].reshape((-1,) + (1,) * (x.ndim - 2)))
            return layer, self._params(layer, alpha=("alpha", lambda g: g.reshape(-1)))

        return self._layer_op("keras.layers.PReLU", build, lambda m, x, c: {"y": m(x)}, note="shared_axes over H, W")

    def op_hierarchical_softmax(self) -> OpImpl:
        tf = self.tf
        log_softmax, gather = self._api("tf.nn.log_softmax"), self._api("tf.gather")

        def run(c: Case) -> dict[str, Any]:
            a = c.arrays
            size = a["w_word"].shape[2]
            targets = self.T(a["targets"])
            cluster, within = targets // size, targets % size
            sources = {n: (self.T(a[n]), None) for n in c.wrt}
            t = {n: src for n, (src, _) in sources.items()}
            with tf.GradientTape() as tape:
                for src in t.values():
                    tape.watch(src)
                x = t["x"]
                lp_cluster = log_softmax(tf.matmul(x, t["w_cluster"]) + t["b_cluster"])
                w_word, b_word = gather(t["w_word"], cluster), gather(t["b_word"], cluster)
                lp_word = log_softmax(tf.einsum("bd,bds->bs", x, w_word) + b_word)
                y = gather(lp_cluster, cluster, batch_dims=1) + gather(lp_word, within, batch_dims=1)
            return self._result(c, tape, {"y": y}, sources)

        # What the framework does offer, listed at run time for the record (none is hierarchical or adaptive)
        offered = [f"{prefix}.{n}" for prefix, mod in (("keras.layers", self.keras.layers), ("tf.nn", tf.nn))
                   for n in dir(mod) if "softmax" in n.lower()]
        return OpImpl("composed", "tf.nn.log_softmax x2 + tf.gather", run,
                      note=f"no hierarchical softmax among Keras' and tf.nn's softmax APIs ({', '.join(offered)}): the "
                           "two-level class softmax log p(cluster) + log p(word | cluster) is two log-softmaxes and gathers")

    def op_ctc_loss(self) -> OpImpl:
        ctc = self._api("tf.nn.ctc_loss")

        def forward(m: Any, logits: Any, c: Case) -> dict[str, Any]:
            a = c.arrays
            y = ctc(labels=self.T(a["targets"].astype(np.int32)), logits=logits,
                    label_length=self.T(a["target_lengths"].astype(np.int32)),
                    logit_length=self.T(a["input_lengths"].astype(np.int32)), logits_time_major=True,
                    blank_index=c.config["blank"])
            return {"y": y}

        return self._layer_op("tf.nn.ctc_loss", lambda c: (None, {}), forward,
                              note="unnormalised logits (TF applies the softmax), dense labels, time-major, per-example loss")

    # ------------------------------------------------------------------------------------------ optimizers
    def _optimizer(self, api: str, hyper: Callable[[dict[str, Any]], dict[str, Any]], note: str = "") -> OpImpl:
        """A Keras optimizer built with every hyperparameter set explicitly from the case (`hyper` maps the catalog's
        names to Keras' keyword arguments, each looked up in the optimizer's signature first), stepped with gradients
        that come from the framework's autograd."""
        Opt = self._api(api)
        tf = self.tf

        def run(c: Case) -> dict[str, Array]:
            kwargs = hyper(c.config)
            for key in kwargs:
                require_parameter(Opt, key, api)
            w = self.keras.Variable(c.arrays["w"].copy(), dtype="float32")
            opt = Opt(**kwargs)
            history = []
            for g in c.arrays["grads"]:
                with tf.GradientTape() as tape:
                    loss = tf.reduce_sum(w * self.T(g))  # d/dw of sum(w * g) is g: the catalog's gradient, via autograd
                opt.apply_gradients([(tape.gradient(loss, w), w)])
                history.append(self.N(w).copy())
            return {"w": np.stack(history)}

        return OpImpl("native", api, run, note=note)

    def op_sgd(self) -> OpImpl:
        return self._optimizer("keras.optimizers.SGD", lambda h: {"learning_rate": h["lr"], "momentum": 0.0, "nesterov": False})

    def op_momentum(self) -> OpImpl:
        return self._optimizer("keras.optimizers.SGD",
                               lambda h: {"learning_rate": h["lr"], "momentum": h["mu"], "nesterov": False},
                               note="Keras' form v = mu v - lr g; w += v (same iterates at constant lr)")

    def op_nesterov(self) -> OpImpl:
        return self._optimizer("keras.optimizers.SGD", lambda h: {"learning_rate": h["lr"], "momentum": h["mu"], "nesterov": True})

    def op_adagrad(self) -> OpImpl:
        return self._optimizer("keras.optimizers.Adagrad",
                               lambda h: {"learning_rate": h["lr"], "initial_accumulator_value": h["initial_accumulator"],
                                          "epsilon": h["eps"]})

    def op_adadelta(self) -> OpImpl:
        return self._optimizer("keras.optimizers.Adadelta", lambda h: {"learning_rate": h["lr"], "rho": h["rho"], "epsilon": h["eps"]})

    def op_rmsprop(self) -> OpImpl:
        return self._optimizer("keras.optimizers.RMSprop", lambda h: {"learning_rate": h["lr"], "rho": h["rho"], "momentum": 0.0,
                                                                      "epsilon": h["eps"], "centered": False})

    def op_adam(self) -> OpImpl:
        return self._optimizer("keras.optimizers.Adam", lambda h: {"learning_rate": h["lr"], "beta_1": h["b1"], "beta_2": h["b2"],
                                                                   "epsilon": h["eps"], "amsgrad": False})

    def op_adamw(self) -> OpImpl:
        return self._optimizer("keras.optimizers.AdamW", lambda h: {"learning_rate": h["lr"], "beta_1": h["b1"], "beta_2": h["b2"],
                                                                    "epsilon": h["eps"], "weight_decay": h["weight_decay"],
                                                                    "amsgrad": False})

    # ------------------------------------------------------------------------------------------ graphs
    def graph_namespace(self) -> Any:
        tf = self.tf
        # item: an eager tensor's value as a Python float, TensorFlow's way (float(t) reads EagerTensor.__float__)
        return types.SimpleNamespace(sum=tf.reduce_sum, tanh=tf.tanh, matmul=tf.matmul, item=float)

    def value_and_grad(self, fn: Callable[..., Any], args: Sequence[Array]) -> tuple[float, Array]:
        tensors = [self.T(a) for a in args]
        with self.tf.GradientTape() as tape:
            tape.watch(tensors[0])
            value = fn(self.graph_namespace(), *tensors)
        return float(value), self.N(tape.gradient(value, tensors[0]))

    def compile_paths(self) -> list[str]:
        paths = []
        if hasattr(self.tf, "function"):
            paths += [GRAPH, XLA]
        return paths

    def compile_path_lookups(self) -> list[str]:
        return ["tf.function", "tf.function(jit_compile=True)"]

    def compile(self, fn: Callable[..., Any], path: str) -> CompiledFunction:
        if path not in (XLA, GRAPH):
            return super().compile(fn, path)
        tf, F = self.tf, self.graph_namespace()

        def value_and_grad(*ts: Any) -> tuple[Any, Any]:
            with tf.GradientTape() as tape:
                tape.watch(ts[0])
                value = fn(F, *ts)
            return value, tape.gradient(value, ts[0])

        # The whole value-and-gradient is one traced function (AutoGraph rewrites Python control flow on tensors).
        compiled = tf.function(value_and_grad, jit_compile=(path == XLA))

        def call(args: Sequence[Array]) -> tuple[float, Array]:
            value, grad = compiled(*[self.T(a) for a in args])
            return float(value), self.N(grad)

        return CompiledFunction(path, call, lambda: int(compiled.experimental_get_tracing_count()))

    # ------------------------------------------------------------------------------------------ throughput
    def _sync(self) -> None:
        # Documented for benchmarking: waits for every device's queued work (a cheap barrier on the CPU).
        self.tf.test.experimental.sync_devices()

    def _placement(self) -> Any:
        """tf.device for the device in use: on CUDA the chosen GPU (the only one this process made visible, so its
        logical name is /GPU:0), else the CPU."""
        return self.tf.device(self._logical_device())

    def _reset_peak(self) -> None:
        if self.gpu_index is not None:
            self.tf.config.experimental.reset_memory_stats(self._logical_device())

    def _peak(self) -> int | None:
        if self.gpu_index is None:
            return None
        return int(self.tf.config.experimental.get_memory_info(self._logical_device())["peak"])

    def _check_precision(self, precision: str) -> None:
        if precision not in PRECISIONS:
            raise KeyError(f"unknown precision {precision!r}; one of {', '.join(PRECISIONS)}")
        if precision == "tf32" and self.gpu_index is None:
            gpus = [d.name for d in self.tf.config.list_logical_devices("GPU")]
            raise Unsupported("TF32 is a format of NVIDIA GPU tensor cores: "
                              "tf.config.experimental.enable_tensor_float_32_execution switches it for GPU kernels only, "
                              f"and this {self.device} run has no GPU (logical GPU devices: {gpus})",
                              looked_up=["tf.config.experimental.enable_tensor_float_32_execution",
                                         f"tf.config.list_logical_devices('GPU') -> {gpus}"])

    def _with_precision(self, precision: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        """The step under the device scope; for tf32 with TensorFlow's TF32 switch on for the step only (restored
        after; an XLA step reads the switch when it compiles, on the first call, which is inside this too)."""
        tf = self.tf

        def step() -> Any:
            with self._placement():
                if precision != "tf32":
                    return fn()
                before = tf.config.experimental.tensor_float_32_execution_enabled()
                tf.config.experimental.enable_tensor_float_32_execution(True)
                try:
                    return fn()
                finally:
                    tf.config.experimental.enable_tensor_float_32_execution(before)

        return step

    def workload(self, spec: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """The single-op workloads (gemm, conv2d). bf16: the operands cast to bfloat16 in the step and the product
        computed in bfloat16 (what a Keras mixed_bfloat16 layer does with its inputs and float32 variables)."""
        tf = self.tf
        self._check_precision(precision)
        compiled = mode == "compiled"
        notes: list[str] = []
        to_catalog: Callable[[Array], Array] = lambda y: y  # noqa: E731
        with self._placement():
            self._reset_peak()
            if spec.id == "gemm":
                args: tuple[Any, ...] = (self.T(arrays["a"]), self.T(arrays["b"]))
                op: Callable[..., Any] = tf.matmul
            elif spec.id == "conv2d":
                # NCHW data and (O, C, kH, kW) weights in TensorFlow's NHWC / (kH, kW, C, O), converted once
                args = (self.T(arrays["x"].transpose(0, 2, 3, 1)), self.T(to_keras_kernel(arrays["w"])))

                def op(p: Any, q: Any) -> Any:
                    return tf.nn.conv2d(p, q, strides=1, padding=[[0, 0], [1, 1], [1, 1], [0, 0]])

                to_catalog = lambda y: y.transpose(0, 3, 1, 2)  # noqa: E731  NHWC output read back as NCHW
                notes.append("tf.nn.conv2d on NHWC data (transposed once when built), explicit padding 1")
            else:
                raise NotMapped(f"the tensorflow adapter has no single-op workload {spec.id!r}")

        def run_op(*xs: Any) -> Any:
            if precision == "bf16":
                xs = tuple(tf.cast(v, tf.bfloat16) for v in xs)
            return op(*xs)

        f = tf.function(run_op, jit_compile=True) if compiled else run_op
        if precision == "bf16":
            notes.append("operands cast to bfloat16 inside the step; float32 storage")
        step = self._with_precision(precision, lambda: f(*args))
        return Workload(step, self._sync, 0, f"{XLA} (XLA)" if compiled else None, notes,
                        observe=lambda y: {"y": to_catalog(self.N(tf.cast(y, tf.float32)))},
                        compile_scope="op" if compiled else None,
                        traces=(lambda: int(f.experimental_get_tracing_count())) if compiled else (lambda: None),
                        peak_memory=self._peak, precision=precision)

    def model_workload(self, model: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """A catalog model as a Keras functional model, one Keras layer (or Keras op) per node, built from the node
        kinds alone; the step: GradientTape over the forward pass and the mean sparse softmax cross-entropy, and
        one keras.optimizers.SGD update. Compiled: the whole step is one tf.function(jit_compile=True) (XLA)."""
        from harness.catalog.workloads import LEARNING_RATE

        tf, keras = self.tf, self.keras
        self._check_precision(precision)
        compiled = mode == "compiled"
        policy = "mixed_bfloat16" if precision == "bf16" else "float32"
        with self._placement():
            self._reset_peak()
            built = _KerasModelBuilder(self, model, arrays, policy, compiled).build()
            net, params, x_np, notes = built
            x, labels = self.T(x_np), self.T(arrays["labels"])
            # mean over every label: over the batch (labels (N,)) or over every token (labels (N, T))
            loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            opt = keras.optimizers.SGD(learning_rate=LEARNING_RATE)
            variables = net.trainable_variables
            opt.build(variables)

        def train_step() -> Any:
            # no gradients to zero: the tape computes fresh ones on every step
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, net(x, training=True))
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        def observe(loss: Any) -> dict[str, Any]:
            out: dict[str, Any] = {"loss": self.N(loss)}
            for name, (var, back) in params.items():
                value = self.N(var)
                out[name] = back(value) if back is not None else value
            return out

        fn = tf.function(train_step, jit_compile=True) if compiled else train_step
        if compiled:
            notes.append("the whole step (forward, loss, GradientTape gradient, SGD update) is one XLA-compiled tf.function")
        if precision == "bf16":
            notes.append("Keras mixed precision: every layer built with the 'mixed_bfloat16' policy (float32 variables, "
                         "bfloat16 compute), the logits cast to float32 for the loss")
        if precision == "tf32":
            notes.append("tf.config.experimental.enable_tensor_float_32_execution(True) for the step only, restored after")
        count = sum(int(np.prod(v.shape)) for v in variables)
        return Workload(self._with_precision(precision, fn), self._sync, count, f"{XLA} (XLA)" if compiled else None,
                        notes, observe=observe, compile_scope="step" if compiled else None,
                        traces=(lambda: int(fn.experimental_get_tracing_count())) if compiled else (lambda: None),
                        peak_memory=self._peak, precision=precision)

    # ------------------------------------------------------------------------------------------ numerics
    def array_api(self) -> ArrayAPI:
        tnp = self._api("tf.experimental.numpy")  # TensorFlow's NumPy API (without enabling its global behaviour)
        dlpack = self._api("tf.experimental.dlpack.from_dlpack")
        return ArrayAPI("tf.experimental.numpy", tnp, self.tf.constant, lambda t: np.asarray(t), dlpack)

    # ------------------------------------------------------------------------------------------ scale
    def allreduce(self, rank: int, world: int, host: str, port: int, value: Array) -> AllReduceResult:
        """tf.distribute's MultiWorkerMirroredStrategy, one replica per process on self.device: on the CPU with RING
        collectives over gRPC; on CUDA with NCCL on the rank's own GPU (cuda:r is the only GPU its process sees, so
        the strategy's one local device is that GPU). Every TensorFlow worker serves its own gRPC port and the
        strategy needs the whole cluster up front, so worker r listens on port + r (rank 0 on the probe's own port);
        the cluster is given through a SimpleClusterResolver rather than the TF_CONFIG environment variable."""
        tf = self.tf
        spec = tf.train.ClusterSpec({"worker": [f"{host}:{port + r}" for r in range(world)]})
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(spec, task_type="worker", task_id=rank,
                                                                        rpc_layer="grpc")
        kinds = tf.distribute.experimental.CommunicationImplementation
        implementation = kinds.RING if self.gpu_index is None else kinds.NCCL
        options = tf.distribute.experimental.CommunicationOptions(implementation=implementation)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)
        with self._placement():
            local = self.T(value)

        def step() -> Any:
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, local)

        (out,) = strategy.experimental_local_results(strategy.run(step))
        devices = list(strategy.extended.worker_devices)
        notes = [f"cluster of {world} gRPC workers on {host}:{port}..{port + world - 1} (worker r on port + r); "
                 f"{strategy.num_replicas_in_sync} replicas in sync; this rank's device {self.device}: {devices}, "
                 f"result on {out.device}"]
        return AllReduceResult(f"tf.distribute.MultiWorkerMirroredStrategy (ReplicaContext.all_reduce, {implementation.name})",
                               True, self.N(out), notes)

    # ------------------------------------------------------------------------------------------ onnx
    def _onnx_model(self, model: Any) -> tuple[Any, list[str]]:
        keras, L = self.keras, self.keras.layers
        w = model.weights()
        if model.catalog is not None:  # the catalog model from the same Keras layers as its training workloads
            arrays = {**model.weights(), "x": model.sample_input()}
            net, _, _, notes = _KerasModelBuilder(self, model.model(), arrays, "float32", False, nchw_input=True).build()
            return net, notes
        if model.id == "mlp":
            m = keras.Sequential([keras.Input(model.input_shape[1:], name="x"), L.Dense(32, activation="relu"), L.Dense(10)])
            self._load(m.layers[0], kernel=w["w1"], bias=w["b1"])
            self._load(m.layers[1], kernel=w["w2"], bias=w["b2"])
            return m, []
        if model.id == "cnn":
            c, h, wd = model.input_shape[1:]
            # The model takes the catalog's NCHW input: a Permute to NHWC is part of the model (and of the export)
            m = keras.Sequential([keras.Input((c, h, wd), name="x"), L.Permute((2, 3, 1)),
                                  L.Conv2D(4, 3, padding="same", activation="relu"), L.MaxPooling2D(2), L.Flatten(), L.Dense(10)])
            _, conv, _, _, fc = m.layers
            self._load(conv, kernel=to_keras_kernel(w["conv_w"]), bias=w["conv_b"])
            self._load(fc, kernel=fc_rows_chw_to_hwc(w["fc_w"], 4, h // 2, wd // 2), bias=w["fc_b"])
            return m, ["the model starts with a Permute(NCHW -> NHWC) so it takes the catalog's NCHW input"]
        raise KeyError(model.id)

    def onnx_export(self, model: Any, path: str, opset: int | None) -> ExportResult:
        m, built_notes = self._onnx_model(model)
        export = require(m, "export", "keras.Model")
        x = self.T(model.sample_input())
        expected = self.N(m(x, training=False))
        kwargs: dict[str, Any] = {} if opset is None else {"opset_version": opset}
        export(path, format="onnx", verbose=False, **kwargs)
        versions = distribution_versions("keras", "tf2onnx")
        notes = [f"Keras' own export API; on the TensorFlow backend it converts through tf2onnx {versions['tf2onnx']}",
                 *built_notes]
        return ExportResult("keras.Model.export(format='onnx')", versions["keras"], opset or 0, expected, notes)

    def onnx_import(self, path: str) -> ImportResult:
        import onnx

        version = distribution_versions("onnx2tf")["onnx2tf"]
        if version == "not installed":
            raise Unsupported("onnx2tf is not installed in this environment", looked_up=["onnx2tf (distribution)"])
        proto = onnx.load(path)
        initializers = {i.name for i in proto.graph.initializer}
        inputs = [i for i in proto.graph.input if i.name not in initializers]
        # the inputs as ONNX lays them out (onnx2tf's default makes 3-5-D ones NHWC), by ONNX2TF_KEEP_INPUTS
        keep = [i.name for i in inputs if ONNX2TF_KEEP_INPUTS == "keep_shape_absolutely_input_names"
                or 3 <= len(i.type.tensor_type.shape.dim) <= 5]
        # a folder of its own (the model's folder may be shared, e.g. the conformance case cache), gone once loaded
        work = Path(tempfile.mkdtemp(prefix="onnx2tf-"))
        try:
            loaded, names = self._onnx2tf_load(path, work, keep)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        fn = loaded.signatures["serving_default"]
        # the signature's names for the ONNX graph's inputs and outputs: an input's is its ONNX name as onnx2tf
        # writes it (':' as '__', no leading '/'), else the Keras model's input at its place (the Keras model's
        # inputs and outputs are the graph's, in its order); an output's is the Keras model's output at its place
        # (Keras renames outputs of one layer, e.g. Split's 'output_1'... as 'output_3', 'output_3_1'...), else its
        # ONNX name as onnx2tf writes it
        signature = fn.structured_input_signature[1]
        outputs_of = set(fn.structured_outputs)

        def written(name: str, keys: Any) -> str | None:
            return next((c for c in (name, re.sub("^/", "", name.replace(":", "__"))) if c in keys), None)

        def pick(onnx_name: str, place: int, keras_names: list[str], keys: Any, by_name_first: bool) -> str:
            keras = keras_names[place] if place < len(keras_names) and keras_names[place] in keys else None
            found = (written(onnx_name, keys) or keras) if by_name_first else (keras or written(onnx_name, keys))
            if found is None:
                raise RuntimeError(f"onnx2tf's SavedModel signature names nothing for the ONNX value {onnx_name!r} "
                                   f"(it has {sorted(keys)})")
            return found

        input_keys = [pick(i.name, k, names["inputs"], signature, True) for k, i in enumerate(inputs)]
        output_keys = [pick(o.name, k, names["outputs"], outputs_of, False) for k, o in enumerate(proto.graph.output)]
        # onnx2tf may give an input another dtype than ONNX's (float16 inputs become float32): fed as it takes them
        input_dtypes = [signature[k].dtype.as_numpy_dtype for k in input_keys]

        def declared(value_info: Any) -> tuple[int, ...] | None:
            dims = value_info.type.tensor_type.shape.dim
            shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
            return shape if value_info.type.HasField("tensor_type") and -1 not in shape else None

        shapes = [declared(o) for o in proto.graph.output]

        def onnx_layout(y: Array, shape: tuple[int, ...] | None) -> Array:
            """onnx2tf gives 3-5-D results of spatial operators channels-last (its documented layout): an output whose
            shape is the ONNX output's with the channels moved last is moved back; any other is taken as it is."""
            if shape is not None and 3 <= y.ndim <= 5 and y.shape != shape and np.moveaxis(y, -1, 1).shape == shape:
                return np.moveaxis(y, -1, 1)
            return y

        def run(x: Array) -> Array:
            result = fn(**{input_keys[0]: self.T(x)})
            return onnx_layout(self.N(result[output_keys[0]]), shapes[0])

        def run_many(values: list[Any]) -> list[Any]:
            for name, v in zip(input_keys, values):
                if v is None or isinstance(v, list):
                    raise TypeError(f"input {name!r}: onnx2tf's SavedModel takes tensors only (here "
                                    f"{'an omitted optional' if v is None else 'a sequence'})")
            result = fn(**{name: self.T(np.asarray(v).astype(dtype, copy=False))
                           for name, v, dtype in zip(input_keys, values, input_dtypes)})
            return [onnx_layout(self.N(result[k]), shape) for k, shape in zip(output_keys, shapes)]

        notes = ["onnx2tf converts in a child process (its import changes process-wide TensorFlow settings), one "
                 "per conversion (one kept for all of a conformance run's); the SavedModel it writes is loaded with tf.saved_model.load",
                 "offline: a locally generated calibration file stands in for the images onnx2tf would download",
                 "not_use_onnxsim=True (onnxsim is an optional step onnx2tf runs as a command; not installed)",
                 f"{ONNX2TF_KEEP_INPUTS}={keep}: the imported model takes the inputs in the ONNX layout (onnx2tf's "
                 "default makes 3-5-D inputs NHWC)",
                 "inputs are fed in the dtype the SavedModel's signature takes (onnx2tf makes float16 inputs float32)",
                 "a 3-5-D output that onnx2tf gives channels-last (its layout after spatial operators) is moved back to "
                 "the ONNX output's declared shape; where the two layouts have the same shape it is taken as given"]
        # onnx2tf names no highest opset: it converts node by node (onnx2tf.ops.<OpType>.make_node), reading the
        # model's opset where a node's meaning changed, and refuses no version
        why = ("the importer does not say: onnx2tf converts each node with the module onnx2tf.ops.<OpType> and has no "
               "list of opsets it refuses; every case is counted")
        return ImportResult("onnx2tf", version, run, notes, run_many=run_many, max_opset=None, max_opset_evidence=why)

    def _onnx2tf_load(self, path: str, work: Path, keep: list[str]) -> tuple[Any, dict[str, list[str]]]:
        """onnx2tf's SavedModel of the model at `path`, converted in `work` and loaded with tf.saved_model.load, and
        the Keras model's input and output names."""
        source = work / "model.onnx"
        shutil.copyfile(path, source)  # onnx2tf rewrites its input file in place (op names): never the probe's file
        # onnx2tf downloads calibration images from GitHub at conversion time (for 4-D, 3-channel inputs) unless a
        # file of that name is in its working directory: write a locally generated one, so it never needs the network.
        rng = np.random.default_rng(0)
        np.save(work / ONNX2TF_CALIBRATION, rng.uniform(0.0, 1.0, (20, 128, 128, 3)).astype(np.float32))
        out = work / "saved_model"
        names = self._onnx2tf_convert(source, out, keep)
        return self.tf.saved_model.load(str(out)), names

    def _onnx2tf_convert(self, source: Path, out: Path, keep: list[str]) -> dict[str, list[str]]:
        """onnx2tf.convert in the child process (started, or restarted after it died or served its share);
        a conversion that fails raises RuntimeError with what onnx2tf raised."""
        import select

        proc = getattr(self, "_onnx2tf", None)
        if proc is not None and (proc.poll() is not None or self._onnx2tf_served >= ONNX2TF_RESTART_AFTER):
            self._onnx2tf_stop()
            proc = None
        if proc is None:
            proc = subprocess.Popen([sys.executable, "-c", ONNX2TF_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
            self._onnx2tf, self._onnx2tf_served = proc, 0
            self._onnx2tf_answer(proc, select, "importing onnx2tf")
        assert proc.stdin is not None
        proc.stdin.write(json.dumps([str(source), str(out), ONNX2TF_KEEP_INPUTS, keep]) + "\n")
        proc.stdin.flush()
        self._onnx2tf_served += 1
        said = self._onnx2tf_answer(proc, select, "onnx2tf.convert")
        if not os.environ.get(CONFORMANCE_CASES_ENV):
            # outside a conformance run the child ends with its conversion, so that each import starts its own (the
            # ONNX probe's provenance counts the child process an import starts)
            self._onnx2tf_stop()
        if "error" in said or not (out / "saved_model.pb").exists():
            raise RuntimeError(said.get("error") or f"onnx2tf.convert wrote no SavedModel under {out}")
        return said

    def _onnx2tf_answer(self, proc: Any, select: Any, what: str) -> dict[str, Any]:
        ready, _, _ = select.select([proc.stdout], [], [], ONNX2TF_TIMEOUT_S)
        line = proc.stdout.readline() if ready else ""
        if not line:
            self._onnx2tf_stop()
            raise RuntimeError(f"{what}: the onnx2tf child process "
                               + (f"gave no answer in {ONNX2TF_TIMEOUT_S:.0f} s" if not ready else f"exited {proc.poll()}"))
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _onnx2tf_stop(self) -> None:
        proc = getattr(self, "_onnx2tf", None)
        if proc is not None:
            proc.kill()
            proc.wait()
            self._onnx2tf = None


@dataclass
class _Value:
    """A node's output in the Keras graph: a catalog (N, C, H, W) value may be held channels-last, (N, H, W, C)."""

    tensor: Any
    channels_last: bool = False


class _KerasModelBuilder:
    """A catalog model (harness.catalog.models) as a Keras functional model: one Keras layer (or Keras op) per node,
    chosen by the node's kind alone, wired by the nodes' input names, with the catalog's initial parameters loaded in
    Keras' layouts. Convolutions, pooling and batch normalisation of images run channels-last (TensorFlow's CPU
    convolutions take no other layout): the image input is transposed once, when built, and a value goes back to the
    catalog's channels-first layout only where a node needs it (flatten, which must flatten in (C, H, W) order)."""

    def __init__(self, adapter: TensorflowAdapter, model: Any, arrays: dict[str, Array], policy: str, compiled: bool,
                 nchw_input: bool = False) -> None:
        self.adapter = adapter
        # True: the model takes the catalog's NCHW image as given (a Permute layer to NHWC is part of the model)
        self.nchw_input = nchw_input
        self.keras = adapter.keras
        self.L = adapter.keras.layers
        self.model = model
        self.arrays = arrays
        self.policy = policy  # the Keras dtype policy of every layer: "float32" or "mixed_bfloat16"
        self.compiled = compiled
        self.params: dict[str, Source] = {}
        self.notes: list[str] = []

    # ------------------------------------------------------------------------------------------ the model
    def build(self) -> tuple[Any, dict[str, Source], Array, list[str]]:
        """(the Keras model, every catalog parameter as (variable, back-map to the catalog layout), the input data
        in the model's layout, notes for the record)."""
        keras, model = self.keras, self.model
        x = np.asarray(self.arrays["x"])
        image = model.input_kind == "image" and not self.nchw_input
        if image:
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
            self._note("the NCHW image input is transposed to NHWC once, when built; convolutions, pooling and batch "
                       "normalisation run channels-last")
        elif model.input_kind == "image":
            self._note("the model takes the catalog's NCHW input: a Permute to NHWC before the first channels-last "
                       "layer is part of the model")
        inp = keras.Input(shape=x.shape[1:], batch_size=x.shape[0], dtype="int64" if model.input_kind == "tokens" else "float32",
                          name="x")
        values: dict[str, _Value] = {"input": _Value(inp, image)}
        for node in model.nodes:
            make = getattr(self, f"kind_{node.kind}", None)
            if make is None:
                raise NotMapped(f"the tensorflow adapter maps no node kind {node.kind!r}")
            values[node.name] = make(node, [values[name] for name in node.inputs])
        logits = self._canonical(values[model.output]).tensor
        if self.policy != "float32":  # Keras' mixed precision guide: the model's output in float32 for the loss
            logits = self.L.Activation("linear", dtype="float32")(logits)
        net = keras.Model(inp, logits)
        mapped = {id(var) for var, _ in self.params.values()}
        loose = [v.path for v in net.trainable_variables if id(v) not in mapped]
        missing = [name for name in model.param_shapes() if name not in self.params]
        if loose or missing:
            raise KeyError(f"trainable variables without a catalog parameter: {loose}; catalog parameters without a "
                           f"variable: {missing}")
        return net, self.params, x, self.notes

    # ------------------------------------------------------------------------------------------ helpers
    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def _layer(self, cls: Any, **kwargs: Any) -> Any:
        return cls(dtype=self.policy, **kwargs)

    def _p(self, node: Any, name: str) -> Array:
        return np.asarray(self.arrays[f"{node.name}.{name}"], np.float32)

    def _load(self, node: Any, layer: Any, values: dict[str, Array],
              params: dict[str, tuple[str, Callable[[Array], Array] | None]]) -> None:
        """Set every variable of `layer` (values: variable path suffix -> array in Keras' layout) and register the
        node's catalog parameters (name -> (variable path suffix, map of the Keras-layout value back))."""
        self.adapter._load(layer, **values)
        for pname, (key, back) in params.items():
            self.params[f"{node.name}.{pname}"] = (self.adapter._var(layer, key), back)

    def _channels_last(self, v: _Value) -> _Value:
        if v.channels_last:
            return v
        if len(v.tensor.shape) != 4:
            raise ValueError(f"a channels-last layer needs an (N, C, H, W) value, not shape {tuple(v.tensor.shape)}")
        return _Value(self._layer(self.L.Permute, dims=(2, 3, 1))(v.tensor), True)

    def _canonical(self, v: _Value) -> _Value:
        if not v.channels_last:
            return v
        return _Value(self._layer(self.L.Permute, dims=(3, 1, 2))(v.tensor), False)

    # ------------------------------------------------------------------------------------------ node kinds
    def kind_dense(self, node: Any, xs: list[_Value]) -> _Value:
        bias = node.attrs.get("bias", True)
        layer = self._layer(self.L.Dense, units=node.attrs["out"], use_bias=bias, name=node.name)
        y = layer(self._canonical(xs[0]).tensor)  # Dense acts on the last axis of 2-D and 3-D inputs alike
        values, params = {"kernel": self._p(node, "w")}, {"w": ("kernel", None)}  # Keras' kernel is (in, out) too
        if bias:
            values["bias"], params["b"] = self._p(node, "b"), ("bias", None)
        self._load(node, layer, values, params)
        return _Value(y)

    def kind_conv2d(self, node: Any, xs: list[_Value]) -> _Value:
        a = node.attrs
        t = self._channels_last(xs[0]).tensor
        k, stride, pad, bias = a["kernel"], a["stride"], a["padding"], a.get("bias", False)
        padding = self.adapter._padding(pad, (k, k), 1, stride, tuple(t.shape[1:3]))
        if padding is None:
            t = self._layer(self.L.ZeroPadding2D, padding=pad)(t)
            padding = "valid"
            self._note("convolutions whose symmetric padding padding='same' does not reproduce (TensorFlow's SAME puts "
                       "the smaller half first) run as ZeroPadding2D then padding='valid'")
        layer = self._layer(self.L.Conv2D, filters=a["out"], kernel_size=k, strides=stride, padding=padding,
                            use_bias=bias, name=node.name)
        y = layer(t)
        values, params = {"kernel": to_keras_kernel(self._p(node, "w"))}, {"w": ("kernel", from_keras_kernel)}
        if bias:
            values["bias"], params["b"] = self._p(node, "b"), ("bias", None)
        self._load(node, layer, values, params)
        return _Value(y, True)

    def kind_batch_norm(self, node: Any, xs: list[_Value]) -> _Value:
        v = self._channels_last(xs[0]) if len(xs[0].tensor.shape) == 4 else xs[0]
        axis = -1 if v.channels_last else 1  # the channel axis, wherever the value holds it
        layer = self._layer(self.L.BatchNormalization, axis=axis, epsilon=NORM_EPS, name=node.name)
        y = layer(v.tensor)  # the model is called with training=True: batch statistics
        channels = self._p(node, "gamma").shape
        self._load(node, layer, {"gamma": self._p(node, "gamma"), "beta": self._p(node, "beta"),
                                 "moving_mean": np.zeros(channels, np.float32),
                                 "moving_variance": np.ones(channels, np.float32)},
                   {"gamma": ("gamma", None), "beta": ("beta", None)})
        return _Value(y, v.channels_last)

    def kind_layer_norm(self, node: Any, xs: list[_Value]) -> _Value:
        layer = self._layer(self.L.LayerNormalization, axis=-1, epsilon=NORM_EPS, name=node.name)
        y = layer(self._canonical(xs[0]).tensor)
        self._load(node, layer, {"gamma": self._p(node, "gamma"), "beta": self._p(node, "beta")},
                   {"gamma": ("gamma", None), "beta": ("beta", None)})
        return _Value(y)

    def kind_relu(self, node: Any, xs: list[_Value]) -> _Value:
        return _Value(self._layer(self.L.ReLU, name=node.name)(xs[0].tensor), xs[0].channels_last)

    def kind_gelu(self, node: Any, xs: list[_Value]) -> _Value:
        exact = functools.partial(self.keras.activations.gelu, approximate=False)  # the erf form
        return _Value(self._layer(self.L.Activation, activation=exact, name=node.name)(xs[0].tensor), xs[0].channels_last)

    def kind_max_pool(self, node: Any, xs: list[_Value]) -> _Value:
        a = node.attrs
        t = self._channels_last(xs[0]).tensor
        k, stride, pad = a["kernel"], a["stride"], a["padding"]
        # TensorFlow's SAME max pooling never picks a padded cell; elsewhere the padding is -inf, which never wins
        padding = self.adapter._padding(pad, (k, k), 1, stride, tuple(t.shape[1:3]))
        if padding is None:
            t = self.keras.ops.pad(t, [[0, 0], [pad, pad], [pad, pad], [0, 0]], constant_values=float("-inf"))
            padding = "valid"
            self._note("max pooling whose symmetric padding padding='same' does not reproduce pads with -inf "
                       "(keras.ops.pad), then padding='valid': a padded cell never wins")
        y = self._layer(self.L.MaxPooling2D, pool_size=k, strides=stride, padding=padding, name=node.name)(t)
        return _Value(y, True)

    def kind_global_avg_pool(self, node: Any, xs: list[_Value]) -> _Value:
        t = self._channels_last(xs[0]).tensor
        return _Value(self._layer(self.L.GlobalAveragePooling2D, data_format="channels_last", name=node.name)(t))

    def kind_flatten(self, node: Any, xs: list[_Value]) -> _Value:
        v = xs[0]
        if v.channels_last:
            self._note("flatten of a channels-last value: Permute back to (C, H, W) first, so it flattens in the "
                       "catalog's NCHW order")
        t = self._canonical(v).tensor
        return _Value(self._layer(self.L.Flatten, name=node.name)(t))

    def kind_add(self, node: Any, xs: list[_Value]) -> _Value:
        a, b = xs
        if a.channels_last != b.channels_last:
            a, b = self._canonical(a), self._canonical(b)
        return _Value(self._layer(self.L.Add, name=node.name)([a.tensor, b.tensor]), a.channels_last)

    def _cudnn(self) -> Any:
        # cuDNN's fused RNN kernel is no XLA op: the compiled step keeps Keras' own loop, which XLA compiles
        return False if self.compiled else "auto"

    def kind_lstm_last(self, node: Any, xs: list[_Value]) -> _Value:
        layer = self._layer(self.L.LSTM, units=node.attrs["hidden"], use_bias=False, return_sequences=False,
                            use_cudnn=self._cudnn(), name=node.name)
        y = layer(self._canonical(xs[0]).tensor)

        def back(k: Array) -> Array:
            return reorder_gates(k, KERAS_LSTM, CANONICAL_LSTM)

        self._load(node, layer, {"kernel": reorder_gates(self._p(node, "wx"), CANONICAL_LSTM, KERAS_LSTM),
                                 "recurrent_kernel": reorder_gates(self._p(node, "wh"), CANONICAL_LSTM, KERAS_LSTM)},
                   {"wx": ("kernel", back), "wh": ("recurrent_kernel", back)})
        return _Value(y)

    def kind_gru(self, node: Any, xs: list[_Value]) -> _Value:
        layer = self._layer(self.L.GRU, units=node.attrs["hidden"], reset_after=True, return_sequences=True,
                            use_cudnn=self._cudnn(), name=node.name)
        y = layer(self._canonical(xs[0]).tensor)

        def back(k: Array) -> Array:
            return reorder_gates(k, KERAS_GRU, CANONICAL_GRU)

        def order(w: Array) -> Array:
            return reorder_gates(w, CANONICAL_GRU, KERAS_GRU)

        # reset_after=True keeps a (2, 3H) bias: row 0 the input bias, row 1 the recurrent bias
        self._load(node, layer, {"kernel": order(self._p(node, "wx")), "recurrent_kernel": order(self._p(node, "wh")),
                                 "bias": np.stack([order(self._p(node, "bx")), order(self._p(node, "bh"))])},
                   {"wx": ("kernel", back), "wh": ("recurrent_kernel", back),
                    "bx": ("bias", lambda g: back(g[0])), "bh": ("bias", lambda g: back(g[1]))})
        self._note(f"GRU: reset_after=True, gate order {KERAS_GRU} (Keras: z, r, h) mapped from the catalog's "
                   f"{CANONICAL_GRU}; bias (2, 3H) = [bx; bh]")
        return _Value(y)

    def kind_embedding(self, node: Any, xs: list[_Value]) -> _Value:
        a = node.attrs
        layer = self._layer(self.L.Embedding, input_dim=a["vocab"], output_dim=a["dim"], name=node.name)
        y = layer(xs[0].tensor)
        self._load(node, layer, {"embeddings": self._p(node, "table")}, {"table": ("embeddings", None)})
        return _Value(y)

    def kind_positional(self, node: Any, xs: list[_Value]) -> _Value:
        layer = _positional_layer(self.keras)(dtype=self.policy, name=node.name)
        y = layer(self._canonical(xs[0]).tensor)
        self._load(node, layer, {"table": self._p(node, "table")}, {"table": ("table", None)})
        self._note("positional: Keras has no learned-position layer in keras.layers; a keras.layers.Layer subclass "
                   "holds the (T, D) table (add_weight) and adds it")
        return _Value(y)

    def kind_self_attention(self, node: Any, xs: list[_Value]) -> _Value:
        t = self._canonical(xs[0]).tensor
        e, heads = int(t.shape[-1]), node.attrs["heads"]
        d = e // heads
        layer = self._layer(self.L.MultiHeadAttention, num_heads=heads, key_dim=d, name=node.name)
        y = layer(t, t)  # query = value = key: the sequence attends to itself, no mask
        # Keras keeps per-head projections: query/key/value kernels (E, heads, d), biases (heads, d), output kernel
        # (heads, d, E); the catalog's (E, E) columns are heads-major, so reshapes map them both ways
        values = {"attention_output/kernel": self._p(node, "wo").reshape(heads, d, e), "attention_output/bias": self._p(node, "bo")}
        params: dict[str, tuple[str, Callable[[Array], Array] | None]] = {
            "wo": ("attention_output/kernel", lambda g: g.reshape(e, e)), "bo": ("attention_output/bias", None)}
        for sub, c in (("query", "q"), ("key", "k"), ("value", "v")):
            values[f"{sub}/kernel"] = self._p(node, f"w{c}").reshape(e, heads, d)
            values[f"{sub}/bias"] = self._p(node, f"b{c}").reshape(heads, d)
            params[f"w{c}"] = (f"{sub}/kernel", lambda g: g.reshape(e, e))
            params[f"b{c}"] = (f"{sub}/bias", lambda g: g.reshape(e))
        self._load(node, layer, values, params)
        return _Value(y)

    def kind_mean_tokens(self, node: Any, xs: list[_Value]) -> _Value:
        # (N, T, D) -> (N, D): the average over the steps axis
        return _Value(self._layer(self.L.GlobalAveragePooling1D, name=node.name)(self._canonical(xs[0]).tensor))


@functools.cache
def _positional_layer(keras: Any) -> Any:
    """A Keras layer holding a learned (T, D) position table that it adds to an (N, T, D) input."""

    class PositionalTable(keras.layers.Layer):
        def build(self, input_shape: Any) -> None:
            self.table = self.add_weight(shape=tuple(input_shape[1:]), initializer="zeros", name="table")

        def call(self, x: Any) -> Any:
            return x + self.table

    return PositionalTable
