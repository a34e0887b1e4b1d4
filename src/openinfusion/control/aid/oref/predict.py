# ruff: noqa: PLR1730  (the hot loop keeps explicit comparisons: no builtin call per step)
"""The four 4-hour glucose predictions of oref0 (IOB, COB, UAM, zero-temp) and the minima
and guards taken from them (npm ``oref0`` 0.7.1, determine-basal prediction loop; see
AID_REFERENCE.md §2.3). Glucose in mg/dL, one point per 5 min, impacts in mg/dL/5 min.

- IOB: insulin effect plus the current carb impact ``ci`` decaying to 0 over 60 min.
- ZT: insulin effect assuming a zero temp from now, no deviation.
- COB: insulin plus ``ci`` decaying linearly over ``cid`` steps, plus carbs not yet seen
  absorbing as a triangle peaking at half of ``remaining_ca_time_h``.
- UAM: insulin plus the unexplained impact ``uci`` falling at the deviation slope, no
  slower than a linear fall over 3 h.

The reference keeps computing past the 48th point without storing it: the extra points
still count for the minima and the "last" values, and so do they here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from openinfusion.control.aid.oref._js import NAN, jdiv, jmax, jmin, jround, num, truthy

POINTS = 48  # 4 h of 5-min points, the first being now
_IOB_WAIT_POINTS = 18  # minIOBPredBG only after 90 min (insulin peak plus delivery delay)
_UAM_WAIT_POINTS = 12  # minUAMPredBG only after 60 min
_DEVIATION_DECAY_POINTS = 12  # IOB curve: deviation fades over 60 min
_UAM_MAX_DECAY_POINTS = 36  # UAM impact fades over at most 3 h


@dataclass(slots=True)
class Predictions:
    """Raw (unrounded) curves and the running extremes the dosing rules use."""

    iob: list[float]
    cob: list[float]
    uam: list[float]
    zt: list[float]
    min_iob_pred: float
    min_cob_pred: float
    min_uam_pred: float
    min_iob_guard: float
    min_cob_guard: float
    min_uam_guard: float
    min_zt_guard: float
    max_cob_pred: float
    last_iob: float
    last_cob: float
    last_uam: float


def _predict_general(
    ticks: Sequence[Mapping[str, Any]],
    bg: float,
    eventual_bg: float,
    sens: float,
    ci: float,
    uci: float,
    cid: float,
    remaining_ca_time_h: float,
    remaining_ci_peak: float,
    slope_from_deviations: float,
    enable_uam: bool,
) -> Predictions:
    """The prediction loop with the reference's semantics for every value (NaN, missing
    fields); :func:`predict` uses it when its fast path does not apply."""
    iob = [bg]
    cob = [bg]
    uam = [bg]
    zt = [bg]
    min_iob_pred = min_cob_pred = min_uam_pred = 999.0
    min_iob_guard = min_cob_guard = min_uam_guard = min_zt_guard = 999.0
    max_iob_pred = bg
    max_cob_pred = bg
    iob_pred = eventual_bg
    cob_pred = uam_pred = NAN
    carbs_active = truthy(cid) or remaining_ci_peak > 0
    ci_positive = jmax(0, ci)
    ci_span = jmax(cid * 2, 1)
    ca_points = remaining_ca_time_h * 12
    ca_half_points = remaining_ca_time_h / 2 * 12
    for index, tick in enumerate(ticks):
        zero_temp = tick.get("iobWithZeroTemp")
        if not isinstance(zero_temp, Mapping):
            if index == 0:
                raise ValueError("iob_data[0] has no iobWithZeroTemp")
            break
        pred_bgi = jround(-num(tick.get("activity")) * sens * 5 * 100) / 100
        pred_zt_bgi = jround(-num(zero_temp.get("activity")) * sens * 5 * 100) / 100
        n = len(iob)
        pred_dev = ci * (1 - jmin(1, n / _DEVIATION_DECAY_POINTS))
        iob_pred = iob[-1] + pred_bgi + pred_dev
        zt_pred = zt[-1] + pred_zt_bgi
        n = len(cob)
        pred_ci = jmax(0, ci_positive * (1 - n / ci_span))
        intervals = jmin(n, ca_points - n)
        remaining_ci = jmax(0, jdiv(intervals, ca_half_points) * remaining_ci_peak)
        falling_dev = jmin(0, pred_dev)
        cob_pred = cob[-1] + pred_bgi + falling_dev + pred_ci + remaining_ci
        n = len(uam)
        uci_slope = jmax(0, uci + n * slope_from_deviations)
        uci_linear = jmax(0, uci * (1 - n / _UAM_MAX_DECAY_POINTS))
        uam_pred = uam[-1] + pred_bgi + falling_dev + jmin(uci_slope, uci_linear)
        if len(iob) < POINTS:
            iob.append(iob_pred)
        if len(cob) < POINTS:
            cob.append(cob_pred)
        if len(uam) < POINTS:
            uam.append(uam_pred)
        if len(zt) < POINTS:
            zt.append(zt_pred)
        if cob_pred < min_cob_guard:
            min_cob_guard = jround(cob_pred)
        if uam_pred < min_uam_guard:
            min_uam_guard = jround(uam_pred)
        if iob_pred < min_iob_guard:
            min_iob_guard = jround(iob_pred)
        if zt_pred < min_zt_guard:
            min_zt_guard = jround(zt_pred)
        if len(iob) > _IOB_WAIT_POINTS and iob_pred < min_iob_pred:
            min_iob_pred = jround(iob_pred)
        max_iob_pred = max(max_iob_pred, iob_pred)
        if carbs_active and len(cob) > _IOB_WAIT_POINTS and cob_pred < min_cob_pred:
            min_cob_pred = jround(cob_pred)
        # The reference compares the COB point with the IOB maximum here (kept as is).
        if carbs_active and cob_pred > max_iob_pred:
            max_cob_pred = cob_pred
        if enable_uam and len(uam) > _UAM_WAIT_POINTS and uam_pred < min_uam_pred:
            min_uam_pred = jround(uam_pred)
    return Predictions(
        iob,
        cob,
        uam,
        zt,
        min_iob_pred,
        min_cob_pred,
        min_uam_pred,
        min_iob_guard,
        min_cob_guard,
        min_uam_guard,
        min_zt_guard,
        max_cob_pred,
        iob_pred,
        cob_pred,
        uam_pred,
    )


# Factors of the step count n (points already in a curve), computed as the reference does.
_DEV_FACTOR = tuple(1 - min(1, n / _DEVIATION_DECAY_POINTS) for n in range(POINTS + 1))
_UAM_FACTOR = tuple(1 - n / _UAM_MAX_DECAY_POINTS for n in range(POINTS + 1))


def predict(
    ticks: Sequence[Mapping[str, Any]],
    bg: float,
    eventual_bg: float,
    sens: float,
    ci: float,
    uci: float,
    cid: float,
    remaining_ca_time_h: float,
    remaining_ci_peak: float,
    slope_from_deviations: float,
    enable_uam: bool,
    cob_needed: bool = True,
) -> Predictions:
    """Run the prediction over the IOB ticks (each with ``activity`` U/min and
    ``iobWithZeroTemp.activity``). A tick without ``iobWithZeroTemp`` ends the curves there,
    as the reference's exception does; on the first tick it is an error (ValueError).

    ``cob_needed`` False (no carbs active and no COB curve to show) and ``enable_uam`` False
    let the fast path skip the COB and UAM curves, which the decision then does not read
    (their points are NaN).

    Fast path (all inputs finite numbers): plain float arithmetic in the reference's order,
    so every value is the same double; running minima are rounded once at the end, which
    gives the reference's rounded running minima (rounding is monotonic).
    """
    args = (bg, eventual_bg, sens, ci, uci, remaining_ca_time_h)
    general = (
        ticks,
        bg,
        eventual_bg,
        sens,
        ci,
        uci,
        cid,
        remaining_ca_time_h,
        remaining_ci_peak,
        slope_from_deviations,
        enable_uam,
    )
    try:
        activity = [t["activity"] for t in ticks]
        zt_activity = [t["iobWithZeroTemp"]["activity"] for t in ticks]
        total = sum(activity) + sum(zt_activity) + sum(args)
        usable = total - total == 0.0 and remaining_ca_time_h != 0
    except (KeyError, TypeError):
        usable = False
    if not usable:
        return _predict_general(*general)
    floor = math.floor
    pred_bgi = [
        (f + 1 if (x := -a * sens * 5 * 100) - (f := floor(x)) >= 0.5 else f) / 100
        for a in activity
    ]
    pred_zt_bgi = [
        (f + 1 if (x := -a * sens * 5 * 100) - (f := floor(x)) >= 0.5 else f) / 100
        for a in zt_activity
    ]
    iob = [bg]
    cob = [bg]
    uam = [bg]
    zt = [bg]
    iob_last = cob_last = uam_last = zt_last = bg
    low_iob = low_cob = low_uam = low_zt = math.inf  # minima over every point
    late_iob = late_cob = late_uam = math.inf  # minima after the waits
    max_iob_pred = bg
    max_cob_pred = bg
    carbs_active = truthy(cid) or remaining_ci_peak > 0
    ci_positive = ci if ci > 0 else 0.0
    # Missing meal data (NaN carbs, COB or slopes) makes the whole COB or UAM curve NaN
    # in the reference (Math.max/min pass NaN on); NaN compares false, so no minimum moves.
    cob_nan = math.isnan(cid) or math.isnan(remaining_ci_peak) or not cob_needed
    uam_nan = math.isnan(slope_from_deviations) or not enable_uam
    ci_span = cid * 2
    if not ci_span > 1:
        ci_span = 1.0
    ca_points = remaining_ca_time_h * 12
    ca_half_points = remaining_ca_time_h / 2 * 12
    iob_p = eventual_bg
    cob_p = uam_p = NAN
    for k in range(len(activity)):
        n = k + 1 if k < POINTS - 1 else POINTS
        bgi = pred_bgi[k]
        dev = ci * _DEV_FACTOR[n]
        iob_p = iob_last + bgi + dev
        zt_p = zt_last + pred_zt_bgi[k]
        falling = dev if dev < 0 else 0.0
        if cob_nan:
            cob_p = NAN
        else:
            pci = ci_positive * (1 - n / ci_span)
            if not pci > 0:
                pci = 0.0
            intervals = ca_points - n
            if n < intervals:
                intervals = n
            rci = intervals / ca_half_points * remaining_ci_peak
            if not rci > 0:
                rci = 0.0
            cob_p = cob_last + bgi + falling + pci + rci
        if uam_nan:
            uam_p = NAN
        else:
            slope_ci = uci + n * slope_from_deviations
            if not slope_ci > 0:
                slope_ci = 0.0
            linear_ci = uci * _UAM_FACTOR[n]
            if not linear_ci > 0:
                linear_ci = 0.0
            uam_p = uam_last + bgi + falling + (slope_ci if slope_ci < linear_ci else linear_ci)
        if k < POINTS - 1:
            iob.append(iob_p)
            cob.append(cob_p)
            uam.append(uam_p)
            zt.append(zt_p)
            iob_last, cob_last, uam_last, zt_last = iob_p, cob_p, uam_p, zt_p
        if cob_p < low_cob:
            low_cob = cob_p
        if uam_p < low_uam:
            low_uam = uam_p
        if iob_p < low_iob:
            low_iob = iob_p
        if zt_p < low_zt:
            low_zt = zt_p
        if k >= _IOB_WAIT_POINTS - 1:
            if iob_p < late_iob:
                late_iob = iob_p
            if carbs_active and cob_p < late_cob:
                late_cob = cob_p
        if iob_p > max_iob_pred:
            max_iob_pred = iob_p
        if carbs_active and cob_p > max_iob_pred:
            max_cob_pred = cob_p
        if k >= _UAM_WAIT_POINTS - 1 and enable_uam and uam_p < late_uam:
            late_uam = uam_p
    return Predictions(
        iob,
        cob,
        uam,
        zt,
        _rounded_min(late_iob),
        _rounded_min(late_cob),
        _rounded_min(late_uam),
        _rounded_min(low_iob),
        _rounded_min(low_cob),
        _rounded_min(low_uam),
        _rounded_min(low_zt),
        max_cob_pred,
        iob_p,
        cob_p,
        uam_p,
    )


def _rounded_min(lowest: float) -> float:
    """The reference's running minimum: rounded, and 999 when nothing went below 999."""
    return jround(lowest) if lowest < 999 else 999.0
