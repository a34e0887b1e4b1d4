"""Glucose trial scenarios become the per-minute inputs the reference simulator would use."""

from __future__ import annotations

import numpy as np
import pytest

from openinfusion.errors import InputError
from openinfusion.sim.glucose_scenario import build_inputs, load_glucose_scenario, meal_intake


def test_meal_eaten_at_5_g_per_min() -> None:
    eaten = meal_intake([(10, 47.0)], 30)
    assert eaten[10:19].tolist() == [5.0] * 9
    assert eaten[19] == pytest.approx(2.0)
    assert eaten.sum() == pytest.approx(47.0)
    assert eaten[:10].sum() == 0 and eaten[20:].sum() == 0


def test_overlapping_meals_queue() -> None:
    eaten = meal_intake([(0, 20.0), (2, 20.0)], 20)
    assert eaten[:8].tolist() == [5.0] * 8  # 40 g in 8 minutes, no pause
    assert eaten.sum() == pytest.approx(40.0)


def test_basal_bolus_temp_basal_and_patient_basal() -> None:
    s = load_glucose_scenario(
        {
            "duration": "3 h",
            "meals": [{"at": "1 h", "carbs_g": 50}],
            "insulin": {
                "basal": "patient",
                "boluses": [{"at": "60 min", "units": 4}],
                "temp_basals": [{"from": "2 h", "to": "150 min", "rate": "0 units/h"}],
            },
        }
    )
    inp = build_inputs(s, np.array([0.6, 1.2]))
    assert inp.insulin_u_min.shape == (2, 180)
    assert inp.insulin_u_min[0, 0] == pytest.approx(0.01)
    assert inp.insulin_u_min[1, 60] == pytest.approx(0.02 + 4.0)
    assert inp.insulin_u_min[:, 120:150].sum() == 0
    # total: basal for 150 of 180 minutes plus the bolus
    assert inp.insulin_u_min[0].sum() == pytest.approx(0.01 * 150 + 4.0)
    assert inp.carbs_g_min.sum() == pytest.approx(50.0)


def test_fixed_basal_and_faults() -> None:
    s = load_glucose_scenario(
        {
            "duration": "2 h",
            "insulin": {"basal": "1.2 units/h"},
            "faults": [
                {"type": "occlusion", "from": "10 min", "to": "20 min"},
                {"type": "suspend", "from": "30 min", "to": "40 min"},
                {"type": "sensor_dropout", "from": "50 min", "to": "55 min"},
            ],
        }
    )
    inp = build_inputs(s, np.array([0.5]))
    assert inp.programmed_u_min[0, 15] == pytest.approx(0.02)  # occluded: programmed...
    assert inp.insulin_u_min[0, 15] == 0.0  # ...but not delivered
    assert inp.programmed_u_min[0, 35] == 0.0 and inp.insulin_u_min[0, 35] == 0.0
    assert not inp.sensor_ok[50:55].any() and inp.sensor_ok[:50].all()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"duration": "2 h", "insulin": {"basal": "1 U/h"}}, "insulin.basal"),
        ({"duration": "2 h", "insulin": {"basal": "1 mg/h"}}, "insulin.basal"),
        ({"duration": "2 h", "insulin": {"basal": "90 units/h"}}, "insulin.basal"),
        ({"duration": "2 h", "meals": [{"at": "3 h", "carbs_g": 10}]}, "meals[0].at"),
        ({"duration": "2 h", "meals": [{"at": "1 h", "carbs_g": -10}]}, "meals.0.carbs_g"),
        ({"duration": "400 days"}, "duration"),
        ({"duration": "2 h", "exercise": []}, "exercise"),
        (
            {"duration": "2 h", "faults": [{"type": "suspend", "from": "1 h", "to": "30 min"}]},
            "faults[0].to",
        ),
    ],
)
def test_bad_scenarios_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as e:
        build_inputs(load_glucose_scenario(data), np.array([1.0]))
    text = str(e.value)
    assert field in text
