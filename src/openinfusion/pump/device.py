"""A pump device: up to four channels, one battery, one alarm board, one clock, one journal.

The device owns time. :meth:`Device.advance_to` jumps from event to event (the earliest of
every channel's next event, the battery thresholds, alarm silence expiries and journal
checkpoints), so a 72-hour infusion costs a few hundred steps, not 259,200 ticks.
Commands act at the device's current time; each is journaled before it takes effect and
the resulting events and state after it (see :mod:`openinfusion.pump.journal`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from openinfusion.errors import InputError
from openinfusion.pump.alarms import AlarmBoard
from openinfusion.pump.battery import Battery
from openinfusion.pump.channel import (
    EPS_T,
    Channel,
    ChannelSettings,
    CommandRejected,
    State,
    real,
)
from openinfusion.pump.clock import PumpClock
from openinfusion.pump.codes import Alarm, Event
from openinfusion.pump.mechanics import Mechanism
from openinfusion.pump.plan import OverlayKind, Plan
from openinfusion.pump.window import DoseLedger

MAX_CHANNELS = 4
MAX_TIME_S = 100 * 365.25 * 86400.0  # pump time stays far from float resolution limits


@dataclass(frozen=True, slots=True)
class Record:
    """One journal/event-log record: sequence number, pump time (s), kind and data."""

    seq: int
    t_s: float
    kind: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """``{"seq", "t_s", "kind", "data"}``: the data stays apart, since records carry
        their own ``kind`` (a step's, a bolus's) that must not hide the record's."""
        return {"seq": self.seq, "t_s": self.t_s, "kind": self.kind, "data": self.data}


class JournalSink(Protocol):
    """Where a device writes its records durably (the SQLite journal implements it)."""

    def command(self, record: Record) -> None: ...

    def commit(self, records: Sequence[Record], snapshot: dict[str, Any] | None) -> None: ...


class Device:
    """A multi-channel pump driven by event-driven time."""

    def __init__(
        self,
        mechanisms: Sequence[Mechanism],
        *,
        settings: Sequence[ChannelSettings] | None = None,
        battery: Battery | None = None,
        serial: str = "SIM-0001",
        journal: JournalSink | None = None,
        checkpoint_s: float | None = None,
        listener: Callable[[Record], None] | None = None,
        clock: PumpClock | None = None,
    ) -> None:
        if not 1 <= len(mechanisms) <= MAX_CHANNELS:
            raise InputError("channels", len(mechanisms), f"must be 1 to {MAX_CHANNELS}")
        self.serial = serial
        self.t_s = 0.0
        self.seq = 0
        self.board = AlarmBoard()
        self.battery = battery or Battery()
        self.powered = True
        self.records: list[Record] = []
        self._pending: list[Record] = []
        self.journal = journal
        # With a journal, commit at least every minute of pump time so that a crash can
        # leave at most one minute of delivery unconfirmed (see journal.reservation_ml).
        self.checkpoint_s = (checkpoint_s or 60.0) if journal is not None else None
        self._next_checkpoint = math.inf
        # End of the earliest displacement reserved at the last commit: commit there.
        self._commit_by = math.inf
        self.listener = listener
        # Channel -> level of the last DERS refusal not yet followed by a program.
        self._alerted: dict[int, str] = {}
        self.clock = clock  # wall time for display and schedules only, never for delivery
        self.ledger = DoseLedger()  # every channel's drug delivery, for shared limits (B-16)
        per_channel = list(settings) if settings else [ChannelSettings() for _ in mechanisms]
        if len(per_channel) != len(mechanisms):
            raise InputError(
                "settings", len(per_channel), f"must be {len(mechanisms)}, one per channel"
            )
        self.channels = [
            Channel(i, m, self.board, self._emit, per_channel[i], ledger=self.ledger)
            for i, m in enumerate(mechanisms)
        ]

    # ---- records -------------------------------------------------------------------------

    def _emit(self, t: float, kind: str, data: dict[str, Any]) -> None:
        self.seq += 1
        record = Record(self.seq, t, kind, data)
        self.records.append(record)
        self._pending.append(record)
        if self.listener is not None:
            self.listener(record)

    def _flush(self, force: bool = False) -> None:
        if self.journal is None:
            self._pending.clear()
            return
        if self._pending or force:
            self.journal.commit(self._pending, self.snapshot())
            self._pending = []
            # Each channel may move, until its next event, what the snapshot reserved
            # (journal.reservation): the device commits again by then, whatever happens.
            self._commit_by = min(
                (ch.next_event_s() for ch in self.channels if ch.rate_ml_h > 0),
                default=math.inf,
            )
        if self.checkpoint_s is not None:
            self._next_checkpoint = self.t_s + self.checkpoint_s

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to rebuild the device (see journal.restore_device)."""
        from openinfusion.pump.journal import device_snapshot

        return device_snapshot(self)

    # ---- time ----------------------------------------------------------------------------

    @property
    def total_rate_ml_h(self) -> float:
        return sum(ch.rate_ml_h for ch in self.channels)

    def next_event_s(self) -> float:
        return self._next_event_s([ch.next_event_s() for ch in self.channels])

    def _next_event_s(self, channel_times: list[float]) -> float:
        soonest = min(channel_times, default=math.inf)
        soonest = min(soonest, self.board.next_event_s(), self._next_checkpoint, self._commit_by)
        if self.powered and not self.battery.on_mains:
            rate = self.total_rate_ml_h
            for code, runtime in (
                (Alarm.BATTERY_LOW, self.battery.low_runtime_s),
                (Alarm.BATTERY_DEPLETED, self.battery.depleted_runtime_s),
            ):
                if not self.board.is_active(code):
                    soonest = min(soonest, self.t_s + self.battery.time_to_runtime(runtime, rate))
            soonest = min(soonest, self.t_s + self.battery.time_to_runtime(0.0, rate))
        return soonest

    def advance_to(self, t_s: float) -> None:
        """Run every channel up to pump time ``t_s`` (s), handling events on the way."""
        try:
            t_s = real(t_s, "t_s")
        except CommandRejected:
            raise InputError("t_s", repr(t_s), "must be a finite number of seconds") from None
        if abs(t_s) > MAX_TIME_S:
            raise InputError("t_s", t_s, "must be within 100 years of pump time")
        if t_s < self.t_s:
            raise InputError(
                "t_s", t_s, f"is before the pump's time {self.t_s} (time is monotonic)"
            )
        guard = 0
        while True:
            nxt = self.next_event_s()
            if nxt > t_s:
                self._integrate(t_s)
                return
            self._integrate(nxt)
            if not self._fire(nxt):
                guard += 1
                if guard > 1000:
                    raise RuntimeError(f"pump event loop made no progress at t={nxt}")
            else:
                guard = 0

    def _integrate(self, t: float) -> None:
        dt = t - self.t_s
        if dt <= 0:
            return
        if self.powered:
            self.battery.advance(dt, self.total_rate_ml_h)
        for ch in self.channels:
            ch.advance(t)
        self.t_s = t

    def _fire(self, t: float) -> bool:
        fired = False
        for ch in self.channels:
            fired = ch.fire(t) or fired
        for escalated in self.board.update(t):
            self._emit(
                t,
                Event.ALARM.value,
                {
                    "code": escalated.alarm.code,
                    "priority": "high",
                    "escalated": True,
                    "channel": escalated.channel,
                },
            )
            fired = True
        fired = self._battery_events(t) or fired
        if self.checkpoint_s is not None and t >= self._next_checkpoint - 1e-9:
            self._flush(force=True)
            fired = True
        elif t >= self._commit_by - EPS_T:
            self._flush(force=True)
        elif fired:
            self._flush()
        return fired

    def _battery_events(self, t: float) -> bool:
        if not self.powered or self.battery.on_mains:
            return False
        rate = self.total_rate_ml_h
        runtime = self.battery.runtime_s(rate)
        fired = False
        if runtime <= self.battery.low_runtime_s + 1e-6 and not self.board.condition(
            Alarm.BATTERY_LOW
        ):
            self.board.raise_(Alarm.BATTERY_LOW, t)
            self._emit(
                t,
                Event.ALARM.value,
                {
                    "code": Alarm.BATTERY_LOW.code,
                    "priority": Alarm.BATTERY_LOW.priority.value,
                    "runtime_s": runtime,
                },
            )
            fired = True
        if runtime <= self.battery.depleted_runtime_s + 1e-6 and not self.board.condition(
            Alarm.BATTERY_DEPLETED
        ):
            self.board.raise_(Alarm.BATTERY_DEPLETED, t)
            self._emit(
                t,
                Event.ALARM.value,
                {"code": Alarm.BATTERY_DEPLETED.code, "priority": "high", "runtime_s": runtime},
            )
            for ch in self.channels:
                ch.alarm(Alarm.BATTERY_DEPLETED, t)
            fired = True
        if self.battery.charge_mah <= 1e-9:
            self.powered = False
            self._emit(t, Event.POWER.value, {"state": "off", "reason": "battery empty"})
            for ch in self.channels:
                if ch.state is not State.IDLE and ch.state is not State.ALARM:
                    ch.alarm(Alarm.BATTERY_DEPLETED, t)
            fired = True
        return fired

    # ---- commands ------------------------------------------------------------------------

    def channel(self, index: int) -> Channel:
        if not (isinstance(index, int) and 0 <= index < len(self.channels)):
            raise InputError("channel", index, f"must be 0 to {len(self.channels) - 1}")
        return self.channels[index]

    def _command(
        self,
        name: str,
        index: int | None,
        args: dict[str, Any],
        action: Callable[[], Any],
        *,
        unpowered: bool = False,
    ) -> Any:
        """Journal the command, then apply it; a rejected command changes nothing."""
        if not self.powered and not unpowered:
            raise CommandRejected(name, "off", "the pump is powered off")
        if index is not None:
            self.channel(index)
        self.seq += 1
        record = Record(self.seq, self.t_s, "command", {"command": name, "channel": index, **args})
        self.records.append(record)
        if self.journal is not None:
            self.journal.command(record)
        try:
            result = action()
        except CommandRejected as exc:
            self._emit(
                self.t_s, "rejected", {"command": name, "channel": index, "reason": exc.message}
            )
            self._flush()
            raise
        self._flush(force=True)
        return result

    def program(
        self, index: int, plan: Plan, *, ders: dict[str, Any] | None = None, **info: Any
    ) -> None:
        """Load ``plan`` on channel ``index``. ``ders``: the program's DERS facts
        (:func:`openinfusion.pump.ders_log.ders_record`), reported with the ``programmed``
        event; a program entered after a DERS refusal on the channel is marked
        ``after_alert`` with the refused level (a reprogram)."""
        if ders is not None:
            ders = {**ders, "after_alert": self._alerted.get(index)}

        def load() -> None:
            self.channels[index].load(plan, self.t_s, ders)
            self._alerted.pop(index, None)

        self._command("program", index, {"plan": _plan_summary(plan), **info}, load)

    def ders_alert(self, index: int, record: dict[str, Any]) -> None:
        """Record a program DERS refused on channel ``index`` (it changes nothing on the
        channel): ``record`` from :func:`openinfusion.pump.ders_log.refusal_record`."""
        if not self.powered:
            raise CommandRejected("program", "off", "the pump is powered off")
        channel = self.channel(index)
        channel.emit(self.t_s, Event.DERS_ALERT.value, record)
        level = record.get("level")
        if isinstance(level, str):
            self._alerted[index] = level
        self._flush()

    def start(self, index: int) -> None:
        self._command("start", index, {}, lambda: self.channels[index].start(self.t_s))

    def pause(self, index: int) -> None:
        self._command("pause", index, {}, lambda: self.channels[index].pause(self.t_s))

    def resume(self, index: int) -> None:
        self._command("resume", index, {}, lambda: self.channels[index].resume(self.t_s))

    def stop(self, index: int) -> None:
        self._command("stop", index, {}, lambda: self.channels[index].stop(self.t_s))

    def standby(self, index: int) -> None:
        self._command("standby", index, {}, lambda: self.channels[index].standby(self.t_s))

    def titrate(self, index: int, rate_ml_h: float, **info: Any) -> None:
        self._command(
            "titrate",
            index,
            {"rate_ml_h": rate_ml_h, **info},
            lambda: self.channels[index].titrate(self.t_s, rate_ml_h),
        )

    def bolus(
        self,
        index: int,
        volume_ml: float,
        rate_ml_h: float,
        kind: OverlayKind = OverlayKind.BOLUS,
        **info: Any,
    ) -> None:
        self._command(
            "bolus",
            index,
            {"volume_ml": volume_ml, "rate_ml_h": rate_ml_h, "kind": kind.value, **info},
            lambda: self.channels[index].bolus(self.t_s, volume_ml, rate_ml_h, kind),
        )

    def secondary(self, index: int, volume_ml: float, rate_ml_h: float, **info: Any) -> None:
        self._command(
            "secondary",
            index,
            {"volume_ml": volume_ml, "rate_ml_h": rate_ml_h, **info},
            lambda: self.channels[index].replace_rate(
                self.t_s, OverlayKind.SECONDARY, rate_ml_h, volume_ml
            ),
        )

    def temp_rate(self, index: int, rate_ml_h: float, duration_s: float, **info: Any) -> None:
        duration_s = real(duration_s, "duration")
        if not 1.0 <= duration_s <= MAX_TIME_S:
            raise CommandRejected("duration", duration_s, "must be 1 s to 100 years")
        self._command(
            "temp_rate",
            index,
            {"rate_ml_h": rate_ml_h, "duration_s": duration_s, **info},
            lambda: self.channels[index].replace_rate(
                self.t_s, OverlayKind.TEMP_BASAL, rate_ml_h, until_s=self.t_s + duration_s
            ),
        )

    def demand(self, index: int) -> bool:
        return bool(
            self._command("demand", index, {}, lambda: self.channels[index].demand(self.t_s))
        )

    def acknowledge(self, index: int | None, alarm: Alarm) -> None:
        def act() -> None:
            if index is None:
                if self.board.acknowledge(alarm, None):
                    self._emit(self.t_s, Event.ALARM_ACKNOWLEDGED.value, {"code": alarm.code})
            else:
                self.channels[index].acknowledge(self.t_s, alarm)

        self._command("acknowledge", index, {"code": alarm.code}, act)

    def silence(self, index: int | None, alarm: Alarm) -> None:
        def act() -> None:
            if index is None:
                self.board.silence(alarm, self.t_s, None)
            else:
                self.channels[index].silence(self.t_s, alarm)

        self._command("silence", index, {"code": alarm.code}, act)

    def set_mains(self, on: bool) -> None:
        """Connect or disconnect mains. Mains powers a pump whose battery ran out back on;
        channels stopped by the empty battery come back PAUSED, never delivering by
        themselves, and the latched battery alarms wait for acknowledgement."""
        if not isinstance(on, bool):
            raise InputError("mains", on, "must be true or false")

        def act() -> None:
            if not on and not self.powered:
                raise CommandRejected("mains", "off", "the pump is powered off")
            self.battery.on_mains = on
            self._emit(self.t_s, Event.POWER.value, {"mains": on})
            if not on:
                return
            if not self.powered:
                self.powered = True
                self._emit(self.t_s, Event.POWER.value, {"state": "on", "reason": "mains"})
            for code in (Alarm.BATTERY_LOW, Alarm.BATTERY_DEPLETED):
                if self.board.is_active(code):
                    self.board.condition_cleared(code)
                    self._emit(self.t_s, Event.ALARM_CLEARED.value, {"code": code.code})
            for ch in self.channels:
                ch.clear_condition(Alarm.BATTERY_DEPLETED, self.t_s)

        self._command("mains", None, {"on": on}, act, unpowered=True)

    def clock_jump(self, offset_s: float, reason: str = "wall clock set") -> None:
        """The wall clock was stepped by ``offset_s`` (NTP, a user, daylight saving):
        journaled as a ``clock_jump`` event at the pump's monotonic time. Delivery, dose
        windows, lockouts and timers run on monotonic time and are unaffected (F-08)."""
        offset_s = real(offset_s, "offset_s")
        if self.clock is not None:
            self.clock.step(self.t_s, offset_s)

        def act() -> None:
            self._emit(self.t_s, Event.CLOCK_JUMP.value, {"offset_s": offset_s, "reason": reason})

        self._command("clock", None, {"offset_s": offset_s}, act, unpowered=True)

    def inject(self, index: int, fault: str, **args: Any) -> None:
        """Inject or clear a fault on a channel (scenarios and tests)."""
        ch = self.channel(index)
        actions: dict[str, Callable[[], Any]] = {
            "occlusion": lambda: ch.occlude(self.t_s),
            "clear_occlusion": lambda: ch.clear_occlusion(self.t_s),
            "air": lambda: ch.air(self.t_s, args.get("volume_ul", 300.0)),
            "clear_air": lambda: ch.clear_air(self.t_s),
            "disconnect": lambda: ch.disconnect(self.t_s),
            "reconnect": lambda: ch.reconnect(self.t_s),
            "upstream_occlusion": lambda: ch.upstream_occlusion(self.t_s, True),
            "clear_upstream_occlusion": lambda: ch.upstream_occlusion(self.t_s, False),
            "door_open": lambda: ch.set_door(self.t_s, True),
            "door_close": lambda: ch.set_door(self.t_s, False),
            "sensor_stuck": lambda: ch.sensor_stuck(self.t_s, True),
            "sensor_ok": lambda: ch.sensor_stuck(self.t_s, False),
        }
        if fault == "battery_drain":
            extra = real(args.get("extra_ma", 500.0), "extra_ma")
            if extra < 0:
                raise CommandRejected("extra_ma", extra, "must be >= 0 mA")

            def drain() -> None:
                self.battery.extra_drain_ma = extra
                self._emit(
                    self.t_s,
                    Event.FAULT_INJECTED.value,
                    {"fault": "battery_drain", "extra_ma": extra},
                )

            actions["battery_drain"] = drain
        if fault not in actions:
            raise InputError("fault", fault, f"must be one of {', '.join(sorted(actions))}")
        self._command("fault", index, {"fault": fault, **args}, actions[fault])

    def self_test(self, results: dict[str, Any]) -> None:
        """Record a periodic self-test's results for maintenance telemetry (for example
        ``drive_effort``: the drive's load index, 1.0 = a new drive at rated load).
        Delivery is untouched."""
        self._emit(self.t_s, Event.SELF_TEST.value, dict(results))
        self._flush()

    def confirm_recovery(self, index: int) -> None:
        """After a restart: the clinician checked patient and program (channel -> PAUSED)."""
        ch = self.channel(index)

        def act() -> None:
            ch.acknowledge(self.t_s, Alarm.CRASH_RECOVERED)
            ch.clear_condition(Alarm.CRASH_RECOVERED, self.t_s)

        self._command("confirm_recovery", index, {}, act)

    def status(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "t_s": self.t_s,
            "powered": self.powered,
            "battery_percent": self.battery.percent,
            "on_mains": self.battery.on_mains,
            "channels": [ch.status() for ch in self.channels],
            "alarms": [a.as_dict() for a in self.board.active()],
        }


def _plan_summary(plan: Plan) -> dict[str, Any]:
    return {
        "therapy": plan.therapy,
        "steps": len(plan.steps),
        "vtbi_ml": plan.vtbi_ml,
        "drug": plan.drug.name if plan.drug else None,
    }
