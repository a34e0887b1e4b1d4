"""An order's status on the pump, derived from what the pump reported (never assumed).

The order intake stores an accepted order as ``unconfirmed`` with the ``program`` command
that carries it. What happened next is read from the pump's own signed ``command_result``
envelopes for that command (kept in ``pump_messages``, in the pump's sequence order) and
from the infusion the channel started after the bedside confirmation:

``unconfirmed`` (sent, no answer yet) → ``pre-populated`` (shown on the pump, waiting for a
clinician at the bedside) → ``confirmed`` → ``running`` → ``completed`` | ``stopped``; or
``rejected`` (refused at intake, or by the pump, with its reason) | ``expired`` (not
confirmed before the command's deadline, or no answer from the pump by then).

A command result the pump sends again after a reconnect, or a refusal of a replayed
command, never moves an order backwards (RELIABILITY F-11).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from openinfusion.interop.order_tables import InfusionOrder
from openinfusion.server.clock import utc_now
from openinfusion.server.derive import IN_PROGRESS
from openinfusion.server.models import Channel, Command, Infusion, PumpMessage

STATUSES = (
    "unconfirmed",
    "pre-populated",
    "confirmed",
    "running",
    "completed",
    "stopped",
    "rejected",
    "expired",
)
#: Statuses in which the order's program runs or waits on its channel.
ON_CHANNEL = frozenset({"unconfirmed", "pre-populated", "confirmed", "running"})
TERMINAL = frozenset({"completed", "stopped", "rejected", "expired"})
#: After the deadline a pump refuses the command even by its wall clock, allowing this skew.
DEADLINE_GRACE_S = 120.0
# Pump sequence numbers after the first result that can still hold this command's later
# results: a pump numbers a status every few seconds plus its events, and a pre-populated
# change lives at most 60 s on the pump; this is hours of a busy pump's numbering.
RESULT_SEQ_SPAN = 20_000
RESULT_SEQ_BACK = 1_000
_COMPLETED = frozenset({"complete", "completed", "infusion_completed", "vtbi_complete"})


@dataclass(frozen=True, slots=True)
class LiveStatus:
    status: str
    reason: str | None
    confirmed_at: datetime | None = None


def _results(session: Session, command: Command) -> list[tuple[PumpMessage, dict[str, Any]]]:
    """The pump's results for ``command``, in its sequence order. The first one is where the
    server recorded it (``Command.result_seq``); the later ones (bedside confirmation, expiry)
    were numbered by the pump within the command's life after it, so a bounded range of the
    pump's sequence numbers holds them all (a range of the (pump, seq) unique index)."""
    if command.result_seq is None:
        return []
    rows = session.scalars(
        select(PumpMessage)
        .where(
            PumpMessage.pump_id == command.pump_id,
            # a result stored late (filling a gap) may precede the one recorded first
            PumpMessage.seq >= command.result_seq - RESULT_SEQ_BACK,
            PumpMessage.seq < command.result_seq + RESULT_SEQ_SPAN,
            PumpMessage.type == "command_result",
        )
        .order_by(PumpMessage.seq)
        .limit(500)
    )
    out = []
    for row in rows:
        body = row.body if isinstance(row.body, dict) else {}
        if body.get("command_id") == command.id:
            out.append((row, body))
    return out


def _text(value: Any) -> str | None:
    return value[:500] if isinstance(value, str) and value else None


def live_status(session: Session, order: InfusionOrder, now: datetime | None = None) -> LiveStatus:
    """Where ``order`` is now (see the module docstring)."""
    if order.command_id is None:
        return LiveStatus(order.status, order.reason)
    command = session.get(Command, order.command_id)
    if command is None:
        return LiveStatus(order.status, order.reason)
    now = now or utc_now()
    status, reason = "unconfirmed", None
    confirmed: tuple[datetime, int] | None = None
    for message, body in _results(session, command):
        outcome = body.get("outcome", body.get("status"))
        why = _text(body.get("reason"))
        if status == "unconfirmed":
            if outcome in ("awaiting_confirmation", "pre-populated"):
                status, reason = "pre-populated", why
            elif outcome == "accepted":
                status, reason = "confirmed", why
                confirmed = (message.received_at, message.seq)
            elif outcome == "rejected":
                status, reason = "rejected", why or "refused by the pump"
        elif status == "pre-populated":
            if outcome == "accepted":
                status, reason = "confirmed", why
                confirmed = (message.received_at, message.seq)
            elif outcome == "rejected" and why and "replay" in why:
                continue  # a refusal of the same command sent again: changes nothing
            elif outcome == "rejected":
                expired = why is not None and ("expire" in why or "deadline" in why)
                status = "expired" if expired else "rejected"
                reason = why or "dropped by the pump"
        # after confirmed/rejected/expired nothing the pump repeats changes the outcome
    if status == "unconfirmed" and now > command.expires_at + timedelta(seconds=DEADLINE_GRACE_S):
        return LiveStatus("expired", "no answer from the pump before the command deadline")
    if status == "pre-populated" and now > command.expires_at + timedelta(seconds=DEADLINE_GRACE_S):
        # The pump discards it at the deadline and reports that; until the report arrives
        # the pump cannot start it any more either.
        return LiveStatus("expired", "not confirmed at the bedside before the command deadline")
    if confirmed is None:
        return LiveStatus(status, reason)
    infusion = session.scalars(
        select(Infusion)
        .where(
            Infusion.pump_id == command.pump_id,
            Infusion.channel == command.channel,
            Infusion.started_seq >= confirmed[1],
        )
        .order_by(Infusion.started_seq)
        .limit(1)
    ).first()
    if infusion is None:
        # the same drug running on before the order (a new bag): the channel says it runs
        ch = session.get(Channel, (command.pump_id, command.channel))
        if ch is not None and ch.updated_seq > confirmed[1] and ch.state in IN_PROGRESS:
            return LiveStatus("running", None, confirmed[0])
        return LiveStatus("confirmed", reason, confirmed[0])
    if infusion.ended_at is None:
        return LiveStatus("running", None, confirmed[0])
    end = infusion.end_reason or ""
    if end in _COMPLETED:
        return LiveStatus("completed", end, confirmed[0])
    return LiveStatus("stopped", end or None, confirmed[0])


def current_order_for(
    session: Session, pump_id: str, channel: int, now: datetime | None = None
) -> str | None:
    """The placer order id whose program runs or waits on this pump channel, if any."""
    rows = session.scalars(
        select(InfusionOrder)
        .where(
            InfusionOrder.pump_id == pump_id,
            InfusionOrder.channel == channel,
            InfusionOrder.command_id.is_not(None),
        )
        .order_by(InfusionOrder.id.desc())
        .limit(5)
    )
    for order in rows:
        if live_status(session, order, now).status in ON_CHANNEL:
            return order.placer_order_id
    return None
