"""``openinfusion dose ...`` and ``openinfusion patient``: dose math from the command line."""

from __future__ import annotations

from typing import Any

import typer

from openinfusion.cli._common import JsonOption, console, handle_errors, print_json
from openinfusion.patient import Patient
from openinfusion.units import (
    Concentration,
    Dose,
    basis_value,
    convert_dose,
    dose_to_rate_ml_h,
    dose_to_volume_ml,
    format_number,
    parse_concentration,
    parse_dose,
    parse_dose_unit,
    parse_quantity,
    rate_to_dose,
    volume_to_dose,
)
from openinfusion.units.quantities import Kind

app = typer.Typer(
    help="Convert between doses, pump rates (mL/h) and bolus volumes.", no_args_is_help=True
)

WeightOpt = typer.Option(None, "--weight", help="Patient weight with unit, e.g. '70 kg'.")
HeightOpt = typer.Option(None, "--height", help="Patient height with unit, e.g. '170 cm'.")
BsaMethodOpt = typer.Option("mosteller", "--bsa-method", help="mosteller, dubois or haycock.")
ConcOpt = typer.Option(
    None, "--concentration", "-c", help="Drug amount per volume, e.g. '400 mg/250 mL'."
)


def _patient(weight: str | None, height: str | None, bsa_method: str) -> Patient:
    return Patient.from_text(weight=weight, height=height, bsa_method=bsa_method)


def _conc(text: str | None) -> Concentration | None:
    return parse_concentration(text) if text is not None else None


def _conc_dict(conc: Concentration | None) -> dict[str, Any] | None:
    if conc is None:
        return None
    return {
        "text": conc.text,
        "per_ml": conc.per_ml,
        "per_ml_unit": f"{conc.dimension.canonical_unit}/mL",
    }


def _context(patient: Patient) -> dict[str, Any]:
    return {
        "weight_kg": patient.weight_kg,
        "height_cm": patient.height_cm,
        "bsa_m2": patient.bsa_m2,
    }


@app.command("rate")
@handle_errors
def rate_cmd(
    dose: str = typer.Option(..., "--dose", "-d", help="Dose rate, e.g. '5 mcg/kg/min'."),
    concentration: str | None = ConcOpt,
    weight: str | None = WeightOpt,
    height: str | None = HeightOpt,
    bsa_method: str = BsaMethodOpt,
    json_out: bool = JsonOption,
) -> None:
    """Pump rate in mL/h for a dose rate (plain, per kg or per m2)."""
    parsed = parse_dose(dose)
    patient = _patient(weight, height, bsa_method)
    conc = _conc(concentration)
    rate = dose_to_rate_ml_h(parsed, conc, patient.weight_kg, patient.bsa_m2)
    out = {
        "rate_ml_h": rate,
        "dose": {"value": parsed.value, "unit": parsed.unit.text},
        "dose_canonical": {"value": parsed.canonical, "unit": parsed.unit.canonical_text},
        "concentration": _conc_dict(conc),
        **_context(patient),
    }
    if json_out:
        print_json(out)
    else:
        console.print(
            f"{parsed} at {conc.text if conc else 'mL'} = "
            f"[bold]{format_number(round(rate, 4))} mL/h[/bold]"
        )


@app.command("from-rate")
@handle_errors
def from_rate_cmd(
    rate: str = typer.Option(..., "--rate", "-r", help="Pump rate, e.g. '10 mL/h'."),
    dose_unit: str = typer.Option(..., "--dose-unit", "-u", help="e.g. 'mcg/kg/min'."),
    concentration: str | None = ConcOpt,
    weight: str | None = WeightOpt,
    height: str | None = HeightOpt,
    bsa_method: str = BsaMethodOpt,
    json_out: bool = JsonOption,
) -> None:
    """Dose rate delivered by a pump rate, in the dose unit asked for."""
    rate_ml_h = parse_quantity(rate, Kind.FLOW, "rate")
    unit = parse_dose_unit(dose_unit)
    patient = _patient(weight, height, bsa_method)
    conc = _conc(concentration)
    result = rate_to_dose(rate_ml_h, conc, unit, patient.weight_kg, patient.bsa_m2)
    out = {
        "dose": result.value,
        "dose_unit": unit.text,
        "rate_ml_h": rate_ml_h,
        "concentration": _conc_dict(conc),
        **_context(patient),
    }
    if json_out:
        print_json(out)
    else:
        console.print(
            f"{format_number(rate_ml_h)} mL/h = [bold]{format_number(result.value)} "
            f"{unit.text}[/bold]"
        )


@app.command("volume")
@handle_errors
def volume_cmd(
    dose: str = typer.Option(
        ..., "--dose", "-d", help="Single dose, e.g. '2 mg/kg' or '5000 units'."
    ),
    concentration: str | None = ConcOpt,
    weight: str | None = WeightOpt,
    height: str | None = HeightOpt,
    bsa_method: str = BsaMethodOpt,
    json_out: bool = JsonOption,
) -> None:
    """Volume in mL of a bolus or loading dose (mg, mg/kg, units/kg, mg/m2)."""
    parsed = parse_dose(dose)
    patient = _patient(weight, height, bsa_method)
    conc = _conc(concentration)
    volume = dose_to_volume_ml(parsed, conc, patient.weight_kg, patient.bsa_m2)
    absolute = parsed.canonical * basis_value(parsed.unit.basis, patient.weight_kg, patient.bsa_m2)
    out = {
        "volume_ml": volume,
        "dose": {"value": parsed.value, "unit": parsed.unit.text},
        "amount": {"value": absolute, "unit": parsed.unit.dimension.canonical_unit},
        "concentration": _conc_dict(conc),
        **_context(patient),
    }
    if json_out:
        print_json(out)
    else:
        console.print(
            f"{parsed} = {format_number(absolute)} {parsed.unit.dimension.canonical_unit}"
            f" = [bold]{format_number(round(volume, 4))} mL[/bold]"
        )


@app.command("convert")
@handle_errors
def convert_cmd(
    dose: str = typer.Option(..., "--dose", "-d", help="e.g. '5 mcg/kg/min'."),
    to: str = typer.Option(..., "--to", help="Target unit, e.g. 'mg/h'."),
    weight: str | None = WeightOpt,
    height: str | None = HeightOpt,
    bsa_method: str = BsaMethodOpt,
    json_out: bool = JsonOption,
) -> None:
    """Express a dose in another unit of the same kind (weight/BSA when the basis changes)."""
    parsed = parse_dose(dose)
    unit = parse_dose_unit(to, "to")
    patient = _patient(weight, height, bsa_method)
    value = convert_dose(parsed, unit, patient.weight_kg, patient.bsa_m2)
    if json_out:
        print_json(
            {
                "dose": value,
                "dose_unit": unit.text,
                "from": {"value": parsed.value, "unit": parsed.unit.text},
            }
        )
    else:
        console.print(f"{parsed} = [bold]{Dose(value, unit)}[/bold]")


@app.command("from-volume")
@handle_errors
def from_volume_cmd(
    volume: str = typer.Option(..., "--volume"),
    dose_unit: str = typer.Option(..., "--dose-unit"),
    concentration: str | None = ConcOpt,
    weight: str | None = WeightOpt,
    height: str | None = HeightOpt,
    bsa_method: str = BsaMethodOpt,
    json_out: bool = JsonOption,
) -> None:
    """Single dose held in a volume (the inverse of ``dose volume``)."""
    volume_ml = parse_quantity(volume, Kind.VOLUME, "volume")
    patient = _patient(weight, height, bsa_method)
    result = volume_to_dose(
        volume_ml,
        _conc(concentration),
        parse_dose_unit(dose_unit),
        patient.weight_kg,
        patient.bsa_m2,
    )
    if json_out:
        print_json({"dose": result.value, "dose_unit": result.unit.text, "volume_ml": volume_ml})
    else:
        console.print(f"{format_number(volume_ml)} mL = [bold]{result}[/bold]")


def patient_cmd(
    weight: str | None = WeightOpt,
    height: str | None = HeightOpt,
    age: str | None = typer.Option(None, "--age", help="Years, or e.g. '6 months'."),
    sex: str | None = typer.Option(None, "--sex", help="m or f."),
    serum_creatinine: str | None = typer.Option(
        None, "--scr", help="Serum creatinine, e.g. '1.0 mg/dL' or '88 umol/L'."
    ),
    bsa_method: str = BsaMethodOpt,
    json_out: bool = JsonOption,
) -> None:
    """Body surface area, ideal/lean body weight and creatinine clearance for a patient."""
    patient = Patient.from_text(
        weight=weight,
        height=height,
        age=age,
        sex=sex,
        serum_creatinine=serum_creatinine,
        bsa_method=bsa_method,
    )
    out = patient.as_dict()
    if json_out:
        print_json(out)
        return
    for key, value in out.items():
        if value is not None:
            shown = format_number(round(value, 3)) if isinstance(value, float) else value
            console.print(f"{key:>30}: {shown}")


patient_command = handle_errors(patient_cmd)
