"""Oncology: the 46-hour 5-FU take-home infusion and multi-drug regimens (mFOLFOX6).

Hand computations use a patient of 72 kg and 162 cm: Mosteller BSA = sqrt(162 x 72 / 3600)
= sqrt(3.24) = 1.8 m2 exactly, so (PKPD_REFERENCE 7.3)

* oxaliplatin 85 mg/m2 = 153 mg in 500 mL over 2 h = 250 mL/h (0.306 mg/mL);
* leucovorin 400 mg/m2 = 720 mg in 250 mL over 2 h = 125 mL/h (2.88 mg/mL);
* fluorouracil push 400 mg/m2 = 720 mg = 14.4 mL at 50 mg/mL over 5 min = 172.8 mL/h;
* fluorouracil 2400 mg/m2 = 4320 mg = 86.4 mL at 50 mg/mL over 46 h = 1.878 mL/h.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from openinfusion.errors import InputError
from openinfusion.library import HardLimitError, SoftLimitError, sample_library
from openinfusion.patient import Patient
from openinfusion.pump import therapies as T
from openinfusion.pump.channel import State
from openinfusion.pump.codes import Alarm
from openinfusion.pump.device import Device
from openinfusion.pump.mechanics import ambulatory, lvp
from openinfusion.pump.oncology import (
    MFOLFOX6,
    Regimen,
    RegimenDrug,
    RegimenEvent,
    Stage,
    channel_settings,
    fluorouracil_46h,
    prepare_regimen,
    regimen_by_name,
    run_prepared,
)
from openinfusion.pump.regimen_scenario import RegimenProgramSpec, run_regimen
from openinfusion.units import Kind, parse_quantity

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pump"
LIB = sample_library()
ONCOLOGY = LIB.care_area("Oncology")
BSA_18 = Patient(weight_kg=72, height_cm=162)  # Mosteller 1.8 m2 exactly
H = 3600.0


def ctx(patient: Patient = BSA_18, reservoir_ml: float = 100.0) -> T.Context:
    return T.Context(ambulatory(reservoir_ml), patient, LIB, ONCOLOGY)


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    return list(report["regimen"]["stages"])


def stages(*stage_drugs: list[RegimenDrug]) -> Regimen:
    return Regimen(
        "test", tuple(Stage(tuple(s), f"stage {i + 1}") for i, s in enumerate(stage_drugs))
    )


OXALIPLATIN = RegimenDrug("oxaliplatin", "85 mg/m2", "2 h", volume="500 mL")
LEUCOVORIN = RegimenDrug("leucovorin", "400 mg/m2", "2 h", volume="250 mL")
FU_PUSH = RegimenDrug("fluorouracil", "400 mg/m2", "5 min", "50 mg/mL", push=True)
FU_46H = RegimenDrug("fluorouracil", "2400 mg/m2", "46 h", "50 mg/mL", pump="ambulatory")


# ---- the 46-hour fluorouracil programme -----------------------------------------------------------


def test_bsa_is_exactly_1_8() -> None:
    assert BSA_18.bsa_m2 == pytest.approx(1.8, rel=1e-12)


def test_fluorouracil_46h_hand_numbers() -> None:
    p = fluorouracil_46h(ctx())
    assert p.amount == pytest.approx(4320.0)  # 2400 x 1.8
    assert p.amount_unit == "mg"
    assert p.volume_ml == pytest.approx(86.4)  # 4320 / 50
    assert p.rate_ml_h == pytest.approx(86.4 / 46)  # 1.878 mL/h
    assert round(p.rate_ml_h, 3) == 1.878
    assert p.over_s == 46 * H
    assert p.verdict.label == "ok" and p.override is None
    assert p.mechanism.reservoir_ml == pytest.approx(86.4)  # cassette filled with the dose
    step = p.plan.steps[0]
    assert step.volume_ml == pytest.approx(86.4) and not p.plan.kvo_at_end
    assert p.plan.drug is not None and p.plan.drug.per_ml == pytest.approx(50.0)


def _run_alone(p: Any, until_s: float) -> Device:
    device = Device([p.mechanism], settings=[channel_settings(ONCOLOGY, p.mechanism)])
    device.program(0, p.plan)
    device.start(0)
    device.advance_to(until_s)
    return device


def test_fluorouracil_46h_completes_at_46_h_and_empties_the_reservoir() -> None:
    p = fluorouracil_46h(ctx())
    device = _run_alone(p, 48 * H)
    ch = device.channels[0]
    alarms = {r.data["code"]: r.t_s for r in device.records if r.kind == "alarm"}
    one_quantum_s = p.mechanism.quantum_ml / (p.rate_ml_h / H)  # 0.05 mL at 1.878 mL/h: 96 s
    assert abs(alarms["reservoir_empty"] - 46 * H) <= one_quantum_s
    # reservoir low (1 mL left) comes 1 / 1.878 h before the end
    assert alarms["reservoir_low"] == pytest.approx(46 * H - 1.0 / p.rate_ml_h * H)
    assert ch.state is State.ALARM and ch.reservoir_ml == 0.0
    # no over-delivery: 1728 strokes of 0.05 mL, nothing after the end
    assert ch.pumped_ml == pytest.approx(86.4)
    assert ch.pumped_ml <= 86.4 + 1e-9
    assert ch.pumped_ml * 50 == pytest.approx(4320.0)
    assert ch.rate_ml_h == 0.0


def test_fluorouracil_46h_at_45_h_is_still_running() -> None:
    p = fluorouracil_46h(ctx())
    ch = _run_alone(p, 45 * H).channels[0]
    assert ch.state is State.RUNNING
    assert ch.program_ml == pytest.approx(86.4 * 45 / 46)


def test_fluorouracil_46h_elastomeric_nominal_flow() -> None:
    # 2 mL/h x 46 h = 92 mL; 4320 mg / 92 mL = 46.96 mg/mL (within 10 to 50 mg/mL)
    p = fluorouracil_46h(ctx(), flow_rate="2 mL/h")
    assert p.volume_ml == pytest.approx(92.0)
    assert p.rate_ml_h == pytest.approx(2.0)
    assert p.concentration.per_ml == pytest.approx(4320 / 92)
    assert p.verdict.label == "ok"


def test_fluorouracil_46h_concentration_and_flow_rate_conflict() -> None:
    with pytest.raises(InputError) as err:
        fluorouracil_46h(ctx(), concentration="50 mg/mL", flow_rate="2 mL/h")
    assert err.value.field == "flow_rate"


def test_fluorouracil_46h_reservoir_too_small() -> None:
    # BSA 2.2 (96.8 kg, 180 cm): 5280 mg = 105.6 mL > 100 mL cassette
    big = Patient(weight_kg=96.8, height_cm=180)
    with pytest.raises(InputError) as err:
        fluorouracil_46h(ctx(big))
    assert err.value.field == "reservoir_ml" and err.value.value == 100.0
    assert "105.6 mL" in err.value.rule
    assert fluorouracil_46h(ctx(big, reservoir_ml=250)).volume_ml == pytest.approx(105.6)


def test_fluorouracil_46h_fill_larger_than_dose_stops_at_the_dose() -> None:
    p = fluorouracil_46h(ctx(), reservoir="95 mL")
    ch = _run_alone(p, 48 * H).channels[0]
    assert ch.state is State.COMPLETE
    assert ch.pumped_ml == pytest.approx(86.4)
    assert ch.reservoir_ml == pytest.approx(95 - 86.4)


def test_fluorouracil_46h_tenfold_dose_blocked() -> None:
    with pytest.raises(HardLimitError):
        fluorouracil_46h(ctx(), dose="24000 mg/m2")


def test_fluorouracil_46h_soft_limit_needs_reason() -> None:
    big = ctx(reservoir_ml=250)  # 3200 x 1.8 = 5760 mg = 115.2 mL
    with pytest.raises(SoftLimitError):
        fluorouracil_46h(big, dose="3200 mg/m2")  # above soft 3000, below hard 3600
    p = fluorouracil_46h(big, dose="3200 mg/m2", override_reason="FOLFOX6 3000+ escalation")
    assert p.override is not None and p.verdict.label == "soft"


def test_fluorouracil_46h_duration_outside_library_limits_blocked() -> None:
    with pytest.raises(HardLimitError):
        fluorouracil_46h(ctx(), over="24 h")  # library hard minimum 44 h


def test_fluorouracil_46h_dose_rate_refused() -> None:
    with pytest.raises(InputError) as err:
        fluorouracil_46h(ctx(), dose="1200 mg/m2/day")
    assert err.value.field == "dose" and "total dose" in err.value.rule


def test_fluorouracil_46h_prior_push_counts_against_cumulative_limit() -> None:
    # cumulative 4200 mg/m2 per 14 days: 3000 + 400 passes (soft dose), 3000 + 1300 does not
    big = ctx(reservoir_ml=250)  # 3000 x 1.8 = 5400 mg = 108 mL
    ok = fluorouracil_46h(big, dose="3000 mg/m2", prior_dose="400 mg/m2")
    assert ok.verdict.computed["cumulative"] == pytest.approx(3400)
    with pytest.raises(HardLimitError, match="cumulative"):
        fluorouracil_46h(big, dose="3000 mg/m2", prior_dose="1300 mg/m2")


def test_fluorouracil_46h_needs_an_ambulatory_pump() -> None:
    with pytest.raises(InputError) as err:
        fluorouracil_46h(T.Context(lvp(), BSA_18, LIB, ONCOLOGY))
    assert err.value.field == "pump.kind"


def test_bsa_missing_height_is_a_clear_input_error() -> None:
    with pytest.raises(InputError) as err:
        fluorouracil_46h(ctx(Patient(weight_kg=70)))
    assert err.value.field == "patient.height"
    assert err.value.value == ""
    assert "per m2" in err.value.rule and "height" in err.value.rule


# ---- mFOLFOX6 -------------------------------------------------------------------------------------


def test_mfolfox6_data() -> None:
    assert [[(d.drug, d.dose, d.over, d.push, d.role) for d in s.drugs] for s in MFOLFOX6.stages] == [
        [("oxaliplatin", "85 mg/m2", "2 h", False, "lvp"),
         ("leucovorin", "400 mg/m2", "2 h", False, "lvp")],
        [("fluorouracil", "400 mg/m2", "5 min", True, "syringe")],
        [("fluorouracil", "2400 mg/m2", "46 h", False, "ambulatory")],
    ]  # fmt: skip
    assert "srl.org.nz" in MFOLFOX6.source
    assert regimen_by_name("mfolfox-6") is MFOLFOX6 and regimen_by_name(" MFOLFOX6") is MFOLFOX6
    with pytest.raises(InputError) as err:
        regimen_by_name("FOLFIRINOX")
    assert err.value.field == "regimen"


@pytest.fixture(scope="module")
def mfolfox6_report() -> dict[str, Any]:
    prepared = prepare_regimen(MFOLFOX6, patient=BSA_18, library=LIB, care_area="Oncology")
    return run_prepared(prepared, 50 * H)


def test_mfolfox6_prescribed_doses_by_hand(mfolfox6_report: dict[str, Any]) -> None:
    got = [
        (r["stage"], r["drug"], r["dose_mg"], r["volume_ml"], r["rate_ml_h"])
        for r in rows(mfolfox6_report)
    ]
    expected = [
        (1, "oxaliplatin", 153.0, 500.0, 250.0),
        (1, "leucovorin", 720.0, 250.0, 125.0),
        (2, "fluorouracil", 720.0, 14.4, 172.8),
        (3, "fluorouracil", 4320.0, 86.4, 86.4 / 46),
    ]
    for g, e in zip(got, expected, strict=True):
        assert g[:2] == e[:2]
        assert g[2:] == pytest.approx(e[2:])


def test_mfolfox6_delivered_equals_prescribed_within_one_quantum(
    mfolfox6_report: dict[str, Any],
) -> None:
    quantum_mg = {
        "stage 1 lvp": 0.005,  # mL per cassette stroke, x mg/mL below
        "stage 2 syringe": math.pi * (19.13 / 2) ** 2 / 1000 * 0.001,  # 20 mL syringe, 1 um
        "stage 3 ambulatory": 0.05,
    }
    for r in rows(mfolfox6_report):
        per_ml = r["dose_mg"] / r["volume_ml"]
        q = quantum_mg[r["pump"]] * per_ml
        assert r["delivered_mg"] <= r["dose_mg"] + 1e-9  # never more than prescribed
        assert r["dose_mg"] - r["delivered_mg"] < q + 1e-9
    oxa, leu, push, infusion = rows(mfolfox6_report)
    assert oxa["delivered_mg"] == pytest.approx(153.0)  # 100000 strokes of 0.005 mL
    assert leu["delivered_mg"] == pytest.approx(720.0)
    assert infusion["delivered_mg"] == pytest.approx(4320.0)  # 1728 strokes of 0.05 mL
    assert push["mechanism"] == "20 mL syringe"
    assert mfolfox6_report["delivered_dose"] == {"value": pytest.approx(4320.0), "unit": "mg"}
    assert mfolfox6_report["delivered_ml"] == pytest.approx(500 + 250 + 14.4 + 86.4, abs=1e-3)


def test_mfolfox6_stages_follow_each_other(mfolfox6_report: dict[str, Any]) -> None:
    timings = [(r["drug"], r["started_min"], r["ended_min"]) for r in rows(mfolfox6_report)]
    assert timings == [
        ("oxaliplatin", 0.0, 120.0),
        ("leucovorin", 0.0, 120.0),  # together, on a second channel
        ("fluorouracil", 120.0, 125.0),
        ("fluorouracil", 125.0, 125.0 + 46 * 60),  # 2885 min = 48 h 5 min
    ]
    assert mfolfox6_report["regimen"]["complete"] is True
    types = [e["type"] for e in mfolfox6_report["events"]]
    assert types.count("stage_started") == 3 and types.count("stage_complete") == 3


def test_mfolfox6_ends_with_reservoir_empty(mfolfox6_report: dict[str, Any]) -> None:
    alarms = [(a["at_min"], a["code"], a["pump"]) for a in mfolfox6_report["alarms"]]
    assert alarms[-1] == (2885.0, "reservoir_empty", "stage 3 ambulatory")
    assert alarms[-2][1] == "reservoir_low"  # 1 mL left: 1 / 1.878 h before the end
    assert alarms[-2][0] == pytest.approx(2885.0 - 60 / (86.4 / 46), abs=1e-5)
    assert mfolfox6_report["final_state"] == "alarm"
    # the nurse answered the clinic end-of-infusion alarms, so none escalated
    assert all(a["priority"] != "high" for a in mfolfox6_report["alarms"][:-1])
    assert mfolfox6_report["verdict"] == "ok" and mfolfox6_report["override"] is None


def test_mfolfox6_cumulative_counts_the_push() -> None:
    prepared = prepare_regimen(MFOLFOX6, patient=BSA_18, library=LIB, care_area=ONCOLOGY)
    infusion = prepared.stages[2][0]
    assert infusion.verdict.computed["cumulative"] == pytest.approx(2800)  # 400 + 2400


def test_stage_waits_for_the_slowest_drug() -> None:
    short_lv = RegimenDrug("leucovorin", "400 mg/m2", "90 min", volume="250 mL")
    prepared = prepare_regimen(
        stages([OXALIPLATIN, short_lv], [FU_PUSH]),
        patient=BSA_18,
        library=LIB,
        care_area="Oncology",
    )
    report = run_prepared(prepared, 3 * H)
    oxa, lv, push = rows(report)
    assert lv["ended_min"] == 90.0 and oxa["ended_min"] == 120.0
    assert push["started_min"] == 120.0 and push["ended_min"] == 125.0


def test_short_run_reports_partial_delivery() -> None:
    prepared = prepare_regimen(MFOLFOX6, patient=BSA_18, library=LIB, care_area="Oncology")
    report = run_prepared(prepared, 1 * H)
    oxa, leu, push, infusion = rows(report)
    assert oxa["delivered_mg"] == pytest.approx(153.0 / 2)  # half of 2 h
    assert leu["delivered_mg"] == pytest.approx(720.0 / 2)
    assert push["started_min"] is None and push["delivered_mg"] == 0.0
    assert infusion["state"] == "not started"
    assert report["regimen"]["complete"] is False and report["final_state"] == "running"
    assert report["delivered_dose"] == {"value": 0.0, "unit": "mg"}


# ---- all or nothing ----------------------------------------------------------------------------------


def test_hard_limit_anywhere_blocks_the_whole_regimen(monkeypatch: pytest.MonkeyPatch) -> None:
    programmed: list[int] = []
    monkeypatch.setattr(Device, "program", lambda self, *a, **k: programmed.append(1))
    tenfold = RegimenDrug("fluorouracil", "24000 mg/m2", "46 h", "50 mg/mL", pump="ambulatory")
    with pytest.raises(HardLimitError) as err:
        prepare_regimen(
            stages([OXALIPLATIN, LEUCOVORIN], [FU_PUSH], [tenfold]),
            patient=BSA_18,
            library=LIB,
            care_area="Oncology",
        )
    assert "stage 3" in str(err.value) and "nothing was started" in str(err.value)
    assert err.value.verdict.drug.startswith("fluorouracil")
    assert programmed == []


def test_push_checked_against_bolus_limits() -> None:
    push = RegimenDrug("fluorouracil", "600 mg/m2", "5 min", "50 mg/mL", push=True)
    with pytest.raises(HardLimitError, match="bolus"):
        prepare_regimen(stages([push]), patient=BSA_18, library=LIB, care_area="Oncology")


def test_soft_limit_needs_override_reason() -> None:
    # Original FOLFOX6 gave oxaliplatin 100 mg/m2 (Maindrault-Goebel F et al. Eur J Cancer
    # 1999;35:1338-42): above the library's soft maximum 85, below its hard maximum 130.
    oxa100 = RegimenDrug("oxaliplatin", "100 mg/m2", "2 h", volume="500 mL")
    regimen = stages([oxa100, LEUCOVORIN], [FU_PUSH], [FU_46H])
    with pytest.raises(SoftLimitError, match="stage 1"):
        prepare_regimen(regimen, patient=BSA_18, library=LIB, care_area="Oncology")
    with pytest.raises(SoftLimitError):
        prepare_regimen(
            regimen, patient=BSA_18, library=LIB, care_area="Oncology", override_reason="  "
        )
    prepared = prepare_regimen(
        regimen,
        patient=BSA_18,
        library=LIB,
        care_area="Oncology",
        override_reason="FOLFOX6 100 mg/m2",
    )
    report = run_prepared(prepared, 50 * H)
    assert report["verdict"] == "soft" and report["override"] == "FOLFOX6 100 mg/m2"
    oxa = rows(report)[0]
    assert oxa["override"] == "FOLFOX6 100 mg/m2"
    assert oxa["dose_mg"] == pytest.approx(180.0) and oxa["delivered_mg"] == pytest.approx(180.0)


def test_regimen_bsa_missing_height() -> None:
    with pytest.raises(InputError) as err:
        prepare_regimen(MFOLFOX6, patient=Patient(weight_kg=70), library=LIB, care_area="Oncology")
    assert (err.value.field, err.value.value) == ("patient.height", "")
    assert "oxaliplatin" in err.value.rule and "per m2" in err.value.rule


def test_regimen_input_errors_name_the_stage() -> None:
    big = Patient(weight_kg=96.8, height_cm=180)  # BSA 2.2: 105.6 mL of 5-FU
    with pytest.raises(InputError) as err:
        prepare_regimen(
            MFOLFOX6, patient=big, library=LIB, care_area="Oncology", pump=ambulatory(100)
        )
    assert err.value.field == "stages[2][0].reservoir_ml"
    with pytest.raises(InputError) as err:
        prepare_regimen(MFOLFOX6, patient=BSA_18, library=LIB, care_area="Oncology", pump=lvp())
    assert err.value.field == "stages[2][0].pump.kind"
    unknown = RegimenDrug("folinic acid x", "400 mg/m2", "2 h", volume="250 mL")
    with pytest.raises(InputError) as err:
        prepare_regimen(stages([unknown]), patient=BSA_18, library=LIB, care_area="Oncology")
    assert err.value.field == "stages[0][0].drug"


def test_large_push_gets_a_larger_syringe() -> None:
    big = Patient(weight_kg=96.8, height_cm=180)  # 880 mg = 17.6 mL at 211 mL/h
    prepared = prepare_regimen(stages([FU_PUSH]), patient=big, library=LIB, care_area="Oncology")
    assert prepared.stages[0][0].mechanism.label == "50 mL syringe"  # 20/30 mL: 200 mL/h max


def test_stage_channel_limit() -> None:
    with pytest.raises(InputError, match="at most 4 channels"):
        Stage(tuple([LEUCOVORIN] * 5))


# ---- events during a regimen ------------------------------------------------------------------------


def test_occlusion_at_home_delays_the_end_without_over_delivery() -> None:
    prepared = prepare_regimen(MFOLFOX6, patient=BSA_18, library=LIB, care_area="Oncology")
    events = [
        RegimenEvent(20 * H, "occlusion"),
        RegimenEvent(21 * H, "clear_occlusion"),
        RegimenEvent(21 * H, "resume"),
    ]
    report = run_prepared(prepared, 50 * H, events)
    infusion = rows(report)[3]
    codes = [a["code"] for a in report["alarms"]]
    assert "occlusion_downstream" in codes
    occluded_at = next(a["at_min"] for a in report["alarms"] if a["code"] == "occlusion_downstream")
    paused_min = 21 * 60 - occluded_at
    assert 0 < paused_min < 60
    assert infusion["ended_min"] == pytest.approx(2885.0 + paused_min)
    assert infusion["delivered_mg"] == pytest.approx(4320.0)
    assert infusion["delivered_mg"] <= 4320.0 + 1e-9


def test_commands_outside_the_regimen_are_rejected() -> None:
    prepared = prepare_regimen(MFOLFOX6, patient=BSA_18, library=LIB, care_area="Oncology")
    events = [RegimenEvent(30 * 60, "bolus"), RegimenEvent(30 * 60, "pause", channel=5)]
    report = run_prepared(prepared, 3 * H, events)
    rejected = [e for e in report["events"] if e["type"] == "rejected"]
    assert [e["command"] for e in rejected] == ["bolus", "pause"]
    assert "fixed by the regimen" in rejected[0]["reason"]
    assert rows(report)[0]["delivered_mg"] == pytest.approx(153.0)


def test_pause_and_resume_a_clinic_channel() -> None:
    prepared = prepare_regimen(MFOLFOX6, patient=BSA_18, library=LIB, care_area="Oncology")
    events = [RegimenEvent(60 * 60, "pause", channel=1), RegimenEvent(70 * 60, "resume", channel=1)]
    report = run_prepared(prepared, 4 * H, events)
    oxa, leu, push, _ = rows(report)
    assert oxa["ended_min"] == 120.0 and leu["ended_min"] == pytest.approx(130.0)
    assert push["started_min"] == pytest.approx(130.0)  # waits for leucovorin
    assert leu["delivered_mg"] == pytest.approx(720.0)


# ---- scenario spec and example files --------------------------------------------------------------


def test_spec_validation() -> None:
    spec = RegimenProgramSpec.model_validate({"therapy": "regimen", "regimen": "mFOLFOX6"})
    assert spec.regimen == "mFOLFOX6"
    for bad in (
        {"therapy": "regimen"},
        {"therapy": "regimen", "regimen": "mFOLFOX6", "stages": [[]]},
        {"therapy": "regimen", "stages": [[]]},
        {"therapy": "regimen", "regimen": "mFOLFOX6", "dose": "85 mg/m2"},
        {"therapy": "regimen", "stages": [[{"drug": "oxaliplatin", "dose": "85 mg/m2"}]]},
    ):
        with pytest.raises(ValidationError):
            RegimenProgramSpec.model_validate(bad)
    with pytest.raises(ValidationError):
        spec.regimen = "x"  # type: ignore[misc]


def load_example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return data


def run_example(name: str) -> dict[str, Any]:
    data = load_example(name)
    return run_regimen(
        RegimenProgramSpec.model_validate(data["program"]),
        data.get("events", []),
        parse_quantity(data["duration"], Kind.DURATION, "duration") * 60.0,
        patient=Patient.from_text(**data["patient"]),
        library=LIB,
        care_area=data["care_area"],
        override_reason=data.get("override_reason"),
        pump=ambulatory(data["pump"]["reservoir_ml"]),
    )


def test_example_mfolfox6() -> None:
    # 70 kg, 175 cm: BSA sqrt(12250 / 3600) = 1.84466 m2; 46-h 5-FU 4427.19 mg = 88.544 mL,
    # delivered in whole 0.05 mL strokes: 1770 strokes = 88.5 mL = 4425 mg.
    report = run_example("oncology-mfolfox6.json")
    bsa = math.sqrt(70 * 175 / 3600)
    assert report["regimen"]["bsa_m2"] == pytest.approx(bsa)
    infusion = rows(report)[3]
    assert infusion["dose_mg"] == pytest.approx(2400 * bsa)
    assert infusion["delivered_mg"] == pytest.approx(4425.0)
    assert report["delivered_dose"] == {"value": pytest.approx(4425.0), "unit": "mg"}
    assert report["regimen"]["complete"] is True
    assert [a["code"] for a in report["alarms"]][-1] == "reservoir_empty"
    json.dumps(report)  # the report is plain JSON


def test_example_tenfold_blocked() -> None:
    with pytest.raises(HardLimitError, match="stage 3"):
        run_example("oncology-mfolfox6-tenfold-blocked.json")


def test_example_override() -> None:
    report = run_example("oncology-folfox6-oxaliplatin-100-override.json")
    assert report["verdict"] == "soft" and report["override"].startswith("original FOLFOX6")
    assert rows(report)[0]["delivered_mg"] == pytest.approx(100 * math.sqrt(70 * 175 / 3600))


def test_example_occlusion_at_home() -> None:
    report = run_example("oncology-mfolfox6-occlusion-at-home.json")
    assert "occlusion_downstream" in [a["code"] for a in report["alarms"]]
    assert report["regimen"]["complete"] is True
    assert rows(report)[3]["delivered_mg"] == pytest.approx(4425.0)


def test_example_through_the_scenario_runner() -> None:
    """The example runs end to end through the scenario runner."""
    from openinfusion.pump import scenario

    loaded = scenario.scenario_from_data(load_example("oncology-mfolfox6.json"))
    report = scenario.run_scenario(loaded)
    assert report["delivered_dose"]["value"] == pytest.approx(4425.0)
    assert report["regimen"]["complete"] is True


def test_alarm_code_of_acknowledge_is_checked() -> None:
    prepared = prepare_regimen(MFOLFOX6, patient=BSA_18, library=LIB, care_area="Oncology")
    report = run_prepared(prepared, 1 * H, [RegimenEvent(60, "acknowledge", args={"code": "nope"})])
    assert [e["reason"] for e in report["events"] if e["type"] == "rejected"] == [
        "code 'nope': is not an alarm code"
    ]
    assert Alarm.RESERVOIR_EMPTY.code == "reservoir_empty"
