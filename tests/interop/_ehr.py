"""A test EHR endpoint for the outbound feed: an MLLP server on its own event-loop thread
that acknowledges with AA, AE or AR, or never answers (a tarpit), and records what came."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Literal

from openinfusion.interop.hl7.ack import build_ack
from openinfusion.interop.hl7.errors import HL7ParseError
from openinfusion.interop.hl7.parse import control_id, message_type, parse_message
from openinfusion.interop.mllp import Frame, MLLPServer

Mode = Literal["AA", "AE", "AR", "tarpit"]


class FakeEHR:
    """Start and stop it like a real endpoint; the port stays the same across restarts."""

    def __init__(self, mode: Mode = "AA", port: int = 0) -> None:
        self.mode: Mode = mode
        self.port = port
        self.received: list[tuple[str, str]] = []  # (MSH-10, MSH-9 code^trigger)
        self.payloads: list[bytes] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: MLLPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def destination(self) -> str:
        return f"127.0.0.1:{self.port}"

    def control_ids(self) -> list[str]:
        with self._lock:
            return [c for c, _ in self.received]

    async def _handle(self, frame: Frame) -> bytes | None:
        msg = parse_message(frame.payload)
        with self._lock:
            self.received.append((control_id(msg), "^".join(message_type(msg)[:2])))
            self.payloads.append(frame.payload)
        if self.mode == "tarpit":
            await asyncio.sleep(3600)
        errors = []
        if self.mode != "AA":
            errors = [HL7ParseError("OBX-3", "999", "observation identifier not known here", 103)]
        return build_ack(
            msg,
            self.mode,  # type: ignore[arg-type]
            errors=errors,
            now=datetime.now(UTC),
            control_id=f"EHR{len(self.received)}",
        ).encode()

    def start(self) -> FakeEHR:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = MLLPServer(self._handle, "127.0.0.1", self.port)
            self.port = loop.run_until_complete(self._server.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._server.stop())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(10), "EHR endpoint did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = self._server = None

    def __enter__(self) -> FakeEHR:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
