"""The rubric criteria that the suite measures, derived from a document's records (each citing its records)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OPS_TOTAL = 32


@dataclass
class Criterion:
    value: float | None
    explanation: str
    evidence: list[str] = field(default_factory=list)  # probe ids the value came from


def _records(doc: dict[str, Any], suite: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in doc.get("records", {}).items() if v.get("suite") == suite}


def ootb_ops(doc: dict[str, Any]) -> Criterion:
    """Points out of 32: 1 per verified native op, 0.5 per verified composed op or variant. An op the adapter leaves
    unmapped is the adapter's gap, not the framework's: while any is, the criterion is not determined (left out of
    the mean, as the rubric does with what it cannot determine), never scored as if the framework lacked them."""
    recs = _records(doc, "layers")
    if not recs:
        return Criterion(None, "no layers records")
    points = sum(float(r["data"].get("points", 0.0)) for r in recs.values() if r["status"] == "ok")
    kinds: dict[str, int] = {}
    for r in recs.values():
        key = r["data"].get("implementation", "?") if r["status"] == "ok" else r["status"]
        kinds[key] = kinds.get(key, 0) + 1
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    unmapped = sorted(k.split("/", 1)[1] for k, r in recs.items() if r["status"] == "unmapped")
    if unmapped:
        return Criterion(None, f"not determined: the adapter leaves {len(unmapped)} op(s) unmapped ({', '.join(unmapped)}); "
                               f"{points:g} points from the {len(recs) - len(unmapped)} mapped ({detail})", sorted(recs))
    return Criterion(points, f"{points:g}/{OPS_TOTAL} ({detail})", sorted(recs))


def graph_value(doc: dict[str, Any]) -> Criterion:
    """2 dynamic (define-by-run verified), 1 symbolic (only a compile path works), 0 neither."""
    recs = doc.get("records", {})
    dbr, comp = recs.get("graphs/define_by_run"), recs.get("graphs/compiled")
    if dbr is None and comp is None:
        return Criterion(None, "no graph records")
    evidence = [p for p in ("graphs/define_by_run", "graphs/compiled") if p in recs]
    if dbr is not None and dbr["status"] == "ok":
        return Criterion(2, "dynamic: a value read mid-computation steers Python, gradients flow, every call", evidence)
    if comp is not None and comp["status"] == "ok":
        return Criterion(1, "symbolic: only a compile path works", evidence)
    return Criterion(0, "neither eager define-by-run nor a compile path works", evidence)


def onnx_direction(doc: dict[str, Any], direction: str) -> Criterion:
    """For export or import: how many reference models pass, and through what (built in or separate package)."""
    recs = {k: v for k, v in _records(doc, "onnx").items() if k.startswith(f"onnx/{direction}/")}
    if not recs:
        return Criterion(None, f"no ONNX {direction} records")
    if any(r["status"] == "unmapped" for r in recs.values()):
        return Criterion(None, f"not determined: the adapter maps no ONNX {direction}er", sorted(recs))
    passed = [r for r in recs.values() if r["status"] == "ok"]
    tools = sorted({f"{r['data'].get('exporter') or r['data'].get('importer')}" for r in passed})
    builtin = all(r["data"].get("builtin") for r in passed) if passed else False
    if len(passed) == len(recs):
        value = 2.0 if builtin else 1.0
    else:
        value = 0.0
    where = "built in" if builtin else "separate package: " + ", ".join(sorted({d for r in passed for d in
                                                                               (r["data"].get("provenance") or {}).get("outside_the_framework", [])}) or "?")
    text = f"{len(passed)}/{len(recs)} models" + (f" via {', '.join(tools)} ({where})" if passed else "")
    return Criterion(value, text, sorted(recs))


def numerics_ease(doc: dict[str, Any]) -> Criterion:
    """Ease of use of the array namespace, 0-5: 5 x the share of the NumPy sample that agrees with NumPy."""
    rec = doc.get("records", {}).get("numerics/coverage")
    if rec is None or rec["status"] != "ok":
        why = "no numerics coverage record" if rec is None else f"not measured: numerics coverage {rec['status']}: {rec['reason'][:160]}"
        return Criterion(None, why, [] if rec is None else ["numerics/coverage"])
    d = rec["data"]
    interop = doc["records"].get("numerics/interop", {}).get("data", {})
    zc = interop.get("zero_copy_both_ways")
    text = f"{d['agrees']}/{d['total']} NumPy functions agree in {d['namespace']}" + (
        "" if zc is None else f"; zero-copy both ways: {'yes' if zc else 'no'}")
    evidence = ["numerics/coverage"] + (["numerics/interop"] if interop else [])
    return Criterion(float(d["ease_of_use"]), text, evidence)


def scalability(doc: dict[str, Any]) -> Criterion:
    """2 if the framework's own distributed API all-reduces across two processes, 1 if only a third-party package
    does, 0 if the probe ran and neither works; None when the adapter implements no attempt (not measured)."""
    rec = doc.get("records", {}).get("scale/allreduce")
    if rec is None:
        return Criterion(None, "no scale record")
    if rec["status"] == "ok":
        builtin = rec["data"].get("builtin")
        return Criterion(2.0 if builtin else 1.0, f"two-process all-reduce via {rec['data'].get('api')}"
                         + (" (built in)" if builtin else " (third-party)"), ["scale/allreduce"])
    if rec["status"] == "unmapped":
        return Criterion(None, "not measured: the adapter implements no all-reduce", ["scale/allreduce"])
    return Criterion(0.0, f"all-reduce {rec['status']}: {rec['reason'][:120]}", ["scale/allreduce"])


def onnx_export_share(doc: dict[str, Any], matrix_share: tuple[int, int] | None = None) -> Criterion:
    """showdown-2026 v3: the share of the model set that the framework's exporter writes and onnxruntime runs in
    agreement with the framework's own output, times 2 when the exporter is built in (by the provenance rule), times
    1 when only a separate package does it. Not determined while the adapter maps no exporter. v4: when a
    portability matrix holds the exporter's row, the model set is the matrix's (the run's two models and the
    catalog's models) and the share is its onnxruntime cell (`matrix_share`: passed, of); built in or not is still
    decided by the run's own export probes."""
    recs = {k: v for k, v in _records(doc, "onnx").items() if k.startswith("onnx/export/")}
    if not recs:
        return Criterion(None, "no ONNX export records")
    if any(r["status"] == "unmapped" for r in recs.values()):
        return Criterion(None, "not determined: the adapter maps no ONNX exporter", sorted(recs))
    passed = [r for r in recs.values() if r["status"] == "ok"]
    builtin = bool(passed) and all(r["data"].get("builtin") for r in passed)
    if matrix_share is not None and matrix_share[1]:
        n, of, basis = matrix_share[0], matrix_share[1], "portability matrix: "
        evidence = sorted(recs) + ["portability/onnxruntime"]
    else:
        n, of, basis = len(passed), len(recs), ""
        evidence = sorted(recs)
    value = n / of * (2.0 if builtin else 1.0)
    where = "" if not passed else (" (built in: x2)" if builtin else " (separate package: x1)")
    return Criterion(value, f"{basis}{n}/{of} models export and run in onnxruntime{where}", evidence)


def export_share(matrix: dict[str, Any], exporter: str, runtime: str = "onnxruntime") -> tuple[int, int] | None:
    """From a portability matrix document: how many of the exporter's models the reference runtime runs in
    agreement with the exporter's own output (passed, of); None when the matrix has no such cell."""
    cell = matrix.get("cells", {}).get(exporter, {}).get(runtime)
    if cell is None:
        return None
    return int(cell["passed"]), int(cell["models_total"])


def importer_builtin(doc: dict[str, Any]) -> bool | None:
    """Whether the framework's importer is built in, as the suite's import probes decided it (None: none passed)."""
    passed = [v for k, v in _records(doc, "onnx").items() if k.startswith("onnx/import/") and v["status"] == "ok"]
    return all(r["data"].get("builtin") for r in passed) if passed else None


def onnx_import_measured(doc: dict[str, Any], conformance: dict[str, Any] | None,
                         portability_share: tuple[int, int] | None = None) -> Criterion:
    """showdown-2026 v3: the importer's pass rate on ONNX's backend node tests (over the tested cases at or below the
    highest opset it names; over all tested cases when it names none) and, when a portability matrix is given, the
    share of the other frameworks' exported models it runs in agreement with their exporters (the mean of the two),
    times 2 when the importer is built in, times 1 when it is a separate package. An importer with no conformance
    document is not determined: the suite's two hand-built models alone do not decide it any more."""
    recs = {k: v for k, v in _records(doc, "onnx").items() if k.startswith("onnx/import/")}
    if recs and all(r["status"] in ("unsupported", "failed") for r in recs.values()) and conformance is None:
        return Criterion(0.0, "no importer that runs the suite's models, and no conformance document: "
                              f"{next(iter(recs.values()))['reason'][:160]}", sorted(recs))
    if conformance is None:
        return Criterion(None, "not determined: no conformance document for this importer (`showdown conformance`)",
                         sorted(recs))
    rates = conformance["summary"]["pass_rate"]
    below = rates.get("at_or_below_max_opset")
    basis = below if below and conformance["importer"].get("max_opset") else rates["tested"]
    parts = [basis["rate"]]
    text = (f"node tests {basis['passed']}/{basis['cases']} ({basis['rate']:.1%}"
            + (f", opset <= {conformance['importer']['max_opset']}" if basis is below else ", every tested case") + ")")
    if portability_share is not None and portability_share[1]:
        parts.append(portability_share[0] / portability_share[1])
        text += f"; matrix {portability_share[0]}/{portability_share[1]} exported models"
    builtin = importer_builtin(doc)
    factor = 2.0 if builtin else 1.0
    text += " (built in: x2)" if builtin else " (separate package: x1)"
    evidence = sorted(recs) + [f"conformance/{conformance['importer']['name']}"]
    return Criterion(factor * sum(parts) / len(parts), text, evidence)


def portability_share(matrix: dict[str, Any], importer: str) -> tuple[int, int] | None:
    """From a portability matrix document: how many of the OTHER frameworks' exported models this importer runs in
    agreement with their exporters (passed, of); None when the matrix has no column for it."""
    if importer not in matrix.get("importers", {}):
        return None
    passed = of = 0
    for exporter, row in matrix.get("cells", {}).items():
        cell = row.get(importer)
        if exporter == importer or cell is None:
            continue
        passed += int(cell["passed"])
        of += int(cell["models_total"])
    return passed, of
