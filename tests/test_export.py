"""showdown export --csv: the three files, their headers, values known from committed documents, and scores equal to
`showdown score --json` on the same input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from harness import cli, export

ROOT = Path(__file__).parent.parent
RESULTS = ROOT / "results"
TORCH = Path(__file__).parent / "data" / "compare" / "torch-cpu-20261130T055702Z.json"  # a committed run, unedited


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def test_headers_and_known_values_of_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "csv"
    assert cli.main(["export", "--csv", str(out), str(TORCH)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"{out / 'scores.csv'} (1 rows)", f"{out / 'ops.csv'} (32 rows)", f"{out / 'throughput.csv'} (18 rows)"]

    header, ops = _read(out / "ops.csv")
    assert header == ["framework", "device", "op", "status", "max_abs_error", "max_rel_error", "api"]
    by_op = {r["op"]: r for r in ops}
    assert by_op["dense"] == {"framework": "torch", "device": "cpu", "op": "dense", "status": "ok",
                              "max_abs_error": "1.415442305585657e-07", "max_rel_error": "1.5868380775143872e-07",
                              "api": "torch.nn.Linear"}
    # the largest over every case (conv2d's 'padded', its second) and every output (the LSTM's cell state, its third)
    assert by_op["conv2d"]["max_abs_error"] == "7.392312593168526e-07"
    assert by_op["lstm"]["max_abs_error"] == "8.248130300980705e-08"

    header, rows = _read(out / "throughput.csv")
    assert header == ["framework", "device", "workload", "mode", "precision", "status", "median_ms", "iqr_ms",
                      "steps_per_s", "samples"]
    gemm = next(r for r in rows if r["workload"] == "gemm" and r["mode"] == "eager")
    assert gemm == {"framework": "torch", "device": "cpu", "workload": "gemm", "mode": "eager", "precision": "fp32",
                    "status": "ok", "median_ms": "1.2141147916887955", "iqr_ms": "0.009048374996230898",
                    "steps_per_s": "823.6453479073683", "samples": "7"}
    unsupported = [r for r in rows if r["status"] == "unsupported"]
    assert [(r["workload"], r["mode"], r["median_ms"], r["samples"]) for r in unsupported] == [
        ("lstm_train", "compiled", "", ""), ("gru_lm_train", "compiled", "", "")]

    header, scores = _read(out / "scores.csv")
    assert header[:6] == ["framework", "device", "rubric", "rubric_version", "tier", "overall"]
    assert {"category:snc", "category:api", "category:platform", "criterion:ootb_ops", "raw:ootb_ops",
            "origin:ootb_ops"} <= set(header)
    assert [(r["framework"], r["rubric"], r["origin:ootb_ops"], r["raw:ootb_ops"]) for r in scores] == [
        ("torch", "showdown-2026", "measured", "31.0")]


def test_scores_equal_what_score_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["score", "--json", str(RESULTS)]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert cli.main(["export", "--csv", str(tmp_path), str(RESULTS)]) == 0
    capsys.readouterr()
    _, rows = _read(tmp_path / "scores.csv")
    assert [r["framework"] for r in rows] == [s["framework"] for s in expected["scores"]]
    assert len(rows) >= 6
    for row, s in zip(rows, expected["scores"]):
        assert row["rubric"] == expected["rubric"] and row["tier"] == (s["tier"] or "")
        assert float(row["overall"]) == s["overall"]
        for cat, value in s["categories"].items():
            assert row[f"category:{cat}"] == ("" if value is None else repr(float(value)))
        for cid, c in s["criteria"].items():
            assert row[f"criterion:{cid}"] == ("" if c["normalised"] is None else repr(float(c["normalised"])))
            assert (row[f"raw:{cid}"] == "") if c["raw"] is None else float(row[f"raw:{cid}"]) == c["raw"]
            assert row[f"origin:{cid}"] == c["origin"]
    _, ops = _read(tmp_path / "ops.csv")
    _, thr = _read(tmp_path / "throughput.csv")
    frameworks = {r["framework"] for r in rows}
    assert {r["framework"] for r in ops} == frameworks == {r["framework"] for r in thr}


def test_numbers_and_cells() -> None:
    assert export._num(None) == "" and export._num(float("nan")) == "" and export._num(True) == ""
    assert export._num(3) == "3" and export._num(0.1) == "0.1"
    text = export.to_csv(["a", "b"], [["x,y", 'say "hi"']])
    assert text == 'a,b\n"x,y","say ""hi"""\n'


@pytest.mark.parametrize("args", [["export", "--csv", "{tmp}/out", "{tmp}/missing"],
                                  ["export", "--csv", "{tmp}/file/out", str(TORCH)]])
def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    (tmp_path / "file").write_text("not a folder")
    assert cli.main([a.format(tmp=tmp_path) for a in args]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("showdown: error: ") and "Traceback" not in captured.err
