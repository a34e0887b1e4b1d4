"""The uploaded-data format for autosens and autotune (JSON), and its loader.

::

    {"format": "openinfusion-therapy-history/1",
     "profile": {"basal": [{"start": "00:00", "rate_u_h": 0.8}, {"start": "06:00", "rate_u_h": 1.0}],
                 "isf_mg_dl_u": 45, "carb_ratio_g_u": 10,
                 "dia_h": 5, "peak_min": 75, "autosens_min": 0.7, "autosens_max": 1.2},
     "basal_delivery": "scheduled",
     "glucose": [{"t_min": 0, "mg_dl": 121}, {"time": "2026-03-01T00:05:00+01:00", "mg_dl": 119}],
     "insulin": [{"t_min": 420, "units": 4.5},
                 {"t_min": 600, "rate_u_h": 0.4, "duration_min": 30},
                 {"t_min": 700, "units": 0.1, "duration_min": 5}],
     "carbs": [{"t_min": 420, "g": 45}]}

- Times: ``t_min`` = minutes from local midnight of the first day, or ``time`` = ISO 8601
  local time (an offset may be given; the wall-clock time is what counts, day 0 being the
  date of the earliest ``time``). One of the two per entry.
- ``profile.basal``: either a list of ``{"start": "HH:MM", "rate_u_h"}`` (sorted, the first
  at 00:00; hours are taken at their start) or ``basal_u_h``: one rate or 24 hourly rates.
  ``dia_h``, ``peak_min``, ``autosens_min``/``_max`` and ``min_5m_carbimpact_mg_dl`` are
  optional (5 h, 75 min, 0.7/1.2, 8 mg/dL).
- ``insulin``: a bolus (``units``), units delivered over an interval (``units`` and
  ``duration_min``) or a rate (``rate_u_h`` and ``duration_min``, e.g. a temp basal).
- ``basal_delivery``: ``"scheduled"`` (default) when the programmed basal ran wherever no
  rate entry covers the time (pump records of temp basals); ``"recorded"`` when every unit
  delivered is listed (per-interval delivery logs).

Every problem is an :class:`~openinfusion.errors.InputError` naming the entry, e.g.
``glucose[12].mg_dl nan: must be a finite number``.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from openinfusion.control.aid.therapy_history import TherapyHistory, TherapySettings
from openinfusion.errors import InputError, InputErrors

FORMAT = "openinfusion-therapy-history/1"
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Timed(_Spec):
    t_min: float | None = Field(default=None, allow_inf_nan=True)
    time: str | None = None


class GlucoseEntry(_Timed):
    mg_dl: float = Field(allow_inf_nan=True)


class InsulinEntry(_Timed):
    units: float | None = Field(default=None, allow_inf_nan=True)
    rate_u_h: float | None = Field(default=None, allow_inf_nan=True)
    duration_min: float | None = Field(default=None, allow_inf_nan=True)


class CarbEntry(_Timed):
    g: float = Field(allow_inf_nan=True)


class BasalSegment(_Spec):
    start: str
    rate_u_h: float = Field(allow_inf_nan=True)


class ProfileSpec(_Spec):
    basal: list[BasalSegment] | None = None
    basal_u_h: float | list[float] | None = None
    isf_mg_dl_u: float = Field(allow_inf_nan=True)
    carb_ratio_g_u: float = Field(allow_inf_nan=True)
    dia_h: float = 5.0
    peak_min: float = 75.0
    autosens_min: float = 0.7
    autosens_max: float = 1.2
    min_5m_carbimpact_mg_dl: float = 8.0


class HistoryFile(_Spec):
    format: Literal["openinfusion-therapy-history/1"]
    profile: ProfileSpec
    basal_delivery: Literal["scheduled", "recorded"] = "scheduled"
    glucose: list[GlucoseEntry]
    insulin: list[InsulinEntry] = []
    carbs: list[CarbEntry] = []


def _hourly_basal(p: ProfileSpec) -> np.ndarray[Any, np.dtype[np.float64]]:
    if (p.basal is None) == (p.basal_u_h is None):
        raise InputError("profile", None, "give exactly one of 'basal' (segments) or 'basal_u_h'")
    if p.basal_u_h is not None:
        values = np.atleast_1d(np.asarray(p.basal_u_h, dtype=float))
        if values.size == 1:
            return np.full(24, float(values[0]))
        if values.size != 24:
            raise InputError(
                "profile.basal_u_h", values.size, "must be one rate or 24 hourly rates"
            )
        return values
    segments = p.basal or []
    if not segments:
        raise InputError("profile.basal", "[]", "needs at least one segment")
    starts: list[int] = []
    for i, seg in enumerate(segments):
        m = _HHMM.match(seg.start)
        if m is None:
            raise InputError(
                f"profile.basal[{i}].start", seg.start, "must be 'HH:MM' (00:00-23:59)"
            )
        minute = int(m.group(1)) * 60 + int(m.group(2))
        if starts and minute <= starts[-1]:
            raise InputError(
                f"profile.basal[{i}].start", seg.start, "segments must be in time order"
            )
        starts.append(minute)
    if starts[0] != 0:
        raise InputError(
            "profile.basal[0].start", segments[0].start, "the first segment must start at 00:00"
        )
    hourly = np.empty(24)
    for h in range(24):
        k = max(i for i, s in enumerate(starts) if s <= h * 60)
        hourly[h] = segments[k].rate_u_h
    return hourly


def settings_from_spec(p: ProfileSpec) -> TherapySettings:
    """Therapy settings of an uploaded ``profile`` block."""
    try:
        return TherapySettings(
            basal_u_h=_hourly_basal(p),
            isf_mg_dl_u=p.isf_mg_dl_u,
            carb_ratio_g_u=p.carb_ratio_g_u,
            dia_h=p.dia_h,
            peak_min=p.peak_min,
            autosens_min=p.autosens_min,
            autosens_max=p.autosens_max,
            min_5m_carbimpact_mg_dl=p.min_5m_carbimpact_mg_dl,
        )
    except InputError as exc:
        if exc.field.startswith("profile"):
            raise
        raise InputError(f"profile.{exc.field}", exc.value, exc.rule) from None


def _wall_clock(field: str, text: str) -> datetime:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        raise InputError(
            field, text, "must be an ISO 8601 time, e.g. 2026-03-01T07:30:00"
        ) from None


def _times(name: str, entries: list[Any], day0: datetime | None) -> list[float]:
    out: list[float] = []
    for i, e in enumerate(entries):
        if (e.t_min is None) == (e.time is None):
            raise InputError(f"{name}[{i}]", None, "give exactly one of 't_min' or 'time'")
        if e.t_min is not None:
            if not math.isfinite(e.t_min):
                raise InputError(f"{name}[{i}].t_min", e.t_min, "must be a finite number")
            out.append(float(e.t_min))
        else:
            assert day0 is not None  # set whenever any entry has a time
            wall = _wall_clock(f"{name}[{i}].time", e.time)
            out.append((wall - day0).total_seconds() / 60.0)
    return out


def _day0(data: HistoryFile) -> datetime | None:
    walls = [
        _wall_clock(f"{name}[{i}].time", e.time)
        for name, entries in (
            ("glucose", data.glucose),
            ("insulin", data.insulin),
            ("carbs", data.carbs),
        )
        for i, e in enumerate(entries)
        if e.time is not None
    ]
    if not walls:
        return None
    first = min(walls)
    return first.replace(hour=0, minute=0, second=0, microsecond=0)


def history_from_data(raw: Any) -> TherapyHistory:
    """A :class:`TherapyHistory` from parsed uploaded data (see the module notes)."""
    try:
        data = HistoryFile.model_validate(raw)
    except ValidationError as exc:
        problems = [
            InputError(
                ".".join(str(p) for p in err.get("loc", ())) or "data",
                err.get("input") if isinstance(err.get("input"), str | int | float) else "",
                str(err.get("msg", "invalid")),
            )
            for err in exc.errors()
        ]
        raise InputErrors("therapy history", problems) from None
    settings = settings_from_spec(data.profile)
    day0 = _day0(data)
    gt = _times("glucose", data.glucose, day0)
    g = [e.mg_dl for e in data.glucose]
    bad = [i for i, v in enumerate(g) if not math.isfinite(v)]
    if bad:
        raise InputError(f"glucose[{bad[0]}].mg_dl", g[bad[0]], "must be a finite number")
    it = _times("insulin", data.insulin, day0)
    boluses: list[tuple[float, float]] = []
    rates: list[tuple[float, float, float]] = []
    for i, (t, e) in enumerate(zip(it, data.insulin, strict=True)):
        where = f"insulin[{i}]"
        if (e.units is None) == (e.rate_u_h is None):
            raise InputError(where, None, "give exactly one of 'units' or 'rate_u_h'")
        if e.rate_u_h is not None and e.duration_min is None:
            raise InputError(f"{where}.duration_min", None, "a rate needs a duration")
        for key in ("units", "rate_u_h", "duration_min"):
            v = getattr(e, key)
            if v is not None and (not math.isfinite(v) or v < 0):
                raise InputError(f"{where}.{key}", v, "must be a finite number, not negative")
        if e.units is not None and e.duration_min is None:
            boluses.append((t, e.units))
        elif e.units is not None:
            assert e.duration_min is not None
            if e.duration_min <= 0:
                raise InputError(f"{where}.duration_min", e.duration_min, "must be above 0 min")
            rates.append((t, e.duration_min, e.units / e.duration_min * 60.0))
        else:
            assert e.rate_u_h is not None and e.duration_min is not None
            rates.append((t, e.duration_min, e.rate_u_h))
    ct = _times("carbs", data.carbs, day0)
    carbs = [(t, e.g) for t, e in zip(ct, data.carbs, strict=True)]
    for i, (_, grams) in enumerate(carbs):
        if not math.isfinite(grams) or grams < 0:
            raise InputError(f"carbs[{i}].g", grams, "must be a finite number, not negative")
    try:
        return TherapyHistory.from_events(
            glucose_t_min=np.array(gt, dtype=float),
            glucose_mg_dl=np.array(g, dtype=float),
            settings=settings,
            boluses=boluses,
            rates=rates,
            carbs=carbs,
            basal=data.basal_delivery,
        )
    except InputError as exc:
        raise InputError(_entry_field(exc.field), exc.value, exc.rule) from None


def _entry_field(field: str) -> str:
    """``glucose.mg_dl[3]`` (array form) as ``glucose[3].mg_dl`` (entry form)."""
    m = re.match(r"^(glucose|carbs|insulin)\.(\w+)\[(\d+)\]$", field)
    if m:
        return f"{m.group(1)}[{m.group(3)}].{m.group(2)}"
    m = re.match(r"^rates\[(\d+)\]\.(\w+)$", field)
    if m:
        return f"insulin (rate entry {m.group(1)}).{m.group(2)}"
    return field


def load_history(path: str | Path) -> TherapyHistory:
    """Read uploaded data from a JSON file (duplicate keys and NaN literals refused)."""
    from openinfusion.library.loading import parse_json_strict

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("data", str(p), f"cannot be read ({exc})") from None
    return history_from_data(parse_json_strict(text, "data"))


def history_to_data(history: TherapyHistory) -> dict[str, Any]:
    """The uploaded-data form of ``history``: recorded delivery, each minute's units as one
    entry at the start of its minute."""
    s = history.settings
    u = history.insulin_u
    start = history.insulin_start_min
    insulin = [
        {"t_min": float(start + i), "units": round(float(u[i]), 6)}
        for i in np.nonzero(u > 0)[0].tolist()
    ]
    return {
        "format": FORMAT,
        "profile": {k: v for k, v in s.as_dict().items()},
        "basal_delivery": "recorded",
        "glucose": [
            {"t_min": float(t), "mg_dl": round(float(g), 2)}
            for t, g in zip(history.glucose_t_min, history.glucose_mg_dl, strict=True)
        ],
        "insulin": insulin,
        "carbs": [
            {"t_min": float(t), "g": float(g)}
            for t, g in zip(history.carbs_t_min, history.carbs_g, strict=True)
        ],
    }


__all__ = ["FORMAT", "HistoryFile", "history_from_data", "history_to_data", "load_history"]
