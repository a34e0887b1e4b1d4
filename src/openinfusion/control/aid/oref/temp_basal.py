"""Temp-basal helpers of oref0: pump rounding, the max-safe-basal cap and the set-temp rule.

Source: npm ``oref0`` 0.7.1, ``lib/round-basal.js`` and ``lib/basal-set-temp.js``
(behaviour re-expressed, see docs/aid.md). Rates in U/h, durations in minutes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from openinfusion.control.aid.oref._js import jmin, jround, js_str, num, truthy

# Medtronic x23/x54 pumps step by 0.025 U/h below 1 U/h; others by 0.05 U/h.
_FINE_STEP_MODELS = ("54", "23")


def round_basal(rate_u_h: float, profile: Mapping[str, Any] | None = None) -> float:
    """Round a rate to what the pump can deliver: 0.05 U/h (0.025 on x23/x54 pumps) below
    1 U/h, 0.05 U/h up to 10 U/h, 0.1 U/h above."""
    per_unit = 20.0
    model = profile.get("model") if profile is not None else None
    if isinstance(model, str) and model.endswith(_FINE_STEP_MODELS):
        per_unit = 40.0
    if rate_u_h < 1:
        return jround(rate_u_h * per_unit) / per_unit
    if rate_u_h < 10:
        return jround(rate_u_h * 20) / 20
    return jround(rate_u_h * 10) / 10


def _multiplier(value: Any, default: float) -> float:
    """A safety multiplier: the default when missing, null or not a number."""
    x = num(value)
    return default if math.isnan(x) else x


def max_safe_basal(profile: Mapping[str, Any]) -> float:
    """min(max_basal, 3 x max daily basal, 4 x current basal), the multipliers configurable
    (``max_daily_safety_multiplier``, ``current_basal_safety_multiplier``), in U/h."""
    daily = _multiplier(profile.get("max_daily_safety_multiplier"), 3.0)
    current = _multiplier(profile.get("current_basal_safety_multiplier"), 4.0)
    return jmin(
        num(profile.get("max_basal")),
        daily * num(profile.get("max_daily_basal")),
        current * num(profile.get("current_basal")),
    )


def append_reason(result: dict[str, Any], message: str) -> None:
    """Add a sentence to ``result["reason"]``, separated by '. ' as the reference does."""
    previous = result.get("reason")
    result["reason"] = (js_str(previous) + ". " if truthy(previous) else "") + message


def set_temp_basal(
    rate_u_h: float,
    duration_min: float,
    profile: Mapping[str, Any],
    result: dict[str, Any],
    currenttemp: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Fill ``result`` with a temp of ``rate_u_h`` for ``duration_min``, clamped to
    [0, max safe basal] and rounded for the pump; keep a running temp within ±20 % that
    still has more than ``duration_min`` − 10 min (and at most 120 min) to run."""
    cap = max_safe_basal(profile)
    if rate_u_h < 0:
        rate_u_h = 0.0
    elif rate_u_h > cap:
        rate_u_h = cap
    suggested = round_basal(rate_u_h, profile)
    if currenttemp is not None:
        running_min = currenttemp.get("duration")
        running_rate = currenttemp.get("rate")
        if (
            running_min is not None
            and running_rate is not None
            and running_min > duration_min - 10
            and running_min <= 120
            and suggested <= running_rate * 1.2
            and suggested >= running_rate * 0.8
            and duration_min > 0
        ):
            result["reason"] = (
                js_str(result.get("reason"))
                + f" {js_str(running_min)}m left and {js_str(running_rate)} ~ req "
                + f"{js_str(suggested)}U/hr: no temp required"
            )
            return result
    if suggested == num(profile.get("current_basal")):
        if profile.get("skip_neutral_temps") is True:
            running = currenttemp.get("duration") if currenttemp is not None else None
            if running is not None and running > 0:
                append_reason(
                    result,
                    "Suggested rate is same as profile rate, a temp basal is active, "
                    "canceling current temp",
                )
                result["duration"] = 0
                result["rate"] = 0
            else:
                append_reason(
                    result,
                    "Suggested rate is same as profile rate, no temp basal is active, "
                    "doing nothing",
                )
            return result
        append_reason(
            result,
            f"Setting neutral temp basal of {js_str(profile.get('current_basal'))}U/hr",
        )
    result["duration"] = duration_min
    result["rate"] = suggested
    return result
