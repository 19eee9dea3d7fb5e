"""Two sets of runs side by side: what changed between A and B (two machines, two versions, CPU and GPU).

A pure function of the documents: runs are paired by framework (and device, when both sides ran it on the same one;
a framework run on the CPU in A and on CUDA in B is paired by framework, and the pair says so). For each pair: the
probes whose status changed, the layers whose verdict changed (the op's status or one of its cases'), and every
timing measured on both sides as the ratio B/A of the medians with a Mann-Whitney U test on the raw samples. As in
asv's compare, a timing counts as changed only when both the factor and the test say so: p < ALPHA and the ratio
outside [1/FACTOR, FACTOR]; a median moved by noise alone is "not significant".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.results import is_run

ALPHA = 0.05
FACTOR = 1.1

FASTER = "faster"
SLOWER = "slower"
NOT_SIGNIFICANT = "not significant"
NOT_COMPARABLE = "not comparable"


# ------------------------------------------------------------------------------------------------ the test
@dataclass(frozen=True)
class MannWhitney:
    """Two-sided Mann-Whitney U test by the normal approximation (tie-corrected variance, continuity correction).
    u: U of the first sample (how often one of its values exceeds one of the second's, ties counting half)."""

    u: float
    z: float
    p: float


def rank_average(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the average of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_vals[end + 1] == sorted_vals[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> MannWhitney:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("the Mann-Whitney U test needs at least one value on each side")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("the Mann-Whitney U test needs finite values")
    pooled = np.concatenate([x, y])
    ranks = rank_average(pooled)
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    n = n1 + n2
    _, counts = np.unique(pooled, return_counts=True)
    ties = float(np.sum(counts.astype(np.float64) ** 3 - counts))
    variance = n1 * n2 / 12.0 * ((n + 1) - (ties / (n * (n - 1)) if n > 1 else 0.0))
    mean = n1 * n2 / 2.0
    if variance <= 0:  # every value the same: nothing to tell the samples apart
        return MannWhitney(u1, 0.0, 1.0)
    z = max(abs(u1 - mean) - 0.5, 0.0) / math.sqrt(variance)
    return MannWhitney(u1, math.copysign(z, u1 - mean), min(1.0, math.erfc(z / math.sqrt(2.0))))


def classify(ratio: float, p: float, alpha: float = ALPHA, factor: float = FACTOR) -> str:
    """faster / slower / not significant, for B's time over A's (a ratio above 1: B takes longer)."""
    if p < alpha and ratio > factor:
        return SLOWER
    if p < alpha and ratio < 1.0 / factor:
        return FASTER
    return NOT_SIGNIFICANT


# ------------------------------------------------------------------------------------------------ the comparison
@dataclass
class StatusChange:
    probe: str
    before: str
    after: str
    reason: str  # B's reason (why it is what it is now), else A's


@dataclass
class OpChange:
    op: str
    before: str
    after: str
    cases: list[tuple[str, str, str]]  # (case, status in A, status in B) for every case that differs
    api_before: str
    api_after: str


@dataclass
class TimingChange:
    probe: str
    workload: str
    mode: str
    precision: str
    median_a_s: float
    median_b_s: float
    ratio: float  # B's median time over A's
    n_a: int
    n_b: int
    u: float | None
    p: float | None
    verdict: str  # faster | slower | not significant | not comparable
    note: str = ""


@dataclass
class PairComparison:
    framework: str
    device_a: str
    device_b: str
    run_a: str
    run_b: str
    version_a: str
    version_b: str
    note: str
    status_changes: list[StatusChange] = field(default_factory=list)
    op_changes: list[OpChange] = field(default_factory=list)
    timings: list[TimingChange] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)  # probes in A's document only
    only_b: list[str] = field(default_factory=list)
    unchanged: int = 0


@dataclass
class Unpaired:
    framework: str
    device: str
    run_id: str
    why: str  # "no run of it on the other side", or the 'unavailable' document's reason


@dataclass
class Comparison:
    label_a: str
    label_b: str
    pairs: list[PairComparison]
    only_a: list[Unpaired]
    only_b: list[Unpaired]

    def counts(self) -> dict[str, int]:
        timings = [t for p in self.pairs for t in p.timings]
        return {
            "status_changed": sum(len(p.status_changes) for p in self.pairs),
            "faster": sum(t.verdict == FASTER for t in timings),
            "slower": sum(t.verdict == SLOWER for t in timings),
            "not_comparable": sum(t.verdict == NOT_COMPARABLE for t in timings),
            "unchanged": sum(p.unchanged for p in self.pairs),
            "one_side_probes": sum(len(p.only_a) + len(p.only_b) for p in self.pairs),
            "one_side_frameworks": len(self.only_a) + len(self.only_b),
        }

    def summary(self) -> str:
        c = self.counts()
        line = (f"{_n(c['status_changed'], 'probe')} changed status, "
                f"{_n(c['faster'] + c['slower'], 'timing')} significantly faster/slower "
                f"({c['faster']} faster, {c['slower']} slower), {c['unchanged']} unchanged")
        if c["not_comparable"]:
            line += f", {_n(c['not_comparable'], 'timing')} not comparable"
        if c["one_side_probes"]:
            line += f", {_n(c['one_side_probes'], 'probe')} on one side only"
        if c["one_side_frameworks"]:
            line += f", {_n(c['one_side_frameworks'], 'run')} without a counterpart"
        return line


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def pair_runs(docs_a: Sequence[Mapping[str, Any]], docs_b: Sequence[Mapping[str, Any]]) -> tuple[
        list[tuple[Mapping[str, Any], Mapping[str, Any], str]], list[Unpaired], list[Unpaired]]:
    """(A, B, note) per framework: same device first; then, for a framework left with exactly one run on each side,
    across devices (the note says so). Everything else is listed as one side's only."""
    runs_a = [d for d in docs_a if is_run(d)]
    runs_b = [d for d in docs_b if is_run(d)]
    pairs: list[tuple[Mapping[str, Any], Mapping[str, Any], str]] = []
    left_a = list(runs_a)
    left_b = list(runs_b)
    for da in runs_a:
        match = next((db for db in left_b if db["framework"] == da["framework"] and db["device"] == da["device"]), None)
        if match is not None:
            pairs.append((da, match, ""))
            left_a.remove(da)
            left_b.remove(match)
    for fw in sorted({d["framework"] for d in left_a} & {d["framework"] for d in left_b}):
        side_a = [d for d in left_a if d["framework"] == fw]
        side_b = [d for d in left_b if d["framework"] == fw]
        if len(side_a) == 1 and len(side_b) == 1:
            da, db = side_a[0], side_b[0]
            pairs.append((da, db, f"paired by framework: {da['device']} in A, {db['device']} in B (timings compare "
                                  "the devices, not two versions)"))
            left_a.remove(da)
            left_b.remove(db)
    pairs.sort(key=lambda t: (t[0]["framework"], t[0]["device"]))

    def unpaired(left: list[Mapping[str, Any]], docs: Sequence[Mapping[str, Any]]) -> list[Unpaired]:
        out = [Unpaired(d["framework"], d["device"], d.get("run_id", ""), "no run of it on the other side") for d in left]
        paired = {(d["framework"]) for t in pairs for d in t[:2]}
        out += [Unpaired(d["framework"], d["device"], d.get("run_id", ""), f"did not run: {d.get('reason', '')}")
                for d in docs if not is_run(d) and d["framework"] not in paired]
        return sorted(out, key=lambda u: (u.framework, u.device))

    return pairs, unpaired(left_a, docs_a), unpaired(left_b, docs_b)


def _samples(rec: Mapping[str, Any]) -> list[float]:
    timing = (rec.get("data") or {}).get("timing") or {}
    vals = timing.get("samples_s") or []
    return [float(v) for v in vals if isinstance(v, (int, float)) and math.isfinite(v) and v > 0]


def compare_timing(probe: str, rec_a: Mapping[str, Any], rec_b: Mapping[str, Any]) -> TimingChange | None:
    """The timing of one throughput probe on both sides, or None when one side has no samples (not measured)."""
    sa, sb = _samples(rec_a), _samples(rec_b)
    if not sa or not sb:
        return None
    da, db = rec_a.get("data") or {}, rec_b.get("data") or {}
    parts = probe.split("/")
    workload = str(da.get("workload") or (parts[1] if len(parts) > 1 else probe))
    mode = str(da.get("mode") or (parts[2] if len(parts) > 2 else ""))
    med_a, med_b = float(np.median(sa)), float(np.median(sb))
    ratio = med_b / med_a
    test = mann_whitney_u(sa, sb)
    precision = str(da.get("precision") or "")
    conflicts, notes = [], []
    if da.get("sizes") != db.get("sizes"):
        conflicts.append("sizes differ")
    if da.get("precision") and db.get("precision") and da["precision"] != db["precision"]:
        conflicts.append(f"precision {da['precision']} in A, {db['precision']} in B")
    elif bool(da.get("precision")) != bool(db.get("precision")):
        notes.append(f"precision not recorded in {'A' if not da.get('precision') else 'B'}")
    verdict = NOT_COMPARABLE if conflicts else classify(ratio, test.p)
    return TimingChange(probe, workload, mode, precision or str(db.get("precision") or ""), med_a, med_b, ratio, len(sa),
                        len(sb), test.u, test.p, verdict, "; ".join(conflicts + notes))


def _cases(rec: Mapping[str, Any]) -> dict[str, str]:
    cases = (rec.get("data") or {}).get("cases") or {}
    return {str(k): str(v.get("status", "")) for k, v in cases.items() if isinstance(v, Mapping)}


def compare_op(probe: str, rec_a: Mapping[str, Any], rec_b: Mapping[str, Any]) -> OpChange | None:
    """A layer whose verdict changed: its status, or the status of one of its cases (a case added or dropped counts;
    a document that records no cases at all, as older ones, is compared on the status alone)."""
    ca, cb = _cases(rec_a), _cases(rec_b)
    names = sorted(set(ca) | set(cb)) if ca and cb else []
    cases = [(c, ca.get(c, "-"), cb.get(c, "-")) for c in names if ca.get(c) != cb.get(c)]
    if rec_a["status"] == rec_b["status"] and not cases:
        return None
    da, db = rec_a.get("data") or {}, rec_b.get("data") or {}
    return OpChange(str(da.get("op") or probe.split("/", 1)[-1]), rec_a["status"], rec_b["status"], cases,
                    str(da.get("api") or ""), str(db.get("api") or ""))


def compare_pair(doc_a: Mapping[str, Any], doc_b: Mapping[str, Any], note: str = "") -> PairComparison:
    ra: Mapping[str, Any] = doc_a.get("records") or {}
    rb: Mapping[str, Any] = doc_b.get("records") or {}
    cat_a, cat_b = doc_a.get("catalog_version"), doc_b.get("catalog_version")
    if cat_a != cat_b:
        note = "; ".join(filter(None, [note, f"catalog {cat_a} in A, {cat_b} in B: workloads whose sizes differ are "
                                             "not compared"]))
    out = PairComparison(doc_a["framework"], doc_a["device"], doc_b["device"], str(doc_a.get("run_id", "")),
                         str(doc_b.get("run_id", "")), _version(doc_a), _version(doc_b), note)
    out.only_a = sorted(set(ra) - set(rb))
    out.only_b = sorted(set(rb) - set(ra))
    for probe in sorted(set(ra) & set(rb)):
        a, b = ra[probe], rb[probe]
        changed = False
        if a["status"] != b["status"]:
            out.status_changes.append(StatusChange(probe, a["status"], b["status"], b.get("reason") or a.get("reason") or ""))
            changed = True
        if a.get("suite") == "layers" or probe.startswith("layers/"):
            op = compare_op(probe, a, b)
            if op is not None:
                out.op_changes.append(op)
        if a.get("suite") == "throughput" or probe.startswith("throughput/"):
            timing = compare_timing(probe, a, b)
            if timing is not None:
                out.timings.append(timing)
                changed = changed or timing.verdict != NOT_SIGNIFICANT
        out.unchanged += not changed
    return out


def _version(doc: Mapping[str, Any]) -> str:
    env = doc.get("environment") or {}
    return str(env.get("framework_version") or "")


def compare(docs_a: Sequence[Mapping[str, Any]], docs_b: Sequence[Mapping[str, Any]], label_a: str = "A",
            label_b: str = "B") -> Comparison:
    pairs, only_a, only_b = pair_runs(docs_a, docs_b)
    return Comparison(label_a, label_b, [compare_pair(a, b, note) for a, b, note in pairs], only_a, only_b)


# ------------------------------------------------------------------------------------------------ the command
