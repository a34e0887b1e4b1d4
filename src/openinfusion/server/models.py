"""Database tables (SQLAlchemy 2 declarative). The schema itself is created by Alembic."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Pump sequence numbers (and the message ids that grow with them) need 64 bits. SQLite's
# INTEGER already is; the variant keeps the rowid primary key there.
BIGINT = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (portable across SQLite and PostgreSQL), returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use UTC-aware values")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads it as class data)
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class LoginThrottle(Base):
    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime]
    blocked_until: Mapped[datetime | None]


class EnrolmentToken(Base):
    __tablename__ = "enrolment_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    unit: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_by_pump: Mapped[str | None] = mapped_column(String(40))


class Pump(Base):
    __tablename__ = "pumps"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    channel_count: Mapped[int] = mapped_column(Integer)
    unit: Mapped[str | None] = mapped_column(String(64), index=True)
    public_key: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    enrolled_at: Mapped[datetime]
    last_seen: Mapped[datetime | None]
    last_seq: Mapped[int] = mapped_column(BIGINT, default=0)
    gaps: Mapped[list[Any]] = mapped_column(JSON, default=list)
    library_version: Mapped[str | None] = mapped_column(String(64))
    power: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Decommissioned: its key is refused and its serial freed for a re-enrolled device;
    # ``serial`` then holds "~" + the pump id and the real one is kept here.
    decommissioned_at: Mapped[datetime | None]
    decommissioned_serial: Mapped[str | None] = mapped_column(String(64))


class PumpMessage(Base):
    __tablename__ = "pump_messages"
    __table_args__ = (UniqueConstraint("pump_id", "seq", name="uq_pump_messages_pump_seq"),)
    id: Mapped[int] = mapped_column(BIGINT, primary_key=True)
    pump_id: Mapped[str] = mapped_column(ForeignKey("pumps.id"))
    seq: Mapped[int] = mapped_column(BIGINT)
    type: Mapped[str] = mapped_column(String(32))
    sent_at: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime]
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))


class Channel(Base):
    __tablename__ = "channels"
    pump_id: Mapped[str] = mapped_column(ForeignKey("pumps.id"), primary_key=True)
    channel: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(32), default="idle")
    drug: Mapped[str | None] = mapped_column(String(80))
    dose: Mapped[float | None] = mapped_column(Float)
    dose_unit: Mapped[str | None] = mapped_column(String(32))
    rate_ml_h: Mapped[float | None] = mapped_column(Float)
    volume_infused_ml: Mapped[float | None] = mapped_column(Float)
    vtbi_remaining_ml: Mapped[float | None] = mapped_column(Float)
    time_remaining_min: Mapped[float | None] = mapped_column(Float)
    infusion_id: Mapped[int | None] = mapped_column(ForeignKey("infusions.id"))
    updated_at: Mapped[datetime]
    updated_seq: Mapped[int] = mapped_column(BIGINT)


class Infusion(Base):
    __tablename__ = "infusions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pump_id: Mapped[str] = mapped_column(ForeignKey("pumps.id"), index=True)
    channel: Mapped[int] = mapped_column(Integer)
    drug: Mapped[str | None] = mapped_column(String(80))
    dose: Mapped[float | None] = mapped_column(Float)
    dose_unit: Mapped[str | None] = mapped_column(String(32))
    rate_ml_h: Mapped[float | None] = mapped_column(Float)
    volume_infused_ml: Mapped[float] = mapped_column(Float, default=0.0)
    volume_at_start_ml: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    dose_delivered: Mapped[float | None] = mapped_column(Float)
    dose_delivered_unit: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime]
    started_seq: Mapped[int] = mapped_column(BIGINT)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(40))


class Alarm(Base):
    __tablename__ = "alarms"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pump_id: Mapped[str] = mapped_column(ForeignKey("pumps.id"), index=True)
    channel: Mapped[int | None] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(64))
    priority: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text)
    raised_at: Mapped[datetime]
    raised_seq: Mapped[int] = mapped_column(BIGINT)
    cleared_at: Mapped[datetime | None]
    cleared_seq: Mapped[int | None] = mapped_column(BIGINT)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))


class Command(Base):
    __tablename__ = "commands"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    pump_id: Mapped[str] = mapped_column(ForeignKey("pumps.id"), index=True)
    channel: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    issued_by: Mapped[str] = mapped_column(String(64), index=True)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    nonce: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    result_at: Mapped[datetime | None]
    result_seq: Mapped[int | None] = mapped_column(BIGINT)
    delivered_at: Mapped[datetime | None]
    envelope: Mapped[dict[str, Any]] = mapped_column(JSON)


class AuditRecord(Base):
    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditAnchor(Base):
    """The chain head signed by the server key (one row), updated with every entry."""

    __tablename__ = "audit_anchor"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))


class PublishedLibrary(Base):
    """A drug library package as the pharmacist signed it, verified on upload."""

    __tablename__ = "libraries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    signer: Mapped[str] = mapped_column(String(200))
    signed_at: Mapped[str] = mapped_column(String(40))
    package: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_by: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime]


class Patient(Base):
    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mrn: Mapped[str] = mapped_column(String(32), unique=True)
    family_name: Mapped[str] = mapped_column(String(80))
    given_name: Mapped[str] = mapped_column(String(80))
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(16))
    weight_kg: Mapped[float | None] = mapped_column(Float)
    height_cm: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# At most one open association per pump channel, kept by the database itself: a partial
# unique index (SQLite and PostgreSQL both have them) over the rows not yet ended.
_OPEN = text("ended_at IS NULL")


class Association(Base):
    """Which patient a pump channel infuses, from ``associated_at`` until ``ended_at``."""

    __tablename__ = "associations"
    __table_args__ = (
        Index(
            "uq_associations_open_channel",
            "pump_id",
            "channel",
            unique=True,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pump_id: Mapped[str] = mapped_column(ForeignKey("pumps.id"), index=True)
    channel: Mapped[int] = mapped_column(Integer)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    associated_by: Mapped[str] = mapped_column(String(64))
    associated_at: Mapped[datetime]
    ended_by: Mapped[str | None] = mapped_column(String(64))
    ended_at: Mapped[datetime | None]


# Tables owned by the other layer-5 packages live beside their code; importing them here
# puts every table on ``Base.metadata`` whichever module is imported first.
from openinfusion.analytics import tables as _analytics_tables  # noqa: E402, F401
from openinfusion.interop import order_tables as _order_tables  # noqa: E402, F401
from openinfusion.interop import outbound_tables as _outbound_tables  # noqa: E402, F401
