"""A minimal gateway: the server side of docs/pump-protocol.md, for the pump-side tests.

Challenge, hello check, welcome with the highest contiguous stored seq, envelopes verified
and stored idempotently on (pump_id, seq) (a replay acked again and not stored twice; the
same seq with other content refused and counted as tampering), an ack after each store,
and signed commands sent on request. Storage is in memory and outlives a stop/start of the
listener, like a server's database outlives a restart of its process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from openinfusion.security import PrivateKey, PublicKey
from openinfusion.security.envelope import (
    FrameRejected,
    build_ack,
    build_challenge,
    build_welcome,
    envelope_digest,
    hello_pump_id,
    parse_frame,
    verify_envelope,
    verify_hello,
)


@dataclass
class Stored:
    digest: str
    frame: dict[str, Any]


@dataclass
class PumpRecord:
    key: PublicKey
    stored: dict[int, Stored] = field(default_factory=dict)
    duplicates: int = 0
    tampered: int = 0

    @property
    def contiguous(self) -> int:
        n = 0
        while n + 1 in self.stored:
            n += 1
        return n

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [s.frame for _, s in sorted(self.stored.items()) if s.frame["type"] == kind]


class Receiver:
    def __init__(self, server_key: PrivateKey) -> None:
        self.server_key = server_key
        self.pumps: dict[str, PumpRecord] = {}
        self.connections: dict[str, ServerConnection] = {}
        self.refused_handshakes = 0
        self._server: Server | None = None
        self.port = 0
        self.changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_pump(self, pump_id: str, key: PublicKey) -> None:
        self.pumps[pump_id] = PumpRecord(key)

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1] if not self.port else self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.connections.clear()

    async def _handle(self, ws: ServerConnection) -> None:
        if ws.request is None or ws.request.path != "/api/gateway/ws":
            await ws.close(4404, "not found")
            return
        challenge = build_challenge(self.server_key)
        await ws.send(json.dumps(challenge))
        try:
            hello = parse_frame(await asyncio.wait_for(ws.recv(), 10))
            pump_id = hello_pump_id(hello)
            record = self.pumps.get(pump_id)
            if record is None:
                raise FrameRejected("hello.pump_id", pump_id, "unknown pump")
            from openinfusion.security import b64decode

            verify_hello(hello, record.key, b64decode(challenge["nonce"], "nonce"))
        except (FrameRejected, TimeoutError, ConnectionClosed):
            self.refused_handshakes += 1
            await ws.close(4401, "handshake refused")
            return
        await ws.send(json.dumps(build_welcome(self.server_key, pump_id, record.contiguous)))
        self.connections[pump_id] = ws
        try:
            async for raw in ws:
                frame = parse_frame(raw)
                env = verify_envelope(frame, record.key, pump_id=pump_id)
                digest = envelope_digest(frame)
                known = record.stored.get(env.seq)
                if known is None:
                    record.stored[env.seq] = Stored(digest, frame)
                elif known.digest == digest:
                    record.duplicates += 1
                else:
                    record.tampered += 1
                    continue
                await ws.send(json.dumps(build_ack(self.server_key, pump_id, record.contiguous)))
                self.changed.set()
        except (ConnectionClosed, FrameRejected):
            pass
        finally:
            if self.connections.get(pump_id) is ws:
                del self.connections[pump_id]

    async def send(self, pump_id: str, frame: dict[str, Any]) -> None:
        await self.connections[pump_id].send(json.dumps(frame))

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while not predicate():
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.2)

        await asyncio.wait_for(loop(), timeout)
