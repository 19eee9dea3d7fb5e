"""The ONNX portability matrix as Markdown and as one self-contained HTML page (exporter rows x importer columns, the
passing models per cell, a colour per outcome; legible at 800 px), from a portability document
(harness/schema/portability-v1.json, written by `showdown portability`)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

#: cell status -> (background colour, what it means)
OUTCOMES: dict[str, tuple[str, str]] = {
    "pass": ("#b7e1a1", "every model agrees with the exporter's own output"),
    "partial": ("#ffe08a", "some models agree, some do not"),
    "wrong": ("#f4a3a3", "runs, but the output differs beyond the tolerance"),
    "convert_error": ("#f7c59f", "the importer does not take the file"),
    "run_error": ("#f7c59f", "imported, but running it raised"),
    "timeout": ("#c9a3e0", "the importer's worker ran past the limit and was killed"),
    "crash": ("#c9a3e0", "the importer's worker died (a signal or an exit)"),
    "mixed": ("#f4a3a3", "no model agrees, for different reasons"),
    "no_run_many": ("#d9d9d9", "the importer's adapter gives no run_many"),
    "not_exported": ("#eeeeee", "the exporter produced no file for the model"),
    "importer_unavailable": ("#eeeeee", "the importer's environment did not start"),
}
SYMBOL = {"pass": "ok", "partial": "some", "wrong": "wrong", "convert_error": "convert", "run_error": "run err",
          "timeout": "timeout", "crash": "crash", "mixed": "fail", "no_run_many": "no run_many",
          "not_exported": "not exported", "importer_unavailable": "n/a"}


def _err(value: Any) -> str:
    if value is None:
        return "-"
    return "inf" if value == "inf" else f"{float(value):.2g}"


def _versions(doc: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    ex_v = {}
    for name, ex in doc["exporters"].items():
        seen = sorted({f"{m['exporter']} {m['exporter_version']}" for m in ex["models"].values() if m.get("exporter")})
        ex_v[name] = "; ".join(seen) or ex.get("error", "") or "-"
    im_v = {name: f"{im['converter']} {im['version']}" if im.get("converter") else (im.get("error") or "-")
            for name, im in doc["importers"].items()}
    return ex_v, im_v


def summary(doc: dict[str, Any]) -> str:
    t = doc["totals"]
    lines = [f"ONNX portability: {t['passed']}/{t['of']} exporter x importer x model combinations agree "
             f"(rtol {doc['tolerance']['rtol']:g}, atol {doc['tolerance']['atol']:g}) in {doc['run']['wall_s']:.0f}s"]
    lines.append("  by exporter: " + ", ".join(f"{k} {v['passed']}/{v['of']}" for k, v in t["exporters"].items()))
    lines.append("  by importer: " + ", ".join(f"{k} {v['passed']}/{v['of']}" for k, v in t["importers"].items()))
    return "\n".join(lines)


def _problems(doc: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    out = []
    for ex, by in doc["cells"].items():
        for im, cell in by.items():
            for model, m in cell["models"].items():
                if m["status"] != "pass":
                    out.append((ex, im, model, m))
    return out


def markdown(doc: dict[str, Any]) -> str:
    importers = list(doc["importers"])
    ex_v, im_v = _versions(doc)
    tol = doc["tolerance"]
    t = doc["totals"]
    lines = [
        "# ONNX portability matrix", "",
        f"Each exporting framework (rows) exports the catalog's models ({', '.join(doc['models'])}) with its own exporter; "
        "each importer (columns) loads every file and runs it on the same input. A model passes when the importer's output "
        f"matches the exporting framework's own output within rtol {tol['rtol']:g}, atol {tol['atol']:g} ({tol['source']}).",
        f"A cell gives the passing models out of {len(doc['models'])} and its outcome. Run {doc['run']['started_at']}, "
        f"{doc['run']['wall_s']:.0f}s wall on {doc['run'].get('cpu_count')} CPUs.", "",
        "| exporter \\ importer | " + " | ".join(importers) + " | passed |",
        "|---|" + "---|" * (len(importers) + 1),
    ]
    for ex, by in doc["cells"].items():
        cells = [f"{by[im]['passed']}/{by[im]['models_total']} {SYMBOL[by[im]['status']]}" for im in importers]
        lines.append(f"| **{ex}** | " + " | ".join(cells) + f" | {t['exporters'][ex]['passed']}/{t['exporters'][ex]['of']} |")
    lines.append("| passed | " + " | ".join(f"{t['importers'][im]['passed']}/{t['importers'][im]['of']}" for im in importers)
                 + f" | {t['passed']}/{t['of']} |")
    lines += ["", "## Exporters", "", "| exporter | exporter (version) | model: opset | status |", "|---|---|---|---|"]
    for ex, e in doc["exporters"].items():
        ordered = [(m, e["models"][m]) for m in doc["models"] if m in e["models"]]
        opsets = ", ".join(f"{m}: {v['opset'] if v['opset'] is not None else '-'}" for m, v in ordered)
        state = e["status"] if e["status"] != "ran" else ", ".join(f"{m} {v['status']}" for m, v in ordered)
        lines.append(f"| {ex} | {_md(ex_v[ex])} | {opsets} | {_md(state)} |")
    lines += ["", "## Importers", "", "| importer | converter (version) | max opset |", "|---|---|---|"]
    for im, i in doc["importers"].items():
        lines.append(f"| {im} | {_md(im_v[im])} | {i.get('max_opset') if i.get('max_opset') is not None else '-'} |")
    problems = _problems(doc)
    if problems:
        lines += ["", "## What did not pass", "", "| exporter | importer | model | outcome | max error | first error line |",
                  "|---|---|---|---|---|---|"]
        for ex, im, model, m in problems:
            lines.append(f"| {ex} | {im} | {model} | {m['status']} | {_err(m['max_error'])} | {_md(m.get('error', ''))[:200]} |")
    lines += ["", "Outcomes: " + "; ".join(f"**{SYMBOL[k]}** {k}: {v[1]}" for k, v in OUTCOMES.items()), ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def page(doc: dict[str, Any]) -> str:
    importers = list(doc["importers"])
    ex_v, im_v = _versions(doc)
    tol = doc["tolerance"]
    t = doc["totals"]
    e = html.escape
    head = "".join(f'<th title="{e(im_v[im])}">{e(im)}</th>' for im in importers)
    rows = []
    for ex, by in doc["cells"].items():
        tds = []
        for im in importers:
            c = by[im]
            colour = OUTCOMES[c["status"]][0]
            tip = "; ".join(f"{m}: {v['status']} (opset {v['opset']}, max error {_err(v['max_error'])})"
                            + (f" {v['error']}" if v.get("error") else "") for m, v in c["models"].items())
            tds.append(f'<td style="background:{colour}" title="{e(tip)}"><b>{c["passed"]}/{c["models_total"]}</b>'
                       f'<br><small>{e(SYMBOL[c["status"]])}</small></td>')
        tot = t["exporters"][ex]
        rows.append(f'<tr><th class="ex" title="{e(ex_v[ex])}">{e(ex)}</th>{"".join(tds)}<td class="tot">{tot["passed"]}/{tot["of"]}</td></tr>')
    foot = "".join(f'<td class="tot">{t["importers"][im]["passed"]}/{t["importers"][im]["of"]}</td>' for im in importers)
    legend = "".join(f'<span class="key" style="background:{c}">{e(SYMBOL[k])}</span> {e(k)}: {e(why)}<br>'
                     for k, (c, why) in OUTCOMES.items())
    problems = "".join(
        f"<tr><td>{e(ex)}</td><td>{e(im)}</td><td>{e(model)}</td><td style=\"background:{OUTCOMES[m['status']][0]}\">"
        f"{e(m['status'])}</td><td>{_err(m['max_error'])}</td><td>{e(str(m.get('error', ''))[:200])}</td></tr>"
        for ex, im, model, m in _problems(doc))
    versions = "".join(f"<tr><td>{e(k)}</td><td>exporter</td><td>{e(v)}</td></tr>" for k, v in ex_v.items()) + "".join(
        f"<tr><td>{e(k)}</td><td>importer</td><td>{e(v)}</td></tr>" for k, v in im_v.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ONNX portability matrix</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; max-width: 780px; margin: 1em auto; padding: 0 10px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.8em 0; }}
th, td {{ border: 1px solid #999; padding: 4px 6px; text-align: center; }}
table.matrix td {{ min-width: 62px; }}
th.ex {{ text-align: left; }} td.tot {{ background: #f6f6f6; }}
table.detail td {{ text-align: left; font-size: 12px; word-break: break-word; }}
.key {{ display: inline-block; min-width: 70px; padding: 0 4px; border: 1px solid #999; text-align: center; font-size: 12px; }}
small {{ font-size: 11px; }}
</style></head><body>
<h1>ONNX portability matrix</h1>
<p>Rows: the exporting framework, which builds the catalog's models ({e(', '.join(doc['models']))}) and exports them with its
own exporter. Columns: the importer, which loads each file and runs it on the same input. A model passes when the
output matches the exporting framework's own within rtol {tol['rtol']:g}, atol {tol['atol']:g}. Each cell: passing models
out of {len(doc['models'])}. Run {e(doc['run']['started_at'])}, {doc['run']['wall_s']:.0f}s wall on {doc['run'].get('cpu_count')} CPUs.</p>
<table class="matrix"><tr><th>exporter \\ importer</th>{head}<th>passed</th></tr>
{''.join(rows)}
<tr><th class="ex">passed</th>{foot}<td class="tot"><b>{t['passed']}/{t['of']}</b></td></tr></table>
<p>{legend}</p>
<h2>What did not pass</h2>
<table class="detail"><tr><th>exporter</th><th>importer</th><th>model</th><th>outcome</th><th>max error</th><th>first error line</th></tr>
{problems or '<tr><td colspan="6">every combination passed</td></tr>'}</table>
<h2>Versions</h2>
<table class="detail"><tr><th>framework</th><th>as</th><th>converter and version</th></tr>{versions}</table>
</body></html>
"""


def write(doc: dict[str, Any], stem: Path) -> list[Path]:
    """<stem>.md and <stem>.html; their paths."""
    md, page_path = stem.with_suffix(".md"), stem.with_suffix(".html")
    md.write_text(markdown(doc), encoding="utf-8")
    page_path.write_text(page(doc), encoding="utf-8")
    return [md, page_path]


def markdown_section(doc: dict[str, Any]) -> str:
    """The matrix as a section of the main report (headings one level down)."""
    out = []
    for line in markdown(doc).splitlines():
        out.append("#" + line if line.startswith("#") else line)
    return "\n".join(out).replace("# ONNX portability matrix", "# ONNX portability matrix (exporter x importer)", 1)


def html_section(doc: dict[str, Any]) -> str:
    """The matrix page's body as a section of the main report: headings one level down, its table styles kept
    (the page's own body rule left out, so the report's layout is unchanged)."""
    text = page(doc)
    style = text[text.index("<style>") + len("<style>"):text.index("</style>")]
    style = "\n".join(ln for ln in style.splitlines() if not ln.startswith("body "))
    body = text[text.index("<body>") + len("<body>"):text.index("</body>")]
    body = body.replace("<h2>", "<h3>").replace("</h2>", "</h3>").replace(
        "<h1>ONNX portability matrix</h1>", '<h2 id="portability">ONNX portability matrix (exporter x importer)</h2>')
    return f"<style>{style}</style>{body}"
