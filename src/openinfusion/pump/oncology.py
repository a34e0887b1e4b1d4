"""Oncology: BSA-dosed ambulatory infusions and multi-drug regimens run stage by stage.

A chemotherapy *regimen* is an ordered list of *stages*; each stage is one or more drugs
given together (e.g. oxaliplatin and leucovorin through a Y-site on two channels of a
clinic pump), and the next stage starts when every drug of the previous one is complete.
Each drug is prescribed as a total dose per administration (``"85 mg/m2"``) over a time
(``"2 h"``), prepared at a concentration, made up to a bag volume, or sized for an
elastomeric device's nominal flow, and runs on one of three pumps:

* ``lvp``: a channel of a clinic large-volume pump (mains powered);
* ``syringe``: a clinic syringe pump for a slow IV push, syringe size chosen to fit;
* ``ambulatory``: the take-home pump; its cassette is filled with exactly the dose volume,
  so the reservoir empties as the dose ends (reservoir-empty alarm, no over-delivery).

Before anything is delivered, every drug of every stage is checked against the drug library
for the care area with the patient's BSA (all or nothing): a hard limit anywhere blocks the
whole regimen, a soft limit needs an override reason. The cumulative limit of a drug counts
what earlier stages of the same regimen give (the 5-FU push before the 46-hour infusion).

Figures:

* mFOLFOX6 (every 14 days): oxaliplatin 85 mg/m2 IV over 120 min run concurrently with
  folinic acid (leucovorin) 400 mg/m2 over 120 min; fluorouracil 400 mg/m2 IV (at most
  15 min); fluorouracil 2400 mg/m2 over 46 h (minimum 46 h) by pump. Source: NZ Systemic
  Anti-Cancer Therapy Regimen Library, "mFOLFOX6"
  (https://srl.org.nz/regimens/upper-gastrointestinal/57261000210100); the same regimen is
  listed as Cancer Care Ontario regimen monograph MFOLFOX6 (drug formulary monographs 45621
  and 46481) and summarised in PKPD_REFERENCE section 7.3.
* Preparation: oxaliplatin in 500 mL glucose 5 % over 2 h and folinic acid in 250 mL over
  2 h (Onkopti protocol 644, mFOLFOX-6 OXAL85/CFOL400/FU2400, onkopti.de); oxaliplatin and
  leucovorin may run at the same time through a Y-site, and fluorouracil 400 mg/m2 is an
  IV push over 5 minutes (CancerCare Manitoba regimen reference order GAST FOLFOX-6,
  November 2017, public copy docslib.org/doc/4551415; that order is the original FOLFOX6
  with oxaliplatin 100 mg/m2). Fluorouracil 50 mg/mL is the labelled strength (the
  library's [FDA-FLUOROURACIL] source).
* Hand-checkable 46-hour arithmetic (PKPD_REFERENCE 7.3): BSA 1.8 m2 x 2400 mg/m2 =
  4320 mg; at 50 mg/mL 86.4 mL; 86.4 mL / 46 h = 1.878 mL/h (93.9 mg/h).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from openinfusion.errors import InputError
from openinfusion.library import (
    CareArea,
    DrugEntry,
    HardLimitError,
    Level,
    Library,
    Override,
    Program,
    SoftLimitError,
    Verdict,
    check,
    sample_library,
)
from openinfusion.patient import Patient
from openinfusion.pump import therapies as T
from openinfusion.pump.channel import ChannelSettings, CommandRejected, State
from openinfusion.pump.codes import Alarm
from openinfusion.pump.device import MAX_CHANNELS, Device, Record
from openinfusion.pump.mechanics import (
    SYRINGE_INNER_DIAMETER_MM,
    Mechanism,
    PumpKind,
    ambulatory,
    lvp,
    syringe,
)
from openinfusion.pump.plan import Plan, Step, StepKind
from openinfusion.units import (
    Basis,
    Concentration,
    Dose,
    Kind,
    basis_value,
    check_same_dimension,
    format_number,
    parse_amount_unit,
    parse_concentration,
    parse_dose,
    parse_quantity,
)

PumpRole = Literal["lvp", "syringe", "ambulatory"]
PUMP_ROLES: tuple[PumpRole, ...] = ("lvp", "syringe", "ambulatory")
REL_TOL = 1e-9


# ---- regimen data ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegimenDrug:
    """One drug of a stage as prescribed: a total dose per administration over a time.

    Size the volume with exactly one of ``concentration`` ("50 mg/mL"), ``volume`` (the bag
    the dose is made up to, "500 mL": the strength follows the dose) or ``flow_rate`` (an
    elastomeric device's nominal flow, "2 mL/h": volume = flow x time); with none of them
    the library's single listed concentration is used. ``push``: a slow IV push, checked
    against the library's bolus limits instead of its dose and duration limits.
    """

    drug: str
    dose: str
    over: str
    concentration: str | None = None
    volume: str | None = None
    flow_rate: str | None = None
    push: bool = False
    pump: PumpRole | None = None
    therapy: str | None = None
    note: str = ""

    @property
    def role(self) -> PumpRole:
        """The pump the drug runs on: as given, else a syringe pump for a push, else an LVP."""
        return self.pump or ("syringe" if self.push else "lvp")


@dataclass(frozen=True, slots=True)
class Stage:
    """Drugs given together; the next stage starts when all of them are complete."""

    drugs: tuple[RegimenDrug, ...]
    label: str = ""

    def __post_init__(self) -> None:
        if not self.drugs:
            raise InputError("stage", self.label, "needs at least one drug")
        for role in PUMP_ROLES:
            count = sum(1 for d in self.drugs if d.role == role)
            if count > MAX_CHANNELS:
                raise InputError(
                    "stage",
                    self.label or role,
                    f"has {count} drugs on the {role} pump; a pump has at most "
                    f"{MAX_CHANNELS} channels",
                )


@dataclass(frozen=True, slots=True)
class Regimen:
    """An ordered list of stages, e.g. mFOLFOX6; ``cycle`` is the repeat interval."""

    name: str
    stages: tuple[Stage, ...]
    cycle: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not self.stages:
            raise InputError("stages", self.name, "a regimen needs at least one stage")


MFOLFOX6 = Regimen(
    name="mFOLFOX6",
    stages=(
        Stage(
            (
                # 85 mg/m2 over 120 min, concurrently with folinic acid [NZ SRL mFOLFOX6];
                # in 500 mL glucose 5 % [Onkopti 644]; Y-site with leucovorin [CCMB FOLFOX-6].
                RegimenDrug(
                    "oxaliplatin",
                    "85 mg/m2",
                    "2 h",
                    volume="500 mL",
                    note="in glucose 5 % (incompatible with chloride); Y-site with leucovorin",
                ),
                # 400 mg/m2 over 120 min [NZ SRL mFOLFOX6]; in 250 mL [Onkopti 644].
                RegimenDrug("leucovorin", "400 mg/m2", "2 h", volume="250 mL"),
            ),
            label="oxaliplatin with leucovorin (Y-site)",
        ),
        Stage(
            # 400 mg/m2 IV [NZ SRL mFOLFOX6, at most 15 min]; IV push over 5 min [CCMB].
            (RegimenDrug("fluorouracil", "400 mg/m2", "5 min", "50 mg/mL", push=True),),
            label="fluorouracil IV push",
        ),
        Stage(
            # 2400 mg/m2 over 46 h (minimum 46 h) by pump [NZ SRL mFOLFOX6]; 50 mg/mL.
            (RegimenDrug("fluorouracil", "2400 mg/m2", "46 h", "50 mg/mL", pump="ambulatory"),),
            label="fluorouracil 46-hour ambulatory infusion",
        ),
    ),
    cycle="14 d",
    source=(
        "NZ Systemic Anti-Cancer Therapy Regimen Library, mFOLFOX6 "
        "(https://srl.org.nz/regimens/upper-gastrointestinal/57261000210100); "
        "Cancer Care Ontario regimen monograph MFOLFOX6; preparation: Onkopti protocol 644 "
        "and CancerCare Manitoba GAST FOLFOX-6 (push over 5 min)"
    ),
)

REGIMENS: dict[str, Regimen] = {"mfolfox6": MFOLFOX6}


def _regimen_key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).casefold()


def regimen_by_name(name: str) -> Regimen:
    """A regimen of the catalogue by name ("mFOLFOX6", "mfolfox-6"), else InputError."""
    found = REGIMENS.get(_regimen_key(name)) if isinstance(name, str) else None
    if found is None:
        known = ", ".join(r.name for r in REGIMENS.values())
        raise InputError("regimen", name, f"is not a known regimen (known: {known})")
    return found


# ---- one drug: dose, volume, rate, pump, DERS ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreparedDose:
    """A drug ready to load: its plan and pump, the DERS verdict and the numbers behind it.

    ``amount`` is the total dose in ``amount_unit`` (mg for chemotherapy) for this patient.
    """

    item: RegimenDrug
    entry: DrugEntry
    plan: Plan
    mechanism: Mechanism
    verdict: Verdict
    override: Override | None
    dose: Dose
    amount: float
    amount_unit: str
    concentration: Concentration
    volume_ml: float
    rate_ml_h: float
    over_s: float
    bsa_m2: float | None

    @property
    def role(self) -> PumpRole:
        return self.item.role

    @property
    def quantum_amount(self) -> float:
        """Drug amount in one stroke of the mechanism: the delivery resolution."""
        return self.mechanism.quantum_ml * self.concentration.per_ml

    def summary(self) -> dict[str, Any]:
        return {
            "drug": self.entry.drug,
            "dose": str(self.dose),
            "amount": self.amount,
            "amount_unit": self.amount_unit,
            "concentration": self.concentration.text,
            "volume_ml": self.volume_ml,
            "rate_ml_h": self.rate_ml_h,
            "over_min": self.over_s / 60.0,
            "push": self.item.push,
            "pump": self.role,
            "mechanism": self.mechanism.label,
        }

    def journal_info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "summary": self.summary(),
            "verdict": self.verdict.label,
            "findings": [f.message for f in self.verdict.crossed],
        }
        if self.override is not None:
            out["override_reason"] = self.override.reason
        return out


def _text_or_error(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(name, value if isinstance(value, int | float) else "", "is required")
    return value


def require_patient_size(patient: Patient, dose: Dose, drug: str) -> None:
    """A per-m2 dose needs weight and height (BSA); a per-kg dose needs weight."""
    basis = dose.unit.basis
    if basis is Basis.NONE:
        return
    needed = ("weight_kg",) if basis is Basis.KG else ("weight_kg", "height_cm")
    for name in needed:
        if getattr(patient, name) is None:
            label = name.removesuffix("_kg").removesuffix("_cm")
            what = "body surface area" if basis is Basis.M2 else "body weight"
            raise InputError(
                f"patient.{label}",
                "",
                f"is required: {drug} {dose} is dosed per {basis.value} of {what} "
                "(enter the patient's weight and height)",
            )


def _amount(dose: Dose, patient: Patient) -> float:
    """Total canonical amount (mg, units...) of a single dose for this patient."""
    return dose.canonical * basis_value(dose.unit.basis, patient.weight_kg, patient.bsa_m2)


def _choose_syringe(volume_ml: float, rate_ml_h: float, drug: str) -> Mechanism:
    """Smallest standard syringe that holds the dose and runs at the push rate."""
    for size in sorted(SYRINGE_INNER_DIAMETER_MM):
        mech = syringe(size)
        if size >= volume_ml * (1 - REL_TOL) and rate_ml_h <= mech.max_rate_ml_h * (1 + REL_TOL):
            return mech
    largest = max(SYRINGE_INNER_DIAMETER_MM)
    raise InputError(
        "volume",
        f"{format_number(volume_ml)} mL",
        f"{drug} at {format_number(rate_ml_h)} mL/h fits no syringe (largest {largest} mL); "
        "infuse it on a large-volume pump",
    )


def _concentration_for(
    item: RegimenDrug, entry: DrugEntry, dose: Dose, amount: float, over_s: float
) -> Concentration:
    given = [n for n in ("concentration", "volume", "flow_rate") if getattr(item, n) is not None]
    if len(given) > 1:
        raise InputError(
            given[1],
            getattr(item, given[1]),
            f"give one of concentration, volume or flow_rate, not {' and '.join(given)}",
        )
    canonical = parse_amount_unit(dose.unit.dimension.canonical_unit)
    if item.volume is not None:
        volume = parse_quantity(item.volume, Kind.VOLUME, "volume")
        return Concentration(amount, canonical, volume)
    if item.flow_rate is not None:
        flow = parse_quantity(item.flow_rate, Kind.FLOW, "flow_rate")
        return Concentration(amount, canonical, flow * over_s / 3600.0)
    if item.concentration is not None:
        conc = parse_concentration(item.concentration)
        check_same_dimension(dose.unit, conc)
        return conc
    listed = entry.parsed_concentrations()
    if len(listed) == 1:
        return listed[0]
    raise InputError(
        "concentration",
        "",
        f"{entry.drug}: give a concentration, the bag volume the dose is made up to, or a "
        "flow rate"
        + (f" (library concentrations: {', '.join(c.text for c in listed)})" if listed else ""),
    )


def prepare_dose(
    item: RegimenDrug,
    *,
    patient: Patient,
    library: Library,
    care_area: CareArea,
    ambulatory_pump: Mechanism | None = None,
    prior_amount: float = 0.0,
    reservoir_ml: float | None = None,
    override_reason: str | None = None,
) -> PreparedDose:
    """Compute, DERS-check and compile one drug of a regimen (nothing is delivered).

    ``ambulatory_pump``: the take-home pump (its ``reservoir_ml`` is the cassette capacity);
    default a 100 mL ambulatory pump. ``prior_amount``: canonical amount of the same drug
    already given within the library's cumulative window (earlier stages).
    ``reservoir_ml``: the volume filled into the ambulatory cassette; default exactly the
    dose volume. Raises InputError for input that cannot be computed, HardLimitError for a
    hard limit, SoftLimitError for a soft limit with no override reason.
    """
    drug = _text_or_error(item.drug, "drug")
    dose_text = _text_or_error(item.dose, "dose")
    dose = parse_dose(dose_text)
    if dose.unit.is_rate:
        raise InputError(
            "dose",
            dose_text,
            "give the total dose per administration (e.g. '2400 mg/m2' over '46 h'), "
            "not a dose rate: a rate typed as a total (mg/day read as mL/h) is a known "
            "fatal error with ambulatory fluorouracil",
        )
    over_s = parse_quantity(_text_or_error(item.over, "over"), Kind.DURATION, "over") * 60.0
    require_patient_size(patient, dose, drug)
    lookup = T.Context(lvp(), patient, library, care_area)
    entry = T.find_entry(lookup, drug, item.therapy)
    unit = T.parse_unit(entry)
    if unit.dimension is not dose.unit.dimension:
        raise InputError(
            "dose", dose_text, f"{entry.drug} is dosed in {unit.text} in {care_area.name}"
        )
    amount = _amount(dose, patient)
    conc = _concentration_for(item, entry, dose, amount, over_s)
    volume = amount / conc.per_ml
    rate = volume / (over_s / 3600.0)
    # DERS first: a tenfold dose is reported as the limit it crosses, not as a
    # volume that does not fit the pump.
    prior = 0.0
    cum_unit = entry.compiled.cumulative_unit
    if cum_unit is not None and prior_amount > 0:
        prior = prior_amount / cum_unit.amount.factor
    if item.push:
        program = Program(bolus=dose, concentration=conc, vtbi_ml=volume, prior_amount=prior)
    else:
        program = Program(
            dose=dose,
            concentration=conc,
            duration_min=over_s / 60.0,
            vtbi_ml=volume,
            prior_amount=prior,
        )
    verdict = check(program, entry, patient, care_area)
    override = verdict.accept(override_reason=override_reason)
    role = item.role
    if role == "syringe":
        mech = _choose_syringe(volume, rate, entry.drug)
    elif role == "ambulatory":
        pump = ambulatory_pump or ambulatory(100.0)
        if pump.kind is not PumpKind.AMBULATORY:
            raise InputError(
                "pump.kind",
                pump.kind.value,
                f"{entry.drug} over {item.over} is a take-home infusion: it needs an "
                "ambulatory pump",
            )
        capacity = pump.reservoir_ml if pump.reservoir_ml is not None else math.inf
        fill = volume if reservoir_ml is None else reservoir_ml
        if fill < volume * (1 - REL_TOL):
            raise InputError(
                "reservoir",
                f"{format_number(fill)} mL",
                f"holds less than the dose volume {format_number(volume)} mL",
            )
        if fill > capacity * (1 + REL_TOL):
            raise InputError(
                "reservoir_ml",
                capacity,
                f"{entry.drug} {dose} needs {format_number(volume)} mL at {conc.text}; "
                "use a larger reservoir or a stronger concentration",
            )
        mech = replace(
            pump,
            reservoir_ml=fill,
            label=f"{pump.label}, filled with {format_number(fill)} mL",
        )
    else:
        mech = lvp()
    if not mech.min_rate_ml_h * (1 - REL_TOL) <= rate <= mech.max_rate_ml_h * (1 + REL_TOL):
        raise InputError(
            "over",
            item.over,
            f"gives {format_number(rate)} mL/h for {format_number(volume)} mL, outside the "
            f"{mech.label} range {format_number(mech.min_rate_ml_h)} to "
            f"{format_number(mech.max_rate_ml_h)} mL/h",
        )
    ctx = T.Context(mech, patient, library, care_area)
    plan = Plan(
        "push" if item.push else "intermittent",
        [Step(StepKind.DOSE, rate, volume_ml=volume, label=f"{entry.drug} {dose}")],
        vtbi_ml=volume,
        kvo_at_end=False,
        drug=T.drug_info(entry, conc, unit),
        envelope=T.envelope(ctx, entry, conc),
        label=entry.label,
    )
    return PreparedDose(
        item=item,
        entry=entry,
        plan=plan,
        mechanism=mech,
        verdict=verdict,
        override=override,
        dose=dose,
        amount=amount,
        amount_unit=dose.unit.dimension.canonical_unit,
        concentration=conc,
        volume_ml=volume,
        rate_ml_h=rate,
        over_s=over_s,
        bsa_m2=patient.bsa_m2,
    )


def _context_parts(ctx: T.Context) -> tuple[Library, CareArea]:
    if ctx.library is None or ctx.care_area is None:
        raise InputError(
            "care_area", "", "an oncology infusion needs a drug library and a care area"
        )
    return ctx.library, ctx.care_area


def ambulatory_infusion(
    ctx: T.Context,
    *,
    drug: str,
    dose: str,
    over: str,
    concentration: str | None = None,
    flow_rate: str | None = None,
    reservoir: str | None = None,
    prior_dose: str | None = None,
    therapy: str | None = None,
    override_reason: str | None = None,
) -> PreparedDose:
    """A BSA-dosed take-home infusion on the ambulatory pump ``ctx.mechanism``.

    The total dose for the patient's BSA is made into a volume (``concentration``, or for
    an elastomeric device ``flow_rate`` x ``over``) that runs at volume / time so that the
    reservoir empties as the time ends. ``reservoir``: the volume filled (default exactly
    the dose volume). ``prior_dose``: the same drug already given this cycle (e.g. the
    400 mg/m2 push), counted against the library's cumulative limit.
    """
    library, area = _context_parts(ctx)
    prior = 0.0
    if prior_dose is not None:
        parsed = parse_dose(prior_dose, "prior_dose")
        require_patient_size(ctx.patient, parsed, drug)
        prior = _amount(parsed, ctx.patient)
    item = RegimenDrug(
        drug,
        dose,
        over,
        concentration=concentration,
        flow_rate=flow_rate,
        pump="ambulatory",
        therapy=therapy,
    )
    fill = parse_quantity(reservoir, Kind.VOLUME, "reservoir") if reservoir is not None else None
    return prepare_dose(
        item,
        patient=ctx.patient,
        library=library,
        care_area=area,
        ambulatory_pump=ctx.mechanism,
        prior_amount=prior,
        reservoir_ml=fill,
        override_reason=override_reason,
    )


def fluorouracil_46h(
    ctx: T.Context,
    *,
    dose: str = "2400 mg/m2",
    concentration: str | None = None,
    over: str = "46 h",
    flow_rate: str | None = None,
    reservoir: str | None = None,
    prior_dose: str | None = None,
    override_reason: str | None = None,
) -> PreparedDose:
    """The 46-hour fluorouracil take-home infusion of FOLFOX (2400 mg/m2 over 46 h).

    Default strength 50 mg/mL undiluted (the labelled strength). BSA 1.8 m2: 4320 mg; at 50 mg/mL 86.4 mL at 1.878 mL/h (PKPD_REFERENCE 7.3). For an
    elastomeric device give its nominal ``flow_rate`` (and ``concentration=None``): e.g.
    2 mL/h x 46 h = 92 mL, 4320 mg / 92 mL = 46.96 mg/mL, which the library's
    concentration limits then check.
    """
    if flow_rate is None and concentration is None:
        concentration = "50 mg/mL"  # the labelled strength, given undiluted
    return ambulatory_infusion(
        ctx,
        drug="fluorouracil",
        dose=dose,
        over=over,
        concentration=concentration,
        flow_rate=flow_rate,
        reservoir=reservoir,
        prior_dose=prior_dose,
        override_reason=override_reason,
    )


# ---- a whole regimen: all-or-nothing preparation ----------------------------------------------


@dataclass(frozen=True, slots=True)
class PreparedRegimen:
    """Every dose of a regimen computed and DERS-checked; nothing delivered yet."""

    regimen: Regimen
    stages: tuple[tuple[PreparedDose, ...], ...]
    patient: Patient
    care_area: CareArea
    override_reason: str | None

    @property
    def verdict(self) -> Level:
        return max(d.verdict.level for stage in self.stages for d in stage)

    @property
    def overrides(self) -> list[PreparedDose]:
        return [d for stage in self.stages for d in stage if d.override is not None]


def _where(stage: int, position: int, item: RegimenDrug) -> str:
    return f"stage {stage + 1} drug {position + 1} ({item.drug} {item.dose})"


def prepare_regimen(
    regimen: Regimen,
    *,
    patient: Patient,
    library: Library | None = None,
    care_area: CareArea | str,
    pump: Mechanism | None = None,
    override_reason: str | None = None,
) -> PreparedRegimen:
    """Check every step before anything starts (all or nothing).

    Raises InputError naming ``stages[i][j].field`` (or ``patient.height`` for a per-m2
    dose with no height), HardLimitError when any step crosses a hard limit, and
    SoftLimitError when a soft limit is crossed and ``override_reason`` is empty. The
    messages name the stage and drug. ``pump``: the take-home ambulatory pump.
    """
    library = library or sample_library()
    area = library.care_area(care_area) if isinstance(care_area, str) else care_area
    # Patient size first: one clear error before any per-drug message.
    for i, stage in enumerate(regimen.stages):
        for j, item in enumerate(stage.drugs):
            try:
                parsed = parse_dose(_text_or_error(item.dose, "dose"))
            except InputError as exc:
                raise InputError(f"stages[{i}][{j}].{exc.field}", exc.value, exc.rule) from None
            require_patient_size(patient, parsed, item.drug)
    given: dict[str, float] = {}
    prepared: list[tuple[PreparedDose, ...]] = []
    for i, stage in enumerate(regimen.stages):
        row = []
        for j, item in enumerate(stage.drugs):
            try:
                dose = prepare_dose(
                    item,
                    patient=patient,
                    library=library,
                    care_area=area,
                    ambulatory_pump=pump,
                    prior_amount=given.get(_drug_key(library, area, item), 0.0),
                    override_reason=override_reason,
                )
            except HardLimitError as exc:
                raise HardLimitError(
                    exc.verdict, f"{_where(i, j, item)}: {exc}; nothing was started"
                ) from None
            except SoftLimitError as exc:
                raise SoftLimitError(exc.verdict, f"{_where(i, j, item)}: {exc}") from None
            except InputError as exc:
                if exc.field.startswith("patient."):
                    raise
                raise InputError(f"stages[{i}][{j}].{exc.field}", exc.value, exc.rule) from None
            row.append(dose)
        for dose in row:  # drugs of one stage run together: count them after the stage
            key = dose.entry.drug
            given[key] = given.get(key, 0.0) + dose.amount
        prepared.append(tuple(row))
    return PreparedRegimen(regimen, tuple(prepared), patient, area, override_reason)


def _drug_key(library: Library, area: CareArea, item: RegimenDrug) -> str:
    """The library's drug name (aliases such as 5-FU resolved) for cumulative counting."""
    try:
        entry = library.find(area.id, item.drug, item.therapy)
    except InputError:
        entry = None
    return entry.drug if entry is not None else str(item.drug).casefold()


# ---- running a regimen ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegimenEvent:
    """Something that happens during a regimen at ``t_s`` (s from the start) on ``channel``,
    the position of a drug in the stage running then. Types as in scenario files: faults
    (occlusion, air, ...), pause/resume/stop, acknowledge/silence (``code``), mains."""

    t_s: float
    type: str
    channel: int = 0
    args: dict[str, Any] = field(default_factory=dict)


FAULTS = frozenset(
    {
        "occlusion",
        "clear_occlusion",
        "air",
        "clear_air",
        "disconnect",
        "reconnect",
        "upstream_occlusion",
        "clear_upstream_occlusion",
        "door_open",
        "door_close",
        "sensor_stuck",
        "sensor_ok",
        "battery_drain",
    }
)
CHANNEL_COMMANDS = frozenset({"pause", "resume", "stop", "start", "confirm_recovery"})


def channel_settings(area: CareArea | None, mech: Mechanism) -> ChannelSettings:
    """Channel settings from the care area (as a scenario pump gets them)."""
    if area is None:
        return ChannelSettings()
    return ChannelSettings(
        occlusion_limit_mmhg=area.occlusion_pressure_mmhg,
        air_limit_ul=area.air_in_line_ul,
        air_accumulated_limit_ul=4 * area.air_in_line_ul,
        kvo_rate_ml_h=area.kvo_rate_ml_h,
        reservoir_low_ml=min(1.0, 0.1 * (mech.reservoir_ml or 10.0)),
    )


@dataclass(slots=True)
class _Pump:
    stage: int
    role: PumpRole
    device: Device
    label: str


@dataclass(slots=True)
class _DrugRun:
    dose: PreparedDose
    stage: int
    position: int
    pump: _Pump
    channel: int
    started_s: float | None = None
    ended_s: float | None = None


def _alarm_by_code(code: object) -> Alarm:
    for alarm in Alarm:
        if alarm.code == code:
            return alarm
    raise InputError("code", code if isinstance(code, str) else "", "is not an alarm code")


class RegimenRun:
    """Pumps for a prepared regimen, driven stage by stage on one clock (s from the start).

    Each stage gets its own pumps: one device per pump role with a channel per drug
    (clinic pumps on mains, the take-home pump on battery). All devices share the regimen
    clock; a stage starts at the exact time the previous one completed.
    """

    def __init__(self, prepared: PreparedRegimen, *, battery_percent: float = 100.0) -> None:
        if not 0 < battery_percent <= 100:
            raise InputError("battery_percent", battery_percent, "must be in (0, 100]")
        self.prepared = prepared
        self.log: list[tuple[float, str | None, dict[str, Any]]] = []
        self.pumps: list[_Pump] = []
        self.drugs: list[list[_DrugRun]] = []
        for i, stage in enumerate(prepared.stages):
            runs: list[_DrugRun] = []
            for role in PUMP_ROLES:
                members = [(j, d) for j, d in enumerate(stage) if d.role == role]
                if not members:
                    continue
                mechs = [d.mechanism for _, d in members]
                label = f"stage {i + 1} {role}"
                device = Device(
                    mechs,
                    settings=[channel_settings(prepared.care_area, m) for m in mechs],
                    serial=f"SIM-R{i + 1}-{role.upper()}",
                    listener=self._listener(label),
                )
                device.battery.on_mains = role != "ambulatory"
                device.battery.charge_mah = device.battery.capacity_mah * battery_percent / 100.0
                pump = _Pump(i, role, device, label)
                self.pumps.append(pump)
                runs += [_DrugRun(d, i, j, pump, k) for k, (j, d) in enumerate(members)]
            runs.sort(key=lambda r: r.position)
            self.drugs.append(runs)
        self.current: int | None = None
        self.finished = False
        self.t_s = 0.0

    def _listener(self, label: str) -> Callable[[Record], None]:
        def record(r: Record) -> None:
            self.log.append((r.t_s, label, {"type": r.kind, **r.data}))

        return record

    def _note(self, t: float, kind: str, **data: Any) -> None:
        self.log.append((t, None, {"type": kind, **data}))

    # ---- stages ----------------------------------------------------------------------------

    def _start_stage(self, index: int, t: float) -> None:
        self.current = index
        stage = self.prepared.regimen.stages[index]
        self._note(
            t,
            "stage_started",
            stage=index + 1,
            label=stage.label,
            drugs=[r.dose.entry.drug for r in self.drugs[index]],
        )
        for run in self.drugs[index]:
            run.pump.device.program(run.channel, run.dose.plan, **run.dose.journal_info())
        for run in self.drugs[index]:
            run.pump.device.start(run.channel)
            run.started_s = t

    @staticmethod
    def _done(run: _DrugRun) -> bool:
        ch = run.pump.device.channels[run.channel]
        if ch.state is State.COMPLETE:
            return True
        # The take-home cassette holds exactly the dose: it empties as the dose ends.
        return ch.plan is not None and ch.program_ml >= run.dose.volume_ml * (1 - REL_TOL)

    def _update(self, t: float) -> None:
        """Record drugs that completed at ``t``; start the next stage when all have."""
        while self.current is not None and not self.finished:
            index = self.current
            last = index + 1 >= len(self.drugs)
            for run in self.drugs[index]:
                if run.ended_s is None and self._done(run):
                    run.ended_s = t
                    device = run.pump.device
                    # The nurse answers the end-of-infusion alarm and moves on.
                    if not last and device.board.is_active(Alarm.VTBI_COMPLETE, run.channel):
                        device.acknowledge(run.channel, Alarm.VTBI_COMPLETE)
            if any(run.ended_s is None for run in self.drugs[index]):
                return
            self._note(t, "stage_complete", stage=index + 1)
            if last:
                self.finished = True
                return
            self._start_stage(index + 1, t)

    # ---- events ----------------------------------------------------------------------------

    def apply(self, event: RegimenEvent) -> None:
        """Apply an event to the drug at ``event.channel`` of the stage running now."""
        t = self.t_s
        if self.current is None:
            self._note(t, "rejected", command=event.type, reason="no stage has started")
            return
        runs = self.drugs[self.current]
        if not 0 <= event.channel < len(runs):
            self._note(
                t,
                "rejected",
                command=event.type,
                channel=event.channel,
                reason=f"stage {self.current + 1} has {len(runs)} drug(s)",
            )
            return
        run = runs[event.channel]
        device, ch = run.pump.device, run.channel
        kind = event.type
        try:
            if kind in CHANNEL_COMMANDS:
                getattr(device, kind)(ch)
            elif kind in ("mains_on", "mains_off"):
                device.set_mains(kind == "mains_on")
            elif kind in ("acknowledge", "silence"):
                getattr(device, kind)(ch, _alarm_by_code(event.args.get("code")))
            elif kind == "air":
                volume = event.args.get("volume_ul")
                device.inject(ch, "air", volume_ul=300.0 if volume is None else float(volume))
            elif kind == "battery_drain":
                device.inject(
                    ch, "battery_drain", extra_ma=float(event.args.get("extra_ma") or 500)
                )
            elif kind in FAULTS:
                device.inject(ch, kind)
            else:
                self._note(
                    t,
                    "rejected",
                    command=kind,
                    channel=event.channel,
                    reason=f"{kind} is not available during a regimen: every dose is fixed "
                    "by the regimen and checked before it starts",
                )
        except CommandRejected:
            pass  # recorded by the device as a "rejected" event; the regimen goes on
        except InputError as exc:
            self._note(t, "rejected", command=kind, channel=event.channel, reason=exc.message)

    # ---- time ------------------------------------------------------------------------------

    def run(self, duration_s: float, events: Sequence[RegimenEvent] = ()) -> dict[str, Any]:
        """Start stage 1 at 0, run to ``duration_s`` applying ``events``; return the report."""
        if not (math.isfinite(duration_s) and 0 < duration_s <= 366 * 86400):
            raise InputError("duration", duration_s, "must be between 0 and 366 days")
        queue = sorted(events, key=lambda e: e.t_s)
        for e in queue:
            if not 0 <= e.t_s <= duration_s:
                raise InputError("events.at", e.t_s, "must be within the scenario duration")
        self._start_stage(0, 0.0)
        self._update(0.0)
        qi, stalled = 0, 0
        while True:
            next_event = queue[qi].t_s if qi < len(queue) else math.inf
            nxt = min(*(p.device.next_event_s() for p in self.pumps), next_event, duration_s)
            nxt = max(nxt, self.t_s)
            for p in self.pumps:
                p.device.advance_to(nxt)
            stalled = stalled + 1 if nxt <= self.t_s else 0
            if stalled > 10000:
                raise RuntimeError(f"regimen made no progress at t={nxt} s")
            self.t_s = nxt
            self._update(nxt)
            while qi < len(queue) and queue[qi].t_s <= nxt:
                self.apply(queue[qi])
                qi += 1
            if nxt >= duration_s and qi >= len(queue):
                break
        return self.report(duration_s)

    # ---- report ----------------------------------------------------------------------------

    def _drug_row(self, run: _DrugRun) -> dict[str, Any]:
        dose = run.dose
        ch = run.pump.device.channels[run.channel]
        delivered_ml = ch.pumped_ml if run.started_s is not None else 0.0
        delivered = delivered_ml * dose.concentration.per_ml
        mass = dose.amount_unit == "mg"
        return {
            "stage": run.stage + 1,
            "drug": dose.entry.drug,
            "dose": str(dose.dose),
            "dose_mg": dose.amount if mass else None,
            "delivered_mg": delivered if mass else None,
            "amount_unit": dose.amount_unit,
            "dose_amount": dose.amount,
            "delivered_amount": delivered,
            "concentration": dose.concentration.text,
            "volume_ml": dose.volume_ml,
            "delivered_ml": delivered_ml,
            "patient_ml": ch.patient_ml,
            "rate_ml_h": dose.rate_ml_h,
            "over_min": dose.over_s / 60.0,
            "push": dose.item.push,
            "pump": run.pump.label,
            "mechanism": dose.mechanism.label,
            "channel": run.channel,
            "started_min": None if run.started_s is None else round(run.started_s / 60.0, 6),
            "ended_min": None if run.ended_s is None else round(run.ended_s / 60.0, 6),
            "state": ch.state.value if run.started_s is not None else "not started",
            "verdict": dose.verdict.label,
            "override": dose.override.reason if dose.override else None,
        }

    def report(self, duration_s: float) -> dict[str, Any]:
        rows = [self._drug_row(r) for stage in self.drugs for r in stage]
        events = [
            {"at_min": round(t / 60.0, 6), "pump": label, **data} for t, label, data in self.log
        ]
        alarms = [
            {
                "at_min": e["at_min"],
                "code": e["code"],
                "priority": e["priority"],
                "channel": e.get("channel"),
                "pump": e["pump"],
            }
            for e in events
            if e["type"] == "alarm"
        ]
        take_home = [r for stage in self.drugs for r in stage if r.dose.role == "ambulatory"]
        delivered_dose = None
        if take_home:
            row = self._drug_row(take_home[-1])
            delivered_dose = {"value": row["delivered_amount"], "unit": row["amount_unit"]}
        index = self.current if self.current is not None else 0
        focus = self.drugs[index][0]
        prepared = self.prepared
        overrides = prepared.overrides
        return {
            "delivered_ml": sum(r["delivered_ml"] for r in rows),
            "delivered_dose": delivered_dose,
            "alarms": alarms,
            "events": events,
            "final_state": focus.pump.device.channels[focus.channel].state.value,
            "verdict": prepared.verdict.label,
            "override": overrides[0].override.reason
            if overrides and overrides[0].override
            else None,
            "summary": {
                "regimen": prepared.regimen.name,
                "bsa_m2": prepared.patient.bsa_m2,
                "stages": len(prepared.stages),
                "cycle": prepared.regimen.cycle,
            },
            "regimen": {
                "name": prepared.regimen.name,
                "source": prepared.regimen.source,
                "cycle": prepared.regimen.cycle,
                "bsa_m2": prepared.patient.bsa_m2,
                "complete": all(r.ended_s is not None for s in self.drugs for r in s),
                "current_stage": index + 1,
                "stages": rows,
            },
            "pumps": [
                {
                    "pump": p.label,
                    "stage": p.stage + 1,
                    "role": p.role,
                    "battery_percent": p.device.battery.percent,
                    "on_mains": p.device.battery.on_mains,
                    "channels": [ch.status() for ch in p.device.channels],
                }
                for p in self.pumps
            ],
            "duration_min": duration_s / 60.0,
        }


def run_prepared(
    prepared: PreparedRegimen,
    duration_s: float,
    events: Sequence[RegimenEvent] = (),
    *,
    battery_percent: float = 100.0,
) -> dict[str, Any]:
    """Run a prepared regimen and return its report."""
    return RegimenRun(prepared, battery_percent=battery_percent).run(duration_s, events)


__all__ = [
    "MFOLFOX6",
    "REGIMENS",
    "PreparedDose",
    "PreparedRegimen",
    "Regimen",
    "RegimenDrug",
    "RegimenEvent",
    "RegimenRun",
    "Stage",
    "ambulatory_infusion",
    "fluorouracil_46h",
    "prepare_dose",
    "prepare_regimen",
    "regimen_by_name",
    "require_patient_size",
    "run_prepared",
]
