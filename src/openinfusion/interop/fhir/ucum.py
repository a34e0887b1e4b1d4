"""UCUM unit codes ⇄ the dose units the server's drug libraries are written in.

Only the units of infusion doses are accepted, token by token over ``/``: masses ``g mg ug
ng``, drug units ``[iU]`` (and ``[USP'U]``, both read as the library's ``units``), ``meq``,
``mmol``, ``umol``, volume ``mL``, body basis ``kg`` and ``m2``, time ``h``, ``min``, ``d``.
UCUM's ``U`` is the enzyme unit (µmol/min), not a drug unit, and is refused, as are ISMP's
error-prone abbreviations generally (UCUM: https://ucum.org/ucum, §§ 31-46 and Table 6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FROM_UCUM = {
    "g": "g",
    "mg": "mg",
    "ug": "mcg",
    "ng": "ng",
    "[iU]": "units",
    "[IU]": "units",
    "[USP'U]": "units",
    "meq": "mEq",
    "mmol": "mmol",
    "umol": "umol",
    "mL": "mL",
    "kg": "kg",
    "m2": "m2",
    "h": "h",
    "min": "min",
    "d": "d",
}
_TO_UCUM = {
    "g": "g",
    "mg": "mg",
    "mcg": "ug",
    "ng": "ng",
    "units": "[iU]",
    "mEq": "meq",
    "mmol": "mmol",
    "umol": "umol",
    "mL": "mL",
    "kg": "kg",
    "m2": "m2",
    "h": "h",
    "min": "min",
    "d": "d",
}
TIMES = frozenset({"h", "min", "d"})
VOLUMES = frozenset({"mL"})
_DOSE_TEXT = re.compile(
    r"^\s*(?P<value>[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s+(?P<unit>\S+)\s*$"
)


def from_ucum(code: str) -> list[str] | None:
    """The library's unit tokens for a UCUM code (``ug/kg/min`` -> mcg, kg, min), or None."""
    tokens = code.split("/")
    out = [_FROM_UCUM.get(t) for t in tokens]
    if not tokens or any(t is None for t in out):
        return None
    return [t for t in out if t is not None]


@dataclass(frozen=True, slots=True)
class UcumQuantity:
    value: float
    ucum: str
    is_rate: bool  # the unit ends in a time: a dose rate, not an amount


def dose_quantity(text: str) -> UcumQuantity | None:
    """A stored dose text (``"0.1 mcg/kg/min"``) as a UCUM quantity, or None if it has a
    unit UCUM cannot say here."""
    m = _DOSE_TEXT.match(text)
    if m is None:
        return None
    tokens = m["unit"].split("/")
    codes = [_TO_UCUM.get(t) for t in tokens]
    if any(c is None for c in codes):
        return None
    return UcumQuantity(float(m["value"]), "/".join(c for c in codes if c), tokens[-1] in TIMES)
