"""The report's charts: same input same bytes, one colour per framework, tiers never by colour, honest axes.

Each check that inspects a chart parses its SVG (ids set on the drawn patches), and each is run against a wrong
chart as well, to show that the check can fail.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence

import pytest

from harness import registry
from harness.report import charts

NS = {"svg": "http://www.w3.org/2000/svg", "xlink": "http://www.w3.org/1999/xlink"}
LONG = ["PyTorch", "TensorFlow (Keras 3)", "Apache MXNet (Gluon)", "Chainer", "PaddlePaddle", "JAX (Flax + Optax)",
        "Theano", "Caffe", "BigDL (DLlib on Spark)", "Caffe2", "Microsoft CNTK", "Deeplearning4J",
        "Intel Nervana neon", "Torch (Lua, torch7)"]


# ---------------------------------------------------------------------------------------------------- helpers
def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def by_id(svg: str, gid: str) -> ET.Element | None:
    return parse(svg).find(f".//*[@id='{gid}']")


def fill_of(svg: str, gid: str) -> str:
    g = by_id(svg, gid)
    assert g is not None, f"no element {gid}"
    path = g.find("svg:path", NS)
    assert path is not None, f"no path in {gid}"
    m = re.search(r"fill:\s*(#[0-9a-fA-F]{6})", path.get("style", ""))
    assert m, f"no fill on {gid}: {path.get('style')}"
    return m.group(1).lower()


def path_box(svg: str, gid: str) -> tuple[float, float]:
    """The x extent of the first path in element `gid`."""
    g = by_id(svg, gid)
    assert g is not None, f"no element {gid}"
    path = g.find("svg:path", NS)
    assert path is not None
    xs = [float(x) for x in re.findall(r"([-0-9.]+) [-0-9.]+", path.get("d", ""))]
    return min(xs), max(xs)


def dot_x(svg: str, gid: str) -> float:
    g = by_id(svg, gid)
    assert g is not None, f"no dot {gid}"
    use = g.find(".//svg:use", NS)
    assert use is not None
    return float(use.get("x", "nan"))


def texts(svg: str) -> list[str]:
    return ["".join(t.itertext()).strip() for t in parse(svg).iter(f"{{{NS['svg']}}}text")]


def font_sizes(svg: str) -> list[float]:
    return [float(x) for x in re.findall(r"font-size:\s*([0-9.]+)px", svg)]


def colours_for(names: Sequence[str]) -> dict[str, str]:
    return charts.framework_colours(names)


def overall_args(names: Sequence[str]) -> tuple[list[float | None], list[str | None], list[float | None]]:
    tiers: list[str | None] = ["Tier 1", "Tier 1", "Tier 2", "Tier 2", "Tier 3", "Below"]
    overall: list[float | None] = [80.0, 75.5, 50.0, 45.0, 30.0, 10.0]
    past: list[float | None] = [70.0, None, 60.0, 55.0, None, 20.0]
    n = len(names)
    return overall[:n], tiers[:n], past[:n]


def every_chart() -> dict[str, str]:
    """Every new chart at its widest: the fourteen long display names."""
    col = colours_for(LONG)
    overall = [float(i * 7 % 100) if i % 5 else None for i in range(len(LONG))]
    tiers: list[str | None] = [("Tier 1", "Tier 2", "Tier 3", "Below")[i % 4] if v is not None else None
                               for i, v in enumerate(overall)]
    past = [50.0 if i % 3 else None for i in range(len(LONG))]
    cats = {c: [float(10 + 5 * i) if i % 4 else None for i in range(len(LONG))]
            for c in ("Speed and Correctness", "API", "Platform")}
    ratios = {f: [0.5 + i, None, 3.0 * (i + 1), 0.2] for i, f in enumerate(LONG)}
    return {
        "overall": charts.overall_chart(LONG, overall, tiers, past, col),
        "category": charts.category_chart(LONG, cats, col, past={"API": past}),
        "ratio": charts.ratio_dots(["multilayer perceptron", "small convnet", "LSTM language model", "transformer"],
                                   LONG, ratios, "PyTorch", col, "Eager training step, cpu", devices=["cpu"] * 3),
        "value": charts.value_bars(LONG, [float(i) if i % 3 else None for i in range(len(LONG))], col,
                                   "operations covered", unit="of 41"),
        "heatmap": charts.heatmap(LONG[:7], [f"importer {n}" for n in LONG[:8]],
                                  [[(r + c) % 5 / 4 if (r + c) % 6 else None for c in range(8)] for r in range(7)],
                                  "models that agree", row_label="exporter", col_label="importer"),
        "heatmap_short": charts.heatmap(["torch", "tensorflow"], ["onnxruntime", "torch", "jax", "tensorflow", "mxnet",
                                                                  "paddle", "tvm"], [[0.5] * 7, [1.0] * 7], "agree"),
    }


# ---------------------------------------------------------------------------------------------------- colours
def test_every_registered_framework_has_its_own_colour() -> None:
    names = registry.select("every")
    col = charts.framework_colours(names)
    assert len(names) >= 14
    assert set(col) == set(names)
    assert len(set(col.values())) == len(names), col


def lab(hex_colour: str) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an sRGB colour, to measure how far apart two colours look."""
    rgb = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    x = (0.4124 * lin[0] + 0.3576 * lin[1] + 0.1805 * lin[2]) / 0.95047
    y = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    z = (0.0193 * lin[0] + 0.1192 * lin[1] + 0.9505 * lin[2]) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def min_distance(colours: Sequence[str]) -> float:
    pts = [lab(c) for c in colours]
    return min(math.dist(a, b) for i, a in enumerate(pts) for b in pts[i + 1:])


# Machado, Oliveira and Fernandes (2009), "A Physiologically-based Model for Simulation of Color Vision Deficiency":
# the matrices for severity 1.0, applied to linear RGB
DEUTERANOPIA = ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413), (-0.011820, 0.042940, 0.968881))
PROTANOPIA = ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216), (-0.003882, -0.048116, 1.051998))


def as_seen(hex_colour: str, matrix: Sequence[Sequence[float]]) -> str:
    rgb = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    out = [min(1.0, max(0.0, sum(row[k] * lin[k] for k in range(3)))) for row in matrix]
    srgb = [12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055 for c in out]
    return "#" + "".join(f"{round(c * 255):02x}" for c in srgb)


def test_colours_are_far_apart_also_for_colour_blind_readers() -> None:
    col = list(charts.framework_colours(registry.select("every")).values())
    assert min_distance(col) >= 15  # CIE76 distance; 2.3 is "just noticeable"
    # the first eight (the main report's frameworks first) stay apart under deuteranopia and protanopia
    for matrix in (DEUTERANOPIA, PROTANOPIA):
        assert min_distance([as_seen(c, matrix) for c in col[:8]]) >= 15
    # the checks can fail: near-equal blues, and matplotlib's default cycle (red beside green) seen by a deuteranope
    assert min_distance(["#0072B2", "#0073B3", "#E69F00"]) < 15
    tab10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    assert min_distance(tab10) >= 15
    assert min(min_distance([as_seen(c, m) for c in tab10]) for m in (DEUTERANOPIA, PROTANOPIA)) < 15


def test_colour_is_stable_whatever_subset_a_report_shows() -> None:
    every = charts.framework_colours(registry.select("every"))
    for subset in (["jax"], ["chainer", "torch"], ["caffe2", "theano", "mxnet"], list(reversed(registry.select("every")))):
        assert charts.framework_colours(subset) == {f: every[f] for f in subset}, subset

    # a wrong implementation that colours by position in the list given would differ as soon as the subset changes
    def by_position(frameworks: Sequence[str]) -> dict[str, str]:
        return {f: charts.PALETTE[i] for i, f in enumerate(frameworks)}

    assert by_position(["jax"]) != {"jax": every["jax"]}


def test_display_names_and_device_labels_share_the_framework_colour() -> None:
    every = charts.framework_colours(registry.select("every"))
    info = registry.frameworks()
    col = charts.framework_colours([info["torch"].display, "torch (cuda)", "jax (gpu)"])
    assert col == {info["torch"].display: every["torch"], "torch (cuda)": every["torch"], "jax (gpu)": every["jax"]}


def test_unknown_frameworks_get_colours_no_registered_one_uses() -> None:
    every = charts.framework_colours(registry.select("every"))
    col = charts.framework_colours(["torch", "someone-elses", "another"])
    assert col["torch"] == every["torch"]
    assert col["someone-elses"] != col["another"]
    assert not {col["someone-elses"], col["another"]} & set(every.values())
    many = charts.framework_colours([f"extra{i}" for i in range(len(charts.PALETTE))])  # more than the palette holds
    assert len(many) == len(charts.PALETTE) and set(many.values()) <= set(charts.PALETTE)  # repeats, no crash


# ---------------------------------------------------------------------------------------------------- every chart
def test_same_input_gives_the_same_bytes() -> None:
    first, second = every_chart(), every_chart()
    for name, svg in first.items():
        assert svg == second[name], name
        assert svg.startswith("<svg"), name
        assert "<dc:date>" not in svg and "<?xml" not in svg, name


@pytest.mark.parametrize("name", ["overall", "category", "ratio", "value", "heatmap", "heatmap_short"])
def test_every_chart_fits_800_px_with_readable_fonts_and_a_title(name: str) -> None:
    svg = every_chart()[name]
    assert charts.svg_width_px(svg) <= 760
    root = parse(svg)
    view = [float(v) for v in root.get("viewBox", "").split()]
    assert view[2] * 96 / 72 <= 760  # user units are points: the viewBox agrees with the width
    sizes = font_sizes(svg)
    assert sizes and min(sizes) >= charts.MIN_FONT_PT, sorted(set(sizes))
    assert root.get("role") == "img" and root.get("aria-label")
    title = root.find("svg:title", NS)
    assert title is not None and title.text == root.get("aria-label")


def test_width_and_font_checks_catch_a_wide_chart_with_small_print() -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 3))
    ax.text(0.5, 0.5, "tiny", fontsize=6)
    svg = charts._svg(fig, "too wide")
    assert charts.svg_width_px(svg) > 760
    assert min(font_sizes(svg)) < charts.MIN_FONT_PT


def test_title_is_escaped_in_the_svg() -> None:
    svg = charts.value_bars(["torch"], [1.0], colours_for(["torch"]), "x", title='a <b> & "c"')
    root = parse(svg)  # parses: nothing leaked as markup
    assert root.get("aria-label") == 'a <b> & "c"'
    assert "<b>" not in svg


# ---------------------------------------------------------------------------------------------------- overall
def tier_fill_problems(chart: Callable[..., str]) -> list[str]:
    """What is wrong with a chart's fills: same-tier frameworks must differ, and each bar has its framework's colour."""
    names = ["torch", "tensorflow", "mxnet", "chainer", "paddle", "jax"]
    overall, tiers, past = overall_args(names)
    col = colours_for(names)
    svg = chart(names, overall, tiers, past, col)
    fills = {n: fill_of(svg, f"overall-{i}") for i, n in enumerate(names)}
    problems = [f"{a} and {b} share {fills[a]} in {tiers[i]}" for i, a in enumerate(names) for j, b in enumerate(names)
                if i < j and tiers[i] == tiers[j] and fills[a] == fills[b]]
    problems += [f"{n} is {fills[n]}, not {col[n].lower()}" for n in names if fills[n] != col[n].lower()]
    return problems


def test_tier_is_never_the_bar_colour() -> None:
    assert tier_fill_problems(charts.overall_chart) == []


def test_a_chart_that_colours_by_tier_fails_the_tier_check() -> None:
    tier_colour = {"Tier 1": "#2b8a3e", "Tier 2": "#1971c2", "Tier 3": "#e8590c", "Below": "#868e96"}

    def by_tier(names: Sequence[str], overall: Sequence[float | None], tiers: Sequence[str | None],
                past: Sequence[float | None], colours: Mapping[str, str]) -> str:
        return charts.overall_chart(names, overall, tiers, past, {n: tier_colour[t or "Below"] for n, t in zip(names, tiers)})

    assert tier_fill_problems(by_tier)


def test_tier_is_shown_as_text_and_hatching() -> None:
    names = ["torch", "tensorflow", "mxnet", "chainer", "paddle", "jax"]
    overall, tiers, past = overall_args(names)
    svg = charts.overall_chart(names, overall, tiers, past, colours_for(names))
    shown = texts(svg)
    assert "80.0  Tier 1" in shown and "30.0  Tier 3" in shown and "10.0  Below" in shown
    # the hatching lies over the bar as its own patch filled with a pattern; tier 1 is plain, each other tier its own
    def pattern(i: int) -> str | None:
        g = by_id(svg, f"tier-{i}")
        if g is None:
            return None
        m = re.search(r"url\(#(\w+)\)", g.find("svg:path", NS).get("style", ""))  # type: ignore[union-attr]
        assert m, f"tier-{i} has no pattern"
        drawn = parse(svg).find(f".//svg:pattern[@id='{m.group(1)}']/svg:path", NS)
        assert drawn is not None
        return drawn.get("d")  # the hatch's shape (its colour follows the bar's for contrast)

    assert pattern(0) is None and pattern(1) is None
    assert pattern(2) == pattern(3)
    assert len({pattern(2), pattern(4), pattern(5)}) == 3


def test_overall_axis_2018_outline_and_missing_values() -> None:
    names = ["torch", "tensorflow", "mxnet"]
    svg = charts.overall_chart(names, [80.0, None, 0.0], ["Tier 1", None, "Below"], [70.0, 60.0, None],
                               colours_for(names))
    shown = texts(svg)
    assert "overall score (0-100, higher is better)" in shown
    assert "2018 (published, 13 frameworks)" in shown
    assert "not measured" in shown
    assert by_id(svg, "overall-1") is None  # no bar at all for a missing value, not a zero-length one
    lo, hi = path_box(svg, "overall-2")
    assert hi - lo > 1  # a score of 0 keeps a visible sliver and its label
    assert "0.0  Below" in shown
    past = by_id(svg, "past-0")
    assert past is not None
    style = past.find("svg:path", NS).get("style", "")  # type: ignore[union-attr]
    assert "fill: none" in style and "stroke-dasharray" in style  # outlined, dashed: not a second filled bar


def test_overall_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="same length"):
        charts.overall_chart(["torch"], [1.0, 2.0], [None], [None], colours_for(["torch"]))
    with pytest.raises(ValueError, match="no colour given for 'jax'"):
        charts.overall_chart(["jax"], [1.0], [None], [None], colours_for(["torch"]))


# ---------------------------------------------------------------------------------------------------- categories
def test_category_chart_groups_bars_in_framework_colours() -> None:
    names = ["torch", "jax", "mxnet"]
    col = colours_for(names)
    svg = charts.category_chart(names, {"Speed": [90.0, 80.0, None], "API": [70.0, 60.0, 50.0]}, col)
    for g in range(2):
        for i, n in enumerate(names):
            if (g, i) != (0, 2):
                assert fill_of(svg, f"cat-{g}-{i}") == col[n].lower()
    assert by_id(svg, "cat-0-2") is None
    shown = texts(svg)
    assert "not measured" in shown and "Speed" in shown and "API" in shown
    assert "category score (0-100, higher is better)" in shown
    with pytest.raises(ValueError, match="has 1 values for 3"):
        charts.category_chart(names, {"Speed": [1.0]}, col)


# ---------------------------------------------------------------------------------------------------- ratios
def ratio_chart(ratios: Mapping[str, Sequence[float | None]], **kw: object) -> str:
    fw = list(ratios)
    return charts.ratio_dots(["w"], fw, ratios, "torch", colours_for(fw), "Eager, cpu", **kw)  # type: ignore[arg-type]


def test_ratio_axis_is_logarithmic() -> None:
    svg = ratio_chart({"torch": [1.0], "jax": [10.0], "mxnet": [100.0]})
    x1, x10, x100 = (dot_x(svg, f"dot-{i}-0") for i in range(3))
    assert x1 < x10 < x100
    assert (x100 - x10) == pytest.approx(x10 - x1, rel=1e-3)  # equal steps per decade: a log axis
    shown = texts(svg)
    assert {"1x", "10x", "100x"} <= set(shown)
    assert "x torch time per step, lower is better (log scale)" in shown


def xtick_labels(svg: str) -> list[str]:
    root = parse(svg)
    return ["".join(t.itertext()).strip() for g in root.iter(f"{{{NS['svg']}}}g")
            if (g.get("id") or "").startswith("xtick_") for t in g.iter(f"{{{NS['svg']}}}text")]


@pytest.mark.parametrize(("top", "expected"), [
    (1.2, ["0.5x", "0.7x", "1x", "1.5x", "2x"]),
    (30.0, ["0.5x", "1x", "2x", "5x", "10x", "20x", "50x"]),
    (0.05, ["0.02x", "0.05x", "0.1x", "0.2x", "0.5x", "1x", "2x"]),
    (500.0, ["0.3x", "1x", "3x", "10x", "30x", "100x", "300x", "1000x"]),
    (5000.0, ["0.1x", "1x", "10x", "100x", "1000x", "10000x"]),
])
def test_ratio_ticks_stay_few_and_label_both_ends(top: float, expected: list[str]) -> None:
    labels = xtick_labels(ratio_chart({"torch": [1.0], "jax": [top]}))
    assert labels == expected
    values = [float(t[:-1]) for t in labels]
    assert values[0] <= min(1.0, top) and values[-1] >= max(1.0, top)  # every dot lies between two labelled ticks


def test_a_row_without_any_figure_says_so() -> None:
    svg = charts.ratio_dots(["a", "b"], ["torch", "jax"], {"torch": [1.0, None], "jax": [2.0, None]}, "torch",
                            colours_for(["torch", "jax"]), "t")
    assert texts(svg).count("no figure for any framework") == 1


def test_the_log_check_fails_on_a_linear_axis() -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 2))
    for i, v in enumerate((1.0, 10.0, 100.0)):
        ax.scatter([v], [0]).set_gid(f"dot-{i}-0")
    svg = charts._svg(fig)
    x1, x10, x100 = (dot_x(svg, f"dot-{i}-0") for i in range(3))
    assert (x100 - x10) != pytest.approx(x10 - x1, rel=1e-3)


def test_ratio_dots_refuse_two_devices_in_one_chart() -> None:
    with pytest.raises(ValueError, match="one chart per device, got cpu, cuda"):
        ratio_chart({"torch": [1.0], "jax": [2.0]}, devices=["cpu", "cuda"])
    assert ratio_chart({"torch": [1.0], "jax": [2.0]}, devices=["cuda", "cuda"]).startswith("<svg")


def test_ratio_dots_draw_no_dot_for_a_missing_figure_and_say_so() -> None:
    svg = ratio_chart({"torch": [1.0], "jax": [None], "mxnet": [3.0]})
    assert by_id(svg, "dot-1-0") is None and by_id(svg, "dot-2-0") is not None
    assert "no dot: not measured, failed, or not verified" in texts(svg)
    assert "jax: w" in (parse(svg).get("aria-label") or "")
    shown = texts(svg)
    assert "no figure at all: jax" in shown and "jax" not in shown  # named as absent, not given a legend dot
    assert "mxnet" in shown
    with pytest.raises(ValueError, match="positive"):
        ratio_chart({"torch": [1.0], "jax": [0.0]})
    with pytest.raises(ValueError, match="better must be"):
        ratio_chart({"torch": [1.0]}, better="faster")


# ---------------------------------------------------------------------------------------------------- values
def test_value_bars_keep_tiny_and_missing_values_visible() -> None:
    names = ["torch", "jax", "mxnet", "paddle"]
    svg = charts.value_bars(names, [100.0, 0.001, None, 0.0], colours_for(names), "conformance pass rate",
                            unit="%", limit=100)
    shown = texts(svg)
    assert "0.001%" in shown and "100.0%" in shown and "0%" in shown
    assert "not measured" in shown
    assert by_id(svg, "value-2") is None
    full = path_box(svg, "value-0")
    tiny = path_box(svg, "value-1")
    assert (tiny[1] - tiny[0]) >= 0.009 * (full[1] - full[0])  # at least about 1% of the axis: visible
    assert "conformance pass rate (%, higher is better)" in shown


def test_value_bars_widen_the_axis_for_a_value_above_the_limit() -> None:
    names = ["torch", "jax"]
    svg = charts.value_bars(names, [120.0, 60.0], colours_for(names), "share", unit="%", limit=100)
    big, half = path_box(svg, "value-0"), path_box(svg, "value-1")
    assert (big[1] - big[0]) == pytest.approx(2 * (half[1] - half[0]), rel=1e-3)  # drawn to scale, not clipped at 100


def test_value_bars_state_the_direction_and_refuse_bad_values() -> None:
    svg = charts.value_bars(["torch"], [3.0], colours_for(["torch"]), "compile time", better="lower", unit="s")
    assert "compile time (s, lower is better)" in texts(svg)
    assert "3 s" in texts(svg)
    with pytest.raises(ValueError, match="not negative"):
        charts.value_bars(["torch"], [-1.0], colours_for(["torch"]), "x")
    with pytest.raises(ValueError, match="2 values for 1 names"):
        charts.value_bars(["torch"], [1.0, 2.0], colours_for(["torch"]), "x")


# ---------------------------------------------------------------------------------------------------- heatmap
def test_heatmap_annotates_every_cell() -> None:
    svg = charts.heatmap(["torch", "jax"], ["onnxruntime", "tvm"], [[1, 0.5], [None, 0.0]], "models that agree")
    shown = texts(svg)
    assert {"100%", "50%", "0%", "n/a"} <= set(shown)
    assert "models that agree (%, higher is better)" in shown
    # an integer share is a share, not an index into the colour table
    same = charts.heatmap(["torch"], ["tvm"], [[1.0]], "models that agree")
    cell = parse(svg).find(".//*[@id='cell-0-0']/svg:path", NS)
    cell_float = parse(same).find(".//*[@id='cell-0-0']/svg:path", NS)
    assert cell is not None and cell_float is not None
    assert cell.get("style") == cell_float.get("style")
    assert fill_of(svg, "cell-0-0") != fill_of(svg, "cell-1-1")
    with pytest.raises(ValueError, match="not a share"):
        charts.heatmap(["a"], ["b"], [[1.5]], "x")
    with pytest.raises(ValueError, match="1 rows of 2"):
        charts.heatmap(["a"], ["b", "c"], [[0.5]], "x")


# ---------------------------------------------------------------------------------------------------- in a browser
OVERLAPS_JS = """
const out = [];
for (const svg of document.querySelectorAll('svg[role=img]')) {
  const frame = svg.getBoundingClientRect();
  const boxes = [...svg.querySelectorAll('text')].map(t => [t.textContent.trim(), t.getBoundingClientRect()])
    .filter(([s, r]) => s && r.width > 0);
  for (const [s, r] of boxes) {
    if (r.left < frame.left - 1 || r.right > frame.right + 1 || r.top < frame.top - 1 || r.bottom > frame.bottom + 1)
      out.push(svg.parentElement.id + ': "' + s + '" leaves the chart');
  }
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const [a, ra] = boxes[i], [b, rb] = boxes[j];
    const w = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
    const h = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
    if (w > 1 && h > 1) out.push(svg.parentElement.id + ': "' + a + '" overlaps "' + b + '"');
  }
  if (frame.width > 760) out.push(svg.parentElement.id + ': ' + frame.width + ' px wide');
}
return out;
"""


def label_problems(svgs: Mapping[str, str], tmp_dir: object) -> list[str]:
    """Labels that overlap or leave their chart, and charts wider than 760 px, as Chromium draws them at 800 px."""
    import shutil
    from pathlib import Path

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "Debian's chromium and chromium-driver are needed (apt-get install chromium chromium-driver)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    tmp = Path(str(tmp_dir))
    page = tmp / "charts.html"
    body = "".join(f'<div id="{name}">{svg}</div>' for name, svg in svgs.items())
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'><style>svg{{max-width:100%;height:auto}}</style>"
                    f"</head><body style='margin:8px'>{body}</body></html>")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp / 'profile'}",
                 "--window-size=800,1000"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(driver), options=opts)
    try:
        drv.get(page.as_uri())
        return list(drv.execute_script(OVERLAPS_JS))
    finally:
        drv.quit()


def test_labels_never_overlap_in_chromium_at_800_px(tmp_path: object) -> None:
    import matplotlib.pyplot as plt

    # a chart with two labels drawn on top of each other: the check must find it
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, "first label")
    ax.text(0.52, 0.5, "second label")
    bad = charts._svg(fig, "overlapping")
    problems = label_problems({**every_chart(), "bad": bad}, tmp_path)
    assert problems and all(p.startswith("bad:") for p in problems), problems
    assert any("overlaps" in p for p in problems)


def xtick_rotations(svg: str) -> set[str]:
    root = parse(svg)
    found = set()
    for g in root.iter(f"{{{NS['svg']}}}g"):
        if (g.get("id") or "").startswith("xtick_"):
            for t in g.iter(f"{{{NS['svg']}}}text"):
                m = re.search(r"rotate\((-?[0-9.]+)", t.get("transform") or "")
                found.add(m.group(1) if m else "0")
    return found


def test_heatmap_columns_stay_level_when_they_fit_and_turn_upright_when_not() -> None:
    charts_ = every_chart()
    assert xtick_rotations(charts_["heatmap_short"]) <= {"0", "-0"}
    assert xtick_rotations(charts_["heatmap"]) == {"-90"}


def test_value_bars_put_no_tick_past_the_limit() -> None:
    names = ["torch", "jax"]
    svg = charts.value_bars(names, [31.0, 20.0], colours_for(names), "operations, points of 32", limit=32)
    ticks = [float(t) for t in xtick_labels(svg)]
    assert ticks and max(ticks) <= 32 and max(ticks) >= 25
