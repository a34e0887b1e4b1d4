"""The pumps of the simulated ward: real engine devices programmed through DERS, plus what
happens at their bedside (faults, PCA demands, a nurse who clears alarms and confirms).

Each :class:`SimPump` is built from a scenario document (docs/pump.md, "Scenario files")
through :class:`openinfusion.pump.scenario.Run`, so every program is DERS-checked by the
same builders as ``openinfusion pump run``; nothing starts if the library refuses it. The
bedside happenings are drawn from a seeded RNG as timed actions in pump seconds, so a ward
with the same seed does the same things at the same pump times.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openinfusion.errors import InputError
from openinfusion.library.ders import DersError
from openinfusion.pump.channel import CommandRejected, State
from openinfusion.pump.codes import Alarm
from openinfusion.pump.device import Device
from openinfusion.pump.journal import Recovery, SqliteJournal, recover
from openinfusion.pump.scenario import ContinuousSpec, Run, scenario_from_data
from openinfusion.server.ward import ders_events
from openinfusion.server.ward.bedside import Bedside

Action = Callable[["SimPump"], None]


@dataclass(order=True, slots=True)
class Timed:
    t_s: float
    order: int
    label: str = field(compare=False)
    act: Action = field(compare=False)


@dataclass(frozen=True, slots=True)
class Profile:
    """A kind of pump in the ward: what it is and the scenario that programs it."""

    name: str
    kind: str  # pump kind as enrolled (syringe, lvp, pca, ...)
    model: str
    scenario: Callable[[random.Random], dict[str, Any]]
    happenings: Callable[[random.Random], list[tuple[float, str, Action]]] = lambda rng: []
    factory: Callable[[Profile, str, random.Random], SimPump] | None = None


class SimPump(ABC):
    """One simulated pump: a device, its bedside and timed happenings (pump seconds)."""

    def __init__(
        self, profile: Profile, serial: str, rng: random.Random, device: Device, bedside: Bedside
    ) -> None:
        self.profile = profile
        self.serial = serial
        self.rng = rng
        self.device = device
        self.device.serial = serial
        self.bedside = bedside
        self._queue: list[Timed] = []
        self._order = itertools.count()
        self.log: deque[tuple[float, str]] = deque(maxlen=500)
        self.nurse_resumes = True
        # The nurse who confirms pre-populated orders draws from her own seeded stream, so
        # an order arriving does not shift the pump's other happenings.
        self._order_rng = random.Random(f"{serial}:orders")
        self._orders_planned: set[str] = set()
        for t, label, act in profile.happenings(rng):
            self.at(t, label, act)
        self.at(NURSE_ROUND_S, "nurse round", _nurse_round)

    @property
    def channels(self) -> int:
        return len(self.device.channels)

    @abstractmethod
    def start(self) -> None:
        """Load and start the programs."""

    def _advance_device(self, t_s: float) -> None:
        self.device.advance_to(max(t_s, self.device.t_s))

    def _skip_past(self) -> None:
        """After a recovery: happenings whose time has passed did not happen."""
        now = self.device.t_s
        self._queue = [h for h in self._queue if h.t_s >= now]
        heapq.heapify(self._queue)
        if not any(h.label == "nurse round" for h in self._queue):
            self.at(now + NURSE_ROUND_S, "nurse round", _nurse_round)

    def at(self, t_s: float, label: str, act: Action) -> None:
        heapq.heappush(self._queue, Timed(t_s, next(self._order), label, act))

    def advance_to(self, t_s: float) -> None:
        """Run pump time to ``t_s`` (s), doing each bedside happening at its own time."""
        self._plan_confirmations()
        while self._queue and self._queue[0].t_s <= t_s:
            item = heapq.heappop(self._queue)
            self._advance_device(item.t_s)
            try:
                item.act(self)
                self.log.append((self.device.t_s, item.label))
            except (CommandRejected, InputError, DersError) as exc:
                self.log.append((self.device.t_s, f"{item.label} refused: {exc}"))
        self._advance_device(t_s)

    def _plan_confirmations(self) -> None:
        """A remote change newly pre-populated: the nurse comes to confirm it after a seeded
        delay of pump time (ORDER_CONFIRM_S)."""
        for index, pending in self.bedside.pending.items():
            key = pending.admission.command.command_id
            if key in self._orders_planned:
                continue
            self._orders_planned.add(key)
            delay = self._order_rng.uniform(*ORDER_CONFIRM_S)
            self.at(
                self.device.t_s + delay,
                f"nurse confirms the order on channel {index + 1}",
                functools.partial(_confirm_order, index=index, command_id=key),
            )

    # ---- bedside actions (a nurse, a patient, a fault) -----------------------------------

    def fault(self, channel: int, fault: str, **args: Any) -> None:
        self.device.inject(channel, fault, **args)

    def nurse_restores(self, channel: int, fault_cleared: str | None) -> None:
        """Clear the cause, acknowledge latched alarms, resume if the channel waits paused
        (never a channel paused from the central station: that waits for a decision)."""
        d = self.device
        if fault_cleared is not None:
            d.inject(channel, fault_cleared)
        for active in list(d.board.active()):
            if active.channel in (channel, None) and not active.condition:
                d.acknowledge(active.channel, active.alarm)
        if (
            self.nurse_resumes
            and d.channels[channel].state is State.PAUSED
            and channel not in self.bedside.held
        ):
            d.resume(channel)


class ScenarioPump(SimPump):
    """A hospital, PCA or ambulatory pump programmed from a scenario document through
    :class:`openinfusion.pump.scenario.Run` (every program DERS-checked before anything
    starts)."""

    def __init__(
        self, profile: Profile, serial: str, rng: random.Random, journal: Path | None = None
    ) -> None:
        """``journal``: the pump's crash-safe journal file. If it exists the pump was
        interrupted: its device is recovered from it (delivery stopped with
        ``crash_recovered`` until a nurse confirms, RELIABILITY F-01), not programmed anew."""
        self.recovery: Recovery | None = None
        if journal is not None and journal.exists():
            self.run = Run(scenario_from_data(profile.scenario(rng)))
            self.recovery = recover(journal)
            self.run.device = self.recovery.device
        else:
            sink = SqliteJournal(journal) if journal is not None else None
            self.run = Run(scenario_from_data(profile.scenario(rng)), journal=sink)
        bedside = Bedside(
            self.run.device,
            kind=profile.kind,
            ctx=self.run.ctx,
            programmed=dict(self.run.programmed),
        )
        super().__init__(profile, serial, rng, self.run.device, bedside)
        ders_events.schedule(self)  # dose changes that meet the library's limits
        if self.recovery is not None:
            self._skip_past()
            self.at(self.device.t_s + NURSE_RECOVERY_S, "nurse after restart", _confirm_recovery)
        self.pk: Any = None
        first = self.run.programmed.get(0)
        drug = first.plan.drug.name if first is not None and first.plan.drug else None
        weight = self.run.patient.weight_kg
        if drug in ("propofol", "morphine") and weight is not None:
            from openinfusion.server.ward import pk_patient

            patient_rng = random.Random(f"{serial}:patient")
            channel = self.device.channels[0]
            if drug == "propofol":
                self.pk = pk_patient.propofol_patient(patient_rng, weight, channel)
            elif first is not None and first.plan.pca is not None:
                self.pk = pk_patient.PainfulPatient(patient_rng, weight, channel)
            else:
                self.pk = pk_patient.morphine_patient(patient_rng, weight, channel)
            bedside.observe = self.pk.observation
            self.at(pk_patient.UPDATE_S, "patient minute", _pk_minute)

    def start(self) -> None:
        if self.recovery is not None:
            return  # recovered: nothing restarts by itself
        scenario = self.run.scenario
        for index, programmed in self.run.programmed.items():
            self.device.program(index, programmed.plan, **programmed.journal_info())
            spec = (
                scenario.program
                if scenario.program is not None
                else next(s.program for s in scenario.programs if s.channel == index)
            )
            if isinstance(spec, ContinuousSpec) and spec.standby:
                self.device.standby(index)
            else:
                self.device.start(index)


NURSE_ROUND_S = 10 * 60.0
# A pre-populated order is confirmed 20-45 s (pump time) after it appears: within the
# command's life (at most 60 s on the pump's own clock, docs/pump-protocol.md) even when the
# ward runs at real time, with room for the link; faster wards leave more.
ORDER_CONFIRM_S = (20.0, 45.0)
OVERRIDE_REASON = "confirmed with the prescriber at the bedside"
NURSE_RECOVERY_S = 3 * 60.0


def _confirm_order(pump: SimPump, index: int, command_id: str) -> None:
    """The nurse checks patient and pump against the order and confirms it (giving the
    override reason a soft-limit crossing needs); a change already gone is left alone."""
    pending = pump.bedside.pending.get(index)
    if pending is None or pending.admission.command.command_id != command_id:
        return
    reason = OVERRIDE_REASON if pending.soft_limits else None
    hook = pump.bedside.confirm_hook
    if hook is not None:
        hook(index + 1, reason)
    else:
        pump.log.append((pump.device.t_s, f"order on channel {index + 1} has no link to confirm"))


def _confirm_recovery(pump: SimPump) -> None:
    """A nurse checks patient and program after the pump restarted, then resumes."""
    d = pump.device
    for i in range(len(d.channels)):
        if d.board.is_active(Alarm.CRASH_RECOVERED, i):
            d.confirm_recovery(i)
            pump.nurse_restores(i, None)


def _pk_minute(pump: SimPump) -> None:
    """The virtual patient takes up what the channel delivered in the last minute; a PCA
    patient in pain may press the button during the next one."""
    assert isinstance(pump, ScenarioPump)
    pump.pk.update(pump.device.t_s)
    pump.at(pump.device.t_s + 60.0, "patient minute", _pk_minute)
    wants = getattr(pump.pk, "wants_to_press", None)
    if wants is not None and wants():
        pump.at(pump.device.t_s + pump.rng.uniform(0.0, 60.0), "PCA demand", _demand)


def _demand(pump: SimPump) -> None:
    pump.device.demand(0)


def _nurse_round(pump: SimPump) -> None:
    """Every 10 min: change a syringe or reservoir that is low or empty, acknowledge alarms
    whose condition ended, plug in a pump whose battery is low."""
    d = pump.device
    for i, ch in enumerate(d.channels):
        size = ch.mech.reservoir_ml
        low = d.board.condition(Alarm.RESERVOIR_LOW, i) or d.board.condition(
            Alarm.RESERVOIR_EMPTY, i
        )
        if size and ch.reservoir_ml is not None and low:
            was_running = ch.state in (State.RUNNING, State.BOLUS)
            if was_running:
                d.pause(i)
            found, added = ch.reservoir_ml, size - ch.reservoir_ml

            def change(ch: Any = ch, found: float = found, added: float = added) -> float:
                return float(ch.refill(d.t_s, found, added))

            d._command("refill", i, {"found_ml": found, "added_ml": added}, change)
            pump.log.append((d.t_s, f"syringe change on channel {i + 1}"))
            pump.nurse_restores(i, None)
    if d.board.condition(Alarm.BATTERY_LOW) and not d.battery.on_mains:
        d.set_mains(True)
    for active in list(d.board.active()):
        if not active.condition:
            d.acknowledge(active.channel, active.alarm)
    pump.at(d.t_s + NURSE_ROUND_S, "nurse round", _nurse_round)


def no_communication_active(pump: SimPump) -> bool:
    return pump.device.board.condition(Alarm.NO_COMMUNICATION)
