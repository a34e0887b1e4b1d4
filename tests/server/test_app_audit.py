"""C-21 on the server: every action leaves an audit entry written in its own transaction,
and deleting, modifying, reordering or truncating stored entries is detected by the API
and by ``openinfusion audit verify`` (exit 5 naming the first bad entry)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from openinfusion.cli.main import app as cli_app
from openinfusion.cli.server_cmd import EXIT_AUDIT_BROKEN
from openinfusion.server.app import create_app
from tests.server._server_support import (
    cheap_password_hashing,  # noqa: F401 (autouse)
    credentials,
    login,
    make_settings,
)


def _populated(tmp_path: Path) -> tuple[TestClient, dict[str, str], Path]:
    settings = make_settings(tmp_path)
    app = create_app(settings)
    client = TestClient(app)
    pw = credentials(app)
    admin = login(client, "admin1", pw["admin"])
    client.post("/api/auth/token", data={"username": "admin1", "password": "wrong-password"})
    client.post("/api/users", headers=admin, json={"username": "nurse-a", "role": "nurse"})
    client.post("/api/enrolment-tokens", headers=admin, json={"unit": "icu"})
    client.get("/api/users", headers=login(client, "nurse1", pw["nurse"]))  # denied
    return client, admin, settings.data_dir


def _verify_cli(data_dir: Path) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(cli_app, ["audit", "verify", "--data-dir", str(data_dir), "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_every_action_is_audited_and_chain_verifies(tmp_path: Path) -> None:
    client, admin, data_dir = _populated(tmp_path)
    actions = [a["action"] for a in client.get("/api/audit", headers=admin).json()]
    for expected in (
        "users.bootstrap",
        "login.success",
        "login.failure",
        "user.create",
        "enrolment.token_issued",
        "access.denied",
    ):
        assert expected in actions
    report = client.get("/api/audit/verify", headers=admin).json()
    assert report["ok"] is True and report["checked"] == len(actions)
    code, out = _verify_cli(data_dir)
    assert code == 0 and out["ok"] is True


def _modify(db: sqlite3.Connection) -> int:
    db.execute("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3")
    return 3


def _delete(db: sqlite3.Connection) -> int:
    db.execute("DELETE FROM audit_log WHERE seq = 4")
    return 4


def _reorder(db: sqlite3.Connection) -> int:
    rows = db.execute(
        "SELECT seq, ts, actor, action, object, details, prev_hash, hash "
        "FROM audit_log WHERE seq IN (3, 4) ORDER BY seq"
    ).fetchall()
    for (seq, *_), (_, *content) in zip(rows, reversed(rows), strict=True):
        db.execute(
            "UPDATE audit_log SET ts=?, actor=?, action=?, object=?, details=?, "
            "prev_hash=?, hash=? WHERE seq=?",
            (*content, seq),
        )
    return 3


def _truncate(db: sqlite3.Connection) -> int:
    last = db.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
    db.execute("DELETE FROM audit_log WHERE seq >= ?", (last - 1,))
    return last - 1


def _forge_head(db: sqlite3.Connection) -> int:
    # rewrite the last entry and its anchor hash without the server key
    last = db.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
    db.execute("UPDATE audit_anchor SET hash = ? WHERE id = 1", ("0" * 64,))
    return last


@pytest.mark.parametrize(
    ("tamper", "problems"),
    [
        (_modify, {"modified"}),
        (_delete, {"missing"}),
        (_reorder, {"modified", "broken_link"}),
        (_truncate, {"truncated"}),
        (_forge_head, {"anchor_forged"}),
    ],
    ids=["modify", "delete", "reorder", "truncate", "forged-anchor"],
)
def test_c21_tampering_detected(
    tmp_path: Path, tamper: Callable[[sqlite3.Connection], int], problems: set[str]
) -> None:
    client, admin, data_dir = _populated(tmp_path)
    with sqlite3.connect(data_dir / "openinfusion.db") as db:
        bad_seq = tamper(db)
    code, out = _verify_cli(data_dir)
    assert code == EXIT_AUDIT_BROKEN
    assert out["ok"] is False and out["problem"] in problems and out["first_bad_seq"] == bad_seq
    api = client.get("/api/audit/verify", headers=admin).json()
    assert api["ok"] is False and api["first_bad_seq"] == bad_seq


def test_refused_action_leaves_no_state_but_an_audit_entry(tmp_path: Path) -> None:
    client, admin, _ = _populated(tmp_path)
    nurse = login(client, "nurse-a", _password_of(client, admin, "nurse-a"))
    before = client.get("/api/users", headers=admin).json()
    r = client.post("/api/users", headers=nurse, json={"username": "evil", "role": "admin"})
    assert r.status_code == 403
    assert client.get("/api/users", headers=admin).json() == before
    denied = client.get("/api/audit", params={"action": "access.denied"}, headers=admin).json()
    assert denied[-1]["actor"] == "nurse-a" and denied[-1]["object"] == "/api/users"


def _password_of(client: TestClient, admin: dict[str, str], username: str) -> str:
    users = {u["username"]: u["id"] for u in client.get("/api/users", headers=admin).json()}
    password = "a-new-password-for-test"
    r = client.patch(f"/api/users/{users[username]}", headers=admin, json={"password": password})
    assert r.status_code == 200
    return password


def test_c21_clock_set_back_is_recorded_in_the_entry(tmp_path: Path) -> None:
    from tests.server._server_support import FakeClock

    clock = FakeClock()
    app = create_app(make_settings(tmp_path), clock=clock)
    client = TestClient(app)
    admin = login(client, "admin1", credentials(app)["admin"])
    clock.advance(-3600)  # someone sets the server clock an hour back
    client.post("/api/enrolment-tokens", headers=admin)
    entry = client.get(
        "/api/audit", params={"action": "enrolment.token_issued"}, headers=admin
    ).json()[0]
    assert entry["details"]["clock_went_back_s"] == 3600.0
    assert client.get("/api/audit/verify", headers=admin).json()["ok"] is True
