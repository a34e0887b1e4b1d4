"""Rolling-window dose accounting over piecewise-constant delivery.

A :class:`WindowMeter` remembers delivery as segments of constant rate (amount per
second) and answers two questions exactly, without ticking: how much was delivered in
the last ``window_s`` seconds, and when, at a given rate from now on, that amount will
reach a limit. Segments may overlap (several channels delivering the same drug), so the
rate at an instant is the sum of the segments that cover it.

A :class:`DoseLedger` keeps one meter per drug for a whole device: every channel and
every program delivering the drug records into it, so a cumulative limit holds across
channels and across reprogramming (RELIABILITY B-16), and PCA one-hour and four-hour
limits survive a stop and a new program.
"""

from __future__ import annotations

import math
from collections import deque


class WindowMeter:
    """Delivered amount over a trailing window (amount units are the caller's).

    ``window_s`` is the default window of :meth:`amount` and :meth:`time_to_reach` and
    the history kept; each query may ask for a window up to ``window_s``.
    """

    __slots__ = ("_segments", "window_s")

    def __init__(self, window_s: float) -> None:
        if not window_s > 0:
            raise ValueError("window_s must be positive")
        self.window_s = window_s
        self._segments: deque[tuple[float, float, float]] = deque()  # (t0, t1, rate)

    def widen(self, window_s: float) -> None:
        """Keep history for at least ``window_s`` from now on (never narrows)."""
        self.window_s = max(self.window_s, window_s)

    def record(self, t0: float, t1: float, rate_per_s: float) -> None:
        """Delivery at ``rate_per_s`` from ``t0`` to ``t1`` (t1 >= t0; ``t1`` in time order)."""
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

    def amount(self, t: float, window_s: float | None = None) -> float:
        """Amount delivered in (t - window, t]."""
        start = t - (window_s or self.window_s)
        total = 0.0
        for t0, t1, rate in self._segments:
            lo, hi = max(t0, start), min(t1, t)
            if hi > lo:
                total += (hi - lo) * rate
        return total

    def time_to_reach(
        self, t: float, rate_per_s: float, limit: float, window_s: float | None = None
    ) -> float:
        """Seconds from ``t`` until the window amount reaches ``limit`` if delivery runs at
        ``rate_per_s`` from ``t`` on; ``inf`` if it never does.

        The window amount is piecewise linear in time: it rises at the current rate and
        falls as old segments leave the window, so the crossing is found breakpoint by
        breakpoint.
        """
        return self._crossing(t, rate_per_s, limit, window_s or self.window_s, exceed=False)

    def time_to_exceed(
        self, t: float, rate_per_s: float, limit: float, window_s: float | None = None
    ) -> float:
        """Seconds from ``t`` until the window amount would rise above ``limit`` (0 if it
        is above already). A limit met exactly and held there (each dose leaving the
        window as the next one enters) is not exceeded."""
        return self._crossing(t, rate_per_s, limit, window_s or self.window_s, exceed=True)

    def _crossing(
        self, t: float, rate_per_s: float, limit: float, window: float, exceed: bool
    ) -> float:
        level = self.amount(t, window)
        if level > limit * (1 + 1e-9) if exceed else level >= limit:
            return 0.0
        if rate_per_s <= 0:
            return math.inf
        # The tail of the window (tau = x - window) sweeps the past [t - window, t): its
        # rate changes where a remembered segment starts or ends. Breakpoints are those
        # changes shifted by the window, and t + window, after which the tail is this
        # future delivery itself.
        start = t - window
        changes: list[tuple[float, float]] = []
        for t0, t1, rate in self._segments:
            if t1 > start and t0 < t:
                changes.append((t0, rate))
                changes.append((t1, -rate))
        changes.sort()
        edges = sorted({e + window for e, _ in changes if start < e < t} | {t + window})
        now, tail_rate, k = t, 0.0, 0
        for edge in edges:
            # Sample the tail mid-interval: at an edge, rounding could pick either side.
            tail = (now + edge) / 2.0 - window
            while k < len(changes) and changes[k][0] <= tail:
                tail_rate += changes[k][1]
                k += 1
            slope = rate_per_s - (rate_per_s if tail >= t else max(0.0, tail_rate))
            if slope > 0:
                dt = max(0.0, (limit - level) / slope)
                if now + dt <= edge:
                    return now + dt - t
            level += slope * (edge - now)
            now = edge
        return math.inf

    def _rate_at(self, t: float) -> float:
        return sum(rate for t0, t1, rate in self._segments if t0 <= t < t1)

    def segments(self) -> list[tuple[float, float, float]]:
        """The remembered segments (for snapshots)."""
        return list(self._segments)


class DoseLedger:
    """Amount of each drug delivered on one device, from every channel and program.

    Channels record what they deliver (:meth:`record`) and declare the amount rate they
    deliver at from now on (:meth:`set_rate`), so a channel can tell when a shared limit
    will be reached with every channel's delivery counted.
    """

    __slots__ = ("_meters", "_rates")

    def __init__(self) -> None:
        self._meters: dict[str, WindowMeter] = {}
        self._rates: dict[int, tuple[str, float]] = {}  # channel -> (drug key, amount/s)

    def meter(self, drug: str, window_s: float) -> WindowMeter:
        """The drug's meter, keeping at least ``window_s`` of history."""
        meter = self._meters.get(drug)
        if meter is None:
            meter = self._meters[drug] = WindowMeter(window_s)
        else:
            meter.widen(window_s)
        return meter

    def record(self, drug: str, t0: float, t1: float, rate_per_s: float) -> None:
        meter = self._meters.get(drug)
        if meter is not None:
            meter.record(t0, t1, rate_per_s)

    def amount(self, drug: str, t: float, window_s: float) -> float:
        meter = self._meters.get(drug)
        return meter.amount(t, window_s) if meter is not None else 0.0

    def set_rate(self, channel: int, drug: str | None, rate_per_s: float) -> None:
        if drug is None or rate_per_s <= 0:
            self._rates.pop(channel, None)
        else:
            self._rates[channel] = (drug, rate_per_s)

    def rate(self, drug: str) -> float:
        """Total amount rate of ``drug`` over every channel, now."""
        return sum(r for d, r in self._rates.values() if d == drug)

    def time_to_exceed(self, drug: str, t: float, limit: float, window_s: float) -> float:
        """Seconds until the drug's window amount would rise above ``limit`` with every
        channel delivering as now."""
        meter = self._meters.get(drug)
        if meter is None:
            return math.inf
        return meter.time_to_exceed(t, self.rate(drug), limit, window_s)

    def as_dict(self) -> dict[str, dict[str, object]]:
        return {
            drug: {"window_s": m.window_s, "segments": [list(s) for s in m.segments()]}
            for drug, m in self._meters.items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, object]]) -> DoseLedger:
        ledger = cls()
        for drug, item in data.items():
            window = item["window_s"]
            segments = item["segments"]
            assert isinstance(window, int | float) and isinstance(segments, list)
            meter = ledger.meter(drug, float(window))
            for t0, t1, rate in segments:
                meter._segments.append((float(t0), float(t1), float(rate)))
        return ledger
