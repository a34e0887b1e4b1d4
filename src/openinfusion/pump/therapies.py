"""Therapies: from what a clinician programs to a DERS-checked :class:`Plan`.

Each builder parses the clinician's quantities once, checks them against the drug library
(DERS) for the care area and patient, demands an override reason for soft limits, refuses
hard limits, and compiles the therapy into plan steps with an :class:`Envelope` of hard
limits that the engine enforces by itself afterwards. Quantities are text as typed
("0.1 mcg/kg/min", "50 mL", "2 h"), numbers in canonical units once parsed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from openinfusion.errors import InputError
from openinfusion.library import (
    CareArea,
    DrugEntry,
    Level,
    Library,
    Override,
    PcaProgram,
    Program,
    Verdict,
    check,
    check_basic_infusion,
)
from openinfusion.patient import Patient
from openinfusion.pump.mechanics import Mechanism
from openinfusion.pump.plan import DrugInfo, Envelope, PcaSettings, Plan, Step, StepKind
from openinfusion.units import (
    Concentration,
    Dimension,
    Dose,
    DoseUnit,
    Kind,
    basis_value,
    dose_to_rate_ml_h,
    dose_to_volume_ml,
    parse_concentration,
    parse_dose,
    parse_quantity,
    rate_to_dose,
)


@dataclass(frozen=True, slots=True)
class Context:
    """Where a therapy is programmed: library and care area, patient, and the mechanism."""

    mechanism: Mechanism
    patient: Patient = field(default_factory=Patient)
    library: Library | None = None
    care_area: CareArea | None = None


@dataclass(slots=True)
class Programmed:
    """A plan ready to load, the DERS verdict behind it and the override if one was needed."""

    plan: Plan
    verdict: Verdict | None
    override: Override | None
    entry: DrugEntry | None
    concentration: Concentration | None
    dose_unit: DoseUnit | None
    summary: dict[str, Any] = field(default_factory=dict)

    def journal_info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": self.summary}
        if self.verdict is not None:
            out["verdict"] = self.verdict.label
            out["findings"] = [f.message for f in self.verdict.crossed]
        if self.override is not None:
            out["override_reason"] = self.override.reason
        from openinfusion.pump.ders_log import ders_record

        out["ders"] = ders_record(self)
        return out


def authorize(verdict: Verdict, override_reason: str | None) -> Override | None:
    """Accept a verdict: ok passes, soft needs a reason, hard raises (nothing programmed)."""
    return verdict.accept(override_reason=override_reason)


# ---- helpers -----------------------------------------------------------------------------


def _positive(text: str | None, kind: Kind, field_name: str) -> float | None:
    """Parse a quantity that must be greater than zero (a zero duration would divide by
    zero, a negative one would run backwards): the error names the field."""
    if text is None:
        return None
    value = parse_quantity(text, kind, field_name)
    if not value > 0:
        raise InputError(field_name, text, "must be greater than zero")
    return value


def _duration_s(text: str | None, field_name: str) -> float | None:
    minutes = _positive(text, Kind.DURATION, field_name)
    return minutes * 60.0 if minutes is not None else None


def _volume_ml(text: str | None, field_name: str) -> float | None:
    return _positive(text, Kind.VOLUME, field_name)


def _rate_ml_h(text: str | None, field_name: str) -> float | None:
    return _positive(text, Kind.FLOW, field_name)


def find_entry(ctx: Context, drug: str, therapy: str | None = None) -> DrugEntry:
    if ctx.library is None or ctx.care_area is None:
        raise InputError("drug", drug, "needs a drug library and a care area")
    entry = ctx.library.find(ctx.care_area.id, drug, therapy)
    if entry is None:
        raise InputError(
            "drug",
            drug,
            f"is not in the library for {ctx.care_area.name}; "
            "program a basic infusion (rate only, no drug) or choose another drug",
        )
    return entry


def _concentration(entry: DrugEntry, text: str | None) -> Concentration | None:
    if text is not None:
        return parse_concentration(text)
    concs = entry.parsed_concentrations()
    if len(concs) == 1:
        return concs[0]
    if parse_unit(entry).dimension is Dimension.VOLUME:
        return None
    if not concs:
        raise InputError("concentration", "", f"give the concentration for {entry.label}")
    raise InputError("concentration", "", "choose one of " + ", ".join(c.text for c in concs))


def parse_unit(entry: DrugEntry) -> DoseUnit:
    return entry.compiled.unit


def drug_info(entry: DrugEntry, conc: Concentration | None, unit: DoseUnit) -> DrugInfo | None:
    if conc is None:
        return None
    return DrugInfo(
        name=entry.drug,
        per_ml=conc.per_ml,
        amount_unit=conc.dimension.canonical_unit,
        dose_unit=unit.text,
    )


def envelope(ctx: Context, entry: DrugEntry | None, conc: Concentration | None) -> Envelope:
    """Hard limits the engine enforces by itself (derived from library and care area)."""
    max_rate = ctx.mechanism.max_rate_ml_h
    if ctx.care_area is not None:
        max_rate = min(max_rate, ctx.care_area.max_rate_ml_h)
    if entry is None:
        if ctx.care_area is not None and ctx.care_area.basic_infusion.rate_ml_h.hard_max:
            max_rate = min(max_rate, ctx.care_area.basic_infusion.rate_ml_h.hard_max)
        return Envelope(max_rate_ml_h=max_rate)
    weight, bsa = ctx.patient.weight_kg, ctx.patient.bsa_m2
    limits = entry.limits
    unit = parse_unit(entry)
    per_ml = 1.0 if unit.dimension is Dimension.VOLUME else (conc.per_ml if conc else None)
    if limits.rate_ml_h.hard_max is not None:
        max_rate = min(max_rate, limits.rate_ml_h.hard_max)
    if unit.is_rate and limits.dose.hard_max is not None and per_ml:
        size = basis_value(unit.basis, weight, bsa)
        max_rate = min(max_rate, limits.dose.hard_max * unit.factor * size / per_ml)
    max_bolus = math.inf
    if limits.bolus is not None and limits.bolus.hard_max is not None and per_ml:
        bunit = entry.compiled.bolus_unit
        assert bunit is not None
        max_bolus = (
            limits.bolus.hard_max * bunit.factor * basis_value(bunit.basis, weight, bsa) / per_ml
        )
    window_s, window_max = None, math.inf
    if entry.cumulative is not None:
        cum = entry.compiled.cumulative_unit
        assert cum is not None
        window_s = entry.cumulative.window_h * 3600.0
        window_max = entry.cumulative.max * cum.factor * basis_value(cum.basis, weight, bsa)
    return Envelope(
        max_rate_ml_h=max_rate,
        max_bolus_ml=max_bolus,
        window_s=window_s,
        window_max_amount=window_max,
    )


# ---- continuous family -----------------------------------------------------------------------


def continuous(
    ctx: Context,
    *,
    drug: str | None = None,
    therapy: str | None = None,
    concentration: str | None = None,
    dose: str | None = None,
    rate: str | None = None,
    vtbi: str | None = None,
    duration: str | None = None,
    loading: str | None = None,
    loading_over: str = "20 min",
    delay: str | None = None,
    kvo: bool = True,
    override_reason: str | None = None,
) -> Programmed:
    """Continuous infusion by rate or by dose (plain, per kg, per m2), with an optional VTBI,
    volume over time (``vtbi`` + ``duration``), loading dose, delayed start and KVO at end."""
    vtbi_ml = _volume_ml(vtbi, "vtbi")
    duration_s = _duration_s(duration, "duration")
    rate_ml_h = _rate_ml_h(rate, "rate")
    if duration_s is not None:
        if vtbi_ml is None:
            raise InputError("duration", duration, "needs a vtbi (volume over time)")
        if rate_ml_h is not None or dose is not None:
            raise InputError(
                "duration", duration, "give a volume over time, or a rate/dose, not both"
            )
        rate_ml_h = vtbi_ml / (duration_s / 3600.0)
    steps: list[Step] = []
    delay_s = _duration_s(delay, "delay")
    if delay_s is not None:
        steps.append(Step(StepKind.DELAY, 0.0, duration_s=delay_s, label="delayed start"))
    if drug is None:
        if rate_ml_h is None:
            raise InputError("rate", "", "a basic infusion (no drug) is programmed in mL/h")
        if dose is not None or loading is not None:
            raise InputError("dose", dose or loading, "a basic infusion has no drug dose")
        verdict = (
            check_basic_infusion(rate_ml_h, ctx.care_area, ctx.patient, vtbi_ml)
            if ctx.care_area is not None
            else None
        )
        override = authorize(verdict, override_reason) if verdict is not None else None
        steps.append(Step(StepKind.CONTINUOUS, rate_ml_h, label="basic infusion"))
        kvo_rate = ctx.care_area.kvo_rate_ml_h if ctx.care_area else 1.0
        plan = Plan(
            "continuous",
            steps,
            vtbi_ml=vtbi_ml,
            kvo_at_end=kvo,
            kvo_rate_ml_h=kvo_rate,
            envelope=envelope(ctx, None, None),
            label="basic infusion",
        )
        return Programmed(
            plan,
            verdict,
            override,
            None,
            None,
            None,
            {"rate_ml_h": rate_ml_h, "basic_infusion": True},
        )
    entry = find_entry(ctx, drug, therapy)
    unit = parse_unit(entry)
    conc = _concentration(entry, concentration)
    parsed_dose = parse_dose(dose) if dose is not None else None
    if parsed_dose is None and rate_ml_h is None:
        raise InputError("dose", "", "give a dose or a rate")
    loading_dose = parse_dose(loading, "loading") if loading else None
    program = Program(
        dose=parsed_dose,
        rate_ml_h=rate_ml_h,  # with a dose too, DERS cross-checks them (tenfold errors)
        concentration=conc,
        loading=loading_dose,
        vtbi_ml=vtbi_ml,
    )
    verdict = check(program, entry, ctx.patient, ctx.care_area)
    override = authorize(verdict, override_reason)
    if parsed_dose is not None:
        rate_ml_h = verdict.computed.get("rate_ml_h") or dose_to_rate_ml_h(
            parsed_dose, conc, ctx.patient.weight_kg, ctx.patient.bsa_m2
        )
    assert rate_ml_h is not None
    if loading_dose is not None:
        volume = dose_to_volume_ml(loading_dose, conc, ctx.patient.weight_kg, ctx.patient.bsa_m2)
        over_s = _duration_s(loading_over, "loading_over")
        assert over_s is not None
        steps.append(
            Step(
                StepKind.LOADING, volume / (over_s / 3600.0), volume_ml=volume, label="loading dose"
            )
        )
    steps.append(Step(StepKind.CONTINUOUS, rate_ml_h, label="maintenance"))
    kvo_rate = ctx.care_area.kvo_rate_ml_h if ctx.care_area else 1.0
    plan = Plan(
        "continuous",
        steps,
        vtbi_ml=vtbi_ml,
        kvo_at_end=kvo,
        kvo_rate_ml_h=kvo_rate,
        drug=drug_info(entry, conc, unit),
        envelope=envelope(ctx, entry, conc),
        label=entry.label,
    )
    shown = parsed_dose or rate_to_dose(
        rate_ml_h, conc, unit, ctx.patient.weight_kg, ctx.patient.bsa_m2
    )
    return Programmed(
        plan,
        verdict,
        override,
        entry,
        conc,
        shown.unit,
        {
            "rate_ml_h": rate_ml_h,
            "dose": shown.value,
            "dose_unit": shown.unit.text,
            "concentration": conc.text if conc else None,
        },
    )


def dose_rate_ml_h(programmed: Programmed, ctx: Context, dose: Dose) -> float:
    """mL/h for ``dose`` at the programmed concentration (for titration)."""
    return dose_to_rate_ml_h(
        dose, programmed.concentration, ctx.patient.weight_kg, ctx.patient.bsa_m2
    )


def titration(
    ctx: Context,
    programmed: Programmed,
    *,
    dose: str | None = None,
    rate: str | None = None,
    override_reason: str | None = None,
) -> tuple[float, Verdict | None]:
    """DERS re-check of a new dose or rate for a running infusion; returns (mL/h, verdict)."""
    if programmed.entry is None:
        rate_ml_h = _rate_ml_h(rate, "rate")
        if rate_ml_h is None:
            raise InputError("rate", dose or "", "a basic infusion is titrated in mL/h")
        verdict = (
            check_basic_infusion(rate_ml_h, ctx.care_area, ctx.patient) if ctx.care_area else None
        )
        if verdict is not None:
            authorize(verdict, override_reason)
        return rate_ml_h, verdict
    parsed = parse_dose(dose) if dose else None
    rate_ml_h = _rate_ml_h(rate, "rate")
    if parsed is None and rate_ml_h is None:
        raise InputError("titrate", "", "give the new dose or the new rate")
    program = Program(dose=parsed, rate_ml_h=rate_ml_h, concentration=programmed.concentration)
    verdict = check(program, programmed.entry, ctx.patient, ctx.care_area)
    authorize(verdict, override_reason)
    if parsed is not None:
        rate_ml_h = dose_rate_ml_h(programmed, ctx, parsed)
    assert rate_ml_h is not None
    return rate_ml_h, verdict


def bolus_volume(
    ctx: Context, programmed: Programmed, dose: str, override_reason: str | None = None
) -> tuple[float, Verdict]:
    """DERS check of a clinician bolus from a running infusion; returns (mL, verdict)."""
    if programmed.entry is None:
        raise InputError("bolus", dose, "a basic infusion has no drug to bolus; use a volume")
    parsed = parse_dose(dose, "bolus")
    verdict = check(
        Program(bolus=parsed, concentration=programmed.concentration),
        programmed.entry,
        ctx.patient,
        ctx.care_area,
    )
    authorize(verdict, override_reason)
    volume = dose_to_volume_ml(
        parsed, programmed.concentration, ctx.patient.weight_kg, ctx.patient.bsa_m2
    )
    return volume, verdict


def secondary_infusion(
    ctx: Context,
    *,
    drug: str,
    dose: str,
    over: str,
    concentration: str | None = None,
    therapy: str | None = None,
    override_reason: str | None = None,
) -> tuple[float, float, Verdict]:
    """A piggyback dose of another drug (e.g. an antibiotic) over the primary: DERS-checked
    like an intermittent dose; returns (volume mL, rate mL/h, verdict)."""
    entry = find_entry(ctx, drug, therapy)
    conc = _concentration(entry, concentration)
    parsed = parse_dose(dose)
    over_s = _duration_s(over, "over")
    assert over_s is not None
    volume = dose_to_volume_ml(parsed, conc, ctx.patient.weight_kg, ctx.patient.bsa_m2)
    verdict = check(
        Program(dose=parsed, concentration=conc, duration_min=over_s / 60.0, vtbi_ml=volume),
        entry,
        ctx.patient,
        ctx.care_area,
    )
    authorize(verdict, override_reason)
    return volume, volume / (over_s / 3600.0), verdict


_STEP_FIELDS = frozenset({"rate", "dose", "volume", "duration"})


def multistep(
    ctx: Context,
    steps: list[dict[str, str]],
    *,
    drug: str | None = None,
    concentration: str | None = None,
    kvo: bool = True,
    override_reason: str | None = None,
) -> Programmed:
    """Several steps, each ``{"rate" or "dose", "volume" or "duration"}``; every step is
    DERS-checked and the worst verdict governs."""
    if not steps:
        raise InputError("steps", "[]", "a multistep program needs at least one step")
    compiled: list[Step] = []
    verdicts: list[Verdict] = []
    override: Override | None = None
    first: Programmed | None = None
    for i, spec in enumerate(steps):
        unknown = sorted(set(spec) - _STEP_FIELDS)
        if unknown:
            raise InputError(
                f"steps[{i}].{unknown[0]}",
                spec[unknown[0]],
                "is not a step field (rate, dose, volume, duration)",
            )
        try:
            one = continuous(
                ctx,
                drug=drug,
                concentration=concentration,
                dose=spec.get("dose"),
                rate=spec.get("rate"),
                override_reason=override_reason,
                kvo=kvo,
            )
        except InputError as exc:
            if type(exc) is not InputError:
                raise
            raise InputError(f"steps[{i}].{exc.field}", exc.value, exc.rule) from None
        first = first or one
        override = override or one.override
        if one.verdict is not None:
            verdicts.append(one.verdict)
        volume = _volume_ml(spec.get("volume"), f"steps[{i}].volume")
        duration_s = _duration_s(spec.get("duration"), f"steps[{i}].duration")
        if volume is None and duration_s is None and i < len(steps) - 1:
            raise InputError(
                f"steps[{i}]",
                "",
                "needs a volume or a duration (only the last step may run until stopped)",
            )
        rate = one.plan.steps[-1].rate_ml_h
        compiled.append(Step(StepKind.CONTINUOUS, rate, volume, duration_s, f"step {i + 1}"))
    assert first is not None
    plan = Plan(
        "multistep",
        compiled,
        kvo_at_end=kvo,
        kvo_rate_ml_h=first.plan.kvo_rate_ml_h,
        drug=first.plan.drug,
        envelope=first.plan.envelope,
        label=first.plan.label,
    )
    worst = max(verdicts, key=lambda v: v.level) if verdicts else None
    return Programmed(
        plan,
        worst,
        override,
        first.entry,
        first.concentration,
        first.dose_unit,
        {"steps": len(compiled)},
    )


def ramp_taper(
    ctx: Context,
    *,
    volume: str,
    duration: str,
    ramp: str,
    taper: str,
    increments: int = 4,
    drug: str | None = None,
    concentration: str | None = None,
    override_reason: str | None = None,
) -> Programmed:
    """Ramp up, plateau, taper down (TPN): ``volume`` over ``duration`` in total.

    Ramp and taper run in ``increments`` equal steps at k/(n+1) of the plateau rate, so each
    averages half of it and the plateau rate is V / (T_plateau + (T_ramp + T_taper) / 2).
    """
    total_ml = _volume_ml(volume, "volume")
    total_s, ramp_s, taper_s = (
        _duration_s(duration, "duration"),
        _duration_s(ramp, "ramp"),
        _duration_s(taper, "taper"),
    )
    assert (
        total_ml is not None and total_s is not None and ramp_s is not None and taper_s is not None
    )
    plateau_s = total_s - ramp_s - taper_s
    if plateau_s <= 0:
        raise InputError("duration", duration, "must be longer than ramp + taper")
    if not 1 <= increments <= 20:
        raise InputError("increments", increments, "must be 1 to 20")
    plateau_rate = total_ml / ((plateau_s + (ramp_s + taper_s) / 2.0) / 3600.0)
    head = continuous(
        ctx,
        drug=drug,
        concentration=concentration,
        rate=f"{plateau_rate} mL/h",
        vtbi=volume,
        override_reason=override_reason,
    )
    n = increments
    steps = [
        Step(
            StepKind.RAMP, plateau_rate * k / (n + 1), duration_s=ramp_s / n, label=f"ramp {k}/{n}"
        )
        for k in range(1, n + 1)
    ]
    steps.append(Step(StepKind.PLATEAU, plateau_rate, duration_s=plateau_s, label="plateau"))
    steps += [
        Step(
            StepKind.TAPER,
            plateau_rate * (n + 1 - k) / (n + 1),
            duration_s=taper_s / n,
            label=f"taper {k}/{n}",
        )
        for k in range(1, n + 1)
    ]
    plan = Plan(
        "ramp_taper",
        steps,
        vtbi_ml=total_ml,
        kvo_at_end=True,
        kvo_rate_ml_h=head.plan.kvo_rate_ml_h,
        drug=head.plan.drug,
        envelope=head.plan.envelope,
        label=head.plan.label,
    )
    return Programmed(
        plan,
        head.verdict,
        head.override,
        head.entry,
        head.concentration,
        head.dose_unit,
        {"plateau_rate_ml_h": plateau_rate, "volume_ml": total_ml},
    )


def intermittent(
    ctx: Context,
    *,
    drug: str,
    dose: str,
    every: str,
    over: str,
    concentration: str | None = None,
    doses: int | None = None,
    therapy: str | None = None,
    override_reason: str | None = None,
) -> Programmed:
    """A dose every N hours, each infused over a set duration (antibiotics)."""
    entry = find_entry(ctx, drug, therapy)
    unit = parse_unit(entry)
    conc = _concentration(entry, concentration)
    parsed = parse_dose(dose)
    interval_s, over_s = _duration_s(every, "every"), _duration_s(over, "over")
    assert interval_s is not None and over_s is not None
    if over_s >= interval_s:
        raise InputError("over", over, f"must be shorter than the interval {every}")
    if doses is not None and not 1 <= doses <= 1000:
        raise InputError("doses", doses, "must be 1 to 1000")
    volume = dose_to_volume_ml(parsed, conc, ctx.patient.weight_kg, ctx.patient.bsa_m2)
    program = Program(dose=parsed, concentration=conc, duration_min=over_s / 60.0, vtbi_ml=volume)
    verdict = check(program, entry, ctx.patient, ctx.care_area)
    override = authorize(verdict, override_reason)
    rate = volume / (over_s / 3600.0)
    cycle = [
        Step(StepKind.DOSE, rate, volume_ml=volume, label="dose"),
        Step(StepKind.WAIT, 0.0, duration_s=interval_s - over_s, label="until next dose"),
    ]
    count = doses or 1
    steps = cycle * count if doses is not None else cycle
    plan = Plan(
        "intermittent",
        steps[:-1] if doses is not None else steps,
        repeat_from=None if doses is not None else 0,
        kvo_at_end=False,
        drug=drug_info(entry, conc, unit),
        envelope=envelope(ctx, entry, conc),
        label=entry.label,
    )
    return Programmed(
        plan,
        verdict,
        override,
        entry,
        conc,
        unit,
        {
            "dose": parsed.value,
            "dose_unit": parsed.unit.text,
            "volume_ml": volume,
            "rate_ml_h": rate,
            "every_h": interval_s / 3600.0,
        },
    )


def pca(
    ctx: Context,
    *,
    drug: str,
    concentration: str | None = None,
    demand_dose: str,
    lockout: str,
    basal: str | None = None,
    limit_1h: str | None = None,
    limit_4h: str | None = None,
    loading: str | None = None,
    bolus_rate: str = "150 mL/h",
    override_reason: str | None = None,
) -> Programmed:
    """Patient-controlled analgesia: demand dose, lockout, optional basal and loading dose,
    one-hour and four-hour limits (Open PCA Pump R5.2; Alaris PCA max dose + window)."""
    entry = find_entry(ctx, drug)
    if entry.pca is None:
        raise InputError(
            "drug", drug, f"has no PCA entry in {ctx.care_area.name if ctx.care_area else ''}"
        )
    conc = _concentration(entry, concentration)
    if conc is None:
        raise InputError("concentration", "", "PCA needs a drug concentration")
    demand = parse_dose(demand_dose, "demand_dose")
    lockout_s = _duration_s(lockout, "lockout")
    bolus_rate_ml_h = _rate_ml_h(bolus_rate, "bolus_rate")
    assert lockout_s is not None and bolus_rate_ml_h is not None
    basal_dose = parse_dose(basal, "basal") if basal else None
    if basal_dose is not None and basal_dose.value == 0:
        basal_dose = None
    lim1 = parse_dose(limit_1h, "limit_1h") if limit_1h else None
    lim4 = parse_dose(limit_4h, "limit_4h") if limit_4h else None
    window_limit, window_h = (lim4, 4.0) if lim4 is not None else (lim1, 1.0)
    library_window = entry.pca.max_dose_window_h
    pca_program = PcaProgram(
        demand,
        lockout_s / 60.0,
        window_limit if window_h == library_window else None,
        library_window if window_h == library_window else None,
    )
    verdict = check(
        Program(
            dose=basal_dose,
            concentration=conc,
            pca=pca_program,
            loading=parse_dose(loading, "loading") if loading else None,
        ),
        entry,
        ctx.patient,
        ctx.care_area,
    )
    override = authorize(verdict, override_reason)
    weight, bsa = ctx.patient.weight_kg, ctx.patient.bsa_m2
    demand_ml = dose_to_volume_ml(demand, conc, weight, bsa)

    def amount(dose_: Dose | None) -> float:
        if dose_ is None:
            return math.inf
        return dose_.canonical * basis_value(dose_.unit.basis, weight, bsa)

    steps = []
    if loading:
        load_ml = dose_to_volume_ml(parse_dose(loading, "loading"), conc, weight, bsa)
        steps.append(
            Step(
                StepKind.LOADING,
                bolus_rate_ml_h,
                volume_ml=load_ml,
                label="loading dose",
            )
        )
    basal_rate = dose_to_rate_ml_h(basal_dose, conc, weight, bsa) if basal_dose else 0.0
    steps.append(Step(StepKind.CONTINUOUS, basal_rate, label="basal"))
    settings = PcaSettings(
        demand_ml=demand_ml,
        lockout_s=lockout_s,
        bolus_rate_ml_h=bolus_rate_ml_h,
        limits=tuple((w, amount(d)) for w, d in ((3600.0, lim1), (14400.0, lim4)) if d is not None),
    )
    unit = parse_unit(entry)
    plan = Plan(
        "pca",
        steps,
        kvo_at_end=False,
        drug=drug_info(entry, conc, unit),
        envelope=envelope(ctx, entry, conc),
        pca=settings,
        label=entry.label,
    )
    return Programmed(
        plan,
        verdict,
        override,
        entry,
        conc,
        unit,
        {"demand_ml": demand_ml, "lockout_min": lockout_s / 60.0, "basal_ml_h": basal_rate},
    )


def verdict_level(programmed: Programmed) -> Level:
    return programmed.verdict.level if programmed.verdict is not None else Level.OK
