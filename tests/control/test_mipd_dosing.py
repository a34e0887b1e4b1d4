"""Vancomycin AUC-guided and factor VIII trough-guided recommendations."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from openinfusion.control.mipd import (
    BJORKMAN,
    GOTI,
    DoseEvent,
    Level,
    PopulationPk,
    estimate_map,
    infusion_hours,
    predict_regimen,
    prior_estimate,
    recommend_factor_viii,
    recommend_vancomycin,
)
from openinfusion.errors import InputError
from openinfusion.physiology.pk import Covariates

VANCO = Covariates(age_years=60, weight_kg=80, height_cm=175, male=True, serum_creatinine_mg_dl=1.0)


@pytest.mark.parametrize("eta_cl", [-0.8, -0.3, 0.0, 0.4, 0.9])
def test_recommended_vancomycin_auc_is_in_the_target_range(eta_cl: float) -> None:
    pop = PopulationPk(GOTI, VANCO)
    est = replace(prior_estimate(pop), eta=np.array([eta_cl, 0.0, 0.0]))
    best, options = recommend_vancomycin(est, n_samples=200)
    assert 400.0 <= best.auc24 <= 600.0
    assert best.dose_mg % 250 == 0 and best.interval_h in (8.0, 12.0, 24.0)
    assert best.infusion_h >= best.dose_mg / 1000.0
    assert best.auc24 == pytest.approx(best.daily_dose_mg / est.cl_l_h)
    assert 0.0 < best.trough < best.peak
    assert {o.interval_h for o in options} == {8.0, 12.0, 24.0}


def test_current_regimen_prediction_and_auc_formula() -> None:
    pop = PopulationPk(GOTI, VANCO)
    doses = [DoseEvent(12.0 * i, 1500.0, 1.5) for i in range(4)]
    est = estimate_map(pop, doses, [Level(26.5, 32.0), Level(35.5, 14.0)])
    cur = predict_regimen(est, 1500.0, 12.0, 1.5, est.sample(500, 1))
    assert cur.auc24 == pytest.approx(3000.0 / est.cl_l_h)
    assert cur.auc24 > 600.0  # the worked example is above target on 3 g/day
    lo, hi = cur.auc24_ci
    assert lo < cur.auc24 < hi


def test_infusion_time_rule() -> None:
    assert infusion_hours(500) == 1.0
    assert infusion_hours(1000) == 1.0
    assert infusion_hours(1250) == 1.5
    assert infusion_hours(2000) == 2.0


def test_target_outside_range_is_named() -> None:
    est = prior_estimate(PopulationPk(GOTI, VANCO))
    with pytest.raises(InputError, match="target-auc"):
        recommend_vancomycin(est, target_auc=700.0)


def test_factor_viii_recommendation_reaches_the_trough() -> None:
    pop = PopulationPk(BJORKMAN, Covariates(age_years=30, weight_kg=70))
    est = estimate_map(
        pop,
        [DoseEvent(0.0, 3500.0, 0.0)],
        [Level(4.0, 78.0), Level(24.0, 16.0), Level(48.0, 3.6)],
    )
    best, options = recommend_factor_viii(est, 70.0, n_samples=300)
    assert best is not None
    assert best.trough >= 1.0
    assert best.dose_iu % 250 == 0
    assert best.weekly_iu == min(o.weekly_iu for o in options if o.feasible)
    for o in options:
        assert o.trough >= 1.0
        # one 250-IU step less would miss the target (dose is the smallest that reaches it)
        if o.dose_iu > 250:
            assert o.trough * (o.dose_iu - 250) / o.dose_iu < 1.0


def test_factor_viii_higher_target_needs_more_factor() -> None:
    est = prior_estimate(PopulationPk(BJORKMAN, Covariates(age_years=30, weight_kg=70)))
    low, _ = recommend_factor_viii(est, 70.0, target_trough=1.0, n_samples=100)
    high, _ = recommend_factor_viii(est, 70.0, target_trough=3.0, n_samples=100)
    assert low is not None and high is not None
    assert high.weekly_iu > low.weekly_iu
    with pytest.raises(InputError, match="target-trough"):
        recommend_factor_viii(est, 70.0, target_trough=0.0)
