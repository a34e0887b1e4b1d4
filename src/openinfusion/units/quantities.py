"""Parsing quantities written by people ("70 kg", "400 mg", "2 h") into checked floats.

Everything is parsed once, at the edge, into plain floats in canonical units whose names
say the unit (``weight_kg``, ``duration_min``, ``rate_ml_h``). Hot paths never see pint.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import pint

from openinfusion.errors import InputError
from openinfusion.units._registry import normalise_unit_text, registry

_NUMBER = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")

# ISMP "List of Error-Prone Abbreviations, Symbols, and Dose Designations": these are
# refused with the safe spelling instead of being guessed at.
_ERROR_PRONE = {
    "U": "write 'units' ('U' is misread as 0 or 4; ISMP error-prone abbreviation)",
    "u": "write 'units' ('u' is misread as 0 or 4; ISMP error-prone abbreviation)",
    "cc": "write 'mL' ('cc' is misread as 'u'; ISMP error-prone abbreviation)",
}


class Dimension(StrEnum):
    """What a drug amount measures. Amounts of different dimensions never convert."""

    MASS = "mass"
    UNITS = "units"
    EQUIVALENTS = "equivalents"
    SUBSTANCE = "substance"
    VOLUME = "volume"

    @property
    def canonical_unit(self) -> str:
        """The unit hot paths use for this dimension (mg, unit, mEq, mmol, mL)."""
        return _CANONICAL[self]


_CANONICAL = {
    Dimension.MASS: "mg",
    Dimension.UNITS: "units",
    Dimension.EQUIVALENTS: "mEq",
    Dimension.SUBSTANCE: "mmol",
    Dimension.VOLUME: "mL",
}
_PINT_DIMENSION = {
    "[mass]": Dimension.MASS,
    "[drug_activity]": Dimension.UNITS,
    "[charge_equivalent]": Dimension.EQUIVALENTS,
    "[substance]": Dimension.SUBSTANCE,
    "[volume]": Dimension.VOLUME,
}
_PINT_CANONICAL = {
    Dimension.MASS: "mg",
    Dimension.UNITS: "drug_unit",
    Dimension.EQUIVALENTS: "mEq",
    Dimension.SUBSTANCE: "mmol",
    Dimension.VOLUME: "mL",
}


@dataclass(frozen=True, slots=True)
class AmountUnit:
    """A unit of drug amount: ``factor`` converts a value in it to the canonical unit."""

    symbol: str
    dimension: Dimension
    factor: float

    def to_canonical(self, value: float) -> float:
        return value * self.factor

    def from_canonical(self, value: float) -> float:
        return value / self.factor


def split_number(text: str, field: str) -> tuple[float, str]:
    """Split "5 mcg/kg/min" into (5.0, "mcg/kg/min"); the number must be finite."""
    if not isinstance(text, str):
        raise InputError(field, text, "must be text such as '5 mg'")
    if "," in text:
        raise InputError(field, text, "commas are not accepted in numbers; use '.' as decimal mark")
    match = _NUMBER.match(text)
    if match is None:
        raise InputError(field, text, "must start with a finite number, e.g. '5 mg'")
    value = float(match.group(1))
    if not math.isfinite(value):
        raise InputError(field, text, "must be a finite number")
    return value, match.group(2)


def _parse_unit(text: str, field: str) -> pint.Unit:
    cleaned = normalise_unit_text(text)
    if cleaned in _ERROR_PRONE:
        raise InputError(field, text, _ERROR_PRONE[cleaned])
    for token in re.split(r"[\s/*^()]+", cleaned):
        if token in _ERROR_PRONE:
            raise InputError(field, text, _ERROR_PRONE[token])
    try:
        return registry().Unit(cleaned)
    except (
        pint.UndefinedUnitError,
        pint.DefinitionSyntaxError,
        AttributeError,
        TypeError,
        ValueError,
        AssertionError,
        SyntaxError,
    ) as exc:
        raise InputError(field, text, f"unknown unit ({exc})") from None


@lru_cache(maxsize=512)
def _amount_unit_cached(text: str, field: str) -> AmountUnit:
    unit = _parse_unit(text, field)
    dims = dict(unit.dimensionality)
    if len(dims) != 1 or next(iter(dims.values())) != 1:
        raise InputError(
            field, text, "must be an amount of drug: mass (mg), units, mEq, mmol or mL"
        )
    dimension = _PINT_DIMENSION.get(next(iter(dims)))
    if dimension is None:
        raise InputError(
            field, text, "must be an amount of drug: mass (mg), units, mEq, mmol or mL"
        )
    factor = float(registry().Quantity(1.0, unit).to(_PINT_CANONICAL[dimension]).magnitude)
    symbol = normalise_unit_text(text).replace("drug_unit", "unit")
    return AmountUnit(symbol=_display_symbol(symbol), dimension=dimension, factor=factor)


_DISPLAY = {
    "ug": "mcg",
    "unit": "units",
    "IU": "units",
    "milliunit": "milliunits",
    "million_units": "million units",
    "MU": "million units",
    "ml": "mL",
    "l": "L",
    "cc": "mL",
    "gm": "g",
    "MIU": "million units",
    "mIU": "milliunits",
}


def _display_symbol(symbol: str) -> str:
    return _DISPLAY.get(symbol, symbol)


def parse_amount_unit(text: str, field: str = "unit") -> AmountUnit:
    """Parse an amount unit ("mg", "mcg", "units", "mEq", "mmol", "mL")."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(field, text, "a unit is required, e.g. 'mg'")
    return _amount_unit_cached(text.strip(), field)


class Kind(StrEnum):
    """Physical quantities other than drug amounts, with the canonical unit they parse into."""

    WEIGHT = "kg"
    HEIGHT = "cm"
    DURATION = "min"
    VOLUME = "mL"
    FLOW = "mL/h"
    PRESSURE = "mmHg"
    AREA = "m^2"


_KIND_EXAMPLE = {
    Kind.WEIGHT: "'70 kg' or '154 lb'",
    Kind.HEIGHT: "'170 cm' or '67 in'",
    Kind.DURATION: "'30 min' or '2 h'",
    Kind.VOLUME: "'50 mL'",
    Kind.FLOW: "'10 mL/h'",
    Kind.PRESSURE: "'300 mmHg' or '6 psi'",
    Kind.AREA: "'1.8 m^2'",
}


def parse_quantity(text: str | float | int, kind: Kind, field: str) -> float:
    """Parse "70 kg" / "154 lb" into a float in ``kind``'s canonical unit.

    A bare number is refused: the unit must be explicit (RELIABILITY B-13, weight in lb
    where kg was expected).
    """
    if isinstance(text, bool) or not isinstance(text, str):
        raise InputError(field, text, f"needs a unit, e.g. {_KIND_EXAMPLE[kind]}")
    value, unit_text = split_number(text, field)
    if not unit_text:
        raise InputError(field, text, f"needs a unit, e.g. {_KIND_EXAMPLE[kind]}")
    try:
        unit = _parse_unit(unit_text, field)
    except InputError as exc:
        raise InputError(field, text, exc.rule) from None
    try:
        return float(registry().Quantity(value, unit).to(kind.value).magnitude)
    except pint.DimensionalityError:
        raise InputError(
            field, text, f"is not a {kind.name.lower()}; expected e.g. {_KIND_EXAMPLE[kind]}"
        ) from None


def parse_amount(text: str, field: str) -> tuple[float, AmountUnit]:
    """Parse "400 mg" into (400.0, AmountUnit mg)."""
    value, unit_text = split_number(text, field)
    try:
        return value, parse_amount_unit(unit_text, field)
    except InputError as exc:
        raise InputError(field, text, exc.rule) from None
