"""``openinfusion serve``: the first start prints the generated accounts once and saves them
with mode 600 (C-05); later starts print none. ``audit verify`` on a bad data dir is exit 2."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from openinfusion.cli.main import app as cli_app
from tests.server._server_support import (
    cheap_password_hashing,  # noqa: F401 (autouse)
)


def test_c05_serve_prints_first_accounts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: served.append(kw))
    data = tmp_path / "srv"
    args = ["serve", "--port", "8099", "--data-dir", str(data), "--json"]
    first = CliRunner().invoke(cli_app, args)
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout)
    accounts = out["first_accounts"]
    assert {a["role"] for a in accounts} == {
        "nurse",
        "physician",
        "pharmacist",
        "biomed",
        "admin",
        "monitor",
        "interface",
    }
    saved = json.loads((data / "demo-credentials.json").read_text())
    assert saved == accounts
    assert stat.S_IMODE((data / "demo-credentials.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert served[0]["port"] == 8099 and served[0]["host"] == "127.0.0.1"
    second = CliRunner().invoke(cli_app, args)
    assert second.exit_code == 0 and json.loads(second.stdout)["first_accounts"] == []
    human = CliRunner().invoke(cli_app, args[:-1])
    assert human.exit_code == 0 and accounts[0]["password"] not in human.stdout


def test_audit_verify_bad_input_exit_2(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli_app, ["audit", "verify", "--data-dir", str(tmp_path), "--json"])
    assert r.exit_code == 2
    assert json.loads(r.stdout)["error"]["field"] == "data_dir"
    r = CliRunner().invoke(
        cli_app, ["audit", "verify", "--db", "mysql://x", "--data-dir", str(tmp_path)]
    )
    assert r.exit_code == 2
