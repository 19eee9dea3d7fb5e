"""One self-contained HTML report (inline CSS and SVG, no script, nothing fetched), rendered from Jinja2 templates
(harness/report/templates/) with autoescaping on: every string taken from a document reaches the page escaped.

This module builds the page's content as plain values (tables of cells, lists of lines) from the documents, the
scores and harness.report.summary (the same content the Markdown shows); the templates decide the markup. Every
measured value links to the probe records it came from (an evidence section with one anchor per record); every value
from a facts file links to its source.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from harness.catalog.ops import OPS
from harness.catalog.workloads import WORKLOADS
from harness.report import charts
from harness.report import summary as sm
from harness.report.markdown import (
    BASELINE,
    _compile_cell,
    _control_flow_cell,
    _fmt_time,
    _graph_cell,
    _new_shape_cell,
    comparable,
    label,
    layer_cell,
    verified,
)
from harness.scoring import measured
from harness.scoring import rubric as rb
from harness.scoring.score import FrameworkScore, scores_2018

TEMPLATES = Path(__file__).parent / "templates"

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:1rem 1.5rem;color:#212529;line-height:1.45}
h1{margin-bottom:.2rem} h2{margin-top:2.2rem;border-bottom:1px solid #dee2e6;padding-bottom:.3rem} section{min-width:0}
.scroll{overflow-x:auto;max-width:100%;margin:.6rem 0}
table{border-collapse:collapse;font-size:.86rem} th,td{border:1px solid #dee2e6;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f1f3f5;position:sticky;top:0} td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{background:#ebfbee}.composed,.variant{background:#fff9db}.failed,.error,.crashed,.timeout{background:#ffe3e3}
.unsupported,.unmapped{background:#f1f3f5;color:#6c757d}
td.quiet-cell{color:#868e96;background:#f8f9fa}
.muted{color:#6c757d;font-size:.85rem} a{color:#1864ab;text-decoration:none} a:hover{text-decoration:underline}
.evidence td{font-size:.8rem} svg{max-width:100%;height:auto} figure.chart{margin:.8rem 0;max-width:100%}
figcaption{color:#495057;font-size:.85rem} pre{white-space:pre-wrap;word-break:break-word;font-size:.78rem}
code{word-break:break-all} nav ol{display:flex;flex-wrap:wrap;gap:.15rem 1.1rem;list-style:none;padding-left:0;margin:.3rem 0;font-size:.85rem} ul.verdicts li{margin:.25rem 0} .who{font-weight:600}
details{margin:.4rem 0} summary{cursor:pointer}
@media (max-width:900px){body{padding:.6rem}}
"""


@dataclass
class Cell:
    text: str
    href: str = ""
    cls: str = ""
    notes: list[str] = field(default_factory=list)
    id: str = ""  # an anchor other cells link to (from slug(): nothing a document holds survives into it raw)


@dataclass
class Table:
    header: list[str]
    rows: list[list[Cell]]
    cls: str = ""


def slug(text: str) -> str:
    """A fragment identifier from document strings: only [a-z0-9_-] survive, so nothing a document holds can
    leave the attribute it is put in."""
    return re.sub(r"[^a-z0-9_-]+", "-", str(text).lower()).strip("-") or "x"


def _anchor(fw: str, probe: str) -> str:
    return "rec-" + slug(fw) + "-" + slug(probe.replace("/", "-"))


def plain(value: Any) -> str:
    """A value in words: lists joined, mappings as 'key value', no Python literal syntax (None, True, brackets)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {plain(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


_LITERAL = re.compile(r"[\[{(][^\[\]{}()]*[\]})]")


def words(text: str) -> str:
    """Text built elsewhere with a Python literal inside (a facts value written with str(list)) in words."""
    def repl(m: re.Match[str]) -> str:
        try:
            value = ast.literal_eval(m.group(0))
        except (ValueError, SyntaxError):
            return m.group(0)
        return plain(value) if isinstance(value, (list, dict, tuple)) else m.group(0)
    text = str(text)
    if text.startswith("{"):
        try:
            return plain(json.loads(text))
        except ValueError:
            pass
    return _LITERAL.sub(repl, text)


def explained(text: str) -> str:
    """A criterion's explanation (built by the scoring code from values) in words: literals joined, and a value
    that was None (not read) as '-'."""
    return re.sub(r"\bNone\b", "-", words(text))


def _num(v: float | None, digits: int = 1) -> Cell:
    return Cell("-" if v is None else f"{v:.{digits}f}", cls="num")


def _env(doc: Mapping[str, Any], *keys: str) -> Any:
    """A value of the document's environment, '?' where it is missing (a run that never started a worker)."""
    value: Any = doc.get("environment") or {}
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return "?" if value is None else value


def _cell_link(text: str, fw: str, rec: Mapping[str, Any] | None, cls: str = "") -> Cell:
    return Cell(text, f"#{_anchor(fw, rec['probe'])}" if rec else "", cls)


# ------------------------------------------------------------------------------------------------------ sections
def _scores_part(scores: Sequence[FrameworkScore], rubric: rb.Rubric, by_fw: Mapping[str, Any], not_measured: Sequence[Any],
                 colours: Mapping[str, str]) -> dict[str, Any]:
    names = [s.framework for s in scores]
    chart = charts.overall_chart(names, [s.overall for s in scores], [s.tier for s in scores],
                                 [s.score_2018["overall"] if s.score_2018 else None for s in scores], colours,
                                 current_label="2026 (measured, facts and snapshot; see the criteria)")
    rows = []
    for s in scores:
        past = s.score_2018
        rows.append([Cell(label(by_fw[s.framework])), Cell(s.tier or "-"), _num(s.overall),
                     *(_num(s.categories.get(c.id)) for c in rubric.categories),
                     _num(past["overall"]) if past else Cell("not scored in 2018", cls="num")])
    for n in not_measured:
        if n.run_id is not None:
            rows.append([Cell(n.framework), Cell("-"), Cell("did not run", "#unavailable", "unsupported"),
                         *(Cell("-") for _ in rubric.categories),
                         Cell(f"{n.score_2018['overall']:.1f} (2018, not re-measured)" if n.score_2018 else "not scored in 2018",
                              cls="num")])
    missing = [n for n in not_measured if n.run_id is None]
    return {
        "formula": sm.formula(rubric), "tiers": sm.tier_text(rubric, scores),
        "overlay": sm.overlay_text(scores, len(scores_2018())),
        "overall_chart": Markup(chart),
        "overall_caption": "Overall score (0-100, higher is better), one colour per framework; the tier is written beside "
                           "the bar and drawn as a hatching; the outline is the 2018 published score.",
        "table": Table(["framework", "tier", "overall", *(c.name for c in rubric.categories), "2018 overall"], rows),
        "missing": ("No document in these results (2018 overall, not re-measured): " + ", ".join(
            n.framework + (f" {n.score_2018['overall']:.1f}" if n.score_2018 else "") for n in missing) + ".") if missing else "",
        "quiet": sm.quiet_criteria(rubric, scores),
    }


def _criteria_part(scores: Sequence[FrameworkScore], rubric: rb.Rubric, by_fw: Mapping[str, Any],
                   colours: Mapping[str, str]) -> dict[str, Any]:
    quiet = {q.id for q in sm.quiet_criteria(rubric, scores)}
    chart = charts.category_chart([s.framework for s in scores],
                                  {c.name: [s.categories.get(c.id) for s in scores] for c in rubric.categories}, colours)
    rows, classes = [], []
    for cat in rubric.categories:
        for cid in cat.criteria:
            crit = rubric.criteria[cid]
            row = [Cell(f"{cat.name}: {crit.name}", notes=[crit.scale] if crit.scale else [])]
            for s in scores:
                cs = s.criteria[cid]
                if cs.normalised is None:
                    row.append(Cell("n/a", cls="unsupported", notes=[explained(cs.explanation)]))
                    continue
                row.append(Cell(f"{cs.normalised:.1f}", f"#ev-{slug(s.framework)}-{slug(cid)}", "num",
                                [sm.ORIGIN[cs.origin]]))
            rows.append(row)
            classes.append("quiet" if cid in quiet else "")
    table = Table(["criterion", *(label(by_fw[s.framework]) for s in scores)], rows)
    for row, cls in zip(rows, classes, strict=True):
        if cls:
            for c in row:
                c.cls = (c.cls + " quiet-cell").strip()
    return {"chart": Markup(chart), "table": table,
            "caption": "Category scores (0-100, higher is better), grouped by category, one colour per framework. "
                       "Each category mixes measured values, facts and snapshot figures: the table below marks each."}


def _throughput_part(docs: Sequence[Mapping[str, Any]], order: Sequence[str], by_fw: Mapping[str, Any],
                     colours: Mapping[str, str]) -> dict[str, Any]:
    groups = []
    base_doc = by_fw.get(BASELINE)
    for mode in ("eager", "compiled"):
        ratios: dict[str, list[float | None]] = {}
        rows = []
        for w in WORKLOADS:
            key = f"throughput/{w.id}/{mode}"
            base = base_doc["records"].get(key) if base_doc else None
            row = [Cell(w.name)]
            for f in order:
                rec = by_fw[f]["records"].get(key)
                r = None
                if rec is None:
                    row.append(Cell("-"))
                elif rec["status"] != "ok":
                    row.append(_cell_link(rec["status"], f, rec, rec["status"]))
                else:
                    t = rec["data"]["timing"]
                    notes = []
                    if comparable(rec, base) or (rec is base and verified(rec)):
                        assert base is not None
                        r = t["median_s"] / base["data"]["timing"]["median_s"]
                        notes.append(f"{r:.2f}x {BASELINE}")
                    elif not verified(rec):
                        notes.append("unverified: no first-step check")
                    elif base is not None and base["status"] == "ok":
                        notes.append(f"not compared: scope {rec['data'].get('compile_scope')}")
                    if mode == "compiled":
                        notes.append(f"scope {rec['data'].get('compile_scope')}")
                        if rec["data"].get("compile_s") is not None:
                            notes.append(f"compile {_fmt_time(rec['data']['compile_s'])}")
                    if t.get("warnings"):
                        notes.append("timing warning: " + "; ".join(t["warnings"]))
                    if not rec["data"].get("param_count_matches", True):
                        notes.append(f"parameter count {rec['data']['param_count']}, catalog {rec['data']['expected_param_count']}")
                    row.append(Cell(f"{_fmt_time(t['median_s'])} ± {_fmt_time(t['iqr_s'] / 2)}", f"#{_anchor(f, rec['probe'])}",
                                    "num", notes))
                ratios.setdefault(f, []).append(r)
            rows.append(row)
        chart = ""
        if any(v is not None for vals in ratios.values() for v in vals) and base_doc is not None:
            chart = charts.ratio_dots([w.name for w in WORKLOADS], list(order), ratios, BASELINE, colours,
                                      f"{mode.capitalize()} time per step relative to {BASELINE} ({docs[0]['device']})",
                                      devices=[by_fw[f]["device"] for f in order])
        groups.append({"title": mode, "chart": Markup(chart) if chart else "", "table": Table(["workload", *(label(by_fw[f]) for f in order)], rows),
                       "caption": f"Time per step relative to {BASELINE} on a log scale: left of 1 is faster than {BASELINE}, "
                                  "right is slower. Only figures whose first steps agreed with the float64 reference"
                                  + (", and of the same compile scope as the baseline's," if mode == "compiled" else "")
                                  + " are drawn."})
    warned = sum(1 for d in docs for r in d["records"].values()
                 if r["suite"] == "throughput" and r["status"] == "ok" and r["data"].get("timing", {}).get("warnings"))
    mismatches = [f"{sm.label(d)} {r['probe']}" for d in docs for r in d["records"].values()
                  if r["suite"] == "throughput" and r["status"] == "ok" and not r["data"].get("param_count_matches", True)]
    return {
        "intro": f"Median time per step ± half the interquartile range (lower is faster); under it the ratio to {BASELINE} "
                 "on the same device, given only between figures whose first two steps agreed with the float64 "
                 "reference and, for compiled figures, of the same compile scope: step (the whole training step "
                 "compiled), forward_backward (the update eager), forward (only the forward pass), op (a single "
                 "operation). Compile time = first call - steady-state median.",
        "groups": groups, "warnings": warned,
        "params": "Parameter counts: " + ("all equal to the catalog's." if not mismatches else "differ in " + "; ".join(mismatches) + "."),
    }


def _onnx_table(order: Sequence[str], by_fw: Mapping[str, Any]) -> Table:
    rows = []
    for direction in ("export", "import"):
        for model in ("mlp", "cnn"):
            row = [Cell(f"{direction} {model}")]
            for f in order:
                rec = by_fw[f]["records"].get(f"onnx/{direction}/{model}")
                if rec is None:
                    row.append(Cell("-"))
                    continue
                d = rec["data"]
                tool = d.get("exporter") or d.get("importer") or ""
                notes = [tool + ("" if not tool else (", built in" if d.get("builtin") else ", separate"))] if tool else []
                if d.get("max_abs_err") is not None:
                    notes.append(f"max err {d['max_abs_err']:.1e}")
                if rec["reason"]:
                    notes.append(rec["reason"][:200])
                row.append(Cell(rec["status"], f"#{_anchor(f, rec['probe'])}", rec["status"], notes))
            rows.append(row)
    return Table(["check", *(label(by_fw[f]) for f in order)], rows)


def _evidence(scores: Sequence[FrameworkScore], rubric: rb.Rubric, by_fw: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for s in scores:
        fw = s.framework
        rows = []
        for cid, cs in s.criteria.items():
            links = []
            for ev in cs.evidence:
                if ev.startswith(("http://", "https://")):
                    links.append(Cell(ev, ev))
                elif "/" in ev and " " not in ev:  # a probe id
                    links.append(Cell(ev, f"#{_anchor(fw, ev)}"))
                else:  # a source in words
                    links.append(Cell(ev))
            rows.append([Cell(rubric.criteria[cid].name, id=f"ev-{slug(fw)}-{slug(cid)}"), Cell(sm.ORIGIN[cs.origin]),
                         Cell("-" if cs.raw is None else f"{cs.raw:g}"), Cell(explained(cs.explanation)),
                         Cell(links[0].text, links[0].href, notes=[c.text for c in links[1:]]) if links else Cell("-")])
        records = [[Cell(probe, id=_anchor(fw, probe)), Cell(rec["status"], cls=rec["status"]),
                    Cell(words(rec["reason"]) or _summary(rec))] for probe, rec in by_fw[fw]["records"].items()]
        out.append({"framework": label(by_fw[fw]), "count": len(records),
                    "criteria": Table(["criterion", "from", "raw", "explanation", "evidence"], rows, "evidence"),
                    "records": Table(["probe record", "status", "reason or key figures"], records, "evidence")})
    return out


def render(docs: Sequence[dict[str, Any]], scores: Sequence[FrameworkScore], rubric: rb.Rubric, generated: str | None,
           snapshot_date: str | None, unavailable: Sequence[dict[str, Any]] = (), not_measured: Sequence[Any] = (),
           conformance: Mapping[str, dict[str, Any]] | None = None, portability: dict[str, Any] | None = None,
           gpu_docs: Sequence[dict[str, Any]] = ()) -> str:
    by_fw = {d["framework"]: d for d in docs}
    order = [s.framework for s in scores]
    ordered = [by_fw[f] for f in order]
    colours = charts.framework_colours(list(dict.fromkeys([*order, *(conformance or {}),
                                                          *((portability or {}).get("importers") or {})])))
    cols = [label(by_fw[f]) for f in order]

    about = sm.about(ordered)
    ops_values = [measured.ootb_ops(by_fw[f]).value for f in order]
    ops_rows = []
    for op in OPS:
        row = [Cell(f"{op.number}. {op.name}")]
        for f in order:
            rec = by_fw[f]["records"].get(f"layers/{op.id}")
            cls = "unsupported" if rec is None else (rec["data"].get("implementation", "ok") if rec["status"] == "ok" else rec["status"])
            notes = [] if rec is None or rec["status"] == "ok" else [rec["reason"][:160]]
            row.append(Cell(layer_cell(rec), f"#{_anchor(f, 'layers/' + op.id)}" if rec else "", "ok" if cls == "native" else cls, notes))
        ops_rows.append(row)

    numerics = sm.numerics(ordered)
    num_rows = []
    for n in numerics:
        if n.status != "ok":
            num_rows.append([Cell(n.framework), Cell("-"), Cell(n.status, cls=n.status), Cell(n.zero_copy), Cell(n.reason[:240])])
        else:
            num_rows.append([Cell(n.framework), Cell(n.namespace), Cell(f"{n.agrees}/{n.total}", cls="num"), Cell(n.zero_copy),
                             Cell("all agree" if not n.others else f"{len(n.others)} do not agree",
                                  notes=[f"{fn}: {outcome}" + (f" ({detail[:120]})" if detail else "") for fn, outcome, detail in n.others])])
    num_share = {n.framework: (n.agrees / n.total if n.total else None) for n in numerics}
    num_chart = charts.value_bars(order, [None if num_share.get(label(by_fw[f])) is None else 100 * num_share[label(by_fw[f])]  # type: ignore[operator]
                                          for f in order], colours, "NumPy functions that agree (%)", limit=100) if numerics else ""

    conf_part = None
    if conformance:
        from harness.report.markdown import CONFORMANCE_COLUMNS, conformance_intro, conformance_rows

        ranked = sorted(conformance.items(), key=lambda kv: -(kv[1]["summary"]["pass_rate"]["tested"]["rate"] or 0))
        conf_part = {"intro": conformance_intro(conformance),
                     "chart": Markup(charts.value_bars([k for k, _ in ranked], [
                         None if v["summary"]["pass_rate"]["tested"]["rate"] is None else 100 * v["summary"]["pass_rate"]["tested"]["rate"]
                         for _, v in ranked], colours, "node tests passed, of those tested (%)", limit=100)),
                     "table": Table(list(CONFORMANCE_COLUMNS), [[Cell(c) for c in row] for row in conformance_rows(conformance)])}
    port_html, port_chart = "", ""
    if portability:
        from harness.report.portability import html_section

        port_html = html_section(portability)
        ex = list(portability.get("cells", {}))
        im = list(portability.get("importers", {}))
        vals = [[(c["passed"] / c["models_total"]) if (c := portability["cells"][e].get(i)) and c.get("models_total") else None
                 for i in im] for e in ex]
        port_chart = charts.heatmap(ex, im, vals, "share of models that agree", title="Exporter (rows) x importer (columns)")

    scale_rows = [[Cell(r.framework), Cell(r.status, f"#{_anchor(r.framework.split(' ')[0], 'scale/allreduce')}", r.status),
                   Cell(r.api), Cell(r.builtin), Cell(r.world), Cell(r.placement), Cell(r.reason or "-")] for r in sm.scale(ordered)]

    keys = sorted({k for d in ordered for k in ((d.get("environment") or {}).get("versions") or {})})
    env_rows = [
        [Cell("framework version"), *(Cell(plain(_env(d, "framework_version"))) for d in ordered)],
        [Cell("device"), *(Cell(d["device"]) for d in ordered)], [Cell("runner"), *(Cell(d["runner"]["name"]) for d in ordered)],
        [Cell("python"), *(Cell(plain(_env(d, "python", "version"))) for d in ordered)],
        [Cell("machine"), *(Cell(sm.machine_words(d.get("environment"))) for d in ordered)],
        [Cell("run"), *(Cell(d["run_id"]) for d in ordered)],
        [Cell("harness commit"), *(Cell((d["harness"].get("git_commit") or "?")[:12],
                                        notes=["uncommitted changes"] if d["harness"].get("git_dirty") else []) for d in ordered)],
        *([Cell(k), *(Cell(plain((_env(d, "versions") or {}).get(k, ""))) for d in ordered)] for k in keys),
    ]

    rec_list = [(label(d), r) for d in ordered for r in d["records"].values()]
    context = {
        "css": CSS, "rubric": rubric, "generated": generated, "snapshot_date": snapshot_date, "n_docs": len(docs),
        "titles": sm.TITLES,
        "verdicts": sm.verdicts(ordered, scores, conformance, portability, gpu_docs),
        "scores": _scores_part(scores, rubric, by_fw, not_measured, colours) if scores else None,
        "about": {"machines": about.machines, "trees": about.trees, "first": about.first, "last": about.last,
                  "suites": about.suites, "sizes": about.sizes,
                  "warnings": [{"framework": fw, "probe": p, "text": t, "anchor": _anchor(fw.split(" ")[0], p)}
                               for fw, p, t in about.warnings]},
        "origins": [(k, v) for k, v in sm.ORIGIN_TEXT.items()],
        "unavailable": [{"framework": d["framework"], "device": d["device"], "created_at": d["created_at"], "reason": d["reason"],
                         "tried": [{"what": t["what"], "outcome": t["outcome"],
                                    "command": " ".join(t["command"].split()) if t.get("command") else "",
                                    "output": t.get("output") or ""} for t in d["tried"]]}
                        for d in sorted(unavailable, key=lambda d: d["framework"])],
        "criteria": _criteria_part(scores, rubric, by_fw, colours) if scores else None,
        "runs": Table(["", *cols], [
            [Cell("version"), *(Cell(plain(_env(d, "framework_version"))) for d in ordered)],
            [Cell("complete"), *(Cell("yes" if d["complete"] else f"no ({len(d['records'])}/{len(d['plan'])} probes)") for d in ordered)],
            [Cell("suites"), *(Cell(plain((d.get("config") or {}).get("suites", []))) for d in ordered)],
            [Cell("size"), *(Cell("quick" if (d.get("config") or {}).get("quick") else "full") for d in ordered)],
            [Cell("started"), *(Cell(d["created_at"]) for d in ordered)]]),
        "measured": Table(["criterion", *cols], [
            [Cell("OOTB ops (of 32)"), *(Cell(measured.ootb_ops(d).explanation, "#ops") for d in ordered)],
            [Cell("graph (2 dynamic, 1 symbolic, 0 neither)"),
             *(Cell("-" if (c := measured.graph_value(d)).value is None else f"{c.value:g}: {c.explanation}", "#graphs") for d in ordered)],
            [Cell("ONNX export"), *(Cell(measured.onnx_direction(d, "export").explanation, "#onnx") for d in ordered)],
            [Cell("ONNX import"), *(Cell(measured.onnx_direction(d, "import").explanation, "#onnx") for d in ordered)]]),
        "ops": {"chart": Markup(charts.value_bars(order, ops_values, colours, "operations and optimizers, points of 32", limit=32)),
                "table": Table(["op", *cols], ops_rows)},
        "graphs": Table(["probe", *cols], [
            [Cell("define-by-run (control flow, eager)"), *(_cell_link(_graph_cell(d, "graphs/define_by_run"), d["framework"],
                                                                        d["records"].get("graphs/define_by_run")) for d in ordered)],
            [Cell("compile paths (static program)"), *(_cell_link(_compile_cell(d), d["framework"], d["records"].get("graphs/compiled")) for d in ordered)],
            [Cell("compiled, new input shape"), *(_cell_link(_new_shape_cell(d), d["framework"], d["records"].get("graphs/compiled")) for d in ordered)],
            [Cell("compiled, value-dependent control flow"), *(_cell_link(_control_flow_cell(d), d["framework"],
                                                                           d["records"].get("graphs/compiled_control_flow")) for d in ordered)]]),
        "throughput": _throughput_part(ordered, order, by_fw, colours),
        "onnx": _onnx_table(order, by_fw),
        "portability": Markup(port_html) if port_html else "",
        "portability_chart": Markup(f'<figure class="chart">{port_chart}</figure>') if port_chart else "",
        "conformance": conf_part,
        "numerics": {"chart": Markup(num_chart) if num_chart else "",
                     "table": Table(["framework", "namespace", "agree", "zero-copy both ways", "functions that do not agree"], num_rows)},
        "scale": Table(["framework", "status", "API", "built in", "processes", "placement", "reason"], scale_rows),
        "problems": Table(["framework", "probe", "status", "reason"],
                          [[Cell(fw), Cell(p, f"#{_anchor(fw.split(' ')[0], p)}"), Cell(st, cls=st), Cell(words(why)[:300])]
                           for fw, p, st, why in sm.problems(ordered)]),
        "unsupported": [{"framework": fw, "probe": r["probe"], "anchor": _anchor(fw.split(" ")[0], r["probe"]),
                         "text": r["reason"] + _looked_up(r)} for fw, r in rec_list if r["status"] == "unsupported"],
        "unmapped": [{"framework": fw, "probe": r["probe"], "anchor": _anchor(fw.split(" ")[0], r["probe"]), "text": r["reason"]}
                     for fw, r in rec_list if r["status"] == "unmapped"],
        "environment": Table(["", *cols], env_rows),
        "evidence": _evidence(scores, rubric, by_fw),
    }
    present = {"scores": bool(scores), "criteria": bool(scores), "unavailable": bool(unavailable),
               "portability": bool(portability), "conformance": bool(conformance)}
    context["toc"] = [(sid, title) for sid, title in sm.SECTIONS if present.get(sid, True)]
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template("report.html.j2").render(context)


def _looked_up(rec: Mapping[str, Any]) -> str:
    looked = (rec["data"].get("evidence") or {}).get("looked_up") or []
    return f" (looked up: {', '.join(looked[:4])})" if looked else ""


def _summary(rec: Mapping[str, Any]) -> str:
    d = rec["data"]
    if rec["suite"] == "layers":
        errs = [o.get("max_abs_err") for o in d.get("forward", {}).get("outputs", {}).values() if o.get("max_abs_err") is not None]
        return f"{d.get('implementation')} {d.get('api')}" + (f", max abs error {max(errs):.1e}" if errs else "")
    if rec["suite"] == "throughput":
        t = d["timing"]
        return f"median {t['median_s'] * 1e3:.3f} ms, IQR {t['iqr_s'] * 1e3:.3f} ms, {len(t['samples_s'])} rounds"
    if rec["suite"] == "onnx":
        err = d.get("max_abs_err")
        return f"{d.get('exporter') or d.get('importer') or '-'}" + (f", max abs error {err:.1e}" if isinstance(err, (int, float)) else "")
    return ""
