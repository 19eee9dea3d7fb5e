"""The explicit table of frameworks the harness knows. Nothing here imports a framework: an entry names its
adapter as 'module:Class' (imported only by the worker, inside the framework's environment) and the folder that
holds its pinned requirements and facts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS_DIR = SOURCE_ROOT / "frameworks"
#: the local Debian bullseye image with its Python 3.9 (`showdown images base --release bullseye`)
BULLSEYE_BASE = "showdown/debian:bullseye-py3.9"

#: names that select a group of frameworks on the command line
GROUPS = {
    "all": "the six frameworks of today's practice (torch, tensorflow, mxnet, chainer, paddle, jax)",
    "legacy": "the 2018 post's other eight: theano, caffe, bigdl, caffe2, cntk, dl4j, neon, torch7",
    "every": "all fourteen",
}


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
    #: one of the 2018 post's frameworks that today's practice has left (run by `--framework legacy`, not `all`)
    legacy: bool = False
    #: the runners it can run under (empty: any); e.g. ("docker",) for a framework that exists only as Debian
    #: packages of an older release
    runners: tuple[str, ...] = ()
    #: the base image its Docker image is built on when it needs one other than the default
    image_base: str | None = None

    @property
    def has_adapter(self) -> bool:
        """False for a row that cannot run anywhere reachable: it is recorded by its attempts (attempts.toml)."""
        return bool(self.adapter)

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


def _legacy(name: str, display: str, cls: str | None, note: str, runners: tuple[str, ...] = (),
            image_base: str | None = None, **env: str) -> FrameworkInfo:
    adapter = f"frameworks.{name}.adapter:{cls}" if cls else ""
    return FrameworkInfo(name, display, adapter, FRAMEWORKS_DIR / name, note, dict(env), legacy=True, runners=runners,
                         image_base=image_base)


_BUILTIN: dict[str, FrameworkInfo] = {
    info.name: info
    for info in (
        _fw("torch", "PyTorch", "TorchAdapter"),
        _fw("tensorflow", "TensorFlow (Keras 3)", "TensorflowAdapter"),
        _fw("mxnet", "Apache MXNet (Gluon)", "MxnetAdapter", "retired to the Apache Attic in 2023; last release 1.9.1"),
        _fw("chainer", "Chainer", "ChainerAdapter", "in maintenance mode since 2019; last release 7.8.1"),
        _fw("paddle", "PaddlePaddle", "PaddleAdapter"),
        _fw("jax", "JAX (Flax + Optax)", "JaxAdapter"),
        # the 2018 post's other frameworks: run where they still can, recorded with evidence where they cannot
        _legacy("theano", "Theano", "TheanoAdapter", "development ended in 2017; last release 1.0.5 (2020)",
                THEANO_FLAGS="blas.ldflags=,floatX=float32"),
        _legacy("caffe", "Caffe", "CaffeAdapter", "last release 1.0 (2017); runs from Debian bullseye's packages",
                runners=("docker",), image_base=BULLSEYE_BASE),
        _legacy("bigdl", "BigDL (DLlib on Spark)", "BigdlAdapter", "merged into Intel's ipex-llm in 2024; last DLlib release 2.4.0", SPARK_LOCAL_IP="127.0.0.1"),
        _legacy("caffe2", "Caffe2", "Caffe2Adapter", "merged into PyTorch in 2018; runs from torch 1.8.1's wheel, which still carries its Python API, on Debian bullseye's Python 3.9",
                runners=("docker",), image_base=BULLSEYE_BASE),
        _legacy("cntk", "Microsoft CNTK", None, "development ended in 2019; last release 2.7, wheels for Python 3.6 only"),
        _legacy("dl4j", "Deeplearning4J", None, "a JVM library published on Maven Central"),
        _legacy("neon", "Intel Nervana neon", None, "discontinued in 2018; never published on the package index"),
        _legacy("torch7", "Torch (Lua, torch7)", None, "development ended in 2017; left Debian after buster"),
    )
}

_registry: dict[str, FrameworkInfo] = dict(_BUILTIN)


def frameworks() -> dict[str, FrameworkInfo]:
    """A copy of the table: callers cannot change the registry by accident."""
    return dict(_registry)


def select(text: str) -> list[str]:
    """Framework names from a command-line value: a comma-separated list of names and groups (GROUPS); every name is
    checked (an unknown one raises UnknownFramework), duplicates are dropped, the order is kept."""
    out: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part in GROUPS:
            names = [i.name for i in _registry.values() if part == "every" or i.legacy == (part == "legacy")]
        else:
            names = [get(part).name]
        out += [n for n in names if n not in out]
    return out


def get(name: str) -> FrameworkInfo:
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry))
        raise UnknownFramework(f"unknown framework {name!r}; known: {known}, or a group: {', '.join(GROUPS)} "
                               "(see `showdown list`)") from None


def register(info: FrameworkInfo) -> None:
    """Add an entry (tests use this for fake adapters)."""
    _registry[info.name] = info


def reset() -> None:
    _registry.clear()
    _registry.update(_BUILTIN)


def home() -> Path:
    """Where environments and caches live: $SHOWDOWN_HOME, else .showdown/ in the source tree."""
    return Path(os.environ.get("SHOWDOWN_HOME", SOURCE_ROOT / ".showdown"))
