"""Factor VIII prophylaxis from a MAP estimate: keep the steady-state trough >= target.

PK-guided prophylaxis targets a trough FVIII activity of at least 1 IU/dL (1 %) in
severe haemophilia A (Srivastava A et al., WFH Guidelines for the Management of
Hemophilia, 3rd ed., Haemophilia 2020;26 Suppl 6:1-158; Collins PW et al., J Thromb
Haemost 2009;7:413-20), with Bayesian estimation from a few post-infusion levels as in
WAPPS-Hemo (Iorio A et al., JMIR Res Protoc 2016;5:e239). Endogenous FVIII is taken as 0
(severe disease); doses are given as short injections (boluses).

Schedules: every 48 h, every 72 h, or three times weekly (doses at 0, 48 and 96 h of a
168-h week, so the longest gap is 72 h); the same dose at every infusion, rounded up to
250 IU. Since FVIII PK is linear, troughs scale with the dose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from openinfusion.control.mipd.history import DoseEvent
from openinfusion.control.mipd.map import FloatArray, MapEstimate, interval
from openinfusion.errors import InputError

TARGET_TROUGH_IU_DL = 1.0
DOSE_STEP_IU = 250.0
# Local cap on a single prophylactic dose (IU/kg); above it the schedule is not offered.
MAX_DOSE_IU_PER_KG = 80.0

# name -> (dose times within the period (h), period (h))
SCHEDULES: dict[str, tuple[tuple[float, ...], float]] = {
    "q48h": ((0.0,), 48.0),
    "q72h": ((0.0,), 72.0),
    "3x-weekly": ((0.0, 48.0, 96.0), 168.0),
}


@dataclass(frozen=True, slots=True)
class ProphylaxisPrediction:
    """A schedule and its steady-state lowest trough (IU/dL) at the estimate, a 95 %
    interval and the probability that the trough is at least the target."""

    schedule: str
    dose_iu: float
    dose_iu_per_kg: float
    weekly_iu: float
    trough: float
    trough_ci: tuple[float, float]
    p_target: float
    feasible: bool

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form (rounded for display)."""
        return {
            "schedule": self.schedule,
            "dose_iu": self.dose_iu,
            "dose_iu_per_kg": round(self.dose_iu_per_kg, 1),
            "weekly_iu": round(self.weekly_iu, 0),
            "trough_iu_dl": round(self.trough, 2),
            "trough_ci95": [round(v, 2) for v in self.trough_ci],
            "p_trough_at_target": round(self.p_target, 3),
            "within_dose_cap": self.feasible,
        }


def _trough_per_iu(estimate: MapEstimate, etas: FloatArray, schedule: str) -> FloatArray:
    """Lowest steady-state pre-dose level (IU/dL) per IU dosed, for each eta row (N,)."""
    times, period = SCHEDULES[schedule]
    doses = [DoseEvent(t, 1.0, 0.0) for t in times]
    before = np.array([t - 1e-6 for t in (*times[1:], period)])
    conc = estimate.population.steady_state(etas, doses, period, before)
    return np.asarray(conc.min(axis=1), dtype=np.float64)


def predict_prophylaxis(
    estimate: MapEstimate,
    schedule: str,
    dose_iu: float,
    weight_kg: float,
    samples: FloatArray,
    target: float = TARGET_TROUGH_IU_DL,
) -> ProphylaxisPrediction:
    """Steady-state trough of ``dose_iu`` on ``schedule`` at the estimate and over samples."""
    if schedule not in SCHEDULES:
        raise InputError("schedule", schedule, f"must be one of {', '.join(SCHEDULES)}")
    times, period = SCHEDULES[schedule]
    etas = np.vstack([estimate.eta[None], samples])
    trough = _trough_per_iu(estimate, etas, schedule) * dose_iu
    per_kg = dose_iu / weight_kg
    return ProphylaxisPrediction(
        schedule=schedule,
        dose_iu=dose_iu,
        dose_iu_per_kg=per_kg,
        weekly_iu=dose_iu * len(times) * 168.0 / period,
        trough=float(trough[0]),
        trough_ci=interval(trough[1:]),
        p_target=float(np.mean(trough[1:] >= target)),
        feasible=per_kg <= MAX_DOSE_IU_PER_KG + 1e-9,
    )


def recommend_factor_viii(
    estimate: MapEstimate,
    weight_kg: float,
    *,
    target_trough: float = TARGET_TROUGH_IU_DL,
    schedules: Sequence[str] = tuple(SCHEDULES),
    n_samples: int = 2000,
    seed: int = 0,
) -> tuple[ProphylaxisPrediction | None, list[ProphylaxisPrediction]]:
    """The least weekly factor (IU) keeping the trough at the estimate >= ``target_trough``
    among schedules within the dose cap (None if none is), and each schedule's option."""
    if not (math.isfinite(target_trough) and 0 < target_trough <= 50):
        raise InputError("target-trough", target_trough, "must be between 0 and 50 IU/dL")
    samples = estimate.sample(n_samples, seed)
    options = []
    for name in schedules:
        if name not in SCHEDULES:
            raise InputError("schedule", name, f"must be one of {', '.join(SCHEDULES)}")
        per_iu = float(_trough_per_iu(estimate, estimate.eta[None], name)[0])
        dose = math.ceil(target_trough / per_iu / DOSE_STEP_IU - 1e-9) * DOSE_STEP_IU
        dose = max(dose, DOSE_STEP_IU)
        options.append(predict_prophylaxis(estimate, name, dose, weight_kg, samples, target_trough))
    feasible = [o for o in options if o.feasible]
    best = min(feasible, key=lambda o: (o.weekly_iu, o.schedule)) if feasible else None
    return best, options
