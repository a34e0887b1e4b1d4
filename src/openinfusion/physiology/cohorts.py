"""Virtual cohorts: seeded populations of covariates (age, sex, height, weight) for PK models.

Adults (:func:`adult_cohort`): sex by ``female_fraction``; height normal by sex; BMI
log-normal by sex and independent of height, so weight = BMI x height^2 is correlated with
height (r about 0.4-0.5, as in survey data). Mean height and weight by sex are NHANES
2011-2014 adults aged 20 and over (Fryar CD et al., Anthropometric reference data for
children and adults: United States, 2011-2014. Vital Health Stat 3(39), 2016; CDC/NCHS
summary: men 5 ft 9 1/4 in and 195.7 lb, women 5 ft 3 3/4 in and 168.5 lb). The height SDs,
the BMI dispersion and the uniform age distribution are local choices. The BMI median is set
so that mean weight matches the survey mean: ``E[W] = median_BMI exp(s^2/2) E[H^2]``.

Children (:func:`paediatric_cohort`): median height and weight for age and sex from a table
of rounded values approximating the WHO Child Growth Standards (0-2 y; WHO Multicentre
Growth Reference Study Group, Acta Paediatr 2006;Suppl 450:76-85) and the CDC 2000 growth
charts (2-18 y; Kuczmarski RJ et al., Vital Health Stat 11(246), 2002). The table is a local
transcription, linearly interpolated, not the LMS tables: check it before clinical use.
Height varies with a coefficient of variation and weight scales with height^2 times a
log-normal factor (both local).

Every draw comes from ``numpy.random.default_rng(seed)``: the same seed and arguments give
the same cohort. Values outside ``bounds`` (a PK model's validity range) are drawn again for
the same person (sex kept), so the cohort holds exactly ``n`` people.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from openinfusion.errors import InputError
from openinfusion.patient import Patient, Sex

Array = NDArray[np.float64]

_IN_TO_CM = 2.54
_LB_TO_KG = 0.45359237
_MAX_ROUNDS = 200


def _pair(field_name: str, value: object, lo: float, hi: float) -> tuple[float, float]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise InputError(field_name, value, "must be a (low, high) pair")
    out = []
    for x in value:
        if isinstance(x, bool) or not isinstance(x, int | float) or not np.isfinite(x):
            raise InputError(field_name, value, "must hold two finite numbers")
        if not lo <= x <= hi:
            raise InputError(field_name, value, f"each must be within {lo:g}-{hi:g}")
        out.append(float(x))
    if out[0] >= out[1]:
        raise InputError(field_name, value, "low must be below high")
    return out[0], out[1]


def _fraction(field_name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise InputError(field_name, value, "must be a number from 0 to 1")
    return float(value)


def _positive(field_name: str, value: object, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value <= hi:
        raise InputError(field_name, value, f"must be a number above 0 and at most {hi:g}")
    return float(value)


@dataclass(frozen=True)
class CovariateBounds:
    """Validity ranges (inclusive) a cohort must lie in, e.g. a PK model's study population."""

    age_years: tuple[float, float] = (0.0, 125.0)
    weight_kg: tuple[float, float] = (0.2, 650.0)
    height_cm: tuple[float, float] = (20.0, 275.0)
    bmi: tuple[float, float] = (5.0, 150.0)

    def validated(self) -> CovariateBounds:
        _pair("bounds.age_years", self.age_years, 0.0, 125.0)
        _pair("bounds.weight_kg", self.weight_kg, 0.2, 650.0)
        _pair("bounds.height_cm", self.height_cm, 20.0, 275.0)
        _pair("bounds.bmi", self.bmi, 1.0, 200.0)
        return self


@dataclass(frozen=True)
class AdultCovariateModel:
    """Adult covariate distributions; pairs are ``(male, female)``.

    Means from NHANES 2011-2014 (see module doc); SDs and the age range are local.
    """

    female_fraction: float = 0.5
    age_years: tuple[float, float] = (18.0, 80.0)  # uniform
    height_mean_cm: tuple[float, float] = (69.25 * _IN_TO_CM, 63.75 * _IN_TO_CM)
    weight_mean_kg: tuple[float, float] = (195.7 * _LB_TO_KG, 168.5 * _LB_TO_KG)
    height_sd_cm: tuple[float, float] = (7.5, 7.0)
    bmi_log_sd: tuple[float, float] = (0.20, 0.24)

    def validated(self) -> AdultCovariateModel:
        _fraction("model.female_fraction", self.female_fraction)
        _pair("model.age_years", self.age_years, 0.0, 125.0)
        for name, pair, hi in (
            ("model.height_mean_cm", self.height_mean_cm, 275.0),
            ("model.weight_mean_kg", self.weight_mean_kg, 650.0),
            ("model.height_sd_cm", self.height_sd_cm, 50.0),
            ("model.bmi_log_sd", self.bmi_log_sd, 2.0),
        ):
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise InputError(name, pair, "must be a (male, female) pair")
            for x in pair:
                _positive(name, x, hi)
        return self

    def bmi_median(self, female: NDArray[np.bool_]) -> Array:
        """Median BMI (kg/m2) per person so that mean weight matches ``weight_mean_kg``."""
        i = female.astype(np.intp)
        h_m = np.asarray(self.height_mean_cm)[i] / 100.0
        h_sd = np.asarray(self.height_sd_cm)[i] / 100.0
        s = np.asarray(self.bmi_log_sd)[i]
        return np.asarray(self.weight_mean_kg)[i] / ((h_m**2 + h_sd**2) * np.exp(s**2 / 2.0))


@dataclass(frozen=True)
class Cohort:
    """Covariates of ``n`` virtual patients, one array each (units in the names)."""

    age_years: Array
    female: NDArray[np.bool_]
    height_cm: Array
    weight_kg: Array
    source: str = field(default="", compare=False)

    def __len__(self) -> int:
        return int(self.age_years.shape[0])

    @property
    def bmi(self) -> Array:
        """Body-mass index, kg/m2."""
        return np.asarray(self.weight_kg / (self.height_cm / 100.0) ** 2)

    def to_structured(self) -> NDArray[np.void]:
        """One record per patient: age_years, female, height_cm, weight_kg, bmi."""
        out = np.empty(
            len(self),
            dtype=[
                ("age_years", "f8"),
                ("female", "?"),
                ("height_cm", "f8"),
                ("weight_kg", "f8"),
                ("bmi", "f8"),
            ],
        )
        out["age_years"], out["female"] = self.age_years, self.female
        out["height_cm"], out["weight_kg"], out["bmi"] = self.height_cm, self.weight_kg, self.bmi
        return out

    def patient(self, i: int) -> Patient:
        """Patient ``i`` as an :class:`openinfusion.patient.Patient`."""
        return Patient(
            weight_kg=float(self.weight_kg[i]),
            height_cm=float(self.height_cm[i]),
            age_years=float(self.age_years[i]),
            sex=Sex.FEMALE if self.female[i] else Sex.MALE,
        )


def _check_n_seed(n: object, seed: object) -> tuple[int, int]:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= 10_000_000:
        raise InputError("n", n, "must be a whole number of patients from 1 to 10,000,000")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError("seed", seed, "must be a non-negative integer (cohorts are seeded)")
    return int(n), int(seed)


def _age_range(model_range: tuple[float, float], bounds: CovariateBounds) -> tuple[float, float]:
    lo = max(model_range[0], bounds.age_years[0])
    hi = min(model_range[1], bounds.age_years[1])
    if lo > hi:
        raise InputError(
            "bounds.age_years",
            bounds.age_years,
            f"does not overlap the population's ages {model_range[0]:g}-{model_range[1]:g} y",
        )
    return lo, hi


def _draw_until_valid(
    rng: np.random.Generator,
    n: int,
    bounds: CovariateBounds,
    draw: object,
) -> tuple[Array, Array, Array]:
    """Draw ``(age, height, weight)`` for everyone, then again for those out of bounds."""
    age, height, weight = np.zeros(n), np.zeros(n), np.zeros(n)
    todo = np.arange(n)
    for _ in range(_MAX_ROUNDS):
        a, h, w = draw(rng, todo)  # type: ignore[operator]
        bmi = w / (h / 100.0) ** 2
        ok = (
            (h >= bounds.height_cm[0])
            & (h <= bounds.height_cm[1])
            & (w >= bounds.weight_kg[0])
            & (w <= bounds.weight_kg[1])
            & (bmi >= bounds.bmi[0])
            & (bmi <= bounds.bmi[1])
        )
        age[todo[ok]], height[todo[ok]], weight[todo[ok]] = a[ok], h[ok], w[ok]
        todo = todo[~ok]
        if todo.size == 0:
            return age, height, weight
    raise InputError(
        "bounds",
        f"weight {bounds.weight_kg}, height {bounds.height_cm}, BMI {bounds.bmi}",
        f"too narrow for the population: {todo.size} of {n} still outside after "
        f"{_MAX_ROUNDS} draws",
    )


def adult_cohort(
    n: int,
    *,
    seed: int,
    model: AdultCovariateModel | None = None,
    bounds: CovariateBounds | None = None,
) -> Cohort:
    """``n`` adults drawn from ``model`` (NHANES-based defaults) within ``bounds``."""
    n, seed = _check_n_seed(n, seed)
    m = (model or AdultCovariateModel()).validated()
    b = (bounds or CovariateBounds()).validated()
    age_lo, age_hi = _age_range(m.age_years, b)
    rng = np.random.default_rng(seed)
    female = rng.random(n) < m.female_fraction
    median_bmi = m.bmi_median(female)
    idx = female.astype(np.intp)
    h_mean, h_sd = np.asarray(m.height_mean_cm)[idx], np.asarray(m.height_sd_cm)[idx]
    log_sd = np.asarray(m.bmi_log_sd)[idx]

    def draw(r: np.random.Generator, who: NDArray[np.intp]) -> tuple[Array, Array, Array]:
        k = who.size
        age = age_lo + (age_hi - age_lo) * r.random(k)
        z = r.standard_normal((2, k))
        height = h_mean[who] + h_sd[who] * z[0]
        bmi = median_bmi[who] * np.exp(log_sd[who] * z[1])
        return age, height, bmi * (height / 100.0) ** 2

    age, height, weight = _draw_until_valid(rng, n, b, draw)
    return Cohort(age, female, height, weight, source="adult (NHANES 2011-2014 means)")


# Median height (cm) and weight (kg) by age: rounded approximations of WHO (0-2 y) and
# CDC 2000 (2-18 y) medians, local transcription (see module doc).
_AGE_KNOTS_Y = np.array([0.0, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0])
_HEIGHT_MEDIAN_CM = {
    False: np.array(
        [49.9, 67.6, 75.7, 87.1, 102.5, 115.5, 127.5, 138.5, 149.5, 163.5, 173.5, 176.5]
    ),
    True: np.array(
        [49.1, 65.7, 74.0, 85.7, 101.5, 115.0, 127.5, 138.5, 151.5, 159.5, 162.5, 163.5]
    ),
}
_WEIGHT_MEDIAN_KG = {
    False: np.array([3.3, 7.9, 9.6, 12.2, 16.3, 20.7, 25.6, 32.0, 40.0, 51.0, 61.0, 67.0]),
    True: np.array([3.2, 7.3, 8.9, 11.5, 15.8, 20.2, 25.0, 32.0, 41.0, 49.5, 54.0, 56.5]),
}


def median_growth(age_years: NDArray[np.float64], female: NDArray[np.bool_]) -> tuple[Array, Array]:
    """``(height_cm, weight_kg)`` medians for age (0-18 y) and sex, from the local table."""
    a = np.asarray(age_years, dtype=np.float64)
    if np.any(~np.isfinite(a)) or np.any(a < 0.0) or np.any(a > 18.0):
        raise InputError("age_years", "outside 0-18", "growth medians cover ages 0 to 18 years")
    fem = np.asarray(female, dtype=bool)
    h = np.where(
        fem,
        np.interp(a, _AGE_KNOTS_Y, _HEIGHT_MEDIAN_CM[True]),
        np.interp(a, _AGE_KNOTS_Y, _HEIGHT_MEDIAN_CM[False]),
    )
    w = np.where(
        fem,
        np.interp(a, _AGE_KNOTS_Y, _WEIGHT_MEDIAN_KG[True]),
        np.interp(a, _AGE_KNOTS_Y, _WEIGHT_MEDIAN_KG[False]),
    )
    return np.asarray(h), np.asarray(w)


def paediatric_cohort(
    n: int,
    *,
    seed: int,
    age_years: tuple[float, float] = (0.0, 18.0),
    female_fraction: float = 0.5,
    height_cv: float = 0.045,
    weight_log_sd: float = 0.15,
    bounds: CovariateBounds | None = None,
) -> Cohort:
    """``n`` children with ages uniform in ``age_years`` (within 0-18 y) and growth by age.

    ``height = median_h (1 + height_cv z1)``; ``weight = median_w (height / median_h)^2
    exp(weight_log_sd z2)`` (dispersions local).
    """
    n, seed = _check_n_seed(n, seed)
    ages = _pair("age_years", age_years, 0.0, 18.0)
    frac = _fraction("female_fraction", female_fraction)
    cv = _positive("height_cv", height_cv, 0.3)
    log_sd = _positive("weight_log_sd", weight_log_sd, 1.0)
    b = (bounds or CovariateBounds()).validated()
    age_lo, age_hi = _age_range(ages, b)
    rng = np.random.default_rng(seed)
    female = rng.random(n) < frac

    def draw(r: np.random.Generator, who: NDArray[np.intp]) -> tuple[Array, Array, Array]:
        k = who.size
        age = age_lo + (age_hi - age_lo) * r.random(k)
        z = r.standard_normal((2, k))
        h_med, w_med = median_growth(age, female[who])
        height = h_med * (1.0 + cv * z[0])
        weight = w_med * (height / h_med) ** 2 * np.exp(log_sd * z[1])
        return age, height, weight

    age, height, weight = _draw_until_valid(rng, n, b, draw)
    return Cohort(age, female, height, weight, source="paediatric (WHO/CDC median approximations)")
