"""Population PK models: covariates in, a :class:`PkModel` out, each value with its source.

Every builder takes :class:`Covariates` (arrays (N,), one entry per patient) and returns
the micro-constants of the typical individual with those covariates. Covariates outside
a model's validity raise :class:`~openinfusion.errors.InputError` naming the field, the
value and the rule. Volumes in L, clearances in L/min, rate constants in 1/min; amount
units are per drug (see :data:`MODEL_SPECS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from openinfusion.errors import InputError
from openinfusion.patient import AGE_RANGE_YEARS, HEIGHT_RANGE_CM, WEIGHT_RANGE_KG, Patient, Sex
from openinfusion.physiology.pk.compartments import (
    ArrayLike,
    FloatArray,
    PkModel,
    ke0_for_time_to_peak,
)
from openinfusion.units import Dimension

BoolArray = npt.NDArray[np.bool_]


# ---- covariates ---------------------------------------------------------------------------


def _arr(value: ArrayLike | None) -> FloatArray | None:
    if value is None:
        return None
    return np.atleast_1d(np.asarray(value, dtype=np.float64))


@dataclass(frozen=True, slots=True, eq=False)
class Covariates:
    """Covariates of N patients, arrays (N,): age (years), weight (kg), height (cm),
    sex (``male`` True/False) and serum creatinine (mg/dL). Unknown fields are None."""

    age_years: FloatArray | None = None
    weight_kg: FloatArray | None = None
    height_cm: FloatArray | None = None
    male: BoolArray | None = None
    serum_creatinine_mg_dl: FloatArray | None = None
    n: int = field(init=False)

    def __post_init__(self) -> None:
        arrays: dict[str, npt.NDArray[np.generic]] = {}
        for name in ("age_years", "weight_kg", "height_cm", "serum_creatinine_mg_dl"):
            value = _arr(getattr(self, name))
            if value is not None:
                arrays[name] = value
        if self.male is not None:
            arrays["male"] = np.atleast_1d(np.asarray(self.male, dtype=np.bool_))
        if not arrays:
            raise InputError("covariates", "", "at least one covariate is required")
        try:
            shaped = np.broadcast_arrays(*arrays.values())
        except ValueError:
            shapes = {k: v.shape for k, v in arrays.items()}
            raise InputError("covariates", str(shapes), "arrays must share shape (N,)") from None
        for name, value in zip(arrays, shaped, strict=True):
            if value.ndim != 1:
                raise InputError(name, f"shape {value.shape}", "must be a scalar or shape (N,)")
            frozen = np.array(value)
            frozen.setflags(write=False)
            object.__setattr__(self, name, frozen)
        object.__setattr__(self, "n", int(shaped[0].shape[0]))
        for name, bounds, unit in (
            ("age_years", AGE_RANGE_YEARS, "years"),
            ("weight_kg", WEIGHT_RANGE_KG, "kg"),
            ("height_cm", HEIGHT_RANGE_CM, "cm"),
            ("serum_creatinine_mg_dl", (0.05, 30.0), "mg/dL"),
        ):
            values = getattr(self, name)
            if values is not None:
                _check_range(self, name, values, bounds, unit, "plausible human values")

    @classmethod
    def from_patient(cls, patient: Patient) -> Covariates:
        """One patient's known covariates."""
        return cls.from_patients([patient])

    @classmethod
    def from_patients(cls, patients: Sequence[Patient]) -> Covariates:
        """A cohort; a covariate is kept only if every patient has it."""
        if not patients:
            raise InputError("patients", "[]", "at least one patient is required")

        def column(name: str) -> FloatArray | None:
            values = [getattr(p, name) for p in patients]
            if any(v is None for v in values):
                return None
            return np.array(values, dtype=np.float64)

        sexes = [p.sex for p in patients]
        return cls(
            age_years=column("age_years"),
            weight_kg=column("weight_kg"),
            height_cm=column("height_cm"),
            male=None if None in sexes else np.array([s is Sex.MALE for s in sexes]),
            serum_creatinine_mg_dl=column("serum_creatinine_mg_dl"),
        )

    def need(self, name: str, model: str) -> FloatArray:
        """The covariate ``name`` or an error saying ``model`` needs it."""
        value = getattr(self, name)
        if value is None:
            raise InputError(_FIELD_LABEL.get(name, name), "", f"is required by the {model} model")
        return np.asarray(value, dtype=np.float64)

    def need_male(self, model: str) -> BoolArray:
        """Sex as a boolean array (True = male) or an error saying ``model`` needs it."""
        if self.male is None:
            raise InputError("sex", "", f"is required by the {model} model")
        return self.male


_FIELD_LABEL = {
    "age_years": "age",
    "weight_kg": "weight",
    "height_cm": "height",
    "serum_creatinine_mg_dl": "serum_creatinine",
}


def _label(cov: Covariates, name: str, i: int) -> str:
    base = _FIELD_LABEL.get(name, name)
    return base if cov.n == 1 else f"{base}[{i}]"


def _check_range(
    cov: Covariates,
    name: str,
    values: FloatArray,
    bounds: tuple[float, float],
    unit: str,
    why: str,
) -> None:
    lo, hi = bounds
    bad = ~np.isfinite(values) | (values < lo) | (values > hi)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            _label(cov, name, i),
            f"{values[i]:g} {unit}",
            f"must be between {lo:g} and {hi:g} {unit} ({why})",
        )


# ---- body-size scalars ----------------------------------------------------------------------


def james_lbm_kg(weight_kg: FloatArray, height_cm: FloatArray, male: BoolArray) -> FloatArray:
    """Lean body mass (James WPT, Research on Obesity, HMSO 1976), as used by Schnider and
    Minto: men 1.1 W - 128 (W/H)^2, women 1.07 W - 148 (W/H)^2 (kg, cm)."""
    ratio = (weight_kg / height_cm) ** 2
    return np.where(male, 1.1 * weight_kg - 128.0 * ratio, 1.07 * weight_kg - 148.0 * ratio)


# Above these BMIs the James formula falls as weight rises (d LBM/dW = 0 at
# W = 1.1 H^2/256 for men, 1.07 H^2/296 for women), so Schnider and Minto are refused.
JAMES_MAX_BMI_MALE = 1.1 * 1e4 / 256.0
JAMES_MAX_BMI_FEMALE = 1.07 * 1e4 / 296.0


def al_sallami_ffm_kg(
    age_years: FloatArray, weight_kg: FloatArray, height_cm: FloatArray, male: BoolArray
) -> FloatArray:
    """Fat-free mass (kg) with maturation (Al-Sallami HS et al., Clin Pharmacokinet
    2015;54:1169-78) on the Janmahasatian 2005 adult form (9270 W / (6680 + 216 BMI) men,
    9270 W / (8780 + 244 BMI) women), as used by Eleveld 2017 and 2018."""
    bmi = weight_kg / (height_cm / 100.0) ** 2
    with np.errstate(divide="ignore"):
        mat_m = 0.88 + (1.0 - 0.88) / (1.0 + (age_years / 13.4) ** -12.7)
        mat_f = 1.11 + (1.0 - 1.11) / (1.0 + (age_years / 7.1) ** -1.1)
    male_ffm = mat_m * 9270.0 * weight_kg / (6680.0 + 216.0 * bmi)
    female_ffm = mat_f * 9270.0 * weight_kg / (8780.0 + 244.0 * bmi)
    return np.asarray(np.where(male, male_ffm, female_ffm), dtype=np.float64)


def _ffm_reference() -> float:
    """Al-Sallami FFM of the Eleveld reference individual (35 y, 70 kg, 170 cm, male)."""
    value = al_sallami_ffm_kg(
        np.array([35.0]), np.array([70.0]), np.array([170.0]), np.array([True])
    )
    return float(value[0])


def _sigmoid(x: FloatArray | float, e50: float, gamma: float) -> FloatArray:
    xg = np.power(np.asarray(x, dtype=np.float64), gamma)
    return np.asarray(xg / (xg + e50**gamma), dtype=np.float64)


def _crcl_ml_min(cov: Covariates, model: str, *, floor_elderly_scr: bool) -> FloatArray:
    """Cockcroft-Gault creatinine clearance (Cockcroft DW, Gault MH, Nephron 1976;16:31-41),
    actual body weight, mL/min; optionally SCr < 1 mg/dL set to 1 above 60 y (Goti 2018)."""
    age = cov.need("age_years", model)
    weight = cov.need("weight_kg", model)
    scr = cov.need("serum_creatinine_mg_dl", model)
    male = cov.need_male(model)
    if floor_elderly_scr:
        scr = np.where((age > 60.0) & (scr < 1.0), 1.0, scr)
    crcl = (140.0 - age) * weight / (72.0 * scr)
    return np.asarray(np.where(male, crcl, 0.85 * crcl), dtype=np.float64)


# ---- propofol ------------------------------------------------------------------------------

# Marsh B et al., Br J Anaesth 1991;67:41-8, as implemented in the Diprifusor (Glen JB,
# Anaesthesia 1998;53 Suppl 1:13-21): V1 0.228 L/kg, micro-constants in 1/min.
MARSH_V1_L_PER_KG = 0.228
MARSH_K = {"k10": 0.119, "k12": 0.112, "k21": 0.055, "k13": 0.0419, "k31": 0.0033}
# Diprifusor ke0 0.26 1/min; "modified Marsh" 1.2 1/min (Struys MMRF et al.,
# Anesthesiology 2000;92:399-406).
MARSH_KE0_DIPRIFUSOR = 0.26
MARSH_KE0_MODIFIED = 1.2
# Adult use only (the Diprifusor is an adult system); the weight band is a local
# plausibility limit for a weight-proportional model, which overdoses the obese.
MARSH_AGE = (16.0, 100.0)
MARSH_WEIGHT = (30.0, 150.0)


def propofol_marsh(cov: Covariates, ke0_per_min: float = MARSH_KE0_DIPRIFUSOR) -> PkModel:
    """Marsh propofol (mg, L, 1/min; Cp in µg/mL); only total body weight scales V1."""
    weight = cov.need("weight_kg", "Marsh")
    _check_range(cov, "weight_kg", weight, MARSH_WEIGHT, "kg", "Marsh model, local adult limit")
    if cov.age_years is not None:
        _check_range(
            cov, "age_years", cov.age_years, MARSH_AGE, "years", "Marsh model is for adults"
        )
    k = MARSH_K
    return PkModel(
        MARSH_V1_L_PER_KG * weight, k["k10"], k["k12"], k["k21"], k["k13"], k["k31"], ke0_per_min
    )


# Schnider TW et al., Anesthesiology 1998;88:1170-82 (PK) and 1999;90:1502-16 (ke0 0.456
# 1/min; peak effect 1.6 min after a bolus in the reference individual 53 y/77 kg/177 cm).
SCHNIDER_KE0 = 0.456
SCHNIDER_TPEAK_MIN = 1.6
# Adults: the model was built on adult volunteers; ages below 16 are refused here.
SCHNIDER_AGE = (16.0, 100.0)


def _james_checked(cov: Covariates, model: str) -> FloatArray:
    weight = cov.need("weight_kg", model)
    height = cov.need("height_cm", model)
    male = cov.need_male(model)
    bmi = weight / (height / 100.0) ** 2
    limit = np.where(male, JAMES_MAX_BMI_MALE, JAMES_MAX_BMI_FEMALE)
    bad = bmi > limit
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            "bmi" if cov.n == 1 else f"bmi[{i}]",
            f"{bmi[i]:.1f} kg/m2",
            f"must be at most {limit[i]:.1f} kg/m2 for the {model} model: the James lean "
            "body mass falls as weight rises above it",
        )
    return james_lbm_kg(weight, height, male)


def propofol_schnider(cov: Covariates, effect: Literal["ke0", "tpeak"] = "ke0") -> PkModel:
    """Schnider propofol (mg, L/min; Cp in µg/mL). ``effect`` "ke0": fixed ke0 0.456 1/min;
    "tpeak": ke0 recomputed per patient so the bolus peak is at 1.6 min."""
    age = cov.need("age_years", "Schnider")
    _check_range(cov, "age_years", age, SCHNIDER_AGE, "years", "Schnider model is for adults")
    weight, height = cov.need("weight_kg", "Schnider"), cov.need("height_cm", "Schnider")
    lbm = _james_checked(cov, "Schnider")
    model = PkModel.from_clearances(
        v1_l=4.27,
        cl_l_min=1.89
        + 0.0456 * (weight - 77.0)
        - 0.0681 * (lbm - 59.0)
        + 0.0264 * (height - 177.0),
        v2_l=18.9 - 0.391 * (age - 53.0),
        q2_l_min=1.29 - 0.024 * (age - 53.0),
        v3_l=238.0,
        q3_l_min=0.836,
        ke0_per_min=SCHNIDER_KE0,
    )
    if effect == "tpeak":
        return model.with_ke0(ke0_for_time_to_peak(model, SCHNIDER_TPEAK_MIN))
    return model


# Eleveld DJ, Colin P, Absalom AR, Struys MMRF, Br J Anaesth 2018;120:942-59 (erratum
# Br J Anaesth 2018;121:519). THETAs at the precision of the NONMEM control stream of the
# paper's supplement (log-scale estimates exponentiated where the stream uses EXP()),
# as transcribed in stanpumpR R/drugs_propofol.R.
ELEVELD_PROPOFOL = {
    "v1ref": math.exp(1.837860),  # L
    "v2ref": math.exp(3.238730),  # L
    "v3ref": math.exp(5.608800),  # L
    "cl_male": math.exp(0.5819830),  # L/min
    "q2ref": math.exp(0.5596720),  # L/min
    "q3ref": math.exp(0.1030460),  # L/min
    "cl_mat_e50_weeks": math.exp(3.744220),
    "cl_mat_slope": math.exp(2.203300),
    "v2_age": -1.563300e-02,  # 1/year
    "cl_age_opioid": -2.857090e-03,  # 1/year
    "v1_e50_kg": math.exp(3.513130),
    "v3_age_opioid": -1.381660e-02,  # 1/year
    "q3_mat_e50_weeks": math.exp(4.223570),
    "cl_female": math.exp(0.7420430),  # L/min
    "q2_child": math.exp(0.2656420),
    "v1_venous": math.exp(0.3498850),
    "q2_venous": math.exp(-0.3849270),
}
# PD part (Eleveld 2018 Table 3): ke0 arterial 0.146, venous 1.24 1/min, scaled by (W/70)^-0.25.
ELEVELD_PROPOFOL_KE0_ARTERIAL = 0.146
ELEVELD_PROPOFOL_KE0_VENOUS = 1.24
# Model-building data: post-menstrual age 27 weeks to 88 years, weight 0.68 to 160 kg
# (Eleveld 2018); ages here are post-natal years of a term-born patient.
ELEVELD_PROPOFOL_AGE = (0.0, 88.0)
ELEVELD_PROPOFOL_WEIGHT = (0.68, 160.0)


def propofol_eleveld(
    cov: Covariates,
    *,
    opioid: bool = False,
    sampling: Literal["arterial", "venous"] = "arterial",
) -> PkModel:
    """Eleveld 2018 propofol (mg, L/min; Cp in µg/mL). ``opioid``: concomitant opioids
    (lower CL and V3 with age); ``sampling``: arterial (default) or venous parameters."""
    name = "Eleveld propofol"
    age = cov.need("age_years", name)
    weight = cov.need("weight_kg", name)
    height = cov.need("height_cm", name)
    male = cov.need_male(name)
    _check_range(cov, "age_years", age, ELEVELD_PROPOFOL_AGE, "years", "Eleveld 2018 data range")
    _check_range(cov, "weight_kg", weight, ELEVELD_PROPOFOL_WEIGHT, "kg", "Eleveld 2018 data range")
    t = ELEVELD_PROPOFOL
    central = weight / (weight + t["v1_e50_kg"])
    central_ref = 70.0 / (70.0 + t["v1_e50_kg"])
    pma_weeks = age * 52.0 + 40.0
    pma_ref = 35.0 * 52.0 + 40.0
    cl_mat = _sigmoid(pma_weeks, t["cl_mat_e50_weeks"], t["cl_mat_slope"])
    cl_mat_ref = _sigmoid(pma_ref, t["cl_mat_e50_weeks"], t["cl_mat_slope"])
    q3_mat = pma_weeks / (pma_weeks + t["q3_mat_e50_weeks"])
    q3_mat_ref = pma_ref / (pma_ref + t["q3_mat_e50_weeks"])
    opioid_on = 1.0 if opioid else 0.0
    ffm = al_sallami_ffm_kg(age, weight, height, male)

    v1 = t["v1ref"] * central / central_ref
    v2 = t["v2ref"] * (weight / 70.0) * np.exp(t["v2_age"] * (age - 35.0))
    v3 = t["v3ref"] * (ffm / _ffm_reference()) * np.exp(t["v3_age_opioid"] * age * opioid_on)
    cl = (
        np.where(male, t["cl_male"], t["cl_female"])
        * (weight / 70.0) ** 0.75
        * (cl_mat / cl_mat_ref)
        * np.exp(t["cl_age_opioid"] * age * opioid_on)
    )
    # Q2 maturation is not normalised by the reference (NONMEM KM5 = 1 + e^θ16 (1 - MQ3)).
    q2 = t["q2ref"] * (v2 / t["v2ref"]) ** 0.75 * (1.0 + t["q2_child"] * (1.0 - q3_mat))
    # Q3 follows the (opioid-reduced) V3.
    q3 = t["q3ref"] * (v3 / t["v3ref"]) ** 0.75 * (q3_mat / q3_mat_ref)
    ke0 = ELEVELD_PROPOFOL_KE0_ARTERIAL
    if sampling == "venous":
        v1 = v1 * (1.0 + t["v1_venous"] * (1.0 - central))
        q2 = q2 * t["q2_venous"]
        ke0 = ELEVELD_PROPOFOL_KE0_VENOUS
    return PkModel.from_clearances(v1, cl, v2, q2, v3, q3, ke0 * (weight / 70.0) ** -0.25)


# ---- remifentanil ---------------------------------------------------------------------------

# Minto CF et al., Anesthesiology 1997;86:10-23 (PK) and 24-33 (PD): 65 adults aged 20-85 y.
MINTO_AGE = (20.0, 85.0)


def remifentanil_minto(cov: Covariates) -> PkModel:
    """Minto remifentanil (µg, L/min; Cp in ng/mL), age and James lean body mass."""
    age = cov.need("age_years", "Minto")
    _check_range(cov, "age_years", age, MINTO_AGE, "years", "Minto 1997 study ages")
    lbm = _james_checked(cov, "Minto")
    return PkModel.from_clearances(
        v1_l=5.1 - 0.0201 * (age - 40.0) + 0.072 * (lbm - 55.0),
        cl_l_min=2.6 - 0.0162 * (age - 40.0) + 0.0191 * (lbm - 55.0),
        v2_l=9.82 - 0.0811 * (age - 40.0) + 0.108 * (lbm - 55.0),
        q2_l_min=2.05 - 0.0301 * (age - 40.0),
        v3_l=5.42,
        q3_l_min=0.076 - 0.00113 * (age - 40.0),
        ke0_per_min=0.595 - 0.007 * (age - 40.0),
    )


# Eleveld DJ et al., Anesthesiology 2017;126:1005-18. THETAs of the NONMEM estimates
# (log-scale for the reference values), as transcribed in stanpumpR
# R/drugs_remifentanil.R; ke0 1.09 1/min with age slope -0.0289 1/year (PD part).
ELEVELD_REMI = {
    "v1ref": math.exp(1.759110),
    "v2ref": math.exp(2.177170),
    "v3ref": math.exp(1.614450),
    "clref": math.exp(0.946257),
    "q2ref": math.exp(0.540315),
    "q3ref": math.exp(-2.083880),
    "mat_e50_kg": 2.878980,
    "age_v1_q": -0.00554481,
    "age_v2_cl": -0.00326985,
    "age_v3": -0.0315135,
    "sex_female": 0.4704050,
    "weight_v3": -0.0260496,
    "ke0": 1.09,
    "ke0_age": -0.0289,
}
# Model-building data spanned newborns to 85 years and 2.5 to 106 kg (Eleveld 2017).
ELEVELD_REMI_AGE = (0.0, 85.0)
ELEVELD_REMI_WEIGHT = (2.5, 106.0)


def remifentanil_eleveld(cov: Covariates) -> PkModel:
    """Eleveld 2017 remifentanil (µg, L/min; Cp in ng/mL), allometric on fat-free mass."""
    name = "Eleveld remifentanil"
    age = cov.need("age_years", name)
    weight = cov.need("weight_kg", name)
    height = cov.need("height_cm", name)
    male = cov.need_male(name)
    _check_range(cov, "age_years", age, ELEVELD_REMI_AGE, "years", "Eleveld 2017 data range")
    _check_range(cov, "weight_kg", weight, ELEVELD_REMI_WEIGHT, "kg", "Eleveld 2017 data range")
    t = ELEVELD_REMI
    size = al_sallami_ffm_kg(age, weight, height, male) / _ffm_reference()
    kmat = _sigmoid(weight, t["mat_e50_kg"], 2.0) / _sigmoid(70.0, t["mat_e50_kg"], 2.0)
    ksex = np.where(
        male,
        1.0,
        1.0 + t["sex_female"] * _sigmoid(age, 12.0, 6.0) * (1.0 - _sigmoid(age, 45.0, 6.0)),
    )
    aged = age - 35.0
    v1 = t["v1ref"] * size * np.exp(t["age_v1_q"] * aged)
    v2 = t["v2ref"] * size * np.exp(t["age_v2_cl"] * aged) * ksex
    v3 = t["v3ref"] * size * np.exp(t["age_v3"] * aged) * np.exp(t["weight_v3"] * (weight - 70.0))
    cl = t["clref"] * size**0.75 * kmat * ksex * np.exp(t["age_v2_cl"] * aged)
    q2 = t["q2ref"] * (v2 / t["v2ref"]) ** 0.75 * np.exp(t["age_v1_q"] * aged) * ksex
    q3 = t["q3ref"] * (v3 / t["v3ref"]) ** 0.75 * np.exp(t["age_v1_q"] * aged)
    ke0 = t["ke0"] * np.exp(t["ke0_age"] * aged)
    return PkModel.from_clearances(v1, cl, v2, q2, v3, q3, ke0)


# ---- morphine -------------------------------------------------------------------------------

# Sarton E et al., Anesthesiology 2000;93:1245-54 (healthy volunteers; analgesia PK-PD):
# V1 0.075 L/kg, micro-constants 1/min, effect-site t1/2ke0 about 1.6 h in men and
# 4.8 h in women (ke0 0.0073 and 0.0024 1/min). Values as tabulated in opentiva 1.1.2
# (morphine.Sarton); the study's ranges were healthy young adults, used here for adults.
SARTON_V1_L_PER_KG = 0.075
SARTON_K = {"k10": 0.3, "k12": 0.183, "k21": 0.087, "k13": 0.29, "k31": 0.013}
SARTON_KE0_MALE = 0.0073
SARTON_KE0_FEMALE = 0.0024
SARTON_AGE = (18.0, 100.0)
SARTON_WEIGHT = (40.0, 150.0)


def morphine_sarton(cov: Covariates) -> PkModel:
    """Sarton 2000 morphine (mg, L; Cp in mg/L): weight-proportional V1, sex-specific ke0."""
    weight = cov.need("weight_kg", "Sarton morphine")
    male = cov.need_male("Sarton morphine")
    _check_range(cov, "weight_kg", weight, SARTON_WEIGHT, "kg", "adult PCA, local limit")
    if cov.age_years is not None:
        _check_range(cov, "age_years", cov.age_years, SARTON_AGE, "years", "adult model")
    k = SARTON_K
    ke0 = np.where(male, SARTON_KE0_MALE, SARTON_KE0_FEMALE)
    return PkModel(
        SARTON_V1_L_PER_KG * weight, k["k10"], k["k12"], k["k21"], k["k13"], k["k31"], ke0
    )


# ---- heparin --------------------------------------------------------------------------------

# Al-Sallami HS et al., Br J Clin Pharmacol 2016;82:178-84 (children 0.5-15.5 y,
# 6.7-68.6 kg, single bolus): one compartment, CL 0.603 L/h x FFM/15 kg, V 0.751 L x WT/20 kg
# (Table 2); aPTT = 35.6 s + 0.67 s per IU/L (Table 3, see pd.heparin_aptt_s).
AL_SALLAMI_HEPARIN_AGE = (0.5, 15.5)
AL_SALLAMI_HEPARIN_WEIGHT = (6.7, 68.6)


def heparin_al_sallami(cov: Covariates) -> PkModel:
    """Al-Sallami 2016 unfractionated heparin in children (IU, L; Cp in IU/L), no effect site."""
    name = "Al-Sallami heparin"
    age = cov.need("age_years", name)
    weight = cov.need("weight_kg", name)
    height = cov.need("height_cm", name)
    male = cov.need_male(name)
    _check_range(
        cov, "age_years", age, AL_SALLAMI_HEPARIN_AGE, "years", "Al-Sallami 2016 data range"
    )
    _check_range(
        cov, "weight_kg", weight, AL_SALLAMI_HEPARIN_WEIGHT, "kg", "Al-Sallami 2016 data range"
    )
    ffm = al_sallami_ffm_kg(age, weight, height, male)
    return PkModel.from_clearances(v1_l=0.751 * weight / 20.0, cl_l_min=0.603 / 60.0 * ffm / 15.0)


# Jia Z et al., J Transl Med 2015;13:45 (adults 18-74 y, 41-82 kg, cardiopulmonary bypass;
# anti-FIIa activity): two compartments, CL 1.18 L/h, Vc 3.04 L, Q 0.171 L/h, Vp 8.01 L,
# no covariate retained (Table 2).
JIA_HEPARIN_AGE = (18.0, 74.0)
JIA_HEPARIN_WEIGHT = (41.0, 82.0)


def heparin_jia(cov: Covariates) -> PkModel:
    """Jia 2015 unfractionated heparin in adults (IU, L; Cp in IU/L), no effect site."""
    age = cov.need("age_years", "Jia heparin")
    weight = cov.need("weight_kg", "Jia heparin")
    _check_range(cov, "age_years", age, JIA_HEPARIN_AGE, "years", "Jia 2015 data range")
    _check_range(cov, "weight_kg", weight, JIA_HEPARIN_WEIGHT, "kg", "Jia 2015 data range")
    ones = np.ones(cov.n)
    return PkModel.from_clearances(
        v1_l=3.04 * ones,
        cl_l_min=1.18 / 60.0 * ones,
        v2_l=8.01 * ones,
        q2_l_min=0.171 / 60.0 * ones,
    )


# ---- vancomycin -----------------------------------------------------------------------------

# Goti V et al., Ther Drug Monit 2018;40:212-21 (1812 hospitalised adults, 17-101 y,
# 33-255 kg, CrCL 4-150 mL/min): CL 4.5 L/h (CrCL/120)^0.8 x 0.7 on haemodialysis,
# V1 58.4 L (WT/70) x 0.5 on haemodialysis, V2 38.4 L (WT/70), Q 6.5 L/h (Table 2).
# CrCL by Cockcroft-Gault, truncated at 150 mL/min; SCr < 1 mg/dL set to 1 above 60 y.
GOTI_AGE = (17.0, 101.0)
GOTI_WEIGHT = (33.0, 255.0)
GOTI_CRCL_MIN = 4.0
GOTI_CRCL_CAP = 150.0


def vancomycin_goti(cov: Covariates, *, dialysis: bool = False) -> PkModel:
    """Goti 2018 vancomycin (mg, L; Cp in mg/L), two compartments, no effect site."""
    age = cov.need("age_years", "Goti vancomycin")
    weight = cov.need("weight_kg", "Goti vancomycin")
    _check_range(cov, "age_years", age, GOTI_AGE, "years", "Goti 2018 data range")
    _check_range(cov, "weight_kg", weight, GOTI_WEIGHT, "kg", "Goti 2018 data range")
    crcl = _crcl_ml_min(cov, "Goti vancomycin", floor_elderly_scr=True)
    _check_range(
        cov,
        "creatinine_clearance_ml_min",
        crcl,
        (GOTI_CRCL_MIN, math.inf),
        "mL/min",
        "Goti 2018 data range",
    )
    crcl = np.minimum(crcl, GOTI_CRCL_CAP)
    dial = 1.0 if dialysis else 0.0
    return PkModel.from_clearances(
        v1_l=58.4 * (weight / 70.0) * 0.5**dial,
        cl_l_min=4.5 / 60.0 * (crcl / 120.0) ** 0.8 * 0.7**dial,
        v2_l=38.4 * (weight / 70.0),
        q2_l_min=6.5 / 60.0 * np.ones(cov.n),
    )


# Buelga DS et al., Antimicrob Agents Chemother 2005;49:4934-41 (215 adults with
# haematological malignancies): one compartment, CL 1.08 x CLcr (L/h), V 0.98 L/kg (Table 4).
BUELGA_AGE = (18.0, 100.0)
BUELGA_WEIGHT = (30.0, 200.0)


def vancomycin_buelga(cov: Covariates) -> PkModel:
    """Buelga 2005 vancomycin (mg, L; Cp in mg/L), one compartment, no effect site."""
    age = cov.need("age_years", "Buelga vancomycin")
    weight = cov.need("weight_kg", "Buelga vancomycin")
    _check_range(cov, "age_years", age, BUELGA_AGE, "years", "adult model")
    _check_range(cov, "weight_kg", weight, BUELGA_WEIGHT, "kg", "adult model, local limit")
    crcl = _crcl_ml_min(cov, "Buelga vancomycin", floor_elderly_scr=False)
    _check_range(
        cov, "creatinine_clearance_ml_min", crcl, (1.0, math.inf), "mL/min", "needs renal clearance"
    )
    return PkModel.from_clearances(v1_l=0.98 * weight, cl_l_min=1.08 * crcl * 0.06 / 60.0)


# ---- factor VIII ----------------------------------------------------------------------------

# Björkman S et al., Blood 2012;119:612-8 (ADVATE, 152 patients aged 1-65 y with severe
# haemophilia A): CL 193 mL/h (WT/56)^0.80 [1 - 0.0045 (age - 22)], V1 2.22 L (WT/56)^0.95,
# Q 147 mL/h, V2 0.73 L (WT/56)^0.76. Reference weight 56 kg as in two independent
# implementations (one secondary source gives 53 kg); the weight band is local.
BJORKMAN_AGE = (1.0, 65.0)
BJORKMAN_WEIGHT = (8.0, 150.0)


def factor_viii_bjorkman(cov: Covariates) -> PkModel:
    """Björkman 2012 factor VIII (IU, L; Cp in IU/L = 0.1 IU/dL), no effect site."""
    age = cov.need("age_years", "Björkman factor VIII")
    weight = cov.need("weight_kg", "Björkman factor VIII")
    _check_range(cov, "age_years", age, BJORKMAN_AGE, "years", "Björkman 2012 study ages")
    _check_range(cov, "weight_kg", weight, BJORKMAN_WEIGHT, "kg", "Björkman 2012, local limit")
    rel = weight / 56.0
    return PkModel.from_clearances(
        v1_l=2.22 * rel**0.95,
        cl_l_min=0.193 / 60.0 * rel**0.80 * (1.0 - 0.0045 * (age - 22.0)),
        v2_l=0.73 * rel**0.76,
        q2_l_min=0.147 / 60.0 * np.ones(cov.n),
    )


# ---- registry -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """Named switches some models take: concomitant opioid (Eleveld propofol), intermittent
    haemodialysis (Goti vancomycin)."""

    opioid: bool = False
    dialysis: bool = False


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A named parameter set: how to build it, its amount unit and its citation.

    Schedules are in ``amount_unit`` (``amount_per_canonical`` converts from the canonical
    mg or units); concentrations come out in amount/L and are reported in
    ``concentration_unit`` after multiplying by ``concentration_scale``.
    """

    drug: str
    name: str
    citation: str
    dimension: Dimension
    amount_unit: str
    amount_per_canonical: float
    concentration_unit: str
    concentration_scale: float
    build: Callable[[Covariates, ModelOptions], PkModel]
    options: frozenset[str] = frozenset()


_MG = (Dimension.MASS, "mg", 1.0)
_MCG = (Dimension.MASS, "mcg", 1000.0)
_IU = (Dimension.UNITS, "units", 1.0)


def _spec(
    drug: str,
    name: str,
    citation: str,
    amount: tuple[Dimension, str, float],
    conc: tuple[str, float],
    build: Callable[[Covariates, ModelOptions], PkModel],
    options: frozenset[str] = frozenset(),
) -> ModelSpec:
    return ModelSpec(drug, name, citation, *amount, *conc, build, options)


_SPECS = [
    _spec(
        "propofol",
        "marsh",
        "Marsh 1991 Br J Anaesth 67:41; Diprifusor ke0 0.26/min",
        _MG,
        ("mcg/mL", 1.0),
        lambda c, o: propofol_marsh(c),
    ),
    _spec(
        "propofol",
        "marsh-modified",
        "Marsh 1991; ke0 1.2/min (Struys 2000 Anesthesiology 92:399)",
        _MG,
        ("mcg/mL", 1.0),
        lambda c, o: propofol_marsh(c, MARSH_KE0_MODIFIED),
    ),
    _spec(
        "propofol",
        "schnider",
        "Schnider 1998 Anesthesiology 88:1170; ke0 0.456/min (1999 90:1502)",
        _MG,
        ("mcg/mL", 1.0),
        lambda c, o: propofol_schnider(c),
    ),
    _spec(
        "propofol",
        "schnider-tpeak",
        "Schnider 1998/1999; ke0 from tpeak 1.6 min (Minto 2003)",
        _MG,
        ("mcg/mL", 1.0),
        lambda c, o: propofol_schnider(c, "tpeak"),
    ),
    _spec(
        "propofol",
        "eleveld",
        "Eleveld 2018 Br J Anaesth 120:942 (erratum 121:519), arterial",
        _MG,
        ("mcg/mL", 1.0),
        lambda c, o: propofol_eleveld(c, opioid=o.opioid),
        frozenset({"opioid"}),
    ),
    _spec(
        "propofol",
        "eleveld-venous",
        "Eleveld 2018 Br J Anaesth 120:942, venous",
        _MG,
        ("mcg/mL", 1.0),
        lambda c, o: propofol_eleveld(c, opioid=o.opioid, sampling="venous"),
        frozenset({"opioid"}),
    ),
    _spec(
        "remifentanil",
        "minto",
        "Minto 1997 Anesthesiology 86:10",
        _MCG,
        ("ng/mL", 1.0),
        lambda c, o: remifentanil_minto(c),
    ),
    _spec(
        "remifentanil",
        "eleveld",
        "Eleveld 2017 Anesthesiology 126:1005",
        _MCG,
        ("ng/mL", 1.0),
        lambda c, o: remifentanil_eleveld(c),
    ),
    _spec(
        "morphine",
        "sarton",
        "Sarton 2000 Anesthesiology 93:1245",
        _MG,
        ("ng/mL", 1000.0),
        lambda c, o: morphine_sarton(c),
    ),
    _spec(
        "heparin",
        "jia",
        "Jia 2015 J Transl Med 13:45 (adults, anti-FIIa)",
        _IU,
        ("units/mL", 0.001),
        lambda c, o: heparin_jia(c),
    ),
    _spec(
        "heparin",
        "al-sallami",
        "Al-Sallami 2016 Br J Clin Pharmacol 82:178 (children)",
        _IU,
        ("units/mL", 0.001),
        lambda c, o: heparin_al_sallami(c),
    ),
    _spec(
        "vancomycin",
        "goti",
        "Goti 2018 Ther Drug Monit 40:212",
        _MG,
        ("mg/L", 1.0),
        lambda c, o: vancomycin_goti(c, dialysis=o.dialysis),
        frozenset({"dialysis"}),
    ),
    _spec(
        "vancomycin",
        "buelga",
        "Buelga 2005 Antimicrob Agents Chemother 49:4934",
        _MG,
        ("mg/L", 1.0),
        lambda c, o: vancomycin_buelga(c),
    ),
    _spec(
        "factor_viii",
        "bjorkman",
        "Björkman 2012 Blood 119:612",
        _IU,
        ("units/dL", 0.1),
        lambda c, o: factor_viii_bjorkman(c),
    ),
]

MODEL_SPECS: dict[tuple[str, str], ModelSpec] = {(s.drug, s.name): s for s in _SPECS}
DEFAULT_MODELS: dict[str, str] = {
    "propofol": "eleveld",
    "remifentanil": "minto",
    "morphine": "sarton",
    "heparin": "jia",
    "vancomycin": "goti",
    "factor_viii": "bjorkman",
}


def model_spec(drug: str, model: str | None = None) -> ModelSpec:
    """The parameter set ``model`` of ``drug`` (its default when ``model`` is None)."""
    key = drug.strip().lower().replace("-", "_").replace(" ", "_")
    if key not in DEFAULT_MODELS:
        raise InputError("drug", drug, f"must be one of {', '.join(DEFAULT_MODELS)}")
    name = DEFAULT_MODELS[key] if model is None else model.strip().lower()
    spec = MODEL_SPECS.get((key, name))
    if spec is None:
        names = ", ".join(n for d, n in MODEL_SPECS if d == key)
        raise InputError("model", model, f"must be one of {names} for {key}")
    return spec


def build_model(
    drug: str, model: str | None, cov: Covariates, options: ModelOptions | None = None
) -> tuple[ModelSpec, PkModel]:
    """Look up a parameter set and evaluate it at the covariates; unused options refused."""
    spec = model_spec(drug, model)
    opts = options or ModelOptions()
    for flag in ("opioid", "dialysis"):
        if getattr(opts, flag) and flag not in spec.options:
            raise InputError(flag, True, f"does not apply to the {spec.drug} {spec.name} model")
    return spec, spec.build(cov, opts)
