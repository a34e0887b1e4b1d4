"""Maximum a posteriori (MAP) Bayesian estimation of individual PK parameters.

Individual parameters are ``theta_k = theta_pop,k(covariates) exp(eta_k)``, ``eta ~ N(0,
Omega)`` (Sheiner LB, Beal SL, J Pharmacokinet Biopharm 1982;10:53-77; Sheiner LB et al.,
Clin Pharmacol Ther 1979;26:294-305). Given levels ``y_j`` at ``t_j``, the estimate
minimises minus twice the log posterior::

    OBJ(eta) = sum_j [ (y_j - f_j)^2 / s_j^2 + ln s_j^2 ] + eta' Omega^-1 eta,
    s_j^2 = add^2 + (prop f_j)^2

(the ``ln s^2`` term is the normal likelihood's own; it matters only with a proportional
error). The minimiser is L-BFGS-B with central-difference gradients; every objective,
gradient and Hessian is one vectorized call of the exact solver
:func:`~openinfusion.physiology.pk.simulate` over a batch of eta vectors.

Uncertainty (Laplace): the posterior of eta is approximated by ``N(eta_hat, 2 H^-1)``
with ``H`` the Hessian of OBJ at the mode (finite differences; the Gauss-Newton form
``J' S^-1 J + Omega^-1`` when that is not positive definite). CIs of CL and V are exact
log-normal quantiles of that approximation; CIs of derived quantities (AUC, trough) come
from sampling etas and simulating all samples at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize  # type: ignore[import-untyped]

from openinfusion.control.mipd.history import DoseEvent, Level
from openinfusion.control.mipd.priors import ETA_PARAMETERS, PriorModel
from openinfusion.errors import InputError
from openinfusion.physiology.pk import (
    Covariates,
    ModelOptions,
    ModelSpec,
    PkModel,
    PkState,
    Schedule,
    build_model,
    simulate,
)

FloatArray = npt.NDArray[np.float64]

_Z95 = 1.959963984540054
# Finite-difference steps on the eta scale (dimensionless).
_GRAD_STEP = 1e-5
_HESS_STEP = 1e-3


@dataclass(frozen=True, slots=True)
class TypicalParameters:
    """Typical values at the patient's covariates: CL, Q (L/h), V1, V2 (L; V2 0 if 1-cmt)."""

    cl_l_h: float
    v1_l: float
    v2_l: float
    q_l_h: float


class PopulationPk:
    """A population model at one patient's covariates, ready to evaluate for eta batches.

    ``prior`` gives Omega and the residual error; the typical values come from
    :func:`~openinfusion.physiology.pk.build_model` with the same drug and model names.
    """

    def __init__(
        self, prior: PriorModel, covariates: Covariates, options: ModelOptions | None = None
    ) -> None:
        if covariates.n != 1:
            raise InputError("covariates", covariates.n, "MIPD needs exactly one patient")
        spec, pk = build_model(prior.drug, prior.model, covariates, options)
        self.prior = prior
        self.spec: ModelSpec = spec
        self.typical = TypicalParameters(
            cl_l_h=float(pk.cl_l_min[0]) * 60.0,
            v1_l=float(pk.v1_l[0]),
            v2_l=float(pk.v2_l[0]),
            q_l_h=float(pk.q2_l_min[0]) * 60.0,
        )
        self._index = {name: prior.etas.index(name) for name in prior.etas}

    @property
    def n_eta(self) -> int:
        """Number of random effects k."""
        return len(self.prior.etas)

    def parameters(self, etas: FloatArray) -> dict[str, FloatArray]:
        """Individual CL (L/h), V1, V2 (L), Q (L/h) for etas (N, k), each (N,)."""
        etas = np.atleast_2d(np.asarray(etas, dtype=np.float64))
        t = self.typical
        typical = {"cl": t.cl_l_h, "v1": t.v1_l, "v2": t.v2_l}
        out: dict[str, FloatArray] = {}
        for name in ETA_PARAMETERS:
            value = np.full(etas.shape[0], typical[name])
            if name in self._index:
                value = value * np.exp(etas[:, self._index[name]])
            out[name] = value
        out["q"] = np.full(etas.shape[0], t.q_l_h)
        return out

    def models(self, etas: FloatArray) -> PkModel:
        """Individual :class:`PkModel` batch (L, L/min) for etas (N, k)."""
        p = self.parameters(etas)
        if self.typical.v2_l > 0:
            return PkModel.from_clearances(
                v1_l=p["v1"], cl_l_min=p["cl"] / 60.0, v2_l=p["v2"], q2_l_min=p["q"] / 60.0
            )
        return PkModel.from_clearances(v1_l=p["v1"], cl_l_min=p["cl"] / 60.0)

    def schedule(self, doses: Sequence[DoseEvent]) -> Schedule:
        """Solver input from doses (canonical amount; 0-h duration = bolus)."""
        per = self.spec.amount_per_canonical
        infusions = [
            (
                d.start_h * 3600.0,
                (d.start_h + d.duration_h) * 3600.0,
                d.amount * per / (d.duration_h * 3600.0),
            )
            for d in doses
            if d.duration_h > 0
        ]
        boluses = [(d.start_h * 3600.0, d.amount * per) for d in doses if d.duration_h <= 0]
        return Schedule.build(infusions=infusions, boluses=boluses)

    def predict(self, etas: FloatArray, schedule: Schedule, t_h: FloatArray) -> FloatArray:
        """Concentrations (N, J) in the reporting unit at ``t_h`` (h, non-decreasing)."""
        result = simulate(self.models(etas), schedule, np.asarray(t_h) * 3600.0)
        return np.asarray(result.cp * self.spec.concentration_scale, dtype=np.float64)

    def steady_state(
        self, etas: FloatArray, period_doses: Sequence[DoseEvent], period_h: float, t_h: FloatArray
    ) -> FloatArray:
        """Steady-state concentrations (N, J) (reporting unit) at ``t_h`` in [0, period_h]
        when ``period_doses`` repeat every ``period_h`` forever.

        The state after one period is affine in the state before it, ``x' = A x + b``; the
        periodic state solves ``(I - A) x = b`` exactly (no run-in simulation).
        """
        models = self.models(etas)
        n = models.n_patients
        period_s = period_h * 3600.0
        sched = self.schedule(period_doses)
        b = simulate(models, sched, [period_s]).final.amounts
        a = np.zeros((n, 3, 3))
        empty = Schedule.build()
        for c in range(models.compartments):
            unit = np.zeros((n, 3))
            unit[:, c] = 1.0
            start = PkState(0.0, unit, np.zeros(n))
            a[:, :, c] = simulate(models, empty, [period_s], initial=start).final.amounts
        x = np.asarray(
            np.linalg.solve(np.eye(3)[None] - a, b[:, :, None])[:, :, 0], dtype=np.float64
        )
        start = PkState(0.0, x, np.zeros(n))
        result = simulate(models, sched, np.asarray(t_h) * 3600.0, initial=start)
        return np.asarray(result.cp * self.spec.concentration_scale, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class ParameterEstimate:
    """A parameter's estimate and 95 % interval (exp of eta_hat +- 1.96 sd), with unit."""

    name: str
    unit: str
    estimate: float
    lower: float
    upper: float
    typical: float


@dataclass(frozen=True, slots=True, eq=False)
class MapEstimate:
    """Result of :func:`estimate_map`: mode ``eta`` (k,), Laplace covariance ``cov`` (k, k).

    ``method`` is ``map`` (levels used) or ``prior`` (no levels: eta 0, cov Omega).
    ``objective`` is OBJ at the mode; ``converged`` the optimiser's flag.
    """

    population: PopulationPk
    eta: FloatArray
    cov: FloatArray
    method: str
    objective: float
    converged: bool
    levels: tuple[Level, ...] = ()
    predicted_levels: tuple[float, ...] = field(default=())

    @property
    def cl_l_h(self) -> float:
        """Individual CL (L/h) at the mode."""
        return float(self.population.parameters(self.eta[None])["cl"][0])

    def parameters(self) -> list[ParameterEstimate]:
        """CL, V1 (and V2 when it carries a random effect) with 95 % intervals."""
        pop = self.population
        typical = {"cl": pop.typical.cl_l_h, "v1": pop.typical.v1_l, "v2": pop.typical.v2_l}
        units = {"cl": "L/h", "v1": "L", "v2": "L"}
        out = []
        for i, name in enumerate(pop.prior.etas):
            sd = math.sqrt(max(float(self.cov[i, i]), 0.0))
            base = typical[name]
            out.append(
                ParameterEstimate(
                    name=name,
                    unit=units[name],
                    estimate=base * math.exp(self.eta[i]),
                    lower=base * math.exp(self.eta[i] - _Z95 * sd),
                    upper=base * math.exp(self.eta[i] + _Z95 * sd),
                    typical=base,
                )
            )
        return out

    def sample(self, n: int, seed: int = 0) -> FloatArray:
        """``n`` eta vectors (n, k) from the Laplace posterior N(eta, cov), seeded."""
        rng = np.random.default_rng(seed)
        return np.asarray(
            rng.multivariate_normal(self.eta, self.cov, size=n, method="cholesky"),
            dtype=np.float64,
        )


def prior_estimate(population: PopulationPk) -> MapEstimate:
    """The population prior as an estimate: eta 0, covariance Omega."""
    k = population.n_eta
    return MapEstimate(
        population, np.zeros(k), np.array(population.prior.omega), "prior", 0.0, True
    )


def estimate_map(
    population: PopulationPk, doses: Sequence[DoseEvent], levels: Sequence[Level]
) -> MapEstimate:
    """MAP estimate of eta from ``levels`` after ``doses``; the prior when there are none."""
    if not doses:
        raise InputError("doses", "[]", "at least one dose is required")
    if not levels:
        return prior_estimate(population)
    prior = population.prior
    schedule = population.schedule(doses)
    ordered = sorted(levels, key=lambda lv: lv.time_h)
    t_h = np.array([lv.time_h for lv in ordered])
    y = np.array([lv.value for lv in ordered])
    omega_inv = prior.omega_inv
    k = population.n_eta

    def objective(etas: FloatArray) -> FloatArray:
        f = population.predict(etas, schedule, t_h)
        var = prior.residual.variance(f)
        data = np.sum((y[None] - f) ** 2 / var + np.log(var), axis=1)
        penalty = np.einsum("nk,kl,nl->n", etas, omega_inv, etas)
        return np.asarray(data + penalty, dtype=np.float64)

    eye = np.eye(k)

    def value_and_grad(x: FloatArray) -> tuple[float, FloatArray]:
        batch = np.vstack([x[None], x + _GRAD_STEP * eye, x - _GRAD_STEP * eye])
        values = objective(batch)
        grad = (values[1 : k + 1] - values[k + 1 :]) / (2.0 * _GRAD_STEP)
        return float(values[0]), grad

    sd = np.sqrt(np.diag(prior.omega))
    bounds = [(-5.0 * s, 5.0 * s) for s in sd]
    result = minimize(
        value_and_grad,
        np.zeros(k),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 200, "ftol": 1e-12, "gtol": 1e-7},
    )
    eta = np.asarray(result.x, dtype=np.float64)
    cov = _laplace_covariance(population, schedule, t_h, eta, objective)
    fitted = population.predict(eta[None], schedule, t_h)[0]
    return MapEstimate(
        population,
        eta,
        cov,
        "map",
        float(result.fun),
        bool(result.success),
        tuple(ordered),
        tuple(float(v) for v in fitted),
    )


def _laplace_covariance(
    population: PopulationPk,
    schedule: Schedule,
    t_h: FloatArray,
    eta: FloatArray,
    objective: Callable[[FloatArray], FloatArray],
) -> FloatArray:
    """2 H^-1 of OBJ at the mode; Gauss-Newton when H is not positive definite."""
    k = eta.size
    h = _HESS_STEP
    eye = np.eye(k)
    pairs = [(i, j) for i in range(k) for j in range(i, k)]
    points = []
    for i, j in pairs:
        for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            points.append(eta + h * (si * eye[i] + sj * eye[j]))
    values = objective(np.array(points)).reshape(len(pairs), 4)
    hess = np.zeros((k, k))
    for (i, j), (pp, pm, mp, mm) in zip(pairs, values, strict=True):
        hess[i, j] = hess[j, i] = (pp - pm - mp + mm) / (4.0 * h * h)
    if np.all(np.isfinite(hess)) and np.all(np.linalg.eigvalsh(hess) > 0):
        return np.asarray(2.0 * np.linalg.inv(hess), dtype=np.float64)
    prior = population.prior
    batch = np.vstack([eta + _GRAD_STEP * eye, eta - _GRAD_STEP * eye])
    f = population.predict(batch, schedule, t_h)
    jac = ((f[:k] - f[k:]) / (2.0 * _GRAD_STEP)).T  # (J, k)
    f0 = population.predict(eta[None], schedule, t_h)[0]
    info = jac.T @ (jac / prior.residual.variance(f0)[:, None]) + prior.omega_inv
    return np.asarray(np.linalg.inv(info), dtype=np.float64)


def interval(values: FloatArray, level: float = 0.95) -> tuple[float, float]:
    """Central ``level`` interval of samples (percentiles), for each column if 2-D."""
    lo, hi = np.percentile(values, [50.0 * (1 - level), 100.0 - 50.0 * (1 - level)], axis=0)
    return float(lo), float(hi)
