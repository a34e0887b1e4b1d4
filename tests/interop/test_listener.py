"""The server's inbound HL7 listener: error replies (AR for what cannot be read, AE when
order intake fails, closed when there is no MSH at all), Latin-1 messages by MSH-18, and
(RELIABILITY B-03) pump traffic on the same server keeps flowing while the listener is
abused with slowloris dribbles, a 100 MB frame and many garbage connections."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from openinfusion.interop.hl7.parse import control_id, field_text, parse_message, segments
from openinfusion.interop.listener import InboundListener
from openinfusion.interop.mllp import MLLPClient, MLLPLimits, frame
from openinfusion.server.app import create_app, open_context
from openinfusion.server.context import ServerContext
from tests.server._server_support import (
    LiveServer,
    TestPump,
    cheap_password_hashing,  # noqa: F401 (autouse)
    credentials,
    free_port,
    make_settings,
    status_body,
)

ADT = (
    "MSH|^~\\&|EHR|HOSP|OPENINFUSION|ICU|20261203080000||ADT^A01^ADT_A01|{cid}|P|2.6\r"
    "PID|||MRN-1||Lovelace^Ada\r"
)


def _ack(reply: bytes) -> tuple[str, str, str]:
    """(MSA-1, MSA-2, ERR-8 text) of a reply."""
    msg = parse_message(reply)
    msa = segments(msg, "MSA")[0]
    errs = segments(msg, "ERR")
    return (
        field_text(msg, msa, 1),
        field_text(msg, msa, 2),
        field_text(msg, errs[0], 8) if errs else "",
    )


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[ServerContext]:
    context, _ = open_context(make_settings(tmp_path))
    yield context
    context.db.dispose()


def test_listener_replies(ctx: ServerContext) -> None:
    seen: list[tuple[str, bytes]] = []

    def dispatch(c: ServerContext, msg: Any, raw: bytes) -> str:
        from openinfusion.interop.hl7.ack import build_ack

        if control_id(msg) == "BOOM":
            raise RuntimeError("database went away")
        seen.append((control_id(msg), raw))
        return build_ack(msg, "AA", now=c.now(), control_id="R1")

    async def main() -> None:
        listener = InboundListener(ctx, port=0, dispatch=dispatch)
        await listener.start()
        try:
            async with MLLPClient("127.0.0.1", listener.port, timeout_s=10) as client:
                assert _ack(await client.send(ADT.format(cid="OK-1").encode()))[:2] == (
                    "AA",
                    "OK-1",
                )
                # Latin-1 by MSH-18: read as such, handed on with its raw bytes
                latin = ADT.format(cid="LAT-1").replace("|2.6\r", "|2.6||||||8859/1\r")
                latin = latin.replace("Ada", "Zoë")
                assert _ack(await client.send(latin.encode("latin-1")))[0] == "AA"
                # unreadable (charset not in table 0211): AR naming the field, MSA-2 kept
                bad = ADT.format(cid="BAD-1").replace("|2.6\r", "|2.6||||||EBCDIC\r")
                code, original, text = _ack(await client.send(bad.encode()))
                assert (code, original) == ("AR", "BAD-1") and "MSH-18" in text
                # declared UTF-8 but not UTF-8 (a Latin-1 byte): AR, data type error
                mixed = ADT.format(cid="MIX-1").replace("Ada", "Zo\u00eb").encode("latin-1")
                code, original, _text = _ack(await client.send(mixed))
                assert (code, original) == ("AR", "MIX-1")
                # order intake failing: AE, 207, and the connection goes on
                code, original, text = _ack(await client.send(ADT.format(cid="BOOM").encode()))
                assert (code, original) == ("AE", "BOOM") and "internal error" in text
                assert _ack(await client.send(ADT.format(cid="OK-2").encode()))[0] == "AA"
            # a frame cut short by a new start block: refused, never acted on
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.write(b"\x0b" + ADT.format(cid="CUT-1").encode() + frame(b"x"))
            await writer.drain()
            data = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 10)
            code, original, text = _ack(data[1:-2])
            assert (code, original) == ("AR", "CUT-1") and "end block" in text
            writer.close()
            # no MSH at all: nothing to acknowledge, the connection is closed
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.write(frame(b"GET / HTTP/1.1\r\n"))
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
        finally:
            await listener.stop()

    asyncio.run(main())
    assert [c for c, _ in seen] == ["OK-1", "LAT-1", "OK-2"]
    assert "Zoë".encode("latin-1") in seen[1][1]


# ---- B-03 on the running server -------------------------------------------------------------


def _slowloris(port: int, stop: threading.Event) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        for b in b"\x0b" + ADT.format(cid="SLOW").encode():
            if stop.is_set():
                return
            try:
                s.sendall(bytes([b]))
            except OSError:
                return
            time.sleep(0.05)


def _huge(port: int, stop: threading.Event, sent: list[int]) -> None:
    chunk = b"A" * (256 * 1024)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"\x0bMSH|^~\\&|BIG|")
        total = 0
        try:
            while total < 100 * 1024 * 1024 and not stop.is_set():
                s.sendall(chunk)
                total += len(chunk)
        except OSError:
            pass
        sent.append(total)


def _garbage(port: int, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"\x00\xff garbage \x1c\r" * 50 + b"\x0b\x1c\r")
                s.recv(100)
        except OSError:
            pass


def test_b03_pump_traffic_unaffected_while_the_listener_is_abused(tmp_path: Path) -> None:
    hl7_port = free_port()
    settings = make_settings(
        tmp_path,
        hl7_listen_port=hl7_port,
        hl7_max_frame_bytes=1024 * 1024,
        hl7_frame_timeout_s=1.0,
        hl7_max_connections=32,
    )
    app = create_app(settings)
    with LiveServer(app) as server:
        biomed = credentials(app)["biomed"]
        r = httpx.post(
            f"{server.url}/api/auth/token", data={"username": "biomed1", "password": biomed}
        )
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        token = httpx.post(f"{server.url}/api/enrolment-tokens", headers=headers).json()["token"]
        pump = TestPump(server, "SN-B03")
        assert pump.enrol(token).status_code == 200
        pump.connect()

        def round_trip() -> float:
            t0 = time.monotonic()
            pump.send(pump.envelope("status", status_body()))
            pump.wait_ack(pump.seq, timeout=10)
            return time.monotonic() - t0

        baseline = max(round_trip() for _ in range(5))
        stop = threading.Event()
        sent: list[int] = []
        abusers = [threading.Thread(target=_slowloris, args=(hl7_port, stop)) for _ in range(10)]
        abusers += [threading.Thread(target=_huge, args=(hl7_port, stop, sent))]
        abusers += [threading.Thread(target=_garbage, args=(hl7_port, stop)) for _ in range(4)]
        for t in abusers:
            t.start()
        try:
            # at least 30 round trips, and long enough for the 1 s frame deadline to pass
            under_abuse: list[float] = []
            started = time.monotonic()
            while len(under_abuse) < 30 or time.monotonic() - started < 2.5:
                under_abuse.append(round_trip())

            async def honest() -> tuple[str, str, str]:
                async with MLLPClient("127.0.0.1", hl7_port, timeout_s=10) as client:
                    return _ack(await client.send(ADT.format(cid="HONEST-1").encode()))

            reply = asyncio.run(honest())
        finally:
            stop.set()
            for t in abusers:
                t.join(30)
        pump.close()
        listener = app.state.hl7_listener
        stats = listener.server.stats
    print(
        f"pump ack round trip: baseline max {baseline:.3f} s, under abuse max {max(under_abuse):.3f} s"
    )
    # pump envelopes are acknowledged as before (generous bound for a loaded test machine)
    assert max(under_abuse) < max(2.0, 10 * baseline), (baseline, under_abuse)
    # an honest EHR connection still gets its answer from order intake
    assert reply[1] == "HONEST-1" and reply[0] in ("AA", "AE", "AR")
    # the 100 MB frame was refused at the limit, not read to the end
    assert sent and sent[0] < 100 * 1024 * 1024 and stats.too_large == 1
    assert stats.timed_out >= 1  # slowloris connections were cut


def test_limits_come_from_settings(ctx: ServerContext) -> None:
    listener = InboundListener(ctx, port=0)
    assert listener.server.limits == MLLPLimits(
        max_frame_bytes=ctx.settings.hl7_max_frame_bytes,
        frame_timeout_s=ctx.settings.hl7_frame_timeout_s,
        idle_timeout_s=ctx.settings.hl7_idle_timeout_s,
        max_connections=ctx.settings.hl7_max_connections,
    )
    listener.executor.shutdown()
