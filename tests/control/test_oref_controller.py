"""The oref determine-basal adapter for N patients, and oref in glucose trials."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.control.aid import Observation, OrefController, Profile
from openinfusion.control.aid.oref import (
    current_temp,
    determine_basal,
    get_last_glucose,
    glucose_records,
    iob_ticks,
    meal_data,
    oref_profile,
)
from openinfusion.control.aid.oref_controller import minute_ms
from openinfusion.sim.glucose_scenario import load_glucose_scenario
from openinfusion.sim.glucose_trial import run_trial

T0 = 1000.0


def profile(n: int) -> Profile:
    return Profile(
        basal_u_h=np.full(n, 1.0),
        isf_mg_dl_u=np.full(n, 50.0),
        carb_ratio_g_u=np.full(n, 10.0),
        target_mg_dl=np.full(n, 110.0),
        max_basal_u_h=np.full(n, 4.0),
        max_iob_u=np.full(n, 6.0),
        max_daily_basal_u_h=np.full(n, 1.0),
    )


def observation(
    trend: list[float], bg: list[float], t: float = T0, carbs: float = 0.0
) -> Observation:
    """CGM every 5 min over the last hour ending at ``bg`` and moving ``trend`` mg/dL per
    5 min; insulin exactly at the scheduled basal (net IOB 0)."""
    n = len(bg)
    times = t - 5.0 * np.arange(12)[::-1]
    steps = np.arange(12)[::-1][None, :]
    cgm = np.array(bg)[:, None] - np.array(trend)[:, None] * steps
    return Observation(
        t_min=t,
        cgm_t_min=times,
        cgm_mg_dl=cgm,
        insulin_t_min=np.arange(t - 300, t, dtype=float),
        insulin_u=np.full((n, 300), 1.0 / 60.0),
        carbs_t_min=np.array([t]) if carbs else np.zeros(0),
        carbs_g=np.full((n, 1), carbs) if carbs else np.zeros((n, 0)),
        profile=profile(n),
    )


def test_each_patient_gets_the_reference_decision() -> None:
    """Patient 0 high and rising, patient 1 low and falling: the adapter's rates are what
    determine_basal gives on the same inputs built by hand, and the supervisor agrees."""
    obs = observation([3.0, -4.0], [220.0, 75.0])
    ctrl = OrefController()
    cmd = ctrl.step(obs)
    assert cmd.temp_basal_u_h[0] > 1.0  # high temp
    assert cmd.temp_basal_u_h[1] == 0.0  # low-glucose suspend
    assert "oref:" in cmd.reasons[0]

    ticks = iob_ticks([0.0] * 48, [0.0] * 48, *_zero_temp_ticks(1.0))
    times = [minute_ms(float(t)) for t in obs.cgm_t_min]
    by_hand = determine_basal(
        get_last_glucose(glucose_records(times, obs.cgm_mg_dl[0].tolist())),
        current_temp(),
        ticks,
        oref_profile(1.0, 50.0, 10.0, 110.0, 110.0, max_iob_u=6.0, max_basal_u_h=4.0),
        None,
        meal_data(),
        False,
        minute_ms(T0),
    )
    assert ctrl.last_decisions[0]["rate"] == by_hand["rate"]
    assert ctrl.last_decisions[0]["eventualBG"] == by_hand["eventualBG"]
    assert abs(ctrl.last_decisions[0]["IOB"]) < 1e-9


def _zero_temp_ticks(basal_u_h: float) -> tuple[list[float], list[float]]:
    """IOB and activity at each tick of withholding ``basal_u_h`` from now (by summation)."""
    from openinfusion.control.aid.interface import activity_fraction, iob_fraction

    iob, act = [], []
    for k in range(48):
        ahead = 5 * k
        lags = np.arange(1, ahead + 1, dtype=float)
        iob.append(float(-basal_u_h / 60 * iob_fraction(lags, 5.0, 75.0).sum()))
        act.append(float(-basal_u_h / 60 * activity_fraction(lags, 5.0, 75.0).sum()))
    return iob, act


def test_an_unchanged_decision_keeps_the_running_temp() -> None:
    """oref leaves a matching temp alone (no rate): the adapter keeps it until it expires,
    then the scheduled basal runs."""
    ctrl = OrefController()
    first = ctrl.step(observation([3.0], [220.0]))
    high = float(first.temp_basal_u_h[0])
    assert high > 1.0
    again = ctrl.step(observation([3.0], [220.0], t=T0 + 5))
    assert "rate" not in ctrl.last_decisions[0] or ctrl.last_decisions[0]["rate"] == high
    assert again.temp_basal_u_h[0] == high
    assert ctrl._temp_end_min[0] == T0 + 30.0  # the first temp's end, not restarted


def test_the_meal_bolus_is_on_board_before_the_algorithm_decides() -> None:
    """A 60-g meal: the wizard bolus (6 U) is given and seen as IOB, so the temp does not
    dose the same carbs again (no high temp on top at the announcement)."""
    ctrl = OrefController()
    cmd = ctrl.step(observation([0.5], [120.0], carbs=60.0))
    assert cmd.bolus_u()[0] == 6.0
    assert ctrl.last_decisions[0]["IOB"] > 5.9
    assert cmd.temp_basal_u_h[0] <= 1.0


@settings(max_examples=40, deadline=None)
@given(
    bg=st.lists(st.floats(40, 400), min_size=1, max_size=4),
    trend=st.floats(-15, 15),
    carbs=st.sampled_from([0.0, 30.0, 90.0]),
    smb=st.booleans(),
)
def test_supervised_oref_never_exceeds_the_safety_limits(
    bg: list[float], trend: float, carbs: float, smb: bool
) -> None:
    """Whatever the glucose: rate within [0, max safe basal]; no micro-bolus with glucose
    or its prediction below target (meal boluses aside, which need carbs)."""
    obs = observation([trend] * len(bg), bg, carbs=carbs)
    cmd = OrefController(smb=smb, meal_bolus=False).step(obs)
    assert np.all(cmd.temp_basal_u_h >= 0.0)
    assert np.all(cmd.temp_basal_u_h <= 4.0 + 1e-9)
    low = np.asarray(bg) < 110.0
    assert np.all(cmd.bolus_u()[low] == 0.0)


def test_oref_runs_a_trial_and_keeps_patients_out_of_severe_lows() -> None:
    """Three adults, a 3-meal day with announced meals, oref closed loop behind the
    supervisor: no reading below 54 mg/dL and more time in range than basal alone with no
    meal boluses (the same day with the loop switched off)."""
    day = {
        "duration": "24 h",
        "meals": [
            {"at": "7 h", "carbs_g": 50},
            {"at": "12 h", "carbs_g": 70},
            {"at": "18 h", "carbs_g": 80},
        ],
        "insulin": {"basal": "patient"},
    }
    names = ["adult#001", "adult#002", "adult#003"]
    scenario = load_glucose_scenario(day)
    looped = run_trial(names, scenario, controller="oref", sensor_noise=False, seed=1)
    basal_only = run_trial(names, scenario, controller="open-loop", sensor_noise=False, seed=1)
    assert looped.bg_mg_dl.min() > 54.0
    tir_loop = [m["tir_percent"] for m in looped.metrics]
    tir_open = [m["tir_percent"] for m in basal_only.metrics]
    assert np.mean(tir_loop) > np.mean(tir_open)
