"""A simulated pump fleet with gradual degradations of known onset and failures at known days.

Daily telemetry summaries, vectorised over pumps × days (no per-second ticking), in the
shape pumps report to the server (:class:`~openinfusion.analytics.telemetry.DailyTelemetry`),
so a risk model can be trained on one seeded fleet and judged honestly on others.

The physics comes from the pump engine: battery run time from :class:`openinfusion.pump.
battery.Battery` (capacity, idle and motor current; ``capacity_factor`` for fade), the
patent-line pressure and the occlusion limit from :mod:`openinfusion.pump.mechanics` and
:class:`openinfusion.pump.channel.ChannelSettings`.

Degradations (each with a known onset day, which may fall before day 0) and how they fail:

- **battery ageing** — slow near-linear capacity fade for every battery, then for some a
  "knee" after which fade accelerates (Attia et al., "Knees in lithium-ion battery aging
  trajectories", J. Electrochem. Soc. 2022); the pump fails when the capacity left cannot
  keep it running on battery (battery failure is among the most reported external infusion
  pump problems: FDA, letter to infusion pump manufacturers, 23 April 2010);
- **pressure sensor drift** — the downstream sensor reads high by an offset that grows
  daily; ordinary pressure transients then cross the occlusion limit: nuisance occlusion
  alarms ("occlusion alarm in the absence of an occlusion", FDA, Examples of reported
  infusion pump problems); it fails when the offset leaves the plausibility range;
- **motor wear** — drive effort (index, 1.0 = a new drive at rated load) rises
  exponentially with wear, with under-delivery; fails at a motor fault;
- **latch wear** — door/latch faults per infusion-hour grow until the latch breaks
  ("broken components", FDA 2010 letter); drive and latch wear start likelier the longer a
  pump has gone since preventive maintenance;
- **drops** — shocks are reported; some damage the pump at once (no warning), and a few
  failures have no precursor at all (electronics): an honest ceiling on recall.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from openinfusion.analytics.telemetry import DailyTelemetry, FloatArray
from openinfusion.errors import InputError
from openinfusion.pump.battery import Battery
from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.mechanics import Mechanism, lvp, pca_pump, syringe

#: Failure modes, in the order of ``SimulatedFleet.onset_day`` columns.
MODES = ("battery", "pressure_sensor", "motor", "latch")
#: All failure causes (``failure_mode``); "" for a pump that did not fail.
CAUSES = (*MODES, "drop", "electronics")


@dataclass(frozen=True, slots=True)
class KindProfile:
    """A pump kind of the fleet: its mechanism and typical rate (mL/h) and use."""

    mechanism: Mechanism
    rate_ml_h: float
    battery_h_per_day: float  # mean hours on battery per day (transport, ambulation)
    drops_per_day: float


KINDS: dict[str, KindProfile] = {
    "syringe": KindProfile(syringe(50), 5.0, 1.0, 0.0007),
    "lvp": KindProfile(lvp(), 100.0, 1.2, 0.0003),
    "pca": KindProfile(pca_pump(), 2.0, 3.0, 0.0015),
}


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """What to simulate. Probabilities are per pump over the whole period."""

    pumps: int = 200
    days: int = 365
    seed: int = 1
    p_battery: float = 0.25
    p_sensor: float = 0.15
    p_motor: float = 0.15
    p_latch: float = 0.15
    electronics_per_day: float = 1 / 4000
    drop_damage_probability: float = 0.15

    def check(self) -> None:
        if not 1 <= self.pumps <= 100_000:
            raise InputError("pumps", self.pumps, "must be 1 to 100000")
        if not 30 <= self.days <= 3650:
            raise InputError("days", self.days, "must be 30 to 3650")
        for name in ("p_battery", "p_sensor", "p_motor", "p_latch", "drop_damage_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(name, value, "must be a probability from 0 to 1")


@dataclass(slots=True)
class SimulatedFleet:
    """Telemetry plus the truth behind it (known onsets and failure days)."""

    config: FleetConfig
    telemetry: DailyTelemetry
    onset_day: FloatArray  # pumps × MODES, NaN when that degradation never starts
    failure_day: NDArray[np.int64]  # day of failure, ``days`` when none in the period
    failure_mode: list[str]
    under_delivery: FloatArray = field(repr=False)  # fraction below programmed, per day

    @property
    def failures(self) -> int:
        return int((self.failure_day < self.config.days).sum())


def full_charge_runtime_h(
    battery: Battery, capacity_factor: FloatArray, rate_ml_h: FloatArray
) -> FloatArray:
    """Run time (h) of a fully charged ``battery`` faded to ``capacity_factor`` at a flow
    rate: what :meth:`Battery.runtime_s` gives with ``charge_mah`` at full capacity."""
    current = battery.idle_ma + battery.extra_drain_ma + battery.motor_ma_per_ml_h * rate_ml_h
    return np.asarray(battery.capacity_mah * capacity_factor / current, dtype=np.float64)


def patent_pressure_mmhg(mechanism: Mechanism, rate_ml_h: FloatArray) -> FloatArray:
    """Downstream pressure of an open line at ``rate_ml_h`` (the channel's patent model)."""
    return np.asarray(
        mechanism.patient_pressure_mmhg + rate_ml_h / 3600.0 * mechanism.resistance_mmhg_s_per_ml,
        dtype=np.float64,
    )


def _first_true(mask: NDArray[np.bool_], days: int) -> NDArray[np.int64]:
    """Index of the first True along days, ``days`` where none."""
    first = np.argmax(mask, axis=1)
    return np.where(mask.any(axis=1), first, days).astype(np.int64)


def _onsets(rng: np.random.Generator, n: int, p: float | FloatArray, days: int) -> FloatArray:
    starts = rng.uniform(-90.0, days, n)
    return np.where(rng.random(n) < p, starts, np.nan)


def simulate_fleet(config: FleetConfig) -> SimulatedFleet:
    """Simulate ``config.pumps`` pumps for ``config.days`` days (seeded, deterministic)."""
    config.check()
    rng = np.random.default_rng(config.seed)
    n, days = config.pumps, config.days
    t = np.arange(days, dtype=np.float64)[None, :]
    kind_names = list(KINDS)
    kind_index = rng.integers(0, len(kind_names), n)
    kinds = [kind_names[k] for k in kind_index]
    profiles = [KINDS[k] for k in kinds]
    settings = ChannelSettings()
    battery = Battery()
    # Days since preventive maintenance at day 0: wear of moving parts (drive, latch) is
    # likelier the longer a pump has gone without it.
    service_age = rng.uniform(0.0, 365.0, n)
    wear_odds = 0.5 + service_age / 365.0

    # Use: utilisation per pump, hours infusing and on battery per day, rates of the day.
    utilisation = rng.beta(4.0, 3.0, n)[:, None]
    idle_day = rng.random((n, days)) < 0.1
    infusion_h = np.clip(24.0 * utilisation + rng.normal(0, 4.0, (n, days)), 0.0, 24.0)
    infusion_h[idle_day] = 0.0
    base_rate = np.array([p.rate_ml_h for p in profiles])[:, None]
    rate = base_rate * rng.lognormal(0.0, 0.3, (n, days))
    battery_mean = np.array([p.battery_h_per_day for p in profiles])[:, None]
    battery_h = np.minimum(rng.gamma(1.0, 1.0, (n, days)) * battery_mean, infusion_h)

    # Battery: linear fade with age, a knee for some (accelerating fade after onset).
    battery_age_y = rng.uniform(0.0, 2.0, n)[:, None]
    linear = 1.0 - 0.06 * (battery_age_y + t / 365.0)
    onset_battery = _onsets(rng, n, config.p_battery, days)
    knee_tau = rng.uniform(60.0, 150.0, n)
    since = np.clip(t - np.nan_to_num(onset_battery, nan=np.inf)[:, None], 0.0, None)
    factor = linear - 0.2 * (since / knee_tau[:, None]) ** 2
    runtime_true = full_charge_runtime_h(battery, np.clip(factor, 0.01, None), rate)
    runtime_h = runtime_true * rng.normal(1.0, 0.04, (n, days))
    runtime_h[battery_h < 1.0] = np.nan
    fail_battery = _first_true(factor < rng.uniform(0.55, 0.65, n)[:, None], days)

    # Pressure sensor: calibration offset, then drift; transients cross the limit.
    onset_sensor = _onsets(rng, n, config.p_sensor, days)
    drift_rate = rng.uniform(1.5, 5.0, n)[:, None]
    since = np.clip(t - np.nan_to_num(onset_sensor, nan=np.inf)[:, None], 0.0, None)
    offset = rng.normal(0.0, 20.0, n)[:, None] + drift_rate * since
    patent = np.zeros((n, days))
    for k, name in enumerate(kind_names):
        rows = kind_index == k
        patent[rows] = patent_pressure_mmhg(KINDS[name].mechanism, rate[rows])
    margin = np.clip(settings.occlusion_limit_mmhg - patent - offset, 0.0, None)
    transients_per_h, transient_scale_mmhg = 0.3, 70.0
    nuisance = transients_per_h * np.exp(-margin / transient_scale_mmhg)
    clinical_occlusion = rng.gamma(2.0, 0.004, n)[:, None]  # per infusion-hour
    occlusion = rng.poisson(infusion_h * (clinical_occlusion + nuisance)).astype(np.float64)
    air = rng.poisson(infusion_h * rng.gamma(2.0, 0.0015, n)[:, None]).astype(np.float64)
    fail_sensor = _first_true(np.abs(offset) > rng.uniform(330.0, 420.0, n)[:, None], days)

    # Motor: drive effort rises exponentially from onset; under-delivery follows.
    onset_motor = _onsets(rng, n, np.clip(config.p_motor * wear_odds, 0, 1), days)
    motor_tau = rng.uniform(30.0, 70.0, n)[:, None]
    since = np.clip(t - np.nan_to_num(onset_motor, nan=np.inf)[:, None], 0.0, None)
    effort_true = rng.normal(1.0, 0.05, n)[:, None] + 0.05 * np.expm1(since / motor_tau)
    effort = effort_true + rng.normal(0.0, 0.03, (n, days))
    effort[infusion_h < 1.0] = np.nan
    under_delivery = np.clip(0.04 * (effort_true - 1.0), 0.0, None)
    fail_motor = _first_true(effort_true > rng.uniform(1.5, 1.8, n)[:, None], days)

    # Latch: door faults per infusion-hour grow from onset until it breaks.
    onset_latch = _onsets(rng, n, np.clip(config.p_latch * wear_odds, 0, 1), days)
    since = np.clip(t - np.nan_to_num(onset_latch, nan=np.inf)[:, None], 0.0, None)
    door_rate = rng.gamma(2.0, 0.002, n)[:, None] + rng.uniform(0.0005, 0.0015, n)[:, None] * since
    door = rng.poisson(infusion_h * door_rate).astype(np.float64)
    life = rng.uniform(45.0, 120.0, n)
    fail_latch = np.where(
        np.isnan(onset_latch), days, np.ceil(np.nan_to_num(onset_latch) + life)
    ).astype(np.int64)
    fail_latch = np.clip(fail_latch, 0, days)

    # Drops (reported) and failures with no precursor.
    drop_rate = np.array([p.drops_per_day for p in profiles])[:, None]
    shocks = rng.poisson(np.broadcast_to(drop_rate, (n, days))).astype(np.float64)
    damaging = (shocks > 0) & (rng.random((n, days)) < config.drop_damage_probability)
    fail_drop = _first_true(damaging, days) + 1  # found broken the day after
    fail_drop = np.minimum(fail_drop, days)
    fail_electronics = np.minimum(
        rng.geometric(config.electronics_per_day, n).astype(np.int64), days
    )

    by_cause = np.stack(
        [fail_battery, fail_sensor, fail_motor, fail_latch, fail_drop, fail_electronics], axis=1
    )
    # A pump already failed at day 0 (onset long before) starts the period just repaired:
    # its failure is moved to day 1 so every pump has at least one day in service.
    failure_day = np.maximum(by_cause.min(axis=1), 1)
    failure_day = np.where(by_cause.min(axis=1) >= days, days, failure_day)
    cause_index = by_cause.argmin(axis=1)
    failure_mode = [
        CAUSES[c] if f < days else "" for c, f in zip(cause_index, failure_day, strict=True)
    ]
    in_service = t < failure_day[:, None]

    def mask(values: FloatArray, fill: float) -> FloatArray:
        return np.where(in_service, values, fill)

    telemetry = DailyTelemetry(
        pump_ids=[f"SIM-{config.seed}-{i + 1:05d}" for i in range(n)],
        kinds=kinds,
        infusion_h=mask(infusion_h, 0.0),
        battery_h=mask(battery_h, 0.0),
        runtime_h=mask(runtime_h, np.nan),
        occlusion=mask(occlusion, 0.0),
        air=mask(air, 0.0),
        door=mask(door, 0.0),
        effort=mask(effort, np.nan),
        shocks=mask(shocks, 0.0),
        service_age_d=service_age,
        in_service=in_service,
    )
    return SimulatedFleet(
        config=config,
        telemetry=telemetry,
        onset_day=np.stack([onset_battery, onset_sensor, onset_motor, onset_latch], axis=1),
        failure_day=failure_day.astype(np.int64),
        failure_mode=failure_mode,
        under_delivery=mask(under_delivery, 0.0),
    )
