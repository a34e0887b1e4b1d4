"""Inbound HL7 v2: what the server does with a parsed message, and the answer it gives.

- ``RGV^O15`` (IHE PCD-03, PIV): read into an OrderRequest, judged and pre-populated by
  :func:`openinfusion.interop.orders.submit_order`, answered with ``RRG^O16``: AA when
  accepted, else one ERR per issue pointing at the HL7 field it came from (PID-3, OBX-18,
  RXG-4, ...); a message that cannot be read as an order is refused with its parse error.
- ``ADT^A40``: the patient merge of :mod:`openinfusion.interop.merge`, answered with an ACK.
- anything else: ``ACK`` AR with code 200 (unsupported message type).

A message sent again (same MSH-3 sending application and MSH-10 control id, same bytes) gets
the answer it got the first time, word for word, and nothing is done twice; the same control
id on *different* content is refused (205). Every answer is kept in ``inbound_messages``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from openinfusion.interop.hl7.ack import build_ack
from openinfusion.interop.hl7.adt import parse_adt_a40
from openinfusion.interop.hl7.errors import (
    DUPLICATE_KEY_IDENTIFIER,
    UNSUPPORTED_MESSAGE_TYPE,
    HL7ParseError,
)
from openinfusion.interop.hl7.parse import control_id, field_text, message_type
from openinfusion.interop.hl7.pcd03 import build_rrg_o16, parse_rgv_o15
from openinfusion.interop.merge import merge_patients
from openinfusion.interop.order_tables import InboundMessage
from openinfusion.interop.orders import OrderIssue, submit_order
from openinfusion.interop.records import PatientRef
from openinfusion.server.context import ServerContext

#: Where in an RGV^O15 each order field comes from (IHE PCD TF-2 3.3.4.4, see hl7/pcd03.py).
HL7_LOCATION = {
    "placer_order_id": "ORC-2",
    "patient_mrn": "PID-3",
    "pump_serial": "OBX-18",
    "pump_id": "OBX-18",
    "channel": "OBX-4",
    "drug": "RXG-4",
    "drug_name": "RXG-4.2",
    "drug_code": "RXG-4.1",
    "concentration": "RXG-17",
    "dose": "RXG-15",
    "rate_ml_h": "RXG-15",
    "vtbi_ml": "RXG-5",
    "patient_weight_kg": "OBX-5",
    "message_control_id": "MSH-10",
    "prior_mrn": "MRG-1",
    "mrn": "PID-3",
}
SENDER = "OPENINFUSION"


@dataclass(frozen=True)
class HL7Issue:
    """An order issue reported at its HL7 location (ERR-2), the order field named in the rule."""

    field: str
    value: str
    rule: str
    hl7_code: int


def at_location(issue: OrderIssue) -> HL7Issue:
    where = HL7_LOCATION.get(issue.field, issue.field)
    rule = issue.rule if where == issue.field else f"{issue.field}: {issue.rule}"
    value = "" if issue.value is None else str(issue.value)
    return HL7Issue(where, value, rule, issue.hl7_code)


def new_control_id() -> str:
    """MSH-10 of an answer: unique without coordination between server processes."""
    return "OIA" + uuid.uuid4().hex[:17].upper()


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _sender(msg: Any) -> str:
    return (field_text(msg, msg[0], 3, 1) or "")[:180]


def dispatch(ctx: ServerContext, msg: Any, raw: bytes) -> str:
    """Act on one parsed message and return the answer (ER7 text); see the module docstring."""
    app, cid = _sender(msg), control_id(msg)[:64]
    digest = _digest(raw)
    if cid:
        with ctx.db.read() as session:
            seen = session.scalars(
                select(InboundMessage).where(
                    InboundMessage.sending_application == app,
                    InboundMessage.message_control_id == cid,
                )
            ).first()
            if seen is not None:
                if seen.digest == digest:
                    return seen.answer
                issue = HL7ParseError(
                    "MSH-10",
                    cid,
                    f"was already used by {app or 'this sender'} for another message: a new "
                    "message needs a new control id",
                    DUPLICATE_KEY_IDENTIFIER,
                )
                ctx.audit_alone(
                    f"hl7:{app}"[:64], "hl7.control_id_reused", f"msh10:{cid}", sender=app
                )
                return build_ack(
                    msg, "AR", errors=[issue], now=ctx.now(), control_id=new_control_id()
                )
    code, trigger, _ = message_type(msg)
    kind = f"{code}^{trigger}"
    if kind == "RGV^O15":
        answer = _order(ctx, msg, app)
    elif kind == "ADT^A40":
        answer = _merge(ctx, msg, app)
    else:
        issue = HL7ParseError(
            "MSH-9",
            kind,
            "this server takes RGV^O15 infusion orders and ADT^A40 merges only",
            UNSUPPORTED_MESSAGE_TYPE,
        )
        return build_ack(msg, "AR", errors=[issue], now=ctx.now(), control_id=new_control_id())
    if cid:
        _remember(ctx, app, cid, kind, digest, answer)
    return answer


def _remember(ctx: ServerContext, app: str, cid: str, kind: str, digest: str, answer: str) -> None:
    try:
        with ctx.db.write() as session:
            session.add(
                InboundMessage(
                    sending_application=app,
                    message_control_id=cid,
                    message_type=kind,
                    received_at=ctx.now(),
                    digest=digest,
                    answer=answer,
                )
            )
    except IntegrityError:
        pass  # the same message answered meanwhile by another worker: that answer stands


def _order(ctx: ServerContext, msg: Any, app: str) -> str:
    now = ctx.now()
    try:
        order = parse_rgv_o15(msg)
    except HL7ParseError as exc:
        ctx.audit_alone(
            f"hl7:{app}"[:64],
            "order.unreadable",
            f"msh10:{control_id(msg)[:64]}",
            field=exc.field,
            rule=exc.rule,
            code=exc.code,
        )
        return build_rrg_o16(
            msg, accepted=False, errors=[exc], now=now, control_id=new_control_id()
        )
    outcome = submit_order(ctx, replace(order, source="hl7"), actor=f"hl7:{app}"[:64])
    return build_rrg_o16(
        msg,
        accepted=outcome.accepted,
        errors=[at_location(i) for i in outcome.issues],
        now=ctx.now(),
        control_id=new_control_id(),
    )


def _merge(ctx: ServerContext, msg: Any, app: str) -> str:
    now = ctx.now()
    try:
        request = parse_adt_a40(msg)
    except HL7ParseError as exc:
        return build_ack(msg, "AR", errors=[exc], now=now, control_id=new_control_id())
    patient = _surviving(msg, request.surviving_mrn)
    outcome = merge_patients(
        ctx, request.prior_mrn, patient, actor=f"hl7:{app}"[:64], control_id=request.control_id
    )
    if not outcome.merged:
        issues = [at_location(i) for i in outcome.issues]
        return build_ack(msg, "AE", errors=issues, now=ctx.now(), control_id=new_control_id())
    return build_ack(msg, "AA", now=ctx.now(), control_id=new_control_id())


def _surviving(msg: Any, mrn: str) -> PatientRef:
    """The surviving patient as the A40's PID gives them (used only if new to this server)."""
    try:
        from openinfusion.interop.hl7._patient import read_patient

        ref = read_patient(msg, required=False)
    except HL7ParseError:
        ref = None
    if ref is None or ref.mrn != mrn:
        return PatientRef(mrn)
    return ref
