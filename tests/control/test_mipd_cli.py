"""``openinfusion mipd``: JSON output, and bad input named with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openinfusion.cli.mipd_cmd import mipd_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mipd"
VANCO = [
    "vancomycin",
    "--age",
    "60",
    "--weight",
    "80 kg",
    "--height",
    "175 cm",
    "--sex",
    "m",
    "--scr",
    "1.0 mg/dL",
]
FVIII = ["factor-viii", "--age", "30", "--weight", "70 kg"]


def _run(args: list[str]) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(mipd_app, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def _write(tmp_path: Path, name: str, data: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_vancomycin_json_has_estimate_current_recommended_and_population() -> None:
    code, out = _run(
        [
            *VANCO,
            "--doses",
            str(EXAMPLES / "vancomycin_doses.json"),
            "--levels",
            str(EXAMPLES / "vancomycin_levels.json"),
        ]
    )
    assert code == 0
    ind, pop = out["individual"], out["population"]
    assert isinstance(ind, dict) and isinstance(pop, dict)
    cl = ind["parameters"]["cl"]
    assert cl["ci95"][0] < cl["estimate"] < cl["ci95"][1]
    assert ind["current_regimen"]["auc24_mg_h_l"] > 600
    assert 400 <= ind["recommended"]["auc24_mg_h_l"] <= 600
    assert pop["method"] == "prior" and ind["method"] == "map"
    assert len(ind["fit"]) == 2


def test_vancomycin_iso_times_and_human_output() -> None:
    args = [
        *VANCO,
        "--doses",
        str(EXAMPLES / "vancomycin_doses_iso.json"),
        "--levels",
        str(EXAMPLES / "vancomycin_levels_iso.json"),
    ]
    code, out = _run(args)
    assert code == 0 and out["levels_used"] == 2
    text = CliRunner().invoke(mipd_app, args)
    assert (
        text.exit_code == 0
        and "recommends" in text.stdout
        and "not a medical device" in text.stdout
    )


def test_factor_viii_json() -> None:
    code, out = _run(
        [
            *FVIII,
            "--doses",
            str(EXAMPLES / "factor_viii_doses.json"),
            "--levels",
            str(EXAMPLES / "factor_viii_levels.json"),
        ]
    )
    assert code == 0
    rec = out["individual"]["recommended"]
    assert rec["trough_iu_dl"] >= 1.0 and rec["dose_iu"] % 250 == 0


@pytest.mark.parametrize(
    ("doses", "levels", "field"),
    [
        ([{"at": "0 h", "dose": "1000 IU", "over": "1 h"}], [], "doses[0].dose"),
        ([{"at": "0 h", "dose": "1000 mg"}], [], "doses[0].over"),
        ([{"at": "0", "dose": "1000 mg", "over": "1 h"}], [], "doses[0].at"),
        ([{"at": "0 h", "dose": "1000 mg", "over": "1 h", "rate": 1}], [], "doses[0].rate"),
        ([], [], "doses"),
        (
            [{"at": "1 h", "dose": "1000 mg", "over": "1 h"}],
            [{"at": "0.5 h", "concentration": "12 mg/L"}],
            "levels[0].at",
        ),
        (
            [{"at": "0 h", "dose": "1000 mg", "over": "1 h"}],
            [{"at": "5 h", "concentration": "12 IU/L"}],
            "levels[0].concentration",
        ),
        (
            [{"at": "0 h", "dose": "1000 mg", "over": "1 h"}],
            [{"at": "5 h", "concentration": "12"}],
            "levels[0].concentration",
        ),
        (
            [{"at": "0 h", "dose": "1000 mg", "over": "1 h"}],
            [{"at": "2024-01-01T05:00", "concentration": "12 mg/L"}],
            "levels[0].at",
        ),
    ],
)
def test_bad_vancomycin_input_is_named(
    tmp_path: Path, doses: object, levels: object, field: str
) -> None:
    code, out = _run(
        [
            *VANCO,
            "--doses",
            _write(tmp_path, "d.json", doses),
            "--levels",
            _write(tmp_path, "l.json", levels),
        ]
    )
    assert code == 2
    error = out["error"]
    assert isinstance(error, dict) and error["field"] == field


def test_bad_covariates_file_and_target(tmp_path: Path) -> None:
    doses = str(EXAMPLES / "vancomycin_doses.json")
    code, out = _run(
        [
            "vancomycin",
            "--age",
            "60",
            "--weight",
            "80",
            "--sex",
            "m",
            "--scr",
            "1.0 mg/dL",
            "--doses",
            doses,
        ]
    )
    assert code == 2 and out["error"]["field"] == "weight"  # type: ignore[index]
    code, out = _run([*VANCO, "--doses", doses, "--target-auc", "800"])
    assert code == 2 and out["error"]["field"] == "target-auc"  # type: ignore[index]
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    code, out = _run([*VANCO, "--doses", str(broken)])
    assert code == 2 and out["error"]["field"] == "doses"  # type: ignore[index]
    code, out = _run([*FVIII, "--doses", doses])
    assert code == 2 and out["error"]["field"] == "doses[0].dose"  # type: ignore[index]
