"""Tables of outbound HL7: the durable outbox of PCD-01/PCD-04 messages and the forwarder's cursor.

Declared on the server's one SQLAlchemy ``Base`` (so Alembic and the schema check see them);
``openinfusion.server.models`` imports this module at its end.

- ``hl7_outbox``: one row per message per destination, written in the same transaction that
  moves the forwarder's cursor past the pump facts it came from, so no fact is lost and none
  is turned into a message twice. ``control_id`` (MSH-10) is unique: a message sent again
  after a lost ACK carries the same control id, so the receiver can deduplicate.
  ``status``: ``pending`` (waiting for its turn or for ``next_attempt_at``), ``sent`` (on
  the wire, ACK awaited), ``acked`` (AA/CA received), ``error`` (parked: AR/CR, or AE/CE
  after the retry limit; ``last_error`` says why).
- ``hl7_outbound_cursor``: how far each source has been read (``pump_messages`` by id).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from openinfusion.server.models import BIGINT, Base

OUTBOX_STATUSES = ("pending", "sent", "acked", "error")


class OutboxMessage(Base):
    """One HL7 message for one destination, from its building until its ACK."""

    __tablename__ = "hl7_outbox"
    __table_args__ = (Index("ix_hl7_outbox_destination_status_id", "destination", "status", "id"),)
    id: Mapped[int] = mapped_column(BIGINT, primary_key=True)
    destination: Mapped[str] = mapped_column(String(120))
    message_type: Mapped[str] = mapped_column(String(16))  # ORU^R01 | ORU^R40
    control_id: Mapped[str] = mapped_column(String(20), unique=True)  # MSH-10
    payload: Mapped[str] = mapped_column(Text)  # segments separated by CR
    status: Mapped[str] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    ack_code: Mapped[str | None] = mapped_column(String(2))  # MSA-1 of the last reply
    source: Mapped[str] = mapped_column(String(80))  # e.g. pump_message:42 channel 1
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    acked_at: Mapped[datetime | None]


class OutboundCursor(Base):
    """How far the forwarder has read a source (``position``: the last id turned into
    messages, or passed as producing none)."""

    __tablename__ = "hl7_outbound_cursor"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(BIGINT, default=0)
    updated_at: Mapped[datetime]
