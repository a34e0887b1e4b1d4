"""OpenAPS oref0/oref1 ``determine-basal`` in Python, with decision parity to the
reference npm package ``oref0`` 0.7.1 (docs/aid.md, "oref determine-basal").

Public API:
- :func:`determine_basal` — one pure dosing decision from the reference's JSON inputs.
- :func:`get_last_glucose` — glucose status from newest-first CGM records.
- :func:`round_basal`, :func:`max_safe_basal`, :func:`set_temp_basal` — temp-basal helpers.
- Input builders from arrays (:mod:`.inputs`): :func:`glucose_records` (times ms, mg/dL),
  :func:`iob_ticks` (U, U/min per 5-min tick, as delivered and with a zero temp),
  :func:`current_temp` (U/h, min), :func:`meal_data` (g, ms), :func:`oref_profile` (U/h,
  mg/dL/U, g/U, mg/dL, with the oref0 defaults in ``PROFILE_DEFAULTS``).
- :func:`to_json` — the result as the reference prints it (NaN -> null, 5.0 -> 5).

Example (one decision in a simulation loop)::

    status = get_last_glucose(glucose_records(t_ms, cgm_mg_dl))
    ticks = iob_ticks(iob_u, act_u_min, zt_iob_u, zt_act_u_min)
    profile = oref_profile(1.0, 50, 10, 100, 110, max_iob_u=3)
    decision = determine_basal(status, current_temp(), ticks, profile, None,
                               meal_data(), False, now_ms)
    rate_u_h, duration_min = decision.get("rate"), decision.get("duration")
"""

from openinfusion.control.aid.oref._js import to_json_value as to_json
from openinfusion.control.aid.oref.determine import determine_basal
from openinfusion.control.aid.oref.glucose import get_last_glucose
from openinfusion.control.aid.oref.inputs import (
    PROFILE_DEFAULTS,
    current_temp,
    glucose_records,
    iob_ticks,
    meal_data,
    oref_profile,
)
from openinfusion.control.aid.oref.temp_basal import max_safe_basal, round_basal, set_temp_basal

__all__ = [
    "PROFILE_DEFAULTS",
    "current_temp",
    "determine_basal",
    "get_last_glucose",
    "glucose_records",
    "iob_ticks",
    "max_safe_basal",
    "meal_data",
    "oref_profile",
    "round_basal",
    "set_temp_basal",
    "to_json",
]
