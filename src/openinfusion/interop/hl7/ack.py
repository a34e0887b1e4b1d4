"""Acknowledgements: the original-mode ACK (MSH/MSA/ERR, HL7 v2.6 section 2.9.2).

An ERR segment is written for every issue: ERR-2 the error location (segment, sequence,
field), ERR-3 the table 0357 code with its text, ERR-4 the severity (table 0516: E) and
ERR-8 the user message (the field, the value and the rule).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from openinfusion.interop.hl7 import _build as b
from openinfusion.interop.hl7.errors import ERROR_TEXT, FieldIssue, HL7ParseError, issue_code
from openinfusion.interop.hl7.parse import field_text, hd

AckCode = Literal["AA", "AE", "AR"]
_LOCATION = re.compile(r"([A-Z][A-Z0-9]{2})(?:-([0-9]+)(?:\.([0-9]+))?)?\Z")


def err_segment(issue: FieldIssue) -> str:
    """One ERR segment for an issue (``field`` like ``RXG-4`` or ``RXG-4.2``)."""
    code = issue_code(issue)
    where = _LOCATION.match(issue.field)
    location: b.FieldValue = None
    if where:
        seg_id, number, comp_no = where.groups()
        location = b.comp(seg_id, "1", number or None, "1" if number else None, comp_no)
    text = f"{issue.field} {str(issue.value)[:80]!r}: {issue.rule}"
    return b.segment(
        "ERR",
        None,  # ERR-1 (not used since v2.5)
        location,  # ERR-2 error location (ERL)
        b.comp(str(code), ERROR_TEXT.get(code, "Error"), "HL70357"),  # ERR-3
        "E",  # ERR-4 severity (table 0516)
        None,
        None,
        None,
        text[:250],  # ERR-8 user message
    )


def _reply_header(
    msg: Any,
    structure: tuple[str, str, str],
    *,
    now: datetime,
    control_id: str,
    sending_app: str,
    sending_facility: str,
) -> str:
    msh = msg[0]
    return b.msh(
        sending_app=sending_app,
        sending_facility=sending_facility,
        receiving_app=hd(msg, msh, 3),
        receiving_facility=hd(msg, msh, 4),
        now=now,
        message_type=structure,
        control_id=control_id,
        processing_id=field_text(msg, msh, 11) or "P",
    )


def msa_segment(code: str, original_control_id: str) -> str:
    """MSA-1 acknowledgement code, MSA-2 the original message control ID."""
    return b.segment("MSA", code, original_control_id)


def build_ack(
    msg: Any,
    code: AckCode,
    *,
    errors: Sequence[FieldIssue] = (),
    now: datetime,
    control_id: str,
    sending_app: str = "OPENINFUSION",
    sending_facility: str = "",
) -> str:
    """ACK^<trigger>^ACK (v2.6) for a parsed message: AA, AE or AR, one ERR per issue."""
    if code not in ("AA", "AE", "AR"):
        raise ValueError(f"MSA-1 {code!r}: must be AA, AE or AR")
    trigger = field_text(msg, msg[0], 9, 2)
    lines = [
        _reply_header(
            msg,
            ("ACK", trigger, "ACK"),
            now=now,
            control_id=control_id,
            sending_app=sending_app,
            sending_facility=sending_facility,
        ),
        msa_segment(code, field_text(msg, msg[0], 10)),
        *(err_segment(e) for e in errors),
    ]
    return b.message(lines)


def _best_effort_header(raw: bytes) -> tuple[str, str]:
    """(MSH-10, MSH-9 trigger) read from an unparseable input, or ("", "")."""
    text = raw.decode("latin-1").lstrip("\r\n")
    if not text.startswith("MSH") or len(text) < 5:
        return "", ""
    fs = text[3]
    line = re.split("[\r\n]", text, maxsplit=1)[0]
    fields = line.split(fs)

    def clean(value: str) -> str:
        kept = "".join(c for c in value if c.isalnum() or c in "-_.:")
        return kept[:199]

    cid = clean(fields[9]) if len(fields) > 9 else ""
    trigger = ""
    if len(fields) > 8 and len(text) > 4:
        trigger = clean(fields[8].split(text[4])[1]) if text[4] in fields[8] else ""
    return cid, trigger[:3]


def build_reject_for_raw(
    raw: bytes,
    error: HL7ParseError,
    *,
    now: datetime,
    control_id: str,
    sending_app: str = "OPENINFUSION",
    sending_facility: str = "",
) -> str:
    """ACK with AR for input whose MSH could not be read.

    MSA-2 carries MSH-10 when it can be found in the first line (letters, digits and
    ``-_.:`` only, so nothing of the bad input is echoed raw); otherwise it is empty.
    """
    original_id, trigger = _best_effort_header(raw)
    lines = [
        b.msh(
            sending_app=sending_app,
            sending_facility=sending_facility,
            receiving_app="",
            receiving_facility="",
            now=now,
            message_type=("ACK", trigger, "ACK"),
            control_id=control_id,
        ),
        msa_segment("AR", original_id),
        err_segment(error),
    ]
    return b.message(lines)
