"""The server's inbound HL7 listener: MLLP on ``Settings.hl7_listen_port``, each message
parsed, dispatched to order intake, and answered.

- a frame that arrives whole is parsed with :func:`parse_message`; a message that cannot be
  read gets an AR built from what its MSH shows (:func:`build_reject_for_raw`, ERR naming
  the field, the value and the rule); input with no MSH at all gets no answer and the
  connection is closed (there is nothing to acknowledge);
- a frame missing its start or end block is never acted on: if it holds an MSH it is
  refused with an AR saying so, otherwise the connection is closed;
- a parsed message goes to ``openinfusion.interop.inbound.dispatch`` (orders, merges), which
  returns the reply text; if dispatch fails unexpectedly the answer is an AE (207,
  application internal error) and nothing of the message was applied (dispatch runs each
  message in one transaction);
- parsing and dispatch run in the listener's own worker threads, so the event loop, which
  also carries the pump gateway, never waits on a message or the database (RELIABILITY
  B-03: other connections and pump traffic unaffected).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from openinfusion.interop.hl7.ack import build_ack, build_reject_for_raw
from openinfusion.interop.hl7.errors import (
    APPLICATION_INTERNAL_ERROR,
    SEGMENT_SEQUENCE_ERROR,
    UNSUPPORTED_MESSAGE_TYPE,
    HL7ParseError,
)
from openinfusion.interop.hl7.parse import parse_message
from openinfusion.interop.mllp import Frame, MLLPLimits, MLLPServer
from openinfusion.server.config import Settings
from openinfusion.server.context import ServerContext

log = logging.getLogger(__name__)

# dispatch(ctx, parsed message, raw bytes) -> reply message text
Dispatch = Callable[[ServerContext, Any, bytes], str]


def new_control_id() -> str:
    """MSH-10 for a reply: 20 characters, unique without coordination between processes."""
    return "OIR" + uuid.uuid4().hex[:17].upper()


def limits_from(settings: Settings) -> MLLPLimits:
    return MLLPLimits(
        max_frame_bytes=settings.hl7_max_frame_bytes,
        frame_timeout_s=settings.hl7_frame_timeout_s,
        idle_timeout_s=settings.hl7_idle_timeout_s,
        max_connections=settings.hl7_max_connections,
    )


def _order_intake() -> Dispatch:
    """Order intake's dispatch, or a stand-in that refuses every message type."""
    try:
        inbound = importlib.import_module("openinfusion.interop.inbound")
    except ImportError:  # pragma: no cover - order intake not installed

        def refuse(ctx: ServerContext, msg: Any, raw: bytes) -> str:
            issue = HL7ParseError(
                "MSH-9", "", "this server takes no inbound messages", UNSUPPORTED_MESSAGE_TYPE
            )
            return build_ack(msg, "AR", errors=[issue], now=ctx.now(), control_id=new_control_id())

        return refuse
    fn: Dispatch = inbound.dispatch
    return fn


class InboundListener:
    """An MLLP server whose frames are answered by order intake, off the event loop."""

    def __init__(
        self,
        ctx: ServerContext,
        *,
        host: str | None = None,
        port: int | None = None,
        limits: MLLPLimits | None = None,
        dispatch: Dispatch | None = None,
        workers: int = 2,
    ) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.dispatch = dispatch or _order_intake()
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hl7-in")
        self.server = MLLPServer(
            self.handle,
            host or settings.hl7_listen_host,
            port if port is not None else (settings.hl7_listen_port or 0),
            limits or limits_from(settings),
        )
        self.answered = 0

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> int:
        port = await self.server.start()
        log.info("HL7 MLLP listener on %s:%d", self.server.host, port)
        return port

    async def stop(self) -> None:
        await self.server.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def handle(self, frame: Frame) -> bytes | None:
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(self.executor, self.reply_for, frame)
        if reply is not None:
            self.answered += 1
        return reply

    def reply_for(self, frame: Frame) -> bytes | None:
        """The reply to one frame (UTF-8, as its MSH-18 says), or None to close."""
        raw = frame.payload
        if not raw.lstrip(b"\r\n").startswith(b"MSH"):
            return None
        now = self.ctx.now()
        if frame.problem is not None:
            rule = {
                "missing_end_block": "frame ended by a new start block, not an end block "
                "(MLLP <FS><CR>): not processed",
                "missing_start_block": "frame without its MLLP start block <VT>: not processed",
            }[frame.problem]
            issue = HL7ParseError("message", frame.problem, rule, SEGMENT_SEQUENCE_ERROR)
            return build_reject_for_raw(raw, issue, now=now, control_id=new_control_id()).encode()
        try:
            msg = parse_message(raw, max_bytes=self.server.limits.max_frame_bytes)
        except HL7ParseError as exc:
            return build_reject_for_raw(raw, exc, now=now, control_id=new_control_id()).encode()
        try:
            text = self.dispatch(self.ctx, msg, raw)
        except Exception:
            log.exception("HL7 inbound dispatch failed")
            issue = HL7ParseError(
                "message", "", "application internal error: not applied", APPLICATION_INTERNAL_ERROR
            )
            text = build_ack(msg, "AE", errors=[issue], now=now, control_id=new_control_id())
        return text.encode("utf-8")
