"""Numeric agreement between a framework's output and a reference, stated the same way everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Agreement:
    ok: bool
    max_abs_err: float | None
    max_rel_err: float | None
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "max_abs_err": self.max_abs_err, "max_rel_err": self.max_rel_err, "problem": self.problem}


def to_array(value: Any) -> np.ndarray | None:
    try:
        arr = np.asarray(value)
    except Exception:
        return None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        return None
    return arr


def agree(actual: Any, expected: np.ndarray, rtol: float, atol: float) -> Agreement:
    """|actual - expected| <= atol + rtol * |expected| everywhere, with matching shapes and finite values."""
    arr = to_array(actual)
    if arr is None:
        return Agreement(False, None, None, f"not a numeric array ({type(actual).__name__})")
    expected = np.asarray(expected, dtype=np.float64)
    if arr.shape != expected.shape:
        return Agreement(False, None, None, f"shape {tuple(arr.shape)}, expected {tuple(expected.shape)}")
    arr64 = arr.astype(np.float64)
    if not np.all(np.isfinite(arr64)):
        return Agreement(False, None, None, f"{int((~np.isfinite(arr64)).sum())} non-finite values")
    diff = np.abs(arr64 - expected)
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float((diff / np.maximum(np.abs(expected), 1e-12)).max()) if diff.size else 0.0
    ok = bool(np.all(diff <= atol + rtol * np.abs(expected)))
    return Agreement(ok, max_abs, max_rel, "" if ok else f"max abs error {max_abs:.3g} over tolerance (rtol {rtol:g}, atol {atol:g})")
