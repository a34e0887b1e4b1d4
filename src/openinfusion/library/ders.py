"""Dose error reduction: check a program against a drug entry, a care area and a patient.

``check(program, entry, patient, care_area)`` returns a :class:`Verdict` listing every
finding: each parameter checked, its value, the bound it crossed (if any) and the level
(ok, soft, hard). A soft finding needs an override with a reason; a hard one blocks.

Values are compared in the library's own units after an exact conversion, so a program
written in mg/kg/h meets the same limit as one in mcg/kg/min. Comparisons allow a relative
tolerance of 1e-9 so that a unit conversion's last-bit rounding never turns "at the limit"
into "over it". The checks also cross-check dose against rate (a dose typed into the rate
field, a decimal shift, mg/h read as mL/h) and the patient against the care area.

Hot path: each entry is compiled once into plain floats in canonical units.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from openinfusion.errors import InputError, OpenInfusionError
from openinfusion.library.schema import (
    CareArea,
    DrugEntry,
    Limits,
)
from openinfusion.patient import Patient
from openinfusion.units import (
    Concentration,
    Dimension,
    Dose,
    DoseUnit,
    basis_value,
    check_same_dimension,
    format_number,
    parse_amount_unit,
    parse_dose_unit,
)

REL_TOL = 1e-9
_UP = 1.0 + REL_TOL
_DOWN = 1.0 - REL_TOL
_INF = math.inf
# Dose and rate must agree within 2 % or 0.05 mL/h (pump displays round to 0.1 mL/h).
CONSISTENCY_REL = 0.02
CONSISTENCY_ABS_ML_H = 0.05


class Level(IntEnum):
    """Severity of a finding or verdict; ordered so ``max`` gives the verdict."""

    OK = 0
    SOFT = 1
    HARD = 2

    @property
    def label(self) -> str:
        return self.name.lower()


_Add = Callable[["Finding"], None]


class Finding(NamedTuple):
    """One checked parameter: its value and unit, the level, and the bound crossed."""

    parameter: str
    value: float
    unit: str
    level: Level
    bound: str | None = None
    limit: float | None = None
    note: str = ""

    @property
    def message(self) -> str:
        shown = f"{self.parameter} {format_number(self.value)} {self.unit}".rstrip()
        if self.note:
            return f"{shown}: {self.note}"
        if self.bound is None or self.limit is None:
            return f"{shown} is within limits"
        kind = "hard" if self.bound.startswith("hard") else "soft"
        side = "above" if self.bound.endswith("max") else "below"
        return f"{shown} is {side} the {kind} limit {format_number(self.limit)} {self.unit}"

    def as_dict(self) -> dict[str, object]:
        return {
            "parameter": self.parameter,
            "value": self.value,
            "unit": self.unit,
            "level": self.level.label,
            "bound": self.bound,
            "limit": self.limit,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class PcaProgram:
    """PCA settings as programmed: demand dose, lockout, optional max dose per window."""

    demand: Dose
    lockout_min: float
    max_dose: Dose | None = None
    window_h: float | None = None


@dataclass(frozen=True, slots=True)
class Program:
    """What a clinician programmed, parsed into floats; every field is optional.

    ``dose`` is a dose rate for continuous entries or a single dose for intermittent and
    bolus entries; ``prior_amount`` is what was already given inside the entry's
    cumulative window, in the entry's cumulative unit (absolute, not per kg).
    """

    dose: Dose | None = None
    rate_ml_h: float | None = None
    concentration: Concentration | None = None
    bolus: Dose | None = None
    loading: Dose | None = None
    vtbi_ml: float | None = None
    duration_min: float | None = None
    pca: PcaProgram | None = None
    prior_amount: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rate_ml_h", "vtbi_ml", "duration_min"):
            _positive(name, getattr(self, name))
        for name in ("dose", "bolus", "loading"):
            dose = getattr(self, name)
            if dose is not None:
                _positive(name, dose.value, dose.unit.text)
        if not (math.isfinite(self.prior_amount) and self.prior_amount >= 0):
            raise InputError("prior_amount", self.prior_amount, "must be a finite amount >= 0")
        if self.pca is not None:
            _positive("pca.demand", self.pca.demand.value, self.pca.demand.unit.text)
            _positive("pca.lockout_min", self.pca.lockout_min)
            if self.pca.max_dose is not None:
                _positive("pca.max_dose", self.pca.max_dose.value, self.pca.max_dose.unit.text)
            _positive("pca.window_h", self.pca.window_h)


def _positive(name: str, value: float | None, unit: str = "") -> None:
    """Reject 0, negatives, -0, NaN and infinities: never silently clamp (RELIABILITY B-11)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(name, value, "must be a number")
    if not math.isfinite(value) or value <= 0:
        shown = f"{value} {unit}".strip()
        raise InputError(name, shown, "must be a finite number greater than zero")


class DersError(OpenInfusionError):
    """A program that cannot start as is: ``verdict`` says why."""

    def __init__(self, verdict: Verdict, message: str) -> None:
        super().__init__(message)
        self.verdict = verdict


class SoftLimitError(DersError):
    """A soft limit was crossed and no override reason was given."""

    exit_code = 3


class HardLimitError(DersError):
    """A hard limit was crossed: the program is blocked."""

    exit_code = 4


@dataclass(frozen=True, slots=True)
class Override:
    """A clinician's documented decision to proceed past soft limits."""

    reason: str
    clinician: str | None
    findings: tuple[Finding, ...]


class Verdict(NamedTuple):
    """The outcome of a DERS check: overall level, every finding, computed values.

    A NamedTuple (immutable, and cheap to build on the hot path).
    """

    level: Level
    findings: tuple[Finding, ...]
    drug: str
    care_area: str
    computed: dict[str, float]
    advisory: str | None = None

    @property
    def label(self) -> str:
        return self.level.label

    @property
    def crossed(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level is not Level.OK)

    def messages(self) -> list[str]:
        where = f" for {self.drug} in {self.care_area}"
        return [f.message + (where if f.bound and not f.note else "") for f in self.crossed]

    def accept(
        self, override_reason: str | None = None, clinician: str | None = None
    ) -> Override | None:
        """Allow the program to start, or raise: hard blocks, soft needs a reason."""
        if self.level is Level.HARD:
            raise HardLimitError(self, "; ".join(self.messages()) + " (blocked)")
        if self.level is Level.SOFT:
            reason = (override_reason or "").strip()
            if not reason:
                raise SoftLimitError(
                    self, "; ".join(self.messages()) + " (override with a reason to continue)"
                )
            return Override(reason=reason, clinician=clinician, findings=self.crossed)
        return None

    def as_dict(self) -> dict[str, object]:
        return {
            "verdict": self.level.label,
            "drug": self.drug,
            "care_area": self.care_area,
            "findings": [f.as_dict() for f in self.findings],
            "computed": dict(self.computed),
            "advisory": self.advisory,
        }


# ---- compiled entries ------------------------------------------------------------------------

Bounds = tuple[float, float, float, float, float, float, float, float]


def _bounds(limits: Limits | None, factor: float = 1.0) -> Bounds | None:
    """(hard_min, soft_min, soft_max, hard_max) scaled, missing as +/-inf, raw then toleranced."""
    if limits is None or limits.is_empty:
        return None

    def get(value: float | None, default: float) -> float:
        return default if value is None else value * factor

    hmin, smin = get(limits.hard_min, -_INF), get(limits.soft_min, -_INF)
    smax, hmax = get(limits.soft_max, _INF), get(limits.hard_max, _INF)
    return (hmin, smin, smax, hmax, hmin * _DOWN, smin * _DOWN, smax * _UP, hmax * _UP)


def _grade(
    parameter: str, value: float, unit: str, b: Bounds | None, scale: float = 1.0
) -> Finding:
    """Grade ``value`` (already in the bounds' unit) against four bounds."""
    if b is None:
        return _ok(Finding, (parameter, value, unit, Level.OK, None, None, ""))
    v = value * scale
    if v > b[7]:
        return Finding(parameter, value, unit, Level.HARD, "hard_max", b[3] / scale)
    if v < b[4]:
        return Finding(parameter, value, unit, Level.HARD, "hard_min", b[0] / scale)
    if v > b[6]:
        return Finding(parameter, value, unit, Level.SOFT, "soft_max", b[2] / scale)
    if v < b[5]:
        return Finding(parameter, value, unit, Level.SOFT, "soft_min", b[1] / scale)
    return _ok(Finding, (parameter, value, unit, Level.OK, None, None, ""))


# Building the common "within limits" finding straight from a tuple skips NamedTuple's
# Python-level __new__: DERS makes several per check and the target is 200k checks/s.
_ok = tuple.__new__


@dataclass(frozen=True, slots=True)
class CompiledEntry:
    """A drug entry reduced to plain floats for fast checking."""

    entry: DrugEntry
    unit: DoseUnit
    dose: Bounds | None
    rate: Bounds | None
    vtbi: Bounds | None
    duration: Bounds | None
    bolus_unit: DoseUnit | None
    bolus: Bounds | None
    loading_unit: DoseUnit | None
    loading: Bounds | None
    concentrations: tuple[Concentration, ...]
    concentration_range: Bounds | None
    cumulative_unit: DoseUnit | None
    cumulative_max: float
    cumulative_window_h: float
    pca_unit: DoseUnit | None
    pca_demand: Bounds | None
    pca_lockout: Bounds | None
    pca_max: Bounds | None
    pca_window_h: float
    label: str


def compile_entry(entry: DrugEntry) -> CompiledEntry:
    """Reduce an entry to floats in its own units (cached on the entry by ``compiled``)."""
    lim = entry.limits
    bolus_unit = parse_dose_unit(lim.bolus.unit) if lim.bolus else None
    loading_unit = parse_dose_unit(lim.loading.unit) if lim.loading else None
    conc_factor = 1.0
    if lim.concentration is not None:
        conc_factor = parse_amount_unit(lim.concentration.unit.partition("/")[0]).factor
    cum = entry.cumulative
    pca = entry.pca
    return CompiledEntry(
        entry=entry,
        unit=parse_dose_unit(entry.dose_unit),
        dose=_bounds(lim.dose),
        rate=_bounds(lim.rate_ml_h),
        vtbi=_bounds(lim.vtbi_ml),
        duration=_bounds(lim.duration_min),
        bolus_unit=bolus_unit,
        bolus=_bounds(lim.bolus),
        loading_unit=loading_unit,
        loading=_bounds(lim.loading),
        concentrations=entry.parsed_concentrations(),
        concentration_range=_bounds(lim.concentration, conc_factor),
        cumulative_unit=parse_dose_unit(cum.unit) if cum else None,
        cumulative_max=cum.max if cum else _INF,
        cumulative_window_h=cum.window_h if cum else 0.0,
        pca_unit=parse_dose_unit(pca.dose_unit) if pca else None,
        pca_demand=_bounds(pca.demand) if pca else None,
        pca_lockout=_bounds(pca.lockout_min) if pca else None,
        pca_max=_bounds(pca.max_dose) if pca else None,
        pca_window_h=pca.max_dose_window_h if pca else 0.0,
        label=entry.label,
    )


# ---- the check ---------------------------------------------------------------------------------


def check(
    program: Program,
    entry: DrugEntry,
    patient: Patient | None = None,
    care_area: CareArea | None = None,
) -> Verdict:
    """Check ``program`` against ``entry`` (and the care area and patient when given).

    Raises :class:`InputError` for input that cannot be checked at all: a dose in another
    dimension than the library's (mg vs units), a weight-based dose with no weight, several
    library concentrations and none chosen.
    """
    c = entry.compiled
    patient = patient or _NO_PATIENT
    weight, bsa = patient.weight_kg, patient.bsa_m2
    findings: list[Finding] = []
    computed: dict[str, float] = {}
    add = findings.append

    conc = _concentration(program.concentration, c, add)
    dose_value: float | None = None
    if program.dose is not None:
        dose_value = _in_unit("dose", program.dose, c.unit, weight, bsa)
        add(_grade("dose", dose_value, c.unit.text, c.dose))

    if c.unit.is_rate:
        _check_rate(program, c, conc, dose_value, weight, bsa, add, computed)
    elif program.rate_ml_h is not None:
        add(_grade("rate", program.rate_ml_h, "mL/h", c.rate))
    elif program.vtbi_ml is not None and program.duration_min is not None:
        rate = program.vtbi_ml * 60.0 / program.duration_min
        computed["rate_ml_h"] = rate
        add(_grade("rate", rate, "mL/h", c.rate))
    if program.dose is not None and not c.unit.is_rate and conc is not None:
        computed["volume_ml"] = _volume(program.dose, conc, weight, bsa)

    if program.bolus is not None:
        _check_single("bolus", program.bolus, c.bolus_unit, c.bolus, c, weight, bsa, add)
    if program.loading is not None:
        _check_single("loading", program.loading, c.loading_unit, c.loading, c, weight, bsa, add)
    if program.vtbi_ml is not None:
        add(_grade("vtbi", program.vtbi_ml, "mL", c.vtbi))
    if program.duration_min is not None:
        add(_grade("duration", program.duration_min, "min", c.duration))
    if c.cumulative_unit is not None:
        _check_cumulative(program, c, weight, bsa, add, computed)
    if program.pca is not None:
        _check_pca(program.pca, c, weight, bsa, add)
    if care_area is not None:
        _check_care_area(program, care_area, patient, computed, add)

    level = _LEVELS[max(map(_LEVEL, findings), default=0)]
    area = care_area.name if care_area is not None else entry.care_area
    return Verdict(level, tuple(findings), c.label, area, computed, entry.advisory)


_NO_PATIENT = Patient()
_LEVEL = operator.itemgetter(3)  # Finding.level
_LEVELS = (Level.OK, Level.SOFT, Level.HARD)


def _in_unit(
    name: str, dose: Dose, unit: DoseUnit, weight: float | None, bsa: float | None
) -> float:
    """``dose`` expressed in ``unit``; raises InputError across dimensions or kinds."""
    if dose.unit is unit or dose.unit == unit:
        return dose.value
    if dose.unit.dimension is not unit.dimension:
        raise InputError(
            name,
            str(dose),
            f"is in {dose.unit.dimension.value} but the library doses in {unit.dimension.value} "
            f"({unit.text}); mass, units, mEq and mmol are never converted into each other",
        )
    if dose.unit.is_rate != unit.is_rate:
        kind = "a dose over time" if unit.is_rate else "a single dose"
        raise InputError(name, str(dose), f"must be {kind}, like {unit.text}")
    if dose.unit.basis is unit.basis:
        return dose.value * dose.unit.factor / unit.factor
    absolute = dose.canonical * basis_value(dose.unit.basis, weight, bsa)
    return absolute / basis_value(unit.basis, weight, bsa) / unit.factor


def _concentration(
    given: Concentration | None, c: CompiledEntry, add: _Add
) -> Concentration | None:
    if c.unit.dimension is Dimension.VOLUME:
        return given
    if given is None:
        return c.concentrations[0] if len(c.concentrations) == 1 else None
    if given.unit.dimension is not c.unit.dimension:
        check_same_dimension(c.unit, given)  # raises the clear error
    per_ml = given.per_ml
    for listed in c.concentrations:
        if abs(listed.per_ml - per_ml) <= REL_TOL * per_ml:
            add(
                Finding(
                    "concentration",
                    given.amount / given.volume_ml,
                    f"{given.unit.symbol}/mL",
                    Level.OK,
                )
            )
            return given
    unit = f"{given.unit.symbol}/mL"
    shown = given.amount / given.volume_ml
    if c.concentration_range is not None:
        # The range is compiled in canonical amount per mL; grade in the unit as written.
        add(_grade("concentration", shown, unit, c.concentration_range, given.unit.factor))
        return given
    listed_text = ", ".join(x.text for x in c.concentrations)
    add(
        Finding(
            "concentration",
            shown,
            unit,
            Level.HARD,
            note=(f"{given.text} is not a library concentration for {c.label} ({listed_text})"),
        )
    )
    return given


def _need_conc(conc: Concentration | None, c: CompiledEntry) -> Concentration:
    if conc is None:
        listed = ", ".join(x.text for x in c.concentrations) or "a concentration"
        raise InputError("concentration", "", f"choose one of {listed} for {c.label}")
    return conc


def _check_rate(
    program: Program,
    c: CompiledEntry,
    conc: Concentration | None,
    dose_value: float | None,
    weight: float | None,
    bsa: float | None,
    add: _Add,
    computed: dict[str, float],
) -> None:
    unit = c.unit
    rate = program.rate_ml_h
    if dose_value is not None:
        if conc is None and rate is None and unit.dimension is not Dimension.VOLUME:
            return  # dose checked; no rate to compute until a concentration is chosen
        per_ml = 1.0 if unit.dimension is Dimension.VOLUME else _need_conc(conc, c).per_ml
        expected = dose_value * unit.factor * basis_value(unit.basis, weight, bsa) / per_ml
        computed["rate_ml_h"] = expected
        if rate is not None:
            gap = abs(rate - expected)
            if gap > max(CONSISTENCY_REL * expected, CONSISTENCY_ABS_ML_H):
                add(Finding("rate", rate, "mL/h", Level.HARD, note=_mismatch(rate, expected)))
        add(_grade("rate", rate if rate is not None else expected, "mL/h", c.rate))
    elif rate is not None:
        per_ml = 1.0 if unit.dimension is Dimension.VOLUME else _need_conc(conc, c).per_ml
        derived = rate * per_ml / basis_value(unit.basis, weight, bsa) / unit.factor
        computed["dose"] = derived
        add(_grade("rate", rate, "mL/h", c.rate))
        finding = _grade("dose", derived, unit.text, c.dose)
        if finding.level is not Level.OK:
            finding = finding._replace(parameter="dose (from rate)")
        add(finding)


def _mismatch(rate: float, expected: float) -> str:
    ratio = rate / expected
    text = f"does not match the dose, which needs {format_number(round(expected, 3))} mL/h"
    for factor in (10.0, 100.0, 1000.0):
        if abs(ratio / factor - 1) < 0.05 or abs(ratio * factor - 1) < 0.05:
            return f"{text} ({format_number(factor)}-fold error?)"
    return text


def _volume(dose: Dose, conc: Concentration, weight: float | None, bsa: float | None) -> float:
    per_ml = 1.0 if dose.unit.dimension is Dimension.VOLUME else conc.per_ml
    return dose.canonical * basis_value(dose.unit.basis, weight, bsa) / per_ml


def _check_single(
    name: str,
    dose: Dose,
    unit: DoseUnit | None,
    bounds: Bounds | None,
    c: CompiledEntry,
    weight: float | None,
    bsa: float | None,
    add: _Add,
) -> None:
    if unit is None:
        add(
            Finding(
                name,
                dose.value,
                dose.unit.text,
                Level.HARD,
                note=f"a {name} dose is not allowed for {c.label} in this care area",
            )
        )
        return
    add(_grade(name, _in_unit(name, dose, unit, weight, bsa), unit.text, bounds))


def _absolute(dose: Dose, weight: float | None, bsa: float | None) -> float:
    """Canonical amount (per hour for rates) for this patient, per-kg/m2 resolved."""
    return dose.canonical * basis_value(dose.unit.basis, weight, bsa)


def _check_cumulative(
    program: Program,
    c: CompiledEntry,
    weight: float | None,
    bsa: float | None,
    add: _Add,
    computed: dict[str, float],
) -> None:
    cum = c.cumulative_unit
    assert cum is not None
    size = basis_value(cum.basis, weight, bsa)
    limit = c.cumulative_max * cum.factor * size  # canonical absolute amount
    total = program.prior_amount * cum.amount.factor  # prior_amount is absolute (not per kg)
    window_h = c.cumulative_window_h
    if program.dose is not None:
        amount = _absolute(program.dose, weight, bsa)
        total += amount * window_h if program.dose.unit.is_rate else amount
    elif program.rate_ml_h is not None and "dose" in computed:
        total += (
            computed["dose"] * c.unit.factor * basis_value(c.unit.basis, weight, bsa) * window_h
        )
    for extra in (program.bolus, program.loading):
        if extra is not None:
            total += _absolute(extra, weight, bsa)
    shown = total / cum.factor / size
    computed["cumulative"] = shown
    if total > limit * _UP:
        add(
            Finding(
                "cumulative",
                shown,
                f"{cum.text} per {format_number(window_h)} h",
                Level.HARD,
                "hard_max",
                c.cumulative_max,
            )
        )
    else:
        add(Finding("cumulative", shown, f"{cum.text} per {format_number(window_h)} h", Level.OK))


def _check_pca(
    pca: PcaProgram, c: CompiledEntry, weight: float | None, bsa: float | None, add: _Add
) -> None:
    unit = c.pca_unit
    if unit is None:
        add(
            Finding(
                "pca.demand",
                pca.demand.value,
                pca.demand.unit.text,
                Level.HARD,
                note=f"{c.label} is not a PCA entry in this care area",
            )
        )
        return
    add(
        _grade(
            "pca.demand",
            _in_unit("pca.demand", pca.demand, unit, weight, bsa),
            unit.text,
            c.pca_demand,
        )
    )
    add(_grade("pca.lockout", pca.lockout_min, "min", c.pca_lockout))
    if pca.max_dose is not None:
        if pca.window_h is not None and abs(pca.window_h - c.pca_window_h) > 1e-9:
            add(
                Finding(
                    "pca.max_dose_window",
                    pca.window_h,
                    "h",
                    Level.HARD,
                    note=f"the library limits PCA dose over {format_number(c.pca_window_h)} h",
                )
            )
        add(
            _grade(
                "pca.max_dose",
                _in_unit("pca.max_dose", pca.max_dose, unit, weight, bsa),
                f"{unit.text} per {format_number(c.pca_window_h)} h",
                c.pca_max,
            )
        )


def _check_care_area(
    program: Program, area: CareArea, patient: Patient, computed: dict[str, float], add: _Add
) -> None:
    rate = program.rate_ml_h if program.rate_ml_h is not None else computed.get("rate_ml_h")
    if rate is not None and rate > area.max_rate_ml_h * _UP:
        add(
            Finding(
                "rate",
                rate,
                "mL/h",
                Level.HARD,
                "hard_max",
                area.max_rate_ml_h,
                note=f"above the {area.name} pump maximum {format_number(area.max_rate_ml_h)} mL/h",
            )
        )
    if (
        program.vtbi_ml is not None
        and area.max_vtbi_ml is not None
        and program.vtbi_ml > area.max_vtbi_ml * _UP
    ):
        add(Finding("vtbi", program.vtbi_ml, "mL", Level.HARD, "hard_max", area.max_vtbi_ml))
    check_patient(patient, area, add)


@dataclass(frozen=True, slots=True)
class CompiledArea:
    """A care area's patient limits as float bounds."""

    weight: Bounds | None
    age: Bounds | None
    max_bsa_m2: float | None


def compile_area(area: CareArea) -> CompiledArea:
    return CompiledArea(_bounds(area.weight_kg), _bounds(area.age_years), area.max_bsa_m2)


def check_patient(patient: Patient, area: CareArea, add: _Add) -> None:
    """Patient size and age against the care area's population limits."""
    c = area.compiled
    if patient.weight_kg is not None and c.weight is not None:
        add(_grade("weight", patient.weight_kg, "kg", c.weight))
    if patient.age_years is not None and c.age is not None:
        add(_grade("age", patient.age_years, "years", c.age))
    bsa = patient.bsa_m2
    if bsa is not None and c.max_bsa_m2 is not None and bsa > c.max_bsa_m2 * _UP:
        add(Finding("bsa", bsa, "m2", Level.HARD, "hard_max", c.max_bsa_m2))


def check_basic_infusion(
    rate_ml_h: float, area: CareArea, patient: Patient | None = None, vtbi_ml: float | None = None
) -> Verdict:
    """A basic infusion (drug not in the library): mL/h only, against care-area limits.

    The verdict is at least soft: running without library protection needs confirmation.
    Where the care area does not allow basic infusions it is hard.
    """
    _positive("rate_ml_h", rate_ml_h)
    _positive("vtbi_ml", vtbi_ml)
    basic = area.basic_infusion
    findings: list[Finding] = []
    add = findings.append
    if not basic.allowed:
        add(
            Finding(
                "basic_infusion",
                rate_ml_h,
                "mL/h",
                Level.HARD,
                note=f"basic infusions are not allowed in {area.name}; choose a library drug",
            )
        )
    else:
        add(Finding("basic_infusion", rate_ml_h, "mL/h", Level.SOFT, note=basic.advisory))
    add(_grade("rate", rate_ml_h, "mL/h", _bounds(basic.rate_ml_h)))
    program = Program(rate_ml_h=rate_ml_h, vtbi_ml=vtbi_ml)
    _check_care_area(program, area, patient or _NO_PATIENT, {}, add)
    level = max(f.level for f in findings)
    return Verdict(
        level,
        tuple(findings),
        "basic infusion",
        area.name,
        {"rate_ml_h": rate_ml_h},
        basic.advisory,
    )
