"""The four oref0 prediction curves and their blend for N cases at once (the batch twins
of :mod:`.predict` and :mod:`.blend`). Glucose mg/dL, one point per 5 min.

Each curve is a running sum, point = previous point + BGI + the curve's other terms, added
one term at a time in the reference's order. The terms of all 48 steps are laid out
time-major and interleaved (BGI, deviation, BGI, deviation, ...), and one
``np.add.accumulate`` down the time axis then performs exactly the scalar loop's
additions, in its order, for every case at once: the same doubles. Row 0 is BG; row
k + 1 is the point after tick k; the 49th point (after the last tick) is computed, not
displayed, and counts for the minima and the "last" values, as in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openinfusion.control.aid.oref._vec import BoolArray, FloatArray, jround, py_max
from openinfusion.control.aid.oref.predict import (
    _DEV_FACTOR,
    _IOB_WAIT_POINTS,
    _UAM_FACTOR,
    _UAM_WAIT_POINTS,
    POINTS,
)

_STEPS = np.arange(1, POINTS + 1, dtype=float)[:, None]  # n, points already in a curve
_DEV = np.array(_DEV_FACTOR[1 : POINTS + 1])[:, None]
_UAM = np.array(_UAM_FACTOR[1 : POINTS + 1])[:, None]
_UNSET = 999.0
_FLOOR_MG_DL = 39.0


@dataclass(slots=True)
class BatchPredictions:
    """Curves (49, N): row 0 BG, rows 1-48 the points after each tick (NaN curves where
    the reference's are NaN), and the rounded minima, maxima and ends of each case."""

    iob: FloatArray
    cob: FloatArray
    uam: FloatArray
    zt: FloatArray
    min_iob_pred: FloatArray
    min_cob_pred: FloatArray
    min_uam_pred: FloatArray
    min_iob_guard: FloatArray
    min_cob_guard: FloatArray
    min_uam_guard: FloatArray
    min_zt_guard: FloatArray
    max_cob_pred: FloatArray


def _interleaved(start: FloatArray, *terms: FloatArray) -> FloatArray:
    """Running sum of ``start`` then, per step, each term in turn; the points (49, N)."""
    width = len(terms)
    stacked = np.empty((1 + width * POINTS, start.shape[0]))
    stacked[0] = start
    for j, term in enumerate(terms):
        stacked[1 + j :: width] = term
    summed: FloatArray = np.add.accumulate(stacked, axis=0)[::width]
    return summed


def _rounded_min(values: FloatArray) -> FloatArray:
    """Lowest point of each column ignoring NaN, rounded; 999 when none is below 999."""
    low = np.fmin.reduce(values, axis=0)
    out: FloatArray = np.where(low < _UNSET, jround(low), _UNSET)
    return out


def predict_batch(
    activity_t: FloatArray,
    zt_activity_t: FloatArray,
    bg: FloatArray,
    sens: FloatArray,
    ci: FloatArray,
    uci: FloatArray,
    cid: FloatArray,
    ca_time_h: FloatArray,
    ci_peak: FloatArray,
    slope: FloatArray,
    enable_uam: BoolArray,
    cob_needed: BoolArray,
    carbs_active: BoolArray,
) -> BatchPredictions:
    """The fast path of :func:`.predict.predict` for N cases; ``activity_t`` and
    ``zt_activity_t`` are the tick activities (48, N) in U/min, the rest (N,). The caller
    sends only cases whose inputs are all finite with a non-zero carb time."""
    bgi = jround(-activity_t * sens * 5 * 100) / 100
    zt_bgi = jround(-zt_activity_t * sens * 5 * 100) / 100
    dev = ci * _DEV
    falling = np.where(dev < 0, dev, 0.0)
    ci_span = cid * 2
    ci_span = np.where(ci_span > 1, ci_span, 1.0)
    pci = np.where(ci > 0, ci, 0.0) * (1 - _STEPS / ci_span)
    pci = np.where(pci > 0, pci, 0.0)
    ca_points = ca_time_h * 12
    ca_half_points = ca_time_h / 2 * 12
    intervals = ca_points - _STEPS
    intervals = np.where(intervals > _STEPS, _STEPS, intervals)
    rci = intervals / ca_half_points * ci_peak
    rci = np.where(rci > 0, rci, 0.0)
    slope_ci = uci + _STEPS * slope
    slope_ci = np.where(slope_ci > 0, slope_ci, 0.0)
    linear_ci = uci * _UAM
    linear_ci = np.where(linear_ci > 0, linear_ci, 0.0)
    uam_ci = np.where(slope_ci < linear_ci, slope_ci, linear_ci)

    iob = _interleaved(bg, bgi, dev)
    zt = np.add.accumulate(np.concatenate([bg[None, :], zt_bgi]), axis=0)
    cob = _interleaved(bg, bgi, falling, pci, rci)
    uam = _interleaved(bg, bgi, falling, uam_ci)
    cob[1:, np.isnan(cid) | np.isnan(ci_peak) | ~cob_needed] = np.nan
    uam[1:, np.isnan(slope) | ~enable_uam] = np.nan

    points = iob[1:]
    late = slice(_IOB_WAIT_POINTS, None)
    run_max = np.maximum.accumulate(iob, axis=0)
    cob_above = (cob[1:] > run_max[1:]) & carbs_active
    last_above = POINTS - 1 - np.argmax(cob_above[::-1], axis=0)
    max_cob = np.where(cob_above.any(axis=0), cob[1:][last_above, np.arange(bg.shape[0])], bg)
    no_carbs = np.where(carbs_active, 0.0, np.nan)
    no_uam = np.where(enable_uam, 0.0, np.nan)
    return BatchPredictions(
        iob=iob,
        cob=cob,
        uam=uam,
        zt=zt,
        min_iob_pred=_rounded_min(iob[late]),
        min_cob_pred=_rounded_min(cob[late] + no_carbs),
        min_uam_pred=_rounded_min(uam[_UAM_WAIT_POINTS:] + no_uam),
        min_iob_guard=_rounded_min(points),
        min_cob_guard=_rounded_min(cob[1:]),
        min_uam_guard=_rounded_min(uam[1:]),
        min_zt_guard=_rounded_min(zt[1:]),
        max_cob_pred=max_cob,
    )


@dataclass(slots=True)
class BatchBlend:
    """minPredBG, minGuardBG and minIOBPredBG (floored at 39) of each case."""

    min_pred_bg: FloatArray
    min_guard_bg: FloatArray
    min_iob_pred_bg: FloatArray


def blend_batch(
    pred: BatchPredictions,
    bg: FloatArray,
    meal_cob_g: FloatArray,
    carbs_g: FloatArray,
    carbs_entered: BoolArray,
    carbs_active: BoolArray,
    enable_uam: BoolArray,
    threshold: FloatArray,
    target_bg: FloatArray,
) -> BatchBlend:
    """:func:`.blend.blend_predictions` for N cases (its branches as masks)."""
    last_iob, last_cob, last_uam = pred.iob[-1], pred.cob[-1], pred.uam[-1]
    min_iob = np.maximum(_FLOOR_MG_DL, pred.min_iob_pred)
    min_cob = np.maximum(_FLOOR_MG_DL, pred.min_cob_pred)
    min_uam = np.maximum(_FLOOR_MG_DL, pred.min_uam_pred)
    carbs_left = meal_cob_g / carbs_g
    cob_set = min_cob < _UNSET
    uam_set = min_uam < _UNSET
    avg_pred = np.where(
        uam_set & cob_set,
        jround((1 - carbs_left) * last_uam + carbs_left * last_cob),
        np.where(
            cob_set,
            jround((last_iob + last_cob) / 2),
            np.where(uam_set, jround((last_iob + last_uam) / 2), jround(last_iob)),
        ),
    )
    min_zt_guard = pred.min_zt_guard
    avg_pred = py_max(avg_pred, min_zt_guard)
    guard = np.where(
        carbs_active,
        np.where(
            enable_uam,
            carbs_left * pred.min_cob_guard + (1 - carbs_left) * pred.min_uam_guard,
            pred.min_cob_guard,
        ),
        np.where(enable_uam, pred.min_uam_guard, pred.min_iob_guard),
    )
    min_guard = jround(guard)

    weight = (min_zt_guard - threshold) / (target_bg - threshold)
    blended_zt = min_uam * weight + min_zt_guard * (1 - weight)
    zt_uam = np.where(
        min_zt_guard < threshold,
        (min_uam + min_zt_guard) / 2,
        np.where(
            min_zt_guard < target_bg,
            (min_uam + blended_zt) / 2,
            np.where(min_zt_guard > min_uam, (min_uam + min_zt_guard) / 2, min_uam),
        ),
    )
    zt_uam = jround(zt_uam)

    by_carbs_left = carbs_left * min_cob + (1 - carbs_left) * zt_uam
    entered = np.where(
        ~enable_uam & cob_set,
        jround(np.maximum(min_iob, min_cob)),
        np.where(
            cob_set,
            jround(np.maximum(np.maximum(min_iob, min_cob), by_carbs_left)),
            np.where(enable_uam, zt_uam, min_guard),
        ),
    )
    min_pred = np.where(
        carbs_entered,
        entered,
        np.where(enable_uam, jround(np.maximum(min_iob, zt_uam)), jround(min_iob)),
    )
    min_pred = np.minimum(min_pred, avg_pred)
    min_pred = np.where(pred.max_cob_pred > bg, np.minimum(min_pred, pred.max_cob_pred), min_pred)
    return BatchBlend(min_pred, min_guard, min_iob)
