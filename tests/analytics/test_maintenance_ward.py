"""Worn parts on the simulated ward's pumps, acted out on the real engine."""

from __future__ import annotations

import pytest

from openinfusion.server.ward.beds import build_pump, plan_ward
from openinfusion.server.ward.degradation import AGED_CAPACITY, apply_wear, wear_mode
from openinfusion.server.ward.pumps import SimPump

HOURS = 6


def _ward_pump(index: int, seed: int = 1) -> SimPump:
    name, serial, rng = plan_ward(index + 1, seed)[index]
    pump = build_pump(name, serial, rng)
    return pump


def _run(pump: SimPump, hours: float = HOURS) -> SimPump:
    pump.start()
    pump.advance_to(hours * 3600.0)
    return pump


def test_one_pump_in_four_is_worn_cycling_through_the_parts() -> None:
    modes = [wear_mode(serial) for _, serial, _ in plan_ward(24, 3)]
    assert modes[1::4] == [
        "battery",
        "pressure_sensor",
        "motor",
        "latch",
        "battery",
        "pressure_sensor",
    ]
    assert all(m is None for i, m in enumerate(modes) if i % 4 != 1)
    assert wear_mode("BED-X") is None


def _records(pump: SimPump, kind: str) -> list[dict[str, object]]:
    return [r.data for r in pump.device.records if r.kind == kind]


def test_every_pump_reports_self_tests_and_a_healthy_drive_stays_near_one() -> None:
    pump = _ward_pump(0)
    assert apply_wear(pump) is None
    _run(pump)
    efforts = [float(d["drive_effort"]) for d in _records(pump, "self_test")]  # type: ignore[arg-type]
    assert len(efforts) >= HOURS * 2 - 1
    assert all(0.85 < e < 1.15 for e in efforts)


def test_aged_battery_drains_faster_than_a_healthy_one() -> None:
    worn, healthy = _ward_pump(1), _ward_pump(1, seed=2)
    healthy.serial = "SIM-2-001"  # same bed profile, not worn
    assert apply_wear(worn) == "battery" and apply_wear(healthy) is None
    assert worn.device.battery.capacity_factor == AGED_CAPACITY
    start_worn, start_ok = worn.device.battery.percent, healthy.device.battery.percent
    _run(worn), _run(healthy)
    used_worn = start_worn - worn.device.battery.percent
    used_ok = start_ok - healthy.device.battery.percent
    # neither bed's own fault plan plugs its pump in within these hours
    assert not worn.device.battery.on_mains and not healthy.device.battery.on_mains
    assert used_worn == pytest.approx(used_ok / AGED_CAPACITY, rel=0.35)


def test_drifting_sensor_raises_nuisance_occlusions_the_nurse_clears() -> None:
    pump = _ward_pump(5)
    assert apply_wear(pump) == "pressure_sensor"
    _run(pump)
    raised = [d for d in _records(pump, "alarm") if d.get("code") == "occlusion_downstream"]
    assert len(raised) >= HOURS - 1
    assert pump.device.channels[0].state.value in ("running", "kvo", "paused", "complete")


def test_worn_drive_reports_rising_effort() -> None:
    pump = _ward_pump(9)
    assert apply_wear(pump) == "motor"
    _run(pump)
    efforts = [float(d["drive_effort"]) for d in _records(pump, "self_test")]  # type: ignore[arg-type]
    assert efforts[0] > 1.3 and efforts[-1] > efforts[0] + 0.1


def test_worn_latch_opens_the_door() -> None:
    pump = _ward_pump(13)
    assert apply_wear(pump) == "latch"
    _run(pump)
    doors = [d for d in _records(pump, "alarm") if d.get("code") == "door_open"]
    assert len(doors) >= 3


def test_wear_is_the_same_for_the_same_ward() -> None:
    a, b = _ward_pump(9), _ward_pump(9)
    apply_wear(a), apply_wear(b)
    _run(a, 3), _run(b, 3)
    assert _records(a, "self_test") == _records(b, "self_test")
