"""The ONNX portability matrix (harness.portability) with fake exporters and importers (tests/fakes/portability.py),
run through the real supervisor and workers in this interpreter: cases written by the export step in the conformance
cache's layout, one importer wrong on one model, one that kills its worker on another, one without run_many, one
whose environment does not start, an exporter that maps only one model; the document's schema, the tolerance the
cases carry, the matrix's rendering and the command line. No real framework is involved."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import cli, conformance, portability
from harness.catalog.onnx_models import EXPORT_ATOL, MODELS_BY_ID
from harness.report import portability as render
from harness.runners.base import Interpreter, source_env
from tests.fakes.portability import NOISE

FAKES = "tests.fakes.portability"


def _interp() -> Interpreter:
    return Interpreter([sys.executable], source_env())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    work = tmp_path_factory.mktemp("portability") / "work"
    exporters: list[Any] = [portability.Endpoint(n, f"{FAKES}:{cls}", _interp())
                            for n, cls in (("fakea", "FakeExporter"), ("fakeb", "OldOpsetExporter"), ("fakec", "CnnlessExporter"))]
    exporters.append(("fakegone", "its environment could not be prepared: no such venv"))
    importers: list[Any] = [conformance.Importer(n, f"{FAKES}:{cls}", _interp()) for n, cls in (
        ("ref", "RefImporter"), ("wrongcnn", "WrongOnCnnImporter"), ("crashmlp", "CrashOnMlpImporter"),
        ("runonly", "RunOnlyImporter"), ("broken", f"{FAKES}:NoSuchImporter"))]
    importers[-1].adapter = f"{FAKES}:NoSuchImporter"
    doc = portability.run_matrix(exporters, importers, ["mlp", "cnn"], work, export_timeout_s=60, import_timeout_s=60,
                                 say=lambda text: None)
    return doc, work


def test_document_validates(run: tuple[dict[str, Any], Path]) -> None:
    doc, _ = run
    assert portability.validate(doc) == []
    assert doc["tolerance"]["atol"] == EXPORT_ATOL and doc["tolerance"]["rtol"] == 0.0


def test_export_step_writes_conformance_cases(run: tuple[dict[str, Any], Path]) -> None:
    doc, work = run
    manifest = json.loads((work / "cases" / "manifest.json").read_text())
    assert sorted(manifest["cases"]) == ["fakea__cnn", "fakea__mlp", "fakeb__cnn", "fakeb__mlp", "fakec__mlp"]
    entry = manifest["cases"]["fakeb__cnn"]
    assert entry["opset"] == 13 and "Conv" in entry["ops"] and entry["atol"] == EXPORT_ATOL and entry["rtol"] == 0.0
    assert entry["exporter_name"] == "fake.exporter" and entry["exporter_version"] == "1.0"
    with np.load(work / "cases" / "fakea__cnn" / "data.npz") as npz:
        model = MODELS_BY_ID["cnn"]
        assert np.array_equal(npz["in_0"], model.sample_input())
        assert np.allclose(npz["out_0"], model.reference(model.sample_input()), atol=1e-5)
    assert doc["exporters"]["fakea"]["models"]["mlp"]["opset"] == 17
    assert doc["exporters"]["fakec"]["models"]["cnn"]["status"] == "failed"
    assert "maps no cnn" in doc["exporters"]["fakec"]["models"]["cnn"]["error"]
    assert doc["exporters"]["fakegone"]["status"] == "unavailable"


def test_cells(run: tuple[dict[str, Any], Path]) -> None:
    cells = run[0]["cells"]
    ref = cells["fakea"]["ref"]
    assert ref["status"] == "pass" and ref["passed"] == 2 and ref["max_error"] <= EXPORT_ATOL
    assert ref["models"]["cnn"]["importer_version"] == "2.0" and ref["models"]["cnn"]["exporter_version"] == "1.0"
    assert ref["models"]["cnn"]["opset"] == 17
    # one importer wrong on one model
    wrong = cells["fakea"]["wrongcnn"]
    assert wrong["status"] == "partial" and wrong["passed"] == 1
    assert wrong["models"]["mlp"]["status"] == "pass"
    assert wrong["models"]["cnn"]["status"] == "wrong" and wrong["models"]["cnn"]["max_error"] == pytest.approx(1e-3, rel=0.05)
    assert "outside" in wrong["models"]["cnn"]["error"]
    # one importer that kills its worker: recorded, and the next case still ran in a new worker
    crash = cells["fakea"]["crashmlp"]
    assert crash["models"]["mlp"]["status"] == "crash" and crash["models"]["cnn"]["status"] == "pass"
    assert run[0]["importers"]["crashmlp"]["workers_started"] >= 3
    # no run_many: recorded as such, with what the one-input path gave
    only = cells["fakea"]["runonly"]
    assert only["status"] == "no_run_many" and only["passed"] == 0
    assert {m["via_run"] for m in only["models"].values()} == {"pass"}
    # an importer whose environment does not start, an exporter that did not run or map a model
    assert cells["fakea"]["broken"]["status"] == "importer_unavailable"
    assert run[0]["importers"]["broken"]["status"] == "unavailable" and "NoSuchImporter" in run[0]["importers"]["broken"]["error"]
    assert cells["fakec"]["ref"]["models"]["cnn"]["status"] == "not_exported" and cells["fakec"]["ref"]["status"] == "partial"
    assert cells["fakegone"]["ref"]["status"] == "not_exported"


def test_cases_carry_the_export_tolerance(run: tuple[dict[str, Any], Path]) -> None:
    """fakeb's own output is off by NOISE: inside atol EXPORT_ATOL, outside the node tests' default tolerance."""
    model = MODELS_BY_ID["cnn"]
    y = model.reference(model.sample_input())
    assert NOISE < EXPORT_ATOL and np.any(NOISE > conformance_default_tol(y))
    cell = run[0]["cells"]["fakeb"]["ref"]
    assert cell["status"] == "pass" and cell["models"]["cnn"]["max_error"] == pytest.approx(NOISE, rel=0.2)


def conformance_default_tol(y: np.ndarray) -> np.ndarray:
    from harness.probes.conformance import ATOL, RTOL

    return np.asarray(ATOL + RTOL * np.abs(y))


def test_totals(run: tuple[dict[str, Any], Path]) -> None:
    t = run[0]["totals"]
    # ref: 5 exported cases pass; wrongcnn: 3 (the mlps); crashmlp: 2 (the cnns); runonly, broken: 0
    assert t["importers"]["ref"] == {"passed": 5, "of": 8, "exported": 5}
    assert t["importers"]["wrongcnn"]["passed"] == 3 and t["importers"]["crashmlp"]["passed"] == 2
    assert t["importers"]["runonly"]["passed"] == 0 and t["importers"]["broken"]["passed"] == 0
    assert t["exporters"]["fakea"] == {"passed": 4, "of": 10} and t["exporters"]["fakegone"]["passed"] == 0
    assert t["passed"] == 10 and t["of"] == 40


def test_schema_rejects_bad_documents(run: tuple[dict[str, Any], Path]) -> None:
    doc = run[0]
    bad = copy.deepcopy(doc)
    bad["cells"]["fakea"]["ref"]["status"] = "great"
    assert any("great" in e for e in portability.validate(bad))
    bad = copy.deepcopy(doc)
    del bad["cells"]["fakea"]["wrongcnn"]["models"]["cnn"]["error"]
    assert portability.validate(bad)
    bad = copy.deepcopy(doc)
    del bad["tolerance"]
    assert portability.validate(bad)
    bad = copy.deepcopy(doc)
    bad["cells"]["fakea"]["ref"]["max_error"] = -1
    assert portability.validate(bad)


def test_render(run: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    doc = run[0]
    md, page = render.write(doc, tmp_path / "matrix")
    text = md.read_text()
    assert "| **fakea** | 2/2 ok | 1/2 some | 1/2 some | 0/2 no run_many | 0/2 n/a | 4/10 |" in text
    assert "| fakea | wrongcnn | cnn | wrong |" in text
    html_text = page.read_text()
    assert render.OUTCOMES["partial"][0] in html_text and "max-width: 780px" in html_text
    assert html_text.count("<tr>") >= 1 + len(doc["exporters"]) + 1


def test_cli_render_and_errors(run: tuple[dict[str, Any], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(run[0]))
    assert cli.main(["portability", "--render", str(path)]) == 0
    assert (tmp_path / "doc.md").is_file() and (tmp_path / "doc.html").is_file()
    bad = dict(run[0], kind="other")
    path.write_text(json.dumps(bad))
    assert cli.main(["portability", "--render", str(path)]) == 2
    assert "not a valid portability document" in capsys.readouterr().err
    assert cli.main(["portability", "--models", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown ONNX model" in capsys.readouterr().err
    assert cli.main(["portability", "--exporters", "nosuchframework", "--out", str(tmp_path)]) == 2


def test_an_exporter_whose_own_output_misses_the_reference_fails_before_judging_importers(tmp_path: Path) -> None:
    from harness.probes import Context
    from harness.probes import portability as probe
    from harness.results import Status
    from tests.fakes.portability import FakeExporter, MisbuiltExporter

    good = probe.run(FakeExporter("cpu"), "mlp", Context("cpu", tmp_path / "a"))
    assert good.status == Status.OK and good.data["reference_max_error"] < 1e-6
    bad = probe.run(MisbuiltExporter("cpu"), "mlp", Context("cpu", tmp_path / "b"))
    assert bad.status == Status.FAILED and "float64 reference" in bad.reason
    assert bad.data["reference_max_error"] == pytest.approx(0.05, rel=1e-3)


def test_catalog_models_in_the_matrix_set_and_their_inference_reference() -> None:
    """The matrix's model set holds the catalog models; their reference runs batch norm with a fresh model's running
    statistics (inference), which differs from the training-mode reference the throughput suite checks."""
    from harness.catalog import reference_models
    from harness.catalog.onnx_models import EXPORT_MODELS_BY_ID

    assert {"mlp", "cnn", "lstm", "resblock", "vgg_mini", "transformer", "gru_lm", "resnet50"} <= set(EXPORT_MODELS_BY_ID)
    spec = EXPORT_MODELS_BY_ID["resblock"]
    model, x = spec.model(), spec.sample_input()
    assert "batch_norm" in model.kinds() and "add" in model.kinds()
    assert set(spec.weights()) == set(model.param_shapes())
    inference = spec.reference(x)
    training = reference_models.forward(model, spec.weights(), x)[0]
    assert inference.shape == (2, 10) and not np.allclose(inference, training, atol=1e-3)
    # batch norm alone in inference mode: gamma * x / sqrt(1 + eps) + beta
    from harness.catalog.models import NORM_EPS, Model, Node

    bn = Model("bn_only", "image", (2, 3, 4, 4), "class", 3, (Node("bn", "batch_norm", ("input",)),))
    p = {"bn.gamma": np.array([1.0, 2.0, 3.0]), "bn.beta": np.array([0.5, 0.0, -0.5])}
    xb = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    want = xb * p["bn.gamma"].reshape(1, -1, 1, 1) / np.sqrt(1 + NORM_EPS) + p["bn.beta"].reshape(1, -1, 1, 1)
    assert np.allclose(reference_models.forward(bn, p, xb, inference=True)[0], want)
    assert EXPORT_MODELS_BY_ID["transformer"].sample_input().dtype == np.int64


@pytest.mark.framework("torch")
def test_torch_exports_catalog_models_that_onnxruntime_runs(tmp_path: Path) -> None:
    """A real exporter on the matrix's catalog models (torch's virtualenv): the residual block with batch norm in
    inference mode and the LSTM export, their own outputs match the float64 reference, and onnxruntime agrees."""
    exporter = portability.prepare_exporter("torch", lambda text: None)
    ort = conformance.prepare_importer(conformance.ONNXRUNTIME, lambda text: None)
    doc = portability.run_matrix([exporter], [ort], ["resblock", "lstm"], tmp_path / "work", say=lambda text: None)
    assert portability.validate(doc) == []
    for model in ("resblock", "lstm"):
        row = doc["exporters"]["torch"]["models"][model]
        assert row["status"] == "exported" and row["reference_max_error"] < 1e-4, row
        assert doc["cells"]["torch"]["onnxruntime"]["models"][model]["status"] == "pass"
    assert "LSTM" in doc["exporters"]["torch"]["models"]["lstm"]["ops"]
