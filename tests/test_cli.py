"""The command line: one-line errors for bad input, and the commands a user runs first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli
from harness.results import write_json_atomic
from tests.test_results import sample

REPO = Path(__file__).resolve().parent.parent


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_unknown_framework_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--framework", "caffe3"]) == 2
    line = one_line_error(capsys)
    assert "unknown framework 'caffe3'" in line and "torch" in line


def test_unknown_suite(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--framework", "torch", "--suite", "layers,speed"]) == 2
    assert "unknown suite speed" in one_line_error(capsys)


def test_unknown_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--framework", "torch", "--device", "tpu"]) == 2
    assert "unknown device 'tpu'" in one_line_error(capsys)


def test_unknown_probe(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--framework", "torch", "--probe", "layers/conv9d"]) == 2
    assert "unknown probe 'layers/conv9d'" in one_line_error(capsys)


def test_report_on_malformed_and_newer_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "showdown-result", "schema_version": 1, "records": ')
    assert cli.main(["report", str(bad)]) == 2
    assert "not valid JSON" in one_line_error(capsys)
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(sample(schema_version=99)))
    assert cli.main(["report", str(newer)]) == 2
    assert "upgrade showdown" in one_line_error(capsys)
    assert cli.main(["report", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in one_line_error(capsys)
    (tmp_path / "empty").mkdir()
    assert cli.main(["report", str(tmp_path / "empty")]) == 2
    assert "no result documents" in one_line_error(capsys)


def test_validate_reports_each_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_json_atomic(tmp_path / "good.json", sample())
    broken = sample()
    broken["device"] = "abacus"
    write_json_atomic(tmp_path / "broken.json", broken)
    assert cli.main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "device" in out and "1 valid, 1 invalid" in out


def test_report_renders_columns_per_framework(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stored = sorted((REPO / "tests" / "data").glob("*.json"))
    for p in stored:
        (tmp_path / p.name).write_text(p.read_text())
    assert cli.main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "# showdown report" in out and "## Layers and optimizers" in out
    assert "| 1. Dense / fully connected |" in out


def test_list_and_help_run_without_any_framework() -> None:
    for args in (["list"], ["--help"], ["run", "--help"]):
        proc = subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
    assert "examples:" in subprocess.run([sys.executable, "-m", "harness", "--help"], cwd=REPO, capture_output=True, text=True).stdout


def test_host_side_never_imports_a_framework() -> None:
    """Import every host module, run `list`, and check that no deep-learning framework got imported."""
    code = (
        "import sys, harness.cli, harness.runners.run, harness.runners.venv, harness.report.markdown, harness.scoring.measured\n"
        "harness.cli.main(['list'])\n"
        "bad = [m for m in ('torch', 'tensorflow', 'jax', 'mxnet', 'chainer', 'paddle', 'frameworks.torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.usefixtures("fakes")
def test_run_summary_covers_every_suite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    probes = ["layers/dense", "graphs/define_by_run", "throughput/gemm/eager", "onnx/export/mlp", "numerics/coverage"]
    args = ["run", "--framework", "fake_numpy", "--runner", "local", "--out", str(tmp_path), "--quick"]
    assert cli.main(args + [x for p in probes for x in ("--probe", p)]) == 0
    out = capsys.readouterr().out
    for line in ("OOTB ops", "graph value", "throughput (median per step)", "ONNX export", "numerics ease of use"):
        assert line in out
