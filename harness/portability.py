"""The ONNX portability matrix: every framework's exporter against every importer, on the catalog's ONNX models.

    showdown portability [--exporters a,b] [--importers x,y] [--models mlp,cnn] [--timeout S] [--work DIR] [--out DIR]
    showdown portability --render DOC           (the Markdown and HTML matrix again, from a document)

Export step: each exporting framework, in its own environment (its virtualenv; caffe2 in its Docker image) through
the suite's supervisor and worker, runs the probe 'portability/<model>' (harness.probes.portability): it builds the
catalog model from its weights, exports it with its own exporter and writes, in the worker's work folder, a case in
the conformance cache's layout: model.onnx, data.npz (in_0 = the catalog's sample input, out_0 = the framework's own
output on it). The host copies each case out of that folder (reading it without following links) into
<work>/cases/<exporter>__<model>/ and writes <work>/cases/manifest.json: per case the file's opset and operators, the
exporter and its version, and the tolerance. Files cross environments only through these folders.

Import step: the conformance driver (harness.conformance.run_cases; the worker side is harness.probes.conformance)
runs every case through each importer in the importer's own environment, one case per probe, so a case that hangs
or kills the importer is recorded and the rest go on. The comparison is the conformance one (same dtype and shape,
|actual - expected| <= atol + rtol * |expected|) with the suite's own ONNX export tolerance: rtol 0, atol
EXPORT_ATOL (harness.catalog.onnx_models; harness.probes.onnx compares onnxruntime's output with the exporting
framework's with it), the expected output being the exporting framework's own.

Each model in a cell (exporter x importer) is one of MODEL_STATUSES: pass, wrong, convert_error, run_error, timeout,
crash (the conformance statuses); no_run_many (the importer's adapter gives `ImportResult.run` only; what that one-
input path gave is kept as `via_run`); not_exported (the exporter did not produce the model: its reason is the
error); importer_unavailable (the importer's environment did not start). A cell's status: pass when every model
passes, partial when some do, else the one status its models share, or mixed. The document's schema is
harness/schema/portability-v1.json; the matrix (Markdown and HTML) is written next to it by
harness.report.portability.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import registry
from harness.results import write_json_atomic

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "portability-v1.json"
EXPORTERS = ("torch", "tensorflow", "mxnet", "chainer", "paddle", "jax", "caffe2")
IMPORTERS = ("onnxruntime", "torch", "jax", "tensorflow", "mxnet", "paddle", "tvm")
CONFORMANCE_STATUSES = ("pass", "wrong", "convert_error", "run_error", "timeout", "crash")
MODEL_STATUSES = (*CONFORMANCE_STATUSES, "no_run_many", "not_exported", "importer_unavailable")
CELL_STATUSES = ("pass", "partial", "mixed", *MODEL_STATUSES[1:])
RTOL = 0.0
DEFAULT_EXPORT_TIMEOUT_S = 300.0  # the ONNX suite's own per-probe limit (harness.probes.DEFAULT_TIMEOUTS["onnx"])
DEFAULT_IMPORT_TIMEOUT_S = 120.0
FILE_LIMIT = 256 * 1024 * 1024  # the most the host copies of one exported file (ResNet-50 in float32: 94 MB)


def tolerance() -> dict[str, Any]:
    from harness.catalog.onnx_models import EXPORT_ATOL

    return {"rtol": RTOL, "atol": EXPORT_ATOL,
            "source": "harness.catalog.onnx_models.EXPORT_ATOL with rtol 0: what harness.probes.onnx allows between "
                      "onnxruntime's output on an exported file and the exporting framework's own"}


class PortabilityError(Exception):
    """The run cannot go on (no exporter produced a case, an unknown name); says why."""


@dataclasses.dataclass
class Endpoint:
    """An exporter: a framework's adapter (module:Class) and the interpreter its worker runs under."""

    name: str
    adapter: str
    interpreter: Any  # harness.runners.base.Interpreter
    runner: str = "venv"


def prepare_exporter(name: str, say: Callable[[str], None]) -> Endpoint:
    """A registry framework in the runner it runs under (the first it names, else its virtualenv)."""
    from harness.runners import get_runner

    info = registry.get(name)
    if not info.has_adapter:
        raise PortabilityError(f"{name} has no adapter")
    runner = info.runners[0] if info.runners else "venv"
    return Endpoint(name, info.adapter, get_runner(runner).prepare(info, "cpu", say), runner)


def case_name(exporter: str, model: str) -> str:
    return f"{exporter}__{model}"


# ---------------------------------------------------------------------------------------------- export step
def export_step(exporter: Endpoint, models: list[str], workdir: Path, cases: Path, timeout_s: float) -> dict[str, Any]:
    """Run the export probes in the exporter's worker; copy each produced case into `cases`. The exporter's entry of
    the document (its models' export records), plus "_cases": the manifest entries of the cases it produced."""
    from harness import safefs
    from harness.runners.supervisor import FrameworkUnavailable, Supervisor, WorkerError

    entry: dict[str, Any] = {"runner": exporter.runner, "status": "ran", "models": {}}
    produced: dict[str, Any] = {}
    tol = tolerance()

    def recorded(record: dict[str, Any]) -> None:
        model = record["probe"].split("/", 1)[1]
        data = record.get("data") or {}
        row: dict[str, Any] = {"status": "exported" if record["status"] == "ok" else "failed",
                               "probe_status": record["status"], "exporter": data.get("exporter"),
                               "exporter_version": data.get("exporter_version"), "opset": data.get("opset")}
        for key in ("requested_opset", "ops", "file_bytes", "checker", "producer", "framework_output_dtype",
                    "reference_max_error", "notes"):
            if data.get(key) is not None:
                row[key] = data[key]
        if record.get("duration_s") is not None:
            row["duration_s"] = round(float(record["duration_s"]), 3)
        if row["status"] == "exported":
            try:
                folder = cases / case_name(exporter.name, model)
                folder.mkdir(parents=True, exist_ok=True)
                for fname in ("model.onnx", "data.npz"):
                    (folder / fname).write_bytes(safefs.read_bytes(workdir, f"scratch/portability/{model}/{fname}", FILE_LIMIT))
                _check_npz(folder / "data.npz")
            except (OSError, ValueError, KeyError) as exc:
                row.update(status="failed", probe_status="ok")
                record["reason"] = f"the exported case could not be copied out of the work folder: {exc}"
            else:
                produced[case_name(exporter.name, model)] = {
                    "opset": data.get("opset"), "ops": data.get("ops", []), "inputs": [{"kind": "tensor"}],
                    "outputs": [{"kind": "tensor"}], "rtol": tol["rtol"], "atol": tol["atol"], "exporter": exporter.name,
                    "model": model, "exporter_name": data.get("exporter"), "exporter_version": data.get("exporter_version")}
        if row["status"] != "exported":
            row["error"] = _first_line(record.get("reason")) or f"probe status {record['status']}"
        entry["models"][model] = row

    sup = Supervisor(exporter.interpreter, exporter.adapter, "cpu", workdir, lambda probe: timeout_s, on_record=recorded)
    try:
        sup.run([f"portability/{m}" for m in models])
    except (FrameworkUnavailable, WorkerError) as exc:
        entry.update(status="unavailable", error=_first_line(str(exc)))
    for model in models:
        entry["models"].setdefault(model, {"status": "failed", "probe_status": None, "exporter": None,
                                           "exporter_version": None, "opset": None,
                                           "error": entry.get("error") or "no record"})
    entry["models"] = {m: entry["models"][m] for m in models}  # the catalog's order, not the records' arrival
    entry["_cases"] = produced
    return entry


def _check_npz(path: Path) -> None:
    import numpy as np

    with np.load(path, allow_pickle=False) as npz:
        for key in ("in_0", "out_0"):
            if npz[key].dtype.kind not in "fiu":
                raise ValueError(f"{key} is not numeric ({npz[key].dtype})")


def _first_line(text: Any) -> str:
    return str(text).strip().splitlines()[0][:300] if text and str(text).strip() else ""


def write_manifest(cases: Path, entries: dict[str, Any]) -> None:
    tol = tolerance()
    write_json_atomic(cases / "manifest.json", {"source": "showdown portability export step", "rtol": tol["rtol"],
                                                "atol": tol["atol"], "cases": dict(sorted(entries.items()))})


# ---------------------------------------------------------------------------------------------- import step
def import_step(importer: Any, cases: Path, names: list[str], workdir: Path, timeout_s: float) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Every case through one importer (a harness.conformance.Importer) with the conformance driver: (the importer's
    entry of the document, one row per case)."""
    from harness import conformance

    t0 = time.monotonic()
    try:
        env, rows = conformance.run_cases(importer, cases, names, workdir, timeout_s, data_keys=("via",))
    except conformance.ConformanceError as exc:
        return {"status": "unavailable", "converter": None, "version": None, "max_opset": None,
                "error": _first_line(str(exc)), "wall_s": round(time.monotonic() - t0, 1)}, {}
    extra = env.get("_importer", {})
    versions = env.get("versions") if isinstance(env.get("versions"), dict) else None
    entry: dict[str, Any] = {"status": "ran", "converter": extra.get("importer"), "version": extra.get("importer_version"),
                             "max_opset": extra.get("max_opset"), "wall_s": round(time.monotonic() - t0, 1),
                             "workers_started": env.get("_workers_started")}
    if versions:
        entry["environment_versions"] = {str(k): str(v) for k, v in versions.items()}
    return entry, rows


# ---------------------------------------------------------------------------------------------- the document
def model_cell(case: dict[str, Any] | None, export: dict[str, Any], importer: dict[str, Any],
               row: dict[str, Any] | None) -> dict[str, Any]:
    """One model in one cell."""
    out: dict[str, Any] = {"opset": export.get("opset"), "exporter_version": export.get("exporter_version"),
                           "importer_version": importer.get("version")}
    if export["status"] != "exported" or case is None:
        return {**out, "status": "not_exported", "max_error": None, "error": export.get("error") or "not exported"}
    if importer["status"] != "ran":
        return {**out, "status": "importer_unavailable", "max_error": None, "error": importer.get("error") or ""}
    if row is None:
        return {**out, "status": "run_error", "max_error": None, "error": "the importer's run left no record of this case"}
    status = row["status"] if row["status"] in CONFORMANCE_STATUSES else "run_error"
    max_error = row.get("max_error")
    cell = {**out, "status": status, "max_error": max_error, "error": row.get("error", "") if status != "pass" else ""}
    if row.get("duration_s") is not None:
        cell["duration_s"] = row["duration_s"]
    if row.get("via") == "run":
        cell["via_run"] = status
        cell["status"] = "no_run_many"
        cell["error"] = "the importer's adapter gives no ImportResult.run_many" + (
            f" (its one-input run: {status}{': ' + cell['error'] if cell['error'] else ''})")
    return cell


def cell_status(models: dict[str, dict[str, Any]]) -> str:
    statuses = {m["status"] for m in models.values()}
    if statuses == {"pass"}:
        return "pass"
    if "pass" in statuses:
        return "partial"
    return statuses.pop() if len(statuses) == 1 else "mixed"


def build_document(models: list[str], exporters: dict[str, dict[str, Any]], importers: dict[str, dict[str, Any]],
                   rows: dict[str, dict[str, dict[str, Any]]], *, run: dict[str, Any]) -> dict[str, Any]:
    """exporters: name -> export_step's entry (with "_cases"); importers: name -> import_step's entry; rows:
    importer -> case -> row."""
    cells: dict[str, dict[str, Any]] = {}
    for ex_name, ex in exporters.items():
        cases = ex.get("_cases", {})
        cells[ex_name] = {}
        for im_name, im in importers.items():
            per_model = {m: model_cell(cases.get(case_name(ex_name, m)), ex["models"][m], im,
                                       rows.get(im_name, {}).get(case_name(ex_name, m))) for m in models}
            errors = [v["max_error"] for v in per_model.values() if v["max_error"] is not None]
            cells[ex_name][im_name] = {
                "status": cell_status(per_model), "passed": sum(v["status"] == "pass" for v in per_model.values()),
                "models_total": len(per_model),
                "max_error": "inf" if "inf" in errors else (max(errors) if errors else None), "models": per_model}
    return {
        "kind": "portability",
        "schema_version": 1,
        "models": list(models),
        "tolerance": tolerance(),
        "exporters": {k: {key: v for key, v in e.items() if not key.startswith("_")} for k, e in exporters.items()},
        "importers": importers,
        "cells": cells,
        "totals": totals(cells),
        "run": run,
    }


def totals(cells: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows = {ex: {"passed": sum(c["passed"] for c in by.values()), "of": sum(c["models_total"] for c in by.values())}
            for ex, by in cells.items()}
    columns: dict[str, dict[str, int]] = {}
    for by in cells.values():
        for im, c in by.items():
            slot = columns.setdefault(im, {"passed": 0, "of": 0, "exported": 0})
            slot["passed"] += c["passed"]
            slot["of"] += c["models_total"]
            slot["exported"] += sum(m["status"] != "not_exported" for m in c["models"].values())
    return {"exporters": rows, "importers": columns,
            "passed": sum(r["passed"] for r in rows.values()), "of": sum(r["of"] for r in rows.values())}


def validate(doc: Any) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(document)'}: {e.message}" for e in errors]


# ---------------------------------------------------------------------------------------------- the whole run
def run_matrix(exporters: list[Endpoint | tuple[str, str]], importers: list[Any | tuple[str, str]], models: list[str],
               work: Path, *, export_timeout_s: float = DEFAULT_EXPORT_TIMEOUT_S,
               import_timeout_s: float = DEFAULT_IMPORT_TIMEOUT_S, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Both steps; the document. An exporter or importer given as (name, error) could not be prepared: it is
    recorded as unavailable. `work` is emptied first (cases/ and the workers' folders)."""
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")  # noqa: UP017
    load = [round(x, 2) for x in os.getloadavg()]
    t0 = time.monotonic()
    cases = work / "cases"
    if work.exists():
        shutil.rmtree(work)
    cases.mkdir(parents=True)
    ex_docs: dict[str, dict[str, Any]] = {}
    manifest: dict[str, Any] = {}
    for ex in exporters:
        t = time.monotonic()
        if isinstance(ex, tuple):
            name, why = ex
            ex_docs[name] = {"runner": None, "status": "unavailable", "error": _first_line(why),
                             "models": {m: {"status": "failed", "probe_status": None, "exporter": None,
                                            "exporter_version": None, "opset": None, "error": _first_line(why)} for m in models}}
        else:
            say(f"export: {ex.name} ({ex.runner})")
            ex_docs[ex.name] = export_step(ex, models, work / f"export-{ex.name}", cases, export_timeout_s)
            manifest.update(ex_docs[ex.name]["_cases"])
        ex_docs[list(ex_docs)[-1]]["wall_s"] = round(time.monotonic() - t, 1)
    write_manifest(cases, manifest)
    export_wall = time.monotonic() - t0
    im_docs: dict[str, dict[str, Any]] = {}
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    names = sorted(manifest)
    for im in importers:
        if isinstance(im, tuple):
            im_docs[im[0]] = {"status": "unavailable", "converter": None, "version": None, "max_opset": None,
                              "error": _first_line(im[1]), "wall_s": 0.0}
            continue
        say(f"import: {im.name} over {len(names)} cases")
        if not names:
            im_docs[im.name] = {"status": "ran", "converter": None, "version": None, "max_opset": None, "wall_s": 0.0}
            continue
        im_docs[im.name], rows[im.name] = import_step(im, cases, names, work / f"import-{im.name}", import_timeout_s)
    run = {"started_at": started, "wall_s": round(time.monotonic() - t0, 1), "export_wall_s": round(export_wall, 1),
           "import_wall_s": round(time.monotonic() - t0 - export_wall, 1), "export_timeout_s": export_timeout_s,
           "import_timeout_s": import_timeout_s, "cpu_count": os.cpu_count(), "load_average_at_start": load,
           "cases_folder": str(cases)}
    return build_document(models, ex_docs, im_docs, rows, run=run)


# ---------------------------------------------------------------------------------------------- the command
def add_parser(sub: Any) -> None:
    p = sub.add_parser("portability", help="the ONNX portability matrix: every exporter x every importer",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--exporters", default=",".join(EXPORTERS), help=f"comma-separated (default {','.join(EXPORTERS)})")
    p.add_argument("--importers", default=",".join(IMPORTERS), help=f"comma-separated (default {','.join(IMPORTERS)})")
    p.add_argument("--models", default=None, help="comma-separated catalog ONNX models (default: all of them)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help=f"per-probe limit, seconds (default {DEFAULT_EXPORT_TIMEOUT_S:g} to export, {DEFAULT_IMPORT_TIMEOUT_S:g} to import)")
    p.add_argument("--work", type=Path, default=None, help="work folder for the cases (default <home>/portability)")
    p.add_argument("--out", type=Path, default=Path("results/portability"), help="folder for the document and matrix")
    p.add_argument("--render", type=Path, metavar="DOC", help="only write the matrix again from a document")


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def command(args: argparse.Namespace) -> int:
    from harness.report import portability as render

    def say(text: str) -> None:
        print(text, file=sys.stderr)

    if args.render is not None:
        try:
            doc = json.loads(args.render.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            say(f"showdown: error: {args.render}: {exc}")
            return 2
        errors = validate(doc)
        if errors:
            say(f"showdown: error: {args.render} is not a valid portability document: {errors[0]}")
            return 2
        for path in render.write(doc, args.render.with_suffix("")):
            print(f"wrote {path}")
        return 0
    from harness.catalog.onnx_models import EXPORT_MODELS_BY_ID as MODELS_BY_ID

    models = _split(args.models) if args.models else list(MODELS_BY_ID)
    unknown = [m for m in models if m not in MODELS_BY_ID]
    if unknown or not models:
        say(f"showdown: error: unknown ONNX model(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(MODELS_BY_ID)}")
        return 2
    if args.timeout is not None and not args.timeout > 0:
        say("showdown: error: --timeout takes seconds above 0")
        return 2
    from harness import conformance

    exporters: list[Any] = []
    importers: list[Any] = []
    try:
        for name in _split(args.exporters):
            registry.get(name)
        for name in _split(args.importers):
            if name != conformance.ONNXRUNTIME and name not in conformance.importers():
                registry.get(name)
    except registry.UnknownFramework as exc:
        say(f"showdown: error: {exc}")
        return 2
    for name in _split(args.exporters):
        try:
            exporters.append(prepare_exporter(name, say))
        except Exception as exc:  # an environment that cannot be built is this exporter's result, not the run's end
            exporters.append((name, f"its environment could not be prepared: {type(exc).__name__}: {exc}"))
    for name in _split(args.importers):
        try:
            importers.append(conformance.prepare_importer(name, say))
        except Exception as exc:
            importers.append((name, f"its environment could not be prepared: {type(exc).__name__}: {exc}"))
    work = args.work or registry.home() / "portability"
    doc = run_matrix(exporters, importers, models, work,
                     export_timeout_s=args.timeout or DEFAULT_EXPORT_TIMEOUT_S,
                     import_timeout_s=args.timeout or DEFAULT_IMPORT_TIMEOUT_S, say=say)
    errors = validate(doc)
    if errors:
        say(f"showdown: error: the document does not validate: {errors[0]}")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"portability-{doc['run']['started_at'].replace(':', '').replace('-', '')}"
    write_json_atomic(stem.with_suffix(".json"), doc)
    print(render.summary(doc))
    print(f"wrote {stem.with_suffix('.json')}")
    for path in render.write(doc, stem):
        print(f"wrote {path}")
    return 0
