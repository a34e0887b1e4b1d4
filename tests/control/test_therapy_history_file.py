"""The uploaded therapy-history format: what it means, and errors that name the entry."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from openinfusion.control.aid.autosens import autosens
from openinfusion.control.aid.autotune import autotune
from openinfusion.control.aid.history_file import (
    history_from_data,
    history_to_data,
    load_history,
)
from openinfusion.errors import InputError
from openinfusion.sim.personalise_trial import VirtualDays, simulate_days, subject_settings

EXAMPLE = (
    Path(__file__).resolve().parents[2] / "examples" / "aid" / "therapy-history-basal-low.json"
)


def small() -> dict[str, Any]:
    return {
        "format": "openinfusion-therapy-history/1",
        "profile": {
            "basal": [{"start": "00:00", "rate_u_h": 0.8}, {"start": "06:30", "rate_u_h": 1.0}],
            "isf_mg_dl_u": 40,
            "carb_ratio_g_u": 10,
        },
        "glucose": [{"t_min": 5.0 * i, "mg_dl": 120.0} for i in range(100)],
        "insulin": [
            {"t_min": 60, "units": 2.0},
            {"t_min": 120, "rate_u_h": 0.0, "duration_min": 30},
            {"t_min": 200, "units": 0.5, "duration_min": 10},
        ],
        "carbs": [{"t_min": 60, "g": 20}],
    }


def test_profile_segments_become_hourly_rates() -> None:
    h = history_from_data(small())
    rates = h.settings.basal_u_h
    assert rates[:7].tolist() == [0.8] * 7  # 06:30 starts within hour 6: hours at their start
    assert rates[7:].tolist() == [1.0] * 17
    assert h.settings.dia_h == 5.0 and h.settings.autosens_max == 1.2


def test_insulin_entries_on_the_minute_grid() -> None:
    h = history_from_data(small())
    u = h.insulin_u
    at = lambda t: u[t - h.insulin_start_min]  # noqa: E731
    assert at(60) == pytest.approx(2.0 + 0.8 / 60)  # bolus on top of the scheduled basal
    assert at(130) == 0.0  # the zero temp replaces the basal
    assert at(150) == pytest.approx(0.8 / 60)  # back to schedule
    assert at(205) == pytest.approx(0.05)  # 0.5 U over 10 min
    assert h.insulin_start_min <= -300  # a DIA of scheduled basal before the first reading


def test_recorded_delivery_round_trip_keeps_the_result() -> None:
    pump = subject_settings("adult#001", basal_scale=0.7)
    h = simulate_days(VirtualDays("adult#001", days=1), pump)
    back = history_from_data(history_to_data(h))
    assert autosens(back).ratio == autosens(h).ratio
    a, b = autotune(h).settings, autotune(back).settings
    np.testing.assert_allclose(a.basal_u_h, b.basal_u_h, rtol=1e-3)
    assert a.carb_ratio_g_u == pytest.approx(b.carb_ratio_g_u, rel=1e-3)


def test_iso_times_use_the_wall_clock() -> None:
    d = small()
    d["glucose"] = [
        {"time": f"2026-03-01T{h:02d}:{m:02d}:00+01:00", "mg_dl": 110.0}
        for h in range(2)
        for m in range(0, 60, 5)
    ]
    d["insulin"] = [{"time": "2026-03-01T00:30:00+01:00", "units": 1.0}]
    d["carbs"] = []
    h = history_from_data(d)
    assert h.glucose_t_min[0] == 0.0 and h.glucose_t_min[-1] == 115.0
    assert h.insulin_u[30 - h.insulin_start_min] == pytest.approx(1.0 + 0.8 / 60)


def test_example_file_loads() -> None:
    h = load_history(EXAMPLE)
    assert h.settings.basal_u_h[0] == pytest.approx(0.887)
    assert autotune(h).settings.basal_u_h.mean() > h.settings.basal_u_h.mean()


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    d = copy.deepcopy(small())
    node: Any = d
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return d


@pytest.mark.parametrize(
    ("data", "field", "rule"),
    [
        (_with(("glucose", 3, "mg_dl"), float("nan")), "glucose[3].mg_dl", "finite"),
        (_with(("glucose", 4, "t_min"), 0.0), "glucose[4].t_min", "strictly increasing"),
        (_with(("insulin", 0, "units"), -1.0), "insulin[0].units", "not negative"),
        (_with(("insulin", 1, "duration_min"), None), "insulin[1].duration_min", "duration"),
        (_with(("carbs", 0, "g"), -5), "carbs[0].g", "not negative"),
        (_with(("profile", "basal", 0, "start"), "01:00"), "profile.basal[0].start", "00:00"),
        (_with(("profile", "basal", 1, "start"), "6h"), "profile.basal[1].start", "HH:MM"),
        (_with(("profile", "isf_mg_dl_u"), 0), "profile.isf_mg_dl_u", "1 to 400"),
        (_with(("profile", "autosens_max"), 0.9), "profile.autosens_max", "1 to 3"),
        (_with(("glucose", 0, "time"), "2026-03-01T00:00"), "glucose[0]", "exactly one"),
        (_with(("format",), "v2"), "format", "openinfusion-therapy-history/1"),
        (_with(("glucose", 0, "sgv"), 100), "glucose.0.sgv", "Extra inputs"),
    ],
)
def test_errors_name_field_value_and_rule(data: dict[str, Any], field: str, rule: str) -> None:
    with pytest.raises(InputError) as err:
        history_from_data(data)
    assert err.value.field == field
    assert rule in err.value.rule


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot be read"):
        load_history(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": NaN}', encoding="utf-8")
    with pytest.raises(InputError):
        load_history(bad)


def test_documented_example_loads() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "aid.md").read_text(encoding="utf-8")
    section = docs[docs.index("## Personalisation") :]
    block = section[
        section.index("```json") + len("```json") : section.index(
            "```", section.index("```json") + 7
        )
    ]
    h = history_from_data(json.loads(block))
    assert h.glucose_t_min.tolist() == [0.0, 5.0]  # the ISO time read on the wall clock
    assert h.settings.basal_u_h[6] == 1.0 and h.settings.basal_u_h[5] == 0.8
    assert h.carbs_g.tolist() == [45.0]
