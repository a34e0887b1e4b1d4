"""Login, tokens and first start: no user enumeration and exponential back-off (C-13),
expired and revoked tokens (C-02), unique generated credentials and keys (C-05), and a
data dir others can read is refused."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from openinfusion.errors import InputError
from openinfusion.security import load_private_key, public_bytes
from openinfusion.server.app import create_app
from openinfusion.server.config import Settings
from tests.server._server_support import (
    FakeClock,
    cheap_password_hashing,  # noqa: F401 (autouse)
    credentials,
    login,
    make_settings,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(tmp_path: Path, clock: FakeClock) -> TestClient:
    app = create_app(make_settings(tmp_path, token_lifetime_s=3600), clock=clock)
    return TestClient(app)


def _try(client: TestClient, user: str, password: str) -> tuple[int, dict, dict]:
    r = client.post("/api/auth/token", data={"username": user, "password": password})
    return r.status_code, r.json(), dict(r.headers)


def test_c13_unknown_user_and_wrong_password_answer_alike(client: TestClient) -> None:
    s1, b1, _ = _try(client, "nobody", "whatever-password")
    s2, b2, _ = _try(client, "nurse1", "wrong-password-123")
    assert s1 == s2 == 401 and b1 == b2
    assert b1["error"]["rule"] == "invalid username or password"


def test_c13_backoff_per_username_grows_and_ends(client: TestClient, clock: FakeClock) -> None:
    pw = credentials(client.app)["nurse"]
    waits = []
    for _ in range(3):
        assert _try(client, "nurse1", "bad-password-xyz")[0] == 401
    status, body, headers = _try(client, "nurse1", pw)  # right password, still blocked
    assert status == 429 and "access_token" not in body
    waits.append(int(headers["retry-after"]))
    clock.advance(waits[0] + 0.1)
    assert _try(client, "nurse1", "bad-password-xyz")[0] == 401
    status, _, headers = _try(client, "nurse1", "bad-password-xyz")
    assert status == 429
    waits.append(int(headers["retry-after"]))
    assert waits[1] > waits[0]  # exponential: each failure past the free ones doubles it
    clock.advance(waits[1] + 0.1)
    assert _try(client, "nurse1", pw)[0] == 200
    assert _try(client, "nurse1", "bad-password-xyz")[0] == 401  # counter was reset


def test_c13_unknown_user_is_throttled_like_a_real_one(client: TestClient) -> None:
    for _ in range(3):
        _try(client, "ghost", "bad-password-xyz")
        _try(client, "physician1", "bad-password-xyz")
    s_ghost, b_ghost, _ = _try(client, "ghost", "x" * 12)
    s_real, b_real, _ = _try(client, "physician1", "x" * 12)
    assert s_ghost == s_real == 429 and b_ghost == b_real


def test_c13_password_spraying_from_one_address_is_throttled(client: TestClient) -> None:
    pw = credentials(client.app)["admin"]
    for user in ("a-user", "b-user", "c-user"):
        _try(client, user, "Winter2026!")
    status, _, _ = _try(client, "admin1", pw)
    assert status == 429  # same client address: blocked whatever the username
    audit_actions = _audit_actions(client)
    assert audit_actions.count("login.failure") == 3 and "login.throttled" in audit_actions


def _audit_actions(client: TestClient) -> list[str]:
    app = client.app
    ctx = app.state.ctx
    from sqlalchemy import select

    from openinfusion.server.models import AuditRecord

    with ctx.db.read() as s:
        return list(s.scalars(select(AuditRecord.action).order_by(AuditRecord.seq)))


def test_c02_expired_and_revoked_tokens_refused(client: TestClient, clock: FakeClock) -> None:
    pw = credentials(client.app)["monitor"]
    r = client.post("/api/auth/token", data={"username": "monitor1", "password": pw})
    assert r.json()["token_type"] == "bearer" and r.json()["expires_in"] == 3600
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert client.get("/api/pumps", headers=h).status_code == 200
    assert client.get("/api/auth/me", headers=h).json()["role"] == "monitor"
    clock.advance(3601)
    assert client.get("/api/pumps", headers=h).status_code == 401
    h2 = login(client, "monitor1", pw)
    assert client.post("/api/auth/logout", headers=h2).status_code == 204
    assert client.get("/api/pumps", headers=h2).status_code == 401
    assert "access.unauthenticated" in _audit_actions(client)


def test_deactivated_user_loses_sessions_and_login(client: TestClient) -> None:
    pw = credentials(client.app)
    admin = login(client, "admin1", pw["admin"])
    nurse = login(client, "nurse1", pw["nurse"])
    users = {u["username"]: u["id"] for u in client.get("/api/users", headers=admin).json()}
    assert client.delete(f"/api/users/{users['nurse1']}", headers=admin).status_code == 204
    assert client.get("/api/pumps", headers=nurse).status_code == 401
    assert _try(client, "nurse1", pw["nurse"])[0] == 401
    assert client.delete(f"/api/users/{users['admin1']}", headers=admin).status_code == 409
    assert "user.deactivate" in _audit_actions(client)


def test_user_create_validates_and_generates_password(client: TestClient) -> None:
    admin = login(client, "admin1", credentials(client.app)["admin"])
    r = client.post("/api/users", headers=admin, json={"username": "x", "role": "nurse"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "username"
    r = client.post("/api/users", headers=admin, json={"username": "nurse-z", "role": "root"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "role"
    r = client.post(
        "/api/users",
        headers=admin,
        json={"username": "nurse-z", "role": "nurse", "password": "short"},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "password"
    r = client.post("/api/users", headers=admin, json={"username": "nurse-z", "role": "nurse"})
    assert r.status_code == 201 and len(r.json()["password"]) >= 16
    login(client, "nurse-z", r.json()["password"])
    r = client.post("/api/users", headers=admin, json={"username": "nurse-z", "role": "nurse"})
    assert r.status_code == 409


def test_c05_first_start_generates_unique_credentials_and_keys(tmp_path: Path) -> None:
    apps = [create_app(make_settings(tmp_path, name)) for name in ("one", "two")]
    creds = [credentials(a) for a in apps]
    assert set(creds[0]) == {
        "nurse",
        "physician",
        "pharmacist",
        "biomed",
        "admin",
        "monitor",
        "interface",
    }
    assert not set(creds[0].values()) & set(creds[1].values())
    keys = [
        public_bytes(load_private_key(tmp_path / n / "server-key.pem").public_key())
        for n in ("one", "two")
    ]
    assert keys[0] != keys[1]
    for name in ("one", "two"):
        for f in ("server-key.pem", "demo-credentials.json"):
            assert stat.S_IMODE((tmp_path / name / f).stat().st_mode) == 0o600
        saved = json.loads((tmp_path / name / "demo-credentials.json").read_text())
        assert sorted(saved[0]) == ["password", "role", "username"]
    assert {c["password"] for c in saved} == set(creds[1].values())
    for common in ("admin", "password", "admin123", "changeme", "openinfusion"):
        assert _try(TestClient(apps[0]), "admin1", common)[0] in (401, 429)
    # a second start finds the accounts and creates none (and prints nothing)
    again = create_app(make_settings(tmp_path, "one"))
    assert again.state.first_accounts == []


def test_insecure_data_dir_refused(tmp_path: Path) -> None:
    data = tmp_path / "open"
    data.mkdir()
    os.chmod(data, 0o755)
    with pytest.raises(InputError, match=r"data_dir.*group or others"):
        create_app(Settings(data_dir=data))
    fresh = tmp_path / "new" / "dir"
    create_app(Settings(data_dir=fresh))
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


def test_c19_sprayed_usernames_do_not_pile_up(client: TestClient, clock: FakeClock) -> None:
    """Counters of usernames that stopped failing are forgotten once they no longer block,
    so spraying random usernames cannot grow the throttle table without bound."""
    from sqlalchemy import func, select

    from openinfusion.server.models import LoginThrottle

    for i in range(10):
        assert _try(client, f"sprayed-{i}", "x" * 12)[0] == 401
        clock.advance(901)  # past the back-off cap: the counter neither blocks nor counts
    ctx = client.app.state.ctx
    with ctx.db.read() as s:
        rows = s.scalar(select(func.count()).select_from(LoginThrottle))
    assert rows <= 2  # the last username and the address


def test_c19_unauthenticated_flood_is_counted_not_written_entry_by_entry(
    client: TestClient, clock: FakeClock
) -> None:
    for _ in range(50):
        assert client.get("/api/pumps", headers={"Authorization": "Bearer x"}).status_code == 401
    assert _audit_actions(client).count("access.unauthenticated") == 1
    clock.advance(11)
    assert client.get("/api/alarms").status_code == 401
    ctx = client.app.state.ctx
    from sqlalchemy import select

    from openinfusion.server.models import AuditRecord

    with ctx.db.read() as s:
        rows = list(
            s.scalars(
                select(AuditRecord)
                .where(AuditRecord.action == "access.unauthenticated")
                .order_by(AuditRecord.seq)
            )
        )
    assert [r.details["suppressed_since_last"] for r in rows] == [0, 49]
