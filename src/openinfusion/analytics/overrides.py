"""Soft-limit alerts and overrides, hard-limit blocks and reprogramming, by drug and area.

Terms (Melton et al., BMC Med Inform Decis Mak 2019;19:213, Table 1): a **soft alert** is
a program crossing a soft limit; it is **overridden** when the program started with a
reason (``programmed`` event, verdict ``soft``) and **cancelled** when it did not
(``ders_alert``, outcome ``cancelled``). A **hard block** is a ``ders_alert`` with outcome
``blocked``. A **reprogram** is a program entered on the channel after an alert
(``after_alert``). One SQL ``GROUP BY`` over the DERS fields of every event (one JSON parse
per event): programs within limits collapse into a few groups, and only the events with an
alert come back one by one with their limits and reasons.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from openinfusion.analytics.compliance import NO_AREA
from openinfusion.analytics.queries import (
    DERS_ALERT,
    PROGRAMMED,
    decode,
    event_groups,
    unit_label,
)
from openinfusion.analytics.refinement import DEFAULT_MIN_OVERRIDES, suggest_limit
from openinfusion.analytics.window import ReportWindow
from openinfusion.errors import InputError
from openinfusion.server.models import Pump

BASIC = "(basic infusion)"
MAX_CANDIDATES = 25
# One JSON parse per event: what a programmed event's ``ders`` and a ders_alert say.
_PATHS = (
    ("kind",),
    ("data", "ders", "verdict"),
    ("data", "ders", "after_alert"),
    ("data", "ders", "care_area"),
    ("data", "ders", "drug"),
    ("data", "ders", "override_reason"),
    ("data", "ders", "alerts"),
    ("data", "outcome"),
    ("data", "care_area"),
    ("data", "drug"),
)
_WHOLE = frozenset({6})  # the alerts list stays JSON


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


def _crossings(alerts: Any) -> list[dict[str, Any]]:
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
    by_drug: dict[tuple[str, str], Tally] = defaultdict(Tally)
    by_unit: dict[str, Tally] = defaultdict(Tally)
    total = Tally()
    samples: dict[tuple[str, str, str, str], Samples] = {}
    query = event_groups(session, window, _PATHS, unit_label(Pump.unit), whole=_WHOLE)
    for unit_name, key, n in session.execute(query):
        kind, verdict, after, area, drug, reason, alerts, outcome, r_area, r_drug = (
            decode(key) + [None] * len(_PATHS)
        )[: len(_PATHS)]
        if kind == DERS_ALERT:
            groups = (total, by_drug[(r_area or NO_AREA, r_drug or BASIC)], by_unit[unit_name])
            field_name = "blocked" if outcome == "blocked" else "cancelled"
            for t in groups:
                setattr(t, field_name, getattr(t, field_name) + n)
            continue
        if kind != PROGRAMMED or verdict is None:
            continue  # another event, or a pump that reports no DERS facts
        entry_key = (area or NO_AREA, drug or BASIC)
        groups = (total, by_drug[entry_key], by_unit[unit_name])
        for t in groups:
            t.programs += n
            t.reprogrammed += n if after else 0
        soft = [a for a in _crossings(alerts) if a.get("level") == "soft"]
        if verdict != "soft" or not soft or not isinstance(reason, str):
            continue  # within limits, or a basic infusion's advisory
        for t in groups:
            t.overridden += n
            t.reasons[reason] += n
        for a in soft:
            value = _num(a.get("value"))
            if value is None:
                continue
            skey = (*entry_key, str(a.get("parameter")), str(a.get("bound")))
            sample = samples.setdefault(skey, Samples(unit=str(a.get("unit") or "")))
            sample.values.extend([value] * n)
            sample.limits[(_num(a.get("limit")), _num(a.get("hard_limit")))] += n
            sample.reasons[reason] += n
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
