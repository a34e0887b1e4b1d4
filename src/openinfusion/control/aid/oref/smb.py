"""oref1 super micro-bolus (SMB) sizing and its accompanying temp (npm ``oref0`` 0.7.1,
determine-basal; AID_REFERENCE.md §2.3). Insulin in U, rates U/h, times min.

- maxBolus = basal x ``maxSMBBasalMinutes`` / 60 (30 min when unset), or x
  ``maxUAMSMBBasalMinutes`` when IOB already exceeds COB / CR.
- micro-bolus = floor(min(insulinReq / 2, maxBolus) / bolus_increment) x bolus_increment.
- A zero temp (30 or 60 min) or a low temp for 30 min long enough to bring the mean of the
  naive eventual BG and the IOB minimum to target.
- At most one micro-bolus every ``SMBInterval`` min (3 by default, 1-10).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from openinfusion.control.aid.oref._js import (
    NAN,
    jdiv,
    jfloor,
    jmax,
    jmin,
    jround,
    js_str,
    num,
    round_to,
    truthy,
)


def micro_bolus(
    result: dict[str, Any],
    profile: Mapping[str, Any],
    insulin_req: float,
    iob: float,
    meal_cob: float,
    basal: float,
    target_bg: float,
    naive_eventual_bg: float,
    min_iob_pred_bg: float,
    sens: float,
    last_bolus_age_min: float,
) -> bool:
    """Add the micro-bolus (``units``) and its reasons to ``result``; True when it also set
    the zero/low temp that ends the decision."""
    current_basal_u_h = num(profile.get("current_basal"))
    meal_insulin_req = round_to(jdiv(meal_cob, num(profile.get("carb_ratio"))), 3)
    if profile.get("maxSMBBasalMinutes") is None:
        max_bolus = round_to(current_basal_u_h * 30 / 60, 1)
    elif iob > meal_insulin_req and iob > 0:
        # IOB already covers the carbs: limit by the UAM minutes instead.
        uam_minutes = profile.get("maxUAMSMBBasalMinutes")
        if truthy(uam_minutes):
            max_bolus = round_to(current_basal_u_h * num(uam_minutes) / 60, 1)
        else:
            max_bolus = round_to(current_basal_u_h * 30 / 60, 1)
    else:
        max_bolus = round_to(current_basal_u_h * num(profile.get("maxSMBBasalMinutes")) / 60, 1)
    bolus_increment = 0.1
    if truthy(profile.get("bolus_increment")):
        bolus_increment = num(profile.get("bolus_increment"))
    steps_per_unit = jdiv(1, bolus_increment)
    bolus_u = jdiv(jfloor(jmin(insulin_req / 2, max_bolus) * steps_per_unit), steps_per_unit)
    # A zero/low temp long enough to bring the mean of naive and IOB predictions to target.
    worst_case_req = jdiv(target_bg - (naive_eventual_bg + min_iob_pred_bg) / 2, sens)
    duration_req = jround(jdiv(60 * worst_case_req, current_basal_u_h))
    if insulin_req > 0 and bolus_u < bolus_increment:
        duration_req = 0.0
    low_temp_rate = 0.0
    if duration_req <= 0:
        duration_req = 0.0
    elif duration_req >= 30:
        duration_req = jmin(60, jmax(0, jround(duration_req / 30) * 30))
    else:
        low_temp_rate = round_to(basal * duration_req / 30, 2)
        duration_req = 30.0
    result["reason"] += f" insulinReq {js_str(insulin_req)}"
    if bolus_u >= max_bolus:
        result["reason"] += f"; maxBolus {js_str(max_bolus)}"
    if duration_req > 0:
        result["reason"] += (
            f"; setting {js_str(duration_req)}m low temp of {js_str(low_temp_rate)}U/h"
        )
    result["reason"] += ". "
    smb_interval_min = 3.0
    if truthy(profile.get("SMBInterval")):
        smb_interval_min = jmin(10, jmax(1, num(profile.get("SMBInterval"))))
    if last_bolus_age_min > smb_interval_min:
        if bolus_u > 0:
            result["units"] = bolus_u
            result["reason"] += f"Microbolusing {js_str(bolus_u)}U. "
    else:
        wait_min = jround(smb_interval_min - last_bolus_age_min)
        wait_s = _js_mod(jround((smb_interval_min - last_bolus_age_min) * 60), 60)
        result["reason"] += f"Waiting {js_str(wait_min)}m {js_str(wait_s)}s to microbolus again. "
    if duration_req > 0:
        result["rate"] = low_temp_rate
        result["duration"] = duration_req
        return True
    return False


def _js_mod(x: float, m: float) -> float:
    """JavaScript ``%``: the sign follows the dividend."""
    if math.isnan(x):
        return NAN
    return math.fmod(x, m)
