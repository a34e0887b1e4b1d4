"""Accounts (administrator only): list, create, read, change, deactivate. All audited."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from openinfusion.security import generate_password, hash_password
from openinfusion.security.passwords import check_password_rules
from openinfusion.server.api.deps import Principal, get_ctx, require
from openinfusion.server.api.errors import ApiError, not_found
from openinfusion.server.clock import iso
from openinfusion.server.context import ServerContext
from openinfusion.server.models import User
from openinfusion.server.permissions import Perm, Role
from openinfusion.server.tokens import revoke_all_for

router = APIRouter(prefix="/api/users", tags=["users"])

USERNAME = r"^[a-z][a-z0-9._-]{2,63}$"
UNIT = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$"
UserId = Annotated[int, Path(ge=1, le=2**62)]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=USERNAME)
    role: Role
    unit: str | None = Field(None, pattern=UNIT)
    password: str | None = Field(None, min_length=12, max_length=256)


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    unit: str | None = Field(None, pattern=UNIT)
    active: bool | None = None
    password: str | None = Field(None, min_length=12, max_length=256)


def user_view(u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "username": u.username,
        "role": u.role,
        "unit": u.unit,
        "active": u.active,
        "created_at": iso(u.created_at),
        "updated_at": iso(u.updated_at),
    }


def _get(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise not_found("user_id", user_id)
    return user


@router.get("")
def list_users(
    _p: Principal = Depends(require(Perm.USERS_MANAGE)), ctx: ServerContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        return [user_view(u) for u in session.scalars(select(User).order_by(User.id))]


@router.post("", status_code=201)
def create_user(
    body: NewUser,
    p: Principal = Depends(require(Perm.USERS_MANAGE)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    password = body.password or generate_password()
    check_password_rules(password)
    digest = hash_password(password)
    now = ctx.now()
    with ctx.db.write() as session:
        if session.scalars(select(User).where(User.username == body.username)).first():
            raise ApiError(409, "username", body.username, "is already taken")
        user = User(
            username=body.username,
            password_hash=digest,
            role=body.role.value,
            unit=body.unit,
            active=True,
            created_at=now,
            updated_at=now,
        )
        session.add(user)
        session.flush()
        ctx.audit(
            session,
            p.username,
            "user.create",
            f"user:{user.username}",
            role=user.role,
            unit=user.unit,
        )
        out = user_view(user)
    if body.password is None:
        out["password"] = password  # shown once, never stored in clear
    return out


@router.get("/{user_id}")
def get_user(
    user_id: UserId,
    _p: Principal = Depends(require(Perm.USERS_MANAGE)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    with ctx.db.read() as session:
        return user_view(_get(session, user_id))


@router.patch("/{user_id}")
def change_user(
    user_id: UserId,
    body: UserChange,
    p: Principal = Depends(require(Perm.USERS_MANAGE)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    digest = hash_password(body.password) if body.password else None
    now = ctx.now()
    with ctx.db.write() as session:
        user = _get(session, user_id)
        if user.id == p.user_id and (
            body.active is False or (body.role is not None and body.role != Role.ADMIN)
        ):
            raise ApiError(
                409, "user_id", user_id, "administrators cannot disable or demote their own account"
            )
        changes: dict[str, Any] = {}
        if body.role is not None and body.role.value != user.role:
            changes["role"] = [user.role, body.role.value]
            user.role = body.role.value
        if "unit" in body.model_fields_set and body.unit != user.unit:
            changes["unit"] = [user.unit, body.unit]
            user.unit = body.unit
        if body.active is not None and body.active != user.active:
            changes["active"] = [user.active, body.active]
            user.active = body.active
        if digest is not None:
            changes["password"] = "changed"
            user.password_hash = digest
        if changes:
            user.updated_at = now
            revoke_all_for(session, user.id, now)
            ctx.audit(session, p.username, "user.change", f"user:{user.username}", **changes)
        return user_view(user)


@router.delete("/{user_id}", status_code=204)
def deactivate_user(
    user_id: UserId,
    p: Principal = Depends(require(Perm.USERS_MANAGE)),
    ctx: ServerContext = Depends(get_ctx),
) -> None:
    """Accounts are deactivated, not erased: the audit trail keeps naming them."""
    now = ctx.now()
    with ctx.db.write() as session:
        user = _get(session, user_id)
        if user.id == p.user_id:
            raise ApiError(409, "user_id", user_id, "administrators cannot disable themselves")
        user.active, user.updated_at = False, now
        revoke_all_for(session, user.id, now)
        ctx.audit(session, p.username, "user.deactivate", f"user:{user.username}")
