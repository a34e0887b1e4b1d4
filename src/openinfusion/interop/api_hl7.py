"""The HL7 link on the REST API (``/api/interop/hl7/...``): outbound queue state and last errors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from openinfusion.interop.outbound import outbox_messages, outbox_summary
from openinfusion.interop.outbound_tables import OUTBOX_STATUSES
from openinfusion.server.api.deps import Principal, get_ctx, require
from openinfusion.server.api.errors import ApiError
from openinfusion.server.context import ServerContext
from openinfusion.server.permissions import Perm

router = APIRouter(prefix="/api/interop/hl7", tags=["interop"])


@router.get("/outbox")
def outbox(
    _principal: Principal = Depends(require(Perm.INTEROP_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Per destination: counts by status, oldest pending age, last error, last ACK time."""
    summary = outbox_summary(ctx, ctx.settings.hl7_destinations, ctx.now())
    summary["listener"] = (
        {"host": ctx.settings.hl7_listen_host, "port": ctx.settings.hl7_listen_port}
        if ctx.settings.hl7_listen_port is not None
        else None
    )
    return summary


@router.get("/outbox/messages")
def messages(
    status: Annotated[str | None, Query(max_length=8)] = None,
    destination: Annotated[str | None, Query(max_length=120)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    _principal: Principal = Depends(require(Perm.INTEROP_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    """The most recent outbox rows, newest first (payload escaped: ``\\r`` ends a segment)."""
    if status is not None and status not in OUTBOX_STATUSES:
        raise ApiError(422, "status", status, f"must be one of {', '.join(OUTBOX_STATUSES)}")
    return outbox_messages(ctx, status, destination, limit)
