"""Graph probes: how a framework builds its computation graph, decided by what runs.

- define_by_run: the catalog's `concrete_read` program (a Python while on computed values, then a concrete number
  read in the middle of the computation and used in Python to pick a factor and a branch) run through the
  adapter's eager gradient, twice on each of two inputs that take different paths. Dynamic = the Python ran on every
  call, the number read was a real Python number equal to the reference's, and value and gradient agree. A
  framework that traces inside its gradient call cannot read the number (a tracer is not a float) or does not run
  the Python again (a cached trace), so it does not score as dynamic.
- compiled: the control-flow-free `static_mlp` through each of the framework's compile paths: compile time (first
  call minus a steady call), agreement, then a new input shape (recompiled, reused, or failed).
- compiled_control_flow: `control_flow` through each compile path: does the compiler take value-dependent Python
  control flow (by rewriting it, by falling back to Python, or not at all)?
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from harness.adapter import Adapter, CompiledFunction, Unsupported
from harness.catalog import graphs as g
from harness.probes import Context, Outcome
from harness.probes.agreement import agree
from harness.results import Status, error_line

GRAPH_PROBES = ("define_by_run", "compiled", "compiled_control_flow")
FIRST_SHAPE, NEW_SHAPE = 8, 5


def run(adapter: Adapter, name: str, ctx: Context) -> Outcome:
    if name == "define_by_run":
        return _define_by_run(adapter)
    if name == "compiled":
        return _per_path(adapter, _compiled_static, "compiles the static program")
    if name == "compiled_control_flow":
        return _per_path(adapter, _compiled_control_flow, "takes value-dependent control flow")
    raise KeyError(f"unknown graph probe {name!r}")


def _check(value: float, grad: Any, args: Sequence[np.ndarray], fn: Callable[..., Any]) -> dict[str, Any]:
    ref_value, ref_grad = g.reference_value_and_grad(fn, args)
    v = agree(np.asarray(value, dtype=np.float64).reshape(()), np.asarray(ref_value), g.GRAPH_RTOL, g.GRAPH_ATOL)
    d = agree(grad, ref_grad, g.GRAPH_RTOL, g.GRAPH_ATOL)
    return {"ok": v.ok and d.ok, "value": v.as_dict(), "grad": d.as_dict()}


def _timed(call: Callable[[], tuple[float, Any]]) -> tuple[float, Any, float]:
    t0 = time.perf_counter()
    value, grad = call()
    return value, grad, time.perf_counter() - t0


def _define_by_run(adapter: Adapter) -> Outcome:
    """The concrete_read program through the adapter's eager gradient, twice per input. Dynamic means: each call
    ran the Python (the program noted a value each time), the value read in the middle was a real Python number
    equal to the reference's, and the value and gradient agree with the reference."""
    results = []
    for inp in g.control_flow_inputs():
        ref_seen: list[Any] = []
        ref_value, ref_grad = g.reference_value_and_grad(_program(ref_seen), inp.args)
        expected_read = ref_seen[0]
        seen: list[Any] = []
        entry: dict[str, Any] = {"input": inp.label, "expected_read": expected_read}
        try:
            value, grad, first = _timed(partial(adapter.value_and_grad, _program(seen), inp.args))
            after_first = len(seen)
            _, _, second = _timed(partial(adapter.value_and_grad, _program(seen), inp.args))
        except Exception as exc:
            entry.update(ok=False, problem=f"the program cannot run eagerly with its gradient: {_short(exc)}", reads=_reads(seen))
            results.append(entry)
            continue
        runs = [after_first, len(seen) - after_first]
        v = agree(np.asarray(value, dtype=np.float64).reshape(()), np.asarray(ref_value), g.GRAPH_RTOL, g.GRAPH_ATOL)
        d = agree(grad, ref_grad, g.GRAPH_RTOL, g.GRAPH_ATOL)
        reads_ok = bool(seen) and all(_is_number(r) and abs(float(r) - expected_read) <= 1e-5 * max(1.0, abs(expected_read)) for r in seen)
        problems = []
        if min(runs) < 1:
            problems.append(f"the Python ran {runs[0]} and {runs[1]} times in two calls: the gradient call replays a trace")
        if not reads_ok:
            problems.append(f"the value read mid-computation was {_reads(seen)}, not the Python number {expected_read:.6g}")
        if not v.ok or not d.ok:
            problems.append(f"value/gradient disagree with the reference ({v.problem or d.problem})")
        entry.update(ok=not problems, problem="; ".join(problems), executions_per_call=runs, reads=_reads(seen),
                     first_call_s=first, second_call_s=second, value=v.as_dict(), grad=d.as_dict())
        results.append(entry)
    data = {"program": "concrete_read", "mode": "eager", "inputs": results, "notes": adapter.graph_notes(),
            "rule": "dynamic = every call runs the Python, reads a concrete number mid-computation, branches on it, "
                    "and the gradient through it agrees with the reference"}
    if all(r["ok"] for r in results):
        return Outcome(Status.OK, "", data)
    bad = next(r for r in results if not r["ok"])
    return Outcome(Status.FAILED, f"{bad['input']}: {bad['problem']}"[:900], data)


def _program(seen: list[Any]) -> Callable[..., Any]:
    """concrete_read with its log of the values it read."""
    return lambda F, x: g.concrete_read(F, x, seen)


def _is_number(value: Any) -> bool:
    return isinstance(value, (float, int)) and not isinstance(value, bool)


def _reads(seen: list[Any]) -> list[Any]:
    return [float(r) if _is_number(r) else f"<{type(r).__module__}.{type(r).__name__}>" for r in seen[:6]]


def _per_path(adapter: Adapter, probe: Callable[[Adapter, str], dict[str, Any]], what: str) -> Outcome:
    paths = adapter.compile_paths()
    if not paths:  # the framework's gap only with the evidence of what was looked up; otherwise the adapter's
        raise Unsupported(f"{adapter.name} offers no compile or symbolic-graph path", looked_up=adapter.compile_path_lookups())
    results: dict[str, Any] = {}
    for path in paths:
        try:
            results[path] = probe(adapter, path)
        except Unsupported as exc:
            results[path] = {"ok": False, "outcome": "unsupported", "error": str(exc)}
        except Exception as exc:
            results[path] = {"ok": False, "outcome": "error", "error": _short(exc)}
    data = {"paths": results, "working_paths": [p for p, r in results.items() if r["ok"]]}
    if data["working_paths"]:
        return Outcome(Status.OK, "", data)
    return Outcome(Status.FAILED, f"no compile path {what}: " + "; ".join(f"{p}: {r.get('error') or r.get('outcome')}" for p, r in results.items()), data)


def _short(exc: BaseException) -> str:
    return error_line(exc, 500)


def _compiled_static(adapter: Adapter, path: str) -> dict[str, Any]:
    compiled: CompiledFunction = adapter.compile(g.static_mlp, path)
    first_in = g.static_mlp_inputs(FIRST_SHAPE)
    value, grad, first_call = _timed(lambda: compiled.call(first_in.args))
    check = _check(value, grad, first_in.args, g.static_mlp)
    steady = [_timed(lambda: compiled.call(first_in.args))[2] for _ in range(5)]
    steady_s = statistics.median(steady)
    traces_before = compiled.traces()
    new_in = g.static_mlp_inputs(NEW_SHAPE)
    result: dict[str, Any] = {
        "ok": check["ok"], "first_call_s": first_call, "steady_call_s": steady_s,
        "compile_s": max(first_call - steady_s, 0.0), "agreement": check,
    }
    try:
        v2, g2, new_call = _timed(lambda: compiled.call(new_in.args))
        traces_after = compiled.traces()
        new_check = _check(v2, g2, new_in.args, g.static_mlp)
        if traces_before is not None and traces_after is not None:
            outcome = "recompiled" if traces_after > traces_before else "reused"
            evidence = f"trace count {traces_before} -> {traces_after}"
        else:
            outcome = "recompiled" if new_call > 5 * steady_s + 0.005 else "reused"
            evidence = f"new-shape call {new_call:.4f}s vs steady {steady_s:.4f}s"
        if not new_check["ok"]:
            outcome = "wrong result"
        result["new_shape"] = {"outcome": outcome, "evidence": evidence, "call_s": new_call, "agreement": new_check}
    except Exception as exc:
        result["new_shape"] = {"outcome": "failed", "error": _short(exc)}
    result["outcome"] = "compiled" if check["ok"] else "wrong result"
    result["notes"] = compiled.notes
    return result


def _compiled_control_flow(adapter: Adapter, path: str) -> dict[str, Any]:
    compiled = adapter.compile(g.control_flow, path)
    per_input = []
    for inp in g.control_flow_inputs():
        try:
            value, grad, call_s = _timed(partial(compiled.call, inp.args))
            per_input.append({"input": inp.label, "call_s": call_s, **_check(value, grad, inp.args, g.control_flow)})
        except Exception as exc:
            per_input.append({"input": inp.label, "ok": False, "error": _short(exc)})
    ok = all(r["ok"] for r in per_input)
    err = next((r.get("error") for r in per_input if not r["ok"]), None)
    outcome = "handled" if ok else ("wrong result" if err is None else "rejected")
    return {"ok": ok, "outcome": outcome, "inputs": per_input, "error": err, "notes": compiled.notes}
