"""``openinfusion aid determine-basal``: the reference's native files in, the reference CLI's
output out (compared with ``bin/oref0-determine-basal.js`` itself), bad files exit 2."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from openinfusion.cli.aid_cmd import aid_app
from tests.control.oref_cases import make_case
from tests.control.test_oref_parity import _require_reference


def _clean_case(seed: int) -> dict[str, Any]:
    """A generated case without the deliberately broken inputs (those are for parity)."""
    rng = random.Random(seed)
    while True:
        case = make_case(rng)
        profile = case["profile"]
        if (
            len(case["iob"]) == 48
            and all("iobWithZeroTemp" in t for t in case["iob"])
            and "current_basal" in profile
            and "min_bg" in profile
            and "max_iob" in profile
            and case["meal"] is not None
            and "mealCOB" in case["meal"]
            and case["meal"].get("reason") is None
            and "glucose" in case["glucose"][0]
            and case["autosens"] != {}
        ):
            return case


def _write(tmp: Path, case: dict[str, Any]) -> dict[str, Path]:
    files = {
        "glucose": tmp / "glucose.json",
        "iob": tmp / "iob.json",
        "profile": tmp / "profile.json",
        "currenttemp": tmp / "currenttemp.json",
        "meal": tmp / "meal.json",
        "autosens": tmp / "autosens.json",
    }
    for key, path in files.items():
        value = case[key] if case[key] is not None else {"ratio": 1}
        path.write_text(json.dumps(value), encoding="utf-8")
    return files


def _args(files: dict[str, Path], case: dict[str, Any], *extra: str) -> list[str]:
    args = ["determine-basal"]
    for key, path in files.items():
        args += [f"--{key}", str(path)]
    args += ["--current-time", str(case["currentTime"]), *extra]
    return args


def run(args: list[str]) -> tuple[int, Any]:
    result = CliRunner().invoke(aid_app, args)
    if "--json" in args and result.stdout.strip().startswith("{"):
        return result.exit_code, json.loads(result.stdout)
    return result.exit_code, result.output


def test_json_output_equals_reference_cli(tmp_path: Path) -> None:
    node, package = _require_reference()
    (tmp_path / "autotune").mkdir()  # the reference CLI drops SMB without this folder
    compared = 0
    for seed in range(20):
        case = _clean_case(seed)
        files = _write(tmp_path, case)
        extra = ["--microbolus"] if case["microbolus"] else []
        code, ours = run(_args(files, case, "--json", *extra))
        ref = subprocess.run(
            [
                node,
                str(package / "bin" / "oref0-determine-basal.js"),
                "iob.json",
                "currenttemp.json",
                "glucose.json",
                "profile.json",
                "--auto-sens",
                "autosens.json",
                "--meal",
                "meal.json",
                "--currentTime",
                str(case["currentTime"]),
                *extra,
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "TZ": "UTC"},
            check=True,
        )
        if not ref.stdout.strip():  # the reference printed an error instead
            assert code == 2
            continue
        assert code == 0, ours
        assert ours == json.loads(ref.stdout), f"seed {seed}"
        compared += 1
    assert compared >= 14


def test_human_output_names_rate_duration_and_reason(tmp_path: Path) -> None:
    case = _clean_case(3)
    files = _write(tmp_path, case)
    code, out = run(_args(files, case))
    assert code == 0
    assert ("temp basal:" in out and "reason: COB:" in out) or "reason: " in out


def test_microbolus_needs_no_autotune_folder(tmp_path: Path) -> None:
    """Unlike the reference CLI, --microbolus is honoured whatever the working folder."""
    for seed in range(200):
        case = _clean_case(seed)
        if not case["microbolus"]:
            continue
        files = _write(tmp_path, case)
        code, out = run(_args(files, case, "--json", "--microbolus"))
        if code == 0 and "units" in out:
            assert out["units"] > 0
            code, without = run(_args(files, case, "--json"))
            assert "units" not in without
            return
    pytest.fail("no generated case gave a micro-bolus")


@pytest.mark.parametrize(
    ("target", "content", "message"),
    [
        ("profile", "{not json", "profile.json"),
        ("profile", '{"current_basal": 1}', "profile.json.sens"),
        ("profile", None, "profile.json.min_bg"),
        ("iob", '[{"iob": 1, "activity": "x", "iobWithZeroTemp": {"activity": 0}}]', "iob.json"),
        ("iob", None, "iob.json[3].activity"),
        ("currenttemp", '{"rate": -1, "duration": 30}', "currenttemp.json.rate"),
        ("autosens", '{"ratio": 0}', "autosens.json.ratio"),
        ("glucose", "[]", "glucose.json"),
        ("glucose", '[{"glucose": "high", "date": 1}]', "glucose.json[0].glucose"),
        ("meal", '{"mealCOB": null}', "meal.json.mealCOB"),
    ],
)
def test_bad_files_exit_2_naming_file_and_field(
    tmp_path: Path, target: str, content: str | None, message: str
) -> None:
    case = _clean_case(1)
    files = _write(tmp_path, case)
    if content is None and target == "profile":
        broken = dict(case["profile"])
        del broken["min_bg"]
        content = json.dumps(broken)
    if content is None and target == "iob":
        ticks = case["iob"]
        ticks[3]["activity"] = None
        content = json.dumps(ticks)
    assert content is not None
    files[target].write_text(content, encoding="utf-8")
    result = CliRunner().invoke(aid_app, _args(files, case))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    code, out = run(_args(files, case, "--json"))
    assert code == 2 and message.split("[", maxsplit=1)[0] in out["error"]["field"]


def test_missing_file_exits_2(tmp_path: Path) -> None:
    case = _clean_case(1)
    files = _write(tmp_path, case)
    files["meal"] = tmp_path / "absent.json"
    result = CliRunner().invoke(aid_app, _args(files, case))
    assert result.exit_code == 2 and "absent.json" in result.output


def test_current_time_defaults_to_now(tmp_path: Path) -> None:
    """Without --current-time the decision is made now: the generated CGM (2025) is stale."""
    case = _clean_case(2)
    files = _write(tmp_path, case)
    args = [a for a in _args(files, case, "--json") if a != str(case["currentTime"])]
    args.remove("--current-time")
    code, out = run(args)
    assert code == 0 and "BG data is too old" in out["reason"]


def test_a_nan_rate_is_refused_not_printed_as_a_decision(tmp_path: Path) -> None:
    """Meal data as oref0-meal writes it after a clock error (no lastCarbTime) leave the
    reference without an eventual glucose: it sets a temp of NaN U/h and exits 0. The command
    refuses that, naming the field, instead of handing a script a null rate."""
    case = make_case(random.Random(2))
    assert case["meal"]["reason"] == "Could not parse clock data"
    files = _write(tmp_path, case)
    code, out = run(_args(files, case, "--json"))
    assert code == 2
    assert out["error"]["field"] == "decision.rate"
    assert "no eventual glucose" in out["error"]["rule"]
