"""Virtual patients for a care area: seeded cohorts within the area's and the model's ranges.

Adults come from :func:`openinfusion.physiology.cohorts.adult_cohort` (NHANES-based), children
from :func:`~openinfusion.physiology.cohorts.paediatric_cohort` (WHO/CDC growth medians).
Ages and weights are kept inside both the care area's soft patient limits (the patients the
area usually treats) and the PK model's validity range; the report states the ranges used.
Serum creatinine (for renally cleared drugs) is log-normal, median 0.9 mg/dL, log-SD 0.35,
clipped to 0.4-4 mg/dL: a local choice approximating hospitalised adults, not a survey.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from openinfusion.analytics.library_verify_rules import ModelChoice
from openinfusion.library.schema import CareArea, Limits, Population
from openinfusion.physiology.cohorts import (
    AdultCovariateModel,
    Cohort,
    CovariateBounds,
    adult_cohort,
    paediatric_cohort,
)
from openinfusion.physiology.pk import Covariates

Array = NDArray[np.float64]

SCR_MEDIAN_MG_DL = 0.9
SCR_LOG_SD = 0.35
SCR_RANGE_MG_DL = (0.4, 4.0)
# Adult cohorts never draw beyond 90 years (the NHANES means are for adults up to 80+).
_ADULT_MAX_AGE = 90.0


@dataclass(frozen=True, slots=True)
class VirtualPopulation:
    """A drawn population: covariates for the model and the ranges it was drawn in."""

    cohort: Cohort
    covariates: Covariates
    age_range: tuple[float, float]
    weight_range: tuple[float, float]
    serum_creatinine_mg_dl: Array | None
    seed: int = 0

    @property
    def n(self) -> int:
        return len(self.cohort)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "n": self.n,
            "source": self.cohort.source,
            "age_years_range": list(self.age_range),
            "weight_kg_range": list(self.weight_range),
            "age_years_p5_p50_p95": _p(self.cohort.age_years),
            "weight_kg_p5_p50_p95": _p(self.cohort.weight_kg),
        }
        if self.serum_creatinine_mg_dl is not None:
            out["serum_creatinine_mg_dl_p5_p50_p95"] = _p(self.serum_creatinine_mg_dl)
        return out


def _p(values: Array) -> list[float]:
    return [round(float(v), 2) for v in np.percentile(values, [5, 50, 95])]


def _range(limits: Limits, fallback: tuple[float, float]) -> tuple[float, float]:
    """The usual (soft) range of a care-area patient limit, else its hard range."""
    lo = limits.soft_min if limits.soft_min is not None else limits.hard_min
    hi = limits.soft_max if limits.soft_max is not None else limits.hard_max
    return (fallback[0] if lo is None else lo, fallback[1] if hi is None else hi)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float] | None:
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return (lo, hi) if lo < hi else None


def population_ranges(
    area: CareArea, choice: ModelChoice
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """(age, weight) ranges shared by the care area and the model; None when they do not
    overlap (no validated model for the patients of this area)."""
    cohort_ages = (18.0, _ADULT_MAX_AGE) if area.population is Population.ADULT else (0.0, 18.0)
    ages = _overlap(_range(area.age_years, cohort_ages), cohort_ages)
    ages = _overlap(ages, choice.age_years) if ages else None
    weights = _overlap(_range(area.weight_kg, (0.2, 650.0)), choice.weight_kg)
    if ages is None or weights is None:
        return None
    return ages, weights


def draw_population(
    area: CareArea, choice: ModelChoice, n: int, seed: int
) -> VirtualPopulation | None:
    """``n`` virtual patients of ``area`` valid for ``choice``; None when impossible."""
    ranges = population_ranges(area, choice)
    if ranges is None:
        return None
    ages, weights = ranges
    bounds = CovariateBounds(age_years=ages, weight_kg=weights, bmi=choice.bmi)
    if area.population is Population.ADULT:
        cohort = adult_cohort(
            n, seed=seed, model=AdultCovariateModel(age_years=ages), bounds=bounds
        )
    else:
        cohort = paediatric_cohort(n, seed=seed, age_years=ages, bounds=bounds)
    scr = None
    if choice.needs_creatinine:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
        raw = SCR_MEDIAN_MG_DL * np.exp(SCR_LOG_SD * rng.standard_normal(n))
        scr = np.clip(raw, *SCR_RANGE_MG_DL)
    cov = Covariates(
        age_years=cohort.age_years,
        weight_kg=cohort.weight_kg,
        height_cm=cohort.height_cm,
        male=~cohort.female,
        serum_creatinine_mg_dl=scr,
    )
    return VirtualPopulation(cohort, cov, ages, weights, scr, seed)


__all__ = ["VirtualPopulation", "draw_population", "population_ranges"]
