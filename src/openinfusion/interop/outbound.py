"""The outbound HL7 feed to the EHR: the forwarder fills ``hl7_outbox``, a sender per
destination empties it over MLLP, in order, each message's ACK awaited.

Delivery policy (RELIABILITY F-13, "nothing lost"):

- rows go out in id order per destination; the oldest undelivered row is always sent first
  (a message waiting for a retry holds back the ones after it, so the chart never sees a
  stop before its start);
- ``AA``/``CA``: ``acked``;
- no connection, no reply within ``ack_timeout_s`` (a tarpit), a reply that cannot be read
  or that names another control id: ``pending`` again with ``attempts``, ``last_error`` and
  ``next_attempt_at`` = now + back-off (``retry_base_s`` doubled per attempt, at most
  ``retry_max_s``), retried without limit: the EHR being away never loses a message;
- ``AE``/``CE`` (application error): retried the same way ``ae_retries`` times, then parked;
- ``AR``/``CR`` (rejected: the receiver will never take it): parked at once;
- parked rows have status ``error`` with the reason in ``last_error``; they no longer hold
  back the rows after them, and show on ``GET /api/interop/hl7/outbox``.

A row is marked ``sent`` (in one transaction per batch) before it is written to the
socket and ``acked`` after its ACK. If the server stops in between, the row is sent again
after the restart with the same MSH-10, so a receiver that did take it can deduplicate.
With SQLite there is one server process: at start the sender takes every ``sent`` row back
to ``pending``. With PostgreSQL several processes may run: each destination is served by
the one process holding its advisory lock, which takes that destination's ``sent`` rows
back when it gets the lock (the lock dies with the process that held it).

Database work runs in the service's own worker threads, never on the event loop that
also carries the pump gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, func, select, text, update

from openinfusion.errors import InputError
from openinfusion.interop.mllp import MLLPClient, MLLPError
from openinfusion.interop.outbound_feed import CURSOR, FeedPolicy, Forwarder
from openinfusion.interop.outbound_tables import OutboundCursor, OutboxMessage
from openinfusion.server.context import ServerContext
from openinfusion.server.models import PumpMessage

log = logging.getLogger(__name__)

T = TypeVar("T")

ACCEPTED = frozenset({"AA", "CA"})
APP_ERROR = frozenset({"AE", "CE"})
REJECTED = frozenset({"AR", "CR"})


def parse_destination(text: str) -> tuple[str, int]:
    """``host:port`` of an MLLP endpoint (``[v6addr]:port`` for IPv6)."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InputError("hl7_destination", text, "must be HOST:PORT with a port 1-65535")
    return host, int(port)


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """Timeouts and retries of the sender (seconds)."""

    ack_timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    retry_base_s: float = 1.0
    retry_max_s: float = 300.0
    ae_retries: int = 3
    batch: int = 50
    poll_s: float = 1.0

    def backoff(self, attempts: int) -> timedelta:
        """Wait before attempt ``attempts + 1`` (exponential, capped)."""
        exp = min(max(attempts - 1, 0), 30)
        return timedelta(seconds=min(self.retry_max_s, self.retry_base_s * 2**exp))


@dataclass(frozen=True, slots=True)
class AckReading:
    """What a reply said: MSA-1, MSA-2 and the error text (ERR-8, else MSA-3)."""

    code: str
    control_id: str
    text: str


def read_ack(reply: bytes) -> AckReading:
    """Read an ACK's MSA (raises ``HL7ParseError`` for an unreadable reply)."""
    from openinfusion.interop.hl7.errors import REQUIRED_FIELD_MISSING, HL7ParseError
    from openinfusion.interop.hl7.parse import field_text, parse_message, segments

    msg = parse_message(reply)
    msa = segments(msg, "MSA")
    if not msa:
        raise HL7ParseError(
            "MSA", "", "an acknowledgement needs an MSA segment", REQUIRED_FIELD_MISSING
        )
    errs = [field_text(msg, e, 8) or field_text(msg, e, 3, 2) for e in segments(msg, "ERR")]
    detail = "; ".join(e for e in errs if e) or field_text(msg, msa[0], 3)
    return AckReading(field_text(msg, msa[0], 1).upper(), field_text(msg, msa[0], 2), detail[:500])


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    control_id: str
    payload: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one send: new status, and what to record."""

    id: int
    status: str  # acked | pending | error
    ack_code: str | None
    error: str | None
    retry_at: datetime | None = None


async def off_loop(executor: ThreadPoolExecutor | None, fn: Callable[..., T], *args: Any) -> T:
    """Run blocking (database) work in ``executor`` so the event loop keeps serving pumps."""
    return await asyncio.get_running_loop().run_in_executor(executor, functools.partial(fn, *args))


class OutboxStore:
    """The sender's database operations (synchronous: run them in a worker thread)."""

    def __init__(self, ctx: ServerContext, destination: str) -> None:
        self.ctx, self.destination = ctx, destination

    def reclaim_sent(self) -> int:
        """Rows left ``sent`` by a process that stopped: ``pending`` again, due now."""
        with self.ctx.db.write() as s:
            result = s.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.destination == self.destination,
                    OutboxMessage.status == "sent",
                )
                .values(status="pending")
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def claim(self, limit: int) -> tuple[list[Claimed], datetime | None]:
        """The next rows due, marked ``sent``; or none and when the head row is due."""
        now = self.ctx.now()
        with self.ctx.db.read() as s:
            rows = s.execute(
                select(
                    OutboxMessage.id,
                    OutboxMessage.control_id,
                    OutboxMessage.payload,
                    OutboxMessage.attempts,
                    OutboxMessage.next_attempt_at,
                )
                .where(
                    OutboxMessage.destination == self.destination,
                    OutboxMessage.status.in_(("pending", "sent")),
                )
                .order_by(OutboxMessage.id)
                .limit(limit)
            ).all()
        if not rows:
            return [], None
        if rows[0].next_attempt_at > now:
            return [], rows[0].next_attempt_at
        due = [r for r in rows if r.next_attempt_at <= now]
        with self.ctx.db.write() as s:
            s.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_([r.id for r in due]))
                .values(status="sent", sent_at=now)
                .execution_options(synchronize_session=False)
            )
        return [Claimed(r.id, r.control_id, r.payload, r.attempts) for r in due], None

    def record(self, outcomes: Sequence[Outcome], released: Sequence[int]) -> None:
        """Store send results, and give back claimed rows that were not sent."""
        now = self.ctx.now()
        with self.ctx.db.write() as s:
            for o in outcomes:
                values: dict[str, Any] = {
                    "status": o.status,
                    "attempts": OutboxMessage.attempts + 1,
                    "ack_code": o.ack_code,
                }
                if o.status == "acked":
                    values["acked_at"] = now
                    values["last_error"] = None
                else:
                    values["last_error"] = (o.error or "")[:2000]
                if o.retry_at is not None:
                    values["next_attempt_at"] = o.retry_at
                s.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == o.id)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
            if released:
                s.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(list(released)), OutboxMessage.status == "sent")
                    .values(status="pending")
                    .execution_options(synchronize_session=False)
                )


class DestinationSender:
    """Sends one destination's outbox rows in order over one MLLP connection."""

    def __init__(
        self,
        ctx: ServerContext,
        destination: str,
        policy: SendPolicy,
        wake: asyncio.Event,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.ctx, self.destination, self.policy, self.wake = ctx, destination, policy, wake
        self.executor = executor
        host, port = parse_destination(destination)
        self.client = MLLPClient(
            host,
            port,
            timeout_s=policy.ack_timeout_s,
            connect_timeout_s=policy.connect_timeout_s,
        )
        self.store = OutboxStore(ctx, destination)
        self.sent = 0
        self._lock_conn: Connection | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop`` is set (the connection is closed then)."""
        try:
            await self._own(stop)
            while not stop.is_set():
                try:
                    delay = await self._round()
                except Exception:
                    log.exception("HL7 sender for %s: database error", self.destination)
                    delay = self.policy.poll_s
                if delay > 0:
                    await self._sleep(stop, delay)
        finally:
            await self.client.close()
            await off_loop(self.executor, self._release_lock)

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        self.wake.clear()
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _own(self, stop: asyncio.Event) -> None:
        """Become this destination's only sender, then take back rows left ``sent``."""
        if not self.ctx.db.sqlite:
            while not stop.is_set():
                if await off_loop(self.executor, self._try_lock):
                    break
                await self._sleep(stop, 5.0)
        taken = await off_loop(self.executor, self.store.reclaim_sent)
        if taken:
            log.info(
                "HL7 %s: %d message(s) in flight at the last stop will be sent again",
                self.destination,
                taken,
            )

    def _try_lock(self) -> bool:
        key = zlib.crc32(f"hl7_outbox:{self.destination}".encode()) & 0x7FFFFFFF
        conn = self.ctx.db.engine.connect()
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        if got:
            self._lock_conn = conn
        else:
            conn.close()
        return got

    def _release_lock(self) -> None:
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):
                self._lock_conn.close()  # the session lock ends with the connection
            self._lock_conn = None

    async def _round(self) -> float:
        """Send one claimed batch; returns how long to wait before the next (0: at once)."""
        claimed, due_at = await off_loop(self.executor, self.store.claim, self.policy.batch)
        if not claimed:
            if due_at is None:
                return self.policy.poll_s
            return max(0.01, min(self.policy.poll_s, (due_at - self.ctx.now()).total_seconds()))
        outcomes: list[Outcome] = []
        stopped_at: int | None = None
        for i, row in enumerate(claimed):
            outcome = await self._send(row)
            outcomes.append(outcome)
            if outcome.status == "pending":  # to be retried first: the rest waits
                stopped_at = i + 1
                break
        released = [r.id for r in claimed[stopped_at:]] if stopped_at is not None else []
        await off_loop(self.executor, self.store.record, outcomes, released)
        self.sent += sum(1 for o in outcomes if o.status == "acked")
        return 0.0 if stopped_at is None else 0.01

    async def _send(self, row: Claimed) -> Outcome:
        from openinfusion.interop.hl7.errors import HL7ParseError

        attempts = row.attempts + 1
        retry_at = self.ctx.now() + self.policy.backoff(attempts)
        try:
            reply = await self.client.send(row.payload.encode("utf-8"))
        except MLLPError as exc:
            return Outcome(row.id, "pending", None, str(exc), retry_at)
        try:
            ack = read_ack(reply)
        except HL7ParseError as exc:
            await self.client.close()
            return Outcome(row.id, "pending", None, f"unreadable reply: {exc}", retry_at)
        if ack.control_id != row.control_id:
            await self.client.close()  # out of step with the receiver: start afresh
            return Outcome(
                row.id,
                "pending",
                ack.code or None,
                f"reply MSA-2 {ack.control_id!r} does not name this message {row.control_id!r}",
                retry_at,
            )
        if ack.code in ACCEPTED:
            return Outcome(row.id, "acked", ack.code, None)
        reason = f"{ack.code}: {ack.text or 'no reason given'}"
        if ack.code in APP_ERROR and attempts <= self.policy.ae_retries:
            return Outcome(row.id, "pending", ack.code, reason, retry_at)
        if ack.code in APP_ERROR or ack.code in REJECTED:
            log.warning("HL7 %s parked by %s: %s", row.control_id, self.destination, reason)
            return Outcome(row.id, "error", ack.code, reason)
        return Outcome(row.id, "pending", ack.code or None, f"MSA-1 {ack.code!r} unknown", retry_at)


class OutboundService:
    """Runs the forwarder and one sender per destination on the server's event loop."""

    def __init__(
        self,
        ctx: ServerContext,
        destinations: Sequence[str],
        *,
        feed: FeedPolicy | None = None,
        send: SendPolicy | None = None,
        forward_interval_s: float = 1.0,
    ) -> None:
        for d in destinations:
            parse_destination(d)
        self.ctx = ctx
        self.destinations = list(destinations)
        self.forwarder = Forwarder(ctx, self.destinations, feed)
        self.send_policy = send or SendPolicy()
        self.forward_interval_s = forward_interval_s
        self._stop = asyncio.Event()
        self._wakes = {d: asyncio.Event() for d in self.destinations}
        # its own threads: a slow database or EHR never takes the gateway's worker threads
        self.executor = ThreadPoolExecutor(
            max_workers=1 + len(self.destinations), thread_name_prefix="hl7-out"
        )
        self.senders = [
            DestinationSender(ctx, d, self.send_policy, self._wakes[d], self.executor)
            for d in self.destinations
        ]
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self._forward_loop(), name="hl7-forwarder")]
        self._tasks += [
            asyncio.create_task(s.run(self._stop), name=f"hl7-sender {s.destination}")
            for s in self.senders
        ]

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, 5.0)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:
                log.exception("HL7 outbound task failed")
        self._tasks = []
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _forward_loop(self) -> None:
        while not self._stop.is_set():
            try:
                read, written = await off_loop(self.executor, self.forwarder.run_once)
                written += await off_loop(self.executor, self.forwarder.forward_acks)
            except Exception:
                log.exception("HL7 forwarder: batch failed, retried")
                read, written = 0, 0
            if written:
                for wake in self._wakes.values():
                    wake.set()
            if read < self.forwarder.policy.batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.forward_interval_s)


# ---- what the API shows ---------------------------------------------------------------------


def outbox_summary(
    ctx: ServerContext, destinations: Sequence[str], now: datetime
) -> dict[str, Any]:
    """Per destination: counts by status, oldest pending age, last error, last ACK time;
    and how far the forwarder is behind the stored pump messages."""
    with ctx.db.read() as s:
        counts: dict[str, dict[str, int]] = {}
        for dest, status, n in s.execute(
            select(OutboxMessage.destination, OutboxMessage.status, func.count()).group_by(
                OutboxMessage.destination, OutboxMessage.status
            )
        ):
            counts.setdefault(dest, {})[status] = int(n)
        names = list(dict.fromkeys([*destinations, *sorted(counts)]))
        out = []
        for dest in names:
            oldest = s.scalar(
                select(func.min(OutboxMessage.created_at)).where(
                    OutboxMessage.destination == dest,
                    OutboxMessage.status.in_(("pending", "sent")),
                )
            )
            last_ack = s.scalar(
                select(func.max(OutboxMessage.acked_at)).where(OutboxMessage.destination == dest)
            )
            err = s.execute(
                select(
                    OutboxMessage.id,
                    OutboxMessage.control_id,
                    OutboxMessage.status,
                    OutboxMessage.last_error,
                    OutboxMessage.sent_at,
                )
                .where(OutboxMessage.destination == dest, OutboxMessage.last_error.is_not(None))
                .order_by(OutboxMessage.sent_at.desc(), OutboxMessage.id.desc())
                .limit(1)
            ).first()
            by_status = {
                k: counts.get(dest, {}).get(k, 0) for k in ("pending", "sent", "acked", "error")
            }
            out.append(
                {
                    "destination": dest,
                    "configured": dest in destinations,
                    "counts": by_status,
                    "oldest_pending_age_s": (
                        round((now - _aware(oldest)).total_seconds(), 3) if oldest else None
                    ),
                    "last_error": (
                        {
                            "id": err.id,
                            "control_id": err.control_id,
                            "status": err.status,
                            "error": err.last_error,
                            "at": err.sent_at.isoformat() if err.sent_at else None,
                        }
                        if err
                        else None
                    ),
                    "last_ack_at": _aware(last_ack).isoformat() if last_ack else None,
                }
            )
        cursor = s.get(OutboundCursor, CURSOR)
        newest = s.scalar(select(func.max(PumpMessage.id))) or 0
    position = cursor.position if cursor else 0
    return {
        "destinations": out,
        "forwarder": {"position": position, "behind": max(0, int(newest) - position)},
    }


def _aware(value: datetime) -> datetime:
    """Aggregates bypass the column type: naive UTC back to aware."""
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def outbox_messages(
    ctx: ServerContext, status: str | None, destination: str | None, limit: int
) -> list[dict[str, Any]]:
    """The most recent outbox rows (newest first), payload with control characters escaped."""
    with ctx.db.read() as s:
        query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
        if status is not None:
            query = query.where(OutboxMessage.status == status)
        if destination is not None:
            query = query.where(OutboxMessage.destination == destination)
        return [message_view(m) for m in s.scalars(query)]


def escape_payload(payload: str) -> str:
    """HL7 text with segment ends shown as ``\\r`` and other control characters as
    ``\\xNN``: safe to print on a terminal or a web page as plain text."""
    out = []
    for ch in payload:
        if ch == "\r":
            out.append("\\r")
        elif ch == "\\":
            out.append("\\\\")
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def message_view(m: OutboxMessage) -> dict[str, Any]:
    def iso(v: datetime | None) -> str | None:
        return v.isoformat() if v else None

    return {
        "id": m.id,
        "destination": m.destination,
        "message_type": m.message_type,
        "control_id": m.control_id,
        "status": m.status,
        "attempts": m.attempts,
        "next_attempt_at": iso(m.next_attempt_at) if m.status == "pending" else None,
        "last_error": m.last_error,
        "ack_code": m.ack_code,
        "source": m.source,
        "created_at": iso(m.created_at),
        "sent_at": iso(m.sent_at),
        "acked_at": iso(m.acked_at),
        "payload": escape_payload(m.payload),
    }


ForwarderFactory = Callable[[ServerContext], Forwarder]
