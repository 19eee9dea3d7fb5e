"""The conformance run's importers of tensorflow (onnx2tf), mxnet (mxnet.contrib.onnx) and paddle (x2paddle) on three
synthetic node-test cases written with tests/test_conformance.py's helper, in each framework's virtualenv through the
same supervisor and probe as a real run: every input fed in the graph's order (Sub is not symmetric), every output
returned in order (Split), a 3-D tensor handed back in the ONNX layout (onnx2tf's default is channels-last), and the
highest opset each importer names, or that it names none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import conformance, conformance_export
from tests.test_conformance import _node_test

X = np.array([[-1.5, 0.0, 2.0], [4.0, -2.5, 1.0]], dtype=np.float32)
Y = np.array([[0.5, 1.0, -3.0], [2.0, 2.0, -1.0]], dtype=np.float32)
Z = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 11.5
NAMES = ["test_relu_3d", "test_split_two", "test_sub"]


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("conformance")
    _node_test(tmp / "node", "test_sub", "Sub", [X, Y], [X - Y], 13)
    _node_test(tmp / "node", "test_split_two", "Split", [X], [X[:1], X[1:]], 13)
    _node_test(tmp / "node", "test_relu_3d", "Relu", [Z], [np.maximum(Z, 0)], 14)
    (tmp / "cases").mkdir()
    assert conformance_export.export_all(str(tmp / "node"), str(tmp / "cases")) == 3
    return tmp / "cases"


def _run(name: str, cases: Path, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        importer = conformance.prepare_importer(name, lambda text: None)
    except Exception as exc:
        pytest.fail(f"{name}'s environment could not be built: {exc}")
    return conformance.run_cases(importer, cases, NAMES, work, timeout_s=120.0)


@pytest.mark.framework("tensorflow")
def test_onnx2tf(cases: Path, tmp_path: Path) -> None:
    env, rows = _run("tensorflow", cases, tmp_path)
    assert {n: r["status"] for n, r in rows.items()} == dict.fromkeys(NAMES, "pass"), rows
    extra = env["_importer"]
    assert extra["importer"] == "onnx2tf" and extra["importer_version"]
    assert "max_opset" not in extra and "onnx2tf.ops" in extra["max_opset_evidence"]


@pytest.mark.framework("mxnet")
def test_mxnet_import_model(cases: Path, tmp_path: Path) -> None:
    env, rows = _run("mxnet", cases, tmp_path)
    assert {n: r["status"] for n, r in rows.items()} == dict.fromkeys(NAMES, "pass"), rows
    extra = env["_importer"]
    assert extra["importer"] == "mxnet.contrib.onnx.import_model"
    assert "max_opset" not in extra and "GraphProto.from_onnx" in extra["max_opset_evidence"]


@pytest.mark.framework("paddle")
def test_x2paddle(cases: Path, tmp_path: Path) -> None:
    env, rows = _run("paddle", cases, tmp_path)
    assert {n: r["status"] for n, r in rows.items()} == dict.fromkeys(NAMES, "pass"), rows
    extra = env["_importer"]
    assert extra["importer"] == "x2paddle"
    assert extra["max_opset"] >= 13 and "OpSet" in extra["max_opset_evidence"]
