"""How long does the full suite take? Prints wall time per framework and in total.

    python benchmarks/suite_time.py                          # torch (target: <= 5 minutes on 2 cores)
    python benchmarks/suite_time.py --framework all          # the six CPU suites, environments already built (<= 20 min)
    python benchmarks/suite_time.py --framework all --fresh-envs   # environments created first, as on a fresh machine (<= 40 min)

Runs `showdown run` (full timing, not --quick) into a temporary folder, one framework after the other. --cold
empties the frameworks' compile caches (TORCHINDUCTOR_CACHE_DIR, JAX's) by pointing them at a fresh folder;
--fresh-envs also points SHOWDOWN_HOME at a fresh folder, so every virtualenv is built (pip's download cache stays).
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
sys.path.insert(0, str(REPO))


def main() -> int:
    from harness import registry

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", default="torch", help="a name, comma-separated names, or all")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cold", action="store_true", help="fresh compile caches")
    parser.add_argument("--fresh-envs", action="store_true", help="build every environment first (implies --cold)")
    parser.add_argument("--target-s", type=float, default=None, help="default: 300 for one framework, 1200 for several "
                        "(2400 with --fresh-envs)")
    args = parser.parse_args()
    names = list(registry.frameworks()) if args.framework == "all" else args.framework.split(",")
    target = args.target_s or (300.0 if len(names) == 1 else (2400.0 if args.fresh_envs else 1200.0))
    total = 0.0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if args.cold or args.fresh_envs:
            env["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "inductor")
            env["JAX_COMPILATION_CACHE_DIR"] = str(Path(tmp) / "jax")
        if args.fresh_envs:
            env["SHOWDOWN_HOME"] = str(Path(tmp) / "home")
        for name in names:
            out = Path(tmp) / "results" / name
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "harness", "run", "--framework", name, "--device", args.device,
                                   "--out", str(out), "--new"], cwd=REPO, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            total += wall
            docs = list(out.glob(f"{name}-*.json"))
            if proc.returncode != 0 or not docs:
                rows.append((name, wall, None, f"failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"))
                continue
            doc = json.loads(docs[0].read_text())
            probes = sum(r["duration_s"] for r in doc["records"].values())
            rows.append((name, wall, probes, f"{doc['environment']['framework_version']}, {len(doc['records'])} probes"))
    cpu = os.cpu_count()
    print(f"{len(names)} framework(s) on {args.device}, {cpu} cores, caches {'cold' if args.cold or args.fresh_envs else 'as found'}, "
          f"environments {'built fresh' if args.fresh_envs else 'as found'}")
    for name, wall, probes, note in rows:
        probe_text = f"{probes:7.1f} s in probes" if probes is not None else " " * 20
        print(f"  {name:11s} {wall:7.1f} s wall  {probe_text}  {note}")
    verdict = "within" if total <= target else "OVER"
    print(f"total wall time {total:.1f} s ({verdict} the {target:.0f} s target)")
    return 0 if total <= target and all(r[2] is not None for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
