"""Numerics probes: how much of NumPy's API the framework's array namespace offers (called by NumPy's names, with
NumPy's arguments, compared with NumPy), and whether arrays cross to and from NumPy without a copy (DLPack).

coverage: every function of harness.catalog.numerics: agrees, disagrees (exists, different result or defaults),
missing, or raises; the ease-of-use score is 5 x the share that agrees.
interop: NumPy -> framework through the framework's DLPack importer, framework -> NumPy through np.from_dlpack, and
a write through the NumPy side seen by the framework: zero copy in both directions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.adapter import Adapter, Unsupported
from harness.catalog import numerics as cat
from harness.probes import Context, Outcome
from harness.probes.agreement import agree, to_array
from harness.results import Status, error_line

NUMERICS_PROBES = ("coverage", "interop")


def numpy_itself(api: Any) -> str | None:
    """Why the framework's array namespace is NumPy's own (so NumPy's score would be credited to it), or None."""
    module = getattr(api.namespace, "__name__", "") or getattr(type(api.namespace), "__module__", "")
    if module == "numpy" or module.startswith("numpy."):
        return f"{api.name}'s array namespace is NumPy itself ({module})"
    try:
        sample = api.from_numpy(np.ones(2, np.float32))
    except Exception:
        return None
    if type(sample) is np.ndarray:
        return f"{api.name}'s arrays are plain numpy.ndarray on this device (from_numpy returns one)"
    return None


def run(adapter: Adapter, name: str, ctx: Context) -> Outcome:
    api = adapter.array_api()
    same = numpy_itself(api)
    if same is not None:
        # measuring NumPy and crediting the framework with it would say nothing about the framework
        raise Unsupported(f"{same}: the NumPy sample would measure NumPy, not {adapter.name}; not measured",
                          looked_up=[f"{api.name} array namespace on {ctx.device}"])
    if name == "coverage":
        return _coverage(api)
    if name == "interop":
        return _interop(api)
    raise KeyError(f"unknown numerics probe {name!r}")


def _coverage(api: Any) -> Outcome:
    data = cat.arrays()
    results: dict[str, dict[str, Any]] = {}
    for case in cat.CASES:
        key = f"{case.group}/{case.name}"
        expected = np.asarray(cat.call(np, case, lambda a: a, data))
        try:
            got = cat.call(api.namespace, case, api.from_numpy, data)
        except AttributeError as exc:
            results[key] = {"group": case.group, "outcome": "missing", "detail": error_line(exc, 200)}
            continue
        except Exception as exc:  # a function that exists but cannot be called NumPy's way
            results[key] = {"group": case.group, "outcome": "raises", "detail": error_line(exc, 200)}
            continue
        try:
            arr = to_array(api.to_numpy(got))
        except Exception as exc:
            arr = None
            detail = error_line(exc, 200)
        else:
            detail = ""
        if arr is None:
            results[key] = {"group": case.group, "outcome": "disagrees", "detail": detail or "not an array"}
            continue
        ok = agree(arr.astype(np.float64), expected.astype(np.float64), cat.RTOL, cat.ATOL)
        results[key] = {"group": case.group, "outcome": "agrees" if ok.ok else "disagrees", "detail": ok.problem}
    agreeing = sum(1 for r in results.values() if r["outcome"] == "agrees")
    per_group = {g: {o: sum(1 for r in results.values() if r["group"] == g and r["outcome"] == o)
                     for o in ("agrees", "disagrees", "missing", "raises")} for g in cat.GROUPS}
    data_out = {"namespace": api.name, "functions": results, "agrees": agreeing, "total": len(results),
                "per_group": per_group, "ease_of_use": round(5.0 * agreeing / len(results), 2)}
    return Outcome(Status.OK, "", data_out)


def _interop(api: Any) -> Outcome:
    source = np.arange(12, dtype=np.float32).reshape(3, 4)
    out: dict[str, Any] = {"namespace": api.name}
    native = None
    if api.from_dlpack is None:
        out["numpy_to_framework"] = {"zero_copy": False, "detail": "no DLPack importer"}
    else:
        try:
            try:
                native = api.from_dlpack(source)
            except Exception:
                native = api.from_dlpack(source.__dlpack__())  # importers that take a capsule
            source[0, 0] = 42.0  # a write on the NumPy side...
            seen = float(np.asarray(api.to_numpy(native))[0, 0])
            out["numpy_to_framework"] = {"zero_copy": seen == 42.0, "detail": "" if seen == 42.0 else "the framework array is a copy"}
        except Exception as exc:
            out["numpy_to_framework"] = {"zero_copy": False, "detail": error_line(exc, 200)}
    fw = native if native is not None else api.from_numpy(np.ones((3, 4), np.float32))
    if isinstance(fw, np.ndarray):  # the framework computes on NumPy arrays themselves: nothing to convert
        shared = native is not None and np.shares_memory(fw, source)
        out["framework_to_numpy"] = {"dlpack": None, "zero_copy": bool(shared), "detail": "the framework's arrays are NumPy arrays"}
    else:
        try:
            back = np.from_dlpack(fw)
            shared = native is not None and back.__array_interface__["data"][0] == source.__array_interface__["data"][0]
            out["framework_to_numpy"] = {"dlpack": True, "zero_copy": bool(shared),
                                         "detail": "" if shared else "np.from_dlpack works; memory sharing not shown"}
        except Exception as exc:
            out["framework_to_numpy"] = {"dlpack": False, "zero_copy": False, "detail": error_line(exc, 200)}
    out["zero_copy_both_ways"] = bool(out["numpy_to_framework"]["zero_copy"] and out["framework_to_numpy"]["zero_copy"])
    return Outcome(Status.OK, "", out)
