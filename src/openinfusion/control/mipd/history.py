"""Dose history and measured levels, parsed from clinical units at the edge.

Doses: ``[{"at": "0 h", "dose": "1 g", "over": "1 h"}, ...]``; levels:
``[{"at": "11.5 h", "concentration": "12 mg/L"}]``. ``at`` is either a duration since time
zero ("11.5 h", "30 min") or an ISO 8601 date-time (then time zero is the first dose);
one file uses one style. Internally times are hours after the first dose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from openinfusion.errors import InputError
from openinfusion.units import (
    Dimension,
    Kind,
    parse_amount,
    parse_amount_unit,
    parse_quantity,
    split_number,
)

# Volume units accepted in a concentration, in litres.
_VOLUME_L = {"L": 1.0, "l": 1.0, "dL": 0.1, "dl": 0.1, "mL": 1e-3, "ml": 1e-3}
# Longest history accepted (a typing error beyond this), hours.
MAX_HISTORY_H = 24.0 * 90.0


@dataclass(frozen=True, slots=True)
class DoseEvent:
    """One dose: ``amount`` (mg or IU) starting at ``start_h`` over ``duration_h`` (0 = bolus)."""

    start_h: float
    amount: float
    duration_h: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start_h) and self.start_h >= 0):
            raise InputError("dose.at", self.start_h, "must be a time >= 0 h")
        if not (math.isfinite(self.amount) and self.amount > 0):
            raise InputError("dose.dose", self.amount, "must be an amount greater than 0")
        if not (math.isfinite(self.duration_h) and 0 <= self.duration_h <= 48):
            raise InputError("dose.over", self.duration_h, "must be between 0 and 48 h")


@dataclass(frozen=True, slots=True)
class Level:
    """One measured concentration ``value`` (reporting unit) at ``time_h``."""

    time_h: float
    value: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.time_h) and self.time_h >= 0):
            raise InputError("level.at", self.time_h, "must be a time >= 0 h")
        if not (math.isfinite(self.value) and self.value >= 0):
            raise InputError("level.concentration", self.value, "must be a number >= 0")


def _is_iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


class _Clock:
    """Turns ``at`` texts into hours, fixing the style (relative or ISO) on first use."""

    def __init__(self, origin: datetime | None = None, iso: bool | None = None) -> None:
        self.origin = origin
        self.iso = iso

    def hours(self, text: Any, field: str) -> float:
        if not isinstance(text, str) or not text.strip():
            raise InputError(field, text, "must be a duration such as '11.5 h' or an ISO time")
        iso = _is_iso(text.strip())
        if self.iso is None:
            self.iso = iso
        if iso != self.iso:
            raise InputError(field, text, "mixes ISO date-times and durations; use one style")
        if not iso:
            hours = parse_quantity(text, Kind.DURATION, field) / 60.0
        else:
            when = datetime.fromisoformat(text.strip())
            if self.origin is None:
                raise InputError(field, text, "ISO times need an ISO time for the first dose")
            try:
                hours = (when - self.origin).total_seconds() / 3600.0
            except TypeError:
                raise InputError(field, text, "mixes times with and without a time zone") from None
        if not 0.0 <= hours <= MAX_HISTORY_H:
            raise InputError(
                field, text, f"must be between the first dose and {MAX_HISTORY_H:g} h after it"
            )
        return hours


def _records(data: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise InputError(what, type(data).__name__, "must be a JSON list of objects")
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise InputError(f"{what}[{i}]", item, "must be an object")
    return data


def _need(item: dict[str, Any], key: str, field: str) -> Any:
    if key not in item:
        raise InputError(f"{field}.{key}", "", "is required")
    return item[key]


def parse_doses(
    data: Any, dimension: Dimension, *, require_over: bool
) -> tuple[list[DoseEvent], datetime | None]:
    """Doses sorted by time, amounts in the canonical unit (mg or IU), and the ISO origin.

    ``dimension`` is the drug's (mass or units; never converted into each other);
    ``require_over``: the infusion duration must be given (vancomycin).
    """
    items = _records(data, "doses")
    if not items:
        raise InputError("doses", "[]", "at least one dose is required")
    for i, item in enumerate(items):
        for key in item:
            if key not in ("at", "dose", "over"):
                raise InputError(f"doses[{i}].{key}", item[key], "is not a known field")
    origin: datetime | None = None
    raw_at = [_need(item, "at", f"doses[{i}]") for i, item in enumerate(items)]
    iso = [isinstance(a, str) and _is_iso(a.strip()) for a in raw_at]
    if any(iso):
        if not all(iso):
            i = iso.index(False)
            raise InputError(f"doses[{i}].at", raw_at[i], "mixes ISO date-times and durations")
        stamps = [datetime.fromisoformat(a.strip()) for a in raw_at]
        try:
            origin = min(stamps)
        except TypeError:
            raise InputError(
                "doses.at", raw_at[0], "mixes times with and without a time zone"
            ) from None
    clock = _Clock(origin, any(iso))
    doses: list[DoseEvent] = []
    for i, item in enumerate(items):
        field = f"doses[{i}]"
        start = clock.hours(item["at"], f"{field}.at")
        text = _need(item, "dose", field)
        value, unit = parse_amount(text, f"{field}.dose") if isinstance(text, str) else (0, None)
        if unit is None:
            raise InputError(f"{field}.dose", text, "must be an amount with a unit, e.g. '1 g'")
        if unit.dimension is not dimension:
            raise InputError(
                f"{field}.dose",
                text,
                f"must be a {dimension.value} amount; mass and units are never converted",
            )
        amount = unit.to_canonical(value)
        if not amount > 0:
            raise InputError(f"{field}.dose", text, "must be greater than 0")
        if "over" in item:
            over_h = parse_quantity(item["over"], Kind.DURATION, f"{field}.over") / 60.0
            if not 0.0 <= over_h <= 48.0:
                raise InputError(f"{field}.over", item["over"], "must be between 0 and 48 h")
        elif require_over:
            raise InputError(f"{field}.over", "", "is required (infusion time, e.g. '1 h')")
        else:
            over_h = 0.0
        doses.append(DoseEvent(start, amount, over_h))
    return sorted(doses, key=lambda d: d.start_h), origin


def parse_concentration_level(text: Any, dimension: Dimension, unit: str, field: str) -> float:
    """A measured level such as "12 mg/L" or "45 IU/dL" in ``unit`` (``mg/L`` or ``IU/dL``)."""
    if not isinstance(text, str) or "/" not in text:
        raise InputError(field, text, f"must be a concentration such as '12 {unit}'")
    amount_text, _, volume_text = text.rpartition("/")
    value, amount_unit_text = split_number(amount_text.strip(), field)
    try:
        amount_unit = parse_amount_unit(amount_unit_text, field)
    except InputError:
        raise InputError(field, text, f"unknown amount unit; write e.g. '12 {unit}'") from None
    volume = _VOLUME_L.get(volume_text.strip())
    if volume is None:
        raise InputError(field, text, "the volume must be L, dL or mL")
    if amount_unit.dimension is not dimension:
        raise InputError(field, text, f"must be a {dimension.value} concentration, e.g. '{unit}'")
    per_l = amount_unit.to_canonical(value) / volume
    scale = {"mg/L": 1.0, "IU/dL": 0.1}[unit]
    out = per_l * scale
    if not (math.isfinite(out) and out >= 0):
        raise InputError(field, text, "must be a concentration >= 0")
    return out


def parse_levels(
    data: Any, dimension: Dimension, unit: str, origin: datetime | None
) -> list[Level]:
    """Levels sorted by time, in ``unit``; ISO times need ``origin`` (the first dose)."""
    items = _records(data, "levels")
    clock = _Clock(origin, origin is not None)
    levels: list[Level] = []
    for i, item in enumerate(items):
        field = f"levels[{i}]"
        for key in item:
            if key not in ("at", "concentration"):
                raise InputError(f"{field}.{key}", item[key], "is not a known field")
        at = clock.hours(_need(item, "at", field), f"{field}.at")
        conc = parse_concentration_level(
            _need(item, "concentration", field), dimension, unit, f"{field}.concentration"
        )
        levels.append(Level(at, conc))
    return sorted(levels, key=lambda lv: lv.time_h)


def check_levels_after_first_dose(doses: Sequence[DoseEvent], levels: Sequence[Level]) -> None:
    """Refuse a level drawn before the first dose (the model assumes a drug-free start)."""
    first = min(d.start_h for d in doses)
    for i, level in enumerate(levels):
        if level.time_h <= first:
            raise InputError(
                f"levels[{i}].at", f"{level.time_h:g} h", "must be after the first dose"
            )
