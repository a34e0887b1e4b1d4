"""Doses, concentrations, and the conversions between a dose and a pump rate in mL/h.

A dose unit has three parts: an amount ("mcg", "units", "mEq", "mmol", "mL"), an optional
patient basis ("/kg" of body weight or "/m2" of body surface area) and an optional time
("/min", "/h", "/day"). With a time it is a dose *rate* (a continuous infusion); without,
a single dose (bolus, loading or intermittent dose).

Canonical form, used by every hot path: the amount in its dimension's canonical unit
(mg, unit, mEq, mmol, mL), per basis (kg or m2) when there is one, per *hour* for rates.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

from openinfusion.errors import InputError
from openinfusion.units._registry import normalise_unit_text
from openinfusion.units.quantities import (
    AmountUnit,
    Dimension,
    parse_amount_unit,
    split_number,
)


class Basis(StrEnum):
    """What a dose is scaled by: nothing, body weight (kg) or body surface area (m2)."""

    NONE = ""
    KG = "kg"
    M2 = "m2"


_BASIS_SPELLINGS = {"kg": Basis.KG, "m^2": Basis.M2, "m2": Basis.M2, "bsa": Basis.M2}
# Time units a dose rate may be expressed per, in minutes.
_TIME_SPELLINGS = {
    "min": ("min", 1.0),
    "minute": ("min", 1.0),
    "minutes": ("min", 1.0),
    "h": ("h", 60.0),
    "hr": ("h", 60.0),
    "hour": ("h", 60.0),
    "hours": ("h", 60.0),
    "day": ("day", 1440.0),
    "d": ("day", 1440.0),
    "days": ("day", 1440.0),
    "24h": ("day", 1440.0),
    "24 h": ("day", 1440.0),
}


@dataclass(frozen=True, slots=True)
class DoseUnit:
    """A parsed dose unit such as mcg/kg/min. ``to_canonical`` gives mg/kg/h etc.

    ``text``, ``factor`` and ``is_rate`` are derived once at construction: DERS reads
    them on every check.
    """

    amount: AmountUnit
    basis: Basis
    time_unit: str | None
    time_min: float | None
    text: str = field(init=False, compare=False)
    factor: float = field(init=False, compare=False)
    is_rate: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        parts = [self.amount.symbol]
        if self.basis is not Basis.NONE:
            parts.append(self.basis.value)
        if self.time_unit:
            parts.append(self.time_unit)
        per_hour = 60.0 / self.time_min if self.time_min is not None else 1.0
        object.__setattr__(self, "text", "/".join(parts))
        object.__setattr__(self, "factor", self.amount.factor * per_hour)
        object.__setattr__(self, "is_rate", self.time_min is not None)

    @property
    def dimension(self) -> Dimension:
        return self.amount.dimension

    @property
    def canonical_text(self) -> str:
        parts = [self.dimension.canonical_unit]
        if self.basis is not Basis.NONE:
            parts.append(self.basis.value)
        if self.is_rate:
            parts.append("h")
        return "/".join(parts)

    def to_canonical(self, value: float) -> float:
        return value * self.factor

    def from_canonical(self, value: float) -> float:
        return value / self.factor

    def __str__(self) -> str:
        return self.text


@lru_cache(maxsize=512)
def _dose_unit_cached(text: str, field: str) -> DoseUnit:
    cleaned = normalise_unit_text(text)
    parts = [p.strip() for p in cleaned.split("/")]
    if not parts[0] or any(not p for p in parts):
        raise InputError(field, text, "must look like 'mg', 'mcg/kg/min', 'units/h' or 'mg/m2'")
    amount = parse_amount_unit(parts[0], field)
    basis = Basis.NONE
    time_unit: str | None = None
    time_min: float | None = None
    for part in parts[1:]:
        key = part.lower().replace(" ", "")
        if key in _BASIS_SPELLINGS and basis is Basis.NONE and time_unit is None:
            basis = _BASIS_SPELLINGS[key]
        elif key in _TIME_SPELLINGS and time_unit is None:
            time_unit, time_min = _TIME_SPELLINGS[key]
        else:
            raise InputError(
                field,
                text,
                "must be amount[/kg|/m2][/min|/h|/day], e.g. 'mcg/kg/min', 'units/h', 'mg/m2'",
            )
    return DoseUnit(amount=amount, basis=basis, time_unit=time_unit, time_min=time_min)


def parse_dose_unit(text: str, field: str = "dose_unit") -> DoseUnit:
    """Parse "mcg/kg/min", "units/h", "mg/m2", "mEq/h", "mL/h" into a :class:`DoseUnit`."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(field, text, "a dose unit is required, e.g. 'mcg/kg/min'")
    return _dose_unit_cached(text.strip(), field)


@dataclass(frozen=True, slots=True)
class Dose:
    """A dose value in a dose unit, e.g. 5 mcg/kg/min."""

    value: float
    unit: DoseUnit

    @property
    def canonical(self) -> float:
        return self.unit.to_canonical(self.value)

    def to(
        self, unit: DoseUnit, weight_kg: float | None = None, bsa_m2: float | None = None
    ) -> Dose:
        """Express this dose in ``unit``; weight/BSA are needed only to change the basis."""
        return Dose(convert_dose(self, unit, weight_kg=weight_kg, bsa_m2=bsa_m2), unit)

    def __str__(self) -> str:
        return f"{format_number(self.value)} {self.unit.text}"


def parse_dose(text: str, field: str = "dose") -> Dose:
    """Parse "5 mcg/kg/min" into a :class:`Dose`. The value must be finite."""
    value, unit_text = split_number(text, field)
    if not unit_text:
        raise InputError(field, text, "needs a unit, e.g. '5 mcg/kg/min'")
    try:
        return Dose(value, parse_dose_unit(unit_text, field))
    except InputError as exc:
        raise InputError(field, text, exc.rule) from None


@dataclass(frozen=True, slots=True)
class Concentration:
    """Drug amount per volume, kept as written ("400 mg/250 mL") and as ``per_ml``."""

    amount: float
    unit: AmountUnit
    volume_ml: float
    per_ml: float = field(init=False, compare=False)
    """Canonical amount (mg, units, mEq, mmol) per mL, derived at construction."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_ml", self.unit.to_canonical(self.amount) / self.volume_ml)

    @property
    def dimension(self) -> Dimension:
        return self.unit.dimension

    @property
    def text(self) -> str:
        if self.volume_ml == 1.0:
            return f"{format_number(self.amount)} {self.unit.symbol}/mL"
        return f"{format_number(self.amount)} {self.unit.symbol}/{format_number(self.volume_ml)} mL"

    def same_strength(self, other: Concentration, rel_tol: float = 1e-9) -> bool:
        return self.dimension is other.dimension and math.isclose(
            self.per_ml, other.per_ml, rel_tol=rel_tol
        )

    def __str__(self) -> str:
        return self.text


_VOLUME_PART = re.compile(r"^\s*(?:(\d+(?:\.\d*)?|\.\d+)\s*)?(mL|ml|L|l|cc)\s*$")


def parse_concentration(text: str, field: str = "concentration") -> Concentration:
    """Parse "400 mg/250 mL", "1 mg/mL", "100 units/mL", "40 mEq/100 mL"."""
    if not isinstance(text, str) or "/" not in text:
        raise InputError(field, text, "must be amount/volume, e.g. '400 mg/250 mL' or '1 mg/mL'")
    amount_text, _, volume_text = text.rpartition("/")
    amount, unit_text = split_number(amount_text, field)
    if not unit_text:
        raise InputError(field, text, "the amount needs a unit, e.g. '400 mg/250 mL'")
    try:
        unit = parse_amount_unit(unit_text, field)
    except InputError as exc:
        raise InputError(field, text, exc.rule) from None
    if unit.dimension is Dimension.VOLUME:
        raise InputError(field, text, "the amount must be a drug amount (mg, units, mEq, mmol)")
    match = _VOLUME_PART.match(volume_text)
    if match is None:
        raise InputError(field, text, "the volume must be in mL or L, e.g. '250 mL'")
    if match.group(2) == "cc":
        raise InputError(field, text, "write 'mL' ('cc' is an ISMP error-prone abbreviation)")
    volume = float(match.group(1)) if match.group(1) else 1.0
    volume_ml = volume * (1000.0 if match.group(2) in ("L", "l") else 1.0)
    if not amount > 0:
        raise InputError(field, text, "the drug amount must be greater than zero")
    if not volume_ml > 0:
        raise InputError(field, text, "the volume must be greater than zero")
    return Concentration(amount=amount, unit=unit, volume_ml=volume_ml)


def format_number(value: float) -> str:
    """Shortest plain spelling of a number: 250.0 -> '250', 0.1 -> '0.1' (no trailing zero).

    Infinite and NaN values (a dose so large that its rate overflows) are spelt 'inf',
    '-inf' and 'nan' so that the message refusing them can still be written."""
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


# ---- conversions ---------------------------------------------------------------------------


def basis_value(
    basis: Basis, weight_kg: float | None, bsa_m2: float | None, field: str = "patient"
) -> float:
    """The patient's size for ``basis``: weight in kg, BSA in m2, or 1 for a plain dose."""
    if basis is Basis.NONE:
        return 1.0
    if basis is Basis.KG:
        if weight_kg is None:
            raise InputError("weight", "", "required for a weight-based (per kg) dose")
        if not (math.isfinite(weight_kg) and weight_kg > 0):
            raise InputError("weight", weight_kg, "must be a positive weight in kg")
        return weight_kg
    if bsa_m2 is None:
        raise InputError(
            "height", "", "weight and height are required for a BSA-based (per m2) dose"
        )
    if not (math.isfinite(bsa_m2) and bsa_m2 > 0):
        raise InputError("bsa", bsa_m2, "must be a positive body surface area in m2")
    return bsa_m2


def check_same_dimension(
    dose_unit: DoseUnit, concentration: Concentration, field: str = "concentration"
) -> None:
    """Refuse to relate a dose and a concentration measured in different dimensions."""
    if dose_unit.dimension is Dimension.VOLUME:
        return
    if dose_unit.dimension is not concentration.dimension:
        raise InputError(
            field,
            concentration.text,
            f"is in {concentration.dimension.value} but the dose is in "
            f"{dose_unit.dimension.value} ({dose_unit.text}); mass, units, mEq and mmol "
            "are never converted into each other",
        )


def _per_ml(dose_unit: DoseUnit, concentration: Concentration | None) -> float:
    if dose_unit.dimension is Dimension.VOLUME:
        return 1.0
    if concentration is None:
        raise InputError("concentration", "", f"required to turn {dose_unit.text} into mL")
    check_same_dimension(dose_unit, concentration)
    return concentration.per_ml


def dose_to_rate_ml_h(
    dose: Dose,
    concentration: Concentration | None,
    weight_kg: float | None = None,
    bsa_m2: float | None = None,
) -> float:
    """Pump rate in mL/h that delivers the dose rate ``dose`` (e.g. 5 mcg/kg/min)."""
    if not dose.unit.is_rate:
        raise InputError("dose", str(dose), "a rate needs a dose over time, e.g. 'mcg/kg/min'")
    per_ml = _per_ml(dose.unit, concentration)
    size = basis_value(dose.unit.basis, weight_kg, bsa_m2)
    return dose.canonical * size / per_ml


def rate_to_dose(
    rate_ml_h: float,
    concentration: Concentration | None,
    unit: DoseUnit,
    weight_kg: float | None = None,
    bsa_m2: float | None = None,
) -> Dose:
    """The dose rate, in ``unit``, that a pump running at ``rate_ml_h`` delivers."""
    if not unit.is_rate:
        raise InputError("dose_unit", unit.text, "must be a dose over time, e.g. 'mcg/kg/min'")
    per_ml = _per_ml(unit, concentration)
    size = basis_value(unit.basis, weight_kg, bsa_m2)
    return Dose(unit.from_canonical(rate_ml_h * per_ml / size), unit)


def dose_to_volume_ml(
    dose: Dose,
    concentration: Concentration | None,
    weight_kg: float | None = None,
    bsa_m2: float | None = None,
) -> float:
    """Volume in mL holding a single dose (bolus, loading, intermittent): mg, mg/kg, units/kg."""
    if dose.unit.is_rate:
        raise InputError(
            "dose", str(dose), "a bolus is a single dose, e.g. '2 mg' or '50 units/kg'"
        )
    per_ml = _per_ml(dose.unit, concentration)
    size = basis_value(dose.unit.basis, weight_kg, bsa_m2)
    return dose.canonical * size / per_ml


def volume_to_dose(
    volume_ml: float,
    concentration: Concentration | None,
    unit: DoseUnit,
    weight_kg: float | None = None,
    bsa_m2: float | None = None,
) -> Dose:
    """The single dose, in ``unit``, held in ``volume_ml``."""
    if unit.is_rate:
        raise InputError("dose_unit", unit.text, "must be a single-dose unit, e.g. 'mg/kg'")
    per_ml = _per_ml(unit, concentration)
    size = basis_value(unit.basis, weight_kg, bsa_m2)
    return Dose(unit.from_canonical(volume_ml * per_ml / size), unit)


def convert_dose(
    dose: Dose, unit: DoseUnit, weight_kg: float | None = None, bsa_m2: float | None = None
) -> float:
    """``dose`` expressed in ``unit`` (same dimension, same rate-or-single kind)."""
    if dose.unit.dimension is not unit.dimension:
        raise InputError(
            "dose",
            str(dose),
            f"is in {dose.unit.dimension.value}, the limit is in {unit.dimension.value} "
            f"({unit.text}); mass, units, mEq and mmol are never converted into each other",
        )
    if dose.unit.is_rate != unit.is_rate:
        kind = "a dose over time" if unit.is_rate else "a single dose"
        raise InputError("dose", str(dose), f"must be {kind} like {unit.text}")
    if dose.unit.basis is unit.basis:
        return unit.from_canonical(dose.canonical)
    absolute = dose.canonical * basis_value(dose.unit.basis, weight_kg, bsa_m2)
    return unit.from_canonical(absolute / basis_value(unit.basis, weight_kg, bsa_m2))
