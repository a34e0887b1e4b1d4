"""Alarm annunciation: active alarms, latching, temporary silence and escalation.

Rules (HOSPITAL_REFERENCE §3, "Alarm UX"; IEC 60601-1-8):

- an alarm is *active* while its condition lasts; a high-priority alarm *latches*: it
  stays until acknowledged even after its condition clears;
- audio can be silenced only temporarily (``SILENCE_S``, GIP: at most 2 min) and comes back
  by itself; no alarm can be disabled;
- a medium alarm left unacknowledged for ``ESCALATE_S`` escalates to high priority; high
  priority is never downgraded.

Times are monotonic seconds of the pump's clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from openinfusion.pump.codes import Alarm, Priority

SILENCE_S = 120.0
ESCALATE_S = 300.0


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
        """Raise ``alarm``; False if it was already active (no duplicate annunciation)."""
        key = (alarm, channel)
        current = self._active.get(key)
        if current is not None:
            current.condition = True
            return False
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
                escalated.append(a)
        return escalated

    def active(self, channel: int | None = None) -> list[ActiveAlarm]:
        alarms = [a for a in self._active.values() if channel is None or a.channel == channel]
        return sorted(alarms, key=lambda a: (-a.priority.rank, a.raised_s))

    def is_active(self, alarm: Alarm, channel: int | None = None) -> bool:
        return (alarm, channel) in self._active

    def any_stopping(self, channel: int | None) -> bool:
        """True while a flow-stopping condition lasts on the channel (or the device)."""
        return any(
            a.condition and a.alarm.stops_flow and (a.channel == channel or a.channel is None)
            for a in self._active.values()
        )
