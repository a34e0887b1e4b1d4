"""The pump engine against RELIABILITY.md and HOSPITAL_REFERENCE.md §3.

RELIABILITY rows B-11 to B-17, F-01, F-08, F-09 and F-15 to F-18 (each test names its row),
then one test per row of the HOSPITAL_REFERENCE §3 requirement table that the engine
implements (``test_hosp_<row>``). The stateful model test is tests/pump/test_properties.py;
the kill -9 loop is tests/pump/test_fault_loop.py.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.errors import InputError
from openinfusion.library import HardLimitError, SoftLimitError, sample_library
from openinfusion.patient import Patient
from openinfusion.pump import therapies as T
from openinfusion.pump.battery import Battery
from openinfusion.pump.channel import ChannelSettings, CommandRejected, State
from openinfusion.pump.clock import PumpClock
from openinfusion.pump.codes import Alarm, Event, Priority
from openinfusion.pump.device import Device
from openinfusion.pump.journal import SqliteJournal, recover
from openinfusion.pump.mechanics import Mechanism, lvp, pca_pump, syringe
from openinfusion.pump.plan import (
    DrugInfo,
    Envelope,
    OverlayKind,
    PcaSettings,
    Plan,
    Step,
    StepKind,
)

HEPARIN = DrugInfo("heparin", 100.0, "units")
MORPHINE = DrugInfo("morphine", 1.0, "mg")


def basic(rate: float = 10.0, vtbi: float | None = None, kvo: bool = True) -> Plan:
    return Plan("continuous", [Step(StepKind.CONTINUOUS, rate)], vtbi_ml=vtbi, kvo_at_end=kvo)


def heparin(rate: float = 10.0, limit: float = 2500.0, vtbi: float | None = None) -> Plan:
    return Plan(
        "continuous",
        [Step(StepKind.CONTINUOUS, rate)],
        vtbi_ml=vtbi,
        drug=HEPARIN,
        envelope=Envelope(
            max_rate_ml_h=30.0, max_bolus_ml=3.0, window_s=3600.0, window_max_amount=limit
        ),
    )


def pca(basal: float = 1.0, lockout_s: float = 600.0, limit_1h: float = 5.0) -> Plan:
    return Plan(
        "pca",
        [Step(StepKind.CONTINUOUS, basal)],
        kvo_at_end=False,
        drug=MORPHINE,
        envelope=Envelope(max_rate_ml_h=4.0, max_bolus_ml=3.0),
        pca=PcaSettings(demand_ml=1.0, lockout_s=lockout_s, limits=((3600.0, limit_1h),)),
    )


def running(plan: Plan, mech: Mechanism | None = None, **kwargs: Any) -> Device:
    device = Device([mech or lvp()], **kwargs)
    device.program(0, plan)
    device.start(0)
    return device


def alarm_times(device: Device, code: str) -> list[float]:
    """When ``code`` was raised (escalations of an alarm already raised are left out)."""
    return [
        r.t_s
        for r in device.records
        if r.kind == "alarm" and r.data["code"] == code and not r.data.get("escalated")
    ]


def fingerprint(device: Device) -> list[dict[str, Any]]:
    return [ch.status() for ch in device.channels]


# ---- A. Bad input ----------------------------------------------------------------------------

BAD_NUMBERS: list[Any] = [
    0,
    0.0,
    -0.0,
    -1.0,
    -1e-300,
    5e-324,
    float("inf"),
    float("-inf"),
    float("nan"),
    sys.maxsize,
    10**400,
    1e308,
    Decimal("NaN"),
    Decimal("sNaN"),
    Decimal("Infinity"),
    Decimal("1e400"),
    Decimal("-5"),
    "10",
    "",
    None,
    True,
    [10.0],
]


@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
def test_b11_out_of_range_numbers_are_rejected_without_state_change(value: Any) -> None:
    """B-11: rate, volume, duration and time over the whole numeric domain (0, negative,
    -0, subnormal, inf, NaN, sys.maxsize, Decimal edge cases, strings): a typed error,
    nothing changed, the pump keeps running; never a value clamped into a dose."""
    device = running(heparin(rate=10.0))
    device.advance_to(60.0)
    before = fingerprint(device)
    commands = [
        lambda: device.titrate(0, value),
        lambda: device.bolus(0, value, 300.0),
        lambda: device.bolus(0, 1.0, value),
        lambda: device.secondary(0, value, 50.0),
        lambda: device.secondary(0, 10.0, value),
        lambda: device.temp_rate(0, value, 600.0),
        lambda: device.temp_rate(0, 5.0, value),
        lambda: device.advance_to(value),
    ]
    for command in commands:
        with pytest.raises(InputError):
            command()
        assert fingerprint(device) == before
    device.advance_to(120.0)
    assert device.channels[0].state is State.RUNNING
    assert device.channels[0].rate_ml_h == 10.0


@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
def test_b11_bad_plans_never_reach_the_channel(value: Any) -> None:
    """B-11: a plan with such a rate, volume or duration is refused when built or when
    programmed (faster or slower than the mechanism can run); the channel stays idle."""
    device = Device([lvp()])
    for build in (
        lambda: Plan("c", [Step(StepKind.CONTINUOUS, value)]),
        lambda: Plan("c", [Step(StepKind.CONTINUOUS, 10.0, volume_ml=value)]),
        lambda: Plan("c", [Step(StepKind.CONTINUOUS, 10.0, duration_s=value)]),
        lambda: Plan("c", [Step(StepKind.CONTINUOUS, 10.0)], vtbi_ml=value),
    ):
        try:
            plan = build()
        except InputError:
            continue
        try:
            device.program(0, plan)
        except InputError:
            continue
        # accepted: then it is a sane value (a zero-rate step, e.g. a wait) and exact
        step = plan.steps[0]
        assert step.rate_ml_h == 0 or lvp().min_rate_ml_h <= step.rate_ml_h <= 999.0
        device.stop(0)
    assert device.channels[0].state is State.IDLE


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**6), 10**6),
        st.decimals(allow_nan=True, allow_infinity=True),
        st.text(max_size=4),
    )
)
def test_b11_titration_is_exact_or_refused(value: Any) -> None:
    """B-11 property: a titration is applied exactly as given, or refused with a typed
    error and no change; never silently clamped to a limit."""
    device = running(heparin(rate=10.0))
    try:
        device.titrate(0, value)
    except InputError:
        assert device.channels[0].rate_ml_h == 10.0
        return
    assert device.channels[0].rate_ml_h == float(value)
    assert 0.1 <= float(value) <= 30.0  # within the mechanism and the hard limit


def test_b11_soft_limit_needs_an_audited_reason_hard_limit_refuses() -> None:
    """B-11: above the soft limit, an explicit override with a reason, kept in the
    journal's command record; above the hard limit, nothing is programmed."""
    lib = sample_library()
    ctx = T.Context(lvp(), Patient.from_text(weight="70 kg"), lib, lib.care_area("Adult ICU"))
    kw = {"drug": "dopamine", "concentration": "400 mg/250 mL"}
    with pytest.raises(SoftLimitError):
        T.continuous(ctx, dose="25 mcg/kg/min", **kw)
    with pytest.raises(HardLimitError):
        T.continuous(ctx, dose="60 mcg/kg/min", override_reason="no", **kw)
    programmed = T.continuous(ctx, dose="25 mcg/kg/min", override_reason="refractory shock", **kw)
    device = Device([lvp()])
    device.program(0, programmed.plan, **programmed.journal_info())
    (command,) = [r for r in device.records if r.kind == "command"]
    assert command.data["override_reason"] == "refractory shock"
    assert command.data["verdict"] == "soft"


def test_b12_tenfold_and_wrong_field_caught_by_the_engine() -> None:
    """B-12: a decimal shift (26.25 -> 262.5 mL/h) or a dose typed as a bolus volume is
    refused by the engine's own hard limits even if it got past the screens; the
    confirmation summary shows the computed rate and dose."""
    lib = sample_library()
    ctx = T.Context(lvp(), Patient.from_text(weight="70 kg"), lib, lib.care_area("Adult ICU"))
    programmed = T.continuous(
        ctx, drug="dopamine", concentration="400 mg/250 mL", dose="10 mcg/kg/min"
    )
    assert programmed.summary["rate_ml_h"] == pytest.approx(26.25)
    assert programmed.summary["dose_unit"] == "mcg/kg/min"
    device = Device([lvp()])
    device.program(0, programmed.plan)
    device.start(0)
    with pytest.raises(CommandRejected, match="hard limit"):
        device.titrate(0, 262.5)
    device.titrate(0, 26.25 * 2)
    hep = running(heparin(rate=10.0))
    with pytest.raises(CommandRejected, match="hard limit"):
        hep.bolus(0, 30.0, 300.0)  # 3 mL typed as 30
    assert [r.kind for r in hep.records].count("rejected") == 1


def test_b13_weight_units_and_missing_weight() -> None:
    """B-13: pounds are converted only when said; a bare number, an impossible weight or
    a missing weight for a per-kg drug is refused."""
    assert Patient.from_text(weight="154 lb").weight_kg == pytest.approx(69.85, abs=0.01)
    for bad in ("70", "-3 kg", "0 kg", "5000 kg"):
        with pytest.raises(InputError):
            Patient.from_text(weight=bad)
    lib = sample_library()
    ctx = T.Context(lvp(), Patient(), lib, lib.care_area("Adult ICU"))
    with pytest.raises(InputError, match="weight"):
        T.continuous(ctx, drug="dopamine", concentration="400 mg/250 mL", dose="5 mcg/kg/min")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 0.5), min_size=1, max_size=12))
def test_b14_key_bounce_never_doubles_a_dose(bounces: list[float]) -> None:
    """B-14: repeated presses within a bounce window (and start/bolus pressed twice)
    register once: one demand granted per lockout, one bolus, one start."""
    device = running(pca(basal=1.0, lockout_s=360.0, limit_1h=50.0), pca_pump())
    with pytest.raises(CommandRejected):
        device.start(0)
    device.advance_to(10.0)
    for gap in bounces:
        device.advance_to(device.t_s + gap)
        device.demand(0)
    grants = [r for r in device.records if r.kind == "pca_granted"]
    assert len(grants) == 1
    device.advance_to(device.t_s + 400.0)
    device.bolus(0, 1.0, 150.0)
    with pytest.raises(CommandRejected):
        device.bolus(0, 1.0, 150.0)
    assert [r.kind for r in device.records].count("bolus_started") == 2  # demand + bolus


def test_b15_interrupted_bolus_is_never_resumed() -> None:
    """B-15: bolus -> interrupt -> prime (new syringe) -> resume: the rest of the bolus is
    not given by itself; the basal goes on."""
    device = running(heparin(rate=10.0), syringe(50))
    device.advance_to(600.0)
    device.bolus(0, 2.0, 120.0)  # 60 s
    device.advance_to(630.0)
    device.pause(0)
    ch = device.channels[0]
    (cancel,) = [r for r in device.records if r.kind == "bolus_cancelled"]
    assert cancel.data["delivered_ml"] == pytest.approx(1.0)
    device._command(  # prime: a new syringe is loaded and the line refilled
        "refill", 0, {}, lambda: ch.refill(device.t_s, ch.reservoir_ml or 0.0, 0.0)
    )
    device.resume(0)
    before = ch.program_ml
    device.advance_to(device.t_s + 600.0)
    assert not ch.overlays
    assert ch.program_ml - before == pytest.approx(10.0 * 600.0 / 3600.0)


def test_b15_bolus_on_bolus_in_kvo_or_delay_is_refused_and_rate_change_mid_bolus_is_exact() -> None:
    """B-15: no bolus on a bolus, in KVO or during a delayed start; a rate change in the
    middle of a bolus gives exactly the model: basal before + basal after + bolus."""
    device = running(heparin(rate=10.0))
    device.bolus(0, 2.0, 120.0)
    with pytest.raises(CommandRejected):
        device.bolus(0, 1.0, 120.0)
    device.advance_to(30.0)
    device.titrate(0, 20.0)
    device.advance_to(600.0)
    ch = device.channels[0]
    model = 10.0 * 30.0 / 3600.0 + 20.0 * 570.0 / 3600.0 + 2.0
    assert ch.program_ml == pytest.approx(model, rel=1e-12)
    kvo = running(basic(rate=60.0, vtbi=1.0))
    kvo.advance_to(120.0)
    assert kvo.channels[0].state is State.KVO
    with pytest.raises(CommandRejected):
        kvo.bolus(0, 1.0, 120.0)
    delayed = Device([lvp()])
    delayed.program(
        0,
        Plan("c", [Step(StepKind.DELAY, 0.0, duration_s=600.0), Step(StepKind.CONTINUOUS, 5.0)]),
    )
    delayed.start(0)
    with pytest.raises(CommandRejected):
        delayed.bolus(0, 1.0, 120.0)


def test_b16_cumulative_limit_across_channels() -> None:
    """B-16: two channels with the same drug share one cumulative limit on the pump."""
    device = Device([lvp(), lvp()])
    for ch in (0, 1):
        device.program(ch, heparin(rate=15.0, limit=2500.0))
        device.start(ch)
    device.advance_to(7200.0)
    # 2 x 1500 units/h: the shared 2500 units are reached at 50 min, both channels stop
    assert alarm_times(device, "dose_limit") == [3000.0, 3000.0]
    total = sum(ch.drug_amount for ch in device.channels)
    assert total == pytest.approx(2500.0, rel=1e-9)


def test_b16_cumulative_limit_survives_stop_and_reprogramming() -> None:
    """B-16: stopping and programming the drug again does not reset what was given."""
    device = running(heparin(rate=20.0, limit=1500.0))
    device.advance_to(3000.0)
    assert device.channels[0].state is State.PAUSED  # 1500 units at 45 min
    device.stop(0)
    device.program(0, heparin(rate=20.0, limit=1500.0))
    device.start(0)
    device.advance_to(3001.0)
    assert device.channels[0].state is State.PAUSED
    assert device.channels[0].drug_amount == 0.0
    assert alarm_times(device, "dose_limit")[-1] == 3000.0


def test_b16_many_small_boluses_stay_within_the_window() -> None:
    """B-16: a bolus every two minutes on top of the infusion: the hourly amount never
    passes the limit; boluses are stopped or refused at the limit."""
    device = running(heparin(rate=10.0, limit=2500.0))
    amounts: list[tuple[float, float]] = [(0.0, 0.0)]
    for k in range(1, 91):
        device.advance_to(120.0 * k)
        with contextlib.suppress(CommandRejected):
            device.bolus(0, 1.0, 300.0)
        amounts.append((device.t_s, device.channels[0].drug_amount))
    device.advance_to(120.0 * 91)
    amounts.append((device.t_s, device.channels[0].drug_amount))
    # samples are 2 min apart: the hourly amount between samples 30 apart is an upper
    # bound of what any 58-min window held
    for (t0, a0), (t1, a1) in zip(amounts, amounts[29:], strict=False):
        assert a1 - a0 <= 2500.0 * (1 + 1e-9), (t0, t1, a1 - a0)
    assert alarm_times(device, "dose_limit")


@pytest.mark.parametrize("when", [float("nan"), float("inf"), -1.0, "600", None])
def test_b17_invalid_or_past_time_never_delivers_more(when: Any) -> None:
    """B-17: a time that is missing, not a number, infinite or in the past is refused and
    gives no delivery; time never goes back."""
    device = running(basic(rate=10.0))
    device.advance_to(600.0)
    before = fingerprint(device)
    with pytest.raises(InputError):
        device.advance_to(when if not isinstance(when, float) or when >= 0 else 599.0)
    assert fingerprint(device) == before


def test_b17_impossible_local_times_are_resolved_once() -> None:
    """B-17/F-09: a local time in the spring-forward gap takes effect at the end of the
    gap, once; a start time without a zone gets the pump's zone, never guessed UTC."""
    clock = PumpClock.at("2026-03-29T00:00:00", "Europe/Paris")
    hits = clock.local_boundaries(0.0, 86400.0, [time(2, 30)])
    assert len(hits) == 1
    assert clock.local(hits[0][0]).strftime("%H:%M") == "03:00"
    assert clock.start_utc == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    with pytest.raises(InputError):
        PumpClock(datetime(2026, 1, 1))


# ---- B. Faults -------------------------------------------------------------------------------


def loading_heparin() -> Plan:
    return Plan(
        "continuous",
        [Step(StepKind.LOADING, 300.0, volume_ml=5.0), Step(StepKind.CONTINUOUS, 12.0)],
        vtbi_ml=40.0,
        drug=HEPARIN,
        envelope=Envelope(max_rate_ml_h=30.0, window_s=3600.0, window_max_amount=5000.0),
    )


def test_f01_restart_is_fail_safe_and_needs_the_clinician(tmp_path: Path) -> None:
    """F-01: the process dies during the loading dose (here: the device object is simply
    abandoned; tests/pump/test_fault_loop.py kills real processes). On restart the state
    comes from the journal, the channel is stopped with a high-priority alarm, the
    loading dose is not given again, and only the clinician resumes (maintenance rate)."""
    path = tmp_path / "journal.db"
    device = Device([lvp()], journal=SqliteJournal(path), checkpoint_s=30.0)
    device.program(0, loading_heparin())
    device.start(0)
    device.advance_to(40.0)  # loading: 5 mL at 300 mL/h takes 60 s
    del device
    result = recover(path)
    pump = result.device
    ch = pump.channels[0]
    assert ch.state is State.ALARM and ch.rate_ml_h == 0.0
    (alarm,) = [a for a in pump.board.active(0) if a.alarm is Alarm.CRASH_RECOVERED]
    assert alarm.priority is Priority.HIGH
    assert result.channels[0]["loading_skipped"] is True
    assert result.channels[0]["assumed_ml"] >= 40.0 * 300.0 / 3600.0
    pump.advance_to(pump.t_s + 3600.0)
    assert ch.rate_ml_h == 0.0  # no automatic restart
    with pytest.raises(CommandRejected):
        pump.resume(0)
    pump.confirm_recovery(0)
    pump.resume(0)
    assert ch.rate_ml_h == 12.0  # maintenance, never the loading rate
    records = SqliteJournal(path).records()
    steps = [r["data"]["kind"] for r in records if r["kind"] == "step_started"]
    assert steps.count("loading") == 1


@pytest.mark.parametrize(
    "jumps", [[3600.0], [-3600.0], [86400.0], [-86400.0], [3600.0, -7200.0, 1.0]]
)
def test_f08_wall_clock_jumps_change_no_delivery(jumps: list[float]) -> None:
    """F-08: stepping the wall clock (+-1 h, +-1 day, NTP steps) changes neither the volume
    delivered nor the time remaining; each jump is journaled at its monotonic time."""
    reference = running(basic(rate=10.0, vtbi=50.0))
    jumped = running(basic(rate=10.0, vtbi=50.0), clock=PumpClock())
    for k, offset in enumerate(jumps, start=1):
        for device in (reference, jumped):
            device.advance_to(600.0 * k)
        jumped.clock_jump(offset, reason="NTP step")
    for device in (reference, jumped):
        device.advance_to(4000.0)
    a, b = reference.channels[0], jumped.channels[0]
    assert (b.ideal_ml, b.program_ml, b.time_remaining_s()) == (
        a.ideal_ml,
        a.program_ml,
        a.time_remaining_s(),
    )
    records = [r for r in jumped.records if r.kind == Event.CLOCK_JUMP.value]
    assert [(r.t_s, r.data["offset_s"]) for r in records] == [
        (600.0 * k, o) for k, o in enumerate(jumps, start=1)
    ]
    assert jumped.clock is not None
    assert jumped.clock.utc(4000.0) - PumpClock().utc(4000.0) == timedelta(seconds=sum(jumps))


@pytest.mark.parametrize(
    ("zone", "spring", "fall"),
    [
        ("Europe/Paris", "2026-03-28T12:00:00", "2026-10-24T12:00:00"),
        ("America/New_York", "2026-03-07T12:00:00", "2026-10-31T12:00:00"),
        ("Australia/Sydney", "2026-10-03T12:00:00", "2026-04-04T12:00:00"),
    ],
)
def test_f09_dst_transitions_neither_skip_nor_double_a_scheduled_dose(
    zone: str, spring: str, fall: str
) -> None:
    """F-09: schedules across spring-forward and fall-back, including times inside the
    missing hour and the repeated hour: exactly one boundary per local day for each time;
    continuous delivery over the change is exactly rate x elapsed time."""
    times = [time(0, 0), time(1, 30), time(2, 0), time(2, 30), time(3, 0), time(12, 0)]
    for start in (spring, fall):
        clock = PumpClock.at(start, zone)
        first = clock.local(0.0).date()
        full_days = {first + timedelta(days=k) for k in (1, 2, 3)}
        hits = clock.local_boundaries(0.0, 5 * 86400.0, times)
        for index in range(len(times)):
            own = [t for t, i in hits if i == index and clock.local(t).date() in full_days]
            # one per local day, DST day included: nothing skipped, nothing doubled
            assert sorted(clock.local(t).date() for t in own) == sorted(full_days), (
                zone,
                start,
                times[index],
            )
            gaps = [b - a for a, b in itertools.pairwise(own)]
            assert all(22 * 3600 <= g <= 26 * 3600 for g in gaps), gaps
    device = running(basic(rate=5.0), clock=PumpClock.at(spring, zone))
    device.advance_to(2 * 86400.0)
    assert device.channels[0].program_ml == pytest.approx(5.0 * 48.0, rel=1e-12)


@pytest.mark.parametrize("mech_name", ["syringe50", "lvp"])
@pytest.mark.parametrize("limit", [300.0, 525.0, 1000.0])
@pytest.mark.parametrize("rate", [1.0, 25.0])
def test_f15_downstream_occlusion(mech_name: str, limit: float, rate: float) -> None:
    """F-15 (IEC 60601-2-24 occlusion test): pressure ramp at a low and an intermediate
    rate for each threshold: HIGH alarm when the pressure reaches the threshold (time to
    alarm = the line compliance filled at that rate: the declared value), flow stopped at
    once, back-off run, post-occlusion bolus <= 0.5 mL (declared, Open PCA R7.2)."""
    mech = syringe(50) if mech_name == "syringe50" else lvp()
    device = running(basic(rate=rate), mech, settings=[ChannelSettings(occlusion_limit_mmhg=limit)])
    occluded_at = 0.2 / rate * 3600.0 + 60.0  # start-up slack taken up, syringe still full
    device.advance_to(occluded_at)
    device.inject(0, "occlusion")
    device.advance_to(occluded_at + 48 * 3600.0)
    ch = device.channels[0]
    p_flowing = mech.patient_pressure_mmhg + rate / 3600.0 * mech.resistance_mmhg_s_per_ml
    stored = (limit - p_flowing) * mech.compliance_ml_per_mmhg
    declared_s = stored / (rate / 3600.0)
    (alarm_s,) = alarm_times(device, "occlusion_downstream")
    assert alarm_s - occluded_at == pytest.approx(declared_s, rel=1e-9)
    (alarm,) = device.board.active(0)
    assert alarm.priority is Priority.HIGH and ch.state is State.ALARM
    assert ch.ideal_ml == pytest.approx(rate * alarm_s / 3600.0, rel=1e-12)  # stopped at once
    (backoff,) = [r for r in device.records if r.kind == "backoff"]
    assert backoff.t_s == alarm_s and backoff.data["volume_ml"] > 0
    device.inject(0, "clear_occlusion")
    (released,) = [r for r in device.records if r.kind == "occlusion_released"]
    assert released.data["bolus_ml"] <= 0.5 + 1e-12
    assert released.data["bolus_ml"] == pytest.approx(stored - backoff.data["volume_ml"])


@pytest.mark.parametrize("fault", ["upstream_occlusion", "air", "empty"])
def test_f16_upstream_occlusion_empty_container_or_air_stops(fault: str) -> None:
    """F-16: upstream occlusion, an empty container or air: HIGH alarm and stop at once
    (the upstream occlusion missed in the Colleague recall is covered)."""
    device = running(basic(rate=30.0), syringe(10) if fault == "empty" else lvp())
    device.advance_to(300.0)
    if fault == "empty":
        device.advance_to(4 * 3600.0)  # the 10 mL syringe runs out at 20 min
        code, at = "reservoir_empty", 1200.0
    else:
        device.inject(0, fault, **({"volume_ul": 300.0} if fault == "air" else {}))
        code, at = ("occlusion_upstream" if fault != "air" else "air_in_line"), 300.0
    ch = device.channels[0]
    assert alarm_times(device, code) == [pytest.approx(at)]
    assert ch.state is State.ALARM and ch.rate_ml_h == 0.0
    assert Alarm[code.upper()].priority is Priority.HIGH
    delivered = ch.ideal_ml
    device.advance_to(device.t_s + 3600.0)
    assert ch.ideal_ml == delivered


def test_f17_stuck_pressure_sensor_is_caught_by_plausibility() -> None:
    """F-17: a frozen pressure reading is found within the 30-s plausibility window:
    FAIL-SAFE with a high-priority technical alarm; it latches until acknowledged."""
    device = running(basic(rate=20.0))
    device.advance_to(600.0)
    device.inject(0, "sensor_stuck")
    device.advance_to(3600.0)
    assert alarm_times(device, "sensor_fault") == [630.0]
    assert Alarm.SENSOR_FAULT.value.technical
    ch = device.channels[0]
    assert ch.state is State.ALARM and ch.ideal_ml == pytest.approx(20.0 * 630.0 / 3600.0)
    device.inject(0, "sensor_ok")
    assert device.board.is_active(Alarm.SENSOR_FAULT, 0)  # latched
    device.acknowledge(0, Alarm.SENSOR_FAULT)
    device.resume(0)
    assert ch.state is State.RUNNING


def test_f18_battery_fast_discharge() -> None:
    """F-18: fast discharge: the low-battery alarm comes well before depletion (declared
    30 min of run time, GIP asks >= 15 min) and keeps sounding (silence expires) until
    the battery is depleted; then a high-priority alarm stops delivery (FAIL-SAFE) and
    the pump powers off. Mains brings it back paused, never delivering by itself."""
    device = running(basic(rate=10.0), battery=Battery())
    device.inject(0, "battery_drain", extra_ma=3000.0)
    low: float | None = None
    silenced_gaps = []
    while device.powered and device.t_s < 4 * 3600.0:
        device.advance_to(device.t_s + 30.0)
        alarm = next((a for a in device.board.active() if a.alarm is Alarm.BATTERY_LOW), None)
        if alarm is not None:
            low = low if low is not None else alarm.raised_s
            if alarm.audible and device.channels[0].state is State.RUNNING:
                silenced_gaps.append(device.t_s)
                device.silence(None, Alarm.BATTERY_LOW)
    assert low is not None
    (depleted,) = [
        r
        for r in device.records
        if r.kind == "alarm" and r.data["code"] == "battery_depleted" and "channel" not in r.data
    ]
    (off,) = [r for r in device.records if r.kind == "power" and r.data.get("state") == "off"]
    assert off.t_s - low >= 15 * 60.0
    assert depleted.t_s < off.t_s and depleted.data["priority"] == "high"
    # re-annunciated after each silence: silenced again every ~2 min until depletion
    assert len(silenced_gaps) >= 5
    assert all(b - a <= 150.0 for a, b in itertools.pairwise(silenced_gaps))
    ch = device.channels[0]
    assert ch.state is State.ALARM and ch.rate_ml_h == 0.0
    with pytest.raises(CommandRejected):
        device.resume(0)
    device.set_mains(True)
    assert device.powered and ch.state is State.PAUSED
    device.advance_to(device.t_s + 600.0)
    assert ch.rate_ml_h == 0.0
    device.resume(0)
    assert ch.state is State.RUNNING


# ---- HOSPITAL_REFERENCE §3 requirement table -------------------------------------------------


def test_hosp_flow() -> None:
    """Flow (GIP 1.1.2-1.1.4): an LVP delivers 0.1-999 mL/h; outside its range a rate is
    refused, never rounded into range."""
    for rate in (0.1, 999.0):
        device = running(basic(rate=rate))
        device.advance_to(3600.0)
        assert device.channels[0].program_ml == pytest.approx(rate)
    for rate in (0.09, 999.1):
        with pytest.raises(CommandRejected, match=r"pump (minimum|maximum)"):
            running(basic(rate=rate))
    device = running(basic(rate=10.0))
    for rate in (0.05, 1000.0):
        with pytest.raises(CommandRejected):
            device.titrate(0, rate)


def test_hosp_accuracy() -> None:
    """Accuracy (GIP 1.2.1: +-5 % over 72 h): the drive delivers whole steps, never more
    than commanded and never a step short over 72 h at 1 mL/h."""
    mech = syringe(50)
    device = running(basic(rate=0.5), mech)
    for hour in range(1, 73):
        device.advance_to(hour * 3600.0)
        ch = device.channels[0]
        assert ch.ideal_ml == pytest.approx(0.5 * hour, rel=1e-12)
        assert 0 <= ch.ideal_ml - ch.pumped_ml < mech.quantum_ml
    assert abs(ch.pumped_ml - 36.0) / 36.0 < 0.05


def test_hosp_over_infusion() -> None:
    """Over-infusion: the engine itself never runs faster than the program or the hard
    limits, whatever it is sent (bolus capped so basal + bolus <= pump maximum)."""
    device = running(heparin(rate=25.0), syringe(10))  # syringe 10 mL: 200 mL/h maximum
    device.bolus(0, 3.0, 190.0)
    assert device.channels[0].rate_ml_h == 200.0
    with pytest.raises(CommandRejected):
        device.titrate(0, 31.0)  # library hard limit 30 mL/h
    with pytest.raises(InputError):
        Plan("c", [Step(StepKind.CONTINUOUS, 31.0)], envelope=Envelope(max_rate_ml_h=30.0))


def test_hosp_under_infusion() -> None:
    """Under-infusion: when flow stops (upstream occlusion, empty reservoir) the alarm is
    immediate, not after 15 min (GIP 1.2.3; PCA R6.4(7))."""
    device = running(basic(rate=10.0))
    device.advance_to(100.0)
    device.inject(0, "upstream_occlusion")
    assert alarm_times(device, "occlusion_upstream") == [100.0]


def test_hosp_kvo() -> None:
    """KVO (GIP 1.1.8; PCA R5.1(5)): at VTBI the pump keeps the vein open at the KVO rate
    (never above the last rate); non-stopping alarms keep KVO running; a stopping alarm
    or STOP ends it."""
    device = running(Plan("c", [Step(StepKind.CONTINUOUS, 60.0)], vtbi_ml=10.0, kvo_rate_ml_h=5.0))
    device.advance_to(900.0)
    ch = device.channels[0]
    assert ch.state is State.KVO and ch.rate_ml_h == 5.0
    assert alarm_times(device, "vtbi_complete") == [600.0]
    assert ch.kvo_ml == pytest.approx(5.0 * 300.0 / 3600.0) and ch.program_ml == 10.0
    slow = running(Plan("c", [Step(StepKind.CONTINUOUS, 2.0)], vtbi_ml=1.0, kvo_rate_ml_h=5.0))
    slow.advance_to(3600.0)
    assert slow.channels[0].rate_ml_h == 2.0  # KVO never faster than the infusion was
    device.inject(0, "air", volume_ul=500.0)
    assert ch.state is State.ALARM and ch.rate_ml_h == 0.0


def test_hosp_vtbi() -> None:
    """VTBI (GIP 1.3): small and large VTBIs complete exactly at the volume."""
    for vtbi, rate in ((0.1, 1.0), (9999.0, 999.0)):
        device = running(basic(rate=rate, vtbi=vtbi, kvo=False), battery=Battery(on_mains=True))
        device.advance_to(vtbi / rate * 3600.0 + 60.0)
        ch = device.channels[0]
        assert ch.state is State.COMPLETE and ch.program_ml == pytest.approx(vtbi, rel=1e-12)
        assert alarm_times(device, "vtbi_complete") == [pytest.approx(vtbi / rate * 3600.0)]


def test_hosp_bolus() -> None:
    """Bolus (GIP 1.4.3-1.4.12): a bolus does not change the basal; basal + bolus <= pump
    maximum; a normal bolus pre-empts a square one, which resumes after; one square bolus
    at a time; no bolus during an alarm; over the maximum: refused."""
    device = running(heparin(rate=10.0))
    ch = device.channels[0]
    device.bolus(0, 1.0, 100.0, OverlayKind.EXTENDED)
    with pytest.raises(CommandRejected, match="one at a time"):
        device.bolus(0, 1.0, 100.0, OverlayKind.EXTENDED)
    device.advance_to(10.0)
    device.bolus(0, 1.0, 300.0)  # pre-empts the square wave
    assert ch.rate_ml_h == 310.0
    device.advance_to(22.0)  # 1 mL at 300 mL/h: 12 s
    assert ch.rate_ml_h == 110.0  # square wave back
    device.advance_to(3600.0)
    assert ch.rate_ml_h == 10.0 and ch.plan is not None
    assert ch.plan.steps[0].rate_ml_h == 10.0
    with pytest.raises(CommandRejected):
        device.bolus(0, 3.5, 100.0)  # above 3 mL
    device.inject(0, "door_open")
    with pytest.raises(CommandRejected):
        device.bolus(0, 1.0, 100.0)


def test_hosp_pca_lockout() -> None:
    """PCA lockout (Open PCA R5.2(3), EC1): a press inside the lockout gives nothing and is
    logged with its reason."""
    device = running(pca(lockout_s=600.0, limit_1h=50.0), pca_pump())
    assert device.demand(0) is True
    device.advance_to(599.0)
    assert device.demand(0) is False
    device.advance_to(600.0)
    assert device.demand(0) is True
    denied = [r for r in device.records if r.kind == "pca_denied"]
    assert [(r.t_s, r.data["reason"]) for r in denied] == [(599.0, "lockout")]


def test_hosp_max_dose_hourly_limit() -> None:
    """Max dose / hourly limit (Open PCA R5.2(5), R5.3(7)): a demand that would pass the
    limit is refused; a clinician bolus is halted at the limit with a max-dose alarm.
    (The engine pauses the channel there rather than going to KVO, since KVO would also
    add drug past the limit.)"""
    device = running(pca(basal=1.0, lockout_s=60.0, limit_1h=3.0), pca_pump())
    for t in (0.0, 100.0, 200.0):
        device.advance_to(t)
        device.demand(0)
    reasons = [r.data["reason"] for r in device.records if r.kind == "pca_denied"]
    assert reasons == ["1-hour limit"]
    device.advance_to(400.0)
    device.bolus(0, 3.0, 150.0)
    device.advance_to(3000.0)
    ch = device.channels[0]
    assert ch.state is State.PAUSED and alarm_times(device, "dose_limit")
    assert ch.ledger.amount("morphine [mg]", device.t_s, 3600.0) <= 3.0 * (1 + 1e-9)
    assert [r for r in device.records if r.kind == "bolus_cancelled"]


def test_hosp_clinician_bolus() -> None:
    """Clinician bolus (Open PCA R5.3(2)): bolus rate = min(requested + basal, Fmax)."""
    device = running(heparin(rate=20.0), syringe(10))
    with pytest.raises(CommandRejected, match="pump maximum"):
        device.bolus(0, 2.0, 500.0)  # the bolus rate itself above what the drive can do
    device.bolus(0, 2.0, 190.0)
    assert device.channels[0].rate_ml_h == 200.0  # 20 + 190 capped at the 200 mL/h maximum
    device.advance_to(300.0)
    assert device.channels[0].program_ml == pytest.approx(20.0 * 300.0 / 3600.0 + 2.0)


def test_hosp_library_checks() -> None:
    """Library checks (GIP 6.1.3/6.1.4; Open PCA R6.5(9),(10)): soft limit -> confirmation
    with a reason; hard limit -> refused; unknown drug -> message, pump stays stopped; the
    engine enforces the hard limits again by itself."""
    lib = sample_library()
    ctx = T.Context(lvp(), Patient.from_text(weight="70 kg"), lib, lib.care_area("Adult ICU"))
    with pytest.raises(InputError, match="not in the library"):
        T.continuous(ctx, drug="no-such-drug", rate="10 mL/h")
    with pytest.raises(SoftLimitError):
        T.continuous(ctx, drug="dopamine", concentration="400 mg/250 mL", dose="25 mcg/kg/min")
    programmed = T.continuous(
        ctx, drug="dopamine", concentration="400 mg/250 mL", dose="5 mcg/kg/min"
    )
    device = running(programmed.plan)
    with pytest.raises(CommandRejected, match="hard limit"):
        device.titrate(0, programmed.plan.envelope.max_rate_ml_h * 1.01)


def test_hosp_air_in_line() -> None:
    """Air-in-line (GIP 1.9.1; Alaris 250/75/50 uL): a bubble at the limit stops the pump
    with a high alarm; smaller bubbles add up over 15 min."""
    device = running(
        basic(rate=10.0),
        settings=[ChannelSettings(air_limit_ul=75.0, air_accumulated_limit_ul=200.0)],
    )
    device.inject(0, "air", volume_ul=50.0)
    assert device.channels[0].state is State.RUNNING
    device.advance_to(60.0)
    device.inject(0, "air", volume_ul=60.0)
    device.advance_to(120.0)
    device.inject(0, "air", volume_ul=60.0)
    device.advance_to(180.0)
    device.inject(0, "air", volume_ul=40.0)
    assert alarm_times(device, "air_accumulated") == [180.0]
    other = running(basic(rate=10.0), settings=[ChannelSettings(air_limit_ul=75.0)])
    other.inject(0, "air", volume_ul=75.0)
    assert alarm_times(other, "air_in_line") == [0.0]
    assert other.channels[0].rate_ml_h == 0.0


def test_hosp_occlusion() -> None:
    """Occlusion (GIP 1.10; Open PCA R7.2): downstream alarm at the limit, flow stopped
    without finishing the stroke, pressure relieved, post-occlusion bolus <= 0.5 mL;
    upstream occlusion alarms at once."""
    device = running(basic(rate=5.0), syringe(50))
    device.advance_to(3600.0)
    device.inject(0, "occlusion")
    device.advance_to(7 * 3600.0)
    ch = device.channels[0]
    assert ch.state is State.ALARM and ch.pressure_mmhg < 525.0  # back-off relieved it
    device.inject(0, "clear_occlusion")
    (released,) = [r for r in device.records if r.kind == "occlusion_released"]
    assert released.data["bolus_ml"] <= 0.5


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["titrate", "bolus", "advance", "pause", "resume"]),
            st.floats(-1e6, 1e6),
        ),
        max_size=20,
    )
)
def test_hosp_reverse_flow(actions: list[tuple[str, float]]) -> None:
    """Reverse flow (GIP 1.8.1; IEC 60601-2-24): no command makes the pump run backwards;
    negative values are refused and delivered volumes never decrease."""
    device = running(heparin(rate=10.0))
    ch = device.channels[0]
    last = (0.0, 0.0, 0.0)
    for action, value in actions:
        try:
            if action == "titrate":
                device.titrate(0, value)
            elif action == "bolus":
                device.bolus(0, min(abs(value), 3.0) or 1.0, value)
            elif action == "advance":
                device.advance_to(device.t_s + abs(value) % 7200.0)
            else:
                getattr(device, action)(0)
        except InputError:
            pass
        assert ch.rate_ml_h >= 0.0
        now = (ch.ideal_ml, ch.pumped_ml, ch.patient_ml)
        assert all(b >= a for a, b in zip(last, now, strict=True))
        last = now


def test_hosp_suspend() -> None:
    """Suspend (GIP 1.6; PCA R7.2(6),(7)): a fault stop is immediate: nothing more is
    displaced after the alarm instant."""
    device = running(basic(rate=100.0))
    device.advance_to(36.0)
    device.inject(0, "door_open")
    ch = device.channels[0]
    assert ch.ideal_ml == pytest.approx(1.0) and ch.rate_ml_h == 0.0
    device.advance_to(3600.0)
    assert ch.ideal_ml == pytest.approx(1.0)


def test_hosp_reservoir() -> None:
    """Reservoir (GIP 1.5; PCA R6.8(9),(10)): low-reservoir warning, empty alarm that stops
    the pump; time remaining recomputed on a rate change and at each bolus."""
    device = running(
        basic(rate=20.0, vtbi=9.0), syringe(10), settings=[ChannelSettings(reservoir_low_ml=1.0)]
    )
    ch = device.channels[0]
    assert ch.time_remaining_s() == {
        "vtbi_s": pytest.approx(9.0 / 20.0 * 3600.0),
        "reservoir_s": pytest.approx(1800.0),
    }
    device.advance_to(360.0)  # 2 mL given
    device.titrate(0, 10.0)
    assert ch.time_remaining_s()["vtbi_s"] == pytest.approx(7.0 / 10.0 * 3600.0)
    device.bolus(0, 1.0, 100.0)
    assert ch.time_remaining_s()["reservoir_s"] == pytest.approx(8.0 / 110.0 * 3600.0)
    device.stop(0)
    device.program(0, basic(rate=20.0))
    device.start(0)
    device.advance_to(device.t_s + 3 * 3600.0)
    low = alarm_times(device, "reservoir_low")
    empty = alarm_times(device, "reservoir_empty")
    assert len(low) == 1 and len(empty) == 1 and low[0] < empty[0]
    assert Alarm.RESERVOIR_EMPTY.stops_flow and ch.rate_ml_h == 0.0
    assert empty[0] - low[0] == pytest.approx(1.0 / 20.0 * 3600.0)


def test_hosp_alarm_ux() -> None:
    """Alarm UX (IEC 60601-1-8; GIP 3.1-3.2): priorities per condition, temporary silence
    (<= 2 min) that comes back, no permanent disable (details: tests/pump/test_alarms.py)."""
    device = running(basic(rate=10.0))
    device.inject(0, "door_open")
    device.silence(0, Alarm.DOOR_OPEN)
    device.advance_to(121.0)
    (alarm,) = device.board.active(0)
    assert alarm.audible and alarm.priority is Priority.HIGH
    assert alarm.indicator.colour == "red"
    assert not hasattr(device, "disable_alarm")


def test_hosp_inactivity_paused_too_long() -> None:
    """Inactivity (Alaris/PCA "long pause"): a channel paused too long calls back with a
    medium alarm (2 min), escalated if nobody answers."""
    device = running(basic(rate=10.0))
    device.pause(0)
    device.advance_to(600.0)
    assert alarm_times(device, "paused_too_long") == [120.0]
    escalated = [r.t_s for r in device.records if r.data.get("escalated")]
    assert escalated == [420.0]  # nobody answered: high priority


def test_hosp_power() -> None:
    """Power (GIP 5.1): low-battery alarm at least 15 min before depletion (declared 30),
    depleted alarm with delivery stopped before the battery is empty."""
    device = running(basic(rate=50.0), battery=Battery(charge_mah=500.0))
    device.advance_to(20 * 3600.0)
    (low,) = alarm_times(device, "battery_low")
    (off,) = [r.t_s for r in device.records if r.kind == "power" and r.data.get("state") == "off"]
    depleted = alarm_times(device, "battery_depleted")
    assert off - low >= 15 * 60.0 and min(depleted) < off
    assert device.channels[0].state is State.ALARM


def test_hosp_logging(tmp_path: Path) -> None:
    """Logging (GIP 4.1; Open PCA §6.6): every command, state change and alarm is logged
    with a sequence number and monotonic pump time, and survives a power-off."""
    path = tmp_path / "journal.db"
    device = Device([lvp()], journal=SqliteJournal(path))
    device.program(0, basic(rate=10.0, vtbi=1.0))
    device.start(0)
    device.advance_to(600.0)
    device.inject(0, "door_open")
    del device
    records = SqliteJournal(path).records()
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert all(a["t_s"] <= b["t_s"] for a, b in itertools.pairwise(records))
    kinds = {r["kind"] for r in records}
    assert {"command", "programmed", "started", "alarm", "kvo_started", "stopped"} <= kinds
    assert math.isfinite(records[-1]["t_s"])
