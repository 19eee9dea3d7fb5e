"""One run of the suite against one framework on one device: prepare the environment, find or start the result
document (resuming an interrupted run of the same framework, device, runner and catalog), supervise the worker,
and save the document after every record."""

from __future__ import annotations

import datetime as _dt
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.catalog.ops import CATALOG_VERSION
from harness.probes import DEFAULT_TIMEOUTS, plan
from harness.registry import SOURCE_ROOT, FrameworkInfo
from harness.results import (
    document_name,
    find_resumable,
    load_document,
    new_document,
    save_document,
    unused_path,
)
from harness.runners.base import Runner
from harness.runners.supervisor import Supervisor


@dataclass
class RunRequest:
    framework: FrameworkInfo
    device: str
    suites: list[str]
    out_dir: Path
    runner: Runner
    quick: bool = False
    fresh: bool = False  # do not resume an interrupted run
    timeouts: dict[str, float] = field(default_factory=dict)
    probes: list[str] | None = None  # restrict to these probe ids (tests, reruns)


@dataclass
class RunHooks:
    say: Callable[[str], None] = lambda text: None
    planned: Callable[[int, int], None] = lambda total, done: None  # total probes, already recorded
    started: Callable[[str], None] = lambda probe: None
    recorded: Callable[[dict[str, Any]], None] = lambda record: None


@dataclass
class RunResult:
    path: Path
    document: dict[str, Any]
    resumed: bool
    ran: int


def harness_identity() -> dict[str, Any]:
    commit: str | None = None
    dirty: bool | None = None
    if shutil.which("git") and (SOURCE_ROOT / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(SOURCE_ROOT), "rev-parse", "HEAD"], capture_output=True,
                                    text=True, timeout=10, check=True).stdout.strip() or None
            status = subprocess.run(["git", "-C", str(SOURCE_ROOT), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10, check=True).stdout
            dirty = bool(status.strip())
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {"version": __version__, "git_commit": commit, "git_dirty": dirty}


def execute(req: RunRequest, hooks: RunHooks | None = None) -> RunResult:
    hooks = hooks or RunHooks()
    info = req.framework
    interpreter = req.runner.prepare(info, req.device, hooks.say)
    timeouts = {**DEFAULT_TIMEOUTS, **req.timeouts}
    wanted = req.probes if req.probes is not None else plan(req.suites)

    req.out_dir = req.out_dir.resolve()  # workers and the converters they start may change directory
    req.out_dir.mkdir(parents=True, exist_ok=True)
    staging = req.out_dir / f".staging-{info.name}-{req.device.replace(':', '-')}"
    sup = Supervisor(interpreter, info.adapter, req.device, staging, lambda p: timeouts[p.split("/", 1)[0]], req.quick)
    environment = sup.environment()  # raises FrameworkUnavailable with a one-line reason

    path: Path | None = None
    doc: dict[str, Any] | None = None
    if not req.fresh:
        path = find_resumable(req.out_dir, info.name, req.device, req.runner.name, CATALOG_VERSION)
        if path is not None:
            doc = load_document(path)
            before = (doc.get("environment") or {}).get("versions")
            if before is not None and before != environment["versions"]:
                hooks.say(f"not resuming {path.name}: package versions changed since it started; starting a new run")
                doc, path = None, None
            else:
                hooks.say(f"resuming {path.name} ({len(doc['records'])} probes already recorded)")
    resumed = doc is not None
    if doc is None or path is None:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = unused_path(req.out_dir, document_name(info.name, req.device, stamp))
        doc = new_document(
            run_id=path.stem, framework=info.name, device=req.device, plan=wanted,
            config={"suites": list(req.suites), "quick": req.quick, "timeouts": timeouts},
            runner={**interpreter.describe}, harness=harness_identity(), catalog_version=CATALOG_VERSION,
        )
    else:
        doc["plan"] = doc["plan"] + [p for p in wanted if p not in doc["plan"]]
        doc["config"]["suites"] = sorted(set(doc["config"]["suites"]) | set(req.suites))
    doc["environment"] = environment
    doc["complete"] = False
    save_document(doc, path)

    workdir = req.out_dir / f".{path.stem}.work"
    todo = [p for p in wanted if p not in doc["records"]]
    hooks.planned(len(wanted), len(wanted) - len(todo))
    ran = 0

    def on_record(record: dict[str, Any]) -> None:
        nonlocal ran
        assert doc is not None and path is not None
        if record["probe"] in doc["records"]:
            return  # already have it (a leftover file of an earlier host): never run or count a probe twice
        doc["records"][record["probe"]] = record
        order = {p: i for i, p in enumerate(doc["plan"])}
        doc["records"] = dict(sorted(doc["records"].items(), key=lambda kv: order.get(kv[0], len(order))))
        doc["complete"] = all(p in doc["records"] for p in doc["plan"])
        save_document(doc, path)
        ran += 1
        hooks.recorded(record)

    sup.workdir = workdir
    sup.on_record = on_record
    sup.on_start = hooks.started
    sup.run(todo)
    doc["complete"] = all(p in doc["records"] for p in doc["plan"])
    save_document(doc, path)
    if doc["complete"]:
        shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    return RunResult(path, doc, resumed, ran)
