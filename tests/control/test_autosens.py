"""Autosens on the UVA/Padova model: direction on a changed patient or a wrong basal, the
meal exclusion, the minimum-data rule, and hypothesis invariants (bounds, no NaN, bad input
refused)."""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openinfusion.control.aid.autosens import CATEGORY_NAMES, MEAL, USED, autosens
from openinfusion.control.aid.therapy_history import TherapyHistory, TherapySettings
from openinfusion.errors import InputError
from openinfusion.sim.personalise_trial import VirtualDays, simulate_days, subject_settings

SUBJECT = "adult#001"
FASTING: tuple[tuple[float, float], ...] = ()


@cache
def fasting_day(sensitivity: float = 1.0, basal_scale: float = 1.0) -> TherapyHistory:
    """adult#001 fasting for a day on its basal (exact CGM every 5 min); its insulin action
    (Vmx, kp3) scaled by ``sensitivity`` from t = 0, or its basal programmed wrong."""
    spec = VirtualDays(SUBJECT, days=1, meals=FASTING, sensitivity_scale=sensitivity)
    return simulate_days(spec, subject_settings(SUBJECT, basal_scale=basal_scale))


@pytest.mark.parametrize("at_min", [240.0, 360.0, 480.0])
def test_resistant_patient_gives_ratio_above_one(at_min: float) -> None:
    # 30 % less insulin action: glucose drifts up on the same basal.
    r = autosens(fasting_day(sensitivity=0.7), at_min=at_min)
    assert r.ratio > 1.05
    assert r.new_isf_mg_dl_u < r.isf_mg_dl_u
    assert "resistance" in r.reason


@pytest.mark.parametrize("at_min", [240.0, 360.0, 480.0])
def test_more_sensitive_patient_gives_ratio_below_one(at_min: float) -> None:
    r = autosens(fasting_day(sensitivity=1.4), at_min=at_min)
    assert r.ratio < 0.95
    assert r.new_isf_mg_dl_u > r.isf_mg_dl_u
    assert "sensitivity" in r.reason


def test_correct_profile_gives_ratio_one() -> None:
    h = fasting_day()
    for at in (240.0, 720.0, 1439.0):
        r = autosens(h, at_min=at)
        assert r.ratio == pytest.approx(1.0, abs=0.01)
        assert abs(r.median_deviation_mg_dl) < 0.05


def test_wrong_basal_moves_ratio_the_right_way() -> None:
    low = autosens(fasting_day(basal_scale=0.7), at_min=480.0)
    high = autosens(fasting_day(basal_scale=1.3), at_min=480.0)
    assert low.ratio > 1.05  # needs more insulin than programmed
    assert high.ratio < 0.95


def test_ratio_clamped_and_raw_kept() -> None:
    s = fasting_day(sensitivity=0.5).settings
    r = autosens(fasting_day(sensitivity=0.5), at_min=240.0)
    assert r.raw_ratio > s.autosens_max
    assert r.ratio == s.autosens_max
    assert "limited" in r.reason


def test_meal_absorption_is_excluded_and_counted() -> None:
    spec = VirtualDays(SUBJECT, days=1, meals=((600.0, 60.0),))
    h = simulate_days(spec, subject_settings(SUBJECT))
    r = autosens(h)
    after_meal = (r.t_min > 600.0) & (r.t_min <= 660.0)
    assert (r.category[after_meal] == MEAL).all()  # the rise after the meal is not used
    assert r.n_meal >= after_meal.sum()
    assert r.n_used + r.n_meal + r.n_uam + r.n_invalid == r.t_min.size
    assert r.as_dict()["deviations"]["excluded_meal"] == r.n_meal
    assert set(p["category"] for p in r.as_dict(points=True)["points"]) <= set(CATEGORY_NAMES)
    # without the announcement the rise is no longer excluded as a meal
    u = autosens(replace(h, carbs_t_min=np.zeros(0), carbs_g=np.zeros(0)))
    assert u.n_meal == 0
    assert (u.category[after_meal] == USED).all()  # it would count as resistance


def test_minimum_data_rule() -> None:
    h = fasting_day(sensitivity=0.7)
    r = autosens(h, at_min=60.0)  # one hour of data
    assert r.ratio == 1.0
    assert r.reason.startswith("not enough data")
    assert r.n_used < 24


def _settings(lo: float = 0.7, hi: float = 1.2) -> TherapySettings:
    return TherapySettings(
        basal_u_h=np.full(24, 1.0), isf_mg_dl_u=50.0, carb_ratio_g_u=10.0,
        autosens_min=lo, autosens_max=hi,
    )  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=2, max_value=400),
    seed=st.integers(min_value=0, max_value=2**31),
    lo=st.floats(min_value=0.1, max_value=1.0),
    hi=st.floats(min_value=1.0, max_value=3.0),
    scale=st.sampled_from([0.0, 1.0, 50.0, 400.0]),
)
def test_ratio_always_within_bounds_and_finite(
    n: int, seed: int, lo: float, hi: float, scale: float
) -> None:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.uniform(0.5, 20.0, n))
    g = np.clip(120 + scale * rng.standard_normal(n), 1, 1000)
    ins = rng.exponential(0.05, int(t[-1]) + 2) * (rng.random(int(t[-1]) + 2) < 0.3)
    carbs_t = rng.uniform(0, t[-1], 3)
    h = TherapyHistory(
        glucose_t_min=t, glucose_mg_dl=g, insulin_start_min=0, insulin_u=ins,
        carbs_t_min=carbs_t, carbs_g=rng.uniform(0, 100, 3), settings=_settings(lo, hi),
    )  # fmt: skip
    r = autosens(h)
    assert lo <= r.ratio <= hi
    assert np.isfinite([r.ratio, r.raw_ratio, r.new_isf_mg_dl_u, r.basal_off_u_h]).all()
    assert np.isfinite(r.deviations_used).all()


def _history(**change: object) -> TherapyHistory:
    base: dict[str, object] = {
        "glucose_t_min": np.arange(0.0, 600.0, 5.0),
        "glucose_mg_dl": np.full(120, 120.0),
        "insulin_start_min": 0,
        "insulin_u": np.full(600, 1.0 / 60),
        "carbs_t_min": np.zeros(0),
        "carbs_g": np.zeros(0),
        "settings": _settings(),
    }
    base.update(change)
    return TherapyHistory(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"glucose_mg_dl": np.r_[np.full(60, 120.0), np.nan, np.full(59, 120.0)]},
         "glucose.mg_dl[60]", "finite"),
        ({"glucose_t_min": np.r_[np.arange(0.0, 300.0, 5.0), 10.0, np.arange(305.0, 600.0, 5.0)]},
         "glucose.t_min[60]", "strictly increasing"),
        ({"insulin_u": np.r_[np.full(300, 0.01), -0.5, np.full(299, 0.01)]},
         "insulin.units[300]", "0 to"),
        ({"glucose_mg_dl": np.full(120, 0.0)}, "glucose.mg_dl[0]", "1 to 1000"),
        ({"carbs_t_min": np.array([10.0]), "carbs_g": np.array([np.inf])}, "carbs.g[0]", "finite"),
    ],
)  # fmt: skip
def test_garbage_in_is_refused_by_name(change: dict[str, object], field: str, rule: str) -> None:
    with pytest.raises(InputError) as err:
        autosens(_history(**change))
    assert err.value.field == field
    assert rule in err.value.rule


@settings(max_examples=40, deadline=None)
@given(
    pos=st.integers(min_value=0, max_value=119),
    bad=st.sampled_from([float("nan"), float("inf"), -float("inf")]),
)
def test_any_non_finite_glucose_is_refused(pos: int, bad: float) -> None:
    g = np.full(120, 120.0)
    g[pos] = bad
    with pytest.raises(InputError, match=rf"glucose\.mg_dl\[{pos}\]"):
        _history(glucose_mg_dl=g)


@settings(max_examples=40, deadline=None)
@given(pos=st.integers(min_value=1, max_value=119), back=st.floats(min_value=0.0, max_value=600.0))
def test_any_time_out_of_order_is_refused(pos: int, back: float) -> None:
    t = np.arange(0.0, 600.0, 5.0)
    t[pos] = min(back, t[pos - 1])  # not after the reading before it
    with pytest.raises(InputError, match=rf"glucose\.t_min\[{pos}\].*strictly increasing"):
        _history(glucose_t_min=t)


@settings(max_examples=40, deadline=None)
@given(
    pos=st.integers(min_value=0, max_value=599),
    bad=st.one_of(st.floats(max_value=-1e-9, allow_nan=False), st.just(float("nan"))),
)
def test_any_negative_or_nan_insulin_is_refused(pos: int, bad: float) -> None:
    u = np.full(600, 0.01)
    u[pos] = bad
    with pytest.raises(InputError, match=rf"insulin\.units\[{pos}\]"):
        autosens(_history(insulin_u=u))
