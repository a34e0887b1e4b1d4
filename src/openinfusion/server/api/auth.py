"""Login (OAuth2 password form → bearer token), logout and "who am I".

Unknown user, wrong password and disabled account get the same answer (no enumeration,
C-13); an unknown user still costs one Argon2 verification so timing does not tell either.
"""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from openinfusion.security import hash_password, needs_rehash, verify_password
from openinfusion.security.passwords import dummy_hash
from openinfusion.server import throttle
from openinfusion.server.api.deps import (
    Principal,
    authenticate,
    bearer_token,
    client_address,
    get_ctx,
)
from openinfusion.server.api.errors import ApiError
from openinfusion.server.context import ServerContext
from openinfusion.server.models import User
from openinfusion.server.tokens import issue_token, purge_expired, revoke_token

router = APIRouter(prefix="/api/auth", tags=["auth"])
log = logging.getLogger(__name__)

BAD_LOGIN = "invalid username or password"


@router.post("/token")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    address = client_address(request)
    keys = throttle.throttle_keys(username, address)
    with ctx.db.write() as session:
        wait = throttle.blocked_for(session, keys, ctx.now())
        if wait > 0:
            ctx.audit(
                session,
                username[:64],
                "login.throttled",
                f"user:{username[:64]}",
                address=address,
                retry_after_s=math.ceil(wait),
            )
    if wait > 0:
        raise ApiError(
            429,
            "username",
            None,
            "too many failed logins: try again later",
            {"Retry-After": str(math.ceil(wait))},
        )
    with ctx.db.read() as session:
        user = session.scalars(select(User).where(User.username == username)).first()
        stored = user.password_hash if user is not None else dummy_hash()
        good = verify_password(stored, password) and user is not None and user.active
    with ctx.db.write() as session:
        now = ctx.now()
        if not good or user is None:
            throttle.record_failure(
                session,
                keys,
                now,
                ctx.settings.login_free_failures,
                ctx.settings.login_backoff_cap_s,
            )
            ctx.audit(
                session, username[:64], "login.failure", f"user:{username[:64]}", address=address
            )
        else:
            throttle.record_success(session, username, now)
            row = session.get(User, user.id)
            assert row is not None
            if needs_rehash(row.password_hash):
                row.password_hash = hash_password(password)
            token = issue_token(session, row, now, ctx.settings.token_lifetime_s)
            ctx.audit(
                session, row.username, "login.success", f"user:{row.username}", address=address
            )
    _housekeeping(ctx, failed=not good or user is None)
    if not good or user is None:
        raise ApiError(401, "credentials", None, BAD_LOGIN, {"WWW-Authenticate": "Bearer"})
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": ctx.settings.token_lifetime_s,
    }


def _housekeeping(ctx: ServerContext, failed: bool) -> None:
    """Best effort, in its own transaction: stale login counters after a failure, long
    expired tokens after a success."""
    try:
        with ctx.db.write() as session:
            if failed:
                throttle.purge_stale(session, ctx.now(), ctx.settings.login_backoff_cap_s)
            else:
                purge_expired(session, ctx.now())
    except SQLAlchemyError:  # the login itself is already decided and recorded
        log.warning("login housekeeping skipped", exc_info=True)


@router.post("/logout", status_code=204)
def logout(request: Request, ctx: ServerContext = Depends(get_ctx)) -> None:
    principal = authenticate(request, ctx)
    raw = bearer_token(request) or ""
    with ctx.db.write() as session:
        revoke_token(session, raw, ctx.now())
        ctx.audit(session, principal.username, "logout", f"user:{principal.username}")


@router.get("/me")
def me(request: Request, ctx: ServerContext = Depends(get_ctx)) -> dict[str, Any]:
    p: Principal = authenticate(request, ctx)
    return {"username": p.username, "role": p.role, "unit": p.unit}
