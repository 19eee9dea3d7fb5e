"""PyTorch adapter: torch.nn, torch.nn.functional, torch.optim; torch.compile and TorchScript tracing; the
built-in torch.onnx exporter and the separate onnx2torch importer."""

from __future__ import annotations

import sys
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
    Workload,
    distribution_versions,
    reorder_gates,
    resolve,
)
from harness.catalog.ops import Case

Array = np.ndarray
CANONICAL_LSTM = "ifgo"  # the catalog's gate order
TORCH_LSTM = "ifgo"  # torch.nn.LSTM's gate order (documented on nn.LSTM: W_ii|W_if|W_ig|W_io)
TORCH_GRU = "rzn"  # torch.nn.GRU's gate order (W_ir|W_iz|W_in), reset gate applied after the matmul



class TorchAdapter(Adapter):
    name = "torch"
    distribution = "torch"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        import torch

        self.torch = torch
        self.nn = torch.nn
        self.F = torch.nn.functional
        self.dev = torch.device(device)
        torch.manual_seed(0)

    # ------------------------------------------------------------------------------------------ identity
    def versions(self) -> dict[str, str]:
        return distribution_versions("torch", "numpy", "onnx", "onnxruntime", "onnxscript", "onnx2torch")

    def device_available(self) -> tuple[bool, str]:
        if self.device == "cpu":
            return True, ""
        if not self.torch.cuda.is_available():
            return False, f"torch {self.torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)"
        return True, ""

    def device_info(self) -> dict[str, Any]:
        t = self.torch
        info: dict[str, Any] = {"torch_cuda": t.version.cuda, "threads": t.get_num_threads()}
        if self.device != "cpu" and t.cuda.is_available():
            props = t.cuda.get_device_properties(self.dev)
            info.update(name=props.name, capability=f"{props.major}.{props.minor}", memory_bytes=props.total_memory,
                        cudnn=t.backends.cudnn.version())
        return info

    # ------------------------------------------------------------------------------------------ helpers
    def T(self, a: Array, grad: bool = False) -> Any:
        t = self.torch.from_numpy(np.ascontiguousarray(a)).to(self.dev)
        if grad:
            t.requires_grad_(True)
        return t

    @staticmethod
    def N(t: Any) -> Array:
        return np.asarray(t.detach().cpu().numpy())

    def _load(self, module: Any, **params: Array) -> Any:
        """Copy catalog arrays into a module's parameters/buffers (already in torch's layout)."""
        with self.torch.no_grad():
            for name, value in params.items():
                target = module
                *path, leaf = name.split(".")
                for part in path:
                    target = getattr(target, part)
                getattr(target, leaf).copy_(self.T(np.asarray(value, np.float32)))
        return module.to(self.dev)

    def _result(self, case: Case, wrt: Any, outputs: dict[str, Any]) -> dict[str, Array]:
        """Outputs as NumPy, plus the gradient of sum(output * cotangent) w.r.t. `wrt` when the case asks."""
        out = {k: self.N(v) for k, v in outputs.items()}
        if case.grad_wrt is not None:
            names = list(case.cotangents)
            (g,) = self.torch.autograd.grad([outputs[k] for k in names], [wrt], [self.T(case.cotangents[k]) for k in names])
            out["grad"] = self.N(g)
        return out

    def _module_op(self, api: str, build: Callable[[Case], Any], forward: Callable[[Any, Any, Case], dict[str, Any]],
                   kind: str = "native", variant: str | None = None, note: str = "") -> OpImpl:
        """An op that is one module applied to the case's grad_wrt input (APIs are resolved by the caller)."""

        def run(case: Case) -> dict[str, Array]:
            module = build(case)
            x = self.T(case.arrays[case.grad_wrt or "x"], grad=True)
            return self._result(case, x, forward(module, x, case))

        return OpImpl(kind, api, run, variant, note)

    def _api(self, dotted: str) -> Any:
        """Resolve 'torch.nn.Conv3d' at run time; a missing name raises Unsupported naming it."""
        return resolve(self.torch, dotted)

    # ------------------------------------------------------------------------------------------ layers
    def op_dense(self) -> OpImpl:
        Linear = self._api("torch.nn.Linear")
        return self._module_op(
            "torch.nn.Linear",
            lambda c: self._load(Linear(*c.arrays["w"].shape), weight=c.arrays["w"].T, bias=c.arrays["b"]),
            lambda m, x, c: {"y": m(x)},
        )

    def _conv(self, api: str) -> OpImpl:
        Conv = self._api(api)

        def build(c: Case) -> Any:
            w = c.arrays["w"]
            m = Conv(w.shape[1], w.shape[0], w.shape[2:], stride=c.config["stride"], padding=c.config["padding"],
                     dilation=c.config["dilation"])
            return self._load(m, weight=w, bias=c.arrays["b"])

        return self._module_op(api, build, lambda m, x, c: {"y": m(x)})

    def op_conv1d(self) -> OpImpl:
        return self._conv("torch.nn.Conv1d")

    def op_conv2d(self) -> OpImpl:
        return self._conv("torch.nn.Conv2d")

    def op_conv3d(self) -> OpImpl:
        return self._conv("torch.nn.Conv3d")

    def op_conv_transpose2d(self) -> OpImpl:
        ConvT = self._api("torch.nn.ConvTranspose2d")

        def build(c: Case) -> Any:
            w = c.arrays["w"]  # (C_in, C_out, kH, kW): torch's own layout
            m = ConvT(w.shape[0], w.shape[1], w.shape[2:], stride=c.config["stride"], padding=c.config["padding"])
            return self._load(m, weight=w, bias=c.arrays["b"])

        return self._module_op("torch.nn.ConvTranspose2d", build, lambda m, x, c: {"y": m(x)})

    def op_separable_conv2d(self) -> OpImpl:
        Conv = self._api("torch.nn.Conv2d")

        def build(c: Case) -> Any:
            dw, pw = c.arrays["w_depthwise"], c.arrays["w_pointwise"]
            ch = dw.shape[0]
            depth = self._load(Conv(ch, ch, dw.shape[2:], padding=c.config["padding"], groups=ch, bias=False), weight=dw)
            point = self._load(Conv(ch, pw.shape[0], 1), weight=pw, bias=c.arrays["b"])
            return self.nn.Sequential(depth, point)

        return self._module_op("torch.nn.Conv2d(groups=C) + torch.nn.Conv2d(1x1)", build, lambda m, x, c: {"y": m(x)},
                               kind="composed", note="torch has no separable-convolution layer: depthwise (grouped) conv then 1x1 conv")

    def op_max_pool2d(self) -> OpImpl:
        Pool = self._api("torch.nn.MaxPool2d")
        return self._module_op("torch.nn.MaxPool2d", lambda c: Pool(c.config["kernel"], c.config["stride"]),
                               lambda m, x, c: {"y": m(x)})

    def op_avg_pool2d(self) -> OpImpl:
        Pool = self._api("torch.nn.AvgPool2d")
        return self._module_op(
            "torch.nn.AvgPool2d", lambda c: Pool(c.config["kernel"], c.config["stride"], c.config["padding"]),
            lambda m, x, c: {"y": m(x)}, note="default count_include_pad=True",
        )

    def op_global_avg_pool2d(self) -> OpImpl:
        Pool = self._api("torch.nn.AdaptiveAvgPool2d")
        return self._module_op("torch.nn.AdaptiveAvgPool2d(1)", lambda c: Pool(1), lambda m, x, c: {"y": m(x).flatten(1)})

    def op_upsample_nearest2d(self) -> OpImpl:
        Up = self._api("torch.nn.Upsample")
        return self._module_op("torch.nn.Upsample(mode='nearest')", lambda c: Up(scale_factor=c.config["scale"], mode="nearest"),
                               lambda m, x, c: {"y": m(x)})

    def op_batch_norm(self) -> OpImpl:
        BN = self._api("torch.nn.BatchNorm2d")

        def build(c: Case) -> Any:
            a = c.arrays
            return self._load(BN(a["gamma"].shape[0], eps=c.config["eps"]), weight=a["gamma"], bias=a["beta"],
                              running_mean=a["running_mean"], running_var=a["running_var"])

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
            lambda c: self._load(LN(c.arrays["gamma"].shape[0], eps=c.config["eps"]), weight=c.arrays["gamma"], bias=c.arrays["beta"]),
            lambda m, x, c: {"y": m(x)},
        )

    def op_group_norm(self) -> OpImpl:
        GN = self._api("torch.nn.GroupNorm")
        return self._module_op(
            "torch.nn.GroupNorm",
            lambda c: self._load(GN(c.config["groups"], c.arrays["gamma"].shape[0], eps=c.config["eps"]),
                                 weight=c.arrays["gamma"], bias=c.arrays["beta"]),
            lambda m, x, c: {"y": m(x)},
        )

    def op_local_response_norm(self) -> OpImpl:
        LRN = self._api("torch.nn.LocalResponseNorm")
        return self._module_op(
            "torch.nn.LocalResponseNorm",
            lambda c: LRN(c.config["size"], alpha=c.config["alpha"], beta=c.config["beta"], k=c.config["k"]),
            lambda m, x, c: {"y": m(x)}, note="alpha divided by size, as the catalog states",
        )

    def op_dropout(self) -> OpImpl:
        Drop = self._api("torch.nn.Dropout")

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            m.eval()
            y_eval = m(x)
            m.train()
            return {"y_train": m(x), "y_eval": y_eval}

        return self._module_op("torch.nn.Dropout", lambda c: Drop(c.config["p"]), forward)

    def op_embedding(self) -> OpImpl:
        Emb = self._api("torch.nn.Embedding")

        def run(c: Case) -> dict[str, Array]:
            w = c.arrays["weight"]
            m = self._load(Emb(*w.shape), weight=w)
            return self._result(c, m.weight, {"y": m(self.T(c.arrays["indices"]))})

        return OpImpl("native", "torch.nn.Embedding", run)

    def op_simple_rnn(self) -> OpImpl:
        RNN = self._api("torch.nn.RNN")

        def build(c: Case) -> Any:
            a = c.arrays
            m = RNN(a["wx"].shape[0], c.config["hidden"], batch_first=True, nonlinearity="tanh")
            return self._load(m, weight_ih_l0=a["wx"].T, weight_hh_l0=a["wh"].T, bias_ih_l0=a["b"],
                              bias_hh_l0=np.zeros_like(a["b"]))

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            y, h = m(x)
            return {"y": y, "h": h[0]}

        return self._module_op("torch.nn.RNN", build, forward, note="torch keeps two biases; the second is set to 0")

    def op_lstm(self) -> OpImpl:
        LSTM = self._api("torch.nn.LSTM")

        def build(c: Case) -> Any:
            a, order = c.arrays, c.config["gate_order"]
            m = LSTM(a["wx"].shape[0], c.config["hidden"], batch_first=True)
            return self._load(m, weight_ih_l0=reorder_gates(a["wx"], order, TORCH_LSTM).T,
                              weight_hh_l0=reorder_gates(a["wh"], order, TORCH_LSTM).T,
                              bias_ih_l0=reorder_gates(a["b"], order, TORCH_LSTM), bias_hh_l0=np.zeros_like(a["b"]))

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            y, (h, cell) = m(x)
            return {"y": y, "h": h[0], "c": cell[0]}

        return self._module_op("torch.nn.LSTM", build, forward, note=f"gate order {TORCH_LSTM}; second bias set to 0")

    def op_gru(self) -> OpImpl:
        GRU = self._api("torch.nn.GRU")

        def build(c: Case) -> Any:
            a, order = c.arrays, c.config["gate_order"]
            m = GRU(a["wx"].shape[0], c.config["hidden"], batch_first=True)
            return self._load(m, weight_ih_l0=reorder_gates(a["wx"], order, TORCH_GRU).T,
                              weight_hh_l0=reorder_gates(a["wh"], order, TORCH_GRU).T,
                              bias_ih_l0=reorder_gates(a["bx"], order, TORCH_GRU), bias_hh_l0=reorder_gates(a["bh"], order, TORCH_GRU))

        def forward(m: Any, x: Any, c: Case) -> dict[str, Any]:
            y, h = m(x)
            return {"y": y, "h": h[0]}

        return self._module_op("torch.nn.GRU", build, forward, note=f"gate order {TORCH_GRU}")

    def op_bidirectional_rnn(self) -> OpImpl:
        RNN = self._api("torch.nn.RNN")

        def build(c: Case) -> Any:
            a = c.arrays
            m = RNN(a["x"].shape[2], c.config["hidden"], batch_first=True, bidirectional=True)
            zeros = np.zeros_like(a["b_fw"])
            return self._load(m, weight_ih_l0=a["wx_fw"].T, weight_hh_l0=a["wh_fw"].T, bias_ih_l0=a["b_fw"], bias_hh_l0=zeros,
                              weight_ih_l0_reverse=a["wx_bw"].T, weight_hh_l0_reverse=a["wh_bw"].T,
                              bias_ih_l0_reverse=a["b_bw"], bias_hh_l0_reverse=zeros)

        return self._module_op("torch.nn.RNN(bidirectional=True)", build, lambda m, x, c: {"y": m(x)[0]},
                               note="a flag on the recurrent layers rather than a wrapper; output [forward, backward]")

    def op_multi_head_attention(self) -> OpImpl:
        MHA = self._api("torch.nn.MultiheadAttention")

        def run(c: Case) -> dict[str, Array]:
            a = c.arrays
            e = c.config["embed_dim"]
            m = MHA(e, c.config["heads"], batch_first=True)
            self._load(m, in_proj_weight=np.concatenate([a["wq"].T, a["wk"].T, a["wv"].T]),
                       in_proj_bias=np.concatenate([a["bq"], a["bk"], a["bv"]]),
                       **{"out_proj.weight": a["wo"].T, "out_proj.bias": a["bo"]})
            q = self.T(a["q"], grad=True)
            y, _ = m(q, self.T(a["k"]), self.T(a["v"]), need_weights=False)
            return self._result(c, q, {"y": y})

        return OpImpl("native", "torch.nn.MultiheadAttention", run)

    def op_prelu(self) -> OpImpl:
        PReLU = self._api("torch.nn.PReLU")
        return self._module_op("torch.nn.PReLU", lambda c: self._load(PReLU(c.arrays["alpha"].shape[0]), weight=c.arrays["alpha"]),
                               lambda m, x, c: {"y": m(x)})

    def op_hierarchical_softmax(self) -> OpImpl:
        Adaptive = self._api("torch.nn.AdaptiveLogSoftmaxWithLoss")

        def build(c: Case) -> Any:
            a = c.arrays
            m = Adaptive(a["x"].shape[1], c.config["vocab"], cutoffs=c.config["cutoffs"], div_value=c.config["div_value"], head_bias=True)
            return self._load(m, **{"head.weight": a["w_head"].T, "head.bias": a["b_head"],
                                    "tail.0.0.weight": a["w_proj"].T, "tail.0.1.weight": a["w_tail"].T})

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

        return self._module_op("torch.nn.functional.ctc_loss", lambda c: None, forward, note="log-softmax applied first, as the API expects")

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
        return self._optimizer("torch.optim.Adagrad", lambda opt_cls, h: opt_cls(h["params"], lr=h["lr"], eps=h["eps"], initial_accumulator_value=0.0))

    def op_adadelta(self) -> OpImpl:
        return self._optimizer("torch.optim.Adadelta", lambda opt_cls, h: opt_cls(h["params"], lr=h["lr"], rho=h["rho"], eps=h["eps"]))

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
        return types.SimpleNamespace(sum=t.sum, tanh=t.tanh, matmul=t.matmul)

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

    def _train_model(self, spec_id: str, a: dict[str, Array]) -> tuple[Any, Callable[[Any, Any], Any]]:
        nn = self.nn
        if spec_id == "mlp_train":
            d, h = a["w1"].shape
            c = a["w3"].shape[1]
            m = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, c))
            self._load(m, **{"0.weight": a["w1"].T, "0.bias": a["b1"], "2.weight": a["w2"].T, "2.bias": a["b2"],
                             "4.weight": a["w3"].T, "4.bias": a["b3"]})
            return m, lambda model, x: model(x)
        if spec_id == "cnn_train":
            c1, c2 = a["conv1_w"].shape[0], a["conv2_w"].shape[0]
            m = nn.Sequential(nn.Conv2d(3, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(c1, c2, 3, padding=1),
                              nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(a["fc_w"].shape[0], a["fc_w"].shape[1]))
            self._load(m, **{"0.weight": a["conv1_w"], "0.bias": a["conv1_b"], "3.weight": a["conv2_w"], "3.bias": a["conv2_b"],
                             "7.weight": a["fc_w"].T, "7.bias": a["fc_b"]})
            return m, lambda model, x: model(x)
        if spec_id == "lstm_train":
            d, h = a["wx"].shape[0], a["wh"].shape[0]

            class LSTMClassifier(nn.Module):
                def __init__(self) -> None:
                    super().__init__()
                    self.lstm = nn.LSTM(d, h, batch_first=True, bias=False)
                    self.fc = nn.Linear(h, a["fc_w"].shape[1])

                def forward(self, x: Any) -> Any:
                    _, (hn, _) = self.lstm(x)
                    return self.fc(hn[-1])

            m = LSTMClassifier()
            self._load(m, **{"lstm.weight_ih_l0": reorder_gates(a["wx"], CANONICAL_LSTM, TORCH_LSTM).T,
                             "lstm.weight_hh_l0": reorder_gates(a["wh"], CANONICAL_LSTM, TORCH_LSTM).T,
                             "fc.weight": a["fc_w"].T, "fc.bias": a["fc_b"]})
            return m, lambda model, x: model(x)
        raise KeyError(spec_id)

    def workload(self, spec: Any, arrays: dict[str, Array], mode: str) -> Workload:
        t = self.torch
        path = "torch.compile (inductor)" if mode == "compiled" else None
        wrap: Callable[[Any], Any] = t.compile if mode == "compiled" else (lambda f: f)
        if spec.kind == "op":
            if spec.id == "gemm":
                a, b = self.T(arrays["a"]), self.T(arrays["b"])
                f = wrap(lambda p, q: t.matmul(p, q))
                args: tuple[Any, ...] = (a, b)
            elif spec.id == "conv2d":
                x, w = self.T(arrays["x"]), self.T(arrays["w"])
                f = wrap(lambda p, q: self.F.conv2d(p, q, padding=1))
                args = (x, w)
            else:
                raise KeyError(spec.id)

            def op_step() -> Any:
                with t.no_grad():
                    return f(*args)

            return Workload(op_step, self._sync, 0, path)
        model, forward = self._train_model(spec.id, arrays)
        model.train()
        runnable = wrap(model)
        opt = t.optim.SGD(model.parameters(), lr=0.01)
        x, labels = self.T(arrays["x"]), self.T(arrays["labels"])

        def train_step() -> None:
            opt.zero_grad(set_to_none=True)
            loss = self.F.cross_entropy(forward(runnable, x), labels)
            loss.backward()
            opt.step()

        count = sum(p.numel() for p in model.parameters() if p.requires_grad)
        notes = ["the model is compiled; the SGD step runs eagerly"] if mode == "compiled" else []
        if mode != "compiled":
            return Workload(train_step, self._sync, int(count), path, notes)
        before = self._graph_count()
        first = [True]

        def checked_step() -> None:
            train_step()
            if first[0]:
                first[0] = False
                after = self._graph_count()
                if before is not None and after == before:
                    notes.append("torch.compile captured no graph for this model: it ran eagerly")

        return Workload(checked_step, self._sync, int(count), path, notes)

    # ------------------------------------------------------------------------------------------ numerics
    def array_api(self) -> ArrayAPI:
        return ArrayAPI("torch", self.torch, self.T, self.N, self.torch.from_dlpack)

    # ------------------------------------------------------------------------------------------ scale
    def allreduce(self, rank: int, world: int, host: str, port: int, value: Array) -> AllReduceResult:
        dist = self._api("torch.distributed")
        backend = "nccl" if self.device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, init_method=f"tcp://{host}:{port}", rank=rank, world_size=world)
        try:
            t = self.T(value.copy())
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            return AllReduceResult(f"torch.distributed.all_reduce ({backend})", True, self.N(t))
        finally:
            dist.destroy_process_group()

    # ------------------------------------------------------------------------------------------ onnx
    def _onnx_model(self, model: Any) -> Any:
        nn = self.nn
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
        return ExportResult("torch.onnx.export (dynamo=True)", t.__version__, True, opset or 0, expected)

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

        return ImportResult("onnx2torch", distribution_versions("onnx2torch")["onnx2torch"], False, run, notes)
