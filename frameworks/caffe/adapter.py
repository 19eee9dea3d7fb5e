"""Caffe adapter: Debian bullseye's python3-caffe (Caffe 1.0 plus its master branch of August 2018, the CPU_ONLY
build) on that release's Python 3.9, in a Docker image (the row's runner).

Everything is done the way Caffe's users did it: a network is written as a prototxt through caffe.NetSpec
(caffe.layers, caffe.params), loaded as a caffe.Net, its parameter blobs filled from NumPy (net.params), run with
forward(), and differentiated with backward() after the top blobs' diffs are set (the vector-Jacobian product with the
case's cotangents); the input's gradient is its blob's diff (the prototxt sets force_backward), each parameter's is
its blob's diff. Optimizers are Caffe's solvers (SGDSolver, NesterovSolver, AdaGradSolver, AdaDeltaSolver,
RMSPropSolver, AdamSolver) stepping a net whose loss is sum(w * g), so the gradient Caffe computes is the case's.

Layouts: InnerProduct keeps its weight as (out, in) and the catalog as (in, out); Caffe's LSTM layer takes
time-major input (T, N, I) with a sequence-continuation blob and stacks its gates i, f, o, g (LSTMUnit); every
mapping is explicit below.

Caffe has no define-by-run mode: the graph namespace builds NetSpec layers, and a Python comparison or a float read
on a NetSpec top (which has no value until caffe.Net runs it) raises, which the graph probes record.
"""

from __future__ import annotations

import os
import re
import subprocess
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
    distribution_versions,
    reorder_gates,
    require,
)
from harness.catalog.models import NORM_EPS
from harness.catalog.ops import Case
from harness.catalog.workloads import LEARNING_RATE

Array = np.ndarray
CANONICAL_LSTM = "ifgo"  # the catalog's gate order
CAFFE_LSTM = "ifog"  # LSTMUnit reads the 4H gate block as input, forget, output, then the cell candidate g
NET_PATH = "caffe.Net (a static prototxt graph from caffe.NetSpec)"
DEBIAN_PACKAGE = "python3-caffe"
#: what a param spec of a blob that must not learn says (a bias Caffe's layer always has, held at zero)
FROZEN = {"lr_mult": 0, "decay_mult": 0}


def _same(a: Array) -> Array:
    return a


def _blob_key(blob: Any) -> int:
    """The address of a blob's data: parameters shared by name between layers are one blob in memory."""
    return int(blob.data.__array_interface__["data"][0])


class Sym:
    """A NetSpec top in the graph namespace: arithmetic adds layers; anything that needs its value raises, since
    the value exists only when caffe.Net runs the finished prototxt."""

    def __init__(self, tracer: Tracer, top: Any, shape: tuple[int, ...], arg: int | None = None) -> None:
        self.tracer, self.top, self.shape, self.arg = tracer, top, shape, arg

    def __mul__(self, other: Any) -> Sym:
        return self.tracer.mul(self, other)

    __rmul__ = __mul__

    def _no_value(self, what: str) -> Any:
        raise TypeError(f"{what} needs the value of a caffe.NetSpec top, which exists only once caffe.Net runs the "
                        "finished prototxt: Caffe's graph is static, so Python cannot branch on it")

    def __lt__(self, other: Any) -> bool:
        return bool(self._no_value(f"comparing it with {other!r}"))

    def __le__(self, other: Any) -> bool:
        return bool(self._no_value(f"comparing it with {other!r}"))

    def __gt__(self, other: Any) -> bool:
        return bool(self._no_value(f"comparing it with {other!r}"))

    def __ge__(self, other: Any) -> bool:
        return bool(self._no_value(f"comparing it with {other!r}"))

    def __bool__(self) -> bool:
        return bool(self._no_value("its truth value"))

    def __float__(self) -> float:
        return float(self._no_value("float()"))


class Tracer:
    """Builds a NetSpec from a catalog program: sum -> Reduction SUM, tanh -> TanH, x * y -> Eltwise PROD,
    x * c -> Power(scale=c), matmul(x, w) -> InnerProduct(transpose=True) whose weight is the argument w (copied into
    the layer's parameter blob before every run: Caffe's InnerProduct takes its weight as a parameter, not a bottom)."""

    def __init__(self, caffe: Any, shapes: Sequence[tuple[int, ...]]) -> None:
        self.caffe, self.L, self.P = caffe, caffe.layers, caffe.params
        self.n = caffe.NetSpec()
        self.count = 0
        self.bound: dict[str, int] = {}  # InnerProduct layer -> index of the argument that is its weight
        self.args = []
        for i, shape in enumerate(shapes):
            top = self.L.Input(shape=dict(dim=list(shape)))
            setattr(self.n, f"arg{i}", top)
            self.args.append(Sym(self, top, tuple(shape), arg=i))

    def _name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}{self.count}"

    def _add(self, kind: str, top: Any, shape: tuple[int, ...]) -> Sym:
        setattr(self.n, self._name(kind), top)
        return Sym(self, top, shape)

    def sum(self, x: Sym) -> Sym:
        return self._add("sum", self.L.Reduction(x.top, operation=self.P.Reduction.SUM, axis=0), ())

    def tanh(self, x: Sym) -> Sym:
        return self._add("tanh", self.L.TanH(x.top), x.shape)

    def mul(self, x: Sym, other: Any) -> Sym:
        if isinstance(other, Sym):
            return self._add("prod", self.L.Eltwise(x.top, other.top, operation=self.P.Eltwise.PROD), x.shape)
        return self._add("scale", self.L.Power(x.top, scale=float(other)), x.shape)

    def matmul(self, x: Sym, w: Sym) -> Sym:
        if w.arg is None or len(w.shape) != 2:
            raise TypeError("Caffe's InnerProduct multiplies by a parameter blob: the right operand must be a 2-D "
                            "argument of the program")
        name = self._name("matmul")
        setattr(self.n, name, self.L.InnerProduct(x.top, num_output=w.shape[1], bias_term=False, transpose=True))
        self.bound[name] = w.arg
        return Sym(self, getattr(self.n, name), (*x.shape[:-1], w.shape[1]))

    def item(self, x: Sym) -> float:
        return float(x)

    def namespace(self) -> Any:
        return types.SimpleNamespace(sum=self.sum, tanh=self.tanh, matmul=self.matmul, item=self.item)


class CaffeAdapter(Adapter):
    name = "caffe"
    distribution = "caffe"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        # glog's threshold is read when libcaffe loads: INFO and WARNING lines (every layer set up) stay out of the log
        os.environ.setdefault("GLOG_minloglevel", "2")
        import caffe
        from caffe.proto import caffe_pb2

        self.caffe, self.L, self.P, self.pb = caffe, caffe.layers, caffe.params, caffe_pb2
        caffe.set_mode_cpu()
        self._dir = tempfile.mkdtemp(prefix="caffe-nets-")
        self._files = 0

    # ------------------------------------------------------------------------------------------ identity
    def _debian_version(self) -> str:
        try:
            out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", DEBIAN_PACKAGE], capture_output=True, text=True,
                                 timeout=20)
        except (OSError, subprocess.SubprocessError):
            return "unknown"
        return out.stdout.strip() or "unknown"

    def versions(self) -> dict[str, str]:
        import google.protobuf

        return {"caffe": str(self.caffe.__version__), f"{DEBIAN_PACKAGE} (Debian)": self._debian_version(),
                "protobuf (runtime)": google.protobuf.__version__,
                **distribution_versions("numpy", "protobuf", "onnx", "onnxruntime")}

    def _linked_libraries(self) -> list[str]:
        """The shared libraries this process has mapped (libcaffe, the BLAS it runs on, CUDA's if any)."""
        libs: set[str] = set()
        try:
            with open("/proc/self/maps", encoding="utf-8") as fh:
                for line in fh:
                    path = line.split()[-1]
                    if ".so" in path and path.startswith("/"):
                        libs.add(path)
        except OSError:
            pass
        return sorted(libs)

    def _cuda_evidence(self) -> tuple[bool, str]:
        """Whether libcaffe was built with CUDA: the CPU_ONLY build links no CUDA runtime and has no cudaMalloc."""
        lib = next((p for p in self._linked_libraries() if "libcaffe" in os.path.basename(p)), None)
        if lib is None:
            return False, "libcaffe is not among the mapped libraries"
        with open(lib, "rb") as fh:
            has = b"cudaMalloc" in fh.read()
        return has, f"{lib} {'refers to' if has else 'has no reference to'} cudaMalloc"

    def device_available(self) -> tuple[bool, str]:
        if self.device == "cpu":
            return True, ""
        has, evidence = self._cuda_evidence()
        if not has:
            return False, f"Debian's {DEBIAN_PACKAGE} is Caffe's CPU_ONLY build ({evidence})"
        return False, f"the caffe adapter runs on the CPU only ({evidence})"

    def device_info(self) -> dict[str, Any]:
        libs = self._linked_libraries()
        blas = sorted({os.path.basename(p) for p in libs if re.search(r"lib(open)?blas|libmkl|libatlas", os.path.basename(p))})
        return {"device": self.device, "mode": "caffe.set_mode_cpu()", "blas": blas,
                "cuda_in_libcaffe": self._cuda_evidence()[1],
                "precision": {"dtype": "float32 (pycaffe's blobs are float32 only)"},
                "precision_notes": "Caffe computes in float32 on the CPU through its BLAS; it has no TF32 or reduced "
                                   "precision setting"}

    # ------------------------------------------------------------------------------------------ nets
    def _write(self, text: str, suffix: str = ".prototxt") -> str:
        self._files += 1
        path = os.path.join(self._dir, f"net{self._files}{suffix}")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path

    def _proto(self, n: Any, force_backward: bool = True) -> Any:
        proto = n.to_proto()
        proto.force_backward = force_backward  # diffs reach the Input blobs even though no loss layer asks for them
        return proto

    def _net(self, n: Any, phase: Any = None, force_backward: bool = True) -> Any:
        path = self._write(str(self._proto(n, force_backward)))
        return self.caffe.Net(path, self.caffe.TRAIN if phase is None else phase)

    def _input(self, shape: Sequence[int]) -> Any:
        return self.L.Input(shape=dict(dim=[int(s) for s in shape]))

    def _layer_types(self) -> list[str]:
        return list(self.caffe.layer_type_list())

    def _require_layer(self, kind: str, why: str = "") -> None:
        if kind not in self._layer_types():
            raise Unsupported(f"Caffe has no {kind} layer (caffe.layer_type_list() lists {len(self._layer_types())} "
                              f"types, none of them {kind}){': ' + why if why else ''}",
                              looked_up=[f"caffe.layer_type_list() contains {kind!r}"])

    @staticmethod
    def _set(blob: Any, value: Array) -> None:
        value = np.asarray(value, np.float32)
        if tuple(blob.data.shape) != value.shape:
            raise ValueError(f"layout mapping error: caffe expects {tuple(blob.data.shape)}, got {value.shape}")
        blob.data[...] = value

    def _run(self, net: Any, case: Case, inputs: dict[str, Array], outputs: dict[str, str],
             params: dict[str, tuple[str, int, Callable[[Array], Array]]] | None = None,
             wrt: tuple[str, Callable[[Array], Array]] | None = None,
             out_maps: dict[str, Callable[[Array], Array]] | None = None,
             cot_maps: dict[str, Callable[[Array], Array]] | None = None) -> dict[str, Any]:
        """Set the input blobs, forward, read `outputs` (catalog name -> blob); with a gradient: set every output
        blob's diff (the case's cotangent, zeros for the others), backward, and read the input blob's diff and each
        parameter's (catalog name -> (layer, blob index, map to the catalog's layout))."""
        out_maps, cot_maps = out_maps or {}, cot_maps or {}
        for name, value in inputs.items():
            self._set(net.blobs[name], value)
        net.forward()
        out: dict[str, Any] = {k: out_maps.get(k, _same)(net.blobs[b].data.copy()) for k, b in outputs.items()}
        if case.grad_wrt is None:
            return out
        net.clear_param_diffs()  # Caffe accumulates parameter diffs
        diffs = {b: np.zeros(net.blobs[b].data.shape, np.float32) for b in net.outputs}
        for k, cot in case.cotangents.items():
            diffs[outputs[k]] = np.asarray(cot_maps.get(k, _same)(cot), np.float32).reshape(net.blobs[outputs[k]].data.shape)
        for blob, diff in diffs.items():
            net.blobs[blob].diff[...] = diff
        net.backward()
        grads: dict[str, Array] = {}
        if wrt is not None:
            grads[case.grad_wrt] = wrt[1](net.blobs[wrt[0]].diff.copy())
        for name, (layer, index, to_catalog) in (params or {}).items():
            grads[name] = to_catalog(net.params[layer][index].diff.copy())
        out["grads"] = grads
        return out

    def _simple(self, api: str, build: Callable[[Any, Any, Case], dict[str, Any]], kind: str = "native",
                note: str = "") -> OpImpl:
        """An op on the input x: build(n, x_top, case) adds layers (the output top named y) and returns the
        catalog parameters as {name: (layer, blob index, value in Caffe's layout, map of the gradient back)}."""

        def run(c: Case) -> dict[str, Array]:
            x = c.arrays[c.grad_wrt or "x"]
            n = self.caffe.NetSpec()
            n.x = self._input(x.shape)
            params = build(n, n.x, c)
            net = self._net(n)
            for layer, index, value, _ in params.values():
                self._set(net.params[layer][index], value)
            return self._run(net, c, {"x": x}, {"y": "y"}, {k: (p[0], p[1], p[3]) for k, p in params.items()},
                             ("x", lambda g: g))

        return OpImpl(kind, api, run, note=note)

    # ------------------------------------------------------------------------------------------ layers
    def op_dense(self) -> OpImpl:
        def build(n: Any, x: Any, c: Case) -> dict[str, Any]:
            w = c.arrays["w"]
            n.y = self.L.InnerProduct(x, num_output=w.shape[1])
            return {"w": ("y", 0, w.T, lambda g: g.T), "b": ("y", 1, c.arrays["b"], lambda g: g)}

        return self._simple("caffe.layers.InnerProduct", build, note="weight transposed: Caffe keeps (out, in)")

    def _conv(self, nd: int) -> OpImpl:
        def build(n: Any, x: Any, c: Case) -> dict[str, Any]:
            w = c.arrays["w"]  # (O, C, *k): Caffe's own layout for N-D convolution
            n.y = self.L.Convolution(x, num_output=w.shape[0], kernel_size=list(w.shape[2:]), stride=c.config["stride"],
                                     pad=c.config["padding"], dilation=c.config["dilation"])
            return {"w": ("y", 0, w, lambda g: g), "b": ("y", 1, c.arrays["b"], lambda g: g)}

        return self._simple("caffe.layers.Convolution", build,
                            note=f"on a {nd + 2}-D blob: Caffe's Convolution has as many spatial axes as the blob has after "
                                 "(N, C)" + ("; N-D im2col" if nd != 2 else ""))

    def op_conv1d(self) -> OpImpl:
        return self._conv(1)

    def op_conv2d(self) -> OpImpl:
        return self._conv(2)

    def op_conv3d(self) -> OpImpl:
        return self._conv(3)

    def op_conv_transpose2d(self) -> OpImpl:
        def build(n: Any, x: Any, c: Case) -> dict[str, Any]:
            w = c.arrays["w"]  # (C_in, C_out, kH, kW): Deconvolution's layout too
            n.y = self.L.Deconvolution(x, convolution_param=dict(num_output=w.shape[1], kernel_size=list(w.shape[2:]),
                                                                 stride=c.config["stride"], pad=c.config["padding"]))
            return {"w": ("y", 0, w, lambda g: g), "b": ("y", 1, c.arrays["b"], lambda g: g)}

        return self._simple("caffe.layers.Deconvolution", build)

    def op_separable_conv2d(self) -> OpImpl:
        def build(n: Any, x: Any, c: Case) -> dict[str, Any]:
            dw, pw = c.arrays["w_depthwise"], c.arrays["w_pointwise"]
            ch = dw.shape[0]
            n.depthwise = self.L.Convolution(x, num_output=ch, group=ch, kernel_size=list(dw.shape[2:]),
                                             stride=c.config["stride"], pad=c.config["padding"], bias_term=False)
            n.y = self.L.Convolution(n.depthwise, num_output=pw.shape[0], kernel_size=1)
            return {"w_depthwise": ("depthwise", 0, dw, lambda g: g), "w_pointwise": ("y", 0, pw, lambda g: g),
                    "b": ("y", 1, c.arrays["b"], lambda g: g)}

        return self._simple("caffe.layers.Convolution(group=C) + Convolution(1x1)", build, kind="composed",
                            note="Caffe has no separable layer: a grouped Convolution (one group per channel, weight "
                                 "(C, 1, k, k)) then a 1x1 Convolution")

    def op_max_pool2d(self) -> OpImpl:
        def build(n: Any, x: Any, c: Case) -> dict[str, Any]:
            n.y = self.L.Pooling(x, pool=self.P.Pooling.MAX, kernel_size=c.config["kernel"], stride=c.config["stride"],
                                 pad=c.config.get("padding", 0), round_mode=self.P.Pooling.FLOOR)
            return {}

        return self._simple("caffe.layers.Pooling(pool=MAX)", build,
                            note="round_mode FLOOR (Caffe's default, CEIL, can add a last window)")

    def op_avg_pool2d(self) -> OpImpl:
        def build(n: Any, x: Any, c: Case) -> dict[str, Any]:
            n.y = self.L.Pooling(x, pool=self.P.Pooling.AVE, kernel_size=c.config["kernel"], stride=c.config["stride"],
                                 pad=c.config["padding"], round_mode=self.P.Pooling.FLOOR)
            return {}

        return self._simple("caffe.layers.Pooling(pool=AVE)", build)

    def op_global_avg_pool2d(self) -> OpImpl:
        def build(n: Any, x: Any, c: Case) -> dict[str, Any]:
            n.pool = self.L.Pooling(x, pool=self.P.Pooling.AVE, global_pooling=True)
            n.y = self.L.Flatten(n.pool)
            return {}

        return self._simple("caffe.layers.Pooling(pool=AVE, global_pooling=True)", build,
                            note="(N, C, 1, 1) flattened to (N, C) by a Flatten layer")

    def op_upsample_nearest2d(self) -> OpImpl:
        def build(n: Any, x: Any, c: Case) -> dict[str, Any]:
            ch, s = c.arrays["x"].shape[1], c.config["scale"]
            n.y = self.L.Deconvolution(x, convolution_param=dict(num_output=ch, group=ch, kernel_size=s, stride=s,
                                                                 bias_term=False, weight_filler=dict(type="constant", value=1.0)),
                                       param=[FROZEN])
            return {}

        return self._simple("caffe.layers.Deconvolution(group=C, kernel=stride=scale, constant weight 1)", build,
                            kind="composed",
                            note="Caffe has no upsampling layer (no Upsample/Interp in caffe.layer_type_list()); its users "
                                 "upsampled with a fixed Deconvolution: one group per channel, kernel = stride = the scale, "
                                 "weights 1 (lr_mult 0), which repeats each pixel")

    def op_batch_norm(self) -> OpImpl:
        def run(c: Case) -> dict[str, Array]:
            a, eps = c.arrays, c.config["eps"]
            x = a["x"]
            nets = {}
            for phase, global_stats in (("train", False), ("eval", True)):
                n = self.caffe.NetSpec()
                n.x = self._input(x.shape)
                n.bn = self.L.BatchNorm(n.x, batch_norm_param=dict(use_global_stats=global_stats, eps=eps))
                n.y = self.L.Scale(n.bn, bias_term=True)
                net = self._net(n, self.caffe.TRAIN if phase == "train" else self.caffe.TEST)
                self._set(net.params["y"][0], a["gamma"])
                self._set(net.params["y"][1], a["beta"])
                # the statistics blobs: running sums and their scale factor (mean = blobs[0] / blobs[2])
                self._set(net.params["bn"][0], a["running_mean"])
                self._set(net.params["bn"][1], a["running_var"])
                self._set(net.params["bn"][2], np.ones(1, np.float32))
                nets[phase] = net
            eval_out = self._run(nets["eval"], Case(a, c.config), {"x": x}, {"y_eval": "y"})
            train = self._run(nets["train"], c, {"x": x}, {"y_train": "y"},
                              {"gamma": ("y", 0, lambda g: g), "beta": ("y", 1, lambda g: g)}, ("x", lambda g: g))
            return {**train, **eval_out}

        return OpImpl("native", "caffe.layers.BatchNorm + caffe.layers.Scale", run,
                      note="Caffe's batch normalisation is BatchNorm (statistics; use_global_stats false in training) "
                           "followed by Scale(bias_term=True) for gamma and beta, as its ResNet prototxts do")

    def op_layer_norm(self) -> OpImpl:
        def build(n: Any, x: Any, c: Case) -> dict[str, Any]:
            n.mvn = self.L.MVN(x, across_channels=False, normalize_variance=True, eps=c.config["eps"])
            # Scale's axis counted from the front: with axis -1 this Caffe makes a scale blob of shape (1,); MVN's top
            # is 4-D (it reshapes with the legacy num/channels/height/width), so it is reshaped back to x's shape
            n.scaled = self.L.Scale(n.mvn, axis=c.arrays["x"].ndim - 1, num_axes=1, bias_term=True)
            n.y = self.L.Reshape(n.scaled, shape=dict(dim=list(c.arrays["x"].shape)))
            return {"gamma": ("scaled", 0, c.arrays["gamma"], lambda g: g), "beta": ("scaled", 1, c.arrays["beta"], lambda g: g)}

        return self._simple("caffe.layers.MVN + caffe.layers.Scale + caffe.layers.Reshape", build, kind="composed",
                            note="Caffe has no layer normalisation: MVN (across_channels false normalises each (n, c) "
                                 "row of a (N, T, D) blob over D) then Scale on the last axis for gamma and beta; MVN adds eps "
                                 "to the standard deviation, not to the variance")

    def op_group_norm(self) -> OpImpl:
        def build(n: Any, x: Any, c: Case) -> dict[str, Any]:
            g = c.config["groups"]
            n.grouped = self.L.Reshape(x, shape=dict(dim=[0, g, -1]))
            n.mvn = self.L.MVN(n.grouped, across_channels=False, normalize_variance=True, eps=c.config["eps"])
            n.back = self.L.Reshape(n.mvn, shape=dict(dim=list(c.arrays["x"].shape)))
            n.y = self.L.Scale(n.back, axis=1, num_axes=1, bias_term=True)
            return {"gamma": ("y", 0, c.arrays["gamma"], lambda g_: g_), "beta": ("y", 1, c.arrays["beta"], lambda g_: g_)}

        return self._simple("caffe.layers.Reshape + MVN + Reshape + Scale", build, kind="composed",
                            note="Caffe has no group normalisation: (N, C, H, W) reshaped to (N, G, C/G*H*W), MVN per "
                                 "(n, g), reshaped back, Scale(axis=1) per channel; MVN adds eps to the standard deviation")

    def op_local_response_norm(self) -> OpImpl:
        def build(n: Any, x: Any, c: Case) -> dict[str, Any]:
            k = c.config
            n.y = self.L.LRN(x, local_size=k["size"], alpha=k["alpha"], beta=k["beta"], k=k["k"],
                             norm_region=self.P.LRN.ACROSS_CHANNELS)
            return {}

        return self._simple("caffe.layers.LRN(norm_region=ACROSS_CHANNELS)", build,
                            note="alpha divided by local_size: the catalog states Caffe's convention")

    def op_dropout(self) -> OpImpl:
        def run(c: Case) -> dict[str, Array]:
            x = c.arrays["x"]
            out: dict[str, Any] = {}
            for phase in ("eval", "train"):
                n = self.caffe.NetSpec()
                n.x = self._input(x.shape)
                n.y = self.L.Dropout(n.x, dropout_ratio=c.config["p"])
                net = self._net(n, self.caffe.TRAIN if phase == "train" else self.caffe.TEST)
                if phase == "eval":
                    out.update(self._run(net, Case(c.arrays, c.config), {"x": x}, {"y_eval": "y"}))
                else:
                    out.update(self._run(net, c, {"x": x}, {"y_train": "y"}, {}, ("x", lambda g: g)))
            return out

        return OpImpl("native", "caffe.layers.Dropout", run,
                      note="the TRAIN-phase net drops and scales by 1 / (1 - p); the TEST-phase net passes x through")

    def op_embedding(self) -> OpImpl:
        def run(c: Case) -> dict[str, Array]:
            idx, w = c.arrays["indices"], c.arrays["weight"]
            cot = c.cotangents["y"]
            n = self.caffe.NetSpec()
            n.indices = self._input(idx.shape)
            n.cotangent = self._input(cot.shape)
            n.y = self.L.Embed(n.indices, num_output=w.shape[1], input_dim=w.shape[0], bias_term=False)
            n.weighted = self.L.Eltwise(n.y, n.cotangent, operation=self.P.Eltwise.PROD)
            n.loss = self.L.Reduction(n.weighted, operation=self.P.Reduction.SUM, axis=0, loss_weight=1.0)
            # a loss of sum(y * cotangent), not force_backward: Embed refuses to backpropagate to its indices (a CHECK
            # that aborts the process); under a loss Caffe differentiates only what learns, here the table
            net = self._net(n, force_backward=False)
            self._set(net.params["y"][0], w)
            self._set(net.blobs["indices"], idx.astype(np.float32))
            self._set(net.blobs["cotangent"], cot)
            net.forward()
            out: dict[str, Any] = {"y": net.blobs["y"].data.copy()}
            net.clear_param_diffs()
            net.backward()
            out["grads"] = {"weight": net.params["y"][0].diff.copy()}
            return out

        return OpImpl("native", "caffe.layers.Embed", run,
                      note="indices fed as a float32 blob (Caffe's blobs are float); the table's gradient through a loss "
                           "layer of sum(y * cotangent) (Embed has no gradient for its input, which force_backward asks)")

    # ---- recurrent layers: Caffe's LSTM layer, and the Elman recurrence unrolled with shared parameters
    def _unrolled_rnn(self, n: Any, steps: list[Any], hidden: int, prefix: str, reverse: bool) -> list[Any]:
        """h_t = tanh(x_t Wx + b + h_{t-1} Wh) over the per-step tops (B, 1, I), h_{-1} = 0: one InnerProduct pair
        per step, all sharing the parameters named <prefix>_wx, <prefix>_b, <prefix>_wh (Caffe shares blobs by
        param name, which is how its own RNN layer unrolls). Returns the h_t in time order."""
        order = list(range(len(steps)))[::-1] if reverse else list(range(len(steps)))
        h = None
        out: dict[int, Any] = {}
        for k, t in enumerate(order):
            xt = self.L.InnerProduct(steps[t], num_output=hidden, axis=2,
                                     param=[dict(name=f"{prefix}_wx"), dict(name=f"{prefix}_b")])
            setattr(n, f"{prefix}_x{k}", xt)
            pre = xt
            if h is not None:
                ht = self.L.InnerProduct(h, num_output=hidden, axis=2, bias_term=False, param=[dict(name=f"{prefix}_wh")])
                setattr(n, f"{prefix}_h{k}", ht)
                pre = self.L.Eltwise(xt, ht, operation=self.P.Eltwise.SUM)
                setattr(n, f"{prefix}_pre{k}", pre)
            h = self.L.TanH(pre)
            setattr(n, f"{prefix}_state{k}", h)
            out[t] = h
        return [out[t] for t in range(len(steps))]

    def _rnn_net(self, c: Case, directions: Sequence[tuple[str, bool]]) -> tuple[Any, dict[str, tuple[str, int, Any, Callable[[Array], Array]]], list[Any]]:
        x = c.arrays["x"]
        T, H = x.shape[1], c.config["hidden"]
        n = self.caffe.NetSpec()
        n.x = self._input(x.shape)
        steps = list(self.L.Slice(n.x, axis=1, ntop=T)) if T > 1 else [n.x]
        for t, top in enumerate(steps):
            setattr(n, f"x_t{t}", top)
        seqs = []
        params: dict[str, tuple[str, int, Any, Callable[[Array], Array]]] = {}
        for prefix, reverse in directions:
            states = self._unrolled_rnn(n, steps, H, prefix, reverse)
            seqs.append(self.L.Concat(*states, axis=1) if T > 1 else states[0])
            setattr(n, f"{prefix}_seq", seqs[-1])
            first = f"{prefix}_x{0}"  # the owner layers of the shared blobs: the first step's
            suffix = "" if prefix == "rnn" else f"_{prefix}"
            params[f"wx{suffix}"] = (first, 0, c.arrays[f"wx{suffix}"].T, lambda g: g.T)
            params[f"b{suffix}"] = (first, 1, c.arrays[f"b{suffix}"], lambda g: g)
            if T > 1:
                params[f"wh{suffix}"] = (f"{prefix}_h1", 0, c.arrays[f"wh{suffix}"].T, lambda g: g.T)
        return n, params, seqs

    def op_simple_rnn(self) -> OpImpl:
        have = self._layer_types()

        def run(c: Case) -> dict[str, Array]:
            n, params, seqs = self._rnn_net(c, [("rnn", False)])
            n.y = seqs[0]
            T = c.arrays["x"].shape[1]
            n.h = self.L.Reshape(getattr(n, f"rnn_state{T - 1}"), shape=dict(dim=[0, -1]))
            return self._params_run(n, c, params, {"y": "y", "h": "h"})

        return OpImpl("composed", "caffe.layers.InnerProduct + Eltwise + TanH unrolled over time (shared params)", run,
                      note="Caffe's RNN layer (" + ("in caffe.layer_type_list()" if "RNN" in have else "absent") + ") "
                           "outputs o_t = tanh(W_ho h_t + b_o), a second projection the catalog's Elman RNN does not have, "
                           "and exposes h_t only for the last step: the recurrence is unrolled instead, one InnerProduct "
                           "pair per step sharing its blobs by param name, as Caffe's RNN layer unrolls itself")

    def _params_run(self, n: Any, c: Case, params: dict[str, tuple[str, int, Any, Callable[[Array], Array]]],
                    outputs: dict[str, str]) -> dict[str, Any]:
        net = self._net(n)
        for layer, index, value, _ in params.values():
            self._set(net.params[layer][index], value)
        return self._run(net, c, {"x": c.arrays["x"]}, outputs, {k: (p[0], p[1], p[3]) for k, p in params.items()},
                         ("x", lambda g: g))

    def op_bidirectional_rnn(self) -> OpImpl:
        def run(c: Case) -> dict[str, Array]:
            n, params, seqs = self._rnn_net(c, [("fw", False), ("bw", True)])
            n.y = self.L.Concat(*seqs, axis=2)
            return self._params_run(n, c, params, {"y": "y"})

        return OpImpl("composed", "two unrolled Elman recurrences (InnerProduct + Eltwise + TanH) + Concat(axis=2)", run,
                      note="Caffe has no bidirectional wrapper: the forward and the backward recurrences are unrolled "
                           "(the backward one reads the steps last to first) and concatenated on the feature axis")

    def op_lstm(self) -> OpImpl:
        self._require_layer("LSTM")

        def run(c: Case) -> dict[str, Array]:
            a = c.arrays
            x = a["x"]
            B, T, _ = x.shape
            H = c.config["hidden"]
            n = self.caffe.NetSpec()
            n.x = self._input((T, B, x.shape[2]))  # Caffe's recurrent layers are time-major
            n.cont = self._input((T, B))
            n.h0 = self._input((1, B, H))
            n.c0 = self._input((1, B, H))
            n.y, n.h, n.c = self.L.LSTM(n.x, n.cont, n.h0, n.c0, recurrent_param=dict(num_output=H, expose_hidden=True),
                                        ntop=3)
            net = self._net(n)
            # LSTM's blobs: W_xc (4H, I) with bias b_c (4H), then W_hc (4H, H); gate blocks i, f, o, g
            self._set(net.params["y"][0], reorder_gates(a["wx"], CANONICAL_LSTM, CAFFE_LSTM).T)
            self._set(net.params["y"][1], reorder_gates(a["b"], CANONICAL_LSTM, CAFFE_LSTM))
            self._set(net.params["y"][2], reorder_gates(a["wh"], CANONICAL_LSTM, CAFFE_LSTM).T)
            cont = np.ones((T, B), np.float32)
            cont[0] = 0.0  # a sequence starts at t = 0: the previous state is not carried in
            back = {"wx": ("y", 0, lambda g: reorder_gates(g.T, CAFFE_LSTM, CANONICAL_LSTM)),
                    "b": ("y", 1, lambda g: reorder_gates(g, CAFFE_LSTM, CANONICAL_LSTM)),
                    "wh": ("y", 2, lambda g: reorder_gates(g.T, CAFFE_LSTM, CANONICAL_LSTM))}
            zeros = np.zeros((1, B, H), np.float32)
            return self._run(net, c, {"x": x.transpose(1, 0, 2), "cont": cont, "h0": zeros, "c0": zeros},
                             {"y": "y", "h": "h", "c": "c"}, back, ("x", lambda g: g.transpose(1, 0, 2)),
                             out_maps={"y": lambda v: v.transpose(1, 0, 2), "h": lambda v: v[0], "c": lambda v: v[0]},
                             cot_maps={"y": lambda v: v.transpose(1, 0, 2), "h": lambda v: v[None], "c": lambda v: v[None]})

        return OpImpl("native", "caffe.layers.LSTM(expose_hidden=True)", run,
                      note="time-major (T, N, I) input with a continuation blob (0 at t = 0); gates i, f, o, g; "
                           "expose_hidden gives the last h and c as tops (zero initial states as bottoms)")

    def op_gru(self) -> OpImpl:
        self._require_layer("GRU", "its recurrent layers are RNN and LSTM")
        raise NotMapped("unreachable")

    def op_multi_head_attention(self) -> OpImpl:
        types_ = self._layer_types()
        missing = [t for t in ("MultiHeadAttention", "Attention", "MatMul", "BatchMatMul", "Permute") if t not in types_]
        raise Unsupported("Caffe has no attention layer, and no layer multiplies two computed blobs batch by batch or "
                          "permutes axes (" + ", ".join(missing) + " are not in caffe.layer_type_list()), so attention "
                          "cannot be composed from its layers either",
                          looked_up=[f"caffe.layer_type_list() contains {t!r}" for t in missing])

    def op_prelu(self) -> OpImpl:
        def build(n: Any, x: Any, c: Case) -> dict[str, Any]:
            n.y = self.L.PReLU(x, channel_shared=False)
            return {"alpha": ("y", 0, c.arrays["alpha"], lambda g: g)}

        return self._simple("caffe.layers.PReLU(channel_shared=False)", build)

    def op_hierarchical_softmax(self) -> OpImpl:
        self._require_layer("HierarchicalSoftmax", "nor any of its variants (adaptive softmax, a hierarchical sigmoid)")
        raise NotMapped("unreachable")

    def op_ctc_loss(self) -> OpImpl:
        self._require_layer("CTCLoss", "its loss layers are " + ", ".join(t for t in self._layer_types() if t.endswith("Loss")))
        raise NotMapped("unreachable")

    # ------------------------------------------------------------------------------------------ optimizers
    def _solver_fields(self) -> list[str]:
        return [f.name for f in self.pb.SolverParameter.DESCRIPTOR.fields]

    def _solver(self, cls_name: str, settings: Callable[[dict[str, Any]], dict[str, Any]], note: str = "") -> OpImpl:
        Solver = require(self.caffe, cls_name, "caffe")
        solver_type = cls_name[: -len("Solver")]

        def run(c: Case) -> dict[str, Array]:
            w, grads = c.arrays["w"], c.arrays["grads"]
            n = self.caffe.NetSpec()
            n.g = self._input(w.shape)
            n.w = self.L.Parameter(parameter_param=dict(shape=dict(dim=list(w.shape))))
            n.wg = self.L.Eltwise(n.w, n.g, operation=self.P.Eltwise.PROD)
            n.loss = self.L.Reduction(n.wg, operation=self.P.Reduction.SUM, axis=0, loss_weight=1.0)
            net_path = self._write(str(self._proto(n, force_backward=False)))
            sp = self.pb.SolverParameter()
            sp.net = net_path
            sp.type = solver_type
            sp.lr_policy = "fixed"
            sp.weight_decay = 0.0
            sp.max_iter = 1000
            sp.display = 0
            sp.snapshot_after_train = False
            for key, value in settings(c.config).items():
                setattr(sp, key, value)
            solver = Solver(self._write(str(sp), ".solver.prototxt"))
            self._set(solver.net.params["w"][0], w)
            history = []
            for g in grads:
                self._set(solver.net.blobs["g"], g)  # d/dw sum(w * g) = g: the case's gradient, by Caffe's backward
                solver.step(1)
                history.append(solver.net.params["w"][0].data.copy())
            return {"w": np.stack(history)}

        return OpImpl("native", f"caffe.{cls_name}", run, note=note)

    def op_sgd(self) -> OpImpl:
        return self._solver("SGDSolver", lambda h: {"base_lr": h["lr"], "momentum": 0.0})

    def op_momentum(self) -> OpImpl:
        return self._solver("SGDSolver", lambda h: {"base_lr": h["lr"], "momentum": h["mu"]},
                            note="Caffe: v = momentum v + lr g; w -= v")

    def op_nesterov(self) -> OpImpl:
        return self._solver("NesterovSolver", lambda h: {"base_lr": h["lr"], "momentum": h["mu"]},
                            note="Caffe: v' = mu v + lr g; w -= (1 + mu) v' - mu v")

    def op_adagrad(self) -> OpImpl:
        def settings(h: dict[str, Any]) -> dict[str, Any]:
            if h["initial_accumulator"] != 0.0:  # Caffe's history blobs start at zero; another start needs a field
                fields = [f for f in self._solver_fields() if "accumulator" in f or "history" in f]
                if not fields:
                    raise Unsupported("caffe's SolverParameter has no field for AdaGrad's initial accumulator (its history "
                                      "blobs start at zero)", looked_up=["caffe_pb2.SolverParameter fields *accumulator* / *history*"])
                raise NotMapped(f"caffe's SolverParameter has {', '.join(fields)}, which this adapter does not map")
            return {"base_lr": h["lr"], "delta": h["eps"]}

        return self._solver("AdaGradSolver", settings, note="delta = eps; history starts at 0; momentum must stay 0")

    def op_adadelta(self) -> OpImpl:
        return self._solver("AdaDeltaSolver", lambda h: {"base_lr": h["lr"], "momentum": h["rho"], "delta": h["eps"]},
                            note="momentum = rho, delta = eps, base_lr = lr")

    def op_rmsprop(self) -> OpImpl:
        return self._solver("RMSPropSolver", lambda h: {"base_lr": h["lr"], "rms_decay": h["rho"], "delta": h["eps"]},
                            note="rms_decay = rho, delta = eps; no momentum")

    def op_adam(self) -> OpImpl:
        return self._solver("AdamSolver", lambda h: {"base_lr": h["lr"], "momentum": h["b1"], "momentum2": h["b2"],
                                                     "delta": h["eps"]},
                            note="momentum = beta1, momentum2 = beta2, delta = eps")

    def op_adamw(self) -> OpImpl:
        fields = self._solver_fields()
        decoupled = [f for f in fields if "decoupled" in f or f.endswith("_decay_rate")]
        if hasattr(self.caffe, "AdamWSolver") or decoupled:
            raise NotMapped(f"caffe offers {'AdamWSolver' if hasattr(self.caffe, 'AdamWSolver') else decoupled}, which "
                            "this adapter does not map")
        raise Unsupported("Caffe has no decoupled weight decay: no AdamWSolver, and SolverParameter's weight_decay with "
                          "regularization_type (L2 or L1) adds the decay to the gradient before Adam's moments",
                          looked_up=["caffe.AdamWSolver", "caffe_pb2.SolverParameter fields *decoupled*"])

    # ------------------------------------------------------------------------------------------ graphs
    def graph_namespace(self) -> Any:
        return Tracer(self.caffe, [(1,)]).namespace()

    def graph_notes(self) -> list[str]:
        return ["Caffe has no eager mode: the namespace adds caffe.NetSpec layers (sum: Reduction SUM, tanh: TanH, "
                "products: Eltwise PROD or Power, matmul: InnerProduct with the argument as its weight), the finished "
                "prototxt becomes a caffe.Net, and forward/backward give the value and the gradient; a comparison or a "
                "float read on a NetSpec top raises, since the top has no value while the graph is written"]

    def _traced(self, fn: Callable[..., Any], shapes: Sequence[tuple[int, ...]]) -> tuple[Any, Tracer, str]:
        tracer = Tracer(self.caffe, shapes)
        out = fn(tracer.namespace(), *tracer.args)
        if not isinstance(out, Sym) or out.shape != ():
            raise TypeError("the program must return a scalar NetSpec top")
        tracer.n.value = self.L.Power(out.top, scale=1.0)
        return self._net(tracer.n), tracer, "value"

    def _call(self, net: Any, tracer: Tracer, top: str, args: Sequence[Array]) -> tuple[float, Array]:
        for i, a in enumerate(args):
            blob = net.blobs[f"arg{i}"]
            if tuple(blob.data.shape) != a.shape:
                blob.reshape(*a.shape)
        if any(tuple(net.blobs[f"arg{i}"].data.shape) != a.shape for i, a in enumerate(args)):
            raise ValueError("reshape failed")
        net.reshape()
        for i, a in enumerate(args):
            net.blobs[f"arg{i}"].data[...] = a
        for layer, arg in tracer.bound.items():
            self._set(net.params[layer][0], args[arg])
        net.forward()
        value = float(net.blobs[top].data.reshape(-1)[0])
        net.clear_param_diffs()
        net.blobs[top].diff[...] = 1.0
        net.backward()
        return value, net.blobs["arg0"].diff.copy()

    def value_and_grad(self, fn: Callable[..., Any], args: Sequence[Array]) -> tuple[float, Array]:
        arrays = [np.asarray(a, np.float32) for a in args]
        net, tracer, top = self._traced(fn, [a.shape for a in arrays])
        return self._call(net, tracer, top, arrays)

    def compile_paths(self) -> list[str]:
        return [NET_PATH] if hasattr(self.caffe, "NetSpec") and hasattr(self.caffe, "Net") else []

    def compile_path_lookups(self) -> list[str]:
        return ["caffe.NetSpec", "caffe.Net"]

    def compile(self, fn: Callable[..., Any], path: str) -> CompiledFunction:
        if path != NET_PATH:
            return super().compile(fn, path)
        built: list[tuple[Any, Tracer, str]] = []

        def call(args: Sequence[Array]) -> tuple[float, Array]:
            arrays = [np.asarray(a, np.float32) for a in args]
            if not built:
                built.append(self._traced(fn, [a.shape for a in arrays]))
            net, tracer, top = built[0]
            return self._call(net, tracer, top, arrays)

        notes = ["the program is written once as a prototxt (caffe.NetSpec) and loaded as one caffe.Net; a new input "
                 "shape reshapes the net's blobs (Blob.reshape, Net.reshape) without writing a new prototxt; the trace "
                 "count is the number of nets built"]
        return CompiledFunction(path, call, lambda: len(built), notes)

    # ------------------------------------------------------------------------------------------ throughput
    def _check_precision(self, precision: str) -> None:
        if precision == "fp32":
            return
        if precision not in PRECISIONS:
            raise KeyError(f"unknown precision {precision!r}")
        dtypes = [f.name for f in self.pb.BlobProto.DESCRIPTOR.fields]
        raise Unsupported(f"Caffe computes in float32 (pycaffe's blobs hold float32; BlobProto stores {', '.join(dtypes)}): "
                          f"no {precision}", looked_up=["caffe_pb2.BlobProto fields", "caffe.set_mode_gpu (CPU_ONLY build)"])

    def _no_compiler(self) -> None:
        names = sorted(n for n in dir(self.caffe) if re.search(r"compil|jit|fuse|optimi[sz]e", n, re.I))
        raise Unsupported("Caffe has no compiler: caffe.Net runs the prototxt's layers one after another as written (the "
                          "eager figures are that run); caffe's namespace offers "
                          + (", ".join(names) if names else "nothing named compile/jit/fuse/optimize"),
                          looked_up=["caffe.*compil* / *jit* / *fuse* / *optimi[sz]e*"])

    def workload(self, spec: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        self._check_precision(precision)
        if mode == "compiled":
            self._no_compiler()
        n = self.caffe.NetSpec()
        if spec.id == "gemm":
            a, b = arrays["a"], arrays["b"]
            n.x = self._input(a.shape)
            n.y = self.L.InnerProduct(n.x, num_output=b.shape[1], bias_term=False, transpose=True)
            x, w = a, b  # transpose=True: the weight blob is (K, N), b as it is
        elif spec.id == "conv2d":
            x, w = arrays["x"], arrays["w"]
            n.x = self._input(x.shape)
            n.y = self.L.Convolution(n.x, num_output=w.shape[0], kernel_size=w.shape[2], pad=1, bias_term=False)
        else:
            raise NotMapped(f"the caffe adapter has no single-op workload {spec.id}")
        net = self._net(n, self.caffe.TEST, force_backward=False)
        self._set(net.blobs["x"], x)
        self._set(net.params["y"][0], w)

        def step() -> Any:
            net.forward()
            return net.blobs["y"].data

        return Workload(step, lambda: None, 0, None,
                        ["forward only: a TEST-phase caffe.Net of one layer (InnerProduct with transpose=True for gemm, "
                         "Convolution for conv2d); Caffe has one way to run, the net built from the prototxt"],
                        observe=lambda y: {"y": np.array(y, copy=True)}, precision=precision)

    def _node(self, n: Any, node: Any, shapes: dict[str, tuple[int, ...]], tops: dict[str, Any],
              p: dict[str, Array]) -> tuple[Any, list[tuple[str, str, int, Array, Callable[[Array], Array]]], list[str]]:
        """One catalog node as NetSpec layers: (its output top, [(catalog param, layer, blob index, value in Caffe's
        layout, map back to the catalog's)], layers whose blobs do not learn)."""
        L, P = self.L, self.P
        kind, a, name = node.kind, node.attrs, node.name
        xs = [tops[i] for i in node.inputs]
        x_shape = shapes[node.inputs[0]]
        if kind == "dense":
            top = L.InnerProduct(xs[0], num_output=p["w"].shape[1], axis=len(x_shape) - 1, bias_term="b" in p)
            setattr(n, name, top)
            loads = [("w", name, 0, p["w"].T, lambda v: v.T)]
            if "b" in p:
                loads.append(("b", name, 1, p["b"], lambda v: v))
            return top, loads, []
        if kind == "conv2d":
            top = L.Convolution(xs[0], num_output=p["w"].shape[0], kernel_size=a["kernel"], stride=a["stride"],
                                pad=a["padding"], bias_term="b" in p)
            setattr(n, name, top)
            loads = [("w", name, 0, p["w"], lambda v: v)]
            if "b" in p:
                loads.append(("b", name, 1, p["b"], lambda v: v))
            return top, loads, []
        if kind == "batch_norm":
            stats = L.BatchNorm(xs[0], batch_norm_param=dict(use_global_stats=False, eps=NORM_EPS))
            setattr(n, f"{name}_stats", stats)
            top = L.Scale(stats, bias_term=True)
            setattr(n, name, top)
            return top, [("gamma", name, 0, p["gamma"], lambda v: v), ("beta", name, 1, p["beta"], lambda v: v)], [f"{name}_stats"]
        if kind == "layer_norm":
            mvn = L.MVN(xs[0], across_channels=len(x_shape) == 2, normalize_variance=True, eps=NORM_EPS)
            setattr(n, f"{name}_mvn", mvn)
            scaled = L.Scale(mvn, axis=len(x_shape) - 1, num_axes=1, bias_term=True)
            setattr(n, f"{name}_scale", scaled)
            top = L.Reshape(scaled, shape=dict(dim=list(x_shape)))  # MVN's top is 4-D
            setattr(n, name, top)
            return top, [("gamma", f"{name}_scale", 0, p["gamma"], lambda v: v),
                         ("beta", f"{name}_scale", 1, p["beta"], lambda v: v)], []
        if kind == "relu":
            top = L.ReLU(xs[0])
        elif kind == "max_pool":
            top = L.Pooling(xs[0], pool=P.Pooling.MAX, kernel_size=a["kernel"], stride=a["stride"], pad=a["padding"],
                            round_mode=P.Pooling.FLOOR)
        elif kind == "global_avg_pool":
            pooled = L.Pooling(xs[0], pool=P.Pooling.AVE, global_pooling=True)
            setattr(n, f"{name}_pool", pooled)
            top = L.Flatten(pooled)
        elif kind == "flatten":
            top = L.Flatten(xs[0])
        elif kind == "add":
            top = L.Eltwise(xs[0], xs[1], operation=P.Eltwise.SUM)
        elif kind == "embedding":
            top = L.Embed(xs[0], num_output=p["table"].shape[1], input_dim=p["table"].shape[0], bias_term=False)
            setattr(n, name, top)
            return top, [("table", name, 0, p["table"], lambda v: v)], []
        elif kind == "lstm_last":
            return self._lstm_last(n, node, x_shape, xs[0], p)
        else:
            wanted = {"gelu": "GELU", "gru": "GRU", "self_attention": "MultiHeadAttention", "positional": "PositionEmbedding",
                      "mean_tokens": "Reduction over one middle axis (Reduction reduces all trailing axes)"}.get(kind, kind)
            if wanted in self._layer_types():
                raise NotMapped(f"caffe has a {wanted} layer, which this adapter does not map for node kind {kind}")
            raise Unsupported(f"the model's {kind} nodes need a {wanted} layer, which Caffe does not have",
                              looked_up=[f"caffe.layer_type_list() contains {wanted!r}"])
        setattr(n, name, top)
        return top, [], []

    def _lstm_last(self, n: Any, node: Any, x_shape: tuple[int, ...], x: Any, p: dict[str, Array]) -> Any:
        if node.inputs[0] != "input":
            raise NotMapped("Caffe's LSTM is time-major and Caffe has no Permute layer: the adapter feeds the model's "
                            "input time-major, so an LSTM can only read the input")
        T = x_shape[1]
        H = node.attrs["hidden"]
        name = node.name
        seq = self.L.LSTM(x, n.cont, recurrent_param=dict(num_output=H), param=[{}, FROZEN, {}])
        setattr(n, f"{name}_seq", seq)
        head, last = self.L.Slice(seq, axis=0, slice_point=[T - 1], ntop=2)
        setattr(n, f"{name}_head", head)
        setattr(n, f"{name}_lastT", last)
        setattr(n, f"{name}_silence", self.L.Silence(head, ntop=0))
        top = self.L.Reshape(last, shape=dict(dim=[-1, H]))
        setattr(n, name, top)
        layer = f"{name}_seq"
        loads = [("wx", layer, 0, reorder_gates(p["wx"], CANONICAL_LSTM, CAFFE_LSTM).T,
                  lambda v: reorder_gates(v.T, CAFFE_LSTM, CANONICAL_LSTM)),
                 ("wh", layer, 2, reorder_gates(p["wh"], CANONICAL_LSTM, CAFFE_LSTM).T,
                  lambda v: reorder_gates(v.T, CAFFE_LSTM, CANONICAL_LSTM)),
                 ("_bias", layer, 1, np.zeros(4 * H, np.float32), lambda v: v)]
        return top, loads, []

    def model_workload(self, model: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """Any catalog model: each node as Caffe layers for its kind (_node), SoftmaxWithLoss on the output, and
        caffe.SGDSolver (lr 0.01, no momentum, no weight decay) stepping the net: forward, backward, update."""
        self._check_precision(precision)
        if mode == "compiled":
            self._no_compiler()
        shapes = model.shapes()
        param_names = list(model.param_shapes())
        x = arrays["x"]
        sequence = model.input_kind == "sequence"
        n = self.caffe.NetSpec()
        n.data = self._input(x.shape[1::-1] + x.shape[2:] if sequence else x.shape)
        if sequence:
            n.cont = self._input((x.shape[1], x.shape[0]))
        labels = arrays["labels"]
        n.labels = self._input(labels.shape)
        tops = {"input": n.data}
        loads: list[tuple[str, str, int, Array, Callable[[Array], Array]]] = []
        frozen_layers: list[str] = []
        for node in model.nodes:
            prefix = f"{node.name}."
            p = {k[len(prefix):]: arrays[k] for k in param_names if k.startswith(prefix)}
            top, node_loads, frozen = self._node(n, node, shapes, tops, p)
            tops[node.name] = top
            got = {k for k, *_ in node_loads if not k.startswith("_")}
            if got != set(p):
                raise ValueError(f"node {node.name} ({node.kind}): loads {sorted(got)}, the catalog has {sorted(p)}")
            loads += [(f"{prefix}{k}", *rest) for k, *rest in node_loads]  # type: ignore[misc]
            frozen_layers += frozen
        logits = tops[model.output]
        axis = len(shapes[model.output]) - 1
        # the mean over the batch (or every token): SoftmaxWithLoss divides by the number of labels (normalization VALID)
        n.loss = self.L.SoftmaxWithLoss(logits, n.labels, softmax_param=dict(axis=axis))
        net_path = self._write(str(self._proto(n, force_backward=False)))
        sp = self.pb.SolverParameter()
        sp.net = net_path
        sp.type = "SGD"
        sp.base_lr = LEARNING_RATE
        sp.lr_policy = "fixed"
        sp.momentum = 0.0
        sp.weight_decay = 0.0
        sp.max_iter = 10**8
        sp.display = 0
        sp.snapshot_after_train = False
        solver = self.caffe.SGDSolver(self._write(str(sp), ".solver.prototxt"))
        net = solver.net
        for _, layer, index, value, _ in loads:
            self._set(net.params[layer][index], value)
        if sequence:
            self._set(net.blobs["data"], x.transpose(1, 0, 2))  # Caffe's LSTM is time-major
            cont = np.ones((x.shape[1], x.shape[0]), np.float32)
            cont[0] = 0.0
            self._set(net.blobs["cont"], cont)
        else:
            self._set(net.blobs["data"], x.astype(np.float32))
        self._set(net.blobs["labels"], labels.astype(np.float32))
        # learnable blobs: every parameter blob once (blobs shared by name are one), less BatchNorm's statistics and
        # the LSTM bias held at zero
        frozen_keys = {_blob_key(net.params[layer][i]) for name, layer, i, *_ in loads if name.endswith("._bias")}
        frozen_keys |= {_blob_key(b) for layer in frozen_layers for b in net.params[layer]}
        learnable = {_blob_key(b): b.data.size for blobs in net.params.values() for b in blobs}
        count = int(sum(size for key, size in learnable.items() if key not in frozen_keys))

        def train_step() -> Any:
            solver.step(1)
            return net.blobs["loss"].data

        def observe(loss: Any) -> dict[str, Any]:
            return {"loss": float(np.asarray(loss).reshape(-1)[0]),
                    **{name: back(net.params[layer][i].data.copy()) for name, layer, i, _, back in loads
                       if not name.endswith("._bias")}}

        kinds = sorted(set(model.kinds()))
        notes = [f"node kinds: {', '.join(kinds)}; each built from Caffe's own layers (batch_norm: BatchNorm + Scale; "
                 "layer_norm: MVN + Scale, eps added to the standard deviation; global_avg_pool: Pooling with "
                 "global_pooling + Flatten)", "the step is caffe.SGDSolver.step(1): forward, backward and the update "
                 "on one caffe.Net, SoftmaxWithLoss on the logits"]
        if "lstm_last" in kinds:
            notes.append("lstm_last: Caffe's LSTM layer, fed time-major with a continuation blob, its bias blob held at "
                         "zero (lr_mult 0: the layer always has one, the catalog's LSTM none); the last step sliced off")
        return Workload(train_step, lambda: None, count, None, notes, observe=observe, precision=precision)

    # ------------------------------------------------------------------------------------------ numerics
    def array_api(self) -> ArrayAPI:
        """Caffe has no array library: a blob's data and diff are NumPy arrays (pycaffe hands them out as
        numpy.ndarray views), so the namespace Caffe code computes with is NumPy's own."""
        n = self.caffe.NetSpec()
        n.x = self._input((2,))
        net = self._net(n, self.caffe.TEST, force_backward=False)

        def from_numpy(a: Array) -> Any:
            return np.asarray(a)

        return ArrayAPI(f"numpy (caffe.Net blobs' .data is {type(net.blobs['x'].data).__module__}."
                        f"{type(net.blobs['x'].data).__name__})", np, from_numpy, np.asarray, getattr(np, "from_dlpack", None))

    # ------------------------------------------------------------------------------------------ scale
    def allreduce(self, rank: int, world: int, host: str, port: int, value: Array) -> AllReduceResult:
        has_nccl = bool(self.caffe.has_nccl()) if hasattr(self.caffe, "has_nccl") else False
        raise Unsupported("Caffe's multi-process training is caffe.NCCL (NCCL between GPU solvers; P2PSync in C++), "
                          f"GPU only; this build's caffe.has_nccl() is {has_nccl} ({self._cuda_evidence()[1]}); there "
                          "is no CPU collective", looked_up=["caffe.has_nccl()", "caffe.NCCL", "libcaffe CUDA symbols"])

    # ------------------------------------------------------------------------------------------ onnx
    def _onnx_lookups(self) -> tuple[list[str], list[str]]:
        import importlib.util

        names = sorted(n for n in dir(self.caffe) if "onnx" in n.lower())
        converter = importlib.util.find_spec("caffe2onnx")
        looked = ["caffe.*onnx*", "importable module caffe2onnx"]
        found = names + (["caffe2onnx"] if converter is not None else [])
        return looked, found

    def onnx_export(self, model: Any, path: str, opset: int | None) -> ExportResult:
        looked, found = self._onnx_lookups()
        if found:
            raise NotMapped(f"{', '.join(found)} found, which this adapter does not map")
        raise Unsupported("Caffe has no ONNX exporter (caffe's namespace has nothing named *onnx*; nets are saved as "
                          "prototxt + caffemodel), and no converter is installed: the third-party caffe2onnx is an sdist "
                          "only, not part of this image", looked_up=looked)

    def onnx_import(self, path: str) -> ImportResult:
        looked, found = self._onnx_lookups()
        if found:
            raise NotMapped(f"{', '.join(found)} found, which this adapter does not map")
        raise Unsupported("Caffe has no ONNX importer: caffe.Net reads prototxt (and caffemodel weights) only",
                          looked_up=looked)
