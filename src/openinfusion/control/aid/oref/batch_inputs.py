"""Struct-of-arrays inputs of the batch decision (:mod:`.batch`), and the builder that
makes them from the reference's JSON inputs, one case per row.

Units as in :func:`~openinfusion.control.aid.oref.determine_basal`: glucose mg/dL, deltas
mg/dL per 5 min, insulin U, activity U/min, rates U/h, durations min, times ms since the
epoch. The profile's optional fields are resolved here, once per case, to the value the
scalar code ends up using (for example ``SMBInterval`` to 3 min when unset); flags keep the
reference's own test (``is True``, truthiness). An IOB array whose zero-temp ticks end
early keeps its length in ``ticks``; a case the reference answers with an input error (no
basal, no target, a short IOB array) keeps only what the check before that error reads,
with ``error_code``. A case the arrays cannot express exactly (for example a missing ISF,
text where a number belongs, more than 48 ticks) is marked ``fallback`` and decided by the
scalar function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, overload

import numpy as np

from openinfusion.control.aid.oref._js import jmax, jmin, num, time_clip, truthy
from openinfusion.control.aid.oref._vec import BoolArray, FloatArray
from openinfusion.control.aid.oref.glucose import get_last_glucose
from openinfusion.control.aid.oref.predict import POINTS

_FINE_STEP_MODELS = ("54", "23")  # x23/x54 pumps: 0.025 U/h steps below 1 U/h


class TickArrays(Sequence[Mapping[str, Any]]):
    """A calculate-iob array over per-tick arrays: tick k (now + 5k min) is the dict
    :func:`.inputs.iob_ticks` makes (``iob`` U, ``activity`` U/min, the same with a zero
    temp in ``iobWithZeroTemp``; ``lastBolusTime`` ms and ``lastTemp`` on tick 0), built
    when read. The batch builder takes the activities from the arrays without building
    ticks; the scalar function reads it as any list of ticks."""

    def __init__(
        self,
        iob_u: FloatArray,
        activity_u_min: FloatArray,
        zero_temp_iob_u: FloatArray,
        zero_temp_activity_u_min: FloatArray,
        *,
        last_bolus_time_ms: float | None = None,
        last_temp: Mapping[str, float] | None = None,
    ) -> None:
        self.iob = np.asarray(iob_u, dtype=float)
        self.activity = np.asarray(activity_u_min, dtype=float)
        self.zt_iob = np.asarray(zero_temp_iob_u, dtype=float)
        self.zt_activity = np.asarray(zero_temp_activity_u_min, dtype=float)
        self.last_bolus_time_ms = last_bolus_time_ms
        self.last_temp = last_temp

    def __len__(self) -> int:
        return int(self.iob.shape[0])

    @overload
    def __getitem__(self, k: int) -> Mapping[str, Any]: ...

    @overload
    def __getitem__(self, k: slice) -> Sequence[Mapping[str, Any]]: ...

    def __getitem__(self, k: int | slice) -> Mapping[str, Any] | Sequence[Mapping[str, Any]]:
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(k)
        tick: dict[str, Any] = {
            "iob": float(self.iob[k]),
            "activity": float(self.activity[k]),
            "iobWithZeroTemp": {
                "iob": float(self.zt_iob[k]),
                "activity": float(self.zt_activity[k]),
            },
        }
        if k == 0 and self.last_bolus_time_ms is not None:
            tick["lastBolusTime"] = float(self.last_bolus_time_ms)
        if k == 0 and self.last_temp is not None:
            tick["lastTemp"] = dict(self.last_temp)
        return tick


class ScalarCase(NamedTuple):
    """The arguments of the scalar ``determine_basal`` for one case."""

    glucose_status: Mapping[str, Any]
    currenttemp: Mapping[str, Any]
    iob_data: Sequence[Mapping[str, Any]]
    profile: Mapping[str, Any]
    autosens_data: Mapping[str, Any] | None
    meal_data: Mapping[str, Any] | None
    microbolus_allowed: bool
    current_time_ms: float
    reservoir_data: Any = None

    @classmethod
    def from_reference(cls, case: Mapping[str, Any]) -> ScalarCase:
        """The arguments for one case in the reference's JSON shapes (``glucose`` records,
        ``currenttemp``, ``iob``, ``profile``, ``autosens``, ``meal``, ``microbolus``,
        ``currentTime``, ``reservoir``); raises ValueError when the glucose records give
        no status."""
        return cls(
            get_last_glucose(case["glucose"]),
            case["currenttemp"],
            case["iob"],
            case["profile"],
            case["autosens"],
            case["meal"],
            case["microbolus"],
            case["currentTime"],
            case["reservoir"],
        )


# Float columns, in the order the builder fills them (one value per case).
FLOAT_FIELDS = (
    "bg",  # glucose now, mg/dL
    "delta",  # mg/dL per 5 min
    "short_avg",
    "long_avg",
    "bg_time_ms",  # time of the reading (TimeClip applied)
    "noise",
    "temp_rate",  # running temp, U/h
    "temp_min",  # its remaining duration, min
    "iob_now",  # U
    "last_bolus_ms",  # NaN when unknown
    "last_temp_ms",  # pump-history temp (when has_last_temp), NaN fields when missing
    "last_temp_rate",
    "last_temp_min",
    "current_basal",  # U/h
    "sens",  # ISF, mg/dL/U
    "carb_ratio",  # g/U
    "min_bg",
    "max_bg",
    "max_iob",  # U, NaN when unset (no cap)
    "max_basal",
    "max_daily_basal",
    "daily_multiplier",  # max_daily_safety_multiplier (3 when unset)
    "current_multiplier",  # current_basal_safety_multiplier (4 when unset)
    "per_unit",  # rounding steps per U/h below 1 U/h: 20 or 40
    "autosens_max",
    "half_basal_target",  # mg/dL (160 when unset)
    "high_bg_target",  # enableSMB_high_bg_target, mg/dL
    "noisy_multiplier",
    "max_delta_fraction",  # of BG, above which SMB is off (0.2 when unset, at most 0.3)
    "carbs_req_threshold",  # g
    "carbs_cap",  # remainingCarbsCap resolved, g
    "carbs_fraction",  # remainingCarbsFraction resolved
    "smb_minutes",  # maxSMBBasalMinutes (30 when unset)
    "uam_smb_minutes",  # maxUAMSMBBasalMinutes (30 when unset)
    "bolus_increment",  # U
    "smb_interval",  # min, within 1-10 (3 when unset)
    "autosens_ratio",  # NaN without autosens data or without its ratio
    "meal_cob",  # g, NaN when missing
    "carbs",  # g entered in the last 6 h, NaN when missing
    "last_carb_ms",
    "slope_max",  # slopeFromMaxDeviation, mg/dL/5 min per 5 min
    "slope_min",
    "now_ms",  # decision time (TimeClip applied)
    "ticks",  # IOB ticks the prediction uses (48, fewer when the zero-temp ticks end early)
    "error_code",  # NaN, or the reference's input error: ERROR_NO_BASAL, _NO_TARGET, _IOB
)
ERROR_NO_BASAL = 1.0  # no current_basal: an error before anything else
ERROR_NO_TARGET = 2.0  # no min_bg or max_bg: an error unless the CGM is unusable
ERROR_IOB = 3.0  # IOB array too short or its first tick incomplete: likewise
BOOL_FIELDS = (
    "fake_cgm",  # device "fakecgm": the too-flat rule does not apply
    "has_last_temp",
    "temp_target",  # temptargetSet
    "raises_sensitivity",  # exercise_mode or high_temptarget_raises_sensitivity
    "lowers_sensitivity",  # low_temptarget_lowers_sensitivity
    "sens_raises_target",
    "resist_lowers_target",
    "enable_uam",
    "smb_always",
    "smb_with_cob",
    "smb_after_carbs",
    "smb_with_temptarget",
    "smb_high_bg",
    "allow_smb_high_tt",
    "a52_false",  # A52_risk_enable is exactly false
    "smb_minutes_unset",  # maxSMBBasalMinutes missing
    "skip_neutral",
    "mmol",  # out_units mmol/L: BGI, deviation, ISF and target_bg print as text
    "has_autosens",
    "has_cob",  # mealCOB present (the result echoes it as COB)
    "bw_found",
    "clock_error",  # meal reason "Could not parse clock data"
    "microbolus",
    "fallback",  # decided by the scalar function
)


@dataclass(slots=True)
class BatchInputs:
    """N cases as arrays: ``floats[name]`` (N,), ``flags[name]`` (N,) bool, the IOB tick
    activities in U/min as delivered and with a zero temp, time-major (48, N): row k is
    tick k (now + 5k min) of every case, the reservoir values as
    given, and ``scalar_case(i)`` giving case i's scalar arguments (for the reason text and
    the fallback). Ticks past ``floats["ticks"]`` hold 0 and are not used."""

    floats: dict[str, FloatArray]
    flags: dict[str, BoolArray]
    activity: FloatArray
    zt_activity: FloatArray
    reservoir: list[Any]
    scalar_case: Callable[[int], ScalarCase]

    @property
    def n(self) -> int:
        """Number of cases."""
        return int(self.activity.shape[1])


class _Unsupported(Exception):
    """The case goes to the scalar function."""


def _number(value: Any) -> float:
    """A JSON number as a float; anything else is not expressible in the arrays."""
    kind = type(value)
    if kind is float or kind is int:
        return float(value)
    raise _Unsupported


def _optional(value: Any) -> float:
    """A JSON number, or NaN for a missing value (the reference's ``undefined``)."""
    return math.nan if value is None else _number(value)


def _flag(value: Any) -> bool:
    """A profile flag: JSON booleans only (``is True`` and truthiness then agree)."""
    if value is None:
        return False
    if type(value) is bool:
        return value
    raise _Unsupported


def _row(case: ScalarCase) -> tuple[list[float], list[bool], Sequence[float], Sequence[float]]:
    """One case's float and flag columns and its tick activities; raises _Unsupported."""
    status, temp, ticks, profile = case[0], case[1], case[2], case[3]
    autosens, meal_in = case[4], case[5]
    meal: Mapping[str, Any] = meal_in if meal_in is not None else {}
    if isinstance(ticks, Mapping) or len(ticks) != POINTS:
        raise _Unsupported
    activity: Sequence[float]
    zt_activity: Sequence[float]
    if isinstance(ticks, TickArrays):  # straight from the arrays
        usable = POINTS
        activity, zt_activity = ticks.activity.tolist(), ticks.zt_activity.tolist()
    else:
        usable = 0  # ticks up to the first without iobWithZeroTemp: the curves stop there
        for tick in ticks:
            if not isinstance(tick.get("iobWithZeroTemp"), Mapping):
                break
            usable += 1
        if usable == 0:
            raise _Unsupported
        unused = [0.0] * (POINTS - usable)
        activity = [_number(t["activity"]) for t in ticks[:usable]] + unused
        zt_activity = [_number(t["iobWithZeroTemp"]["activity"]) for t in ticks[:usable]]
        zt_activity += unused
    first = ticks[0]
    last_temp = first.get("lastTemp")
    has_last_temp = isinstance(last_temp, Mapping)
    lt: Mapping[str, Any] = last_temp if isinstance(last_temp, Mapping) else {}
    for key in ("current_basal", "min_bg", "max_bg", "sens", "carb_ratio"):
        if profile.get(key) is None:
            raise _Unsupported
    model = profile.get("model")
    fine = isinstance(model, str) and model.endswith(_FINE_STEP_MODELS)
    smb_minutes = profile.get("maxSMBBasalMinutes")
    max_delta = profile.get("maxDelta_bg_threshold")
    out_units = profile.get("out_units")
    if out_units not in (None, "mg/dL", "mmol/L"):
        raise _Unsupported
    uam_minutes = _optional(profile.get("maxUAMSMBBasalMinutes"))
    cap = _optional(profile.get("remainingCarbsCap"))
    fraction = _optional(profile.get("remainingCarbsFraction"))
    increment = _optional(profile.get("bolus_increment"))
    interval = _optional(profile.get("SMBInterval"))
    half = _optional(profile.get("half_basal_exercise_target"))
    daily = _optional(profile.get("max_daily_safety_multiplier"))
    current = _optional(profile.get("current_basal_safety_multiplier"))
    floats = [
        _number(status.get("glucose")),
        _number(status.get("delta")),
        _number(status.get("short_avgdelta")),
        _number(status.get("long_avgdelta")),
        time_clip(_optional(status.get("date"))),
        _optional(status.get("noise")),
        _number(temp.get("rate")),
        _number(temp.get("duration")),
        _number(first.get("iob")),
        _optional(first.get("lastBolusTime")),
        _optional(lt.get("date")),
        _optional(lt.get("rate")),
        _optional(lt.get("duration")),
        _number(profile.get("current_basal")),
        _number(profile.get("sens")),
        _number(profile.get("carb_ratio")),
        _number(profile.get("min_bg")),
        _number(profile.get("max_bg")),
        _optional(profile.get("max_iob")),
        _optional(profile.get("max_basal")),
        _optional(profile.get("max_daily_basal")),
        3.0 if math.isnan(daily) else daily,
        4.0 if math.isnan(current) else current,
        40.0 if fine else 20.0,
        _optional(profile.get("autosens_max")),
        half if truthy(half) else 160.0,
        _optional(profile.get("enableSMB_high_bg_target")),
        _optional(profile.get("noisyCGMTargetMultiplier")),
        0.2 if max_delta is None else jmin(_number(max_delta), 0.3),
        _optional(profile.get("carbsReqThreshold")),
        jmin(90.0, cap) if truthy(cap) else 90.0,
        jmin(1.0, fraction) if truthy(fraction) else 1.0,
        30.0 if smb_minutes is None else _number(smb_minutes),
        uam_minutes if truthy(uam_minutes) else 30.0,
        increment if truthy(increment) else 0.1,
        jmin(10.0, jmax(1.0, interval)) if truthy(interval) else 3.0,
        _optional(autosens.get("ratio")) if autosens is not None else math.nan,
        _optional(meal.get("mealCOB")),
        _optional(meal.get("carbs")),
        _optional(meal.get("lastCarbTime")),
        _optional(meal.get("slopeFromMaxDeviation")),
        _optional(meal.get("slopeFromMinDeviation")),
        time_clip(num(case[7])),
        float(usable),
        math.nan,
    ]
    flags = [
        status.get("device") == "fakecgm",
        has_last_temp,
        _flag(profile.get("temptargetSet")),
        _flag(profile.get("exercise_mode"))
        or _flag(profile.get("high_temptarget_raises_sensitivity")),
        _flag(profile.get("low_temptarget_lowers_sensitivity")),
        _flag(profile.get("sensitivity_raises_target")),
        _flag(profile.get("resistance_lowers_target")),
        _flag(profile.get("enableUAM")),
        _flag(profile.get("enableSMB_always")),
        _flag(profile.get("enableSMB_with_COB")),
        _flag(profile.get("enableSMB_after_carbs")),
        _flag(profile.get("enableSMB_with_temptarget")),
        _flag(profile.get("enableSMB_high_bg")),
        _flag(profile.get("allowSMB_with_high_temptarget")),
        profile.get("A52_risk_enable") is False,
        smb_minutes is None,
        _flag(profile.get("skip_neutral_temps")),
        out_units == "mmol/L",
        autosens is not None,
        meal.get("mealCOB") is not None,
        meal.get("bwFound") is True,
        meal.get("reason") == "Could not parse clock data",
        bool(case[6]),
        False,
    ]
    return floats, flags, activity, zt_activity


def _error_row(
    case: ScalarCase,
) -> tuple[list[float], list[bool], Sequence[float], Sequence[float]]:
    """A case the reference answers with an input error: only what the unusable-CGM check
    before the error reads (glucose status, running temp, basal, time); raises
    _Unsupported for anything else."""
    status, temp, ticks, profile = case[0], case[1], case[2], case[3]
    floats = dict.fromkeys(FLOAT_FIELDS, math.nan)
    floats["now_ms"] = time_clip(num(case[7]))
    if profile.get("current_basal") is None:
        floats["error_code"] = ERROR_NO_BASAL
    else:
        if profile.get("min_bg") is None or profile.get("max_bg") is None:
            floats["error_code"] = ERROR_NO_TARGET
        elif (
            isinstance(ticks, Mapping)
            or len(ticks) <= 1
            or ticks[0].get("activity") is None
            or ticks[0].get("iob") is None
        ):
            floats["error_code"] = ERROR_IOB
        else:
            raise _Unsupported
        model = profile.get("model")
        fine = isinstance(model, str) and model.endswith(_FINE_STEP_MODELS)
        floats |= {
            "bg": _number(status.get("glucose")),
            "delta": _number(status.get("delta")),
            "short_avg": _number(status.get("short_avgdelta")),
            "long_avg": _number(status.get("long_avgdelta")),
            "bg_time_ms": time_clip(_optional(status.get("date"))),
            "noise": _optional(status.get("noise")),
            "temp_rate": _number(temp.get("rate")),
            "temp_min": _number(temp.get("duration")),
            "current_basal": _number(profile.get("current_basal")),
            "per_unit": 40.0 if fine else 20.0,
        }
    flags = dict.fromkeys(BOOL_FIELDS, False)
    flags["fake_cgm"] = status.get("device") == "fakecgm"
    return (
        [floats[name] for name in FLOAT_FIELDS],
        [flags[name] for name in BOOL_FIELDS],
        _ZERO_TICKS,
        _ZERO_TICKS,
    )


_ZERO_TICKS = [0.0] * POINTS
_FALLBACK_FLOATS = [math.nan] * len(FLOAT_FIELDS)
_FALLBACK_FLAGS = [False] * (len(BOOL_FIELDS) - 1) + [True]
_NAN_TICKS = [math.nan] * POINTS


def batch_inputs(
    cases: Sequence[ScalarCase],
    scalar_case: Callable[[int], ScalarCase] | None = None,
) -> BatchInputs:
    """Arrays from the scalar arguments of each case (the reference's JSON objects).

    ``scalar_case`` gives case i's arguments again when a reason is asked for or the case
    falls back (default: ``cases[i]``)."""
    float_rows: list[list[float]] = []
    flag_rows: list[list[bool]] = []
    act_rows: list[Sequence[float]] = []
    zt_rows: list[Sequence[float]] = []
    for case in cases:
        try:
            floats, flags, act, zt = _row(case)
        except (_Unsupported, KeyError, TypeError, AttributeError):
            try:
                floats, flags, act, zt = _error_row(case)
            except (_Unsupported, KeyError, TypeError, AttributeError):
                floats, flags, act = _FALLBACK_FLOATS, _FALLBACK_FLAGS, _NAN_TICKS
                zt = _NAN_TICKS
        float_rows.append(floats)
        flag_rows.append(flags)
        act_rows.append(act)
        zt_rows.append(zt)
    n = len(cases)
    float_table = np.array(float_rows, dtype=float).reshape(n, len(FLOAT_FIELDS))
    flag_table = np.array(flag_rows, dtype=bool).reshape(n, len(BOOL_FIELDS))
    return BatchInputs(
        floats={name: float_table[:, j].copy() for j, name in enumerate(FLOAT_FIELDS)},
        flags={name: flag_table[:, j].copy() for j, name in enumerate(BOOL_FIELDS)},
        activity=np.ascontiguousarray(np.array(act_rows, dtype=float).reshape(n, POINTS).T),
        zt_activity=np.ascontiguousarray(np.array(zt_rows, dtype=float).reshape(n, POINTS).T),
        reservoir=[case[8] if len(case) > 8 else None for case in cases],
        scalar_case=scalar_case if scalar_case is not None else cases.__getitem__,
    )
