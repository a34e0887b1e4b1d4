"""Regimens in scenario files: ``{"therapy": "regimen", "regimen": "mFOLFOX6"}``.

A scenario's ``program`` may be a chemotherapy regimen, by name from the catalogue
(:data:`openinfusion.pump.oncology.REGIMENS`) or as explicit stages::

    "program": {"therapy": "regimen", "stages": [
        [{"drug": "oxaliplatin", "dose": "85 mg/m2", "volume": "500 mL", "over": "2 h"},
         {"drug": "leucovorin", "dose": "400 mg/m2", "volume": "250 mL", "over": "2 h"}],
        [{"drug": "fluorouracil", "dose": "400 mg/m2", "concentration": "50 mg/mL",
          "over": "5 min", "push": true}],
        [{"drug": "fluorouracil", "dose": "2400 mg/m2", "concentration": "50 mg/mL",
          "over": "46 h", "pump": "ambulatory"}]]}

The scenario's ``pump`` is the take-home ambulatory pump (its ``reservoir_ml`` the
cassette capacity); clinic stages run on their own large-volume and syringe pumps.
:func:`run_regimen` checks every dose before anything starts (all or nothing), runs the
stages in order and returns a report in the style of a scenario report plus a
``regimen`` section with each drug's prescribed and delivered dose and its timings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from openinfusion.errors import InputError
from openinfusion.library import CareArea, Library
from openinfusion.patient import Patient
from openinfusion.pump.mechanics import Mechanism
from openinfusion.pump.oncology import (
    Regimen,
    RegimenDrug,
    RegimenEvent,
    Stage,
    prepare_regimen,
    regimen_by_name,
    run_prepared,
)
from openinfusion.units import Kind, parse_quantity


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegimenDrugSpec(_Spec):
    """One drug of a stage (see :class:`openinfusion.pump.oncology.RegimenDrug`)."""

    drug: str
    dose: str
    over: str
    concentration: str | None = None
    volume: str | None = None
    flow_rate: str | None = None
    push: bool = False
    pump: Literal["lvp", "syringe", "ambulatory"] | None = None
    therapy_name: str | None = None


class RegimenProgramSpec(_Spec):
    """A regimen program: ``regimen`` (a catalogue name) or explicit ``stages``."""

    therapy: Literal["regimen"]
    regimen: str | None = None
    name: str | None = None
    stages: list[list[RegimenDrugSpec]] | None = Field(default=None, min_length=1, max_length=20)

    @model_validator(mode="after")
    def _one_source(self) -> RegimenProgramSpec:
        if (self.regimen is None) == (self.stages is None):
            raise ValueError("give either regimen (a name such as 'mFOLFOX6') or stages, not both")
        if self.stages is not None and any(not stage for stage in self.stages):
            raise ValueError("every stage needs at least one drug")
        return self


def regimen_from_spec(spec: RegimenProgramSpec) -> Regimen:
    """The :class:`Regimen` a spec names or spells out."""
    if spec.regimen is not None:
        return regimen_by_name(spec.regimen)
    assert spec.stages is not None
    stages = tuple(
        Stage(
            tuple(
                RegimenDrug(
                    d.drug,
                    d.dose,
                    d.over,
                    concentration=d.concentration,
                    volume=d.volume,
                    flow_rate=d.flow_rate,
                    push=d.push,
                    pump=d.pump,
                    therapy=d.therapy_name,
                )
                for d in stage
            ),
            label=f"stage {i + 1}",
        )
        for i, stage in enumerate(spec.stages)
    )
    return Regimen(spec.name or "custom regimen", stages)


def _get(event: Any, name: str) -> Any:
    return event.get(name) if isinstance(event, dict) else getattr(event, name, None)


def regimen_events(events: Sequence[Any], duration_s: float) -> list[RegimenEvent]:
    """Scenario events (EventSpec objects or dicts with ``at``, ``type``, ``channel``...)
    as regimen events, in time order."""
    out = []
    for i, e in enumerate(events):
        at = _get(e, "at")
        t_s = parse_quantity(at, Kind.DURATION, f"events[{i}].at") * 60.0
        if not 0 <= t_s <= duration_s:
            raise InputError(f"events[{i}].at", at, "must be within the scenario duration")
        args = {k: _get(e, k) for k in ("code", "volume_ul", "extra_ma") if _get(e, k) is not None}
        out.append(RegimenEvent(t_s, str(_get(e, "type")), int(_get(e, "channel") or 0), args))
    return sorted(out, key=lambda ev: ev.t_s)


def run_regimen(
    spec: RegimenProgramSpec,
    events: Sequence[Any],
    duration_s: float,
    *,
    patient: Patient,
    library: Library | None = None,
    care_area: CareArea | str | None,
    override_reason: str | None = None,
    pump: Mechanism | None = None,
    battery_percent: float = 100.0,
) -> dict[str, Any]:
    """Check every dose (all or nothing), run the stages in order, return the report.

    Report keys: ``delivered_ml`` (all pumps), ``delivered_dose`` ({"value", "unit"} of
    the take-home ambulatory infusion, or None), ``alarms`` [{at_min, code, priority,
    channel, pump}], ``events``, ``final_state`` (the channel of the stage running or last
    run), ``verdict``, ``override``, ``summary``, ``regimen`` {name, source, cycle, bsa_m2,
    complete, current_stage, stages: [{stage, drug, dose, dose_mg, delivered_mg,
    volume_ml, delivered_ml, rate_ml_h, started_min, ended_min, state, ...}]}, ``pumps``
    and ``duration_min``. Raises InputError, HardLimitError or SoftLimitError before
    anything is delivered. ``pump``: the scenario's pump (must be ambulatory when a stage
    runs on the take-home pump).
    """
    if care_area is None:
        raise InputError("care_area", "", "a regimen needs a care area (e.g. 'Oncology')")
    if not (duration_s > 0):
        raise InputError("duration", duration_s, "must be greater than zero")
    prepared = prepare_regimen(
        regimen_from_spec(spec),
        patient=patient,
        library=library,
        care_area=care_area,
        pump=pump,
        override_reason=override_reason,
    )
    parsed = regimen_events(events, duration_s)
    return run_prepared(prepared, duration_s, parsed, battery_percent=battery_percent)


__all__ = [
    "RegimenDrugSpec",
    "RegimenProgramSpec",
    "regimen_events",
    "regimen_from_spec",
    "run_regimen",
]
