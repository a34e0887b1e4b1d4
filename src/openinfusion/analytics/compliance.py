"""DERS compliance: programs that used the drug library against basic infusions.

Compliance = library programs ÷ (library programs + basic infusions), the share of
infusion starts protected by dose limits (Giuliano et al., J Patient Saf 2018;14:e76;
Melton et al., BMC Med Inform Decis Mak 2019;19:213, Table 1 "basic mode"). Counted from
the ``programmed`` events' ``data.ders.library``, grouped in SQL (one pass, one JSON parse
per event) by UTC day, care unit (``pumps.unit``) and the library's care area; programs without DERS facts are ``unknown``
and left out of the rate.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy.orm import Session

from openinfusion.analytics.queries import (
    PROGRAMMED,
    day_number,
    decode,
    event_groups,
    truthy,
    unit_label,
)
from openinfusion.analytics.window import ReportWindow
from openinfusion.errors import InputError
from openinfusion.server.models import Pump, PumpMessage

Bucket = Literal["day", "week"]
BUCKETS = ("day", "week")
NO_AREA = "(no care area)"
_EPOCH = date(1970, 1, 1)
_PATHS = (("kind",), ("data", "ders", "care_area"), ("data", "ders", "library"))


@dataclass(slots=True)
class Counts:
    """Programs with the library, basic infusions, and programs without DERS facts."""

    library: int = 0
    basic: int = 0
    unknown: int = 0

    def add(self, library: bool | None, n: int) -> None:
        if library is None:
            self.unknown += n
        elif library:
            self.library += n
        else:
            self.basic += n

    @property
    def rate(self) -> float | None:
        """Compliance in [0, 1]; ``None`` when nothing was programmed with or without it."""
        known = self.library + self.basic
        return self.library / known if known else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "programs": self.library + self.basic + self.unknown,
            "library": self.library,
            "basic": self.basic,
            "unknown": self.unknown,
            "rate": self.rate,
        }


def bucket_start(day: int, bucket: Bucket) -> date:
    """First day of the bucket holding UTC day number ``day`` (weeks start on Monday)."""
    if bucket == "week":
        day -= (day + 3) % 7  # 1970-01-01 was a Thursday
    return _EPOCH + timedelta(days=day)


def compliance_report(
    session: Session, window: ReportWindow, bucket: str = "day"
) -> dict[str, Any]:
    """The compliance report: totals, by care area, by unit, and by day or week."""
    if bucket not in BUCKETS:
        raise InputError("bucket", bucket, "must be day or week")
    day = day_number(session, PumpMessage.received_at)
    unit = unit_label(Pump.unit)
    query = event_groups(session, window, _PATHS, day, unit)
    total = Counts()
    by_area: dict[str, Counts] = defaultdict(Counts)
    by_unit: dict[str, Counts] = defaultdict(Counts)
    by_bucket: dict[date, Counts] = defaultdict(Counts)
    by_unit_bucket: dict[tuple[str, date], Counts] = defaultdict(Counts)
    for day_n, unit_name, key, n in session.execute(query):
        kind, area_name, lib = (decode(key) + [None] * 3)[:3]
        if kind != PROGRAMMED:
            continue
        used = truthy(lib)
        start = bucket_start(int(day_n), "week" if bucket == "week" else "day")
        for counts in (
            total,
            by_area[area_name or NO_AREA],
            by_unit[unit_name],
            by_bucket[start],
            by_unit_bucket[(unit_name, start)],
        ):
            counts.add(used, int(n))
    return {
        "report": "compliance",
        "generated_at": datetime.now(UTC).isoformat(),
        "filters": {**window.as_dict(), "bucket": bucket},
        "total": total.as_dict(),
        "by_care_area": [{"care_area": k, **v.as_dict()} for k, v in sorted(by_area.items())],
        "by_unit": [{"unit": k, **v.as_dict()} for k, v in sorted(by_unit.items())],
        "by_time": [{"start": k.isoformat(), **v.as_dict()} for k, v in sorted(by_bucket.items())],
        "by_unit_time": [
            {"unit": u, "start": k.isoformat(), **v.as_dict()}
            for (u, k), v in sorted(by_unit_bucket.items())
        ],
    }


__all__ = ["BUCKETS", "Counts", "bucket_start", "compliance_report"]
