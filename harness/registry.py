"""The explicit table of frameworks the harness knows. Nothing here imports a framework: an entry names its
adapter as 'module:Class' (imported only by the worker, inside the framework's environment) and the folder that
holds its pinned requirements and facts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS_DIR = SOURCE_ROOT / "frameworks"


class UnknownFramework(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class FrameworkInfo:
    name: str
    display: str
    adapter: str  # "module:Class", imported by the worker only
    directory: Path
    note: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    def requirements(self, device: str) -> Path:
        flavour = "cuda" if device.startswith("cuda") else "cpu"
        return self.directory / f"requirements-{flavour}.txt"

    def system_packages(self) -> list[str]:
        """Debian packages the framework needs at run time inside an image (apt-packages.txt, one per line)."""
        path = self.directory / "apt-packages.txt"
        if not path.exists():
            return []
        return [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines() if ln.split("#", 1)[0].strip()]

    def build_requirements(self) -> Path | None:
        """Packages to install first when the framework builds from source without build isolation."""
        path = self.directory / "requirements-build.txt"
        return path if path.exists() else None


def _fw(name: str, display: str, cls: str, note: str = "", **env: str) -> FrameworkInfo:
    return FrameworkInfo(name, display, f"frameworks.{name}.adapter:{cls}", FRAMEWORKS_DIR / name, note, dict(env))


_BUILTIN: dict[str, FrameworkInfo] = {
    info.name: info
    for info in (
        _fw("torch", "PyTorch", "TorchAdapter"),
        _fw("tensorflow", "TensorFlow (Keras 3)", "TensorflowAdapter"),
        _fw("mxnet", "Apache MXNet (Gluon)", "MxnetAdapter", "retired to the Apache Attic in 2023; last release 1.9.1"),
        _fw("chainer", "Chainer", "ChainerAdapter", "in maintenance mode since 2019; last release 7.8.1"),
        _fw("paddle", "PaddlePaddle", "PaddleAdapter"),
        _fw("jax", "JAX (Flax + Optax)", "JaxAdapter"),
    )
}

_registry: dict[str, FrameworkInfo] = dict(_BUILTIN)


def frameworks() -> dict[str, FrameworkInfo]:
    """A copy of the table: callers cannot change the registry by accident."""
    return dict(_registry)


def get(name: str) -> FrameworkInfo:
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry))
        raise UnknownFramework(f"unknown framework {name!r}; known: {known} (see `showdown list`)") from None


def register(info: FrameworkInfo) -> None:
    """Add an entry (tests use this for fake adapters)."""
    _registry[info.name] = info


def reset() -> None:
    _registry.clear()
    _registry.update(_BUILTIN)


def home() -> Path:
    """Where environments and caches live: $SHOWDOWN_HOME, else .showdown/ in the source tree."""
    return Path(os.environ.get("SHOWDOWN_HOME", SOURCE_ROOT / ".showdown"))
