"""What a channel executes: a compiled plan of constant-rate steps, plus overlays.

Every therapy (continuous, VTBI, loading then maintenance, multistep, ramp and taper,
intermittent, delayed start, PCA basal, insulin basal profiles, intrathecal flex dosing)
compiles to a :class:`Plan`: a list of :class:`Step` objects, each delivering at a constant
rate until its volume or duration is reached, optionally repeating from a step (daily
schedules). Boluses, secondary infusions and temporary basals are :class:`Overlay` objects
laid over the plan. The channel never needs to know which therapy produced a plan.

Rates are mL/h, volumes mL, durations and times s (monotonic pump clock).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from openinfusion.errors import InputError


def _finite(value: object) -> bool:
    """A real, finite number (bool and text are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


class StepKind(StrEnum):
    DELAY = "delay"
    LOADING = "loading"
    CONTINUOUS = "continuous"
    RAMP = "ramp"
    PLATEAU = "plateau"
    TAPER = "taper"
    DOSE = "dose"
    WAIT = "wait"
    BASAL = "basal"


@dataclass(frozen=True, slots=True)
class Step:
    """Deliver ``rate_ml_h`` until ``volume_ml`` (if set) or ``duration_s`` (if set)."""

    kind: StepKind
    rate_ml_h: float
    volume_ml: float | None = None
    duration_s: float | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if not (_finite(self.rate_ml_h) and self.rate_ml_h >= 0):
            raise InputError("rate", self.rate_ml_h, "must be a finite rate >= 0 mL/h")
        for name in ("volume_ml", "duration_s"):
            value = getattr(self, name)
            if value is not None and not (_finite(value) and value > 0):
                raise InputError(name, value, "must be finite and greater than zero")


class OverlayKind(StrEnum):
    BOLUS = "bolus"  # clinician or loading bolus from a running infusion (adds to the rate)
    PCA = "pca"  # patient demand dose (adds)
    EXTENDED = "extended"  # insulin square-wave bolus (adds)
    SECONDARY = "secondary"  # piggyback: replaces the primary until its volume is given
    TEMP_BASAL = "temp_basal"  # replaces the basal rate until it expires


ADDING = (OverlayKind.BOLUS, OverlayKind.PCA, OverlayKind.EXTENDED)


@dataclass(slots=True)
class Overlay:
    """A bolus, secondary infusion or temporary rate laid over the plan."""

    kind: OverlayKind
    rate_ml_h: float
    volume_ml: float | None = None
    until_s: float | None = None
    label: str = ""
    delivered_ml: float = 0.0
    id: int = 0

    @property
    def adds(self) -> bool:
        return self.kind in ADDING

    @property
    def remaining_ml(self) -> float:
        return math.inf if self.volume_ml is None else max(0.0, self.volume_ml - self.delivered_ml)


@dataclass(frozen=True, slots=True)
class DrugInfo:
    """What the channel needs of the drug to account doses: name and strength."""

    name: str
    per_ml: float  # canonical amount (mg, units, mEq, mmol) per mL
    amount_unit: str  # canonical amount unit, e.g. "mg"
    dose_unit: str = ""  # the program's dose unit for display, e.g. "mcg/kg/min"
    dose_per_amount: float = 1.0  # display dose = amount rate (per h) * this


@dataclass(frozen=True, slots=True)
class Envelope:
    """Hard limits the engine enforces by itself, whatever it is commanded (C-18).

    Derived from the library at programming time: the fastest rate any step, titration or
    overlay may run, the largest single bolus, and a cumulative amount per window.
    """

    max_rate_ml_h: float = math.inf
    max_bolus_ml: float = math.inf
    window_s: float | None = None
    window_max_amount: float = math.inf


@dataclass(frozen=True, slots=True)
class PcaSettings:
    """PCA: demand volume, lockout, and the one-hour and four-hour limits (amounts)."""

    demand_ml: float
    lockout_s: float
    bolus_rate_ml_h: float = 150.0  # Alaris PCA Config "Bolus Delivery Rate (mL/h) 150"
    # (window in s, maximum canonical amount, basal + demands) e.g. 1 h and 4 h for PCA,
    # 24 h for an implant's patient therapy manager.
    limits: tuple[tuple[float, float], ...] = ()
    max_demands: int | None = None
    max_demands_window_s: float = 3600.0


@dataclass(slots=True)
class Plan:
    """A compiled therapy: steps, optional repetition, VTBI, KVO and limits."""

    therapy: str
    steps: list[Step]
    vtbi_ml: float | None = None
    kvo_at_end: bool = True
    kvo_rate_ml_h: float = 1.0
    repeat_from: int | None = None
    drug: DrugInfo | None = None
    envelope: Envelope = field(default_factory=Envelope)
    pca: PcaSettings | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if not self.steps:
            raise InputError("program", self.therapy, "has no delivery steps")
        if self.repeat_from is not None and not 0 <= self.repeat_from < len(self.steps):
            raise InputError("repeat_from", self.repeat_from, "must index a step")
        if self.vtbi_ml is not None and not (_finite(self.vtbi_ml) and self.vtbi_ml > 0):
            raise InputError("vtbi", self.vtbi_ml, "must be finite and greater than zero")
        for step in self.steps:
            if step.kind in (StepKind.LOADING, StepKind.DOSE):
                continue  # a loading or intermittent dose is limited by its dose and duration
            if step.rate_ml_h > self.envelope.max_rate_ml_h * (1 + 1e-9):
                raise InputError(
                    "rate",
                    step.rate_ml_h,
                    f"exceeds the hard limit {self.envelope.max_rate_ml_h:g} mL/h",
                )

    @property
    def programmed_ml(self) -> float:
        """Total volume the plan can deliver (VTBI, or the sum of volume-limited steps)."""
        if self.vtbi_ml is not None:
            return self.vtbi_ml
        total = 0.0
        for step in self.steps:
            if step.volume_ml is not None:
                total += step.volume_ml
            elif step.duration_s is not None:
                total += step.rate_ml_h * step.duration_s / 3600.0
            else:
                return math.inf
        return math.inf if self.repeat_from is not None else total
