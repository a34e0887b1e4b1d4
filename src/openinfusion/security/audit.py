"""Tamper-evident audit chain (RELIABILITY C-21).

Each entry carries a monotonic sequence number and the hash of the entry before it::

    hash = SHA-256(prev_hash || canonical_json({seq, ts, actor, action, object, details}))

with ``prev_hash`` as its 64 hex digits (the first entry uses 64 zeros). Changing,
deleting or reordering any entry breaks the chain at that entry. Cutting entries off the
end leaves a valid shorter chain, so :func:`verify_chain` also takes an *anchor*: the head
(sequence number and hash) recorded elsewhere, for example signed by the server key
(:func:`sign_anchor`), so a store that lost its tail is reported as truncated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from openinfusion.security.keys import (
    PrivateKey,
    PublicKey,
    b64decode,
    b64encode,
    canonical_json,
    sign,
    verify,
)

GENESIS_HASH = "0" * 64
ANCHOR_DOMAIN = b"openinfusion audit anchor v1\x00"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit record; ``ts`` is an ISO 8601 UTC timestamp string."""

    seq: int
    ts: str
    actor: str
    action: str
    object: str
    details: Mapping[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS_HASH
    hash: str = ""

    def content(self) -> dict[str, Any]:
        """The hashed fields (everything except the two hashes)."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "actor": self.actor,
            "action": self.action,
            "object": self.object,
            "details": dict(self.details),
        }


def entry_hash(prev_hash: str, entry: AuditEntry) -> str:
    """SHA-256 hex of ``prev_hash`` (hex text) followed by the entry's canonical JSON."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_json(entry.content()))
    return digest.hexdigest()


def chain_entry(
    previous: AuditEntry | None,
    ts: str,
    actor: str,
    action: str,
    object: str,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """The entry that follows ``previous`` (or the first entry), with its hash filled in."""
    seq = 1 if previous is None else previous.seq + 1
    prev_hash = GENESIS_HASH if previous is None else previous.hash
    draft = AuditEntry(seq, ts, actor, action, object, dict(details or {}), prev_hash)
    return AuditEntry(
        seq, ts, actor, action, object, draft.details, prev_hash, entry_hash(prev_hash, draft)
    )


@dataclass(frozen=True, slots=True)
class Anchor:
    """The chain head recorded outside the chain: its last sequence number and hash."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Result of :func:`verify_chain`: ``ok`` or the first bad entry and what is wrong."""

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None  # modified | missing | reordered | truncated | broken_link
    message: str = "audit chain intact"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "message": self.message,
        }


def verify_chain(entries: Iterable[AuditEntry], anchor: Anchor | None = None) -> ChainReport:
    """Check the chain in storage order and report the first broken, missing, reordered or
    truncated entry. ``anchor`` is the head recorded elsewhere (detects a cut-off tail)."""
    expected_seq = 1
    prev_hash = GENESIS_HASH
    checked = 0
    for entry in entries:
        if entry.seq < expected_seq:
            return _bad(
                checked,
                expected_seq - 1,
                prev_hash,
                entry.seq,
                "reordered",
                f"entry {entry.seq} appears after entry {expected_seq - 1}",
            )
        if entry.seq > expected_seq:
            return _bad(
                checked,
                expected_seq - 1,
                prev_hash,
                expected_seq,
                "missing",
                f"entry {expected_seq} is missing (next present is {entry.seq})",
            )
        if entry.prev_hash != prev_hash:
            return _bad(
                checked,
                expected_seq - 1,
                prev_hash,
                entry.seq,
                "broken_link",
                f"entry {entry.seq} does not link to the hash of entry {entry.seq - 1}",
            )
        if entry_hash(prev_hash, entry) != entry.hash:
            return _bad(
                checked,
                expected_seq - 1,
                prev_hash,
                entry.seq,
                "modified",
                f"entry {entry.seq} was modified (its hash does not match its content)",
            )
        prev_hash = entry.hash
        expected_seq += 1
        checked += 1
    head_seq = expected_seq - 1
    if anchor is not None:
        if anchor.seq > head_seq:
            return _bad(
                checked,
                head_seq,
                prev_hash,
                head_seq + 1,
                "truncated",
                f"chain ends at entry {head_seq} but the anchor records {anchor.seq}",
            )
        if anchor.seq == head_seq and anchor.hash != prev_hash:
            return _bad(
                checked,
                head_seq,
                prev_hash,
                head_seq,
                "modified",
                f"entry {head_seq} differs from the anchored head",
            )
    return ChainReport(True, checked, head_seq, prev_hash)


def _bad(
    checked: int, head_seq: int, head_hash: str, seq: int, problem: str, message: str
) -> ChainReport:
    return ChainReport(False, checked, head_seq, head_hash, seq, problem, message)


def anchor_bytes(anchor: Anchor) -> bytes:
    return ANCHOR_DOMAIN + canonical_json({"seq": anchor.seq, "hash": anchor.hash})


def sign_anchor(key: PrivateKey, anchor: Anchor) -> str:
    """Base64 Ed25519 signature of the anchor (domain-separated from every other signature)."""
    return b64encode(sign(key, anchor_bytes(anchor)))


def verify_anchor(key: PublicKey, anchor: Anchor, signature: str) -> bool:
    """True when ``signature`` is the key's signature of ``anchor``."""
    try:
        raw = b64decode(signature, "anchor_signature")
    except ValueError:
        return False
    return verify(key, raw, anchor_bytes(anchor))
