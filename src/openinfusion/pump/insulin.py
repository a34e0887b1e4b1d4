"""Insulin patch pump: settings, insulin action, basal schedules, bolus wizard and the pump.

Everything here is programmed from the patient's own pump settings
(:class:`InsulinSettings`); a drug library check is optional (:func:`check_library`).

Units, throughout (names say them): insulin in units (U), rates in U/h, glucose in mg/dL,
carbohydrate in g, pump times in monotonic pump seconds (``*_s``), insulin-action ages in
minutes (``t_min``). The engine below works in mL and mL/h; ``units_per_ml`` converts.

Choices, stated once:

- **Basal rates are never silently changed.** A profile rate that is not a multiple of the
  basal increment (one pulse per hour, 0.05 U/h for 0.05 U pulses) is refused. Amounts the
  pump computes itself (a percent temp basal, a bolus recommendation) are rounded DOWN to
  the increment: a driver rounds down, never up.
- **IOB is net of the scheduled basal** (like oref0): insulin delivered minus insulin the
  basal schedule would have delivered, so it is negative after a suspension. The undelivered
  remainder of a running bolus counts as fully on board. The bolus wizard subtracts
  ``max(IOB, 0)``: a negative IOB never increases a bolus.
- **Max IOB bounds the net IOB at all future times**, not only at the moment of a command.
  Boluses and temp basals are checked against the *committed* IOB
  (:meth:`InsulinPump.committed_iob`): the on-board part of what was delivered ABOVE the
  schedule (a deficit from a suspension or low temp is ignored, since it wears off and
  would let the net IOB rise again later), plus undelivered boluses, plus what a running
  temp basal will still give above the schedule. Only boluses and temp basals add to it,
  and it only decays between commands, so the net IOB can never pass max IOB (oref0 caps
  its insulin requests at max IOB in the same spirit, AID_REFERENCE.md §2.3). This holds
  within the compiled basal horizon (:func:`basal_plan`), where delivery follows the
  schedule exactly.
- **Suspend cancels boluses and a temp basal** (the engine never resumes an interrupted
  bolus, RELIABILITY B-15); resume re-compiles the basal schedule from the local clock, so
  the schedule stays on time of day however long the suspension was.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import time
from enum import StrEnum
from functools import lru_cache
from typing import Any

from openinfusion.errors import InputError, InputErrors
from openinfusion.library import Library, Override, Program, Verdict, check
from openinfusion.patient import Patient
from openinfusion.pump.channel import Channel, ChannelSettings, CommandRejected, State
from openinfusion.pump.clock import PumpClock
from openinfusion.pump.device import Device
from openinfusion.pump.mechanics import insulin_patch
from openinfusion.pump.plan import DrugInfo, Envelope, Overlay, OverlayKind, Plan, Step, StepKind
from openinfusion.pump.therapies import authorize
from openinfusion.units import parse_dose

DAY_S = 86_400.0
DEFAULT_HORIZON_S = 7 * DAY_S  # a patch is replaced every 3 days; a week covers one with room
_TOL = 1e-9

# ---- settings --------------------------------------------------------------------------------

# Accepted ranges: those of current patch/tubed pumps' settings screens (Omnipod, Medtronic)
# and, for the insulin curve, oref0's (DIA >= 5 h for exponential curves, custom peak 35 to
# 120 min). AID_REFERENCE.md §2.3.
CARB_RATIO_RANGE = (1.0, 150.0)  # g/U
ISF_RANGE = (1.0, 400.0)  # mg/dL per U
TARGET_RANGE = (70.0, 200.0)  # mg/dL
MAX_BASAL_RANGE = (0.05, 30.0)  # U/h
MAX_BOLUS_RANGE = (0.05, 30.0)  # U
MAX_IOB_RANGE = (0.05, 100.0)  # U
DIA_RANGE = (5.0, 8.0)  # h
PEAK_RANGE = (35.0, 120.0)  # min
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class BasalSegment:
    """From local time ``start`` (until the next segment) deliver ``units_h`` U/h."""

    start: time
    units_h: float


@dataclass(frozen=True)
class InsulinSettings:
    """A patient's pump settings. Every field is validated; all problems are reported at once.

    ``basal``: ``[("HH:MM", U/h), ...]`` local start times, sorted, the first at 00:00, each
    rate a multiple of the basal increment and at most ``max_basal_units_h``.
    ``carb_ratio_g_per_unit`` (g/U), ``isf_mg_dl_per_unit`` (mg/dL per U), targets (mg/dL),
    ``max_basal_units_h`` (U/h), ``max_bolus_units`` (U), ``max_iob_units`` (U), ``dia_h``
    (h, >= 5 for the exponential curve), ``peak_min`` (min; 75 rapid-acting, 55
    ultra-rapid), ``units_per_ml`` (U/mL, 100 for U-100), ``pulse_units`` (U per pulse).
    """

    basal: Sequence[tuple[str, float]]
    carb_ratio_g_per_unit: float
    isf_mg_dl_per_unit: float
    target_low_mg_dl: float
    target_high_mg_dl: float
    max_basal_units_h: float
    max_bolus_units: float
    max_iob_units: float
    dia_h: float = 5.0
    peak_min: float = 75.0
    units_per_ml: float = 100.0
    pulse_units: float = 0.05
    segments: tuple[BasalSegment, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "basal", tuple((str(s), r) for s, r in self.basal))
        problems = _scalar_problems(self)
        segments, basal_problems = _parse_basal(self)
        problems += basal_problems
        if problems:
            raise InputErrors("insulin settings", problems)
        object.__setattr__(self, "segments", tuple(segments))

    @property
    def basal_increment_units_h(self) -> float:
        """Smallest basal step the pump can run evenly: one pulse per hour (U/h)."""
        return self.pulse_units

    @property
    def dia_min(self) -> float:
        return self.dia_h * 60.0

    def ml(self, units: float) -> float:
        """Volume (mL) of ``units`` U at this concentration (also U/h -> mL/h)."""
        return units / self.units_per_ml


def _bad_number(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)


def _in_range(name: str, value: float, low: float, high: float, unit: str) -> list[InputError]:
    if _bad_number(value):
        return [InputError(name, value, "must be a finite number")]
    if not low <= value <= high:
        return [InputError(name, value, f"must be {low:g} to {high:g} {unit}")]
    return []


def _scalar_problems(s: InsulinSettings) -> list[InputError]:
    out: list[InputError] = []
    out += _in_range("carb_ratio_g_per_unit", s.carb_ratio_g_per_unit, *CARB_RATIO_RANGE, "g/U")
    out += _in_range("isf_mg_dl_per_unit", s.isf_mg_dl_per_unit, *ISF_RANGE, "mg/dL per U")
    out += _in_range("target_low_mg_dl", s.target_low_mg_dl, *TARGET_RANGE, "mg/dL")
    out += _in_range("target_high_mg_dl", s.target_high_mg_dl, *TARGET_RANGE, "mg/dL")
    if not out and s.target_low_mg_dl > s.target_high_mg_dl:
        out.append(InputError("target_low_mg_dl", s.target_low_mg_dl, "must not exceed the high"))
    out += _in_range("max_basal_units_h", s.max_basal_units_h, *MAX_BASAL_RANGE, "U/h")
    out += _in_range("max_bolus_units", s.max_bolus_units, *MAX_BOLUS_RANGE, "U")
    out += _in_range("max_iob_units", s.max_iob_units, *MAX_IOB_RANGE, "U")
    out += _in_range("dia_h", s.dia_h, *DIA_RANGE, "h (exponential curve: at least 5 h)")
    out += _in_range("peak_min", s.peak_min, *PEAK_RANGE, "min")
    out += _in_range("units_per_ml", s.units_per_ml, 1.0, 1000.0, "U/mL")
    out += _in_range("pulse_units", s.pulse_units, 0.001, 1.0, "U")
    return out


def _parse_hhmm(name: str, text: str) -> time | InputError:
    match = _HHMM.match(text)
    if match is None:
        return InputError(name, text, "must be a local time 'HH:MM' (00:00 to 23:59)")
    return time(int(match.group(1)), int(match.group(2)))


def _parse_basal(s: InsulinSettings) -> tuple[list[BasalSegment], list[InputError]]:
    problems: list[InputError] = []
    segments: list[BasalSegment] = []
    if not s.basal:
        return [], [InputError("basal", "[]", "needs at least one entry, starting at 00:00")]
    for i, (start_text, rate) in enumerate(s.basal):
        start = _parse_hhmm(f"basal[{i}].start", start_text)
        if isinstance(start, InputError):
            problems.append(start)
            continue
        problems += _basal_rate_problems(s, f"basal[{i}].units_h", rate)
        if segments and start <= segments[-1].start:
            problems.append(
                InputError(f"basal[{i}].start", start_text, "must be after the one before")
            )
        segments.append(BasalSegment(start, float(rate) if not _bad_number(rate) else 0.0))
    if segments and segments[0].start != time(0, 0):
        problems.append(
            InputError("basal[0].start", s.basal[0][0], "the first entry must be 00:00")
        )
    return segments, problems


def _basal_rate_problems(s: InsulinSettings, name: str, rate: float) -> list[InputError]:
    if _bad_number(rate) or rate < 0:
        return [InputError(name, rate, "must be a finite rate >= 0 U/h")]
    if not _bad_number(s.max_basal_units_h) and rate > s.max_basal_units_h * (1 + _TOL):
        return [InputError(name, rate, f"is above max basal {s.max_basal_units_h:g} U/h")]
    if _bad_number(s.pulse_units) or s.pulse_units <= 0:
        return []  # reported with the pulse size itself
    return _increment_problems(name, rate, s.pulse_units)


def _increment_problems(name: str, rate: float, increment: float) -> list[InputError]:
    """A basal rate must be a whole number of pulses per hour (refused, never rounded)."""
    if is_multiple(rate, increment):
        return []
    down = floor_to(rate, increment)
    rule = f"must be a multiple of {increment:g} U/h (one pulse per hour); the pump can run {down:g} U/h"
    return [InputError(name, rate, rule)]


def is_multiple(value: float, step: float) -> bool:
    """True when ``value`` is a whole number of ``step`` (to 1e-6 of a step)."""
    ratio = value / step
    return abs(ratio - round(ratio)) <= 1e-6


def floor_to(value: float, step: float) -> float:
    """``value`` rounded DOWN to a whole number of ``step`` (never up; 0 for value <= 0)."""
    if value <= 0:
        return 0.0
    return round(math.floor(value / step + 1e-6) * step, 10)


# ---- insulin action (exponential curve) -----------------------------------------------------
#
# The exponential insulin model of LoopKit (ExponentialInsulinModel) as used by OpenAPS
# oref0 lib/iob/calculate.js, iobCalcExponential (AID_REFERENCE.md §2.3). With td = DIA in
# minutes and tp = peak time in minutes:
#   tau = tp (1 - tp/td) / (1 - 2 tp/td),  a = 2 tau / td,  S = 1 / (1 - a + (1 + a) e^(-td/tau))
#   activity(t) = U (S / tau^2) t (1 - t/td) e^(-t/tau)                      [U/min]
#   IOB(t) = U [1 - S (1 - a) ((t^2 / (tau td (1 - a)) - t/tau - 1) e^(-t/tau) + 1)]   [U]
# for 0 <= t < td; both are 0 from td on.


@dataclass(frozen=True, slots=True)
class _Curve:
    td: float  # min
    tau: float  # min
    a: float
    s: float


@lru_cache(maxsize=64)
def _curve(dia_h: float, peak_min: float) -> _Curve:
    td = dia_h * 60.0
    if not (math.isfinite(td) and math.isfinite(peak_min) and 0 < peak_min < td / 2):
        raise InputError(
            "peak_min", peak_min, f"must be > 0 and below half the DIA ({td / 2:g} min)"
        )
    tau = peak_min * (1 - peak_min / td) / (1 - 2 * peak_min / td)
    a = 2 * tau / td
    s = 1 / (1 - a + (1 + a) * math.exp(-td / tau))
    return _Curve(td, tau, a, s)


def _iob_fraction(c: _Curve, t_min: float) -> float:
    """Fraction of a dose still on board ``t_min`` minutes after it was given."""
    if t_min <= 0:
        return 1.0
    if t_min >= c.td:
        return 0.0
    t = t_min
    bracket = (t * t / (c.tau * c.td * (1 - c.a)) - t / c.tau - 1) * math.exp(-t / c.tau) + 1
    return 1 - c.s * (1 - c.a) * bracket


def _iob_fraction_integral(c: _Curve, t_min: float) -> float:
    """Integral of the on-board fraction from 0 to ``t_min`` (minutes), exact (closed form)."""
    u = min(max(t_min, 0.0), c.td)
    c2 = 1 / (c.tau * c.td * (1 - c.a))

    def g(x: float) -> float:  # antiderivative of (c2 x^2 - x/tau - 1) e^(-x/tau)
        return math.exp(-x / c.tau) * (
            -c2 * c.tau * (x * x + 2 * c.tau * x + 2 * c.tau**2) + x + 2 * c.tau
        )

    return u - c.s * (1 - c.a) * (g(u) - g(0.0) + u)


def _activity_fraction(c: _Curve, t_min: float) -> float:
    """Fraction of a dose acting per minute ``t_min`` minutes after it was given (1/min)."""
    if t_min < 0 or t_min >= c.td:
        return 0.0
    return (c.s / c.tau**2) * t_min * (1 - t_min / c.td) * math.exp(-t_min / c.tau)


def insulin_activity(t_min: float, dose_units: float, dia_h: float, peak_min: float) -> float:
    """Insulin activity (U/min) ``t_min`` minutes after a dose of ``dose_units`` U.

    0 before the dose (t < 0) and from the end of action (t >= DIA) on.
    """
    return dose_units * _activity_fraction(_curve(dia_h, peak_min), t_min)


def iob(t_min: float, dose_units: float, dia_h: float, peak_min: float) -> float:
    """Insulin on board (U) ``t_min`` minutes after a dose of ``dose_units`` U.

    The whole dose at t = 0, nothing from t = DIA on; a dose in the future (t < 0) is not on
    board yet (0).
    """
    if t_min < 0:
        return 0.0
    return dose_units * _iob_fraction(_curve(dia_h, peak_min), t_min)


class DeliveryKind(StrEnum):
    BASAL = "basal"
    TEMP_BASAL = "temp_basal"
    BOLUS = "bolus"
    EXTENDED = "extended"
    SCHEDULED = "scheduled"  # what the basal schedule prescribes (the reference for net IOB)
    EXCESS = "excess"  # delivered above the schedule (the committed IOB of max IOB checks)


@dataclass(frozen=True, slots=True)
class Delivery:
    """``units`` U delivered evenly from ``start_s`` to ``end_s`` (pump s; equal = at once).

    Units may be negative in a net history (less than scheduled).
    """

    start_s: float
    end_s: float
    units: float
    kind: DeliveryKind

    @property
    def rate_units_h(self) -> float:
        span = self.end_s - self.start_s
        return math.inf if span <= 0 else self.units * 3600.0 / span


def _delivered_by(d: Delivery, now_s: float) -> tuple[float, float, float]:
    """(units, oldest age, youngest age in minutes) of the part of ``d`` delivered by now."""
    if d.start_s > now_s:
        return 0.0, 0.0, 0.0
    end = min(d.end_s, now_s)
    span = d.end_s - d.start_s
    units = d.units if span <= 0 else d.units * (end - d.start_s) / span
    return units, (now_s - d.start_s) / 60.0, (now_s - end) / 60.0


def _piece_iob(c: _Curve, d: Delivery, now_s: float) -> float:
    units, oldest, youngest = _delivered_by(d, now_s)
    if units == 0.0 or youngest >= c.td:
        return 0.0
    if oldest - youngest <= 1e-12:
        return units * _iob_fraction(c, youngest)
    area = _iob_fraction_integral(c, oldest) - _iob_fraction_integral(c, youngest)
    return units * area / (oldest - youngest)


def _piece_activity(c: _Curve, d: Delivery, now_s: float) -> float:
    units, oldest, youngest = _delivered_by(d, now_s)
    if units == 0.0 or youngest >= c.td:
        return 0.0
    if oldest - youngest <= 1e-12:
        return units * _activity_fraction(c, youngest)
    # activity is minus the derivative of the on-board fraction
    return units * (_iob_fraction(c, youngest) - _iob_fraction(c, oldest)) / (oldest - youngest)


def iob_total(history: Iterable[Delivery], now_s: float, dia_h: float, peak_min: float) -> float:
    """Insulin on board (U) at ``now_s`` from the deliveries given, each spread evenly over
    its span and integrated exactly; only what was delivered by ``now_s`` counts.

    It returns whatever the history is: absolute IOB for absolute deliveries, net IOB for a
    net history (or subtract :func:`iob_total` of the scheduled basal, as
    :meth:`InsulinPump.iob` does).
    """
    c = _curve(dia_h, peak_min)
    return sum(_piece_iob(c, d, now_s) for d in history)


def units_within(pieces: Iterable[Delivery], t0: float, t1: float) -> float:
    """Units (U) of ``pieces`` delivered within [t0, t1) (pump s), each spread evenly."""
    total = 0.0
    for d in pieces:
        span = d.end_s - d.start_s
        if span <= 0:
            total += d.units if t0 <= d.start_s < t1 else 0.0
            continue
        overlap = min(d.end_s, t1) - max(d.start_s, t0)
        if overlap > 0:
            total += d.units * overlap / span
    return total


def excess_over(
    delivered: Sequence[Delivery], reference: Sequence[Delivery], t0: float, t1: float
) -> list[Delivery]:
    """The positive part of ``delivered`` minus ``reference`` over [t0, t1), as EXCESS
    pieces of constant rate (between any two piece boundaries both rates are constant)."""
    cuts = {t0, t1}
    for d in (*delivered, *reference):
        cuts.update(x for x in (d.start_s, d.end_s) if t0 < x < t1)
    out: list[Delivery] = []
    ordered = sorted(cuts)
    for a, b in itertools.pairwise(ordered):
        net = units_within(delivered, a, b) - units_within(reference, a, b)
        if net > 1e-12:
            out.append(Delivery(a, b, net, DeliveryKind.EXCESS))
    return out


def activity_total(
    history: Iterable[Delivery], now_s: float, dia_h: float, peak_min: float
) -> float:
    """Insulin activity (U/min) at ``now_s`` from the deliveries given (see :func:`iob_total`)."""
    c = _curve(dia_h, peak_min)
    return sum(_piece_activity(c, d, now_s) for d in history)


# ---- basal schedule ---------------------------------------------------------------------------


class BasalSchedule:
    """The basal profile on the pump's clock: which segment runs at each pump second.

    Segment changes come from :meth:`PumpClock.local_boundaries`: a start time inside a
    spring-forward gap takes effect at the end of the gap, one in a repeated fall-back hour
    at its first occurrence, so no segment is skipped or run twice (F-09).
    """

    def __init__(self, settings: InsulinSettings, clock: PumpClock) -> None:
        self.settings = settings
        self.clock = clock
        self._times = [seg.start for seg in settings.segments]

    def changes(self, t_from: float, t_to: float) -> list[tuple[float, int]]:
        """(pump s, segment index) of every segment start in [t_from, t_to); when several
        fall on one instant (a DST gap) only the last, which is the one that runs, is kept."""
        out: list[tuple[float, int]] = []
        for t, index in self.clock.local_boundaries(t_from, t_to, self._times):
            if out and abs(out[-1][0] - t) <= _TOL:
                out[-1] = (t, index)
            else:
                out.append((t, index))
        return out

    def index_at(self, t_s: float) -> int:
        """Index of the segment running at pump time ``t_s``."""
        found = self.changes(t_s - 2 * DAY_S, math.nextafter(t_s, math.inf))
        return found[-1][1] if found else len(self._times) - 1

    def rate_at(self, t_s: float) -> float:
        """Scheduled basal rate (U/h) at pump time ``t_s``."""
        return self.settings.segments[self.index_at(t_s)].units_h

    def next_midnight(self, t_s: float) -> float:
        """First local 00:00 (segment 0 start) at or after ``t_s``."""
        for t, index in self.changes(t_s, t_s + 2 * DAY_S):
            if index == 0:
                return t
        raise InputError("time", t_s, "no local midnight within two days")  # pragma: no cover

    def runs(self, t_from: float, t_to: float) -> list[tuple[float, float, int]]:
        """(start s, end s, segment index) of each stretch of one segment in [t_from, t_to)."""
        out: list[tuple[float, float, int]] = []
        start, index = t_from, self.index_at(t_from)
        for t, new_index in [*self.changes(t_from, t_to), (t_to, -1)]:
            if t > start:
                out.append((start, t, index))
            start, index = t, new_index
        return out

    def pieces(self, t_from: float, t_to: float) -> list[Delivery]:
        """What the schedule prescribes over [t_from, t_to), as SCHEDULED deliveries."""
        segs = self.settings.segments
        return [
            Delivery(t0, t1, segs[i].units_h * (t1 - t0) / 3600.0, DeliveryKind.SCHEDULED)
            for t0, t1, i in self.runs(t_from, t_to)
        ]


def _nominal_day(settings: InsulinSettings) -> list[Step]:
    """One 24-hour day of the profile by elapsed time (used after the compiled horizon)."""
    segs = settings.segments
    starts = [seg.start.hour * 3600 + seg.start.minute * 60 for seg in segs] + [DAY_S]
    return [
        _basal_step(settings, seg, starts[i + 1] - starts[i], "nominal day")
        for i, seg in enumerate(segs)
    ]


def _basal_step(settings: InsulinSettings, seg: BasalSegment, duration_s: float, note: str) -> Step:
    label = f"basal {seg.start:%H:%M} {seg.units_h:g} U/h ({note})"
    return Step(StepKind.BASAL, settings.ml(seg.units_h), duration_s=duration_s, label=label)


def basal_plan(
    settings: InsulinSettings,
    clock: PumpClock,
    t_from: float,
    horizon_s: float = DEFAULT_HORIZON_S,
) -> Plan:
    """The basal profile as a :class:`Plan` starting at pump time ``t_from`` (s).

    Steps follow the LOCAL time of day (DST-aware, see :class:`BasalSchedule`) from
    ``t_from`` to the first local midnight at or after ``t_from + horizon_s``; after that the
    plan repeats a nominal 24-hour day by elapsed time, which stays right until the next
    daylight-saving change (re-start the pump, or resume after a suspend, to re-align).
    Envelope: max rate = max basal, max bolus = max bolus (mL/h and mL).
    """
    if _bad_number(horizon_s) or not 0 < horizon_s <= 366 * DAY_S:
        raise InputError("horizon_s", horizon_s, "must be more than 0 s and at most 366 days")
    schedule = BasalSchedule(settings, clock)
    end = schedule.next_midnight(t_from + horizon_s)
    steps = [
        _basal_step(settings, settings.segments[i], t1 - t0, "local time")
        for t0, t1, i in schedule.runs(t_from, end)
    ]
    repeat_from = len(steps)
    steps += _nominal_day(settings)
    return Plan(
        "insulin_basal",
        steps,
        kvo_at_end=False,
        repeat_from=repeat_from,
        drug=DrugInfo("insulin", settings.units_per_ml, "units", "units/h"),
        envelope=Envelope(
            max_rate_ml_h=settings.ml(settings.max_basal_units_h),
            max_bolus_ml=settings.ml(settings.max_bolus_units),
        ),
        label="insulin basal profile",
    )


# ---- bolus calculator ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BolusRecommendation:
    """Bolus wizard result (all U). ``units`` is what to give: >= 0, a whole number of
    pulses, within max bolus and max IOB; ``reasons`` says every adjustment made."""

    carb_units: float
    correction_units: float
    iob_units: float
    calculated_units: float
    units: float
    reasons: tuple[str, ...]


def bolus_calculator(
    settings: InsulinSettings,
    bg_mg_dl: float,
    carbs_g: float,
    iob_units: float,
    *,
    committed_units: float | None = None,
) -> BolusRecommendation:
    """Standard pump bolus wizard: carbs / carb ratio + correction - IOB.

    The correction brings BG to the target range: (BG - high) / ISF above it, (BG - low) /
    ISF (negative) below it, 0 within it. IOB subtracted is ``max(iob_units, 0)``. The
    result is never negative, is rounded DOWN to the pulse size, and is capped at max bolus
    and at max IOB - ``committed_units`` (U; default ``max(iob_units, 0)``, the pump passes
    :meth:`InsulinPump.committed_iob`), each cap with its reason.
    """
    _check_wizard_inputs(bg_mg_dl, carbs_g, iob_units)
    if committed_units is not None:
        problems = _in_range("committed_units", committed_units, 0.0, 200.0, "U")
        if problems:
            raise problems[0]
    s = settings
    reasons: list[str] = []
    carb = carbs_g / s.carb_ratio_g_per_unit
    correction = _correction(s, bg_mg_dl, reasons)
    on_board = max(iob_units, 0.0)
    calculated = carb + correction - on_board
    units = _rounded(s, max(calculated, 0.0), reasons)
    if calculated < 0:
        reasons.append(f"calculated dose {calculated:.2f} U is negative: no bolus")
    units = _cap(
        s, units, s.max_bolus_units, f"capped at max bolus {s.max_bolus_units:g} U", reasons
    )
    committed = on_board if committed_units is None else committed_units
    room = floor_to(s.max_iob_units - committed, s.pulse_units)
    units = _cap(
        s,
        units,
        room,
        f"capped at {room:g} U so IOB stays within max IOB "
        f"{s.max_iob_units:g} U (committed IOB {committed:.2f} U)",
        reasons,
    )
    return BolusRecommendation(carb, correction, on_board, calculated, units, tuple(reasons))


def _check_wizard_inputs(bg_mg_dl: float, carbs_g: float, iob_units: float) -> None:
    problems = _in_range("bg_mg_dl", bg_mg_dl, 20.0, 600.0, "mg/dL (meter range)")
    problems += _in_range("carbs_g", carbs_g, 0.0, 300.0, "g")
    problems += _in_range("iob_units", iob_units, -100.0, 100.0, "U")
    if problems:
        raise InputErrors("bolus calculator", problems)


def _correction(s: InsulinSettings, bg: float, reasons: list[str]) -> float:
    if bg > s.target_high_mg_dl:
        return (bg - s.target_high_mg_dl) / s.isf_mg_dl_per_unit
    if bg < s.target_low_mg_dl:
        reasons.append(
            f"BG {bg:g} mg/dL is below target {s.target_low_mg_dl:g}: correction is negative"
        )
        return (bg - s.target_low_mg_dl) / s.isf_mg_dl_per_unit
    return 0.0


def _rounded(s: InsulinSettings, units: float, reasons: list[str]) -> float:
    down = floor_to(units, s.pulse_units)
    if units - down > 1e-9:
        reasons.append(
            f"rounded down from {units:.3f} U to a whole number of {s.pulse_units:g} U pulses"
        )
    return down


def _cap(s: InsulinSettings, units: float, cap: float, reason: str, reasons: list[str]) -> float:
    if units <= cap + 1e-9:
        return units
    reasons.append(reason)
    return floor_to(max(cap, 0.0), s.pulse_units)


# ---- library check (optional) -----------------------------------------------------------------


def check_library(
    settings: InsulinSettings,
    library: Library,
    care_area: str,
    *,
    drug: str = "insulin",
    therapy: str | None = None,
    patient: Patient | None = None,
    override_reason: str | None = None,
) -> tuple[Verdict, Override | None]:
    """DERS check of the most the pump may ever run (max basal as a dose rate in U/h, max
    bolus as a bolus in U) against the library entry for ``drug`` in ``care_area``.

    Raises :class:`InputError` when there is no entry, and the library's own errors on a
    hard limit or an unexplained soft one (see :func:`openinfusion.pump.therapies.authorize`).
    """
    entry = library.find(care_area, drug, therapy)
    if entry is None:
        raise InputError("drug", drug, f"is not in the library for {care_area}")
    program = Program(
        dose=parse_dose(f"{settings.max_basal_units_h!r} units/h", "max_basal_units_h"),
        bolus=parse_dose(f"{settings.max_bolus_units!r} units", "max_bolus_units"),
    )
    verdict = check(program, entry, patient, library.care_area(care_area))
    return verdict, authorize(verdict, override_reason)


# ---- the pump -----------------------------------------------------------------------------------

BOLUS_KINDS = ("normal", "extended", "dual")
EXTENDED_MINUTES_RANGE = (15.0, 480.0)  # 15 min to 8 h
TEMP_MINUTES_RANGE = (15.0, 720.0)  # 15 min to 12 h
_DELIVERY_OF = {
    OverlayKind.BOLUS: DeliveryKind.BOLUS,
    OverlayKind.EXTENDED: DeliveryKind.EXTENDED,
}


@dataclass(frozen=True, slots=True)
class BolusGrant:
    """A bolus the pump accepted: ``now_units`` at the fast rate, ``extended_units`` spread
    over ``extended_minutes`` (after the now part)."""

    t_s: float
    kind: str
    units: float
    now_units: float
    extended_units: float
    extended_minutes: float | None


@dataclass(slots=True)
class _Observation:
    t_s: float = 0.0
    ideal_ml: float = 0.0
    delivered_ml: dict[int, float] = field(default_factory=dict)


class InsulinPump:
    """An insulin patch pump: one channel of :func:`insulin_patch` on a :class:`Device`.

    The pump owns its time (:meth:`advance_to`) and records a delivery history from the
    engine's own accounting, event by event. Every refusal raises :class:`InputError` (bad
    values) or :class:`CommandRejected` (not possible now) and changes nothing.
    """

    def __init__(
        self,
        *,
        reservoir_units: float = 200.0,
        units_per_ml: float = 100.0,
        pulse_units: float = 0.05,
        bolus_rate_units_min: float = 1.5,
        reservoir_low_units: float = 10.0,
        suspend_reminder_s: float = 1800.0,
        horizon_s: float = DEFAULT_HORIZON_S,
    ) -> None:
        problems = _in_range("reservoir_units", reservoir_units, 1.0, 2000.0, "U")
        problems += _in_range("units_per_ml", units_per_ml, 1.0, 1000.0, "U/mL")
        problems += _in_range("pulse_units", pulse_units, 0.001, 1.0, "U")
        problems += _in_range("bolus_rate_units_min", bolus_rate_units_min, 0.1, 5.0, "U/min")
        problems += _in_range("reservoir_low_units", reservoir_low_units, 0.0, 2000.0, "U")
        problems += _in_range("suspend_reminder_s", suspend_reminder_s, 60.0, 86_400.0, "s")
        if problems:
            raise InputErrors("insulin pump", problems)
        self.units_per_ml = units_per_ml
        self.pulse_units = pulse_units
        self.bolus_rate_units_min = bolus_rate_units_min
        self.horizon_s = horizon_s
        channel_settings = ChannelSettings(
            reservoir_low_ml=reservoir_low_units / units_per_ml,
            paused_callback_s=suspend_reminder_s,
        )
        self.device = Device(
            [insulin_patch(reservoir_units, pulse_units, units_per_ml)],
            settings=[channel_settings],
            serial="SIM-INSULIN",
        )
        self.settings: InsulinSettings | None = None
        self.clock: PumpClock | None = None
        self.boluses: list[BolusGrant] = []
        self._history: list[Delivery] = []
        self._eras: list[tuple[float, BasalSchedule]] = []  # (from s, schedule) per start
        self._overlays: dict[int, Overlay] = {}
        self._seen = _Observation()

    # ---- reading -------------------------------------------------------------------------

    @property
    def channel(self) -> Channel:
        return self.device.channels[0]

    @property
    def now(self) -> float:
        """Pump time (s)."""
        return self.device.t_s

    @property
    def suspended(self) -> bool:
        return self.channel.state is State.PAUSED

    @property
    def delivered_units(self) -> float:
        """Insulin the mechanism delivered (U), in whole pulses."""
        return self.channel.pumped_ml * self.units_per_ml

    @property
    def reservoir_units(self) -> float:
        ml = self.channel.reservoir_ml
        return math.inf if ml is None else ml * self.units_per_ml

    @property
    def rate_units_h(self) -> float:
        """Total rate now (U/h): basal (or temp basal) plus any bolus."""
        return self.channel.rate_ml_h * self.units_per_ml

    def history(self) -> list[Delivery]:
        """Delivery history (absolute, ideal displacement; U), oldest first."""
        return list(self._history)

    def delivered_by_kind(self) -> dict[DeliveryKind, float]:
        """Units (ideal) delivered per kind: basal, temp basal, bolus, extended."""
        out = dict.fromkeys(DeliveryKind, 0.0)
        for d in self._history:
            out[d.kind] += d.units
        out.pop(DeliveryKind.SCHEDULED)
        out.pop(DeliveryKind.EXCESS)
        return out

    def scheduled_rate_units_h(self, t_s: float | None = None) -> float:
        """Basal rate the schedule prescribes at ``t_s`` (default now), U/h."""
        self._require_started()
        t = self.now if t_s is None else t_s
        return self._schedule_at(t).rate_at(t)

    def iob(self, now: float | None = None) -> float:
        """Net insulin on board (U) at pump time ``now`` (default: the current time).

        Delivered insulin minus what the basal schedule prescribed (oref0 semantics: it can
        be negative), plus, at the current time, the undelivered remainder of running
        boluses in full. For a past time, only what was delivered by then counts.
        """
        settings, _ = self._require_started()
        t = self.now if now is None else now
        if t > self.now + _TOL:
            raise InputError("now", t, f"is after the pump's time {self.now:g} s")
        dia, peak = settings.dia_h, settings.peak_min
        delivered = iob_total(self._recent(self._history, t, settings), t, dia, peak)
        scheduled = iob_total(self._scheduled(t, settings), t, dia, peak)
        pending = self._pending_units() if t >= self.now - _TOL else 0.0
        return delivered - scheduled + pending

    def committed_iob(self) -> float:
        """The most the net IOB (U) can reach from now on without a new command.

        The on-board part of the insulin delivered above the basal schedule over the last
        DIA (a deficit is ignored: it wears off), plus the undelivered part of running
        boluses, plus what a running temp basal will still give above the schedule. Max IOB
        is checked against it (see the module docstring); it is never below :meth:`iob`.
        """
        settings, _ = self._require_started()
        t = self.now
        delivered = self._recent(self._history, t, settings)
        excess = excess_over(delivered, self._scheduled(t, settings), t - settings.dia_h * 3600, t)
        on_board = iob_total(excess, t, settings.dia_h, settings.peak_min)
        return on_board + self._pending_units() + self._temp_extra_units()

    def bolus_room_units(self) -> float:
        """Largest bolus (U, whole pulses) max IOB allows now (max bolus not applied)."""
        settings, _ = self._require_started()
        return floor_to(settings.max_iob_units - self.committed_iob(), settings.pulse_units)

    def recommend(self, bg_mg_dl: float, carbs_g: float) -> BolusRecommendation:
        """The bolus wizard (:func:`bolus_calculator`) on this pump's IOB and limits."""
        settings, _ = self._require_started()
        return bolus_calculator(
            settings, bg_mg_dl, carbs_g, self.iob(), committed_units=self.committed_iob()
        )

    # ---- time ----------------------------------------------------------------------------

    def advance_to(self, t_s: float) -> None:
        """Run the pump to pump time ``t_s`` (s), event by event, recording delivery."""
        if _bad_number(t_s) or t_s < self.now:
            raise InputError("t_s", t_s, f"must not be before the pump's time {self.now:g} s")
        stuck = 0
        while True:
            nxt = self.device.next_event_s()
            target = min(nxt, t_s)
            before = self.now
            self.device.advance_to(target)
            self._observe()
            if nxt >= t_s:
                return
            stuck = stuck + 1 if self.now <= before else 0
            if stuck > 1000:  # events keep firing at one instant: an engine livelock
                raise RuntimeError(f"insulin pump made no progress at t={self.now}")

    def advance(self, seconds: float) -> None:
        self.advance_to(self.now + seconds)

    # ---- commands -------------------------------------------------------------------------

    def start(
        self,
        settings: InsulinSettings,
        clock: PumpClock,
        *,
        library: Library | None = None,
        care_area: str | None = None,
        patient: Patient | None = None,
        override_reason: str | None = None,
    ) -> Verdict | None:
        """Program the basal profile from ``settings`` on ``clock`` and start it.

        With ``library`` and ``care_area`` the settings are DERS-checked first
        (:func:`check_library`). Possible when the pump is new or suspended (new settings).
        """
        self._check_hardware(settings)
        if self.channel.state not in (State.IDLE, State.PAUSED):
            raise CommandRejected("start", self.channel.state.value, "suspend the pump first")
        verdict = None
        info: dict[str, Any] = {"basal": [list(b) for b in settings.basal]}
        if library is not None:
            if care_area is None:
                raise InputError("care_area", "", "a library check needs a care area")
            verdict, override = check_library(
                settings, library, care_area, patient=patient, override_reason=override_reason
            )
            info["verdict"] = verdict.label
            if override is not None:
                info["override_reason"] = override.reason
        self._program(settings, clock, info)
        return verdict

    def bolus(
        self,
        units: float,
        kind: str = "normal",
        *,
        extended_minutes: float | None = None,
        split: float | None = None,
    ) -> BolusGrant:
        """Give ``units`` U (a whole number of pulses).

        ``normal``: at the fast bolus rate. ``extended``: evenly over ``extended_minutes``.
        ``dual``: ``split`` (0 to 1) of the units now (rounded down to a pulse), the rest
        extended over ``extended_minutes``; the extended part starts after the now part
        (the engine lets a normal bolus pre-empt an extended one, which then resumes).
        Refused above max bolus, above max IOB - IOB, beyond the reservoir, while
        suspended, during a normal bolus, or during another extended bolus.
        """
        settings, _ = self._require_started()
        now_units, ext_units, minutes = self._split(settings, units, kind, extended_minutes, split)
        self._check_can_bolus(ext_units > 0)
        self._check_bolus_limits(settings, units)
        self._observe()
        if ext_units > 0:
            rate = settings.ml(ext_units) / (minutes / 60.0)
            self.device.bolus(
                0, settings.ml(ext_units), rate, OverlayKind.EXTENDED, units=ext_units
            )
        if now_units > 0:
            self._normal_bolus(settings, now_units, rolled_back=ext_units > 0)
        self._observe()
        grant = BolusGrant(
            self.now, kind, units, now_units, ext_units, minutes if ext_units else None
        )
        self.boluses.append(grant)
        return grant

    def temp_basal(
        self, *, minutes: float, percent: float | None = None, units_h: float | None = None
    ) -> float:
        """Run a temporary basal for ``minutes``, then return to the schedule by itself.

        Give ``percent`` of the scheduled rate now (rounded DOWN to the basal increment) or
        ``units_h`` (a multiple of the increment). Replaces a running temp basal. Refused
        above max basal, at 0 U/h (the engine cannot run a zero temp: suspend instead),
        while suspended or during a normal bolus. Returns the rate set (U/h).
        """
        settings, _ = self._require_started()
        rate = self._temp_rate(settings, percent, units_h)
        problems = _in_range("minutes", minutes, *TEMP_MINUTES_RANGE, "min")
        if problems:
            raise problems[0]
        self._require_state({State.RUNNING}, "temp_basal")
        given = ("percent", percent) if percent is not None else ("units_h", rate)
        self._check_temp_iob(settings, rate, minutes, *given)
        self._observe()
        if any(o.kind is OverlayKind.TEMP_BASAL for o in self.channel.overlays):
            self.channel.cancel_overlay(self.now, OverlayKind.TEMP_BASAL)
        self.device.temp_rate(0, settings.ml(rate), minutes * 60.0, units_h=rate)
        self._observe()
        return rate

    def cancel_temp_basal(self) -> None:
        """End a running temp basal now (the schedule resumes)."""
        self._require_started()
        self._observe()
        self.channel.cancel_overlay(self.now, OverlayKind.TEMP_BASAL)
        self._observe()

    def cancel_bolus(self) -> None:
        """Stop every running bolus (normal and extended) now."""
        self._require_started()
        self._observe()
        for kind in (OverlayKind.BOLUS, OverlayKind.EXTENDED):
            self.channel.cancel_overlay(self.now, kind)
        self._observe()

    def suspend(self) -> None:
        """Stop all delivery: boluses and a temp basal are cancelled, not resumed."""
        self._require_started()
        self._require_state({State.RUNNING, State.BOLUS}, "suspend")
        self._observe()
        self.device.pause(0)
        self.channel.cancel_overlay(self.now, OverlayKind.TEMP_BASAL)
        self._observe()

    def resume(self) -> None:
        """Restart the basal schedule, re-aligned to the local time of day."""
        settings, clock = self._require_started()
        self._require_state({State.PAUSED}, "resume")
        if self.device.board.any_stopping(0):
            raise CommandRejected("resume", "alarm", "an alarm condition is still present")
        self._program(settings, clock, {"reason": "resume: schedule re-aligned to local time"})

    # ---- internals --------------------------------------------------------------------------

    def _require_started(self) -> tuple[InsulinSettings, PumpClock]:
        if self.settings is None or self.clock is None:
            raise CommandRejected("pump", "not started", "start the pump with settings first")
        return self.settings, self.clock

    def _require_state(self, allowed: set[State], action: str) -> None:
        state = self.channel.state
        if state not in allowed:
            what = "suspended" if state is State.PAUSED else state.value
            raise CommandRejected(action, what, f"not possible while the pump is {what}")

    def _check_hardware(self, settings: InsulinSettings) -> None:
        for name, mine, theirs in (
            ("units_per_ml", self.units_per_ml, settings.units_per_ml),
            ("pulse_units", self.pulse_units, settings.pulse_units),
        ):
            if abs(mine - theirs) > _TOL * mine:
                raise InputError(name, theirs, f"does not match this pump ({mine:g})")

    def _program(self, settings: InsulinSettings, clock: PumpClock, info: dict[str, Any]) -> None:
        plan = basal_plan(settings, clock, self.now, self.horizon_s)
        self._observe()
        self.device.program(0, plan, **info)
        self.device.start(0)
        self.settings, self.clock = settings, clock
        self._eras.append((self.now, BasalSchedule(settings, clock)))
        self._observe()

    def _split(
        self,
        s: InsulinSettings,
        units: float,
        kind: str,
        minutes: float | None,
        split: float | None,
    ) -> tuple[float, float, float]:
        """(now units, extended units, extended minutes) of a bolus request, validated."""
        if kind not in BOLUS_KINDS:
            raise InputError("kind", kind, f"must be one of {', '.join(BOLUS_KINDS)}")
        if _bad_number(units) or units <= 0 or not is_multiple(units, s.pulse_units):
            down = floor_to(units, s.pulse_units) if not _bad_number(units) else 0.0
            raise InputError(
                "units",
                units,
                f"must be a positive multiple of {s.pulse_units:g} U "
                f"(the pump could give {down:g} U)",
            )
        if kind == "normal":
            if minutes is not None or split is not None:
                raise InputError("kind", kind, "a normal bolus takes no extended_minutes or split")
            return units, 0.0, 0.0
        minutes_ = _extended_minutes(minutes)
        if kind == "extended":
            if split is not None:
                raise InputError("split", split, "only a dual bolus is split")
            return 0.0, units, minutes_
        if split is None or _bad_number(split) or not 0 < split < 1:
            raise InputError(
                "split", split, "a dual bolus needs the fraction given now, 0 < split < 1"
            )
        now_units = floor_to(units * split, s.pulse_units)
        return now_units, round(units - now_units, 10), minutes_

    def _check_can_bolus(self, extended: bool) -> None:
        self._require_state({State.RUNNING}, "bolus")
        if self.device.board.any_stopping(0):
            raise CommandRejected("bolus", "alarm", "a bolus needs a running pump with no alarm")
        if extended and any(o.kind is OverlayKind.EXTENDED for o in self.channel.overlays):
            raise CommandRejected("bolus", "extended bolus running", "one extended bolus at a time")

    def _check_bolus_limits(self, s: InsulinSettings, units: float) -> None:
        if units > s.max_bolus_units * (1 + _TOL):
            raise InputError("units", units, f"is above max bolus {s.max_bolus_units:g} U")
        committed = self.committed_iob()
        room = floor_to(s.max_iob_units - committed, s.pulse_units)
        if units > room + 1e-9:
            raise InputError(
                "units",
                units,
                f"would take IOB (committed {committed:.2f} U) above max IOB "
                f"{s.max_iob_units:g} U; at most {room:g} U now",
            )
        if units > self.reservoir_units + 1e-9:
            raise InputError(
                "units", units, f"is more than the reservoir holds ({self.reservoir_units:.2f} U)"
            )

    def _normal_bolus(self, s: InsulinSettings, units: float, rolled_back: bool) -> None:
        rate_ml_h = s.ml(self.bolus_rate_units_min * 60.0)
        try:
            self.device.bolus(0, s.ml(units), rate_ml_h, OverlayKind.BOLUS, units=units)
        except CommandRejected:
            if rolled_back:  # a dual bolus is all or nothing: withdraw its extended part
                self.channel.cancel_overlay(self.now, OverlayKind.EXTENDED)
            raise

    def _temp_rate(self, s: InsulinSettings, percent: float | None, units_h: float | None) -> float:
        if (percent is None) == (units_h is None):
            raise InputError("temp_basal", "", "give either percent or units_h")
        if percent is not None:
            if _bad_number(percent) or not 0 <= percent <= 1000:
                raise InputError("percent", percent, "must be 0 to 1000 %")
            rate = floor_to(
                self.scheduled_rate_units_h() * percent / 100.0, s.basal_increment_units_h
            )
        else:
            assert units_h is not None
            rate = units_h
            if _bad_number(rate) or rate < 0:
                raise InputError("units_h", rate, "must be a finite rate >= 0 U/h")
            for problem in _increment_problems("units_h", rate, s.basal_increment_units_h):
                raise problem
        if rate > s.max_basal_units_h * (1 + _TOL):
            name, value = ("percent", percent) if percent is not None else ("units_h", rate)
            raise InputError(
                name, value, f"gives {rate:g} U/h, above max basal {s.max_basal_units_h:g} U/h"
            )
        if rate <= 0:
            raise CommandRejected(
                "temp_basal",
                rate,
                "a zero temp basal cannot run on this "
                "engine (rates must be > 0): suspend the pump instead",
            )
        return rate

    def _check_temp_iob(
        self, s: InsulinSettings, rate: float, minutes: float, name: str, value: object
    ) -> None:
        """Refuse a temp basal whose insulin above the schedule would pass max IOB."""
        extra = self._above_schedule(rate, self.now, self.now + minutes * 60.0)
        if extra <= 1e-12:
            return
        committed = self.committed_iob() - self._temp_extra_units()  # a running temp is replaced
        if committed + extra > s.max_iob_units + 1e-9:
            raise InputError(
                name,
                value,
                f"gives {rate:g} U/h, {extra:.2f} U above the basal schedule in {minutes:g} "
                f"min; with committed IOB {committed:.2f} U that passes max IOB "
                f"{s.max_iob_units:g} U",
            )

    def _above_schedule(self, rate_units_h: float, t0: float, t1: float) -> float:
        """Units (U) a rate of ``rate_units_h`` gives above the current schedule over [t0, t1)."""
        schedule = self._eras[-1][1]
        segs = schedule.settings.segments
        return sum(
            max(rate_units_h - segs[i].units_h, 0.0) * (b - a) / 3600.0
            for a, b, i in schedule.runs(t0, t1)
        )

    def _temp_extra_units(self) -> float:
        """Units (U) the running temp basal will still give above the schedule."""
        return sum(
            self._above_schedule(o.rate_ml_h * self.units_per_ml, self.now, o.until_s)
            for o in self.channel.overlays
            if o.kind is OverlayKind.TEMP_BASAL and o.until_s is not None and o.until_s > self.now
        )

    def _schedule_at(self, t_s: float) -> BasalSchedule:
        starts = [t for t, _ in self._eras]
        return self._eras[max(0, bisect.bisect_right(starts, t_s) - 1)][1]

    def _scheduled(self, now_s: float, s: InsulinSettings) -> list[Delivery]:
        """What the schedules prescribed over the last DIA before ``now_s``."""
        out: list[Delivery] = []
        bounds = [t for t, _ in self._eras[1:]] + [math.inf]
        for (t0, schedule), t1 in zip(self._eras, bounds, strict=True):
            lo, hi = max(t0, now_s - s.dia_h * 3600.0), min(t1, now_s)
            out += schedule.pieces(lo, hi)
        return out

    @staticmethod
    def _recent(history: list[Delivery], now_s: float, s: InsulinSettings) -> list[Delivery]:
        oldest = now_s - s.dia_h * 3600.0
        return [d for d in history if d.end_s > oldest and d.start_s <= now_s]

    def _pending_units(self) -> float:
        return sum(o.remaining_ml for o in self.channel.overlays if o.adds) * self.units_per_ml

    def _observe(self) -> None:
        """Record what was delivered since the last observation (rates were constant)."""
        ch, seen, t = self.channel, self._seen, self.now
        for o in ch.overlays:
            self._overlays.setdefault(o.id, o)
        if t > seen.t_s:
            self._record_interval(seen, t)
        active = {o.id for o in ch.overlays}
        self._overlays = {i: o for i, o in self._overlays.items() if i in active}
        self._seen = _Observation(
            t, ch.ideal_ml, {i: o.delivered_ml for i, o in self._overlays.items()}
        )

    def _record_interval(self, seen: _Observation, t: float) -> None:
        conc = self.units_per_ml
        total = (self.channel.ideal_ml - seen.ideal_ml) * conc
        added, temp = 0.0, False
        for oid, o in self._overlays.items():
            delta = (o.delivered_ml - seen.delivered_ml.get(oid, 0.0)) * conc
            if delta <= 1e-12:
                continue
            if o.adds:
                self._append(seen.t_s, t, delta, _DELIVERY_OF.get(o.kind, DeliveryKind.BOLUS))
                added += delta
            elif o.kind is OverlayKind.TEMP_BASAL:
                temp = True
        basal = total - added
        if basal > 1e-12:
            self._append(
                seen.t_s, t, basal, DeliveryKind.TEMP_BASAL if temp else DeliveryKind.BASAL
            )

    def _append(self, t0: float, t1: float, units: float, kind: DeliveryKind) -> None:
        piece = Delivery(t0, t1, units, kind)
        for i in range(len(self._history) - 1, max(-1, len(self._history) - 4), -1):
            last = self._history[i]
            if last.kind is kind and abs(last.end_s - t0) <= _TOL:
                if math.isclose(last.rate_units_h, piece.rate_units_h, rel_tol=1e-9):
                    self._history[i] = Delivery(last.start_s, t1, last.units + units, kind)
                    return
                break
        self._history.append(piece)


def _extended_minutes(minutes: float | None) -> float:
    if minutes is None:
        raise InputError("extended_minutes", "", "an extended or dual bolus needs a duration")
    problems = _in_range("extended_minutes", minutes, *EXTENDED_MINUTES_RANGE, "min")
    if problems:
        raise problems[0]
    return float(minutes)
