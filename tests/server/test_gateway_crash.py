"""Killing the server (SIGKILL) while a pump streams envelopes loses no acknowledged
envelope and stores none twice: acks are sent only after commit, and the pump's replay
from the welcome's seq is stored idempotently (docs/pump-protocol.md, "Failure behaviour")."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus

from openinfusion.server.app import open_context
from tests.server._server_support import (
    ServerProcess,
    TestPump,
    cheap_password_hashing,  # noqa: F401 (autouse)
    make_settings,
    status_body,
)


def _start(data_dir: Path, port: int | None = None) -> ServerProcess:
    return ServerProcess(data_dir, port=port).wait_healthy()


def test_sigkill_mid_stream_loses_no_acked_envelope_and_stores_none_twice(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    ctx, first = open_context(settings)
    ctx.db.dispose()
    biomed_pw = next(c.password for c in first if c.role == "biomed")
    server = _start(settings.data_dir)
    try:
        r = httpx.post(
            f"{server.url}/api/auth/token", data={"username": "biomed1", "password": biomed_pw}
        )
        h = {"Authorization": f"Bearer {r.json()['access_token']}"}
        token = httpx.post(f"{server.url}/api/enrolment-tokens", headers=h).json()["token"]
        pump = TestPump(server, "SN-CRASH")
        assert pump.enrol(token).status_code == 200
        pump.connect()
        total = 400
        outbox = [pump.envelope("status", status_body(volume=i / 10)) for i in range(total)]
        acked = 0
        pump.send(*outbox[:200])
        deadline = time.monotonic() + 10
        while acked < 40 and time.monotonic() < deadline:  # let some batches commit
            acked = max(acked, pump.wait_ack(acked + 1))
        os.kill(server.proc.pid, signal.SIGKILL)  # mid-stream: frames queued, batches open
        server.proc.wait(10)
        try:  # acks already on the wire still count: they followed a commit
            while True:
                frame = pump.recv(timeout=1)
                if frame.get("type") == "ack":
                    acked = max(acked, frame["seq"])
        except (ConnectionClosed, TimeoutError, OSError, InvalidStatus):
            pass
        pump.close()

        server = _start(settings.data_dir, server.port)
        last_stored = pump.connect()
        assert last_stored >= acked  # nothing acknowledged was lost
        pump.send(*outbox[last_stored:])  # the outbox replays everything not yet stored
        assert pump.wait_ack(total, timeout=30) == total
        pump.close()
    finally:
        server.stop()
    with sqlite3.connect(settings.data_dir / "openinfusion.db") as db:
        seqs = [
            row[0]
            for row in db.execute(
                "SELECT seq FROM pump_messages WHERE pump_id = ? ORDER BY seq", (pump.pump_id,)
            )
        ]
        last_seq, gaps = db.execute(
            "SELECT last_seq, gaps FROM pumps WHERE id = ?", (pump.pump_id,)
        ).fetchone()
    assert seqs == list(range(1, total + 1))  # every one once
    assert last_seq == total and json.loads(gaps) == []
