"""Carb impact for one oref0 decision (npm ``oref0`` 0.7.1, determine-basal; AID_REFERENCE.md
§2.3). Impacts in mg/dL per 5 min, carbs in g, times in h, CSF in mg/dL/g.

- ci = minDelta − BGI (the deviation now), at most 30 g/h × CSF; uci is the same uncapped.
- CSF = ISF / CR, with the ISF already adjusted for sensitivity.
- remainingCATime: at least 3 h / ratio, longer for large meals (COB / 20 g/h), plus 1.5 h
  per hour since the last carbs.
- Carbs not explained by ci over that time (at most ``remainingCarbsCap``, 90 g) absorb as a
  triangle whose peak is ``remaining_ci_peak``.
- cid: how many 5-min steps ci lasts, at most half of remainingCATime.
- slope_from_deviations = min(slope from the max deviation, −slope from the min / 3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from openinfusion.control.aid.oref._js import jdiv, jmax, jmin, num, round_to, truthy

MAX_CARB_ABSORPTION_G_H = 30.0  # ceiling on the observed carb impact
ASSUMED_CARB_ABSORPTION_G_H = 20.0  # stretches the remaining time for large meals
MIN_REMAINING_CARB_TIME_H = 3.0
REMAINING_CARBS_CAP_G = 90.0


@dataclass(frozen=True, slots=True)
class CarbModel:
    """The carb terms of the prediction."""

    ci: float
    uci: float
    csf: float
    cid: float
    remaining_ca_time_h: float
    remaining_ci_peak: float
    slope_from_deviations: float
    meal_cob_g: float
    carbs_g: float


def carb_model(
    min_delta: float,
    bgi: float,
    sens: float,
    ratio: Any,
    profile: Mapping[str, Any],
    meal: Mapping[str, Any],
    now_ms: float,
) -> CarbModel:
    """Carb impact now, how long it lasts and the carbs not yet seen absorbing."""
    ci = round_to(min_delta - bgi, 1)
    uci = ci
    csf = jdiv(sens, num(profile.get("carb_ratio")))
    max_ci = round_to(MAX_CARB_ABSORPTION_G_H * csf * 5 / 60, 1)
    ci = min(ci, max_ci)  # a NaN cap leaves ci, as in the reference
    meal_cob = num(meal.get("mealCOB"))
    carbs = num(meal.get("carbs"))
    ca_time_min_h = MIN_REMAINING_CARB_TIME_H
    if truthy(ratio):
        ca_time_min_h = jdiv(ca_time_min_h, num(ratio))
    ca_time_h = ca_time_min_h
    if truthy(meal.get("carbs")):
        ca_time_min_h = jmax(ca_time_min_h, meal_cob / ASSUMED_CARB_ABSORPTION_G_H)
        last_carb_age_min = round_to((now_ms - num(meal.get("lastCarbTime"))) / 60000)
        ca_time_h = round_to(ca_time_min_h + 1.5 * last_carb_age_min / 60, 1)
    total_ci = jmax(0, ci / 5 * 60 * ca_time_h / 2)
    total_ca_g = jdiv(total_ci, csf)
    cap_g = REMAINING_CARBS_CAP_G
    if truthy(profile.get("remainingCarbsCap")):
        cap_g = jmin(REMAINING_CARBS_CAP_G, num(profile.get("remainingCarbsCap")))
    fraction = 1.0
    if truthy(profile.get("remainingCarbsFraction")):
        fraction = jmin(1, num(profile.get("remainingCarbsFraction")))
    remaining_g = jmax(0, meal_cob - total_ca_g - carbs * (1 - fraction))
    remaining_g = jmin(cap_g, remaining_g)
    peak = jdiv(remaining_g * csf * 5 / 60, ca_time_h / 2)
    slope_from_max = round_to(num(meal.get("slopeFromMaxDeviation")), 2)
    slope_from_min = round_to(num(meal.get("slopeFromMinDeviation")), 2)
    slope = jmin(slope_from_max, -slope_from_min / 3)
    cid = 0.0 if ci == 0 else jmin(ca_time_h * 60 / 5 / 2, jmax(0, jdiv(meal_cob * csf, ci)))
    return CarbModel(ci, uci, csf, cid, ca_time_h, peak, slope, meal_cob, carbs)
