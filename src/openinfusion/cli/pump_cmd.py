"""``openinfusion pump ...``: run scenarios on the pump engine, show the schema, recover."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from openinfusion.cli._common import JsonOption, console, handle_errors, print_json
from openinfusion.errors import InputError
from openinfusion.library import HardLimitError, SoftLimitError
from openinfusion.pump.codes import Alarm
from openinfusion.pump.journal import SqliteJournal, recover
from openinfusion.pump.scenario import Run, load_scenario, schema
from openinfusion.units import format_number

app = typer.Typer(
    help="Pump engine: run scenarios, scenario schema, alarm codes, recovery.", no_args_is_help=True
)


@app.command("run")
@handle_errors
def run_cmd(
    scenario: Path = typer.Argument(..., help="Scenario JSON (see docs/pump.md)."),
    override_reason: str | None = typer.Option(
        None, "--override-reason", help="Reason to proceed past soft limits."
    ),
    journal: Path | None = typer.Option(None, "--journal", help="Keep a crash-safe journal here."),
    speed: float | None = typer.Option(
        None, "--speed", help="Simulated seconds per real second (default: as fast as possible)."
    ),
    events: bool = typer.Option(True, "--events/--no-events", help="Include the event log."),
    json_out: bool = JsonOption,
) -> None:
    """Run a scenario. Exit 0 ran, 2 bad scenario, 3 soft limit without --override-reason,
    4 blocked by a hard limit (nothing delivered)."""
    spec = load_scenario(scenario)
    if speed is not None and not speed > 0:
        raise InputError("speed", speed, "must be greater than zero")
    sink = None
    if journal is not None:
        if journal.exists():
            raise InputError(
                "journal", str(journal), "already exists; recover it or choose a new path"
            )
        sink = SqliteJournal(journal)
    try:
        run = Run(spec, override_reason=override_reason, journal=sink)
    except (SoftLimitError, HardLimitError) as exc:
        findings = [f.as_dict() for f in exc.verdict.crossed]
        if json_out:
            print_json(
                {
                    "error": {"message": str(exc), "findings": findings},
                    "verdict": exc.verdict.label,
                    "delivered_ml": 0.0,
                    "exit_code": exc.exit_code,
                }
            )
        console.print(f"[red]not started[/red]: {exc}", markup=True) if not json_out else None
        raise typer.Exit(exc.exit_code) from None
    result = run.run(speed=speed)
    if not events:
        result.pop("events")
    if json_out:
        print_json(result)
        return
    dose = result["delivered_dose"]
    shown = f" ({format_number(round(dose['value'], 4))} {dose['unit']})" if dose else ""
    console.print(
        f"delivered {format_number(round(result['delivered_ml'], 4))} mL{shown}; "
        f"final state {result['final_state']}; verdict {result['verdict']}"
    )
    for alarm in result["alarms"]:
        console.print(f"  {alarm['at_min']:8.2f} min  {alarm['priority']:<6} {alarm['code']}")
    if "pca" in result:
        pca = result["pca"]
        console.print(
            f"  PCA: {pca['demands']} demands, {pca['granted']} granted, "
            f"{pca['denied']} denied {pca['denied_reasons']}"
        )


@app.command("schema")
def schema_cmd() -> None:
    """Print the scenario JSON schema."""
    print(json.dumps(schema(), indent=2))


@app.command("codes")
def codes_cmd(json_out: bool = JsonOption) -> None:
    """List every alarm code with its priority and meaning."""
    rows = [
        {
            "code": a.code,
            "priority": a.priority.value,
            "stops_flow": a.stops_flow,
            "meaning": a.value.meaning,
        }
        for a in Alarm
    ]
    if json_out:
        print_json(rows)
        return
    for row in rows:
        console.print(
            f"{row['code']:<22} {row['priority']:<6} "
            f"{'stops' if row['stops_flow'] else '     '}  {row['meaning']}",
            markup=False,
        )


@app.command("recover")
@handle_errors
def recover_cmd(
    journal: Path = typer.Argument(..., help="A pump journal (from pump run --journal)."),
    json_out: bool = JsonOption,
) -> None:
    """Rebuild the pump from its journal after a crash (delivery stays paused)."""
    result = recover(journal)
    out = result.as_dict()
    if json_out:
        print_json(out)
        return
    console.print(
        f"recovered {out['serial']} at t={format_number(round(out['t_s'], 3))} s; "
        f"{len(out['uncertain_commands'])} command(s) after the last checkpoint"
    )
    for ch in out["channels"]:
        console.print(
            f"  channel {ch['channel']}: {ch['state_before']} -> {ch['state_after']}, "
            f"confirmed {ch['confirmed_ml']:.4f} mL, assumed {ch['assumed_ml']:.4f} mL"
        )
