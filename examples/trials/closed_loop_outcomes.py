"""Closed-loop outcomes on the 30 UVA/Padova subjects, one table row per controller.

Run: ``uv run python examples/trials/closed_loop_outcomes.py`` (about 2 CPU-minutes).
It runs each controller on the standard 3-meal day and on the 3-day stress scenario
(missed meal boluses, a 4-h occlusion, a 1-h suspension, a 90-min sensor dropout), with
CGM noise, seed 1, and prints a Markdown table of the cohort's consensus metrics
(docs/aid.md, "Closed-loop trials").
"""

from __future__ import annotations

from pathlib import Path

from openinfusion.sim.glucose_scenario import load_glucose_scenario
from openinfusion.sim.glucose_trial import resolve_patients, run_trial

HERE = Path(__file__).resolve().parent
SCENARIOS = ("glucose-3-meals.json", "glucose-stress-3-days.json")
CONTROLLERS = ("basal-bolus", "pid", "mpc", "oref", "oref-smb")


def main() -> None:
    print(
        "| scenario | controller | TIR 70-180 % | <70 % | <54 % | >180 % | >250 % | mean "
        "mg/dL | CV % | LBGI | HBGI | subjects < 54 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for file in SCENARIOS:
        scenario = load_glucose_scenario(HERE / file)
        for controller in CONTROLLERS:
            result = run_trial(resolve_patients("all"), scenario, controller=controller, seed=1)
            ms = result.metrics
            n = len(ms)

            def mean(key: str, ms: list[dict[str, float]] = ms, n: int = n) -> float:
                return sum(m[key] for m in ms) / n

            low = sum(1 for m in ms if m["min_mg_dl"] < 54.0)
            print(
                f"| {file.removesuffix('.json')} | {controller} | {mean('tir_percent'):.1f} | "
                f"{mean('tbr_percent'):.2f} | {mean('tbr2_percent'):.2f} | "
                f"{mean('tar_percent'):.1f} | {mean('tar2_percent'):.1f} | "
                f"{mean('mean_mg_dl'):.0f} | {mean('cv_percent'):.1f} | {mean('lbgi'):.2f} | "
                f"{mean('hbgi'):.2f} | {low}/{n} |"
            )


if __name__ == "__main__":
    main()
