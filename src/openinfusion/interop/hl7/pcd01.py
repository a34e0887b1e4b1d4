"""IHE PCD-01 Communicate PCD Data: one pump channel's state as ORU^R01^ORU_R01 (v2.6).

The observation tree follows the ISO/IEEE 11073-10101b infusion pump model as the IPEC
supplement's sample lays it out (IPEC Rev 1.5 X.1.2.2), with OBX-4 dotted sub-IDs
``<MDS>.<VMD>.<channel>.<metric>`` (IHE PCD TF-2 B.8.2): the pump is MDS 1, the pump
channel ``n`` is VMD ``n``, under it the delivery-information channel (1) and the primary
source channel (2). Device rows have OBX-11 ``X``; metrics ``R``. OBX-17 says whether a
value was measured by the pump (AMEAS) or set by a clinician (MSET) (TF-2 B.8, OBX-17).
Every row takes its time from OBR-7: OBX-14 is left empty, as TF-2 B.8 asks for values
sampled together (it marks an episodic observation when filled).

| OBX-4       | OBX-3 (MDC)                          | value                          |
| ----------- | ------------------------------------ | ------------------------------ |
| 1.0.0.0     | pump MDS (LVP / syringe / generic)   | OBX-18: serial, EUI-64         |
| 1.n.0.0     | pump VMD                             | channel n                      |
| 1.n.1.0     | MDC_DEV_PUMP_DELIVERY_INFO           |                                |
| 1.n.1.1     | MDC_PUMP_INFUSING_STATUS (CWE)       | pump-status-(not-)infusing     |
| 1.n.1.2     | MDC_FLOW_FLUID_PUMP_CURRENT (mL/h)   | rate when running, else 0      |
| 1.n.2.0     | MDC_DEV_PUMP_INFUSATE_SOURCE_PRIMARY |                                |
| 1.n.2.1     | MDC_DEV_PUMP_CURRENT_DELIVERY_STATUS | delivering / not-delivering;   |
|             |                                      | CWE-9 carries the exact state  |
| 1.n.2.2     | MDC_DRUG_NAME_LABEL (ST)             | drug                           |
| 1.n.2.3     | MDC_FLOW_FLUID_PUMP (mL/h)           | programmed rate                |
| 1.n.2.4     | MDC_RATE_DOSE (dose unit)            | dose rate                      |
| 1.n.2.5     | MDC_VOL_FLUID_DELIV_TOTAL (mL)       | volume infused                 |
| 1.n.2.6     | MDC_VOL_FLUID_TBI_REMAIN (mL)        | VTBI remaining                 |
| 1.n.2.7     | MDC_TIME_PD_REMAIN (min)             | time remaining                 |

Rows whose value the pump did not report are left out (never sent as zero).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from openinfusion.interop.hl7 import _build as b
from openinfusion.interop.hl7 import nomenclature as mdc
from openinfusion.interop.hl7._patient import equipment_id, pid_segment, pv1_segment, read_patient
from openinfusion.interop.hl7.datatypes import parse_dtm, parse_nm
from openinfusion.interop.hl7.errors import (
    REQUIRED_FIELD_MISSING,
    UNSUPPORTED_MESSAGE_TYPE,
    HL7ParseError,
)
from openinfusion.interop.hl7.parse import field_text, message_type, segments
from openinfusion.interop.records import ChannelObservation, PatientRef

# IHE PCD TF-2 B.1 (MSH-21) / HOSPITAL_REFERENCE.md 4.1: the PCD-01 message profile.
PCD01_PROFILE: Final = ("IHE_PCD_001", "IHE PCD", "1.3.6.1.4.1.19376.1.6.1.1.1", "ISO")
AMEAS: Final = ("AMEAS", "auto-measurement", "MDC")
MSET: Final = ("MSET", "manual-setting", "MDC")
_RUNNING_STATES: Final = frozenset({"running", "infusing", "bolus", "kvo"})

# metric index under the source channel (1.n.2.<index>)
_SOURCE_METRICS: Final = {
    "drug": 2,
    "rate_ml_h": 3,
    "dose": 4,
    "volume_infused_ml": 5,
    "vtbi_remaining_ml": 6,
    "time_remaining_min": 7,
}


@dataclass(frozen=True, slots=True)
class ChannelReport:
    """What an ORU^R01 built here says about one pump channel (read back for checks)."""

    pump_serial: str
    channel: int
    observed_at: datetime
    infusing: bool
    state: str
    drug: str | None
    dose: float | None
    dose_unit_ucum: str | None
    rate_ml_h: float | None
    volume_infused_ml: float | None
    vtbi_remaining_ml: float | None
    time_remaining_min: float | None
    patient: PatientRef | None
    placer_order_id: str | None


def _checked(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} {value}: must be a finite number >= 0 to be reported")
    return value


def _obx(
    set_id: int,
    value_type: str,
    term: mdc.Term,
    sub_id: str,
    value: b.FieldValue,
    *,
    unit: mdc.Unit | None = None,
    status: str = "R",
    when: str | None = None,
    method: tuple[str, str, str] | None = None,
    equipment: tuple[str, str, str, str] | None = None,
) -> str:
    return b.segment(
        "OBX",
        str(set_id),  # OBX-1
        value_type or None,  # OBX-2
        b.comp(*term.cwe()),  # OBX-3
        sub_id,  # OBX-4
        value,  # OBX-5
        b.comp(*unit.cwe()) if unit else None,  # OBX-6
        None,  # OBX-7
        None,  # OBX-8
        None,  # OBX-9
        None,  # OBX-10
        status,  # OBX-11
        None,  # OBX-12
        None,  # OBX-13
        when,  # OBX-14
        None,  # OBX-15
        None,  # OBX-16
        b.comp(*method) if method else None,  # OBX-17
        b.comp(*equipment) if equipment else None,  # OBX-18
    )


def build_oru_r01(
    obs: ChannelObservation,
    *,
    control_id: str,
    now: datetime,
    sending_app: str = "OPENINFUSION",
    receiving_app: str = "",
    receiving_facility: str = "",
) -> str:
    """PCD-01 ORU^R01 for one channel observation (see the module table for the rows)."""
    if obs.channel < 1:
        raise ValueError(f"channel {obs.channel}: channels are numbered from 1")
    if not obs.pump_serial:
        raise ValueError("pump_serial '': required for OBX-18")
    rate = _checked("rate_ml_h", obs.rate_ml_h)
    dose = _checked("dose", obs.dose)
    volume = _checked("volume_infused_ml", obs.volume_infused_ml)
    remaining = _checked("vtbi_remaining_ml", obs.vtbi_remaining_ml)
    minutes = _checked("time_remaining_min", obs.time_remaining_min)
    dose_unit = None
    if dose is not None:
        if not obs.dose_unit:
            raise ValueError(f"dose_unit {obs.dose_unit!r}: required when a dose is reported")
        dose_unit = mdc.dose_unit(obs.dose_unit)
    mds, vmd = mdc.DEVICE_TERMS.get(obs.pump_kind, mdc.DEFAULT_DEVICE_TERMS)
    when = b.ts(obs.observed_at)
    n = obs.channel
    infusing = obs.state in _RUNNING_STATES
    lines = [
        b.msh(
            sending_app=sending_app,
            sending_facility="",
            receiving_app=receiving_app,
            receiving_facility=receiving_facility,
            now=now,
            message_type=("ORU", "R01", "ORU_R01"),
            control_id=control_id,
            accept_ack="AL",
            application_ack="NE",
            profile=PCD01_PROFILE,
        )
    ]
    if obs.patient is not None:
        lines += [pid_segment(obs.patient), pv1_segment()]
    filler = f"{obs.pump_serial}-{n}-{obs.pump_seq if obs.pump_seq is not None else when}"
    lines.append(
        b.segment(
            "OBR",
            "1",  # OBR-1
            b.comp(obs.placer_order_id) if obs.placer_order_id else None,  # OBR-2
            b.comp(filler, sending_app),  # OBR-3 filler order number: unique per report
            b.comp(*mds.cwe()),  # OBR-4 the observation set: the pump
            None,
            None,
            when,  # OBR-7 observation time
        )
    )
    rows: list[tuple[str, mdc.Term, str, b.FieldValue, dict[str, Any]]] = [
        (
            "",
            mds,
            "1.0.0.0",
            None,
            {"status": "X", "equipment": equipment_id(obs.pump_serial, obs.pump_model)},
        ),
        ("", vmd, f"1.{n}.0.0", None, {"status": "X"}),
        ("", mdc.DELIVERY_INFO, f"1.{n}.1.0", None, {"status": "X"}),
        (
            "CWE",
            mdc.INFUSING_STATUS,
            f"1.{n}.1.1",
            b.comp(None, "pump-status-infusing" if infusing else "pump-status-not-infusing"),
            {"method": AMEAS},
        ),
    ]
    if rate is not None:
        rows.append(
            (
                "NM",
                mdc.FLOW_CURRENT,
                f"1.{n}.1.2",
                b.number(rate if infusing else 0.0),
                {"unit": mdc.ML_PER_H, "method": AMEAS},
            )
        )
    delivery = (
        "pump-delivery-status-delivering" if infusing else "pump-delivery-status-not-delivering"
    )
    rows += [
        ("", mdc.SOURCE_PRIMARY, f"1.{n}.2.0", None, {"status": "X"}),
        (
            "CWE",
            mdc.DELIVERY_STATUS,
            f"1.{n}.2.1",
            b.comp(None, delivery, None, None, None, None, None, None, obs.state),
            {"method": AMEAS},
        ),
    ]
    metric = _SOURCE_METRICS
    if obs.drug:
        rows.append(("ST", mdc.DRUG_NAME, f"1.{n}.2.{metric['drug']}", obs.drug, {"method": MSET}))
    if rate is not None:
        rows.append(
            (
                "NM",
                mdc.FLOW_RATE,
                f"1.{n}.2.{metric['rate_ml_h']}",
                b.number(rate),
                {"unit": mdc.ML_PER_H, "method": MSET},
            )
        )
    if dose is not None and dose_unit is not None:
        rows.append(
            (
                "NM",
                mdc.DOSE_RATE,
                f"1.{n}.2.{metric['dose']}",
                b.number(dose),
                {"unit": dose_unit, "method": MSET},
            )
        )
    if volume is not None:
        rows.append(
            (
                "NM",
                mdc.VOLUME_DELIVERED,
                f"1.{n}.2.{metric['volume_infused_ml']}",
                b.number(volume),
                {"unit": mdc.ML, "method": AMEAS},
            )
        )
    if remaining is not None:
        rows.append(
            (
                "NM",
                mdc.VTBI_REMAINING,
                f"1.{n}.2.{metric['vtbi_remaining_ml']}",
                b.number(remaining),
                {"unit": mdc.ML, "method": AMEAS},
            )
        )
    if minutes is not None:
        rows.append(
            (
                "NM",
                mdc.TIME_REMAINING,
                f"1.{n}.2.{metric['time_remaining_min']}",
                b.number(minutes),
                {"unit": mdc.MIN, "method": AMEAS},
            )
        )
    for set_id, (value_type, term, sub_id, value, extra) in enumerate(rows, start=1):
        lines.append(_obx(set_id, value_type, term, sub_id, value, **extra))
    return b.message(lines)


_SUB_ID = re.compile(r"1\.([0-9]{1,6})\.([0-9]{1,6})\.([0-9]{1,6})\Z")


def read_oru_r01(msg: Any) -> ChannelReport:
    """Read back the facts of a PCD-01 ORU^R01 of one pump channel built by this module."""
    code, trigger, _ = message_type(msg)
    if (code, trigger) != ("ORU", "R01"):
        raise HL7ParseError(
            "MSH-9", f"{code}^{trigger}", "expected ORU^R01", UNSUPPORTED_MESSAGE_TYPE
        )
    obr = segments(msg, "OBR")
    if not obr:
        raise HL7ParseError("OBR", "", "OBR segment is required", REQUIRED_FIELD_MISSING)
    observed_at = parse_dtm(field_text(msg, obr[0], 7), "OBR-7")
    values: dict[int, tuple[str, str, Any]] = {}
    serial = ""
    channel = 0
    for obx in segments(msg, "OBX"):
        sub_id = field_text(msg, obx, 4)
        code_text = field_text(msg, obx, 3, 1)
        if sub_id == "1.0.0.0":
            serial = field_text(msg, obx, 18, 1)
            continue
        m = _SUB_ID.match(sub_id)
        if not m or not (code_text.isascii() and code_text.isdigit()):
            continue
        channel = int(m[1])
        values[int(code_text)] = (
            field_text(msg, obx, 5, 2) or field_text(msg, obx, 5, 1),
            field_text(msg, obx, 6, 4) or field_text(msg, obx, 6, 1),
            obx,
        )
    if not serial:
        raise HL7ParseError("OBX-18", "", "pump MDS row needs its equipment identifier", 101)

    def number(term: mdc.Term) -> float | None:
        item = values.get(term.code)
        return None if item is None else parse_nm(item[0], f"OBX-5 ({term.refid})")

    state_row = values.get(mdc.DELIVERY_STATUS.code)
    state = field_text(msg, state_row[2], 5, 9) if state_row else ""
    dose_row = values.get(mdc.DOSE_RATE.code)
    drug_row = values.get(mdc.DRUG_NAME.code)
    placer = field_text(msg, obr[0], 2, 1)
    infusing_row = values.get(mdc.INFUSING_STATUS.code)
    return ChannelReport(
        pump_serial=serial,
        channel=channel,
        observed_at=observed_at,
        infusing=bool(infusing_row and infusing_row[0] == "pump-status-infusing"),
        state=state,
        drug=drug_row[0] if drug_row else None,
        dose=number(mdc.DOSE_RATE),
        dose_unit_ucum=field_text(msg, dose_row[2], 6, 4) if dose_row else None,
        rate_ml_h=number(mdc.FLOW_RATE),
        volume_infused_ml=number(mdc.VOLUME_DELIVERED),
        vtbi_remaining_ml=number(mdc.VTBI_REMAINING),
        time_remaining_min=number(mdc.TIME_REMAINING),
        patient=read_patient(msg, required=False),
        placer_order_id=placer or None,
    )
