"""The report's content as data, computed from the documents and the scores, shared by the Markdown and the HTML.

Everything a reader is told first (what to pick for what, how the score is made, which criteria separate nobody,
what machine and which harness tree produced the figures) is derived here from the documents, never written by hand:
change a figure in a document and the verdict that rests on it changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from harness.catalog.workloads import WORKLOADS
from harness.scoring import measured
from harness.scoring import rubric as rb

BASELINE = "torch"

#: one section per (id, title), in page order; the id is the HTML anchor, the title the heading in both forms
SECTIONS: tuple[tuple[str, str], ...] = (
    ("verdicts", "What to pick for what"),
    ("scores", "Scores"),
    ("about", "About this run"),
    ("unavailable", "Did not run here"),
    ("criteria", "Criteria"),
    ("runs", "Runs"),
    ("measured", "Measured criteria"),
    ("ops", "Layers and optimizers"),
    ("graphs", "Graphs"),
    ("throughput", "Throughput"),
    ("onnx", "ONNX"),
    ("portability", "ONNX portability matrix (exporter x importer)"),
    ("conformance", "ONNX importer conformance"),
    ("numerics", "Numerics"),
    ("scale", "Scale"),
    ("problems", "Problems"),
    ("environment", "Environment and versions"),
    ("evidence", "Evidence"),
)
TITLES = dict(SECTIONS)
#: how a criterion's value was obtained, in words (the scores' `origin`)
ORIGIN = {"measured": "measured", "facts": "fact", "snapshot": "snapshot", "missing": "missing"}
ORIGIN_TEXT = {"measured": "measured by the suite's probes on this machine",
               "fact": "from the framework's facts file (frameworks/<name>/facts.toml), each citing a public source and "
                       "the date it was checked",
               "snapshot": "from the dated activity snapshot (harness/scoring/data/activity-*.json)"}


def label(doc: Mapping[str, Any]) -> str:
    return str(doc["framework"]) if doc["device"] == "cpu" else f"{doc['framework']} ({doc['device']})"


def md_anchor(title: str) -> str:
    """The fragment a Markdown renderer (GitHub's rule) gives a heading."""
    kept = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


# ---------------------------------------------------------------------------------------------------- verdicts
@dataclass(frozen=True)
class Verdict:
    topic: str
    winners: tuple[str, ...]  # empty: nothing in these documents decides it
    figure: str  # the figure(s) the verdict rests on, in words
    section: str  # the section id of its evidence

    @property
    def tie(self) -> bool:
        return len(self.winners) > 1

    @property
    def who(self) -> str:
        if not self.winners:
            return "not determined"
        return " and ".join(self.winners) + (" (tie)" if self.tie else "")


def _best(values: Mapping[str, float], higher: bool, digits: int) -> tuple[str, ...]:
    """The names whose value, rounded as shown, is the best: a tie when the shown figures are equal."""
    if not values:
        return ()
    shown = {k: round(v, digits) for k, v in values.items()}
    top = max(shown.values()) if higher else min(shown.values())
    return tuple(sorted(k for k, v in shown.items() if v == top))


def _verified(rec: Mapping[str, Any] | None) -> bool:
    return bool(rec and rec["status"] == "ok" and (rec["data"].get("first_step") or {}).get("ok"))


def speed(docs: Sequence[Mapping[str, Any]], mode: str) -> tuple[str, dict[str, tuple[float, int]], list[str]]:
    """Time per training step relative to the baseline (torch where it ran, else the first framework), as a geometric
    mean over the training workloads the baseline has a verified figure for: (baseline, {label: (mean ratio,
    workloads)}, labels left out). A framework counts only with a comparable figure (verified; compiled: the same
    compile scope as the baseline's) on every one of those workloads, so none wins by skipping the slow ones."""
    if not docs:
        return "", {}, []
    base = next((d for d in docs if d["framework"] == BASELINE), docs[0])
    keys = [f"throughput/{w.id}/{mode}" for w in WORKLOADS if w.kind == "train"]
    keys = [k for k in keys if _verified(base["records"].get(k))]
    out: dict[str, tuple[float, int]] = {}
    left: list[str] = []
    for d in docs:
        logs = []
        for k in keys:
            rec, ref = d["records"].get(k), base["records"][k]
            if not _verified(rec) or rec["data"].get("compile_scope") != ref["data"].get("compile_scope"):
                break
            logs.append(math.log(rec["data"]["timing"]["median_s"] / ref["data"]["timing"]["median_s"]))
        if keys and len(logs) == len(keys):
            out[label(d)] = (math.exp(sum(logs) / len(logs)), len(logs))
        else:
            left.append(label(d))
    return label(base), out, left


def _speed_verdict(topic: str, docs: Sequence[Mapping[str, Any]], mode: str, section: str) -> Verdict:
    base, ratios, left = speed(docs, mode)
    if not ratios:
        return Verdict(topic, (), f"no framework has {mode} figures comparable with {base or 'a baseline'}", section)
    winners = _best({k: v[0] for k, v in ratios.items()}, higher=False, digits=2)
    r, n = ratios[winners[0]]
    rest = sorted((v[0], k) for k, v in ratios.items() if k not in winners)
    lead = (f"the baseline of the comparison, fastest over {n} training workloads" if winners == (base,) else
            f"{r:.2f}x {base}'s time per step (geometric mean over {n} training workloads; lower is faster)")
    figure = (lead + (f"; next: {rest[0][1]} at {rest[0][0]:.2f}x {base}'s time (geometric mean)" if rest else "")
              + (f"; not compared: {', '.join(left)} (a workload missing, unverified or of another compile scope)" if left else ""))
    return Verdict(topic, winners, figure, section)


def onnx_import_rates(docs: Sequence[Mapping[str, Any]], conformance: Mapping[str, Mapping[str, Any]] | None,
                      portability: Mapping[str, Any] | None) -> dict[str, tuple[float, str]]:
    """Per framework with an importer: the mean of its node-test pass rate (tested cases) and the share of the other
    frameworks' exported models it runs (the matrix), with the figures in words."""
    out: dict[str, tuple[float, str]] = {}
    for d in docs:
        name = d["framework"]
        parts: list[float] = []
        words: list[str] = []
        conf = (conformance or {}).get(name)
        rate = conf["summary"]["pass_rate"]["tested"] if conf else None
        if rate and rate.get("rate") is not None:
            parts.append(float(rate["rate"]))
            words.append(f"{100 * rate['rate']:.1f}% of ONNX's node tests ({rate['passed']}/{rate['cases']})")
        share = measured.portability_share(dict(portability), name) if portability else None
        if share and share[1]:
            parts.append(share[0] / share[1])
            words.append(f"{share[0]}/{share[1]} of the other frameworks' exported models")
        if parts:
            out[name] = (sum(parts) / len(parts), ", ".join(words))
    return out


def verdicts(docs: Sequence[Mapping[str, Any]], scores: Sequence[Any], conformance: Mapping[str, Mapping[str, Any]] | None,
             portability: Mapping[str, Any] | None, gpu_docs: Sequence[Mapping[str, Any]] = ()) -> list[Verdict]:
    out: list[Verdict] = []
    ops = {label(d): measured.ootb_ops(dict(d)) for d in docs}
    values = {k: float(c.value) for k, c in ops.items() if c.value is not None}
    win = _best(values, higher=True, digits=1)
    out.append(Verdict("Widest op coverage", win, f"{ops[win[0]].explanation} of the catalog's layers and optimizers"
                       if win else "no layer records", "ops"))
    cpu = [d for d in docs if not str(d["device"]).startswith("cuda")]
    cuda = [d for d in [*docs, *gpu_docs] if str(d["device"]).startswith("cuda")]
    if cpu:
        out.append(_speed_verdict("Fastest eager training (CPU)", cpu, "eager", "throughput"))
        out.append(_speed_verdict("Fastest compiled training (CPU)", cpu, "compiled", "throughput"))
    rates = onnx_import_rates(docs, conformance, portability)
    win = _best({k: v[0] for k, v in rates.items()}, higher=True, digits=3)
    out.append(Verdict("Best ONNX import", win, "; ".join((f"{w}: " if len(win) > 1 else "") + rates[w][1] for w in win) if win else
                       "no conformance document or portability matrix in these results",
                       "conformance" if conformance else "portability" if portability else "onnx"))
    exp = {k: v for k, v in ((portability or {}).get("totals", {}).get("exporters", {}) or {}).items()
           if k in {d["framework"] for d in docs} and v.get("of")}
    win = _best({k: v["passed"] / v["of"] for k, v in exp.items()}, higher=True, digits=3)
    out.append(Verdict("Best ONNX export", win, (f"{exp[win[0]]['passed']}/{exp[win[0]]['of']} exported models run in "
                                                 "agreement in the importers") if win else "no portability matrix in these results",
                       "portability" if portability else "onnx"))
    active = {s.framework: s.criteria["activity"] for s in scores
              if "activity" in s.criteria and s.criteria["activity"].origin == "snapshot" and s.criteria["activity"].normalised is not None}
    win = _best({k: v.normalised for k, v in active.items()}, higher=True, digits=1)
    out.append(Verdict("Still maintained (activity)", win, f"activity {active[win[0]].normalised:.1f} of 100: "
                       f"{active[win[0]].explanation}" if win else "not measured here: no activity snapshot scores these "
                       "frameworks", "criteria"))
    if cuda:
        out.append(_speed_verdict("Fastest eager training (GPU)", cuda, "eager", "throughput"))
    else:
        out.append(Verdict("GPU", (), "no GPU run in this report (a GPU set is reported on its own: --device cuda)",
                           "about"))
    return out


# ------------------------------------------------------------------------------------------------------ scores
@dataclass(frozen=True)
class Quiet:
    """A criterion that separates nobody: the same value for every scored framework, or missing for all."""
    id: str
    name: str
    category: str
    why: str
    weighs: bool


def quiet_criteria(rubric: rb.Rubric, scores: Sequence[Any]) -> list[Quiet]:
    out = []
    for cat in rubric.categories:
        for cid in cat.criteria:
            vals = [s.criteria[cid].normalised for s in scores]
            name = rubric.criteria[cid].name
            if all(v is None for v in vals):
                out.append(Quiet(cid, name, cat.name, "missing for every scored framework: left out of the "
                                 f"{cat.name} mean, which is taken over the other criteria", False))
            elif all(v is not None for v in vals) and len({round(v, 6) for v in vals if v is not None}) == 1:
                out.append(Quiet(cid, name, cat.name, f"{vals[0]:.1f} for every scored framework: it weighs in the "
                                 f"{cat.name} mean, adding the same to every framework and narrowing the gaps", True))
    return out


def formula(rubric: rb.Rubric) -> list[str]:
    """How the overall and category scores are computed, in sentences, from the rubric object."""
    cats = ", ".join(f"{c.name} ({len(c.criteria)} criteria)" for c in rubric.categories)
    by_max = [c.name for c in rubric.criteria.values() if c.normalise == "max"]
    rel = [c.name for c in rubric.criteria.values() if c.normalise == "relative"]
    lines = [f"Overall = the mean of the {len(rubric.categories)} category scores: {cats}; a framework missing a "
             "whole category gets no overall.",
             "A category score = the mean of its determined criteria (a criterion without a value is left out, as the "
             "2018 post did).",
             "Each criterion is normalised to 0-100: " + "; ".join(
                 p for p in (f"100 x value / the rubric's maximum for {', '.join(by_max)}" if by_max else "",
                             f"100 x value / the best value among the frameworks scored here for {', '.join(rel)}" if rel else "")
                 if p) + ".",
             "Throughput is not in the score: time per step is shown in its own section, as ratios to a baseline."]
    return lines


def tier_text(rubric: rb.Rubric, scores: Sequence[Any]) -> str:
    scored = sorted((s for s in scores if s.overall is not None), key=lambda s: -s.overall)
    used = list(dict.fromkeys(s.tier for s in scored if s.tier))
    gaps = [(a.overall - b.overall, a, b) for a, b in pairwise(scored) if a.tier != b.tier]
    text = (f"Tiers are clusters of the overall scores: the split of the {len(scored)} scores into at most "
            f"{len(rubric.tiers)} groups ({', '.join(rubric.tiers)}) with the least sum of squared distances to each "
            f"group's mean (natural breaks); {len(used)} are used here.")
    if gaps:
        small = min(gaps, key=lambda g: g[0])
        text += (f" Caveat: the number of groups comes from the rubric, not from the data, so a boundary may fall "
                 f"between close scores: the narrowest boundary here is {small[0]:.1f} points ({small[1].framework} "
                 f"{small[1].overall:.1f}, {small[1].tier}; {small[2].framework} {small[2].overall:.1f}, {small[2].tier}).")
    return text


def overlay_text(scores: Sequence[Any], frameworks_2018: int) -> str:
    n = len([s for s in scores if s.overall is not None])
    return (f"2018: the post's published overall score, normalised over the {frameworks_2018} frameworks it scored; "
            f"the 2026 scores are normalised over the {n} frameworks scored here, so criteria normalised relative to "
            "the best framework have a different best; compare ranks, not the size of the change.")


# ------------------------------------------------------------------------------------------------------- about
@dataclass
class About:
    machines: list[tuple[str, list[str]]] = field(default_factory=list)  # machine in words -> frameworks
    trees: list[tuple[str, list[str]]] = field(default_factory=list)  # harness commit + tree state -> frameworks
    first: str = ""
    last: str = ""
    suites: list[str] = field(default_factory=list)
    sizes: list[tuple[str, list[str]]] = field(default_factory=list)  # "full" / "quick" -> frameworks
    warnings: list[tuple[str, str, str]] = field(default_factory=list)  # (framework, probe, warning text)


def _gib(n: Any) -> str:
    return f"{n / 2**30:.1f} GiB" if isinstance(n, (int, float)) and n else "memory not recorded"


def machine_words(env: Mapping[str, Any] | None) -> str:
    if not env:
        return "not recorded (no worker started)"
    cpu = env.get("cpu") or {}
    text = f"{cpu.get('model') or 'CPU model not recorded'}, {cpu.get('logical_cores', '?')} logical cores"
    if cpu.get("affinity") not in (None, cpu.get("logical_cores")):
        text += f" ({cpu['affinity']} usable)"
    text += f", {_gib(env.get('memory_bytes'))}"
    gpu = env.get("gpu")
    if gpu:
        used = gpu.get("used") or {}
        text += (f"; GPU {used.get('name', '?')} ({used.get('memory_total', '?')}), driver {used.get('driver_version', '?')}, "
                 f"CUDA {gpu.get('driver_cuda_version') or '?'}")
    else:
        text += "; no GPU used"
    os_ = (env.get("os") or {}).get("platform")
    return text + (f"; {os_}" if os_ else "")


def _group(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    out: dict[str, list[str]] = {}
    for key, name in pairs:
        out.setdefault(key, []).append(name)
    return list(out.items())


def about(docs: Sequence[Mapping[str, Any]]) -> About:
    a = About()
    a.machines = _group([(machine_words(d.get("environment")), label(d)) for d in docs])
    trees = []
    for d in docs:
        h = d.get("harness") or {}
        commit = (h.get("git_commit") or "unknown commit")[:12]
        if h.get("git_dirty"):
            n = len(h.get("changed_paths") or [])
            state = f"uncommitted changes ({n} path{'s' if n != 1 else ''} differed from the commit)" if n else "uncommitted changes"
        elif h.get("git_dirty") is None:
            state = "tree state not recorded"
        else:
            state = "clean tree"
        trees.append((f"harness {h.get('version', '?')} at {commit}, {state}", label(d)))
    a.trees = _group(trees)
    dates = sorted(str(d["created_at"]) for d in docs)
    a.first, a.last = (dates[0], dates[-1]) if dates else ("", "")
    a.suites = list(dict.fromkeys(s for d in docs for s in (d.get("config") or {}).get("suites", [])))
    a.sizes = _group([("quick (reduced sizes and rounds)" if (d.get("config") or {}).get("quick") else "full sizes", label(d))
                      for d in docs])
    a.warnings = [(label(d), r["probe"], "; ".join(r["data"]["timing"]["warnings"])) for d in docs
                  for r in d["records"].values()
                  if r["suite"] == "throughput" and r["status"] == "ok" and r["data"].get("timing", {}).get("warnings")]
    return a


# ---------------------------------------------------------------------------------------------- numerics, scale
@dataclass(frozen=True)
class NumericsRow:
    framework: str
    namespace: str
    agrees: int
    total: int
    status: str  # the coverage record's status
    reason: str
    others: tuple[tuple[str, str, str], ...]  # (function, outcome, detail) for every function that does not agree
    zero_copy: str


def numerics(docs: Sequence[Mapping[str, Any]]) -> list[NumericsRow]:
    out = []
    for d in docs:
        rec = d["records"].get("numerics/coverage")
        if rec is None:
            continue
        inter = (d["records"].get("numerics/interop") or {}).get("data") or {}
        zc = inter.get("zero_copy_both_ways")
        zero = "not measured" if zc is None else ("yes" if zc else "no")
        if rec["status"] != "ok":
            out.append(NumericsRow(label(d), "", 0, 0, rec["status"], rec["reason"], (), zero))
            continue
        data = rec["data"]
        funcs = data.get("functions") or {}
        others = tuple((fn, v.get("outcome", "?"), v.get("detail", "")) for fn, v in funcs.items() if v.get("outcome") != "agrees")
        agrees = data.get("agrees", sum(1 for v in funcs.values() if v.get("outcome") == "agrees"))
        out.append(NumericsRow(label(d), str(data.get("namespace", "")), int(agrees), int(data.get("total", len(funcs))),
                               "ok", "", others, zero))
    return out


@dataclass(frozen=True)
class ScaleRow:
    framework: str
    status: str
    api: str
    builtin: str
    world: str
    placement: str
    reason: str


def scale(docs: Sequence[Mapping[str, Any]]) -> list[ScaleRow]:
    out = []
    for d in docs:
        rec = d["records"].get("scale/allreduce")
        if rec is None:
            continue
        data = rec.get("data") or {}
        built = data.get("builtin")
        out.append(ScaleRow(label(d), rec["status"], str(data.get("api") or "-"),
                            "-" if built is None else ("built in" if built else "third-party"),
                            str(data.get("world") or "-"), str(data.get("placement") or "-"), rec.get("reason") or ""))
    return out


def problems(docs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(label(d), r["probe"], r["status"], r["reason"]) for d in docs for r in d["records"].values()
            if r["status"] in ("error", "crashed", "timeout", "failed")]
