"""Soft-limit alerts and overrides, hard-limit blocks and reprogramming, by drug and area.

Terms (Melton et al., BMC Med Inform Decis Mak 2019;19:213, Table 1): a **soft alert** is
a program crossing a soft limit; it is **overridden** when the program started with a
reason (``programmed`` event, verdict ``soft``) and **cancelled** when it did not
(``ders_alert``, outcome ``cancelled``). A **hard block** is a ``ders_alert`` with outcome
``blocked``. A **reprogram** is a program entered on the channel after an alert
(``after_alert``). Programs per drug come from one SQL ``GROUP BY``; only the events with
an alert (a small share) are read one by one for their limits and reasons.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import func, or_
from sqlalchemy.orm import Session

from openinfusion.analytics.compliance import NO_AREA
from openinfusion.analytics.queries import (
    DERS_ALERT,
    PROGRAMMED,
    ders_events,
    ders_field,
    event_kind,
    unit_label,
)
from openinfusion.analytics.refinement import DEFAULT_MIN_OVERRIDES, suggest_limit
from openinfusion.analytics.window import ReportWindow
from openinfusion.errors import InputError
from openinfusion.server.models import Pump, PumpMessage

BASIC = "(basic infusion)"
MAX_CANDIDATES = 25


@dataclass(slots=True)
class Tally:
    """Alert outcomes for one group (a drug in a care area, or a unit)."""

    programs: int = 0
    overridden: int = 0
    cancelled: int = 0
    blocked: int = 0
    reprogrammed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def soft_alerts(self) -> int:
        return self.overridden + self.cancelled

    def as_dict(self) -> dict[str, Any]:
        checked = self.programs + self.cancelled + self.blocked
        alerts = self.soft_alerts + self.blocked
        return {
            "programs": self.programs,
            "soft_alerts": self.soft_alerts,
            "overridden": self.overridden,
            "cancelled": self.cancelled,
            "hard_blocks": self.blocked,
            "reprogrammed": self.reprogrammed,
            "override_rate": self.overridden / self.soft_alerts if self.soft_alerts else None,
            "alerts_per_100_programs": 100.0 * alerts / checked if checked else None,
            "reasons": [{"reason": r, "count": n} for r, n in self.reasons.most_common()],
        }


@dataclass(slots=True)
class Samples:
    """Overridden values of one soft limit of one entry."""

    unit: str
    values: list[float] = field(default_factory=list)
    limits: Counter[tuple[float | None, float | None]] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)


def _crossings(data: dict[str, Any]) -> list[dict[str, Any]]:
    alerts = data.get("alerts")
    if not isinstance(alerts, list):
        return []
    return [a for a in alerts if isinstance(a, dict) and isinstance(a.get("bound"), str)]


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def overrides_report(
    session: Session, window: ReportWindow, min_overrides: int = DEFAULT_MIN_OVERRIDES
) -> dict[str, Any]:
    """Alerts and what clinicians did, by drug and care area and by unit, with override
    reasons, and the entries whose soft limits are most overridden (refinement)."""
    if not 1 <= min_overrides <= 100_000:
        raise InputError("min_overrides", min_overrides, "must be 1 to 100000")
    area, drug = ders_field("care_area"), ders_field("drug")
    unit = unit_label(Pump.unit)
    by_drug: dict[tuple[str, str], Tally] = defaultdict(Tally)
    by_unit: dict[str, Tally] = defaultdict(Tally)
    total = Tally()
    counts = (
        ders_events(window, area, drug, unit, func.count())
        .where(event_kind() == PROGRAMMED, ders_field("verdict").is_not(None))
        .group_by(area, drug, unit)
    )
    for area_name, drug_name, unit_name, n in session.execute(counts):
        key = (area_name or NO_AREA, drug_name or BASIC)
        by_drug[key].programs += n
        by_unit[unit_name].programs += n
        total.programs += n
    detail = ders_events(window, event_kind(), unit, PumpMessage.body["data"]).where(
        or_(
            event_kind() == DERS_ALERT,
            ders_field("verdict").in_(("soft", "hard")),
            ders_field("after_alert").is_not(None),
        )
    )
    samples: dict[tuple[str, str, str, str], Samples] = {}
    for kind, unit_name, data in session.execute(detail):
        if not isinstance(data, dict):
            continue
        record = data.get("ders") if kind == PROGRAMMED else data
        if not isinstance(record, dict):
            continue
        key = (record.get("care_area") or NO_AREA, record.get("drug") or BASIC)
        groups = (total, by_drug[key], by_unit[unit_name])
        crossed = _crossings(record)
        if kind == DERS_ALERT:
            outcome = "blocked" if record.get("outcome") == "blocked" else "cancelled"
            for t in groups:
                setattr(t, outcome, getattr(t, outcome) + 1)
            continue
        if record.get("after_alert"):
            for t in groups:
                t.reprogrammed += 1
        reason = record.get("override_reason")
        soft = [a for a in crossed if a.get("level") == "soft"]
        if not soft or not isinstance(reason, str):
            continue  # a basic infusion's advisory, or no limit crossed
        for t in groups:
            t.overridden += 1
            t.reasons[reason] += 1
        for a in soft:
            value = _num(a.get("value"))
            if value is None:
                continue
            skey = (*key, str(a.get("parameter")), str(a.get("bound")))
            s = samples.setdefault(skey, Samples(unit=str(a.get("unit") or "")))
            s.values.append(value)
            s.limits[(_num(a.get("limit")), _num(a.get("hard_limit")))] += 1
            s.reasons[reason] += 1
    return {
        "report": "overrides",
        "generated_at": datetime.now(UTC).isoformat(),
        "filters": {**window.as_dict(), "min_overrides": min_overrides},
        "total": total.as_dict(),
        "by_drug": sorted(
            ({"care_area": a, "drug": d, **t.as_dict()} for (a, d), t in by_drug.items()),
            key=lambda r: (-(r["soft_alerts"] + r["hard_blocks"]), r["care_area"], r["drug"]),
        ),
        "by_unit": [{"unit": u, **t.as_dict()} for u, t in sorted(by_unit.items())],
        "refinement": _candidates(samples, by_drug, min_overrides),
    }


def _candidates(
    samples: dict[tuple[str, str, str, str], Samples],
    by_drug: dict[tuple[str, str], Tally],
    min_overrides: int,
) -> list[dict[str, Any]]:
    """The most overridden soft limits, each with its evidence and suggestion."""
    out: list[dict[str, Any]] = []
    for (area, drug, parameter, bound), s in samples.items():
        (soft, hard), _ = s.limits.most_common(1)[0]  # the limits most programs met
        values = np.asarray(s.values, dtype=float)
        suggestion = suggest_limit(s.values, bound, soft, hard, min_overrides)
        programs = by_drug[(area, drug)].programs
        out.append(
            {
                "care_area": area,
                "drug": drug,
                "parameter": parameter,
                "unit": s.unit,
                "bound": bound,
                "overrides": int(values.size),
                "programs": programs,
                "override_share": values.size / programs if programs else None,
                "soft_limit": soft,
                "hard_limit": hard,
                "evidence": {
                    "min": float(values.min()),
                    "median": float(np.median(values)),
                    "p90": float(np.quantile(values, 0.9)),
                    "max": float(values.max()),
                    "reasons": [{"reason": r, "count": n} for r, n in s.reasons.most_common(5)],
                },
                "suggestion": suggestion.as_dict(),
            }
        )
    out.sort(key=lambda c: (-int(c["overrides"]), str(c["care_area"]), str(c["drug"])))
    return out[:MAX_CANDIDATES]


__all__ = ["BASIC", "overrides_report"]
