"""Insulin pump scenario files: parsing, running and hand-checked totals."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from openinfusion.errors import InputError, InputErrors
from openinfusion.pump.insulin import floor_to, iob
from openinfusion.pump.insulin_scenario import (
    INSULIN_EVENT_TYPES,
    MG_DL_PER_MMOL_L,
    InsulinEventSpec,
    InsulinProgramSpec,
    insulin_pump,
    insulin_settings,
    run_insulin,
    timed_events,
)
from openinfusion.pump.scenario import EventType, load_scenario, run_scenario
from openinfusion.units import Kind, parse_quantity

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pump"
PULSE = 0.05
H_MIN = 60.0


def load(name: str) -> tuple[dict[str, Any], InsulinProgramSpec, list[Any], float]:
    """Read an example and split it into program and timed events, as the runner will."""
    data = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    assert data["pump"] == {"kind": "insulin_patch"}
    program = InsulinProgramSpec.model_validate(data["program"])
    duration_s = parse_quantity(data["duration"], Kind.DURATION, "duration") * 60.0
    events = timed_events([InsulinEventSpec.model_validate(e) for e in data["events"]], duration_s)
    return data, program, events, duration_s


def run(name: str) -> dict[str, Any]:
    _, program, events, duration_s = load(name)
    report = run_insulin(program, events, duration_s)
    json.dumps(report)  # the report is plain JSON
    return report


def rejected(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in report["events"] if e["type"] == "rejected"]


def bolus_age_iob(units: float, given_at_min: float, now_min: float) -> float:
    """IOB (U) of a normal bolus given at 1.5 U/min, as its midpoint (DIA 5 h, peak 75 min)."""
    return iob(now_min - (given_at_min + units / 1.5 / 2), units, 5.0, 75.0)


def test_every_example_runs_and_is_consistent() -> None:
    names = sorted(p.name for p in EXAMPLES.glob("insulin-*.json"))
    assert len(names) >= 3
    for name in names:
        report = run(name)
        ins = report["insulin"]
        assert math.isclose(report["delivered_ml"] * 100.0, report["delivered_dose"]["value"])
        assert report["delivered_dose"]["unit"] == "units"
        units = report["delivered_dose"]["value"]
        assert abs(units / PULSE - round(units / PULSE)) < 1e-6  # whole pulses
        ideal = ins["basal_units"] + ins["bolus_units"]
        assert ideal - PULSE < units <= ideal + 1e-9
        assert sum(b["delivered"] for b in ins["boluses"]) == pytest.approx(ins["bolus_units"])
        # the shape the hospital report checks ask for
        assert report["delivered_ml"] == pytest.approx(report["channels"][0]["pumped_ml"])
        assert {"patient_ml", "reservoir_ml", "overlays", "delivered_dose"} <= set(
            report["channels"][0]
        )
        assert all(set(a) == {"at_min", "code", "priority", "channel"} for a in report["alarms"])
        times = [e["at_min"] for e in report["events"]]
        assert times == sorted(times)
        assert max(times) <= report["duration_min"]


def test_the_report_has_the_keys_of_the_hospital_report() -> None:
    hospital = run_scenario(load_scenario(EXAMPLES / "basic-infusion-rate.json"))
    insulin = run("insulin-basal-meals-24h.json")
    assert set(hospital) <= set(insulin)
    assert {"basal_units", "bolus_units", "iob_units_end", "boluses"} <= set(insulin["insulin"])


def test_basal_and_meals_day() -> None:
    report = run("insulin-basal-meals-24h.json")
    ins = report["insulin"]
    day = 0.8 * 6 + 1.0 * 16 + 0.7 * 2  # 22.2 U by hand
    assert ins["basal_units"] == pytest.approx(day)
    assert ins["scheduled_basal_units"] == pytest.approx(day)
    boluses = ins["boluses"]
    assert [b["at_min"] for b in boluses] == [420, 750, 900, 1110, 1260]
    # 07:00: 45 g / 10 g/U, BG in range, nothing on board
    assert boluses[0]["requested"] == 4.5
    # 12:30: 60 g / 10 + (180 - 120) / 50, breakfast insulin gone after 5 h
    assert boluses[1]["requested"] == pytest.approx(7.2)
    assert boluses[2]["requested"] == 1.5 and boluses[2]["type"] == "insulin_bolus"
    # 18:30: 75 g / 10 + (95 - 100) / 50 - IOB of the 15:00 bolus, rounded down
    on_board = bolus_age_iob(1.5, 900, 1110)
    assert boluses[3]["iob_units"] == pytest.approx(on_board, abs=1e-3)
    assert boluses[3]["requested"] == floor_to(7.5 - 0.1 - on_board, PULSE)
    assert any("rounded down" in r for r in boluses[3]["reasons"])
    # 21:00: 25 g / 10 + (140 - 120) / 50 - IOB of dinner and the 15:00 bolus
    on_board = bolus_age_iob(boluses[3]["requested"], 1110, 1260) + bolus_age_iob(1.5, 900, 1260)
    assert boluses[4]["requested"] == floor_to(2.5 + 0.4 - on_board, PULSE)
    assert all(b["delivered"] == b["requested"] for b in boluses)
    total = day + sum(b["requested"] for b in boluses)
    assert report["delivered_dose"]["value"] == pytest.approx(total)
    assert report["final_state"] == "running"
    assert report["alarms"] == [] and rejected(report) == []
    assert report["summary"]["basal"] == [["00:00", 0.8], ["06:00", 1.0], ["22:00", 0.7]]
    assert report["summary"]["start_local"] == "2026-01-12T00:00:00+00:00"


def test_exercise_suspend_and_dual_bolus_day() -> None:
    report = run("insulin-exercise-suspend-dual.json")
    ins = report["insulin"]
    # schedule 0.9 / 1.2 / 0.9 U/h: 3.6 + 6 + 13.5 = 23.1 U
    assert ins["scheduled_basal_units"] == pytest.approx(23.1)
    # less 1.5 h suspended at 0.9 U/h, less 50 % for 1.5 h (the suspension ended the temp
    # early), plus 50 % more for the 30 min until the 150 % temp was cancelled
    assert ins["basal_units"] == pytest.approx(23.1 - 1.35 - 0.675 + 0.225)
    assert ins["temp_basal_units"] == pytest.approx(0.45 * 1.5 + 1.35 * 0.5)
    assert ins["suspended_min"] == pytest.approx(90.0)
    assert [t["rate_units_h"] for t in ins["temp_basals"]] == [0.45, 1.35]
    # breakfast: 50 g / 12 + (150 - 110) / 45 = 5.0556 U, rounded down
    assert ins["boluses"][0]["requested"] == 5.05
    # dinner: 96 g / 12 = 8 U, dual: 40 % now (3.2 U), 4.8 U over 2 h after it
    dinner = ins["boluses"][1]
    assert (dinner["kind"], dinner["requested"], dinner["delivered"]) == ("dual", 8.0, 8.0)
    assert ins["extended_units"] == pytest.approx(4.8)
    done = {e["id"]: e["at_min"] for e in report["events"] if e["type"] == "bolus_complete"}
    now_end = 1200 + 3.2 / 1.5
    assert sorted(done.values())[-2:] == pytest.approx([now_end, now_end + 120])
    # refusals are events and the run goes on
    refusals = rejected(report)
    assert [(e["at_min"], e["command"], e["field"]) for e in refusals] == [
        (960.0, "temp_basal", "units_h"),
        (1230.0, "insulin_bolus", "units"),
    ]
    assert "max basal 3 U/h" in refusals[0]["reason"]
    assert "max bolus 10 U" in refusals[1]["reason"]
    assert ins["boluses"][2]["status"].startswith("rejected")
    assert ins["boluses"][2]["delivered"] == 0.0
    assert ins["rejected"] == 2
    # the suspend reminder 30 min into the suspension
    reminder = [a for a in report["alarms"] if a["code"] == "paused_too_long"]
    assert reminder[0] == {
        "at_min": 1020.0,
        "code": "paused_too_long",
        "priority": "medium",
        "channel": 0,
    }
    paused = [e for e in report["events"] if e["type"] == "paused"]
    assert [e["at_min"] for e in paused] == [990.0]
    assert report["final_state"] == "running"


def test_dst_spring_forward_day_in_mmol_per_litre() -> None:
    report = run("insulin-dst-spring-forward.json")
    ins = report["insulin"]
    # Europe/London 2026-03-29 has 23 hours: 00:00-01:00 at 0.5; the 01:30 segment starts at
    # 02:00 BST (the end of the gap) and runs to 06:00; 06:00-22:00 at 1.0; 22:00-24:00 at 0.7.
    hand = 0.5 * 1 + 0.6 * 4 + 1.0 * 16 + 0.7 * 2
    assert ins["basal_units"] == pytest.approx(hand)
    assert ins["scheduled_basal_units"] == pytest.approx(hand)
    steps = [
        (e["label"].split()[1], e["at_min"])
        for e in report["events"]
        if e["type"] == "step_started"
    ]
    # each segment starts at its local time; the next local midnight is 23 h on
    assert steps == [("00:00", 0), ("01:30", 60), ("06:00", 300), ("22:00", 1260), ("00:00", 1380)]
    breakfast, lunch, extended = ins["boluses"]
    # 08:00 BST is 7 h after midnight: 40 g / 10 + (9.5 - 6) / 2.5 mmol/L per U
    assert breakfast["bg_mg_dl"] == pytest.approx(9.5 * MG_DL_PER_MMOL_L)
    assert breakfast["correction_units"] == pytest.approx(1.4)
    assert breakfast["requested"] == 5.4
    assert lunch["bg_mg_dl"] is None and lunch["correction_units"] == 0.0
    assert lunch["requested"] == 5.5  # 55 g / 10, breakfast gone after 5.5 h
    assert (extended["kind"], extended["delivered"]) == ("extended", 3.0)
    assert report["delivered_dose"]["value"] == pytest.approx(hand + 5.4 + 5.5 + 3.0)
    assert report["summary"]["start_local"] == "2026-03-29T00:00:00+00:00"
    assert report["summary"]["isf_mg_dl_per_unit"] == pytest.approx(2.5 * MG_DL_PER_MMOL_L)


# ---- runs built in the test ------------------------------------------------------------------

BASE_PROGRAM: dict[str, Any] = {
    "therapy": "insulin",
    "basal": [{"start": "00:00", "rate": "1 units/h"}],
    "carb_ratio": "10 g/unit",
    "isf": "50 mg/dL/unit",
    "target": "110 mg/dL",
    "max_bolus": "10 units",
    "max_basal": "3 units/h",
    "max_iob": "12 units",
}


def program(**changes: Any) -> InsulinProgramSpec:
    return InsulinProgramSpec.model_validate({**BASE_PROGRAM, **changes})


def events(
    *raw: dict[str, Any], duration_s: float = 86_400.0
) -> list[tuple[float, InsulinEventSpec]]:
    return timed_events([InsulinEventSpec.model_validate(e) for e in raw], duration_s)


def test_refused_commands_become_rejected_events_and_the_run_goes_on() -> None:
    report = run_insulin(
        program(),
        events(
            {"at": "1 h", "type": "resume_insulin"},  # not suspended
            {"at": "2 h", "type": "insulin_bolus", "dose": "0.07 units"},  # not whole pulses
            {"at": "3 h", "type": "suspend_insulin"},
            {"at": "3.5 h", "type": "insulin_bolus", "dose": "2 units"},  # suspended
            {"at": "3.6 h", "type": "temp_basal", "percent": 50, "duration": "1 h"},  # suspended
            {"at": "4 h", "type": "resume_insulin"},
            {"at": "5 h", "type": "meal", "carbs": "5 g", "bg": "60 mg/dL"},  # 0.5 - 1 U: none
            {"at": "6 h", "type": "insulin_bolus", "dose": "10 units"},
            {"at": "6.5 h", "type": "insulin_bolus", "dose": "5 units"},  # over max IOB 12
        ),
        12 * 3600.0,
    )
    refusals = [(e["at_min"], e["command"]) for e in rejected(report)]
    assert refusals == [
        (60.0, "resume_insulin"),
        (120.0, "insulin_bolus"),
        (210.0, "insulin_bolus"),
        (216.0, "temp_basal"),
        (390.0, "insulin_bolus"),
    ]
    assert all(e["reason"] for e in rejected(report))
    assert "max IOB" in rejected(report)[-1]["reason"]
    statuses = [b["status"] for b in report["insulin"]["boluses"]]
    assert statuses[0].startswith("rejected") and statuses[1].startswith("rejected")
    assert statuses[2] == "no bolus: the wizard dose is 0 U"
    assert statuses[3:] == ["given", statuses[4]] and statuses[4].startswith("rejected")
    assert report["insulin"]["suspended_min"] == pytest.approx(60.0)
    assert report["insulin"]["basal_units"] == pytest.approx(11.0)
    assert report["insulin"]["bolus_units"] == pytest.approx(10.0)
    assert report["final_state"] == "running"


def test_an_empty_reservoir_stops_the_pump_with_an_alarm() -> None:
    report = run_insulin(
        program(reservoir="20 units", reservoir_low="5 units"),
        events({"at": "1 h", "type": "insulin_bolus", "dose": "10 units"}),
        24 * 3600.0,
    )
    codes = [(a["code"], a["priority"]) for a in report["alarms"]]
    assert codes == [("reservoir_low", "low"), ("reservoir_empty", "high")]
    assert report["alarms"][1]["at_min"] == pytest.approx(10 * H_MIN, abs=1)  # 10 U + 10 h basal
    assert report["final_state"] == "alarm"
    assert report["delivered_dose"]["value"] == pytest.approx(20.0)
    assert report["insulin"]["reservoir_units_end"] == 0.0


def test_a_temp_basal_expires_by_itself() -> None:
    report = run_insulin(
        program(),
        events({"at": "2 h", "type": "temp_basal", "rate": "2.5 units/h", "duration": "90 min"}),
        6 * 3600.0,
    )
    ended = [e["at_min"] for e in report["events"] if e["type"] == "temp_basal_ended"]
    assert ended == [210.0]
    assert report["insulin"]["basal_units"] == pytest.approx(6 - 1.5 + 2.5 * 1.5)
    assert report["insulin"]["iob_units_end"] > 0.0  # 2.25 U above the schedule


def test_settings_problems_are_all_reported_with_program_paths() -> None:
    with pytest.raises(InputErrors) as err:
        insulin_settings(program(carb_ratio="10 g", isf="50 mg/dL/U", max_iob="15 mL"))
    fields = [p.field for p in err.value.problems]
    assert fields == ["program.carb_ratio", "program.isf", "program.max_iob"]
    assert "ISMP" in err.value.problems[1].rule
    with pytest.raises(InputErrors) as err:
        insulin_settings(program(basal=[{"start": "01:00", "rate": "0.83 units/h"}], dia="3 h"))
    assert {p.field for p in err.value.problems} >= {
        "program.basal[0].start",
        "program.basal[0].units_h",
        "program.dia_h",
    }
    with pytest.raises(InputError) as one:
        run_insulin(program(max_basal="0.5 units/h"), [], 3600.0)  # 1 U/h basal above it
    assert one.value.field == "program.basal[0].units_h"
    with pytest.raises(InputErrors):
        insulin_pump(program(reservoir="2 mL", bolus_rate="fast"))


def test_units_are_parsed_at_the_edge() -> None:
    s = insulin_settings(
        program(
            target=["5.5 mmol/L", "7 mmol/L"],
            isf="3 mmol/L/unit",
            carb_ratio="8 g/units",
            max_basal="0.05 units/min",
            dia="360 min",
            peak="55 min",
            concentration="200 units/mL",
        )
    )
    assert (s.target_low_mg_dl, s.target_high_mg_dl) == pytest.approx(
        (5.5 * MG_DL_PER_MMOL_L, 7 * MG_DL_PER_MMOL_L)
    )
    assert s.isf_mg_dl_per_unit == pytest.approx(3 * MG_DL_PER_MMOL_L)
    assert s.carb_ratio_g_per_unit == 8.0
    assert s.max_basal_units_h == pytest.approx(3.0)
    assert (s.dia_h, s.peak_min, s.units_per_ml) == (6.0, 55.0, 200.0)
    pump = insulin_pump(program(reservoir="300 units", bolus_rate="2 units/min", pulse="0.1 units"))
    assert (pump.reservoir_units, pump.bolus_rate_units_min, pump.pulse_units) == (300.0, 2.0, 0.1)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"type": "meal"}, "needs carbs"),
        ({"type": "meal", "carbs": "40 g", "dose": "2 units"}, "takes no dose"),
        ({"type": "insulin_bolus", "dose": "4 U"}, "ISMP"),
        ({"type": "insulin_bolus", "dose": "4 mg"}, "units"),
        (
            {"type": "insulin_bolus", "dose": "4 units", "kind": "dual", "over": "1 h"},
            "split_percent",
        ),
        ({"type": "insulin_bolus", "dose": "4 units", "kind": "extended"}, "needs over"),
        ({"type": "insulin_bolus", "dose": "4 units", "over": "1 h"}, "takes no over"),
        (
            {
                "type": "insulin_bolus",
                "dose": "4 units",
                "kind": "dual",
                "over": "1 h",
                "split_percent": 100,
            },
            "less than 100",
        ),
        ({"type": "temp_basal", "duration": "1 h"}, "percent or rate"),
        (
            {"type": "temp_basal", "percent": 50, "rate": "1 units/h", "duration": "1 h"},
            "percent or rate",
        ),
        ({"type": "temp_basal", "percent": 50}, "needs duration"),
        ({"type": "temp_basal", "rate": "1 units/kg/h", "duration": "1 h"}, "insulin rate"),
        ({"type": "meal", "carbs": "40 g", "bg": "120 mg"}, "glucose"),
        ({"type": "suspend_insulin", "kind": "normal"}, "takes no kind"),
        ({"type": "suspend_insulin", "channel": 1}, "Extra inputs"),
        ({"type": "pause"}, "Input should be"),
    ],
)
def test_bad_events_are_refused_when_the_file_is_read(event: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        InsulinEventSpec.model_validate({"at": "1 h", **event})
    assert message in str(err.value)


def test_event_times() -> None:
    raw = [
        InsulinEventSpec(at="2 h", type="suspend_insulin"),
        InsulinEventSpec(at="30 min", type="meal", carbs="10 g"),
        InsulinEventSpec(at="2 h", type="resume_insulin"),
    ]
    assert [(t, e.type) for t, e in timed_events(raw, 3 * 3600.0)] == [
        (1800.0, "meal"),
        (7200.0, "suspend_insulin"),
        (7200.0, "resume_insulin"),  # ties keep file order
    ]
    with pytest.raises(InputError) as err:
        timed_events(raw, 3600.0)
    assert err.value.field == "events[0].at"
    with pytest.raises(InputError):
        run_insulin(program(), [], 0.0)
    with pytest.raises(InputError):
        run_insulin(program(), [(7200.0, raw[0])], 3600.0)


def test_program_spec_is_strict_and_frozen() -> None:
    with pytest.raises(ValidationError):
        InsulinProgramSpec.model_validate({**BASE_PROGRAM, "therapy": "continuous"})
    with pytest.raises(ValidationError):
        InsulinProgramSpec.model_validate({**BASE_PROGRAM, "max_iob_units": 5})
    with pytest.raises(ValidationError):
        InsulinProgramSpec.model_validate({**BASE_PROGRAM, "basal": []})
    spec = program()
    with pytest.raises(ValidationError):
        spec.dia = "6 h"  # type: ignore[misc]


def test_insulin_event_types_can_share_a_discriminated_union_with_hospital_events() -> None:
    assert set(INSULIN_EVENT_TYPES).isdisjoint(get_args(EventType))
    assert set(INSULIN_EVENT_TYPES) == {
        "meal",
        "insulin_bolus",
        "temp_basal",
        "cancel_temp_basal",
        "suspend_insulin",
        "resume_insulin",
    }
