"""The benchmark scripts run and report their figures (functional check, not a timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("script", "args", "keys"),
    [
        (
            "ders.py",
            ["--rounds", "1", "--repeats", "1"],
            {"checks_per_s", "baseline_dict_lookups_per_s", "ratio_check_over_lookup_time"},
        ),
        (
            "pump.py",
            ["--repeats", "1", "--baseline-hours", "0.05"],
            {"ms_per_pump_day", "baseline_1s_ticks_ms_per_pump_day", "speedup_vs_ticking"},
        ),
        (
            "trial.py",
            [
                "--patients",
                "30",
                "--repeats",
                "1",
                "--baseline-subjects",
                "1",
                "--baseline-hours",
                "1",
            ],
            {"ours_patient_days_per_s", "simglucose_patient_days_per_s", "max_abs_dbg_mg_dl"},
        ),
        (
            "ingest.py",
            [
                "--pumps",
                "12",
                "--active",
                "6",
                "--messages",
                "120",
                "--fleet-seconds",
                "3",
                "--period",
                "1",
            ],
            {"stored_per_s", "raw_insert_per_s", "ratio_to_raw", "latency_p99_ms"},
        ),
        (
            "library_verify.py",
            ["--patients", "20", "--baseline-patients", "2", "--repeats", "1"],
            {"vector_patients_per_s", "loop_patients_per_s", "speedup_vector_over_loop"},
        ),
        (
            "analytics.py",
            ["--pumps", "8", "--days", "10", "--repeats", "1"],
            {"baseline_scan_s", "report_s", "ratio_to_scan", "compliance_rate"},
        ),
        (
            "maintenance.py",
            [
                *("--pumps", "50", "--days", "90", "--baseline-pumps", "5", "--repeats", "1"),
                *("--eval-pumps", "60", "--eval-days", "120", "--eval-seeds", "1"),
                *("--train-pumps", "40", "--train-days", "90"),
            ],
            {"vector_pump_days_per_s", "loop_pump_days_per_s", "model", "threshold_rule"},
        ),
        (
            "hl7.py",
            ["--messages", "50", "--orders", "5"],
            {
                "pcd01_sent_acked_per_s",
                "pcd01_hl7_parse_per_s",
                "pcd01_ratio_to_parse",
                "orders_accepted_per_s",
                "orders_ratio_to_parse",
            },
        ),
    ],
)
def test_benchmark_runs(script: str, args: list[str], keys: set[str]) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args, "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result = json.loads(out.stdout)
    assert keys <= set(result)
    if script == "trial.py":  # same answers as the reference at the benchmarked speed
        assert max(result["max_abs_dbg_mg_dl"].values()) < 1.0
    if script == "ingest.py":  # every pump stayed connected and nothing went missing
        assert result["connections_open_at_end"] == 12 and result["sequence_gaps"] == 0
    if script == "pump.py":
        event, ticked = result["delivered_mg_event_vs_ticking"]
        assert abs(event - ticked) < 1e-6  # both resolutions deliver the same drug
