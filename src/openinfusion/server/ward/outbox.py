"""A pump's durable outbox: sequence numbers, unacknowledged envelopes, seen commands, keys.

One SQLite database per pump (WAL, ``synchronous=FULL``: a committed envelope survives a
crash or power loss, RELIABILITY F-03) in the pump's data directory, beside its private key
(``pump_key.pem``, mode 0600, generated on first start; no shared fleet key, C-05).

- :meth:`Outbox.append` takes the next ``seq`` and stores the signed envelope in the same
  transaction, *before* it is sent; ``seq`` starts at 1 and never repeats or skips, also
  across restarts (docs/pump-protocol.md, "Envelopes").
- :meth:`Outbox.ack` deletes envelopes up to the server's acknowledged ``seq``.
- :meth:`Outbox.pending` lists what to replay after the server's ``last_stored_seq``.
- :meth:`Outbox.claim` is the :class:`~openinfusion.security.replay.SeenStore` of the
  pump's replay guard: seen command ids and nonces are kept for good.
- The enrolment (pump id, pinned server key) is kept in the same database.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from openinfusion.errors import InputError
from openinfusion.security import (
    PrivateKey,
    PublicKey,
    b64decode,
    generate_private_key,
    key_id,
    load_private_key,
    save_private_key,
)

KEY_FILE = "pump_key.pem"
DB_FILE = "outbox.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, type TEXT NOT NULL,
                                   frame TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, received_at TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What a pump keeps from its enrolment: its id and the pinned server key."""

    pump_id: str
    server_key: PublicKey
    server_key_id: str
    server_url: str


def load_or_create_key(data_dir: Path) -> PrivateKey:
    """The pump's Ed25519 key: loaded, or generated on first start (file mode 0600)."""
    path = data_dir / KEY_FILE
    if path.exists():
        return load_private_key(path)
    key = generate_private_key()
    save_private_key(key, path)
    return key


class Outbox:
    """The pump's outbox database (see the module docstring)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        self.key = load_or_create_key(self.data_dir)
        self._db = sqlite3.connect(
            self.data_dir / DB_FILE, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        with self._tx():
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('next_seq', '1')")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('acked_seq', '0')")

    # ---- plumbing --------------------------------------------------------------------------

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def close(self) -> None:
        self._db.close()

    # ---- sequence and envelopes --------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        return int(self._meta("next_seq") or 1)

    @property
    def acked_seq(self) -> int:
        """Highest seq the server acknowledged (0 before the first ack)."""
        return int(self._meta("acked_seq") or 0)

    def append(self, kind: str, build: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
        """Take the next seq, build the signed envelope with it, store it; one transaction.

        Nothing is sent before this returns, so a crash either loses the seq with its
        envelope (neither exists) or keeps both.
        """
        with self._tx():
            seq = self.next_seq
            frame = build(seq)
            if frame.get("seq") != seq:
                raise InputError("seq", frame.get("seq"), f"must be the outbox's next seq {seq}")
            self._db.execute(
                "INSERT INTO outbox (seq, type, frame) VALUES (?, ?, ?)",
                (seq, kind, json.dumps(frame, separators=(",", ":"), ensure_ascii=False)),
            )
            self._set_meta("next_seq", str(seq + 1))
        return frame

    def append_many(
        self, items: Sequence[tuple[str, Callable[[int], dict[str, Any]]]]
    ) -> list[dict[str, Any]]:
        """:meth:`append` for several envelopes in one transaction (one fsync), in order."""
        frames: list[dict[str, Any]] = []
        with self._tx():
            seq = self.next_seq
            for kind, build in items:
                frame = build(seq)
                if frame.get("seq") != seq:
                    raise InputError(
                        "seq", frame.get("seq"), f"must be the outbox's next seq {seq}"
                    )
                self._db.execute(
                    "INSERT INTO outbox (seq, type, frame) VALUES (?, ?, ?)",
                    (seq, kind, json.dumps(frame, separators=(",", ":"), ensure_ascii=False)),
                )
                frames.append(frame)
                seq += 1
            self._set_meta("next_seq", str(seq))
        return frames

    def ack(self, seq: int) -> int:
        """The server stored everything up to ``seq``: delete it; returns how many rows."""
        if seq >= self.next_seq:
            raise InputError("ack.seq", seq, f"is beyond the last seq sent ({self.next_seq - 1})")
        with self._tx():
            deleted = self._db.execute("DELETE FROM outbox WHERE seq <= ?", (seq,)).rowcount
            if seq > self.acked_seq:
                self._set_meta("acked_seq", str(seq))
        return int(deleted)

    def pending(self, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Stored envelopes with seq > ``after``, in seq order."""
        sql = "SELECT frame FROM outbox WHERE seq > ? ORDER BY seq"
        args: tuple[int, ...] = (after,)
        if limit is not None:
            sql += " LIMIT ?"
            args = (after, limit)
        return [json.loads(row[0]) for row in self._db.execute(sql, args)]

    def pending_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    # ---- seen commands (SeenStore) -----------------------------------------------------------

    def claim(self, keys: Sequence[str], received_at: str) -> bool:
        with self._tx():
            for k in keys:
                if self._db.execute("SELECT 1 FROM seen WHERE key = ?", (k,)).fetchone():
                    return False
            self._db.executemany(
                "INSERT INTO seen (key, received_at) VALUES (?, ?)",
                [(k, received_at) for k in keys],
            )
        return True

    def __contains__(self, key: object) -> bool:
        return bool(self._db.execute("SELECT 1 FROM seen WHERE key = ?", (str(key),)).fetchone())

    # ---- enrolment ---------------------------------------------------------------------------

    def enrolment(self) -> Enrolment | None:
        pump_id, server_key = self._meta("pump_id"), self._meta("server_public_key")
        if pump_id is None or server_key is None:
            return None
        key = Ed25519PublicKey.from_public_bytes(b64decode(server_key, "server_public_key"))
        return Enrolment(
            pump_id=pump_id,
            server_key=key,
            server_key_id=key_id(key),
            server_url=self._meta("server_url") or "",
        )

    def pin_server(self, pump_id: str, server_public_key: str, server_url: str) -> Enrolment:
        """Keep the pump id and pin the server key from the enrolment answer.

        A pump already enrolled keeps its pinned key: a different one is refused.
        """
        raw = b64decode(server_public_key, "server_public_key")
        if len(raw) != 32:
            raise InputError("server_public_key", server_public_key, "must be 32 raw bytes")
        current = self.enrolment()
        if current is not None and (
            current.pump_id != pump_id
            or current.server_key_id != key_id(Ed25519PublicKey.from_public_bytes(raw))
        ):
            raise InputError(
                "server_public_key",
                server_public_key,
                f"differs from the pinned server key {current.server_key_id} (pump "
                f"{current.pump_id}); decommission the pump before enrolling it elsewhere",
            )
        with self._tx():
            self._set_meta("pump_id", pump_id)
            self._set_meta("server_public_key", server_public_key)
            self._set_meta("server_url", server_url)
        enrolment = self.enrolment()
        assert enrolment is not None
        return enrolment

    def integrity_ok(self) -> bool:
        return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (rollback on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
