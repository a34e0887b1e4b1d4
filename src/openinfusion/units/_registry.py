"""A pint unit registry holding only the units medicine doses are written in.

pint's default registry is not used on purpose: it defines ``U`` as the *enzyme unit*
(µmol/min), which would silently turn "100 units/mL" of heparin into a molar flow, and it
knows thousands of units no drug label uses. Here every dimension a dose can have is its
own base dimension, so pint itself refuses to convert mass into units, mEq or mmol.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pint

# Each base dimension below is independent: no definition links mass, drug units,
# equivalents and amount of substance. Factors are exact SI definitions (NIST SP 811).
_DEFINITIONS = """
gram = [mass] = g = gm
kilogram = 1000 * gram = kg
milligram = 1e-3 * gram = mg
microgram = 1e-6 * gram = mcg = ug
nanogram = 1e-9 * gram = ng
pound = 453.59237 * gram = lb = lbs
ounce = pound / 16 = oz

drug_unit = [drug_activity] = unit = units = IU
milliunit = 1e-3 * drug_unit = milliunits = mIU
million_units = 1e6 * drug_unit = MU = MIU

equivalent = [charge_equivalent] = Eq
milliequivalent = 1e-3 * equivalent = mEq

mole = [substance] = mol
millimole = 1e-3 * mole = mmol
micromole = 1e-6 * mole = umol

litre = [volume] = L = l = liter
decilitre = 0.1 * litre = dL = dl = deciliter
millilitre = 1e-3 * litre = mL = ml = milliliter = cc
microlitre = 1e-6 * litre = uL = ul = microliter

metre = [length] = m = meter
centimetre = 1e-2 * metre = cm = centimeter
millimetre = 1e-3 * metre = mm = millimeter
inch = 2.54 * centimetre = in
foot = 12 * inch = ft

second = [time] = s = sec
minute = 60 * second = min
hour = 60 * minute = h = hr
day = 24 * hour = d
week = 7 * day = wk
month = 30.436875 * day = mo
year = 365.2425 * day = y = yr

millimetre_Hg = [pressure] = mmHg
pound_force_per_square_inch = 51.71493257 * millimetre_Hg = psi
kilopascal = 7.50061683 * millimetre_Hg = kPa
"""

# Spellings people type that pint cannot read as written: Greek/micro signs, "million units",
# superscript squares and "per". Applied before pint parses.
_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[µμ]"), "u"),
    (re.compile(r"\bmillion\s+(international\s+)?units?\b", re.IGNORECASE), "million_units"),
    (re.compile(r"\binternational\s+units?\b", re.IGNORECASE), "IU"),
    (re.compile(r"²"), "^2"),
    (re.compile(r"\bper\b", re.IGNORECASE), "/"),
)


def normalise_unit_text(text: str) -> str:
    """Rewrite common medical spellings (µg, m², "million units") into registry names."""
    out = text.strip()
    for pattern, replacement in _REWRITES:
        out = pattern.sub(replacement, out)
    return out


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry[float]:
    """The process-wide medical unit registry (built once, ~ms)."""
    ureg: pint.UnitRegistry[float] = pint.UnitRegistry(None, autoconvert_offset_to_baseunit=False)
    for line in _DEFINITIONS.strip().splitlines():
        if line.strip():
            ureg.define(line)
    return ureg
