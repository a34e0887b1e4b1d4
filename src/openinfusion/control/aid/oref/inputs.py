"""Inputs of :func:`determine_basal`: builders from arrays, and checks of the reference's
native JSON files (what ``openinfusion aid determine-basal`` reads).

The objects are the reference's own JSON shapes (oref0 0.7.1): a glucose record list
(newest first), the calculate-iob array, the current temp, the profile, autosens and meal
data. Builders take plain numbers in the units their names carry and fill in the oref0
profile defaults (``lib/profile/index.js``, listed in AID_REFERENCE.md §2.3).
Checks raise :class:`~openinfusion.errors.InputError` naming the file, the field and the
rule; JSON null where a number or flag belongs is refused (the reference would treat it
as 0 or false in some places and as missing in others).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from openinfusion.errors import InputError

# oref0 profile defaults (lib/profile/index.js, npm oref0 0.7.1; AID_REFERENCE.md §2.3).
PROFILE_DEFAULTS: dict[str, Any] = {
    "max_daily_safety_multiplier": 3,
    "current_basal_safety_multiplier": 4,
    "autosens_max": 1.2,
    "autosens_min": 0.7,
    "half_basal_exercise_target": 160,
    "maxCOB": 120,
    "min_5m_carbimpact": 8,
    "remainingCarbsCap": 90,
    "enableUAM": True,
    "enableSMB_always": False,
    "enableSMB_with_COB": False,
    "enableSMB_after_carbs": False,
    "enableSMB_with_temptarget": False,
    "enableSMB_high_bg": False,
    "allowSMB_with_high_temptarget": False,
    "A52_risk_enable": False,
    "maxSMBBasalMinutes": 30,
    "maxUAMSMBBasalMinutes": 30,
    "SMBInterval": 3,
    "bolus_increment": 0.1,
    "maxDelta_bg_threshold": 0.2,
    "curve": "rapid-acting",
    "insulinPeakTime": 75,
    "noisyCGMTargetMultiplier": 1.3,
    "maxRaw": 200,
    "sensitivity_raises_target": True,
    "resistance_lowers_target": False,
    "high_temptarget_raises_sensitivity": False,
    "low_temptarget_lowers_sensitivity": False,
    "exercise_mode": False,
    "skip_neutral_temps": False,
    "carbsReqThreshold": 1,
    "temptargetSet": False,
}

_PROFILE_REQUIRED = (
    "current_basal",
    "sens",
    "carb_ratio",
    "min_bg",
    "max_bg",
    "max_basal",
    "max_daily_basal",
)
_PROFILE_NUMBERS = (
    "max_iob",
    "max_daily_safety_multiplier",
    "current_basal_safety_multiplier",
    "autosens_max",
    "autosens_min",
    "half_basal_exercise_target",
    "enableSMB_high_bg_target",
    "maxSMBBasalMinutes",
    "maxUAMSMBBasalMinutes",
    "SMBInterval",
    "bolus_increment",
    "maxDelta_bg_threshold",
    "noisyCGMTargetMultiplier",
    "maxRaw",
    "carbsReqThreshold",
    "remainingCarbsCap",
    "remainingCarbsFraction",
)
_PROFILE_FLAGS = (
    "temptargetSet",
    "exercise_mode",
    "high_temptarget_raises_sensitivity",
    "low_temptarget_lowers_sensitivity",
    "sensitivity_raises_target",
    "resistance_lowers_target",
    "enableUAM",
    "enableSMB_always",
    "enableSMB_with_COB",
    "enableSMB_after_carbs",
    "enableSMB_with_temptarget",
    "enableSMB_high_bg",
    "allowSMB_with_high_temptarget",
    "A52_risk_enable",
    "skip_neutral_temps",
)
_MEAL_NUMBERS = (
    "carbs",
    "mealCOB",
    "lastCarbTime",
    "slopeFromMaxDeviation",
    "slopeFromMinDeviation",
)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(obj: Mapping[str, Any], key: str, where: str, *, required: bool) -> None:
    if key not in obj:
        if required:
            raise InputError(f"{where}.{key}", None, "is required (a number)")
        return
    if not _is_number(obj[key]):
        raise InputError(f"{where}.{key}", obj[key], "must be a finite number")


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        raise InputError(where, None, "is required (a JSON object)")
    if not isinstance(value, Mapping):
        raise InputError(where, type(value).__name__, "must be a JSON object")
    return value


def check_glucose(data: Any, where: str = "glucose") -> list[Mapping[str, Any]]:
    """CGM records, newest first: each an object; ``glucose``/``sgv`` in mg/dL and
    ``date`` in ms, where present, numbers; at least one record with a glucose value."""
    if not isinstance(data, list) or not data:
        raise InputError(where, None, "must be a non-empty JSON list of CGM records")
    records = []
    for i, item in enumerate(data):
        record = _object(item, f"{where}[{i}]")
        for key in ("glucose", "sgv", "date", "noise"):
            _number(record, key, f"{where}[{i}]", required=False)
        for key in ("dateString", "display_time"):
            if key in record and not isinstance(record[key], str):
                raise InputError(f"{where}[{i}].{key}", record[key], "must be an ISO-8601 string")
        records.append(record)
    if not any(r.get("glucose") or r.get("sgv") for r in records):
        raise InputError(where, None, "has no record with a glucose or sgv value")
    first = next(r for r in records if r.get("glucose") or r.get("sgv"))
    if not any(k in first for k in ("date", "dateString", "display_time")):
        raise InputError(f"{where}[0]", None, "needs a date (ms), dateString or display_time")
    return records


def check_iob(data: Any, where: str = "iob") -> list[Mapping[str, Any]]:
    """The calculate-iob array: at least two ticks, 5 min apart, each with ``iob`` (U),
    ``activity`` (U/min) and ``iobWithZeroTemp`` holding the same; the first tick may carry
    ``lastTemp`` {date ms, rate U/h, duration min} and ``lastBolusTime`` (ms)."""
    if not isinstance(data, list):
        raise InputError(where, type(data).__name__, "must be the calculate-iob JSON list")
    if len(data) < 2:
        raise InputError(where, len(data), "needs at least 2 ticks (calculate-iob gives 48)")
    ticks = []
    for i, item in enumerate(data):
        tick = _object(item, f"{where}[{i}]")
        _number(tick, "iob", f"{where}[{i}]", required=True)
        _number(tick, "activity", f"{where}[{i}]", required=True)
        zero_temp = _object(tick.get("iobWithZeroTemp"), f"{where}[{i}].iobWithZeroTemp")
        _number(zero_temp, "activity", f"{where}[{i}].iobWithZeroTemp", required=True)
        ticks.append(tick)
    first = ticks[0]
    _number(first, "lastBolusTime", f"{where}[0]", required=False)
    if "lastTemp" in first:
        last_temp = _object(first["lastTemp"], f"{where}[0].lastTemp")
        for key in ("date", "rate", "duration"):
            _number(last_temp, key, f"{where}[0].lastTemp", required=False)
    return ticks


def check_currenttemp(data: Any, where: str = "currenttemp") -> Mapping[str, Any]:
    """The running temp: ``rate`` U/h and ``duration`` min, both numbers >= 0."""
    temp = _object(data, where)
    for key in ("rate", "duration"):
        _number(temp, key, where, required=True)
        if temp[key] < 0:
            raise InputError(f"{where}.{key}", temp[key], "must be >= 0")
    return temp


def check_profile(data: Any, where: str = "profile") -> Mapping[str, Any]:
    """The oref0 profile: basal (U/h), ISF ``sens`` (mg/dL/U), ``carb_ratio`` (g/U),
    ``min_bg``/``max_bg`` (mg/dL), ``max_basal`` and ``max_daily_basal`` (U/h) required
    and > 0; known optional numbers and flags type-checked."""
    profile = _object(data, where)
    for key in _PROFILE_REQUIRED:
        _number(profile, key, where, required=True)
        if profile[key] <= 0:
            raise InputError(f"{where}.{key}", profile[key], "must be greater than 0")
    if profile["min_bg"] > profile["max_bg"]:
        raise InputError(f"{where}.min_bg", profile["min_bg"], "must not exceed max_bg")
    for key in _PROFILE_NUMBERS:
        _number(profile, key, where, required=False)
    for key in _PROFILE_FLAGS:
        if key in profile and not isinstance(profile[key], bool):
            raise InputError(f"{where}.{key}", profile[key], "must be true or false")
    if "out_units" in profile and profile["out_units"] not in ("mg/dL", "mmol/L"):
        raise InputError(f"{where}.out_units", profile["out_units"], "must be mg/dL or mmol/L")
    return profile


def check_meal(data: Any, where: str = "meal") -> Mapping[str, Any]:
    """Meal data (``carbs``, ``mealCOB`` g, ``lastCarbTime`` ms, deviation slopes
    mg/dL/5 min per 5 min); the numbers that are present must be numbers."""
    meal = _object(data, where)
    for key in _MEAL_NUMBERS:
        _number(meal, key, where, required=False)
    for key in ("bwFound", "bwCarbs"):
        if key in meal and meal[key] is None:
            raise InputError(f"{where}.{key}", None, "must not be null")
    return meal


def check_autosens(data: Any, where: str = "autosens") -> Mapping[str, Any]:
    """Autosens result: ``ratio`` > 0 (multiplies basal, divides ISF)."""
    autosens = _object(data, where)
    _number(autosens, "ratio", where, required=True)
    if autosens["ratio"] <= 0:
        raise InputError(f"{where}.ratio", autosens["ratio"], "must be greater than 0")
    return autosens


# --- Builders from arrays -------------------------------------------------------------


def glucose_records(
    t_ms: Sequence[float], bg_mg_dl: Sequence[float], device: str = "openinfusion"
) -> list[dict[str, Any]]:
    """CGM records (newest first) from reading times (ms since the epoch) and values."""
    if len(t_ms) != len(bg_mg_dl):
        raise InputError("bg_mg_dl", len(bg_mg_dl), f"must have one value per time ({len(t_ms)})")
    pairs = sorted(zip(t_ms, bg_mg_dl, strict=True), key=lambda p: p[0], reverse=True)
    return [
        {"date": float(t), "glucose": float(bg), "device": device, "type": "sgv"} for t, bg in pairs
    ]


def iob_ticks(
    iob_u: Sequence[float],
    activity_u_min: Sequence[float],
    zero_temp_iob_u: Sequence[float],
    zero_temp_activity_u_min: Sequence[float],
    *,
    last_bolus_time_ms: float | None = None,
    last_temp: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """A calculate-iob array from per-tick arrays (tick k is now + 5k min): net IOB and
    activity as delivered, and as if a zero temp ran from now. ``last_temp`` is
    ``{"date": ms, "rate": U/h, "duration": min}`` from the pump history."""
    n = len(iob_u)
    if n < 2 or not (
        len(activity_u_min) == len(zero_temp_iob_u) == len(zero_temp_activity_u_min) == n
    ):
        raise InputError("iob_u", n, "needs at least 2 ticks and equal-length arrays")
    ticks: list[dict[str, Any]] = [
        {
            "iob": float(iob_u[k]),
            "activity": float(activity_u_min[k]),
            "iobWithZeroTemp": {
                "iob": float(zero_temp_iob_u[k]),
                "activity": float(zero_temp_activity_u_min[k]),
            },
        }
        for k in range(n)
    ]
    if last_bolus_time_ms is not None:
        ticks[0]["lastBolusTime"] = float(last_bolus_time_ms)
    if last_temp is not None:
        ticks[0]["lastTemp"] = dict(last_temp)
    return ticks


def current_temp(rate_u_h: float = 0.0, duration_min: float = 0.0) -> dict[str, Any]:
    """The running temp basal (0/0: none)."""
    return {"rate": float(rate_u_h), "duration": float(duration_min), "temp": "absolute"}


def meal_data(
    carbs_g: float = 0.0,
    cob_g: float = 0.0,
    last_carb_time_ms: float = 0.0,
    *,
    slope_from_max_deviation: float = 0.0,
    slope_from_min_deviation: float = 0.0,
    bolus_wizard_used: bool = False,
) -> dict[str, Any]:
    """Meal data: carbs entered in the last 6 h, carbs on board, last carb time and the
    deviation slopes (mg/dL/5 min per 5 min) from the meal/COB calculation."""
    return {
        "carbs": float(carbs_g),
        "mealCOB": float(cob_g),
        "lastCarbTime": float(last_carb_time_ms),
        "slopeFromMaxDeviation": float(slope_from_max_deviation),
        "slopeFromMinDeviation": float(slope_from_min_deviation),
        "bwFound": bolus_wizard_used,
    }


def oref_profile(
    current_basal_u_h: float,
    isf_mg_dl_u: float,
    carb_ratio_g_u: float,
    min_bg_mg_dl: float,
    max_bg_mg_dl: float | None = None,
    *,
    max_iob_u: float = 0.0,
    max_basal_u_h: float | None = None,
    max_daily_basal_u_h: float | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """An oref0 profile with the package defaults; ``max_basal`` defaults to 4 x basal and
    ``max_daily_basal`` to the basal. ``overrides`` set any other oref0 field by name."""
    profile: dict[str, Any] = dict(PROFILE_DEFAULTS)
    profile.update(
        {
            "current_basal": float(current_basal_u_h),
            "sens": float(isf_mg_dl_u),
            "carb_ratio": float(carb_ratio_g_u),
            "min_bg": float(min_bg_mg_dl),
            "max_bg": float(max_bg_mg_dl if max_bg_mg_dl is not None else min_bg_mg_dl),
            "max_iob": float(max_iob_u),
            "max_basal": float(
                max_basal_u_h if max_basal_u_h is not None else 4 * current_basal_u_h
            ),
            "max_daily_basal": float(
                max_daily_basal_u_h if max_daily_basal_u_h is not None else current_basal_u_h
            ),
        }
    )
    profile.update(overrides)
    return dict(check_profile(profile))
