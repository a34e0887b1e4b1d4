"""Sensor models: noise statistics, seeds, streaming equals batch, bounds, bad input."""

from __future__ import annotations

import csv
import importlib.util
import math
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from openinfusion.errors import InputError
from openinfusion.physiology.sensors import (
    CGM_PRESETS,
    Artefacts,
    BisMonitor,
    BisSpec,
    CgmDrift,
    CgmDropout,
    CgmPreset,
    CgmSensor,
    CompressionLows,
    GasExchange,
    PulseOximeterSpec,
    RespiratoryBaseline,
    RespiratoryMonitor,
    alveolar_po2_mmhg,
    lag_coefficients,
    severinghaus_saturation_pct,
    steady_paco2_mmhg,
)
from openinfusion.physiology.sensors.cgm import _BretonNoise

DAY = 1440


def _simglucose_root() -> Path:
    """simglucose is a development dependency (the reference); missing it is a failure."""
    spec = importlib.util.find_spec("simglucose")
    assert spec is not None and spec.submodule_search_locations, "simglucose is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def _load_noise_gen(root: Path) -> ModuleType:
    # simglucose's package __init__ pulls in gym; load only the noise module.
    spec = importlib.util.spec_from_file_location("_sg_noise_gen", root / "sensor" / "noise_gen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _LegacyNormals:
    """Feeds numpy's legacy RandomState normals in the order simglucose draws them."""

    def __init__(self, seed: int) -> None:
        self.rs = np.random.RandomState(seed)

    def standard_normal(self, size: tuple[int, int]) -> Any:
        return self.rs.randn(*size)


# -- CGM --------------------------------------------------------------------------------------


def test_presets_match_simglucose_sensor_params() -> None:
    root = _simglucose_root()
    with (root / "params" / "sensor_params.csv").open() as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(CGM_PRESETS)
    for name, p in CGM_PRESETS.items():
        r = rows[name]
        assert (p.pacf, p.gamma, p.lambda_, p.delta, p.xi) == (
            float(r["PACF"]),
            float(r["gamma"]),
            float(r["lambda"]),
            float(r["delta"]),
            float(r["xi"]),
        )
        assert p.sample_time_min == float(r["sample_time"])
        assert (p.min_mg_dl, p.max_mg_dl) == (float(r["min"]), float(r["max"]))


@pytest.mark.parametrize("name", list(CGM_PRESETS))
def test_noise_process_reproduces_simglucose_for_the_same_normals(name: str) -> None:
    root = _simglucose_root()
    noise_gen = _load_noise_gen(root)
    with (root / "params" / "sensor_params.csv").open() as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == name)
    params = {k: float(v) for k, v in row.items() if k != "Name"}
    reference = noise_gen.CGMNoise(params, seed=1)
    ref = np.array([next(reference) for _ in range(400)])
    ours = _BretonNoise(1, CGM_PRESETS[name], _LegacyNormals(1)).take(0, 401)[0]
    # simglucose's i-th value is at (i + 1) sample times; ours starts at t = 0
    np.testing.assert_allclose(ours[1:], ref, rtol=0, atol=1e-9)
    if name == "Dexcom":  # AID_REFERENCE 1.4: BG 149.02 -> first CGM 165.79 with seed 1
        assert 149.02 + ref[0] == pytest.approx(165.79, abs=0.005)


def test_mard_and_autocorrelation_on_flat_trace() -> None:
    sensor = CgmSensor("Dexcom", seed=11)
    bg = np.full((200, 3 * DAY), 120.0)
    cgm = sensor.readings(bg)[:, ::3]  # one value per sample
    err = cgm - 120.0
    mard = 100.0 * np.mean(np.abs(err) / 120.0)
    assert 5.0 < mard < 10.0
    assert abs(err.mean()) < 1.5  # Johnson S_U mean is about +0.7 mg/dL
    e = err - err.mean(axis=1, keepdims=True)
    lag = 15 // 3
    acf15 = np.sum(e[:, lag:] * e[:, :-lag]) / np.sum(e * e)
    assert acf15 == pytest.approx(0.7, abs=0.05)


def test_readings_hold_between_samples_and_clip_to_range() -> None:
    bg = np.concatenate([np.full(30, 700.0), np.full(30, 10.0)])[None, :]
    for name in CGM_PRESETS:
        s = CgmSensor(name, seed=3)
        r = s.readings(bg)[0]
        st = s.sample_time_min
        assert np.all(r[:30] == CGM_PRESETS[name].max_mg_dl)
        low = r[30 + st :]
        assert np.all(low >= CGM_PRESETS[name].min_mg_dl)
        assert np.mean(low == CGM_PRESETS[name].min_mg_dl) > 0.5
        flat = s.readings(np.full((1, 60), 150.0))[0]
        for k in range(0, 60, st):
            assert np.all(flat[k : k + st] == flat[k])


def test_same_seed_same_numbers_other_seed_other_numbers() -> None:
    bg = 100.0 + 50.0 * np.sin(np.arange(DAY) / 90.0)[None, :] + np.zeros((3, 1))
    opts: dict[str, Any] = {"drift": True, "dropout": True, "compression": True, "lag_min": 7.0}
    a = CgmSensor("GuardianRT", seed=5, **opts).readings(bg)
    b = CgmSensor("GuardianRT", seed=5, **opts).readings(bg)
    c = CgmSensor("GuardianRT", seed=6, **opts).readings(bg)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(np.nan_to_num(a), np.nan_to_num(c))


@pytest.mark.parametrize("name", list(CGM_PRESETS))
def test_streaming_equals_batch_exactly(name: str) -> None:
    rng = np.random.default_rng(0)
    t = 2 * DAY + 17
    bg = 140.0 + np.cumsum(rng.normal(0.0, 1.5, (4, t)), axis=1)
    bg = np.clip(bg, 40.0, 400.0)
    sensor = CgmSensor(
        name,
        seed=42,
        lag_min=8.0,
        drift=CgmDrift(session_days=1.0),
        dropout=True,
        compression=CompressionLows(rate_per_night=3.0),
        start_clock_h=21.5,
    )
    batch = sensor.readings(bg)
    stream = np.stack([sensor.measure(j, bg[:, j]) for j in range(t)], axis=1)
    np.testing.assert_array_equal(stream, batch)
    assert np.isnan(batch).any()
    sensor.reset()
    again = np.stack([sensor.measure(j, bg[:, j]) for j in range(t)], axis=1)
    np.testing.assert_array_equal(again, batch)


def test_streaming_repeated_time_holds_and_time_cannot_go_back() -> None:
    s = CgmSensor("Dexcom", seed=1)
    first = s.measure(0, [120.0, 130.0])
    np.testing.assert_array_equal(s.measure(0, [300.0, 300.0]), first)
    s.measure(4, [120.0, 130.0])
    with pytest.raises(InputError) as e:
        s.measure(3, [120.0, 130.0])
    assert e.value.field == "t_min"
    with pytest.raises(InputError) as e:
        s.measure(5, [120.0, 130.0, 140.0])
    assert e.value.field == "bg_mg_dl"


def test_noise_off_is_exact_and_needs_no_seed() -> None:
    bg = np.linspace(60.0, 250.0, 100)[None, :]
    r = CgmSensor("Dexcom", noise=False, drift=True, dropout=True).readings(bg)[0]
    np.testing.assert_array_equal(r[::3], bg[0, ::3])
    np.testing.assert_array_equal(r, bg[0, (np.arange(100) // 3) * 3])


def test_lag_is_first_order() -> None:
    tau = 7.0
    step = np.concatenate([np.full(10, 100.0), np.full(200, 200.0)])[None, :]
    r = CgmSensor("Navigator", noise=False, lag_min=tau).readings(step)[0]
    # BG ramps 100 -> 200 over minute 9-10; exact first-order response of that ramp
    a, b0, b1 = lag_coefficients(1.0, tau)
    assert r[10] == pytest.approx(100.0 + 100.0 * b1)
    assert r[10 + 7] == pytest.approx(200.0 - 100.0 * (1 - b1) * math.exp(-7 / tau), rel=1e-9)
    # a ramp of s mg/dL/min lags by s * tau once settled
    ramp = (100.0 + 1.5 * np.arange(300.0))[None, :]
    rr = CgmSensor("Navigator", noise=False, lag_min=tau).readings(ramp)[0]
    assert ramp[0, -1] - rr[-1] == pytest.approx(1.5 * tau, rel=1e-6)
    assert a + b0 + b1 == pytest.approx(1.0)


def test_drift_follows_the_polynomials_and_restarts_each_session() -> None:
    drift = CgmDrift(
        gain=(1.048, -0.033, 0.002),
        offset_mg_dl=(-6.398, 6.179, -0.448),
        gain_sd=0.0,
        gain_slope_sd_per_day=0.0,
        offset_sd_mg_dl=0.0,
        offset_slope_sd_mg_dl_per_day=0.0,
        session_days=10.0,
    )
    assert CgmDrift.dexcom_g6().gain == drift.gain
    t = 12 * DAY
    bg = np.full((2, t), 150.0)
    with_drift = CgmSensor("GuardianRT", seed=9, drift=drift).readings(bg)
    without = CgmSensor("GuardianRT", seed=9).readings(bg)
    diff = (with_drift - without)[:, ::5]
    day = (np.arange(diff.shape[1]) * 5.0 % (10 * DAY)) / DAY
    gain = 1.048 - 0.033 * day + 0.002 * day**2
    offset = -6.398 + 6.179 * day - 0.448 * day**2
    np.testing.assert_allclose(diff, np.broadcast_to((gain - 1) * 150.0 + offset, diff.shape))


def test_random_drift_varies_between_patients_and_sessions() -> None:
    bg = np.full((50, 4 * DAY), 150.0)
    s = CgmSensor("Dexcom", seed=2, drift=CgmDrift(session_days=2.0))
    diff = s.readings(bg) - CgmSensor("Dexcom", seed=2).readings(bg)
    start_first, start_second = diff[:, 0], diff[:, 2 * DAY]
    assert 3.0 < np.std(start_first) < 15.0  # 150 * 0.05 gain and 5 mg/dL offset SDs
    assert not np.allclose(start_first, start_second)


def test_compression_lows_only_at_night_with_bounded_depth() -> None:
    n, days = 20, 10
    bg = np.full((n, days * DAY), 150.0)
    spec = CompressionLows(rate_per_night=1.5, depth_mg_dl=(30.0, 50.0), duration_min=(20.0, 60.0))
    start_h = 12.0
    plain = CgmSensor("Navigator", seed=4, start_clock_h=start_h).readings(bg)
    pressed = CgmSensor("Navigator", seed=4, start_clock_h=start_h, compression=spec).readings(bg)
    dip = plain - pressed
    assert np.all(dip >= -1e-9) and dip.max() <= 50.0 + 1e-9
    clock_h = (start_h + np.arange(days * DAY) / 60.0) % 24.0
    night = (clock_h >= 23.0) | (clock_h < 7.0)
    assert np.all(dip[:, ~night] < 1e-9)
    episodes = np.diff((dip > 1e-9).astype(int), axis=1) == 1
    count = episodes.sum()
    assert 0.5 * n * days < count < 2.5 * n * days  # about 1.5 a night
    assert dip.max() > 30.0
    runs = [
        len(r) for row in (dip > 1e-9) for r in "".join("1" if x else "0" for x in row).split("0")
    ]
    assert max(runs) <= 3 * 60  # overlapping episodes at most merge


def test_dropouts_give_nan_runs_at_a_plausible_rate() -> None:
    n, days = 30, 5
    bg = np.full((n, days * DAY), 120.0)
    spec = CgmDropout(rate_per_day=4.0, gap_min=(10.0, 30.0))
    r = CgmSensor("GuardianRT", seed=8, dropout=spec).readings(bg)[:, ::5]
    missing = np.isnan(r)
    expected = 4.0 * 20.0 / DAY  # rate x mean gap
    assert 0.5 * expected < missing.mean() < 2.0 * expected
    starts = np.diff(missing.astype(int), axis=1) == 1
    run_mean = missing.sum() / max(starts.sum(), 1)
    assert 2.0 <= run_mean <= 7.0  # 10-30 min gaps at 5-min samples


def test_components_use_separate_streams() -> None:
    bg = np.full((3, DAY), 150.0)
    plain = CgmSensor("Dexcom", seed=3).readings(bg)
    with_dropout = CgmSensor("Dexcom", seed=3, dropout=True).readings(bg)
    ok = ~np.isnan(with_dropout)
    np.testing.assert_array_equal(with_dropout[ok], plain[ok])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"preset": "Libre9"}, "preset"),
        ({"preset": "Dexcom", "seed": None}, "seed"),
        ({"preset": "Dexcom", "seed": -1}, "seed"),
        ({"preset": "Dexcom", "seed": 1, "lag_min": -2.0}, "lag_min"),
        ({"preset": "Dexcom", "seed": 1, "drift": "yes"}, "drift"),
        (
            {"preset": "Dexcom", "seed": 1, "dropout": CgmDropout(gap_min=(30.0, 5.0))},
            "dropout.gap_min",
        ),
        (
            {"preset": "Dexcom", "seed": 1, "compression": CompressionLows(night_h=(7.0, 7.0))},
            "compression.night_h",
        ),
        ({"preset": "Dexcom", "seed": 1, "start_clock_h": 25.0}, "start_clock_h"),
        (
            {"preset": CgmPreset("X", 0.7, -0.5, 15.0, 1.7, -5.0, 0, 39.0, 600.0), "seed": 1},
            "preset.sample_time_min",
        ),
    ],
)
def test_bad_cgm_settings_name_field_value_rule(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as e:
        CgmSensor(**kwargs)
    assert e.value.field == field
    assert e.value.rule


@pytest.mark.parametrize(
    ("bg", "rule_part"),
    [
        (np.full((2, 3), np.nan), "finite"),
        (np.full((2, 3), -5.0), ">="),
        (np.zeros((2, 3)), "> 0"),
        (np.zeros((2, 3, 4)) + 100, "shape"),
    ],
)
def test_bad_glucose_input(bg: Any, rule_part: str) -> None:
    with pytest.raises(InputError) as e:
        CgmSensor("Dexcom", seed=1).readings(bg)
    assert e.value.field == "bg_mg_dl"
    assert rule_part in e.value.rule


# -- gas exchange, pulse oximetry, capnography ------------------------------------------------


def test_severinghaus_and_alveolar_gas_equation() -> None:
    s = severinghaus_saturation_pct([0.0, 26.8, 60.0, 100.0, 600.0])
    assert s[0] == 0.0
    assert s[1] == pytest.approx(49.9, abs=0.2)  # P50 about 26.8 mmHg
    assert s[2] == pytest.approx(90.6, abs=0.2)
    assert s[3] == pytest.approx(97.7, abs=0.2)
    assert np.all(np.diff(s) > 0)
    assert alveolar_po2_mmhg(0.21, 40.0) == pytest.approx(0.21 * 713 - 50.0)
    assert steady_paco2_mmhg(40.0, 0.5) == pytest.approx(80.0)


def test_gas_exchange_steady_states_and_apnoea() -> None:
    g = GasExchange(2)
    base = g.gases()
    assert base.paco2_mmhg == pytest.approx([40.0, 40.0])
    assert base.pao2_mmhg == pytest.approx([0.21 * 713 - 50.0 - 10.0] * 2)
    settled = g.step(600.0, [1.0, 0.5])
    assert settled.paco2_mmhg == pytest.approx([40.0, 80.0], rel=1e-6)
    assert settled.pao2_mmhg[1] == pytest.approx(0.21 * 713 - 100.0 - 10.0, rel=1e-6)
    a = GasExchange(1)
    a.step(10.0, [0.0])
    assert a.paco2_mmhg[0] == pytest.approx(70.0)  # 3 mmHg/min apnoeic rise

    def minutes_to_90(fio2: float) -> float:
        g = GasExchange(1, RespiratoryBaseline(fio2=fio2))
        for i in range(1, 3000):
            if g.step(1.0 / 60.0, [0.0]).sao2_pct[0] < 90.0:
                return i / 60.0
        return math.inf

    assert 0.3 < minutes_to_90(0.21) < 2.0
    assert 5.0 < minutes_to_90(1.0) < 12.0


def test_monitor_without_noise_shows_gradient_and_apnoea() -> None:
    m = RespiratoryMonitor(noise=False)
    r = m.readings(np.array([[1.0] * 5, [1.0, 0.0, 0.0, 0.0, 0.0]]))
    assert r.spo2_pct[0, 0] == round(float(severinghaus_saturation_pct(89.73)))
    assert r.etco2_mmhg[0, -1] == 36.0  # PaCO2 40 - 4 gradient
    assert r.resp_rate_bpm[0, -1] == 14.0
    assert np.all(r.etco2_mmhg[1, 1:] == 0.0) and np.all(r.resp_rate_bpm[1, 1:] == 0.0)
    assert r.spo2_pct[1, -1] < 50.0
    assert r.true.paco2_mmhg[1, -1] == pytest.approx(52.0)


def test_pulse_oximeter_averages_over_its_window() -> None:
    v = np.concatenate([np.ones(12), np.zeros(60)])[None, :]
    lag = {}
    for window in (2.0, 16.0):
        spec = PulseOximeterSpec(averaging_s=window, resolution_pct=0.0)
        r = RespiratoryMonitor(noise=False, spo2=spec).readings(v, dt_min=1.0 / 60.0)
        lag[window] = r.spo2_pct[0, 50] - r.true.sao2_pct[0, 50]
        assert not np.any(np.isnan(r.spo2_pct))
    assert lag[16.0] > lag[2.0] + 1.0 > 1.0  # a longer window lags a falling saturation more


def test_respiratory_streaming_equals_batch_and_seeds() -> None:
    rng = np.random.default_rng(1)
    v = np.clip(1.0 - np.cumsum(rng.normal(0.0, 0.02, (5, 400)), axis=1), 0.0, 1.5)
    spec = PulseOximeterSpec(
        artefacts=Artefacts(rate_per_h=30.0, false_low_fraction=0.5, false_low_depth=(5, 15))
    )
    m = RespiratoryMonitor(seed=7, spo2=spec)
    batch = m.readings(v, dt_min=0.25)
    stream = [m.measure(0.25 * j, v[:, j]) for j in range(v.shape[1])]
    for name in ("spo2_pct", "etco2_mmhg", "resp_rate_bpm"):
        got = np.stack([getattr(s, name) for s in stream], axis=1)
        np.testing.assert_array_equal(got, getattr(batch, name))
    assert np.isnan(batch.spo2_pct).any()
    same = RespiratoryMonitor(seed=7, spo2=spec).readings(v, dt_min=0.25)
    np.testing.assert_array_equal(same.spo2_pct, batch.spo2_pct)
    other = RespiratoryMonitor(seed=8, spo2=spec).readings(v, dt_min=0.25)
    assert not np.array_equal(np.nan_to_num(other.spo2_pct), np.nan_to_num(batch.spo2_pct))


def test_spo2_noise_statistics_at_steady_state() -> None:
    spec = PulseOximeterSpec(artefacts=None, bias_sd_pct=1.0, noise_sd_pct=1.0, resolution_pct=0.0)
    m = RespiratoryMonitor(RespiratoryBaseline(fio2=0.15), seed=3, spo2=spec)
    r = m.readings(np.ones((400, 240)), dt_min=0.5)
    err = r.spo2_pct - r.true.sao2_pct
    assert np.std(err.mean(axis=1)) == pytest.approx(1.0, abs=0.2)  # per-patient bias
    assert np.mean(np.std(err, axis=1)) == pytest.approx(1.0, abs=0.2)  # reading noise


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: RespiratoryMonitor(seed=1).readings([[1.0, -0.1]]), "ventilation_fraction"),
        (lambda: RespiratoryMonitor(seed=1).readings([[1.0]], [[1.0, 1.0]]), "resp_rate_fraction"),
        (lambda: RespiratoryMonitor(seed=1).readings([[1.0]], dt_min=0.0), "dt_min"),
        (lambda: RespiratoryMonitor(RespiratoryBaseline(fio2=1.5), seed=1), "baseline.fio2"),
        (RespiratoryMonitor, "seed"),
        (
            lambda: RespiratoryMonitor(seed=1, spo2=PulseOximeterSpec(averaging_s=-1)),
            "spo2.averaging_s",
        ),
        (
            lambda: RespiratoryMonitor(
                seed=1, spo2=PulseOximeterSpec(artefacts=Artefacts(duration_s=(9.0, 1.0)))
            ),
            "spo2.artefacts.duration_s",
        ),
        (lambda: GasExchange(0), "n"),
        (lambda: GasExchange(2).step(1.0, [1.0]), "ventilation_fraction"),
    ],
)
def test_bad_respiratory_input(call: Any, field: str) -> None:
    with pytest.raises(InputError) as e:
        call()
    assert e.value.field == field


# -- BIS ----------------------------------------------------------------------------------------


def test_bis_smoothing_without_noise() -> None:
    m = BisMonitor(BisSpec(smoothing_s=15.0), noise=False)
    true = np.concatenate([np.full(10, 90.0), np.full(40, 40.0)])[None, :]
    shown = m.readings(true, dt_min=5.0 / 60.0)[0]
    assert np.all(shown[:10] == 90.0)
    assert 40.0 < shown[11] < 90.0  # 5 s after the step: part of the way
    assert shown[10 + 6] == pytest.approx(40.0, abs=1.0)  # 30 s later: settled
    assert np.all(shown == np.round(shown))


def test_bis_noise_statistics_dropouts_and_range() -> None:
    m = BisMonitor(seed=4)
    shown = m.readings(np.full((200, 720), 50.0), dt_min=5.0 / 60.0)  # 1 h at 5 s
    ok = ~np.isnan(shown)
    assert np.mean(shown[ok]) == pytest.approx(50.0, abs=0.5)
    assert np.std(shown[ok]) == pytest.approx(3.0, abs=0.4)
    assert 0.001 < np.mean(~ok) < 0.1
    edge = m.readings(np.full((50, 100), 99.5), dt_min=5.0 / 60.0)
    assert np.nanmax(edge) <= 100.0


def test_bis_streaming_equals_batch_and_seeds() -> None:
    true = np.clip(95.0 - np.arange(300)[None, :] * 0.2 + np.zeros((3, 1)), 30.0, 95.0)
    m = BisMonitor(seed=12)
    batch = m.readings(true, dt_min=1.0 / 12.0)
    stream = np.stack([m.measure(j / 12.0, true[:, j]) for j in range(300)], axis=1)
    np.testing.assert_array_equal(stream, batch)
    np.testing.assert_array_equal(BisMonitor(seed=12).readings(true), batch)
    assert not np.array_equal(
        np.nan_to_num(BisMonitor(seed=13).readings(true)), np.nan_to_num(batch)
    )


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: BisMonitor(seed=1).readings([[50.0, 120.0]]), "bis_true"),
        (lambda: BisMonitor(seed=1).measure(-1.0, [50.0]), "t_min"),
        (BisMonitor, "seed"),
        (lambda: BisMonitor(BisSpec(smoothing_s=-15.0), seed=1), "bis.smoothing_s"),
        (lambda: BisMonitor(seed=1, noise="no"), "noise"),  # type: ignore[arg-type]
    ],
)
def test_bad_bis_input(call: Any, field: str) -> None:
    with pytest.raises(InputError) as e:
        call()
    assert e.value.field == field
    assert str(e.value).startswith(field)


def test_documentation_examples_run() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "sensors.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 3
    for block in blocks:
        exec(compile(block, str(doc), "exec"), {})
