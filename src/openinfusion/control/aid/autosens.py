"""Autosens-style sensitivity ratio from a day of glucose and insulin history.

Method (OpenAPS oref0 ``lib/determine-basal/autosens.js``, summarised in AID_REFERENCE.md
§2.3; this is an independent implementation):

1. Glucose on a 5-min clock grid; the deviation of each step is the observed 5-min change
   minus the BGI, the change the net insulin (delivered minus scheduled basal) should have
   caused: ``BGI = -ISF x units that acted in the 5 min``. oref0 uses the instantaneous
   activity x 5 min; here the exact units absorbed in the interval are used.
2. Steps with a reading below 40 mg/dL or a gap are dropped; positive deviations while BG
   < 80 mg/dL count as 0 (oref0: rises out of a low are not resistance).
3. Meal absorption is excluded: announced carbs go on board and are worn down each step by
   ``max(deviation, min_5m_carbimpact) x CR / ISF`` g; the step is excluded while carbs are
   on board, and afterwards while deviations stay positive (up to 5 h of absorption), then
   45 min after each meal and while the following deviations stay positive (the
   retrospective form of oref0's unannounced-meal exclusion).
4. A neutral (0) deviation is added at every even clock hour so long exclusions decay
   towards 1; only the latest 96 kept deviations are used; with fewer than 96, up to 18
   zeros are padded (oref0: damps a ratio found from little data).
5. ``basal_off = median deviation x 12 / ISF`` (U/h); ``ratio = 1 + basal_off /
   max_daily_basal``, clamped to [autosens_min, autosens_max] and rounded to 0.01.
   ``ratio > 1`` means more insulin is needed (resistance): basal x ratio, ISF / ratio.

Minimum data (a local rule, not oref0's): with fewer than ``MIN_DEVIATIONS`` (2 h) usable
non-meal deviations the ratio is 1 and the reason says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openinfusion.control.aid.therapy_history import (
    MIN_PER_DAY,
    Array,
    TherapyHistory,
    net_insulin,
    resample_glucose,
)

STEP_MIN = 5
WINDOW_H = 24.0  # oref0 uses the last 24 h
LOOKBACK = 96  # oref0: keep the latest 96 non-excluded deviations (8 h)
PAD_MAX = 18  # oref0: up to 18 zero deviations (90 min) when under 96
MIN_DEVIATIONS = 24  # local rule: at least 2 h of usable non-meal data
LOW_BG_MG_DL = 80.0  # oref0: positive deviations below 80 count as 0
MIN_VALID_MG_DL = 40.0  # oref0 skips readings below 40 (sensor error states)
MEAL_ESCAPE_STEPS = 60  # oref0: stop excluding after 5 h of absorption once COB is ~0
AFTER_MEAL_STEPS = 9  # oref0: always exclude 45 min after a meal period

# Category codes of each 5-min step.
USED, MEAL, UAM, INVALID = 0, 1, 2, 3
CATEGORY_NAMES = ("used", "meal", "uam", "invalid")


@dataclass(frozen=True)
class AutosensResult:
    """The ratio and what produced it.

    ``t_min``, ``deviation_mg_dl`` (NaN where invalid) and ``category`` (USED, MEAL, UAM,
    INVALID) have one entry per 5-min step analysed. ``deviations_used`` are the values the
    median was taken over (after the lookback, neutral points and padding).
    """

    ratio: float
    raw_ratio: float
    isf_mg_dl_u: float
    new_isf_mg_dl_u: float
    basal_off_u_h: float
    median_deviation_mg_dl: float
    n_used: int
    n_meal: int
    n_uam: int
    n_invalid: int
    n_neutral: int
    n_padded: int
    percent_negative: float
    percent_positive: float
    reason: str
    t_min: Array
    deviation_mg_dl: Array
    category: NDArray[np.int8]
    deviations_used: Array

    def as_dict(self, *, points: bool = False) -> dict[str, Any]:
        """Stable JSON keys; ``points`` adds the per-step evidence and the values the median
        was taken over (kept deviations, neutral points and padding, oldest first)."""
        out: dict[str, Any] = {
            "ratio": self.ratio,
            "raw_ratio": round(self.raw_ratio, 4),
            "isf_mg_dl_u": round(self.isf_mg_dl_u, 3),
            "new_isf_mg_dl_u": round(self.new_isf_mg_dl_u, 3),
            "basal_off_u_h": round(self.basal_off_u_h, 4),
            "median_deviation_mg_dl": round(self.median_deviation_mg_dl, 3),
            "deviations": {
                "used": self.n_used,
                "excluded_meal": self.n_meal,
                "excluded_uam": self.n_uam,
                "invalid": self.n_invalid,
                "neutral_added": self.n_neutral,
                "zeros_padded": self.n_padded,
                "percent_negative": round(self.percent_negative, 1),
                "percent_positive": round(self.percent_positive, 1),
            },
            "reason": self.reason,
        }
        if points:
            out["median_of_mg_dl"] = [round(float(v), 2) for v in self.deviations_used]
            out["points"] = [
                {
                    "t_min": float(t),
                    "deviation_mg_dl": None if np.isnan(d) else round(float(d), 2),
                    "category": CATEGORY_NAMES[int(c)],
                }
                for t, d, c in zip(self.t_min, self.deviation_mg_dl, self.category, strict=True)
            ]
        return out


@dataclass(frozen=True)
class StepData:
    """Per-5-min quantities on a clock grid (all shape (K,)): glucose, the change over the
    step, the BGI over the step, the deviation, the net IOB and the announced carbs that
    arrived during the step (t-5, t]."""

    t_min: Array
    bg_mg_dl: Array
    delta_mg_dl: Array
    bgi_mg_dl: Array
    deviation_mg_dl: Array
    iob_u: Array
    carbs_g: Array
    valid: NDArray[np.bool_]


def step_data(
    history: TherapyHistory, start_min: float, stop_min: float, *, delta_steps: int = 1
) -> StepData:
    """Deviations on the 5-min clock grid in [start_min, stop_min], read against
    ``history.settings``. ``delta_steps`` > 1 averages the change (and the BGI) over that
    many steps, as oref0's autotune does with 4 (20 min), and reports it per 5 min."""
    s = history.settings
    first = np.ceil(start_min / STEP_MIN) * STEP_MIN
    grid = np.arange(first, stop_min + 1e-9, STEP_MIN, dtype=float)
    if grid.size == 0:  # less than one 5-min step of data
        empty = np.zeros(0)
        return StepData(empty, empty, empty, empty, empty, empty, empty, np.zeros(0, dtype=bool))
    span = delta_steps * STEP_MIN
    ext = np.concatenate([grid[0] - STEP_MIN * np.arange(delta_steps, 0, -1), grid])
    bg_ext = resample_glucose(history.glucose_t_min, history.glucose_mg_dl, ext)
    bg = bg_ext[delta_steps:]
    delta = (bg - bg_ext[:-delta_steps]) / delta_steps
    ins = net_insulin(history, s, int(ext[0]) - 1, int(grid[-1]) + 1)
    acted = ins.acted_u(grid, span)
    bgi = -s.isf_mg_dl_u * acted / delta_steps
    dev = delta - bgi
    valid = np.isfinite(dev) & (bg >= MIN_VALID_MG_DL) & (bg_ext[:-delta_steps] >= MIN_VALID_MG_DL)
    dev = np.where(valid & (bg < LOW_BG_MG_DL) & (dev > 0), 0.0, dev)
    dev = np.where(valid, dev, np.nan)
    # carbs announced in (t - 5, t] arrive at step t
    idx = np.searchsorted(grid, history.carbs_t_min, side="left")
    keep = (idx < grid.size) & (history.carbs_t_min > grid[0] - STEP_MIN)
    carbs = np.bincount(idx[keep], weights=history.carbs_g[keep], minlength=grid.size)
    return StepData(
        t_min=grid,
        bg_mg_dl=bg,
        delta_mg_dl=delta,
        bgi_mg_dl=bgi,
        deviation_mg_dl=dev,
        iob_u=ins.iob_at(grid),
        carbs_g=np.asarray(carbs[: grid.size], dtype=float),
        valid=valid,
    )


def _exclude_meals(steps: StepData, history: TherapyHistory) -> NDArray[np.int8]:
    """Category of each step (the oref0 carb-absorption and after-meal exclusion; a
    sequential state machine, so a plain loop over the few hundred steps of a day)."""
    s = history.settings
    per_mg_dl = s.carb_ratio_g_u / s.isf_mg_dl_u  # g absorbed per mg/dL of deviation
    cat = np.full(steps.t_min.size, INVALID, dtype=np.int8)
    cob_g = 0.0
    carbs_seen_g = 0.0
    absorbing = False
    uam = False
    since_meal = 999
    previous = USED
    devs = steps.deviation_mg_dl.tolist()
    arrivals = steps.carbs_g.tolist()
    for k, dev in enumerate(devs):
        if arrivals[k] >= 1.0:  # carbs still arrive even when the reading is unusable
            cob_g += arrivals[k]
            carbs_seen_g += arrivals[k]
        if not steps.valid[k]:
            continue
        if cob_g > 0:
            cob_g = max(0.0, cob_g - max(dev, s.min_5m_carbimpact_mg_dl) * per_mg_dl)
        if cob_g > 0 or absorbing or carbs_seen_g > 0:
            absorbing = dev > 0
            if since_meal > MEAL_ESCAPE_STEPS and cob_g < 0.5:
                absorbing = False
            if not absorbing and cob_g < 0.5:
                carbs_seen_g = 0.0
            if previous != MEAL:
                since_meal = 0
            since_meal += 1
            cat[k] = previous = MEAL
        elif uam or since_meal < AFTER_MEAL_STEPS:
            since_meal += 1
            uam = dev > 0
            cat[k] = previous = UAM
        else:
            cat[k] = previous = USED
    return cat


def autosens(
    history: TherapyHistory, *, at_min: float | None = None, window_h: float = WINDOW_H
) -> AutosensResult:
    """Sensitivity ratio at ``at_min`` (default: the last reading) from the ``window_h`` hours
    before it, read against ``history.settings``."""
    s = history.settings
    end = float(history.glucose_t_min[-1]) if at_min is None else float(at_min)
    start = max(end - window_h * 60.0, float(history.glucose_t_min[0]))
    steps = step_data(history, start, end)
    cat = _exclude_meals(steps, history)
    kept: list[float] = []
    neutral = 0
    for k in range(steps.t_min.size):
        if cat[k] == USED:
            kept.append(float(steps.deviation_mg_dl[k]))
        minute_of_day = steps.t_min[k] % MIN_PER_DAY
        if minute_of_day % 120 < STEP_MIN:  # oref0: one neutral point every 2 h
            kept.append(0.0)
            neutral += 1
    n_used = int((cat == USED).sum())
    counts = {c: int((cat == c).sum()) for c in (MEAL, UAM, INVALID)}
    window = kept[-LOOKBACK:]
    padded = 0
    if len(window) < LOOKBACK:
        padded = round((1 - len(window) / LOOKBACK) * PAD_MAX)
        window = window + [0.0] * padded
    values = np.asarray(window, dtype=float)
    isf = s.isf_mg_dl_u
    if n_used < MIN_DEVIATIONS:
        reason = (
            f"not enough data: {n_used} usable non-meal 5-min deviations "
            f"(at least {MIN_DEVIATIONS} needed); ratio left at 1"
        )
        return AutosensResult(
            ratio=1.0,
            raw_ratio=1.0,
            isf_mg_dl_u=isf,
            new_isf_mg_dl_u=isf,
            basal_off_u_h=0.0,
            median_deviation_mg_dl=0.0,
            n_used=n_used,
            n_meal=counts[MEAL],
            n_uam=counts[UAM],
            n_invalid=counts[INVALID],
            n_neutral=neutral,
            n_padded=padded,
            percent_negative=0.0,
            percent_positive=0.0,
            reason=reason,
            t_min=steps.t_min,
            deviation_mg_dl=steps.deviation_mg_dl,
            category=cat,
            deviations_used=values,
        )
    median = float(np.median(values))
    basal_off = median * (60.0 / STEP_MIN) / isf
    raw = 1.0 + basal_off / s.max_daily_basal_u_h
    ratio = round(min(max(raw, s.autosens_min), s.autosens_max), 2)
    ratio = min(max(ratio, s.autosens_min), s.autosens_max)  # rounding never leaves the bounds
    neg = float((values < 0).mean() * 100.0)
    pos = float((values > 0).mean() * 100.0)
    if median < 0:
        kind = "sensitivity"
    elif median > 0:
        kind = "resistance"
    else:
        kind = "normal sensitivity"
    reason = (
        f"{kind}: median deviation {median:+.2f} mg/dL/5 min over {values.size} values "
        f"({n_used} used, {counts[MEAL]} meal and {counts[UAM]} after-meal excluded, "
        f"{counts[INVALID]} invalid, {neutral} neutral, {padded} padded) -> basal "
        f"{basal_off:+.3f} U/h, ratio {raw:.3f}"
    )
    if ratio != round(raw, 2):
        reason += f" limited to {ratio:.2f} [{s.autosens_min:g}, {s.autosens_max:g}]"
    return AutosensResult(
        ratio=ratio,
        raw_ratio=raw,
        isf_mg_dl_u=isf,
        new_isf_mg_dl_u=isf / ratio,
        basal_off_u_h=basal_off,
        median_deviation_mg_dl=median,
        n_used=n_used,
        n_meal=counts[MEAL],
        n_uam=counts[UAM],
        n_invalid=counts[INVALID],
        n_neutral=neutral,
        n_padded=padded,
        percent_negative=neg,
        percent_positive=pos,
        reason=reason,
        t_min=steps.t_min,
        deviation_mg_dl=steps.deviation_mg_dl,
        category=cat,
        deviations_used=values,
    )


__all__ = ["AutosensResult", "StepData", "autosens", "step_data"]
