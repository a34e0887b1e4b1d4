"""Insulin patch pump: insulin action curve, basal schedule, bolus wizard and the pump.

The exponential curve is checked against the oref0 formula written out here from
AID_REFERENCE.md §2.3 (oref0 lib/iob/calculate.js, iobCalcExponential), independently of
the module's own implementation.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openinfusion.errors import InputError, InputErrors
from openinfusion.library import sample_library
from openinfusion.library.ders import HardLimitError, SoftLimitError
from openinfusion.pump.channel import CommandRejected, State
from openinfusion.pump.clock import PumpClock
from openinfusion.pump.insulin import (
    BasalSchedule,
    Delivery,
    DeliveryKind,
    InsulinPump,
    InsulinSettings,
    activity_total,
    basal_plan,
    bolus_calculator,
    check_library,
    excess_over,
    floor_to,
    insulin_activity,
    iob,
    iob_total,
    is_multiple,
)

H = 3600.0
PULSE = 0.05


def make_settings(**overrides: Any) -> InsulinSettings:
    base: dict[str, Any] = {
        "basal": [("00:00", 0.8), ("06:00", 1.0), ("22:00", 0.7)],
        "carb_ratio_g_per_unit": 10.0,
        "isf_mg_dl_per_unit": 50.0,
        "target_low_mg_dl": 100.0,
        "target_high_mg_dl": 120.0,
        "max_basal_units_h": 3.0,
        "max_bolus_units": 10.0,
        "max_iob_units": 15.0,
    }
    base.update(overrides)
    return InsulinSettings(**base)


# Hand sum of the default profile over one 24-hour day (U).
DAY_UNITS = 0.8 * 6 + 1.0 * 16 + 0.7 * 2  # 22.2


def started(
    s: InsulinSettings | None = None,
    start: str = "2026-01-10T00:00:00",
    tz: str = "UTC",
    **pump_kw: Any,
) -> InsulinPump:
    pump = InsulinPump(**pump_kw)
    pump.start(s or make_settings(), PumpClock.at(start, tz))
    return pump


def records(pump: InsulinPump, kind: str) -> list[Any]:
    return [r for r in pump.device.records if r.kind == kind]


def pulses(units: float) -> float:
    return units / PULSE


def assert_whole_pulses(units: float) -> None:
    assert is_multiple(units, PULSE), f"{units} U is not a whole number of pulses"


# ---- the oref0 exponential curve, written from the reference ---------------------------------


def oref0_iob(minutes_ago: float, insulin: float, dia_h: float, peak: float) -> float:
    """AID_REFERENCE.md §2.3: IOB(t) = U [1 - S (1-a) ((t^2/(tau td (1-a)) - t/tau - 1) e^(-t/tau) + 1)]."""
    end = dia_h * 60
    tau = peak * (1 - peak / end) / (1 - 2 * peak / end)
    a = 2 * tau / end
    big_s = 1 / (1 - a + (1 + a) * math.exp(-end / tau))
    t = minutes_ago
    return insulin * (
        1
        - big_s * (1 - a) * ((t**2 / (tau * end * (1 - a)) - t / tau - 1) * math.exp(-t / tau) + 1)
    )


def oref0_activity(minutes_ago: float, insulin: float, dia_h: float, peak: float) -> float:
    """AID_REFERENCE.md §2.3: activity(t) = U (S/tau^2) t (1 - t/td) e^(-t/tau)."""
    end = dia_h * 60
    tau = peak * (1 - peak / end) / (1 - 2 * peak / end)
    a = 2 * tau / end
    big_s = 1 / (1 - a + (1 + a) * math.exp(-end / tau))
    t = minutes_ago
    return insulin * (big_s / tau**2) * t * (1 - t / end) * math.exp(-t / tau)


CURVES = [(5.0, 75.0), (6.0, 55.0), (8.0, 120.0), (5.0, 35.0)]


@pytest.mark.parametrize(("dia_h", "peak"), CURVES)
@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.1, 0.25, 0.4, 0.5, 0.75, 0.9, 0.99])
def test_iob_and_activity_match_the_oref0_formula(
    dia_h: float, peak: float, fraction: float
) -> None:
    t = fraction * dia_h * 60
    assert iob(t, 4.0, dia_h, peak) == pytest.approx(oref0_iob(t, 4.0, dia_h, peak), rel=1e-12)
    assert insulin_activity(t, 4.0, dia_h, peak) == pytest.approx(
        oref0_activity(t, 4.0, dia_h, peak), rel=1e-12
    )


def test_iob_known_values_for_rapid_acting_insulin() -> None:
    # By hand for 1 U, DIA 5 h (td 300 min), peak 75 min: tau = 75 x 0.75 / 0.5 = 112.5,
    # a = 0.75, S = 1 / (0.25 + 1.75 e^(-2.6667)) = 2.6911. At 60 min the bracket is
    # (0.42667 - 0.53333 - 1) e^(-0.53333) + 1 = 0.35078, so IOB = 1 - 2.6911 x 0.25 x 0.35078.
    assert iob(0, 1.0, 5, 75) == 1.0
    assert oref0_iob(60, 1.0, 5, 75) == pytest.approx(0.7640, abs=1e-4)
    assert iob(60, 1.0, 5, 75) == pytest.approx(0.7640, abs=1e-4)
    assert iob(150, 1.0, 5, 75) == pytest.approx(oref0_iob(150, 1.0, 5, 75), rel=1e-12)


@pytest.mark.parametrize(("dia_h", "peak"), CURVES)
def test_iob_is_the_dose_at_zero_and_nothing_from_dia_on(dia_h: float, peak: float) -> None:
    td = dia_h * 60
    assert iob(0, 3.0, dia_h, peak) == 3.0
    assert iob(td, 3.0, dia_h, peak) == 0.0
    assert iob(td + 60, 3.0, dia_h, peak) == 0.0
    assert iob(-5, 3.0, dia_h, peak) == 0.0  # not given yet
    # the formula itself reaches 0 at DIA: the curve is continuous there
    assert oref0_iob(td, 3.0, dia_h, peak) == pytest.approx(0.0, abs=1e-12)
    assert iob(td - 1e-6, 3.0, dia_h, peak) == pytest.approx(0.0, abs=1e-9)
    assert insulin_activity(td, 3.0, dia_h, peak) == 0.0
    assert insulin_activity(-1, 3.0, dia_h, peak) == 0.0


@pytest.mark.parametrize(("dia_h", "peak"), CURVES)
def test_activity_integrates_to_the_dose(dia_h: float, peak: float) -> None:
    td, n = dia_h * 60, 3000  # Simpson's rule, n even
    step = td / n
    total = insulin_activity(0, 2.0, dia_h, peak) + insulin_activity(td - 1e-12, 2.0, dia_h, peak)
    for k in range(1, n):
        total += (4 if k % 2 else 2) * insulin_activity(k * step, 2.0, dia_h, peak)
    assert total * step / 3 == pytest.approx(2.0, rel=1e-9)


@pytest.mark.parametrize(("dia_h", "peak"), CURVES)
def test_activity_is_minus_the_slope_of_iob_and_peaks_at_the_peak_time(
    dia_h: float, peak: float
) -> None:
    td = dia_h * 60
    for t in (5.0, peak, 0.5 * td, 0.9 * td):
        h = 1e-4
        slope = (iob(t + h, 1.0, dia_h, peak) - iob(t - h, 1.0, dia_h, peak)) / (2 * h)
        assert -slope == pytest.approx(insulin_activity(t, 1.0, dia_h, peak), rel=1e-6)
    grid = [k * 0.25 for k in range(int(td * 4))]
    best = max(grid, key=lambda t: insulin_activity(t, 1.0, dia_h, peak))
    assert best == pytest.approx(peak, abs=0.25)
    values = [iob(t, 1.0, dia_h, peak) for t in grid]
    assert all(b <= a + 1e-15 for a, b in itertools.pairwise(values))


def test_a_peak_at_or_after_half_the_dia_is_refused() -> None:
    with pytest.raises(InputError) as err:
        iob(10, 1.0, 5.0, 150.0)
    assert err.value.field == "peak_min"


def test_iob_of_spread_deliveries_matches_many_small_boluses() -> None:
    # 1.2 U over an hour from t = 600 s, seen at 1 h and at 3 h: the exact integral against
    # a sum of 3600 one-second boluses.
    d = Delivery(600.0, 4200.0, 1.2, DeliveryKind.BASAL)
    for now in (2400.0, 3 * H):
        delivered_until = min(now, d.end_s)
        n = int(delivered_until - d.start_s)
        per = 1.2 / 3600
        brute_iob = sum(iob((now - (d.start_s + k + 0.5)) / 60, per, 5, 75) for k in range(n))
        brute_act = sum(
            insulin_activity((now - (d.start_s + k + 0.5)) / 60, per, 5, 75) for k in range(n)
        )
        assert iob_total([d], now, 5, 75) == pytest.approx(brute_iob, rel=1e-6)
        assert activity_total([d], now, 5, 75) == pytest.approx(brute_act, rel=1e-5)
    # an instantaneous delivery is a bolus
    b = Delivery(0.0, 0.0, 2.0, DeliveryKind.BOLUS)
    assert iob_total([b], 90 * 60, 5, 75) == pytest.approx(oref0_iob(90, 2.0, 5, 75))
    assert activity_total([b], 90 * 60, 5, 75) == pytest.approx(oref0_activity(90, 2.0, 5, 75))
    assert iob_total([b], 6 * H, 5, 75) == 0.0


def test_excess_keeps_only_what_was_delivered_above_the_reference() -> None:
    delivered = [
        Delivery(0, H, 0.5, DeliveryKind.TEMP_BASAL),  # half the schedule
        Delivery(H, 2 * H, 2.0, DeliveryKind.TEMP_BASAL),  # double
    ]
    reference = [Delivery(0, 2 * H, 2.0, DeliveryKind.SCHEDULED)]
    out = excess_over(delivered, reference, 0, 2 * H)
    assert [(d.start_s, d.end_s) for d in out] == [(H, 2 * H)]
    assert out[0].units == pytest.approx(1.0)
    assert out[0].kind is DeliveryKind.EXCESS


# ---- settings --------------------------------------------------------------------------------


def test_settings_parse_the_profile() -> None:
    s = make_settings()
    assert [(seg.start.hour, seg.units_h) for seg in s.segments] == [(0, 0.8), (6, 1.0), (22, 0.7)]
    assert s.ml(1.0) == 0.01
    assert s.dia_min == 300.0
    assert s.basal_increment_units_h == PULSE


def test_every_settings_problem_is_reported_at_once() -> None:
    with pytest.raises(InputErrors) as err:
        make_settings(
            basal=[("01:00", 0.83), ("00:30", 5.0), ("24:00", 1.0)],
            carb_ratio_g_per_unit=0,
            dia_h=3,
        )
    fields = {p.field for p in err.value.problems}
    assert {
        "basal[0].units_h",  # 0.83 is not a whole number of pulses per hour
        "basal[1].start",  # not after the one before
        "basal[1].units_h",  # above max basal
        "basal[2].start",  # not a time
        "basal[0].start",  # the first must be 00:00
        "carb_ratio_g_per_unit",
        "dia_h",
    } <= fields
    rate_problem = next(p for p in err.value.problems if p.field == "basal[0].units_h")
    assert "0.8 U/h" in rate_problem.rule  # what the pump could run instead


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"basal": []}, "basal"),
        ({"target_low_mg_dl": 130.0}, "target_low_mg_dl"),
        ({"max_iob_units": float("nan")}, "max_iob_units"),
        ({"peak_min": 200.0}, "peak_min"),
        ({"isf_mg_dl_per_unit": True}, "isf_mg_dl_per_unit"),
        ({"basal": [("00:00", -0.1)]}, "basal[0].units_h"),
    ],
)
def test_bad_settings_name_the_field(override: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as err:
        make_settings(**override)
    assert field in {p.field for p in err.value.problems}  # type: ignore[attr-defined]


def test_rounding_helpers() -> None:
    assert floor_to(0.7499999999, PULSE) == 0.75  # float noise is not a lost pulse
    assert floor_to(0.749, PULSE) == 0.7
    assert floor_to(-1.0, PULSE) == 0.0
    assert is_multiple(1.15, PULSE)
    assert not is_multiple(1.17, PULSE)


# ---- basal schedule --------------------------------------------------------------------------


def test_a_day_of_basal_is_the_hand_sum_of_the_segments_in_whole_pulses() -> None:
    pump = started()
    pump.advance_to(24 * H)
    assert_whole_pulses(pump.delivered_units)
    assert abs(pump.delivered_units - DAY_UNITS) < PULSE
    assert pump.delivered_units <= DAY_UNITS + 1e-9  # pulses never run ahead
    kinds = pump.delivered_by_kind()
    assert kinds[DeliveryKind.BASAL] == pytest.approx(DAY_UNITS)
    assert kinds[DeliveryKind.BOLUS] == kinds[DeliveryKind.TEMP_BASAL] == 0.0
    assert pump.iob() == pytest.approx(0.0, abs=1e-9)  # basal on schedule is not "on board"


def test_basal_rate_follows_the_local_clock() -> None:
    pump = started(start="2026-01-10T03:00:00")  # starts mid-segment
    assert pump.rate_units_h == pytest.approx(0.8)
    pump.advance_to(3 * H - 1)
    assert pump.rate_units_h == pytest.approx(0.8)
    pump.advance_to(3 * H)  # 06:00 local
    assert pump.rate_units_h == pytest.approx(1.0)
    pump.advance_to(19 * H)  # 22:00 local
    assert pump.rate_units_h == pytest.approx(0.7)
    assert pump.scheduled_rate_units_h(2 * H) == 0.8
    assert abs(pump.delivered_units - (0.8 * 3 + 1.0 * 16)) < PULSE


def test_the_profile_repeats_after_the_compiled_horizon() -> None:
    pump = InsulinPump(horizon_s=H)  # one compiled day, then the nominal day repeats
    pump.start(make_settings(), PumpClock.at("2026-01-10T00:00:00", "UTC"))
    pump.advance_to(3 * 24 * H)
    assert abs(pump.delivered_units - 3 * DAY_UNITS) < PULSE
    plan = basal_plan(make_settings(), PumpClock.at("2026-01-10T00:00:00", "UTC"), 0.0, H)
    assert plan.repeat_from == 3  # one local day of three segments, then the nominal day
    with pytest.raises(InputError):
        basal_plan(make_settings(), PumpClock(), 0.0, 0.0)


DST_PROFILE = [("00:00", 0.5), ("01:30", 0.6), ("06:00", 1.0), ("22:00", 0.7)]


@pytest.mark.parametrize(
    ("day", "tz", "hours", "expected_runs"),
    [
        # Europe/London 2026-03-29: 01:00 GMT -> 02:00 BST. 01:30 is in the gap and starts
        # at the gap's end (02:00 BST, one hour after midnight); the day has 23 hours.
        ("2026-03-29", "Europe/London", 23, [(0, 1, 0), (1, 5, 1), (5, 21, 2), (21, 23, 3)]),
        # America/New_York 2026-03-08: 02:00 EST -> 03:00 EDT; 06:00 EDT is 5 h after midnight.
        ("2026-03-08", "America/New_York", 23, [(0, 1.5, 0), (1.5, 5, 1), (5, 21, 2), (21, 23, 3)]),
        # Europe/London 2026-10-25: 02:00 BST -> 01:00 GMT; the repeated hour is run once
        # more by the 01:30 segment (at its first occurrence), the day has 25 hours.
        ("2026-10-25", "Europe/London", 25, [(0, 1.5, 0), (1.5, 7, 1), (7, 23, 2), (23, 25, 3)]),
        ("2026-11-01", "America/New_York", 25, [(0, 1.5, 0), (1.5, 7, 1), (7, 23, 2), (23, 25, 3)]),
        # an ordinary day for comparison
        ("2026-06-01", "Europe/London", 24, [(0, 1.5, 0), (1.5, 6, 1), (6, 22, 2), (22, 24, 3)]),
    ],
)
def test_dst_days_keep_segments_on_local_time(
    day: str, tz: str, hours: float, expected_runs: list[tuple[float, float, int]]
) -> None:
    s = make_settings(basal=DST_PROFILE)
    clock = PumpClock.at(f"{day}T00:00:00", tz)
    schedule = BasalSchedule(s, clock)
    end = schedule.next_midnight(1.0)
    assert end == hours * H
    runs = [(a / H, b / H, i) for a, b, i in schedule.runs(0.0, end)]
    assert [i for *_, i in runs] == [i for *_, i in expected_runs]
    flat = [x for a, b, _ in runs for x in (a, b)]
    assert flat == pytest.approx([x for a, b, _ in expected_runs for x in (a, b)])
    # every segment change is at its local wall time
    for a, _, i in schedule.runs(0.0, end)[1:]:
        local = clock.local(a)
        start = s.segments[i].start
        if (local.hour, local.minute) != (start.hour, start.minute):  # only a gap may move it
            assert local.utcoffset() != clock.local(a - 1).utcoffset()
    rates = [0.5, 0.6, 1.0, 0.7]
    hand_sum = sum(rates[i] * (b - a) for a, b, i in expected_runs)
    pump = InsulinPump()
    pump.start(s, clock)
    pump.advance_to(end)
    assert_whole_pulses(pump.delivered_units)
    assert abs(pump.delivered_units - hand_sum) < PULSE


def test_resume_realigns_the_schedule_to_local_time() -> None:
    pump = started()
    pump.advance_to(5 * H)
    pump.suspend()
    pump.advance_to(8 * H)
    assert pump.rate_units_h == 0.0
    pump.resume()
    assert pump.rate_units_h == pytest.approx(1.0)  # the 06:00 segment, not the 00:00 one
    pump.advance_to(24 * H)
    hand_sum = DAY_UNITS - (0.8 * 1 + 1.0 * 2)  # 05:00-08:00 not delivered
    assert abs(pump.delivered_units - hand_sum) < PULSE
    # net IOB counts the missed basal (0.8 U in 05:00-06:00, 2 U in 06:00-08:00) as negative
    missed = [
        Delivery(5 * H, 6 * H, 0.8, DeliveryKind.BASAL),
        Delivery(6 * H, 8 * H, 2.0, DeliveryKind.BASAL),
    ]
    assert pump.iob(8 * H) == pytest.approx(-iob_total(missed, 8 * H, 5, 75), abs=1e-9)
    assert pump.iob(8 * H) < -1.5


# ---- bolus calculator ------------------------------------------------------------------------


def test_wizard_carbs_over_the_carb_ratio_rounded_down() -> None:
    s = make_settings(carb_ratio_g_per_unit=12.0)
    r = bolus_calculator(s, 110, 46, 0.0)  # 46 / 12 = 3.833 U
    assert r.carb_units == pytest.approx(46 / 12)
    assert r.correction_units == 0.0
    assert r.units == 3.8
    assert any("rounded down" in reason for reason in r.reasons)
    assert bolus_calculator(make_settings(), 110, 45, 0.0).units == 4.5  # exact: no rounding


def test_wizard_correction_and_iob() -> None:
    s = make_settings()
    # (220 - 120) / 50 = 2 U correction, 60 / 10 = 6 U carbs, minus 1.3 U IOB
    r = bolus_calculator(s, 220, 60, 1.3)
    assert r.correction_units == pytest.approx(2.0)
    assert r.calculated_units == pytest.approx(6.7)
    assert r.units == 6.7
    # below the target range the correction is negative: (70 - 100) / 50 = -0.6 U
    low = bolus_calculator(s, 70, 30, 0.0)
    assert low.correction_units == pytest.approx(-0.6)
    assert low.units == 2.4
    assert any("below target" in reason for reason in low.reasons)


def test_a_single_target_uses_bg_minus_target_over_isf() -> None:
    s = make_settings(target_low_mg_dl=110.0, target_high_mg_dl=110.0, isf_mg_dl_per_unit=40.0)
    for bg in (60.0, 110.0, 173.0, 300.0):
        expected = floor_to(50 / 10 + (bg - 110) / 40, PULSE)
        assert bolus_calculator(s, bg, 50, 0.0).units == expected


def test_negative_iob_never_increases_a_bolus_and_a_dose_is_never_negative() -> None:
    s = make_settings()
    assert bolus_calculator(s, 180, 40, -2.5).units == bolus_calculator(s, 180, 40, 0.0).units
    r = bolus_calculator(s, 110, 20, 5.0)  # 2 U of carbs, 5 U on board
    assert r.units == 0.0
    assert r.calculated_units == pytest.approx(-3.0)
    assert any("negative" in reason for reason in r.reasons)


def test_wizard_caps_at_max_bolus_and_max_iob() -> None:
    s = make_settings(max_bolus_units=5.0, max_iob_units=8.0)
    r = bolus_calculator(s, 120, 90, 0.0)
    assert r.units == 5.0
    assert any("max bolus" in reason for reason in r.reasons)
    r = bolus_calculator(s, 120, 60, 4.52)  # 6 - 4.52 = 1.48 wanted; room 8 - 4.52 = 3.48
    assert r.units == 1.45
    r = bolus_calculator(s, 300, 40, 4.52)  # 4 + 3.6 - 4.52 = 3.08; room 3.48
    assert r.units == 3.05
    r = bolus_calculator(s, 120, 40, 0.0, committed_units=6.03)  # room 1.97 -> 1.95
    assert r.units == 1.95
    assert any("max IOB" in reason for reason in r.reasons)
    assert bolus_calculator(s, 120, 40, 0.0, committed_units=9.0).units == 0.0


def test_wizard_refuses_impossible_inputs() -> None:
    with pytest.raises(InputErrors) as err:
        bolus_calculator(make_settings(), 700, -5, float("inf"))
    assert {p.field for p in err.value.problems} == {"bg_mg_dl", "carbs_g", "iob_units"}
    with pytest.raises(InputError):
        bolus_calculator(make_settings(), 100, 10, 0, committed_units=-1)


@settings(max_examples=300, deadline=None)
@given(
    bg=st.floats(40, 500),
    carbs=st.floats(0, 200),
    on_board=st.floats(-5, 20),
    ratio=st.floats(3, 30),
    isf=st.floats(10, 150),
)
def test_wizard_rounds_down_and_respects_every_limit(
    bg: float, carbs: float, on_board: float, ratio: float, isf: float
) -> None:
    s = make_settings(carb_ratio_g_per_unit=ratio, isf_mg_dl_per_unit=isf, max_iob_units=12.0)
    r = bolus_calculator(s, bg, carbs, on_board)
    assert_whole_pulses(r.units)
    assert 0.0 <= r.units <= s.max_bolus_units
    assert r.units <= max(r.calculated_units, 0.0) + 1e-9  # never rounded up
    assert r.units == 0.0 or r.units + max(on_board, 0.0) <= s.max_iob_units + 1e-6
    capped = r.units < floor_to(r.calculated_units, PULSE) - 1e-9
    if not capped:
        assert r.units > r.calculated_units - PULSE - 1e-9  # within one pulse below
    assert r.iob_units == max(on_board, 0.0)


# ---- boluses ---------------------------------------------------------------------------------


def test_a_normal_bolus_runs_at_the_bolus_rate() -> None:
    pump = started()
    grant = pump.bolus(5.0)
    assert (grant.kind, grant.now_units, grant.extended_units) == ("normal", 5.0, 0.0)
    assert pump.channel.state.value == "bolus"
    assert pump.iob() == pytest.approx(5.0)  # the undelivered rest counts in full
    pump.advance_to(100)  # 1.5 U/min: 2.5 U after 100 s
    assert pump.delivered_by_kind()[DeliveryKind.BOLUS] == pytest.approx(2.5)
    pump.advance_to(600)
    done = records(pump, "bolus_complete")
    assert [r.t_s for r in done] == pytest.approx([200.0])  # 5 U / 1.5 U/min
    assert pump.channel.state is State.RUNNING
    assert pump.delivered_by_kind()[DeliveryKind.BOLUS] == pytest.approx(5.0)
    assert abs(pump.delivered_units - (5.0 + 0.8 * 600 / H)) < PULSE
    assert pump.iob() == pytest.approx(oref0_iob(500 / 60, 5.0, 5, 75), abs=0.01)


def test_an_extended_bolus_runs_evenly_over_its_duration() -> None:
    pump = started()
    grant = pump.bolus(2.0, "extended", extended_minutes=60)
    assert (grant.now_units, grant.extended_units, grant.extended_minutes) == (0.0, 2.0, 60.0)
    assert pump.channel.state is State.RUNNING  # basal runs underneath
    assert pump.rate_units_h == pytest.approx(0.8 + 2.0)
    pump.advance_to(30 * 60)
    assert pump.delivered_by_kind()[DeliveryKind.EXTENDED] == pytest.approx(1.0)
    pump.advance_to(2 * H)
    assert [r.t_s for r in records(pump, "bolus_complete")] == pytest.approx([H])
    assert pump.delivered_by_kind()[DeliveryKind.EXTENDED] == pytest.approx(2.0)
    assert abs(pump.delivered_units - (2.0 + 0.8 * 2)) < PULSE


def test_a_dual_bolus_gives_the_now_part_then_the_extended_part() -> None:
    pump = started()
    grant = pump.bolus(3.0, "dual", extended_minutes=60, split=0.5)
    assert (grant.now_units, grant.extended_units) == (1.5, 1.5)
    pump.advance_to(60)  # the now part: 1.5 U at 1.5 U/min
    assert pump.delivered_by_kind()[DeliveryKind.BOLUS] == pytest.approx(1.5)
    assert pump.delivered_by_kind()[DeliveryKind.EXTENDED] == 0.0
    pump.advance_to(2 * H)
    done = sorted(r.t_s for r in records(pump, "bolus_complete"))
    assert done == pytest.approx([60.0, 60.0 + H])  # the extended part starts after the now part
    kinds = pump.delivered_by_kind()
    assert kinds[DeliveryKind.BOLUS] + kinds[DeliveryKind.EXTENDED] == pytest.approx(3.0)


def test_a_dual_split_is_rounded_down_to_a_pulse_now() -> None:
    grant = started().bolus(1.05, "dual", extended_minutes=30, split=0.5)
    assert (grant.now_units, grant.extended_units) == (0.5, 0.55)


def test_a_normal_bolus_pre_empts_an_extended_one_which_then_resumes() -> None:
    pump = started()
    pump.bolus(1.0, "extended", extended_minutes=60)
    pump.advance_to(30 * 60)
    pump.bolus(3.0)  # 120 s at 1.5 U/min
    pump.advance_to(3 * H)
    ends = {r.data["kind"]: r.t_s for r in records(pump, "bolus_complete")}
    assert ends["bolus"] == pytest.approx(30 * 60 + 120)
    assert ends["extended"] == pytest.approx(H + 120)
    kinds = pump.delivered_by_kind()
    assert kinds[DeliveryKind.EXTENDED] == pytest.approx(1.0)
    assert kinds[DeliveryKind.BOLUS] == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ((10.05,), {}, "units"),  # above max bolus 10 U
        ((0.07,), {}, "units"),  # not a whole number of pulses
        ((0.0,), {}, "units"),
        ((float("nan"),), {}, "units"),
        ((1.0, "square"), {}, "kind"),
        ((1.0, "normal"), {"extended_minutes": 30}, "kind"),
        ((1.0, "extended"), {}, "extended_minutes"),
        ((1.0, "extended"), {"extended_minutes": 5}, "extended_minutes"),
        ((1.0, "extended"), {"extended_minutes": 30, "split": 0.5}, "split"),
        ((1.0, "dual"), {"extended_minutes": 30}, "split"),
        ((1.0, "dual"), {"extended_minutes": 30, "split": 1.0}, "split"),
    ],
)
def test_bad_boluses_are_refused_naming_the_field(
    args: tuple[Any, ...], kwargs: dict[str, Any], field: str
) -> None:
    pump = started()
    with pytest.raises(InputError) as err:
        pump.bolus(*args, **kwargs)
    assert err.value.field == field
    assert pump.boluses == []
    assert not records(pump, "bolus_started")


def test_a_bolus_over_max_iob_is_refused_and_says_how_much_is_possible() -> None:
    pump = started(make_settings(max_iob_units=6.0))
    pump.bolus(4.0)
    pump.advance_to(300)
    with pytest.raises(InputError) as err:
        pump.bolus(2.5)
    assert err.value.field == "units"
    assert "max IOB" in err.value.rule
    room = pump.bolus_room_units()
    assert room == floor_to(6.0 - pump.committed_iob(), PULSE)
    assert f"at most {room:g} U" in err.value.rule
    pump.bolus(room)  # exactly the room is allowed
    assert pump.iob() <= 6.0 + 1e-9


def test_boluses_refused_by_state_change_nothing() -> None:
    pump = started(reservoir_units=5.0, reservoir_low_units=1.0)
    with pytest.raises(InputError, match="reservoir"):
        pump.bolus(5.05)
    pump.bolus(1.0)
    with pytest.raises(CommandRejected):
        pump.bolus(1.0)  # during a normal bolus
    pump.advance_to(120)
    pump.bolus(0.5, "extended", extended_minutes=60)
    with pytest.raises(CommandRejected):
        pump.bolus(0.5, "extended", extended_minutes=60)  # one extended bolus at a time
    pump.suspend()
    before = (len(pump.history()), pump.iob(), len(pump.boluses))
    with pytest.raises(CommandRejected):
        pump.bolus(0.5)
    assert (len(pump.history()), pump.iob(), len(pump.boluses)) == before


def test_cancel_bolus_stops_the_rest_and_counts_only_what_was_given() -> None:
    pump = started()
    pump.bolus(2.0, "dual", extended_minutes=60, split=0.5)
    pump.advance_to(20)  # 0.5 of the 1 U now part
    pump.cancel_bolus()
    assert pump.channel.state is State.RUNNING
    assert {r.data["kind"] for r in records(pump, "bolus_cancelled")} == {"bolus", "extended"}
    assert pump.iob() == pytest.approx(iob(0, 0.5, 5, 75), abs=0.01)
    with pytest.raises(InputError):
        pump.iob(pump.now + 60)  # IOB is not predicted here


def test_committed_iob_ignores_a_basal_deficit_but_counts_boluses() -> None:
    pump = started()
    pump.bolus(2.0)
    pump.advance_to(H)
    pump.suspend()
    pump.advance_to(3 * H)
    pump.resume()
    bolus_part = iob_total([Delivery(0, 80, 2.0, DeliveryKind.BOLUS)], 3 * H, 5, 75)
    assert pump.iob() < bolus_part  # net: less the missed basal
    assert pump.committed_iob() == pytest.approx(bolus_part, rel=1e-6)
    assert pump.bolus_room_units() == floor_to(15.0 - bolus_part, PULSE)
    recommendation = pump.recommend(250, 30)
    assert recommendation.iob_units == max(pump.iob(), 0.0)
    assert recommendation.units == floor_to(3 + 130 / 50 - max(pump.iob(), 0.0), PULSE)


def test_commands_need_a_started_pump() -> None:
    pump = InsulinPump()
    for action in (
        lambda: pump.bolus(1.0),
        lambda: pump.temp_basal(minutes=30, percent=50),
        pump.suspend,
        pump.resume,
        pump.iob,
        pump.cancel_temp_basal,
    ):
        with pytest.raises(CommandRejected):
            action()


def test_a_pump_refuses_settings_for_other_hardware_and_a_second_start() -> None:
    pump = InsulinPump()
    with pytest.raises(InputError) as err:
        pump.start(make_settings(units_per_ml=200.0), PumpClock())
    assert err.value.field == "units_per_ml"
    pump.start(make_settings(), PumpClock())
    with pytest.raises(CommandRejected):
        pump.start(make_settings(), PumpClock())
    with pytest.raises(InputErrors):
        InsulinPump(reservoir_units=0.0, bolus_rate_units_min=10.0)


# ---- temp basal ------------------------------------------------------------------------------


def test_a_percent_temp_basal_expires_back_to_the_schedule() -> None:
    pump = started()
    pump.advance_to(H)
    assert pump.temp_basal(minutes=60, percent=150) == pytest.approx(1.2)
    assert pump.rate_units_h == pytest.approx(1.2)
    pump.advance_to(2 * H)
    assert pump.rate_units_h == pytest.approx(0.8)  # back on the schedule by itself
    assert [r.t_s for r in records(pump, "temp_basal_ended")] == pytest.approx([2 * H])
    assert pump.delivered_by_kind()[DeliveryKind.TEMP_BASAL] == pytest.approx(1.2)
    pump.advance_to(3 * H)
    assert abs(pump.delivered_units - (0.8 * 2 + 1.2)) < PULSE
    # 0.4 U above the schedule is on board, decaying
    assert 0.0 < pump.iob() < 0.4


def test_a_percent_temp_is_rounded_down_to_the_basal_increment() -> None:
    pump = started()
    assert pump.temp_basal(minutes=30, percent=133) == 1.05  # 0.8 x 1.33 = 1.064 U/h
    assert pump.temp_basal(minutes=30, percent=10) == 0.05  # replaces the running temp
    assert len(records(pump, "temp_basal_started")) == 2
    assert len(records(pump, "temp_basal_ended")) == 1


def test_an_absolute_temp_basal_and_cancelling_it() -> None:
    pump = started()
    assert pump.temp_basal(minutes=120, units_h=2.0) == 2.0
    pump.advance_to(30 * 60)
    pump.cancel_temp_basal()
    assert pump.rate_units_h == pytest.approx(0.8)
    pump.advance_to(H)
    assert abs(pump.delivered_units - (2.0 * 0.5 + 0.8 * 0.5)) < PULSE


@pytest.mark.parametrize(
    ("kwargs", "field", "error"),
    [
        ({"percent": 400}, "percent", InputError),  # 3.2 U/h, above max basal 3
        ({"units_h": 3.05}, "units_h", InputError),
        ({"units_h": 0.07}, "units_h", InputError),  # not a multiple of 0.05 U/h
        ({"units_h": -1.0}, "units_h", InputError),
        ({"percent": 1200}, "percent", InputError),
        ({"percent": 50, "units_h": 1.0}, "temp_basal", InputError),
        ({}, "temp_basal", InputError),
        ({"percent": 0}, "temp_basal", CommandRejected),  # a zero temp: suspend instead
        ({"percent": 50, "minutes": 10}, "minutes", InputError),
        ({"percent": 50, "minutes": 13 * 60}, "minutes", InputError),
    ],
)
def test_bad_temp_basals_are_refused_naming_the_field(
    kwargs: dict[str, Any], field: str, error: type[Exception]
) -> None:
    pump = started()
    kwargs = {"minutes": 60, **kwargs}
    with pytest.raises(error) as err:
        pump.temp_basal(**kwargs)
    assert isinstance(err.value, InputError)
    assert err.value.field == field
    if field in ("percent", "units_h") and "max basal" in err.value.rule:
        assert "3 U/h" in err.value.rule
    assert not records(pump, "temp_basal_started")


def test_a_temp_basal_that_would_pass_max_iob_is_refused() -> None:
    pump = started(make_settings(max_iob_units=4.0))
    pump.bolus(2.0)
    pump.advance_to(300)
    # 3 U/h for 2 h is 4.4 U above the 0.8 U/h schedule: too much with 2 U committed
    with pytest.raises(InputError) as err:
        pump.temp_basal(minutes=120, units_h=3.0)
    assert err.value.field == "units_h"
    assert "max IOB" in err.value.rule
    pump.temp_basal(minutes=60, units_h=2.0)  # 1.2 U above: fits
    # the running temp's future excess counts against a bolus
    assert pump.committed_iob() == pytest.approx(pump.iob() + 1.2, abs=0.01)
    with pytest.raises(InputError):
        pump.bolus(1.0)


def test_net_iob_stays_within_max_iob_through_a_high_temp_basal() -> None:
    # Bolus insulin close to max IOB, then a high temp: its insulin above the schedule
    # arrives later, so checking only the IOB of the moment would let the net IOB pass
    # max IOB half an hour on.
    pump = started(make_settings(basal=[("00:00", 0.5)], max_iob_units=3.0))
    pump.bolus(2.2, "extended", extended_minutes=15)
    pump.advance(120)
    with pytest.raises(InputError) as err:
        pump.temp_basal(minutes=40, percent=400)  # 2 U/h: 1 U above the schedule
    assert err.value.field == "percent" and err.value.value == 400
    assert pump.temp_basal(minutes=25, percent=400) == 2.0  # 0.625 U above: fits
    peak = 0.0
    for _ in range(36):
        pump.advance(300)
        peak = max(peak, pump.iob())
    assert 2.0 < peak <= 3.0


def test_a_temp_basal_is_refused_during_a_normal_bolus_and_while_suspended() -> None:
    pump = started()
    pump.bolus(1.0)
    with pytest.raises(CommandRejected):
        pump.temp_basal(minutes=30, percent=50)
    pump.advance_to(60)
    pump.suspend()
    with pytest.raises(CommandRejected):
        pump.temp_basal(minutes=30, percent=50)


# ---- suspend and resume ----------------------------------------------------------------------


def test_suspend_cancels_boluses_and_the_temp_basal_and_resume_does_not_bring_them_back() -> None:
    pump = started()
    pump.temp_basal(minutes=120, percent=200)
    pump.bolus(2.0, "extended", extended_minutes=60)
    pump.bolus(3.0)
    pump.advance_to(60)  # 1.5 of the 3 U given
    pump.suspend()
    assert pump.suspended
    assert pump.rate_units_h == 0.0
    cancelled = records(pump, "bolus_cancelled")
    assert {r.data["kind"] for r in cancelled} == {"bolus", "extended"}
    assert len(records(pump, "temp_basal_ended")) == 1
    assert records(pump, "paused")[-1].t_s == 60.0
    given_at_suspend = pump.delivered_units
    pump.advance_to(H)
    assert pump.delivered_units == given_at_suspend  # nothing while suspended
    kinds = pump.delivered_by_kind()
    assert kinds[DeliveryKind.BOLUS] == pytest.approx(1.5)  # delivered < requested
    assert kinds[DeliveryKind.EXTENDED] == 0.0
    pump.resume()
    assert pump.rate_units_h == pytest.approx(0.8)  # schedule, no temp, no bolus
    assert not pump.channel.overlays
    pump.advance_to(2 * H)
    assert pump.delivered_by_kind()[DeliveryKind.BOLUS] == pytest.approx(1.5)


def test_a_long_suspension_raises_the_suspend_reminder() -> None:
    pump = started(suspend_reminder_s=1800.0)
    pump.advance_to(H)
    pump.suspend()
    pump.advance_to(H + 1799)
    assert not records(pump, "alarm")
    pump.advance_to(2 * H)
    alarms = records(pump, "alarm")
    assert alarms[0].t_s == pytest.approx(H + 1800)
    assert alarms[0].data["code"] == "paused_too_long"
    assert alarms[0].data["priority"] == "medium"
    pump.resume()  # the reminder does not block a resume; resuming clears it
    assert records(pump, "alarm_cleared")[-1].data["code"] == "paused_too_long"
    assert pump.channel.state is State.RUNNING


def test_suspend_and_resume_are_refused_in_the_wrong_state() -> None:
    pump = started()
    with pytest.raises(CommandRejected):
        pump.resume()
    pump.suspend()
    with pytest.raises(CommandRejected):
        pump.suspend()


def test_new_settings_can_be_started_while_suspended() -> None:
    pump = started()
    pump.advance_to(H)
    pump.suspend()
    pump.start(make_settings(basal=[("00:00", 1.5)]), PumpClock.at("2026-01-10T00:00:00", "UTC"))
    assert pump.rate_units_h == pytest.approx(1.5)
    assert pump.scheduled_rate_units_h(30 * 60) == 0.8  # the past keeps its own schedule
    pump.advance_to(2 * H)
    assert pump.iob() == pytest.approx(0.0, abs=1e-9)


# ---- reservoir -------------------------------------------------------------------------------


def test_reservoir_low_then_empty_stops_delivery_in_whole_pulses() -> None:
    pump = started(
        make_settings(basal=[("00:00", 1.0)]), reservoir_units=6.0, reservoir_low_units=2.0
    )
    pump.bolus(1.0)
    pump.advance_to(12 * H)
    alarms = [(r.t_s, r.data["code"], r.data["priority"]) for r in records(pump, "alarm")]
    low_at = (6.0 - 1.0 - 2.0) * H  # 3 U of basal after the 1 U bolus leaves 2 U
    empty_at = 5.0 * H
    assert alarms[0][1:] == ("reservoir_low", "low")
    assert alarms[0][0] == pytest.approx(low_at, abs=60)
    assert alarms[1][1:] == ("reservoir_empty", "high")
    assert alarms[1][0] == pytest.approx(empty_at, abs=60)
    assert pump.channel.state is State.ALARM
    assert pump.delivered_units == pytest.approx(6.0)
    assert_whole_pulses(pump.delivered_units)
    with pytest.raises(CommandRejected):
        pump.bolus(0.5)
    with pytest.raises(CommandRejected):
        pump.resume()


# ---- drug library ----------------------------------------------------------------------------


def test_library_check_of_max_basal_and_max_bolus() -> None:
    library = sample_library()
    verdict, override = check_library(make_settings(), library, "adult-icu")
    assert verdict.label == "ok" and override is None
    with pytest.raises(SoftLimitError):
        check_library(make_settings(max_bolus_units=12.0), library, "adult-icu")
    verdict, override = check_library(
        make_settings(max_bolus_units=12.0), library, "adult-icu", override_reason="endocrinology"
    )
    assert verdict.label == "soft" and override is not None
    with pytest.raises(HardLimitError):
        check_library(make_settings(max_bolus_units=20.0), library, "adult-icu")
    with pytest.raises(InputError):
        check_library(make_settings(), library, "adult-icu", drug="glucagon")
    pump = InsulinPump()
    assert (
        pump.start(make_settings(), PumpClock(), library=library, care_area="adult-icu") is not None
    )
    with pytest.raises(InputError):
        InsulinPump().start(make_settings(), PumpClock(), library=library)


# ---- pulses and properties -------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(1.0, 3 * H), min_size=1, max_size=8))
def test_delivery_is_always_whole_pulses_and_never_ahead(steps: list[float]) -> None:
    pump = started()
    pump.bolus(1.35, "extended", extended_minutes=90)
    for dt in steps:
        pump.advance(dt)
        assert_whole_pulses(pump.delivered_units)
        ideal = sum(d.units for d in pump.history())
        assert pump.delivered_units <= ideal + 1e-9
        assert ideal - pump.delivered_units < PULSE


@st.composite
def pump_action(draw: st.DrawFn) -> tuple[Any, ...]:
    """One command or a wait; boluses, temp basals and waits are the most frequent."""
    kind = draw(st.sampled_from(["bolus"] * 4 + ["temp"] * 3 + ["advance"] * 4 + ["other"]))
    if kind == "bolus":
        return (
            "bolus",
            draw(st.integers(1, 140)),  # pulses: 0.05 to 7 U
            draw(st.sampled_from(["normal", "extended", "dual"])),
            draw(st.integers(15, 240)),  # extended minutes
            draw(st.integers(1, 99)),  # dual: percent now
        )
    if kind == "temp":
        minutes = draw(st.integers(15, 300))
        if draw(st.booleans()):
            return ("temp_percent", draw(st.integers(0, 400)), minutes)
        return ("temp_rate", draw(st.integers(1, 55)), minutes)  # x 0.05 U/h
    if kind == "advance":
        return ("advance", draw(st.integers(1, 2 * 3600)))
    return (draw(st.sampled_from(["suspend", "resume", "cancel_temp"])),)


ACTIONS = pump_action()


def _apply(pump: InsulinPump, action: tuple[Any, ...]) -> None:
    name = action[0]
    if name == "bolus":
        _, n, kind, minutes, split = action
        if kind == "normal":
            pump.bolus(round(n * PULSE, 10))
        elif kind == "extended":
            pump.bolus(round(n * PULSE, 10), kind, extended_minutes=minutes)
        else:
            pump.bolus(round(n * PULSE, 10), kind, extended_minutes=minutes, split=split / 100)
    elif name == "temp_percent":
        pump.temp_basal(minutes=action[2], percent=action[1])
    elif name == "temp_rate":
        pump.temp_basal(minutes=action[2], units_h=round(action[1] * PULSE, 10))
    elif name == "suspend":
        pump.suspend()
    elif name == "resume":
        pump.resume()
    elif name == "cancel_temp":
        pump.cancel_temp_basal()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(ACTIONS, max_size=20))
def test_random_use_never_passes_max_iob_and_every_stop_is_recorded(
    actions: list[tuple[Any, ...]],
) -> None:
    s = make_settings(
        basal=[("00:00", 0.5), ("04:00", 1.2), ("09:00", 0.8)],
        max_basal_units_h=2.5,
        max_bolus_units=5.0,
        max_iob_units=3.0,
    )
    pump = started(s, reservoir_units=300.0)
    tol = 1e-6
    granted_bolus = 0.0
    suspends: list[float] = []

    def check() -> None:
        on_board = pump.iob()
        assert on_board <= s.max_iob_units + tol
        assert pump.committed_iob() >= on_board - 1e-9
        assert_whole_pulses(pump.delivered_units)

    for action in actions:
        if action[0] == "advance":
            end = pump.now + action[1]
            while pump.now < end:  # look at IOB every 10 min on the way
                pump.advance_to(min(end, pump.now + 600))
                check()
            continue
        before = (len(pump.history()), pump.channel.state, len(pump.boluses), pump.iob())
        try:
            _apply(pump, action)
        except InputError:  # CommandRejected included: the refusal changed nothing
            after = (len(pump.history()), pump.channel.state, len(pump.boluses), pump.iob())
            assert after[:3] == before[:3]
            assert after[3] == pytest.approx(before[3], abs=1e-12)
        else:
            if action[0] == "bolus":
                granted_bolus += pump.boluses[-1].units
            if action[0] == "suspend":
                suspends.append(pump.now)
        check()
    pump.advance(6 * H)
    check()
    kinds = pump.delivered_by_kind()
    assert kinds[DeliveryKind.BOLUS] + kinds[DeliveryKind.EXTENDED] <= granted_bolus + 1e-9
    assert pump.delivered_units <= sum(d.units for d in pump.history()) + 1e-9
    paused_at = [r.t_s for r in records(pump, "paused")]
    assert all(t in paused_at for t in suspends)  # every suspension has its event
    assert len(paused_at) == len(suspends)
    if pump.channel.state is State.ALARM:
        assert any(r.data["code"] == "reservoir_empty" for r in records(pump, "alarm"))
    volumes = {r.data["id"]: r.data["volume_ml"] for r in records(pump, "bolus_started")}
    for r in records(pump, "bolus_cancelled"):  # a stopped bolus says what was left undelivered
        total = r.data["delivered_ml"] + r.data["remaining_ml"]
        assert total == pytest.approx(volumes[r.data["id"]])
