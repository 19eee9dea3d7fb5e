"""Throughput probe: one catalog workload, eager or compiled, checked and then timed by harness.timing.

1. The first call of the step runs from the catalog's initial parameters (for a compiled step it includes tracing
   and compilation: its time is the compile time plus one step).
2. What it computed is compared with the workload's float64 reference: the loss and every parameter after the SGD
   update (training workloads), or the output (single ops); then the second step, the same way (a compile path that
   traces on the first call replays its graph from the second: a replay that computes something else is caught).
   A step that disagrees is `failed` and is not timed: a figure is only ever reported for code that computes the
   right thing. Tolerances: loss 1e-4 relative; each parameter within 1e-3 of its update plus 2 float32 ulps of
   its norm (harness.catalog.workloads); single-op outputs 1e-4 relative in norm.
3. A compiled step must have captured a graph: a compile path whose trace count is still 0 ran eagerly, and is
   `failed` (flagged), not reported as compiled.
4. Then the timing protocol; compile time = first call - steady-state median.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.adapter import COMPILE_SCOPES, PRECISIONS, Adapter
from harness.catalog.workloads import (
    PARAM_ROUNDING,
    SENSITIVITY_FACTOR,
    TOLERANCES,
    WORKLOADS_BY_ID,
    ZERO_UPDATE_FLOOR,
    WorkloadSpec,
)
from harness.probes import Context, Outcome
from harness.probes.agreement import to_array
from harness.results import Status, error_line
from harness.timing import CLOCK, measure


def _build(adapter: Adapter, spec: WorkloadSpec, device: str, mode: str, precision: str, check: bool) -> tuple[Any, dict[str, Any]]:
    arrays = spec.arrays(device, check=check)
    if spec.kind == "train":
        model = spec.check_model(device) if check else spec.model(device)
        return adapter.model_workload(model, arrays, mode, precision), arrays
    return adapter.workload(spec, arrays, mode, precision), arrays


def run(adapter: Adapter, entry: str, ctx: Context) -> Outcome:
    workload_id, mode, *rest = entry.split("/")
    precision = rest[0] if rest else "fp32"
    spec = WORKLOADS_BY_ID[workload_id]
    if mode not in ("eager", "compiled"):
        raise KeyError(f"unknown throughput mode {mode!r}")
    if precision not in PRECISIONS:
        raise KeyError(f"unknown precision {precision!r}")
    separate_check = spec.kind == "train" and spec.check_model(ctx.device) is not spec.model(ctx.device)
    built, arrays = _build(adapter, spec, ctx.device, mode, precision, check=True)
    if built.precision != precision:
        return Outcome(Status.ERROR, f"asked for {precision}, the adapter built {built.precision}", {"precision": built.precision})
    expected = spec.param_count(ctx.device)
    scope = built.compile_scope if mode == "compiled" else None
    data: dict[str, Any] = {
        "workload": spec.id, "mode": mode, "precision": precision, "precision_means": PRECISIONS[precision],
        "compile_path": built.compile_path, "compile_scope": scope, "compile_scope_means": COMPILE_SCOPES.get(scope or "", None),
        "sizes": spec.sizes(ctx.device), "dtype": "float32" if precision != "bf16" else "float32 parameters, bfloat16 compute",
        "expected_param_count": expected, "notes": built.notes,
    }
    if mode == "compiled" and scope not in COMPILE_SCOPES:
        return Outcome(Status.ERROR, f"the adapter states no valid compile scope ({scope!r}); one of {', '.join(COMPILE_SCOPES)}", data)

    references = spec.reference_steps(ctx.device)
    sensitivity = spec.sensitivity(ctx.device)
    checks: list[dict[str, Any]] = []
    first_call_s = 0.0
    for index, reference in enumerate(references):
        built.sync()
        t0 = CLOCK()
        result = built.step()
        built.sync()
        if index == 0:
            first_call_s = CLOCK() - t0
        check = step_check(spec, ctx.device, arrays, built.observe, result, reference, precision, check=True,
                           sensitivity=sensitivity)
        check["step"] = index + 1
        checks.append(check)
        if not check["ok"]:
            break
    data["first_step"] = {"checked": True, "ok": all(c["ok"] for c in checks), "steps": checks,
                          "reference": "float64 NumPy (harness.catalog.reference_models)",
                          "tolerances": TOLERANCES[precision], "precision": precision,
                          "float32_sensitivity": sensitivity or None, "sensitivity_factor": SENSITIVITY_FACTOR}
    if separate_check:
        checked = spec.check_model(ctx.device)
        data["first_step"]["size"] = (f"checked at input {list(checked.input_shape)}, the same model built by the same "
                                      f"adapter code; timed at input {list(spec.model(ctx.device).input_shape)}")
    bad = next((c for c in checks if not c["ok"]), None)
    if bad is not None:
        data["param_count"] = built.param_count
        which = "first step" if bad["step"] == 1 else f"step {bad['step']} (the first one agreed)"
        return Outcome(Status.FAILED, f"the {which} disagrees with the float64 reference: {bad['problem']}; not timed", data)

    if separate_check:  # the timed size, built afresh: its own first call holds its compile time
        built, _ = _build(adapter, spec, ctx.device, mode, precision, check=False)
        built.sync()
        t0 = CLOCK()
        built.step()
        built.sync()
        first_call_s = CLOCK() - t0
    data["first_call_s"] = first_call_s
    data["param_count"] = built.param_count
    data["param_count_matches"] = built.param_count == expected

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
        "items_per_s": spec.model(ctx.device).input_shape[0] / m.median_s if spec.kind == "train" and m.median_s > 0 else None,
        "peak_memory_bytes": built.peak_memory(),
        "timing": m.as_dict(),
    })
    return Outcome(Status.OK, "", data)


def _rel_norm(got: np.ndarray, want: np.ndarray) -> float:
    scale = float(np.linalg.norm(want))
    return float(np.linalg.norm(got - want)) / (scale if scale > 0 else 1.0)


def step_check(spec: WorkloadSpec, device: str, arrays: dict[str, np.ndarray], observe: Any, result: Any,
               reference: dict[str, Any], precision: str = "fp32", check: bool = True,
               sensitivity: dict[str, float] | None = None) -> dict[str, Any]:
    """Compare what one step computed with its float64 reference (see the module docstring)."""
    out: dict[str, Any] = {"ok": False}
    if observe is None:
        out["problem"] = "the adapter gives no way to read what the step computed (Workload.observe)"
        return out
    try:
        got = observe(result)
    except Exception as exc:
        out["problem"] = f"reading the step's results raised {error_line(exc, 300)}"
        return out
    problems: list[str] = []
    tol = TOLERANCES[precision]
    sens = sensitivity or {}
    if spec.kind == "train":
        loss = to_array(got.get("loss"))
        if loss is None or loss.size != 1 or not np.isfinite(loss).all():
            problems.append(f"loss is {str(got.get('loss'))[:40]!r}, not a finite scalar")
        else:
            loss_value = float(loss.reshape(()))
            err = abs(loss_value - reference["loss"]) / abs(reference["loss"])
            out["loss"] = {"framework": loss_value, "reference": reference["loss"], "rel_err": err}
            loss_tol = max(tol["loss_rtol"], SENSITIVITY_FACTOR * sens.get("loss", 0.0))
            out["loss"]["tolerance"] = loss_tol
            if err > loss_tol:
                problems.append(f"loss {loss_value:.6g} vs {reference['loss']:.6g} (relative error {err:.2g} > {loss_tol:.2g})")
        params: dict[str, Any] = {}
        model = spec.check_model(device) if check else spec.model(device)
        largest = max((float(np.linalg.norm(reference[n] - arrays[n].astype(np.float64))) for n in model.param_shapes()), default=0.0)
        for name in model.param_shapes():
            before = arrays[name].astype(np.float64)
            value = to_array(got.get(name))
            if value is None or value.shape != before.shape:
                shape = None if value is None else tuple(value.shape)
                problems.append(f"parameter {name}: {'not returned' if value is None else f'shape {shape}, expected {before.shape}'}")
                continue
            want = reference[name]
            update = float(np.linalg.norm(want - before))
            err = float(np.linalg.norm(value.astype(np.float64) - want))
            rtol = max(tol["update_rtol"], SENSITIVITY_FACTOR * sens.get(name, 0.0))
            allowed = rtol * update + PARAM_ROUNDING * float(np.linalg.norm(want)) + ZERO_UPDATE_FLOOR * largest
            params[name] = {"update_rel_err": err / update if update > 0 else err, "rtol": rtol, "within": bool(err <= allowed)}
            if not np.isfinite(err) or err > allowed:
                problems.append(f"parameter {name} after the update: error {err:.2g} > {allowed:.2g} "
                                f"({rtol:.2g} of the update + float32 rounding)")
        out["parameters"] = params
    else:
        y = to_array(got.get("y"))
        if y is None or y.shape != reference["y"].shape:
            problems.append("output " + ("not returned" if y is None else f"shape {tuple(y.shape)}, expected {reference['y'].shape}"))
        else:
            err = _rel_norm(y.astype(np.float64), reference["y"])
            out["output"] = {"rel_err": err}
            if not np.isfinite(err) or err > tol["output_rtol"]:
                problems.append(f"output relative error {err:.2g} > {tol['output_rtol']:g}")
    out["ok"] = not problems
    if problems:
        out["problem"] = "; ".join(problems)[:900]
    return out
