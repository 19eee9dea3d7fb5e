"""Rows that cannot run here are recorded by running their attempts again: the verdict comes from what the commands
answered, every command and answer is in the document, hosts are elided, and a hanging command is killed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import attempts, cli, registry
from harness.results import load_document, validate_document

ADAPTERLESS = ("caffe2", "cntk", "dl4j", "neon", "torch7")


@pytest.fixture()
def row(tmp_path: Path) -> Iterator[registry.FrameworkInfo]:
    directory = tmp_path / "frameworks" / "oldfw"
    directory.mkdir(parents=True)
    info = registry.FrameworkInfo("oldfw", "Old FW", "", directory, "a test row", legacy=True)
    registry.register(info)
    yield info
    registry.reset()


def _write(info: registry.FrameworkInfo, text: str) -> None:
    (info.directory / "attempts.toml").write_text(text)


def test_every_row_without_an_adapter_has_attempts_and_a_recipe_marked_not_run() -> None:
    rows = [i for i in registry.frameworks().values() if not i.has_adapter]
    assert {i.name for i in rows} <= set(ADAPTERLESS) and rows
    for info in rows:
        spec = attempts.load(info)
        assert spec.recipe is not None and "NOT RUN HERE" in spec.recipe.read_text(), info.name
        assert any(a.needed for a in spec.attempts)
        for a in spec.attempts:  # the commands reach registries through the machine's configuration only
            assert "://" not in a.command or "$DEBIAN_MIRROR" in a.command, (info.name, a.command)


def test_the_verdict_comes_from_the_answers_not_from_the_file(row: registry.FrameworkInfo) -> None:
    _write(row, '[[attempt]]\nwhat = "a needed step"\ncommand = "echo fine"\n\n'
                '[[attempt]]\nwhat = "a side check"\ncommand = "exit 3"\nneeded = false\n')
    reason, tried = attempts.run_attempts(attempts.load(row))
    assert "every needed attempt succeeded" in reason and "no adapter" in reason  # not "cannot run"
    assert [t["outcome"] for t in tried] == ["succeeded", "failed (exit status 3)"]
    assert tried[0]["output"] == "fine" and tried[0]["command"] == "echo fine"

    _write(row, '[[attempt]]\nwhat = "the wheel"\ncommand = "echo no wheel >&2; exit 1"\n\n'
                '[[attempt]]\nwhat = "an interpreter"\ncommand = "true"\n')
    reason, tried = attempts.run_attempts(attempts.load(row))
    assert reason.startswith("oldfw cannot run here: 1 of 2 needed attempts failed: the wheel")
    assert "an interpreter" not in reason and tried[0]["output"] == "no wheel"


def test_attempts_share_one_scratch_folder_in_order(row: registry.FrameworkInfo) -> None:
    _write(row, '[[attempt]]\nwhat = "make"\ncommand = "echo made > \\"$ATTEMPT_DIR/f\\""\n\n'
                '[[attempt]]\nwhat = "use"\ncommand = "cat \\"$ATTEMPT_DIR/f\\""\n')
    _reason, tried = attempts.run_attempts(attempts.load(row))
    assert tried[1]["outcome"] == "succeeded" and tried[1]["output"] == "made"


def test_a_hanging_attempt_is_killed_with_its_children(row: registry.FrameworkInfo) -> None:
    _write(row, '[[attempt]]\nwhat = "hangs"\ncommand = "sleep 60 & sleep 60; echo never"\ntimeout_s = 1\n')
    t0 = time.perf_counter()
    reason, tried = attempts.run_attempts(attempts.load(row))
    assert time.perf_counter() - t0 < 10  # the background sleep holds the pipe: only killing the group ends it
    assert tried[0]["outcome"] == "timed out after 1 s" and tried[0]["exit_code"] is None
    assert "hangs (timed out after 1 s)" in reason


@pytest.mark.parametrize("text, message", [
    ("not toml [", "not valid TOML"),
    ("x = 1\n", "no [[attempt]] tables"),
    ('[[attempt]]\nwhat = "w"\n', "needs a non-empty 'what' and 'command'"),
    ('[[attempt]]\nwhat = "w"\ncommand = "true"\nneeded = false\n', "no attempt is marked needed"),
    ('[[attempt]]\nwhat = "w"\ncommand = "true"\ntimeout_s = -1\n', "timeout_s must be a positive number"),
    ('recipe = "missing/Dockerfile"\n[[attempt]]\nwhat = "w"\ncommand = "true"\n', "its recipe missing/Dockerfile does not exist"),
])
def test_malformed_attempts_are_one_line(row: registry.FrameworkInfo, text: str, message: str) -> None:
    _write(row, text)
    with pytest.raises(attempts.AttemptsError) as err:
        attempts.load(row)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_hosts_are_elided_and_everything_else_kept() -> None:
    text = ("Downloading from central: https://repo.example.org/maven2/a/b.pom\nUnknown host repo.example.org: no\n"
            "pip: http://user:pw@mirror.example.com:8080/simple/x/ torch-1.8.1-cp39-cp39-manylinux1_x86_64.whl "
            "org.deeplearning4j:deeplearning4j-core:1.0.0 caffe2.python.workspace /tmp/a.b/c.txt")
    out = attempts.elide_hosts(text)
    assert "example" not in out and "user:pw" not in out
    assert "https://<host>/maven2/a/b.pom" in out and "Unknown host <host>: no" in out and "http://<host>/simple/x/" in out
    for kept in ("torch-1.8.1-cp39-cp39-manylinux1_x86_64.whl", "org.deeplearning4j:deeplearning4j-core:1.0.0",
                 "caffe2.python.workspace", "/tmp/a.b/c.txt"):
        assert kept in out


def test_run_writes_a_valid_unavailable_document_with_every_answer(row: registry.FrameworkInfo, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (row.directory / "recipe").mkdir()
    (row.directory / "recipe" / "Dockerfile").write_text("# NOT RUN HERE\n")
    _write(row, 'recipe = "recipe/Dockerfile"\nrecipe_note = "an old base"\n'
                '[[attempt]]\nwhat = "the wheel"\ncommand = "echo see https://files.example.org/w.whl; exit 1"\n')
    out = tmp_path / "results"
    assert cli.main(["run", "--framework", "oldfw", "--out", str(out)]) == 0
    [path] = list(out.glob("oldfw-cpu-*.json"))
    doc = load_document(path)
    assert validate_document(doc) == [] and doc["kind"] == "unavailable" and doc["runner"]["name"] == "attempts"
    assert doc["reason"].startswith("oldfw cannot run here: 1 of 1 needed attempts failed: the wheel")
    assert doc["tried"][0]["output"] == "see https://<host>/w.whl" and doc["tried"][0]["exit_code"] == 1
    assert doc["tried"][1]["what"].startswith("recipe (not run here): ") and "an old base" in doc["tried"][1]["what"]
    assert "example" not in json.dumps([t["output"] for t in doc["tried"]])
    assert "recorded:" in capsys.readouterr().out


def test_a_row_without_adapter_or_attempts_is_one_line_and_the_others_still_run(
        row: registry.FrameworkInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--framework", "oldfw", "--out", str(tmp_path / "r")]) == 3
    assert "oldfw has no adapter and no attempts.toml" in capsys.readouterr().out


def test_torch7_as_observed_here(tmp_path: Path) -> None:
    """The real attempts of one row (a few seconds: apt's package names and the Debian mirror). Observed on
    2026-11-30: torch7 is in no Debian release the mirror serves, and buster is gone from it."""
    reason, tried = attempts.run_attempts(attempts.load(registry.get("torch7")))
    assert reason.startswith("torch7 cannot run here: 4 of 4 needed attempts failed")
    assert [t["exit_code"] for t in tried] == [1, 22, 22, 1]
    assert tried[3]["output"] == "lua-torch packages in bullseye: 0"


def test_score_and_report_show_every_known_row_with_2018_scores_labelled(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A measured run is scored; an unavailable row is shown with its 2018 score as not re-measured and never scored;
    a known framework without any document is still named, with its 2018 score."""
    import shutil

    repo = Path(__file__).resolve().parent.parent / "results"
    folder = tmp_path / "r"
    folder.mkdir()
    shutil.copy(next(repo.glob("torch-cpu-*.json")), folder)
    shutil.copy(next(repo.glob("cntk-cpu-*.json")), folder)
    assert cli.main(["score", str(folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["framework"] for s in out["scores"]] == ["torch"]
    absent = {n["framework"]: n for n in out["not_measured"]}
    assert absent["cntk"]["run_id"] and absent["cntk"]["reason"].startswith("cntk cannot run here")
    assert absent["cntk"]["score_2018"]["overall"] == 74.4 and absent["cntk"]["score_2018"]["name"] == "CNTK"
    assert absent["torch7"]["run_id"] is None and absent["torch7"]["score_2018"]["name"] == "Torch"
    assert absent["jax"]["score_2018"] is None
    assert set(absent) == set(registry.frameworks()) - {"torch"}
    assert cli.main(["report", str(folder), "--out-dir", str(folder)]) == 0
    md = (folder / "report.md").read_text()
    assert "| cntk | - | did not run | - | - | - | 74.4 (not re-measured) |" in md
    assert "No document in these results (2018 overall, not re-measured): tensorflow 84.0," in md
    html = (folder / "report.html").read_text()
    assert "74.4 (2018, not re-measured)" in html and "apt-cache pkgnames python3.6" in html
