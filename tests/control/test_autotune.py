"""Autotune on the UVA/Padova model: basal, ISF and CR move towards the subject's values and
never past the caps; days chain; evidence adds up; hypothesis invariants (caps per run, no
NaN, bad input refused)."""

from __future__ import annotations

import itertools
import json
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openinfusion.control.aid.autotune import BUCKETS, autotune, caps_dict
from openinfusion.control.aid.therapy_history import TherapyHistory, TherapySettings
from openinfusion.errors import InputError
from openinfusion.physiology.glucose import GlucoseParameters
from openinfusion.sim.personalise_trial import (
    VirtualDays,
    nightly_autotune,
    simulate_days,
    subject_settings,
)

SUBJECT = "adult#001"
PARAMS = GlucoseParameters.from_names([SUBJECT])
TRUE_BASAL_U_H = float(PARAMS.basal_u_per_h[0])  # holds the subject at its fasting glucose
TABLE_ISF = float(PARAMS.correction_factor_mg_dl_per_u[0])
TABLE_CR = float(PARAMS.carb_ratio_g_per_u[0])
FASTING: tuple[tuple[float, float], ...] = ()
CORRECTIONS = ((120.0, 3.0), (720.0, 3.0))  # two 3 U boluses a day, no food


def assert_within_caps(new: TherapySettings, pump: TherapySettings) -> None:
    lo, hi = pump.autosens_min, pump.autosens_max
    tol = 1e-9
    assert (new.basal_u_h >= pump.basal_u_h * lo - tol).all()
    assert (new.basal_u_h <= pump.basal_u_h * hi + tol).all()
    assert pump.isf_mg_dl_u / hi - tol <= new.isf_mg_dl_u <= pump.isf_mg_dl_u / lo + tol
    cr_lo, cr_hi = caps_dict(pump)["carb_ratio_g_u"]
    assert cr_lo - tol <= new.carb_ratio_g_u <= cr_hi + tol


@cache
def nightly(basal_scale: float, nights: int = 8) -> list[TherapySettings]:
    spec = VirtualDays(SUBJECT, meals=FASTING)
    programmed, results = nightly_autotune(
        spec, subject_settings(SUBJECT, basal_scale=basal_scale), nights
    )
    for before, result in zip(programmed, results, strict=False):
        assert_within_caps(result.settings, before)  # each night's run keeps its caps
    return programmed


def test_basal_30_percent_low_recovers_night_by_night() -> None:
    basal = [float(s.basal_u_h.mean()) / TRUE_BASAL_U_H for s in nightly(0.7)]
    assert basal[0] == pytest.approx(0.7)
    assert all(b > a for a, b in itertools.pairwise(basal))  # up every night
    assert basal[1] <= 0.7 * 1.2 + 1e-9  # one night never moves past the cap
    assert max(basal) < 1.0  # approaches the truth from below, never overshoots
    assert basal[-1] > 0.85  # 8 nights close more than half the gap


def test_basal_30_percent_high_comes_down() -> None:
    basal = [float(s.basal_u_h.mean()) / TRUE_BASAL_U_H for s in nightly(1.3)]
    assert all(b < a for a, b in itertools.pairwise(basal))
    assert min(basal) > 1.0
    assert basal[-1] < 1.15


def test_correct_basal_is_left_alone() -> None:
    basal = [float(s.basal_u_h.mean()) / TRUE_BASAL_U_H for s in nightly(1.0, nights=3)]
    assert basal == pytest.approx([1.0] * 4, abs=0.005)


@pytest.mark.parametrize(("scale", "direction"), [(0.6, 1), (1.6, -1)])
def test_isf_moves_towards_the_subject(scale: float, direction: int) -> None:
    spec = VirtualDays(SUBJECT, days=2, meals=FASTING, corrections=CORRECTIONS)
    pump = subject_settings(SUBJECT, isf_scale=scale)
    result = autotune(simulate_days(spec, pump))
    isf = [pump.isf_mg_dl_u] + [d.after.isf_mg_dl_u for d in result.days]
    assert all(direction * (b - a) > 0 for a, b in itertools.pairwise(isf))
    # towards the therapy-table value, not past it
    assert abs(isf[-1] - TABLE_ISF) < abs(isf[0] - TABLE_ISF)
    assert all(d.isf_points >= 10 for d in result.days)
    assert_within_caps(result.settings, pump)


def test_isf_unchanged_without_correction_data() -> None:
    pump = subject_settings(SUBJECT, isf_scale=0.6)
    result = autotune(simulate_days(VirtualDays(SUBJECT, days=1, meals=FASTING), pump))
    assert result.settings.isf_mg_dl_u == pytest.approx(pump.isf_mg_dl_u)
    assert any("ISF unchanged" in n for n in result.days[0].notes)


def test_carb_ratio_too_high_comes_down() -> None:
    # CR 60 % too high: meals under-bolused, glucose ends above where it started.
    pump = subject_settings(SUBJECT, cr_scale=1.6)
    result = autotune(simulate_days(VirtualDays(SUBJECT, days=2), pump))
    cr = [pump.carb_ratio_g_u] + [d.after.carb_ratio_g_u for d in result.days]
    assert all(b < a for a, b in itertools.pairwise(cr))
    assert cr[-1] > TABLE_CR
    assert all(len(d.carb_periods) == 3 for d in result.days)  # three meals a day
    assert all(d.cr_estimate_g_u is not None and d.cr_estimate_g_u < cr[0] for d in result.days)
    assert_within_caps(result.settings, pump)


def test_days_chain_and_evidence_adds_up() -> None:
    pump = subject_settings(SUBJECT, basal_scale=0.7)
    result = autotune(simulate_days(VirtualDays(SUBJECT, days=3), pump))
    assert len(result.days) == 3
    assert result.days[0].before == pump
    for prev, day in zip(result.days, result.days[1:], strict=False):
        assert day.before == prev.after  # each day's output is the next day's input
    assert result.settings == result.days[-1].after
    for day in result.days:
        assert sum(day.counts.values()) == 288  # every 5-min step of the day is accounted for
        assert set(day.counts) == set(BUCKETS)
        assert int(day.basal_points.sum()) == day.counts["basal"]
    out = result.as_dict()
    assert out["days_used"] == 3
    assert len(out["days"][0]["hours"]) == 24
    last = autotune(simulate_days(VirtualDays(SUBJECT, days=3), pump), days=1)
    assert len(last.days) == 1 and last.days[0].start_t_min == 2 * 1440.0


def test_too_little_data_is_refused() -> None:
    h = simulate_days(VirtualDays(SUBJECT, days=1, meals=FASTING), subject_settings(SUBJECT))
    short = TherapyHistory(
        glucose_t_min=h.glucose_t_min[:100], glucose_mg_dl=h.glucose_mg_dl[:100],
        insulin_start_min=0, insulin_u=h.insulin_u, carbs_t_min=np.zeros(0),
        carbs_g=np.zeros(0), settings=h.settings,
    )  # fmt: skip
    with pytest.raises(InputError, match="12 h of readings"):
        autotune(short)
    with pytest.raises(InputError) as err:
        autotune(h, days=2)
    assert err.value.field == "days"


@st.composite
def histories(draw: st.DrawFn) -> TherapyHistory:
    seed = draw(st.integers(min_value=0, max_value=2**31))
    rng = np.random.default_rng(seed)
    lo = draw(st.floats(min_value=0.1, max_value=1.0))
    hi = draw(st.floats(min_value=1.0, max_value=3.0))
    basal = rng.uniform(0.0, 3.0, 24) * (rng.random(24) < 0.9)
    basal[0] = max(basal[0], 0.05)
    s = TherapySettings(
        basal_u_h=basal,
        isf_mg_dl_u=draw(st.floats(min_value=1.0, max_value=400.0)),
        carb_ratio_g_u=draw(st.floats(min_value=1.0, max_value=150.0)),
        autosens_min=lo,
        autosens_max=hi,
    )
    days = draw(st.integers(min_value=1, max_value=2))
    t = np.arange(0.0, days * 1440.0, 5.0)
    kind = draw(st.sampled_from(["walk", "noise", "flat", "extreme"]))
    if kind == "walk":
        g = 120 + np.cumsum(rng.normal(0, 3, t.size))
    elif kind == "noise":
        g = 120 + rng.normal(0, 40, t.size)
    elif kind == "flat":
        g = np.full(t.size, 110.0)
    else:
        g = rng.choice([1.0, 39.0, 400.0, 1000.0], t.size)
    g = np.clip(g, 1.0, 1000.0)
    minutes = days * 1440 + 10
    ins = rng.exponential(0.03, minutes) + (rng.random(minutes) < 0.005) * rng.uniform(
        0, 10, minutes
    )
    n_carbs = draw(st.integers(min_value=0, max_value=6))
    return TherapyHistory(
        glucose_t_min=t, glucose_mg_dl=g, insulin_start_min=0, insulin_u=ins,
        carbs_t_min=rng.uniform(0, days * 1440.0, n_carbs),
        carbs_g=rng.uniform(0, 150, n_carbs), settings=s,
    )  # fmt: skip


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_never_past_the_caps_and_never_nan(history: TherapyHistory) -> None:
    result = autotune(history)
    new, pump = result.settings, history.settings
    assert_within_caps(new, pump)
    for day in result.days:  # every day's step too
        assert_within_caps(day.after, pump)
    values = np.r_[new.basal_u_h, new.isf_mg_dl_u, new.carb_ratio_g_u]
    assert np.isfinite(values).all()
    json.dumps(result.as_dict(), allow_nan=False)  # the report never carries NaN either
