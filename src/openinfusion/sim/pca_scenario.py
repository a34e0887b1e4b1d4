"""PCA trial scenarios: the program, the cohort, the pain, demand and breathing models, faults.

A scenario is JSON or YAML (guide: docs/pca-trials.md)::

    {"duration": "48 h",
     "care_area": "Adult Med-Surg",
     "seed": 1,
     "program": {"drug": "morphine", "concentration": "1 mg/mL", "demand_dose": "1 mg",
                 "lockout": "10 min", "basal": "0 mg/h", "limit_4h": "30 mg"},
     "patients": {"n": 100},
     "demand": {"model": "pain", "threshold_nrs": 4, "presses_per_h": 4},
     "faults": [{"type": "occlusion", "from": "20 h", "to": "21 h", "patients": [0]}]}

The program takes the same strings as a pump scenario's PCA program (docs/pump.md) and is
built and DERS-checked per patient by the pump's own builder. :func:`prepare` turns the
strings into numbers once; every problem names its field (``demand.times[2]``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from openinfusion.errors import InputError, InputErrors
from openinfusion.patient import Patient
from openinfusion.units import Kind, parse_quantity

MAX_DAYS = 14
# Traces are kept for every patient-minute: this bounds memory (about 60 bytes each).
MAX_PATIENT_MINUTES = 5_000_000
MORPHINE_G_PER_MOL = 285.34  # morphine base, C17H19NO3


def nmol_l_to_ng_ml(nmol_l: float) -> float:
    """Morphine concentration in nmol/L (as the Leiden studies report it) to ng/mL."""
    return nmol_l * MORPHINE_G_PER_MOL / 1000.0


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _number(default: float, lo: float, hi: float) -> Any:
    return Field(default=default, ge=lo, le=hi, allow_inf_nan=False)


class ProgramSpec(_Spec):
    """The PCA program, in the pump scenario's string forms (``"1 mg"``, ``"10 min"``)."""

    drug: str = "morphine"
    concentration: str | None = None
    demand_dose: str
    lockout: str
    basal: str | None = None
    limit_1h: str | None = None
    limit_4h: str | None = None
    loading: str | None = None
    bolus_rate: str = "150 mL/h"


class CovariatesSpec(_Spec):
    """One set of covariates given to every patient (strings as in a pump scenario)."""

    weight: str
    sex: str
    height: str | None = None
    age: str | float | None = None


class PatientsSpec(_Spec):
    """``n`` adults drawn from the cohort model (``seed``; default the trial seed), or ``n``
    copies of ``covariates``."""

    n: int = Field(default=100, ge=1, le=100_000)
    seed: int | None = Field(default=None, ge=0)
    female_fraction: float = _number(0.5, 0.0, 1.0)
    covariates: CovariatesSpec | None = None


class PainSpec(_Spec):
    """Post-operative pain (NRS 0-10) and morphine analgesia; see docs/pca-trials.md.

    Unrelieved pain starts at ``baseline_nrs`` (normal, clipped to 0-10) and falls linearly
    by ``decline_nrs_per_h`` (normal) to a floor of 0. Relief is a sigmoid Emax of morphine
    Ce with a sex-specific C50 and a slope γ, with log-normal between-patient variability.
    """

    # Local: severe pain on arrival from theatre. For scale, PACU pain after gynaecological
    # surgery was VAS 81 +/- 24 mm (Hsu YW et al., Anesthesiology 2005;103:613-8).
    baseline_nrs_mean: float = _number(7.5, 0.0, 10.0)
    baseline_nrs_sd: float = _number(1.5, 0.0, 5.0)
    # Mean fall of recorded NRS over the first 24 h, 0.042/h (Tighe PJ et al., Pain
    # 2015;156:609-17, 7293 patients); individual trajectories are linear and mostly falling
    # (Chapman CR et al., J Pain 2011;12:257-62). Applied to unrelieved pain, and the SD:
    # local.
    decline_nrs_per_h_mean: float = _number(0.042, -1.0, 1.0)
    decline_nrs_per_h_sd: float = _number(0.03, 0.0, 1.0)
    # Sarton E et al., Anesthesiology 2000;93:1245-54: AC50 (the Ce doubling the tolerated
    # electrical pain current) 76.5 nmol/L in men, 32.9 nmol/L in women. Taken here as the
    # Ce halving clinical pain intensity: a local bridge from experimental to clinical pain.
    c50_male_ng_ml: float = _number(round(nmol_l_to_ng_ml(76.5), 2), 0.01, 1000.0)
    c50_female_ng_ml: float = _number(round(nmol_l_to_ng_ml(32.9), 2), 0.01, 1000.0)
    # Dahan A et al., Anesthesiology 2004;101:1201-9: γ 2.4 for morphine analgesia.
    gamma: float = _number(2.4, 0.1, 10.0)
    c50_cv: float = _number(0.5, 0.0, 3.0)  # local
    # NRS <= 3 is mild pain: the treatment threshold is NRS >= 4 (Gerbershagen HJ et al.,
    # Br J Anaesth 2011;107:619-26).
    acceptable_nrs: float = _number(3.0, 0.0, 10.0)


class PainDemand(_Spec):
    """Patients press at ``presses_per_h`` (Poisson) while their pain is at or above
    ``threshold_nrs``; not at all below it."""

    model: Literal["pain"] = "pain"
    threshold_nrs: float = _number(4.0, 0.0, 10.0)  # Gerbershagen 2011 treatment threshold
    presses_per_h: float = _number(4.0, 0.0, 120.0)  # local


class ScriptedDemand(_Spec):
    """Every patient presses at the listed times, whatever their pain."""

    model: Literal["scripted"]
    times: list[str] = Field(max_length=100_000)


DemandSpec = Annotated[PainDemand | ScriptedDemand, Field(discriminator="model")]


class RespirationSpec(_Spec):
    """Morphine respiratory depression with CO2 feedback (see docs/pca-trials.md)."""

    # Dahan A et al., Anesthesiology 2004;101:1201-9: integrated morphine potency 32 nmol/L
    # with γ 1 for hypercapnic and hypoxic ventilation (healthy volunteers). Read here as
    # the Ce halving the opioid drive to breathe: local reading.
    c50_ng_ml: float = _number(round(nmol_l_to_ng_ml(32.0), 2), 0.01, 1000.0)
    gamma: float = _number(1.0, 0.1, 10.0)
    c50_cv: float = _number(0.3, 0.0, 3.0)  # local
    # F of Bouillon T et al., Anesthesiology 2003;99:779-87 (remifentanil); no morphine
    # estimate was found, so its use for morphine is local.
    co2_gain: float = _number(4.3, 0.0, 20.0)
    monitor_noise: bool = True


class RespiratoryEventSpec(_Spec):
    """A respiratory-depression episode: any criterion met for at least ``min_duration``.
    Defaults are PRODIGY's (Khanna AK et al., Anesth Analg 2020;131:1012-24)."""

    spo2_at_most_pct: float = _number(85.0, 0.0, 100.0)
    rr_at_most_bpm: float = _number(5.0, 0.0, 60.0)
    etco2_at_least_mmhg: float = _number(60.0, 0.0, 200.0)
    etco2_at_most_mmhg: float = _number(15.0, 0.0, 200.0)
    min_duration: str = "3 min"


class FaultSpec(_Spec):
    """``occlusion`` (downstream) or ``disconnect`` of the line, or ``suspend`` (the nurse
    pauses the PCA), from ``from`` to ``to``; then the line is fixed, alarms acknowledged and
    the PCA resumed. ``patients``: indices (default every patient)."""

    type: Literal["occlusion", "disconnect", "suspend"]
    from_: str = Field(alias="from")
    to: str
    patients: list[int] | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NurseSpec(_Spec):
    """Time from a pump alarm (syringe nearly empty, dose limit, ...) to the nurse acting on
    it (local default); the nurse acts at the earliest in the minute after the alarm."""

    response: str = "10 min"


class InterlockSpec(_Spec):
    """Respiratory PCA interlock (:mod:`openinfusion.control.pca_interlock`), default off.

    Readings are taken once a minute, so a limit held "for 30 s" is confirmed at the second
    consecutive reading beyond it. A paused PCA is resumed automatically after
    ``resume_after`` of normal readings when ``auto_resume``, else by the nurse
    (``nurse.response`` after the alarm, once the readings are back within limits).
    """

    enabled: bool = False
    spo2_below_pct: float | None = Field(default=90.0, ge=0.0, le=100.0)
    spo2_for: str = "30 s"
    etco2_above_mmhg: float | None = Field(default=50.0, ge=0.0, le=200.0)
    etco2_for: str = "0 s"
    rr_below_bpm: float | None = Field(default=8.0, ge=0.0, le=120.0)
    rr_for: str = "60 s"
    auto_resume: bool = False
    resume_after: str = "10 min"


class PcaScenario(_Spec):
    """A PCA trial scenario (docs/pca-trials.md lists every field)."""

    duration: str
    care_area: str = "Adult Med-Surg"
    library: str | None = None
    override_reason: str | None = None
    seed: int = Field(default=0, ge=0)
    program: ProgramSpec
    patients: PatientsSpec = PatientsSpec()
    pain: PainSpec = PainSpec()
    demand: DemandSpec = PainDemand()
    respiration: RespirationSpec = RespirationSpec()
    respiratory_event: RespiratoryEventSpec = RespiratoryEventSpec()
    faults: list[FaultSpec] = []
    nurse: NurseSpec = NurseSpec()
    interlock: InterlockSpec | None = None


def _problems(exc: ValidationError) -> list[InputError]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        # a discriminated union puts the chosen tag in the path: demand.pain.threshold_nrs
        if len(loc) > 2 and loc[0] == "demand" and loc[1] in ("pain", "scripted"):
            del loc[1]
        path = ".".join(loc)
        value = err.get("input")
        out.append(
            InputError(
                path or "scenario",
                value if isinstance(value, str | int | float) else "",
                str(err.get("msg", "invalid")),
            )
        )
    return out


def load_pca_scenario(source: str | Path | dict[str, Any]) -> PcaScenario:
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
    if not isinstance(data, dict):
        raise InputError("scenario", type(data).__name__, "must be an object of fields")
    try:
        return PcaScenario.model_validate(data)
    except ValidationError as exc:
        raise InputErrors("scenario", _problems(exc)) from None


# ---- parsed form -------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """A fault window on the pumps of ``patients`` (indices), times in s."""

    kind: str
    start_s: float
    stop_s: float
    patients: tuple[int, ...]


@dataclass(frozen=True)
class Prepared:
    """A scenario with its strings parsed: times in s and min, the cohort size and seed."""

    scenario: PcaScenario
    minutes: int
    n: int
    seed: int
    cohort_seed: int
    fixed: Patient | None
    demand_times_s: tuple[float, ...] | None
    event_min_duration_min: int
    nurse_response_s: float
    faults: tuple[Fault, ...]


def _duration_min(text: str, field: str) -> float:
    return parse_quantity(text, Kind.DURATION, field)


def prepare(scenario: PcaScenario, *, n: int | None = None, seed: int | None = None) -> Prepared:
    """Check and parse ``scenario``; ``n`` and ``seed`` override the file's (command line)."""
    minutes_f = _duration_min(scenario.duration, "duration")
    if not 1 <= minutes_f <= MAX_DAYS * 1440:
        raise InputError("duration", scenario.duration, f"must be 1 min to {MAX_DAYS} days")
    minutes = round(minutes_f)
    total_s = minutes * 60.0
    if n is not None and (isinstance(n, bool) or not 1 <= n <= 100_000):
        raise InputError("patients", n, "must be a whole number from 1 to 100000")
    count = scenario.patients.n if n is None else n
    if count * minutes > MAX_PATIENT_MINUTES:
        raise InputError(
            "patients.n",
            count,
            f"x {minutes} min is above {MAX_PATIENT_MINUTES:,} patient-minutes; "
            "run fewer patients or a shorter duration",
        )
    if seed is not None and (isinstance(seed, bool) or seed < 0):
        raise InputError("seed", seed, "must be a non-negative integer")
    trial_seed = scenario.seed if seed is None else seed
    cohort_seed = scenario.patients.seed if scenario.patients.seed is not None else trial_seed
    fixed = None
    if scenario.patients.covariates is not None:
        c = scenario.patients.covariates
        fixed = _fixed_patient(c)
    times: tuple[float, ...] | None = None
    if isinstance(scenario.demand, ScriptedDemand):
        parsed = []
        for i, text in enumerate(scenario.demand.times):
            t = _duration_min(text, f"demand.times[{i}]")
            if not 0 <= t < minutes:
                raise InputError(
                    f"demand.times[{i}]", text, f"must be within the trial (0 to {minutes} min)"
                )
            parsed.append(t * 60.0)
        times = tuple(sorted(parsed))
    ev = scenario.respiratory_event
    run = _duration_min(ev.min_duration, "respiratory_event.min_duration")
    if not 1 <= run <= 240:
        raise InputError("respiratory_event.min_duration", ev.min_duration, "must be 1 to 240 min")
    response = _duration_min(scenario.nurse.response, "nurse.response")
    if not 0 <= response <= 1440:
        raise InputError("nurse.response", scenario.nurse.response, "must be 0 to 24 h")
    faults = []
    for i, f in enumerate(scenario.faults):
        a = _duration_min(f.from_, f"faults[{i}].from") * 60.0
        b = _duration_min(f.to, f"faults[{i}].to") * 60.0
        if not 0 <= a < total_s:
            raise InputError(f"faults[{i}].from", f.from_, "must be within the trial")
        if not a < b:
            raise InputError(f"faults[{i}].to", f.to, "must be after 'from'")
        who = tuple(range(count)) if f.patients is None else tuple(f.patients)
        for j, p in enumerate(who):
            if not 0 <= p < count:
                raise InputError(
                    f"faults[{i}].patients[{j}]", p, f"must be a patient index 0 to {count - 1}"
                )
        faults.append(Fault(f.type, a, b, who))
    _check_overlaps(faults)
    return Prepared(
        scenario,
        minutes,
        count,
        trial_seed,
        cohort_seed,
        fixed,
        times,
        math.ceil(run - 1e-9),
        response * 60.0,
        tuple(faults),
    )


def _fixed_patient(c: CovariatesSpec) -> Patient:
    try:
        return Patient.from_text(weight=c.weight, height=c.height, age=c.age, sex=c.sex)
    except InputError as exc:
        raise InputError(f"patients.covariates.{exc.field}", exc.value, exc.rule) from None


def _check_overlaps(faults: list[Fault]) -> None:
    """Two fault windows on one patient's pump may not overlap (one fault at a time)."""
    spans: dict[int, list[tuple[float, float, int]]] = {}
    for i, f in enumerate(faults):
        for p in f.patients:
            spans.setdefault(p, []).append((f.start_s, f.stop_s, i))
    for p, items in spans.items():
        items.sort()
        for (_, b, _), (c, _, j) in itertools.pairwise(items):
            if c < b:
                raise InputError(
                    f"faults[{j}].from", f"{c / 60:g} min", f"overlaps another fault on patient {p}"
                )


__all__ = [
    "MORPHINE_G_PER_MOL",
    "CovariatesSpec",
    "Fault",
    "FaultSpec",
    "InterlockSpec",
    "NurseSpec",
    "PainDemand",
    "PainSpec",
    "PatientsSpec",
    "PcaScenario",
    "Prepared",
    "ProgramSpec",
    "RespirationSpec",
    "RespiratoryEventSpec",
    "ScriptedDemand",
    "load_pca_scenario",
    "nmol_l_to_ng_ml",
    "prepare",
]
