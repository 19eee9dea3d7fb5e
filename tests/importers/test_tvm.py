"""Apache TVM as the conformance run's importer (importers/tvm): three synthetic node-test cases of
tests/test_conformance.py converted by TVM's ONNX frontend, compiled for llvm and run on its VM in TVM's own
virtualenv, through the same supervisor and probe as a real run. Run with `pytest -m importer tests/importers`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import conformance
from harness.runners.locking import parse
from tests.test_conformance import make_cases

pytestmark = pytest.mark.importer("tvm")
NAMES = ["test_abs_opset22", "test_add", "test_cast_bf16", "test_relu"]


@pytest.fixture(scope="module")
def tvm_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    cases = make_cases(tmp_path_factory.mktemp("conformance"))
    try:
        importer = conformance.prepare_importer("tvm", lambda text: None)
    except Exception as exc:
        pytest.fail(f"TVM's environment could not be built: {exc}")
    return conformance.run_cases(importer, cases, NAMES, tmp_path_factory.mktemp("work"), timeout_s=120.0)


def test_tvm_is_an_importer_not_a_framework() -> None:
    from harness import registry

    info = conformance.importers()["tvm"]
    assert "tvm" not in registry.frameworks()
    assert info.requirements("cpu").is_file() and info.requirements("cpu").with_suffix(".lock").is_file()
    assert parse(info.requirements("cpu").with_suffix(".lock"))["apache-tvm"] == "0.27.0.post1"


def test_tvm_runs_the_synthetic_cases(tvm_run: tuple[dict[str, Any], dict[str, Any]]) -> None:
    env, rows = tvm_run
    assert {n: r["status"] for n, r in rows.items()} == {
        "test_abs_opset22": "pass", "test_add": "pass", "test_relu": "pass", "test_cast_bf16": "untested"}
    assert rows["test_add"]["max_error"] == 0.0
    extra = env["_importer"]
    assert extra["importer"] == "tvm.relax.frontend.onnx" and extra["importer_version"] == "0.27.0.post1"
    assert env["framework_version"] == "0.27.0.post1" and "/tvm-cpu-" in env["python"]["executable"]


def test_tvm_names_no_highest_opset_with_its_evidence(tvm_run: tuple[dict[str, Any], dict[str, Any]]) -> None:
    extra = tvm_run[0]["_importer"]
    assert "max_opset" not in extra  # None: from_onnx refuses no opset, so it cannot say
    assert "never refuses" in extra["max_opset_evidence"] and "_impl_v" in extra["max_opset_evidence"]


def test_the_document_validates(tvm_run: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path) -> None:
    env, rows = tvm_run
    doc = conformance.build_document("tvm", env, rows, total_cases=9, quick=None, timeout_s=120.0, wall_s=1.0,
                                     started_at="2026-01-01T00:00:00Z")
    assert conformance.validate(json.loads(json.dumps(doc))) == []
    assert doc["importer"]["max_opset"] is None and doc["summary"]["counts"]["pass"] == 3
