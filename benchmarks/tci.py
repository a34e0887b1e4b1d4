"""Time of a 1-h effect-site TCI plan for one patient, beside a naive planner in the same run.

Run: ``uv run python benchmarks/tci.py`` (``--json`` for machine output).

Ours: ``TciController(model)`` (exact step and look-ahead maps, built once) plus
``plan(4 µg/mL, 1 h, "effect")`` at 10-s updates, propofol Schnider, 40 y/70 kg/170 cm M,
pump limit 1200 mL/h of 10 mg/mL; also the plan alone with the controller reused.
Baseline, same run: the same Shafer-Gregg rule computed the straightforward way, two
``simulate`` calls per step (the free Ce over the 20-min look-ahead on a 1-s grid, then the
state after the step), as per-step solvers do. The baseline runs ``--baseline-minutes``
and is scaled to 1 h; the rates of both over that span are compared (max |difference|).
Wall-clock ms (``time.perf_counter``), best of ``--repeats``. Target: < 10 ms per 1-h plan.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from openinfusion.control import TciController
from openinfusion.physiology.pk import (
    Covariates,
    ModelOptions,
    PkModel,
    PkState,
    Schedule,
    build_model,
    simulate,
)

TARGET_MS = 10.0
STEP_S = 10.0
MAX_RATE_PER_S = 1200.0 * 10.0 / 3600.0  # mg/s


def naive_plan(model: PkModel, target: float, minutes: float) -> np.ndarray:
    """Shafer-Gregg with the same switch to capped plasma maintenance, by simulation at
    every step (rates in mg/s)."""
    tau = np.arange(1.0, 1201.0)
    at_end = int(STEP_S) - 1  # tau index of the end of the step
    response = simulate(model, Schedule.build(infusions=[(0, STEP_S, 1.0)]), tau)
    unit, cp_unit = response.ce[0], response.cp[0, at_end]
    state = PkState(0.0, np.zeros((1, 3)), np.zeros(1))
    rates = []
    maintaining = False
    for k in range(int(minutes * 60 / STEP_S)):
        t0 = k * STEP_S
        free = simulate(model, Schedule.build(), t0 + tau, initial=state)
        cp, ce = state.amounts[0, 0] / model.v1_l[0], state.ce[0]
        maintaining = maintaining or (
            abs(target - ce) <= 0.05 * target and abs(target - cp) <= 0.2 * target
        )
        rate = float(np.clip(np.min((target - free.ce[0]) / unit), 0.0, MAX_RATE_PER_S))
        if maintaining:
            plasma = (target - free.cp[0, at_end]) / cp_unit
            rate = float(np.clip(min(rate, plasma), 0.0, MAX_RATE_PER_S))
        rates.append(rate)
        step = Schedule.build(infusions=[(t0, t0 + STEP_S, rate)])
        state = simulate(model, step, np.array([t0 + STEP_S]), initial=state).final
    return np.array(rates)


def best_ms(fn: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1e3)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--baseline-minutes", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    cov = Covariates(age_years=40, weight_kg=70, height_cm=170, male=True)
    _, model = build_model("propofol", "schnider", cov, ModelOptions())
    TciController(model, STEP_S, MAX_RATE_PER_S).plan(4.0, 3600, "effect")  # warm-up

    def ours() -> object:
        return TciController(model, STEP_S, MAX_RATE_PER_S).plan(4.0, 3600, "effect")

    controller = TciController(model, STEP_S, MAX_RATE_PER_S)
    controller.plan(4.0, 60, "effect")
    full_ms = best_ms(ours, args.repeats)
    plan_ms = best_ms(lambda: controller.plan(4.0, 3600, "effect"), args.repeats)
    start = time.perf_counter()
    baseline = naive_plan(model, 4.0, args.baseline_minutes)
    base_ms = (time.perf_counter() - start) * 1e3 * 60.0 / args.baseline_minutes
    plan = controller.plan(4.0, 3600, "effect")
    diff = float(np.max(np.abs(plan.rate_per_s[: baseline.size] - baseline)) * 3600.0)
    result = {
        "ms_per_1h_effect_plan": full_ms,
        "ms_per_1h_effect_plan_reused_controller": plan_ms,
        "baseline_ms_per_1h_plan": base_ms,
        "speedup_vs_baseline": base_ms / full_ms,
        "max_abs_rate_difference_mg_h": diff,
        "target_ms": TARGET_MS,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"ours: {full_ms:.2f} ms per 1-h effect-site plan ({plan_ms:.2f} ms reusing the maps)")
    print(f"baseline (simulate per step): {base_ms:.0f} ms per 1-h plan")
    print(f"speedup: {base_ms / full_ms:.0f}x; max |rate difference| {diff:.3g} mg/h")
    print(f"target < {TARGET_MS:g} ms: {'met' if full_ms < TARGET_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
