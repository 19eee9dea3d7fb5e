"""Entry points. `nox -s smoke` is the main job (CPU, no Docker, no GPU); `nox -s tests` runs the project's tests.

Each framework gets its own virtualenv from frameworks/<name>/requirements-<cpu|cuda>.txt, created by showdown's
venv runner (under .showdown/venvs, reused while the pins are unchanged); nox's own virtualenv holds only the host
side, which never imports a framework.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The project's tests (fake adapters need no framework; torch's tests build its virtualenv on first use)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(name="tests-legacy", python=PYTHON)
def tests_legacy(session: nox.Session) -> None:
    """The tests of the 2018 post's other frameworks (theano, caffe, bigdl, caffe2: their virtualenvs and images are
    built on first use; the rows that cannot run are tested by `nox -s tests`). Extra arguments go to pytest."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "legacy", *session.posargs)


BENCH_GROUPS = (  # (storage under .benchmarks/, what pytest runs, options always, options when comparing)
    # The harness's timed loop against a bare loop: in CPU time (a shared machine's wall clock swings by tens of
    # percent), and a median more than 25% above the last saved run fails the session.
    ("overhead", ["benchmarks/bench_overhead.py"], ["--benchmark-timer=time.process_time"], ["--benchmark-compare-fail=median:25%"]),
    # Documents, scoring, report, suite time: compared with the last saved run, reported, never failing on time.
    ("harness", ["benchmarks", "--ignore=benchmarks/bench_overhead.py"], [], []),
)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The project's own benchmarks (pytest-benchmark, benchmarks/bench_*.py): every run is saved under .benchmarks/
    and compared with the last saved one (nothing to compare on the first run). Extra arguments go to pytest, e.g.
    `nox -s bench -- -k score`."""
    session.install("-e", ".[test]")
    machine = session.run("python", "-c", "from pytest_benchmark.utils import get_machine_id; print(get_machine_id())",
                          silent=True, log=False)
    for name, paths, options, fail_on in BENCH_GROUPS:
        storage = Path(".benchmarks") / name
        saved = bool(machine) and any((storage / str(machine).strip()).glob("*.json"))  # runs of this interpreter
        compare = ["--benchmark-compare", *fail_on] if saved else []
        session.run("pytest", *paths, f"--benchmark-storage=file://{storage}", "--benchmark-autosave", *options, *compare,
                    *session.posargs, success_codes=[0, 5] if session.posargs else [0])  # 5: -k left nothing here


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over everything, mypy (strict) over the framework-neutral core."""
    session.install("-e", ".[test]")
    session.run("ruff", "check", "harness", "frameworks", "importers", "tests", "benchmarks", "noxfile.py")
    session.run("mypy", "harness")


@nox.session(python=PYTHON)
def smoke(session: nox.Session) -> None:
    """The CPU suite for every framework with an adapter, each in its own virtualenv, then the report.

    Extra arguments go to `showdown run`, e.g. `nox -s smoke -- --framework torch --quick`.
    """
    session.install("-e", ".")
    args = list(session.posargs)
    if not any(a in ("--framework", "-f") or a.startswith("--framework=") for a in args):
        args = ["--framework", "all", *args]
    session.run("showdown", "run", "--device", "cpu", *args, success_codes=[0, 3])  # 3: some framework could not run; the others did
    session.run("showdown", "report", "results", "--out-dir", "results")
    session.run("showdown", "validate", "results")


@nox.session(name="smoke-legacy", python=PYTHON)
def smoke_legacy(session: nox.Session) -> None:
    """The 2018 post's other eight frameworks: the suite where they still run (theano and bigdl in virtualenvs, caffe
    and caffe2 in Debian bullseye images, which need Docker), the recorded attempts where they do not; then the report
    of everything in results/. Extra arguments go to `showdown run`."""
    session.install("-e", ".[docker]")
    args = list(session.posargs)
    if not any(a in ("--framework", "-f") or a.startswith("--framework=") for a in args):
        args = ["--framework", "legacy", *args]
    session.run("showdown", "run", "--device", "cpu", *args, success_codes=[0, 3])
    session.run("showdown", "report", "results", "--out-dir", "results")
    session.run("showdown", "validate", "results")


@nox.session(python=PYTHON)
def conformance(session: nox.Session) -> None:
    """ONNX's backend node tests (onnx 1.18.0's, converted once in a pinned virtualenv of their own) through every
    importer: onnxruntime (the reference), the frameworks' importers, TVM; a document each in
    results/conformance/, then the report. `-- --quick 100` runs a fixed sample of 100 cases per importer."""
    session.install("-e", ".")
    extra = list(session.posargs)
    for importer in ("onnxruntime", "torch", "tensorflow", "mxnet", "paddle", "jax", "tvm"):
        session.run("showdown", "conformance", "--importer", importer, "--out", "results/conformance", *extra,
                    success_codes=[0, 3])
    session.run("showdown", "report", "results", "--out-dir", "results")


@nox.session(python=PYTHON)
def images(session: nox.Session) -> None:
    """Build the Docker image of every framework with an adapter (cpu flavour unless `-- --device cuda`).

    Needs a Docker engine; where no registry is reachable, run `nox -s base-image` first and pass
    `-- --base-image showdown/debian:bookworm-py3.11` (or set SHOWDOWN_BASE_IMAGE).
    """
    session.install("-e", ".[docker]")
    session.run("showdown", "images", "build", "--framework", "all", *session.posargs)
    session.run("showdown", "images")


@nox.session(name="base-image", python=PYTHON)
def base_image(session: nox.Session) -> None:
    """A Debian bookworm base image with Python 3.11, built locally (debootstrap + import): no registry needed."""
    session.install("-e", ".[docker]")
    session.run("showdown", "images", "base", *session.posargs)


@nox.session(name="bench-gpu", python=PYTHON)
def bench_gpu(session: nox.Session) -> None:
    """The suite on a CUDA GPU (refuses without one), into results/gpu: its own set, scored and reported apart from
    the CPU runs. Extra arguments go to `showdown run`, e.g. `-- --runner system --python python3` on a machine whose
    own Python already holds the frameworks (benchmarks/gpu_bench.py is the prepared run for a machine without
    network). A framework that cannot run there gets a document saying why."""
    smi = shutil.which("nvidia-smi")
    listed = subprocess.run([smi, "-L"], capture_output=True, text=True).stdout if smi else ""
    if "GPU" not in listed:
        session.error("no CUDA device visible (nvidia-smi is missing or lists no GPU): bench-gpu needs a CUDA machine; "
                      "use `nox -s smoke` for the CPU suite")
    session.install("-e", ".")
    args = list(session.posargs)
    if not any(a in ("--framework", "-f") or a.startswith("--framework=") for a in args):
        args = ["--framework", "all", *args]
    if not any(a in ("--out", "-o") or a.startswith("--out=") for a in args):
        args = ["--out", "results/gpu", *args]
    session.run("showdown", "run", "--device", "cuda", "--record-unavailable", *args, success_codes=[0, 3])
    session.run("showdown", "report", "results/gpu", "--out-dir", "results/gpu", "--device", "cuda")


@nox.session(python=PYTHON)
def batch(session: nox.Session) -> None:
    """The suite as AWS Batch jobs: `nox -s batch -- ACTION [options]`, ACTION one of plan (the default), setup, push,
    submit, status, collect, teardown, prices (`showdown batch -h` walks through a run)."""
    session.install("-e", ".[aws]")
    session.run("showdown", "batch", *(session.posargs or ["plan"]))
