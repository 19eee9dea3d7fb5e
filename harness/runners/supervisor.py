"""Host side of the worker protocol (see harness.worker): start a worker, collect its record files, enforce each
probe's wall-clock limit, and turn a dead or hung worker into a record for the probe it was running; then start a
new worker for the probes that are left. The host never imports a framework.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.protocol import EXIT_NO_DEVICE, EXIT_UNAVAILABLE, log_filename, tail
from harness.results import Status, make_record, write_json_atomic
from harness.runners.base import Interpreter, WorkerProcess

POLL_S = 0.05


class WorkerError(Exception):
    """The worker cannot make progress at all (it dies before running any probe); the message says why."""


class FrameworkUnavailable(Exception):
    """The framework cannot be imported, or the device is missing, in the prepared environment."""


@dataclass
class Supervisor:
    interpreter: Interpreter
    adapter: str
    device: str
    workdir: Path
    timeout_for: Callable[[str], float]
    quick: bool = False
    startup_timeout_s: float = 600.0
    on_record: Callable[[dict[str, Any]], None] = lambda record: None
    on_start: Callable[[str], None] = lambda probe: None
    workers_started: int = field(default=0, init=False)

    # ------------------------------------------------------------------------------------------ public
    def environment(self) -> dict[str, Any]:
        """Start a worker with an empty plan: it reports the environment (or why the framework is unavailable)."""
        probe_dir = self.workdir / "environment-check"
        self._reset(probe_dir)
        write_json_atomic(probe_dir / "plan.json", {"probes": []})
        proc = self._spawn(probe_dir)
        try:
            proc.wait(timeout=self.startup_timeout_s)
        except subprocess.TimeoutExpired:
            self._kill(proc)
            raise WorkerError(f"the worker did not start within {self.startup_timeout_s:.0f}s") from None
        finally:
            self._close(proc)
        return self._read_environment(probe_dir, proc.poll())

    def run(self, probes: list[str]) -> None:
        """Run `probes`, calling on_record for each record as it lands (including leftovers of a killed host)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "records").mkdir(exist_ok=True)
        remaining = list(probes)
        self._collect(remaining)
        fruitless = 0
        while remaining:
            write_json_atomic(self.workdir / "plan.json", {"probes": remaining})
            (self.workdir / "inflight.json").unlink(missing_ok=True)
            before = len(remaining)
            proc = self._spawn(self.workdir)
            outcome = self._watch(proc, remaining)
            self._collect(remaining)
            if outcome is None:  # worker exited by itself
                rc = proc.poll()
                if rc in (EXIT_UNAVAILABLE, EXIT_NO_DEVICE):
                    self._read_environment(self.workdir, rc)
                inflight = self._inflight()
                if inflight is not None and inflight in remaining:
                    self._record_crash(inflight, rc, remaining)
                elif rc != 0 or remaining:
                    fruitless += 1 if len(remaining) == before else 0
                    if fruitless >= 2:
                        raise WorkerError(
                            f"the worker exits ({_describe_exit(rc)}) without running a probe; "
                            f"its output: {tail(self.workdir / 'logs' / 'startup.log', 600) or tail(self._out_log(), 600)}"
                        )

    # ------------------------------------------------------------------------------------------ internals
    def _spawn(self, workdir: Path) -> WorkerProcess:
        (workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.workers_started += 1
        args = ["--adapter", self.adapter, "--device", self.device, "--workdir", self.interpreter.worker_path(workdir)]
        if self.quick:
            args.append("--quick")
        return self.interpreter.spawn(args, workdir)

    def _out_log(self) -> Path:
        return self.workdir / "logs" / "worker.out"

    def _watch(self, proc: WorkerProcess, remaining: list[str]) -> str | None:
        """Poll until the worker exits (None) or a probe overruns its limit ('timeout': worker killed)."""
        current: str | None = None
        since = time.monotonic()
        spawned = since
        try:
            while proc.poll() is None:
                self._collect(remaining)
                probe = self._inflight()
                if probe != current:
                    current, since = probe, time.monotonic()
                    if probe is not None:
                        self.on_start(probe)
                if probe is not None and time.monotonic() - since > self.timeout_for(probe):
                    self._kill(proc)
                    self._collect(remaining)
                    if probe in remaining:
                        limit = self.timeout_for(probe)
                        self._emit(make_record(
                            probe, Status.TIMEOUT, reason=f"no result after {limit:.0f}s; the worker was killed",
                            duration_s=time.monotonic() - since, log_tail=tail(self.workdir / "logs" / log_filename(probe)),
                        ), remaining)
                    return "timeout"
                if probe is None and current is None and time.monotonic() - spawned > self.startup_timeout_s:
                    self._kill(proc)
                    raise WorkerError(f"the worker started no probe within {self.startup_timeout_s:.0f}s")
                time.sleep(POLL_S)
        finally:
            self._close(proc)
        return None

    def _record_crash(self, probe: str, rc: int | None, remaining: list[str]) -> None:
        sig = -rc if rc is not None and rc < 0 else None
        self._emit(make_record(
            probe, Status.CRASHED, reason=f"the worker died while running it ({_describe_exit(rc)})",
            exit_code=rc if rc is not None and rc >= 0 else None, signal=sig,
            log_tail=tail(self.workdir / "logs" / log_filename(probe)),
        ), remaining)
        (self.workdir / "inflight.json").unlink(missing_ok=True)

    def _emit(self, record: dict[str, Any], remaining: list[str]) -> None:
        if record["probe"] in remaining:
            remaining.remove(record["probe"])
        self.on_record(record)

    def _collect(self, remaining: list[str]) -> None:
        """Hand over every record file the worker finished, then delete it (the document now holds it)."""
        folder = self.workdir / "records"
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.json")):
            try:
                record = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue  # being written: atomic rename means this is a stale temp name; next poll sees it
            self._emit(record, remaining)
            path.unlink(missing_ok=True)

    def _inflight(self) -> str | None:
        try:
            probe = json.loads((self.workdir / "inflight.json").read_text())["probe"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            return None
        return str(probe)

    def _read_environment(self, workdir: Path, rc: int | None) -> dict[str, Any]:
        try:
            info = json.loads((workdir / "environment.json").read_text())
        except (OSError, json.JSONDecodeError):
            raise WorkerError(
                f"the worker failed before reporting its environment ({_describe_exit(rc)}): "
                f"{tail(workdir / 'logs' / 'startup.log', 800) or tail(workdir / 'logs' / 'worker.out', 800) or 'no output'}"
            ) from None
        if not info.get("available"):
            raise FrameworkUnavailable(info.get("error", "cannot be imported"))
        if not info.get("device_ok", True):
            raise FrameworkUnavailable(info.get("device_error") or f"device {self.device} is not available")
        env: dict[str, Any] = info["environment"]
        return env

    @staticmethod
    def _reset(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("environment.json", "plan.json", "inflight.json"):
            (folder / name).unlink(missing_ok=True)

    @staticmethod
    def _kill(proc: WorkerProcess) -> None:
        """Kill the worker and everything it started (compilers, helpers)."""
        proc.kill()

    @staticmethod
    def _close(proc: WorkerProcess) -> None:
        proc.close()


def _describe_exit(rc: int | None) -> str:
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        hint = "; killed from outside, often the out-of-memory killer" if -rc == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {rc}"
