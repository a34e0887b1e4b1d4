"""Login throttling per username and per client address with exponential back-off (C-13).

After ``free`` consecutive failures a key is blocked for 2, 4, 8 ... seconds (capped). A
blocked attempt is refused before the password is looked at, with the same answer whether
the user exists or not. Failures older than the cap are forgotten. State is in the database
so that every server process sees the same counters.
"""

from __future__ import annotations

from datetime import datetime, timedelta

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


def record_failure(
    session: Session, keys: list[str], now: datetime, free: int, cap_s: float
) -> None:
    for key in keys:
        row = session.get(LoginThrottle, key)
        if row is None:
            row = LoginThrottle(key=key, failures=0, last_failure_at=now, blocked_until=None)
            session.add(row)
        elif (now - row.last_failure_at).total_seconds() > cap_s:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        if row.failures >= free:
            delay = min(cap_s, 2.0 ** (row.failures - free + 1))
            row.blocked_until = now + timedelta(seconds=delay)


def record_success(session: Session, username: str, now: datetime) -> None:
    """A good login clears its username's counter (never the address counter: a sprayer
    holding one valid account must not be able to reset it)."""
    row = session.get(LoginThrottle, throttle_keys(username, "")[0])
    if row is not None:
        session.delete(row)
