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
    from harness.catalog.models import Model
    from harness.catalog.onnx_models import OnnxModelSpec
    from harness.catalog.ops import Case
    from harness.catalog.workloads import WorkloadSpec

Array = np.ndarray

IMPLEMENTATION_KINDS = ("native", "composed", "variant")


class Unsupported(Exception):
    """The framework does not offer this: a verdict recorded as `unsupported`, not an error.

    It must carry its evidence: `looked_up` names what was looked up in the framework at run time and not found
    (an attribute, a parameter of a signature, a module). An `Unsupported` without evidence is the adapter's gap,
    not the framework's, and is recorded as `unmapped`.
    """

    def __init__(self, reason: str, looked_up: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.looked_up = [str(x) for x in looked_up]


class NotMapped(Exception):
    """The adapter does not implement this (the framework may well offer it): recorded as `unmapped`, shown in the
    report, never scored as the framework lacking it. Adapters list what they leave unmapped, and why, in
    `Adapter.UNMAPPED`."""


def require(owner: Any, attribute: str, where: str | None = None) -> Any:
    """Look an API up at run time; a missing one becomes `Unsupported` naming exactly what is missing."""
    try:
        return getattr(owner, attribute)
    except AttributeError:
        name = where or getattr(owner, "__name__", type(owner).__name__)
        raise Unsupported(f"{name} has no {attribute}", looked_up=[f"{name}.{attribute}"]) from None


def require_parameter(fn: Any, parameter: str, where: str) -> None:
    """Check that callable `fn` (named `where`) takes keyword `parameter`; if not, `Unsupported` with the evidence."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return  # a builtin without a readable signature: let the call decide
    if parameter not in params and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        raise Unsupported(f"{where} takes no {parameter!r} (its parameters: {', '.join(params)})",
                          looked_up=[f"{where}({parameter}=...)"])


def resolve(root: Any, dotted: str) -> Any:
    """Follow 'pkg.mod.Name' from `root` (the object the first part names) at run time; a missing attribute raises
    `Unsupported` naming exactly what is missing, e.g. "torch.nn has no Conv4d"."""
    obj = root
    parts = dotted.split(".")
    for i, part in enumerate(parts[1:], start=1):
        obj = require(obj, part, ".".join(parts[:i]))
    return obj


def device_index(device: str) -> int | None:
    """The GPU index of a device string: None for "cpu", N for "cuda:N" ("cuda" alone is GPU 0)."""
    import re

    if device == "cpu":
        return None
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if match is None:
        raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda:N'")
    return int(match.group(1) or 0)


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
    run(case) returns the op's outputs (the names the op declares) and, when the case has `grad_wrt`, "grads": a
    mapping from every name in `case.wrt` (the input, then every trainable parameter) to the gradient of
    sum_k sum(output_k * case.cotangents[k]) with respect to that array, in the catalog's layout (map transposed
    or reordered framework parameters back). run(case) may raise Unsupported (with evidence) for a case whose
    settings the framework cannot express (e.g. a hyperparameter its optimizer does not take); the op is then
    judged on its other cases.
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


#: the precisions a throughput workload runs in. Verification (layers, ONNX, the checked steps of fp32 workloads)
#: always runs in strict float32: an adapter turns TF32 and reduced-precision reductions off in its framework at
#: start-up and says what it set in device_info()["precision"]; tf32 and bf16 exist on CUDA only.
PRECISIONS = {
    "fp32": "strict float32: no TF32, no reduced-precision reductions",
    "tf32": "float32 storage with TF32 matmuls and convolutions (the framework's TF32 switch on)",
    "bf16": "the framework's standard mixed precision in bfloat16 (float32 parameters, bfloat16 compute)",
}

#: what a compiled throughput workload puts through the compiler (recorded on every record; the report compares
#: compiled figures only between records of the same scope)
COMPILE_SCOPES = {
    "step": "the whole training step (forward, backward and the parameter update) is compiled",
    "forward_backward": "forward and backward are compiled; the parameter update runs eagerly",
    "forward": "only the forward pass is compiled; the backward pass and the update run eagerly",
    "op": "the single operation is compiled",
}


@dataclass
class Workload:
    """One throughput workload built in the framework.

    step(): one unit of work, the exact code that is timed; it returns the loss (training workloads) or the output
    (single-op workloads) as the framework's value, or None.
    observe(result): given what step() returned, the values the harness checks against the catalog's float64
    reference before anything is timed, as NumPy: for a training workload {"loss": scalar, <every parameter in the
    catalog's names and layouts, as it is after the step>}; for a single op {"y": output}. The probe calls step()
    once from the initial parameters, then observe(): a workload that disagrees is failed and not timed.
    sync(): waits for the device to finish what was queued (a no-op on CPU frameworks that run synchronously).
    compile_scope: for the compiled mode, one of COMPILE_SCOPES.
    traces(): how many graphs the compile path has captured or traced so far (None when it cannot tell); a
    compiled workload that captured none ran eagerly and is flagged, not reported as compiled.
    peak_memory(): the device memory the framework has held at most since the workload was built, in bytes (None
    where it cannot tell, e.g. on the CPU).
    precision: what the step actually computes in (PRECISIONS), as the adapter set it up.
    """

    step: Callable[[], Any]
    sync: Callable[[], None]
    param_count: int
    compile_path: str | None = None
    notes: list[str] = field(default_factory=list)
    observe: Callable[[Any], dict[str, Any]] | None = None
    compile_scope: str | None = None
    traces: Callable[[], int | None] = lambda: None
    peak_memory: Callable[[], int | None] = lambda: None
    precision: str = "fp32"


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
    """What an exporter did. Whether it is built in or a separate package is not the adapter's to say: the harness
    watches which installed distributions' code runs during the conversion and decides by one rule."""

    exporter: str
    exporter_version: str
    opset: int
    framework_output: Array
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    """An imported ONNX model. `run` takes the model's one input (the suite's ONNX probe); `run_many`, where the
    adapter gives it, takes every graph input in order (an array, a list of arrays for a sequence, None for an
    omitted optional) and returns every graph output in order (the conformance run over ONNX's node tests).
    `max_opset`: the highest default-domain opset the importer says it handles, asked of the importer at run time,
    with `max_opset_evidence` saying how (None: it cannot say)."""

    importer: str
    importer_version: str
    run: Callable[[Array], Array]
    notes: list[str] = field(default_factory=list)
    run_many: Callable[[list[Any]], list[Any]] | None = None
    max_opset: int | None = None
    max_opset_evidence: str = ""


class Adapter(ABC):
    """Base class of every framework adapter; one instance per worker process and device."""

    #: registry key, e.g. "torch"
    name: ClassVar[str] = ""
    #: the distribution whose version is the framework's version, e.g. "torch"
    distribution: ClassVar[str] = ""
    #: the distributions that make up the framework as its row names it (default: `distribution` alone), e.g. JAX
    #: with Flax and Optax; with what they require, this is "the framework's own" code for the ONNX provenance rule
    distributions: ClassVar[tuple[str, ...]] = ()
    #: what the adapter leaves unmapped, and why: catalog op ids (or probe ids) -> the reason. Every catalog op has
    #: an `op_<id>` method or an entry here (a test checks it); an unmapped op is recorded `unmapped`, not scored.
    UNMAPPED: ClassVar[dict[str, str]] = {}

    def __init__(self, device: str) -> None:
        self.device = device

    # ------------------------------------------------------------------------------------------ identity
    @classmethod
    def own_distributions(cls) -> tuple[str, ...]:
        return cls.distributions or (cls.distribution,)

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of the framework and the packages the suite relies on (converters, numpy, onnxruntime...)."""

    def device_available(self) -> tuple[bool, str]:
        """Whether self.device can be used, and a one-line reason when it cannot."""
        return (self.device == "cpu", "" if self.device == "cpu" else f"{self.name} adapter has no {self.device} support")

    def device_info(self) -> dict[str, Any]:
        """What the framework says about the device it uses (self.device only: its name, memory, compute capability,
        the CUDA and cuDNN versions the framework runs with) and, under "precision", the switches it set for strict
        float32 (TF32 off, no reduced-precision reductions)."""
        return {}

    def gpu_count(self) -> int:
        """How many CUDA devices the framework sees (0 on a machine without them)."""
        return 0

    # ------------------------------------------------------------------------------------------ layers
    def op(self, op_id: str) -> OpImpl | list[OpImpl]:
        """The implementation of catalog op `op_id` (by default the method `op_<id>()`), or several candidates in
        order of preference when the framework ships more than one (e.g. two different variants): the probe tries
        each, records every attempt, and keeps the first that passes."""
        method = getattr(self, f"op_{op_id}", None)
        if method is None:
            why = self.UNMAPPED.get(op_id) or self.UNMAPPED.get(f"layers/{op_id}")
            raise NotMapped(f"the {self.name} adapter does not map {op_id}" + (f": {why}" if why else " (and says not why)"))
        impl: OpImpl | list[OpImpl] = method()
        return impl

    # ------------------------------------------------------------------------------------------ graphs
    @abstractmethod
    def graph_namespace(self) -> Any:
        """An object with `sum`, `tanh` and `matmul` over the framework's tensors, and `item`: a scalar tensor to a
        Python float the framework's usual way (e.g. tensor.item()), for the catalog's programs."""

    @abstractmethod
    def value_and_grad(self, fn: Callable[..., Any], args: Sequence[Array]) -> tuple[float, Array]:
        """Run fn(F, *tensors) eagerly (define-by-run) and return its scalar value and d value / d args[0]. The
        program may read a concrete value in its middle (F.item) and branch on it in Python: a framework that
        traces instead of running the Python as written cannot do that, and is not scored as dynamic."""

    def graph_notes(self) -> list[str]:
        """Anything the define-by-run record should say about how the programs ran (e.g. an adapted namespace)."""
        return []

    def compile_paths(self) -> list[str]:
        """Names of the framework's compile/symbolic paths, best first (e.g. ['torch.compile', 'torch.jit.script'])."""
        return []

    def compile_path_lookups(self) -> list[str]:
        """What compile_paths() looked up in the framework (the evidence when it finds none)."""
        return []

    def compile(self, fn: Callable[..., Any], path: str) -> CompiledFunction:
        raise NotMapped(f"the {self.name} adapter maps no compile path {path!r}")

    # ------------------------------------------------------------------------------------------ throughput
    def workload(self, spec: WorkloadSpec, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """A single-op workload (spec.kind == "op": gemm, conv2d) from the catalog's arrays; mode is 'eager' or
        'compiled'; precision one of PRECISIONS (raise Unsupported, with evidence, for one the framework lacks)."""
        raise NotMapped(f"the {self.name} adapter has no workload {spec.id}")

    def model_workload(self, model: Model, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """The training step of a catalog model (harness.catalog.models): build every node with the framework's own
        layer for its kind (never by the model's id: a new catalog model must need no adapter change), load the
        catalog's initial parameters (arrays: "<node>.<param>", plus "x" and "labels"), and return the step: mean
        softmax cross-entropy, backward, one SGD update at lr 0.01. mode: 'eager', or 'compiled' (the whole step
        through the framework's compiler wherever it takes it; say what in `compile_scope`). precision: as for
        workload()."""
        raise NotMapped(f"the {self.name} adapter builds no catalog models")

    # ------------------------------------------------------------------------------------------ numerics
    def array_api(self) -> ArrayAPI:
        """The framework's NumPy-like array namespace, for the numerics suite."""
        raise NotMapped(f"the {self.name} adapter names no array namespace")

    # ------------------------------------------------------------------------------------------ scale
    def allreduce(self, rank: int, world: int, host: str, port: int, value: Array) -> AllReduceResult:
        """Join a `world`-process group on host:port (loopback) as `rank` through the framework's distributed API
        and sum-all-reduce `value` (float32) across the processes, on self.device: each rank's adapter is made for
        its own device (cuda:<rank> when there are enough GPUs, else cpu), so ranks never share a GPU."""
        raise NotMapped(f"the {self.name} adapter implements no all-reduce")

    # ------------------------------------------------------------------------------------------ onnx
    def onnx_export(self, model: OnnxModelSpec, path: str, opset: int | None) -> ExportResult:
        """Build `model` in the framework, export it with the framework's exporter to `path` (input "x", output "y"
        where the exporter lets names be chosen) and return the framework's own output on model.sample_input().
        model.catalog set (the portability matrix's catalog models: LSTM, residual block, vgg_mini, transformer,
        GRU language model, ResNet-50): build model.model() node by node with the same layers as model_workload, in
        inference mode (batch normalisation with a fresh model's running statistics: mean 0, variance 1), loaded with
        model.weights() ("<node>.<param>", the catalog's layouts); token inputs are int64."""
        raise NotMapped(f"the {self.name} adapter maps no ONNX exporter")

    def onnx_import(self, path: str) -> ImportResult:
        raise NotMapped(f"the {self.name} adapter maps no ONNX importer")


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


def load_adapter_class(ref: str) -> Any:
    """The adapter class named 'module:Class' (imported here, inside the framework's environment only)."""
    import importlib

    module_name, _, class_name = ref.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)
