"""ADT^A40 Merge Patient - Patient Identifier List (HL7 v2.6 section 3.3.40).

The EHR merges two records of one person: PID-3 carries the surviving identifier, MRG-1
the prior (retired) one. Pump associations and orders filed under the prior MRN must
follow the surviving one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from openinfusion.interop.hl7.datatypes import parse_dtm
from openinfusion.interop.hl7.errors import (
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    HL7ParseError,
)
from openinfusion.interop.hl7.parse import control_id, field_text, message_type, segments


@dataclass(frozen=True, slots=True)
class MergeRequest:
    """Merge the prior MRN into the surviving one, as of ``event_time`` (UTC)."""

    surviving_mrn: str
    prior_mrn: str
    control_id: str
    event_time: datetime | None


def parse_adt_a40(msg: Any) -> MergeRequest:
    """Read an ADT^A40: PID-3.1 surviving MRN, MRG-1.1 prior MRN, EVN-6 or EVN-2 time."""
    code, trigger, _ = message_type(msg)
    if code != "ADT":
        raise HL7ParseError(
            "MSH-9", code, "a merge is an ADT^A40 message", UNSUPPORTED_MESSAGE_TYPE
        )
    if trigger != "A40":
        raise HL7ParseError(
            "MSH-9",
            f"{code}^{trigger}",
            "only A40 (merge patient identifier list) is accepted",
            UNSUPPORTED_EVENT_CODE,
        )
    pids = segments(msg, "PID")
    mrgs = segments(msg, "MRG")
    if not pids:
        raise HL7ParseError("PID", "", "PID segment is required", SEGMENT_SEQUENCE_ERROR)
    if not mrgs:
        raise HL7ParseError("MRG", "", "MRG segment is required", SEGMENT_SEQUENCE_ERROR)
    if len(pids) != 1 or len(mrgs) != 1:
        raise HL7ParseError(
            "PID",
            f"{len(pids)} PID / {len(mrgs)} MRG",
            "one merge per message: a single PID/MRG pair",
            SEGMENT_SEQUENCE_ERROR,
        )
    surviving = field_text(msg, pids[0], 3, 1)
    prior = field_text(msg, mrgs[0], 1, 1)
    if not surviving:
        raise HL7ParseError(
            "PID-3", "", "surviving patient identifier is required", REQUIRED_FIELD_MISSING
        )
    if not prior:
        raise HL7ParseError(
            "MRG-1", "", "prior patient identifier is required", REQUIRED_FIELD_MISSING
        )
    if prior == surviving:
        raise HL7ParseError("MRG-1", prior, "prior identifier must differ from PID-3")
    event_time = None
    evns = segments(msg, "EVN")
    if evns:
        for number in (6, 2):
            text = field_text(msg, evns[0], number, 1)
            if text:
                event_time = parse_dtm(text, f"EVN-{number}")
                break
    return MergeRequest(surviving, prior, control_id(msg), event_time)
