"""Markdown report over one or more result documents: one column per framework (and device)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.catalog.ops import OPS
from harness.catalog.workloads import WORKLOADS
from harness.report import summary as sm
from harness.scoring import measured
from harness.scoring.score import scores_2018

BASELINE = "torch"
MARK = {"native": "native", "composed": "composed (0.5)", "variant": "variant (0.5)"}


def label(doc: dict[str, Any]) -> str:
    return doc["framework"] if doc["device"] == "cpu" else f"{doc['framework']} ({doc['device']})"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return out


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def status_counts(doc: dict[str, Any], suite: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rec in doc.get("records", {}).values():
        if rec["suite"] == suite:
            counts[rec["status"]] = counts.get(rec["status"], 0) + 1
    return counts


def layer_cell(rec: dict[str, Any] | None) -> str:
    if rec is None:
        return "-"
    if rec["status"] == "unmapped":
        return "unmapped (adapter)"
    if rec["status"] == "ok":
        d = rec["data"]
        text = MARK.get(d.get("implementation", ""), "ok")
        conv = d.get("convention")
        if conv and conv != "default":
            text += f" [{conv}]"
        cannot = [label for label, c in (d.get("cases") or {}).items() if c.get("status") == "unsupported"]
        if cannot:
            text += f" (case {', '.join(cannot)}: not expressible)"
        return text
    return rec["status"]


def verified(rec: dict[str, Any] | None) -> bool:
    """A throughput figure counts only when its first steps were checked against the reference and agreed."""
    return bool(rec and rec["status"] == "ok" and (rec["data"].get("first_step") or {}).get("ok"))


def comparable(rec: dict[str, Any], base: dict[str, Any] | None) -> bool:
    """Two throughput records may be put side by side: both verified, and (compiled) of the same compile scope."""
    return (base is not None and base is not rec and verified(rec) and verified(base)
            and rec["data"].get("compile_scope") == base["data"].get("compile_scope"))


def throughput_cell(rec: dict[str, Any] | None, base: dict[str, Any] | None) -> str:
    if rec is None:
        return "-"
    if rec["status"] != "ok":
        return rec["status"]
    t = rec["data"]["timing"]
    text = f"{_fmt_time(t['median_s'])} ± {_fmt_time(t['iqr_s'] / 2)}"
    if not verified(rec):
        text += " (unverified: no first-step check)"
    scope = rec["data"].get("compile_scope")
    if rec["data"].get("mode") == "compiled":
        text += f" [{scope}]"
        if rec["data"].get("compile_s") is not None:
            text += f", compile {_fmt_time(rec['data']['compile_s'])}"
    if comparable(rec, base):
        assert base is not None
        text += f" ({t['median_s'] / base['data']['timing']['median_s']:.2f}x)"
    elif base is not None and base is not rec and base["status"] == "ok" and scope != base["data"].get("compile_scope"):
        text += f" (not compared: {BASELINE} compiles {base['data'].get('compile_scope')})"
    if not rec["data"].get("param_count_matches", True):
        text += f" ⚠ params {rec['data']['param_count']} ≠ {rec['data']['expected_param_count']}"
    return text


CONFORMANCE_COLUMNS = ["importer", "converter", "pass", "wrong", "conversion error", "run error", "timeout", "crash",
                       "untested", "pass rate (tested)", "at or below its opset", "wall", "most failing operators"]


def conformance_intro(conformance: Mapping[str, dict[str, Any]]) -> str:
    some = next(iter(conformance.values()))
    t = some["tests"]
    return (f"ONNX's backend node tests (onnx {t['onnx_release']}, {t['total_cases']} one-operator models with inputs and "
            f"expected outputs) through each importer, in its own environment, one case at a time (a case that hangs "
            f"or kills the worker is recorded and the run goes on), compared at ONNX's own tolerances (rtol "
            f"{t['rtol']:g}, atol {t['atol']:g}). Untested: cases whose values NumPy cannot hold (bfloat16, float8, "
            "4-bit). The last rate counts only cases at or below the highest opset the importer names.")


def conformance_rows(conformance: Mapping[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for name, doc in sorted(conformance.items(), key=lambda kv: -(kv[1]["summary"]["pass_rate"]["tested"]["rate"] or 0)):
        c, rates, imp = doc["summary"]["counts"], doc["summary"]["pass_rate"], doc["importer"]
        below = rates.get("at_or_below_max_opset") or {}
        worst = sorted(doc["summary"].get("failing_ops", {}).items(), key=lambda kv: -kv[1]["failed"])[:5]

        def pct(r: dict[str, Any]) -> str:
            return f"{100 * r['rate']:.1f}% ({r['passed']}/{r['cases']})" if r.get("rate") is not None else "-"

        rows.append([name, f"{imp['converter']} {imp['version']}", *(str(c.get(k, 0)) for k in (
            "pass", "wrong", "convert_error", "run_error", "timeout", "crash", "untested")), pct(rates["tested"]),
            (f"{pct(below)}, opset <= {imp['max_opset']}" if imp.get("max_opset") is not None else "names no opset"),
            f"{doc['run']['wall_s']:.0f} s", ", ".join(f"{op} {v['failed']}" for op, v in worst) or "-"])
    return rows


def render(docs: Sequence[dict[str, Any]], generated: str | None = None, scores: Sequence[Any] | None = None,
           rubric: Any = None, unavailable: Sequence[dict[str, Any]] = (), not_measured: Sequence[Any] = (),
           conformance: Mapping[str, dict[str, Any]] | None = None, portability: dict[str, Any] | None = None,
           gpu_docs: Sequence[dict[str, Any]] = ()) -> str:
    """The Markdown report. `generated` is a timestamp line (left out when None, for reproducible output);
    `unavailable`: documents of frameworks that could not run here, listed with what was tried; `not_measured`:
    the known frameworks without a run (scoring.score.NotMeasured), shown with their 2018 scores as not re-measured;
    `gpu_docs`: CUDA runs beside a CPU set, for the GPU verdict only."""
    docs = sorted(docs, key=lambda d: (d["framework"] != BASELINE, d["framework"], d["device"]))
    cols = [label(d) for d in docs]
    lines: list[str] = ["# showdown report", ""]
    if generated:
        lines += [f"Generated {generated}.", ""]

    def link(section: str) -> str:
        return f"[{sm.TITLES[section]}](#{sm.md_anchor(sm.TITLES[section])})"

    lines += [f"## {sm.TITLES['verdicts']}", "",
              "Computed from the measurements below; each line links to its evidence. Ties are named as ties.", ""]
    for v in sm.verdicts(docs, scores or [], conformance, portability, gpu_docs):
        lines.append(f"- **{v.topic}**: {v.who}: {v.figure} ({link(v.section)})".replace("\n", " "))
    lines.append("")
    if scores and rubric is not None:
        lines += [f"## {sm.TITLES['scores']} ({rubric.id} v{rubric.version})", ""]
        lines += [f"- {line}" for line in sm.formula(rubric)]
        lines += [f"- {sm.tier_text(rubric, scores)}", f"- {sm.overlay_text(scores, len(scores_2018()))}", ""]
        lines += _table(["framework", "tier", "overall", *(c.name for c in rubric.categories), "2018 overall"],
                        [[s.framework, s.tier or "-", _fmt1(s.overall), *(_fmt1(s.categories.get(c.id)) for c in rubric.categories),
                          _fmt1(s.score_2018["overall"]) if s.score_2018 else "not scored"] for s in scores]
                        + [[n.framework, "-", "did not run", *("-" for _ in rubric.categories),
                            f"{_fmt1(n.score_2018['overall'])} (not re-measured)" if n.score_2018 else "not scored"]
                           for n in not_measured if n.run_id is not None])
        missing = [n for n in not_measured if n.run_id is None]
        if missing:
            lines += ["", "No document in these results (2018 overall, not re-measured): " + ", ".join(
                n.framework + (f" {_fmt1(n.score_2018['overall'])}" if n.score_2018 else "") for n in missing) + "."]
        quiet = sm.quiet_criteria(rubric, scores)
        if quiet:
            lines += ["", "Criteria that separate nobody (shown in italics in the criteria table):", ""]
            lines += [f"- {q.category}: {q.name}: {q.why}." for q in quiet]
        lines.append("")

    about = sm.about(docs)
    lines += [f"## {sm.TITLES['about']}", ""]
    lines += [f"- Machine: {m} ({', '.join(fws)})" for m, fws in about.machines]
    lines += [f"- Harness: {t} ({', '.join(fws)})" for t, fws in about.trees]
    lines += [f"- Dates: runs from {about.first} to {about.last}" if about.first else "- Dates: no runs",
              f"- Suites: {', '.join(about.suites) or 'none'}"]
    lines += [f"- Sizes: {size} ({', '.join(fws)})" for size, fws in about.sizes]
    lines += ["- Values: m = measured by the suite's probes on this machine; f = a fact from the framework's facts "
              "file, citing a public source and the date it was checked; s = the dated activity snapshot.",
              f"- Timing warnings: {len(about.warnings)} throughput records" + (" (listed below)." if about.warnings else ".")]
    if about.warnings:
        lines += ["", "<details><summary>Timing warnings</summary>", ""]
        lines += [f"- {fw} `{probe}`: {text}" for fw, probe, text in about.warnings]
        lines += ["", "</details>"]
    lines.append("")

    if unavailable:
        lines += [f"## {sm.TITLES['unavailable']}", ""]
        for d in sorted(unavailable, key=lambda d: d["framework"]):
            lines.append(f"- **{d['framework']}** on {d['device']} ({d['created_at']}): {d['reason']}".replace("\n", " "))
            for t in d["tried"]:
                command = f" `{' '.join(t['command'].split())}`" if t.get("command") else ""
                output = (t.get("output") or "").strip().splitlines()
                last = f" → {output[-1][:160]}" if output else ""
                lines.append(f"  - {t['what']}: {t['outcome']}{command}{last}".replace("\n", " "))
        lines.append("")
    if scores and rubric is not None:
        quiet_ids = {q.id for q in sm.quiet_criteria(rubric, scores)}
        lines += [f"## {sm.TITLES['criteria']}", "",
                  "Normalised 0-100; m = measured by probes, f = facts file, s = activity snapshot; a criterion in "
                  "italics separates nobody.", ""]
        tag = {"measured": "m", "facts": "f", "snapshot": "s", "missing": ""}
        rows = []
        for cat in rubric.categories:
            for cid in cat.criteria:
                name = f"{cat.name}: {rubric.criteria[cid].name}"
                rows.append([f"*{name}*" if cid in quiet_ids else name,
                             *("-" if s.criteria[cid].normalised is None else f"{s.criteria[cid].normalised:.1f} {tag[s.criteria[cid].origin]}"
                               for s in scores)])
        lines += _table(["criterion", *(s.framework for s in scores)], rows)
        lines.append("")

    lines += [f"## {sm.TITLES['runs']}", ""]
    lines += _table(["", *cols], [
        ["version", *(d["environment"]["framework_version"] if d.get("environment") else "?" for d in docs)],
        ["device", *(d["device"] for d in docs)],
        ["complete", *("yes" if d["complete"] else f"no ({len(d['records'])}/{len(d['plan'])} probes)" for d in docs)],
        ["runner", *(d["runner"]["name"] for d in docs)],
        ["python", *((d.get("environment") or {}).get("python", {}).get("version", "?") for d in docs)],
        ["cpu", *((d.get("environment") or {}).get("cpu", {}).get("model", "?") for d in docs)],
        ["run id", *(d["run_id"] for d in docs)],
    ])

    lines += ["", f"## {sm.TITLES['measured']}", ""]
    lines += _table(["criterion", *cols], [
        ["OOTB ops (of 32)", *(measured.ootb_ops(d).explanation for d in docs)],
        ["graph (2 dynamic, 1 symbolic, 0 neither)", *(_crit(measured.graph_value(d)) for d in docs)],
        ["ONNX export", *(measured.onnx_direction(d, "export").explanation for d in docs)],
        ["ONNX import", *(measured.onnx_direction(d, "import").explanation for d in docs)],
    ])

    lines += ["", "## Layers and optimizers", "",
              "`native` 1 point; `composed` (built from primitives) and `variant` (a close relative) 0.5; "
              "a bracket names the convention that matched where frameworks differ.", ""]
    rows = []
    for op in OPS:
        rows.append([f"{op.number}. {op.name}", *(layer_cell(d["records"].get(f"layers/{op.id}")) for d in docs)])
    lines += _table(["op", *cols], rows)

    lines += ["", "## Graphs", ""]
    lines += _table(["probe", *cols], [
        ["define-by-run (control flow, eager)", *(_graph_cell(d, "graphs/define_by_run") for d in docs)],
        ["compile paths (static program)", *(_compile_cell(d) for d in docs)],
        ["compiled, new input shape", *(_new_shape_cell(d) for d in docs)],
        ["compiled, value-dependent control flow", *(_control_flow_cell(d) for d in docs)],
    ])

    lines += ["", "## Throughput", "",
              "Median time per step ± half the interquartile range; in round brackets, the ratio to "
              f"{BASELINE} on the same device (lower is faster), given only between figures whose first two steps "
              "agreed with the float64 reference and, for compiled figures, of the same compile scope: [step] the "
              "whole training step compiled, [forward_backward] the update eager, [forward] only the forward pass, "
              "[op] a single operation. Compile time = first call - steady-state median.", ""]
    rows = []
    for w in WORKLOADS:
        for mode in ("eager", "compiled"):
            key = f"throughput/{w.id}/{mode}"
            rows.append([f"{w.name}, {mode}", *(throughput_cell(d["records"].get(key), _same_device_base(docs, d, key)) for d in docs)])
    lines += _table(["workload", *cols], rows)
    mismatches = _param_mismatches(docs)
    lines += ["", "Parameter counts: " + ("all equal to the catalog's." if not mismatches else "; ".join(mismatches))]
    warned = [(label(d), r) for d in docs for r in d["records"].values()
              if r["suite"] == "throughput" and r["status"] == "ok" and r["data"].get("timing", {}).get("warnings")]
    lines += ["", f"Timing warnings: {len(warned)} records" + (f" (listed in {link('about')})." if warned else ".")]

    lines += ["", "## ONNX", ""]
    rows = []
    for direction in ("export", "import"):
        for model in ("mlp", "cnn"):
            key = f"onnx/{direction}/{model}"
            rows.append([f"{direction} {model}", *(_onnx_cell(d["records"].get(key)) for d in docs)])
    lines += _table(["check", *cols], rows)

    if portability:
        from harness.report.portability import markdown_section

        lines += ["", markdown_section(portability).rstrip()]
    if conformance:
        lines += ["", "## ONNX importer conformance", "", conformance_intro(conformance), ""]
        lines += _table(CONFORMANCE_COLUMNS, conformance_rows(conformance))

    lines += ["", f"## {sm.TITLES['numerics']}", "",
              "A sample of NumPy's functions called through the framework's array namespace on the same inputs, compared "
              "with NumPy; every function that does not agree is named with what happened.", ""]
    rows = []
    for n in sm.numerics(docs):
        if n.status != "ok":
            rows.append([n.framework, "-", n.status, n.zero_copy, n.reason[:200]])
        else:
            rows.append([n.framework, n.namespace, f"{n.agrees}/{n.total}", n.zero_copy,
                         "; ".join(f"{fn} {outcome}" + (f" ({detail[:90]})" if detail else "") for fn, outcome, detail in n.others) or "all agree"])
    lines += _table(["framework", "namespace", "agree", "zero-copy both ways", "functions that do not agree"], rows)

    lines += ["", f"## {sm.TITLES['scale']}", "",
              "A two-process all-reduce through the framework's distributed API (built in) or a third-party package.", ""]
    lines += _table(["framework", "status", "API", "built in", "processes", "placement", "reason"],
                    [[r.framework, r.status, r.api, r.builtin, r.world, r.placement, r.reason[:200] or "-"] for r in sm.scale(docs)])

    problems = sm.problems(docs)
    lines += ["", f"## {sm.TITLES['problems']}", ""]
    if problems:
        lines += _table(["framework", "probe", "status", "reason"], [[fw, p, st, why[:200]] for fw, p, st, why in problems])
    else:
        lines.append("None: every probe ended ok or unsupported.")
    unsupported = [(label(d), r) for d in docs for r in d["records"].values() if r["status"] == "unsupported"]
    if unsupported:
        lines += ["", "Unsupported, with what was looked up at run time and not found:", ""]
        lines += [f"- {fw} `{r['probe']}`: {r['reason']}" + _evidence(r) for fw, r in unsupported]
    unmapped = [(label(d), r) for d in docs for r in d["records"].values() if r["status"] == "unmapped"]
    if unmapped:
        lines += ["", "Not mapped by the adapter (the adapter's gap, not scored as the framework lacking it):", ""]
        lines += [f"- {fw} `{r['probe']}`: {r['reason']}" for fw, r in unmapped]
    return "\n".join(lines) + "\n"


def _evidence(rec: dict[str, Any]) -> str:
    looked = (rec["data"].get("evidence") or {}).get("looked_up") or []
    return f" (looked up: {', '.join(looked[:4])})" if looked else ""


def _same_device_base(docs: Sequence[dict[str, Any]], doc: dict[str, Any], key: str) -> dict[str, Any] | None:
    for d in docs:
        if d["framework"] == BASELINE and d["device"] == doc["device"]:
            rec: dict[str, Any] | None = d["records"].get(key)
            return rec
    return None


def _crit(c: measured.Criterion) -> str:
    return "-" if c.value is None else f"{c.value:g}: {c.explanation}"


def _graph_cell(doc: dict[str, Any], key: str) -> str:
    rec = doc["records"].get(key)
    if rec is None:
        return "-"
    return "works" if rec["status"] == "ok" else f"{rec['status']}: {rec['reason'][:80]}"


def _paths(doc: dict[str, Any], key: str) -> dict[str, Any] | None:
    rec = doc["records"].get(key)
    if rec is None:
        return None
    paths: dict[str, Any] = rec["data"].get("paths", {})
    return paths


def _compile_cell(doc: dict[str, Any]) -> str:
    paths = _paths(doc, "graphs/compiled")
    if paths is None:
        return "-"
    if not paths:
        return "none"
    return "; ".join(f"{p}: compiles in {_fmt_time(r.get('compile_s'))}" if r.get("ok") else f"{p}: {r.get('outcome')}"
                     for p, r in paths.items())


def _new_shape_cell(doc: dict[str, Any]) -> str:
    paths = _paths(doc, "graphs/compiled")
    if not paths:
        return "-"
    return "; ".join(f"{p}: {r.get('new_shape', {}).get('outcome', r.get('outcome'))}" for p, r in paths.items())


def _control_flow_cell(doc: dict[str, Any]) -> str:
    paths = _paths(doc, "graphs/compiled_control_flow")
    if not paths:
        return "-"
    return "; ".join(f"{p}: {r.get('outcome')}" for p, r in paths.items())


def _onnx_cell(rec: dict[str, Any] | None) -> str:
    if rec is None:
        return "-"
    d = rec["data"]
    tool = d.get("exporter") or d.get("importer") or "?"
    if rec["status"] != "ok":
        return f"{rec['status']} ({tool})" if tool != "?" else rec["status"]
    opset = d.get("opset") or (d.get("opsets") or {}).get("ai.onnx")
    return f"ok, {tool}, opset {opset}, max err {d.get('max_abs_err', 0):.1e}"


def _param_mismatches(docs: Sequence[dict[str, Any]]) -> list[str]:
    out = []
    for d in docs:
        for r in d["records"].values():
            if r["suite"] == "throughput" and r["status"] == "ok" and not r["data"].get("param_count_matches", True):
                out.append(f"{label(d)} {r['probe']}: {r['data']['param_count']} vs {r['data']['expected_param_count']}")
    return out


def _fmt1(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
