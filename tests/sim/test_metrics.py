"""Outcome metrics against hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from openinfusion.errors import InputError
from openinfusion.sim.metrics import cvga, glycaemic_metrics, time_in_ranges, varvel


def test_time_in_ranges_by_hand() -> None:
    # 10 readings: 2 very low, 1 low, 4 in range (70 and 180 inclusive), 1 high, 2 very high.
    bg = [40, 50, 60, 70, 100, 150, 180, 200, 260, 300]
    r = time_in_ranges(bg)
    assert r["tbr2"][0] == pytest.approx(20.0)
    assert r["tbr1"][0] == pytest.approx(10.0)
    assert r["tbr"][0] == pytest.approx(30.0)
    assert r["tir"][0] == pytest.approx(40.0)
    assert r["titr"][0] == pytest.approx(20.0)  # 70 and 100 (150 > 140)
    assert r["tar1"][0] == pytest.approx(10.0)
    assert r["tar2"][0] == pytest.approx(20.0)
    assert r["tar"][0] == pytest.approx(30.0)


def test_mean_sd_cv_gmi_by_hand() -> None:
    bg = [100.0, 120.0, 140.0, 160.0]
    m = glycaemic_metrics(bg)[0]
    assert m["mean_mg_dl"] == pytest.approx(130.0)
    sd = math.sqrt((30**2 + 10**2 + 10**2 + 30**2) / 3)  # n - 1
    assert m["sd_mg_dl"] == pytest.approx(sd)
    assert m["cv_percent"] == pytest.approx(100 * sd / 130.0)
    assert m["gmi_percent"] == pytest.approx(3.31 + 0.02392 * 130.0)


def test_risk_indices_by_hand() -> None:
    def f(g: float) -> float:
        return 1.509 * (math.log(g) ** 1.084 - 5.381)

    bg = [50.0, 112.5, 300.0]
    m = glycaemic_metrics(bg)[0]
    assert f(112.5) == pytest.approx(0.0, abs=1e-3)  # the transform's symmetry point
    assert m["lbgi"] == pytest.approx(10 * f(50.0) ** 2 / 3)
    assert m["hbgi"] == pytest.approx(10 * f(300.0) ** 2 / 3)
    assert m["bgri"] == pytest.approx(m["lbgi"] + m["hbgi"])


def test_adrr_uses_daily_maxima() -> None:
    def r(g: float) -> float:
        return 10 * (1.509 * (math.log(g) ** 1.084 - 5.381)) ** 2

    day1 = [120.0] * 20
    day1[3], day1[10] = 60.0, 250.0
    day2 = [120.0] * 20
    day2[5] = 300.0
    m = glycaemic_metrics(day1 + day2, samples_per_day=20)[0]
    assert m["adrr"] == pytest.approx(((r(60) + r(250)) + (0 + r(300))) / 2)


def test_gri_by_hand() -> None:
    bg = [50.0, 60.0] + [120.0] * 6 + [200.0, 300.0]  # n = 10: 10 % in each outer band
    m = glycaemic_metrics(bg)[0]
    assert m["gri"] == pytest.approx(3.0 * 10 + 2.4 * 10 + 1.6 * 10 + 0.8 * 10)
    capped = glycaemic_metrics([40.0] * 5 + [300.0] * 5)[0]  # 3*50 + 1.6*50 = 230
    assert capped["gri"] == 100.0


def test_missing_readings_are_left_out() -> None:
    m = glycaemic_metrics([100.0, float("nan"), 200.0])[0]
    assert m["readings"] == 2
    assert m["mean_mg_dl"] == pytest.approx(150.0)
    assert m["tir_percent"] == pytest.approx(50.0)


def test_vectorized_rows_match_single() -> None:
    rng = np.random.default_rng(3)
    bg = rng.uniform(40, 350, size=(5, 288))
    many = glycaemic_metrics(bg, samples_per_day=288)
    for i in range(5):
        one = glycaemic_metrics(bg[i], samples_per_day=288)[0]
        assert many[i] == pytest.approx(one)


def test_bad_glucose_named() -> None:
    with pytest.raises(InputError) as e:
        glycaemic_metrics([100.0, -5.0])
    assert e.value.field == "bg_mg_dl"


@pytest.mark.parametrize(
    ("low", "high", "zone"),
    [
        (95, 170, "A"),
        (95, 250, "Upper B"),
        (80, 170, "Lower B"),
        (80, 250, "B"),
        (95, 350, "Upper C"),
        (60, 170, "Lower C"),
        (80, 350, "Upper D"),
        (60, 250, "Lower D"),
        (60, 350, "E"),
    ],
)
def test_cvga_zones(low: float, high: float, zone: str) -> None:
    # A flat trace at the low bound for half the day and the high bound for the other
    # half puts the 2.5th/97.5th percentiles exactly there.
    bg = np.array([low] * 100 + [high] * 100, dtype=float)
    out = cvga(bg)
    assert out["zones"] == [zone]
    assert out["percent"][zone[-1]] == 100.0


def test_cvga_clips_axes() -> None:
    out = cvga(np.array([30.0] * 50 + [500.0] * 50))
    assert out["points"][0] == {"min_mg_dl": 50.0, "max_mg_dl": 400.0}


def test_varvel_by_hand() -> None:
    predicted = np.array([2.0, 2.0, 2.0, 2.0, 2.0])
    measured = np.array([2.2, 1.8, 2.4, 2.0, 2.6])  # PE = 10, -10, 20, 0, 30 %
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0]) * 3600
    v = varvel(measured, predicted, t)
    assert v.mdpe == pytest.approx(10.0)
    assert v.mdape == pytest.approx(10.0)  # |PE| = 10, 10, 20, 0, 30
    assert v.wobble == pytest.approx(10.0)  # |PE - 10| = 0, 20, 10, 10, 20
    assert v.divergence == pytest.approx(np.polyfit([0, 1, 2, 3, 4], [10, 10, 20, 0, 30], 1)[0])
