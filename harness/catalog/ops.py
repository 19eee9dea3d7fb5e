"""The 32 catalog layers and optimizers (shared/reference/ops32.md) as framework-neutral data.

Each op states its canonical layout and parameters, makes a small deterministic case (inputs and parameters as
float32 arrays, hyperparameters as plain values), and names the NumPy reference that judges a framework's output.
Adapters receive the case, copy the parameters into the framework's own layer or optimizer (mapping layouts and
gate orders explicitly), run forward and backward, and return NumPy arrays; the layers probe compares.

Where frameworks legitimately differ in a convention the op does not fix (pooling divisor at the border, GRU reset
gate, epsilon placement), the op lists every accepted convention as its own reference; the first is the default,
and the record says which one matched. A close variant of an op (adaptive softmax for hierarchical softmax) has
its own case and reference and is scored as a variant, never as the op itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.catalog import reference_nn as nn
from harness.catalog import reference_optim as opt

CATALOG_VERSION = "ops32-v2"  # v2: every trainable parameter's gradient, extra cases (padding, optimizer conventions)

Array = np.ndarray
Outputs = dict[str, Array]


@dataclass(frozen=True)
class Case:
    """One concrete problem for an op: arrays (inputs and parameters), hyperparameters, and what to differentiate.

    The gradients checked are d/d arrays[name] of sum_k sum(outputs[k] * cotangents[k]) for every name in `wrt`:
    the input `grad_wrt` first, then every trainable parameter in `params` (weights, biases, scales, slopes).
    """

    arrays: dict[str, Array]
    config: dict[str, Any]
    grad_wrt: str | None = None
    cotangents: dict[str, Array] = field(default_factory=dict)
    params: tuple[str, ...] = ()
    label: str = "default"

    @property
    def wrt(self) -> tuple[str, ...]:
        """Every array whose gradient the adapter returns (under outputs['grads'][name]), input first."""
        if self.grad_wrt is None:
            return ()
        return (self.grad_wrt, *(p for p in self.params if p != self.grad_wrt))


@dataclass(frozen=True)
class CaseTemplate:
    arrays: dict[str, Array]
    config: dict[str, Any]
    grad_wrt: str | None = None
    params: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExtraCase:
    """A further case of an op, judged like the default one: the op passes only if every case does (under one
    convention). Extra cases exercise what the default leaves open: padding, a convention that two settings tell
    apart (an Adagrad accumulator that differs from epsilon, an Adadelta learning rate other than 1)."""

    label: str
    description: str
    make_case: Callable[[np.random.Generator], CaseTemplate]


Reference = Callable[[Case], Outputs]
Check = Callable[[Case, Outputs], tuple[bool, dict[str, Any]]]


@dataclass(frozen=True)
class VariantSpec:
    """A close variant of an op, with its own case and reference (recorded as 'variant', worth half a point)."""

    id: str
    name: str
    description: str
    make_case: Callable[[np.random.Generator], CaseTemplate]
    reference: Reference
    grad_of: tuple[str, ...] = ("y",)


@dataclass(frozen=True)
class OpSpec:
    number: int
    id: str
    name: str
    kind: str  # layer | loss | optimizer
    description: str
    make_case: Callable[[np.random.Generator], CaseTemplate]
    references: Mapping[str, Reference]  # convention name -> reference; the first is the default
    grad_of: tuple[str, ...] = ("y",)
    rtol: float = 1e-4
    atol: float = 1e-4
    check: Check | None = None  # replaces reference comparison (e.g. dropout, which is random)
    outputs: tuple[str, ...] = ("y",)  # what the adapter must return besides the gradients
    variants: Mapping[str, VariantSpec] = field(default_factory=dict)
    extra_cases: tuple[ExtraCase, ...] = ()

    def case_labels(self, variant: str | None = None) -> list[str]:
        """The cases an implementation must pass, the default first (a variant has its default case only)."""
        return ["default"] if variant is not None else ["default", *(c.label for c in self.extra_cases)]

    def case(self, variant: str | None = None, label: str = "default") -> Case:
        """A deterministic case for this op (or one of its variants): the same arrays in every framework."""
        if label == "default":
            seed = 1000 + self.number + (0 if variant is None else 500)
            make = self.make_case if variant is None else self.variants[variant].make_case
        else:
            if variant is not None:
                raise KeyError(f"variant {variant!r} of {self.id} has only its default case")
            index, extra = next(((i, c) for i, c in enumerate(self.extra_cases) if c.label == label), (-1, None))
            if extra is None:
                raise KeyError(f"{self.id} has no case {label!r}; cases: {', '.join(self.case_labels())}")
            seed, make = 1700 + 32 * index + self.number, extra.make_case
        rng = np.random.default_rng(seed)
        template = make(rng)
        if variant is None:
            grad_of = self.grad_of
            ref: Reference | None = next(iter(self.references.values()), None)
        else:
            spec = self.variants[variant]
            grad_of, ref = spec.grad_of, spec.reference
        bare = Case(dict(template.arrays), dict(template.config), template.grad_wrt, {}, template.params, label)
        cot: dict[str, Array] = {}
        if template.grad_wrt is not None:
            shapes = {k: v.shape for k, v in ref(bare).items()} if ref else _declared_shapes(template)
            for name in grad_of:
                cot[name] = rng.standard_normal(shapes[name]).astype(np.float32)
        return Case(bare.arrays, bare.config, template.grad_wrt, cot, template.params, label)

    def reference_for(self, variant: str | None) -> Mapping[str, Reference]:
        if variant is None:
            return self.references
        return {variant: self.variants[variant].reference}

    def grad_outputs(self, variant: str | None) -> tuple[str, ...]:
        return self.grad_of if variant is None else self.variants[variant].grad_of


def _declared_shapes(template: CaseTemplate) -> dict[str, tuple[int, ...]]:
    return dict(template.config.get("output_shapes", {}))


def _n(rng: np.random.Generator, *shape: int, scale: float = 0.5) -> Array:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _u(rng: np.random.Generator, *shape: int, low: float = 0.5, high: float = 1.5) -> Array:
    return rng.uniform(low, high, shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------- layers
def _dense_case(rng: np.random.Generator) -> CaseTemplate:
    return CaseTemplate({"x": _n(rng, 4, 5, scale=1.0), "w": _n(rng, 5, 3), "b": _n(rng, 3)}, {}, "x", ("w", "b"))


def _conv1d_case(rng: np.random.Generator) -> CaseTemplate:
    cfg = {"stride": 1, "padding": 2, "dilation": 2}
    return CaseTemplate({"x": _n(rng, 2, 3, 10, scale=1.0), "w": _n(rng, 4, 3, 3), "b": _n(rng, 4)}, cfg, "x", ("w", "b"))


def _conv2d_case(rng: np.random.Generator) -> CaseTemplate:
    cfg = {"stride": 2, "padding": 0, "dilation": 1}
    return CaseTemplate({"x": _n(rng, 2, 3, 7, 7, scale=1.0), "w": _n(rng, 4, 3, 3, 3), "b": _n(rng, 4)}, cfg, "x", ("w", "b"))


def _conv2d_padded_case(rng: np.random.Generator) -> CaseTemplate:
    """Zero padding 1 with stride 2 on a 7x7 input: the padded border enters every edge output (and 'same' padding
    of frameworks that only offer valid/same pads this input symmetrically, so it is expressible there too)."""
    cfg = {"stride": 2, "padding": 1, "dilation": 1}
    return CaseTemplate({"x": _n(rng, 2, 3, 7, 7, scale=1.0), "w": _n(rng, 4, 3, 3, 3), "b": _n(rng, 4)}, cfg, "x", ("w", "b"))


def _conv3d_case(rng: np.random.Generator) -> CaseTemplate:
    cfg = {"stride": 1, "padding": 1, "dilation": 1}
    return CaseTemplate(
        {"x": _n(rng, 1, 2, 4, 5, 5, scale=1.0), "w": _n(rng, 3, 2, 3, 3, 3), "b": _n(rng, 3)}, cfg, "x", ("w", "b")
    )


def _convnd_ref(case: Case) -> Outputs:
    a, c = case.arrays, case.config
    nd = a["x"].ndim - 2
    y = nn.conv_nd(a["x"], a["w"], a["b"], [c["stride"]] * nd, [c["padding"]] * nd, [c["dilation"]] * nd)
    return {"y": y}


def _convt_case(rng: np.random.Generator) -> CaseTemplate:
    cfg = {"stride": 2, "padding": 0}
    return CaseTemplate({"x": _n(rng, 2, 3, 4, 4, scale=1.0), "w": _n(rng, 3, 2, 3, 3), "b": _n(rng, 2)}, cfg, "x", ("w", "b"))


def _sepconv_case(rng: np.random.Generator) -> CaseTemplate:
    arrays = {"x": _n(rng, 2, 3, 6, 6, scale=1.0), "w_depthwise": _n(rng, 3, 1, 3, 3), "w_pointwise": _n(rng, 4, 3, 1, 1), "b": _n(rng, 4)}
    return CaseTemplate(arrays, {"stride": 1, "padding": 1}, "x", ("w_depthwise", "w_pointwise", "b"))


def _sepconv_ref(case: Case) -> Outputs:
    a, c = case.arrays, case.config
    dw = nn.conv_nd(a["x"], a["w_depthwise"], None, [c["stride"]] * 2, [c["padding"]] * 2, [1, 1], groups=a["x"].shape[1])
    return {"y": nn.conv_nd(dw, a["w_pointwise"], a["b"], [1, 1], [0, 0], [1, 1])}


def _image_case(rng: np.random.Generator, shape: tuple[int, ...], **config: Any) -> CaseTemplate:
    return CaseTemplate({"x": _n(rng, *shape, scale=1.0)}, dict(config), "x")


def _batchnorm_case(rng: np.random.Generator) -> CaseTemplate:
    arrays = {"x": _n(rng, 4, 3, 5, 5, scale=1.0), "gamma": _u(rng, 3), "beta": _n(rng, 3), "running_mean": _n(rng, 3), "running_var": _u(rng, 3)}
    return CaseTemplate(arrays, {"eps": 1e-5}, "x", ("gamma", "beta"))


def _batchnorm_ref(case: Case) -> Outputs:
    a, eps = case.arrays, case.config["eps"]
    return {
        "y_train": nn.batch_norm_train(a["x"], a["gamma"], a["beta"], eps),
        "y_eval": nn.batch_norm(a["x"], a["gamma"], a["beta"], a["running_mean"], a["running_var"], eps),
    }


def _dropout_check(case: Case, out: Outputs) -> tuple[bool, dict[str, Any]]:
    """Dropout is random, so it is judged by its contract: identity at inference; at training every element is
    either 0 or x / (1 - p), the share of zeros is within 5 standard deviations of p, and the gradient (required:
    dropout has one) is the same mask scaled by 1 / (1 - p)."""
    x = case.arrays["x"].astype(np.float64)
    p = case.config["p"]
    y_eval, y_train = np.asarray(out["y_eval"], np.float64), np.asarray(out["y_train"], np.float64)
    kept = y_train != 0
    scaled_ok = bool(np.allclose(y_train[kept], x[kept] / (1 - p), rtol=1e-5, atol=1e-6))
    share = 1.0 - kept.mean()
    sigma = np.sqrt(p * (1 - p) / x.size)
    share_ok = bool(abs(share - p) <= 5 * sigma)
    eval_ok = bool(np.allclose(y_eval, x, rtol=0, atol=0))
    details: dict[str, Any] = {
        "inference_identity": eval_ok,
        "training_scale_ok": scaled_ok,
        "dropped_share": float(share),
        "expected_share": p,
        "share_within_5_sigma": share_ok,
    }
    ok = eval_ok and scaled_ok and share_ok
    grads = out.get("grads")
    grad = grads.get(case.grad_wrt) if isinstance(grads, Mapping) and case.grad_wrt else None
    if grad is None:  # dropout has a gradient: a missing one fails the op
        details["gradient_matches_mask"] = False
        details["gradient"] = "missing"
        return False, details
    expected = kept / (1 - p) * case.cotangents["y_train"]
    g = np.asarray(grad, np.float64)
    grad_ok = bool(g.shape == expected.shape and np.allclose(g, expected, rtol=1e-5, atol=1e-6))
    details["gradient_matches_mask"] = grad_ok
    return ok and grad_ok, details


def _rnn_case(rng: np.random.Generator, gates: int, hidden: int = 4, two_biases: bool = False) -> CaseTemplate:
    arrays = {"x": _n(rng, 2, 5, 3, scale=1.0), "wx": _n(rng, 3, gates * hidden), "wh": _n(rng, hidden, gates * hidden)}
    if two_biases:
        arrays |= {"bx": _n(rng, gates * hidden), "bh": _n(rng, gates * hidden)}
    else:
        arrays["b"] = _n(rng, gates * hidden)
    return CaseTemplate(arrays, {"hidden": hidden}, "x", tuple(k for k in arrays if k != "x"))


def _lstm_case(rng: np.random.Generator) -> CaseTemplate:
    t = _rnn_case(rng, 4)
    return CaseTemplate(t.arrays, t.config | {"gate_order": "ifgo"}, "x", t.params)


def _gru_case(rng: np.random.Generator) -> CaseTemplate:
    t = _rnn_case(rng, 3, two_biases=True)
    return CaseTemplate(t.arrays, t.config | {"gate_order": "rzn"}, "x", t.params)


def _birnn_case(rng: np.random.Generator) -> CaseTemplate:
    h = 4
    arrays = {"x": _n(rng, 2, 5, 3, scale=1.0)}
    for d in ("fw", "bw"):
        arrays |= {f"wx_{d}": _n(rng, 3, h), f"wh_{d}": _n(rng, h, h), f"b_{d}": _n(rng, h)}
    return CaseTemplate(arrays, {"hidden": h, "merge": "concat"}, "x", tuple(k for k in arrays if k != "x"))


def _birnn_ref(case: Case) -> Outputs:
    a = case.arrays
    yf, _ = nn.simple_rnn(a["x"], a["wx_fw"], a["wh_fw"], a["b_fw"])
    yb, _ = nn.simple_rnn(a["x"], a["wx_bw"], a["wh_bw"], a["b_bw"], reverse=True)
    return {"y": np.concatenate([yf, yb], axis=-1)}


def _mha_case(rng: np.random.Generator) -> CaseTemplate:
    e = 8
    arrays = {"q": _n(rng, 2, 4, e, scale=1.0), "k": _n(rng, 2, 6, e, scale=1.0), "v": _n(rng, 2, 6, e, scale=1.0)}
    for name in ("q", "k", "v", "o"):
        arrays[f"w{name}"] = _n(rng, e, e)
        arrays[f"b{name}"] = _n(rng, e, scale=0.1)
    params = tuple(f"{kind}{name}" for kind in ("w", "b") for name in ("q", "k", "v", "o"))
    return CaseTemplate(arrays, {"heads": 2, "embed_dim": e}, "q", params)


def _mha_ref(case: Case) -> Outputs:
    a = case.arrays
    keys = ("q", "k", "v", "wq", "wk", "wv", "bq", "bk", "bv", "wo", "bo")
    return {"y": nn.multi_head_attention(*(a[k] for k in keys), heads=case.config["heads"])}  # type: ignore[arg-type, misc]


def _hsm_case(rng: np.random.Generator) -> CaseTemplate:
    d, k, s = 5, 2, 4
    arrays = {
        "x": _n(rng, 4, d, scale=1.0), "targets": np.array([0, 3, 5, 7], dtype=np.int64),
        "w_cluster": _n(rng, d, k), "b_cluster": _n(rng, k), "w_word": _n(rng, k, d, s), "b_word": _n(rng, k, s),
    }
    return CaseTemplate(arrays, {"vocab": k * s, "clusters": k, "cluster_size": s}, "x",
                        ("w_cluster", "b_cluster", "w_word", "b_word"))


def _adaptive_case(rng: np.random.Generator) -> CaseTemplate:
    d, cutoff, tail = 5, 4, 4
    arrays = {
        "x": _n(rng, 4, d, scale=1.0), "targets": np.array([0, 3, 5, 7], dtype=np.int64),
        "w_head": _n(rng, d, cutoff + 1), "b_head": _n(rng, cutoff + 1), "w_proj": _n(rng, d, d), "w_tail": _n(rng, d, tail),
    }
    return CaseTemplate(arrays, {"vocab": cutoff + tail, "cutoffs": [cutoff], "div_value": 1.0}, "x",
                        ("w_head", "b_head", "w_proj", "w_tail"))


# A fixed, unbalanced binary tree over 8 classes with 7 internal nodes (0 is the root), so paths have 2 to 4 nodes:
# node 0: code 0 -> node 1, code 1 -> node 2; node 1: 0 -> class 0, 1 -> node 3; node 3: 0 -> class 1, 1 -> class 2;
# node 2: 0 -> node 4, 1 -> node 5; node 4: 0 -> class 3, 1 -> node 6; node 6: 0 -> class 4, 1 -> class 5;
# node 5: 0 -> class 6, 1 -> class 7. Rows are classes, root first, padded with -1.
HSIGMOID_PATH_TABLE = np.array([[0, 1, -1, -1], [0, 1, 3, -1], [0, 1, 3, -1], [0, 2, 4, -1],
                                [0, 2, 4, 6], [0, 2, 4, 6], [0, 2, 5, -1], [0, 2, 5, -1]], dtype=np.int64)
HSIGMOID_PATH_CODE = np.array([[0, 0, -1, -1], [0, 1, 0, -1], [0, 1, 1, -1], [1, 0, 0, -1],
                               [1, 0, 1, 0], [1, 0, 1, 1], [1, 1, 0, -1], [1, 1, 1, -1]], dtype=np.int64)


def _hsigmoid_case(rng: np.random.Generator) -> CaseTemplate:
    d, nodes = 5, HSIGMOID_PATH_TABLE.max() + 1
    arrays = {
        "x": _n(rng, 4, d, scale=1.0), "targets": np.array([0, 3, 5, 7], dtype=np.int64),
        "w_nodes": _n(rng, int(nodes), d), "b_nodes": _n(rng, int(nodes)),
        "path_table": HSIGMOID_PATH_TABLE.copy(), "path_code": HSIGMOID_PATH_CODE.copy(),
    }
    return CaseTemplate(arrays, {"vocab": HSIGMOID_PATH_TABLE.shape[0], "nodes": int(nodes)}, "x", ("w_nodes", "b_nodes"))


def _ctc_case(rng: np.random.Generator) -> CaseTemplate:
    arrays = {
        "logits": _n(rng, 6, 2, 4, scale=1.0),
        "targets": np.array([[1, 2], [3, 0]], dtype=np.int64),
        "input_lengths": np.array([6, 5], dtype=np.int64),
        "target_lengths": np.array([2, 1], dtype=np.int64),
    }
    return CaseTemplate(arrays, {"blank": 0, "layout": "time-major (T, B, C), unnormalised logits"}, "logits")


# ---------------------------------------------------------------------------------------------- optimizers
def _optim_case(**config: Any) -> Callable[[np.random.Generator], CaseTemplate]:
    def make(rng: np.random.Generator) -> CaseTemplate:
        return CaseTemplate({"w": _n(rng, 6, scale=1.0), "grads": _n(rng, 3, 6, scale=1.0)}, dict(config), None)

    return make


def _accepted(fn: Callable[..., Any], config: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters of `config` that `fn` takes as keyword arguments."""
    names = inspect.signature(fn).parameters
    return {k: v for k, v in config.items() if k in names}


def _optim(fn: Callable[..., Array], **fixed: Any) -> Reference:
    def ref(case: Case) -> Outputs:
        hyper = _accepted(fn, case.config)
        return {"w": fn(case.arrays["w"], case.arrays["grads"], **hyper, **fixed)}

    return ref


def _r(fn: Callable[..., Any], *names: str, **fixed: Any) -> Reference:
    """A reference whose output 'y' is fn(arrays[names]..., config..., fixed...)."""

    def ref(case: Case) -> Outputs:
        cfg = _accepted(fn, case.config)
        result = fn(*(case.arrays[n] for n in names), **cfg, **fixed)
        return {"y": result[0] if isinstance(result, tuple) else result}

    return ref


OPTIM_STEPS = 3
_OPT_NOTE = f"{OPTIM_STEPS} steps from the same start with fixed gradients; the parameter after each step is compared"


def _rnn_outputs(fn: Callable[..., tuple[Array, ...]], names: tuple[str, ...], *keys: str, **fixed: Any) -> Reference:
    def ref(case: Case) -> Outputs:
        result = fn(*(case.arrays[k] for k in keys), **fixed)
        return dict(zip(names, result))

    return ref


OPS: tuple[OpSpec, ...] = (
    OpSpec(1, "dense", "Dense / fully connected", "layer", "y = x W + b; x (B, in), W (in, out), b (out)",
           _dense_case, {"default": _r(nn.dense, "x", "w", "b")}),
    OpSpec(2, "conv1d", "Conv1D", "layer", "x (N, C, L), W (O, C, K), stride 1, zero padding 2, dilation 2",
           _conv1d_case, {"default": _convnd_ref}),
    OpSpec(3, "conv2d", "Conv2D", "layer", "x (N, C, H, W), W (O, C, kH, kW), stride 2, no padding; and zero padding 1",
           _conv2d_case, {"default": _convnd_ref},
           extra_cases=(ExtraCase("padded", "stride 2, zero padding 1 on a 7x7 input", _conv2d_padded_case),)),
    OpSpec(4, "conv3d", "Conv3D", "layer", "x (N, C, D, H, W), W (O, C, kD, kH, kW), stride 1, zero padding 1",
           _conv3d_case, {"default": _convnd_ref}),
    OpSpec(5, "conv_transpose2d", "Transposed Conv2D", "layer",
           "x (N, C_in, H, W), W (C_in, C_out, kH, kW), stride 2, no padding: output (H - 1) * 2 + k",
           _convt_case, {"default": _r(nn.conv_transpose2d, "x", "w", "b")}),
    OpSpec(6, "separable_conv2d", "Depthwise-separable Conv2D", "layer",
           "depthwise W (C, 1, 3, 3) with padding 1 and no bias, then pointwise W (O, C, 1, 1) with bias",
           _sepconv_case, {"default": _sepconv_ref}),
    OpSpec(7, "max_pool2d", "Max pooling 2D", "layer",
           "kernel 2, stride 2, no padding; and kernel 3, stride 2, padding 1 (padded cells never win)",
           lambda rng: _image_case(rng, (2, 3, 6, 6), kernel=2, stride=2), {"default": _r(nn.max_pool2d, "x")},
           extra_cases=(ExtraCase("padded", "kernel 3, stride 2, padding 1 on a 7x7 input of mixed signs",
                                  lambda rng: _image_case(rng, (2, 3, 7, 7), kernel=3, stride=2, padding=1)),)),
    OpSpec(8, "avg_pool2d", "Average pooling 2D", "layer",
           "kernel 3, stride 1, zero padding 1; border divisor counts the padded cells or only the real ones",
           lambda rng: _image_case(rng, (2, 3, 6, 6), kernel=3, stride=1, padding=1),
           {"count_include_pad": _r(nn.avg_pool2d, "x", count_include_pad=True),
            "count_exclude_pad": _r(nn.avg_pool2d, "x", count_include_pad=False)}),
    OpSpec(9, "global_avg_pool2d", "Global average pooling", "layer", "mean over H and W: (N, C, H, W) -> (N, C)",
           lambda rng: _image_case(rng, (2, 3, 5, 5)), {"default": _r(nn.global_avg_pool2d, "x")}),
    OpSpec(10, "upsample_nearest2d", "Upsampling 2D (nearest)", "layer", "scale factor 2 on H and W",
           lambda rng: _image_case(rng, (2, 3, 3, 4), scale=2), {"default": _r(nn.upsample_nearest2d, "x")}),
    OpSpec(11, "batch_norm", "Batch normalisation", "layer",
           "channels axis 1, eps 1e-5; y_eval uses the given running statistics, y_train the batch statistics "
           "(biased variance); the gradient is taken through y_train",
           _batchnorm_case, {"default": _batchnorm_ref}, grad_of=("y_train",), outputs=("y_train", "y_eval")),
    OpSpec(12, "layer_norm", "Layer normalisation", "layer", "normalised over the last axis, eps 1e-5, affine",
           lambda rng: CaseTemplate({"x": _n(rng, 2, 4, 6, scale=1.0), "gamma": _u(rng, 6), "beta": _n(rng, 6)}, {"eps": 1e-5}, "x",
                                    ("gamma", "beta")),
           {"default": _r(nn.layer_norm, "x", "gamma", "beta")}),
    OpSpec(13, "group_norm", "Group normalisation", "layer", "3 groups over 6 channels, eps 1e-5, per-channel affine",
           lambda rng: CaseTemplate({"x": _n(rng, 2, 6, 4, 4, scale=1.0), "gamma": _u(rng, 6), "beta": _n(rng, 6)},
                                    {"groups": 3, "eps": 1e-5}, "x", ("gamma", "beta")),
           {"default": _r(nn.group_norm, "x", "gamma", "beta")}),
    OpSpec(14, "local_response_norm", "Local response normalisation", "layer",
           "across channels, size 3, alpha 0.5 (divided by size, Caffe convention), beta 0.75, k 2",
           lambda rng: _image_case(rng, (2, 5, 4, 4), size=3, alpha=0.5, beta=0.75, k=2.0),
           {"default": _r(nn.local_response_norm, "x")}),
    OpSpec(15, "dropout", "Dropout", "layer",
           "p = 0.3 (drop probability), inverted scaling; judged by its contract, not by a fixed output",
           lambda rng: CaseTemplate({"x": _u(rng, 16, 256, low=1.0, high=2.0)}, {"p": 0.3, "output_shapes": {"y_train": (16, 256)}}, "x"),
           {}, grad_of=("y_train",), check=_dropout_check, outputs=("y_train", "y_eval")),
    OpSpec(16, "embedding", "Embedding", "layer", "indices (2, 5) into a (10, 4) table; gradient w.r.t. the table",
           lambda rng: CaseTemplate({"indices": rng.integers(0, 10, (2, 5)).astype(np.int64), "weight": _n(rng, 10, 4, scale=1.0)}, {}, "weight"),
           {"default": _r(nn.embedding, "indices", "weight")}),
    OpSpec(17, "simple_rnn", "Simple (Elman) RNN", "layer",
           "batch first, tanh, h0 = 0, one bias: h_t = tanh(x_t Wx + h Wh + b); outputs all h_t and the last h",
           lambda rng: _rnn_case(rng, 1), {"default": _rnn_outputs(nn.simple_rnn, ("y", "h"), "x", "wx", "wh", "b")},
           outputs=("y", "h")),
    OpSpec(18, "lstm", "LSTM", "layer",
           "batch first, h0 = c0 = 0, one bias; gate blocks in Wx (I, 4H), Wh (H, 4H), b (4H) ordered i, f, g, o",
           _lstm_case, {"default": _rnn_outputs(nn.lstm, ("y", "h", "c"), "x", "wx", "wh", "b")},
           outputs=("y", "h", "c")),
    OpSpec(19, "gru", "GRU", "layer",
           "batch first, h0 = 0, input and recurrent biases; gate blocks ordered r, z, n; reset gate applied after "
           "the recurrent matmul (cuDNN) or before it (2014 paper)",
           _gru_case,
           {"reset_after": _rnn_outputs(nn.gru, ("y", "h"), "x", "wx", "wh", "bx", "bh", reset_after=True),
            "reset_before": _rnn_outputs(nn.gru, ("y", "h"), "x", "wx", "wh", "bx", "bh", reset_after=False)},
           outputs=("y", "h")),
    OpSpec(20, "bidirectional_rnn", "Bidirectional RNN wrapper", "layer",
           "Elman RNNs forward and backward in time, outputs concatenated on the feature axis [forward, backward]",
           _birnn_case, {"default": _birnn_ref}),
    OpSpec(21, "multi_head_attention", "Multi-head attention", "layer",
           "batch first, 2 heads, embed 8, projections x W + b with W (E, E), no mask; gradient w.r.t. the query",
           _mha_case, {"default": _mha_ref}),
    OpSpec(22, "prelu", "PReLU", "layer", "one learned slope per channel (axis 1)",
           lambda rng: CaseTemplate({"x": _n(rng, 2, 3, 4, 4, scale=1.0), "alpha": _u(rng, 3, low=0.05, high=0.5)}, {}, "x", ("alpha",)),
           {"default": _r(nn.prelu, "x", "alpha")}),
    OpSpec(23, "hierarchical_softmax", "Hierarchical softmax", "loss",
           "two-level class-based softmax over 8 words in 2 clusters of 4: log p(w) = log p(cluster) + log p(w | cluster)",
           _hsm_case, {"default": _r(nn.hierarchical_softmax, "x", "targets", "w_cluster", "b_cluster", "w_word", "b_word")},
           variants={"adaptive_softmax": VariantSpec(
               "adaptive_softmax", "Adaptive softmax",
               "head over 4 shortlist words + 1 cluster token (with bias), one tail cluster of 4 words through a "
               "(D, D) projection and a (D, 4) output, both without bias; log p(target)",
               _adaptive_case, _r(nn.adaptive_softmax, "x", "targets", "w_head", "b_head", "w_proj", "w_tail")),
               "hierarchical_sigmoid": VariantSpec(
               "hierarchical_sigmoid", "Hierarchical sigmoid (binary tree)",
               "a fixed unbalanced binary tree over 8 classes, 7 internal nodes each scoring x w_n + b_n (w_nodes "
               "(7, D), b_nodes (7)); path_table / path_code (8, 4) give each class's nodes and codes root first, "
               "padded with -1; code 1 takes probability sigmoid(score), code 0 sigmoid(-score); log p(target)",
               _hsigmoid_case, _r(nn.hierarchical_sigmoid, "x", "targets", "w_nodes", "b_nodes", "path_table", "path_code"))}),
    OpSpec(24, "ctc_loss", "CTC loss", "loss",
           "logits (T=6, B=2, C=4) time-major, blank 0, per-example negative log-likelihood, no reduction",
           _ctc_case, {"default": _r(nn.ctc_loss, "logits", "targets", "input_lengths", "target_lengths")}, rtol=1e-4, atol=1e-4),
    OpSpec(25, "sgd", "SGD", "optimizer", f"lr 0.1; {_OPT_NOTE}", _optim_case(lr=0.1),
           {"default": _optim(opt.sgd)}, grad_of=(), rtol=1e-5, atol=1e-6, outputs=("w",)),
    OpSpec(26, "momentum", "SGD with momentum", "optimizer", f"lr 0.1, momentum 0.9; {_OPT_NOTE}",
           _optim_case(lr=0.1, mu=0.9), {"default": _optim(opt.momentum, nesterov=False)}, grad_of=(), rtol=1e-5, atol=1e-6, outputs=("w",)),
    OpSpec(27, "nesterov", "Nesterov momentum", "optimizer", f"lr 0.1, momentum 0.9, Nesterov; {_OPT_NOTE}",
           _optim_case(lr=0.1, mu=0.9), {"default": _optim(opt.momentum, nesterov=True)}, grad_of=(), rtol=1e-5, atol=1e-6, outputs=("w",)),
    OpSpec(28, "adagrad", "Adagrad", "optimizer",
           f"lr 0.1, eps 0.1 (large on purpose, to tell its placement), initial accumulator 0; and a case with "
           f"initial accumulator 0.1 and eps 0.01, so neither can stand in for the other; {_OPT_NOTE}",
           _optim_case(lr=0.1, eps=0.1, initial_accumulator=0.0),
           {"eps_outside_sqrt": _optim(opt.adagrad, eps_inside_sqrt=False), "eps_inside_sqrt": _optim(opt.adagrad, eps_inside_sqrt=True)},
           grad_of=(), rtol=1e-5, atol=1e-6, outputs=("w",),
           extra_cases=(ExtraCase("accumulator", "lr 0.1, eps 0.01, initial accumulator 0.1",
                                  _optim_case(lr=0.1, eps=0.01, initial_accumulator=0.1)),)),
    OpSpec(29, "adadelta", "Adadelta", "optimizer",
           f"lr 1.0, rho 0.9, eps 0.01; and lr 0.5, which tells whether the learning rate enters the accumulated "
           f"update; {_OPT_NOTE}",
           _optim_case(lr=1.0, rho=0.9, eps=0.01),
           {"lr_scales_step": _optim(opt.adadelta, lr_in_accumulator=False),
            "lr_in_accumulator": _optim(opt.adadelta, lr_in_accumulator=True)},
           grad_of=(), rtol=1e-5, atol=1e-6, outputs=("w",),
           extra_cases=(ExtraCase("learning_rate", "lr 0.5, rho 0.9, eps 0.01", _optim_case(lr=0.5, rho=0.9, eps=0.01)),)),
    OpSpec(30, "rmsprop", "RMSprop", "optimizer",
           f"lr 0.01, rho 0.9, eps 0.1 (large on purpose), no momentum, not centred; {_OPT_NOTE}",
           _optim_case(lr=0.01, rho=0.9, eps=0.1),
           {"eps_outside_sqrt": _optim(opt.rmsprop, eps_inside_sqrt=False), "eps_inside_sqrt": _optim(opt.rmsprop, eps_inside_sqrt=True)},
           grad_of=(), rtol=1e-5, atol=1e-6, outputs=("w",)),
    OpSpec(31, "adam", "Adam", "optimizer", f"lr 0.1, betas 0.9 / 0.999, eps 0.1 (large on purpose); {_OPT_NOTE}",
           _optim_case(lr=0.1, b1=0.9, b2=0.999, eps=0.1),
           {"eps_outside_sqrt": _optim(opt.adam, eps_hat=False), "eps_hat": _optim(opt.adam, eps_hat=True)},
           grad_of=(), rtol=1e-5, atol=1e-6, outputs=("w",)),
    OpSpec(32, "adamw", "AdamW (decoupled weight decay)", "optimizer",
           f"lr 0.1, betas 0.9 / 0.999, eps 0.1, weight decay 0.1 scaled by lr; {_OPT_NOTE}",
           _optim_case(lr=0.1, b1=0.9, b2=0.999, eps=0.1, weight_decay=0.1),
           {"eps_outside_sqrt": _optim(opt.adam, eps_hat=False), "eps_hat": _optim(opt.adam, eps_hat=True)},
           grad_of=(), rtol=1e-5, atol=1e-6, outputs=("w",)),
)

OPS_BY_ID: dict[str, OpSpec] = {op.id: op for op in OPS}


def get(op_id: str) -> OpSpec:
    try:
        return OPS_BY_ID[op_id]
    except KeyError:
        raise KeyError(f"unknown op {op_id!r}; known: {', '.join(OPS_BY_ID)}") from None
