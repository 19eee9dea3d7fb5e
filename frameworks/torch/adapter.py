"""PyTorch adapter: torch.nn, torch.nn.functional, torch.optim (gradients of every catalog parameter by autograd,
mapped back to the catalog's layouts); torch.compile (of the whole training step for throughput) and TorchScript
tracing; torch.onnx.export with its default exporter, and the onnx2torch importer."""

from __future__ import annotations

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
    OpImpl,
    Unsupported,
    Workload,
    distribution_versions,
    reorder_gates,
    require_parameter,
    resolve,
)
from harness.catalog.ops import Case

Array = np.ndarray
CANONICAL_LSTM = "ifgo"  # the catalog's gate order
TORCH_LSTM = "ifgo"  # torch.nn.LSTM's gate order (documented on nn.LSTM: W_ii|W_if|W_ig|W_io)
TORCH_GRU = "rzn"  # torch.nn.GRU's gate order (W_ir|W_iz|W_in), reset gate applied after the matmul

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

    def _train_model(self, spec_id: str, a: dict[str, Array]) -> tuple[Any, dict[str, GradBack]]:
        """The workload's model loaded with the catalog's initial parameters, and for every catalog parameter how to
        read it back from the module's parameters (by torch name) in the catalog's layout."""
        nn = self.nn
        if spec_id == "mlp_train":
            d, h = a["w1"].shape
            c = a["w3"].shape[1]
            m = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, c))
            self._load(m, **{"0.weight": a["w1"].T, "0.bias": a["b1"], "2.weight": a["w2"].T, "2.bias": a["b2"],
                             "4.weight": a["w3"].T, "4.bias": a["b3"]})
            return m, {"w1": _transposed("0.weight"), "b1": _same("0.bias"), "w2": _transposed("2.weight"),
                       "b2": _same("2.bias"), "w3": _transposed("4.weight"), "b3": _same("4.bias")}
        if spec_id == "cnn_train":
            c1, c2 = a["conv1_w"].shape[0], a["conv2_w"].shape[0]
            m = nn.Sequential(nn.Conv2d(3, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(c1, c2, 3, padding=1),
                              nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(a["fc_w"].shape[0], a["fc_w"].shape[1]))
            self._load(m, **{"0.weight": a["conv1_w"], "0.bias": a["conv1_b"], "3.weight": a["conv2_w"], "3.bias": a["conv2_b"],
                             "7.weight": a["fc_w"].T, "7.bias": a["fc_b"]})
            return m, {"conv1_w": _same("0.weight"), "conv1_b": _same("0.bias"), "conv2_w": _same("3.weight"),
                       "conv2_b": _same("3.bias"), "fc_w": _transposed("7.weight"), "fc_b": _same("7.bias")}
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
            return m, {"wx": _gates_back("lstm.weight_ih_l0", TORCH_LSTM, CANONICAL_LSTM, transposed=True),
                       "wh": _gates_back("lstm.weight_hh_l0", TORCH_LSTM, CANONICAL_LSTM, transposed=True),
                       "fc_w": _transposed("fc.weight"), "fc_b": _same("fc.bias")}
        raise KeyError(spec_id)

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

    def workload(self, spec: Any, arrays: dict[str, Array], mode: str) -> Workload:
        t = self.torch
        compiled = mode == "compiled"
        path = "torch.compile (inductor)" if compiled else None
        if compiled:
            self._api("torch.compile")
        if spec.kind == "op":
            if spec.id == "gemm":
                args: tuple[Any, ...] = (self.T(arrays["a"]), self.T(arrays["b"]))

                def op(p: Any, q: Any) -> Any:
                    return t.matmul(p, q)
            elif spec.id == "conv2d":
                args = (self.T(arrays["x"]), self.T(arrays["w"]))

                def op(p: Any, q: Any) -> Any:
                    return self.F.conv2d(p, q, padding=1)
            else:
                raise KeyError(spec.id)
            f = t.compile(op) if compiled else op
            before = self._graph_count()

            def op_step() -> Any:
                with t.no_grad():
                    return f(*args)

            return Workload(op_step, self._sync, 0, path, observe=lambda y: {"y": self.N(y)},
                            compile_scope="op" if compiled else None,
                            traces=self._traces_since(before) if compiled else (lambda: None))

        model, back = self._train_model(spec.id, arrays)
        model.train()
        opt = t.optim.SGD(model.parameters(), lr=0.01)
        x, labels = self.T(arrays["x"]), self.T(arrays["labels"])
        count = int(sum(p.numel() for p in model.parameters() if p.requires_grad))

        def train_step() -> Any:
            opt.zero_grad(set_to_none=True)
            loss = self.F.cross_entropy(model(x), labels)
            loss.backward()
            opt.step()
            return loss

        def observe(loss: Any) -> dict[str, Any]:
            params = {n: self.N(p) for n, p in model.named_parameters()}
            return {"loss": float(loss.detach()), **{name: read(params) for name, read in back.items()}}

        if not compiled:
            return Workload(train_step, self._sync, count, None, observe=observe)

        self._forward_capture(model, x)
        step = t.compile(train_step)
        before, breaks_before = self._graph_count(), self._graph_breaks()
        notes = ["torch.compile of the whole training step (zero_grad, forward, cross-entropy, backward, SGD step): "
                 "dynamo captures the forward and loss (AOTAutograd compiles their backward with them) and the SGD "
                 "update; zero_grad and the loss.backward() call itself are graph breaks that run eagerly (the "
                 "backward they start is the compiled one)"]
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

        return Workload(compiled_step, self._sync, count, path, notes, observe=observe, compile_scope="step",
                        traces=self._traces_since(before))

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

        return ImportResult("onnx2torch", distribution_versions("onnx2torch")["onnx2torch"], run, notes)
