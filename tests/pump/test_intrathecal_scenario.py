"""Intrathecal scenario files run end to end, against totals worked by hand."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from openinfusion.errors import InputError
from openinfusion.library import HardLimitError, SoftLimitError, sample_library
from openinfusion.library.loading import library_from_data
from openinfusion.pump.codes import Alarm
from openinfusion.pump.intrathecal import CATHETER_ML_PER_CM, PUMP_PATHWAY_ML
from openinfusion.pump.intrathecal_scenario import (
    IntrathecalEventSpec,
    IntrathecalProgramSpec,
    event_times,
    run_intrathecal,
)
from openinfusion.pump.mechanics import implant
from openinfusion.units import Kind, parse_quantity

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pump"
QUANTUM_ML = implant().quantum_ml
DAY_MIN = 1440.0


def load(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def run_file(name: str, **kwargs: Any) -> dict[str, Any]:
    """Split a scenario file as the scenario runner does, and run it."""
    data = load(name)
    assert data["pump"]["kind"] == "implant"
    program = IntrathecalProgramSpec.model_validate(data["program"])
    events = event_times([IntrathecalEventSpec.model_validate(e) for e in data["events"]])
    duration_s = parse_quantity(data["duration"], Kind.DURATION, "duration") * 60.0
    return run_intrathecal(
        program, events, duration_s, reservoir_ml=data["pump"].get("reservoir_ml"), **kwargs
    )


def program(**kw: Any) -> IntrathecalProgramSpec:
    base: dict[str, Any] = {
        "therapy": "intrathecal",
        "drug": "morphine",
        "concentration": "25 mg/mL",
        "daily_dose": "5 mg/day",  # 0.2 mL/day
        "max_daily_dose": "7 mg/day",
    }
    return IntrathecalProgramSpec.model_validate({**base, **kw})


def event(at_s: float, **kw: Any) -> tuple[float, IntrathecalEventSpec]:
    return at_s, IntrathecalEventSpec.model_validate({"at": f"{at_s} s", **kw})


def rejected(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in report["events"] if e["type"] == "rejected"]


# ---- the examples ----------------------------------------------------------------------------


def test_example_morphine_refill() -> None:
    report = run_file("intrathecal-morphine-refill.json")
    # 5 mg/day at 25 mg/mL is 0.2 mL/day: 120 days pump 24 mL, 600 mg.
    assert report["delivered_ml"] == pytest.approx(24.0, abs=QUANTUM_ML)
    assert report["delivered_dose"] == {"value": pytest.approx(600.0), "unit": "mg"}
    # 18 mL above the 2 mL low limit: the low-reservoir alarm at day 90.
    assert report["alarms"] == [
        {"at_min": 90 * DAY_MIN, "code": "reservoir_low", "priority": "low", "channel": 0}
    ]
    it = report["intrathecal"]
    [refill] = it["refills"]
    # Day 95: 1 mL expected (20 - 95 x 0.2), 0.8 mL found: -0.2 mL, within 1 mL.
    assert refill["at_min"] == 95 * DAY_MIN
    assert refill["expected_ml"] == pytest.approx(1.0)
    assert refill["difference_ml"] == pytest.approx(-0.2)
    assert refill["leak_suspected"] is False
    assert refill["bridge"] is None
    # After the refill 20 mL, 25 days at 0.2 mL/day: 15 mL; 13 mL above the limit last
    # 65 more days: day 185 after 5 January 09:00 GMT is 9 July, 10:00 summer time.
    assert it["reservoir_ml"] == pytest.approx(15.0)
    assert it["low_reservoir_days"] == pytest.approx(65.0)
    assert it["low_reservoir_date"] == "2026-07-09T10:00:00+01:00"
    assert report["final_state"] == "running"
    assert it["eri"]["at_eri"] is False
    assert rejected(report) == []


def test_example_baclofen_flex_with_ptm() -> None:
    report = run_file("intrathecal-baclofen-flex-ptm.json")
    it = report["intrathecal"]
    # PTM: 8 h granted, 9 h lockout, 11 h and 14 h granted, 17 h fourth in 24 h (denied),
    # 32 h granted (the 8 h one has left the 24-hour window).
    assert it["ptm"] == {
        "demands": 6,
        "granted": 4,
        "denied": 2,
        "denied_reasons": {"lockout": 1, "demand count limit": 1},
    }
    # 720 h from 25 March 00:00 (Paris) to 24 April 01:00: 30 local days, one of them the
    # 23-hour 29 March (487.5 mcg), plus 00:00-01:00 at the night rate (12.5 mcg):
    # 29 x 500 + 487.5 + 12.5 = 15000 mcg of basal, and 4 x 50 mcg of PTM.
    assert report["delivered_dose"] == {"value": pytest.approx(15200.0), "unit": "mcg"}
    assert report["delivered_ml"] == pytest.approx(7.6, abs=QUANTUM_ML)  # at 2000 mcg/mL
    assert it["reservoir_ml"] == pytest.approx(12.4)
    # 10.4 mL above the limit at 0.25 mL a day: 41 days, then 0.15 mL from 01:00:
    # 5 h x 0.00625 mL/h to 06:00 and 9.5 h x 0.0125 mL/h, to 15:30 on 4 June.
    assert it["low_reservoir_days"] == pytest.approx(41 + 14.5 / 24)
    assert it["low_reservoir_date"] == "2026-06-04T15:30:00+02:00"
    # Assuming every PTM dose (3 x 0.025 mL a day): earlier.
    assert it["low_reservoir_date_max_ptm"] < it["low_reservoir_date"]
    assert it["mode"] == "flex (day)"
    assert report["alarms"] == []
    granted = [e["at_min"] for e in report["events"] if e["type"] == "pca_granted"]
    assert granted == [480.0, 660.0, 840.0, 1920.0]
    denied = [(e["at_min"], e["reason"]) for e in report["events"] if e["type"] == "pca_denied"]
    assert denied == [(540.0, "lockout"), (1020.0, "demand count limit")]


def test_example_baclofen_concentration_change() -> None:
    report = run_file("intrathecal-baclofen-concentration-change.json")
    it = report["intrathecal"]
    [refill] = it["refills"]
    # 14 days at 1 mL/day: 6 mL expected, 4.5 mL found: 1.5 mL over the 1 mL tolerance.
    assert refill["expected_ml"] == pytest.approx(6.0)
    assert refill["leak_suspected"] is True
    assert [a["code"] for a in report["alarms"]] == ["leak_suspected"]
    assert report["alarms"][0]["at_min"] == 14 * DAY_MIN
    # Bridge: 0.2 mL pump pathway + 65 cm x 0.0026 mL/cm = 0.369 mL at the old 1 mL/day.
    dead = PUMP_PATHWAY_ML + 65 * CATHETER_ML_PER_CM
    assert refill["bridge"]["volume_ml"] == pytest.approx(dead)
    assert refill["bridge"]["duration_min"] == pytest.approx(dead * DAY_MIN)
    # The dose never changes with the concentration: 21 days at 500 mcg/day, then 9 days
    # at 550 mcg/day (the 900 mcg/day reprogramming is over the 800 mcg/day hard limit).
    assert report["delivered_dose"] == {"value": pytest.approx(21 * 500 + 9 * 550), "unit": "mcg"}
    # Volume: 14 mL, the dead volume, 7 - 0.369 days at 0.25 mL/day, 9 days at 0.275.
    volume = 14 + dead + (7 - dead) * 0.25 + 9 * 0.275
    assert report["delivered_ml"] == pytest.approx(volume, abs=QUANTUM_ML)
    assert it["reservoir_ml"] == pytest.approx(20 - (volume - 14))
    fills = it["fills"]
    assert [f["concentration"] for f in fills] == ["500 mcg/mL", "2000 mcg/mL"]
    assert fills[0]["amount"]["value"] == pytest.approx((14 + dead) * 500)
    [refused] = rejected(report)
    assert refused["command"] == "reprogram"
    assert refused["at_min"] == 22 * DAY_MIN
    assert "max_daily_dose" in refused["reason"] and "900 mcg" in refused["reason"]
    assert it["concentration"] == "2000 mcg/mL"
    assert it["daily_dose"] == "550 mcg"
    assert report["final_state"] == "running"
    assert any(e["type"] == "alarm_acknowledged" for e in report["events"])


# The hospital runner's report keys (openinfusion.pump.scenario.Run.report).
REPORT_KEYS = {
    "delivered_ml",
    "delivered_dose",
    "alarms",
    "events",
    "final_state",
    "verdict",
    "override",
    "summary",
    "channels",
    "duration_min",
    "battery_percent",
}
ALARM_CODES = {a.code for a in Alarm}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("intrathecal-*.json")), ids=lambda p: p.name)
def test_every_intrathecal_example_runs(path: Path) -> None:
    report = run_file(path.name)
    assert set(report) >= REPORT_KEYS | {"intrathecal"}
    assert set(report["intrathecal"]) >= {"ptm", "refills", "low_reservoir_date", "eri"}
    [channel] = report["channels"]
    assert report["delivered_ml"] == channel["pumped_ml"]
    assert channel["patient_ml"] <= channel["pumped_ml"] + QUANTUM_ML
    for alarm in report["alarms"]:
        assert alarm["code"] in ALARM_CODES
        assert 0 <= alarm["at_min"] <= report["duration_min"]
    times = [e["at_min"] for e in report["events"]]
    assert times == sorted(times)
    json.dumps(report)  # plain JSON


# ---- runs ------------------------------------------------------------------------------------


def test_long_run_is_fast() -> None:
    refills = [
        event(d * 86400.0, type="refill", found=f"{20 - 60 * 0.2:g} mL", added="20 mL")
        for d in range(60, 730, 60)
    ]
    began = time.perf_counter()
    report = run_intrathecal(program(), refills, 730 * 86400.0)
    assert time.perf_counter() - began < 5.0
    # Refills every 60 days at 0.2 mL/day: 12 mL found each time, never a leak.
    assert report["delivered_ml"] == pytest.approx(146.0, abs=QUANTUM_ML)
    assert not any(r["leak_suspected"] for r in report["intrathecal"]["refills"])


def test_eri_and_end_of_service_in_a_run() -> None:
    rx = program(
        concentration="10 mg/mL",
        daily_dose="10 mg/day",
        max_daily_dose="20 mg/day",
        reservoir_ml=40,
    )
    # 5 % of a battery that lasts 5 years at 1 mL/day: 91.3 days; ERI under 90 days left.
    report = run_intrathecal(rx, [], 35 * 86400.0, battery_percent=5.0)
    eri = report["intrathecal"]["eri"]
    assert eri["alarm_at_min"] == DAY_MIN * 2  # the daily check: 89.3 days left on day 2
    assert eri["end_of_service_at_min"] is None
    refills = [  # every 30 days, before the 40 mL run out
        event(d * 86400.0, type="refill", found="10 mL", added="40 mL") for d in (30, 60)
    ]
    report = run_intrathecal(
        rx, [*refills, event(100 * 86400.0, type="ptm")], 120 * 86400.0, battery_percent=5.0
    )
    eri = report["intrathecal"]["eri"]
    assert eri["end_of_service_at_min"] == pytest.approx(0.05 * 5 * 365.25 * DAY_MIN, rel=1e-9)
    assert report["final_state"] == "alarm"
    assert [a["code"] for a in report["alarms"]][-1] == "end_of_service"
    assert report["delivered_ml"] == pytest.approx(0.05 * 5 * 365.25, abs=QUANTUM_ML)


def test_refused_events_are_recorded_and_the_run_goes_on() -> None:
    events = [
        event(86400.0, type="refill", found="19.8 mL", added="25 mL"),  # overfills 20 mL
        event(2 * 86400.0, type="refill", found="19.6 mL"),  # no volume added
        event(3 * 86400.0, type="acknowledge", code="no_such_alarm"),
        event(4 * 86400.0, type="reprogram", concentration="10 mg/mL"),  # needs a refill
        event(
            5 * 86400.0,
            type="reprogram",
            daily_dose="6 mg/day",
            flex=[{"start": "06:00", "dose": "5 mg/day"}],
        ),
        event(6 * 86400.0, type="ptm"),  # no PTM prescribed: a denial, not a refusal
        event(
            7 * 86400.0,
            type="reprogram",
            ptm={"dose": "0.5 mg", "lockout": "3 h", "max_per_day": 10},
        ),
    ]
    report = run_intrathecal(program(), events, 10 * 86400.0)
    refused = rejected(report)
    assert [r["command"] for r in refused] == [
        "refill",
        "refill",
        "acknowledge",
        "reprogram",
        "reprogram",
        "reprogram",
    ]
    assert refused[0]["reason"].startswith("added_ml 25.0")
    assert "overfills" in refused[0]["reason"]
    assert "found" in refused[1]["reason"]
    assert refused[2]["reason"].startswith("code 'no_such_alarm'")
    assert refused[3]["reason"].startswith("concentration '10 mg/mL'")
    assert refused[4]["reason"].startswith("daily_dose")
    assert "max_daily_dose" in refused[5]["reason"]  # 5 mg + 10 x 0.5 mg > 7 mg
    assert report["intrathecal"]["ptm"]["denied_reasons"] == {"no PTM prescribed": 1}
    assert report["delivered_ml"] == pytest.approx(2.0, abs=QUANTUM_ML)
    assert report["final_state"] == "running"


def test_reprogram_adds_and_removes_the_ptm() -> None:
    ptm = {"dose": "0.5 mg", "lockout": "3 h", "max_per_day": 4}
    events = [
        event(3600.0, type="ptm"),
        event(7200.0, type="reprogram", ptm=ptm),
        event(10800.0, type="ptm"),
        event(86400.0, type="reprogram", ptm=None),
        event(90000.0, type="ptm"),
    ]
    report = run_intrathecal(program(), events, 2 * 86400.0)
    it = report["intrathecal"]
    assert it["ptm"]["granted"] == 1
    assert it["ptm"]["denied_reasons"] == {"no PTM prescribed": 2}
    assert report["delivered_dose"]["value"] == pytest.approx(10.0 + 0.5)


def test_reprogram_to_flex_and_weekly() -> None:
    weekly = [
        {"start": "Mon 08:00", "dose": "8 mg/day"},
        {"start": "Sat 08:00", "dose": "4 mg/day"},
    ]
    events = [
        event(
            7 * 86400.0,
            type="reprogram",
            flex=weekly,
            flex_period="week",
            max_daily_dose="10 mg/day",
        )
    ]
    # 5 January 2026 is a Monday: one week at 5 mg/day, then one week of 5 x 8 + 2 x 4 mg.
    report = run_intrathecal(program(start="2026-01-05T08:00:00"), events, 14 * 86400.0)
    assert report["delivered_dose"]["value"] == pytest.approx(35 + 48)
    assert report["intrathecal"]["mode"] == "flex (week)"


def test_events_are_applied_in_time_order() -> None:
    events = [
        event(2 * 86400.0, type="reprogram", daily_dose="4 mg/day"),
        event(1 * 86400.0, type="reprogram", daily_dose="6 mg/day"),
    ]
    report = run_intrathecal(program(), events, 3 * 86400.0)
    assert report["delivered_dose"]["value"] == pytest.approx(5 + 6 + 4)


# ---- bad input -------------------------------------------------------------------------------


def test_bad_program_names_the_scenario_field() -> None:
    with pytest.raises(InputError) as err:
        run_intrathecal(
            program(ptm={"dose": "-1 mg", "lockout": "3 h", "max_per_day": 2}), [], 86400.0
        )
    assert err.value.field == "ptm.dose"
    assert err.value.value == "-1 mg"
    with pytest.raises(InputError) as err:
        run_intrathecal(program(daily_dose="50 mg/day"), [], 86400.0)
    assert err.value.field == "max_daily_dose"
    with pytest.raises(InputError) as err:
        run_intrathecal(program(timezone="Mars/Olympus"), [], 86400.0)
    assert err.value.field == "timezone"
    with pytest.raises(InputError) as err:
        run_intrathecal(program(fill_ml=30.0), [], 86400.0)
    assert err.value.field == "fill_ml"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"duration_s": 0.0}, "duration"),
        ({"duration_s": float("nan")}, "duration"),
        ({"duration_s": 20 * 365.25 * 86400.0}, "duration"),
        ({"battery_percent": 0.0}, "pump.battery_percent"),
        ({"battery_percent": 150.0}, "pump.battery_percent"),
        ({"reservoir_ml": 40.0}, "program.reservoir_ml"),
    ],
)
def test_bad_run_arguments(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"duration_s": 86400.0, **kwargs}
    duration = args.pop("duration_s")
    with pytest.raises(InputError) as err:
        run_intrathecal(program(reservoir_ml=20), [], duration, **args)
    assert err.value.field == field


def test_event_outside_the_duration() -> None:
    with pytest.raises(InputError) as err:
        run_intrathecal(program(), [event(2 * 86400.0, type="ptm")], 86400.0)
    assert err.value.field == "events[0].at"
    with pytest.raises(InputError) as err:
        event_times([IntrathecalEventSpec(at="soon", type="ptm")])
    assert err.value.field == "events[0].at"


def test_specs_refuse_unknown_fields_and_are_frozen() -> None:
    with pytest.raises(ValidationError):
        program(dose="5 mg/day")
    with pytest.raises(ValidationError):
        IntrathecalEventSpec.model_validate({"at": "1 h", "type": "bolus"})
    with pytest.raises(ValidationError):
        IntrathecalProgramSpec.model_validate(
            {
                "therapy": "continuous",
                "drug": "x",
                "concentration": "1 mg/mL",
                "max_daily_dose": "1 mg/day",
            }
        )
    spec = program()
    with pytest.raises(ValidationError):
        spec.drug = "baclofen"  # type: ignore[misc]


def test_pump_reservoir_size_is_used_when_the_program_has_none() -> None:
    report = run_intrathecal(program(), [], 86400.0, reservoir_ml=40.0)
    assert report["intrathecal"]["reservoir_ml"] == pytest.approx(40.0 - 0.2)


# ---- drug library ----------------------------------------------------------------------------


def test_an_iv_entry_is_never_used_for_the_intrathecal_route() -> None:
    report = run_intrathecal(
        program(), [], 86400.0, library=sample_library(), care_area="Adult ICU"
    )
    assert report["intrathecal"]["library_entry"] is None
    assert report["verdict"] is None


def test_an_intrathecal_library_entry_is_checked(mini_library_data: dict[str, Any]) -> None:
    mini_library_data["entries"].append(
        {
            "care_area": "adult-icu",
            "drug": "morphine",
            "display_name": "morphine",
            "therapy": "intrathecal",
            "infusion_type": "continuous",
            "high_alert": True,
            "concentrations": ["25 mg/mL"],
            "dose_unit": "mg/day",
            "limits": {"dose": {"soft_max": 4, "hard_max": 10}},
        }
    )
    library = library_from_data(mini_library_data)
    with pytest.raises(SoftLimitError):
        run_intrathecal(program(), [], 86400.0, library=library, care_area="Adult ICU")
    report = run_intrathecal(
        program(), [], 86400.0, library=library, care_area="Adult ICU", override_reason="pain team"
    )
    assert report["intrathecal"]["library_entry"] == "morphine (intrathecal)"
    assert report["override"] == "pain team"
    with pytest.raises(HardLimitError):
        run_intrathecal(
            program(daily_dose="12 mg/day", max_daily_dose="15 mg/day"),
            [],
            86400.0,
            library=library,
            care_area="Adult ICU",
            override_reason="pain team",
        )
    # A reprogramming over the hard limit is refused during the run, which goes on.
    events = [event(3600.0, type="reprogram", daily_dose="12 mg/day", max_daily_dose="15 mg/day")]
    report = run_intrathecal(
        program(),
        events,
        86400.0,
        library=library,
        care_area="Adult ICU",
        override_reason="pain team",
    )
    [refused] = rejected(report)
    assert refused["command"] == "reprogram"
    assert report["delivered_dose"]["value"] == pytest.approx(5.0)
