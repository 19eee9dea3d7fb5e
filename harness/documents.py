"""Result documents as the host's commands read them: loading and choosing documents (skipping bad ones with
why), the conformance and portability documents beside them, scoring a set of one device class, writing a file in
one step, and the exit statuses and errors those commands end with. The command line (harness.cli) and the
commands registered from other modules (compare, export) share these; none of them imports the command line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.results import ResultError, is_run, iter_result_files, load_document, validate_document

EXIT_USAGE = 2  # bad arguments or input: one line on stderr
EXIT_SOME_FAILED = 3  # a framework could not run (with several asked for: at least one, the others did)
EXIT_ENVIRONMENT = 4  # the environment (virtualenv, image) of the framework asked for could not be built
EXIT_INVALID_INPUT = 1  # report/score/validate: some documents were skipped as unreadable or invalid (the rest used)
EXIT_STORAGE = 74  # a result could not be written (disk full, permissions); what was saved stays valid
EXIT_BUSY = 75  # another run holds the output folder; try again later (or --wait)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (128 + SIGPIPE, what a shell reports for `yes | head -1`)


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""

    code = EXIT_USAGE


class FrameworkFailed(Exception):
    """A framework asked for could not run (not usable in its environment, its worker failed): one line, exit 3."""

    code = EXIT_SOME_FAILED


class EnvironmentFailed(FrameworkFailed):
    """The framework's environment (virtualenv or image) could not be built: one line, exit 4."""

    code = EXIT_ENVIRONMENT


class Loaded:
    """Documents read for a report or scores, and the files skipped (with why), so the caller can exit non-zero."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []
        self.skipped: list[str] = []
        self.notes: list[str] = []
        self.conformance: dict[str, dict[str, Any]] = {}  # importer -> its newest node-test conformance document
        self.portability: dict[str, Any] | None = None  # the newest portability matrix


def load_many(paths: Sequence[Path], newest_only: bool, loaded: Loaded | None = None) -> list[dict[str, Any]]:
    """Every readable, schema-valid document (a bad one is skipped with a warning naming it and why); with
    newest_only, one per framework and device: the newest complete document, else the newest (saying so)."""
    loaded = loaded if loaded is not None else Loaded()
    files = iter_result_files(paths)
    if not files:
        raise UsageError(f"no result documents in {', '.join(map(str, paths))}")
    for f in files:
        try:
            doc = load_document(f)
            errors = validate_document(doc)
        except ResultError as exc:
            errors = [str(exc).removeprefix(f"{f}: ")]
        if errors:
            loaded.skipped.append(f"{f}: {errors[0]}" + (f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""))
            continue
        doc["_source"] = str(f)
        loaded.docs.append(doc)
    if not loaded.docs:
        if len(loaded.skipped) == 1:
            raise UsageError(loaded.skipped[0])
        raise UsageError(f"no valid result documents in {', '.join(map(str, paths))}: {len(loaded.skipped)} skipped, "
                         f"the first: {loaded.skipped[0]}")
    for line in loaded.skipped:
        print(f"showdown: warning: skipping {line}", file=sys.stderr)
    if not newest_only:
        return loaded.docs
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in loaded.docs:
        groups.setdefault((d["framework"], d["device"]), []).append(d)
    chosen = []
    for (fw, device), group in sorted(groups.items()):
        group.sort(key=lambda d: d["created_at"], reverse=True)
        runs = [d for d in group if is_run(d)]
        if not runs:  # only records that it could not run here: the newest says why
            chosen.append(group[0])
            continue
        group = runs
        complete = [d for d in group if d["complete"]]
        pick = complete[0] if complete else group[0]
        if pick is not group[0]:
            note = (f"{fw} on {device}: using {Path(pick['_source']).name} (complete) rather than the newer, incomplete "
                    f"{Path(group[0]['_source']).name}")
            loaded.notes.append(note)
            print(f"showdown: note: {note}", file=sys.stderr)
        elif not pick["complete"]:
            note = f"{fw} on {device}: only an incomplete document ({len(pick['records'])}/{len(pick['plan'])} probes): {Path(pick['_source']).name}"
            loaded.notes.append(note)
            print(f"showdown: note: {note}", file=sys.stderr)
        chosen.append(pick)
    return chosen


def device_class(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


def scored(paths: Sequence[Path], newest_only: bool, rubric_id: str, loaded: Loaded,
            device: str | None = None) -> tuple[list[dict[str, Any]], Any, Any]:
    """The documents of one device class, their rubric, and their scores: CPU and GPU runs are separate sets (a
    GPU figure beside a CPU one would compare machines, not frameworks), never mixed in one report."""
    from harness.scoring import rubric as rb
    from harness.scoring.score import score

    docs = load_many(paths, newest_only=newest_only, loaded=loaded)
    for d in docs:
        d.pop("_source", None)
    classes = sorted({device_class(d["device"]) for d in docs})
    if device is None and len(classes) > 1:
        raise UsageError(f"the documents hold {' and '.join(classes)} runs: report one set at a time (--device cpu or "
                         "--device cuda; `nox -s bench-gpu` keeps GPU runs in results/gpu)")
    wanted = device or classes[0]
    docs = [d for d in docs if device_class(d["device"]) == wanted]
    if not docs:
        raise UsageError(f"no {wanted} documents in {', '.join(map(str, paths))}")
    try:
        rubric = rb.load(rubric_id)
    except rb.RubricError as exc:
        raise UsageError(str(exc)) from None
    seen: set[str] = set()
    runs = [d for d in docs if is_run(d)]
    unique = [d for d in runs if not (d["framework"] in seen or seen.add(d["framework"]))]  # type: ignore[func-returns-value]
    return docs, rubric, score(unique, rubric, conformance=conformance_docs(paths, wanted, loaded),
                               portability=portability_doc(paths, wanted, loaded))


def side_documents(paths: Sequence[Path], sub: str, validate: Any, key: Any) -> dict[str, dict[str, Any]]:
    """The newest valid document per key(doc) in <folder>/<sub>/ of the folders scored; an unreadable or invalid one
    is named on stderr and left out."""
    from harness.results import parse_json

    found: dict[str, dict[str, Any]] = {}
    for folder in (Path(p) / sub for p in paths if Path(p).is_dir()):
        for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                doc = parse_json(f.read_bytes(), str(f))
            except (OSError, ResultError) as exc:
                print(f"showdown: skipped {f}: {exc}", file=sys.stderr)
                continue
            errors = validate(doc)
            if errors:
                print(f"showdown: skipped {f}: not a valid {sub} document ({errors[0]})", file=sys.stderr)
                continue
            name = key(doc)
            if name not in found or doc["run"]["started_at"] > found[name]["run"]["started_at"]:
                found[name] = doc
    return found


def portability_doc(paths: Sequence[Path], device: str, loaded: Loaded | None = None) -> dict[str, Any] | None:
    """The newest valid portability matrix in <folder>/portability/ of the folders scored (CPU sets only)."""
    from harness import portability as port

    best = side_documents(paths, "portability", port.validate, lambda d: "matrix").get("matrix") if device == "cpu" else None
    if loaded is not None:
        loaded.portability = best
    return best


def conformance_docs(paths: Sequence[Path], device: str, loaded: Loaded | None = None) -> dict[str, dict[str, Any]]:
    """The newest valid conformance document of each importer in <folder>/conformance/ of the folders scored (CPU
    sets only: the node tests run on the CPU). Kept in `loaded` for the report."""
    from harness import conformance as conf

    found = side_documents(paths, "conformance", conf.validate, lambda d: d["importer"]["name"]) if device == "cpu" else {}
    if loaded is not None:
        loaded.conformance = found
    return found


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step (a reader never sees half a report)."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
