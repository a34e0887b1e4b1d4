"""Rolling-window dose accounting over piecewise-constant delivery.

A :class:`WindowMeter` remembers delivery as segments of constant rate (amount per
second) and answers two questions exactly, without ticking: how much was delivered in
the last ``window_s`` seconds, and when, at a given rate from now on, that amount will
reach a limit. The pump uses it for cumulative library limits (RELIABILITY B-16) and for
PCA one-hour and four-hour limits.
"""

from __future__ import annotations

import math
from collections import deque


class WindowMeter:
    """Delivered amount over a trailing window (amount units are the caller's)."""

    __slots__ = ("_segments", "window_s")

    def __init__(self, window_s: float) -> None:
        if not window_s > 0:
            raise ValueError("window_s must be positive")
        self.window_s = window_s
        self._segments: deque[tuple[float, float, float]] = deque()  # (t0, t1, rate)

    def record(self, t0: float, t1: float, rate_per_s: float) -> None:
        """Delivery at ``rate_per_s`` from ``t0`` to ``t1`` (t1 >= t0, in time order)."""
        if t1 <= t0 or rate_per_s <= 0:
            return
        segs = self._segments
        if segs and segs[-1][1] == t0 and segs[-1][2] == rate_per_s:
            segs[-1] = (segs[-1][0], t1, rate_per_s)
        else:
            segs.append((t0, t1, rate_per_s))
        horizon = t1 - self.window_s
        while segs and segs[0][1] <= horizon:
            segs.popleft()

    def amount(self, t: float) -> float:
        """Amount delivered in (t - window, t]."""
        start = t - self.window_s
        total = 0.0
        for t0, t1, rate in self._segments:
            lo, hi = max(t0, start), min(t1, t)
            if hi > lo:
                total += (hi - lo) * rate
        return total

    def time_to_reach(self, t: float, rate_per_s: float, limit: float) -> float:
        """Seconds from ``t`` until the window amount reaches ``limit`` if delivery runs at
        ``rate_per_s`` from ``t`` on; ``inf`` if it never does.

        The window amount is piecewise linear in time: it rises at the current rate and
        falls as old segments leave the window, so the crossing is found breakpoint by
        breakpoint.
        """
        level = self.amount(t)
        if level >= limit:
            return 0.0
        if rate_per_s <= 0:
            return math.inf
        # Breakpoints where the tail rate changes: segment edges shifted by the window,
        # and t + window, after which the tail is this future delivery itself.
        start = t - self.window_s
        edges = sorted(
            {e + self.window_s for seg in self._segments for e in seg[:2] if start < e < t}
            | {t + self.window_s}
        )
        now = t
        for edge in edges:
            # Sample the tail mid-interval: at an edge, rounding could pick either side.
            tail = (now + edge) / 2.0 - self.window_s
            tail_rate = rate_per_s if tail >= t else self._rate_at(tail)
            slope = rate_per_s - tail_rate
            if slope > 0:
                dt = (limit - level) / slope
                if now + dt <= edge:
                    return now + dt - t
            level += slope * (edge - now)
            now = edge
        return math.inf

    def _rate_at(self, t: float) -> float:
        for t0, t1, rate in self._segments:
            if t0 <= t < t1:
                return rate
        return 0.0
