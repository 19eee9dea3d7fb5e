"""Float64 references of the throughput workloads: the loss of a training step and every parameter after its SGD
update, or the output of a single-op workload.

A training workload's model is data (harness.catalog.models): this module runs any such model forward and backward
in NumPy float64 with hand-written gradients for every node kind (tests/test_catalog.py checks each against finite
differences), so the throughput probe can refuse to time a framework's step that computes something else. Layouts
are the catalog's: NCHW images, dense weights (in, out), conv weights (O, C, kH, kW), recurrent gate blocks in the
orders the node kinds state. Inputs are cached, not im2col matrices (recomputed in the backward pass), so a large
model fits in memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from harness.catalog.models import NORM_EPS, Model, Node
from harness.catalog.reference_nn import conv_nd, log_softmax, sigmoid

Array = np.ndarray
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _f64(a: Array) -> Array:
    return np.asarray(a, dtype=np.float64)


# ---------------------------------------------------------------------------------------------- convolution
def _windows(x: Array, k: int, stride: int, pad: int, fill: float = 0.0) -> tuple[Array, int, int]:
    """Padded input and output size of a k x k window sliding with `stride`."""
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)], constant_values=fill) if pad else x
    oh = (xp.shape[2] - k) // stride + 1
    ow = (xp.shape[3] - k) // stride + 1
    return xp, oh, ow


def _tap(xp: Array, i: int, j: int, oh: int, ow: int, stride: int) -> tuple[slice, slice, slice, slice]:
    return (slice(None), slice(None), slice(i, i + stride * (oh - 1) + 1, stride), slice(j, j + stride * (ow - 1) + 1, stride))


def _im2col(x: Array, k: int, stride: int, pad: int) -> tuple[Array, int, int]:
    xp, oh, ow = _windows(x, k, stride, pad)
    n, c = x.shape[:2]
    cols = np.empty((n, oh, ow, c, k, k), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, :, :, i, j] = xp[_tap(xp, i, j, oh, ow, stride)].transpose(0, 2, 3, 1)
    return cols.reshape(n * oh * ow, c * k * k), oh, ow


def _col2im(dcols: Array, shape: tuple[int, ...], k: int, stride: int, pad: int, oh: int, ow: int) -> Array:
    n, c, h, w = shape
    d = dcols.reshape(n, oh, ow, c, k, k)
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=dcols.dtype)
    for i in range(k):
        for j in range(k):
            dxp[_tap(dxp, i, j, oh, ow, stride)] += d[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, pad : pad + h, pad : pad + w] if pad else dxp


# ---------------------------------------------------------------------------------------------- forward
def _forward(node: Node, xs: list[Array], p: Mapping[str, Array], inference: bool = False) -> tuple[Array, Any]:
    k, a, x = node.kind, node.attrs, xs[0]
    name = node.name
    if k == "dense":
        y = x @ p[f"{name}.w"]
        return (y + p[f"{name}.b"] if f"{name}.b" in p else y), x
    if k == "conv2d":
        w = p[f"{name}.w"]
        cols, oh, ow = _im2col(x, a["kernel"], a["stride"], a["padding"])
        y = (cols @ w.reshape(w.shape[0], -1).T).reshape(x.shape[0], oh, ow, -1).transpose(0, 3, 1, 2)
        return (y + p[f"{name}.b"].reshape(1, -1, 1, 1) if f"{name}.b" in p else y), x
    if k in ("batch_norm", "layer_norm"):
        axes = (0, 2, 3) if k == "batch_norm" else (-1,)
        shape = (1, -1, 1, 1) if k == "batch_norm" else (1,) * (x.ndim - 1) + (-1,)
        if inference and k == "batch_norm":  # a fresh model's running statistics: mean 0, variance 1
            mean, var = np.zeros((1,) * x.ndim, x.dtype), np.ones((1,) * x.ndim, x.dtype)
        else:
            mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
        inv = 1.0 / np.sqrt(var + NORM_EPS)
        xhat = (x - mean) * inv
        return xhat * p[f"{name}.gamma"].reshape(shape) + p[f"{name}.beta"].reshape(shape), (xhat, inv)
    if k == "relu":
        return np.maximum(x, 0.0), x
    if k == "gelu":
        return (0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))).astype(x.dtype), x
    if k == "max_pool":
        xp, oh, ow = _windows(x, a["kernel"], a["stride"], a["padding"], -np.inf)
        taps = np.stack([xp[_tap(xp, i, j, oh, ow, a["stride"])] for i in range(a["kernel"]) for j in range(a["kernel"])])
        arg = taps.argmax(axis=0)
        return np.take_along_axis(taps, arg[None], 0)[0], (x.shape, arg, oh, ow)
    if k == "global_avg_pool":
        return x.mean(axis=(2, 3)), x.shape
    if k == "flatten":
        return x.reshape(x.shape[0], -1), x.shape
    if k == "add":
        return xs[0] + xs[1], None
    if k == "lstm_last":
        return _lstm_forward(x, p[f"{name}.wx"], p[f"{name}.wh"])
    if k == "gru":
        return _gru_forward(x, *(p[f"{name}.{q}"] for q in ("wx", "wh", "bx", "bh")))
    if k == "embedding":
        return p[f"{name}.table"][x], x
    if k == "positional":
        return x + p[f"{name}.table"][None], None
    if k == "self_attention":
        return _attention_forward(x, p, name, a["heads"])
    if k == "mean_tokens":
        return x.mean(axis=1), x.shape
    raise KeyError(f"unknown node kind {k!r}")


# ---------------------------------------------------------------------------------------------- backward
def _backward(node: Node, dy: Array, cache: Any, p: Mapping[str, Array], grads: dict[str, Array]) -> list[Array | None]:
    """Gradients of the node's inputs (in order); parameter gradients are added to `grads`."""
    k, a, name = node.kind, node.attrs, node.name
    if k == "dense":
        x, w = cache, p[f"{name}.w"]
        grads[f"{name}.w"] = x.reshape(-1, x.shape[-1]).T @ dy.reshape(-1, dy.shape[-1])
        if f"{name}.b" in p:
            grads[f"{name}.b"] = dy.reshape(-1, dy.shape[-1]).sum(axis=0)
        return [dy @ w.T]
    if k == "conv2d":
        x, w = cache, p[f"{name}.w"]
        cols, oh, ow = _im2col(x, a["kernel"], a["stride"], a["padding"])
        dflat = dy.transpose(0, 2, 3, 1).reshape(-1, w.shape[0])
        grads[f"{name}.w"] = (dflat.T @ cols).reshape(w.shape)
        if f"{name}.b" in p:
            grads[f"{name}.b"] = dflat.sum(axis=0)
        return [_col2im(dflat @ w.reshape(w.shape[0], -1), x.shape, a["kernel"], a["stride"], a["padding"], oh, ow)]
    if k in ("batch_norm", "layer_norm"):
        xhat, inv = cache
        axes = (0, 2, 3) if k == "batch_norm" else (-1,)
        shape = (1, -1, 1, 1) if k == "batch_norm" else (1,) * (dy.ndim - 1) + (-1,)
        other = (0, 2, 3) if k == "batch_norm" else tuple(range(dy.ndim - 1))
        grads[f"{name}.beta"] = dy.sum(axis=other)
        grads[f"{name}.gamma"] = (dy * xhat).sum(axis=other)
        dxhat = dy * p[f"{name}.gamma"].reshape(shape)
        m = dy.size / dy.shape[1] if k == "batch_norm" else dy.shape[-1]  # values in each normalised group
        return [inv / m * (m * dxhat - dxhat.sum(axis=axes, keepdims=True) - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True))]
    if k == "relu":
        return [dy * (cache > 0)]
    if k == "gelu":
        x = cache
        return [(dy * (0.5 * (1.0 + _erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi))).astype(dy.dtype)]
    if k == "max_pool":
        shape, arg, oh, ow = cache
        kk, s, pad = a["kernel"], a["stride"], a["padding"]
        dxp = np.zeros((shape[0], shape[1], shape[2] + 2 * pad, shape[3] + 2 * pad), dtype=dy.dtype)
        for t in range(kk * kk):
            i, j = divmod(t, kk)
            dxp[_tap(dxp, i, j, oh, ow, s)] += dy * (arg == t)
        return [dxp[:, :, pad : pad + shape[2], pad : pad + shape[3]] if pad else dxp]
    if k == "global_avg_pool":
        h, w = cache[2], cache[3]
        return [np.broadcast_to(dy[:, :, None, None] / (h * w), cache).copy()]
    if k == "flatten":
        return [dy.reshape(cache)]
    if k == "add":
        return [dy, dy]
    if k == "lstm_last":
        dx, dwx, dwh = _lstm_backward(dy, cache, p[f"{name}.wx"], p[f"{name}.wh"])
        grads[f"{name}.wx"], grads[f"{name}.wh"] = dwx, dwh
        return [dx]
    if k == "gru":
        dx, g = _gru_backward(dy, cache, p[f"{name}.wx"], p[f"{name}.wh"])
        grads.update({f"{name}.{q}": v for q, v in g.items()})
        return [dx]
    if k == "embedding":
        table = np.zeros_like(p[f"{name}.table"])
        np.add.at(table, cache, dy)
        grads[f"{name}.table"] = table
        return [None]
    if k == "positional":
        grads[f"{name}.table"] = dy.sum(axis=0)
        return [dy]
    if k == "self_attention":
        return [_attention_backward(dy, cache, p, name, grads)]
    if k == "mean_tokens":
        return [np.broadcast_to(dy[:, None, :] / cache[1], cache).copy()]
    raise KeyError(f"unknown node kind {k!r}")


# ---------------------------------------------------------------------------------------------- recurrent
def _lstm_forward(x: Array, wx: Array, wh: Array) -> tuple[Array, Any]:
    bsz, steps, _ = x.shape
    hid = wh.shape[0]
    h, c = np.zeros((bsz, hid), dtype=x.dtype), np.zeros((bsz, hid), dtype=x.dtype)
    tape = []
    for t in range(steps):
        z = x[:, t] @ wx + h @ wh
        i, f, g, o = sigmoid(z[:, :hid]), sigmoid(z[:, hid : 2 * hid]), np.tanh(z[:, 2 * hid : 3 * hid]), sigmoid(z[:, 3 * hid :])
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        tape.append((x[:, t], h, c, i, f, g, o, tc))
        h, c = o * tc, c_new
    return h, tape


def _lstm_backward(dh: Array, tape: list[Any], wx: Array, wh: Array) -> tuple[Array, Array, Array]:
    dwx, dwh = np.zeros_like(wx), np.zeros_like(wh)
    dc = np.zeros_like(dh)
    dxs = []
    for xt, h_prev, c_prev, i, f, g, o, tc in reversed(tape):
        do = dh * tc
        dc = dc + dh * o * (1 - tc * tc)
        di, df, dg = dc * g, dc * c_prev, dc * i
        dz = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)], axis=1)
        dwx += xt.T @ dz
        dwh += h_prev.T @ dz
        dxs.append(dz @ wx.T)
        dh = dz @ wh.T
        dc = dc * f
    return np.stack(dxs[::-1], axis=1), dwx, dwh


def _gru_forward(x: Array, wx: Array, wh: Array, bx: Array, bh: Array) -> tuple[Array, Any]:
    bsz, steps, _ = x.shape
    hid = wh.shape[0]
    h = np.zeros((bsz, hid), dtype=x.dtype)
    ys = np.empty((bsz, steps, hid), dtype=x.dtype)
    tape = []
    for t in range(steps):
        zx, zh = x[:, t] @ wx + bx, h @ wh + bh
        r = sigmoid(zx[:, :hid] + zh[:, :hid])
        z = sigmoid(zx[:, hid : 2 * hid] + zh[:, hid : 2 * hid])
        n = np.tanh(zx[:, 2 * hid :] + r * zh[:, 2 * hid :])
        tape.append((x[:, t], h, r, z, n, zh[:, 2 * hid :]))
        h = (1 - z) * n + z * h
        ys[:, t] = h
    return ys, tape


def _gru_backward(dy: Array, tape: list[Any], wx: Array, wh: Array) -> tuple[Array, dict[str, Array]]:
    g = {"wx": np.zeros_like(wx), "wh": np.zeros_like(wh), "bx": np.zeros(wx.shape[1], dtype=wx.dtype),
         "bh": np.zeros(wh.shape[1], dtype=wh.dtype)}
    dh = np.zeros((dy.shape[0], dy.shape[2]), dtype=dy.dtype)
    dxs = []
    for t in range(len(tape) - 1, -1, -1):
        xt, h_prev, r, z, n, zh_n = tape[t]
        dh = dh + dy[:, t]
        dn, dz = dh * (1 - z), dh * (h_prev - n)
        dn_pre = dn * (1 - n * n)
        dr_pre = dn_pre * zh_n * r * (1 - r)
        dz_pre = dz * z * (1 - z)
        dzx = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)
        dzh = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)
        g["wx"] += xt.T @ dzx
        g["bx"] += dzx.sum(axis=0)
        g["wh"] += h_prev.T @ dzh
        g["bh"] += dzh.sum(axis=0)
        dxs.append(dzx @ wx.T)
        dh = dh * z + dzh @ wh.T
    return np.stack(dxs[::-1], axis=1), g


# ---------------------------------------------------------------------------------------------- attention
def _attention_forward(x: Array, p: Mapping[str, Array], name: str, heads: int) -> tuple[Array, Any]:
    n, t, d = x.shape
    dh = d // heads

    def split(m: Array) -> Array:
        return m.reshape(n, t, heads, dh).transpose(0, 2, 1, 3)

    q, k, v = (split(x @ p[f"{name}.w{c}"] + p[f"{name}.b{c}"]) for c in "qkv")
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh)
    att = np.exp(scores - scores.max(axis=-1, keepdims=True))
    att /= att.sum(axis=-1, keepdims=True)
    o = (att @ v).transpose(0, 2, 1, 3).reshape(n, t, d)
    return o @ p[f"{name}.wo"] + p[f"{name}.bo"], (x, q, k, v, att, o, heads)


def _attention_backward(dy: Array, cache: Any, p: Mapping[str, Array], name: str, grads: dict[str, Array]) -> Array:
    x, q, k, v, att, o, heads = cache
    n, t, d = x.shape
    dh = d // heads
    grads[f"{name}.wo"] = o.reshape(-1, d).T @ dy.reshape(-1, d)
    grads[f"{name}.bo"] = dy.reshape(-1, d).sum(axis=0)
    do = (dy @ p[f"{name}.wo"].T).reshape(n, t, heads, dh).transpose(0, 2, 1, 3)
    datt = do @ v.transpose(0, 1, 3, 2)
    dv = att.transpose(0, 1, 3, 2) @ do
    ds = att * (datt - (datt * att).sum(axis=-1, keepdims=True)) / math.sqrt(dh)
    dq, dk = ds @ k, ds.transpose(0, 1, 3, 2) @ q
    dx = np.zeros_like(x)
    for c, dm in (("q", dq), ("k", dk), ("v", dv)):
        flat = dm.transpose(0, 2, 1, 3).reshape(-1, d)
        grads[f"{name}.w{c}"] = x.reshape(-1, d).T @ flat
        grads[f"{name}.b{c}"] = flat.sum(axis=0)
        dx += (flat @ p[f"{name}.w{c}"].T).reshape(n, t, d)
    return dx


# ---------------------------------------------------------------------------------------------- models
def forward(model: Model, params: Mapping[str, Array], x: Array, dtype: Any = np.float64,
            inference: bool = False) -> tuple[Array, dict[str, Any]]:
    """The model's output (logits) and the caches the backward pass needs, computed in `dtype` (float64 for the
    reference; float32 to see what float32 arithmetic alone does to it). inference: batch normalisation uses a fresh
    model's running statistics (mean 0, variance 1) instead of the batch's, as a model exported for inference does."""
    p = {k: np.asarray(v, dtype=dtype) for k, v in params.items()}
    values: dict[str, Array] = {"input": x if model.input_kind == "tokens" else np.asarray(x, dtype=dtype)}
    caches: dict[str, Any] = {}
    for node in model.nodes:
        values[node.name], caches[node.name] = _forward(node, [values[i] for i in node.inputs], p, inference)
    return values[model.output], caches


def loss_and_grads(model: Model, params: Mapping[str, Array], batch: Mapping[str, Array],
                   dtype: Any = np.float64) -> tuple[float, dict[str, Array]]:
    """The mean softmax cross-entropy and its gradient for every parameter (in `dtype`; float64 by default)."""
    p = {k: np.asarray(v, dtype=dtype) for k, v in params.items()}
    logits, caches = forward(model, p, batch["x"], dtype)
    labels = np.asarray(batch["labels"]).reshape(-1)
    flat = logits.reshape(-1, logits.shape[-1])
    logp = log_softmax(flat, axis=-1)
    rows = np.arange(flat.shape[0])
    loss = float(-logp[rows, labels].mean())
    dflat = np.exp(logp)
    dflat[rows, labels] -= 1.0
    dflat /= flat.shape[0]
    dvalues: dict[str, Array] = {model.output: dflat.reshape(logits.shape)}
    grads: dict[str, Array] = {}
    for node in reversed(model.nodes):
        dy = dvalues.pop(node.name, None)
        if dy is None:
            continue
        for inp, dx in zip(node.inputs, _backward(node, dy, caches[node.name], p, grads)):
            if dx is not None and inp != "input":
                dvalues[inp] = dvalues[inp] + dx if inp in dvalues else dx
    for name, value in p.items():  # a parameter the loss does not depend on has a zero gradient
        grads.setdefault(name, np.zeros_like(value))
    return loss, grads


def training_steps(model: Model, params: Mapping[str, Array], batch: Mapping[str, Array], lr: float,
                   steps: int) -> list[dict[str, Any]]:
    """For each of the first `steps` SGD steps: {'loss': the loss before the step, <parameter>: its value after}."""
    state = {k: _f64(v) for k, v in params.items()}
    out = []
    for _ in range(steps):
        loss, grads = loss_and_grads(model, state, batch)
        for name, g in grads.items():
            state[name] = state[name] - lr * g
        out.append({"loss": loss, **dict(state)})
    return out


def float32_error(model: Model, params: Mapping[str, Array], batch: Mapping[str, Array]) -> dict[str, float]:
    """What float32 arithmetic alone does to this model's loss and gradients: the reference computed in float32
    against the same in float64 (relative errors; "update" is the largest over the parameters whose gradient is
    not zero). A correct float32 framework cannot be asked to do much better: a small MLP is off by about 1e-7, a
    ResNet-50 with batch normalisation in training mode by one to a few percent on every parameter (a near-zero
    pre-activation that changes sign moves every update upstream of it)."""
    loss64, g64 = loss_and_grads(model, params, batch, np.float64)
    loss32, g32 = loss_and_grads(model, params, batch, np.float32)
    floor = 1e-6 * max((float(np.linalg.norm(g)) for g in g64.values()), default=0.0)
    worst = 0.0
    for name, g in g64.items():
        scale = float(np.linalg.norm(g))
        if scale > floor:
            worst = max(worst, float(np.linalg.norm(g32[name].astype(np.float64) - g)) / scale)
    return {"loss": abs(float(loss32) - loss64) / max(abs(loss64), 1e-300), "update": worst}


def single_op(op: str, arrays: Mapping[str, Array]) -> dict[str, Array]:
    """The output of a single-op workload."""
    if op == "gemm":
        return {"y": _f64(arrays["a"]) @ _f64(arrays["b"])}
    if op == "conv2d":
        return {"y": conv_nd(arrays["x"], arrays["w"], None, [1, 1], [1, 1], [1, 1])}
    raise KeyError(f"unknown single-op workload {op!r}")
