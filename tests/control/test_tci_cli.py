"""``openinfusion tci plan`` through Typer's runner: JSON keys, units, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from openinfusion.cli.tci_cmd import tci_app

PATIENT = ["--age", "40", "--weight", "70 kg", "--height", "170 cm", "--sex", "m"]


def run(*args: str) -> tuple[int, dict[str, object] | str]:
    result = CliRunner().invoke(tci_app, ["plan", *PATIENT, *args])
    if "--json" in args and result.stdout.strip().startswith("{"):
        return result.exit_code, json.loads(result.stdout)
    return result.exit_code, result.output


def test_plasma_plan_json() -> None:
    code, out = run("--model", "marsh", "--target", "4", "--max-rate", "100000 mL/h", "--json")
    assert code == 0 and isinstance(out, dict)
    assert out["rates_mg_h"][0] * 10 / 3600 == pytest.approx(65.30, abs=0.01)  # type: ignore[index]
    assert out["total_mg"] == pytest.approx(789.6, abs=0.06)
    assert out["total_ml"] == pytest.approx(78.96, abs=0.006)
    assert out["units"]["cp"] == "mcg/mL"  # type: ignore[index]
    assert len(out["t_s"]) == len(out["cp"]) == len(out["rates_ml_h"]) == 361  # type: ignore[arg-type]


def test_effect_plan_respects_pump_limit() -> None:
    code, out = run("--model", "eleveld", "--opioid", "--target", "3", "--site", "effect", "--json")
    assert code == 0 and isinstance(out, dict)
    rates = np.array(out["rates_ml_h"])
    assert rates.max() <= 1200 + 1e-9 and rates[0] == pytest.approx(1200)
    assert max(out["ce"]) <= 3 * 1.001  # type: ignore[arg-type]


def test_target_changes_file(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    path.write_text(
        json.dumps([{"at": "0 min", "target": 3}, {"at": "20 min", "target": "5 mcg/mL"}])
    )
    code, out = run("--targets", str(path), "--duration", "40", "--json")
    assert code == 0 and isinstance(out, dict)
    assert out["target"][119] == 3 and out["target"][120] == 5  # type: ignore[index]


def test_remifentanil_units_and_decrement() -> None:
    code, out = run(
        "--drug",
        "remifentanil",
        "--target",
        "4",
        "--site",
        "effect",
        "--decrement-to",
        "2",
        "--json",
    )
    assert code == 0 and isinstance(out, dict)
    assert out["units"]["ce"] == "ng/mL"  # type: ignore[index]
    assert 2 < out["decrement_time_min"] < 10  # type: ignore[operator]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--weight", "70", "--target", "3"], "needs a unit, e.g. '70 kg'"),
        (["--target", "abc"], "target"),
        (["--target", "3", "--site", "brain"], "site"),
        (["--target", "3", "--max-rate", "0 mL/h"], "max-rate"),
        (["--target", "3", "--duration", "0.1"], "duration_s"),
        (["--drug", "heparin", "--target", "3"], "drug"),
        ([], "--target"),
    ],
)
def test_bad_input_exit_2(args: list[str], field: str) -> None:
    result = CliRunner().invoke(tci_app, ["plan", *PATIENT, *args])
    assert result.exit_code == 2
    assert field in result.output
    assert "Traceback" not in result.output


def test_human_output() -> None:
    code, out = run("--target", "3", "--decrement-to", "1")
    assert code == 0 and "total" in str(out) and "decrement time" in str(out)
