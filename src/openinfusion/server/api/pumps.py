"""Pumps: list with online state, gaps and channels; one pump; its stored messages;
unit changes and decommissioning."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from openinfusion.server.api.deps import Principal, get_ctx, require
from openinfusion.server.api.errors import ApiError, not_found
from openinfusion.server.api.users import UNIT
from openinfusion.server.api.views import channel_patients, message_view, pump_view
from openinfusion.server.context import ServerContext
from openinfusion.server.models import (
    Association,
    Channel,
    Infusion,
    Patient,
    Pump,
    PumpMessage,
)
from openinfusion.server.permissions import Perm

router = APIRouter(prefix="/api/pumps", tags=["pumps"])

PUMP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
PumpId = Annotated[str, Path(pattern=PUMP_ID_PATTERN, description="pump id")]


def visible_pump(session: Session, principal: Principal, pump_id: str) -> Pump:
    """The pump if it exists and the principal may see it; the same 404 otherwise (C-11)."""
    pump = session.get(Pump, pump_id)
    if pump is None or not principal.sees(pump):
        raise not_found("pump_id", pump_id)
    return pump


def _views(session: Session, pumps: list[Pump], ctx: ServerContext) -> list[dict[str, Any]]:
    ids = [p.id for p in pumps]
    channels: dict[str, list[Channel]] = {i: [] for i in ids}
    for ch in session.scalars(select(Channel).where(Channel.pump_id.in_(ids))):
        channels[ch.pump_id].append(ch)
    inf_ids = [c.infusion_id for cs in channels.values() for c in cs if c.infusion_id]
    infusions = {i.id: i for i in session.scalars(select(Infusion).where(Infusion.id.in_(inf_ids)))}
    now = ctx.now()
    window = ctx.settings.online_window_s
    patients = channel_patients(session, ids)
    return [pump_view(p, channels[p.id], infusions, now, window, patients) for p in pumps]


@router.get("")
def list_pumps(
    principal: Principal = Depends(require(Perm.PUMPS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        query = select(Pump).where(Pump.decommissioned_at.is_(None)).order_by(Pump.id)
        if principal.unit_scope is not None:
            query = query.where(Pump.unit == principal.unit_scope)
        return _views(session, list(session.scalars(query)), ctx)


@router.get("/{pump_id}")
def get_pump(
    pump_id: PumpId,
    principal: Principal = Depends(require(Perm.PUMPS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    with ctx.db.read() as session:
        return _views(session, [visible_pump(session, principal, pump_id)], ctx)[0]


@router.get("/{pump_id}/messages")
def pump_messages(
    pump_id: PumpId,
    after_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    principal: Principal = Depends(require(Perm.MESSAGES_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        visible_pump(session, principal, pump_id)
        rows = session.scalars(
            select(PumpMessage)
            .where(PumpMessage.pump_id == pump_id, PumpMessage.seq > after_seq)
            .order_by(PumpMessage.seq)
            .limit(limit)
        )
        return [message_view(m) for m in rows]


class PumpChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: str | None = Field(pattern=UNIT)


@router.patch("/{pump_id}")
def change_pump(
    pump_id: PumpId,
    body: PumpChange,
    principal: Principal = Depends(require(Perm.PUMPS_MANAGE)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Assign the pump to a care unit (or to none)."""
    with ctx.db.write() as session:
        pump = visible_pump(session, principal, pump_id)
        if pump.decommissioned_at is not None:
            raise ApiError(409, "pump_id", pump_id, "is decommissioned")
        old, pump.unit = pump.unit, body.unit
        ctx.audit(
            session, principal.username, "pump.change", f"pump:{pump_id}", unit=[old, body.unit]
        )
        ctx.bus.publish(session, {"type": "pump_changed", "pump_id": pump_id, "unit": body.unit})
        return _views(session, [pump], ctx)[0]


@router.delete("/{pump_id}", status_code=204)
def decommission_pump(
    pump_id: PumpId,
    principal: Principal = Depends(require(Perm.PUMPS_MANAGE)),
    ctx: ServerContext = Depends(get_ctx),
) -> None:
    """Decommission (RELIABILITY C-23): the pump's key is refused from now on, a live
    connection is closed, its serial is freed so the device can only come back through a
    new enrolment (new key, new id); its history stays readable under the old id. Its open
    patient associations end in the same transaction (each audited as ``association.end``),
    so no patient stays linked to a channel that can no longer report."""
    with ctx.db.write() as session:
        pump = visible_pump(session, principal, pump_id)
        if pump.decommissioned_at is not None:
            raise ApiError(409, "pump_id", pump_id, "is already decommissioned")
        now = ctx.now()
        _end_associations(ctx, session, pump, principal.username, now)
        pump.decommissioned_at = now
        pump.decommissioned_serial, pump.serial = pump.serial, f"~{pump.id}"
        ctx.audit(
            session,
            principal.username,
            "pump.decommission",
            f"pump:{pump_id}",
            serial=pump.decommissioned_serial,
            key_id=pump.key_id,
        )
        ctx.bus.publish(
            session, {"type": "pump_decommissioned", "pump_id": pump_id, "unit": pump.unit}
        )


def _end_associations(
    ctx: ServerContext, session: Session, pump: Pump, username: str, now: datetime
) -> None:
    """End every open association of ``pump`` in the caller's transaction, audited and
    announced like an association ended at the bedside."""
    open_rows = session.scalars(
        select(Association)
        .where(Association.pump_id == pump.id, Association.ended_at.is_(None))
        .order_by(Association.channel)
    ).all()
    for assoc in open_rows:
        assoc.ended_at, assoc.ended_by = now, username
        patient = session.get(Patient, assoc.patient_id)
        ctx.audit(
            session,
            username,
            "association.end",
            f"pump:{pump.id}/channel:{assoc.channel}",
            association_id=assoc.id,
            patient_id=assoc.patient_id,
            mrn=patient.mrn if patient is not None else None,
            reason="pump decommissioned",
        )
        ctx.bus.publish(
            session,
            {
                "type": "association_ended",
                "association_id": assoc.id,
                "pump_id": pump.id,
                "channel": assoc.channel,
                "patient_id": assoc.patient_id,
                "unit": pump.unit,
            },
        )
