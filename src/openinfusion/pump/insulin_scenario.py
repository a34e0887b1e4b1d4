"""Insulin patch pump scenarios: the patient's pump settings and timed events, run on the pump.

A scenario file for an insulin pump looks like any other (``{"pump": {"kind":
"insulin_patch"}, "duration": "24 h", "program": {...}, "events": [...]}``) with an
:class:`InsulinProgramSpec` as the program and :class:`InsulinEventSpec` events. Quantities
are written with their units and parsed at the edge (:mod:`openinfusion.units`); "U" is
refused for "units" like everywhere else (ISMP error-prone abbreviation). Glucose may be in
mg/dL or mmol/L.

:func:`run_insulin` starts the pump on its settings at the local start time, walks the
events in time order and reports delivery like the hospital runner, plus an ``insulin``
section. A command the pump refuses (a bolus above max bolus or max IOB, a temp basal above
max basal, a resume while running) becomes a ``rejected`` event and the run goes on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from openinfusion.errors import InputError, InputErrors
from openinfusion.pump.channel import State
from openinfusion.pump.clock import PumpClock
from openinfusion.pump.device import Record
from openinfusion.pump.insulin import (
    BasalSchedule,
    BolusRecommendation,
    DeliveryKind,
    InsulinPump,
    InsulinSettings,
)
from openinfusion.units import (
    Dimension,
    Kind,
    parse_amount,
    parse_amount_unit,
    parse_concentration,
    parse_dose,
    parse_quantity,
    split_number,
)

# Glucose: molar mass 180.16 g/mol, so 1 mmol/L = 180.16 mg/L = 18.016 mg/dL.
MG_DL_PER_MMOL_L = 18.016
_ISMP_UNITS = "write 'units' ('U' is misread as 0 or 4; ISMP error-prone abbreviation)"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BasalEntrySpec(_Spec):
    """One basal segment: from local ``start`` ("HH:MM") run ``rate`` ("0.8 units/h")."""

    start: str
    rate: str


class InsulinProgramSpec(_Spec):
    """An insulin pump's settings, as written in a scenario file (every quantity with units).

    ``target`` is one glucose ("110 mg/dL") or a range (["100 mg/dL", "120 mg/dL"]).
    ``start`` is the local date-time the run begins (ISO 8601, in ``timezone`` unless it
    carries an offset).
    """

    therapy: Literal["insulin"]
    basal: list[BasalEntrySpec] = Field(min_length=1)
    carb_ratio: str  # "10 g/unit"
    isf: str  # "50 mg/dL/unit" or "2.8 mmol/L/unit"
    target: str | tuple[str, str]  # "110 mg/dL" or ["100 mg/dL", "120 mg/dL"]
    max_bolus: str  # "10 units"
    max_basal: str  # "3 units/h"
    max_iob: str  # "15 units"
    dia: str = "5 h"
    peak: str = "75 min"  # rapid-acting; "55 min" for ultra-rapid (AID_REFERENCE.md §2.3)
    concentration: str = "100 units/mL"
    pulse: str = "0.05 units"
    reservoir: str = "200 units"
    reservoir_low: str = "10 units"
    bolus_rate: str = "1.5 units/min"
    suspend_reminder: str = "30 min"
    timezone: str = "UTC"
    start: str = "2026-01-01T00:00:00"


InsulinEventType = Literal[
    "meal",
    "insulin_bolus",
    "temp_basal",
    "cancel_temp_basal",
    "suspend_insulin",
    "resume_insulin",
]
INSULIN_EVENT_TYPES: tuple[str, ...] = get_args(InsulinEventType)

_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {  # type: (required, allowed)
    "meal": (frozenset({"carbs"}), frozenset({"carbs", "bg", "kind", "over", "split_percent"})),
    "insulin_bolus": (frozenset({"dose"}), frozenset({"dose", "kind", "over", "split_percent"})),
    "temp_basal": (frozenset({"duration"}), frozenset({"percent", "rate", "duration"})),
    "cancel_temp_basal": (frozenset(), frozenset()),
    "suspend_insulin": (frozenset(), frozenset()),
    "resume_insulin": (frozenset(), frozenset()),
}


class InsulinEventSpec(_Spec):
    """A timed insulin pump event (``at`` is the time from the start, e.g. "7 h").

    - ``meal``: ``carbs`` ("60 g") and optionally ``bg`` ("180 mg/dL"; without it no
      correction); the bolus wizard's dose is given (``kind`` etc. as for a bolus).
    - ``insulin_bolus``: ``dose`` ("4 units"), ``kind`` normal/extended/dual, ``over`` (the
      extended part's duration, "2 h"), ``split_percent`` (dual: percent given now).
    - ``temp_basal``: ``percent`` of the scheduled rate or ``rate`` ("1.5 units/h"), for
      ``duration`` ("1 h").
    - ``cancel_temp_basal``, ``suspend_insulin``, ``resume_insulin``: nothing else.
    """

    at: str
    type: InsulinEventType
    carbs: str | None = None
    bg: str | None = None
    dose: str | None = None
    kind: Literal["normal", "extended", "dual"] = "normal"
    over: str | None = None
    split_percent: float | None = Field(default=None, gt=0, lt=100, allow_inf_nan=False)
    percent: float | None = Field(default=None, ge=0, le=1000, allow_inf_nan=False)
    rate: str | None = None
    duration: str | None = None

    @model_validator(mode="after")
    def _fields_fit_the_type(self) -> InsulinEventSpec:
        given = self.model_fields_set - {"at", "type"}
        required, allowed = _FIELDS[self.type]
        if missing := sorted(required - given):
            raise ValueError(f"a {self.type} event needs {', '.join(missing)}")
        if extra := sorted(given - allowed):
            raise ValueError(f"a {self.type} event takes no {', '.join(extra)}")
        if self.type == "temp_basal" and (self.percent is None) == (self.rate is None):
            raise ValueError("a temp_basal event needs either percent or rate")
        if self.type in ("meal", "insulin_bolus"):
            needs = {"normal": set(), "extended": {"over"}, "dual": {"over", "split_percent"}}
            wanted = needs[self.kind]
            if missing := sorted(f for f in wanted if getattr(self, f) is None):
                raise ValueError(f"a {self.kind} bolus needs {', '.join(missing)}")
            if extra := sorted({"over", "split_percent"} & given - wanted):
                raise ValueError(f"a {self.kind} bolus takes no {', '.join(extra)}")
        _minutes(self.at, "at")  # every quantity parses (raises InputError, a ValueError)
        for name, parse in _EVENT_PARSERS.items():
            text = getattr(self, name)
            if text is not None:
                parse(text, name)
        return self


# ---- parsing -----------------------------------------------------------------------------------


def _minutes(text: str, field: str) -> float:
    return parse_quantity(text, Kind.DURATION, field)


def _amount(text: str, field: str, dimension: Dimension, example: str) -> float:
    """An amount in ``dimension``'s canonical unit (mg, units)."""
    value, unit = parse_amount(text, field)
    if unit.dimension is not dimension:
        raise InputError(field, text, f"must be an amount in {dimension.value}, e.g. {example}")
    return unit.to_canonical(value)


def _units(text: str, field: str) -> float:
    """Insulin amount (U) from "4 units"."""
    return _amount(text, field, Dimension.UNITS, "'4 units'")


def _grams(text: str, field: str) -> float:
    """Carbohydrate (g) from "60 g"."""
    return _amount(text, field, Dimension.MASS, "'60 g'") / 1000.0


def _units_h(text: str, field: str) -> float:
    """Insulin rate (U/h) from "0.8 units/h"."""
    dose = parse_dose(text, field)
    unit = dose.unit
    if unit.dimension is not Dimension.UNITS or not unit.is_rate or unit.basis.value:
        raise InputError(field, text, "must be an insulin rate, e.g. '0.8 units/h'")
    return dose.canonical


def _glucose_unit(unit_text: str, text: str, field: str) -> float:
    """mg/dL per one of ``unit_text`` (mg/dL or mmol/L)."""
    key = unit_text.replace(" ", "").lower()
    if key == "mg/dl":
        return 1.0
    if key == "mmol/l":
        return MG_DL_PER_MMOL_L
    raise InputError(field, text, "must be a glucose in mg/dL or mmol/L, e.g. '110 mg/dL'")


def _glucose(text: str, field: str) -> float:
    """Glucose (mg/dL) from "110 mg/dL" or "6.1 mmol/L"."""
    value, unit_text = split_number(text, field)
    return value * _glucose_unit(unit_text, text, field)


def _per_unit(text: str, field: str, example: str) -> tuple[float, str]:
    """(value, numerator unit text) of "<value> <unit>/unit"; the denominator must be units."""
    value, unit_text = split_number(text, field)
    numerator, slash, denominator = unit_text.rpartition("/")
    if not slash:
        raise InputError(field, text, f"must be per unit of insulin, e.g. '{example}'")
    if denominator.strip() in ("U", "u"):
        raise InputError(field, text, _ISMP_UNITS)
    try:
        unit = parse_amount_unit(denominator, field)
    except InputError as exc:
        raise InputError(field, text, exc.rule) from None
    if unit.dimension is not Dimension.UNITS:
        raise InputError(field, text, f"must be per unit of insulin, e.g. '{example}'")
    return value / unit.factor, numerator


def _carb_ratio(text: str, field: str) -> float:
    """Carb ratio (g/U) from "10 g/unit"."""
    value, numerator = _per_unit(text, field, "10 g/unit")
    return _grams(f"{value!r} {numerator}", field)


def _isf(text: str, field: str) -> float:
    """Insulin sensitivity (mg/dL per U) from "50 mg/dL/unit" or "2.8 mmol/L/unit"."""
    value, numerator = _per_unit(text, field, "50 mg/dL/unit")
    return value * _glucose_unit(numerator, text, field)


_EVENT_PARSERS: dict[str, Callable[[str, str], float]] = {
    "carbs": _grams,
    "bg": _glucose,
    "dose": _units,
    "over": _minutes,
    "rate": _units_h,
    "duration": _minutes,
}


class _Collect:
    """Parse many fields, keeping every problem (then raise them all at once)."""

    def __init__(self) -> None:
        self.problems: list[InputError] = []

    def __call__(self, parse: Callable[[str, str], float], text: str, field: str) -> float:
        try:
            return parse(text, field)
        except InputError as exc:
            self.problems.append(exc)
            return math.nan


def insulin_settings(program: InsulinProgramSpec) -> InsulinSettings:
    """The pump settings of ``program``; every problem is reported at once (InputErrors)."""
    p, get = program, _Collect()
    basal = [
        (b.start, get(_units_h, b.rate, f"program.basal[{i}].rate")) for i, b in enumerate(p.basal)
    ]
    targets = (p.target, p.target) if isinstance(p.target, str) else p.target
    low = get(_glucose, targets[0], "program.target")
    high = get(_glucose, targets[1], "program.target")
    values = {
        "carb_ratio_g_per_unit": get(_carb_ratio, p.carb_ratio, "program.carb_ratio"),
        "isf_mg_dl_per_unit": get(_isf, p.isf, "program.isf"),
        "max_bolus_units": get(_units, p.max_bolus, "program.max_bolus"),
        "max_basal_units_h": get(_units_h, p.max_basal, "program.max_basal"),
        "max_iob_units": get(_units, p.max_iob, "program.max_iob"),
        "dia_h": get(_minutes, p.dia, "program.dia") / 60.0,
        "peak_min": get(_minutes, p.peak, "program.peak"),
        "units_per_ml": get(_units_per_ml, p.concentration, "program.concentration"),
        "pulse_units": get(_units, p.pulse, "program.pulse"),
    }
    if get.problems:
        raise InputErrors("insulin program", get.problems)
    try:
        return InsulinSettings(basal=basal, target_low_mg_dl=low, target_high_mg_dl=high, **values)
    except InputErrors as exc:
        raise InputErrors(
            "insulin program",
            [InputError(f"program.{e.field}", e.value, e.rule) for e in exc.problems],
        ) from None


def _units_per_ml(text: str, field: str) -> float:
    """Insulin strength (U/mL) from "100 units/mL"."""
    concentration = parse_concentration(text, field)
    if concentration.dimension is not Dimension.UNITS:
        raise InputError(field, text, "must be insulin units per mL, e.g. '100 units/mL'")
    return concentration.per_ml


def insulin_pump(program: InsulinProgramSpec) -> InsulinPump:
    """A new pump with ``program``'s hardware settings (reservoir, pulse, bolus rate...)."""
    p, get = program, _Collect()
    values = {
        "reservoir_units": get(_units, p.reservoir, "program.reservoir"),
        "units_per_ml": get(_units_per_ml, p.concentration, "program.concentration"),
        "pulse_units": get(_units, p.pulse, "program.pulse"),
        "bolus_rate_units_min": get(_units_h, p.bolus_rate, "program.bolus_rate") / 60.0,
        "reservoir_low_units": get(_units, p.reservoir_low, "program.reservoir_low"),
        "suspend_reminder_s": get(_minutes, p.suspend_reminder, "program.suspend_reminder") * 60.0,
    }
    if get.problems:
        raise InputErrors("insulin program", get.problems)
    return InsulinPump(**values)


def timed_events(
    events: Sequence[InsulinEventSpec], duration_s: float
) -> list[tuple[float, InsulinEventSpec]]:
    """(pump s, event) for each event, in time order (ties keep file order)."""
    out: list[tuple[float, int, InsulinEventSpec]] = []
    for i, e in enumerate(events):
        t = _minutes(e.at, f"events[{i}].at") * 60.0
        if not 0 <= t <= duration_s:
            raise InputError(f"events[{i}].at", e.at, "must be within the scenario duration")
        out.append((t, i, e))
    return [(t, e) for t, _, e in sorted(out, key=lambda x: (x[0], x[1]))]


# ---- running ----------------------------------------------------------------------------------


class _Runner:
    def __init__(self, program: InsulinProgramSpec) -> None:
        self.program = program
        self.settings = insulin_settings(program)
        self.pump = insulin_pump(program)
        self.clock = PumpClock.at(program.start, program.timezone)
        self.boluses: list[dict[str, Any]] = []
        self.bolus_ids: list[list[int]] = []
        self.temp_basals: list[dict[str, Any]] = []

    def apply(self, e: InsulinEventSpec) -> None:
        pump = self.pump
        seen = len(pump.device.records)
        try:
            if e.type == "meal":
                self._meal(e, seen)
            elif e.type == "insulin_bolus":
                self._bolus(e, _units(e.dose or "", "dose"), {"type": e.type}, seen)
            elif e.type == "temp_basal":
                self._temp_basal(e)
            elif e.type == "cancel_temp_basal":
                pump.cancel_temp_basal()
            elif e.type == "suspend_insulin":
                pump.suspend()
            else:
                pump.resume()
        except InputError as exc:  # CommandRejected included
            self._rejected(e.type, exc, seen)

    def _rejected(self, command: str, exc: InputError, seen: int) -> None:
        """Record a refusal as a ``rejected`` event (the engine records its own)."""
        device = self.pump.device
        if not any(r.kind == "rejected" for r in device.records[seen:]):
            data = {"command": command, "channel": 0, "field": exc.field, "reason": exc.message}
            device._emit(device.t_s, "rejected", data)

    def _meal(self, e: InsulinEventSpec, seen: int) -> None:
        carbs = _grams(e.carbs or "", "carbs")
        bg = _glucose(e.bg, "bg") if e.bg is not None else None
        # without a meter reading the wizard makes no correction: BG at the target's low end
        rec = self.pump.recommend(bg if bg is not None else self.settings.target_low_mg_dl, carbs)
        entry = {"type": "meal", "carbs_g": carbs, "bg_mg_dl": bg, **_wizard(rec)}
        if rec.units <= 0:
            self._record_bolus(entry, 0.0, "no bolus: the wizard dose is 0 U", [])
            return
        self._bolus(e, rec.units, entry, seen)

    def _bolus(self, e: InsulinEventSpec, units: float, entry: dict[str, Any], seen: int) -> None:
        minutes = _minutes(e.over, "over") if e.over is not None else None
        split = e.split_percent / 100.0 if e.split_percent is not None else None
        entry = {**entry, "kind": e.kind}
        try:
            self.pump.bolus(units, e.kind, extended_minutes=minutes, split=split)
        except InputError as exc:
            self._record_bolus(entry, units, f"rejected: {exc.message}", [])
            raise
        ids = [
            int(r.data["id"]) for r in self.pump.device.records[seen:] if r.kind == "bolus_started"
        ]
        self._record_bolus(entry, units, "given", ids)

    def _record_bolus(
        self, entry: dict[str, Any], requested: float, status: str, ids: list[int]
    ) -> None:
        at_min = round(self.pump.now / 60.0, 6)
        self.boluses.append({"at_min": at_min, **entry, "requested": requested, "status": status})
        self.bolus_ids.append(ids)

    def _temp_basal(self, e: InsulinEventSpec) -> None:
        minutes = _minutes(e.duration or "", "duration")
        units_h = _units_h(e.rate, "rate") if e.rate is not None else None
        rate = self.pump.temp_basal(minutes=minutes, percent=e.percent, units_h=units_h)
        self.temp_basals.append(
            {
                "at_min": round(self.pump.now / 60.0, 6),
                "rate_units_h": rate,
                "percent": e.percent,
                "minutes": minutes,
            }
        )

    # ---- report -------------------------------------------------------------------------------

    def report(self, duration_s: float) -> dict[str, Any]:
        pump, ch = self.pump, self.pump.channel
        records = pump.device.records
        dose = {"value": _r(pump.delivered_units), "unit": "units"}
        kinds = pump.delivered_by_kind()
        scheduled = BasalSchedule(self.settings, self.clock).pieces(0.0, duration_s)
        return {
            "delivered_ml": ch.pumped_ml,
            "delivered_dose": dose,
            "alarms": [
                {
                    "at_min": round(r.t_s / 60.0, 6),
                    "code": r.data["code"],
                    "priority": r.data["priority"],
                    "channel": r.data.get("channel"),
                }
                for r in records
                if r.kind == "alarm"
            ],
            "events": [_event(r) for r in records if r.kind != "command"],
            "final_state": ch.state.value,
            "verdict": None,
            "override": None,
            "summary": self._summary(),
            "channels": [{**ch.status(), "delivered_dose": dose}],
            "duration_min": duration_s / 60.0,
            "battery_percent": pump.device.battery.percent,
            "insulin": {
                "basal_units": _r(kinds[DeliveryKind.BASAL] + kinds[DeliveryKind.TEMP_BASAL]),
                "temp_basal_units": _r(kinds[DeliveryKind.TEMP_BASAL]),
                "scheduled_basal_units": _r(sum(d.units for d in scheduled)),
                "bolus_units": _r(kinds[DeliveryKind.BOLUS] + kinds[DeliveryKind.EXTENDED]),
                "extended_units": _r(kinds[DeliveryKind.EXTENDED]),
                "iob_units_end": _r(pump.iob()),
                "reservoir_units_end": _r(pump.reservoir_units),
                "suspended_min": _r(_minutes_in(records, State.PAUSED, duration_s)),
                "boluses": self._bolus_report(),
                "temp_basals": self.temp_basals,
                "rejected": sum(r.kind == "rejected" for r in records),
            },
        }

    def _bolus_report(self) -> list[dict[str, Any]]:
        """Each bolus with the units actually delivered of it (U)."""
        delivered_ml: dict[int, float] = {}
        for r in self.pump.device.records:
            if r.kind in ("bolus_complete", "bolus_cancelled"):
                delivered_ml[int(r.data["id"])] = float(r.data["delivered_ml"])
        for o in self.pump.channel.overlays:  # still running at the end
            delivered_ml[o.id] = o.delivered_ml
        per_ml = self.settings.units_per_ml
        return [
            {**entry, "delivered": _r(sum(delivered_ml.get(i, 0.0) for i in ids) * per_ml)}
            for entry, ids in zip(self.boluses, self.bolus_ids, strict=True)
        ]

    def _summary(self) -> dict[str, Any]:
        s = self.settings
        return {
            "basal": [[seg.start.strftime("%H:%M"), seg.units_h] for seg in s.segments],
            "carb_ratio_g_per_unit": s.carb_ratio_g_per_unit,
            "isf_mg_dl_per_unit": s.isf_mg_dl_per_unit,
            "target_mg_dl": [s.target_low_mg_dl, s.target_high_mg_dl],
            "max_basal_units_h": s.max_basal_units_h,
            "max_bolus_units": s.max_bolus_units,
            "max_iob_units": s.max_iob_units,
            "dia_h": s.dia_h,
            "peak_min": s.peak_min,
            "units_per_ml": s.units_per_ml,
            "timezone": self.program.timezone,
            "start_local": self.clock.local(0.0).isoformat(),
        }


def _wizard(rec: BolusRecommendation) -> dict[str, Any]:
    return {
        "carb_units": _r(rec.carb_units),
        "correction_units": _r(rec.correction_units),
        "iob_units": _r(rec.iob_units),
        "calculated": _r(rec.calculated_units),
        "reasons": list(rec.reasons),
    }


def _r(value: float) -> float:
    """Round away float noise (1e-6 U is far below a pulse)."""
    return round(value, 6) + 0.0


def _event(r: Record) -> dict[str, Any]:
    return {"at_min": round(r.t_s / 60.0, 6), "type": r.kind, **r.data}


def _minutes_in(records: Sequence[Record], state: State, end_s: float) -> float:
    """Minutes the channel spent in ``state`` up to ``end_s`` (from its state changes)."""
    total, since = 0.0, None
    for r in records:
        to = r.data.get("to")
        if to is None:
            continue
        if to == state.value and since is None:
            since = r.t_s
        elif to != state.value and since is not None:
            total += r.t_s - since
            since = None
    if since is not None:
        total += end_s - since
    return total / 60.0


def run_insulin(
    program: InsulinProgramSpec,
    events: Sequence[tuple[float, InsulinEventSpec]],
    duration_s: float,
) -> dict[str, Any]:
    """Run an insulin pump from pump time 0 to ``duration_s`` (s), applying each event at
    its pump time (s, see :func:`timed_events`), and report.

    The settings are checked first (InputErrors: nothing runs). Report keys: those of the
    hospital runner (``delivered_ml``, ``delivered_dose`` in units, ``alarms``, ``events``,
    ``final_state``, ...) and ``insulin``: basal and bolus units delivered (ideal, by
    kind), scheduled basal units, IOB and reservoir at the end (U), minutes suspended,
    every bolus (requested, delivered, wizard terms for a meal, status) and temp basal.
    """
    if not (math.isfinite(duration_s) and 0 < duration_s <= 366 * 86_400.0):
        raise InputError("duration", duration_s, "must be between 0 and 366 days")
    ordered = sorted(events, key=lambda te: te[0])
    for t, e in ordered:
        if not (math.isfinite(t) and 0 <= t <= duration_s):
            raise InputError("events.at", e.at, "must be within the scenario duration")
    runner = _Runner(program)
    runner.pump.start(runner.settings, runner.clock)
    for t, e in ordered:
        runner.pump.advance_to(t)
        runner.apply(e)
    runner.pump.advance_to(duration_s)
    return runner.report(duration_s)


__all__ = [
    "INSULIN_EVENT_TYPES",
    "BasalEntrySpec",
    "InsulinEventSpec",
    "InsulinProgramSpec",
    "insulin_pump",
    "insulin_settings",
    "run_insulin",
    "timed_events",
]
