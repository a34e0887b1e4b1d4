"""Scenario files: a pump, a patient, a program and timed events, run on the engine.

A scenario is JSON (schema: ``openinfusion pump schema``; guide: docs/pump.md). The runner
builds the therapy through the DERS-checking builders, loads and starts it, then walks the
timed events in order, jumping the device from one to the next. Commands the pump refuses
during the run (a bolus during an alarm, a resume while occluded) are reported as
``rejected`` events, as a real pump would show them, and the run goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from openinfusion.errors import InputError, InputErrors
from openinfusion.library import CareArea, Library, load_library, sample_library
from openinfusion.library.ders import DersError
from openinfusion.patient import Patient
from openinfusion.pump import therapies as T
from openinfusion.pump.channel import ChannelSettings, CommandRejected
from openinfusion.pump.codes import Alarm
from openinfusion.pump.device import Device, Record
from openinfusion.pump.insulin_scenario import (
    InsulinEventSpec,
    InsulinProgramSpec,
    run_insulin,
    timed_events,
)
from openinfusion.pump.intrathecal_scenario import (
    IntrathecalEventSpec,
    IntrathecalProgramSpec,
    event_times,
    run_intrathecal,
)
from openinfusion.pump.mechanics import (
    Mechanism,
    ambulatory,
    implant,
    insulin_patch,
    lvp,
    pca_pump,
    syringe,
)
from openinfusion.pump.oncology import prepare_regimen, run_prepared
from openinfusion.pump.regimen_scenario import (
    RegimenProgramSpec,
    regimen_events,
    regimen_from_spec,
)
from openinfusion.units import Kind, parse_quantity


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PumpSpec(_Spec):
    kind: Literal["syringe", "lvp", "pca", "ambulatory", "insulin_patch", "implant"] = "lvp"
    syringe_ml: int = 50
    reservoir_ml: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    channels: int = Field(default=1, ge=1, le=4)
    battery_percent: float = Field(default=100.0, gt=0, le=100)
    on_mains: bool = False


class PatientSpec(_Spec):
    weight: str | None = None
    height: str | None = None
    age: str | float | None = None
    sex: str | None = None


class ContinuousSpec(_Spec):
    therapy: Literal["continuous"]
    drug: str | None = None
    therapy_name: str | None = None
    concentration: str | None = None
    dose: str | None = None
    rate: str | None = None
    vtbi: str | None = None
    duration: str | None = None
    loading: str | None = None
    loading_over: str = "20 min"
    delay: str | None = None
    kvo: bool = True
    standby: bool = False


class MultistepSpec(_Spec):
    therapy: Literal["multistep"]
    drug: str | None = None
    concentration: str | None = None
    steps: list[dict[str, str]]
    kvo: bool = True


class RampTaperSpec(_Spec):
    therapy: Literal["ramp_taper"]
    drug: str | None = None
    concentration: str | None = None
    volume: str
    duration: str
    ramp: str
    taper: str
    increments: int = 4


class IntermittentSpec(_Spec):
    therapy: Literal["intermittent"]
    drug: str
    therapy_name: str | None = None
    concentration: str | None = None
    dose: str
    every: str
    over: str
    doses: int | None = None


class PcaSpec(_Spec):
    therapy: Literal["pca"]
    drug: str
    concentration: str | None = None
    demand_dose: str
    lockout: str
    basal: str | None = None
    limit_1h: str | None = None
    limit_4h: str | None = None
    loading: str | None = None
    bolus_rate: str = "150 mL/h"


HospitalSpec = ContinuousSpec | MultistepSpec | RampTaperSpec | IntermittentSpec | PcaSpec
ProgramSpec = Annotated[
    HospitalSpec | InsulinProgramSpec | IntrathecalProgramSpec | RegimenProgramSpec,
    Field(discriminator="therapy"),
]
# Therapies that run on their own pump model rather than the hospital channel runner.
OWN_RUNNER = (InsulinProgramSpec, IntrathecalProgramSpec, RegimenProgramSpec)
# Allowed durations: a year for hospital and ambulatory pumps, an implant's service life
# (8 years) for an intrathecal pump.
MAX_DURATION_S = {"default": 366 * 86400.0, "intrathecal": 8 * 366 * 86400.0}

EventType = Literal[
    "demand",
    "occlusion",
    "clear_occlusion",
    "air",
    "clear_air",
    "disconnect",
    "reconnect",
    "upstream_occlusion",
    "clear_upstream_occlusion",
    "door_open",
    "door_close",
    "sensor_stuck",
    "sensor_ok",
    "battery_drain",
    "mains_on",
    "mains_off",
    "refill",
    "pause",
    "resume",
    "stop",
    "start",
    "titrate",
    "bolus",
    "secondary",
    "acknowledge",
    "silence",
    "confirm_recovery",
]


class EventSpec(_Spec):
    at: str
    type: EventType
    channel: int = Field(default=0, ge=0, le=3)
    dose: str | None = None
    rate: str | None = None
    volume: str | None = None
    volume_ul: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    found: str | None = None
    added: str | None = None
    code: str | None = None
    extra_ma: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    override_reason: str | None = None
    drug: str | None = None
    concentration: str | None = None
    over: str | None = None


class ChannelSpec(_Spec):
    program: Annotated[HospitalSpec, Field(discriminator="therapy")]
    channel: int = Field(default=0, ge=0, le=3)


class Scenario(_Spec):
    """A scenario file (see docs/pump.md for every field)."""

    care_area: str | None = None
    library: str | None = None
    patient: PatientSpec = PatientSpec()
    pump: PumpSpec = PumpSpec()
    duration: str
    program: ProgramSpec | None = None
    programs: list[ChannelSpec] = []
    # Events are typed by the program's therapy (hospital, insulin or intrathecal events);
    # see :func:`typed_events`. The JSON schema lists all three forms.
    events: list[EventSpec | InsulinEventSpec | IntrathecalEventSpec | dict[str, Any]] = []
    override_reason: str | None = None

    @property
    def therapy(self) -> str:
        return self.program.therapy if self.program is not None else "multichannel"


AnyEvent = EventSpec | InsulinEventSpec | IntrathecalEventSpec
_EVENT_MODEL: dict[str, type[_Spec] | type[BaseModel]] = {
    "insulin": InsulinEventSpec,
    "intrathecal": IntrathecalEventSpec,
}


def typed_events(scenario: Scenario) -> list[AnyEvent]:
    """The scenario's events validated against the event form of its therapy; every
    problem is reported with its path (``events.3.carbs``)."""
    model = _EVENT_MODEL.get(scenario.therapy, EventSpec)
    out: list[AnyEvent] = []
    problems: list[InputError] = []
    for i, raw in enumerate(scenario.events):
        if isinstance(raw, model):
            out.append(raw)
            continue
        data = raw.model_dump(exclude_unset=True) if isinstance(raw, BaseModel) else raw
        try:
            out.append(model.model_validate(data))  # type: ignore[arg-type]
        except ValidationError as exc:
            problems.extend(_problems(exc, f"events.{i}"))
        except InputError as exc:
            problems.append(InputError(f"events.{i}.{exc.field}", exc.value, exc.rule))
    if problems:
        raise InputErrors("scenario", problems)
    return out


def _problems(exc: ValidationError, prefix: str = "") -> list[InputError]:
    out = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err.get("loc", ()))
        path = f"{prefix}.{path}" if prefix and path else (prefix or path)
        value = err.get("input")
        out.append(
            InputError(
                path or "scenario",
                value if isinstance(value, str | int | float) else "",
                str(err.get("msg", "invalid")),
            )
        )
    return out


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; every problem is listed with its path."""
    from openinfusion.library.loading import parse_json_strict

    try:
        raw = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("scenario", str(path), f"cannot be read ({exc})") from None
    return scenario_from_data(parse_json_strict(raw, "scenario"))


def scenario_from_data(data: Any) -> Scenario:
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        # Events are validated by therapy below, not by trying each form in turn.
        raw_events = data["events"]
        data = {**data, "events": [e if isinstance(e, dict) else {"_": e} for e in raw_events]}
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise InputErrors("scenario", _problems(exc)) from None
    scenario = scenario.model_copy(update={"events": typed_events(scenario)})
    if scenario.program is None and not scenario.programs:
        raise InputError("program", "", "a scenario needs a program (or programs per channel)")
    if scenario.program is not None and scenario.programs:
        raise InputError("programs", "", "give one program, or programs per channel, not both")
    seen: set[int] = set()
    for i, spec in enumerate(scenario.programs):
        if spec.channel in seen:
            raise InputError(f"programs[{i}].channel", spec.channel, "is programmed twice")
        seen.add(spec.channel)
    for i, event in enumerate(scenario.events):
        if getattr(event, "channel", 0) >= scenario.pump.channels:
            raise InputError(
                f"events[{i}].channel",
                getattr(event, "channel", 0),
                f"the pump has {scenario.pump.channels} channel(s)",
            )
    return scenario


def mechanism_for(spec: PumpSpec) -> Mechanism:
    factories: dict[str, Callable[[], Mechanism]] = {
        "syringe": lambda: syringe(spec.syringe_ml),
        "lvp": lvp,
        "pca": pca_pump,
        "ambulatory": lambda: ambulatory(spec.reservoir_ml or 100.0),
        "insulin_patch": insulin_patch,
        "implant": lambda: implant(spec.reservoir_ml or 20.0),
    }
    return factories[spec.kind]()


def _settings(area: CareArea | None, mech: Mechanism) -> ChannelSettings:
    if area is None:
        return ChannelSettings()
    return ChannelSettings(
        occlusion_limit_mmhg=area.occlusion_pressure_mmhg,
        air_limit_ul=area.air_in_line_ul,
        air_accumulated_limit_ul=4 * area.air_in_line_ul,
        kvo_rate_ml_h=area.kvo_rate_ml_h,
        reservoir_low_ml=min(1.0, 0.1 * (mech.reservoir_ml or 10.0)),
    )


def build(ctx: T.Context, spec: Any, override: str | None) -> T.Programmed:
    """Build a DERS-checked therapy from its spec."""
    if isinstance(spec, ContinuousSpec):
        return T.continuous(
            ctx,
            drug=spec.drug,
            therapy=spec.therapy_name,
            concentration=spec.concentration,
            dose=spec.dose,
            rate=spec.rate,
            vtbi=spec.vtbi,
            duration=spec.duration,
            loading=spec.loading,
            loading_over=spec.loading_over,
            delay=spec.delay,
            kvo=spec.kvo,
            override_reason=override,
        )
    if isinstance(spec, MultistepSpec):
        return T.multistep(
            ctx,
            spec.steps,
            drug=spec.drug,
            concentration=spec.concentration,
            kvo=spec.kvo,
            override_reason=override,
        )
    if isinstance(spec, RampTaperSpec):
        return T.ramp_taper(
            ctx,
            volume=spec.volume,
            duration=spec.duration,
            ramp=spec.ramp,
            taper=spec.taper,
            increments=spec.increments,
            drug=spec.drug,
            concentration=spec.concentration,
            override_reason=override,
        )
    if isinstance(spec, IntermittentSpec):
        return T.intermittent(
            ctx,
            drug=spec.drug,
            dose=spec.dose,
            every=spec.every,
            over=spec.over,
            concentration=spec.concentration,
            doses=spec.doses,
            therapy=spec.therapy_name,
            override_reason=override,
        )
    if isinstance(spec, PcaSpec):
        return T.pca(
            ctx,
            drug=spec.drug,
            concentration=spec.concentration,
            demand_dose=spec.demand_dose,
            lockout=spec.lockout,
            basal=spec.basal,
            limit_1h=spec.limit_1h,
            limit_4h=spec.limit_4h,
            loading=spec.loading,
            bolus_rate=spec.bolus_rate,
            override_reason=override,
        )
    raise InputError("program.therapy", type(spec).__name__, "is not a known therapy")


class Run:
    """A scenario prepared for running (programs built and DERS-checked, nothing delivered)."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        override_reason: str | None = None,
        library: Library | None = None,
        journal: Any = None,
    ) -> None:
        self.scenario = scenario
        self.override = override_reason or scenario.override_reason
        self.library = library or (
            load_library(scenario.library) if scenario.library else sample_library()
        )
        self.area = self.library.care_area(scenario.care_area) if scenario.care_area else None
        p = scenario.patient
        self.patient = Patient.from_text(weight=p.weight, height=p.height, age=p.age, sex=p.sex)
        self.mechanism = mechanism_for(scenario.pump)
        self.ctx = T.Context(self.mechanism, self.patient, self.library, self.area)
        self.duration_s = parse_quantity(scenario.duration, Kind.DURATION, "duration") * 60.0
        limit = MAX_DURATION_S.get(scenario.therapy, MAX_DURATION_S["default"])
        if not 0 < self.duration_s <= limit:
            raise InputError(
                "duration", scenario.duration, f"must be between 0 and {limit / 86400:.0f} days"
            )
        self.typed_events = typed_events(scenario)
        self._own: Callable[[], dict[str, Any]] | None = None
        if isinstance(scenario.program, OWN_RUNNER):
            if journal is not None:
                raise InputError(
                    "journal", "", "is kept for hospital, PCA and ambulatory channel programs"
                )
            self._own = self._prepare_own(scenario.program)
            return
        specs = (
            [ChannelSpec(program=scenario.program)]
            if scenario.program is not None
            else list(scenario.programs)
        )
        if any(s.channel >= scenario.pump.channels for s in specs):
            raise InputError(
                "programs.channel",
                max(s.channel for s in specs),
                f"the pump has {scenario.pump.channels} channel(s)",
            )
        # Every program is built (and DERS-checked) before anything starts: all or nothing.
        self.programmed = {s.channel: build(self.ctx, s.program, self.override) for s in specs}
        self.events = sorted(
            (
                (parse_quantity(e.at, Kind.DURATION, f"events[{i}].at") * 60.0, i, e)
                for i, e in enumerate(self.typed_events)
                if isinstance(e, EventSpec)
            ),
            key=lambda x: (x[0], x[1]),
        )
        for t, i, _ in self.events:
            if not 0 <= t <= self.duration_s:
                raise InputError(
                    f"events[{i}].at", self.events_at(i), "must be within the scenario duration"
                )
        settings = [_settings(self.area, self.mechanism) for _ in range(scenario.pump.channels)]
        self.device = Device(
            [self.mechanism] * scenario.pump.channels, settings=settings, journal=journal
        )
        self.device.battery.charge_mah = (
            self.device.battery.capacity_mah * scenario.pump.battery_percent / 100.0
        )
        self.device.battery.on_mains = scenario.pump.on_mains

    def events_at(self, i: int) -> str:
        return str(getattr(self.typed_events[i], "at", ""))

    def _prepare_own(self, program: Any) -> Callable[[], dict[str, Any]]:
        """Check a therapy that runs on its own pump model now (nothing delivered yet) and
        return the call that runs it."""
        sc, events = self.scenario, self.typed_events
        needs: dict[str, tuple[str, ...]] = {
            "insulin": ("insulin_patch",),
            "intrathecal": ("implant",),
            "regimen": ("ambulatory", "lvp", "syringe"),
        }
        kinds = needs[program.therapy]
        if sc.pump.kind not in kinds:
            raise InputError(
                "pump.kind",
                sc.pump.kind,
                f"a {program.therapy} program runs on {' or '.join(kinds)}",
            )
        if isinstance(program, InsulinProgramSpec):
            timed = timed_events(
                [e for e in events if isinstance(e, InsulinEventSpec)], self.duration_s
            )
            return lambda: run_insulin(program, timed, self.duration_s)
        if isinstance(program, IntrathecalProgramSpec):
            timed_it = event_times([e for e in events if isinstance(e, IntrathecalEventSpec)])
            for i, (t, e) in enumerate(timed_it):
                if not 0 <= t <= self.duration_s:
                    raise InputError(
                        f"events[{i}].at", e.at, "must be within the scenario duration"
                    )
            return lambda: run_intrathecal(
                program,
                timed_it,
                self.duration_s,
                patient=self.patient,
                library=self.library,
                care_area=self.area,
                override_reason=self.override,
                reservoir_ml=sc.pump.reservoir_ml,
                battery_percent=sc.pump.battery_percent,
            )
        if self.area is None:
            raise InputError("care_area", "", "a regimen needs a care area (e.g. 'Oncology')")
        prepared = prepare_regimen(
            regimen_from_spec(program),
            patient=self.patient,
            library=self.library,
            care_area=self.area,
            pump=self.mechanism,
            override_reason=self.override,
        )
        parsed = regimen_events(events, self.duration_s)

        def run() -> dict[str, Any]:
            report = run_prepared(
                prepared, self.duration_s, parsed, battery_percent=sc.pump.battery_percent
            )
            # The same keys as every other run: channels of every pump used, in order.
            doses = {
                (st["pump"], st["channel"]): {
                    "value": st["delivered_amount"],
                    "unit": st["amount_unit"],
                }
                for st in report["regimen"]["stages"]
            }
            report["channels"] = [
                {**ch, "pump": p["pump"], "delivered_dose": doses.get((p["pump"], ch["channel"]))}
                for p in report["pumps"]
                for ch in p["channels"]
            ]
            report["battery_percent"] = report["pumps"][-1]["battery_percent"]
            return report

        return run

    def run(self, speed: float | None = None) -> dict[str, Any]:
        """Run to the end. ``speed``: simulated seconds per real second (None: as fast as
        possible), for demonstrations and crash tests on a journal."""
        if self._own is not None:
            return self._own()
        device = self.device
        start_wall = time.monotonic()

        def advance(t: float) -> None:
            if speed is None:
                device.advance_to(t)
                return
            step = 60.0
            while device.t_s < t:
                nxt = min(t, device.t_s + step)
                device.advance_to(nxt)
                lag = nxt / speed - (time.monotonic() - start_wall)
                if lag > 0:
                    time.sleep(lag)

        for index, programmed in self.programmed.items():
            device.program(index, programmed.plan, **programmed.journal_info())
            spec = (
                self.scenario.program
                if self.scenario.program is not None
                else next(s.program for s in self.scenario.programs if s.channel == index)
            )
            if isinstance(spec, ContinuousSpec) and spec.standby:
                device.standby(index)
            else:
                device.start(index)
        for t, _, event in self.events:
            advance(t)
            self._apply(event)
        advance(self.duration_s)
        return self.report()

    def _apply(self, e: EventSpec) -> None:
        d, ch = self.device, e.channel
        try:
            if e.type == "demand":
                d.demand(ch)
            elif e.type in ("pause", "resume", "stop", "start", "confirm_recovery"):
                getattr(d, e.type)(ch)
            elif e.type in ("mains_on", "mains_off"):
                d.set_mains(e.type == "mains_on")
            elif e.type == "titrate":
                rate, verdict = T.titration(
                    self.ctx,
                    self._programmed(ch),
                    dose=e.dose,
                    rate=e.rate,
                    override_reason=e.override_reason or self.override,
                )
                d.titrate(ch, rate, dose=e.dose, verdict=verdict.label if verdict else None)
            elif e.type == "bolus":
                self._bolus(e)
            elif e.type == "secondary":
                if e.drug is not None:  # a named drug is DERS-checked like an intermittent dose
                    volume, rate, _ = T.secondary_infusion(
                        self.ctx,
                        drug=e.drug,
                        dose=e.dose or "",
                        over=e.over or "",
                        concentration=e.concentration,
                        override_reason=e.override_reason or self.override,
                    )
                else:
                    volume = parse_quantity(e.volume or "", Kind.VOLUME, "secondary.volume")
                    rate = parse_quantity(e.rate or "", Kind.FLOW, "secondary.rate")
                d.secondary(ch, volume, rate, drug=e.drug, dose=e.dose)
            elif e.type in ("acknowledge", "silence"):
                alarm = _alarm(e.code)
                # a device alarm (battery) is on no channel: act on it where it is
                device_level = d.board.is_active(alarm, None) and not d.board.is_active(alarm, ch)
                getattr(d, e.type)(None if device_level else ch, alarm)
            elif e.type == "refill":
                found = parse_quantity(e.found or "0 mL", Kind.VOLUME, "refill.found")
                added = parse_quantity(e.added or "0 mL", Kind.VOLUME, "refill.added")
                d._command(
                    "refill",
                    ch,
                    {"found_ml": found, "added_ml": added},
                    lambda: d.channels[ch].refill(d.t_s, found, added),
                )
            elif e.type == "air":
                d.inject(ch, "air", volume_ul=e.volume_ul if e.volume_ul is not None else 300.0)
            elif e.type == "battery_drain":
                d.inject(ch, "battery_drain", extra_ma=e.extra_ma or 500.0)
            else:
                d.inject(ch, e.type)
        except CommandRejected:
            pass  # recorded by the device as a "rejected" event; the run goes on
        except (InputError, DersError) as exc:  # DERS refused a titration/bolus: record, go on
            reason = exc.message if isinstance(exc, InputError) else str(exc)
            d._emit(d.t_s, "rejected", {"command": e.type, "channel": ch, "reason": reason})

    def _programmed(self, ch: int) -> T.Programmed:
        if ch not in self.programmed:
            raise InputError("channel", ch, "has no program")
        return self.programmed[ch]

    def _bolus(self, e: EventSpec) -> None:
        d, ch = self.device, e.channel
        programmed = self._programmed(ch)
        if e.dose is not None:
            volume, _ = T.bolus_volume(
                self.ctx, programmed, e.dose, e.override_reason or self.override
            )
        else:
            volume = parse_quantity(e.volume or "", Kind.VOLUME, "bolus.volume")
        rate = (
            parse_quantity(e.rate, Kind.FLOW, "bolus.rate")
            if e.rate
            else min(self.mechanism.max_rate_ml_h, 600.0)
        )
        d.bolus(ch, volume, rate, dose=e.dose)

    def report(self) -> dict[str, Any]:
        d = self.device
        channels = []
        for index, ch in enumerate(d.channels):
            programmed = self.programmed.get(index)
            out = {**ch.status(), **_dose_report(ch, programmed)}
            if programmed is not None and programmed.plan.pca is not None:
                out["pca"] = {
                    "demands": len(ch.pca_history),
                    "granted": sum(r.granted for r in ch.pca_history),
                    "denied": sum(not r.granted for r in ch.pca_history),
                    "denied_reasons": _count(r.reason for r in ch.pca_history if not r.granted),
                }
            channels.append(out)
        first = channels[0] if len(channels) == 1 else None
        programmed = next(iter(self.programmed.values()))
        result: dict[str, Any] = {
            "delivered_ml": sum(c["pumped_ml"] for c in channels),
            "delivered_dose": channels[min(self.programmed)]["delivered_dose"],
            "alarms": [
                {
                    "at_min": round(r.t_s / 60.0, 6),
                    "code": r.data["code"],
                    "priority": r.data["priority"],
                    "channel": r.data.get("channel"),
                }
                for r in d.records
                if r.kind == "alarm"
            ],
            "events": [_event(r) for r in d.records if r.kind != "command"],
            "final_state": d.channels[min(self.programmed)].state.value,
            "verdict": programmed.verdict.label if programmed.verdict else None,
            "override": programmed.override.reason if programmed.override else None,
            "summary": programmed.summary,
            "channels": channels,
            "duration_min": self.duration_s / 60.0,
            "battery_percent": d.battery.percent,
        }
        if first is not None and "pca" in first:
            result["pca"] = {k: first["pca"][k] for k in ("demands", "granted", "denied")}
            result["pca"]["denied_reasons"] = first["pca"]["denied_reasons"]
        return result


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def _dose_report(ch: Any, programmed: T.Programmed | None) -> dict[str, Any]:
    if programmed is None:
        return {"delivered_dose": None}
    drug = programmed.plan.drug
    if drug is None or programmed.dose_unit is None:
        return {"delivered_dose": None}
    amount_unit = programmed.dose_unit.amount
    amount = (ch.program_ml + ch.kvo_ml) * drug.per_ml
    return {"delivered_dose": {"value": amount / amount_unit.factor, "unit": amount_unit.symbol}}


def _event(r: Record) -> dict[str, Any]:
    return {"at_min": round(r.t_s / 60.0, 6), "type": r.kind, **r.data}


def _alarm(code: str | None) -> Alarm:
    for alarm in Alarm:
        if alarm.code == code:
            return alarm
    raise InputError("code", code or "", "is not an alarm code (see openinfusion pump codes)")


def run_scenario(scenario: Scenario, **kwargs: Any) -> dict[str, Any]:
    speed = kwargs.pop("speed", None)
    return Run(scenario, **kwargs).run(speed=speed)


def schema() -> dict[str, Any]:
    """The scenario JSON schema."""
    return Scenario.model_json_schema()


__all__ = ["Run", "Scenario", "load_scenario", "run_scenario", "scenario_from_data", "schema"]
