"""Therapy histories from the glucose trial engine, for autosens and autotune.

- :func:`history_from_trial`: one patient of a :class:`~openinfusion.sim.glucose_trial.TrialResult`
  (per-minute CGM, delivered insulin and carbohydrate) as a
  :class:`~openinfusion.control.aid.therapy_history.TherapyHistory`.
- :func:`history_from_trial_json`: the same from ``openinfusion trial glucose --json``
  output. That output holds per-minute BG and CGM but only the insulin total, so the
  per-minute insulin and the meals are rebuilt from the scenario file it names; this is
  exact for open-loop runs only (a controller's insulin is not in the output).
- :func:`simulate_days`: a virtual subject lives several days on programmed settings that may
  be wrong (basal, ISF, CR scaled) or with its insulin action changed (the model's
  insulin-dependent utilisation Vmx and insulin suppression of glucose production kp3 scaled
  together), in open loop (basal + carbs/CR meal boluses) or under the PID of
  ``control.aid``; the history is what a pump and CGM would upload.
- :func:`nightly_autotune`: the same subject, re-programmed every night with autotune's
  result from the day before.

Times start at local midnight (the trial's ``start_hour`` shifts them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from openinfusion.control.aid.autotune import AutotuneResult, autotune
from openinfusion.control.aid.interface import Profile
from openinfusion.control.aid.pid import PidIfbController
from openinfusion.control.aid.therapy_history import Array, TherapyHistory, TherapySettings
from openinfusion.control.aid.trial_adapter import TrialAid
from openinfusion.errors import InputError
from openinfusion.physiology.glucose import (
    GlucoseParameters,
    GlucosePatients,
    simulate,
    subject_names,
)
from openinfusion.physiology.sensors import CgmSensor
from openinfusion.sim.glucose_scenario import Insulin, build_inputs, load_glucose_scenario
from openinfusion.units import Kind, parse_quantity

CGM_EVERY_MIN = 5
DEFAULT_MEALS = ((7 * 60.0, 50.0), (12 * 60.0, 70.0), (18 * 60.0, 80.0))


def subject_settings(
    name: str,
    *,
    basal_scale: float = 1.0,
    isf_scale: float = 1.0,
    cr_scale: float = 1.0,
    dia_h: float = 5.0,
    peak_min: float = 75.0,
) -> TherapySettings:
    """Settings of a virtual subject (flat basal = its steady-state basal; ISF and CR from
    its therapy table), each scaled to make a deliberately wrong profile."""
    p = GlucoseParameters.from_names([name])
    return TherapySettings(
        basal_u_h=np.full(24, float(p.basal_u_per_h[0]) * basal_scale),
        isf_mg_dl_u=float(p.correction_factor_mg_dl_per_u[0]) * isf_scale,
        carb_ratio_g_u=float(p.carb_ratio_g_per_u[0]) * cr_scale,
        dia_h=dia_h,
        peak_min=peak_min,
    )


def history_from_trial(
    result: Any,
    index: int,
    settings: TherapySettings,
    *,
    start_hour: float = 0.0,
    use_cgm: bool = True,
    carbs_g_min: Array | None = None,
) -> TherapyHistory:
    """Patient ``index`` of a trial result (``names``, ``bg_mg_dl``, ``cgm_mg_dl``,
    ``insulin_u_min``, ``carbs_g_min``) as a history read against ``settings``.

    ``use_cgm``: the CGM readings every 5 min (what a pump would upload; dropouts left out)
    rather than the per-minute plasma BG. ``carbs_g_min``: the announced meals (g per
    minute of announcement); by default the eaten carbohydrate of the result is grouped
    into meals (eaten at 5 g/min, a meal is a run of consecutive minutes)."""
    n = len(result.names)
    if not 0 <= index < n:
        raise InputError("patient", index, f"must be 0 to {n - 1}")
    offset = round(start_hour * 60.0)
    bg = np.asarray(result.cgm_mg_dl if use_cgm else result.bg_mg_dl, dtype=float)[index]
    t = np.arange(bg.size, dtype=float) + offset
    keep = np.isfinite(bg)
    if use_cgm:
        keep &= (np.arange(bg.size) % CGM_EVERY_MIN) == 0
    eaten = np.asarray(result.carbs_g_min, dtype=float)
    eaten = eaten[index] if eaten.ndim == 2 else eaten
    if carbs_g_min is None:
        ct, cg = _meals_from_intake(eaten)
    else:
        announced = np.asarray(carbs_g_min, dtype=float)
        ct = np.nonzero(announced > 0)[0].astype(float)
        cg = announced[announced > 0]
    return TherapyHistory(
        glucose_t_min=t[keep],
        glucose_mg_dl=np.maximum(bg[keep], 1.0),
        insulin_start_min=offset,
        insulin_u=np.asarray(result.insulin_u_min, dtype=float)[index],
        carbs_t_min=ct + offset,
        carbs_g=cg,
        settings=settings,
    )


def _meals_from_intake(eaten_g_min: Array) -> tuple[Array, Array]:
    """Meals (start minute, g) from per-minute intake: each run of eating minutes is one."""
    on = eaten_g_min > 0
    if not on.any():
        return np.zeros(0), np.zeros(0)
    edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    starts = np.nonzero(edges == 1)[0]
    stops = np.nonzero(edges == -1)[0]
    cum = np.concatenate([[0.0], np.cumsum(eaten_g_min)])
    return starts.astype(float), cum[stops] - cum[starts]


@dataclass(frozen=True)
class _Traces:
    """The per-minute traces :func:`history_from_trial` reads (a trial result's shape)."""

    names: list[str]
    bg_mg_dl: Array
    cgm_mg_dl: Array
    insulin_u_min: Array
    carbs_g_min: Array


def history_from_trial_json(
    doc: dict[str, Any],
    *,
    patient: str | None = None,
    scenario: str | Path | None = None,
    settings: TherapySettings | None = None,
) -> TherapyHistory:
    """A patient of ``openinfusion trial glucose --json`` output (open loop only).

    ``scenario`` overrides the path the output names. ``settings`` default to what the
    scenario programmed: its basal (the subject's steady-state basal for "patient") and
    the subject's ISF and CR."""
    if doc.get("controller") != "open-loop":
        raise InputError(
            "controller",
            doc.get("controller"),
            "trial output holds per-minute insulin only implicitly, through the scenario: "
            "only open-loop runs can be read (run the trial with --controller open-loop)",
        )
    rows = doc.get("patients")
    if not isinstance(rows, list) or not rows:
        raise InputError("patients", None, "trial output must list patients")
    names = [str(r.get("name")) for r in rows if isinstance(r, dict)]
    chosen = names[0] if patient is None else patient
    if chosen not in names:
        raise InputError("patient", chosen, f"is not in the trial output ({', '.join(names)})")
    row = rows[names.index(chosen)]
    if chosen not in subject_names():
        raise InputError("patient", chosen, "is not a virtual subject of this model")
    cgm = row.get("cgm_mg_dl")
    if not isinstance(cgm, list):
        raise InputError(
            "patients.cgm_mg_dl", None, "traces are missing (run without --metrics-only)"
        )
    path = scenario if scenario is not None else doc.get("scenario")
    if path is None:
        raise InputError("scenario", None, "the trial output names no scenario file")
    spec = load_glucose_scenario(Path(str(path)))
    p = GlucoseParameters.from_names([chosen])
    inputs = build_inputs(spec, np.asarray(p.basal_u_per_h, dtype=float))
    minutes = spec.minutes
    if len(cgm) != minutes:
        raise InputError(
            "patients.cgm_mg_dl",
            len(cgm),
            f"must have one value per minute of the scenario ({minutes})",
        )
    values = np.array([np.nan if v is None else float(v) for v in cgm], dtype=float)
    if settings is None:  # the scenario's programmed basal, before temp basals and boluses
        plain = spec.model_copy(update={"insulin": Insulin(basal=spec.insulin.basal)})
        rate = float(build_inputs(plain, p.basal_u_per_h).programmed_u_min[0, 0]) * 60.0
        settings = subject_settings(chosen).with_values(basal_u_h=np.full(24, rate))
    announced = np.zeros(minutes)
    for i, meal in enumerate(spec.meals):
        at = parse_quantity(meal.at, Kind.DURATION, f"meals[{i}].at")
        announced[min(int(np.floor(at + 1e-9)), minutes - 1)] += meal.carbs_g
    res = _Traces(
        [chosen], values[None, :], values[None, :], inputs.insulin_u_min, inputs.carbs_g_min
    )
    return history_from_trial(res, 0, settings, start_hour=spec.start_hour, carbs_g_min=announced)


@dataclass(frozen=True)
class VirtualDays:
    """A virtual subject's days. ``sensitivity_scale`` multiplies its insulin action (Vmx and
    kp3 of the UVA/Padova model: > 1 more sensitive, < 1 more resistant) from t = 0, when
    it is still at the steady state of its old sensitivity. ``meals`` and ``corrections``
    repeat every day: (minute of day, g) eaten with a carbs/CR bolus, and (minute of day, U)
    extra boluses. ``controller``: "open-loop" (programmed basal + boluses) or "pid"
    (the PID of ``control.aid`` on the programmed settings, target = the subject's basal
    glucose, so the right basal is its steady-state basal)."""

    name: str = "adult#001"
    days: int = 2
    sensitivity_scale: float = 1.0
    meals: Sequence[tuple[float, float]] = DEFAULT_MEALS
    corrections: Sequence[tuple[float, float]] = ()
    controller: str = "open-loop"
    cgm_noise: bool = False
    seed: int = 0


def _patients(spec: VirtualDays) -> GlucosePatients:
    p = GlucoseParameters.from_names([spec.name])
    s = spec.sensitivity_scale
    true = replace(
        p,
        vmx_mg_per_kg_min_per_pmol_l=p.vmx_mg_per_kg_min_per_pmol_l * s,
        kp3_mg_per_kg_min_per_pmol_l=p.kp3_mg_per_kg_min_per_pmol_l * s,
    )
    return GlucosePatients(true)


def simulate_days(spec: VirtualDays, settings: TherapySettings) -> TherapyHistory:
    """Run ``spec`` on the programmed ``settings``; CGM every 5 min, insulin per minute."""
    if spec.controller not in ("open-loop", "pid"):
        raise InputError("controller", spec.controller, "must be open-loop or pid")
    if not 1 <= spec.days <= 60:
        raise InputError("days", spec.days, "must be 1 to 60")
    total = spec.days * 1440
    minutes = np.arange(total, dtype=float)
    carbs = np.zeros(total)
    bolus = np.zeros(total)
    meal_t: list[float] = []
    meal_g: list[float] = []
    for d in range(spec.days):
        for at, grams in spec.meals:
            m = d * 1440 + int(at)
            carbs[m] += grams
            meal_t.append(float(m))
            meal_g.append(float(grams))
            if spec.controller == "open-loop":
                bolus[m] += grams / settings.carb_ratio_g_u
        for at, units in spec.corrections:
            bolus[d * 1440 + int(at)] += units
    patients = _patients(spec)
    sensor = CgmSensor("Dexcom", seed=spec.seed, noise=spec.cgm_noise)
    if spec.controller == "open-loop":
        insulin = settings.basal_at(minutes) / 60.0 + bolus
        sub = np.empty((1, total + 1))
        simulate(patients, total, carbs[None, :], insulin[None, :], subcutaneous_out=sub)
        cgm = sensor.readings(np.maximum(sub[:, :total], 1.0))[0]
    else:
        insulin, cgm = _closed_loop(spec, patients, settings, carbs, bolus, sensor)
    keep = np.isfinite(cgm) & (np.arange(total) % CGM_EVERY_MIN == 0)
    return TherapyHistory(
        glucose_t_min=minutes[keep],
        glucose_mg_dl=cgm[keep],
        insulin_start_min=0,
        insulin_u=insulin,
        carbs_t_min=np.array(meal_t),
        carbs_g=np.array(meal_g),
        settings=settings,
    )


def _closed_loop(
    spec: VirtualDays,
    patients: GlucosePatients,
    settings: TherapySettings,
    carbs: Array,
    bolus: Array,
    sensor: CgmSensor,
) -> tuple[Array, Array]:
    """Minute loop with the PID on a profile built from ``settings`` (flat basal: the
    schedule's mean, since the controller's profile holds one basal per patient)."""
    p = patients.parameters
    basal = float(np.mean(settings.basal_u_h))
    tdi = np.asarray(p.total_daily_insulin_u, dtype=float)
    aid = TrialAid("pid", lambda pts, prof: PidIfbController(tdi))
    aid.reset(patients, np.array([basal / 60.0]))
    aid.profile = Profile(
        basal_u_h=np.array([basal]),
        isf_mg_dl_u=np.array([settings.isf_mg_dl_u]),
        carb_ratio_g_u=np.array([settings.carb_ratio_g_u]),
        target_mg_dl=np.asarray(p.basal_glucose_mg_dl, dtype=float),
        max_basal_u_h=np.array([4.0 * basal]),
        max_iob_u=tdi / 3.0,
        max_daily_basal_u_h=np.array([basal]),
        dia_h=settings.dia_h,
        peak_min=settings.peak_min,
    )
    total = carbs.size
    insulin = np.zeros(total)
    cgm = np.full(total, np.nan)
    rate = np.zeros(1)
    step = aid.sample_min
    for m in range(total):
        sub = np.maximum(patients.subcutaneous_glucose_mg_dl, 1.0)
        cgm[m] = sensor.measure(m, sub)[0]
        if m % step == 0:
            window = carbs[m : m + step].sum()
            rate = np.maximum(np.asarray(aid.decide(m, cgm[m : m + 1], np.array([window]))), 0.0)
        given = rate + bolus[m]
        insulin[m] = float(given[0])
        patients.step(carbs[m], given)
    return insulin, cgm


def nightly_autotune(
    spec: VirtualDays, settings: TherapySettings, nights: int
) -> tuple[list[TherapySettings], list[AutotuneResult]]:
    """Live ``nights`` days; after each, tune on that day and program the result.

    Each day is simulated from the subject's steady state (``spec.days`` is ignored), so a
    day differs from the last only by the settings. Returns the settings of every day
    (``nights + 1``, the first being ``settings``) and each night's result."""
    one = replace(spec, days=1)
    programmed = [settings]
    results: list[AutotuneResult] = []
    for night in range(nights):
        history = simulate_days(replace(one, seed=spec.seed + night), programmed[-1])
        result = autotune(history)
        results.append(result)
        programmed.append(result.settings)
    return programmed, results


__all__ = [
    "DEFAULT_MEALS",
    "VirtualDays",
    "history_from_trial",
    "history_from_trial_json",
    "nightly_autotune",
    "simulate_days",
    "subject_settings",
]
