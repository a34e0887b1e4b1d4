"""The pump gateway: WebSocket ``/api/gateway/ws`` (docs/pump-protocol.md, server side).

Challenge → hello → welcome, then envelopes. A reader task queues incoming text frames;
the connection loop takes everything queued (up to ``gateway_batch_max``), verifies it (a
small batch on the event loop, a large one in a worker thread), and hands it to the
:class:`GroupCommitter`, which stores the batches of all connections that are
waiting in one transaction; each connection then sends one signed ack for its batch — only
after the commit. Commands
reach the pump through :class:`GatewayHub`, which listens on the event bus, so a command
issued on any server process is delivered by the process holding the pump's socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy import select

from openinfusion.security import (
    FrameRejected,
    b64decode,
    build_ack,
    build_challenge,
    build_welcome,
    parse_frame,
    verify_hello,
)
from openinfusion.security.envelope import hello_pump_id, new_nonce
from openinfusion.security.keys import PublicKey
from openinfusion.server.context import ServerContext
from openinfusion.server.gaps import contiguous_until
from openinfusion.server.gateway_batch import (
    CLOSE_AUTH,
    CLOSE_BAD_FRAME,
    CLOSE_REPLACED,
    CLOSE_TIMEOUT,
    verify_frames,
)
from openinfusion.server.group_commit import GroupCommitter
from openinfusion.server.models import Command, Pump

log = logging.getLogger(__name__)
router = APIRouter()
HANDSHAKE_TIMEOUT_S = 10.0
# Batches up to this many frames are verified on the event loop, larger ones in a thread so
# that other connections are served in between.
INLINE_VERIFY_MAX = 8


class PumpLink:
    """One authenticated pump socket; sends are serialised."""

    def __init__(self, ws: WebSocket, pump_id: str) -> None:
        self.ws, self.pump_id = ws, pump_id
        self._send_lock = asyncio.Lock()

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_text(json.dumps(frame, separators=(",", ":")))

    async def close(self, code: int, reason: str = "") -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason[:120])


class GatewayHub:
    """The pumps connected to this process, and delivery of commands to them."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.links: dict[str, PumpLink] = {}
        self.committer = GroupCommitter(ctx)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.committer.start()
        self._task = asyncio.create_task(self._deliver_commands())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.committer.stop)

    async def attach(self, link: PumpLink) -> None:
        old = self.links.get(link.pump_id)
        self.links[link.pump_id] = link
        if old is not None:  # one live session per pump: the newest wins
            await old.close(CLOSE_REPLACED, "replaced by a newer connection")

    def detach(self, link: PumpLink) -> None:
        if self.links.get(link.pump_id) is link:
            del self.links[link.pump_id]

    async def _deliver_commands(self) -> None:
        # only what this hub acts on: the pumps' own updates never wake it
        sub = self.ctx.bus.subscribe(frozenset({"command", "pump_decommissioned"}))
        try:
            async for ev in sub:
                if ev.get("type") == "pump_decommissioned" and ev.get("pump_id") in self.links:
                    await self.links[str(ev["pump_id"])].close(CLOSE_AUTH, "decommissioned")
                if ev.get("type") == "command" and ev.get("pump_id") in self.links:
                    try:
                        await self._send_command(str(ev["pump_id"]), str(ev["command_id"]))
                    except Exception:  # one failed delivery must not stop the next ones
                        log.exception("command %s could not be delivered", ev.get("command_id"))
        finally:
            self.ctx.bus.unsubscribe(sub)

    async def _send_command(self, pump_id: str, command_id: str) -> None:
        link = self.links.get(pump_id)
        if link is None:
            return
        frame = await asyncio.to_thread(self._mark_delivered, command_id)
        if frame is None:  # expired before it could be sent
            return
        try:
            await link.send(frame)
        except Exception:  # the pump left; the command stays unconfirmed and expires
            log.info("command %s not delivered: pump %s disconnected", command_id, pump_id)

    def _mark_delivered(self, command_id: str) -> dict[str, Any] | None:
        with self.ctx.db.write() as session:
            command = session.get(Command, command_id)
            if command is None or command.expires_at <= self.ctx.now():
                return None
            command.delivered_at = self.ctx.now()
            return dict(command.envelope)


def _load_pump(ctx: ServerContext, pump_id: str) -> tuple[PublicKey, int] | None:
    with ctx.db.read() as session:
        pump = session.scalars(select(Pump).where(Pump.id == pump_id)).first()
        if pump is None or pump.decommissioned_at is not None:
            return None
        raw = b64decode(pump.public_key, "public_key")
        return PublicKey.from_public_bytes(raw), pump.last_seq


def _welcomed(ctx: ServerContext, pump_id: str) -> int:
    with ctx.db.write() as session:
        pump = session.get(Pump, pump_id)
        assert pump is not None
        pump.last_seen = ctx.now()
        ctx.bus.publish(session, {"type": "pump_connected", "pump_id": pump_id, "unit": pump.unit})
        # Highest *contiguous* seq: the pump deletes its outbox up to it, so a seq missing
        # below last_seq must be sent again, not forgotten.
        return contiguous_until(list(pump.gaps or []), pump.last_seq)


@router.websocket("/api/gateway/ws")
async def gateway_ws(ws: WebSocket) -> None:
    ctx: ServerContext = ws.app.state.ctx
    hub: GatewayHub = ws.app.state.hub
    address = ws.client.host if ws.client else "unknown"
    await ws.accept()
    nonce = new_nonce()
    await ws.send_text(json.dumps(build_challenge(ctx.server_key, nonce)))
    try:
        text = await asyncio.wait_for(ws.receive_text(), HANDSHAKE_TIMEOUT_S)
    except (TimeoutError, WebSocketDisconnect, RuntimeError, KeyError):
        with contextlib.suppress(Exception):
            await ws.close(CLOSE_TIMEOUT, "no hello")
        return
    pump_id = await _handshake(ctx, ws, text, nonce, address)
    if pump_id is None:
        return
    link = PumpLink(ws, pump_id)
    await hub.attach(link)
    try:
        await _serve(ctx, hub.committer, link, address)
    finally:
        hub.detach(link)


async def _handshake(
    ctx: ServerContext, ws: WebSocket, text: str, nonce: bytes, address: str
) -> str | None:
    claimed = "?"
    try:
        frame = parse_frame(text)
        claimed = hello_pump_id(frame)
        found = await asyncio.to_thread(_load_pump, ctx, claimed)
        if found is None:
            raise FrameRejected("hello.pump_id", claimed, "is not an enrolled pump")
        verify_hello(frame, found[0], nonce)
    except FrameRejected as exc:
        await asyncio.to_thread(
            ctx.audit_alone,
            f"pump:{claimed}",
            "gateway.handshake_refused",
            f"pump:{claimed}",
            address=address,
            error=exc.as_dict(),
        )
        await ws.close(CLOSE_AUTH, exc.message[:120])
        return None
    last = await asyncio.to_thread(_welcomed, ctx, claimed)
    await ws.send_text(json.dumps(build_welcome(ctx.server_key, claimed, last)))
    return claimed


async def _serve(
    ctx: ServerContext, committer: GroupCommitter, link: PumpLink, address: str
) -> None:
    found = await asyncio.to_thread(_load_pump, ctx, link.pump_id)
    if found is None:
        await link.close(CLOSE_AUTH, "pump no longer enrolled")
        return
    key = found[0]
    queue: asyncio.Queue[str | None] = asyncio.Queue(ctx.settings.gateway_batch_max * 4)

    async def reader() -> None:
        try:
            while True:
                message = await link.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:  # binary frames are not part of the protocol
                    text = "\x00binary"
                await queue.put(text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            await queue.put(None)

    task = asyncio.create_task(reader())
    try:
        while True:
            first = await queue.get()
            if first is None:
                return
            texts = [first]
            ended = False
            while len(texts) < ctx.settings.gateway_batch_max and not queue.empty():
                nxt = queue.get_nowait()
                if nxt is None:
                    ended = True
                    break
                texts.append(nxt)
            if len(texts) <= INLINE_VERIFY_MAX:
                # a few signature checks cost less than a hop to a worker thread and back
                # (the checks hold the interpreter lock either way)
                verified = verify_frames(link.pump_id, key, texts)
            else:
                verified = await asyncio.to_thread(verify_frames, link.pump_id, key, texts)
            result = await committer.submit(link.pump_id, verified, address)
            if result.ack_seq is not None and not ended:
                await link.send(build_ack(ctx.server_key, link.pump_id, result.ack_seq))
            if result.close_code is not None:
                await link.close(result.close_code, result.close_reason)
                return
            if ended:
                return
    except WebSocketDisconnect:
        return
    except Exception:  # storage failed: nothing acked, the pump replays after reconnecting
        log.exception("gateway batch for %s failed", link.pump_id)
        await link.close(1011, "server error")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


__all__ = ["CLOSE_AUTH", "CLOSE_BAD_FRAME", "GatewayHub", "router"]
