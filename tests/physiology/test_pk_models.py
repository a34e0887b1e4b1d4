"""Population models against published and consensus values (PKPD_REFERENCE.md), covariate
validity errors, and cohorts equal to per-patient builds.

Oracles: stanpumpR unit tests (Eleveld propofol and remifentanil), the reference-patient
parameter tables of §1.2-1.4, the ke0/tpeak table of §1.9, the consensus Cp at 60 min of
§0 (columns of implementations without the bugs listed there) and the first TCI steps of
§2.3-2.4. Never a column from the known-bug list.
"""

from __future__ import annotations

import numpy as np
import pytest

from openinfusion.errors import InputError
from openinfusion.patient import Patient
from openinfusion.physiology.pk import (
    MODEL_SPECS,
    Covariates,
    ModelOptions,
    PkModel,
    Schedule,
    build_model,
    factor_viii_bjorkman,
    heparin_al_sallami,
    heparin_jia,
    model_spec,
    morphine_sarton,
    propofol_eleveld,
    propofol_marsh,
    propofol_schnider,
    remifentanil_eleveld,
    remifentanil_minto,
    simulate,
    time_to_peak_effect_min,
    vancomycin_buelga,
    vancomycin_goti,
)
from openinfusion.physiology.pk.models import al_sallami_ffm_kg

REF = Covariates(age_years=40, weight_kg=70, height_cm=170, male=True)


def _params(m: PkModel) -> dict[str, float]:
    return {k: v[0] for k, v in m.as_dict().items() if v is not None}


# ---- reference-patient parameters -------------------------------------------------------


def test_marsh_diprifusor_constants() -> None:
    p = _params(propofol_marsh(REF))
    assert p["v1_l"] == pytest.approx(0.228 * 70)
    assert (p["k10_per_min"], p["k12_per_min"], p["k13_per_min"]) == (0.119, 0.112, 0.0419)
    assert (p["k21_per_min"], p["k31_per_min"]) == (0.055, 0.0033)  # not PyTCI's 0.0031
    assert p["v2_l"] / 70 == pytest.approx(0.464, abs=0.0005)
    assert p["v3_l"] / 70 == pytest.approx(2.895, abs=0.0005)


def test_schnider_reference_patient() -> None:
    """§1.3: LBM 55.30 kg, V2 23.983 L, CL 1.6381, Q2 1.602 L/min and micro-constants."""
    p = _params(propofol_schnider(REF))
    assert p["v2_l"] == pytest.approx(23.983, abs=1e-9)
    assert p["cl_l_min"] == pytest.approx(1.6381, abs=5e-5)  # weight, not LBM (R tci bug)
    assert p["q2_l_min"] == pytest.approx(1.602, abs=1e-9)
    for name, value in (("k10", 0.38364), ("k12", 0.37518), ("k13", 0.19578), ("k21", 0.06680)):
        assert p[f"{name}_per_min"] == pytest.approx(value, abs=5e-6)
    assert p["k31_per_min"] == pytest.approx(0.003513, abs=5e-7)


@pytest.mark.parametrize(
    ("opioid", "expected"),
    [
        (False, (6.2831, 23.5839, 272.8168, 1.7896, 1.7176, 1.1134)),
        (True, (6.2831, 23.5839, 156.9828, 1.5963, 1.7176, 0.7356)),
    ],
)
def test_eleveld_propofol_reference_patient(opioid: bool, expected: tuple[float, ...]) -> None:
    """§1.4 reference patient (70 kg/170 cm/40 y M); Q3 follows the opioid-reduced V3."""
    p = _params(propofol_eleveld(REF, opioid=opioid))
    got = (p["v1_l"], p["v2_l"], p["v3_l"], p["cl_l_min"], p["q2_l_min"], p["q3_l_min"])
    np.testing.assert_allclose(got, expected, atol=6e-5)


@pytest.mark.parametrize(
    ("age", "weight", "height", "male", "expected", "rtol"),
    [
        # stanpumpR tests/testthat/test-drugs-propofol.R (opioid always on, arterial).
        (50, 70, 171, True, (6.283078, 20.17078, 137.4287, 1.551355, 1.516118, 0.6698454), 1e-6),
        # Female V3/Q3: stanpumpR rounds the FFM constants (37.99/35.98); 1.2e-5 apart.
        (50, 55, 160, False, (5.772932, 15.84847, 92.30994, 1.519402, 1.265265, 0.4969959), 2e-5),
    ],
)
def test_eleveld_propofol_matches_stanpumpr_unit_tests(
    age: float,
    weight: float,
    height: float,
    male: bool,
    expected: tuple[float, ...],
    rtol: float,
) -> None:
    cov = Covariates(age_years=age, weight_kg=weight, height_cm=height, male=male)
    p = _params(propofol_eleveld(cov, opioid=True))
    got = (p["v1_l"], p["v2_l"], p["v3_l"], p["cl_l_min"], p["q2_l_min"], p["q3_l_min"])
    np.testing.assert_allclose(got, expected, rtol=rtol)


def test_eleveld_remifentanil_matches_stanpumpr_unit_test() -> None:
    """stanpumpR test-drugs-remifentanil.R: 70 kg/171 cm/50 y M."""
    cov = Covariates(age_years=50, weight_kg=70, height_cm=171, male=True)
    p = _params(remifentanil_eleveld(cov))
    got = (p["v1_l"], p["v2_l"], p["v3_l"], p["cl_l_min"], p["q2_l_min"], p["q3_l_min"])
    expected = (5.371314, 8.442319, 3.148362, 2.462212, 1.52838, 0.08064262)
    np.testing.assert_allclose(got, expected, rtol=5e-6)
    # V3 uses V3ref 5.03 L (R tci uses V2ref 8.82 L there).
    assert p["v3_l"] < 5.03


def test_eleveld_remifentanil_female_v2_has_the_sex_factor() -> None:
    """PAS omits KSEX on V2; a 30-y-old woman's V2 is larger than a matched man's."""
    man = _params(
        remifentanil_eleveld(Covariates(age_years=30, weight_kg=60, height_cm=165, male=True))
    )
    woman = _params(
        remifentanil_eleveld(Covariates(age_years=30, weight_kg=60, height_cm=165, male=False))
    )
    ffm_ratio = (
        al_sallami_ffm_kg(np.array([30.0]), np.array([60.0]), np.array([165.0]), np.array([False]))[
            0
        ]
        / al_sallami_ffm_kg(
            np.array([30.0]), np.array([60.0]), np.array([165.0]), np.array([True])
        )[0]
    )
    ksex = 1 + 0.4704050 * (30**6 / (30**6 + 12**6)) * (1 - 30**6 / (30**6 + 45**6))
    assert woman["v2_l"] / man["v2_l"] == pytest.approx(ffm_ratio * ksex, rel=1e-12)


def test_minto_reference_patient() -> None:
    p = _params(remifentanil_minto(REF))
    lbm = 1.1 * 70 - 128 * (70 / 170) ** 2
    assert p["v1_l"] == pytest.approx(5.1 + 0.072 * (lbm - 55))
    assert p["cl_l_min"] == pytest.approx(2.6 + 0.0191 * (lbm - 55))
    assert p["ke0_per_min"] == pytest.approx(0.595)


# ---- effect-site timing (§1.9) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "ke0", "tpeak"),
    [
        (lambda: propofol_marsh(REF), 0.26, 3.92),
        (lambda: propofol_marsh(REF, 1.2), 1.2, 1.62),
        (lambda: propofol_schnider(REF), 0.456, 1.52),
        (lambda: propofol_eleveld(REF), 0.146, 2.95),
        (lambda: propofol_eleveld(REF, opioid=True), 0.146, 3.24),
        (lambda: remifentanil_minto(REF), 0.595, 1.43),
        (lambda: remifentanil_eleveld(REF), 0.943, 1.23),
    ],
)
def test_ke0_and_time_to_peak_table(build: object, ke0: float, tpeak: float) -> None:
    model = build()  # type: ignore[operator]
    assert model.ke0_per_min[0] == pytest.approx(ke0, abs=5e-4)
    assert time_to_peak_effect_min(model)[0] == pytest.approx(tpeak, abs=0.005)


def test_schnider_tpeak_variant() -> None:
    """§1.3: tpeak 1.6 min in the Schnider reference individual needs ke0 0.425 1/min."""
    cov = Covariates(age_years=53, weight_kg=77, height_cm=177, male=True)
    model = propofol_schnider(cov, "tpeak")
    assert model.ke0_per_min[0] == pytest.approx(0.425, abs=5e-4)
    assert time_to_peak_effect_min(model)[0] == pytest.approx(1.6, abs=1e-6)


# ---- concentrations: consensus scenario (§0) and first TCI steps (§2.3-2.4) ----------------

INDUCTION = Schedule.build(infusions=[(0, 3600, 700 / 3600)], boluses=[(0, 140.0)])


@pytest.mark.parametrize(
    ("build", "cp60"),
    [
        (lambda: propofol_schnider(REF), 4.88),  # R tci (LBM bug): 6.57
        (lambda: propofol_eleveld(REF, opioid=True), 5.21),  # PyTCI: 4.79
    ],
)
def test_cp_at_60_min_consensus(build: object, cp60: float) -> None:
    """2 mg/kg + 10 mg/kg/h, 70 kg/170 cm/40 y M."""
    result = simulate(build(), INDUCTION, [3600.0])  # type: ignore[operator]
    assert result.cp[0, 0] == pytest.approx(cp60, abs=0.005)


def test_eleveld_opioid_flag_changes_cp60_by_22_percent() -> None:
    with_opioid = simulate(propofol_eleveld(REF, opioid=True), INDUCTION, [3600.0]).cp[0, 0]
    without = simulate(propofol_eleveld(REF), INDUCTION, [3600.0]).cp[0, 0]
    assert with_opioid / without == pytest.approx(1.22, abs=0.005)


@pytest.mark.parametrize(
    ("build", "plasma_mg", "effect_mg"),
    [
        (lambda: propofol_marsh(REF), 65.30, 174.5),
        (lambda: propofol_schnider(REF), 18.47, 69.5),
        (lambda: propofol_eleveld(REF, opioid=True), 26.50, 165.7),
    ],
)
def test_first_tci_step_for_target_4(build: object, plasma_mg: float, effect_mg: float) -> None:
    """Amount in the first 10-s step to reach Cp = 4 at 10 s (Jacobs/STANPUMP), and to make
    the effect-site peak exactly 4 µg/mL (Shafer & Gregg): both linear in the unit response."""
    model = build()  # type: ignore[operator]
    unit = Schedule.build(infusions=[(0, 10, 1.0)])  # 1 mg/s for 10 s
    grid = np.concatenate(([10.0], np.arange(10.0, 1800.0, 0.02)))
    result = simulate(model, unit, grid)
    assert 4.0 / result.cp[0, 0] * 10.0 == pytest.approx(plasma_mg, abs=0.005)
    assert 4.0 / result.ce[0].max() * 10.0 == pytest.approx(effect_mg, abs=0.05)


# ---- other drugs ------------------------------------------------------------------------------


def test_sarton_morphine_sex_specific_ke0() -> None:
    man = morphine_sarton(Covariates(weight_kg=80, male=True))
    woman = morphine_sarton(Covariates(weight_kg=80, male=False))
    assert man.v1_l[0] == pytest.approx(6.0)
    # t1/2 ke0 about 1.6 h in men and 4.8 h in women.
    assert np.log(2) / man.ke0_per_min[0] / 60 == pytest.approx(1.6, abs=0.05)
    assert np.log(2) / woman.ke0_per_min[0] / 60 == pytest.approx(4.8, abs=0.05)


def test_heparin_models() -> None:
    adult = heparin_jia(Covariates(age_years=55, weight_kg=70))
    assert not adult.has_effect_site and adult.compartments == 2
    assert adult.cl_l_min[0] * 60 == pytest.approx(1.18)
    assert adult.v2_l[0] == pytest.approx(8.01)
    # Jia 2015 sanity check: 24 805 IU into 3.04 L gives 8.16 IU/mL.
    cp0 = simulate(adult, Schedule.build(boluses=[(0, 24805.0)]), [0.0]).cp[0, 0]
    assert cp0 / 1000 == pytest.approx(8.16, abs=0.005)
    child = heparin_al_sallami(Covariates(age_years=6, weight_kg=20, height_cm=115, male=True))
    assert child.compartments == 1 and child.v1_l[0] == pytest.approx(0.751)
    ffm = al_sallami_ffm_kg(np.array([6.0]), np.array([20.0]), np.array([115.0]), np.array([True]))[
        0
    ]
    assert child.cl_l_min[0] * 60 == pytest.approx(0.603 * ffm / 15)


def test_goti_vancomycin_covariates() -> None:
    cov = Covariates(age_years=50, weight_kg=70, male=True, serum_creatinine_mg_dl=0.8)
    m = vancomycin_goti(cov)
    crcl = min(150.0, (140 - 50) * 70 / (72 * 0.8))
    assert m.cl_l_min[0] * 60 == pytest.approx(4.5 * (crcl / 120) ** 0.8)
    assert (m.v1_l[0], m.v2_l[0], m.q2_l_min[0] * 60) == pytest.approx((58.4, 38.4, 6.5))
    on_dialysis = vancomycin_goti(cov, dialysis=True)
    assert on_dialysis.cl_l_min[0] == pytest.approx(0.7 * m.cl_l_min[0])
    assert on_dialysis.v1_l[0] == pytest.approx(0.5 * m.v1_l[0])
    # Above 60 y an SCr below 1 mg/dL counts as 1; CrCL is capped at 150 mL/min.
    old = vancomycin_goti(
        Covariates(age_years=70, weight_kg=70, male=False, serum_creatinine_mg_dl=0.6)
    )
    assert old.cl_l_min[0] * 60 == pytest.approx(4.5 * ((70 * 70 / 72 * 0.85) / 120) ** 0.8)
    young = vancomycin_goti(
        Covariates(age_years=20, weight_kg=120, male=True, serum_creatinine_mg_dl=0.5)
    )
    assert young.cl_l_min[0] * 60 == pytest.approx(4.5 * (150 / 120) ** 0.8)


def test_buelga_is_one_compartment() -> None:
    m = vancomycin_buelga(
        Covariates(age_years=60, weight_kg=80, male=False, serum_creatinine_mg_dl=1.0)
    )
    crcl = (140 - 60) * 80 / 72 * 0.85
    assert m.compartments == 1
    assert m.cl_l_min[0] * 60 == pytest.approx(1.08 * crcl * 0.06)
    assert m.v1_l[0] == pytest.approx(0.98 * 80)


def test_bjorkman_factor_viii() -> None:
    m = factor_viii_bjorkman(Covariates(age_years=22, weight_kg=56))
    assert m.cl_l_min[0] * 60 * 1000 == pytest.approx(193.0)
    assert (m.v1_l[0], m.v2_l[0], m.q2_l_min[0] * 60000) == pytest.approx((2.22, 0.73, 147.0))
    # 50 IU/kg (2800 IU) -> about 2 IU/dL per IU/kg in vivo recovery at the reference size.
    cp0 = simulate(m, Schedule.build(boluses=[(0, 2800.0)]), [0.0]).cp[0, 0] * 0.1
    assert cp0 / 50 == pytest.approx(2.5, abs=0.05)


# ---- validity errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "cov", "field", "fragment"),
    [
        (propofol_marsh, Covariates(age_years=40, weight_kg=200), "weight", "between 30 and 150"),
        (propofol_marsh, Covariates(age_years=10, weight_kg=35), "age", "adults"),
        (
            propofol_schnider,
            Covariates(age_years=40, weight_kg=150, height_cm=160, male=True),
            "bmi",
            "James",
        ),
        (
            propofol_schnider,
            Covariates(age_years=40, weight_kg=70, male=True),
            "height",
            "required",
        ),
        (
            propofol_eleveld,
            Covariates(age_years=90, weight_kg=70, height_cm=170, male=True),
            "age",
            "Eleveld 2018",
        ),
        (
            propofol_eleveld,
            Covariates(age_years=40, weight_kg=170, height_cm=190, male=True),
            "weight",
            "0.68 and 160",
        ),
        (
            remifentanil_minto,
            Covariates(age_years=16, weight_kg=60, height_cm=170, male=False),
            "age",
            "20 and 85",
        ),
        (
            remifentanil_eleveld,
            Covariates(age_years=40, weight_kg=120, height_cm=180, male=False),
            "weight",
            "2.5 and 106",
        ),
        (morphine_sarton, Covariates(weight_kg=70), "sex", "required"),
        (heparin_jia, Covariates(age_years=8, weight_kg=25), "age", "Jia 2015"),
        (
            heparin_al_sallami,
            Covariates(age_years=30, weight_kg=70, height_cm=170, male=True),
            "age",
            "0.5 and 15.5",
        ),
        (
            vancomycin_goti,
            Covariates(age_years=40, weight_kg=70, male=True),
            "serum_creatinine",
            "required",
        ),
        (
            vancomycin_goti,
            Covariates(age_years=90, weight_kg=40, male=False, serum_creatinine_mg_dl=20.0),
            "creatinine_clearance_ml_min",
            "Goti 2018",
        ),
        (factor_viii_bjorkman, Covariates(age_years=70, weight_kg=70), "age", "1 and 65"),
    ],
)
def test_covariates_outside_validity_are_refused(
    build: object, cov: Covariates, field: str, fragment: str
) -> None:
    with pytest.raises(InputError) as err:
        build(cov)  # type: ignore[operator]
    assert err.value.field == field
    assert fragment in err.value.rule
    if field != "sex" and "required" not in fragment:
        assert err.value.value not in (None, "")


def test_cohort_error_names_the_patient() -> None:
    cov = Covariates(age_years=[40, 50, 95], weight_kg=70, height_cm=170, male=True)
    with pytest.raises(InputError) as err:
        propofol_eleveld(cov)
    assert err.value.field == "age[2]"
    assert "95 years" in str(err.value.value)


def test_implausible_covariates_are_refused_before_any_model() -> None:
    with pytest.raises(InputError) as err:
        Covariates(weight_kg=-3)
    assert err.value.field == "weight"


# ---- cohorts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("drug", "name"), sorted(MODEL_SPECS))
def test_every_model_vectorised_equals_per_patient(drug: str, name: str) -> None:
    rng = np.random.default_rng(3)
    n = 6
    young = drug == "heparin" and name == "al-sallami"
    age = rng.uniform(2, 15, n) if young else rng.uniform(25, 60, n)
    weight = rng.uniform(12, 60, n) if young else rng.uniform(50, 80, n)
    height = rng.uniform(90, 170, n) if young else rng.uniform(160, 190, n)
    male = rng.random(n) < 0.5
    scr = rng.uniform(0.6, 1.4, n)
    cov = Covariates(
        age_years=age, weight_kg=weight, height_cm=height, male=male, serum_creatinine_mg_dl=scr
    )
    _, together = build_model(drug, name, cov)
    for i in range(n):
        one = Covariates(
            age_years=age[i],
            weight_kg=weight[i],
            height_cm=height[i],
            male=male[i],
            serum_creatinine_mg_dl=scr[i],
        )
        _, alone = build_model(drug, name, one)
        for key, value in together.as_dict().items():
            single = alone.as_dict()[key]
            if value is None:
                assert single is None
            else:
                assert value[i] == pytest.approx(single[0], rel=1e-12), key


def test_registry_lookup_and_options() -> None:
    assert model_spec("propofol").name == "eleveld"
    assert model_spec("Factor VIII").drug == "factor_viii"
    with pytest.raises(InputError) as err:
        model_spec("propofol", "minto")
    assert err.value.field == "model" and "schnider" in err.value.rule
    with pytest.raises(InputError) as err:
        model_spec("ketamine")
    assert err.value.field == "drug"
    with pytest.raises(InputError) as err:
        build_model("propofol", "schnider", REF, ModelOptions(opioid=True))
    assert err.value.field == "opioid"
    spec, model = build_model("propofol", "eleveld", REF, ModelOptions(opioid=True))
    assert model.v3_l[0] == pytest.approx(156.9828, abs=1e-4)
    assert spec.amount_unit == "mg" and spec.concentration_unit == "mcg/mL"


def test_covariates_from_patients() -> None:
    patients = [
        Patient(weight_kg=70, height_cm=170, age_years=40, sex=None),
        Patient(weight_kg=60, height_cm=160, age_years=30, sex=None),
    ]
    cov = Covariates.from_patients(patients)
    assert cov.n == 2 and cov.male is None
    assert list(cov.weight_kg) == [70.0, 60.0]  # type: ignore[arg-type]
