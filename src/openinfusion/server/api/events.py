"""Live updates for dashboards as server-sent events (authenticated, unit-scoped).

Each event is one ``data:`` line of JSON (pump updates, alarms, command results, audit
entries for those who may read the audit). A comment line every 15 s keeps proxies from
closing the stream, and the token is re-checked then: a revoked or expired token ends it.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from openinfusion.server.api.deps import Principal, bearer_token, get_ctx, require
from openinfusion.server.api.errors import ApiError
from openinfusion.server.context import ServerContext
from openinfusion.server.permissions import Perm, allowed
from openinfusion.server.tokens import resolve_token

router = APIRouter(tags=["events"])
KEEPALIVE_S = 15.0
# C-19: live streams one account may hold open at once (per server process).
MAX_STREAMS_PER_USER = 5


def visible(principal: Principal, ev: dict[str, Any]) -> bool:
    if ev.get("type") in ("audit", "security_alert"):
        return allowed(principal.role, Perm.AUDIT_READ)
    if ev.get("type") == "command":
        return allowed(principal.role, Perm.COMMANDS_READ) and _in_scope(principal, ev)
    return _in_scope(principal, ev)


def _in_scope(principal: Principal, ev: dict[str, Any]) -> bool:
    scope = principal.unit_scope
    return scope is None or ev.get("unit") == scope


def _token_alive(ctx: ServerContext, raw: str) -> bool:
    with ctx.db.read() as session:
        return resolve_token(session, raw, ctx.now()) is not None


@router.get("/api/events", response_class=StreamingResponse)
async def events(
    request: Request,
    principal: Principal = Depends(require(Perm.EVENTS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> StreamingResponse:
    raw = bearer_token(request) or ""
    streams: Counter[str] = request.app.state.streams
    if streams[principal.username] >= MAX_STREAMS_PER_USER:
        raise ApiError(
            429,
            "events",
            principal.username,
            f"at most {MAX_STREAMS_PER_USER} live streams per account",
        )
    streams[principal.username] += 1
    sub = ctx.bus.subscribe()

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b": connected\n\n"
            while True:
                try:
                    ev = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    if not await asyncio.to_thread(_token_alive, ctx, raw):
                        yield b'event: end\ndata: {"reason": "token expired or revoked"}\n\n'
                        return
                    yield b": keepalive\n\n"
                    continue
                if sub.lagging or ev.get("type") == "resync":
                    sub.lagging = False
                    yield b"event: resync\ndata: {}\n\n"
                    if ev.get("type") == "resync":
                        continue
                if visible(principal, ev):
                    yield f"data: {json.dumps(ev, separators=(',', ':'))}\n\n".encode()
        finally:
            ctx.bus.unsubscribe(sub)
            streams[principal.username] -= 1

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
