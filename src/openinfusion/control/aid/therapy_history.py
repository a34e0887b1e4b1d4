"""What personalisation reads: one patient's programmed settings and their therapy history.

Times are minutes from local midnight of the first day (``t_min % 1440`` is the time of day),
so hourly basal schedules line up with the clock. Glucose is in mg/dL, insulin in U
(delivered per one-minute interval), carbohydrate in g. Everything is checked once, here:
a bad value raises :class:`~openinfusion.errors.InputError` naming the field, the value and
the rule, so the algorithms never see NaN, negative insulin or unsorted times.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openinfusion.control.aid.interface import iob_fraction
from openinfusion.errors import InputError
from openinfusion.pump.insulin import CARB_RATIO_RANGE, DIA_RANGE, ISF_RANGE, PEAK_RANGE

Array = NDArray[np.float64]
MIN_PER_DAY = 1440
MAX_BASAL_U_H = 35.0  # a pump's basal range (the trial scenarios use the same ceiling)
GLUCOSE_RANGE_MG_DL = (1.0, 1000.0)  # anything outside is a unit or transcription error
MAX_DOSE_U = 100.0  # per record; a larger single entry is a typing error
MAX_CARBS_G = 500.0  # per entry, as in the trial scenarios
MAX_HISTORY_DAYS = 120


def _finite(field_name: str, value: float, low: float, high: float, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(field_name, value, "must be a finite number")
    value = float(value)
    if not math.isfinite(value):
        raise InputError(field_name, value, "must be a finite number")
    if not low <= value <= high:
        raise InputError(field_name, value, f"must be {low:g} to {high:g} {unit}")
    return value


@dataclass(frozen=True)
class TherapySettings:
    """One patient's programmed settings.

    ``basal_u_h`` (24,): U/h for each local hour (index 0 = 00:00-01:00). ``isf_mg_dl_u``:
    glucose drop per unit. ``carb_ratio_g_u``: grams covered by one unit. ``dia_h`` and
    ``peak_min`` pick the exponential insulin curve of ``pump.insulin`` (oref0 rapid-acting:
    peak 75 min, DIA >= 5 h; AID_REFERENCE.md §2.3). ``autosens_min``/``autosens_max``
    bound the sensitivity ratio and every autotune change (oref0 defaults 0.7 / 1.2).
    ``min_5m_carbimpact_mg_dl``: the least carb absorption assumed per 5 min while carbs
    are on board (oref0 profile default 8 mg/dL/5 min).
    """

    basal_u_h: Array
    isf_mg_dl_u: float
    carb_ratio_g_u: float
    dia_h: float = 5.0
    peak_min: float = 75.0
    autosens_min: float = 0.7
    autosens_max: float = 1.2
    min_5m_carbimpact_mg_dl: float = 8.0
    _hourly: Array = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        raw = np.asarray(self.basal_u_h, dtype=float)
        if raw.ndim == 0:
            raw = np.full(24, float(raw))
        if raw.shape != (24,):
            raise InputError("basal_u_h", raw.shape, "must hold one rate per hour (24 values)")
        for h, rate in enumerate(raw.tolist()):
            _finite(f"basal_u_h[{h}]", rate, 0.0, MAX_BASAL_U_H, "U/h")
        if not raw.max() > 0:
            raise InputError("basal_u_h", 0.0, "at least one hour must have a basal above 0 U/h")
        _finite("isf_mg_dl_u", self.isf_mg_dl_u, *ISF_RANGE, "mg/dL per U")
        _finite("carb_ratio_g_u", self.carb_ratio_g_u, *CARB_RATIO_RANGE, "g/U")
        _finite("dia_h", self.dia_h, *DIA_RANGE, "h (exponential curve)")
        _finite("peak_min", self.peak_min, *PEAK_RANGE, "min")
        _finite("autosens_min", self.autosens_min, 0.1, 1.0, "(a ratio)")
        _finite("autosens_max", self.autosens_max, 1.0, 3.0, "(a ratio)")
        _finite("min_5m_carbimpact_mg_dl", self.min_5m_carbimpact_mg_dl, 0.5, 30.0, "mg/dL")
        hourly = raw.copy()
        hourly.setflags(write=False)
        object.__setattr__(self, "basal_u_h", hourly)
        object.__setattr__(self, "_hourly", hourly)
        for name in (
            "isf_mg_dl_u",
            "carb_ratio_g_u",
            "dia_h",
            "peak_min",
            "autosens_min",
            "autosens_max",
            "min_5m_carbimpact_mg_dl",
        ):
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def max_daily_basal_u_h(self) -> float:
        """Highest hourly basal (oref0 ``max_daily_basal``)."""
        return float(self._hourly.max())

    def basal_at(self, t_min: ArrayLike) -> Array:
        """Scheduled basal (U/h) at ``t_min`` (minutes from local midnight of day 0)."""
        t = np.asarray(t_min, dtype=float)
        hour = np.floor(np.mod(t, MIN_PER_DAY) / 60.0).astype(np.intp) % 24
        return np.asarray(self._hourly[hour])

    def with_values(
        self,
        *,
        basal_u_h: ArrayLike | None = None,
        isf_mg_dl_u: float | None = None,
        carb_ratio_g_u: float | None = None,
    ) -> TherapySettings:
        """A copy with some settings changed (validated again)."""
        return replace(
            self,
            basal_u_h=np.asarray(self.basal_u_h if basal_u_h is None else basal_u_h, dtype=float),
            isf_mg_dl_u=self.isf_mg_dl_u if isf_mg_dl_u is None else float(isf_mg_dl_u),
            carb_ratio_g_u=self.carb_ratio_g_u if carb_ratio_g_u is None else float(carb_ratio_g_u),
        )

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form (the keys of the uploaded-data ``profile``)."""
        return {
            "basal_u_h": [round(float(x), 4) for x in self._hourly],
            "isf_mg_dl_u": round(self.isf_mg_dl_u, 3),
            "carb_ratio_g_u": round(self.carb_ratio_g_u, 3),
            "dia_h": self.dia_h,
            "peak_min": self.peak_min,
            "autosens_min": self.autosens_min,
            "autosens_max": self.autosens_max,
            "min_5m_carbimpact_mg_dl": self.min_5m_carbimpact_mg_dl,
        }


def _vector(name: str, values: ArrayLike) -> Array:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise InputError(name, arr.shape, "must be a one-dimensional list")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{name}[{i}]", float(arr[i]), "must be a finite number")
    return arr


def _increasing(name: str, t: Array) -> None:
    if t.size > 1:
        step = np.diff(t)
        if (step <= 0).any():
            i = int(np.argmax(step <= 0)) + 1
            raise InputError(
                f"{name}[{i}]",
                float(t[i]),
                f"times must be strictly increasing (previous {float(t[i - 1]):g} min)",
            )


def _in_bounds(name: str, arr: Array, low: float, high: float, unit: str) -> None:
    bad = (arr < low) | (arr > high)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{name}[{i}]", float(arr[i]), f"must be {low:g} to {high:g} {unit}")


@dataclass(frozen=True)
class TherapyHistory:
    """One patient's glucose, insulin and carbohydrate history and the settings the pump ran.

    ``glucose_t_min`` (K,) strictly increasing reading times; ``glucose_mg_dl`` (K,).
    ``insulin_u`` (M,): units delivered in each one-minute interval starting at
    ``insulin_start_min`` (an integer minute). Minutes outside that span count as the
    scheduled basal of ``settings`` (no net insulin). ``carbs_t_min``/``carbs_g`` (J,):
    announced carbohydrate. ``settings``: what the pump was programmed with.
    """

    glucose_t_min: Array
    glucose_mg_dl: Array
    insulin_start_min: int
    insulin_u: Array
    carbs_t_min: Array
    carbs_g: Array
    settings: TherapySettings

    def __post_init__(self) -> None:
        gt = _vector("glucose.t_min", self.glucose_t_min)
        g = _vector("glucose.mg_dl", self.glucose_mg_dl)
        if gt.shape != g.shape:
            raise InputError("glucose", (gt.size, g.size), "needs one time per reading")
        if gt.size < 2:
            raise InputError("glucose", int(gt.size), "needs at least two readings")
        _increasing("glucose.t_min", gt)
        _in_bounds("glucose.mg_dl", g, *GLUCOSE_RANGE_MG_DL, "mg/dL")
        span_days = (gt[-1] - gt[0]) / MIN_PER_DAY
        if span_days > MAX_HISTORY_DAYS:
            raise InputError(
                "glucose", f"{span_days:.1f} days", f"must span at most {MAX_HISTORY_DAYS} days"
            )
        ins = _vector("insulin.units", self.insulin_u)
        _in_bounds("insulin.units", ins, 0.0, MAX_DOSE_U, "U per minute")
        if (
            isinstance(self.insulin_start_min, bool)
            or int(self.insulin_start_min) != self.insulin_start_min
        ):
            raise InputError("insulin_start_min", self.insulin_start_min, "must be a whole minute")
        ct = _vector("carbs.t_min", self.carbs_t_min)
        cg = _vector("carbs.g", self.carbs_g)
        if ct.shape != cg.shape:
            raise InputError("carbs", (ct.size, cg.size), "needs one time per entry")
        _in_bounds("carbs.g", cg, 0.0, MAX_CARBS_G, "g")
        order = np.argsort(ct, kind="stable")
        for name, arr in (
            ("glucose_t_min", gt),
            ("glucose_mg_dl", g),
            ("insulin_u", ins),
            ("carbs_t_min", ct[order]),
            ("carbs_g", cg[order]),
        ):
            frozen = np.array(arr)
            frozen.setflags(write=False)
            object.__setattr__(self, name, frozen)
        object.__setattr__(self, "insulin_start_min", int(self.insulin_start_min))

    @property
    def insulin_stop_min(self) -> int:
        """End (exclusive) of the recorded insulin, minutes."""
        return self.insulin_start_min + int(self.insulin_u.size)

    def with_settings(self, settings: TherapySettings) -> TherapyHistory:
        """The same history, read against other settings."""
        return replace(self, settings=settings)

    @classmethod
    def from_events(
        cls,
        *,
        glucose_t_min: ArrayLike,
        glucose_mg_dl: ArrayLike,
        settings: TherapySettings,
        boluses: Sequence[tuple[float, float]] = (),
        rates: Sequence[tuple[float, float, float]] = (),
        carbs: Sequence[tuple[float, float]] = (),
        basal: str = "scheduled",
    ) -> TherapyHistory:
        """Build a history from dose events.

        ``boluses``: (t_min, U). ``rates``: (t_min, duration_min, U/h), e.g. temp basals.
        ``basal="scheduled"``: the programmed basal ran wherever no rate entry covers a minute
        (pump records list only temp basals); ``"recorded"``: every unit delivered is in the
        entries (minutes before the first entry still count as scheduled basal).
        """
        if basal not in ("scheduled", "recorded"):
            raise InputError("basal", basal, "must be 'scheduled' or 'recorded'")
        gt = _vector("glucose.t_min", glucose_t_min)
        if gt.size == 0:
            raise InputError("glucose", 0, "needs at least two readings")
        dia = settings.dia_h * 60.0
        times = [float(gt[0]) - dia, float(gt[-1])]
        for i, (t, dose) in enumerate(boluses):
            _finite(f"insulin[{i}].t_min", t, -1e7, 1e7, "min")
            _finite(f"insulin[{i}].units", dose, 0.0, MAX_DOSE_U, "U")
            times.append(float(t))
        for i, (t, d, r) in enumerate(rates):
            _finite(f"rates[{i}].t_min", t, -1e7, 1e7, "min")
            _finite(f"rates[{i}].duration_min", d, 1.0, 1440.0 * 2, "min")
            _finite(f"rates[{i}].rate_u_h", r, 0.0, MAX_BASAL_U_H, "U/h")
            times += [float(t), float(t) + float(d)]
        start = math.floor(min(times))
        stop = math.ceil(max(times)) + 1
        if (stop - start) / MIN_PER_DAY > MAX_HISTORY_DAYS + 1:
            raise InputError(
                "insulin",
                f"{(stop - start) / MIN_PER_DAY:.1f} days",
                f"must span at most {MAX_HISTORY_DAYS} days",
            )
        minutes = np.arange(start, stop, dtype=float)
        scheduled = settings.basal_at(minutes) / 60.0
        if basal == "scheduled":
            u = scheduled.copy()
        else:
            first = min([t for t, _ in boluses] + [t for t, _, _ in rates], default=math.inf)
            u = np.where(minutes < math.floor(first), scheduled, 0.0)
        for t, d, r in rates:
            a = math.floor(t) - start
            b = math.ceil(t + d) - start
            u[a:b] = r / 60.0
        for t, dose in boluses:
            u[math.floor(t) - start] += dose
        ct = np.array([c[0] for c in carbs], dtype=float)
        cg = np.array([c[1] for c in carbs], dtype=float)
        return cls(
            glucose_t_min=gt,
            glucose_mg_dl=np.asarray(glucose_mg_dl, dtype=float),
            insulin_start_min=start,
            insulin_u=u,
            carbs_t_min=ct,
            carbs_g=cg,
            settings=settings,
        )


@dataclass(frozen=True)
class NetInsulin:
    """Insulin above a basal schedule on a one-minute grid starting at ``start_min``.

    ``cum_u[i]``: net units given before minute ``start_min + i``; ``iob_u[i]``: net units
    still on board then (exponential curve of ``pump.insulin``, each minute's delivery taken
    at the middle of its minute).
    """

    start_min: int
    cum_u: Array
    iob_u: Array

    def _index(self, t_min: ArrayLike) -> NDArray[np.intp]:
        i = np.asarray(np.rint(np.asarray(t_min, dtype=float)), dtype=np.intp) - self.start_min
        if i.size and (i.min() < 0 or i.max() >= self.cum_u.size):
            raise ValueError("time outside the insulin grid")  # internal: callers size the grid
        return i

    def iob_at(self, t_min: ArrayLike) -> Array:
        """Net insulin on board (U) at whole minutes ``t_min``."""
        return np.asarray(self.iob_u[self._index(t_min)])

    def acted_u(self, t_min: ArrayLike, window_min: int) -> Array:
        """Net units that acted in (t - window, t]: given minus the change in what is on board."""
        b = self._index(t_min)
        a = b - window_min
        if a.size and a.min() < 0:
            raise ValueError("window reaches before the insulin grid")
        given = self.cum_u[b] - self.cum_u[a]
        return np.asarray(given - (self.iob_u[b] - self.iob_u[a]))

    def given_u(self, start_t_min: float, stop_t_min: float) -> float:
        """Net units given from ``start_t_min`` to ``stop_t_min`` (whole minutes)."""
        a, b = self._index([start_t_min, stop_t_min])
        return float(self.cum_u[b] - self.cum_u[a])


def net_insulin(
    history: TherapyHistory, settings: TherapySettings, start_min: int, stop_min: int
) -> NetInsulin:
    """Net insulin (delivered minus ``settings``' scheduled basal) over [start_min, stop_min].

    The recorded delivery of ``history`` is used where it exists; outside it the patient is
    taken to have run ``history.settings``' schedule, so against the same schedule it is 0.
    One NumPy convolution with the on-board kernel covers the span (from a DIA before
    ``start_min``: older doses are no longer on board).
    """
    dia = round(settings.dia_h * 60.0)
    lo = math.floor(start_min) - dia  # earlier doses are no longer on board at start_min
    hi = math.ceil(stop_min) + 1
    minutes = np.arange(lo, hi, dtype=float)
    delivered = history.settings.basal_at(minutes) / 60.0
    a = max(lo, history.insulin_start_min)
    b = min(hi, history.insulin_stop_min)
    if a < b:
        src = history.insulin_start_min
        delivered[a - lo : b - lo] = history.insulin_u[a - src : b - src]
    net = delivered - settings.basal_at(minutes) / 60.0
    kernel = iob_fraction(np.arange(dia + 1, dtype=float) + 0.5, settings.dia_h, settings.peak_min)
    on_board = np.convolve(net, kernel)[: net.size]
    cum = np.concatenate([[0.0], np.cumsum(net)])
    iob = np.concatenate([[0.0], on_board])
    return NetInsulin(start_min=lo, cum_u=cum, iob_u=iob)


def resample_glucose(
    t_min: Array, mg_dl: Array, grid_t_min: Array, *, max_gap_min: float = 15.0
) -> Array:
    """Glucose on ``grid_t_min`` by linear interpolation between neighbouring readings no more
    than ``max_gap_min`` apart (NaN elsewhere: gaps are not bridged)."""
    grid = np.asarray(grid_t_min, dtype=float)
    j = np.searchsorted(t_min, grid, side="left")
    exact = (j < t_min.size) & (t_min[np.minimum(j, t_min.size - 1)] == grid)
    lo = np.clip(j - 1, 0, t_min.size - 1)
    hi = np.clip(j, 0, t_min.size - 1)
    inside = (j > 0) & (j < t_min.size)
    gap = t_min[hi] - t_min[lo]
    ok = inside & (gap <= max_gap_min) & (gap > 0)
    w = np.where(ok, (grid - t_min[lo]) / np.where(gap > 0, gap, 1.0), 0.0)
    value = mg_dl[lo] + w * (mg_dl[hi] - mg_dl[lo])
    out = np.where(ok, value, np.nan)
    out = np.where(exact, mg_dl[np.minimum(j, t_min.size - 1)], out)
    return np.asarray(out)


__all__ = [
    "NetInsulin",
    "TherapyHistory",
    "TherapySettings",
    "net_insulin",
    "resample_glucose",
]
