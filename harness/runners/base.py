"""What every runner hands the supervisor: a command prefix that starts a Python with the framework in it."""

from __future__ import annotations

import os
import signal
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness import safefs
from harness.registry import SOURCE_ROOT, FrameworkInfo


class EnvironmentBuildError(Exception):
    """The framework's environment could not be created (install failed); the message says why and where."""


class WorkerProcess(Protocol):
    """A started worker, whatever runs it (a local process, a container): what the supervisor needs of it.
    A local one also has `pid` (its process group), which the supervisor's memory limit watches."""

    def poll(self) -> int | None:
        """None while running; else the exit status (negative: killed by that signal, as subprocess reports it)."""

    def wait(self, timeout: float | None = None) -> int:
        """Block until it exits (subprocess.TimeoutExpired after `timeout` seconds)."""

    def kill(self) -> None:
        """Kill it and everything it started, then reap it."""

    def close(self) -> None:
        """Release it (closing its stdin tells a worker whose host went away to exit)."""


class LocalProcess:
    """A worker as a child process in its own session (so its whole process group can be killed)."""

    def __init__(self, argv: list[str], env: dict[str, str], workdir: Path, log: str = "logs/worker.out") -> None:
        safefs.ensure_dir(workdir, str(Path(log).parent))
        with safefs.open_fresh_append(workdir, log) as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, **env}, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Interpreter:
    """How to start a worker: an argv prefix for `-m harness.worker ...`, environment variables to add, and a
    description for the result document. Runners whose worker sees another file system or is not a local process
    (a container) override `worker_path` and `spawn`."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    describe: dict[str, Any] = field(default_factory=dict)

    def worker_path(self, host_path: Path) -> str:
        return str(host_path)

    def spawn(self, worker_args: list[str], workdir: Path) -> WorkerProcess:
        """Start `python -m harness.worker <worker_args>`; its own output goes to workdir/logs/worker.out."""
        return LocalProcess([*self.argv, "-m", "harness.worker", *worker_args], self.env, workdir)


def host_cuda_devices() -> list[str]:
    """The CUDA devices this machine shows, from the host side (nvidia-smi -L, else /dev/nvidiaN), without importing
    any framework: checked before a multi-GB CUDA environment is built for nothing."""
    import re
    import shutil

    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        gpus = [line.strip() for line in out.splitlines() if line.startswith("GPU ")]
        if gpus:
            return gpus
    return sorted(p.name for p in Path("/dev").glob("nvidia*") if re.fullmatch(r"nvidia\d+", p.name))


def source_env() -> dict[str, str]:
    """Make the harness importable in an environment that has only the framework installed."""
    return {"PYTHONPATH": str(SOURCE_ROOT), "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}


class Runner(ABC):
    name: str = ""

    @abstractmethod
    def prepare(self, info: FrameworkInfo, device: str, say: Callable[[str], None]) -> Interpreter:
        """Create or reuse the framework's environment and return how to start a worker in it."""
