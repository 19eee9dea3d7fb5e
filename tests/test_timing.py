"""The timing protocol, checked with a fake clock (no sleeping, no flaky wall-clock assertions)."""

from __future__ import annotations

import pytest

from harness import timing


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_measure_calibrates_rounds_and_keeps_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(timing, "CLOCK", clock)
    calls = {"n": 0, "sync": 0}

    def step() -> None:
        calls["n"] += 1
        clock.now += 0.5 if calls["n"] == 1 else 0.002  # slow first call (a compile), then 2 ms

    def sync() -> None:
        calls["sync"] += 1

    cfg = timing.TimingConfig(rounds=5, min_round_s=0.1, warmup_s=0.01, warmup_iterations=3)
    m = timing.measure(step, sync, cfg)
    assert m.first_call_s == pytest.approx(0.5)
    assert m.iterations_per_round == 50  # 0.1 s / 2 ms
    assert len(m.samples_s) == 5 and all(s == pytest.approx(0.002) for s in m.samples_s)
    assert m.median_s == pytest.approx(0.002) and m.iqr_s == pytest.approx(0.0)
    assert calls["sync"] >= 2 * 5  # before and after every round
    assert m.warnings == []


def test_summary_counts_outliers_without_dropping_them() -> None:
    samples = [1.0, 1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 5.0]
    s = timing.summarize(samples)
    assert s["outliers"] == 1
    assert s["max_s"] == 5.0 and s["median_s"] == pytest.approx(1.0)


def test_fewer_than_five_rounds_is_refused() -> None:
    with pytest.raises(ValueError):
        timing.measure(lambda: None, config=timing.TimingConfig(rounds=3))


def test_noisy_measurement_warns_with_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(timing, "CLOCK", clock)
    # first call + 3 warm-up calls at 10 ms -> 1 iteration per 10 ms round; then rounds alternate 10 and 30 ms
    durations = iter([0.01] * 4 + [0.01, 0.03, 0.01, 0.03, 0.01])

    def step() -> None:
        clock.now += next(durations)

    m = timing.measure(step, config=timing.TimingConfig(rounds=5, min_round_s=0.01, warmup_s=0.0, warmup_iterations=3))
    assert m.iterations_per_round == 1
    assert m.samples_s == pytest.approx([0.01, 0.03, 0.01, 0.03, 0.01])
    assert m.cv > 0.5
    assert any("close other programs and run it again" in w for w in m.warnings)
