"""Library structure rules beyond single limit groups (see docs/drug-library.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from openinfusion.errors import InputError, InputErrors
from openinfusion.library.loading import library_from_data

from ..conftest import mini_data

Data = dict[str, Any]


def _break(mutate: Callable[[Data], None]) -> InputErrors:
    data = mini_data()
    mutate(data)
    with pytest.raises(InputErrors) as info:
        library_from_data(data)
    return info.value


@pytest.mark.parametrize(
    ("mutate", "text"),
    [
        (lambda d: d["care_areas"].append(dict(d["care_areas"][0])), "defined twice"),
        (lambda d: d["entries"][0].update(care_area="ward-9"), "not defined in care_areas"),
        (lambda d: d["entries"].append(dict(d["entries"][0])), "appears twice"),
        (lambda d: d["entries"][0].update(dose_unit="mg/kg"), "dose over time"),
        (lambda d: d["entries"][2].update(dose_unit="mg/h"), "single dose"),
        (lambda d: d["entries"][0].update(concentrations=[]), "at least one concentration"),
        (
            lambda d: d["entries"][0].update(concentrations=["400 mg/250 mL", "1.6 mg/mL"]),
            "listed twice",
        ),
        (lambda d: d["entries"][3].pop("pca"), "pca section"),
        (lambda d: d["entries"][1]["limits"]["bolus"].update(unit="units/kg/h"), "single dose"),
        (
            lambda d: d["entries"][2].update(
                cumulative={"max": 4, "unit": "units", "window_h": 24}
            ),
            "cumulative.unit",
        ),
        (lambda d: d["entries"][0].update(colour="red"), "Extra inputs"),
        (lambda d: d.update(version="v2"), "dotted numbers"),
        (lambda d: d["entries"][0]["limits"]["dose"].update(default=70), "outside the limits"),
        (lambda d: d["entries"][0]["limits"]["dose"].update(hard_max=True), "valid number"),
        (lambda d: d["entries"][0]["limits"]["dose"].update(hard_max="50"), "valid number"),
        (lambda d: d["entries"][0].update(drug="DOPAMINE"), "pattern"),
    ],
)
def test_structural_rules(mutate: Callable[[Data], None], text: str) -> None:
    error = _break(mutate)
    assert any(text in p.rule for p in error.problems), [p.message for p in error.problems]


def test_every_problem_is_reported_with_its_path() -> None:
    def two_problems(d: Data) -> None:
        d["entries"][0]["limits"]["dose"]["soft_max"] = 90
        d["entries"][4]["limits"]["dose"]["hard_max"] = -1

    error = _break(two_problems)
    fields = [p.field for p in error.problems]
    assert fields == [
        "entries[0].limits.dose (dopamine in adult-icu)",
        "entries[4].limits.dose.hard_max (dopamine in nicu)",
    ]


def test_lookup_by_name_alias_and_therapy() -> None:
    data = mini_data()
    data["entries"][1]["aliases"] = ["HEP25K-C"]
    data["entries"].append({**data["entries"][1], "therapy": "ACS", "aliases": []})
    lib = library_from_data(data)
    assert lib.care_area("ADULT icu").id == "adult-icu"
    assert lib.find("adult-icu", "DOPamine") is lib.entries[0]
    assert lib.find("adult-icu", "hep25k-c") is lib.entries[1]
    assert lib.find("adult-icu", "heparin", "acs") is lib.entries[-1]
    assert lib.find("adult-icu", "propofol") is None
    with pytest.raises(InputError, match="several therapies"):
        lib.find("adult-icu", "heparin")
    with pytest.raises(InputError, match="known: Adult ICU, NICU"):
        lib.care_area("Burns unit")
