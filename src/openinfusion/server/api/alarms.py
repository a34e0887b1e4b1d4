"""Alarms raised by pumps: list (active or all) and acknowledge (audited)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy import select

from openinfusion.server.api.deps import Principal, get_ctx, require
from openinfusion.server.api.errors import ApiError, not_found
from openinfusion.server.api.views import alarm_view
from openinfusion.server.context import ServerContext
from openinfusion.server.models import Alarm, Pump
from openinfusion.server.permissions import Perm

router = APIRouter(prefix="/api/alarms", tags=["alarms"])


@router.get("")
def list_alarms(
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    principal: Principal = Depends(require(Perm.ALARMS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        query = select(Alarm).order_by(Alarm.id.desc()).limit(limit)
        if active is True:
            query = query.where(Alarm.cleared_at.is_(None))
        elif active is False:
            query = query.where(Alarm.cleared_at.is_not(None))
        if principal.unit_scope is not None:
            query = query.join(Pump, Pump.id == Alarm.pump_id).where(
                Pump.unit == principal.unit_scope
            )
        return [alarm_view(a) for a in session.scalars(query)]


@router.post("/{alarm_id}/ack")
def ack_alarm(
    alarm_id: Annotated[int, Path(ge=1, le=2**62)],
    principal: Principal = Depends(require(Perm.ALARMS_ACK)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    with ctx.db.write() as session:
        alarm = session.get(Alarm, alarm_id)
        pump = session.get(Pump, alarm.pump_id) if alarm is not None else None
        if alarm is None or pump is None or not principal.sees(pump):
            raise not_found("alarm_id", alarm_id)
        if alarm.acknowledged_at is not None:
            raise ApiError(
                409, "alarm_id", alarm_id, f"already acknowledged by {alarm.acknowledged_by}"
            )
        alarm.acknowledged_at, alarm.acknowledged_by = ctx.now(), principal.username
        ctx.audit(
            session,
            principal.username,
            "alarm.ack",
            f"alarm:{alarm_id}",
            pump_id=alarm.pump_id,
            code=alarm.code,
            priority=alarm.priority,
        )
        ctx.bus.publish(
            session,
            {
                "type": "alarm_acknowledged",
                "alarm_id": alarm_id,
                "pump_id": alarm.pump_id,
                "unit": pump.unit,
            },
        )
        return alarm_view(alarm)
