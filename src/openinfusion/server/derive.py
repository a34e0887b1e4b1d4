"""Current state derived from stored envelopes: channels, infusions, alarms, command results.

Bodies are signed by the pump, but their content is still checked field by field: a value
of the wrong type is ignored (the envelope itself stays stored), never allowed to stop the
store. Channel state only moves forward: a status older than the one already applied (an
envelope filling a gap late) does not overwrite it.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from openinfusion.server.models import Alarm, Channel, Command, Infusion, Pump

# Channel states of the pump engine (openinfusion.pump.channel.State) during which an
# infusion is under way; "infusing" is accepted as a synonym of "running".
ENDING_EVENTS = frozenset({"stopped", "complete", "infusion_stopped", "infusion_completed"})
IN_PROGRESS = frozenset({"running", "infusing", "bolus", "paused", "kvo", "alarm", "delayed"})
OUTCOME_STATUS = {
    "accepted": "accepted",
    "rejected": "rejected",
    "awaiting_confirmation": "pre-populated",
    "pre-populated": "pre-populated",
}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: Any, limit: int = 80) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 100:
        return None
    return value


def _channel_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    channels = body.get("channels")
    if isinstance(channels, dict):
        channels = [
            dict(v, channel=int(k))
            for k, v in channels.items()
            if isinstance(v, dict) and str(k).isascii() and str(k).isdigit()
        ]
    if not isinstance(channels, list):
        return []
    return [c for c in channels if isinstance(c, dict)]


class Held:
    """Rows touched in one batch, held strongly: the session's identity map holds rows only
    weakly, so without this each status would load its channel and infusion again."""

    def __init__(self) -> None:
        self.rows: dict[tuple[type, object], object] = {}

    def get(self, session: Session, model: type[Any], key: object) -> Any:
        row = self.rows.get((model, key))
        if row is None:
            row = session.get(model, key)
            if row is not None:
                self.rows[(model, key)] = row
        return row

    def keep(self, model: type[Any], key: object, row: object) -> None:
        self.rows[(model, key)] = row


def apply_envelope(
    session: Session,
    pump: Pump,
    kind: str,
    seq: int,
    body: dict[str, Any],
    now: datetime,
    held: Held | None = None,
) -> list[dict[str, Any]]:
    """Update derived state for one newly stored envelope; returns events to publish."""
    if kind == "status":
        return _apply_status(session, pump, seq, body, now, held or Held())
    if kind == "event":
        return _apply_event(session, pump, seq, body, now)
    if kind == "alarm":
        return _apply_alarm(session, pump, seq, body, now)
    if kind == "command_result":
        return _apply_command_result(session, pump, seq, body, now)
    return []


def _apply_status(
    session: Session, pump: Pump, seq: int, body: dict[str, Any], now: datetime, held: Held
) -> list[dict[str, Any]]:
    library = body.get("library")
    version = _text(body.get("library_version"), 64) or (
        _text(library.get("version"), 64) if isinstance(library, dict) else None
    )
    if version:
        pump.library_version = version
    power: dict[str, Any] = {
        k: body[k]
        for k in ("battery_percent", "on_mains", "powered", "power", "battery")
        if k in body and isinstance(body[k], int | float | str | bool | dict)
    }
    if power:
        pump.power = power
    for item in _channel_items(body):
        number = _int(item.get("channel", item.get("index")))
        if number is None or number < 1:
            continue
        ch = held.get(session, Channel, (pump.id, number))
        if ch is None:
            ch = Channel(
                pump_id=pump.id, channel=number, state="idle", updated_at=now, updated_seq=0
            )
            session.add(ch)
            held.keep(Channel, (pump.id, number), ch)
        elif ch.updated_seq > seq:
            continue
        _update_channel(session, pump, ch, item, seq, now, held)
    return []  # the gateway publishes one pump update per batch instead


def _update_channel(
    session: Session,
    pump: Pump,
    ch: Channel,
    item: dict[str, Any],
    seq: int,
    now: datetime,
    held: Held,
) -> None:
    before_ml = ch.volume_infused_ml  # the channel's counter at the previous status
    ch.state = _text(item.get("state"), 32) or ch.state
    ch.drug = _text(item.get("drug"))
    ch.dose = _num(item.get("dose"))
    ch.dose_unit = _text(item.get("dose_unit"), 32)
    ch.rate_ml_h = _num(item.get("rate_ml_h"))
    volume = _num(item.get("volume_infused_ml"))
    if volume is None:
        volume = _num(item.get("patient_ml"))
    ch.volume_infused_ml = volume
    ch.vtbi_remaining_ml = _num(item.get("vtbi_remaining_ml"))
    ch.time_remaining_min = _num(item.get("time_remaining_min"))
    ch.updated_at, ch.updated_seq = now, seq
    current = held.get(session, Infusion, ch.infusion_id) if ch.infusion_id else None
    if ch.state in IN_PROGRESS:
        if current is not None and current.drug != ch.drug:
            _close(current, now, "drug changed")
            current = None
        if current is None:
            current = Infusion(
                pump_id=pump.id,
                channel=ch.channel,
                drug=ch.drug,
                volume_infused_ml=0.0,
                # the pump's counter runs over the channel's life: what it showed before
                # this infusion began is not this infusion's volume
                volume_at_start_ml=before_ml or 0.0,
                started_at=now,
                started_seq=seq,
            )
            session.add(current)
            session.flush()
            held.keep(Infusion, current.id, current)
            ch.infusion_id = current.id
        current.dose, current.dose_unit, current.rate_ml_h = ch.dose, ch.dose_unit, ch.rate_ml_h
        if volume is not None:
            current.volume_infused_ml = max(0.0, volume - current.volume_at_start_ml)
        delivered = _num(item.get("dose_delivered"))
        if delivered is not None:
            current.dose_delivered = delivered
            current.dose_delivered_unit = _text(item.get("dose_delivered_unit"), 32)
    elif current is not None:
        if volume is not None:
            current.volume_infused_ml = max(0.0, volume - current.volume_at_start_ml)
        _close(current, now, ch.state)
        ch.infusion_id = None


def _close(infusion: Infusion, now: datetime, reason: str) -> None:
    if infusion.ended_at is None:
        infusion.ended_at, infusion.end_reason = now, reason[:40]


def _apply_event(
    session: Session, pump: Pump, seq: int, body: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    """A pump journal record (``kind`` from openinfusion.pump.codes.Event)."""
    kind = _text(body.get("kind", body.get("event")), 64) or "event"
    number = _event_channel(body)
    if number is not None and kind in ENDING_EVENTS:
        ch = session.get(Channel, (pump.id, number))
        if ch is not None and ch.infusion_id is not None:
            current = session.get(Infusion, ch.infusion_id)
            if current is not None:
                _close(current, now, kind)
            ch.infusion_id = None
    if kind == "library_activated":
        pump.library_version = _text(body.get("version"), 64) or pump.library_version
    return [{"type": "pump_event", "pump_id": pump.id, "channel": number, "kind": kind, "seq": seq}]


def _event_channel(body: dict[str, Any]) -> int | None:
    """Channel number (from 1) of an event: ``channel`` in the body, or the journal
    record's 0-based ``data.channel``."""
    number = _int(body.get("channel"))
    if number is not None:
        return number
    data = body.get("data")
    index = _int(data.get("channel")) if isinstance(data, dict) else None
    return index + 1 if index is not None else None


def _apply_alarm(
    session: Session, pump: Pump, seq: int, body: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    code = _text(body.get("code"), 64)
    if code is None:
        return []
    state = _text(body.get("state", body.get("action")), 16) or "raised"
    number = _int(body.get("channel"))
    open_alarm = session.scalars(
        select(Alarm).where(
            Alarm.pump_id == pump.id,
            Alarm.code == code,
            Alarm.channel.is_(None) if number is None else Alarm.channel == number,
            Alarm.cleared_at.is_(None),
        )
    ).first()
    if state == "cleared":
        if open_alarm is None:
            return []
        open_alarm.cleared_at, open_alarm.cleared_seq = now, seq
        return [{"type": "alarm_cleared", "pump_id": pump.id, "alarm_id": open_alarm.id}]
    if state == "acknowledged" and open_alarm is not None:
        if open_alarm.acknowledged_at is None:
            open_alarm.acknowledged_at, open_alarm.acknowledged_by = now, "bedside"
        return [{"type": "alarm_acknowledged", "pump_id": pump.id, "alarm_id": open_alarm.id}]
    if state != "raised" or open_alarm is not None:
        return []
    alarm = Alarm(
        pump_id=pump.id,
        channel=number,
        code=code,
        priority=_text(body.get("priority"), 16) or "unknown",
        message=_text(body.get("message"), 500),
        raised_at=now,
        raised_seq=seq,
    )
    session.add(alarm)
    session.flush()
    return [
        {
            "type": "alarm_raised",
            "pump_id": pump.id,
            "alarm_id": alarm.id,
            "priority": alarm.priority,
            "code": code,
        }
    ]


def _apply_command_result(
    session: Session, pump: Pump, seq: int, body: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    command_id = _text(body.get("command_id"), 36)
    outcome = OUTCOME_STATUS.get(_text(body.get("outcome", body.get("status")), 32) or "")
    if command_id is None or outcome is None:
        return []
    command = session.get(Command, command_id)
    if command is None or command.pump_id != pump.id or command.result_seq is not None:
        return []
    command.status, command.result_at, command.result_seq = outcome, now, seq
    command.reason = _text(body.get("reason"), 500)
    return [
        {"type": "command_result", "pump_id": pump.id, "command_id": command_id, "status": outcome}
    ]
