"""Batches of frames from pump connections: verify, store, audit, publish — one commit.

Verification (:func:`verify_frames`) runs per connection; storage runs in the group
committer's thread, several connections' batches in one transaction. Frames are handled in
arrival order; the first one that fails (malformed, bad signature, another pump's id, a
conflicting replay) ends the batch: what came before it is stored and acknowledged, it and
everything after are not, and the connection is closed so the pump reconnects and replays
from its outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from openinfusion.security import FrameRejected, PublicKey, parse_frame, verify_envelope
from openinfusion.security.envelope import envelope_digest
from openinfusion.server.context import ServerContext
from openinfusion.server.store import Incoming, store_group

CLOSE_BAD_FRAME = 4400
CLOSE_AUTH = 4401
CLOSE_TIMEOUT = 4408
CLOSE_CONFLICT = 4409
CLOSE_REPLACED = 4000
# Sequence numbers are stored as 64-bit integers by both databases.
MAX_SEQ = 2**62


@dataclass(slots=True)
class BatchResult:
    ack_seq: int | None
    stored: int
    duplicates: int
    close_code: int | None = None
    close_reason: str = ""


@dataclass(slots=True)
class Verified:
    """The frames of one batch that passed the checks, and the first refusal, if any."""

    items: list[Incoming]
    rejected: tuple[int, str, dict[str, Any]] | None = None


def verify_frames(pump_id: str, pump_key: PublicKey, texts: list[str]) -> Verified:
    """Parse and verify ``texts`` in order, stopping at the first frame that fails."""
    items: list[Incoming] = []
    for text in texts:
        try:
            frame = parse_frame(text)
            envelope = verify_envelope(frame, pump_key, pump_id=pump_id)
            if envelope.seq > MAX_SEQ:
                raise FrameRejected("envelope.seq", envelope.seq, f"must be at most {MAX_SEQ}")
        except FrameRejected as exc:
            code = (
                CLOSE_AUTH
                if "sig" in exc.field or "pump_id" in exc.field or ("key_id" in exc.field)
                else CLOSE_BAD_FRAME
            )
            return Verified(items, (code, exc.message, exc.as_dict()))
        items.append(Incoming(frame, envelope, envelope_digest(frame)))
    return Verified(items)


def handle_batch(
    ctx: ServerContext, pump_id: str, pump_key: PublicKey, texts: list[str], address: str
) -> BatchResult:
    """Verify and store one batch in its own transaction."""
    verified = verify_frames(pump_id, pump_key, texts)
    with ctx.db.write() as session:
        return store_verified(ctx, session, pump_id, verified, address)


def store_verified(
    ctx: ServerContext, session: Session, pump_id: str, verified: Verified, address: str
) -> BatchResult:
    """Store a verified batch, audit a refusal and publish the updates, all inside the
    caller's transaction (the ack may be sent only after it commits)."""
    return store_verified_group(ctx, session, [(pump_id, verified, address)])[0]


def store_verified_group(
    ctx: ServerContext, session: Session, jobs: Sequence[tuple[str, Verified, str]]
) -> list[BatchResult]:
    """Store the verified batches ``(pump_id, verified, address)`` of several connections
    in the caller's transaction: one result per batch; refusals audited; every live event
    of the group published in one call, delivered only if the transaction commits."""
    now = ctx.now()
    outcomes = store_group(session, [(pump_id, v.items) for pump_id, v, _a in jobs], now)
    events: list[dict[str, Any]] = []
    results: list[BatchResult] = []
    for (pump_id, verified, address), outcome in zip(jobs, outcomes, strict=True):
        rejected = verified.rejected
        unit = outcome.unit
        if outcome.conflict_seq is not None:
            rejected = (
                CLOSE_CONFLICT,
                f"seq {outcome.conflict_seq} differs from the stored envelope",
                {"seq": outcome.conflict_seq},
            )
            ctx.audit(
                session,
                f"pump:{pump_id}",
                "gateway.conflicting_replay",
                f"pump:{pump_id}",
                seq=outcome.conflict_seq,
                address=address,
            )
        elif rejected is not None:
            ctx.audit(
                session,
                f"pump:{pump_id}",
                "gateway.frame_rejected",
                f"pump:{pump_id}",
                address=address,
                error=rejected[2],
            )
        if outcome.stored:
            events.append(
                {
                    "type": "pump_update",
                    "pump_id": pump_id,
                    "unit": unit,
                    "last_seq": outcome.last_seq,
                    "stored": outcome.stored,
                }
            )
        events.extend(dict(ev, unit=unit) for ev in outcome.events)
        result = BatchResult(outcome.ack_seq, outcome.stored, outcome.duplicates)
        if rejected is not None:
            result.close_code, result.close_reason = rejected[0], rejected[1][:120]
        results.append(result)
    if events:
        ctx.bus.publish_many(session, events)
    return results
