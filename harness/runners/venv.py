"""The venv runner (the default): one virtualenv per framework and device class, built from the framework's pinned
requirements and reused while they are unchanged (the folder name carries a hash of them)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.registry import FrameworkInfo, home
from harness.runners.base import EnvironmentBuildError, Interpreter, Runner, source_env
from harness.runners.locking import check_environment, lock_path, pip_isolation

READY = ".showdown-ready"
LOCK_CHECK = ".showdown-lock-check"  # what the built environment holds that its lock does not pin (one per line)


class VenvRunner(Runner):
    name = "venv"

    def __init__(self, root: Path | None = None, python: str = getattr(sys, "_base_executable", sys.executable),
                 rebuild: bool = False) -> None:
        self.root = root or home() / "venvs"
        self.python = python
        self.rebuild = rebuild

    def env_dir(self, info: FrameworkInfo, device: str) -> Path:
        digest = hashlib.sha256()
        for path in (info.requirements(device), info.build_requirements(), lock_path(info, device)):
            if path is not None and path.exists():
                digest.update(path.read_bytes())
        # the interpreter's version and installation, not the path it was reached by (a nox or pytest venv of the same
        # Python must find the same environment)
        digest.update(sys.version.encode())
        digest.update(sys.base_prefix.encode())
        flavour = "cuda" if device.startswith("cuda") else "cpu"
        return self.root / f"{info.name}-{flavour}-{digest.hexdigest()[:10]}"

    def prepare(self, info: FrameworkInfo, device: str, say: Callable[[str], None]) -> Interpreter:
        req = info.requirements(device)
        if not req.exists():
            raise EnvironmentBuildError(f"{info.name} has no {req.name} in {req.parent}; cannot build its environment")
        env = self.env_dir(info, device)
        py = env / "bin" / "python"
        if self.rebuild or not (env / READY).exists():
            with build_lock(env.parent, env.name, say):  # two runs must not build one environment at once
                if self.rebuild or not (env / READY).exists():
                    self._build(info, device, env, say)
        return Interpreter([str(py)], {**source_env(), **info.extra_env},
                           {"name": "venv", "python": str(py), "environment_path": str(env), "image": None})

    def _build(self, info: FrameworkInfo, device: str, env: Path, say: Callable[[str], None]) -> None:
        if env.exists():
            shutil.rmtree(env)
        env.parent.mkdir(parents=True, exist_ok=True)
        log = env.parent / f"{env.name}.install.log"
        say(f"creating the {info.name} environment in {env} (log: {log})")
        lock = lock_path(info, device)
        constraints = ["-c", str(lock)] if lock.exists() else []
        pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", *pip_isolation(device)]
        steps: list[list[str]] = [[self.python, "-m", "venv", str(env)]]
        build = info.build_requirements()
        if build is not None:
            steps.append(pip + ["-r", str(build), *constraints])
            steps.append(pip + ["--no-build-isolation", "-r", str(info.requirements(device)), *constraints])
        else:
            steps.append(pip + ["-r", str(info.requirements(device)), *constraints])
        with log.open("w") as fh:
            for cmd in steps:
                fh.write(f"$ {' '.join(cmd)}\n")
                fh.flush()
                proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
                if proc.returncode != 0:
                    fh.flush()
                    last = _last_error(log)
                    raise EnvironmentBuildError(f"installing {info.name} failed ({last}); full log: {log}")
        if lock.exists():  # what the environment holds beyond the lock (a platform's extra wheel, a stale lock)
            drift = check_environment(env / "bin" / "python", lock)
            (env / LOCK_CHECK).write_text("\n".join(drift) + ("\n" if drift else ""))
            if drift:
                say(f"note: the {info.name} environment differs from {lock.name} in {len(drift)} package(s): {', '.join(drift[:3])}")
        (env / READY).write_text(info.requirements(device).read_text())
        prune_siblings(env)


@contextmanager
def build_lock(root: Path, name: str, say: Callable[[str], None]) -> Iterator[None]:
    """An exclusive lock for building environment `name` under `root` (released when the process dies)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / f".{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"another process is building {name}; waiting for it")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def prune_siblings(keep: Path) -> None:
    """Remove older builds of the same framework and flavour (the pins changed, so their hash did)."""
    stem = keep.name.rsplit("-", 1)[0]
    for other in keep.parent.iterdir():
        name = other.name.removesuffix(".install.log")
        if name != keep.name and not other.name.startswith(".") and name.rsplit("-", 1)[0] == stem:
            if other.is_dir():
                shutil.rmtree(other, ignore_errors=True)
            else:
                other.unlink(missing_ok=True)




def _last_error(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("ERROR") or "error" in line.lower():
            return line[:300]
    return lines[-1][:300] if lines else "no output"
