"""The one small interface every framework adapter implements.

An adapter is the only code that imports a deep-learning framework. It translates the framework-neutral catalog
(NumPy arrays, canonical layouts, hyperparameters) into the framework's own API and hands NumPy arrays back. It
never judges its own output: the probes compare against the catalog's references. Whatever the framework lacks is
reported by raising `Unsupported` (with the reason, e.g. the missing API name), found out by looking the API up at
run time, never by a table of what the framework "should" have.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from harness.catalog.onnx_models import OnnxModelSpec
    from harness.catalog.ops import Case
    from harness.catalog.workloads import WorkloadSpec

Array = np.ndarray

IMPLEMENTATION_KINDS = ("native", "composed", "variant")


class Unsupported(Exception):
    """The framework does not offer this: a verdict recorded as `unsupported`, not an error."""


def require(owner: Any, attribute: str, where: str | None = None) -> Any:
    """Look an API up at run time; a missing one becomes `Unsupported` naming exactly what is missing."""
    try:
        return getattr(owner, attribute)
    except AttributeError:
        name = where or getattr(owner, "__name__", type(owner).__name__)
        raise Unsupported(f"{name} has no {attribute}") from None


def resolve(root: Any, dotted: str) -> Any:
    """Follow 'pkg.mod.Name' from `root` (the object the first part names) at run time; a missing attribute raises
    `Unsupported` naming exactly what is missing, e.g. "torch.nn has no Conv4d"."""
    obj = root
    parts = dotted.split(".")
    for i, part in enumerate(parts[1:], start=1):
        obj = require(obj, part, ".".join(parts[:i]))
    return obj


def reorder_gates(w: Array, src: str, dst: str, axis: int = -1) -> Array:
    """Reorder stacked recurrent gate blocks along `axis` from order `src` to order `dst` (e.g. 'ifgo' -> 'icfo').

    Frameworks stack LSTM/GRU gate weights in different documented orders; adapters map explicitly with this."""
    blocks = np.split(w, len(src), axis=axis)
    return np.concatenate([blocks[src.index(g)] for g in dst], axis=axis)


@dataclass(frozen=True)
class OpImpl:
    """How an adapter implements one catalog op.

    kind: native (the framework's own layer/optimizer), composed (built by the adapter from primitives; half a
    point), or variant (a close relative with its own catalog case and reference, named by `variant`; half a point).
    run(case) returns the op's outputs (the names the op declares) and, when the case has `grad_wrt`, "grad": the
    gradient of sum_k sum(output_k * case.cotangents[k]) with respect to case.arrays[case.grad_wrt].
    """

    kind: str
    api: str
    run: Callable[[Case], dict[str, Array]]
    variant: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in IMPLEMENTATION_KINDS:
            raise ValueError(f"implementation kind must be one of {IMPLEMENTATION_KINDS}, not {self.kind!r}")
        if (self.kind == "variant") != (self.variant is not None):
            raise ValueError("a variant implementation names its catalog variant, and only a variant does")


@dataclass
class CompiledFunction:
    """A function put through one of the framework's compile paths.

    call(args) -> (value, gradient w.r.t. args[0]) as NumPy; traces() -> how many times the framework has traced or
    compiled it so far, when the framework can tell (None otherwise).
    """

    path: str
    call: Callable[[Sequence[Array]], tuple[float, Array]]
    traces: Callable[[], int | None] = lambda: None
    notes: list[str] = field(default_factory=list)  # what the record should say about this path (quirks, workarounds)


@dataclass
class Workload:
    """One throughput workload built in the framework: `step()` does one unit of work; `sync()` waits for the
    device to finish what was queued (a no-op on CPU frameworks that run synchronously)."""

    step: Callable[[], Any]
    sync: Callable[[], None]
    param_count: int
    compile_path: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ArrayAPI:
    """The framework's array library as NumPy users meet it: the namespace its NumPy-like functions live in,
    conversions from and to NumPy, and its DLPack importer (None when it has none)."""

    name: str
    namespace: Any
    from_numpy: Callable[[Array], Any]
    to_numpy: Callable[[Any], Array]
    from_dlpack: Callable[[Any], Any] | None = None


@dataclass
class AllReduceResult:
    """What one process of a two-process all-reduce saw: the reduced array, and through what it went."""

    api: str
    builtin: bool  # the framework's own distributed API, not a third-party package
    value: Array
    notes: list[str] = field(default_factory=list)


@dataclass
class ExportResult:
    exporter: str
    exporter_version: str
    builtin: bool  # part of the framework's own package(s), not a separate converter
    opset: int
    framework_output: Array
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    importer: str
    importer_version: str
    builtin: bool
    run: Callable[[Array], Array]
    notes: list[str] = field(default_factory=list)


class Adapter(ABC):
    """Base class of every framework adapter; one instance per worker process and device."""

    #: registry key, e.g. "torch"
    name: ClassVar[str] = ""
    #: the distribution whose version is the framework's version, e.g. "torch"
    distribution: ClassVar[str] = ""

    def __init__(self, device: str) -> None:
        self.device = device

    # ------------------------------------------------------------------------------------------ identity
    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of the framework and the packages the suite relies on (converters, numpy, onnxruntime...)."""

    def device_available(self) -> tuple[bool, str]:
        """Whether self.device can be used, and a one-line reason when it cannot."""
        return (self.device == "cpu", "" if self.device == "cpu" else f"{self.name} adapter has no {self.device} support")

    def device_info(self) -> dict[str, Any]:
        """What the framework says about the device (GPU name, CUDA/cuDNN versions...)."""
        return {}

    # ------------------------------------------------------------------------------------------ layers
    def op(self, op_id: str) -> OpImpl | list[OpImpl]:
        """The implementation of catalog op `op_id` (by default the method `op_<id>()`), or several candidates in
        order of preference when the framework ships more than one (e.g. two different variants): the probe tries
        each, records every attempt, and keeps the first that passes."""
        method = getattr(self, f"op_{op_id}", None)
        if method is None:
            raise Unsupported(f"the {self.name} adapter has no implementation of {op_id}")
        impl: OpImpl | list[OpImpl] = method()
        return impl

    # ------------------------------------------------------------------------------------------ graphs
    @abstractmethod
    def graph_namespace(self) -> Any:
        """An object with `sum`, `tanh` and `matmul` over the framework's tensors, for the catalog's programs."""

    @abstractmethod
    def value_and_grad(self, fn: Callable[..., Any], args: Sequence[Array]) -> tuple[float, Array]:
        """Run fn(F, *tensors) eagerly (define-by-run) and return its scalar value and d value / d args[0]."""

    def graph_notes(self) -> list[str]:
        """Anything the define-by-run record should say about how the programs ran (e.g. an adapted namespace)."""
        return []

    def compile_paths(self) -> list[str]:
        """Names of the framework's compile/symbolic paths, best first (e.g. ['torch.compile', 'torch.jit.script'])."""
        return []

    def compile(self, fn: Callable[..., Any], path: str) -> CompiledFunction:
        raise Unsupported(f"{self.name} has no compile path {path!r}")

    # ------------------------------------------------------------------------------------------ throughput
    def workload(self, spec: WorkloadSpec, arrays: dict[str, Array], mode: str) -> Workload:
        """Build workload `spec` from the catalog's arrays; mode is 'eager' or 'compiled'."""
        raise Unsupported(f"the {self.name} adapter has no workload {spec.id}")

    # ------------------------------------------------------------------------------------------ numerics
    def array_api(self) -> ArrayAPI:
        """The framework's NumPy-like array namespace, for the numerics suite."""
        raise Unsupported(f"the {self.name} adapter names no array namespace")

    # ------------------------------------------------------------------------------------------ scale
    def allreduce(self, rank: int, world: int, host: str, port: int, value: Array) -> AllReduceResult:
        """Join a `world`-process group on host:port (loopback) as `rank` through the framework's distributed API
        and sum-all-reduce `value` (float32) across the processes."""
        raise Unsupported(f"the {self.name} adapter implements no all-reduce")

    # ------------------------------------------------------------------------------------------ onnx
    def onnx_export(self, model: OnnxModelSpec, path: str, opset: int | None) -> ExportResult:
        raise Unsupported(f"the {self.name} adapter has no ONNX exporter")

    def onnx_import(self, path: str) -> ImportResult:
        raise Unsupported(f"the {self.name} adapter has no ONNX importer")


def distribution_versions(*names: str) -> dict[str, str]:
    """Installed versions of the named distributions ('not installed' where absent), without importing them."""
    from importlib import metadata

    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
