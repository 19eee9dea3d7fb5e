"""NumPy reference implementations of the catalog's optimizers.

Each takes the initial parameter vector, a (steps, n) array of gradients (one per step) and the hyperparameters,
and returns the parameter after every step, shape (steps, n). Where frameworks place epsilon differently, the
convention is an argument and the catalog lists every convention it accepts, so the record can say which one a
framework follows.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray


def sgd(w: Array, grads: Array, lr: float) -> Array:
    w = np.asarray(w, np.float64).copy()
    out = []
    for g in np.asarray(grads, np.float64):
        w = w - lr * g
        out.append(w)
    return np.stack(out)


def momentum(w: Array, grads: Array, lr: float, mu: float, nesterov: bool) -> Array:
    """Heavy-ball momentum as v = mu v + g; w -= lr v (Nesterov: w -= lr (g + mu v)).

    The other common form (v = mu v - lr g; w += v) gives the same iterates for a constant learning rate.
    """
    w = np.asarray(w, np.float64).copy()
    v = np.zeros_like(w)
    out = []
    for g in np.asarray(grads, np.float64):
        v = mu * v + g
        w = w - lr * (g + mu * v if nesterov else v)
        out.append(w)
    return np.stack(out)


def adagrad(w: Array, grads: Array, lr: float, eps: float, eps_inside_sqrt: bool, initial_accumulator: float = 0.0) -> Array:
    """acc = initial + sum of g^2 so far; w -= lr g / denom(acc), epsilon inside or outside the square root."""
    w = np.asarray(w, np.float64).copy()
    acc = np.full_like(w, initial_accumulator)
    out = []
    for g in np.asarray(grads, np.float64):
        acc = acc + g * g
        denom = np.sqrt(acc + eps) if eps_inside_sqrt else np.sqrt(acc) + eps
        w = w - lr * g / denom
        out.append(w)
    return np.stack(out)


def adadelta(w: Array, grads: Array, lr: float, rho: float, eps: float, lr_in_accumulator: bool = False) -> Array:
    """Adadelta (Zeiler 2012) with a learning rate. The paper has none (lr 1); frameworks that add one scale the
    applied step by it and accumulate the unscaled delta (lr_in_accumulator False), or accumulate the scaled step
    (True). With lr 1 the two agree, so only a case with lr != 1 tells which one a framework follows."""
    w = np.asarray(w, np.float64).copy()
    acc_g = np.zeros_like(w)
    acc_d = np.zeros_like(w)
    out = []
    for g in np.asarray(grads, np.float64):
        acc_g = rho * acc_g + (1 - rho) * g * g
        delta = np.sqrt(acc_d + eps) / np.sqrt(acc_g + eps) * g
        step = lr * delta
        acc_d = rho * acc_d + (1 - rho) * (step * step if lr_in_accumulator else delta * delta)
        w = w - step
        out.append(w)
    return np.stack(out)


def rmsprop(w: Array, grads: Array, lr: float, rho: float, eps: float, eps_inside_sqrt: bool) -> Array:
    """Plain (uncentred, no momentum) RMSprop: v = rho v + (1 - rho) g^2; w -= lr g / denom(v)."""
    w = np.asarray(w, np.float64).copy()
    v = np.zeros_like(w)
    out = []
    for g in np.asarray(grads, np.float64):
        v = rho * v + (1 - rho) * g * g
        denom = np.sqrt(v + eps) if eps_inside_sqrt else np.sqrt(v) + eps
        w = w - lr * g / denom
        out.append(w)
    return np.stack(out)


def adam(
    w: Array, grads: Array, lr: float, b1: float, b2: float, eps: float, eps_hat: bool, weight_decay: float = 0.0
) -> Array:
    """Adam, and AdamW when weight_decay > 0 (decoupled: w -= lr * weight_decay * w before the Adam step).

    eps_hat=False: w -= lr * m_hat / (sqrt(v_hat) + eps)                       (the paper's algorithm 1)
    eps_hat=True:  w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)   (the paper's "efficient" form,
                   used by TensorFlow/Keras; it differs from the first by where epsilon sits)
    """
    w = np.asarray(w, np.float64).copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    out = []
    for t, g in enumerate(np.asarray(grads, np.float64), start=1):
        w = w - lr * weight_decay * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if eps_hat:
            w = w - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
        else:
            w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        out.append(w)
    return np.stack(out)
