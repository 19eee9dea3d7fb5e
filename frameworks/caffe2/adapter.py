"""Caffe2 adapter: the Caffe2 Python API (caffe2.python) as torch 1.8.1's wheel for Python 3.9 ships it, the last
PyTorch wheels that carry it.

Caffe2 is define-then-run: a program is a net of operators (core.Net / model_helper.ModelHelper with brew helpers),
blobs live in a workspace and are NumPy arrays on the way in (workspace.FeedBlob) and out (workspace.FetchBlob);
gradients are operators too, added to the net by net.AddGradientOperators from core.GradientRegistry; optimizers
(caffe2.python.optimizer.build_*) add their update operators to the same net; the C++ executor runs the whole net.
This adapter uses that API the way its users did: every op is an operator in a net built with brew or core.Net,
fed, run with workspace.RunNetOnce (or CreateNet / RunNet for throughput), and fetched.

Layouts: FC keeps W as (out, in); the recurrent cells of caffe2.python.rnn_cell run time-major and keep two biases
(i2h and the recurrent FC's); LSTMUnit orders its gates i, f, o, g. Every catalog array is mapped explicitly below.
"""

from __future__ import annotations

import os
import time
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
CAFFE2_LSTM = "ifog"  # LSTMUnit: i, f, o sigmoid, then the tanh cell input g
CAFFE2_GRU = "rzn"  # gru_cell.GRUCell splits i2h into reset, update, output gates
NET_PATH = "caffe2 core.Net (CreateNet / RunNet)"
#: what the layers probe found Caffe2's Adam doing (caffe2/python/utils.py BuildUniqueMutexIter and
#: caffe2/sgd/adam_op.h in torch 1.8.1): the first step is bias-corrected as the paper's second
ADAM_NOTE = ("build_adam counts steps with an optimizer_iteration blob that starts at 0 and that AtomicIter increments "
             "before the Adam operator runs; the operator then uses t = iteration + 1, so the first update is "
             "bias-corrected with t = 2 (sqrt(1 - b2^2) / (1 - b1^2)), not t = 1")
#: what this adapter reads back from the framework as a catalog parameter, per name: (blob, to_catalog)
Params = dict[str, tuple[str, Callable[[Array], Array]]]


def _same(a: Array) -> Array:
    return a


def _t(a: Array) -> Array:
    return np.ascontiguousarray(a.T)


class Caffe2Adapter(Adapter):
    name = "caffe2"
    distribution = "torch"  # the caffe2 package is part of the torch distribution (1.8.1 is the last that has it)

    def __init__(self, device: str) -> None:
        super().__init__(device)
        from caffe2.python import brew, core, model_helper, optimizer, workspace

        self.core, self.workspace, self.brew, self.model_helper, self.optimizer = core, workspace, brew, model_helper, optimizer
        # Caffe2 warns when its Python API is used before GlobalInit; its log level 2 keeps INFO lines out of records
        workspace.GlobalInit(["caffe2", "--caffe2_log_level=2"])
        self._names = 0

    # ------------------------------------------------------------------------------------------ identity
    def versions(self) -> dict[str, str]:
        return distribution_versions("torch", "numpy", "protobuf", "future", "onnx", "onnxruntime")

    def device_available(self) -> tuple[bool, str]:
        if self.device == "cpu":
            return True, ""
        ws = self.workspace
        if not getattr(ws, "has_gpu_support", False):
            return False, "this caffe2 build has no GPU support (workspace.has_gpu_support is False)"
        count = int(ws.NumGpuDevices()) if hasattr(ws, "NumGpuDevices") else 0
        return False, (f"caffe2 sees {count} CUDA device(s); this adapter runs Caffe2's CPU operators only "
                       "(its nets carry no CUDA device_option)")

    def device_info(self) -> dict[str, Any]:
        ws = self.workspace
        return {"device": self.device, "has_gpu_support": bool(getattr(ws, "has_gpu_support", False)),
                "executor": "caffe2 C++ net executor (net type 'simple')",
                "precision": {"dtype": "float32"},
                "precision_notes": "Caffe2's CPU operators compute in float32 (Eigen / MKL BLAS); it has no TF32 or "
                                   "reduced-precision reduction switch on the CPU"}

    # ------------------------------------------------------------------------------------------ helpers
    def _fresh(self) -> None:
        """An empty workspace for each run: blobs from an earlier net never leak into the next."""
        self.workspace.ResetWorkspace()

    def _model(self, name: str = "m") -> Any:
        self._names += 1
        return self.model_helper.ModelHelper(name=f"{name}{self._names}")

    def feed(self, name: str, value: Array, dtype: Any = np.float32) -> None:
        self.workspace.FeedBlob(name, np.ascontiguousarray(value, dtype=dtype))

    def fetch(self, name: Any) -> Array:
        return np.asarray(self.workspace.FetchBlob(str(name)))

    def _has_op(self, op_type: str, where: str = "workspace.RegisteredOperators()") -> None:
        """Unsupported, with the registry as evidence, when the operator type is not registered in this build."""
        if op_type not in set(self.workspace.RegisteredOperators()):
            raise Unsupported(f"caffe2 has no {op_type} operator: not in {where}", looked_up=[f"{where}: {op_type}"])

    def _run(self, case: Case, net: Any, outputs: dict[str, str], params: Params | None = None,
             wrt: tuple[str, Callable[[Array], Array]] | None = None, init: Any = None,
             feeds: dict[str, Array] | None = None, extra_ys: dict[str, str] | None = None) -> dict[str, Array]:
        """Run `net` once (after `init`, then `feeds`, which overwrite the initialised parameters) and fetch the
        outputs; when the case asks for gradients, the gradient operators come from net.AddGradientOperators with
        the case's cotangents fed as the outputs' gradient blobs (`extra_ys`: further outputs whose gradient blobs
        the net itself fills), and every catalog name in `wrt` (the input) and
        `params` is read from its blob's gradient, mapped back to the catalog's layout."""
        ws = self.workspace
        grad_map: dict[Any, Any] = {}
        if case.grad_wrt is not None:
            ys = {}
            for k in case.cotangents:
                ys[outputs[k]] = f"{outputs[k]}_cotangent"
                net.AddExternalInput(ys[outputs[k]])  # fed before the run, like any input blob
            ys |= extra_ys or {}
            grad_map = net.AddGradientOperators(ys)
        if init is not None:
            ws.RunNetOnce(init)
        for k, v in (feeds or {}).items():
            self.feed(k, v, v.dtype if v.dtype.kind in "iu" else np.float32)
        for k in case.cotangents if case.grad_wrt is not None else ():
            self.feed(f"{outputs[k]}_cotangent", case.cotangents[k])
        ws.RunNetOnce(net)
        out: dict[str, Any] = {k: self.fetch(b) for k, b in outputs.items()}
        if case.grad_wrt is None:
            return out
        grads: dict[str, Array] = {}
        specs = {case.grad_wrt: wrt or (case.grad_wrt, _same), **(params or {})}
        for name, (blob, to_catalog) in specs.items():
            g = grad_map.get(self.core.BlobReference(blob)) if self.core.BlobReference(blob) in grad_map else grad_map.get(blob)
            if g is None:  # the outputs do not depend on this blob: its gradient is zero
                grads[name] = np.zeros(self.fetch(blob).shape, np.float32)
            elif isinstance(g, self.core.GradientSlice):
                grads[name] = to_catalog(self._dense(blob, g))
            else:
                grads[name] = to_catalog(self.fetch(g))
        out["grads"] = grads
        return out

    def _dense(self, blob: str, g: Any) -> Array:
        """A sparse gradient (core.GradientSlice: the rows touched and their values), summed into the full shape."""
        dense = np.zeros(self.fetch(blob).shape, np.float32)
        idx = self.fetch(g.indices).reshape(-1)
        vals = self.fetch(g.values).reshape(idx.size, *dense.shape[1:])
        np.add.at(dense, idx, vals)
        return dense

    def _input_op(self, api: str, build: Callable[[Any, Case], tuple[dict[str, str], Params, dict[str, Array]]],
                  kind: str = "native", variant: str | None = None, note: str = "") -> OpImpl:
        """An op on the case's input blob "x": build(model, case) adds operators to a fresh ModelHelper and returns
        (outputs: catalog name -> blob, params: catalog name -> (blob, to_catalog), feeds: blob -> array in
        caffe2's layout); the input is fed as "x"."""

        def run(case: Case) -> dict[str, Array]:
            self._fresh()
            model = self._model()
            outputs, params, feeds = build(model, case)
            x = case.grad_wrt or "x"
            return self._run(case, model.net, outputs, params, ("x", _same), model.param_init_net,
                             {"x": case.arrays[x], **feeds})

        return OpImpl(kind, api, run, variant, note)

    # ------------------------------------------------------------------------------------------ layers
    def op_dense(self) -> OpImpl:
        def build(m: Any, c: Case) -> Any:
            w = c.arrays["w"]
            self.brew.fc(m, "x", "y", dim_in=w.shape[0], dim_out=w.shape[1])
            return {"y": "y"}, {"w": ("y_w", _t), "b": ("y_b", _same)}, {"y_w": w.T, "y_b": c.arrays["b"]}

        return self._input_op("brew.fc (FC operator)", build, note="FC keeps W as (out, in): fed transposed")

    def _conv_nd(self, nd: int) -> OpImpl:
        def build(m: Any, c: Case) -> Any:
            w, cfg = c.arrays["w"], c.config
            self.brew.conv_nd(m, "x", "y", w.shape[1], w.shape[0], list(w.shape[2:]), strides=[cfg["stride"]] * nd,
                              pads=[cfg["padding"]] * (2 * nd), dilations=[cfg["dilation"]] * nd)
            return {"y": "y"}, {"w": ("y_w", _same), "b": ("y_b", _same)}, {"y_w": w, "y_b": c.arrays["b"]}

        return self._input_op("brew.conv_nd (Conv operator, kernels/strides/pads/dilations lists)", build,
                              note=f"{nd}-D: Conv's W is (O, C, *k), the catalog's layout")

    def op_conv1d(self) -> OpImpl:
        return self._conv_nd(1)

    def op_conv2d(self) -> OpImpl:
        def build(m: Any, c: Case) -> Any:
            w, cfg = c.arrays["w"], c.config
            self.brew.conv(m, "x", "y", w.shape[1], w.shape[0], w.shape[2], stride=cfg["stride"], pad=cfg["padding"],
                           dilation=cfg["dilation"])
            return {"y": "y"}, {"w": ("y_w", _same), "b": ("y_b", _same)}, {"y_w": w, "y_b": c.arrays["b"]}

        return self._input_op("brew.conv (Conv operator)", build)

    def op_conv3d(self) -> OpImpl:
        return self._conv_nd(3)

    def op_conv_transpose2d(self) -> OpImpl:
        def build(m: Any, c: Case) -> Any:
            w, cfg = c.arrays["w"], c.config
            self.brew.conv_transpose(m, "x", "y", w.shape[0], w.shape[1], w.shape[2], stride=cfg["stride"], pad=cfg["padding"])
            return {"y": "y"}, {"w": ("y_w", _same), "b": ("y_b", _same)}, {"y_w": w, "y_b": c.arrays["b"]}

        return self._input_op("brew.conv_transpose (ConvTranspose operator)", build,
                              note="ConvTranspose's W is (C_in, C_out, kH, kW), the catalog's layout")

    def op_separable_conv2d(self) -> OpImpl:
        def build(m: Any, c: Case) -> Any:
            dw, pw, cfg = c.arrays["w_depthwise"], c.arrays["w_pointwise"], c.config
            ch = dw.shape[0]
            self.brew.conv(m, "x", "dw", ch, ch, dw.shape[2], stride=cfg["stride"], pad=cfg["padding"], group=ch, no_bias=True)
            self.brew.conv(m, "dw", "y", ch, pw.shape[0], 1)
            return ({"y": "y"}, {"w_depthwise": ("dw_w", _same), "w_pointwise": ("y_w", _same), "b": ("y_b", _same)},
                    {"dw_w": dw, "y_w": pw, "y_b": c.arrays["b"]})

        return self._input_op("brew.conv(group=C) + brew.conv(1x1)", build, kind="composed",
                              note="caffe2 has no separable-convolution operator: a grouped Conv with group = channels "
                                   "(depthwise), then a 1x1 Conv")

    def op_max_pool2d(self) -> OpImpl:
        def build(m: Any, c: Case) -> Any:
            cfg = c.config
            self.brew.max_pool(m, "x", "y", kernel=cfg["kernel"], stride=cfg["stride"], pad=cfg.get("padding", 0))
            return {"y": "y"}, {}, {}

        return self._input_op("brew.max_pool (MaxPool operator)", build)

    def op_avg_pool2d(self) -> OpImpl:
        def build(m: Any, c: Case) -> Any:
            cfg = c.config
            self.brew.average_pool(m, "x", "y", kernel=cfg["kernel"], stride=cfg["stride"], pad=cfg["padding"])
            return {"y": "y"}, {}, {}

        return self._input_op("brew.average_pool (AveragePool operator)", build,
                              note="AveragePool's default border divisor (count_include_pad not set)")

    def op_global_avg_pool2d(self) -> OpImpl:
        def build(m: Any, c: Case) -> Any:
            self.brew.average_pool(m, "x", "pooled", global_pooling=True)
            m.net.Squeeze("pooled", "y", dims=[2, 3])
            return {"y": "y"}, {}, {}

        return self._input_op("brew.average_pool(global_pooling=True)", build,
                              note="AveragePool with global_pooling gives (N, C, 1, 1): squeezed to (N, C)")

    def op_upsample_nearest2d(self) -> OpImpl:
        def build(m: Any, c: Case) -> Any:
            s = float(c.config["scale"])
            m.net.ResizeNearest("x", "y", width_scale=s, height_scale=s)
            return {"y": "y"}, {}, {}

        self._has_op("ResizeNearest")
        return self._input_op("ResizeNearest operator", build)

    def op_batch_norm(self) -> OpImpl:
        def build(m: Any, c: Case) -> Any:
            a = c.arrays
            ch = a["gamma"].shape[0]
            eps = c.config["eps"]
            # inference first (it reads the running statistics), then training, which updates them in place
            m.net.SpatialBN(["x", "bn_s", "bn_b", "bn_rm", "bn_riv"], ["y_eval"], epsilon=eps, is_test=1)
            self.brew.spatial_bn(m, "x", "bn", ch, epsilon=eps, is_test=False)
            m.net.Copy("bn", "y_train")
            return ({"y_train": "y_train", "y_eval": "y_eval"}, {"gamma": ("bn_s", _same), "beta": ("bn_b", _same)},
                    {"bn_s": a["gamma"], "bn_b": a["beta"], "bn_rm": a["running_mean"], "bn_riv": a["running_var"]})

        return self._input_op("brew.spatial_bn (SpatialBN operator, is_test 0 and 1)", build,
                              note="the running variance goes in SpatialBN's fifth input (brew names it _riv)")

    def op_layer_norm(self) -> OpImpl:
        def build(m: Any, c: Case) -> Any:
            x = c.arrays["x"]
            self.brew.layer_norm(m, "x", "y", dim_in=x.shape[-1], axis=x.ndim - 1, epsilon=c.config["eps"])
            return ({"y": "y"}, {"gamma": ("y_scale", _same), "beta": ("y_bias", _same)},
                    {"y_scale": c.arrays["gamma"], "y_bias": c.arrays["beta"]})

        return self._input_op("brew.layer_norm (LayerNorm operator, elementwise_affine)", build)

    def op_group_norm(self) -> OpImpl:
        def build(m: Any, c: Case) -> Any:
            self.brew.spatial_gn(m, "x", "y", c.arrays["gamma"].shape[0], group=c.config["groups"], epsilon=c.config["eps"])
            return ({"y": "y"}, {"gamma": ("y_s", _same), "beta": ("y_b", _same)},
                    {"y_s": c.arrays["gamma"], "y_b": c.arrays["beta"]})

        return self._input_op("brew.spatial_gn (GroupNorm operator)", build)

    def op_local_response_norm(self) -> OpImpl:
        def build(m: Any, c: Case) -> Any:
            cfg = c.config
            self.brew.lrn(m, "x", "y", size=cfg["size"], alpha=cfg["alpha"], beta=cfg["beta"], bias=cfg["k"])
            return {"y": "y"}, {}, {}

        return self._input_op("brew.lrn (LRN operator)", build, note="alpha passed as is: LRN divides it by size (Caffe's convention)")

    def op_dropout(self) -> OpImpl:
        def build(m: Any, c: Case) -> Any:
            p = c.config["p"]
            m.net.Dropout("x", ["y_eval", "mask_eval"], ratio=p, is_test=1)
            self.brew.dropout(m, "x", "y_train", ratio=p, is_test=0)
            return {"y_train": "y_train", "y_eval": "y_eval"}, {}, {}

        return self._input_op("brew.dropout (Dropout operator, is_test 0 and 1)", build, note="ratio = drop probability")

    def op_embedding(self) -> OpImpl:
        def run(c: Case) -> dict[str, Array]:
            self._fresh()
            net = self.core.Net("embedding")
            net.Gather(["weight", "indices"], "y")
            return self._run(c, net, {"y": "y"}, wrt=("weight", _same),
                             feeds={"weight": c.arrays["weight"], "indices": c.arrays["indices"]})

        return OpImpl("native", "Gather operator (the embedding lookup)", run,
                      note="Gather's gradient is sparse (core.GradientSlice of the rows looked up): summed into the "
                           "dense table here")

    # recurrent layers: rnn_cell runs time-major (T, N, D); the catalog is batch first
    def _rnn(self, m: Any, c: Case, cell: Callable[..., Any], states: int, **kw: Any) -> tuple[Any, ...]:
        n, _, d = c.arrays["x"].shape
        hidden = c.config["hidden"]
        m.net.Transpose("x", "x_tm", axes=[1, 0, 2])
        inits = [m.param_init_net.ConstantFill([], f"init{i}", shape=[1, n, hidden], value=0.0) for i in range(states)]
        return cell(m, "x_tm", None, inits, d, hidden, scope="rnn", **kw)

    def _outputs_batch_first(self, m: Any, all_blob: Any, last_blobs: dict[str, Any]) -> dict[str, str]:
        m.net.Transpose(all_blob, "y", axes=[1, 0, 2])
        out = {"y": "y"}
        for name, blob in last_blobs.items():
            m.net.Squeeze(blob, name, dims=[0])
            out[name] = name
        return out

    def op_simple_rnn(self) -> OpImpl:
        from caffe2.python import rnn_cell

        def build(m: Any, c: Case) -> Any:
            a = c.arrays
            hy_all, hy_last = self._rnn(m, c, rnn_cell.BasicRNN, 1, activation="tanh")
            outputs = self._outputs_batch_first(m, hy_all, {"h": hy_last})
            feeds = {"rnn/i2h_w": a["wx"].T, "rnn/i2h_b": a["b"], "rnn/gates_t_w": a["wh"].T,
                     "rnn/gates_t_b": np.zeros_like(a["b"])}
            return outputs, {"wx": ("rnn/i2h_w", _t), "wh": ("rnn/gates_t_w", _t), "b": ("rnn/i2h_b", _same)}, feeds

        return self._input_op("rnn_cell.BasicRNN (RecurrentNetwork operator)", build,
                              note="time-major: transposed in and out; two biases (i2h and gates_t), the second set to 0")

    def op_lstm(self) -> OpImpl:
        from caffe2.python import rnn_cell

        def build(m: Any, c: Case) -> Any:
            a, order = c.arrays, c.config["gate_order"]
            hy_all, hy_last, _, cy_last = self._rnn(m, c, rnn_cell.LSTM, 2)
            outputs = self._outputs_batch_first(m, hy_all, {"h": hy_last, "c": cy_last})
            feeds = {"rnn/i2h_w": reorder_gates(a["wx"], order, CAFFE2_LSTM).T, "rnn/i2h_b": reorder_gates(a["b"], order, CAFFE2_LSTM),
                     "rnn/gates_t_w": reorder_gates(a["wh"], order, CAFFE2_LSTM).T, "rnn/gates_t_b": np.zeros_like(a["b"])}

            def back(g: Array) -> Array:
                return reorder_gates(g.T if g.ndim == 2 else g, CAFFE2_LSTM, order)

            return outputs, {"wx": ("rnn/i2h_w", back), "wh": ("rnn/gates_t_w", back), "b": ("rnn/i2h_b", back)}, feeds

        return self._input_op("rnn_cell.LSTM (RecurrentNetwork + LSTMUnit operators)", build,
                              note=f"gate order {CAFFE2_LSTM} (LSTMUnit); forget_bias 0; the recurrent FC's bias set to 0")

    def op_gru(self) -> OpImpl:
        from caffe2.python import gru_cell

        def build(m: Any, c: Case) -> Any:
            a, order = c.arrays, c.config["gate_order"]
            hy_all, hy_last = self._rnn(m, c, gru_cell.GRU, 1, linear_before_reset=True)
            outputs = self._outputs_batch_first(m, hy_all, {"h": hy_last})
            wh = np.split(reorder_gates(a["wh"], order, CAFFE2_GRU), 3, axis=-1)
            bh = np.split(reorder_gates(a["bh"], order, CAFFE2_GRU), 3)
            feeds = {"rnn/i2h_w": reorder_gates(a["wx"], order, CAFFE2_GRU).T, "rnn/i2h_b": reorder_gates(a["bx"], order, CAFFE2_GRU)}
            gates = ("reset", "update", "output")
            for k, gate in enumerate(gates):
                feeds[f"rnn/{gate}_gate_t_w"] = wh[k].T
                feeds[f"rnn/{gate}_gate_t_b"] = bh[k]
            params: Params = {"wx": ("rnn/i2h_w", lambda g: reorder_gates(g.T, CAFFE2_GRU, order)),
                              "bx": ("rnn/i2h_b", lambda g: reorder_gates(g, CAFFE2_GRU, order))}
            return outputs, params, feeds

        api = "gru_cell.GRU(linear_before_reset=True) (RecurrentNetwork + GRUUnit operators)"
        return OpImpl("native", api, self._gru_run(build), note="gate order r, z, n; linear_before_reset=True "
                      "applies the reset gate after the recurrent matmul (cuDNN's form); three recurrent FCs, one per gate")

    def _gru_run(self, build: Callable[[Any, Case], Any]) -> Callable[[Case], dict[str, Array]]:
        def run(c: Case) -> dict[str, Array]:
            self._fresh()
            m = self._model()
            outputs, params, feeds = build(m, c)
            order = c.config["gate_order"]
            gates = ("reset", "update", "output")
            out = self._run(c, m.net, outputs, params, ("x", _same), m.param_init_net, {"x": c.arrays["x"], **feeds})
            # the recurrent weights and biases: three blobs each, read from the same gradient pass
            grad = {g: self.fetch(f"rnn/{g}_gate_t_w_grad") for g in gates}
            gradb = {g: self.fetch(f"rnn/{g}_gate_t_b_grad") for g in gates}
            out["grads"]["wh"] = reorder_gates(np.concatenate([grad[g].T for g in gates], axis=-1), CAFFE2_GRU, order)
            out["grads"]["bh"] = reorder_gates(np.concatenate([gradb[g] for g in gates]), CAFFE2_GRU, order)
            return out

        return run

    def op_bidirectional_rnn(self) -> OpImpl:
        from caffe2.python import rnn_cell

        def build(m: Any, c: Case) -> Any:
            a = c.arrays
            n, t, d = a["x"].shape
            h = c.config["hidden"]
            m.net.Transpose("x", "x_tm", axes=[1, 0, 2])
            lengths = m.param_init_net.ConstantFill([], "lengths", shape=[n], value=t, dtype=self.core.DataType.INT32)
            m.net.ReversePackedSegs(["x_tm", lengths], "x_rev")
            feeds: dict[str, Array] = {}
            outs = []
            for direction, source in (("fw", "x_tm"), ("bw", "x_rev")):
                init = m.param_init_net.ConstantFill([], f"h0_{direction}", shape=[1, n, h], value=0.0)
                hy_all, _ = rnn_cell.BasicRNN(m, source, None, [init], d, h, scope=direction, activation="tanh")
                outs.append(hy_all)
                feeds |= {f"{direction}/i2h_w": a[f"wx_{direction}"].T, f"{direction}/i2h_b": a[f"b_{direction}"],
                          f"{direction}/gates_t_w": a[f"wh_{direction}"].T, f"{direction}/gates_t_b": np.zeros(h, np.float32)}
            m.net.ReversePackedSegs([outs[1], lengths], "bw_back")
            m.net.Concat([outs[0], "bw_back"], ["y_tm", "concat_dims"], axis=2)
            m.net.Transpose("y_tm", "y", axes=[1, 0, 2])
            params: Params = {}
            for direction in ("fw", "bw"):
                params |= {f"wx_{direction}": (f"{direction}/i2h_w", _t), f"wh_{direction}": (f"{direction}/gates_t_w", _t),
                           f"b_{direction}": (f"{direction}/i2h_b", _same)}
            return {"y": "y"}, params, feeds

        return self._input_op("rnn_cell.BasicRNN x2 + ReversePackedSegs + Concat", build, kind="composed",
                              note="caffe2.python.rnn_cell has no bidirectional wrapper: two BasicRNNs, the second on the "
                                   "sequence reversed by ReversePackedSegs and reversed back, concatenated [forward, backward]")

    def op_multi_head_attention(self) -> OpImpl:
        from caffe2.python import rnn_cell

        registered = sorted(op for op in self.workspace.RegisteredOperators() if "attention" in op.lower())
        helpers = [n for n in dir(self.brew) if "attention" in n.lower()]
        cells = [n for n in dir(rnn_cell) if "attention" in n.lower()]
        raise Unsupported("caffe2 has no multi-head attention: no *Attention* operator among workspace.RegisteredOperators() "
                          f"({', '.join(registered) or 'none'}), no brew helper for it ({', '.join(helpers) or 'none'}); "
                          f"caffe2.python.rnn_cell's attention ({', '.join(cells)}) is the single-head additive attention "
                          "of its seq2seq decoders over encoder outputs",
                          looked_up=["workspace.RegisteredOperators(): *attention*", "brew: *attention*",
                                     "caffe2.python.rnn_cell: *Attention*"])

    def op_prelu(self) -> OpImpl:
        def build(m: Any, c: Case) -> Any:
            alpha = c.arrays["alpha"]
            self.brew.prelu(m, "x", "y", num_channels=alpha.shape[0])
            return {"y": "y"}, {"alpha": ("y_slope", _same)}, {"y_slope": alpha}

        return self._input_op("brew.prelu (PRelu operator)", build)

    def op_hierarchical_softmax(self) -> OpImpl:
        from caffe2.python import hsm_util

        def run(c: Case) -> dict[str, Array]:
            a, cfg = c.arrays, c.config
            k, s = cfg["clusters"], cfg["cluster_size"]
            # a root node whose children are the clusters, each a node of its words: hsm_util numbers the rows of
            # W and b node by node (root: rows 0..k-1, cluster j: rows k + j s ..)
            clusters = [hsm_util.create_node_with_words(list(range(j * s, (j + 1) * s)), f"cluster{j}") for j in range(k)]
            tree = hsm_util.hsm_pb2.TreeProto()
            tree.root_node.MergeFrom(hsm_util.create_node_with_nodes(clusters, "root"))
            hierarchy = hsm_util.create_hierarchy(tree)
            w = np.concatenate([a["w_cluster"].T, *[a["w_word"][j].T for j in range(k)]], axis=0)
            b = np.concatenate([a["b_cluster"], *[a["b_word"][j] for j in range(k)]])
            self._fresh()
            net = self.core.Net("hsm")
            net.HSoftmax(["x", "w", "b", "labels"], ["loss", "intermediate"], hierarchy=hierarchy.SerializeToString())
            net.Negative("loss", "y")
            # HSoftmax's gradient operator asks for a dense gradient of its second output too: zeros shaped like it
            net.ConstantFill("intermediate", "intermediate_zero_grad", value=0.0)

            def rows(lo: int, hi: int, transpose: bool) -> Callable[[Array], Array]:
                return lambda g: g[lo:hi].T if transpose else g[lo:hi]

            def words(g: Array) -> Array:
                return np.stack([g[k + j * s:k + (j + 1) * s].T for j in range(k)])

            def word_b(g: Array) -> Array:
                return np.stack([g[k + j * s:k + (j + 1) * s] for j in range(k)])

            out = self._run(c, net, {"y": "y"}, wrt=("x", _same),
                            feeds={"x": a["x"], "w": w, "b": b, "labels": a["targets"].astype(np.int32)},
                            extra_ys={"intermediate": "intermediate_zero_grad"})
            if "grads" in out:
                gw, gb = self.fetch(self._grad_name("w")), self.fetch(self._grad_name("b"))
                out["grads"] |= {"w_cluster": rows(0, k, True)(gw), "b_cluster": rows(0, k, False)(gb),
                                 "w_word": words(gw), "b_word": word_b(gb)}
            return out

        self._has_op("HSoftmax")
        return OpImpl("native", "HSoftmax operator (hierarchy from caffe2.python.hsm_util)", run,
                      note="the two-level tree (a root over the clusters, each cluster over its words) as a HierarchyProto; "
                           "W stacks each node's rows (out, in); HSoftmax returns -log p(target), negated here")

    @staticmethod
    def _grad_name(blob: str) -> str:
        return f"{blob}_grad"

    def op_ctc_loss(self) -> OpImpl:
        registered = sorted(op for op in self.workspace.RegisteredOperators() if "ctc" in op.lower())
        if "CTC" not in registered:
            raise Unsupported(f"caffe2 has no CTC loss operator in this build: workspace.RegisteredOperators() has only "
                              f"{', '.join(registered) or 'no CTC operator'} (decoders); the loss was the warp-ctc contrib "
                              "operator 'CTC', not built into the PyTorch wheels",
                              looked_up=["workspace.RegisteredOperators(): CTC"])
        raise NotMapped("the CTC operator is registered, but this adapter does not map it yet")

    # ------------------------------------------------------------------------------------------ optimizers
    def _optimizer(self, api: str, build: Callable[[Any, dict[str, Any]], Any], kind: str = "native",
                   state: Callable[[dict[str, Any]], dict[tuple[str, int], float]] | None = None, note: str = "") -> OpImpl:
        """The catalog's fixed gradients through caffe2.python.optimizer: loss = SumElements(w * g) has gradient g
        (from AddGradientOperators); the builder adds its update operators to the same net; one RunNet per step."""

        def run(c: Case) -> dict[str, Array]:
            from caffe2.python.modeling import initializers

            self._fresh()
            m = self._model("opt")
            w0 = c.arrays["w"]
            m.create_param("w", shape=list(w0.shape), initializer=initializers.Initializer("ConstantFill", value=0.0))
            m.net.Mul(["w", "g"], "wg")
            m.net.SumElements("wg", "loss")
            m.AddGradientOperators(["loss"])
            build(m, c.config)
            self.feed("g", np.zeros_like(w0))
            self.workspace.RunNetOnce(m.param_init_net)
            self.feed("w", w0)
            for (op_type, index), value in (state(c.config) if state else {}).items():
                # the optimizer's state blob: input `index` of its update operator
                blob = next(op.input[index] for op in m.net.Proto().op if op.type == op_type)
                self.feed(blob, np.full(w0.shape, value, np.float32))
            self.workspace.CreateNet(m.net)
            history = []
            for g in c.arrays["grads"]:
                self.feed("g", g)
                self.workspace.RunNet(m.net.Proto().name)
                history.append(self.fetch("w").copy())
            return {"w": np.stack(history)}

        return OpImpl(kind, api, run, note=note)

    def op_sgd(self) -> OpImpl:
        return self._optimizer("optimizer.build_sgd", lambda m, h: self.optimizer.build_sgd(m, h["lr"]))

    def op_momentum(self) -> OpImpl:
        return self._optimizer("optimizer.build_sgd(momentum, nesterov=False) (MomentumSGDUpdate)",
                               lambda m, h: self.optimizer.build_sgd(m, h["lr"], momentum=h["mu"], nesterov=False),
                               note="build_sgd's nesterov defaults to True: set False")

    def op_nesterov(self) -> OpImpl:
        return self._optimizer("optimizer.build_sgd(momentum, nesterov=True) (MomentumSGDUpdate)",
                               lambda m, h: self.optimizer.build_sgd(m, h["lr"], momentum=h["mu"], nesterov=True))

    def op_adagrad(self) -> OpImpl:
        return self._optimizer("optimizer.build_adagrad (Adagrad operator)",
                               lambda m, h: self.optimizer.build_adagrad(m, h["lr"], epsilon=h["eps"]),
                               state=lambda h: {("Adagrad", 1): h["initial_accumulator"]},
                               note="decay 1 (plain Adagrad); the accumulator is the Adagrad operator's moment input (the "
                                    "optimizer's state blob), set to the case's initial value with FeedBlob after "
                                    "param_init_net, as restoring a checkpoint does")

    def op_adadelta(self) -> OpImpl:
        return self._optimizer("optimizer.build_adadelta (Adadelta operator)",
                               lambda m, h: self.optimizer.build_adadelta(m, h["lr"], epsilon=h["eps"], decay=h["rho"]),
                               note="decay = rho")

    def op_rmsprop(self) -> OpImpl:
        return self._optimizer("optimizer.build_rms_prop (RmsProp operator)",
                               lambda m, h: self.optimizer.build_rms_prop(m, h["lr"], decay=h["rho"], momentum=0.0, epsilon=h["eps"]),
                               note="decay = rho, momentum 0")

    def op_adam(self) -> OpImpl:
        return self._optimizer("optimizer.build_adam (Adam operator)",
                               lambda m, h: self.optimizer.build_adam(m, h["lr"], beta1=h["b1"], beta2=h["b2"], epsilon=h["eps"]),
                               note=ADAM_NOTE)

    def op_adamw(self) -> OpImpl:
        def build(m: Any, h: dict[str, Any]) -> None:
            # decoupled decay before the Adam step: w *= 1 - lr * weight_decay (the Adam step reads only the gradient)
            m.net.Scale("w", "w", scale=1.0 - h["lr"] * h["weight_decay"])
            self.optimizer.build_adam(m, h["lr"], beta1=h["b1"], beta2=h["b2"], epsilon=h["eps"])

        return self._optimizer("Scale + optimizer.build_adam", build, kind="composed",
                               note="caffe2.python.optimizer has no AdamW (AdamOptimizer takes no weight decay): the decoupled "
                                    "decay is a Scale operator on w before the Adam operator. " + ADAM_NOTE)

    # ------------------------------------------------------------------------------------------ graphs
    def _namespace(self, net: Any) -> Any:
        """The catalog programs' F over blobs of a net being defined: each call adds an operator to `net`. Caffe2's
        BlobReference has no arithmetic, so products go through _Blob, which adds Mul / Scale operators."""
        adapter = self

        class _Blob:
            def __init__(self, ref: Any) -> None:
                self.ref = ref

            def __mul__(self, other: Any) -> _Blob:
                if isinstance(other, _Blob):
                    return _Blob(net.Mul([self.ref, other.ref], net.NextName("mul")))
                return _Blob(net.Scale(self.ref, net.NextName("scale"), scale=float(other)))

            __rmul__ = __mul__

        def item(v: _Blob) -> float:
            # a blob has a value only once its net has run: FetchBlob on a net still being defined
            return float(adapter.fetch(v.ref))

        return types.SimpleNamespace(
            sum=lambda x: _Blob(net.SumElements(x.ref, net.NextName("sum"))),
            tanh=lambda x: _Blob(net.Tanh(x.ref, net.NextName("tanh"))),
            matmul=lambda a, b: _Blob(net.MatMul([a.ref, b.ref], net.NextName("matmul"))),
            item=item, wrap=_Blob)

    def graph_namespace(self) -> Any:
        return self._namespace(self.core.Net("graph"))

    def graph_notes(self) -> list[str]:
        return ["Caffe2 is define-then-run: the program runs once in Python over BlobReferences, each call adding an "
                "operator to a core.Net; the net (with AddGradientOperators' gradient operators) then runs in the "
                "C++ executor. BlobReference has no arithmetic, so the namespace's blobs add Mul / Scale operators for "
                "* ; nothing gives a blob a value while the net is being defined (Python comparisons and F.item see "
                "the blob reference, not a number)"]

    def _define(self, fn: Callable[..., Any], args: Sequence[Array]) -> tuple[Any, Any, list[str]]:
        net = self.core.Net("program")
        F = self._namespace(net)
        names = [f"arg{i}" for i in range(len(args))]
        out = fn(F, *[F.wrap(self.core.BlobReference(n)) for n in names])
        grads = net.AddGradientOperators([out.ref])
        return net, (out.ref, grads[self.core.BlobReference(names[0])]), names

    def value_and_grad(self, fn: Callable[..., Any], args: Sequence[Array]) -> tuple[float, Array]:
        self._fresh()
        net, (value, grad), names = self._define(fn, args)
        for name, a in zip(names, args):
            self.feed(name, a)
        self.workspace.RunNetOnce(net)
        return float(self.fetch(value)), self.fetch(grad)

    def compile_paths(self) -> list[str]:
        return [NET_PATH] if hasattr(self.workspace, "CreateNet") and hasattr(self.workspace, "RunNet") else []

    def compile_path_lookups(self) -> list[str]:
        return ["caffe2.python.workspace.CreateNet", "caffe2.python.workspace.RunNet"]

    def compile(self, fn: Callable[..., Any], path: str) -> CompiledFunction:
        if path != NET_PATH:
            return super().compile(fn, path)
        state: dict[str, Any] = {}
        created = [0]

        def call(args: Sequence[Array]) -> tuple[float, Array]:
            if "net" not in state:
                self._fresh()
                net, outs, names = self._define(fn, args)
                state.update(net=net, outs=outs, names=names)
            for name, a in zip(state["names"], args):
                self.feed(name, a)
            if not created[0]:
                self.workspace.CreateNet(state["net"])
                created[0] += 1
            self.workspace.RunNet(state["net"].Proto().name)
            value, grad = state["outs"]
            return float(self.fetch(value)), self.fetch(grad)

        notes = ["the program runs once in Python to define a core.Net with its gradient operators; "
                 "workspace.CreateNet instantiates it once and RunNet reruns it on newly fed blobs: Caffe2's operators "
                 "infer shapes at run time, so a new input shape reuses the same net"]
        return CompiledFunction(path, call, lambda: created[0], notes)

    # ------------------------------------------------------------------------------------------ throughput
    def _check_precision(self, precision: str) -> None:
        if precision == "fp32":
            return
        if precision not in PRECISIONS:
            raise KeyError(f"unknown precision {precision!r}")
        raise Unsupported(f"the caffe2 adapter runs on the CPU, where {precision} does not exist (TF32 and bfloat16 "
                          "are CUDA precisions here)", looked_up=[f"{precision} on {self.device}"])

    def workload(self, spec: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        self._check_precision(precision)
        self._fresh()
        net = self.core.Net(f"{spec.id}_{mode}")
        if spec.id == "gemm":
            self.feed("a", arrays["a"])
            self.feed("b", arrays["b"])
            net.MatMul(["a", "b"], "y")
        elif spec.id == "conv2d":
            self.feed("x", arrays["x"])
            self.feed("w", arrays["w"])
            self.feed("bias", np.zeros(arrays["w"].shape[0], np.float32))
            net.Conv(["x", "w", "bias"], "y", kernel=arrays["w"].shape[2], pad=1)
        else:
            raise NotMapped(f"the caffe2 adapter has no single-op workload {spec.id}")
        compiled = mode == "compiled"
        if compiled:
            self.workspace.CreateNet(net)
            name = net.Proto().name

            def step() -> Any:
                self.workspace.RunNet(name)
        else:
            def step() -> Any:
                self.workspace.RunNetOnce(net)

        notes = ["eager: workspace.RunNetOnce (the net instantiated and run on every call); compiled: workspace.CreateNet "
                 "once, then RunNet (the instantiated net rerun by the C++ executor)"]
        if spec.id == "conv2d":
            notes.append("Conv with a zero bias blob (the operator's bias input), pad 1")
        return Workload(step, lambda: None, 0, NET_PATH if compiled else None, notes,
                        observe=lambda _r: {"y": self.fetch("y")}, compile_scope="op" if compiled else None,
                        traces=(lambda: 1) if compiled else (lambda: None), precision=precision)

    def _node(self, m: Any, node: Any, x: Any, shapes: dict[str, tuple[int, ...]], p: dict[str, Array],
              feeds: dict[str, Array], inference: bool = False) -> tuple[Any, dict[str, tuple[str, Callable[[Array], Array]]]]:
        """One catalog node as Caffe2 operators; returns its output blob and readers of its parameters (blob and
        mapping to the catalog layout). `feeds` collects the catalog's initial values in Caffe2's layouts.
        inference: batch normalisation in test mode (is_test=1: the running statistics, brew's fresh 0 and 1)."""
        brew, net = self.brew, m.net
        kind, a, name = node.kind, node.attrs, node.name
        shape = shapes[node.inputs[0]] if node.inputs else ()
        if kind == "dense":
            w = p["w"]
            if "b" not in p:  # brew.fc always has a bias: a constant zero bias blob, not a parameter
                self._const(m, f"{name}_zero_b", np.zeros(w.shape[1], np.float32), feeds)
                y = net.FC([x[0], f"{name}_w", f"{name}_zero_b"], name, axis=len(shape) - 1)
                self._param(m, f"{name}_w", w.T, feeds)
                return y, {"w": (f"{name}_w", _t)}
            y = brew.fc(m, x[0], name, dim_in=w.shape[0], dim_out=w.shape[1], axis=len(shape) - 1)
            feeds |= {f"{name}_w": w.T, f"{name}_b": p["b"]}
            return y, {"w": (f"{name}_w", _t), "b": (f"{name}_b", _same)}
        if kind == "conv2d":
            w = p["w"]
            y = brew.conv(m, x[0], name, w.shape[1], w.shape[0], w.shape[2], stride=a["stride"], pad=a["padding"],
                          no_bias="b" not in p)
            feeds[f"{name}_w"] = w
            reads = {"w": (f"{name}_w", _same)}
            if "b" in p:
                feeds[f"{name}_b"] = p["b"]
                reads["b"] = (f"{name}_b", _same)
            return y, reads
        if kind == "batch_norm":
            y = brew.spatial_bn(m, x[0], name, p["gamma"].shape[0], epsilon=NORM_EPS, is_test=inference)
            feeds |= {f"{name}_s": p["gamma"], f"{name}_b": p["beta"]}
            return y, {"gamma": (f"{name}_s", _same), "beta": (f"{name}_b", _same)}
        if kind == "layer_norm":
            y, _, _ = brew.layer_norm(m, x[0], name, dim_in=p["gamma"].shape[0], axis=len(shape) - 1, epsilon=NORM_EPS)
            feeds |= {f"{name}_scale": p["gamma"], f"{name}_bias": p["beta"]}
            return y, {"gamma": (f"{name}_scale", _same), "beta": (f"{name}_bias", _same)}
        if kind == "relu":
            return brew.relu(m, x[0], name), {}
        if kind == "gelu":
            return net.Gelu(x[0], name), {}
        if kind == "max_pool":
            return brew.max_pool(m, x[0], name, kernel=a["kernel"], stride=a["stride"], pad=a["padding"]), {}
        if kind == "global_avg_pool":
            pooled = brew.average_pool(m, x[0], f"{name}_4d", global_pooling=True)
            return net.Squeeze(pooled, name, dims=[2, 3]), {}
        if kind == "flatten":
            return net.Flatten(x[0], name, axis=1), {}
        if kind == "add":
            return net.Add([x[0], x[1]], name), {}
        if kind == "mean_tokens":
            return net.ReduceMean(x[0], name, axes=[1], keepdims=0), {}
        if kind == "embedding":
            self._param(m, f"{name}_table", p["table"], feeds)
            return net.Gather([f"{name}_table", x[0]], name), {"table": (f"{name}_table", _same)}
        if kind == "positional":
            self._param(m, f"{name}_table", p["table"], feeds)
            return net.Add([x[0], f"{name}_table"], name, broadcast=1), {"table": (f"{name}_table", _same)}
        if kind == "self_attention":
            return self._attention(m, node, x[0], shape, p, feeds)
        if kind == "lstm_last":
            return self._lstm_last(m, node, x[0], shape, p, feeds)
        if kind == "gru":
            return self._gru(m, node, x[0], shape, p, feeds)
        raise NotMapped(f"the caffe2 adapter has no mapping for node kind {kind!r}")

    def _param(self, m: Any, blob: str, value: Array, feeds: dict[str, Array]) -> None:
        """A trainable parameter the brew helpers do not make: created with model.create_param (so the optimizer
        updates it) and given the catalog's value."""
        from caffe2.python.modeling import initializers

        m.create_param(blob, shape=list(value.shape), initializer=initializers.Initializer("ConstantFill", value=0.0))
        feeds[blob] = value

    @staticmethod
    def _const(m: Any, blob: str, value: Array, feeds: dict[str, Array]) -> None:
        feeds[blob] = value

    def _attention(self, m: Any, node: Any, x: Any, shape: tuple[int, ...], p: dict[str, Array],
                   feeds: dict[str, Array]) -> Any:
        """Caffe2 has no multi-head attention (see op_multi_head_attention): four FCs, Reshape / Transpose, BatchMatMul
        and Softmax over the last axis."""
        net, name = m.net, node.name
        n, t, d = shape
        heads = node.attrs["heads"]
        dh = d // heads
        reads = {}
        proj = {}
        for c in "qkvo":
            feeds |= {f"{name}_{c}_w": p[f"w{c}"].T, f"{name}_{c}_b": p[f"b{c}"]}
            reads |= {f"w{c}": (f"{name}_{c}_w", _t), f"b{c}": (f"{name}_{c}_b", _same)}
        for c in "qkv":
            y = self.brew.fc(m, x, f"{name}_{c}", dim_in=d, dim_out=d, axis=2)
            r, _ = net.Reshape(y, [f"{name}_{c}_r", f"{name}_{c}_rs"], shape=[n, t, heads, dh])
            proj[c] = net.Transpose(r, f"{name}_{c}_h", axes=[0, 2, 1, 3])
        scores = net.BatchMatMul([proj["q"], proj["k"]], f"{name}_scores", trans_b=1)
        scaled = net.Scale(scores, f"{name}_scaled", scale=1.0 / float(np.sqrt(dh)))
        att = net.Softmax(scaled, f"{name}_att", axis=3)
        ctx = net.BatchMatMul([att, proj["v"]], f"{name}_ctx")
        ctx_t = net.Transpose(ctx, f"{name}_ctx_t", axes=[0, 2, 1, 3])
        merged, _ = net.Reshape(ctx_t, [f"{name}_merged", f"{name}_merged_rs"], shape=[n, t, d])
        y = self.brew.fc(m, merged, f"{name}_o", dim_in=d, dim_out=d, axis=2)
        return y, reads

    def _recurrent(self, m: Any, node: Any, x: Any, shape: tuple[int, ...], cell: Callable[..., Any], states: int,
                   **kw: Any) -> tuple[Any, ...]:
        n, _, d = shape
        hidden = node.attrs["hidden"]
        name = node.name
        x_tm = m.net.Transpose(x, f"{name}_x_tm", axes=[1, 0, 2])
        inits = [m.param_init_net.ConstantFill([], f"{name}_init{i}", shape=[1, n, hidden], value=0.0) for i in range(states)]
        return cell(m, x_tm, None, inits, d, hidden, scope=name, **kw)

    def _untrained(self, m: Any, blobs: Sequence[str]) -> None:
        """Bias blobs a cell always makes and the catalog node has not: kept at zero, out of model.params, so the
        optimizer does not update them and they are not counted."""
        keep = [q for q in m.params if str(q) not in blobs]
        del m.params[:]
        m.params.extend(keep)

    def _lstm_last(self, m: Any, node: Any, x: Any, shape: tuple[int, ...], p: dict[str, Array], feeds: dict[str, Array]) -> Any:
        from caffe2.python import rnn_cell

        name, hidden = node.name, node.attrs["hidden"]
        # outputs_with_grads: the gradient flows in through the last hidden state (output 1), not the sequence (0)
        _, last, _, _ = self._recurrent(m, node, x, shape, rnn_cell.LSTM, 2, outputs_with_grads=(1,))
        biases = [f"{name}/i2h_b", f"{name}/gates_t_b"]
        self._untrained(m, biases)
        feeds |= {f"{name}/i2h_w": reorder_gates(p["wx"], "ifgo", CAFFE2_LSTM).T,
                  f"{name}/gates_t_w": reorder_gates(p["wh"], "ifgo", CAFFE2_LSTM).T,
                  **{b: np.zeros(4 * hidden, np.float32) for b in biases}}
        y = m.net.Squeeze(last, name, dims=[0])

        def back(g: Array) -> Array:
            return reorder_gates(g.T, CAFFE2_LSTM, "ifgo")

        return y, {"wx": (f"{name}/i2h_w", back), "wh": (f"{name}/gates_t_w", back)}

    def _gru(self, m: Any, node: Any, x: Any, shape: tuple[int, ...], p: dict[str, Array], feeds: dict[str, Array]) -> Any:
        from caffe2.python import gru_cell

        name = node.name
        all_h, _ = self._recurrent(m, node, x, shape, gru_cell.GRU, 1, linear_before_reset=True)
        wh = np.split(reorder_gates(p["wh"], "rzn", CAFFE2_GRU), 3, axis=-1)
        bh = np.split(reorder_gates(p["bh"], "rzn", CAFFE2_GRU), 3)
        feeds |= {f"{name}/i2h_w": reorder_gates(p["wx"], "rzn", CAFFE2_GRU).T, f"{name}/i2h_b": reorder_gates(p["bx"], "rzn", CAFFE2_GRU)}
        for k, gate in enumerate(("reset", "update", "output")):
            feeds |= {f"{name}/{gate}_gate_t_w": wh[k].T, f"{name}/{gate}_gate_t_b": bh[k]}
        y = m.net.Transpose(all_h, name, axes=[1, 0, 2])
        gates = ("reset", "update", "output")
        reads = {"wx": (f"{name}/i2h_w", lambda g: reorder_gates(g.T, CAFFE2_GRU, "rzn")),
                 "bx": (f"{name}/i2h_b", lambda g: reorder_gates(g, CAFFE2_GRU, "rzn")),
                 # three blobs each: the reader gets a placeholder and fetches the gate blobs itself
                 "wh": ("", lambda _g: reorder_gates(np.concatenate([self.fetch(f"{name}/{q}_gate_t_w").T for q in gates], axis=-1),
                                                     CAFFE2_GRU, "rzn")),
                 "bh": ("", lambda _g: reorder_gates(np.concatenate([self.fetch(f"{name}/{q}_gate_t_b") for q in gates]),
                                                     CAFFE2_GRU, "rzn"))}
        return y, reads

    def _catalog_net(self, m: Any, model: Any, arrays: dict[str, Array], x: str, feeds: dict[str, Array],
                     inference: bool = False) -> tuple[Any, Params]:
        """The catalog model's forward pass into m's net from input blob `x`, node by node (_node); its logits blob
        and, per catalog parameter, its blob and the map back to the catalog layout; `feeds` collects the values."""
        shapes = model.shapes()
        readers: Params = {}
        values: dict[str, Any] = {"input": x}
        param_names = list(model.param_shapes())
        for node in model.nodes:
            prefix = f"{node.name}."
            p = {k[len(prefix):]: arrays[k] for k in param_names if k.startswith(prefix)}
            out, reads = self._node(m, node, [values[i] for i in node.inputs], shapes, p, feeds, inference)
            if set(reads) != set(p):
                raise ValueError(f"node {node.name} ({node.kind}): read back {sorted(reads)}, the catalog has {sorted(p)}")
            values[node.name] = out
            readers |= {prefix + k: r for k, r in reads.items()}
        return values[model.output], readers

    def model_workload(self, model: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """Any catalog model: each node as Caffe2 operators for its kind (_node), wired by name in one
        ModelHelper; SoftmaxWithLoss (mean over the batch, or over every token), AddGradientOperators and
        optimizer.build_sgd in the same net. eager: workspace.RunNetOnce per step (the net instantiated every
        call); compiled: CreateNet once and RunNet: the whole step is one net run by the C++ executor."""
        self._check_precision(precision)
        self._fresh()
        m = self._model("train")
        feeds: dict[str, Array] = {}
        logits, readers = self._catalog_net(m, model, arrays, "input", feeds)
        classes = model.classes
        flat, _ = m.net.Reshape(logits, ["logits2d", "logits_old_shape"], shape=[-1, classes])
        m.net.Reshape("labels", ["labels1d", "labels_old_shape"], shape=[-1])
        _, loss = m.net.SoftmaxWithLoss([flat, "labels1d"], ["softmax", "loss"])
        m.AddGradientOperators([loss])
        self.optimizer.build_sgd(m, LEARNING_RATE)
        self.workspace.RunNetOnce(m.param_init_net)
        for blob, value in feeds.items():
            self.feed(blob, value)
        tokens = model.input_kind == "tokens"
        self.feed("input", arrays["x"], np.int32 if tokens else np.float32)
        self.feed("labels", arrays["labels"], np.int32)
        compiled = mode == "compiled"
        name = m.net.Proto().name
        if compiled:
            self.workspace.CreateNet(m.net)

            def step() -> Any:
                self.workspace.RunNet(name)
                return self.fetch("loss")
        else:
            def step() -> Any:
                self.workspace.RunNetOnce(m.net)
                return self.fetch("loss")

        def observe(loss: Any) -> dict[str, Any]:
            got: dict[str, Any] = {"loss": np.asarray(loss)}
            for catalog, (blob, to_catalog) in readers.items():
                got[catalog] = to_catalog(self.fetch(blob) if blob else np.zeros(0))
            return got

        count = int(sum(self.fetch(q).size for q in m.params))
        kinds = set(model.kinds())
        notes = [f"node kinds: {', '.join(sorted(kinds))}; each built from Caffe2 operators (brew helpers where one "
                 "exists); loss SoftmaxWithLoss, update optimizer.build_sgd (WeightedSum with a LearningRate blob)"]
        if "self_attention" in kinds:
            notes.append("self_attention composed from FC, Reshape, Transpose, BatchMatMul, Scale and Softmax (no "
                         "multi-head attention operator)")
        if "lstm_last" in kinds:
            notes.append("lstm_last: rnn_cell.LSTM, whose two bias blobs are held at zero and kept out of the model's "
                         "parameters (the catalog's node has none)")
        if "embedding" in kinds:
            notes.append("embedding: Gather, whose sparse gradient build_sgd applies with ScatterWeightedSum")
        return Workload(step, lambda: None, count, NET_PATH if compiled else None, notes, observe=observe,
                        compile_scope="step" if compiled else None, traces=(lambda: 1) if compiled else (lambda: None),
                        precision=precision)

    # ------------------------------------------------------------------------------------------ numerics
    def array_api(self) -> ArrayAPI:
        """Caffe2 has no array library of its own: blobs go in and come out of the workspace as NumPy arrays
        (FeedBlob / FetchBlob), and operators run only inside nets. The namespace its users computed with outside
        nets is NumPy, which the numerics probe records as such."""
        def from_numpy(a: Array) -> Any:
            self.workspace.FeedBlob("numerics_probe", np.asarray(a))
            return self.workspace.FetchBlob("numerics_probe")

        return ArrayAPI("numpy (caffe2 blobs are NumPy arrays through workspace.FeedBlob / FetchBlob)", np, from_numpy,
                        lambda t: np.asarray(t), None)

    # ------------------------------------------------------------------------------------------ scale
    def allreduce(self, rank: int, world: int, host: str, port: int, value: Array) -> AllReduceResult:
        """Caffe2's own collectives: a Gloo common world (CreateCommonWorld, engine GLOO) over a store, then the
        Allreduce operator (engine GLOO) on a blob. The store is FileStoreHandlerCreate on a folder both ranks see
        (named by the probe's port), the rendezvous Caffe2's multi-process tests use; the transport is TCP."""
        self._has_op("Allreduce")
        for op in ("CreateCommonWorld", "FileStoreHandlerCreate"):
            self._has_op(op)
        from caffe2.python import core

        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"caffe2-gloo-store-{port}")
        os.makedirs(path, exist_ok=True)
        ws = self.workspace
        ws.RunOperatorOnce(core.CreateOperator("FileStoreHandlerCreate", [], ["store"], path=path, prefix="allreduce"))
        ws.RunOperatorOnce(core.CreateOperator("CreateCommonWorld", ["store"], ["comm"], size=world, rank=rank,
                                               engine="GLOO", transport="tcp", interface="lo", timeout_ms=60000))
        self.feed("x", value)
        ws.RunOperatorOnce(core.CreateOperator("Allreduce", ["comm", "x"], ["x"], engine="GLOO"))
        out = self.fetch("x")
        if rank == 0:
            time.sleep(0.5)  # let the other rank leave the store before its files go
        return AllReduceResult("Allreduce operator (engine GLOO) over CreateCommonWorld", True, out,
                               [f"Gloo common world of {world} over FileStoreHandlerCreate ({path}), TCP on the loopback "
                                "interface; Allreduce sums in place"])

    # ------------------------------------------------------------------------------------------ onnx
    def _onnx_nets(self, model: Any) -> tuple[Any, Any, Array]:
        """The catalog model as a Caffe2 predict net and init net (weights as GivenTensorFill), and its output."""
        from caffe2.python import core

        if model.catalog is not None:
            return self._catalog_onnx_nets(model)
        w = model.weights()
        init = core.Net(f"{model.id}_init")
        pred = core.Net(f"{model.id}_predict")
        pred.AddExternalInput("x")
        if model.id == "mlp":
            params = {"w1": w["w1"].T, "b1": w["b1"], "w2": w["w2"].T, "b2": w["b2"]}
            pred.FC(["x", "w1", "b1"], "h")
            pred.Relu("h", "hr")
            y = pred.FC(["hr", "w2", "b2"], "y")
        elif model.id == "cnn":
            params = {"conv_w": w["conv_w"], "conv_b": w["conv_b"], "fc_w": w["fc_w"].T, "fc_b": w["fc_b"]}
            pred.Conv(["x", "conv_w", "conv_b"], "c", kernel=3, pad=1)
            pred.Relu("c", "cr")
            pred.MaxPool("cr", "p", kernel=2, stride=2)
            pred.Flatten("p", "f", axis=1)
            y = pred.FC(["f", "fc_w", "fc_b"], "y")
        else:
            raise KeyError(model.id)
        for k, v in params.items():
            init.GivenTensorFill([], k, shape=list(v.shape), values=np.asarray(v, np.float32).reshape(-1).tolist())
        pred.AddExternalOutput(y)
        self._fresh()
        self.workspace.RunNetOnce(init)
        self.feed("x", model.sample_input())
        self.workspace.RunNetOnce(pred)
        return init, pred, self.fetch("y")

    def _catalog_onnx_nets(self, model: Any) -> tuple[Any, Any, Array]:
        """The catalog model from the same operators as its training workloads (_catalog_net) in inference mode, as a
        predict net from blob "x" and an init net that fills every other blob the predict net reads (the catalog's
        weights, brew's running statistics, zero biases and states) with the value it holds after
        param_init_net and the feeds, as GivenTensor*Fill operators."""
        from caffe2.python import core

        self._fresh()
        m = self._model("predict")
        feeds: dict[str, Array] = {}
        logits, _ = self._catalog_net(m, model.model(), model.weights(), "x", feeds, inference=True)
        m.net.AddExternalOutput(logits)
        self.workspace.RunNetOnce(m.param_init_net)
        for blob, value in feeds.items():
            self.feed(blob, value)
        x = model.sample_input()
        self.feed("x", x, x.dtype)
        self.workspace.RunNetOnce(m.net)
        expected = self.fetch(logits)
        fills = {np.dtype(np.float32): "GivenTensorFill", np.dtype(np.int32): "GivenTensorIntFill",
                 np.dtype(np.int64): "GivenTensorInt64Fill"}
        init = core.Net(f"{model.id}_init")
        for blob in m.net.Proto().external_input:
            if blob == "x":
                continue
            value = self.fetch(blob)
            if value.dtype not in fills:
                raise NotMapped(f"blob {blob} of dtype {value.dtype}: no GivenTensor*Fill is mapped for it")
            getattr(init, fills[value.dtype])([], blob, shape=list(value.shape), values=value.reshape(-1).tolist())
        return init, m.net, expected

    def onnx_export(self, model: Any, path: str, opset: int | None) -> ExportResult:
        try:
            from caffe2.python.onnx import frontend
        except ImportError as exc:
            raise Unsupported(f"caffe2.python.onnx.frontend cannot be imported: {exc}", looked_up=["caffe2.python.onnx.frontend"]) from None
        from onnx import TensorProto

        to_onnx = require(frontend, "caffe2_net_to_onnx_model", "caffe2.python.onnx.frontend")
        init, pred, expected = self._onnx_nets(model)
        tokens = model.sample_input().dtype == np.int64
        value_info = {"x": (TensorProto.INT64 if tokens else TensorProto.FLOAT, list(model.input_shape))}
        proto = to_onnx(pred.Proto(), init.Proto(), value_info)
        with open(path, "wb") as f:
            f.write(proto.SerializeToString())
        used = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
        notes = [f"caffe2.python.onnx.frontend.caffe2_net_to_onnx_model on the predict and init nets; it writes opset "
                 f"{used} (its own target: no opset argument is passed)"]
        return ExportResult("caffe2.python.onnx.frontend.caffe2_net_to_onnx_model", self._torch_version(), used, expected, notes)

    def _torch_version(self) -> str:
        return distribution_versions("torch")["torch"]

    def onnx_import(self, path: str) -> ImportResult:
        import onnx

        try:
            from caffe2.python.onnx import backend
        except ImportError as exc:
            raise Unsupported(f"caffe2.python.onnx.backend (torch {self._torch_version()}) cannot be imported with onnx "
                              f"{onnx.__version__}: {exc}", looked_up=["caffe2.python.onnx.backend", str(exc.name or exc)]) from None

        prepare = require(backend, "prepare", "caffe2.python.onnx.backend")
        rep = prepare(onnx.load(path), device="CPU")

        def run(x: Array) -> Array:
            return np.asarray(rep.run(np.asarray(x, np.float32))[0])

        return ImportResult("caffe2.python.onnx.backend.prepare", self._torch_version(), run,
                            ["caffe2.python.onnx.backend turns each ONNX node into Caffe2 operators and runs them in a "
                             "Caffe2 workspace"])
