"""Isolation: a crashing, hanging, exiting or garbage-talking adapter becomes a status; the run goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness import cli, registry
from harness.results import load_document, validate_document
from harness.runners.local import LocalRunner
from harness.runners.run import RunRequest, execute

pytestmark = pytest.mark.usefixtures("fakes")

REPO = Path(__file__).resolve().parent.parent


def run_fake(name: str, out: Path, probes: list[str], timeout: float | None = None) -> dict[str, Any]:
    req = RunRequest(registry.get(name), "cpu", ["layers"], out, LocalRunner(), quick=True, probes=probes,
                     timeouts={"layers": timeout, "graphs": timeout} if timeout else {})
    result = execute(req)
    assert validate_document(result.document) == []
    return result.document


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {k: r["status"] for k, r in doc["records"].items()}


def test_ok_adapter_runs_and_reports_unsupported(out_dir: Path) -> None:
    doc = run_fake("fake_numpy", out_dir, ["layers/dense", "layers/sgd", "layers/momentum", "layers/conv2d", "graphs/define_by_run", "graphs/compiled"])
    assert statuses(doc) == {"layers/dense": "ok", "layers/sgd": "ok", "layers/momentum": "ok", "layers/conv2d": "unmapped",
                             "graphs/define_by_run": "ok", "graphs/compiled": "unmapped"}
    assert doc["records"]["layers/momentum"]["data"]["points"] == 0.5  # composed
    assert "does not map conv2d" in doc["records"]["layers/conv2d"]["reason"]
    assert doc["complete"] is True


def test_crash_is_recorded_and_the_run_goes_on(out_dir: Path) -> None:
    doc = run_fake("fake_crash", out_dir, ["layers/sgd", "layers/dense", "layers/momentum"])
    rec = doc["records"]["layers/dense"]
    assert rec["status"] == "crashed"
    assert rec["signal"] == signal.SIGABRT and "SIGABRT" in rec["reason"]
    assert "about to abort" in (rec["log_tail"] or "")
    assert statuses(doc)["layers/sgd"] == "ok" and statuses(doc)["layers/momentum"] == "ok"
    assert doc["complete"] is True


def test_clean_exit_mid_probe_is_still_a_crash(out_dir: Path) -> None:
    doc = run_fake("fake_exit", out_dir, ["layers/dense", "layers/sgd"])
    assert statuses(doc) == {"layers/dense": "crashed", "layers/sgd": "ok"}
    assert doc["records"]["layers/dense"]["exit_code"] == 0


def test_hang_is_killed_at_the_timeout(out_dir: Path) -> None:
    t0 = time.monotonic()
    doc = run_fake("fake_hang", out_dir, ["layers/dense", "layers/sgd"], timeout=3)
    assert time.monotonic() - t0 < 60
    assert statuses(doc) == {"layers/dense": "timeout", "layers/sgd": "ok"}
    assert "3s" in doc["records"]["layers/dense"]["reason"]


def test_garbage_output_fails_cleanly(out_dir: Path) -> None:
    doc = run_fake("fake_garbage", out_dir, ["layers/dense", "layers/sgd", "layers/momentum", "graphs/define_by_run"])
    assert statuses(doc) == {"layers/dense": "failed", "layers/sgd": "failed", "layers/momentum": "failed", "graphs/define_by_run": "failed"}
    assert "not a numeric array" in doc["records"]["layers/dense"]["reason"]
    assert "non-finite" in doc["records"]["layers/sgd"]["reason"]
    assert "shape" in doc["records"]["layers/momentum"]["reason"]
    assert "raw bytes on fd 1" in (doc["records"]["layers/dense"]["log_tail"] or "")


def test_unavailable_framework_is_one_line_error(out_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", "--framework", "fake_unavailable", "--runner", "local", "--out", str(out_dir), "--suite", "layers"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_SOME_FAILED
    assert len(err) == 1 and "nosuchframework" in err[0] and "Traceback" not in err[0]
    assert not list(out_dir.glob("*.json"))  # no document for a framework that never ran


KILL_SCRIPT = """
import sys
from tests.fakes.adapters import register_all
register_all()
from harness.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_then_rerun_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    out = tmp_path / "results"
    log = tmp_path / "executions.log"
    env = {**os.environ, "SHOWDOWN_FAKE_LOG": str(log), "SHOWDOWN_FAKE_DELAY": "0.25", "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-c", KILL_SCRIPT, "run", "--framework", "fake_slow", "--runner", "local",
            "--suite", "layers", "--out", str(out)]
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    doc_path = None
    while time.monotonic() < deadline:
        docs = list(out.glob("fake_slow-cpu-*.json"))
        if docs:
            doc_path = docs[0]
            try:
                if len(json.loads(doc_path.read_text())["records"]) >= 8:
                    break
            except (json.JSONDecodeError, OSError):
                pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert doc_path is not None
    before = load_document(doc_path)
    done_before = set(before["records"])
    assert 8 <= len(done_before) < 32 and not before["complete"]
    time.sleep(1.0)  # the orphaned worker notices its host is gone and exits

    subprocess.run(argv, env=env, cwd=REPO, check=True, stdout=subprocess.DEVNULL, timeout=300)
    after = load_document(doc_path)  # the same document was resumed
    assert after["complete"] and len(after["records"]) == 32
    assert all(after["records"][p] == before["records"][p] for p in done_before)  # nothing lost or redone
    runs = log.read_text().split()
    repeated = {p for p in runs if runs.count(p) > 1}
    assert not (repeated & done_before), f"completed probes ran again: {repeated & done_before}"
    assert len(list(out.glob("fake_slow-cpu-*.json"))) == 1


def test_relative_output_folder_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers (and converters they start in other directories) get absolute paths, whatever the user typed."""
    monkeypatch.chdir(tmp_path)
    req = RunRequest(registry.get("fake_numpy"), "cpu", ["layers"], Path("rel-out"), LocalRunner(), quick=True,
                     probes=["layers/dense"])
    result = execute(req)
    assert result.path.is_absolute() and result.path.parent == tmp_path / "rel-out"
    assert result.document["records"]["layers/dense"]["status"] == "ok"
