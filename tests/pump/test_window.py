"""Rolling-window accounting against a brute-force integration."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openinfusion.pump.window import WindowMeter


def brute(segments: list[tuple[float, float, float]], t: float, window: float) -> float:
    return sum(max(0.0, min(b, t) - max(a, t - window)) * r for a, b, r in segments)


segment_lists = st.lists(
    st.tuples(st.floats(0, 500), st.floats(0.1, 300), st.floats(0, 5)), max_size=12
)


def build(
    raw: list[tuple[float, float, float]], window: float
) -> tuple[WindowMeter, list[tuple[float, float, float]], float]:
    meter, segs, t = WindowMeter(window), [], 0.0
    for gap, length, rate in raw:
        t0, t1 = t + gap, t + gap + length
        meter.record(t0, t1, rate)
        segs.append((t0, t1, rate))
        t = t1
    return meter, segs, t


@given(segment_lists, st.floats(10, 1000), st.floats(0, 500))
def test_amount_matches_brute_force(
    raw: list[tuple[float, float, float]], window: float, extra: float
) -> None:
    meter, segs, t = build(raw, window)
    assert meter.amount(t + extra) == pytest.approx(brute(segs, t + extra, window), abs=1e-6)


@given(segment_lists, st.floats(10, 1000), st.floats(0.01, 5), st.floats(1, 2000))
def test_time_to_reach_is_the_first_crossing(
    raw: list[tuple[float, float, float]], window: float, rate: float, limit: float
) -> None:
    meter, segs, t = build(raw, window)
    dt = meter.time_to_reach(t, rate, limit)
    future = [*segs, (t, t + 10 * window + 10_000, rate)]

    def level(x: float) -> float:
        return brute(future, x, window)

    if level(t) >= limit:
        assert dt == 0.0
        return
    if math.isinf(dt):
        # never reached: the level is bounded by rate * window after the history leaves
        for k in range(200):
            assert level(t + k * (window / 50)) < limit + 1e-6
        return
    assert level(t + dt) == pytest.approx(limit, rel=1e-6, abs=1e-6)
    for k in range(1, 50):
        assert level(t + dt * k / 50) <= limit + 1e-6
