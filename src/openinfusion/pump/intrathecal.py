"""Implantable intrathecal pump: prescription, flex dosing, PTM, refill, bridge bolus, forecasts.

An implanted programmable pump (SynchroMed II class) holds 20 or 40 mL of a concentrated
drug (morphine, baclofen, ziconotide) and delivers a few tenths of a mL a day into the
cerebrospinal fluid, for months between refills. This module programs one on the pump
engine (:class:`~openinfusion.pump.device.Device` with :func:`~openinfusion.pump.mechanics.implant`):

- :class:`IntrathecalPrescription` is validated by itself (intrathecal drugs are usually
  not in a hospital's IV drug library): concentration, a simple continuous daily dose or a
  flexible schedule (a periodic day or week of up to :data:`MAX_FLEX_STEPS` steps), an
  optional personal therapy manager (PTM: patient-activated bolus with lockout and a
  maximum per day), the reservoir and its low-volume alarm, and its own hard limit, the
  maximum daily dose (schedule at its worst 24 h plus every allowed PTM dose). Every
  problem is an :class:`~openinfusion.errors.InputError` naming field, value and rule. A
  library entry, when given, adds a DERS check of each step's dose.
- The prescription compiles to a :class:`~openinfusion.pump.plan.Plan`: one constant step,
  or flex steps placed on the local clock (:class:`~openinfusion.pump.clock.PumpClock`,
  daylight-saving safe) for :data:`FLEX_HORIZON_DAYS`, then the nominal cycle repeating;
  the PTM becomes :class:`~openinfusion.pump.plan.PcaSettings` with its lockout and
  ``max_demands`` per 24 h, and no amount limit: the engine would pause the whole channel
  on reaching one, and an implant never stops its basal for a PTM limit.
- :class:`IntrathecalPump` runs it: PTM activations (granted or denied with a reason,
  including a bolus that would take the last 24 h over the maximum daily dose, as after a
  reprogramming or on a spring-forward night, when the clock skips an hour and a 24-hour
  window holds one more hour of the day-time steps), refills with the found-versus-expected
  comparison, a bridge bolus after a change of drug or concentration, the predicted
  low-reservoir date, and the elective replacement indicator (ERI) and end of service
  from an implant battery model.

Figures and their sources (public material, read through stored copies):

- Rate range 0.048 to 24 mL/day and 20/40 mL reservoirs: the engine's ``implant()``
  mechanism (0.002 to 1 mL/h).
- Service life: "the SynchroMed II pump will last a maximum of 7 years", "typical product
  life ... between 5 and 7 years, depending on how much medicine you're programmed to
  receive each day", and after the ERI alarm "the pump will continue to operate ... but
  will stop after 90 days" (Medtronic, "Getting a Replacement - Drug Pumps", patient page,
  medtronic.com/uk-en/.../drug-pumps-replacement.html). The battery model below is
  calibrated to those statements (7 years at no flow, 5 years at 1 mL/day); the currents
  are a LOCAL model, not device data.
- Dead volume for the bridge bolus: implanted catheter volume = implanted length x
  0.0026 mL/cm (Flowonix Prometra II implant manual, "Implanted Catheter Volume (mL) =
  Implanted Catheter Length (cm) x 0.0026 mL/cm"); the pump's internal pathway volume
  (reservoir outlet to catheter port) is a LOCAL assumption of 0.2 mL (no figure was read
  for the SynchroMed II); both are parameters of :class:`IntrathecalPump`.
- Refill: the residual drug is drained completely and discarded, then the new drug is
  injected ("Drain residual volume completely (verify actual amount drained to amount
  calculated by computer for accuracy ...)", South Shore Neurologic, intrathecal baclofen
  refill notes, southshoreneurologic.com/clinical/itb/itb-manage-refill.html), so the
  reservoir afterwards holds what was added. Found-versus-expected tolerance: 1 mL for a
  20 mL pump, 2 mL for a 40 mL pump, borrowed from Maino et al., Neuromodulation 2017;
  20(7):733-739 ("volume discrepancies of > 1 mL in 20 mL IDDSs and of > 2 mL in 40 mL
  IDDSs after refill should be regarded as potentially consequential"; measured there as
  injected versus measured volume, applied here to the residual as a LOCAL choice).
- Predicting the refill date assuming every allowed PTM dose is taken follows the
  Prometra PTC guide ("This refill date makes the assumption that all allotted boluses
  per day will be delivered").
- Reference ceilings: ziconotide "Maximum recommended dose: 19.2 mcg/day (0.8 mcg/h)";
  morphine 1.0 to 20 mg/day ("Intrathecal therapy for nonmalignant and malignant
  abdominal pain", aneskey.com, dose-range table).
- :data:`MAX_FLEX_STEPS` (10) was recalled for SynchroMed II flexible dosing and NOT
  re-read against the programming guide.

Times are pump seconds (monotonic); rates mL/h inside, mL/day or dose/day at the edge.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, time
from typing import Any

from openinfusion.errors import InputError
from openinfusion.library import DrugEntry, Level, Override, Program, Verdict, check
from openinfusion.library.schema import CareArea
from openinfusion.patient import Patient
from openinfusion.pump.battery import Battery
from openinfusion.pump.channel import Channel, ChannelSettings, State
from openinfusion.pump.clock import PumpClock
from openinfusion.pump.codes import Alarm, Event
from openinfusion.pump.device import Device, Record
from openinfusion.pump.mechanics import Mechanism, implant
from openinfusion.pump.plan import DrugInfo, Envelope, PcaSettings, Plan, Step, StepKind
from openinfusion.units import (
    Basis,
    Concentration,
    Dimension,
    Dose,
    DoseUnit,
    Kind,
    format_number,
    parse_concentration,
    parse_dose,
    parse_quantity,
)

DAY_S = 86400.0
WEEK_S = 7 * DAY_S
EPS_S = 1e-6

RESERVOIR_SIZES_ML = (20.0, 40.0)
LOW_RESERVOIR_RANGE_ML = (1.0, 9.0)  # LOCAL: programmable low-reservoir alarm volume
MAX_FLEX_STEPS = 10  # SynchroMed II flexible dosing (recalled, not re-read)
MAX_PTM_PER_DAY = 24  # LOCAL bound on PTM activations per 24 h
FLEX_HORIZON_DAYS = 200.0  # flex steps placed on the local clock this far ahead

CATHETER_ML_PER_CM = 0.0026  # Prometra II implant manual (see module docstring)
DEFAULT_CATHETER_CM = 70.0  # LOCAL: a typical implanted length
PUMP_PATHWAY_ML = 0.2  # LOCAL assumption: pump outlet to catheter port

ERI_REMAINING_DAYS = 90.0  # ERI when the projected remaining life is under 90 days
SERVICE_CHECK_S = DAY_S  # the pump re-projects its battery life once a day (LOCAL)
LIFE_NO_FLOW_DAYS = 7 * 365.25  # "a maximum of 7 years"
LIFE_AT_1_ML_DAY_DAYS = 5 * 365.25  # "typical ... between 5 and 7 years"
IMPLANT_IDLE_MA = 0.010  # LOCAL: 10 microamps quiescent drain
NEVER_RUNTIME_S = -1.0  # engine battery alarm thresholds that are never reached
# Found-versus-expected refill tolerance, mL per mL of reservoir size (1 mL in a 20 mL
# pump, 2 mL in a 40 mL pump: Maino et al. 2017, see the module docstring).
REFILL_TOLERANCE_PER_ML = 0.05

# Reference ceilings for known intrathecal drugs (canonical amount per day, source).
REFERENCE_CEILINGS: dict[str, tuple[str, str]] = {
    "ziconotide": ("19.2 mcg/day", "maximum recommended dose 19.2 mcg/day (0.8 mcg/h)"),
    "morphine": ("20 mg/day", "upper end of the 1.0-20 mg/day intrathecal range"),
}

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_START = re.compile(r"^\s*(?:([A-Za-z]+)\s+)?(\d{1,2}):(\d{2})\s*$")


# ---- prescription --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlexStep:
    """One flex-dosing step: from ``start`` (``"07:00"``; ``"Mon 07:00"`` in a weekly
    schedule) until the next step's start, at ``dose`` (``"600 mcg/day"``, ``"25 mcg/h"``
    or a volume rate ``"0.3 mL/day"``)."""

    start: str
    dose: str


@dataclass(frozen=True, slots=True)
class PtmSettings:
    """Personal therapy manager: the patient's bolus, its lockout and daily maximum."""

    bolus: str  # "0.5 mg", "50 mcg" or a volume "0.02 mL"
    lockout: str  # "3 h"
    max_per_day: int  # activations in any 24 h
    duration: str = "10 min"  # time to deliver one bolus


@dataclass(frozen=True, slots=True)
class IntrathecalPrescription:
    """What the clinician prescribes for an implanted intrathecal pump.

    Give ``daily_dose`` (simple continuous, ``"3 mg/day"`` or ``"1 mL/day"``) or ``flex``
    steps (``flex_period`` ``"day"`` or ``"week"``), not both. ``max_daily_dose`` is the
    prescription's own hard limit (``"15 mg/day"``): the schedule's worst 24 h plus every
    allowed PTM dose must stay within it.
    """

    drug: str
    concentration: str
    max_daily_dose: str
    daily_dose: str | None = None
    flex: tuple[FlexStep, ...] = ()
    flex_period: str = "day"
    ptm: PtmSettings | None = None
    reservoir_ml: float = 20.0
    low_reservoir_ml: float = 2.0


@dataclass(frozen=True, slots=True)
class ScheduleStep:
    """A compiled schedule step: offset from the period start, rate, local start time."""

    offset_s: float
    rate_ml_h: float
    clock_time: time
    weekday: int | None
    label: str


@dataclass(frozen=True, slots=True)
class CompiledPtm:
    demand_ml: float
    amount: float  # canonical amount per bolus
    lockout_s: float
    max_per_day: int
    rate_ml_h: float


@dataclass(frozen=True, slots=True)
class CompiledPrescription:
    """A validated prescription in plain floats (canonical amounts, mL/h, seconds)."""

    rx: IntrathecalPrescription
    concentration: Concentration
    drug: DrugInfo
    period_s: float | None  # None: simple continuous
    steps: tuple[ScheduleStep, ...]
    ptm: CompiledPtm | None
    max_daily_amount: float
    daily_amount: float  # average per day
    worst_24h_amount: float  # schedule only, worst 24-h window
    verdict: Verdict | None = None
    override: Override | None = None

    @property
    def mean_rate_ml_h(self) -> float:
        """Average basal rate over the schedule's period."""
        return self.daily_amount / self.concentration.per_ml / 24.0

    @property
    def ptm_max_ml_per_day(self) -> float:
        return self.ptm.demand_ml * self.ptm.max_per_day if self.ptm else 0.0

    def display(self, amount: float) -> str:
        """An amount in the concentration's own unit, e.g. '600 mcg'."""
        unit = self.concentration.unit
        return f"{format_number(round(amount / unit.factor, 6))} {unit.symbol}"


def _positive_finite(field_name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(field_name, value, "must be a number")
    if not (math.isfinite(value) and value > 0):
        raise InputError(field_name, value, "must be a finite number greater than zero")
    return float(value)


def _parse_concentration(text: str, field_name: str = "concentration") -> Concentration:
    """A concentration; an error names the whole text as written."""
    try:
        conc = parse_concentration(text, field_name)
    except InputError as exc:
        raise InputError(field_name, text, exc.rule) from None
    if not (math.isfinite(conc.per_ml) and conc.per_ml > 0):
        raise InputError(field_name, text, "must be a finite amount per mL greater than zero")
    return conc


def _check_dimension(unit: DoseUnit, conc: Concentration, field_name: str, text: str) -> None:
    """A dose in mg needs a concentration in mg/mL (mass, units, mEq never convert)."""
    if unit.dimension is not Dimension.VOLUME and unit.dimension is not conc.dimension:
        raise InputError(
            field_name,
            text,
            f"is in {unit.dimension.value} but the concentration {conc.text} is in "
            f"{conc.dimension.value}; they are never converted into each other",
        )


def _dose_rate_ml_h(text: str, field_name: str, conc: Concentration) -> float:
    """mL/h for a dose rate ('3 mg/day', '25 mcg/h') or a volume rate ('0.3 mL/day')."""
    dose = parse_dose(text, field_name)
    if not dose.unit.is_rate:
        raise InputError(field_name, text, "must be a dose per time, e.g. '3 mg/day'")
    if dose.unit.basis is not Basis.NONE:
        raise InputError(field_name, text, "intrathecal doses are absolute (no /kg or /m2)")
    if not (math.isfinite(dose.value) and dose.value > 0):
        raise InputError(field_name, text, "must be greater than zero")
    if dose.unit.dimension is Dimension.VOLUME:
        return dose.canonical
    _check_dimension(dose.unit, conc, field_name, text)
    return dose.canonical / conc.per_ml


def _single_amount(text: str, field_name: str, conc: Concentration) -> tuple[float, float]:
    """(mL, canonical amount) of a single dose ('0.5 mg' or '0.02 mL')."""
    dose = parse_dose(text, field_name)
    if dose.unit.is_rate or dose.unit.basis is not Basis.NONE:
        raise InputError(field_name, text, "must be a single absolute dose, e.g. '0.5 mg'")
    if not (math.isfinite(dose.value) and dose.value > 0):
        raise InputError(field_name, text, "must be greater than zero")
    if dose.unit.dimension is Dimension.VOLUME:
        return dose.canonical, dose.canonical * conc.per_ml
    _check_dimension(dose.unit, conc, field_name, text)
    return dose.canonical / conc.per_ml, dose.canonical


def _daily_limit(text: str, conc: Concentration) -> float:
    """Canonical amount per day from '15 mg/day' (or '15 mg', meaning per 24 h)."""
    dose = parse_dose(text, "max_daily_dose")
    if dose.unit.dimension is Dimension.VOLUME or dose.unit.basis is not Basis.NONE:
        raise InputError("max_daily_dose", text, "must be a drug amount per day, e.g. '15 mg/day'")
    _check_dimension(dose.unit, conc, "max_daily_dose", text)
    if not (math.isfinite(dose.value) and dose.value > 0):
        raise InputError("max_daily_dose", text, "must be greater than zero")
    return dose.canonical * 24.0 if dose.unit.is_rate else dose.canonical


def _parse_start(text: str, field_name: str, weekly: bool) -> tuple[float, time, int | None]:
    match = _START.match(text) if isinstance(text, str) else None
    if match is None:
        example = "'Mon 07:00'" if weekly else "'07:00'"
        raise InputError(field_name, text, f"must be a start time like {example}")
    day_text, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3))
    if hours > 23 or minutes > 59:
        raise InputError(field_name, text, "is not a time of day (00:00 to 23:59)")
    weekday: int | None = None
    if weekly:
        key = (day_text or "")[:3].casefold()
        if key not in _WEEKDAYS or (day_text or "").casefold() not in _day_spellings(key):
            raise InputError(
                field_name, text, "a weekly step starts with a weekday, e.g. 'Mon 07:00'"
            )
        weekday = _WEEKDAYS.index(key)
    elif day_text is not None:
        raise InputError(field_name, text, "a daily step has no weekday; use flex_period='week'")
    offset = (weekday or 0) * DAY_S + hours * 3600.0 + minutes * 60.0
    return offset, time(hours, minutes), weekday


def _day_spellings(key: str) -> set[str]:
    full = {
        "mon": "monday",
        "tue": "tuesday",
        "wed": "wednesday",
        "thu": "thursday",
        "fri": "friday",
        "sat": "saturday",
        "sun": "sunday",
    }[key]
    return {key, full}


def _window_amount(
    steps: Sequence[ScheduleStep], period: float, per_ml: float, a: float, b: float
) -> float:
    """Canonical amount the periodic schedule delivers between offsets ``a`` and ``b``."""
    total = 0.0
    n = len(steps)
    first_cycle = math.floor(a / period) - 1
    last_cycle = math.floor(b / period) + 1
    for cycle in range(first_cycle, last_cycle + 1):
        base = cycle * period
        for i, step in enumerate(steps):
            start = base + step.offset_s
            end = base + (steps[i + 1].offset_s if i + 1 < n else period + steps[0].offset_s)
            lo, hi = max(start, a), min(end, b)
            if hi > lo:
                total += (hi - lo) * step.rate_ml_h / 3600.0 * per_ml
    return total


def compile_prescription(
    rx: IntrathecalPrescription,
    *,
    mechanism: Mechanism | None = None,
    entry: DrugEntry | None = None,
    patient: Patient | None = None,
    care_area: CareArea | None = None,
    override_reason: str | None = None,
) -> CompiledPrescription:
    """Validate ``rx`` against its own hard limits (and a library entry when given)."""
    mech = mechanism or implant(rx.reservoir_ml)
    if not isinstance(rx.drug, str) or not rx.drug.strip():
        raise InputError("drug", rx.drug, "a drug name is required")
    drug_name = rx.drug.strip()
    conc = _parse_concentration(rx.concentration)
    if conc.dimension is Dimension.VOLUME:
        raise InputError("concentration", rx.concentration, "must be a drug amount per mL")
    reservoir = _positive_finite("reservoir_ml", rx.reservoir_ml)
    if reservoir not in RESERVOIR_SIZES_ML:
        raise InputError("reservoir_ml", rx.reservoir_ml, "must be 20 or 40 mL")
    if mech.reservoir_ml is not None and abs(mech.reservoir_ml - reservoir) > 1e-9:
        raise InputError(
            "reservoir_ml",
            rx.reservoir_ml,
            f"does not match the implanted {mech.reservoir_ml:g} mL pump",
        )
    low = _positive_finite("low_reservoir_ml", rx.low_reservoir_ml)
    lo_min, lo_max = LOW_RESERVOIR_RANGE_ML
    if not lo_min <= low <= min(lo_max, reservoir / 2.0):
        raise InputError(
            "low_reservoir_ml",
            rx.low_reservoir_ml,
            f"must be {lo_min:g} to {min(lo_max, reservoir / 2):g} mL",
        )
    max_daily = _daily_limit(rx.max_daily_dose, conc)
    ceiling = REFERENCE_CEILINGS.get(drug_name.casefold())
    if ceiling is not None:
        limit = _daily_limit(ceiling[0], conc)
        if max_daily > limit * (1 + 1e-9):
            raise InputError(
                "max_daily_dose",
                rx.max_daily_dose,
                f"is above the reference ceiling {ceiling[0]} for intrathecal {drug_name} ({ceiling[1]})",
            )

    steps, period = _compile_schedule(rx, conc)
    lo_rate, hi_rate = mech.min_rate_ml_h, mech.max_rate_ml_h
    for i, step in enumerate(steps):
        if not lo_rate * (1 - 1e-9) <= step.rate_ml_h <= hi_rate * (1 + 1e-9):
            name, text = (
                ("daily_dose", rx.daily_dose)
                if period is None
                else (f"flex[{i}].dose", rx.flex[i].dose)
            )
            raise InputError(
                name,
                text,
                f"needs {format_number(round(step.rate_ml_h * 24, 6))} mL/day at "
                f"{conc.text}; the pump delivers {lo_rate * 24:g} to {hi_rate * 24:g} mL/day",
            )
    if period is None:
        daily = worst = steps[0].rate_ml_h * 24.0 * conc.per_ml
    else:
        daily = _window_amount(steps, period, conc.per_ml, 0.0, period) * DAY_S / period
        starts = {s.offset_s % period for s in steps} | {
            (s.offset_s - DAY_S) % period for s in steps
        }
        worst = max(_window_amount(steps, period, conc.per_ml, a, a + DAY_S) for a in starts)

    ptm = _compile_ptm(rx.ptm, conc, mech) if rx.ptm is not None else None
    total = worst + (ptm.amount * ptm.max_per_day if ptm else 0.0)
    if total > max_daily * (1 + 1e-9):
        unit = conc.unit
        shown = format_number(round(total / unit.factor, 6))
        detail = f"the schedule's worst 24 h ({format_number(round(worst / unit.factor, 6))} {unit.symbol})"
        if ptm is not None:
            detail += (
                f" plus {ptm.max_per_day} PTM doses of "
                f"{format_number(round(ptm.amount / unit.factor, 6))} {unit.symbol}"
            )
        raise InputError(
            "max_daily_dose",
            rx.max_daily_dose,
            f"{detail} reach {shown} {unit.symbol} per 24 h, above this hard limit",
        )

    verdict, override = _library_check(entry, steps, conc, patient, care_area, override_reason)
    info = DrugInfo(
        name=drug_name,
        per_ml=conc.per_ml,
        amount_unit=conc.dimension.canonical_unit,
        dose_unit=f"{conc.unit.symbol}/day",
        dose_per_amount=24.0 / conc.unit.factor,
    )
    return CompiledPrescription(
        rx=rx,
        concentration=conc,
        drug=info,
        period_s=period,
        steps=tuple(steps),
        ptm=ptm,
        max_daily_amount=max_daily,
        daily_amount=daily,
        worst_24h_amount=worst,
        verdict=verdict,
        override=override,
    )


def _compile_schedule(
    rx: IntrathecalPrescription, conc: Concentration
) -> tuple[list[ScheduleStep], float | None]:
    if (rx.daily_dose is None) == (not rx.flex):
        raise InputError(
            "daily_dose", rx.daily_dose or "", "give a daily dose or flex steps (one of them)"
        )
    if rx.daily_dose is not None:
        rate = _dose_rate_ml_h(rx.daily_dose, "daily_dose", conc)
        return [ScheduleStep(0.0, rate, time(0, 0), None, "simple continuous")], None
    if rx.flex_period not in ("day", "week"):
        raise InputError("flex_period", rx.flex_period, "must be 'day' or 'week'")
    weekly = rx.flex_period == "week"
    period = WEEK_S if weekly else DAY_S
    if len(rx.flex) > MAX_FLEX_STEPS:
        raise InputError("flex", len(rx.flex), f"at most {MAX_FLEX_STEPS} steps")
    steps: list[ScheduleStep] = []
    for i, flex in enumerate(rx.flex):
        offset, clock_time, weekday = _parse_start(flex.start, f"flex[{i}].start", weekly)
        rate = _dose_rate_ml_h(flex.dose, f"flex[{i}].dose", conc)
        steps.append(
            ScheduleStep(
                offset, rate, clock_time, weekday, f"flex {i + 1} from {flex.start.strip()}"
            )
        )
    for i in range(1, len(steps)):
        if steps[i].offset_s <= steps[i - 1].offset_s:
            raise InputError(
                f"flex[{i}].start",
                rx.flex[i].start,
                f"must be later than the previous step ({rx.flex[i - 1].start})",
            )
    return steps, period


def _compile_ptm(ptm: PtmSettings, conc: Concentration, mech: Mechanism) -> CompiledPtm:
    demand_ml, amount = _single_amount(ptm.bolus, "ptm.bolus", conc)
    if demand_ml < mech.quantum_ml:
        raise InputError(
            "ptm.bolus", ptm.bolus, f"is below one pump stroke ({mech.quantum_ml:g} mL)"
        )
    lockout_s = parse_quantity(ptm.lockout, Kind.DURATION, "ptm.lockout") * 60.0
    duration_s = parse_quantity(ptm.duration, Kind.DURATION, "ptm.duration") * 60.0
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise InputError("ptm.duration", ptm.duration, "must be greater than zero")
    if not (math.isfinite(lockout_s) and duration_s <= lockout_s <= DAY_S):
        raise InputError(
            "ptm.lockout", ptm.lockout, f"must be from the bolus duration ({ptm.duration}) to 24 h"
        )
    count = ptm.max_per_day
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_PTM_PER_DAY:
        raise InputError(
            "ptm.max_per_day", count, f"must be a whole number from 1 to {MAX_PTM_PER_DAY}"
        )
    rate = demand_ml / (duration_s / 3600.0)
    if rate > mech.max_rate_ml_h * (1 + 1e-9):
        raise InputError(
            "ptm.duration",
            ptm.duration,
            f"too short: {ptm.bolus} would need {rate * 24:g} mL/day, above the pump maximum "
            f"{mech.max_rate_ml_h * 24:g} mL/day",
        )
    return CompiledPtm(demand_ml, amount, lockout_s, count, rate)


def _library_check(
    entry: DrugEntry | None,
    steps: Sequence[ScheduleStep],
    conc: Concentration,
    patient: Patient | None,
    care_area: CareArea | None,
    override_reason: str | None,
) -> tuple[Verdict | None, Override | None]:
    """Optional DERS check of each step's dose against a library entry (worst governs)."""
    if entry is None:
        return None, None
    unit = entry.compiled.unit
    verdicts = []
    for step in {s.rate_ml_h for s in steps}:
        per_h = step * conc.per_ml  # canonical amount per hour
        dose = Dose(per_h / unit.factor, unit) if unit.is_rate else None
        if dose is None:
            raise InputError(
                "entry", entry.label, "needs a dose-rate entry (e.g. mg/h) for an implant"
            )
        verdicts.append(check(Program(dose=dose, concentration=conc), entry, patient, care_area))
    worst = max(verdicts, key=lambda v: v.level)
    override = worst.accept(override_reason=override_reason)
    return worst, override if worst.level is not Level.OK else None


# ---- plan ---------------------------------------------------------------------------------


def _flex_boundaries(
    cp: CompiledPrescription, clock: PumpClock, t_from: float, t_to: float
) -> list[tuple[float, int]]:
    """Pump times in [t_from, t_to) when each flex step starts on the local clock."""
    times = [s.clock_time for s in cp.steps]
    out = []
    for t, i in clock.local_boundaries(t_from, t_to, times):
        weekday = cp.steps[i].weekday
        if weekday is not None and clock.local(t).weekday() != weekday:
            continue
        out.append((t, i))
    return out


def _nominal_s(cp: CompiledPrescription, i: int) -> float:
    assert cp.period_s is not None
    n = len(cp.steps)
    nxt = cp.steps[(i + 1) % n].offset_s
    return (nxt - cp.steps[i].offset_s) % cp.period_s or cp.period_s


def _pca(cp: CompiledPrescription) -> PcaSettings | None:
    """PTM settings for the engine: the bolus, its lockout and the count per 24 h.

    No amount limit goes to the engine: it would pause the whole channel when reached,
    and an implant must never stop its basal for a PTM limit (abrupt intrathecal baclofen
    withdrawal is itself dangerous). The amount per 24 h is held by the prescription check
    and by :meth:`IntrathecalPump.ptm`, which denies a bolus that would exceed it.
    """
    if cp.ptm is None:
        return None
    return PcaSettings(
        demand_ml=cp.ptm.demand_ml,
        lockout_s=cp.ptm.lockout_s,
        bolus_rate_ml_h=cp.ptm.rate_ml_h,
        max_demands=cp.ptm.max_per_day,
        max_demands_window_s=DAY_S,
    )


def compile_plan(
    cp: CompiledPrescription,
    clock: PumpClock,
    t0: float,
    mechanism: Mechanism,
    horizon_days: float = FLEX_HORIZON_DAYS,
) -> Plan:
    """The engine plan for ``cp`` starting at pump time ``t0``.

    A flex schedule is placed on the local clock from ``t0`` for ``horizon_days`` (so a
    daylight-saving change moves no step), then its nominal cycle repeats by elapsed time.
    """
    envelope = Envelope(max_rate_ml_h=mechanism.max_rate_ml_h)
    common: dict[str, Any] = {
        "kvo_at_end": False,
        "drug": cp.drug,
        "envelope": envelope,
        "pca": _pca(cp),
        "label": f"{cp.drug.name} {cp.concentration.text} intrathecal",
    }
    if cp.period_s is None:
        step = cp.steps[0]
        return Plan(
            "intrathecal", [Step(StepKind.CONTINUOUS, step.rate_ml_h, label=step.label)], **common
        )
    horizon_s = max(horizon_days * DAY_S, cp.period_s + DAY_S)
    bounds = _flex_boundaries(cp, clock, t0 - cp.period_s - DAY_S, t0 + horizon_s)
    past = [b for b in bounds if b[0] <= t0 + EPS_S]
    future = [b for b in bounds if b[0] > t0 + EPS_S]
    if not past or not future:  # pragma: no cover - each period holds every step
        raise InputError("flex", "", "the schedule has no step on the local clock")
    steps: list[Step] = []
    cur_t, cur_i = t0, past[-1][1]
    for t, i in future:
        if t - cur_t > EPS_S:
            s = cp.steps[cur_i]
            steps.append(Step(StepKind.BASAL, s.rate_ml_h, duration_s=t - cur_t, label=s.label))
        cur_t, cur_i = t, i
    repeat_from = len(steps)
    n = len(cp.steps)
    for j in range(n):
        s = cp.steps[(cur_i + j) % n]
        steps.append(
            Step(
                StepKind.BASAL,
                s.rate_ml_h,
                duration_s=_nominal_s(cp, (cur_i + j) % n),
                label=s.label,
            )
        )
    return Plan("intrathecal flex", steps, repeat_from=repeat_from, **common)


def _step_length_s(step: Step, done_s: float, done_ml: float) -> float:
    """Seconds a step still runs (inf for an open-ended step)."""
    if step.duration_s is not None:
        return max(0.0, step.duration_s - done_s)
    if step.volume_ml is not None and step.rate_ml_h > 0:
        return max(0.0, (step.volume_ml - done_ml) / (step.rate_ml_h / 3600.0))
    return math.inf


def _time_to_deliver(
    plan: Plan,
    step_i: int,
    elapsed_s: float,
    step_ml: float,
    volume_ml: float,
    extra_ml_h: float = 0.0,
) -> float:
    """Seconds until ``volume_ml`` more is pumped following ``plan`` from step ``step_i``
    (``elapsed_s`` and ``step_ml`` into it), plus ``extra_ml_h``; inf if never."""
    if volume_ml <= 0:
        return 0.0
    remaining, t = volume_ml, 0.0

    def walk(segments: list[tuple[float, Step]]) -> float | None:
        nonlocal remaining, t
        for dur, step in segments:
            rate_s = (step.rate_ml_h + extra_ml_h) / 3600.0
            if rate_s > 0 and remaining <= rate_s * dur:
                return t + remaining / rate_s
            if math.isinf(dur):
                return math.inf
            remaining -= rate_s * dur
            t += dur
        return None

    head = [(_step_length_s(plan.steps[step_i], elapsed_s, step_ml), plan.steps[step_i])]
    head += [(_step_length_s(s, 0.0, 0.0), s) for s in plan.steps[step_i + 1 :]]
    found = walk(head)
    if found is not None:
        return found
    if plan.repeat_from is None:
        return math.inf
    cycle = [(_step_length_s(s, 0.0, 0.0), s) for s in plan.steps[plan.repeat_from :]]
    cycle_dur = sum(d for d, _ in cycle)
    cycle_ml = sum((s.rate_ml_h + extra_ml_h) / 3600.0 * d for d, s in cycle)
    if cycle_ml <= 0 or math.isinf(cycle_dur):
        return math.inf
    whole = max(0, math.ceil(remaining / cycle_ml) - 1)  # skip whole cycles at once
    t += whole * cycle_dur
    remaining -= whole * cycle_ml
    for _ in range(2):  # the last cycle (twice: rounding may leave a sliver)
        found = walk(cycle)
        if found is not None:
            return found
    return t


# ---- implant battery ------------------------------------------------------------------------


def implant_battery(charge_fraction: float = 1.0) -> Battery:
    """An implant battery calibrated to 7 years at no flow and 5 years at 1 mL/day.

    Capacity = idle current x 7 years; the motor term makes 1 mL/day last 5 years. The
    engine's own low/depleted run-time alarms are switched off (a negative run time is
    never reached; an implant cannot be put on mains): the ERI and the end of service come
    from :class:`IntrathecalPump`, the pump stopping when the battery is empty.
    """
    if not (math.isfinite(charge_fraction) and 0.0 < charge_fraction <= 1.0):
        raise InputError("charge_fraction", charge_fraction, "must be in (0, 1]")
    capacity = IMPLANT_IDLE_MA * LIFE_NO_FLOW_DAYS * 24.0
    at_one_ml_day = capacity / (LIFE_AT_1_ML_DAY_DAYS * 24.0)
    motor = (at_one_ml_day - IMPLANT_IDLE_MA) * 24.0  # mA per mL/h (1 mL/day = 1/24 mL/h)
    return Battery(
        capacity_mah=capacity,
        charge_mah=capacity * charge_fraction,
        idle_ma=IMPLANT_IDLE_MA,
        motor_ma_per_ml_h=motor,
        low_runtime_s=NEVER_RUNTIME_S,
        depleted_runtime_s=NEVER_RUNTIME_S,
    )


# ---- the pump -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PtmActivation:
    """One press of the personal therapy manager (pump seconds) and its outcome."""

    t_s: float
    granted: bool
    reason: str


@dataclass(frozen=True, slots=True)
class BridgeBolus:
    """Old drug left in the pump pathway and catheter, pushed out at the old rate."""

    volume_ml: float
    rate_ml_h: float
    duration_s: float
    starts_s: float
    ends_s: float
    ends_utc: datetime


@dataclass(frozen=True, slots=True)
class RefillResult:
    """A refill (mL): residual expected and found (drained), drug added, found minus
    expected, the tolerance it was judged against, the reservoir afterwards."""

    expected_ml: float
    found_ml: float
    added_ml: float
    difference_ml: float
    leak_suspected: bool
    reservoir_ml: float
    bridge: BridgeBolus | None
    tolerance_ml: float = 0.0
    t_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Forecast:
    """A predicted moment: pump seconds, wall (UTC) and local time, days from now."""

    t_s: float
    utc: datetime | None
    local: datetime | None
    days_from_now: float


@dataclass(frozen=True, slots=True)
class ServiceForecast:
    """Battery projection at the programmed average flow."""

    mean_rate_ml_day: float
    remaining_days: float
    eri: Forecast
    end_of_service: Forecast
    at_eri: bool


@dataclass(slots=True)
class _Bridge:
    info: BridgeBolus
    next_rx: CompiledPrescription


@dataclass(slots=True)
class _Fill:
    starts_ml: float  # cumulative pumped volume at which this drug reaches the catheter tip
    per_ml: float
    label: str  # concentration as written
    drug: str


@dataclass(frozen=True, slots=True)
class FillDelivery:
    """What one fill (drug and concentration) delivered at the catheter tip."""

    drug: str
    concentration: str
    volume_ml: float
    amount: float  # canonical (mg, units, ...)


class IntrathecalPump:
    """An implanted intrathecal pump running one prescription on the pump engine."""

    def __init__(
        self,
        prescription: IntrathecalPrescription,
        *,
        clock: PumpClock | None = None,
        catheter_cm: float = DEFAULT_CATHETER_CM,
        pump_pathway_ml: float = PUMP_PATHWAY_ML,
        battery: Battery | None = None,
        horizon_days: float = FLEX_HORIZON_DAYS,
        entry: DrugEntry | None = None,
        patient: Patient | None = None,
        care_area: CareArea | None = None,
        override_reason: str | None = None,
        serial: str = "IT-0001",
        fill_ml: float | None = None,
    ) -> None:
        """``fill_ml``: drug in the reservoir at the start (default: full)."""
        self.mechanism = implant(_positive_finite("reservoir_ml", prescription.reservoir_ml))
        self.clock = clock or PumpClock()
        catheter = _positive_finite("catheter_cm", catheter_cm)
        pathway = _positive_finite("pump_pathway_ml", pump_pathway_ml)
        self.dead_volume_ml = pathway + catheter * CATHETER_ML_PER_CM
        self.horizon_days = _positive_finite("horizon_days", horizon_days)
        self._library = (entry, patient, care_area)
        self.rx = compile_prescription(
            prescription,
            mechanism=self.mechanism,
            entry=entry,
            patient=patient,
            care_area=care_area,
            override_reason=override_reason,
        )
        self.device = Device(
            [self.mechanism],
            settings=[ChannelSettings(reservoir_low_ml=prescription.low_reservoir_ml)],
            battery=battery or implant_battery(),
            serial=serial,
            listener=self._on_record,
        )
        if fill_ml is not None:
            fill = _positive_finite("fill_ml", fill_ml)
            capacity = self.mechanism.reservoir_ml or math.inf
            if fill > capacity + 1e-9:
                raise InputError("fill_ml", fill_ml, f"overfills the {capacity:g} mL reservoir")
            self.channel.reservoir_ml = fill
        self.ptm_log: list[PtmActivation] = []
        self.refills: list[RefillResult] = []
        self._bridge: _Bridge | None = None
        self._fills = [
            _Fill(0.0, self.rx.concentration.per_ml, self.rx.concentration.text, self.rx.drug.name)
        ]
        self._loaded_at: float | None = None
        self._next_check = SERVICE_CHECK_S
        # (pump s, mL pumped) at every engine event of the last 24 h: the volume pumped is
        # piecewise linear between them, which gives the amount of any trailing window.
        self._trace: deque[tuple[float, float]] = deque([(self.t_s, 0.0)])
        self._load(self.rx)

    # ---- reading ----------------------------------------------------------------------------

    @property
    def channel(self) -> Channel:
        return self.device.channels[0]

    @property
    def t_s(self) -> float:
        return self.device.t_s

    @property
    def bridging(self) -> bool:
        return self._bridge is not None

    @property
    def bridge(self) -> BridgeBolus | None:
        return self._bridge.info if self._bridge else None

    @property
    def pumped_ml(self) -> float:
        return self.channel.pumped_ml

    @property
    def reservoir_ml(self) -> float:
        return self.channel.reservoir_ml or 0.0

    def _amount_in(self, v0: float, v1: float, drug: str | None = None) -> float:
        """Canonical amount leaving the catheter tip while the pumped volume goes from
        ``v0`` to ``v1`` mL (of ``drug`` only, when given)."""
        key = drug.strip().casefold() if drug is not None else None
        total = 0.0
        for i, fill in enumerate(self._fills):
            end = self._fills[i + 1].starts_ml if i + 1 < len(self._fills) else math.inf
            lo, hi = max(v0, fill.starts_ml), min(v1, end)
            if hi > lo and (key is None or fill.drug.casefold() == key):
                total += (hi - lo) * fill.per_ml
        return total

    def deliveries(self) -> list[FillDelivery]:
        """What each fill delivered at the catheter tip: after a change of drug or
        concentration the old drug keeps arriving for one dead volume."""
        pumped = self.channel.ideal_ml
        out = []
        for i, fill in enumerate(self._fills):
            end = self._fills[i + 1].starts_ml if i + 1 < len(self._fills) else math.inf
            volume = max(0.0, min(end, pumped) - fill.starts_ml)
            out.append(FillDelivery(fill.drug, fill.label, volume, volume * fill.per_ml))
        return out

    def delivered_amount(self, drug: str | None = None) -> float:
        """Canonical drug amount that has left the catheter tip (of ``drug`` only, when
        given; amounts of different drugs are not meant to be added)."""
        return self._amount_in(0.0, self.channel.ideal_ml, drug)

    def _pumped_at(self, t: float) -> float:
        """mL pumped at pump time ``t`` within the last 24 h (linear between events)."""
        trace = self._trace
        if t <= trace[0][0]:
            return trace[0][1]
        i = bisect.bisect_right([p[0] for p in trace], t) - 1
        if i >= len(trace) - 1:
            return trace[-1][1]
        (t0, v0), (t1, v1) = trace[i], trace[i + 1]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    def trailing_amount(self, window_s: float = DAY_S) -> float:
        """Canonical amount of the current drug delivered in the last ``window_s``
        (at most 24 h), basal and PTM boluses together."""
        t = self.t_s
        start = self._pumped_at(t - min(window_s, DAY_S))
        return self._amount_in(start, self.channel.ideal_ml, self.rx.drug.name)

    def _note(self) -> None:
        t, pumped = self.t_s, self.channel.ideal_ml
        trace = self._trace
        if trace[-1][0] >= t:
            trace[-1] = (t, pumped)
        else:
            trace.append((t, pumped))
        while len(trace) > 2 and trace[1][0] <= t - DAY_S:
            trace.popleft()

    def status(self) -> dict[str, Any]:
        rx = self.rx
        return {
            "drug": rx.drug.name,
            "concentration": rx.concentration.text,
            "mode": "simple continuous" if rx.period_s is None else f"flex ({rx.rx.flex_period})",
            "daily_dose": rx.display(rx.daily_amount),
            "max_daily_dose": rx.display(rx.max_daily_amount),
            "reservoir_ml": self.reservoir_ml,
            "bridging": self.bridging,
            "state": self.channel.state.value,
            "t_s": self.t_s,
            "local_time": self.clock.local(self.t_s).isoformat(),
        }

    # ---- commands ---------------------------------------------------------------------------

    def _load(self, cp: CompiledPrescription) -> None:
        """Enter ``cp`` placed on the clock from now (an entered, unstarted program is
        discarded first: the engine loads only over a stopped or paused program)."""
        plan = compile_plan(cp, self.clock, self.t_s, self.mechanism, self.horizon_days)
        if self.channel.state is State.PROGRAMMING:
            self.device.stop(0)
        info: dict[str, Any] = {
            "drug": cp.drug.name,
            "concentration": cp.concentration.text,
            "daily_dose": cp.display(cp.daily_amount),
            "max_daily_dose": cp.display(cp.max_daily_amount),
        }
        if cp.verdict is not None:
            info["verdict"] = cp.verdict.label
        if cp.override is not None:
            info["override_reason"] = cp.override.reason
        self.device.program(0, plan, **info)
        self.channel.settings.reservoir_low_ml = cp.rx.low_reservoir_ml
        self._loaded_at = self.t_s

    def start(self) -> None:
        """Start the programmed therapy now (a flex plan is re-placed on the clock)."""
        if self._loaded_at is None or abs(self._loaded_at - self.t_s) > EPS_S:
            self._load(self.rx)
        self.device.start(0)
        self._service_check()

    def reprogram(
        self, prescription: IntrathecalPrescription, *, override_reason: str | None = None
    ) -> None:
        """A new prescription with the same drug and concentration, effective now."""
        if prescription.reservoir_ml != self.rx.rx.reservoir_ml:
            raise InputError(
                "reservoir_ml", prescription.reservoir_ml, "is fixed by the implanted pump"
            )
        if self.bridging:
            raise InputError("prescription", "", "wait until the bridge bolus has finished")
        entry, patient, area = self._library
        cp = compile_prescription(
            prescription,
            mechanism=self.mechanism,
            entry=entry,
            patient=patient,
            care_area=area,
            override_reason=override_reason,
        )
        if not _same_drug(cp.drug.name, self.rx.drug.name):
            raise InputError("drug", prescription.drug, "a new drug needs a refill")
        if not cp.concentration.same_strength(self.rx.concentration):
            raise InputError(
                "concentration", prescription.concentration, "a new concentration needs a refill"
            )
        running = self.channel.state in (State.RUNNING, State.BOLUS)
        if running:
            self.device.pause(0)
        self._load(cp)  # may be refused (e.g. during an alarm): the old program stays
        self.rx = cp
        if running:
            self.device.start(0)

    def ptm(self) -> PtmActivation:
        """The patient presses the PTM: a bolus is granted or denied with a reason.

        Denied: no PTM prescribed, the pump stopped, a bridge bolus running, the lockout
        since the last granted bolus, ``max_per_day`` bolus already granted in the last
        24 h, or a bolus that would take the last 24 h over the maximum daily dose; all
        of them whatever program (refill, reprogramming) the earlier bolus came from. The
        engine then checks its own lockout and count. Every press is an event.
        """
        t = self.t_s
        reason = self._ptm_denial(t)
        if reason is None:
            granted = self.device.demand(0)
            reason = "granted" if granted else self.channel.pca_history[-1].reason
        else:
            granted = False
            self.channel.emit(t, Event.PCA_DENIED.value, {"reason": reason})
        activation = PtmActivation(t, granted, reason)
        self.ptm_log.append(activation)
        return activation

    def _ptm_denial(self, t: float) -> str | None:
        ptm = self.rx.ptm
        if ptm is None:
            return "no PTM prescribed"
        if not self.device.powered:
            return "pump stopped (end of service)"
        if self.bridging:
            return "bridge bolus in progress"
        grants = [a.t_s for a in self.ptm_log if a.granted]
        if grants and t - grants[-1] < ptm.lockout_s - 1e-7:
            return "lockout"
        if sum(1 for g in grants if t - g < DAY_S) >= ptm.max_per_day:
            return "demand count limit"
        if self.trailing_amount() + ptm.amount > self.rx.max_daily_amount * (1 + 1e-9):
            return "24-hour limit"
        return None

    def refill(
        self,
        found_ml: float,
        added_ml: float,
        concentration: str | None = None,
        *,
        drug: str | None = None,
        prescription: IntrathecalPrescription | None = None,
        override_reason: str | None = None,
    ) -> RefillResult:
        """Drain the reservoir and fill it again.

        ``found_ml`` is the residual the clinician drained (and discards), compared with
        the volume the pump expected: a difference over the tolerance (1 mL in a 20 mL
        pump, 2 mL in a 40 mL pump) raises LEAK_SUSPECTED, a sign of a leak, a catheter
        problem or a pump fault. ``added_ml`` is the new drug injected: the reservoir then
        holds ``added_ml``. With a new ``concentration`` or ``drug`` (or a ``prescription``
        of another drug or strength) the old drug still in the pump pathway and catheter is
        pushed out first at the old rate (bridge bolus), then the new program starts.
        Everything is validated before anything changes.
        """
        found = _nonnegative("found_ml", found_ml)
        added = _positive_finite("added_ml", added_ml)
        capacity = self.mechanism.reservoir_ml or math.inf
        if found > capacity + 1e-9:
            raise InputError(
                "found_ml", found_ml, f"is more than the {capacity:g} mL reservoir holds"
            )
        if added > capacity + 1e-9:
            raise InputError("added_ml", added_ml, f"overfills the {capacity:g} mL reservoir")
        if self.bridging:
            raise InputError("refill", "", "wait until the bridge bolus has finished")
        new_cp: CompiledPrescription | None = None
        if prescription is not None or concentration is not None or drug is not None:
            base = prescription or self.rx.rx
            if concentration is not None:
                base = replace(base, concentration=concentration)
            if drug is not None:
                base = replace(base, drug=drug)
            if base.reservoir_ml != self.rx.rx.reservoir_ml:
                raise InputError(
                    "reservoir_ml", base.reservoir_ml, "is fixed by the implanted pump"
                )
            entry, patient, area = self._library
            new_cp = compile_prescription(
                base,
                mechanism=self.mechanism,
                entry=entry,
                patient=patient,
                care_area=area,
                override_reason=override_reason,
            )
        ch = self.channel
        board = self.device.board
        blocking = [
            a.alarm.code
            for a in board.active(0)
            if a.condition and a.alarm.stops_flow and a.alarm is not Alarm.RESERVOIR_EMPTY
        ]
        if new_cp is not None and blocking:
            raise InputError(
                "refill",
                ", ".join(blocking),
                "clear this alarm before changing the drug or the prescription",
            )
        changed = new_cp is not None and (
            not new_cp.concentration.same_strength(self.rx.concentration)
            or not _same_drug(new_cp.drug.name, self.rx.drug.name)
        )
        started = ch.state not in (State.IDLE, State.PROGRAMMING, State.STANDBY)
        old_plan = ch.plan
        old_rate = old_plan.steps[ch.step_i].rate_ml_h if old_plan is not None else 0.0
        if ch.state in (State.RUNNING, State.BOLUS, State.DELAYED, State.KVO):
            self.device.pause(0)
        t = self.t_s
        expected = ch.reservoir_ml or 0.0
        difference = found - expected
        tolerance = REFILL_TOLERANCE_PER_ML * capacity
        leak = abs(difference) > tolerance + 1e-9

        def act() -> None:
            ch.clear_condition(Alarm.LEAK_SUSPECTED, t)  # the previous refill's finding
            ch.refill(t, found, added)
            ch.reservoir_ml = added  # the residual was drained and discarded
            if leak:
                ch.alarm(Alarm.LEAK_SUSPECTED, t, difference_ml=difference, tolerance_ml=tolerance)

        self.device._command(
            "refill", 0, {"found_ml": found, "added_ml": added, "expected_ml": expected}, act
        )
        bridge: BridgeBolus | None = None
        if new_cp is not None and changed and started and old_rate > 0:
            bridge = self._start_bridge(new_cp, old_rate)
        elif new_cp is not None:
            if changed:  # nothing was flowing: no old drug to push out first
                self._fills.append(
                    _Fill(
                        ch.ideal_ml,
                        new_cp.concentration.per_ml,
                        new_cp.concentration.text,
                        new_cp.drug.name,
                    )
                )
            self._load(new_cp)
            self.rx = new_cp
            if started:
                self.device.start(0)
        elif started and ch.state is State.PAUSED:
            self._restart_same()
        result = RefillResult(
            expected, found, added, difference, leak, self.reservoir_ml, bridge, tolerance, t
        )
        self.refills.append(result)
        return result

    def _restart_same(self) -> None:
        """Resume after a refill. A flex plan is re-placed on the clock: the engine's
        steps count elapsed time, so a plain resume would shift the schedule by the pause."""
        if self.rx.period_s is None and self.channel.plan is not None:
            self.device.resume(0)
        else:
            self._load(self.rx)
            self.device.start(0)

    def _start_bridge(self, new_cp: CompiledPrescription, old_rate: float) -> BridgeBolus:
        old = self.rx
        volume = self.dead_volume_ml
        duration = volume / (old_rate / 3600.0)
        t = self.t_s
        plan = Plan(
            "intrathecal bridge",
            [Step(StepKind.CONTINUOUS, old_rate, volume_ml=volume, label="bridge bolus")],
            vtbi_ml=volume,
            kvo_at_end=False,
            drug=old.drug,  # what leaves the catheter tip during the bridge is the old drug
            envelope=Envelope(max_rate_ml_h=self.mechanism.max_rate_ml_h),
            label=f"bridge: {old.concentration.text} -> {new_cp.concentration.text}",
        )
        self.device.program(
            0,
            plan,
            bridge_ml=volume,
            old_concentration=old.concentration.text,
            new_concentration=new_cp.concentration.text,
        )
        self.device.start(0)
        self._loaded_at = None
        self._fills.append(
            _Fill(
                self.channel.ideal_ml + volume,
                new_cp.concentration.per_ml,
                new_cp.concentration.text,
                new_cp.drug.name,
            )
        )
        info = BridgeBolus(
            volume, old_rate, duration, t, t + duration, self.clock.utc(t + duration)
        )
        self._bridge = _Bridge(info, new_cp)
        return info

    def _finish_bridge(self) -> None:
        assert self._bridge is not None
        new_cp = self._bridge.next_rx
        self._bridge = None
        self.channel.clear_condition(Alarm.VTBI_COMPLETE, self.t_s)
        self.rx = new_cp
        self._load(new_cp)
        self.device.start(0)

    def _on_record(self, record: Record) -> None:
        """The battery is empty: the pump has stopped for good (end of service)."""
        if record.kind == Event.POWER.value and record.data.get("state") == "off":
            self.channel.alarm(Alarm.END_OF_SERVICE, record.t_s, reason=record.data.get("reason"))

    # ---- time -------------------------------------------------------------------------------

    def advance_to(self, t_s: float) -> None:
        """Run the pump to pump time ``t_s``, engine event by engine event: switch after a
        bridge bolus the moment it ends, and re-project the battery once a day (raising the
        ERI). Always advance the pump here, not its device: the 24-hour accounting of the
        PTM limit follows these steps."""
        dev = self.device
        if isinstance(t_s, bool) or not isinstance(t_s, int | float):
            raise InputError("t_s", t_s, "must be a number of seconds")
        if not math.isfinite(t_s) or t_s < dev.t_s:
            raise InputError("t_s", t_s, f"must be finite and not before the pump's time {dev.t_s}")
        stalls = 0
        while dev.t_s < t_s:
            before = dev.t_s
            dev.advance_to(max(before, min(t_s, self._next_check, dev.next_event_s())))
            self._note()
            if self._bridge is not None and self.channel.state is State.COMPLETE:
                self._finish_bridge()
            if dev.t_s >= self._next_check - EPS_S:
                self._service_check()
                self._next_check = dev.t_s + SERVICE_CHECK_S
            stalls = stalls + 1 if dev.t_s <= before else 0
            if stalls > 1000:  # pragma: no cover - engine guard
                raise RuntimeError(f"the pump made no progress at t={dev.t_s}")

    def advance_days(self, days: float) -> None:
        self.advance_to(self.t_s + days * DAY_S)

    # ---- forecasts --------------------------------------------------------------------------

    def _forecast(self, dt_s: float) -> Forecast:
        t = self.t_s + dt_s
        if math.isinf(dt_s):
            return Forecast(math.inf, None, None, math.inf)
        return Forecast(t, self.clock.utc(t), self.clock.local(t), dt_s / DAY_S)

    def time_to_pump(self, volume_ml: float, *, assume_max_ptm: bool = False) -> float:
        """Seconds until ``volume_ml`` more has been pumped at the programmed schedule."""
        ch = self.channel
        extra = self.rx.ptm_max_ml_per_day / 24.0 if assume_max_ptm else 0.0
        plan = ch.plan
        if plan is None:
            return math.inf
        elapsed = self.t_s - ch.step_started_s
        if self._bridge is None:
            return _time_to_deliver(plan, ch.step_i, elapsed, ch.step_ml, volume_ml, extra)
        # During a bridge: the rest of the bridge, then the next program from its end.
        remaining_bridge = max(0.0, self._bridge.info.volume_ml - ch.step_ml)
        bridge_rate = self._bridge.info.rate_ml_h / 3600.0
        if volume_ml <= remaining_bridge:
            return volume_ml / bridge_rate
        t_end = remaining_bridge / bridge_rate
        nxt = compile_plan(
            self._bridge.next_rx, self.clock, self.t_s + t_end, self.mechanism, self.horizon_days
        )
        return t_end + _time_to_deliver(nxt, 0, 0.0, 0.0, volume_ml - remaining_bridge, extra)

    def low_reservoir_forecast(self, *, assume_max_ptm: bool = False) -> Forecast:
        """When the reservoir will reach the low-reservoir alarm volume at the programmed
        schedule (optionally assuming every allowed PTM dose is taken each day)."""
        volume = self.reservoir_ml - self.channel.settings.reservoir_low_ml
        return self._forecast(self.time_to_pump(volume, assume_max_ptm=assume_max_ptm))

    def empty_forecast(self, *, assume_max_ptm: bool = False) -> Forecast:
        return self._forecast(self.time_to_pump(self.reservoir_ml, assume_max_ptm=assume_max_ptm))

    def service_forecast(self, *, assume_max_ptm: bool = False) -> ServiceForecast:
        """Elective replacement indicator and end of service at the programmed average flow.

        Remaining life = battery charge / current at the mean flow; ERI when it is under
        90 days (the pump stops 90 days after ERI).
        """
        rate = self.rx.mean_rate_ml_h + (
            self.rx.ptm_max_ml_per_day / 24.0 if assume_max_ptm else 0.0
        )
        battery = self.device.battery
        current = battery.current_ma(rate)
        remaining_s = battery.charge_mah / current * 3600.0
        eri_s = max(0.0, remaining_s - ERI_REMAINING_DAYS * DAY_S)
        return ServiceForecast(
            mean_rate_ml_day=rate * 24.0,
            remaining_days=remaining_s / DAY_S,
            eri=self._forecast(eri_s),
            end_of_service=self._forecast(remaining_s),
            at_eri=remaining_s < ERI_REMAINING_DAYS * DAY_S,
        )

    def _service_check(self) -> None:
        forecast = self.service_forecast()
        if forecast.at_eri and not self.device.board.is_active(Alarm.ELECTIVE_REPLACEMENT, 0):
            self.channel.alarm(
                Alarm.ELECTIVE_REPLACEMENT,
                self.t_s,
                remaining_days=round(forecast.remaining_days, 2),
            )


def _same_drug(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _nonnegative(field_name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(field_name, value, "must be a number")
    if not (math.isfinite(value) and value >= 0):
        raise InputError(field_name, value, "must be a finite volume >= 0 mL")
    return float(value)


__all__ = [
    "CATHETER_ML_PER_CM",
    "ERI_REMAINING_DAYS",
    "MAX_FLEX_STEPS",
    "PUMP_PATHWAY_ML",
    "BridgeBolus",
    "CompiledPrescription",
    "FillDelivery",
    "FlexStep",
    "Forecast",
    "IntrathecalPrescription",
    "IntrathecalPump",
    "PtmActivation",
    "PtmSettings",
    "RefillResult",
    "ServiceForecast",
    "compile_plan",
    "compile_prescription",
    "implant_battery",
]
