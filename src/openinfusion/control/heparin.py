"""Weight-based heparin nomogram (aPTT-adjusted) and its closed loop on a virtual patient.

The nomogram is a pure function from (current rate, measured aPTT, weight, time) to an
action: bolus, hold, new rate and the time of the next aPTT. The aPTT table is data
(:class:`NomogramTable`): its thresholds depend on the laboratory's reagent, so each site
replaces them with its own therapeutic range. Default: Raschke RA et al., "The weight-based
heparin dosing nomogram compared with a 'standard care' nomogram", Ann Intern Med
1993;119:874-81 (80 units/kg bolus, 18 units/kg/h; aPTT table in its Figure 1; next aPTT
6 h after each dose change). Guide: docs/heparin-and-pca-safety.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from openinfusion.errors import InputError
from openinfusion.physiology.pk import Covariates, PkModel, Schedule, build_model, simulate
from openinfusion.physiology.pk.pd import (
    HEPARIN_APTT_BASELINE_S,
    HEPARIN_APTT_SLOPE_S_PER_IU_L,
    heparin_aptt_s,
)

Array = NDArray[np.float64]


@dataclass(frozen=True)
class NomogramRow:
    """One aPTT band: applies when ``aptt_s < upper_s`` (and not an earlier row).

    ``bolus_units_kg`` bolus (units/kg), ``hold_min`` infusion held (min) before the new
    rate starts, ``change_units_kg_h`` rate change (units/kg/h).
    """

    upper_s: float
    bolus_units_kg: float
    hold_min: float
    change_units_kg_h: float
    label: str


@dataclass(frozen=True)
class NomogramTable:
    """A heparin nomogram: start doses, aPTT bands (ordered, last one open-ended) and the
    time to the next aPTT (h) after a change and after a value in range."""

    rows: tuple[NomogramRow, ...]
    initial_bolus_units_kg: float = 80.0
    initial_rate_units_kg_h: float = 18.0
    recheck_after_change_h: float = 6.0
    recheck_in_range_h: float = 6.0
    name: str = "custom"

    def __post_init__(self) -> None:
        if not self.rows:
            raise InputError("rows", "", "a nomogram needs at least one aPTT band")
        last = -math.inf
        for i, r in enumerate(self.rows):
            if not r.upper_s > last:
                raise InputError(f"rows[{i}].upper_s", r.upper_s, "must increase row by row")
            if r.bolus_units_kg < 0 or r.hold_min < 0:
                raise InputError(f"rows[{i}]", r.label, "bolus and hold must be >= 0")
            last = r.upper_s
        if self.rows[-1].upper_s != math.inf:
            raise InputError("rows[-1].upper_s", self.rows[-1].upper_s, "the last band is open")
        for name in ("recheck_after_change_h", "recheck_in_range_h"):
            if not 0 < getattr(self, name) <= 48:
                raise InputError(name, getattr(self, name), "must be > 0 and <= 48 h")

    def row_for(self, aptt_s: float) -> int:
        """Index of the band holding ``aptt_s``."""
        for i, r in enumerate(self.rows):
            if aptt_s < r.upper_s:
                return i
        return len(self.rows) - 1  # unreachable: the last band is open

    @property
    def therapeutic_s(self) -> tuple[float, float]:
        """The band with no action (no bolus, hold or change): [low, high) in s."""
        for i, r in enumerate(self.rows):
            if r.bolus_units_kg == 0 and r.hold_min == 0 and r.change_units_kg_h == 0:
                low = self.rows[i - 1].upper_s if i else 0.0
                return low, r.upper_s
        raise InputError("rows", self.name, "has no band without action (therapeutic range)")


def raschke_table(control_s: float | None = None) -> NomogramTable:
    """Raschke 1993 nomogram. Default: the paper's aPTT bands in seconds (< 35, 35-45,
    46-70, 71-90, > 90 s; reported whole seconds, so bands are [35, 46), [46, 71), ...).
    With ``control_s`` (the lab's mean control aPTT, s): the paper's ratios to control
    (< 1.2, 1.2-1.5, 1.5-2.3, 2.3-3.0, > 3.0), for a lab whose reagent differs."""
    bounds: tuple[float, ...]
    if control_s is None:
        bounds = (35.0, 46.0, 71.0, 91.0)
    else:
        if not (math.isfinite(control_s) and 15.0 <= control_s <= 60.0):
            raise InputError("control_s", control_s, "must be 15 to 60 s")
        bounds = tuple(round(k * control_s, 1) for k in (1.2, 1.5, 2.3, 3.0))
    rows = (
        NomogramRow(bounds[0], 80.0, 0.0, 4.0, "below range: bolus 80 units/kg, +4 units/kg/h"),
        NomogramRow(bounds[1], 40.0, 0.0, 2.0, "below range: bolus 40 units/kg, +2 units/kg/h"),
        NomogramRow(bounds[2], 0.0, 0.0, 0.0, "in range: no change"),
        NomogramRow(bounds[3], 0.0, 0.0, -2.0, "above range: -2 units/kg/h"),
        NomogramRow(math.inf, 0.0, 60.0, -3.0, "far above range: hold 1 h, -3 units/kg/h"),
    )
    return NomogramTable(rows, name="raschke-1993")


RASCHKE_1993 = raschke_table()


@dataclass(frozen=True)
class HeparinLimits:
    """Caps no action may exceed: rate (units/kg/h, and optionally units/h), bolus
    (units/kg, optionally units). Defaults: sample library adult VTE hard maxima."""

    max_rate_units_kg_h: float = 40.0
    max_bolus_units_kg: float = 100.0
    max_rate_units_h: float | None = None
    max_bolus_units: float | None = None

    @classmethod
    def from_library_entry(cls, entry: object) -> HeparinLimits:
        """Hard maxima of a library entry dosed in units/kg/h (bolus in units/kg)."""
        limits = getattr(entry, "limits", None)
        dose = getattr(limits, "dose", None)
        bolus = getattr(limits, "bolus", None)
        unit = getattr(entry, "dose_unit", None)
        if dose is None or dose.hard_max is None or unit != "units/kg/h":
            raise InputError("entry", getattr(entry, "drug", entry), "needs a units/kg/h hard max")
        bolus_max = bolus.hard_max if bolus is not None and bolus.hard_max is not None else 0.0
        return cls(float(dose.hard_max), float(bolus_max))


@dataclass(frozen=True)
class HeparinAction:
    """What to do now: give ``bolus_units``, hold the infusion ``hold_min``, then run
    ``rate_units_kg_h`` (= ``rate_units_h``); draw the next aPTT at ``next_aptt_h``."""

    t_h: float
    bolus_units: float
    hold_min: float
    rate_units_kg_h: float
    rate_units_h: float
    next_aptt_h: float
    reason: str
    row: int | None = None
    capped: bool = False


def _check(field: str, value: float, lo: float, hi: float, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(field, value, "must be a number")
    v = float(value)
    if not (math.isfinite(v) and lo <= v <= hi):
        raise InputError(field, value, f"must be {lo:g} to {hi:g} {unit}")
    return v


def _caps(weight: float, limits: HeparinLimits) -> tuple[float, float]:
    rate_cap = limits.max_rate_units_kg_h
    if limits.max_rate_units_h is not None:
        rate_cap = min(rate_cap, limits.max_rate_units_h / weight)
    bolus_cap = limits.max_bolus_units_kg
    if limits.max_bolus_units is not None:
        bolus_cap = min(bolus_cap, limits.max_bolus_units / weight)
    return rate_cap, bolus_cap


def nomogram_start(
    weight_kg: float,
    t_h: float = 0.0,
    *,
    table: NomogramTable = RASCHKE_1993,
    limits: HeparinLimits | None = None,
) -> HeparinAction:
    """Start of therapy: the table's bolus (units/kg) and initial rate (units/kg/h)."""
    weight = _check("weight_kg", weight_kg, 1.0, 350.0, "kg")
    t = _check("t_h", t_h, 0.0, 24.0 * 365, "h")
    rate_cap, bolus_cap = _caps(weight, limits or HeparinLimits())
    rate = min(table.initial_rate_units_kg_h, rate_cap)
    bolus = min(table.initial_bolus_units_kg, bolus_cap)
    capped = rate < table.initial_rate_units_kg_h or bolus < table.initial_bolus_units_kg
    return HeparinAction(
        t,
        bolus * weight,
        0.0,
        rate,
        rate * weight,
        t + table.recheck_after_change_h,
        f"start ({table.name}): bolus {bolus:g} units/kg, {rate:g} units/kg/h"
        + (" (capped)" if capped else ""),
        None,
        capped,
    )


def nomogram_step(
    rate_units_kg_h: float,
    aptt_s: float,
    weight_kg: float,
    t_h: float,
    *,
    table: NomogramTable = RASCHKE_1993,
    limits: HeparinLimits | None = None,
) -> HeparinAction:
    """The table's action for an aPTT (s) measured at ``t_h`` on ``rate_units_kg_h``.

    The new rate is the old one plus the band's change, floored at 0 and capped at
    ``limits``; a bolus is capped likewise. Bad inputs raise :class:`InputError`.
    """
    lim = limits or HeparinLimits()
    rate = _check("rate_units_kg_h", rate_units_kg_h, 0.0, 100.0, "units/kg/h")
    aptt = _check("aptt_s", aptt_s, 10.0, 600.0, "s")
    weight = _check("weight_kg", weight_kg, 1.0, 350.0, "kg")
    t = _check("t_h", t_h, 0.0, 24.0 * 365, "h")
    rate_cap, bolus_cap = _caps(weight, lim)
    i = table.row_for(aptt)
    row = table.rows[i]
    wanted = max(0.0, rate + row.change_units_kg_h)
    new_rate = min(wanted, rate_cap)
    bolus = min(row.bolus_units_kg, bolus_cap)
    capped = new_rate < wanted or bolus < row.bolus_units_kg
    changed = row.bolus_units_kg > 0 or row.hold_min > 0 or new_rate != rate
    recheck = table.recheck_after_change_h if changed else table.recheck_in_range_h
    reason = f"aPTT {aptt:g} s: {row.label}" + (
        f" (capped at {rate_cap:g} units/kg/h, bolus {bolus_cap:g} units/kg)" if capped else ""
    )
    return HeparinAction(
        t,
        bolus * weight,
        row.hold_min,
        new_rate,
        new_rate * weight,
        t + row.hold_min / 60.0 + recheck,
        reason,
        i,
        capped,
    )


# ---- closed loop on the virtual patient ---------------------------------------------------

# Local assumption: aPTT assay imprecision, coefficient of variation 5 %.
APTT_ASSAY_CV = 0.05
# Local assumption: the analyser reports at most 200 s (above: "> 200 s").
APTT_ASSAY_MAX_S = 200.0
# Local calibration (not from a paper): keeps the Al-Sallami baseline 35.6 s and puts
# 0.3 IU/mL at 58 s, the middle of Raschke's 46-70 s band (which the paper matched to
# heparin 0.2-0.4 units/mL by protamine titration).
CALIBRATED_APTT_SLOPE_S_PER_IU_L = round((58.0 - HEPARIN_APTT_BASELINE_S) / 300.0, 4)


@dataclass(frozen=True)
class HeparinLoopResult:
    """A nomogram-driven run: traces on a 1-min grid (N, T + 1), draws and actions.

    ``time_to_therapeutic_h`` (N,) time of the first measured aPTT in range (NaN if none);
    ``fraction_in_range`` (N,) share of the run the model aPTT spent in range.
    """

    t_h: Array
    aptt_s: Array
    rate_units_kg_h: Array
    draws: list[list[tuple[float, float]]]
    actions: list[list[HeparinAction]]
    therapeutic_s: tuple[float, float]
    time_to_therapeutic_h: Array
    fraction_in_range: Array
    fraction_above: Array
    total_units: Array
    model: str

    def summary(self) -> dict[str, object]:
        """Pooled figures (JSON-friendly)."""
        ttr = self.time_to_therapeutic_h
        reached = ttr[np.isfinite(ttr)]
        return {
            "patients": int(ttr.size),
            "model": self.model,
            "therapeutic_s": list(self.therapeutic_s),
            "reached_range": int(reached.size),
            "median_time_to_therapeutic_h": float(np.median(reached)) if reached.size else None,
            "mean_fraction_in_range": round(float(self.fraction_in_range.mean()), 4),
            "mean_fraction_above": round(float(self.fraction_above.mean()), 4),
            "max_rate_units_kg_h": float(self.rate_units_kg_h.max()),
        }


def run_heparin_loop(
    cov: Covariates,
    *,
    model: str = "al-sallami",
    hours: float = 48.0,
    table: NomogramTable = RASCHKE_1993,
    limits: HeparinLimits | None = None,
    aptt_slope_s_per_iu_l: float = HEPARIN_APTT_SLOPE_S_PER_IU_L,
    aptt_baseline_s: float = HEPARIN_APTT_BASELINE_S,
    assay_cv: float = APTT_ASSAY_CV,
    assay_max_s: float = APTT_ASSAY_MAX_S,
    seed: int = 0,
) -> HeparinLoopResult:
    """Nomogram-driven heparin for ``cov`` (N patients) on the heparin PK ``model``
    (``al-sallami`` children, ``jia`` adults) with the linear aPTT of
    :func:`~openinfusion.physiology.pk.heparin_aptt_s`.

    Start dose at 0 h; each aPTT is drawn when the last action says (6 h after a change
    with the Raschke table), measured with normal assay noise (CV ``assay_cv``, seeded)
    and reported within 10 s to ``assay_max_s``, then fed to :func:`nomogram_step`.
    """
    total_h = _check("hours", hours, 1.0, 24.0 * 14, "h")
    _check("assay_cv", assay_cv, 0.0, 0.5, "")
    _check("assay_max_s", assay_max_s, 60.0, 600.0, "s")
    if cov.weight_kg is None:
        raise InputError("weight_kg", "", "is needed for weight-based dosing")
    lim = limits or HeparinLimits()
    weights = np.asarray(cov.weight_kg, dtype=np.float64)
    n = cov.n
    total = round(total_h * 60)
    rng = np.random.default_rng(seed)
    low, high = table.therapeutic_s
    aptt = np.zeros((n, total + 1))
    rate_tr = np.zeros((n, total + 1))
    draws: list[list[tuple[float, float]]] = []
    actions: list[list[HeparinAction]] = []
    ttr = np.full(n, np.nan)
    units = np.zeros(n)
    for i in range(n):
        pk = _one(cov, i, model)
        w = float(weights[i])
        act = nomogram_start(w, 0.0, table=table, limits=lim)
        mine, drawn = [act], []
        state = None
        t = 0
        while True:
            nxt = min(total, max(t + 1, round(act.next_aptt_h * 60)))
            start = min(nxt, t + round(act.hold_min))
            rate_s = act.rate_units_h / 3600.0
            infusions = [(start * 60.0, nxt * 60.0, rate_s)] if start < nxt and rate_s > 0 else []
            boluses = [(t * 60.0, act.bolus_units)] if act.bolus_units > 0 else []
            res = simulate(
                pk,
                Schedule.build(infusions=infusions, boluses=boluses),
                np.arange(t, nxt + 1) * 60.0,
                initial=state,
            )
            state = res.final
            before = float(aptt[i, t])
            aptt[i, t : nxt + 1] = heparin_aptt_s(res.cp[0], aptt_baseline_s, aptt_slope_s_per_iu_l)
            if t > 0:
                aptt[i, t] = before  # the draw at t was taken before this action
            rate_tr[i, start:nxt] = act.rate_units_kg_h
            units[i] += act.bolus_units + act.rate_units_h * (nxt - start) / 60.0
            if nxt >= total:
                break
            noisy = float(aptt[i, nxt]) * (1.0 + assay_cv * rng.standard_normal())
            measured = round(min(max(noisy, 10.0), assay_max_s), 1)
            drawn.append((nxt / 60.0, measured))
            if math.isnan(ttr[i]) and low <= measured < high:
                ttr[i] = nxt / 60.0
            act = nomogram_step(
                act.rate_units_kg_h, measured, w, nxt / 60.0, table=table, limits=lim
            )
            mine.append(act)
            t = nxt
        rate_tr[i, total] = rate_tr[i, total - 1]
        draws.append(drawn)
        actions.append(mine)
    body = aptt[:, 1:]
    return HeparinLoopResult(
        t_h=np.arange(total + 1) / 60.0,
        aptt_s=aptt,
        rate_units_kg_h=rate_tr,
        draws=draws,
        actions=actions,
        therapeutic_s=(low, high),
        time_to_therapeutic_h=ttr,
        fraction_in_range=((body >= low) & (body < high)).mean(axis=1),
        fraction_above=(body >= high).mean(axis=1),
        total_units=units,
        model=model,
    )


def _one(cov: Covariates, i: int, model: str) -> PkModel:
    """The PK model of patient ``i`` of ``cov`` alone."""

    def pick(a: NDArray[np.generic] | None) -> NDArray[np.generic] | None:
        return None if a is None else a[i : i + 1]

    one = Covariates(
        age_years=pick(cov.age_years),  # type: ignore[arg-type]
        weight_kg=pick(cov.weight_kg),  # type: ignore[arg-type]
        height_cm=pick(cov.height_cm),  # type: ignore[arg-type]
        male=pick(cov.male),  # type: ignore[arg-type]
        serum_creatinine_mg_dl=pick(cov.serum_creatinine_mg_dl),  # type: ignore[arg-type]
    )
    try:
        return build_model("heparin", model, one)[1]
    except InputError as exc:
        raise InputError(f"patients[{i}].{exc.field}", exc.value, exc.rule) from None


__all__ = [
    "APTT_ASSAY_CV",
    "APTT_ASSAY_MAX_S",
    "CALIBRATED_APTT_SLOPE_S_PER_IU_L",
    "RASCHKE_1993",
    "HeparinAction",
    "HeparinLimits",
    "HeparinLoopResult",
    "NomogramRow",
    "NomogramTable",
    "nomogram_start",
    "nomogram_step",
    "raschke_table",
    "run_heparin_loop",
]
