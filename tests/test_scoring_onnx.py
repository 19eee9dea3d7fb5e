"""The 2026 rubric's ONNX criteria (version 3): export is the share of the model set that round-trips, import is the
node-test pass rate (and the matrix share when there is one), each doubled for a built-in tool; "2/2" on the suite's
two hand-built models no longer decides import."""

from __future__ import annotations

from typing import Any

import pytest

from harness.scoring import measured
from harness.scoring import rubric as rb


def _doc(export: list[tuple[str, bool]], imports: list[tuple[str, bool]]) -> dict[str, Any]:
    recs: dict[str, Any] = {}
    for i, (status, builtin) in enumerate(export):
        recs[f"onnx/export/m{i}"] = {"suite": "onnx", "status": status, "reason": "", "data": {"builtin": builtin, "exporter": "x"}}
    for i, (status, builtin) in enumerate(imports):
        recs[f"onnx/import/m{i}"] = {"suite": "onnx", "status": status, "reason": "no such importer" if status != "ok" else "",
                                     "data": {"builtin": builtin, "importer": "y"}}
    return {"records": recs}


def _conformance(passed: int, cases: int, below: tuple[int, int] | None, max_opset: int | None) -> dict[str, Any]:
    rate = {"tested": {"passed": passed, "cases": cases, "rate": passed / cases}}
    if below:
        rate["at_or_below_max_opset"] = {"passed": below[0], "cases": below[1], "rate": below[0] / below[1]}
    return {"importer": {"name": "fw", "max_opset": max_opset}, "summary": {"pass_rate": rate}}


def test_export_is_the_share_that_round_trips_doubled_when_built_in() -> None:
    assert measured.onnx_export_share(_doc([("ok", True), ("ok", True)], [])).value == 2.0
    assert measured.onnx_export_share(_doc([("ok", False), ("ok", False)], [])).value == 1.0
    assert measured.onnx_export_share(_doc([("ok", True), ("failed", False)], [])).value == 1.0  # half, built in
    assert measured.onnx_export_share(_doc([("unsupported", False)] * 2, [])).value == 0.0
    assert measured.onnx_export_share(_doc([("unmapped", False), ("ok", True)], [])).value is None


def test_two_of_two_no_longer_decides_import() -> None:
    doc = _doc([], [("ok", False), ("ok", False)])
    c = measured.onnx_import_measured(doc, None)
    assert c.value is None and "no conformance document" in c.explanation
    c = measured.onnx_import_measured(doc, _conformance(300, 1378, (300, 900), 21))
    assert c.value == pytest.approx(300 / 900) and "opset <= 21" in c.explanation
    c = measured.onnx_import_measured(doc, _conformance(300, 1378, (300, 900), None))  # no opset named: every case
    assert c.value == pytest.approx(300 / 1378)
    built_in = _doc([], [("ok", True), ("ok", True)])
    assert measured.onnx_import_measured(built_in, _conformance(500, 1000, None, None)).value == pytest.approx(1.0)
    with_matrix = measured.onnx_import_measured(doc, _conformance(500, 1000, None, None), (3, 4))
    assert with_matrix.value == pytest.approx((0.5 + 0.75) / 2) and "matrix 3/4" in with_matrix.explanation


def test_a_framework_without_any_importer_scores_zero() -> None:
    c = measured.onnx_import_measured(_doc([], [("unsupported", False)] * 2), None)
    assert c.value == 0.0 and "no such importer" in c.explanation


def test_the_2026_rubric_states_the_mapping_and_2018_is_untouched() -> None:
    r26 = rb.load("showdown-2026")
    assert r26.version >= 3  # 3 brought these measures; later versions keep them
    assert r26.criteria["onnx_export"].measure == "onnx_export_share"
    assert r26.criteria["onnx_import"].measure == "onnx_import_conformance"
    r18 = rb.load("showdown-2018")
    assert r18.criteria["onnx"].measure == "onnx"


def test_score_and_report_read_the_conformance_folder(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import shutil
    from pathlib import Path

    from harness import cli

    repo = Path(__file__).resolve().parent.parent / "results"
    folder = tmp_path / "r"
    (folder / "conformance").mkdir(parents=True)
    shutil.copy(next(repo.glob("torch-cpu-*.json")), folder)
    shutil.copy(next((repo / "conformance").glob("torch-conformance-*.json")), folder / "conformance")
    (folder / "conformance" / "broken.json").write_text('{"kind": "conformance"}')
    assert cli.main(["score", str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    torch = json.loads(captured.out)["scores"][0]["criteria"]["onnx_import"]
    assert torch["raw"] is not None and torch["raw"] < 1 and "node tests" in torch["explanation"]
    assert "skipped" in captured.err and "broken.json" in captured.err and "not a valid conformance document" in captured.err
    assert cli.main(["report", str(folder), "--out-dir", str(folder)]) == 0
    md = (folder / "report.md").read_text()
    assert "## ONNX importer conformance" in md and "| torch | onnx2torch " in md
    assert "ONNX importer conformance" in (folder / "report.html").read_text()


def test_the_matrix_share_counts_only_the_other_frameworks_exports() -> None:
    def cell(passed: int) -> dict[str, Any]:
        return {"passed": passed, "models_total": 2}

    matrix = {"importers": {"a": {}, "b": {}},
              "cells": {"a": {"a": cell(0), "b": cell(2)}, "b": {"a": cell(1), "b": cell(2)}, "c": {"a": cell(2), "b": cell(0)}}}
    assert measured.portability_share(matrix, "a") == (3, 4)  # b's 1/2 and c's 2/2; its own 0/2 left out
    assert measured.portability_share(matrix, "b") == (2, 4)
    assert measured.portability_share(matrix, "z") is None


def test_the_report_shows_the_committed_matrix() -> None:
    from pathlib import Path

    md = (Path(__file__).resolve().parent.parent / "results" / "report.md").read_text()
    assert "## ONNX portability matrix (exporter x importer)" in md and "| **mxnet** |" in md


def test_export_share_comes_from_the_matrix_when_it_holds_the_exporter() -> None:
    """v4: the matrix's onnxruntime cell (the whole model set) replaces the run's two export probes; built in or not is
    still the run's provenance verdict. A scorer that kept using the run's 2/2 would give 2.0 here."""
    matrix = {"cells": {"a": {"onnxruntime": {"passed": 5, "models_total": 8}, "b": {"passed": 8, "models_total": 8}}}}
    share = measured.export_share(matrix, "a")
    assert share == (5, 8)
    assert measured.export_share(matrix, "b") is None  # no row for b
    assert measured.export_share({"cells": {"a": {"b": {"passed": 1, "models_total": 1}}}}, "a") is None
    built_in = measured.onnx_export_share(_doc([("ok", True), ("ok", True)], []), share)
    assert built_in.value == pytest.approx(2 * 5 / 8) and "portability matrix: 5/8" in built_in.explanation
    assert "portability/onnxruntime" in built_in.evidence
    separate = measured.onnx_export_share(_doc([("ok", False), ("ok", False)], []), share)
    assert separate.value == pytest.approx(5 / 8)
    assert measured.onnx_export_share(_doc([("unmapped", False)], []), share).value is None  # no exporter, no score
