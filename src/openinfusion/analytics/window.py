"""The filters every fleet report takes: a time window (UTC) and a care unit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from openinfusion.errors import InputError

_UNIT = re.compile(r"^[\w .\-/&()]{1,64}$")


@dataclass(frozen=True, slots=True)
class ReportWindow:
    """``since`` inclusive, ``until`` exclusive (UTC-aware; ``None`` = open); ``unit``: one
    care unit (``pumps.unit``) or every unit."""

    since: datetime | None = None
    until: datetime | None = None
    unit: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "unit": self.unit,
        }


def parse_instant(field: str, text: str, end: bool = False) -> datetime:
    """A date (``YYYY-MM-DD``, midnight UTC) or an ISO timestamp (UTC when no offset)."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            field, text, "must be a date YYYY-MM-DD or an ISO 8601 timestamp"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_window(
    since: str | None = None, until: str | None = None, unit: str | None = None
) -> ReportWindow:
    """Check the filters; each error names the field, the value and the rule."""
    start = parse_instant("since", since) if since else None
    end = parse_instant("until", until) if until else None
    if start is not None and end is not None and start >= end:
        raise InputError("until", until or "", f"must be after since {since}")
    if unit is not None and not _UNIT.match(unit):
        raise InputError("unit", unit, "must be 1-64 letters, digits, spaces or . - / & ( )")
    return ReportWindow(start, end, unit or None)


def window_end(window: ReportWindow, now: datetime) -> datetime:
    """Where time stops for open infusions: ``until``, or now when the window is open."""
    return min(window.until, now) if window.until is not None else now


__all__ = ["ReportWindow", "parse_instant", "parse_window", "window_end"]
