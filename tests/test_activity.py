"""Activity snapshots: built from recorded API answers and git histories made here (no network), then used by scoring."""

from __future__ import annotations

import datetime as _dt
import inspect
import json
import math
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.results import load_document
from harness.scoring import activity, activity_git, activity_index
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


# ------------------------------------------------------------------------------------------------ git + index sources
AS_OF = _dt.date(2026, 6, 30)


def _git(repo: Path, *args: str, when: str | None = None, email: str = "a@x") -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(repo), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": email.split("@")[0], "GIT_AUTHOR_EMAIL": email,
           "GIT_COMMITTER_NAME": email.split("@")[0], "GIT_COMMITTER_EMAIL": email}
    if when:
        env |= {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def _commit(repo: Path, day: str, email: str) -> None:
    (repo / "f.txt").write_text(day + email)
    _git(repo, "add", "f.txt")
    _git(repo, "commit", "-q", "-m", day, when=f"{day}T12:00:00+00:00", email=email)


@pytest.fixture()
def history(tmp_path: Path) -> Path:
    """Six commits by three authors (one e-mail in two cases) at fixed dates and two tags."""
    repo = tmp_path / "work"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _commit(repo, "2025-06-29", "old@x")  # 366 days before AS_OF: outside the window
    _git(repo, "tag", "v1")  # lightweight: dated by its commit, 2025-06-29
    _commit(repo, "2025-06-30", "Bob@X.org")  # 365 days before: inside
    _commit(repo, "2026-01-10", "alice@x")
    _git(repo, "tag", "-a", "v2", "-m", "two", when="2026-02-01T12:00:00+00:00")  # annotated: its tagger date
    _commit(repo, "2026-03-01", "ALICE@x")
    _commit(repo, "2026-06-30", "carol@y")
    _commit(repo, "2026-07-05", "dave@z")  # after AS_OF
    return repo


def test_git_figures_are_exact(history: Path) -> None:
    g = activity_git.git_activity(history, AS_OF)
    assert g["commits_last_365d"] == 4  # bob, alice, ALICE, carol; not old (366 days) nor dave (after)
    assert g["authors_last_365d"] == 3  # alice and ALICE are one author
    assert g["last_commit"] == "2026-06-30" and g["weeks_since_last_commit"] == 0.0
    assert g["tags_last_365d"] == 1 and g["tags_total"] == 2 and g["latest_tag"] == "v2"
    assert g["latest_tag_date"] == "2026-02-01" and g["as_of_rule"] == "given"
    later = activity_git.git_activity(history, _dt.date(2026, 7, 19))
    assert later["last_commit"] == "2026-07-05" and later["weeks_since_last_commit"] == 2.0


def test_git_window_edges_and_default_as_of(history: Path) -> None:
    assert activity_git.in_window(_dt.date(2025, 6, 30), AS_OF) and not activity_git.in_window(_dt.date(2025, 6, 29), AS_OF)
    one_day_on = activity_git.git_activity(history, AS_OF + _dt.timedelta(days=1))
    assert one_day_on["commits_last_365d"] == 3  # bob's commit is now 366 days old
    g = activity_git.git_activity(history)
    assert g["as_of"] == "2026-07-05" and g["as_of_rule"] == "the date of the newest commit on HEAD"
    assert g["commits_last_365d"] == 4 and g["authors_last_365d"] == 3  # alice, carol, dave
    assert g["head_date"] == "2026-07-05" and len(g["head"]) == 40


def test_git_origin_of_a_bare_mirror(history: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirrors" / "someone+thing" / "repo"
    subprocess.run(["git", "clone", "-q", "--bare", str(history), str(mirror)], check=True, capture_output=True)
    g = activity_git.git_activity(mirror, AS_OF)
    assert g["commits_last_365d"] == 4 and g["tags_total"] == 2
    assert g["origin"] == "github:someone/thing"  # its origin is a local path: the mirror folder's name tells
    subprocess.run(["git", "-C", str(mirror), "remote", "remove", "origin"], check=True, capture_output=True)
    assert activity_git.origin_of(mirror) == "github:someone/thing"


def test_git_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(activity_git.GitActivityError, match="not a git repository"):
        activity_git.git_activity(plain)
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "-q")
    with pytest.raises(activity_git.GitActivityError, match="empty history"):
        activity_git.git_activity(empty)
    assert main(["activity", "git", str(plain)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a git repository" in err and "Traceback" not in err
    assert main(["activity", "git", str(plain), "--as-of", "june"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def _file(day: str, yanked: bool = False) -> dict[str, Any]:
    return {"upload_time_iso_8601": f"{day}T10:00:00.000000Z", "yanked": yanked, "packagetype": "bdist_wheel"}


#: a JSON API answer as the index gives it (trimmed to the fields read)
RECORDED = {
    "info": {"name": "demo", "version": "1.2.0"},
    "releases": {
        "1.0.0": [_file("2025-01-10")],  # more than 12 months before AS_OF
        "1.1.0": [_file("2025-12-03"), _file("2025-12-01")],  # dated by its first upload
        "1.1.1": [],  # no files: not a release
        "1.2.0rc1": [_file("2026-05-01")],  # a pre-release: counted apart
        "1.2.0": [_file("2026-06-01")],
        "1.3.0": [_file("2026-06-20", yanked=True)],  # every file yanked: ignored
        "0.9.1": [_file("2026-06-10"), _file("2026-06-11", yanked=True)],  # a backport: the newest upload
        "2.0.0": [_file("2026-07-10")],  # after AS_OF
    },
}


def test_index_release_history_is_exact() -> None:
    seen: list[str] = []

    def fake(url: str) -> Any:
        seen.append(url)
        return RECORDED

    f = activity_index.index_activity("demo", AS_OF, fetch=fake)
    assert seen == [f"{activity_index.json_api_base()}/demo/json"]
    assert f["releases_last_12_months"] == 3  # 1.1.0, 1.2.0, 0.9.1
    assert f["prereleases_last_12_months"] == 1 and f["prereleases_total"] == 1
    assert f["releases_total"] == 4  # 1.0.0, 1.1.0, 1.2.0, 0.9.1
    assert f["latest_version"] == "1.2.0" and f["latest_version_date"] == "2026-06-01"
    assert f["last_release_date"] == "2026-06-10" and f["days_since_last_release"] == 20
    assert f["first_release_date"] == "2025-01-10"


def test_index_address_comes_from_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    from pip._internal.models.index import PyPI

    monkeypatch.setattr(activity_index, "configured_index_url", lambda: None)
    assert activity_index.json_api_base() == PyPI.pypi_url.rstrip("/")
    monkeypatch.setattr(activity_index, "configured_index_url", lambda: "https://mirror.example/root/simple/")
    assert activity_index.json_api_base() == "https://mirror.example/root/pypi"
    assert "://" not in inspect.getsource(activity_index)  # no address written in the module


def test_index_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(activity_index.IndexActivityError, match="no release"):
        activity_index.parse_release_history("x", {"releases": {"1.0": [_file("2026-01-01", yanked=True)]}}, AS_OF)
    with pytest.raises(activity_index.IndexActivityError, match="releases"):
        activity_index.parse_release_history("x", {"message": "Not Found"}, AS_OF)


def _mirrors(history: Path, tmp_path: Path) -> Path:
    mirrors = tmp_path / "mirrors"
    subprocess.run(["git", "clone", "-q", "--bare", str(history), str(mirrors / "jax-ml+jax" / "repo")], check=True,
                   capture_output=True)
    return mirrors


def test_snapshot_validates_and_every_figure_names_its_source(history: Path, tmp_path: Path) -> None:
    mirrors = _mirrors(history, tmp_path)
    path = activity.take_snapshot(["jax", "caffe", "torch"], mirrors, AS_OF, fetch=lambda url: RECORDED,
                                  out_dir=tmp_path, why_missing={"torch": "the mirror was refused"}, base="http://x")
    doc = json.loads(path.read_text())
    assert path.name == "activity-2026-06-30.json" and activity.validate_snapshot(doc) == []
    jax = doc["frameworks"]["jax"]
    assert jax["git"]["figures"]["commits_last_365d"]["value"] == 4
    assert jax["index"]["figures"]["releases_last_12_months"]["value"] == 3
    for part in ("git", "index"):
        for fig in jax[part]["figures"].values():
            assert fig["date"] == "2026-06-30" and fig["source"]
    assert "github:jax-ml/jax at " in jax["git"]["figures"]["authors_last_365d"]["source"]
    assert "release history of demo" in jax["index"]["figures"]["latest_version"]["source"]
    assert doc["frameworks"]["torch"]["git"] is None and doc["frameworks"]["torch"]["git_unavailable"] == "the mirror was refused"
    assert doc["frameworks"]["caffe"]["index"] is None and "never shipped" in doc["frameworks"]["caffe"]["index_unavailable"]
    broken = json.loads(path.read_text())
    del broken["frameworks"]["jax"]["git"]["figures"]["commits_last_365d"]["source"]
    broken["frameworks"]["torch"].pop("git_unavailable")
    errors = activity.validate_snapshot(broken)
    assert any("source" in e for e in errors) and any("git_unavailable" in e for e in errors)


def test_committed_snapshot_covers_every_framework() -> None:
    from harness import registry
    from harness.scoring.score import DATA_DIR

    path = sorted(DATA_DIR.glob("activity-*.json"))[-1]
    doc = json.loads(path.read_text())
    assert activity.validate_snapshot(doc) == []
    assert set(doc["frameworks"]) == set(registry.frameworks()) == set(activity.REPOSITORIES)
    neon = doc["frameworks"]["neon"]
    assert neon["index"] is None and neon["index_unrelated"]["distribution"] == "neon"


def test_the_2026_activity_follows_the_snapshot(history: Path, tmp_path: Path) -> None:
    mirrors = _mirrors(history, tmp_path)
    path = activity.take_snapshot(["jax"], mirrors, AS_OF, fetch=lambda url: RECORDED, out_dir=tmp_path, base="http://x")
    date, snap = latest_snapshot(tmp_path)
    assert date == "2026-06-30" and set(snap) == {"jax"}
    doc = dict(load_document(DATA / "result-v1-torch-cpu.json"), framework="jax")
    r26 = rb.load("showdown-2026")
    (res,) = score([doc], r26, snapshot=snap, snapshot_date=date)
    act = res.criteria["activity"]
    terms = [math.log10(5) / 4, math.log10(4) / 3, 3 / 12, 1 - 0 / 730]  # 4 commits, 3 authors, 3 releases, today
    assert act.origin == "snapshot" and act.raw == pytest.approx(sum(terms) / 4)
    assert act.normalised == pytest.approx(100 * sum(terms) / 4)
    assert res.criteria["ecosystem"].raw is None and "Stack Exchange" in res.criteria["ecosystem"].explanation
    # the same snapshot with fewer commits and an older last release scores lower: the score reads the figures
    changed = json.loads(path.read_text())
    changed["frameworks"]["jax"]["git"]["figures"]["commits_last_365d"]["value"] = 0
    changed["frameworks"]["jax"]["git"]["figures"]["last_commit"]["value"] = "2025-06-30"
    changed["frameworks"]["jax"]["index"]["figures"]["last_release_date"]["value"] = "2026-03-02"
    (res2,) = score([doc], r26, snapshot=changed["frameworks"], snapshot_date=date)
    terms2 = [0.0, math.log10(4) / 3, 3 / 12, 1 - 120 / 730]
    assert res2.criteria["activity"].raw == pytest.approx(sum(terms2) / 4)
    assert res2.overall is not None and res.overall is not None and res2.overall < res.overall
    # without a git mirror, the index terms alone, and the explanation says what was not read
    only_index = dict(changed["frameworks"]["jax"], git=None, git_unavailable="no mirror")
    (res3,) = score([doc], r26, snapshot={"jax": only_index}, snapshot_date=date)
    assert res3.criteria["activity"].raw == pytest.approx((3 / 12 + 1 - 120 / 730) / 2)
    assert "not read: git history (no mirror)" in res3.criteria["activity"].explanation
    # the 2018 rubric still reads only its own figures: a git + index snapshot leaves its Activity missing
    (old,) = score([doc], rb.load("showdown-2018"), snapshot=snap, snapshot_date=date)
    assert old.criteria["activity"].raw is None and old.criteria["activity"].origin == "missing"
