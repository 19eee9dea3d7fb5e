"""Float64 references of the throughput workloads: the loss of the first training step and every parameter after
its SGD update, or the output of a single-op workload.

A workload's model is data in the catalog (harness.catalog.workloads: a list of layers naming their parameters);
this module runs it forward and backward in NumPy float64 with hand-written gradients, so the throughput probe can
refuse to time a framework's step that computes something else. Layouts are the catalog's: NCHW images, dense
weights (in, out), conv weights (O, C, kH, kW), LSTM gate blocks i, f, g, o in Wx (I, 4H) and Wh (H, 4H).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.catalog.reference_nn import conv_nd, log_softmax, sigmoid

Array = np.ndarray
Layer = tuple[Any, ...]


def _f64(a: Array) -> Array:
    return np.asarray(a, dtype=np.float64)


# ---------------------------------------------------------------------------------------------- layers
def _im2col(x: Array, k: int, pad: int) -> tuple[Array, tuple[int, ...]]:
    """(N, C, H, W) -> (N * H' * W', C * k * k) patches for a stride-1 convolution with symmetric zero padding."""
    n, c, h, w = x.shape
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    cols = np.empty((n, c, k, k, oh, ow))
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[:, :, i : i + oh, j : j + ow]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * k * k), (n, c, h, w, oh, ow)


def _col2im(dcols: Array, shape: tuple[int, ...], k: int, pad: int) -> Array:
    n, c, h, w, oh, ow = shape
    d = dcols.reshape(n, oh, ow, c, k, k).transpose(0, 3, 4, 5, 1, 2)
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad))
    for i in range(k):
        for j in range(k):
            dxp[:, :, i : i + oh, j : j + ow] += d[:, :, i, j]
    return dxp[:, :, pad : pad + h, pad : pad + w]


def _forward(layer: Layer, x: Array, p: Mapping[str, Array]) -> tuple[Array, Any]:
    kind = layer[0]
    if kind == "dense":
        w, b = p[layer[1]], p[layer[2]]
        return x @ w + b, x
    if kind == "relu":
        return np.maximum(x, 0.0), x
    if kind == "conv2d":
        w, b, pad = p[layer[1]], p[layer[2]], layer[3]
        k = w.shape[2]
        cols, shape = _im2col(x, k, pad)
        y = cols @ w.reshape(w.shape[0], -1).T + b
        n, _, _, _, oh, ow = shape
        return y.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2), (cols, shape)
    if kind == "maxpool2":
        n, c, h, w = x.shape
        windows = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
        arg = windows.argmax(axis=-1)
        return np.take_along_axis(windows, arg[..., None], -1)[..., 0], (x.shape, arg)
    if kind == "flatten":
        return x.reshape(x.shape[0], -1), x.shape
    if kind == "lstm_last":
        return _lstm_forward(x, p[layer[1]], p[layer[2]])
    raise KeyError(f"unknown reference layer {kind!r}")


def _backward(layer: Layer, dy: Array, cache: Any, p: Mapping[str, Array], grads: dict[str, Array]) -> Array:
    kind = layer[0]
    if kind == "dense":
        x = cache
        grads[layer[1]] = x.T @ dy
        grads[layer[2]] = dy.sum(axis=0)
        return dy @ p[layer[1]].T
    if kind == "relu":
        return dy * (cache > 0)
    if kind == "conv2d":
        w = p[layer[1]]
        cols, shape = cache
        dflat = dy.transpose(0, 2, 3, 1).reshape(-1, w.shape[0])
        grads[layer[1]] = (dflat.T @ cols).reshape(w.shape)
        grads[layer[2]] = dflat.sum(axis=0)
        return _col2im(dflat @ w.reshape(w.shape[0], -1), shape, w.shape[2], layer[3])
    if kind == "maxpool2":
        xshape, arg = cache
        n, c, h, w = xshape
        dwin = np.zeros((n, c, h // 2, w // 2, 4))
        np.put_along_axis(dwin, arg[..., None], dy[..., None], -1)
        return dwin.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(xshape)
    if kind == "flatten":
        return dy.reshape(cache)
    if kind == "lstm_last":
        dx, dwx, dwh = _lstm_backward(dy, cache, p[layer[1]], p[layer[2]])
        grads[layer[1]], grads[layer[2]] = dwx, dwh
        return dx
    raise KeyError(f"unknown reference layer {kind!r}")


def _lstm_forward(x: Array, wx: Array, wh: Array) -> tuple[Array, Any]:
    """Batch-first LSTM without biases, h0 = c0 = 0; returns the last hidden state."""
    bsz, steps, _ = x.shape
    hid = wh.shape[0]
    h, c = np.zeros((bsz, hid)), np.zeros((bsz, hid))
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


# ---------------------------------------------------------------------------------------------- models
def forward_backward(model: Sequence[Layer], arrays: Mapping[str, Array]) -> tuple[float, dict[str, Array]]:
    """Mean softmax cross-entropy of the model on arrays['x'] / arrays['labels'], and its gradient for every
    parameter the model's layers name (float64)."""
    p = {k: _f64(v) for k, v in arrays.items() if k not in ("x", "labels")}
    x = _f64(arrays["x"])
    labels = np.asarray(arrays["labels"])
    caches = []
    for layer in model:
        x, cache = _forward(layer, x, p)
        caches.append(cache)
    logp = log_softmax(x, axis=-1)
    batch = x.shape[0]
    loss = float(-logp[np.arange(batch), labels].mean())
    dy = np.exp(logp)
    dy[np.arange(batch), labels] -= 1.0
    dy /= batch
    grads: dict[str, Array] = {}
    for layer, cache in zip(reversed(model), reversed(caches)):
        dy = _backward(layer, dy, cache, p, grads)
    return loss, grads


def training_steps(model: Sequence[Layer], arrays: Mapping[str, Array], lr: float, steps: int) -> list[dict[str, Any]]:
    """For each of the first `steps` SGD steps: {'loss': the loss before the step, <parameter>: its value after}."""
    state: dict[str, Any] = {k: (v if k == "labels" else _f64(v)) for k, v in arrays.items()}
    out = []
    for _ in range(steps):
        loss, grads = forward_backward(model, state)
        for name, g in grads.items():
            state[name] = state[name] - lr * g
        out.append({"loss": loss, **{name: state[name] for name in grads}})
    return out


def single_op(op: str, arrays: Mapping[str, Array]) -> dict[str, Array]:
    """The output of a single-op workload."""
    if op == "gemm":
        return {"y": _f64(arrays["a"]) @ _f64(arrays["b"])}
    if op == "conv2d":
        return {"y": conv_nd(arrays["x"], arrays["w"], None, [1, 1], [1, 1], [1, 1])}
    raise KeyError(f"unknown single-op workload {op!r}")
