"""The maintenance queue: pumps ranked by risk of failure, each with the reasons in words.

Risk is the model's probability of failure within the horizon, from the features at the
last day of the telemetry. The reasons are the features that raise that pump's risk most
(:meth:`RiskModel.contributions`: the risk removed by setting one feature to a healthy
value), written against the pump's own history or the fleet median.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from openinfusion.analytics.maintenance_features import FEATURES, compute_features
from openinfusion.analytics.maintenance_model import RiskModel, default_model, reference_values
from openinfusion.analytics.telemetry import DailyTelemetry, telemetry_from_db
from openinfusion.server.models import Pump

#: Least risk a feature must add to be given as a reason.
MIN_CONTRIBUTION = 0.005
MAX_REASONS = 3


@dataclass(frozen=True, slots=True)
class QueueEntry:
    pump_id: str
    kind: str
    risk: float  # probability of failure within the horizon
    reasons: list[str]
    days_since_service: float
    features: dict[str, float | None]
    serial: str | None = None
    unit: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pump_id": self.pump_id,
            "serial": self.serial,
            "unit": self.unit,
            "kind": self.kind,
            "risk": round(self.risk, 4),
            "reasons": self.reasons,
            "days_since_service": round(self.days_since_service, 2),
            "features": self.features,
        }


def _pct(ratio: float) -> str:
    return f"{abs(1.0 - ratio) * 100:.0f} %"


def describe(name: str, value: float, fleet_median: float, kind: str) -> str:
    """One feature in plain words for a biomedical engineer."""
    if name == "runtime_vs_first_month":
        side = "below" if value < 1 else "above"
        return f"battery run time {_pct(value)} {side} its first month"
    if name == "runtime_vs_fleet":
        side = "below" if value < 1 else "above"
        return f"battery run time {_pct(value)} {side} the fleet median for {kind} pumps"
    if name == "runtime_trend":
        side = "down" if value < 1 else "up"
        return f"battery run time {side} {_pct(value)} over 30 days"
    labels = {
        "occlusion_per_100h": "occlusion alarms",
        "air_per_100h": "air-in-line alarms",
        "door_per_100h": "door or latch faults",
    }
    if name in labels:
        return f"{labels[name]} {value:.1f} per 100 infusion-hours, fleet median {fleet_median:.1f}"
    if name == "drive_effort":
        return f"drive effort {value:.2f}× its rated load (fleet median {fleet_median:.2f})"
    if name == "drive_effort_trend":
        side = "up" if value >= 0 else "down"
        return f"drive effort {side} {abs(value):.2f} over 30 days"
    if name == "shocks_30d":
        return f"{value:.0f} drops or shocks reported in 30 days"
    if name == "days_since_service":
        return f"{value:.0f} days since service (fleet median {fleet_median:.0f})"
    raise ValueError(f"feature {name!r} has no description")


def _clean(value: float) -> float | None:
    return round(float(value), 4) if math.isfinite(value) else None


def rank(
    tel: DailyTelemetry,
    model: RiskModel,
    info: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> list[QueueEntry]:
    """Pumps in service at the last day, highest risk first. ``info``: pump id -> (serial,
    unit)."""
    if tel.pumps == 0:
        return []
    last = tel.days - 1
    values = compute_features(tel, np.array([last])).values[:, 0, :]
    alive = tel.in_service[:, last]
    if not alive.any():
        return []
    risk = model.risk(values)
    reference = reference_values(values[alive])
    with warnings.catch_warnings():  # a feature no pump reports has no median
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = {
            name: float(np.nanmedian(values[alive, i])) if alive.any() else math.nan
            for i, name in enumerate(FEATURES)
        }
    entries = []
    rows = np.flatnonzero(alive)
    all_contrib = model.contributions_many(values[rows], reference)
    for k, p in enumerate(rows):
        contrib = {name: float(all_contrib[k, i]) for i, name in enumerate(FEATURES)}
        reasons = [
            describe(name, float(values[p, FEATURES.index(name)]), medians[name], tel.kinds[p])
            for name in sorted(contrib, key=lambda k: -contrib[k])
            if contrib[name] >= MIN_CONTRIBUTION
            and math.isfinite(values[p, FEATURES.index(name)])
            and not (name == "days_since_service" and values[p, -1] <= medians[name])
        ][:MAX_REASONS]
        serial, unit = (info or {}).get(tel.pump_ids[p], (None, None))
        entries.append(
            QueueEntry(
                pump_id=tel.pump_ids[p],
                kind=tel.kinds[p],
                risk=float(risk[p]),
                reasons=reasons or ["no warning signs"],
                days_since_service=float(values[p, FEATURES.index("days_since_service")]),
                features={name: _clean(values[p, i]) for i, name in enumerate(FEATURES)},
                serial=serial,
                unit=unit,
            )
        )
    entries.sort(key=lambda e: (-e.risk, e.pump_id))
    return entries


def queue_from_db(
    session: Session,
    now: datetime,
    horizon_d: int = 14,
    days: int = 90,
    unit: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """The maintenance queue of the server's pumps (only ``unit``'s when given)."""
    tel = telemetry_from_db(session, now, days)
    pumps = {p.id: p for p in session.scalars(select(Pump))}
    info = {pid: (pumps[pid].serial, pumps[pid].unit) for pid in tel.pump_ids}
    model = default_model(horizon_d)
    entries = rank(tel, model, info)
    if unit is not None:
        entries = [e for e in entries if e.unit == unit]
    return queue_document(entries[:limit] if limit else entries, model, now, days)


def queue_document(
    entries: list[QueueEntry], model: RiskModel, now: datetime, days: int
) -> dict[str, Any]:
    """The queue as the API and reports give it."""
    trained = model.trained_on
    return {
        "report": "maintenance",
        "generated_at": now.isoformat(),
        "horizon_days": model.horizon_d,
        "telemetry_days": days,
        "model": {
            "method": "gradient boosting on windowed telemetry features",
            "trained_on": {"pumps": trained.pumps, "days": trained.days, "seed": trained.seed},
        },
        "pumps": [e.as_dict() for e in entries],
    }
