"""The plain records that cross between the server and the message formats.

HL7 v2 (PCD-01/03/04) and FHIR are two faces of the same facts, so both are built from, and
parsed into, these records: the message modules know nothing of the database, and the
order intake knows nothing of segments or resources. Quantities carry their units in the
field name (``rate_ml_h``) or as text parsed once at intake (``dose="0.1 mcg/kg/min"``).
Times are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

OrderSource = Literal["hl7", "fhir"]
AlarmPriority = Literal["high", "medium", "low"]
AlarmState = Literal["active", "cleared", "acknowledged"]


@dataclass(frozen=True, slots=True)
class PatientRef:
    """Who the pump channel infuses, as the EHR knows them (PID-3, PID-5, PID-7, PID-8)."""

    mrn: str
    family_name: str = ""
    given_name: str = ""
    birth_date: date | None = None
    sex: str = ""  # "female" | "male" | "other" | "unknown"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An infusion order from the EHR, before any validation.

    Built from a PCD-03 RGV^O15 (PIV) or a FHIR MedicationRequest. Every field is what the
    message said, unjudged; :mod:`openinfusion.interop.orders` decides whether it is safe to
    pre-populate on the pump.
    """

    source: OrderSource
    placer_order_id: str  # ORC-2 / MedicationRequest.identifier: the EHR's order number
    patient_mrn: str  # PID-3 / MedicationRequest.subject
    pump_serial: str | None  # OBX-18 equipment instance / Device.identifier
    channel: int | None  # the pump channel (1-based), when the order names one
    drug_code: str | None  # RXG-4 identifier / medicationCodeableConcept code
    drug_name: str | None  # RXG-4 text / medicationCodeableConcept text
    concentration: str | None  # e.g. "4 mg/50 mL" or "0.08 mg/mL"
    dose: str | None  # e.g. "0.1 mcg/kg/min" (dose rate) or "500 mg" (amount)
    rate_ml_h: float | None
    vtbi_ml: float | None
    patient_weight_kg: float | None = None  # OBX body weight sent with the order
    ordered_by: str | None = None  # ORC-12 / MedicationRequest.requester
    message_control_id: str | None = None  # MSH-10 (HL7 only)
    sending_application: str | None = None  # MSH-3 (HL7 only)
    sending_facility: str | None = None  # MSH-4 (HL7 only)


@dataclass(frozen=True, slots=True)
class ChannelObservation:
    """One pump channel's state at one moment, for PCD-01 ORU^R01 and FHIR Observation."""

    pump_id: str
    pump_serial: str
    pump_model: str
    pump_kind: str
    channel: int  # 1-based
    observed_at: datetime
    state: str  # idle | running | paused | stopped | completed | alarm | ...
    drug: str | None
    dose: float | None
    dose_unit: str | None  # e.g. "mcg/kg/min"
    rate_ml_h: float | None
    volume_infused_ml: float | None
    vtbi_remaining_ml: float | None
    time_remaining_min: float | None
    patient: PatientRef | None = None
    placer_order_id: str | None = None
    event: str | None = None  # what made this observation (e.g. "infusion_started"), or None
    pump_seq: int | None = None  # the pump message sequence number it came from


@dataclass(frozen=True, slots=True)
class AlarmReport:
    """A pump alarm for PCD-04 ORU^R40 (and its FHIR Observation/Flag reading)."""

    alarm_id: int
    pump_id: str
    pump_serial: str
    pump_model: str
    pump_kind: str
    channel: int | None
    code: str  # the pump's own alarm code (openinfusion.pump.codes)
    priority: AlarmPriority
    message: str
    raised_at: datetime
    state: AlarmState
    changed_at: datetime  # when it entered ``state``
    patient: PatientRef | None = None
    placer_order_id: str | None = None
