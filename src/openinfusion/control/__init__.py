"""Layer 3: controllers that decide what a pump should deliver: target-controlled infusion
(:mod:`.tci`) and model-informed precision dosing (:mod:`.mipd`).

Controllers are pure functions of their inputs (model, targets, state): no device I/O.
"""

from openinfusion.control.tci import (
    Site,
    TciController,
    TciPlan,
    decrement_time_s,
    plan_tci,
)

__all__ = ["Site", "TciController", "TciPlan", "decrement_time_s", "plan_tci"]
