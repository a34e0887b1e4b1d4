"""Idempotent, batched storage of verified envelopes (one transaction per batch).

Storage is keyed on (pump_id, seq). A replay whose signed content is identical to what is
stored is acknowledged again and not stored twice; one that differs under the same seq is a
conflict (tampering or a cloned pump): the batch stops there, nothing from that envelope on
is stored or acknowledged, and the caller audits it. The ack covers the batch only after
the caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from openinfusion.security.envelope import Envelope, envelope_digest, utc_text
from openinfusion.server.derive import Held, apply_envelope
from openinfusion.server.gaps import note_stored
from openinfusion.server.models import Pump, PumpMessage


@dataclass(frozen=True, slots=True)
class Incoming:
    """One verified envelope and the frame it came in (for its digest and signature)."""

    frame: dict[str, Any]
    envelope: Envelope


@dataclass(slots=True)
class BatchOutcome:
    ack_seq: int | None = None
    stored: int = 0
    duplicates: int = 0
    conflict_seq: int | None = None
    last_seq: int = 0
    unit: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


def store_batch(
    session: Session, pump_id: str, items: Sequence[Incoming], now: datetime
) -> BatchOutcome:
    """Store ``items`` (in arrival order) for ``pump_id`` inside the caller's transaction."""
    out = BatchOutcome()
    pump = session.get(Pump, pump_id, with_for_update=True)
    if pump is None:
        raise LookupError(pump_id)
    out.unit, out.last_seq = pump.unit, pump.last_seq
    if not items:
        return out
    seqs = [it.envelope.seq for it in items]
    known: dict[int, str] = dict(
        session.execute(
            select(PumpMessage.seq, PumpMessage.digest).where(
                PumpMessage.pump_id == pump_id, PumpMessage.seq.in_(set(seqs))
            )
        ).all()
    )
    rows: list[dict[str, Any]] = []
    fresh: list[Incoming] = []
    gaps, last_seq = list(pump.gaps or []), pump.last_seq
    for it in items:
        env = it.envelope
        digest = envelope_digest(it.frame)
        stored_digest = known.get(env.seq)
        if stored_digest is not None:
            if stored_digest != digest:
                out.conflict_seq = env.seq
                break
            out.duplicates += 1
        else:
            known[env.seq] = digest
            rows.append(
                {
                    "pump_id": pump_id,
                    "seq": env.seq,
                    "type": env.type,
                    "sent_at": utc_text(env.sent_at),
                    "received_at": now,
                    "body": env.body,
                    "digest": digest,
                    "signature": it.frame["sig"],
                }
            )
            fresh.append(it)
            gaps, last_seq = note_stored(gaps, last_seq, env.seq)
        out.ack_seq = env.seq if out.ack_seq is None else max(out.ack_seq, env.seq)
    if rows:
        session.execute(insert(PumpMessage), rows)
    pump.gaps, pump.last_seq, pump.last_seen = gaps, last_seq, now
    held = Held()
    with session.no_autoflush:  # one flush at commit, not one per envelope
        for it in sorted(fresh, key=lambda i: i.envelope.seq):
            env = it.envelope
            out.events.extend(apply_envelope(session, pump, env.type, env.seq, env.body, now, held))
    out.stored, out.last_seq = len(rows), pump.last_seq
    return out
