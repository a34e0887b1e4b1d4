"""Virtual T1D patient-days per second: the vectorized UVA/Padova model against simglucose.

Run: ``uv run python benchmarks/glucose_batch.py`` (``--json`` for machine output).

Ours: 1,000 patients (the 30 UVA/Padova 2008 subjects in turn) × 1 day at 1-min resolution,
one NumPy RK4 step per minute over the whole batch. Baseline, measured in the same run:
simglucose 0.2.11 exactly as shipped (``T1DPatient.withName``, dopri5 once per minute), on
2 subjects × 1 day. Scenario: basal = the subject's steady-state basal; 50/70/80 g meals
at 7/12/18 h, each with a carb-ratio bolus. Times are CPU seconds (``time.process_time``).
Target (issue): ours ≥ 10,000× simglucose's patient-days per second.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from numpy.typing import NDArray

from openinfusion.physiology.glucose import GlucoseParameters, GlucosePatients, simulate
from openinfusion.physiology.glucose.simglucose_reference import run_simglucose

TARGET_RATIO = 10_000.0
DAY_MIN = 24 * 60
MEALS = ((7 * 60, 50.0), (12 * 60, 70.0), (18 * 60, 80.0))
BASELINE_SUBJECTS = ("adult#001", "adolescent#001", "child#001")


def scenario(
    patients: GlucosePatients, minutes: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Carbs announced (g per minute) and insulin (U/min), each (N, minutes)."""
    carbs = np.zeros((patients.n, minutes))
    insulin = np.repeat(patients.steady_state_basal_u_per_min[:, None], minutes, axis=1)
    for minute, grams in MEALS:
        if minute < minutes:
            carbs[:, minute] = grams
            insulin[:, minute] += grams / patients.parameters.carb_ratio_g_per_u
    return carbs, insulin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-subjects", type=int, default=2, choices=(1, 2, 3))
    parser.add_argument(
        "--baseline-days",
        type=float,
        default=1.0,
        help="span simulated per baseline subject (scaled to patient-days)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    cohort = GlucoseParameters.all().take(np.arange(args.patients) % 30)
    carbs, insulin = scenario(GlucosePatients(cohort), DAY_MIN)
    ours_s = []
    for _ in range(args.repeats):
        patients = GlucosePatients(cohort)
        start = time.process_time()
        bg = simulate(patients, DAY_MIN, carbs, insulin)
        ours_s.append(time.process_time() - start)
    ours_rate = args.patients / min(ours_s)

    minutes = max(1, round(args.baseline_days * DAY_MIN))
    names = BASELINE_SUBJECTS[: args.baseline_subjects]
    deviation: dict[str, float] = {}
    base_s = 0.0
    # Warm-up outside the timing: importing simglucose, pandas and scipy is not simulation.
    run_simglucose(names[0], carbs[0, :1], insulin[0, :1], plain_parameters=False)
    for name in names:
        row = cohort.names.index(name)
        start = time.process_time()
        ref = run_simglucose(
            name, carbs[row, :minutes], insulin[row, :minutes], plain_parameters=False
        )
        base_s += time.process_time() - start
        deviation[name] = float(np.abs(bg[row, : minutes + 1] - ref.bg_mg_dl).max())
    base_days = len(names) * minutes / DAY_MIN
    base_rate = base_days / base_s
    ratio = ours_rate / base_rate

    result = {
        "scenario": "1 day, basal + 50/70/80 g at 7/12/18 h with carb-ratio boluses, 1-min steps",
        "patients": args.patients,
        "ours_cpu_s_per_batch_day": round(min(ours_s), 4),
        "ours_patient_days_per_s": round(ours_rate, 1),
        "simglucose_patient_days": round(base_days, 3),
        "simglucose_cpu_s_per_patient_day": round(base_s / base_days, 3),
        "simglucose_patient_days_per_s": round(base_rate, 4),
        "ratio_ours_over_simglucose": round(ratio, 1),
        "max_abs_dbg_mg_dl": {k: round(v, 5) for k, v in deviation.items()},
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"glucose batch benchmark: {result['scenario']}")
    print(
        f"  ours (NumPy RK4)  : {args.patients} patients in {min(ours_s):.3f} s CPU -> "
        f"{ours_rate:,.0f} patient-days/s"
    )
    print(
        f"  simglucose 0.2.11 : {base_days:g} patient-days in {base_s:.1f} s CPU -> "
        f"{base_rate:.4f} patient-days/s ({base_s / base_days:.2f} s per patient-day)"
    )
    print(
        f"  ratio {ratio:,.0f}x (target >= {TARGET_RATIO:,.0f}x: "
        f"{'met' if result['meets_target'] else 'NOT met'})"
    )
    print(
        "  max |dBG| vs simglucose, mg/dL: "
        + ", ".join(f"{k} {v:.5f}" for k, v in deviation.items())
    )


if __name__ == "__main__":
    main()
