"""MLLP framing and transport (RELIABILITY B-03) over real loopback sockets: missing start or
end blocks, nested frames, 0-byte and 100 MB frames, slowloris, many connections; other
connections keep being served throughout."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.interop.mllp import (
    Frame,
    FrameReader,
    FrameTooLarge,
    MLLPClient,
    MLLPError,
    MLLPLimits,
    MLLPServer,
    MLLPTimeout,
    frame,
)

MSG = b"MSH|^~\\&|EHR|HOSP|OI|ICU|20261203080000||ADT^A01|C1|P|2.6\rPID|||123\r"


async def _reply(f: Frame) -> bytes | None:
    """Test handler: answers well-formed, non-empty frames; closes on anything else."""
    if f.problem is not None or not f.payload.startswith(b"MSH"):
        return None
    return b"ACK:" + f.payload[:40]


# ---------------------------------------------------------------- the frame reader


def test_one_frame_and_its_bytes() -> None:
    r = FrameReader(1024)
    assert r.feed(frame(MSG)) == [Frame(MSG)]
    assert not r.in_frame


def test_missing_end_block_is_reported_when_the_next_frame_starts() -> None:
    r = FrameReader(1024)
    out = r.feed(b"\x0bMSH|first" + frame(MSG))
    assert out == [Frame(b"MSH|first", "missing_end_block"), Frame(MSG)]


def test_missing_start_block_and_garbage_before_the_start_block() -> None:
    r = FrameReader(1024)
    assert r.feed(b"MSH|no start\x1c\r") == [Frame(b"MSH|no start", "missing_start_block")]
    assert r.feed(b"garbage\x00\xff" + frame(MSG)) == [Frame(MSG)]  # garbage dropped
    assert r.feed(b"\r\n\r\n") == [] and not r.in_frame  # whitespace between frames


def test_zero_byte_frame_and_end_block_without_cr() -> None:
    r = FrameReader(1024)
    assert r.feed(b"\x0b\x1c\r") == [Frame(b"")]
    assert r.feed(b"\x0bA\x1c\x0bB\x1c") == [Frame(b"A"), Frame(b"B")]
    assert r.feed(b"\r") == []  # the CR closing the last end block, in the next chunk


def test_oversized_frame_refused_at_the_limit() -> None:
    r = FrameReader(100)
    r.feed(b"\x0b" + b"x" * 60)
    with pytest.raises(FrameTooLarge, match="100 bytes"):
        r.feed(b"x" * 60)
    with pytest.raises(FrameTooLarge):
        FrameReader(100).feed(b"no start block at all " * 10)


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(
        st.binary(max_size=50).map(lambda b: bytes(c for c in b if c not in (11, 28))), max_size=6
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_frames_do_not_depend_on_how_bytes_are_split(
    messages: list[bytes], cuts: list[int]
) -> None:
    """Property: however TCP splits the stream, the same frames come out, in order."""
    stream = b"".join(frame(m) for m in messages)
    points = sorted({c for c in cuts if c < len(stream)})
    reader = FrameReader(1024)
    got: list[Frame] = []
    for a, b in zip([0, *points], [*points, len(stream)], strict=True):
        got += reader.feed(stream[a:b])
    assert got == [Frame(m) for m in messages]


# ---------------------------------------------------------------- real sockets


async def _server(**limits: float) -> MLLPServer:
    server = MLLPServer(_reply, limits=MLLPLimits(**limits))  # type: ignore[arg-type]
    await server.start()
    return server


async def _raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _closed(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (fails if it does not close in time)."""
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    except ConnectionResetError:  # closed with our bytes unread
        return b""


def test_client_and_server_exchange_and_unreadable_frames_close() -> None:
    async def main() -> None:
        server = await _server()
        try:
            async with MLLPClient("127.0.0.1", server.port, timeout_s=5) as client:
                for _ in range(3):  # one connection, several messages
                    assert await client.send(MSG) == b"ACK:" + MSG[:40]
            for bad in (b"\x0b\x1c\r", b"\x0bnot hl7\x1c\r", b"\x0bMSH|a" + frame(MSG)):
                reader, writer = await _raw(server.port)
                writer.write(bad)
                assert await _closed(reader) == b""  # nothing readable: closed, no reply
                writer.close()
        finally:
            await server.stop()

    asyncio.run(main())


def test_slowloris_dribble_is_cut_off_and_others_are_served() -> None:
    async def main() -> None:
        server = await _server(frame_timeout_s=0.6, idle_timeout_s=30)
        try:
            reader, writer = await _raw(server.port)
            started = time.monotonic()
            dribble = frame(MSG)[:-2]
            closed = False
            async with MLLPClient("127.0.0.1", server.port, timeout_s=2) as other:
                for i in range(len(dribble)):
                    try:
                        writer.write(dribble[i : i + 1])
                        await writer.drain()
                    except ConnectionError:
                        closed = True
                        break
                    assert await other.send(MSG)  # another connection is served meanwhile
                    await asyncio.sleep(0.05)
                    if reader.at_eof() or time.monotonic() - started > 3:
                        break
            data = await _closed(reader, 3)
            assert data == b"" and (closed or time.monotonic() - started < 3)
            assert server.stats.timed_out == 1
        finally:
            await server.stop()

    asyncio.run(main())


def test_idle_connection_closed() -> None:
    async def main() -> None:
        server = await _server(idle_timeout_s=0.3)
        try:
            reader, _writer = await _raw(server.port)
            t0 = time.monotonic()
            assert await _closed(reader, 3) == b""
            assert time.monotonic() - t0 < 2
        finally:
            await server.stop()

    asyncio.run(main())


def test_100_mb_frame_refused_without_reading_it_all() -> None:
    """The sender produces a 100 MB frame lazily; the server closes past its 1 MiB limit,
    long before the sender is done, and a second connection is served meanwhile."""

    async def main() -> None:
        server = await _server(max_frame_bytes=1024 * 1024)
        try:
            _reader, writer = await _raw(server.port)
            chunk = b"A" * (256 * 1024)
            sent = 0
            writer.write(b"\x0bMSH|^~\\&|BIG|")
            with pytest.raises((ConnectionError, OSError)):
                while sent < 100 * 1024 * 1024:
                    writer.write(chunk)
                    await asyncio.wait_for(writer.drain(), 5)
                    sent += len(chunk)
            assert sent < 20 * 1024 * 1024
            assert server.stats.too_large == 1
            async with MLLPClient("127.0.0.1", server.port) as other:
                assert await other.send(MSG)
        finally:
            await server.stop()

    asyncio.run(main())


def test_connection_limit_and_many_concurrent_clients() -> None:
    async def main() -> None:
        server = await _server(max_connections=40)
        try:
            clients = [MLLPClient("127.0.0.1", server.port, timeout_s=10) for _ in range(40)]
            replies = await asyncio.gather(*(c.send(MSG) for c in clients))
            assert all(r.startswith(b"ACK:") for r in replies)
            # the 41st connection is closed at once; the 40 open ones still work
            reader, writer = await _raw(server.port)
            writer.write(frame(MSG))
            assert await _closed(reader) == b""
            assert server.stats.refused_busy == 1
            assert await clients[0].send(MSG)
            for c in clients:
                await c.close()
        finally:
            await server.stop()

    asyncio.run(main())


def test_client_errors_refused_timeout_and_reconnect() -> None:
    async def main() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead_port = s.getsockname()[1]
        with pytest.raises(MLLPError, match="connect to"):
            await MLLPClient("127.0.0.1", dead_port).send(MSG)

        async def never(_f: Frame) -> bytes | None:
            await asyncio.sleep(30)
            return b""

        tarpit = MLLPServer(never)
        await tarpit.start()
        try:
            with pytest.raises(MLLPTimeout, match="no reply"):
                await MLLPClient("127.0.0.1", tarpit.port, timeout_s=0.3).send(MSG)
        finally:
            await tarpit.stop()

        server = await _server()
        client = MLLPClient("127.0.0.1", server.port, timeout_s=5)
        try:
            assert await client.send(MSG)
            await server.stop()  # the endpoint restarts on the same port
            server = MLLPServer(_reply, port=server.port)
            await server.start()
            assert await client.send(MSG)  # the client reconnected by itself
        finally:
            await client.close()
            await server.stop()

    asyncio.run(main())
