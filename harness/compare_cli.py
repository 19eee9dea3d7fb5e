"""`showdown compare A B`: the command line of the comparison (harness.compare computes it, harness.report.compare
renders it)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.compare import ALPHA, FACTOR, compare


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="what changed between two runs or two folders of runs (status, op verdicts, timings)",
        description="Pair the runs of A and B by framework (and device) and list the probes whose status changed, the "
                    "layers whose verdict changed and every timing as the ratio B/A of the medians, with a Mann-Whitney "
                    f"U test on the raw samples: a timing is faster or slower only when p < {ALPHA} and the ratio is "
                    f"outside [1/{FACTOR}, {FACTOR}]. Exit status 0 whatever changed; 2 for unreadable input.")
    p.add_argument("a", type=Path, help="result document or folder of them (the newest per framework and device)")
    p.add_argument("b", type=Path, help="result document or folder of them, compared with A")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="also write the comparison as Markdown")
    p.add_argument("--html", type=Path, metavar="FILE", help="also write it as a self-contained HTML page")


def command(args: argparse.Namespace) -> int:
    from harness.documents import Loaded, UsageError, load_many, write_text_atomic
    from harness.report import compare as render

    sides = []
    for path in (args.a, args.b):
        docs = load_many([path], newest_only=True, loaded=Loaded())
        for d in docs:
            d.pop("_source", None)
        sides.append(docs)
    result = compare(sides[0], sides[1], str(args.a), str(args.b))
    for target, text in ((args.markdown, render.markdown), (args.html, render.html)):
        if target is None:
            continue
        try:
            write_text_atomic(target, text(result))
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    render.terminal(result)
    for target in (args.markdown, args.html):
        if target is not None:
            print(f"wrote {target}")
    return 0
