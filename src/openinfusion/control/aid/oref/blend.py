"""From the four prediction curves to the numbers oref0 doses on (npm ``oref0`` 0.7.1,
determine-basal; AID_REFERENCE.md §2.3). Glucose in mg/dL.

- minGuardBG: the lowest point of the COB and UAM curves blended by the fraction of carbs
  left (UAM alone without carbs; IOB when UAM is off).
- minPredBG: the IOB minimum after 90 min, raised to the COB minimum (after 90 min) and the
  zero-temp-tempered UAM minimum (after 60 min) as carbs and UAM allow; never above the
  average of the curves' ends, nor above the COB maximum once it exceeds BG.
"""

from __future__ import annotations

from dataclasses import dataclass

from openinfusion.control.aid.oref._js import jdiv, jmax, jmin, jround
from openinfusion.control.aid.oref.predict import Predictions

_FLOOR_MG_DL = 39.0  # the lowest a prediction may count
_UNSET = 999.0  # a minimum nothing went below


@dataclass(frozen=True, slots=True)
class Blended:
    """minPredBG, minGuardBG and minIOBPredBG (floored at 39) of one decision."""

    min_pred_bg: float
    min_guard_bg: float
    min_iob_pred_bg: float


def blend_predictions(
    pred: Predictions,
    bg: float,
    meal_cob_g: float,
    carbs_g: float,
    carbs_entered: bool,
    carbs_active: bool,
    enable_uam: bool,
    threshold: float,
    target_bg: float,
) -> Blended:
    """Blend the curves' minima and ends as the reference does."""
    min_iob = jmax(_FLOOR_MG_DL, pred.min_iob_pred)
    min_cob = jmax(_FLOOR_MG_DL, pred.min_cob_pred)
    min_uam = jmax(_FLOOR_MG_DL, pred.min_uam_pred)
    min_pred = jround(min_iob)
    carbs_left = jdiv(meal_cob_g, carbs_g)
    if min_uam < _UNSET and min_cob < _UNSET:
        avg_pred = jround((1 - carbs_left) * pred.last_uam + carbs_left * pred.last_cob)
    elif min_cob < _UNSET:
        avg_pred = jround((pred.last_iob + pred.last_cob) / 2)
    elif min_uam < _UNSET:
        avg_pred = jround((pred.last_iob + pred.last_uam) / 2)
    else:
        avg_pred = jround(pred.last_iob)
    min_zt_guard = pred.min_zt_guard
    avg_pred = max(avg_pred, min_zt_guard)  # keeps avg_pred unless the guard is higher

    if carbs_active:
        if enable_uam:
            guard = carbs_left * pred.min_cob_guard + (1 - carbs_left) * pred.min_uam_guard
        else:
            guard = pred.min_cob_guard
    elif enable_uam:
        guard = pred.min_uam_guard
    else:
        guard = pred.min_iob_guard
    min_guard = jround(guard)

    # Temper a high UAM minimum when the zero-temp curve goes low (or lift a low one).
    zt_uam = min_uam
    if min_zt_guard < threshold:
        zt_uam = (min_uam + min_zt_guard) / 2
    elif min_zt_guard < target_bg:
        weight = (min_zt_guard - threshold) / (target_bg - threshold)
        blended_zt = min_uam * weight + min_zt_guard * (1 - weight)
        zt_uam = (min_uam + blended_zt) / 2
    elif min_zt_guard > min_uam:
        zt_uam = (min_uam + min_zt_guard) / 2
    zt_uam = jround(zt_uam)

    if carbs_entered:
        if not enable_uam and min_cob < _UNSET:
            min_pred = jround(jmax(min_iob, min_cob))
        elif min_cob < _UNSET:
            by_carbs_left = carbs_left * min_cob + (1 - carbs_left) * zt_uam
            min_pred = jround(jmax(min_iob, min_cob, by_carbs_left))
        elif enable_uam:
            min_pred = zt_uam
        else:
            min_pred = min_guard
    elif enable_uam:
        min_pred = jround(jmax(min_iob, zt_uam))
    min_pred = jmin(min_pred, avg_pred)
    if pred.max_cob_pred > bg:
        min_pred = jmin(min_pred, pred.max_cob_pred)
    return Blended(min_pred, min_guard, min_iob)
