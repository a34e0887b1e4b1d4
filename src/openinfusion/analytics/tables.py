"""Tables of fleet analytics and predictive maintenance.

Declared on the server's one SQLAlchemy ``Base`` (so Alembic and the schema check see them);
``openinfusion.server.models`` imports this module at its end.

- ``maintenance_service``: each service of a pump by biomedical engineering (preventive
  maintenance, repair, battery replacement); the newest one sets the pump's time since
  service in the maintenance queue.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from openinfusion.server.models import Base

#: Kinds of service a biomedical engineer records.
SERVICE_KINDS = ("preventive", "repair", "battery_replaced", "inspection")


class ServiceRecord(Base):
    """One service of one pump (who, when, what)."""

    __tablename__ = "maintenance_service"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pump_id: Mapped[str] = mapped_column(ForeignKey("pumps.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    serviced_at: Mapped[datetime]
    serviced_by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)


__all__ = ["SERVICE_KINDS", "Base", "ServiceRecord"]
