"""``openinfusion trial pk``: predicted plasma and effect-site concentrations of a schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer

from openinfusion.cli._common import JsonOption, console, handle_errors, print_json
from openinfusion.errors import InputError
from openinfusion.patient import Patient
from openinfusion.physiology.pk import (
    Covariates,
    ModelOptions,
    build_model,
    model_spec,
    simulate,
)
from openinfusion.sim.pk_schedule import load_pk_schedule
from openinfusion.units import format_number

trial_app = typer.Typer(
    help="In-silico trials: drug concentrations predicted by population PK models.",
    no_args_is_help=True,
)

# A grid above a million points is a typing error in --step-s, not a request.
MAX_GRID_POINTS = 1_000_000


@trial_app.command("pk")
@handle_errors
def pk_cmd(
    drug: str = typer.Option(
        ...,
        "--drug",
        help="propofol, remifentanil, morphine, heparin, vancomycin or factor_viii.",
    ),
    schedule: Path = typer.Option(..., "--schedule", help="Schedule JSON (see docs/pk.md)."),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Parameter set, e.g. marsh, marsh-modified, schnider, schnider-tpeak, eleveld, "
        "eleveld-venous, minto, sarton, jia, al-sallami, goti, buelga, bjorkman.",
    ),
    age: str | None = typer.Option(None, "--age", help="Years, or e.g. '6 months'."),
    weight: str | None = typer.Option(None, "--weight", help="With unit, e.g. '70 kg'."),
    height: str | None = typer.Option(None, "--height", help="With unit, e.g. '170 cm'."),
    sex: str | None = typer.Option(None, "--sex", help="m or f."),
    serum_creatinine: str | None = typer.Option(
        None, "--scr", help="Serum creatinine, e.g. '1.0 mg/dL' (vancomycin)."
    ),
    opioid: bool = typer.Option(False, "--opioid", help="Concomitant opioid (Eleveld propofol)."),
    dialysis: bool = typer.Option(
        False, "--dialysis", help="Intermittent haemodialysis (Goti vancomycin)."
    ),
    step_s: float = typer.Option(10.0, "--step-s", help="Output grid step in seconds."),
    json_out: bool = JsonOption,
) -> None:
    """Cp and Ce on a regular grid for one patient and a bolus/infusion schedule."""
    spec = model_spec(drug, model)
    patient = Patient.from_text(
        weight=weight, height=height, age=age, sex=sex, serum_creatinine=serum_creatinine
    )
    spec, pk = build_model(
        spec.drug, spec.name, Covariates.from_patient(patient), ModelOptions(opioid, dialysis)
    )
    if not (np.isfinite(step_s) and step_s > 0):
        raise InputError("step-s", step_s, "must be a number of seconds greater than 0")
    plan = load_pk_schedule(schedule, spec, patient)
    points = int(np.floor(plan.duration_s / step_s + 1e-9)) + 1
    if points > MAX_GRID_POINTS:
        raise InputError(
            "step-s", step_s, f"gives {points} points over the schedule; the limit is 1000000"
        )
    grid = np.arange(points, dtype=np.float64) * step_s
    result = simulate(pk, plan.schedule, grid)
    cp = result.cp[0] * spec.concentration_scale
    ce = result.ce[0] * spec.concentration_scale
    unit = spec.concentration_unit
    out: dict[str, Any] = {
        "drug": spec.drug,
        "model": spec.name,
        "citation": spec.citation,
        "options": {"opioid": opioid, "dialysis": dialysis},
        "effect_site": pk.has_effect_site,
        "patient": patient.as_dict(),
        "parameters": {k: (v[0] if v else None) for k, v in pk.as_dict().items()},
        "total_dose": {"value": plan.total_amount, "unit": plan.amount_unit},
        "t_s": grid.tolist(),
        "cp": cp.tolist(),
        "ce": ce.tolist(),
        "units": {"t": "s", "cp": unit, "ce": unit, "dose": plan.amount_unit},
    }
    if json_out:
        print_json(out)
        return
    _print_summary(out, grid, cp, ce)


def _print_summary(out: dict[str, Any], grid: np.ndarray[Any, Any], cp: Any, ce: Any) -> None:
    unit = out["units"]["cp"]
    dose = out["total_dose"]
    console.print(f"{out['drug']} ({out['model']}: {out['citation']})")
    console.print(f"total dose {format_number(round(dose['value'], 4))} {dose['unit']}")
    i_cp, i_ce = int(np.argmax(cp)), int(np.argmax(ce))
    console.print(
        f"peak Cp {format_number(round(float(cp[i_cp]), 4))} {unit} at "
        f"{format_number(round(grid[i_cp] / 60.0, 2))} min"
    )
    if out["effect_site"]:
        console.print(
            f"peak Ce {format_number(round(float(ce[i_ce]), 4))} {unit} at "
            f"{format_number(round(grid[i_ce] / 60.0, 2))} min"
        )
    console.print(
        f"at {format_number(round(grid[-1] / 60.0, 2))} min: Cp "
        f"{format_number(round(float(cp[-1]), 4))} {unit}"
        + (f", Ce {format_number(round(float(ce[-1]), 4))} {unit}" if out["effect_site"] else "")
    )


@trial_app.command("glucose")
@handle_errors
def glucose_cmd(
    patients: str = typer.Option(
        ...,
        "--patients",
        help="Subjects (adult#001,child#003), a cohort (adults, adolescents, children, all) "
        "or a repeated cohort (all*100).",
    ),
    scenario: Path = typer.Option(..., "--scenario", help="Scenario JSON/YAML (docs/trials.md)."),
    controller: str = typer.Option(
        "open-loop", "--controller", help="open-loop (the scenario's insulin) or a controller."
    ),
    no_sensor_noise: bool = typer.Option(False, "--no-sensor-noise", help="An exact CGM."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for the sensor noise."),
    engine: str = typer.Option("local", "--engine", help="local or ray."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Ray CPUs to use."),
    report: Path | None = typer.Option(None, "--report", help="Write PNG and HTML reports here."),
    metrics_only: bool = typer.Option(False, "--metrics-only", help="Leave the traces out."),
    json_out: bool = JsonOption,
) -> None:
    """Run virtual T1D patients (UVA/Padova 2008) through a scenario; per-patient BG and
    consensus metrics."""
    from rich.progress import Progress

    from openinfusion.sim.glucose_scenario import load_glucose_scenario
    from openinfusion.sim.glucose_trial import resolve_patients, run_trial
    from openinfusion.sim.metrics import cvga, glycaemic_metrics
    from openinfusion.sim.report import write_glucose_report

    names = resolve_patients(patients)
    spec = load_glucose_scenario(scenario)
    work = spec.minutes * len(names)
    show = not json_out and work >= 500_000  # a progress bar only where a run takes a while
    with Progress(transient=True, disable=not show, console=console) as bar:
        task = bar.add_task("patient-minutes", total=spec.minutes)
        result = run_trial(
            names,
            spec,
            controller=controller,
            sensor_noise=not no_sensor_noise,
            seed=seed,
            engine=engine,
            workers=workers,
            progress=lambda minutes: bar.advance(task, minutes),
        )
    pooled = glycaemic_metrics(result.bg_mg_dl.ravel()[None, :])[0]
    out: dict[str, Any] = {
        "scenario": str(scenario),
        "controller": result.controller,
        "seed": seed,
        "engine": engine,
        "minutes": spec.minutes,
        "patients": [result.patient(i, traces=not metrics_only) for i in range(len(names))],
        "summary": {"patients": len(names), **pooled},
        "cvga": cvga(result.bg_mg_dl)["percent"],
    }
    if report is not None:
        out["report"] = write_glucose_report(
            report,
            names,
            result.bg_mg_dl,
            title=f"{scenario.name} - {result.controller}",
            metrics=result.metrics,
        )
    if json_out:
        print_json(out)
        return
    _print_glucose(out)


def _print_glucose(out: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{out['controller']}, {out['minutes']} min, seed {out['seed']}")
    for col in ("patient", "TIR %", "TBR %", "TBR<54 %", "TAR %", "mean", "CV %", "LBGI", "HBGI"):
        table.add_column(col, justify="right")
    rows = [(p["name"], p["metrics"]) for p in out["patients"][:40]]
    rows.append(("all", out["summary"]))
    for name, m in rows:
        table.add_row(
            name,
            *(
                f"{m[k]:.1f}"
                for k in ("tir_percent", "tbr_percent", "tbr2_percent", "tar_percent", "mean_mg_dl")
            ),
            f"{m['cv_percent']:.1f}",
            f"{m['lbgi']:.2f}",
            f"{m['hbgi']:.2f}",
        )
    console.print(table)
    console.print("CVGA: " + ", ".join(f"{k} {v:.0f} %" for k, v in out["cvga"].items()))
    if "report" in out:
        console.print(f"report: {out['report']['html']}")


@trial_app.command("pca")
@handle_errors
def pca_cmd(
    scenario: Path = typer.Option(
        ..., "--scenario", help="PCA trial scenario JSON/YAML (docs/pca-trials.md)."
    ),
    patients: int | None = typer.Option(
        None, "--patients", help="Number of patients (overrides patients.n)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Trial seed (overrides the file's)."),
    metrics_only: bool = typer.Option(False, "--metrics-only", help="Leave the traces out."),
    json_out: bool = JsonOption,
) -> None:
    """Virtual post-operative patients on a real PCA pump (morphine): opioid use, pain and
    respiratory depression per patient and pooled."""
    import time

    from rich.progress import Progress

    from openinfusion.sim.pca_scenario import load_pca_scenario, prepare
    from openinfusion.sim.pca_trial import run_pca_trial

    spec = load_pca_scenario(scenario)
    prep = prepare(spec, n=patients, seed=seed)
    show = not json_out and prep.n * prep.minutes >= 200_000
    started = time.perf_counter()
    with Progress(transient=True, disable=not show, console=console) as bar:
        task = bar.add_task("trial minutes", total=prep.minutes)
        result = run_pca_trial(
            spec, n=patients, seed=seed, progress=lambda minutes: bar.advance(task, minutes)
        )
    out: dict[str, Any] = {
        "scenario": str(scenario),
        "seed": result.seed,
        "minutes": prep.minutes,
        "runtime_s": round(time.perf_counter() - started, 3),
        "program": result.program,
        "units": {
            "t": "min",
            "ce": "ng/mL",
            "pain": "NRS 0-10",
            "spo2": "%",
            "opioid": "mg",
        },
        "patients": [result.patient(i, traces=not metrics_only) for i in range(result.n)],
        "summary": result.summary,
    }
    if json_out:
        print_json(out)
        return
    _print_pca(out)


def _print_pca(out: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    s = out["summary"]
    table = Table(
        title=f"PCA {out['program']['drug']}: {s['patients']} patients, "
        f"{out['minutes'] / 60:g} h, seed {out['seed']}",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    columns = ("id", "sex", "kg", "mg", "mg/kg", "press", "denied", "NRS", "<=3 %", "RD")
    for col in (*columns, "SpO2", "EtCO2"):
        table.add_column(col, justify="right")

    def opt(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    for p in out["patients"][:40]:
        m, c = p["metrics"], p["covariates"]
        table.add_row(
            str(p["id"]),
            c["sex"],
            opt(c["weight_kg"], ".0f"),
            f"{m['opioid_mg']:.1f}",
            f"{m['opioid_mg_per_kg']:.2f}",
            str(m["demands"]),
            str(m["denied"]),
            f"{m['mean_pain_nrs']:.1f}",
            f"{100 * m['pain_free_fraction']:.0f}",
            str(m["resp_events"]),
            opt(m["min_sao2_pct"], ".0f"),
            opt(m["max_etco2_mmhg"], ".0f"),
        )
    if len(out["patients"]) > 40:
        table.add_row("...", *[""] * (len(columns) + 1))
    console.print(table)
    console.print(
        "mg: morphine given; press/denied: PCA demands; NRS: mean pain; <=3 %: time at "
        "NRS <= 3; RD: respiratory-depression episodes; SpO2: lowest true SaO2 %; EtCO2: "
        "highest reading, mmHg"
    )
    mg, kg = s["opioid_mg"], s["opioid_mg_per_kg"]
    console.print(
        f"opioid: median {mg['median']:g} mg (5-95 %: {mg['p5']:g}-{mg['p95']:g}), "
        f"median {kg['median']:g} mg/kg"
    )
    reasons = ", ".join(f"{k} {v}" for k, v in s["denied_reasons"].items()) or "none"
    console.print(
        f"demands {s['demands']}: granted {s['granted']}, denied {s['denied']} ({reasons})"
    )
    console.print(
        f"pain: mean NRS {s['mean_pain_nrs']['mean']:g}; time at NRS <= 3 "
        f"{100 * s['pain_free_fraction']['mean']:.1f} % (mean of patients)"
    )
    console.print(
        f"respiratory depression: {s['resp_events']} episodes, {s['resp_event_minutes']} min, "
        f"{s['patients_with_resp_event']} of {s['patients']} patients; "
        f"lowest SaO2 {opt(s['min_sao2_pct'], 'g')} %, "
        f"highest EtCO2 {opt(s['max_etco2_mmhg'], 'g')} mmHg"
    )
    console.print(f"runtime {out['runtime_s']:g} s")
