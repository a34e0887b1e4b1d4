"""HL7 v2 Minimal Lower Layer Protocol (MLLP) over TCP: a frame reader, a server and a client.

A frame is ``<SB> message <EB><CR>`` with SB = 0x0B (VT), EB = 0x1C (FS), CR = 0x0D (HL7 v2.x
Implementation Guide, Appendix C "Minimal Lower Layer Protocol" (MLLP Release 1); the same
block characters in the HL7 Version 3 Transport Specification: MLLP, Release 2, §1.2.2).
Messages are bytes here: the character set is the message's own (MSH-18) and only the
parser decodes it.

The frame reader is written by hand rather than taken from ``hl7.mllp``: that reader clears
its buffer on an oversized frame and then reads the rest of the frame as a new, broken
block, has no resynchronisation on the next start block, no notion of a frame that starts
again before it ended, and no deadline per frame. RELIABILITY B-03 needs all four: an
oversized frame is refused as soon as it passes the limit (the connection is closed without
reading the rest), a frame missing its end or start block is reported with what could be
read (so the server can reject it with an AR when it holds a readable MSH), and a frame
must arrive whole within a deadline from its first byte, whatever the pace (slowloris).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from openinfusion.errors import OpenInfusionError

log = logging.getLogger(__name__)

SB = 0x0B  # start block, <VT>
EB = 0x1C  # end block, <FS>
CR = 0x0D  # carriage return closing the end block
START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"

# Bytes tolerated between frames without complaint (line ends some senders add).
_INTERFRAME_WHITESPACE = frozenset(b"\r\n \t")

FrameProblem = Literal["missing_start_block", "missing_end_block"]


class MLLPError(OpenInfusionError):
    """A transport failure: refused or lost connection, timeout, broken framing."""


class FrameTooLarge(MLLPError):
    """A frame (or the garbage before one) grew past the connection's byte limit."""


class MLLPTimeout(MLLPError):
    """No reply (or no whole frame) within the deadline."""


class _PeerClosed(MLLPError):
    """The peer closed (or reset) the connection before any reply."""


def frame(payload: bytes) -> bytes:
    """``payload`` wrapped in MLLP start and end blocks."""
    return START_BLOCK + payload + END_BLOCK


@dataclass(frozen=True, slots=True)
class Frame:
    """One received block: ``payload`` without the block characters.

    ``problem`` is None for a well-formed frame; ``missing_end_block`` when a new start
    block arrived before this frame's end block (nested frames), ``missing_start_block``
    when an end block arrived with no start block before it (the payload is then the bytes
    since the previous frame).
    """

    payload: bytes
    problem: FrameProblem | None = None


class FrameReader:
    """Incremental MLLP frame splitter with a byte limit, fed with received chunks.

    Each byte is scanned once: the reader remembers how far it looked. ``in_frame`` tells
    whether a frame has begun (the server's per-frame deadline starts there).
    """

    def __init__(self, max_frame_bytes: int) -> None:
        if max_frame_bytes < 16:
            raise ValueError("max_frame_bytes must be at least 16")
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._inside = False  # after a start block
        self._skip_cr = False  # an end block just ended a frame: its CR may follow

    @property
    def in_frame(self) -> bool:
        """A frame (or bytes that may be one without a start block) is partly received."""
        return self._inside or bool(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Frames completed by ``data``; raises :class:`FrameTooLarge` past the limit."""
        frames: list[Frame] = []
        view = memoryview(data)
        i, n = 0, len(data)
        if self._skip_cr and n:
            self._skip_cr = False
            if data[0] == CR:
                i = 1
        while i < n:
            if self._inside:
                sb = data.find(START_BLOCK, i)
                eb = data.find(b"\x1c", i)
                if eb != -1 and (sb == -1 or eb < sb):
                    self._append(view[i:eb])
                    frames.append(Frame(bytes(self._buf)))
                    self._buf.clear()
                    self._inside = False
                    i = eb + 1
                    if i < n:
                        if data[i] == CR:
                            i += 1
                    else:
                        self._skip_cr = True
                elif sb != -1:
                    self._append(view[i:sb])
                    frames.append(Frame(bytes(self._buf), "missing_end_block"))
                    self._buf.clear()
                    i = sb + 1  # the new start block opens the next frame
                else:
                    self._append(view[i:])
                    i = n
            else:
                sb = data.find(START_BLOCK, i)
                eb = data.find(b"\x1c", i)
                if eb != -1 and (sb == -1 or eb < sb):
                    self._append(view[i:eb])
                    stray = bytes(self._buf).strip()
                    self._buf.clear()
                    frames.append(Frame(stray, "missing_start_block"))
                    i = eb + 1
                    if i < n:
                        if data[i] == CR:
                            i += 1
                    else:
                        self._skip_cr = True
                elif sb != -1:
                    self._buf.clear()  # garbage before a start block with no end: dropped
                    self._inside = True
                    i = sb + 1
                else:
                    chunk = view[i:]
                    if self._buf or any(b not in _INTERFRAME_WHITESPACE for b in chunk):
                        self._append(chunk)
                    i = n
        return frames

    def _append(self, chunk: memoryview) -> None:
        if len(self._buf) + len(chunk) > self.max_frame_bytes:
            self._buf.clear()
            raise FrameTooLarge(
                f"frame larger than the limit of {self.max_frame_bytes} bytes: refused"
            )
        self._buf += chunk


@dataclass(frozen=True, slots=True)
class MLLPLimits:
    """Per-connection limits of an MLLP server (RELIABILITY B-03).

    ``frame_timeout_s``: a frame must arrive whole within this many seconds of its first
    byte (a slowloris dribble is cut off); ``idle_timeout_s``: a connection silent this long
    between frames is closed; ``max_connections``: connections beyond it are closed at once.
    """

    max_frame_bytes: int = 1024 * 1024
    frame_timeout_s: float = 30.0
    idle_timeout_s: float = 300.0
    max_connections: int = 64
    read_chunk_bytes: int = 64 * 1024


# A handler gets one received frame and answers with the reply payload (to be framed), or
# None to close the connection (nothing readable to answer).
FrameHandler = Callable[[Frame], Awaitable[bytes | None]]


@dataclass
class ConnectionStats:
    """Counters of an MLLP server, for tests and the status endpoint."""

    accepted: int = 0
    refused_busy: int = 0
    frames: int = 0
    too_large: int = 0
    timed_out: int = 0
    closed_unreadable: int = 0


class MLLPServer:
    """An asyncio MLLP server: one frame in, one reply out, per connection in order."""

    def __init__(
        self,
        handler: FrameHandler,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: MLLPLimits | None = None,
    ) -> None:
        self.handler = handler
        self.host, self.port = host, port
        self.limits = limits or MLLPLimits()
        self.stats = ConnectionStats()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._open = 0

    async def start(self) -> int:
        """Listen; returns the bound port (``port=0`` picks a free one)."""
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self.port, limit=self.limits.read_chunk_bytes
        )
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Stop listening and close every open connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    @property
    def open_connections(self) -> int:
        return self._open

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self._open >= self.limits.max_connections:
            self.stats.refused_busy += 1
            writer.close()
            return
        self._open += 1
        self.stats.accepted += 1
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # stop() ends connections by cancelling them; the connection task is a leaf
            # (asyncio's stream callback would log a cancelled task as an error).
            pass
        finally:
            self._open -= 1
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limits = self.limits
        frames = FrameReader(limits.max_frame_bytes)
        loop = asyncio.get_running_loop()
        frame_deadline: float | None = None
        while True:
            now = loop.time()
            if frames.in_frame:
                if frame_deadline is None:
                    frame_deadline = now + limits.frame_timeout_s
                wait = frame_deadline - now
            else:
                frame_deadline = None
                wait = limits.idle_timeout_s
            if wait <= 0:
                self.stats.timed_out += 1
                return
            try:
                data = await asyncio.wait_for(reader.read(limits.read_chunk_bytes), wait)
            except TimeoutError:
                self.stats.timed_out += 1
                return
            if not data:
                return  # peer closed; a partial frame is dropped
            try:
                complete = frames.feed(data)
            except FrameTooLarge:
                self.stats.too_large += 1
                log.warning("MLLP frame over %d bytes refused", limits.max_frame_bytes)
                return
            for item in complete:
                self.stats.frames += 1
                reply = await self.handler(item)
                if reply is None:
                    self.stats.closed_unreadable += 1
                    return
                writer.write(frame(reply))
                await writer.drain()
            if complete and not frames.in_frame:
                frame_deadline = None


class MLLPClient:
    """One MLLP connection to an endpoint: send a message, await its framed reply.

    The connection is opened on first use and reopened once if it was found closed when
    sending (reconnect policy: one immediate retry; the caller backs off beyond that).
    A reply that does not arrive within ``timeout_s`` closes the connection, so a late
    reply is never taken for the next message's.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        max_reply_bytes: int = 1024 * 1024,
    ) -> None:
        self.host, self.port = host, port
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_reply_bytes = max_reply_bytes
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._frames = FrameReader(max_reply_bytes)
        self._pending: list[Frame] = []

    @property
    def connected(self) -> bool:
        """Open, and not closed by the peer while idle (its FIN already received)."""
        return (
            self._writer is not None
            and not self._writer.is_closing()
            and self._reader is not None
            and not self._reader.at_eof()
        )

    async def connect(self) -> None:
        """Open the connection (raises :class:`MLLPError` when refused or too slow)."""
        await self.close()
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.connect_timeout_s
            )
        except TimeoutError:
            raise MLLPTimeout(
                f"connect to {self.host}:{self.port}: no answer within {self.connect_timeout_s} s"
            ) from None
        except OSError as exc:
            raise MLLPError(f"connect to {self.host}:{self.port}: {exc.strerror or exc}") from None
        self._frames = FrameReader(self.max_reply_bytes)
        self._pending = []

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def send(self, payload: bytes) -> bytes:
        """Send one message and return the reply's payload (raises :class:`MLLPError`).

        On a connection kept from an earlier message, a write that fails or a close with
        no reply byte means the peer dropped the idle connection: the message is sent once
        more on a new connection (a receiver that did see it deduplicates on MSH-10).
        """
        fresh = not self.connected
        if fresh:
            await self.connect()
        try:
            return await self._exchange(payload)
        except _PeerClosed as exc:
            if fresh:
                raise MLLPError(str(exc)) from None
        await self.connect()
        try:
            return await self._exchange(payload)
        except _PeerClosed as exc:
            raise MLLPError(str(exc)) from None

    async def _exchange(self, payload: bytes) -> bytes:
        try:
            await self._write(payload)
        except (ConnectionError, OSError):
            await self.close()
            raise _PeerClosed(f"send to {self.host}:{self.port}: connection lost") from None
        try:
            return await asyncio.wait_for(self._read_reply(), self.timeout_s)
        except TimeoutError:
            await self.close()
            raise MLLPTimeout(
                f"no reply from {self.host}:{self.port} within {self.timeout_s} s"
            ) from None
        except _PeerClosed:
            await self.close()
            raise
        except (ConnectionError, OSError):
            await self.close()
            raise _PeerClosed(f"reply from {self.host}:{self.port}: connection lost") from None
        except MLLPError:
            await self.close()
            raise

    async def _write(self, payload: bytes) -> None:
        assert self._writer is not None
        self._writer.write(frame(payload))
        await self._writer.drain()

    async def _read_reply(self) -> bytes:
        assert self._reader is not None
        while not self._pending:
            data = await self._reader.read(64 * 1024)
            if not data:
                raise _PeerClosed(f"{self.host}:{self.port} closed the connection without a reply")
            self._pending.extend(self._frames.feed(data))
        reply = self._pending.pop(0)
        if reply.problem is not None:
            raise MLLPError(f"reply from {self.host}:{self.port}: {reply.problem}")
        return reply.payload

    async def __aenter__(self) -> MLLPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
