"""DERS: limits are never crossed silently, whatever units a program is written in."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from openinfusion.errors import InputError
from openinfusion.library import (
    HardLimitError,
    Level,
    Library,
    PcaProgram,
    Program,
    SoftLimitError,
    check,
    check_basic_infusion,
)
from openinfusion.library.loading import library_from_data
from openinfusion.patient import Patient
from openinfusion.units import Dose, convert_dose, parse_concentration, parse_dose, parse_dose_unit

from ..conftest import mini_data

LIB: Library = library_from_data(mini_data())
ICU = LIB.care_area("Adult ICU")
NICU = LIB.care_area("NICU")
DOPAMINE = LIB.find("adult-icu", "dopamine")
HEPARIN = LIB.find("adult-icu", "heparin")
VANCO = LIB.find("adult-icu", "vancomycin")
MORPHINE = LIB.find("adult-icu", "morphine")
DOPA_CONC = parse_concentration("400 mg/250 mL")
ADULT = Patient(weight_kg=70.0, height_cm=175.0, age_years=50)
assert DOPAMINE and HEPARIN and VANCO and MORPHINE


def dopamine(dose: str, **kwargs: object) -> Program:
    return Program(dose=parse_dose(dose), concentration=DOPA_CONC, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("dose", "level", "bound"),
    [
        ("5 mcg/kg/min", Level.OK, None),
        ("20 mcg/kg/min", Level.OK, None),  # at the soft maximum: allowed
        ("25 mcg/kg/min", Level.SOFT, "soft_max"),
        ("1 mcg/kg/min", Level.SOFT, "soft_min"),
        ("50 mcg/kg/min", Level.SOFT, "soft_max"),  # at the hard maximum: soft, not hard
        ("51 mcg/kg/min", Level.HARD, "hard_max"),
        ("3 mg/kg/h", Level.SOFT, "soft_max"),  # = 50 mcg/kg/min: at the hard limit
        ("3.06 mg/kg/h", Level.HARD, "hard_max"),  # = 51 mcg/kg/min
        ("0.35 mg/min", Level.OK, None),  # 5 mcg/kg/min for 70 kg, written absolute
    ],
)
def test_dopamine_four_point_boundaries(dose: str, level: Level, bound: str | None) -> None:
    verdict = check(dopamine(dose), DOPAMINE, ADULT, ICU)
    assert verdict.level is level
    dose_finding = next(f for f in verdict.findings if f.parameter == "dose")
    assert dose_finding.bound == bound


def test_hard_limit_message_names_drug_value_limit_and_area() -> None:
    verdict = check(dopamine("60 mcg/kg/min"), DOPAMINE, ADULT, ICU)
    assert verdict.messages() == [
        "dose 60 mcg/kg/min is above the hard limit 50 mcg/kg/min for DOPamine in Adult ICU"
    ]


EQUIVALENT_UNITS = [
    "mcg/kg/min",
    "mg/kg/h",
    "mcg/kg/h",
    "ng/kg/min",
    "g/kg/day",
    "mcg/min",
    "mg/h",
    "mg/day",
    "mcg/h",
]


@given(
    st.floats(min_value=0.01, max_value=2000.0),
    st.sampled_from(EQUIVALENT_UNITS),
    st.floats(min_value=30.0, max_value=350.0),
)
def test_hard_limit_blocks_whatever_the_units(value: float, unit: str, weight: float) -> None:
    """Property: dose above hard_max (in any equivalent unit) is HARD, below it never is."""
    assume(abs(value / 50.0 - 1.0) > 1e-6)
    written = convert_dose(
        Dose(value, parse_dose_unit("mcg/kg/min")), parse_dose_unit(unit), weight_kg=weight
    )
    program = Program(dose=Dose(written, parse_dose_unit(unit)), concentration=DOPA_CONC)
    verdict = check(program, DOPAMINE, Patient(weight_kg=weight), ICU)
    dose_level = next(f.level for f in verdict.findings if f.parameter == "dose")
    assert (dose_level is Level.HARD) == (value > 50.0)
    if value > 50.0:
        with pytest.raises(HardLimitError):
            verdict.accept(override_reason="clinical need")


@given(st.floats(min_value=0.01, max_value=50.0), st.text(max_size=20))
def test_soft_limits_need_an_override_reason(value: float, reason: str) -> None:
    verdict = check(dopamine(f"{value!r} mcg/kg/min"), DOPAMINE, ADULT, ICU)
    if verdict.level is Level.OK:
        assert verdict.accept() is None
        return
    assert verdict.level is Level.SOFT
    with pytest.raises(SoftLimitError):
        verdict.accept()
    if reason.strip():
        override = verdict.accept(override_reason=reason, clinician="RN 1")
        assert override is not None and override.reason == reason.strip()
        assert override.findings == verdict.crossed
    else:
        with pytest.raises(SoftLimitError):
            verdict.accept(override_reason=reason)


@given(st.floats(min_value=0.05, max_value=900.0))
def test_rate_only_programs_are_checked_as_doses(rate: float) -> None:
    """A number typed into the rate field is turned back into a dose and checked (B-12)."""
    verdict = check(Program(rate_ml_h=rate, concentration=DOPA_CONC), DOPAMINE, ADULT, ICU)
    dose = rate * 1.6 * 1000 / 70 / 60  # mcg/kg/min
    assert verdict.computed["dose"] == pytest.approx(dose)
    assert (verdict.level is Level.HARD) == (dose > 50.0 * (1 + 1e-9))


@pytest.mark.parametrize("factor", [10.0, 0.1, 100.0])
def test_tenfold_rate_against_dose_is_hard(factor: float) -> None:
    verdict = check(dopamine("5 mcg/kg/min", rate_ml_h=13.125 * factor), DOPAMINE, ADULT, ICU)
    assert verdict.level is Level.HARD
    assert any("-fold error" in m for m in verdict.messages())


def test_rounded_display_rate_is_consistent() -> None:
    verdict = check(dopamine("5 mcg/kg/min", rate_ml_h=13.1), DOPAMINE, ADULT, ICU)
    assert verdict.level is Level.OK
    assert verdict.computed["rate_ml_h"] == pytest.approx(13.125)


def test_unlisted_concentration_is_hard_and_other_dimension_is_refused() -> None:
    program = Program(
        dose=parse_dose("5 mcg/kg/min"), concentration=parse_concentration("500 mg/250 mL")
    )
    assert check(program, DOPAMINE, ADULT, ICU).level is Level.HARD
    wrong = Program(
        dose=parse_dose("5 mcg/kg/min"), concentration=parse_concentration("100 units/mL")
    )
    with pytest.raises(InputError, match="never converted"):
        check(wrong, DOPAMINE, ADULT, ICU)
    with pytest.raises(InputError, match="never converted"):
        check(Program(dose=parse_dose("5 units/kg/h")), DOPAMINE, ADULT, ICU)


def test_weight_required_for_weight_based_dose() -> None:
    with pytest.raises(InputError) as info:
        check(dopamine("5 mcg/kg/min"), DOPAMINE, Patient(), ICU)
    assert info.value.field == "weight"


def test_heparin_bolus_limits_and_computed_rate() -> None:
    program = Program(dose=parse_dose("18 units/kg/h"), bolus=parse_dose("80 units/kg"))
    verdict = check(program, HEPARIN, Patient(weight_kg=80.0), ICU)
    assert verdict.level is Level.OK
    assert verdict.computed["rate_ml_h"] == pytest.approx(14.4)
    over = Program(dose=parse_dose("18 units/kg/h"), bolus=parse_dose("10000 units"))
    bolus = next(
        f
        for f in check(over, HEPARIN, Patient(weight_kg=80.0), ICU).findings
        if f.parameter == "bolus"
    )
    assert bolus.level is Level.HARD and bolus.value == pytest.approx(125.0)


def test_loading_dose_not_in_library_is_hard() -> None:
    program = Program(
        dose=parse_dose("5 mcg/kg/min"), loading=parse_dose("1 mg/kg"), concentration=DOPA_CONC
    )
    assert check(program, DOPAMINE, ADULT, ICU).level is Level.HARD


def test_intermittent_dose_duration_and_cumulative() -> None:
    ok = Program(dose=parse_dose("1000 mg"), duration_min=120.0, vtbi_ml=200.0)
    verdict = check(ok, VANCO, ADULT, ICU)
    assert verdict.level is Level.OK
    assert verdict.computed["rate_ml_h"] == pytest.approx(100.0)
    assert verdict.computed["volume_ml"] == pytest.approx(200.0)
    fast = Program(dose=parse_dose("1000 mg"), duration_min=30.0)
    assert check(fast, VANCO, ADULT, ICU).level is Level.HARD
    third = Program(dose=parse_dose("2000 mg"), duration_min=120.0, prior_amount=3000.0)
    found = check(third, VANCO, ADULT, ICU)
    assert found.level is Level.HARD
    assert any(f.parameter == "cumulative" and f.level is Level.HARD for f in found.findings)


def test_pca_demand_lockout_and_max() -> None:
    def pca(demand: str, lockout: float, max_dose: str | None = None) -> Level:
        program = Program(
            dose=parse_dose("0.5 mg/h"),
            pca=PcaProgram(
                parse_dose(demand), lockout, parse_dose(max_dose) if max_dose else None, 4.0
            ),
        )
        return check(program, MORPHINE, ADULT, ICU).level

    assert pca("1 mg", 10) is Level.OK
    assert pca("2.5 mg", 10) is Level.SOFT
    assert pca("5 mg", 10) is Level.HARD
    assert pca("1 mg", 3) is Level.HARD
    assert pca("1 mg", 10, "15 mg") is Level.SOFT
    assert pca("1 mg", 10, "30 mg") is Level.HARD
    assert pca("1000 mcg", 10) is Level.OK


def test_patient_outside_care_area_population() -> None:
    nicu_dopa = LIB.find("nicu", "dopamine")
    assert nicu_dopa is not None
    program = Program(dose=parse_dose("5 mcg/kg/min"))
    assert check(program, nicu_dopa, Patient(weight_kg=3.0), NICU).level is Level.OK
    assert check(program, nicu_dopa, Patient(weight_kg=6.0), NICU).level is Level.SOFT
    assert check(program, nicu_dopa, Patient(weight_kg=40.0), NICU).level is Level.HARD


def test_care_area_max_rate_is_hard() -> None:
    verdict = check(
        Program(rate_ml_h=30.0, concentration=parse_concentration("800 mcg/mL")),
        LIB.find("nicu", "dopamine"),
        Patient(weight_kg=3.0),
        NICU,
    )  # type: ignore[arg-type]
    assert any(f.parameter == "rate" and f.level is Level.HARD for f in verdict.findings)


def test_basic_infusion() -> None:
    assert check_basic_infusion(100.0, ICU).level is Level.SOFT
    assert check_basic_infusion(1200.0, ICU).level is Level.HARD
    assert check_basic_infusion(1.0, NICU).level is Level.HARD  # not allowed in this NICU


def test_every_finding_is_reported() -> None:
    program = Program(dose=parse_dose("5 mcg/kg/min"), concentration=DOPA_CONC, vtbi_ml=100.0)
    params = [f.parameter for f in check(program, DOPAMINE, ADULT, ICU).findings]
    assert params == ["concentration", "dose", "rate", "vtbi", "weight"]
