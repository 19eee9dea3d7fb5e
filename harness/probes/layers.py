"""Layers probe: does the op exist, run forward and backward, and agree with the NumPy reference?

Every case of the op (the default, and extra cases that exercise padding or tell optimizer conventions apart) is
run; the op passes only if every case the framework can express passes under one accepted convention (the default
convention first).

Forward: every declared output within the op's tolerance of the reference.
Backward: the gradient of every array in `case.wrt` (the input and every trainable parameter) is projected on
GRAD_DIRECTIONS random directions and compared with the central difference of the float64 reference along the
same directions; the gradient passes when the relative error of those projections, in norm, is at most GRAD_RTOL.
The tolerance does not grow with the size of the array: a gradient that is 1% off fails on every op. A gradient
the op has and the adapter does not return fails the op.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from harness.adapter import Adapter, OpImpl, Unsupported
from harness.catalog import ops
from harness.probes import Context, Outcome
from harness.probes.agreement import agree, to_array
from harness.results import Status

GRAD_RTOL = 1e-3
GRAD_DIRECTIONS = 8
GRAD_FLOOR = 1e-5  # times the largest reference projection norm of the case: the allowance for a truly zero gradient
POINTS = {"native": 1.0, "composed": 0.5, "variant": 0.5}


def run(adapter: Adapter, op_id: str, ctx: Context) -> Outcome:
    spec = ops.get(op_id)
    found = adapter.op(op_id)
    if isinstance(found, OpImpl):
        return _judge(spec, found)
    outcomes: list[Outcome] = []
    unsupported: list[Unsupported] = []
    for impl in found:
        try:
            outcomes.append(_judge(spec, impl))
        except Unsupported as exc:
            unsupported.append(exc)
            outcomes.append(Outcome(Status.UNSUPPORTED, str(exc), {"api": impl.api, "implementation": impl.kind,
                                                                    "variant": impl.variant, "evidence": {"looked_up": exc.looked_up}}))
    if unsupported and len(unsupported) == len(outcomes):
        raise unsupported[0]
    attempts = [{"api": o.data.get("api"), "implementation": o.data.get("implementation"), "variant": o.data.get("variant"),
                 "status": o.status.value, "reason": o.reason} for o in outcomes]
    best = next((o for o in outcomes if o.status is Status.OK), None)
    if best is None:
        first = next(o for o in outcomes if o.status is not Status.UNSUPPORTED)
        reason = "; ".join(f"{a['api']}: {a['reason']}" for a in attempts)
        first.data["attempts"] = attempts
        return Outcome(first.status, reason, first.data)
    best.data["attempts"] = attempts
    return best


def _judge(spec: ops.OpSpec, impl: OpImpl) -> Outcome:
    """Every case of the op through one implementation (Unsupported from the default case propagates)."""
    variant = impl.variant
    if variant is not None and variant not in spec.variants:
        return Outcome(Status.ERROR, f"adapter names unknown variant {variant!r} of {spec.id}")
    data: dict[str, Any] = {
        "op": spec.id, "number": spec.number, "name": spec.name, "kind": spec.kind,
        "implementation": impl.kind, "api": impl.api, "variant": variant, "note": impl.note,
        "points": POINTS[impl.kind], "rtol": spec.rtol, "atol": spec.atol,
        "grad_rtol": GRAD_RTOL, "grad_directions": GRAD_DIRECTIONS,
    }
    runs: dict[str, tuple[ops.Case, Mapping[str, Any]]] = {}
    cases: dict[str, dict[str, Any]] = {}
    for label in spec.case_labels(variant):
        case = spec.case(variant, label)
        try:
            outputs = impl.run(case)
        except Unsupported as exc:
            if label == "default":
                raise
            cases[label] = {"status": "unsupported", "reason": str(exc), "evidence": {"looked_up": exc.looked_up}}
            continue
        if not isinstance(outputs, Mapping):
            data["cases"] = cases
            return _failed(data, f"the implementation returned {type(outputs).__name__}, not a mapping of outputs")
        runs[label] = (case, outputs)
    data["cases"] = cases

    if spec.check is not None and variant is None:
        problems = []
        for label, (case, outs) in runs.items():
            ok, details = spec.check(case, dict(outs))
            cases[label] = {"status": "ok" if ok else "failed", "forward": {"check": details}}
            if not ok:
                problems.append(f"{label}: {details}")
        default = cases.get("default", {})
        data["forward"] = default.get("forward")
        data["backward"] = {"checked": True, "ok": bool(default.get("status") == "ok")}
        if problems:
            return _failed(data, f"{spec.name} broke its contract ({'; '.join(problems)})"[:900])
        return Outcome(Status.OK, "", data)

    refs = spec.reference_for(variant)
    convention, forwards, matches = _forward(spec, refs, runs)
    data["conventions_matched"] = matches
    data["convention"] = convention
    data["conventions_tried"] = list(refs)
    for label, fwd in forwards.items():
        cases[label] = {"status": "ok" if fwd["ok"] else "failed", "forward": fwd}
    data["forward"] = forwards["default"]
    if convention is None:
        # the convention that matched most cases explains the failure best: show its first failing case
        best = max(matches, key=lambda name: len(matches[name]))
        forwards = {lb: _compare(spec, refs[best], case, outs) for lb, (case, outs) in runs.items()}
        for label, fwd in forwards.items():
            cases[label] = {"status": "ok" if fwd["ok"] else "failed", "forward": fwd}
        data["forward"] = forwards["default"]
        label, fwd = next((lb, f) for lb, f in forwards.items() if not f["ok"])
        worst = next((f"{name}: {r['problem']}" for name, r in fwd["outputs"].items() if not r["ok"]), "disagrees")
        where = "" if label == "default" else f" (case {label})"
        return _failed(data, f"forward output {worst}{where}" + _no_common_convention(matches, runs))

    for label, (case, outs) in runs.items():
        if case.grad_wrt is None:
            cases[label]["backward"] = {"checked": False, "ok": True, "why": "optimizer: the update is the check"}
            continue
        backward = _backward(case, outs, refs[convention], spec.grad_outputs(variant))
        cases[label]["backward"] = backward
        if not backward["ok"]:
            cases[label]["status"] = "failed"
    data["backward"] = cases["default"].get("backward")
    bad = next(((lb, c) for lb, c in cases.items() if c["status"] == "failed"), None)
    if bad is not None:
        label, c = bad
        where = "" if label == "default" else f" (case {label})"
        return _failed(data, f"gradient {c['backward']['problem']}{where}")
    return Outcome(Status.OK, "", data)


def _no_common_convention(matches: Mapping[str, list[str]], runs: Mapping[str, Any]) -> str:
    if len(matches) < 2 and len(runs) < 2:
        return ""
    said = ", ".join(f"{name} matches {'case ' + ' and '.join(m) if m else 'no case'}" for name, m in matches.items())
    return f"; no accepted convention matches every case ({said})"


def _failed(data: dict[str, Any], reason: str) -> Outcome:
    data["points"] = 0.0
    return Outcome(Status.FAILED, reason, data)


def _compare(spec: ops.OpSpec, ref: ops.Reference, case: ops.Case, outputs: Mapping[str, Any]) -> dict[str, Any]:
    expected = ref(case)
    per_output = {}
    for key, value in expected.items():
        if key not in outputs:
            per_output[key] = {"ok": False, "max_abs_err": None, "max_rel_err": None, "problem": "not returned"}
        else:
            per_output[key] = agree(outputs[key], value, spec.rtol, spec.atol).as_dict()
    return {"ok": all(r["ok"] for r in per_output.values()), "outputs": per_output}


def _forward(
    spec: ops.OpSpec, refs: Mapping[str, ops.Reference], runs: Mapping[str, tuple[ops.Case, Mapping[str, Any]]]
) -> tuple[str | None, dict[str, dict[str, Any]], dict[str, list[str]]]:
    """The first convention under which every case's outputs agree, with those comparisons, and for every
    convention the cases it matches. When none matches all: None and the default convention's comparisons."""
    first: dict[str, dict[str, Any]] | None = None
    matches: dict[str, list[str]] = {}
    chosen: tuple[str, dict[str, dict[str, Any]]] | None = None
    for name, ref in refs.items():
        results = {label: _compare(spec, ref, case, outputs) for label, (case, outputs) in runs.items()}
        matches[name] = [label for label, r in results.items() if r["ok"]]
        if chosen is None and all(r["ok"] for r in results.values()):
            chosen = (name, results)
        first = first or results
    assert first is not None
    if chosen is not None:
        return chosen[0], chosen[1], matches
    return None, first, matches


def _loss(ref: ops.Reference, case: ops.Case, names: tuple[str, ...], wrt: str, value: np.ndarray) -> float:
    arrays = dict(case.arrays)
    arrays[wrt] = value
    out = ref(ops.Case(arrays, case.config, case.grad_wrt, case.cotangents, case.params, case.label))
    return float(sum(np.sum(out[n] * case.cotangents[n].astype(np.float64)) for n in names))


def _directions(case: ops.Case, wrt: str, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(case.arrays[wrt].shape) for _ in range(GRAD_DIRECTIONS)]


def _numeric(ref: ops.Reference, case: ops.Case, names: tuple[str, ...], wrt: str, directions: list[np.ndarray]) -> np.ndarray:
    """Central differences of the float64 reference along each direction."""
    base = case.arrays[wrt].astype(np.float64)
    h = 1e-6 * max(1.0, float(np.abs(base).max()))
    return np.asarray([(_loss(ref, case, names, wrt, base + h * v) - _loss(ref, case, names, wrt, base - h * v)) / (2 * h)
                       for v in directions])


def judge_gradient(grad: Any, case: ops.Case, wrt: str, directions: list[np.ndarray], numeric: np.ndarray,
                   floor: float) -> dict[str, Any]:
    """One array's gradient: its projections on the directions against the reference's central differences;
    relative error in norm <= GRAD_RTOL (plus `floor`, for a gradient that is truly zero)."""
    base = case.arrays[wrt]
    g = to_array(grad)
    if g is None:
        return {"ok": False, "problem": f"w.r.t. {wrt}: not returned" if grad is None else f"w.r.t. {wrt}: not a numeric array"}
    if g.shape != base.shape:
        return {"ok": False, "problem": f"w.r.t. {wrt}: shape {tuple(g.shape)}, expected {base.shape}"}
    g = g.astype(np.float64)
    if not np.all(np.isfinite(g)):
        return {"ok": False, "problem": f"w.r.t. {wrt}: non-finite values"}
    analytic = np.asarray([float(np.sum(g * v)) for v in directions])
    err = float(np.linalg.norm(analytic - numeric))
    scale = float(np.linalg.norm(numeric))
    allowed = GRAD_RTOL * scale + floor
    zero = GRAD_RTOL * scale < floor  # a truly zero gradient: judged by the floor, its relative error means nothing
    rel = err / max(scale, 1e-300)
    ok = bool(err <= allowed)
    out: dict[str, Any] = {"ok": ok, "rel_err": None if zero else rel, "abs_err": err, "allowed": allowed,
                           "zero_gradient": zero, "framework": analytic.tolist(), "reference": numeric.tolist()}
    if not ok:
        out["problem"] = (f"w.r.t. {wrt}: error {err:.2g} where the gradient is zero (allowed {floor:.2g})" if zero else
                          f"w.r.t. {wrt}: relative error {rel:.2g} over {GRAD_DIRECTIONS} directions (tolerance {GRAD_RTOL:g})")
    return out


def _backward(case: ops.Case, outputs: Mapping[str, Any], ref: ops.Reference, names: tuple[str, ...]) -> dict[str, Any]:
    grads = outputs.get("grads")
    if not isinstance(grads, Mapping):
        return {"checked": True, "ok": False, "problem": "no gradients returned (outputs['grads'] is missing)"}
    directions = {wrt: _directions(case, wrt, 42 + i) for i, wrt in enumerate(case.wrt)}
    numeric = {wrt: _numeric(ref, case, names, wrt, directions[wrt]) for wrt in case.wrt}
    # a gradient that is truly zero (e.g. a key bias under softmax) is judged against a floor set by the others
    floor = GRAD_FLOOR * max((float(np.linalg.norm(n)) for n in numeric.values()), default=0.0)
    per = {wrt: judge_gradient(grads.get(wrt), case, wrt, directions[wrt], numeric[wrt], floor) for wrt in case.wrt}
    bad = [r["problem"] for r in per.values() if not r["ok"]]
    return {"checked": True, "ok": not bad, "wrt": list(case.wrt), "gradients": per,
            "worst_rel_err": max((r["rel_err"] if r.get("rel_err") is not None else (0.0 if r.get("zero_gradient") else float("inf"))
                                  for r in per.values()), default=0.0),
            "problem": "; ".join(bad)}
