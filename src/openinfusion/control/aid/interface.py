"""What an automated-insulin-delivery (AID) controller sees and what it may ask for.

Everything is vectorized over N patients: per-patient quantities are arrays of shape (N,),
histories are (N, K). Units are in the names: mg/dL, U, U/h, minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from openinfusion.pump.insulin import insulin_activity, iob

Array = NDArray[np.float64]
CARB_ABSORPTION_MIN = 180.0  # min


@dataclass(frozen=True)
class Profile:
    """Therapy settings of N patients (each field shape (N,) unless noted).

    ``max_daily_basal_u_h`` is the highest scheduled basal of the day (oref0's
    ``max_daily_basal``); ``dia_h`` and ``peak_min`` (scalars) choose the oref0 exponential
    insulin curve (AID_REFERENCE.md §2.3: rapid-acting peak 75 min, DIA ≥ 5 h).
    """

    basal_u_h: Array
    isf_mg_dl_u: Array
    carb_ratio_g_u: Array
    target_mg_dl: Array
    max_basal_u_h: Array
    max_iob_u: Array
    max_daily_basal_u_h: Array
    dia_h: float = 5.0
    peak_min: float = 75.0

    @property
    def n(self) -> int:
        """Number of patients."""
        return int(np.asarray(self.basal_u_h).shape[0])


@lru_cache(maxsize=16)
def _kernels(dia_h: float, peak_min: float) -> tuple[Array, Array]:
    """IOB fraction (1) and activity fraction (1/min) of a unit dose at lags 0..DIA min."""
    lags = range(round(dia_h * 60.0) + 1)
    frac = np.array([iob(float(k), 1.0, dia_h, peak_min) for k in lags])
    act = np.array([insulin_activity(float(k), 1.0, dia_h, peak_min) for k in lags])
    frac.setflags(write=False)
    act.setflags(write=False)
    return frac, act


def iob_fraction(lag_min: Array, dia_h: float, peak_min: float) -> Array:
    """Fraction of a dose still on board ``lag_min`` minutes after it (0 before and after DIA)."""
    frac, _ = _kernels(dia_h, peak_min)
    lag = np.asarray(lag_min, dtype=float)
    out = np.interp(lag, np.arange(frac.size, dtype=float), frac, left=0.0, right=0.0)
    return np.asarray(out)


def activity_fraction(lag_min: Array, dia_h: float, peak_min: float) -> Array:
    """Fraction of a dose acting per minute ``lag_min`` minutes after it (1/min)."""
    _, act = _kernels(dia_h, peak_min)
    lag = np.asarray(lag_min, dtype=float)
    out = np.interp(lag, np.arange(act.size, dtype=float), act, left=0.0, right=0.0)
    return np.asarray(out)


@dataclass(frozen=True)
class Observation:
    """What the controller knows at ``t_min``.

    ``cgm_t_min`` (K,) are the reading times (min, shared by all patients), ``cgm_mg_dl``
    (N, K) the readings (NaN = none). ``insulin_t_min`` (M,) are the starts of one-minute
    delivery intervals and ``insulin_u`` (N, M) the units delivered in each; minutes not in
    the history count as scheduled basal. ``carbs_t_min`` (J,) and ``carbs_g`` (N, J) are
    announced meals (g), assumed absorbed linearly over ``CARB_ABSORPTION_MIN`` (3 h, the
    oref0 minimum remainingCATime, AID_REFERENCE.md §2.3).
    """

    t_min: float
    cgm_t_min: Array
    cgm_mg_dl: Array
    insulin_t_min: Array
    insulin_u: Array
    carbs_t_min: Array
    carbs_g: Array
    profile: Profile

    def cob_g(self, ahead_min: float = 0.0) -> Array:
        """Announced carbohydrate not yet absorbed ``ahead_min`` from now (g)."""
        lag = self.t_min + ahead_min - np.asarray(self.carbs_t_min, dtype=float)
        left = np.where(lag < 0, 0.0, np.clip(1.0 - lag / CARB_ABSORPTION_MIN, 0.0, 1.0))
        return np.asarray(np.asarray(self.carbs_g, dtype=float) @ left)

    def carb_rate_g_min(self) -> Array:
        """Announced carbohydrate being absorbed now (g/min)."""
        lag = self.t_min - np.asarray(self.carbs_t_min, dtype=float)
        on = ((lag >= 0) & (lag < CARB_ABSORPTION_MIN)).astype(float) / CARB_ABSORPTION_MIN
        return np.asarray(np.asarray(self.carbs_g, dtype=float) @ on)

    def predict_mg_dl(self, ahead_min: Array) -> Array:
        """Glucose (N, H) at ``ahead_min`` (H,) if scheduled basal runs from now (oref0-like):
        CGM - ISF x (IOB now - IOB then) + CSF x (COB now - COB then) + the unexplained
        deviation (CGM slope - insulin and carb slopes) decaying linearly to 0 over 60 min.
        NaN where there is no CGM reading."""
        p = self.profile
        h = np.atleast_1d(np.asarray(ahead_min, dtype=float))
        bg, _ = self.latest_cgm()
        isf = np.asarray(p.isf_mg_dl_u, dtype=float)
        csf = isf / np.asarray(p.carb_ratio_g_u, dtype=float)
        iob0, cob0 = self.iob_u(), self.cob_g()
        iob_h = np.stack([self.iob_u(float(x)) for x in h], axis=1)
        cob_h = np.stack([self.cob_g(float(x)) for x in h], axis=1)
        dev = self.slope_mg_dl_min() + isf * self.activity_u_min() - csf * self.carb_rate_g_min()
        hc = np.minimum(h, 60.0)
        decay = hc - hc * hc / 120.0
        out = (
            bg[:, None]
            - isf[:, None] * (iob0[:, None] - iob_h)
            + csf[:, None] * (cob0[:, None] - cob_h)
            + dev[:, None] * decay[None, :]
        )
        return np.asarray(out)

    def latest_cgm(self) -> tuple[Array, Array]:
        """The most recent non-NaN reading (mg/dL, NaN if none) and its age (min, inf if none)."""
        cgm = np.atleast_2d(np.asarray(self.cgm_mg_dl, dtype=float))
        times = np.asarray(self.cgm_t_min, dtype=float)
        n = cgm.shape[0]
        if times.size == 0:
            return np.full(n, np.nan), np.full(n, np.inf)
        ok = ~np.isnan(cgm)
        idx = np.where(ok, np.arange(times.size)[None, :], -1).max(axis=1)
        have = idx >= 0
        safe = np.maximum(idx, 0)
        value = np.where(have, cgm[np.arange(n), safe], np.nan)
        age = np.where(have, self.t_min - times[safe], np.inf)
        return value, age

    def _net_u(self) -> Array:
        basal_per_min = np.asarray(self.profile.basal_u_h, dtype=float)[:, None] / 60.0
        return np.asarray(self.insulin_u, dtype=float) - basal_per_min

    def iob_u(self, ahead_min: float = 0.0) -> Array:
        """Net insulin on board (U, above scheduled basal as in oref0) ``ahead_min`` from now,
        assuming scheduled basal from now on."""
        p = self.profile
        lag = self.t_min + ahead_min - np.asarray(self.insulin_t_min, dtype=float)
        w = iob_fraction(lag, p.dia_h, p.peak_min)
        return np.asarray(self._net_u() @ w)

    def activity_u_min(self) -> Array:
        """Net insulin activity now (U/min above scheduled basal)."""
        p = self.profile
        lag = self.t_min - np.asarray(self.insulin_t_min, dtype=float)
        return np.asarray(self._net_u() @ activity_fraction(lag, p.dia_h, p.peak_min))

    def slope_mg_dl_min(self, window_min: float = 15.0) -> Array:
        """Least-squares CGM slope (mg/dL/min) over the last ``window_min``; 0 with < 2 points."""
        cgm = np.atleast_2d(np.asarray(self.cgm_mg_dl, dtype=float))
        t = np.asarray(self.cgm_t_min, dtype=float)
        use = (t >= self.t_min - window_min) & (t <= self.t_min)
        y = cgm[:, use]
        x = np.broadcast_to(t[use], y.shape)
        w = ~np.isnan(y)
        cnt = w.sum(axis=1)
        xm = np.where(w, x, 0.0).sum(axis=1) / np.maximum(cnt, 1)
        ym = np.where(w, y, 0.0).sum(axis=1) / np.maximum(cnt, 1)
        dx = np.where(w, x - xm[:, None], 0.0)
        dy = np.where(w, np.nan_to_num(y) - ym[:, None], 0.0)
        sxx = (dx * dx).sum(axis=1)
        slope = np.where(sxx > 0, (dx * dy).sum(axis=1) / np.where(sxx > 0, sxx, 1.0), 0.0)
        return np.asarray(np.where(cnt >= 2, slope, 0.0))


@dataclass(frozen=True)
class Command:
    """A request to the pump for N patients: a temp basal (U/h) for ``duration_min`` minutes,
    after which the pump returns to the scheduled basal, plus an optional micro-bolus (U).
    ``reasons`` holds one text per patient ("" when nothing to say)."""

    temp_basal_u_h: Array
    duration_min: float = 30.0
    micro_bolus_u: Array = field(default_factory=lambda: np.zeros(0))
    reasons: tuple[str, ...] = ()

    def bolus_u(self) -> Array:
        """Micro-bolus per patient (U), zeros when none was given."""
        n = np.asarray(self.temp_basal_u_h).shape[0]
        b = np.asarray(self.micro_bolus_u, dtype=float)
        return b if b.shape == (n,) else np.zeros(n)

    def rate_at(self, issued_t_min: float, t_min: float, scheduled_u_h: Array) -> Array:
        """Basal rate the pump runs at ``t_min`` (U/h): the temp until it expires, then the
        schedule (so a controller that stops deciding leaves the patient on basal)."""
        running = issued_t_min <= t_min < issued_t_min + self.duration_min
        return np.asarray(self.temp_basal_u_h if running else scheduled_u_h, dtype=float)
