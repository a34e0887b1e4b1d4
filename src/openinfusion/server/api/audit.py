"""The audit trail: read it, and verify its hash chain and signed head."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from openinfusion.server.api.deps import Principal, get_ctx, require
from openinfusion.server.audit_log import verify_stored_chain
from openinfusion.server.context import ServerContext
from openinfusion.server.models import AuditRecord
from openinfusion.server.permissions import Perm

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("")
def list_audit(
    after_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    action: Annotated[str | None, Query(max_length=64)] = None,
    _p: Principal = Depends(require(Perm.AUDIT_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        query = select(AuditRecord).where(AuditRecord.seq > after_seq)
        if action is not None:
            query = query.where(AuditRecord.action == action)
        rows = session.scalars(query.order_by(AuditRecord.seq).limit(limit))
        return [
            {
                "seq": r.seq,
                "ts": r.ts,
                "actor": r.actor,
                "action": r.action,
                "object": r.object,
                "details": r.details,
                "prev_hash": r.prev_hash,
                "hash": r.hash,
            }
            for r in rows
        ]


@router.get("/verify")
def verify_audit(
    p: Principal = Depends(require(Perm.AUDIT_READ)), ctx: ServerContext = Depends(get_ctx)
) -> dict[str, Any]:
    with ctx.db.read() as session:
        report = verify_stored_chain(session, ctx.server_key)
    if not report.ok:
        ctx.audit_alone(p.username, "audit.verify_failed", "audit_log", **report.as_dict())
    return report.as_dict()
