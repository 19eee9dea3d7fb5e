"""Fake adapters: a NumPy 'framework' that is right (ok), and ones that crash, hang, talk garbage, or are missing.

They are real adapters as far as the harness knows: the worker imports them by 'module:Class' and runs the same
probes, so these exercise the whole path without any framework installed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.adapter import Adapter, AllReduceResult, ArrayAPI, OpImpl, Workload, distribution_versions
from harness.catalog import graphs
from harness.catalog.ops import Case


def _note_execution(probe: str) -> None:
    """Append to $SHOWDOWN_FAKE_LOG which op ran, so tests can count executions across worker restarts."""
    log = os.environ.get("SHOWDOWN_FAKE_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(probe + "\n")


class FakeArray:
    """A framework's own array type, as far as the numerics probe can tell: it wraps NumPy but is not NumPy."""

    def __init__(self, data: Any) -> None:
        self.data = np.asarray(data)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self.data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> Any:
        return self.data.__dlpack_device__()


class FakeNamespace:
    """NumPy's functions, taking and returning FakeArray."""

    __name__ = "fakearray"

    def __getattr__(self, name: str) -> Any:
        target = np
        for part in name.split("."):
            target = getattr(target, part)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            unwrap = [a.data if isinstance(a, FakeArray) else a for a in args]
            out = target(*unwrap, **{k: (v.data if isinstance(v, FakeArray) else v) for k, v in kwargs.items()})
            return FakeArray(out) if isinstance(out, np.ndarray) else out

        return call


class NumpyAdapter(Adapter):
    """Correct on what it implements: dense, SGD, momentum, the eager graph probe, GEMM and the MLP training step
    (eager and a 'compiled' path that counts its traces)."""

    name = "fake_numpy"
    distribution = "numpy"

    def versions(self) -> dict[str, str]:
        return distribution_versions("numpy")

    def op_dense(self) -> OpImpl:
        def run(c: Case) -> dict[str, Any]:
            x, w, b = (c.arrays[k].astype(np.float64) for k in ("x", "w", "b"))
            dy = c.cotangents["y"].astype(np.float64)
            return {"y": x @ w + b, "grads": {"x": dy @ w.T, "w": x.T @ dy, "b": dy.sum(axis=0)}}

        return OpImpl("native", "numpy.matmul", run)

    def _sgd(self, c: Case, mu: float = 0.0) -> dict[str, np.ndarray]:
        w = c.arrays["w"].astype(np.float64).copy()
        v = np.zeros_like(w)
        out = []
        for g in c.arrays["grads"]:
            v = mu * v + g
            w = w - c.config["lr"] * v
            out.append(w.copy())
        return {"w": np.stack(out)}

    def op_sgd(self) -> OpImpl:
        return OpImpl("native", "numpy sgd", lambda c: self._sgd(c))

    def op_momentum(self) -> OpImpl:
        return OpImpl("composed", "numpy momentum", lambda c: self._sgd(c, c.config["mu"]))

    def graph_namespace(self) -> Any:
        return graphs.NumpyNamespace

    def value_and_grad(self, fn: Callable[..., Any], args: Sequence[np.ndarray]) -> tuple[float, np.ndarray]:
        return graphs.reference_value_and_grad(fn, args)

    def array_api(self) -> ArrayAPI:
        return ArrayAPI("fake", FakeNamespace(), FakeArray, np.asarray, None)

    def allreduce(self, rank: int, world: int, host: str, port: int, value: np.ndarray) -> AllReduceResult:
        """Rendezvous through files named after the port: enough to exercise the probe's two processes."""
        folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"showdown-fake-allreduce-{port}"
        folder.mkdir(exist_ok=True)
        np.save(folder / f"rank{rank}.npy", value)
        deadline = time.monotonic() + 30
        while len(list(folder.glob("rank*.npy"))) < world and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # both files complete
        total = sum(np.load(folder / f"rank{r}.npy") for r in range(world))
        return AllReduceResult("files (fake)", True, total)

    def workload(self, spec: Any, arrays: dict[str, np.ndarray], mode: str, precision: str = "fp32") -> Workload:
        if spec.id == "gemm" and mode == "eager":
            a, b = arrays["a"], arrays["b"]
            return Workload(lambda: a @ b, lambda: None, 0, None, observe=lambda y: {"y": y})
        return super().workload(spec, arrays, mode, precision)

    def model_workload(self, model: Any, arrays: dict[str, np.ndarray], mode: str, precision: str = "fp32") -> Workload:
        return self._train(model, arrays, mode)

    def _train(self, model: Any, arrays: dict[str, np.ndarray], mode: str, loss_factor: float = 1.0,
               traces: Callable[[], int | None] | None = None) -> Workload:
        """A float64 NumPy training step of any catalog model (the catalog's own reference math), optionally with
        a wrong loss: any node kind, no model-specific code."""
        from harness.catalog import reference_models
        from harness.catalog.workloads import LEARNING_RATE

        names = list(model.param_shapes())
        state = {k: arrays[k].astype(np.float64) for k in names}
        batch = {"x": arrays["x"], "labels": arrays["labels"]}

        def step() -> float:
            loss, grads = reference_models.loss_and_grads(model, state, batch)
            for n in names:
                state[n] = state[n] - LEARNING_RATE * grads[n]
            return loss * loss_factor

        compiled = mode == "compiled"
        return Workload(step, lambda: None, int(sum(state[n].size for n in names)), "fake.compile" if compiled else None,
                        observe=lambda loss: {"loss": loss, **{n: state[n] for n in names}},
                        compile_scope="step" if compiled else None, traces=traces or (lambda: 1))


class ReferenceAdapter(NumpyAdapter):
    """Right on every op: outputs from the catalog's own float64 references, every gradient by central differences
    of them, optimizers by the reference optimizers, dropout by its definition. The layers probe must pass it on all
    32 ops and every case (else the probe, not a framework, is wrong); the wrong fakes below start from it."""

    name = "fake_reference"

    def op(self, op_id: str) -> OpImpl:
        from harness.catalog import ops

        spec = ops.get(op_id)
        if op_id == "dropout":
            return OpImpl("native", "numpy dropout", self._dropout)
        return OpImpl("native", "reference", lambda c: self._reference_run(spec, c))

    @staticmethod
    def _reference_run(spec: Any, case: Case) -> dict[str, Any]:
        ref = next(iter(spec.references.values()))
        out: dict[str, Any] = dict(ref(case))
        if case.grad_wrt is None:
            return out
        grads = {}
        for name in case.wrt:
            base = case.arrays[name].astype(np.float64)
            g = np.zeros_like(base)
            h = 1e-6
            for idx in np.ndindex(base.shape):
                up, down = base.copy(), base.copy()
                up[idx] += h
                down[idx] -= h
                vals = []
                for arr in (up, down):
                    arrays = dict(case.arrays)
                    arrays[name] = arr
                    res = ref(Case(arrays, case.config, case.grad_wrt, case.cotangents, case.params, case.label))
                    vals.append(sum(float(np.sum(res[k] * case.cotangents[k])) for k in case.cotangents))
                g[idx] = (vals[0] - vals[1]) / (2 * h)
            grads[name] = g
        out["grads"] = grads
        return out

    @staticmethod
    def _dropout(c: Case) -> dict[str, Any]:
        x, p = c.arrays["x"].astype(np.float64), c.config["p"]
        keep = np.random.default_rng(5).random(x.shape) >= p
        return {"y_train": np.where(keep, x / (1 - p), 0.0), "y_eval": x,
                "grads": {"x": np.where(keep, c.cotangents["y_train"] / (1 - p), 0.0)}}


class OffByOnePercent(ReferenceAdapter):
    """Right everywhere except one gradient of one op, scaled by 1.01: SHOWDOWN_FAKE_OFF='op:array'."""

    name = "fake_off"

    def __init__(self, device: str, off: str | None = None) -> None:
        super().__init__(device)
        self.off = off or os.environ.get("SHOWDOWN_FAKE_OFF", "dense:w")

    def op(self, op_id: str) -> OpImpl:
        impl = super().op(op_id)
        target_op, _, target = self.off.partition(":")
        if op_id != target_op:
            return impl

        def run(c: Case) -> dict[str, Any]:
            out = impl.run(c)
            out["grads"] = {k: (1.01 * v if k == target else v) for k, v in out["grads"].items()}
            return out

        return OpImpl(impl.kind, impl.api, run)


class DropoutWithoutGradient(ReferenceAdapter):
    name = "fake_dropout_nograd"

    def op(self, op_id: str) -> OpImpl:
        impl = super().op(op_id)
        if op_id != "dropout":
            return impl
        return OpImpl(impl.kind, impl.api, lambda c: {k: v for k, v in impl.run(c).items() if k != "grads"})


class WrongLossWorkload(NumpyAdapter):
    """The MLP step computes the right update but reports a loss 1% off."""

    name = "fake_wrong_loss"

    def model_workload(self, model: Any, arrays: dict[str, np.ndarray], mode: str, precision: str = "fp32") -> Workload:
        return self._train(model, arrays, mode, loss_factor=1.01)


class NoGraphCompiled(NumpyAdapter):
    """The 'compiled' MLP step is the eager one; its compile path reports that it traced nothing."""

    name = "fake_no_graph"

    def model_workload(self, model: Any, arrays: dict[str, np.ndarray], mode: str, precision: str = "fp32") -> Workload:
        return self._train(model, arrays, mode, traces=lambda: 0)


class TracingGradient(NumpyAdapter):
    """An 'eager' gradient that traces: it runs the Python once per input shape, with a placeholder where a value
    is read, and replays the recorded result afterwards (as a framework that traces inside its gradient call)."""

    name = "fake_traced"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self.cache: dict[Any, tuple[float, np.ndarray]] = {}

    def value_and_grad(self, fn: Callable[..., Any], args: Sequence[np.ndarray]) -> tuple[float, np.ndarray]:
        key = (tuple(args[0].shape), round(float(np.asarray(args[0]).ravel()[0]), 6))
        if key not in self.cache:
            self.cache[key] = graphs.reference_value_and_grad(fn, args)
        return self.cache[key]


class CrashAdapter(NumpyAdapter):
    """Dense aborts the process (as a segfault in native code would); the rest works."""

    name = "fake_crash"

    def op_dense(self) -> OpImpl:
        def run(c: Case) -> dict[str, np.ndarray]:
            sys.stderr.write("about to abort\n")
            sys.stderr.flush()
            os.abort()

        return OpImpl("native", "abort", run)


class ExitAdapter(NumpyAdapter):
    """Dense calls os._exit(0) mid-probe: a clean exit code must not hide a lost probe."""

    name = "fake_exit"

    def op_dense(self) -> OpImpl:
        return OpImpl("native", "exit", lambda c: os._exit(0))


class HangAdapter(NumpyAdapter):
    """Dense never returns."""

    name = "fake_hang"

    def op_dense(self) -> OpImpl:
        def run(c: Case) -> dict[str, np.ndarray]:
            while True:
                time.sleep(60)

        return OpImpl("native", "sleep", run)


class GarbageAdapter(NumpyAdapter):
    """Prints junk on stdout/stderr and returns outputs of the wrong kind, shape and value."""

    name = "fake_garbage"

    def op_dense(self) -> OpImpl:
        def run(c: Case) -> Any:
            print("}{ not json ]]", flush=True)
            os.write(1, b"\x00\xff raw bytes on fd 1\n")
            os.write(2, b"native noise on fd 2\n")
            return {"y": "garbage", "grads": None}

        return OpImpl("native", "garbage", run)

    def op_sgd(self) -> OpImpl:
        return OpImpl("native", "nan", lambda c: {"w": np.full((3, 6), np.nan)})

    def op_momentum(self) -> OpImpl:
        return OpImpl("native", "wrong shape", lambda c: {"w": np.zeros(2)})

    def value_and_grad(self, fn: Callable[..., Any], args: Sequence[np.ndarray]) -> tuple[float, np.ndarray]:
        return 12345.0, np.zeros_like(args[0])


class UnavailableAdapter(NumpyAdapter):
    """The framework is not installed in the environment."""

    name = "fake_unavailable"

    def __init__(self, device: str) -> None:
        raise ModuleNotFoundError("No module named 'nosuchframework'")


class SlowAdapter(NumpyAdapter):
    """Every layer op takes a while and notes that it ran: for kill-and-resume tests."""

    name = "fake_slow"

    def op(self, op_id: str) -> OpImpl:
        def run(c: Case) -> dict[str, np.ndarray]:
            if c.label == "default":  # once per probe, however many cases the op has
                time.sleep(float(os.environ.get("SHOWDOWN_FAKE_DELAY", "0.3")))
                _note_execution(f"layers/{op_id}")
            return {}  # no outputs: recorded as failed, which is all this double needs

        return OpImpl("native", f"slow {op_id}", run)


def register_all() -> None:
    """Put every fake in the registry (tests call registry.reset() afterwards)."""
    from harness import registry

    for name, cls in FAKES.items():
        registry.register(registry.FrameworkInfo(name, f"fake ({name})", f"tests.fakes.adapters:{cls.__name__}",
                                                 Path(__file__).parent, "test double"))


class HangingAllReduce(NumpyAdapter):
    """Rank 1 never joins: the probe must kill both and say so."""

    name = "fake_allreduce_hang"

    def allreduce(self, rank: int, world: int, host: str, port: int, value: np.ndarray) -> AllReduceResult:
        if rank == 1:
            while True:
                time.sleep(60)
        return super().allreduce(rank, world, host, port, value)


class NoDistributed(NumpyAdapter):
    """Finds no distributed API and says what it looked up (SHOWDOWN_FAKE_NO_EVIDENCE=1: says nothing)."""

    name = "fake_no_distributed"

    def allreduce(self, rank: int, world: int, host: str, port: int, value: np.ndarray) -> AllReduceResult:
        from harness.adapter import Unsupported

        if os.environ.get("SHOWDOWN_FAKE_NO_EVIDENCE"):
            raise Unsupported("no distributed API")
        raise Unsupported("numpy has no distributed API", looked_up=["numpy.distributed"])


class MemoryHog(NumpyAdapter):
    """Dense allocates without bound (stopping at 6 GB, so a broken limit cannot take the machine down)."""

    name = "fake_memory_hog"

    def op_dense(self) -> OpImpl:
        def run(c: Case) -> dict[str, Any]:
            blobs = []
            for _ in range(120):
                blobs.append(np.ones(50_000_000 // 8))  # 50 MB, written, so resident
                time.sleep(0.02)
            return {}

        return OpImpl("native", "allocate", run)





VICTIM = "/tmp/showdown-symlink-victim"  # host files a hostile worker aims at (tests create them)


class SymlinkPlanter(NumpyAdapter):
    """A hostile worker (run in a container): during layers/dense it plants links in its work folder that point at
    host files outside it, for the host to follow: its own probe log (the crash record's log tail), a record file,
    the worker.out the host appends to, and a folder link for the host's chown; then it dies."""

    name = "fake_symlink_planter"

    def op_dense(self) -> OpImpl:
        def run(c: Case) -> dict[str, Any]:
            work = Path(sys.argv[sys.argv.index("--workdir") + 1])  # the worker's own work folder (/work in a container)
            plants = {
                work / "logs" / "layers__dense.log": f"{VICTIM}/secret",
                work / "logs" / "worker.out": f"{VICTIM}/appended",
                work / "records" / "layers__sgd.json": f"{VICTIM}/secret",
                work / "records" / "owned.json": f"{VICTIM}/owned",
                work / "evil": VICTIM,
            }
            for link, target in plants.items():
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(target)
            os.abort()

        return OpImpl("native", "plant links", run)


FAKES = {cls.name: cls for cls in (NumpyAdapter, CrashAdapter, ExitAdapter, HangAdapter, GarbageAdapter,
                                    UnavailableAdapter, SlowAdapter, ReferenceAdapter, OffByOnePercent,
                                    DropoutWithoutGradient, WrongLossWorkload, NoGraphCompiled, TracingGradient,
                                    MemoryHog, SymlinkPlanter)}
