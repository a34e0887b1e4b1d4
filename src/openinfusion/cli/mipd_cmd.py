"""``openinfusion mipd``: Bayesian (MAP) dose individualisation from measured levels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from openinfusion.cli._common import JsonOption, console, handle_errors, print_json
from openinfusion.control.mipd import (
    DoseEvent,
    Level,
    MapEstimate,
    PopulationPk,
    check_levels_after_first_dose,
    estimate_map,
    parse_doses,
    parse_levels,
    predict_regimen,
    prior_estimate,
    prior_model,
    recommend_factor_viii,
    recommend_vancomycin,
)
from openinfusion.control.mipd.factor_viii import SCHEDULES
from openinfusion.errors import InputError
from openinfusion.patient import Patient
from openinfusion.physiology.pk import Covariates, ModelOptions
from openinfusion.units import Dimension, Kind, parse_quantity

mipd_app = typer.Typer(
    help="Model-informed precision dosing: MAP Bayesian estimation from levels "
    "(decision support for research and teaching, not a medical device).",
    no_args_is_help=True,
)

_NOTICE = "Research and teaching software, not a medical device; a clinician decides."


def _load(path: Path | None, what: str) -> Any:
    if path is None:
        return []
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(what, str(path), f"cannot be read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            what, str(path), f"is not valid JSON ({exc.msg}, line {exc.lineno})"
        ) from None


def _history(
    doses_path: Path, levels_path: Path | None, dimension: Dimension, unit: str, require_over: bool
) -> tuple[list[DoseEvent], list[Level]]:
    doses, origin = parse_doses(_load(doses_path, "doses"), dimension, require_over=require_over)
    levels = parse_levels(_load(levels_path, "levels"), dimension, unit, origin)
    check_levels_after_first_dose(doses, levels)
    return doses, levels


def _estimate_dict(est: MapEstimate) -> dict[str, Any]:
    out: dict[str, Any] = {
        "method": est.method,
        "converged": est.converged,
        "eta": [round(float(v), 4) for v in est.eta],
        "parameters": {
            p.name: {
                "unit": p.unit,
                "estimate": round(p.estimate, 4),
                "ci95": [round(p.lower, 4), round(p.upper, 4)],
                "typical": round(p.typical, 4),
            }
            for p in est.parameters()
        },
    }
    if est.levels:
        out["fit"] = [
            {"time_h": round(lv.time_h, 3), "observed": lv.value, "predicted": round(f, 2)}
            for lv, f in zip(est.levels, est.predicted_levels, strict=True)
        ]
    return out


def _current_regimen(doses: list[DoseEvent], interval_text: str | None) -> tuple[DoseEvent, float]:
    last = doses[-1]
    if interval_text is not None:
        tau = parse_quantity(interval_text, Kind.DURATION, "interval") / 60.0
    elif len(doses) >= 2:
        tau = last.start_h - doses[-2].start_h
    else:
        raise InputError("interval", "", "is required when the history has a single dose")
    if not 0 < tau <= 168 or tau < last.duration_h:
        raise InputError("interval", f"{tau:g} h", "must be > 0, <= 168 h and >= infusion time")
    return last, tau


def _header(est: MapEstimate, what: str) -> None:
    console.print(f"[bold]{what}[/bold] ({est.population.prior.citation}); {_NOTICE}")
    for p in est.parameters():
        console.print(
            f"  {p.name.upper()} {p.estimate:.3g} {p.unit} (95 % CI {p.lower:.3g}-{p.upper:.3g};"
            f" population {p.typical:.3g})"
        )


@mipd_app.command("vancomycin")
@handle_errors
def vancomycin_cmd(
    age: str = typer.Option(..., "--age", help="Years."),
    weight: str = typer.Option(..., "--weight", help="With unit, e.g. '80 kg'."),
    sex: str = typer.Option(..., "--sex", help="m or f."),
    serum_creatinine: str = typer.Option(..., "--scr", help="e.g. '1.0 mg/dL' or '88 umol/L'."),
    doses: Path = typer.Option(..., "--doses", help="Doses JSON (see docs/mipd.md)."),
    levels: Path | None = typer.Option(None, "--levels", help="Levels JSON (mg/L)."),
    height: str | None = typer.Option(None, "--height", help="With unit, e.g. '175 cm'."),
    target_auc: float = typer.Option(500.0, "--target-auc", help="AUC24 target, mg·h/L."),
    model: str = typer.Option("goti", "--model", help="goti (default) or buelga."),
    dialysis: bool = typer.Option(False, "--dialysis", help="Haemodialysis (Goti only)."),
    interval: str | None = typer.Option(
        None, "--interval", help="Current dosing interval, e.g. '12 h' (default: from history)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for posterior sampling."),
    json_out: bool = JsonOption,
) -> None:
    """Estimate CL and V from vancomycin levels and recommend a regimen for AUC24."""
    prior = prior_model("vancomycin", model)
    cov = Covariates.from_patient(
        Patient.from_text(
            age=age, weight=weight, height=height, sex=sex, serum_creatinine=serum_creatinine
        )
    )
    pop = PopulationPk(prior, cov, ModelOptions(dialysis=dialysis))
    history, obs = _history(doses, levels, Dimension.MASS, "mg/L", require_over=True)
    results: dict[str, Any] = {}
    for label, est in (
        ("individual", estimate_map(pop, history, obs)),
        ("population", prior_estimate(pop)),
    ):
        best, options = recommend_vancomycin(est, target_auc=target_auc, seed=seed)
        entry = _estimate_dict(est)
        samples = est.sample(2000, seed)
        if len(history) >= 2 or interval is not None:
            last, tau = _current_regimen(history, interval)
            entry["current_regimen"] = predict_regimen(
                est, last.amount, tau, max(last.duration_h, 1e-3), samples
            ).as_dict()
        entry["recommended"] = best.as_dict()
        entry["options"] = [o.as_dict() for o in options]
        results[label] = (est, entry)
    if json_out:
        print_json(
            {
                "drug": "vancomycin",
                "model": prior.model,
                "citation": prior.citation,
                "prior_source": prior.source,
                "target_auc24_mg_h_l": target_auc,
                "target_range_mg_h_l": [400.0, 600.0],
                "levels_used": len(obs),
                "individual": results["individual"][1],
                "population": results["population"][1],
                "notice": _NOTICE,
            }
        )
        return
    est, entry = results["individual"]
    _header(est, f"Vancomycin MAP estimate from {len(obs)} level(s)")
    if "current_regimen" in entry:
        cur = entry["current_regimen"]
        pop_cur = results["population"][1]["current_regimen"]
        console.print(
            f"  current {cur['dose_mg']:g} mg q{cur['interval_h']:g}h: AUC24 "
            f"{cur['auc24_mg_h_l']:g} mg·h/L (95 % {cur['auc24_ci95'][0]:g}-"
            f"{cur['auc24_ci95'][1]:g}), trough {cur['trough_mg_l']:g} mg/L"
            f" [population: AUC24 {pop_cur['auc24_mg_h_l']:g}]"
        )
    for label in ("individual", "population"):
        rec = results[label][1]["recommended"]
        console.print(
            f"  {label:<10} recommends {rec['dose_mg']:g} mg q{rec['interval_h']:g}h over "
            f"{rec['infusion_h']:g} h: AUC24 {rec['auc24_mg_h_l']:g} mg·h/L "
            f"(95 % {rec['auc24_ci95'][0]:g}-{rec['auc24_ci95'][1]:g}, "
            f"P(400-600) {rec['p_auc_in_range']:.0%}), trough {rec['trough_mg_l']:g} mg/L"
        )


@mipd_app.command("factor-viii")
@handle_errors
def factor_viii_cmd(
    age: str = typer.Option(..., "--age", help="Years."),
    weight: str = typer.Option(..., "--weight", help="With unit, e.g. '70 kg'."),
    doses: Path = typer.Option(..., "--doses", help="Doses JSON, amounts in IU."),
    levels: Path | None = typer.Option(None, "--levels", help="Levels JSON (IU/dL)."),
    target_trough: float = typer.Option(1.0, "--target-trough", help="Trough target, IU/dL."),
    seed: int = typer.Option(0, "--seed", help="Seed for posterior sampling."),
    json_out: bool = JsonOption,
) -> None:
    """Estimate FVIII CL and V from post-infusion levels and recommend prophylaxis."""
    prior = prior_model("factor_viii", "bjorkman")
    patient = Patient.from_text(age=age, weight=weight)
    assert patient.weight_kg is not None
    pop = PopulationPk(prior, Covariates.from_patient(patient))
    history, obs = _history(doses, levels, Dimension.UNITS, "IU/dL", require_over=False)
    results: dict[str, Any] = {}
    for label, est in (
        ("individual", estimate_map(pop, history, obs)),
        ("population", prior_estimate(pop)),
    ):
        best, options = recommend_factor_viii(
            est, patient.weight_kg, target_trough=target_trough, seed=seed
        )
        entry = _estimate_dict(est)
        entry["recommended"] = None if best is None else best.as_dict()
        entry["options"] = [o.as_dict() for o in options]
        results[label] = (est, entry)
    if json_out:
        print_json(
            {
                "drug": "factor_viii",
                "model": prior.model,
                "citation": prior.citation,
                "prior_source": prior.source,
                "target_trough_iu_dl": target_trough,
                "schedules": list(SCHEDULES),
                "levels_used": len(obs),
                "individual": results["individual"][1],
                "population": results["population"][1],
                "notice": _NOTICE,
            }
        )
        return
    est, _ = results["individual"]
    _header(est, f"Factor VIII MAP estimate from {len(obs)} level(s)")
    for label in ("individual", "population"):
        rec = results[label][1]["recommended"]
        if rec is None:
            console.print(f"  {label:<10} no schedule reaches the trough within the dose cap")
            continue
        console.print(
            f"  {label:<10} recommends {rec['dose_iu']:g} IU ({rec['dose_iu_per_kg']:g} IU/kg) "
            f"{rec['schedule']}: trough {rec['trough_iu_dl']:g} IU/dL (95 % "
            f"{rec['trough_ci95'][0]:g}-{rec['trough_ci95'][1]:g}, "
            f"P(>= target) {rec['p_trough_at_target']:.0%})"
        )
