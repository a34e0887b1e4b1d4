"""Stateful property test of the pump engine (RELIABILITY programme 2; DESIGN "safety first").

A two-channel device (50 mL syringe + large-volume pump) receives random commands:
program, start, pause, resume, stop, standby, titrate, bolus, PCA demand, secondary,
temporary rate, every injectable fault, battery drain, mains, alarm handling, refill,
crash-and-recover and time advances of random length. After every step:

- I1 VTBI: what counts against a program never exceeds its VTBI; a volume-limited step
  never exceeds its volume;
- I1 dose windows: the drug delivered over *any* window stays within each of the drug's
  limits (cumulative limit, PCA 1-hour and 4-hour limits), summed over channels and
  programs. The amount is recomputed here from the channels' counters sampled at every
  journal record (between two records every rate is constant), without window.py;
- PCA lockout: granted demands on a channel are at least the lockout apart;
- I2: delivered, displaced and patient volumes never decrease;
- I3: the channel state follows from the records alone (every change is journaled, with
  the right "from"), and every stop of delivery carries a reason, an alarm when in ALARM;
- volume conservation: per program, displacement = program + KVO + secondary; overall,
  displacement = patient + lost + stored in the line + withdrawn by back-off + slack;
- crash safety: a channel never moves past the displacement reserved at the last commit;
  a snapshot restores to an identical device; after a crash, delivering channels come
  back stopped with ``crash_recovered``, boluses cancelled, loading not resumed;
- determinism: the same commands give the same journal records, bit for bit.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from openinfusion.pump.channel import DELIVERING, CommandRejected, State, drug_key
from openinfusion.pump.codes import Alarm
from openinfusion.pump.device import Device, Record
from openinfusion.pump.journal import device_snapshot, recover_from, restore_device
from openinfusion.pump.mechanics import lvp, syringe
from openinfusion.pump.plan import (
    DrugInfo,
    Envelope,
    PcaSettings,
    Plan,
    Step,
    StepKind,
)
from openinfusion.pump.window import DoseLedger

HEPARIN = DrugInfo("heparin", 100.0, "units")
MORPHINE = DrugInfo("morphine", 1.0, "mg")
VANCOMYCIN = DrugInfo("vancomycin", 5.0, "mg")
LOCKOUT_S = 360.0
# Every program of a drug carries the same limits: (window s, maximum amount).
LIMITS: dict[str, list[tuple[float, float]]] = {
    "heparin [units]": [(3600.0, 2500.0)],
    "morphine [mg]": [(3600.0, 6.0), (14400.0, 15.0)],
    "vancomycin [mg]": [(7200.0, 150.0)],
}


def heparin() -> Plan:
    return Plan(
        "continuous",
        [Step(StepKind.LOADING, 300.0, volume_ml=4.0), Step(StepKind.CONTINUOUS, 12.0)],
        vtbi_ml=40.0,
        kvo_rate_ml_h=1.0,
        drug=HEPARIN,
        envelope=Envelope(
            max_rate_ml_h=30.0, max_bolus_ml=3.0, window_s=3600.0, window_max_amount=2500.0
        ),
    )


def delayed_heparin() -> Plan:
    return Plan(
        "continuous",
        [Step(StepKind.DELAY, 0.0, duration_s=300.0), Step(StepKind.CONTINUOUS, 6.0)],
        vtbi_ml=3.0,
        drug=HEPARIN,
        envelope=Envelope(
            max_rate_ml_h=30.0, max_bolus_ml=3.0, window_s=3600.0, window_max_amount=2500.0
        ),
    )


def pca() -> Plan:
    return Plan(
        "pca",
        [Step(StepKind.LOADING, 150.0, volume_ml=2.0), Step(StepKind.CONTINUOUS, 1.0)],
        kvo_at_end=False,
        drug=MORPHINE,
        envelope=Envelope(max_rate_ml_h=4.0, max_bolus_ml=3.0),
        pca=PcaSettings(
            demand_ml=1.5,
            lockout_s=LOCKOUT_S,
            bolus_rate_ml_h=150.0,
            limits=((3600.0, 6.0), (14400.0, 15.0)),
        ),
    )


def vancomycin() -> Plan:
    return Plan(
        "intermittent",
        [
            Step(StepKind.DOSE, 120.0, volume_ml=10.0),
            Step(StepKind.WAIT, 0.0, duration_s=1200.0),
        ],
        repeat_from=0,
        kvo_at_end=False,
        drug=VANCOMYCIN,
        envelope=Envelope(window_s=7200.0, window_max_amount=150.0),
    )


def basic() -> Plan:
    return Plan(
        "multistep",
        [
            Step(StepKind.CONTINUOUS, 40.0, volume_ml=5.0),
            Step(StepKind.CONTINUOUS, 10.0, duration_s=900.0),
            Step(StepKind.CONTINUOUS, 5.0),
        ],
        vtbi_ml=15.0,
        kvo_rate_ml_h=2.0,
    )


PLANS = {
    "heparin": heparin,
    "delayed": delayed_heparin,
    "pca": pca,
    "vancomycin": vancomycin,
    "basic": basic,
}
FAULTS = [
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
]
ALARMS = [
    Alarm.OCCLUSION_DOWNSTREAM,
    Alarm.AIR_IN_LINE,
    Alarm.DOOR_OPEN,
    Alarm.DISCONNECTION,
    Alarm.VTBI_COMPLETE,
    Alarm.DOSE_LIMIT,
    Alarm.BATTERY_DEPLETED,
    Alarm.BATTERY_LOW,
    Alarm.RESERVOIR_EMPTY,
    Alarm.PAUSED_TOO_LONG,
    Alarm.SENSOR_FAULT,
    Alarm.CRASH_RECOVERED,
]
TOL = 1e-7

channels = st.integers(0, 1)


class MemoryJournal:
    """A journal sink kept in memory, checking that no channel outruns its reservation."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.snapshot: dict[str, Any] | None = None

    def command(self, record: Record) -> None:
        self.rows.append(json.loads(json.dumps(record.as_dict())))

    def commit(self, records: Any, snapshot: dict[str, Any] | None) -> None:
        for record in records:
            self.command(record)
        if snapshot is not None:
            if self.snapshot is not None:
                check_reservations(self.snapshot, snapshot["channels"])
            self.snapshot = json.loads(json.dumps(snapshot))


def check_reservations(previous: dict[str, Any], now: list[dict[str, Any]]) -> None:
    for before, after in zip(previous["channels"], now, strict=True):
        assert after["ideal_ml"] <= before["reserve_ml"] * (1 + 1e-12) + 1e-9, (
            f"channel {after['index']} moved {after['ideal_ml']} mL, past the "
            f"{before['reserve_ml']} mL reserved at t={previous['t_s']}"
        )


class Model:
    """What the test tracks from the record stream, independently of the engine."""

    def __init__(self) -> None:
        self.state: dict[int, str] = {0: "idle", 1: "idle"}
        self.grants: dict[int, list[float]] = defaultdict(list)
        self.last_alarm_t: dict[int | None, float] = {}
        self.program_base: dict[int, float] = {0: 0.0, 1: 0.0}
        # per drug: samples (t, cumulative amount) of the total delivered
        self.samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.total: dict[str, float] = defaultdict(float)
        self.seen: dict[int, tuple[Any, str | None, float]] = {}
        self.offset = 0.0  # added to pump time after a recovery that went back in time
        self.last_t = 0.0
        self.recovering = False


class PumpMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[Any, ...]] = []
        self.model = Model()
        self.journal = MemoryJournal()
        self.device = self._new_device(self.journal, self._listen)
        self.prev: dict[int, tuple[float, float, float]] = {}
        self.last_crash = 0

    @staticmethod
    def _new_device(journal: Any, listener: Any) -> Device:
        return Device([syringe(50), lvp()], journal=journal, listener=listener)

    # ---- record stream ---------------------------------------------------------------------

    def _listen(self, record: Record) -> None:
        m, data = self.model, record.data
        index = data.get("channel")
        if record.kind == "alarm":
            m.last_alarm_t[index] = record.t_s
        if record.kind == "pca_granted":
            m.grants[index].append(record.t_s + m.offset)
        if "to" in data and isinstance(index, int):
            if "from" in data:
                assert data["from"] == m.state[index], (
                    f"channel {index} went {data['from']}->{data['to']} but the records "
                    f"last showed {m.state[index]}: a silent state change"
                )
            if data.get("from") in {s.value for s in DELIVERING} and data["to"] not in {
                s.value for s in DELIVERING
            }:
                assert "reason" in data, f"delivery stopped without a reason: {record}"
            if data["to"] == "alarm":
                assert m.last_alarm_t.get(index) == record.t_s or (
                    m.last_alarm_t.get(None) == record.t_s
                ), f"channel {index} entered ALARM without an alarm record: {record}"
            m.state[index] = data["to"]
        if record.kind == "programmed" and isinstance(index, int):
            m.program_base[index] = self.device.channels[index].ideal_ml
        self._sample(record.t_s)

    def _sample(self, t: float) -> None:
        """Cumulative amount of each drug, from the channels' counters at time ``t``."""
        m = self.model
        if m.recovering:
            return
        t = t + m.offset
        touched = set()
        for ch in self.device.channels:
            key = drug_key(ch.plan)
            value = ch.drug_amount
            plan, _key, last = m.seen.get(ch.index, (None, None, 0.0))
            if plan is ch.plan and key is not None:
                m.total[key] += value - last
                touched.add(key)
            elif key is not None:
                m.total[key] += value
                touched.add(key)
            m.seen[ch.index] = (ch.plan, key, value)
        for key in touched | set(m.samples):
            samples = m.samples[key]
            if samples and samples[-1][0] == t:
                samples[-1] = (t, m.total[key])
            else:
                samples.append((t, m.total[key]))
        m.last_t = max(m.last_t, t)

    def _do(self, name: str, *args: Any) -> None:
        self.log.append((name, *args))
        apply(self.device, name, args, self)

    # ---- rules -------------------------------------------------------------------------------

    @initialize(
        first=st.sampled_from(["pca", "pca", "pca", *sorted(PLANS)]),
        second=st.sampled_from(sorted(PLANS)),
    )
    def two_infusions(self, first: str, second: str) -> None:
        for ch, plan in ((0, first), (1, second)):
            self._do("program", ch, plan)
            self._do("start", ch)

    @rule(ch=channels, plan=st.sampled_from(sorted(PLANS)), start=st.integers(0, 3))
    def program(self, ch: int, plan: str, start: int) -> None:
        if self.device.channels[ch].state in (State.ALARM, State.RUNNING, State.BOLUS):
            self._do("stop", ch)
        self._do("program", ch, plan)
        if start:
            self._do("start", ch)

    @rule(ch=channels, action=st.sampled_from(["start", "pause", "resume", "stop", "standby"]))
    def control(self, ch: int, action: str) -> None:
        self._do(action, ch)

    @rule(ch=channels, rate=st.sampled_from([0.5, 3.0, 12.0, 25.0, 45.0, 5000.0]))
    def titrate(self, ch: int, rate: float) -> None:
        self._do("titrate", ch, rate)

    @rule(
        ch=channels,
        volume=st.sampled_from([0.5, 2.0, 3.5]),
        rate=st.sampled_from([50.0, 300.0, 2000.0]),
    )
    def bolus(self, ch: int, volume: float, rate: float) -> None:
        self._do("bolus", ch, volume, rate)

    @rule(
        ch=channels,
        gaps=st.lists(
            st.one_of(st.sampled_from([0.0, 359.0, 360.0, 361.0]), st.floats(0.0, 1200.0)),
            min_size=1,
            max_size=8,
        ),
    )
    def demand_pattern(self, ch: int, gaps: list[float]) -> None:
        """The patient presses the button after each gap (s), whatever the pattern."""
        pca_channels = [c.index for c in self.device.channels if c.plan and c.plan.pca]
        if pca_channels and ch not in pca_channels:
            ch = pca_channels[0]
        for gap in gaps:
            self._do("advance", gap)
            self._do("demand", ch)

    @rule(ch=channels, volume=st.sampled_from([5.0, 20.0]), rate=st.sampled_from([25.0, 100.0]))
    def secondary(self, ch: int, volume: float, rate: float) -> None:
        self._do("secondary", ch, volume, rate)

    @rule(ch=channels, rate=st.sampled_from([2.0, 20.0]), minutes=st.sampled_from([5.0, 45.0]))
    def temp_rate(self, ch: int, rate: float, minutes: float) -> None:
        self._do("temp_rate", ch, rate, minutes * 60.0)

    @rule(ch=channels, fault=st.sampled_from(FAULTS), bubble=st.sampled_from([60.0, 300.0]))
    def fault(self, ch: int, fault: str, bubble: float) -> None:
        self._do("fault", ch, fault, bubble)

    @rule(
        ch=channels,
        before=st.sampled_from([0.0, 5.0, 120.0]),
        during=st.floats(0.0, 3600.0),
        release=st.booleans(),
    )
    def occlusion_episode(self, ch: int, before: float, during: float, release: bool) -> None:
        """Downstream occlusion of a running line: pressure rises, alarm, back-off; the
        release delivers what the line stored (F-15)."""
        self._do("advance", before)
        self._do("fault", ch, "occlusion", 0.0)
        self._do("advance", during)
        if release:
            self._do("fault", ch, "clear_occlusion", 0.0)

    @rule(extra=st.sampled_from([300.0, 3000.0]))
    def battery_drain(self, extra: float) -> None:
        self._do("battery_drain", extra)

    @rule(on=st.booleans())
    def mains(self, on: bool) -> None:
        self._do("mains", on)

    @rule(
        ch=st.sampled_from([0, 1, None]),
        alarm=st.sampled_from(ALARMS),
        action=st.sampled_from(["acknowledge", "silence"]),
    )
    def alarm_handling(self, ch: int | None, alarm: Alarm, action: str) -> None:
        self._do(action, ch, alarm.name)

    @rule(ch=channels, then=st.sampled_from(["resume", "start", "nothing"]))
    def clinician_restores(self, ch: int, then: str) -> None:
        """Clear every fault of the channel, acknowledge its alarms, confirm and resume."""
        for fault in FAULTS[1::2]:
            self._do("fault", ch, fault, 0.0)
        self._do("mains", True)
        for alarm in ALARMS:
            self._do("acknowledge", ch, alarm.name)
            self._do("acknowledge", None, alarm.name)
        self._do("confirm_recovery", ch)
        if then != "nothing":
            self._do(then, ch)

    @rule(ch=channels, found=st.sampled_from([0.0, 10.0]), added=st.sampled_from([0.0, 40.0]))
    def refill(self, ch: int, found: float, added: float) -> None:
        self._do("refill", ch, found, added)

    @rule(
        dt=st.one_of(
            st.sampled_from([0.0, 1.0, 60.0, 359.0, 360.0, 3600.0]),
            st.floats(0.0, 5400.0, allow_nan=False),
        )
    )
    def advance(self, dt: float) -> None:
        self._do("advance", dt)
        self._sample(self.device.t_s)

    @precondition(lambda self: len(self.log) - self.last_crash >= 10)
    @rule()
    def crash(self) -> None:
        """The control process dies here: rebuild from the journal (F-01)."""
        self.last_crash = len(self.log)
        self.log.append(("crash",))
        before = self.journal.snapshot
        assert before is not None
        self.device = crash_and_recover(self.journal, self._listen, self.model)
        check_recovered(self.device, before)
        self._sample(self.device.t_s)

    # ---- invariants --------------------------------------------------------------------------

    @invariant()
    def record_state_matches(self) -> None:
        for ch in self.device.channels:
            assert self.model.state[ch.index] == ch.state.value, (
                f"channel {ch.index} is {ch.state.value}; the records say "
                f"{self.model.state[ch.index]}"
            )

    @invariant()
    def no_over_delivery(self) -> None:
        for ch in self.device.channels:
            plan = ch.plan
            assert ch.pumped_ml <= ch.ideal_ml + 1e-12
            if plan is None:
                continue
            if plan.vtbi_ml is not None:
                assert ch.program_ml <= plan.vtbi_ml * (1 + 1e-9) + 1e-12
            step = plan.steps[ch.step_i]
            if step.volume_ml is not None:
                assert ch.step_ml <= step.volume_ml * (1 + 1e-9) + 1e-9
            for o in ch.overlays:
                if o.volume_ml is not None:
                    assert o.delivered_ml <= o.volume_ml * (1 + 1e-9) + 1e-9
            assert ch.rate_ml_h <= ch.mech.max_rate_ml_h * (1 + 1e-9)

    @invariant()
    def counters_never_rewind(self) -> None:
        for ch in self.device.channels:
            now = (ch.ideal_ml, ch.pumped_ml, ch.patient_ml)
            before = self.prev.get(ch.index, (0.0, 0.0, 0.0))
            for a, b in zip(before, now, strict=True):
                assert b >= a - 1e-12, f"channel {ch.index} counter went back {before} -> {now}"
            self.prev[ch.index] = now

    @invariant()
    def volume_is_conserved(self) -> None:
        for ch in self.device.channels:
            parts = ch.patient_ml + ch.lost_ml + ch.stored_ml + ch.withdrawn_ml + ch.slack_taken_ml
            assert ch.ideal_ml == pytest.approx(parts, rel=1e-9, abs=1e-9)
            assert ch.stored_ml >= -1e-12
            if ch.plan is not None:
                displaced = ch.ideal_ml - self.model.program_base[ch.index]
                accounted = ch.program_ml + ch.kvo_ml + ch.secondary_ml
                assert displaced == pytest.approx(accounted, rel=1e-9, abs=1e-9)

    @invariant()
    def dose_windows_hold(self) -> None:
        for key, samples in self.model.samples.items():
            for window_s, limit in LIMITS[key]:
                worst = max_window_amount(samples, window_s)
                assert worst <= limit * (1 + 1e-7) + 1e-9, (
                    f"{key}: {worst} delivered within {window_s / 3600:g} h, limit {limit}"
                )

    @invariant()
    def pca_lockout_holds(self) -> None:
        for index, grants in self.model.grants.items():
            for a, b in itertools.pairwise(grants):
                assert b - a >= LOCKOUT_S - 1e-6, (
                    f"channel {index}: demands granted {b - a} s apart"
                )

    @invariant()
    def never_outruns_reservation(self) -> None:
        if self.journal.snapshot is not None:
            now = [{"index": ch.index, "ideal_ml": ch.ideal_ml} for ch in self.device.channels]
            check_reservations(self.journal.snapshot, now)

    @invariant()
    def snapshot_restores_identically(self) -> None:
        snap = json.loads(json.dumps(self.device.snapshot()))
        twin = restore_device(snap, MemoryJournal())
        again = json.loads(json.dumps(device_snapshot(twin)))
        assert again == snap

    def teardown(self) -> None:
        """Determinism: the same commands again give the same records, bit for bit."""
        journal = MemoryJournal()
        replay = PumpReplay(journal)
        for entry in self.log:
            replay.step(entry)
        assert replay.journal.rows == self.journal.rows


class PumpReplay:
    """Applies a logged command sequence to a fresh device (no checks)."""

    def __init__(self, journal: MemoryJournal) -> None:
        self.journal = journal
        self.model = Model()
        self.device = PumpMachine._new_device(journal, None)

    def step(self, entry: tuple[Any, ...]) -> None:
        name, *args = entry
        if name == "crash":
            self.device = crash_and_recover(self.journal, None, self.model)
        else:
            apply(self.device, name, tuple(args), None)


def apply(device: Device, name: str, args: tuple[Any, ...], machine: Any) -> None:
    """One command; a refusal (typed, journaled, nothing changed) is a valid outcome."""
    try:
        if name == "program":
            device.program(args[0], PLANS[args[1]]())
        elif name in ("start", "pause", "resume", "stop", "standby", "confirm_recovery"):
            getattr(device, name)(args[0])
        elif name == "titrate":
            device.titrate(args[0], args[1])
        elif name == "bolus":
            device.bolus(args[0], args[1], args[2])
        elif name == "demand":
            device.demand(args[0])
        elif name == "secondary":
            device.secondary(args[0], args[1], args[2])
        elif name == "temp_rate":
            device.temp_rate(args[0], args[1], args[2])
        elif name == "fault":
            extra = {"volume_ul": args[2]} if args[1] == "air" else {}
            device.inject(args[0], args[1], **extra)
        elif name == "battery_drain":
            device.inject(0, "battery_drain", extra_ma=args[0])
        elif name == "mains":
            device.set_mains(args[0])
        elif name in ("acknowledge", "silence"):
            getattr(device, name)(args[0], Alarm[args[1]])
        elif name == "refill":
            index, found, added = args
            device._command(
                "refill",
                index,
                {"found_ml": found, "added_ml": added},
                lambda: device.channels[index].refill(device.t_s, found, added),
            )
        elif name == "advance":
            device.advance_to(device.t_s + args[0])
        else:  # pragma: no cover - a typo in the test
            raise AssertionError(name)
    except CommandRejected:
        pass


def crash_and_recover(journal: MemoryJournal, listener: Any, model: Model) -> Device:
    assert journal.snapshot is not None
    snapshot = json.loads(json.dumps(journal.snapshot))
    model.recovering = True
    try:
        recovery = recover_from(snapshot, list(journal.rows), journal, listener)
    finally:
        model.recovering = False
    device = recovery.device
    # The same programs, rebuilt: what they delivered so far is already counted.
    for ch in device.channels:
        plan, key, value = model.seen.get(ch.index, (None, None, 0.0))
        if plan is not None and ch.plan is not None and key == drug_key(ch.plan):
            model.seen[ch.index] = (ch.plan, key, value)
    # Pump time restarts from the checkpoint: keep the model's clock monotonic.
    model.offset = max(model.offset, model.last_t - device.t_s)
    return device


def check_recovered(device: Device, before: dict[str, Any]) -> None:
    """F-01: never delivering by itself, no bolus kept, no loading dose resumed."""
    for ch, old in zip(device.channels, before["channels"], strict=True):
        assert ch.rate_ml_h == 0.0, ch.status()
        assert not [o for o in ch.overlays if o.adds]
        was = State(old["state"])
        if old["plan"] is not None and was not in (
            State.IDLE,
            State.PROGRAMMING,
            State.STANDBY,
            State.COMPLETE,
        ):
            assert ch.state is State.ALARM
            assert ch.board.is_active(Alarm.CRASH_RECOVERED, ch.index)
        if ch.plan is not None and ch.state is State.ALARM:
            step = ch.plan.steps[ch.step_i]
            assert step.kind is not StepKind.LOADING or ch.step_i == len(ch.plan.steps) - 1


def max_window_amount(samples: list[tuple[float, float]], window_s: float) -> float:
    """Largest A(t) - A(t - window) of a piecewise-linear cumulative amount A given by its
    samples (the maximum of a difference of piecewise-linear functions is at a breakpoint
    of either term)."""
    if len(samples) < 2:
        return 0.0
    ts = [t for t, _ in samples]

    def at(x: float) -> float:
        if x <= ts[0]:
            return samples[0][1]
        if x >= ts[-1]:
            return samples[-1][1]
        lo, hi = 0, len(ts) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ts[mid] <= x:
                lo = mid
            else:
                hi = mid
        (t0, a0), (t1, a1) = samples[lo], samples[hi]
        return a0 + (a1 - a0) * (x - t0) / (t1 - t0) if t1 > t0 else a1

    worst = 0.0
    for t in ts:
        for end in (t, t + window_s):
            worst = max(worst, at(end) - at(end - window_s))
    return worst


PumpMachine.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=35,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestPumpProperties = PumpMachine.TestCase


press = st.tuples(
    st.one_of(st.sampled_from([0.0, 1.0, 359.9, 360.0, 360.1]), st.floats(0.0, 2400.0)),
    st.sampled_from(["demand", "demand", "demand", "bolus", "titrate", "pause_resume", "crash"]),
)


@settings(max_examples=60, deadline=None)
@given(
    basal=st.sampled_from([0.0, 0.5, 1.0, 4.0]),
    loading=st.booleans(),
    presses=st.lists(press, min_size=1, max_size=40),
)
def test_pca_lockout_and_limits_hold_whatever_the_demand_pattern(
    basal: float, loading: bool, presses: list[tuple[float, str]]
) -> None:
    """Open PCA R5.2(3),(5): demands are granted at least a lockout apart and the 1-hour
    and 4-hour limits (basal, loading, demands and clinician boluses together) hold, across
    pauses and crashes; recomputed here from counters sampled at every record."""
    steps = [Step(StepKind.LOADING, 150.0, volume_ml=2.0)] if loading else []
    steps.append(Step(StepKind.CONTINUOUS, basal))
    machine = PumpMachine.__new__(PumpMachine)
    RuleBasedStateMachine.__init__(machine)
    machine.log, machine.model, machine.journal = [], Model(), MemoryJournal()
    machine.prev, machine.last_crash = {}, 0
    machine.device = PumpMachine._new_device(machine.journal, machine._listen)
    plan = pca()
    plan.steps[:] = steps
    machine.device.program(0, plan)
    machine.device.start(0)
    for gap, action in presses:
        machine._do("advance", gap)
        if action == "demand":
            machine._do("demand", 0)
        elif action == "bolus":
            machine._do("bolus", 0, 1.0, 150.0)
        elif action == "titrate":
            machine._do("titrate", 0, 4.0)
        elif action == "pause_resume":
            machine._do("pause", 0)
            machine._do("resume", 0)
        else:
            machine.device = crash_and_recover(machine.journal, machine._listen, machine.model)
            machine._do("confirm_recovery", 0)
            machine._do("resume", 0)
        machine._sample(machine.device.t_s)
    machine._do("advance", 4 * 3600.0)
    machine._sample(machine.device.t_s)
    machine.pca_lockout_holds()
    machine.dose_windows_hold()
    machine.record_state_matches()
    machine.volume_is_conserved()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.floats(0.0, 900.0), st.floats(0.0, 2.0)),
        min_size=1,
        max_size=30,
    ),
    st.floats(600.0, 7200.0),
    st.floats(0.01, 3.0),
    st.floats(1.0, 5000.0),
)
def test_shared_ledger_matches_brute_force(
    steps: list[tuple[int, float, float]], window: float, rate: float, limit: float
) -> None:
    """Several channels delivering one drug at once (overlapping segments): the window
    amount and the time a limit is reached match a brute-force integration (B-16)."""
    ledger = DoseLedger()
    ledger.meter("drug", window)
    segments: list[tuple[float, float, float]] = []
    t = 0.0
    rates = [0.0, 0.0, 0.0, 0.0]
    for channel, dt, new_rate in steps:
        for r in rates:
            ledger.record("drug", t, t + dt, r)
            if r > 0 and dt > 0:
                segments.append((t, t + dt, r))
        t += dt
        rates[channel] = new_rate

    def level(x: float) -> float:
        return sum(max(0.0, min(b, x) - max(a, x - window)) * r for a, b, r in segments)

    assert ledger.amount("drug", t, window) == pytest.approx(level(t), abs=1e-6)
    for ch, r in enumerate(rates):
        ledger.set_rate(ch, "drug", r)
    total = sum(rates)
    dt = ledger.time_to_exceed("drug", t, limit, window)
    future = [*segments, (t, t + 10 * window, total)] if total > 0 else segments

    def ahead(x: float) -> float:
        return sum(max(0.0, min(b, x) - max(a, x - window)) * r for a, b, r in future)

    if level(t) > limit * (1 + 1e-9):
        assert dt == 0.0
    elif math.isinf(dt):
        assert all(ahead(t + k * window / 40) < limit + 1e-6 for k in range(120))
    else:
        assert ahead(t + dt) == pytest.approx(limit, rel=1e-6, abs=1e-6)
        assert all(ahead(t + dt * k / 40) <= limit + 1e-6 for k in range(40))


def test_window_helper_matches_a_constant_rate() -> None:
    """The independent window computation itself: 1/s for 100 s over a 30 s window."""
    assert max_window_amount([(0.0, 0.0), (100.0, 100.0)], 30.0) == pytest.approx(30.0)
    assert max_window_amount([(0.0, 0.0), (10.0, 5.0), (500.0, 5.0)], 3600.0) == 5.0
    assert math.isclose(max_window_amount([(0.0, 0.0), (10.0, 5.0), (20.0, 6.0)], 10.0), 5.0)
