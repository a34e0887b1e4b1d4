"""Hospital pump scenarios: every example file runs, and each therapy delivers what a hand
computation says it should.

Hand computations are written out in each test from the program (rate x time, dose x
weight / concentration, the mechanism's compliance and resistance for pressure), never
read back from the engine. Volumes the mechanism moved (``pumped_ml``) are whole quanta
(0.005 mL on the large-volume pump), so they are compared within one quantum;
``program_ml``, ``kvo_ml`` and ``secondary_ml`` are exact.

Example files: exit code 0, unless the file name says otherwise (``*-blocked-*``: 4, a
hard limit; ``*-needs-override*``: 3, a soft limit without a reason).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from openinfusion.cli.main import app
from openinfusion.errors import InputError
from openinfusion.library import HardLimitError, SoftLimitError, sample_library
from openinfusion.pump import scenario as scenario_module
from openinfusion.pump.codes import Alarm
from openinfusion.pump.mechanics import lvp, syringe
from openinfusion.pump.scenario import Run, run_scenario, scenario_from_data

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "pump").glob("*.json"))
runner = CliRunner()

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
CHANNEL_KEYS = {
    "channel",
    "state",
    "rate_ml_h",
    "therapy",
    "drug",
    "step",
    "pumped_ml",
    "program_ml",
    "kvo_ml",
    "secondary_ml",
    "patient_ml",
    "vtbi_ml",
    "reservoir_ml",
    "pressure_mmhg",
    "line",
    "overlays",
    "delivered_dose",
}
REFUSED_KEYS = {"error", "verdict", "delivered_ml", "exit_code"}
ALARM_CODES = {a.code for a in Alarm}
LVP_QUANTUM = lvp().quantum_ml
LIB = sample_library()


@pytest.fixture(autouse=True)
def _parse_the_sample_library_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each run would parse the sample library's YAML again (most of a run's time)."""
    monkeypatch.setattr(scenario_module, "sample_library", lambda: LIB)


def cli(*args: str) -> Result:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception,
        result.output,
    )
    assert "Traceback" not in result.output
    return result


def cli_json(*args: str, code: int = 0) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


def expected_exit(path: Path) -> int:
    if "-blocked-" in path.stem or path.stem.endswith("-blocked"):
        return 4
    if "needs-override" in path.stem:
        return 3
    return 0


def run(data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return run_scenario(scenario_from_data(data), **kwargs)


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "examples" / "pump" / name).read_text())
    return data


def events(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in report["events"] if e["type"] == kind]


def alarms(report: dict[str, Any]) -> list[tuple[float, str]]:
    """Every annunciation as (minute, code): an escalated alarm appears a second time."""
    return [(a["at_min"], a["code"]) for a in report["alarms"]]


def check_report(report: dict[str, Any]) -> None:
    assert set(report) >= REPORT_KEYS
    assert report["delivered_ml"] >= 0
    assert report["delivered_ml"] == pytest.approx(sum(c["pumped_ml"] for c in report["channels"]))
    for channel in report["channels"]:
        assert set(channel) >= CHANNEL_KEYS
        # patient_ml is not rounded to whole quanta: allow one (0.05 mL, the largest)
        assert channel["patient_ml"] <= channel["pumped_ml"] + 0.05
    for alarm in report["alarms"]:
        assert set(alarm) - {"pump"} == {"at_min", "code", "priority", "channel"}  # pump: regimens
        assert alarm["code"] in ALARM_CODES
        assert alarm["priority"] in ("high", "medium", "low")
        assert 0 <= alarm["at_min"] <= report["duration_min"]
    times = [e["at_min"] for e in report["events"]]
    assert times == sorted(times)
    assert all({"at_min", "type"} <= set(e) for e in report["events"])


# ---- every example file ------------------------------------------------------------------------


def test_the_examples_are_there() -> None:
    assert len(EXAMPLES) >= 29


def _therapies(data: dict[str, Any]) -> set[str]:
    programs = [data.get("program")] + [p.get("program") for p in data.get("programs", [])]
    return {p["therapy"] for p in programs if isinstance(p, dict) and "therapy" in p}


KNOWN_THERAPIES = {
    d["properties"]["therapy"]["const"]
    for d in scenario_module.schema()["$defs"].values()
    if "const" in d.get("properties", {}).get("therapy", {})
}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_through_the_cli(path: Path) -> None:
    unknown = _therapies(json.loads(path.read_text(encoding="utf-8"))) - KNOWN_THERAPIES
    assert not unknown, f"the scenario runner does not know therapy {sorted(unknown)}"
    code = expected_exit(path)
    out = cli_json("pump", "run", str(path), code=code)
    if code == 0:
        check_report(out)
    else:
        assert set(out) >= REFUSED_KEYS
        assert out["exit_code"] == code
        assert out["delivered_ml"] == 0.0
        assert out["verdict"] == ("hard" if code == 4 else "soft")
        assert out["error"]["findings"], out


# ---- the issue's scenarios ------------------------------------------------------------------

ISSUE_SCENARIO: dict[str, Any] = {
    "care_area": "Adult ICU",
    "patient": {"weight": "70 kg"},
    "pump": {"kind": "syringe", "syringe_ml": 50},
    "duration": "2 h",
    "program": {
        "therapy": "continuous",
        "drug": "norepinephrine",
        "concentration": "4 mg/250 mL",
        "dose": "0.1 mcg/kg/min",
        "vtbi": "50 mL",
    },
    "events": [{"at": "30 min", "type": "occlusion"}, {"at": "45 min", "type": "clear_occlusion"}],
}

# 50 mL syringe: 1.0e-3 mL/mmHg compliance, 1800 mmHg.s/mL line resistance, patient at
# 10 mmHg; Adult ICU occlusion limit 525 mmHg.
C, R, P_PATIENT, P_LIMIT = 1.0e-3, 1800.0, 10.0, 525.0


def test_syringe_constants_used_by_the_hand_computations() -> None:
    mech = syringe(50)
    assert (mech.compliance_ml_per_mmhg, mech.resistance_mmhg_s_per_ml) == (C, R)
    assert mech.patient_pressure_mmhg == P_PATIENT


def test_issue_scenario_norepinephrine_occlusion(tmp_path: Path) -> None:
    path = tmp_path / "issue.json"
    path.write_text(json.dumps(ISSUE_SCENARIO))
    out = cli_json("pump", "run", str(path))
    check_report(out)
    rate = 0.1 * 70 * 60 / 1000 / (4 / 250)  # 26.25 mL/h
    assert out["summary"]["rate_ml_h"] == pytest.approx(rate)
    # Line pressure while patent: 10 + 26.25/3600 x 1800 = 23.125 mmHg. Occluded, it rises
    # by 1/C per mL pumped: the 525 mmHg limit is 0.501875 mL (68.8 s) later.
    p_running = P_PATIENT + rate / 3600 * R
    to_alarm_ml = C * (P_LIMIT - p_running)
    alarm_min = 30 + to_alarm_ml / (rate / 60)
    assert alarm_min == pytest.approx(31.147, abs=1e-3)
    assert alarms(out)[0] == (pytest.approx(alarm_min, abs=1e-5), "occlusion_downstream")
    assert out["alarms"][0]["priority"] == "high"
    # Back-off withdraws 0.25 mL of the 0.515 mL stored; the rest reaches the patient
    # when the occlusion is cleared.
    (backoff,) = events(out, "backoff")
    assert backoff["volume_ml"] == pytest.approx(0.25)
    (released,) = events(out, "occlusion_released")
    assert released["at_min"] == 45.0
    assert released["bolus_ml"] == pytest.approx(to_alarm_ml - 0.25, abs=1e-6)
    # Clearing the occlusion does not restart delivery: the clinician must resume.
    assert out["final_state"] == "paused"
    ch = out["channels"][0]
    assert ch["program_ml"] == pytest.approx(rate / 2 + to_alarm_ml)
    assert out["delivered_dose"]["unit"] == "mcg"
    assert out["delivered_dose"]["value"] == pytest.approx((rate / 2 + to_alarm_ml) * 16)


def test_example_norepinephrine_occlusion_resumed() -> None:
    out = run(example("continuous-norepinephrine-occlusion.json"))
    rate = 26.25
    stored = C * (P_LIMIT - (P_PATIENT + rate / 3600 * R))
    # 30 min, then the volume pumped into the occluded line, then 46 -> 120 min
    expected = rate * 30 / 60 + stored + rate * 74 / 60
    assert out["channels"][0]["program_ml"] == pytest.approx(expected)
    assert out["final_state"] == "running"
    assert [code for _, code in alarms(out)] == ["occlusion_downstream"]


ISSUE_PCA: dict[str, Any] = {
    "therapy": "pca",
    "drug": "morphine",
    "concentration": "1 mg/mL",
    "demand_dose": "1 mg",
    "lockout": "10 min",
    "basal": "0 mg/h",
    "limit_4h": "10 mg",
}


def test_issue_pca_program_with_demands(tmp_path: Path) -> None:
    demands = [0, 5, 15, 30, 45, 60, 75, 90, 105, 120, 135, 150, 165]
    data = {
        "care_area": "Adult Med-Surg",
        "patient": {"weight": "70 kg"},
        "pump": {"kind": "pca"},
        "duration": "4 h",
        "program": ISSUE_PCA,
        "events": [{"at": f"{m} min", "type": "demand"} for m in demands],
    }
    path = tmp_path / "pca.json"
    path.write_text(json.dumps(data))
    out = cli_json("pump", "run", str(path))
    check_report(out)
    # 5 min: inside the 10-min lockout. Then a grant every 15 min until 10 mg (10 doses of
    # 1 mg) are in the 4-hour window: 150 and 165 min are refused by the 4-hour limit.
    assert out["pca"] == {
        "demands": 13,
        "granted": 10,
        "denied": 3,
        "denied_reasons": {"lockout": 1, "4-hour limit": 2},
    }
    granted = [e["at_min"] for e in events(out, "pca_granted")]
    assert granted == [0, 15, 30, 45, 60, 75, 90, 105, 120, 135]
    assert out["delivered_dose"] == {"value": pytest.approx(10.0), "unit": "mg"}
    # each 1 mL demand runs at 150 mL/h: 24 s
    completes = [e["at_min"] for e in events(out, "bolus_complete")]
    assert completes == pytest.approx([g + 0.4 for g in granted])


# ---- exit codes, journal, recovery ------------------------------------------------------------


def test_bad_scenario_exits_2_naming_the_field(tmp_path: Path) -> None:
    bad = {**ISSUE_SCENARIO, "program": {**ISSUE_SCENARIO["program"], "speed": 3}}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    result = cli("pump", "run", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: program.continuous.speed")
    out = cli_json("pump", "run", str(path), code=2)
    assert out["error"]["field"] == "program.continuous.speed"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"duration": "2 kg"}, "duration"),
        ({"events": [{"at": "3 h", "type": "occlusion"}]}, "events[0].at"),
        ({"events": [{"at": "10 min", "type": "explode"}]}, "events.0.type"),
        ({"events": [{"at": "10 min", "type": "pause", "channel": 1}]}, "events[0].channel"),
        ({"pump": {"kind": "syringe", "syringe_ml": 45}}, "syringe_ml"),
        ({"care_area": "Mars Base"}, "care_area"),
        ({"patient": {"weight": "70"}}, "weight"),
        ({"program": None}, "program"),
        (
            {"programs": [{"channel": 0, "program": ISSUE_SCENARIO["program"]}]},
            "programs",
        ),
    ],
)
def test_bad_scenarios_name_the_field(tmp_path: Path, change: dict[str, Any], field: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**ISSUE_SCENARIO, **change}))
    out = cli_json("pump", "run", str(path), code=2)
    assert out["error"]["field"] == field, out


def test_program_field_errors_exit_2(tmp_path: Path) -> None:
    data = {**ISSUE_SCENARIO, "program": {**ISSUE_SCENARIO["program"], "dose": "0.1 mcg/kg"}}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    out = cli_json("pump", "run", str(path), code=2)
    assert out["error"]["field"] == "dose"
    assert out["error"]["value"] == "0.1 mcg/kg"


def test_missing_file_and_bad_json_exit_2(tmp_path: Path) -> None:
    assert cli("pump", "run", str(tmp_path / "nope.json")).exit_code == 2
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert cli("pump", "run", str(broken)).exit_code == 2


def test_soft_limit_exits_3_without_a_reason_and_runs_with_one() -> None:
    path = ROOT / "examples" / "pump" / "dopamine-soft-needs-override.json"
    refused = cli_json("pump", "run", str(path), code=3)
    assert refused["verdict"] == "soft" and refused["delivered_ml"] == 0.0
    (finding,) = refused["error"]["findings"]
    assert (finding["parameter"], finding["bound"], finding["limit"]) == ("dose", "soft_max", 20)
    out = cli_json("pump", "run", str(path), "--override-reason", "refractory shock")
    check_report(out)
    assert out["verdict"] == "soft" and out["override"] == "refractory shock"
    # 25 mcg/kg/min x 70 kg = 1750 mcg/min = 105 mg/h at 1.6 mg/mL = 65.625 mL/h for 1 h
    assert out["channels"][0]["program_ml"] == pytest.approx(65.625)
    human = cli("pump", "run", str(path))
    assert human.exit_code == 3 and "not started" in human.stdout


def test_hard_limit_exits_4_and_delivers_nothing(tmp_path: Path) -> None:
    path = ROOT / "examples" / "pump" / "norepinephrine-blocked-hard.json"
    journal = tmp_path / "blocked.db"
    out = cli_json(
        "pump", "run", str(path), "--override-reason", "any", "--journal", str(journal), code=4
    )
    assert out["verdict"] == "hard" and out["delivered_ml"] == 0.0
    bounds = {(f["parameter"], f["bound"]) for f in out["error"]["findings"]}
    assert ("dose", "hard_max") in bounds
    # nothing was programmed: the journal has nothing to recover
    recovered = cli_json("pump", "recover", str(journal), code=2)
    assert "no checkpoint" in recovered["error"]["rule"]


def test_journal_then_recover(tmp_path: Path) -> None:
    journal = tmp_path / "pump.db"
    path = ROOT / "examples" / "pump" / "vasopressor-norepinephrine-per-kg.json"
    out = cli_json("pump", "run", str(path), "--journal", str(journal))
    assert journal.exists()
    again = cli_json("pump", "run", str(path), "--journal", str(journal), code=2)
    assert again["error"]["field"] == "journal"
    rec = cli_json("pump", "recover", str(journal))
    assert {"serial", "t_s", "checkpoint_seq", "last_seq", "uncertain_commands", "channels"} <= set(
        rec
    )
    assert rec["t_s"] >= 7200.0
    (ch,) = rec["channels"]
    assert ch["state_before"] == "running"
    assert ch["state_after"] == "alarm"  # never restarts by itself
    assert ch["confirmed_ml"] == pytest.approx(out["channels"][0]["program_ml"])
    # what may have been pumped after the last commit is assumed delivered (at most one
    # minute at 26.25 mL/h)
    assert ch["confirmed_ml"] <= ch["assumed_ml"] <= ch["confirmed_ml"] + 26.25 / 60 + 1e-9
    codes = {(a["code"], a["priority"]) for a in rec["status"]["alarms"]}
    assert ("crash_recovered", "high") in codes
    assert rec["status"]["channels"][0]["rate_ml_h"] == 0.0
    human = cli("pump", "recover", str(journal))
    assert human.exit_code == 0 and "recovered SIM-0001" in human.stdout
    assert cli("pump", "recover", str(tmp_path / "none.db")).exit_code == 2


def test_schema_and_codes_commands() -> None:
    schema = json.loads(cli("pump", "schema").stdout)
    assert {"duration", "program", "programs", "events", "pump", "patient"} <= set(
        schema["properties"]
    )
    codes = cli_json("pump", "codes")
    assert {c["code"] for c in codes} == ALARM_CODES
    by_code = {c["code"]: c for c in codes}
    assert by_code["occlusion_downstream"]["priority"] == "high"
    assert by_code["occlusion_downstream"]["stops_flow"] is True
    assert by_code["vtbi_complete"] == {
        "code": "vtbi_complete",
        "priority": "medium",
        "stops_flow": False,
        "meaning": Alarm.VTBI_COMPLETE.value.meaning,
    }
    text = cli("pump", "codes").stdout
    assert re.search(r"^air_in_line\s+high\s+stops", text, re.MULTILINE)


def test_human_output_and_no_events() -> None:
    path = ROOT / "examples" / "pump" / "pca-morphine.json"
    human = cli("pump", "run", str(path))
    assert human.exit_code == 0
    assert "PCA: 13 demands, 10 granted, 3 denied" in human.stdout
    out = cli_json("pump", "run", str(path), "--no-events")
    assert "events" not in out


# ---- continuous, VTBI and KVO, volume over time ----------------------------------------------


def test_vtbi_then_kvo_at_1_ml_h_without_a_care_area() -> None:
    """100 mL/h for 30 min (50 mL), then KVO at the pump's default 1 mL/h for 30 min."""
    out = run(
        {
            "duration": "1 h",
            "program": {"therapy": "continuous", "rate": "100 mL/h", "vtbi": "50 mL"},
        }
    )
    check_report(out)
    ch = out["channels"][0]
    assert ch["program_ml"] == pytest.approx(100 * 30 / 60)
    assert ch["kvo_ml"] == pytest.approx(1 * 30 / 60)
    assert out["delivered_ml"] == pytest.approx(50.5, abs=LVP_QUANTUM)
    assert out["verdict"] is None  # no care area, no library: nothing to check against
    assert out["final_state"] == "kvo" and ch["rate_ml_h"] == 1.0
    (kvo,) = events(out, "kvo_started")
    assert kvo["at_min"] == 30.0
    assert alarms(out)[0] == (30.0, "vtbi_complete")


def test_vtbi_then_kvo_at_the_care_area_rate() -> None:
    out = run(example("vtbi-kvo-basic.json"))
    ch = out["channels"][0]
    # Adult Med-Surg KVO is 5 mL/h: 50 mL, then 30 min x 5 mL/h
    assert (ch["program_ml"], ch["kvo_ml"]) == (pytest.approx(50.0), pytest.approx(2.5))
    assert out["verdict"] == "soft"  # a basic infusion is never silently unprotected
    # acknowledged at 32 min: the medium alarm does not escalate
    assert alarms(out) == [(30.0, "vtbi_complete")]


def test_unacknowledged_medium_alarm_escalates_after_5_min() -> None:
    out = run(example("volume-over-time.json"))
    assert alarms(out) == [(480.0, "vtbi_complete"), (485.0, "vtbi_complete")]
    assert [a["priority"] for a in out["alarms"]] == ["medium", "high"]


def test_volume_over_time() -> None:
    out = run(example("volume-over-time.json"))
    # 1000 mL over 8 h = 125 mL/h; then 2 h of KVO at 5 mL/h
    assert out["summary"]["rate_ml_h"] == 125.0
    ch = out["channels"][0]
    assert ch["program_ml"] == pytest.approx(1000.0)
    assert ch["kvo_ml"] == pytest.approx(10.0)
    assert out["delivered_ml"] == pytest.approx(1010.0, abs=LVP_QUANTUM)


def test_per_kg_vasopressor() -> None:
    out = run(example("vasopressor-norepinephrine-per-kg.json"))
    # 0.1 mcg/kg/min x 70 kg x 120 min = 840 mcg; at 16 mcg/mL = 52.5 mL
    assert out["delivered_dose"] == {"value": pytest.approx(840.0), "unit": "mcg"}
    assert out["delivered_ml"] == pytest.approx(52.5, abs=LVP_QUANTUM)


def test_basic_infusion_rate() -> None:
    out = run(example("basic-infusion-rate.json"))
    assert out["delivered_ml"] == pytest.approx(125 * 2, abs=LVP_QUANTUM)
    assert out["override"] == "basic infusion: maintenance fluid, no drug"
    assert out["delivered_dose"] is None


# ---- loading dose and clinician bolus ----------------------------------------------------------


def test_loading_then_maintenance() -> None:
    out = run(example("loading-then-maintenance-milrinone.json"))
    # loading 50 mcg/kg x 70 kg = 3.5 mg = 17.5 mL over 10 min (105 mL/h);
    # maintenance 0.375 mcg/kg/min x 70 kg = 1.575 mg/h = 7.875 mL/h for 110 min
    loading_ml, maintenance = 3.5 / 0.2, 0.375 * 70 * 60 / 1000 / 0.2
    expected = loading_ml + maintenance * 110 / 60
    assert out["channels"][0]["program_ml"] == pytest.approx(expected)
    assert out["delivered_dose"] == {"value": pytest.approx(expected * 200), "unit": "mcg"}
    steps = [(e["at_min"], e["kind"], e["rate_ml_h"]) for e in events(out, "step_started")]
    assert steps == [
        (0.0, "loading", pytest.approx(105.0)),
        (10.0, "continuous", pytest.approx(maintenance)),
    ]


def test_loading_over_the_default_20_min() -> None:
    data = example("loading-then-maintenance-milrinone.json")
    del data["program"]["loading_over"]
    out = run(data)
    # 17.5 mL over 20 min (52.5 mL/h), then 7.875 mL/h for 100 min
    assert out["channels"][0]["program_ml"] == pytest.approx(17.5 + 7.875 * 100 / 60)
    assert events(out, "step_started")[1]["at_min"] == 20.0


def test_clinician_bolus_from_a_running_infusion() -> None:
    out = run(example("heparin-bolus-from-infusion.json"))
    # 18 units/kg/h x 80 kg = 1440 units/h = 14.4 mL/h for 6 h; bolus 80 units/kg x 80 kg
    # = 6400 units = 64 mL at 600 mL/h (6.4 min) on top
    assert out["channels"][0]["program_ml"] == pytest.approx(14.4 * 6 + 64)
    assert out["delivered_dose"] == {"value": pytest.approx(1440 * 6 + 6400), "unit": "units"}
    (started,) = events(out, "bolus_started")
    (done,) = events(out, "bolus_complete")
    assert (started["at_min"], started["volume_ml"]) == (60.0, pytest.approx(64.0))
    assert done["at_min"] == pytest.approx(60 + 64 / 600 * 60)


def test_bolus_above_the_hard_limit_is_rejected_and_the_infusion_goes_on() -> None:
    data = example("heparin-bolus-from-infusion.json")
    data["events"] = [{"at": "1 h", "type": "bolus", "dose": "120 units/kg"}]
    out = run(data)
    (rejected,) = events(out, "rejected")
    assert rejected["command"] == "bolus" and "hard limit" in rejected["reason"]
    assert out["channels"][0]["program_ml"] == pytest.approx(14.4 * 6)


# ---- intermittent, multistep, ramp and taper ---------------------------------------------------


def test_intermittent_q6h_doses() -> None:
    out = run(example("intermittent-piperacillin-q6h.json"))
    # 4.5 g in 100 mL over 30 min (200 mL/h), at 0, 6, 12 and 18 h
    doses = [e["at_min"] for e in events(out, "step_started") if e["kind"] == "dose"]
    assert doses == [0.0, 360.0, 720.0, 1080.0]
    assert out["channels"][0]["program_ml"] == pytest.approx(4 * 100.0)
    assert out["delivered_dose"] == {"value": pytest.approx(4 * 4.5), "unit": "g"}
    assert out["final_state"] == "complete"
    assert alarms(out)[0] == (18 * 60 + 30, "vtbi_complete")


def test_intermittent_q6h_runs_past_24_hours() -> None:
    data = example("intermittent-piperacillin-q6h.json")
    del data["program"]["doses"]
    data["duration"] = "31 h"
    out = run(data)
    assert "dose_limit" not in [code for _, code in alarms(out)]
    assert out["channels"][0]["program_ml"] == pytest.approx(6 * 100.0)


def test_multistep() -> None:
    out = run(example("multistep-basic.json"))
    # 100 mL at 200 mL/h (30 min), 1 h at 100 mL/h (100 mL), 50 mL at 50 mL/h (1 h);
    # then KVO at 5 mL/h for the last 30 min
    starts = [(e["at_min"], e["rate_ml_h"]) for e in events(out, "step_started")]
    assert starts == [(0.0, 200.0), (30.0, 100.0), (90.0, 50.0)]
    ch = out["channels"][0]
    assert ch["program_ml"] == pytest.approx(250.0)
    assert ch["kvo_ml"] == pytest.approx(2.5)
    assert alarms(out) == [(150.0, "vtbi_complete"), (155.0, "vtbi_complete")]  # escalated


def test_multistep_with_drug_doses_and_an_override() -> None:
    out = run(
        {
            "care_area": "Adult ICU",
            "patient": {"weight": "70 kg"},
            "duration": "2 h",
            "override_reason": "refractory shock",
            "program": {
                "therapy": "multistep",
                "drug": "dopamine",
                "concentration": "400 mg/250 mL",
                "steps": [
                    {"dose": "5 mcg/kg/min", "duration": "30 min"},
                    {"dose": "25 mcg/kg/min", "duration": "30 min"},
                ],
            },
        }
    )
    # 13.125 mL/h and 65.625 mL/h for 30 min each, then 1 h of KVO at 5 mL/h
    ch = out["channels"][0]
    assert ch["program_ml"] == pytest.approx((13.125 + 65.625) / 2)
    assert ch["kvo_ml"] == pytest.approx(5.0)
    assert out["verdict"] == "soft" and out["override"] == "refractory shock"


def test_ramp_taper_delivers_exactly_its_volume() -> None:
    out = run(example("ramp-taper-tpn.json"))
    # 2000 mL over 24 h with 2-h ramp and taper in 4 increments; plateau 2000/22 mL/h
    plateau = 2000 / (20 + (2 + 2) / 2)
    rates = [e["rate_ml_h"] for e in events(out, "step_started")]
    assert rates == pytest.approx([plateau * k / 5 for k in (1, 2, 3, 4, 5, 4, 3, 2, 1)])
    starts = [e["at_min"] for e in events(out, "step_started")]
    assert starts == pytest.approx([0, 30, 60, 90, 120, 1320, 1350, 1380, 1410])
    ch = out["channels"][0]
    assert ch["program_ml"] == pytest.approx(2000.0)
    assert alarms(out)[0] == (1440.0, "vtbi_complete")
    assert ch["kvo_ml"] == pytest.approx(5.0)  # the 25th hour at 5 mL/h


# ---- secondary, delayed start, standby, titration ----------------------------------------------


def test_secondary_piggyback_returns_to_the_primary() -> None:
    out = run(example("secondary-vancomycin-piggyback.json"))
    # primary 75 mL/h; at 30 min vancomycin 1000 mg at 5 mg/mL = 200 mL over 2 h
    # (100 mL/h) replaces it; the primary is paused meanwhile and resumes at 150 min
    ch = out["channels"][0]
    assert ch["secondary_ml"] == pytest.approx(200.0)
    assert ch["program_ml"] == pytest.approx(75 * (30 + 90) / 60)
    assert out["delivered_ml"] == pytest.approx(350.0, abs=LVP_QUANTUM)
    (started,) = events(out, "secondary_started")
    (done,) = events(out, "secondary_complete")
    assert (started["at_min"], started["rate_ml_h"], started["volume_ml"]) == (30.0, 100.0, 200.0)
    assert done["at_min"] == pytest.approx(150.0)
    assert ch["rate_ml_h"] == 75.0 and out["final_state"] == "running"


def test_secondary_by_volume_and_rate_counts_against_no_primary_vtbi() -> None:
    out = run(
        {
            "care_area": "Adult Med-Surg",
            "override_reason": "fluid",
            "duration": "2 h",
            "program": {"therapy": "continuous", "rate": "100 mL/h", "vtbi": "150 mL"},
            "events": [
                {"at": "30 min", "type": "secondary", "volume": "50 mL", "rate": "200 mL/h"}
            ],
        }
    )
    # 30 min primary (50 mL), 15 min secondary (50 mL, primary paused), then 100 mL more
    # of the primary: VTBI 150 reached at 30 + 15 + 60 = 105 min, then KVO 5 mL/h
    ch = out["channels"][0]
    assert ch["secondary_ml"] == pytest.approx(50.0)
    assert ch["program_ml"] == pytest.approx(150.0)
    assert alarms(out)[0] == (105.0, "vtbi_complete")
    assert ch["kvo_ml"] == pytest.approx(5 * 15 / 60)


def test_delayed_start() -> None:
    out = run(example("delayed-start.json"))
    (started, delay_over) = events(out, "started")
    assert (started["at_min"], started["to"]) == (0.0, "delayed")
    assert (delay_over["at_min"], delay_over["to"]) == (30.0, "running")
    assert out["channels"][0]["program_ml"] == pytest.approx(100 * 1.5)


def test_standby_then_start() -> None:
    out = run(example("standby-then-start.json"))
    (standby,) = events(out, "standby")
    (started,) = events(out, "started")
    assert (standby["at_min"], started["at_min"]) == (0.0, 20.0)
    # 0.05 mcg/kg/min x 70 kg = 3.5 mcg/min for 40 min = 140 mcg (8.75 mL)
    assert out["delivered_dose"] == {"value": pytest.approx(140.0), "unit": "mcg"}
    assert out["channels"][0]["program_ml"] == pytest.approx(8.75)
    data = example("standby-then-start.json")
    data["events"] = []
    idle = run(data)
    assert idle["final_state"] == "standby" and idle["delivered_ml"] == 0.0


def test_titration_rechecked_by_ders() -> None:
    out = run(example("titration-dopamine.json"))
    # 5, 10 and (with an override) 25 mcg/kg/min: 13.125, 26.25, 65.625 mL/h
    titrated = [(e["at_min"], e["to_ml_h"]) for e in events(out, "titrated")]
    assert titrated == [(30.0, pytest.approx(26.25)), (90.0, pytest.approx(65.625))]
    expected = 13.125 * 0.5 + 26.25 * 1 + 65.625 * 0.5
    assert out["channels"][0]["program_ml"] == pytest.approx(expected)


def test_refused_titration_is_rejected_and_the_old_rate_goes_on() -> None:
    out = run(example("titration-refused-by-hard-limit.json"))
    (rejected,) = events(out, "rejected")
    assert (rejected["at_min"], rejected["command"]) == (60.0, "titrate")
    assert "above the hard limit 50 mcg/kg/min" in rejected["reason"]
    titrated = [(e["at_min"], e["to_ml_h"]) for e in events(out, "titrated")]
    assert titrated == [(30.0, pytest.approx(26.25)), (90.0, pytest.approx(39.375))]
    # 10 mcg/kg/min kept from 30 to 90 min despite the refused 60 mcg/kg/min
    expected = 13.125 * 0.5 + 26.25 * 1 + 39.375 * 0.5
    assert out["channels"][0]["program_ml"] == pytest.approx(expected)


def test_soft_titration_without_a_reason_is_rejected() -> None:
    data = example("titration-dopamine.json")
    del data["events"][1]["override_reason"]
    out = run(data)
    (rejected,) = events(out, "rejected")
    assert rejected["at_min"] == 90.0 and "override with a reason" in rejected["reason"]
    assert out["channels"][0]["rate_ml_h"] == pytest.approx(26.25)


def test_titration_with_a_tenfold_rate_beside_the_dose_is_rejected() -> None:
    data = example("titration-dopamine.json")
    data["events"] = [
        {"at": "30 min", "type": "titrate", "dose": "10 mcg/kg/min", "rate": "262.5 mL/h"}
    ]
    out = run(data)
    (rejected,) = events(out, "rejected")
    assert "10-fold" in rejected["reason"]


def test_titration_on_a_channel_without_a_program_is_rejected() -> None:
    data = example("multichannel-vasopressor-and-fluid.json")
    data["programs"] = data["programs"][:1]
    data["events"] = [{"at": "10 min", "type": "titrate", "channel": 1, "rate": "5 mL/h"}]
    out = run(data)
    (rejected,) = events(out, "rejected")
    assert rejected["channel"] == 1 and "no program" in rejected["reason"]


# ---- PCA ----------------------------------------------------------------------------------------


def test_pca_basal_lockout_and_one_hour_limit() -> None:
    out = run(example("pca-morphine-basal-1h-limit.json"))
    # lockout 6 min, demand 1 mg, basal 0.5 mg/h, 4 mg per hour.
    # 0: granted; 3: lockout; 6, 12: granted; 18: 3 mg + 18 min of basal (0.15 mg) + 1 mg
    # would be 4.15 mg in the hour: refused; 61: the hour holds 2 mg of demands (6, 12) and
    # 0.5 mg of basal: granted; 91: the door is open (alarm); 100: granted.
    assert [e["at_min"] for e in events(out, "pca_granted")] == [0, 6, 12, 61, 100]
    assert out["pca"]["denied_reasons"] == {"lockout": 1, "1-hour limit": 1, "channel alarm": 1}
    # basal runs 0-90 min and 93-120 min (stopped by the door alarm, resumed at 93)
    basal_mg = 0.5 * (90 + 27) / 60
    assert out["delivered_dose"] == {"value": pytest.approx(5 + basal_mg), "unit": "mg"}


def test_pca_demand_during_a_dose_is_refused() -> None:
    data = example("pca-morphine.json")
    data["program"]["lockout"] = "6 min"
    data["events"] = [{"at": "0 min", "type": "demand"}, {"at": "0.2 min", "type": "demand"}]
    out = run(data)
    assert out["pca"]["denied_reasons"] == {"dose in progress": 1}


def test_pca_four_hour_limit_frees_up_as_the_window_slides() -> None:
    data = example("pca-morphine.json")
    data["duration"] = "5 h"
    data["events"] = [{"at": f"{m} min", "type": "demand"} for m in range(0, 300, 10)]
    out = run(data)
    granted = [e["at_min"] for e in events(out, "pca_granted")]
    # 10 grants, one per lockout (0-90 min); then refused until the first dose (0-0.4 min)
    # leaves the 4-hour window: the demand at 250 min finds 9 mg in the window
    assert granted[:10] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert granted[10:] == [250, 260, 270, 280, 290]
    assert out["pca"]["denied_reasons"] == {"4-hour limit": 15}


# ---- several channels ---------------------------------------------------------------------------


def test_multichannel() -> None:
    out = run(example("multichannel-vasopressor-and-fluid.json"))
    ch0, ch1 = out["channels"]
    assert ch0["program_ml"] == pytest.approx(26.25 * 2)
    # fluid at 100 mL/h: 0-30 min and 31-90 min, stopped at 90 min
    assert ch1["program_ml"] == pytest.approx(100 * (30 + 59) / 60)
    assert ch1["state"] == "idle"
    assert out["delivered_ml"] == pytest.approx(52.5 + 100 * 89 / 60, abs=2 * LVP_QUANTUM)
    assert out["delivered_dose"] == {"value": pytest.approx(840.0), "unit": "mcg"}


def test_one_channel_alarm_does_not_stop_the_other() -> None:
    data = example("multichannel-vasopressor-and-fluid.json")
    data["events"] = [{"at": "30 min", "type": "occlusion", "channel": 1}]
    out = run(data)
    ch0, ch1 = out["channels"]
    assert ch1["state"] == "alarm" and ch0["state"] == "running"
    assert ch0["program_ml"] == pytest.approx(52.5)


def test_programs_on_the_same_channel_twice_is_refused() -> None:
    data = example("multichannel-vasopressor-and-fluid.json")
    data["programs"][1]["channel"] = 0
    with pytest.raises(InputError) as exc:
        scenario_from_data(data)
    assert exc.value.field == "programs[1].channel"


# ---- faults and alarms --------------------------------------------------------------------------


def test_lvp_occlusion_time_to_alarm() -> None:
    out = run(example("fault-occlusion-lvp.json"))
    mech = lvp()
    rate = 25.0
    p_running = mech.patient_pressure_mmhg + rate / 3600 * mech.resistance_mmhg_s_per_ml
    alarm_min = 10 + mech.compliance_ml_per_mmhg * (525 - p_running) / (rate / 60)
    assert alarms(out)[0] == (pytest.approx(alarm_min, abs=1e-5), "occlusion_downstream")
    # resume at 20 min is refused (still occluded); cleared at 25, resumed at 26 min
    (rejected,) = events(out, "rejected")
    assert (rejected["at_min"], rejected["command"]) == (20.0, "resume")
    expected = rate * 10 / 60 + mech.compliance_ml_per_mmhg * (525 - p_running) + rate * 34 / 60
    assert out["channels"][0]["program_ml"] == pytest.approx(expected)


def test_air_single_bubble_and_accumulated() -> None:
    out = run(example("fault-air-in-line.json"))
    # 5 bubbles of 200 uL (each under 250 uL) make 1000 uL in 15 min: accumulated alarm
    # at 17 min; one 300 uL bubble at 40 min: single-bubble alarm
    assert alarms(out) == [(17.0, "air_accumulated"), (40.0, "air_in_line")]
    assert out["channels"][0]["program_ml"] == pytest.approx(100 * (17 + 19 + 14) / 60)


def test_disconnection_is_detected_and_fluid_lost() -> None:
    out = run(example("fault-disconnection.json"))
    ((at, code),) = alarms(out)
    assert code == "disconnection"
    assert 20.5 <= at <= 21.0
    ch = out["channels"][0]
    # fluid pumped between the disconnection and the alarm did not reach the patient
    lost = 120 * (at - 20) / 60
    assert ch["pumped_ml"] - ch["patient_ml"] == pytest.approx(lost, abs=LVP_QUANTUM + 1e-6)


def test_disconnection_is_detected_within_30_s() -> None:
    out = run(example("fault-disconnection.json"))
    assert alarms(out)[0] == (20.5, "disconnection")


def test_door_open_stops_and_needs_a_clinician() -> None:
    out = run(example("fault-door-open.json"))
    assert alarms(out) == [(20.0, "door_open")]
    (rejected,) = events(out, "rejected")
    assert (rejected["at_min"], rejected["command"]) == (21.0, "resume")
    assert out["channels"][0]["program_ml"] == pytest.approx(100 * (20 + 37) / 60)


def test_sensor_stuck_found_by_plausibility_check() -> None:
    out = run(example("fault-sensor-stuck.json"))
    assert alarms(out) == [(20.5, "sensor_fault")]  # 30 s plausibility window
    assert out["channels"][0]["program_ml"] == pytest.approx(100 * (20.5 + 34) / 60)


def test_upstream_occlusion_silence_and_latching() -> None:
    out = run(example("fault-upstream-occlusion.json"))
    assert alarms(out) == [(20.0, "occlusion_upstream")]
    (silenced,) = events(out, "alarm_silenced")
    assert silenced["at_min"] == 21.0
    cleared = [e["at_min"] for e in events(out, "alarm_cleared")]
    acked = [e["at_min"] for e in events(out, "alarm_acknowledged")]
    assert (cleared, acked) == ([30.0], [30.5])
    assert out["channels"][0]["program_ml"] == pytest.approx(100 * (20 + 29) / 60)


def test_high_alarm_latches_until_acknowledged() -> None:
    data = example("fault-upstream-occlusion.json")
    data["events"] = [e for e in data["events"] if e["type"] != "acknowledge"]
    sc = scenario_from_data(data)
    r = Run(sc)
    r.run()
    active = r.device.board.active(0)
    assert [(a.alarm.code, a.condition, a.acknowledged) for a in active] == [
        ("occlusion_upstream", False, False)
    ]


def test_battery_drain() -> None:
    out = run(example("fault-battery-drain.json"))
    # 20 % of 2500 mAh = 500 mAh; 25 mA idle + 0.4 mA per mL/h x 100 = 65 mA for 30 min
    # (32.5 mAh); then 565 mA. Low at 30 min of run time left, depleted at 5 min left.
    charge, current = 500 - 65 * 0.5, 565.0
    low = 30 + (charge - current * 30 / 60) / current * 60
    depleted = 30 + (charge - current * 5 / 60) / current * 60
    firsts = {}
    for at, code in alarms(out):
        firsts.setdefault(code, at)
    assert firsts["battery_low"] == pytest.approx(low, abs=1e-5)
    assert firsts["battery_depleted"] == pytest.approx(depleted, abs=1e-5)
    assert out["final_state"] == "alarm"
    assert out["channels"][0]["program_ml"] == pytest.approx(100 * depleted / 60)


def test_battery_alarm_is_acknowledged_on_the_device() -> None:
    data = example("fault-battery-drain.json")
    data["duration"] = "70 min"
    data["events"] += [
        {"at": "50 min", "type": "silence", "code": "battery_low"},
        {"at": "51 min", "type": "acknowledge", "code": "battery_low"},
        {"at": "60 min", "type": "mains_on"},
    ]
    out = run(data)
    # acknowledged within 5 min: no escalation; mains clears it
    assert [
        (code, a["channel"]) for (_, code), a in zip(alarms(out), out["alarms"], strict=True)
    ] == [("battery_low", None)]
    assert [e["at_min"] for e in events(out, "alarm_acknowledged")] == [51.0]
    assert not events(out, "rejected")
    assert out["final_state"] == "running"


def test_syringe_empty_and_refill() -> None:
    out = run(example("syringe-empty-refill.json"))
    # 10 mL syringe at 5 mL/h: low at 1 mL left (108 min), empty at 120 min; refilled
    # with 10 mL at 125, resumed at 126 min: 54 min x 5 mL/h more
    assert alarms(out) == [(108.0, "reservoir_low"), (120.0, "reservoir_empty")]
    assert out["channels"][0]["program_ml"] == pytest.approx(10 + 5 * 54 / 60)
    assert out["channels"][0]["reservoir_ml"] == pytest.approx(10 - 4.5)


def test_rejected_commands_do_not_stop_the_run() -> None:
    data = example("vasopressor-norepinephrine-per-kg.json")
    data["events"] = [
        {"at": "10 min", "type": "resume"},
        {"at": "11 min", "type": "bolus", "dose": "10 mcg"},
        {"at": "12 min", "type": "acknowledge", "code": "no_such_alarm"},
        {"at": "13 min", "type": "titrate"},
    ]
    out = run(data)
    rejected = [(e["at_min"], e["command"]) for e in events(out, "rejected")]
    assert rejected == [(10.0, "resume"), (11.0, "bolus"), (12.0, "acknowledge"), (13.0, "titrate")]
    assert out["channels"][0]["program_ml"] == pytest.approx(52.5)


def test_soft_and_hard_programs_from_the_api() -> None:
    with pytest.raises(SoftLimitError):
        Run(scenario_from_data(example("dopamine-soft-needs-override.json")))
    with pytest.raises(HardLimitError):
        Run(scenario_from_data(example("norepinephrine-blocked-hard.json")), override_reason="x")


# ---- occlusion figures (IEC 60601-2-24 style) -------------------------------------------------


def _occlusion_script() -> str:
    text = (ROOT / "docs" / "pump.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(# occlusion-table.*?)```", text, re.DOTALL)
    assert match, "docs/pump.md lost its occlusion-table script"
    return match.group(1)


def test_occlusion_table_in_the_guide_matches_the_engine(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The guide's script, run as is, prints the table the guide shows."""
    exec(compile(_occlusion_script(), "docs/pump.md", "exec"), {"__name__": "__main__"})
    printed = capsys.readouterr().out.strip().splitlines()
    text = (ROOT / "docs" / "pump.md").read_text(encoding="utf-8")
    for row in printed:
        assert row in text, f"docs/pump.md does not show: {row}"
    assert len(printed) == 5  # header, rule, 1 / 5 / 25 mL/h


@pytest.mark.parametrize("rate", [1.0, 5.0, 25.0])
def test_occlusion_time_to_alarm_and_bolus_by_hand(rate: float) -> None:
    ns: dict[str, Any] = {"__name__": "occlusion"}
    exec(compile(_occlusion_script().split("print(")[0], "docs/pump.md", "exec"), ns)
    minutes, withdrawn, bolus = ns["measure"](rate, True)
    minutes_nb, withdrawn_nb, bolus_nb = ns["measure"](rate, False)
    p_running = P_PATIENT + rate / 3600 * R
    stored = C * (P_LIMIT - p_running)  # pumped into the blocked line before the alarm
    assert minutes == pytest.approx(stored / (rate / 60), rel=1e-6)
    assert minutes_nb == pytest.approx(minutes, rel=1e-9)
    assert withdrawn == pytest.approx(0.25) and withdrawn_nb == 0.0
    assert bolus == pytest.approx(stored - 0.25, abs=1e-6)
    assert bolus_nb == pytest.approx(stored, abs=1e-6)
    # Open PCA Pump R7.2 / GIP: post-occlusion bolus at most 0.5 mL once back-off has run
    assert bolus <= 0.5
    assert math.isfinite(minutes)


# ---- the guide covers the schema ------------------------------------------------------------


def test_guide_documents_every_field_event_and_alarm() -> None:
    from typing import get_args

    from openinfusion.pump import scenario as S

    text = (ROOT / "docs" / "pump.md").read_text(encoding="utf-8")
    models = [
        S.Scenario,
        S.PumpSpec,
        S.PatientSpec,
        S.ChannelSpec,
        S.EventSpec,
        S.ContinuousSpec,
        S.MultistepSpec,
        S.RampTaperSpec,
        S.IntermittentSpec,
        S.PcaSpec,
    ]
    missing = [
        f"{model.__name__}.{name}"
        for model in models
        for name in model.model_fields
        if f"`{name}`" not in text
    ]
    missing += [f"event {t}" for t in get_args(S.EventType) if f"`{t}`" not in text]
    missing += [f"alarm {a.code}" for a in Alarm if f"`{a.code}`" not in text]
    assert not missing, missing
    for section in ("## Insulin pump", "## Intrathecal pump", "## Oncology regimens"):
        assert section in text


def test_guide_quick_start_output_is_current() -> None:
    text = (ROOT / "docs" / "pump.md").read_text(encoding="utf-8")
    block = text.split(
        "$ openinfusion pump run examples/pump/continuous-norepinephrine-occlusion.json\n"
    )[1]
    shown = block.split("\n$ ")[0].strip().splitlines()
    path = ROOT / "examples" / "pump" / "continuous-norepinephrine-occlusion.json"
    printed = cli("pump", "run", str(path)).stdout.strip().splitlines()
    assert [line.strip() for line in printed] == [line.strip() for line in shown]
