"""The catalog's ONNX CNN (harness/catalog/onnx_models.py, `cnn`, written with onnx.helper) compiled by Apache TVM for
the CPU (target llvm) and timed: inference, one forward pass on the catalog's (2, 3, 8, 8) input.

    python benchmarks/tvm_cnn.py [--rounds 7] [--calls 200]

Prints the conversion time (from_onnx), the compile time (tvm.compile), the first call, then the median of --rounds
rounds of --calls calls each after a warm-up round, per call, and the largest |error| against the catalog's NumPy
reference. Run from the host: the script re-runs itself inside TVM's virtualenv (importers/tvm, built by the venv
runner if needed), since the host has no TVM. A benchmark that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INSIDE = "SHOWDOWN_BENCH_INSIDE"


def relaunch() -> int:
    sys.path.insert(0, str(REPO))
    from harness import conformance

    interp = conformance.prepare_importer("tvm", print).interpreter
    env = {**os.environ, **interp.env, INSIDE: "1"}
    return subprocess.run([*interp.argv, __file__, *sys.argv[1:]], env=env).returncode


def main(rounds: int, calls: int) -> int:
    import numpy as np

    from harness.adapter import distribution_versions
    from harness.catalog import onnx_models
    from importers.tvm.adapter import TARGET, TvmImporter

    spec = onnx_models.MODELS_BY_ID["cnn"]
    model = onnx_models.build_onnx(spec)
    x = spec.sample_input()
    tvm = TvmImporter("cpu")
    api = tvm.api()

    t0 = time.perf_counter()
    module = tvm.convert(model)
    convert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vm = tvm.build(module)
    compile_s = time.perf_counter() - t0
    main_fn = vm["main"]
    arg = api["tensor"](x)
    t0 = time.perf_counter()
    y = main_fn(arg).numpy()
    first_s = time.perf_counter() - t0
    err = float(np.max(np.abs(y.astype(np.float64) - spec.reference(x))))

    def one_round() -> float:
        t = time.perf_counter()
        for _ in range(calls):
            main_fn(arg)
        return (time.perf_counter() - t) / calls

    one_round()  # warm-up
    times = [one_round() for _ in range(rounds)]
    med = statistics.median(times)
    versions = distribution_versions("apache-tvm", "onnx", "numpy")
    print(f"apache-tvm {versions['apache-tvm']} (onnx {versions['onnx']}, numpy {versions['numpy']}), target {TARGET}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"model: catalog cnn, {spec.description}; opset {onnx_models.DEFAULT_OPSET}; inference (forward only)")
    print(f"convert (relax.frontend.onnx.from_onnx): {convert_s * 1e3:.1f} ms")
    print(f"compile (tvm.compile, target {TARGET}):   {compile_s * 1e3:.1f} ms")
    print(f"first call:                              {first_s * 1e3:.3f} ms")
    print(f"median of {rounds} rounds x {calls} calls:       {med * 1e6:.1f} us per call "
          f"({1 / med:.0f} calls/s, {spec.input_shape[0] / med:.0f} samples/s); rounds {min(times) * 1e6:.1f}-{max(times) * 1e6:.1f} us")
    print(f"max |error| vs the NumPy reference:      {err:.3g}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    if os.environ.get(INSIDE):
        sys.exit(main(args.rounds, args.calls))
    sys.exit(relaunch())
