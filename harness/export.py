"""The scores, ops and throughput tables as CSV files, for a spreadsheet or a notebook.

The documents are read and scored exactly as `showdown score` does (the newest run per framework, one device
class, the same rubric and facts), so a figure in scores.csv is the one `showdown score` prints. Numbers are written
in full precision; a value that was not measured is an empty cell."""

from __future__ import annotations

import argparse
import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SCORES = "scores.csv"
OPS = "ops.csv"
THROUGHPUT = "throughput.csv"

OPS_HEADER = ["framework", "device", "op", "status", "max_abs_error", "max_rel_error", "api"]
THROUGHPUT_HEADER = ["framework", "device", "workload", "mode", "precision", "status", "median_ms", "iqr_ms",
                     "steps_per_s", "samples"]


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def scores_rows(scores: Sequence[Any], rubric: Any) -> tuple[list[str], list[list[str]]]:
    """One row per scored framework: every criterion's normalised score (and its raw value), every category, overall."""
    crit = list(rubric.criteria)
    cats = [c.id for c in rubric.categories]
    header = (["framework", "device", "rubric", "rubric_version", "tier", "overall"] + [f"category:{c}" for c in cats]
              + [f"criterion:{c}" for c in crit] + [f"raw:{c}" for c in crit] + [f"origin:{c}" for c in crit])
    rows = []
    for s in scores:
        cs = [s.criteria.get(c) for c in crit]
        rows.append([s.framework, s.device, rubric.id, str(rubric.version), s.tier or "", _num(s.overall)]
                    + [_num(s.categories.get(c)) for c in cats]
                    + [_num(x.normalised) if x else "" for x in cs] + [_num(x.raw) if x else "" for x in cs]
                    + [x.origin if x else "" for x in cs])
    return header, rows


def _max_errors(data: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """The largest forward error over every case and output of a layer record."""
    abs_errs: list[float] = []
    rel_errs: list[float] = []
    for case in (data.get("cases") or {}).values():
        outputs = ((case or {}).get("forward") or {}).get("outputs") or {}
        for out in outputs.values():
            for key, into in (("max_abs_err", abs_errs), ("max_rel_err", rel_errs)):
                v = (out or {}).get(key)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    into.append(float(v))
    return (max(abs_errs) if abs_errs else None), (max(rel_errs) if rel_errs else None)


def ops_rows(docs: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for doc in docs:
        for probe, rec in (doc.get("records") or {}).items():
            if rec.get("suite") != "layers":
                continue
            data = rec.get("data") or {}
            abs_err, rel_err = _max_errors(data)
            rows.append([doc["framework"], doc["device"], str(data.get("op") or probe.split("/", 1)[-1]), rec["status"],
                         _num(abs_err), _num(rel_err), str(data.get("api") or "")])
    return rows


def throughput_rows(docs: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for doc in docs:
        for probe, rec in (doc.get("records") or {}).items():
            if rec.get("suite") != "throughput":
                continue
            data = rec.get("data") or {}
            timing = data.get("timing") or {}
            parts = probe.split("/")
            median, iqr = timing.get("median_s"), timing.get("iqr_s")
            rows.append([doc["framework"], doc["device"], str(data.get("workload") or (parts[1] if len(parts) > 1 else "")),
                         str(data.get("mode") or (parts[2] if len(parts) > 2 else "")), str(data.get("precision") or ""),
                         rec["status"], _num(median * 1e3 if isinstance(median, (int, float)) else None),
                         _num(iqr * 1e3 if isinstance(iqr, (int, float)) else None), _num(data.get("steps_per_s")),
                         str(len(timing.get("samples_s") or [])) if timing else ""])
    return rows


def to_csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="write the scores, ops and throughput tables as CSV files",
                       description="Score the result documents as `showdown score` does and write scores.csv, ops.csv "
                                   "and throughput.csv into a folder (the newest run per framework and device).")
    p.add_argument("--csv", type=Path, required=True, metavar="DIR", help="folder to write the CSV files into")
    p.add_argument("paths", nargs="*", type=Path, default=[Path("results")],
                   help="result documents or folders of them (default results)")
    p.add_argument("--rubric", default="showdown-2026", help="rubric id (default showdown-2026)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="which set of runs to export when the documents hold both (never mixed)")


def command(args: argparse.Namespace) -> int:
    from harness.documents import EXIT_INVALID_INPUT, Loaded, UsageError, scored, write_text_atomic
    from harness.results import is_run

    loaded = Loaded()
    docs, rubric, scores = scored(args.paths, True, args.rubric, loaded, args.device)
    runs = [d for d in docs if is_run(d)]
    header, rows = scores_rows(scores, rubric)
    tables = {SCORES: (header, rows), OPS: (OPS_HEADER, ops_rows(runs)), THROUGHPUT: (THROUGHPUT_HEADER, throughput_rows(runs))}
    files = {name: to_csv(h, r) for name, (h, r) in tables.items()}
    try:
        args.csv.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            write_text_atomic(args.csv / name, text)
    except OSError as exc:
        raise UsageError(f"cannot write into {args.csv}: {exc.strerror or exc}") from None
    for name, (_, table_rows) in tables.items():
        print(f"{args.csv / name} ({len(table_rows)} rows)")
    return EXIT_INVALID_INPUT if loaded.skipped else 0
