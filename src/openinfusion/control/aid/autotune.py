"""Autotune-style fit of hourly basal, carb ratio and ISF from days of therapy history.

Method (OpenAPS oref0 ``lib/autotune-prep/categorize.js`` and ``lib/autotune/index.js``,
summarised in AID_REFERENCE.md §2.3; this is an independent implementation):

*Categorise* every 5-min step of a day, read against the candidate settings (the pump's
settings on the first day, the previous day's result after that):

- deviation = 20-min average glucose change minus the BGI of the net insulin over the same
  20 min (oref0 takes the activity at the end of the window; the window average is used
  here so both terms cover the same time); positive deviations below 80 mg/dL count as 0;
- announced carbs go on board and are worn down by ``max(deviation, min_5m_carbimpact) x
  CR / ISF`` g per step; while carbs are on board, or deviations stay positive with net IOB
  above half an hour of basal, the step is **carb absorption (CSF)**;
- otherwise, net IOB above two hours of basal, a deviation above 6 mg/dL/5 min, or a run of
  positive deviations after one of those, is an **unannounced meal (UAM)**;
- otherwise the step is **basal** if the scheduled basal's own BGI exceeds 4 x the net BGI
  (little net insulin acting), or if glucose is rising faster than 2 x |BGI|; else **ISF**;
- UAM steps join the basal bucket when at least 1 h of carb absorption shows the meals were
  announced; when UAM dominates, basal (and, if sparse, ISF) take the lower half of
  basal+UAM; with far more CSF than basal and ISF steps, CSF joins ISF (oref0's rules).

*Carb ratio periods* run from the first step with carbs on board until carbs are gone and
net IOB has fallen under half an hour of basal (at least 60 min); the insulin the carbs
needed is net IOB at the start + net insulin given - net IOB at the end + (BG end - BG
start) / ISF (oref0 leaves out the end IOB; it is small by construction).

*Fit* (each damped and capped; caps are relative to the pump's settings, ``autosens_min`` and
``autosens_max``, so no run moves any setting outside [min, max] x what the pump ran):

- basal: per clock hour, ``0.2 x sum of basal deviations / ISF`` U/h, spread over the three
  preceding hours (insulin acts late): added evenly when positive, as a common scale factor
  when negative; each hour capped to [min, max] x the pump's rate; hours with no change are
  pulled towards their tuned neighbours (0.8 own + 0.1 + 0.1);
- CR: carbs / insulin needed over all periods, capped, then ``0.8 old + 0.2 new``, capped;
- ISF: with at least 10 ISF steps, ``ISF x median(1 + deviation / BGI)``, capped to
  [pump ISF / max, pump ISF / min] (ISF moves inversely to the need for insulin), then
  ``0.8 old + 0.2 new``, capped again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openinfusion.control.aid.autosens import STEP_MIN, StepData, step_data
from openinfusion.control.aid.therapy_history import (
    MIN_PER_DAY,
    Array,
    TherapyHistory,
    TherapySettings,
    net_insulin,
)
from openinfusion.errors import InputError

BASAL, ISF, CSF, UAM, INVALID = 0, 1, 2, 3, 4
BUCKETS = ("basal", "isf", "csf", "uam", "invalid")
AVG_STEPS = 4  # oref0 autotune: 20-min average delta
DAMPING = 0.2  # oref0: new = 0.8 old + 0.2 estimate (basal: 0.2 x the hourly need)
SPREAD_HOURS = 3  # oref0: basal need is given to the three preceding hours
UAM_DEVIATION_MG_DL = 6.0  # oref0: a deviation above 6 mg/dL/5 min is an unannounced meal
MIN_ISF_POINTS = 10  # oref0: at least 10 ISF steps to move ISF
MIN_CR_PERIOD_MIN = 60.0  # oref0: shorter carb-ratio periods are ignored
MIN_DAY_STEPS = 144  # local rule: a day needs 12 h of usable 5-min steps
CR_HARD_RANGE = (3.0, 150.0)  # oref0 keeps CR within 3-150 g/U whatever the caps
LOW_BG_MG_DL = 80.0


@dataclass(frozen=True)
class CarbPeriod:
    """One carb-ratio period (times in min, insulin in U, glucose in mg/dL)."""

    start_t_min: float
    end_t_min: float
    carbs_g: float
    iob_start_u: float
    iob_end_u: float
    net_insulin_u: float
    bg_start_mg_dl: float
    bg_end_mg_dl: float

    def insulin_needed_u(self, isf_mg_dl_u: float) -> float:
        """Units these carbs needed, given ``isf_mg_dl_u`` for the glucose left over."""
        return (
            self.iob_start_u
            + self.net_insulin_u
            - self.iob_end_u
            + (self.bg_end_mg_dl - self.bg_start_mg_dl) / isf_mg_dl_u
        )


@dataclass(frozen=True)
class DayFit:
    """What one day contributed: its buckets, the evidence per hour and the settings before
    and after. Hourly arrays have shape (24,)."""

    day: int
    start_t_min: float
    counts: dict[str, int]
    counts_categorised: dict[str, int]
    basal_points: NDArray[np.int64]
    basal_deviation_sum_mg_dl: Array
    basal_needed_u_h: Array
    before: TherapySettings
    after: TherapySettings
    carb_periods: list[CarbPeriod]
    isf_points: int
    isf_median_ratio: float | None
    cr_estimate_g_u: float | None
    csf_estimate_mg_dl_g: float | None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Stable JSON keys."""
        return {
            "day": self.day,
            "start_t_min": self.start_t_min,
            "points": self.counts,
            "points_before_reassignment": self.counts_categorised,
            "hours": [
                {
                    "hour": h,
                    "basal_points": int(self.basal_points[h]),
                    "deviation_sum_mg_dl": round(float(self.basal_deviation_sum_mg_dl[h]), 2),
                    "basal_needed_u_h": round(float(self.basal_needed_u_h[h]), 4),
                    "basal_before_u_h": round(float(self.before.basal_u_h[h]), 4),
                    "basal_after_u_h": round(float(self.after.basal_u_h[h]), 4),
                }
                for h in range(24)
            ],
            "carb_periods": [
                {
                    "start_t_min": p.start_t_min,
                    "end_t_min": p.end_t_min,
                    "carbs_g": round(p.carbs_g, 2),
                    "insulin_needed_u": round(p.insulin_needed_u(self.before.isf_mg_dl_u), 3),
                }
                for p in self.carb_periods
            ],
            "isf_points": self.isf_points,
            "isf_median_ratio": _round(self.isf_median_ratio, 4),
            "cr_estimate_g_u": _round(self.cr_estimate_g_u, 3),
            "csf_estimate_mg_dl_g": _round(self.csf_estimate_mg_dl_g, 3),
            "isf_before_mg_dl_u": round(self.before.isf_mg_dl_u, 3),
            "isf_after_mg_dl_u": round(self.after.isf_mg_dl_u, 3),
            "carb_ratio_before_g_u": round(self.before.carb_ratio_g_u, 3),
            "carb_ratio_after_g_u": round(self.after.carb_ratio_g_u, 3),
            "notes": self.notes,
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class AutotuneResult:
    """The tuned settings, the pump's settings they started from and each day's fit."""

    settings: TherapySettings
    pump_settings: TherapySettings
    days: list[DayFit]

    def as_dict(self) -> dict[str, Any]:
        """Stable JSON keys."""
        p, s = self.pump_settings, self.settings
        return {
            "days_used": len(self.days),
            "pump": p.as_dict(),
            "tuned": s.as_dict(),
            "change": {
                "basal_ratio": [
                    round(float(a / b), 4) if b > 0 else None
                    for a, b in zip(s.basal_u_h, p.basal_u_h, strict=True)
                ],
                "isf_ratio": round(s.isf_mg_dl_u / p.isf_mg_dl_u, 4),
                "carb_ratio_ratio": round(s.carb_ratio_g_u / p.carb_ratio_g_u, 4),
            },
            "caps": caps_dict(p),
            "days": [d.as_dict() for d in self.days],
        }


def caps_dict(pump: TherapySettings) -> dict[str, Any]:
    """Bounds every tuned setting keeps (relative to the pump's settings)."""
    lo, hi = pump.autosens_min, pump.autosens_max
    return {
        "basal_u_h": [[round(b * lo, 4), round(b * hi, 4)] for b in pump.basal_u_h.tolist()],
        "isf_mg_dl_u": [round(pump.isf_mg_dl_u / hi, 4), round(pump.isf_mg_dl_u / lo, 4)],
        "carb_ratio_g_u": list(_cr_bounds(pump)),
    }


def _cr_bounds(pump: TherapySettings) -> tuple[float, float]:
    lo = max(pump.carb_ratio_g_u * pump.autosens_min, CR_HARD_RANGE[0])
    hi = min(pump.carb_ratio_g_u * pump.autosens_max, CR_HARD_RANGE[1])
    return min(lo, pump.carb_ratio_g_u), max(hi, pump.carb_ratio_g_u)


@dataclass(frozen=True)
class Categorised:
    """Steps of one day with their bucket (after oref0's reassignment rules) and the
    carb-ratio periods found."""

    steps: StepData
    bucket: NDArray[np.int8]
    bucket_categorised: NDArray[np.int8]
    meal_start: NDArray[np.bool_]
    meal_end: NDArray[np.bool_]
    meal_carbs_g: Array
    periods: list[CarbPeriod]
    notes: list[str]


def categorise(history: TherapyHistory, start_min: float, stop_min: float) -> Categorised:
    """Bucket each 5-min step in [start_min, stop_min) against ``history.settings``."""
    s = history.settings
    steps = step_data(history, start_min, stop_min - STEP_MIN, delta_steps=AVG_STEPS)
    ins = net_insulin(history, s, int(steps.t_min[0]) - 1, int(steps.t_min[-1]) + 1)
    basal_now = s.basal_at(steps.t_min)
    basal_bgi = basal_now * s.isf_mg_dl_u / (60.0 / STEP_MIN)
    per_mg_dl = s.carb_ratio_g_u / s.isf_mg_dl_u
    n = steps.t_min.size
    bucket = np.full(n, INVALID, dtype=np.int8)
    meal_start = np.zeros(n, dtype=bool)
    meal_end = np.zeros(n, dtype=bool)
    meal_carbs = np.zeros(n)
    periods: list[CarbPeriod] = []
    cob = 0.0
    meal_g = 0.0
    absorbing = False
    uam = False
    open_period: dict[str, float] | None = None
    last_valid = -1
    previous = -1
    dev_l = steps.deviation_mg_dl.tolist()
    bgi_l = steps.bgi_mg_dl.tolist()
    delta_l = steps.delta_mg_dl.tolist()
    iob_l = steps.iob_u.tolist()
    bg_l = steps.bg_mg_dl.tolist()
    carbs_l = steps.carbs_g.tolist()
    for k in range(n):
        arrived = carbs_l[k] if carbs_l[k] >= 1.0 else 0.0
        cob += arrived
        meal_g += arrived
        if open_period is not None:
            open_period["carbs"] += arrived
        if not steps.valid[k]:
            continue
        dev, bgi, iob, bg, basal = dev_l[k], bgi_l[k], iob_l[k], bg_l[k], float(basal_now[k])
        last_valid = k
        if cob > 0:
            cob = max(0.0, cob - max(dev, s.min_5m_carbimpact_mg_dl) * per_mg_dl)
        # carb-ratio period
        if cob > 0 or open_period is not None:
            if open_period is None:
                open_period = {"t": steps.t_min[k], "iob": iob, "bg": bg, "carbs": arrived}
            elif not (cob > 0 or iob > basal / 2):
                p = CarbPeriod(
                    start_t_min=float(open_period["t"]),
                    end_t_min=float(steps.t_min[k]),
                    carbs_g=float(open_period["carbs"]),
                    iob_start_u=float(open_period["iob"]),
                    iob_end_u=iob,
                    net_insulin_u=ins.given_u(open_period["t"], steps.t_min[k]),
                    bg_start_mg_dl=float(open_period["bg"]),
                    bg_end_mg_dl=bg,
                )
                if p.end_t_min - p.start_t_min >= MIN_CR_PERIOD_MIN and p.carbs_g > 0:
                    periods.append(p)
                open_period = None
        # bucket
        if cob > 0 or absorbing or meal_g > 0:
            absorbing = iob >= basal / 2 and dev > 0
            if not absorbing and cob <= 0:
                meal_g = 0.0
            if previous != CSF:
                meal_start[k] = True
            meal_carbs[k] = meal_g
            bucket[k] = previous = CSF
            continue
        if previous == CSF:
            meal_end[_last(bucket, CSF, k)] = True
        if iob > 2 * basal or dev > UAM_DEVIATION_MG_DL or uam:
            uam = dev > 0
            bucket[k] = previous = UAM
        elif basal_bgi[k] > -4 * bgi or (delta_l[k] > 0 and delta_l[k] > -2 * bgi):
            bucket[k] = previous = BASAL
        else:
            bucket[k] = previous = ISF
    notes: list[str] = []
    if open_period is not None:
        notes.append(
            f"carb period from {open_period['t']:g} min still open at the end of the day: not used"
        )
    if previous == CSF and last_valid >= 0:
        meal_end[last_valid] = True
    categorised = bucket.copy()
    bucket = _reassign(bucket, steps.deviation_mg_dl, notes)
    return Categorised(steps, bucket, categorised, meal_start, meal_end, meal_carbs, periods, notes)


def _last(bucket: NDArray[np.int8], value: int, before: int) -> int:
    hits = np.nonzero(bucket[:before] == value)[0]
    return int(hits[-1]) if hits.size else before


def _lower_half(idx: NDArray[np.intp], dev: Array) -> NDArray[np.intp]:
    order = idx[np.argsort(dev[idx], kind="stable")]
    return np.asarray(order[: order.size // 2])


def _reassign(bucket: NDArray[np.int8], dev: Array, notes: list[str]) -> NDArray[np.int8]:
    """oref0's moves between buckets (see the module notes); moved steps change label,
    dropped ones become INVALID."""
    out = bucket.copy()
    n_csf = int((out == CSF).sum())
    n_uam = int((out == UAM).sum())
    n_basal = int((out == BASAL).sum())
    n_isf = int((out == ISF).sum())
    if n_csf > 12:
        if n_uam:
            notes.append(f"{n_uam} UAM steps counted as basal (meals look announced)")
        out[out == UAM] = BASAL
    else:
        uam_idx = np.nonzero(out == UAM)[0]
        if 2 * n_basal < n_uam:
            pool = np.nonzero((out == BASAL) | (out == UAM))[0]
            keep = _lower_half(pool, dev)
            notes.append(f"UAM dominates: basal takes the lower half of {pool.size} basal+UAM")
            out[pool] = INVALID
            out[keep] = BASAL
        if 2 * n_isf < n_uam and n_isf < MIN_ISF_POINTS:
            spare = uam_idx[out[uam_idx] != BASAL]
            pool = np.concatenate([np.nonzero(out == ISF)[0], spare])
            keep = _lower_half(pool, dev)
            notes.append(f"UAM dominates: ISF takes the lower half of {pool.size} ISF+UAM")
            out[pool] = INVALID
            out[keep] = ISF
        out[out == UAM] = INVALID
    n_basal = int((out == BASAL).sum())
    n_isf = int((out == ISF).sum())
    n_csf = int((out == CSF).sum())
    if 4 * n_basal + n_isf < n_csf and n_isf < MIN_ISF_POINTS:
        notes.append(f"meals dominate: {n_csf} CSF steps used for ISF")
        out[out == CSF] = ISF
    return out


def _counts(bucket: NDArray[np.int8]) -> dict[str, int]:
    return {name: int((bucket == i).sum()) for i, name in enumerate(BUCKETS)}


def _tune_basal(
    cat: Categorised, cand: TherapySettings, pump: TherapySettings
) -> tuple[Array, NDArray[np.int64], Array, Array]:
    """New hourly basal (24,), basal points per hour, deviation sums and the need (U/h)."""
    steps = cat.steps
    use = cat.bucket == BASAL
    hour = (np.mod(steps.t_min[use], MIN_PER_DAY) // 60).astype(np.intp)
    dev_sum = np.asarray(
        np.bincount(hour, weights=steps.deviation_mg_dl[use], minlength=24), dtype=float
    )
    points = np.bincount(hour, minlength=24).astype(np.int64)
    need = DAMPING * dev_sum / cand.isf_mg_dl_u  # U/h for that hour
    old = np.asarray(cand.basal_u_h, dtype=float)
    new = old.copy()
    for h in range(24):  # sequential: a negative need scales what earlier hours left
        before = [(h + off) % 24 for off in range(-SPREAD_HOURS, 0)]
        if need[h] > 0:
            new[before] += need[h] / SPREAD_HOURS
        elif need[h] < 0:
            total = float(new[before].sum())
            if total > 0:
                new[before] *= max(0.0, 1.0 + need[h] / total)
    lo = pump.basal_u_h * pump.autosens_min
    hi = pump.basal_u_h * pump.autosens_max
    new = np.clip(new, lo, hi)
    changed = ~np.isclose(new, old, rtol=0, atol=1e-9)
    if changed.any():  # hours left alone drift with their tuned neighbours
        idx = np.nonzero(changed)[0]
        smooth = new.copy()
        for flat in np.nonzero(~changed)[0].tolist():
            prev_i = idx[idx < flat]
            next_i = idx[idx > flat]
            left = new[prev_i[-1]] if prev_i.size else new[idx[-1]]
            right = new[next_i[0]] if next_i.size else new[idx[0]]
            smooth[flat] = 0.8 * old[flat] + 0.1 * left + 0.1 * right
        new = np.clip(smooth, lo, hi)
    return new, points, dev_sum, need


def _tune_cr(
    cat: Categorised, cand: TherapySettings, pump: TherapySettings
) -> tuple[float, float | None]:
    carbs = 0.0
    insulin = 0.0
    for p in cat.periods:
        need = p.insulin_needed_u(cand.isf_mg_dl_u)
        if need > 0:
            carbs += p.carbs_g
            insulin += need
    lo, hi = _cr_bounds(pump)
    if insulin <= 0 or carbs <= 0:
        return cand.carb_ratio_g_u, None
    estimate = carbs / insulin
    full = min(max(estimate, lo), hi)
    new = (1 - DAMPING) * cand.carb_ratio_g_u + DAMPING * full
    return min(max(new, lo), hi), estimate


def _csf_estimate(cat: Categorised) -> float | None:
    """Positive deviations per gram over the carb-absorption stretches (reported only)."""
    dev = cat.steps.deviation_mg_dl
    csf = cat.bucket_categorised == CSF
    carbs = float(cat.steps.carbs_g.sum())
    if not csf.any() or carbs <= 0:
        return None
    return float(np.maximum(dev[csf], 0.0).sum() / carbs)


def _tune_isf(
    cat: Categorised, cand: TherapySettings, pump: TherapySettings
) -> tuple[float, int, float | None]:
    use = (cat.bucket == ISF) & (cat.steps.bgi_mg_dl < 0)
    n = int(use.sum())
    lo = pump.isf_mg_dl_u / pump.autosens_max
    hi = pump.isf_mg_dl_u / pump.autosens_min
    if n < MIN_ISF_POINTS:
        return min(max(cand.isf_mg_dl_u, lo), hi), n, None
    ratios = 1.0 + cat.steps.deviation_mg_dl[use] / cat.steps.bgi_mg_dl[use]
    median = float(np.median(ratios))
    full = cand.isf_mg_dl_u * median
    if full <= 0:  # oref0: a negative estimate leaves ISF where it is
        full = cand.isf_mg_dl_u
    full = min(max(full, lo), hi)
    new = (1 - DAMPING) * cand.isf_mg_dl_u + DAMPING * full
    return min(max(new, lo), hi), n, median


def tune_day(
    history: TherapyHistory, candidate: TherapySettings, day_start_min: float, day: int = 0
) -> DayFit:
    """One day's fit, read against ``candidate``; caps from ``history.settings`` (the pump)."""
    pump = history.settings
    cat = categorise(history.with_settings(candidate), day_start_min, day_start_min + MIN_PER_DAY)
    basal, points, dev_sum, need = _tune_basal(cat, candidate, pump)
    cr, cr_estimate = _tune_cr(cat, candidate, pump)
    isf, n_isf, median = _tune_isf(cat, candidate, pump)
    after = candidate.with_values(basal_u_h=basal, isf_mg_dl_u=isf, carb_ratio_g_u=cr)
    notes = list(cat.notes)
    if n_isf < MIN_ISF_POINTS:
        notes.append(f"ISF unchanged: {n_isf} ISF steps (at least {MIN_ISF_POINTS} needed)")
    if cr_estimate is None:
        notes.append("carb ratio unchanged: no complete carb-ratio period")
    return DayFit(
        day=day,
        start_t_min=day_start_min,
        counts=_counts(cat.bucket),
        counts_categorised=_counts(cat.bucket_categorised),
        basal_points=points,
        basal_deviation_sum_mg_dl=dev_sum,
        basal_needed_u_h=need,
        before=candidate,
        after=after,
        carb_periods=cat.periods,
        isf_points=n_isf,
        isf_median_ratio=median,
        cr_estimate_g_u=cr_estimate,
        csf_estimate_mg_dl_g=_csf_estimate(cat),
        notes=notes,
    )


def usable_days(history: TherapyHistory) -> list[float]:
    """Start times (local midnights) of the days with at least 12 h of 5-min glucose."""
    t = history.glucose_t_min
    first = math.floor(float(t[0]) / MIN_PER_DAY)
    last = math.floor(float(t[-1]) / MIN_PER_DAY)
    out = []
    for d in range(first, last + 1):
        a = d * MIN_PER_DAY
        slots = np.unique(np.floor((t[(t >= a) & (t < a + MIN_PER_DAY)] - a) / STEP_MIN))
        if slots.size >= MIN_DAY_STEPS:
            out.append(float(a))
    return out


def autotune(history: TherapyHistory, *, days: int | None = None) -> AutotuneResult:
    """Tune ``history.settings`` over the latest ``days`` usable days (all by default), each
    day's result being the next day's starting point."""
    starts = usable_days(history)
    if not starts:
        raise InputError(
            "glucose",
            f"{len(history.glucose_t_min)} readings",
            f"needs at least one day (local midnight to midnight) with 12 h of readings "
            f"({MIN_DAY_STEPS} five-minute slots)",
        )
    if days is not None:
        if days < 1:
            raise InputError("days", days, "must be at least 1")
        if days > len(starts):
            raise InputError("days", days, f"the data holds {len(starts)} usable day(s)")
        starts = starts[-days:]
    candidate = history.settings
    fits: list[DayFit] = []
    for i, start in enumerate(starts):
        fit = tune_day(history, candidate, start, day=i)
        fits.append(fit)
        candidate = fit.after
    return AutotuneResult(settings=candidate, pump_settings=history.settings, days=fits)


__all__ = [
    "BUCKETS",
    "AutotuneResult",
    "CarbPeriod",
    "Categorised",
    "DayFit",
    "autotune",
    "caps_dict",
    "categorise",
    "tune_day",
    "usable_days",
]
