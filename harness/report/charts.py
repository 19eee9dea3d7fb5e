"""Charts for the HTML report, drawn with matplotlib and returned as inline SVG text.

The SVG is made reproducible (fixed hash salt, no date metadata), so the same results give the same report byte for
byte. Only the Agg/SVG backends are used: no display needed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402

matplotlib.rcParams.update({"svg.hashsalt": "showdown", "svg.fonttype": "none", "font.size": 10,
                            "axes.spines.top": False, "axes.spines.right": False})

TIER_COLOURS = {"Tier 1": "#2b8a3e", "Tier 2": "#1971c2", "Tier 3": "#e8590c", "Below": "#868e96", None: "#adb5bd"}


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": "showdown"})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: the SVG is inlined in HTML


def overall_bars(names: Sequence[str], overall: Sequence[float | None], tiers: Sequence[str | None],
                 past: Sequence[float | None]) -> str:
    """Overall score per framework (coloured by tier), with the 2018 score beside it where there is one."""
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(names) + 1.2))
    y = list(range(len(names)))
    ax.barh([i + 0.18 for i in y], [v or 0 for v in overall], height=0.36,
            color=[TIER_COLOURS.get(t, "#adb5bd") for t in tiers], label="2026 (measured)")
    ax.barh([i - 0.18 for i in y], [v or 0 for v in past], height=0.36, color="#dee2e6", edgecolor="#868e96",
            label="2018 (published)")
    for i, (v, t) in enumerate(zip(overall, tiers)):
        ax.text((v or 0) + 1, i + 0.18, f"{v:.1f} {t or ''}" if v is not None else "n/a", va="center", fontsize=9)
    for i, v in enumerate(past):
        if v is not None:
            ax.text(v + 1, i - 0.18, f"{v:.1f}", va="center", fontsize=8, color="#495057")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 115)
    ax.set_xlabel("overall score (0-100)")
    ax.legend(loc="lower right", frameon=False, fontsize=8)
    return _svg(fig)


def radar(name: str, labels: Sequence[str], values: Sequence[float | None], past: Sequence[float | None] | None) -> str:
    """One framework over the three categories (as the 2018 post drew them), 2018 dashed where known."""
    n = len(labels)
    angles = [2 * math.pi * i / n for i in range(n)] + [0.0]
    fig = plt.figure(figsize=(3.2, 3.2))
    ax = fig.add_subplot(projection="polar")
    vals = [v or 0 for v in values]
    ax.plot(angles, vals + vals[:1], color="#1971c2", linewidth=2, label="2026")
    ax.fill(angles, vals + vals[:1], color="#1971c2", alpha=0.2)
    if past is not None:
        pv = [v or 0 for v in past]
        ax.plot(angles, pv + pv[:1], color="#868e96", linewidth=1.5, linestyle="--", label="2018")
    ax.set_xticks(angles[:-1], labels, fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_yticks([25, 50, 75, 100], ["", "50", "", "100"], fontsize=7)
    ax.set_title(name, fontsize=11, pad=14)
    ax.legend(loc="lower right", bbox_to_anchor=(1.25, -0.1), frameon=False, fontsize=7)
    return _svg(fig)


def throughput_bars(workloads: Sequence[str], frameworks: Sequence[str],
                    medians: Sequence[Sequence[float | None]], spreads: Sequence[Sequence[float | None]]) -> str:
    """Steps per second per workload and framework, with error bars from the interquartile range."""
    fig, axes = plt.subplots(1, len(workloads), figsize=(2.3 * len(workloads) + 1, 3.2), squeeze=False)
    colours = plt.get_cmap("tab10")
    for w, ax in enumerate(axes[0]):
        rates, errs = [], []
        for f in range(len(frameworks)):
            m, s = medians[w][f], spreads[w][f]
            rates.append(1.0 / m if m else 0.0)
            errs.append((s / (2 * m * m)) if m and s else 0.0)  # d(1/t) = dt / t^2, half the IQR
        ax.bar(range(len(frameworks)), rates, yerr=errs, capsize=2, color=[colours(i) for i in range(len(frameworks))])
        ax.set_title(workloads[w], fontsize=9)
        ax.set_xticks(range(len(frameworks)), frameworks, rotation=60, fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    axes[0][0].set_ylabel("steps per second")
    fig.tight_layout()
    return _svg(fig)
