"""Theano adapter: symbolic variables from theano.tensor, layers from theano.tensor.nnet (conv2d, conv3d,
conv2d_transpose, separable_conv2d, batch_normalization_train/test, h_softmax, relu, softmax, ctc) and
theano.tensor.signal.pool, recurrences through theano.scan, parameters as theano.shared variables, gradients from
theano.grad, optimizers written as `updates` of a theano.function, and theano.function as the only way anything runs.

Theano (1.0.5, its last release) is a symbolic-graph compiler: an expression is a graph of Variables, and only a
compiled theano.function (g++ builds a C module per op at first use, cached in the compile directory) computes
values. Three things follow here:
- Theano ships math and a few neural-network functions, not layers or optimizers. Where theano.tensor.nnet or
  theano.tensor.signal has the layer it is used (native); dense, normalisations other than batch norm, recurrent
  layers (theano.scan), attention, dropout (MRG random streams) and every optimizer (shared variables + updates) are
  written from Theano primitives as its users wrote them (composed, half a point). Every catalog array keeps the
  catalog's layout, so gradients come back without remapping (convolutions run with filter_flip=False, i.e. as the
  cross-correlation the catalog defines).
- Nothing runs eagerly: there is no eager throughput mode, and the graph probes' Python control flow on values
  meets Theano's symbolic comparison (a Variable) and what Theano does with it is recorded.
- Each worker process compiles into a fresh compile directory (base_compiledir under the system temp folder,
  removed at exit) unless THEANO_FLAGS names one: runs never share Theano's cache of compiled C modules, so
  compile times are a cold start of each module once per process.

Looked up at development time, and recorded here, not used as verdicts: the package index has no pygpu or
libgpuarray distribution (`pip download --no-deps pygpu`: "No matching distribution found for pygpu"), and no
ONNX converter for Theano (`pip download --no-deps onnx-theano` and `theano-onnx`: "No matching distribution
found"). The verdicts below come from what the installed Theano holds at run time.
"""

from __future__ import annotations

import atexit
import importlib.util
import math
import os
import pkgutil
import re
import shutil
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
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
    resolve,
)
from harness.catalog.models import NORM_EPS
from harness.catalog.ops import Case
from harness.catalog.workloads import LEARNING_RATE

Array = np.ndarray
FLOATX = "float32"
FUNCTION = "theano.function"
FAST_COMPILE = "theano.function(mode='FAST_COMPILE')"
#: node kinds Theano has no function for, and how model_workload composes them
_COMPOSED_KINDS = {
    "dense": "dense as theano.tensor.dot(x, W) + b (theano has no dense layer)",
    "layer_norm": "layer_norm from theano.tensor mean and var (theano has no layer normalisation)",
    "gelu": "gelu as 0.5 x (1 + erf(x / sqrt 2)) from theano.tensor.erf (theano has no gelu)",
    "global_avg_pool": "global_avg_pool as theano.tensor.mean over H and W",
    "embedding": "embedding as indexing a shared table (theano has no embedding layer)",
    "positional": "positional: a shared (T, D) table broadcast over the batch",
    "self_attention": "self_attention from theano.tensor.dot, batched_dot and theano.tensor.nnet.softmax",
    "lstm_last": "lstm_last through theano.scan (theano has no recurrent layers)",
    "gru": "gru through theano.scan (theano has no recurrent layers)",
}


def theano_flags(existing: str, make_dir: Callable[[], str]) -> tuple[str, str | None]:
    """THEANO_FLAGS for this process: the caller's flags, plus floatX=float32 and a fresh base_compiledir (made by
    `make_dir`) where they name none. Returns the flags and the directory made (None when none was)."""
    parts = [p.strip() for p in existing.split(",") if p.strip()]
    keys = {p.split("=", 1)[0].strip() for p in parts if "=" in p}
    made = None
    if "floatX" not in keys:
        parts.append(f"floatX={FLOATX}")
    if not keys & {"base_compiledir", "compiledir", "compiledir_format"}:
        made = make_dir()
        parts.append(f"base_compiledir={made}")
    return ",".join(parts), made


#: observed with blas.ldflags empty (the registry's setting: no BLAS library to link)
BATCHED_DOT_NOTE = ("per-head products as broadcast multiply-and-sum: with blas.ldflags empty, theano.tensor.batched_dot's "
                    "C module fails to load (ImportError: undefined symbol: dgemm_), as its code calls BLAS directly while "
                    "Theano's NumPy-based BLAS fallback serves its dot/gemm ops")
#: theano.tensor.nnet.bn refuses an epsilon below 1e-5 after casting it to floatX, and float32(1e-5) is below 1e-5
BN_EPS_NOTE = ("theano's batch normalisation casts epsilon to floatX and refuses one below 1e-5 (ValueError 'epsilon must be "
               "at least 1e-5'), which float32(1e-5) is: epsilon is the next float32 up, 1.0000001e-05")


def bn_epsilon(eps: float) -> float:
    """The smallest float32 at least `eps` (theano's batch normalisation rejects float32(1e-5) < 1e-5)."""
    e = np.float32(eps)
    return float(np.nextafter(e, np.float32(np.inf)) if float(e) < eps else e)


class TheanoAdapter(Adapter):
    name = "theano"
    distribution = "Theano"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self._index = device_index(device)
        self._compiledir_made: str | None = None
        if "theano" not in sys.modules:  # THEANO_FLAGS is read once, when theano is imported
            flags, made = theano_flags(os.environ.get("THEANO_FLAGS", ""),
                                       lambda: tempfile.mkdtemp(prefix="showdown-theano-"))
            if made is not None:
                atexit.register(shutil.rmtree, made, True)
            self._compiledir_made = made
            os.environ["THEANO_FLAGS"] = flags
        import theano
        import theano.sandbox.rng_mrg
        import theano.tensor as T
        import theano.tensor.nnet
        import theano.tensor.nnet.abstract_conv
        import theano.tensor.nnet.bn
        import theano.tensor.nnet.ctc
        import theano.tensor.signal.pool

        self.th, self.T = theano, T
        self.nnet = theano.tensor.nnet
        self.functions = 0  # theano.function compilations made through this adapter
        self._scan_loop: str | None = None

    # ------------------------------------------------------------------------------------------ identity
    def versions(self) -> dict[str, str]:
        return distribution_versions("Theano", "numpy", "scipy", "six", "onnx", "onnxruntime")

    def _gpu_missing(self) -> str:
        gpuarray = importlib.util.find_spec("theano.gpuarray")
        if gpuarray is None:
            return f"theano {self.th.__version__} has no theano.gpuarray"
        if importlib.util.find_spec("pygpu") is None:
            return (f"theano {self.th.__version__}'s GPU backend (theano.gpuarray) needs pygpu (libgpuarray), and no "
                    "module pygpu is installed")
        import theano.gpuarray

        if not theano.gpuarray.pygpu_activated:
            return "pygpu is installed but theano.gpuarray.pygpu_activated is False (THEANO_FLAGS device=cuda not set)"
        return ""

    def gpu_count(self) -> int:
        return 0 if self._gpu_missing() else 1

    def device_available(self) -> tuple[bool, str]:
        if self._index is None:
            return True, ""
        missing = self._gpu_missing()
        return (False, missing) if missing else (False, "the theano adapter runs on the CPU only")

    def _config(self) -> dict[str, Any]:
        c = self.th.config
        return {"floatX": c.floatX, "cxx": c.cxx, "blas.ldflags": c.blas.ldflags, "mode": str(c.mode),
                "linker": c.linker, "optimizer": c.optimizer, "base_compiledir": c.base_compiledir,
                "compiledir": c.compiledir, "device": c.device}

    def device_info(self) -> dict[str, Any]:
        config = self._config()
        info: dict[str, Any] = {
            "device": self.device, "theano_config": config,
            "precision": {"floatX": config["floatX"], "cast_policy": self.th.config.cast_policy},
            "precision_notes": "every variable and shared parameter is float32 (floatX=float32, dtypes explicit); on the "
                               "CPU Theano computes in its own C code and BLAS, which has no TF32",
            "blas": ("NumPy's C API (blas.ldflags is empty: Theano calls the BLAS NumPy links against through NumPy's "
                     "C API)" if not config["blas.ldflags"] else f"linked with {config['blas.ldflags']}"),
            "compiler": (f"{config['cxx']} compiles each op's C code at its first use" if config["cxx"]
                         else "no C++ compiler: Theano runs its Python implementations"),
            "compiledir_per_process": self._compiledir_made is not None,
        }
        if self._index is not None:
            info["unavailable"] = self.device_available()[1]
        return info

    # ------------------------------------------------------------------------------------------ helpers
    def _api(self, dotted: str) -> Any:
        return resolve(self.th, dotted)

    def function(self, inputs: Sequence[Any], outputs: Any, **kwargs: Any) -> Any:
        """theano.function, counted (the adapter's compile counter)."""
        self.functions += 1
        return self.th.function(list(inputs), outputs, **kwargs)

    def symbolic(self, name: str, a: Array) -> Any:
        """A symbolic input of a's rank: float32, or int64 for integer arrays; no axis is broadcastable."""
        dtype = FLOATX if a.dtype.kind == "f" else "int64"
        return self.T.TensorType(dtype, (False,) * a.ndim)(name)

    def shared(self, a: Array, name: str | None = None) -> Any:
        return self.th.shared(np.array(a, dtype=np.float32, copy=True), name=name)

    @staticmethod
    def _value(a: Array) -> Array:
        return np.asarray(a, np.float32 if a.dtype.kind == "f" else np.int64)

    def _vars(self, case: Case) -> dict[str, Any]:
        """The case's arrays as Theano sees them: trainable parameters as shared variables (catalog layout), every
        other array (the input, indices, statistics) as a symbolic input of the function."""
        return {name: self.shared(a, name) if name in case.params else self.symbolic(name, a) for name, a in case.arrays.items()}

    def _evaluate(self, case: Case, v: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
        """Compile one theano.function for the outputs and, when the case has a gradient, theano.grad of
        sum_k sum(output_k * cotangent_k) w.r.t. the input and every parameter; run it on the case's arrays."""
        T = self.T
        names = list(outputs)
        grads: list[Any] = []
        if case.grad_wrt is not None:
            cost = sum(T.sum(outputs[k] * T.constant(np.asarray(case.cotangents[k], np.float32))) for k in case.cotangents)
            grads = list(self.th.grad(cost, [v[n] for n in case.wrt]))
        inputs = [n for n in case.arrays if n not in case.params]
        fn = self.function([v[n] for n in inputs], [outputs[k] for k in names] + grads, on_unused_input="ignore")
        values = fn(*[self._value(case.arrays[n]) for n in inputs])
        out: dict[str, Any] = {k: np.asarray(values[i]) for i, k in enumerate(names)}
        if grads:
            out["grads"] = {n: np.asarray(g) for n, g in zip(case.wrt, values[len(names):])}
        return out

    def _op(self, kind: str, api: str, build: Callable[[dict[str, Any], Case], dict[str, Any]], note: str = "",
            variant: str | None = None) -> OpImpl:
        def run(case: Case) -> dict[str, Array]:
            v = self._vars(case)
            return self._evaluate(case, v, build(v, case))

        return OpImpl(kind, api, run, variant, note)

    @staticmethod
    def _channel(p: Any, ndim: int = 4) -> Any:
        """A per-channel vector broadcast over (N, C, ...)."""
        return p.dimshuffle("x", 0, *(["x"] * (ndim - 2)))

    def _missing(self, *dotted: str) -> list[str]:
        """Which of the dotted names the installed Theano lacks (the evidence for a composed op)."""
        out = []
        for name in dotted:
            try:
                resolve(self.th, name)
            except Unsupported:
                out.append(name)
        return out

    def _composed_note(self, lacks: Sequence[str], how: str) -> str:
        missing = self._missing(*lacks)
        return (f"theano has no {' / '.join(missing)}: " if missing else "") + how

    # ------------------------------------------------------------------------------------------ layers
    def dense(self, x: Any, w: Any, b: Any | None) -> Any:
        y = self.T.dot(x, w)
        return y if b is None else y + b

    def op_dense(self) -> OpImpl:
        return self._op("composed", "theano.tensor.dot(x, W) + b", lambda v, c: {"y": self.dense(v["x"], v["w"], v["b"])},
                        note=self._composed_note(["theano.tensor.nnet.dense", "theano.tensor.nnet.linear"],
                                                 "x W + b from theano.tensor.dot, W in the catalog's (in, out) layout"))

    def op_conv1d(self) -> OpImpl:
        conv2d = self._api("theano.tensor.nnet.conv2d")
        found = [n for n in ("theano.tensor.nnet.conv1d", "theano.tensor.nnet.abstract_conv.conv1d") if not self._missing(n)]
        if found:
            raise NotMapped(f"{found[0]} exists, but this adapter composes conv1d from conv2d")

        def build(v: dict[str, Any], c: Case) -> dict[str, Any]:
            cfg = c.config
            y = conv2d(v["x"].dimshuffle(0, 1, "x", 2), v["w"].dimshuffle(0, 1, "x", 2), border_mode=(0, cfg["padding"]),
                       subsample=(1, cfg["stride"]), filter_dilation=(1, cfg["dilation"]), filter_flip=False)
            return {"y": y[:, :, 0, :] + self._channel(v["b"], 3)}

        return self._op("composed", "theano.tensor.nnet.conv2d on (N, C, 1, L)", build,
                        note="theano has no 1-D convolution (theano.tensor.nnet.conv1d and abstract_conv.conv1d looked up, "
                             "absent; causal_conv1d pads on the left only): conv2d over a height-1 image, filter_flip=False")

    def _conv(self, api: str, nd: int) -> OpImpl:
        conv = self._api(api)

        def build(v: dict[str, Any], c: Case) -> dict[str, Any]:
            cfg = c.config
            y = conv(v["x"], v["w"], input_shape=c.arrays["x"].shape, filter_shape=c.arrays["w"].shape,
                     border_mode=(cfg["padding"],) * nd, subsample=(cfg["stride"],) * nd,
                     filter_dilation=(cfg["dilation"],) * nd, filter_flip=False)
            return {"y": y + self._channel(v["b"], nd + 2)}

        return self._op("native", api, build, note="filter_flip=False: cross-correlation (Theano flips filters by default)")

    def op_conv2d(self) -> OpImpl:
        return self._conv("theano.tensor.nnet.conv2d", 2)

    def op_conv3d(self) -> OpImpl:
        return self._conv("theano.tensor.nnet.conv3d", 3)

    def op_conv_transpose2d(self) -> OpImpl:
        convt = self._api("theano.tensor.nnet.conv2d_transpose")

        def build(v: dict[str, Any], c: Case) -> dict[str, Any]:
            x, w = c.arrays["x"], c.arrays["w"]
            s, p = c.config["stride"], c.config["padding"]
            size = [(d - 1) * s - 2 * p + k for d, k in zip(x.shape[2:], w.shape[2:])]
            y = convt(v["x"], v["w"], output_shape=(x.shape[0], w.shape[1], *size), filter_shape=w.shape,
                      border_mode=(p, p), input_dilation=(s, s), filter_flip=False)
            return {"y": y + self._channel(v["b"])}

        return self._op("native", "theano.tensor.nnet.conv2d_transpose", build,
                        note="filters (C_in, C_out, kH, kW) as the catalog's; input_dilation = stride; filter_flip=False")

    def op_separable_conv2d(self) -> OpImpl:
        sep = self._api("theano.tensor.nnet.separable_conv2d")

        def build(v: dict[str, Any], c: Case) -> dict[str, Any]:
            s, p = c.config["stride"], c.config["padding"]
            y = sep(v["x"], v["w_depthwise"], v["w_pointwise"], num_channels=c.arrays["x"].shape[1], border_mode=(p, p),
                    subsample=(s, s), filter_flip=False)
            return {"y": y + self._channel(v["b"])}

        return self._op("native", "theano.tensor.nnet.separable_conv2d", build,
                        note="depthwise (C, 1, k, k) then pointwise (O, C, 1, 1), the catalog's layouts; it takes no bias, "
                             "so the bias is added to its output")

    def _pool(self, x: Any, kernel: int, stride: int, padding: int, mode: str) -> Any:
        pool_2d = self._api("theano.tensor.signal.pool.pool_2d")
        return pool_2d(x, ws=(kernel, kernel), ignore_border=True, stride=(stride, stride), pad=(padding, padding), mode=mode)

    def op_max_pool2d(self) -> OpImpl:
        self._api("theano.tensor.signal.pool.pool_2d")
        return self._op("native", "theano.tensor.signal.pool.pool_2d(mode='max')",
                        lambda v, c: {"y": self._pool(v["x"], c.config["kernel"], c.config["stride"], c.config.get("padding", 0), "max")},
                        note="ignore_border=True (padding needs it)")

    def op_avg_pool2d(self) -> OpImpl:
        self._api("theano.tensor.signal.pool.pool_2d")
        return self._op("native", "theano.tensor.signal.pool.pool_2d(mode='average_inc_pad')",
                        lambda v, c: {"y": self._pool(v["x"], c.config["kernel"], c.config["stride"], c.config["padding"],
                                                      "average_inc_pad")},
                        note="Theano names the border divisor in the mode: 'average_inc_pad' (used) or 'average_exc_pad'")

    def op_global_avg_pool2d(self) -> OpImpl:
        return self._op("composed", "theano.tensor.mean(axis=(2, 3))", lambda v, c: {"y": self.T.mean(v["x"], axis=(2, 3))},
                        note=self._composed_note(["theano.tensor.signal.pool.global_pool_2d"], "the mean over H and W"))

    def op_upsample_nearest2d(self) -> OpImpl:
        def build(v: dict[str, Any], c: Case) -> dict[str, Any]:
            s = c.config["scale"]
            return {"y": v["x"].repeat(s, axis=2).repeat(s, axis=3)}

        return self._op("composed", "theano.tensor.repeat on H and W", build,
                        note="theano.tensor.nnet.abstract_conv has bilinear_upsampling only: nearest neighbour as repeat")

    def op_batch_norm(self) -> OpImpl:
        train = self._api("theano.tensor.nnet.bn.batch_normalization_train")
        test = self._api("theano.tensor.nnet.bn.batch_normalization_test")

        def build(v: dict[str, Any], c: Case) -> dict[str, Any]:
            g, b = self._channel(v["gamma"]), self._channel(v["beta"])
            eps = bn_epsilon(c.config["eps"])
            y_train = train(v["x"], g, b, axes="spatial", epsilon=eps)[0]
            y_eval = test(v["x"], g, b, self._channel(v["running_mean"]), self._channel(v["running_var"]), axes="spatial", epsilon=eps)
            return {"y_train": y_train, "y_eval": y_eval}

        return self._op("native", "theano.tensor.nnet.bn.batch_normalization_train / batch_normalization_test", build,
                        note="axes='spatial' (per channel over N, H, W); gamma and beta broadcast as (1, C, 1, 1); " + BN_EPS_NOTE)

    def layer_norm(self, x: Any, gamma: Any, beta: Any, eps: float) -> Any:
        T = self.T
        mu = T.mean(x, axis=-1, keepdims=True)
        var = T.var(x, axis=-1, keepdims=True)
        return (x - mu) / T.sqrt(var + np.float32(eps)) * gamma + beta

    def op_layer_norm(self) -> OpImpl:
        return self._op("composed", "theano.tensor mean / var over the last axis",
                        lambda v, c: {"y": self.layer_norm(v["x"], v["gamma"], v["beta"], c.config["eps"])},
                        note="theano has no layer normalisation (its batch_normalization_train takes parameters shaped like "
                             "the statistics, not per feature of the normalised axis)")

    def op_group_norm(self) -> OpImpl:
        T = self.T

        def build(v: dict[str, Any], c: Case) -> dict[str, Any]:
            n = c.arrays["x"].shape[0]
            groups, eps = c.config["groups"], c.config["eps"]
            x = v["x"]
            xg = x.reshape((n, groups, -1))
            y = ((xg - T.mean(xg, axis=2, keepdims=True)) / T.sqrt(T.var(xg, axis=2, keepdims=True) + np.float32(eps))).reshape(x.shape)
            return {"y": y * self._channel(v["gamma"]) + self._channel(v["beta"])}

        return self._op("composed", "theano.tensor mean / var over channel groups", build,
                        note="theano has no group normalisation")

    def op_local_response_norm(self) -> OpImpl:
        T = self.T

        def build(v: dict[str, Any], c: Case) -> dict[str, Any]:
            cfg = c.config
            n, ch, h, w = c.arrays["x"].shape
            size = cfg["size"]
            x = v["x"]
            padded = T.zeros((n, ch + size - 1, h, w), dtype=FLOATX)
            padded = T.set_subtensor(padded[:, size // 2 : size // 2 + ch], T.sqr(x))
            acc = sum(padded[:, i : i + ch] for i in range(size))
            return {"y": x / (np.float32(cfg["k"]) + np.float32(cfg["alpha"] / size) * acc) ** np.float32(cfg["beta"])}

        return self._op("composed", "theano.tensor sqr, set_subtensor and sums over a channel window", build,
                        note=self._composed_note(["theano.tensor.nnet.lrn", "theano.tensor.nnet.local_response_normalization"],
                                                 "the window sum of squares over zero-padded channels, alpha divided by size"))

    def dropout(self, x: Any, p: float, seed: int) -> Any:
        streams = self._api("theano.sandbox.rng_mrg.MRG_RandomStreams")(seed=seed)
        keep = 1.0 - p
        return x * streams.binomial(size=x.shape, p=keep, dtype=FLOATX) / np.float32(keep)

    def op_dropout(self) -> OpImpl:
        def build(v: dict[str, Any], c: Case) -> dict[str, Any]:
            return {"y_train": self.dropout(v["x"], c.config["p"], 1234), "y_eval": v["x"]}

        return self._op("composed", "theano.sandbox.rng_mrg.MRG_RandomStreams.binomial mask", build,
                        note="theano has no dropout: x * Bernoulli(1 - p) mask / (1 - p) from its MRG random streams; at "
                             "inference the graph simply leaves it out")

    def op_embedding(self) -> OpImpl:
        return self._op("composed", "table[indices] (theano.tensor advanced indexing)",
                        lambda v, c: {"y": v["weight"][v["indices"]]},
                        note="theano has no embedding layer: indexing the table by the integer indices")

    def scan_loop(self) -> str:
        """How theano.scan runs its loop here, found out once: its compiled loop (scan_perform, C that an old Cython
        generated, built by g++ at first use) or, when that cannot be built, its own Python loop: Theano falls back
        to the Python loop when scan_perform cannot be imported, so a build failure is turned into that ImportError.
        The step inside the loop is a compiled theano.function either way."""
        if self._scan_loop is None:
            try:
                import theano.scan_module.scan_perform_ext  # noqa: F401
                self._scan_loop = "theano.scan's compiled loop (scan_perform)"
            except ImportError as exc:
                self._scan_loop = f"theano.scan's Python loop (scan_perform cannot be imported: {str(exc)[:200]})"
            except Exception as exc:  # the C build failed: theano would raise it at every scan
                found = re.findall(r"fatal error: \S+: [^.]*", str(exc)) or re.findall(r"error: [^.]*", str(exc))
                sys.modules["theano.scan_module.scan_perform_ext"] = None  # the import now fails: theano's fallback
                self._scan_loop = ("theano.scan's Python loop: its compiled loop (scan_perform.c, generated by an old Cython) "
                                   f"does not build on Python {sys.version_info.major}.{sys.version_info.minor} "
                                   f"({'; '.join(dict.fromkeys(found[:3])) or type(exc).__name__}), so the adapter makes "
                                   "theano take the Python loop it uses when scan_perform cannot be imported")
        return self._scan_loop

    def _scan(self, step: Callable[..., Any], sequences: Any, outputs_info: list[Any], non_sequences: list[Any],
              go_backwards: bool = False) -> Any:
        self.scan_loop()
        out, updates = self.th.scan(step, sequences=sequences, outputs_info=outputs_info, non_sequences=non_sequences,
                                    go_backwards=go_backwards)
        if updates:
            raise RuntimeError("theano.scan returned updates for a recurrence without random streams")
        return out

    def _zeros(self, *shape: int) -> Any:
        return self.T.unbroadcast(self.T.zeros(shape, dtype=FLOATX), *range(len(shape)))

    def rnn(self, x: Any, wx: Any, wh: Any, b: Any, batch: int, hidden: int, reverse: bool = False) -> Any:
        """Elman RNN over batch-first x with theano.scan: all hidden states, batch first."""
        T = self.T
        xs = (T.dot(x, wx) + b).dimshuffle(1, 0, 2)  # (T, B, H): the input projection for every step at once
        hs = self._scan(lambda xt, h, u: T.tanh(xt + T.dot(h, u)), xs, [self._zeros(batch, hidden)], [wh], go_backwards=reverse)
        return (hs[::-1] if reverse else hs).dimshuffle(1, 0, 2)

    def lstm(self, x: Any, wx: Any, wh: Any, b: Any | None, batch: int, hidden: int) -> tuple[Any, Any]:
        """LSTM, gates i, f, g, o (the catalog's order), with theano.scan: (all h batch first, all c time first)."""
        T, H = self.T, hidden
        sig = self.nnet.sigmoid
        xs = T.dot(x, wx)
        xs = (xs if b is None else xs + b).dimshuffle(1, 0, 2)

        def step(zt: Any, h: Any, c: Any, u: Any) -> tuple[Any, Any]:
            z = zt + T.dot(h, u)
            c = sig(z[:, H : 2 * H]) * c + sig(z[:, :H]) * T.tanh(z[:, 2 * H : 3 * H])
            return sig(z[:, 3 * H :]) * T.tanh(c), c

        hs, cs = self._scan(step, xs, [self._zeros(batch, H), self._zeros(batch, H)], [wh])
        return hs.dimshuffle(1, 0, 2), cs

    def gru(self, x: Any, wx: Any, wh: Any, bx: Any, bh: Any, batch: int, hidden: int) -> Any:
        """GRU, gates r, z, n, reset gate applied after the recurrent matmul, with theano.scan; batch first."""
        T, H = self.T, hidden
        sig = self.nnet.sigmoid
        xs = (T.dot(x, wx) + bx).dimshuffle(1, 0, 2)

        def step(gx: Any, h: Any, u: Any, c: Any) -> Any:
            gh = T.dot(h, u) + c
            r = sig(gx[:, :H] + gh[:, :H])
            z = sig(gx[:, H : 2 * H] + gh[:, H : 2 * H])
            n = T.tanh(gx[:, 2 * H :] + r * gh[:, 2 * H :])
            return (1.0 - z) * n + z * h

        return self._scan(step, xs, [self._zeros(batch, H)], [wh, bh]).dimshuffle(1, 0, 2)

    def op_simple_rnn(self) -> OpImpl:
        def build(v: dict[str, Any], c: Case) -> dict[str, Any]:
            y = self.rnn(v["x"], v["wx"], v["wh"], v["b"], c.arrays["x"].shape[0], c.config["hidden"])
            return {"y": y, "h": y[:, -1]}

        return self._op("composed", "theano.scan (tanh step)", build,
                        note=f"theano has no recurrent layers: the step under theano.scan; {self.scan_loop()}")

    def op_lstm(self) -> OpImpl:
        def build(v: dict[str, Any], c: Case) -> dict[str, Any]:
            if c.config["gate_order"] != "ifgo":
                raise ValueError(f"gate order {c.config['gate_order']!r}: the step is written for i, f, g, o")
            y, cs = self.lstm(v["x"], v["wx"], v["wh"], v["b"], c.arrays["x"].shape[0], c.config["hidden"])
            return {"y": y, "h": y[:, -1], "c": cs[-1]}

        return self._op("composed", "theano.scan (LSTM step)", build,
                        note=f"theano has no recurrent layers: the LSTM step, gates i, f, g, o, under theano.scan; {self.scan_loop()}")

    def op_gru(self) -> OpImpl:
        def build(v: dict[str, Any], c: Case) -> dict[str, Any]:
            if c.config["gate_order"] != "rzn":
                raise ValueError(f"gate order {c.config['gate_order']!r}: the step is written for r, z, n")
            y = self.gru(v["x"], v["wx"], v["wh"], v["bx"], v["bh"], c.arrays["x"].shape[0], c.config["hidden"])
            return {"y": y, "h": y[:, -1]}

        return self._op("composed", "theano.scan (GRU step)", build,
                        note="theano has no recurrent layers: the GRU step (reset gate after the recurrent matmul) under theano.scan; "
                             + self.scan_loop())

    def op_bidirectional_rnn(self) -> OpImpl:
        def build(v: dict[str, Any], c: Case) -> dict[str, Any]:
            b, h = c.arrays["x"].shape[0], c.config["hidden"]
            yf = self.rnn(v["x"], v["wx_fw"], v["wh_fw"], v["b_fw"], b, h)
            yb = self.rnn(v["x"], v["wx_bw"], v["wh_bw"], v["b_bw"], b, h, reverse=True)
            return {"y": self.T.concatenate([yf, yb], axis=-1)}

        return self._op("composed", "theano.scan forward + theano.scan(go_backwards=True)", build,
                        note="two scans, the backward one's outputs reversed back into time order, concatenated [forward, backward]; "
                             + self.scan_loop())

    def attention(self, q: Any, k: Any, v: Any, w: dict[str, Any], heads: int, shapes: tuple[int, int, int, int]) -> Any:
        """Multi-head scaled dot-product attention: x W + b projections, (batch * heads) stacks through
        theano.tensor.batched_dot, softmax over the keys (theano.tensor.nnet.softmax takes 2-D input)."""
        T = self.T
        n, lq, lk, e = shapes
        d = e // heads

        def split(y: Any, length: int) -> Any:  # (N, L, E) -> (N * heads, L, d)
            return y.reshape((n, length, heads, d)).dimshuffle(0, 2, 1, 3).reshape((n * heads, length, d))

        qh = split(T.dot(q, w["wq"]) + w["bq"], lq)
        kh = split(T.dot(k, w["wk"]) + w["bk"], lk)
        vh = split(T.dot(v, w["wv"]) + w["bv"], lk)
        if self.th.config.blas.ldflags:
            scores = T.batched_dot(qh, kh.dimshuffle(0, 2, 1))
        else:  # see BATCHED_DOT_NOTE: products broadcast over a new axis and summed
            scores = T.sum(qh.dimshuffle(0, 1, "x", 2) * kh.dimshuffle(0, "x", 1, 2), axis=3)
        scores = scores * np.float32(1.0 / math.sqrt(d))
        att = self.nnet.softmax(scores.reshape((n * heads * lq, lk))).reshape((n * heads, lq, lk))
        if self.th.config.blas.ldflags:
            heads_out = T.batched_dot(att, vh)
        else:
            heads_out = T.sum(att.dimshuffle(0, 1, 2, "x") * vh.dimshuffle(0, "x", 1, 2), axis=2)
        out = heads_out.reshape((n, heads, lq, d)).dimshuffle(0, 2, 1, 3).reshape((n, lq, e))
        return T.dot(out, w["wo"]) + w["bo"]

    def attention_note(self) -> str:
        if self.th.config.blas.ldflags:
            return "per-head products through theano.tensor.batched_dot"
        return BATCHED_DOT_NOTE

    def op_multi_head_attention(self) -> OpImpl:
        def build(v: dict[str, Any], c: Case) -> dict[str, Any]:
            a = c.arrays
            shapes = (a["q"].shape[0], a["q"].shape[1], a["k"].shape[1], a["q"].shape[2])
            return {"y": self.attention(v["q"], v["k"], v["v"], v, c.config["heads"], shapes)}

        return self._op("composed", "theano.tensor.dot + theano.tensor.nnet.softmax", build,
                        note=f"theano has no attention layer: projections, per-head products and softmax; {self.attention_note()}")

    def op_prelu(self) -> OpImpl:
        relu = self._api("theano.tensor.nnet.relu")
        return self._op("native", "theano.tensor.nnet.relu(x, alpha)", lambda v, c: {"y": relu(v["x"], self._channel(v["alpha"]))},
                        note="theano's relu takes a tensor alpha (a learnable slope: its documented parameterised rectifier), "
                             "broadcast per channel")

    def op_hierarchical_softmax(self) -> OpImpl:
        h_softmax = self._api("theano.tensor.nnet.h_softmax")

        def build(v: dict[str, Any], c: Case) -> dict[str, Any]:
            b = c.arrays["x"].shape[0]
            cfg = c.config
            p = h_softmax(v["x"], b, cfg["vocab"], cfg["clusters"], cfg["cluster_size"], v["w_cluster"], v["b_cluster"],
                          v["w_word"], v["b_word"], target=v["targets"])
            return {"y": self.T.log(p).reshape((b,))}

        return self._op("native", "theano.tensor.nnet.h_softmax", build,
                        note="theano's two-level hierarchical softmax (W1 (D, K), b1 (K), W2 (K, D, S), b2 (K, S): the "
                             "catalog's layouts); it returns p(target), whose log is the output")

    def op_ctc_loss(self) -> OpImpl:
        ctc_mod = self._api("theano.tensor.nnet.ctc")
        available = ctc_mod.ctc_available()
        if not available:
            msg = str(ctc_mod.ctc_available.msg or "")
            found = re.search(r"(?:fatal )?error: [^\\\n]*", msg.split("\n", 1)[-1])
            detail = found.group(0) if found else msg.strip().splitlines()[0] if msg.strip() else "no message"
            raise Unsupported(f"theano.tensor.nnet.ctc wraps Baidu's warp-ctc library, which is not here "
                              f"(ctc_available() is False: {detail[:300]})",
                              looked_up=[f"theano.tensor.nnet.ctc.ctc_available(): libwarpctc.so and ctc.h "
                                         f"(config.ctc.root={self.th.config.ctc.root!r})"])
        T = self.T

        def build(v: dict[str, Any], c: Case) -> dict[str, Any]:
            a = c.arrays
            labels = np.where(np.arange(a["targets"].shape[1])[None, :] < a["target_lengths"][:, None], a["targets"], -1)
            y = ctc_mod.ctc(v["logits"], T.constant(labels.astype(np.int32)),
                            T.constant(a["input_lengths"].astype(np.int32)))
            return {"y": y}

        return self._op("native", "theano.tensor.nnet.ctc.ctc", build, note="warp-ctc on the CPU; labels padded with -1")

    # ------------------------------------------------------------------------------------------ optimizers
    def _optimizer(self, how: str, updates: Callable[[Any, Any, dict[str, Any]], list[tuple[Any, Any]]]) -> OpImpl:
        T = self.T
        offered = [n for n in ("optimizers", "optimizer", "train") if hasattr(self.th, n)]

        def run(c: Case) -> dict[str, Array]:
            w = self.shared(c.arrays["w"], "w")
            g_in = T.vector("g", dtype=FLOATX)
            grad = self.th.grad(T.sum(w * g_in), w)  # d/dw of sum(w * g) is g: the catalog's gradient, via theano.grad
            step = self.function([g_in], [], updates=updates(w, grad, c.config))
            history = []
            for g in c.arrays["grads"]:
                step(np.asarray(g, np.float32))
                history.append(np.array(w.get_value()))
            return {"w": np.stack(history)}

        note = ("theano ships no optimizers" + (f" (it has {', '.join(offered)})" if offered else " (no theano.optimizers)")
                + f": {how}, as the updates of one theano.function over shared state")
        return OpImpl("composed", "theano.function(updates=...)", run, note=note)

    def _state(self, w: Any, value: float = 0.0) -> Any:
        return self.th.shared(np.full(w.get_value().shape, value, np.float32))

    def _step_count(self) -> tuple[Any, Any]:
        t = self.th.shared(np.float32(0.0))
        return t, t + np.float32(1.0)

    def op_sgd(self) -> OpImpl:
        return self._optimizer("w -= lr g", lambda w, g, h: [(w, w - np.float32(h["lr"]) * g)])

    def _momentum(self, nesterov: bool) -> Callable[[Any, Any, dict[str, Any]], list[tuple[Any, Any]]]:
        def updates(w: Any, g: Any, h: dict[str, Any]) -> list[tuple[Any, Any]]:
            v = self._state(w)
            lr, mu = np.float32(h["lr"]), np.float32(h["mu"])
            v_new = mu * v + g
            return [(v, v_new), (w, w - lr * (g + mu * v_new if nesterov else v_new))]

        return updates

    def op_momentum(self) -> OpImpl:
        return self._optimizer("v = mu v + g; w -= lr v", self._momentum(False))

    def op_nesterov(self) -> OpImpl:
        return self._optimizer("v = mu v + g; w -= lr (g + mu v)", self._momentum(True))

    def op_adagrad(self) -> OpImpl:
        def updates(w: Any, g: Any, h: dict[str, Any]) -> list[tuple[Any, Any]]:
            acc = self._state(w, h["initial_accumulator"])
            acc_new = acc + self.T.sqr(g)
            return [(acc, acc_new), (w, w - np.float32(h["lr"]) * g / (self.T.sqrt(acc_new) + np.float32(h["eps"])))]

        return self._optimizer("acc += g^2; w -= lr g / (sqrt(acc) + eps), acc from the initial accumulator", updates)

    def op_adadelta(self) -> OpImpl:
        def updates(w: Any, g: Any, h: dict[str, Any]) -> list[tuple[Any, Any]]:
            T = self.T
            acc_g, acc_d = self._state(w), self._state(w)
            rho, rest, eps = np.float32(h["rho"]), np.float32(1.0 - h["rho"]), np.float32(h["eps"])
            acc_g_new = rho * acc_g + rest * T.sqr(g)
            delta = T.sqrt(acc_d + eps) / T.sqrt(acc_g_new + eps) * g
            return [(acc_g, acc_g_new), (acc_d, rho * acc_d + rest * T.sqr(delta)), (w, w - np.float32(h["lr"]) * delta)]

        return self._optimizer("Zeiler's AdaDelta with the step scaled by lr", updates)

    def op_rmsprop(self) -> OpImpl:
        def updates(w: Any, g: Any, h: dict[str, Any]) -> list[tuple[Any, Any]]:
            T = self.T
            acc = self._state(w)
            acc_new = np.float32(h["rho"]) * acc + np.float32(1.0 - h["rho"]) * T.sqr(g)
            return [(acc, acc_new), (w, w - np.float32(h["lr"]) * g / (T.sqrt(acc_new) + np.float32(h["eps"])))]

        return self._optimizer("v = rho v + (1 - rho) g^2; w -= lr g / (sqrt(v) + eps)", updates)

    def _adam(self, decoupled: bool) -> Callable[[Any, Any, dict[str, Any]], list[tuple[Any, Any]]]:
        def updates(w: Any, g: Any, h: dict[str, Any]) -> list[tuple[Any, Any]]:
            T = self.T
            m, v = self._state(w), self._state(w)
            t, t_new = self._step_count()
            lr, b1, b2, eps = (np.float32(h[k]) for k in ("lr", "b1", "b2", "eps"))
            m_new = b1 * m + np.float32(1.0 - h["b1"]) * g
            v_new = b2 * v + np.float32(1.0 - h["b2"]) * T.sqr(g)
            base = w - np.float32(h["lr"] * h["weight_decay"]) * w if decoupled else w
            step = lr * (m_new / (np.float32(1.0) - b1**t_new)) / (T.sqrt(v_new / (np.float32(1.0) - b2**t_new)) + eps)
            return [(t, t_new), (m, m_new), (v, v_new), (w, base - step)]

        return updates

    def op_adam(self) -> OpImpl:
        return self._optimizer("Adam as the paper's algorithm 1 (bias-corrected m and v, eps outside the root)", self._adam(False))

    def op_adamw(self) -> OpImpl:
        return self._optimizer("AdamW: w -= lr weight_decay w, then the Adam step", self._adam(True))

    # ------------------------------------------------------------------------------------------ graphs
    def graph_namespace(self) -> Any:
        T = self.T
        # item: Variable.eval(), Theano's way to read a value out of a graph (it compiles and runs a function)
        return types.SimpleNamespace(sum=T.sum, tanh=T.tanh, matmul=T.dot, item=lambda v: float(v.eval()))

    def graph_notes(self) -> list[str]:
        return ["the arguments are theano.shared variables and the program builds a symbolic graph; F.item is "
                "Variable.eval() (which compiles a theano.function); value and gradient come from one theano.function "
                "of the finished graph and theano.grad. A comparison of two Variables is itself a Variable (theano.tensor.lt), "
                "and the Python while/if asks for its truth value: what Theano answers is recorded as it happened"]

    def value_and_grad(self, fn: Callable[..., Any], args: Sequence[Array]) -> tuple[float, Array]:
        xs = [self.th.shared(np.asarray(a, np.float32), name=f"arg{i}") for i, a in enumerate(args)]
        value = fn(self.graph_namespace(), *xs)
        grad = self.th.grad(value, xs[0])
        out = self.function([], [value, grad])()
        return float(out[0]), np.asarray(out[1])

    def compile_paths(self) -> list[str]:
        paths = [FUNCTION] if hasattr(self.th, "function") else []
        if paths and "FAST_COMPILE" in self.th.compile.mode.predefined_modes:
            paths.append(FAST_COMPILE)
        return paths

    def compile_path_lookups(self) -> list[str]:
        return ["theano.function", "theano.compile.mode.predefined_modes['FAST_COMPILE']"]

    def compile(self, fn: Callable[..., Any], path: str) -> CompiledFunction:
        if path not in (FUNCTION, FAST_COMPILE):
            return super().compile(fn, path)
        mode = "FAST_COMPILE" if path == FAST_COMPILE else None
        state: dict[str, Any] = {"fn": None, "traces": 0}
        F = self.graph_namespace()

        def call(args: Sequence[Array]) -> tuple[float, Array]:
            arrays = [np.asarray(a, np.float32) for a in args]
            if state["fn"] is None:  # the graph is built and compiled on the first call, so the probe times it
                xs = [self.symbolic(f"x{i}", a) for i, a in enumerate(arrays)]
                value = fn(F, *xs)
                state["fn"] = self.function(xs, [value, self.th.grad(value, xs[0])], mode=mode)
                state["traces"] += 1
            value, grad = state["fn"](*arrays)
            return float(value), np.asarray(grad)

        notes = ["the program is built once on symbolic inputs (no broadcastable axes, so no fixed shapes) and compiled "
                 "once by theano.function; later calls, new shapes included, run the compiled function"]
        if mode:
            notes.append("FAST_COMPILE: few graph optimisations and Python implementations of the ops (the py linker), "
                         "no g++")
        return CompiledFunction(path, call, lambda: state["traces"], notes)

    # ------------------------------------------------------------------------------------------ throughput
    def _check_precision(self, precision: str) -> None:
        if precision == "fp32":
            return
        if precision not in PRECISIONS:
            raise KeyError(f"unknown precision {precision!r}")
        if precision == "bf16":
            try:
                self.T.TensorType("bfloat16", ())
                answer = "TensorType('bfloat16') exists, which this adapter does not map"
            except Exception as exc:
                answer = f"TensorType('bfloat16', ()) raises {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            raise Unsupported(f"theano {self.th.__version__} has no bfloat16: {answer}; its float types are "
                              f"{', '.join(sorted(self.T.float_dtypes))}",
                              looked_up=["theano.tensor.TensorType('bfloat16')", "theano.tensor.float_dtypes"])
        from theano import configparser

        keys = sorted(v.fullname for v in configparser._config_var_list if "tf32" in v.fullname.lower())
        raise Unsupported("theano has no TF32 setting (" + (", ".join(keys) or "no theano.config option names tf32")
                          + f") and this adapter runs on the CPU ({self.device}), where no TF32 exists",
                          looked_up=["theano.config.*tf32*"])

    def _no_eager(self) -> None:
        """Theano computes nothing outside a compiled theano.function: the evidence, looked up now."""
        from theano import configparser

        a = self.th.shared(np.ones((2, 2), np.float32))
        y = self.T.dot(a, a)
        keys = sorted(v.fullname for v in configparser._config_var_list
                      if any(w in v.fullname.lower() for w in ("eager", "imperative")))
        op = type(y.owner.op).__name__ if y.owner is not None else "none"
        raise Unsupported(f"theano has no eager execution: theano.tensor.dot on two shared variables returns a "
                          f"{type(y).__module__}.{type(y).__name__} (a graph node, op {op}) holding no value, values come "
                          f"only from a compiled theano.function (Variable.eval() compiles one too), and theano.config "
                          f"has {'the options ' + ', '.join(keys) if keys else 'no eager or imperative option'}",
                          looked_up=["theano.tensor.dot(shared, shared): a value", "theano.config.*eager* / *imperative*"])

    def _lazy(self, build: Callable[[], Any]) -> tuple[Callable[..., Any], Callable[[], int]]:
        """A theano.function built and compiled at the first call (so the probe's first step holds the compile)."""
        state: dict[str, Any] = {"fn": None, "count": 0}

        def call(*args: Any) -> Any:
            if state["fn"] is None:
                state["fn"] = build()
                state["count"] += 1
            return state["fn"](*args)

        return call, lambda: state["count"]

    def _compile_notes(self) -> list[str]:
        return [f"compile time: graph optimisation plus {self.th.config.cxx or 'no compiler'} building a C module for each op "
                "not already in this process's compile directory (fresh for every worker process, so shared only with "
                "probes that ran earlier in the same run)"]

    def workload(self, spec: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        self._check_precision(precision)
        if mode != "compiled":
            self._no_eager()
        T = self.T
        if spec.id == "gemm":
            a, b = self.shared(arrays["a"]), self.shared(arrays["b"])

            def build() -> Any:
                return self.function([], T.dot(a, b))
        elif spec.id == "conv2d":
            x, w = self.shared(arrays["x"]), self.shared(arrays["w"])
            conv2d = self._api("theano.tensor.nnet.conv2d")

            def build() -> Any:
                return self.function([], conv2d(x, w, input_shape=arrays["x"].shape, filter_shape=arrays["w"].shape,
                                                border_mode=(1, 1), filter_flip=False))
        else:
            raise NotMapped(f"the theano adapter has no single-op workload {spec.id}")
        step, count = self._lazy(build)
        notes = ["forward only: one theano.function of shared operands, compiled at the first call",
                 "conv2d with filter_flip=False (cross-correlation)" if spec.id == "conv2d" else "theano.tensor.dot",
                 *self._compile_notes()]
        return Workload(step, lambda: None, 0, FUNCTION, notes, observe=lambda y: {"y": np.asarray(y)}, compile_scope="op",
                        traces=count, precision=precision)

    def _node(self, node: Any, shapes: dict[str, tuple[int, ...]], p: dict[str, Any]) -> Callable[[list[Any]], Any]:
        """The node's function of its input Variables; p holds its shared parameters (catalog names and layouts)."""
        T, nnet, kind, a = self.T, self.nnet, node.kind, node.attrs
        x_shape = shapes[node.inputs[0]] if node.inputs else ()
        if kind == "dense":
            return lambda xs: self.dense(xs[0], p["w"], p.get("b"))
        if kind == "conv2d":
            conv2d = self._api("theano.tensor.nnet.conv2d")

            def conv(xs: list[Any]) -> Any:
                y = conv2d(xs[0], p["w"], input_shape=x_shape, filter_shape=p["w"].get_value().shape,
                           border_mode=(a["padding"],) * 2, subsample=(a["stride"],) * 2, filter_flip=False)
                return y + self._channel(p["b"]) if "b" in p else y

            return conv
        if kind == "batch_norm":
            train = self._api("theano.tensor.nnet.bn.batch_normalization_train")
            return lambda xs: train(xs[0], self._channel(p["gamma"]), self._channel(p["beta"]), axes="spatial",
                                    epsilon=bn_epsilon(NORM_EPS))[0]
        if kind == "layer_norm":
            return lambda xs: self.layer_norm(xs[0], p["gamma"], p["beta"], NORM_EPS)
        if kind == "relu":
            return lambda xs: nnet.relu(xs[0])
        if kind == "gelu":
            return lambda xs: np.float32(0.5) * xs[0] * (np.float32(1.0) + T.erf(xs[0] * np.float32(1.0 / math.sqrt(2.0))))
        if kind == "max_pool":
            return lambda xs: self._pool(xs[0], a["kernel"], a["stride"], a["padding"], "max")
        if kind == "global_avg_pool":
            return lambda xs: T.mean(xs[0], axis=(2, 3))
        if kind == "flatten":
            return lambda xs: xs[0].flatten(2)
        if kind == "add":
            return lambda xs: xs[0] + xs[1]
        if kind == "mean_tokens":
            return lambda xs: T.mean(xs[0], axis=1)
        if kind == "embedding":
            return lambda xs: p["table"][xs[0]]
        if kind == "positional":
            return lambda xs: xs[0] + p["table"].dimshuffle("x", 0, 1)
        if kind == "self_attention":
            n, t, d = x_shape
            return lambda xs: self.attention(xs[0], xs[0], xs[0], p, a["heads"], (n, t, t, d))
        if kind == "lstm_last":
            return lambda xs: self.lstm(xs[0], p["wx"], p["wh"], None, x_shape[0], a["hidden"])[0][:, -1]
        if kind == "gru":
            return lambda xs: self.gru(xs[0], p["wx"], p["wh"], p["bx"], p["bh"], x_shape[0], a["hidden"])
        raise NotMapped(f"the theano adapter has no mapping for node kind {kind!r}")

    def model_workload(self, model: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """Any catalog model: every node built by _node for its kind on shared parameters, the mean softmax
        cross-entropy, theano.grad, and the SGD update as the updates of the one theano.function that is the step."""
        self._check_precision(precision)
        if mode != "compiled":
            self._no_eager()
        T, nnet = self.T, self.nnet
        shapes = model.shapes()
        params = {name: self.shared(arrays[name], name) for name in model.param_shapes()}
        x_in = self.symbolic("x", np.asarray(arrays["x"]))
        labels_in = T.lvector("labels")

        def build() -> Any:
            values = {"input": x_in}
            for node in model.nodes:
                prefix = f"{node.name}."
                p = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
                values[node.name] = self._node(node, shapes, p)([values[i] for i in node.inputs])
            logits = values[model.output]
            logits = logits.reshape((-1, shapes[model.output][-1]))
            loss = T.mean(nnet.categorical_crossentropy(nnet.softmax(logits), labels_in))
            grads = self.th.grad(loss, list(params.values()))
            lr = np.float32(LEARNING_RATE)
            return self.function([x_in, labels_in], loss, updates=[(p, p - lr * g) for p, g in zip(params.values(), grads)])

        step_fn, count = self._lazy(build)
        x = self._value(np.asarray(arrays["x"]))
        labels = np.asarray(arrays["labels"], np.int64).reshape(-1)

        def train_step() -> Any:
            return step_fn(x, labels)

        def observe(loss: Any) -> dict[str, Any]:
            return {"loss": np.asarray(loss), **{name: np.array(p.get_value()) for name, p in params.items()}}

        kinds = set(model.kinds())
        composed = [text for kind, text in _COMPOSED_KINDS.items() if kind in kinds]
        notes = [f"node kinds: {', '.join(sorted(kinds))}; built from theano.tensor and theano.tensor.nnet"
                 + (f"; composed: {'; '.join(composed)}" if composed else ""),
                 "the whole step is one theano.function: forward, theano.grad, and the SGD update as its updates on the "
                 "shared parameters; the loss is theano.tensor.nnet.categorical_crossentropy of softmax (Theano's graph "
                 "optimiser fuses the two)", *self._compile_notes()]
        if kinds & {"lstm_last", "gru"}:
            notes.append(f"recurrences: {self.scan_loop()}")
        if "self_attention" in kinds:
            notes.append(f"attention: {self.attention_note()}")
        count_params = int(sum(p.get_value().size for p in params.values()))
        return Workload(train_step, lambda: None, count_params, FUNCTION, notes, observe=observe, compile_scope="step",
                        traces=count, precision=precision)

    # ------------------------------------------------------------------------------------------ numerics
    def array_api(self) -> ArrayAPI:
        """theano.tensor mirrors NumPy's names (zeros, exp, dot, concatenate...) on symbolic Variables; a value is read
        with Variable.eval(), which compiles and runs a theano.function. That is the array API Theano offers, so it
        is what the numerics probe measures."""
        T = self.T

        def to_numpy(v: Any) -> Array:
            return np.asarray(v.eval() if isinstance(v, self.th.gof.Variable) else v)

        return ArrayAPI(f"theano.tensor {self.th.__version__} (symbolic; values through Variable.eval())", T,
                        T.as_tensor_variable, to_numpy, None)

    # ------------------------------------------------------------------------------------------ scale
    def allreduce(self, rank: int, world: int, host: str, port: int, value: Array) -> AllReduceResult:
        """Theano has no distributed API of its own; its multi-GPU collectives are libgpuarray's (pygpu.collectives,
        used through theano.gpuarray, e.g. by the separate platoon package), which need pygpu and GPUs."""
        looked = ["pygpu.collectives (libgpuarray's collectives, what theano.gpuarray's multi-GPU code uses)",
                  "theano.gpuarray submodules named *comm* / *collective* / *distributed*",
                  "theano.distributed / theano.parallel"]
        gpuarray = importlib.util.find_spec("theano.gpuarray")
        subs = sorted(m.name for m in pkgutil.iter_modules(gpuarray.submodule_search_locations or [])) if gpuarray else []
        comm = [s for s in subs if any(w in s for w in ("comm", "collective", "distributed"))]
        own = [n for n in ("distributed", "parallel") if importlib.util.find_spec(f"theano.{n}") is not None]
        pygpu = importlib.util.find_spec("pygpu") is not None
        if comm or own or pygpu:
            raise NotMapped(f"found {', '.join(comm + own) or 'pygpu'}, which this adapter does not map")
        raise Unsupported(f"theano {self.th.__version__} has no all-reduce: no theano.distributed or theano.parallel, no "
                          f"collective module in theano.gpuarray (it has {', '.join(subs) or 'none'}), and pygpu, whose "
                          "collectives Theano's multi-GPU training relied on, is not installed", looked_up=looked)

    # ------------------------------------------------------------------------------------------ onnx
    def _no_onnx(self, direction: str) -> None:
        names = ["theano.onnx", "theano.contrib.onnx", "onnx_theano", "theano_onnx"]
        found = [n for n in names if _find(n)]
        # every file and folder of the installed theano package whose name mentions onnx
        root = self.th.__path__[0]
        files = sorted(os.path.relpath(os.path.join(d, f), root) for d, dirs, fs in os.walk(root)
                       for f in (*dirs, *fs) if "onnx" in f.lower())
        if found or files:
            raise NotMapped(f"found {', '.join(found + files)}, which this adapter does not use")
        raise Unsupported(f"theano {self.th.__version__} has no ONNX {direction}er: none of {', '.join(names)} can be "
                          f"imported, and no file or folder of the installed theano package ({root}) names onnx",
                          looked_up=[*names, f"{root}/**/*onnx*"])

    def onnx_export(self, model: Any, path: str, opset: int | None) -> ExportResult:
        self._no_onnx("export")
        raise AssertionError("unreachable")

    def onnx_import(self, path: str) -> ImportResult:
        self._no_onnx("import")
        raise AssertionError("unreachable")


def _find(dotted: str) -> bool:
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):
        return False

