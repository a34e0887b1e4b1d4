"""IHE PCD-04 Report Alert (ACM): a pump alarm as ORU^R40^ORU_R40 (v2.6), and the reply.

Layout after IHE PCD TF-2 Rev 8 E.3.2 (infusion pump fluid line occlusion) and B.8.5
(OBX-4 sub-IDs of alert facets: ``<MDS>.<VMD>.<CHAN>.<METRIC>.<facet>``):

- PID is always present (TF-2 B.5.1); with PID-31 ``Y`` (identity unknown) when the
  channel has no associated patient.
- OBR-2 the infusion's placer order number when known (TF-2 B.7.1: "the same as ORC-2"),
  OBR-3 the unique identifier of this indication (``<alert id>.<update counter>``),
  OBR-29 Parent the alert's identifier, the same in every indication of one alert (start,
  continue, end) so that the Alert Manager can tie them together (TF-2 B.7, OBR-29),
  OBR-4 ``196616^MDC_EVT_ALARM``, OBR-7 when the alert entered its current state.
- OBX facet 1 (CWE) the alert type: an MDC_EVT_* code when the pump alarm has one, else
  the pump's own code in the local coding system ``99OI``; CWE-9 carries the pump's text.
  OBX-8 holds the priority (PH/PM/PL) and the kind (ST technical, SP physiological);
  OBX-18 the pump serial (equipment instance identifier).
- facet 2 MDC_ATTR_ALERT_SOURCE (the pump MDS, or the channel's VMD), facet 3
  MDC_ATTR_EVENT_PHASE (start/continue/end), facet 4 MDC_ATTR_ALARM_STATE
  (active/inactive), facet 5 MDC_ATTR_ALARM_INACTIVATION_STATE (``enabled``, or
  ``acknowledged`` once a clinician acknowledged it at the pump: TF-2 B.8.5, a latched
  indication until the alert ends).
- OBX-11 ``F`` (final) as in the TF examples.

The Alert Manager answers with an original-mode ACK^R40 (accepted: AA/CA; refused: AE/AR
with ERR rows); :func:`parse_alert_ack` reads it, and also an ORA^R41 (PCD-05 alert
status), so a sender can tell accepted from errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from openinfusion.interop.hl7 import _build as b
from openinfusion.interop.hl7 import nomenclature as mdc
from openinfusion.interop.hl7._patient import (
    equipment_id,
    pid_segment,
    pv1_segment,
    unknown_patient_pid,
)
from openinfusion.interop.hl7.errors import (
    REQUIRED_FIELD_MISSING,
    TABLE_VALUE_NOT_FOUND,
    UNSUPPORTED_MESSAGE_TYPE,
    HL7ParseError,
)
from openinfusion.interop.hl7.parse import escape, field_text, message_type, segments
from openinfusion.interop.records import AlarmReport
from openinfusion.pump.codes import Alarm

# IHE PCD TF-2 Rev 8 E.3.1: MSH-21 of PCD-04 Report Alert.
PCD04_PROFILE: Final = ("IHE_PCD_ACM_001", "IHE PCD", "1.3.6.1.4.1.19376.1.6.4.4.1", "ISO")
LOCAL_CODING_SYSTEM: Final = "99OI"  # HL7 local coding systems begin with 99
PRIORITY_FLAGS: Final = {"high": "PH", "medium": "PM", "low": "PL"}
# Pump alarms about the patient rather than the equipment (ACM alert kind SP, else ST).
_PHYSIOLOGICAL: Final = frozenset({"pca_paused"})

Phase = Literal["start", "continue", "end"]


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """How an AlarmReport reads in ACM terms (for the builder, docs and tests)."""

    phase: Phase
    alarm_state: Literal["active", "inactive"]
    inactivation_state: str
    priority_flag: str
    kind_flag: str
    event: tuple[str, str, str]  # OBX-5 CWE identifier, text, coding system


def alert_facts(alarm: AlarmReport, update_counter: int) -> AlertFacts:
    """The ACM phase, state, inactivation state, flags and event code of an alarm."""
    if alarm.state == "cleared":
        phase: Phase = "end"
        alarm_state: Literal["active", "inactive"] = "inactive"
    else:
        phase = "start" if update_counter == 0 and alarm.state == "active" else "continue"
        alarm_state = "active"
    inactivation = "acknowledged" if alarm.state == "acknowledged" else "enabled"
    term = _event_term(alarm.code)
    event = term.cwe() if term else (alarm.code, alarm.code, LOCAL_CODING_SYSTEM)
    priority = PRIORITY_FLAGS.get(alarm.priority)
    if priority is None:
        raise ValueError(f"priority {alarm.priority!r}: must be high, medium or low")
    return AlertFacts(
        phase=phase,
        alarm_state=alarm_state,
        inactivation_state=inactivation,
        priority_flag=priority,
        kind_flag="SP" if alarm.code in _PHYSIOLOGICAL else "ST",
        event=event,
    )


def _event_term(code: str) -> mdc.Term | None:
    for member in Alarm:
        if member.code == code and member.value.mdc:
            return mdc.BY_REFID.get(member.value.mdc)
    return None


def _default_counter(alarm: AlarmReport) -> int:
    return {"active": 0, "acknowledged": 1, "cleared": 2}.get(alarm.state, 0)


def build_oru_r40(
    alarm: AlarmReport,
    *,
    control_id: str,
    now: datetime,
    update_counter: int | None = None,
    sending_app: str = "OPENINFUSION",
    receiving_app: str = "",
    receiving_facility: str = "",
) -> str:
    """PCD-04 ORU^R40 for a pump alarm (see the module docstring for the layout).

    ``update_counter`` numbers the reports of one alert (0 = first); by default 0 for an
    active alarm, 1 once acknowledged, 2 when cleared.
    """
    if alarm.state not in ("active", "cleared", "acknowledged"):
        raise ValueError(f"state {alarm.state!r}: must be active, cleared or acknowledged")
    if not alarm.pump_serial:
        raise ValueError("pump_serial '': required for OBX-18")
    if alarm.channel is not None and alarm.channel < 1:
        raise ValueError(f"channel {alarm.channel}: channels are numbered from 1")
    counter = _default_counter(alarm) if update_counter is None else update_counter
    if counter < 0:
        raise ValueError(f"update_counter {counter}: must be >= 0")
    facts = alert_facts(alarm, counter)
    mds, vmd = mdc.DEVICE_TERMS.get(alarm.pump_kind, mdc.DEFAULT_DEVICE_TERMS)
    alert_id = f"{alarm.pump_serial}-A{alarm.alarm_id}"
    changed = b.ts(alarm.changed_at)
    base = f"1.{alarm.channel}.0.0" if alarm.channel else "1.0.0.0"
    source = vmd if alarm.channel else mds
    lines = [
        b.msh(
            sending_app=sending_app,
            sending_facility="",
            receiving_app=receiving_app,
            receiving_facility=receiving_facility,
            now=now,
            message_type=("ORU", "R40", "ORU_R40"),
            control_id=control_id,
            accept_ack="AL",
            application_ack="NE",
            profile=PCD04_PROFILE,
        )
    ]
    if alarm.patient is not None:
        lines += [pid_segment(alarm.patient), pv1_segment()]
    else:
        lines.append(unknown_patient_pid())
    placer = b.comp(alarm.placer_order_id) if alarm.placer_order_id else None
    parent = b.Raw(f"^{escape(alert_id)}&{escape(sending_app)}")
    lines.append(
        b.segment(
            "OBR",
            "1",
            placer,  # OBR-2 the infusion order, when known
            b.comp(f"{alert_id}.{counter}", sending_app),  # OBR-3 this indication
            b.comp(*mdc.EVT_ALARM.cwe()),  # OBR-4
            None,
            None,
            changed,  # OBR-7
            *([None] * 21),  # OBR-8 .. OBR-28
            parent,  # OBR-29 the alert, across its indications
        )
    )
    event_value = b.comp(*facts.event, None, None, None, None, None, alarm.message)
    obx = [
        b.segment(
            "OBX",
            "1",
            "CWE",
            b.comp(*mdc.EVT_ALARM.cwe()),
            f"{base}.1",
            event_value,
            None,
            None,
            [facts.priority_flag, facts.kind_flag],
            None,
            None,
            "F",
            None,
            None,
            b.ts(alarm.raised_at),
            None,
            None,
            None,
            b.comp(*equipment_id(alarm.pump_serial, alarm.pump_model)),
        ),
        b.segment(
            "OBX",
            "2",
            "CWE",
            b.comp(*mdc.ALERT_SOURCE.cwe()),
            f"{base}.2",
            b.comp(*source.cwe()),
            None,
            None,
            None,
            None,
            None,
            "F",
            None,
            None,
            changed,
        ),
        b.segment(
            "OBX",
            "3",
            "ST",
            b.comp(*mdc.EVENT_PHASE.cwe()),
            f"{base}.3",
            facts.phase,
            None,
            None,
            None,
            None,
            None,
            "F",
        ),
        b.segment(
            "OBX",
            "4",
            "ST",
            b.comp(*mdc.ALARM_STATE.cwe()),
            f"{base}.4",
            facts.alarm_state,
            None,
            None,
            None,
            None,
            None,
            "F",
        ),
        b.segment(
            "OBX",
            "5",
            "ST",
            b.comp(*mdc.INACTIVATION_STATE.cwe()),
            f"{base}.5",
            facts.inactivation_state,
            None,
            None,
            None,
            None,
            None,
            "F",
        ),
    ]
    lines += obx
    return b.message(lines)


@dataclass(frozen=True, slots=True)
class AlertAckError:
    """One ERR row of an Alert Manager's reply."""

    location: str  # ERR-2, e.g. "OBX^1^5"
    code: str  # ERR-3 identifier (table 0357)
    text: str  # ERR-3 text / ERR-8 user message


@dataclass(frozen=True, slots=True)
class AlertAck:
    """The Alert Manager's reply to a PCD-04 report."""

    message_type: str  # "ACK" or "ORA"
    code: str  # MSA-1: AA/CA accepted; AE/CE error; AR/CR rejected
    acknowledged_control_id: str  # MSA-2: MSH-10 of the ORU^R40 it answers
    errors: tuple[AlertAckError, ...]
    status: str | None = None  # ORA^R41 (PCD-05): the first OBX-5, e.g. delivery status

    @property
    def accepted(self) -> bool:
        """True only for AA/CA with no error rows of severity E/F."""
        return self.code in ("AA", "CA") and not self.errors


def parse_alert_ack(msg: Any) -> AlertAck:
    """Read an ACK^R40 (or ORA^R41) reply: MSA-1, MSA-2 and every ERR row."""
    code, trigger, _ = message_type(msg)
    if code not in ("ACK", "ORA"):
        raise HL7ParseError(
            "MSH-9",
            f"{code}^{trigger}",
            "an Alert Manager replies with ACK^R40 or ORA^R41",
            UNSUPPORTED_MESSAGE_TYPE,
        )
    msa = segments(msg, "MSA")
    if not msa:
        raise HL7ParseError("MSA", "", "MSA segment is required", REQUIRED_FIELD_MISSING)
    ack_code = field_text(msg, msa[0], 1)
    if ack_code not in ("AA", "AE", "AR", "CA", "CE", "CR"):
        raise HL7ParseError(
            "MSA-1",
            ack_code,
            "must be AA, AE, AR, CA, CE or CR (table 0008)",
            TABLE_VALUE_NOT_FOUND,
        )
    errors = []
    for err in segments(msg, "ERR"):
        severity = field_text(msg, err, 4)
        if severity in ("W", "I"):
            continue
        location = "^".join(p for p in (field_text(msg, err, 2, i) for i in range(1, 4)) if p)
        errors.append(
            AlertAckError(
                location=location,
                code=field_text(msg, err, 3, 1) or field_text(msg, err, 1, 4),
                text=field_text(msg, err, 8)
                or field_text(msg, err, 3, 2)
                or field_text(msg, err, 5, 2),
            )
        )
    status = None
    if code == "ORA":
        obx = segments(msg, "OBX")
        status = field_text(msg, obx[0], 5) if obx else None
    return AlertAck(
        message_type=code,
        code=ack_code,
        acknowledged_control_id=field_text(msg, msa[0], 2),
        errors=tuple(errors),
        status=status,
    )
