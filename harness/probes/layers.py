"""Layers probe: does the op exist, run forward and backward, and agree with the NumPy reference?

Forward: every declared output within the op's tolerance of the reference (trying each accepted convention, the
default first). Backward: the framework's gradient, projected on three random directions, must match the central
difference of the float64 reference along the same directions (relative tolerance 1e-3 of the projection's scale).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from harness.adapter import Adapter, OpImpl
from harness.catalog import ops
from harness.probes import Context, Outcome
from harness.probes.agreement import agree, to_array
from harness.results import Status

GRAD_RTOL = 1e-3
GRAD_DIRECTIONS = 3
POINTS = {"native": 1.0, "composed": 0.5, "variant": 0.5}


def run(adapter: Adapter, op_id: str, ctx: Context) -> Outcome:
    spec = ops.get(op_id)
    found = adapter.op(op_id)
    if isinstance(found, OpImpl):
        return _judge(spec, found)
    outcomes = [_judge(spec, impl) for impl in found]
    attempts = [{"api": o.data.get("api"), "implementation": o.data.get("implementation"), "variant": o.data.get("variant"),
                 "status": o.status.value, "reason": o.reason} for o in outcomes]
    best = next((o for o in outcomes if o.status is Status.OK), None)
    if best is None:
        first = outcomes[0]
        reason = "; ".join(f"{a['api']}: {a['reason']}" for a in attempts)
        first.data["attempts"] = attempts
        return Outcome(first.status, reason, first.data)
    best.data["attempts"] = attempts
    return best


def _judge(spec: ops.OpSpec, impl: OpImpl) -> Outcome:
    variant = impl.variant
    op_id = spec.id
    if variant is not None and variant not in spec.variants:
        return Outcome(Status.ERROR, f"adapter names unknown variant {variant!r} of {op_id}")
    case = spec.case(variant)
    outputs = impl.run(case)
    data: dict[str, Any] = {
        "op": spec.id, "number": spec.number, "name": spec.name, "kind": spec.kind,
        "implementation": impl.kind, "api": impl.api, "variant": variant, "note": impl.note,
        "points": POINTS[impl.kind], "rtol": spec.rtol, "atol": spec.atol,
    }
    if not isinstance(outputs, Mapping):
        return _failed(data, f"the implementation returned {type(outputs).__name__}, not a mapping of outputs")

    if spec.check is not None and variant is None:
        ok, details = spec.check(case, dict(outputs))
        data["forward"] = {"check": details}
        data["backward"] = {"checked": "grad" in outputs}
        if not ok:
            return _failed(data, f"{spec.name} broke its contract: {details}")
        return Outcome(Status.OK, "", data)

    refs = spec.reference_for(variant)
    forward, convention = _forward(spec, variant, refs, case, outputs)
    data["forward"] = forward
    data["convention"] = convention
    if convention is None:
        worst = next((f"{name}: {r['problem']}" for name, r in forward["outputs"].items() if not r["ok"]), "disagrees")
        return _failed(data, f"forward output {worst}")

    if case.grad_wrt is not None:
        backward = _backward(case, outputs, refs[convention], spec.grad_outputs(variant))
        data["backward"] = backward
        if not backward["ok"]:
            return _failed(data, f"gradient w.r.t. {case.grad_wrt}: {backward['problem']}")
    else:
        data["backward"] = {"checked": False, "ok": True, "why": "optimizer: the update is the check"}
    return Outcome(Status.OK, "", data)


def _failed(data: dict[str, Any], reason: str) -> Outcome:
    data["points"] = 0.0
    return Outcome(Status.FAILED, reason, data)


def _forward(
    spec: ops.OpSpec, variant: str | None, refs: Mapping[str, ops.Reference], case: ops.Case, outputs: Mapping[str, Any]
) -> tuple[dict[str, Any], str | None]:
    """Compare with each accepted convention in turn; report the first that matches (or the default's errors)."""
    first: dict[str, Any] | None = None
    for name, ref in refs.items():
        expected = ref(case)
        per_output = {}
        for key, value in expected.items():
            if key not in outputs:
                per_output[key] = {"ok": False, "max_abs_err": None, "max_rel_err": None, "problem": "not returned"}
            else:
                per_output[key] = agree(outputs[key], value, spec.rtol, spec.atol).as_dict()
        result = {"outputs": per_output, "conventions_tried": list(refs)}
        if all(r["ok"] for r in per_output.values()):
            return result, name
        first = first or result
    assert first is not None
    return first, None


def _loss(ref: ops.Reference, case: ops.Case, names: tuple[str, ...], value: np.ndarray) -> float:
    arrays = dict(case.arrays)
    arrays[case.grad_wrt] = value  # type: ignore[index]
    out = ref(ops.Case(arrays, case.config, case.grad_wrt, case.cotangents))
    return float(sum(np.sum(out[n] * case.cotangents[n].astype(np.float64)) for n in names))


def _backward(case: ops.Case, outputs: Mapping[str, Any], ref: ops.Reference, names: tuple[str, ...]) -> dict[str, Any]:
    wrt = case.grad_wrt
    assert wrt is not None
    base = case.arrays[wrt].astype(np.float64)
    grad = to_array(outputs.get("grad"))
    if grad is None:
        return {"checked": True, "ok": False, "problem": "no gradient returned"}
    if grad.shape != base.shape:
        return {"checked": True, "ok": False, "problem": f"gradient shape {tuple(grad.shape)}, expected {base.shape}"}
    grad = grad.astype(np.float64)
    if not np.all(np.isfinite(grad)):
        return {"checked": True, "ok": False, "problem": "non-finite gradient"}
    rng = np.random.default_rng(42)
    h = 1e-5 * max(1.0, float(np.abs(base).max()))
    checks = []
    ok = True
    for _ in range(GRAD_DIRECTIONS):
        v = rng.standard_normal(base.shape)
        numeric = (_loss(ref, case, names, base + h * v) - _loss(ref, case, names, base - h * v)) / (2 * h)
        analytic = float(np.sum(grad * v))
        scale = float(np.sum(np.abs(grad * v))) + 1e-6
        err = abs(analytic - numeric)
        passed = err <= GRAD_RTOL * scale
        ok = ok and passed
        checks.append({"framework": analytic, "reference": numeric, "abs_err": err, "tolerance": GRAD_RTOL * scale})
    problem = "" if ok else "directional derivative disagrees with the reference's central difference"
    return {"checked": True, "ok": ok, "wrt": wrt, "directions": checks, "problem": problem}
