"""PID and PV1: the patient a pump channel infuses, written and read (IHE PCD TF-2 B.5)."""

from __future__ import annotations

import hashlib
from typing import Any

from openinfusion.interop.hl7 import _build as b
from openinfusion.interop.hl7.datatypes import parse_date
from openinfusion.interop.hl7.errors import REQUIRED_FIELD_MISSING, HL7ParseError
from openinfusion.interop.hl7.parse import field_text, segments
from openinfusion.interop.records import PatientRef

# HL7 table 0001 (administrative sex) <-> PatientRef.sex
SEX_CODES = {"female": "F", "male": "M", "other": "O", "unknown": "U"}
SEX_NAMES = {v: k for k, v in SEX_CODES.items()}


def pid_segment(patient: PatientRef) -> str:
    """PID-3 the MRN (identifier type MR), PID-5 legal name, PID-7 birth date, PID-8 sex."""
    if not patient.mrn:
        raise ValueError("patient.mrn '': required for PID-3")
    name: b.FieldValue = None
    if patient.family_name or patient.given_name:
        name = b.comp(patient.family_name, patient.given_name, None, None, None, None, "L")
    sex = SEX_CODES.get(patient.sex, "U") if patient.sex else None
    return b.segment(
        "PID",
        None,
        None,
        b.comp(patient.mrn, None, None, None, "MR"),  # PID-3
        None,
        name,  # PID-5
        None,
        patient.birth_date.strftime("%Y%m%d") if patient.birth_date else None,  # PID-7
        sex,  # PID-8
    )


def unknown_patient_pid() -> str:
    """PID with PID-31 identity unknown indicator ``Y`` (HL7 table 0136), for PCD-04,
    where PID is required even when the alert source knows no patient (TF-2 B.5.1)."""
    return b.segment("PID", *([None] * 30), "Y")


def pv1_segment() -> str:
    """PV1 with PV1-2 patient class U (unknown): the pump does not know the encounter."""
    return b.segment("PV1", None, "U")


def read_patient(msg: Any, *, required: bool = True) -> PatientRef | None:
    """The first PID as a PatientRef (PID-3 first identifier is the MRN)."""
    pids = segments(msg, "PID")
    if not pids:
        if required:
            raise HL7ParseError("PID", "", "PID segment is required", REQUIRED_FIELD_MISSING)
        return None
    pid = pids[0]
    mrn = field_text(msg, pid, 3, 1)
    if not mrn:
        raise HL7ParseError(
            "PID-3", "", "patient identifier (MRN) is required", REQUIRED_FIELD_MISSING
        )
    birth = field_text(msg, pid, 7, 1)
    sex_code = field_text(msg, pid, 8, 1)
    return PatientRef(
        mrn=mrn,
        family_name=field_text(msg, pid, 5, 1),
        given_name=field_text(msg, pid, 5, 2),
        birth_date=parse_date(birth, "PID-7") if birth else None,
        sex=SEX_NAMES.get(sex_code, "unknown") if sex_code else "",
    )


def equipment_id(serial: str, model: str) -> tuple[str, str, str, str]:
    """OBX-18 equipment instance identifier (EI) of a pump.

    IHE PCD TF-2 B.8 (OBX-18): a device without a registered EUI-64 sends its serial in
    EI-1 and its model in EI-2; the universal ID (EI-3) carries an EUI-64. Ours is a
    locally administered EUI-64 derived from the serial (first 8 bytes of its SHA-256,
    IEEE 802 U/L bit set, I/G bit clear), stable for a pump, with EI-4 ``EUI-64``.
    """
    digest = bytearray(hashlib.sha256(serial.encode("utf-8")).digest()[:8])
    digest[0] = (digest[0] | 0x02) & 0xFE
    return (serial, model, digest.hex().upper(), "EUI-64")
