"""What the FHIR face reads from the server's tables, scoped to what the caller may see.

A unit-limited clinician sees only the pumps (and their channels, metrics, observations and
infusions), patients and orders of that unit; anything else is the same 404 as an id that
does not exist (RELIABILITY C-11).

Observations are read back from the pumps' own ``status`` messages (``pump_messages``): one
Observation per message, channel and metric with a finite value. Their time is when the
server received the message (the clock the associations are kept by), and their subject is
the patient the channel was associated with at that moment. A search looks at the newest
:data:`SCAN_LIMIT` matching status messages; older ones are reached by narrowing ``date``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from openinfusion.interop.fhir.codes import METRICS, Metric
from openinfusion.interop.order_tables import InfusionOrder
from openinfusion.interop.orders_status import live_status
from openinfusion.server.api.deps import Principal
from openinfusion.server.models import Association, Channel, Infusion, Patient, Pump, PumpMessage

SCAN_LIMIT = 1000  # status messages looked at by one Observation search


# --- pumps and patients ---------------------------------------------------------------


def visible_pump(session: Session, principal: Principal, pump_id: str) -> Pump | None:
    pump = session.get(Pump, pump_id)
    return pump if pump is not None and principal.sees(pump) else None


def visible_pumps(session: Session, principal: Principal) -> list[Pump]:
    query = select(Pump).order_by(Pump.id)
    if principal.unit_scope is not None:
        query = query.where(Pump.unit == principal.unit_scope)
    return list(session.scalars(query))


def visible_patient(session: Session, principal: Principal, patient_id: int) -> Patient | None:
    patient = session.get(Patient, patient_id)
    scope = principal.unit_scope
    if patient is None or (scope is not None and patient.unit != scope):
        return None
    return patient


def pump_by_serial(session: Session, principal: Principal, serial: str) -> Pump | None:
    pump = session.scalars(
        select(Pump).where(or_(Pump.serial == serial, Pump.decommissioned_serial == serial))
    ).first()
    return pump if pump is not None and principal.sees(pump) else None


def open_patients(session: Session, pump_ids: list[str]) -> dict[tuple[str, int], int]:
    """(pump id, channel) -> the patient id of the channel's open association."""
    rows = session.execute(
        select(Association.pump_id, Association.channel, Association.patient_id).where(
            Association.pump_id.in_(pump_ids), Association.ended_at.is_(None)
        )
    )
    return {(p, c): pid for p, c, pid in rows}


def pump_patient(pump: Pump, open_by_channel: dict[tuple[str, int], int]) -> int | None:
    """The patient all the pump's open associations name, when they name exactly one."""
    named = {pid for (p, _c), pid in open_by_channel.items() if p == pump.id}
    return named.pop() if len(named) == 1 else None


def channel_states(session: Session, pump_ids: list[str]) -> dict[tuple[str, int], str]:
    rows = session.execute(
        select(Channel.pump_id, Channel.channel, Channel.state).where(Channel.pump_id.in_(pump_ids))
    )
    return {(p, c): s for p, c, s in rows}


class Associations:
    """Who each pump channel infused when: the associations of a set of pumps."""

    def __init__(self, session: Session, pump_ids: list[str]) -> None:
        self.by_channel: dict[tuple[str, int], list[Association]] = defaultdict(list)
        if pump_ids:
            for a in session.scalars(select(Association).where(Association.pump_id.in_(pump_ids))):
                self.by_channel[(a.pump_id, a.channel)].append(a)

    def patient_at(self, pump_id: str, channel: int, at: datetime) -> int | None:
        for a in self.by_channel.get((pump_id, channel), ()):
            if a.associated_at <= at and (a.ended_at is None or at < a.ended_at):
                return a.patient_id
        return None


# --- observations from status messages ------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObservedValue:
    pump_id: str
    channel: int
    metric: Metric
    seq: int
    value: float
    at: datetime


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def channel_items(body: Any) -> dict[int, dict[str, Any]]:
    """Channel number -> its item in a status body (a list, or a mapping by number), as the
    server's derived state reads it (server/derive.py)."""
    if not isinstance(body, dict):
        return {}
    channels = body.get("channels")
    items: list[Any]
    if isinstance(channels, dict):
        items = [
            dict(v, channel=int(k))
            for k, v in channels.items()
            if isinstance(v, dict) and str(k).isascii() and str(k).isdigit() and len(str(k)) < 3
        ]
    elif isinstance(channels, list):
        items = channels
    else:
        return {}
    out: dict[int, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        number = item.get("channel", item.get("index"))
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number < 100:
            continue
        out.setdefault(number, item)
    return out


def metric_value(item: dict[str, Any], metric: Metric) -> float | None:
    value = _number(item.get(metric.column))
    if value is None and metric.key == "vol":
        value = _number(item.get("patient_ml"))
    return value


def values_of(msg: PumpMessage) -> list[ObservedValue]:
    out = []
    for number, item in sorted(channel_items(msg.body).items()):
        for metric in METRICS.values():
            value = metric_value(item, metric)
            if value is not None:
                out.append(
                    ObservedValue(msg.pump_id, number, metric, msg.seq, value, msg.received_at)
                )
    return out


def status_message(session: Session, pump_id: str, seq: int) -> PumpMessage | None:
    msg = session.scalars(
        select(PumpMessage).where(PumpMessage.pump_id == pump_id, PumpMessage.seq == seq)
    ).first()
    return msg if msg is not None and msg.type == "status" else None


def status_messages(
    session: Session,
    pump_ids: list[str],
    since: datetime | None,
    until: datetime | None,
) -> tuple[list[PumpMessage], bool]:
    """The newest status messages of ``pump_ids`` received in [since, until), newest first,
    at most SCAN_LIMIT; and whether more were left out."""
    if not pump_ids:
        return [], False
    query = select(PumpMessage).where(
        PumpMessage.type == "status", PumpMessage.pump_id.in_(pump_ids)
    )
    if since is not None:
        query = query.where(PumpMessage.received_at >= since)
    if until is not None:
        query = query.where(PumpMessage.received_at < until)
    rows = list(
        session.scalars(
            query.order_by(PumpMessage.received_at.desc(), PumpMessage.id.desc()).limit(
                SCAN_LIMIT + 1
            )
        )
    )
    return rows[:SCAN_LIMIT], len(rows) > SCAN_LIMIT


# --- infusions and orders -------------------------------------------------------------


def infusion_query(
    principal: Principal, pump_id: str | None, channel: int | None, patient_id: int | None
) -> Select[Infusion]:
    query = select(Infusion)
    if pump_id is not None:
        query = query.where(Infusion.pump_id == pump_id)
    if channel is not None:
        query = query.where(Infusion.channel == channel)
    if patient_id is not None:
        query = query.join(
            Association,
            (Association.pump_id == Infusion.pump_id)
            & (Association.channel == Infusion.channel)
            & (Association.associated_at <= Infusion.started_at)
            & (Association.ended_at.is_(None) | (Association.ended_at > Infusion.started_at)),
        ).where(Association.patient_id == patient_id)
    if principal.unit_scope is not None:
        query = query.join(Pump, Pump.id == Infusion.pump_id).where(
            Pump.unit == principal.unit_scope
        )
    return query


def count(session: Session, query: Select[Any]) -> int:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return int(total or 0)


def order_of_infusion(session: Session, inf: Infusion, now: datetime) -> int | None:
    """The order pre-populated on the infusion's channel last before it began, for the same
    drug, whose status on the pump shows it ran (running, completed or stopped)."""
    rows = session.scalars(
        select(InfusionOrder)
        .where(
            InfusionOrder.pump_id == inf.pump_id,
            InfusionOrder.channel == inf.channel,
            InfusionOrder.command_id.is_not(None),
            InfusionOrder.created_at <= inf.started_at,
        )
        .order_by(InfusionOrder.id.desc())
        .limit(3)
    )
    for order in rows:
        same_drug = (order.drug or "").strip().lower() == (inf.drug or "").strip().lower()
        if same_drug and live_status(session, order, now).status in (
            "running",
            "completed",
            "stopped",
        ):
            return order.id
    return None


def order_query(
    principal: Principal, pump_id: str | None, channel: int | None, patient_id: int | None
) -> Select[InfusionOrder]:
    """Orders that reached a pump (an order refused at intake was never created)."""
    query = select(InfusionOrder).where(InfusionOrder.command_id.is_not(None))
    if pump_id is not None:
        query = query.where(InfusionOrder.pump_id == pump_id)
    if channel is not None:
        query = query.where(InfusionOrder.channel == channel)
    if patient_id is not None:
        query = query.where(InfusionOrder.patient_id == patient_id)
    if principal.unit_scope is not None:
        query = query.where(InfusionOrder.unit == principal.unit_scope)
    return query
