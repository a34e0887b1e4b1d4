"""Worn parts on some pumps of the simulated ward, so the maintenance queue shows real signs.

Every hospital, PCA and ambulatory pump of the ward runs a periodic self-test that reports
its drive effort (a load index, 1.0 = a new drive at rated load) as a ``self_test`` event.
One pump in four is worn, in one of four ways, each acted out on the real engine:

- ``battery``: an aged battery (capacity faded to ``AGED_CAPACITY`` of rated), so its
  charge falls faster on every status it reports;
- ``pressure_sensor``: a downstream sensor drifted high (the occlusion limit is reached
  ``DRIFTED_MARGIN_MMHG`` above the patient's pressure): line transients every 30-60
  pump-minutes become nuisance occlusion alarms, cleared by the nurse;
- ``motor``: a worn drive whose effort rises by the hour;
- ``latch``: a worn door latch: the door opens during infusion every 40-80 pump-minutes.

Which pump wears, and how, depends on its place in the ward (from its serial) and the ward's
seed only, so the same ward always has the same worn pumps.
"""

from __future__ import annotations

import random
from dataclasses import replace

from openinfusion.server.ward.pumps import SimPump

WEAR_MODES = ("battery", "pressure_sensor", "motor", "latch")
#: Kinds with a drive, a door and a downstream sensor (the insulin patch and the implant
#: are left alone).
WEARABLE_KINDS = frozenset({"syringe", "lvp", "pca", "ambulatory"})
SELF_TEST_S = 30 * 60.0
AGED_CAPACITY = 0.4
WORN_EFFORT = 1.35  # drive effort when the ward starts
EFFORT_RISE_PER_H = 0.03
DRIFTED_MARGIN_MMHG = 80.0


def wear_mode(serial: str) -> str | None:
    """The worn part of the ward pump ``serial`` (``SIM-<seed>-<n>``), or None: pumps 2, 6,
    10, ... are worn, cycling through :data:`WEAR_MODES`."""
    tail = serial.rsplit("-", 1)[-1]
    if not tail.isdigit():
        return None
    index = int(tail) - 1
    if index % 4 != 1:
        return None
    return WEAR_MODES[(index // 4) % len(WEAR_MODES)]


def apply_wear(pump: SimPump) -> str | None:
    """Start the self-tests and the pump's wear (if any); returns the worn part."""
    if pump.profile.kind not in WEARABLE_KINDS:
        return None
    mode = wear_mode(pump.serial)
    rng = random.Random(f"{pump.serial}:wear")
    start = pump.device.t_s
    base_effort = rng.gauss(1.0, 0.03)

    def self_test(p: SimPump) -> None:
        hours = (p.device.t_s - start) / 3600.0
        effort = base_effort + rng.gauss(0.0, 0.02)
        if mode == "motor":
            effort = WORN_EFFORT + EFFORT_RISE_PER_H * hours + rng.gauss(0.0, 0.02)
        p.at(p.device.t_s + SELF_TEST_S, "self-test", self_test)
        if p.device.powered:
            p.device.self_test({"drive_effort": round(effort, 3)})

    pump.at(start + rng.uniform(60.0, SELF_TEST_S), "self-test", self_test)
    if mode == "battery":
        battery = pump.device.battery
        battery.capacity_factor = AGED_CAPACITY
        battery.charge_mah = min(battery.charge_mah, battery.capacity_mah * AGED_CAPACITY)
    elif mode == "pressure_sensor":
        # A sensor reading high by an offset alarms as a sound one would with its limit
        # lowered by that offset: ordinary transients (a kink, the patient moving) now
        # reach it within seconds instead of never.
        channel = pump.device.channels[0]
        limit = channel.mech.patient_pressure_mmhg + DRIFTED_MARGIN_MMHG
        channel.settings = replace(channel.settings, occlusion_limit_mmhg=limit)
        _repeat(pump, rng, (30 * 60.0, 60 * 60.0), "occlusion", "clear_occlusion")
    elif mode == "latch":
        _repeat(pump, rng, (40 * 60.0, 80 * 60.0), "door_open", "door_close")
    if mode is not None:
        pump.log.append((start, f"worn part: {mode}"))
    return mode


def _repeat(
    pump: SimPump, rng: random.Random, every_s: tuple[float, float], fault: str, cleared: str
) -> None:
    """``fault`` on channel 1 now and then; a nurse clears it 1-3 minutes later."""

    def happen(p: SimPump) -> None:
        p.at(p.device.t_s + rng.uniform(*every_s), f"worn: {fault}", happen)
        p.at(p.device.t_s + rng.uniform(60.0, 180.0), f"nurse after {fault}", restore)
        p.fault(0, fault)

    def restore(p: SimPump) -> None:
        p.nurse_restores(0, cleared)

    pump.at(pump.device.t_s + rng.uniform(*every_s), f"worn: {fault}", happen)
