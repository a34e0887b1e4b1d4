"""GET /api/orders: filters, live status, issues of a refused order, and unit scoping (C-11)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from openinfusion.server.app import create_app
from openinfusion.server.permissions import Role
from tests.interop.test_orders import UNIT, OrderEnv
from tests.server._server_support import (
    FakeClock,
    cheap_password_hashing,  # noqa: F401 (autouse)
    login,
    make_settings,
)


@pytest.fixture(scope="module")
def oenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderEnv]:
    clock = FakeClock(datetime(2026, 12, 3, 11, 0, tzinfo=UTC))
    app = create_app(make_settings(tmp_path_factory.mktemp("orders-api")), clock=clock)
    with TestClient(app) as client:
        yield OrderEnv(client, app, clock)


def unit_nurse(env: OrderEnv, unit: str) -> dict[str, str]:
    r = env.client.post(
        "/api/users",
        headers=env.h[Role.ADMIN],
        json={"username": f"nurse-{unit}", "role": "nurse", "unit": unit},
    )
    assert r.status_code == 201, r.text
    return login(env.client, f"nurse-{unit}", r.json()["password"])


def test_list_filter_and_scope(oenv: OrderEnv) -> None:
    c = oenv.client
    pump_id, serial, patient = oenv.bed()
    good = oenv.submit(oenv.order(serial, patient["mrn"]))
    bad = oenv.submit(oenv.order(serial, patient["mrn"], dose="60 mcg/kg/min"))
    rows = c.get("/api/orders", headers=oenv.h[Role.INTERFACE]).json()
    assert [r["id"] for r in rows][:2] == [bad.order_id, good.order_id]
    refused = rows[0]
    assert refused["status"] == "rejected" and refused["command_id"] is None
    assert refused["issues"][0]["field"] == "dose" and refused["issues"][0]["hl7_code"] == 207
    assert "hard limit" in refused["reason"]
    assert rows[1]["status"] == "unconfirmed" and rows[1]["drug"] == "dopamine"
    by_status = c.get("/api/orders", params={"status": "rejected"}, headers=oenv.h[Role.NURSE])
    assert {r["status"] for r in by_status.json()} == {"rejected"}
    by_pump = c.get("/api/orders", params={"pump_id": pump_id}, headers=oenv.h[Role.NURSE]).json()
    assert {r["id"] for r in by_pump} == {good.order_id, bad.order_id}
    by_mrn = c.get("/api/orders", params={"mrn": patient["mrn"]}, headers=oenv.h[Role.NURSE])
    assert len(by_mrn.json()) == 2
    r = c.get("/api/orders", params={"status": "bogus"}, headers=oenv.h[Role.NURSE])
    assert r.status_code == 422 and "status" in r.text

    # a nurse of the unit sees them; a nurse of another unit sees nothing, and a 404
    own, other = unit_nurse(oenv, UNIT), unit_nurse(oenv, "ward-b")
    assert {r["id"] for r in c.get("/api/orders", headers=own).json()} >= {good.order_id}
    assert c.get("/api/orders", headers=other).json() == []
    assert c.get(f"/api/orders/{good.order_id}", headers=own).status_code == 200
    assert c.get(f"/api/orders/{good.order_id}", headers=other).status_code == 404
    assert c.get("/api/orders/999999", headers=own).status_code == 404
