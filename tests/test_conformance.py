"""The ONNX importer conformance run (harness.conformance) on a tiny synthetic case folder written here with the
harness's own onnx.helper in the layout of ONNX's backend node tests, converted by the same export the real cases go
through: a fake importer that segfaults, exits and hangs on chosen cases (the run goes on and records them), one
that is wrong on one case, the tolerance check, the opset filter, the document's schema, onnxruntime as the reference
and the command line. None of it needs onnx 1.18's cases."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness import cli, conformance, conformance_export
from harness.probes.conformance import ATOL, RTOL, compare, load_values
from harness.runners.base import Interpreter, source_env

FAKE = "tests.fakes.conformance:FakeImporter"
F = TensorProto.FLOAT
X = np.array([[-1.5, 0.0, 2.0]], dtype=np.float32)
Y = np.array([[0.5, 1.0, -3.0]], dtype=np.float32)


def _node_test(root: Path, name: str, op: str, inputs: list[np.ndarray], outputs: list[np.ndarray], opset: int,
               in_type: int = F, out_type: int = F) -> None:
    """One case folder as ONNX lays out its node tests: model.onnx and test_data_set_0/{input,output}_<i>.pb."""
    in_names, out_names = [f"x{i}" for i in range(len(inputs))], [f"y{i}" for i in range(len(outputs))]
    attrs = {"to": out_type} if op == "Cast" else {}
    graph = helper.make_graph(
        [helper.make_node(op, in_names, out_names, **attrs)], name,
        [helper.make_tensor_value_info(n, in_type, a.shape) for n, a in zip(in_names, inputs)],
        [helper.make_tensor_value_info(n, out_type, a.shape) for n, a in zip(out_names, outputs)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    data = root / name / "test_data_set_0"
    data.mkdir(parents=True)
    onnx.save(model, str(root / name / "model.onnx"))
    for kind, arrays, dtype in (("input", inputs, in_type), ("output", outputs, out_type)):
        for i, a in enumerate(arrays):
            if dtype == TensorProto.BFLOAT16:
                tensor = helper.make_tensor(f"{kind}{i}", dtype, a.shape, a.ravel().tolist())
            else:
                tensor = numpy_helper.from_array(a, f"{kind}{i}")
            (data / f"{kind}_{i}.pb").write_bytes(tensor.SerializeToString())


def make_cases(tmp: Path) -> Path:
    """Node-test folders, then the cache the conformance run reads (tmp/cases)."""
    src = tmp / "node"
    _node_test(src, "test_add", "Add", [X, Y], [X + Y], 13)
    _node_test(src, "test_relu", "Relu", [X], [np.maximum(X, 0)], 14)
    _node_test(src, "test_abs_opset22", "Abs", [X], [np.abs(X)], 22)
    _node_test(src, "test_b_crash", "Identity", [X], [X], 13)
    _node_test(src, "test_c_exit", "Identity", [X], [X], 13)
    _node_test(src, "test_d_hang", "Identity", [X], [X], 13)
    _node_test(src, "test_wrong_add", "Add", [X, Y], [X + Y], 13)
    _node_test(src, "test_convfail_relu", "Relu", [X], [np.maximum(X, 0)], 14)
    _node_test(src, "test_cast_bf16", "Cast", [np.array([1.0, 2.0], np.float32)], [np.array([1.0, 2.0], np.float32)],
               13, in_type=TensorProto.BFLOAT16)
    dest = tmp / "cases"
    dest.mkdir()
    assert conformance_export.export_all(str(src), str(dest)) == 9
    return dest


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cases(tmp_path_factory.mktemp("conformance"))


def _fake(adapter: str = FAKE) -> conformance.Importer:
    return conformance.Importer("fake", adapter, Interpreter([sys.executable], source_env()))


@pytest.fixture(scope="module")
def fake_run(cases: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    names = sorted(json.loads((cases / "manifest.json").read_text())["cases"])
    return conformance.run_cases(_fake(), cases, names, tmp_path_factory.mktemp("work"), timeout_s=4.0)


# ---------------------------------------------------------------------------------------------- the cache
def test_export_records_opset_ops_and_values(cases: Path) -> None:
    manifest = json.loads((cases / "manifest.json").read_text())
    entry = manifest["cases"]["test_add"]
    assert (entry["opset"], entry["ops"]) == (13, ["Add"])
    assert manifest["cases"]["test_abs_opset22"]["opset"] == 22
    with np.load(cases / "test_add" / "data.npz") as npz:
        inputs = load_values(npz, "in", entry["inputs"])
        expected = load_values(npz, "out", entry["outputs"])
    np.testing.assert_array_equal(inputs[1], Y)
    np.testing.assert_array_equal(expected[0], X + Y)
    assert expected[0].dtype == np.float32
    # bfloat16 has no NumPy dtype: the case is kept, marked, and never fed to an importer as raw integers
    assert "BFLOAT16" in manifest["cases"]["test_cast_bf16"]["skip"]
    assert (cases / "test_cast_bf16" / "model.onnx").is_file()


def test_quick_sample_is_fixed_and_sorted() -> None:
    names = [f"test_{i:04d}" for i in range(300)]
    first = conformance.select(list(reversed(names)), 25)
    assert first == conformance.select(names, 25) == sorted(first)
    assert len(set(first)) == 25 and set(first) <= set(names)
    assert first != names[:25]
    assert conformance.select(names, None) == names == conformance.select(names, 1000)


# ---------------------------------------------------------------------------------------------- the comparison
def test_tolerances_are_onnx_backend_defaults() -> None:
    assert (RTOL, ATOL) == (1e-3, 1e-7)


def test_compare_within_and_outside_tolerance() -> None:
    exp = np.array([1.0, 100.0], np.float32)
    ok, why, worst = compare([exp], [exp * (1 + 0.9e-3)])
    assert ok and why == "" and worst == pytest.approx(0.09, rel=1e-3)
    ok, why, worst = compare([exp], [exp * (1 + 1.5e-3)])
    assert not ok and "2 of 2 values outside" in why and worst == pytest.approx(0.15, rel=1e-3)
    tiny = np.array([0.0], np.float32)  # at zero only atol counts
    assert compare([tiny], [np.array([5e-8], np.float32)])[0]
    assert not compare([tiny], [np.array([5e-7], np.float32)])[0]


def test_compare_dtype_shape_nan_strings_bools_sequences() -> None:
    exp = np.array([1.0, np.nan], np.float32)
    assert compare([exp], [exp.copy()])[0]  # NaN where NaN is expected
    assert not compare([exp], [np.array([1.0, 2.0], np.float32)])[0]
    ok, why, _ = compare([exp], [exp.astype(np.float64)])
    assert not ok and "dtype float64" in why
    ok, why, _ = compare([exp], [exp.reshape(1, 2)])
    assert not ok and "shape" in why
    words = np.array(["a", "bc"], dtype=object)
    assert compare([words], [np.array(["a", "bc"], dtype=object)])[0]
    assert not compare([words], [np.array(["a", "b"], dtype=object)])[0]
    flags = np.array([True, False])
    assert compare([flags], [flags.copy()])[0] and not compare([flags], [~flags])[0]
    seq = [np.ones(2, np.float32), np.zeros(1, np.float32)]
    assert compare([seq], [[s.copy() for s in seq]])[0]
    assert not compare([seq], [seq[:1]])[0]
    ok, why, _ = compare([exp, exp], [exp])
    assert not ok and "1 outputs, expected 2" in why


# ---------------------------------------------------------------------------------------------- the driver
def test_crashes_and_hangs_are_recorded_and_the_run_goes_on(fake_run: tuple[dict[str, Any], dict[str, Any]]) -> None:
    env, rows = fake_run
    status = {name: row["status"] for name, row in rows.items()}
    assert status == {
        "test_abs_opset22": "pass", "test_add": "pass", "test_b_crash": "crash", "test_c_exit": "crash",
        "test_cast_bf16": "untested", "test_convfail_relu": "convert_error", "test_d_hang": "timeout",
        "test_relu": "pass", "test_wrong_add": "wrong",
    }
    assert "SIGSEGV" in rows["test_b_crash"]["error"]
    assert "exit code 9" in rows["test_c_exit"]["error"]
    assert "4s" in rows["test_d_hang"]["error"]
    assert "ValueError: this importer does not take the model" == rows["test_convfail_relu"]["error"]
    # a new worker after each death: the environment check, the first worker, and one after each of the three
    assert env["_workers_started"] == 5
    assert env["_importer"]["max_opset"] == 20


def test_wrong_value_is_recorded_with_its_error(fake_run: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, rows = fake_run
    wrong = rows["test_wrong_add"]
    assert wrong["max_error"] == pytest.approx(1.0)
    assert wrong["error"].startswith("output 0: 3 of 3 values outside rtol 0.001")
    assert rows["test_add"]["max_error"] == 0.0
    assert rows["test_b_crash"]["opset"] == 13 and rows["test_b_crash"]["ops"] == ["Identity"]


def test_opset_filter_and_document(fake_run: tuple[dict[str, Any], dict[str, Any]]) -> None:
    env, rows = fake_run
    doc = conformance.build_document("fake", env, rows, total_cases=9, quick=None, timeout_s=4.0, wall_s=1.0,
                                     started_at="2026-01-01T00:00:00Z")
    assert conformance.validate(doc) == []
    summary = doc["summary"]
    assert summary["counts"] == {"pass": 3, "wrong": 1, "convert_error": 1, "run_error": 0, "timeout": 1, "crash": 2,
                                 "untested": 1}
    # 8 tested cases; the max opset is 20, so the opset-22 case (a pass) leaves the second rate
    assert summary["pass_rate"]["tested"] == {"passed": 3, "cases": 8, "rate": 0.375}
    assert summary["pass_rate"]["every_case"] == {"passed": 3, "cases": 9, "rate": round(3 / 9, 4)}
    assert summary["pass_rate"]["at_or_below_max_opset"] == {"passed": 2, "cases": 7, "rate": round(2 / 7, 4)}
    assert summary["failing_ops"] == {"Add": {"cases": 2, "failed": 1}, "Identity": {"cases": 3, "failed": 3},
                                      "Relu": {"cases": 2, "failed": 1}}
    assert summary["failing_ops_all_cases"] == ["Identity"]
    assert doc["importer"]["max_opset"] == 20
    bad = json.loads(json.dumps(doc))
    bad["cases"]["test_add"]["status"] = "fine"
    assert conformance.validate(bad)


def test_summary_without_max_opset_counts_every_case() -> None:
    rows = {"a": {"status": "pass", "opset": 30, "ops": ["Abs"]}, "b": {"status": "wrong", "opset": 7, "ops": ["Abs"]},
            "c": {"status": "pass", "opset": None, "ops": ["ai.onnx.ml.Foo"]}}
    assert conformance.summarize(rows, None)["pass_rate"]["at_or_below_max_opset"]["cases"] == 3
    assert conformance.summarize(rows, 10)["pass_rate"]["at_or_below_max_opset"] == {"passed": 1, "cases": 2, "rate": 0.5}


def test_single_input_importer_runs_one_input_cases_only(cases: Path, tmp_path: Path) -> None:
    _, rows = conformance.run_cases(_fake("tests.fakes.conformance:SingleInputImporter"), cases,
                                    ["test_add", "test_relu"], tmp_path / "work", timeout_s=30.0)
    assert rows["test_relu"]["status"] == "pass"
    assert rows["test_add"]["status"] == "run_error" and "one input" in rows["test_add"]["error"]


def test_onnxruntime_is_the_reference(cases: Path, tmp_path: Path) -> None:
    importer = conformance.prepare_importer("onnxruntime", lambda text: None)
    names = ["test_abs_opset22", "test_add", "test_b_crash", "test_relu", "test_wrong_add"]
    env, rows = conformance.run_cases(importer, cases, names, tmp_path / "work", timeout_s=60.0)
    assert {n: r["status"] for n, r in rows.items()} == dict.fromkeys(names, "pass")
    extra = env["_importer"]
    assert extra["importer"] == "onnxruntime" and extra["importer_version"]
    assert extra["max_opset"] >= 22 and "InferenceSession" in extra["max_opset_evidence"]


def test_cli_runs_a_quick_sample_from_the_cache(cases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    target = home / "onnx-node-tests" / f"cases-{conformance.ONNX_TESTS_RELEASE}"
    target.parent.mkdir(parents=True)
    os.symlink(cases, target)  # an existing cache is reused: no virtualenv, no download
    monkeypatch.setenv("SHOWDOWN_HOME", str(home))
    out = tmp_path / "out"
    assert cli.main(["conformance", "--importer", "onnxruntime", "--quick", "3", "--timeout", "60", "--out", str(out)]) == 0
    (path,) = out.glob("onnxruntime-conformance-*.json")
    doc = json.loads(path.read_text())
    assert conformance.validate(doc) == []
    assert doc["tests"]["selected"] == 3 and doc["tests"]["quick"] == 3 and doc["tests"]["total_cases"] == 9
    assert sorted(doc["cases"]) == conformance.select([p for p in json.loads((cases / "manifest.json").read_text())["cases"]], 3)
    assert "pass rate, tested cases" in capsys.readouterr().out
    assert not list(out.glob(".conformance-*"))  # the work folder is gone
    assert cli.main(["conformance", "--importer", "onnxruntime", "--quick", "0", "--out", str(out)]) == 2
    assert cli.main(["conformance", "--importer", "no_such_framework", "--out", str(out)]) == 2
