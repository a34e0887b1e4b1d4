"""Library publication: only packages signed by a trusted pharmacist key are stored (C-03);
the server's own key can neither be trusted nor sign one (C-26); versions only go up; an
activation command carries the signed package, which the pump verifies again."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from openinfusion.library import Library, sign_library, verify_package
from openinfusion.security import generate_private_key, save_public_key, verify_command
from openinfusion.server.app import create_app
from openinfusion.server.models import Command
from tests.server._server_support import (
    cheap_password_hashing,  # noqa: F401 (autouse)
    credentials,
    login,
    make_settings,
)

SIGNED_AT = datetime(2026, 11, 1, tzinfo=UTC)


def _setup(tmp_path: Path) -> tuple[TestClient, dict[str, dict[str, str]], object]:
    app = create_app(make_settings(tmp_path))
    pharmacist_key = generate_private_key()
    keys = app.state.ctx.settings.data_dir / "pharmacy-keys"
    keys.mkdir()
    save_public_key(pharmacist_key.public_key(), keys / "pharmacy.pem")
    client = TestClient(app)
    pw = credentials(app)
    heads = {r: login(client, f"{r}1", pw[r]) for r in ("pharmacist", "biomed", "admin")}
    return client, heads, pharmacist_key


def _post(client: TestClient, headers: dict[str, str], package: dict) -> object:
    return client.post(
        "/api/libraries",
        headers={**headers, "content-type": "application/json"},
        content=json.dumps(package).encode(),
    )


def _audit(client: TestClient, admin: dict[str, str], action: str) -> list[dict]:
    return client.get("/api/audit", params={"action": action}, headers=admin).json()


def test_publish_verified_package_and_list(tmp_path: Path, mini_library: Library) -> None:
    client, h, key = _setup(tmp_path)
    package = sign_library(mini_library, key, "A. Pharmacist", SIGNED_AT)
    r = _post(client, h["pharmacist"], package)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == "2026.1.0" and r.json()["signer"] == "A. Pharmacist"
    listed = client.get("/api/libraries", headers=h["biomed"]).json()
    assert [x["version"] for x in listed] == ["2026.1.0"]
    full = client.get("/api/libraries/2026.1.0", headers=h["biomed"]).json()
    assert full["package"] == package
    assert _audit(client, h["admin"], "library.publish")[0]["actor"] == "pharmacist1"
    again = _post(client, h["pharmacist"], package)
    assert again.status_code == 422 and "rollback" in again.json()["error"]["rule"]


def test_c03_tampered_or_untrusted_packages_refused(tmp_path: Path, mini_library: Library) -> None:
    client, h, key = _setup(tmp_path)
    package = sign_library(mini_library, key, "A. Pharmacist", SIGNED_AT)
    tampered = json.loads(json.dumps(package))
    tampered["signed"]["library"]["entries"][0]["limits"]["dose"]["hard_max"] = 500
    r = _post(client, h["pharmacist"], tampered)
    assert r.status_code == 422
    server_signed = sign_library(
        mini_library,
        client.app.state.ctx.server_key,
        "server",
        SIGNED_AT,
    )
    r = _post(client, h["pharmacist"], server_signed)
    assert r.status_code == 422 and "trusted" in r.json()["error"]["rule"]
    assert client.get("/api/libraries", headers=h["pharmacist"]).json() == []
    assert len(_audit(client, h["admin"], "library.rejected")) == 2


def test_c26_server_key_cannot_be_made_a_pharmacy_key(
    tmp_path: Path, mini_library: Library
) -> None:
    client, h, key = _setup(tmp_path)
    ctx = client.app.state.ctx
    save_public_key(ctx.server_key.public_key(), ctx.settings.data_dir / "pharmacy-keys" / "x.pem")
    package = sign_library(mini_library, key, "A. Pharmacist", SIGNED_AT)
    r = _post(client, h["pharmacist"], package)
    assert r.status_code == 422 and r.json()["error"]["field"] == "pharmacy-keys"


def test_activation_carries_the_signed_package(tmp_path: Path, mini_library: Library) -> None:
    from openinfusion.security import b64encode, public_bytes

    client, h, key = _setup(tmp_path)
    package = sign_library(mini_library, key, "A. Pharmacist", SIGNED_AT)
    assert _post(client, h["pharmacist"], package).status_code == 201
    token = client.post("/api/enrolment-tokens", headers=h["biomed"]).json()["token"]
    pump_key = generate_private_key()
    pump_id = client.post(
        "/api/gateway/enrol",
        json={
            "token": token,
            "serial": "SN-LIB",
            "model": "M",
            "kind": "lvp",
            "channels": 1,
            "public_key": b64encode(public_bytes(pump_key.public_key())),
        },
    ).json()["pump_id"]
    r = client.post(
        f"/api/pumps/{pump_id}/commands",
        headers=h["biomed"],
        json={"channel": 1, "action": "activate_library", "params": {"version": "2025.1.0"}},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "params.version"
    r = client.post(
        f"/api/pumps/{pump_id}/commands",
        headers=h["biomed"],
        json={"channel": 1, "action": "activate_library", "params": {"version": "2026.1.0"}},
    )
    assert r.status_code == 202, r.text
    assert r.json()["params"] == {"version": "2026.1.0"}
    ctx = client.app.state.ctx
    with ctx.db.read() as s:
        frame = s.get(Command, r.json()["id"]).envelope
    cmd = verify_command(frame, ctx.server_key.public_key(), pump_id=pump_id)
    raw = json.dumps(cmd.params["package"]).encode()
    verified = verify_package(raw, [key.public_key()], today=SIGNED_AT.date())
    assert verified.library.version == "2026.1.0"
    with pytest.raises(ValueError):
        verify_package(raw, [ctx.server_key.public_key()], today=SIGNED_AT.date())


def test_diff_between_published_versions(tmp_path: Path, mini_library_data: dict) -> None:
    """A pharmacist publishes a new version with a tighter limit and one entry fewer; the
    diff endpoint lists exactly those changes (the same diff as `library diff`), and an
    unknown version is a 404 naming it."""
    from openinfusion.library.loading import library_from_data

    client, h, key = _setup(tmp_path)
    old = library_from_data(mini_library_data)
    data = json.loads(json.dumps(mini_library_data))
    data["version"] = "2026.2.0"
    removed = data["entries"].pop()
    changed = data["entries"][0]
    limit = next(iter(changed["limits"].values()))
    field, value = next((k, v) for k, v in limit.items() if isinstance(v, int | float) and v)
    limit[field] = value * 0.5
    new = library_from_data(data)
    for lib in (old, new):
        assert (
            _post(client, h["pharmacist"], sign_library(lib, key, "A. P.", SIGNED_AT)).status_code
            == 201
        )
    nurse = login(client, "nurse1", credentials(client.app)["nurse"])  # type: ignore[attr-defined]
    r = client.get("/api/libraries/2026.1.0/diff/2026.2.0", headers=nurse)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["identical"] is False
    assert len(body["entries"]["removed"]) == 1 and removed["drug"] in body["entries"]["removed"][0]
    kinds = {(c["kind"], c.get("old"), c.get("new")) for c in body["changes"]}
    assert ("changed", value, value * 0.5) in kinds
    assert any(c["kind"] == "removed" for c in body["changes"])
    missing = client.get("/api/libraries/2026.1.0/diff/2027.1.0", headers=nurse)
    assert missing.status_code == 404 and "2027.1.0" in missing.text
