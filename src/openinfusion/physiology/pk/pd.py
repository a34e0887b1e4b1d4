"""Drug effect from concentration: sigmoid Emax, propofol BIS, heparin aPTT. Vectorized.

Inputs are arrays of any shape; per-patient parameters of shape (N,) broadcast against
concentrations of shape (N, J).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openinfusion.physiology.pk.compartments import ArrayLike, FloatArray


def _per_patient(param: ArrayLike, conc: FloatArray) -> FloatArray:
    """Parameter (N,) aligned with concentrations (N, J); scalars pass through."""
    arr = np.asarray(param, dtype=np.float64)
    if arr.ndim == 1 and conc.ndim == 2:
        return arr[:, None]
    return arr


def hill(conc: ArrayLike, c50: ArrayLike, gamma: ArrayLike) -> FloatArray:
    """Fraction of maximal effect C^γ / (C^γ + C50^γ), in [0, 1] for C >= 0."""
    c = np.clip(np.asarray(conc, dtype=np.float64), 0.0, None)
    c50a = _per_patient(c50, c)
    g = _per_patient(gamma, c)
    ratio = np.power(c / c50a, g)
    return np.asarray(ratio / (1.0 + ratio), dtype=np.float64)


def sigmoid_emax(
    conc: ArrayLike, e0: ArrayLike, emax: ArrayLike, c50: ArrayLike, gamma: ArrayLike
) -> FloatArray:
    """E0 + Emax · C^γ/(C^γ + C50^γ); a negative ``emax`` gives an inhibitory effect."""
    c = np.asarray(conc, dtype=np.float64)
    frac = hill(c, c50, gamma)
    return np.asarray(_per_patient(e0, c) + _per_patient(emax, c) * frac, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class EleveldBisParameters:
    """Propofol BIS model of Eleveld DJ et al., Br J Anaesth 2018;120:942-59 (Table 3).

    BIS = BIS0 (1 - Ce^γ/(Ce^γ + Ce50^γ)), Ce50 = 3.08 exp(-0.00635 (age - 35)) µg/mL.
    The paper uses one γ below Ce50 and another above; implementations disagree on which
    is which. Here γ = 1.47 for Ce <= Ce50 and 1.89 above, the reading of the PD THETA
    order (θ4 = 1.47, θ9 = 1.89 for Ce > Ce50) used by the R package tci (Jarrett); the
    SimTIVA code applies them the other way round. Both values are fields to change.
    """

    bis0: float = 93.0
    ce50_ug_ml: float = 3.08
    ce50_age_per_year: float = -0.00635
    gamma_below: float = 1.47
    gamma_above: float = 1.89


def eleveld_ce50_ug_ml(
    age_years: ArrayLike, params: EleveldBisParameters | None = None
) -> FloatArray:
    """Effect-site concentration (µg/mL) giving half the maximal BIS fall, by age."""
    p = params or EleveldBisParameters()
    age = np.asarray(age_years, dtype=np.float64)
    return np.asarray(p.ce50_ug_ml * np.exp(p.ce50_age_per_year * (age - 35.0)), dtype=np.float64)


def bis_eleveld(
    ce_ug_ml: ArrayLike, age_years: ArrayLike, params: EleveldBisParameters | None = None
) -> FloatArray:
    """Predicted BIS (0-100) from propofol effect-site concentration (µg/mL) and age (y).

    Use with the Eleveld 2018 PK model and its ke0 (arterial 0.146 (W/70)^-0.25 1/min).
    """
    p = params or EleveldBisParameters()
    ce = np.clip(np.asarray(ce_ug_ml, dtype=np.float64), 0.0, None)
    ce50 = _per_patient(eleveld_ce50_ug_ml(age_years, p), ce)
    gamma = np.where(ce <= ce50, p.gamma_below, p.gamma_above)
    return np.asarray(p.bis0 * (1.0 - hill(ce, ce50, gamma)), dtype=np.float64)


def eleveld_ce_for_bis(
    bis: ArrayLike, age_years: ArrayLike, params: EleveldBisParameters | None = None
) -> FloatArray:
    """Inverse of :func:`bis_eleveld`: the Ce (µg/mL) predicted to give ``bis``."""
    p = params or EleveldBisParameters()
    target = np.asarray(bis, dtype=np.float64)
    effect = np.clip((p.bis0 - target) / p.bis0, 0.0, 1.0 - 1e-12)
    ce50 = _per_patient(eleveld_ce50_ug_ml(age_years, p), target)
    gamma = np.where(effect <= 0.5, p.gamma_below, p.gamma_above)
    return np.asarray(ce50 * np.power(effect / (1.0 - effect), 1.0 / gamma), dtype=np.float64)


# Al-Sallami HS et al., Br J Clin Pharmacol 2016;82:178-84, Table 3: aPTT rises linearly
# with plasma heparin, 35.6 s baseline, 0.67 s per IU/L. Built on high single boluses in
# children; the authors report that it overpredicts aPTT at infusion doses.
HEPARIN_APTT_BASELINE_S = 35.6
HEPARIN_APTT_SLOPE_S_PER_IU_L = 0.67


def heparin_aptt_s(
    conc_iu_l: ArrayLike,
    baseline_s: ArrayLike = HEPARIN_APTT_BASELINE_S,
    slope_s_per_iu_l: ArrayLike = HEPARIN_APTT_SLOPE_S_PER_IU_L,
) -> FloatArray:
    """Activated partial thromboplastin time (s) from plasma heparin (IU/L)."""
    c = np.clip(np.asarray(conc_iu_l, dtype=np.float64), 0.0, None)
    return np.asarray(
        _per_patient(baseline_s, c) + _per_patient(slope_s_per_iu_l, c) * c, dtype=np.float64
    )
