"""Activity snapshots: built from API answers (recorded here, no network), then used by scoring."""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.results import load_document
from harness.scoring import activity
from harness.scoring import rubric as rb
from harness.scoring.score import latest_snapshot, score

DATA = Path(__file__).parent / "data"


def fake_api(url: str, headers: Mapping[str, str]) -> Any:
    if "/commits" in url:
        return [{"commit": {"committer": {"date": "2026-11-12T10:00:00Z"}}}]
    if "/search/issues" in url:
        assert "is%3Amerged" in url and "merged%3A%3E%3D2026-10-27" in url
        return {"total_count": 420}
    if "/search/repositories" in url:
        return {"total_count": 150000}
    if "/tags/" in url:
        return {"items": [{"count": 25000}]}
    raise AssertionError(url)


def test_snapshot_from_api_answers(tmp_path: Path) -> None:
    path = activity.fetch_snapshot(["torch"], token="t", today=_dt.date(2026, 11, 26), fetch=fake_api, out_dir=tmp_path)
    assert path.name == "activity-2026-11-26.json"
    snap = json.loads(path.read_text())["torch"]
    assert snap["weeks_since_last_commit"] == 2.0 and snap["prs_merged_last_month"] == 420
    assert snap["github_repositories"] == 150000 and snap["stackoverflow_questions"] == 25000


def test_scoring_uses_the_snapshot(tmp_path: Path) -> None:
    activity.fetch_snapshot(["torch"], token=None, today=_dt.date(2026, 11, 26), fetch=fake_api, out_dir=tmp_path)
    date, snap = latest_snapshot(tmp_path)
    assert date == "2026-11-26"
    doc = load_document(DATA / "result-v1-torch-cpu.json")
    (result,) = score([doc], rb.load("showdown-2018"), snapshot=snap)
    act = result.criteria["activity"]
    assert act.origin == "snapshot" and act.raw == pytest.approx(0.5 + 420)
    assert result.criteria["ecosystem"].raw == pytest.approx(math.log(150000) + math.log(25000))


def test_without_network_the_error_is_one_line() -> None:
    def offline(url: str, headers: Mapping[str, str]) -> Any:
        raise activity.ActivityError(f"{url}: network unreachable")

    with pytest.raises(activity.ActivityError, match="unreachable"):
        activity.framework_activity("torch", _dt.date(2026, 11, 26), None, fetch=offline)
