"""Where the worker runs: this interpreter (local), a virtualenv per framework (venv, the default), a Docker image
(docker), or an interpreter that already holds the framework (system). Every runner only prepares an interpreter; the supervisor runs the probes the same way for all."""

from __future__ import annotations

from harness.runners.base import EnvironmentBuildError, Interpreter, Runner

RUNNERS = ("venv", "local", "docker", "system")


def get_runner(name: str, **options: object) -> Runner:
    if name == "venv":
        from harness.runners.venv import VenvRunner

        return VenvRunner(**options)  # type: ignore[arg-type]
    if name == "local":
        from harness.runners.local import LocalRunner

        return LocalRunner()
    if name == "docker":
        from harness.runners.docker import DockerRunner

        return DockerRunner(**options)  # type: ignore[arg-type]
    if name == "system":
        from harness.runners.system import SystemRunner

        return SystemRunner(**options)  # type: ignore[arg-type]
    raise KeyError(f"unknown runner {name!r}; known: {', '.join(RUNNERS)}")


__all__ = ["RUNNERS", "EnvironmentBuildError", "Interpreter", "Runner", "get_runner"]
