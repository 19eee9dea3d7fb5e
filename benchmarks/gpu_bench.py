"""The prepared GPU run: torch and JAX on CUDA with the machine's own Python, in about 10 minutes.

    python3 benchmarks/gpu_bench.py [--wheels .gpu-wheels] [--out results/gpu] [--minutes 9.5] [--device cuda]

For a GPU machine that has no network and no package index but a system Python holding PyTorch and JAX (with its
CUDA plugin, Flax, Optax, onnx): the `system` runner uses that interpreter as it is (no environment is built; the
documents record the versions it has). The host side's only missing pure-Python pieces (jsonschema and what it
needs) travel as wheels made by benchmarks/gpu_wheels.py; they are installed into a private folder. TensorFlow,
Paddle, MXNet and Chainer cannot be installed there: each gets a document of kind "unavailable" with the reason.

The probes run in the order below, most important first, and each framework gets an equal share of the time
budget (`showdown run --budget`): what does not fit is left in the document, and running the same command again
resumes it. The ONNX suite is left out (its converters are not on such a machine, and it is CPU work). Then the
report is written into the output folder, as its own set (GPU runs are never mixed with CPU ones).

Targets to check in the report (issue figures): torch bf16 GEMM 8192^3 >= 85% of 790 TFLOP/s; torch ResNet-50 bf16
training >= 2,470 images/s; JAX within 1.5x of torch on both; the layers of torch and JAX verified in strict fp32
on CUDA as on the CPU.

`--device cpu` runs the same flow on a CPU machine (with SHOWDOWN_PYTHON naming an interpreter that holds the
frameworks), to try the command before a GPU is lent.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("torch", "jax")
NOT_HERE = ("tensorflow", "paddle", "mxnet", "chainer")


def plan(device: str) -> list[str]:
    """Every probe of the suites that run here, most important first: the headline figures (GEMM at every precision,
    ResNet-50 and the transformer at the lowest), then the rest in the harness's own order (layers in strict fp32
    first)."""
    sys.path.insert(0, str(REPO))
    from harness.probes import SUITES
    from harness.probes import plan as harness_plan

    every = harness_plan([s for s in SUITES if s != "onnx"], device)
    lowest = "/bf16" if device.startswith("cuda") else ""
    first = [p for p in every if p.startswith("throughput/gemm/")]
    rank = {"bf16": 0, "tf32": 1}  # the headline precision first, strict fp32 last
    first.sort(key=lambda p: (p.split("/")[2] != "eager", rank.get(p.split("/")[-1], 2)))
    first += [f"throughput/{w}/{m}{lowest}" for w in ("resnet50_train", "transformer_train") for m in ("compiled", "eager")]
    return first + [p for p in every if p not in first]


def install_wheels(wheels: Path, target: Path) -> dict[str, str]:
    """Unpack the carried wheels into `target` and return the environment that sees them.

    A wheel is a zip laid out as site-packages, so unpacking is an install that needs neither pip nor a network; a
    binary wheel built for another Python is refused by name."""
    found = sorted(wheels.glob("*.whl"))
    if not found:
        raise SystemExit(f"no wheels in {wheels} (make them where pip works: python benchmarks/gpu_wheels.py)")
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wrong = [w.name for w in found if "-cp" in w.name and f"-{tag}-" not in w.name]
    if wrong:
        raise SystemExit(f"wheels for another Python than {tag}: {', '.join(wrong)} (python benchmarks/gpu_wheels.py "
                         f"--python-version {sys.version_info.major}.{sys.version_info.minor})")
    target.mkdir(parents=True, exist_ok=True)
    for wheel in found:
        with zipfile.ZipFile(wheel) as z:
            z.extractall(target)
    return {"PYTHONPATH": os.pathsep.join([str(REPO), str(target)]), "SHOWDOWN_EXTRA_PATH": str(target)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, default=None, help="folder of carried wheels (benchmarks/gpu_wheels.py)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "gpu")
    parser.add_argument("--minutes", type=float, default=9.5, help="the whole run's budget (default 9.5)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--quick", action="store_true", help="short timing rounds (a dry run of the flow)")
    args = parser.parse_args()

    t0 = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    if args.wheels is not None:
        env.update(install_wheels(args.wheels, Path("/tmp/showdown-site")))
    python = os.environ.get("SHOWDOWN_PYTHON", sys.executable)
    frameworks = [f for f in args.frameworks.split(",") if f]
    showdown = [sys.executable, "-m", "harness"]
    common = ["--device", args.device, "--runner", "system", "--python", python, "--out", str(args.out),
              "--record-unavailable", *(["--quick"] if args.quick else [])]
    for name in NOT_HERE:  # a document each, saying why (the system interpreter does not hold them)
        subprocess.run([*showdown, "run", "--framework", name, *common, "--probe", "layers/dense"], env=env, cwd=REPO)
    probes = [arg for p in plan(args.device) for arg in ("--probe", p)]
    for i, name in enumerate(frameworks):
        left = args.minutes * 60 - (time.monotonic() - t0) - 30  # 30 s kept for the report
        share = max(60.0, left / (len(frameworks) - i))
        print(f"== {name}: {share:.0f} s of budget", flush=True)
        subprocess.run([*showdown, "run", "--framework", name, *common, "--budget", f"{share:.0f}",
                        "--timeout", "240", *probes], env=env, cwd=REPO)
    code = subprocess.run([*showdown, "report", str(args.out), "--out-dir", str(args.out),
                           "--device", "cuda" if args.device.startswith("cuda") else "cpu"], env=env, cwd=REPO).returncode
    print(f"gpu_bench: {time.monotonic() - t0:.0f} s in all; documents and report in {args.out}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
