"""The shipped sample library: valid, broad, labelled as a sample, and clinically sane."""

from __future__ import annotations

import pytest

from openinfusion.library import InfusionType, Level, PcaProgram, Program, check, sample_library
from openinfusion.patient import Patient
from openinfusion.units import Dose, parse_concentration, parse_dose, parse_dose_unit

LIB = sample_library()
PATIENTS = {
    "adult": Patient(weight_kg=70, height_cm=170, age_years=50),
    "paediatric": Patient(weight_kg=20, height_cm=115, age_years=6),
    "neonatal": Patient(weight_kg=2.5, height_cm=48, age_years=0.02),
}
REQUIRED = [
    "norepinephrine",
    "epinephrine",
    "phenylephrine",
    "vasopressin",
    "dopamine",
    "dobutamine",
    "milrinone",
    "propofol",
    "dexmedetomidine",
    "fentanyl",
    "morphine",
    "hydromorphone",
    "remifentanil",
    "insulin regular",
    "heparin",
    "potassium chloride",
    "magnesium sulfate",
    "oxytocin",
    "vancomycin",
    "piperacillin-tazobactam",
    "fluorouracil",
    "oxaliplatin",
    "leucovorin",
    "carboplatin",
    "iron sucrose",
]


def test_is_marked_as_a_sample_with_sources() -> None:
    assert LIB.notice is not None and "sample" in LIB.notice.lower()
    assert "review before clinical use" in LIB.notice
    assert len(LIB.sources) >= 10
    assert all(entry.source for entry in LIB.entries)


def test_breadth() -> None:
    drugs = {e.drug for e in LIB.entries}
    assert len(drugs) >= 40
    missing = [d for d in REQUIRED if d not in drugs]
    assert not missing
    assert any("factor viii" in e.drug or "antihemophilic" in e.drug for e in LIB.entries)
    areas = {e.care_area for e in LIB.entries}
    assert areas == {a.id for a in LIB.care_areas}
    assert {a.name for a in LIB.care_areas} >= {
        "Adult ICU",
        "Adult Med-Surg",
        "Paediatric ICU",
        "NICU",
        "Oncology",
        "Anaesthesia/OR",
        "Labour & Delivery",
    }
    kinds = {e.infusion_type for e in LIB.entries}
    assert kinds >= {
        InfusionType.CONTINUOUS,
        InfusionType.INTERMITTENT,
        InfusionType.PCA,
        InfusionType.BOLUS,
    }


@pytest.mark.parametrize("entry", LIB.entries, ids=lambda e: f"{e.care_area}/{e.drug}/{e.therapy}")
def test_every_default_dose_is_within_limits(entry) -> None:  # type: ignore[no-untyped-def]
    """A library whose own defaults alarm would train clinicians to override."""
    default = entry.limits.dose.default
    if default is None:
        return
    area = LIB.care_area(entry.care_area)
    patient = PATIENTS[area.population.value]
    unit = parse_dose_unit(entry.dose_unit)
    duration = entry.limits.duration_min.default or entry.limits.duration_min.soft_min
    program = Program(dose=Dose(default, unit), duration_min=None if unit.is_rate else duration)
    verdict = check(program, entry, patient, area)
    assert verdict.level is Level.OK, verdict.messages()


def test_issue_examples() -> None:
    icu = LIB.care_area("Adult ICU")
    adult = PATIENTS["adult"]
    norepi = LIB.find("Adult ICU", "norepinephrine")
    assert norepi is not None and "4 mg/250 mL" in norepi.concentrations
    program = Program(
        dose=parse_dose("0.1 mcg/kg/min"), concentration=parse_concentration("4 mg/250 mL")
    )
    assert check(program, norepi, adult, icu).level is Level.OK
    dopamine = LIB.find("Adult ICU", "dopamine")
    assert dopamine is not None
    conc = parse_concentration("400 mg/250 mL")

    def dopa(text: str) -> Level:
        return check(Program(dose=parse_dose(text), concentration=conc), dopamine, adult, icu).level

    assert dopa("5 mcg/kg/min") is Level.OK
    assert dopa("500 mcg/kg/min") is Level.HARD  # a tenfold-and-more error
    morphine = LIB.find("Adult Med-Surg", "morphine")
    assert morphine is not None and morphine.pca is not None
    pca = Program(
        concentration=parse_concentration("1 mg/mL"),
        pca=PcaProgram(parse_dose("1 mg"), 10.0, parse_dose("10 mg"), 4.0),
    )
    assert check(pca, morphine, adult, LIB.care_area("Adult Med-Surg")).level is Level.OK


def test_high_alert_entries_have_a_maximum_and_a_double_check_where_expected() -> None:
    for entry in LIB.entries:
        if (
            entry.drug in ("insulin regular", "heparin")
            and entry.infusion_type is InfusionType.CONTINUOUS
        ):
            assert entry.high_alert, entry.key
    assert any(e.second_check for e in LIB.entries)


def test_neonatal_entries_use_neonatal_care_area_limits() -> None:
    nicu = LIB.care_area("NICU")
    assert nicu.weight_kg.hard_max is not None and nicu.weight_kg.hard_max <= 7
    assert nicu.air_in_line_ul <= 75
    assert any(e.care_area == nicu.id for e in LIB.entries)
