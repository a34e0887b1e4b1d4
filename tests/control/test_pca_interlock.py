"""PCA respiratory interlock: limits held for their duration pause the PCA, resume rules,
stale data, and the property that a crossed limit always pauses and never auto-resumes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.control.pca_interlock import (
    ETCO2_HIGH,
    RR_LOW,
    SENSOR_STALE,
    SPO2_LOW,
    InterlockLimits,
    PcaInterlock,
)
from openinfusion.errors import InputError
from openinfusion.sim.pca_scenario import load_pca_scenario
from openinfusion.sim.pca_trial import PcaTrialResult, run_pca_trial

NORMAL = (97.0, 38.0, 14.0)


def test_spo2_below_90_for_30_s_pauses() -> None:
    il = PcaInterlock()
    assert not il.update(0, *NORMAL).pause
    assert not il.update(10, 88.0, 38.0, 14.0).pause
    assert not il.update(39, 88.0, 38.0, 14.0).pause
    d = il.update(40, 88.0, 38.0, 14.0)
    assert d.pause and d.refuse_demands and d.alarm == SPO2_LOW and "spo2 88" in d.reason


def test_a_normal_reading_restarts_the_duration() -> None:
    il = PcaInterlock()
    il.update(0, 88.0, 38.0, 14.0)
    il.update(20, 95.0, 38.0, 14.0)
    assert not il.update(40, 88.0, 38.0, 14.0).pause
    assert il.update(70, 88.0, 38.0, 14.0).pause


def test_etco2_above_50_pauses_at_once_and_rr_below_8_after_60_s() -> None:
    assert PcaInterlock().update(0, 97.0, 51.0, 14.0).alarm == ETCO2_HIGH
    il = PcaInterlock()
    il.update(0, 97.0, 38.0, 7.0)
    assert not il.update(59, 97.0, 38.0, 7.0).pause
    assert il.update(60, 97.0, 38.0, 7.0).alarm == RR_LOW


def test_clinician_resume_only_when_readings_are_normal() -> None:
    il = PcaInterlock()
    assert il.update(0, 97.0, 55.0, 14.0).pause
    for t in range(30, 3600, 30):  # no automatic resume, however long normal
        assert il.update(t, *NORMAL).pause
    il.update(3600, 97.0, 55.0, 14.0)
    assert not il.clinician_resume(3610)  # limit crossed now
    il.update(3630, *NORMAL)
    assert il.clinician_resume(3640)
    assert not il.update(3660, *NORMAL).pause


def test_auto_resume_after_normal_minutes_when_configured() -> None:
    il = PcaInterlock(InterlockLimits(auto_resume=True, resume_after_normal_s=300.0))
    il.update(0, 97.0, 55.0, 14.0)
    assert il.update(60, *NORMAL).pause
    assert il.update(300, *NORMAL).pause
    assert il.update(330, 97.0, 38.0, 7.5).pause  # brief low rate: the clock restarts
    assert il.update(600, *NORMAL).pause
    assert il.update(899, *NORMAL).pause
    d = il.update(900, *NORMAL)
    assert not d.pause and d.alarm is None


def test_missing_and_stale_data_refuse_demands() -> None:
    il = PcaInterlock()
    d = il.update(0, None, 38.0, 14.0)  # never read: unsafe at once
    assert d.refuse_demands and not d.pause and d.alarm == SENSOR_STALE
    assert not il.update(10, *NORMAL).refuse_demands
    assert not il.update(60, math.nan, 38.0, 14.0).refuse_demands
    d = il.update(71, 150.0, 38.0, 14.0)  # implausible counts as no reading
    assert d.refuse_demands and "spo2" in d.reason
    strict = PcaInterlock(InterlockLimits(stale_action="pause"))
    strict.update(0, *NORMAL)
    assert strict.update(200, None, None, None).pause


def test_disabled_limit_and_bad_settings() -> None:
    il = PcaInterlock(InterlockLimits(spo2_low_pct=None))
    assert not il.update(0, None, 38.0, 14.0).refuse_demands
    with pytest.raises(InputError) as exc:
        InterlockLimits(rr_duration_s=-1.0)
    assert exc.value.field == "rr_duration_s"
    with pytest.raises(InputError, match="stale_action"):
        InterlockLimits(stale_action="ignore")
    with pytest.raises(InputError) as exc2:
        il.update(-5, *NORMAL)
    assert exc2.value.field == "t_s"


LIMITS = InterlockLimits()
reading = st.tuples(
    st.integers(1, 40),  # seconds since the last reading
    st.one_of(st.none(), st.floats(80.0, 100.0)),
    st.one_of(st.none(), st.floats(30.0, 60.0)),
    st.one_of(st.none(), st.floats(4.0, 20.0)),
)


@given(st.lists(reading, min_size=1, max_size=60), st.booleans())
@settings(max_examples=300, deadline=None)
def test_crossed_limits_always_pause_and_never_auto_resume(
    seq: list[tuple[int, float | None, float | None, float | None]], auto: bool
) -> None:
    limits = InterlockLimits(auto_resume=auto, resume_after_normal_s=120.0)
    il = PcaInterlock(limits)
    t = 0.0
    # oracle: start of the current run of out-of-limit valid readings, per limit
    since: dict[str, float] = {}
    history: list[tuple[float, bool]] = []  # (t, every limit within range and data fresh)
    last_valid: dict[str, float] = {}
    paused_before = False
    for dt, spo2, etco2, rr in seq:
        t += dt
        vals = {"spo2": spo2, "etco2": etco2, "rr": rr}
        for k, v in vals.items():
            if v is not None:
                last_valid[k] = t
        tests = {
            SPO2_LOW: ("spo2", lambda v: v < 90.0, 30.0),
            ETCO2_HIGH: ("etco2", lambda v: v > 50.0, 0.0),
            RR_LOW: ("rr", lambda v: v < 8.0, 60.0),
        }
        crossed = False
        for alarm, (k, out, duration) in tests.items():
            v = vals[k]
            if v is not None:
                if out(v):
                    since.setdefault(alarm, t)
                else:
                    since.pop(alarm, None)
            if alarm in since and t - since[alarm] >= duration:
                crossed = True
        fresh = all(t - last_valid.get(k, -math.inf) <= 60.0 for k in vals)
        history.append((t, not since and fresh))
        d = il.update(t, spo2, etco2, rr)
        if crossed:
            assert d.pause and d.refuse_demands
        if paused_before and not d.pause:
            # resumed: only automatically, after 120 s of normal fresh readings
            assert auto and not since and fresh
            window = [ok for tt, ok in history if tt >= t - 120.0]
            assert all(window)
        if d.pause:
            assert d.refuse_demands and d.alarm is not None
        paused_before = d.pause


# ---- in the PCA trial ---------------------------------------------------------------------


def _trial(interlock: dict[str, object] | None) -> PcaTrialResult:
    data: dict[str, object] = {
        "duration": "12 h",
        "seed": 3,
        "override_reason": "trial: interlock",
        "program": {
            "drug": "morphine",
            "concentration": "1 mg/mL",
            "demand_dose": "2 mg",
            "lockout": "6 min",
            "basal": "2 mg/h",
            "limit_4h": "40 mg",
        },
        "patients": {"n": 10},
        "demand": {"model": "pain", "threshold_nrs": 2, "presses_per_h": 4},
        "respiration": {"c50_ng_ml": 4.0, "monitor_noise": False},
    }
    if interlock is not None:
        data["interlock"] = interlock
    result = run_pca_trial(load_pca_scenario(data))
    assert result.delivery_check_ml < 1e-9
    return result


def test_interlock_in_the_trial_cuts_respiratory_depression_and_opioid() -> None:
    off, disabled = _trial(None), _trial({"enabled": False})
    on = _trial({"enabled": True})
    assert off.metrics == disabled.metrics and off.interlock_events == []
    assert on.summary["resp_event_minutes"] < off.summary["resp_event_minutes"]
    assert on.summary["opioid_mg"]["mean"] < off.summary["opioid_mg"]["mean"]
    assert sum(m["interlock"]["pauses"] for m in on.metrics) > 0
    for i, events in enumerate(on.interlock_events):
        records = on.devices[i].records
        pauses = [r.t_s for r in records if r.kind == "command" and r.data["command"] == "pause"]
        assert len(pauses) >= sum(e["event"] == "pause" for e in events)
        # no demand granted while the interlock held the pump paused
        spans, start = [], None
        for e in events:
            if e["event"] == "pause":
                start = e["t_min"] * 60.0
            elif start is not None:
                spans.append((start, e["t_min"] * 60.0))
                start = None
        if start is not None:
            spans.append((start, math.inf))
        granted = [r.t_s for r in records if r.kind == "pca_granted"]
        assert not any(a < g < b for g in granted for a, b in spans)
    auto = _trial({"enabled": True, "auto_resume": True, "resume_after": "5 min"})
    assert any(e["event"] == "auto-resume" for ev in auto.interlock_events for e in ev)


def test_interlock_bad_setting_names_the_field() -> None:
    with pytest.raises(InputError) as exc:
        _trial({"enabled": True, "rr_for": "soon"})
    assert exc.value.field.startswith("interlock.rr_for")
