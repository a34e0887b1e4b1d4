"""The PCA trial: the pump's limits hold, doses add up, PK follows the pump, seeds repeat,
more demand gives more opioid and more respiratory depression, faults, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from openinfusion.cli.main import app
from openinfusion.errors import InputError
from openinfusion.library.ders import HardLimitError
from openinfusion.physiology.pk import Schedule, simulate
from openinfusion.sim.pca_scenario import load_pca_scenario, nmol_l_to_ng_ml, prepare
from openinfusion.sim.pca_trial import (
    PcaTrialResult,
    _episodes,
    minute_kernel,
    reported_nrs,
    run_pca_trial,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "trials" / "pca-morphine-48h.json"
PROGRAM = {
    "drug": "morphine",
    "concentration": "1 mg/mL",
    "demand_dose": "1 mg",
    "lockout": "10 min",
}


def scenario(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"duration": "6 h", "program": dict(PROGRAM), "patients": {"n": 4}}
    base.update(fields)
    return base


def run(data: dict[str, Any], **kw: Any) -> PcaTrialResult:
    result = run_pca_trial(load_pca_scenario(data), **kw)
    # the delivery assumed between pump events is what the pump delivered
    assert result.delivery_check_ml < 1e-9
    return result


def granted_s(result: PcaTrialResult, i: int) -> np.ndarray:
    records = result.devices[i].records
    return np.array([r.t_s for r in records if r.kind == "pca_granted"])


# ---- the pump's rules hold in the trial ------------------------------------------------


def test_lockout_and_hourly_limit_are_never_exceeded() -> None:
    data = scenario(
        duration="8 h",
        program={**PROGRAM, "lockout": "6 min", "basal": "0.5 mg/h", "limit_1h": "4 mg"},
        patients={"n": 12},
        demand={"model": "pain", "threshold_nrs": 0, "presses_per_h": 40},
        seed=4,
    )
    r = run(data)
    for i, device in enumerate(r.devices):
        grants = granted_s(r, i)
        assert len(grants) == r.metrics[i]["granted"] > 3
        assert np.all(np.diff(grants) >= 6 * 60 - 1e-6)  # lockout, from the pump's records
        # every hour-long window (minute grid) holds at most 4 mg, basal and doses together
        per_min = r.delivered_mg[i]
        hourly = np.convolve(per_min, np.ones(60), mode="valid")
        assert hourly.max() <= 4.0 + 1e-9
        # and by the grants: doses granted in any hour plus the basal stay within the limit
        for g in grants:
            in_hour = np.sum((grants > g - 3600) & (grants <= g))
            assert in_hour * 1.0 <= 4.0 + 1e-9
        history = device.channels[0].pca_history
        assert sum(not h.granted for h in history) == r.metrics[i]["denied"]
    reasons = r.summary["denied_reasons"]
    assert reasons.get("lockout", 0) > 0 and reasons.get("1-hour limit", 0) > 0
    # the limit is reached, not only approached
    assert max(np.convolve(d, np.ones(60), "valid").max() for d in r.delivered_mg) > 3.5


def test_four_hour_limit_with_basal_pauses_and_the_nurse_resumes() -> None:
    data = scenario(
        duration="10 h",
        override_reason="trial: high basal",
        program={
            **PROGRAM,
            "demand_dose": "2 mg",
            "lockout": "6 min",
            "basal": "2 mg/h",
            "limit_4h": "20 mg",
        },
        patients={"n": 3},
        demand={"model": "pain", "threshold_nrs": 0, "presses_per_h": 60},
    )
    r = run(data)
    for d in r.delivered_mg:
        assert np.convolve(d, np.ones(240), "valid").max() <= 20.0 + 1e-9
    assert r.summary["denied_reasons"].get("4-hour limit", 0) > 0
    alarms = [m["alarms"].get("dose_limit", 0) for m in r.metrics]
    assert min(alarms) >= 1
    # after the window frees up the nurse resumes: delivery goes on in the last hours
    assert all(d[-120:].sum() > 0 for d in r.delivered_mg)


def test_total_opioid_is_the_granted_doses_plus_basal() -> None:
    times = [f"{m} min" for m in range(30, 300, 7)]  # some fall in the lockout
    data = scenario(
        duration="6 h",
        program={**PROGRAM, "basal": "0.5 mg/h"},
        patients={"n": 2},
        demand={"model": "scripted", "times": times},
    )
    r = run(data)
    for i, m in enumerate(r.metrics):
        expected = m["granted"] * 1.0 + 0.5 * 6
        assert m["opioid_mg"] == pytest.approx(expected, abs=1e-9)
        assert m["demands"] == len(times)
        assert m["granted"] + m["denied"] == len(times)
        assert set(m["denied_reasons"]) == {"lockout"}
        # what reached the patient: all of it but the set's start-up slack (0.1 mL)
        assert m["received_mg"] == pytest.approx(m["opioid_mg"] - 0.1, abs=1e-9)
        assert r.delivered_mg[i].sum() == pytest.approx(m["received_mg"], abs=1e-9)
        assert m["opioid_mg_per_kg"] == pytest.approx(
            m["opioid_mg"] / r.covariates["weight_kg"][i], abs=1e-6
        )


# ---- PK follows the pump ------------------------------------------------------------------


def test_ce_is_the_exact_pk_of_what_the_pump_delivered() -> None:
    data = scenario(
        duration="4 h",
        patients={"n": 2, "covariates": {"weight": "70 kg", "sex": "m", "age": 40}},
        demand={"model": "scripted", "times": ["0 min", "12.5 min", "40 min", "41 min"]},
    )
    r = run(data)
    model = run_model(r)
    grid = np.arange(241) * 60.0
    # the doses as the pump gave them: 1 mL at 150 mL/h, the set's 0.1 mL slack first
    grants = granted_s(r, 0)
    assert grants.tolist() == [0.0, 750.0, 2400.0]  # the press at 41 min fell in the lockout
    rate = 150 / 3600.0
    infusions = []
    for k, g in enumerate(grants):
        start = g + (0.1 / rate if k == 0 else 0.0)
        infusions.append((start, start + (0.9 if k == 0 else 1.0) / rate, rate))
    exact = simulate(model, Schedule.build(infusions=infusions), grid).ce[0] * 1000.0
    np.testing.assert_allclose(r.ce_ng_ml[0], exact, rtol=1e-4, atol=1e-6 * exact.max())
    np.testing.assert_allclose(r.ce_ng_ml[1], r.ce_ng_ml[0], rtol=1e-12)
    # spreading each minute's delivery over the minute would be off by several percent
    per_minute = Schedule(
        rate_start_s=grid[:-1],
        rate_per_s=r.delivered_mg[0] / 60.0,
        bolus_at_s=np.zeros(0),
        bolus_amount=np.zeros(0),
    )
    smeared = simulate(model, per_minute, grid).ce[0] * 1000.0
    assert np.max(np.abs(smeared - exact)) > 0.02 * exact.max()


def run_model(r: PcaTrialResult) -> Any:
    from openinfusion.physiology.pk import Covariates, build_model

    cov = Covariates(
        age_years=r.covariates["age_years"],
        weight_kg=r.covariates["weight_kg"],
        male=~r.covariates["female"],
    )
    return build_model("morphine", "sarton", cov)[1]


def test_minute_kernel_matches_the_solver() -> None:
    from openinfusion.physiology.pk import Covariates, build_model

    model = build_model("morphine", "sarton", Covariates(weight_kg=[60, 90], male=[True, False]))[1]
    kernel = minute_kernel(model)
    x = np.zeros((2, 4))
    rates = np.array([[0.02, 0.0], [0.0, 0.01], [0.0, 0.0]])  # mg/s, minute by minute
    for row in rates:
        x = np.einsum("nij,nj->ni", kernel.phi, x) + kernel.infusion[:, 60] * row[:, None]
    sched = Schedule(
        rate_start_s=np.array([0.0, 60.0, 120.0]),
        rate_per_s=rates,
        bolus_at_s=np.zeros(0),
        bolus_amount=np.zeros(0),
    )
    exact = simulate(model, sched, [180.0])
    np.testing.assert_allclose(x[:, 3], exact.ce[:, 0], rtol=1e-10)
    np.testing.assert_allclose(x[:, 0], exact.final.amounts[:, 0], rtol=1e-10)


# ---- determinism, dose-response ---------------------------------------------------------


def test_same_seed_same_trial_other_seed_other_trial() -> None:
    data = scenario(duration="4 h", patients={"n": 5})
    a, b = run(data, seed=7), run(data, seed=7)
    c = run(data, seed=8)
    assert a.metrics == b.metrics
    for name in ("ce_ng_ml", "pain_nrs", "spo2_pct", "etco2_mmhg", "delivered_mg"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.metrics != c.metrics
    # a fixed cohort seed keeps the patients while the trial seed changes their behaviour
    fixed = {**data, "patients": {"n": 5, "seed": 3}}
    d, e = run(fixed, seed=1), run(fixed, seed=2)
    np.testing.assert_array_equal(d.covariates["weight_kg"], e.covariates["weight_kg"])
    assert d.metrics != e.metrics


def test_more_demand_more_opioid_more_respiratory_depression() -> None:
    outcomes = []
    for rate in (0.5, 4.0, 30.0):
        data = scenario(
            duration="24 h",
            seed=3,
            override_reason="trial: dose-response",
            program={
                **PROGRAM,
                "demand_dose": "2 mg",
                "lockout": "6 min",
                "basal": "1 mg/h",
                "limit_4h": "40 mg",
            },
            patients={"n": 30},
            demand={"model": "pain", "threshold_nrs": 2, "presses_per_h": rate},
            respiration={"c50_ng_ml": 4.0, "monitor_noise": False},
        )
        s = run(data).summary
        outcomes.append((s["opioid_mg"]["mean"], s["resp_events"], s["resp_event_minutes"]))
    opioid, events, minutes = zip(*outcomes, strict=True)
    assert opioid[0] < opioid[1] < opioid[2]
    assert events[0] <= events[1] <= events[2] and events[2] > events[0]
    assert minutes[0] < minutes[2]


def test_default_model_gives_plausible_outcomes() -> None:
    r = run(scenario(duration="24 h", patients={"n": 20}, seed=2))
    s = r.summary
    assert 5 < s["opioid_mg"]["median"] < 80  # mg over the first day
    assert 2.0 < s["mean_pain_nrs"]["mean"] < 6.0
    assert 0.1 < s["pain_free_fraction"]["mean"] < 0.95
    assert s["resp_events"] == 0 and s["min_sao2_pct"] > 88
    # pain falls when morphine rises, in every patient who used the PCA
    for i, m in enumerate(r.metrics):
        if m["granted"]:
            assert r.pain_nrs[i, -1] < r.pain_nrs[i, 0]


def test_events_are_runs_of_at_least_the_minimum_length() -> None:
    meets = np.array([0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1], dtype=bool)
    assert _episodes(meets, 3) == (2, 7)
    assert _episodes(meets, 1) == (3, 9)
    assert _episodes(np.zeros(5, dtype=bool), 1) == (0, 0)
    assert reported_nrs(np.array([3.49, 3.5, 0.2])).tolist() == [3.0, 4.0, 0.0]


def test_unit_conversion_of_published_potencies() -> None:
    assert nmol_l_to_ng_ml(32.0) == pytest.approx(9.131, abs=1e-3)  # Dahan 2004
    assert nmol_l_to_ng_ml(76.5) == pytest.approx(21.83, abs=1e-2)  # Sarton 2000, men


# ---- faults and the nurse ----------------------------------------------------------------


def test_occlusion_stops_delivery_until_fixed() -> None:
    data = scenario(
        duration="3 h",
        program={**PROGRAM, "basal": "1 mg/h"},
        patients={"n": 2},
        demand={"model": "scripted", "times": ["5 min", "70 min", "100 min"]},
        faults=[{"type": "occlusion", "from": "60 min", "to": "120 min", "patients": [1]}],
    )
    r = run(data)
    ok, blocked = r.delivered_mg
    assert ok[60:120].sum() > 1.5
    # held back by the occluded line until the alarm, then nothing; released when fixed
    assert blocked[61:119].sum() == 0.0
    assert blocked[120] > 0.0
    assert r.metrics[1]["alarms"].get("occlusion_downstream") == 1
    assert r.metrics[1]["received_mg"] < r.metrics[0]["received_mg"]
    assert blocked[150:].sum() == pytest.approx(ok[150:].sum(), abs=1e-9)  # resumed


def test_disconnection_loses_the_drug_and_alarms(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "duration: 3 h\n"
        "program: {demand_dose: 1 mg, lockout: 10 min, basal: 1 mg/h}\n"
        "patients: {n: 2, covariates: {weight: 70 kg, sex: f}}\n"
        "demand: {model: scripted, times: [5 min, 70 min, 100 min]}\n"
        "faults: [{type: disconnect, from: 60 min, to: 120 min, patients: [1]}]\n",
        encoding="utf-8",
    )
    r = run_pca_trial(load_pca_scenario(path))
    assert r.delivery_check_ml < 1e-9
    ok, cut = r.metrics
    assert cut["alarms"] == {"disconnection": 1}
    assert cut["denied_reasons"] == {"channel alarm": 2}  # presses at 70 and 100 min
    assert r.delivered_mg[1, 60:120].sum() == 0.0
    # pumped until the pump noticed (30 s), but lost: counted as given, never received
    assert cut["opioid_mg"] - cut["received_mg"] == pytest.approx(0.1 + 0.5 / 60, abs=1e-5)
    assert ok["received_mg"] - cut["received_mg"] == pytest.approx(2.0 + 1.0, abs=1e-5)


def test_suspend_and_syringe_change() -> None:
    data = scenario(
        duration="6 h",
        override_reason="trial: heavy use",
        program={
            **PROGRAM,
            "demand_dose": "3 mg",
            "lockout": "5 min",
            "basal": "2 mg/h",
            "limit_4h": "40 mg",
        },
        patients={"n": 1},
        demand={"model": "pain", "threshold_nrs": 0, "presses_per_h": 60},
        faults=[{"type": "suspend", "from": "1 h", "to": "1.5 h"}],
        nurse={"response": "5 min"},
    )
    r = run(data)
    m = r.metrics[0]
    assert r.delivered_mg[0, 61:90].sum() == 0.0
    assert m["denied_reasons"].get("channel paused", 0) > 0
    assert m["syringe_changes"] >= 1 and m["opioid_mg"] > 50.0  # a 50 mL syringe at 1 mg/mL
    assert m["alarms"].get("reservoir_low", 0) >= 1


# ---- input checks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"duration": "48 kg"}, "duration"),
        ({"duration": "30 days"}, "duration"),
        ({"patients": {"n": 0}}, "patients.n"),
        ({"demand": {"model": "pain", "presses_per_h": -1}}, "demand.presses_per_h"),
        ({"demand": {"model": "scripted", "times": ["7 h"]}}, "demand.times[0]"),
        ({"demand": {"model": "guess"}}, "demand"),
        ({"pain": {"gamma": 0}}, "pain.gamma"),
        ({"colour": "red"}, "colour"),
        ({"faults": [{"type": "occlusion", "from": "2 h", "to": "1 h"}]}, "faults[0].to"),
        (
            {"faults": [{"type": "occlusion", "from": "1 h", "to": "2 h", "patients": [9]}]},
            "faults[0].patients[0]",
        ),
        ({"respiratory_event": {"min_duration": "0 min"}}, "respiratory_event.min_duration"),
        (
            {"patients": {"n": 2, "covariates": {"weight": "70", "sex": "m"}}},
            "patients.covariates.weight",
        ),
    ],
)
def test_bad_input_names_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as e:
        prepare(load_pca_scenario(scenario(**change)))
    assert e.value.field == field


@pytest.mark.parametrize(
    ("program", "field"),
    [
        ({"demand_dose": "abc"}, "program.demand_dose"),
        (
            {"drug": "fentanyl", "concentration": "10 mcg/mL", "demand_dose": "20 mcg"},
            "program.drug",
        ),
        ({"lockout": "soon"}, "program.lockout"),
    ],
)
def test_bad_program_names_the_field(program: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as e:
        run(scenario(program={**PROGRAM, **program}))
    assert e.value.field == field


def test_hard_limit_blocks_the_trial() -> None:
    with pytest.raises(HardLimitError, match="patient 0"):
        run(scenario(program={**PROGRAM, "demand_dose": "5 mg"}))
    with pytest.raises(HardLimitError, match="loading dose is not allowed"):
        run(scenario(program={**PROGRAM, "loading": "2 mg"}))


# ---- command line -------------------------------------------------------------------------


def test_cli_runs_the_example() -> None:
    res = CliRunner().invoke(
        app, ["trial", "pca", "--scenario", str(EXAMPLE), "--patients", "2", "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["minutes"] == 2880 and out["seed"] == 1
    assert out["summary"]["patients"] == 2
    p = out["patients"][0]
    assert set(p) == {"id", "covariates", "metrics", "traces"}
    assert set(p["traces"]) == {"t_min", "ce_ng_ml", "pain_nrs", "spo2_pct"}
    assert len(p["traces"]["ce_ng_ml"]) == 2881
    assert {"opioid_mg", "pain_free_fraction", "resp_events", "min_spo2_pct"} <= set(p["metrics"])
    assert out["program"]["verdict"] == "ok"


def test_cli_metrics_only_and_human_output(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(scenario(duration="2 h")), encoding="utf-8")
    res = CliRunner().invoke(
        app, ["trial", "pca", "--scenario", str(path), "--seed", "3", "--metrics-only", "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["seed"] == 3 and "traces" not in out["patients"][0]
    res = CliRunner().invoke(app, ["trial", "pca", "--scenario", str(path)])
    assert res.exit_code == 0, res.output
    assert "respiratory depression" in res.output and "runtime" in res.output


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (scenario(patients={"n": 0}), "patients.n"),
        (scenario(demand={"model": "pain", "threshold_nrs": 11}), "demand.threshold_nrs"),
        (scenario(program={**PROGRAM, "demand_dose": "abc"}), "program.demand_dose"),
    ],
)
def test_cli_bad_input_exits_2_naming_the_field(
    tmp_path: Path, data: dict[str, Any], field: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    res = CliRunner().invoke(app, ["trial", "pca", "--scenario", str(path), "--json"])
    assert res.exit_code == 2
    out = json.loads(res.stdout)
    assert out["error"]["field"] == field
    assert field in res.stderr


def test_cli_patients_option_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(scenario()), encoding="utf-8")
    res = CliRunner().invoke(app, ["trial", "pca", "--scenario", str(path), "--patients", "0"])
    assert res.exit_code == 2 and "patients" in res.stderr


def test_docs_python_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    root = EXAMPLE.parents[2]
    text = (root / "docs" / "pca-trials.md").read_text(encoding="utf-8")
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(root)
    namespace: dict[str, Any] = {}
    exec(compile(code, "pca-trials.md", "exec"), namespace)
    result = namespace["result"]
    assert result.ce_ng_ml.shape == (20, 2881)
    assert len(result.devices[0].channels[0].pca_history) == result.metrics[0]["demands"]
