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
from harness.catalog import reference_models
from harness.catalog.workloads import (
    CHECKED_STEPS,
    LEARNING_RATE,
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

    f32 = spec.float32_error(ctx.device)
    checks: list[dict[str, Any]] = []
    first_call_s = 0.0
    before: dict[str, Any] = arrays  # step 1 starts from the catalog's initial parameters, as the reference does
    reference = spec.reference_steps(ctx.device)[0]
    for index in range(CHECKED_STEPS):
        built.sync()
        t0 = CLOCK()
        result = built.step()
        built.sync()
        if index == 0:
            first_call_s = CLOCK() - t0
        got, problem = _observe(built.observe, result)
        check = step_check(spec, ctx.device, before, got, reference, precision, check=True, float32=f32) if problem is None \
            else {"ok": False, "problem": problem}
        check["step"] = index + 1
        checks.append(check)
        if not check["ok"]:
            break
        if spec.kind == "train" and index + 1 < CHECKED_STEPS:
            # the next step is judged from where this one left the framework (a step a few ulps off at a chaotic
            # model would otherwise compound): the reference takes one step from the framework's own parameters
            model = spec.check_model(ctx.device)
            params = {n: np.asarray(got[n], dtype=np.float64) for n in model.param_shapes()}
            before = {**params, "x": arrays["x"], "labels": arrays["labels"]}
            reference = reference_models.training_steps(model, params, before, LEARNING_RATE, 1)[0]
            here = reference_models.float32_error(model, params, before)  # conditioning moves with the parameters
            f32 = {k: max(v, here.get(k, 0.0)) for k, v in f32.items()}
    data["first_step"] = {"checked": True, "ok": all(c["ok"] for c in checks), "steps": checks,
                          "reference": "float64 NumPy (harness.catalog.reference_models); step 2 from the parameters "
                                       "the framework reached after step 1",
                          "tolerances": TOLERANCES[precision], "precision": precision,
                          "float32_error": f32 or None, "float32_factor": SENSITIVITY_FACTOR,
                          "float32_error_means": "the reference run in float32 against float64, at each checked step's "
                                                 "starting parameters (the larger of the two)"}
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
        data["notes"] = [*data["notes"], *(n for n in built.notes if n not in data["notes"])]
        built.sync()
        t0 = CLOCK()
        built.step()
        built.sync()
        first_call_s = CLOCK() - t0
    data["first_call_s"] = first_call_s
    data["param_count"] = built.param_count
    data["param_count_matches"] = built.param_count == expected
    if built.param_count != expected:  # a parameter the loss does not read would pass the step checks
        return Outcome(Status.FAILED, f"the built model has {built.param_count:,} parameters, the catalog's "
                                      f"{expected:,}: not the same model; not timed", data)

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


def _observe(observe: Any, result: Any) -> tuple[dict[str, Any], str | None]:
    if observe is None:
        return {}, "the adapter gives no way to read what the step computed (Workload.observe)"
    try:
        got = observe(result)
    except Exception as exc:
        return {}, f"reading the step's results raised {error_line(exc, 300)}"
    if not isinstance(got, dict):
        return {}, f"the step's results are {type(got).__name__}, not a mapping"
    return got, None


def step_check(spec: WorkloadSpec, device: str, before: dict[str, Any], got: dict[str, Any], reference: dict[str, Any],
               precision: str = "fp32", check: bool = True, float32: dict[str, float] | None = None) -> dict[str, Any]:
    """Compare what one step computed (`got`) with its float64 reference, the step having started from `before`.

    Tolerances: the precision's (TOLERANCES), never below SENSITIVITY_FACTOR times what float32 arithmetic alone
    does to the same model (`float32`: the reference computed in float32), plus float32 rounding of each parameter
    and a floor for parameters whose exact gradient is zero."""
    out: dict[str, Any] = {"ok": False}
    problems: list[str] = []
    tol = TOLERANCES[precision]
    f32 = float32 or {}
    if spec.kind == "train":
        loss = to_array(got.get("loss"))
        if loss is None or loss.size != 1 or not np.isfinite(loss).all():
            problems.append(f"loss is {str(got.get('loss'))[:40]!r}, not a finite scalar")
        else:
            loss_value = float(loss.reshape(()))
            err = abs(loss_value - reference["loss"]) / abs(reference["loss"])
            loss_tol = max(tol["loss_rtol"], SENSITIVITY_FACTOR * f32.get("loss", 0.0))
            out["loss"] = {"framework": loss_value, "reference": reference["loss"], "rel_err": err, "tolerance": loss_tol}
            if err > loss_tol:
                problems.append(f"loss {loss_value:.6g} vs {reference['loss']:.6g} (relative error {err:.2g} > {loss_tol:.2g})")
        model = spec.check_model(device) if check else spec.model(device)
        rtol = max(tol["update_rtol"], SENSITIVITY_FACTOR * f32.get("update", 0.0))
        out["update_rtol"] = rtol
        largest = max((float(np.linalg.norm(reference[n] - np.asarray(before[n], np.float64))) for n in model.param_shapes()),
                      default=0.0)
        params: dict[str, Any] = {}
        for name in model.param_shapes():
            start = np.asarray(before[name], dtype=np.float64)
            value = to_array(got.get(name))
            if value is None or value.shape != start.shape:
                shape = None if value is None else tuple(value.shape)
                problems.append(f"parameter {name}: {'not returned' if value is None else f'shape {shape}, expected {start.shape}'}")
                continue
            want = reference[name]
            update = float(np.linalg.norm(want - start))
            err = float(np.linalg.norm(value.astype(np.float64) - want))
            allowed = rtol * update + PARAM_ROUNDING * float(np.linalg.norm(want)) + ZERO_UPDATE_FLOOR * largest
            params[name] = {"update_rel_err": err / update if update > 0 else err, "within": bool(err <= allowed)}
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
