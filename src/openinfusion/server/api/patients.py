"""Patients and their association with pump channels: which patient each channel infuses.

An association names a patient *id*; nothing here (nor any hospital-system merge) ever moves
an open association to another patient: it is ended and started again at the bedside
(RELIABILITY B-23). A clinician limited to a care unit sees and manages only that unit's
patients and pumps; anything else answers like an id that does not exist (C-11).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openinfusion.server.api.deps import Principal, get_ctx, require
from openinfusion.server.api.errors import ApiError, not_found
from openinfusion.server.api.pumps import PumpId, visible_pump
from openinfusion.server.api.users import UNIT
from openinfusion.server.clock import iso
from openinfusion.server.context import ServerContext
from openinfusion.server.models import Association, Patient, Pump
from openinfusion.server.permissions import Perm

router = APIRouter(tags=["patients"])

MRN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"
NAME = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"  # printable, not blank
PatientId = Annotated[int, Path(ge=1, le=2**62, description="patient id")]
ChannelNo = Annotated[int, Path(ge=1, le=64, description="pump channel")]
Weight = Annotated[float, Field(ge=0.2, le=500)]  # kg: a preterm neonate to bariatric
Height = Annotated[float, Field(ge=20, le=275)]  # cm


class NewPatient(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mrn: str = Field(pattern=MRN)
    family_name: str = Field(min_length=1, max_length=80, pattern=NAME)
    given_name: str = Field(min_length=1, max_length=80, pattern=NAME)
    birth_date: date
    sex: Literal["female", "male", "other", "unknown"]
    weight_kg: Weight | None = None
    height_cm: Height | None = None
    unit: str | None = Field(None, pattern=UNIT)


class PatientChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight_kg: Weight | None = None
    height_cm: Height | None = None
    unit: str | None = Field(None, pattern=UNIT)


class AssociationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: int = Field(ge=1, le=2**62)


def patient_view(p: Patient) -> dict[str, Any]:
    return {
        "id": p.id,
        "mrn": p.mrn,
        "family_name": p.family_name,
        "given_name": p.given_name,
        "birth_date": p.birth_date.isoformat(),
        "sex": p.sex,
        "weight_kg": p.weight_kg,
        "height_cm": p.height_cm,
        "unit": p.unit,
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
    }


def association_view(a: Association) -> dict[str, Any]:
    return {
        "id": a.id,
        "pump_id": a.pump_id,
        "channel": a.channel,
        "patient_id": a.patient_id,
        "associated_by": a.associated_by,
        "associated_at": iso(a.associated_at),
        "ended_by": a.ended_by,
        "ended_at": iso(a.ended_at),
        "open": a.ended_at is None,
    }


def visible_patient(session: Session, principal: Principal, patient_id: int) -> Patient:
    """The patient if it exists and is in the principal's unit; the same 404 otherwise."""
    patient = session.get(Patient, patient_id)
    scope = principal.unit_scope
    if patient is None or (scope is not None and patient.unit != scope):
        raise not_found("patient_id", patient_id)
    return patient


def _own_unit(principal: Principal, unit: str | None) -> None:
    scope = principal.unit_scope
    if scope is not None and unit != scope:
        raise ApiError(422, "unit", unit, f"must be your own care unit ({scope})")


def _open_on(session: Session, pump_id: str, channel: int) -> Association | None:
    return session.scalar(
        select(Association).where(
            Association.pump_id == pump_id,
            Association.channel == channel,
            Association.ended_at.is_(None),
        )
    )


def _check_birth_date(ctx: ServerContext, born: date) -> None:
    if born > ctx.now().date():
        raise ApiError(422, "birth_date", born.isoformat(), "must not be in the future")
    if born.year < 1880:
        raise ApiError(422, "birth_date", born.isoformat(), "must be 1880 or later")


@router.post("/api/patients", status_code=201)
def create_patient(
    body: NewPatient,
    principal: Principal = Depends(require(Perm.PATIENTS_MANAGE)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    unit = body.unit if "unit" in body.model_fields_set else principal.unit_scope
    _own_unit(principal, unit)
    _check_birth_date(ctx, body.birth_date)
    duplicate = ApiError(409, "mrn", body.mrn, "a patient with this MRN exists")
    with ctx.db.write() as session:
        if session.scalar(select(Patient.id).where(Patient.mrn == body.mrn)) is not None:
            raise duplicate
        now = ctx.now()
        patient = Patient(
            **body.model_dump(exclude={"unit"}), unit=unit, created_at=now, updated_at=now
        )
        session.add(patient)
        try:
            session.flush()
        except IntegrityError as exc:  # the same MRN committed meanwhile
            raise duplicate from exc
        ctx.audit(
            session,
            principal.username,
            "patient.create",
            f"patient:{patient.id}",
            mrn=patient.mrn,
            unit=unit,
        )
        ctx.bus.publish(
            session, {"type": "patient_created", "patient_id": patient.id, "unit": unit}
        )
        return patient_view(patient)


@router.get("/api/patients")
def list_patients(
    mrn: Annotated[str | None, Query(pattern=MRN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    principal: Principal = Depends(require(Perm.PATIENTS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        query = select(Patient).order_by(Patient.id).limit(limit)
        if mrn is not None:
            query = query.where(Patient.mrn == mrn)
        if principal.unit_scope is not None:
            query = query.where(Patient.unit == principal.unit_scope)
        return [patient_view(p) for p in session.scalars(query)]


@router.get("/api/patients/{patient_id}")
def get_patient(
    patient_id: PatientId,
    principal: Principal = Depends(require(Perm.PATIENTS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    with ctx.db.read() as session:
        return patient_view(visible_patient(session, principal, patient_id))


@router.patch("/api/patients/{patient_id}")
def change_patient(
    patient_id: PatientId,
    body: PatientChange,
    principal: Principal = Depends(require(Perm.PATIENTS_MANAGE)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Weight, height or care unit. A weight change while a channel infuses the patient is
    audited with the open associations: weight-based doses depend on it."""
    given = body.model_fields_set
    if not given:
        raise ApiError(422, "body", None, "name at least one of weight_kg, height_cm, unit")
    for name in ("weight_kg", "height_cm"):
        if name in given and getattr(body, name) is None:
            raise ApiError(422, name, None, "may be changed but not removed")
    if "unit" in given:
        _own_unit(principal, body.unit)
    with ctx.db.write() as session:
        patient = visible_patient(session, principal, patient_id)
        changes = {
            name: [getattr(patient, name), getattr(body, name)]
            for name in sorted(given)
            if getattr(patient, name) != getattr(body, name)
        }
        if not changes:
            return patient_view(patient)
        for name, (_old, new) in changes.items():
            setattr(patient, name, new)
        patient.updated_at = ctx.now()
        details: dict[str, Any] = {"mrn": patient.mrn, "changes": changes}
        if "weight_kg" in changes:
            infusing = session.scalars(
                select(Association)
                .where(Association.patient_id == patient.id, Association.ended_at.is_(None))
                .order_by(Association.id)
            )
            details["open_associations"] = [
                {"pump_id": a.pump_id, "channel": a.channel} for a in infusing
            ]
        ctx.audit(session, principal.username, "patient.update", f"patient:{patient.id}", **details)
        ctx.bus.publish(
            session,
            {
                "type": "patient_updated",
                "patient_id": patient.id,
                "fields": sorted(changes),
                "unit": patient.unit,
            },
        )
        return patient_view(patient)


@router.get("/api/patients/{patient_id}/associations")
def patient_associations(
    patient_id: PatientId,
    principal: Principal = Depends(require(Perm.PATIENTS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    """Current and past associations, oldest first (for a unit-limited clinician: those on
    pumps of the unit)."""
    with ctx.db.read() as session:
        visible_patient(session, principal, patient_id)
        query = (
            select(Association).where(Association.patient_id == patient_id).order_by(Association.id)
        )
        if principal.unit_scope is not None:
            query = query.join(Pump, Pump.id == Association.pump_id).where(
                Pump.unit == principal.unit_scope
            )
        return [association_view(a) for a in session.scalars(query)]


ASSOCIATION_PATH = "/api/pumps/{pump_id}/channels/{channel}/association"


def _channel_of(session: Session, principal: Principal, pump_id: str, channel: int) -> Pump:
    pump = visible_pump(session, principal, pump_id)
    if pump.decommissioned_at is not None:
        raise ApiError(409, "pump_id", pump_id, "is decommissioned")
    if channel > pump.channel_count:
        raise ApiError(422, "channel", channel, f"pump has channels 1 to {pump.channel_count}")
    return pump


@router.post(ASSOCIATION_PATH, status_code=201)
def start_association(
    pump_id: PumpId,
    channel: ChannelNo,
    body: AssociationRequest,
    principal: Principal = Depends(require(Perm.ASSOCIATIONS_MANAGE)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    """The channel now infuses this patient. Refused while another association is open:
    it is ended first, never replaced."""
    with ctx.db.write() as session:
        pump = _channel_of(session, principal, pump_id, channel)
        patient = visible_patient(session, principal, body.patient_id)
        busy = ApiError(409, "channel", channel, "has an open association; end it first")
        if _open_on(session, pump_id, channel) is not None:
            raise busy
        assoc = Association(
            pump_id=pump_id,
            channel=channel,
            patient_id=patient.id,
            associated_by=principal.username,
            associated_at=ctx.now(),
        )
        session.add(assoc)
        try:
            session.flush()
        except IntegrityError as exc:  # another association committed meanwhile
            raise busy from exc
        _record(ctx, session, principal, "association.start", assoc, pump, patient.mrn)
        return association_view(assoc)


@router.delete(ASSOCIATION_PATH)
def end_association(
    pump_id: PumpId,
    channel: ChannelNo,
    principal: Principal = Depends(require(Perm.ASSOCIATIONS_MANAGE)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    with ctx.db.write() as session:
        pump = _channel_of(session, principal, pump_id, channel)
        assoc = _open_on(session, pump_id, channel)
        if assoc is None:
            raise ApiError(404, "association", f"{pump_id}/{channel}", "no open association")
        assoc.ended_at, assoc.ended_by = ctx.now(), principal.username
        patient = session.get(Patient, assoc.patient_id)
        mrn = patient.mrn if patient is not None else None
        _record(ctx, session, principal, "association.end", assoc, pump, mrn)
        return association_view(assoc)


def _record(
    ctx: ServerContext,
    session: Session,
    principal: Principal,
    action: str,
    assoc: Association,
    pump: Pump,
    mrn: str | None,
) -> None:
    ctx.audit(
        session,
        principal.username,
        action,
        f"pump:{pump.id}/channel:{assoc.channel}",
        association_id=assoc.id,
        patient_id=assoc.patient_id,
        mrn=mrn,
    )
    ctx.bus.publish(
        session,
        {
            "type": "association_started" if action == "association.start" else "association_ended",
            "association_id": assoc.id,
            "pump_id": pump.id,
            "channel": assoc.channel,
            "patient_id": assoc.patient_id,
            "unit": pump.unit,
        },
    )
