"""A comparison of two sets of runs (harness.compare) as a terminal table, Markdown, or one self-contained HTML page.

Times are shown in milliseconds and the ratio is B's median time over A's: below 1, B is faster."""

from __future__ import annotations

import html as _html
from typing import Any

from harness.compare import FACTOR, Comparison, PairComparison, TimingChange

RATIO_MEANS = "ratio = B's median time / A's (below 1: B is faster)"


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}" if p >= 0.001 else "<0.001"


def _verdict(t: TimingChange) -> str:
    return t.verdict + (f" ({t.note})" if t.note else "")


def _title(pair: PairComparison) -> str:
    ver = (f", {pair.version_a}" if pair.version_a == pair.version_b
           else f", {pair.version_a or '?'} -> {pair.version_b or '?'}") if (pair.version_a or pair.version_b) else ""
    dev = pair.device_a if pair.device_a == pair.device_b else f"{pair.device_a} -> {pair.device_b}"
    return f"{pair.framework} ({dev}{ver}): {pair.run_a} -> {pair.run_b}"


def _pair_rows(pair: PairComparison) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The tables of one pair, as plain text cells: {table name: (header, rows)}; empty tables left out."""
    tables: dict[str, tuple[list[str], list[list[str]]]] = {}
    if pair.status_changes:
        tables["status changes"] = (["probe", "A", "B", "reason (B)"],
                                    [[s.probe, s.before, s.after, s.reason] for s in pair.status_changes])
    if pair.op_changes:
        tables["layer verdict changes"] = (
            ["op", "A", "B", "cases changed", "api"],
            [[o.op, o.before, o.after, ", ".join(f"{c}: {a} -> {b}" for c, a, b in o.cases) or "-",
              o.api_after if o.api_before == o.api_after else f"{o.api_before} -> {o.api_after}"] for o in pair.op_changes])
    if pair.timings:
        tables["timings"] = (
            ["workload", "mode", "A ms", "B ms", "B/A", "p", "n A/B", "verdict"],
            [[t.workload, t.mode, _ms(t.median_a_s), _ms(t.median_b_s), f"{t.ratio:.2f}", _p(t.p), f"{t.n_a}/{t.n_b}",
              _verdict(t)] for t in pair.timings])
    one_side = [[p, "A only"] for p in pair.only_a] + [[p, "B only"] for p in pair.only_b]
    if one_side:
        tables["probes on one side only"] = (["probe", "in"], one_side)
    return tables


def _unpaired_rows(cmp: Comparison) -> list[list[str]]:
    return ([[u.framework, u.device, "A only", u.run_id, u.why] for u in cmp.only_a]
            + [[u.framework, u.device, "B only", u.run_id, u.why] for u in cmp.only_b])


def _method() -> str:
    return (f"Timings: {RATIO_MEANS}; n: samples (rounds) per side; p from a two-sided Mann-Whitney U test on the raw samples (normal "
            f"approximation, tie-corrected). faster/slower only when p < 0.05 and the ratio is outside "
            f"[1/{FACTOR}, {FACTOR}]; otherwise not significant.")


# ------------------------------------------------------------------------------------------------ terminal
def terminal(cmp: Comparison, console: Any = None) -> None:
    """Rich tables sized to the terminal (long cells wrap inside their column)."""
    from rich.console import Console
    from rich.table import Table

    con = console or Console(highlight=False)
    con.print(f"[bold]A[/bold] = {_escape_rich(cmp.label_a)}   [bold]B[/bold] = {_escape_rich(cmp.label_b)}")
    for pair in cmp.pairs:
        con.print()
        con.rule(_escape_rich(_title(pair)), align="left")
        if pair.note:
            con.print(_escape_rich(pair.note))
        tables = _pair_rows(pair)
        if not tables:
            con.print("no status, verdict or timing changes; no probe on one side only")
        for name, (header, rows) in tables.items():
            t = Table(title=name, title_justify="left", expand=False)
            for col in header:
                if col in _NUMERIC or col in ("A", "B", "mode"):
                    t.add_column(col, no_wrap=True)
                else:
                    t.add_column(col, overflow="fold", min_width=min(len(col), 12))
            for row in rows:
                t.add_row(*(_escape_rich(c) for c in row), style=_row_style(name, row))
            con.print(t)
    rows = _unpaired_rows(cmp)
    if rows:
        con.print()
        t = Table(title="runs without a counterpart", title_justify="left")
        for col in ("framework", "device", "in", "run", "why"):
            t.add_column(col, overflow="fold")
        for row in rows:
            t.add_row(*(_escape_rich(c) for c in row))
        con.print(t)
    con.print()
    con.print(_escape_rich(_method()))
    con.print(f"[bold]{_escape_rich(cmp.summary())}[/bold]")


def _escape_rich(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))


def _row_style(table: str, row: list[str]) -> str:
    if table != "timings":
        return ""
    return {"faster": "green", "slower": "red"}.get(_verdict_word(row[-1]), "")


def _verdict_word(cell: str) -> str:
    """faster / slower / ... from a verdict cell that may carry a note in parentheses."""
    return cell.split(" (", 1)[0]


# ------------------------------------------------------------------------------------------------ Markdown
def _md_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown(cmp: Comparison) -> str:
    lines = ["# showdown compare", "", f"- A: `{_md_cell(cmp.label_a)}`", f"- B: `{_md_cell(cmp.label_b)}`", "",
             f"**{cmp.summary()}**", "", _method(), ""]
    for pair in cmp.pairs:
        lines += [f"## {_md_cell(_title(pair))}", ""]
        if pair.note:
            lines += [_md_cell(pair.note), ""]
        tables = _pair_rows(pair)
        if not tables:
            lines += ["No status, verdict or timing changes; no probe on one side only.", ""]
        for name, (header, rows) in tables.items():
            lines += [f"### {name.capitalize()}", "", "| " + " | ".join(header) + " |",
                      "|" + "|".join("---" for _ in header) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
    rows = _unpaired_rows(cmp)
    if rows:
        lines += ["## Runs without a counterpart", "", "| framework | device | in | run | why |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ HTML
_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:1200px;color:#222}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}h3{font-size:1rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:.5rem 0 1rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.faster td{background:#e6f4e6}tr.slower td{background:#fbe4e4}
.summary{font-weight:bold;font-size:1.05rem}
.note{color:#555}
"""

_NUMERIC = {"A ms", "B ms", "B/A", "p", "n A/B"}


def _e(text: Any) -> str:
    return _html.escape(str(text), quote=True)


def _html_table(header: list[str], rows: list[list[str]], timings: bool = False) -> str:
    out = ['<div class="scroll"><table><thead><tr>' + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for row in rows:
        word = _verdict_word(row[-1])
        cls = f' class="{word}"' if timings and word in ("faster", "slower") else ""
        cells = "".join(f'<td class="num">{_e(c)}</td>' if h in _NUMERIC else f"<td>{_e(c)}</td>" for h, c in zip(header, row))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def html(cmp: Comparison) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>showdown compare</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>showdown compare</h1>", f"<p>A: <code>{_e(cmp.label_a)}</code><br>B: <code>{_e(cmp.label_b)}</code></p>",
             f'<p class="summary">{_e(cmp.summary())}</p>', f'<p class="note">{_e(_method())}</p>']
    for pair in cmp.pairs:
        parts.append(f"<h2>{_e(_title(pair))}</h2>")
        if pair.note:
            parts.append(f'<p class="note">{_e(pair.note)}</p>')
        tables = _pair_rows(pair)
        if not tables:
            parts.append("<p>No status, verdict or timing changes; no probe on one side only.</p>")
        for name, (header, rows) in tables.items():
            parts.append(f"<h3>{_e(name.capitalize())}</h3>")
            parts.append(_html_table(header, rows, timings=name == "timings"))
    rows = _unpaired_rows(cmp)
    if rows:
        parts.append("<h2>Runs without a counterpart</h2>")
        parts.append(_html_table(["framework", "device", "in", "run", "why"], rows))
    parts.append("</body></html>\n")
    return "\n".join(parts)
