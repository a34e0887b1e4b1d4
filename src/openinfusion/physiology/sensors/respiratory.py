"""Gas exchange from ventilation, and the pulse oximeter and capnograph that watch it.

Input is a ventilation fraction per patient (``1`` = baseline alveolar ventilation, ``0`` =
apnoea), for example from an opioid effect-site model owned elsewhere.

Gas exchange (:class:`GasExchange`), two pools; CO2 is advanced exactly per step, O2 in
midpoint substeps of at most 0.2 min (each exact for its frozen blood-buffer factor):

* CO2: ``tau_c dPaCO2/dt = PaCO2_0 - v PaCO2``, so the steady state is ``PaCO2_0 / v``
  (alveolar ventilation equation, PaCO2 = 0.863 VCO2 / VA; West JB, Respiratory Physiology:
  The Essentials) and in apnoea PaCO2 rises by ``PaCO2_0 / tau_c`` per minute, set to
  3 mmHg/min (Eger EI, Severinghaus JW, Anesthesiology 1961;22:419-425; the faster first
  minute is not modelled).
* O2: ``tau_o f(PaO2) dPAO2/dt = v (PIO2 - PAO2) - PaCO2_0 / R``, whose steady state is the
  alveolar gas equation ``PAO2 = FiO2 (Pb - PH2O) - PaCO2 / R`` (simplified form; Fenn, Rahn
  & Otis 1946, see Curran-Everett D, Adv Physiol Educ 2006;30:58-62). ``tau_o`` = FRC /
  alveolar ventilation is the turnover of the lung O2 store; ``f = 1 + (blood O2 capacity /
  lung O2 capacitance) dS/dP`` adds the blood store, which buffers the fall once PaO2 reaches
  the steep part of the dissociation curve. Textbook volumes (FRC 2.4 L, alveolar
  ventilation 4.2 L/min, 1000 mL O2 bound at full saturation) give, in apnoea, SpO2 below
  90 % after about 0.6 min on air and about 7 min after breathing 100 % O2, the order of the
  safe apnoea times modelled by Benumof JL et al., Anesthesiology 1997;87:979-982. This pool
  model is local.
* ``PaO2 = PAO2 - (A-a gradient)``; SaO2 from the Severinghaus equation (Severinghaus JW.
  Simple, accurate equations for human blood O2 dissociation computations. J Appl Physiol
  1979;46(3):599-602): ``S = 100 / (23400 / (P^3 + 150 P) + 1)``.

Sensor noise, averaging and artefact parameters are local defaults unless cited.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openinfusion.errors import InputError
from openinfusion.physiology.sensors._common import (
    Array,
    Artefacts,
    Clock,
    Episodes,
    OuNoise,
    Smoother,
    as_matrix,
    as_row,
    check_number,
    check_seed,
    spawn,
)

WATER_VAPOUR_MMHG = 47.0  # saturated at 37 degC


def severinghaus_saturation_pct(po2_mmhg: ArrayLike) -> Array:
    """Haemoglobin O2 saturation (%) at PO2 (mmHg), Severinghaus 1979; 0 at PO2 <= 0."""
    p = np.maximum(np.asarray(po2_mmhg, dtype=np.float64), 0.0)
    with np.errstate(divide="ignore"):
        s = 100.0 / (23400.0 / ((p * p + 150.0) * p) + 1.0)
    return np.asarray(np.where(p > 0.0, s, 0.0))


def alveolar_po2_mmhg(
    fio2: ArrayLike,
    paco2_mmhg: ArrayLike,
    barometric_mmhg: ArrayLike = 760.0,
    respiratory_quotient: ArrayLike = 0.8,
) -> Array:
    """Alveolar PO2 (mmHg), simplified alveolar gas equation ``FiO2 (Pb - 47) - PaCO2 / R``."""
    f = np.asarray(fio2, dtype=np.float64)
    pb = np.asarray(barometric_mmhg, dtype=np.float64)
    return np.asarray(
        f * (pb - WATER_VAPOUR_MMHG) - np.asarray(paco2_mmhg) / np.asarray(respiratory_quotient)
    )


def steady_paco2_mmhg(baseline_paco2_mmhg: ArrayLike, ventilation_fraction: ArrayLike) -> Array:
    """Steady-state PaCO2 (mmHg) at a fraction of baseline alveolar ventilation (inf at 0)."""
    v = np.asarray(ventilation_fraction, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.asarray(np.asarray(baseline_paco2_mmhg, dtype=np.float64) / v)


@dataclass(frozen=True)
class RespiratoryBaseline:
    """A patient's breathing at ventilation fraction 1 (scalars, shared by all patients)."""

    paco2_mmhg: float = 40.0
    fio2: float = 0.21
    barometric_mmhg: float = 760.0
    aa_gradient_mmhg: float = 10.0  # local; rises with age and lung disease
    respiratory_quotient: float = 0.8
    resp_rate_bpm: float = 14.0
    apnoeic_co2_rise_mmhg_min: float = 3.0  # Eger & Severinghaus 1961
    frc_l: float = 2.4  # functional residual capacity, textbook adult value
    alveolar_ventilation_l_min: float = 4.2  # textbook adult value
    blood_o2_capacity_ml: float = 1000.0  # ~5 L blood x 150 g/L Hb x 1.34 mL O2/g

    def validated(self) -> RespiratoryBaseline:
        check_number("baseline.paco2_mmhg", self.paco2_mmhg, lo=10.0, hi=120.0, unit="mmHg")
        check_number("baseline.fio2", self.fio2, lo=0.1, hi=1.0)
        check_number("baseline.barometric_mmhg", self.barometric_mmhg, lo=200.0, hi=1200.0)
        check_number("baseline.aa_gradient_mmhg", self.aa_gradient_mmhg, lo=0.0, hi=600.0)
        check_number("baseline.respiratory_quotient", self.respiratory_quotient, lo=0.6, hi=1.2)
        check_number("baseline.resp_rate_bpm", self.resp_rate_bpm, lo=1.0, hi=80.0, unit="/min")
        check_number(
            "baseline.apnoeic_co2_rise_mmhg_min",
            self.apnoeic_co2_rise_mmhg_min,
            lo=0.0,
            lo_open=True,
            unit="mmHg/min",
        )
        check_number("baseline.frc_l", self.frc_l, lo=0.1, hi=10.0, unit="L")
        check_number(
            "baseline.alveolar_ventilation_l_min",
            self.alveolar_ventilation_l_min,
            lo=0.1,
            hi=100.0,
            unit="L/min",
        )
        check_number(
            "baseline.blood_o2_capacity_ml", self.blood_o2_capacity_ml, lo=0.0, hi=5000.0, unit="mL"
        )
        if self.inspired_po2_mmhg - self.paco2_mmhg / self.respiratory_quotient <= 0.0:
            raise InputError("baseline.fio2", self.fio2, "gives no alveolar O2 at baseline")
        return self

    @property
    def inspired_po2_mmhg(self) -> float:
        """PIO2 = FiO2 (Pb - PH2O), mmHg."""
        return self.fio2 * (self.barometric_mmhg - WATER_VAPOUR_MMHG)

    @property
    def o2_time_constant_min(self) -> float:
        """Turnover of the lung O2 store, FRC / alveolar ventilation (min)."""
        return self.frc_l / self.alveolar_ventilation_l_min

    @property
    def blood_buffer_mmhg(self) -> float:
        """Blood O2 capacity over lung O2 capacitance (mmHg per unit saturation)."""
        lung_ml_per_mmhg = 1000.0 * self.frc_l / (self.barometric_mmhg - WATER_VAPOUR_MMHG)
        return self.blood_o2_capacity_ml / lung_ml_per_mmhg


@dataclass(frozen=True)
class BloodGases:
    """Arterial gases for ``N`` patients (arrays of the same shape)."""

    paco2_mmhg: Array
    pao2_mmhg: Array
    sao2_pct: Array


class GasExchange:
    """CO2 and O2 pools for ``N`` patients driven by the ventilation fraction (see module doc).

    Starts at the baseline steady state; :meth:`step` takes the ventilation fraction held over
    the step (exact solution for a constant fraction).
    """

    def __init__(self, n: int, baseline: RespiratoryBaseline | None = None) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InputError("n", n, "must be a whole number of patients >= 1")
        self.baseline = (baseline or RespiratoryBaseline()).validated()
        b = self.baseline
        self._tau_c = b.paco2_mmhg / b.apnoeic_co2_rise_mmhg_min
        self._uptake = b.paco2_mmhg / b.respiratory_quotient  # O2 drop at baseline, mmHg
        self.paco2_mmhg = np.full(n, b.paco2_mmhg)
        self.pao2_alveolar_mmhg = np.full(n, b.inspired_po2_mmhg - self._uptake)

    def gases(self) -> BloodGases:
        """Current arterial gases."""
        pao2 = np.maximum(self.pao2_alveolar_mmhg - self.baseline.aa_gradient_mmhg, 0.0)
        return BloodGases(self.paco2_mmhg.copy(), pao2, severinghaus_saturation_pct(pao2))

    def step(self, dt_min: float, ventilation_fraction: ArrayLike) -> BloodGases:
        """Advance ``dt_min`` minutes at ventilation fraction ``(N,)`` (0..1, may exceed 1)."""
        dt = check_number("dt_min", dt_min, lo=0.0, unit="min")
        v = as_row("ventilation_fraction", ventilation_fraction, self.paco2_mmhg.shape[0], lo=0.0)
        self.advance(dt, v)
        return self.gases()

    def advance(self, dt: float, v: Array) -> None:
        """:meth:`step` without input checks (``v`` already a float array of shape ``(N,)``)."""
        b = self.baseline
        breathing = v > 0.0
        vs = np.where(breathing, v, 1.0)
        # CO2: steady state PaCO2_0 / v, rate v / tau_c; apnoea: linear rise.
        decay_c = np.exp(-vs * dt / self._tau_c)
        c_ss = b.paco2_mmhg / vs
        co2 = c_ss + (self.paco2_mmhg - c_ss) * decay_c
        co2_apnoea = self.paco2_mmhg + b.paco2_mmhg * dt / self._tau_c
        self.paco2_mmhg = np.where(breathing, co2, co2_apnoea)
        # O2: steady state PIO2 - uptake / v; the blood store slows the fall by f(PaO2).
        # Substeps exact for a frozen f, with f taken at the substep's midpoint (2nd order).
        o_ss = b.inspired_po2_mmhg - self._uptake / vs
        pa = self.pao2_alveolar_mmhg
        substeps = max(1, math.ceil(dt / _O2_SUBSTEP_MIN))
        h = dt / substeps
        for _ in range(substeps):
            mid = self._o2_move(pa, 0.5 * h, vs, o_ss, breathing, pa)
            pa = self._o2_move(pa, h, vs, o_ss, breathing, mid)
        self.pao2_alveolar_mmhg = pa

    def _o2_move(
        self,
        pa: Array,
        h: float,
        vs: Array,
        o_ss: Array,
        breathing: NDArray[np.bool_],
        pa_for_f: Array,
    ) -> Array:
        b = self.baseline
        tau = b.o2_time_constant_min * (
            1.0 + b.blood_buffer_mmhg * _saturation_slope(pa_for_f - b.aa_gradient_mmhg)
        )
        breathing_pa = o_ss + (pa - o_ss) * np.exp(-vs * h / tau)
        apnoea_pa = pa - self._uptake * h / tau
        return np.maximum(np.where(breathing, breathing_pa, apnoea_pa), 0.0)


_O2_SUBSTEP_MIN = 0.2


def _saturation_slope(po2_mmhg: Array) -> Array:
    """dS/dP of the Severinghaus curve (fraction per mmHg)."""
    p = np.maximum(po2_mmhg, 0.0)
    p2 = p * p
    d = 23400.0 + (p2 + 150.0) * p
    return np.asarray(23400.0 * (3.0 * p2 + 150.0) / (d * d))


@dataclass(frozen=True)
class PulseOximeterSpec:
    """Pulse oximeter: averaging, accuracy, resolution and motion artefacts.

    ``averaging_s`` is the device averaging window (commonly selectable about 2-16 s), modelled
    as a first-order filter with time constant half the window. Per-patient bias and
    reading noise (SD, % SpO2) are local choices within the ~2-3 % accuracy (A_rms) that
    ISO 80601-2-61 asks manufacturers to state. Motion artefacts default to missing readings
    with some spurious desaturations (local).
    """

    averaging_s: float = 8.0
    bias_sd_pct: float = 1.0
    noise_sd_pct: float = 1.0
    noise_corr_s: float = 10.0
    resolution_pct: float = 1.0
    artefacts: Artefacts | None = field(
        default_factory=lambda: Artefacts(
            rate_per_h=1.0,
            duration_s=(5.0, 40.0),
            false_low_fraction=0.3,
            false_low_depth=(5.0, 15.0),
        )
    )

    def validated(self) -> PulseOximeterSpec:
        check_number("spo2.averaging_s", self.averaging_s, lo=0.0, hi=120.0, unit="s")
        check_number("spo2.bias_sd_pct", self.bias_sd_pct, lo=0.0, hi=20.0)
        check_number("spo2.noise_sd_pct", self.noise_sd_pct, lo=0.0, hi=20.0)
        check_number("spo2.noise_corr_s", self.noise_corr_s, lo=0.0, hi=3600.0, unit="s")
        check_number("spo2.resolution_pct", self.resolution_pct, lo=0.0, hi=10.0)
        if self.artefacts is not None:
            self.artefacts.validated("spo2.artefacts")
        return self


@dataclass(frozen=True)
class CapnographSpec:
    """Capnograph: arterial-to-end-tidal gradient, averaging, noise, apnoea and line faults.

    ``gradient_mmhg`` (PaCO2 - EtCO2, a few mmHg in healthy lungs) and the rest are local
    defaults. Below ``apnoea_rr_bpm`` no breaths are detected: EtCO2 and RR read 0.
    Artefacts (sampling-line occlusion or disconnection) give missing readings.
    """

    gradient_mmhg: float = 4.0
    averaging_s: float = 10.0
    noise_sd_mmhg: float = 1.0
    noise_corr_s: float = 10.0
    resolution_mmhg: float = 1.0
    rr_noise_sd_bpm: float = 1.0
    apnoea_rr_bpm: float = 2.0
    artefacts: Artefacts | None = field(
        default_factory=lambda: Artefacts(rate_per_h=0.5, duration_s=(10.0, 120.0))
    )

    def validated(self) -> CapnographSpec:
        check_number("etco2.gradient_mmhg", self.gradient_mmhg, lo=0.0, hi=40.0, unit="mmHg")
        check_number("etco2.averaging_s", self.averaging_s, lo=0.0, hi=120.0, unit="s")
        check_number("etco2.noise_sd_mmhg", self.noise_sd_mmhg, lo=0.0, hi=20.0)
        check_number("etco2.noise_corr_s", self.noise_corr_s, lo=0.0, hi=3600.0, unit="s")
        check_number("etco2.resolution_mmhg", self.resolution_mmhg, lo=0.0, hi=10.0)
        check_number("etco2.rr_noise_sd_bpm", self.rr_noise_sd_bpm, lo=0.0, hi=20.0)
        check_number("etco2.apnoea_rr_bpm", self.apnoea_rr_bpm, lo=0.0, hi=20.0, unit="/min")
        if self.artefacts is not None:
            self.artefacts.validated("etco2.artefacts")
        return self


@dataclass(frozen=True)
class RespiratoryReadings:
    """What the monitors show, plus the true gases behind them; NaN = no reading."""

    spo2_pct: Array
    etco2_mmhg: Array
    resp_rate_bpm: Array
    true: BloodGases


def _quantize(x: Array, step: float) -> Array:
    return np.round(x / step) * step + 0.0 if step > 0.0 else x  # + 0.0: no "-0"


class _Channel:
    """Smoothing + OU noise + artefacts for one displayed quantity, for ``N`` patients."""

    def __init__(
        self,
        n: int,
        averaging_s: float,
        noise: tuple[float, float, np.random.Generator] | None,
        artefacts: tuple[Artefacts, np.random.Generator] | None,
    ) -> None:
        self.smooth = Smoother(averaging_s / 120.0)  # tau = window / 2, in minutes
        self.noise = OuNoise(n, noise[0], noise[1] / 60.0, noise[2]) if noise else None
        self.episodes = Episodes(n, *artefacts) if artefacts else None

    def step(self, dt: float | None, x: Array) -> tuple[Array, NDArray[np.bool_]]:
        """``(shown, missing)``; a spurious fall enters before the averaging."""
        missing = np.zeros(x.shape[0], dtype=bool)
        if self.episodes is not None:
            missing, low = self.episodes.step(dt)
            x = x - low
        y = self.smooth.step(dt, x)
        if self.noise is not None:
            y = y + self.noise.step(dt)
        return y, missing


_STREAMS = ("bias", "spo2_noise", "spo2_artefacts", "co2_noise", "co2_artefacts", "rr_noise")


class RespiratoryMonitor:
    """Gas exchange plus pulse oximeter and capnograph, for ``N`` patients.

    :meth:`measure` takes ``(N,)`` ventilation fractions (and optionally respiratory-rate
    fractions; by default the rate falls in proportion to ventilation, a local assumption
    matching opioid bradypnoea) held since the previous call. :meth:`readings` is the batch
    form over ``(N, T)`` inputs spaced ``dt_min`` apart and gives the same numbers. Gases
    start at the baseline steady state, so the first call shows baseline whatever its input.
    ``noise=False`` leaves the true gases behind averaging, gradient and resolution.
    """

    def __init__(
        self,
        baseline: RespiratoryBaseline | None = None,
        *,
        seed: int | None = None,
        noise: bool = True,
        spo2: PulseOximeterSpec | None = None,
        etco2: CapnographSpec | None = None,
    ) -> None:
        if not isinstance(noise, bool):
            raise InputError("noise", noise, "must be True or False")
        self.baseline = (baseline or RespiratoryBaseline()).validated()
        self.noise = noise
        self.seed = check_seed(seed, needed=noise)
        self.spo2 = (spo2 or PulseOximeterSpec()).validated()
        self.etco2 = (etco2 or CapnographSpec()).validated()
        self.reset()

    def reset(self) -> None:
        """Forget the streaming state; the next :meth:`measure` starts at baseline."""
        self._n: int | None = None
        self._clock = Clock()

    def _start(self, n: int) -> None:
        self._n = n
        self._gas = GasExchange(n, self.baseline)
        s, c = self.spo2, self.etco2
        if self.seed is None or not self.noise:
            self._bias = np.zeros(n)
            self._sat = _Channel(n, s.averaging_s, None, None)
            self._co2 = _Channel(n, c.averaging_s, None, None)
            self._rr_noise: OuNoise | None = None
        else:
            r = spawn(self.seed, _STREAMS)
            self._bias = s.bias_sd_pct * r["bias"].standard_normal(n)
            self._sat = _Channel(
                n,
                s.averaging_s,
                (s.noise_sd_pct, s.noise_corr_s, r["spo2_noise"]),
                (s.artefacts, r["spo2_artefacts"]) if s.artefacts else None,
            )
            self._co2 = _Channel(
                n,
                c.averaging_s,
                (c.noise_sd_mmhg, c.noise_corr_s, r["co2_noise"]),
                (c.artefacts, r["co2_artefacts"]) if c.artefacts else None,
            )
            self._rr_noise = OuNoise(n, c.rr_noise_sd_bpm, c.noise_corr_s / 60.0, r["rr_noise"])
        self._rr = Smoother(c.averaging_s / 120.0)

    def measure(
        self,
        t_min: float,
        ventilation_fraction: ArrayLike,
        resp_rate_fraction: ArrayLike | None = None,
    ) -> RespiratoryReadings:
        """Readings at ``t_min`` (minutes, non-decreasing) after the given ventilation."""
        v = as_row("ventilation_fraction", ventilation_fraction, self._n, lo=0.0, hi=5.0)
        rf = (
            v
            if resp_rate_fraction is None
            else as_row("resp_rate_fraction", resp_rate_fraction, v.shape[0], lo=0.0, hi=5.0)
        )
        dt = self._clock.advance(t_min)
        if self._n is None:
            self._start(v.shape[0])
        return self._step(dt, v, rf)

    def _step(self, dt: float | None, v: Array, rf: Array) -> RespiratoryReadings:
        if dt:
            self._gas.advance(dt, v)
        gases = self._gas.gases()
        s, c = self.spo2, self.etco2
        # pulse oximeter
        sat, sat_missing = self._sat.step(dt, gases.sao2_pct + self._bias)
        spo2 = np.clip(_quantize(sat, s.resolution_pct), 0.0, 100.0)
        spo2 = np.where(sat_missing, np.nan, spo2)
        # capnograph: breaths seen, their rate and end-tidal CO2
        rr_true = self.baseline.resp_rate_bpm * rf
        rr = self._rr.step(dt, rr_true)
        if self._rr_noise is not None:
            rr = rr + self._rr_noise.step(dt)
        co2, co2_missing = self._co2.step(dt, np.maximum(gases.paco2_mmhg - c.gradient_mmhg, 0.0))
        apnoea = rr_true < c.apnoea_rr_bpm
        etco2 = np.where(apnoea, 0.0, np.maximum(_quantize(co2, c.resolution_mmhg), 0.0))
        rr_shown = np.where(apnoea, 0.0, np.maximum(np.round(rr), 0.0))
        etco2 = np.where(co2_missing, np.nan, etco2)
        rr_shown = np.where(co2_missing, np.nan, rr_shown)
        return RespiratoryReadings(spo2, etco2, rr_shown, gases)

    def readings(
        self,
        ventilation_fraction: ArrayLike,
        resp_rate_fraction: ArrayLike | None = None,
        *,
        dt_min: float = 1.0,
    ) -> RespiratoryReadings:
        """Batch form: ``(N, T)`` inputs, column ``j`` at ``j * dt_min``; arrays ``(N, T)``.

        Starts from the seed and leaves the streaming state alone.
        """
        v = as_matrix("ventilation_fraction", ventilation_fraction, lo=0.0, hi=5.0)
        rf = (
            v
            if resp_rate_fraction is None
            else as_matrix("resp_rate_fraction", resp_rate_fraction, lo=0.0, hi=5.0)
        )
        if rf.shape != v.shape:
            raise InputError("resp_rate_fraction", f"shape {rf.shape}", f"must match {v.shape}")
        dt = check_number("dt_min", dt_min, lo=0.0, lo_open=True, unit="min")
        run = RespiratoryMonitor(
            self.baseline, seed=self.seed, noise=self.noise, spo2=self.spo2, etco2=self.etco2
        )
        run._start(v.shape[0])
        cols = [run._step(dt if j else None, v[:, j], rf[:, j]) for j in range(v.shape[1])]
        return RespiratoryReadings(
            np.stack([r.spo2_pct for r in cols], axis=1),
            np.stack([r.etco2_mmhg for r in cols], axis=1),
            np.stack([r.resp_rate_bpm for r in cols], axis=1),
            BloodGases(
                np.stack([r.true.paco2_mmhg for r in cols], axis=1),
                np.stack([r.true.pao2_mmhg for r in cols], axis=1),
                np.stack([r.true.sao2_pct for r in cols], axis=1),
            ),
        )
