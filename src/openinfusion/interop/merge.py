"""Patient merge (HL7 ADT^A40): the prior MRN's record is merged into the surviving MRN's.

A merge changes who the hospital says a patient is, never which patient a pump channel
infuses (RELIABILITY B-23). The prior patient's row and its association history stay as they
were; every *open* association of the prior patient is flagged for re-verification at the
bedside (audited, published live, shown with the orders), and until a clinician ends it and
associates the channel again, no order is pre-populated on that channel. Orders that still
name the prior MRN are refused with the surviving MRN in the reason. The same merge sent
again changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from openinfusion.interop.order_tables import AssociationReverification, PatientMerge
from openinfusion.interop.orders import OrderIssue
from openinfusion.interop.orders_ders import (
    HL7_APPLICATION_ERROR,
    HL7_DATA_TYPE_ERROR,
    HL7_REQUIRED_MISSING,
)
from openinfusion.interop.records import PatientRef
from openinfusion.server.clock import iso
from openinfusion.server.context import ServerContext
from openinfusion.server.derive import IN_PROGRESS
from openinfusion.server.models import Association, Channel, Patient, Pump

_MRN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")  # as the patients API
_SEXES = frozenset({"female", "male", "other", "unknown"})


@dataclass(frozen=True)
class MergeOutcome:
    """What a merge did: the merge row, the associations flagged, or why it was refused."""

    merged: bool
    merge_id: int | None
    flagged: tuple[int, ...]  # association ids now awaiting bedside re-verification
    issues: tuple[OrderIssue, ...] = ()
    duplicate: bool = False
    note: str = ""


def _mrn_problem(field: str, mrn: Any) -> OrderIssue | None:
    if not isinstance(mrn, str) or not mrn:
        return OrderIssue(field, mrn, "is required", HL7_REQUIRED_MISSING)
    if not _MRN.match(mrn):
        return OrderIssue(
            field, mrn[:80], "must be 1 to 32 letters, digits, '.', '_' or '-'", HL7_DATA_TYPE_ERROR
        )
    return None


def _by_mrn(session: Session, mrn: str) -> Patient | None:
    return session.scalars(select(Patient).where(Patient.mrn == mrn)).first()


def _surviving_row(
    ctx: ServerContext, session: Session, ref: PatientRef, prior: Patient
) -> Patient:
    """A surviving MRN the server has never seen: recorded from the message (and what the
    server knew of the prior patient for what the message leaves out)."""
    now = ctx.now()
    birth: date = ref.birth_date or prior.birth_date
    row = Patient(
        mrn=ref.mrn,
        family_name=(ref.family_name or prior.family_name)[:80],
        given_name=(ref.given_name or prior.given_name)[:80],
        birth_date=birth,
        sex=ref.sex if ref.sex in _SEXES else prior.sex,
        weight_kg=prior.weight_kg,
        height_cm=prior.height_cm,
        unit=prior.unit,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row


def merge_patients(
    ctx: ServerContext,
    prior_mrn: str,
    surviving: PatientRef,
    *,
    actor: str,
    control_id: str | None = None,
) -> MergeOutcome:
    """Merge ``prior_mrn`` into ``surviving.mrn`` (module docstring); one transaction."""
    issues = [
        i
        for i in (_mrn_problem("prior_mrn", prior_mrn), _mrn_problem("mrn", surviving.mrn))
        if i is not None
    ]
    if not issues and prior_mrn == surviving.mrn:
        issues.append(
            OrderIssue("prior_mrn", prior_mrn, "is the surviving MRN itself", HL7_APPLICATION_ERROR)
        )
    if issues:
        ctx.audit_alone(
            actor,
            "patient.merge_refused",
            f"mrn:{str(prior_mrn)[:40]}",
            issues=[i.as_dict() for i in issues],
        )
        return MergeOutcome(False, None, (), tuple(issues))
    with ctx.db.write() as session:
        done = session.scalars(
            select(PatientMerge).where(PatientMerge.prior_mrn == prior_mrn)
        ).first()
        if done is not None:
            if done.surviving_mrn == surviving.mrn:
                return MergeOutcome(True, done.id, (), duplicate=True, note="already merged")
            issue = OrderIssue(
                "prior_mrn",
                prior_mrn,
                f"was already merged into MRN {done.surviving_mrn}",
                HL7_APPLICATION_ERROR,
            )
            ctx.audit(
                session,
                actor,
                "patient.merge_refused",
                f"mrn:{prior_mrn}",
                issues=[issue.as_dict()],
            )
            return MergeOutcome(False, None, (), (issue,))
        onward = session.scalars(
            select(PatientMerge).where(PatientMerge.prior_mrn == surviving.mrn)
        ).first()
        if onward is not None:
            issue = OrderIssue(
                "mrn",
                surviving.mrn,
                f"was itself merged into MRN {onward.surviving_mrn}: merge into that one",
                HL7_APPLICATION_ERROR,
            )
            ctx.audit(
                session,
                actor,
                "patient.merge_refused",
                f"mrn:{prior_mrn}",
                issues=[issue.as_dict()],
            )
            return MergeOutcome(False, None, (), (issue,))
        prior = _by_mrn(session, prior_mrn)
        if prior is None:
            # The hospital merges records this server never knew: nothing infuses them.
            ctx.audit(
                session,
                actor,
                "patient.merge_ignored",
                f"mrn:{prior_mrn}",
                surviving_mrn=surviving.mrn,
                reason="prior MRN unknown on this server",
            )
            return MergeOutcome(True, None, (), note="prior MRN not known here: nothing to merge")
        target = _by_mrn(session, surviving.mrn) or _surviving_row(ctx, session, surviving, prior)
        now = ctx.now()
        merge = PatientMerge(
            prior_mrn=prior_mrn,
            surviving_mrn=surviving.mrn,
            prior_patient_id=prior.id,
            surviving_patient_id=target.id,
            merged_by=actor[:64],
            merged_at=now,
            message_control_id=control_id[:64] if control_id else None,
        )
        session.add(merge)
        session.flush()
        flagged: list[int] = []
        open_assocs = session.scalars(
            select(Association)
            .where(Association.patient_id == prior.id, Association.ended_at.is_(None))
            .order_by(Association.id)
        )
        for assoc in open_assocs:
            pump = session.get(Pump, assoc.pump_id)
            ch = session.get(Channel, (assoc.pump_id, assoc.channel))
            infusing = ch is not None and ch.state in IN_PROGRESS
            unit = pump.unit if pump is not None else None
            session.add(
                AssociationReverification(
                    association_id=assoc.id,
                    merge_id=merge.id,
                    pump_id=assoc.pump_id,
                    channel=assoc.channel,
                    unit=unit,
                    infusing=infusing,
                    flagged_at=now,
                )
            )
            flagged.append(assoc.id)
            ctx.audit(
                session,
                actor,
                "association.reverify",
                f"pump:{assoc.pump_id}/channel:{assoc.channel}",
                association_id=assoc.id,
                prior_mrn=prior_mrn,
                surviving_mrn=surviving.mrn,
                infusing=infusing,
            )
            ctx.bus.publish(
                session,
                {
                    "type": "association_reverify",
                    "association_id": assoc.id,
                    "pump_id": assoc.pump_id,
                    "channel": assoc.channel,
                    "unit": unit,
                    "infusing": infusing,
                },
            )
        ctx.audit(
            session,
            actor,
            "patient.merge",
            f"patient:{target.id}",
            prior_mrn=prior_mrn,
            surviving_mrn=surviving.mrn,
            prior_patient_id=prior.id,
            flagged_associations=flagged,
            control_id=control_id,
        )
        ctx.bus.publish(
            session,
            {
                "type": "patient_merged",
                "patient_id": target.id,
                "prior_patient_id": prior.id,
                "unit": target.unit,
            },
        )
        return MergeOutcome(True, merge.id, tuple(flagged))


def reverification_view(session: Session, flag: AssociationReverification) -> dict[str, Any]:
    """A flagged association for the dashboard: open until the association is ended."""
    merge = session.get(PatientMerge, flag.merge_id)
    assoc = session.get(Association, flag.association_id)
    return {
        "id": flag.id,
        "association_id": flag.association_id,
        "pump_id": flag.pump_id,
        "channel": flag.channel,
        "unit": flag.unit,
        "infusing": flag.infusing,
        "prior_mrn": merge.prior_mrn if merge else None,
        "surviving_mrn": merge.surviving_mrn if merge else None,
        "flagged_at": iso(flag.flagged_at),
        "open": assoc is not None and assoc.ended_at is None,
        "resolved_at": iso(assoc.ended_at) if assoc is not None else None,
    }
