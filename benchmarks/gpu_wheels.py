"""The wheels benchmarks/gpu_bench.py carries to a GPU machine that has no package index: what the harness's host
side needs and that machine's system Python lacks (jsonschema and its dependencies), for CPython 3.12 on x86-64 (or --python-version).

    python benchmarks/gpu_wheels.py [--out .gpu-wheels]

Run where pip reaches the index; the folder is git-ignored. The versions are pinned here so a run is repeatable.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WHEELS = ("jsonschema==4.25.1", "jsonschema-specifications==2025.9.1", "referencing==0.36.2", "rpds-py==0.27.1")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / ".gpu-wheels")
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default 3.12)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", args.python_version,
           "--implementation", "cp", *(a for p in PLATFORMS for a in ("--platform", p)), "-d", str(args.out), *WHEELS]
    subprocess.run(cmd, check=True)
    for whl in sorted(args.out.glob("*.whl")):
        print(f"{whl.name}: {whl.stat().st_size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
