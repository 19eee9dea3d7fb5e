"""Environment metadata, collected inside the worker (where the framework lives) without importing any framework
itself: versions and device details come from the adapter, the rest from the standard library."""

from __future__ import annotations

import os
import platform
import re
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


def _visible_index(device: str) -> int | None:
    """The physical index nvidia-smi uses for the framework's cuda:N (CUDA_VISIBLE_DEVICES renumbers devices)."""
    if not device.startswith("cuda"):
        return None
    n = int(device.split(":", 1)[1]) if ":" in device else 0
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if visible:
        if n >= len(visible) or not visible[n].isdigit():
            return None
        return int(visible[n])
    return n


def nvidia_smi(device: str = "cpu") -> dict[str, Any] | None:
    """The GPU a CUDA run uses (name, driver, memory, uuid), the driver's CUDA version, and how many the machine
    has, from nvidia-smi; None when there is none or the run is on the CPU."""
    exe = shutil.which("nvidia-smi")
    if not exe or not device.startswith("cuda"):
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,driver_version,memory.total,uuid", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
        banner = subprocess.run([exe], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = [dict(zip(("index", "name", "driver_version", "memory_total", "uuid"), (p.strip() for p in line.split(","))))
            for line in out.strip().splitlines() if line.strip()]
    if not gpus:
        return None
    index = _visible_index(device)
    used = next((g for g in gpus if g["index"] == str(index)), None)
    cuda = re.search(r"CUDA Version:\s*([0-9.]+)", banner)
    return {"used": used, "device": device, "gpus_on_machine": len(gpus),
            "driver_cuda_version": cuda.group(1) if cuda else None}


def collect_environment(adapter: Any, device: str, device_available: bool) -> dict[str, Any]:
    versions = adapter.versions()
    gpu = nvidia_smi(device)
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
