"""The ``openinfusion`` command line: results, exit codes and error lines scripts rely on.

Exit codes: 0 ok, 2 bad input (one line naming the field, no traceback), 3 soft limit,
4 hard limit. Every library command gets ``-l FILE`` with the small test library so these
tests never depend on the shipped sample library.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from openinfusion.cli.main import app

from ..conftest import mini_data

runner = CliRunner()

DOPAMINE = ["--care-area", "Adult ICU", "--drug", "dopamine"]
DOPAMINE_70 = [*DOPAMINE, "-c", "400 mg/250 mL", "--weight", "70 kg"]
RATE_ARGS = ["dose", "rate", "--dose", "5 mcg/kg/min", "--concentration", "400 mg/250 mL"]
TODAY = ["--today", "2026-06-01"]


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    """Invoke the CLI in-process; a crash (anything but a clean exit) fails the test."""
    result = runner.invoke(app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception,
        result.output,
    )
    assert "Traceback" not in result.output
    return result


def run_json(*args: str, code: int = 0, env: dict[str, str] | None = None) -> Any:
    result = run(*args, "--json", env=env)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


def one_error_line(result: Result) -> str:
    """The single 'error: ...' line a failed command prints on stderr."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def _write(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp_path / name
    text = json.dumps(data, indent=1) if name.endswith(".json") else yaml.safe_dump(data)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def lib_yaml(tmp_path: Path) -> Path:
    return _write(tmp_path, "lib.yaml", mini_data())


@pytest.fixture
def lib_json(tmp_path: Path) -> Path:
    return _write(tmp_path, "lib.json", mini_data())


def _v2_data() -> dict[str, Any]:
    data = mini_data()
    data["version"] = "2026.2.0"
    data["entries"][0]["limits"]["dose"]["hard_max"] = 60
    return data


@pytest.fixture
def lib_v2(tmp_path: Path) -> Path:
    return _write(tmp_path, "lib-v2.yaml", _v2_data())


# ---- dose ------------------------------------------------------------------------------------


def test_dose_rate_json() -> None:
    """5 mcg/kg/min at 400 mg/250 mL for 70 kg is 13.125 mL/h."""
    out = run_json(*RATE_ARGS, "--weight", "70 kg")
    assert out["rate_ml_h"] == pytest.approx(13.125)
    assert out["dose"] == {"value": 5.0, "unit": "mcg/kg/min"}
    assert out["weight_kg"] == 70.0
    assert out["concentration"]["per_ml"] == pytest.approx(1.6)


def test_dose_rate_weight_in_pounds() -> None:
    """--weight '154 lb' is 69.85 kg, so the rate is a little under 13.125 mL/h."""
    out = run_json(*RATE_ARGS, "--weight", "154 lb")
    assert out["weight_kg"] == pytest.approx(69.853225)
    assert out["rate_ml_h"] == pytest.approx(13.125 * 69.85322498 / 70)


def test_dose_rate_human_output() -> None:
    """Without --json the rate is printed for a person, exit 0."""
    result = run(*RATE_ARGS, "--weight", "70 kg")
    assert result.exit_code == 0
    assert "13.125 mL/h" in result.stdout


def test_dose_from_rate_json() -> None:
    """13.125 mL/h back to the dose: 5 mcg/kg/min, with dose and dose_unit keys."""
    out = run_json(
        "dose", "from-rate", "--rate", "13.125 mL/h", "--dose-unit", "mcg/kg/min",
        "-c", "400 mg/250 mL", "--weight", "70 kg",
    )  # fmt: skip
    assert out["dose"] == pytest.approx(5.0)
    assert out["dose_unit"] == "mcg/kg/min"
    assert out["rate_ml_h"] == 13.125


def test_dose_missing_weight_exit_2_one_line() -> None:
    """A per-kg dose without --weight: exit 2, one stderr line naming weight, no traceback."""
    result = run(*RATE_ARGS)
    assert result.exit_code == 2
    assert "weight" in one_error_line(result)
    assert result.stdout == ""


@pytest.mark.parametrize("weight", ["70", "70 cm", "0.01 kg", "1e999 kg"])
def test_dose_bad_weight_exit_2(weight: str) -> None:
    """A bare, non-weight, implausible or infinite weight is refused with exit 2."""
    result = run(*RATE_ARGS, "--weight", weight)
    assert result.exit_code == 2
    assert "weight" in one_error_line(result)


@pytest.mark.parametrize(
    ("dose", "conc"),
    [("5 units/h", "400 mg/250 mL"), ("5 mg/h", "25000 units/250 mL"), ("5 mEq/h", "1 mmol/mL")],
)
def test_dose_mismatched_units_exit_2(dose: str, conc: str) -> None:
    """Mass, units, mEq and mmol never convert into each other: exit 2, naming concentration."""
    result = run("dose", "rate", "--dose", dose, "--concentration", conc)
    assert result.exit_code == 2
    assert "concentration" in one_error_line(result)


def test_dose_error_as_json_on_stdout() -> None:
    """With --json an error is {"error": {...}} on stdout (field, value, rule, message)."""
    out = run_json(*RATE_ARGS, code=2)
    assert out["error"]["field"] == "weight"
    assert set(out["error"]) >= {"field", "value", "rule", "message"}
    assert out["exit_code"] == 2


# ---- library validate / show ------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["lib_yaml", "lib_json"])
def test_library_validate_good_file(request: pytest.FixtureRequest, fixture: str) -> None:
    """A valid library validates (exit 0) from YAML and from JSON."""
    path: Path = request.getfixturevalue(fixture)
    out = run_json("library", "validate", str(path))
    assert out["valid"] is True
    assert out["name"] == "Test Hospital"
    assert out["entries"] == 5
    assert run("library", "validate", str(path)).exit_code == 0


def test_library_validate_broken_file_exit_2(tmp_path: Path) -> None:
    """A library with hard_min > soft_min: exit 2, the error names the field path."""
    data = mini_data()
    data["entries"][0]["limits"]["dose"]["hard_min"] = 3
    path = _write(tmp_path, "bad.yaml", data)
    result = run("library", "validate", str(path))
    assert result.exit_code == 2
    assert "entries[0].limits.dose" in result.stderr
    assert "hard_min 3 > soft_min 2" in result.stderr
    out = run_json("library", "validate", str(path), code=2)
    assert "entries[0].limits.dose" in out["error"]["field"]
    assert out["error"]["problems"]


@pytest.mark.parametrize(
    ("name", "raw", "text"),
    [
        ("trunc.json", b'{"name": "Test', "not valid JSON"),
        ("latin1.yaml", "name: Hôpital\n".encode("latin-1"), "not UTF-8"),
        ("dup.json", b'{"name": "a", "name": "b"}', "duplicate key"),
        ("empty.yaml", b"", "empty"),
    ],
)
def test_library_validate_malformed_file_exit_2(
    tmp_path: Path, name: str, raw: bytes, text: str
) -> None:
    """Malformed files: exit 2 with one line naming 'library' and the problem."""
    path = tmp_path / name
    path.write_bytes(raw)
    result = run("library", "validate", str(path))
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "library" in line
    assert text in line


def test_library_validate_missing_file_exit_2(tmp_path: Path) -> None:
    """A file that does not exist: exit 2, no traceback."""
    result = run("library", "validate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2


@pytest.mark.parametrize(
    "command",
    [
        ["library", "show", "-l", "{f}"],
        ["library", "check", *DOPAMINE_70, "--dose", "5 mcg/kg/min", "-l", "{f}"],
        ["library", "diff", "{f}", "{f}"],
    ],
    ids=["show", "check", "diff"],
)
@pytest.mark.parametrize(
    "raw",
    [
        '{"name": "Hôpital"}'.encode("latin-1"),
        b'{"format": "openinfusion-signed-library/1", "signed": "x"}',
        b'{"format": "openinfusion-signed-library/1", "signed": 5}',
    ],
    ids=["latin-1", "signed-is-text", "signed-is-number"],
)
def test_library_option_malformed_json_exit_2(
    tmp_path: Path, command: list[str], raw: bytes
) -> None:
    """B-07 via -l / diff: a malformed .json file is exit 2 with one line, not a traceback."""
    path = tmp_path / "bad.json"
    path.write_bytes(raw)
    result = run(*(arg.replace("{f}", str(path)) for arg in command))
    assert result.exit_code == 2
    assert "library" in one_error_line(result)


def test_library_show_entry_json(lib_yaml: Path) -> None:
    """show --drug gives the entry: dose_unit, concentrations and four dose bounds."""
    out = run_json("library", "show", *DOPAMINE, "-l", str(lib_yaml))
    assert out["dose_unit"] == "mcg/kg/min"
    assert out["concentrations"] == ["400 mg/250 mL", "800 mg/250 mL"]
    dose = out["limits"]["dose"]
    assert dose["hard_min"] is None
    assert (dose["soft_min"], dose["soft_max"], dose["hard_max"]) == (2, 20, 50)
    assert out["library"]["name"] == "Test Hospital"


def test_library_show_unknown_drug_exit_2(lib_yaml: Path) -> None:
    """show for a drug not in the library: exit 2 naming the drug."""
    out = run_json(
        "library", "show", "--care-area", "Adult ICU", "--drug", "propofol", "-l", str(lib_yaml),
        code=2,
    )  # fmt: skip
    assert out["error"]["field"] == "drug"


# ---- library check (DERS) -------------------------------------------------------------------


def _check(lib: Path, *args: str, code: int) -> Any:
    return run_json("library", "check", *args, "-l", str(lib), code=code)


def test_library_check_ok(lib_yaml: Path) -> None:
    """5 mcg/kg/min dopamine: verdict ok, exit 0, computed rate 13.125 mL/h."""
    out = _check(lib_yaml, *DOPAMINE_70, "--dose", "5 mcg/kg/min", code=0)
    assert out["verdict"] == "ok"
    assert out["accepted"] is True
    assert out["computed"]["rate_ml_h"] == pytest.approx(13.125)


def test_library_check_soft_exit_3(lib_yaml: Path) -> None:
    """30 mcg/kg/min is above the soft maximum 20: verdict soft, exit 3, not accepted."""
    out = _check(lib_yaml, *DOPAMINE_70, "--dose", "30 mcg/kg/min", code=3)
    assert out["verdict"] == "soft"
    assert out["accepted"] is False
    assert out["override"] is None


def test_library_check_soft_with_override_reason(lib_yaml: Path) -> None:
    """The same soft program with --override-reason: exit 0, accepted, reason recorded."""
    out = _check(
        lib_yaml, *DOPAMINE_70, "--dose", "30 mcg/kg/min",
        "--override-reason", "refractory shock, per attending", code=0,
    )  # fmt: skip
    assert out["verdict"] == "soft"
    assert out["accepted"] is True
    assert out["override"] == {"reason": "refractory shock, per attending"}


def test_library_check_blank_override_reason_is_no_reason(lib_yaml: Path) -> None:
    """A blank --override-reason does not accept a soft verdict."""
    out = _check(
        lib_yaml, *DOPAMINE_70, "--dose", "30 mcg/kg/min", "--override-reason", "   ", code=3
    )
    assert out["accepted"] is False


def test_library_check_hard_exit_4(lib_yaml: Path) -> None:
    """60 mcg/kg/min is above the hard maximum 50: exit 4, even with an override reason."""
    out = _check(lib_yaml, *DOPAMINE_70, "--dose", "60 mcg/kg/min", code=4)
    assert out["verdict"] == "hard"
    out = _check(
        lib_yaml, *DOPAMINE_70, "--dose", "60 mcg/kg/min", "--override-reason", "x", code=4
    )
    assert out["accepted"] is False


def test_library_check_tenfold_rate_exit_4(lib_yaml: Path, lib_json: Path) -> None:
    """Dose 5 with rate 131.25 mL/h (10x): hard, '10-fold' in a finding (YAML and JSON file)."""
    for lib in (lib_yaml, lib_json):
        out = _check(lib, *DOPAMINE_70, "--dose", "5 mcg/kg/min", "--rate", "131.25 mL/h", code=4)
        assert any("10-fold" in f["message"] for f in out["findings"])


def test_library_check_unknown_drug(lib_yaml: Path) -> None:
    """A drug not in the library is a basic infusion: verdict unknown, exit 3 in Adult ICU."""
    out = _check(lib_yaml, "--care-area", "Adult ICU", "--drug", "propofol", code=3)
    assert out["verdict"] == "unknown"
    assert out["accepted"] is False


def test_library_check_unknown_drug_where_basic_infusion_forbidden(lib_yaml: Path) -> None:
    """In NICU (basic infusions not allowed) an unknown drug is blocked: exit 4."""
    out = _check(lib_yaml, "--care-area", "NICU", "--drug", "propofol", "--rate", "2 mL/h", code=4)
    assert out["verdict"] == "unknown"


def test_library_check_missing_weight_exit_2(lib_yaml: Path) -> None:
    """A per-kg dose checked without a weight: exit 2 naming weight."""
    out = _check(lib_yaml, *DOPAMINE, "-c", "400 mg/250 mL", "--dose", "5 mcg/kg/min", code=2)
    assert out["error"]["field"] == "weight"


@pytest.mark.parametrize("rate", ["0 mL/h", "-5 mL/h", "nan mL/h", "5"])
def test_library_check_bad_rate_exit_2(lib_yaml: Path, rate: str) -> None:
    """Zero, negative, NaN or unitless rates are refused with exit 2 (never clamped)."""
    result = run("library", "check", *DOPAMINE_70, "--rate", rate, "-l", str(lib_yaml))
    assert result.exit_code == 2
    assert "rate" in one_error_line(result)


# ---- keys, signing, verification --------------------------------------------------------------


def _keygen(tmp_path: Path, name: str = "pharmacy") -> dict[str, Any]:
    keys = tmp_path / "keys"
    return run_json("library", "keygen", "--out", str(keys), "--name", name)


def _sign(lib: Path, key: str, out: Path) -> dict[str, Any]:
    return run_json(
        "library", "sign", str(lib), "--key", key, "--signer", "A. Pharmacist", "--out", str(out)
    )


def test_library_keygen_files(tmp_path: Path) -> None:
    """keygen writes NAME.key (mode 600) and NAME.pub and reports the key id."""
    out = _keygen(tmp_path)
    private = Path(out["private_key"])
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert Path(out["public_key"]).read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert len(out["key_id"]) == 16
    assert out["encrypted"] is False


def test_library_keygen_never_overwrites(tmp_path: Path) -> None:
    """A second keygen with the same name is refused (exit 2); the first key is untouched."""
    first = _keygen(tmp_path)
    before = Path(first["private_key"]).read_bytes()
    result = run("library", "keygen", "--out", str(tmp_path / "keys"), "--name", "pharmacy")
    assert result.exit_code == 2
    assert "already exists" in one_error_line(result)
    assert Path(first["private_key"]).read_bytes() == before


def test_library_sign_verify_roundtrip(tmp_path: Path, lib_yaml: Path) -> None:
    """keygen, sign, verify: exit 0 and the verified name, version and key id."""
    keys = _keygen(tmp_path)
    package = tmp_path / "lib.signed.json"
    signed = _sign(lib_yaml, keys["private_key"], package)
    assert signed["version"] == "2026.1.0"
    out = run_json("library", "verify", str(package), "-t", keys["public_key"], *TODAY)
    assert out["verified"] is True
    assert out["key_id"] == keys["key_id"] == signed["key_id"]
    assert out["sha256"] == signed["sha256"]
    assert out["signer"] == "A. Pharmacist"
    # A directory of trusted .pub files works too, and the package is usable by check.
    assert (
        run("library", "verify", str(package), "-t", str(tmp_path / "keys"), *TODAY).exit_code == 0
    )
    _check(package, *DOPAMINE_70, "--dose", "5 mcg/kg/min", code=0)


def test_library_encrypted_key_needs_passphrase(tmp_path: Path, lib_yaml: Path) -> None:
    """keygen --passphrase-env encrypts; sign without the passphrase is refused (exit 2)."""
    env = {"OI_TEST_PASSPHRASE": "correct horse"}
    keys = run_json(
        "library", "keygen", "--out", str(tmp_path / "k"), "--passphrase-env",
        "OI_TEST_PASSPHRASE", env=env,
    )  # fmt: skip
    assert keys["encrypted"] is True
    package = tmp_path / "p.json"
    base = ["library", "sign", str(lib_yaml), "--key", keys["private_key"], "--signer", "A. P"]
    result = run(*base, "--out", str(package))
    assert result.exit_code == 2
    assert "private_key" in one_error_line(result)
    assert not package.exists()
    wrong = run(*base, "--out", str(package), "--passphrase-env", "OI_TEST_PASSPHRASE",
                env={"OI_TEST_PASSPHRASE": "wrong"})  # fmt: skip
    assert wrong.exit_code == 2
    ok = run(*base, "--out", str(package), "--passphrase-env", "OI_TEST_PASSPHRASE", env=env)
    assert ok.exit_code == 0


def test_library_verify_tampered_exit_2(tmp_path: Path, lib_yaml: Path) -> None:
    """A package whose hard_max was edited after signing: verify exits 2 (one line)."""
    keys = _keygen(tmp_path)
    package = tmp_path / "lib.signed.json"
    _sign(lib_yaml, keys["private_key"], package)
    raw = package.read_bytes()
    tampered = raw.replace(b'"hard_max": 50.0', b'"hard_max": 500.0', 1)
    assert tampered != raw
    package.write_bytes(tampered)
    result = run("library", "verify", str(package), "-t", keys["public_key"], *TODAY)
    assert result.exit_code == 2
    assert "package.signature" in one_error_line(result)
    out = run_json("library", "verify", str(package), "-t", keys["public_key"], *TODAY, code=2)
    assert "changed after signing" in out["error"]["rule"]


def test_library_verify_untrusted_key_exit_2(tmp_path: Path, lib_yaml: Path) -> None:
    """A package signed by a key that is not in --trusted-key: exit 2."""
    pharmacy = _keygen(tmp_path, "pharmacy")
    other = _keygen(tmp_path, "other")
    package = tmp_path / "lib.signed.json"
    _sign(lib_yaml, other["private_key"], package)
    out = run_json("library", "verify", str(package), "-t", pharmacy["public_key"], *TODAY, code=2)
    assert out["error"]["field"] == "package.signature.key_id"


def test_library_verify_plain_library_exit_2(tmp_path: Path, lib_json: Path) -> None:
    """A plain (unsigned) library file given to verify: exit 2."""
    keys = _keygen(tmp_path)
    result = run("library", "verify", str(lib_json), "-t", keys["public_key"], *TODAY)
    assert result.exit_code == 2


def test_library_verify_rollback_exit_2(tmp_path: Path, lib_yaml: Path, lib_v2: Path) -> None:
    """With --installed v2, verifying the older v1 package is a rollback: exit 2."""
    keys = _keygen(tmp_path)
    v1, v2 = tmp_path / "v1.json", tmp_path / "v2.json"
    _sign(lib_yaml, keys["private_key"], v1)
    _sign(lib_v2, keys["private_key"], v2)
    pub = keys["public_key"]
    out = run_json("library", "verify", str(v1), "-t", pub, "--installed", str(v2), *TODAY, code=2)
    assert out["error"]["field"] == "version"
    assert "rollback" in out["error"]["rule"]
    upgrade = run_json("library", "verify", str(v2), "-t", pub, "--installed", str(v1), *TODAY)
    assert upgrade["version"] == "2026.2.0"


def test_library_verify_future_effective_date_exit_2(tmp_path: Path, lib_yaml: Path) -> None:
    """A library effective 2026-01-01 verified with --today 2025-12-31: exit 2."""
    keys = _keygen(tmp_path)
    package = tmp_path / "p.json"
    _sign(lib_yaml, keys["private_key"], package)
    out = run_json(
        "library", "verify", str(package), "-t", keys["public_key"], "--today", "2025-12-31",
        code=2,
    )  # fmt: skip
    assert out["error"]["field"] == "effective_date"


# ---- diff ---------------------------------------------------------------------------------------


def test_library_diff_lists_changed_hard_max(lib_yaml: Path, lib_v2: Path) -> None:
    """diff A B --json lists dopamine's limits.dose.hard_max 50 -> 60 and the version."""
    out = run_json("library", "diff", str(lib_yaml), str(lib_v2))
    assert out["identical"] is False
    assert (out["old_version"], out["new_version"]) == ("2026.1.0", "2026.2.0")
    changed = {c["key"]: c["changes"] for c in out["entries"]["changed"]}
    assert list(changed) == ["adult-icu/dopamine"]
    assert {"path": "limits.dose.hard_max", "old": 50.0, "new": 60.0} in changed[
        "adult-icu/dopamine"
    ]


def test_library_diff_identical(lib_yaml: Path, lib_json: Path) -> None:
    """The same library as YAML and as JSON has no differences."""
    out = run_json("library", "diff", str(lib_yaml), str(lib_json))
    assert out["identical"] is True


@pytest.mark.parametrize("command", ["show", "diff"])
def test_library_option_oversized_package_exit_2(
    tmp_path: Path, lib_yaml: Path, command: str
) -> None:
    """B-10 via -l / diff: a signed package over MAX_FILE_BYTES is refused, as verify does."""
    from openinfusion.library.loading import MAX_FILE_BYTES

    keys = _keygen(tmp_path)
    package = tmp_path / "big.json"
    _sign(lib_yaml, keys["private_key"], package)
    raw = package.read_bytes()
    package.write_bytes(raw + b" " * (MAX_FILE_BYTES + 1 - len(raw)))
    verify = run("library", "verify", str(package), "-t", keys["public_key"], *TODAY)
    assert verify.exit_code == 2  # the pump path refuses it
    args = (
        ["show", "-l", str(package)] if command == "show" else ["diff", str(package), str(lib_yaml)]
    )
    result = run("library", *args)
    assert result.exit_code == 2
    assert "limit" in one_error_line(result)


# ---- a real process ---------------------------------------------------------------------------


def _console_script() -> Path:
    script = Path(sys.prefix) / "bin" / "openinfusion"
    if not script.exists():
        script = Path(sys.executable).parent / "openinfusion"
    assert script.exists(), f"console script not installed next to {sys.executable}"
    return script


def test_console_script_subprocess(lib_yaml: Path) -> None:
    """The installed ``openinfusion`` script: a JSON result, and an error with exit 2."""
    script = str(_console_script())
    env = {k: v for k, v in os.environ.items() if k != "OPENINFUSION_LIBRARY"}
    ok = subprocess.run(
        [script, *RATE_ARGS, "--weight", "70 kg", "--json"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["rate_ml_h"] == pytest.approx(13.125)

    bad = subprocess.run(
        [script, *RATE_ARGS], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "weight" in bad.stderr

    soft = subprocess.run(
        [script, "library", "check", *DOPAMINE_70, "--dose", "30 mcg/kg/min", "-l", str(lib_yaml)],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert soft.returncode == 3, soft.stderr
    assert "SOFT" in soft.stdout
