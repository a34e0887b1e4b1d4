"""Library verification of a published version over REST (permission analytics:read) and
from the command line (--library, --version with --data-dir), with exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from openinfusion.cli.main import app as cli_app
from openinfusion.library import sign_library
from openinfusion.library.loading import library_from_data
from openinfusion.security import generate_private_key, save_public_key
from openinfusion.server.app import create_app
from openinfusion.server.permissions import Perm, Role, allowed
from tests.conftest import mini_data
from tests.server._server_support import (
    cheap_password_hashing,  # noqa: F401 (autouse)
    credentials,
    login,
    make_settings,
)

runner = CliRunner()
SIGNED_AT = datetime(2026, 11, 1, tzinfo=UTC)


def _data(hard_max: float = 1500) -> dict[str, Any]:
    data = mini_data()
    data["entries"][1]["limits"]["dose"] = {"soft_max": 12, "hard_max": 20}  # heparin
    vanc = data["entries"][2]
    vanc["limits"]["dose"] = {"soft_min": 500, "soft_max": 750, "hard_max": hard_max}
    return data


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("libverify")
    app = create_app(make_settings(tmp))
    key = generate_private_key()
    keys = app.state.ctx.settings.data_dir / "pharmacy-keys"
    keys.mkdir()
    save_public_key(key.public_key(), keys / "pharmacy.pem")
    with TestClient(app) as client:
        pw = credentials(app)
        heads = {r: login(client, f"{r}1", pw[r]) for r in pw}
        package = sign_library(library_from_data(_data()), key, "A. Pharmacist", SIGNED_AT)
        r = client.post(
            "/api/libraries",
            headers={**heads["pharmacist"], "content-type": "application/json"},
            content=json.dumps(package).encode(),
        )
        assert r.status_code == 201, r.text
        yield client, heads, app.state.ctx.settings.data_dir


def test_rest_report_of_a_published_version(server: Any) -> None:
    client, heads, _ = server
    url = "/api/analytics/library-verify/2026.1.0"
    r = client.get(url, params={"patients": 40, "seed": 2}, headers=heads["pharmacist"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == "2026.1.0" and body["patients"] == 40
    verdicts = {e["drug"]: e["verdict"] for e in body["entries"]}
    assert verdicts["vancomycin"] == verdicts["heparin"] == "ok"
    assert verdicts["dopamine"] == "not verifiable"
    again = client.get(url, params={"patients": 40, "seed": 2}, headers=heads["pharmacist"])
    assert again.json() == body
    page = client.get(url, params={"patients": 20, "format": "html"}, headers=heads["pharmacist"])
    assert page.status_code == 200 and page.text.startswith("<!doctype html>")
    assert "script-src" not in page.headers["content-security-policy"]
    png = client.get(url, params={"patients": 20, "format": "png"}, headers=heads["pharmacist"])
    assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_rest_errors_and_permissions(server: Any) -> None:
    client, heads, _ = server
    missing = client.get("/api/analytics/library-verify/9.9", headers=heads["pharmacist"])
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "version"
    bad = client.get(
        "/api/analytics/library-verify/2026.1.0",
        params={"patients": 0},
        headers=heads["pharmacist"],
    )
    assert bad.status_code == 422
    area = client.get(
        "/api/analytics/library-verify/2026.1.0",
        params={"care_area": "Mars", "patients": 5},
        headers=heads["pharmacist"],
    )
    assert area.status_code == 422 and area.json()["error"]["field"] == "care_area"
    for role in Role:
        r = client.get(
            "/api/analytics/library-verify/2026.1.0",
            params={"patients": 5, "care_area": "nicu"},
            headers=heads[role.value],
        )
        assert r.status_code == (200 if allowed(role.value, Perm.ANALYTICS_READ) else 403)
    assert client.get("/api/analytics/library-verify/2026.1.0").status_code == 401


def test_cli_published_version_from_data_dir(server: Any) -> None:
    _, _, data_dir = server
    args = ["report", "library-verify", "--version", "2026.1.0", "--data-dir", str(data_dir)]
    result = runner.invoke(cli_app, [*args, "--patients", "30", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["version"] == "2026.1.0" and report["summary"]["ok"] == 2
    gone = runner.invoke(cli_app, [*args[:3], "7.7", "--data-dir", str(data_dir)])
    assert gone.exit_code == 2 and "not a library version published" in gone.output


def test_cli_library_file_formats_and_exit_codes(tmp_path: Path) -> None:
    ok_file = tmp_path / "ok.yaml"
    ok_file.write_text(yaml.safe_dump(_data()))
    base = ["report", "library-verify", "--library", str(ok_file), "--patients", "30"]
    result = runner.invoke(cli_app, [*base, "--format", "json", "--seed", "4"])
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout)
    second = json.loads(runner.invoke(cli_app, [*base, "--format", "json", "--seed", "4"]).stdout)
    assert first == second and first["seed"] == 4
    html_out = tmp_path / "report.html"
    assert (
        runner.invoke(cli_app, [*base, "--format", "html", "--out", str(html_out)]).exit_code == 0
    )
    assert "Library verification" in html_out.read_text()
    png_out = tmp_path / "report.png"
    assert runner.invoke(cli_app, [*base, "--format", "png", "--out", str(png_out)]).exit_code == 0
    assert png_out.read_bytes()[:4] == b"\x89PNG"

    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(yaml.safe_dump(_data(hard_max=10000)))
    flagged = runner.invoke(
        cli_app, ["report", "library-verify", "--library", str(bad_file), "--patients", "30"]
    )
    assert flagged.exit_code == 4
    assert json.loads(flagged.stdout)["summary"]["hard limit leads outside window"] == 1

    for extra, field in (
        (["--format", "xml"], "--format"),
        (["--patients", "0"], "patients"),
        (["--care-area", "Mars"], "care_area"),
        (["--version", "1.0"], "--version"),
    ):
        bad = runner.invoke(cli_app, [*base, *extra])
        assert bad.exit_code == 2 and field in bad.output, (extra, bad.output)


def test_cli_sample_library_by_default() -> None:
    result = runner.invoke(
        cli_app, ["report", "library-verify", "--care-area", "Adult ICU", "--patients", "20"]
    )
    assert result.exit_code in (3, 4)  # the sample library's findings (docs/analytics.md)
    report = json.loads(result.stdout)
    assert report["library"] == "openinfusion sample library" and report["care_area"] == "adult-icu"
