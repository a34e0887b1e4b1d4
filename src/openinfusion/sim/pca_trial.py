"""In-silico PCA trial: virtual post-operative patients, each on a real PCA pump, for days.

Per patient, every minute (patients advanced together, vectorized):

1. pain (NRS 0-10) from the unrelieved post-operative pain and morphine Ce (:class:`Pd`);
2. the patient presses the PCA button (a Poisson process while pain is at or above the
   threshold, or at scripted times); each press goes to the patient's own pump engine
   (:class:`~openinfusion.pump.device.Device` with the DERS-checked plan of
   :func:`openinfusion.pump.therapies.pca`), which grants it or denies it (lockout, 1-h or
   4-h limit, alarm) and delivers granted doses at the pump's bolus rate; faults and the
   nurse's responses to pump alarms (syringe change, resume) act on the same engine;
3. what reached the patient, read from the pump, drives the Sarton morphine PK model:
   between two pump events the flow is constant, so each piece (a dose at the bolus rate,
   the basal, a released occlusion) enters at its own times within the minute through an
   exact response table (:class:`MinuteKernel`, from
   :func:`openinfusion.physiology.pk.simulate`);
4. breathing: ventilation fraction from Ce with CO2 feedback, gas exchange, pulse oximeter
   and capnograph (:class:`~openinfusion.physiology.sensors.RespiratoryMonitor`).

The pumps run event-driven: a pump is advanced only to a press, a fault, a nurse action or
its own next event (end of a dose, alarm, syringe nearly empty). At every event the volume
the pump says reached the patient is compared with the constant flow assumed since the last
one (``delivery_check_ml`` keeps the largest difference, 0 to rounding; a difference would
be given to the patient at that event, so the PK input always adds up to the pump's count).
Deterministic for a seed. Model choices and sources: docs/pca-trials.md.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openinfusion.control.pca_interlock import InterlockLimits, PcaInterlock
from openinfusion.errors import InputError
from openinfusion.library import Library, load_library, sample_library
from openinfusion.library.ders import DersError
from openinfusion.patient import Patient, Sex
from openinfusion.physiology.cohorts import AdultCovariateModel, CovariateBounds, adult_cohort
from openinfusion.physiology.pk import Covariates, PkModel, PkState, Schedule, build_model
from openinfusion.physiology.pk import simulate as pk_simulate
from openinfusion.physiology.sensors import RespiratoryMonitor
from openinfusion.pump import therapies as T
from openinfusion.pump.channel import ChannelSettings, CommandRejected, Line, State
from openinfusion.pump.device import Device
from openinfusion.pump.mechanics import Mechanism, pca_pump
from openinfusion.sim.pca_scenario import (
    InterlockSpec,
    PainDemand,
    PcaScenario,
    Prepared,
    prepare,
)
from openinfusion.units import Kind, parse_quantity

Array = NDArray[np.float64]
MG_L_TO_NG_ML = 1000.0
EPS_S = 1e-6
# Local: a nurse who finds the interlock still holding (readings not yet normal) looks again
# after this long.
INTERLOCK_RECHECK_S = 900.0
# Sarton 2000 studied young healthy adults; the PK model's own limits (40-150 kg, >= 18 y)
# bound the cohort.
SARTON_BOUNDS = CovariateBounds(age_years=(18.0, 100.0), weight_kg=(40.0, 150.0))


# ---- models ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pd:
    """Per-patient pain and breathing parameters, arrays (N,).

    ``pain0_nrs`` unrelieved pain at t = 0 and ``decline_nrs_h`` its fall per hour;
    ``c50_pain_ng_ml``/``gamma_pain`` analgesia; ``c50_resp_ng_ml``/``gamma_resp`` and
    ``co2_gain`` the ventilatory drive (see :meth:`pain_nrs` and :meth:`ventilation`).
    """

    pain0_nrs: Array
    decline_nrs_h: Array
    c50_pain_ng_ml: Array
    gamma_pain: float
    c50_resp_ng_ml: Array
    gamma_resp: float
    co2_gain: float

    def unrelieved_nrs(self, t_min: float) -> Array:
        """Pain without analgesia at ``t_min``: linear fall, floor 0, ceiling 10."""
        return np.clip(self.pain0_nrs - self.decline_nrs_h * t_min / 60.0, 0.0, 10.0)

    def pain_nrs(self, t_min: float, ce_ng_ml: Array) -> Array:
        """Felt pain: unrelieved pain x (1 - Ce^γ / (Ce^γ + C50^γ))."""
        return self.unrelieved_nrs(t_min) * (
            1.0 - _hill(ce_ng_ml, self.c50_pain_ng_ml, self.gamma_pain)
        )

    def ventilation(self, ce_ng_ml: Array, paco2_mmhg: Array, paco2_0_mmhg: float) -> Array:
        """Ventilation fraction (1 = baseline): opioid drive (1 - E) times the CO2 response
        (PaCO2 / PaCO2_0)^F (structure of Bouillon T et al., Anesthesiology 1999;91:144)."""
        drive = 1.0 - _hill(ce_ng_ml, self.c50_resp_ng_ml, self.gamma_resp)
        co2 = np.power(np.maximum(paco2_mmhg, 0.0) / paco2_0_mmhg, self.co2_gain)
        return np.asarray(np.clip(drive * co2, 0.0, 5.0))


def reported_nrs(pain_nrs: Array) -> Array:
    """The whole number a patient reports for a pain intensity (nearest; halves round up)."""
    return np.floor(np.asarray(pain_nrs) + 0.5)


def _hill(c: Array, c50: Array, gamma: float) -> Array:
    x = np.power(np.maximum(c, 0.0) / c50, gamma)
    return np.asarray(x / (1.0 + x))


def _lognormal(rng: np.random.Generator, median: Array, cv: float) -> Array:
    """Log-normal around ``median`` with coefficient of variation ``cv`` (exp(eta))."""
    if cv <= 0:
        return np.asarray(median, dtype=np.float64)
    omega = math.sqrt(math.log1p(cv * cv))
    return np.asarray(median * np.exp(omega * rng.standard_normal(median.shape[0])))


def draw_pd(scenario: PcaScenario, female: NDArray[np.bool_], rng: np.random.Generator) -> Pd:
    """Pain and breathing parameters for every patient from the scenario's distributions."""
    n = female.shape[0]
    p, r = scenario.pain, scenario.respiration
    pain0 = np.clip(p.baseline_nrs_mean + p.baseline_nrs_sd * rng.standard_normal(n), 0.0, 10.0)
    decline = np.asarray(p.decline_nrs_per_h_mean + p.decline_nrs_per_h_sd * rng.standard_normal(n))
    c50_pain = _lognormal(rng, np.where(female, p.c50_female_ng_ml, p.c50_male_ng_ml), p.c50_cv)
    c50_resp = _lognormal(rng, np.full(n, r.c50_ng_ml), r.c50_cv)
    return Pd(pain0, decline, c50_pain, p.gamma, c50_resp, r.gamma, r.co2_gain)


@dataclass(frozen=True)
class MinuteKernel:
    """Exact one-minute response of the PK state x = [A1, A2, A3 (mg), Ce (mg/L)], (N, 4).

    ``phi`` (N, 4, 4): x(t + 60 s) = phi @ x(t) with no input. ``infusion`` and ``bolus``
    (N, 61, 4): the state ``k`` seconds after a unit-rate (1 mg/s) infusion started, or a
    1 mg bolus given, from zero (k = 0..60); between whole seconds they are interpolated
    linearly. Every entry comes from the exact solver
    (:func:`openinfusion.physiology.pk.simulate`).
    """

    phi: Array
    infusion: Array
    bolus: Array

    def _at(self, table: Array, who: Any, tau_s: Any) -> Array:
        tau = np.clip(np.asarray(tau_s, dtype=np.float64), 0.0, 60.0)
        k = np.minimum(np.floor(tau).astype(np.intp), 59)
        f = (tau - k)[..., None]
        return np.asarray(table[who, k] * (1.0 - f) + table[who, k + 1] * f)

    def _at_one(self, table: Array, i: int, tau_s: float) -> Array:
        tau = min(max(tau_s, 0.0), 60.0)
        k = min(int(tau), 59)
        f = tau - k
        return np.asarray(table[i, k] * (1.0 - f) + table[i, k + 1] * f)

    def infused_one(self, i: int, start_s: float, stop_s: float, rate_mg_s: float) -> Array:
        """State at the minute's end from ``rate_mg_s`` running from ``start_s`` to
        ``stop_s`` seconds before it, for patient ``i``."""
        t = self.infusion
        return np.asarray((self._at_one(t, i, start_s) - self._at_one(t, i, stop_s)) * rate_mg_s)

    def infused(self, who: Any, before_end_s: Any, rate_mg_s: Any) -> Array:
        """State at the minute's end from ``rate_mg_s`` running over its last
        ``before_end_s`` seconds (both scalars or arrays over ``who``)."""
        return np.asarray(
            self._at(self.infusion, who, before_end_s) * np.asarray(rate_mg_s)[..., None]
        )

    def bolus_at(self, i: int, before_end_s: float, amount_mg: float) -> Array:
        """State at the minute's end from ``amount_mg`` given ``before_end_s`` before it."""
        return np.asarray(self._at_one(self.bolus, i, before_end_s) * amount_mg)


def _state(final: PkState) -> Array:
    return np.concatenate((final.amounts, final.ce[:, None]), axis=1)


def _free_map(model: PkModel, dt_s: float) -> Array:
    """Exact map (N, 4, 4) of the state over ``dt_s`` with no input, column by column."""
    n = model.n_patients
    phi = np.zeros((n, 4, 4))
    empty = Schedule.build()
    for col in range(4):
        start = np.zeros((n, 4))
        start[:, col] = 1.0
        initial = PkState(0.0, start[:, :3], start[:, 3])
        phi[:, :, col] = _state(pk_simulate(model, empty, [dt_s], initial=initial).final)
    return phi


def minute_kernel(model: PkModel) -> MinuteKernel:
    """The :class:`MinuteKernel` of ``model`` (N patients): the tables are built second by
    second with the exact one-second maps."""
    n = model.n_patients
    step = _free_map(model, 1.0)
    one_second = _state(
        pk_simulate(model, Schedule.build(infusions=[(0.0, 1.0, 1.0)]), [1.0]).final
    )
    infusion = np.zeros((n, 61, 4))
    bolus = np.zeros((n, 61, 4))
    bolus[:, 0, 0] = 1.0
    for k in range(60):
        infusion[:, k + 1] = np.einsum("nij,nj->ni", step, infusion[:, k]) + one_second
        bolus[:, k + 1] = np.einsum("nij,nj->ni", step, bolus[:, k])
    return MinuteKernel(_free_map(model, 60.0), infusion, bolus)


# ---- the pumps -------------------------------------------------------------------------


class _Pumps:
    """Every patient's PCA pump, the flow each delivers until its next event, and the PK
    input of the current minute built from it (``drive``, the state it adds at the end)."""

    def __init__(self, devices: list[Device], mg_per_ml: float, kernel: MinuteKernel) -> None:
        n = len(devices)
        self.devices = devices
        self.mg_per_ml = mg_per_ml
        self.kernel = kernel
        self.t_sync = np.zeros(n)
        self.ml_sync = np.zeros(n)
        self.rate_ml_s = np.zeros(n)
        self.slack_ml = np.zeros(n)
        self.patent = np.ones(n, dtype=bool)
        self.next_event_s = np.full(n, math.inf)
        self.seen = [0] * n  # device records already read
        self.check_ml = 0.0
        self.t_end = 60.0  # end of the current minute (s)
        self.t_mark = np.zeros(n)  # delivery up to here is in ``drive`` or earlier minutes
        self.drive = np.zeros((n, 4))
        for i in range(n):
            self.refresh(i)

    def refresh(self, i: int, *, events: bool = True) -> None:
        """Read pump ``i``'s time, volume at the patient and flow (and its next event, unless
        a command follows at once and the caller reads it after)."""
        d = self.devices[i]
        ch = d.channels[0]
        self.t_sync[i] = d.t_s
        self.ml_sync[i] = ch.patient_ml
        self.rate_ml_s[i] = ch.rate_ml_h / 3600.0
        self.slack_ml[i] = ch.slack_ml
        self.patent[i] = ch.line is Line.PATENT
        if events:
            self.next_event_s[i] = d.next_event_s()

    def _flow_start(self, who: Any) -> Array:
        """When the current flow reaches the patient: after the start-up slack is taken up
        (inf when nothing flows to the patient: line not patent, or the pump stopped)."""
        rate = self.rate_ml_s[who]
        with np.errstate(divide="ignore", invalid="ignore"):
            delay = np.where(rate > 0, self.slack_ml[who] / rate, 0.0)
        flowing = self.patent[who] & (rate > 0)
        return np.asarray(np.where(flowing, self.t_sync[who] + delay, np.inf))

    def _start_one(self, i: int) -> float:
        rate = float(self.rate_ml_s[i])
        if rate <= 0.0 or not self.patent[i]:
            return math.inf
        return float(self.t_sync[i]) + float(self.slack_ml[i]) / rate

    def _predicted_one(self, i: int, t_s: float) -> float:
        start = self._start_one(i)
        ml = float(self.ml_sync[i])
        if start == math.inf or t_s <= start:
            return ml
        return ml + float(self.rate_ml_s[i]) * (t_s - start)

    def predicted_ml(self, t_s: float, who: Any = slice(None)) -> Array:
        """Volume at the patient at ``t_s`` if nothing happens before (mL)."""
        start = self._flow_start(who)
        flowing = np.isfinite(start)
        span = np.where(flowing, np.maximum(0.0, t_s - np.where(flowing, start, 0.0)), 0.0)
        return np.asarray(self.ml_sync[who] + self.rate_ml_s[who] * span)

    def begin_minute(self, t_end: float) -> None:
        self.t_end = t_end
        self.drive[:] = 0.0

    def _emit_one(self, i: int, until: float) -> None:
        """Add patient ``i``'s flow from ``t_mark`` to ``until`` to this minute's input."""
        mark = float(self.t_mark[i])
        start = max(mark, self._start_one(i))
        if until > start:
            rate_mg_s = float(self.rate_ml_s[i]) * self.mg_per_ml
            self.drive[i] += self.kernel.infused_one(
                i, self.t_end - start, self.t_end - until, rate_mg_s
            )
        if until > mark:
            self.t_mark[i] = until

    def _jump(self, i: int, t: float, amount_ml: float) -> None:
        """Volume that reached the patient at once at ``t`` (a released occlusion)."""
        if amount_ml != 0.0:
            self.drive[i] += self.kernel.bolus_at(i, self.t_end - t, amount_ml * self.mg_per_ml)

    def end_minute(self) -> tuple[Array, NDArray[np.intp]]:
        """Every pump to the end of the minute: the volume at each patient (mL), and the
        pumps that had to be advanced (an event of their own before the end)."""
        t = self.t_end
        synced = np.flatnonzero(self.next_event_s <= t + EPS_S)
        for i in synced:
            self.sync(int(i), t)
        start = np.maximum(self.t_mark, self._flow_start(slice(None)))
        on = start < t
        if np.any(on):
            rate_mg_s = self.rate_ml_s[on] * self.mg_per_ml
            self.drive[on] += self.kernel.infused(np.flatnonzero(on), t - start[on], rate_mg_s)
        self.t_mark[:] = t
        return self.predicted_ml(t), synced

    def sync(self, i: int, t_s: float, *, command: bool = False) -> None:
        """Advance pump ``i`` to ``t_s``, event by event: the flow between events goes into
        the minute's input, and at each event the volume the pump says reached the patient
        is compared with that flow (a difference, 0 to rounding, is given there at once).
        ``command``: a command follows at ``t_s``, then :meth:`acted`."""
        device = self.devices[i]
        while True:
            nxt = float(self.next_event_s[i])
            stop = t_s if nxt > t_s else nxt
            self._emit_one(i, stop)
            expected = self._predicted_one(i, stop)
            device.advance_to(stop)
            actual = device.channels[0].patient_ml
            self.check_ml = max(self.check_ml, abs(actual - expected))
            self._jump(i, stop, actual - expected)
            if stop >= t_s:
                self.refresh(i, events=not command)
                break
            self.refresh(i)
            if self.next_event_s[i] <= stop:  # no progress: finish in one go
                device.advance_to(t_s)
                self.refresh(i)
                break

    def acted(self, i: int) -> None:
        """After a command on pump ``i`` (at its current time): volume it put into the
        patient at once goes into the input; the new flow is read."""
        before = float(self.ml_sync[i])
        self.refresh(i)
        self._jump(i, float(self.t_sync[i]), float(self.ml_sync[i]) - before)

    def new_alarm_times(self, i: int) -> list[float]:
        """Times (s) of alarms the pump raised since the last call."""
        records = self.devices[i].records
        start, self.seen[i] = self.seen[i], len(records)
        return [r.t_s for r in records[start:] if r.kind == "alarm"]


# ---- result ------------------------------------------------------------------------------


@dataclass
class PcaTrialResult:
    """Per-minute traces (N, T + 1) at t_min = 0..T, per-patient metrics and the pumps.

    ``delivered_mg`` (N, T) is the morphine that reached each patient in each minute (the
    PK input); ``devices`` are the pump engines, with their records and PCA histories.
    """

    covariates: dict[str, NDArray[Any]]
    t_min: NDArray[np.int64]
    ce_ng_ml: Array
    pain_nrs: Array
    spo2_pct: Array
    etco2_mmhg: Array
    resp_rate_bpm: Array
    delivered_mg: Array
    metrics: list[dict[str, Any]]
    summary: dict[str, Any]
    program: dict[str, Any]
    devices: list[Device] = field(repr=False)
    seed: int = 0
    delivery_check_ml: float = 0.0
    interlock_events: list[list[dict[str, Any]]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.metrics)

    def patient(self, i: int, *, traces: bool = True) -> dict[str, Any]:
        """One patient as JSON-friendly data: id, covariates, metrics and (optionally) traces."""
        cov = self.covariates
        out: dict[str, Any] = {
            "id": i,
            "covariates": {
                "sex": "f" if cov["female"][i] else "m",
                "age_years": _num(cov["age_years"][i], 1),
                "weight_kg": _num(cov["weight_kg"][i], 1),
                "height_cm": _num(cov["height_cm"][i], 1),
            },
            "metrics": self.metrics[i],
        }
        if traces:
            out["traces"] = {
                "t_min": self.t_min.tolist(),
                "ce_ng_ml": _list(self.ce_ng_ml[i], 3),
                "pain_nrs": _list(self.pain_nrs[i], 2),
                "spo2_pct": _list(self.spo2_pct[i], 1),
            }
        return out


def _num(x: float, digits: int) -> float | None:
    return None if not math.isfinite(float(x)) else round(float(x), digits)


def _list(row: Array, digits: int) -> list[float | None]:
    return [None if math.isnan(v) else v for v in np.round(row, digits).tolist()]


# ---- setup ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cohort:
    age_years: Array  # NaN where unknown
    female: NDArray[np.bool_]
    height_cm: Array
    weight_kg: Array
    patients: list[Patient]


def _cohort(prep: Prepared) -> _Cohort:
    n = prep.n
    if prep.fixed is not None:
        p = prep.fixed
        if p.sex is None or p.weight_kg is None:  # the spec requires both
            raise InputError("patients.covariates", "", "needs weight and sex")
        return _Cohort(
            np.full(n, np.nan if p.age_years is None else p.age_years),
            np.full(n, p.sex is Sex.FEMALE),
            np.full(n, np.nan if p.height_cm is None else p.height_cm),
            np.full(n, p.weight_kg),
            [p] * n,
        )
    model = AdultCovariateModel(female_fraction=prep.scenario.patients.female_fraction)
    c = adult_cohort(n, seed=prep.cohort_seed, model=model, bounds=SARTON_BOUNDS)
    return _Cohort(
        c.age_years, c.female, c.height_cm, c.weight_kg, [c.patient(i) for i in range(n)]
    )


def _pk(cohort: _Cohort) -> PkModel:
    age = None if np.isnan(cohort.age_years).any() else cohort.age_years
    cov = Covariates(age_years=age, weight_kg=cohort.weight_kg, male=~cohort.female)
    try:
        _, model = build_model("morphine", "sarton", cov)
    except InputError as exc:
        raise InputError(f"patients.{exc.field}", exc.value, exc.rule) from None
    return model


def _program(ctx: T.Context, scenario: PcaScenario, i: int) -> T.Programmed:
    p = scenario.program
    try:
        return T.pca(
            ctx,
            drug=p.drug,
            concentration=p.concentration,
            demand_dose=p.demand_dose,
            lockout=p.lockout,
            basal=p.basal,
            limit_1h=p.limit_1h,
            limit_4h=p.limit_4h,
            loading=p.loading,
            bolus_rate=p.bolus_rate,
            override_reason=scenario.override_reason,
        )
    except DersError as exc:  # name the patient whose program the library refused
        raise type(exc)(exc.verdict, f"patient {i}: {exc}") from None
    except InputError as exc:
        raise InputError(f"program.{exc.field}", exc.value, exc.rule) from None


def _settings(ctx: T.Context, mech: Mechanism) -> ChannelSettings:
    """The care area's pump settings (as a pump scenario sets them)."""
    area = ctx.care_area
    low = min(1.0, 0.1 * (mech.reservoir_ml or 10.0))
    if area is None:
        return ChannelSettings(reservoir_low_ml=low)
    return ChannelSettings(
        occlusion_limit_mmhg=area.occlusion_pressure_mmhg,
        air_limit_ul=area.air_in_line_ul,
        air_accumulated_limit_ul=4 * area.air_in_line_ul,
        kvo_rate_ml_h=area.kvo_rate_ml_h,
        reservoir_low_ml=low,
    )


def interlock_limits(spec: InterlockSpec) -> InterlockLimits:
    """The interlock limits of a scenario's ``interlock`` field (durations parsed)."""

    def seconds(text: str, name: str) -> float:
        value = parse_quantity(text, Kind.DURATION, f"interlock.{name}") * 60.0
        if not 0 <= value <= 24 * 3600:
            raise InputError(f"interlock.{name}", text, "must be 0 to 24 h")
        return value

    try:
        return InterlockLimits(
            spo2_low_pct=spec.spo2_below_pct,
            spo2_duration_s=seconds(spec.spo2_for, "spo2_for"),
            etco2_high_mmhg=spec.etco2_above_mmhg,
            etco2_high_duration_s=seconds(spec.etco2_for, "etco2_for"),
            rr_low_bpm=spec.rr_below_bpm,
            rr_duration_s=seconds(spec.rr_for, "rr_for"),
            auto_resume=spec.auto_resume,
            resume_after_normal_s=seconds(spec.resume_after, "resume_after"),
            # readings come once a minute: stale after two missed ones
            stale_after_s=150.0,
        )
    except InputError as exc:
        if exc.field.startswith("interlock."):
            raise
        raise InputError(f"interlock.{exc.field}", exc.value, exc.rule) from None


_sample_library = functools.cache(sample_library)  # a frozen model: safe to share


def _library(scenario: PcaScenario) -> Library:
    return load_library(scenario.library) if scenario.library else _sample_library()


# ---- the trial -----------------------------------------------------------------------------


class _Trial:
    """One run: the state of every patient and pump, advanced minute by minute."""

    def __init__(self, prep: Prepared) -> None:
        sc = prep.scenario
        if sc.program.drug.strip().lower() != "morphine":
            raise InputError(
                "program.drug", sc.program.drug, "only morphine has a PK/PD model for PCA trials"
            )
        self.prep = prep
        self.sc = sc
        n = prep.n
        streams = np.random.SeedSequence(prep.seed).spawn(3)
        self.rng_pd, self.rng_demand = (np.random.default_rng(s) for s in streams[:2])
        monitor_seed = int(streams[2].generate_state(1)[0])
        self.cohort = _cohort(prep)
        self.model = _pk(self.cohort)
        self.kernel = minute_kernel(self.model)
        self.pd = draw_pd(sc, self.cohort.female, self.rng_pd)
        self.monitor = RespiratoryMonitor(
            seed=monitor_seed if sc.respiration.monitor_noise else None,
            noise=sc.respiration.monitor_noise,
        )
        self.paco2_0 = self.monitor.baseline.paco2_mmhg
        library = _library(sc)
        try:
            area = library.care_area(sc.care_area)
        except InputError as exc:
            raise InputError("care_area", sc.care_area, exc.rule) from None
        self.mech = pca_pump()
        devices = []
        programmed = None
        for i, patient in enumerate(self.cohort.patients):
            ctx = T.Context(self.mech, patient, library, area)
            programmed = _program(ctx, sc, i)
            device = Device([self.mech], settings=[_settings(ctx, self.mech)])
            device.battery.on_mains = True  # a ward PCA pump runs on mains
            device.program(0, programmed.plan, **programmed.journal_info())
            device.start(0)
            devices.append(device)
        assert programmed is not None and programmed.plan.drug is not None
        drug = programmed.plan.drug
        if drug.amount_unit != "mg":
            raise InputError("program.concentration", drug.amount_unit, "must be a mass (mg/mL)")
        self.plan = programmed
        self.pumps = _Pumps(devices, drug.per_ml, self.kernel)
        self.fault_on = np.zeros(n, dtype=bool)
        self.nurse_due: dict[int, float] = {}
        self.syringe_changes = np.zeros(n, dtype=np.int64)
        # fault actions, in time order: (t_s, order, patient, kind, phase)
        actions = []
        for k, f in enumerate(prep.faults):
            for p in f.patients:
                actions.append((f.start_s, 2 * k, p, f.kind, "start"))
                actions.append((f.stop_s, 2 * k + 1, p, f.kind, "stop"))
        self.fault_actions = sorted(actions)
        spec = sc.interlock
        self.interlocks: list[PcaInterlock] | None = None
        if spec is not None and spec.enabled:
            limits = interlock_limits(spec)
            self.interlocks = [PcaInterlock(limits) for _ in range(n)]
        self.il_paused = np.zeros(n, dtype=bool)
        self.il_refuse = np.zeros(n, dtype=bool)
        self.il_paused_min = np.zeros(n, dtype=np.int64)
        self.il_refused = np.zeros(n, dtype=np.int64)
        self.il_pending: dict[int, tuple[str, str | None, str]] = {}
        self.il_nurse_due: dict[int, float] = {}
        self.il_events: list[list[dict[str, Any]]] = [[] for _ in range(n)]

    # -- pump actions ----------------------------------------------------------------------

    def _after(self, i: int) -> None:
        """Schedule the nurse for alarms the pump raised since it was last read."""
        times = self.pumps.new_alarm_times(i)
        if times and i not in self.nurse_due:
            self.nurse_due[i] = times[0] + self.prep.nurse_response_s

    def _press(self, i: int, t: float) -> None:
        if self.il_refuse[i] and not self.il_paused[i]:
            self.il_refused[i] += 1  # sensor data stale: the demand is not passed on
            return
        self.pumps.sync(i, t, command=True)
        with contextlib.suppress(CommandRejected):  # the device records a rejected command
            self.pumps.devices[i].demand(0)
        self.pumps.acted(i)
        self._after(i)

    def _fault(self, i: int, t: float, kind: str, phase: str) -> None:
        d = self.pumps.devices[i]
        self.pumps.sync(i, t, command=True)
        try:
            if phase == "start":
                self.fault_on[i] = True
                if kind == "suspend":
                    d.pause(0)
                else:
                    d.inject(0, kind)
            else:
                self.fault_on[i] = False
                if kind != "suspend":
                    d.inject(0, "clear_occlusion" if kind == "occlusion" else "reconnect")
        except CommandRejected:
            pass
        self.pumps.acted(i)
        self._after(i)
        if phase == "stop":
            self._nurse(i, t)

    def _nurse(self, i: int, t: float) -> None:
        """The nurse at the pump: change a nearly empty syringe, acknowledge alarms, resume.
        During a fault window the nurse waits for its end (which calls this again)."""
        self.nurse_due.pop(i, None)
        if self.fault_on[i]:
            return
        d = self.pumps.devices[i]
        ch = d.channels[0]
        self.pumps.sync(i, t, command=True)
        again = False
        try:
            low = ch.reservoir_ml is not None and ch.reservoir_ml <= ch.settings.reservoir_low_ml
            if low and ch.state is State.BOLUS:
                again = True  # do not cut a dose short: come back in a minute
            elif low:
                if ch.state in (State.RUNNING, State.KVO):
                    d.pause(0)
                found = ch.reservoir_ml or 0.0
                ch.refill(d.t_s, found, (self.mech.reservoir_ml or found) - found)
                self.syringe_changes[i] += 1
            for alarm in d.board.active(0):
                if not alarm.acknowledged:
                    d.acknowledge(0, alarm.alarm)
            if ch.state is State.PAUSED and not self.il_paused[i]:
                d.resume(0)
        except CommandRejected:
            again = True  # e.g. the dose-limit window is still full
        self.pumps.acted(i)
        self.pumps.new_alarm_times(i)  # alarms already being handled
        if again or (ch.state is State.PAUSED and not self.il_paused[i]):
            self.nurse_due[i] = t + 60.0

    # -- respiratory interlock -------------------------------------------------------------

    def _interlock_decide(self, m: int, spo2: Array, etco2: Array, rr: Array) -> None:
        """Readings at the end of minute ``m``: decisions, acted on at the next minute's start."""
        if self.interlocks is None:
            return
        t = (m + 1) * 60.0
        for i, il in enumerate(self.interlocks):
            d = il.update(t, float(spo2[i]), float(etco2[i]), float(rr[i]))
            self.il_refuse[i] = d.refuse_demands
            if d.pause and not self.il_paused[i]:
                self.il_pending[i] = ("pause", d.alarm, d.reason)
            elif not d.pause and self.il_paused[i]:
                self.il_pending[i] = ("auto-resume", None, d.reason)
            if self.il_paused[i]:
                self.il_paused_min[i] += 1

    def _interlock_act(self, i: int, t: float, what: str, alarm: str | None, why: str) -> None:
        """Pause or resume pump ``i`` for the interlock, through the pump's own commands."""
        d = self.pumps.devices[i]
        ch = d.channels[0]
        self.pumps.sync(i, t, command=True)
        done = False
        with contextlib.suppress(CommandRejected):
            if what == "pause":
                self.il_paused[i] = True
                self.il_nurse_due[i] = t + self.prep.nurse_response_s
                if ch.state is not State.PAUSED:
                    d.pause(0)
                done = True
            else:
                self.il_paused[i] = False
                self.il_nurse_due.pop(i, None)
                if ch.state is State.PAUSED and not self.fault_on[i]:
                    d.resume(0)
                done = True
        self.pumps.acted(i)
        self._after(i)
        event = {"t_min": round(t / 60.0, 3), "event": what, "alarm": alarm, "reason": why}
        self.il_events[i].append({**event, "pump_command_ok": done})

    def _interlock_nurse(self, i: int, t: float) -> None:
        """The nurse answers the interlock alarm: resumes once readings are normal."""
        assert self.interlocks is not None
        self.il_nurse_due.pop(i, None)
        if not self.il_paused[i]:
            return
        if self.interlocks[i].clinician_resume(t):
            self._interlock_act(i, t, "clinician-resume", None, "readings normal; nurse resumed")
        else:
            self.il_nurse_due[i] = t + INTERLOCK_RECHECK_S

    # -- the loop ----------------------------------------------------------------------------

    def run(self, progress: Callable[[int], None] | None) -> PcaTrialResult:
        prep, pd, pumps = self.prep, self.pd, self.pumps
        n, total = prep.n, prep.minutes
        ce = np.full((n, total + 1), np.nan)
        pain = np.full((n, total + 1), np.nan)
        spo2 = np.full((n, total + 1), np.nan)
        etco2 = np.full((n, total + 1), np.nan)
        rr = np.full((n, total + 1), np.nan)
        sao2 = np.full((n, total + 1), np.nan)
        delivered = np.zeros((n, total))
        x = np.zeros((n, 4))
        readings = self.monitor.measure(0.0, np.ones(n))
        spo2[:, 0], etco2[:, 0] = readings.spo2_pct, readings.etco2_mmhg
        rr[:, 0], sao2[:, 0] = readings.resp_rate_bpm, readings.true.sao2_pct
        paco2 = readings.true.paco2_mmhg
        ml_start = pumps.predicted_ml(0.0)
        demand = self.sc.demand
        scripted = prep.demand_times_s or ()
        s_ptr = f_ptr = 0
        press_per_min = demand.presses_per_h / 60.0 if isinstance(demand, PainDemand) else 0.0
        for m in range(total):
            t0, t1 = m * 60.0, (m + 1) * 60.0
            pumps.begin_minute(t1)
            ce[:, m] = x[:, 3] * MG_L_TO_NG_ML
            pain[:, m] = pd.pain_nrs(float(m), ce[:, m])
            vent = pd.ventilation(ce[:, m], paco2, self.paco2_0)
            # What happens in this minute, per patient, in time order.
            todo: dict[int, list[tuple[float, int, str, str]]] = {}
            for i, due in list(self.nurse_due.items()):
                if due < t1:
                    todo.setdefault(i, []).append((max(due, t0), 0, "nurse", ""))
            for i, (what, _, _) in self.il_pending.items():
                todo.setdefault(i, []).append((t0, -1, "interlock", what))
            for i, due in list(self.il_nurse_due.items()):
                if due < t1:
                    todo.setdefault(i, []).append((max(due, t0), 0, "interlock-nurse", ""))
            while f_ptr < len(self.fault_actions) and self.fault_actions[f_ptr][0] < t1:
                t, _, i, kind, phase = self.fault_actions[f_ptr]
                todo.setdefault(i, []).append((t, 1, kind, phase))
                f_ptr += 1
            if isinstance(demand, PainDemand):
                lam = np.where(reported_nrs(pain[:, m]) >= demand.threshold_nrs, press_per_min, 0.0)
                count = self.rng_demand.poisson(lam)
                for who in np.flatnonzero(count):
                    for t in np.sort(t0 + 60.0 * self.rng_demand.random(int(count[who]))):
                        todo.setdefault(int(who), []).append((float(t), 2, "press", ""))
            else:
                while s_ptr < len(scripted) and scripted[s_ptr] < t1:
                    for i in range(n):
                        todo.setdefault(i, []).append((scripted[s_ptr], 2, "press", ""))
                    s_ptr += 1
            for i, items in todo.items():
                for t, _, kind, phase in sorted(items):
                    if kind == "press":
                        self._press(i, t)
                    elif kind == "nurse":
                        self._nurse(i, t)
                    elif kind == "interlock":
                        what, alarm, why = self.il_pending.pop(i)
                        self._interlock_act(i, t, what, alarm, why)
                    elif kind == "interlock-nurse":
                        self._interlock_nurse(i, t)
                    else:
                        self._fault(i, t, kind, phase)
            # The minute's end: pumps with an event by then are advanced, others flow on.
            ml_end, synced = pumps.end_minute()
            for i in synced:
                self._after(int(i))
            delivered[:, m] = (ml_end - ml_start) * pumps.mg_per_ml
            ml_start = ml_end
            x = np.einsum("nij,nj->ni", self.kernel.phi, x) + pumps.drive
            readings = self.monitor.measure(float(m + 1), vent)
            spo2[:, m + 1] = readings.spo2_pct
            etco2[:, m + 1] = readings.etco2_mmhg
            rr[:, m + 1] = readings.resp_rate_bpm
            sao2[:, m + 1] = readings.true.sao2_pct
            paco2 = readings.true.paco2_mmhg
            self._interlock_decide(m, spo2[:, m + 1], etco2[:, m + 1], rr[:, m + 1])
            if progress is not None and (m + 1) % 60 == 0:
                progress(60)
        if progress is not None and total % 60:
            progress(total % 60)
        ce[:, total] = x[:, 3] * MG_L_TO_NG_ML
        pain[:, total] = pd.pain_nrs(float(total), ce[:, total])
        for i in range(n):  # every pump to the end of the trial
            pumps.sync(i, total * 60.0)
        return self._result(ce, pain, spo2, etco2, rr, sao2, delivered)

    def _result(
        self,
        ce: Array,
        pain: Array,
        spo2: Array,
        etco2: Array,
        rr: Array,
        sao2: Array,
        delivered: Array,
    ) -> PcaTrialResult:
        prep, sc, cohort = self.prep, self.sc, self.cohort
        ev = sc.respiratory_event
        # one sample per minute, at the end of each minute (minutes 1..T)
        meets = (
            (spo2[:, 1:] <= ev.spo2_at_most_pct)
            | (rr[:, 1:] <= ev.rr_at_most_bpm)
            | (etco2[:, 1:] >= ev.etco2_at_least_mmhg)
            | (etco2[:, 1:] <= ev.etco2_at_most_mmhg)
        )
        metrics = []
        for i, device in enumerate(self.pumps.devices):
            ch = device.channels[0]
            history = ch.pca_history
            reasons: dict[str, int] = {}
            for h in history:
                if not h.granted:
                    reasons[h.reason] = reasons.get(h.reason, 0) + 1
            alarms: dict[str, int] = {}
            for r in device.records:
                if r.kind == "alarm" and not r.data.get("escalated"):
                    code = str(r.data.get("code"))
                    alarms[code] = alarms.get(code, 0) + 1
            episodes, ep_minutes = _episodes(meets[i], prep.event_min_duration_min)
            weight = float(cohort.weight_kg[i])
            pumped = ch.drug_amount
            first_day = float(delivered[i, :1440].sum()) if prep.minutes >= 1440 else None
            metrics.append(
                {
                    "opioid_mg": round(pumped, 6),
                    "opioid_mg_per_kg": round(pumped / weight, 6),
                    "received_mg": round(ch.patient_ml * self.pumps.mg_per_ml, 6),
                    "received_mg_first_24h": None if first_day is None else round(first_day, 6),
                    "demands": len(history),
                    "granted": sum(r.granted for r in history),
                    "denied": sum(not r.granted for r in history),
                    "denied_reasons": reasons,
                    "mean_pain_nrs": round(float(pain[i, 1:].mean()), 4),
                    "pain_free_fraction": round(
                        float((reported_nrs(pain[i, 1:]) <= sc.pain.acceptable_nrs).mean()), 6
                    ),
                    "resp_events": episodes,
                    "resp_event_minutes": ep_minutes,
                    "min_spo2_pct": _nan_round(np.nanmin, spo2[i]),
                    "min_sao2_pct": round(float(sao2[i].min()), 2),
                    "max_etco2_mmhg": _nan_round(np.nanmax, etco2[i]),
                    "min_resp_rate_bpm": _nan_round(np.nanmin, rr[i]),
                    "max_ce_ng_ml": round(float(ce[i].max()), 4),
                    "syringe_changes": int(self.syringe_changes[i]),
                    "alarms": alarms,
                }
            )
            if self.interlocks is not None:
                metrics[-1]["interlock"] = {
                    "pauses": sum(e["event"] == "pause" for e in self.il_events[i]),
                    "paused_minutes": int(self.il_paused_min[i]),
                    "refused_demands_stale": int(self.il_refused[i]),
                }
        covariates: dict[str, NDArray[Any]] = {
            "age_years": cohort.age_years,
            "female": cohort.female,
            "height_cm": cohort.height_cm,
            "weight_kg": cohort.weight_kg,
        }
        plan = self.plan
        program = {
            "drug": plan.plan.drug.name if plan.plan.drug else None,
            "concentration_mg_ml": self.pumps.mg_per_ml,
            **plan.summary,
            "limits": [
                {"window_h": w / 3600.0, "max_mg": a}
                for w, a in (plan.plan.pca.limits if plan.plan.pca else ())
            ],
            "verdict": plan.verdict.label if plan.verdict else None,
            "override": plan.override.reason if plan.override else None,
        }
        return PcaTrialResult(
            covariates=covariates,
            t_min=np.arange(prep.minutes + 1),
            ce_ng_ml=ce,
            pain_nrs=pain,
            spo2_pct=spo2,
            etco2_mmhg=etco2,
            resp_rate_bpm=rr,
            delivered_mg=delivered,
            metrics=metrics,
            summary=summarize(metrics, prep.minutes),
            program=program,
            devices=self.pumps.devices,
            seed=prep.seed,
            delivery_check_ml=self.pumps.check_ml,
            interlock_events=self.il_events if self.interlocks is not None else [],
        )


def _nan_round(fn: Callable[[Array], Any], row: Array) -> float | None:
    if np.all(np.isnan(row)):
        return None
    return round(float(fn(row)), 2)


def _episodes(meets: NDArray[np.bool_], min_minutes: int) -> tuple[int, int]:
    """Runs of consecutive minutes meeting a criterion, at least ``min_minutes`` long:
    (count, minutes in them)."""
    edges = np.diff(np.concatenate(([0], meets.astype(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = stops - starts
    long = lengths >= min_minutes
    return int(long.sum()), int(lengths[long].sum())


def summarize(metrics: Sequence[dict[str, Any]], minutes: int) -> dict[str, Any]:
    """Pooled outcomes: distribution of opioid use and pain, totals of demands and events."""

    def col(key: str) -> Array:
        return np.array([m[key] for m in metrics], dtype=np.float64)

    def spread(values: Array, digits: int = 3) -> dict[str, float]:
        q = np.percentile(values, [5, 50, 95])
        return {
            "mean": round(float(values.mean()), digits),
            "p5": round(float(q[0]), digits),
            "median": round(float(q[1]), digits),
            "p95": round(float(q[2]), digits),
        }

    reasons: dict[str, int] = {}
    for m in metrics:
        for k, v in m["denied_reasons"].items():
            reasons[k] = reasons.get(k, 0) + v
    events = col("resp_events")
    spo2 = [m["min_spo2_pct"] for m in metrics if m["min_spo2_pct"] is not None]
    sao2 = [m["min_sao2_pct"] for m in metrics]
    etco2 = [m["max_etco2_mmhg"] for m in metrics if m["max_etco2_mmhg"] is not None]
    return {
        "patients": len(metrics),
        "minutes": minutes,
        "opioid_mg": spread(col("opioid_mg")),
        "opioid_mg_per_kg": spread(col("opioid_mg_per_kg"), 4),
        "demands": int(col("demands").sum()),
        "granted": int(col("granted").sum()),
        "denied": int(col("denied").sum()),
        "denied_reasons": reasons,
        "mean_pain_nrs": spread(col("mean_pain_nrs")),
        "pain_free_fraction": spread(col("pain_free_fraction"), 4),
        "resp_events": int(events.sum()),
        "resp_event_minutes": int(col("resp_event_minutes").sum()),
        "patients_with_resp_event": int((events > 0).sum()),
        "min_spo2_pct": min(spo2) if spo2 else None,
        "min_sao2_pct": min(sao2) if sao2 else None,
        "max_etco2_mmhg": max(etco2) if etco2 else None,
    }


def run_pca_trial(
    scenario: PcaScenario,
    *,
    n: int | None = None,
    seed: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> PcaTrialResult:
    """Run ``scenario`` (``n`` patients and ``seed`` override the file's). ``progress`` is
    called with the minutes simulated since its last call."""
    prep = prepare(scenario, n=n, seed=seed)
    return _Trial(prep).run(progress)


__all__ = [
    "MinuteKernel",
    "PcaTrialResult",
    "Pd",
    "draw_pd",
    "interlock_limits",
    "minute_kernel",
    "reported_nrs",
    "run_pca_trial",
    "summarize",
]
