"""Shared pieces of the sensor models: input checks, seeded streams, filters, episodes.

Everything here is vectorized over ``N`` patients (arrays of shape ``(N,)``) and advances by
an arbitrary time step, so a streaming sensor and its batch form share one code path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openinfusion.errors import InputError

Array = NDArray[np.float64]


# -- input checks ----------------------------------------------------------------------------


def check_number(
    field: str,
    value: object,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    unit: str = "",
) -> float:
    """``value`` as a finite float within ``[lo, hi]`` (``(lo, hi]`` if ``lo_open``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InputError(field, value, "must be a number")
    x = float(value)
    if not math.isfinite(x):
        raise InputError(field, value, "must be finite")
    suffix = f" {unit}" if unit else ""
    if lo is not None and (x < lo or (lo_open and x == lo)):
        rule = f"must be > {lo:g}{suffix}" if lo_open else f"must be >= {lo:g}{suffix}"
        raise InputError(field, value, rule)
    if hi is not None and x > hi:
        raise InputError(field, value, f"must be <= {hi:g}{suffix}")
    return x


def check_range(
    field: str, value: object, *, lo: float | None = None, hi: float | None = None, unit: str = ""
) -> tuple[float, float]:
    """A ``(low, high)`` pair of numbers with ``low <= high``, each within ``[lo, hi]``."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise InputError(field, value, "must be a (low, high) pair")
    a = check_number(field, value[0], lo=lo, hi=hi, unit=unit)
    b = check_number(field, value[1], lo=lo, hi=hi, unit=unit)
    if a > b:
        raise InputError(field, value, "low must not exceed high")
    return a, b


def check_seed(seed: object, needed: bool) -> int | None:
    """A non-negative integer seed; required when the model draws random numbers."""
    if seed is None:
        if needed:
            raise InputError(
                "seed", None, "an integer seed is required when noise is on (runs must repeat)"
            )
        return None
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or int(seed) < 0:
        raise InputError("seed", seed, "must be a non-negative integer")
    return int(seed)


def as_row(
    field: str,
    values: ArrayLike,
    n: int | None,
    *,
    lo: float | None = None,
    hi: float | None = None,
    unit: str = "",
) -> Array:
    """``values`` as a finite float array of shape ``(n,)`` (``n`` free when None)."""
    try:
        a = np.array(values, dtype=np.float64, ndmin=1)
    except (TypeError, ValueError):
        raise InputError(field, values, "must be numbers") from None
    if a.ndim != 1 or (n is not None and a.shape[0] != n) or a.shape[0] == 0:
        want = f"({n},)" if n is not None else "(patients,)"
        raise InputError(field, f"shape {a.shape}", f"must have shape {want}")
    _check_values(field, a, lo, hi, unit)
    return a


def as_matrix(
    field: str,
    values: ArrayLike,
    *,
    lo: float | None = None,
    hi: float | None = None,
    unit: str = "",
) -> Array:
    """``values`` as a finite float array of shape ``(N, T)``; a 1-D input is one patient."""
    try:
        a = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(field, values, "must be numbers") from None
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(field, f"shape {a.shape}", "must have shape (patients, samples)")
    _check_values(field, a, lo, hi, unit)
    return a


def _check_values(field: str, a: Array, lo: float | None, hi: float | None, unit: str) -> None:
    suffix = f" {unit}" if unit else ""
    if not np.all(np.isfinite(a)):
        raise InputError(field, "NaN or infinite", "every value must be finite")
    if lo is not None and np.any(a < lo):
        raise InputError(field, f"{a.min():g}{suffix}", f"must be >= {lo:g}{suffix}")
    if hi is not None and np.any(a > hi):
        raise InputError(field, f"{a.max():g}{suffix}", f"must be <= {hi:g}{suffix}")


def spawn(seed: int, names: tuple[str, ...]) -> dict[str, np.random.Generator]:
    """One independent generator per named component, all derived from ``seed``.

    Components draw from their own stream, so switching one on or off never changes the
    numbers of another.
    """
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {name: np.random.default_rng(c) for name, c in zip(names, children, strict=True)}


# -- dynamic elements --------------------------------------------------------------------------


class Clock:
    """Checks that sensor time (minutes) never runs backwards; gives the step since the last call."""

    def __init__(self) -> None:
        self.t_min: float | None = None

    def advance(self, t_min: object) -> float | None:
        """Step in minutes since the previous call (None on the first call)."""
        t = check_number("t_min", t_min, lo=0.0, unit="min")
        if self.t_min is None:
            self.t_min = t
            return None
        if t < self.t_min:
            raise InputError("t_min", t_min, f"must not go back in time (last {self.t_min:g} min)")
        dt = t - self.t_min
        self.t_min = t
        return dt


class Smoother:
    """First-order low-pass, exact for a step input held over each interval.

    A moving average over a window ``W`` delays a ramp by ``W/2``; a first-order filter with
    time constant ``W/2`` has the same mean delay, and works for any step size.
    """

    def __init__(self, tau_min: float) -> None:
        self.tau_min = tau_min
        self.y: Array | None = None

    def step(self, dt_min: float | None, x: Array) -> Array:
        if self.y is None or dt_min is None or self.tau_min <= 0.0:
            self.y = x.copy()
        else:
            a = math.exp(-dt_min / self.tau_min)
            self.y = a * self.y + (1.0 - a) * x
        return self.y


class OuNoise:
    """Ornstein-Uhlenbeck noise: stationary SD ``sd``, correlation time ``tau_min``.

    Exact discretization, so its statistics do not depend on the step size.
    """

    def __init__(self, n: int, sd: float, tau_min: float, rng: np.random.Generator) -> None:
        self.sd = sd
        self.tau_min = tau_min
        self.rng = rng
        self.x = sd * rng.standard_normal(n)

    def step(self, dt_min: float | None) -> Array:
        z = self.rng.standard_normal(self.x.shape[0])
        if dt_min is not None:
            a = math.exp(-dt_min / self.tau_min) if self.tau_min > 0.0 else 0.0
            self.x = a * self.x + self.sd * math.sqrt(1.0 - a * a) * z
        return self.x


@dataclass(frozen=True)
class Artefacts:
    """Episodes of lost or corrupted signal (motion, poor contact, electrocautery, ...).

    Episodes start as a Poisson process (``rate_per_h`` per patient while none is under way)
    and last a uniformly drawn ``duration_s``. During an episode the reading is missing (NaN),
    or, for a ``false_low_fraction`` of episodes, shows a spurious fall of ``false_low_depth``
    (in the reading's own unit) instead. Rates and durations are local defaults.
    """

    rate_per_h: float = 2.0
    duration_s: tuple[float, float] = (5.0, 60.0)
    false_low_fraction: float = 0.0
    false_low_depth: tuple[float, float] = (0.0, 0.0)

    def validated(self, field: str) -> Artefacts:
        check_number(f"{field}.rate_per_h", self.rate_per_h, lo=0.0, hi=3600.0, unit="/h")
        check_range(f"{field}.duration_s", self.duration_s, lo=0.0, hi=86400.0, unit="s")
        check_number(f"{field}.false_low_fraction", self.false_low_fraction, lo=0.0, hi=1.0)
        check_range(f"{field}.false_low_depth", self.false_low_depth, lo=0.0)
        return self


class Episodes:
    """Runs :class:`Artefacts` for ``N`` patients: a fixed number of draws per step."""

    def __init__(self, n: int, spec: Artefacts, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self.left_min = np.zeros(n)
        self.depth = np.zeros(n)
        self.missing = np.zeros(n, dtype=bool)

    def step(self, dt_min: float | None) -> tuple[NDArray[np.bool_], Array]:
        """``(missing, false_low_depth)`` for this step, each shape ``(N,)``."""
        u = self.rng.random((4, self.left_min.shape[0]))
        if dt_min is not None:
            self.left_min = np.maximum(self.left_min - dt_min, 0.0)
        idle = self.left_min <= 0.0
        p = 1.0 - math.exp(-self.spec.rate_per_h * (dt_min or 0.0) / 60.0)
        start = idle & (u[0] < p)
        lo, hi = self.spec.duration_s
        self.left_min = np.where(start, (lo + (hi - lo) * u[1]) / 60.0, self.left_min)
        d_lo, d_hi = self.spec.false_low_depth
        low = u[2] < self.spec.false_low_fraction
        self.depth = np.where(start, np.where(low, d_lo + (d_hi - d_lo) * u[3], 0.0), self.depth)
        self.missing = np.where(start, ~low, self.missing)
        active = self.left_min > 0.0
        return active & self.missing, np.where(active, self.depth, 0.0)
