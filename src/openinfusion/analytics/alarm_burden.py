"""Alarm burden: how often pumps alarm, how fast nurses answer, and how much is noise.

- **rate** = alarms × 1000 ÷ infusion-hours (infusion time clipped to the window), by code,
  priority and unit;
- **time to acknowledge** = ``acknowledged_at − raised_at`` (s), median and p90;
- **nuisance** = cleared within ``nuisance_s`` (default 10 s) of being raised and not
  acknowledged before it cleared: it went away with nobody intervening (non-actionable
  alarms drive alarm fatigue: Bonafide et al., J Hosp Med 2015;10:345);
- **fatigue indicators**: alarms per bed-day (a pump with an infusion running on a UTC day),
  repeated alarms (same code on the same pump channel within ``repeat_min`` of the one
  before) and the high-priority share (IEC 60601-1-8 priorities).

Counts, nuisance and repeats are SQL aggregates (a ``LAG`` window for repeats); only the
acknowledgement delays and infusion day spans come back as arrays for NumPy.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Float, and_, case, cast, func, select
from sqlalchemy.orm import Session

from openinfusion.analytics.queries import (
    epoch_s,
    greatest,
    in_window,
    least,
    unit_filter,
    unit_label,
)
from openinfusion.analytics.window import ReportWindow, window_end
from openinfusion.errors import InputError
from openinfusion.server.models import Alarm, Infusion, Pump

DEFAULT_NUISANCE_S = 10.0
DEFAULT_REPEAT_MIN = 30.0
HIGH = "high"


@dataclass(slots=True)
class _Group:
    alarms: int = 0
    high: int = 0
    nuisance: int = 0
    acknowledged: int = 0
    repeated: int = 0


def _per_1000(count: int, hours: float) -> float | None:
    return 1000.0 * count / hours if hours > 0 else None


def _stats(values: np.ndarray) -> dict[str, float | int | None]:
    if values.size == 0:
        return {"count": 0, "median_s": None, "p90_s": None}
    return {
        "count": int(values.size),
        "median_s": float(np.median(values)),
        "p90_s": float(np.quantile(values, 0.9)),
    }


def alarm_report(
    session: Session,
    window: ReportWindow,
    nuisance_s: float = DEFAULT_NUISANCE_S,
    repeat_min: float = DEFAULT_REPEAT_MIN,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The alarm burden of the window and unit (``now`` ends infusions still running)."""
    if not 0 < nuisance_s <= 3600:
        raise InputError("nuisance_s", nuisance_s, "must be more than 0 and at most 3600 s")
    if not 0 < repeat_min <= 24 * 60:
        raise InputError("repeat_min", repeat_min, "must be more than 0 and at most 1440 min")
    end = window_end(window, now or datetime.now(UTC))
    hours, bed_days = _exposure(session, window, end)
    raised, cleared, acked = (
        epoch_s(session, Alarm.raised_at),
        epoch_s(session, Alarm.cleared_at),
        epoch_s(session, Alarm.acknowledged_at),
    )
    unit = unit_label(Pump.unit)
    nuisance = and_(
        Alarm.cleared_at.is_not(None),
        cleared - raised <= nuisance_s,
        (Alarm.acknowledged_at.is_(None)) | (acked >= cleared),
    )
    where = (in_window(Alarm.raised_at, window), unit_filter(window))
    counts = (
        select(
            Alarm.code,
            Alarm.priority,
            unit,
            func.count(),
            func.sum(case((nuisance, 1), else_=0)),
            func.count(Alarm.acknowledged_at),
        )
        .join(Pump, Pump.id == Alarm.pump_id)
        .where(*where)
        .group_by(Alarm.code, Alarm.priority, unit)
    )
    by_code: dict[tuple[str, str], _Group] = defaultdict(_Group)
    by_unit: dict[str, _Group] = defaultdict(_Group)
    total = _Group()
    for code, priority, unit_name, n, n_nuisance, n_ack in session.execute(counts):
        for g in (total, by_code[(code, priority)], by_unit[unit_name]):
            g.alarms += n
            g.high += n if priority == HIGH else 0
            g.nuisance += int(n_nuisance or 0)
            g.acknowledged += n_ack
    for unit_name, n in session.execute(_repeats(session, window, repeat_min)):
        by_unit[unit_name].repeated += n
        total.repeated += n
    delays = session.execute(
        select(unit, Alarm.priority, cast(acked - raised, Float))
        .join(Pump, Pump.id == Alarm.pump_id)
        .where(*where, Alarm.acknowledged_at.is_not(None))
    ).all()
    # julianday carries about 50 µs of rounding at today's dates: keep milliseconds.
    delay_s = np.round(np.asarray([d for _, _, d in delays], dtype=float), 3)
    delay_unit = np.asarray([u for u, _, _ in delays], dtype=object)
    delay_prio = np.asarray([p for _, p, _ in delays], dtype=object)
    total_hours = float(sum(hours.values()))
    total_bed_days = int(sum(bed_days.values()))

    def group(g: _Group, h: float, days: int | None) -> dict[str, Any]:
        return {
            "alarms": g.alarms,
            "per_1000_infusion_hours": _per_1000(g.alarms, h),
            "high_priority": g.high,
            "high_priority_share": g.high / g.alarms if g.alarms else None,
            "nuisance": g.nuisance,
            "nuisance_share": g.nuisance / g.alarms if g.alarms else None,
            "acknowledged": g.acknowledged,
            **({"per_bed_day": g.alarms / days if days else None} if days is not None else {}),
        }

    return {
        "report": "alarms",
        "generated_at": datetime.now(UTC).isoformat(),
        "filters": {**window.as_dict(), "nuisance_s": nuisance_s, "repeat_min": repeat_min},
        "infusion_hours": total_hours,
        "bed_days": total_bed_days,
        "total": {
            **group(total, total_hours, total_bed_days),
            "repeated": total.repeated,
            "repeated_share": total.repeated / total.alarms if total.alarms else None,
            "time_to_acknowledge": _stats(delay_s),
        },
        "by_code": [
            {"code": c, "priority": p, **group(g, total_hours, None)}
            for (c, p), g in sorted(by_code.items(), key=lambda kv: (-kv[1].alarms, kv[0]))
        ],
        "by_priority": [
            {"priority": p, "alarms": n, **_stats(delay_s[delay_prio == p])}
            for p, n in sorted(_priority_counts(by_code).items())
        ],
        "by_unit": [
            {
                "unit": u,
                "infusion_hours": hours.get(u, 0.0),
                "bed_days": bed_days.get(u, 0),
                **group(g, hours.get(u, 0.0), bed_days.get(u, 0)),
                "repeated": g.repeated,
                "time_to_acknowledge": _stats(delay_s[delay_unit == u]),
            }
            for u, g in sorted(by_unit.items())
        ],
    }


def _priority_counts(by_code: dict[tuple[str, str], _Group]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for (_, priority), g in by_code.items():
        out[priority] += g.alarms
    return out


def _repeats(session: Session, window: ReportWindow, repeat_min: float) -> Any:
    """Per unit: alarms raised within ``repeat_min`` of the previous alarm with the same
    code on the same pump channel (SQL ``LAG`` over each pump channel's alarms)."""
    raised = epoch_s(session, Alarm.raised_at)
    previous = (
        func.lag(raised)
        .over(partition_by=(Alarm.pump_id, Alarm.channel, Alarm.code), order_by=Alarm.raised_at)
        .label("previous")
    )
    inner = (
        select(unit_label(Pump.unit).label("unit"), raised.label("raised"), previous)
        .join(Pump, Pump.id == Alarm.pump_id)
        .where(in_window(Alarm.raised_at, window), unit_filter(window))
        .subquery()
    )
    return (
        select(inner.c.unit, func.count())
        .where(inner.c.previous.is_not(None), inner.c.raised - inner.c.previous <= repeat_min * 60)
        .group_by(inner.c.unit)
    )


def _exposure(
    session: Session, window: ReportWindow, end: datetime
) -> tuple[dict[str, float], dict[str, int]]:
    """Infusion-hours and bed-days per unit inside [since, end)."""
    end_s = end.timestamp()
    started = epoch_s(session, Infusion.started_at)
    ended = func.coalesce(epoch_s(session, Infusion.ended_at), end_s)
    lo = greatest(session, started, window.since.timestamp()) if window.since else started
    hi = least(session, ended, end_s)
    rows = session.execute(
        select(unit_label(Pump.unit), Infusion.pump_id, cast(lo, Float), cast(hi, Float))
        .join(Pump, Pump.id == Infusion.pump_id)
        .where(
            unit_filter(window),
            Infusion.started_at < end,
            *(
                [(Infusion.ended_at.is_(None)) | (Infusion.ended_at > window.since)]
                if window.since
                else []
            ),
        )
    ).all()
    hours: dict[str, float] = defaultdict(float)
    days: dict[str, int] = {}
    if not rows:
        return hours, days
    units = np.asarray([r[0] for r in rows], dtype=object)
    pumps = np.asarray([r[1] for r in rows], dtype=object)
    start = np.round(np.asarray([r[2] for r in rows], dtype=float), 3)
    stop = np.round(np.asarray([r[3] for r in rows], dtype=float), 3)
    keep = stop > start
    units, pumps, start, stop = units[keep], pumps[keep], start[keep], stop[keep]
    for u in np.unique(units):
        mask = units == u
        hours[str(u)] = float(np.sum(stop[mask] - start[mask]) / 3600.0)
        days[str(u)] = _bed_days(pumps[mask], start[mask], stop[mask])
    return hours, days


def _bed_days(pumps: np.ndarray, start: np.ndarray, stop: np.ndarray) -> int:
    """Distinct (pump, UTC day) pairs with an infusion running."""
    if pumps.size == 0:
        return 0
    _, pump_idx = np.unique(pumps, return_inverse=True)
    first = np.floor(start / 86400.0).astype(np.int64)
    last = np.floor(np.nextafter(stop, -np.inf) / 86400.0).astype(np.int64)
    spans = last - first + 1
    rows = np.repeat(pump_idx, spans)
    offsets = np.arange(int(spans.sum())) - np.repeat(np.cumsum(spans) - spans, spans)
    day = np.repeat(first, spans) + offsets
    return int(np.unique(rows.astype(np.int64) * 1_000_000 + day).size)


__all__ = ["DEFAULT_NUISANCE_S", "DEFAULT_REPEAT_MIN", "alarm_report"]
