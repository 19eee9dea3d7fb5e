"""Host side of the worker protocol (see harness.worker): start a worker, collect its record files, enforce each
probe's wall-clock limit, and turn a dead or hung worker into a record for the probe it was running; then start a
new worker for the probes that are left. The host never imports a framework.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import safefs
from harness.protocol import EXIT_NO_DEVICE, EXIT_UNAVAILABLE, LOG_TAIL_CHARS, log_filename, record_filename
from harness.results import Status, make_record, write_json_atomic
from harness.runners.base import Interpreter, WorkerProcess

POLL_S = 0.05
MEMORY_POLL_S = 0.25
RECORD_LIMIT = 32 * 1024 * 1024  # bytes: a record file larger than this is not a record


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
    rounds: int | None = None  # timed rounds per measurement (None: the timing protocol's default)
    startup_timeout_s: float = 600.0
    on_record: Callable[[dict[str, Any]], None] = lambda record: None
    on_start: Callable[[str], None] = lambda probe: None
    memory_limit_bytes: int | None = None  # the worker's resident memory (all its processes); None: no limit
    deadline: float | None = None  # time.monotonic() after which no new probe starts (a run's --budget)
    workers_started: int = field(default=0, init=False)
    stopped_by_budget: bool = field(default=False, init=False)

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
            safefs.unlink(self.workdir, "inflight.json")
            before = len(remaining)
            if self.deadline is not None and time.monotonic() > self.deadline:
                self.stopped_by_budget = True
                break
            proc = self._spawn(self.workdir)
            outcome = self._watch(proc, remaining)
            self._collect(remaining)
            if outcome == "budget":
                self.stopped_by_budget = True
                break
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
                            f"its output: {self._tail('logs/startup.log', 600) or self._tail('logs/worker.out', 600)}"
                        )

    # ------------------------------------------------------------------------------------------ internals
    def _spawn(self, workdir: Path) -> WorkerProcess:
        workdir.mkdir(parents=True, exist_ok=True)
        for name in ("logs", "records"):  # real folders: whatever a worker left there instead is removed
            safefs.ensure_dir(workdir, name)
        self.workers_started += 1
        args = ["--adapter", self.adapter, "--device", self.device, "--workdir", self.interpreter.worker_path(workdir)]
        if self.quick:
            args.append("--quick")
        if self.rounds is not None:
            args += ["--rounds", str(self.rounds)]
        return self.interpreter.spawn(args, workdir)

    def _tail(self, relative: str, chars: int = LOG_TAIL_CHARS) -> str | None:
        return safefs.tail(self.workdir, relative, chars)

    def _watch(self, proc: WorkerProcess, remaining: list[str]) -> str | None:
        """Poll until the worker exits (None), a probe overruns its limit ('timeout'), or the worker goes over the
        memory limit ('memory'); in both latter cases the worker is killed and the probe recorded."""
        current: str | None = None
        since = time.monotonic()
        spawned = since
        started_any = False  # the startup limit applies only until the first probe starts
        next_memory_check = since
        try:
            while proc.poll() is None:
                self._collect(remaining)
                probe = self._inflight()
                if probe != current:
                    if probe is not None and self.deadline is not None and time.monotonic() > self.deadline:
                        self._kill(proc)  # the budget is spent: the probe that just started is left for a resume
                        self._collect(remaining)
                        safefs.unlink(self.workdir, "inflight.json")
                        return "budget"
                    current, since = probe, time.monotonic()
                    if probe is not None:
                        started_any = True
                        self.on_start(probe)
                if probe is not None and time.monotonic() - since > self.timeout_for(probe):
                    self._kill(proc)
                    self._collect(remaining)
                    if probe in remaining:
                        limit = self.timeout_for(probe)
                        self._emit(make_record(
                            probe, Status.TIMEOUT, reason=f"no result after {limit:.0f}s; the worker was killed",
                            duration_s=time.monotonic() - since, log_tail=self._tail(f"logs/{log_filename(probe)}"),
                        ), remaining)
                    return "timeout"
                if self.memory_limit_bytes and time.monotonic() >= next_memory_check:
                    next_memory_check = time.monotonic() + MEMORY_POLL_S
                    used = resident_bytes(getattr(proc, "pid", None))
                    if used is not None and used > self.memory_limit_bytes:
                        self._kill(proc)
                        self._collect(remaining)
                        if probe is not None and probe in remaining:
                            self._emit(make_record(
                                probe, Status.CRASHED,
                                reason=f"the worker went over the memory limit ({used / 2**30:.2f} GiB resident > "
                                       f"{self.memory_limit_bytes / 2**30:.2f} GiB) and was killed",
                                duration_s=time.monotonic() - since, log_tail=self._tail(f"logs/{log_filename(probe)}"),
                                data={"memory_limit_bytes": self.memory_limit_bytes, "resident_bytes": used},
                            ), remaining)
                        safefs.unlink(self.workdir, "inflight.json")
                        return "memory"
                if not started_any and probe is None and time.monotonic() - spawned > self.startup_timeout_s:
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
            log_tail=self._tail(f"logs/{log_filename(probe)}"),
        ), remaining)
        safefs.unlink(self.workdir, "inflight.json")

    def _emit(self, record: dict[str, Any], remaining: list[str]) -> None:
        if record["probe"] in remaining:
            remaining.remove(record["probe"])
        self.on_record(record)

    def _collect(self, remaining: list[str]) -> None:
        """Hand over every record file the worker finished, then delete it (the document now holds it).

        Only regular files named after a planned probe are read (never through a link), and only what is a record
        of that probe is accepted: whatever else a worker leaves there is not trusted."""
        wanted = {record_filename(p): p for p in remaining}
        for name in safefs.list_files(self.workdir, "records", ".json"):
            probe = wanted.get(name)
            if probe is None:
                continue
            try:
                record = safefs.read_json(self.workdir, f"records/{name}", RECORD_LIMIT)
            except (OSError, ValueError):
                continue  # being written (atomic rename: a later poll sees it whole) or not a record at all
            if not _is_record_of(record, probe):
                record = make_record(probe, Status.ERROR, reason="the worker wrote a malformed record for this probe",
                                     log_tail=self._tail(f"logs/{log_filename(probe)}"))
            self._emit(record, remaining)
            safefs.unlink(self.workdir, f"records/{name}")

    def _inflight(self) -> str | None:
        try:
            probe = safefs.read_json(self.workdir, "inflight.json", 64 * 1024)["probe"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return probe if isinstance(probe, str) else None

    def _read_environment(self, workdir: Path, rc: int | None) -> dict[str, Any]:
        try:
            info = safefs.read_json(workdir, "environment.json", 4 * 1024 * 1024)
            if not isinstance(info, dict):
                raise ValueError("not an object")
        except (OSError, ValueError):
            raise WorkerError(
                f"the worker failed before reporting its environment ({_describe_exit(rc)}): "
                f"{safefs.tail(workdir, 'logs/startup.log', 800) or safefs.tail(workdir, 'logs/worker.out', 800) or 'no output'}"
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
            safefs.unlink(folder, name)

    @staticmethod
    def _kill(proc: WorkerProcess) -> None:
        """Kill the worker and everything it started (compilers, helpers)."""
        proc.kill()

    @staticmethod
    def _close(proc: WorkerProcess) -> None:
        proc.close()


def _is_record_of(record: Any, probe: str) -> bool:
    from harness.results import STATUSES

    return (isinstance(record, dict) and record.get("probe") == probe and record.get("status") in STATUSES
            and isinstance(record.get("data"), dict) and isinstance(record.get("reason"), str))


def resident_bytes(pid: int | None) -> int | None:
    """Resident memory of every process in `pid`'s process group (the worker and what it started), from /proc."""
    if pid is None or not os.path.isdir("/proc"):
        return None
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            if int(fields[2]) != pid:  # field 5 of stat, the process group
                continue
            with open(f"/proc/{entry}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total


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
