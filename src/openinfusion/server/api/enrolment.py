"""Pump enrolment: one-time tokens issued by biomed/admin, redeemed by a pump (protocol v1).

A serial already enrolled with another key is refused as a clone (409, audited, C-12); the
same serial and key may enrol again with a fresh token and keeps its pump id.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from openinfusion.pump.mechanics import PumpKind
from openinfusion.security import b64decode, b64encode, key_id, public_bytes
from openinfusion.security.keys import PublicKey
from openinfusion.server.api.deps import Principal, client_address, get_ctx, require
from openinfusion.server.api.errors import ApiError
from openinfusion.server.api.users import UNIT
from openinfusion.server.clock import iso
from openinfusion.server.context import ServerContext
from openinfusion.server.models import EnrolmentToken, Pump
from openinfusion.server.permissions import Perm

router = APIRouter(tags=["enrolment"])

# The kinds the pump engine knows (openinfusion.pump.mechanics.PumpKind).
PUMP_KINDS = tuple(k.value for k in PumpKind)
TEXT = r"^[A-Za-z0-9][A-Za-z0-9 ._:/-]{0,63}$"


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: str | None = Field(None, pattern=UNIT)


class EnrolRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=16, max_length=128)
    serial: str = Field(pattern=TEXT)
    model: str = Field(pattern=TEXT)
    kind: str = Field(pattern=r"^[a-z_]{2,32}$")
    channels: int = Field(ge=1, le=4)
    public_key: str = Field(min_length=40, max_length=64)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _public_key(text: str) -> PublicKey:
    raw = b64decode(text, "public_key")
    if len(raw) != 32:
        raise ApiError(422, "public_key", text, "must be a base64 raw 32-byte Ed25519 key")
    try:
        return PublicKey.from_public_bytes(raw)
    except ValueError:
        raise ApiError(422, "public_key", text, "is not an Ed25519 public key") from None


@router.post("/api/enrolment-tokens", status_code=201)
def issue_enrolment_token(
    body: TokenRequest | None = None,
    p: Principal = Depends(require(Perm.ENROL)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    token = secrets.token_urlsafe(24)
    now = ctx.now()
    expires = now + timedelta(seconds=ctx.settings.enrolment_token_ttl_s)
    unit = body.unit if body is not None else None
    with ctx.db.write() as session:
        session.add(
            EnrolmentToken(
                token_hash=_digest(token),
                unit=unit,
                created_by=p.username,
                created_at=now,
                expires_at=expires,
            )
        )
        ctx.audit(
            session, p.username, "enrolment.token_issued", f"unit:{unit}", expires_at=iso(expires)
        )
    return {"token": token, "expires_at": iso(expires), "unit": unit}


@router.post("/api/gateway/enrol")
def enrol(
    body: EnrolRequest, request: Request, ctx: ServerContext = Depends(get_ctx)
) -> dict[str, Any]:
    if body.kind not in PUMP_KINDS:
        raise ApiError(422, "kind", body.kind, f"must be one of {', '.join(PUMP_KINDS)}")
    key = _public_key(body.public_key)
    kid = key_id(key)
    address = client_address(request)
    now = ctx.now()
    refusal: ApiError | None = None
    with ctx.db.write() as session:
        token = session.scalars(
            select(EnrolmentToken).where(EnrolmentToken.token_hash == _digest(body.token))
        ).first()
        existing = session.scalars(select(Pump).where(Pump.serial == body.serial)).first()
        if token is None or token.used_at is not None or token.expires_at <= now:
            ctx.audit(
                session,
                f"pump-serial:{body.serial}",
                "enrolment.refused",
                f"serial:{body.serial}",
                reason="invalid, used or expired token",
                address=address,
            )
            refusal = ApiError(401, "token", None, "is invalid, used or expired")
        elif existing is not None and existing.public_key != b64encode(public_bytes(key)):
            ctx.audit(
                session,
                f"pump-serial:{body.serial}",
                "enrolment.clone_refused",
                f"pump:{existing.id}",
                key_id=kid,
                enrolled_key_id=existing.key_id,
                address=address,
            )
            token.used_at, token.used_by_pump = now, None  # a token shown to a clone is spent
            refusal = ApiError(
                409,
                "serial",
                body.serial,
                "is already enrolled with a different key (clone refused)",
            )
        else:
            if existing is None:
                existing = Pump(
                    id=f"P-{secrets.token_hex(6)}",
                    serial=body.serial,
                    model=body.model,
                    kind=body.kind,
                    channel_count=body.channels,
                    unit=token.unit,
                    public_key=b64encode(public_bytes(key)),
                    key_id=kid,
                    enrolled_at=now,
                    last_seen=None,
                    last_seq=0,
                    gaps=[],
                )
                session.add(existing)
                action = "enrolment.enrolled"
            else:
                existing.model, existing.kind = body.model, body.kind
                existing.channel_count = body.channels
                action = "enrolment.re_enrolled"
            token.used_at, token.used_by_pump = now, existing.id
            session.flush()
            ctx.audit(
                session,
                token.created_by,
                action,
                f"pump:{existing.id}",
                serial=body.serial,
                key_id=kid,
                address=address,
            )
            ctx.bus.publish(
                session, {"type": "pump_enrolled", "pump_id": existing.id, "unit": existing.unit}
            )
            pump_id = existing.id
    if refusal is not None:
        raise refusal
    return {
        "pump_id": pump_id,
        "server_public_key": b64encode(public_bytes(ctx.server_key.public_key())),
        "server_key_id": ctx.server_key_id,
    }
