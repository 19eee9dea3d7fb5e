"""Faults: bad input, a second process, a full disk, leftovers of a killed run, a worker that eats memory. Each
case asserts the exact outcome: the one-line message, the exit code, and what is on disk afterwards."""

from __future__ import annotations

import copy
import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness import cli, registry, results
from harness.results import ResultError, load_document, make_record, new_document, validate_document, write_json_atomic
from harness.runners.local import LocalRunner
from harness.runners.run import RunRequest, execute
from harness.runners.supervisor import Supervisor

pytestmark = pytest.mark.usefixtures("fakes")

REPO = Path(__file__).resolve().parent.parent
CLI = """
import sys
from tests.fakes.adapters import register_all
register_all()
from harness.cli import main
sys.exit(main(sys.argv[1:]))
"""


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip()]
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def sample(**over: Any) -> dict[str, Any]:
    doc = new_document(run_id="x-cpu-1", framework="x", device="cpu", plan=["layers/dense"],
                       config={"suites": ["layers"], "quick": True}, runner={"name": "local"},
                       harness={"version": "0", "git_commit": None}, catalog_version="ops32-v2")
    doc.update(over)
    return doc


def showdown(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


# ---------------------------------------------------------------------------------------------- worker exits
def test_a_worker_exits_cleanly_with_code_0(tmp_path: Path) -> None:
    """A worker whose stdin is a pipe held open by its host (as under the supervisor) used to abort at exit
    (SIGABRT, 134): the thread watching stdin held the buffered reader's lock."""
    write_json_atomic(tmp_path / "plan.json", {"probes": ["layers/sgd"]})
    with subprocess.Popen([sys.executable, "-m", "harness.worker", "--adapter", "tests.fakes.adapters:NumpyAdapter",
                           "--workdir", str(tmp_path), "--quick"], cwd=REPO, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                          env={**os.environ, "PYTHONPATH": str(REPO)}) as proc:
        code = proc.wait(timeout=120)  # stdin stays open until the worker is gone
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert code == 0, err
    assert b"Fatal Python error" not in err
    assert (tmp_path / "records" / "layers__sgd.json").exists()


def test_the_startup_limit_applies_only_before_the_first_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that lives longer than the startup limit, running probes all along, is not killed for it."""
    monkeypatch.setenv("SHOWDOWN_FAKE_DELAY", "0.6")
    info = registry.get("fake_slow")
    interp = LocalRunner().prepare(info, "cpu", lambda text: None)
    got: list[dict[str, Any]] = []
    sup = Supervisor(interp, info.adapter, "cpu", tmp_path / "work", lambda p: 60.0, True, startup_timeout_s=2.0,
                     on_record=got.append)
    sup.run([f"layers/{op}" for op in ("dense", "conv1d", "conv2d", "conv3d", "sgd", "adam")])  # about 3.6 s
    assert len(got) == 6 and sup.workers_started == 1


# ---------------------------------------------------------------------------------------------- concurrency
def test_two_runs_into_one_folder_exactly_one_runs(tmp_path: Path) -> None:
    out, log = tmp_path / "results", tmp_path / "executions.log"
    env = {"SHOWDOWN_FAKE_LOG": str(log), "SHOWDOWN_FAKE_DELAY": "0.1"}
    args = ["run", "--framework", "fake_slow", "--runner", "local", "--suite", "layers", "--out", str(out)]
    first = subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(REPO), **env})
    deadline = time.monotonic() + 60
    while not list(out.glob("fake_slow-cpu-*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    second = showdown(*args, env=env)
    first.communicate(timeout=300)
    assert first.returncode == 0
    assert second.returncode == cli.EXIT_BUSY
    lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "in use by another run" in lines[0] and f"pid {first.pid}" in lines[0]
    docs = list(out.glob("fake_slow-cpu-*.json"))
    assert len(docs) == 1
    doc = load_document(docs[0])
    assert validate_document(doc) == [] and doc["complete"] and len(doc["records"]) == 32
    runs = log.read_text().split()
    assert len(runs) == len(set(runs)) == 32  # no probe ran twice


def test_a_second_run_can_wait_for_the_first(tmp_path: Path) -> None:
    from harness.runners.lock import FolderBusy, folder_lock

    out = tmp_path / "results"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from harness.runners.lock import folder_lock\n"
                               "with folder_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(2)", str(out)],
                              cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(FolderBusy, match=f"pid {holder.pid}"), folder_lock(out):
        pass
    said: list[str] = []
    t0 = time.monotonic()
    with folder_lock(out, wait=True, say=said.append, poll_s=0.1):
        waited = time.monotonic() - t0
    holder.wait(timeout=30)
    assert waited > 0.5 and said and "waiting for the run" in said[0]


# ---------------------------------------------------------------------------------------------- bad documents
def test_report_and_score_skip_invalid_documents_with_a_warning_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = sample(run_id="x-cpu-good", complete=True, plan=[])
    write_json_atomic(tmp_path / "good.json", good)
    bad = sample(run_id="y-cpu-bad", framework="y")
    bad["device"] = "abacus"
    write_json_atomic(tmp_path / "bad.json", bad)
    (tmp_path / "junk.json").write_bytes(b"\xff\xfe not utf-8")
    code = cli.main(["report", str(tmp_path), "--out-dir", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == cli.EXIT_INVALID_INPUT
    warnings = [ln for ln in captured.err.splitlines() if ln.startswith("showdown: warning: skipping")]
    assert any("bad.json" in w and "device" in w for w in warnings) and any("junk.json" in w and "UTF-8" in w for w in warnings)
    assert (tmp_path / "out" / "report.md").exists() and "(1 run, " in captured.out and "2 skipped" in captured.out
    assert cli.main(["score", str(tmp_path), "--json"]) == cli.EXIT_INVALID_INPUT
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["skipped"]) == 2 and [s["framework"] for s in payload["scores"]] == ["x"]


def test_an_incomplete_document_is_not_used_silently_when_a_complete_one_exists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    older = sample(run_id="x-cpu-old", complete=True, plan=[], created_at="2026-01-01T00:00:00Z")
    newer = sample(run_id="x-cpu-new", complete=False, created_at="2026-02-01T00:00:00Z")
    write_json_atomic(tmp_path / "old.json", older)
    write_json_atomic(tmp_path / "new.json", newer)
    assert cli.main(["report", str(tmp_path), "--markdown"]) == 0
    captured = capsys.readouterr()
    assert "x-cpu-old" in captured.out and "x-cpu-new" not in captured.out
    assert "using old.json (complete) rather than the newer, incomplete new.json" in captured.err


def test_resume_never_continues_an_invalid_document(tmp_path: Path) -> None:
    out = tmp_path / "results"
    first = execute(RunRequest(registry.get("fake_numpy"), "cpu", ["layers"], out, LocalRunner(), quick=True,
                               probes=["layers/dense", "layers/sgd"]))
    doc = first.document
    doc["complete"] = False
    doc["records"].pop("layers/sgd")
    doc["records"]["layers/dense"]["status"] = "fine"  # schema-invalid
    write_json_atomic(first.path, doc)
    before = first.path.read_bytes()
    said: list[str] = []
    from harness.runners.run import RunHooks

    second = execute(RunRequest(registry.get("fake_numpy"), "cpu", ["layers"], out, LocalRunner(), quick=True,
                                probes=["layers/dense", "layers/sgd"]), RunHooks(say=said.append))
    assert second.path != first.path and not second.resumed
    assert first.path.read_bytes() == before
    assert any("does not validate" in s for s in said)


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe\x00garbage", "not UTF-8 text"),
    (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    (b'{"schema": "showdown-result", "schema_version": 0}', "schema_version 0 does not exist"),
    (b'{"schema": "showdown-result", "schema": "x"}', "duplicate key 'schema'"),
    (b'{"schema": "showdown-result", "schema_version": 2, "a": NaN}', "NaN is not JSON"),
])
def test_bad_files_give_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(content)
    with pytest.raises(ResultError, match=message):
        load_document(path)
    assert cli.main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and message.split("'")[0] in out
    assert cli.main(["report", str(path)]) == 2
    assert message.split("'")[0] in one_line_error(capsys)


def test_duplicate_keys_anywhere_are_refused(tmp_path: Path) -> None:
    text = json.dumps(sample(), indent=1).replace('"records": {}', '"records": {}, "records": {}')
    (tmp_path / "d.json").write_text(text)
    with pytest.raises(ResultError, match="duplicate key 'records'"):
        load_document(tmp_path / "d.json")


def test_an_unreadable_folder_is_an_error_not_an_empty_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    write_json_atomic(folder / "good.json", sample(complete=True, plan=[]))
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(path) == folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert cli.main(["report", str(folder)]) == 2
    assert "cannot read the folder (Permission denied)" in one_line_error(capsys)


# ---------------------------------------------------------------------------------------------- output folder
def test_an_output_path_that_is_a_file_is_refused_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "results"
    target.write_text("not a folder")
    code = cli.main(["run", "--framework", "fake_numpy", "--runner", "local", "--out", str(target), "--suite", "layers"])
    assert code == 2 and "is a file, not a folder" in one_line_error(capsys)
    assert target.read_text() == "not a folder"


def test_a_read_only_output_folder_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "results"
    target.mkdir()
    if os.geteuid() == 0:  # root writes through permission bits; the immutable attribute stops root too
        subprocess.run(["chattr", "+i", str(target)], check=True)
    else:
        target.chmod(0o555)
    try:
        code = cli.main(["run", "--framework", "fake_numpy", "--runner", "local", "--out", str(target), "--suite", "layers"])
        assert code == 2 and "cannot write into the output folder" in one_line_error(capsys)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(target)], check=True)
        else:
            target.chmod(0o755)
    assert list(target.iterdir()) == []


def test_an_unreadable_output_folder_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "results"
    target.mkdir()
    real = os.scandir

    def scandir(path: Any = ".") -> Any:  # root reads through permission bits: the refusal is simulated
        if Path(path) == target:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    code = cli.main(["run", "--framework", "fake_numpy", "--runner", "local", "--out", str(target), "--suite", "layers"])
    assert code == 2 and "cannot read the output folder" in one_line_error(capsys)


def test_a_full_disk_mid_run_keeps_the_document_valid_and_resume_completes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out, log = tmp_path / "results", tmp_path / "executions.log"
    monkeypatch.setenv("SHOWDOWN_FAKE_LOG", str(log))
    monkeypatch.setenv("SHOWDOWN_FAKE_DELAY", "0.01")
    real, saves = results.write_json_atomic, [0]

    def filling(path: Path, payload: Any) -> None:
        if path.suffix == ".json" and path.parent == out.resolve() and path.name.startswith("fake_slow"):
            saves[0] += 1
            if saves[0] > 5:  # the disk is full from the 6th save of the document on
                raise OSError(errno.ENOSPC, "No space left on device")
        real(path, payload)

    monkeypatch.setattr(results, "write_json_atomic", filling)
    code = cli.main(["run", "--framework", "fake_slow", "--runner", "local", "--suite", "layers", "--out", str(out)])
    err = one_line_error(capsys)
    assert code == cli.EXIT_STORAGE and "No space left on device" in err and "run the same command again to resume" in err
    (doc_path,) = out.glob("fake_slow-cpu-*.json")
    saved = load_document(doc_path)
    assert validate_document(saved) == [] and not saved["complete"] and len(saved["records"]) == 4
    leftovers = list(out.glob(".*.work/records/*.json"))
    assert leftovers  # the record the document could not take (and any the worker finished after) wait there
    monkeypatch.setattr(results, "write_json_atomic", real)
    assert cli.main(["run", "--framework", "fake_slow", "--runner", "local", "--suite", "layers", "--out", str(out)]) == 0
    done = load_document(doc_path)
    assert done["complete"] and len(done["records"]) == 32
    assert all(done["records"][p] == rec for p, rec in saved["records"].items())
    runs = log.read_text().split()
    assert len(runs) == len(set(runs)) == 32  # nothing ran twice, the leftover record was kept
    assert not list(out.glob(".*.work")) and not list(out.glob(".staging-*"))


def test_leftovers_of_a_killed_run_are_cleaned_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, log = tmp_path / "results", tmp_path / "executions.log"
    monkeypatch.setenv("SHOWDOWN_FAKE_LOG", str(log))
    probes = ["layers/dense", "layers/sgd", "layers/momentum"]
    first = execute(RunRequest(registry.get("fake_numpy"), "cpu", ["layers"], out, LocalRunner(), quick=True, probes=probes[:1]))
    doc = first.document
    doc["plan"], doc["complete"] = probes, False
    write_json_atomic(first.path, doc)
    work = out / f".{first.path.stem}.work"
    write_json_atomic(work / "records" / "layers__sgd.json", make_record("layers/sgd", "failed", reason="from the killed run"))
    write_json_atomic(work / "records" / "layers__dense.json", make_record("layers/dense", "ok", data={"not": "a layer record"}))
    write_json_atomic(work / "inflight.json", {"probe": "layers/momentum"})
    (out / ".staging-fake_numpy-cpu" / "environment-check").mkdir(parents=True)
    second = execute(RunRequest(registry.get("fake_numpy"), "cpu", ["layers"], out, LocalRunner(), quick=True, probes=probes))
    assert second.path == first.path and second.document["complete"]
    assert second.document["records"]["layers/sgd"]["reason"] == "from the killed run"  # kept, not run again
    assert second.document["records"]["layers/dense"] == first.document["records"]["layers/dense"]  # not overwritten
    assert [p.name for p in out.iterdir() if p.name.startswith(".") and p.is_dir()] == []


# ---------------------------------------------------------------------------------------------- cli values
@pytest.mark.parametrize("args, message", [
    (["--framework", ""], "no framework named"),
    (["--framework", ",,"], "no framework named"),
    (["--framework", "fake_numpy,fake_numpy"], "named twice"),
    (["--framework", "fake_numpy", "--probe", "layers/dense", "--probe", "layers/dense"], "given twice"),
    (["--framework", "fake_numpy", "--timeout", "0"], "above 0"),
    (["--framework", "fake_numpy", "--timeout", "-5"], "above 0"),
    (["--framework", "fake_numpy", "--timeout", "nan"], "above 0"),
    (["--framework", "fake_numpy", "--timeout", "inf"], "above 0"),
    (["--framework", "fake_numpy", "--memory-limit", "3"], "too small"),
    (["--framework", "fake_numpy", "--memory-limit", "lots"], "not a size"),
])
def test_bad_cli_values_are_refused(args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = None
    try:
        code = cli.main(["run", "--runner", "local", "--out", str(tmp_path / "out"), *args])
    except SystemExit as exc:  # argparse refuses a bad type with exit 2
        code = int(exc.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.json"))


def test_cuda_without_a_gpu_is_refused_before_anything_is_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from harness.runners import base

    monkeypatch.setattr(base, "host_cuda_devices", lambda: [])
    monkeypatch.setenv("SHOWDOWN_HOME", str(tmp_path / "home"))
    code = cli.main(["run", "--framework", "torch", "--device", "cuda", "--out", str(tmp_path / "out")])
    assert code == 2 and "shows no CUDA device" in one_line_error(capsys)
    assert not (tmp_path / "home").exists()  # no environment was started


# ---------------------------------------------------------------------------------------------- memory
def test_a_probe_over_the_memory_limit_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    out = tmp_path / "results"
    req = RunRequest(registry.get("fake_memory_hog"), "cpu", ["layers"], out, LocalRunner(), quick=True,
                     probes=["layers/dense", "layers/sgd"], memory_limit_bytes=400 * 2**20)
    doc = execute(req).document
    rec = doc["records"]["layers/dense"]
    assert rec["status"] == "crashed" and "over the memory limit" in rec["reason"] and "0.39 GiB" in rec["reason"]
    assert rec["data"]["resident_bytes"] > rec["data"]["memory_limit_bytes"]
    assert doc["records"]["layers/sgd"]["status"] == "ok" and doc["complete"]
    assert validate_document(doc) == []


# ---------------------------------------------------------------------------------------------- report escaping
def test_strings_from_a_document_reach_the_html_escaped(tmp_path: Path) -> None:
    stored = load_document(REPO / "tests" / "data" / "result-v1-torch-cpu.json")
    doc = copy.deepcopy(stored)
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>"\''
    doc["records"]["layers/dense"]["reason"] = hostile
    doc["records"]["layers/dense"]["data"]["api"] = hostile
    doc["records"]["layers/conv2d"]["status"] = "failed"
    doc["records"]["layers/conv2d"]["reason"] = hostile
    doc["environment"]["versions"][hostile] = hostile
    doc["run_id"] = hostile
    assert validate_document(doc) == []
    write_json_atomic(tmp_path / "in" / "t.json", doc)
    assert cli.main(["report", str(tmp_path / "in"), "--out-dir", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<script" not in page and "<img" not in page and "onerror=alert(1)>" not in page
    assert "&lt;script&gt;" in page
