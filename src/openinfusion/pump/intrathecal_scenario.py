"""Intrathecal scenarios: an implanted pump's program and timed events, run on the engine.

The scenario file keeps the hospital runner's shape (``pump``, ``duration``, ``program``,
``events``; see :mod:`openinfusion.pump.scenario`) with an ``"intrathecal"`` program::

    {"pump": {"kind": "implant", "reservoir_ml": 20}, "duration": "30 days",
     "program": {"therapy": "intrathecal", "drug": "baclofen",
                 "concentration": "2000 mcg/mL", "max_daily_dose": "700 mcg/day",
                 "flex": [{"start": "06:00", "dose": "600 mcg/day"},
                          {"start": "22:00", "dose": "300 mcg/day"}],
                 "ptm": {"dose": "50 mcg", "lockout": "3 h", "max_per_day": 3},
                 "start": "2026-03-25T00:00:00", "timezone": "Europe/Paris"},
     "events": [{"at": "8 h", "type": "ptm"},
                {"at": "20 days", "type": "refill", "found": "12.5 mL", "added": "20 mL"}]}

:func:`run_intrathecal` starts the program at pump time 0 and walks the events in time
order. A refused event (a refill that would overfill the reservoir, a reprogramming over
the hard limit, ...) becomes a ``rejected`` event and the run goes on, as on the hospital
runner; a refused program refuses the whole run (:class:`~openinfusion.errors.InputError`).
Time is event driven, so a run of months or years takes milliseconds.

The hospital drug library is consulted only for an entry whose therapy is
``"intrathecal"``: an IV entry for the same drug has limits hundreds of times too high for
the intrathecal route, so it is never used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from openinfusion.errors import InputError
from openinfusion.library import CareArea, DersError, DrugEntry, Library
from openinfusion.patient import Patient
from openinfusion.pump.channel import CommandRejected
from openinfusion.pump.clock import PumpClock
from openinfusion.pump.codes import Alarm, Event
from openinfusion.pump.device import Record
from openinfusion.pump.intrathecal import (
    DAY_S,
    DEFAULT_CATHETER_CM,
    CompiledPrescription,
    FlexStep,
    Forecast,
    IntrathecalPrescription,
    IntrathecalPump,
    PtmSettings,
    RefillResult,
    implant_battery,
)
from openinfusion.units import Kind, parse_quantity

DEFAULT_START = "2026-01-01T00:00:00"
DEFAULT_RESERVOIR_ML = 20.0
MAX_DURATION_DAYS = 8 * 365.25  # longer than the 7-year battery: ERI and end of service
INTRATHECAL_THERAPY = "intrathecal"  # the library therapy name an entry must carry


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FlexStepSpec(_Spec):
    """A flex step: ``{"start": "06:00", "dose": "600 mcg/day"}`` (``"Mon 06:00"`` weekly)."""

    start: str
    dose: str


class PtmSpec(_Spec):
    """The patient's bolus: dose ("50 mcg"), lockout ("3 h"), activations per 24 h."""

    dose: str
    lockout: str
    max_per_day: int
    duration: str = "10 min"


class IntrathecalProgramSpec(_Spec):
    """An implanted intrathecal pump's program (see the module docstring)."""

    therapy: Literal["intrathecal"]
    drug: str
    concentration: str
    max_daily_dose: str
    daily_dose: str | None = None
    flex: tuple[FlexStepSpec, ...] = ()
    flex_period: Literal["day", "week"] = "day"
    ptm: PtmSpec | None = None
    reservoir_ml: float | None = None  # 20 or 40; default: the pump's, else 20
    fill_ml: float | None = None  # drug in the reservoir at the start; default: full
    low_reservoir_ml: float = 2.0
    start: str | None = None  # local date-time at pump time 0 (ISO 8601)
    timezone: str = "UTC"
    catheter_cm: float = DEFAULT_CATHETER_CM


IntrathecalEventType = Literal["ptm", "refill", "reprogram", "acknowledge"]


class IntrathecalEventSpec(_Spec):
    """A timed event.

    ``ptm``: the patient presses the PTM. ``refill``: ``found`` (residual drained) and
    ``added`` volumes, optionally a new ``drug``/``concentration`` and prescription fields.
    ``reprogram``: prescription fields (``daily_dose`` or ``flex``, ``flex_period``,
    ``ptm``, ``max_daily_dose``, ``low_reservoir_ml``); a field left out keeps its value,
    ``"ptm": null`` removes the PTM. ``acknowledge``: an alarm ``code``.
    """

    at: str
    type: IntrathecalEventType
    found: str | None = None
    added: str | None = None
    drug: str | None = None
    concentration: str | None = None
    daily_dose: str | None = None
    flex: tuple[FlexStepSpec, ...] | None = None
    flex_period: Literal["day", "week"] | None = None
    ptm: PtmSpec | None = None
    max_daily_dose: str | None = None
    low_reservoir_ml: float | None = None
    code: str | None = None
    override_reason: str | None = None


# ---- from specs to the domain --------------------------------------------------------------


def _ptm(spec: PtmSpec | None) -> PtmSettings | None:
    if spec is None:
        return None
    return PtmSettings(
        bolus=spec.dose, lockout=spec.lockout, max_per_day=spec.max_per_day, duration=spec.duration
    )


def _flex(steps: Sequence[FlexStepSpec]) -> tuple[FlexStep, ...]:
    return tuple(FlexStep(start=s.start, dose=s.dose) for s in steps)


def _json_field(exc: InputError) -> InputError:
    """The same error with the scenario's field names (``ptm.dose``, not ``ptm.bolus``)."""
    field = exc.field.replace("ptm.bolus", "ptm.dose")
    return exc if field == exc.field else InputError(field, exc.value, exc.rule)


def prescription_from_spec(
    spec: IntrathecalProgramSpec, reservoir_ml: float | None = None
) -> IntrathecalPrescription:
    """The domain prescription of ``spec`` (``reservoir_ml``: the pump's size, if known)."""
    size = spec.reservoir_ml
    if size is None:
        size = reservoir_ml if reservoir_ml is not None else DEFAULT_RESERVOIR_ML
    elif reservoir_ml is not None and size != reservoir_ml:
        raise InputError(
            "program.reservoir_ml", size, f"does not match the pump's {reservoir_ml:g} mL reservoir"
        )
    return IntrathecalPrescription(
        drug=spec.drug,
        concentration=spec.concentration,
        max_daily_dose=spec.max_daily_dose,
        daily_dose=spec.daily_dose,
        flex=_flex(spec.flex),
        flex_period=spec.flex_period,
        ptm=_ptm(spec.ptm),
        reservoir_ml=size,
        low_reservoir_ml=spec.low_reservoir_ml,
    )


def _changes(base: IntrathecalPrescription, e: IntrathecalEventSpec) -> IntrathecalPrescription:
    """``base`` with the prescription fields the event gives."""
    if e.daily_dose is not None and e.flex is not None:
        raise InputError(
            "daily_dose", e.daily_dose, "give a daily dose or flex steps (one of them)"
        )
    changes: dict[str, Any] = {}
    if e.daily_dose is not None:
        changes.update(daily_dose=e.daily_dose, flex=())
    if e.flex is not None:
        changes.update(flex=_flex(e.flex), daily_dose=None)
    if e.flex_period is not None:
        changes["flex_period"] = e.flex_period
    if "ptm" in e.model_fields_set:
        changes["ptm"] = _ptm(e.ptm)
    if e.max_daily_dose is not None:
        changes["max_daily_dose"] = e.max_daily_dose
    if e.low_reservoir_ml is not None:
        changes["low_reservoir_ml"] = e.low_reservoir_ml
    if e.drug is not None:
        changes["drug"] = e.drug
    if e.concentration is not None:
        changes["concentration"] = e.concentration
    return replace(base, **changes)


_RX_FIELDS = ("daily_dose", "flex", "flex_period", "ptm", "max_daily_dose", "low_reservoir_ml")


def _library_entry(
    library: Library | None, care_area: CareArea | str | None, drug: str
) -> tuple[DrugEntry | None, CareArea | None]:
    """The library's intrathecal entry for ``drug`` in the care area (None if absent)."""
    if library is None or care_area is None:
        return None, care_area if isinstance(care_area, CareArea) else None
    area = care_area if isinstance(care_area, CareArea) else library.care_area(care_area)
    if not isinstance(drug, str) or not drug.strip():
        return None, area
    return library.find(area.id, drug, therapy=INTRATHECAL_THERAPY), area


def event_times(events: Sequence[IntrathecalEventSpec]) -> list[tuple[float, IntrathecalEventSpec]]:
    """Each event with its time in seconds (``"at": "12 days"``)."""
    return [
        (parse_quantity(e.at, Kind.DURATION, f"events[{i}].at") * 60.0, e)
        for i, e in enumerate(events)
    ]


# ---- the run --------------------------------------------------------------------------------


def run_intrathecal(
    program: IntrathecalProgramSpec,
    events: Sequence[tuple[float, IntrathecalEventSpec]],
    duration_s: float,
    *,
    patient: Patient | None = None,
    library: Library | None = None,
    care_area: CareArea | str | None = None,
    override_reason: str | None = None,
    reservoir_ml: float | None = None,
    battery_percent: float = 100.0,
) -> dict[str, Any]:
    """Run ``program`` for ``duration_s`` seconds with timed ``events`` (seconds, spec).

    ``reservoir_ml`` is the pump's reservoir size when the scenario's pump names one
    (it must agree with the program's); ``battery_percent`` the implant battery's charge
    at the start. Returns the hospital runner's report keys plus ``"intrathecal"``.
    """
    if isinstance(duration_s, bool) or not isinstance(duration_s, int | float):
        raise InputError("duration", duration_s, "must be a number of seconds")
    if not (math.isfinite(duration_s) and 0 < duration_s <= MAX_DURATION_DAYS * DAY_S):
        raise InputError(
            "duration", duration_s, f"must be between 0 and {MAX_DURATION_DAYS / 365.25:g} years"
        )
    if not (
        isinstance(battery_percent, int | float)
        and math.isfinite(battery_percent)
        and 0 < battery_percent <= 100
    ):
        raise InputError("pump.battery_percent", battery_percent, "must be in (0, 100]")
    timed = sorted(enumerate(events), key=lambda item: (item[1][0], item[0]))
    for i, (t, _) in timed:
        if not (math.isfinite(t) and 0 <= t <= duration_s):
            raise InputError(f"events[{i}].at", t, "must be within the scenario duration")
    try:
        rx = prescription_from_spec(program, reservoir_ml)
        entry, area = _library_entry(library, care_area, program.drug)
        clock = PumpClock.at(program.start or DEFAULT_START, program.timezone)
        pump = IntrathecalPump(
            rx,
            clock=clock,
            catheter_cm=program.catheter_cm,
            battery=implant_battery(battery_percent / 100.0),
            entry=entry,
            patient=patient,
            care_area=area,
            override_reason=override_reason,
            fill_ml=program.fill_ml,
        )
    except InputError as exc:
        raise _json_field(exc) from None
    initial = pump.rx
    pump.start()
    for _, (t, spec) in timed:
        pump.advance_to(t)
        _apply(pump, spec, override_reason)
    pump.advance_to(duration_s)
    return _report(pump, initial, duration_s, entry)


def _apply(pump: IntrathecalPump, e: IntrathecalEventSpec, override: str | None) -> None:
    """Apply one event; a refusal is recorded as a ``rejected`` event."""
    records = pump.device.records
    mark = len(records)
    try:
        if e.type == "ptm":
            pump.ptm()
        elif e.type == "refill":
            if e.found is None or e.added is None:
                raise InputError(
                    "refill", "", "needs the volume found (drained) and added, e.g. '12.5 mL'"
                )
            found = parse_quantity(e.found, Kind.VOLUME, "refill.found")
            added = parse_quantity(e.added, Kind.VOLUME, "refill.added")
            new_rx = (
                _changes(pump.rx.rx, e)
                if any(getattr(e, f) is not None or f in e.model_fields_set for f in _RX_FIELDS)
                else None
            )
            pump.refill(
                found,
                added,
                e.concentration,
                drug=e.drug,
                prescription=new_rx,
                override_reason=e.override_reason or override,
            )
        elif e.type == "reprogram":
            pump.reprogram(_changes(pump.rx.rx, e), override_reason=e.override_reason or override)
        else:
            pump.device.acknowledge(0, _alarm(e.code))
    except CommandRejected as exc:
        if not any(r.kind == "rejected" for r in records[mark:]):  # the device records its own
            _reject(pump, e, exc.message)
    except InputError as exc:
        _reject(pump, e, _json_field(exc).message)
    except DersError as exc:
        _reject(pump, e, str(exc))


def _reject(pump: IntrathecalPump, e: IntrathecalEventSpec, reason: str) -> None:
    pump.channel.emit(pump.t_s, "rejected", {"command": e.type, "reason": reason})


def _alarm(code: str | None) -> Alarm:
    for alarm in Alarm:
        if alarm.code == code:
            return alarm
    raise InputError("code", code or "", "is not an alarm code (see openinfusion pump codes)")


# ---- the report -----------------------------------------------------------------------------


def _minutes(t_s: float) -> float:
    return round(t_s / 60.0, 6)


def _date(forecast: Forecast) -> str | None:
    return forecast.local.isoformat() if forecast.local is not None else None


def _days(forecast: Forecast) -> float | None:
    return round(forecast.days_from_now, 6) if math.isfinite(forecast.days_from_now) else None


def _refill(r: RefillResult) -> dict[str, Any]:
    bridge = r.bridge
    return {
        "at_min": _minutes(r.t_s),
        "expected_ml": round(r.expected_ml, 6),
        "found_ml": r.found_ml,
        "added_ml": r.added_ml,
        "difference_ml": round(r.difference_ml, 6),
        "tolerance_ml": r.tolerance_ml,
        "leak_suspected": r.leak_suspected,
        "reservoir_ml": r.reservoir_ml,
        "bridge": None
        if bridge is None
        else {
            "volume_ml": round(bridge.volume_ml, 6),
            "rate_ml_h": bridge.rate_ml_h,
            "duration_min": _minutes(bridge.duration_s),
            "ends_at_min": _minutes(bridge.ends_s),
        },
    }


def _event(r: Record) -> dict[str, Any]:
    return {"at_min": _minutes(r.t_s), "type": r.kind, **r.data}


def _report(
    pump: IntrathecalPump,
    initial: CompiledPrescription,
    duration_s: float,
    entry: DrugEntry | None,
) -> dict[str, Any]:
    rx = pump.rx
    unit = initial.concentration.unit
    records = pump.device.records

    def dose(amount: float) -> dict[str, Any]:
        return {"value": round(amount / unit.factor, 9), "unit": unit.symbol}

    delivered = dose(pump.delivered_amount(initial.drug.name))
    log = pump.ptm_log
    denied: dict[str, int] = {}
    for a in log:
        if not a.granted:
            denied[a.reason] = denied.get(a.reason, 0) + 1
    service = pump.service_forecast()
    raised = {
        code: [r.t_s for r in records if r.kind == "alarm" and r.data.get("code") == code]
        for code in (Alarm.ELECTIVE_REPLACEMENT.code, Alarm.END_OF_SERVICE.code)
    }
    eri_alarm = raised[Alarm.ELECTIVE_REPLACEMENT.code]
    eos_alarm = raised[Alarm.END_OF_SERVICE.code]
    channel = {**pump.channel.status(), "delivered_dose": delivered}
    summary = pump.status()
    return {
        "delivered_ml": pump.pumped_ml,
        "delivered_dose": delivered,
        # The end of a bridge bolus completes the engine's bridge plan (vtbi_complete) and
        # the new program starts at once: an event of the run, not an alarm to answer.
        "alarms": [
            {
                "at_min": _minutes(r.t_s),
                "code": r.data["code"],
                "priority": r.data["priority"],
                "channel": r.data.get("channel"),
            }
            for r in records
            if r.kind == Event.ALARM.value and r.data["code"] != Alarm.VTBI_COMPLETE.code
        ],
        "events": [_event(r) for r in records if r.kind != "command"],
        "final_state": pump.channel.state.value,
        "verdict": initial.verdict.label if initial.verdict else None,
        "override": initial.override.reason if initial.override else None,
        "summary": summary,
        "channels": [channel],
        "duration_min": duration_s / 60.0,
        "battery_percent": pump.device.battery.percent,
        "intrathecal": {
            "drug": rx.drug.name,
            "concentration": rx.concentration.text,
            "mode": summary["mode"],
            "daily_dose": rx.display(rx.daily_amount),
            "max_daily_dose": rx.display(rx.max_daily_amount),
            "library_entry": entry.label if entry is not None else None,
            "ptm": {
                "demands": len(log),
                "granted": sum(a.granted for a in log),
                "denied": sum(not a.granted for a in log),
                "denied_reasons": denied,
            },
            "refills": [_refill(r) for r in pump.refills],
            "fills": [
                {
                    "drug": f.drug,
                    "concentration": f.concentration,
                    "volume_ml": round(f.volume_ml, 9),
                    "amount": dose(f.amount),
                }
                for f in pump.deliveries()
            ],
            "reservoir_ml": pump.reservoir_ml,
            "dead_volume_ml": round(pump.dead_volume_ml, 6),
            "low_reservoir_date": _date(pump.low_reservoir_forecast()),
            "low_reservoir_days": _days(pump.low_reservoir_forecast()),
            "low_reservoir_date_max_ptm": _date(pump.low_reservoir_forecast(assume_max_ptm=True)),
            "eri": {
                "at_eri": service.at_eri,
                "remaining_days": round(service.remaining_days, 3),
                "eri_date": _date(service.eri),
                "end_of_service_date": _date(service.end_of_service),
                "alarm_at_min": _minutes(eri_alarm[0]) if eri_alarm else None,
                "end_of_service_at_min": _minutes(eos_alarm[0]) if eos_alarm else None,
            },
            "start": pump.clock.local(0.0).isoformat(),
            "end": pump.clock.local(pump.t_s).isoformat(),
        },
    }


__all__ = [
    "FlexStepSpec",
    "IntrathecalEventSpec",
    "IntrathecalProgramSpec",
    "PtmSpec",
    "event_times",
    "prescription_from_spec",
    "run_intrathecal",
]
