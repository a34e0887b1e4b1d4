"""Simulated pump-days per second: a 72-h PCA infusion with a demand every 15 minutes.

Run: ``uv run python benchmarks/pump.py`` (``--json`` for machine output).

The engine is event-driven: it jumps from event to event. The baseline, measured in the
same run on the same engine and program, advances the pump in fixed 1-second ticks (what
a naive simulator does) over a shorter span, scaled to a pump-day. Target (issue): at most
5 ms of CPU per simulated pump-day.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from openinfusion.library import sample_library
from openinfusion.patient import Patient
from openinfusion.pump import therapies as T
from openinfusion.pump.device import Device
from openinfusion.pump.mechanics import pca_pump

TARGET_MS_PER_DAY = 5.0
HOURS = 72.0
DEMAND_EVERY_S = 15 * 60.0


def _programmed() -> tuple[T.Context, T.Programmed]:
    lib = sample_library()
    ctx = T.Context(pca_pump(), Patient(weight_kg=70.0), lib, lib.care_area("Adult Med-Surg"))
    programmed = T.pca(ctx, drug="morphine", concentration="1 mg/mL", demand_dose="1 mg",
                       lockout="10 min", basal="0.5 mg/h", limit_4h="20 mg")
    return ctx, programmed


def run_event_driven(programmed: T.Programmed, hours: float) -> Device:
    """The engine as designed: advance straight to each demand."""
    device = Device([pca_pump()])
    device.program(0, programmed.plan)
    device.start(0)
    t, end = 0.0, hours * 3600.0
    while t < end:
        device.advance_to(t)
        device.demand(0)
        t += DEMAND_EVERY_S
    device.advance_to(end)
    return device


def run_ticking(programmed: T.Programmed, hours: float) -> Device:
    """Baseline: the same engine and program advanced one second at a time."""
    device = Device([pca_pump()])
    device.program(0, programmed.plan)
    device.start(0)
    end = int(hours * 3600)
    every = int(DEMAND_EVERY_S)
    for second in range(end + 1):
        device.advance_to(float(second))
        if second % every == 0:
            device.demand(0)
    return device


def _time(fn: object, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.process_time()
        fn()  # type: ignore[operator]
        out.append(time.process_time() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--baseline-hours", type=float, default=4.0,
                        help="span of the ticking baseline (scaled to a day)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    _, programmed = _programmed()
    days = HOURS / 24.0
    check = run_event_driven(programmed, HOURS)
    events = len(check.records)
    fast = _time(lambda: run_event_driven(programmed, HOURS), args.repeats)
    slow = _time(lambda: run_ticking(programmed, args.baseline_hours), max(1, args.repeats // 3))
    ms_per_day = min(fast) * 1000.0 / days
    tick_ms_per_day = min(slow) * 1000.0 / (args.baseline_hours / 24.0)
    # Same physics at both resolutions: compare delivered drug over the baseline span.
    short = run_event_driven(programmed, args.baseline_hours).channels[0].drug_amount
    ticked = run_ticking(programmed, args.baseline_hours).channels[0].drug_amount
    result = {
        "scenario": f"{HOURS:g} h PCA (morphine 1 mg/mL, basal 0.5 mg/h), demand every 15 min",
        "records_per_run": events,
        "ms_per_pump_day": round(ms_per_day, 3),
        "ms_per_pump_day_median": round(statistics.median(fast) * 1000.0 / days, 3),
        "pump_days_per_s": round(1000.0 / ms_per_day, 1),
        "baseline_1s_ticks_ms_per_pump_day": round(tick_ms_per_day, 1),
        "speedup_vs_ticking": round(tick_ms_per_day / ms_per_day, 1),
        "delivered_mg_event_vs_ticking": [round(short, 6), round(ticked, 6)],
        "target_ms_per_pump_day": TARGET_MS_PER_DAY,
        "meets_target": ms_per_day <= TARGET_MS_PER_DAY,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"pump benchmark: {result['scenario']}")
    print(f"  event-driven engine : {result['ms_per_pump_day']:8.3f} ms CPU per pump-day "
          f"({result['pump_days_per_s']:,} pump-days/s, {events} records per 72-h run)")
    print(f"  baseline, 1-s ticks : {result['baseline_1s_ticks_ms_per_pump_day']:8.1f} ms CPU per "
          f"pump-day (same engine, {args.baseline_hours:g} h scaled)")
    print(f"  speed-up {result['speedup_vs_ticking']}x; delivered over the baseline span "
          f"{short:.6f} mg vs {ticked:.6f} mg; target <= {TARGET_MS_PER_DAY} ms/day: "
          f"{'met' if result['meets_target'] else 'NOT met'}")


if __name__ == "__main__":
    main()
