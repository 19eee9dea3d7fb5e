"""Scoring: the pure scoring function over the newest run of every framework in results/, under each rubric, and
`showdown score results --json` end to end (loading and validating every document, side documents included)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from harness import cli
from harness.results import is_run
from harness.scoring import rubric as rb
from harness.scoring.score import score


@pytest.fixture(scope="module")
def newest_runs(results_dir: Path) -> list[dict[str, Any]]:
    with contextlib.redirect_stderr(io.StringIO()):
        docs = cli.load_many([results_dir], newest_only=True)
    runs = [d for d in docs if is_run(d)]
    for d in runs:
        d.pop("_source", None)
    return runs


@pytest.mark.parametrize("rubric_id", rb.available())
def test_score(benchmark: Any, newest_runs: list[dict[str, Any]], rubric_id: str) -> None:
    rubric = rb.load(rubric_id)
    scores = benchmark(score, newest_runs, rubric)
    assert sorted(s.framework for s in scores) == sorted(d["framework"] for d in newest_runs)
    assert any(s.overall is not None for s in scores)
    benchmark.extra_info["frameworks"] = len(scores)


def test_score_command(benchmark: Any, results_dir: Path) -> None:
    def run() -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = cli.main(["score", str(results_dir), "--json"])
        return code, out.getvalue()

    code, text = benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    assert code == 0
    assert len(json.loads(text)["scores"]) >= 2
