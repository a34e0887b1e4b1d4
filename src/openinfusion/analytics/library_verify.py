"""Drug library verification on virtual populations.

For every drug entry of a library version, the entry's dose limits (hard/soft min/max, in its
dose mode: continuous rate, intermittent dose, bolus, PCA basal) are given to a seeded virtual
population of the entry's care area through the drug's published PK model (or, for insulin,
the UVA/Padova subjects), and the exposure is compared with the therapeutic window of the
area's indication. The verdict per entry is ``ok``, ``soft limit leads outside window``,
``hard limit leads outside window`` or ``not verifiable`` (no model, no window, or no model
for this population) with a short reason: no entry is skipped.

Windows, models and the decision rule: :mod:`.library_verify_rules`; populations:
:mod:`.library_verify_population`; PK: :mod:`.library_verify_pk`; insulin:
:mod:`.library_verify_glucose`; HTML/PNG: :mod:`.library_verify_report`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openinfusion.analytics import library_verify_glucose as glu
from openinfusion.analytics.library_verify_pk import (
    UnitResponse,
    entry_unit_response,
    first_time_at_or_above,
    variability_source,
)
from openinfusion.analytics.library_verify_population import VirtualPopulation, draw_population
from openinfusion.analytics.library_verify_rules import (
    MORPHINE_NO_WINDOW,
    SIMULATED_MODES,
    VerificationPolicy,
    Window,
    choose_model,
    model_drug,
    window_for,
)
from openinfusion.errors import InputError
from openinfusion.library.schema import BOUNDS, CareArea, DrugEntry, Library

Array = NDArray[np.float64]

OK = "ok"
SOFT = "soft limit leads outside window"
HARD = "hard limit leads outside window"
NOT_VERIFIABLE = "not verifiable"
VERDICTS = (OK, SOFT, HARD, NOT_VERIFIABLE)

MAX_PATIENTS = 20_000
NO_WINDOW = "no window"
PERCENTILES = (5, 25, 50, 75, 95)


@dataclass(frozen=True, slots=True)
class LimitResult:
    """One simulated limit: its value, the population's metric percentiles and shares
    below/within/above the window, times (min) to reach and to leave the window."""

    bound: str
    value: float
    dose_unit: str
    metric_unit: str
    percentiles: dict[str, float]
    share_below: float
    share_within: float
    share_above: float
    ceiling: str
    share_over_ceiling: float
    threshold: float
    flagged: bool
    time_to_window_min: float | None
    share_reaching_window: float
    time_above_window_min: float | None

    @property
    def judged(self) -> bool:
        """False when there is no window to judge against (percentiles only)."""
        return self.ceiling != NO_WINDOW

    def as_dict(self) -> dict[str, Any]:
        def share(value: float) -> float | None:
            return round(value, 4) if self.judged else None

        return {
            "bound": self.bound,
            "value": self.value,
            "dose_unit": self.dose_unit,
            "metric_unit": self.metric_unit,
            "percentiles": self.percentiles,
            "share_below": share(self.share_below),
            "share_within": share(self.share_within),
            "share_above": share(self.share_above),
            "ceiling": self.ceiling,
            "share_over_ceiling": share(self.share_over_ceiling),
            "flag_share": self.threshold,
            "flagged": self.flagged,
            "median_time_to_window_min": _r(self.time_to_window_min),
            "share_reaching_window": share(self.share_reaching_window),
            "median_time_above_window_min": _r(self.time_above_window_min),
        }


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


@dataclass(frozen=True, slots=True)
class EntryResult:
    """The verification of one drug entry in one care area."""

    care_area: str
    drug: str
    therapy: str | None
    label: str
    infusion_type: str
    dose_unit: str
    verdict: str
    reason: str
    mode: str | None = None
    model: str | None = None
    window: dict[str, object] | None = None
    population: dict[str, object] | None = None
    regimen: dict[str, object] | None = None
    limits: tuple[LimitResult, ...] = ()
    patients: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "care_area": self.care_area,
            "drug": self.drug,
            "therapy": self.therapy,
            "label": self.label,
            "infusion_type": self.infusion_type,
            "dose_unit": self.dose_unit,
            "verdict": self.verdict,
            "reason": self.reason,
            "mode": self.mode,
            "model": self.model,
            "window": self.window,
            "population": self.population,
            "regimen": self.regimen,
            "limits": [x.as_dict() for x in self.limits],
        }


@dataclass(frozen=True, slots=True)
class LibraryVerification:
    """A whole library version verified: entries in library order and a summary."""

    library: str
    version: str
    seed: int
    patients: int
    care_area: str | None
    policy: VerificationPolicy
    entries: tuple[EntryResult, ...] = field(default_factory=tuple)

    @property
    def summary(self) -> dict[str, int]:
        counts = dict.fromkeys(VERDICTS, 0)
        for e in self.entries:
            counts[e.verdict] += 1
        return counts

    @property
    def simulated_patients(self) -> int:
        """Virtual patients simulated (population size x entries simulated)."""
        return sum(e.patients for e in self.entries)

    def as_dict(self) -> dict[str, Any]:
        return {
            "library": self.library,
            "version": self.version,
            "seed": self.seed,
            "patients": self.patients,
            "care_area": self.care_area,
            "policy": self.policy.as_dict(),
            "summary": self.summary,
            "entries": [e.as_dict() for e in self.entries],
        }


# ---- judging -----------------------------------------------------------------------------


def _limits_of(entry: DrugEntry) -> list[tuple[str, float]]:
    dose = entry.limits.dose
    return [(b, float(getattr(dose, b))) for b in BOUNDS if getattr(dose, b) is not None]


def _percentiles(values: Array) -> dict[str, float]:
    pct = np.percentile(values, PERCENTILES)
    return {f"p{p}": float(f"{v:.4g}") for p, v in zip(PERCENTILES, pct, strict=True)}


def _median(values: Array) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else None


def judge_limit(
    bound: str,
    value: float,
    units: tuple[str, str],
    metric: Array,
    window: tuple[Array, Array, str],
    policy: VerificationPolicy,
    times_min: tuple[Array, Array],
) -> LimitResult:
    """Shares of the population below, within and above the window at one limit, and the
    verdict of the policy. ``units``: (dose unit, metric unit); ``window``: (low, high)
    per patient and its text; ``times_min``: per patient, first time at or above the
    window's bottom and above its top (NaN if never)."""
    low, high, text = window
    n = metric.size
    below = float(np.count_nonzero(metric < low)) / n
    above = float(np.count_nonzero(metric > high)) / n
    margin = policy.margin(bound)
    over = float(np.count_nonzero(metric > margin * high)) / n
    threshold = policy.share(bound)
    ceiling = text if margin == 1.0 else f"{margin:g} x the top of {text}"
    t_low, t_high = times_min
    return LimitResult(
        bound=bound,
        value=value,
        dose_unit=units[0],
        metric_unit=units[1],
        percentiles=_percentiles(metric),
        share_below=below,
        share_within=max(0.0, 1.0 - below - above),
        share_above=above,
        ceiling=ceiling,
        share_over_ceiling=over,
        threshold=threshold,
        flagged=over > threshold,
        time_to_window_min=_median(t_low),
        share_reaching_window=float(np.count_nonzero(np.isfinite(t_low))) / n,
        time_above_window_min=_median(t_high),
    )


def entry_verdict(limits: Sequence[LimitResult]) -> tuple[str, str]:
    """The entry's verdict and a one-line reason from its judged limits."""
    hard = [x for x in limits if x.flagged and x.bound.startswith("hard")]
    soft = [x for x in limits if x.flagged and not x.bound.startswith("hard")]
    if not hard and not soft:
        top = max(limits, key=lambda x: x.value)
        return OK, (
            f"at {top.bound} {top.value:g} {top.dose_unit}, {100 * top.share_over_ceiling:.0f} % "
            f"over {top.ceiling} (flagged above {100 * top.threshold:.0f} %)"
        )
    first = (hard or soft)[0]
    return HARD if hard else SOFT, (
        f"at {first.bound} {first.value:g} {first.dose_unit}, "
        f"{100 * first.share_over_ceiling:.0f} % of patients over {first.ceiling} "
        f"(flagged above {100 * first.threshold:.0f} %)"
    )


def _window_text(window: Window) -> str:
    if window.by_age is not None:
        return f"the {window.indication} window"
    return f"{window.low:g}-{window.high:g} {window.unit}"


# ---- one entry ---------------------------------------------------------------------------


def _base(entry: DrugEntry) -> dict[str, Any]:
    return {
        "care_area": entry.care_area,
        "drug": entry.drug,
        "therapy": entry.therapy,
        "label": entry.label,
        "infusion_type": entry.infusion_type.value,
        "dose_unit": entry.dose_unit,
    }


def _not_verifiable(entry: DrugEntry, reason: str, **extra: Any) -> EntryResult:
    return EntryResult(**_base(entry), verdict=NOT_VERIFIABLE, reason=reason, **extra)


def _area_seed(seed: int, area: CareArea, drug: str) -> int:
    words = [seed, zlib.crc32(area.id.encode()), zlib.crc32(drug.encode())]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def verify_entry(
    entry: DrugEntry,
    area: CareArea,
    *,
    patients: int,
    seed: int,
    policy: VerificationPolicy,
    populations: dict[tuple[str, str, str], VirtualPopulation | None] | None = None,
) -> EntryResult:
    """Verify one entry's dose limits on a virtual population of its care area."""
    drug = model_drug(entry)
    limits = _limits_of(entry)
    if drug is None:
        return _not_verifiable(entry, f"no PK model for {entry.drug}")
    mode = SIMULATED_MODES.get(entry.infusion_type)
    if mode is None:
        return _not_verifiable(entry, f"no dose mode to simulate for a {entry.infusion_type} entry")
    if not limits:
        return _not_verifiable(entry, "the entry has no dose limits to simulate", mode=mode)
    if drug == "insulin":
        return _verify_insulin(entry, area, limits, mode, policy)
    choice = choose_model(drug, area.population)
    if choice is None:
        return _not_verifiable(
            entry,
            f"no {drug} PK model validated for the {area.population.value} population",
            mode=mode,
        )
    key = (area.id, choice.drug, choice.model)
    cache = populations if populations is not None else {}
    if key not in cache:
        cache[key] = draw_population(area, choice, patients, _area_seed(seed, area, drug))
    pop = cache[key]
    if pop is None:
        return _not_verifiable(
            entry,
            f"the {choice.model} {drug} model's ages/weights do not overlap {area.name}'s",
            mode=mode,
        )
    window = window_for(drug, area.id, entry.therapy)
    try:
        spec, plan, unit = entry_unit_response(entry, choice, pop, window)
    except InputError as exc:
        return _not_verifiable(entry, exc.message, mode=mode)
    extra: dict[str, Any] = {
        "patients": pop.n,
        "mode": mode,
        "model": f"{spec.drug} {spec.name}: {spec.citation}; {variability_source(choice)}",
        "population": pop.as_dict(),
        "regimen": plan.as_dict(),
    }
    age = np.asarray(pop.cohort.age_years, dtype=np.float64)
    if window is None:
        # Simulated and reported, but there is nothing to judge against.
        inf = np.full(pop.n, np.inf)
        nan = np.full(pop.n, np.nan)
        results = tuple(
            judge_limit(
                b,
                v,
                (entry.dose_unit, unit.unit),
                v * unit.metric,
                (-inf, inf, NO_WINDOW),
                policy,
                (nan, nan),
            )
            for b, v in limits
        )
        reason = MORPHINE_NO_WINDOW if drug == "morphine" else f"no therapeutic window for {drug}"
        return _not_verifiable(entry, reason, limits=results, **extra)
    low, high = window.bounds(age)
    judged = (low, high, _window_text(window))
    results = tuple(_judge_pk(b, v, entry.dose_unit, unit, judged, policy) for b, v in limits)
    verdict, reason = entry_verdict(results)
    return EntryResult(
        **_base(entry),
        verdict=verdict,
        reason=reason,
        window=window.as_dict(),
        limits=results,
        **extra,
    )


def _judge_pk(
    bound: str,
    value: float,
    dose_unit: str,
    unit: UnitResponse,
    window: tuple[Array, Array, str],
    policy: VerificationPolicy,
) -> LimitResult:
    low, high, _ = window
    above_high = np.nextafter(high, np.inf)
    if unit.daily is not None:  # AUC window: the first day whose AUC reaches the bound
        day_end_min = 1440.0 * np.arange(1, unit.daily.shape[1] + 1)
        t_low = first_time_at_or_above(value * unit.daily, day_end_min, low)
        t_high = first_time_at_or_above(value * unit.daily, day_end_min, above_high)
    else:
        series = value * unit.series
        t_min = unit.t_s / 60.0
        t_low = first_time_at_or_above(series, t_min, low)
        t_high = first_time_at_or_above(series, t_min, above_high)
    return judge_limit(
        bound, value, (dose_unit, unit.unit), value * unit.metric, window, policy, (t_low, t_high)
    )


def _verify_insulin(
    entry: DrugEntry,
    area: CareArea,
    limits: list[tuple[str, float]],
    mode: str,
    policy: VerificationPolicy,
) -> EntryResult:
    names = glu.subjects_for(area.population)
    if not names:
        return _not_verifiable(
            entry,
            f"no glucose-insulin virtual patients for the {area.population.value} population",
            mode=mode,
        )
    try:
        outcomes = glu.simulate_limits(names, entry.dose_unit, [v for _, v in limits])
    except InputError as exc:
        return _not_verifiable(entry, exc.message, mode=mode)
    results = []
    n = len(names)
    for (bound, value), out in zip(limits, outcomes, strict=True):
        hard = policy.is_hard(bound)
        over = out.level2 if hard else out.hypo
        to_range = glu.minutes_to_range(out)
        threshold = policy.share(bound)
        share_over = float(np.count_nonzero(over)) / n
        above = float(np.count_nonzero(out.hypo)) / n
        below = float(np.count_nonzero(out.high)) / n
        results.append(
            LimitResult(
                bound=bound,
                value=value,
                dose_unit=entry.dose_unit,
                metric_unit="mg/dL (mean BG)",
                percentiles=_percentiles(out.bg_mg_dl[:, 1:].mean(axis=1)),
                share_below=below,
                share_within=max(0.0, 1.0 - above - below),
                share_above=above,
                ceiling="level 2 hypoglycaemia (< 54 mg/dL >= 1 %)"
                if hard
                else "the hypoglycaemia targets (< 70 mg/dL < 4 %, < 54 mg/dL < 1 %)",
                share_over_ceiling=share_over,
                threshold=threshold,
                flagged=share_over > threshold,
                time_to_window_min=_median(to_range),
                share_reaching_window=float(np.count_nonzero(np.isfinite(to_range))) / n,
                time_above_window_min=_median(glu.minutes_to_hypo(out)),
            )
        )
    window = window_for("insulin", area.id, entry.therapy)
    assert window is not None
    verdict, reason = entry_verdict(results)
    return EntryResult(
        **_base(entry),
        verdict=verdict,
        reason=reason,
        mode=mode,
        model="UVA/Padova 2008 T1D subjects (Dalla Man 2007; simglucose parameters), "
        "24 h fasting at a fixed rate",
        window=window.as_dict(),
        population={"n": len(names), "source": "UVA/Padova 2008 subjects", "subjects": names},
        regimen={"mode": "continuous", "horizon_h": glu.HORIZON_MIN / 60.0},
        limits=tuple(results),
        patients=n * len(limits),
    )


# ---- a library ---------------------------------------------------------------------------


def verify_library(
    library: Library,
    *,
    care_area: str | None = None,
    patients: int = 500,
    seed: int = 0,
    policy: VerificationPolicy | None = None,
    progress: Callable[[int], None] | None = None,
) -> LibraryVerification:
    """Verify every entry (of one care area, if given) of ``library``; library order kept."""
    if isinstance(patients, bool) or not isinstance(patients, int):
        raise InputError("patients", patients, f"must be a whole number from 1 to {MAX_PATIENTS}")
    if not 1 <= patients <= MAX_PATIENTS:
        raise InputError("patients", patients, f"must be from 1 to {MAX_PATIENTS}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError("seed", seed, "must be a non-negative whole number")
    pol = policy or VerificationPolicy()
    area_id = library.care_area(care_area).id if care_area else None
    areas = {a.id: a for a in library.care_areas}
    cache: dict[tuple[str, str, str], VirtualPopulation | None] = {}
    results = []
    for entry in library.entries:
        if area_id is not None and entry.care_area != area_id:
            continue
        results.append(
            verify_entry(
                entry,
                areas[entry.care_area],
                patients=patients,
                seed=seed,
                policy=pol,
                populations=cache,
            )
        )
        if progress:
            progress(1)
    return LibraryVerification(
        library.name, library.version, seed, patients, area_id, pol, tuple(results)
    )


def exit_code(report: LibraryVerification) -> int:
    """0 all verifiable entries ok, 3 a soft limit leads outside its window, 4 a hard one."""
    summary = report.summary
    return 4 if summary[HARD] else 3 if summary[SOFT] else 0


__all__ = [
    "HARD",
    "NOT_VERIFIABLE",
    "OK",
    "SOFT",
    "VERDICTS",
    "EntryResult",
    "LibraryVerification",
    "LimitResult",
    "entry_verdict",
    "exit_code",
    "judge_limit",
    "verify_entry",
    "verify_library",
]
