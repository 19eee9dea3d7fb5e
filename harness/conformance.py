"""ONNX importer conformance, host side: ONNX's own backend node tests (one-operator models with inputs and expected
outputs) through an importer, one case at a time, in a worker that may crash or hang without stopping the run.

    showdown conformance --importer onnxruntime|tvm|torch [--quick N] [--timeout S] --out DIR

The cases: onnx 1.18.0 is the last release whose package ships the node tests as data files
(onnx/backend/test/data/node/); the harness's own onnx is newer. So a small virtualenv of its own,
<home>/onnx-node-tests/venv, gets `onnx==1.18.0` (pinned here, from pip's default index) and converts every case
once (harness/conformance_export.py) into <home>/onnx-node-tests/cases-1.18.0/: the model, its inputs and expected
outputs as .npz (readable by any NumPy an importer's environment has), and a manifest with each model's opset.

The run: the suite's own machinery (harness.runners.supervisor, harness.worker): every case is a probe
'conformance/<case>' run by harness.probes.conformance in the importer's environment (onnxruntime: this interpreter;
a framework: its virtualenv, through the venv runner), with a per-case time limit; a case that hangs is killed with
its worker (timeout), one that kills the worker is recorded as a crash, and a new worker goes on with the rest.

The document (schema: harness/schema/conformance-v1.json): the importer and its version, the tests' onnx release,
each case's status (pass, wrong, convert_error, run_error, timeout, crash; untested where a value has no plain NumPy
form: float8, 4-bit and similar types), the first error line and the largest |error|, the pass rates over every
tested case and over those at or below the importer's highest opset (asked of the importer), and the failing
operators. The host never imports a framework.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import registry
from harness.results import write_json_atomic

#: the onnx release whose package still carries the node tests (pinned: the cases are that release's)
ONNX_TESTS_RELEASE = "1.18.0"
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "conformance-v1.json"
CASES_ENV = "SHOWDOWN_CONFORMANCE_CASES"  # the worker side reads the cache folder from it (harness.probes.conformance)
DEFAULT_TIMEOUT_S = 30.0
QUICK_SEED = 0  # --quick N: random.Random(QUICK_SEED).sample of the sorted case names, run in name order
STATUSES = ("pass", "wrong", "convert_error", "run_error", "timeout", "crash", "untested")
ONNXRUNTIME = "onnxruntime"
ONNXRUNTIME_ADAPTER = "harness.probes.conformance:OnnxRuntimeImporter"


def importers() -> dict[str, registry.FrameworkInfo]:
    """Importers that are not scored frameworks (compilers): a folder under importers/ laid out like a framework's
    (pinned requirements-cpu.txt and its lock, adapter.py), built by the venv runner like one; not in the registry."""
    root = registry.SOURCE_ROOT / "importers"
    return {"tvm": registry.FrameworkInfo("tvm", "Apache TVM", "importers.tvm.adapter:TvmImporter", root / "tvm",
                                          "ONNX through TVM's Relax frontend, compiled for llvm, run on its VM")}


class ConformanceError(Exception):
    """The run cannot go on (the cases cannot be made, the importer's environment cannot start); says why."""


# ---------------------------------------------------------------------------------------------- the cases
def tests_home() -> Path:
    return registry.home() / "onnx-node-tests"


def cases_dir(home: Path | None = None) -> Path:
    return (home or tests_home()) / f"cases-{ONNX_TESTS_RELEASE}"


def ensure_cases(say: Callable[[str], None] = print, home: Path | None = None) -> Path:
    """The case cache, made once (a virtualenv with onnx==1.18.0, then the export), reused after."""
    home = home or tests_home()
    dest = cases_dir(home)
    if (dest / "manifest.json").is_file():
        return dest
    venv = home / "venv"
    python = venv / "bin" / "python"
    home.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        say(f"creating {venv} with onnx=={ONNX_TESTS_RELEASE} (its package ships the node tests)")
        _call([sys.executable, "-m", "venv", str(venv)], "python -m venv")
    _call([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"onnx=={ONNX_TESTS_RELEASE}"],
          f"pip install onnx=={ONNX_TESTS_RELEASE}")
    staging = Path(tempfile.mkdtemp(prefix=".cases-", dir=home))
    try:
        say(f"converting onnx {ONNX_TESTS_RELEASE}'s node tests into {dest}")
        _call([str(python), str(Path(__file__).with_name("conformance_export.py")), str(staging)], "the case export")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _call(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}").splitlines()[-1]
        raise ConformanceError(f"{what} failed: {last}")


def load_manifest(cases: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((cases / "manifest.json").read_text(encoding="utf-8"))
    return manifest


def select(names: list[str], quick: int | None) -> list[str]:
    """Every case in name order, or a fixed sample of `quick` of them (seed QUICK_SEED), in name order."""
    names = sorted(names)
    if quick is None or quick >= len(names):
        return names
    return sorted(random.Random(QUICK_SEED).sample(names, quick))


# ---------------------------------------------------------------------------------------------- the run
@dataclasses.dataclass
class Importer:
    name: str
    adapter: str  # module:Class, loaded by the worker
    interpreter: Any  # harness.runners.base.Interpreter


def prepare_importer(name: str, say: Callable[[str], None]) -> Importer:
    """onnxruntime in this interpreter (the reference), an importer of importers() or a framework's adapter, each in
    its virtualenv."""
    from harness.runners.base import Interpreter, source_env

    if name == ONNXRUNTIME:
        return Importer(name, ONNXRUNTIME_ADAPTER,
                        Interpreter([sys.executable], source_env(), {"name": "local", "python": sys.executable}))
    from harness.runners import get_runner

    info = importers().get(name) or registry.get(name)
    return Importer(name, info.adapter, get_runner("venv").prepare(info, "cpu", say))


def case_status(record: dict[str, Any]) -> str:
    if record["status"] == "timeout":
        return "timeout"
    if record["status"] == "crashed":
        return "crash"
    data = record.get("data") or {}
    status = data.get("conformance")
    if status in STATUSES:
        return str(status)
    return "convert_error" if record["status"] == "unmapped" else "run_error"


def run_cases(importer: Importer, cases: Path, names: list[str], workdir: Path, timeout_s: float,
              on_case: Callable[[str, dict[str, Any]], None] = lambda name, row: None,
              data_keys: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Run the cases through the importer's worker; (the worker's environment, one row per case). `data_keys`:
    more keys of the probe's data copied into each row (e.g. "via"; the conformance document takes none)."""
    from harness.runners.supervisor import FrameworkUnavailable, Supervisor, WorkerError

    manifest = load_manifest(cases)["cases"]
    interpreter = dataclasses.replace(importer.interpreter, env={**importer.interpreter.env, CASES_ENV: str(cases)})
    rows: dict[str, dict[str, Any]] = {}
    extra: dict[str, Any] = {}

    def recorded(record: dict[str, Any]) -> None:
        name = record["probe"].split("/", 1)[1]
        data = record.get("data") or {}
        entry = manifest.get(name, {})
        row: dict[str, Any] = {"status": case_status(record), "opset": entry.get("opset"), "ops": entry.get("ops", [])}
        if row["status"] != "pass":
            row["error"] = (record.get("reason") or "").splitlines()[0][:300] if record.get("reason") else ""
        if data.get("max_error") is not None:
            row["max_error"] = data["max_error"]
        elif data.get("max_error_inf"):
            row["max_error"] = "inf"
        if record.get("duration_s") is not None:
            row["duration_s"] = round(float(record["duration_s"]), 4)
        for key in ("importer", "importer_version", "max_opset", "max_opset_evidence"):
            if data.get(key) is not None and key not in extra:
                extra[key] = data[key]
        row.update({key: data[key] for key in data_keys if data.get(key) is not None})
        rows[name] = row
        on_case(name, row)

    sup = Supervisor(interpreter, importer.adapter, "cpu", workdir, lambda probe: timeout_s, on_record=recorded)
    try:
        env = sup.environment()
        sup.run([f"conformance/{n}" for n in names])
    except (FrameworkUnavailable, WorkerError) as exc:
        raise ConformanceError(f"{importer.name}: {exc}") from None
    env = {**env, "_importer": extra, "_workers_started": sup.workers_started}
    return env, rows


def summarize(rows: dict[str, dict[str, Any]], max_opset: int | None) -> dict[str, Any]:
    """Counts per status; pass rates over the tested cases, over those at or below max_opset (a case with no
    default-domain opset counts in both) and over every case (an untested one counting as not passed); per operator, its single-operator cases and how many of them fail (the
cases with several operators, such as the '_expanded' function bodies, are listed by name when they fail)."""
    counts = Counter(r["status"] for r in rows.values())
    tested = {n: r for n, r in rows.items() if r["status"] != "untested"}
    within = {n: r for n, r in tested.items() if max_opset is None or r["opset"] is None or r["opset"] <= max_opset}

    def rate(subset: dict[str, dict[str, Any]]) -> dict[str, Any]:
        passed = sum(r["status"] == "pass" for r in subset.values())
        return {"passed": passed, "cases": len(subset), "rate": round(passed / len(subset), 4) if subset else None}

    per_op: dict[str, dict[str, int]] = {}
    for r in tested.values():
        if len(r["ops"]) != 1:  # an operator's own cases: its expanded forms and multi-node tests are not its
            continue
        slot = per_op.setdefault(r["ops"][0], {"cases": 0, "failed": 0})
        slot["cases"] += 1
        slot["failed"] += r["status"] != "pass"
    failing = {op: v for op, v in sorted(per_op.items()) if v["failed"]}
    return {
        "counts": {s: counts.get(s, 0) for s in STATUSES},
        "pass_rate": {"tested": rate(tested), "at_or_below_max_opset": rate(within), "every_case": rate(rows)},
        "failing_ops": failing,
        "failing_ops_all_cases": sorted(op for op, v in failing.items() if v["failed"] == v["cases"]),
        "failing_multi_op_cases": sorted(n for n, r in tested.items() if len(r["ops"]) != 1 and r["status"] != "pass"),
    }


def build_document(importer: str, env: dict[str, Any], rows: dict[str, dict[str, Any]], *, total_cases: int,
                   quick: int | None, timeout_s: float, wall_s: float, started_at: str) -> dict[str, Any]:
    extra = env.get("_importer", {})
    max_opset = extra.get("max_opset")
    return {
        "kind": "conformance",
        "schema_version": 1,
        "importer": {
            "name": importer,
            "converter": extra.get("importer"),
            "version": extra.get("importer_version"),
            "max_opset": max_opset,
            "max_opset_evidence": extra.get("max_opset_evidence") or "the importer does not say: every case is counted",
        },
        "tests": {"suite": "onnx backend node tests", "onnx_release": ONNX_TESTS_RELEASE, "total_cases": total_cases,
                  "selected": len(rows), "quick": quick, "quick_seed": QUICK_SEED if quick is not None else None,
                  "rtol": 1e-3, "atol": 1e-7},
        "run": {"started_at": started_at, "wall_s": round(wall_s, 1), "timeout_s": timeout_s,
                "cpu_count": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                "workers_started": env.get("_workers_started"),
                "environment": {k: v for k, v in env.items() if not k.startswith("_")}},
        "summary": summarize(rows, max_opset),
        "cases": dict(sorted(rows.items())),
    }


def validate(doc: Any) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(document)'}: {e.message}" for e in errors]


# ---------------------------------------------------------------------------------------------- the command
class Progress:
    """A one-line bar on a terminal; a line per 10% elsewhere."""

    def __init__(self, total: int, stream: Any = None) -> None:
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.counts: Counter[str] = Counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.monotonic()

    def __call__(self, name: str, row: dict[str, Any]) -> None:
        self.done += 1
        self.counts[row["status"]] += 1
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        tally = " ".join(f"{s} {self.counts[s]}" for s in STATUSES if self.counts[s])
        line = f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {time.monotonic() - self.t0:.0f}s {tally}"
        if self.tty:
            self.stream.write(f"\r{line[:160]:<160}")
            if self.done == self.total:
                self.stream.write("\n")
        elif self.done == self.total or self.done % max(1, self.total // 10) == 0:
            self.stream.write(line + "\n")
        self.stream.flush()


def add_parser(sub: Any) -> None:
    p = sub.add_parser("conformance", help="ONNX's backend node tests through one importer (crash- and hang-proof)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--importer", required=True, help="onnxruntime (the reference, in this interpreter), tvm (a compiler, "
                   "in its virtualenv from importers/tvm) or a framework "
                   "whose adapter maps an ONNX importer (e.g. torch: onnx2torch, in its virtualenv)")
    p.add_argument("--quick", type=int, metavar="N", help=f"a fixed sample of N cases (seed {QUICK_SEED}) instead of all")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S", help="per-case limit, seconds")
    p.add_argument("--out", type=Path, required=True, help="folder for the document")


def command(args: argparse.Namespace) -> int:
    if args.quick is not None and args.quick < 1:
        print("showdown: error: --quick takes a number of cases above 0", file=sys.stderr)
        return 2
    if not args.timeout > 0:
        print("showdown: error: --timeout takes seconds above 0", file=sys.stderr)
        return 2
    try:
        if args.importer != ONNXRUNTIME and args.importer not in importers():
            registry.get(args.importer)
        cases = ensure_cases(lambda text: print(text, file=sys.stderr))
        manifest = load_manifest(cases)
        names = select(list(manifest["cases"]), args.quick)
        importer = prepare_importer(args.importer, lambda text: print(text, file=sys.stderr))
        args.out.mkdir(parents=True, exist_ok=True)
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")  # noqa: UP017
        t0 = time.monotonic()
        workdir = Path(tempfile.mkdtemp(prefix=f".conformance-{args.importer}-", dir=args.out))
        try:
            env, rows = run_cases(importer, cases, names, workdir, args.timeout, Progress(len(names)))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        doc = build_document(args.importer, env, rows, total_cases=len(manifest["cases"]), quick=args.quick,
                             timeout_s=args.timeout, wall_s=time.monotonic() - t0, started_at=started)
    except (ConformanceError, registry.UnknownFramework) as exc:
        print(f"showdown: error: {exc}", file=sys.stderr)
        return 2
    errors = validate(doc)
    if errors:
        print(f"showdown: error: the document does not validate: {errors[0]}", file=sys.stderr)
        return 2
    path = args.out / f"{args.importer}-conformance-{started.replace(':', '').replace('-', '')}.json"
    write_json_atomic(path, doc)
    print(render_summary(doc))
    print(f"wrote {path}")
    return 0


def render_summary(doc: dict[str, Any]) -> str:
    s, imp = doc["summary"], doc["importer"]
    rate_all, rate_op, rate_every = (s["pass_rate"][k] for k in ("tested", "at_or_below_max_opset", "every_case"))

    def pct(r: dict[str, Any]) -> str:
        return f"{r['passed']}/{r['cases']} ({100 * r['rate']:.1f}%)" if r["rate"] is not None else "no cases"

    lines = [
        f"{imp['name']} ({imp['converter']} {imp['version']}) on onnx {doc['tests']['onnx_release']}'s node tests: "
        f"{doc['tests']['selected']} of {doc['tests']['total_cases']} cases in {doc['run']['wall_s']:.0f}s",
        "  " + ", ".join(f"{k} {v}" for k, v in s["counts"].items()),
        f"  pass rate, tested cases: {pct(rate_all)}",
        f"  pass rate at or below opset {imp['max_opset']}: {pct(rate_op)}" if imp["max_opset"] is not None
        else "  the importer names no highest opset: every tested case counts",
        f"  pass rate, every case (untested as not passed): {pct(rate_every)}",
    ]
    worst = sorted(s["failing_ops"].items(), key=lambda kv: -kv[1]["failed"])[:12]
    if worst:
        lines.append("  most failing operators: " + ", ".join(f"{op} {v['failed']}/{v['cases']}" for op, v in worst))
    return "\n".join(lines)
