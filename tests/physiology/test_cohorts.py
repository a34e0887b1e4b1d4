"""Virtual cohorts: seeds, bounds, published means, weight-height correlation, bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from openinfusion.errors import InputError
from openinfusion.patient import Patient, Sex
from openinfusion.physiology.cohorts import (
    AdultCovariateModel,
    Cohort,
    CovariateBounds,
    adult_cohort,
    median_growth,
    paediatric_cohort,
)


def _same(a: Cohort, b: Cohort) -> bool:
    return all(
        np.array_equal(getattr(a, f), getattr(b, f))
        for f in ("age_years", "female", "height_cm", "weight_kg")
    )


def test_same_seed_same_cohort_other_seed_other_cohort() -> None:
    assert _same(adult_cohort(500, seed=3), adult_cohort(500, seed=3))
    assert not _same(adult_cohort(500, seed=3), adult_cohort(500, seed=4))
    assert _same(paediatric_cohort(300, seed=1), paediatric_cohort(300, seed=1))


def test_adult_means_match_nhanes_2011_2014() -> None:
    c = adult_cohort(200_000, seed=1)
    men, women = ~c.female, c.female
    assert c.height_cm[men].mean() == pytest.approx(69.25 * 2.54, abs=0.3)
    assert c.height_cm[women].mean() == pytest.approx(63.75 * 2.54, abs=0.3)
    assert c.weight_kg[men].mean() == pytest.approx(195.7 * 0.45359237, abs=0.6)
    assert c.weight_kg[women].mean() == pytest.approx(168.5 * 0.45359237, abs=0.6)
    assert women.mean() == pytest.approx(0.5, abs=0.01)
    assert 25.0 < np.median(c.bmi) < 31.0


def test_weight_and_height_are_correlated() -> None:
    c = adult_cohort(20_000, seed=2)
    for sex in (False, True):
        m = c.female == sex
        r = np.corrcoef(c.height_cm[m], c.weight_kg[m])[0, 1]
        assert 0.2 < r < 0.6
    # BMI is drawn independently of height
    assert abs(np.corrcoef(c.height_cm[~c.female], c.bmi[~c.female])[0, 1]) < 0.05


def test_bounds_are_respected_and_sex_ratio_kept() -> None:
    bounds = CovariateBounds(
        age_years=(18.0, 65.0), weight_kg=(45.0, 100.0), height_cm=(150.0, 195.0), bmi=(18.0, 35.0)
    )
    model = AdultCovariateModel(female_fraction=0.3)
    c = adult_cohort(5000, seed=5, model=model, bounds=bounds)
    assert len(c) == 5000
    assert c.age_years.min() >= 18.0 and c.age_years.max() <= 65.0
    assert c.weight_kg.min() >= 45.0 and c.weight_kg.max() <= 100.0
    assert c.height_cm.min() >= 150.0 and c.height_cm.max() <= 195.0
    assert c.bmi.min() >= 18.0 and c.bmi.max() <= 35.0
    assert c.female.mean() == pytest.approx(0.3, abs=0.02)


def test_paediatric_growth_follows_age_and_bounds() -> None:
    c = paediatric_cohort(40_000, seed=7, age_years=(0.0, 18.0))
    assert c.age_years.min() >= 0.0 and c.age_years.max() <= 18.0
    for lo in (1.0, 5.0, 10.0, 15.0):
        m = (c.age_years >= lo) & (c.age_years < lo + 0.5) & ~c.female
        h_med, w_med = median_growth(np.array([lo + 0.25]), np.array([False]))
        assert np.median(c.height_cm[m]) == pytest.approx(h_med[0], rel=0.02)
        assert np.median(c.weight_kg[m]) == pytest.approx(w_med[0], rel=0.06)
    young = c.weight_kg[c.age_years < 2].mean()
    teen = c.weight_kg[c.age_years > 14].mean()
    assert teen > 4 * young
    narrow = paediatric_cohort(
        2000, seed=7, age_years=(2.0, 12.0), bounds=CovariateBounds(weight_kg=(10.0, 40.0))
    )
    assert narrow.weight_kg.min() >= 10.0 and narrow.weight_kg.max() <= 40.0
    assert narrow.age_years.min() >= 2.0 and narrow.age_years.max() <= 12.0


def test_median_growth_is_monotone_and_sexed() -> None:
    ages = np.linspace(0.0, 18.0, 73)
    for fem in (False, True):
        h, w = median_growth(ages, np.full(ages.shape, fem))
        assert np.all(np.diff(h) > 0) and np.all(np.diff(w) > 0)
    h_m, _ = median_growth(np.array([18.0]), np.array([False]))
    h_f, _ = median_growth(np.array([18.0]), np.array([True]))
    assert h_m[0] - h_f[0] > 10.0


def test_structured_array_and_patients() -> None:
    c = adult_cohort(10, seed=1)
    s = c.to_structured()
    assert s.dtype.names == ("age_years", "female", "height_cm", "weight_kg", "bmi")
    np.testing.assert_array_equal(s["weight_kg"], c.weight_kg)
    p = c.patient(0)
    assert isinstance(p, Patient)
    assert p.sex is (Sex.FEMALE if c.female[0] else Sex.MALE)
    assert p.bsa_m2 is not None


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: adult_cohort(0, seed=1), "n"),
        (lambda: adult_cohort(10, seed=None), "seed"),
        (lambda: adult_cohort(10, seed=-3), "seed"),
        (
            lambda: adult_cohort(10, seed=1, bounds=CovariateBounds(weight_kg=(90.0, 40.0))),
            "bounds.weight_kg",
        ),
        (lambda: adult_cohort(10, seed=1, bounds=CovariateBounds(weight_kg=(1.0, 2.0))), "bounds"),
        (
            lambda: adult_cohort(10, seed=1, bounds=CovariateBounds(age_years=(0.0, 10.0))),
            "bounds.age_years",
        ),
        (
            lambda: adult_cohort(10, seed=1, model=AdultCovariateModel(female_fraction=1.5)),
            "model.female_fraction",
        ),
        (lambda: paediatric_cohort(10, seed=1, age_years=(2.0, 30.0)), "age_years"),
        (lambda: paediatric_cohort(10, seed=1, height_cv=0.0), "height_cv"),
        (lambda: median_growth(np.array([19.0]), np.array([True])), "age_years"),
    ],
)
def test_bad_input_names_field_value_rule(call: Any, field: str) -> None:
    with pytest.raises(InputError) as e:
        call()
    assert e.value.field == field
    assert e.value.rule
