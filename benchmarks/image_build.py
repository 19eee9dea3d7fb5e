"""Docker image build figures for one framework: cold build, rebuild with no change, image size.

    python benchmarks/image_build.py [--framework torch] [--base-image showdown/debian:bookworm-py3.11]

Targets (torch, cpu): cold build <= 5 minutes, rebuild with no change <= 30 s, image <= 2 GB. "Cold" removes the
image and its cached wheel context first (the base image stays: it is built once per machine by
`showdown images base`), so it includes resolving the wheels, the apt step and installing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import registry  # noqa: E402
from harness.runners import images  # noqa: E402
from harness.runners.venv import VenvRunner  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", default="torch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--base-image", default=os.environ.get("SHOWDOWN_BASE_IMAGE", images.LOCAL_BASE))
    args = parser.parse_args()
    info = registry.get(args.framework)
    c = images.client()
    tag = images.image_tag(info, args.device)
    try:
        c.images.remove(tag, force=True)
    except Exception:  # noqa: BLE001 - not built yet
        pass
    c.images.prune(filters={"dangling": True})
    c.api.prune_builds() if hasattr(c.api, "prune_builds") else None
    ctx = registry.home() / "images" / VenvRunner().env_dir(info, args.device).name
    shutil.rmtree(ctx, ignore_errors=True)

    t0 = time.perf_counter()
    cold = images.build(info, args.device, args.base_image, lambda text: None)
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    images.build(info, args.device, args.base_image, lambda text: None)
    warm_s = time.perf_counter() - t0
    size_gb = cold.size_bytes / 1e9
    print(f"{tag} from {args.base_image} on {os.cpu_count()} cores")
    print(f"  cold build        {cold_s:7.1f} s   (target <= 300 s) {'ok' if cold_s <= 300 else 'OVER'}")
    print(f"  rebuild unchanged {warm_s:7.1f} s   (target <= 30 s)  {'ok' if warm_s <= 30 else 'OVER'}")
    print(f"  image size        {size_gb:7.2f} GB  (target <= 2 GB)  {'ok' if size_gb <= 2 else 'OVER'}")
    return 0 if cold_s <= 300 and warm_s <= 30 and size_gb <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
