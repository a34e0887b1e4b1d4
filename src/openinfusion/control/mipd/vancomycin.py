"""Vancomycin AUC-guided dosing from a MAP estimate.

Target (Rybak MJ et al., Am J Health-Syst Pharm 2020;77:835-64, the 2020 ASHP/IDSA/PIDS/
SIDP consensus): AUC24 400-600 mg·h/L for serious MRSA infections, assuming MIC 1 mg/L,
preferably by Bayesian estimation. With linear PK the steady-state AUC over 24 h is
``AUC24 = daily dose / CL`` whatever the model's compartments.

Candidate regimens: doses in 250 mg steps (500-3000 mg), intervals 8, 12 or 24 h,
infusion time 1 h per gram rounded up to 30 min (at least 1 h). The local labelling rule
"at most 10 mg/min" (1 g over at least 100 min) is recalled, not enforced; check the local
product label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from openinfusion.control.mipd.history import DoseEvent
from openinfusion.control.mipd.map import FloatArray, MapEstimate, interval
from openinfusion.errors import InputError

TARGET_AUC = 500.0
TARGET_RANGE = (400.0, 600.0)
INTERVALS_H = (8.0, 12.0, 24.0)
DOSE_STEP_MG = 250.0
DOSE_RANGE_MG = (500.0, 3000.0)


def infusion_hours(dose_mg: float) -> float:
    """Infusion time (h): 1 h per 1000 mg, rounded up to 0.5 h, never below 1 h."""
    return max(1.0, math.ceil(dose_mg / 1000.0 * 2.0 - 1e-9) / 2.0)


@dataclass(frozen=True, slots=True)
class RegimenPrediction:
    """A regimen and its steady-state predictions: AUC24 (mg·h/L), trough and peak (mg/L)
    at the estimate and 95 % intervals over posterior samples; ``p_target`` is the
    probability that AUC24 lies in the target range."""

    dose_mg: float
    interval_h: float
    infusion_h: float
    auc24: float
    auc24_ci: tuple[float, float]
    trough: float
    trough_ci: tuple[float, float]
    peak: float
    peak_ci: tuple[float, float]
    p_target: float

    @property
    def daily_dose_mg(self) -> float:
        """Dose per 24 h (mg)."""
        return self.dose_mg * 24.0 / self.interval_h

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form (rounded for display)."""
        return {
            "dose_mg": self.dose_mg,
            "interval_h": self.interval_h,
            "infusion_h": self.infusion_h,
            "daily_dose_mg": round(self.daily_dose_mg, 1),
            "auc24_mg_h_l": round(self.auc24, 1),
            "auc24_ci95": [round(v, 1) for v in self.auc24_ci],
            "trough_mg_l": round(self.trough, 2),
            "trough_ci95": [round(v, 2) for v in self.trough_ci],
            "peak_mg_l": round(self.peak, 2),
            "peak_ci95": [round(v, 2) for v in self.peak_ci],
            "p_auc_in_range": round(self.p_target, 3),
        }


def predict_regimen(
    estimate: MapEstimate,
    dose_mg: float,
    interval_h: float,
    infusion_h: float,
    samples: FloatArray,
    target_range: tuple[float, float] = TARGET_RANGE,
) -> RegimenPrediction:
    """Steady-state AUC24, trough and peak of a regimen at the estimate and over ``samples``
    (etas (M, k) from :meth:`MapEstimate.sample`)."""
    if not (dose_mg > 0 and interval_h > 0 and 0 < infusion_h <= interval_h):
        raise InputError(
            "regimen",
            f"{dose_mg:g} mg q{interval_h:g}h over {infusion_h:g} h",
            "needs dose > 0 and 0 < infusion time <= interval",
        )
    pop = estimate.population
    etas = np.vstack([estimate.eta[None], samples])
    cl = pop.parameters(etas)["cl"]
    auc = dose_mg * 24.0 / interval_h / cl
    conc = pop.steady_state(
        etas, [DoseEvent(0.0, dose_mg, infusion_h)], interval_h, np.array([infusion_h, interval_h])
    )
    lo, hi = target_range
    inside = float(np.mean((auc[1:] >= lo) & (auc[1:] <= hi))) if samples.size else math.nan
    return RegimenPrediction(
        dose_mg=dose_mg,
        interval_h=interval_h,
        infusion_h=infusion_h,
        auc24=float(auc[0]),
        auc24_ci=interval(auc[1:]),
        trough=float(conc[0, 1]),
        trough_ci=interval(conc[1:, 1]),
        peak=float(conc[0, 0]),
        peak_ci=interval(conc[1:, 0]),
        p_target=inside,
    )


def recommend_vancomycin(
    estimate: MapEstimate,
    *,
    target_auc: float = TARGET_AUC,
    target_range: tuple[float, float] = TARGET_RANGE,
    intervals_h: Sequence[float] = INTERVALS_H,
    n_samples: int = 2000,
    seed: int = 0,
) -> tuple[RegimenPrediction, list[RegimenPrediction]]:
    """The recommended regimen and the best candidate for each interval.

    Per interval the dose (250 mg steps) whose AUC24 at the estimate is closest to
    ``target_auc``; among intervals, the highest probability of AUC24 in ``target_range``,
    then the AUC closest to target, then 12 h before 8 h before 24 h.
    """
    lo, hi = target_range
    if not (0 < lo <= target_auc <= hi):
        raise InputError(
            "target-auc", target_auc, f"must lie within the target range {lo:g}-{hi:g} mg·h/L"
        )
    samples = estimate.sample(n_samples, seed)
    cl = estimate.cl_l_h
    doses = np.arange(DOSE_RANGE_MG[0], DOSE_RANGE_MG[1] + 1.0, DOSE_STEP_MG)
    options = []
    for tau in intervals_h:
        auc = doses * 24.0 / tau / cl
        dose = float(doses[int(np.argmin(np.abs(auc - target_auc)))])
        options.append(
            predict_regimen(estimate, dose, tau, infusion_hours(dose), samples, target_range)
        )
    preference = {12.0: 0, 8.0: 1, 24.0: 2}

    def rank(p: RegimenPrediction) -> tuple[bool, float, float, int]:
        in_range = lo <= p.auc24 <= hi
        return (
            not in_range,
            -round(p.p_target, 2),
            abs(p.auc24 - target_auc),
            preference.get(p.interval_h, 3),
        )

    best = min(options, key=rank)
    return best, options
