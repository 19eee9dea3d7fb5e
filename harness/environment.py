"""Environment metadata, collected inside the worker (where the framework lives) without importing any framework
itself: versions and device details come from the adapter, the rest from the standard library."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from typing import Any


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def nvidia_smi() -> dict[str, Any] | None:
    """GPU name, driver and memory from nvidia-smi, when there is one."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = [dict(zip(("name", "driver_version", "memory_total"), (p.strip() for p in line.split(","))))
            for line in out.strip().splitlines() if line.strip()]
    return {"gpus": gpus} if gpus else None


def collect_environment(adapter: Any, device: str, device_available: bool) -> dict[str, Any]:
    versions = adapter.versions()
    gpu = nvidia_smi()
    return {
        "framework_version": versions.get(adapter.distribution, "unknown"),
        "versions": versions,
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "os": {"system": platform.system(), "release": platform.release(), "platform": platform.platform(),
               "libc": " ".join(platform.libc_ver())},
        "cpu": {"model": cpu_model(), "machine": platform.machine(), "logical_cores": os.cpu_count() or 0,
                "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None},
        "memory_bytes": memory_bytes(),
        "device": {"requested": device, "available": device_available},
        "gpu": gpu,
        "framework_device": adapter.device_info(),
        "in_container": bool(os.environ.get("SHOWDOWN_IN_CONTAINER")),  # set by the docker runner, not guessed from files
    }
