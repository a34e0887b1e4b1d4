"""RELIABILITY rows B-07 to B-13: bad library files, bad limits, bad versions, bad programs.

Each test names its row. A bad library is rejected whole with an error naming the field; a
bad program value is refused, never clamped; a crossed limit is graded, never ignored.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from openinfusion.errors import InputError, InputErrors
from openinfusion.library import (
    HardLimitError,
    Level,
    Library,
    Program,
    SignatureRejected,
    SoftLimitError,
    check,
    loading,
    package_bytes,
    sign_library,
    verify_package,
)
from openinfusion.library.loading import library_from_data, load_library, load_library_bytes
from openinfusion.patient import Patient
from openinfusion.security import generate_private_key
from openinfusion.units import (
    Dose,
    Kind,
    dose_to_rate_ml_h,
    parse_concentration,
    parse_dose,
    parse_dose_unit,
    parse_quantity,
)

from ..conftest import mini_data

Data = dict[str, Any]

ADULT_ICU = "Adult ICU"
DOPAMINE_CONC = "400 mg/250 mL"  # 1.6 mg/mL
MCG_KG_MIN = parse_dose_unit("mcg/kg/min")
PATIENT_70 = Patient(weight_kg=70.0)
_MINI = library_from_data(mini_data())  # read-only; for hypothesis tests (no fixtures)


def _rejected(data: Any) -> InputError:
    """Validate ``data``; it must be refused with an InputError (and nothing returned)."""
    with pytest.raises(InputError) as info:
        library_from_data(data)
    return info.value


def _mutated(mutate: Callable[[Data], None]) -> Data:
    data = mini_data()
    mutate(data)
    return data


def _all_text(error: InputError) -> str:
    """Every field and rule of an error (all problems of an InputErrors)."""
    problems = error.problems if isinstance(error, InputErrors) else [error]
    return " | ".join(f"{p.field}: {p.rule} ({p.value!r})" for p in problems)


def _dopamine(lib: Library, area: str = ADULT_ICU) -> Any:
    entry = lib.find(area, "dopamine")
    assert entry is not None
    return entry


def _dopamine_program(dose: float, rate: float | None = None) -> Program:
    return Program(
        dose=Dose(dose, MCG_KG_MIN),
        rate_ml_h=rate,
        concentration=parse_concentration(DOPAMINE_CONC),
    )


# ---- B-07 malformed library file ------------------------------------------------------------

_GOOD_JSON = json.dumps(mini_data(), indent=1).encode()
_GOOD_YAML = yaml.safe_dump(mini_data(), sort_keys=False).encode()


def _with_unknown_unit() -> bytes:
    return json.dumps(
        _mutated(lambda d: d["entries"][0].update(dose_unit="mcg/kg/fortnight"))
    ).encode()


def _with_unknown_conc_unit() -> bytes:
    return json.dumps(
        _mutated(lambda d: d["entries"][0].update(concentrations=["400 grains/250 mL"]))
    ).encode()


def _missing_name() -> bytes:
    return json.dumps(_mutated(lambda d: d.pop("name"))).encode()


def _bad_enum() -> bytes:
    return yaml.safe_dump(_mutated(lambda d: d["entries"][0].update(infusion_type="drip"))).encode()


def _yaml_inf_limit() -> bytes:
    text = yaml.safe_dump(mini_data(), sort_keys=False)
    return text.replace("hard_max: 50", "hard_max: .inf", 1).encode()


def _duplicate_drug() -> bytes:
    return json.dumps(_mutated(lambda d: d["entries"].append(dict(d["entries"][0])))).encode()


# fmt: off
MALFORMED: list[tuple[str, bytes, str, str, str]] = [
    # (case, bytes, format, text the field must contain, text the rule must contain)
    ("truncated-json", _GOOD_JSON[: len(_GOOD_JSON) // 2], "json", "library", "not valid JSON"),
    ("truncated-yaml", _GOOD_YAML[: len(_GOOD_YAML) // 3], "yaml", "", ""),
    ("trailing-comma", b'{"name": "x",}', "json", "library", "not valid JSON"),
    ("single-quotes", b"{'name': 'x'}", "json", "library", "not valid JSON"),
    ("latin-1", '{"name": "Hôpital"}'.encode("latin-1"), "json", "library", "not UTF-8"),
    ("latin-1-yaml", "name: Hôpital\n".encode("latin-1"), "yaml", "library", "not UTF-8"),
    ("utf-16", _GOOD_JSON.decode().encode("utf-16"), "json", "library", "not UTF-8"),
    ("empty", b"", "json", "library", "empty"),
    ("blank", b"  \n\t\n", "yaml", "library", "empty"),
    ("top-level-list-json", b"[1, 2]", "json", "library", "mapping at the top level"),
    ("top-level-list-yaml", b"- a\n- b\n", "yaml", "library", "mapping at the top level"),
    ("top-level-scalar", b"42", "json", "library", "mapping at the top level"),
    ("dup-key-json", b'{"name": "a", "name": "b"}', "json", "library", "duplicate key"),
    ("dup-key-yaml", b"name: a\nversion: '1'\nname: b\n", "yaml", "library", "duplicate key"),
    ("nan-json", b'{"name": NaN}', "json", "library", "NaN"),
    ("infinity-json", b'{"name": -Infinity}', "json", "library", "NaN and Infinity"),
    ("unknown-unit", _with_unknown_unit(), "json", "entries[0]", "dose_unit"),
    ("unknown-conc-unit", _with_unknown_conc_unit(), "json", "entries[0].concentrations",
     "unknown unit"),
    ("missing-field", _missing_name(), "json", "name", "required"),
    ("bad-enum", _bad_enum(), "yaml", "entries[0].infusion_type", "continuous"),
    ("duplicate-drug", _duplicate_drug(), "json", "library", "appears twice"),
    ("yaml-python-tag", b"name: !!python/object/apply:os.getcwd []\n", "yaml", "library",
     "not valid YAML"),
    ("yaml-inf-limit", _yaml_inf_limit(), "yaml", "entries[0].limits.dose.hard_max", "finite"),
]
# fmt: on


@pytest.mark.parametrize(
    ("raw", "fmt", "field", "rule"),
    [pytest.param(raw, fmt, field, rule, id=case) for case, raw, fmt, field, rule in MALFORMED],
)
def test_b07_malformed_library_rejected_whole(raw: bytes, fmt: str, field: str, rule: str) -> None:
    """B-07: a malformed file is refused with an InputError naming the field, nothing loaded."""
    with pytest.raises(InputError) as info:
        load_library_bytes(raw, fmt, "upload")
    error = info.value
    assert error.exit_code == 2
    assert error.field, "the error must name a field"
    if field:
        text = _all_text(error)
        assert field in text, text
        assert rule in text, text


@pytest.mark.parametrize(
    ("name", "raw", "rule"),
    [
        ("lib.json", _GOOD_JSON[:-10], "not valid JSON"),
        ("lib.yaml", b"name: [unclosed\n", "not valid YAML"),
        ("lib.json", b"\xff\xfe{}", "not UTF-8"),
        ("lib.yml", b"", "empty"),
        ("lib.json", b'{"care_areas": [], "care_areas": []}', "duplicate key"),
    ],
)
def test_b07_malformed_library_file_on_disk(
    tmp_path: Path, name: str, raw: bytes, rule: str
) -> None:
    """B-07: load_library on a broken file raises InputError naming 'library' and the rule."""
    path = tmp_path / name
    path.write_bytes(raw)
    with pytest.raises(InputError) as info:
        load_library(path)
    assert info.value.field == "library"
    assert rule in info.value.rule


def test_b07_good_files_in_both_formats_load(tmp_path: Path) -> None:
    """B-07 control: the unbroken library loads from JSON and from YAML to the same result."""
    (tmp_path / "lib.json").write_bytes(_GOOD_JSON)
    (tmp_path / "lib.yaml").write_bytes(_GOOD_YAML)
    assert load_library(tmp_path / "lib.json") == load_library(tmp_path / "lib.yaml")


def test_b07_one_bad_entry_rejects_the_whole_library() -> None:
    """B-07: a single bad entry among good ones rejects everything; every problem is listed."""

    def two_bad(d: Data) -> None:
        d["entries"][1]["dose_unit"] = "units/kg/fortnight"
        d["entries"][4]["concentrations"] = ["800 parsecs/mL"]

    error = _rejected(_mutated(two_bad))
    assert isinstance(error, InputErrors)
    fields = [p.field for p in error.problems]
    assert any(f.startswith("entries[1]") for f in fields), fields
    assert any(f.startswith("entries[4]") for f in fields), fields


# ---- B-08 semantically inconsistent library -------------------------------------------------


def _dose_limits(**limits: Any) -> Callable[[Data], None]:
    def mutate(d: Data) -> None:
        d["entries"][0]["limits"]["dose"] = limits

    return mutate


# fmt: off
INCONSISTENT: list[tuple[str, Callable[[Data], None], str, str]] = [
    # (case, mutation, text in the field, text in the rule)
    ("hard_min>soft_min", _dose_limits(hard_min=3, soft_min=2, soft_max=20, hard_max=50),
     "entries[0].limits.dose", "hard_min 3 > soft_min 2"),
    ("soft_max>hard_max", _dose_limits(soft_min=2, soft_max=60, hard_max=50),
     "entries[0].limits.dose", "soft_max 60 > hard_max 50"),
    ("soft_min>soft_max", _dose_limits(soft_min=30, soft_max=20, hard_max=50),
     "entries[0].limits.dose", "soft_min 30 > soft_max 20"),
    ("hard_min>hard_max", _dose_limits(hard_min=60, hard_max=50),
     "entries[0].limits.dose", "hard_min 60 > hard_max 50"),
    ("nan", _dose_limits(soft_max=math.nan, hard_max=50),
     "entries[0].limits.dose.soft_max", "finite"),
    ("infinity", _dose_limits(soft_max=20, hard_max=math.inf),
     "entries[0].limits.dose.hard_max", "finite"),
    ("negative", _dose_limits(hard_min=-1, hard_max=50),
     "entries[0].limits.dose.hard_min", "greater than or equal to 0"),
    ("negative-weight", lambda d: d["care_areas"][0]["weight_kg"].update(hard_min=-30),
     "care_areas[0].weight_kg.hard_min", "greater than or equal to 0"),
    ("zero-concentration", lambda d: d["entries"][0].update(concentrations=["0 mg/250 mL"]),
     "entries[0].concentrations", "greater than zero"),
    ("zero-volume", lambda d: d["entries"][0].update(concentrations=["400 mg/0 mL"]),
     "entries[0].concentrations", "greater than zero"),
    ("mg-conc-units-dose", lambda d: d["entries"][1].update(concentrations=["25000 mg/250 mL"]),
     "entries[1]", "units must be consistent"),
    ("units-dose-mg-conc", lambda d: d["entries"][0].update(dose_unit="units/kg/min"),
     "entries[0]", "units must be consistent"),
    ("bolus-unit-is-a-rate", lambda d: d["entries"][1]["limits"]["bolus"].update(unit="units/h"),
     "entries[1]", "must be a single dose"),
    ("bolus-unit-per-kg-rate",
     lambda d: d["entries"][1]["limits"]["bolus"].update(unit="units/kg/h"),
     "entries[1]", "must be a single dose"),
    ("bolus-unit-other-dimension",
     lambda d: d["entries"][1]["limits"]["bolus"].update(unit="mg/kg"),
     "entries[1]", "is not in units"),
    ("high-alert-no-hard-max", _dose_limits(soft_min=2, soft_max=20),
     "entries[0]", "high-alert drug must have a hard maximum"),
    ("high-alert-pca-no-demand-max",
     lambda d: d["entries"][3]["pca"]["demand"].pop("hard_max"),
     "entries[3]", "high-alert drug must have a hard maximum"),
    ("hard-limit-as-string", _dose_limits(soft_max=20, hard_max="50"),
     "entries[0].limits.dose.hard_max", "valid number"),
    ("hard-limit-as-bool", _dose_limits(soft_max=20, hard_max=True),
     "entries[0].limits.dose.hard_max", "valid number"),
]
# fmt: on


@pytest.mark.parametrize(
    ("mutate", "field", "rule"),
    [pytest.param(m, f, r, id=case) for case, m, f, r in INCONSISTENT],
)
def test_b08_inconsistent_library_rejected(
    mutate: Callable[[Data], None], field: str, rule: str
) -> None:
    """B-08: inconsistent limits or units reject the library, naming the field and the rule."""
    error = _rejected(_mutated(mutate))
    text = _all_text(error)
    assert field in text, text
    assert rule in text, text


def test_b08_mcg_dose_with_mg_concentration_is_consistent() -> None:
    """B-08 control: mcg vs mg is the same dimension and converts exactly (not a mismatch)."""
    lib = library_from_data(mini_data())
    assert _dopamine(lib).dose_unit == "mcg/kg/min"
    assert _dopamine(lib).concentrations[0] == DOPAMINE_CONC


_limit = st.one_of(
    st.integers(min_value=0, max_value=10_000),
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=150, deadline=None)
@given(st.tuples(_limit, _limit, _limit, _limit))
def test_b08_property_four_bounds_accepted_iff_ordered(
    bounds: tuple[float, float, float, float],
) -> None:
    """B-08 property: any 4 finite non-negative bounds are accepted iff they are ordered."""
    hard_min, soft_min, soft_max, hard_max = bounds
    data = mini_data()
    data["entries"][0]["limits"]["dose"] = dict(
        hard_min=hard_min, soft_min=soft_min, soft_max=soft_max, hard_max=hard_max
    )
    ordered = hard_min <= soft_min <= soft_max <= hard_max
    if ordered:
        lib = library_from_data(data)
        dose = _dopamine(lib).limits.dose
        assert (dose.hard_min, dose.soft_min, dose.soft_max, dose.hard_max) == bounds
    else:
        error = _rejected(data)
        assert "entries[0].limits.dose" in _all_text(error)
        assert "hard_min <= soft_min <= soft_max <= hard_max" in _all_text(error)


# ---- B-09 library version anomalies ---------------------------------------------------------

_KEY = generate_private_key()
_TRUSTED = [_KEY.public_key()]
_SIGNED_AT = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def _package(
    version: str = "2026.1.0",
    effective: str = "2026-01-01",
    mutate: Callable[[Data], None] | None = None,
    signer: str = "A. Pharmacist",
) -> bytes:
    data = mini_data()
    data["version"] = version
    data["effective_date"] = effective
    if mutate is not None:
        mutate(data)
    package = sign_library(library_from_data(data), _KEY, signer, _SIGNED_AT)
    return package_bytes(package)


def _installed(version: str = "2026.2.0") -> Any:
    return verify_package(_package(version), _TRUSTED)


def test_b09_rollback_to_older_version_rejected() -> None:
    """B-09: a validly signed but older version than the installed one is refused."""
    with pytest.raises(SignatureRejected) as info:
        verify_package(_package("2026.1.0"), _TRUSTED, installed=_installed("2026.2.0"))
    assert info.value.field == "version"
    assert "rollback" in info.value.rule


def test_b09_versions_compare_as_numbers_not_text() -> None:
    """B-09: 2026.9 -> 2026.10 is an upgrade; 2026.10 -> 2026.9 is a rollback."""
    upgraded = verify_package(_package("2026.10.0"), _TRUSTED, installed=_installed("2026.9.0"))
    assert upgraded.library.version == "2026.10.0"
    with pytest.raises(SignatureRejected, match="rollback"):
        verify_package(_package("2026.9.0"), _TRUSTED, installed=_installed("2026.10.0"))


def test_b09_same_version_different_content_rejected() -> None:
    """B-09: the installed version number with other content is refused."""

    def raise_max(d: Data) -> None:
        d["entries"][0]["limits"]["dose"]["hard_max"] = 60

    with pytest.raises(SignatureRejected) as info:
        verify_package(
            _package("2026.2.0", mutate=raise_max), _TRUSTED, installed=_installed("2026.2.0")
        )
    assert info.value.field == "version"
    assert "different content" in info.value.rule


def test_b09_same_version_same_content_accepted() -> None:
    """B-09: re-delivering the installed library (even re-signed by someone else) is fine."""
    installed = _installed("2026.2.0")
    again = verify_package(
        _package("2026.2.0", signer="B. Pharmacist"), _TRUSTED, installed=installed
    )
    assert again.sha256 == installed.sha256
    assert again.library == installed.library


def test_b09_upgrade_accepted() -> None:
    """B-09 control: a newer version is accepted over the installed one."""
    new = verify_package(_package("2026.3.0"), _TRUSTED, installed=_installed("2026.2.0"))
    assert new.library.version == "2026.3.0"


def test_b09_future_effective_date_rejected() -> None:
    """B-09: a library not yet in effect on ``today`` is refused; on its date it is accepted."""
    raw = _package("2026.3.0", effective="2026-03-01")
    with pytest.raises(SignatureRejected) as info:
        verify_package(raw, _TRUSTED, today=date(2026, 2, 28))
    assert info.value.field == "effective_date"
    assert "not yet in effect" in info.value.rule
    assert verify_package(raw, _TRUSTED, today=date(2026, 3, 1)).library.version == "2026.3.0"


def test_b09_other_library_name_rejected_as_upgrade() -> None:
    """B-09: a package for another hospital's library never replaces the installed one."""
    raw = _package("2026.3.0", mutate=lambda d: d.update(name="Other Hospital"))
    with pytest.raises(SignatureRejected) as info:
        verify_package(raw, _TRUSTED, installed=_installed("2026.2.0"))
    assert info.value.field == "name"


# ---- B-10 library over device limits --------------------------------------------------------


def test_b10_too_many_entries_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """B-10: one entry over MAX_ENTRIES rejects the library; exactly MAX_ENTRIES loads whole."""
    data = mini_data()
    count = len(data["entries"])
    monkeypatch.setattr(loading, "MAX_ENTRIES", count)
    assert len(library_from_data(data).entries) == count  # at the limit: all of it, not part
    monkeypatch.setattr(loading, "MAX_ENTRIES", count - 1)
    error = _rejected(data)
    assert error.field == "entries"
    assert "device limit" in error.rule


def test_b10_entry_count_checked_before_anything_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """B-10: an oversized library is refused for its size even if later entries are junk."""
    monkeypatch.setattr(loading, "MAX_ENTRIES", 2)
    data = mini_data()
    data["entries"].append({"junk": True})
    error = _rejected(data)
    assert error.field == "entries"
    assert not isinstance(error, InputErrors)


def test_b10_too_many_care_areas_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """B-10: more care areas than MAX_CARE_AREAS are refused."""
    monkeypatch.setattr(loading, "MAX_CARE_AREAS", 1)
    error = _rejected(mini_data())
    assert error.field == "care_areas"
    assert "device limit" in error.rule


def test_b10_file_over_byte_limit_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """B-10: a file one byte over MAX_FILE_BYTES is refused from disk and from bytes."""
    path = tmp_path / "lib.json"
    path.write_bytes(_GOOD_JSON)
    monkeypatch.setattr(loading, "MAX_FILE_BYTES", len(_GOOD_JSON))
    assert load_library(path).name == "Test Hospital"
    monkeypatch.setattr(loading, "MAX_FILE_BYTES", len(_GOOD_JSON) - 1)
    for attempt in (lambda: load_library(path), lambda: load_library_bytes(_GOOD_JSON, "json")):
        with pytest.raises(InputError) as info:
            attempt()
        assert info.value.field == "library"
        assert "limit" in info.value.rule


# ---- B-11 out-of-range rate, VTBI, duration, dose --------------------------------------------

NUMBER_FIELDS = ("rate_ml_h", "vtbi_ml", "duration_min")
DOSE_FIELDS = ("dose", "bolus", "loading")

BAD_NUMBERS: list[Any] = [
    0,
    0.0,
    -0.0,
    -1,
    -1e-300,
    -sys.float_info.min,
    -sys.maxsize,
    math.nan,
    -math.nan,
    math.inf,
    -math.inf,
    "5",
    "5 mL/h",
    "",
    True,
    False,
    Decimal("5"),
    Decimal("NaN"),
    Decimal("-0"),
    [5.0],
    5 + 0j,
]

_bad_values = st.one_of(
    st.floats(max_value=0.0),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.integers(max_value=0),
    st.text(max_size=8),
    st.booleans(),
    st.decimals(),
)


@pytest.mark.parametrize("name", NUMBER_FIELDS + DOSE_FIELDS)
@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
def test_b11_bad_program_values_refused(name: str, value: Any) -> None:
    """B-11: 0, negatives, -0, NaN, inf, text, bools, Decimals are refused, naming the field."""
    kwargs: dict[str, Any] = (
        {name: Dose(value, MCG_KG_MIN)} if name in DOSE_FIELDS else {name: value}
    )
    with pytest.raises(InputError) as info:
        Program(**kwargs)
    assert info.value.field == name


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(NUMBER_FIELDS + DOSE_FIELDS), value=_bad_values)
def test_b11_property_bad_values_never_accepted(name: str, value: Any) -> None:
    """B-11 property: over the whole non-positive / non-finite / non-number domain, refused."""
    kwargs: dict[str, Any] = (
        {name: Dose(value, MCG_KG_MIN)} if name in DOSE_FIELDS else {name: value}
    )
    with pytest.raises(InputError) as info:
        Program(**kwargs)
    assert info.value.field == name


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(NUMBER_FIELDS),
    value=st.one_of(
        st.floats(min_value=0.0, exclude_min=True, allow_infinity=False),
        st.integers(min_value=1, max_value=sys.maxsize),
    ),
)
def test_b11_property_positive_values_kept_exactly(name: str, value: float) -> None:
    """B-11 property: a finite positive value is kept as typed (never clamped or rounded)."""
    program = Program(**{name: value})
    stored = getattr(program, name)
    assert stored == value or (isinstance(value, int) and stored == float(value))


@pytest.mark.parametrize(
    "text",
    ["0 mL/h", "-0 mL/h", "-5 mL/h", "nan mL/h", "inf mL/h", "1e999 mL/h", "5", "5,0 mL/h"],
)
def test_b11_bad_rate_text_refused_at_parse_or_program(text: str) -> None:
    """B-11: rate text that is zero, negative, not finite or unitless never makes a Program."""
    with pytest.raises(InputError):
        Program(rate_ml_h=parse_quantity(text, Kind.FLOW, "rate_ml_h"))


@pytest.mark.parametrize(
    ("dose", "level", "bound"),
    [
        (5.0, Level.OK, None),
        (20.0, Level.OK, None),  # exactly at the soft maximum
        (30.0, Level.SOFT, "soft_max"),
        (50.0, Level.SOFT, "soft_max"),  # exactly at the hard maximum
        (51.0, Level.HARD, "hard_max"),
        (1.0, Level.SOFT, "soft_min"),
        (1e300, Level.HARD, "hard_max"),
        (sys.float_info.max, Level.HARD, "hard_max"),
    ],
)
def test_b11_dose_graded_not_clamped(
    mini_library: Library, dose: float, level: Level, bound: str | None
) -> None:
    """B-11: above hard -> HARD, above soft -> SOFT; the finding shows the value as typed."""
    area = mini_library.care_area(ADULT_ICU)
    verdict = check(_dopamine_program(dose), _dopamine(mini_library), PATIENT_70, area)
    assert verdict.level is level
    finding = next(f for f in verdict.findings if f.parameter == "dose")
    assert finding.value == dose
    assert finding.bound == bound


def test_b11_soft_needs_a_reason_hard_cannot_be_overridden(mini_library: Library) -> None:
    """B-11: a soft verdict needs accept(override_reason=...); a hard one never starts."""
    area = mini_library.care_area(ADULT_ICU)
    entry = _dopamine(mini_library)
    soft = check(_dopamine_program(30.0), entry, PATIENT_70, area)
    for reason in (None, "", "   "):
        with pytest.raises(SoftLimitError) as info:
            soft.accept(override_reason=reason)
        assert info.value.exit_code == 3
    override = soft.accept(override_reason="septic shock, per ICU attending", clinician="rn1")
    assert override is not None
    assert override.reason == "septic shock, per ICU attending"
    assert [f.bound for f in override.findings] == ["soft_max"]

    hard = check(_dopamine_program(60.0), entry, PATIENT_70, area)
    with pytest.raises(HardLimitError) as hard_info:
        hard.accept(override_reason="please")
    assert hard_info.value.exit_code == 4
    assert check(_dopamine_program(5.0), entry, PATIENT_70, area).accept() is None


def test_b11_vtbi_and_duration_limits(mini_library: Library) -> None:
    """B-11: VTBI over the care-area maximum is HARD; a too-short duration is SOFT or HARD."""
    area = mini_library.care_area(ADULT_ICU)
    vanco = mini_library.find(ADULT_ICU, "vancomycin")
    assert vanco is not None
    dose = parse_dose("1000 mg")

    def level(**kwargs: Any) -> Level:
        return check(Program(dose=dose, **kwargs), vanco, PATIENT_70, area).level

    assert level(vtbi_ml=200.0, duration_min=120.0) is Level.OK
    assert level(vtbi_ml=3500.0, duration_min=120.0) is Level.HARD
    assert level(vtbi_ml=200.0, duration_min=75.0) is Level.SOFT
    assert level(vtbi_ml=200.0, duration_min=30.0) is Level.HARD
    assert level(vtbi_ml=200.0, duration_min=sys.float_info.min) is Level.HARD
    assert level(vtbi_ml=200.0, duration_min=5e-324) is Level.HARD  # subnormal


@settings(max_examples=300, deadline=None)
@given(dose=st.floats(min_value=1e-6, max_value=1e6, allow_nan=False))
def test_b11_property_dose_level_matches_limits(dose: float) -> None:
    """B-11 property: dopamine 2-20 soft, 50 hard: the level follows the bounds exactly."""
    for bound in (2.0, 20.0, 50.0):
        assume(abs(dose - bound) > 1e-6 * bound)
    area = _MINI.care_area(ADULT_ICU)
    verdict = check(_dopamine_program(dose), _dopamine(_MINI), PATIENT_70, area)
    expected = Level.HARD if dose > 50 else Level.SOFT if (dose > 20 or dose < 2) else Level.OK
    dose_finding = next(f for f in verdict.findings if f.parameter == "dose")
    assert dose_finding.level is expected
    assert dose_finding.value == dose
    assert verdict.level >= expected


# ---- B-12 tenfold and wrong-field programming -----------------------------------------------


def test_b12_units_per_hour_typed_into_rate_field(mini_library: Library) -> None:
    """B-12: heparin '900' units/h typed as 900 mL/h is caught by the dose-from-rate limit."""
    area = mini_library.care_area(ADULT_ICU)
    heparin = mini_library.find(ADULT_ICU, "heparin")
    assert heparin is not None
    verdict = check(Program(rate_ml_h=900.0), heparin, PATIENT_70, area)
    assert verdict.level is Level.HARD
    from_rate = next(f for f in verdict.findings if f.parameter == "dose (from rate)")
    assert from_rate.level is Level.HARD
    assert from_rate.bound == "hard_max"
    assert verdict.computed["dose"] == pytest.approx(900.0 * 100.0 / 70.0)


def test_b12_dose_value_typed_into_rate_field(mini_library: Library) -> None:
    """B-12: dopamine dose '5' typed as 5 mL/h with the dose 50 also given -> mismatch, HARD."""
    area = mini_library.care_area(ADULT_ICU)
    verdict = check(_dopamine_program(50.0, rate=50.0), _dopamine(mini_library), PATIENT_70, area)
    assert verdict.level is Level.HARD
    assert any("does not match the dose" in m for m in verdict.messages())


@pytest.mark.parametrize(
    ("factor", "fold"),
    [(10.0, "10-fold"), (0.1, "10-fold"), (100.0, "100-fold"), (0.01, "100-fold")],
)
def test_b12_decimal_shift_flagged_hard(mini_library: Library, factor: float, fold: str) -> None:
    """B-12: a rate 10x (or 1/10, 100x) the computed rate is HARD with 'N-fold' in the message."""
    area = mini_library.care_area(ADULT_ICU)
    expected = 13.125  # 5 mcg/kg/min x 70 kg at 1.6 mg/mL
    verdict = check(
        _dopamine_program(5.0, rate=expected * factor), _dopamine(mini_library), PATIENT_70, area
    )
    assert verdict.level is Level.HARD
    assert verdict.computed["rate_ml_h"] == pytest.approx(expected)
    assert any(fold in m for m in verdict.messages()), verdict.messages()


def test_b12_matching_dose_and_rate_accepted(mini_library: Library) -> None:
    """B-12 control: the correct rate, as the pump display rounds it, is accepted."""
    area = mini_library.care_area(ADULT_ICU)
    verdict = check(_dopamine_program(5.0, rate=13.1), _dopamine(mini_library), PATIENT_70, area)
    assert verdict.level is Level.OK


def _with_nicardipine() -> Library:
    data = mini_data()
    data["entries"].append(
        {
            "care_area": "adult-icu",
            "drug": "nicardipine",
            "display_name": "niCARdipine",
            "infusion_type": "continuous",
            "high_alert": True,
            "concentrations": ["25 mg/250 mL"],  # 0.1 mg/mL
            "dose_unit": "mg/h",
            "limits": {"dose": {"hard_min": 1, "soft_min": 2.5, "soft_max": 15, "hard_max": 15}},
        }
    )
    return library_from_data(data)


def test_b12_mg_per_hour_typed_as_ml_per_hour() -> None:
    """B-12: nicardipine 5 mg/h typed as 5 mL/h (0.5 mg/h) is caught both ways."""
    lib = _with_nicardipine()
    area = lib.care_area(ADULT_ICU)
    entry = lib.find(ADULT_ICU, "nicardipine")
    assert entry is not None
    conc = parse_concentration("25 mg/250 mL")
    # Rate only: the dose it delivers is below the hard minimum.
    rate_only = check(Program(rate_ml_h=5.0, concentration=conc), entry, PATIENT_70, area)
    assert rate_only.level is Level.HARD
    assert rate_only.computed["dose"] == pytest.approx(0.5)
    # Dose and rate both typed: the rate is a tenth of what the dose needs.
    both = check(
        Program(dose=parse_dose("5 mg/h"), rate_ml_h=5.0, concentration=conc),
        entry,
        PATIENT_70,
        area,
    )
    assert both.level is Level.HARD
    assert both.computed["rate_ml_h"] == pytest.approx(50.0)
    assert any("10-fold" in m for m in both.messages())


# ---- B-13 units and patient weight ----------------------------------------------------------


def test_b13_pounds_convert_to_kilograms() -> None:
    """B-13: '154 lb' is 69.85 kg, not 154 kg; the conversion is exact (0.45359237 kg/lb)."""
    assert parse_quantity("154 lb", Kind.WEIGHT, "weight") == pytest.approx(69.85322498)
    assert Patient.from_text(weight="154 lb").weight_kg == pytest.approx(69.85322498)
    assert Patient.from_text(weight="70 kg").weight_kg == 70.0


@pytest.mark.parametrize("text", ["70", "70.0", " 70 ", 70, 70.0])
def test_b13_bare_weight_refused(text: Any) -> None:
    """B-13: a weight without a unit is refused (is it kg or lb?), naming the weight."""
    with pytest.raises(InputError) as info:
        Patient.from_text(weight=text)
    assert info.value.field == "weight"
    assert "unit" in info.value.rule


@pytest.mark.parametrize("text", ["70 cm", "70 mL", "70 mg/kg", "70 kgs of", "seventy kg"])
def test_b13_weight_in_wrong_unit_refused(text: str) -> None:
    """B-13: a length, volume or nonsense is not a weight."""
    with pytest.raises(InputError) as info:
        Patient.from_text(weight=text)
    assert info.value.field == "weight"


def test_b13_missing_weight_blocks_weight_based_dose(mini_library: Library) -> None:
    """B-13: a per-kg dose with no weight raises InputError naming weight (check and math)."""
    area = mini_library.care_area(ADULT_ICU)
    with pytest.raises(InputError) as info:
        check(_dopamine_program(5.0), _dopamine(mini_library), Patient(), area)
    assert info.value.field == "weight"
    with pytest.raises(InputError) as math_info:
        dose_to_rate_ml_h(parse_dose("5 mcg/kg/min"), parse_concentration(DOPAMINE_CONC))
    assert math_info.value.field == "weight"


@pytest.mark.parametrize("weight_kg", [0.0, -70.0, 0.19, 650.1, 1e6, math.nan, math.inf, -math.inf])
def test_b13_extreme_weights_refused_by_patient(weight_kg: float) -> None:
    """B-13: weights outside 0.2-650 kg (or not finite) are a typing error, not a patient."""
    with pytest.raises(InputError) as info:
        Patient(weight_kg=weight_kg)
    assert info.value.field == "weight"


@pytest.mark.parametrize("text", ["1540 lb", "0.1 kg", "700000 g", "5 oz"])
def test_b13_extreme_weights_refused_from_text(text: str) -> None:
    """B-13: a weight typed in the wrong unit that lands outside 0.2-650 kg is refused."""
    with pytest.raises(InputError) as info:
        Patient.from_text(weight=text)
    assert info.value.field == "weight"


@pytest.mark.parametrize("weight", ["154 lb", "70", True])
def test_b13_patient_refuses_weight_that_is_not_a_number(weight: Any) -> None:
    """B-13: Patient(weight_kg=...) given text or a bool refuses it with InputError (weight).

    Text may be in lb; True would silently become a 1 kg patient.
    """
    with pytest.raises(InputError) as info:
        Patient(weight_kg=weight)
    assert info.value.field == "weight"


def test_b13_adult_weight_in_nicu_is_hard(mini_library: Library) -> None:
    """B-13: the care area's weight limits catch a patient in the wrong profile (70 kg NICU)."""
    nicu = mini_library.care_area("NICU")
    entry = _dopamine(mini_library, "NICU")
    program = Program(dose=Dose(5.0, MCG_KG_MIN), concentration=parse_concentration("800 mcg/mL"))
    verdict = check(program, entry, PATIENT_70, nicu)
    weight = next(f for f in verdict.findings if f.parameter == "weight")
    assert weight.level is Level.HARD
    assert check(program, entry, Patient(weight_kg=3.0), nicu).level is Level.OK
