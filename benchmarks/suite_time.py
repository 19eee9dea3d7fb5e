"""How long does the full suite take for one framework? (Target for torch on a 2-core CPU: <= 5 minutes.)

    python benchmarks/suite_time.py [--framework torch] [--cold]

Runs `showdown run` (full timing, not --quick) into a temporary folder and prints the wall time, the time per
suite (sum of probe durations) and the environment set-up time. --cold also empties the framework's compile caches
(TORCHINDUCTOR_CACHE_DIR, JAX/XLA caches) by pointing them at a fresh folder, so compile times are first-time ones.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", default="torch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cold", action="store_true", help="fresh compile caches")
    parser.add_argument("--target-s", type=float, default=300.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if args.cold:
            env["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "inductor")
            env["JAX_COMPILATION_CACHE_DIR"] = str(Path(tmp) / "jax")
        out = Path(tmp) / "results"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "harness", "run", "--framework", args.framework, "--device", args.device,
                               "--out", str(out), "--new"], cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            return proc.returncode
        doc = json.loads(next(out.glob(f"{args.framework}-*.json")).read_text())
    per_suite: dict[str, float] = {}
    for rec in doc["records"].values():
        per_suite[rec["suite"]] = per_suite.get(rec["suite"], 0.0) + rec["duration_s"]
    print(f"framework {args.framework} {doc['environment']['framework_version']} on {args.device}, "
          f"{doc['environment']['cpu']['model']} x{doc['environment']['cpu']['logical_cores']}, caches {'cold' if args.cold else 'as found'}")
    for suite, seconds in per_suite.items():
        print(f"  {suite:11s} {seconds:7.1f} s in probes")
    overhead = wall - sum(per_suite.values())
    print(f"  {'other':11s} {overhead:7.1f} s (environment check, worker start, imports, bookkeeping)")
    verdict = "within" if wall <= args.target_s else "OVER"
    print(f"total wall time {wall:.1f} s ({verdict} the {args.target_s:.0f} s target); {len(doc['records'])} probes")
    return 0 if wall <= args.target_s else 1


if __name__ == "__main__":
    sys.exit(main())
