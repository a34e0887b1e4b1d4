"""Predictive maintenance: simulated pump-days per second, and the risk model vs the rule.

Run: ``uv run python benchmarks/maintenance.py`` (add ``--json`` for machine output).

Speed. Workload: a fleet of ``--pumps`` pumps over ``--days`` days with every degradation
(battery fade with knees, sensor drift, motor and latch wear, drops), simulated as daily
telemetry arrays by :func:`openinfusion.analytics.fleet_sim.simulate_fleet`. Baseline,
measured in the same run: the same daily model written the plain way, one pump and one
day at a time in a Python loop (the engine's ``Battery`` object asked for each day's run
time), for ``--baseline-pumps`` pumps over the same days.

Quality. The risk model and the threshold rule on ``--eval-seeds`` held-out fleets
(seeds 101, 102, ...), same pump-days, same alert budget: PR-AUC, precision, recall and
median lead time (days from the first alert to the failure).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from typing import Any

from openinfusion.analytics.fleet_sim import KINDS, FleetConfig, simulate_fleet
from openinfusion.analytics.maintenance_eval import evaluate
from openinfusion.analytics.maintenance_model import TRAIN_CONFIG, TRAIN_SEED, train
from openinfusion.pump.battery import Battery
from openinfusion.pump.channel import ChannelSettings


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method (small means)."""
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def naive_fleet(pumps: int, days: int, seed: int) -> list[dict[str, list[float]]]:
    """The fleet model one pump-day at a time (same distributions, plain Python)."""
    rng = random.Random(seed)
    limit = ChannelSettings().occlusion_limit_mmhg
    out = []
    for _ in range(pumps):
        kind = rng.choice(list(KINDS))
        profile = KINDS[kind]
        mech = profile.mechanism
        util = rng.betavariate(4.0, 3.0)
        age_y = rng.uniform(0.0, 2.0)
        onset_b = rng.uniform(-90, days) if rng.random() < 0.25 else math.inf
        tau_b = rng.uniform(60.0, 150.0)
        onset_s = rng.uniform(-90, days) if rng.random() < 0.15 else math.inf
        drift = rng.uniform(1.5, 5.0)
        offset0 = rng.gauss(0.0, 20.0)
        clinical = rng.gammavariate(2.0, 0.004)
        air_rate = rng.gammavariate(2.0, 0.0015)
        onset_m = rng.uniform(-90, days) if rng.random() < 0.15 else math.inf
        tau_m = rng.uniform(30.0, 70.0)
        effort0 = rng.gauss(1.0, 0.05)
        onset_l = rng.uniform(-90, days) if rng.random() < 0.15 else math.inf
        door0, door_slope = rng.gammavariate(2.0, 0.002), rng.uniform(0.0005, 0.0015)
        series: dict[str, list[float]] = {k: [] for k in ("runtime_h", "occlusion", "door")}
        series |= {"effort": [], "air": [], "infusion_h": [], "shocks": []}
        for d in range(days):
            hours = 0.0 if rng.random() < 0.1 else min(24.0, max(0.0, rng.gauss(24 * util, 4)))
            rate = profile.rate_ml_h * rng.lognormvariate(0.0, 0.3)
            on_battery = min(rng.expovariate(1.0) * profile.battery_h_per_day, hours)
            factor = 1.0 - 0.06 * (age_y + d / 365.0)
            factor -= 0.2 * (max(0.0, d - onset_b) / tau_b) ** 2
            full = 2500.0 * max(factor, 0.01)
            battery = Battery(capacity_factor=max(factor, 0.01), charge_mah=full)
            runtime = battery.runtime_s(rate) / 3600.0 * rng.gauss(1.0, 0.04)
            series["runtime_h"].append(runtime if on_battery >= 1.0 else math.nan)
            patent = mech.patient_pressure_mmhg + rate / 3600.0 * mech.resistance_mmhg_s_per_ml
            offset = offset0 + drift * max(0.0, d - onset_s)
            margin = max(0.0, limit - patent - offset)
            nuisance = 0.3 * math.exp(-margin / 70.0)
            series["occlusion"].append(_poisson(rng, hours * (clinical + nuisance)))
            series["air"].append(_poisson(rng, hours * air_rate))
            wear = 0.05 * math.expm1(max(0.0, d - onset_m) / tau_m)
            effort = effort0 + wear + rng.gauss(0.0, 0.03)
            series["effort"].append(effort if hours >= 1.0 else math.nan)
            door = door0 + door_slope * max(0.0, d - onset_l)
            series["door"].append(_poisson(rng, hours * door))
            series["shocks"].append(_poisson(rng, profile.drops_per_day))
            series["infusion_h"].append(hours)
        out.append(series)
    return out


def best_of(repeats: int, fn: Any) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pumps", type=int, default=2000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--baseline-pumps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eval-pumps", type=int, default=300)
    parser.add_argument("--eval-days", type=int, default=365)
    parser.add_argument("--eval-seeds", type=int, default=3)
    parser.add_argument(
        "--train-pumps", type=int, default=TRAIN_CONFIG.pumps, help="pumps of the training fleet"
    )
    parser.add_argument("--train-days", type=int, default=TRAIN_CONFIG.days)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    vector_s = best_of(
        args.repeats,
        lambda: simulate_fleet(FleetConfig(pumps=args.pumps, days=args.days, seed=7)),
    )
    loop_s = best_of(args.repeats, lambda: naive_fleet(args.baseline_pumps, args.days, 7))
    vector_rate = args.pumps * args.days / vector_s
    loop_rate = args.baseline_pumps * args.days / loop_s

    started = time.perf_counter()
    model = train(FleetConfig(pumps=args.train_pumps, days=args.train_days, seed=TRAIN_SEED))
    train_s = time.perf_counter() - started
    seeds = tuple(101 + i for i in range(args.eval_seeds))
    ev = evaluate(seeds=seeds, pumps=args.eval_pumps, days=args.eval_days, model=model)

    result = {
        "vector_pump_days_per_s": round(vector_rate),
        "loop_pump_days_per_s": round(loop_rate),
        "speedup_vector_over_loop": round(vector_rate / loop_rate, 1),
        "train_s": round(train_s, 2),
        "eval_seeds": list(seeds),
        "eval_pump_days": ev.pump_days,
        "failures_judged": ev.model.failures,
        "alerts_per_day": ev.alerts_per_day,
        "model": {
            "pr_auc": round(ev.model.pr_auc, 3),
            "precision": round(ev.model.precision, 3),
            "recall": round(ev.model.recall, 3),
            "median_lead_days": ev.model.median_lead_days,
        },
        "threshold_rule": {
            "pr_auc": round(ev.rule.pr_auc, 3),
            "precision": round(ev.rule.precision, 3),
            "recall": round(ev.rule.recall, 3),
            "median_lead_days": ev.rule.median_lead_days,
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"fleet simulation: {vector_rate:,.0f} pump-days/s vectorised ({args.pumps} pumps × "
        f"{args.days} days) vs {loop_rate:,.0f} pump-days/s one pump-day at a time: "
        f"{vector_rate / loop_rate:.0f}× faster"
    )
    print(
        f"held-out fleets {list(seeds)} ({ev.pump_days} pump-days, {ev.model.failures} "
        f"failures, {ev.alerts_per_day} alerts/day):"
    )
    for name, s in (("risk model", ev.model), ("threshold rule", ev.rule)):
        print(
            f"  {name:<15} PR-AUC {s.pr_auc:.3f}  precision {s.precision:.3f}  "
            f"recall {s.recall:.3f}  median lead {s.median_lead_days:.1f} d"
        )


if __name__ == "__main__":
    main()
