"""Worker side of the ONNX importer conformance run (host side: harness.conformance).

Probe ids are 'conformance/<case>', one per ONNX backend node test in the case cache ($SHOWDOWN_CONFORMANCE_CASES,
written by harness.conformance_export): the adapter's importer converts <case>/model.onnx (`Adapter.onnx_import`),
runs it on the case's inputs through `ImportResult.run_many` and the outputs are compared with the expected ones the
way ONNX's backend test runner compares them. The record's data says which of pass / wrong / convert_error /
run_error it was; a case that hangs or kills the worker is recorded by the supervisor (timeout / crashed).

`OnnxRuntimeImporter` is the reference importer: onnxruntime, as an adapter the worker loads like any framework's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.adapter import Adapter, ImportResult, NotMapped, distribution_versions
from harness.probes import Context, Outcome
from harness.results import Status, error_line

CASES_ENV = "SHOWDOWN_CONFORMANCE_CASES"

#: ONNX's backend test runner's tolerances: onnx/backend/test/loader/__init__.py (onnx 1.18.0) starts every case at
#: rtol = 1e-3, atol = 1e-7 (a case's data.json may override them; no node test has one), and
#: onnx/backend/test/runner/__init__.py, Runner.assert_similar_outputs, compares with them through
#: np.testing.assert_allclose(outputs[i], ref_outputs[i], rtol=rtol, atol=atol). A manifest entry's own "rtol" and
#: "atol" replace them for that case (the portability matrix's cases carry the suite's ONNX export tolerance).
RTOL = 1e-3
ATOL = 1e-7

_manifest: dict[str, Any] | None = None


def _cases_root() -> Path:
    root = os.environ.get(CASES_ENV)
    if not root:
        raise RuntimeError(f"${CASES_ENV} is not set: the host names the case cache")
    return Path(root)


def _case(name: str) -> dict[str, Any]:
    global _manifest
    if _manifest is None:
        _manifest = json.loads((_cases_root() / "manifest.json").read_text(encoding="utf-8"))
    entry: dict[str, Any] = _manifest["cases"][name]
    return entry


def load_values(npz: Any, prefix: str, layout: Sequence[dict[str, Any]]) -> list[Any]:
    """Inputs or outputs of a case from its .npz: arrays, lists of arrays (sequences) and None (empty optionals)."""
    values: list[Any] = []
    for i, item in enumerate(layout):
        key = f"{prefix}_{i}"
        if item["kind"] == "none":
            values.append(None)
        elif item["kind"] == "sequence":
            values.append([_restore(npz[f"{key}.{j}"]) for j in range(item["length"])])
        else:
            values.append(_restore(npz[key]))
    return values


def _restore(arr: np.ndarray) -> np.ndarray:
    return arr.astype(object) if arr.dtype.kind == "U" else arr  # ONNX strings are object arrays


def compare(expected: Sequence[Any], actual: Sequence[Any], rtol: float = RTOL, atol: float = ATOL) -> tuple[bool, str, float | None]:
    """ONNX's backend comparison (Runner.assert_similar_outputs): as many outputs; a sequence item by item;
    non-numeric values (strings, booleans) equal as lists; numeric ones of the same dtype and shape, and
    |actual - expected| <= atol + rtol * |expected| (NaN equal to NaN). Returns (agrees, first mismatch, max |error|)."""
    worst: float | None = None

    def note(err: float) -> None:
        nonlocal worst
        worst = err if worst is None else max(worst, err)

    def check(exp: Any, act: Any, where: str) -> str:
        if exp is None:
            return "" if act is None or (isinstance(act, (list, tuple)) and not act) else f"{where}: expected no value, got one"
        if isinstance(exp, list):
            if not isinstance(act, (list, tuple)):
                return f"{where}: expected a sequence, got {type(act).__name__}"
            if len(act) != len(exp):
                return f"{where}: expected a sequence of {len(exp)}, got {len(act)}"
            for j, (e, a) in enumerate(zip(exp, act)):
                problem = check(e, a, f"{where}[{j}]")
                if problem:
                    return problem
            return ""
        if act is None:
            return f"{where}: no value"
        act = np.asarray(act)
        if not np.issubdtype(exp.dtype, np.number):
            return "" if exp.tolist() == act.tolist() else f"{where}: values differ ({exp.dtype})"
        if act.dtype != exp.dtype:
            return f"{where}: dtype {act.dtype}, expected {exp.dtype}"
        if act.shape != exp.shape:
            return f"{where}: shape {act.shape}, expected {exp.shape}"
        if exp.size == 0:
            return ""
        e64, a64 = exp.astype(np.complex128 if exp.dtype.kind == "c" else np.float64), act.astype(
            np.complex128 if act.dtype.kind == "c" else np.float64)
        both_nan = np.isnan(e64) & np.isnan(a64)
        diff = np.where(both_nan, 0.0, np.abs(a64 - e64))
        err = float(np.nanmax(diff)) if not np.all(np.isnan(diff)) else float("inf")
        if np.any(np.isnan(diff)) or (np.isinf(e64) != np.isinf(a64)).any():
            err = float("inf")
        note(err)
        close = np.isclose(a64, e64, rtol=rtol, atol=atol, equal_nan=True)
        if not bool(np.all(close)):
            bad = int(np.size(close) - np.count_nonzero(close))
            return f"{where}: {bad} of {exp.size} values outside rtol {rtol:g}, atol {atol:g} (max |error| {err:.3g})"
        return ""

    if len(actual) != len(expected):
        return False, f"{len(actual)} outputs, expected {len(expected)}", None
    first = ""
    for i, (exp, act) in enumerate(zip(expected, actual)):
        problem = check(exp, act, f"output {i}")
        first = first or problem
    return not first, first, worst


def run(adapter: Adapter, entry: str, ctx: Context) -> Outcome:
    case = _case(entry)
    folder = _cases_root() / entry
    data: dict[str, Any] = {"case": entry, "opset": case.get("opset"), "ops": case.get("ops", [])}
    if "skip" in case:
        return Outcome(Status.UNSUPPORTED, f"not tested: {case['skip']}", {**data, "conformance": "untested"})
    with np.load(folder / "data.npz") as npz:
        inputs = load_values(npz, "in", case["inputs"])
        expected = load_values(npz, "out", case["outputs"])
    try:
        imported = adapter.onnx_import(str(folder / "model.onnx"))
    except NotMapped:
        raise
    except Exception as exc:
        return Outcome(Status.ERROR, error_line(exc), {**data, "conformance": "convert_error"})
    data.update(importer=imported.importer, importer_version=imported.importer_version,
                max_opset=getattr(imported, "max_opset", None), max_opset_evidence=getattr(imported, "max_opset_evidence", ""))
    run_many = getattr(imported, "run_many", None)
    data["via"] = "run_many" if run_many is not None else "run"
    try:
        if run_many is not None:
            actual = list(run_many(inputs))
        elif len(inputs) == 1 and len(expected) == 1:
            actual = [imported.run(inputs[0])]
        else:
            return Outcome(Status.ERROR, f"the importer's adapter runs a model on one input only ({len(inputs)} here)",
                           {**data, "conformance": "run_error"})
    except Exception as exc:
        return Outcome(Status.ERROR, error_line(exc), {**data, "conformance": "run_error"})
    ok, problem, worst = compare(expected, actual, case.get("rtol", RTOL), case.get("atol", ATOL))
    data["max_error"] = worst if worst is None or np.isfinite(worst) else None
    data["max_error_inf"] = worst is not None and not np.isfinite(worst)
    if ok:
        return Outcome(Status.OK, "", {**data, "conformance": "pass"})
    return Outcome(Status.FAILED, problem, {**data, "conformance": "wrong"})


# ---------------------------------------------------------------------------------------------- onnxruntime
def _identity_model(opset: int) -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # accepted by every onnxruntime that knows opset 13 and later
    data: bytes = model.SerializeToString()
    return data


class OnnxRuntimeImporter(Adapter):
    """onnxruntime's CPU execution provider as an importer: the reference the conformance run measures first."""

    name = "onnxruntime"
    distribution = "onnxruntime"
    _max_opset: tuple[int | None, str] | None = None

    def versions(self) -> dict[str, str]:
        return distribution_versions("onnxruntime", "onnx", "numpy")

    def graph_namespace(self) -> Any:
        raise NotMapped("onnxruntime is an importer here, not a framework")

    def value_and_grad(self, fn: Any, args: Any) -> Any:
        raise NotMapped("onnxruntime is an importer here, not a framework")

    def _options(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        return options

    def max_opset(self) -> tuple[int | None, str]:
        """The highest default-domain opset onnxruntime loads: an Identity model at opsets 13, 14, ... until
        InferenceSession refuses one (what it answered is the evidence)."""
        if OnnxRuntimeImporter._max_opset is None:
            import onnxruntime as ort

            best: int | None = None
            why = "no opset from 13 up loads"
            for opset in range(13, 100):
                try:
                    ort.InferenceSession(_identity_model(opset), self._options(), providers=["CPUExecutionProvider"])
                    best = opset
                except Exception as exc:
                    why = f"onnxruntime.InferenceSession loads an Identity model at opset {best}; at {opset}: {error_line(exc, 300)}"
                    break
            OnnxRuntimeImporter._max_opset = (best, why)
        return OnnxRuntimeImporter._max_opset

    def onnx_import(self, path: str) -> ImportResult:
        import onnxruntime as ort

        session = ort.InferenceSession(path, self._options(), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def run_many(inputs: list[Any]) -> list[Any]:
            feeds = {name: value for name, value in zip(names, inputs) if value is not None}
            return list(session.run(None, feeds))

        def run(x: Any) -> Any:
            return run_many([x])[0]

        top, why = self.max_opset()
        return ImportResult("onnxruntime", distribution_versions("onnxruntime")["onnxruntime"], run,
                            run_many=run_many, max_opset=top, max_opset_evidence=why)
