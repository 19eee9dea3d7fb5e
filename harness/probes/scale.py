"""Scale probe: does the framework's distributed API run an all-reduce across two processes?

The probe starts two processes in the framework's environment (loopback only: nothing leaves the machine), each
joins the group through the adapter and sum-reduces its own array; both must end with the sum. The rubric's
Scalability follows: 2 if the framework's own API does it, 1 if only a third-party package does, 0 if neither.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

import numpy as np

from harness.adapter import Adapter
from harness.probes import Context, Outcome
from harness.results import Status
from harness.scale_rank import rank_value

WORLD = 2
CHILD_TIMEOUT_S = float(os.environ.get("SHOWDOWN_SCALE_TIMEOUT", "150"))  # per attempt, both ranks
SCALE_PROBES = ("allreduce",)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rank_devices(adapter: Adapter) -> tuple[list[str], str]:
    """Each rank's device: its own GPU (cuda:<rank>) when the framework sees at least WORLD of them; otherwise the
    CPU for every rank (the same distributed API over CPU tensors), and the record says why."""
    if not adapter.device.startswith("cuda"):
        return ["cpu"] * WORLD, "cpu"
    count = adapter.gpu_count()
    if count >= WORLD:
        return [f"cuda:{rank}" for rank in range(WORLD)], f"one GPU per rank ({count} visible)"
    return ["cpu"] * WORLD, (f"a GPU all-reduce needs {WORLD} GPUs and {count} is visible: both ranks ran on CPU "
                             "tensors through the same distributed API (not a verdict on GPU collectives)")


def run(adapter: Adapter, name: str, ctx: Context) -> Outcome:
    if name != "allreduce":
        raise KeyError(f"unknown scale probe {name!r}")
    ctx.scratch.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    adapter_ref = f"{type(adapter).__module__}:{type(adapter).__name__}"
    devices, placement = rank_devices(adapter)
    procs, outs = [], []
    for rank in range(WORLD):
        out = ctx.scratch / f"allreduce-rank{rank}.json"
        out.unlink(missing_ok=True)
        outs.append(out)
        log = (ctx.scratch / f"allreduce-rank{rank}.log").open("wb")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "harness.scale_rank", adapter_ref, devices[rank], str(rank), str(WORLD), str(port), str(out)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=dict(os.environ)))
        log.close()
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    hung = [r for r, p in enumerate(procs) if p.poll() is None]
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    results: list[dict[str, Any]] = []
    for rank, out in enumerate(outs):
        try:
            results.append(json.loads(out.read_text()))
        except (OSError, json.JSONDecodeError):
            tail = (ctx.scratch / f"allreduce-rank{rank}.log").read_text(errors="replace")[-800:]
            results.append({"rank": rank, "error": "hung" if rank in hung else f"no result (exit {procs[rank].returncode})",
                            "log_tail": tail})
    data: dict[str, Any] = {"world": WORLD, "transport": f"127.0.0.1:{port}", "ranks": results, "devices": devices,
                            "placement": placement}
    unsupported = [r for r in results if r.get("unsupported")]
    if unsupported:
        looked_up = [x for r in unsupported for x in r.get("looked_up") or []]
        if not looked_up:  # a verdict without evidence is the adapter's word, not a finding (as in the worker)
            return Outcome(Status.UNMAPPED, f"unsupported without evidence of a lookup: {unsupported[0]['unsupported']}",
                           {**data, "evidence": {"looked_up": []}})
        return Outcome(Status.UNSUPPORTED, unsupported[0]["unsupported"], {**data, "evidence": {"looked_up": looked_up}})
    errors = [r for r in results if "error" in r]
    if errors:
        return Outcome(Status.FAILED, f"rank {errors[0]['rank']}: {errors[0]['error']}", data)
    expected = np.sum([rank_value(r) for r in range(WORLD)], axis=0)
    wrong = [r for r in results if not np.allclose(np.asarray(r["value"]), expected)]
    data.update(api=results[0]["api"], builtin=all(r["builtin"] for r in results), notes=results[0].get("notes", []))
    if wrong:
        return Outcome(Status.FAILED, f"rank {wrong[0]['rank']} got {wrong[0]['value']}, expected {expected.tolist()}", data)
    return Outcome(Status.OK, "", data)
