"""Patient covariates and the body-size and renal-function estimates dosing needs.

Units are in the names: weight in kg, height in cm, age in years, serum creatinine in
mg/dL, body surface area in m2, creatinine clearance in mL/min.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from openinfusion.errors import InputError
from openinfusion.units import Kind, parse_quantity, split_number

# Plausibility bounds: a value outside them is a typing or unit error, not a patient.
# 0.2 kg is below the smallest surviving preterm infants; 650 kg above the heaviest
# recorded human. Care areas narrow these further (library weight limits).
WEIGHT_RANGE_KG = (0.2, 650.0)
HEIGHT_RANGE_CM = (20.0, 275.0)
AGE_RANGE_YEARS = (0.0, 125.0)
CREATININE_RANGE_MG_DL = (0.05, 30.0)
# Molar mass of creatinine, 113.12 g/mol: 1 mg/dL = 88.42 umol/L.
CREATININE_UMOL_L_PER_MG_DL = 88.42


class Sex(StrEnum):
    """Sex used by published covariate equations (as recorded for dosing)."""

    MALE = "male"
    FEMALE = "female"

    @classmethod
    def parse(cls, text: str, field: str = "sex") -> Sex:
        key = str(text).strip().lower()
        if key in ("m", "male", "man"):
            return cls.MALE
        if key in ("f", "female", "woman"):
            return cls.FEMALE
        raise InputError(field, text, "must be 'm' (male) or 'f' (female)")


class BsaMethod(StrEnum):
    """Published body-surface-area formulas."""

    MOSTELLER = "mosteller"
    DUBOIS = "dubois"
    HAYCOCK = "haycock"


def _in_range(field: str, value: float, bounds: tuple[float, float], unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(field, value, f"must be a number in {unit} (parse text with from_text)")
    lo, hi = bounds
    if not (math.isfinite(value) and lo <= value <= hi):
        raise InputError(field, f"{value:g} {unit}", f"must be between {lo:g} and {hi:g} {unit}")
    return value


def bsa_m2(
    weight_kg: float, height_cm: float, method: BsaMethod | str = BsaMethod.MOSTELLER
) -> float:
    """Body surface area in m2.

    Mosteller: sqrt(H*W/3600) (Mosteller RD, N Engl J Med 1987;317:1098).
    DuBois: 0.007184 W^0.425 H^0.725 (DuBois D, DuBois EF, Arch Intern Med 1916;17:863).
    Haycock: 0.024265 W^0.5378 H^0.3964 (Haycock GB et al., J Pediatr 1978;93:62-66).
    """
    method = BsaMethod(method)
    if method is BsaMethod.MOSTELLER:
        return math.sqrt(height_cm * weight_kg / 3600.0)
    if method is BsaMethod.DUBOIS:
        return float(0.007184 * weight_kg**0.425 * height_cm**0.725)
    return float(0.024265 * weight_kg**0.5378 * height_cm**0.3964)


def bmi(weight_kg: float, height_cm: float) -> float:
    """Body-mass index in kg/m2."""
    return weight_kg / (height_cm / 100.0) ** 2


def ideal_body_weight_kg(height_cm: float, sex: Sex) -> float:
    """Ideal body weight (Devine BJ, Drug Intell Clin Pharm 1974;8:650).

    50 kg (men) or 45.5 kg (women) + 2.3 kg per inch over 5 ft, applied linearly for
    shorter adults. Not defined for children: heights under 120 cm are refused.
    """
    if height_cm < 120.0:
        raise InputError(
            "height",
            f"{height_cm:g} cm",
            "Devine ideal body weight is not defined under 120 cm (children)",
        )
    base = 50.0 if sex is Sex.MALE else 45.5
    return base + 2.3 * (height_cm / 2.54 - 60.0)


def adjusted_body_weight_kg(weight_kg: float, height_cm: float, sex: Sex) -> float:
    """Adjusted body weight, IBW + 0.4 (TBW - IBW), used for obese patients' dosing."""
    ibw = ideal_body_weight_kg(height_cm, sex)
    return ibw + 0.4 * (weight_kg - ibw) if weight_kg > ibw else weight_kg


def lean_body_weight_kg(weight_kg: float, height_cm: float, sex: Sex) -> float:
    """Lean body weight (Janmahasatian S et al., Clin Pharmacokinet 2005;44:1051-65).

    Men 9270 W / (6680 + 216 BMI); women 9270 W / (8780 + 244 BMI).
    """
    b = bmi(weight_kg, height_cm)
    if sex is Sex.MALE:
        return 9270.0 * weight_kg / (6680.0 + 216.0 * b)
    return 9270.0 * weight_kg / (8780.0 + 244.0 * b)


def lean_body_mass_james_kg(weight_kg: float, height_cm: float, sex: Sex) -> float:
    """Lean body mass by James (1976), as used by the Schnider propofol model.

    Men 1.1 W - 128 (W/H)^2; women 1.07 W - 148 (W/H)^2 (W in kg, H in cm).
    """
    ratio = (weight_kg / height_cm) ** 2
    return 1.1 * weight_kg - 128.0 * ratio if sex is Sex.MALE else 1.07 * weight_kg - 148.0 * ratio


def creatinine_clearance_ml_min(
    age_years: float, weight_kg: float, sex: Sex, serum_creatinine_mg_dl: float
) -> float:
    """Creatinine clearance (Cockcroft DW, Gault MH, Nephron 1976;16:31-41).

    (140 - age) * weight / (72 * SCr), times 0.85 for women; mL/min.
    """
    clearance = (140.0 - age_years) * weight_kg / (72.0 * serum_creatinine_mg_dl)
    return clearance * 0.85 if sex is Sex.FEMALE else clearance


@dataclass(frozen=True, slots=True)
class Patient:
    """The covariates a dose calculation may need; any may be unknown (None)."""

    weight_kg: float | None = None
    height_cm: float | None = None
    age_years: float | None = None
    sex: Sex | None = None
    serum_creatinine_mg_dl: float | None = None
    bsa_method: BsaMethod = BsaMethod.MOSTELLER
    _bsa_m2: float | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.weight_kg is not None:
            _in_range("weight", self.weight_kg, WEIGHT_RANGE_KG, "kg")
        if self.height_cm is not None:
            _in_range("height", self.height_cm, HEIGHT_RANGE_CM, "cm")
        if self.age_years is not None:
            _in_range("age", self.age_years, AGE_RANGE_YEARS, "years")
        if self.serum_creatinine_mg_dl is not None:
            _in_range(
                "serum_creatinine", self.serum_creatinine_mg_dl, CREATININE_RANGE_MG_DL, "mg/dL"
            )
        if self.weight_kg is not None and self.height_cm is not None:
            # Derived once: DERS reads it on every check of a per-m2 dose.
            bsa = bsa_m2(self.weight_kg, self.height_cm, self.bsa_method)
            object.__setattr__(self, "_bsa_m2", bsa)

    @classmethod
    def from_text(
        cls,
        weight: str | None = None,
        height: str | None = None,
        age: str | float | None = None,
        sex: str | None = None,
        serum_creatinine: str | None = None,
        bsa_method: str = BsaMethod.MOSTELLER,
    ) -> Patient:
        """Build from text as typed: "70 kg", "170 cm", "40" (years) or "6 months", "m"."""
        try:
            method = BsaMethod(bsa_method)
        except ValueError:
            raise InputError(
                "bsa_method", bsa_method, "must be one of mosteller, dubois, haycock"
            ) from None
        return cls(
            weight_kg=parse_quantity(weight, Kind.WEIGHT, "weight") if weight is not None else None,
            height_cm=parse_quantity(height, Kind.HEIGHT, "height") if height is not None else None,
            age_years=parse_age_years(age) if age is not None else None,
            sex=Sex.parse(sex) if sex is not None else None,
            serum_creatinine_mg_dl=(
                parse_creatinine_mg_dl(serum_creatinine) if serum_creatinine is not None else None
            ),
            bsa_method=method,
        )

    @property
    def bsa_m2(self) -> float | None:
        """BSA by this patient's method, or None when weight or height is unknown."""
        return self._bsa_m2

    def require(self, *fields: str) -> None:
        """Raise a clear error naming the first of ``fields`` that is unknown."""
        for name in fields:
            if getattr(self, name) is None:
                label = name.removesuffix("_kg").removesuffix("_cm").removesuffix("_years")
                label = label.removesuffix("_mg_dl")
                raise InputError(label, "", "is required for this calculation")

    def creatinine_clearance_ml_min(self) -> float:
        """Cockcroft-Gault clearance with actual body weight (mL/min)."""
        self.require("age_years", "weight_kg", "sex", "serum_creatinine_mg_dl")
        assert self.age_years is not None and self.weight_kg is not None
        assert self.sex is not None and self.serum_creatinine_mg_dl is not None
        return creatinine_clearance_ml_min(
            self.age_years, self.weight_kg, self.sex, self.serum_creatinine_mg_dl
        )

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly summary with the derived sizes that are computable."""
        out: dict[str, object] = {
            "weight_kg": self.weight_kg,
            "height_cm": self.height_cm,
            "age_years": self.age_years,
            "sex": self.sex.value if self.sex else None,
            "bsa_m2": self.bsa_m2,
            "bsa_method": self.bsa_method.value,
        }
        if self.weight_kg is not None and self.height_cm is not None and self.sex is not None:
            out["lean_body_weight_kg"] = lean_body_weight_kg(
                self.weight_kg, self.height_cm, self.sex
            )
            if self.height_cm >= 120.0:
                out["ideal_body_weight_kg"] = ideal_body_weight_kg(self.height_cm, self.sex)
        if None not in (self.age_years, self.weight_kg, self.sex, self.serum_creatinine_mg_dl):
            out["creatinine_clearance_ml_min"] = self.creatinine_clearance_ml_min()
        return out


def parse_age_years(text: str | float) -> float:
    """Age as typed: a bare number means years; "6 months", "10 days", "2 wk" also work."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    value, unit = split_number(str(text), "age")
    if not unit:
        return value
    return parse_quantity(f"{value} {unit}", Kind.DURATION, "age") / (365.2425 * 1440.0)


def parse_creatinine_mg_dl(text: str) -> float:
    """Serum creatinine "1.1 mg/dL" or "97 umol/L" (µmol/L) into mg/dL."""
    value, unit = split_number(str(text), "serum_creatinine")
    key = unit.replace("µ", "u").replace("μ", "u").replace(" ", "").lower()
    if key in ("mg/dl",):
        return value
    if key in ("umol/l", "micromol/l"):
        return value / CREATININE_UMOL_L_PER_MG_DL
    raise InputError("serum_creatinine", text, "must be in mg/dL or umol/L, e.g. '1.0 mg/dL'")
