"""MAP Bayesian estimation: prior without levels, recovery of simulated patients, CIs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from openinfusion.control.mipd import (
    BJORKMAN,
    GOTI,
    DoseEvent,
    Level,
    PopulationPk,
    PriorModel,
    ResidualError,
    estimate_map,
    prior_model,
)
from openinfusion.errors import InputError
from openinfusion.physiology.pk import Covariates

VANCO_PATIENT = Covariates(
    age_years=60, weight_kg=80, height_cm=175, male=True, serum_creatinine_mg_dl=1.0
)
VANCO_DOSES = [DoseEvent(12.0 * i, 1000.0, 1.0) for i in range(6)]
VANCO_TIMES = np.array([49.0, 59.5, 61.0, 71.5])
FVIII_PATIENT = Covariates(age_years=30, weight_kg=70)
FVIII_DOSES = [DoseEvent(0.0, 3500.0, 0.0)]
FVIII_TIMES = np.array([4.0, 24.0, 48.0])


def _replicates(
    prior: PriorModel,
    cov: Covariates,
    doses: list[DoseEvent],
    times: np.ndarray,
    seeds: range,
) -> tuple[np.ndarray, np.ndarray]:
    """Relative CL errors and CI coverage for patients drawn from the prior."""
    pop = PopulationPk(prior, cov)
    sched = pop.schedule(doses)
    errors, covered = [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        true = rng.multivariate_normal(np.zeros(pop.n_eta), prior.omega)
        f = pop.predict(true[None], sched, times)[0]
        y = f + rng.normal(size=f.size) * np.sqrt(prior.residual.variance(f))
        levels = [Level(t, v) for t, v in zip(times, np.maximum(y, 0.01), strict=True)]
        cl = estimate_map(pop, doses, levels).parameters()[0]
        cl_true = pop.typical.cl_l_h * np.exp(true[0])
        errors.append(cl.estimate / cl_true - 1.0)
        covered.append(cl.lower <= cl_true <= cl.upper)
    return np.abs(np.array(errors)), np.array(covered)


def test_no_levels_returns_the_population_prior() -> None:
    pop = PopulationPk(GOTI, VANCO_PATIENT)
    est = estimate_map(pop, VANCO_DOSES, [])
    assert est.method == "prior"
    np.testing.assert_array_equal(est.eta, 0.0)
    np.testing.assert_allclose(est.cov, GOTI.omega)
    assert est.cl_l_h == pytest.approx(pop.typical.cl_l_h)


def test_noise_free_levels_with_small_residual_error_recover_cl_within_5_percent() -> None:
    tight = replace(GOTI, residual=ResidualError(additive=0.1, proportional=0.02))
    pop = PopulationPk(tight, VANCO_PATIENT)
    true = np.array([0.4, -0.3, 0.2])
    y = pop.predict(true[None], pop.schedule(VANCO_DOSES), VANCO_TIMES)[0]
    est = estimate_map(pop, VANCO_DOSES, [Level(t, v) for t, v in zip(VANCO_TIMES, y, strict=True)])
    assert est.converged
    assert est.cl_l_h == pytest.approx(pop.typical.cl_l_h * np.exp(0.4), rel=0.05)
    cl = est.parameters()[0]
    assert cl.lower < cl.estimate < cl.upper


def test_vancomycin_recovery_with_published_residual_error() -> None:
    errors, covered = _replicates(GOTI, VANCO_PATIENT, VANCO_DOSES, VANCO_TIMES, range(50))
    assert np.median(errors) < 0.15
    assert np.mean(errors < 0.25) >= 0.6
    assert np.mean(covered) >= 0.8


def test_vancomycin_recovery_with_assay_level_noise_mostly_within_15_percent() -> None:
    assay = replace(GOTI, residual=ResidualError(additive=0.5, proportional=0.05))
    errors, covered = _replicates(assay, VANCO_PATIENT, VANCO_DOSES, VANCO_TIMES, range(50))
    assert np.median(errors) < 0.1
    assert np.mean(errors < 0.15) >= 0.75
    assert np.mean(covered) >= 0.85


def test_factor_viii_recovery_three_levels() -> None:
    errors, covered = _replicates(BJORKMAN, FVIII_PATIENT, FVIII_DOSES, FVIII_TIMES, range(50))
    assert np.median(errors) < 0.15
    assert np.mean(covered) >= 0.85


def test_levels_pull_the_estimate_toward_the_data() -> None:
    pop = PopulationPk(GOTI, VANCO_PATIENT)
    doses = [DoseEvent(12.0 * i, 1500.0, 1.5) for i in range(4)]
    est = estimate_map(pop, doses, [Level(26.5, 32.0), Level(35.5, 14.0)])
    # PKPD_REFERENCE 6.2 worked example (CrCL 90): MAP CL 4.26 L/h from population 3.58.
    assert est.cl_l_h == pytest.approx(4.24, abs=0.05)
    assert np.all(np.linalg.eigvalsh(est.cov) > 0)
    assert np.all(np.diag(est.cov)[:2] < np.diag(GOTI.omega)[:2])  # CL and V1 learnt


def test_steady_state_matches_a_long_simulation() -> None:
    pop = PopulationPk(GOTI, VANCO_PATIENT)
    etas = np.array([[0.0, 0.0, 0.0], [-0.5, 0.3, 0.1]])
    dose = DoseEvent(0.0, 1250.0, 1.5)
    ss = pop.steady_state(etas, [dose], 12.0, np.array([1.5, 12.0]))
    many = [DoseEvent(12.0 * i, 1250.0, 1.5) for i in range(120)]
    late = pop.predict(etas, pop.schedule(many), np.array([119 * 12 + 1.5, 120 * 12.0]))
    np.testing.assert_allclose(ss, late, rtol=1e-6)


def test_unknown_prior_is_named() -> None:
    with pytest.raises(InputError, match="model"):
        prior_model("vancomycin", "thomson")


def test_more_than_one_patient_is_refused() -> None:
    cov = Covariates(age_years=[30, 40], weight_kg=70)
    with pytest.raises(InputError, match="one patient"):
        PopulationPk(BJORKMAN, cov)
