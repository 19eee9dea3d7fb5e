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


def _from_facts(cid: str, facts: Mapping[str, Any], snapshot: Mapping[str, Any]) -> CriterionScore:
    if cid in ("activity", "ecosystem"):
        entry = snapshot  # this framework's figures in the snapshot
        if not entry:
            return CriterionScore(cid, None, None, "missing", "no activity snapshot")
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
                  portability: tuple[int, int] | None = None) -> CriterionScore:
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
        c = measured.onnx_export_share(dict(doc))
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
          portability: Mapping[str, Any] | None = None) -> list[FrameworkScore]:
    """Score the newest document of each framework (one device: the documents given). `conformance`: the newest
    ONNX node-test conformance document of each importer, by framework name; `portability`: the newest portability
    matrix (the 2026 rubric's ONNX import)."""
    snap = dict(snapshot) if snapshot is not None else latest_snapshot()[1]
    rows: dict[str, dict[str, CriterionScore]] = {}
    device: dict[str, str] = {}
    for doc in docs:
        name = doc["framework"]
        facts = load_facts(name, facts_root)
        crit: dict[str, CriterionScore] = {}
        for cid, c in rubric.criteria.items():
            if c.source == "measured":
                share = measured.portability_share(dict(portability), name) if portability else None
                crit[cid] = _from_records(cid, c.measure or cid, doc, facts, (conformance or {}).get(name), share)
            else:
                crit[cid] = _from_facts(cid, facts, snap.get(name, {}))
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
