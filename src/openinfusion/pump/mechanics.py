"""Drive mechanisms: how a pump actually moves fluid, in discrete quanta.

Each kind of pump delivers in steps of a fixed volume (a syringe plunger step, a
peristaltic stroke, an insulin pulse), has a start-up slack to take up before fluid moves,
a line compliance that stores volume under pressure, a rate range and a reservoir. The
delivery engine integrates the commanded ("ideal") displacement between events and
reports what the mechanism really delivered: whole quanta, never more than commanded.

Figures are representative of published device specifications, cited per kind; a real
device's driver supplies its own ``Mechanism``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from openinfusion.errors import InputError


class PumpKind(StrEnum):
    SYRINGE = "syringe"
    LVP = "lvp"
    PCA = "pca"
    AMBULATORY = "ambulatory"
    INSULIN_PATCH = "insulin_patch"
    IMPLANT = "implant"


@dataclass(frozen=True, slots=True)
class Mechanism:
    """Physical parameters of one channel's drive and fluid path.

    ``quantum_ml``: volume per motor step / stroke / pulse. ``compliance_ml_per_mmhg``:
    volume stored per mmHg of downstream pressure (syringe stopper + tubing).
    ``resistance_mmhg_s_per_ml``: catheter and patient resistance when the line is patent.
    ``startup_slack_ml``: displacement taken up before flow starts after a new set or
    syringe is loaded. ``backoff_ml``: volume withdrawn after an occlusion alarm to relieve
    pressure (bolus reduction).
    """

    kind: PumpKind
    quantum_ml: float
    compliance_ml_per_mmhg: float
    resistance_mmhg_s_per_ml: float
    startup_slack_ml: float
    backoff_ml: float
    min_rate_ml_h: float
    max_rate_ml_h: float
    reservoir_ml: float | None
    patient_pressure_mmhg: float = 10.0
    label: str = ""

    def quantize(self, ideal_ml: float) -> float:
        """Whole quanta delivered for an ideal displacement (never more than ideal)."""
        steps = math.floor(ideal_ml / self.quantum_ml + 1e-9)
        return min(steps * self.quantum_ml, ideal_ml) if steps > 0 else 0.0


# Syringe inner diameters (mm) for BD Plastipak, as listed in syringe-pump manufacturers'
# syringe tables (e.g. Harvard Apparatus "Syringe Selection Guide"); volume per mm of
# plunger travel = pi (d/2)^2. The drive advances 1 um of plunger travel per motor step.
SYRINGE_INNER_DIAMETER_MM = {3: 8.66, 5: 12.06, 10: 14.5, 20: 19.13, 30: 21.7, 50: 26.7, 60: 26.7}
SYRINGE_STEP_MM = 0.001


def syringe_ml_per_mm(size_ml: int) -> float:
    """Volume delivered per mm of plunger travel for a syringe of ``size_ml``."""
    try:
        diameter = SYRINGE_INNER_DIAMETER_MM[size_ml]
    except KeyError:
        known = ", ".join(str(s) for s in SYRINGE_INNER_DIAMETER_MM)
        raise InputError(
            "syringe_ml", size_ml, f"is not a known syringe size ({known} mL)"
        ) from None
    return math.pi * (diameter / 2.0) ** 2 / 1000.0


def syringe(size_ml: int = 50) -> Mechanism:
    """Syringe pump. Compliance grows with syringe size (larger rubber stopper).

    With 1.0e-3 mL/mmHg for a 50 mL syringe, a 525 mmHg limit is reached after about
    30 min at 1 mL/h, within the range reported in IEC 60601-2-24 occlusion tests of
    syringe pumps, and the stored bolus (~0.5 mL) matches the post-occlusion bolus
    requirement of <= 0.5 mL (Open PCA Pump R7.2) once back-off has run.
    """
    per_mm = syringe_ml_per_mm(size_ml)
    return Mechanism(
        kind=PumpKind.SYRINGE,
        quantum_ml=per_mm * SYRINGE_STEP_MM,
        compliance_ml_per_mmhg=2.0e-5 * size_ml,
        resistance_mmhg_s_per_ml=1800.0,
        startup_slack_ml=0.002 * size_ml,
        backoff_ml=0.01 * size_ml * 0.5,
        min_rate_ml_h=0.01,
        max_rate_ml_h=1200.0 if size_ml >= 50 else 200.0,
        reservoir_ml=float(size_ml),
        label=f"{size_ml} mL syringe",
    )


def lvp() -> Mechanism:
    """Large-volume peristaltic pump: 0.1-999 mL/h (GIP 1.1.2), cassette stroke volume."""
    return Mechanism(
        kind=PumpKind.LVP,
        quantum_ml=0.005,
        compliance_ml_per_mmhg=5.0e-4,
        resistance_mmhg_s_per_ml=1800.0,
        startup_slack_ml=0.0,
        backoff_ml=0.1,
        min_rate_ml_h=0.1,
        max_rate_ml_h=999.0,
        reservoir_ml=None,
        label="large-volume pump",
    )


def pca_pump() -> Mechanism:
    """PCA syringe/cassette pump (Open PCA Pump: basal 1-10 mL/h range widened for mg/h)."""
    return replace(syringe(50), kind=PumpKind.PCA, label="PCA pump")


def ambulatory(reservoir_ml: float = 100.0) -> Mechanism:
    """Portable ambulatory pump (cassette, 0.05 mL per stroke, like CADD-type pumps)."""
    return Mechanism(
        kind=PumpKind.AMBULATORY,
        quantum_ml=0.05,
        compliance_ml_per_mmhg=3.0e-4,
        resistance_mmhg_s_per_ml=3000.0,
        startup_slack_ml=0.0,
        backoff_ml=0.05,
        min_rate_ml_h=0.1,
        max_rate_ml_h=250.0,
        reservoir_ml=reservoir_ml,
        label=f"ambulatory pump, {reservoir_ml:g} mL reservoir",
    )


def insulin_patch(
    reservoir_units: float = 200.0, pulse_units: float = 0.05, units_per_ml: float = 100.0
) -> Mechanism:
    """Insulin patch pump: U-100 insulin in 0.05-unit pulses, 200-unit reservoir."""
    return Mechanism(
        kind=PumpKind.INSULIN_PATCH,
        quantum_ml=pulse_units / units_per_ml,
        compliance_ml_per_mmhg=2.0e-6,
        resistance_mmhg_s_per_ml=2.0e5,
        startup_slack_ml=0.0,
        backoff_ml=0.0,
        min_rate_ml_h=0.0,
        max_rate_ml_h=30.0 / units_per_ml * 60,
        reservoir_ml=reservoir_units / units_per_ml,
        patient_pressure_mmhg=5.0,
        label="insulin patch pump",
    )


def implant(reservoir_ml: float = 20.0) -> Mechanism:
    """Implantable intrathecal pump: 20 or 40 mL reservoir, very low rates (mL/day)."""
    return Mechanism(
        kind=PumpKind.IMPLANT,
        quantum_ml=0.0002,
        compliance_ml_per_mmhg=1.0e-5,
        resistance_mmhg_s_per_ml=5.0e4,
        startup_slack_ml=0.0,
        backoff_ml=0.0,
        min_rate_ml_h=0.002,
        max_rate_ml_h=1.0,
        reservoir_ml=reservoir_ml,
        patient_pressure_mmhg=10.0,
        label=f"implantable pump, {reservoir_ml:g} mL",
    )
