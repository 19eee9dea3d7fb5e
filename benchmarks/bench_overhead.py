"""The timing harness's overhead against a bare loop, around the same tiny callable.

`harness.timing.measure` is the throughput probe's timed loop. Here it runs with a configuration that fixes the work
(one first call, one warm-up call, ROUNDS rounds of CALLS calls: no time-based warm-up or calibration), so it makes
exactly the calls `bare_loop` makes; whatever else it costs (clock reads, device syncs, the statistics, the record) is
its overhead. The callable is tiny (a counter increment, tens of nanoseconds), so any per-call cost the harness added
would show at full size.

`nox -s bench` saves these two in their own storage, timed in process CPU time (`--benchmark-timer
time.process_time`: the wall clock of a shared machine swings by tens of percent), and fails on a regression of
their median against the last saved run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from harness.timing import TimingConfig, measure

CALLS = 20_000  # per round
ROUNDS = 5  # the fewest the harness accepts
TRIALS = 31  # interleaved harness/bare pairs for the ratio
BOUND = 1.10  # the harness may add at most 10% to a bare loop making the same calls, on the tiniest callable
CONFIG = TimingConfig(rounds=ROUNDS, min_round_s=3600.0, warmup_s=0.0, warmup_iterations=1,
                      max_iterations_per_round=CALLS)  # calibration always lands on the cap: CALLS per round


class Tiny:
    """The callable timed by both loops: one attribute increment."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> None:
        self.n += 1


def harness_loop(fn: Callable[[], None]) -> Any:
    return measure(fn, config=CONFIG)


def bare_loop(fn: Callable[[], None]) -> None:
    fn()  # the harness's first call
    fn()  # and its one warm-up call
    for _ in range(ROUNDS):
        for _ in range(CALLS):
            fn()


def clock_per_call_loop(fn: Callable[[], None]) -> None:
    """A wrong timed loop (for the test of the bound): it reads the clock around every call instead of every round."""
    fn()
    fn()
    samples = []
    for _ in range(ROUNDS):
        total = 0.0
        for _ in range(CALLS):
            t0 = time.perf_counter()
            fn()
            total += time.perf_counter() - t0
        samples.append(total / CALLS)
    statistics.median(samples)


def overhead_ratio(loop: Callable[[Callable[[], None]], Any], trials: int = TRIALS) -> float:
    """Median CPU time of `loop` over median CPU time of `bare_loop`, timed alternately (ABBA order, so neither side
    always runs first). CPU time of this process, not wall time: on a shared machine a wall clock also counts the
    time the process waited for a core, which swings either side by tens of percent; both loops are pure CPU work."""
    fn = Tiny()
    looped: list[float] = []
    bare: list[float] = []
    for i in range(trials):
        pair = [(loop, looped), (bare_loop, bare)]
        for run, into in (pair if i % 2 == 0 else pair[::-1]):
            t0 = time.process_time()
            run(fn)
            into.append(time.process_time() - t0)
    return statistics.median(looped) / statistics.median(bare)


def test_harness_loop(benchmark: Any) -> None:
    fn = Tiny()
    m = benchmark(harness_loop, fn)
    assert m.iterations_per_round == CALLS and m.rounds == ROUNDS and m.warmup_iterations == 1, \
        "the configuration no longer fixes the work; the comparison with the bare loop would be unequal"
    ratio = overhead_ratio(harness_loop)
    benchmark.extra_info["overhead_ratio"] = round(ratio, 4)
    benchmark.extra_info["bound"] = BOUND
    benchmark.extra_info["calls_per_run"] = 2 + ROUNDS * CALLS
    assert ratio <= BOUND, f"the harness's timed loop takes {ratio:.3f}x a bare loop making the same calls (bound {BOUND})"


def test_bare_loop(benchmark: Any) -> None:
    fn = Tiny()
    benchmark(bare_loop, fn)
    assert fn.n >= 2 + ROUNDS * CALLS


def test_bound_catches_a_clock_per_call_loop() -> None:
    """The bound is not so loose that a loop with a per-call cost passes it."""
    ratio = overhead_ratio(clock_per_call_loop, trials=9)
    assert ratio > BOUND, f"a loop reading the clock around every call passed the bound ({ratio:.3f} <= {BOUND})"


def test_same_calls_on_both_sides() -> None:
    """The ratio compares equal work: the harness's loop and the bare loop make the same number of calls."""
    a, b = Tiny(), Tiny()
    harness_loop(a)
    bare_loop(b)
    assert a.n == b.n == 2 + ROUNDS * CALLS
