"""The programs of the graph probes, written once against a tiny namespace `F` (sum, tanh, matmul).

`control_flow` loops and branches on values it computes, the way define-by-run code does: a framework whose eager
mode builds the graph as it runs gets the right value and gradient for inputs that take different paths; a
framework that needs a graph before it runs cannot evaluate the Python `while`/`if` on a tensor without its
compile step rewriting them. `static_mlp` has no data-dependent control flow: every compile path should take it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray


def control_flow(F: Any, x: Any) -> Any:
    """Double x until its squared norm reaches 50, then take a branch on the sign of its sum."""
    y = x
    while F.sum(y * y) < 50.0:
        y = y * 2.0
    if F.sum(y) > 0.0:
        z = F.sum(y * y * y)
    else:
        z = F.sum(F.tanh(y))
    return z


def concrete_read(F: Any, x: Any, seen: list[Any]) -> Any:
    """The define-by-run program: control flow on computed values, then a concrete Python number read in the middle
    of the computation (F.item), kept in `seen` and used in plain Python arithmetic that picks the factor and the
    branch. Only a framework that runs the Python as written, value by value, can do this and still differentiate
    the result; a tracer cannot become a Python float, and a cached trace would not run the Python again."""
    y = x
    while F.sum(y * y) < 50.0:
        y = y * 2.0
    s = F.item(F.sum(y))
    seen.append(s)
    k = 2 + int(abs(float(s))) % 3
    if s > 0.0:
        return F.sum(y * y * y) * float(k)
    return F.sum(F.tanh(y)) * float(k)


def static_mlp(F: Any, x: Any, w1: Any, w2: Any) -> Any:
    return F.sum(F.tanh(F.matmul(F.tanh(F.matmul(x, w1)), w2)))


class NumpyNamespace:
    """`F` for the reference: the programs run on float64 NumPy arrays."""

    sum = staticmethod(np.sum)
    tanh = staticmethod(np.tanh)
    matmul = staticmethod(np.matmul)
    item = staticmethod(float)


def reference_value_and_grad(fn: Callable[..., Any], args: Sequence[Array], h: float = 1e-6) -> tuple[float, Array]:
    """Value and gradient w.r.t. args[0] by central differences in float64 (the programs are smooth where used)."""
    a64 = [np.asarray(a, np.float64) for a in args]
    value = float(fn(NumpyNamespace, *a64))
    x = a64[0]
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        grad[idx] = (fn(NumpyNamespace, up, *a64[1:]) - fn(NumpyNamespace, down, *a64[1:])) / (2 * h)
    return value, grad


@dataclass(frozen=True)
class GraphInput:
    label: str
    args: tuple[Array, ...]


def control_flow_inputs() -> list[GraphInput]:
    """Two inputs taking different paths: positive (3 doublings, cubic branch) and negative (tanh branch)."""
    rng = np.random.default_rng(7)
    pos = np.abs(rng.standard_normal(6)).astype(np.float32) * 0.6
    neg = -np.abs(rng.standard_normal(6)).astype(np.float32) * 1.5
    return [GraphInput("positive-sum path", (pos,)), GraphInput("negative-sum path", (neg,))]


def static_mlp_inputs(batch: int) -> GraphInput:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((batch, 16)).astype(np.float32)
    w1 = (rng.standard_normal((16, 32)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((32, 8)) * 0.3).astype(np.float32)
    return GraphInput(f"batch {batch}", (x, w1, w2))


GRAPH_RTOL = 1e-4
GRAPH_ATOL = 1e-4
