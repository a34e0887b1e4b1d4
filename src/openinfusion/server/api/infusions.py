"""Infusions, current and past, with delivered volume and dose."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from openinfusion.server.api.deps import Principal, get_ctx, require
from openinfusion.server.api.pumps import PUMP_ID_PATTERN
from openinfusion.server.api.views import infusion_view
from openinfusion.server.context import ServerContext
from openinfusion.server.models import Infusion, Pump
from openinfusion.server.permissions import Perm

router = APIRouter(prefix="/api/infusions", tags=["infusions"])


@router.get("")
def list_infusions(
    active: bool | None = None,
    pump_id: Annotated[str | None, Query(pattern=PUMP_ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    principal: Principal = Depends(require(Perm.INFUSIONS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        query = select(Infusion).order_by(Infusion.id.desc()).limit(limit)
        if active is True:
            query = query.where(Infusion.ended_at.is_(None))
        elif active is False:
            query = query.where(Infusion.ended_at.is_not(None))
        if pump_id is not None:
            query = query.where(Infusion.pump_id == pump_id)
        if principal.unit_scope is not None:
            query = query.join(Pump, Pump.id == Infusion.pump_id).where(
                Pump.unit == principal.unit_scope
            )
        return [infusion_view(i) for i in session.scalars(query)]
