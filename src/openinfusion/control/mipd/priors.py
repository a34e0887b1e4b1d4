"""Population priors for MAP estimation: between-subject variability and residual error.

Typical values come from :mod:`openinfusion.physiology.pk.models`; this module adds what a
Bayesian fit also needs, each with its source and how sure we are of it:

* ``omega`` (variance-covariance of the log-normal random effects eta, ``theta_i =
  theta_pop exp(eta_i)``), and
* the residual error ``var = add^2 + (prop f)^2`` in the reporting concentration unit.

Coefficients of variation (CV) are converted to log-scale variances with
``omega^2 = ln(1 + CV^2)``; whether each paper reported CV on that scale (or the
approximation ``CV = omega``) was not checked against the papers, so every omega here is
marked ``unverified``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from openinfusion.errors import InputError

FloatArray = npt.NDArray[np.float64]

# Parameters a random effect can sit on: CL, V1 (central volume), V2 (peripheral volume).
ETA_PARAMETERS = ("cl", "v1", "v2")


@dataclass(frozen=True, slots=True)
class ResidualError:
    """Combined residual error: SD ``additive`` (reporting unit) and CV ``proportional``."""

    additive: float
    proportional: float

    def variance(self, predicted: FloatArray) -> FloatArray:
        """Residual variance (unit^2) at predicted concentrations (reporting unit)."""
        return np.asarray(self.additive**2 + (self.proportional * predicted) ** 2, dtype=np.float64)


@dataclass(frozen=True, slots=True, eq=False)
class PriorModel:
    """What MAP estimation needs beyond typical values, for one published model.

    ``etas`` names the parameters (from :data:`ETA_PARAMETERS`) carrying random effects,
    ``omega`` is their (k, k) log-scale covariance, ``unit`` the reporting concentration
    unit of levels (``mg/L`` or ``IU/dL``) and ``source`` says where each number is from.
    """

    drug: str
    model: str
    etas: tuple[str, ...]
    omega: FloatArray
    residual: ResidualError
    unit: str
    citation: str
    source: str

    @property
    def omega_inv(self) -> FloatArray:
        """Omega^-1 (k, k)."""
        return np.asarray(np.linalg.inv(self.omega), dtype=np.float64)


def omega_from_cv(cvs: dict[str, float], correlations: dict[tuple[str, str], float]) -> FloatArray:
    """Log-scale covariance from CVs (fractions) and correlations, ``omega^2 = ln(1+CV^2)``."""
    names = list(cvs)
    sd = np.array([math.sqrt(math.log1p(cvs[n] ** 2)) for n in names])
    corr = np.eye(len(names))
    for (a, b), r in correlations.items():
        i, j = names.index(a), names.index(b)
        corr[i, j] = corr[j, i] = r
    return np.asarray(np.outer(sd, sd) * corr, dtype=np.float64)


# Goti V et al., Ther Drug Monit 2018;40:212-21, Table 2 (as curated in nlmixr2lib and in
# docs PKPD_REFERENCE 6.1): IIV CL 39.8 %, V1 81.6 %, V2 57.1 % (no correlation retained);
# residual error additive 3.4 mg/L + proportional 22.7 %. Values traced to the paper's
# table by a secondary source; the CV -> omega^2 convention is unverified.
GOTI = PriorModel(
    drug="vancomycin",
    model="goti",
    etas=("cl", "v1", "v2"),
    omega=omega_from_cv({"cl": 0.398, "v1": 0.816, "v2": 0.571}, {}),
    residual=ResidualError(additive=3.4, proportional=0.227),
    unit="mg/L",
    citation="Goti 2018 Ther Drug Monit 40:212, Table 2",
    source="secondary (nlmixr2lib, traced to Table 2); CV->omega^2 convention unverified",
)

# Buelga DS et al., Antimicrob Agents Chemother 2005;49:4934-41, Table 4 (via nlmixr2lib):
# IIV CL 28.16 %, V 37.15 %, correlation 0.2312; additive residual 3.52 mg/L.
BUELGA = PriorModel(
    drug="vancomycin",
    model="buelga",
    etas=("cl", "v1"),
    omega=omega_from_cv({"cl": 0.2816, "v1": 0.3715}, {("cl", "v1"): 0.2312}),
    residual=ResidualError(additive=3.52, proportional=0.0),
    unit="mg/L",
    citation="Buelga 2005 Antimicrob Agents Chemother 49:4934, Table 4",
    source="secondary (nlmixr2lib, traced to Table 4); CV->omega^2 convention unverified",
)

# Björkman S et al., Blood 2012;119:612-8: IIV CL 30 %, V1 21 %, correlation 0.45; residual
# additive 8.9 IU/dL. Taken from two secondary implementations (PKPD_REFERENCE 6.3 and an
# independent open-source reimplementation that also uses omega^2 = ln(1 + CV^2)); the
# residual model (purely additive, 8.9 IU/dL) is recalled, not read in the paper.
BJORKMAN = PriorModel(
    drug="factor_viii",
    model="bjorkman",
    etas=("cl", "v1"),
    omega=omega_from_cv({"cl": 0.30, "v1": 0.21}, {("cl", "v1"): 0.45}),
    residual=ResidualError(additive=8.9, proportional=0.0),
    unit="IU/dL",
    citation="Björkman 2012 Blood 119:612",
    source="secondary code (two implementations agree); residual error recalled, unverified",
)

PRIORS: dict[tuple[str, str], PriorModel] = {(p.drug, p.model): p for p in (GOTI, BUELGA, BJORKMAN)}


def prior_model(drug: str, model: str) -> PriorModel:
    """The prior of ``drug``'s ``model`` (e.g. ``vancomycin``, ``goti``)."""
    key = (drug.strip().lower().replace("-", "_"), model.strip().lower())
    if key not in PRIORS:
        names = ", ".join(m for d, m in PRIORS if d == key[0]) or "none"
        raise InputError("model", model, f"must be one of {names} for {drug} MIPD")
    return PRIORS[key]
