"""The timing protocol, in one place.

1. The first call is timed on its own: for a compiled step it includes tracing and compilation.
2. Warm-up: at least `warmup_iterations` calls and `warmup_s` seconds, so caches, allocators and JITs settle.
3. Calibration: iterations per round chosen so a round lasts at least `min_round_s` (far above timer resolution).
4. Rounds: `rounds` rounds of that many calls; the device is synchronised before the clock starts and before it
   stops, so queued GPU work is inside the timed region. A sample is round time / iterations.
5. Statistics: median and IQR (robust), mean, standard deviation, MAD; outliers beyond 1.5 IQR are counted and
   flagged, never dropped; every raw sample is kept.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

CLOCK = time.perf_counter


@dataclass(frozen=True)
class TimingConfig:
    rounds: int = 7
    min_round_s: float = 0.1
    warmup_s: float = 0.2
    warmup_iterations: int = 3
    max_iterations_per_round: int = 1_000_000

    @classmethod
    def quick(cls) -> TimingConfig:
        """For tests and smoke checks of the machinery: still 5 rounds, but short ones."""
        return cls(rounds=5, min_round_s=0.01, warmup_s=0.02, warmup_iterations=2)


@dataclass
class Measurement:
    first_call_s: float
    warmup_iterations: int
    iterations_per_round: int
    rounds: int
    samples_s: list[float]
    median_s: float
    iqr_s: float
    q1_s: float
    q3_s: float
    mean_s: float
    stdev_s: float
    mad_s: float
    min_s: float
    max_s: float
    cv: float
    outliers: int
    timer: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile (NumPy's default), without NumPy: the host may not have it in the worker."""
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples: list[float]) -> dict[str, float | int]:
    """Robust statistics of per-iteration samples (seconds)."""
    ordered = sorted(samples)
    median = statistics.median(ordered)
    q1, q3 = _quantile(ordered, 0.25), _quantile(ordered, 0.75)
    iqr = q3 - q1
    mean = statistics.fmean(ordered)
    stdev = statistics.stdev(ordered) if len(ordered) > 1 else 0.0
    mad = statistics.median(abs(s - median) for s in ordered)
    outliers = sum(1 for s in ordered if s < q1 - 1.5 * iqr or s > q3 + 1.5 * iqr)
    return {
        "median_s": median, "iqr_s": iqr, "q1_s": q1, "q3_s": q3, "mean_s": mean, "stdev_s": stdev,
        "mad_s": mad, "min_s": ordered[0], "max_s": ordered[-1], "cv": stdev / mean if mean > 0 else 0.0,
        "outliers": outliers,
    }


MIN_ROUNDS = 5


def rounds_argument(text: str) -> int:
    """A command line's number of timed rounds (`showdown run --rounds`, `showdown batch submit --rounds`)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of rounds: {text!r}") from None
    if value < MIN_ROUNDS:
        raise argparse.ArgumentTypeError(f"at least {MIN_ROUNDS} rounds are needed for a median and an IQR, not {value}")
    return value


def measure(fn: Callable[[], Any], sync: Callable[[], None] = lambda: None, config: TimingConfig | None = None) -> Measurement:
    """Time `fn` by the protocol above. `sync` must block until the device has finished `fn`'s work."""
    config = config or TimingConfig()
    if config.rounds < MIN_ROUNDS:
        raise ValueError(f"at least {MIN_ROUNDS} rounds are needed for a median and an IQR worth reporting")

    sync()
    start = CLOCK()
    fn()
    sync()
    first_call = CLOCK() - start

    warm = 0
    warm_start = CLOCK()
    while warm < config.warmup_iterations or CLOCK() - warm_start < config.warmup_s:
        fn()
        warm += 1
    sync()
    per_call = max((CLOCK() - warm_start) / warm, 1e-9)
    iterations = max(1, min(config.max_iterations_per_round, math.ceil(config.min_round_s / per_call)))

    samples: list[float] = []
    for _ in range(config.rounds):
        sync()
        t0 = CLOCK()
        for _ in range(iterations):
            fn()
        sync()
        samples.append((CLOCK() - t0) / iterations)

    stats = summarize(samples)
    info = time.get_clock_info("perf_counter")
    warnings: list[str] = []
    if stats["cv"] > 0.10:
        warnings.append(
            f"CV {stats['cv']:.0%}: the machine was busy or the step is unstable; close other programs and run it "
            "again, with more rounds if need be (showdown run --rounds 15)"
        )
    if stats["outliers"]:
        warnings.append(f"{stats['outliers']} of {len(samples)} rounds are outliers (beyond 1.5 IQR); kept in the samples")
    return Measurement(
        first_call_s=first_call,
        warmup_iterations=warm,
        iterations_per_round=iterations,
        rounds=config.rounds,
        samples_s=samples,
        timer={"name": "perf_counter", "resolution_s": info.resolution, "monotonic": info.monotonic},
        warnings=warnings,
        **stats,  # type: ignore[arg-type]
    )
