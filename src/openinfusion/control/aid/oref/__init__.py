"""OpenAPS oref0/oref1 ``determine-basal`` in Python, with decision parity to the
reference npm package ``oref0`` 0.7.1 (docs/aid.md, "oref determine-basal").

Public API:
- :func:`determine_basal` — one pure dosing decision from the reference's JSON inputs.
- :func:`get_last_glucose` — glucose status from newest-first CGM records.
- :func:`round_basal`, :func:`max_safe_basal`, :func:`set_temp_basal` — temp-basal helpers.
- Input builders from arrays (:mod:`.inputs`): :func:`glucose_records`,
  :func:`iob_ticks`, :func:`current_temp`, :func:`meal_data`, :func:`oref_profile`.
- :func:`to_json` — the result as the reference prints it (NaN -> null, 5.0 -> 5).
"""

from openinfusion.control.aid.oref._js import to_json_value as to_json
from openinfusion.control.aid.oref.determine import determine_basal
from openinfusion.control.aid.oref.glucose import get_last_glucose
from openinfusion.control.aid.oref.temp_basal import max_safe_basal, round_basal, set_temp_basal

__all__ = [
    "determine_basal",
    "get_last_glucose",
    "max_safe_basal",
    "round_basal",
    "set_temp_basal",
    "to_json",
]
