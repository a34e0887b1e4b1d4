"""``openinfusion aid autosens`` and ``aid autotune``: personalisation from therapy data.

``--data`` is either uploaded data (``openinfusion-therapy-history/1``, docs/aid.md) or the
output of ``openinfusion trial glucose --json`` (open loop; ``--patient`` picks the
subject, the scenario file named in the output rebuilds insulin and meals).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from openinfusion.cli._common import JsonOption, console, handle_errors, print_json
from openinfusion.errors import InputError

DataOption = typer.Option(
    ..., "--data", help="Therapy history JSON, or 'trial glucose --json' output (open loop)."
)
PatientOption = typer.Option(
    None, "--patient", help="Subject in trial output (default: the first)."
)
ScenarioOption = typer.Option(
    None, "--scenario", help="Scenario file of trial output (default: the one it names)."
)


def _load(data: Path, patient: str | None, scenario: Path | None) -> Any:
    from openinfusion.control.aid.history_file import history_from_data
    from openinfusion.library.loading import parse_json_strict

    try:
        text = data.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("data", str(data), f"cannot be read ({exc})") from None
    doc = parse_json_strict(text, "data")
    if isinstance(doc, dict) and "format" in doc:
        if patient is not None or scenario is not None:
            raise InputError(
                "patient/scenario", patient or str(scenario), "apply only to trial output"
            )
        return history_from_data(doc)
    if isinstance(doc, dict) and "patients" in doc:
        from openinfusion.sim.personalise_trial import history_from_trial_json

        return history_from_trial_json(doc, patient=patient, scenario=scenario)
    raise InputError(
        "data",
        str(data),
        "is neither therapy data ('format': 'openinfusion-therapy-history/1') "
        "nor 'openinfusion trial glucose --json' output",
    )


def autosens_cmd(
    data: Path = DataOption,
    window_h: float = typer.Option(24.0, "--window-h", help="Hours of history to use (2-48)."),
    points: bool = typer.Option(False, "--points", help="Add each 5-min deviation (JSON)."),
    patient: str | None = PatientOption,
    scenario: Path | None = ScenarioOption,
    json_out: bool = JsonOption,
) -> None:
    """Sensitivity ratio (oref0 autosens method): basal x ratio, ISF / ratio."""
    from openinfusion.control.aid.autosens import autosens

    if not 2.0 <= window_h <= 48.0:
        raise InputError("window-h", window_h, "must be 2 to 48 hours")
    history = _load(data, patient, scenario)
    result = autosens(history, window_h=window_h)
    out = {"settings": history.settings.as_dict(), **result.as_dict(points=points)}
    if json_out:
        print_json(out)
        return
    d = out["deviations"]
    console.print(f"autosens ratio {result.ratio:.2f} (raw {result.raw_ratio:.3f})")
    console.print(
        f"ISF {result.isf_mg_dl_u:.1f} -> {result.new_isf_mg_dl_u:.1f} mg/dL/U; "
        f"basal {result.basal_off_u_h:+.3f} U/h"
    )
    console.print(
        f"deviations: {d['used']} used, {d['excluded_meal']} meal, {d['excluded_uam']} "
        f"after-meal, {d['invalid']} invalid; {d['percent_negative']:.0f} % negative, "
        f"{d['percent_positive']:.0f} % positive"
    )
    console.print(result.reason, markup=False)


def autotune_cmd(
    data: Path = DataOption,
    days: int | None = typer.Option(
        None, "--days", min=1, help="Use the latest N usable days (default: all)."
    ),
    patient: str | None = PatientOption,
    scenario: Path | None = ScenarioOption,
    json_out: bool = JsonOption,
) -> None:
    """Fit hourly basal, carb ratio and ISF (oref0 autotune method), day by day."""
    from openinfusion.control.aid.autotune import autotune

    history = _load(data, patient, scenario)
    result = autotune(history, days=days)
    out = result.as_dict()
    if json_out:
        print_json(out)
        return
    _print_autotune(out)


def _print_autotune(out: dict[str, Any]) -> None:
    from rich.table import Table

    pump, tuned = out["pump"], out["tuned"]
    table = Table(title=f"autotune over {out['days_used']} day(s)")
    for col in ("hour", "pump U/h", "tuned U/h", "ratio", "basal pts (last day)"):
        table.add_column(col, justify="right")
    last = out["days"][-1]["hours"]
    for h in range(24):
        table.add_row(
            f"{h:02d}",
            f"{pump['basal_u_h'][h]:.3f}",
            f"{tuned['basal_u_h'][h]:.3f}",
            f"{out['change']['basal_ratio'][h] or 0:.3f}",
            str(last[h]["basal_points"]),
        )
    console.print(table)
    console.print(
        f"ISF {pump['isf_mg_dl_u']:.2f} -> {tuned['isf_mg_dl_u']:.2f} mg/dL/U; "
        f"CR {pump['carb_ratio_g_u']:.2f} -> {tuned['carb_ratio_g_u']:.2f} g/U"
    )
    for day in out["days"]:
        pts = ", ".join(f"{k} {v}" for k, v in day["points"].items())
        console.print(f"day {day['day']}: {pts}", markup=False)
        for note in day["notes"]:
            console.print(f"  {note}", markup=False)


def register(app: typer.Typer) -> None:
    """Add the personalisation commands to ``app`` (the ``aid`` group)."""
    app.command("autosens")(handle_errors(autosens_cmd))
    app.command("autotune")(handle_errors(autotune_cmd))


__all__ = ["autosens_cmd", "autotune_cmd", "register"]
