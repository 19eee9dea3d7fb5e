"""showdown compare: the Mann-Whitney U test, the pairing of runs, the classification of every change, the renderers and
the command. Real data: two committed CPU runs of torch (tests/data/compare/: the run of 2026-11-26, catalog ops32-v1,
from commit dc1134d, and the run of 2026-11-30, ops32-v2, from results/)."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import cli
from harness import compare as cmp
from harness.report import compare as render
from harness.results import load_document, validate_document

DATA = Path(__file__).parent / "data" / "compare"
OLD = DATA / "torch-cpu-20261126T091708Z.json"
NEW = DATA / "torch-cpu-20261130T055702Z.json"


# ------------------------------------------------------------------------------------------------ Mann-Whitney U
def test_mann_whitney_separated_samples_hand_computed() -> None:
    # a = 1,2,3 and b = 4,5,6: ranks of a 1+2+3 = 6, U_a = 6 - 3*4/2 = 0; mean n1*n2/2 = 4.5;
    # variance n1*n2*(n+1)/12 = 9*7/12 = 5.25; z = (|0 - 4.5| - 0.5)/sqrt(5.25) = 1.745743; p = erfc(z/sqrt 2) = 0.080856
    r = cmp.mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert r.u == 0.0
    assert r.z == pytest.approx(-1.7457431, abs=1e-6)
    assert r.p == pytest.approx(0.0808556, abs=1e-6)
    # the same samples the other way round: U_b = n1*n2 - U_a = 9, the same p
    s = cmp.mann_whitney_u([4, 5, 6], [1, 2, 3])
    assert s.u == 9.0 and s.p == pytest.approx(r.p)


def test_mann_whitney_with_ties_hand_computed() -> None:
    # pooled 1a 2a 2a 2b 3a 3b 4b 5b: ranks 1, (2+3+4)/3 = 3 for the 2s, (5+6)/2 = 5.5 for the 3s, 7, 8.
    # R_a = 1 + 3 + 3 + 5.5 = 12.5, U_a = 12.5 - 4*5/2 = 2.5. Ties: a group of 3 and one of 2, sum(t^3 - t) = 24 + 6 = 30;
    # variance = 16/12 * (9 - 30/(8*7)) = 11.285714; z = (|2.5 - 8| - 0.5)/sqrt(11.285714) = 1.488351; p = 0.136658
    r = cmp.mann_whitney_u([1, 2, 2, 3], [2, 3, 4, 5])
    assert r.u == 2.5
    assert r.p == pytest.approx(0.1366582, abs=1e-6)
    # without the tie correction the variance would be 16*9/12 = 12 and p = erfc(5/sqrt(12)/sqrt 2) = 0.1489: not this
    assert abs(r.p - math.erfc(5 / math.sqrt(12) / math.sqrt(2))) > 0.01


def test_mann_whitney_rank_average_and_degenerate_cases() -> None:
    assert cmp.rank_average(np.array([10.0, 20.0, 10.0, 30.0])).tolist() == [1.5, 3.0, 1.5, 4.0]
    assert cmp.mann_whitney_u([1, 1, 1], [1, 1]).p == 1.0  # all tied: nothing tells them apart
    with pytest.raises(ValueError):
        cmp.mann_whitney_u([], [1.0])
    with pytest.raises(ValueError):
        cmp.mann_whitney_u([1.0, float("nan")], [1.0])


def test_classify_needs_both_the_test_and_the_factor() -> None:
    assert cmp.classify(2.0, 0.002) == cmp.SLOWER
    assert cmp.classify(0.5, 0.002) == cmp.FASTER
    assert cmp.classify(2.0, 0.2) == cmp.NOT_SIGNIFICANT  # a large ratio from noise
    assert cmp.classify(1.05, 0.001) == cmp.NOT_SIGNIFICANT  # a real but small change, inside the factor
    assert cmp.classify(1 / 1.05, 0.001) == cmp.NOT_SIGNIFICANT
    assert cmp.classify(1.11, 0.049) == cmp.SLOWER and cmp.classify(1.11, 0.05) == cmp.NOT_SIGNIFICANT


# ------------------------------------------------------------------------------------------------ synthetic documents
def _set_samples(doc: dict[str, Any], probe: str, samples_s: list[float]) -> None:
    timing = doc["records"][probe]["data"]["timing"]
    timing["samples_s"] = list(samples_s)
    timing["median_s"] = float(np.median(samples_s))


NOISY_A = [1.0e-3, 1.5e-3, 0.8e-3, 2.0e-3, 1.2e-3, 0.9e-3, 1.7e-3]
NOISY_B = [1.6e-3, 0.85e-3, 1.9e-3, 1.3e-3, 2.1e-3, 0.95e-3, 1.45e-3]


@pytest.fixture
def synthetic() -> tuple[dict[str, Any], dict[str, Any]]:
    """B made from A (the committed torch run): layers/conv2d fails, gemm/eager takes twice as long (every sample x2),
    gemm/compiled is a resample of A's own samples, conv2d/eager is a noisy tie whose medians differ by 21%, and
    conv2d/compiled is 3% slower in every sample (significant by the test, inside the factor)."""
    a = load_document(NEW)
    b = copy.deepcopy(a)
    rec = b["records"]["layers/conv2d"]
    rec["status"] = "failed"
    rec["reason"] = "output y: max abs error 3.1e-02 over the tolerance"
    rec["data"]["cases"]["padded"]["status"] = "failed"
    _set_samples(b, "throughput/gemm/eager", [2 * s for s in a["records"]["throughput/gemm/eager"]["data"]["timing"]["samples_s"]])
    rng = np.random.default_rng(13)
    own = a["records"]["throughput/gemm/compiled"]["data"]["timing"]["samples_s"]
    _set_samples(b, "throughput/gemm/compiled", [float(x) for x in rng.choice(own, size=len(own), replace=True)])
    _set_samples(a, "throughput/conv2d/eager", NOISY_A)
    _set_samples(b, "throughput/conv2d/eager", NOISY_B)
    slow = a["records"]["throughput/conv2d/compiled"]["data"]["timing"]["samples_s"]
    _set_samples(b, "throughput/conv2d/compiled", [s * 1.03 for s in slow])
    b["run_id"] = "torch-cpu-synthetic"
    assert validate_document(a) == [] and validate_document(b) == []
    return a, b


def _timing(pair: cmp.PairComparison, probe: str) -> cmp.TimingChange:
    return next(t for t in pair.timings if t.probe == probe)


def test_synthetic_flip_and_timings_classified_exactly(synthetic: tuple[dict[str, Any], dict[str, Any]]) -> None:
    a, b = synthetic
    result = cmp.compare([a], [b])
    assert len(result.pairs) == 1 and not result.only_a and not result.only_b
    pair = result.pairs[0]
    assert [(s.probe, s.before, s.after) for s in pair.status_changes] == [("layers/conv2d", "ok", "failed")]
    assert pair.status_changes[0].reason.startswith("output y")
    assert [(o.op, o.before, o.after, o.cases) for o in pair.op_changes] == [("conv2d", "ok", "failed", [("padded", "ok", "failed")])]

    doubled = _timing(pair, "throughput/gemm/eager")
    assert doubled.ratio == pytest.approx(2.0)
    assert doubled.u == 0.0 and doubled.p == pytest.approx(math.erfc((24.5 - 0.5) / math.sqrt(49 * 15 / 12) / math.sqrt(2)))
    assert doubled.verdict == cmp.SLOWER

    resampled = _timing(pair, "throughput/gemm/compiled")
    assert resampled.verdict == cmp.NOT_SIGNIFICANT and resampled.p is not None and resampled.p > 0.05

    noisy = _timing(pair, "throughput/conv2d/eager")
    # a comparison of medians alone would call this 21% slower; the test on the samples says it is noise
    assert noisy.ratio == pytest.approx(1.45 / 1.2) and noisy.ratio > cmp.FACTOR
    assert noisy.p is not None and noisy.p > 0.3
    assert noisy.verdict == cmp.NOT_SIGNIFICANT

    small = _timing(pair, "throughput/conv2d/compiled")
    # every sample 3% slower: the test alone would call it (p < 0.05), the factor does not
    assert small.p is not None and small.p < 0.05 and small.ratio == pytest.approx(1.03)
    assert small.verdict == cmp.NOT_SIGNIFICANT

    others = [t for t in pair.timings if t.probe not in {doubled.probe, resampled.probe, noisy.probe, small.probe}]
    assert others and all(t.verdict == cmp.NOT_SIGNIFICANT and t.ratio == 1.0 for t in others)
    assert result.counts() == {"status_changed": 1, "faster": 0, "slower": 1, "not_comparable": 0,
                               "unchanged": len(a["records"]) - 2, "one_side_probes": 0, "one_side_frameworks": 0}
    assert result.summary() == (f"1 probe changed status, 1 timing significantly faster/slower (0 faster, 1 slower), "
                                f"{len(a['records']) - 2} unchanged")


def test_pairing_by_device_then_by_framework_and_one_sided(synthetic: tuple[dict[str, Any], dict[str, Any]]) -> None:
    a, b = synthetic
    gpu = copy.deepcopy(b)
    gpu["device"] = "cuda"
    other = copy.deepcopy(a)
    other["framework"] = "chainer"
    only_b = copy.deepcopy(b)
    only_b["framework"] = "jax"
    result = cmp.compare([a, other], [gpu, only_b])
    assert [(p.framework, p.device_a, p.device_b) for p in result.pairs] == [("torch", "cpu", "cuda")]
    assert "paired by framework" in result.pairs[0].note
    assert [(u.framework, u.why) for u in result.only_a] == [("chainer", "no run of it on the other side")]
    assert [u.framework for u in result.only_b] == ["jax"]
    # the same device on both sides wins over pairing across devices
    both = cmp.compare([a], [gpu, b])
    assert [(p.device_a, p.device_b, p.note) for p in both.pairs] == [("cpu", "cpu", "")]
    assert [(u.framework, u.device) for u in both.only_b] == [("torch", "cuda")]


def test_probes_on_one_side_and_unavailable_documents(synthetic: tuple[dict[str, Any], dict[str, Any]]) -> None:
    a, b = synthetic
    del b["records"]["graphs/compiled"]
    unavailable = {"schema": "showdown-result", "kind": "unavailable", "framework": "cntk", "device": "cpu",
                   "run_id": "cntk-cpu-x", "reason": "no wheel for Python 3.11"}
    result = cmp.compare([a], [b, unavailable])
    assert result.pairs[0].only_a == ["graphs/compiled"]
    assert [(u.framework, u.why) for u in result.only_b] == [("cntk", "did not run: no wheel for Python 3.11")]
    assert "1 probe on one side only" in result.summary()


# ------------------------------------------------------------------------------------------------ two committed runs
def test_two_committed_runs_of_torch() -> None:
    result = cmp.compare([load_document(OLD)], [load_document(NEW)], str(OLD), str(NEW))
    (pair,) = result.pairs
    assert (pair.run_a, pair.run_b, pair.version_a, pair.version_b) == (
        "torch-cpu-20261126T091708Z", "torch-cpu-20261130T055702Z", "2.13.0+cpu", "2.13.0+cpu")
    assert "catalog ops32-v1 in A, ops32-v2 in B" in pair.note
    # the real change between the two runs: torch.compile's LSTM step became 'unsupported' (dynamo cannot capture it)
    assert [(s.probe, s.before, s.after) for s in pair.status_changes] == [("throughput/lstm_train/compiled", "ok", "unsupported")]
    assert "torch._dynamo" in pair.status_changes[0].reason
    assert pair.op_changes == []  # every layer ok in both; the older run records no cases, so only statuses count
    assert pair.only_a == [] and pair.only_b == [
        f"throughput/{w}/{m}" for w in ("gru_lm_train", "resnet50_train", "transformer_train", "vgg_mini_train")
        for m in ("compiled", "eager")]
    verdicts = {t.probe: t.verdict for t in pair.timings}
    # the training workloads were redefined between the catalogs: their timings are not compared
    assert {p for p, v in verdicts.items() if v == cmp.NOT_COMPARABLE} == {
        "throughput/cnn_train/compiled", "throughput/cnn_train/eager", "throughput/lstm_train/eager",
        "throughput/mlp_train/compiled", "throughput/mlp_train/eager"}
    conv = _timing(pair, "throughput/conv2d/eager")
    assert conv.verdict == cmp.FASTER and conv.ratio == pytest.approx(0.678 / 0.758, abs=0.005)
    assert conv.u == 49.0  # every new sample below every old one
    assert {p: v for p, v in verdicts.items() if p.startswith(("throughput/gemm", "throughput/conv2d/compiled"))} == {
        "throughput/gemm/eager": cmp.NOT_SIGNIFICANT, "throughput/gemm/compiled": cmp.NOT_SIGNIFICANT,
        "throughput/conv2d/compiled": cmp.NOT_SIGNIFICANT}
    assert result.summary() == ("1 probe changed status, 1 timing significantly faster/slower (1 faster, 0 slower), "
                                "45 unchanged, 5 timings not comparable, 8 probes on one side only")


# ------------------------------------------------------------------------------------------------ renderers and command
def test_renderers_show_every_change_and_escape(synthetic: tuple[dict[str, Any], dict[str, Any]]) -> None:
    a, b = synthetic
    b["records"]["layers/conv2d"]["reason"] = "<script>alert(1)</script> | [bold]x[/bold]"
    result = cmp.compare([a], [b], "<a>", "runs|b")
    md = render.markdown(result)
    assert "| throughput/gemm/eager" not in md  # timings are shown by workload and mode
    assert re.search(r"\| gemm \| eager \| [0-9.]+ \| [0-9.]+ \| 2\.00 \| <0\.001|\| gemm \| eager \| [0-9.]+ \| [0-9.]+ \| 2\.00 \| 0\.002", md)
    assert "\\| [bold]" in md and "runs\\|b" in md
    assert result.summary() in md
    page = render.html(result)
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;a&gt;" in page
    assert '<tr class="slower">' in page and page.count('<tr class="slower">') == 1
    assert "http" not in page.replace("http-equiv", "")  # nothing fetched


def test_terminal_fits_its_width(synthetic: tuple[dict[str, Any], dict[str, Any]]) -> None:
    from rich.console import Console

    a, b = synthetic
    b["records"]["layers/conv2d"]["reason"] = "a very long reason " * 20
    con = Console(width=80, record=True, force_terminal=False, highlight=False)
    render.terminal(cmp.compare([a], [b]), con)
    text = con.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "layers/conv2d" in text and "slower" in text and "[bold]" not in text
    flat = " ".join(text.split())
    assert flat.endswith("1 probe changed status, 1 timing significantly faster/slower (0 faster, 1 slower), "
                         f"{len(a['records']) - 2} unchanged")


def test_command_writes_markdown_and_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    md, page = tmp_path / "c.md", tmp_path / "c.html"
    assert cli.main(["compare", str(OLD), str(NEW), "--markdown", str(md), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "1 probe changed status" in out and f"wrote {md}" in out and f"wrote {page}" in out
    assert "throughput/lstm_train/compiled" in md.read_text() and page.read_text().startswith("<!DOCTYPE html>")


def test_command_pairs_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / OLD.name).write_bytes(OLD.read_bytes())
    (tmp_path / "b" / NEW.name).write_bytes(NEW.read_bytes())
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "1 probe changed status" in capsys.readouterr().out


@pytest.mark.parametrize("content", [None, b"{not json", b'{"schema": "other"}', b""])
def test_command_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_bytes(content)
    assert cli.main(["compare", str(bad), str(NEW)]) == 2
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert lines[-1].startswith("showdown: error: ") and str(bad) in lines[-1] and "Traceback" not in captured.err
    assert captured.out == ""


def test_command_unwritable_output_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compare", str(OLD), str(NEW), "--html", str(tmp_path / "no" / "such" / "c.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("showdown: error: cannot write")


def test_committed_data_are_the_committed_runs() -> None:
    """The fixture documents are real runs, unedited: valid, complete, and the newer one as in results/ at the time."""
    for path in (OLD, NEW):
        doc = load_document(path)
        assert validate_document(doc) == [] and doc["complete"] is True
    assert json.loads(NEW.read_text())["harness"]["git_commit"] == "9ced5e629d952a68fb1fca4f67750ee24be9fa09"
