"""Harness timing overhead versus a minimal hand-written loop, on the catalog's MLP training step (torch, CPU).

    python benchmarks/timing_overhead.py

Target: the harness's median per step within 2% of the hand loop's (ratio <= 1.02). Both time the very same step
object, alternately, several times; the ratio of medians is printed. Run from the host: the script re-runs itself
inside torch's virtualenv (built by the venv runner if needed), since the host has no framework.
"""

from __future__ import annotations

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
    from harness import registry
    from harness.runners.venv import VenvRunner

    interp = VenvRunner().prepare(registry.get("torch"), "cpu", print)
    env = {**os.environ, **interp.env, INSIDE: "1"}
    return subprocess.run([*interp.argv, __file__, *sys.argv[1:]], env=env).returncode


def hand_loop(step, iterations: int, rounds: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(iterations):
            step()
        samples.append((time.perf_counter() - t0) / iterations)
    return statistics.median(samples)


def main() -> int:
    from frameworks.torch.adapter import TorchAdapter
    from harness.catalog.workloads import WORKLOADS_BY_ID
    from harness.timing import TimingConfig, measure

    spec = WORKLOADS_BY_ID["mlp_train"]
    adapter = TorchAdapter("cpu")
    work = adapter.workload(spec, spec.arrays("cpu"), "eager")
    for _ in range(50):
        work.step()
    ratios = []
    for trial in range(5):
        m = measure(work.step, work.sync, TimingConfig())
        hand = hand_loop(work.step, m.iterations_per_round, m.rounds)
        ratios.append(m.median_s / hand)
        print(f"trial {trial + 1}: harness {m.median_s * 1e3:.4f} ms/step, hand loop {hand * 1e3:.4f} ms/step, ratio {m.median_s / hand:.4f}")
    ratio = statistics.median(ratios)
    print(f"median ratio harness / hand loop: {ratio:.4f} (target <= 1.02) -> {'ok' if ratio <= 1.02 else 'OVER'}")
    return 0 if ratio <= 1.02 else 1


if __name__ == "__main__":
    sys.exit(main() if os.environ.get(INSIDE) else relaunch())
