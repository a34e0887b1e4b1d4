"""EHR infusion orders on the REST API (``/api/orders``): list, read, and their status on the pump.

Orders arrive as HL7 PCD-03 RGV^O15 over MLLP or as FHIR MedicationRequest; both call
:func:`openinfusion.interop.orders.submit_order`. There is deliberately no third way in
here: the FHIR ``POST`` is the REST face of the same intake. These endpoints read: every
order with its live status (``unconfirmed`` until the pump answers), the issues of a refused
one, and the pump channels awaiting bedside re-verification after a patient merge. A
clinician limited to a care unit sees only that unit's orders (anything else is a 404).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy import select

from openinfusion.interop.merge import reverification_view
from openinfusion.interop.order_tables import AssociationReverification, InfusionOrder
from openinfusion.interop.orders import STATUSES, order_view
from openinfusion.server.api.deps import Principal, get_ctx, require
from openinfusion.server.api.errors import ApiError, not_found
from openinfusion.server.api.patients import MRN
from openinfusion.server.api.pumps import PUMP_ID_PATTERN
from openinfusion.server.context import ServerContext
from openinfusion.server.models import Association
from openinfusion.server.permissions import Perm

router = APIRouter(tags=["orders"])

# Orders read to find those in a live status: the newest this many (after the other filters).
SCAN_FOR_STATUS = 2000


@router.get("/api/orders")
def list_orders(
    status: Annotated[str | None, Query(max_length=24)] = None,
    mrn: Annotated[str | None, Query(pattern=MRN)] = None,
    pump_id: Annotated[str | None, Query(pattern=PUMP_ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    principal: Principal = Depends(require(Perm.ORDERS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    """Newest first. ``status`` is the live status (see docs/orders.md)."""
    if status is not None and status not in STATUSES:
        raise ApiError(422, "status", status, f"must be one of {', '.join(STATUSES)}")
    now = ctx.now()
    with ctx.db.read() as session:
        query = select(InfusionOrder).order_by(InfusionOrder.id.desc())
        if mrn is not None:
            query = query.where(InfusionOrder.patient_mrn == mrn)
        if pump_id is not None:
            query = query.where(InfusionOrder.pump_id == pump_id)
        if principal.unit_scope is not None:
            query = query.where(InfusionOrder.unit == principal.unit_scope)
        query = query.limit(limit if status is None else SCAN_FOR_STATUS)
        out = []
        for row in session.scalars(query):
            view = order_view(session, row, now)
            if status is None or view["status"] == status:
                out.append(view)
                if len(out) >= limit:
                    break
        return out


@router.get("/api/orders/reverifications")
def list_reverifications(
    open_only: Annotated[bool, Query(alias="open")] = True,
    principal: Principal = Depends(require(Perm.ORDERS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    """Pump channels whose patient was merged (ADT^A40) while associated: they wait for a
    clinician to re-verify the patient at the bedside (end the association, associate again)."""
    with ctx.db.read() as session:
        query = select(AssociationReverification).order_by(AssociationReverification.id.desc())
        if open_only:
            query = query.join(
                Association, Association.id == AssociationReverification.association_id
            ).where(Association.ended_at.is_(None))
        if principal.unit_scope is not None:
            query = query.where(AssociationReverification.unit == principal.unit_scope)
        return [reverification_view(session, f) for f in session.scalars(query.limit(500))]


@router.get("/api/orders/{order_id}")
def get_order(
    order_id: Annotated[int, Path(ge=1, le=2**62)],
    principal: Principal = Depends(require(Perm.ORDERS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    with ctx.db.read() as session:
        row = session.get(InfusionOrder, order_id)
        scope = principal.unit_scope
        if row is None or (scope is not None and row.unit != scope):
            raise not_found("order_id", order_id)
        return order_view(session, row, ctx.now())
