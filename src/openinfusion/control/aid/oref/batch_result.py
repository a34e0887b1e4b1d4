"""What :func:`~openinfusion.control.aid.oref.batch.determine_basal_batch` returns: the
numeric outputs of N decisions as arrays, the deciding rule of each, and the full result of
one case on demand (numbers from the arrays, ``reason`` text from the scalar function).

Units: glucose mg/dL (the display fields in mmol/L when the profile asks), insulin U, rates
U/h, durations min, carbs g.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openinfusion.control.aid.oref._js import iso_string, jround, js_str, to_fixed
from openinfusion.control.aid.oref._vec import BoolArray, FloatArray
from openinfusion.control.aid.oref.batch_inputs import BatchInputs
from openinfusion.control.aid.oref.determine import determine_basal


class Branch(IntEnum):
    """Which rule decided (the last step the reference took)."""

    FALLBACK = 0  # the scalar function decided
    CGM_REPLACE_HIGH_TEMP = 1  # unusable CGM: a high temp becomes scheduled basal
    CGM_SHORTEN_ZERO_TEMP = 2  # unusable CGM: a long zero temp is cut to 30 min
    CGM_NOTHING = 3  # unusable CGM: the running temp is left
    TEMP_RATE_MISMATCH = 4  # running temp differs from pump history: cancel
    TEMP_ENDED = 5  # history says the temp ended: cancel
    LOW_SUSPEND = 6  # BG or minGuardBG below threshold: zero temp
    SKIP_NEUTRAL_CANCEL = 7  # skip_neutral_temps near the hour: cancel
    EVENTUAL_LOW_NAIVE_40 = 8  # rising, but naive eventual BG < 40: zero temp
    EVENTUAL_LOW_RISING = 9  # eventual BG low but rising faster than expected: neutral
    LOW_TEMP_LOT_LESS = 10  # low temp: running temp far above what is needed
    LOW_TEMP_KEPT = 11  # low temp: running temp already low enough
    LOW_TEMP = 12  # low (or zero) temp
    FALLING = 13  # eventual BG fine, falling faster than expected: neutral
    IN_RANGE = 14  # in range: neutral
    ABOVE_MAX_IOB = 15  # IOB above max_iob: neutral
    MICRO_BOLUS_TEMP = 16  # SMB with its zero/low temp
    HIGH_TEMP_SCHEDULED = 17  # running temp already delivers 2 x insulinReq
    HIGH_TEMP_NO_TEMP = 18  # high temp, none running
    HIGH_TEMP_KEPT = 19  # running temp already at or above the required rate
    HIGH_TEMP = 20  # high temp
    INPUT_ERROR = 21  # the reference's error for a missing basal, target or IOB data
    NO_EVENTUAL_BG = 22  # eventual BG not a number (e.g. autosens without a ratio): error


_EARLY = (
    Branch.CGM_REPLACE_HIGH_TEMP,
    Branch.CGM_SHORTEN_ZERO_TEMP,
    Branch.CGM_NOTHING,
    Branch.TEMP_RATE_MISMATCH,
    Branch.TEMP_ENDED,
)
CURVES = ("IOB", "ZT", "COB", "UAM")
# Result fields held as numbers, and the BatchResult array of each.
NUMERIC_FIELDS = {
    "rate": "rate",
    "duration": "duration",
    "units": "units",
    "eventualBG": "eventual_bg",
    "insulinReq": "insulin_req",
    "COB": "cob",
    "IOB": "iob",
    "BGI": "bgi",
    "deviation": "deviation",
    "ISF": "isf",
    "CR": "cr",
    "target_bg": "target_bg",
    "sensitivityRatio": "sensitivity_ratio",
    "carbsReq": "carbs_req",
}
_TEXT_FIELDS = ("BGI", "deviation", "ISF", "target_bg")  # text with mmol/L output


@dataclass(slots=True)
class BatchResult:
    """The numeric outputs of N decisions, each (N,) with NaN where the field is absent
    (``present[field]`` says which are there), the displayed curves (N, 48) with their
    lengths (0 when absent), the deciding :class:`Branch`, and the fallback cases."""

    inputs: BatchInputs
    branch: NDArray[np.int8]
    values: dict[str, FloatArray]
    present: dict[str, BoolArray]
    curves: dict[str, FloatArray]
    curve_len: dict[str, NDArray[np.intp]]
    fallback: BoolArray
    scalar: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def fallback_count(self) -> int:
        """How many cases the scalar function decided."""
        return int(self.fallback.sum())

    def __getattr__(self, name: str) -> FloatArray:
        values = object.__getattribute__(self, "values")
        if name in values:
            return values[name]  # type: ignore[no-any-return]
        raise AttributeError(name)

    def pred_bgs(self, i: int) -> dict[str, list[float]]:
        """Case i's ``predBGs`` (whole mg/dL, as displayed)."""
        return {
            name: self.curves[name][i, : self.curve_len[name][i]].tolist()
            for name in CURVES
            if self.curve_len[name][i] > 0
        }

    def decision(self, i: int) -> dict[str, Any]:
        """Case i's full result, as the scalar function returns it: numbers from the batch,
        the ``reason`` text from the scalar function run on the same case."""
        if self.fallback[i]:
            return dict(self.scalar[i])
        textual = determine_basal(*self.inputs.scalar_case(i))
        text = textual.get("reason")
        branch = Branch(int(self.branch[i]))
        out: dict[str, Any] = {}
        floats = self.inputs.floats
        deliver_at = iso_string(float(floats["now_ms"][i]))
        if branch == Branch.INPUT_ERROR:
            return {"error": textual.get("error")}
        if branch == Branch.NO_EVENTUAL_BG:
            return {"temp": "absolute", "deliverAt": deliver_at, "error": textual.get("error")}
        if branch == Branch.CGM_NOTHING:
            return {"reason": text}
        if branch in (Branch.CGM_REPLACE_HIGH_TEMP, Branch.CGM_SHORTEN_ZERO_TEMP):
            out = {"reason": text, "deliverAt": deliver_at, "temp": "absolute"}
        elif branch in _EARLY:
            out = {"temp": "absolute", "deliverAt": deliver_at, "reason": text}
        else:
            delta = float(floats["delta"][i])
            out = {
                "temp": "absolute",
                "bg": float(floats["bg"][i]),
                "tick": "+" + js_str(jround(delta)) if delta > -0.5 else jround(delta),
                "reservoir": self.inputs.reservoir[i],
                "deliverAt": deliver_at,
                "predBGs": self.pred_bgs(i),
                "reason": text,
            }
        mmol = bool(self.inputs.flags["mmol"][i])
        for key, name in NUMERIC_FIELDS.items():
            if self.present[name][i]:
                value = float(self.values[name][i])
                out[key] = to_fixed(value, 1) if mmol and key in _TEXT_FIELDS else value
        return out


def fill_fallback(result: BatchResult) -> None:
    """Decide the fallback cases with the scalar function and put their numbers in the
    arrays (NaN and not present where the field is absent)."""
    cases = np.flatnonzero(result.fallback)
    if cases.size == 0:
        return
    for curve in CURVES:
        result.curves[curve][cases] = np.nan
    for i in cases.tolist():
        decision = determine_basal(*result.inputs.scalar_case(i))
        result.scalar[i] = decision
        for key, name in NUMERIC_FIELDS.items():
            if key in decision:
                result.present[name][i] = True
                result.values[name][i] = _as_float(decision[key])
        for curve, points in (decision.get("predBGs") or {}).items():
            result.curve_len[curve][i] = len(points)
            result.curves[curve][i, : len(points)] = [_as_float(p) for p in points]


def _as_float(value: Any) -> float:
    """A result number as a float (mmol/L text parsed, missing as NaN)."""
    if value is None:
        return float("nan")
    return float(value)
