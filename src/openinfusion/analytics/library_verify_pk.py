"""Exposure of a virtual population to a drug entry's dose, vectorised over patients.

One exact compartment solution (:func:`openinfusion.physiology.pk.simulate`) is computed for
the whole population at a unit dose of the entry's dose unit (1 mcg/kg/min, 1 mg ...). PK is
linear in dose, so the concentrations at any limit are the unit response times the limit:
every limit of an entry costs one simulation, not one per limit or per patient.

Dose modes: continuous (and PCA basal) rates run from time 0 for the horizon; intermittent
doses repeat every ``interval_h`` over the entry's default duration; bolus doses are given
once at time 0. Times in seconds on the grid, reported in minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from openinfusion.analytics.library_verify_population import VirtualPopulation
from openinfusion.analytics.library_verify_rules import ModelChoice, Window
from openinfusion.control.mipd.priors import PRIORS, PriorModel
from openinfusion.errors import InputError
from openinfusion.library.schema import DrugEntry, InfusionType
from openinfusion.patient.covariates import bsa_m2
from openinfusion.physiology.pk import (
    ModelOptions,
    ModelSpec,
    PkModel,
    Schedule,
    build_model,
    simulate,
)
from openinfusion.units import Basis, DoseUnit, parse_dose_unit

Array = NDArray[np.float64]

# Vancomycin maintenance is usually every 8-12 h in adults (Rybak 2020); q12h is simulated,
# judged on the last of three days (about five half-lives for typical adult clearance).
INTERMITTENT_INTERVAL_H = 12.0
INTERMITTENT_DAYS = 3
# Horizons: anaesthesia cases run hours, ICU and ward infusions a day or more (local choice).
ANAESTHESIA_HORIZON_H = 4.0
CONTINUOUS_HORIZON_H = 24.0
BOLUS_HORIZON_H = 1.0
_GRID_STEP_S = {"continuous": 300.0, "intermittent": 360.0, "bolus": 60.0}


@dataclass(frozen=True, slots=True)
class DosePlan:
    """How one unit of the entry's dose is given: mode, horizon and grid."""

    mode: str  # continuous | intermittent | bolus
    horizon_h: float
    infusion_min: float | None = None
    interval_h: float | None = None

    @property
    def grid_s(self) -> Array:
        step = _GRID_STEP_S[self.mode]
        return np.arange(0.0, self.horizon_h * 3600.0 + step / 2, step)

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "horizon_h": self.horizon_h,
            "infusion_min": self.infusion_min,
            "interval_h": self.interval_h,
        }


def dose_plan(entry: DrugEntry) -> DosePlan:
    """The simulated regimen for an entry's dose mode."""
    kind = entry.infusion_type
    if kind in (InfusionType.CONTINUOUS, InfusionType.PCA):
        anaesthesia = "anaesth" in entry.care_area
        return DosePlan(
            "continuous", ANAESTHESIA_HORIZON_H if anaesthesia else CONTINUOUS_HORIZON_H
        )
    if kind is InfusionType.INTERMITTENT:
        d = entry.limits.duration_min
        minutes = next((v for v in (d.default, d.soft_min, d.hard_min) if v is not None), 60.0)
        return DosePlan(
            "intermittent",
            INTERMITTENT_INTERVAL_H * 2 * INTERMITTENT_DAYS,
            infusion_min=float(minutes),
            interval_h=INTERMITTENT_INTERVAL_H,
        )
    if kind is InfusionType.BOLUS:
        return DosePlan("bolus", BOLUS_HORIZON_H)
    raise InputError("infusion_type", kind.value, "has no dose mode to simulate")


@dataclass(frozen=True, slots=True)
class UnitResponse:
    """The population's exposure to ONE unit of the entry's dose unit.

    ``series`` (N, T): the judged concentration on ``t_s``; ``metric`` (N,): the judged
    value (peak over the horizon, or the steady-state AUC24); ``daily`` (N, D): simulated
    AUC per day for AUC windows. Multiply by a limit value for that limit (linear PK).
    """

    t_s: Array
    series: Array
    metric: Array
    daily: Array | None
    unit: str


def amount_per_unit(
    unit: DoseUnit, spec: ModelSpec, pop: VirtualPopulation, field: str = "dose_unit"
) -> Array:
    """Model amount (per s for a rate) for 1 of ``unit`` in each patient, shape (N,)."""
    if unit.dimension is not spec.dimension:
        raise InputError(
            field,
            unit.text,
            f"is in {unit.dimension.value} but the {spec.drug} model doses in "
            f"{spec.dimension.value}",
        )
    per = unit.to_canonical(1.0) * spec.amount_per_canonical
    if unit.basis is Basis.KG:
        scale = np.asarray(pop.cohort.weight_kg, dtype=np.float64)
    elif unit.basis is Basis.M2:
        c = pop.cohort
        scale = np.array([bsa_m2(w, h) for w, h in zip(c.weight_kg, c.height_cm, strict=True)])
    else:
        scale = np.ones(pop.n)
    amount = per * scale
    return amount / 3600.0 if unit.is_rate else amount


def build_population_model(
    choice: ModelChoice, pop: VirtualPopulation
) -> tuple[ModelSpec, PkModel]:
    """The choice's parameter set at every patient's covariates, with between-subject
    variability where the project holds the model's published Omega (the MIPD priors)."""
    options = ModelOptions(opioid=choice.opioid)
    spec, model = build_model(choice.drug, choice.model, pop.covariates, options)
    prior = PRIORS.get((choice.drug, choice.model))
    if prior is None:
        return spec, model
    rng = np.random.default_rng(np.random.SeedSequence([pop.seed, 2]))
    return spec, with_variability(model, prior, rng)


def variability_source(choice: ModelChoice) -> str:
    """Where the population's between-subject variability comes from, for the report."""
    prior = PRIORS.get((choice.drug, choice.model))
    if prior is None:
        return "typical values at each patient's covariates (no published Omega in the project)"
    return f"log-normal between-subject variability on {', '.join(prior.etas)}: {prior.citation}"


def with_variability(model: PkModel, prior: PriorModel, rng: np.random.Generator) -> PkModel:
    """Individual parameters ``theta_i = theta_typical exp(eta_i)``, eta ~ N(0, Omega) on the
    prior's CL, V1, V2 (intercompartmental clearances kept), as in MAP estimation."""
    k = len(prior.etas)
    eta = rng.multivariate_normal(np.zeros(k), prior.omega, size=model.n_patients)
    scale = {name: np.exp(eta[:, j]) for j, name in enumerate(prior.etas)}
    one = np.ones(model.n_patients)
    has_v2 = bool(np.all(model.v2_l > 0))
    has_v3 = model.compartments == 3
    return PkModel.from_clearances(
        v1_l=model.v1_l * scale.get("v1", one),
        cl_l_min=model.cl_l_min * scale.get("cl", one),
        v2_l=model.v2_l * scale.get("v2", one) if has_v2 else None,
        q2_l_min=model.q2_l_min if has_v2 else None,
        v3_l=model.v3_l if has_v3 else None,
        q3_l_min=model.q3_l_min if has_v3 else None,
        ke0_per_min=model.ke0_per_min,
    )


def schedule_for(plan: DosePlan, amount: Array) -> Schedule:
    """The unit-dose schedule: ``amount`` (N,) is a rate (amount/s) or a dose (amount)."""
    horizon_s = plan.horizon_h * 3600.0
    if plan.mode == "continuous":
        return Schedule.build(infusions=[(0.0, horizon_s, amount)])
    if plan.mode == "bolus":
        return Schedule.build(boluses=[(0.0, amount)])
    assert plan.interval_h is not None and plan.infusion_min is not None
    over_s = plan.infusion_min * 60.0
    starts = np.arange(0.0, horizon_s, plan.interval_h * 3600.0)
    return Schedule.build(infusions=[(s, s + over_s, amount / over_s) for s in starts])


def unit_response(
    model: PkModel,
    spec: ModelSpec,
    schedule: Schedule,
    plan: DosePlan,
    window: Window | None,
    daily_amount: Array | None = None,
) -> UnitResponse:
    """Simulate the unit dose for every patient of ``model`` and reduce to the metric.

    AUC windows are judged at steady state, ``AUC24 = daily amount / CL`` (exact for linear
    PK whatever the compartments: renally impaired patients reach it only after days, and
    the maximum exposure is the one that matters); the simulated days give the time course.
    """
    grid = plan.grid_s
    result = simulate(model, schedule, grid)
    use_ce = window is not None and window.metric == "ce"
    series = (result.ce if use_ce else result.cp) * spec.concentration_scale
    if window is not None and window.metric == "auc24":
        t_h = grid / 3600.0
        days = round(plan.horizon_h / 24.0)
        daily = np.empty((series.shape[0], days))
        for d in range(days):
            sel = (t_h >= 24.0 * d - 1e-9) & (t_h <= 24.0 * (d + 1) + 1e-9)
            daily[:, d] = np.trapezoid(series[:, sel], t_h[sel], axis=1)
        if daily_amount is None:
            raise InputError("daily_amount", None, "is needed to judge an AUC window")
        steady = daily_amount / (model.cl_l_min * 60.0) * spec.concentration_scale
        return UnitResponse(grid, series, steady, daily, "mg*h/L")
    return UnitResponse(grid, series, series.max(axis=1), None, spec.concentration_unit)


def entry_unit_response(
    entry: DrugEntry, choice: ModelChoice, pop: VirtualPopulation, window: Window | None
) -> tuple[ModelSpec, DosePlan, UnitResponse]:
    """Everything for one entry: model, regimen and the population's unit response."""
    spec, model = build_population_model(choice, pop)
    unit = parse_dose_unit(entry.dose_unit)
    plan = dose_plan(entry)
    amount = amount_per_unit(unit, spec, pop)
    daily = None
    if plan.mode == "intermittent" and plan.interval_h is not None:
        daily = amount * 24.0 / plan.interval_h
    response = unit_response(model, spec, schedule_for(plan, amount), plan, window, daily)
    return spec, plan, response


def first_time_at_or_above(series: Array, t_s: Array, threshold: Array) -> Array:
    """Per patient, the first grid time (s) where ``series >= threshold``; NaN if never."""
    hit = series >= threshold[:, None]
    any_hit = hit.any(axis=1)
    first = hit.argmax(axis=1)
    return np.where(any_hit, t_s[first], np.nan)


__all__ = [
    "DosePlan",
    "UnitResponse",
    "amount_per_unit",
    "build_population_model",
    "dose_plan",
    "entry_unit_response",
    "first_time_at_or_above",
    "schedule_for",
    "unit_response",
    "variability_source",
    "with_variability",
]
