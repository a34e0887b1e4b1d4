"""The glucose trial engine: N virtual T1D patients advanced together, minute by minute.

The state of every patient is one array (:class:`~openinfusion.physiology.glucose.GlucosePatients`);
inputs come from a :class:`~openinfusion.sim.glucose_scenario.GlucoseScenario`. Open loop
runs the whole schedule through the batch integrator; a controller is asked for an insulin
rate every ``sample_min`` minutes from the CGM it sees, and the pump faults of the scenario
(occlusion, suspension) still apply to what it asks for. Deterministic for a seed. With
``engine="ray"`` the cohort is split into chunks run as Ray tasks; every patient's numbers
are the same as a local run (sensor noise is drawn per patient from its own seed).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from openinfusion.control.aid.trial_adapter import (
    mpc_controller,
    oref_controller,
    oref_smb_controller,
    pid_controller,
)
from openinfusion.errors import InputError
from openinfusion.physiology.glucose import GlucoseParameters, GlucosePatients, simulate
from openinfusion.physiology.glucose import subject_names as _subject_names
from openinfusion.physiology.sensors import CgmSensor
from openinfusion.sim.glucose_scenario import GlucoseScenario, Inputs, build_inputs
from openinfusion.sim.metrics import glycaemic_metrics

Array = NDArray[np.float64]
COHORTS = {"adults": "adult#", "adolescents": "adolescent#", "children": "child#"}


def resolve_patients(spec: str | Sequence[str]) -> list[str]:
    """Subject names from "adult#001,child#003", a cohort ("adults", "adolescents",
    "children", "all") or "adults*10" (each subject of the cohort ten times)."""
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    known = _subject_names()
    out: list[str] = []
    for item in items:
        if not item:
            continue
        base, _, times = item.partition("*")
        repeat = 1
        if times:
            if not times.isdigit() or not 1 <= int(times) <= 100_000:
                raise InputError("patients", item, "repeat count must be a whole number 1-100000")
            repeat = int(times)
        base = base.strip()
        if base.lower() == "all":
            names = list(known)
        elif base.lower() in COHORTS:
            names = [n for n in known if n.startswith(COHORTS[base.lower()])]
        elif base in known:
            names = [base]
        else:
            raise InputError(
                "patients",
                base,
                "is not a subject (adult#001..010, adolescent#001..010, child#001..010) "
                "or a cohort (adults, adolescents, children, all)",
            )
        out.extend(names * repeat)
    if not out:
        raise InputError("patients", str(spec), "names no patient")
    return out


class Controller(Protocol):
    """Decides insulin every ``sample_min`` minutes from what a real controller could see."""

    name: str
    sample_min: int

    def reset(self, patients: GlucosePatients, basal_u_min: Array) -> None: ...

    def decide(self, t_min: int, cgm_mg_dl: Array, carbs_g: Array) -> Array:
        """Insulin to give (U/min, shape (N,)) for the next ``sample_min`` minutes.
        ``cgm_mg_dl`` may hold NaN (no reading); ``carbs_g`` is the carbohydrate announced
        in the coming interval (a meal announcement)."""
        ...


@dataclass
class BasalBolus:
    """The reference simulator's basal-bolus controller: the subject's basal, and at each
    announced meal a bolus of carbs/CR plus a correction (CGM - target)/CF when CGM > 150,
    given within the interval (simglucose ``BBController``, target 140 mg/dL; CR and CF
    from the subjects' therapy table)."""

    target_mg_dl: float = 140.0
    sample_min: int = 5
    name: str = "basal-bolus"
    _basal: Array = field(default_factory=lambda: np.zeros(0))
    _cr: Array = field(default_factory=lambda: np.zeros(0))
    _cf: Array = field(default_factory=lambda: np.zeros(0))

    def reset(self, patients: GlucosePatients, basal_u_min: Array) -> None:
        self._basal = basal_u_min
        self._cr = patients.parameters.carb_ratio_g_per_u
        self._cf = patients.parameters.correction_factor_mg_dl_per_u

    def decide(self, t_min: int, cgm_mg_dl: Array, carbs_g: Array) -> Array:
        cgm = np.nan_to_num(cgm_mg_dl, nan=self.target_mg_dl)  # no reading: no correction
        correction = np.where(cgm > 150.0, (cgm - self.target_mg_dl) / self._cf, 0.0)
        bolus = np.where(carbs_g > 0, carbs_g / self._cr + correction, 0.0)
        return np.asarray(self._basal + np.maximum(bolus, 0.0) / self.sample_min)


CONTROLLERS: dict[str, Callable[[], Controller]] = {
    "basal-bolus": BasalBolus,
    "pid": pid_controller,  # PID with insulin feedback behind the safety supervisor
    "mpc": mpc_controller,  # linear MPC behind the safety supervisor
    "oref": oref_controller,  # oref0 determine-basal behind the safety supervisor
    "oref-smb": oref_smb_controller,  # oref1 with super-micro-boluses, same supervisor
}


def register_controller(name: str, factory: Callable[[], Controller]) -> None:
    """Make a controller available to trials by name (closed-loop algorithms register here)."""
    CONTROLLERS[name] = factory


@dataclass
class TrialResult:
    """Per-minute traces (N, T) and per-patient metrics of one trial."""

    names: list[str]
    bg_mg_dl: Array
    cgm_mg_dl: Array
    insulin_u_min: Array
    carbs_g_min: Array
    metrics: list[dict[str, float]]
    controller: str
    seed: int

    def patient(self, i: int, *, traces: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.names[i], "metrics": self.metrics[i]}
        if traces:
            out["bg_mg_dl"] = np.round(self.bg_mg_dl[i], 3).tolist()
            out["cgm_mg_dl"] = [
                None if math.isnan(v) else round(v, 2) for v in self.cgm_mg_dl[i].tolist()
            ]
            out["insulin_units"] = float(self.insulin_u_min[i].sum())
        return out


SENSOR_BLOCK = 64  # patients per seeded sensor stream; chunks for Ray align to it


def _sensor(seed: int, noise: bool) -> CgmSensor:
    return CgmSensor("Dexcom", seed=seed, noise=noise)


def _blocks(seed: int, offset: int, n: int) -> list[tuple[int, int, int]]:
    """(start, stop, sensor seed) for the sensor blocks of patients offset..offset+n-1 of
    the whole cohort: the noise a patient gets depends on the trial seed and the patient's
    place in the cohort only, never on how the cohort is split between workers."""
    out = []
    g = offset
    while g < offset + n:
        block = g // SENSOR_BLOCK
        stop = min(offset + n, (block + 1) * SENSOR_BLOCK)
        block_seed = int(np.random.SeedSequence([seed, block]).generate_state(1)[0])
        out.append((g - offset, stop - offset, block_seed))
        g = stop
    return out


def _cgm(
    sub_q: Array, blocks: Sequence[tuple[int, int, int]], noise: bool, ok: NDArray[np.bool_]
) -> Array:
    """CGM readings (mg/dL), NaN where the sensor gave none."""
    cgm = np.empty_like(sub_q)
    # A patient driven to ~0 mg/dL reads as the sensor's floor (39 mg/dL) anyway.
    sub_q = np.maximum(sub_q, 1.0)
    for a, b, s in blocks:
        cgm[a:b] = _sensor(s, noise).readings(sub_q[a:b])
    cgm[:, ~ok] = np.nan
    return cgm


def run_local(
    names: Sequence[str],
    scenario: GlucoseScenario,
    *,
    controller: str = "open-loop",
    sensor_noise: bool = True,
    seed: int = 0,
    offset: int = 0,
    progress: Callable[[int], None] | None = None,
) -> TrialResult:
    """Run ``names`` through ``scenario`` in this process. ``offset`` is the index of the
    first patient in the whole cohort (sensor noise streams follow the patient's place in the cohort)."""
    params = GlucoseParameters.from_names(names)
    patients = GlucosePatients(params)
    inputs = build_inputs(scenario, patients.steady_state_basal_u_per_h)
    t = scenario.minutes
    n = patients.n
    blocks = _blocks(seed, offset, n)
    if controller == "open-loop":
        sub = np.empty((n, t + 1))
        bg = _chunked(patients, inputs, t, sub, progress)
        delivered = inputs.insulin_u_min
        cgm = _cgm(sub[:, :t], blocks, sensor_noise, inputs.sensor_ok)
    else:
        bg, cgm, delivered = _closed_loop(
            patients, inputs, t, controller, blocks, sensor_noise, progress
        )
    per_day = 1440
    metrics = glycaemic_metrics(bg[:, :t], samples_per_day=per_day)
    carbs = np.broadcast_to(inputs.carbs_g_min, (n, t))
    return TrialResult(
        list(names), bg[:, :t], cgm, delivered, np.array(carbs), metrics, controller, seed
    )


def _chunked(
    patients: GlucosePatients,
    inputs: Inputs,
    t: int,
    sub: Array,
    progress: Callable[[int], None] | None,
) -> Array:
    """Open loop in day-long chunks so a progress bar can move."""
    n = patients.n
    bg = np.empty((n, t + 1))
    start = 0
    while start < t:
        stop = min(t, start + 1440)
        part_sub = np.empty((n, stop - start + 1))
        part = simulate(
            patients,
            stop - start,
            inputs.carbs_g_min[start:stop][None, :],
            inputs.insulin_u_min[:, start:stop],
            subcutaneous_out=part_sub,
        )
        bg[:, start : stop + 1] = part
        sub[:, start : stop + 1] = part_sub
        if progress:
            progress(stop - start)
        start = stop
    return bg


def _closed_loop(
    patients: GlucosePatients,
    inputs: Inputs,
    t: int,
    name: str,
    blocks: Sequence[tuple[int, int, int]],
    noise: bool,
    progress: Callable[[int], None] | None,
) -> tuple[Array, Array, Array]:
    try:
        ctrl = CONTROLLERS[name]()
    except KeyError:
        known = ", ".join(["open-loop", *CONTROLLERS])
        raise InputError("controller", name, f"is not a controller ({known})") from None
    n = patients.n
    basal = patients.steady_state_basal_u_per_min
    ctrl.reset(patients, basal)
    sensors = [(a, b, _sensor(s, noise)) for a, b, s in blocks]
    bg = np.empty((n, t + 1))
    cgm = np.full((n, t), np.nan)
    delivered = np.zeros((n, t))
    # The pump's faults: where delivery is blocked, the controller's request is lost.
    blocked = (inputs.programmed_u_min > 0) & (inputs.insulin_u_min == 0)
    suspended = inputs.programmed_u_min == 0
    pump_off = (blocked | suspended).any(axis=0)
    bg[:, 0] = patients.bg_mg_dl
    rate = np.zeros(n)
    for m in range(t):
        sub = np.maximum(patients.subcutaneous_glucose_mg_dl, 1.0)  # see _cgm
        for a, b, sensor in sensors:
            cgm[a:b, m] = sensor.measure(m, sub[a:b])
        if not inputs.sensor_ok[m]:
            cgm[:, m] = np.nan
        if m % ctrl.sample_min == 0:
            window = inputs.carbs_g_min[m : m + ctrl.sample_min].sum()
            rate = np.maximum(np.asarray(ctrl.decide(m, cgm[:, m], np.full(n, window))), 0.0)
        given = np.zeros(n) if pump_off[m] else rate
        delivered[:, m] = given
        bg[:, m + 1] = patients.step(inputs.carbs_g_min[m], given)
        if progress and (m + 1) % 1440 == 0:
            progress(1440)
    if progress and t % 1440:
        progress(t % 1440)
    return bg, cgm, delivered


def run_trial(
    names: Sequence[str],
    scenario: GlucoseScenario,
    *,
    controller: str = "open-loop",
    sensor_noise: bool = True,
    seed: int = 0,
    engine: str = "local",
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrialResult:
    """Run a trial locally or on Ray; both give the same numbers for the same seed."""
    if engine == "local":
        return run_local(
            names,
            scenario,
            controller=controller,
            sensor_noise=sensor_noise,
            seed=seed,
            progress=progress,
        )
    if engine != "ray":
        raise InputError("engine", engine, "must be local or ray")
    return _run_ray(names, scenario, controller, sensor_noise, seed, workers, progress)


def _run_ray(
    names: Sequence[str],
    scenario: GlucoseScenario,
    controller: str,
    noise: bool,
    seed: int,
    workers: int | None,
    progress: Callable[[int], None] | None,
) -> TrialResult:
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.ERROR)
    try:
        cpus = int(ray.available_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
        per = SENSOR_BLOCK * max(1, math.ceil(len(names) / SENSOR_BLOCK / (2 * cpus)))
        bounds = [*range(0, len(names), per), len(names)]
        task = ray.remote(_ray_chunk)
        refs = [
            task.remote(
                list(names[a:b]),
                scenario.model_dump(by_alias=True),
                controller,
                noise,
                seed,
                int(a),
            )
            for a, b in itertools.pairwise(bounds)
        ]
        parts: list[TrialResult] = ray.get(refs)
    finally:
        if started_here:
            ray.shutdown()
    if progress:
        progress(scenario.minutes)
    return TrialResult(
        names=[n for p in parts for n in p.names],
        bg_mg_dl=np.vstack([p.bg_mg_dl for p in parts]),
        cgm_mg_dl=np.vstack([p.cgm_mg_dl for p in parts]),
        insulin_u_min=np.vstack([p.insulin_u_min for p in parts]),
        carbs_g_min=np.vstack([p.carbs_g_min for p in parts]),
        metrics=[m for p in parts for m in p.metrics],
        controller=controller,
        seed=seed,
    )


def _ray_chunk(
    names: list[str], scenario: dict[str, Any], controller: str, noise: bool, seed: int, offset: int
) -> TrialResult:
    return run_local(
        names,
        GlucoseScenario.model_validate(scenario),
        controller=controller,
        sensor_noise=noise,
        seed=seed,
        offset=offset,
    )


__all__ = [
    "CONTROLLERS",
    "BasalBolus",
    "Controller",
    "TrialResult",
    "register_controller",
    "resolve_patients",
    "run_local",
    "run_trial",
]
