"""DERS checks per second on the sample library, beside a plain dict lookup baseline.

Run: ``uv run python benchmarks/ders.py`` (add ``--json`` for machine output).

The workload is one realistic program per sample-library entry (continuous doses with a
concentration and a weight, rate-only programs, intermittent doses with a duration), each
checked against its entry, care area and patient. The baseline, measured in the same run,
is a dict lookup of the same entry by (care area, drug), the cheapest thing a pump could
do per program. Target (issue): >= 200,000 checks/s on one core.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from openinfusion.library import InfusionType, Library, PcaProgram, Program, check, load_library
from openinfusion.library import sample_library as load_sample
from openinfusion.library.schema import CareArea, DrugEntry
from openinfusion.patient import Patient
from openinfusion.units import Dose, parse_dose_unit

TARGET_PER_S = 200_000


def _patient(area: CareArea) -> Patient:
    weight = {"adult": 70.0, "paediatric": 20.0, "neonatal": 2.5}[area.population.value]
    height = {"adult": 170.0, "paediatric": 115.0, "neonatal": 48.0}[area.population.value]
    return Patient(weight_kg=weight, height_cm=height)


def _value(entry: DrugEntry) -> float:
    d = entry.limits.dose
    for v in (d.default, d.soft_max, d.hard_max, d.soft_min):
        if v:
            return v
    return 1.0


def workload(lib: Library) -> list[tuple[Program, DrugEntry, Patient, CareArea]]:
    """One or two programs per entry, covering the parameter kinds DERS checks."""
    cases = []
    for entry in lib.entries:
        area = lib.care_area(entry.care_area)
        patient = _patient(area)
        unit = parse_dose_unit(entry.dose_unit)
        concs = entry.parsed_concentrations()
        conc = concs[0] if concs else None
        dose = Dose(_value(entry), unit)
        pca = None
        if entry.infusion_type is InfusionType.PCA and entry.pca is not None:
            demand = entry.pca.demand.default or entry.pca.demand.soft_max or 1.0
            lockout = entry.pca.lockout_min.default or entry.pca.lockout_min.soft_min or 10.0
            pca = PcaProgram(Dose(demand, parse_dose_unit(entry.pca.dose_unit)), lockout)
        duration = entry.limits.duration_min.default or entry.limits.duration_min.soft_min
        cases.append((Program(dose=dose, concentration=conc, pca=pca,
                              duration_min=None if unit.is_rate else (duration or 60.0)),
                      entry, patient, area))
        if unit.is_rate and conc is not None:
            verdict = check(cases[-1][0], entry, patient, area)
            rate = verdict.computed.get("rate_ml_h")
            if rate:
                cases.append((Program(rate_ml_h=rate, concentration=conc), entry, patient, area))
    return cases


def _best_rate(fn: Callable[[], int], repeats: int) -> tuple[float, float]:
    """(best, median) operations per second over ``repeats`` timed runs of ``fn``."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - start))
    return max(rates), statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, help="library file (default: sample library)")
    parser.add_argument("--rounds", type=int, default=40, help="passes over the workload per run")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    lib = load_library(args.library) if args.library else load_sample()
    cases = workload(lib)
    for program, entry, patient, area in cases:  # warm the per-entry compiled cache
        check(program, entry, patient, area)
    index = {(e.care_area, e.drug, e.therapy or ""): e for e in lib.entries}
    keys = [(entry.care_area, entry.drug, entry.therapy or "") for _, entry, _, _ in cases]
    rounds = args.rounds

    def run_checks() -> int:
        for _ in range(rounds):
            for program, entry, patient, area in cases:
                check(program, entry, patient, area)
        return rounds * len(cases)

    def run_lookups() -> int:
        for _ in range(rounds):
            for key in keys:
                index[key]
        return rounds * len(keys)

    check_best, check_median = _best_rate(run_checks, args.repeats)
    base_best, _ = _best_rate(run_lookups, args.repeats)
    result = {
        "library": f"{lib.name} {lib.version}",
        "programs": len(cases),
        "checks_per_s": round(check_best),
        "checks_per_s_median": round(check_median),
        "us_per_check": round(1e6 / check_best, 3),
        "baseline_dict_lookups_per_s": round(base_best),
        "ratio_check_over_lookup_time": round(base_best / check_best, 1),
        "target_checks_per_s": TARGET_PER_S,
        "meets_target": check_best >= TARGET_PER_S,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"DERS benchmark on {result['library']}: {len(cases)} programs x {rounds} rounds")
    print(f"  DERS check          : {result['checks_per_s']:>12,} checks/s "
          f"({result['us_per_check']} us each; median {result['checks_per_s_median']:,})")
    print(f"  baseline dict lookup: {result['baseline_dict_lookups_per_s']:>12,} lookups/s")
    print(f"  a check costs {result['ratio_check_over_lookup_time']}x a dict lookup; target "
          f">= {TARGET_PER_S:,} checks/s: {'met' if result['meets_target'] else 'NOT met'}")


if __name__ == "__main__":
    main()
