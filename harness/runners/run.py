"""One run of the suite against one framework on one device: prepare the environment, find or start the result
document (resuming an interrupted run of the same framework, device, runner and catalog), supervise the worker,
and save the document after every record."""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__, safefs
from harness.catalog.ops import CATALOG_VERSION
from harness.probes import DEFAULT_TIMEOUTS, plan
from harness.registry import SOURCE_ROOT, FrameworkInfo
from harness.results import (
    ResultError,
    device_slug,
    document_name,
    find_resumable,
    load_document,
    new_document,
    save_document,
    unused_path,
    validate_document,
)
from harness.runners.base import Runner
from harness.runners.lock import folder_lock
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
    wait: bool = False  # wait for another run that holds the output folder, instead of refusing
    memory_limit_bytes: int | None = None  # kill a worker whose resident memory goes over this, recording the probe
    budget_s: float | None = None  # start no probe after this many seconds; the rest waits for a resume
    rounds: int | None = None  # timed rounds per measurement (None: the timing protocol's default)


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


def harness_identity(exclude: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The harness commit, and whether the source tree differed from it: tracked changes and untracked files that
    git does not ignore, except result documents and reports (results/ and the run's own output folder), which a
    run writes itself and which say nothing about the code that ran."""
    commit: str | None = None
    dirty: bool | None = None
    changed: list[str] = []
    if shutil.which("git") and (SOURCE_ROOT / ".git").exists():
        excludes = [":(exclude)results"]
        for path in exclude:
            try:
                excludes.append(f":(exclude){path.resolve().relative_to(SOURCE_ROOT)}")
            except ValueError:
                pass  # outside the source tree: git does not see it anyway
        try:
            commit = subprocess.run(["git", "-C", str(SOURCE_ROOT), "rev-parse", "HEAD"], capture_output=True,
                                    text=True, timeout=10, check=True).stdout.strip() or None
            status = subprocess.run(["git", "-C", str(SOURCE_ROOT), "status", "--porcelain=v1", "--untracked-files=all",
                                     "--", ".", *excludes], capture_output=True, text=True, timeout=30, check=True).stdout
            changed = [line[3:] for line in status.splitlines() if line.strip()]
            dirty = bool(changed)
        except (OSError, subprocess.SubprocessError):
            commit, dirty = None, None
    return {"version": __version__, "git_commit": commit, "git_dirty": dirty, "changed_paths": changed[:20]}


class RunStorageError(Exception):
    """The result document could not be written (disk full, permissions); what was saved before stays valid."""


def check_output_folder(out_dir: Path) -> Path:
    """The output folder, absolute, existing and writable; a one-line OSError-free refusal otherwise."""
    from harness.results import ResultError

    out = out_dir.resolve()
    if out.exists() and not out.is_dir():
        raise ResultError(f"{out_dir} is a file, not a folder: choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultError(f"cannot create the output folder {out_dir}: {exc.strerror or exc}") from None
    probe = out / f".showdown-write-check-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ResultError(f"cannot write into the output folder {out_dir}: {exc.strerror or exc}") from None
    try:  # resuming needs to see what is there
        with os.scandir(out):
            pass
    except OSError as exc:
        raise ResultError(f"cannot read the output folder {out_dir}: {exc.strerror or exc}") from None
    return out


def sweep(out_dir: Path, say: Callable[[str], None]) -> None:
    """Clean what an earlier run that failed or was killed left in the folder (the caller holds its lock):
    staging folders go; a work folder's finished record files go into its document first (never run again),
    then the folder goes."""
    from harness.protocol import record_filename

    for entry in sorted(out_dir.iterdir()):
        if not entry.is_dir() or entry.is_symlink():
            continue
        if entry.name.startswith(".staging-"):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(".") and entry.name.endswith(".work"):
            doc_path = out_dir / (entry.name[1:].removesuffix(".work") + ".json")
            kept = 0
            try:
                doc = load_document(doc_path)
                for probe in doc["plan"]:
                    if probe in doc["records"]:
                        continue
                    try:
                        record = safefs.read_json(entry, f"records/{record_filename(probe)}")
                    except (OSError, ValueError):
                        continue
                    if isinstance(record, dict) and record.get("probe") == probe:
                        doc["records"][probe] = record
                        if validate_document(doc):  # not a record this document can hold: the probe runs again
                            del doc["records"][probe]
                            continue
                        kept += 1
                if kept:
                    doc["complete"] = all(p in doc["records"] for p in doc["plan"])
                    save_document(doc, doc_path)
                    say(f"kept {kept} finished probe record(s) an interrupted run left in {entry.name}")
            except (ResultError, OSError, KeyError, TypeError):
                pass
            shutil.rmtree(entry, ignore_errors=True)


def execute(req: RunRequest, hooks: RunHooks | None = None) -> RunResult:
    hooks = hooks or RunHooks()
    req.out_dir = check_output_folder(req.out_dir)  # workers and the converters they start may change directory
    with folder_lock(req.out_dir, wait=req.wait, say=hooks.say):
        sweep(req.out_dir, hooks.say)
        return _execute(req, hooks)


def _execute(req: RunRequest, hooks: RunHooks) -> RunResult:
    info = req.framework
    interpreter = req.runner.prepare(info, req.device, hooks.say)
    timeouts = {**DEFAULT_TIMEOUTS, **req.timeouts}
    wanted = req.probes if req.probes is not None else plan(req.suites, req.device)

    staging = req.out_dir / f".staging-{info.name}-{device_slug(req.device)}"
    sup = Supervisor(interpreter, info.adapter, req.device, staging, lambda p: timeouts[p.split("/", 1)[0]], req.quick,
                     rounds=req.rounds, memory_limit_bytes=req.memory_limit_bytes)
    try:
        environment = sup.environment()  # raises FrameworkUnavailable with a one-line reason
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    path: Path | None = None
    doc: dict[str, Any] | None = None
    if not req.fresh:
        path = find_resumable(req.out_dir, info.name, req.device, req.runner.name, CATALOG_VERSION, say=hooks.say)
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
            config={"suites": list(req.suites), "quick": req.quick, "timeouts": timeouts,
                    **({"rounds": req.rounds} if req.rounds is not None else {})},
            runner={**interpreter.describe}, harness=harness_identity((req.out_dir,)), catalog_version=CATALOG_VERSION,
        )
    else:
        doc["plan"] = doc["plan"] + [p for p in wanted if p not in doc["plan"]]
        doc["config"]["suites"] = sorted(set(doc["config"]["suites"]) | set(req.suites))
    doc["environment"] = environment
    doc["complete"] = False
    _save(doc, path)

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
        try:
            _save(doc, path)
        except RunStorageError:
            del doc["records"][record["probe"]]  # not saved: its record file stays in the work folder for resume
            raise
        ran += 1
        hooks.recorded(record)

    sup.workdir = workdir
    sup.on_record = on_record
    sup.on_start = hooks.started
    if req.budget_s is not None:
        sup.deadline = time.monotonic() + req.budget_s
    try:
        sup.run(todo)
        doc["complete"] = all(p in doc["records"] for p in doc["plan"])
        _save(doc, path)
        if sup.stopped_by_budget:
            hooks.say(f"the budget of {req.budget_s:g} s is spent: {len(doc['plan']) - len(doc['records'])} probes left; "
                      "the same command resumes them")
    finally:
        # the work folder goes unless it still holds a record the document could not take (disk full): the next
        # run in this folder picks that up (sweep) and does not run the probe again
        leftover = workdir.is_dir() and safefs.list_files(workdir, "records", ".json")
        if not leftover:
            shutil.rmtree(workdir, ignore_errors=True)
    return RunResult(path, doc, resumed, ran)


def _save(doc: dict[str, Any], path: Path) -> None:
    try:
        save_document(doc, path)
    except OSError as exc:
        raise RunStorageError(f"cannot write {path}: {exc.strerror or exc}; the document keeps every probe saved "
                              "before; free the space (or fix the folder) and run the same command again to resume") from None
