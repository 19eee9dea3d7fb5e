"""The numerics sample: common NumPy functions, called by their NumPy names on the framework's array namespace.

The 2018 rubric's Numerics criterion asked how usable a framework's array library is next to NumPy. The suite
measures the "ease of use" part: each function below is looked up by its NumPy name (a dotted path such as
"linalg.inv") on the namespace the adapter names, called as NumPy would be called, and compared with NumPy. A
function that exists under another name or with other defaults does not count: a NumPy user would trip on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class NumericsCase:
    group: str
    name: str  # the NumPy name, dotted under the namespace
    inputs: tuple[str, ...]  # names of the fixed arrays below passed as positional arguments (converted first)
    kwargs: tuple[tuple[str, Any], ...] = ()
    literal: tuple[Any, ...] = ()  # plain Python arguments appended after the arrays


def arrays() -> dict[str, Array]:
    rng = np.random.default_rng(2018)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    m = (rng.standard_normal((3, 3)) + 3 * np.eye(3)).astype(np.float32)
    return {
        "a": a, "b": rng.standard_normal((3, 4)).astype(np.float32), "row": rng.standard_normal(4).astype(np.float32),
        "pos": np.abs(a) + 0.5, "m": m, "v": rng.standard_normal(3).astype(np.float32),
        "idx": np.array([2, 0, 1], dtype=np.int64), "mask": a > 0, "bt": rng.standard_normal((4, 2)).astype(np.float32),
    }


def _c(group: str, name: str, *inputs: str, literal: tuple[Any, ...] = (), **kwargs: Any) -> NumericsCase:
    return NumericsCase(group, name, inputs, tuple(sorted(kwargs.items())), literal)


CASES: tuple[NumericsCase, ...] = (
    # creation
    _c("creation", "zeros", literal=((2, 3),)), _c("creation", "ones", literal=((2, 3),)),
    _c("creation", "full", literal=((2, 2), 7.0)), _c("creation", "eye", literal=(3,)),
    _c("creation", "arange", literal=(0, 10, 2)), _c("creation", "linspace", literal=(0.0, 1.0, 5)),
    _c("creation", "zeros_like", "a"), _c("creation", "ones_like", "a"),
    # elementwise
    _c("elementwise", "add", "a", "b"), _c("elementwise", "multiply", "a", "b"), _c("elementwise", "exp", "a"),
    _c("elementwise", "log", "pos"), _c("elementwise", "sqrt", "pos"), _c("elementwise", "sin", "a"),
    _c("elementwise", "tanh", "a"), _c("elementwise", "abs", "a"), _c("elementwise", "maximum", "a", "b"),
    _c("elementwise", "clip", "a", literal=(-0.5, 0.5)), _c("elementwise", "where", "mask", "a", "b"),
    _c("elementwise", "power", "pos", literal=(2.0,)),
    # reductions
    _c("reductions", "sum", "a"), _c("reductions", "mean", "a", axis=0), _c("reductions", "max", "a", axis=1),
    _c("reductions", "argmax", "a", axis=1), _c("reductions", "std", "a"), _c("reductions", "var", "a", axis=0),
    _c("reductions", "cumsum", "a", axis=1), _c("reductions", "prod", "pos", axis=0),
    # linear algebra
    _c("linalg", "matmul", "a", "bt"), _c("linalg", "dot", "v", "v"), _c("linalg", "einsum", "a", "bt", literal=()),
    _c("linalg", "linalg.inv", "m"), _c("linalg", "linalg.det", "m"), _c("linalg", "linalg.norm", "a"),
    _c("linalg", "linalg.solve", "m", "v"), _c("linalg", "outer", "v", "v"),
    # indexing and shape
    _c("indexing", "reshape", "a", literal=((4, 3),)), _c("indexing", "transpose", "a"),
    _c("indexing", "concatenate", "a", "b", axis=0), _c("indexing", "stack", "a", "b", axis=0),
    _c("indexing", "take", "a", "idx", axis=1), _c("indexing", "expand_dims", "a", axis=0),
    _c("indexing", "squeeze", "a", literal=()), _c("indexing", "flip", "a", axis=1),
    # broadcasting
    _c("broadcasting", "broadcast_to", "row", literal=((3, 4),)), _c("broadcasting", "add", "a", "row"),
    _c("broadcasting", "subtract", "a", "row"),
)

#: functions whose NumPy call shape is special: they take a sequence, or a subscripts string first
SEQUENCE_ARG = {"concatenate", "stack"}
SUBSCRIPTS = {"einsum": "ij,jk->ik"}


def call(ns: Any, case: NumericsCase, convert: Callable[[Array], Any], data: dict[str, Array]) -> Any:
    """Call case.name on namespace `ns` the way NumPy would be called."""
    fn = ns
    for part in case.name.split("."):
        fn = getattr(fn, part)
    args = [convert(data[n]) for n in case.inputs]
    kwargs = dict(case.kwargs)
    if case.name in SEQUENCE_ARG:
        return fn(args, **kwargs)
    if case.name in SUBSCRIPTS:
        return fn(SUBSCRIPTS[case.name], *args, **kwargs)
    return fn(*args, *case.literal, **kwargs)


GROUPS = tuple(dict.fromkeys(c.group for c in CASES))
RTOL, ATOL = 1e-4, 1e-5
