"""Suite time: `showdown run --quick` through the local runner (a worker process, as for a real framework) with
the fake NumPy adapter of tests/fakes, over one probe of each suite. The whole quick suite with that adapter takes
about a minute on two cores; this set takes about a second and crosses every suite's code path."""

from __future__ import annotations

import contextlib
import io
import json
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from harness import cli

PROBES = ("layers/dense", "graphs/define_by_run", "throughput/gemm/eager", "onnx/export/mlp", "numerics/coverage",
          "scale/allreduce")


@pytest.mark.usefixtures("fakes")
def test_quick_probe_set(benchmark: Any, tmp_path: Path) -> None:
    runs = count()

    def fresh_folder() -> tuple[tuple[Path], dict[str, Any]]:
        return (tmp_path / f"run{next(runs)}",), {}

    def run(out: Path) -> int:
        argv = ["run", "--framework", "fake_numpy", "--runner", "local", "--out", str(out), "--quick", "--new"]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return cli.main(argv + [a for p in PROBES for a in ("--probe", p)])

    assert benchmark.pedantic(run, setup=fresh_folder, rounds=3) == 0
    docs = sorted(tmp_path.glob("run*/fake_numpy-*.json"))
    assert docs and len(docs) == next(runs), "a run wrote no document"  # 3 rounds (1 with --benchmark-disable)
    records = json.loads(docs[-1].read_text(encoding="utf-8"))["records"]
    assert sorted(records) == sorted(PROBES)
    benchmark.extra_info["statuses"] = {p: records[p]["status"] for p in PROBES}
