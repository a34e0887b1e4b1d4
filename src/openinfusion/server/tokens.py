"""Bearer access tokens: random, stored only as their SHA-256, with expiry; revocable.

Opaque random tokens were chosen over signed (stateless) ones because a clinical server must
be able to cut off a session at once (logout, account disabled, role changed) and because no
signing secret then exists whose leak would let anyone mint tokens. A fast hash is enough
here: a 256-bit random token cannot be guessed, so no slow password hash is needed.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from openinfusion.server.models import ApiToken, User


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def issue_token(session: Session, user: User, now: datetime, lifetime_s: int) -> str:
    """Store a new token for ``user`` and return its raw value (shown to the client once)."""
    raw = secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            token_hash=token_digest(raw),
            user_id=user.id,
            created_at=now,
            expires_at=now + timedelta(seconds=lifetime_s),
            revoked_at=None,
        )
    )
    return raw


def resolve_token(session: Session, raw: str, now: datetime) -> User | None:
    """The active user owning an unexpired, unrevoked token, else None."""
    if not raw or len(raw) > 200:
        return None
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == token_digest(raw))).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return user


def revoke_token(session: Session, raw: str, now: datetime) -> bool:
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.token_hash == token_digest(raw), ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def revoke_all_for(session: Session, user_id: int, now: datetime) -> None:
    """Revoke every live token of a user (password or role change, deactivation)."""
    session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def purge_expired(session: Session, now: datetime, keep_s: float = 86400.0) -> None:
    """Delete tokens expired more than ``keep_s`` ago (they can never be used again)."""
    session.execute(delete(ApiToken).where(ApiToken.expires_at < now - timedelta(seconds=keep_s)))
