"""The simulated fleet: seeded, fast, built on the pump engine's models, and its known
degradations show in the telemetry before the failures they cause."""

from __future__ import annotations

import time

import numpy as np
import pytest

from openinfusion.analytics.fleet_sim import (
    KINDS,
    MODES,
    FleetConfig,
    full_charge_runtime_h,
    patent_pressure_mmhg,
    simulate_fleet,
)
from openinfusion.errors import InputError
from openinfusion.pump.battery import Battery


@pytest.fixture(scope="module")
def fleet():  # type: ignore[no-untyped-def]
    return simulate_fleet(FleetConfig(pumps=600, days=365, seed=5))


def test_same_seed_same_fleet_and_other_seeds_differ() -> None:
    a = simulate_fleet(FleetConfig(pumps=50, days=60, seed=9))
    b = simulate_fleet(FleetConfig(pumps=50, days=60, seed=9))
    c = simulate_fleet(FleetConfig(pumps=50, days=60, seed=10))
    assert np.array_equal(a.telemetry.occlusion, b.telemetry.occlusion)
    assert np.array_equal(a.telemetry.runtime_h, b.telemetry.runtime_h, equal_nan=True)
    assert np.array_equal(a.failure_day, b.failure_day)
    assert not np.array_equal(a.telemetry.infusion_h, c.telemetry.infusion_h)


def test_run_time_is_the_engine_battery_run_time() -> None:
    battery = Battery()
    factors = np.array([1.0, 0.8, 0.55])
    rates = np.array([5.0, 100.0, 2.0])
    got = full_charge_runtime_h(battery, factors, rates)
    for f, r, g in zip(factors, rates, got, strict=True):
        aged = Battery(capacity_factor=f, charge_mah=battery.capacity_mah * f)
        assert g == pytest.approx(aged.runtime_s(r) / 3600.0, rel=1e-12)


def test_patent_pressure_follows_the_mechanism() -> None:
    mech = KINDS["lvp"].mechanism
    p = patent_pressure_mmhg(mech, np.array([0.0, 100.0]))
    assert p[0] == pytest.approx(mech.patient_pressure_mmhg)
    assert p[1] == pytest.approx(
        mech.patient_pressure_mmhg + 100 / 3600 * mech.resistance_mmhg_s_per_ml
    )


def test_many_pump_days_per_second() -> None:
    started = time.perf_counter()
    simulate_fleet(FleetConfig(pumps=1000, days=365, seed=2))
    elapsed = time.perf_counter() - started
    assert 365_000 / elapsed > 100_000, f"{365_000 / elapsed:.0f} pump-days/s"


def test_no_telemetry_after_failure(fleet) -> None:  # type: ignore[no-untyped-def]
    tel = fleet.telemetry
    failed = np.flatnonzero(fleet.failure_day < fleet.config.days)
    assert failed.size > 50
    for p in failed[:20]:
        f = fleet.failure_day[p]
        assert not tel.in_service[p, f:].any() and tel.in_service[p, :f].all()
        assert tel.infusion_h[p, f:].sum() == 0 and np.isnan(tel.runtime_h[p, f:]).all()


def _failed_by(fleet, mode: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    modes = np.array(fleet.failure_mode)
    f = fleet.failure_day
    return np.flatnonzero((modes == mode) & (f >= 60) & (f < fleet.config.days))


def test_onset_precedes_each_degradation_failure(fleet) -> None:  # type: ignore[no-untyped-def]
    for column, mode in enumerate(MODES):
        pumps = _failed_by(fleet, mode)
        assert pumps.size >= 5, mode
        assert (fleet.onset_day[pumps, column] < fleet.failure_day[pumps]).all(), mode


def test_battery_failures_show_falling_run_time(fleet) -> None:  # type: ignore[no-untyped-def]
    tel = fleet.telemetry
    ratios = []
    for p in _failed_by(fleet, "battery"):
        f = fleet.failure_day[p]
        ratios.append(np.nanmean(tel.runtime_h[p, f - 14 : f]) / np.nanmean(tel.runtime_h[p, :30]))
    healthy = [
        np.nanmean(tel.runtime_h[p, 320:334]) / np.nanmean(tel.runtime_h[p, :30])
        for p in np.flatnonzero(np.isnan(fleet.onset_day[:, 0]) & (fleet.failure_day >= 365))
    ]
    assert np.nanmedian(ratios) < 0.85 < np.nanmedian(healthy)


def test_sensor_drift_brings_nuisance_occlusions(fleet) -> None:  # type: ignore[no-untyped-def]
    tel = fleet.telemetry

    def per_100h(p: int, a: int, b: int) -> float:
        return 100 * tel.occlusion[p, a:b].sum() / max(tel.infusion_h[p, a:b].sum(), 1.0)

    drifting = [
        per_100h(p, f - 14, f)
        for p in _failed_by(fleet, "pressure_sensor")
        for f in [fleet.failure_day[p]]
    ]
    fleet_rate = 100 * tel.occlusion.sum() / tel.infusion_h.sum()
    assert np.median(drifting) > 3 * fleet_rate


def test_motor_wear_raises_drive_effort_and_under_delivery(fleet) -> None:  # type: ignore[no-untyped-def]
    tel = fleet.telemetry
    worn = _failed_by(fleet, "motor")
    efforts = [np.nanmean(tel.effort[p, f - 7 : f]) for p in worn for f in [fleet.failure_day[p]]]
    assert np.nanmedian(efforts) > 1.35
    assert all(fleet.under_delivery[p, fleet.failure_day[p] - 1] > 0.01 for p in worn)


def test_latch_wear_raises_door_faults(fleet) -> None:  # type: ignore[no-untyped-def]
    tel = fleet.telemetry
    late = [
        tel.door[p, f - 14 : f].sum() / max(tel.infusion_h[p, f - 14 : f].sum(), 1.0)
        for p in _failed_by(fleet, "latch")
        for f in [fleet.failure_day[p]]
    ]
    assert np.median(late) > 3 * tel.door.sum() / tel.infusion_h.sum()


@pytest.mark.parametrize(("field", "value"), [("pumps", 0), ("days", 5), ("p_motor", 1.5)])
def test_bad_config_names_the_field(field: str, value: float) -> None:
    with pytest.raises(InputError) as err:
        simulate_fleet(FleetConfig(**{field: value}))  # type: ignore[arg-type]
    assert err.value.field == field
