"""ONNX probes. Whether the exporter or importer is built in is decided by the harness, by one rule for every
framework (harness.probes.provenance): which installed distributions' code ran during the conversion.

export/<model>: the framework builds the catalog model from its weights and exports it with its own exporter (or
the converter its adapter names); the file must pass onnx.checker and, run in onnxruntime, agree with the
framework's own output within 1e-4.
import/<model>: the catalog writes the model with onnx.helper (no framework's exporter involved); the framework's
importer converts it; its output must agree with onnxruntime's on the same file. An importer that rejects the
default opset is retried with an older one, and both attempts are recorded.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from harness.adapter import Adapter, NotMapped, Unsupported
from harness.catalog.onnx_models import DEFAULT_OPSET, EXPORT_ATOL, FALLBACK_OPSET, MODELS_BY_ID, build_onnx
from harness.probes import Context, Outcome
from harness.probes.agreement import agree
from harness.probes.provenance import classify, watch
from harness.results import Status, error_line


def run(adapter: Adapter, entry: str, ctx: Context) -> Outcome:
    direction, _, model_id = entry.partition("/")
    model = MODELS_BY_ID[model_id]
    ctx.scratch.mkdir(parents=True, exist_ok=True)
    if direction == "export":
        return _export(adapter, model, ctx.scratch / f"export-{model.id}.onnx")
    if direction == "import":
        return _import(adapter, model, ctx.scratch)
    raise KeyError(f"unknown ONNX direction {direction!r}")


def _runtime(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: x})[0])


def _opsets(path: Path) -> dict[str, int]:
    import onnx

    proto = onnx.load(str(path))
    return {(o.domain or "ai.onnx"): int(o.version) for o in proto.opset_import}


def _export(adapter: Adapter, model: Any, path: Path) -> Outcome:
    import onnx

    x = model.sample_input()
    result, ran = watch(lambda: adapter.onnx_export(model, str(path), None))
    where = classify(ran, adapter.own_distributions())
    data: dict[str, Any] = {
        "model": model.id, "exporter": result.exporter, "exporter_version": result.exporter_version,
        "builtin": where["builtin"], "provenance": where, "requested_opset": result.opset, "notes": result.notes,
    }
    if not path.exists():
        return Outcome(Status.FAILED, f"{result.exporter} wrote no file", data)
    data["opsets"] = _opsets(path)
    data["file_bytes"] = path.stat().st_size
    try:
        onnx.checker.check_model(str(path))
        data["checker"] = "passed"
    except Exception as exc:
        data["checker"] = f"failed: {str(exc)[:300]}"
        return Outcome(Status.FAILED, f"onnx.checker rejects the exported model: {str(exc)[:200]}", data)
    ort_out = _runtime(path, x)
    vs_framework = agree(ort_out, np.asarray(result.framework_output, np.float64), 0.0, EXPORT_ATOL)
    vs_reference = agree(result.framework_output, model.reference(x), 1e-4, 1e-4)
    data["max_abs_err"] = vs_framework.max_abs_err
    data["agreement_runtime_vs_framework"] = vs_framework.as_dict()
    data["agreement_framework_vs_reference"] = vs_reference.as_dict()
    if not vs_reference.ok:
        return Outcome(Status.FAILED, f"the framework's own model disagrees with the reference: {vs_reference.problem}", data)
    if not vs_framework.ok:
        return Outcome(Status.FAILED, f"onnxruntime output differs from the framework's: {vs_framework.problem}", data)
    return Outcome(Status.OK, "", data)


def _import(adapter: Adapter, model: Any, scratch: Path) -> Outcome:
    import onnx

    x = model.sample_input()
    attempts: list[dict[str, Any]] = []
    data: dict[str, Any] = {"model": model.id, "attempts": attempts, "source": "onnx.helper (catalog)"}
    for opset in (DEFAULT_OPSET, FALLBACK_OPSET):
        path = scratch / f"import-{model.id}-opset{opset}.onnx"
        onnx.save(build_onnx(model, opset), str(path))
        expected = _runtime(path, x)
        attempt: dict[str, Any] = {"opset": opset}
        attempts.append(attempt)
        try:
            imported, ran = watch(partial(adapter.onnx_import, str(path)))
        except (Unsupported, NotMapped):
            raise
        except Exception as exc:
            attempt.update(outcome="import failed", error=_short(exc))
            continue
        try:
            y, ran_too = watch(partial(imported.run, x))
        except Exception as exc:
            attempt.update(outcome="run failed", error=_short(exc))
            continue
        where = classify(ran | ran_too, adapter.own_distributions())
        data.update(importer=imported.importer, importer_version=imported.importer_version,
                    builtin=where["builtin"], provenance=where, notes=imported.notes)
        agreement = agree(y, expected, 0.0, EXPORT_ATOL)
        attempt.update(outcome="agrees" if agreement.ok else "disagrees", agreement=agreement.as_dict(),
                       max_abs_err=agreement.max_abs_err)
        if agreement.ok:
            data["opset"] = opset
            data["max_abs_err"] = agreement.max_abs_err
            return Outcome(Status.OK, "", data)
    last = attempts[-1]
    return Outcome(Status.FAILED, f"import at opsets {DEFAULT_OPSET} and {FALLBACK_OPSET} failed; last: "
                   f"{last.get('outcome')}: {last.get('error') or last.get('agreement', {}).get('problem', '')}", data)


def _short(exc: BaseException) -> str:
    return error_line(exc, 500)
