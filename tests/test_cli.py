"""The command line: one-line errors for bad input, and the commands a user runs first."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
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
    assert cli.main(["report", str(tmp_path), "--markdown"]) == 0
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


# ------------------------------------------------------------------------------------------------ CLI polish
def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_subcommand_has_a_description_and_its_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    subs = subcommands()
    assert {"list", "run", "report", "score", "validate", "images", "lock"} <= set(subs)
    for name, sub in subs.items():
        assert sub.description and len(sub.description.split()) >= 8, f"`showdown {name} --help` has no description"
        with pytest.raises(SystemExit) as exc:
            cli.main([name, "--help"])
        assert exc.value.code == 0, name
        out = capsys.readouterr().out
        assert out.startswith(f"usage: showdown {name}") and sub.description.split()[0] in out, name
    for name in ("list", "run", "images", "lock", "report", "score", "validate"):  # these say how they are used
        assert "example" in (subs[name].description or ""), name


def test_help_wraps_paragraphs_and_keeps_example_lines() -> None:
    text = "A long paragraph " * 12 + "\n\nexamples:\n  showdown report results --out-dir /tmp/a-long-example-line-kept-whole"
    lines = cli.HelpFormatter("showdown")._fill_text(text, 40, "")
    assert all(len(line) <= 40 for line in lines.splitlines()[:-1])
    assert lines.splitlines()[-1] == "  showdown report results --out-dir /tmp/a-long-example-line-kept-whole"


def test_exit_codes_are_distinct_and_documented() -> None:
    codes = {"usage": cli.EXIT_USAGE, "failed": cli.EXIT_SOME_FAILED, "environment": cli.EXIT_ENVIRONMENT,
             "invalid input": cli.EXIT_INVALID_INPUT, "storage": cli.EXIT_STORAGE, "busy": cli.EXIT_BUSY,
             "interrupted": cli.EXIT_INTERRUPTED, "pipe": cli.EXIT_BROKEN_PIPE}
    assert len(set(codes.values())) == len(codes) and 0 not in codes.values()
    epilog = cli.build_parser().epilog or ""
    readme = (REPO / "README.md").read_text()
    for code in codes.values():
        assert re.search(rf"^  {code} ", epilog, re.MULTILINE), f"exit status {code} not in `showdown --help`"
        assert re.search(rf"^\| {code} \|", readme, re.MULTILINE), f"exit status {code} not in the README's table"


def test_usage_error_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["score", "/nonexistent/results"]) == cli.EXIT_USAGE == 2
    assert "no such file or folder" in one_line_error(capsys)
    with pytest.raises(SystemExit) as exc:  # argparse's own refusals are usage errors too
        cli.main(["report", "results", "--rubric"])
    assert exc.value.code == 2


@pytest.mark.usefixtures("fakes")
def test_environment_that_cannot_be_built_exits_4_not_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", "--framework", "fake_numpy", "--runner", "system", "--python", str(tmp_path / "nopython"),
                     "--out", str(tmp_path / "out"), "--suite", "layers"])
    assert code == cli.EXIT_ENVIRONMENT == 4
    assert "no interpreter" in one_line_error(capsys)


def test_virtualenv_whose_requirements_fail_exits_4(fakes: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A real venv build: pip is told to install a distribution that no index holds (offline: --no-index)."""
    from harness import registry

    fw = tmp_path / "brokenfw"
    fw.mkdir()
    (fw / "requirements-cpu.txt").write_text("--no-index\nshowdown-test-no-such-distribution==1.0\n")
    monkeypatch.setenv("SHOWDOWN_HOME", str(tmp_path / "home"))
    registry.register(registry.FrameworkInfo("brokenfw", "broken", "tests.fakes.adapters:NumpyAdapter", fw, "test"))
    if True:  # the registry is reset by the fakes fixture
        code = cli.main(["run", "--framework", "brokenfw", "--runner", "venv", "--out", str(tmp_path / "out"),
                         "--suite", "layers"])
        err = capsys.readouterr().err
        assert code == cli.EXIT_ENVIRONMENT, err
        assert "Traceback" not in err and "showdown: error:" in err
        # several frameworks asked for: "some failed" (3) whatever the reason, the table says which and why
        code = cli.main(["run", "--framework", "brokenfw,fake_unavailable", "--runner", "venv", "--out",
                         str(tmp_path / "out"), "--suite", "layers"])
        assert code == cli.EXIT_SOME_FAILED
        out = capsys.readouterr().out
        assert "brokenfw" in out and "environment failed" in out


def test_a_framework_that_fails_to_run_exits_3(fakes: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", "--framework", "fake_unavailable", "--runner", "local", "--out", str(tmp_path), "--suite", "layers"])
    assert code == cli.EXIT_SOME_FAILED == 3
    assert "nosuchframework" in one_line_error(capsys)


def committed_results(tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True)
    for p in sorted((REPO / "tests" / "data").glob("*.json")):
        (tmp_path / p.name).write_text(p.read_text())
    return tmp_path


def test_report_prints_a_summary_not_the_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = committed_results(tmp_path / "in")
    assert cli.main(["report", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "# showdown report" not in out and "| " not in out
    assert len(out.splitlines()) <= 10, out
    assert out.startswith("2 runs on cpu: fake_crash, torch\n")
    assert "top of the scores" in out and "  1. torch" in out
    assert f"showdown report {folder} --markdown " in out and f"showdown report {folder} --out-dir DIR " in out
    assert cli.main(["report", str(folder), "--markdown"]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("# showdown report") and len(markdown.splitlines()) > 50


def test_report_with_out_dir_says_where_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = committed_results(tmp_path / "in")
    assert cli.main(["report", str(folder), "--out-dir", str(tmp_path / "out"), "--no-timestamp"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"report: {tmp_path / 'out' / 'report.md'} and {tmp_path / 'out' / 'report.html'} (2 runs, ")
    assert "  1. torch" in out and "# showdown report" not in out
    written = (tmp_path / "out" / "report.md").read_text()
    assert cli.main(["report", str(folder), "--out-dir", str(tmp_path / "out"), "--no-timestamp", "--markdown"]) == 0
    both = capsys.readouterr()
    assert both.out == written  # stdout is the Markdown alone; where it wrote goes to stderr
    assert both.err.startswith("report: ")


def test_top_scores_rank_by_overall_and_skip_unscored(capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace as NS

    rubric = NS(id="r", version=1)
    scores = [NS(framework="a", overall=50.0, tier=None), NS(framework="bbb", overall=40.0, tier="T2"),
              NS(framework="c", overall=30.0, tier=None), NS(framework="d", overall=20.0, tier=None),
              NS(framework="e", overall=None, tier=None)]
    cli._print_top_scores(scores, rubric)
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("1 more in the report):")  # d is the 4th scored; e has no overall and is not counted
    assert out[1:] == ["  1. a     50.0", "  2. bbb   40.0  T2", "  3. c     30.0"]
    cli._print_top_scores(scores[4:], rubric)
    assert "no framework has an overall score" in capsys.readouterr().out


@pytest.mark.parametrize("columns", [60, 80])
def test_score_fits_the_terminal_and_never_cuts_a_name(columns: int) -> None:
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "dumb", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "harness", "score", "results"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert "…" not in proc.stdout.split("categories")[0]  # names, tiers and figures whole
    names = {json.loads(p.read_text())["framework"] for p in (REPO / "results").glob("*.json")}
    assert len(names) >= 10
    first_cells = {line.split()[0] for line in lines if line.strip()}
    for name in names:
        assert name in first_cells, f"{name} not whole at {columns} columns"


def test_score_table_keeps_one_table_when_it_fits() -> None:
    from types import SimpleNamespace as NS

    rubric = NS(id="r", version=1, title="t", categories=[NS(id="x", name="Some long category name")])
    scores = [NS(framework="a-rather-long-framework-name", tier="T1", overall=1.0, categories={"x": 2.0}, score_2018=None)]
    assert len(cli._score_tables(scores, [], rubric, 200)) == 1
    narrow = cli._score_tables(scores, [], rubric, 50)
    assert len(narrow) == 2 and [c.header for c in narrow[1].columns] == ["framework", "Some long category name"]


@pytest.mark.parametrize("args", [["score", "results", "--json"], ["list"], ["score", "results"],
                                  ["report", "results", "--markdown"]])
def test_a_closed_pipe_ends_quietly(args: list[str]) -> None:
    """The reader goes away before the output comes (as `| head -1` does once it has its line): no traceback, exit
    141 (128 + SIGPIPE, what a shell reports for `yes | head -1`). The read end is closed before the command has
    written anything (it is still importing), so its first write meets the closed pipe every time."""
    read, write = os.pipe()
    os.close(read)
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=REPO, stdout=write,
                            stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "100"})
    os.close(write)
    _, err_bytes = proc.communicate(timeout=120)
    err = err_bytes.decode()
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert proc.returncode == cli.EXIT_BROKEN_PIPE, err


def test_a_pipe_read_to_the_end_is_not_an_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", "score", "results", "--json"], cwd=REPO, capture_output=True,
                          timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["scores"]


@pytest.mark.usefixtures("fakes")
def test_rounds_reaches_the_timing_and_the_document(tmp_path: Path) -> None:
    """The timing warning tells the user to raise --rounds: the option exists and changes what is measured."""
    from harness.results import load_document

    args = ["run", "--framework", "fake_numpy", "--runner", "local", "--quick", "--probe", "throughput/gemm/eager"]
    assert cli.main([*args, "--out", str(tmp_path / "six"), "--rounds", "6"]) == 0
    assert cli.main([*args, "--out", str(tmp_path / "default")]) == 0
    (six,) = (tmp_path / "six").glob("*.json")
    (default,) = (tmp_path / "default").glob("*.json")
    timing = load_document(six)["records"]["throughput/gemm/eager"]["data"]["timing"]
    assert timing["rounds"] == 6 and len(timing["samples_s"]) == 6
    assert load_document(six)["config"]["rounds"] == 6
    assert load_document(default)["records"]["throughput/gemm/eager"]["data"]["timing"]["rounds"] == 5  # --quick's
    assert "rounds" not in load_document(default)["config"]


def test_too_few_rounds_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--framework", "torch", "--rounds", "3"])
    assert exc.value.code == cli.EXIT_USAGE
    assert "at least 5 rounds" in capsys.readouterr().err


def test_the_unsteady_timing_warning_names_an_option_that_exists() -> None:
    from harness import timing

    values = itertools.accumulate(itertools.cycle([1.0, 3.0, 1.0, 7.0, 2.0]))  # a clock whose rounds vary widely
    clock, timing.CLOCK = timing.CLOCK, lambda: next(values)  # type: ignore[assignment]
    try:
        noisy = timing.measure(lambda: None, config=timing.TimingConfig(rounds=5, min_round_s=0, warmup_s=0))
    finally:
        timing.CLOCK = clock
    options = set(re.findall(r"--[a-z][a-z-]+", " ".join(noisy.warnings)))
    run = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
    known = {o for a in run._actions for o in a.option_strings}
    assert options and options <= known, (noisy.warnings, options)


def test_the_frameworks_table_shows_each_result_path_whole(fakes: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Several frameworks at 80 columns: the path of each document (what the user opens next) is folded, not cut."""
    monkeypatch.setenv("COLUMNS", "80")
    out_dir = tmp_path / "a-rather-long-folder-name-for-the-results-of-this-run"
    code = cli.main(["run", "--framework", "fake_numpy,fake_unavailable", "--runner", "local", "--out", str(out_dir),
                     "--probe", "layers/dense"])
    assert code == cli.EXIT_SOME_FAILED
    out = capsys.readouterr().out
    table = out[out.index("result or reason"):]
    cells = "".join(line.split("│")[3].strip() for line in table.splitlines() if line.count("│") == 4)
    written = next(out_dir.glob("fake_numpy-cpu-*.json"))
    assert str(written) in cells, table
    assert "…" not in table
