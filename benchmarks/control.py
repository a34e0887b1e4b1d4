"""Decisions per second of the Python oref determine-basal (one case at a time, and the
NumPy batch over all cases) against the reference npm ``oref0`` 0.7.1 run by node in the
same run; and the 1-h TCI plan time against its target.

Run: ``uv run python benchmarks/control.py`` (``--json`` for machine output; needs node and
the package, see OREF0_DIR / .ci/run).

Cases: ``--cases`` seeded cases from tests/control/oref_cases.py (the parity test's
generator); both sides decide on the same glucose statuses (computed beforehand), so the
timed work is determine-basal alone. Ours: ``determine_basal`` over all cases, best of
``--repeats`` (``time.perf_counter``). Reference, timed inside node over ``--node-repeats``
passes (``process.hrtime``): (a) with its per-decision stderr logging silenced, (b) as
shipped, logging to /dev/null; (c) the whole node process per decision, start-up, JSON
parsing and a parity pass included. ``--rounds`` alternate the measurements; the best of
each is reported. Batch: ``determine_basal_batch`` on all the cases at once (arrays built
from the same JSON inputs beforehand, timed apart), best of ``--repeats``; with
``--batch-copies K`` the call decides the cases repeated K times (a larger ward). It
includes the cases that fall back to the scalar function, and no reason text (reasons are
materialised on demand, one case at a time, and not timed here). Target: ours >= 10x the reference per
decision.
TCI: benchmarks/tci.py's set-up (propofol Schnider, 4 µg/mL effect-site, 1 h at 10-s
steps), best of ``--repeats``, against its 10 ms target.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the case generator lives with the tests

from tests.control.oref_cases import make_cases  # noqa: E402

import tci  # noqa: E402  (benchmarks/tci.py, beside this file)
from openinfusion.control import TciController  # noqa: E402
from openinfusion.control.aid.oref import determine_basal, get_last_glucose  # noqa: E402
from openinfusion.control.aid.oref.batch import determine_basal_batch  # noqa: E402
from openinfusion.control.aid.oref.batch_inputs import ScalarCase, batch_inputs  # noqa: E402
from openinfusion.physiology.pk import Covariates, ModelOptions, build_model  # noqa: E402

TARGET_RATIO = 10.0
DRIVER = ROOT / "tests" / "control" / "oref_reference" / "run_cases.js"


def reference_dir() -> Path:
    env = os.environ.get("OREF0_DIR")
    return Path(env) if env else ROOT / ".cache" / "oref0" / "node_modules" / "oref0"


def node_run(cases: list[dict[str, Any]], repeats: int, *, logging: bool) -> dict[str, Any]:
    """One node process over the cases; its in-process loop time and its wall time."""
    node = shutil.which("node")
    if node is None or not (reference_dir() / "lib").is_dir():
        sys.exit("node and the oref0 package are needed (set OREF0_DIR or run .ci/run)")
    args = [node, str(DRIVER), str(reference_dir()), "--repeat", str(repeats)]
    start = time.perf_counter()
    proc = subprocess.run(
        [*args, "--keep-logging"] if logging else args,
        input=json.dumps(cases),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TZ": "UTC"},
        check=True,
    )
    wall_s = time.perf_counter() - start
    out: dict[str, Any] = json.loads(proc.stdout)
    out["wall_s"] = wall_s
    return out


def python_us(cases: list[dict[str, Any]], repeats: int) -> tuple[float, int]:
    prepared = []
    for case in cases:
        try:
            prepared.append((get_last_glucose(case["glucose"]), case))
        except ValueError:
            continue
    best = float("inf")
    for _ in range(repeats + 1):  # the first pass warms up
        start = time.perf_counter()
        for status, c in prepared:
            determine_basal(
                status,
                c["currenttemp"],
                c["iob"],
                c["profile"],
                c["autosens"],
                c["meal"],
                c["microbolus"],
                c["currentTime"],
                c["reservoir"],
            )
        best = min(best, time.perf_counter() - start)
    return best / len(prepared) * 1e6, len(prepared)


def batch_us(
    cases: list[dict[str, Any]], repeats: int, copies: int = 1
) -> tuple[float, float, int, int]:
    """Batch decision time per case (µs), array building per case (µs), cases, fallbacks;
    ``copies`` > 1 decides the cases repeated that many times in one call."""
    prepared = []
    for case in cases:
        try:
            prepared.append(ScalarCase.from_reference(case))
        except ValueError:  # the glucose records give no status
            continue
    prepared = prepared * copies
    start = time.perf_counter()
    inputs = batch_inputs(prepared)
    build_s = time.perf_counter() - start
    best = float("inf")
    fallbacks = 0
    for _ in range(repeats + 1):  # the first pass warms up
        start = time.perf_counter()
        result = determine_basal_batch(inputs)
        best = min(best, time.perf_counter() - start)
        fallbacks = result.fallback_count
    n = len(prepared)
    return best / n * 1e6, build_s / n * 1e6, n, fallbacks


def tci_plan_ms(repeats: int) -> float:
    cov = Covariates(age_years=40, weight_kg=70, height_cm=170, male=True)
    _, model = build_model("propofol", "schnider", cov, ModelOptions())
    TciController(model, tci.STEP_S, tci.MAX_RATE_PER_S).plan(4.0, 3600, "effect")  # warm-up

    def plan() -> object:
        return TciController(model, tci.STEP_S, tci.MAX_RATE_PER_S).plan(4.0, 3600, "effect")

    return tci.best_ms(plan, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20251203)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--node-repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--batch-copies",
        type=int,
        default=1,
        help="decide the cases repeated this many times in one batch call (a larger ward)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    cases = make_cases(args.cases, args.seed)
    # Rounds alternate the three measurements so that a busy machine slows all of them;
    # the best of each is kept.
    ours_us = node_us = node_logged_us = node_process_us = float("inf")
    batch_best_us = build_us = float("inf")
    decided = fallbacks = batch_n = 0
    for _ in range(args.rounds):
        silent = node_run(cases, args.node_repeats, logging=False)
        logged = node_run(cases, args.node_repeats, logging=True)
        us, decided = python_us(cases, args.repeats)
        ours_us = min(ours_us, us)
        b_us, b_build_us, batch_n, fallbacks = batch_us(cases, args.repeats, args.batch_copies)
        batch_best_us = min(batch_best_us, b_us)
        build_us = min(build_us, b_build_us)
        node_us = min(node_us, silent["loop_ms"] * 1e3 / silent["decisions"])
        node_logged_us = min(node_logged_us, logged["loop_ms"] * 1e3 / logged["decisions"])
        # Whole process: start-up, parsing, one parity pass and the timed passes.
        node_process_us = min(
            node_process_us, silent["wall_s"] * 1e6 / (silent["decisions"] + len(cases))
        )
    tci_ms = tci_plan_ms(args.repeats)
    result = {
        "cases": len(cases),
        "decisions_timed": decided,
        "python_us_per_decision": ours_us,
        "python_decisions_per_s": 1e6 / ours_us,
        "node_us_per_decision": node_us,
        "node_logging_us_per_decision": node_logged_us,
        "node_with_startup_us_per_decision": node_process_us,
        "ratio_vs_node": node_us / ours_us,
        "ratio_vs_node_logging": node_logged_us / ours_us,
        "ratio_vs_node_with_startup": node_process_us / ours_us,
        "batch_cases_per_call": batch_n,
        "batch_us_per_decision": batch_best_us,
        "batch_decisions_per_s": 1e6 / batch_best_us,
        "batch_fallback_cases": fallbacks,
        "batch_array_build_us_per_case": build_us,
        "batch_ratio_vs_node": node_us / batch_best_us,
        "batch_ratio_vs_python": ours_us / batch_best_us,
        "target_ratio": TARGET_RATIO,
        "tci_ms_per_1h_effect_plan": tci_ms,
        "tci_target_ms": tci.TARGET_MS,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"oref determine-basal, {decided} decisions ({len(cases)} generated cases)")
    print(f"  ours (Python):            {ours_us:8.1f} µs/decision ({1e6 / ours_us:,.0f}/s)")
    print(f"  reference, node loop:     {node_us:8.1f} µs/decision (logging silenced)")
    print(f"  reference, as shipped:    {node_logged_us:8.1f} µs/decision (logging to /dev/null)")
    print(f"  reference, whole process: {node_process_us:8.1f} µs/decision (with start-up)")
    ratio = node_us / ours_us
    print(
        f"  ratio: {ratio:.2f}x vs the node loop, {node_logged_us / ours_us:.2f}x as shipped, "
        f"{node_process_us / ours_us:.2f}x with start-up; target >= {TARGET_RATIO:g}x: "
        f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}"
    )
    batch_ratio = node_us / batch_best_us
    print(
        f"  batch (NumPy, {batch_n} cases in one call, {fallbacks} by the scalar fallback, "
        f"no reason text): {batch_best_us:.2f} µs/decision ({1e6 / batch_best_us:,.0f}/s); "
        f"arrays from the JSON inputs {build_us:.1f} µs/case, not included"
    )
    print(
        f"  batch ratio: {batch_ratio:.1f}x vs the node loop, "
        f"{node_logged_us / batch_best_us:.1f}x as shipped, "
        f"{ours_us / batch_best_us:.1f}x the scalar Python; target >= {TARGET_RATIO:g}x: "
        f"{'met' if batch_ratio >= TARGET_RATIO else 'NOT met'}"
    )
    print(
        f"TCI 1-h effect-site plan: {tci_ms:.2f} ms (target < {tci.TARGET_MS:g} ms: "
        f"{'met' if tci_ms < tci.TARGET_MS else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
