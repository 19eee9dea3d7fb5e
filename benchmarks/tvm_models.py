"""Apache TVM as a compile-to-deploy target, timed against a framework's own paths on the catalog's models.

    python benchmarks/tvm_models.py [--models cnn,resblock,vgg_mini,transformer,resnet50] [--rounds 7] [--budget 0.5]

Inference (one forward pass) of each model at the portability matrix's sizes (harness/catalog/onnx_models.py):
1. in torch's virtualenv: the model built by the torch adapter (the same builder as its ONNX export), timed eager and
   through torch.compile (inductor), then exported with torch.onnx.export and the file timed in onnxruntime;
2. in TVM's virtualenv (importers/tvm): the same ONNX file converted (relax.frontend.onnx.from_onnx), compiled for the
   CPU (tvm.compile, target llvm) and timed; its output compared with torch's.
Each figure is the median of --rounds rounds, each round as many calls as fill --budget seconds (at least one), after
a warm-up round; compile and first-call times are printed apart. Run from the host: each phase re-runs this script in
the environment it needs (built by the venv runner if missing). A benchmark that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PHASE = "SHOWDOWN_BENCH_PHASE"
DEFAULT_MODELS = "cnn,resblock,vgg_mini,transformer,resnet50"


def timed(fn: Callable[[], Any], rounds: int, budget: float) -> dict[str, float]:
    """First call, then the median/min/max per-call time over `rounds` rounds after a warm-up round."""
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    calls = max(1, int(budget / max(first, 1e-6)))
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    per = (time.perf_counter() - t) / calls
    calls = max(1, int(budget / max(per, 1e-6)))
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t) / calls)
    return {"first_s": first, "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "calls_per_round": calls}


def phase_torch(models: list[str], folder: Path, rounds: int, budget: float) -> int:
    import numpy as np
    import onnxruntime as ort
    import torch

    from frameworks.torch.adapter import TorchAdapter
    from harness.catalog.onnx_models import EXPORT_MODELS_BY_ID

    torch.set_num_threads(os.cpu_count() or 1)
    adapter = TorchAdapter("cpu")
    out: dict[str, Any] = {"versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
                           "threads": torch.get_num_threads(), "models": {}}
    for mid in models:
        spec = EXPORT_MODELS_BY_ID[mid]
        x_np = spec.sample_input()
        net = adapter._onnx_model(spec).eval()
        x = torch.from_numpy(x_np)
        row: dict[str, Any] = {"input": list(x_np.shape)}
        with torch.no_grad():
            y = net(x).numpy()
            row["eager"] = timed(partial(net, x), rounds, budget)
            t = time.perf_counter()
            compiled = torch.compile(net)
            compiled(x)
            row["compile_s"] = time.perf_counter() - t
            row["compiled"] = timed(partial(compiled, x), rounds, budget)
            row["compiled_max_error"] = float(np.max(np.abs(compiled(x).numpy() - y)))
        path = folder / f"{mid}.onnx"
        adapter.onnx_export(spec, str(path), None)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        row["onnxruntime"] = timed(partial(session.run, None, {name: x_np}), rounds, budget)
        row["onnxruntime_max_error"] = float(np.max(np.abs(session.run(None, {name: x_np})[0] - y)))
        row["reference_max_error"] = float(np.max(np.abs(y.astype(np.float64) - spec.reference(x_np))))
        np.savez(folder / f"{mid}.npz", x=x_np, y=y)
        out["models"][mid] = row
        print(f"  torch: {mid} done", file=sys.stderr)
    (folder / "torch.json").write_text(json.dumps(out))
    return 0


def phase_tvm(models: list[str], folder: Path, rounds: int, budget: float) -> int:
    import numpy as np
    import onnx

    from harness.adapter import distribution_versions
    from importers.tvm.adapter import TARGET, TvmImporter

    tvm = TvmImporter("cpu")
    api = tvm.api()
    out: dict[str, Any] = {"versions": distribution_versions("apache-tvm"), "target": TARGET, "models": {}}
    for mid in models:
        data = np.load(folder / f"{mid}.npz")
        row: dict[str, Any] = {}
        try:
            t = time.perf_counter()
            module = tvm.convert(onnx.load(str(folder / f"{mid}.onnx")))
            row["convert_s"] = time.perf_counter() - t
            t = time.perf_counter()
            vm = tvm.build(module)
            row["compile_s"] = time.perf_counter() - t
            main_fn, arg = vm["main"], api["tensor"](data["x"])
            row["run"] = timed(partial(main_fn, arg), rounds, budget)
            y = main_fn(arg)
            y = y[0] if isinstance(y, (list, tuple)) else y
            row["max_error"] = float(np.max(np.abs(y.numpy() - data["y"])))
        except Exception as exc:  # a model TVM cannot convert or compile is a figure too
            row["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}"
        out["models"][mid] = row
        print(f"  tvm: {mid} done", file=sys.stderr)
    (folder / "tvm.json").write_text(json.dumps(out))
    return 0


def relaunch(kind: str, name: str, argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    from harness import conformance, portability

    interp = (portability.prepare_exporter(name, print) if kind == "exporter"
              else conformance.prepare_importer(name, print)).interpreter
    env = {**os.environ, **interp.env, PHASE: name, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([*interp.argv, __file__, *argv], env=env, capture_output=True, text=True)
    if proc.returncode:  # the phase's own output (converter chatter) only when it failed
        sys.stderr.write((proc.stdout + proc.stderr)[-4000:])
    return proc.returncode


def ms(v: dict[str, float] | None) -> str:
    return "-" if not v else f"{v['median_s'] * 1e3:.3f}"


def report(folder: Path, models: list[str]) -> None:
    torch_doc = json.loads((folder / "torch.json").read_text())
    tvm_doc = json.loads((folder / "tvm.json").read_text())
    print(f"torch {torch_doc['versions']['torch']} ({torch_doc['threads']} threads), onnxruntime "
          f"{torch_doc['versions']['onnxruntime']}, apache-tvm {tvm_doc['versions']['apache-tvm']} (target "
          f"{tvm_doc['target']}); {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print("inference, one forward pass; median ms per call (lower is better); compile times in s")
    print(f"{'model':<12} {'input':<16} {'torch eager':>11} {'torch.compile':>13} {'onnxruntime':>11} {'TVM llvm':>9}"
          f" {'compile: inductor':>17} {'TVM':>7}  max |TVM - torch|")
    for mid in models:
        t, v = torch_doc["models"][mid], tvm_doc["models"].get(mid, {})
        tvm_ms = ms(v.get("run")) if "run" in v else "failed"
        tvm_c = f"{v['convert_s'] + v['compile_s']:.1f}" if "compile_s" in v else "-"
        err = f"{v['max_error']:.2g}" if "max_error" in v else v.get("error", "-")
        print(f"{mid:<12} {'x'.join(map(str, t['input'])):<16} {ms(t['eager']):>11} {ms(t['compiled']):>13} "
              f"{ms(t['onnxruntime']):>11} {tvm_ms:>9} {t['compile_s']:>17.1f} {tvm_c:>7}  {err}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per round (default 0.5)")
    parser.add_argument("--folder", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    phase = os.environ.get(PHASE)
    if phase == "torch":
        return phase_torch(models, args.folder, args.rounds, args.budget)
    if phase == "tvm":
        return phase_tvm(models, args.folder, args.rounds, args.budget)
    with tempfile.TemporaryDirectory(prefix="tvm-models-") as tmp:
        argv = ["--models", ",".join(models), "--rounds", str(args.rounds), "--budget", str(args.budget),
                "--folder", tmp]
        for kind, name in (("exporter", "torch"), ("importer", "tvm")):
            rc = relaunch(kind, name, argv)
            if rc:
                print(f"tvm_models: the {name} phase exited {rc}", file=sys.stderr)
                return rc
        report(Path(tmp), models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
