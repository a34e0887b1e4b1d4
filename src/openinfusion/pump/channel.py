"""One infusion channel: state machine, event-driven delivery, pressure and sensors.

Time never ticks. Between two events every rate is constant, so the channel integrates
delivery exactly and computes when the next thing happens: a step ends, a bolus is given,
the VTBI is reached, the reservoir runs low, the downstream pressure reaches the occlusion
limit, a dose window fills, a timer expires. :meth:`next_event_s` gives that time,
:meth:`advance` integrates up to it and :meth:`fire` handles what is due.

Accounting (mL): ``ideal_ml`` is the commanded displacement; ``pumped_ml`` what the
mechanism moved (whole quanta, never more than commanded, never decreasing);
``program_ml`` the part that counts against the program's VTBI (primary drug, boluses
included, KVO and secondary infusions excluded); ``patient_ml`` what reached the patient.
Two identities hold at every instant (checked by tests/pump/test_properties.py):

- per program (the three reset when a program is loaded), displacement =
  ``program_ml`` + ``kvo_ml`` + ``secondary_ml``;
- ``ideal_ml`` = ``patient_ml`` + ``lost_ml`` (out of a disconnected line)
  + ``stored_ml`` (held in the line's compliance behind an occlusion)
  + ``withdrawn_ml`` (taken back by the post-occlusion back-off)
  + ``slack_taken_ml`` (start-up slack of new sets and syringes).

Drug amounts go to the device's :class:`~openinfusion.pump.window.DoseLedger`, shared by
every channel and program, against which cumulative and PCA window limits are checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any

from openinfusion.errors import InputError
from openinfusion.pump.alarms import AlarmBoard
from openinfusion.pump.codes import Alarm, Event
from openinfusion.pump.mechanics import Mechanism
from openinfusion.pump.plan import Overlay, OverlayKind, Plan, StepKind
from openinfusion.pump.window import DoseLedger

Emit = Callable[[float, str, dict[str, Any]], None]

EPS_T = 1e-7  # s: events this close together are simultaneous
DETECT_S = 30.0  # s: disconnection and sensor-plausibility detection delay
PAUSED_CALLBACK_S = 120.0  # s: "channel paused too long" callback (Alaris-style 2 min)
AIR_WINDOW_S = 900.0  # s: accumulated-air window (15 min)


class State(StrEnum):
    """Channel states (declared transitions in :data:`TRANSITIONS`)."""

    IDLE = "idle"
    PROGRAMMING = "programming"
    STANDBY = "standby"
    DELAYED = "delayed"
    RUNNING = "running"
    BOLUS = "bolus"
    PAUSED = "paused"
    KVO = "kvo"
    ALARM = "alarm"
    COMPLETE = "complete"


S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    S.IDLE: frozenset({S.PROGRAMMING}),
    S.PROGRAMMING: frozenset({S.IDLE, S.RUNNING, S.DELAYED, S.STANDBY}),
    S.STANDBY: frozenset({S.RUNNING, S.DELAYED, S.IDLE, S.PROGRAMMING}),
    S.DELAYED: frozenset({S.RUNNING, S.PAUSED, S.ALARM, S.IDLE}),
    S.RUNNING: frozenset({S.BOLUS, S.PAUSED, S.KVO, S.COMPLETE, S.ALARM, S.IDLE}),
    S.BOLUS: frozenset({S.RUNNING, S.PAUSED, S.KVO, S.COMPLETE, S.ALARM, S.IDLE}),
    S.PAUSED: frozenset({S.RUNNING, S.DELAYED, S.KVO, S.ALARM, S.IDLE, S.PROGRAMMING}),
    S.KVO: frozenset({S.PAUSED, S.ALARM, S.COMPLETE, S.IDLE, S.PROGRAMMING}),
    S.ALARM: frozenset({S.PAUSED, S.IDLE}),
    S.COMPLETE: frozenset({S.IDLE, S.PROGRAMMING}),
}
DELIVERING = frozenset({S.RUNNING, S.BOLUS, S.KVO, S.DELAYED})


class Line(StrEnum):
    PATENT = "patent"
    OCCLUDED = "occluded"
    DISCONNECTED = "disconnected"


class CommandRejected(InputError):
    """A command that is not valid now (wrong state, over a hard limit): nothing changed."""


def real(value: object, field_name: str) -> float:
    """``value`` as a finite float, or :class:`CommandRejected` (strings, booleans, None,
    NaN and infinities are refused, never coerced into a dose)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | Fraction):
        raise CommandRejected(field_name, repr(value), "must be a number")
    try:
        number = float(value)
    except (OverflowError, ValueError):
        raise CommandRejected(field_name, str(value), "must be a finite number") from None
    if not math.isfinite(number):
        raise CommandRejected(field_name, str(value), "must be a finite number")
    return number


def drug_key(plan: Plan | None) -> str | None:
    """The ledger key of a plan's drug (name and amount unit), None without a drug."""
    if plan is None or plan.drug is None:
        return None
    return f"{plan.drug.name.strip().lower()} [{plan.drug.amount_unit}]"


CUMULATIVE = "cumulative limit"


def plan_limits(plan: Plan) -> list[tuple[str, float, float]]:
    """The amount limits a program's drug is held to: (name, window s, maximum amount)."""
    if plan.drug is None:
        return []
    out = []
    if plan.pca is not None:
        out += [(f"{w / 3600.0:g}-hour limit", w, limit) for w, limit in plan.pca.limits]
    env = plan.envelope
    if env.window_s and math.isfinite(env.window_max_amount):
        out.append((CUMULATIVE, env.window_s, env.window_max_amount))
    return out


@dataclass(slots=True)
class PcaRecord:
    t_s: float
    granted: bool
    reason: str


@dataclass(slots=True)
class ChannelSettings:
    """Per-channel settings from the care area and the device."""

    occlusion_limit_mmhg: float = 525.0
    air_limit_ul: float = 250.0
    air_accumulated_limit_ul: float = 1000.0
    kvo_rate_ml_h: float = 1.0
    reservoir_low_ml: float = 1.0
    paused_callback_s: float = PAUSED_CALLBACK_S
    # Largest bolus a released occlusion may give (GIP 1.10; Open PCA R7.2: 0.5 mL): the
    # back-off withdraws at least what the line stores beyond it.
    post_occlusion_bolus_ml: float = 0.5


@dataclass(slots=True)
class _Timers:
    paused_at: float | None = None
    disconnect_detect: float | None = None
    sensor_detect: float | None = None
    air: list[tuple[float, float]] = field(default_factory=list)


class Channel:
    """An infusion channel driven by event-driven time (see module docstring)."""

    def __init__(
        self,
        index: int,
        mechanism: Mechanism,
        board: AlarmBoard,
        emit: Emit,
        settings: ChannelSettings | None = None,
        t_s: float = 0.0,
        ledger: DoseLedger | None = None,
    ) -> None:
        self.index = index
        self.mech = mechanism
        self.board = board
        self._emit = emit
        self.settings = settings or ChannelSettings()
        self.t_s = t_s
        self.state = State.IDLE
        self.plan: Plan | None = None
        self.step_i = 0
        self.step_started_s = t_s
        self.step_ml = 0.0
        self.overlays: list[Overlay] = []
        self._overlay_seq = 0
        self.ideal_ml = 0.0
        self.program_ml = 0.0
        self.kvo_ml = 0.0
        self.secondary_ml = 0.0
        self.patient_ml = 0.0
        self.lost_ml = 0.0
        self.slack_ml = 0.0
        self.slack_taken_ml = 0.0
        self.stored_ml = 0.0
        self.withdrawn_ml = 0.0
        self.reservoir_ml: float | None = mechanism.reservoir_ml
        self.line = Line.PATENT
        self.pressure_mmhg = mechanism.patient_pressure_mmhg
        self.pressure_stuck: float | None = None
        self.upstream_occluded = False
        self.door_open = False
        self.loading_given = False
        self.ledger = ledger if ledger is not None else DoseLedger()
        # (name, window s, maximum amount): the program's cumulative and PCA limits
        self.limits: list[tuple[str, float, float]] = []
        self.pca_history: list[PcaRecord] = []
        self.last_grant_s: float | None = None
        self.timers = _Timers()
        self._rate = 0.0  # mL/h, total
        self._base = 0.0  # mL/h of the plan (or replacing overlay)
        self._add: Overlay | None = None
        self._replace: Overlay | None = None

    # ---- reading ---------------------------------------------------------------------------

    @property
    def pumped_ml(self) -> float:
        """Volume the mechanism moved: whole quanta of the commanded displacement."""
        return self.mech.quantize(self.ideal_ml)

    @property
    def rate_ml_h(self) -> float:
        return self._rate

    @property
    def drug_amount(self) -> float:
        """Canonical amount of the program's drug delivered (program + KVO volume)."""
        drug = self.plan.drug if self.plan else None
        return (self.program_ml + self.kvo_ml) * drug.per_ml if drug else 0.0

    @property
    def step(self) -> Any:
        return self.plan.steps[self.step_i] if self.plan else None

    def time_remaining_s(self) -> dict[str, float | None]:
        """Time to the end of the VTBI and to an empty reservoir at the rates now (None if
        it does not apply, inf when nothing flows): recomputed at every rate change and
        bolus, since it is computed from the current rates (Open PCA R6.8(10))."""
        out: dict[str, float | None] = {"vtbi_s": None, "reservoir_s": None}
        plan = self.plan
        if plan is not None and plan.vtbi_ml is not None:
            primary = self._primary_rate() if self.state is not State.KVO else 0.0
            left = max(0.0, plan.vtbi_ml - self.program_ml)
            out["vtbi_s"] = left / primary * 3600.0 if primary > 0 else math.inf
        if self.reservoir_ml is not None:
            rate = self._rate
            out["reservoir_s"] = self.reservoir_ml / rate * 3600.0 if rate > 0 else math.inf
        return out

    def status(self) -> dict[str, Any]:
        """A JSON-friendly snapshot of the channel."""
        plan = self.plan
        drug = plan.drug if plan else None
        return {
            "channel": self.index,
            "state": self.state.value,
            "rate_ml_h": self._rate,
            "therapy": plan.therapy if plan else None,
            "drug": drug.name if drug else None,
            "step": self.step_i if plan else None,
            "pumped_ml": self.pumped_ml,
            "program_ml": self.program_ml,
            "kvo_ml": self.kvo_ml,
            "secondary_ml": self.secondary_ml,
            "patient_ml": self.patient_ml,
            "vtbi_ml": plan.vtbi_ml if plan else None,
            "reservoir_ml": self.reservoir_ml,
            "pressure_mmhg": self.pressure_mmhg,
            "line": self.line.value,
            "overlays": [
                {
                    "kind": o.kind.value,
                    "rate_ml_h": o.rate_ml_h,
                    "volume_ml": o.volume_ml,
                    "delivered_ml": o.delivered_ml,
                }
                for o in self.overlays
            ],
        }

    # ---- state machine ---------------------------------------------------------------------

    def _to(self, new: State, t: float, event: Event | None = None, **data: Any) -> None:
        old = self.state
        if new is old:
            return
        if new not in TRANSITIONS[old]:
            raise CommandRejected("state", old.value, f"cannot change to {new.value}")
        self.state = new
        if new is State.PAUSED:
            self.timers.paused_at = t
        elif old is State.PAUSED:
            self.timers.paused_at = None
            if self.board.is_active(Alarm.PAUSED_TOO_LONG, self.index):
                self.board.condition_cleared(Alarm.PAUSED_TOO_LONG, self.index)
                self.emit(t, Event.ALARM_CLEARED.value, {"code": Alarm.PAUSED_TOO_LONG.code})
        self.emit(
            t,
            (event or Event.STOPPED).value if event else "state",
            {"from": old.value, "to": new.value, **data},
        )
        self._recompute()

    def emit(self, t: float, kind: str, data: dict[str, Any]) -> None:
        self._emit(t, kind, {"channel": self.index, **data})

    def _require(self, allowed: frozenset[State] | set[State], action: str) -> None:
        if self.state not in allowed:
            raise CommandRejected(
                action, self.state.value, f"not possible while the channel is {self.state.value}"
            )

    def alarm(self, alarm: Alarm, t: float, **data: Any) -> None:
        """Raise an alarm; a flow-stopping one puts the channel in ALARM at once."""
        if self.board.raise_(alarm, t, self.index):
            self.emit(
                t, Event.ALARM.value, {"code": alarm.code, "priority": alarm.priority.value, **data}
            )
        if alarm.stops_flow and self.state in (*DELIVERING, State.PAUSED):
            self._cancel_adding(t, f"stopped by {alarm.code}")
            self._to(State.ALARM, t, Event.STOPPED, reason=alarm.code)

    def clear_condition(self, alarm: Alarm, t: float) -> None:
        if self.board.is_active(alarm, self.index):
            self.board.condition_cleared(alarm, self.index)
            self.emit(t, Event.ALARM_CLEARED.value, {"code": alarm.code})
        if self.state is State.ALARM and not self.board.any_stopping(self.index):
            self._to(State.PAUSED, t, Event.PAUSED, reason="alarm condition cleared")

    # ---- commands -------------------------------------------------------------------------

    def load(self, plan: Plan, t: float, ders: dict[str, Any] | None = None) -> None:
        """Enter a program (it does not start). A new syringe/set brings back start-up slack.

        The engine checks what it can execute whatever the builder checked (C-18): no step
        or bolus faster than the mechanism. The drug's delivery history on the device and
        the PCA lockout carry over from earlier programs (B-16)."""
        self._require({S.IDLE, S.COMPLETE, S.STANDBY, S.PAUSED, S.KVO}, "program")
        self._check_plan(plan)
        if self.state in (S.PAUSED, S.KVO):
            self._end_program(t, "reprogrammed")
        self._to(
            State.PROGRAMMING,
            t,
            Event.PROGRAMMED,
            therapy=plan.therapy,
            drug=plan.drug.name if plan.drug else None,
            vtbi_ml=plan.vtbi_ml,
            **({"ders": ders} if ders is not None else {}),
        )
        self.plan = plan
        self.step_i, self.step_ml, self.program_ml, self.kvo_ml = 0, 0.0, 0.0, 0.0
        self.secondary_ml = 0.0
        self.overlays.clear()
        self.loading_given = False
        self.slack_ml = self.mech.startup_slack_ml
        self.limits = plan_limits(plan)
        key = drug_key(plan)
        if key is not None:
            for _, window_s, _ in self.limits:
                self.ledger.meter(key, window_s)

    def _check_plan(self, plan: Plan) -> None:
        top = self.mech.max_rate_ml_h * (1 + 1e-9)
        for i, step in enumerate(plan.steps):
            if step.rate_ml_h > top:
                raise CommandRejected(
                    f"steps[{i}].rate",
                    step.rate_ml_h,
                    f"above the pump maximum {self.mech.max_rate_ml_h:g} mL/h",
                )
            if 0 < step.rate_ml_h < self.mech.min_rate_ml_h * (1 - 1e-9):
                raise CommandRejected(
                    f"steps[{i}].rate",
                    step.rate_ml_h,
                    f"below the pump minimum {self.mech.min_rate_ml_h:g} mL/h",
                )
        if plan.pca is not None:
            demand = real(plan.pca.demand_ml, "pca.demand_ml")
            if demand <= 0:
                raise CommandRejected("pca.demand_ml", demand, "must be > 0 mL")
            if not real(plan.pca.lockout_s, "pca.lockout_s") >= 0:
                raise CommandRejected("pca.lockout_s", plan.pca.lockout_s, "must be >= 0 s")
            self._check_rate(plan.pca.bolus_rate_ml_h, "pca.bolus_rate", library=False)

    def start(self, t: float) -> None:
        self._require({S.PROGRAMMING, S.STANDBY}, "start")
        assert self.plan is not None
        if self.board.any_stopping(self.index):
            raise CommandRejected("start", self.state.value, "an alarm is active")
        self.step_started_s = t
        first = self.plan.steps[0]
        self._to(
            State.DELAYED if first.kind is StepKind.DELAY else State.RUNNING,
            t,
            Event.STARTED,
            therapy=self.plan.therapy,
        )
        self._step_event(t)

    def standby(self, t: float) -> None:
        self._require({S.PROGRAMMING}, "standby")
        self._to(State.STANDBY, t, Event.STANDBY)

    def pause(self, t: float, reason: str = "clinician") -> None:
        self._require(DELIVERING, "pause")
        self._cancel_adding(t, "paused")
        self._to(State.PAUSED, t, Event.PAUSED, reason=reason)

    def resume(self, t: float) -> None:
        self._require({S.PAUSED}, "resume")
        if self.board.any_stopping(self.index):
            raise CommandRejected("resume", self.state.value, "an alarm condition is still present")
        self._check_window_allows(t)
        assert self.plan is not None
        step = self.plan.steps[self.step_i]
        resumed_kvo = self.program_ml >= self._vtbi() - 1e-9
        target = (
            State.KVO
            if resumed_kvo
            else (State.DELAYED if step.kind is StepKind.DELAY else State.RUNNING)
        )
        self._to(target, t, Event.RESUMED)

    def stop(self, t: float) -> None:
        """Stop and end the program (IDLE)."""
        self._require(set(State) - {S.IDLE}, "stop")
        self._cancel_adding(t, "stopped")
        self._end_program(t, "stopped by clinician")

    def _end_program(self, t: float, reason: str) -> None:
        self.overlays.clear()
        self._to(State.IDLE, t, Event.STOPPED, reason=reason) if State.IDLE in TRANSITIONS[
            self.state
        ] else None
        if self.state is not State.IDLE:  # e.g. from ALARM via PAUSED
            self.state = State.IDLE
            self.emit(t, Event.STOPPED.value, {"reason": reason, "to": "idle"})
        self.plan = None
        self._recompute()

    def titrate(self, t: float, rate_ml_h: float) -> None:
        """Change the rate of the running continuous step (the caller re-checked DERS)."""
        self._require({S.RUNNING, S.BOLUS}, "titrate")
        assert self.plan is not None
        rate_ml_h = self._check_rate(rate_ml_h, "rate")
        step = self.plan.steps[self.step_i]
        if step.kind not in (StepKind.CONTINUOUS, StepKind.BASAL, StepKind.PLATEAU):
            raise CommandRejected(
                "titrate", step.kind.value, "only a continuous step can be titrated"
            )
        old = step.rate_ml_h
        self.plan.steps[self.step_i] = type(step)(
            step.kind, rate_ml_h, step.volume_ml, step.duration_s, step.label
        )
        self.emit(t, Event.TITRATED.value, {"from_ml_h": old, "to_ml_h": rate_ml_h})
        self._recompute()

    def bolus(
        self,
        t: float,
        volume_ml: float,
        rate_ml_h: float,
        kind: OverlayKind = OverlayKind.BOLUS,
        label: str = "",
    ) -> Overlay:
        """Deliver ``volume_ml`` on top of the running infusion (no bolus during an alarm,
        KVO, a delay or another bolus: GIP 1.4)."""
        if self.state is not State.RUNNING or self.board.any_stopping(self.index):
            raise CommandRejected(
                "bolus", self.state.value, "a bolus needs a running infusion with no alarm"
            )
        if self._add is not None and self._add.kind is not OverlayKind.EXTENDED:
            raise CommandRejected("bolus", "bolus in progress", "one bolus at a time")
        if kind is OverlayKind.EXTENDED and any(
            o.kind is OverlayKind.EXTENDED for o in self.overlays
        ):
            raise CommandRejected("bolus", "extended bolus in progress", "one at a time")
        rate_ml_h = self._check_rate(rate_ml_h, "bolus_rate", library=False)  # fast by design
        volume_ml = real(volume_ml, "bolus_volume")
        if not volume_ml >= self.mech.quantum_ml * (1 - 1e-9):
            raise CommandRejected(
                "bolus_volume",
                volume_ml,
                f"must be at least one drive step ({self.mech.quantum_ml:g} mL)",
            )
        assert self.plan is not None
        if kind is OverlayKind.BOLUS and volume_ml > self.plan.envelope.max_bolus_ml * (1 + 1e-9):
            raise CommandRejected(
                "bolus_volume",
                volume_ml,
                f"exceeds the hard limit {self.plan.envelope.max_bolus_ml:g} mL",
            )
        overlay = self._add_overlay(Overlay(kind, rate_ml_h, volume_ml, label=label))
        if kind is not OverlayKind.EXTENDED:
            self._to(
                State.BOLUS,
                t,
                Event.BOLUS_STARTED,
                kind=kind.value,
                volume_ml=volume_ml,
                rate_ml_h=rate_ml_h,
                id=overlay.id,
            )
        else:
            self.emit(
                t,
                Event.BOLUS_STARTED.value,
                {
                    "kind": kind.value,
                    "volume_ml": volume_ml,
                    "rate_ml_h": rate_ml_h,
                    "id": overlay.id,
                },
            )
        self._recompute()
        return overlay

    def replace_rate(
        self,
        t: float,
        kind: OverlayKind,
        rate_ml_h: float,
        volume_ml: float | None = None,
        until_s: float | None = None,
        label: str = "",
    ) -> Overlay:
        """A secondary (piggyback) infusion or a temporary basal over the plan."""
        self._require({S.RUNNING}, kind.value)
        rate_ml_h = self._check_rate(rate_ml_h, "rate")
        if volume_ml is not None:
            volume_ml = real(volume_ml, "volume")
            if not volume_ml >= self.mech.quantum_ml * (1 - 1e-9):
                raise CommandRejected(
                    "volume",
                    volume_ml,
                    f"must be at least one drive step ({self.mech.quantum_ml:g} mL)",
                )
        if until_s is not None:
            until_s = real(until_s, "until")
            if not until_s > t:
                raise CommandRejected("duration", until_s - t, "must be > 0 s")
        if volume_ml is None and until_s is None:
            raise CommandRejected(kind.value, "", "needs a volume or a duration")
        if self._replace is not None:
            raise CommandRejected(kind.value, self._replace.kind.value, "already running")
        overlay = self._add_overlay(Overlay(kind, rate_ml_h, volume_ml, until_s, label))
        event = (
            Event.SECONDARY_STARTED if kind is OverlayKind.SECONDARY else Event.TEMP_BASAL_STARTED
        )
        self.emit(
            t,
            event.value,
            {"rate_ml_h": rate_ml_h, "volume_ml": volume_ml, "until_s": until_s, "id": overlay.id},
        )
        self._recompute()
        return overlay

    def cancel_overlay(self, t: float, kind: OverlayKind) -> None:
        for overlay in list(self.overlays):
            if overlay.kind is kind:
                self._finish_overlay(t, overlay, cancelled=True)
        self._recompute()

    def demand(self, t: float) -> bool:
        """Patient pressed the PCA button: grant a demand dose or deny it with a reason."""
        plan = self.plan
        reason = self._pca_denial(t)
        if reason is None:
            assert plan is not None and plan.pca is not None
            pca = plan.pca
            self.last_grant_s = t
            self.pca_history.append(PcaRecord(t, True, "granted"))
            self.emit(t, Event.PCA_GRANTED.value, {"volume_ml": pca.demand_ml})
            self.bolus(t, pca.demand_ml, pca.bolus_rate_ml_h, OverlayKind.PCA, "demand")
            return True
        self.pca_history.append(PcaRecord(t, False, reason))
        self.emit(t, Event.PCA_DENIED.value, {"reason": reason})
        return False

    def _pca_denial(self, t: float) -> str | None:
        plan = self.plan
        if plan is None or plan.pca is None:
            return "not a PCA program"
        pca = plan.pca
        if self.state is State.BOLUS or self._add is not None:
            return "dose in progress"
        if self.state is not State.RUNNING or self.board.any_stopping(self.index):
            return f"channel {self.state.value}"
        if self.last_grant_s is not None and t - self.last_grant_s < pca.lockout_s - EPS_T:
            return "lockout"
        assert plan.drug is not None
        amount = pca.demand_ml * plan.drug.per_ml
        key = drug_key(plan)
        assert key is not None
        over = [
            name
            for name, window_s, limit in self.limits
            if self.ledger.amount(key, t, window_s) + amount > limit * (1 + 1e-9)
        ]
        for name in over:
            if name != CUMULATIVE:
                return name
        if pca.max_demands is not None:
            recent = sum(
                1 for r in self.pca_history if r.granted and t - r.t_s < pca.max_demands_window_s
            )
            if recent >= pca.max_demands:
                return "demand count limit"
        return CUMULATIVE if over else None

    def acknowledge(self, t: float, alarm: Alarm) -> None:
        if self.board.acknowledge(alarm, self.index):
            self.emit(t, Event.ALARM_ACKNOWLEDGED.value, {"code": alarm.code})

    def silence(self, t: float, alarm: Alarm) -> None:
        if self.board.silence(alarm, t, self.index):
            self.emit(t, Event.ALARM_SILENCED.value, {"code": alarm.code})

    # ---- faults and sensors ----------------------------------------------------------------

    def occlude(self, t: float) -> None:
        self.emit(t, Event.FAULT_INJECTED.value, {"fault": "occlusion"})
        self._spill_line()
        self.line = Line.OCCLUDED
        self._recompute()

    def _spill_line(self) -> None:
        """Volume held behind an occlusion leaves by a disconnected line (lost)."""
        if self.line is Line.DISCONNECTED and self.stored_ml > 0:
            self.lost_ml += self.stored_ml
            self.stored_ml = 0.0

    def clear_occlusion(self, t: float) -> None:
        """The blockage is removed: the volume stored in the pressurised line (what was
        pumped against the occlusion, less the back-off) reaches the patient at once."""
        if self.line is not Line.OCCLUDED:
            return
        bolus = self.stored_ml
        self.stored_ml = 0.0
        self.line = Line.PATENT
        self.patient_ml += bolus
        self.pressure_mmhg = self._patent_pressure()
        self.emit(t, Event.OCCLUSION_RELEASED.value, {"bolus_ml": bolus})
        self.clear_condition(Alarm.OCCLUSION_DOWNSTREAM, t)

    def disconnect(self, t: float) -> None:
        self.emit(t, Event.FAULT_INJECTED.value, {"fault": "disconnection"})
        self.line = Line.DISCONNECTED
        self._spill_line()
        self.pressure_mmhg = 0.0
        self._recompute()

    def reconnect(self, t: float) -> None:
        if self.line is Line.DISCONNECTED:
            self.line = Line.PATENT
            self.timers.disconnect_detect = None
            self.emit(t, Event.FAULT_CLEARED.value, {"fault": "disconnection"})
            self.clear_condition(Alarm.DISCONNECTION, t)
            self._recompute()

    def air(self, t: float, volume_ul: float) -> None:
        """A bubble passes the air sensor: single-bubble and 15-min accumulated limits."""
        volume_ul = real(volume_ul, "volume_ul")
        if volume_ul < 0:
            raise CommandRejected("volume_ul", volume_ul, "must be >= 0 uL")
        s = self.settings
        self.emit(t, Event.FAULT_INJECTED.value, {"fault": "air", "volume_ul": volume_ul})
        if self.state not in DELIVERING:
            return
        self.timers.air = [(ts, v) for ts, v in self.timers.air if t - ts < AIR_WINDOW_S]
        self.timers.air.append((t, volume_ul))
        if volume_ul >= s.air_limit_ul:
            self.alarm(Alarm.AIR_IN_LINE, t, volume_ul=volume_ul)
        elif sum(v for _, v in self.timers.air) >= s.air_accumulated_limit_ul:
            self.alarm(Alarm.AIR_ACCUMULATED, t)

    def clear_air(self, t: float) -> None:
        """Clinician cleared the line of air."""
        self.timers.air.clear()
        self.clear_condition(Alarm.AIR_IN_LINE, t)
        self.clear_condition(Alarm.AIR_ACCUMULATED, t)

    def upstream_occlusion(self, t: float, present: bool = True) -> None:
        self.upstream_occluded = present
        if present:
            self.emit(t, Event.FAULT_INJECTED.value, {"fault": "upstream_occlusion"})
            self.alarm(Alarm.OCCLUSION_UPSTREAM, t)
        else:
            self.clear_condition(Alarm.OCCLUSION_UPSTREAM, t)

    def set_door(self, t: float, open_: bool) -> None:
        self.door_open = open_
        if open_:
            self.emit(t, Event.FAULT_INJECTED.value, {"fault": "door_open"})
            self.alarm(Alarm.DOOR_OPEN, t)
        else:
            self.clear_condition(Alarm.DOOR_OPEN, t)

    def sensor_stuck(self, t: float, stuck: bool = True) -> None:
        """Freeze the downstream pressure reading; the plausibility check finds it."""
        if stuck:
            self.emit(t, Event.FAULT_INJECTED.value, {"fault": "sensor_stuck"})
            self.pressure_stuck = self.pressure_mmhg
            self.timers.sensor_detect = t + DETECT_S
        else:
            self.pressure_stuck = None
            self.timers.sensor_detect = None
            self.clear_condition(Alarm.SENSOR_FAULT, t)

    def refill(self, t: float, found_ml: float, added_ml: float) -> float:
        """Refill the reservoir: compare the volume found with the one expected (a leak or
        catheter sign when they differ by more than 2 mL or 20 %). Returns the difference."""
        self._require({S.IDLE, S.PAUSED, S.PROGRAMMING, S.STANDBY, S.COMPLETE, S.ALARM}, "refill")
        found_ml, added_ml = real(found_ml, "found"), real(added_ml, "added")
        if found_ml < 0 or added_ml < 0:
            raise CommandRejected("refill", min(found_ml, added_ml), "volumes must be >= 0 mL")
        expected = self.reservoir_ml or 0.0
        difference = found_ml - expected
        self.reservoir_ml = found_ml + added_ml
        self.emit(
            t,
            Event.REFILLED.value,
            {
                "expected_ml": expected,
                "found_ml": found_ml,
                "added_ml": added_ml,
                "difference_ml": difference,
            },
        )
        if abs(difference) > max(2.0, 0.2 * max(expected, 1e-9)):
            self.alarm(Alarm.LEAK_SUSPECTED, t, difference_ml=difference)
        self.clear_condition(Alarm.RESERVOIR_EMPTY, t)
        self.clear_condition(Alarm.RESERVOIR_LOW, t)
        return difference

    # ---- rates ---------------------------------------------------------------------------------

    def _check_rate(self, rate_ml_h: float, field: str, library: bool = True) -> float:
        rate_ml_h = real(rate_ml_h, field)
        if not rate_ml_h > 0:
            raise CommandRejected(field, rate_ml_h, "must be a finite rate > 0 mL/h")
        if rate_ml_h < self.mech.min_rate_ml_h * (1 - 1e-9):
            raise CommandRejected(
                field, rate_ml_h, f"below the pump minimum {self.mech.min_rate_ml_h:g} mL/h"
            )
        if rate_ml_h > self.mech.max_rate_ml_h * (1 + 1e-9):
            raise CommandRejected(
                field, rate_ml_h, f"above the pump maximum {self.mech.max_rate_ml_h:g} mL/h"
            )
        if (
            library
            and self.plan is not None
            and rate_ml_h > self.plan.envelope.max_rate_ml_h * (1 + 1e-9)
        ):
            raise CommandRejected(field, rate_ml_h, "above the hard limit of the drug library")
        return rate_ml_h

    def _add_overlay(self, overlay: Overlay) -> Overlay:
        self._overlay_seq += 1
        overlay.id = self._overlay_seq
        self.overlays.append(overlay)
        return overlay

    def _recompute(self) -> None:
        """Effective rates for the current state (call after every change)."""
        self._add = self._replace = None
        for o in self.overlays:
            if o.adds:
                if self._add is None or (
                    self._add.kind is OverlayKind.EXTENDED and o.kind is not OverlayKind.EXTENDED
                ):
                    self._add = o  # a normal bolus pre-empts a square-wave one (GIP 1.4)
            elif self._replace is None:
                self._replace = o
        state = self.state
        if state in (State.RUNNING, State.BOLUS) and self.plan is not None:
            step = self.plan.steps[self.step_i]
            base = self._replace.rate_ml_h if self._replace else step.rate_ml_h
            add = self._add.rate_ml_h if self._add else 0.0
            if base + add > self.mech.max_rate_ml_h:  # basal + bolus <= pump maximum
                add = max(0.0, self.mech.max_rate_ml_h - base)
            self._base, self._rate = base, base + add
        elif state is State.KVO and self.plan is not None:
            last = self.plan.steps[self.step_i].rate_ml_h
            kvo = min(self.plan.kvo_rate_ml_h, last) if last > 0 else self.plan.kvo_rate_ml_h
            self._base = self._rate = kvo
        else:
            self._base = self._rate = 0.0
        if self.line is not Line.OCCLUDED:
            self.pressure_mmhg = self._patent_pressure()
        if (
            self.line is Line.DISCONNECTED
            and self._rate > 0
            and self.timers.disconnect_detect is None
        ):  # flow into an open line: the pressure check finds it within DETECT_S
            self.timers.disconnect_detect = self.t_s + DETECT_S
        key = drug_key(self.plan)
        per_ml = self.plan.drug.per_ml if self.plan is not None and self.plan.drug else 0.0
        self.ledger.set_rate(self.index, key, self._primary_rate() / 3600.0 * per_ml)

    def _primary_rate(self) -> float:
        """mL/h of the program's own drug now (the secondary drug is not the program's)."""
        replace = self._replace
        if (
            replace is not None
            and replace.kind is OverlayKind.SECONDARY
            and self.state is not S.KVO
        ):
            return self._rate - self._base
        return self._rate

    def _patent_pressure(self) -> float:
        if self.line is Line.DISCONNECTED:
            return 0.0
        return (
            self.mech.patient_pressure_mmhg
            + self._rate / 3600.0 * self.mech.resistance_mmhg_s_per_ml
        )

    def _vtbi(self) -> float:
        assert self.plan is not None
        return self.plan.vtbi_ml if self.plan.vtbi_ml is not None else math.inf

    # ---- time ----------------------------------------------------------------------------------

    def next_event_s(self) -> float:
        """The time of the channel's next internal event (inf when nothing is pending)."""
        t = self.t_s
        soonest = math.inf
        timers = self.timers
        if timers.paused_at is not None and self.state is State.PAUSED:
            soonest = min(soonest, timers.paused_at + self.settings.paused_callback_s)
        if timers.sensor_detect is not None:
            soonest = min(soonest, timers.sensor_detect)
        if timers.disconnect_detect is not None:
            soonest = min(soonest, timers.disconnect_detect)
        plan = self.plan
        if plan is None or self.state not in DELIVERING:
            return soonest
        rate = self._rate
        step = plan.steps[self.step_i]
        if self.state is not State.KVO:
            if step.duration_s is not None:
                soonest = min(soonest, self.step_started_s + step.duration_s)
            base_s = (self._base if self._replace is None else 0.0) / 3600.0
            if step.volume_ml is not None and base_s > 0:
                soonest = min(soonest, t + (step.volume_ml - self.step_ml) / base_s)
            for o in (self._add, self._replace):
                if o is None:
                    continue
                if o.until_s is not None:
                    soonest = min(soonest, o.until_s)
                r = (self._rate - self._base) if o is self._add else self._base
                if o.volume_ml is not None and r > 0:
                    soonest = min(soonest, t + o.remaining_ml / (r / 3600.0))
            primary_s = self._primary_rate() / 3600.0
            if plan.vtbi_ml is not None and primary_s > 0:
                soonest = min(soonest, t + (plan.vtbi_ml - self.program_ml) / primary_s)
        rate_s = rate / 3600.0
        if rate_s > 0:
            if self.reservoir_ml is not None:
                low = self.settings.reservoir_low_ml
                if self.reservoir_ml > low and not self.board.is_active(
                    Alarm.RESERVOIR_LOW, self.index
                ):
                    soonest = min(soonest, t + (self.reservoir_ml - low) / rate_s)
                soonest = min(soonest, t + self.reservoir_ml / rate_s)
            if self.line is Line.OCCLUDED:  # start-up slack is taken up before pressure rises
                c = self.mech.compliance_ml_per_mmhg
                to_limit_ml = max(0.0, self.settings.occlusion_limit_mmhg - self.pressure_mmhg) * c
                soonest = min(soonest, t + (self.slack_ml + to_limit_ml) / rate_s)
        key = drug_key(plan)
        if key is not None and self._primary_rate() > 0:
            for _, window_s, limit in self.limits:
                soonest = min(soonest, t + self.ledger.time_to_exceed(key, t, limit, window_s))
        return max(soonest, t)

    def advance(self, t1: float) -> None:
        """Integrate delivery from ``self.t_s`` to ``t1`` at the current (constant) rates."""
        t0 = self.t_s
        dt = t1 - t0
        if dt <= 0:
            return
        self.t_s = t1
        rate = self._rate
        if rate <= 0:
            return
        plan = self.plan
        assert plan is not None
        vol = rate * dt / 3600.0
        self.ideal_ml += vol
        if self.reservoir_ml is not None:
            self.reservoir_ml = max(0.0, self.reservoir_ml - vol)
        base_vol = self._base * dt / 3600.0
        add_vol = vol - base_vol
        if self.state is State.KVO:
            self.kvo_ml += vol
            primary = vol
        else:
            if self._add is not None:
                self._add.delivered_ml += add_vol
            if self._replace is not None:
                self._replace.delivered_ml += base_vol
                if self._replace.kind is OverlayKind.SECONDARY:
                    self.secondary_ml += base_vol
                    primary = add_vol
                else:
                    primary = vol
            else:
                self.step_ml += base_vol
                primary = vol
            self.program_ml += primary
        key = drug_key(plan)
        if key is not None and plan.drug is not None:
            self.ledger.record(key, t0, t1, self._primary_rate() / 3600.0 * plan.drug.per_ml)
        self._line_flow(vol)

    def _line_flow(self, vol: float) -> None:
        """Where the pumped volume went: slack, the line's compliance, or the patient."""
        if self.slack_ml > 0:
            taken = min(self.slack_ml, vol)
            self.slack_ml -= taken
            self.slack_taken_ml += taken
            vol -= taken
        if self.line is Line.OCCLUDED:
            self.stored_ml += vol
            self.pressure_mmhg += vol / self.mech.compliance_ml_per_mmhg
        elif self.line is Line.DISCONNECTED:
            self.lost_ml += vol
        else:
            self.patient_ml += vol

    def fire(self, t: float) -> bool:
        """Handle every internal event due at ``t``; True if anything happened."""
        fired = False
        timers = self.timers
        if timers.sensor_detect is not None and timers.sensor_detect <= t + EPS_T:
            timers.sensor_detect = None
            self.alarm(
                Alarm.SENSOR_FAULT,
                t,
                sensor="downstream pressure",
                reading_mmhg=self.pressure_stuck,
            )
            fired = True
        if timers.disconnect_detect is not None and timers.disconnect_detect <= t + EPS_T:
            timers.disconnect_detect = None
            self.alarm(Alarm.DISCONNECTION, t, pressure_mmhg=self.pressure_mmhg)
            fired = True
        if (
            self.state is State.PAUSED
            and timers.paused_at is not None
            and timers.paused_at + self.settings.paused_callback_s <= t + EPS_T
        ):
            timers.paused_at = math.inf  # once per pause
            self.alarm(Alarm.PAUSED_TOO_LONG, t)
            fired = True
        plan = self.plan
        if plan is None or self.state not in DELIVERING:
            return fired
        if (
            self.line is Line.OCCLUDED
            and self.pressure_mmhg >= self.settings.occlusion_limit_mmhg - 1e-6
        ):
            self._occlusion_alarm(t)
            return True
        if self.reservoir_ml is not None and self._rate > 0:
            if self.reservoir_ml <= 1e-9:
                self.reservoir_ml = 0.0
                self.alarm(Alarm.RESERVOIR_EMPTY, t)
                return True
            if (
                self.reservoir_ml <= self.settings.reservoir_low_ml + 1e-9
                and not self.board.is_active(Alarm.RESERVOIR_LOW, self.index)
            ):
                self.alarm(Alarm.RESERVOIR_LOW, t, reservoir_ml=self.reservoir_ml)
                fired = True
        if self.state is not State.KVO:
            for o in (self._add, self._replace):
                if o is None:
                    continue
                if (o.volume_ml is not None and o.remaining_ml <= 1e-9 * max(1.0, o.volume_ml)) or (
                    o.until_s is not None and o.until_s <= t + EPS_T
                ):
                    self._finish_overlay(t, o)
                    fired = True
            if plan.vtbi_ml is not None and self.program_ml >= plan.vtbi_ml - 1e-9 * max(
                1.0, plan.vtbi_ml
            ):
                self.program_ml = min(self.program_ml, plan.vtbi_ml)
                self._complete(t, "VTBI reached")
                fired = True
            else:
                step = plan.steps[self.step_i]
                done = (
                    step.duration_s is not None
                    and self.step_started_s + step.duration_s <= t + EPS_T
                ) or (
                    step.volume_ml is not None
                    and self.step_ml >= step.volume_ml - 1e-9 * max(1.0, step.volume_ml)
                )
                if done:
                    self._next_step(t)
                    fired = True
            if fired:
                self._recompute()
        # Checked on the rates that apply from now on: a limit reached exactly with nothing
        # more to deliver (a PCA dose that ends at the limit), or held exactly (each dose
        # leaving the window as the next one enters), stops nothing.
        if (
            plan.drug is not None
            and self._primary_rate() > 0
            and self.state in DELIVERING
            and self._window_blocks(t)
        ):
            self._cancel_adding(t, "dose limit")
            self.board.raise_(Alarm.DOSE_LIMIT, t, self.index)
            self.emit(
                t,
                Event.ALARM.value,
                {"code": Alarm.DOSE_LIMIT.code, "priority": Alarm.DOSE_LIMIT.priority.value},
            )
            self._to(State.PAUSED, t, Event.PAUSED, reason="dose limit reached")
            return True
        return fired

    def _window_blocks(self, t: float) -> bool:
        """Delivering as now would take a window amount above its limit at once."""
        key = drug_key(self.plan)
        if key is None:
            return False
        return any(
            self.ledger.time_to_exceed(key, t, limit, window_s) <= EPS_T
            for _, window_s, limit in self.limits
        )

    def _window_full(self, t: float) -> bool:
        key = drug_key(self.plan)
        if key is None:
            return False
        return any(
            self.ledger.amount(key, t, window_s) >= limit * (1 - 1e-9)
            for _, window_s, limit in self.limits
        )

    def _check_window_allows(self, t: float) -> None:
        if self.plan is None or self.plan.drug is None or not self._window_full(t):
            return
        raise CommandRejected(
            "resume", "dose limit", "the maximum dose over the time window has been reached"
        )

    def _occlusion_alarm(self, t: float) -> None:
        c = self.mech.compliance_ml_per_mmhg
        stored_before = self.stored_ml
        self.alarm(Alarm.OCCLUSION_DOWNSTREAM, t, pressure_mmhg=self.pressure_mmhg)
        # A drive that can back off withdraws its usual volume, or more when the line
        # stores more than the post-occlusion bolus allowed (a high pressure limit).
        excess = stored_before - self.settings.post_occlusion_bolus_ml
        can = self.mech.backoff_ml > 0
        backoff = min(max(self.mech.backoff_ml, excess), stored_before) if can else 0.0
        if backoff > 0:  # withdraw to relieve the line: reduces the bolus at release
            self.pressure_mmhg -= backoff / c
            self.stored_ml -= backoff
            self.withdrawn_ml += backoff
            self.emit(
                t,
                Event.BACKOFF.value,
                {
                    "volume_ml": backoff,
                    "stored_before_ml": stored_before,
                    "stored_after_ml": stored_before - backoff,
                },
            )

    def _finish_overlay(self, t: float, overlay: Overlay, cancelled: bool = False) -> None:
        if overlay not in self.overlays:
            return
        self.overlays.remove(overlay)
        if overlay.volume_ml is not None and not cancelled:
            overlay.delivered_ml = overlay.volume_ml
        data = {"kind": overlay.kind.value, "id": overlay.id, "delivered_ml": overlay.delivered_ml}
        if overlay.kind is OverlayKind.SECONDARY:
            self.emit(t, Event.SECONDARY_COMPLETE.value, data)
        elif overlay.kind is OverlayKind.TEMP_BASAL:
            self.emit(t, Event.TEMP_BASAL_ENDED.value, data)
        else:
            self.emit(
                t,
                (Event.BOLUS_CANCELLED if cancelled else Event.BOLUS_COMPLETE).value,
                {**data, "remaining_ml": overlay.remaining_ml if cancelled else 0.0},
            )
            if overlay.kind is not OverlayKind.EXTENDED and self.state is State.BOLUS:
                self.state = State.RUNNING
                self.emit(t, "state", {"from": "bolus", "to": "running"})
        self._recompute()

    def _cancel_adding(self, t: float, reason: str) -> None:
        """An interrupted bolus is never resumed by itself (RELIABILITY B-15)."""
        for overlay in [o for o in self.overlays if o.adds]:
            self._finish_overlay(t, overlay, cancelled=True)
        if self.state is State.BOLUS:
            self.state = State.RUNNING

    def _next_step(self, t: float) -> None:
        plan = self.plan
        assert plan is not None
        step = plan.steps[self.step_i]
        if step.volume_ml is not None:
            self.step_ml = step.volume_ml
        if step.kind is StepKind.LOADING:
            self.loading_given = True
        if self.step_i + 1 < len(plan.steps):
            self.step_i += 1
        elif plan.repeat_from is not None:
            self.step_i = plan.repeat_from
        else:
            self._complete(t, "program complete")
            return
        self.step_started_s = t
        self.step_ml = 0.0
        new = plan.steps[self.step_i]
        if self.state is State.DELAYED and new.kind is not StepKind.DELAY:
            self._to(State.RUNNING, t, Event.STARTED, reason="delay over")
        self._step_event(t)

    def _step_event(self, t: float) -> None:
        assert self.plan is not None
        step = self.plan.steps[self.step_i]
        self.emit(
            t,
            Event.STEP_STARTED.value,
            {
                "step": self.step_i,
                "kind": step.kind.value,
                "rate_ml_h": step.rate_ml_h,
                "label": step.label,
            },
        )

    def _complete(self, t: float, reason: str) -> None:
        assert self.plan is not None
        self._cancel_adding(t, reason)
        self.overlays = [o for o in self.overlays if o.kind is OverlayKind.SECONDARY]
        self.board.raise_(Alarm.VTBI_COMPLETE, t, self.index)
        self.emit(
            t,
            Event.ALARM.value,
            {"code": Alarm.VTBI_COMPLETE.code, "priority": Alarm.VTBI_COMPLETE.priority.value},
        )
        if self.plan.kvo_at_end:
            self._to(State.KVO, t, Event.KVO_STARTED, reason=reason)
        else:
            self._to(State.COMPLETE, t, Event.COMPLETE, reason=reason)
