"""Alarm annunciation: active alarms, latching, temporary silence and escalation.

Rules (HOSPITAL_REFERENCE §3, "Alarm UX"; IEC 60601-1-8):

- an alarm is *active* while its condition lasts; a high-priority alarm *latches*: it
  stays until acknowledged even after its condition clears;
- audio can be silenced only temporarily (``SILENCE_S``, GIP: at most 2 min) and comes back
  by itself; no alarm can be disabled;
- a medium alarm left unacknowledged for ``ESCALATE_S`` escalates to high priority (and
  sounds again if it was silenced); high priority is never downgraded.

Times are monotonic seconds of the pump's clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from openinfusion.pump.codes import Alarm, Priority

SILENCE_S = 120.0
ESCALATE_S = 300.0


@dataclass(frozen=True, slots=True)
class Indicator:
    """IEC 60601-1-8 visual alarm signal: colour and flashing frequency range (Hz);
    ``flash_hz`` None means constant (not flashing)."""

    colour: str
    flash_hz: tuple[float, float] | None


# IEC 60601-1-8, visual alarm signal characteristics by priority (HOSPITAL_REFERENCE §3).
INDICATORS: dict[Priority, Indicator] = {
    Priority.HIGH: Indicator("red", (1.4, 2.8)),
    Priority.MEDIUM: Indicator("yellow", (0.4, 0.8)),
    Priority.LOW: Indicator("cyan", None),
}


@dataclass(slots=True)
class ActiveAlarm:
    alarm: Alarm
    channel: int | None
    raised_s: float
    priority: Priority
    condition: bool = True
    acknowledged: bool = False
    silenced_until_s: float | None = None

    @property
    def audible(self) -> bool:
        return self.silenced_until_s is None

    @property
    def indicator(self) -> Indicator:
        return INDICATORS[self.priority]

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.alarm.code,
            "priority": self.priority.value,
            "channel": self.channel,
            "raised_s": self.raised_s,
            "condition": self.condition,
            "acknowledged": self.acknowledged,
            "silenced": not self.audible,
        }


class AlarmBoard:
    """The alarms of one device (all channels)."""

    def __init__(self) -> None:
        self._active: dict[tuple[Alarm, int | None], ActiveAlarm] = {}

    def raise_(self, alarm: Alarm, t_s: float, channel: int | None = None) -> bool:
        """Raise ``alarm``; False if its condition was already present (no duplicate
        annunciation). A latched alarm whose condition comes back is a new occurrence: it
        is annunciated again (True) and sounds even if it had been silenced."""
        key = (alarm, channel)
        current = self._active.get(key)
        if current is not None:
            if current.condition:
                return False
            current.condition = True
            current.silenced_until_s = None
            return True
        self._active[key] = ActiveAlarm(alarm, channel, t_s, alarm.priority)
        return True

    def condition_cleared(self, alarm: Alarm, channel: int | None = None) -> bool:
        """The condition ended. Latching (high) alarms stay until acknowledged.

        Returns True when the alarm left the board.
        """
        key = (alarm, channel)
        current = self._active.get(key)
        if current is None:
            return False
        current.condition = False
        if current.priority is not Priority.HIGH or current.acknowledged:
            del self._active[key]
            return True
        return False

    def acknowledge(self, alarm: Alarm, channel: int | None = None) -> bool:
        """Clinician acknowledges: removed if its condition is over, else silenced for good
        only in the sense that it stops escalating (it stays on the board)."""
        key = (alarm, channel)
        current = self._active.get(key)
        if current is None:
            return False
        current.acknowledged = True
        if not current.condition:
            del self._active[key]
        return True

    def silence(self, alarm: Alarm, t_s: float, channel: int | None = None) -> bool:
        """Temporarily silence the audio of an active alarm (comes back after SILENCE_S)."""
        current = self._active.get((alarm, channel))
        if current is None:
            return False
        current.silenced_until_s = t_s + SILENCE_S
        return True

    def next_event_s(self) -> float:
        """Earliest silence expiry or escalation among active alarms."""
        soonest = math.inf
        for a in self._active.values():
            if a.silenced_until_s is not None:
                soonest = min(soonest, a.silenced_until_s)
            if a.priority is Priority.MEDIUM and not a.acknowledged:
                soonest = min(soonest, a.raised_s + ESCALATE_S)
        return soonest

    def update(self, t_s: float) -> list[ActiveAlarm]:
        """Apply silence expiries and escalations due at ``t_s``; returns the escalated."""
        escalated = []
        for a in self._active.values():
            if a.silenced_until_s is not None and a.silenced_until_s <= t_s:
                a.silenced_until_s = None
            if (
                a.priority is Priority.MEDIUM
                and not a.acknowledged
                and a.raised_s + ESCALATE_S <= t_s
            ):
                a.priority = Priority.HIGH
                a.silenced_until_s = None  # an escalated alarm sounds again at once
                escalated.append(a)
        return escalated

    def active(self, channel: int | None = None) -> list[ActiveAlarm]:
        alarms = [a for a in self._active.values() if channel is None or a.channel == channel]
        return sorted(alarms, key=lambda a: (-a.priority.rank, a.raised_s))

    def is_active(self, alarm: Alarm, channel: int | None = None) -> bool:
        return (alarm, channel) in self._active

    def condition(self, alarm: Alarm, channel: int | None = None) -> bool:
        """True while the alarm's condition lasts (a latched alarm whose condition ended
        is active but not present: the same condition coming back must be raised again)."""
        current = self._active.get((alarm, channel))
        return current is not None and current.condition

    def any_stopping(self, channel: int | None) -> bool:
        """True while a flow-stopping condition lasts on the channel (or the device)."""
        return any(
            a.condition and a.alarm.stops_flow and (a.channel == channel or a.channel is None)
            for a in self._active.values()
        )
