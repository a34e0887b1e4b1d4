"""Parity with simglucose 0.2.11 itself: max |ΔBG| < 1 mg/dL over 24 h, no sensor noise.

The reference is simglucose's ``T1DPatient`` stepped once per minute with its own dopri5
solver; BG on both sides is plasma glucose Gp/Vg, and the subcutaneous glucose Gs/Vg
(simglucose's ``Gsub``) is compared too. Inputs follow simglucose's conventions: the
carbohydrate of a meal is announced in one minute and eaten at 5 g/min, insulin is in U/min.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

from openinfusion.physiology.glucose import GlucosePatients, simulate
from openinfusion.physiology.glucose.simglucose_reference import run_simglucose

DAY_MIN = 24 * 60
TOLERANCE_MG_DL = 1.0
MEALS = ((7 * 60, 50.0), (12 * 60, 70.0), (18 * 60, 80.0))  # (minute, g)
MEAL_SUBJECTS = ("adult#001", "adolescent#001", "child#001", "adult#007", "child#004")
STRESS_SUBJECTS = ("adolescent#003", "child#004")


@dataclass(frozen=True)
class Scenario:
    carbs_g_per_min: NDArray[np.float64]  # (N, T)
    insulin_u_per_min: NDArray[np.float64]  # (N, T)


def meals_with_boluses(patients: GlucosePatients) -> Scenario:
    """Basal = the subject's steady-state basal; 50/70/80 g at 7/12/18 h, each with a
    carb-ratio bolus given in the meal's minute (as U/min)."""
    n = patients.n
    carbs = np.zeros((n, DAY_MIN))
    insulin = np.repeat(patients.steady_state_basal_u_per_min[:, None], DAY_MIN, axis=1)
    for minute, grams in MEALS:
        carbs[:, minute] = grams
        insulin[:, minute] += grams / patients.parameters.carb_ratio_g_per_u
    return Scenario(carbs, insulin)


def stress(patients: GlucosePatients) -> Scenario:
    """Everything the meal and insulin paths handle: a 3-h pump suspension, an unbolused
    breakfast, a second announcement while still eating, a late bolus, a snack while the
    stomach still holds lunch, a pre-bolused dinner and a 200 % temporary basal."""
    n = patients.n
    cr = patients.parameters.carb_ratio_g_per_u
    carbs = np.zeros((n, DAY_MIN))
    insulin = np.repeat(patients.steady_state_basal_u_per_min[:, None], DAY_MIN, axis=1)
    insulin[:, 120:300] = 0.0
    carbs[:, 420] = 60.0
    carbs[:, 720] = 30.0
    carbs[:, 724] = 40.0
    insulin[:, 740] += 70.0 / cr
    carbs[:, 900] = 20.0
    insulin[:, 1075] += 80.0 / cr
    carbs[:, 1080] = 80.0
    insulin[:, 1260:1380] *= 2.0
    return Scenario(carbs, insulin)


def _max_deviation(
    patients: GlucosePatients, scenario: Scenario
) -> tuple[NDArray[np.float64], NDArray[np.float64], list[tuple[float, float]]]:
    gsub = np.empty((patients.n, DAY_MIN + 1))
    bg = simulate(
        patients,
        DAY_MIN,
        scenario.carbs_g_per_min,
        scenario.insulin_u_per_min,
        subcutaneous_out=gsub,
    )
    d_bg, d_gsub, ranges = [], [], []
    for i, name in enumerate(patients.names):
        ref = run_simglucose(name, scenario.carbs_g_per_min[i], scenario.insulin_u_per_min[i])
        d_bg.append(np.abs(bg[i] - ref.bg_mg_dl).max())
        d_gsub.append(np.abs(gsub[i] - ref.subcutaneous_mg_dl).max())
        ranges.append((float(ref.bg_mg_dl.min()), float(ref.bg_mg_dl.max())))
    return np.array(d_bg), np.array(d_gsub), ranges


def test_meals_with_boluses_match_simglucose() -> None:
    patients = GlucosePatients.from_names(MEAL_SUBJECTS)  # defaults, as shipped
    d_bg, d_gsub, ranges = _max_deviation(patients, meals_with_boluses(patients))
    report = {n: round(float(d), 4) for n, d in zip(MEAL_SUBJECTS, d_bg, strict=True)}
    print("max |ΔBG| mg/dL, meals with boluses:", report)
    assert (d_bg < TOLERANCE_MG_DL).all(), report
    assert (d_gsub < TOLERANCE_MG_DL).all()
    # The scenario is not trivial: every subject leaves its basal level by > 30 mg/dL.
    assert all(high - low > 30.0 for low, high in ranges)


def test_stress_day_matches_simglucose_equations() -> None:
    # floor_utilisation=False: simglucose's exact equations, including the negative
    # insulin-dependent utilisation that a long suspension produces (defect D4).
    patients = GlucosePatients.from_names(STRESS_SUBJECTS, floor_utilisation=False)
    d_bg, d_gsub, ranges = _max_deviation(patients, stress(patients))
    report = {n: round(float(d), 4) for n, d in zip(STRESS_SUBJECTS, d_bg, strict=True)}
    print("max |ΔBG| mg/dL, stress day:", report, "BG ranges:", ranges)
    assert (d_bg < TOLERANCE_MG_DL).all(), report
    assert (d_gsub < TOLERANCE_MG_DL).all()
    # It reaches the renal threshold (BG above ~200 mg/dL) and below 70 mg/dL somewhere.
    assert max(high for _, high in ranges) > 300.0
    assert min(low for low, _ in ranges) < 70.0


@pytest.mark.parametrize("name", ["adult#001"])
def test_steady_state_matches_simglucose(name: str) -> None:
    patients = GlucosePatients.from_names([name])
    basal = patients.steady_state_basal_u_per_min
    ref = run_simglucose(name, np.zeros(120), np.full(120, basal[0]))
    bg = simulate(patients, 120, 0.0, basal[:, None])
    assert np.abs(bg[0] - ref.bg_mg_dl).max() < 1e-6
    assert ref.bg_mg_dl[0] == pytest.approx(patients.parameters.basal_glucose_mg_dl[0])
