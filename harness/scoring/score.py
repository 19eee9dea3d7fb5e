"""Scores: a pure function of result documents, a rubric and the facts files.

Measured criteria come from probe records (each cites the probes it came from); the others from
frameworks/<name>/facts.toml (each cites a public source and the date it was checked) or from a dated activity
snapshot. A criterion with no value is left out of its category's mean, as the 2018 post did.
"""

from __future__ import annotations

import csv
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from harness.registry import FRAMEWORKS_DIR
from harness.scoring import measured
from harness.scoring import rubric as rb

DATA_DIR = Path(__file__).parent / "data"
#: the 2018 post's name for each framework it scored (JAX did not exist then)
NAMES_2018 = {"torch": "PyTorch", "tensorflow": "TensorFlow", "mxnet": "MXNet", "chainer": "Chainer", "paddle": "PaddlePaddle",
              "theano": "Theano", "caffe": "Caffe", "bigdl": "BigDL", "caffe2": "Caffe2", "cntk": "CNTK", "dl4j": "DL4J",
              "neon": "Neon", "torch7": "Torch"}
MAINTENANCE = {"active": 2, "maintenance": 1, "retired": 0}


@dataclass
class CriterionScore:
    id: str
    raw: float | None
    normalised: float | None
    origin: str  # measured | facts | snapshot | missing
    explanation: str
    evidence: list[str] = field(default_factory=list)  # probe ids, or source URLs


@dataclass
class FrameworkScore:
    framework: str
    device: str
    criteria: dict[str, CriterionScore]
    categories: dict[str, float | None]
    overall: float | None
    tier: str | None
    score_2018: dict[str, Any] | None


@dataclass
class NotMeasured:
    """A framework with no run in the documents scored: its 2018 published score is shown, labelled as not
    re-measured, beside why (its 'unavailable' document's reason, or that the results hold no document for it)."""

    framework: str
    reason: str
    run_id: str | None
    score_2018: dict[str, Any] | None


def load_facts(name: str, root: Path = FRAMEWORKS_DIR) -> dict[str, Any]:
    path = root / name / "facts.toml"
    if not path.exists():
        return {}
    return tomllib.loads(path.read_text(encoding="utf-8"))


def latest_snapshot(data_dir: Path = DATA_DIR) -> tuple[str | None, dict[str, Any]]:
    """The newest activity snapshot (activity-YYYY-MM-DD.json) and its date, or (None, {}) when there is none."""
    snaps = sorted(data_dir.glob("activity-*.json"))
    if not snaps:
        return None, {}
    data: dict[str, Any] = json.loads(snaps[-1].read_text())
    if isinstance(data.get("frameworks"), dict) and "kind" in data:  # a git + index snapshot: its frameworks' entries
        data = data["frameworks"]
    return snaps[-1].stem.removeprefix("activity-"), data


def scores_2018() -> dict[str, dict[str, Any]]:
    with (DATA_DIR / "showdown-2018.csv").open() as fh:
        return {row["framework"]: row for row in csv.DictReader(fh)}


def published_2018(framework: str) -> dict[str, Any] | None:
    """The 2018 post's category and overall scores of a framework (None for one it did not score, e.g. JAX)."""
    old = scores_2018().get(NAMES_2018.get(framework, ""))
    if old is None:
        return None
    return {"overall": float(old["overall_mean_of_categories"]), "snc": float(old["cat_snc"]),
            "api": float(old["cat_api"]), "platform": float(old["cat_platform"]), "name": old["framework"]}


def not_measured(scored: Sequence[str], unavailable: Sequence[Mapping[str, Any]], roster: Sequence[str]) -> list[NotMeasured]:
    """Every framework of `roster` (and every one with an 'unavailable' document) that has no scored run, in roster
    order: with the newest unavailable document's reason, or 'no document'."""
    newest: dict[str, Mapping[str, Any]] = {}
    for d in unavailable:
        if d["framework"] not in newest or d["created_at"] > newest[d["framework"]]["created_at"]:
            newest[d["framework"]] = d
    names = [n for n in [*roster, *sorted(newest)] if n not in scored]
    out = []
    for name in dict.fromkeys(names):
        doc = newest.get(name)
        reason = doc["reason"] if doc else "no result document in these results"
        out.append(NotMeasured(name, reason, doc["run_id"] if doc else None, published_2018(name)))
    return out


def _fact(facts: Mapping[str, Any], key: str) -> tuple[Any, list[str], str]:
    entry = facts.get(key)
    if not isinstance(entry, Mapping) or "value" not in entry:
        return None, [], ""
    src = [entry["source"]] if entry.get("source") else []
    return entry["value"], src, f"{entry.get('note', '')} (checked {entry.get('checked', '?')})".strip()


def _figure(entry: Mapping[str, Any], part: str, key: str) -> Any:
    block = entry.get(part) or {}
    fig = (block.get("figures") or {}).get(key)
    return fig.get("value") if isinstance(fig, Mapping) else None


def _day(text: Any) -> date | None:
    return date.fromisoformat(text) if isinstance(text, str) else None


def git_index_activity(entry: Mapping[str, Any], as_of: str | None) -> CriterionScore:
    """The showdown-2026 (v4) Activity from a git + index snapshot entry: the mean of the terms whose source could
    be read, each 0-1 (the rubric file states them): commits and distinct authors in the last 365 days (log-scaled,
    1 at 10,000 commits and 1,000 authors), releases in the last 12 months (1 at 12; the git tags of the year where
    the framework has no index distribution), and recency, 1 - (days since the last commit or final release) / 730,
    floored at 0."""
    terms: dict[str, float] = {}
    commits, authors = _figure(entry, "git", "commits_last_365d"), _figure(entry, "git", "authors_last_365d")
    if commits is not None:
        terms["commits"] = min(1.0, math.log10(1 + float(commits)) / 4)
    if authors is not None:
        terms["authors"] = min(1.0, math.log10(1 + float(authors)) / 3)
    releases = _figure(entry, "index", "releases_last_12_months")
    if releases is None and entry.get("git"):
        releases = _figure(entry, "git", "tags_last_365d")
        rel_from = "git tags"
    else:
        rel_from = "index releases"
    if releases is not None:
        terms["releases"] = min(1.0, float(releases) / 12)
    lasts = [d for d in (_day(_figure(entry, "git", "last_commit")), _day(_figure(entry, "index", "last_release_date")))
             if d is not None]
    if lasts and as_of:
        days = (date.fromisoformat(as_of) - max(lasts)).days
        terms["recency"] = max(0.0, 1.0 - days / 730)
    sources = [f"{part}: {blk['figures'][next(iter(blk['figures']))]['source']}" for part in ("git", "index")
               if isinstance(blk := entry.get(part), Mapping) and blk.get("figures")]
    if not terms:
        why = "; ".join(str(entry[k]) for k in ("git_unavailable", "index_unavailable") if entry.get(k))
        return CriterionScore("activity", None, None, "missing", f"no source could be read ({why})", sources)
    raw = sum(terms.values()) / len(terms)
    unread = [w for w, k in (("git history", "git_unavailable"), ("release history", "index_unavailable")) if entry.get(k)]
    text = (f"mean of {len(terms)} terms: " + ", ".join(f"{k} {v:.2f}" for k, v in terms.items())
            + f" (commits {commits}, authors {authors}, {rel_from} {releases}, as of {as_of})"
            + (f"; not read: {', '.join(unread)} ({'; '.join(str(entry[k]) for k in ('git_unavailable', 'index_unavailable') if entry.get(k))})"
               if unread else ""))
    return CriterionScore("activity", raw, None, "snapshot", text, sources)


def _from_facts(cid: str, facts: Mapping[str, Any], snapshot: Mapping[str, Any], measure: str | None = None,
                snapshot_date: str | None = None) -> CriterionScore:
    if cid in ("activity", "ecosystem"):
        entry = snapshot  # this framework's figures in the snapshot
        if not entry:
            return CriterionScore(cid, None, None, "missing", "no activity snapshot")
        if cid == "activity" and measure == "git_index":
            as_of = snapshot_date or (entry.get("git") or {}).get("as_of") or (entry.get("index") or {}).get("as_of")
            return git_index_activity(entry, as_of)
        if "git" in entry or "index" in entry:  # a git + index snapshot holds neither PRs nor the ecosystem counts
            what = ("repositories using it and Stack Overflow questions" if cid == "ecosystem"
                    else "pull requests merged")
            return CriterionScore(cid, None, None, "missing",
                                  f"the snapshot reads git and the package index only; {what} need the GitHub and "
                                  "Stack Exchange APIs (`showdown activity fetch`, with the network)")
        if cid == "activity":
            raw: float = 1.0 / max(float(entry["weeks_since_last_commit"]), 1.0) + float(entry["prs_merged_last_month"])
        else:
            raw = math.log(max(float(entry["github_repositories"]), 1.0)) + math.log(max(float(entry["stackoverflow_questions"]), 1.0))
        return CriterionScore(cid, raw, None, "snapshot", json.dumps(entry, sort_keys=True), list(entry.get("sources", [])))
    key = {"numerics": "numerics_maturity"}.get(cid, cid)
    value, src, note = _fact(facts, key)
    if value is None:
        return CriterionScore(cid, None, None, "missing", "not in the facts file")
    if cid == "os":
        raw = float(len(value))
    elif cid == "languages":
        raw = float(sum(float(v) for v in value.values()))
    elif cid == "maintenance":
        raw = float(MAINTENANCE[str(value)])
    else:
        raw = float(value)
    return CriterionScore(cid, raw, None, "facts", f"{value}: {note}", src)


def _from_records(cid: str, measure: str, doc: Mapping[str, Any], facts: Mapping[str, Any],
                  conformance: Mapping[str, Any] | None = None,
                  portability: tuple[int, int] | None = None,
                  export_share: tuple[int, int] | None = None) -> CriterionScore:
    if measure == "numerics":
        # the rubric's maturity (0-5, a sourced fact) + ease of use (0-5, measured by the numerics suite); the
        # numeric backend's activity, the 2018 third term, is not measured
        ease = measured.numerics_ease(dict(doc))
        maturity, src, note = _fact(facts, "numerics_maturity")
        if ease.value is None or maturity is None:  # half a criterion is not the criterion: left out, not guessed
            missing = "ease of use" if ease.value is None else "maturity"
            return CriterionScore(cid, None, None, "missing", f"not determined: no {missing} ({ease.explanation})",
                                  ease.evidence + src)
        text = f"maturity {maturity} ({note}) + ease {ease.value} ({ease.explanation})"
        return CriterionScore(cid, float(maturity) + float(ease.value), None, "measured", text, ease.evidence + src)
    if measure == "scalability":
        # measured by the scale suite where the adapter attempts it; otherwise the sourced fact
        c = measured.scalability(dict(doc))
        if c.value is not None:
            return CriterionScore(cid, c.value, None, "measured", c.explanation, c.evidence)
        value, src, note = _fact(facts, "scalability")
        if value is None:
            return CriterionScore(cid, None, None, "missing", c.explanation)
        return CriterionScore(cid, float(value), None, "facts", f"{value}: {note} ({c.explanation})", src)
    if measure == "graph_value":
        c = measured.graph_value(dict(doc))
    elif measure == "ootb_ops":
        c = measured.ootb_ops(dict(doc))
    elif measure in ("onnx_export", "onnx_import"):
        c = measured.onnx_direction(dict(doc), measure.split("_")[1])
    elif measure == "onnx_export_share":
        c = measured.onnx_export_share(dict(doc), export_share)
    elif measure == "onnx_import_conformance":
        c = measured.onnx_import_measured(dict(doc), dict(conformance) if conformance is not None else None, portability)
    elif measure == "onnx":
        exp, imp = measured.onnx_direction(dict(doc), "export"), measured.onnx_direction(dict(doc), "import")
        values = [v for v in (exp.value, imp.value) if v is not None]
        c = measured.Criterion(max(values) if values else None, f"export {exp.explanation}; import {imp.explanation}",
                               exp.evidence + imp.evidence)
    else:
        raise rb.RubricError(f"unknown measure {measure!r}")
    return CriterionScore(cid, c.value, None, "measured" if c.value is not None else "missing", c.explanation, c.evidence)


def score_table(raw: Mapping[str, Mapping[str, float | None]], rubric: rb.Rubric) -> dict[str, dict[str, Any]]:
    """The rubric's arithmetic on raw criterion values, for any set of frameworks: normalise every criterion,
    average each category over its determined criteria, average the categories, cluster the overall scores into
    tiers. {framework: {"normalised": {...}, "categories": {...}, "overall": x, "tier": t}}. The measured 2026
    scores and the golden test of the 2018 table both go through this one function."""
    normalised = rb.normalise(rubric, raw)
    agg = rb.aggregate(rubric, normalised)
    return {fw: {"normalised": normalised[fw], **agg[fw]} for fw in raw}


def score(docs: Sequence[Mapping[str, Any]], rubric: rb.Rubric, facts_root: Path = FRAMEWORKS_DIR,
          snapshot: Mapping[str, Any] | None = None,
          conformance: Mapping[str, Mapping[str, Any]] | None = None,
          portability: Mapping[str, Any] | None = None, snapshot_date: str | None = None) -> list[FrameworkScore]:
    """Score the newest document of each framework (one device: the documents given). `conformance`: the newest
    ONNX node-test conformance document of each importer, by framework name; `portability`: the newest portability
    matrix (the 2026 rubric's ONNX import)."""
    snap_date, snap = (snapshot_date, dict(snapshot)) if snapshot is not None else latest_snapshot()
    rows: dict[str, dict[str, CriterionScore]] = {}
    device: dict[str, str] = {}
    for doc in docs:
        name = doc["framework"]
        facts = load_facts(name, facts_root)
        crit: dict[str, CriterionScore] = {}
        for cid, c in rubric.criteria.items():
            if c.source == "measured":
                share = measured.portability_share(dict(portability), name) if portability else None
                exported = measured.export_share(dict(portability), name) if portability else None
                crit[cid] = _from_records(cid, c.measure or cid, doc, facts, (conformance or {}).get(name), share,
                                          exported)
            else:
                crit[cid] = _from_facts(cid, facts, snap.get(name, {}), c.measure, snap_date)
        rows[name] = crit
        device[name] = doc["device"]
    table = score_table({fw: {cid: cs.raw for cid, cs in crit.items()} for fw, crit in rows.items()}, rubric)
    out = []
    for fw, crit in rows.items():
        for cid, cs in crit.items():
            cs.normalised = table[fw]["normalised"][cid]
        out.append(FrameworkScore(fw, device[fw], crit, table[fw]["categories"], table[fw]["overall"], table[fw]["tier"],
                                  published_2018(fw)))
    out.sort(key=lambda s: -(s.overall if s.overall is not None else -1))
    return out
