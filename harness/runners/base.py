"""What every runner hands the supervisor: a command prefix that starts a Python with the framework in it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.registry import SOURCE_ROOT, FrameworkInfo


class EnvironmentBuildError(Exception):
    """The framework's environment could not be created (install failed); the message says why and where."""


@dataclass
class Interpreter:
    """argv prefix to run `-m harness.worker ...` with, the environment variables to add, and a description for
    the result document. `host_path`/`worker_path` translate the work folder when the worker sees another file
    system (a container)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    describe: dict[str, Any] = field(default_factory=dict)

    def worker_path(self, host_path: Path) -> str:
        return str(host_path)


def source_env() -> dict[str, str]:
    """Make the harness importable in an environment that has only the framework installed."""
    return {"PYTHONPATH": str(SOURCE_ROOT), "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}


class Runner(ABC):
    name: str = ""

    @abstractmethod
    def prepare(self, info: FrameworkInfo, device: str, say: Callable[[str], None]) -> Interpreter:
        """Create or reuse the framework's environment and return how to start a worker in it."""
