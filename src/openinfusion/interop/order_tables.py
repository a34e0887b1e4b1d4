"""Tables of the order intake: EHR orders and their status, inbound HL7 control ids, patient merges.

Declared on the server's one SQLAlchemy ``Base`` (so Alembic and the schema check see them);
``openinfusion.server.models`` imports this module at its end.

- ``infusion_orders``: one row per order the EHR sent (accepted or refused at intake), with
  what it asked for, the status it reached and the ``program`` command that pre-populated it.
  ``active_placer_key`` holds the placer order id of an order that reached the pump (NULL
  for one refused at intake): unique, so the same placer order is never pre-populated twice
  (a replayed or out-of-order message). ``(sending_application, message_control_id)`` is
  unique: a message sent again (MSH-10) finds its first answer instead of acting twice.
- ``inbound_messages``: every HL7 message acted on, by sending application and control id,
  with the answer given (the same answer is given again for a duplicate).
- ``patient_merges``: ADT^A40 merges of a prior MRN into a surviving MRN.
- ``association_reverifications``: open associations of a merged (prior) patient, flagged
  for re-verification at the bedside; resolved when that association ends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from openinfusion.server.models import Base


class InfusionOrder(Base):
    """An infusion order from the EHR (IHE PCD-03 RGV^O15 or a FHIR MedicationRequest)."""

    __tablename__ = "infusion_orders"
    __table_args__ = (
        UniqueConstraint(
            "sending_application", "message_control_id", name="uq_infusion_orders_control_id"
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(8))  # hl7 | fhir
    placer_order_id: Mapped[str] = mapped_column(String(64), index=True)
    active_placer_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    message_control_id: Mapped[str | None] = mapped_column(String(64))
    sending_application: Mapped[str | None] = mapped_column(String(180))
    patient_mrn: Mapped[str] = mapped_column(String(64), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    pump_serial: Mapped[str | None] = mapped_column(String(64))
    pump_id: Mapped[str | None] = mapped_column(ForeignKey("pumps.id"), index=True)
    channel: Mapped[int | None] = mapped_column(Integer)
    unit: Mapped[str | None] = mapped_column(String(64), index=True)  # the pump's care unit
    drug_code: Mapped[str | None] = mapped_column(String(64))
    drug: Mapped[str | None] = mapped_column(String(80))
    concentration: Mapped[str | None] = mapped_column(String(64))
    dose: Mapped[str | None] = mapped_column(String(64))
    rate_ml_h: Mapped[float | None] = mapped_column(Float)
    vtbi_ml: Mapped[float | None] = mapped_column(Float)
    patient_weight_kg: Mapped[float | None] = mapped_column(Float)
    library_version: Mapped[str | None] = mapped_column(String(64))
    care_area: Mapped[str | None] = mapped_column(String(64))
    soft_limit: Mapped[bool] = mapped_column(Boolean, default=False)
    findings: Mapped[list[Any]] = mapped_column(JSON, default=list)  # DERS crossings
    issues: Mapped[list[Any]] = mapped_column(JSON, default=list)  # why refused
    status: Mapped[str] = mapped_column(String(24), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    command_id: Mapped[str | None] = mapped_column(String(36), index=True)
    ordered_by: Mapped[str | None] = mapped_column(String(120))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class InboundMessage(Base):
    """An HL7 message acted on, and the acknowledgement given for it."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint(
            "sending_application", "message_control_id", name="uq_inbound_messages_control_id"
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sending_application: Mapped[str] = mapped_column(String(180))
    message_control_id: Mapped[str] = mapped_column(String(64))
    message_type: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime]
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of the raw message
    answer: Mapped[str] = mapped_column(Text)  # the acknowledgement sent (ER7)


class PatientMerge(Base):
    """ADT^A40: the prior MRN's record was merged into the surviving MRN's."""

    __tablename__ = "patient_merges"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prior_mrn: Mapped[str] = mapped_column(String(32), unique=True)
    surviving_mrn: Mapped[str] = mapped_column(String(32), index=True)
    prior_patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    surviving_patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    merged_by: Mapped[str] = mapped_column(String(64))
    merged_at: Mapped[datetime]
    message_control_id: Mapped[str | None] = mapped_column(String(64))


class AssociationReverification(Base):
    """An open association of a merged patient: never remapped, re-verified at the bedside."""

    __tablename__ = "association_reverifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    association_id: Mapped[int] = mapped_column(ForeignKey("associations.id"), index=True)
    merge_id: Mapped[int] = mapped_column(ForeignKey("patient_merges.id"))
    pump_id: Mapped[str] = mapped_column(ForeignKey("pumps.id"), index=True)
    channel: Mapped[int] = mapped_column(Integer)
    unit: Mapped[str | None] = mapped_column(String(64))
    infusing: Mapped[bool] = mapped_column(Boolean)  # the channel was infusing at the merge
    flagged_at: Mapped[datetime]


__all__ = [
    "AssociationReverification",
    "Base",
    "InboundMessage",
    "InfusionOrder",
    "PatientMerge",
]
