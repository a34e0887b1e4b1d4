"""``openinfusion tci plan``: a target-controlled infusion plan for one patient."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import typer

from openinfusion.cli._common import JsonOption, console, handle_errors, print_json
from openinfusion.control.tci import Site, TciController, decrement_time_s
from openinfusion.errors import InputError
from openinfusion.patient import Patient
from openinfusion.physiology.pk import Covariates, ModelOptions, build_model, model_spec
from openinfusion.units import Dimension, Kind, format_number, parse_concentration, parse_quantity

tci_app = typer.Typer(
    help="Target-controlled infusion: plasma or effect-site targeting (docs/tci.md).",
    no_args_is_help=True,
)

# Usual syringe strengths (propofol 1 %, remifentanil 50 µg/mL).
DEFAULT_CONCENTRATION = {"propofol": "10 mg/mL", "remifentanil": "50 mcg/mL"}
MAX_DURATION_MIN = 24 * 60.0


@tci_app.callback()
def tci_group() -> None:
    """Target-controlled infusion: plasma or effect-site targeting (docs/tci.md)."""


@tci_app.command("plan")
@handle_errors
def plan_cmd(
    drug: str = typer.Option("propofol", "--drug", help="propofol or remifentanil."),
    model: str | None = typer.Option(
        None, "--model", help="marsh, marsh-modified, schnider, schnider-tpeak, eleveld, minto."
    ),
    age: str | None = typer.Option(None, "--age", help="Years, e.g. 40."),
    weight: str | None = typer.Option(None, "--weight", help="With unit, e.g. '70 kg'."),
    height: str | None = typer.Option(None, "--height", help="With unit, e.g. '170 cm'."),
    sex: str | None = typer.Option(None, "--sex", help="m or f."),
    opioid: bool = typer.Option(False, "--opioid", help="Concomitant opioid (Eleveld propofol)."),
    target: str | None = typer.Option(
        None,
        "--target",
        help="Target concentration in the drug's unit: mcg/mL for propofol, ng/mL for "
        "remifentanil (a bare number is taken in that unit).",
    ),
    targets_file: Path | None = typer.Option(
        None,
        "--targets",
        help='JSON list of target changes: [{"at": "0 min", "target": 3}, {"at": "20 min", '
        '"target": 4}].',
    ),
    site: str = typer.Option("plasma", "--site", help="plasma or effect."),
    duration_min: float = typer.Option(60.0, "--duration", help="Plan length in minutes."),
    concentration: str | None = typer.Option(
        None, "--concentration", help="Syringe strength, e.g. '10 mg/mL' (propofol default)."
    ),
    max_rate: str = typer.Option("1200 mL/h", "--max-rate", help="Pump maximum rate."),
    step_s: float = typer.Option(10.0, "--step-s", help="Update interval in seconds."),
    decrement_to: str | None = typer.Option(
        None,
        "--decrement-to",
        help="Also report the time for the targeted concentration to fall to this level "
        "after the plan ends (drug's unit).",
    ),
    json_out: bool = JsonOption,
) -> None:
    """Rates every step so Cp (plasma) or Ce (effect site) reaches and holds the target."""
    spec = model_spec(drug, model)
    if spec.dimension is not Dimension.MASS or spec.drug not in DEFAULT_CONCENTRATION:
        raise InputError("drug", drug, "TCI supports propofol and remifentanil")
    patient = Patient.from_text(weight=weight, height=height, age=age, sex=sex)
    spec, pk = build_model(
        spec.drug, spec.name, Covariates.from_patient(patient), ModelOptions(opioid=opioid)
    )
    where = Site.parse(site)
    unit = spec.concentration_unit
    strength = parse_concentration(
        concentration or DEFAULT_CONCENTRATION[spec.drug], "concentration"
    )
    if strength.dimension is not Dimension.MASS:
        raise InputError("concentration", strength.text, f"must be a mass per mL for {spec.drug}")
    mg_per_ml = strength.per_ml
    max_ml_h = parse_quantity(max_rate, Kind.FLOW, "max-rate")
    if not (math.isfinite(max_ml_h) and max_ml_h > 0):
        raise InputError("max-rate", max_rate, "must be greater than 0 mL/h")
    if not (math.isfinite(duration_min) and 0 < duration_min <= MAX_DURATION_MIN):
        raise InputError("duration", duration_min, "must be between 0 and 1440 min")
    # Amounts inside the model are in spec.amount_unit (mg or µg); mg = amount / per_canonical.
    per_mg = spec.amount_per_canonical
    scale = spec.concentration_scale
    changes = _targets(target, targets_file, unit, duration_min)
    controller = TciController(
        pk, step_s=step_s, max_rate_per_s=max_ml_h * mg_per_ml * per_mg / 3600.0
    )
    plan = controller.plan(
        [(t, c / scale) for t, c in changes], duration_min * 60.0, where, initial=None
    )
    rates_mg_h = plan.rate_per_s * 3600.0 / per_mg
    out: dict[str, Any] = {
        "drug": spec.drug,
        "model": spec.name,
        "citation": spec.citation,
        "site": where.value,
        "patient": patient.as_dict(),
        "options": {"opioid": opioid},
        "concentration": strength.text,
        "max_rate_ml_h": max_ml_h,
        "step_s": plan.step_s,
        "t_s": plan.t_s.tolist(),
        "target": (plan.target * scale).tolist(),
        "rates_mg_h": rates_mg_h.tolist(),
        "rates_ml_h": (rates_mg_h / mg_per_ml).tolist(),
        "cp": (plan.cp * scale).tolist(),
        "ce": (plan.ce * scale).tolist(),
        "units": {
            "t": "s",
            "target": unit,
            "cp": unit,
            "ce": unit,
            "rates_mg_h": "mg/h",
            "rates_ml_h": "mL/h",
            "total_mg": "mg",
            "total_ml": "mL",
        },
        "total_mg": plan.total_amount / per_mg,
        "total_ml": plan.total_amount / per_mg / mg_per_ml,
    }
    if decrement_to is not None:
        level = _concentration(decrement_to, unit, "decrement-to")
        seconds = decrement_time_s(pk, plan.final, level / scale, where)
        out["decrement_time_min"] = None if math.isinf(seconds) else seconds / 60.0
        out["units"]["decrement_time_min"] = "min"
    if json_out:
        print_json(out)
        return
    _print_summary(out, unit)


def _concentration(text: str, unit: str, field: str) -> float:
    """A bare number in ``unit``, or the number followed by exactly that unit."""
    raw = text.strip()
    if raw.lower().endswith(unit.lower()):
        raw = raw[: -len(unit)].strip()
    try:
        value = float(raw)
    except ValueError:
        raise InputError(field, text, f"must be a concentration in {unit}, e.g. '3'") from None
    if not (math.isfinite(value) and value >= 0):
        raise InputError(field, text, f"must be a concentration >= 0 {unit}")
    return value


def _targets(
    target: str | None, path: Path | None, unit: str, duration_min: float
) -> list[tuple[float, float]]:
    """Target changes [(t_s, concentration in ``unit``)] from --target and/or --targets."""
    if path is None:
        if target is None:
            raise InputError("target", "", "give --target or --targets")
        return [(0.0, _concentration(target, unit, "target"))]
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError("targets", str(path), f"cannot be read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise InputError("targets", str(path), f"is not JSON ({exc.msg})") from None
    if isinstance(raw, dict) and set(raw) == {"targets"}:
        raw = raw["targets"]
    if not isinstance(raw, list) or not raw:
        raise InputError("targets", str(path), 'must be a list of {"at": ..., "target": ...}')
    changes: list[tuple[float, float]] = []
    if target is not None:
        changes.append((0.0, _concentration(target, unit, "target")))
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"at", "target"}:
            raise InputError(f"targets[{i}]", item, 'must be {"at": "10 min", "target": 3}')
        at_min = parse_quantity(str(item["at"]), Kind.DURATION, f"targets[{i}].at")
        if not (0 <= at_min < duration_min):
            raise InputError(f"targets[{i}].at", item["at"], "must be within the plan")
        conc = _concentration(str(item["target"]), unit, f"targets[{i}].target")
        if changes and at_min * 60.0 == changes[0][0] == 0.0 and target is not None:
            raise InputError(f"targets[{i}].at", item["at"], "repeats --target at 0 min")
        changes.append((at_min * 60.0, conc))
    return changes


def _print_summary(out: dict[str, Any], unit: str) -> None:
    t = np.asarray(out["t_s"])
    rates = np.asarray(out["rates_ml_h"])
    console.print(f"{out['drug']} {out['site']} TCI ({out['model']}: {out['citation']})")
    console.print(
        f"first step {format_number(round(float(rates[0]), 1))} mL/h; total "
        f"{format_number(round(out['total_mg'], 2))} mg = "
        f"{format_number(round(out['total_ml'], 2))} mL over "
        f"{format_number(round(float(t[-1]) / 60.0, 2))} min"
    )
    console.print(
        f"end: Cp {format_number(round(out['cp'][-1], 3))} {unit}, "
        f"Ce {format_number(round(out['ce'][-1], 3))} {unit}; "
        f"peak Cp {format_number(round(max(out['cp']), 3))} {unit}"
    )
    if "decrement_time_min" in out:
        value = out["decrement_time_min"]
        console.print(
            "decrement time: "
            + ("beyond 7 days" if value is None else f"{format_number(round(value, 2))} min")
        )
