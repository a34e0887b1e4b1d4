"""End to end: a simulated ward streams to the server, the server is killed (SIGKILL) mid-run
and restarted on the same store. No pump message is lost or stored twice (every pump's
sequence is complete on the server, up to what the pump itself numbered), the pumps kept
infusing while the server was gone (fail-operational, RELIABILITY F-10/F-02), and what they
queued meanwhile arrives after the restart. Run on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server._server_support import ServerProcess, free_port
from tests.server.test_app_postgres import pg_url  # noqa: F401 (fixture)

PUMPS = 4
OUTAGE_S = 6.0


def _login(url: str, creds: list[dict[str, str]], role: str) -> dict[str, str]:
    account = next(a for a in creds if a["role"] == role)
    r = httpx.post(
        f"{url}/api/auth/token",
        data={"username": account["username"], "password": account["password"]},
        timeout=10,
    )
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _pumps(url: str, auth: dict[str, str]) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/api/pumps", headers=auth, timeout=10)
    r.raise_for_status()
    return list(r.json())


def _messages(url: str, auth: dict[str, str], pump_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        after = out[-1]["seq"] if out else 0
        r = httpx.get(
            f"{url}/api/pumps/{pump_id}/messages",
            params={"after_seq": after, "limit": 1000},
            headers=auth,
            timeout=10,
        )
        r.raise_for_status()
        page = r.json()
        if not page:
            return out
        out.extend(page)


def _outbox_numbered(ward_dir: Path, serial: str) -> tuple[int, int]:
    """(highest seq the pump numbered, highest the server acked) from the pump's outbox."""
    with sqlite3.connect(ward_dir / serial / "outbox.db") as db:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    return int(meta["next_seq"]) - 1, int(meta["acked_seq"])


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
    else:
        yield request.getfixturevalue("pg_url")


def test_server_sigkill_mid_ward_loses_and_duplicates_nothing(
    tmp_path: Path, store: str | None
) -> None:
    data, ward_dir = tmp_path / "server", tmp_path / "ward"
    data.mkdir(mode=0o700)
    port = free_port()
    server = ServerProcess(data, db=store, port=port).wait_healthy()
    url = server.url
    ward = None
    try:
        creds = json.loads((data / "demo-credentials.json").read_text())
        ward = subprocess.Popen(
            [sys.executable, "-m", "openinfusion.cli.main", "ward", "--server", url,
             "--credentials", str(data / "demo-credentials.json"), "--pumps", str(PUMPS),
             "--speed", "60", "--data-dir", str(ward_dir), "--duration", "40"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        auth = _login(url, creds, "biomed")
        _wait(
            lambda: (
                len(ps := _pumps(url, auth)) == PUMPS
                and all(p["online"] and p["last_seq"] >= 3 for p in ps)
            ),
            40,
            "the ward to stream",
        )
        killed_at = datetime.now().astimezone()
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        time.sleep(OUTAGE_S)  # the ward goes on alone, queueing in its outboxes
        restarted_at = datetime.now().astimezone()
        server = ServerProcess(data, db=store, port=port).wait_healthy()
        auth = _login(url, creds, "biomed")

        assert ward.wait(90) == 0, ward.stderr.read().decode()[-2000:] if ward.stderr else ""
        pumps = _pumps(url, auth)
        assert len(pumps) == PUMPS
        infusing_checked = 0
        for pump in pumps:
            numbered, acked = _outbox_numbered(ward_dir, pump["serial"])
            assert pump["gaps"] == [], pump
            assert pump["last_seq"] == numbered == acked, (pump["serial"], numbered, acked)
            msgs = _messages(url, auth, pump["id"])
            # Every seq the pump numbered is stored exactly once.
            assert [m["seq"] for m in msgs] == list(range(1, numbered + 1))
            # ... and the pump kept infusing while the server was gone: between the last status
            # before the kill and the first after the restart, every channel running at a rate
            # delivered at least that rate over the pump time in between (boluses may add).
            statuses = [m for m in msgs if m["type"] == "status"]
            before = [m for m in statuses if datetime.fromisoformat(m["sent_at"]) < killed_at]
            after = [m for m in statuses if datetime.fromisoformat(m["sent_at"]) > restarted_at]
            assert before and after, pump["serial"]
            b, a = before[-1]["body"], after[0]["body"]
            pump_hours = (a["t_s"] - b["t_s"]) / 3600.0
            assert pump_hours > OUTAGE_S * 60 / 3600 * 0.9  # pump time ran on (60x)
            for cb in b["channels"]:
                ca = next(c for c in a["channels"] if c["channel"] == cb["channel"])
                rate = cb.get("rate_ml_h") or 0.0
                if cb.get("state") == "running" and rate > 0 and ca.get("state") == "running":
                    gained = (ca["volume_infused_ml"] or 0) - (cb["volume_infused_ml"] or 0)
                    expected = rate * pump_hours
                    assert gained >= 0.9 * expected - 0.01, (pump["serial"], cb, ca, expected)
                    infusing_checked += 1
        assert infusing_checked >= 2
    finally:
        if ward is not None and ward.poll() is None:
            ward.kill()
            ward.wait()
        server.stop()
