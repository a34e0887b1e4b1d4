"""Nothing lost across a server kill (DESIGN "nothing lost", RELIABILITY F-13): the real
``serve`` process with an EHR destination that is down; a pump reports over its WebSocket
and is acknowledged all the while; the server is killed (SIGKILL) with its messages still
queued; the EHR comes up and the restarted server delivers every message, in order, each
under the control id it was queued with."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.interop._ehr import FakeEHR
from tests.server._server_support import (
    TestPump,
    free_port,
    make_settings,
    status_body,
    wait_for,
)


class HL7Server:
    """``openinfusion serve`` in its own process with an HL7 destination."""

    def __init__(self, data_dir: Path, port: int, destination: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/api/gateway/ws"
        entry = (
            "import typer; from openinfusion.cli.server_cmd import serve_command; "
            "typer.run(serve_command)"
        )
        args = ["--port", str(port), "--data-dir", str(data_dir)]
        args += ["--hl7-destination", destination, "--hl7-status-interval", "0"]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", entry, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 240  # a loaded machine imports slowly
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"server exited: {err[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become healthy")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _login(url: str, data_dir: Path, role: str) -> dict[str, str]:
    accounts = json.loads((data_dir / "demo-credentials.json").read_text())
    account = next(a for a in accounts if a["role"] == role)
    r = httpx.post(
        f"{url}/api/auth/token",
        data={"username": account["username"], "password": account["password"]},
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _outbox(url: str, headers: dict[str, str]) -> dict[str, Any]:
    r = httpx.get(f"{url}/api/interop/hl7/outbox", headers=headers, timeout=5)
    assert r.status_code == 200, r.text
    dest: dict[str, Any] = r.json()["destinations"][0]
    return dest


def test_kill_with_queued_messages_then_all_delivered_in_order(tmp_path: Path) -> None:
    data_dir = make_settings(tmp_path).data_dir
    ehr = FakeEHR(port=free_port())
    port = free_port()
    server = HL7Server(data_dir, port, ehr.destination)
    try:
        biomed = _login(server.url, data_dir, "biomed")
        token = httpx.post(f"{server.url}/api/enrolment-tokens", headers=biomed).json()["token"]
        pump = TestPump(server, "SN-HL7-RESTART")  # type: ignore[arg-type]
        assert pump.enrol(token).status_code == 200
        pump.connect()
        frames = [pump.envelope("status", status_body(rate=float(r))) for r in (5, 6, 7)]
        frames.append(pump.envelope("event", {"kind": "stopped", "channel": 1}))
        frames.append(
            pump.envelope(
                "alarm", {"state": "raised", "code": "occlusion", "priority": "high", "channel": 1}
            )
        )
        pump.send(*frames)
        # the pump is acknowledged although the EHR is down: its alarms never wait on it
        assert pump.wait_ack(pump.seq, timeout=10) == pump.seq
        pump.close()
        admin = _login(server.url, data_dir, "admin")
        queued = wait_for(
            lambda: (
                (d := _outbox(server.url, admin))["counts"]["pending"] == 5
                and d["last_error"]
                and d
            ),
            timeout=20,
        )
        assert "connect to" in queued["last_error"]["error"]
        assert queued["oldest_pending_age_s"] >= 0 and queued["last_ack_at"] is None
        rows = httpx.get(
            f"{server.url}/api/interop/hl7/outbox/messages",
            params={"status": "pending"},
            headers=admin,
        ).json()
        queued_ids = [m["control_id"] for m in sorted(rows, key=lambda m: m["id"])]
        assert len(queued_ids) == 5 and all("\\r" in m["payload"] for m in rows)
        server.kill()

        ehr.start()
        server = HL7Server(data_dir, port, ehr.destination)
        wait_for(lambda: len(ehr.control_ids()) >= 5, timeout=30)
        admin = _login(server.url, data_dir, "admin")
        done = wait_for(
            lambda: (d := _outbox(server.url, admin))["counts"]["acked"] == 5 and d, timeout=20
        )
        assert done["counts"]["pending"] == done["counts"]["error"] == 0
        assert done["last_ack_at"] is not None
        assert ehr.control_ids() == queued_ids  # each once, in the order queued
        assert [t for _, t in ehr.received] == ["ORU^R01"] * 4 + ["ORU^R40"]
    finally:
        server.stop()
        ehr.stop()
