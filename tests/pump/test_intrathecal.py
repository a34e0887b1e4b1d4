"""Implantable intrathecal pump: dosing, flex schedules, PTM, refill, bridge, forecasts, ERI.

Expected values are worked by hand in the comments (canonical amounts are mg; the
implant mechanism moves 0.0002 mL per stroke).
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openinfusion.errors import InputError
from openinfusion.pump.channel import State
from openinfusion.pump.clock import PumpClock
from openinfusion.pump.codes import Alarm
from openinfusion.pump.intrathecal import (
    CATHETER_ML_PER_CM,
    DAY_S,
    ERI_REMAINING_DAYS,
    LIFE_AT_1_ML_DAY_DAYS,
    LIFE_NO_FLOW_DAYS,
    PUMP_PATHWAY_ML,
    FlexStep,
    IntrathecalPrescription,
    IntrathecalPump,
    PtmSettings,
    compile_prescription,
    implant_battery,
)
from openinfusion.pump.mechanics import implant

QUANTUM_ML = implant().quantum_ml
H = 3600.0

MORPHINE = IntrathecalPrescription(
    drug="morphine",
    concentration="25 mg/mL",
    max_daily_dose="15 mg/day",
    daily_dose="5 mg/day",  # 0.2 mL/day
)
# Baclofen 500 mcg/mL: 06:00-22:00 600 mcg/day (0.05 mL/h = 25 mcg/h), 22:00-06:00
# 300 mcg/day (0.025 mL/h = 12.5 mcg/h). A 24-hour local day: 16 h x 25 + 8 h x 12.5 = 500 mcg.
BACLOFEN_FLEX = IntrathecalPrescription(
    drug="baclofen",
    concentration="500 mcg/mL",
    max_daily_dose="1000 mcg/day",
    flex=(FlexStep("06:00", "600 mcg/day"), FlexStep("22:00", "300 mcg/day")),
)
PTM = PtmSettings(bolus="0.5 mg", lockout="3 h", max_per_day=4)  # 0.02 mL at 25 mg/mL


def local_t(clock: PumpClock, y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> float:
    """Pump seconds at a local wall time (the first occurrence)."""
    return clock.t_at_utc(datetime(y, m, d, hh, mm, tzinfo=clock.tz).astimezone(UTC), 0.0)


def alarms(pump: IntrathecalPump, code: Alarm) -> list[float]:
    return [r.t_s for r in pump.device.records if r.kind == "alarm" and r.data["code"] == code.code]


def amount_between(pump: IntrathecalPump, t0: float, t1: float) -> float:
    """Run the pump from t0 to t1 and return the canonical amount delivered meanwhile."""
    pump.advance_to(t0)
    before = pump.delivered_amount()
    pump.advance_to(t1)
    return pump.delivered_amount() - before


# ---- simple continuous ---------------------------------------------------------------------


@pytest.mark.parametrize("days", [1, 7, 30, 90])
def test_simple_continuous_delivers_the_daily_dose(days: int) -> None:
    pump = IntrathecalPump(MORPHINE, fill_ml=20.0)
    pump.start()
    pump.advance_days(days)
    expected_ml = 0.2 * days  # 5 mg/day / 25 mg/mL
    assert abs(pump.pumped_ml - expected_ml) <= QUANTUM_ML + 1e-9
    assert pump.pumped_ml <= expected_ml + 1e-9  # whole strokes, never more than commanded
    assert pump.delivered_amount() == pytest.approx(expected_ml * 25.0, rel=1e-9)
    assert pump.reservoir_ml == pytest.approx(20.0 - expected_ml, abs=1e-9)


def test_simple_continuous_long_run_is_fast_and_event_driven() -> None:
    rx = replace(MORPHINE, reservoir_ml=40.0)
    pump = IntrathecalPump(rx)
    pump.start()
    pump.advance_days(90)  # 18 mL of 40
    assert pump.pumped_ml == pytest.approx(18.0, abs=QUANTUM_ML)
    assert len(pump.device.records) < 50


def test_volume_rate_and_per_hour_doses_mean_the_same() -> None:
    a = compile_prescription(replace(MORPHINE, daily_dose="0.2 mL/day"))
    b = compile_prescription(replace(MORPHINE, daily_dose="0.208333333333 mg/h"))
    c = compile_prescription(MORPHINE)
    assert a.steps[0].rate_ml_h == pytest.approx(c.steps[0].rate_ml_h)
    assert b.steps[0].rate_ml_h == pytest.approx(c.steps[0].rate_ml_h, rel=1e-9)
    assert c.daily_amount == pytest.approx(5.0)
    assert c.worst_24h_amount == pytest.approx(5.0)


# ---- flex dosing ---------------------------------------------------------------------------


def test_flex_day_delivers_the_hand_sum_each_day() -> None:
    clock = PumpClock.at("2026-02-02T00:00:00", "Europe/Paris")
    pump = IntrathecalPump(BACLOFEN_FLEX, clock=clock)
    pump.start()
    for day in range(2, 9):
        t0, t1 = local_t(clock, 2026, 2, day), local_t(clock, 2026, 2, day + 1)
        assert amount_between(pump, t0, t1) == pytest.approx(0.5, rel=1e-9)  # 500 mcg
    # Day time only: 06:00 to 22:00 is 16 h x 25 mcg/h.
    t0, t1 = local_t(clock, 2026, 2, 9, 6), local_t(clock, 2026, 2, 9, 22)
    assert amount_between(pump, t0, t1) == pytest.approx(0.4, rel=1e-9)


def test_flex_started_mid_step_follows_the_local_clock() -> None:
    clock = PumpClock.at("2026-02-02T13:30:00", "Europe/Paris")
    pump = IntrathecalPump(BACLOFEN_FLEX, clock=clock)
    pump.start()
    # 13:30 to 22:00 at 25 mcg/h = 212.5 mcg; 22:00 to 06:00 at 12.5 mcg/h = 100 mcg.
    assert amount_between(pump, 0.0, local_t(clock, 2026, 2, 2, 22)) == pytest.approx(0.2125)
    t1 = local_t(clock, 2026, 2, 3, 6)
    assert amount_between(pump, pump.t_s, t1) == pytest.approx(0.1)


def test_start_later_places_the_schedule_from_then() -> None:
    clock = PumpClock.at("2026-02-02T00:00:00", "UTC")
    pump = IntrathecalPump(BACLOFEN_FLEX, clock=clock)  # programmed at midnight
    pump.advance_to(10 * H)
    assert pump.delivered_amount() == 0.0
    pump.start()  # started at 10:00: a day step until 22:00
    assert pump.channel.state is State.RUNNING
    assert amount_between(pump, pump.t_s, 22 * H) == pytest.approx(0.3)
    assert pump.channel.rate_ml_h == pytest.approx(0.025)


@pytest.mark.parametrize(
    ("day", "expected_mg", "hours"),
    [
        # Spring forward (Sunday 29 March 2026, Paris): 02:00 -> 03:00, a 23-hour day:
        # 00:00-06:00 is 5 h x 12.5 + 16 h x 25 + 2 h x 12.5 = 62.5 + 400 + 25 mcg.
        ((2026, 3, 29), 0.4875, 23),
        # Fall back (Sunday 25 October 2026): 03:00 -> 02:00, a 25-hour day:
        # 7 h x 12.5 + 400 + 25 = 512.5 mcg.
        ((2026, 10, 25), 0.5125, 25),
    ],
)
def test_flex_on_a_daylight_saving_day(
    day: tuple[int, int, int], expected_mg: float, hours: int
) -> None:
    y, m, d = day
    start = datetime(y, m, d) - timedelta(days=2)
    clock = PumpClock.at(start.isoformat(), "Europe/Paris")
    pump = IntrathecalPump(BACLOFEN_FLEX, clock=clock)
    pump.start()
    t0 = local_t(clock, y, m, d)
    next_day = datetime(y, m, d) + timedelta(days=1)
    t1 = local_t(clock, next_day.year, next_day.month, next_day.day)
    assert t1 - t0 == hours * H
    assert amount_between(pump, t0, t1) == pytest.approx(expected_mg, rel=1e-9)
    # The day steps still start at 06:00 local: 06:00 to 22:00 is 400 mcg.
    assert amount_between(
        pump, local_t(clock, y, m, d + 1, 6), local_t(clock, y, m, d + 1, 22)
    ) == (pytest.approx(0.4, rel=1e-9))


def test_spring_forward_with_every_ptm_taken_never_stops_the_basal() -> None:
    # Worst 24 h 500 mcg + 3 x 50 mcg = 650 mcg, exactly the hard limit. On the
    # spring-forward night a 24-hour window holds 17 day hours (16 + 1 of the next day):
    # the engine's backstop must not pause the basal (baclofen withdrawal).
    rx = replace(
        BACLOFEN_FLEX,
        max_daily_dose="650 mcg/day",
        ptm=PtmSettings("50 mcg", "3 h", 3),
    )
    clock = PumpClock.at("2026-03-27T00:00:00", "Europe/Paris")
    pump = IntrathecalPump(rx, clock=clock)
    pump.start()
    pump.advance_to(local_t(clock, 2026, 3, 28, 9))
    for _ in range(3):
        assert pump.ptm().granted
        pump.advance_to(pump.t_s + 3 * H)
    pump.advance_days(3)
    assert pump.channel.state is State.RUNNING
    assert not alarms(pump, Alarm.DOSE_LIMIT)
    assert not [r for r in pump.device.records if r.kind == "paused"]


WEEKLY = IntrathecalPrescription(
    drug="baclofen",
    concentration="500 mcg/mL",
    max_daily_dose="800 mcg/day",
    flex_period="week",
    # Monday 08:00 to Saturday 08:00 at 800 mcg/day, the weekend at 400 mcg/day.
    flex=(FlexStep("Mon 08:00", "800 mcg/day"), FlexStep("Sat 08:00", "400 mcg/day")),
)


def test_weekly_flex_per_day_and_per_week() -> None:
    clock = PumpClock.at("2026-02-02T00:00:00", "UTC")  # a Monday
    pump = IntrathecalPump(WEEKLY, clock=clock, fill_ml=20.0)
    pump.start()
    # Mon: 8 h at 400/24 + 16 h at 800/24 = 133.33 + 533.33; Tue-Fri 800; Sat 8 h at
    # 800/24 + 16 h at 400/24 = 533.33; Sun 400. A week: 4800 mcg.
    per_day = [800 / 24 * 16 + 400 / 24 * 8, 800, 800, 800, 800, 800 / 24 * 8 + 400 / 24 * 16, 400]
    # The week before the first Monday 08:00 ran at the weekend rate.
    for i, mcg in enumerate(per_day):
        got = amount_between(pump, i * DAY_S, (i + 1) * DAY_S)
        assert got == pytest.approx(mcg / 1000, rel=1e-9)
    assert amount_between(pump, 7 * DAY_S, 14 * DAY_S) == pytest.approx(4.8, rel=1e-9)
    cp = compile_prescription(WEEKLY)
    assert cp.worst_24h_amount == pytest.approx(0.8)
    assert cp.daily_amount == pytest.approx(4.8 / 7)


def test_weekly_worst_24h_is_the_hard_limit() -> None:
    with pytest.raises(InputError) as err:
        compile_prescription(replace(WEEKLY, max_daily_dose="799 mcg/day"))
    assert err.value.field == "max_daily_dose"
    assert "800 mcg" in err.value.rule


def test_worst_24h_spans_the_midnight_of_the_cycle() -> None:
    # 20:00-04:00 high (the step wraps past midnight): the worst window is 20:00 to 20:00.
    rx = IntrathecalPrescription(
        drug="baclofen",
        concentration="500 mcg/mL",
        max_daily_dose="2000 mcg/day",
        flex=(
            FlexStep("04:00", "240 mcg/day"),
            FlexStep("12:00", "480 mcg/day"),
            FlexStep("20:00", "960 mcg/day"),
        ),
    )
    cp = compile_prescription(rx)
    # Every window of 24 h holds each step once: (240 + 480 + 960) / 3 = 560 mcg.
    assert cp.worst_24h_amount == pytest.approx(0.56)
    assert cp.daily_amount == pytest.approx(0.56)


# ---- PTM -----------------------------------------------------------------------------------


def morphine_ptm(**kw: Any) -> IntrathecalPump:
    pump = IntrathecalPump(replace(MORPHINE, ptm=PTM), **kw)
    pump.start()
    return pump


def test_ptm_bolus_adds_its_dose() -> None:
    pump = morphine_ptm()
    pump.advance_to(2 * H)
    assert pump.ptm().granted
    pump.advance_days(1)
    # 26 h of 5 mg/day + one 0.5 mg bolus
    assert pump.delivered_amount() == pytest.approx(5 * 26 / 24 + 0.5, rel=1e-9)
    assert [r.data["code"] for r in pump.device.records if r.kind == "alarm"] == []


def test_ptm_lockout_is_respected() -> None:
    pump = morphine_ptm()
    assert pump.ptm().granted
    pump.advance_to(1 * H)
    denied = pump.ptm()
    assert (denied.granted, denied.reason) == (False, "lockout")
    pump.advance_to(3 * H - 1)
    assert pump.ptm().reason == "lockout"
    pump.advance_to(3 * H)
    assert pump.ptm().granted


def test_ptm_daily_maximum_and_its_24_hour_window() -> None:
    pump = morphine_ptm()
    results = []
    for hour in range(0, 25):
        pump.advance_to(hour * H)
        results.append((hour, pump.ptm()))
    granted = [h for h, a in results if a.granted]
    assert granted == [0, 3, 6, 9, 24]  # four in 24 h, then the first one leaves the window
    reasons = {a.reason for h, a in results if not a.granted}
    assert reasons == {"lockout", "demand count limit"}
    assert [a.reason for h, a in results if h == 12] == ["demand count limit"]


def test_ptm_denials_name_their_reason() -> None:
    no_ptm = IntrathecalPump(MORPHINE)
    no_ptm.start()
    assert no_ptm.ptm().reason == "no PTM prescribed"
    not_started = IntrathecalPump(replace(MORPHINE, ptm=PTM))
    assert not_started.ptm().reason == "channel programming"
    empty = morphine_ptm(fill_ml=2.5)  # low alarm at 2 mL, empty after 12.5 days
    empty.advance_days(13)
    assert empty.channel.state is State.ALARM
    assert empty.ptm().reason == "channel alarm"
    # Every press is recorded as an event with its reason.
    denied = [r.data["reason"] for r in no_ptm.device.records if r.kind == "pca_denied"]
    assert denied == ["no PTM prescribed"]


def test_ptm_lockout_and_count_carry_over_a_new_program() -> None:
    pump = morphine_ptm()
    assert pump.ptm().granted
    pump.advance_to(1 * H)
    pump.reprogram(replace(MORPHINE, ptm=PTM, daily_dose="6 mg/day"))  # the engine starts afresh
    assert pump.ptm().reason == "lockout"
    for hour in (3, 6, 9):
        pump.advance_to(hour * H)
        pump.refill(found_ml=pump.reservoir_ml, added_ml=20.0)
        assert pump.ptm().granted
    pump.advance_to(12 * H)
    assert pump.ptm().reason == "demand count limit"


def test_ptm_denied_when_the_last_24_hours_would_exceed_the_max_daily_dose() -> None:
    high = replace(MORPHINE, ptm=PTM, daily_dose="12 mg/day")  # 12 + 2 <= 15 mg
    pump = IntrathecalPump(high)
    pump.start()
    pump.advance_days(2)
    # Down to 5 mg/day and a 7 mg hard limit: the last 24 h already hold 12 mg.
    pump.reprogram(replace(MORPHINE, ptm=PTM, max_daily_dose="7 mg/day"))
    assert pump.trailing_amount() == pytest.approx(12.0)
    assert pump.ptm().reason == "24-hour limit"
    assert pump.channel.state is State.RUNNING  # the basal is never stopped for it
    pump.advance_to(pump.t_s + 20 * H)  # 4 h of 12 mg/day + 20 h of 5 mg/day = 6.17 mg
    assert pump.trailing_amount() == pytest.approx(12 * 4 / 24 + 5 * 20 / 24)
    assert pump.ptm().granted
    assert not alarms(pump, Alarm.DOSE_LIMIT)


# ---- prescription hard limit and bad input ------------------------------------------------


def test_max_daily_dose_counts_the_schedule_and_every_ptm() -> None:
    # 5 mg/day + 4 x 0.5 mg = 7 mg
    assert compile_prescription(replace(MORPHINE, ptm=PTM, max_daily_dose="7 mg/day"))
    with pytest.raises(InputError) as err:
        compile_prescription(replace(MORPHINE, ptm=PTM, max_daily_dose="6.9 mg/day"))
    assert err.value.field == "max_daily_dose"
    assert err.value.value == "6.9 mg/day"
    assert "5 mg" in err.value.rule and "4 PTM doses of 0.5 mg" in err.value.rule
    assert "7 mg per 24 h" in err.value.rule


def test_max_daily_dose_refused_above_the_reference_ceiling() -> None:
    with pytest.raises(InputError) as err:
        compile_prescription(replace(MORPHINE, max_daily_dose="25 mg/day"))
    assert err.value.field == "max_daily_dose"
    assert "20 mg/day" in err.value.rule
    zico = IntrathecalPrescription(
        drug="ziconotide",
        concentration="25 mcg/mL",
        max_daily_dose="20 mcg/day",
        daily_dose="2.4 mcg/day",
    )
    with pytest.raises(InputError, match=r"19\.2 mcg/day"):
        compile_prescription(zico)


NAN = float("nan")
BAD: list[tuple[dict[str, Any], str]] = [
    ({"drug": ""}, "drug"),
    ({"concentration": "nan mg/mL"}, "concentration"),
    ({"concentration": "-25 mg/mL"}, "concentration"),
    ({"concentration": "5 mL/mL"}, "concentration"),
    ({"reservoir_ml": 30.0}, "reservoir_ml"),
    ({"reservoir_ml": NAN}, "reservoir_ml"),
    ({"reservoir_ml": -20.0}, "reservoir_ml"),
    ({"low_reservoir_ml": 0.5}, "low_reservoir_ml"),
    ({"low_reservoir_ml": 12.0}, "low_reservoir_ml"),
    ({"low_reservoir_ml": NAN}, "low_reservoir_ml"),
    ({"low_reservoir_ml": -2.0}, "low_reservoir_ml"),
    ({"max_daily_dose": "-5 mg/day"}, "max_daily_dose"),
    ({"max_daily_dose": "nan mg/day"}, "max_daily_dose"),
    ({"max_daily_dose": "1 mL/day"}, "max_daily_dose"),
    ({"daily_dose": "-5 mg/day"}, "daily_dose"),
    ({"daily_dose": "NaN mg/day"}, "daily_dose"),
    ({"daily_dose": "inf mg/day"}, "daily_dose"),
    ({"daily_dose": "0 mg/day"}, "daily_dose"),
    ({"daily_dose": "0.1 mg/kg/day"}, "daily_dose"),
    ({"daily_dose": "5 mg"}, "daily_dose"),
    ({"daily_dose": "5 units/day"}, "daily_dose"),
    ({"daily_dose": "0.5 mg/day"}, "daily_dose"),  # 0.02 mL/day: below the pump's range
    ({"daily_dose": "700 mg/day", "max_daily_dose": "20 mg/day"}, "daily_dose"),  # 28 mL/day
    ({"daily_dose": None}, "daily_dose"),
    ({"flex": (FlexStep("06:00", "5 mg/day"),)}, "daily_dose"),  # both
    ({"daily_dose": None, "flex": (FlexStep("25:00", "5 mg/day"),)}, "flex[0].start"),
    ({"daily_dose": None, "flex": (FlexStep("06:00", "-1 mg/day"),)}, "flex[0].dose"),
    (
        {
            "daily_dose": None,
            "flex": (FlexStep("06:00", "5 mg/day"), FlexStep("05:00", "4 mg/day")),
        },
        "flex[1].start",
    ),
    ({"daily_dose": None, "flex": (FlexStep("Mon 06:00", "5 mg/day"),)}, "flex[0].start"),
    (
        {"daily_dose": None, "flex_period": "week", "flex": (FlexStep("06:00", "5 mg/day"),)},
        "flex[0].start",
    ),
    (
        {"daily_dose": None, "flex_period": "month", "flex": (FlexStep("06:00", "5 mg/day"),)},
        "flex_period",
    ),
    (
        {"daily_dose": None, "flex": tuple(FlexStep(f"{h:02d}:00", "5 mg/day") for h in range(11))},
        "flex",
    ),
    ({"ptm": PtmSettings("-0.5 mg", "3 h", 4)}, "ptm.bolus"),
    ({"ptm": PtmSettings("nan mg", "3 h", 4)}, "ptm.bolus"),
    ({"ptm": PtmSettings("0.5 mg/h", "3 h", 4)}, "ptm.bolus"),
    ({"ptm": PtmSettings("0.001 mg", "3 h", 4)}, "ptm.bolus"),  # below one stroke
    ({"ptm": PtmSettings("0.5 mg", "-3 h", 4)}, "ptm.lockout"),
    ({"ptm": PtmSettings("0.5 mg", "25 h", 4)}, "ptm.lockout"),
    ({"ptm": PtmSettings("0.5 mg", "nan h", 4)}, "ptm.lockout"),
    ({"ptm": PtmSettings("0.5 mg", "5 min", 4)}, "ptm.lockout"),  # shorter than the bolus
    ({"ptm": PtmSettings("0.5 mg", "3 h", 0)}, "ptm.max_per_day"),
    ({"ptm": PtmSettings("0.5 mg", "3 h", 50)}, "ptm.max_per_day"),
    ({"ptm": PtmSettings("0.5 mg", "3 h", 2.5)}, "ptm.max_per_day"),
    ({"ptm": PtmSettings("0.5 mg", "3 h", 4, "0 min")}, "ptm.duration"),
    ({"ptm": PtmSettings("0.5 mg", "3 h", 4, "10 s")}, "ptm.duration"),  # above 1 mL/h
]


@pytest.mark.parametrize(("change", "field"), BAD)
def test_bad_prescription_names_field_value_and_rule(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as err:
        compile_prescription(replace(MORPHINE, **change))
    e = err.value
    assert e.field == field
    assert e.rule
    root = re.split(r"[\[.]", field, maxsplit=1)[0]
    given_value = change.get(root, e.value)
    if isinstance(given_value, str | float) and not isinstance(given_value, bool):
        if isinstance(given_value, float) and math.isnan(given_value):
            assert isinstance(e.value, float) and math.isnan(e.value)
        else:
            assert e.value == given_value
    assert root in e.message


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"catheter_cm": -5.0}, "catheter_cm"),
        ({"catheter_cm": NAN}, "catheter_cm"),
        ({"fill_ml": 25.0}, "fill_ml"),
        ({"fill_ml": -1.0}, "fill_ml"),
        ({"pump_pathway_ml": math.inf}, "pump_pathway_ml"),
        ({"horizon_days": 0.0}, "horizon_days"),
    ],
)
def test_bad_pump_parameters(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as err:
        IntrathecalPump(MORPHINE, **kwargs)
    assert err.value.field == field


def test_advance_refuses_going_back_or_nan() -> None:
    pump = IntrathecalPump(MORPHINE)
    pump.advance_to(10.0)
    for bad in (5.0, NAN, math.inf):
        with pytest.raises(InputError) as err:
            pump.advance_to(bad)
        assert err.value.field == "t_s"


# ---- refill --------------------------------------------------------------------------------


def test_refill_within_tolerance() -> None:
    pump = IntrathecalPump(MORPHINE)
    pump.start()
    pump.advance_days(30)  # 6 mL pumped: 14 mL expected
    result = pump.refill(found_ml=13.4, added_ml=19.0)
    assert result.expected_ml == pytest.approx(14.0)
    assert result.difference_ml == pytest.approx(-0.6)
    assert result.tolerance_ml == 1.0  # 20 mL pump
    assert not result.leak_suspected
    assert pump.reservoir_ml == 19.0  # the residual was drained; only the new drug remains
    assert not alarms(pump, Alarm.LEAK_SUSPECTED)
    assert pump.channel.state is State.RUNNING
    assert [r.data["found_ml"] for r in pump.device.records if r.kind == "refilled"] == [13.4]
    pump.advance_days(10)
    assert pump.reservoir_ml == pytest.approx(17.0)


@pytest.mark.parametrize("found", [12.5, 15.6])
def test_refill_discrepancy_raises_leak_suspected(found: float) -> None:
    pump = IntrathecalPump(MORPHINE)
    pump.start()
    pump.advance_days(30)  # 14 mL expected; found 1.5 mL less (leak, over-delivery) or more
    result = pump.refill(found_ml=found, added_ml=20.0)
    assert result.leak_suspected
    assert abs(result.difference_ml) == pytest.approx(1.5 if found < 14 else 1.6)
    assert alarms(pump, Alarm.LEAK_SUSPECTED) == [30 * DAY_S]
    assert pump.device.board.is_active(Alarm.LEAK_SUSPECTED, 0)
    assert pump.channel.state is State.RUNNING  # the basal goes on


def test_refill_tolerance_scales_with_a_40_ml_pump() -> None:
    pump = IntrathecalPump(replace(MORPHINE, reservoir_ml=40.0))
    pump.start()
    pump.advance_days(30)  # 34 mL expected
    assert not pump.refill(found_ml=32.5, added_ml=40.0).leak_suspected  # 1.5 < 2 mL
    pump.advance_days(30)
    assert pump.refill(found_ml=31.5, added_ml=40.0).leak_suspected  # 2.5 > 2 mL


def test_leak_flag_is_per_refill_and_a_new_leak_alarms_again() -> None:
    pump = IntrathecalPump(MORPHINE)
    pump.start()
    pump.advance_days(10)
    assert pump.refill(found_ml=10.0, added_ml=20.0).leak_suspected  # expected 18
    pump.advance_days(10)
    assert not pump.refill(found_ml=18.0, added_ml=20.0).leak_suspected
    pump.device.acknowledge(0, Alarm.LEAK_SUSPECTED)
    assert not pump.device.board.is_active(Alarm.LEAK_SUSPECTED, 0)
    pump.advance_days(10)
    assert pump.refill(found_ml=15.0, added_ml=20.0).leak_suspected
    assert len(alarms(pump, Alarm.LEAK_SUSPECTED)) == 2


def test_refill_overfill_and_impossible_volumes_are_refused() -> None:
    pump = IntrathecalPump(MORPHINE)
    pump.start()
    pump.advance_days(5)
    before = len(pump.device.records)
    for found, added, field in [
        (19.0, 21.0, "added_ml"),
        (25.0, 10.0, "found_ml"),
        (-1.0, 10.0, "found_ml"),
        (NAN, 10.0, "found_ml"),
        (19.0, 0.0, "added_ml"),
        (19.0, math.inf, "added_ml"),
    ]:
        with pytest.raises(InputError) as err:
            pump.refill(found_ml=found, added_ml=added)
        assert err.value.field == field
    assert len(pump.device.records) == before  # nothing changed
    assert pump.channel.state is State.RUNNING


def test_refill_after_empty_restarts_the_flex_schedule_on_the_clock() -> None:
    clock = PumpClock.at("2026-02-02T00:00:00", "UTC")
    pump = IntrathecalPump(BACLOFEN_FLEX, clock=clock, fill_ml=3.0)  # 3 mL at 1 mL/day
    pump.start()
    pump.advance_days(4)
    assert pump.channel.state is State.ALARM
    assert alarms(pump, Alarm.RESERVOIR_EMPTY)
    pump.advance_to(4 * DAY_S + 10 * H)  # refill at 10:00, a day step
    pump.refill(found_ml=0.0, added_ml=20.0)
    assert pump.channel.state is State.RUNNING
    # 10:00 to 22:00 at 25 mcg/h, then the night step at 22:00 on the clock.
    assert amount_between(pump, pump.t_s, 4 * DAY_S + 22 * H) == pytest.approx(0.3)
    assert amount_between(pump, pump.t_s, 5 * DAY_S + 6 * H) == pytest.approx(0.1)


def test_refill_of_a_pump_not_started_does_not_start_it() -> None:
    pump = IntrathecalPump(MORPHINE)
    pump.refill(found_ml=20.0, added_ml=20.0, concentration="10 mg/mL")
    assert pump.channel.state is State.PROGRAMMING
    assert not pump.bridging
    assert pump.rx.concentration.text == "10 mg/mL"


# ---- bridge bolus --------------------------------------------------------------------------


def test_bridge_bolus_after_a_concentration_change() -> None:
    rx = replace(
        MORPHINE, concentration="10 mg/mL", daily_dose="2 mg/day", max_daily_dose="10 mg/day"
    )
    pump = IntrathecalPump(rx, catheter_cm=70.0)
    pump.start()
    pump.advance_days(10)  # 2 mL pumped, 20 mg
    result = pump.refill(found_ml=18.0, added_ml=18.0, concentration="20 mg/mL")
    bridge = result.bridge
    assert bridge is not None
    dead = PUMP_PATHWAY_ML + 70.0 * CATHETER_ML_PER_CM  # 0.2 + 0.182 mL
    assert bridge.volume_ml == pytest.approx(dead)
    assert bridge.rate_ml_h == pytest.approx(0.2 / 24)  # the old rate
    assert bridge.duration_s == pytest.approx(dead / (0.2 / 24) * H)  # 45.84 h
    assert pump.bridging
    assert pump.ptm().reason in ("no PTM prescribed", "bridge bolus in progress")
    pump.advance_to(10 * DAY_S + bridge.duration_s - 60)
    assert pump.bridging
    # During the bridge the old drug leaves the catheter: 2 mg/day at 10 mg/mL.
    assert pump.delivered_amount() == pytest.approx(20 + 2 * (bridge.duration_s - 60) / DAY_S)
    pump.advance_days(3)
    assert not pump.bridging
    assert pump.rx.concentration.text == "20 mg/mL"
    assert pump.channel.plan is not None
    assert pump.channel.plan.steps[0].rate_ml_h == pytest.approx(0.1 / 24)  # 2 mg/day at 20 mg/mL
    # The dose rate never changed: 2 mg/day throughout; the dead volume left at 10 mg/mL.
    total_days = pump.t_s / DAY_S
    assert pump.delivered_amount() == pytest.approx(2 * total_days, rel=1e-9)
    fills = pump.deliveries()
    assert [f.concentration for f in fills] == ["10 mg/mL", "20 mg/mL"]
    assert fills[0].volume_ml == pytest.approx(2.0 + dead)
    since_bridge_s = pump.t_s - (10 * DAY_S + bridge.duration_s)
    assert pump.reservoir_ml == pytest.approx(18.0 - dead - since_bridge_s / DAY_S * 0.1)


def test_bridge_switches_to_the_new_flex_schedule_on_the_clock() -> None:
    clock = PumpClock.at("2026-02-02T00:00:00", "UTC")
    pump = IntrathecalPump(BACLOFEN_FLEX, clock=clock, catheter_cm=70.0)
    pump.start()
    pump.advance_to(12 * H)  # a day step: 0.05 mL/h
    result = pump.refill(found_ml=pump.reservoir_ml, added_ml=20.0, concentration="1000 mcg/mL")
    assert result.bridge is not None
    assert result.bridge.rate_ml_h == pytest.approx(0.05)
    assert result.bridge.duration_s == pytest.approx(0.382 / 0.05 * H)  # 7.64 h, to 19:38
    pump.advance_to(22 * H)
    assert not pump.bridging
    # Until 19:38 old drug at 25 mcg/h, then new drug at the same dose: 25 mcg/h.
    assert pump.delivered_amount() == pytest.approx((6 * 12.5 + 16 * 25) / 1000)
    assert pump.channel.rate_ml_h == pytest.approx(0.0125)  # night, 300 mcg/day at 1 mg/mL
    assert pump.time_to_pump(0.1) == pytest.approx(8 * H)  # the night step is on the clock


def test_refill_with_a_new_drug_bridges_even_at_the_same_strength() -> None:
    rx = replace(
        MORPHINE, concentration="10 mg/mL", daily_dose="2 mg/day", max_daily_dose="10 mg/day"
    )
    pump = IntrathecalPump(rx)
    pump.start()
    pump.advance_days(2)
    result = pump.refill(found_ml=19.6, added_ml=20.0, drug="hydromorphone")
    assert result.bridge is not None
    pump.advance_days(5)
    assert pump.rx.drug.name == "hydromorphone"
    assert pump.delivered_amount("morphine") == pytest.approx((0.4 + pump.dead_volume_ml) * 10)
    assert pump.delivered_amount("hydromorphone") == pytest.approx(
        pump.delivered_amount() - pump.delivered_amount("morphine")
    )


def test_no_refill_or_reprogram_during_a_bridge() -> None:
    pump = IntrathecalPump(MORPHINE)
    pump.start()
    pump.advance_days(1)
    pump.refill(found_ml=19.8, added_ml=20.0, concentration="10 mg/mL")
    with pytest.raises(InputError, match="bridge"):
        pump.refill(found_ml=19.0, added_ml=20.0)
    with pytest.raises(InputError, match="bridge"):
        pump.reprogram(replace(MORPHINE, concentration="10 mg/mL", daily_dose="4 mg/day"))


def test_low_reservoir_forecast_during_a_bridge() -> None:
    rx = replace(
        MORPHINE, concentration="10 mg/mL", daily_dose="2 mg/day", max_daily_dose="10 mg/day"
    )
    pump = IntrathecalPump(rx)
    pump.start()
    pump.refill(found_ml=20.0, added_ml=20.0, concentration="20 mg/mL")
    bridge = pump.bridge
    assert bridge is not None
    # The dead volume at 0.2 mL/day, then (20 - 2 - dead) mL at 0.1 mL/day.
    dead = bridge.volume_ml
    days = dead / 0.2 + (18 - dead) / 0.1
    assert pump.low_reservoir_forecast().days_from_now == pytest.approx(days)


# ---- reprogram -----------------------------------------------------------------------------


def test_reprogram_changes_the_dose_from_now() -> None:
    pump = IntrathecalPump(MORPHINE)
    pump.start()
    pump.advance_days(2)
    pump.reprogram(replace(MORPHINE, daily_dose="7.5 mg/day"))
    pump.advance_days(2)
    assert pump.delivered_amount() == pytest.approx(2 * 5 + 2 * 7.5)
    assert pump.channel.state is State.RUNNING


def test_reprogram_refuses_another_drug_or_strength() -> None:
    pump = IntrathecalPump(MORPHINE)
    pump.start()
    with pytest.raises(InputError) as err:
        pump.reprogram(replace(MORPHINE, concentration="10 mg/mL"))
    assert err.value.field == "concentration"
    with pytest.raises(InputError) as err:
        pump.reprogram(replace(MORPHINE, drug="hydromorphone"))
    assert err.value.field == "drug"
    with pytest.raises(InputError) as err:
        pump.reprogram(replace(MORPHINE, reservoir_ml=40.0))
    assert err.value.field == "reservoir_ml"


def test_refused_reprogram_keeps_the_old_prescription() -> None:
    pump = IntrathecalPump(MORPHINE, fill_ml=2.2)
    pump.start()
    pump.advance_days(12)  # empty: channel in alarm
    assert pump.channel.state is State.ALARM
    with pytest.raises(InputError):
        pump.reprogram(replace(MORPHINE, daily_dose="7.5 mg/day"))
    assert pump.rx.rx.daily_dose == "5 mg/day"


# ---- low-reservoir forecast ----------------------------------------------------------------


def test_low_reservoir_forecast_matches_the_alarm() -> None:
    clock = PumpClock.at("2026-02-02T00:00:00", "UTC")
    pump = IntrathecalPump(MORPHINE, clock=clock)
    pump.start()
    forecast = pump.low_reservoir_forecast()
    # (20 - 2) mL above the low limit at 0.2 mL/day: 90 days.
    assert forecast.days_from_now == pytest.approx(90.0)
    assert forecast.utc == datetime(2026, 5, 3, tzinfo=UTC)
    pump.advance_days(95)
    assert alarms(pump, Alarm.RESERVOIR_LOW) == [pytest.approx(90 * DAY_S)]


def test_low_reservoir_forecast_assuming_every_ptm() -> None:
    pump = IntrathecalPump(replace(MORPHINE, ptm=PTM))
    pump.start()
    # 0.2 mL/day basal + 4 x 0.02 mL PTM = 0.28 mL/day: 18 / 0.28 days.
    assert pump.low_reservoir_forecast(assume_max_ptm=True).days_from_now == pytest.approx(
        18 / 0.28
    )
    assert pump.low_reservoir_forecast().days_from_now == pytest.approx(90.0)
    assert pump.empty_forecast().days_from_now == pytest.approx(100.0)
    pump.advance_days(10)
    assert pump.low_reservoir_forecast().days_from_now == pytest.approx(80.0)


def test_low_reservoir_forecast_of_a_flex_schedule() -> None:
    clock = PumpClock.at("2026-02-02T00:00:00", "UTC")
    pump = IntrathecalPump(BACLOFEN_FLEX, clock=clock)
    pump.start()
    # 1 mL a day (500 mcg at 500 mcg/mL): 18 mL above the low limit is 18 whole days.
    forecast = pump.low_reservoir_forecast()
    assert forecast.days_from_now == pytest.approx(18.0)
    # 6 days later at 12:00, 6 + 0.15 + 0.3 mL have gone: 11.55 mL above the limit. The
    # rest of the day holds 10 h x 0.05 + 2 h x 0.025 = 0.55 mL, then 11 whole days.
    pump.advance_to(6 * DAY_S + 12 * H)
    assert pump.reservoir_ml == pytest.approx(20.0 - 6.45)
    assert pump.low_reservoir_forecast().days_from_now == pytest.approx(11.5)
    pump.advance_days(13)
    assert alarms(pump, Alarm.RESERVOIR_LOW) == [pytest.approx(18 * DAY_S)]


# ---- battery: ERI and end of service -------------------------------------------------------


def test_battery_calibration() -> None:
    battery = implant_battery()
    assert battery.runtime_s(0.0) / DAY_S == pytest.approx(LIFE_NO_FLOW_DAYS)  # 7 years
    assert battery.runtime_s(1.0 / 24) / DAY_S == pytest.approx(LIFE_AT_1_ML_DAY_DAYS)  # 5 years
    with pytest.raises(InputError) as err:
        implant_battery(1.5)
    assert err.value.field == "charge_fraction"


def test_eri_and_end_of_service_at_1_ml_per_day() -> None:
    rx = IntrathecalPrescription(
        drug="morphine",
        concentration="10 mg/mL",
        max_daily_dose="20 mg/day",
        daily_dose="10 mg/day",  # 1 mL/day
        reservoir_ml=40.0,
    )
    pump = IntrathecalPump(rx)
    pump.start()
    while pump.device.powered and pump.t_s < 6 * 365.25 * DAY_S:
        pump.advance_days(30)
        if pump.device.powered:
            pump.refill(found_ml=pump.reservoir_ml, added_ml=40.0)
    five_years = LIFE_AT_1_ML_DAY_DAYS * DAY_S
    [eri] = alarms(pump, Alarm.ELECTIVE_REPLACEMENT)
    # ERI when under 90 days remain, found by the daily check: within the next day.
    assert (
        five_years - ERI_REMAINING_DAYS * DAY_S
        <= eri
        < five_years - (ERI_REMAINING_DAYS - 1) * DAY_S
    )
    [eos] = alarms(pump, Alarm.END_OF_SERVICE)
    assert eos == pytest.approx(five_years, rel=1e-9)
    assert pump.channel.state is State.ALARM
    assert pump.ptm().reason in ("no PTM prescribed", "pump stopped (end of service)")
    delivered = pump.pumped_ml
    pump.advance_days(30)
    assert pump.pumped_ml == delivered  # the pump has stopped
    assert not alarms(pump, Alarm.BATTERY_LOW)


def test_eri_at_no_flow_is_near_seven_years() -> None:
    # A stopped pump (never started) at the lowest programmable rate, 0.048 mL/day.
    rx = replace(MORPHINE, daily_dose="0.048 mL/day")
    pump = IntrathecalPump(rx)
    pump.advance_days(7.5 * 365.25)
    seven_years = LIFE_NO_FLOW_DAYS * DAY_S
    [eri] = alarms(pump, Alarm.ELECTIVE_REPLACEMENT)
    assert seven_years - 95 * DAY_S <= eri <= seven_years - 89 * DAY_S
    [eos] = alarms(pump, Alarm.END_OF_SERVICE)
    assert eos == pytest.approx(seven_years, rel=1e-9)
    assert not pump.device.powered


def test_service_forecast() -> None:
    rx = replace(
        MORPHINE, concentration="10 mg/mL", daily_dose="10 mg/day", max_daily_dose="20 mg/day"
    )
    pump = IntrathecalPump(rx, battery=implant_battery(0.1))
    forecast = pump.service_forecast()
    # 10 % of a 5-year battery at 1 mL/day: 182.6 days, ERI 90 days before.
    assert forecast.mean_rate_ml_day == pytest.approx(1.0)
    assert forecast.remaining_days == pytest.approx(0.1 * LIFE_AT_1_ML_DAY_DAYS)
    assert forecast.eri.days_from_now == pytest.approx(0.1 * LIFE_AT_1_ML_DAY_DAYS - 90)
    assert not forecast.at_eri
    pump.start()
    for _ in range(8):  # refills every 15 days keep the 1 mL/day flowing
        pump.advance_days(15)
        pump.refill(found_ml=pump.reservoir_ml, added_ml=20.0)
    [eri] = alarms(pump, Alarm.ELECTIVE_REPLACEMENT)
    assert eri == pytest.approx(math.ceil(forecast.eri.days_from_now) * DAY_S, abs=1.0)


# ---- properties ----------------------------------------------------------------------------


press_gaps = st.lists(st.floats(min_value=0.0, max_value=8 * H), min_size=1, max_size=40)


def _run_presses(pump: IntrathecalPump, gaps: list[float]) -> list[tuple[float, float]]:
    """Press the PTM after each gap; return (t, delivered amount) at every engine event."""
    points = [(pump.t_s, pump.delivered_amount())]
    targets = []
    t = pump.t_s
    for gap in gaps:
        t += gap
        targets.append(t)
    end = t + DAY_S
    for target in [*targets, end]:
        while pump.t_s < target:
            nxt = min(target, max(pump.device.next_event_s(), pump.t_s + 1e-3))
            pump.advance_to(nxt)
            points.append((pump.t_s, pump.delivered_amount()))
        if target != end:
            pump.ptm()
    return points


def _max_window(points: list[tuple[float, float]], window: float) -> float:
    """Largest increase of a piecewise-linear cumulative curve over any ``window``."""
    ts = [p[0] for p in points]

    def at(x: float) -> float:
        i = max(0, min(bisect.bisect_right(ts, x) - 1, len(ts) - 2))
        (t0, a0), (t1, a1) = points[i], points[i + 1]
        if t1 == t0:
            return a1
        return a0 + (a1 - a0) * (min(max(x, t0), t1) - t0) / (t1 - t0)

    starts = {t for t in ts if t + window <= ts[-1]} | {t - window for t in ts if t >= window}
    return max((at(a + window) - at(a) for a in starts), default=points[-1][1])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(press_gaps, st.integers(1, 6), st.sampled_from(["1 h", "2 h", "3 h", "6 h"]))
def test_granted_ptm_respects_lockout_count_and_daily_maximum(
    gaps: list[float], max_per_day: int, lockout: str
) -> None:
    rx = replace(
        MORPHINE, ptm=PtmSettings("0.5 mg", lockout, max_per_day), max_daily_dose="8 mg/day"
    )
    pump = IntrathecalPump(rx)
    pump.start()
    points = _run_presses(pump, gaps)
    granted = [a.t_s for a in pump.ptm_log if a.granted]
    lockout_s = pump.rx.ptm.lockout_s if pump.rx.ptm else 0.0
    for a, b in itertools.pairwise(granted):
        assert b - a >= lockout_s - 1e-6
    for g in granted:
        assert sum(1 for x in granted if g <= x < g + DAY_S) <= max_per_day
    for a in pump.ptm_log:
        assert a.granted or a.reason in (
            "lockout",
            "demand count limit",
            "dose in progress",
            "24-hour limit",
        )
    assert _max_window(points, DAY_S) <= 8.0 * (1 + 1e-9)
    assert pump.channel.state is State.RUNNING


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    press_gaps,
    st.floats(min_value=0.05, max_value=3.0),
    st.lists(st.floats(min_value=0.1, max_value=5.0), max_size=3),
)
def test_delivered_never_exceeds_the_reservoir_content(
    gaps: list[float], fill: float, refills: list[float]
) -> None:
    rx = replace(
        MORPHINE,
        concentration="10 mg/mL",
        daily_dose="10 mg/day",  # 1 mL/day, so the reservoir runs dry in the test
        max_daily_dose="20 mg/day",
        ptm=PtmSettings("1 mg", "1 h", 10),
    )
    pump = IntrathecalPump(rx, fill_ml=fill)
    pump.start()
    content = fill
    _run_presses(pump, gaps)
    for added in refills:
        assert pump.pumped_ml <= content + 1e-9
        assert pump.reservoir_ml >= 0.0
        pump.refill(found_ml=pump.reservoir_ml, added_ml=added)
        content = pump.channel.ideal_ml + added
        _run_presses(pump, gaps[:5])
    assert pump.channel.ideal_ml <= content + 1e-9
    assert pump.pumped_ml <= content + 1e-9
    assert pump.reservoir_ml >= 0.0
