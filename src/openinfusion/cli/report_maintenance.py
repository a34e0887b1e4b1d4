"""``openinfusion report maintenance``: pumps ranked by risk of failure, and the model's check.

The queue comes from the server database (``--db URL`` or ``openinfusion.db`` in
``--data-dir``) or from a simulated fleet (``--simulate-fleet --pumps N --days D --seed S``).
``--evaluate`` judges the risk model against the threshold rule on held-out simulated fleets
(seeds S, S+1, S+2) instead. Output: JSON, an HTML page with charts, or the chart (PNG).
Exit codes: 0 ok, 2 bad input.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from openinfusion.cli._common import JsonOption, console, handle_errors, print_json
from openinfusion.cli.server_cmd import DataDirOption, DbOption
from openinfusion.errors import InputError


class Format(StrEnum):
    json = "json"
    html = "html"
    png = "png"


def _emit(report: dict[str, Any], fmt: Format, out: Path | None) -> None:
    from openinfusion.analytics.maintenance_render import report_html, report_png

    if fmt is Format.json:
        text = json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        if out is None:
            print_json(report)
            return
        out.write_text(text, encoding="utf-8")
    else:
        data = report_html(report).encode() if fmt is Format.html else report_png(report)
        if out is None:
            if sys.stdout.isatty():
                raise InputError("out", "", f"is needed to write {fmt.value} to a terminal")
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            return
        out.write_bytes(data)
    console.print(f"maintenance report written to {out}")


def _print_evaluation(report: dict[str, Any]) -> None:
    ev = report["evaluation"]
    console.print(
        f"held-out fleets {ev['seeds']}: {ev['pumps']} pumps × {ev['days']} days, "
        f"{ev['model']['failures']} failures, horizon {ev['horizon_d']} d, "
        f"alert budget {ev['alerts_per_day']} pumps/day"
    )
    console.print(f"{'method':<16}{'PR-AUC':>8}{'precision':>11}{'recall':>8}{'lead (d)':>10}")
    for name, s in (("risk model", ev["model"]), ("threshold rule", ev["rule"])):
        console.print(
            f"{name:<16}{s['pr_auc']:>8.3f}{s['precision']:>11.3f}{s['recall']:>8.3f}"
            f"{s['median_lead_days']:>10.1f}"
        )


def _simulated_queue(pumps: int, days: int, seed: int, horizon: int) -> dict[str, Any]:
    from openinfusion.analytics.fleet_sim import FleetConfig, simulate_fleet
    from openinfusion.analytics.maintenance_model import default_model
    from openinfusion.analytics.maintenance_queue import queue_document, rank

    fleet = simulate_fleet(FleetConfig(pumps=pumps, days=days, seed=seed))
    model = default_model(horizon)
    entries = rank(fleet.telemetry, model)
    report = queue_document(entries, model, datetime.now(UTC), days)
    report["source"] = f"simulated fleet (seed {seed}, {pumps} pumps, {days} days)"
    return report


def register(app: typer.Typer) -> None:
    """Add this module's report commands to the ``report`` group."""

    @app.command("maintenance")
    @handle_errors
    def maintenance(
        db: str | None = DbOption,
        data_dir: Path = DataDirOption,
        horizon_days: int = typer.Option(
            14, "--horizon-days", help="Risk of failure within this many days (1-90)."
        ),
        simulate: bool = typer.Option(
            False, "--simulate-fleet", help="Rank a simulated fleet instead of the database."
        ),
        pumps: int = typer.Option(200, "--pumps", help="Pumps of a simulated fleet."),
        days: int = typer.Option(
            90, "--days", help="Days of telemetry read, or simulated with --simulate-fleet."
        ),
        seed: int = typer.Option(1, "--seed", help="Seed of the simulated (first held-out) fleet."),
        evaluate: bool = typer.Option(
            False, "--evaluate", help="Model vs threshold rule on held-out simulated fleets."
        ),
        limit: int = typer.Option(100, "--limit", help="Pumps listed (highest risk first)."),
        fmt: Format = typer.Option(Format.json, "--format", help="json, html or png."),
        out: Path | None = typer.Option(None, "--out", help="Write the report to this file."),
        json_out: bool = JsonOption,
    ) -> None:
        """Pumps ranked by risk of failure in the next N days, with reasons."""
        if not 1 <= horizon_days <= 90:
            raise InputError("horizon_days", horizon_days, "must be 1 to 90")
        if not 1 <= limit <= 100_000:
            raise InputError("limit", limit, "must be 1 to 100000")
        if out is not None and not out.parent.is_dir():
            raise InputError("out", str(out), "must be in an existing directory")
        if evaluate:
            from openinfusion.analytics.maintenance_eval import evaluate as run_evaluation

            if days < 60:
                raise InputError("days", days, "must be at least 60 to evaluate")
            ev = run_evaluation(
                seeds=(seed, seed + 1, seed + 2), pumps=pumps, days=days, horizon_d=horizon_days
            )
            report: dict[str, Any] = {
                "report": "maintenance-evaluation",
                "generated_at": datetime.now(UTC).isoformat(),
                "horizon_days": horizon_days,
                "evaluation": ev.as_dict(),
            }
            if fmt is Format.json and out is None and not json_out:
                _print_evaluation(report)
                return
        elif simulate:
            report = _simulated_queue(pumps, days, seed, horizon_days)
        else:
            from openinfusion.analytics.maintenance_queue import queue_from_db
            from openinfusion.analytics.source import open_database

            if not 1 <= days <= 365:
                raise InputError("days", days, "must be 1 to 365")
            database = open_database(db, data_dir)
            try:
                with database.read() as session:
                    report = queue_from_db(session, datetime.now(UTC), horizon_days, days)
            finally:
                database.dispose()
            report["source"] = "server database"
        if "pumps" in report:
            report["pumps"] = report["pumps"][:limit]
        _emit(report, Format.json if json_out else fmt, out)
