"""The glucose trial engine: cohorts, determinism, faults, controllers, Ray and the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from openinfusion.cli.main import app
from openinfusion.errors import InputError
from openinfusion.physiology.glucose import GlucosePatients, simulate
from openinfusion.sim.glucose_scenario import build_inputs, load_glucose_scenario
from openinfusion.sim.glucose_trial import resolve_patients, run_trial

DAY = {
    "duration": "24 h",
    "meals": [{"at": "7 h", "carbs_g": 50}, {"at": "12 h", "carbs_g": 70}],
    "insulin": {"basal": "patient", "boluses": [{"at": "7 h", "units": 3}]},
}


def test_resolve_patients() -> None:
    assert resolve_patients("adult#001,child#003") == ["adult#001", "child#003"]
    assert len(resolve_patients("all")) == 30
    assert resolve_patients("children")[0] == "child#001"
    assert len(resolve_patients("adults*3")) == 30
    with pytest.raises(InputError) as e:
        resolve_patients("adult#011")
    assert e.value.field == "patients"


def test_open_loop_equals_the_model_run_directly() -> None:
    s = load_glucose_scenario(DAY)
    names = ["adult#001", "child#002"]
    r = run_trial(names, s, sensor_noise=False)
    patients = GlucosePatients.from_names(names)
    inputs = build_inputs(s, patients.steady_state_basal_u_per_h)
    bg = simulate(patients, 1440, inputs.carbs_g_min[None, :], inputs.insulin_u_min)
    assert r.bg_mg_dl.shape == (2, 1440)
    assert np.array_equal(r.bg_mg_dl, bg[:, :1440])
    assert r.metrics[0]["tir_percent"] == pytest.approx(
        100 * np.mean((bg[0, :1440] >= 70) & (bg[0, :1440] <= 180))
    )


def test_seed_repeats_and_changes_noise() -> None:
    s = load_glucose_scenario(DAY)
    a = run_trial(["adult#001"], s, seed=5)
    b = run_trial(["adult#001"], s, seed=5)
    c = run_trial(["adult#001"], s, seed=6)
    assert np.array_equal(a.cgm_mg_dl, b.cgm_mg_dl)
    assert not np.array_equal(a.cgm_mg_dl, c.cgm_mg_dl)
    assert np.array_equal(a.bg_mg_dl, c.bg_mg_dl)  # open loop: noise does not change BG


def test_patient_noise_does_not_depend_on_the_cohort_split() -> None:
    s = load_glucose_scenario({"duration": "2 h"})
    whole = run_trial(resolve_patients("all*3"), s, seed=2)
    from openinfusion.sim.glucose_trial import run_local

    tail = run_local(resolve_patients("all*3")[64:], s, seed=2, offset=64)
    assert np.array_equal(whole.cgm_mg_dl[64:], tail.cgm_mg_dl)


def test_occlusion_raises_glucose_and_suspension_and_dropout() -> None:
    base = run_trial(["adult#003"], load_glucose_scenario(DAY), sensor_noise=False)
    faulty = run_trial(
        ["adult#003"],
        load_glucose_scenario(
            {
                **DAY,
                "faults": [
                    {"type": "occlusion", "from": "6 h", "to": "10 h"},
                    {"type": "sensor_dropout", "from": "11 h", "to": "11.5 h"},
                ],
            }
        ),
        sensor_noise=False,
    )
    # the 7-h bolus and 4 h of basal never arrived
    assert faulty.insulin_u_min[0].sum() < base.insulin_u_min[0].sum() - 3
    assert faulty.bg_mg_dl[0, 600] > base.bg_mg_dl[0, 600] + 20
    assert np.isnan(faulty.cgm_mg_dl[0, 660:690]).all()
    assert not np.isnan(faulty.cgm_mg_dl[0, :660]).any()


def test_basal_bolus_controller_improves_on_no_bolus() -> None:
    s = load_glucose_scenario({**DAY, "insulin": {"basal": "patient"}})
    names = resolve_patients("adults")
    open_loop = run_trial(names, s, sensor_noise=False)
    bb = run_trial(names, s, controller="basal-bolus", sensor_noise=False)
    mean_tar = np.mean([m["tar_percent"] for m in open_loop.metrics])
    mean_tar_bb = np.mean([m["tar_percent"] for m in bb.metrics])
    assert mean_tar_bb < mean_tar - 10
    # it gave the subject's basal plus carbs/CR at each meal (+ corrections)
    cr = GlucosePatients.from_names(names).parameters.carb_ratio_g_per_u
    basal = GlucosePatients.from_names(names).steady_state_basal_u_per_min * 1440
    assert np.all(bb.insulin_u_min.sum(axis=1) >= basal + 120 / cr - 1e-6)


def test_controller_output_is_lost_during_an_occlusion() -> None:
    s = load_glucose_scenario(
        {**DAY, "faults": [{"type": "occlusion", "from": "6 h", "to": "9 h"}]}
    )
    bb = run_trial(["adult#001"], s, controller="basal-bolus", sensor_noise=False)
    assert bb.insulin_u_min[0, 360:540].sum() == 0.0


def test_unknown_controller_is_named() -> None:
    with pytest.raises(InputError) as e:
        run_trial(["adult#001"], load_glucose_scenario(DAY), controller="magic")
    assert e.value.field == "controller" and "basal-bolus" in e.value.rule


def test_ray_engine_gives_the_local_numbers() -> None:
    if os.environ.get("CI") != "true":
        pytest.importorskip("ray", reason="Ray is a project dependency; install with uv sync")
    s = load_glucose_scenario({"duration": "3 h", "meals": [{"at": "1 h", "carbs_g": 40}]})
    names = resolve_patients("all*5")  # 150 patients: several chunks of sensor blocks
    local = run_trial(names, s, seed=3)
    distributed = run_trial(names, s, seed=3, engine="ray", workers=2)
    assert distributed.names == local.names
    assert np.array_equal(distributed.bg_mg_dl, local.bg_mg_dl)
    assert np.array_equal(distributed.cgm_mg_dl, local.cgm_mg_dl, equal_nan=True)


def test_cli_glucose(tmp_path: Path) -> None:
    scenario = tmp_path / "day.json"
    scenario.write_text(json.dumps(DAY))
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "trial",
            "glucose",
            "--patients",
            "adolescent#001,adult#001",
            "--scenario",
            str(scenario),
            "--controller",
            "open-loop",
            "--no-sensor-noise",
            "--seed",
            "1",
            "--report",
            str(tmp_path / "rep"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    p = out["patients"][0]
    assert p["name"] == "adolescent#001" and len(p["bg_mg_dl"]) == 1440
    assert {"tir_percent", "tbr_percent", "gmi_percent", "lbgi"} <= set(p["metrics"])
    assert Path(out["report"]["html"]).exists()
    small = runner.invoke(
        app,
        [
            "trial",
            "glucose",
            "--patients",
            "all",
            "--scenario",
            str(scenario),
            "--metrics-only",
            "--json",
        ],
    )
    out = json.loads(small.stdout)
    assert len(out["patients"]) == 30 and "bg_mg_dl" not in out["patients"][0]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--patients", "adult#099"], "patients"),
        (["--patients", "adult#001", "--controller", "nope"], "controller"),
        (["--patients", "adult#001", "--engine", "spark"], "engine"),
    ],
)
def test_cli_bad_input_exit_2(tmp_path: Path, args: list[str], field: str) -> None:
    scenario = tmp_path / "day.json"
    scenario.write_text(json.dumps(DAY))
    res = CliRunner().invoke(
        app, ["trial", "glucose", *args, "--scenario", str(scenario), "--json"]
    )
    assert res.exit_code == 2
    assert json.loads(res.stdout)["error"]["field"] == field
