"""``openinfusion aid determine-basal``: one oref0/oref1 dosing decision from the reference's
native input files (docs/aid.md, "oref determine-basal")."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import typer

from openinfusion.cli._common import JsonOption, console, handle_errors, print_json
from openinfusion.control.aid.oref import determine_basal, get_last_glucose, to_json
from openinfusion.control.aid.oref.inputs import (
    check_autosens,
    check_currenttemp,
    check_glucose,
    check_iob,
    check_meal,
    check_profile,
)
from openinfusion.errors import InputError


def _read(path: Path, check: Callable[[Any, str], Any]) -> Any:
    """Parse and check one JSON file; errors name the file and the field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(str(path), None, f"cannot be read ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(str(path), None, f"is not JSON ({exc.msg} at line {exc.lineno})") from None
    return check(data, path.name)


def determine_basal_cmd(
    glucose: Path = typer.Option(
        ..., "--glucose", help="CGM records, newest first (glucose.json)."
    ),
    iob: Path = typer.Option(..., "--iob", help="calculate-iob output array (iob.json)."),
    profile: Path = typer.Option(..., "--profile", help="oref0 profile (profile.json)."),
    currenttemp: Path = typer.Option(
        ..., "--currenttemp", help='Running temp basal, {"rate": U/h, "duration": min}.'
    ),
    meal: Path | None = typer.Option(None, "--meal", help="Meal data (meal.json)."),
    autosens: Path | None = typer.Option(
        None, "--autosens", help='Autosens result, {"ratio": ...} (autosens.json).'
    ),
    microbolus: bool = typer.Option(
        False, "--microbolus", help="Allow oref1 super micro-boluses (SMB)."
    ),
    current_time: int | None = typer.Option(
        None, "--current-time", help="Decision time in ms since the epoch (default: now)."
    ),
    reservoir: Path | None = typer.Option(
        None, "--reservoir", help="Reservoir reading file, passed through as text."
    ),
    json_out: bool = JsonOption,
) -> None:
    """One oref0 determine-basal decision: temp basal rate and duration (and with
    --microbolus a micro-bolus), with the reference's reasons."""
    records = _read(glucose, check_glucose)
    ticks = _read(iob, check_iob)
    profile_data = _read(profile, check_profile)
    temp = _read(currenttemp, check_currenttemp)
    meal_data = _read(meal, check_meal) if meal is not None else None
    autosens_data = _read(autosens, check_autosens) if autosens is not None else None
    reservoir_text: str | None = None
    if reservoir is not None:
        try:
            reservoir_text = reservoir.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(str(reservoir), None, f"cannot be read ({exc.strerror})") from None
    now_ms = current_time if current_time is not None else int(time.time() * 1000)
    if current_time is not None and not 0 < current_time < 8_640_000_000_000_000:
        raise InputError("current-time", current_time, "must be ms since 1970 (e.g. 1764748800000)")
    status = get_last_glucose(records)
    result = determine_basal(
        status,
        temp,
        ticks,
        profile_data,
        autosens_data,
        meal_data,
        microbolus,
        now_ms,
        reservoir_text,
    )
    if "error" in result:
        raise InputError("inputs", None, f"the decision cannot be made: {result['error'].strip()}")
    rate = result.get("rate")
    if isinstance(rate, float) and math.isnan(rate):
        # The reference itself gives a NaN rate when the inputs yield no eventual glucose
        # (e.g. meal data without lastCarbTime, as oref0-meal writes on a clock error); it
        # prints that as null and exits 0. A temp of NaN U/h is no decision: refuse it.
        raise InputError(
            "decision.rate",
            "NaN",
            "the inputs give no eventual glucose, so no temp can be set "
            f"(reason: {str(result.get('reason', '')).strip()[:160]})",
        )
    out = to_json(result)
    if json_out:
        print_json(out)
        return
    _print_human(out)


def _print_human(out: Mapping[str, Any]) -> None:
    if "rate" in out:
        console.print(f"temp basal: {out['rate']} U/h for {out['duration']} min", markup=False)
    else:
        console.print("temp basal: no change", markup=False)
    if "units" in out:
        console.print(f"micro-bolus: {out['units']} U", markup=False)
    if "bg" in out:
        console.print(
            f"BG {out['bg']} ({out['tick']}), eventual {out['eventualBG']}, "
            f"IOB {out['IOB']} U, COB {out.get('COB', '-')} g, "
            f"insulinReq {out['insulinReq']} U",
            markup=False,
        )
    console.print(f"reason: {out.get('reason', '')}", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``determine-basal`` to the ``aid`` command group."""
    app.command("determine-basal")(handle_errors(determine_basal_cmd))
