"""``openinfusion aid autosens`` / ``aid autotune``: JSON keys, trial output in, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from openinfusion.cli.main import app

runner = CliRunner()
EXAMPLE = (
    Path(__file__).resolve().parents[2] / "examples" / "aid" / "therapy-history-basal-low.json"
)


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def test_autosens_json_keys() -> None:
    r = run("aid", "autosens", "--data", str(EXAMPLE), "--json", "--points")
    assert r.exit_code == 0, r.output
    out = as_json(r)
    assert set(out) >= {"settings", "ratio", "raw_ratio", "new_isf_mg_dl_u", "deviations", "reason"}
    assert set(out["deviations"]) >= {"used", "excluded_meal", "excluded_uam", "invalid"}
    assert 0.7 <= out["ratio"] <= 1.2
    values = sorted(out["median_of_mg_dl"])
    mid = len(values) // 2
    median = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
    assert median == pytest.approx(out["median_deviation_mg_dl"], abs=0.01)
    assert (
        len(out["points"])
        == out["deviations"]["used"]
        + out["deviations"]["excluded_meal"]
        + out["deviations"]["excluded_uam"]
        + out["deviations"]["invalid"]
    )


def test_autotune_json_and_text() -> None:
    r = run("aid", "autotune", "--data", str(EXAMPLE), "--json", "--days", "1")
    assert r.exit_code == 0, r.output
    out = as_json(r)
    assert set(out) == {"days_used", "pump", "tuned", "change", "caps", "days"}
    assert out["days_used"] == 1
    for ratio, (lo, hi), new in zip(
        out["change"]["basal_ratio"],
        out["caps"]["basal_u_h"],
        out["tuned"]["basal_u_h"],
        strict=True,
    ):
        assert lo - 1e-3 <= new <= hi + 1e-3 and ratio > 0
    text = run("aid", "autotune", "--data", str(EXAMPLE))
    assert text.exit_code == 0 and "ISF" in text.stdout


def test_bad_data_exit_2_names_the_field(tmp_path: Path) -> None:
    doc = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    doc["glucose"][7]["mg_dl"] = -3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    r = run("aid", "autosens", "--data", str(bad), "--json")
    assert r.exit_code == 2
    err = json.loads(r.stdout)["error"]
    assert err["field"] == "glucose[7].mg_dl" and err["value"] == -3
    assert "1 to 1000" in err["rule"]
    r = run("aid", "autotune", "--data", str(EXAMPLE), "--days", "5")
    assert r.exit_code == 2 and "days" in r.output
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}', encoding="utf-8")
    assert run("aid", "autotune", "--data", str(other)).exit_code == 2


def test_trial_output_feeds_straight_in(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.json"
    scenario.write_text(
        json.dumps(
            {
                "duration": "24 h",
                "meals": [{"at": "8 h", "carbs_g": 40}],
                "insulin": {"basal": "0.9 units/h", "boluses": [{"at": "8 h", "units": 4}]},
            }
        ),
        encoding="utf-8",
    )
    trial = run(
        "trial", "glucose", "--patients", "adult#001", "--scenario", str(scenario), "--json"
    )
    assert trial.exit_code == 0, trial.output
    data = tmp_path / "trial.json"
    data.write_text(trial.stdout, encoding="utf-8")
    r = run("aid", "autotune", "--data", str(data), "--json")
    assert r.exit_code == 0, r.output
    out = as_json(r)
    assert out["pump"]["basal_u_h"] == [0.9] * 24  # what the scenario programmed
    assert out["days"][0]["carb_periods"][0]["carbs_g"] == 40.0
    tuned = out["tuned"]["basal_u_h"]
    assert sum(tuned) / 24 > 0.9  # 0.9 U/h is below adult#001's 1.27 U/h
    s = run("aid", "autosens", "--data", str(data), "--json", "--patient", "adult#002")
    assert s.exit_code == 2 and "adult#002" in s.stdout
    closed = json.loads(trial.stdout) | {"controller": "pid"}
    data.write_text(json.dumps(closed), encoding="utf-8")
    r = run("aid", "autosens", "--data", str(data), "--json")
    assert r.exit_code == 2
    assert json.loads(r.stdout)["error"]["field"] == "controller"
