"""GET /api/analytics/maintenance on a server whose pumps reported worn parts, and
POST /api/analytics/maintenance/service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openinfusion.security import b64encode, build_envelope, generate_private_key, public_bytes
from openinfusion.server.app import create_app
from openinfusion.server.gateway_batch import handle_batch
from tests.server._server_support import (
    FakeClock,
    cheap_password_hashing,  # noqa: F401 (autouse)
    credentials,
    login,
    make_settings,
)


class Fleet:
    def __init__(self, client: TestClient, app: Any, clock: FakeClock) -> None:
        self.client, self.app, self.clock = client, app, clock
        self.h: dict[str, dict[str, str]] = {}
        self.relogin()
        self.keys: dict[str, Any] = {}
        self.seq: dict[str, int] = {}

    def relogin(self) -> None:
        """Fresh tokens after the clock moved past their expiry."""
        pw = credentials(self.app)
        self.h = {r: login(self.client, f"{r}1", p) for r, p in pw.items()}

    def enrol(self, serial: str) -> str:
        tok = self.client.post("/api/enrolment-tokens", headers=self.h["biomed"], json={}).json()
        key = generate_private_key()
        r = self.client.post(
            "/api/gateway/enrol",
            json={
                "token": tok["token"],
                "serial": serial,
                "model": "OI-Syringe 50",
                "kind": "syringe",
                "channels": 1,
                "public_key": b64encode(public_bytes(key.public_key())),
            },
        )
        assert r.status_code == 200, r.text
        pid = r.json()["pump_id"]
        self.keys[pid], self.seq[pid] = key, 0
        return str(pid)

    def send(self, pid: str, kind: str, body: dict[str, Any]) -> None:
        self.seq[pid] += 1
        frame = build_envelope(
            self.keys[pid],
            type=kind,
            pump_id=pid,
            seq=self.seq[pid],
            body=body,
            sent_at=self.clock(),
        )
        result = handle_batch(
            self.app.state.ctx, pid, self.keys[pid].public_key(), [json.dumps(frame)], "t"
        )
        assert result.close_code is None


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    clock = FakeClock()
    app = create_app(make_settings(tmp_path_factory.mktemp("maint")), clock=clock)
    with TestClient(app) as client:
        f = Fleet(client, app, clock)
        pumps = {
            name: f.enrol(f"SN-{name}")
            for name in ("worn-battery", "drifting-sensor", "ok-1", "ok-2", "ok-3")
        }
        # 10 hours infusing on battery; a worn battery loses charge 2.5 times as fast
        for hour in range(11):
            for name, pid in pumps.items():
                drop = 2.5 if name == "worn-battery" else 1.0
                f.send(
                    pid,
                    "status",
                    {
                        "t_s": 3600.0 * hour,
                        "battery_percent": 100.0 - drop * hour,
                        "on_mains": False,
                        "channels": [
                            {
                                "channel": 1,
                                "state": "running",
                                "rate_ml_h": 5.0,
                                "volume_infused_ml": 5.0 * hour,
                            }
                        ],
                    },
                )
            if hour % 2 == 1:  # nuisance occlusion alarms, cleared by the nurse
                pid = pumps["drifting-sensor"]
                f.send(
                    pid,
                    "alarm",
                    {
                        "code": "occlusion_downstream",
                        "state": "raised",
                        "priority": "high",
                        "channel": 1,
                    },
                )
                f.send(
                    pid, "alarm", {"code": "occlusion_downstream", "state": "cleared", "channel": 1}
                )
            clock.advance(3600)
        f.relogin()
        f.pumps = pumps  # type: ignore[attr-defined]
        yield f


def test_queue_ranks_worn_pumps_first_with_reasons(fleet: Fleet) -> None:
    r = fleet.client.get("/api/analytics/maintenance", headers=fleet.h["biomed"])
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["horizon_days"] == 14 and doc["report"] == "maintenance"
    serials = [p["serial"] for p in doc["pumps"]]
    assert set(serials[:2]) == {"SN-worn-battery", "SN-drifting-sensor"}, doc["pumps"]
    by_serial = {p["serial"]: p for p in doc["pumps"]}
    worn, drifting, ok = (
        by_serial["SN-worn-battery"],
        by_serial["SN-drifting-sensor"],
        by_serial["SN-ok-1"],
    )
    assert worn["risk"] > 2 * ok["risk"] and drifting["risk"] > 2 * ok["risk"]
    assert any("battery run time 60 % below the fleet median" in t for t in worn["reasons"]), worn
    assert any(
        t.startswith("occlusion alarms") and "fleet median" in t for t in drifting["reasons"]
    )
    assert worn["features"]["runtime_vs_fleet"] == pytest.approx(0.4, abs=0.01)
    assert worn["days_since_service"] == pytest.approx(11 / 24, abs=0.01)


def test_queue_parameters_are_checked(fleet: Fleet) -> None:
    r = fleet.client.get("/api/analytics/maintenance?horizon_days=0", headers=fleet.h["biomed"])
    assert r.status_code == 422
    r = fleet.client.get("/api/analytics/maintenance?limit=2", headers=fleet.h["admin"])
    assert r.status_code == 200 and len(r.json()["pumps"]) == 2


@pytest.mark.parametrize(
    ("role", "status"), [("nurse", 403), ("pharmacist", 403), ("monitor", 403)]
)
def test_only_biomed_and_admin_read_the_queue(fleet: Fleet, role: str, status: int) -> None:
    assert (
        fleet.client.get("/api/analytics/maintenance", headers=fleet.h[role]).status_code == status
    )


def test_service_record_restarts_time_since_service(fleet: Fleet) -> None:
    pid = fleet.pumps["ok-2"]  # type: ignore[attr-defined]
    fleet.clock.advance(3 * 86400)
    fleet.relogin()
    r = fleet.client.post(
        "/api/analytics/maintenance/service",
        headers=fleet.h["biomed"],
        json={"pump_id": pid, "kind": "preventive", "note": "annual PM"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["serviced_by"] == "biomed1"
    fleet.clock.advance(86400)
    fleet.relogin()
    doc = fleet.client.get("/api/analytics/maintenance", headers=fleet.h["biomed"]).json()
    days = {p["pump_id"]: p["days_since_service"] for p in doc["pumps"]}
    assert days[pid] == pytest.approx(1.0, abs=0.01)
    assert days[fleet.pumps["ok-1"]] > 4.0  # type: ignore[attr-defined]
    audit = fleet.client.get("/api/audit?action=pump.service", headers=fleet.h["admin"]).json()
    assert audit and audit[-1]["object"] == f"pump:{pid}"


def test_service_record_input_is_checked(fleet: Fleet) -> None:
    h = fleet.h["biomed"]
    r = fleet.client.post(
        "/api/analytics/maintenance/service", headers=h, json={"pump_id": "nope", "kind": "repair"}
    )
    assert r.status_code == 404 and r.json()["error"]["field"] == "pump_id"
    pid = fleet.pumps["ok-1"]  # type: ignore[attr-defined]
    r = fleet.client.post(
        "/api/analytics/maintenance/service", headers=h, json={"pump_id": pid, "kind": "polish"}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "kind"
    r = fleet.client.post(
        "/api/analytics/maintenance/service",
        headers=fleet.h["nurse"],
        json={"pump_id": pid, "kind": "repair"},
    )
    assert r.status_code == 403
