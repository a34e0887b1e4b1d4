"""HTTP edges: the health check reveals nothing (C-01), OpenAPI is served, bodies are size
limited (413) and typed (415), and bad ids or fields get 422 naming the field (C-19)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from openinfusion.server.app import create_app
from openinfusion.server.migrate import current_revision, head_revision
from tests.server._server_support import (
    cheap_password_hashing,  # noqa: F401 (autouse)
    credentials,
    login,
    make_settings,
)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict]]:
    app = create_app(make_settings(tmp_path_factory.mktemp("basics"), max_body_bytes=4096))
    client = TestClient(app)
    yield client, login(client, "admin1", credentials(app)["admin"])


def test_c01_health_reveals_nothing(api: tuple[TestClient, dict]) -> None:
    client, _ = api
    r = client.get("/api/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert client.get("/docs").status_code == 404  # no interactive console in production


def test_openapi_lists_the_api(api: tuple[TestClient, dict]) -> None:
    client, _ = api
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/pumps", "/api/auth/token", "/api/gateway/enrol", "/api/audit/verify"):
        assert path in paths


def test_413_for_large_bodies(api: tuple[TestClient, dict]) -> None:
    client, admin = api
    big = '{"username": "' + "a" * 5000 + '", "role": "nurse"}'
    r = client.post(
        "/api/users", headers={**admin, "content-type": "application/json"}, content=big
    )
    assert r.status_code == 413 and r.json()["error"]["field"] == "body"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        yield b'{"username": "'
        for _ in range(10):
            yield b"a" * 1000
        yield b'"}'

    r = client.post(
        "/api/users", headers={**admin, "content-type": "application/json"}, content=chunks()
    )
    assert r.status_code == 413


def test_415_for_wrong_media_types(api: tuple[TestClient, dict]) -> None:
    client, admin = api
    r = client.post(
        "/api/users", headers={**admin, "content-type": "text/plain"}, content="username=x"
    )
    assert r.status_code == 415 and r.json()["error"]["field"] == "content-type"
    r = client.post("/api/auth/token", json={"username": "a", "password": "b"})
    assert r.status_code == 415


def test_422_names_the_field(api: tuple[TestClient, dict]) -> None:
    client, admin = api
    r = client.get("/api/pumps/..%2F..%2Fetc", headers=admin)
    assert r.status_code in (404, 422)
    r = client.get("/api/pumps/bad id!", headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "pump_id"
    r = client.post("/api/alarms/0/ack", headers=admin)
    assert r.status_code in (403, 422)  # admin may not ack; the id check comes with it
    r = client.get("/api/users/not-a-number", headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "user_id"
    r = client.post(
        "/api/users", headers=admin, json={"username": "ok-name", "role": "nurse", "extra": 1}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "extra"
    r = client.get("/api/audit", params={"limit": 100000}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "limit"


def test_enrol_validates_fields(api: tuple[TestClient, dict]) -> None:
    client, admin = api
    token = client.post("/api/enrolment-tokens", headers=admin).json()["token"]
    base = {
        "token": token,
        "serial": "SN-1",
        "model": "M",
        "kind": "syringe",
        "channels": 1,
        "public_key": "A" * 44,
    }
    r = client.post("/api/gateway/enrol", json={**base, "kind": "toaster"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "kind"
    r = client.post("/api/gateway/enrol", json={**base, "channels": 9})
    assert r.status_code == 422 and r.json()["error"]["field"] == "channels"
    r = client.post("/api/gateway/enrol", json={**base, "public_key": "not base64!!" * 4})
    assert r.status_code == 422 and r.json()["error"]["field"] == "public_key"


def test_schema_created_by_alembic_at_head(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    engine = app.state.ctx.db.engine
    assert current_revision(engine) == head_revision() is not None
    with engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        fks = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
    assert (mode, sync, fks) == ("wal", 2, 1)  # synchronous=2 is FULL
