"""The local runner: the worker runs with this very interpreter (the framework must be installed in it)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from harness.registry import FrameworkInfo
from harness.runners.base import Interpreter, Runner, source_env


class LocalRunner(Runner):
    name = "local"

    def prepare(self, info: FrameworkInfo, device: str, say: Callable[[str], None]) -> Interpreter:
        return Interpreter([sys.executable], {**source_env(), **info.extra_env},
                           {"name": "local", "python": sys.executable, "environment_path": sys.prefix, "image": None})
