"""Opioid respiratory depression: PaCO2 and minute ventilation, then EtCO2, PaO2, SpO2.

Indirect-response model with carbon-dioxide feedback (Bouillon T et al., Anesthesiology
1999;91:144-55 for alfentanil; parameters for remifentanil from Bouillon T et al.,
Anesthesiology 2003;99:779-87)::

    E        = Ce^γ / (Ce^γ + C50^γ)                     opioid effect-site concentration
    VE       = VE0 · (1 - E) · (PeCO2 / PaCO2_0)^F        minute ventilation
    dPaCO2/dt = kel · (PaCO2_0 - (1 - E) · (PeCO2/PaCO2_0)^F · PaCO2)
    dPeCO2/dt = ke0,CO2 · (PaCO2 - PeCO2)                 CO2 at the chemoreceptor

CO2 production is constant and its elimination is proportional to ventilation times
PaCO2, so at E = 0 the state rests at PaCO2_0 and during apnoea PaCO2 rises by
kel · PaCO2_0 mmHg/min. The state is integrated on the concentration grid (RK4, at most
2-s steps, Ce linear between grid points), vectorized over N patients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from openinfusion.errors import InputError
from openinfusion.physiology.pk.compartments import ArrayLike, FloatArray

_MAX_STEP_S = 2.0


@dataclass(frozen=True, slots=True)
class VentilationParameters:
    """CO2-feedback ventilation model; defaults are Bouillon 2003 remifentanil estimates.

    ``c50`` and concentrations are in the opioid's concentration unit (ng/mL here).
    """

    c50: float = 0.92  # ng/mL, remifentanil
    gamma: float = 1.25
    feedback_gain: float = 4.30  # F, dimensionless
    kel_per_min: float = 0.08  # kel,CO2
    ke0_co2_per_min: float = 0.92
    paco2_baseline_mmhg: float = 42.4
    ve_baseline_l_min: float = 7.06


REMIFENTANIL_VENTILATION = VentilationParameters()


class Ventilation(NamedTuple):
    """PaCO2 (mmHg) and minute ventilation (L/min), shape (N, J)."""

    paco2_mmhg: FloatArray
    ve_l_min: FloatArray


def simulate_ventilation(
    t_s: ArrayLike,
    ce: ArrayLike,
    params: VentilationParameters = REMIFENTANIL_VENTILATION,
) -> Ventilation:
    """PaCO2 and ventilation on the grid ``t_s`` (s) driven by opioid Ce (N, J); the
    state starts at rest (PaCO2 = PeCO2 = baseline) at the first grid time."""
    t = np.asarray(t_s, dtype=np.float64)
    conc = np.atleast_2d(np.asarray(ce, dtype=np.float64))
    if t.ndim != 1 or conc.shape[1] != t.size or t.size == 0:
        raise InputError("ce", f"shape {conc.shape}", f"must be (N, {t.size}) to match t_s")
    if np.any(np.diff(t) < 0):
        raise InputError("t_s", "decreasing", "must be non-decreasing")
    p = params
    base = p.paco2_baseline_mmhg

    def effect(c: FloatArray) -> FloatArray:
        x = np.power(np.clip(c, 0.0, None) / p.c50, p.gamma)
        return np.asarray(x / (1.0 + x), dtype=np.float64)

    # Substep timeline for all intervals at once: interval index and fraction of each edge.
    spans = np.diff(t)
    steps = np.maximum(1, np.ceil(spans / _MAX_STEP_S)).astype(np.intp)
    interval = np.repeat(np.arange(spans.size), steps)
    first = np.repeat(np.cumsum(steps) - steps, steps)
    frac0 = (np.arange(interval.size) - first) / steps[interval]
    frac1 = frac0 + 1.0 / steps[interval]
    h_min = (spans / steps / 60.0)[interval]
    c0, dc = conc[:, interval], conc[:, interval + 1] - conc[:, interval]
    # Opioid "permission to breathe" 1 - E at each substep's start, middle and end.
    free_a = 1.0 - effect(c0 + dc * frac0)
    free_m = 1.0 - effect(c0 + dc * (frac0 + frac1) / 2.0)
    free_b = 1.0 - effect(c0 + dc * frac1)
    ends = np.cumsum(steps) - 1  # substep that closes each grid interval
    kel, ke0, gain = p.kel_per_min, p.ke0_co2_per_min, p.feedback_gain

    def rhs(pa: FloatArray, pe: FloatArray, free: FloatArray) -> tuple[FloatArray, FloatArray]:
        drive = free * (np.clip(pe, 0.0, None) / base) ** gain
        return kel * (base - drive * pa), ke0 * (pa - pe)

    n = conc.shape[0]
    pa = np.full(n, base)
    pe = np.full(n, base)
    paco2 = np.empty_like(conc)
    peco2 = np.empty_like(conc)
    paco2[:, 0] = pa
    peco2[:, 0] = pe
    j = 0
    for k in range(interval.size):
        h = h_min[k]
        k1 = rhs(pa, pe, free_a[:, k])
        k2 = rhs(pa + h / 2 * k1[0], pe + h / 2 * k1[1], free_m[:, k])
        k3 = rhs(pa + h / 2 * k2[0], pe + h / 2 * k2[1], free_m[:, k])
        k4 = rhs(pa + h * k3[0], pe + h * k3[1], free_b[:, k])
        pa = pa + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        pe = pe + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        if k == ends[j]:
            j += 1
            paco2[:, j] = pa
            peco2[:, j] = pe
    drive = np.power(np.clip(peco2, 0.0, None) / base, p.feedback_gain)
    ve = p.ve_baseline_l_min * (1.0 - effect(conc)) * drive
    return Ventilation(paco2, np.asarray(ve, dtype=np.float64))


# The arterial to end-tidal PCO2 gradient in healthy lungs is a few mmHg; 4 mmHg is a
# local default, not a published constant.
ETCO2_GRADIENT_MMHG = 4.0
# Local default alveolar-arterial PO2 gradient (healthy adult breathing air).
AA_GRADIENT_MMHG = 10.0
WATER_VAPOUR_MMHG = 47.0  # saturated at 37 °C


def etco2_mmhg(paco2_mmhg: ArrayLike, gradient_mmhg: float = ETCO2_GRADIENT_MMHG) -> FloatArray:
    """End-tidal CO2 (mmHg) read by a capnograph: PaCO2 minus the a-ET gradient."""
    return np.asarray(np.asarray(paco2_mmhg, dtype=np.float64) - gradient_mmhg, dtype=np.float64)


def arterial_po2_mmhg(
    paco2_mmhg: ArrayLike,
    fio2: float = 0.21,
    barometric_mmhg: float = 760.0,
    respiratory_quotient: float = 0.8,
    aa_gradient_mmhg: float = AA_GRADIENT_MMHG,
) -> FloatArray:
    """PaO2 (mmHg) from the alveolar gas equation, PAO2 = FiO2 (Pb - PH2O) - PaCO2/RQ
    (Fenn WO, Rahn H, Otis AB, Am J Physiol 1946;146:637-53), minus the A-a gradient."""
    if not 0.0 < fio2 <= 1.0:
        raise InputError("fio2", fio2, "must be a fraction in (0, 1]")
    pa_o2 = (
        fio2 * (barometric_mmhg - WATER_VAPOUR_MMHG)
        - np.asarray(paco2_mmhg, dtype=np.float64) / respiratory_quotient
    )
    return np.asarray(np.clip(pa_o2 - aa_gradient_mmhg, 0.0, None), dtype=np.float64)


def spo2_percent(po2_mmhg: ArrayLike) -> FloatArray:
    """Haemoglobin O2 saturation (%) at PO2 (mmHg), standard conditions
    (Severinghaus JW, J Appl Physiol 1979;46:599-602): 100 / (23400/(P^3 + 150 P) + 1)."""
    p = np.clip(np.asarray(po2_mmhg, dtype=np.float64), 0.0, None)
    denom = p**3 + 150.0 * p
    out = np.zeros_like(p)
    np.divide(100.0 * denom, 23400.0 + denom, out=out, where=denom > 0)
    return out
