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
from openinfusion.pump.channel import Channel, ChannelSettings, CommandRejected, State
from openinfusion.pump.codes import Alarm, Event
from openinfusion.pump.mechanics import Mechanism
from openinfusion.pump.plan import OverlayKind, Plan

MAX_CHANNELS = 4


@dataclass(frozen=True, slots=True)
class Record:
    """One journal/event-log record: sequence number, pump time (s), kind and data."""

    seq: int
    t_s: float
    kind: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "t_s": self.t_s, "kind": self.kind, **self.data}


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
        self.listener = listener
        per_channel = list(settings) if settings else [ChannelSettings() for _ in mechanisms]
        self.channels = [
            Channel(i, m, self.board, self._emit, per_channel[i]) for i, m in enumerate(mechanisms)
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
        soonest = min((ch.next_event_s() for ch in self.channels), default=math.inf)
        soonest = min(soonest, self.board.next_event_s(), self._next_checkpoint)
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
        elif fired:
            self._flush()
        return fired

    def _battery_events(self, t: float) -> bool:
        if not self.powered or self.battery.on_mains:
            return False
        rate = self.total_rate_ml_h
        runtime = self.battery.runtime_s(rate)
        fired = False
        if runtime <= self.battery.low_runtime_s + 1e-6 and not self.board.is_active(
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
        if runtime <= self.battery.depleted_runtime_s + 1e-6 and not self.board.is_active(
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
        self, name: str, index: int | None, args: dict[str, Any], action: Callable[[], Any]
    ) -> Any:
        """Journal the command, then apply it; a rejected command changes nothing."""
        if not self.powered:
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

    def program(self, index: int, plan: Plan, **info: Any) -> None:
        self._command(
            "program",
            index,
            {"plan": _plan_summary(plan), **info},
            lambda: self.channels[index].load(plan, self.t_s),
        )

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
        def act() -> None:
            self.battery.on_mains = on
            self._emit(self.t_s, Event.POWER.value, {"mains": on})
            if on and self.board.is_active(Alarm.BATTERY_LOW):
                self.board.condition_cleared(Alarm.BATTERY_LOW)

        self._command("mains", None, {"on": on}, act)

    def inject(self, index: int, fault: str, **args: Any) -> None:
        """Inject or clear a fault on a channel (scenarios and tests)."""
        ch = self.channels[index]
        actions: dict[str, Callable[[], Any]] = {
            "occlusion": lambda: ch.occlude(self.t_s),
            "clear_occlusion": lambda: ch.clear_occlusion(self.t_s),
            "air": lambda: ch.air(self.t_s, float(args.get("volume_ul", 300.0))),
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
            extra = float(args.get("extra_ma", 500.0))

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
