"""Result documents: one versioned JSON document per (framework, device, run).

Schema history (the reader upgrades older versions and refuses newer ones):
  1: first version.
  2: status `unmapped` (the adapter's gap, not the framework's); an `unsupported` record carries its evidence (what
     was looked up and not found); a throughput record carries its first-step check against the float64 reference
     and its compile scope; the harness records which paths differed from its commit. Upgrading a version-1
     document marks what it could not have known (no evidence kept, no first-step check).

A document is rewritten atomically (temporary file + rename) after every probe, so a killed run loses at most the
probe in flight, and a re-run resumes it: records already present are not run again. A new run never writes into
another run's file.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SCHEMA_NAME = "showdown-result"
SCHEMA_VERSION = 2
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
SCHEMA_PATH = Path(__file__).parent / "schema" / f"result-v{SCHEMA_VERSION}.json"


class Status(str, enum.Enum):
    """Outcome of one probe. Every probe ends in exactly one of these; none of them stops the run."""

    OK = "ok"  # ran and agreed with the reference (or measured, for throughput)
    FAILED = "failed"  # ran, but the output disagreed with the reference or was malformed
    UNSUPPORTED = "unsupported"  # the framework does not offer it (data.evidence: what was looked up and not found)
    UNMAPPED = "unmapped"  # the adapter does not implement it: an adapter's gap, never scored as the framework's
    ERROR = "error"  # raised an exception
    TIMEOUT = "timeout"  # exceeded its wall-clock limit; the worker was killed
    CRASHED = "crashed"  # the worker process died (segfault, abort, out of memory)


STATUSES = tuple(s.value for s in Status)


class ResultError(Exception):
    """A result file that cannot be used; the message says what to do."""


def error_line(exc: BaseException, limit: int = 1000) -> str:
    """'Type: message' of an exception, on one line, for a record's reason. Not traceback's last line: since Python
    3.11 that can be a note a library attached (JAX adds one about its removed frames) instead of the error."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:limit]


def now_iso() -> str:
    # timezone.utc, not datetime.UTC (3.11+): the worker side also runs on Python 3.9 (tests/test_py39.py)
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")  # noqa: UP017


def make_record(
    probe: str,
    status: Status | str,
    *,
    reason: str = "",
    data: dict[str, Any] | None = None,
    started_at: str | None = None,
    duration_s: float = 0.0,
    exit_code: int | None = None,
    signal: int | None = None,
    log_tail: str | None = None,
) -> dict[str, Any]:
    return {
        "probe": probe,
        "suite": probe.split("/", 1)[0],
        "status": Status(status).value,
        "reason": reason,
        "started_at": started_at or now_iso(),
        "duration_s": round(float(duration_s), 6),
        "exit_code": exit_code,
        "signal": signal,
        "log_tail": log_tail,
        "data": data or {},
    }


def new_document(
    *, run_id: str, framework: str, device: str, plan: list[str], config: dict[str, Any],
    runner: dict[str, Any], harness: dict[str, Any], catalog_version: str,
) -> dict[str, Any]:
    stamp = now_iso()
    return {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "framework": framework,
        "device": device,
        "catalog_version": catalog_version,
        "created_at": stamp,
        "updated_at": stamp,
        "complete": False,
        "config": config,
        "plan": list(plan),
        "runner": runner,
        "harness": harness,
        "environment": None,
        "records": {},
    }


def new_unavailable_document(*, run_id: str, framework: str, device: str, reason: str, tried: list[dict[str, Any]],
                             runner: dict[str, Any], harness: dict[str, Any], machine: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record that a framework could not run here: what was tried and what it answered (never scored)."""
    return {
        "schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION, "kind": "unavailable", "run_id": run_id,
        "framework": framework, "device": device, "created_at": now_iso(), "reason": reason, "tried": tried,
        "runner": runner, "harness": harness, "machine": machine,
    }


def is_run(doc: Mapping[str, Any]) -> bool:
    """A run of the suite (as opposed to a record that the framework could not run here)."""
    return doc.get("kind", "run") == "run"


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(_finite(payload), fh, indent=1, sort_keys=False, allow_nan=False, default=_json_default)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a result is for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: store them as null (a reader treats null as 'no value')."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "dtype"):
        return _finite(value.tolist())
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def save_document(doc: dict[str, Any], path: Path) -> None:
    doc["updated_at"] = now_iso()
    write_json_atomic(path, doc)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ResultError(f"duplicate key {key[:80]!r} in one object (which value is meant is ambiguous)")
        out[key] = value
    return out


def parse_json(raw: bytes, where: str) -> Any:
    """Strict JSON from bytes: UTF-8 only, no duplicate keys, no NaN; every problem is one ResultError line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultError(f"{where}: not UTF-8 text (byte {exc.start}); not a result document") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_refuse_constant)
    except ResultError as exc:
        raise ResultError(f"{where}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ResultError(f"{where}: not valid JSON (line {exc.lineno}: {exc.msg}); was the file cut short?") from None
    except RecursionError:
        raise ResultError(f"{where}: nested too deeply to be a result document") from None


def _refuse_constant(name: str) -> Any:
    raise ResultError(f"{name} is not JSON (the harness writes null for a missing number)")


def load_document(path: Path | str) -> dict[str, Any]:
    """Read a result document, upgrading older schema versions; refuse what cannot be read, in one line."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ResultError(f"{path}: is a folder, not a result document")
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise ResultError(f"{path}: {size / 1e6:.0f} MB is too large to be a result document")
        raw = path.read_bytes()
    except OSError as exc:
        raise ResultError(f"{path}: cannot read ({exc.strerror or exc})") from None
    doc = parse_json(raw, str(path))
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_NAME:
        raise ResultError(f"{path}: not a showdown result document (no \"schema\": \"{SCHEMA_NAME}\")")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultError(f"{path}: schema_version missing or not an integer")
    if version < 1:
        raise ResultError(f"{path}: schema_version {version} does not exist (the first is 1)")
    if version > SCHEMA_VERSION:
        raise ResultError(
            f"{path}: written with result schema {version}, this showdown reads up to {SCHEMA_VERSION}; "
            "upgrade showdown (pip install -U -e .) to read it"
        )
    try:
        return upgrade(doc)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ResultError(f"{path}: a schema-{version} document with a malformed part ({type(exc).__name__}: {exc})") from None


def _upgrade_1_to_2(doc: dict[str, Any]) -> dict[str, Any]:
    for rec in (doc.get("records") or {}).values():
        data = rec.setdefault("data", {})
        if rec.get("status") == "unsupported" and "evidence" not in data:
            data["evidence"] = {"looked_up": [], "note": "schema 1 kept no evidence apart from the reason"}
        if rec.get("suite") == "throughput":
            data.setdefault("first_step", {"checked": False, "why": "schema 1: recorded before the first-step check existed"})
            data.setdefault("compile_scope", "unknown" if data.get("mode") == "compiled" else None)
    doc["schema_version"] = 2
    return doc


def upgrade(doc: dict[str, Any]) -> dict[str, Any]:
    """Bring an older document up to SCHEMA_VERSION, one step at a time."""
    steps: dict[int, Any] = {1: _upgrade_1_to_2}
    while doc["schema_version"] < SCHEMA_VERSION:
        doc = steps[doc["schema_version"]](doc)
    return doc


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def validate_document(doc: Any) -> list[str]:
    """Schema errors of a document, as 'path: message' lines (empty when valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(document)'}: {e.message}" for e in errors]


def iter_result_files(paths: Iterable[Path | str]) -> list[Path]:
    """Expand folders into the result documents directly in them (not in sub-folders: results/gpu is its own set;
    hidden files and the hidden work folders of runs in progress are skipped). A folder that cannot be read is an
    error, never an empty result."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            def refuse(exc: OSError, where: Path = p) -> None:
                raise ResultError(f"{exc.filename or where}: cannot read the folder ({exc.strerror or exc})")

            found: list[Path] = []
            for _root, dirs, files in os.walk(p, onerror=refuse):
                dirs[:] = []  # one folder, one set of runs: results/gpu beside results/ is another set
                found.extend(p / f for f in files if f.endswith(".json") and not f.startswith("."))
            out.extend(sorted(found))
        elif p.exists():
            out.append(p)
        else:
            raise ResultError(f"{p}: no such file or folder")
    return out


def device_slug(device: str) -> str:
    """The device as it may appear in a file name: cuda:1 -> cuda1 (a colon breaks Docker bind specifications)."""
    return device.replace(":", "")


def document_name(framework: str, device: str, stamp: str) -> str:
    return f"{framework}-{device_slug(device)}-{stamp}"


def unused_path(out_dir: Path, stem: str) -> Path:
    """A path for a new document that no other run has taken."""
    candidate = out_dir / f"{stem}.json"
    n = 1
    while candidate.exists():
        n += 1
        candidate = out_dir / f"{stem}-{n}.json"
    return candidate


def find_resumable(out_dir: Path, framework: str, device: str, runner: str, catalog_version: str,
                   say: Any = None) -> Path | None:
    """The newest incomplete document of the same framework, device, runner and catalog, if any. A document that
    cannot be read or does not validate is never resumed into (`say` is told why)."""
    if not out_dir.is_dir():
        return None
    best: tuple[str, Path] | None = None
    for path in out_dir.glob(f"{framework}-{device_slug(device)}-*.json"):
        try:
            doc = load_document(path)
            errors = validate_document(doc)
        except ResultError as exc:
            if say:
                say(f"not resuming {path.name}: {exc}")
            continue
        if not is_run(doc):
            continue
        if errors:
            if say:
                say(f"not resuming {path.name}: it does not validate ({errors[0]})")
            continue
        if (
            not doc.get("complete")
            and doc.get("framework") == framework
            and doc.get("device") == device
            and doc.get("runner", {}).get("name") == runner
            and doc.get("catalog_version") == catalog_version
        ):
            key = doc.get("created_at", "")
            if best is None or key > best[0]:
                best = (key, path)
    return best[1] if best else None
