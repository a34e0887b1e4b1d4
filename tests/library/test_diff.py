"""Library diff for pharmacist review."""

from __future__ import annotations

from openinfusion.library import diff_libraries
from openinfusion.library.loading import library_from_data

from ..conftest import mini_data


def test_identical_libraries_have_no_diff() -> None:
    lib = library_from_data(mini_data())
    result = diff_libraries(lib, lib)
    assert result.is_empty
    assert result.as_dict()["identical"] is True


def test_added_removed_and_changed_limits_are_listed() -> None:
    old_data = mini_data()
    new_data = mini_data()
    new_data["version"] = "2026.2.0"
    new_data["entries"][0]["limits"]["dose"]["hard_max"] = 40  # dopamine tightened
    new_data["entries"][0]["concentrations"].append("1600 mg/250 mL")
    removed = new_data["entries"].pop(2)  # vancomycin
    new_data["entries"].append({**removed, "care_area": "nicu", "concentrations": ["5 mg/mL"]})
    new_data["care_areas"][1]["max_rate_ml_h"] = 20
    result = diff_libraries(library_from_data(old_data), library_from_data(new_data))
    assert [c.as_dict() for c in result.header] == [
        {"path": "version", "old": "2026.1.0", "new": "2026.2.0"}
    ]
    assert result.entries_removed == ("adult-icu/vancomycin",)
    assert result.entries_added == ("nicu/vancomycin",)
    (dopamine,) = result.entries_changed
    assert dopamine.key == "adult-icu/dopamine"
    paths = {c.path: (c.old, c.new) for c in dopamine.changes}
    assert paths["limits.dose.hard_max"] == (50, 40)
    assert paths["concentrations"][1][-1] == "1600 mg/250 mL"
    (nicu,) = result.care_areas_changed
    assert nicu.changes[0].as_dict() == {"path": "max_rate_ml_h", "old": 25, "new": 20}


def test_therapies_are_separate_entries() -> None:
    data = mini_data()
    acs = {**data["entries"][1], "therapy": "ACS"}
    data["entries"].append(acs)
    result = diff_libraries(library_from_data(mini_data()), library_from_data(data))
    assert result.entries_added == ("adult-icu/heparin (ACS)",)
