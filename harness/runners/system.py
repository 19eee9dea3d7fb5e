"""The system runner: the worker runs with an interpreter that already holds the framework (a GPU machine's system
Python, a prepared image), with the harness source on its path. Nothing is built or installed: the versions in the
document are whatever that interpreter has, and a framework it lacks is reported unavailable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness.registry import FrameworkInfo
from harness.runners.base import EnvironmentBuildError, Interpreter, Runner, source_env


class SystemRunner(Runner):
    name = "system"

    def __init__(self, python: str | None = None) -> None:
        self.python = python or os.environ.get("SHOWDOWN_PYTHON") or shutil.which("python3") or sys.executable

    def prepare(self, info: FrameworkInfo, device: str, say: Callable[[str], None]) -> Interpreter:
        exe = shutil.which(self.python) or self.python
        if not Path(exe).exists():
            raise EnvironmentBuildError(f"no interpreter {self.python!r} (--python or $SHOWDOWN_PYTHON names the one to use)")
        try:
            prefix = subprocess.run([exe, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                                    timeout=60, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            raise EnvironmentBuildError(f"{exe} does not run: {exc}") from None
        env = {**source_env(), **info.extra_env}
        extra = os.environ.get("SHOWDOWN_EXTRA_PATH")  # e.g. a folder of carried pure-Python packages
        if extra:
            env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], extra])
        return Interpreter([exe], env, {"name": "system", "python": exe, "environment_path": prefix, "image": None})
