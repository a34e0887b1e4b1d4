"""The pump side of the pump ⇄ server link (docs/pump-protocol.md), on asyncio.

A :class:`PumpLink` enrols once with a one-time token over HTTP, then keeps one WebSocket
to the server's gateway for good: mutual handshake, replay of the outbox after the server's
``last_stored_seq``, status every few seconds, heartbeats every 10 s, every pump record as
an ``event`` or ``alarm`` envelope, acks deleting from the outbox, and signed commands
checked (:mod:`openinfusion.security.envelope`, :class:`ReplayGuard`) and applied by the
:class:`~openinfusion.server.ward.bedside.Bedside`, each answered by a ``command_result``.

Fail-operational (RELIABILITY F-10): the link never changes delivery. When the server is
unreachable for ``no_comm_after_s`` the pump raises its low-priority ``no_communication``
condition; records keep going into the outbox; the link retries with exponential back-off
(capped, with jitter) forever. Times here are wall seconds of the pump's monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from openinfusion.errors import InputError
from openinfusion.pump.codes import Alarm
from openinfusion.pump.device import Record
from openinfusion.security import b64encode, public_bytes
from openinfusion.security.envelope import (
    FrameRejected,
    build_envelope,
    build_hello,
    command_id_of,
    command_result_body,
    parse_frame,
    verify_ack,
    verify_challenge,
    verify_command,
    verify_welcome,
)
from openinfusion.security.replay import ReplayGuard
from openinfusion.server.ward.bedside import Bedside, Outcome, jsonable
from openinfusion.server.ward.outbox import Enrolment, Outbox

log = logging.getLogger("openinfusion.ward.link")

#: WebSocket close code the gateway uses for a failed handshake (docs/pump-protocol.md).
CLOSE_UNAUTHORISED = 4401
_ALARMS = {a.code: a for a in Alarm}
ALARM_KINDS = frozenset({"alarm", "alarm_cleared", "alarm_silenced", "alarm_acknowledged"})


class HandshakeFailed(Exception):
    """The server could not be authenticated (or refused us): retry later, never trust it."""


def ws_url(server_url: str) -> str:
    """``http(s)://host[:port][/prefix]`` → ``ws(s)://…/api/gateway/ws``."""
    base = server_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + "/api/gateway/ws"
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :] + "/api/gateway/ws"
    raise InputError("server", server_url, "must start with http:// or https://")


async def enrol(
    outbox: Outbox,
    server_url: str,
    token: str,
    *,
    serial: str,
    model: str,
    kind: str,
    channels: int,
    client: httpx.AsyncClient | None = None,
) -> Enrolment:
    """Enrol with a one-time token: ``POST /api/gateway/enrol``; pins the server key."""
    body = {
        "token": token,
        "serial": serial,
        "model": model,
        "kind": kind,
        "channels": channels,
        "public_key": b64encode(public_bytes(outbox.key.public_key())),
    }
    own = client is None
    http = client or httpx.AsyncClient(timeout=10.0)
    try:
        response = await http.post(server_url.rstrip("/") + "/api/gateway/enrol", json=body)
    finally:
        if own:
            await http.aclose()
    if response.status_code == 409:
        raise InputError("serial", serial, "is enrolled with another key (clone refused)")
    if response.status_code >= 400:
        raise InputError(
            "token",
            token[:8] + "…",
            f"enrolment refused ({response.status_code}: {response.text[:200]})",
        )
    data = response.json()
    for field in ("pump_id", "server_public_key"):
        if not isinstance(data.get(field), str):
            raise InputError(f"enrol.{field}", data.get(field), "missing in the server's answer")
    return outbox.pin_server(data["pump_id"], data["server_public_key"], server_url)


class PumpLink:
    """One pump's connection to the server (see the module docstring)."""

    def __init__(
        self,
        bedside: Bedside,
        outbox: Outbox,
        *,
        status_every_s: float = 5.0,
        heartbeat_every_s: float = 10.0,
        no_comm_after_s: float = 30.0,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        seed: int | None = None,
    ) -> None:
        enrolment = outbox.enrolment()
        if enrolment is None:
            raise InputError("pump", bedside.device.serial, "is not enrolled: enrol it first")
        self.enrolment = enrolment
        self.bedside = bedside
        self.outbox = outbox
        self.status_every_s = status_every_s
        self.heartbeat_every_s = heartbeat_every_s
        self.no_comm_after_s = no_comm_after_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.monotonic = monotonic
        self.wall = wall
        self.guard = ReplayGuard(outbox, monotonic=monotonic, wall=wall)
        self._rng = random.Random(seed)
        self._wake = asyncio.Event()
        self._records: list[tuple[str, dict[str, Any]]] = []
        self._flush_scheduled = False
        self.connected = False
        self._lost_since: float | None = monotonic()
        self.stats = {"connects": 0, "sent": 0, "acked": 0, "commands": 0, "failures": 0}
        # Keep a listener the pump model already has (the implant keeps its own records).
        previous = bedside.device.listener

        def listen(record: Record) -> None:
            if previous is not None:
                previous(record)
            self.on_record(record)

        bedside.device.listener = listen
        bedside.confirm_hook = self.confirm_at_bedside
        # Records a recovered device made before the link existed (restart, alarms) go out too.
        for record in bedside.device.records:
            if record.kind != "command":
                self.on_record(record)

    @property
    def pump_id(self) -> str:
        return self.enrolment.pump_id

    # ---- outgoing ------------------------------------------------------------------------

    def _builder(self, kind: str, body: dict[str, Any]) -> Callable[[int], dict[str, Any]]:
        plain = jsonable(body)

        def build(seq: int) -> dict[str, Any]:
            return build_envelope(
                self.outbox.key,
                type=kind,
                pump_id=self.pump_id,
                seq=seq,
                body=plain,
                sent_at=self.wall(),
            )

        return build

    def queue(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Sign and store an envelope in the outbox (durably), then wake the sender. Pump
        records waiting to be stored go first, so the order of seqs is the order of things."""
        self.flush_records()
        frame = self.outbox.append(kind, self._builder(kind, body))
        self._wake.set()
        return frame

    def flush_records(self) -> None:
        """Store the pump records gathered since the last flush, in one transaction."""
        self._flush_scheduled = False
        if not self._records:
            return
        items, self._records = self._records, []
        self.outbox.append_many([(kind, self._builder(kind, body)) for kind, body in items])
        self._wake.set()

    def on_record(self, record: Record) -> None:
        """Device listener: every record goes out as an ``alarm`` or ``event`` envelope."""
        kind = "alarm" if record.kind in ALARM_KINDS else "event"
        body: dict[str, Any] = {
            "record_seq": record.seq,
            "t_s": record.t_s,
            "kind": record.kind,
            "data": record.data,
        }
        index = record.data.get("channel")
        body["channel"] = index + 1 if isinstance(index, int) else None  # wire channels from 1
        if kind == "alarm":
            data = record.data
            code = data.get("code")
            spec = _ALARMS.get(code) if isinstance(code, str) else None
            body.update(
                state="cleared" if record.kind == "alarm_cleared" else "raised",
                code=code,
                priority=data.get("priority") or (spec.priority.value if spec else None),
                message=spec.value.meaning if spec else None,
            )
            if record.kind in ("alarm_silenced", "alarm_acknowledged"):
                body["state"] = record.kind.removeprefix("alarm_")
        # Records come in bursts while the engine runs to a new time: they are stored
        # together once it returns (one transaction, one fsync), always before sending.
        self._records.append((kind, body))
        if not self._flush_scheduled:
            try:
                asyncio.get_running_loop().call_soon(self.flush_records)
                self._flush_scheduled = True
            except RuntimeError:  # no event loop: store at once
                self.flush_records()

    def queue_status(self) -> None:
        self.queue("status", self.bedside.status_body())

    # ---- connection ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Connect, and reconnect with back-off, until ``stop`` is set."""
        stop = stop or asyncio.Event()
        watchdog = asyncio.create_task(self._watchdog(stop))
        attempt = 0
        try:
            while not stop.is_set():
                sessions = self.stats["connects"]
                try:
                    await self._connect_once(stop)
                except (
                    OSError,
                    ConnectionClosed,
                    InvalidHandshake,
                    InvalidURI,
                    HandshakeFailed,
                    InputError,
                    TimeoutError,
                ) as exc:
                    self.stats["failures"] += 1
                    log.info("pump %s: link down (%s)", self.pump_id, exc)
                except Exception:  # never let a link fault end the link: delivery goes on
                    self.stats["failures"] += 1
                    log.exception("pump %s: link fault", self.pump_id)
                finally:
                    self._went_down()
                if stop.is_set():
                    break
                if self.stats["connects"] > sessions:
                    attempt = 0  # a session was up: start the back-off again from the bottom
                delay = min(self.backoff_max_s, self.backoff_min_s * 2**attempt)
                attempt = min(attempt + 1, 16)
                delay *= 0.5 + self._rng.random() / 2
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    def _went_down(self) -> None:
        if self.connected:
            self.connected = False
            self._lost_since = self.monotonic()

    async def _watchdog(self, stop: asyncio.Event) -> None:
        """Raise 'no communication' once the link is down long enough; expire pre-populated
        remote changes at their deadline (nothing remote waits for later)."""
        while not stop.is_set():
            try:
                self._watch_once()
            except Exception:  # the watchdog must outlive any fault
                log.exception("pump %s: watchdog fault", self.pump_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    def _watch_once(self) -> None:
        lost = self._lost_since
        if (
            not self.connected
            and lost is not None
            and self.monotonic() - lost >= self.no_comm_after_s
        ):
            self.bedside.set_no_communication(True)
        for gone in self.bedside.expire_pending(self.guard):
            self.queue(
                "command_result",
                command_result_body(
                    gone.admission.command.command_id,
                    "rejected",
                    "not confirmed at the bedside before the command expired",
                    channel=gone.channel + 1,
                    action=gone.action,
                ),
            )

    async def _connect_once(self, stop: asyncio.Event) -> None:
        url = ws_url(self.enrolment.server_url)
        async with connect(
            url, open_timeout=10, close_timeout=2, max_size=2**20, ping_interval=None
        ) as ws:
            last_stored = await self._handshake(ws)
            self.connected = True
            self._lost_since = None
            self.stats["connects"] += 1
            self.bedside.set_no_communication(False)
            if last_stored > self.outbox.acked_seq:
                self._ack(last_stored)
            self.queue_status()
            tasks = [
                asyncio.create_task(self._sender(ws, last_stored)),
                asyncio.create_task(self._receiver(ws)),
                asyncio.create_task(self._ticker(self.status_every_s, self.queue_status)),
                asyncio.create_task(self._ticker(self.heartbeat_every_s, self._heartbeat)),
                asyncio.create_task(stop.wait()),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                for t in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
            for t in done:
                exc = t.exception() if not t.cancelled() else None
                if exc is not None:
                    raise exc

    async def _handshake(self, ws: ClientConnection) -> int:
        raw = await asyncio.wait_for(ws.recv(), 10)
        challenge = verify_challenge(parse_frame(raw), self.enrolment.server_key)
        hello = build_hello(self.outbox.key, self.pump_id, challenge.nonce, self.outbox.acked_seq)
        await ws.send(json.dumps(hello))
        try:
            raw = await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as exc:
            raise HandshakeFailed(f"server closed the handshake ({exc.rcvd})") from None
        welcome = verify_welcome(parse_frame(raw), self.enrolment.server_key, self.pump_id)
        return welcome.last_stored_seq

    def _ack(self, seq: int) -> None:
        top = self.outbox.next_seq - 1
        if seq > top:
            log.warning("pump %s: server claims seq %d, last sent %d", self.pump_id, seq, top)
            seq = top
        self.stats["acked"] += self.outbox.ack(seq)

    def _heartbeat(self) -> None:
        self.queue("heartbeat", {})

    async def _ticker(self, every_s: float, action: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(every_s)
            action()

    async def _sender(self, ws: ClientConnection, after: int) -> None:
        """Send every stored envelope after ``after``, in seq order, then wait for more."""
        sent = after
        while True:
            self._wake.clear()
            batch = self.outbox.pending(after=sent, limit=200)
            for frame in batch:
                await ws.send(json.dumps(frame, separators=(",", ":"), ensure_ascii=False))
                sent = frame["seq"]
                self.stats["sent"] += 1
            if len(batch) < 200:
                await self._wake.wait()

    async def _receiver(self, ws: ClientConnection) -> None:
        async for raw in ws:
            try:
                frame = parse_frame(raw)
                kind = frame.get("type")
                if kind == "ack":
                    self._ack(verify_ack(frame, self.enrolment.server_key, self.pump_id).seq)
                elif kind == "command":
                    self.handle_command(frame)
                else:
                    log.info("pump %s: ignored a %r frame", self.pump_id, kind)
            except (FrameRejected, InputError) as exc:
                log.warning("pump %s: refused a frame: %s", self.pump_id, exc)

    def handle_command(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Verify, admit once, apply; always answer with a ``command_result`` envelope."""
        self.stats["commands"] += 1
        command_id = command_id_of(frame)
        channel = frame.get("channel") if isinstance(frame.get("channel"), int) else None
        action = frame.get("action") if isinstance(frame.get("action"), str) else None
        try:
            command = verify_command(frame, self.enrolment.server_key, pump_id=self.pump_id)
            admission = self.guard.admit(command)
        except InputError as exc:  # FrameRejected, CommandRefused
            body = command_result_body(
                command_id, "rejected", exc.message, channel=channel, action=action
            )
            return self.queue("command_result", body)
        try:
            outcome = self.bedside.apply(admission, self.guard)
        except Exception as exc:  # a fault in applying it: refused, and the pump goes on
            log.exception("pump %s: command %s failed", self.pump_id, command.command_id)
            outcome = Outcome("rejected", f"not applied: internal error ({type(exc).__name__})")
        body = command_result_body(
            command.command_id,
            outcome.outcome,
            outcome.reason,
            channel=command.channel,
            action=command.action,
            **outcome.extra,
        )
        self._report_dropped()
        return self.queue("command_result", body)

    def _report_dropped(self) -> None:
        """A pre-populated change that a later command replaced is reported as rejected."""
        dropped, self.bedside.dropped = self.bedside.dropped, []
        for pending, reason in dropped:
            self.queue(
                "command_result",
                command_result_body(
                    pending.admission.command.command_id,
                    "rejected",
                    f"pre-populated change dropped: {reason}",
                    channel=pending.channel + 1,
                    action=pending.action,
                ),
            )

    def confirm_at_bedside(
        self, channel: int, override_reason: str | None = None
    ) -> dict[str, Any]:
        """A clinician confirms a pre-populated remote change on ``channel`` (from 1), with an
        override reason when it crosses a soft limit. A confirmation refused for want of that
        reason leaves the change pre-populated and reports nothing (it is not the command's
        outcome); the answer is then ``{"kept": True, "reason": ...}``."""
        pending = self.bedside.pending.get(channel - 1)
        command_id = pending.admission.command.command_id if pending else None
        action = pending.action if pending else None
        outcome = self.bedside.confirm_at_bedside(channel - 1, self.guard, override_reason)
        if outcome.extra.get("kept"):
            return {"kept": True, "reason": outcome.reason}
        return self.queue(
            "command_result",
            command_result_body(
                command_id,
                outcome.outcome,
                outcome.reason,
                channel=channel,
                action=action,
                confirmed_at_bedside=outcome.outcome == "accepted",
                soft_limit_overridden=bool(pending and pending.soft_limits)
                and outcome.outcome == "accepted",
            ),
        )
