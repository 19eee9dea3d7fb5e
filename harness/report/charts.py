"""Charts for the report, drawn with matplotlib and returned as inline SVG text.

What a reader may rely on in every chart:
- one colour per framework, the same in every chart and every report (`framework_colours`): the registry's order
  decides it, so a framework keeps its colour whatever subset a report shows. Colour never means anything else:
  a tier is a text label and a hatching, a category is a group.
- every value axis says its unit and which way is better; a missing value is a labelled gap ("not measured"),
  never a zero-length bar; a tiny value keeps a visible bar and its printed value.
- throughput is a ratio to a baseline on a log axis, one chart per device and mode (`ratio_dots` refuses two).
- a fixed figure width (7.5 in = 540 pt = 720 px) so a chart fits an 800 px window at its natural size, fonts of
  9 pt or more, and a <title> plus role="img"/aria-label on the root element.

The SVG is reproducible (fixed hash salt, no date metadata), so the same results give the same report byte for
byte. Only the SVG backend is used: no display needed.
"""

from __future__ import annotations

import html
import io
import itertools
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator  # noqa: E402

matplotlib.rcParams.update({"svg.hashsalt": "showdown", "svg.fonttype": "none", "font.size": 10,
                            "axes.spines.top": False, "axes.spines.right": False, "hatch.linewidth": 0.8})

#: The smallest font any chart uses, in points.
MIN_FONT_PT = 9
#: Figure width in inches: 540 pt, which a browser draws as 720 px.
WIDTH_IN = 7.5

#: Colour-blind-safe palette, most distinct first. The first eight are Okabe and Ito's "Color Universal Design"
#: set (2008); the rest are from Paul Tol's "muted" and "bright" qualitative schemes (SRON technical note
#: SRON/EPS/TN/09-002). The first six frameworks of the registry get the six most distinct.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442",
           "#882255", "#44AA99", "#999933", "#332288", "#AA4499", "#BBBBBB", "#117733", "#DDCC77",
           # for names outside the registry (an ONNX runtime, a converter): Tol's "light" scheme, paler
           "#77AADD", "#EE8866", "#FFAABB", "#99DDFF", "#BBCC33", "#AAAA00", "#44BB99", "#EEDD88", "#DDDDDD")

#: Hatching per tier: the tier's second encoding beside its text label (colour stays the framework's).
TIER_HATCHES: dict[str | None, str] = {"Tier 1": "", "Tier 2": "//", "Tier 3": "xx", "Below": "..", None: ""}

NOT_MEASURED = "not measured"


# ---------------------------------------------------------------------------------------------------- colours
def _registry_order() -> list[tuple[str, str]]:
    from harness import registry  # lazy: the registry imports the framework table

    return [(name, info.display) for name, info in registry.frameworks().items()]


def framework_colours(frameworks: Sequence[str]) -> dict[str, str]:
    """One fixed colour per framework, keyed by the strings given (registry names or display names).

    The colour is the framework's place in the registry's table, not in `frameworks`, so it is the same in a report
    of two frameworks as in one of fourteen. A name the registry does not know takes the next colour after the
    registry's, in the order given. Past the palette's length, colours repeat (names are printed beside every mark).
    """
    order = _registry_order()
    index: dict[str, int] = {}
    for i, (name, display) in enumerate(order):
        index.setdefault(name, i)
        index.setdefault(display, i)
    extra = len(order)
    out: dict[str, str] = {}
    for f in frameworks:
        if f in out:
            continue
        at = index.get(f)
        if at is None and f.endswith(")") and " (" in f:  # a report's label "torch (cuda)": the framework's colour
            at = index.get(f[:f.rindex(" (")])
        if at is None:
            at = index[f] = extra
            extra += 1
        # past the palette (a registry holding more frameworks than it has colours): colours repeat, never a crash
        # of the report; the names printed beside every mark still tell them apart
        out[f] = PALETTE[at % len(PALETTE)]
    return out


def _luminance(colour: str) -> float:
    r, g, b = matplotlib.colors.to_rgb(colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _colour(colours: Mapping[str, str], name: str) -> str:
    try:
        return colours[name]
    except KeyError:
        raise ValueError(f"no colour given for {name!r}: pass framework_colours(...) for every name charted") from None


# ---------------------------------------------------------------------------------------------------- output
def _svg(fig: Any, title: str = "") -> str:
    """The figure as inline SVG: no prolog, a <title> and role/aria-label for screen readers, reproducible bytes."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "showdown"})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and doctype: the SVG is inlined in HTML
    if title:
        label = html.escape(" ".join(title.split()), quote=True)
        end = text.index(">")
        text = f'{text[:end]} role="img" aria-label="{label}">\n <title>{label}</title>{text[end + 1:]}'
    return text


def _figure(height_in: float) -> tuple[Any, Any]:
    fig, ax = plt.subplots(figsize=(WIDTH_IN, height_in), layout="constrained")
    return fig, ax


def _better_label(label: str, unit: str, better: str) -> str:
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', not {better!r}")
    return f"{label} ({unit + ', ' if unit else ''}{better} is better)"


def _fmt(v: float, unit: str = "") -> str:
    text = f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"
    return text + (unit if unit in ("%", "x") else (f" {unit}" if unit else ""))


def _gid(kind: str, i: int) -> str:
    return f"{kind}-{i}"


# ---------------------------------------------------------------------------------------------------- charts
def overall_chart(names: Sequence[str], overall: Sequence[float | None], tiers: Sequence[str | None],
                  past: Sequence[float | None], colours: Mapping[str, str], *, title: str = "Overall score per framework",
                  current_label: str = "this report") -> str:
    """Overall score per framework in the framework's colour; the tier as text and hatching; 2018 as an outline.

    Each bar's patch has the SVG id "overall-<i>" (i = position in `names`), its tier's hatching "tier-<i>", the 2018
    outline "past-<i>".
    """
    n = len(names)
    if not (len(overall) == len(tiers) == len(past) == n):
        raise ValueError("overall_chart: names, overall, tiers and past must have the same length")
    fig, ax = _figure(0.5 * n + 1.6)
    for i, name in enumerate(names):
        v, t, p = overall[i], tiers[i], past[i]
        if v is None:
            ax.text(1, i - 0.15, NOT_MEASURED, va="center", fontsize=MIN_FONT_PT, color="#495057", style="italic")
        else:
            fill = _colour(colours, name)
            bar = ax.barh(i - 0.15, max(v, 0.6), height=0.42, color=fill, linewidth=0)
            bar.patches[0].set_gid(_gid("overall", i))
            if TIER_HATCHES.get(t):  # the tier's pattern over the framework's colour, as a patch of its own
                over = ax.barh(i - 0.15, max(v, 0.6), height=0.42, facecolor="none", hatch=TIER_HATCHES[t],
                               edgecolor="#000000" if _luminance(fill) > 0.45 else "#ffffff", linewidth=0)
                over.patches[0].set_gid(_gid("tier", i))
            ax.text(v + 1, i - 0.15, f"{v:.1f}" + (f"  {t}" if t else ""), va="center", fontsize=MIN_FONT_PT + 1,
                    fontweight="bold")
        if p is not None:
            outline = ax.barh(i + 0.24, p, height=0.22, facecolor="none", edgecolor="#495057", linewidth=1,
                              linestyle="--")
            outline.patches[0].set_gid(_gid("past", i))
            ax.text(p + 1, i + 0.24, f"{p:.1f} (2018)", va="center", fontsize=MIN_FONT_PT, color="#495057")
    ax.set_yticks(range(n), names)
    ax.set_ylim(n - 0.5, -0.6)
    ax.set_xlim(0, 118)
    ax.set_xticks([0, 20, 40, 60, 80, 100])
    ax.set_xlabel("overall score (0-100, higher is better)")
    handles: list[Any] = [Patch(facecolor="#868e96", label=f"bar: {current_label} (framework's colour)"),
                          Patch(facecolor="none", edgecolor="#495057", linestyle="--",
                                label="2018 (published, 13 frameworks)")]
    shown = [t for t in TIER_HATCHES if t is not None and t in tiers]
    handles += [Patch(facecolor="#ffffff", edgecolor="#212529", hatch=TIER_HATCHES[t] or None, label=t) for t in shown]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False, fontsize=MIN_FONT_PT)
    ax.set_title(title, loc="left", fontsize=11)
    return _svg(fig, title)


def category_chart(names: Sequence[str], categories: Mapping[str, Sequence[float | None]], colours: Mapping[str, str],
                   *, title: str = "Category scores per framework", past: Mapping[str, Sequence[float | None]] | None = None
                   ) -> str:
    """Grouped horizontal bars: one group per category, one bar per framework in its colour, on one 0-100 axis.

    Bar ids are "cat-<g>-<i>" (g = category's position, i = framework's). `past` (optional, same shape) adds the
    2018 value as a tick mark on each bar.
    """
    n = len(names)
    for cat, vals in categories.items():
        if len(vals) != n:
            raise ValueError(f"category_chart: {cat!r} has {len(vals)} values for {n} frameworks")
    rows: list[str] = []
    pos = 0.0
    fig, ax = _figure(0.27 * (n + 1.2) * max(len(categories), 1) + 1.3)
    ticks: list[float] = []
    for g, (cat, vals) in enumerate(categories.items()):
        ax.annotate(cat, xy=(0, pos - 0.3), xycoords=("axes fraction", "data"), xytext=(-4, 0),
                    textcoords="offset points", ha="right", va="bottom", fontsize=10.5, fontweight="bold")
        for i, name in enumerate(names):
            y = pos + 0.5 + i
            v = vals[i]
            if v is None:
                ax.text(1, y, NOT_MEASURED, va="center", fontsize=MIN_FONT_PT, color="#495057", style="italic")
            else:
                bar = ax.barh(y, max(v, 0.6), height=0.8, color=_colour(colours, name))
                bar.patches[0].set_gid(f"cat-{g}-{i}")
                ax.text(v + 1, y, f"{v:.1f}", va="center", fontsize=MIN_FONT_PT)
            if past is not None and cat in past and past[cat][i] is not None:
                p = past[cat][i]
                ax.plot([p, p], [y - 0.45, y + 0.45], color="#212529", linewidth=1.5, linestyle=(0, (2, 1)))
            ticks.append(y)
            rows.append(name)
        pos += n + 1.2
    ax.set_yticks(ticks, rows, fontsize=MIN_FONT_PT)
    ax.set_ylim(pos - 0.7, -0.9)
    ax.set_xlim(0, 110)
    ax.set_xticks([0, 20, 40, 60, 80, 100])
    ax.set_xlabel("category score (0-100, higher is better)")
    ax.xaxis.grid(True, color="#e9ecef", linewidth=0.8)
    ax.set_axisbelow(True)
    if past is not None:
        fig.legend(handles=[Line2D([], [], color="#212529", linestyle=(0, (2, 1)), label="2018 (published, 13 frameworks)")],
                   loc="outside lower center", frameon=False, fontsize=MIN_FONT_PT)
    ax.set_title(title, loc="left", fontsize=11)
    return _svg(fig, title)


def _log_axis(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """A log axis covering lo..hi: its ends and ticks. 1-2-5 per decade over a short span, fewer as it grows so labels
    never touch, finer for a narrow one; the ends are widened to the ticks just outside lo and hi, so both carry one."""
    decades = math.log10(hi / lo)
    steps: tuple[float, ...] = (1, 2, 5) if decades <= 2.6 else (1, 3) if decades <= 4 else (1,)
    first, last = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    if sum(lo <= m * 10.0 ** e <= hi for e in range(first, last + 1) for m in steps) < 3:
        steps = (1, 1.5, 2, 3, 5, 7)
    every = [m * 10.0 ** e for e in range(first, last + 1) for m in steps]
    start = max(t for t in every if t <= lo)
    end = min(t for t in every if t >= hi)
    return start / 1.08, end * 1.08, [t for t in every if start <= t <= end]


def ratio_dots(workloads: Sequence[str], frameworks: Sequence[str], ratios: Mapping[str, Sequence[float | None]],
               baseline: str, colours: Mapping[str, str], title: str, better: str = "lower", *,
               devices: Sequence[str] | None = None, quantity: str = "time per step") -> str:
    """Time per step relative to `baseline` (1 = baseline) on a log x axis: a row per workload, a dot per framework.

    `ratios[framework][w]` is the ratio for workloads[w]; None (or a framework absent from `ratios`) draws no dot.
    One chart is one device and one mode: pass the devices the figures came from as `devices` and two distinct ones
    raise ValueError. Dot ids are "dot-<f>-<w>".
    """
    if devices is not None and len(set(devices)) > 1:
        raise ValueError(f"ratio_dots: one chart per device, got {', '.join(sorted(set(devices)))}")
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', not {better!r}")
    values: list[float] = []
    for f in frameworks:
        vals = ratios.get(f, [])
        if len(vals) not in (0, len(workloads)):
            raise ValueError(f"ratio_dots: {f!r} has {len(vals)} ratios for {len(workloads)} workloads")
        for v in vals:
            if v is not None:
                if not (v > 0 and math.isfinite(v)):
                    raise ValueError(f"ratio_dots: {f!r} has ratio {v!r}; a ratio must be a positive number")
                values.append(v)
    lo = min([*values, 1.0]) / 1.5
    hi = max([*values, 1.0]) * 1.5
    nw, nf = len(workloads), len(frameworks)
    fig, ax = _figure(0.55 * nw + 0.3 * math.ceil(nf / 4) + 1.6)
    ax.set_xscale("log")
    ax.axvline(1.0, color="#495057", linewidth=1, zorder=1)
    missing: list[str] = []
    for fi, f in enumerate(frameworks):
        offset = (fi - (nf - 1) / 2) * (0.6 / max(nf, 1))  # spread within the row so equal ratios stay visible
        vals = ratios.get(f) or [None] * nw
        for w, v in enumerate(vals):
            if v is None:
                missing.append(f"{f}: {workloads[w]}")
                continue
            pts = ax.scatter([v], [w + offset], s=42, color=_colour(colours, f), edgecolors="#212529", linewidths=0.5,
                             zorder=3)
            pts.set_gid(f"dot-{fi}-{w}")
    for w in range(nw):
        ax.axhline(w, color="#f1f3f5", linewidth=6, zorder=0)
        if all(not ratios.get(f) or ratios[f][w] is None for f in frameworks):
            ax.text(1.0, w, "  no figure for any framework", va="center", fontsize=MIN_FONT_PT, color="#495057",
                    style="italic")
    lo, hi, ticks = _log_axis(lo, hi)
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([f"{round(t, 6):g}x" for t in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(range(nw), workloads)
    ax.set_ylim(nw - 0.5, -0.5)
    ax.set_xlabel(f"x {baseline} {quantity}, {better} is better (log scale)")
    drawn = [f for f in frameworks if any(v is not None for v in ratios.get(f) or [])]
    absent = [f for f in frameworks if f not in drawn]
    handles: list[Any] = [Line2D([], [], marker="o", linestyle="", markersize=7, markerfacecolor=_colour(colours, f),
                                 markeredgecolor="#212529", markeredgewidth=0.5, label=f) for f in drawn]
    key = "no dot: not measured, failed, or not verified" + (f"\nno figure at all: {', '.join(absent)}" if absent else "")
    fig.legend(handles=handles, loc="outside lower center", ncol=min(4, max(len(drawn), 1)), frameon=False,
               fontsize=MIN_FONT_PT, title=key, title_fontsize=MIN_FONT_PT)
    ax.set_title(title, loc="left", fontsize=11)
    return _svg(fig, title + (f" (no dot: {'; '.join(missing)})" if missing else ""))


def value_bars(names: Sequence[str], values: Sequence[float | None], colours: Mapping[str, str], label: str,
               better: str = "higher", unit: str = "", limit: float | None = None, *, title: str = "") -> str:
    """A per-framework figure as horizontal bars in each framework's colour, its value printed at the bar end.

    A bar never vanishes: a value above 0 keeps at least 1% of the axis and its printed value; None prints
    "not measured" where the bar would be. `limit` fixes the axis maximum (e.g. 100 for a percentage).
    Bar ids are "value-<i>".
    """
    n = len(names)
    if len(values) != n:
        raise ValueError(f"value_bars: {len(values)} values for {n} names")
    axis = _better_label(label, unit, better)
    shown = [v for v in values if v is not None]
    if any(not math.isfinite(v) or v < 0 for v in shown):
        raise ValueError("value_bars: values must be finite and not negative")
    top = max([*shown, limit or 0.0]) or 1.0  # a value above `limit` widens the axis rather than being cut off
    fig, ax = _figure(0.38 * n + 1.2)
    for i, name in enumerate(names):
        v = values[i]
        if v is None:
            ax.text(top * 0.01, i, NOT_MEASURED, va="center", fontsize=MIN_FONT_PT, color="#495057", style="italic")
            continue
        width = max(v, top * 0.01) if v > 0 else 0.0
        bar = ax.barh(i, width, height=0.7, color=_colour(colours, name))
        bar.patches[0].set_gid(_gid("value", i))
        ax.text(width + top * 0.01, i, _fmt(v, unit), va="center", fontsize=MIN_FONT_PT)
    ax.set_yticks(range(n), names)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, top * 1.15)
    ax.set_xticks([t for t in ax.get_xticks() if 0 <= t <= top * 1.0001])  # no tick past the top: room for labels
    if limit is not None:
        ax.axvline(limit, color="#868e96", linewidth=0.8, linestyle=(0, (3, 2)), zorder=0)
    ax.set_xlabel(axis)
    ax.xaxis.grid(True, color="#e9ecef", linewidth=0.8)
    ax.set_axisbelow(True)
    title = title or label
    ax.set_title(title, loc="left", fontsize=11)
    return _svg(fig, title)


def heatmap(rows: Sequence[str], cols: Sequence[str], values: Sequence[Sequence[float | None]], label: str, *,
            title: str = "", percent: bool = True, row_label: str = "", col_label: str = "") -> str:
    """An annotated matrix (e.g. exporter x importer: share of models that agree), None cells hatched "n/a".

    Values are shares in [0, 1] (printed as percentages unless percent=False). The colour map is cividis, which
    keeps its order for colour-blind readers and in greyscale; the printed value is the figure, colour a guide.
    Cell ids are "cell-<r>-<c>".
    """
    if len(values) != len(rows) or any(len(r) != len(cols) for r in values):
        raise ValueError(f"heatmap: values must be {len(rows)} rows of {len(cols)}")
    cmap = plt.get_cmap("cividis")
    nr, nc = len(rows), len(cols)
    fig, ax = _figure(0.45 * nr + 1.9)
    for r in range(nr):
        for c in range(nc):
            v = values[r][c]
            if v is None:
                cell = ax.add_patch(matplotlib.patches.Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="#f8f9fa",
                                                                 edgecolor="#ced4da", hatch="///", linewidth=0.5))
                ax.text(c, r, "n/a", ha="center", va="center", fontsize=MIN_FONT_PT, color="#495057")
            else:
                if not (0 <= v <= 1):
                    raise ValueError(f"heatmap: value {v!r} at ({rows[r]}, {cols[c]}) is not a share in [0, 1]")
                rgba = cmap(float(v))  # an int would index the colour table
                cell = ax.add_patch(matplotlib.patches.Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=rgba,
                                                                 edgecolor="#ffffff", linewidth=1))
                light = 0.2126 * rgba[0] + 0.7152 * rgba[1] + 0.0722 * rgba[2] > 0.5
                ax.text(c, r, f"{v * 100:.0f}%" if percent else f"{v:.2g}", ha="center", va="center",
                        fontsize=MIN_FONT_PT, color="#000000" if light else "#ffffff")
            cell.set_gid(f"cell-{r}-{c}")
    ax.set_xlim(-0.5, nc - 0.5)
    ax.set_ylim(nr - 0.5, -0.5)
    ax.set_yticks(range(nr), rows, fontsize=MIN_FONT_PT)
    ax.spines[["left", "bottom"]].set_visible(False)
    ax.tick_params(length=0)
    ax.set_aspect("auto")
    sm = matplotlib.cm.ScalarMappable(cmap=cmap, norm=matplotlib.colors.Normalize(0, 100 if percent else 1))
    bar = fig.colorbar(sm, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label(label + (" (%, higher is better)" if percent else " (higher is better)"), fontsize=MIN_FONT_PT)
    bar.ax.tick_params(labelsize=MIN_FONT_PT)
    if row_label:
        ax.set_ylabel(row_label)
    if col_label:
        ax.set_xlabel(col_label)
    title = title or label
    ax.set_title(title, loc="left", fontsize=11)
    _column_labels(fig, ax, cols)  # last: whether they fit depends on the final layout
    return _svg(fig, title)


def _column_labels(fig: Any, ax: Any, cols: Sequence[str]) -> None:
    """Column labels level and wrapped at word ends where they fit side by side, else turned upright (90 degrees).

    Whether they fit is measured on the drawn figure, not guessed from the number of characters.
    """
    wrapped = [textwrap.fill(c, 12, break_long_words=False) for c in cols]
    ax.set_xticks(range(len(cols)), wrapped, fontsize=MIN_FONT_PT)
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.get_xticklabels()]
    if any(a.x1 + 2 > b.x0 for a, b in itertools.pairwise(boxes)):
        ax.set_xticks(range(len(cols)), list(cols), rotation=90, fontsize=MIN_FONT_PT)


def svg_width_px(svg: str) -> float:
    """The SVG's natural width in CSS pixels (from its width attribute: pt -> px at 96/72)."""
    m = re.search(r'<svg[^>]*\swidth="([0-9.]+)(pt|px)?"', svg)
    if m is None:
        raise ValueError("no width attribute on the SVG")
    return float(m.group(1)) * (96 / 72 if m.group(2) in (None, "pt") else 1.0)
