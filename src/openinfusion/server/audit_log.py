"""Append audit entries to the chain inside the caller's transaction, and verify the chain."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from openinfusion.security import (
    Anchor,
    AuditEntry,
    ChainReport,
    PrivateKey,
    chain_entry,
    sign_anchor,
    verify_anchor,
    verify_chain,
)
from openinfusion.server.clock import iso
from openinfusion.server.models import AuditAnchor, AuditRecord

_PG_AUDIT_LOCK = 0x6F69_6175


def _parse_ts(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def record_to_entry(r: AuditRecord) -> AuditEntry:
    return AuditEntry(r.seq, r.ts, r.actor, r.action, r.object, r.details, r.prev_hash, r.hash)


def append(
    session: Session,
    key: PrivateKey,
    now: datetime,
    actor: str,
    action: str,
    obj: str,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add one entry (and move the signed anchor) in ``session``'s transaction.

    Appends are serialised: SQLite write transactions are IMMEDIATE, and on PostgreSQL a
    transaction-scoped advisory lock is taken before reading the head.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})
    last = session.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)).first()
    previous = record_to_entry(last) if last is not None else None
    details = dict(details or {})
    if previous is not None:
        back_s = (_parse_ts(previous.ts) - now).total_seconds()
        if back_s > 0:  # C-21: a clock set back cannot pass unseen as back-dated entries
            details["clock_went_back_s"] = round(back_s, 3)
    entry = chain_entry(previous, iso(now) or "", actor, action, obj, details)
    session.add(
        AuditRecord(
            seq=entry.seq,
            ts=entry.ts,
            actor=entry.actor,
            action=entry.action,
            object=entry.object,
            details=dict(entry.details),
            prev_hash=entry.prev_hash,
            hash=entry.hash,
        )
    )
    signature = sign_anchor(key, Anchor(entry.seq, entry.hash))
    anchor = session.get(AuditAnchor, 1)
    if anchor is None:
        session.add(AuditAnchor(id=1, seq=entry.seq, hash=entry.hash, signature=signature))
    else:
        anchor.seq, anchor.hash, anchor.signature = entry.seq, entry.hash, signature
    session.flush()
    return entry


def iter_entries(session: Session, batch: int = 1000) -> Iterator[AuditEntry]:
    """Every entry in storage (primary key) order, streamed."""
    rows = session.scalars(
        select(AuditRecord).order_by(AuditRecord.seq).execution_options(yield_per=batch)
    )
    for r in rows:
        yield record_to_entry(r)


def verify_stored_chain(session: Session, key: PrivateKey) -> ChainReport:
    """Verify the stored chain against the anchor, whose signature must be the server's."""
    row = session.get(AuditAnchor, 1)
    anchor: Anchor | None = None
    if row is not None:
        anchor = Anchor(row.seq, row.hash)
        if not verify_anchor(key.public_key(), anchor, row.signature):
            report = verify_chain(iter_entries(session))
            return ChainReport(
                False,
                report.checked,
                report.head_seq,
                report.head_hash,
                row.seq,
                "anchor_forged",
                "the recorded chain head is not signed by this server's key",
            )
    report = verify_chain(iter_entries(session), anchor)
    if report.ok and anchor is None and report.checked:
        return ChainReport(
            False,
            report.checked,
            report.head_seq,
            report.head_hash,
            report.head_seq,
            "anchor_missing",
            "the signed chain head is missing: the tail cannot be vouched for",
        )
    return report
