"""Glucose trial scenarios: meals, insulin and device faults, turned into per-minute inputs.

A scenario is JSON or YAML::

    {"duration": "24 h",
     "meals": [{"at": "7 h", "carbs_g": 50}],
     "insulin": {"basal": "patient" | "0.9 units/h",
                 "boluses": [{"at": "7 h", "units": 3.3}],
                 "temp_basals": [{"from": "2 h", "to": "4 h", "rate": "0 units/h"}]},
     "faults": [{"type": "occlusion", "from": "10 h", "to": "12 h"},
                {"type": "suspend", "from": "3 h", "to": "3.5 h"},
                {"type": "sensor_dropout", "from": "5 h", "to": "6 h"}]}

Times are from the start of the trial and may run over many days. Conversion follows the
reference simulator so that answers are comparable (AID_REFERENCE.md §1): a meal is eaten at
5 g/min (what is left over carries to the next minute, and overlapping meals queue), a bolus
is given as its whole amount within the minute it is due, basal in U/min every minute.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from openinfusion.errors import InputError, InputErrors
from openinfusion.units import Kind, parse_dose, parse_dose_unit, parse_quantity

EAT_RATE_G_MIN = 5.0  # simglucose T1DPatient.EAT_RATE
MAX_DAYS = 366


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Meal(_Spec):
    at: str
    carbs_g: float = Field(gt=0, le=500, allow_inf_nan=False)


class Bolus(_Spec):
    at: str
    units: float = Field(gt=0, le=50, allow_inf_nan=False)


class TempBasal(_Spec):
    from_: str = Field(alias="from")
    to: str
    rate: str

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Insulin(_Spec):
    basal: str = "patient"
    boluses: list[Bolus] = []
    temp_basals: list[TempBasal] = []


class Fault(_Spec):
    """``occlusion``: insulin programmed but not reaching the patient (it is not given and
    not made up later); ``suspend``: the pump stops delivery; ``sensor_dropout``: no CGM
    readings in the interval."""

    type: Literal["occlusion", "suspend", "sensor_dropout"]
    from_: str = Field(alias="from")
    to: str

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class GlucoseScenario(_Spec):
    duration: str
    meals: list[Meal] = []
    insulin: Insulin = Insulin()
    faults: list[Fault] = []
    start_hour: float = Field(default=0.0, ge=0, lt=24, allow_inf_nan=False)

    @property
    def minutes(self) -> int:
        minutes = parse_quantity(self.duration, Kind.DURATION, "duration")
        if not 1 <= minutes <= MAX_DAYS * 1440:
            raise InputError("duration", self.duration, f"must be 1 min to {MAX_DAYS} days")
        return round(minutes)


def load_glucose_scenario(source: str | Path | dict[str, Any]) -> GlucoseScenario:
    """Read a scenario from a dict or a JSON/YAML file; every problem is listed by path."""
    if isinstance(source, dict):
        data: Any = source
    else:
        from openinfusion.library.loading import parse_json_strict

        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError("scenario", str(path), f"cannot be read ({exc})") from None
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise InputError("scenario", str(path), f"is not valid YAML ({exc})") from None
        else:
            data = parse_json_strict(text, "scenario")
    try:
        scenario = GlucoseScenario.model_validate(data)
    except ValidationError as exc:
        problems = [
            InputError(
                ".".join(str(p) for p in err.get("loc", ())) or "scenario",
                err.get("input") if isinstance(err.get("input"), str | int | float) else "",
                str(err.get("msg", "invalid")),
            )
            for err in exc.errors()
        ]
        raise InputErrors("scenario", problems) from None
    _ = scenario.minutes  # validates duration
    return scenario


_UNITS_PER_H = parse_dose_unit("units/h")


def _insulin_rate(text: str, field: str) -> float:
    """An insulin rate such as "0.9 units/h" in U/h (0 to 35 U/h, a pump's basal range)."""
    dose = parse_dose(text, field)
    if dose.unit.basis.value or dose.unit.dimension is not _UNITS_PER_H.dimension:
        raise InputError(field, text, "must be an insulin rate in units/h")
    try:
        rate = dose.to(_UNITS_PER_H).value
    except InputError:
        raise InputError(field, text, "must be an insulin rate in units/h") from None
    if not 0 <= rate <= 35:
        raise InputError(field, text, "must be 0 to 35 units/h")
    return rate


def _minute(text: str, field: str, total: int) -> int:
    t = parse_quantity(text, Kind.DURATION, field)
    if not 0 <= t < total:
        raise InputError(field, text, f"must be within the scenario (0 to {total} min)")
    return math.floor(t + 1e-9)


def _span(f_text: str, t_text: str, field: str, total: int) -> tuple[int, int]:
    a = _minute(f_text, f"{field}.from", total)
    b_min = parse_quantity(t_text, Kind.DURATION, f"{field}.to")
    if not a < b_min <= total:
        raise InputError(f"{field}.to", t_text, "must be after 'from' and within the scenario")
    return a, math.ceil(b_min - 1e-9)


class Inputs:
    """Per-minute inputs for N patients over T minutes.

    ``carbs_g_min``: (T,) carbohydrate eaten per minute (g/min); ``insulin_u_min``: (N, T)
    insulin reaching the patient (U/min); ``programmed_u_min``: (N, T) what the pump was
    programmed to give; ``sensor_ok``: (T,) False where the CGM gives no reading.
    """

    def __init__(
        self,
        carbs: NDArray[np.float64],
        insulin: NDArray[np.float64],
        programmed: NDArray[np.float64],
        sensor_ok: NDArray[np.bool_],
    ) -> None:
        self.carbs_g_min = carbs
        self.insulin_u_min = insulin
        self.programmed_u_min = programmed
        self.sensor_ok = sensor_ok


def meal_intake(meals: list[tuple[int, float]], minutes: int) -> NDArray[np.float64]:
    """Carbohydrate eaten per minute (g/min): each meal joins a queue eaten at 5 g/min."""
    announced = np.zeros(minutes)
    for t, grams in meals:
        announced[t] += grams
    eaten = np.zeros(minutes)
    planned = 0.0
    for t in range(minutes):
        planned += announced[t]
        if planned > 0.0:
            eaten[t] = min(EAT_RATE_G_MIN, planned)
            planned = max(0.0, planned - EAT_RATE_G_MIN)
    return eaten


def build_inputs(scenario: GlucoseScenario, patient_basal_u_h: NDArray[np.float64]) -> Inputs:
    """Per-minute inputs for patients whose steady-state basal is ``patient_basal_u_h`` (N,)."""
    total = scenario.minutes
    basal_u_h = np.asarray(patient_basal_u_h, dtype=np.float64)
    n = basal_u_h.shape[0]
    meals = [
        (_minute(m.at, f"meals[{i}].at", total), m.carbs_g) for i, m in enumerate(scenario.meals)
    ]
    carbs = meal_intake(meals, total)
    if scenario.insulin.basal.strip().lower() == "patient":
        per_patient = basal_u_h / 60.0
    else:
        rate = _insulin_rate(scenario.insulin.basal, "insulin.basal")
        per_patient = np.full(n, rate / 60.0)
    programmed = np.repeat(per_patient[:, None], total, axis=1)
    for i, tb in enumerate(scenario.insulin.temp_basals):
        a, b = _span(tb.from_, tb.to, f"insulin.temp_basals[{i}]", total)
        rate = _insulin_rate(tb.rate, f"insulin.temp_basals[{i}].rate")
        programmed[:, a:b] = rate / 60.0
    for i, bolus in enumerate(scenario.insulin.boluses):
        programmed[:, _minute(bolus.at, f"insulin.boluses[{i}].at", total)] += bolus.units
    delivered = programmed.copy()
    sensor_ok = np.ones(total, dtype=bool)
    for i, fault in enumerate(scenario.faults):
        a, b = _span(fault.from_, fault.to, f"faults[{i}]", total)
        if fault.type == "sensor_dropout":
            sensor_ok[a:b] = False
        else:  # an occluded or suspended pump gives nothing; insulin is not made up later
            delivered[:, a:b] = 0.0
            if fault.type == "suspend":
                programmed[:, a:b] = 0.0
    return Inputs(carbs, delivered, programmed, sensor_ok)


__all__ = [
    "EAT_RATE_G_MIN",
    "GlucoseScenario",
    "Inputs",
    "build_inputs",
    "load_glucose_scenario",
    "meal_intake",
]
