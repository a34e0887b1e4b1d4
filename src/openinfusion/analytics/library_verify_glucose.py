"""Insulin limits on the UVA/Padova virtual subjects, judged by consensus CGM targets.

Every limit of an entry is run at once: the subjects are repeated once per limit and the
batch integrator (:func:`openinfusion.physiology.glucose.simulate`) advances them together.
The scenario is a fixed insulin rate for 24 h without carbohydrate (fasting, the worst case
for hypoglycaemia), starting from each subject's basal steady state. The model's insulin
input is subcutaneous; an intravenous infusion acts faster, so times are indicative.

Targets (Battelino T et al., Diabetes Care 2019;42:1593-603): time in range 70-180 mg/dL
> 70 %, time below 70 mg/dL < 4 %, time below 54 mg/dL < 1 %, time above 180 < 25 %.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from openinfusion.errors import InputError
from openinfusion.library.schema import Population
from openinfusion.physiology.glucose import GlucoseParameters, GlucosePatients, simulate
from openinfusion.physiology.glucose import subject_names as _subject_names
from openinfusion.sim.metrics import HIGH, LOW, time_in_ranges
from openinfusion.units import Basis, Dimension, parse_dose_unit

Array = NDArray[np.float64]

HORIZON_MIN = 1440
TBR_MAX_PERCENT = 4.0  # Battelino 2019: < 4 % below 70 mg/dL
TBR2_MAX_PERCENT = 1.0  # Battelino 2019: < 1 % below 54 mg/dL
TIR_MIN_PERCENT = 70.0  # Battelino 2019: > 70 % in 70-180 mg/dL
TAR_MAX_PERCENT = 25.0  # Battelino 2019: < 25 % above 180 mg/dL


def subjects_for(population: Population) -> list[str]:
    """UVA/Padova subjects standing for a care area's patients; [] when none fit."""
    prefixes = {
        Population.ADULT: ("adult#",),
        Population.PAEDIATRIC: ("child#", "adolescent#"),
    }.get(population, ())
    return [n for n in _subject_names() if n.startswith(prefixes)] if prefixes else []


@dataclass(frozen=True, slots=True)
class GlucoseOutcome:
    """Per subject at one limit: BG trace (N, T+1) and the consensus percentages (N,)."""

    bg_mg_dl: Array
    tir: Array
    tbr: Array
    tbr2: Array
    tar: Array

    @property
    def hypo(self) -> NDArray[np.bool_]:
        """Subjects missing a hypoglycaemia target (the overdose side of the window)."""
        return np.asarray((self.tbr >= TBR_MAX_PERCENT) | (self.tbr2 >= TBR2_MAX_PERCENT))

    @property
    def level2(self) -> NDArray[np.bool_]:
        """Subjects with clinically significant (level 2) hypoglycaemia, < 54 mg/dL >= 1 %."""
        return np.asarray(self.tbr2 >= TBR2_MAX_PERCENT)

    @property
    def high(self) -> NDArray[np.bool_]:
        """Subjects above range too long (the underdose side), and not hypoglycaemic."""
        return np.asarray((self.tar >= TAR_MAX_PERCENT) & ~self.hypo)


def insulin_u_per_min(dose_unit: str, values: Sequence[float], weight_kg: Array) -> Array:
    """Insulin (U/min) per (limit, subject), shape (L, N), from an insulin dose rate."""
    unit = parse_dose_unit(dose_unit)
    if unit.dimension is not Dimension.UNITS or not unit.is_rate or unit.basis is Basis.M2:
        raise InputError("dose_unit", dose_unit, "must be an insulin rate in units/h or units/kg/h")
    per_h = np.array([unit.to_canonical(v) for v in values])[:, None]
    scale = weight_kg[None, :] if unit.basis is Basis.KG else np.ones((1, weight_kg.size))
    return np.asarray(per_h * scale / 60.0)


def simulate_limits(
    names: Sequence[str], dose_unit: str, values: Sequence[float]
) -> list[GlucoseOutcome]:
    """24 h of fasting at each limit rate for every subject; one outcome per limit."""
    params = GlucoseParameters.from_names(names)
    n, k = len(names), len(values)
    rates = insulin_u_per_min(dose_unit, values, params.body_weight_kg)  # (L, N)
    batch = GlucosePatients(params.take(np.tile(np.arange(n), k)))
    insulin = np.repeat(rates.reshape(-1, 1), HORIZON_MIN, axis=1)
    bg = simulate(batch, HORIZON_MIN, 0.0, insulin)
    ranges = time_in_ranges(bg[:, 1:])
    out = []
    for i in range(k):
        sl = slice(i * n, (i + 1) * n)
        out.append(
            GlucoseOutcome(
                bg[sl], ranges["tir"][sl], ranges["tbr"][sl], ranges["tbr2"][sl], ranges["tar"][sl]
            )
        )
    return out


def minutes_to_range(outcome: GlucoseOutcome) -> Array:
    """Per subject, minutes until BG is first within 70-180 mg/dL; NaN if never."""
    bg = outcome.bg_mg_dl
    inside = (bg >= LOW) & (bg <= HIGH)
    return np.where(inside.any(axis=1), inside.argmax(axis=1).astype(np.float64), np.nan)


def minutes_to_hypo(outcome: GlucoseOutcome) -> Array:
    """Per subject, minutes until BG first falls below 70 mg/dL; NaN if it never does."""
    low = outcome.bg_mg_dl < LOW
    return np.where(low.any(axis=1), low.argmax(axis=1).astype(np.float64), np.nan)


__all__ = [
    "HORIZON_MIN",
    "GlucoseOutcome",
    "insulin_u_per_min",
    "minutes_to_hypo",
    "minutes_to_range",
    "simulate_limits",
    "subjects_for",
]
