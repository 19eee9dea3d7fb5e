"""Rubrics (versioned TOML files beside this module) and the arithmetic of the 2018 post: normalise every criterion
to 0-100, average the determined criteria of a category, average the three categories, cluster overall scores into
tiers. Pure functions: nothing here reads results or measures anything."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUBRICS_DIR = Path(__file__).parent / "rubrics"


class RubricError(Exception):
    pass


@dataclass(frozen=True)
class Criterion:
    id: str
    name: str
    source: str  # "facts" or "measured"
    normalise: str  # "max" or "relative"
    max: float | None
    measure: str | None
    scale: str


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    criteria: tuple[str, ...]


@dataclass(frozen=True)
class Rubric:
    id: str
    version: int
    title: str
    source: str
    categories: tuple[Category, ...]
    criteria: Mapping[str, Criterion]
    tiers: tuple[str, ...]


def available() -> list[str]:
    return sorted(p.stem for p in RUBRICS_DIR.glob("*.toml"))


def load(rubric_id: str) -> Rubric:
    path = RUBRICS_DIR / f"{rubric_id}.toml"
    if not path.exists():
        raise RubricError(f"unknown rubric {rubric_id!r}; available: {', '.join(available())}")
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    criteria = {
        cid: Criterion(cid, c["name"], c["from"], c["normalise"], c.get("max"), c.get("measure"), c.get("scale", ""))
        for cid, c in raw["criteria"].items()
    }
    cats = tuple(Category(c["id"], c["name"], tuple(c["criteria"])) for c in raw["categories"])
    for cat in cats:
        missing = [c for c in cat.criteria if c not in criteria]
        if missing:
            raise RubricError(f"{path.name}: category {cat.id} names undefined criteria {missing}")
        for cid in cat.criteria:
            crit = criteria[cid]
            if crit.normalise == "max" and not crit.max:
                raise RubricError(f"{path.name}: criterion {cid} normalises by 'max' but gives none")
    return Rubric(raw["id"], int(raw["version"]), raw["title"], raw["source"], cats, criteria, tuple(raw["tiers"]))


def normalise(rubric: Rubric, raw: Mapping[str, Mapping[str, float | None]]) -> dict[str, dict[str, float | None]]:
    """raw[framework][criterion] -> 0-100 (None stays None: not determined)."""
    best: dict[str, float] = {}
    for cid, crit in rubric.criteria.items():
        if crit.normalise == "relative":
            present = [float(x) for row in raw.values() if (x := row.get(cid)) is not None]
            best[cid] = max(present) if present else 0.0
    out: dict[str, dict[str, float | None]] = {}
    for fw, given in raw.items():
        row: dict[str, float | None] = {}
        for cid, crit in rubric.criteria.items():
            v = given.get(cid)
            if v is None:
                row[cid] = None
            elif crit.normalise == "max":
                row[cid] = 100.0 * float(v) / float(crit.max or 1)
            else:
                row[cid] = 100.0 * float(v) / best[cid] if best[cid] > 0 else 0.0
        out[fw] = row
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def aggregate(rubric: Rubric, normalised: Mapping[str, Mapping[str, float | None]]) -> dict[str, dict[str, Any]]:
    """Category means over determined criteria, the overall mean of the categories, and tiers."""
    out: dict[str, dict[str, Any]] = {}
    for fw, row in normalised.items():
        cats = {c.id: _mean([v for k in c.criteria if (v := row.get(k)) is not None]) for c in rubric.categories}
        determined = [v for v in cats.values() if v is not None]
        overall = sum(determined) / len(determined) if len(determined) == len(cats) else None
        out[fw] = {"categories": cats, "overall": overall}
    scored = {fw: r["overall"] for fw, r in out.items() if r["overall"] is not None}
    for fw, tier in tiers(scored, len(rubric.tiers)).items():
        out[fw]["tier"] = rubric.tiers[tier]
    for r in out.values():
        r.setdefault("tier", None)
    return out


def tiers(scores: Mapping[str, float], k: int) -> dict[str, int]:
    """Tier index (0 = best) per framework: optimal 1-D clustering of the overall scores into at most k groups
    (least within-group sum of squares, by dynamic programming over the sorted scores: Jenks natural breaks)."""
    items = sorted(scores.items(), key=lambda kv: -kv[1])
    n = len(items)
    if n == 0:
        return {}
    k = min(k, n)
    xs = [v for _, v in items]
    prefix, prefix_sq = [0.0], [0.0]
    for x in xs:
        prefix.append(prefix[-1] + x)
        prefix_sq.append(prefix_sq[-1] + x * x)

    def cost(i: int, j: int) -> float:  # items i..j-1
        s, sq, m = prefix[j] - prefix[i], prefix_sq[j] - prefix_sq[i], j - i
        return sq - s * s / m

    best = [[math.inf] * (n + 1) for _ in range(k + 1)]
    cut = [[0] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0.0
    for g in range(1, k + 1):
        for j in range(g, n + 1):
            for i in range(g - 1, j):
                c = best[g - 1][i] + cost(i, j)
                if c < best[g][j]:
                    best[g][j], cut[g][j] = c, i
    bounds, j = [], n
    for g in range(k, 0, -1):
        i = cut[g][j]
        bounds.append((i, j))
        j = i
    out: dict[str, int] = {}
    for tier, (i, j) in enumerate(reversed(bounds)):
        for name, _ in items[i:j]:
            out[name] = tier
    return out
