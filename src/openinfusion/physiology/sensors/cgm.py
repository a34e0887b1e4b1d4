"""Continuous glucose monitor (CGM): noise, lag, calibration drift, dropouts, compression lows.

A reading at sample ``k`` (time ``t_k = k * sample_time_min``) is::

    IG     = first-order lag of BG, time constant lag_min          (blood -> interstitium)
    CGM_k  = gain(t_k) * IG(t_k) + offset(t_k)                     (calibration drift)
             + eps_k                                               (Breton & Kovatchev noise)
             - compression(t_k)                                    (night-time pressure lows)
    CGM_k  = clip(CGM_k, min, max);  NaN where a dropout hides it
    output = CGM_k held (zero-order hold) until the next sample

Sources
-------
* Noise: Breton M, Kovatchev B. Analysis, modeling, and simulation of the accuracy of
  continuous glucose sensors. J Diabetes Sci Technol 2008;2(5):853-862. Parameters (PACF and
  Johnson S_U) as tabulated in simglucose's ``params/sensor_params.csv`` (MIT). A 15-min
  sequence ``e_1 = v_1``, ``e_n = PACF (e_{n-1} + v_n)``, ``v ~ N(0, 1)``, is mapped by
  ``eps = xi + lambda sinh((e - gamma) / delta)`` and interpolated to the sample time by a
  not-a-knot cubic spline through 11 knots per 150-min block (the last knot of a block is the
  first of the next), the interpolant simglucose uses (scipy ``interp1d`` "cubic").
* Lag: first-order blood-to-interstitial glucose kinetics (Rebrin K et al., Am J Physiol
  1999;277:E561-E571; Facchinetti A et al., IEEE Trans Biomed Eng 2014;61(3):620-629). Time
  constants of about 5-10 min are reported; the default 0 suits glucose that is already
  subcutaneous (the UVA/Padova ``Gs`` state).
* Drift: the time-varying calibration error ``gain(t) IG + offset(t)`` with second-order
  polynomials in days of wear follows Facchinetti et al. 2014; the Dexcom G6 mean curves are
  Vettoretti M et al., IEEE EMBC 2019 (table 1, as tabulated in LoopInsighT1, MIT). The
  per-sensor random deviations are local choices.
* Compression lows: pressure on the sensor site during sleep gives transient false lows
  (Mensh BD et al., J Diabetes Sci Technol 2013;7(4):863-870); Emami A, Rabasa-Lhoret R,
  Haidar A (Diabetes Technol Ther, "Enhancing glucose sensor models: modeling the
  drop-outs") estimated about 1.7 such drop-outs per day. Episode shape, depth, duration
  and default rate are local.
* Dropouts (missing readings): local model.

Randomness: each component draws from its own stream spawned from ``seed``, in fixed blocks of
time, so the streaming form returns exactly the batch numbers. Draws are shaped ``(N, ...)``:
a patient's numbers depend on the cohort size ``N``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openinfusion.errors import InputError
from openinfusion.physiology.sensors._common import (
    Array,
    Clock,
    as_matrix,
    as_row,
    check_number,
    check_range,
    check_seed,
    spawn,
)

MIN_PER_DAY = 1440.0
KNOT_MIN = 15.0  # Breton & Kovatchev noise is defined on a 15-min grid
KNOTS_PER_BLOCK = 10  # spline blocks of 10 x 15 min, as simglucose


@dataclass(frozen=True)
class CgmPreset:
    """A sensor: Breton & Kovatchev noise parameters, sample time and reporting range."""

    name: str
    pacf: float
    gamma: float
    lambda_: float
    delta: float
    xi: float
    sample_time_min: int
    min_mg_dl: float
    max_mg_dl: float

    def validated(self) -> CgmPreset:
        check_number("preset.pacf", self.pacf, lo=0.0, hi=0.999)
        check_number("preset.delta", self.delta, lo=0.0, lo_open=True)
        check_number("preset.lambda_", self.lambda_, lo=0.0, lo_open=True)
        check_number("preset.gamma", self.gamma)
        check_number("preset.xi", self.xi)
        st = self.sample_time_min
        if isinstance(st, bool) or not isinstance(st, int) or not 1 <= st <= 60:
            raise InputError("preset.sample_time_min", st, "must be a whole number of minutes 1-60")
        check_range(
            "preset.min_mg_dl/max_mg_dl", (self.min_mg_dl, self.max_mg_dl), lo=0.0, unit="mg/dL"
        )
        return self


# Breton & Kovatchev, JDST 2008, as tabulated in simglucose's sensor_params.csv (MIT).
_BK2008 = {"pacf": 0.7, "gamma": -0.5444, "lambda_": 15.9574, "delta": 1.6898, "xi": -5.47}

CGM_PRESETS: dict[str, CgmPreset] = {
    "Dexcom": CgmPreset("Dexcom", **_BK2008, sample_time_min=3, min_mg_dl=39.0, max_mg_dl=600.0),
    "GuardianRT": CgmPreset(
        "GuardianRT", **_BK2008, sample_time_min=5, min_mg_dl=39.0, max_mg_dl=600.0
    ),
    "Navigator": CgmPreset(
        "Navigator", **_BK2008, sample_time_min=1, min_mg_dl=32.0, max_mg_dl=600.0
    ),
}


@dataclass(frozen=True)
class CgmDrift:
    """Slow calibration error over a sensor's wear: ``gain(t) IG + offset(t)``.

    ``gain`` and ``offset_mg_dl`` are polynomial coefficients ``(c0, c1 per day, c2 per day^2)``
    in days since the current sensor session began (Facchinetti et al. 2014). Each session
    (``session_days`` long; a new sensor after that) and patient adds Gaussian deviations to
    the constant and linear terms; those SDs are local defaults.
    """

    gain: tuple[float, float, float] = (1.0, 0.0, 0.0)
    offset_mg_dl: tuple[float, float, float] = (0.0, 0.0, 0.0)
    gain_sd: float = 0.05
    gain_slope_sd_per_day: float = 0.01
    offset_sd_mg_dl: float = 5.0
    offset_slope_sd_mg_dl_per_day: float = 1.0
    session_days: float = 10.0

    @classmethod
    def dexcom_g6(cls) -> CgmDrift:
        """Mean Dexcom G6 curves, Vettoretti et al. EMBC 2019 table 1 (local deviations)."""
        return cls(gain=(1.048, -0.033, 0.002), offset_mg_dl=(-6.398, 6.179, -0.448))

    def validated(self) -> CgmDrift:
        for name, poly in (("drift.gain", self.gain), ("drift.offset_mg_dl", self.offset_mg_dl)):
            if not isinstance(poly, tuple | list) or len(poly) != 3:
                raise InputError(name, poly, "must be three coefficients (c0, c1/day, c2/day^2)")
            for c in poly:
                check_number(name, c)
        check_number("drift.gain_sd", self.gain_sd, lo=0.0, hi=1.0)
        check_number("drift.gain_slope_sd_per_day", self.gain_slope_sd_per_day, lo=0.0, hi=1.0)
        check_number("drift.offset_sd_mg_dl", self.offset_sd_mg_dl, lo=0.0, hi=100.0)
        check_number(
            "drift.offset_slope_sd_mg_dl_per_day", self.offset_slope_sd_mg_dl_per_day, lo=0.0
        )
        check_number("drift.session_days", self.session_days, lo=0.0, lo_open=True, unit="days")
        return self


@dataclass(frozen=True)
class CgmDropout:
    """Missing readings: gaps start at ``rate_per_day`` (Poisson) and last ``gap_min`` (uniform).

    Local model of signal loss (radio, warm-up faults); readings inside a gap are NaN.
    """

    rate_per_day: float = 2.0
    gap_min: tuple[float, float] = (5.0, 60.0)

    def validated(self) -> CgmDropout:
        check_number("dropout.rate_per_day", self.rate_per_day, lo=0.0, hi=1440.0, unit="/day")
        check_range("dropout.gap_min", self.gap_min, lo=0.0, hi=MIN_PER_DAY, unit="min")
        return self


@dataclass(frozen=True)
class CompressionLows:
    """Night-time pressure-induced false lows (shape, depth, duration and rate are local).

    Per night (``night_h`` clock hours, start and end) a Poisson number of episodes, at most
    ``max_per_night``, each a trapezoid dip of ``depth_mg_dl`` lasting ``duration_min``, with
    ``ramp_min`` to fall and to recover.
    """

    rate_per_night: float = 1.0
    night_h: tuple[float, float] = (23.0, 7.0)
    depth_mg_dl: tuple[float, float] = (30.0, 50.0)
    duration_min: tuple[float, float] = (20.0, 60.0)
    ramp_min: float = 5.0
    max_per_night: int = 3

    def validated(self) -> CompressionLows:
        check_number("compression.rate_per_night", self.rate_per_night, lo=0.0, hi=100.0)
        if not isinstance(self.night_h, tuple | list) or len(self.night_h) != 2:
            raise InputError("compression.night_h", self.night_h, "must be (start, end) hours")
        a = check_number("compression.night_h", self.night_h[0], lo=0.0, hi=24.0, unit="h")
        b = check_number("compression.night_h", self.night_h[1], lo=0.0, hi=24.0, unit="h")
        if (b - a) % 24.0 == 0.0:
            raise InputError("compression.night_h", self.night_h, "start and end must differ")
        check_range("compression.depth_mg_dl", self.depth_mg_dl, lo=0.0, unit="mg/dL")
        check_range("compression.duration_min", self.duration_min, lo=0.0, unit="min")
        check_number("compression.ramp_min", self.ramp_min, lo=0.0, unit="min")
        m = self.max_per_night
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 20:
            raise InputError("compression.max_per_night", m, "must be a whole number 1-20")
        return self


def johnson_su(e: ArrayLike, preset: CgmPreset) -> Array:
    """Johnson S_U transform ``xi + lambda sinh((e - gamma) / delta)`` in mg/dL."""
    x = np.asarray(e, dtype=np.float64)
    return np.asarray(preset.xi + preset.lambda_ * np.sinh((x - preset.gamma) / preset.delta))


def lag_coefficients(dt_min: float, tau_min: float) -> tuple[float, float, float]:
    """``(a, b0, b1)`` with ``y1 = a y0 + b0 u0 + b1 u1``: exact first-order lag of a ramp input.

    For ``tau dy/dt = u - y`` with ``u`` linear from ``u0`` to ``u1`` over ``dt_min``.
    """
    a = math.exp(-dt_min / tau_min)
    r = tau_min / dt_min * (1.0 - a)
    return a, r - a, 1.0 - r


@lru_cache(maxsize=64)
def _spline_weights(rel_min: tuple[float, ...]) -> Array:
    """Matrix ``W`` with ``values = W @ knots``: not-a-knot cubic spline through the
    ``KNOTS_PER_BLOCK + 1`` knots of a block (15 min apart) evaluated at ``rel_min``.

    The same interpolant as scipy's ``interp1d(kind="cubic")`` that simglucose uses.
    Second derivatives ``M`` solve ``M[i-1] + 4 M[i] + M[i+1] = 6 (y[i-1] - 2 y[i] +
    y[i+1]) / h^2`` inside, with a continuous third derivative at the second and the
    second-to-last knot (not-a-knot).
    """
    n, h = KNOTS_PER_BLOCK, KNOT_MIN
    a = np.zeros((n + 1, n + 1))
    rhs = np.zeros((n + 1, n + 1))
    a[0, 0:3] = (1.0, -2.0, 1.0)
    a[n, n - 2 : n + 1] = (1.0, -2.0, 1.0)
    for j in range(1, n):
        a[j, j - 1 : j + 2] = (1.0, 4.0, 1.0)
        rhs[j, j - 1 : j + 2] = np.array([1.0, -2.0, 1.0]) * 6.0 / h**2
    m_of_y = np.linalg.solve(a, rhs)  # knots -> second derivatives
    x = np.asarray(rel_min, dtype=np.float64)
    i = np.clip(np.floor(x / h).astype(np.intp), 0, n - 1)
    t = x / h - i
    rows = np.arange(x.shape[0])
    linear = np.zeros((x.shape[0], n + 1))
    curve = np.zeros((x.shape[0], n + 1))
    linear[rows, i], linear[rows, i + 1] = 1.0 - t, t
    curve[rows, i] = h**2 / 6.0 * ((1.0 - t) ** 3 - (1.0 - t))
    curve[rows, i + 1] = h**2 / 6.0 * (t**3 - t)
    return np.asarray(linear + curve @ m_of_y)


class _Normals(Protocol):
    def standard_normal(self, size: tuple[int, int]) -> Array: ...


# -- random processes on the sample grid, built block by block ------------------------------


class _Blocked(ABC):
    """Values on the sample grid ``k = 0, 1, ...`` made in consecutive blocks and cached.

    Blocks are always made in order, so the numbers drawn do not depend on how (batch or
    streaming) or in which pieces the samples are asked for. Subclasses give the block
    boundaries in minutes.
    """

    def __init__(self, n: int, st: int) -> None:
        self.n = n
        self.st = st
        self._blocks: dict[int, Array] = {}
        self._made = 0  # blocks 0 .. _made - 1 have been drawn

    @abstractmethod
    def _edges_min(self, b: int) -> tuple[float, float]:
        """Start and end of block ``b`` (minutes of wear)."""

    @abstractmethod
    def _make(self, b: int, t_min: Array) -> Array:
        """Block ``b`` at sample times ``t_min``: shape ``(..., N, len(t_min))``."""

    def _block_of(self, k: int) -> int:
        b = max(self._made - 1, 0)
        t = k * self.st
        while self._edges_min(b)[0] > t:
            b -= 1
        while self._edges_min(b)[1] <= t:
            b += 1
        return b

    def _samples(self, b: int) -> tuple[int, int]:
        lo, hi = self._edges_min(b)
        return max(0, math.ceil(lo / self.st)), max(0, math.ceil(hi / self.st))

    def take(self, k0: int, k1: int) -> Array:
        """Values for samples ``k0 .. k1 - 1``; earlier blocks are then forgotten."""
        b0, b1 = self._block_of(k0), self._block_of(k1 - 1)
        while self._made <= b1:
            lo, hi = self._samples(self._made)
            t = np.arange(lo, hi, dtype=np.float64) * self.st
            self._blocks[self._made] = self._make(self._made, t)
            self._made += 1
        parts = []
        for b in range(b0, b1 + 1):
            lo, hi = self._samples(b)
            parts.append(self._blocks[b][..., max(k0, lo) - lo : min(k1, hi) - lo])
        for b in [b for b in self._blocks if b < b0]:
            del self._blocks[b]
        return np.concatenate(parts, axis=-1)


class _BretonNoise(_Blocked):
    """Breton & Kovatchev noise ``eps`` (mg/dL) at each sample."""

    def __init__(self, n: int, preset: CgmPreset, rng: _Normals) -> None:
        self.preset = preset
        self.rng = rng
        self._e: Array | None = None  # AR state at the last knot
        self._eps: Array | None = None  # eps at the last knot
        super().__init__(n, preset.sample_time_min)

    def _edges_min(self, b: int) -> tuple[float, float]:
        span = KNOTS_PER_BLOCK * KNOT_MIN
        return b * span, (b + 1) * span

    def _make(self, b: int, t_min: Array) -> Array:
        p = self.preset
        first = self._e is None
        v = self.rng.standard_normal((self.n, KNOTS_PER_BLOCK + (1 if first else 0)))
        e = np.empty((self.n, KNOTS_PER_BLOCK + 1))
        if self._e is None:
            e[:, 0] = v[:, 0]
            v = v[:, 1:]
        else:
            e[:, 0] = self._e
        for j in range(KNOTS_PER_BLOCK):
            e[:, j + 1] = p.pacf * (e[:, j] + v[:, j])
        eps = johnson_su(e, p)
        if self._eps is not None:
            eps[:, 0] = self._eps  # the shared knot keeps exactly its value
        self._e, self._eps = e[:, -1].copy(), eps[:, -1].copy()
        rel = t_min - b * KNOTS_PER_BLOCK * KNOT_MIN
        # einsum, not BLAS matmul: small products, same bits on every call
        return np.asarray(np.einsum("nk,mk->nm", eps, _spline_weights(tuple(rel.tolist()))))


class _Drift(_Blocked):
    """``(gain, offset)`` at each sample, shape ``(2, N, m)``, new coefficients per session."""

    def __init__(self, n: int, st: int, spec: CgmDrift, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        super().__init__(n, st)

    def _edges_min(self, b: int) -> tuple[float, float]:
        span = self.spec.session_days * MIN_PER_DAY
        return b * span, (b + 1) * span

    def _make(self, b: int, t_min: Array) -> Array:
        s = self.spec
        z = self.rng.standard_normal((4, self.n))
        day = (t_min - self._edges_min(b)[0]) / MIN_PER_DAY
        a0 = s.gain[0] + s.gain_sd * z[0]
        a1 = s.gain[1] + s.gain_slope_sd_per_day * z[1]
        b0 = s.offset_mg_dl[0] + s.offset_sd_mg_dl * z[2]
        b1 = s.offset_mg_dl[1] + s.offset_slope_sd_mg_dl_per_day * z[3]
        gain = a0[:, None] + a1[:, None] * day + s.gain[2] * day**2
        offset = b0[:, None] + b1[:, None] * day + s.offset_mg_dl[2] * day**2
        return np.stack([gain, offset])


class _Dropout(_Blocked):
    """1.0 where a reading is missing, else 0.0, shape ``(N, m)``; gaps run across blocks."""

    def __init__(self, n: int, st: int, spec: CgmDropout, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self._left = np.zeros(n, dtype=np.int64)  # samples still missing
        super().__init__(n, st)

    def _edges_min(self, b: int) -> tuple[float, float]:
        return b * MIN_PER_DAY, (b + 1) * MIN_PER_DAY

    def _make(self, b: int, t_min: Array) -> Array:
        m = t_min.shape[0]
        u = self.rng.random((2, self.n, m))
        p = 1.0 - math.exp(-self.spec.rate_per_day * self.st / MIN_PER_DAY)
        lo, hi = self.spec.gap_min
        length = np.maximum(np.ceil((lo + (hi - lo) * u[1]) / self.st), 1).astype(np.int64)
        out = np.zeros((self.n, m))
        left = self._left
        for j in range(m):
            left = np.where((left == 0) & (u[0, :, j] < p), length[:, j], left)
            out[:, j] = left > 0
            left = np.maximum(left - 1, 0)
        self._left = left
        return out


class _Compression(_Blocked):
    """Depth of the compression dip (mg/dL, >= 0) at each sample, shape ``(N, m)``."""

    def __init__(
        self, n: int, st: int, spec: CompressionLows, start_clock_h: float, rng: np.random.Generator
    ) -> None:
        self.spec = spec
        self.rng = rng
        start, end = spec.night_h
        self._offset = ((start - start_clock_h) * 60.0) % MIN_PER_DAY
        self._night = ((end - start) * 60.0) % MIN_PER_DAY
        super().__init__(n, st)

    def _edges_min(self, b: int) -> tuple[float, float]:
        # block b runs from the start of one night to the start of the next; block 0 holds t=0
        lo = self._offset + (b - 1) * MIN_PER_DAY
        return lo, lo + MIN_PER_DAY

    def _make(self, b: int, t_min: Array) -> Array:
        s = self.spec
        count = np.minimum(self.rng.poisson(s.rate_per_night, self.n), s.max_per_night)
        u = self.rng.random((3, self.n, s.max_per_night))
        d_lo, d_hi = s.duration_min
        dur = np.minimum(d_lo + (d_hi - d_lo) * u[0], self._night)
        start = self._edges_min(b)[0] + u[1] * (self._night - dur)
        depth = s.depth_mg_dl[0] + (s.depth_mg_dl[1] - s.depth_mg_dl[0]) * u[2]
        out = np.zeros((self.n, t_min.shape[0]))
        for j in range(s.max_per_night):
            tau = t_min[None, :] - start[:, j : j + 1]
            d = dur[:, j : j + 1]
            ramp = np.minimum(s.ramp_min, d / 2.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                edge = np.where(ramp > 0, np.minimum(tau, d - tau) / ramp, 1.0)
            shape = np.where((tau >= 0) & (tau < d), np.clip(edge, 0.0, 1.0), 0.0)
            on = (j < count)[:, None]
            out = np.maximum(out, np.where(on, depth[:, j : j + 1] * shape, 0.0))
        return out


# -- the sensor -------------------------------------------------------------------------------


_T = TypeVar("_T")


def _option(value: _T | bool | None, default: type[_T], field: str) -> _T | None:
    if value is None or value is False:
        return None
    if value is True:
        return default()
    if not isinstance(value, default):
        raise InputError(field, value, f"must be True, False, None or a {default.__name__}")
    return value


class _Errors:
    """The random error components of one sensor run, for ``N`` patients."""

    def __init__(self, sensor: CgmSensor, n: int) -> None:
        assert sensor.seed is not None
        rng = spawn(sensor.seed, ("noise", "drift", "dropout", "compression"))
        st = sensor.preset.sample_time_min
        self.noise = _BretonNoise(n, sensor.preset, rng["noise"])
        self.drift = _Drift(n, st, sensor.drift, rng["drift"]) if sensor.drift else None
        self.dropout = _Dropout(n, st, sensor.dropout, rng["dropout"]) if sensor.dropout else None
        self.compression = (
            _Compression(n, st, sensor.compression, sensor.start_clock_h, rng["compression"])
            if sensor.compression
            else None
        )

    def apply(self, k0: int, k1: int, ig: Array, lo: float, hi: float) -> Array:
        y = ig
        if self.drift is not None:
            gain, offset = self.drift.take(k0, k1)
            y = gain * y + offset
        y = y + self.noise.take(k0, k1)
        if self.compression is not None:
            y = y - self.compression.take(k0, k1)
        y = np.clip(y, lo, hi)
        if self.dropout is not None:
            y = np.where(self.dropout.take(k0, k1) > 0.5, np.nan, y)
        return y


class CgmSensor:
    """A CGM for ``N`` patients, in batch (:meth:`readings`) or streaming (:meth:`measure`) form.

    ``preset`` is a name in :data:`CGM_PRESETS` or a :class:`CgmPreset`. ``noise=False``
    turns off every random component (noise, drift, dropouts, compression) and leaves the lag,
    sampling, hold and reporting range. ``drift``, ``dropout`` and ``compression`` take True
    (defaults), a parameter object, or None/False (off). ``start_clock_h`` is the clock time of
    ``t_min = 0``, used for night-time compression.
    """

    def __init__(
        self,
        preset: str | CgmPreset = "Dexcom",
        *,
        seed: int | None = None,
        noise: bool = True,
        lag_min: float = 0.0,
        drift: CgmDrift | bool | None = None,
        dropout: CgmDropout | bool | None = None,
        compression: CompressionLows | bool | None = None,
        start_clock_h: float = 0.0,
    ) -> None:
        if isinstance(preset, str):
            found = {k.lower(): v for k, v in CGM_PRESETS.items()}.get(preset.strip().lower())
            if found is None:
                raise InputError("preset", preset, f"must be one of {', '.join(CGM_PRESETS)}")
            preset = found
        if not isinstance(preset, CgmPreset):
            raise InputError("preset", preset, "must be a preset name or a CgmPreset")
        if not isinstance(noise, bool):
            raise InputError("noise", noise, "must be True or False")
        self.preset = preset.validated()
        self.noise = noise
        self.seed = check_seed(seed, needed=noise)
        self.lag_min = check_number("lag_min", lag_min, lo=0.0, hi=120.0, unit="min")
        d = _option(drift, CgmDrift, "drift")
        o = _option(dropout, CgmDropout, "dropout")
        c = _option(compression, CompressionLows, "compression")
        self.drift = d.validated() if d and noise else None
        self.dropout = o.validated() if o and noise else None
        self.compression = c.validated() if c and noise else None
        self.start_clock_h = check_number("start_clock_h", start_clock_h, lo=0.0, hi=24.0, unit="h")
        self.reset()

    @property
    def sample_time_min(self) -> int:
        """Minutes between readings."""
        return self.preset.sample_time_min

    def reset(self) -> None:
        """Forget the streaming state: the next :meth:`measure` starts a new sensor at its seed."""
        self._n: int | None = None
        self._clock = Clock()
        self._errors: _Errors | None = None
        self._ig: Array = np.zeros(0)
        self._bg: Array = np.zeros(0)
        self._held: Array = np.zeros(0)
        self._k = -1

    def readings(self, bg_mg_dl: ArrayLike) -> Array:
        """CGM readings (mg/dL, NaN = missing) for per-minute BG of shape ``(N, T)``.

        Column ``j`` is minute ``j`` of sensor wear. Each call starts from the seed and leaves
        the streaming state alone.
        """
        bg = as_matrix("bg_mg_dl", bg_mg_dl, lo=0.0, unit="mg/dL")
        _positive(bg)
        n, t = bg.shape
        ig = bg
        if self.lag_min > 0.0:
            a, b0, b1 = lag_coefficients(1.0, self.lag_min)
            ig = np.empty_like(bg)
            x = bg[:, 0].copy()
            ig[:, 0] = x
            for j in range(1, t):
                x = a * x + b0 * bg[:, j - 1] + b1 * bg[:, j]
                ig[:, j] = x
        st = self.sample_time_min
        k = (t - 1) // st + 1
        errors = _Errors(self, n) if self.noise else None
        lo, hi = self.preset.min_mg_dl, self.preset.max_mg_dl
        at_samples = ig[:, np.arange(k) * st]
        r = errors.apply(0, k, at_samples, lo, hi) if errors else np.clip(at_samples, lo, hi)
        return np.asarray(r[:, np.arange(t) // st])

    def measure(self, t_min: float, bg_mg_dl: ArrayLike) -> Array:
        """The reading shown at ``t_min`` (minutes of wear) given BG ``(N,)`` at that time.

        Call with non-decreasing times; called every minute from 0 it returns exactly
        :meth:`readings`. BG is taken as linear between calls; a repeated time returns the
        held reading unchanged.
        """
        bg = as_row("bg_mg_dl", bg_mg_dl, self._n, lo=0.0, unit="mg/dL")
        _positive(bg)
        dt = self._clock.advance(t_min)
        assert self._clock.t_min is not None
        if self._n is None:
            self._n = bg.shape[0]
            self._errors = _Errors(self, self._n) if self.noise else None
            self._ig = bg.copy()
            self._held = np.full(self._n, np.nan)
        elif dt == 0.0:
            return self._held.copy()
        elif self.lag_min > 0.0:
            assert dt is not None
            a, b0, b1 = lag_coefficients(dt, self.lag_min)
            self._ig = a * self._ig + b0 * self._bg + b1 * bg
        else:
            self._ig = bg.copy()
        self._bg = bg
        k = math.floor(self._clock.t_min / self.sample_time_min)
        if k > self._k:
            lo, hi = self.preset.min_mg_dl, self.preset.max_mg_dl
            ig = self._ig[:, None]
            r = self._errors.apply(k, k + 1, ig, lo, hi) if self._errors else np.clip(ig, lo, hi)
            self._held = r[:, 0]
            self._k = k
        return self._held.copy()


def _positive(bg: NDArray[np.float64]) -> None:
    if np.any(bg <= 0.0):
        raise InputError("bg_mg_dl", f"{bg.min():g} mg/dL", "blood glucose must be > 0 mg/dL")
