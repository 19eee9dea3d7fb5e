"""One self-contained HTML report (inline CSS and SVG, no script, no network needed to view it).

Every measured value links to the probe records it came from (an evidence section with one anchor per record) and
carries the explanation as a tooltip; every value from a facts file links to its source.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.catalog.ops import OPS
from harness.catalog.workloads import WORKLOADS
from harness.report import charts
from harness.report.markdown import BASELINE, _fmt_time, label, layer_cell, verified
from harness.scoring import rubric as rb
from harness.scoring.score import FrameworkScore

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:1rem 2rem;color:#212529}
h1{margin-bottom:.2rem} h2{margin-top:2.2rem;border-bottom:1px solid #dee2e6;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.86rem} th,td{border:1px solid #dee2e6;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f1f3f5} td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{background:#ebfbee}.composed,.variant{background:#fff9db}.failed,.error,.crashed,.timeout{background:#ffe3e3}.unsupported{background:#f1f3f5;color:#868e96}
.radars{display:flex;flex-wrap:wrap;gap:1rem}.radars figure{margin:0}
.muted{color:#868e96;font-size:.85rem} a{color:#1864ab;text-decoration:none} a:hover{text-decoration:underline}
.evidence td{font-size:.8rem} svg{max-width:100%;height:auto}
"""


def e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def slug(text: str) -> str:
    """A fragment identifier from document strings: only [a-z0-9_-] survive, so nothing a document holds can
    leave the attribute it is put in."""
    return re.sub(r"[^a-z0-9_-]+", "-", str(text).lower()).strip("-") or "x"


def _anchor(fw: str, probe: str) -> str:
    return "rec-" + slug(fw) + "-" + slug(probe.replace("/", "-"))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(rows_cell if rows_cell.startswith("<td") else f"<td>{rows_cell}</td>" for rows_cell in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _num(v: float | None, digits: int = 1) -> str:
    return '<td class="num">-</td>' if v is None else f'<td class="num">{v:.{digits}f}</td>'


def render(docs: Sequence[dict[str, Any]], scores: Sequence[FrameworkScore], rubric: rb.Rubric, generated: str | None,
           snapshot_date: str | None, unavailable: Sequence[dict[str, Any]] = (), not_measured: Sequence[Any] = (),
           conformance: Mapping[str, dict[str, Any]] | None = None, portability: dict[str, Any] | None = None) -> str:
    by_fw = {d["framework"]: d for d in docs}
    order = [s.framework for s in scores]
    parts = [f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>showdown report</title><style>{CSS}</style></head><body>",
             "<h1>showdown report</h1>",
             f"<p class=\"muted\">Rubric {e(rubric.id)} v{rubric.version}: {e(rubric.title)}. "
             f"{len(docs)} result documents. " + (f"Generated {e(generated)}. " if generated else "") +
             (f"Activity snapshot of {e(snapshot_date)}." if snapshot_date else "No activity snapshot: activity and ecosystem are left out.") + "</p>"]

    if unavailable:
        parts.append("<h2 id=\"unavailable\">Did not run here</h2><ul>" + "".join(
            f"<li><b>{e(d['framework'])}</b> on {e(d['device'])} ({e(d['created_at'])}): {e(d['reason'])}<ul>" + "".join(
                f"<li>{e(t['what'])}: <b>{e(t['outcome'])}</b>"
                + (f"<br><code>{e(' '.join(t['command'].split()))}</code>" if t.get("command") else "")
                + (f"<details><summary>output</summary><pre>{e(t['output'])}</pre></details>" if t.get("output") else "")
                + "</li>" for t in d["tried"]) + "</ul></li>"
            for d in sorted(unavailable, key=lambda d: d["framework"])) + "</ul>")

    # overall
    parts.append("<h2 id=\"overall\">Overall scores</h2>")
    parts.append(charts.overall_bars([label(by_fw[f]) for f in order], [s.overall for s in scores], [s.tier for s in scores],
                                     [s.score_2018["overall"] if s.score_2018 else None for s in scores]))
    rows = []
    for s in scores:
        past = s.score_2018
        rows.append([e(label(by_fw[s.framework])), e(s.tier or "-"), _num(s.overall),
                     *(_num(s.categories.get(c.id)) for c in rubric.categories),
                     _num(past["overall"]) if past else '<td class="num">not scored in 2018</td>'])
    for n in not_measured:
        if n.run_id is not None:
            rows.append([e(n.framework), "-", '<td class="unsupported"><a href="#unavailable">did not run</a></td>',
                         *("-" for _ in rubric.categories),
                         f'<td class="num">{n.score_2018["overall"]:.1f} (2018, not re-measured)</td>' if n.score_2018
                         else "not scored in 2018"])
    parts.append(_table(["framework", "tier", "overall", *(c.name for c in rubric.categories), "2018 overall"], rows))
    missing = [n for n in not_measured if n.run_id is None]
    if missing:
        parts.append("<p class=\"muted\">No document in these results (2018 overall, not re-measured): " + e(", ".join(
            n.framework + (f" {n.score_2018['overall']:.1f}" if n.score_2018 else "") for n in missing)) + ".</p>")

    # radars
    parts.append("<h2 id=\"radars\">Categories per framework</h2><div class=\"radars\">")
    cat_ids = [c.id for c in rubric.categories]
    for s in scores:
        before = [s.score_2018[c] for c in ("snc", "api", "platform")] if s.score_2018 and cat_ids == ["snc", "api", "platform"] else None
        svg = charts.radar(label(by_fw[s.framework]), [c.name for c in rubric.categories], [s.categories.get(c) for c in cat_ids], before)
        parts.append(f"<figure>{svg}</figure>")
    parts.append("</div>")

    # criteria
    parts.append("<h2 id=\"criteria\">Criteria</h2><p class=\"muted\">Normalised 0-100. Hover for the explanation; "
                 "a measured value links to the probe records it came from, a fact to its source.</p>")
    rows = []
    for cat in rubric.categories:
        for cid in cat.criteria:
            crit = rubric.criteria[cid]
            cells = [f"{e(cat.name)}: <b>{e(crit.name)}</b><br><span class=\"muted\">{e(crit.scale)}</span>"]
            for s in scores:
                cs = s.criteria[cid]
                if cs.normalised is None:
                    cells.append(f'<td class="unsupported" title="{e(cs.explanation)}">n/a</td>')
                    continue
                target = f"#ev-{slug(s.framework)}-{slug(cid)}"
                cells.append(f'<td class="num" title="{e(cs.explanation)}"><a href="{target}">{cs.normalised:.1f}</a>'
                             f'<br><span class="muted">{e(cs.origin)}</span></td>')
            rows.append(cells)
    parts.append(_table(["criterion", *(label(by_fw[f]) for f in order)], rows))

    # ops grid
    parts.append("<h2 id=\"ops\">Layers and optimizers</h2>")
    rows = []
    for op in OPS:
        cells = [f"{op.number}. {e(op.name)}"]
        for f in order:
            rec = by_fw[f]["records"].get(f"layers/{op.id}")
            text = layer_cell(rec)
            cls = "unsupported" if rec is None else (rec["data"].get("implementation", "ok") if rec["status"] == "ok" else rec["status"])
            cls = "ok" if cls == "native" else cls
            tip = (rec or {}).get("reason") or (rec or {}).get("data", {}).get("api", "")
            shown = f'<a href="#{_anchor(f, "layers/" + op.id)}">{e(text)}</a>' if rec is not None else e(text)
            cells.append(f'<td class="{e(cls)}" title="{e(tip)}">{shown}</td>')
        rows.append(cells)
    parts.append(_table(["op", *(label(by_fw[f]) for f in order)], rows))

    # throughput
    parts.append("<h2 id=\"throughput\">Throughput</h2><p class=\"muted\">Steps per second (error bars: half the "
                 f"interquartile range). Table: median time per step, ratio to {BASELINE} on the same device. Only figures "
                 "whose first two steps agreed with the float64 reference are shown; compiled figures are compared only "
                 "within one compile scope (step: the whole training step compiled; forward_backward: the update "
                 "eager; forward: only the forward pass; op: one operation), each scope in its own chart. Compile "
                 "time = first call - steady-state median.</p>")
    groups: list[tuple[str, str | None]] = [("eager", None)]
    scopes = sorted({(r["data"].get("compile_scope") or "unknown") for d in docs for r in d["records"].values()
                     if r["suite"] == "throughput" and r["data"].get("mode") == "compiled" and verified(r)})
    groups += [("compiled", scope) for scope in scopes]
    for mode, scope in groups:
        def pick(f: str, w: Any, mode: str = mode, scope: str | None = scope) -> dict[str, Any] | None:
            rec = by_fw[f]["records"].get(f"throughput/{w.id}/{mode}")
            if rec is None or not verified(rec) or (scope is not None and (rec["data"].get("compile_scope") or "unknown") != scope):
                return None
            return rec

        meds, spreads = [], []
        for w in WORKLOADS:
            meds.append([(r["data"]["timing"]["median_s"] if (r := pick(f, w)) else None) for f in order])
            spreads.append([(r["data"]["timing"]["iqr_s"] if (r := pick(f, w)) else None) for f in order])
        parts.append(f"<h3>{e(mode)}" + (f", compile scope: {e(scope)}" if scope else "") + "</h3>")
        parts.append(charts.throughput_bars([w.name for w in WORKLOADS], [label(by_fw[f]) for f in order], meds, spreads))
        rows = []
        for wi, w in enumerate(WORKLOADS):
            base = meds[wi][order.index(BASELINE)] if BASELINE in order else None
            cells = [e(w.name)]
            for fi, f in enumerate(order):
                m = meds[wi][fi]
                rec = by_fw[f]["records"].get(f"throughput/{w.id}/{mode}")
                if m is None or rec is None:
                    text = "-" if rec is None else (rec["status"] if rec["status"] != "ok" else
                                                    ("unverified" if not verified(rec) else f"scope {rec['data'].get('compile_scope')}"))
                    cls = "unsupported" if rec is None or rec["status"] == "ok" else rec["status"]
                    tip = "" if rec is None else rec["reason"]
                    cells.append(f'<td class="{e(cls)}" title="{e(tip)}">{e(text)}</td>')
                    continue
                ratio = f" ({m / base:.2f}x)" if base else ""
                extra = ""
                if rec["data"].get("compile_s") is not None:
                    extra += f"<br><span class=\"muted\">compile {e(_fmt_time(rec['data']['compile_s']))}</span>"
                if rec["data"]["timing"].get("warnings"):
                    extra += f'<br><span class="muted" title="{e("; ".join(rec["data"]["timing"]["warnings"]))}">⚠ timing warning</span>'
                warn = "" if rec["data"].get("param_count_matches", True) else " ⚠ parameter count differs"
                cells.append(f'<td class="num"><a href="#{_anchor(f, rec["probe"])}">{m * 1e3:.3f} ms</a>{ratio}{warn}{extra}</td>')
            rows.append(cells)
        parts.append(_table(["workload", *(label(by_fw[f]) for f in order)], rows))
    warned = [(f, r) for f in order for r in by_fw[f]["records"].values()
              if r["suite"] == "throughput" and r["status"] == "ok" and r["data"].get("timing", {}).get("warnings")]
    if warned:
        parts.append(f"<p class=\"muted\">Timing warnings ({len(warned)}):</p><ul class=\"muted\">" + "".join(
            f'<li>{e(label(by_fw[f]))} <a href="#{_anchor(f, r["probe"])}">{e(r["probe"])}</a>: {e("; ".join(r["data"]["timing"]["warnings"]))}</li>'
            for f, r in warned) + "</ul>")

    # onnx
    parts.append("<h2 id=\"onnx\">ONNX</h2>")
    rows = []
    for direction in ("export", "import"):
        for model in ("mlp", "cnn"):
            cells = [f"{direction} {model}"]
            for f in order:
                rec = by_fw[f]["records"].get(f"onnx/{direction}/{model}")
                if rec is None:
                    cells.append("<td>-</td>")
                    continue
                d = rec["data"]
                tool = d.get("exporter") or d.get("importer") or ""
                where = "" if not tool else (" (built in)" if d.get("builtin") else " (separate)")
                err = f", max err {d['max_abs_err']:.1e}" if d.get("max_abs_err") is not None else ""
                cells.append(f'<td class="{e(rec["status"])}" title="{e(rec["reason"])}"><a href="#{_anchor(f, rec["probe"])}">'
                             f'{e(rec["status"])}</a> {e(tool)}{e(where)}{e(err)}</td>')
            rows.append(cells)
    parts.append(_table(["check", *(label(by_fw[f]) for f in order)], rows))

    if portability:
        from harness.report.portability import html_section

        parts.append(html_section(portability))
    if conformance:
        from harness.report.markdown import CONFORMANCE_COLUMNS, conformance_intro, conformance_rows

        parts.append("<h2 id=\"conformance\">ONNX importer conformance</h2>")
        parts.append(f"<p>{e(conformance_intro(conformance))}</p>")
        parts.append(_table(CONFORMANCE_COLUMNS, [[e(c) for c in row] for row in conformance_rows(conformance)]))

    # environment
    parts.append("<h2 id=\"environment\">Environment and versions</h2>")
    keys = sorted({k for d in docs for k in ((d.get("environment") or {}).get("versions") or {})})
    rows = []
    getters: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = (
        ("framework version", lambda d: _env(d, "framework_version")),
        ("device", lambda d: d["device"]), ("runner", lambda d: d["runner"]["name"]),
        ("python", lambda d: _env(d, "python", "version")),
        ("cpu", lambda d: f"{_env(d, 'cpu', 'model')} x{_env(d, 'cpu', 'logical_cores')}"),
        ("os", lambda d: _env(d, "os", "platform")), ("run", lambda d: d["run_id"]),
        ("harness commit", lambda d: (d["harness"].get("git_commit") or "?")[:12]
         + (" (tree differed)" if d["harness"].get("git_dirty") else "")))
    for field_name, get in getters:
        rows.append([e(field_name), *(e(get(by_fw[f])) for f in order)])
    for k in keys:
        rows.append([e(k), *(e((_env(by_fw[f], "versions") or {}).get(k, "")) for f in order)])
    parts.append(_table(["", *(label(by_fw[f]) for f in order)], rows))

    # evidence
    parts.append("<h2 id=\"evidence\">Evidence</h2>")
    for s in scores:
        fw = s.framework
        parts.append(f"<h3>{e(label(by_fw[fw]))}</h3>")
        rows = []
        for cid, cs in s.criteria.items():
            links = ", ".join(
                f'<a href="{e(ev)}">{e(ev)}</a>' if ev.startswith(("http://", "https://")) else
                f'<a href="#{_anchor(fw, ev)}">{e(ev)}</a>' if "/" in ev and " " not in ev else e(ev)  # a probe id, or a source in words
                for ev in cs.evidence
            )
            rows.append([f'<span id="ev-{slug(fw)}-{slug(cid)}">{e(rubric.criteria[cid].name)}</span>', e(cs.origin),
                         e("-" if cs.raw is None else f"{cs.raw:g}"), e(cs.explanation), links or "-"])
        parts.append(_table(["criterion", "from", "raw", "explanation", "evidence"], rows, "evidence"))
        rows = []
        for probe, rec in by_fw[fw]["records"].items():
            rows.append([f'<span id="{_anchor(fw, probe)}">{e(probe)}</span>', f'<td class="{e(rec["status"])}">{e(rec["status"])}</td>',
                         e(rec["reason"] or _summary(rec))])
        parts.append(_table(["probe record", "status", "reason or key figures"], rows, "evidence"))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _env(doc: dict[str, Any], *keys: str) -> Any:
    """A value of the document's environment, '?' where it is missing (a run that never started a worker)."""
    value: Any = doc.get("environment") or {}
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return "?" if value is None else value


def _summary(rec: dict[str, Any]) -> str:
    d = rec["data"]
    if rec["suite"] == "layers":
        errs = [o.get("max_abs_err") for o in d.get("forward", {}).get("outputs", {}).values() if o.get("max_abs_err") is not None]
        return f"{d.get('implementation')} {d.get('api')}" + (f", max abs error {max(errs):.1e}" if errs else "")
    if rec["suite"] == "throughput":
        t = d["timing"]
        return f"median {t['median_s'] * 1e3:.3f} ms, IQR {t['iqr_s'] * 1e3:.3f} ms, {len(t['samples_s'])} rounds"
    if rec["suite"] == "onnx":
        return f"{d.get('exporter') or d.get('importer')}, max abs error {d.get('max_abs_err')}"
    return ""
