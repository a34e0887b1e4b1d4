"""Shared fixtures: a small, valid library as plain data that tests can break on purpose."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from openinfusion.library import Library
from openinfusion.library.loading import library_from_data

_MINI: dict[str, Any] = {
    "name": "Test Hospital",
    "version": "2026.1.0",
    "effective_date": "2026-01-01",
    "status": "released",
    "care_areas": [
        {
            "id": "adult-icu",
            "name": "Adult ICU",
            "population": "adult",
            "weight_kg": {"hard_min": 30, "soft_min": 40, "soft_max": 200, "hard_max": 350},
            "max_rate_ml_h": 999,
            "max_vtbi_ml": 3000,
            "occlusion_pressure_mmhg": 525,
            "air_in_line_ul": 250,
            "kvo_rate_ml_h": 5,
        },
        {
            "id": "nicu",
            "name": "NICU",
            "population": "neonatal",
            "weight_kg": {"hard_min": 0.3, "soft_min": 0.5, "soft_max": 5, "hard_max": 7},
            "max_rate_ml_h": 25,
            "occlusion_pressure_mmhg": 300,
            "air_in_line_ul": 50,
            "kvo_rate_ml_h": 0.5,
            "basic_infusion": {"allowed": False},
        },
    ],
    "entries": [
        {
            "care_area": "adult-icu",
            "drug": "dopamine",
            "display_name": "DOPamine",
            "infusion_type": "continuous",
            "high_alert": True,
            "concentrations": ["400 mg/250 mL", "800 mg/250 mL"],
            "dose_unit": "mcg/kg/min",
            "limits": {"dose": {"soft_min": 2, "soft_max": 20, "hard_max": 50}},
        },
        {
            "care_area": "adult-icu",
            "drug": "heparin",
            "display_name": "heparin",
            "therapy": "VTE",
            "infusion_type": "continuous",
            "high_alert": True,
            "concentrations": ["25000 units/250 mL"],
            "dose_unit": "units/kg/h",
            "limits": {
                "dose": {"soft_max": 25, "hard_max": 40},
                "bolus": {"unit": "units/kg", "soft_max": 80, "hard_max": 100},
            },
            "second_check": True,
        },
        {
            "care_area": "adult-icu",
            "drug": "vancomycin",
            "display_name": "vancomycin",
            "infusion_type": "intermittent",
            "concentrations": ["1000 mg/200 mL"],
            "dose_unit": "mg",
            "limits": {
                "dose": {"soft_min": 500, "soft_max": 2000, "hard_max": 3000},
                "duration_min": {"hard_min": 60, "soft_min": 90},
            },
            "cumulative": {"max": 4500, "unit": "mg", "window_h": 24},
        },
        {
            "care_area": "adult-icu",
            "drug": "morphine",
            "display_name": "morphine",
            "infusion_type": "pca",
            "high_alert": True,
            "concentrations": ["1 mg/mL"],
            "dose_unit": "mg/h",
            "limits": {"dose": {"soft_max": 2, "hard_max": 4}},
            "pca": {
                "dose_unit": "mg",
                "demand": {"soft_min": 0.5, "soft_max": 2, "hard_max": 3},
                "lockout_min": {"hard_min": 5, "soft_min": 6, "soft_max": 20},
                "max_dose": {"soft_max": 12, "hard_max": 20},
                "max_dose_window_h": 4,
            },
        },
        {
            "care_area": "nicu",
            "drug": "dopamine",
            "display_name": "DOPamine",
            "infusion_type": "continuous",
            "high_alert": True,
            "concentrations": ["800 mcg/mL"],
            "dose_unit": "mcg/kg/min",
            "limits": {"dose": {"soft_min": 2, "soft_max": 15, "hard_max": 20}},
        },
    ],
}


def mini_data() -> dict[str, Any]:
    """A fresh deep copy of the small valid library, as plain data."""
    return copy.deepcopy(_MINI)


@pytest.fixture
def mini_library_data() -> dict[str, Any]:
    return mini_data()


@pytest.fixture
def mini_library() -> Library:
    return library_from_data(mini_data())
