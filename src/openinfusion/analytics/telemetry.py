"""Daily maintenance telemetry per pump, from what pumps report to the server.

One shape for the real fleet and the simulated one (:mod:`openinfusion.analytics.fleet_sim`):
arrays of pumps × days, so the same feature code and the same risk model serve both.

From the server's store (:func:`telemetry_from_db`):

- **battery run time** (h on a full charge) from consecutive ``status`` bodies while the
  pump runs on battery: pump time elapsed (``t_s``) over the fraction of charge used
  (``battery_percent`` is relative to the battery's present full capacity, so an aged
  battery's percent falls faster: run time = hours / (percent used / 100));
- **occlusion, air-in-line and door alarms** per day (``alarms`` table);
- **infusion hours** per day (``infusions`` table, open ones up to now);
- **drive effort** (index, 1.0 = a new drive at its rated load) from ``self_test`` events;
- **shocks** (drops) from ``self_test`` events that report them;
- **days since service** from the last ``service`` record (``maintenance_service`` table),
  else from enrolment.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session

from openinfusion.analytics.tables import ServiceRecord
from openinfusion.server.models import Alarm, Infusion, Pump, PumpMessage

FloatArray = NDArray[np.float64]

#: Alarm codes counted per feature (openinfusion.pump.codes.Alarm).
OCCLUSION_CODES = frozenset({"occlusion_downstream", "occlusion_upstream"})
AIR_CODES = frozenset({"air_in_line", "air_accumulated"})
DOOR_CODES = frozenset({"door_open", "syringe_disengaged"})
#: Least charge used (percent) between two statuses for a run-time estimate: below it
#: the 0.1 % resolution of a battery gauge makes the estimate noise.
MIN_PERCENT_USED = 0.5


@dataclass(slots=True)
class DailyTelemetry:
    """Pumps × days. Counts are per day; ``runtime_h`` and ``effort`` are NaN on days
    without a measurement; ``in_service`` is False after a pump failed (simulated fleets)."""

    pump_ids: list[str]
    kinds: list[str]
    infusion_h: FloatArray
    battery_h: FloatArray
    runtime_h: FloatArray
    occlusion: FloatArray
    air: FloatArray
    door: FloatArray
    effort: FloatArray
    shocks: FloatArray
    service_age_d: FloatArray  # days since service at day 0, per pump
    in_service: NDArray[np.bool_] = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    first_day: str | None = None  # ISO date of day 0 (real fleets)

    def __post_init__(self) -> None:
        if self.in_service.shape != self.infusion_h.shape:
            self.in_service = np.ones(self.infusion_h.shape, dtype=bool)

    @property
    def pumps(self) -> int:
        return int(self.infusion_h.shape[0])

    @property
    def days(self) -> int:
        return int(self.infusion_h.shape[1])


@dataclass(slots=True)
class _PumpDays:
    infusion_h: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    battery_h: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    percent_used: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    occlusion: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    air: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    door: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    effort: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    shocks: dict[int, float] = field(default_factory=lambda: defaultdict(float))


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def telemetry_from_db(session: Session, now: datetime, days: int = 90) -> DailyTelemetry:
    """The last ``days`` days (UTC, ending today) of every pump in service."""
    if not 1 <= days <= 3650:
        raise ValueError(f"days {days} must be 1 to 3650")
    first = (now - timedelta(days=days - 1)).date()
    start = datetime(first.year, first.month, first.day, tzinfo=now.tzinfo)

    def day_of(ts: datetime) -> int:
        return (ts.date() - first).days

    pumps = list(
        session.scalars(select(Pump).where(Pump.decommissioned_at.is_(None)).order_by(Pump.serial))
    )
    index = {p.id: i for i, p in enumerate(pumps)}
    per = [_PumpDays() for _ in pumps]

    for inf in session.scalars(
        select(Infusion).where((Infusion.ended_at.is_(None)) | (Infusion.ended_at >= start))
    ):
        i = index.get(inf.pump_id)
        if i is None:
            continue
        begin, end = max(inf.started_at, start), min(inf.ended_at or now, now)
        while begin < end:
            day_end = datetime.combine(begin.date() + timedelta(days=1), datetime.min.time())
            day_end = day_end.replace(tzinfo=begin.tzinfo)
            piece_end = min(end, day_end)
            per[i].infusion_h[day_of(begin)] += (piece_end - begin).total_seconds() / 3600.0
            begin = piece_end

    for alarm in session.scalars(select(Alarm).where(Alarm.raised_at >= start)):
        i = index.get(alarm.pump_id)
        if i is None:
            continue
        d = day_of(alarm.raised_at)
        if alarm.code in OCCLUSION_CODES:
            per[i].occlusion[d] += 1
        elif alarm.code in AIR_CODES:
            per[i].air[d] += 1
        elif alarm.code in DOOR_CODES:
            per[i].door[d] += 1

    last_status: dict[str, tuple[float, float]] = {}  # pump -> (t_s, percent) on battery
    messages = session.execute(
        select(PumpMessage.pump_id, PumpMessage.type, PumpMessage.received_at, PumpMessage.body)
        .where(PumpMessage.received_at >= start, PumpMessage.type.in_(("status", "event")))
        .order_by(PumpMessage.pump_id, PumpMessage.seq)
    )
    for pump_id, kind, received_at, body in messages:
        i = index.get(pump_id)
        if i is None or not isinstance(body, dict):
            continue
        d = day_of(received_at)
        if kind == "event":
            if body.get("kind") == "self_test" and isinstance(body.get("data"), dict):
                data = body["data"]
                effort = _finite(data.get("drive_effort"))
                if effort is not None and 0 < effort < 10:
                    per[i].effort[d].append(effort)
                shocks = _finite(data.get("shocks"))
                if shocks is not None and shocks >= 0:
                    per[i].shocks[d] += shocks
            continue
        t_s, percent = _finite(body.get("t_s")), _finite(body.get("battery_percent"))
        if t_s is None or percent is None or body.get("on_mains") is not False:
            last_status.pop(pump_id, None)
            continue
        before = last_status.get(pump_id)
        last_status[pump_id] = (t_s, percent)
        if before is None or t_s <= before[0] or percent > before[1]:
            continue
        per[i].battery_h[d] += (t_s - before[0]) / 3600.0
        per[i].percent_used[d] += before[1] - percent

    services: dict[str, datetime] = {}
    for record in session.scalars(select(ServiceRecord)):
        if record.pump_id not in services or record.serviced_at > services[record.pump_id]:
            services[record.pump_id] = record.serviced_at

    shape = (len(pumps), days)
    arrays = {name: np.zeros(shape) for name in ("infusion_h", "battery_h", "occlusion")}
    arrays |= {name: np.zeros(shape) for name in ("air", "door", "shocks")}
    runtime = np.full(shape, np.nan)
    effort_days = np.full(shape, np.nan)
    for i, pd_ in enumerate(per):
        for name in ("infusion_h", "battery_h", "occlusion", "air", "door", "shocks"):
            for d, v in getattr(pd_, name).items():
                if 0 <= d < days:
                    arrays[name][i, d] = v
        for d, used in pd_.percent_used.items():
            if 0 <= d < days and used >= MIN_PERCENT_USED:
                runtime[i, d] = pd_.battery_h[d] / (used / 100.0)
        for d, values in pd_.effort.items():
            if 0 <= d < days and values:
                effort_days[i, d] = float(np.median(values))
    service_age = np.array(
        [
            max(0.0, ((now - services.get(p.id, p.enrolled_at)).total_seconds()) / 86400.0)
            - (days - 1)
            for p in pumps
        ]
    )
    return DailyTelemetry(
        pump_ids=[p.id for p in pumps],
        kinds=[p.kind for p in pumps],
        infusion_h=arrays["infusion_h"],
        battery_h=arrays["battery_h"],
        runtime_h=runtime,
        occlusion=arrays["occlusion"],
        air=arrays["air"],
        door=arrays["door"],
        effort=effort_days,
        shocks=arrays["shocks"],
        service_age_d=service_age,
        first_day=first.isoformat(),
    )
