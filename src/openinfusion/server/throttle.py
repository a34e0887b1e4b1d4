"""Login throttling per username and per client address with exponential back-off (C-13).

After ``free`` consecutive failures a key is blocked for 2, 4, 8 ... seconds (capped). A
blocked attempt is refused before the password is looked at, with the same answer whether
the user exists or not. Failures older than the cap are forgotten. State is in the database
so that every server process sees the same counters.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from openinfusion.server.models import LoginThrottle


def throttle_keys(username: str, address: str) -> list[str]:
    return [f"user:{username.strip().lower()[:150]}", f"addr:{address[:150]}"]


def blocked_for(session: Session, keys: list[str], now: datetime) -> float:
    """Seconds until every key is allowed again (0 when none is blocked)."""
    wait = 0.0
    for key in keys:
        row = session.get(LoginThrottle, key)
        if row is not None and row.blocked_until is not None and row.blocked_until > now:
            wait = max(wait, (row.blocked_until - now).total_seconds())
    return wait


def _ensure_row(session: Session, key: str, now: datetime) -> LoginThrottle:
    """The counter row for ``key``, created if missing and locked for this transaction.

    Insert-or-ignore first, so two processes failing a login at once cannot both insert.
    """
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(LoginThrottle)
        .values(key=key, failures=0, last_failure_at=now, blocked_until=None)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    return session.scalars(
        select(LoginThrottle)
        .where(LoginThrottle.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def record_failure(
    session: Session, keys: list[str], now: datetime, free: int, cap_s: float
) -> None:
    for key in sorted(keys):  # one lock order everywhere: no deadlock between processes
        row = _ensure_row(session, key, now)
        if (now - row.last_failure_at).total_seconds() > cap_s:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        if row.failures >= free:
            delay = min(cap_s, 2.0 ** (row.failures - free + 1))
            row.blocked_until = now + timedelta(seconds=delay)


def purge_stale(session: Session, now: datetime, cap_s: float) -> int:
    """Forget counters neither blocking nor recent, so sprayed usernames cannot grow the
    table without bound (C-19). Rows another transaction holds are skipped, never waited
    for, so this can run beside logins on any number of processes."""
    stale = now - timedelta(seconds=cap_s)
    keys = (
        select(LoginThrottle.key)
        .where(
            LoginThrottle.last_failure_at < stale,
            (LoginThrottle.blocked_until.is_(None)) | (LoginThrottle.blocked_until <= now),
        )
        .with_for_update(skip_locked=True)
    )
    result = session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(keys)))
    return int(result.rowcount)  # type: ignore[attr-defined]


def record_success(session: Session, username: str, now: datetime) -> None:
    """A good login clears its username's counter (never the address counter: a sprayer
    holding one valid account must not be able to reset it)."""
    row = session.get(LoginThrottle, throttle_keys(username, "")[0])
    if row is not None:
        session.delete(row)
