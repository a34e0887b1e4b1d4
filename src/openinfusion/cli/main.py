"""The ``openinfusion`` command: a thin face over the layers, every command with --json."""

from __future__ import annotations

import typer

from openinfusion import __version__
from openinfusion.cli import (
    aid_cmd,
    demo_cmd,
    dose_cmd,
    hl7_cmd,
    library_cmd,
    mipd_cmd,
    pump_cmd,
    report_cmd,
    server_cmd,
    tci_cmd,
    trial_cmd,
    ward_cmd,
)
from openinfusion.cli._common import JsonOption, handle_errors
from openinfusion.cli.tour import run_tour

app = typer.Typer(
    name="openinfusion",
    help="Open smart drug-infusion platform: dose math, drug libraries, DERS and pumps.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(dose_cmd.app, name="dose")
app.add_typer(library_cmd.app, name="library")
app.add_typer(pump_cmd.app, name="pump")
app.add_typer(trial_cmd.trial_app, name="trial")
app.add_typer(mipd_cmd.mipd_app, name="mipd")
app.add_typer(tci_cmd.tci_app, name="tci")
app.add_typer(aid_cmd.aid_app, name="aid")
app.command("patient")(dose_cmd.patient_command)
app.command("serve")(server_cmd.serve_command)
app.add_typer(server_cmd.audit_app, name="audit")
app.command("ward")(ward_cmd.ward_command)
app.command("demo")(demo_cmd.demo_command)
app.add_typer(hl7_cmd.hl7_app, name="hl7")
app.add_typer(report_cmd.report_app, name="report")


@app.command("tour")
@handle_errors
def tour_cmd(json_out: bool = JsonOption) -> None:
    """A short guided run: drip rate, DERS checks, signing and tamper detection."""
    run_tour(json_out)


@app.command("version")
def version_cmd(json_out: bool = JsonOption) -> None:
    """Print the openinfusion version."""
    typer.echo(f'{{"version": "{__version__}"}}' if json_out else __version__)


def run() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    run()
