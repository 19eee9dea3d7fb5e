"""Throughput probe: one catalog workload, eager or compiled, checked and then timed by harness.timing.

1. The first call of the step runs from the catalog's initial parameters (for a compiled step it includes tracing
   and compilation: its time is the compile time plus one step).
2. What it computed is compared with the workload's float64 reference: the loss and every parameter after the SGD
   update (training workloads), or the output (single ops). A step that disagrees is `failed` and is not timed:
   a figure is only ever reported for code that computes the right thing.
3. A compiled step must have captured a graph: a compile path whose trace count is still 0 ran eagerly, and is
   `failed` (flagged), not reported as compiled.
4. Then the timing protocol; compile time = first call - steady-state median.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.adapter import COMPILE_SCOPES, Adapter
from harness.catalog.workloads import LOSS_RTOL, OUTPUT_RTOL, UPDATE_RTOL, WORKLOADS_BY_ID, WorkloadSpec
from harness.probes import Context, Outcome
from harness.probes.agreement import to_array
from harness.results import Status, error_line
from harness.timing import CLOCK, measure


def run(adapter: Adapter, entry: str, ctx: Context) -> Outcome:
    workload_id, _, mode = entry.partition("/")
    spec = WORKLOADS_BY_ID[workload_id]
    if mode not in ("eager", "compiled"):
        raise KeyError(f"unknown throughput mode {mode!r}")
    arrays = spec.arrays(ctx.device)
    built = adapter.workload(spec, arrays, mode)
    expected = spec.param_count(ctx.device)
    scope = built.compile_scope if mode == "compiled" else None
    data: dict[str, Any] = {
        "workload": spec.id, "mode": mode, "compile_path": built.compile_path, "compile_scope": scope,
        "compile_scope_means": COMPILE_SCOPES.get(scope or "", None),
        "sizes": spec.sizes(ctx.device), "dtype": "float32",
        "param_count": built.param_count, "expected_param_count": expected,
        "param_count_matches": built.param_count == expected, "notes": built.notes,
    }
    if mode == "compiled" and scope not in COMPILE_SCOPES:
        return Outcome(Status.ERROR, f"the adapter states no valid compile scope ({scope!r}); one of {', '.join(COMPILE_SCOPES)}", data)

    built.sync()
    t0 = CLOCK()
    result = built.step()
    built.sync()
    first_call_s = CLOCK() - t0
    data["first_call_s"] = first_call_s
    check = first_step_check(spec, ctx.device, arrays, built.observe, result)
    data["first_step"] = check
    if not check["ok"]:
        return Outcome(Status.FAILED, f"the first step disagrees with the float64 reference: {check['problem']}; not timed", data)

    if mode == "compiled":
        captured = built.traces()
        data["graphs_captured"] = captured
        if captured == 0:
            return Outcome(Status.FAILED, f"{built.compile_path} captured no graph (trace count 0): the step ran eagerly; "
                                          "flagged, not reported as compiled", data)
        if captured is None:
            data["notes"] = [*built.notes, "the compile path cannot report a trace count: graph capture not verified"]

    m = measure(built.step, built.sync, ctx.timing)
    flops = spec.flops(ctx.device)
    data.update({
        "compile_s": max(first_call_s - m.median_s, 0.0) if mode == "compiled" else None,
        "flops_per_step": flops, "flops_per_s": flops / m.median_s if m.median_s > 0 else None,
        "steps_per_s": 1.0 / m.median_s if m.median_s > 0 else None,
        "timing": m.as_dict(),
    })
    return Outcome(Status.OK, "", data)


def _rel_norm(got: np.ndarray, want: np.ndarray) -> float:
    scale = float(np.linalg.norm(want))
    return float(np.linalg.norm(got - want)) / (scale if scale > 0 else 1.0)


def first_step_check(spec: WorkloadSpec, device: str, arrays: dict[str, np.ndarray], observe: Any, result: Any) -> dict[str, Any]:
    """Compare what the first step computed with the float64 reference (see the module docstring)."""
    out: dict[str, Any] = {"checked": True, "ok": False, "reference": "float64 NumPy (harness.catalog.reference_models)"}
    if observe is None:
        out["problem"] = "the adapter gives no way to read what the step computed (Workload.observe)"
        return out
    try:
        got = observe(result)
    except Exception as exc:
        out["problem"] = f"reading the step's results raised {error_line(exc, 300)}"
        return out
    ref = spec.first_step(device)
    problems: list[str] = []
    if spec.kind == "train":
        out["tolerances"] = {"loss_rtol": LOSS_RTOL, "update_rtol": UPDATE_RTOL}
        loss = to_array(got.get("loss"))
        if loss is None or loss.size != 1 or not np.isfinite(loss).all():
            problems.append(f"loss is {got.get('loss')!r}, not a finite scalar")
        else:
            err = abs(float(loss.reshape(())) - ref["loss"]) / abs(ref["loss"])
            out["loss"] = {"framework": float(loss.reshape(())), "reference": ref["loss"], "rel_err": err}
            if err > LOSS_RTOL:
                problems.append(f"loss {float(loss.reshape(())):.6g} vs {ref['loss']:.6g} (relative error {err:.2g} > {LOSS_RTOL:g})")
        params: dict[str, Any] = {}
        for name in spec.parameters(device):
            before = arrays[name].astype(np.float64)
            value = to_array(got.get(name))
            if value is None or value.shape != before.shape:
                shape = None if value is None else tuple(value.shape)
                problems.append(f"parameter {name}: {'not returned' if value is None else f'shape {shape}, expected {before.shape}'}")
                continue
            err = _rel_norm(value.astype(np.float64) - before, ref[name] - before)
            params[name] = {"update_rel_err": err}
            if not np.isfinite(err) or err > UPDATE_RTOL:
                problems.append(f"parameter {name} after the update: relative error of the update {err:.2g} > {UPDATE_RTOL:g}")
        out["parameters"] = params
    else:
        out["tolerances"] = {"output_rtol": OUTPUT_RTOL}
        y = to_array(got.get("y"))
        if y is None or y.shape != ref["y"].shape:
            problems.append("output " + ("not returned" if y is None else f"shape {tuple(y.shape)}, expected {ref['y'].shape}"))
        else:
            err = _rel_norm(y.astype(np.float64), ref["y"])
            out["output"] = {"rel_err": err}
            if not np.isfinite(err) or err > OUTPUT_RTOL:
                problems.append(f"output relative error {err:.2g} > {OUTPUT_RTOL:g}")
    out["ok"] = not problems
    if problems:
        out["problem"] = "; ".join(problems)[:900]
    return out
