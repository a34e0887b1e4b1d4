"""Therapy builders: what a clinician programs becomes a DERS-checked plan.

Every expected figure is worked out by hand in the test from the drug's strength and the
patient, never read back from the code under test.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from openinfusion.errors import InputError
from openinfusion.library import (
    HardLimitError,
    Level,
    Library,
    SoftLimitError,
    sample_library,
)
from openinfusion.library.loading import library_from_data
from openinfusion.patient import Patient
from openinfusion.pump import therapies as T
from openinfusion.pump.mechanics import Mechanism, lvp, pca_pump, syringe
from openinfusion.pump.plan import StepKind

from ..conftest import mini_data

LIB = sample_library()
ICU = LIB.care_area("Adult ICU")
MED_SURG = LIB.care_area("Adult Med-Surg")
ONCOLOGY = LIB.care_area("Oncology")
ADULT = Patient(weight_kg=70.0)


def ctx(
    area: Any = ICU,
    patient: Patient = ADULT,
    mechanism: Mechanism | None = None,
    library: Library = LIB,
) -> T.Context:
    return T.Context(mechanism or lvp(), patient, library, area)


def norepinephrine(context: T.Context | None = None, **kw: Any) -> T.Programmed:
    args: dict[str, Any] = {"concentration": "4 mg/250 mL", "dose": "0.1 mcg/kg/min", **kw}
    return T.continuous(context or ctx(), drug="norepinephrine", **args)


def field_error(exc: pytest.ExceptionInfo[InputError]) -> tuple[str, object, str]:
    return exc.value.field, exc.value.value, exc.value.rule


# ---- dose -> rate --------------------------------------------------------------------------


def test_per_kg_dose_becomes_a_rate() -> None:
    # 0.1 mcg/kg/min x 70 kg = 7 mcg/min = 0.42 mg/h; 4 mg/250 mL = 0.016 mg/mL
    expected = 0.1 * 70 * 60 / 1000 / (4 / 250)
    assert expected == pytest.approx(26.25)
    p = norepinephrine()
    assert p.plan.steps[-1].kind is StepKind.CONTINUOUS
    assert p.plan.steps[-1].rate_ml_h == pytest.approx(expected)
    assert p.summary["rate_ml_h"] == pytest.approx(expected)
    assert p.summary["dose"] == 0.1 and p.summary["dose_unit"] == "mcg/kg/min"
    assert p.plan.drug is not None and p.plan.drug.per_ml == pytest.approx(0.016)
    assert p.plan.drug.amount_unit == "mg"
    assert p.verdict is not None and p.verdict.level is Level.OK
    assert p.override is None
    assert p.plan.vtbi_ml is None and p.plan.kvo_at_end
    assert p.plan.kvo_rate_ml_h == 5.0  # the Adult ICU KVO rate


def test_rate_for_a_drug_shows_the_dose_it_gives() -> None:
    # 26.25 mL/h of 16 mcg/mL = 420 mcg/h = 7 mcg/min = 0.1 mcg/kg/min at 70 kg
    p = T.continuous(ctx(), drug="norepinephrine", concentration="4 mg/250 mL", rate="26.25 mL/h")
    assert p.plan.steps[-1].rate_ml_h == 26.25
    assert p.summary["dose"] == pytest.approx(0.1)
    assert p.summary["dose_unit"] == "mcg/kg/min"


def _library_with_per_m2_entry() -> Library:
    data = mini_data()
    data["entries"].append(
        {
            "care_area": "adult-icu",
            "drug": "testamycin",
            "display_name": "testamycin",
            "infusion_type": "continuous",
            "concentrations": ["100 mg/100 mL"],
            "dose_unit": "mg/m2/h",
            "limits": {"dose": {"soft_min": 1, "soft_max": 10, "hard_max": 20}},
        }
    )
    return library_from_data(data)


def test_per_m2_dose_becomes_a_rate_with_the_mosteller_bsa() -> None:
    lib = _library_with_per_m2_entry()
    patient = Patient(weight_kg=70.0, height_cm=175.0)
    bsa = math.sqrt(175.0 * 70.0 / 3600.0)  # Mosteller, 1.8447 m2
    context = ctx(lib.care_area("adult-icu"), patient, library=lib)
    p = T.continuous(context, drug="testamycin", dose="5 mg/m2/h")
    assert p.plan.steps[-1].rate_ml_h == pytest.approx(5 * bsa / 1.0)  # 1 mg/mL
    # the engine's own hard ceiling: 20 mg/m2/h
    assert p.plan.envelope.max_rate_ml_h == pytest.approx(20 * bsa)


def test_per_m2_dose_without_a_height_names_the_missing_field() -> None:
    lib = _library_with_per_m2_entry()
    with pytest.raises(InputError) as exc:
        T.continuous(
            ctx(lib.care_area("adult-icu"), library=lib), drug="testamycin", dose="5 mg/m2/h"
        )
    assert exc.value.field == "height"
    assert "per m2" in exc.value.rule


def test_per_m2_intermittent_dose_volume_and_rate() -> None:
    patient = Patient(weight_kg=70.0, height_cm=175.0)
    bsa = math.sqrt(175.0 * 70.0 / 3600.0)
    p = T.intermittent(
        ctx(ONCOLOGY, patient),
        drug="paclitaxel",
        concentration="300 mg/500 mL",
        dose="175 mg/m2",
        every="21 d",
        over="3 h",
        doses=1,
    )
    volume = 175 * bsa / 0.6  # 0.6 mg/mL
    assert p.summary["volume_ml"] == pytest.approx(volume)
    assert p.summary["rate_ml_h"] == pytest.approx(volume / 3)
    assert [s.kind for s in p.plan.steps] == [StepKind.DOSE]
    assert p.plan.steps[0].volume_ml == pytest.approx(volume)


# ---- basic infusion, VTBI, volume over time, delay -------------------------------------------


def test_basic_infusion_needs_an_override_reason() -> None:
    with pytest.raises(SoftLimitError) as exc:
        T.continuous(ctx(MED_SURG), rate="125 mL/h")
    assert exc.value.exit_code == 3
    p = T.continuous(ctx(MED_SURG), rate="125 mL/h", override_reason="maintenance fluid")
    assert p.verdict is not None and p.verdict.level is Level.SOFT
    assert p.override is not None and p.override.reason == "maintenance fluid"
    assert p.plan.drug is None and p.dose_unit is None
    assert p.summary == {"rate_ml_h": 125.0, "basic_infusion": True}
    # the basic-infusion hard maximum of the care area bounds the engine too
    assert p.plan.envelope.max_rate_ml_h == 999.0


def test_vtbi_and_kvo() -> None:
    p = T.continuous(ctx(MED_SURG), rate="100 mL/h", vtbi="50 mL", override_reason="fluid")
    assert p.plan.vtbi_ml == 50.0
    assert p.plan.kvo_at_end and p.plan.kvo_rate_ml_h == 5.0
    p = T.continuous(ctx(MED_SURG), rate="100 mL/h", vtbi="50 mL", kvo=False, override_reason="x")
    assert not p.plan.kvo_at_end


def test_volume_over_time_gives_the_rate() -> None:
    p = T.continuous(ctx(MED_SURG), vtbi="1000 mL", duration="8 h", override_reason="fluid")
    assert p.plan.steps[-1].rate_ml_h == pytest.approx(1000 / 8)
    assert p.plan.vtbi_ml == 1000.0


@pytest.mark.parametrize(
    ("kwargs", "field", "rule"),
    [
        ({"duration": "8 h"}, "duration", "needs a vtbi"),
        ({"vtbi": "1000 mL", "duration": "8 h", "rate": "100 mL/h"}, "duration", "not both"),
        ({"vtbi": "1000 mL", "duration": "0 h"}, "duration", "greater than zero"),
        ({"rate": "-5 mL/h"}, "rate", "greater than zero"),
        ({"rate": "100 mL/h", "vtbi": "0 mL"}, "vtbi", "greater than zero"),
        ({"rate": "100 mL/h", "delay": "0 min"}, "delay", "greater than zero"),
        ({}, "rate", "programmed in mL/h"),
        ({"rate": "100 mL/h", "dose": "5 mg/h"}, "dose", "no drug dose"),
        ({"rate": "100 mL", "vtbi": "50 mL"}, "rate", "is not a flow"),
    ],
)
def test_basic_infusion_errors_name_field_and_rule(
    kwargs: dict[str, str], field: str, rule: str
) -> None:
    with pytest.raises(InputError) as exc:
        T.continuous(ctx(MED_SURG), override_reason="fluid", **kwargs)
    assert exc.value.field == field
    assert rule in exc.value.rule


def test_delayed_start_is_a_first_step() -> None:
    p = T.continuous(ctx(MED_SURG), rate="100 mL/h", delay="30 min", override_reason="fluid")
    first, second = p.plan.steps
    assert first.kind is StepKind.DELAY and first.duration_s == 1800.0 and first.rate_ml_h == 0
    assert second.kind is StepKind.CONTINUOUS and second.rate_ml_h == 100.0


# ---- loading dose, bolus, titration ----------------------------------------------------------


def test_loading_then_maintenance() -> None:
    p = T.continuous(
        ctx(),
        drug="milrinone",
        loading="50 mcg/kg",
        loading_over="10 min",
        dose="0.375 mcg/kg/min",
    )
    load, maintenance = p.plan.steps
    # 50 mcg/kg x 70 kg = 3.5 mg at 0.2 mg/mL = 17.5 mL, over 10 min = 105 mL/h
    assert load.kind is StepKind.LOADING
    assert load.volume_ml == pytest.approx(17.5)
    assert load.rate_ml_h == pytest.approx(105.0)
    # 0.375 x 70 = 26.25 mcg/min = 1.575 mg/h = 7.875 mL/h
    assert maintenance.rate_ml_h == pytest.approx(7.875)
    # cumulative limit 1.13 mg/kg per 24 h: the engine meters it by itself
    assert p.plan.envelope.window_s == 24 * 3600.0
    assert p.plan.envelope.window_max_amount == pytest.approx(1.13 * 70)


def test_loading_dose_limits() -> None:
    with pytest.raises(SoftLimitError):  # soft max 50 mcg/kg
        T.continuous(ctx(), drug="milrinone", loading="60 mcg/kg", dose="0.375 mcg/kg/min")
    p = T.continuous(
        ctx(),
        drug="milrinone",
        loading="60 mcg/kg",
        dose="0.375 mcg/kg/min",
        override_reason="cardiology order",
    )
    assert p.override is not None and p.verdict is not None and p.verdict.label == "soft"
    with pytest.raises(HardLimitError) as exc:  # hard max 75 mcg/kg
        T.continuous(
            ctx(),
            drug="milrinone",
            loading="80 mcg/kg",
            dose="0.375 mcg/kg/min",
            override_reason="x",
        )
    assert exc.value.exit_code == 4
    assert [f.parameter for f in exc.value.verdict.crossed] == ["loading"]


def _heparin() -> tuple[T.Context, T.Programmed]:
    context = ctx(patient=Patient(weight_kg=80.0))
    p = T.continuous(
        context,
        drug="heparin",
        therapy="VTE",
        concentration="25000 units/250 mL",
        dose="18 units/kg/h",
    )
    return context, p


def test_bolus_volume_from_a_running_infusion() -> None:
    context, heparin = _heparin()
    # 18 units/kg/h x 80 kg = 1440 units/h at 100 units/mL
    assert heparin.plan.steps[-1].rate_ml_h == pytest.approx(14.4)
    volume, verdict = T.bolus_volume(context, heparin, "80 units/kg")
    assert volume == pytest.approx(80 * 80 / 100)  # 64 mL
    assert verdict.level is Level.OK
    # hard max 100 units/kg -> the engine refuses any bolus over 80 mL by itself
    assert heparin.plan.envelope.max_bolus_ml == pytest.approx(100 * 80 / 100)
    assert heparin.plan.envelope.max_rate_ml_h == pytest.approx(40 * 80 / 100)
    with pytest.raises(SoftLimitError):
        T.bolus_volume(context, heparin, "90 units/kg")
    volume, _ = T.bolus_volume(context, heparin, "90 units/kg", "nomogram, pharmacist agreed")
    assert volume == pytest.approx(72.0)
    with pytest.raises(HardLimitError):
        T.bolus_volume(context, heparin, "120 units/kg", "any reason")


def test_bolus_of_a_basic_infusion_is_refused() -> None:
    basic = T.continuous(ctx(MED_SURG), rate="100 mL/h", override_reason="fluid")
    with pytest.raises(InputError) as exc:
        T.bolus_volume(ctx(MED_SURG), basic, "5 mg")
    assert exc.value.field == "bolus"


def test_titration_is_rechecked_by_ders() -> None:
    context = ctx()
    dopamine = T.continuous(
        context, drug="dopamine", concentration="400 mg/250 mL", dose="5 mcg/kg/min"
    )
    # 10 mcg/kg/min x 70 kg = 700 mcg/min = 42 mg/h at 1.6 mg/mL = 26.25 mL/h
    rate, verdict = T.titration(context, dopamine, dose="10 mcg/kg/min")
    assert rate == pytest.approx(26.25)
    assert verdict is not None and verdict.level is Level.OK
    with pytest.raises(SoftLimitError):  # soft max 20
        T.titration(context, dopamine, dose="25 mcg/kg/min")
    rate, verdict = T.titration(context, dopamine, dose="25 mcg/kg/min", override_reason="shock")
    assert rate == pytest.approx(65.625) and verdict is not None and verdict.label == "soft"
    with pytest.raises(HardLimitError):  # hard max 50
        T.titration(context, dopamine, dose="60 mcg/kg/min", override_reason="shock")
    rate, _ = T.titration(context, dopamine, rate="39.375 mL/h")
    assert rate == 39.375
    with pytest.raises(InputError) as exc:
        T.titration(context, dopamine)
    assert exc.value.field == "titrate"


def test_a_rate_typed_with_a_dose_is_cross_checked() -> None:
    """A tenfold rate typed beside the dose is caught, not silently dropped."""
    context = ctx()
    with pytest.raises(HardLimitError) as exc:
        T.continuous(
            context,
            drug="dopamine",
            concentration="400 mg/250 mL",
            dose="5 mcg/kg/min",
            rate="131.25 mL/h",
        )
    assert "10-fold" in str(exc.value)
    p = T.continuous(
        context,
        drug="dopamine",
        concentration="400 mg/250 mL",
        dose="5 mcg/kg/min",
        rate="13.125 mL/h",
    )
    assert p.plan.steps[-1].rate_ml_h == pytest.approx(13.125)
    with pytest.raises(HardLimitError):
        T.titration(context, p, dose="10 mcg/kg/min", rate="262.5 mL/h")


def test_titration_of_a_basic_infusion_is_in_ml_per_hour() -> None:
    context = ctx(MED_SURG)
    basic = T.continuous(context, rate="100 mL/h", override_reason="fluid")
    rate, verdict = T.titration(context, basic, rate="150 mL/h", override_reason="fluid")
    assert rate == 150.0 and verdict is not None and verdict.label == "soft"
    with pytest.raises(InputError) as exc:
        T.titration(context, basic, dose="5 mg/h")
    assert exc.value.field == "rate"


def test_secondary_infusion_is_checked_like_an_intermittent_dose() -> None:
    context = ctx(MED_SURG)
    volume, rate, verdict = T.secondary_infusion(
        context, drug="vancomycin", dose="1000 mg", over="2 h"
    )
    assert (volume, rate) == (pytest.approx(200.0), pytest.approx(100.0))  # 5 mg/mL
    assert verdict.level is Level.OK
    with pytest.raises(HardLimitError):  # vancomycin over less than 60 min is blocked
        T.secondary_infusion(context, drug="vancomycin", dose="1000 mg", over="30 min")


# ---- multistep, ramp and taper, intermittent, PCA ---------------------------------------------


def test_multistep_compiles_each_step() -> None:
    p = T.multistep(
        ctx(MED_SURG),
        [
            {"rate": "200 mL/h", "volume": "100 mL"},
            {"rate": "100 mL/h", "duration": "1 h"},
            {"rate": "50 mL/h"},
        ],
        override_reason="fluid",
    )
    steps = p.plan.steps
    assert [(s.rate_ml_h, s.volume_ml, s.duration_s) for s in steps] == [
        (200.0, 100.0, None),
        (100.0, None, 3600.0),
        (50.0, None, None),
    ]
    assert p.summary == {"steps": 3}
    assert p.plan.therapy == "multistep"


def test_multistep_worst_verdict_governs_and_keeps_its_override() -> None:
    steps = [
        {"dose": "5 mcg/kg/min", "duration": "30 min"},
        {"dose": "25 mcg/kg/min", "duration": "30 min"},
    ]
    with pytest.raises(SoftLimitError):
        T.multistep(ctx(), steps, drug="dopamine", concentration="400 mg/250 mL")
    p = T.multistep(
        ctx(), steps, drug="dopamine", concentration="400 mg/250 mL", override_reason="shock"
    )
    assert p.verdict is not None and p.verdict.level is Level.SOFT
    assert p.override is not None and p.override.reason == "shock"
    assert [s.rate_ml_h for s in p.plan.steps] == [pytest.approx(13.125), pytest.approx(65.625)]


@pytest.mark.parametrize(
    ("steps", "field", "rule"),
    [
        ([], "steps", "at least one step"),
        ([{"rate": "100 mL/h"}, {"rate": "50 mL/h"}], "steps[0]", "needs a volume or a duration"),
        (
            [{"rate": "100 mL/h", "volume": "10 mL"}, {"rate": "50 mL/h", "volme": "10 mL"}],
            "steps[1].volme",
            "not a step field",
        ),
        ([{"rate": "100 mL/h", "volume": "-10 mL"}], "steps[0].volume", "greater than zero"),
        ([{"volume": "10 mL"}], "steps[0].rate", "mL/h"),
    ],
)
def test_multistep_errors_name_the_step(steps: list[dict[str, str]], field: str, rule: str) -> None:
    with pytest.raises(InputError) as exc:
        T.multistep(ctx(MED_SURG), steps, override_reason="fluid")
    assert exc.value.field == field
    assert rule in exc.value.rule


def test_ramp_taper_totals_the_volume() -> None:
    p = T.ramp_taper(
        ctx(MED_SURG),
        volume="2000 mL",
        duration="24 h",
        ramp="2 h",
        taper="2 h",
        increments=4,
        override_reason="parenteral nutrition",
    )
    # ramp and taper average half the plateau: 2000 / (20 + 4/2) h
    plateau = 2000 / 22
    steps = p.plan.steps
    assert [s.kind for s in steps] == [StepKind.RAMP] * 4 + [StepKind.PLATEAU] + [
        StepKind.TAPER
    ] * 4
    assert [s.rate_ml_h for s in steps] == pytest.approx(
        [plateau * k / 5 for k in (1, 2, 3, 4, 5, 4, 3, 2, 1)]
    )
    assert [s.duration_s for s in steps] == [1800.0] * 4 + [20 * 3600.0] + [1800.0] * 4
    total = sum(s.rate_ml_h * (s.duration_s or 0) / 3600 for s in steps)
    assert total == pytest.approx(2000.0)
    assert p.plan.vtbi_ml == 2000.0 and p.plan.kvo_at_end
    assert p.summary["plateau_rate_ml_h"] == pytest.approx(plateau)


def test_ramp_taper_volume_is_checked_against_the_care_area() -> None:
    with pytest.raises(HardLimitError) as exc:  # Adult Med-Surg max VTBI 3000 mL
        T.ramp_taper(
            ctx(MED_SURG),
            volume="4000 mL",
            duration="24 h",
            ramp="2 h",
            taper="2 h",
            override_reason="parenteral nutrition",
        )
    assert "vtbi" in str(exc.value)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"duration": "4 h"}, "duration"),  # not longer than ramp + taper
        ({"increments": 0}, "increments"),
        ({"increments": 21}, "increments"),
        ({"ramp": "0 h"}, "ramp"),
        ({"volume": "2 L/h"}, "volume"),
    ],
)
def test_ramp_taper_errors(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"volume": "2000 mL", "duration": "24 h", "ramp": "2 h", "taper": "2 h"}
    with pytest.raises(InputError) as exc:
        T.ramp_taper(ctx(MED_SURG), override_reason="x", **{**args, **kwargs})
    assert exc.value.field == field


def test_intermittent_doses() -> None:
    p = T.intermittent(
        ctx(),
        drug="piperacillin-tazobactam",
        concentration="4.5 g/100 mL",
        dose="4.5 g",
        every="6 h",
        over="30 min",
        doses=4,
    )
    kinds = [s.kind for s in p.plan.steps]
    assert kinds == [StepKind.DOSE, StepKind.WAIT] * 3 + [StepKind.DOSE]
    dose = p.plan.steps[0]
    assert dose.volume_ml == 100.0 and dose.rate_ml_h == pytest.approx(200.0)
    assert p.plan.steps[1].duration_s == pytest.approx(5.5 * 3600)
    assert p.plan.repeat_from is None and not p.plan.kvo_at_end
    assert p.summary["every_h"] == 6.0
    # 18 g per 24 h: metered by the engine
    assert p.plan.envelope.window_s == 86400.0
    assert p.plan.envelope.window_max_amount == pytest.approx(18000.0)  # mg
    # without a count it repeats until stopped
    forever = T.intermittent(
        ctx(),
        drug="piperacillin-tazobactam",
        dose="4.5 g",
        every="6 h",
        over="30 min",
        concentration="4.5 g/100 mL",
    )
    assert len(forever.plan.steps) == 2 and forever.plan.repeat_from == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"over": "6 h"}, "over"),
        ({"over": "0 min"}, "over"),
        ({"doses": 0}, "doses"),
        ({"every": "-6 h"}, "every"),
        ({"dose": "4.5 g/h"}, "dose"),
        ({"drug": "unobtainium"}, "drug"),
    ],
)
def test_intermittent_errors(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {
        "drug": "piperacillin-tazobactam",
        "concentration": "4.5 g/100 mL",
        "dose": "4.5 g",
        "every": "6 h",
        "over": "30 min",
    }
    with pytest.raises(InputError) as exc:
        T.intermittent(ctx(), **{**args, **kwargs})
    assert exc.value.field == field


def _pca(**kw: Any) -> T.Programmed:
    args: dict[str, Any] = {
        "drug": "morphine",
        "concentration": "1 mg/mL",
        "demand_dose": "1 mg",
        "lockout": "10 min",
        "basal": "0 mg/h",
        "limit_4h": "10 mg",
        **kw,
    }
    return T.pca(ctx(MED_SURG, mechanism=pca_pump()), **args)


def test_pca_settings() -> None:
    p = _pca()
    pca = p.plan.pca
    assert pca is not None
    assert pca.demand_ml == 1.0 and pca.lockout_s == 600.0 and pca.bolus_rate_ml_h == 150.0
    assert pca.limits == ((14400.0, 10.0),)  # 10 mg per 4 h
    basal = p.plan.steps[-1]
    assert basal.kind is StepKind.CONTINUOUS and basal.rate_ml_h == 0.0
    assert p.verdict is not None and p.verdict.level is Level.OK
    with_basal = _pca(basal="0.5 mg/h", limit_1h="4 mg", limit_4h=None)
    assert with_basal.plan.steps[-1].rate_ml_h == 0.5
    assert with_basal.plan.pca is not None and with_basal.plan.pca.limits == ((3600.0, 4.0),)


@pytest.mark.parametrize(
    ("kwargs", "level"),
    [
        ({"demand_dose": "2.5 mg"}, "soft"),  # soft max 2
        ({"demand_dose": "4 mg"}, "hard"),  # hard max 3
        ({"lockout": "5.5 min"}, "soft"),  # soft min 6
        ({"lockout": "4 min"}, "hard"),  # hard min 5
        ({"limit_4h": "35 mg"}, "soft"),  # soft max 30 per 4 h
        ({"limit_4h": "45 mg"}, "hard"),  # hard max 40 per 4 h
        ({"basal": "1.5 mg/h"}, "soft"),  # basal soft max 1
        ({"basal": "3 mg/h"}, "hard"),  # basal hard max 2
    ],
)
def test_pca_limits(kwargs: dict[str, str], level: str) -> None:
    error = SoftLimitError if level == "soft" else HardLimitError
    with pytest.raises(error):
        _pca(**kwargs)
    if level == "soft":
        p = _pca(override_reason="acute pain service order", **kwargs)
        assert p.verdict is not None and p.verdict.label == "soft"
        assert p.override is not None and p.override.reason == "acute pain service order"


def test_pca_needs_a_pca_entry() -> None:
    with pytest.raises(InputError) as exc:
        T.pca(
            ctx(ICU, mechanism=pca_pump()),
            drug="norepinephrine",
            concentration="4 mg/250 mL",
            demand_dose="1 mg",
            lockout="10 min",
        )
    assert exc.value.field == "drug"
    assert "no PCA entry" in exc.value.rule


# ---- errors, verdicts, envelope ---------------------------------------------------------------


def test_errors_name_field_value_and_rule() -> None:
    with pytest.raises(InputError) as exc:
        T.continuous(ctx(), drug="unobtainium", rate="5 mL/h")
    field, value, rule = field_error(exc)
    assert (field, value) == ("drug", "unobtainium")
    assert "not in the library for Adult ICU" in rule
    with pytest.raises(InputError) as exc:
        T.continuous(ctx(), drug="dopamine", dose="5 mcg/kg/min")
    assert field_error(exc) == (
        "concentration",
        "",
        "choose one of 400 mg/250 mL, 800 mg/250 mL",
    )
    with pytest.raises(InputError) as exc:
        T.continuous(T.Context(lvp()), drug="dopamine", dose="5 mcg/kg/min")
    assert field_error(exc)[0] == "drug" and "care area" in exc.value.rule
    with pytest.raises(InputError) as exc:
        norepinephrine(dose="0.1 mcg/kg")
    assert field_error(exc) == ("dose", "0.1 mcg/kg", "must be a dose over time, like mcg/kg/min")
    with pytest.raises(InputError) as exc:
        T.continuous(ctx(), drug="norepinephrine", concentration="4 mg/250 mL")
    assert field_error(exc)[0] == "dose"
    with pytest.raises(InputError) as exc:
        T.intermittent(
            ctx(ONCOLOGY, Patient(weight_kg=70.0, height_cm=175.0)),
            drug="paclitaxel",
            dose="175 mg/m2",
            every="21 d",
            over="3 h",
        )
    assert exc.value.field == "concentration"
    assert exc.value.rule == "give the concentration for PACLitaxel"


def test_weight_based_dose_without_weight() -> None:
    with pytest.raises(InputError) as exc:
        norepinephrine(ctx(patient=Patient()))
    assert exc.value.field == "weight"


def test_authorize_verdicts() -> None:
    ok = norepinephrine().verdict
    assert ok is not None and T.authorize(ok, None) is None
    with pytest.raises(SoftLimitError) as soft:
        T.continuous(ctx(), drug="dopamine", concentration="400 mg/250 mL", dose="25 mcg/kg/min")
    verdict = soft.value.verdict
    assert verdict.level is Level.SOFT
    assert [f.bound for f in verdict.crossed] == ["soft_max"]
    with pytest.raises(SoftLimitError):
        T.authorize(verdict, "   ")  # a blank reason is no reason
    override = T.authorize(verdict, "refractory shock")
    assert override is not None and override.reason == "refractory shock"
    assert override.findings == verdict.crossed
    with pytest.raises(HardLimitError) as hard:
        norepinephrine(dose="5 mcg/kg/min", override_reason="any reason")
    assert hard.value.exit_code == 4
    assert {f.bound for f in hard.value.verdict.crossed} >= {"hard_max"}
    with pytest.raises(HardLimitError):
        T.authorize(hard.value.verdict, "still no")


def test_verdict_level_of_a_plan_without_verdict() -> None:
    plain = T.continuous(T.Context(lvp()), rate="10 mL/h")  # no care area: no DERS
    assert plain.verdict is None and T.verdict_level(plain) is Level.OK
    assert T.verdict_level(norepinephrine()) is Level.OK


@pytest.mark.parametrize(
    ("mechanism", "area", "expected"),
    [
        (lvp(), ICU, 3 * 70 * 60 / 1000 / 0.016),  # drug hard max 3 mcg/kg/min: 787.5 mL/h
        (syringe(10), ICU, 200.0),  # a 10 mL syringe drive tops out at 200 mL/h
        (lvp(), None, 787.5),  # without a care area the drug still bounds it
    ],
)
def test_envelope_takes_the_tightest_ceiling(
    mechanism: Mechanism, area: Any, expected: float
) -> None:
    context = T.Context(mechanism, ADULT, LIB, ICU)
    entry = T.find_entry(context, "norepinephrine")
    conc = T._concentration(entry, "4 mg/250 mL")
    env = T.envelope(T.Context(mechanism, ADULT, LIB, area), entry, conc)
    assert env.max_rate_ml_h == pytest.approx(expected)
    assert env.max_bolus_ml == math.inf and env.window_s is None


def test_envelope_of_a_basic_infusion() -> None:
    assert T.envelope(ctx(MED_SURG), None, None).max_rate_ml_h == 999.0
    nicu = LIB.care_area("NICU")
    assert T.envelope(ctx(nicu), None, None).max_rate_ml_h == 10.0  # basic hard max
    assert T.envelope(T.Context(syringe(10)), None, None).max_rate_ml_h == 200.0


def test_journal_info_records_verdict_findings_and_override() -> None:
    p = T.continuous(
        ctx(),
        drug="dopamine",
        concentration="400 mg/250 mL",
        dose="25 mcg/kg/min",
        override_reason="refractory shock",
    )
    info = p.journal_info()
    assert info["verdict"] == "soft"
    assert info["override_reason"] == "refractory shock"
    assert info["findings"] == ["dose 25 mcg/kg/min is above the soft limit 20 mcg/kg/min"]
    assert info["summary"]["rate_ml_h"] == pytest.approx(65.625)
