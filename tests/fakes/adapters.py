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


class NumpyAdapter(Adapter):
    """Correct on what it implements: dense, SGD, momentum, the eager graph probe and GEMM."""

    name = "fake_numpy"
    distribution = "numpy"

    def versions(self) -> dict[str, str]:
        return distribution_versions("numpy")

    def op_dense(self) -> OpImpl:
        def run(c: Case) -> dict[str, np.ndarray]:
            x, w, b = (c.arrays[k].astype(np.float64) for k in ("x", "w", "b"))
            return {"y": x @ w + b, "grad": c.cotangents["y"] @ w.T}

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
        return ArrayAPI("numpy", np, np.asarray, np.asarray, np.from_dlpack)

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

    def workload(self, spec: Any, arrays: dict[str, np.ndarray], mode: str) -> Workload:
        if spec.id != "gemm" or mode != "eager":
            return super().workload(spec, arrays, mode)
        a, b = arrays["a"][:64, :64], arrays["b"][:64, :64]
        return Workload(lambda: a @ b, lambda: None, 0, None, ["fake: a 64x64 slice"])


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
            return {"y": "garbage", "grad": None}

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
            time.sleep(float(os.environ.get("SHOWDOWN_FAKE_DELAY", "0.3")))
            _note_execution(f"layers/{op_id}")
            return {}  # no outputs: recorded as failed, which is all this double needs

        return OpImpl("native", f"slow {op_id}", run)


FAKES = {cls.name: cls for cls in (NumpyAdapter, CrashAdapter, ExitAdapter, HangAdapter, GarbageAdapter,
                                    UnavailableAdapter, SlowAdapter)}


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
