"""Virtual patient-days per second of a whole glucose trial, beside simglucose in the same run.

Run: ``uv run python benchmarks/trial.py`` (``--json`` for machine output).

Ours: ``run_trial`` end to end for 1,000 virtual patients (the 30 UVA/Padova 2008 subjects
in turn) x 1 day at 1-min resolution: scenario to per-minute inputs, the vectorized model,
a seeded Dexcom-like CGM for every patient and the consensus metrics. Baseline, measured in
the same run: simglucose 0.2.11 as shipped (``T1DPatient.withName``, dopri5 once per
minute) on the same scenario for a few subjects, model only (no sensor, no metrics), which
flatters the baseline. Times are CPU seconds (``time.process_time``). Also printed: the
largest |BG difference| between the trial's plasma glucose and simglucose's for the
compared subjects. Target: >= 10,000x simglucose's patient-days per second.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from openinfusion.physiology.glucose import GlucosePatients
from openinfusion.physiology.glucose.simglucose_reference import run_simglucose
from openinfusion.sim.glucose_scenario import build_inputs, load_glucose_scenario
from openinfusion.sim.glucose_trial import resolve_patients, run_trial

TARGET_RATIO = 10_000.0
SCENARIO = {
    "duration": "24 h",
    "meals": [
        {"at": "7 h", "carbs_g": 50},
        {"at": "12 h", "carbs_g": 70},
        {"at": "18 h", "carbs_g": 80},
    ],
    "insulin": {
        "basal": "patient",
        "boluses": [
            {"at": "7 h", "units": 2.0},
            {"at": "12 h", "units": 3.0},
            {"at": "18 h", "units": 3.0},
        ],
    },
}
BASELINE_SUBJECTS = ("adult#001", "adolescent#001", "child#001")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-subjects", type=int, default=2, choices=(1, 2, 3))
    parser.add_argument("--baseline-hours", type=float, default=24.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    scenario = load_glucose_scenario(SCENARIO)
    names = resolve_patients(f"all*{args.patients // 30 + 1}")[: args.patients]
    ours = []
    result = None
    for _ in range(args.repeats):
        start = time.process_time()
        result = run_trial(names, scenario, seed=1)
        ours.append(time.process_time() - start)
    assert result is not None
    ours_rate = args.patients * (scenario.minutes / 1440) / min(ours)

    subjects = BASELINE_SUBJECTS[: args.baseline_subjects]
    minutes = max(1, round(args.baseline_hours * 60))
    ref_patients = GlucosePatients.from_names(subjects)
    inputs = build_inputs(scenario, ref_patients.steady_state_basal_u_per_h)
    run_simglucose(
        subjects[0], inputs.carbs_g_min[:1], inputs.insulin_u_min[0, :1], plain_parameters=False
    )
    base_s = 0.0
    deviation = {}
    for i, name in enumerate(subjects):
        start = time.process_time()
        ref = run_simglucose(
            name,
            inputs.carbs_g_min[:minutes],
            inputs.insulin_u_min[i, :minutes],
            plain_parameters=False,
        )
        base_s += time.process_time() - start
        row = names.index(name)
        ours_bg = result.bg_mg_dl[row, :minutes]
        deviation[name] = float(np.abs(ours_bg - ref.bg_mg_dl[:minutes]).max())
    base_days = len(subjects) * minutes / 1440
    base_rate = base_days / base_s
    ratio = ours_rate / base_rate
    out = {
        "scenario": "24 h, patient basal, 50/70/80 g at 7/12/18 h with 2/3/3 U boluses",
        "patients": args.patients,
        "ours_cpu_s": round(min(ours), 4),
        "ours_patient_days_per_s": round(ours_rate, 1),
        "ours_includes": "inputs, model, CGM with noise, metrics",
        "simglucose_patient_days": round(base_days, 4),
        "simglucose_cpu_s_per_patient_day": round(base_s / base_days, 3),
        "simglucose_patient_days_per_s": round(base_rate, 5),
        "ratio_ours_over_simglucose": round(ratio, 1),
        "max_abs_dbg_mg_dl": {k: round(v, 5) for k, v in deviation.items()},
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"glucose trial benchmark: {out['scenario']}")
    print(
        f"  openinfusion trial : {args.patients} patients x 1 day in {min(ours):.3f} s CPU -> "
        f"{ours_rate:,.0f} patient-days/s ({out['ours_includes']})"
    )
    print(
        f"  simglucose 0.2.11  : {base_days:g} patient-days in {base_s:.1f} s CPU -> "
        f"{base_rate:.4f} patient-days/s"
    )
    print(f"  ratio {ratio:,.0f}x (target >= {TARGET_RATIO:,.0f}x)")
    print(
        "  max |dBG| vs simglucose (mg/dL): "
        + ", ".join(f"{k} {v:.4f}" for k, v in deviation.items())
    )


if __name__ == "__main__":
    main()
