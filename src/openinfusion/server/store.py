"""Idempotent, batched storage of verified envelopes: many pumps' batches, one transaction.

Storage is keyed on (pump_id, seq). A replay whose signed content is identical to what is
stored is acknowledged again and not stored twice; one that differs under the same seq is a
conflict (tampering or a cloned pump): that batch stops there, nothing from that envelope on
is stored or acknowledged, and the caller audits it. The ack covers a batch only after the
caller commits.

A group costs a fixed number of statements whatever its size: one read of the pump rows
(locked ``FOR UPDATE`` on PostgreSQL), one ``executemany`` insert of every message, one
update of the pump rows, and the derived state's reads and writes (:mod:`.derive`). Stored
digests are read back only for seqs the pump's bookkeeping says may be stored (at or below
``last_seq``): a seq above it has never been stored, because ``last_seq`` and ``gaps`` move
in the same transaction as the insert — and the unique ``(pump_id, seq)`` index still
refuses a duplicate should that ever not hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from openinfusion.security.envelope import Envelope, envelope_digest, utc_text
from openinfusion.server.derive import Derivation, PumpState, executemany
from openinfusion.server.gaps import note_stored
from openinfusion.server.models import Pump, PumpMessage

_pumps = cast(Table, Pump.__table__)
_messages = cast(Table, PumpMessage.__table__)
_MESSAGE_COLUMNS = (
    "pump_id",
    "seq",
    "type",
    "sent_at",
    "received_at",
    "body",
    "digest",
    "signature",
)
_INSERT_MESSAGE = insert(_messages).values({c: bindparam(c) for c in _MESSAGE_COLUMNS})
_SEEN = (
    update(_pumps)
    .where(_pumps.c.id == bindparam("w_id"))
    .values(
        last_seq=bindparam("v_last_seq"),
        gaps=bindparam("v_gaps"),
        last_seen=bindparam("v_last_seen"),
    )
)
_LOAD_PUMPS = (
    select(
        _pumps.c.id,
        _pumps.c.unit,
        _pumps.c.last_seq,
        _pumps.c.gaps,
        _pumps.c.library_version,
        _pumps.c.power,
    )
    .where(_pumps.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_pumps.c.id)
    .with_for_update()
)
_REPORTED = (
    update(_pumps)
    .where(_pumps.c.id == bindparam("w_id"))
    .values(library_version=bindparam("v_library_version"), power=bindparam("v_power"))
)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One verified envelope, the frame it came in (for its signature) and the digest of
    its signed content (computed from the frame when not given)."""

    frame: dict[str, Any]
    envelope: Envelope
    digest: str = ""

    def content_digest(self) -> str:
        return self.digest or envelope_digest(self.frame)


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
    return store_group(session, [(pump_id, items)], now)[0]


def store_group(
    session: Session, batches: Sequence[tuple[str, Sequence[Incoming]]], now: datetime
) -> list[BatchOutcome]:
    """Store several batches ``(pump_id, items)`` inside the caller's transaction; one
    outcome per batch, in order. A pump may appear in more than one batch (an old and a new
    connection): its batches are applied one after the other."""
    conn = session.connection()
    pumps = _load_pumps(conn, {pump_id for pump_id, _ in batches})
    known = _stored_digests(conn, pumps, batches)
    before = {p.id: (p.library_version, p.power) for p in pumps.values()}
    rows: list[dict[str, Any]] = []
    fresh: dict[str, list[Envelope]] = {}
    outcomes: list[BatchOutcome] = []
    seen: set[str] = set()
    for pump_id, items in batches:
        pump = pumps[pump_id]
        out = BatchOutcome(unit=pump.unit, last_seq=pump.last_seq)
        outcomes.append(out)
        if not items:
            continue
        seen.add(pump_id)
        for it in items:
            env = it.envelope
            digest = it.content_digest()
            stored_digest = known.get((pump_id, env.seq))
            if stored_digest is not None:
                if stored_digest != digest:
                    out.conflict_seq = env.seq
                    break
                out.duplicates += 1
            else:
                known[(pump_id, env.seq)] = digest
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
                fresh.setdefault(pump_id, []).append(env)
                pump.gaps, pump.last_seq = note_stored(pump.gaps, pump.last_seq, env.seq)
                out.stored += 1
            out.ack_seq = env.seq if out.ack_seq is None else max(out.ack_seq, env.seq)
        out.last_seq = pump.last_seq
    executemany(conn, _INSERT_MESSAGE, rows)
    _derive(conn, pumps, fresh, outcomes, batches, now)
    if seen:
        _write_pumps(conn, [pumps[i] for i in sorted(seen)], before, now)
    return outcomes


def _write_pumps(
    conn: Connection,
    pumps: list[PumpState],
    before: dict[str, tuple[str | None, Any]],
    now: datetime,
) -> None:
    """Seq bookkeeping and ``last_seen`` of every pump that sent something; library and
    power only where a status changed them."""
    executemany(
        conn,
        _SEEN,
        [
            {"w_id": p.id, "v_last_seq": p.last_seq, "v_gaps": p.gaps, "v_last_seen": now}
            for p in pumps
        ],
    )
    changed = [
        {"w_id": p.id, "v_library_version": p.library_version, "v_power": p.power}
        for p in pumps
        if (p.library_version, p.power) != before[p.id]
    ]
    executemany(conn, _REPORTED, changed)


def _load_pumps(conn: Connection, pump_ids: set[str]) -> dict[str, PumpState]:
    """The group's pump rows, locked in id order (PostgreSQL; SQLite's write transaction
    is already exclusive). A pump that does not exist raises :class:`LookupError`."""
    ids = sorted(pump_ids)
    pumps = {
        r.id: PumpState(
            r.id, r.unit, r.last_seq, [list(g) for g in r.gaps or []], r.library_version, r.power
        )
        for r in conn.execute(_LOAD_PUMPS, {"ids": ids})
    }
    for pump_id in ids:
        if pump_id not in pumps:
            raise LookupError(pump_id)
    return pumps


def _stored_digests(
    conn: Connection,
    pumps: dict[str, PumpState],
    batches: Sequence[tuple[str, Sequence[Incoming]]],
) -> dict[tuple[str, int], str]:
    """Digests already stored for the group's seqs that may be stored (replays)."""
    maybe: dict[str, set[int]] = {}
    for pump_id, items in batches:
        last = pumps[pump_id].last_seq
        for it in items:
            if it.envelope.seq <= last:
                maybe.setdefault(pump_id, set()).add(it.envelope.seq)
    known: dict[tuple[str, int], str] = {}
    for pump_id, seqs in maybe.items():
        query = select(_messages.c.seq, _messages.c.digest).where(
            _messages.c.pump_id == pump_id, _messages.c.seq.in_(seqs)
        )
        for seq, digest in conn.execute(query):
            known[(pump_id, seq)] = digest
    return known


def _derive(
    conn: Connection,
    pumps: dict[str, PumpState],
    fresh: dict[str, list[Envelope]],
    outcomes: list[BatchOutcome],
    batches: Sequence[tuple[str, Sequence[Incoming]]],
    now: datetime,
) -> None:
    """Apply the newly stored envelopes to derived state, each pump's in seq order, and
    hand each batch the events its envelopes raised."""
    if not fresh:
        return
    derivation = Derivation(conn)
    derivation.load(p for p, envs in fresh.items() if any(e.type in _CHANNEL_KINDS for e in envs))
    events: dict[str, list[dict[str, Any]]] = {}
    for pump_id, envelopes in fresh.items():
        pump, raised = pumps[pump_id], events.setdefault(pump_id, [])
        for env in sorted(envelopes, key=lambda e: e.seq):
            raised.extend(derivation.apply(pump, env.type, env.seq, env.body, now))
    derivation.write()
    # the events of a pump go with its first batch in the group that stored something
    for (pump_id, _items), out in zip(batches, outcomes, strict=True):
        if out.stored and pump_id in events:
            out.events = events.pop(pump_id)


_CHANNEL_KINDS = frozenset({"status", "event"})
