"""Battery model shared by a device's channels: drain, warnings, depletion.

Current draw is an idle current plus a motor term proportional to the total flow
(mA per mL/h). Between events the draw is constant, so the time at which the remaining
run time crosses the low-battery and depleted thresholds is exact. Thresholds follow the
generic infusion pump requirements (HOSPITAL_REFERENCE §3 "Power": low-battery alarm at
least 15 min before depletion; depleted alarm with at least 5 min left); we warn at 30 min.
``capacity_factor`` models ageing (capacity fade) for predictive maintenance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class Battery:
    """Charge in mAh; currents in mA; thresholds in seconds of remaining run time."""

    capacity_mah: float = 2500.0
    charge_mah: float = 2500.0
    idle_ma: float = 25.0
    motor_ma_per_ml_h: float = 0.4
    charge_rate_ma: float = 1000.0
    low_runtime_s: float = 30 * 60.0
    depleted_runtime_s: float = 5 * 60.0
    capacity_factor: float = 1.0
    extra_drain_ma: float = 0.0
    on_mains: bool = False

    def current_ma(self, total_rate_ml_h: float) -> float:
        return self.idle_ma + self.extra_drain_ma + self.motor_ma_per_ml_h * total_rate_ml_h

    def runtime_s(self, total_rate_ml_h: float) -> float:
        """Remaining run time at this draw (inf on mains)."""
        if self.on_mains:
            return math.inf
        return self.charge_mah / self.current_ma(total_rate_ml_h) * 3600.0

    def advance(self, dt_s: float, total_rate_ml_h: float) -> None:
        if dt_s <= 0:
            return
        full = self.capacity_mah * self.capacity_factor
        if self.on_mains:
            self.charge_mah = min(full, self.charge_mah + self.charge_rate_ma * dt_s / 3600.0)
        else:
            used = self.current_ma(total_rate_ml_h) * dt_s / 3600.0
            self.charge_mah = max(0.0, self.charge_mah - used)

    def time_to_runtime(self, runtime_s: float, total_rate_ml_h: float) -> float:
        """Seconds until the remaining run time falls to ``runtime_s`` (inf if never)."""
        if self.on_mains:
            return math.inf
        current = self.current_ma(total_rate_ml_h)
        target_mah = current * runtime_s / 3600.0
        if self.charge_mah <= target_mah:
            return 0.0
        return (self.charge_mah - target_mah) / current * 3600.0

    @property
    def percent(self) -> float:
        return 100.0 * self.charge_mah / (self.capacity_mah * self.capacity_factor)
