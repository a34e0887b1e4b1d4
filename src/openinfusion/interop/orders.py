"""Infusion order intake (IHE PCD-03 PIV and FHIR MedicationRequest): check, store, pre-populate.

:func:`submit_order` judges an :class:`~openinfusion.interop.records.OrderRequest` in one
transaction and either refuses it with one :class:`OrderIssue` per problem (field, value,
rule, HL7 table 0357 code) or stores it and issues a signed ``program`` command that the
pump only *pre-populates*: a clinician confirms it at the bedside, nothing starts remotely
(RELIABILITY B-04, C-17). The checks, in order of the message: the order's own fields; a
message sent again (same MSH-10 from the same sending application) gets the first answer
without acting twice; the patient is known by MRN (and not a merged prior MRN); the pump
is known by serial, enrolled and not decommissioned; the channel exists; the channel's open
association is with *this* patient and not awaiting re-verification after a merge (the
wrong-patient error PIV exists to stop); the placer order was not pre-populated before
(a replayed or out-of-order message); the drug, concentration, dose and rate pass DERS
against the library the pump runs, in the care area of its unit (hard limits refuse; a
soft-limit crossing is pre-populated with the flag shown and overridden only at the
bedside). A refusal stores the refused order with its issues and audits it; nothing else.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openinfusion.interop.order_tables import (
    AssociationReverification,
    InfusionOrder,
    PatientMerge,
)
from openinfusion.interop.orders_ders import (
    HL7_APPLICATION_ERROR,
    HL7_DATA_TYPE_ERROR,
    HL7_DUPLICATE_KEY,
    HL7_REQUIRED_MISSING,
    HL7_TABLE_VALUE_NOT_FOUND,
    HL7_UNKNOWN_KEY,
    Problem,
    check_against_library,
)
from openinfusion.interop.orders_status import (
    ON_CHANNEL,
    STATUSES,
    TERMINAL,
    LiveStatus,
    current_order_for,
    live_status,
)
from openinfusion.interop.records import OrderRequest
from openinfusion.server import commands
from openinfusion.server.clock import iso
from openinfusion.server.context import ServerContext
from openinfusion.server.models import Association, Patient, Pump, User
from openinfusion.server.permissions import Role

__all__ = [
    "ON_CHANNEL",
    "STATUSES",
    "TERMINAL",
    "InfusionOrder",
    "LiveStatus",
    "OrderIssue",
    "OrderOutcome",
    "current_order_for",
    "live_status",
    "order_view",
    "submit_order",
]

# The hospital integration engine sends every order of the hospital: its mass-action
# allowance (C-26) is higher than a clinician's, because what it sends is only ever
# pre-populated and waits for a clinician at each bedside; it is still bounded, so a
# compromised interface cannot put programs on the whole fleet at once. Orders from the
# MLLP listener act as "hl7:<MSH-3 sending application>" and count as the interface.
INTERFACE_MASS_ACTION_PUMPS = 60

_PLACER = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,63}$")
_MRN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
_SERIAL = re.compile(r"^[\x21-\x7e]{1,64}$")
MAX_CHANNEL = 4
MAX_RATE_ML_H = 9999.0  # no infusion pump runs faster; the care area's limit is lower
MAX_VTBI_ML = 10000.0
WEIGHT_KG = (0.2, 500.0)  # a preterm neonate to bariatric (as the patients API)


@dataclass(frozen=True)
class OrderIssue:
    """Why an order was refused: the field, the value it held, the rule it broke, and the
    HL7 v2 table 0357 error condition code for ERR-3 (e.g. 103 table value not found,
    204 unknown key identifier, 207 application error)."""

    field: str
    value: Any
    rule: str
    hl7_code: int

    @property
    def message(self) -> str:
        shown = "" if self.value is None or self.value == "" else f" {self.value!r}"
        return f"{self.field}{shown}: {self.rule}"

    def as_dict(self) -> dict[str, Any]:
        value = (
            self.value
            if isinstance(self.value, str | int | float | bool | None)
            else str(self.value)
        )
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        return {"field": self.field, "value": value, "rule": self.rule, "hl7_code": self.hl7_code}


@dataclass(frozen=True)
class OrderOutcome:
    """The answer to an order: accepted (pre-populated on the pump) or refused with issues."""

    accepted: bool
    order_id: int | None
    status: str
    issues: tuple[OrderIssue, ...]
    command_id: str | None
    soft_limit: bool = False
    duplicate: bool = False  # the same message was answered before: nothing was done again


def _issue(p: Problem) -> OrderIssue:
    return OrderIssue(p.field, p.value, p.rule, p.hl7_code)


def _fields(order: OrderRequest) -> list[Problem]:
    """The order's own fields, before anything is looked up."""
    out: list[Problem] = []
    add = out.append
    if order.source not in ("hl7", "fhir"):
        add(Problem("source", order.source, "must be hl7 or fhir", HL7_DATA_TYPE_ERROR))
    if not isinstance(order.placer_order_id, str) or not order.placer_order_id.strip():
        add(Problem("placer_order_id", order.placer_order_id, "is required", HL7_REQUIRED_MISSING))
    elif not _PLACER.match(order.placer_order_id):
        add(
            Problem(
                "placer_order_id",
                order.placer_order_id[:80],
                "must be 1 to 64 printable characters",
                HL7_DATA_TYPE_ERROR,
            )
        )
    if not order.patient_mrn:
        add(Problem("patient_mrn", order.patient_mrn, "is required", HL7_REQUIRED_MISSING))
    elif not _MRN.match(order.patient_mrn):
        add(
            Problem(
                "patient_mrn",
                order.patient_mrn[:80],
                "must be 1 to 32 letters, digits, '.', '_' or '-'",
                HL7_DATA_TYPE_ERROR,
            )
        )
    if not order.pump_serial:
        add(Problem("pump_serial", order.pump_serial, "is required", HL7_REQUIRED_MISSING))
    elif not _SERIAL.match(order.pump_serial):
        add(
            Problem(
                "pump_serial",
                order.pump_serial[:80],
                "must be 1 to 64 printable characters",
                HL7_DATA_TYPE_ERROR,
            )
        )
    if order.channel is None:
        pass  # a one-channel pump needs none; judged once the pump is known
    elif isinstance(order.channel, bool) or not isinstance(order.channel, int):
        add(Problem("channel", order.channel, "must be a whole number", HL7_DATA_TYPE_ERROR))
    elif not 1 <= order.channel <= MAX_CHANNEL:
        add(Problem("channel", order.channel, f"must be 1 to {MAX_CHANNEL}"))
    if not (order.drug_name or order.drug_code):
        add(Problem("drug", None, "is required (RXG-4 give code)", HL7_REQUIRED_MISSING))
    if order.dose is None and order.rate_ml_h is None:
        add(Problem("dose", None, "give a dose or a rate (mL/h)", HL7_REQUIRED_MISSING))
    for name, top, unit in (
        ("rate_ml_h", MAX_RATE_ML_H, "mL/h"),
        ("vtbi_ml", MAX_VTBI_ML, "mL"),
    ):
        value = getattr(order, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            add(Problem(name, value, f"must be a number of {unit}", HL7_DATA_TYPE_ERROR))
        elif not (math.isfinite(value) and 0 < value <= top):
            add(Problem(name, value, f"must be above 0 and at most {top:g} {unit}"))
    weight = order.patient_weight_kg
    if weight is not None and (
        isinstance(weight, bool)
        or not isinstance(weight, int | float)
        or not (math.isfinite(weight) and WEIGHT_KG[0] <= weight <= WEIGHT_KG[1])
    ):
        add(
            Problem(
                "patient_weight_kg",
                weight,
                f"must be {WEIGHT_KG[0]:g} to {WEIGHT_KG[1]:g} kg",
            )
        )
    for name, size in (("dose", 64), ("concentration", 64), ("drug_name", 80), ("drug_code", 64)):
        value = getattr(order, name)
        if value is not None and (not isinstance(value, str) or len(value) > size):
            add(Problem(name, str(value)[:80], f"must be text of at most {size} characters", 102))
    return out


def _find_pump(session: Session, serial: str) -> tuple[Pump | None, Problem | None]:
    pump = session.scalars(select(Pump).where(Pump.serial == serial)).first()
    if pump is not None:
        return pump, None
    retired = session.scalars(select(Pump).where(Pump.decommissioned_serial == serial)).first()
    if retired is not None:
        return None, Problem("pump_serial", serial, "is decommissioned", HL7_UNKNOWN_KEY)
    return None, Problem("pump_serial", serial, "is not an enrolled pump", HL7_UNKNOWN_KEY)


def _find_patient(session: Session, mrn: str) -> tuple[Patient | None, Problem | None]:
    merged = session.scalars(select(PatientMerge).where(PatientMerge.prior_mrn == mrn)).first()
    if merged is not None:
        return None, Problem(
            "patient_mrn",
            mrn,
            f"was merged into MRN {merged.surviving_mrn} (ADT^A40); orders name the surviving "
            "MRN once the pump channel is re-verified at the bedside",
            HL7_UNKNOWN_KEY,
        )
    patient = session.scalars(select(Patient).where(Patient.mrn == mrn)).first()
    if patient is None:
        return None, Problem("patient_mrn", mrn, "is not a known patient", HL7_UNKNOWN_KEY)
    return patient, None


def _association(session: Session, pump: Pump, channel: int, patient: Patient) -> Problem | None:
    """The channel must be associated with this very patient, and not awaiting re-verification."""
    assoc = session.scalars(
        select(Association).where(
            Association.pump_id == pump.id,
            Association.channel == channel,
            Association.ended_at.is_(None),
        )
    ).first()
    if assoc is None:
        return Problem(
            "channel",
            channel,
            f"pump {pump.serial} channel {channel} is associated with no patient: associate "
            "the patient at the bedside first",
        )
    flagged = session.scalars(
        select(AssociationReverification).where(
            AssociationReverification.association_id == assoc.id
        )
    ).first()
    if flagged is not None:
        return Problem(
            "channel",
            channel,
            f"pump {pump.serial} channel {channel} awaits re-verification of its patient at "
            "the bedside after a patient merge (ADT^A40); nothing is pre-populated until then",
        )
    if assoc.patient_id != patient.id:
        other = session.get(Patient, assoc.patient_id)
        who = f"MRN {other.mrn}" if other is not None else "another patient"
        return Problem(
            "patient_mrn",
            patient.mrn,
            f"wrong patient: pump {pump.serial} channel {channel} is associated with {who}",
        )
    return None


def _placer_key(order: OrderRequest) -> str:
    return f"{order.source}:{order.placer_order_id}"


def _outcome(row: InfusionOrder, *, duplicate: bool = False) -> OrderOutcome:
    issues = tuple(
        OrderIssue(i["field"], i.get("value"), i["rule"], int(i.get("hl7_code", 207)))
        for i in row.issues or []
        if isinstance(i, dict)
    )
    return OrderOutcome(
        accepted=row.command_id is not None,
        order_id=row.id,
        status=row.status,
        issues=issues,
        command_id=row.command_id,
        soft_limit=row.soft_limit,
        duplicate=duplicate,
    )


def _by_control_id(session: Session, order: OrderRequest) -> InfusionOrder | None:
    if not (order.message_control_id and order.sending_application):
        return None
    return session.scalars(
        select(InfusionOrder).where(
            InfusionOrder.sending_application == order.sending_application[:180],
            InfusionOrder.message_control_id == order.message_control_id[:64],
        )
    ).first()


def _mass_action_allowance(session: Session, ctx: ServerContext, actor: str) -> int:
    role = session.scalar(select(User.role).where(User.username == actor))
    if role == Role.INTERFACE.value or actor.startswith("hl7:"):
        return max(ctx.settings.mass_action_pumps, INTERFACE_MASS_ACTION_PUMPS)
    return ctx.settings.mass_action_pumps


def _clip(value: str | None, size: int) -> str | None:
    return value[:size] if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _row(order: OrderRequest, actor: str, now: datetime) -> InfusionOrder:
    return InfusionOrder(
        source=order.source if order.source in ("hl7", "fhir") else "hl7",
        placer_order_id=_clip(order.placer_order_id, 64) or "",
        message_control_id=_clip(order.message_control_id, 64),
        sending_application=_clip(order.sending_application, 180),
        patient_mrn=_clip(order.patient_mrn, 64) or "",
        pump_serial=_clip(order.pump_serial, 64),
        channel=order.channel
        if isinstance(order.channel, int) and not isinstance(order.channel, bool)
        else None,
        drug_code=_clip(order.drug_code, 64),
        drug=_clip(order.drug_name, 80),
        concentration=_clip(order.concentration, 64),
        dose=_clip(order.dose, 64),
        rate_ml_h=_number(order.rate_ml_h),
        vtbi_ml=_number(order.vtbi_ml),
        patient_weight_kg=_number(order.patient_weight_kg),
        soft_limit=False,
        findings=[],
        issues=[],
        status="rejected",
        ordered_by=_clip(order.ordered_by, 120),
        created_by=actor[:64],
        created_at=now,
        updated_at=now,
    )


def _judge(
    ctx: ServerContext, session: Session, order: OrderRequest, row: InfusionOrder, actor: str
) -> tuple[list[Problem], dict[str, Any] | None, Pump | None]:
    """Every check; returns the problems, and the pump program when there are none."""
    problems = _fields(order)
    patient = pump = None
    if order.patient_mrn and _MRN.match(order.patient_mrn):
        patient, problem = _find_patient(session, order.patient_mrn)
        if problem:
            problems.append(problem)
    if order.pump_serial and _SERIAL.match(order.pump_serial):
        pump, problem = _find_pump(session, order.pump_serial)
        if problem:
            problems.append(problem)
    if pump is not None:
        row.pump_id, row.unit = pump.id, pump.unit
    if patient is not None:
        row.patient_id = patient.id
        row.unit = row.unit or patient.unit
    channel = order.channel
    if pump is not None and channel is None:
        if pump.channel_count == 1:
            channel = row.channel = 1  # the pump's only channel
        else:
            problems.append(
                Problem(
                    "channel",
                    None,
                    f"is required: pump {pump.serial} has {pump.channel_count} channels",
                    HL7_REQUIRED_MISSING,
                )
            )
    channel_ok = isinstance(channel, int) and 1 <= channel <= MAX_CHANNEL
    if pump is not None and channel_ok:
        assert channel is not None
        if channel > pump.channel_count:
            problems.append(
                Problem(
                    "channel",
                    channel,
                    f"pump {pump.serial} has channels 1 to {pump.channel_count}",
                    HL7_TABLE_VALUE_NOT_FOUND,
                )
            )
        elif patient is not None:
            problem = _association(session, pump, channel, patient)
            if problem:
                problems.append(problem)
    if order.placer_order_id and session.scalar(
        select(InfusionOrder.id).where(InfusionOrder.active_placer_key == _placer_key(order))
    ):
        problems.append(
            Problem(
                "placer_order_id",
                order.placer_order_id,
                "was already sent to a pump (a replayed or out-of-order order is refused; "
                "a new order needs a new placer order number)",
                HL7_DUPLICATE_KEY,
            )
        )
    if problems or pump is None or patient is None:
        return problems, None, pump
    weight = _number(order.patient_weight_kg) or patient.weight_kg
    lib = check_against_library(
        session,
        pump,
        patient,
        drug_name=order.drug_name,
        drug_code=order.drug_code,
        concentration=order.concentration,
        dose=order.dose,
        rate_ml_h=_number(order.rate_ml_h),
        vtbi_ml=_number(order.vtbi_ml),
        weight_kg=weight,
    )
    row.library_version, row.care_area = lib.library_version, lib.care_area
    row.findings, row.soft_limit = lib.findings, lib.soft_limit
    if lib.problems:
        return lib.problems, None, pump
    params: dict[str, Any] = {"drug": lib.drug}
    if lib.concentration is not None:
        params["concentration"] = lib.concentration
    if order.dose is not None:
        params["dose"] = order.dose
    if order.rate_ml_h is not None:
        params["rate_ml_h"] = float(order.rate_ml_h)
    if order.vtbi_ml is not None:
        params["vtbi_ml"] = float(order.vtbi_ml)
    return [], params, pump


def submit_order(ctx: ServerContext, order: OrderRequest, *, actor: str) -> OrderOutcome:
    """Check ``order`` and pre-populate it on its pump channel, or refuse it (module doc)."""
    try:
        return _submit(ctx, order, actor)
    except IntegrityError:
        # The same message (or placer order) committed meanwhile by another request.
        with ctx.db.read() as session:
            first = _by_control_id(session, order)
            if first is not None:
                return _outcome(first, duplicate=True)
        return _submit(ctx, order, actor)


def _submit(ctx: ServerContext, order: OrderRequest, actor: str) -> OrderOutcome:
    now = ctx.now()
    with ctx.db.write() as session:
        first = _by_control_id(session, order)
        if first is not None:
            if first.placer_order_id != (order.placer_order_id or "")[:64]:
                issue = OrderIssue(
                    "message_control_id",
                    order.message_control_id,
                    f"was already used by {order.sending_application} for placer order "
                    f"{first.placer_order_id}: a new message needs a new control id",
                    HL7_DUPLICATE_KEY,
                )
                ctx.audit(
                    session,
                    actor,
                    "order.refused",
                    f"order:{order.placer_order_id}",
                    issues=[issue.as_dict()],
                    control_id=order.message_control_id,
                )
                return OrderOutcome(False, None, "rejected", (issue,), None)
            ctx.audit(
                session,
                actor,
                "order.duplicate",
                f"order:{first.id}",
                control_id=first.message_control_id,
                sending_application=first.sending_application,
            )
            return _outcome(first, duplicate=True)
        row = _row(order, actor, now)
        problems, params, pump = _judge(ctx, session, order, row, actor)
        if not problems and pump is not None and params is not None:
            assert row.channel is not None
            try:
                commands.check_policy(session, pump, row.channel, "program")
                commands.check_mass_action(
                    session,
                    actor,
                    pump.id,
                    now,
                    _mass_action_allowance(session, ctx, actor),
                    ctx.settings.mass_action_window_s,
                )
            except commands.CommandRefusal as exc:
                problems.append(Problem(exc.field, exc.value, exc.rule, HL7_APPLICATION_ERROR))
        if problems:
            issues = [_issue(p).as_dict() for p in problems]
            row.issues, row.status = issues, "rejected"
            row.reason = "; ".join(_issue(p).message for p in problems)[:2000]
            session.add(row)
            session.flush()
            ctx.audit(
                session,
                actor,
                "order.refused",
                f"order:{row.id}",
                placer_order_id=row.placer_order_id,
                control_id=row.message_control_id,
                patient_mrn=row.patient_mrn,
                pump_serial=row.pump_serial,
                channel=row.channel,
                issues=issues,
            )
            _publish(ctx, session, row)
            return _outcome(row)
        assert pump is not None and params is not None and row.channel is not None
        command = commands.issue(
            session,
            ctx.server_key,
            pump,
            row.channel,
            "program",
            params,
            actor,
            now,
            ctx.settings.command_ttl_s,
        )
        row.command_id, row.status = command.id, "unconfirmed"
        row.active_placer_key = _placer_key(order)[:80]
        row.reason = (
            "soft limit crossed: a clinician overrides it at the bedside with a reason"
            if row.soft_limit
            else None
        )
        session.add(row)
        session.flush()
        ctx.audit(
            session,
            actor,
            "order.accepted",
            f"order:{row.id}",
            placer_order_id=row.placer_order_id,
            control_id=row.message_control_id,
            patient_mrn=row.patient_mrn,
            pump_id=pump.id,
            channel=row.channel,
            command_id=command.id,
            params=params,
            soft_limit=row.soft_limit,
        )
        ctx.audit(
            session,
            actor,
            "command.issue",
            f"command:{command.id}",
            pump_id=pump.id,
            channel=row.channel,
            action="program",
            params=params,
            order_id=row.id,
        )
        # The gateway delivers a command when it sees this event (server/gateway.py).
        ctx.bus.publish(
            session,
            {
                "type": "command",
                "command_id": command.id,
                "pump_id": pump.id,
                "unit": pump.unit,
                "action": "program",
            },
        )
        _publish(ctx, session, row)
        return _outcome(row)


def _publish(ctx: ServerContext, session: Session, row: InfusionOrder) -> None:
    ctx.bus.publish(
        session,
        {
            "type": "order",
            "order_id": row.id,
            "status": row.status,
            "pump_id": row.pump_id,
            "unit": row.unit,
        },
    )


def order_view(session: Session, row: InfusionOrder, now: datetime) -> dict[str, Any]:
    """The JSON an API shows for an order, with its live status on the pump."""
    live = live_status(session, row, now)
    reverify = False
    if row.pump_id is not None and row.channel is not None and live.status in ON_CHANNEL:
        reverify = (
            session.scalar(
                select(AssociationReverification.id)
                .join(Association, Association.id == AssociationReverification.association_id)
                .where(
                    AssociationReverification.pump_id == row.pump_id,
                    AssociationReverification.channel == row.channel,
                    Association.ended_at.is_(None),
                )
                .limit(1)
            )
            is not None
        )
    return {
        "id": row.id,
        "source": row.source,
        "placer_order_id": row.placer_order_id,
        "message_control_id": row.message_control_id,
        "sending_application": row.sending_application,
        "patient_mrn": row.patient_mrn,
        "patient_id": row.patient_id,
        "pump_serial": row.pump_serial,
        "pump_id": row.pump_id,
        "channel": row.channel,
        "unit": row.unit,
        "drug": row.drug,
        "drug_code": row.drug_code,
        "concentration": row.concentration,
        "dose": row.dose,
        "rate_ml_h": row.rate_ml_h,
        "vtbi_ml": row.vtbi_ml,
        "patient_weight_kg": row.patient_weight_kg,
        "library_version": row.library_version,
        "care_area": row.care_area,
        "soft_limit": row.soft_limit,
        "findings": row.findings or [],
        "issues": row.issues or [],
        "status": live.status,
        "reason": live.reason if live.reason is not None else row.reason,
        "confirmed_at": iso(live.confirmed_at),
        # its channel's patient was merged while the order was on it: re-verify at the bedside
        "awaiting_reverification": reverify,
        "command_id": row.command_id,
        "ordered_by": row.ordered_by,
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }
