"""``openinfusion trial pk`` and the schedule files it reads: results, units, exit codes and
one clear error line naming field, value and rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner, Result

from openinfusion.cli.trial_cmd import trial_app
from openinfusion.errors import InputError
from openinfusion.patient import Patient
from openinfusion.physiology.pk import model_spec
from openinfusion.sim.pk_schedule import parse_pk_schedule

app = typer.Typer()
app.add_typer(trial_app, name="trial")
runner = CliRunner()

INDUCTION = {
    "duration": "120 min",
    "boluses": [{"at": "0 min", "dose": "2 mg/kg"}],
    "infusions": [{"from": "0 min", "to": "60 min", "dose": "10 mg/kg/h"}],
}
ADULT = ["--age", "40", "--weight", "70 kg", "--height", "170 cm", "--sex", "m"]


def _file(tmp_path: Path, data: Any, name: str = "schedule.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def _run(*args: str) -> Result:
    result = runner.invoke(app, ["trial", "pk", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def _json(*args: str, code: int = 0) -> Any:
    result = _run(*args, "--json")
    assert result.exit_code == code, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_schnider_json_output(tmp_path: Path) -> None:
    out = _json(
        "--drug",
        "propofol",
        "--model",
        "schnider",
        *ADULT,
        "--schedule",
        str(_file(tmp_path, INDUCTION)),
    )
    assert out["units"] == {"t": "s", "cp": "mcg/mL", "ce": "mcg/mL", "dose": "mg"}
    assert len(out["t_s"]) == len(out["cp"]) == len(out["ce"]) == 721
    assert out["t_s"][1] - out["t_s"][0] == 10.0
    assert out["cp"][360] == pytest.approx(4.88, abs=0.005)  # §0 consensus, 60 min
    assert out["cp"][0] == pytest.approx(140 / 4.27)
    assert out["total_dose"] == {"value": pytest.approx(840.0), "unit": "mg"}
    assert out["effect_site"] is True
    assert out["parameters"]["ke0_per_min"] == pytest.approx(0.456)


def test_eleveld_opioid_flag_and_step(tmp_path: Path) -> None:
    path = str(_file(tmp_path, INDUCTION))
    base = ["--drug", "propofol", "--model", "eleveld", *ADULT, "--schedule", path]
    with_opioid = _json(*base, "--opioid", "--step-s", "60")
    without = _json(*base, "--step-s", "60")
    assert len(with_opioid["t_s"]) == 121
    assert with_opioid["cp"][60] == pytest.approx(5.21, abs=0.005)
    assert with_opioid["cp"][60] / without["cp"][60] == pytest.approx(1.22, abs=0.005)


def test_remifentanil_in_micrograms(tmp_path: Path) -> None:
    schedule = {
        "duration": "30 min",
        "boluses": [{"at": "0 s", "dose": "1 mcg/kg"}],
        "infusions": [{"from": "0 min", "to": "30 min", "dose": "0.25 mcg/kg/min"}],
    }
    out = _json("--drug", "remifentanil", *ADULT, "--schedule", str(_file(tmp_path, schedule)))
    assert out["model"] == "minto"
    assert out["units"]["cp"] == "ng/mL" and out["units"]["dose"] == "mcg"
    assert out["total_dose"]["value"] == pytest.approx(70 + 0.25 * 70 * 30)
    # Eleveld 2020: label doses sit near a plasma concentration of about 4 ng/mL.
    assert 3.0 < out["cp"][-1] < 8.0


def test_heparin_units_and_direct_effect(tmp_path: Path) -> None:
    schedule = {
        "duration": "6 h",
        "boluses": [{"at": "0 min", "dose": "80 units/kg"}],
        "infusions": [{"from": "0 h", "to": "6 h", "dose": "18 units/kg/h"}],
    }
    out = _json(
        "--drug",
        "heparin",
        "--age",
        "55",
        "--weight",
        "70 kg",
        "--schedule",
        str(_file(tmp_path, schedule)),
        "--step-s",
        "600",
    )
    assert out["units"]["cp"] == "units/mL" and out["units"]["dose"] == "units"
    assert out["effect_site"] is False and out["ce"] == out["cp"]
    assert out["cp"][0] == pytest.approx(80 * 70 / 3.04 / 1000)


def test_vancomycin_needs_creatinine_and_takes_dialysis(tmp_path: Path) -> None:
    schedule = {
        "duration": "12 h",
        "infusions": [{"from": "0 h", "to": "1 h", "dose": "1000 mg/h"}],
    }
    path = str(_file(tmp_path, schedule))
    args = ["--drug", "vancomycin", "--age", "50", "--weight", "70 kg", "--sex", "m"]
    err = _json(*args, "--schedule", path, code=2)
    assert err["error"]["field"] == "serum_creatinine"
    out = _json(*args, "--scr", "1.0 mg/dL", "--schedule", path, "--step-s", "3600")
    dialysis = _json(
        *args, "--scr", "1.0 mg/dL", "--dialysis", "--schedule", path, "--step-s", "3600"
    )
    assert dialysis["cp"][1] > out["cp"][1]  # half the central volume
    assert out["units"]["cp"] == "mg/L"


def test_factor_viii_in_units_per_dl(tmp_path: Path) -> None:
    schedule = {"duration": "48 h", "boluses": [{"at": "0 h", "dose": "50 IU/kg"}]}
    out = _json(
        "--drug",
        "factor_viii",
        "--age",
        "22",
        "--weight",
        "56 kg",
        "--schedule",
        str(_file(tmp_path, schedule)),
        "--step-s",
        "3600",
    )
    assert out["units"]["cp"] == "units/dL"
    assert out["cp"][0] == pytest.approx(2800 / 22.2, rel=1e-9)
    assert out["cp"][-1] < 5.0


def test_human_summary(tmp_path: Path) -> None:
    result = _run(
        "--drug",
        "propofol",
        "--model",
        "marsh",
        *ADULT,
        "--schedule",
        str(_file(tmp_path, INDUCTION)),
    )
    assert result.exit_code == 0
    assert "peak Ce" in result.stdout and "mcg/mL" in result.stdout


@pytest.mark.parametrize(
    ("args", "schedule", "field"),
    [
        (["--model", "minto"], INDUCTION, "model"),
        (["--weight", "70"], INDUCTION, "weight"),
        (["--opioid", "--model", "schnider"], INDUCTION, "opioid"),
        (["--step-s", "0"], INDUCTION, "step-s"),
        (["--step-s", "0.001"], INDUCTION, "step-s"),
        ([], {**INDUCTION, "extra": 1}, "extra"),
        ([], {"boluses": []}, "duration"),
        (
            [],
            {"duration": "2 h", "boluses": [{"at": "0 min", "dose": "2 units/kg"}]},
            "boluses[0].dose",
        ),
        (
            [],
            {"duration": "2 h", "boluses": [{"at": "0 min", "dose": "2 mg/kg/h"}]},
            "boluses[0].dose",
        ),
        ([], {"duration": "2 h", "boluses": [{"at": "3 h", "dose": "2 mg/kg"}]}, "boluses[0].at"),
        ([], {"duration": "2 h", "boluses": [{"at": "30", "dose": "2 mg/kg"}]}, "boluses[0].at"),
        (
            [],
            {
                "duration": "2 h",
                "infusions": [{"from": "1 h", "to": "30 min", "dose": "5 mg/kg/h"}],
            },
            "infusions[0].to",
        ),
        (
            [],
            {"duration": "2 h", "infusions": [{"from": "0 h", "to": "1 h", "dose": "-5 mg/kg/h"}]},
            "infusions[0].dose",
        ),
        (
            [],
            {"duration": "2 h", "infusions": [{"from": "0 h", "to": "1 h", "dose": "5 mg/m2"}]},
            "infusions[0].dose",
        ),
        ([], "{not json", "schedule"),
    ],
)
def test_bad_input_exits_2_naming_the_field(
    tmp_path: Path, args: list[str], schedule: Any, field: str
) -> None:
    base = {"--drug": "propofol", "--model": "eleveld"}
    merged = [*ADULT]
    for key, value in base.items():
        if key not in args:
            merged += [key, value]
    # later options win in Typer, so user-supplied args go last
    out = _json(*merged, *args, "--schedule", str(_file(tmp_path, schedule)), code=2)
    assert out["error"]["field"] == field, out
    result = _run(*merged, *args, "--schedule", str(_file(tmp_path, schedule)))
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and field.split("[", maxsplit=1)[0] in lines[0]


def test_missing_schedule_file(tmp_path: Path) -> None:
    out = _json("--drug", "propofol", *ADULT, "--schedule", str(tmp_path / "nope.json"), code=2)
    assert out["error"]["field"] == "schedule"
    assert out["error"]["rule"] == "file not found"


def test_covariates_outside_the_model_exit_2(tmp_path: Path) -> None:
    out = _json(
        "--drug",
        "propofol",
        "--model",
        "schnider",
        "--age",
        "40",
        "--weight",
        "160 kg",
        "--height",
        "165 cm",
        "--sex",
        "f",
        "--schedule",
        str(_file(tmp_path, INDUCTION)),
        code=2,
    )
    assert out["error"]["field"] == "bmi"
    assert "James" in out["error"]["rule"]


def test_schedule_parser_sums_overlaps_and_converts_units() -> None:
    spec = model_spec("remifentanil", "minto")
    patient = Patient(weight_kg=80.0, height_cm=180.0)
    plan = parse_pk_schedule(
        {
            "duration": "1 h",
            "boluses": [{"at": "90 s", "dose": "0.5 mg"}],
            "infusions": [
                {"from": "0 min", "to": "40 min", "dose": "0.1 mcg/kg/min"},
                {"from": "20 min", "to": "1 h", "dose": "6 mg/h"},
            ],
        },
        spec,
        patient,
    )
    sched = plan.schedule
    np.testing.assert_allclose(sched.rate_start_s, [0, 1200, 2400, 3600])
    np.testing.assert_allclose(sched.rate_per_s, [8 / 60, 8 / 60 + 6000 / 3600, 6000 / 3600, 0])
    np.testing.assert_allclose(sched.bolus_at_s, [90.0])
    np.testing.assert_allclose(sched.bolus_amount, [500.0])  # mcg
    assert plan.total_amount == pytest.approx(500 + 0.1 * 80 * 40 + 6000 * 40 / 60)
    assert plan.amount_unit == "mcg"


def test_per_m2_doses_need_height() -> None:
    spec = model_spec("vancomycin", "goti")
    with pytest.raises(InputError) as err:
        parse_pk_schedule(
            {"duration": "1 h", "boluses": [{"at": "0 h", "dose": "500 mg/m2"}]},
            spec,
            Patient(weight_kg=70.0),
        )
    assert err.value.field == "height"


def test_docs_example_runs() -> None:
    """The Python example of docs/pk.md gives the value its comment states."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "pk.md").read_text(encoding="utf-8")
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(code, scope)
    assert scope["result"].cp[0, 360] == pytest.approx(5.2127, abs=5e-5)
