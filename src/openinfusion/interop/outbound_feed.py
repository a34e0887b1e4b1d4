"""The forwarder: stored pump facts become PCD-01 / PCD-04 messages in the durable outbox.

It reads ``pump_messages`` by id after its cursor (the envelopes exactly as the pumps signed
them, in the order they were stored), builds :class:`ChannelObservation` and
:class:`AlarmReport` records (patient from the channel's open association, placer order id
from the order running on the channel), builds the messages with the IHE PCD builders, and
inserts them into ``hl7_outbox`` in the same transaction that moves the cursor. A crash at
any moment either keeps both or neither: no fact is lost, none is sent twice under two
control ids.

What produces a message:

- ``event`` envelopes of infusion life (started, paused, resumed, stopped, complete,
  programmed, titrated, boluses, ...): one ORU^R01 at once, the channel as last reported;
- ``status`` envelopes: an ORU^R01 at once when a channel's state, drug, dose or rate
  changed since the last message for it; otherwise at most one per channel per
  ``status_interval_s`` (by the server's receive time), so a large fleet does not flood the
  EHR;
- ``alarm`` envelopes raised, cleared or acknowledged at the bedside: one ORU^R40 at once,
  for the alarm row the gateway derived from the same envelope.

Control ids (MSH-10) are derived from the source (``OI`` + the envelope's row id in base 36 +
the message's index within it + the destination's index): the same fact always gets the same
id, and a second forwarder racing on the same rows fails on the unique control id instead of
queueing a copy.

On PostgreSQL, ids are handed out at insert but rows become visible at commit, so a lower
id can appear after a higher one: the forwarder stops before a missing id and passes it only
after ``gap_wait_s`` (a rolled-back insert leaves a permanent hole). SQLite writers are
serialised and take ``max(rowid) + 1``, so ids there are visible in order.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openinfusion.interop.outbound_tables import OutboundCursor, OutboxMessage
from openinfusion.interop.records import AlarmReport, ChannelObservation, PatientRef
from openinfusion.server.context import ServerContext
from openinfusion.server.models import Alarm, Association, Channel, Patient, Pump, PumpMessage

log = logging.getLogger(__name__)

CURSOR = "pump_messages"
ACK_CURSOR = "alarm_acks"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _to_us(moment: datetime) -> int:
    """Microseconds since the epoch (an exact integer cursor position)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True, slots=True)
class _PumpRow:
    pump_id: str


def _build_r40(report: AlarmReport, control_id: str, now: datetime) -> str:
    from openinfusion.interop.hl7.pcd04 import build_oru_r40

    return build_oru_r40(report, control_id=control_id, now=now)


# Pump journal events (openinfusion.pump.codes.Event) that change what the chart shows,
# with the channel state they leave behind (None: the state last reported stands).
REPORTED_EVENTS: dict[str, str | None] = {
    "programmed": None,
    "started": "running",
    "paused": "paused",
    "resumed": "running",
    "stopped": "stopped",
    "standby": "standby",
    "complete": "completed",
    "kvo_started": "kvo",
    "titrated": None,
    "step_started": None,
    "delay_started": "delayed",
    "bolus_started": None,
    "bolus_complete": None,
    "bolus_cancelled": None,
    "secondary_started": None,
    "secondary_complete": None,
    "infusion_started": "running",
    "infusion_stopped": "stopped",
    "infusion_completed": "completed",
}
ALARM_STATES = {"raised": "active", "cleared": "cleared", "acknowledged": "acknowledged"}
PRIORITIES = frozenset({"high", "medium", "low"})


@dataclass(frozen=True, slots=True)
class FeedPolicy:
    """``status_interval_s``: at most one unchanged status per channel this often;
    ``batch``: envelopes read per transaction; ``gap_wait_s``: how long a missing id is
    waited for (PostgreSQL); ``ack_settle_s``: how old a dashboard acknowledgement must be
    before it is read (see :meth:`Forwarder.forward_acks`)."""

    status_interval_s: float = 60.0
    batch: int = 500
    gap_wait_s: float = 10.0
    ack_settle_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Built:
    """One message ready for the outbox (for every destination)."""

    message_type: str
    source: str
    index: int  # within its envelope, for the control id
    make: Callable[[str], str]  # control id -> message text


def _b36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def control_id_for(row_id: int, index: int, destination_index: int) -> str:
    """MSH-10 of the ``index``-th message of envelope row ``row_id`` for one destination
    (at most 18 characters: HL7 v2.5 caps MSH-10 at 20)."""
    return f"OI{_b36(row_id)}-{index:x}{destination_index:x}"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: Any, limit: int = 80) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _channel_number(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 100:
        return None
    return value


def _status_channels(body: dict[str, Any]) -> list[dict[str, Any]]:
    channels = body.get("channels")
    if isinstance(channels, dict):
        channels = [
            dict(v, channel=int(k))
            for k, v in channels.items()
            if isinstance(v, dict) and str(k).isascii() and str(k).isdigit()
        ]
    return [c for c in channels if isinstance(c, dict)] if isinstance(channels, list) else []


def _signature(item: dict[str, Any]) -> tuple[Any, ...]:
    """What makes a channel report news: state, drug, dose, dose unit, rate."""
    return (
        _text(item.get("state"), 32) or "unknown",
        _text(item.get("drug")),
        _num(item.get("dose")),
        _text(item.get("dose_unit"), 32),
        _num(item.get("rate_ml_h")),
    )


def _event_channel(body: dict[str, Any]) -> int | None:
    number = _channel_number(body.get("channel"))
    if number is not None:
        return number
    data = body.get("data")
    index = data.get("channel") if isinstance(data, dict) else None
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < 99:
        return index + 1
    return None


class _CursorMoved(Exception):
    """The cursor was moved by another process since this batch was read."""


@dataclass
class _Context:
    """What one batch needs from the database, loaded once per batch."""

    pumps: dict[str, Pump] = field(default_factory=dict)
    patients: dict[tuple[str, int], PatientRef] = field(default_factory=dict)
    channels: dict[tuple[str, int], Channel] = field(default_factory=dict)
    orders: dict[tuple[str, int], str | None] = field(default_factory=dict)


class Forwarder:
    """Turns new ``pump_messages`` rows into outbox rows (one call = one batch)."""

    def __init__(
        self,
        ctx: ServerContext,
        destinations: Sequence[str],
        policy: FeedPolicy | None = None,
        *,
        sending_facility: str = "",
    ) -> None:
        if len(destinations) > 16:
            raise ValueError("at most 16 HL7 destinations")
        self.ctx = ctx
        self.destinations = list(destinations)
        self.policy = policy or FeedPolicy()
        self.sending_facility = sending_facility
        # per channel: (state, drug, dose, dose unit, rate) last sent, and when (receive time)
        self._sent: dict[tuple[str, int], tuple[tuple[Any, ...], datetime]] = {}
        # per channel: the last observation seen, the base of an event's observation
        # per channel: the last channel item reported (and its row), the base of an event's
        # observation; observations are built only for what is sent
        self._last_seen: dict[tuple[str, int], tuple[dict[str, Any], Any]] = {}
        self._gap_seen: dict[int, float] = {}
        self.clock_monotonic: Callable[[], float] = time.monotonic

    # ---- one batch -----------------------------------------------------------------------

    def run_once(self) -> tuple[int, int]:
        """Forward one batch: (envelopes read past, outbox rows written); (0, 0) when
        nothing new is stored."""
        if not self.destinations:
            return 0, 0
        with self.ctx.db.read() as session:
            cursor = session.get(OutboundCursor, CURSOR)
            position = cursor.position if cursor is not None else 0
            rows = session.execute(
                select(
                    PumpMessage.id,
                    PumpMessage.pump_id,
                    PumpMessage.seq,
                    PumpMessage.type,
                    PumpMessage.received_at,
                    PumpMessage.body,
                )
                .where(PumpMessage.id > position)
                .order_by(PumpMessage.id)
                .limit(self.policy.batch)
            ).all()
            rows = self._without_gaps(position, rows)
            if not rows:
                return 0, 0
            saved_sent, saved_seen = dict(self._sent), dict(self._last_seen)
            built = self._build(session, rows)
        new_position = rows[-1].id
        now = self.ctx.now()
        messages = self._render(built, now)  # before the write: its transaction stays short
        try:
            with self.ctx.db.write() as session:
                if not self._advance(session, position, new_position, now):
                    raise _CursorMoved
                session.add_all(messages)
        except (IntegrityError, _CursorMoved):
            # another server process forwarded the same rows first (PostgreSQL): the
            # throttle state goes back to what it was before this batch
            self._sent, self._last_seen = saved_sent, saved_seen
            return 0, 0
        except BaseException:
            self._sent, self._last_seen = saved_sent, saved_seen
            raise
        return len(rows), len(messages)

    def _render(self, built: list[tuple[int, Built]], now: datetime) -> list[OutboxMessage]:
        out: list[OutboxMessage] = []
        for row_id, b in built:
            for d, dest in enumerate(self.destinations):
                cid = control_id_for(row_id, b.index, d)
                try:
                    payload = b.make(cid)
                except ValueError as exc:  # a fact the message format cannot carry
                    log.warning("HL7 %s for %s not built: %s", b.message_type, b.source, exc)
                    break
                out.append(
                    OutboxMessage(
                        destination=dest,
                        message_type=b.message_type,
                        control_id=cid,
                        payload=payload,
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        source=b.source[:80],
                        created_at=now,
                    )
                )
        return out

    def _without_gaps(self, position: int, rows: Sequence[Any]) -> list[Any]:
        if self.ctx.db.sqlite:
            return list(rows)
        kept: list[Any] = []
        expected = position + 1
        now = self.clock_monotonic()
        for row in rows:
            if row.id != expected:
                first = self._gap_seen.setdefault(expected, now)
                if now - first < self.policy.gap_wait_s:
                    break
                self._gap_seen.pop(expected, None)
            kept.append(row)
            expected = row.id + 1
        return kept

    def _advance(
        self, session: Session, old: int, new: int, now: datetime, name: str = CURSOR
    ) -> bool:
        """Move cursor ``name`` from ``old`` to ``new``; False if another process moved it."""
        cursor = session.get(OutboundCursor, name, with_for_update=True)
        if cursor is None:
            if old != 0:
                return False
            session.add(OutboundCursor(name=name, position=new, updated_at=now))
            session.flush()
            return True
        moved = session.execute(
            update(OutboundCursor)
            .where(OutboundCursor.name == name, OutboundCursor.position == old)
            .values(position=new, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(moved.rowcount == 1)  # type: ignore[attr-defined]

    # ---- acknowledgements made on the dashboard -------------------------------------------

    def forward_acks(self) -> int:
        """PCD-04 for alarms acknowledged by a clinician on the server (not at the pump).

        These are updates of ``alarms`` rows, not stored envelopes: the cursor is the
        acknowledgement time (microseconds since the epoch), read up to ``ack_settle_s`` ago
        so that an acknowledgement committed a moment after the time it carries is not
        passed over. An alarm is acknowledged once (the API refuses a second), so its
        control id (``OA`` + its id in base 36) is its own. Returns outbox rows written.
        """
        if not self.destinations:
            return 0
        upper = self.ctx.now() - timedelta(seconds=self.policy.ack_settle_s)
        with self.ctx.db.read() as session:
            cursor = session.get(OutboundCursor, ACK_CURSOR)
            position = cursor.position if cursor is not None else 0
            lower = _from_us(position) if position else upper - timedelta(days=1)
            alarms = list(
                session.scalars(
                    select(Alarm)
                    .where(
                        Alarm.acknowledged_at.is_not(None),
                        Alarm.acknowledged_at > lower,
                        Alarm.acknowledged_at <= upper,
                        or_(Alarm.acknowledged_by.is_(None), Alarm.acknowledged_by != "bedside"),
                    )
                    .order_by(Alarm.acknowledged_at, Alarm.id)
                )
            )
            if not alarms and position and upper - lower < timedelta(seconds=60):
                return 0  # nothing new: the cursor moves at most once a minute when idle
            rows = [
                (a, self._ack_report(session, a)) for a in alarms if a.acknowledged_at is not None
            ]
        now = self.ctx.now()
        messages: list[OutboxMessage] = []
        for alarm, report in rows:
            if report is None:
                continue
            for d, dest in enumerate(self.destinations):
                cid = f"OA{_b36(alarm.id)}-{d:x}"
                try:
                    payload = _build_r40(report, cid, now)
                except ValueError as exc:
                    log.warning("HL7 ORU^R40 for alarm %d not built: %s", alarm.id, exc)
                    break
                messages.append(
                    OutboxMessage(
                        destination=dest,
                        message_type="ORU^R40",
                        control_id=cid,
                        payload=payload,
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        source=f"alarm:{alarm.id} acknowledged by {alarm.acknowledged_by}"[:80],
                        created_at=now,
                    )
                )
        new_position = _to_us(upper)
        try:
            with self.ctx.db.write() as session:
                if not self._advance(session, position, new_position, now, ACK_CURSOR):
                    return 0
                session.add_all(messages)
        except IntegrityError:
            return 0
        return len(messages)

    def _ack_report(self, session: Session, alarm: Alarm) -> AlarmReport | None:
        pump = session.get(Pump, alarm.pump_id)
        if pump is None or alarm.acknowledged_at is None:
            return None
        patient = None
        if alarm.channel is not None:
            c = self._load(session, [_PumpRow(pump.id)])
            patient = c.patients.get((pump.id, alarm.channel))
        priority = alarm.priority if alarm.priority in PRIORITIES else "high"
        return AlarmReport(
            alarm_id=alarm.id,
            pump_id=pump.id,
            pump_serial=pump.decommissioned_serial or pump.serial,
            pump_model=pump.model,
            pump_kind=pump.kind,
            channel=alarm.channel,
            code=alarm.code,
            priority=priority,  # type: ignore[arg-type]
            message=alarm.message or alarm.code,
            raised_at=alarm.raised_at,
            state="acknowledged",
            changed_at=alarm.acknowledged_at,
            patient=patient,
        )

    # ---- records -------------------------------------------------------------------------

    def _load(self, session: Session, rows: Sequence[Any]) -> _Context:
        c = _Context()
        pump_ids = {r.pump_id for r in rows}
        c.pumps = {p.id: p for p in session.scalars(select(Pump).where(Pump.id.in_(pump_ids)))}
        for assoc, patient in session.execute(
            select(Association, Patient)
            .join(Patient, Patient.id == Association.patient_id)
            .where(Association.pump_id.in_(pump_ids), Association.ended_at.is_(None))
        ):
            c.patients[(assoc.pump_id, assoc.channel)] = PatientRef(
                mrn=patient.mrn,
                family_name=patient.family_name,
                given_name=patient.given_name,
                birth_date=patient.birth_date,
                sex=patient.sex,
            )
        c.channels = {
            (ch.pump_id, ch.channel): ch
            for ch in session.scalars(select(Channel).where(Channel.pump_id.in_(pump_ids)))
        }
        return c

    def _order(self, session: Session, c: _Context, pump_id: str, channel: int) -> str | None:
        key = (pump_id, channel)
        if key not in c.orders:
            try:
                from openinfusion.interop import orders
            except ImportError:  # pragma: no cover - order intake not installed
                c.orders[key] = None
                return None
            finder = getattr(orders, "current_order_for", None)
            c.orders[key] = finder(session, pump_id, channel) if finder else None
        return c.orders[key]

    def _build(self, session: Session, rows: Sequence[Any]) -> list[tuple[int, Built]]:
        c = self._load(session, rows)
        out: list[tuple[int, Built]] = []
        for row in rows:
            pump = c.pumps.get(row.pump_id)
            body = row.body if isinstance(row.body, dict) else {}
            if pump is None:
                continue
            if row.type == "status":
                items = self._from_status(session, c, pump, row, body)
            elif row.type == "event":
                items = self._from_event(session, c, pump, row, body)
            elif row.type == "alarm":
                items = self._from_alarm(session, c, pump, row, body)
            else:
                items = []
            out.extend((row.id, item) for item in items)
        return out

    def _observation(
        self, session: Session, c: _Context, pump: Pump, number: int, row: Any, item: dict[str, Any]
    ) -> ChannelObservation:
        volume = _num(item.get("volume_infused_ml"))
        if volume is None:
            volume = _num(item.get("patient_ml"))
        return ChannelObservation(
            pump_id=pump.id,
            pump_serial=pump.decommissioned_serial or pump.serial,
            pump_model=pump.model,
            pump_kind=pump.kind,
            channel=number,
            observed_at=row.received_at,
            state=_text(item.get("state"), 32) or "unknown",
            drug=_text(item.get("drug")),
            dose=_num(item.get("dose")),
            dose_unit=_text(item.get("dose_unit"), 32),
            rate_ml_h=_num(item.get("rate_ml_h")),
            volume_infused_ml=volume,
            vtbi_remaining_ml=_num(item.get("vtbi_remaining_ml")),
            time_remaining_min=_num(item.get("time_remaining_min")),
            patient=c.patients.get((pump.id, number)),
            placer_order_id=self._order(session, c, pump.id, number),
            pump_seq=row.seq,
        )

    def _from_status(
        self, session: Session, c: _Context, pump: Pump, row: Any, body: dict[str, Any]
    ) -> list[Built]:
        out: list[Built] = []
        interval = timedelta(seconds=self.policy.status_interval_s)
        for item in _status_channels(body):
            number = _channel_number(item.get("channel", item.get("index")))
            if number is None:
                continue
            key = (pump.id, number)
            self._last_seen[key] = (item, row)
            signature = _signature(item)
            last = self._sent.get(key)
            if last is None:
                event = None  # first seen since start: a periodic report
            elif last[0] != signature:
                event = "state_changed" if last[0][0] != signature[0] else "program_changed"
            elif row.received_at - last[1] >= interval:
                event = None
            else:
                continue  # throttled: nothing built, no order looked up
            self._sent[key] = (signature, row.received_at)
            obs = self._observation(session, c, pump, number, row, item)
            out.append(self._oru_r01(replace(obs, event=event), row, len(out)))
        return out

    def _from_event(
        self, session: Session, c: _Context, pump: Pump, row: Any, body: dict[str, Any]
    ) -> list[Built]:
        kind = _text(body.get("kind", body.get("event")), 64)
        number = _event_channel(body)
        if kind not in REPORTED_EVENTS or number is None:
            return []
        key = (pump.id, number)
        seen = self._last_seen.get(key)
        if seen is not None:
            item = seen[0]
        else:
            ch = c.channels.get(key)
            item = {}
            if ch is not None:
                item = {
                    "state": ch.state,
                    "drug": ch.drug,
                    "dose": ch.dose,
                    "dose_unit": ch.dose_unit,
                    "rate_ml_h": ch.rate_ml_h,
                    "volume_infused_ml": ch.volume_infused_ml,
                    "vtbi_remaining_ml": ch.vtbi_remaining_ml,
                    "time_remaining_min": ch.time_remaining_min,
                }
        base = self._observation(session, c, pump, number, row, item)
        state = REPORTED_EVENTS[kind] or base.state
        obs = replace(base, state=state, event=kind)
        self._last_seen[key] = (dict(item, state=state), row)
        sent = self._sent.get(key)
        if sent is not None:  # the next status compares against what this event showed
            self._sent[key] = ((state, *sent[0][1:]), row.received_at)
        return [self._oru_r01(obs, row, 0)]

    def _from_alarm(
        self, session: Session, c: _Context, pump: Pump, row: Any, body: dict[str, Any]
    ) -> list[Built]:
        code = _text(body.get("code"), 64)
        state = ALARM_STATES.get(_text(body.get("state", body.get("action")), 16) or "raised")
        if code is None or state is None:
            return []
        number = _channel_number(body.get("channel"))
        same = and_(
            Alarm.pump_id == pump.id,
            Alarm.code == code,
            Alarm.channel.is_(None) if number is None else Alarm.channel == number,
        )
        if state == "active":
            alarm = session.scalars(select(Alarm).where(same, Alarm.raised_seq == row.seq)).first()
        elif state == "cleared":
            alarm = session.scalars(select(Alarm).where(same, Alarm.cleared_seq == row.seq)).first()
        else:
            alarm = session.scalars(
                select(Alarm)
                .where(
                    same,
                    Alarm.raised_seq <= row.seq,
                    or_(Alarm.cleared_seq.is_(None), Alarm.cleared_seq > row.seq),
                )
                .order_by(Alarm.raised_seq.desc())
            ).first()
        if alarm is None:  # the gateway derived no alarm from it (a repeat): nothing to say
            return []
        priority = alarm.priority if alarm.priority in PRIORITIES else "high"
        report = AlarmReport(
            alarm_id=alarm.id,
            pump_id=pump.id,
            pump_serial=pump.decommissioned_serial or pump.serial,
            pump_model=pump.model,
            pump_kind=pump.kind,
            channel=number,
            code=code,
            priority=priority,  # type: ignore[arg-type]
            message=alarm.message or code,
            raised_at=alarm.raised_at,
            state=state,  # type: ignore[arg-type]
            changed_at=row.received_at,
            patient=c.patients.get((pump.id, number)) if number is not None else None,
            placer_order_id=self._order(session, c, pump.id, number) if number else None,
        )
        return [self._oru_r40(report, row)]

    # ---- messages ------------------------------------------------------------------------

    def _oru_r01(self, obs: ChannelObservation, row: Any, index: int) -> Built:
        from openinfusion.interop.hl7.pcd01 import build_oru_r01

        now = self.ctx.now()

        def make(cid: str) -> str:
            try:
                return build_oru_r01(obs, control_id=cid, now=now)
            except ValueError as exc:
                if obs.dose is None:
                    raise
                # a dose unit with no IEEE 11073 term: the rest of the channel still goes
                log.warning("PCD-01 %s: dose left out: %s", cid, exc)
                return build_oru_r01(
                    replace(obs, dose=None, dose_unit=None), control_id=cid, now=now
                )

        return Built(
            "ORU^R01",
            f"pump_message:{row.id} {obs.pump_id} ch{obs.channel} {obs.event or 'status'}",
            index,
            make,
        )

    def _oru_r40(self, report: AlarmReport, row: Any) -> Built:
        from openinfusion.interop.hl7.pcd04 import build_oru_r40

        now = self.ctx.now()
        return Built(
            "ORU^R40",
            f"pump_message:{row.id} alarm:{report.alarm_id} {report.state}",
            0,
            lambda cid: build_oru_r40(report, control_id=cid, now=now),
        )
