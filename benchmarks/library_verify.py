"""Library verification: virtual patients simulated per second, vectorised vs patient by patient.

Run: ``uv run python benchmarks/library_verify.py`` (add ``--json`` for machine output).

Workload: every sample-library entry with a PK model, its unit-dose regimen (continuous
rate over the horizon, q12h intermittent doses over 3 days, a bolus) simulated exactly for
a virtual population of its care area. Vectorised: one call per entry for the whole
population. Baseline, measured in the same run: the same simulation for a few patients of
each population, one patient at a time in a Python loop. Also reported: the whole report
(PK entries, insulin on the glucose subjects, judging) in patients per second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass

import numpy as np

from openinfusion.analytics.library_verify import verify_library
from openinfusion.analytics.library_verify_pk import (
    amount_per_unit,
    build_population_model,
    dose_plan,
    schedule_for,
    unit_response,
)
from openinfusion.analytics.library_verify_population import VirtualPopulation, draw_population
from openinfusion.analytics.library_verify_rules import (
    ModelChoice,
    Window,
    choose_model,
    model_drug,
    window_for,
)
from openinfusion.library import Library, sample_library
from openinfusion.library.schema import DrugEntry
from openinfusion.units import parse_dose_unit


@dataclass
class Case:
    entry: DrugEntry
    choice: ModelChoice
    pop: VirtualPopulation
    window: Window | None


def cases(lib: Library, patients: int, seed: int) -> list[Case]:
    """Every entry of ``lib`` simulated through a PK model, with its population."""
    areas = {a.id: a for a in lib.care_areas}
    out = []
    for i, entry in enumerate(lib.entries):
        drug = model_drug(entry)
        if drug is None or drug == "insulin" or not entry.limits.dose.has_max:
            continue
        area = areas[entry.care_area]
        choice = choose_model(drug, area.population)
        if choice is None:
            continue
        pop = draw_population(area, choice, patients, seed + i)
        if pop is not None:
            out.append(Case(entry, choice, pop, window_for(drug, area.id, entry.therapy)))
    return out


def simulate(case: Case, limit: int | None) -> int:
    """The unit-dose simulation of ``case``: vectorised (``limit`` None) or one patient at a
    time for the first ``limit`` patients. Returns the number of patients simulated."""
    spec, model = build_population_model(case.choice, case.pop)
    plan = dose_plan(case.entry)
    amount = amount_per_unit(parse_dose_unit(case.entry.dose_unit), spec, case.pop)
    daily = amount * 24.0 / plan.interval_h if plan.interval_h else None
    if limit is None:
        unit_response(model, spec, schedule_for(plan, amount), plan, case.window, daily)
        return case.pop.n
    for i in range(limit):
        one = slice(i, i + 1)
        unit_response(
            model.take(i),
            spec,
            schedule_for(plan, amount[one]),
            plan,
            case.window,
            None if daily is None else daily[one],
        )
    return limit


def rate(fn: object, repeats: int) -> tuple[float, float]:
    """(best, median) patients per second over ``repeats`` runs of ``fn() -> patients``."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()  # type: ignore[operator]
        rates.append(n / (time.perf_counter() - start))
    return max(rates), statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000, help="per population")
    parser.add_argument("--baseline-patients", type=int, default=20, help="looped per entry")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    lib = sample_library()
    work = cases(lib, args.patients, args.seed)
    k = min(args.baseline_patients, args.patients)
    vector_best, vector_median = rate(lambda: sum(simulate(c, None) for c in work), args.repeats)
    loop_best, loop_median = rate(lambda: sum(simulate(c, k) for c in work), args.repeats)

    def whole() -> int:
        return verify_library(lib, patients=args.patients, seed=args.seed).simulated_patients

    report_best, _ = rate(whole, args.repeats)
    result = {
        "pk_entries": len(work),
        "patients_per_population": args.patients,
        "vector_patients_per_s": round(vector_best),
        "vector_patients_per_s_median": round(vector_median),
        "loop_patients_per_s": round(loop_best),
        "loop_patients_per_s_median": round(loop_median),
        "baseline_patients_per_entry": k,
        "speedup_vector_over_loop": round(vector_best / loop_best, 1),
        "report_patients_per_s": round(report_best),
        "numpy": np.__version__,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{len(work)} sample-library entries with a PK model, {args.patients} patients each")
    print(f"vectorised:         {vector_best:12,.0f} virtual patients/s")
    print(f"patient by patient: {loop_best:12,.0f} virtual patients/s ({k} per entry)")
    print(f"ratio:              {vector_best / loop_best:12,.1f}x")
    print(f"whole report:       {report_best:12,.0f} virtual patients/s (incl. insulin, judging)")


if __name__ == "__main__":
    main()
