"""Apache MXNet adapter (1.9.1, the last release): Gluon layers and losses (mxnet.gluon.nn / rnn / loss), mxnet.nd
operators where Gluon has no block, mxnet.optimizer for the update rules; eager NDArrays under mx.autograd, and
HybridBlock.hybridize() as the symbolic compile path; the built-in mx.onnx exporter and mx.contrib.onnx importer.

MXNet's engine is asynchronous: every value is read back with asnumpy() (which waits for it), and the throughput
workloads synchronise with mx.nd.waitall().
"""

from __future__ import annotations

import gc
import os
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
    OpImpl,
    Unsupported,
    Workload,
    distribution_versions,
    reorder_gates,
    require_parameter,
    resolve,
)
from harness.catalog.ops import Case

# Quiet MXNet's own chatter (subgraph passes on hybridize, storage fallbacks) before it is imported.
os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")
os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")

Array = np.ndarray
CANONICAL_LSTM = "ifgo"  # the catalog's gate order
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



class MxnetAdapter(Adapter):
    name = "mxnet"
    distribution = "mxnet"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        import mxnet as mx

        self.mx = mx
        self.nd = mx.nd
        self.gluon = mx.gluon
        self.autograd = mx.autograd
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        self.ctx = mx.gpu(index) if device.startswith("cuda") else mx.cpu()
        mx.random.seed(0)

    # ------------------------------------------------------------------------------------------ identity
    def versions(self) -> dict[str, str]:
        out = distribution_versions("mxnet", "mxnet-cu117", "numpy", "onnx", "onnxruntime", "protobuf")
        out["mxnet"] = self.mx.__version__  # the CUDA wheel is a different distribution with the same module
        return out

    def device_available(self) -> tuple[bool, str]:
        if self.device == "cpu":
            return True, ""
        gpus = self.mx.context.num_gpus()
        if gpus == 0:
            return False, f"mxnet {self.mx.__version__} sees no GPU (mx.context.num_gpus() is 0; a CPU build?)"
        return True, ""

    def device_info(self) -> dict[str, Any]:
        features = self.mx.runtime.Features()
        enabled = sorted(name for name in ("CUDA", "CUDNN", "NCCL", "MKLDNN", "BLAS_OPEN", "BLAS_MKL", "OPENMP")
                         if features.is_enabled(name))
        info: dict[str, Any] = {"features": enabled}
        if self.device != "cpu":
            info["gpus"] = self.mx.context.num_gpus()
        return info

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

    def _train_model(self, spec_id: str, a: dict[str, Array]) -> tuple[Any, Callable[[], dict[str, Array]], list[str]]:
        """The workload's Gluon model loaded with the catalog's initial parameters, a reader of its parameters in
        the catalog's names and layouts, and notes."""
        nn, rnn = self.gluon.nn, self.gluon.rnn
        if spec_id == "mlp_train":
            d, h = a["w1"].shape
            net = nn.HybridSequential()
            net.add(nn.Dense(h, in_units=d, activation="relu"), nn.Dense(h, in_units=h, activation="relu"),
                    nn.Dense(a["w3"].shape[1], in_units=h))
            self._init(net)
            names = (("w1", "b1"), ("w2", "b2"), ("w3", "b3"))
            for layer, (w, b) in zip(net, names):
                self._set(layer, weight=a[w].T, bias=a[b])

            def read_mlp() -> dict[str, Array]:
                out = {}
                for layer, (w, b) in zip(net, names):
                    out[w], out[b] = self._data(layer.weight).T, self._data(layer.bias)
                return out

            return net, read_mlp, ["Dense weights are (out, in): loaded and read back transposed"]
        if spec_id == "cnn_train":
            c1, c2 = a["conv1_w"].shape[0], a["conv2_w"].shape[0]
            net = nn.HybridSequential()
            net.add(nn.Conv2D(c1, 3, padding=1, in_channels=3, activation="relu"), nn.MaxPool2D(2),
                    nn.Conv2D(c2, 3, padding=1, in_channels=c1, activation="relu"), nn.MaxPool2D(2),
                    nn.Dense(a["fc_w"].shape[1], in_units=a["fc_w"].shape[0]))  # Dense flattens NCHW in C, H, W order
            self._init(net)
            self._set(net[0], weight=a["conv1_w"], bias=a["conv1_b"])
            self._set(net[2], weight=a["conv2_w"], bias=a["conv2_b"])
            self._set(net[4], weight=a["fc_w"].T, bias=a["fc_b"])

            def read_cnn() -> dict[str, Array]:
                return {"conv1_w": self._data(net[0].weight), "conv1_b": self._data(net[0].bias),
                        "conv2_w": self._data(net[2].weight), "conv2_b": self._data(net[2].bias),
                        "fc_w": self._data(net[4].weight).T, "fc_b": self._data(net[4].bias)}

            return net, read_cnn, []
        if spec_id == "lstm_train":
            d, h = a["wx"].shape[0], a["wh"].shape[0]

            class LSTMClassifier(self.gluon.HybridBlock):  # type: ignore[name-defined, misc]
                def __init__(self) -> None:
                    super().__init__()
                    with self.name_scope():
                        self.lstm = rnn.LSTM(h, layout="NTC", input_size=d)
                        self.fc = nn.Dense(a["fc_w"].shape[1], in_units=h)

                def hybrid_forward(self, F: Any, x: Any) -> Any:
                    last = F.slice_axis(self.lstm(x), axis=1, begin=-1, end=None)  # h_T, (B, 1, H); Dense flattens
                    return self.fc(last)

            net = LSTMClassifier()
            self._init(net)
            zeros = np.zeros(4 * h, np.float32)
            self._set(net.lstm, l0_i2h_weight=reorder_gates(a["wx"], CANONICAL_LSTM, MXNET_LSTM).T,
                      l0_h2h_weight=reorder_gates(a["wh"], CANONICAL_LSTM, MXNET_LSTM).T, l0_i2h_bias=zeros, l0_h2h_bias=zeros)
            for bias in (net.lstm.l0_i2h_bias, net.lstm.l0_h2h_bias):
                bias.grad_req = "null"  # gluon.rnn.LSTM has no bias-free option: its biases stay 0 and are not trained
            self._set(net.fc, weight=a["fc_w"].T, bias=a["fc_b"])

            def read_lstm() -> dict[str, Array]:
                return {"wx": reorder_gates(self._data(net.lstm.l0_i2h_weight).T, MXNET_LSTM, CANONICAL_LSTM),
                        "wh": reorder_gates(self._data(net.lstm.l0_h2h_weight).T, MXNET_LSTM, CANONICAL_LSTM),
                        "fc_w": self._data(net.fc.weight).T, "fc_b": self._data(net.fc.bias)}

            return net, read_lstm, ["gluon.rnn.LSTM always has two bias vectors: both fixed at 0 and frozen (grad_req='null'), "
                                    "so the trainable parameters are the catalog's"]
        raise KeyError(spec_id)

    def workload(self, spec: Any, arrays: dict[str, Array], mode: str) -> Workload:
        compiled = mode == "compiled"
        path = STATIC_HYBRIDIZE if compiled else None
        nn = self.gluon.nn

        def hybridize(block: Any) -> Any:
            if compiled:
                block.hybridize(static_alloc=True, static_shape=True)
            return block

        if spec.kind == "op":
            if spec.id == "gemm":
                args: tuple[Any, ...] = (self.A(arrays["a"]), self.A(arrays["b"]))
                block = hybridize(self._traced_block(lambda F, blk, p, q: F.dot(p, q)))
                fn: Callable[..., Any] = block if compiled else self.nd.dot
            elif spec.id == "conv2d":
                w = arrays["w"]
                conv = nn.Conv2D(w.shape[0], w.shape[2:], padding=1, use_bias=False, in_channels=w.shape[1])
                self._set(self._init(conv), weight=w)
                block = hybridize(self._traced_block(lambda F, blk, x: blk.conv(x), conv=conv))
                fn = block if compiled else conv
                args = (self.A(arrays["x"]),)
            else:
                raise KeyError(spec.id)

            def step() -> Any:
                return fn(*args)

            return Workload(step, self._sync, 0, path, observe=lambda y: {"y": self.N(y)},
                            compile_scope="op" if compiled else None,
                            traces=(lambda: block.traces) if compiled else (lambda: None))

        net, read, notes = self._train_model(spec.id, arrays)
        loss_fn = self.gluon.loss.SoftmaxCrossEntropyLoss()  # per example; Trainer.step(batch) makes the update the mean's
        # the model and its loss as one block: hybridized, it is one CachedOp, traced once, whose backward MXNet runs too
        model = hybridize(self._traced_block(lambda F, blk, x, y: blk.loss(blk.net(x), y), net=net, loss=loss_fn))
        params = {k: p for k, p in net.collect_params().items() if p.grad_req != "null"}
        trainer = self.gluon.Trainer(params, "sgd", {"learning_rate": 0.01, "momentum": 0.0, "wd": 0.0})
        x, labels = self.A(arrays["x"]), self.A(arrays["labels"])
        batch = x.shape[0]

        def train_step() -> Any:
            with self.autograd.record():
                loss = model(x, labels)
            loss.backward()
            trainer.step(batch)  # rescale_grad = 1 / batch: the summed per-example gradient becomes the mean's
            return loss

        def observe(loss: Any) -> dict[str, Any]:
            return {"loss": float(self.N(loss).astype(np.float64).mean()), **read()}

        count = sum(int(np.prod(p.shape)) for p in params.values())
        if compiled:
            notes.append("the model and its softmax cross-entropy are one hybridized block (one CachedOp: forward and "
                         "its backward); gluon.Trainer's SGD update runs imperatively after it (Gluon 1.x puts no "
                         "optimizer update into a CachedOp)")
        return Workload(train_step, self._sync, count, path, notes, observe=observe,
                        compile_scope="forward_backward" if compiled else None,
                        traces=(lambda: model.traces) if compiled else (lambda: None))

    # ------------------------------------------------------------------------------------------ numerics
    def array_api(self) -> ArrayAPI:
        mnp = self._api("mxnet.np")  # MXNet's NumPy-compatible interface
        self.mx.npx.set_np()  # mx.np arrays need NumPy semantics switched on (process-wide, in this worker only)
        return ArrayAPI("mxnet.np", mnp, mnp.array, lambda t: t.asnumpy(), getattr(self.mx.nd, "from_dlpack", None))

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
                helpers.append(subprocess.Popen([sys.executable, "-c", PS_HELPER], env={**os.environ, **ps, "DMLC_ROLE": role}))
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
                     "arrival, not by the caller's rank)"]
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

    # ------------------------------------------------------------------------------------------ onnx
    def _onnx_block(self, model: Any) -> Any:
        nn = self.gluon.nn
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
        expected = self.N(net(self.A(x)))
        with tempfile.TemporaryDirectory() as tmp:
            prefix = os.path.join(tmp, model.id)
            net.export(prefix)  # symbol JSON + parameters, the exporter's input
            export_model(f"{prefix}-symbol.json", f"{prefix}-0000.params", [x.shape], [np.float32], path, **chosen)
        notes = [f"export_model has no opset argument: it stamps opset {written} (the installed onnx's newest)"]
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
        listed = {i.name for i in proto.graph.input}
        missing = [init for init in proto.graph.initializer if init.name not in listed]
        for init in missing:  # MXNet's importer looks every initializer up among the graph inputs
            proto.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
        rewritten = f"{path}.mxnet-inputs.onnx"
        onnx.save(proto, rewritten)
        sym, arg_params, aux_params = import_model(rewritten)
        data_names = [n for n in sym.list_inputs() if n not in arg_params and n not in aux_params]
        block = self.gluon.SymbolBlock(sym, [self.mx.sym.var(n) for n in data_names])
        block.collect_params().load_dict({**arg_params, **aux_params}, ctx=self.ctx)

        def run(x: Array) -> Array:
            return self.N(block(self.A(x)))

        notes = [f"rewritten before import: {len(missing)} initializers also listed as graph inputs "
                 "(mxnet.contrib.onnx.import_model raises KeyError on initializers that are not inputs)",
                 "run through gluon.SymbolBlock with the imported parameters"] if missing else ["run through gluon.SymbolBlock"]
        return ImportResult("mxnet.contrib.onnx.import_model", self.mx.__version__, run, notes)
