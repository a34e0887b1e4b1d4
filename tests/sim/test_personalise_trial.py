"""Trial results and simulated days as therapy histories for autosens and autotune."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from openinfusion.errors import InputError
from openinfusion.sim.glucose_scenario import load_glucose_scenario
from openinfusion.sim.glucose_trial import run_trial
from openinfusion.sim.personalise_trial import (
    VirtualDays,
    history_from_trial,
    history_from_trial_json,
    simulate_days,
    subject_settings,
)

SCENARIO = {
    "duration": "12 h",
    "meals": [{"at": "8 h", "carbs_g": 40}],
    "insulin": {
        "basal": "0.9 units/h",
        "boluses": [{"at": "8 h", "units": 4}],
        "temp_basals": [{"from": "0 h", "to": "1 h", "rate": "0 units/h"}],
    },
}


def test_trial_result_becomes_a_history() -> None:
    spec = load_glucose_scenario(SCENARIO)
    result = run_trial(["adult#001"], spec, sensor_noise=False)
    h = history_from_trial(result, 0, subject_settings("adult#001"))
    np.testing.assert_array_equal(h.insulin_u, result.insulin_u_min[0])
    assert h.insulin_u[:60].sum() == 0.0 and h.insulin_u[480] == pytest.approx(4 + 0.9 / 60)
    assert np.diff(h.glucose_t_min).tolist() == [5.0] * (h.glucose_t_min.size - 1)
    assert h.carbs_t_min.tolist() == [480.0] and h.carbs_g.tolist() == [40.0]
    with pytest.raises(InputError, match="patient"):
        history_from_trial(result, 1, subject_settings("adult#001"))


def test_trial_json_settings_are_what_the_scenario_programmed(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(SCENARIO), encoding="utf-8")
    result = run_trial(["adult#001"], load_glucose_scenario(path), sensor_noise=False)
    doc = {"scenario": str(path), "controller": "open-loop", "patients": [result.patient(0)]}
    h = history_from_trial_json(doc)
    assert h.settings.basal_u_h.tolist() == [0.9] * 24  # not the 0 U/h temp at minute 0
    np.testing.assert_allclose(h.insulin_u, result.insulin_u_min[0])
    assert h.carbs_t_min.tolist() == [480.0]
    with pytest.raises(InputError, match="metrics-only"):
        history_from_trial_json(doc | {"patients": [result.patient(0, traces=False)]})


def test_simulated_days_deliver_the_programmed_settings() -> None:
    pump = subject_settings("adult#001", basal_scale=0.7, cr_scale=2.0)
    h = simulate_days(VirtualDays("adult#001", days=1), pump)
    basal = pump.basal_u_h[0] / 60.0
    assert h.insulin_u[0] == pytest.approx(basal)
    assert h.insulin_u[7 * 60] == pytest.approx(basal + 50.0 / pump.carb_ratio_g_u)
    assert h.glucose_t_min.size == 288
    with pytest.raises(InputError, match="controller"):
        simulate_days(VirtualDays(controller="mpc"), pump)
