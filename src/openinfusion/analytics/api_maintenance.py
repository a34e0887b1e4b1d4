"""Predictive maintenance on the REST API: the maintenance queue and service records.

``GET /api/analytics/maintenance`` (``maintenance:read``): pumps ranked by risk of failure
within ``horizon_days`` with the reasons and the time since service.
``POST /api/analytics/maintenance/service`` (``pumps:manage``): record a service of a pump
(audited as ``pump.service``); its time since service starts again.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from openinfusion.analytics.tables import SERVICE_KINDS, ServiceRecord
from openinfusion.server.api.deps import Principal, get_ctx, require
from openinfusion.server.api.errors import ApiError, not_found
from openinfusion.server.context import ServerContext
from openinfusion.server.models import Pump
from openinfusion.server.permissions import Perm

router = APIRouter(tags=["analytics"])


@router.get("/api/analytics/maintenance")
def maintenance_queue(
    horizon_days: Annotated[int, Query(ge=1, le=90)] = 14,
    days: Annotated[int, Query(ge=1, le=365, description="days of telemetry read")] = 90,
    unit: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    p: Principal = Depends(require(Perm.MAINTENANCE_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Pumps ranked by risk of failure in the next ``horizon_days``, with reasons."""
    # imported when first asked: the model brings scikit-learn, seconds to import
    from openinfusion.analytics.maintenance_queue import queue_from_db

    scope = p.unit_scope if p.unit_scope is not None else unit
    with ctx.db.read() as session:
        return queue_from_db(session, ctx.now(), horizon_days, days, scope, limit)


class ServiceIn(BaseModel):
    pump_id: str = Field(min_length=1, max_length=40)
    kind: str = Field(min_length=1, max_length=32)
    note: str | None = Field(default=None, max_length=2000)


@router.post("/api/analytics/maintenance/service", status_code=201)
def record_service(
    body: ServiceIn,
    p: Principal = Depends(require(Perm.PUMPS_MANAGE)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Record that biomedical engineering serviced a pump."""
    if body.kind not in SERVICE_KINDS:
        raise ApiError(422, "kind", body.kind, f"must be one of {', '.join(SERVICE_KINDS)}")
    with ctx.db.write() as session:
        pump = session.get(Pump, body.pump_id)
        if pump is None or not p.sees(pump):
            raise not_found("pump_id", body.pump_id)
        if pump.decommissioned_at is not None:
            raise ApiError(409, "pump_id", body.pump_id, "is decommissioned")
        now = ctx.now()
        record = ServiceRecord(
            pump_id=pump.id, kind=body.kind, serviced_at=now, serviced_by=p.username, note=body.note
        )
        session.add(record)
        session.flush()
        ctx.audit(session, p.username, "pump.service", f"pump:{pump.id}", kind=body.kind)
        return {
            "id": record.id,
            "pump_id": pump.id,
            "kind": body.kind,
            "serviced_at": now.isoformat(),
            "serviced_by": p.username,
            "note": body.note,
        }
