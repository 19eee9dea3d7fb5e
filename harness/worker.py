"""The worker: runs inside the framework's environment (venv, container, or this interpreter).

    python -m harness.worker --adapter frameworks.torch.adapter:TorchAdapter --device cpu --workdir DIR

It reads the probe list from DIR/plan.json and, for each probe without a record yet, announces it in
DIR/inflight.json, runs it with its stdout/stderr (file descriptors, so native libraries too) sent to
DIR/logs/<probe>.log, and writes its record to DIR/records/<probe>.json atomically. Nothing is passed through
stdout. If the process dies in the middle of a probe, the host sees the inflight file, records the probe as
crashed or timed out, and starts a new worker for the rest.

Exit codes: 0 done; 3 the framework cannot be imported; 4 the requested device is not available; 70 the host went
away (stdin closed).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.adapter import load_adapter_class
from harness.environment import collect_environment
from harness.protocol import (
    EXIT_NO_DEVICE,
    EXIT_ORPHANED,
    EXIT_UNAVAILABLE,
    LOG_TAIL_CHARS,
    log_filename,
    record_filename,
    tail,
)
from harness.results import Status, error_line, make_record, now_iso, write_json_atomic


def _watch_parent() -> None:
    """Exit when the host closes our stdin (it died or gave up), so no orphan keeps running probes.

    The thread reads the raw file descriptor, not sys.stdin's buffered reader: a daemon thread blocked inside the
    buffered reader holds its lock, and the interpreter aborts (SIGABRT) when it cannot take that lock at exit."""
    try:
        fd = os.dup(0)
    except OSError:
        return
    if os.isatty(fd):
        os.close(fd)
        return

    def wait() -> None:
        try:
            while os.read(fd, 4096):
                pass
        except OSError:
            pass
        os._exit(EXIT_ORPHANED)

    threading.Thread(target=wait, daemon=True, name="parent-watch").start()


@contextlib.contextmanager
def _redirect_fds(log_path: Path) -> Iterator[None]:
    """Send fd 1 and 2 (Python and native writes alike) to the probe's log for the duration of the probe."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log_path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_probe(adapter: Any, probe_id: str, ctx: Any) -> dict[str, Any]:
    """One probe, every exception mapped to a status: nothing a probe does stops the run."""
    from harness.adapter import NotMapped, Unsupported
    from harness.probes import dispatch

    started = now_iso()
    t0 = time.perf_counter()
    try:
        fn = dispatch(probe_id)
        outcome = fn(adapter, probe_id.split("/", 1)[1], ctx)
        status, reason, data = outcome.status, outcome.reason, outcome.data
    except NotMapped as exc:
        status, reason, data = Status.UNMAPPED, str(exc) or "not mapped by the adapter", {}
    except Unsupported as exc:
        if exc.looked_up:
            status, reason, data = Status.UNSUPPORTED, str(exc) or "unsupported", {"evidence": {"looked_up": exc.looked_up}}
        else:  # a verdict without evidence is the adapter's word, not a finding about the framework
            status, reason = Status.UNMAPPED, f"unsupported without evidence of a lookup: {exc}"
            data = {"evidence": {"looked_up": []}}
    except Exception as exc:
        status = Status.ERROR
        reason = error_line(exc)
        data = {"traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-LOG_TAIL_CHARS:]}
    return make_record(probe_id, status, reason=reason, data=data, started_at=started, duration_s=time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", required=True, help="module:Class of the adapter")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--quick", action="store_true", help="short timing rounds (tests and smoke checks)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per measurement (default 7; quick 5)")
    parser.add_argument("--no-parent-watch", action="store_true",
                        help="do not exit when stdin closes (in a container, where stdin is not the host's pipe)")
    args = parser.parse_args(argv)

    if not args.no_parent_watch:
        _watch_parent()
    work: Path = args.workdir.resolve()  # probes and converters may change directory
    records, logs = work / "records", work / "logs"
    records.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    plan = json.loads((work / "plan.json").read_text())["probes"]

    try:
        with _redirect_fds(logs / "startup.log"):
            adapter = load_adapter_class(args.adapter)(args.device)
            available, why = adapter.device_available()
            env = collect_environment(adapter, args.device, available)
    except Exception as exc:
        msg = error_line(exc)
        write_json_atomic(work / "environment.json", {"available": False, "error": msg})
        return EXIT_UNAVAILABLE
    write_json_atomic(work / "environment.json", {"available": True, "device_ok": available, "device_error": why, "environment": env})
    if not available:
        return EXIT_NO_DEVICE

    from harness.probes import Context
    from harness.timing import TimingConfig

    timing = TimingConfig.quick() if args.quick else TimingConfig()
    if args.rounds is not None:
        timing = dataclasses.replace(timing, rounds=args.rounds)
    ctx = Context(device=args.device, scratch=work / "scratch", timing=timing)
    for probe_id in plan:
        target = records / record_filename(probe_id)
        if target.is_symlink():  # not a record: something planted it; the probe still has to run
            target.unlink()
        elif target.is_file():
            continue
        write_json_atomic(work / "inflight.json", {"probe": probe_id, "started_at": now_iso(), "pid": os.getpid()})
        log_path = logs / log_filename(probe_id)
        with _redirect_fds(log_path):
            record = run_probe(adapter, probe_id, ctx)
        if record["status"] != Status.OK.value:
            record["log_tail"] = tail(log_path)
        write_json_atomic(target, record)
        (work / "inflight.json").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
