"""Throughput probe: one catalog workload, eager or compiled, timed by harness.timing."""

from __future__ import annotations

from harness.adapter import Adapter
from harness.catalog.workloads import WORKLOADS_BY_ID
from harness.probes import Context, Outcome
from harness.results import Status
from harness.timing import measure


def run(adapter: Adapter, entry: str, ctx: Context) -> Outcome:
    workload_id, _, mode = entry.partition("/")
    spec = WORKLOADS_BY_ID[workload_id]
    if mode not in ("eager", "compiled"):
        raise KeyError(f"unknown throughput mode {mode!r}")
    arrays = spec.arrays(ctx.device)
    built = adapter.workload(spec, arrays, mode)
    expected = spec.param_count(ctx.device)
    m = measure(built.step, built.sync, ctx.timing)
    flops = spec.flops(ctx.device)
    data = {
        "workload": spec.id, "mode": mode, "compile_path": built.compile_path,
        "sizes": spec.sizes(ctx.device), "dtype": "float32",
        "param_count": built.param_count, "expected_param_count": expected,
        "param_count_matches": built.param_count == expected,
        "flops_per_step": flops, "flops_per_s": flops / m.median_s if m.median_s > 0 else None,
        "steps_per_s": 1.0 / m.median_s if m.median_s > 0 else None,
        "timing": m.as_dict(), "notes": built.notes,
    }
    return Outcome(Status.OK, "", data)
