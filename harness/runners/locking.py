"""Locks: every distribution a framework's environment holds, transitive dependencies included, pinned.

`requirements-<flavour>.txt` pins what the harness asks for; the lock beside it (`requirements-<flavour>.lock`) pins
everything pip resolves from that, so an environment built next year holds what the committed results ran with.
The venv runner and the image builder install with the lock as pip constraints. `showdown lock` writes it by
resolving the requirements in a fresh virtualenv of this Python (pip's --dry-run --report: nothing is installed
but the build requirements an sdist needs); a local version label (+cpu) is dropped, since `==X.Y.Z` matches it.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.registry import FrameworkInfo
from harness.runners.base import EnvironmentBuildError

NOT_LOCKED = {"pip"}  # the installer itself comes with the virtualenv


def pip_isolation(device: str) -> list[str]:
    """CUDA environments ignore the machine's pip configuration: a local CPU build of a framework (found through a
    configured --find-links folder, with a `+cpu` local version that satisfies `==X.Y.Z`) must never stand in for
    the CUDA build: --isolated ignores local configuration and uses pip's default index."""
    return ["--isolated"] if device.startswith("cuda") else []


def lock_path(info: FrameworkInfo, device: str) -> Path:
    return info.requirements(device).with_suffix(".lock")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(path: Path) -> dict[str, str]:
    """name -> version of a lock (or of any file of `name==version` lines)."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        if m:
            pins[_canonical(m.group(1))] = m.group(2)
    return pins


def resolve(info: FrameworkInfo, device: str, python: str = sys.executable) -> list[str]:
    """`name==version` for everything pip resolves from the framework's requirements, sorted."""
    req = info.requirements(device)
    if not req.exists():
        raise EnvironmentBuildError(f"{info.name} has no {req.name}")
    with tempfile.TemporaryDirectory(prefix="showdown-lock-") as tmp:
        env, report = Path(tmp) / "venv", Path(tmp) / "report.json"
        subprocess.run([python, "-m", "venv", str(env)], check=True, capture_output=True)
        pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
               *pip_isolation(device)]
        build = info.build_requirements()
        pins: dict[str, str] = {}
        if build is not None:  # an sdist built without isolation needs these installed to resolve at all
            _run([*pip, "-r", str(build)])
            pins.update(parse(build))
        _run([*pip, "--dry-run", "--ignore-installed", "--report", str(report), "-r", str(req),
              *(["--no-build-isolation"] if build is not None else [])])
        for item in json.loads(report.read_text())["install"]:
            meta = item["metadata"]
            pins[_canonical(meta["name"])] = str(meta["version"]).split("+", 1)[0]
    return [f"{name}=={version}" for name, version in sorted(pins.items()) if name not in NOT_LOCKED]


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise EnvironmentBuildError(f"resolving failed: {' | '.join(tail)}")


def write_lock(info: FrameworkInfo, device: str) -> Path:
    lines = resolve(info, device)
    flavour = "cuda" if device.startswith("cuda") else "cpu"
    path = lock_path(info, device)
    header = [
        f"# Every distribution of the {info.name} ({flavour}) environment, transitive dependencies included, resolved",
        f"# from {info.requirements(device).name} by `showdown lock` on {_dt.date.today().isoformat()} (Python "
        f"{platform.python_version()}, {platform.system().lower()} {platform.machine()}). The venv runner and the image",
        "# builder install with these pins as constraints; regenerate after changing the requirements.",
    ]
    path.write_text("\n".join([*header, *lines]) + "\n")
    return path


def check_environment(python: Path, lock: Path) -> list[str]:
    """What an environment holds that the lock does not pin at that version (empty when it matches)."""
    out = subprocess.run([str(python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                         capture_output=True, text=True, check=True).stdout
    pins = parse(lock)
    problems = []
    for item in json.loads(out):
        name, version = _canonical(item["name"]), str(item["version"]).split("+", 1)[0]
        if name in NOT_LOCKED or (name in ("setuptools", "wheel") and name not in pins):
            continue  # the virtualenv's own tools, unless the framework pins them
        if pins.get(name) != version:
            problems.append(f"{name}=={version} (lock: {pins.get(name, 'not pinned')})")
    return problems
