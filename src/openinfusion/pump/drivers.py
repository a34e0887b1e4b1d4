"""Drivers: the boundary between the engine's decisions and a mechanism that moves fluid.

The engine decides rates; a driver makes a mechanism run them and reports back what the
mechanism measured (an encoder or step counter). The simulated driver stands in for real
hardware; a serial driver implements the same protocol. Following the practice of mature
closed-loop projects, a command has three outcomes, and *uncertain* (sent, not known to have
arrived) is never treated as success or failure: the monitor keeps checking the counter.

:class:`DriverMonitor` cross-checks the driver's counter against the engine's own account
(RELIABILITY F-17: "motor encoder missing steps"; dose never depends on one unverified
source). A disagreement beyond tolerance raises ``motor_fault`` (high, stops flow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from openinfusion.pump.codes import Alarm
from openinfusion.pump.device import Device


class Outcome(StrEnum):
    CONFIRMED = "confirmed"
    UNCERTAIN = "uncertain"
    FAILED = "failed"


class Driver(Protocol):
    """What the engine needs from a mechanism (simulated or real)."""

    def command_rate(self, channel: int, rate_ml_h: float, t_s: float) -> Outcome: ...

    def counter_ml(self, channel: int, t_s: float) -> float: ...


@dataclass(slots=True)
class SimulatedDriver:
    """A mechanism model: runs commanded rates exactly, unless told to slip or drop.

    ``slip``: fraction of commanded steps that never happen (a worn drive or a missing-step
    encoder fault); ``drop_every``: every n-th command is lost in transit (UNCERTAIN).
    """

    channels: int = 1
    slip: float = 0.0
    drop_every: int = 0
    _rate: list[float] = field(default_factory=list)
    _counter: list[float] = field(default_factory=list)
    _t: list[float] = field(default_factory=list)
    _sent: int = 0

    def __post_init__(self) -> None:
        self._rate = [0.0] * self.channels
        self._counter = [0.0] * self.channels
        self._t = [0.0] * self.channels

    def _run_to(self, channel: int, t_s: float) -> None:
        dt = max(0.0, t_s - self._t[channel])
        self._counter[channel] += self._rate[channel] * dt / 3600.0 * (1.0 - self.slip)
        self._t[channel] = max(self._t[channel], t_s)

    def command_rate(self, channel: int, rate_ml_h: float, t_s: float) -> Outcome:
        self._run_to(channel, t_s)
        self._sent += 1
        if self.drop_every and self._sent % self.drop_every == 0:
            return Outcome.UNCERTAIN
        self._rate[channel] = rate_ml_h
        return Outcome.CONFIRMED

    def counter_ml(self, channel: int, t_s: float) -> float:
        self._run_to(channel, t_s)
        return self._counter[channel]


@dataclass(slots=True)
class DriverMonitor:
    """Keeps a driver in step with a device and checks its counter against the engine.

    Call :meth:`sync` after every ``advance_to`` or command: it sends changed rates, resends
    uncertain ones, and compares counters. Tolerance: the larger of ``abs_ml`` and ``rel`` of
    the engine's displacement since the channel started.
    """

    device: Device
    driver: Driver
    abs_ml: float = 0.05
    rel: float = 0.05
    _sent: dict[int, float] = field(default_factory=dict)
    uncertain: int = 0

    def sync(self) -> None:
        t = self.device.t_s
        for ch in self.device.channels:
            rate = ch.rate_ml_h
            if self._sent.get(ch.index) != rate:
                outcome = self.driver.command_rate(ch.index, rate, t)
                if outcome is Outcome.CONFIRMED:
                    self._sent[ch.index] = rate
                else:
                    self.uncertain += 1  # not recorded as sent: retried on the next sync
            measured = self.driver.counter_ml(ch.index, t)
            expected = ch.ideal_ml
            if abs(measured - expected) > max(self.abs_ml, self.rel * expected) and (
                not self.device.board.is_active(Alarm.MOTOR_FAULT, ch.index)
            ):
                ch.alarm(Alarm.MOTOR_FAULT, t, expected_ml=expected, measured_ml=measured)
                self.device._flush()
