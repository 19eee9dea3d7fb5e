"""NumPy reference implementations of the catalog's layers and losses.

Every function works in float64 on the canonical layouts the catalog states (channels first, batch first for
sequences, weights as documented on each op). They are written for clarity and small shapes, not speed: they are
the judge of what every framework computes, so each one follows the textbook definition literally.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

Array = np.ndarray


def _f64(a: Array) -> Array:
    return np.asarray(a, dtype=np.float64)


def sigmoid(x: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-x))


def log_softmax(x: Array, axis: int = -1) -> Array:
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(x: Array, axis: int = -1) -> Array:
    return np.exp(log_softmax(x, axis))


def dense(x: Array, w: Array, b: Array) -> Array:
    """y = x W + b with W of shape (in, out)."""
    return _f64(x) @ _f64(w) + _f64(b)


def conv_nd(
    x: Array,
    w: Array,
    b: Array | None,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int = 1,
) -> Array:
    """Cross-correlation over the trailing spatial axes.

    x: (N, C, *spatial); w: (O, C // groups, *kernel); symmetric zero padding per axis.
    """
    x, w = _f64(x), _f64(w)
    nd = x.ndim - 2
    x = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in padding])
    n, c = x.shape[:2]
    o = w.shape[0]
    kernel = w.shape[2:]
    out_shape = [
        (x.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(nd)
    ]
    y = np.zeros((n, o, *out_shape))
    cin_g, cout_g = c // groups, o // groups
    for g in range(groups):
        xg = x[:, g * cin_g : (g + 1) * cin_g]
        wg = w[g * cout_g : (g + 1) * cout_g]
        for offs in itertools.product(*[range(k) for k in kernel]):
            index = tuple(
                slice(offs[i] * dilation[i], offs[i] * dilation[i] + stride[i] * (out_shape[i] - 1) + 1, stride[i])
                for i in range(nd)
            )
            patch = xg[(slice(None), slice(None), *index)]  # (N, cin_g, *out)
            y[:, g * cout_g : (g + 1) * cout_g] += np.einsum("nc...,oc->no...", patch, wg[(Ellipsis, *offs)])  # type: ignore[arg-type]
    if b is not None:
        y += _f64(b).reshape((1, o) + (1,) * nd)
    return y


def conv_transpose2d(x: Array, w: Array, b: Array | None, stride: int, padding: int) -> Array:
    """Transposed 2-D convolution (the gradient of conv2d with respect to its input).

    w: (C_in, C_out, kH, kW). Output size: (H - 1) * stride - 2 * padding + k.
    """
    x, w = _f64(x), _f64(w)
    n, _, h, wd = x.shape
    cout, kh, kw = w.shape[1:]
    full = np.zeros((n, cout, (h - 1) * stride + kh, (wd - 1) * stride + kw))
    for i, j in itertools.product(range(kh), range(kw)):
        contrib = np.einsum("nchw,co->nohw", x, w[:, :, i, j])
        full[:, :, i : i + stride * (h - 1) + 1 : stride, j : j + stride * (wd - 1) + 1 : stride] += contrib
    if padding:
        full = full[:, :, padding:-padding, padding:-padding]
    if b is not None:
        full += _f64(b).reshape(1, -1, 1, 1)
    return full


def max_pool2d(x: Array, kernel: int, stride: int, padding: int = 0) -> Array:
    """Max pooling; padded cells never win (they count as -inf), as every framework's max pooling defines it."""
    x = _f64(x)
    if padding:
        x = np.pad(x, [(0, 0), (0, 0), (padding, padding), (padding, padding)], constant_values=-np.inf)
    n, c, h, w = x.shape
    oh, ow = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    out = np.full((n, c, oh, ow), -np.inf)
    for i, j in itertools.product(range(kernel), range(kernel)):
        out = np.maximum(out, x[:, :, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride])
    return out


def avg_pool2d(x: Array, kernel: int, stride: int, padding: int, count_include_pad: bool) -> Array:
    """Average pooling with zero padding; the divisor counts padded cells or only real ones."""
    x = _f64(x)
    ones = np.ones_like(x)
    xp = np.pad(x, [(0, 0), (0, 0), (padding, padding), (padding, padding)])
    mp = np.pad(ones, [(0, 0), (0, 0), (padding, padding), (padding, padding)])
    n, c, h, w = xp.shape
    oh, ow = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    total = np.zeros((n, c, oh, ow))
    count = np.zeros((n, c, oh, ow))
    for i, j in itertools.product(range(kernel), range(kernel)):
        sl = (slice(None), slice(None), slice(i, i + stride * (oh - 1) + 1, stride), slice(j, j + stride * (ow - 1) + 1, stride))
        total += xp[sl]
        count += mp[sl]
    return total / (kernel * kernel if count_include_pad else count)


def global_avg_pool2d(x: Array) -> Array:
    return _f64(x).mean(axis=(2, 3))


def upsample_nearest2d(x: Array, scale: int) -> Array:
    return _f64(x).repeat(scale, axis=2).repeat(scale, axis=3)


def batch_norm(x: Array, gamma: Array, beta: Array, mean: Array, var: Array, eps: float) -> Array:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (_f64(x) - _f64(mean).reshape(shape)) / np.sqrt(_f64(var).reshape(shape) + eps) * _f64(gamma).reshape(
        shape
    ) + _f64(beta).reshape(shape)


def batch_norm_train(x: Array, gamma: Array, beta: Array, eps: float) -> Array:
    """Training mode: normalise with the batch statistics (biased variance) over N and spatial axes."""
    axes = (0,) + tuple(range(2, x.ndim))
    x = _f64(x)
    return batch_norm(x, gamma, beta, x.mean(axis=axes), x.var(axis=axes), eps)


def layer_norm(x: Array, gamma: Array, beta: Array, eps: float) -> Array:
    x = _f64(x)
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * _f64(gamma) + _f64(beta)


def group_norm(x: Array, gamma: Array, beta: Array, groups: int, eps: float) -> Array:
    x = _f64(x)
    n, c = x.shape[:2]
    xg = x.reshape(n, groups, -1)
    mu = xg.mean(axis=2, keepdims=True)
    var = xg.var(axis=2, keepdims=True)
    y = ((xg - mu) / np.sqrt(var + eps)).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return y * _f64(gamma).reshape(shape) + _f64(beta).reshape(shape)


def local_response_norm(x: Array, size: int, alpha: float, beta: float, k: float) -> Array:
    """Across-channel LRN: b_c = a_c / (k + alpha / size * sum_{c' in window} a_c'^2) ** beta.

    The window for channel c is [c - size // 2, c + (size - 1) // 2], clipped to the valid channels. The divisor
    `alpha / size` is the Caffe/PyTorch convention; frameworks whose alpha is not divided map it explicitly.
    """
    x = _f64(x)
    sq = x**2
    c = x.shape[1]
    acc = np.zeros_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c, ch + (size - 1) // 2 + 1)
        acc[:, ch] = sq[:, lo:hi].sum(axis=1)
    return x / (k + alpha / size * acc) ** beta


def embedding(indices: Array, weight: Array) -> Array:
    return _f64(weight)[np.asarray(indices)]


def simple_rnn(x: Array, wx: Array, wh: Array, b: Array, reverse: bool = False) -> tuple[Array, Array]:
    """Elman RNN, batch first: h_t = tanh(x_t Wx + h_{t-1} Wh + b), h_0 = 0. Returns (all h_t, last h)."""
    x = _f64(x)
    bsz, t, _ = x.shape
    h = np.zeros((bsz, wh.shape[0]))
    ys = np.zeros((bsz, t, wh.shape[0]))
    steps = range(t - 1, -1, -1) if reverse else range(t)
    for s in steps:
        h = np.tanh(x[:, s] @ _f64(wx) + h @ _f64(wh) + _f64(b))
        ys[:, s] = h
    return ys, h


def lstm(x: Array, wx: Array, wh: Array, b: Array) -> tuple[Array, Array, Array]:
    """LSTM, batch first, gate blocks in the order i, f, g, o along the last axis of Wx (I, 4H), Wh (H, 4H), b (4H).

    c_t = f * c_{t-1} + i * g; h_t = o * tanh(c_t); h_0 = c_0 = 0. Returns (all h_t, last h, last c).
    """
    x = _f64(x)
    bsz, t, _ = x.shape
    hid = wh.shape[0]
    h = np.zeros((bsz, hid))
    c = np.zeros((bsz, hid))
    ys = np.zeros((bsz, t, hid))
    for s in range(t):
        z = x[:, s] @ _f64(wx) + h @ _f64(wh) + _f64(b)
        i, f, g, o = (z[:, k * hid : (k + 1) * hid] for k in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        ys[:, s] = h
    return ys, h, c


def gru(x: Array, wx: Array, wh: Array, bx: Array, bh: Array, reset_after: bool) -> tuple[Array, Array]:
    """GRU, batch first, gate blocks in the order r, z, n: Wx (I, 3H), Wh (H, 3H), bx and bh (3H).

    reset_after (cuDNN/PyTorch/Keras default): n = tanh(x Wxn + bxn + r * (h Whn + bhn)).
    reset before (the 2014 paper):             n = tanh(x Wxn + bxn + (r * h) Whn + bhn).
    h_t = (1 - z) * n + z * h_{t-1}.
    """
    x = _f64(x)
    bsz, t, _ = x.shape
    hid = wh.shape[0]
    wx, wh, bx, bh = _f64(wx), _f64(wh), _f64(bx), _f64(bh)
    h = np.zeros((bsz, hid))
    ys = np.zeros((bsz, t, hid))
    blk = [slice(k * hid, (k + 1) * hid) for k in range(3)]
    for s in range(t):
        gx = x[:, s] @ wx + bx
        r = sigmoid(gx[:, blk[0]] + h @ wh[:, blk[0]] + bh[blk[0]])
        z = sigmoid(gx[:, blk[1]] + h @ wh[:, blk[1]] + bh[blk[1]])
        if reset_after:
            n = np.tanh(gx[:, blk[2]] + r * (h @ wh[:, blk[2]] + bh[blk[2]]))
        else:
            n = np.tanh(gx[:, blk[2]] + (r * h) @ wh[:, blk[2]] + bh[blk[2]])
        h = (1 - z) * n + z * h
        ys[:, s] = h
    return ys, h


def multi_head_attention(
    q: Array, k: Array, v: Array, wq: Array, wk: Array, wv: Array, bq: Array, bk: Array, bv: Array,
    wo: Array, bo: Array, heads: int,
) -> Array:
    """Scaled dot-product attention over `heads` heads, batch first; projections are x W + b with W (E, E)."""
    q, k, v = _f64(q), _f64(k), _f64(v)
    bsz, lq, e = q.shape
    d = e // heads

    def split(t: Array) -> Array:
        return t.reshape(bsz, t.shape[1], heads, d).transpose(0, 2, 1, 3)

    qh, kh, vh = split(q @ wq + bq), split(k @ wk + bk), split(v @ wv + bv)
    att = softmax(qh @ kh.transpose(0, 1, 3, 2) / np.sqrt(d), axis=-1)
    out = (att @ vh).transpose(0, 2, 1, 3).reshape(bsz, lq, e)
    return out @ _f64(wo) + _f64(bo)


def prelu(x: Array, alpha: Array) -> Array:
    x = _f64(x)
    a = _f64(alpha).reshape((1, -1) + (1,) * (x.ndim - 2))
    return np.where(x > 0, x, a * x)


def hierarchical_softmax(x: Array, targets: Array, wc: Array, bc: Array, ww: Array, bw: Array) -> Array:
    """Two-level class-based softmax: log p(w) = log p(cluster | x) + log p(w | cluster, x).

    Word w belongs to cluster w // S where S = ww.shape[2]; wc (D, K), bc (K), ww (K, D, S), bw (K, S).
    Returns log p(target) per example.
    """
    x = _f64(x)
    size = ww.shape[2]
    clusters, within = np.asarray(targets) // size, np.asarray(targets) % size
    lp_cluster = log_softmax(x @ _f64(wc) + _f64(bc))
    out = np.zeros(x.shape[0])
    for i in range(x.shape[0]):
        cl = clusters[i]
        lp_word = log_softmax(x[i] @ _f64(ww[cl]) + _f64(bw[cl]))
        out[i] = lp_cluster[i, cl] + lp_word[within[i]]
    return out


def adaptive_softmax(x: Array, targets: Array, w_head: Array, b_head: Array, w_proj: Array, w_tail: Array) -> Array:
    """Adaptive softmax with one tail cluster (Grave et al. 2017), a close variant of hierarchical softmax.

    The head scores the shortlist words [0, cutoff) plus one token for the tail cluster; tail words are scored
    by x w_proj w_tail. cutoff = w_head.shape[1] - 1. Returns log p(target) per example.
    """
    x = _f64(x)
    cutoff = w_head.shape[1] - 1
    head = log_softmax(x @ _f64(w_head) + _f64(b_head))
    tail = log_softmax(x @ _f64(w_proj) @ _f64(w_tail))
    targets = np.asarray(targets)
    out = np.zeros(x.shape[0])
    for i, t in enumerate(targets):
        out[i] = head[i, t] if t < cutoff else head[i, cutoff] + tail[i, t - cutoff]
    return out


def hierarchical_sigmoid(
    x: Array, targets: Array, w_nodes: Array, b_nodes: Array, path_table: Array, path_code: Array
) -> Array:
    """Hierarchical sigmoid over an explicit binary tree (Morin & Bengio 2005), a close variant of hierarchical softmax.

    Every internal node n is a binary classifier with score s_n = x w_n + b_n (w_nodes (nodes, D), b_nodes (nodes)):
    it sends x to its child coded 1 with probability sigmoid(s_n) and to its child coded 0 with 1 - sigmoid(s_n)
    = sigmoid(-s_n). log p(class) is the sum over the nodes on the class's path of log sigmoid((2 code - 1) s_n).
    path_table / path_code (classes, L): node indices and codes along each class's path, padded with -1 after its
    end. Returns log p(target) per example.
    """
    x = _f64(x)
    w, b = _f64(w_nodes), _f64(b_nodes)
    table, code = np.asarray(path_table), np.asarray(path_code)
    out = np.zeros(x.shape[0])
    for i, t in enumerate(np.asarray(targets)):
        for node, bit in zip(table[t], code[t]):
            if node < 0:
                break
            s = x[i] @ w[node] + b[node]
            out[i] -= np.logaddexp(0.0, -(2.0 * bit - 1.0) * s)  # log sigmoid(z) = -log(1 + exp(-z))
    return out


def ctc_loss(logits: Array, targets: Array, input_lengths: Array, target_lengths: Array, blank: int) -> Array:
    """Connectionist temporal classification loss per example by the forward algorithm in log space.

    logits: (T, B, C), unnormalised; the reference applies log-softmax over C. Returns -log p(target | input).
    """
    logp = log_softmax(_f64(logits), axis=-1)
    out = np.zeros(logp.shape[1])
    for b in range(logp.shape[1]):
        tgt = list(np.asarray(targets)[b, : int(target_lengths[b])])
        ext = [blank]
        for label in tgt:
            ext += [int(label), blank]
        n_t = int(input_lengths[b])
        alpha = np.full(len(ext), -np.inf)
        alpha[0] = logp[0, b, ext[0]]
        if len(ext) > 1:
            alpha[1] = logp[0, b, ext[1]]
        for t in range(1, n_t):
            prev = alpha.copy()
            for s in range(len(ext)):
                terms = [prev[s]]
                if s >= 1:
                    terms.append(prev[s - 1])
                if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                    terms.append(prev[s - 2])
                alpha[s] = np.logaddexp.reduce(terms) + logp[t, b, ext[s]]
        out[b] = -np.logaddexp(alpha[-1], alpha[-2]) if len(ext) > 1 else -alpha[-1]
    return out
