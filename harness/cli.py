"""showdown: run deep-learning frameworks through one shared suite and compare what they actually do.

The host side. It never imports a deep-learning framework: each framework runs in its own environment (a
virtualenv by default), in worker processes that this command supervises.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import __version__, registry
from harness.documents import (  # noqa: F401 (the exit statuses and errors are the command line's too)
    EXIT_BROKEN_PIPE,
    EXIT_BUSY,
    EXIT_ENVIRONMENT,
    EXIT_INTERRUPTED,
    EXIT_INVALID_INPUT,
    EXIT_SOME_FAILED,
    EXIT_STORAGE,
    EXIT_USAGE,
    EnvironmentFailed,
    FrameworkFailed,
    Loaded,
    UsageError,
    conformance_docs,
    device_class,
    load_many,
    portability_doc,
    scored,
    side_documents,
    write_text_atomic,
)
from harness.results import STATUSES, ResultError, is_run, iter_result_files, load_document, validate_document
from harness.runners.lock import FolderBusy
from harness.runners.run import RunStorageError
from harness.timing import rounds_argument

EXAMPLES = """\
examples:
  showdown list                                   frameworks, suites, ops and workloads
  showdown run --framework torch                  the whole CPU suite in torch's own virtualenv
  showdown run --framework torch --suite layers   one suite (comma-separated for several)
  showdown run --framework torch --device cuda    on the GPU (needs a CUDA machine)
  showdown report results/                        a summary of the newest run per framework (--out-dir: report.md + .html)
  showdown score results/                         the rubric's scores as a table (--json for scripts)
  showdown validate results/                      check documents against the JSON Schema
  showdown batch plan                             the suite as AWS Batch jobs: what it needs (`showdown batch -h`)

An interrupted run resumes where it stopped when started again with the same framework, device and runner
(--new starts a fresh document instead). Results go to results/ by default, one JSON document per run;
virtualenvs, pip caches and work folders go to $SHOWDOWN_HOME (default: .showdown/ in the source tree).

exit status:
  0    done
  1    report, score, validate: some documents were unreadable or invalid (named on stderr; the rest used)
  2    usage error: bad arguments or input (one line on stderr says which)
  3    a framework failed to run (not importable in its environment, its worker failed); with several
       frameworks, at least one failed for any reason (the table says which and why) and the others ran
  4    the environment (virtualenv or image) of the one framework asked for could not be built;
       images build, lock: some framework's image or lock file could not be made
  74   a result could not be written (disk full, permissions); what was saved stays valid
  75   another run holds the output folder (--wait waits for it)
  130  interrupted (Ctrl-C); completed probes are saved and the same command resumes
  141  the reader of the output went away (e.g. `showdown score --json | head -1`)
"""





def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds above 0, not {text!r}")
    return value


def _size(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 8G, 500M)")
    value = float(m.group(1)) * 1024 ** " KMGT".index((m.group(2) or " ").upper())
    if value < 64 * 1024 * 1024:
        raise argparse.ArgumentTypeError(f"{text!r} is too small for a worker (at least 64M)")
    return int(value)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs: plain paragraphs wrapped to the terminal, indented lines (examples) kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        out: list[str] = []
        para: list[str] = []

        def flush() -> None:
            if para:
                out.extend(textwrap.wrap(" ".join(para), width, initial_indent=indent, subsequent_indent=indent))
                para.clear()

        for line in text.splitlines():
            if line.strip() and not line[0].isspace():
                para.append(line.strip())
                continue
            flush()
            out.append(indent + line if line.strip() else "")
        flush()
        return "\n".join(out)


def _console() -> Any:
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # rich would exit 1 here; main() ends it quietly with EXIT_BROKEN_PIPE
            self.quiet = True
            raise BrokenPipeError

    return _Console(stderr=False, highlight=False)


def build_parser() -> argparse.ArgumentParser:
    from harness.probes import SUITES
    from harness.runners import RUNNERS

    parser = argparse.ArgumentParser(
        prog="showdown", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"showdown {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("list", help="frameworks, suites, ops and workloads the harness knows", formatter_class=HelpFormatter,
                   description="Print, as tables on the terminal, the frameworks the harness knows (with their "
                               "runners and requirement files), the groups --framework accepts, the suites, the "
                               "op catalog and the throughput workloads. Reads nothing but the source tree.\n\n"
                               "example:\n  showdown list | less -R")

    run = sub.add_parser("run", help="run the suite against one framework", formatter_class=HelpFormatter,
                         description="Run the shared suite against one framework (or several) on one device, each in "
                                     "its own environment (built on first use under $SHOWDOWN_HOME), and write one "
                                     "JSON result document per framework into --out (default results/). Prints a "
                                     "summary per framework; `showdown report` compares them.\n\n"
                                     "examples:\n"
                                     "  showdown run --framework torch --quick --suite layers\n"
                                     "  showdown run --framework all --out results/today")
    run.add_argument("--framework", "-f", required=True,
                     help="framework name (see `showdown list`), several comma-separated, or a group: 'all' (today's six), 'legacy' (the 2018 post's other eight), 'every'; one failing does not stop the others")
    run.add_argument("--device", "-d", default="cpu", help="cpu (default) or cuda")
    run.add_argument("--suite", "-s", action="append", default=None,
                     help=f"suites, comma-separated or repeated (default: all: {','.join(SUITES)})")
    run.add_argument("--out", "-o", type=Path, default=Path("results"), help="folder for result documents (default: results)")
    run.add_argument("--runner", default=None, choices=RUNNERS,
                     help="venv: the framework's own virtualenv (default, except for a framework that runs only in its "
                          "image, e.g. caffe); docker: its image (built if missing); local: this "
                          "interpreter; system: an interpreter that already holds the framework (--python), nothing built")
    run.add_argument("--new", action="store_true", help="start a new document even if an interrupted run could be resumed")
    run.add_argument("--quick", action="store_true", help="short timing rounds (checks the machinery; figures less precise)")
    run.add_argument("--rounds", type=rounds_argument, default=None, metavar="N",
                     help="timed rounds per throughput measurement, at least 5 (default 7, --quick 5); more rounds "
                          "steady the median on a busy machine")
    run.add_argument("--rebuild-env", action="store_true", help="recreate the framework's virtualenv (or image) first")
    run.add_argument("--timeout", type=_positive_seconds, default=None,
                     help="wall-clock limit per probe in seconds, > 0 (default: per suite, 120-300)")
    run.add_argument("--probe", action="append", default=None, help="run only this probe id (repeatable), e.g. layers/conv2d")
    run.add_argument("--memory-limit", type=_size, default=None, metavar="SIZE",
                     help="kill a worker whose resident memory goes over SIZE (e.g. 8G, 500M) and record the probe it "
                          "was running; the docker runner gives the container this limit (default: none; docker 8G)")
    run.add_argument("--python", default=None,
                     help="system runner: the interpreter that already holds the framework (default $SHOWDOWN_PYTHON or python3)")
    run.add_argument("--record-unavailable", action="store_true",
                     help="when a framework cannot run (not installable, not importable, no such device), write a document "
                          "of kind 'unavailable' saying what was tried and why, instead of only reporting it")
    run.add_argument("--budget", type=_positive_seconds, default=None, metavar="SECONDS",
                     help="stop starting new probes after this many seconds (per framework); what ran is kept and the "
                          "same command resumes the rest")
    run.add_argument("--wait", action="store_true",
                     help="if another run is writing into the same --out folder, wait for it instead of refusing")
    run.add_argument("--base-image", default=None,
                     help="docker runner: base image for a framework image that is not built yet "
                          "(default $SHOWDOWN_BASE_IMAGE or python:3.11-slim; `showdown images base` builds a local one)")

    run.add_argument("--flavour", choices=["cpu", "cuda"], default=None,
                     help="docker runner: which image flavour to run in (default: the device's; the cuda image also runs --device cpu)")

    img = sub.add_parser("images", help="list, build or make the base of per-framework Docker images", formatter_class=HelpFormatter,
                         description="Per-framework Docker images, built from the same pinned requirements as the "
                                     "virtualenvs, installed with --no-index --require-hashes (no network in the build). "
                                     "Images go to the local Docker engine (tags showdown/<framework>:<flavour>); the "
                                     "listing is printed on the terminal.\n\n"
                                     "examples:\n  showdown images\n  showdown images build --framework torch")
    img.add_argument("action", nargs="?", default="list", choices=["list", "build", "base"],
                     help="list (default): built images; build: build images; base: a local Debian base image")
    img.add_argument("--framework", "-f", default="all", help="build: framework name(s), comma-separated, or all")
    img.add_argument("--device", "-d", default="cpu", help="build: cpu or cuda flavour")
    img.add_argument("--base-image", default=None, help="build: the base image (default $SHOWDOWN_BASE_IMAGE or python:3.11-slim)")
    img.add_argument("--tag", default=None, help="base: tag of the Debian image (default showdown/debian:bookworm-py3.11, "
                                                 "or showdown/debian:bullseye-py3.9 with --release bullseye)")
    img.add_argument("--release", default="bookworm", choices=["bookworm", "bullseye"],
                     help="base: the Debian release (bookworm, Python 3.11; bullseye, Python 3.9, for frameworks only "
                          "that release packages, e.g. caffe)")

    lck = sub.add_parser("lock", help="pin every package a framework's environment holds (transitive dependencies too)",
                         formatter_class=HelpFormatter,
                         description="Resolve frameworks/<name>/requirements-<flavour>.txt in a fresh virtualenv and "
                                     "write requirements-<flavour>.lock beside it: every distribution, pinned. The venv "
                                     "runner and the image builder install with it as constraints. Needs the network "
                                     "(package metadata only, except the build requirements of an sdist).\n\n"
                                     "example:\n  showdown lock --framework torch --device cpu")
    lck.add_argument("--framework", "-f", default="all", help="framework name(s), comma-separated, or all")
    lck.add_argument("--device", "-d", default="cpu", help="cpu or cuda flavour (default cpu)")

    rep = sub.add_parser("report", help="report over result documents: a summary, the Markdown, or report.md + report.html",
                         formatter_class=HelpFormatter,
                         description="Compare the newest run per framework in the documents given: scores, every "
                                     "probe's verdict, throughput, ONNX, numerics. Without --out-dir it prints a short "
                                     "summary (runs, the top of the scores, where the full report is); --markdown "
                                     "prints the whole Markdown report on stdout; --out-dir writes report.md and a "
                                     "self-contained report.html there.\n\n"
                                     "examples:\n"
                                     "  showdown report results\n"
                                     "  showdown report results --out-dir /tmp/report   (then open /tmp/report/report.html)\n"
                                     "  showdown report results --markdown > report.md")
    rep.add_argument("paths", nargs="+", type=Path, help="result documents or folders of them")
    rep.add_argument("--all", action="store_true", help="every document, not only the newest per framework and device")
    rep.add_argument("--out-dir", type=Path, default=None,
                     help="write report.md and a self-contained report.html (with charts) into this folder")
    rep.add_argument("--markdown", action="store_true",
                     help="print the whole Markdown report on stdout instead of the summary")
    rep.add_argument("--rubric", default="showdown-2026", help="rubric to score with (default showdown-2026; showdown-2018 also available)")
    rep.add_argument("--no-timestamp", action="store_true", help="leave the generation time out (byte-for-byte reproducible)")
    rep.add_argument("--device", choices=["cpu", "cuda"], default=None,
                     help="which set of runs to report when the documents hold both (CPU and GPU runs are never mixed)")

    sco = sub.add_parser("score", help="rubric scores of result documents (a pure function of results, rubric and facts)",
                         formatter_class=HelpFormatter,
                         description="Score the newest run per framework with a rubric (its criteria measured by the "
                                     "suite or taken from the committed facts files) and print the overall and category "
                                     "scores as a table on the terminal; --json prints every criterion with its "
                                     "explanation and evidence instead.\n\n"
                                     "examples:\n  showdown score results\n  showdown score results --json | jq '.scores[0]'")
    sco.add_argument("paths", nargs="+", type=Path, help="result documents or folders of them")
    sco.add_argument("--rubric", default="showdown-2026", help="rubric id (default showdown-2026)")
    sco.add_argument("--json", action="store_true", help="machine-readable output")
    sco.add_argument("--device", choices=["cpu", "cuda"], default=None,
                     help="which set of runs to score when the documents hold both (CPU and GPU runs are never mixed)")

    from harness.scoring import activity

    activity.add_parser(sub)

    from harness import batch_cli

    batch_cli.add_parser(sub)

    from harness import conformance

    conformance.add_parser(sub)

    from harness import portability

    portability.add_parser(sub)

    from harness import compare_cli, export

    compare_cli.add_parser(sub)
    export.add_parser(sub)

    val = sub.add_parser("validate", help="check result documents against the JSON Schema", formatter_class=HelpFormatter,
                         description="Check every result document given (files or folders) against the JSON Schema "
                                     "in harness/schema/ and print one line per file (ok or INVALID, with the problems); "
                                     "exit 1 if any is invalid.\n\nexample:\n  showdown validate results")
    val.add_argument("paths", nargs="+", type=Path, help="result documents or folders of them")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _dispatch(argv)
        sys.stdout.flush()  # inside the try: a reader that went away shows here, not at interpreter exit
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    return code


def _quiet_stdout() -> None:
    """After the reader of stdout went away (`showdown score --json | head -1`): point stdout at /dev/null so that
    Python's final flush has nowhere to fail, and say nothing (the reader took what it wanted)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # a stdout without a file descriptor (captured in tests)
        pass


def _dispatch(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "list":
            return cmd_list()
        if args.command == "run":
            return cmd_run(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "validate":
            return cmd_validate(args)
        if args.command == "images":
            return cmd_images(args)
        if args.command == "score":
            return cmd_score(args)
        if args.command == "lock":
            return cmd_lock(args)
        if args.command == "activity":
            return cmd_activity(args)
        if args.command == "conformance":
            from harness import conformance

            return conformance.command(args)
        if args.command == "portability":
            return cmd_portability(args)
        if args.command in ("compare", "export"):
            from harness import compare_cli, export

            return (compare_cli if args.command == "compare" else export).command(args)
        if args.command == "batch":
            from harness import batch_cli

            return batch_cli.main(args, _report_folder)
    except (UsageError, FrameworkFailed) as exc:
        print(f"showdown: error: {exc}", file=sys.stderr)
        return exc.code
    except (registry.UnknownFramework, ResultError) as exc:
        print(f"showdown: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FolderBusy as exc:
        print(f"showdown: error: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except RunStorageError as exc:
        print(f"showdown: error: {exc}", file=sys.stderr)
        return EXIT_STORAGE
    except KeyboardInterrupt:
        print("showdown: interrupted; completed probes are saved, run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


# ------------------------------------------------------------------------------------------------ list
def cmd_list() -> int:
    from rich.table import Table

    from harness.catalog.onnx_models import MODELS
    from harness.catalog.ops import CATALOG_VERSION, OPS
    from harness.catalog.workloads import WORKLOADS
    from harness.probes import SUITES

    con = _console()
    t = Table(title="Frameworks")
    for col in ("name", "framework", "group", "adapter", "runs under", "cpu requirements", "cuda requirements"):
        t.add_column(col)
    for info in registry.frameworks().values():
        t.add_row(info.name, info.display, "legacy" if info.legacy else "all",
                  info.adapter or "none: recorded by its attempts", ", ".join(info.runners) or "any runner",
                  *("yes" if info.requirements(dev).exists() else "-" for dev in ("cpu", "cuda")))
    con.print(t)
    con.print("Groups for --framework: " + "; ".join(f"{k}: {v}" for k, v in registry.GROUPS.items()))
    con.print(f"Suites: {', '.join(SUITES)}")
    t = Table(title=f"Ops ({CATALOG_VERSION})")
    for col in ("#", "id", "name", "kind"):
        t.add_column(col)
    for op in OPS:
        t.add_row(str(op.number), op.id, op.name, op.kind)
    con.print(t)
    t = Table(title="Throughput workloads (CPU sizes)")
    for col in ("id", "name", "sizes", "parameters"):
        t.add_column(col)
    for w in WORKLOADS:
        t.add_row(w.id, w.name, ", ".join(f"{k}={v}" for k, v in w.sizes("cpu").items()), f"{w.param_count('cpu'):,}")
    con.print(t)
    con.print(f"ONNX reference models: {', '.join(m.id for m in MODELS)}")
    return 0


# ------------------------------------------------------------------------------------------------ run
def _parse_suites(text: str) -> list[str]:
    from harness.probes import SUITES

    suites = list(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [s for s in suites if s not in SUITES]
    if unknown or not suites:
        raise UsageError(f"unknown suite {', '.join(unknown) or '(none given)'}; known: {', '.join(SUITES)}")
    return suites


def _check_device(device: str) -> None:
    if device != "cpu" and not (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise UsageError(f"unknown device {device!r}; use cpu, cuda or cuda:N")


def cmd_run(args: argparse.Namespace) -> int:
    from harness.probes import SUITES, plan
    from harness.runners import get_runner

    parts = [n.strip() for n in args.framework.split(",") if n.strip()]
    twice = sorted({n for n in parts if parts.count(n) > 1})
    if twice:
        raise UsageError(f"framework {twice[0]!r} named twice in --framework")
    names = registry.select(args.framework)
    if not names:
        raise UsageError(f"no framework named in --framework {args.framework!r}; `showdown list` shows them, or use all")
    infos = [registry.get(n) for n in names]
    _check_device(args.device)
    suites = _parse_suites(",".join(args.suite) if args.suite else ",".join(SUITES))
    probes = None
    if args.probe:
        known = set(plan(list(SUITES), args.device))
        bad = [p for p in args.probe if p not in known]
        if bad:
            raise UsageError(f"unknown probe {bad[0]!r}; `showdown list` shows ops and workloads (ids like layers/conv2d)")
        repeated = sorted({p for p in args.probe if args.probe.count(p) > 1})
        if repeated:
            raise UsageError(f"probe {repeated[0]!r} given twice with --probe")
        probes = list(args.probe)
        suites = sorted({p.split("/", 1)[0] for p in probes}, key=SUITES.index)
    if args.device.startswith("cuda"):
        from harness.runners.base import host_cuda_devices

        if not host_cuda_devices():
            raise UsageError(f"--device {args.device}: this machine shows no CUDA device (nvidia-smi lists no GPU, no "
                             "/dev/nvidiaN); nothing was built. Use --device cpu, or run on a machine with a GPU")
    from harness.runners.run import check_output_folder

    args.out = check_output_folder(args.out)  # before any environment is built
    timeouts = {s: args.timeout for s in SUITES} if args.timeout else {}
    runners: dict[str, Any] = {}

    def runner_for(info: registry.FrameworkInfo) -> Any:
        name = args.runner or (info.runners[0] if info.runners else "venv")
        if info.runners and name not in info.runners:
            raise UsageError(f"{info.name} runs only under the {' or '.join(info.runners)} runner ({info.note}); "
                             f"drop --runner {name}")
        if name not in runners:
            runners[name] = _runner(args, get_runner, name)
        return runners[name]

    con = _console()
    outcomes: list[tuple[str, str, str]] = []
    from harness.runners.lock import folder_lock

    with folder_lock(args.out, wait=args.wait, say=lambda text: con.print(f"[dim]{text}[/dim]")):
        for info in infos:
            if not info.has_adapter:
                outcomes.append(_record_attempts(con, info, args))
                continue
            try:
                result = _run_one(con, info, args, suites, probes, timeouts, runner_for(info))
                doc = result.document
                state = "complete" if doc["complete"] else "incomplete"
                outcomes.append((info.name, state, str(result.path)))
            except (UsageError, FrameworkFailed) as exc:
                if len(infos) == 1:
                    raise
                con.print(f"[red]{info.name}: {exc}[/red]")
                kind = "environment failed" if isinstance(exc, EnvironmentFailed) else "failed"
                outcomes.append((info.name, kind, str(exc)))
    if len(infos) > 1:
        from rich.table import Table

        t = Table(title="frameworks")
        t.add_column("framework", no_wrap=True)
        t.add_column("run", no_wrap=True)
        t.add_column("result or reason", overflow="fold")  # a path or a reason is read whole, never cut short
        for row in outcomes:
            t.add_row(*row)
        con.print(t)
    return 0 if all(state not in ("failed", "environment failed") for _, state, _ in outcomes) else EXIT_SOME_FAILED


def _run_one(con: Any, info: registry.FrameworkInfo, args: argparse.Namespace, suites: list[str],
             probes: list[str] | None, timeouts: dict[str, float], runner: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.runners import EnvironmentBuildError
    from harness.runners.run import RunHooks, RunRequest, execute
    from harness.runners.supervisor import FrameworkUnavailable, WorkerError

    progress = Progress(TextColumn("[bold]{task.fields[fw]}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.description}"), TimeElapsedColumn(), console=con, transient=False)
    task = progress.add_task("starting", total=None, fw=f"{info.name}/{args.device}")
    def planned(total: int, done: int) -> None:
        progress.start()
        progress.update(task, total=total, completed=done)

    hooks = RunHooks(
        say=lambda text: con.print(f"[dim]{text}[/dim]"),
        planned=planned,
        started=lambda probe: progress.update(task, description=probe),
        recorded=lambda rec: progress.update(task, advance=1, description=f"{rec['probe']}: {rec['status']}"),
    )
    request = RunRequest(info, args.device, suites, args.out, runner, quick=args.quick, fresh=args.new,
                         timeouts=timeouts, probes=probes, wait=args.wait, memory_limit_bytes=args.memory_limit,
                         budget_s=args.budget, rounds=args.rounds)
    try:
        result = execute(request, hooks)
    except FrameworkUnavailable as exc:
        _record_unavailable(args, info, runner, f"not usable in its environment ({runner.name} runner): {exc}",
                            [{"what": f"start a worker with {info.adapter} ({runner.name} runner)", "outcome": str(exc)}])
        raise FrameworkFailed(f"{info.name} is not usable in its environment ({runner.name} runner): {exc}") from None
    except EnvironmentBuildError as exc:
        _record_unavailable(args, info, runner, f"its environment could not be prepared ({runner.name} runner)",
                            [{"what": f"prepare the {runner.name} environment", "outcome": str(exc)}])
        raise EnvironmentFailed(str(exc)) from None
    except WorkerError as exc:
        raise FrameworkFailed(str(exc)) from None
    finally:
        progress.stop()
    print_summary(con, result.document)
    con.print(f"result: {result.path}" + (" (resumed)" if result.resumed else "") +
              ("" if result.document["complete"] else "  [yellow]incomplete: run the same command again to resume[/yellow]"))
    return result


def _record_attempts(con: Any, info: registry.FrameworkInfo, args: argparse.Namespace) -> tuple[str, str, str]:
    """A row without an adapter: run its attempts again and record what they answered (always written)."""
    from harness import attempts

    try:
        spec = attempts.load(info)
    except attempts.AttemptsError as exc:
        con.print(f"[red]{info.name}: {exc}[/red]")
        return (info.name, "failed", str(exc))
    reason, tried = attempts.run_attempts(spec, say=lambda t: con.print(f"[dim]{t}[/dim]"))
    recipe = attempts.recipe_entry(spec)
    path = _record_unavailable(args, info, None, reason, tried + ([recipe] if recipe else []), always=True)
    con.print(f"[yellow]{reason}[/yellow]\nrecorded: {path}")
    return (info.name, "unavailable", str(path))


def _record_unavailable(args: argparse.Namespace, info: registry.FrameworkInfo, runner: Any, reason: str,
                        tried: list[dict[str, Any]], always: bool = False) -> Path | None:
    if not always and not getattr(args, "record_unavailable", False):
        return None
    import datetime as _dt

    from harness.environment import cpu_model, memory_bytes, nvidia_smi
    from harness.results import document_name, new_unavailable_document, unused_path, write_json_atomic
    from harness.runners.run import harness_identity

    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = unused_path(args.out, document_name(info.name, args.device, stamp))
    machine = {"cpu": cpu_model(), "memory_bytes": memory_bytes(), "gpu": nvidia_smi(args.device)}
    text = reason if reason.startswith(info.name) else f"{info.name}: {reason}"
    doc = new_unavailable_document(run_id=path.stem, framework=info.name, device=args.device, reason=text, tried=tried,
                                   runner={"name": runner.name if runner is not None else "attempts"},
                                   harness=harness_identity((args.out,)), machine=machine)
    write_json_atomic(path, doc)
    return path


def print_summary(con: Any, doc: dict[str, Any]) -> None:
    from rich.table import Table

    from harness.probes import SUITES
    from harness.report.markdown import status_counts
    from harness.scoring import measured

    t = Table(title=f"{doc['framework']} {(doc.get('environment') or {}).get('framework_version', '')} on {doc['device']}")
    t.add_column("suite")
    for s in STATUSES:
        t.add_column(s, justify="right")
    for suite in SUITES:
        counts = status_counts(doc, suite)
        if counts:
            t.add_row(suite, *(str(counts.get(s, "")) for s in STATUSES))
    con.print(t)
    lines = {
        "layers": f"OOTB ops {measured.ootb_ops(doc).explanation}",
        "graphs": f"graph value {_value_text(measured.graph_value(doc))}",
        "onnx": f"ONNX export {measured.onnx_direction(doc, 'export').explanation}; "
                f"import {measured.onnx_direction(doc, 'import').explanation}",
        "throughput": f"throughput (median per step) {_throughput_headline(doc)}",
        "numerics": f"numerics ease of use {_value_text(measured.numerics_ease(doc))}",
        "scale": f"scalability {_value_text(measured.scalability(doc))}",
    }
    for suite in SUITES:
        if status_counts(doc, suite):
            con.print(f"  {lines.get(suite, suite)}")
    bad = [r for r in doc["records"].values() if r["status"] in ("error", "crashed", "timeout", "failed")]
    for r in bad[:15]:
        con.print(f"  [red]{r['status']}[/red] {r['probe']}: {r['reason'][:160]}")
    if len(bad) > 15:
        con.print(f"  ... and {len(bad) - 15} more (see the document)")
    for r in [r for r in doc["records"].values() if r["status"] == "unmapped"][:10]:
        con.print(f"  [yellow]unmapped[/yellow] {r['probe']}: {r['reason'][:160]}")


def _value_text(c: Any) -> str:
    return "-" if c.value is None else f"{c.value:g} ({c.explanation})"


def _throughput_headline(doc: dict[str, Any]) -> str:
    from harness.report.markdown import _fmt_time

    parts = []
    for key, rec in doc["records"].items():
        if rec["suite"] == "throughput" and rec["status"] == "ok":
            parts.append(f"{key.split('/', 1)[1]} {_fmt_time(rec['data']['timing']['median_s'])}")
    return ", ".join(parts) if parts else "-"


def _runner(args: argparse.Namespace, get_runner: Any, name: str) -> Any:
    if name == "venv":
        return get_runner("venv", rebuild=args.rebuild_env)
    if name == "system":
        return get_runner("system", python=args.python)
    if name == "docker":
        from harness.runners.images import DockerUnavailable

        try:
            memory = {"memory": str(args.memory_limit)} if args.memory_limit else {}
            return get_runner("docker", base=args.base_image, rebuild=args.rebuild_env, flavour=args.flavour, **memory)
        except DockerUnavailable as exc:
            raise UsageError(str(exc)) from None
    return get_runner(name)


# ------------------------------------------------------------------------------------------------ images
def cmd_images(args: argparse.Namespace) -> int:
    from harness.runners import EnvironmentBuildError, images

    con = _console()
    try:
        if args.action == "base":
            tag = images.base_image(args.tag, say=lambda t: con.print(f"[dim]{t}[/dim]"), release=args.release)
            use = (f"use it with --base-image {tag} or SHOWDOWN_BASE_IMAGE={tag}" if args.release == "bookworm"
                   else "the frameworks whose row names it are built on it")
            con.print(f"base image: {tag} ({use})")
            return 0
        if args.action == "build":
            _check_device(args.device)
            names = registry.select(args.framework)
            base = args.base_image or os.environ.get("SHOWDOWN_BASE_IMAGE", images.DEFAULT_BASE)
            failed = 0
            for name in names:
                info = registry.get(name.strip())
                try:
                    res = images.build(info, args.device, base, lambda t: con.print(f"[dim]{t}[/dim]"))
                    state = " (up to date: nothing to build)" if res.up_to_date else ""
                    con.print(f"{res.tag}: {res.size_bytes / 1e9:.2f} GB, {res.seconds:.1f} s, {res.image_id[:19]}{state}")
                except EnvironmentBuildError as exc:
                    failed += 1
                    con.print(f"[red]{info.name}: {exc}[/red]")
            return EXIT_ENVIRONMENT if failed else 0
        rows = images.list_images()
    except images.DockerUnavailable as exc:
        raise UsageError(str(exc)) from None
    except EnvironmentBuildError as exc:
        raise EnvironmentFailed(str(exc)) from None
    from rich.table import Table

    t = Table(title="showdown images")
    for col in ("tag", "framework", "version", "flavour", "size", "id", "built"):
        t.add_column(col)
    for r in sorted(rows, key=lambda r: (r["framework"] or "", r["flavour"] or "")):
        t.add_row(", ".join(r["tags"]) or "<untagged>", r["framework"] or "?", r["framework_version"] or "?",
                  (r["flavour"] or "?") + (" + batch layer" if r.get("batch") else ""),
                  f"{r['size_bytes'] / 1e9:.2f} GB", r["id"][7:19], (r["created"] or "")[:19])
    con.print(t)
    if not rows:
        con.print("no images yet: `showdown images build --framework torch` builds one")
    return 0


# ------------------------------------------------------------------------------------------------ lock
def cmd_lock(args: argparse.Namespace) -> int:
    from harness.runners import EnvironmentBuildError
    from harness.runners.locking import parse, write_lock

    _check_device(args.device)
    names = registry.select(args.framework)
    failed = 0
    for name in names:
        info = registry.get(name)
        try:
            path = write_lock(info, args.device)
            print(f"{path.relative_to(registry.SOURCE_ROOT) if path.is_relative_to(registry.SOURCE_ROOT) else path}: "
                  f"{len(parse(path))} distributions")
        except EnvironmentBuildError as exc:
            failed += 1
            print(f"showdown: {name}: {exc}", file=sys.stderr)
    return EXIT_ENVIRONMENT if failed else 0


# ------------------------------------------------------------------------------------------------ report
def cmd_portability(args: argparse.Namespace) -> int:
    """The ONNX portability matrix (harness.portability): every exporter's files through every importer."""
    from harness import portability

    return portability.command(args)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import html as html_report
    from harness.report.markdown import render
    from harness.scoring.score import latest_snapshot

    loaded = Loaded()
    docs, rubric, scores = scored(args.paths, not args.all, args.rubric, loaded, args.device)
    stamp = None if args.no_timestamp else _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    status = EXIT_INVALID_INPUT if loaded.skipped else 0
    unavailable = [d for d in docs if not is_run(d)]
    absent = _not_measured(docs, scores)
    docs = [d for d in docs if is_run(d)]
    text = render(docs, generated=stamp, scores=scores, rubric=rubric, unavailable=unavailable, not_measured=absent,
                  conformance=loaded.conformance, portability=loaded.portability)
    if args.markdown:
        sys.stdout.write(text)
        if args.out_dir is None:
            return status
    if args.out_dir is None:
        _print_report_summary(args, docs, scores, rubric, unavailable, loaded)
        return status
    try:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        scored_docs = [next(d for d in docs if d["framework"] == s.framework and d["device"] == s.device) for s in scores]
        page = html_report.render(scored_docs, scores, rubric, stamp, latest_snapshot()[0], unavailable, absent,
                                  loaded.conformance, loaded.portability)
        write_text_atomic(args.out_dir / "report.md", text)
        write_text_atomic(args.out_dir / "report.html", page)
    except OSError as exc:
        raise UsageError(f"cannot write the report into {args.out_dir}: {exc.strerror or exc}") from None
    out = sys.stderr if args.markdown else sys.stdout  # stdout holds the Markdown then
    print(f"report: {args.out_dir / 'report.md'} and {args.out_dir / 'report.html'} ({_count(len(docs), 'run')}"
          + (f", {_count(len(unavailable), 'did not run', 'did not run')}" if unavailable else "")
          + f", rubric {rubric.id}" + (f"; {len(loaded.skipped)} skipped" if loaded.skipped else "") + ")", file=out)
    if not args.markdown:
        _print_top_scores(scores, rubric)
    return status


TOP_SCORES = 3


def _print_top_scores(scores: Sequence[Any], rubric: Any) -> None:
    ranked = [s for s in scores if s.overall is not None]
    if not ranked:
        print("no framework has an overall score (too few criteria measured or known)")
        return
    width = max(len(s.framework) for s in ranked[:TOP_SCORES])
    more = f"; {len(ranked) - TOP_SCORES} more in the report" if len(ranked) > TOP_SCORES else ""
    print(f"top of the scores ({rubric.id} v{rubric.version}, overall out of 100{more}):")
    for i, s in enumerate(ranked[:TOP_SCORES], 1):
        print(f"  {i}. {s.framework:<{width}}  {s.overall:5.1f}" + (f"  {s.tier}" if s.tier else ""))


def _print_report_summary(args: argparse.Namespace, docs: Sequence[dict[str, Any]], scores: Sequence[Any], rubric: Any,
                          unavailable: Sequence[dict[str, Any]], loaded: Loaded) -> None:
    """What `report` prints without --out-dir or --markdown: a few lines, and where the whole report is."""
    devices = sorted({d["device"] for d in docs} | {d["device"] for d in unavailable})
    print(f"{_count(len(docs), 'run')} on {', '.join(devices) or '-'}: {', '.join(sorted(d['framework'] for d in docs)) or '-'}"
          + (f"; did not run here: {', '.join(sorted(d['framework'] for d in unavailable))}" if unavailable else "")
          + (f"; {len(loaded.skipped)} documents skipped (see above)" if loaded.skipped else ""))
    _print_top_scores(scores, rubric)
    where = " ".join(str(p) for p in args.paths)
    commands = [(f"showdown report {where} --markdown", "the whole report as Markdown, on stdout"),
                (f"showdown report {where} --out-dir DIR", "DIR/report.md and a self-contained DIR/report.html"),
                (f"showdown score {where}", "every score")]
    width = max(len(c) for c, _ in commands)
    print("the full report:")
    for command, what in commands:
        print(f"  {command:<{width}}  {what}")


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _report_folder(folder: Path) -> None:
    """report.md and report.html of one folder's documents, written into it (batch collect)."""
    parser = build_parser()
    cmd_report(parser.parse_args(["report", str(folder), "--out-dir", str(folder)]))


def cmd_score(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    loaded = Loaded()
    docs, rubric, scores = scored(args.paths, True, args.rubric, loaded, args.device)
    status = EXIT_INVALID_INPUT if loaded.skipped else 0
    absent = _not_measured(docs, scores)
    if args.json:
        print(json.dumps({"rubric": rubric.id, "rubric_version": rubric.version, "scores": [asdict(s) for s in scores],
                          "not_measured": [asdict(n) for n in absent], "skipped": loaded.skipped}, indent=1))
        return status
    con = _console()
    for t in _score_tables(scores, absent, rubric, con.width):
        con.print(t)
    ran_not = [n.framework for n in absent if n.run_id is not None]
    if ran_not:
        con.print(f"Did not run here: {', '.join(ran_not)} (their documents say what was tried and why; "
                  "`showdown report` lists it)")
    missing = [n for n in absent if n.run_id is None]
    if missing:
        con.print("No document in these results: " + ", ".join(
            n.framework + (f" (2018 overall {_fmt1(n.score_2018['overall'])}, not re-measured)" if n.score_2018 else "")
            for n in missing) + f"; `showdown run --framework {','.join(n.framework for n in missing)}` measures or records them.")
    return status


def _score_tables(scores: Sequence[Any], absent: Sequence[Any], rubric: Any, width: int) -> list[Any]:
    """The scores as tables that fit a terminal `width` columns wide: one table when it fits, else the overall in one
    and the categories in a second. A framework's name is never cut (a no-wrap column as wide as the longest name),
    figures stay whole (at least 5 wide); headers wrap instead."""
    from rich import box
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    cats = [c.name for c in rubric.categories]
    rows: list[dict[str, str]] = []
    for s in scores:
        rows.append({"framework": s.framework, "tier": s.tier or "-", "overall": _fmt1(s.overall),
                     **{c.name: _fmt1(s.categories.get(c.id)) for c in rubric.categories},
                     "2018 overall": _fmt1(s.score_2018["overall"]) if s.score_2018 else "-"})
    for n in absent:
        if n.run_id is not None:  # an 'unavailable' document: a row, its 2018 score marked as not re-measured
            rows.append({"framework": n.framework, "tier": "did not run", "overall": "-", **{c: "-" for c in cats},
                         "2018 overall": f"{_fmt1(n.score_2018['overall'])}*" if n.score_2018 else "-"})
    name_width = max([len(r["framework"]) for r in rows] + [len("framework")])
    note = "* 2018 overall, not re-measured here" if any(r["2018 overall"].endswith("*") for r in rows) else None

    def table(columns: list[str], title: str | None, caption: str | None, ran_only: bool = False) -> Any:
        t = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False,
                  show_edge=False)
        for col in columns:
            if col == "framework":
                t.add_column(col, no_wrap=True, min_width=name_width)
            elif col == "tier":
                t.add_column(col, no_wrap=True)
            else:
                t.add_column(col, justify="right", min_width=5)
        for r in rows:
            if not (ran_only and r["tier"] == "did not run"):
                t.add_row(*(r[c] for c in columns))
        return t

    title = f"{rubric.title} ({rubric.id} v{rubric.version})"
    whole = table(["framework", "tier", "overall", *cats, "2018 overall"], title, note)
    probe = Console(width=10_000)
    if Measurement.get(probe, probe.options, whole).maximum <= width:
        return [whole]
    return [table(["framework", "tier", "overall", "2018 overall"], title, note),
            table(["framework", *cats], "categories (out of 100)", None, ran_only=True)]


def _not_measured(docs: Sequence[dict[str, Any]], scores: Sequence[Any]) -> list[Any]:
    """Every known framework without a scored run: unavailable documents first-class, the others named."""
    from harness.scoring.score import not_measured

    return not_measured([s.framework for s in scores], [d for d in docs if not is_run(d)], list(registry.frameworks()))


def cmd_activity(args: argparse.Namespace) -> int:
    from harness.scoring import activity

    return activity.command(args)


# ------------------------------------------------------------------------------------------------ validate
def cmd_validate(args: argparse.Namespace) -> int:
    files = iter_result_files(args.paths)
    if not files:
        raise UsageError(f"no result documents in {', '.join(map(str, args.paths))}")
    bad = 0
    for f in files:
        try:
            errors = validate_document(load_document(f))
        except ResultError as exc:
            errors = [str(exc)]
        if errors:
            bad += 1
            print(f"INVALID {f}")
            for e in errors[:20]:
                print(f"  {e}")
        else:
            print(f"ok      {f}")
    print(f"{len(files) - bad} valid, {bad} invalid")
    return 1 if bad else 0


def _fmt1(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
