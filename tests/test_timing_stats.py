"""The statistics the throughput probe reports (harness.timing.summarize: median, quartiles, IQR, Tukey outliers,
mean, standard deviation) against pytest-benchmark's own (pytest_benchmark.stats.Stats) on the same raw samples:
hand-made sample sets and every throughput record in the committed results.

How the definitions map:
- median, min, max: the same definition on both sides (statistics.median of all samples, the mean of the two middle
  ones for an even count). Asserted equal.
- standard deviation: the same definition (statistics.stdev, the n-1 sample deviation), but a record's figure was
  computed by the worker's Python, and statistics.stdev rounds differently across Python versions (a caffe record
  made under 3.9 differs in the last bit): asserted equal to 1e-12 relative.
- mean: the same definition; the harness sums in floats (statistics.fmean), pytest-benchmark exactly
  (statistics.mean), so the last bits may differ: asserted equal to 1e-12 relative.
- quartiles: NOT the same definition. The harness interpolates linearly at 0-based rank p(n-1) (NumPy's default,
  Hyndman & Fan's type 7). pytest-benchmark uses the "method 3" of odd counts and the "median of each half" of
  even counts, which together are Hyndman & Fan's type 5: linear interpolation at 0-based rank pn - 1/2 (for n >= 2;
  checked below against an independent interpolation). So the harness's Q1 sits exactly 1/4 rank above
  pytest-benchmark's and its Q3 exactly 1/4 rank below: asserted as that relationship (to 1e-12 relative: the two
  write the same interpolation in different arithmetic), not as an approximate equality.
- IQR and outliers: both count Tukey's outliers, strictly beyond Q1 - 1.5 IQR or Q3 + 1.5 IQR. As the harness's
  quartiles lie inside pytest-benchmark's, its IQR is never larger and its fences are never wider, so it never counts
  fewer outliers (asserted); given the harness's quartiles, pytest-benchmark's counting rule gives exactly the
  harness's count (asserted with a Stats whose quartiles are the harness's).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.stats import Stats

from harness.timing import summarize

REPO = Path(__file__).resolve().parent.parent
Summary = dict[str, Any]

SETS: dict[str, list[float]] = {
    "n=5 (4k+1)": [0.0031, 0.0029, 0.0030, 0.0033, 0.0028],
    "n=7 (4k+3), the harness's default rounds": [1.21e-3, 1.19e-3, 1.20e-3, 1.25e-3, 1.18e-3, 1.22e-3, 1.20e-3],
    "n=6 (4k+2)": [5.0, 3.0, 4.0, 8.0, 6.0, 7.0],
    "n=8 (4k)": [2.5, 2.25, 2.0, 3.0, 2.75, 2.125, 2.625, 2.375],
    "n=9 ties everywhere": [4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0],
    "n=9 ties in the middle, both ends out": [1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 3.0],
    "n=10 ties at the quartiles": [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0],
    "n=7 one slow round (outlier for both)": [1.00, 1.01, 1.02, 1.00, 1.03, 1.01, 9.00],
    "n=11 a fast and a slow outlier": [0.52, 0.50, 0.51, 0.50, 0.49, 0.51, 0.05, 0.50, 0.52, 0.49, 2.0],
    # the harness's fences: Q1 = 11, Q3 = 13, IQR 2, upper fence 16.0 exactly: 16 is on it, not beyond
    "n=5 a sample on the harness's fence": [10.0, 11.0, 12.0, 13.0, 16.0],
    # harness Q3 13, fence 16 < 16.5: one outlier; pytest-benchmark Q1 10.75, Q3 13.875, fence 18.5625: none
    "n=5 an outlier by type 7 only": [10.0, 11.0, 12.0, 13.0, 16.5],
}


def interpolate(ordered: list[float], rank: float) -> float:
    """Linear interpolation between the order statistics at a 0-based fractional rank (clamped to the ends)."""
    rank = min(max(rank, 0.0), len(ordered) - 1.0)
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] * (1 - (rank - lo)) + ordered[hi] * (rank - lo)


def type5_rank(n: int, p: float) -> float:
    """pytest-benchmark's quartile rank (Hyndman & Fan type 5), 0-based."""
    return n * p - 0.5


def stats_of(samples: list[float]) -> Stats:
    s = Stats()
    for x in samples:
        s.update(x)
    return s


class HarnessQuartileStats(Stats):
    """pytest-benchmark's Stats with the harness's quartiles: its outlier rule, applied to the harness's fences."""

    def __init__(self, samples: list[float], q1: float, q3: float) -> None:
        super().__init__()
        self.data = list(samples)
        self._q = (q1, q3)

    @property  # type: ignore[override]
    def q1(self) -> float:
        return self._q[0]

    @property  # type: ignore[override]
    def q3(self) -> float:
        return self._q[1]

    @property  # type: ignore[override]
    def iqr(self) -> float:
        return self._q[1] - self._q[0]


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12 * max(abs(a), abs(b), 1e-300))


def disagreements(summary: Summary, samples: list[float]) -> list[str]:
    """Where a summary of `samples` breaks the mapping to pytest-benchmark's statistics stated above; [] if none."""
    st = stats_of(samples)
    ordered = sorted(samples)
    n = len(samples)
    out = []
    for key, theirs in (("median_s", st.median), ("min_s", st.min), ("max_s", st.max)):
        if summary[key] != theirs:
            out.append(f"{key} {summary[key]!r} != pytest-benchmark's {theirs!r}")
    for key, theirs in (("mean_s", st.mean), ("stdev_s", st.stddev)):
        if not close(summary[key], theirs):
            out.append(f"{key} {summary[key]!r} != pytest-benchmark's {theirs!r}")
    for key, p, shift in (("q1_s", 0.25, +0.25), ("q3_s", 0.75, -0.25)):
        expected = interpolate(ordered, type5_rank(n, p) + shift)
        if not close(summary[key], expected):
            out.append(f"{key} {summary[key]!r} is not pytest-benchmark's quartile moved {shift:+} rank ({expected!r})")
    if not close(summary["iqr_s"], summary["q3_s"] - summary["q1_s"]):
        out.append(f"iqr_s {summary['iqr_s']!r} != q3_s - q1_s")
    if summary["iqr_s"] > st.iqr * (1 + 1e-12):
        out.append(f"iqr_s {summary['iqr_s']!r} is larger than pytest-benchmark's {st.iqr!r}")
    if summary["outliers"] < st.iqr_outliers:
        out.append(f"{summary['outliers']} outliers, fewer than pytest-benchmark's {st.iqr_outliers} with wider fences")
    same_rule = HarnessQuartileStats(samples, summary["q1_s"], summary["q3_s"]).iqr_outliers
    if summary["outliers"] != same_rule:
        out.append(f"{summary['outliers']} outliers, but Tukey's rule on these quartiles counts {same_rule}")
    return out


def committed_timings() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((REPO / "results").glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        for probe, rec in (doc.get("records") or {}).items():
            timing = (rec.get("data") or {}).get("timing") if rec.get("suite") == "throughput" else None
            if timing and timing.get("samples_s"):
                found.append((f"{doc['framework']}:{probe}", timing))
    return found


@pytest.mark.parametrize("name", list(SETS))
def test_pytest_benchmark_quartiles_are_type_5(name: str) -> None:
    """The stated mapping of pytest-benchmark's quartiles, checked against an independent interpolation."""
    samples = SETS[name]
    st, ordered = stats_of(samples), sorted(samples)
    assert close(st.q1, interpolate(ordered, type5_rank(len(samples), 0.25)))
    assert close(st.q3, interpolate(ordered, type5_rank(len(samples), 0.75)))


@pytest.mark.parametrize("name", list(SETS))
def test_summary_maps_to_pytest_benchmark(name: str) -> None:
    assert disagreements(summarize(SETS[name]), SETS[name]) == []


def test_where_the_definitions_meet_and_part() -> None:
    """Exact values on the sets where the two quartile methods give the same and different outlier counts."""
    for name, harness_count, theirs in (("n=9 ties in the middle, both ends out", 2, 2),
                                        ("n=7 one slow round (outlier for both)", 1, 1),
                                        ("n=5 a sample on the harness's fence", 0, 0),
                                        ("n=5 an outlier by type 7 only", 1, 0)):
        assert (summarize(SETS[name])["outliers"], stats_of(SETS[name]).iqr_outliers) == (harness_count, theirs), name
    five = summarize(SETS["n=5 an outlier by type 7 only"])
    st = stats_of(SETS["n=5 an outlier by type 7 only"])
    assert (five["q1_s"], five["q3_s"], five["iqr_s"]) == (11.0, 13.0, 2.0)
    assert (st.q1, st.q3, st.iqr) == (10.75, 13.875, 3.125)


def test_committed_throughput_records() -> None:
    """Every throughput record in results/: its reported statistics are summarize() of its own raw samples and map to
    pytest-benchmark's as stated."""
    timings = committed_timings()
    assert len(timings) >= 50, f"only {len(timings)} throughput records with samples in results/"
    for where, timing in timings:
        samples = timing["samples_s"]
        recomputed = summarize(samples)
        for key, value in recomputed.items():
            assert timing[key] == value or close(timing[key], value), f"{where}: reported {key} {timing[key]!r} != {value!r}"
        assert disagreements(timing, samples) == [], where


def _with(**wrong: Callable[[list[float]], Any]) -> Callable[[list[float]], Summary]:
    def summary(samples: list[float]) -> Summary:
        out = summarize(samples)
        out.update({k: f(samples) for k, f in wrong.items()})
        if "q1_s" in wrong or "q3_s" in wrong:
            out["iqr_s"] = out["q3_s"] - out["q1_s"]
        return out
    return summary


def _nearest_rank(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def _inclusive_fences(samples: list[float]) -> int:
    s = summarize(samples)
    return sum(1 for x in samples if x <= s["q1_s"] - 1.5 * s["iqr_s"] or x >= s["q3_s"] + 1.5 * s["iqr_s"])


FAKES: dict[str, Callable[[list[float]], Summary]] = {
    "upper middle as the median of an even count": _with(median_s=lambda xs: sorted(xs)[len(xs) // 2]),
    "median of the unsorted samples": _with(median_s=lambda xs: xs[len(xs) // 2]),
    "nearest-rank quartiles": _with(q1_s=lambda xs: _nearest_rank(xs, 0.25), q3_s=lambda xs: _nearest_rank(xs, 0.75)),
    "pytest-benchmark's own quartiles (type 5)": _with(q1_s=lambda xs: stats_of(xs).q1, q3_s=lambda xs: stats_of(xs).q3),
    "IQR as max - min": _with(iqr_s=lambda xs: max(xs) - min(xs)),
    "outliers on the fence counted": _with(outliers=_inclusive_fences),
    "outliers beyond 3 IQR": _with(outliers=lambda xs: sum(1 for x in xs if abs(x - summarize(xs)["median_s"])
                                                           > 3 * summarize(xs)["iqr_s"] + 1e-300)),
    "population standard deviation": _with(stdev_s=lambda xs: statistics.pstdev(xs)),
}


@pytest.mark.parametrize("fake", list(FAKES))
def test_the_comparison_catches_a_wrong_statistic(fake: str) -> None:
    caught = [name for name, samples in SETS.items() if disagreements(FAKES[fake](samples), samples)]
    assert caught, f"a summary with {fake} passed the comparison on every sample set"
