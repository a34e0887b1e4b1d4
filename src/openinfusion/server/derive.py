"""Current state derived from stored envelopes: channels, infusions, alarms, command results.

Bodies are signed by the pump, but their content is still checked field by field: a value
of the wrong type is ignored (the envelope itself stays stored), never allowed to stop the
store. Channel state only moves forward: a status older than the one already applied (an
envelope filling a gap late) does not overwrite it.

The gateway stores many pumps' envelopes in one transaction, so derivation works on a
:class:`Derivation`: the channels and open infusions of every pump in the group are loaded
in one query each, every envelope is applied in seq order in memory (each status still
moves its channel and infusion exactly as it would alone), and the rows that changed are
written once at the end with one statement per table. Alarms and command results are rare
and are written as they come (SQL Core, no ORM on this path).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.sql.dml import UpdateBase

from openinfusion.server.models import Alarm, Channel, Command, Infusion

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
_POWER_KEYS = ("battery_percent", "on_mains", "powered", "power", "battery")

_channels = cast(Table, Channel.__table__)
_infusions = cast(Table, Infusion.__table__)
_alarms = cast(Table, Alarm.__table__)
_commands = cast(Table, Command.__table__)


# ------------------------------------------------------------------ statement execution

_Plan = tuple[str, tuple[str, ...], tuple[Callable[[Any], Any] | None, ...]]
_PLANS: dict[UpdateBase, _Plan] = {}  # keeps each statement alive: no reuse of its id


def executemany(conn: Connection, stmt: UpdateBase, rows: list[dict[str, Any]]) -> None:
    """Run ``stmt`` (a module-level constant with named bind parameters) once per row.

    On SQLite the statement is compiled once and the rows go straight to the driver's
    ``executemany`` as tuples: only the columns whose type converts values (times, JSON)
    are converted, and a time shared by every row (the group's ``now``) only once.
    Elsewhere SQLAlchemy's own executemany runs it.
    """
    if not rows:
        return
    dialect = conn.dialect
    if dialect.name != "sqlite":
        conn.execute(stmt, rows)
        return
    plan = _PLANS.get(stmt)
    if plan is None:
        compiled = stmt.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        procs: tuple[Callable[[Any], Any] | None, ...] = tuple(
            compiled.binds[n].type._cached_bind_processor(dialect) for n in names
        )
        plan = _PLANS[stmt] = (str(compiled), names, procs)
    sql, names, procs = plan
    converted = [(i, p) for i, p in enumerate(procs) if p is not None]
    memo: dict[tuple[int, datetime], Any] = {}
    params: list[tuple[Any, ...]] = []
    for row in rows:
        values = [row[n] for n in names]
        for i, proc in converted:
            v = values[i]
            if v is None:
                continue
            if isinstance(v, datetime):
                key = (i, v)
                done = memo.get(key)
                if done is None:
                    done = memo[key] = proc(v)
                values[i] = done
            else:
                values[i] = proc(v)
        params.append(tuple(values))
    conn.exec_driver_sql(sql, params)


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


@dataclass(slots=True)
class PumpState:
    """The pump row's derived columns, held for one group (written once at the end)."""

    id: str
    unit: str | None
    last_seq: int
    gaps: list[list[int]]
    library_version: str | None
    power: dict[str, Any] | None


@dataclass(slots=True, eq=False)
class InfusionState:
    """One infusion row; ``id`` is None until it is inserted at the end of the group."""

    pump_id: str
    channel: int
    drug: str | None
    started_at: datetime | None  # None: loaded, and never written again
    started_seq: int
    volume_at_start_ml: float = 0.0
    volume_infused_ml: float = 0.0
    dose: float | None = None
    dose_unit: str | None = None
    rate_ml_h: float | None = None
    dose_delivered: float | None = None
    dose_delivered_unit: str | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    id: int | None = None
    dirty: bool = False


# Columns of an infusion that change after it starts (volume, dose, end).
_INFUSION_CHANGES = (
    "dose",
    "dose_unit",
    "rate_ml_h",
    "volume_infused_ml",
    "dose_delivered",
    "dose_delivered_unit",
    "ended_at",
    "end_reason",
)
_INFUSION_COLUMNS = tuple(f.name for f in fields(InfusionState) if f.name not in ("id", "dirty"))
# What is loaded of an open infusion: everything it may still change, and what that depends
# on (its drug and the counter at its start); not its start, which is never written again.
_INFUSION_LOADED = ("drug", "volume_at_start_ml", *_INFUSION_CHANGES)
_UPDATE_INFUSION = (
    update(_infusions)
    .where(_infusions.c.id == bindparam("w_id"))
    .values({c: bindparam(f"v_{c}") for c in _INFUSION_CHANGES})
)


@dataclass(slots=True, eq=False)
class ChannelState:
    """One channel row; ``infusion`` is its open infusion (loaded or started here)."""

    pump_id: str
    channel: int
    updated_at: datetime | None  # None: loaded, unchanged
    updated_seq: int = 0
    state: str = "idle"
    drug: str | None = None
    dose: float | None = None
    dose_unit: str | None = None
    rate_ml_h: float | None = None
    volume_infused_ml: float | None = None
    vtbi_remaining_ml: float | None = None
    time_remaining_min: float | None = None
    infusion: InfusionState | None = None
    new: bool = False
    dirty: bool = False  # a status moved it (every column is written)
    relinked: bool = False  # only its infusion changed (an ending event)


_CHANNEL_VALUES = (
    "state",
    "drug",
    "dose",
    "dose_unit",
    "rate_ml_h",
    "volume_infused_ml",
    "vtbi_remaining_ml",
    "time_remaining_min",
    "updated_at",
    "updated_seq",
)
_CHANNEL_LOADED = tuple(c for c in _CHANNEL_VALUES if c != "updated_at")
_UPDATE_CHANNEL = (
    update(_channels)
    .where(
        _channels.c.pump_id == bindparam("w_pump"), _channels.c.channel == bindparam("w_channel")
    )
    .values({c: bindparam(f"v_{c}") for c in (*_CHANNEL_VALUES, "infusion_id")})
)
# A channel and its open infusion in one row (the infusion's id is repeated to tell a
# missing infusion row from none).
_LOAD_CHANNELS = (
    select(
        *(_channels.c[c] for c in ("pump_id", "channel", "infusion_id", *_CHANNEL_LOADED)),
        *(_infusions.c[c] for c in ("id", *_INFUSION_LOADED)),
    )
    .select_from(_channels.outerjoin(_infusions, _channels.c.infusion_id == _infusions.c.id))
    .where(_channels.c.pump_id.in_(bindparam("ids", expanding=True)))
)
_SPLIT = 3 + len(_CHANNEL_LOADED)
_LINK_CHANNEL = (
    update(_channels)
    .where(
        _channels.c.pump_id == bindparam("w_pump"), _channels.c.channel == bindparam("w_channel")
    )
    .values(infusion_id=bindparam("v_infusion_id"))
)


@dataclass
class Derivation:
    """Derived state of the pumps of one commit group, applied in memory, written once."""

    conn: Connection
    channels: dict[tuple[str, int], ChannelState] = field(default_factory=dict)
    # every infusion loaded or started in the group (one ended here is no longer reachable
    # from its channel, and must still be written)
    infusions: list[InfusionState] = field(default_factory=list)

    def load(self, pump_ids: Iterable[str]) -> None:
        """Load the channels of ``pump_ids`` with their open infusions (one query)."""
        ids = list(pump_ids)
        if not ids:
            return
        infusions: dict[int, InfusionState] = {}
        for r in self.conn.execute(_LOAD_CHANNELS, {"ids": ids}):
            values = tuple(r)
            pump_id, number, infusion_id = values[:3]
            ch = ChannelState(
                pump_id=pump_id,
                channel=number,
                updated_at=None,
                **dict(zip(_CHANNEL_LOADED, values[3:_SPLIT], strict=True)),
            )
            if infusion_id is not None and values[_SPLIT] is not None:
                inf = InfusionState(
                    id=infusion_id,
                    pump_id=pump_id,
                    channel=number,
                    started_at=None,
                    started_seq=0,
                    **dict(zip(_INFUSION_LOADED, values[_SPLIT + 1 :], strict=True)),
                )
                infusions[infusion_id] = ch.infusion = inf
            self.channels[(pump_id, number)] = ch
        self.infusions.extend(infusions.values())

    def apply(
        self, pump: PumpState, kind: str, seq: int, body: dict[str, Any], now: datetime
    ) -> list[dict[str, Any]]:
        """Update derived state for one newly stored envelope; returns events to publish."""
        if kind == "status":
            self._status(pump, seq, body, now)
            return []  # the gateway publishes one pump update per batch instead
        if kind == "event":
            return self._event(pump, seq, body, now)
        if kind == "alarm":
            return _apply_alarm(self.conn, pump, seq, body, now)
        if kind == "command_result":
            return _apply_command_result(self.conn, pump, seq, body, now)
        return []

    # ------------------------------------------------------------------------- status

    def _status(self, pump: PumpState, seq: int, body: dict[str, Any], now: datetime) -> None:
        library = body.get("library")
        version = _text(body.get("library_version"), 64) or (
            _text(library.get("version"), 64) if isinstance(library, dict) else None
        )
        if version:
            pump.library_version = version
        power: dict[str, Any] = {
            k: body[k]
            for k in _POWER_KEYS
            if k in body and isinstance(body[k], int | float | str | bool | dict)
        }
        if power:
            pump.power = power
        for item in _channel_items(body):
            number = _int(item.get("channel", item.get("index")))
            if number is None or number < 1:
                continue
            ch = self.channels.get((pump.id, number))
            if ch is None:
                ch = ChannelState(pump_id=pump.id, channel=number, updated_at=now, new=True)
                self.channels[(pump.id, number)] = ch
            elif ch.updated_seq > seq:
                continue
            _update_channel(ch, item, seq, now, self.infusions)

    # -------------------------------------------------------------------------- event

    def _event(
        self, pump: PumpState, seq: int, body: dict[str, Any], now: datetime
    ) -> list[dict[str, Any]]:
        """A pump journal record (``kind`` from openinfusion.pump.codes.Event)."""
        kind = _text(body.get("kind", body.get("event")), 64) or "event"
        number = _event_channel(body)
        if number is not None and kind in ENDING_EVENTS:
            ch = self.channels.get((pump.id, number))
            if ch is not None and ch.infusion is not None:
                _close(ch.infusion, now, kind)
                ch.infusion, ch.relinked = None, True
        if kind == "library_activated":
            pump.library_version = _text(body.get("version"), 64) or pump.library_version
        return [
            {"type": "pump_event", "pump_id": pump.id, "channel": number, "kind": kind, "seq": seq}
        ]

    # -------------------------------------------------------------------------- write

    def write(self) -> None:
        """Write every changed channel and infusion: new infusions first (the channels
        refer to them), then one executemany per table and kind of change."""
        changed = []
        for inf in self.infusions:
            if inf.id is None:
                values = {c: getattr(inf, c) for c in _INFUSION_COLUMNS}
                inf.id = self.conn.execute(
                    insert(_infusions).returning(_infusions.c.id), values
                ).scalar_one()
            elif inf.dirty:
                row = {f"v_{c}": getattr(inf, c) for c in _INFUSION_CHANGES}
                row["w_id"] = inf.id
                changed.append(row)
            inf.dirty = False
        executemany(self.conn, _UPDATE_INFUSION, changed)
        new_rows, updates, links = [], [], []
        for ch in self.channels.values():
            infusion_id = ch.infusion.id if ch.infusion is not None else None
            if ch.new:
                values = {c: getattr(ch, c) for c in _CHANNEL_VALUES}
                new_rows.append(
                    {"pump_id": ch.pump_id, "channel": ch.channel, "infusion_id": infusion_id}
                    | values
                )
            elif ch.dirty:
                row = {f"v_{c}": getattr(ch, c) for c in _CHANNEL_VALUES}
                row |= {"v_infusion_id": infusion_id, "w_pump": ch.pump_id, "w_channel": ch.channel}
                updates.append(row)
            elif ch.relinked:
                links.append(
                    {"v_infusion_id": infusion_id, "w_pump": ch.pump_id, "w_channel": ch.channel}
                )
            ch.new = ch.dirty = ch.relinked = False
        if new_rows:
            self.conn.execute(insert(_channels), new_rows)
        executemany(self.conn, _UPDATE_CHANNEL, updates)
        executemany(self.conn, _LINK_CHANNEL, links)


def _update_channel(
    ch: ChannelState,
    item: dict[str, Any],
    seq: int,
    now: datetime,
    started: list[InfusionState],
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
    ch.updated_at, ch.updated_seq, ch.dirty = now, seq, True
    current = ch.infusion
    if ch.state in IN_PROGRESS:
        if current is not None and current.drug != ch.drug:
            _close(current, now, "drug changed")
            current = None
        if current is None:
            current = InfusionState(
                pump_id=ch.pump_id,
                channel=ch.channel,
                drug=ch.drug,
                # the pump's counter runs over the channel's life: what it showed before
                # this infusion began is not this infusion's volume
                volume_at_start_ml=before_ml or 0.0,
                started_at=now,
                started_seq=seq,
            )
            ch.infusion = current
            started.append(current)
        current.dose, current.dose_unit, current.rate_ml_h = ch.dose, ch.dose_unit, ch.rate_ml_h
        if volume is not None:
            current.volume_infused_ml = max(0.0, volume - current.volume_at_start_ml)
        delivered = _num(item.get("dose_delivered"))
        if delivered is not None:
            current.dose_delivered = delivered
            current.dose_delivered_unit = _text(item.get("dose_delivered_unit"), 32)
        current.dirty = True
    elif current is not None:
        if volume is not None:
            current.volume_infused_ml = max(0.0, volume - current.volume_at_start_ml)
        _close(current, now, ch.state)
        ch.infusion = None


def _close(infusion: InfusionState, now: datetime, reason: str) -> None:
    infusion.dirty = True
    if infusion.ended_at is None:
        infusion.ended_at, infusion.end_reason = now, reason[:40]


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
    conn: Connection, pump: PumpState, seq: int, body: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    code = _text(body.get("code"), 64)
    if code is None:
        return []
    state = _text(body.get("state", body.get("action")), 16) or "raised"
    number = _int(body.get("channel"))
    open_alarm = conn.execute(
        select(_alarms.c.id, _alarms.c.acknowledged_at)
        .where(
            _alarms.c.pump_id == pump.id,
            _alarms.c.code == code,
            _alarms.c.channel.is_(None) if number is None else _alarms.c.channel == number,
            _alarms.c.cleared_at.is_(None),
        )
        .order_by(_alarms.c.id)
        .limit(1)
    ).first()
    if state == "cleared":
        if open_alarm is None:
            return []
        conn.execute(
            update(_alarms)
            .where(_alarms.c.id == open_alarm.id)
            .values(cleared_at=now, cleared_seq=seq)
        )
        return [{"type": "alarm_cleared", "pump_id": pump.id, "alarm_id": open_alarm.id}]
    if state == "acknowledged" and open_alarm is not None:
        if open_alarm.acknowledged_at is None:
            conn.execute(
                update(_alarms)
                .where(_alarms.c.id == open_alarm.id)
                .values(acknowledged_at=now, acknowledged_by="bedside")
            )
        return [{"type": "alarm_acknowledged", "pump_id": pump.id, "alarm_id": open_alarm.id}]
    if state != "raised" or open_alarm is not None:
        return []
    priority = _text(body.get("priority"), 16) or "unknown"
    alarm_id = conn.execute(
        insert(_alarms).returning(_alarms.c.id),
        {
            "pump_id": pump.id,
            "channel": number,
            "code": code,
            "priority": priority,
            "message": _text(body.get("message"), 500),
            "raised_at": now,
            "raised_seq": seq,
        },
    ).scalar_one()
    return [
        {
            "type": "alarm_raised",
            "pump_id": pump.id,
            "alarm_id": alarm_id,
            "priority": priority,
            "code": code,
        }
    ]


def _apply_command_result(
    conn: Connection, pump: PumpState, seq: int, body: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    command_id = _text(body.get("command_id"), 36)
    outcome = OUTCOME_STATUS.get(_text(body.get("outcome", body.get("status")), 32) or "")
    if command_id is None or outcome is None:
        return []
    row = conn.execute(
        select(_commands.c.pump_id, _commands.c.result_seq).where(_commands.c.id == command_id)
    ).first()
    if row is None or row.pump_id != pump.id or row.result_seq is not None:
        return []
    conn.execute(
        update(_commands)
        .where(_commands.c.id == command_id)
        .values(
            status=outcome, result_at=now, result_seq=seq, reason=_text(body.get("reason"), 500)
        )
    )
    return [
        {"type": "command_result", "pump_id": pump.id, "command_id": command_id, "status": outcome}
    ]
