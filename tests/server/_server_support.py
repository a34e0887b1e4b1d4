"""Test support for the management server: settings in a private temp dir, logins, a real
uvicorn server on a free loopback port, and a pump that speaks protocol v1 over a socket."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher, profiles
from fastapi import FastAPI
from websockets.sync.client import ClientConnection, connect

from openinfusion.security import (
    PrivateKey,
    PublicKey,
    b64decode,
    b64encode,
    build_envelope,
    build_hello,
    generate_private_key,
    parse_frame,
    passwords,
    public_bytes,
    verify_challenge,
    verify_welcome,
)
from openinfusion.server.config import Settings


@pytest.fixture(autouse=True, scope="module")
def cheap_password_hashing() -> Iterator[None]:
    """Argon2id with its cheapest parameters, so that tests creating many accounts stay
    fast; the production parameters are tested in tests/security/test_passwords.py."""
    saved = passwords._HASHER
    passwords._HASHER = PasswordHasher.from_parameters(profiles.CHEAPEST)
    passwords.dummy_hash.cache_clear()
    try:
        yield
    finally:
        passwords._HASHER = saved
        passwords.dummy_hash.cache_clear()


class FakeClock:
    """A wall clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 12, 3, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_settings(tmp_path: Path, name: str = "data", **overrides: Any) -> Settings:
    data = tmp_path / name
    data.mkdir(mode=0o700, exist_ok=True)
    os.chmod(data, 0o700)
    return Settings(data_dir=data, **overrides)


def credentials(app: FastAPI) -> dict[str, str]:
    """role → password of the first accounts (role r has username f"{r}1")."""
    return {c.role: c.password for c in app.state.first_accounts}


def login(client: Any, username: str, password: str) -> dict[str, str]:
    r = client.post("/api/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """The ``serve`` command in its own process (SQLite in the data dir, or ``db``)."""

    def __init__(self, data_dir: Path, db: str | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/api/gateway/ws"
        args = ["--port", str(self.port), "--data-dir", str(data_dir)]
        if db is not None:
            args += ["--db", db]
        # The serve command itself, without importing every other command of the CLI
        # (trial and controller modules take seconds to import on a loaded machine).
        entry = (
            "import typer; from openinfusion.cli.server_cmd import serve_command; "
            "typer.run(serve_command)"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", entry, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def wait_healthy(self, timeout: float = 60) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"server exited: {err[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become healthy")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class LiveServer:
    """The app served by uvicorn in a thread on 127.0.0.1 and a free port."""

    def __init__(self, app: FastAPI) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", ws_max_size=512 * 1024, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/gateway/ws"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


class TestPump:
    """A pump with its own key: enrols over REST, then speaks protocol v1 on a WebSocket."""

    __test__ = False

    def __init__(
        self, server: LiveServer | ServerProcess, serial: str, key: PrivateKey | None = None
    ) -> None:
        self.server, self.serial = server, serial
        self.key = key or generate_private_key()
        self.pump_id = ""
        self.server_key: PublicKey | None = None
        self.seq = 0
        self.ws: ClientConnection | None = None
        self.last_stored = 0

    def enrol(self, token: str, channels: int = 2, kind: str = "syringe") -> httpx.Response:
        r = httpx.post(
            f"{self.server.url}/api/gateway/enrol",
            json={
                "token": token,
                "serial": self.serial,
                "model": "TestPump 1",
                "kind": kind,
                "channels": channels,
                "public_key": b64encode(public_bytes(self.key.public_key())),
            },
        )
        if r.status_code == 200:
            self.pump_id = r.json()["pump_id"]
            raw = b64decode(r.json()["server_public_key"], "server_public_key")
            self.server_key = PublicKey.from_public_bytes(raw)
        return r

    def connect(self, hello_key: PrivateKey | None = None, pump_id: str | None = None) -> int:
        """Handshake; returns the welcome's last_stored_seq."""
        assert self.server_key is not None
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(
            connect(self.server.ws_url, open_timeout=5, max_size=1 << 20)
        )
        challenge = verify_challenge(parse_frame(self.ws.recv(timeout=5)), self.server_key)
        hello = build_hello(
            hello_key or self.key, pump_id or self.pump_id, challenge.nonce, self.last_stored
        )
        self.ws.send(json.dumps(hello))
        welcome = verify_welcome(
            parse_frame(self.ws.recv(timeout=5)), self.server_key, self.pump_id
        )
        self.last_stored = welcome.last_stored_seq
        return welcome.last_stored_seq

    def envelope(
        self,
        kind: str,
        body: dict[str, Any],
        seq: int | None = None,
        key: PrivateKey | None = None,
        pump_id: str | None = None,
    ) -> dict[str, Any]:
        if seq is None:
            self.seq += 1
            seq = self.seq
        return build_envelope(
            key or self.key,
            type=kind,
            pump_id=pump_id or self.pump_id,
            seq=seq,
            body=body,
            sent_at=datetime.now(UTC),
        )

    def send(self, *frames: dict[str, Any]) -> None:
        assert self.ws is not None
        for f in frames:
            self.ws.send(json.dumps(f))

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        assert self.ws is not None
        return parse_frame(self.ws.recv(timeout=timeout))

    def recv_until(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv(max(0.05, deadline - time.monotonic()))
            if frame.get("type") == kind:
                return frame

    def wait_ack(self, seq: int, timeout: float = 5.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv_until("ack", max(0.05, deadline - time.monotonic()))
            if frame["seq"] >= seq:
                return int(frame["seq"])

    def close(self) -> None:
        if self.ws is not None:
            self._stack.close()
            self.ws = None


def status_body(
    state: str = "running", drug: str = "heparin", volume: float = 1.0, rate: float = 10.0
) -> dict[str, Any]:
    """A status body shaped like the pump side's (server/ward/bedside.py status_body)."""
    return {
        "kind": "syringe",
        "t_s": 0.0,
        "powered": True,
        "battery_percent": 90.0,
        "on_mains": True,
        "channels": [
            {
                "channel": 1,
                "state": state,
                "drug": drug,
                "therapy": "continuous",
                "dose": 18.0,
                "dose_unit": "units/kg/h",
                "rate_ml_h": rate,
                "volume_infused_ml": volume,
                "vtbi_ml": 100.0,
                "vtbi_remaining_ml": 100.0 - volume,
                "time_remaining_min": 60.0,
            }
        ],
        "alarms": [],
        "library": {"name": "Test", "version": "2026.1.0", "sha256": "00"},
    }
