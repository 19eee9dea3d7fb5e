"""Result documents: atomic writes, the reader's refusals, schema validation of stored documents."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from harness import results
from harness.results import ResultError, Status, load_document, make_record, new_document, validate_document

DATA = Path(__file__).parent / "data"


def sample(**over: object) -> dict:
    doc = new_document(run_id="x-cpu-1", framework="x", device="cpu", plan=["layers/dense"],
                       config={"suites": ["layers"], "quick": True}, runner={"name": "local"},
                       harness={"version": "0", "git_commit": None}, catalog_version="ops32-v1")
    doc.update(over)
    return doc


def test_new_document_is_valid() -> None:
    assert validate_document(sample()) == []


def test_failed_record_needs_a_reason() -> None:
    doc = sample()
    doc["records"]["layers/dense"] = make_record("layers/dense", Status.FAILED, reason="")
    assert any("reason" in e or "short" in e for e in validate_document(doc))
    doc["records"]["layers/dense"] = make_record("layers/dense", Status.FAILED, reason="disagrees")
    assert validate_document(doc) == []


def test_ok_layer_record_must_say_how_it_was_implemented() -> None:
    doc = sample()
    doc["records"]["layers/dense"] = make_record("layers/dense", Status.OK, data={"op": "dense"})
    assert validate_document(doc)


def test_unknown_status_is_invalid() -> None:
    doc = sample()
    rec = make_record("layers/dense", Status.OK)
    rec["status"] = "fine"
    doc["records"]["layers/dense"] = rec
    assert validate_document(doc)


def test_atomic_write_leaves_no_temp_files_and_nan_becomes_null(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    results.write_json_atomic(path, {"a": float("nan"), "b": [1.0, float("inf")]})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None]}
    assert [p.name for p in tmp_path.iterdir()] == ["d.json"]


def test_reader_refuses_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.json"
    path.write_text(json.dumps(sample(schema_version=99)))
    with pytest.raises(ResultError, match=r"schema 99.*upgrade showdown"):
        load_document(path)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"hello": 1}', "not a showdown result"),
    ('{"schema": "showdown-result"}', "schema_version"),
])
def test_reader_refuses_malformed(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultError, match=message):
        load_document(path)


def test_unused_path_never_reuses_a_file(tmp_path: Path) -> None:
    first = results.unused_path(tmp_path, "t-cpu-1")
    first.write_text("{}")
    second = results.unused_path(tmp_path, "t-cpu-1")
    assert second != first and not second.exists()


def test_find_resumable_picks_incomplete_same_runner(tmp_path: Path) -> None:
    done = sample(run_id="x-cpu-a", complete=True)
    open_doc = sample(run_id="x-cpu-b")
    other_runner = sample(run_id="x-cpu-c", runner={"name": "venv"})
    for name, doc in (("x-cpu-a", done), ("x-cpu-b", open_doc), ("x-cpu-c", other_runner)):
        results.write_json_atomic(tmp_path / f"{name}.json", doc)
    found = results.find_resumable(tmp_path, "x", "cpu", "local", "ops32-v1")
    assert found is not None and found.name == "x-cpu-b.json"
    assert results.find_resumable(tmp_path, "x", "cpu", "local", "ops32-v2") is None


def test_stored_documents_validate() -> None:
    """Every stored document (one per schema version, and real runs) still loads and validates."""
    stored = sorted(DATA.glob("*.json"))
    assert stored, "tests/data holds stored result documents"
    for path in stored:
        assert validate_document(load_document(path)) == [], path.name


def test_stored_document_breaks_when_tampered() -> None:
    doc = load_document(sorted(DATA.glob("*.json"))[0])
    broken = copy.deepcopy(doc)
    first = next(iter(broken["records"]))
    del broken["records"][first]["status"]
    assert validate_document(broken)


def test_provenance_counts_source_changes_but_not_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from harness.runners import run

    repo = tmp_path / "repo"
    (repo / "harness").mkdir(parents=True)
    (repo / "results").mkdir()
    (repo / "harness" / "x.py").write_text("x = 1\n")
    (repo / "results" / "report.md").write_text("old\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    monkeypatch.setattr(run, "SOURCE_ROOT", repo)
    clean = run.harness_identity()
    assert clean["git_commit"] and clean["git_dirty"] is False and clean["changed_paths"] == []
    (repo / "results" / "report.md").write_text("new\n")  # a run's own output
    (repo / "results" / "torch-cpu-1.json").write_text("{}")
    (repo / "out").mkdir()
    (repo / "out" / "doc.json").write_text("{}")
    assert run.harness_identity((repo / "out",))["git_dirty"] is False
    (repo / "harness" / "new_adapter.py").write_text("y = 2\n")  # untracked source counts
    dirty = run.harness_identity((repo / "out",))
    assert dirty["git_dirty"] is True and dirty["changed_paths"] == ["harness/new_adapter.py"]
