"""The AID safety supervisor: example rules and hypothesis invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.control.aid import Command, Observation, Profile, SafetySupervisor
from openinfusion.control.aid.interface import iob_fraction
from openinfusion.pump.insulin import iob

SUP = SafetySupervisor()


def profile(
    n: int = 1, basal: float = 1.0, max_basal: float = 4.0, max_iob: float = 3.0
) -> Profile:
    return Profile(
        basal_u_h=np.full(n, basal),
        isf_mg_dl_u=np.full(n, 50.0),
        carb_ratio_g_u=np.full(n, 10.0),
        target_mg_dl=np.full(n, 120.0),
        max_basal_u_h=np.full(n, max_basal),
        max_iob_u=np.full(n, max_iob),
        max_daily_basal_u_h=np.full(n, basal),
    )


def obs(
    cgm: list[float],
    *,
    age: float = 0.0,
    extra_u: float = 0.0,
    prof: Profile | None = None,
    carbs: float = 0.0,
) -> Observation:
    """One patient, CGM every 5 min (last reading ``age`` min old), basal history plus an
    ``extra_u`` bolus 10 min ago."""
    p = prof or profile()
    t = 1000.0
    k = len(cgm)
    times = t - age - 5.0 * np.arange(k)[::-1]
    ins_t = np.arange(t - 300, t)
    ins = np.full((1, 300), p.basal_u_h[0] / 60.0)
    ins[0, -10] += extra_u
    return Observation(
        t_min=t,
        cgm_t_min=times,
        cgm_mg_dl=np.array([cgm], dtype=float),
        insulin_t_min=ins_t,
        insulin_u=ins,
        carbs_t_min=np.array([t]) if carbs else np.zeros(0),
        carbs_g=np.array([[carbs]]) if carbs else np.zeros((1, 0)),
        profile=p,
    )


def cmd(rate: float, bolus: float = 0.0, duration: float = 30.0) -> Command:
    return Command(np.array([rate]), duration, np.array([bolus]), ("test",))


STEADY = [150.0, 151.0, 150.0, 152.0, 151.0, 150.0, 151.0, 152.0, 150.0, 151.0]


def test_iob_kernel_matches_pump_curve() -> None:
    for lag in (0.0, 10.0, 75.0, 200.0, 299.0, 400.0):
        assert iob_fraction(np.array([lag]), 5.0, 75.0)[0] == pytest.approx(
            iob(lag, 1.0, 5.0, 75.0)
        )


def test_max_safe_basal_uses_oref0_multipliers() -> None:
    # min(max_basal 10, 3 x max daily 1, 4 x current 1) = 3 U/h
    o = obs(STEADY, prof=profile(max_basal=10.0, max_iob=50.0))
    out = SUP.check(o, cmd(8.0))
    assert out.temp_basal_u_h[0] == pytest.approx(3.0)
    assert "max safe basal" in out.reasons[0]


@pytest.mark.parametrize(
    ("readings", "age", "why"),
    [
        (STEADY, 13.0, "old"),
        (STEADY, -6.0, "future"),
        ([*STEADY[:-3], *[float("nan")] * 3], 0.0, "15 min old"),  # last valid 15 min ago
        ([float("nan")] * 3, 0.0, "no CGM"),
        ([*STEADY[:-1], 38.0], 0.0, "outside"),
        ([*STEADY[:-1], 420.0], 0.0, "outside"),
        ([140.0] * 10, 0.0, "flat"),
    ],
)
def test_unusable_cgm_falls_back_to_basal(readings: list[float], age: float, why: str) -> None:
    out = SUP.check(obs(readings, age=age), cmd(3.0, bolus=1.0))
    assert out.temp_basal_u_h[0] <= 1.0
    assert out.bolus_u()[0] == 0.0
    assert why in out.reasons[0]


def test_stale_cgm_keeps_a_low_temp() -> None:
    out = SUP.check(obs(STEADY, age=20.0), cmd(0.2))
    assert out.temp_basal_u_h[0] == pytest.approx(0.2)


def test_predictive_low_glucose_suspend() -> None:
    falling = [160.0 - 6.0 * i for i in range(10)]  # -1.2 mg/dL/min, now 106
    out = SUP.check(obs(falling), cmd(2.0, bolus=0.5))
    assert out.temp_basal_u_h[0] == 0.0
    assert out.bolus_u()[0] == 0.0
    assert "suspend" in out.reasons[0]


def test_max_iob_blocks_extra_insulin() -> None:
    out = SUP.check(obs(STEADY, extra_u=3.5), cmd(3.0, bolus=1.0))
    assert out.temp_basal_u_h[0] <= 1.0
    assert out.bolus_u()[0] == 0.0
    assert "max IOB" in out.reasons[0]


def test_temp_basal_expires_to_schedule() -> None:
    out = SUP.check(obs(STEADY), cmd(2.0, duration=120.0))
    assert out.duration_min == 30.0
    assert out.rate_at(0.0, 29.0, np.array([1.0]))[0] == out.temp_basal_u_h[0]
    assert out.rate_at(0.0, 30.0, np.array([1.0]))[0] == 1.0


def test_nan_and_negative_requests() -> None:
    assert SUP.check(obs(STEADY), cmd(float("nan"))).temp_basal_u_h[0] == 1.0
    out = SUP.check(obs(STEADY), cmd(-1.0, bolus=-2.0))
    assert out.temp_basal_u_h[0] == 0.0
    assert out.bolus_u()[0] == 0.0


def test_announced_carbs_raise_the_prediction() -> None:
    flat_ish = [118.0, 119.0, 118.0, 119.0, 118.0, 119.0]
    assert SUP.check(obs(flat_ish), cmd(1.0, bolus=5.0)).bolus_u()[0] == 0.0
    assert SUP.check(obs(flat_ish, carbs=50.0), cmd(1.0, bolus=5.0)).bolus_u()[0] > 0.0


readings = st.lists(
    st.one_of(st.floats(20.0, 450.0), st.just(float("nan"))), min_size=1, max_size=12
)
requests = st.tuples(
    st.one_of(st.floats(-5.0, 50.0), st.just(float("nan"))),
    st.floats(-2.0, 20.0),
    st.floats(1.0, 240.0),
)


@settings(max_examples=200, deadline=None)
@given(
    cgm=readings,
    age=st.floats(-10.0, 30.0),
    extra=st.floats(0.0, 8.0),
    basal=st.floats(0.1, 3.0),
    max_basal=st.floats(0.1, 10.0),
    max_iob=st.floats(0.1, 10.0),
    carbs=st.floats(0.0, 120.0),
    req=requests,
)
def test_supervisor_invariants(
    cgm: list[float],
    age: float,
    extra: float,
    basal: float,
    max_basal: float,
    max_iob: float,
    carbs: float,
    req: tuple[float, float, float],
) -> None:
    p = profile(basal=basal, max_basal=max_basal, max_iob=max_iob)
    o = obs(cgm, age=age, extra_u=extra, prof=p, carbs=carbs)
    rate, bolus, dur = req
    out = SUP.check(o, cmd(rate, bolus, dur))
    r, b = out.temp_basal_u_h[0], out.bolus_u()[0]
    assert r >= 0.0 and b >= 0.0 and 0.0 < out.duration_min <= 30.0
    # never above max basal (nor the oref0 multipliers)
    assert r <= min(max_basal, 3 * basal, 4 * basal) + 1e-9
    extra_insulin = b + (r - basal) * out.duration_min / 60.0
    # stale / unusable CGM never gives more than the scheduled basal
    if SUP.cgm_problem(o)[0]:
        assert r <= basal + 1e-9 and b == 0.0
    # predicted below target: no bolus, nothing above basal
    pred = SUP.predict_mg_dl(o)[0]
    if pred < 120.0:
        assert r <= basal + 1e-9 and b == 0.0
    # IOB never pushed above max_iob by a command
    iob_now = o.iob_u()[0]
    if extra_insulin > 1e-9:
        assert iob_now + extra_insulin <= max_iob + 1e-9
    # any change is explained
    if r != rate or b != max(bolus, 0.0):
        assert out.reasons[0] != "test"
