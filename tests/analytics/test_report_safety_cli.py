"""``openinfusion report compliance|overrides|alarms``: formats, files, filters, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openinfusion.cli.main import app
from tests.analytics._safety_fleet import Fleet, alert, at, sqlite_db
from tests.analytics.test_alarm_burden import seed as seed_alarms

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A server data directory holding openinfusion.db with a small seeded fleet."""
    path = tmp_path_factory.mktemp("server-data")
    database = sqlite_db(path, "openinfusion.db")
    fleet = seed_alarms(Fleet())
    fleet.program("A", at(1)).program("A", at(2)).basic("C", at(3), care_area="Adult Med-Surg")
    for i in range(10):
        fleet.program(
            "B",
            at(4 + i),
            verdict="soft",
            override_reason="per physician order",
            alerts=(alert(round(1.1 + 0.1 * i, 1), "soft_max", 1.0, 3.0),),
        )
    fleet.commit(database)
    database.dispose()
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["report", *args])
    return result.exit_code, result.stdout, result.stderr


def test_compliance_json_to_stdout(data_dir: Path) -> None:
    code, out, _ = run("compliance", "--data-dir", str(data_dir), "--format", "json")
    assert code == 0
    total = json.loads(out)["total"]
    assert (total["library"], total["basic"], total["rate"]) == (12, 1, 12 / 13)


def test_unit_and_window_filters(data_dir: Path) -> None:
    code, out, _ = run(
        "compliance",
        "--data-dir",
        str(data_dir),
        "--unit",
        "Ward-5",
        "--json",
        "--since",
        "2026-11-02",
        "--until",
        "2026-11-03",
        "--bucket",
        "week",
    )
    assert code == 0
    body = json.loads(out)
    assert body["filters"]["unit"] == "Ward-5" and body["filters"]["bucket"] == "week"
    assert (body["total"]["library"], body["total"]["basic"]) == (0, 1)


def test_overrides_html_has_chart_tables_and_no_script(data_dir: Path, tmp_path: Path) -> None:
    page = tmp_path / "overrides.html"
    code, out, _ = run(
        "overrides", "--data-dir", str(data_dir), "--format", "html", "--out", str(page)
    )
    assert code == 0 and "overrides report written to" in out
    html = page.read_text()
    assert html.startswith("<!doctype html>")
    assert "<script" not in html.lower()
    assert "default-src 'none'" in html
    assert 'src="data:image/png;base64,' in html
    assert "Library refinement candidates" in html and "per physician order" in html
    assert "raise the soft maximum to 1.91" in html  # p90 of 1.1 ... 2.0


def test_alarms_png_and_json_file(data_dir: Path, tmp_path: Path) -> None:
    chart = tmp_path / "alarms.png"
    code, _, _ = run("alarms", "--data-dir", str(data_dir), "--format", "png", "--out", str(chart))
    assert code == 0 and chart.read_bytes().startswith(PNG)
    saved = tmp_path / "alarms.json"
    code, _, _ = run(
        "alarms",
        "--data-dir",
        str(data_dir),
        "--since",
        "2026-11-02",
        "--until",
        "2026-11-04",
        "--nuisance-s",
        "20",
        "--out",
        str(saved),
    )
    assert code == 0
    body = json.loads(saved.read_text())
    assert body["total"]["alarms"] == 9 and body["total"]["nuisance"] == 3


def test_png_to_a_pipe(data_dir: Path) -> None:
    result = runner.invoke(
        app, ["report", "compliance", "--data-dir", str(data_dir), "--format", "png"]
    )
    assert result.exit_code == 0
    assert result.stdout_bytes.startswith(PNG)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--since", "last tuesday"], "since"),
        (["--since", "2026-11-05", "--until", "2026-11-01"], "until"),
        (["--unit", "ICU'; --"], "unit"),
        (["--bucket", "month"], "bucket"),
    ],
)
def test_bad_input_exits_2_naming_the_field(data_dir: Path, args: list[str], field: str) -> None:
    code, out, err = run("compliance", "--data-dir", str(data_dir), "--json", *args)
    assert code == 2
    assert json.loads(out)["error"]["field"] == field
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_missing_database_and_bad_url(tmp_path: Path) -> None:
    code, _, err = run("alarms", "--data-dir", str(tmp_path / "nowhere"))
    assert code == 2 and "holds no server database" in err
    code, _, err = run("alarms", "--db", "mysql://x/y")
    assert code == 2 and "db" in err
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    code, _, err = run("overrides", "--db", f"sqlite:///{empty}")
    assert code == 2 and "cannot be read as a server database" in err


def test_out_in_a_missing_directory(data_dir: Path, tmp_path: Path) -> None:
    code, _, err = run(
        "alarms", "--data-dir", str(data_dir), "--out", str(tmp_path / "no" / "x.json")
    )
    assert code == 2 and "existing directory" in err
