"""Patient covariates against the published formulas' worked values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openinfusion.errors import InputError
from openinfusion.patient import (
    BsaMethod,
    Patient,
    Sex,
    adjusted_body_weight_kg,
    bsa_m2,
    creatinine_clearance_ml_min,
    ideal_body_weight_kg,
    lean_body_mass_james_kg,
    lean_body_weight_kg,
    parse_age_years,
    parse_creatinine_mg_dl,
)


def test_mosteller_reference_adult() -> None:
    # sqrt(170 * 70 / 3600) = 1.8181 m2 (Mosteller 1987).
    assert bsa_m2(70, 170) == pytest.approx(1.81812, abs=1e-5)


def test_dubois_reference_adult() -> None:
    # 0.007184 * 70^0.425 * 170^0.725 = 1.809 m2, the usual textbook figure of ~1.81 m2.
    assert bsa_m2(70, 170, BsaMethod.DUBOIS) == pytest.approx(1.809, abs=2e-3)


def test_formulas_agree_for_adults_and_dubois_is_lowest_for_infants() -> None:
    adult = [bsa_m2(70, 170, m) for m in BsaMethod]
    assert max(adult) / min(adult) < 1.02
    infant = {m: bsa_m2(10, 75, m) for m in BsaMethod}
    assert infant[BsaMethod.DUBOIS] < infant[BsaMethod.MOSTELLER] < infant[BsaMethod.HAYCOCK]
    assert infant[BsaMethod.HAYCOCK] == pytest.approx(0.4636, abs=5e-4)


def test_devine_ideal_body_weight() -> None:
    assert ideal_body_weight_kg(170, Sex.MALE) == pytest.approx(65.94, abs=0.01)
    assert ideal_body_weight_kg(160, Sex.FEMALE) == pytest.approx(52.38, abs=0.01)
    assert ideal_body_weight_kg(152.4, Sex.MALE) == pytest.approx(50.0)
    with pytest.raises(InputError, match="children"):
        ideal_body_weight_kg(100, Sex.MALE)


def test_adjusted_body_weight_only_above_ibw() -> None:
    assert adjusted_body_weight_kg(120, 170, Sex.MALE) == pytest.approx(
        65.937 + 0.4 * 54.063, abs=0.01
    )
    assert adjusted_body_weight_kg(60, 170, Sex.MALE) == 60


def test_janmahasatian_lean_body_weight() -> None:
    assert lean_body_weight_kg(70, 170, Sex.MALE) == pytest.approx(54.48, abs=0.01)
    assert lean_body_weight_kg(70, 170, Sex.FEMALE) == pytest.approx(
        9270 * 70 / (8780 + 244 * 70 / 1.7**2), rel=1e-12
    )


def test_james_lean_body_mass() -> None:
    assert lean_body_mass_james_kg(70, 170, Sex.MALE) == pytest.approx(55.30, abs=0.01)


def test_cockcroft_gault() -> None:
    assert creatinine_clearance_ml_min(40, 70, Sex.MALE, 1.0) == pytest.approx(97.22, abs=0.01)
    assert creatinine_clearance_ml_min(40, 70, Sex.FEMALE, 1.0) == pytest.approx(82.64, abs=0.01)
    p = Patient.from_text(weight="70 kg", age="40", sex="m", serum_creatinine="88.42 umol/L")
    assert p.creatinine_clearance_ml_min() == pytest.approx(97.22, abs=0.01)


def test_creatinine_clearance_names_missing_covariate() -> None:
    with pytest.raises(InputError) as info:
        Patient(weight_kg=70, age_years=40).creatinine_clearance_ml_min()
    assert info.value.field == "sex"


def test_units_at_the_edge() -> None:
    p = Patient.from_text(weight="154 lb", height="67 in", age="6 months", sex="F")
    assert p.weight_kg == pytest.approx(69.853, abs=1e-3)
    assert p.height_cm == pytest.approx(170.18)
    assert p.age_years == pytest.approx(0.5)
    assert p.sex is Sex.FEMALE
    assert parse_age_years("10 days") == pytest.approx(10 / 365.2425)
    assert parse_creatinine_mg_dl("0.9 mg/dL") == 0.9


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"weight": "70"}, "weight"),
        ({"weight": "0 kg"}, "weight"),
        ({"weight": "7000 kg"}, "weight"),
        ({"weight": "-3 kg"}, "weight"),
        ({"height": "170 kg"}, "height"),
        ({"age": "200"}, "age"),
        ({"sex": "x"}, "sex"),
        ({"serum_creatinine": "1 g"}, "serum_creatinine"),
        ({"bsa_method": "guess"}, "bsa_method"),
    ],
)
def test_bad_covariates_name_the_field(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(InputError) as info:
        Patient.from_text(**kwargs)
    assert info.value.field == field


@given(st.floats(0.3, 500), st.floats(30, 250))
def test_bsa_is_positive_and_grows_with_weight(weight: float, height: float) -> None:
    for method in BsaMethod:
        small, large = bsa_m2(weight, height, method), bsa_m2(weight * 1.1, height, method)
        assert 0 < small < large
