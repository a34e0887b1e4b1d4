"""Dosing schedules for PK simulation, as people write them, parsed once into a Schedule.

File form (JSON)::

    {"duration": "120 min",
     "boluses":   [{"at": "0 min", "dose": "2 mg/kg"}],
     "infusions": [{"from": "0 min", "to": "60 min", "dose": "10 mg/kg/h"}]}

Times are durations with a unit ("90 s", "2 h"); doses are dose units of the drug's kind
(mass or units), plain, per kg or per m2; infusions overlapping in time add up. The
result is in the model's amount unit: amounts for boluses, amount/s for infusions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from openinfusion.errors import InputError, InputErrors
from openinfusion.patient import Patient
from openinfusion.physiology.pk import ModelSpec, Schedule
from openinfusion.units import Dose, basis_value, parse_dose, parse_quantity
from openinfusion.units.quantities import Kind

# A schedule longer than 30 days or a file above 1 MiB is a mistake, not a plan.
MAX_DURATION_S = 30 * 86400.0
MAX_FILE_BYTES = 1 << 20


class _Bolus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str
    dose: str


class _Infusion(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    start: str = Field(alias="from")
    to: str
    dose: str


class _ScheduleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    duration: str
    boluses: list[_Bolus] = []
    infusions: list[_Infusion] = []


@dataclass(frozen=True, slots=True)
class PkSchedule:
    """A parsed schedule: its length (s), the drug input, and the total amount given."""

    duration_s: float
    schedule: Schedule
    amount_unit: str
    total_amount: float


def _seconds(text: str, field: str) -> float:
    seconds = parse_quantity(text, Kind.DURATION, field) * 60.0
    if not 0.0 <= seconds <= MAX_DURATION_S:
        raise InputError(field, text, f"must be between 0 and {MAX_DURATION_S / 86400:g} days")
    return seconds


def _amount(text: str, field: str, spec: ModelSpec, patient: Patient, rate: bool) -> float:
    """A dose in the model's amount unit (per second for a rate)."""
    dose: Dose = parse_dose(text, field)
    if dose.unit.dimension is not spec.dimension:
        raise InputError(
            field,
            text,
            f"must be in {spec.dimension.value} ({spec.amount_unit}) for {spec.drug}; "
            "mass and units are never converted into each other",
        )
    if dose.unit.is_rate != rate:
        kind = "a dose over time, e.g. 'mg/kg/h'" if rate else "a single dose, e.g. 'mg/kg'"
        raise InputError(field, text, f"must be {kind}")
    if not dose.value >= 0:
        raise InputError(field, text, "must not be negative")
    size = basis_value(dose.unit.basis, patient.weight_kg, patient.bsa_m2, field)
    amount = dose.canonical * size * spec.amount_per_canonical
    return amount / 3600.0 if rate else amount


def parse_pk_schedule(data: Any, spec: ModelSpec, patient: Patient) -> PkSchedule:
    """Check and convert a schedule mapping; every problem names its field."""
    try:
        raw = _ScheduleFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err.get("loc", ())) or "schedule"
            value = err.get("input")
            shown = "" if isinstance(value, dict | list) else value
            problems.append(InputError(path, shown, str(err.get("msg", "invalid"))))
        raise InputErrors("schedule", problems) from None
    duration = _seconds(raw.duration, "duration")
    if duration <= 0:
        raise InputError("duration", raw.duration, "must be longer than 0")
    boluses: list[tuple[float, float]] = []
    for i, bolus in enumerate(raw.boluses):
        at = _seconds(bolus.at, f"boluses[{i}].at")
        if at > duration:
            raise InputError(f"boluses[{i}].at", bolus.at, f"is after the end ({raw.duration})")
        boluses.append((at, _amount(bolus.dose, f"boluses[{i}].dose", spec, patient, False)))
    infusions: list[tuple[float, float, float]] = []
    for i, inf in enumerate(raw.infusions):
        start = _seconds(inf.start, f"infusions[{i}].from")
        stop = _seconds(inf.to, f"infusions[{i}].to")
        if stop <= start:
            raise InputError(f"infusions[{i}].to", inf.to, f"must be after 'from' ({inf.start})")
        if stop > duration:
            raise InputError(f"infusions[{i}].to", inf.to, f"is after the end ({raw.duration})")
        rate = _amount(inf.dose, f"infusions[{i}].dose", spec, patient, True)
        infusions.append((start, stop, rate))
    schedule = Schedule.build(infusions=infusions, boluses=boluses)
    total = float(schedule.total_amount(duration)[0])
    return PkSchedule(duration, schedule, spec.amount_unit, total)


def load_pk_schedule(path: str | Path, spec: ModelSpec, patient: Patient) -> PkSchedule:
    """Read a JSON schedule file (see module docstring)."""
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError("schedule", str(file), f"is {size} bytes; the limit is 1 MiB")
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("schedule", str(file), "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("schedule", str(file), f"cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputError("schedule", str(file), f"is not valid JSON ({exc})") from None
    return parse_pk_schedule(data, spec, patient)
