"""Layer 0: patient covariates (weight, height, age, sex) and derived body sizes."""

from openinfusion.patient.covariates import (
    AGE_RANGE_YEARS,
    HEIGHT_RANGE_CM,
    WEIGHT_RANGE_KG,
    BsaMethod,
    Patient,
    Sex,
    adjusted_body_weight_kg,
    bmi,
    bsa_m2,
    creatinine_clearance_ml_min,
    ideal_body_weight_kg,
    lean_body_mass_james_kg,
    lean_body_weight_kg,
    parse_age_years,
    parse_creatinine_mg_dl,
)

__all__ = [
    "AGE_RANGE_YEARS",
    "HEIGHT_RANGE_CM",
    "WEIGHT_RANGE_KG",
    "BsaMethod",
    "Patient",
    "Sex",
    "adjusted_body_weight_kg",
    "bmi",
    "bsa_m2",
    "creatinine_clearance_ml_min",
    "ideal_body_weight_kg",
    "lean_body_mass_james_kg",
    "lean_body_weight_kg",
    "parse_age_years",
    "parse_creatinine_mg_dl",
]
