"""The report (Markdown and the self-contained HTML page) over results/, through `showdown report --out-dir`: the
command is the stable entry, whatever the renderers' own signatures become."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

from harness import cli
from harness.results import is_run, load_document


def test_report(benchmark: Any, results_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"

    def run() -> int:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return cli.main(["report", str(results_dir), "--out-dir", str(out), "--no-timestamp"])

    assert benchmark.pedantic(run, rounds=3, warmup_rounds=1) == 0
    pages = {p.suffix: p.read_text(encoding="utf-8") for p in out.iterdir() if p.suffix in (".md", ".html")}
    assert set(pages) == {".md", ".html"}, f"the report wrote {sorted(p.name for p in out.iterdir())}"
    names = {load_document(p)["framework"] for p in results_dir.glob("*.json") if is_run(load_document(p))}
    for suffix, text in pages.items():
        missing = [n for n in names if n not in text]
        assert not missing, f"the {suffix} report does not name {missing}"
    benchmark.extra_info.update({f"{s[1:]}_bytes": len(t.encode()) for s, t in pages.items()})
