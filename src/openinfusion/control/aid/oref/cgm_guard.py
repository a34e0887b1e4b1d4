"""CGM data oref0 will not dose on, and what it does instead (npm ``oref0`` 0.7.1,
determine-basal's first checks; AID_REFERENCE.md §2.3).

Unusable: BG <= 10 mg/dL or 38 (sensor error codes), noise >= 3, the reading older than
12 min or more than 5 min in the future, or "too flat" (delta 0 and both average deltas
within ±1 mg/dL/5 min, unless the device is the simulator ``fakecgm``). Then a running high
temp is replaced by scheduled basal for 30 min, a zero temp longer than 30 min is cut to
30 min, and anything else is left running.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openinfusion.control.aid.oref._js import (
    date_string,
    js_str,
    num,
    round_to,
    time_clip,
    truthy,
)


def unusable_cgm(
    glucose_status: Mapping[str, Any],
    currenttemp: Mapping[str, Any],
    basal_u_h: float,
    now_ms: float,
    deliver_at: str | None,
) -> dict[str, Any] | None:
    """The decision when the CGM data cannot be used, else None."""
    bg_time_ms = time_clip(num(glucose_status.get("date")))
    min_ago = round_to((now_ms - bg_time_ms) / 60 / 1000, 1)
    bg_raw = glucose_status.get("glucose")
    bg = num(bg_raw)
    noise = num(glucose_status.get("noise"))
    delta_raw = glucose_status.get("delta")
    short_avg = num(glucose_status.get("short_avgdelta"))
    long_avg = num(glucose_status.get("long_avgdelta"))
    error_code = bg <= 10 or bg == 38 or noise >= 3
    out_of_time = min_ago > 12 or min_ago < -5
    too_flat = (
        bg > 60
        and num(delta_raw) == 0
        and -1 < short_avg < 1
        and -1 < long_avg < 1
        and glucose_status.get("device") != "fakecgm"
    )
    if not (error_code or out_of_time or too_flat):
        return None
    reason: Any = None
    if error_code:
        reason = "CGM is calibrating, in ??? state, or noise is high"
    if out_of_time:
        reason = (
            f"If current system time {date_string(now_ms)} is correct, then BG data is too "
            f"old. The last BG data was read {js_str(min_ago)}m ago at "
            f"{date_string(bg_time_ms)}"
        )
    elif too_flat:
        last_cal = glucose_status.get("last_cal")
        if truthy(last_cal) and num(last_cal) < 3:
            reason = "CGM was just calibrated"
        else:
            reason = (
                f"CGM data is unchanged ({js_str(bg_raw)}+{js_str(delta_raw)}) for 5m w/ "
                f"{js_str(glucose_status.get('short_avgdelta'))} mg/dL ~15m change & "
                f"{js_str(glucose_status.get('long_avgdelta'))} mg/dL ~45m change"
            )
    text = js_str(reason)
    running_rate = currenttemp.get("rate")
    if num(running_rate) > basal_u_h:
        return {
            "reason": f"{text}. Replacing high temp basal of {js_str(running_rate)} "
            f"with neutral temp of {js_str(basal_u_h)}",
            "deliverAt": deliver_at,
            "temp": "absolute",
            "duration": 30,
            "rate": basal_u_h,
        }
    if running_rate == 0 and num(currenttemp.get("duration")) > 30:
        return {
            "reason": f"{text}. Shortening {js_str(currenttemp.get('duration'))}m long "
            "zero temp to 30m. ",
            "deliverAt": deliver_at,
            "temp": "absolute",
            "duration": 30,
            "rate": 0,
        }
    return {
        "reason": f"{text}. Temp {js_str(running_rate)} <= current basal "
        f"{js_str(basal_u_h)}U/hr; doing nothing. "
    }
