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


def plan(suites: list[str]) -> list[str]:
    """Every probe id of the given suites, in run order."""
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
            ids += [f"throughput/{w.id}/{mode}" for w in WORKLOADS for mode in ("eager", "compiled")]
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
    raise KeyError(f"unknown suite {suite!r} in probe {probe_id!r}")
