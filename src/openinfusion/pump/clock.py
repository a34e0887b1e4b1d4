"""Pump time: a monotonic clock for delivery, a wall clock only for display and schedules.

Delivery integrates on monotonic seconds (``t_s``) and never on wall time, so a wall-clock
step (NTP, a user setting the clock, daylight saving) cannot change a delivered volume or
a remaining time (RELIABILITY F-08). Wall time is ``start_utc`` + ``t_s`` + the sum of the
clock steps recorded so far; local time adds the time zone's rules (F-09: daylight-saving
gaps and repeats are resolved by :mod:`zoneinfo`, schedules by elapsed time, see
``local_boundaries``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from openinfusion.errors import InputError


@dataclass(slots=True)
class PumpClock:
    """Maps pump seconds to wall (UTC) and local time."""

    start_utc: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    steps: list[tuple[float, float]] = field(default_factory=list)  # (t_s, offset_s)

    def __post_init__(self) -> None:
        if self.start_utc.tzinfo is None:
            raise InputError("start", self.start_utc.isoformat(), "must carry a time zone")

    @classmethod
    def at(cls, start: str, tz: str = "UTC") -> PumpClock:
        """``start`` as ISO 8601 ('2026-03-29T00:00:00+01:00'); ``tz`` an IANA zone name."""
        try:
            when = datetime.fromisoformat(start)
        except ValueError:
            raise InputError("start", start, "must be an ISO 8601 date-time") from None
        try:
            zone = ZoneInfo(tz)
        except (KeyError, ValueError):
            raise InputError("timezone", tz, "is not an IANA time zone name") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=zone)
        return cls(when.astimezone(UTC), zone)

    def offset_s(self, t_s: float) -> float:
        return sum(offset for at, offset in self.steps if at <= t_s)

    def utc(self, t_s: float) -> datetime:
        return self.start_utc + timedelta(seconds=t_s + self.offset_s(t_s))

    def local(self, t_s: float) -> datetime:
        return self.utc(t_s).astimezone(self.tz)

    def step(self, t_s: float, offset_s: float) -> None:
        """Record a wall-clock step at pump time ``t_s`` (delivery is unaffected)."""
        self.steps.append((t_s, offset_s))

    def t_at_utc(self, when: datetime, after_s: float) -> float:
        """Pump seconds at which the wall clock shows ``when`` (with steps up to ``after_s``)."""
        return (when - self.start_utc).total_seconds() - self.offset_s(after_s)

    def local_boundaries(
        self, t_from: float, t_to: float, times: list[time]
    ) -> list[tuple[float, int]]:
        """Pump times in [t_from, t_to) when the local clock passes each of ``times``
        (index into ``times``), day by day.

        A time inside a spring-forward gap takes effect at the first instant after the
        gap; a time in the repeated fall-back hour takes effect once, at its first
        occurrence. So no scheduled segment is skipped or doubled (F-09).
        """
        out: list[tuple[float, int]] = []
        day = self.local(t_from).date() - timedelta(days=1)
        end_day = self.local(t_to).date() + timedelta(days=1)
        while day <= end_day:
            for index, clock_time in enumerate(times):
                utc = self._first_existing(datetime.combine(day, clock_time))
                t = self.t_at_utc(utc, t_from)
                if t_from <= t < t_to:
                    out.append((t, index))
            day += timedelta(days=1)
        return sorted(out)

    def _first_existing(self, naive: datetime) -> datetime:
        """UTC instant of local ``naive`` (first occurrence); in a DST gap, the gap's end."""
        probe = naive
        for _ in range(24 * 60):
            aware = probe.replace(tzinfo=self.tz, fold=0)
            utc = aware.astimezone(UTC)
            if utc.astimezone(self.tz).replace(tzinfo=None) == probe:
                return utc
            probe += timedelta(minutes=1)  # inside a spring-forward gap
        raise InputError("time", naive.isoformat(), "does not exist in this time zone")
