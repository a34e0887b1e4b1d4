"""``openinfusion demo``: the README's first command, as a real process tree on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.server._server_support import free_port


def _token(url: str, account: dict[str, str]) -> str:
    r = httpx.post(
        f"{url}/api/auth/token",
        data={"username": account["username"], "password": account["password"]},
        timeout=5.0,
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def test_demo_starts_server_and_ward_and_the_ward_fills_in(tmp_path: Path) -> None:
    """The demo prints where the dashboard is and the generated accounts; every pump of the
    ward enrols over a real socket and streams with no sequence gap; the dashboard page is
    served; the demo stops both processes when its duration is over and exits 0."""
    port, pumps = free_port(), 6
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "openinfusion.cli.main", "demo", "--port", str(port),
         "--data-dir", str(tmp_path / "demo"), "--pumps", str(pumps), "--speed", "120",
         "--duration", "25", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        announced = json.loads(_read_json_object(proc.stdout))
        assert announced["dashboard_url"] == f"{url}/"
        roles = {a["role"] for a in announced["accounts"]}
        assert roles == {
            "nurse",
            "physician",
            "pharmacist",
            "biomed",
            "admin",
            "monitor",
            "interface",
        }
        nurse = next(a for a in announced["accounts"] if a["role"] == "nurse")
        token = _token(url, nurse)
        seen: list[dict[str, object]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            seen = httpx.get(
                f"{url}/api/pumps", headers={"Authorization": f"Bearer {token}"}, timeout=5.0
            ).json()
            if len(seen) == pumps and all(p["online"] and p["last_seq"] > 1 for p in seen):
                break
            time.sleep(0.5)
        assert len(seen) == pumps
        assert all(p["online"] for p in seen)
        assert all(p["gaps"] == [] for p in seen)
        page = httpx.get(f"{url}/", timeout=5.0)
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.poll() is None:  # SIGTERM lets the demo stop its server and ward first
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    creds = tmp_path / "demo" / "server" / "demo-credentials.json"
    assert creds.stat().st_mode & 0o777 == 0o600


def _read_json_object(stream: object) -> str:
    """Lines from ``stream`` up to the end of the first top-level JSON object."""
    lines: list[str] = []
    depth = 0
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        line = raw.decode()
        lines.append(line)
        depth += line.count("{") - line.count("}")
        if lines and depth == 0 and "}" in line:
            break
    return "".join(lines)


def test_sigterm_stops_the_demo_and_its_processes(tmp_path: Path) -> None:
    """Stopping the demo (SIGTERM, as a service manager or Ctrl-C would) stops the server
    and the ward it started: nothing is left listening on the port."""
    import signal
    import socket

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "openinfusion.cli.main", "demo", "--port", str(port),
         "--data-dir", str(tmp_path / "demo"), "--pumps", "2", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        json.loads(_read_json_object(proc.stdout))  # server healthy, ward started
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # the server is gone
