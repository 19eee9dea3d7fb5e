"""The shared suite. A probe takes an adapter and one catalog entry and returns an outcome; it never special-cases
a framework (if it would need to, the adapter interface is missing something).

Probe ids are '<suite>/<entry>[/<mode>]'; the plan for a run is known without importing any framework.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.results import Status
from harness.timing import TimingConfig

SUITES = ("layers", "graphs", "throughput", "onnx", "numerics", "scale")

#: default wall-clock limit per probe, seconds (a compile or a converter can be slow; a hang is not)
DEFAULT_TIMEOUTS = {"layers": 120.0, "graphs": 300.0, "throughput": 300.0, "onnx": 300.0, "numerics": 120.0, "scale": 240.0}


@dataclass
class Context:
    device: str
    scratch: Path
    timing: TimingConfig = field(default_factory=TimingConfig)


@dataclass
class Outcome:
    status: Status
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)


#: the precisions timed on each device class: strict float32 everywhere (the probe id without a suffix), TF32 and
#: bfloat16 mixed precision on CUDA as their own probes (throughput/<workload>/<mode>/<precision>)
EXTRA_PRECISIONS = {"cpu": (), "cuda": ("tf32", "bf16")}


def plan(suites: list[str], device: str = "cpu") -> list[str]:
    """Every probe id of the given suites on the device, in run order."""
    from harness.catalog.onnx_models import MODELS
    from harness.catalog.ops import OPS
    from harness.catalog.workloads import WORKLOADS
    from harness.probes.graphs import GRAPH_PROBES
    from harness.probes.numerics import NUMERICS_PROBES
    from harness.probes.scale import SCALE_PROBES

    ids: list[str] = []
    for suite in suites:
        if suite == "layers":
            ids += [f"layers/{op.id}" for op in OPS]
        elif suite == "graphs":
            ids += [f"graphs/{name}" for name in GRAPH_PROBES]
        elif suite == "throughput":
            extra = EXTRA_PRECISIONS["cuda" if device.startswith("cuda") else "cpu"]
            ids += [f"throughput/{w.id}/{mode}{suffix}" for w in WORKLOADS for mode in ("eager", "compiled")
                    for suffix in ("", *(f"/{p}" for p in extra))]
        elif suite == "onnx":
            ids += [f"onnx/{direction}/{m.id}" for direction in ("export", "import") for m in MODELS]
        elif suite == "numerics":
            ids += [f"numerics/{name}" for name in NUMERICS_PROBES]
        elif suite == "scale":
            ids += [f"scale/{name}" for name in SCALE_PROBES]
        else:
            raise KeyError(f"unknown suite {suite!r}; known: {', '.join(SUITES)}")
    return ids


def dispatch(probe_id: str) -> Callable[[Any, str, Context], Outcome]:
    """The probe function for a probe id (imported lazily: each suite module only when used)."""
    suite = probe_id.partition("/")[0]
    if suite == "layers":
        from harness.probes import layers

        return layers.run
    if suite == "graphs":
        from harness.probes import graphs

        return graphs.run
    if suite == "throughput":
        from harness.probes import throughput

        return throughput.run
    if suite == "onnx":
        from harness.probes import onnx

        return onnx.run
    if suite == "numerics":
        from harness.probes import numerics

        return numerics.run
    if suite == "scale":
        from harness.probes import scale

        return scale.run
    if suite == "conformance":  # not one of SUITES: ONNX's node tests, run by `showdown conformance`
        from harness.probes import conformance

        return conformance.run
    if suite == "portability":  # not one of SUITES: the export step of `showdown portability`
        from harness.probes import portability

        return portability.run
    raise KeyError(f"unknown suite {suite!r} in probe {probe_id!r}")
