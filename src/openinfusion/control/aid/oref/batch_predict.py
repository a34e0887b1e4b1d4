"""The four oref0 prediction curves and their blend for N cases at once (the batch twins
of :mod:`.predict` and :mod:`.blend`). Glucose mg/dL, one point per 5 min.

Each curve is a running sum, point = previous point + BGI + the curve's other terms, added
one term at a time in the reference's order. The terms of all 48 steps are laid out
time-major, and one running sum down the time axis then performs exactly the scalar loop's additions, in its
order, for every case at once: the same doubles. Row 0 is BG; row
k + 1 is the point after tick k; the 49th point (after the last tick) is computed, not
displayed, and counts for the minima and the "last" values, as in the reference.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

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
    the reference's are NaN), and the rounded minima, maxima and ends of each case.
    ``stacked`` (49, 4N) holds the four curves side by side, [ZT | IOB | COB | UAM]; it and
    the curves are views of a per-thread work area that the next call overwrites."""

    stacked: FloatArray
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
    last_iob: FloatArray
    last_cob: FloatArray
    last_uam: FloatArray


class _Workspace:
    """Work arrays for N cases, kept between calls: fresh multi-megabyte arrays on every
    call would cost more in page faults than the arithmetic done in them."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.first = np.empty((POINTS, 4 * n))
        self.second = np.empty((POINTS, 3 * n))
        self.third = np.empty((POINTS, 2 * n))
        self.rci = np.empty((POINTS, n))
        self.tmp = np.empty((POINTS, n))
        self.state = np.empty((POINTS + 1, 4 * n))
        self.run_max = np.empty((POINTS + 1, n))


_LOCAL = threading.local()


def _workspace(n: int) -> _Workspace:
    """This thread's work area for N cases (made anew when N changes)."""
    ws: _Workspace | None = getattr(_LOCAL, "workspace", None)
    if ws is None or ws.n != n:
        ws = _Workspace(n)
        _LOCAL.workspace = ws
    return ws


def _bgi(activity_t: FloatArray, sens: FloatArray, out: FloatArray, whole: FloatArray) -> None:
    """Per-tick BGI, ``Math.round(-activity x ISF x 5 x 100) / 100``, into ``out``
    (``whole`` is scratch space of the same shape)."""
    np.multiply(activity_t, sens, out=out)
    out *= -5  # (-a x s) x 5 is (a x s) x -5 exactly: rounding is symmetric
    out *= 100
    np.floor(out, out=whole)
    np.subtract(out, whole, out=out)
    whole += out >= 0.5
    np.divide(whole, 100, out=out)


def _positive(x: FloatArray) -> None:
    """``x > 0 ? x : 0`` in place (NaN becomes 0, as the scalar fast path's test does; a
    -0 may stay, which adds as 0)."""
    np.fmax(x, 0.0, out=x)


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
    ticks: NDArray[np.intp],
) -> BatchPredictions:
    """:func:`.predict.predict` for N cases; ``activity_t`` and ``zt_activity_t`` are the
    tick activities (48, N) in U/min, the rest (N,). ``ticks`` (at least 1) is how many
    ticks each case has: a case with fewer stops its curves after that many points, as the
    reference does when the zero-temp ticks end. The caller sends only cases whose IOB
    inputs, BG, ISF and carb impact are finite numbers."""
    n = bg.shape[0]
    ws = _workspace(n)
    # Terms of each step, laid out as the running sum adds them: columns [ZT | IOB | COB |
    # UAM] get BGI first, [IOB | COB | UAM] the deviation (falling part for COB and UAM),
    # [COB | UAM] the carb or UAM impact, and COB alone the remaining-carbs triangle.
    first, second, third, rci = ws.first, ws.second, ws.third, ws.rci
    _bgi(zt_activity_t, sens, first[:, :n], ws.tmp)
    bgi = first[:, n : 2 * n]
    _bgi(activity_t, sens, bgi, ws.tmp)
    first[:, 2 * n : 3 * n] = bgi
    first[:, 3 * n :] = bgi
    dev = np.multiply(ci, _DEV, out=second[:, :n])
    np.minimum(dev, 0.0, out=second[:, n : 2 * n])  # dev < 0 ? dev : 0 (dev is finite)
    second[:, 2 * n :] = second[:, n : 2 * n]
    ci_span = cid * 2
    ci_span = np.where(ci_span > 1, ci_span, 1.0)
    pci = np.divide(_STEPS, ci_span, out=third[:, :n])
    np.subtract(1, pci, out=pci)
    pci *= np.where(ci > 0, ci, 0.0)
    _positive(pci)
    slope_ci = np.multiply(_STEPS, slope, out=ws.tmp)
    slope_ci += uci
    _positive(slope_ci)
    linear_ci = np.multiply(uci, _UAM, out=rci)
    _positive(linear_ci)
    np.minimum(slope_ci, linear_ci, out=third[:, n:])
    ca_points = ca_time_h * 12
    ca_half_points = ca_time_h / 2 * 12
    intervals = np.subtract(ca_points, _STEPS, out=rci)
    np.minimum(intervals, _STEPS, out=intervals)  # n < intervals ? n : intervals (NaN stays)
    np.divide(intervals, ca_half_points, out=rci)
    rci *= ci_peak
    _positive(rci)

    # A NaN curve (the reference's, for missing meal data or a curve it does not need)
    # and a curve that ends early: a NaN term at the right step makes every later point NaN.
    first[0, 2 * n : 3 * n][np.isnan(cid) | np.isnan(ci_peak) | ~cob_needed] = np.nan
    first[0, 3 * n :][np.isnan(slope) | ~enable_uam] = np.nan
    for case in np.flatnonzero(ticks < POINTS).tolist():  # rare
        first[ticks[case], case::n] = np.nan

    state = ws.state
    state[0, :n] = bg
    state[0, n : 2 * n] = bg
    state[0, 2 * n : 3 * n] = bg
    state[0, 3 * n :] = bg
    for k in range(POINTS):
        row = state[k + 1]
        np.add(state[k], first[k], out=row)
        tail = row[n:]
        np.add(tail, second[k], out=tail)
        tail = row[2 * n :]
        np.add(tail, third[k], out=tail)
        tail = row[2 * n : 3 * n]
        np.add(tail, rci[k], out=tail)
    zt = state[:, :n]
    iob = state[:, n : 2 * n]
    cob = state[:, 2 * n : 3 * n]
    uam = state[:, 3 * n :]
    cases = np.arange(n)
    guards = _rounded_min(state[1:])  # [ZT | IOB | COB | UAM], NaN points ignored
    late = _rounded_min(state[_IOB_WAIT_POINTS:, n : 3 * n])  # [IOB | COB]
    late_uam = _rounded_min(state[_UAM_WAIT_POINTS:, 3 * n :])
    run_max = ws.run_max  # the running IOB maximum, BG included
    run_max[0] = iob[0]
    for k in range(POINTS):
        np.maximum(run_max[k], iob[k + 1], out=run_max[k + 1])
    cob_above = (cob[1:] > run_max[1:]) & carbs_active
    last_above = POINTS - 1 - np.argmax(cob_above[::-1], axis=0)
    max_cob = np.where(cob_above.any(axis=0), cob[1:][last_above, cases], bg)
    return BatchPredictions(
        stacked=state,
        iob=iob,
        cob=cob,
        uam=uam,
        zt=zt,
        min_iob_pred=late[:n],
        min_cob_pred=np.where(carbs_active, late[n:], _UNSET),
        min_uam_pred=np.where(enable_uam, late_uam, _UNSET),
        min_iob_guard=guards[n : 2 * n],
        min_cob_guard=guards[2 * n : 3 * n],
        min_uam_guard=guards[3 * n :],
        min_zt_guard=guards[:n],
        max_cob_pred=max_cob,
        last_iob=iob[ticks, cases],
        last_cob=cob[ticks, cases],
        last_uam=uam[ticks, cases],
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
    last_iob, last_cob, last_uam = pred.last_iob, pred.last_cob, pred.last_uam
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
