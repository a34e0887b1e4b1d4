"""IHE PCD-03 Communicate Infusion Order (PIV): RGV^O15 in, RRG^O16 out.

Field mapping (IHE PCD TF-2 Rev 8 section 3.3.4.4; example E.2.3) to
:class:`~openinfusion.interop.records.OrderRequest`:

| OrderRequest          | HL7                                                            |
| --------------------- | -------------------------------------------------------------- |
| placer_order_id       | ORC-2.1 placer order number (required)                         |
| patient_mrn           | PID-3.1 first identifier (required)                            |
| pump_serial           | OBX-18 of the pump OBX (OBX-3 an MDC_DEV_PUMP_INFUS_* term):   |
|                       | EI-1, else EI-3 (universal ID), as in the TF example; the pump |
|                       | OBX is required ("must always be present", TF-2 3.3.4.4.9)     |
| channel               | the pump OBX's OBX-4 ``1.<channel>...`` when sent, else None   |
| drug_code / drug_name | RXG-4.1 / RXG-4.2 give code (one of them required)             |
| concentration         | RXG-17 + RXG-18 strength / RXG-23 + RXG-24 volume, e.g.        |
|                       | ``400 mg/250 mL``; RXG-17/18 alone when no volume is sent      |
| dose                  | RXG-15 + RXG-16 when RXG-16 is not a volume rate, e.g.         |
|                       | ``10 mcg/kg/min``; or the OBX MDC_RATE_DOSE row                |
| rate_ml_h             | RXG-15 when RXG-16 is mL/h; or the OBX MDC_FLOW_FLUID_PUMP row |
| vtbi_ml               | RXG-5 with RXG-7 mL; or the OBX MDC_VOL_FLUID_TBI row          |
| patient_weight_kg     | OBX MDC_ATTR_PT_WEIGHT (68063) in kg or g, the two units the   |
|                       | TF allows (lb and anything else refused)                       |
| ordered_by            | ORC-12.1 ordering provider                                     |
| message_control_id... | MSH-10, MSH-3.1, MSH-4.1                                       |

Units are read from the UCUM triple of a CWE (``ug`` written back as ``mcg`` and
``[iU]`` as ``units``, the way the drug library spells them) or from a known MDC_DIM
code. When the RXG and an OBX both give a value they must agree, else the order is
refused naming the OBX field. One order (ORC/RXG) per message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from openinfusion.interop.hl7 import _build as b
from openinfusion.interop.hl7 import nomenclature as mdc
from openinfusion.interop.hl7._patient import read_patient
from openinfusion.interop.hl7.ack import err_segment, msa_segment
from openinfusion.interop.hl7.datatypes import parse_nm
from openinfusion.interop.hl7.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    FieldIssue,
    HL7ParseError,
    issue_code,
)
from openinfusion.interop.hl7.parse import (
    DEFAULT_ENCODING,
    Encoding,
    charset,
    encoding_of,
    escape,
    field_text,
    hd,
    message_type,
    segments,
    unescape,
)
from openinfusion.interop.records import OrderRequest

# IHE PCD TF-2 Rev 8 3.3.4.4.1: MSH-21 of PCD-03 (PIV).
PCD03_PROFILE: Final = ("IHE_PCD_PIV_001", "IHE PCD", "1.3.6.1.4.1.19376.1.6.1.3.1", "ISO")

_ML_PER_H_NAMES: Final = frozenset({"mL/h", "ml/h", "mL/hr", "ml/hr"})
_ML_NAMES: Final = frozenset({"mL", "ml"})
_WEIGHT_UNITS: Final = {"kg": 1.0, "g": 1000.0}  # unit -> per kg
_BY_MDC_UNIT: Final = {
    mdc.DIM_ML.code: "mL",
    mdc.DIM_ML_PER_H.code: "mL/h",
    mdc.DIM_KG.code: "kg",
    mdc.DIM_MG.code: "mg",
    mdc.DIM_MCG.code: "mcg",
    mdc.DIM_G.code: "g",
    mdc.DIM_MG_PER_ML.code: "mg/mL",
    mdc.DIM_MIN.code: "min",
    **{u.mdc.code: pump for pump, u in mdc.DOSE_UNITS.items() if u.mdc is not None},
}
_VOLUME_RATE = re.compile(r"(?i)[mu]?l/(?:min|h|hr|d|s)\Z")
_UNIT_TEXT = re.compile(r"[A-Za-z0-9\[\]/.%{}*_-]+\Z")


def _pump_unit(ucum: str) -> str:
    """UCUM text as the drug library writes it (ug -> mcg, [iU] -> units, meq -> mEq)."""
    text = ucum.replace("[iU]", "units").replace("[IU]", "units").replace("meq", "mEq")
    return re.sub(r"(?<![A-Za-z])ug", "mcg", text)


def _unit(msg: Any, seg: Any, number: int, name: str) -> str:
    """The unit a CWE unit field names: its UCUM triple and/or a known MDC_DIM code.

    When both triples name a unit they must agree (case aside: ``mL/h`` and ``ml/h``),
    otherwise the field is refused rather than one reading chosen.
    """
    found: list[str] = []
    for first in (1, 4):
        code = field_text(msg, seg, number, first)
        text = field_text(msg, seg, number, first + 1)
        system = field_text(msg, seg, number, first + 2).upper()
        if system == "UCUM":
            unit = code if code and not (code.isascii() and code.isdigit()) else text
            if not unit or not _UNIT_TEXT.match(unit):
                raise HL7ParseError(name, unit, "UCUM unit text expected (e.g. mL/h, ug/kg/min)")
            found.append(_pump_unit(unit))
        elif system == "MDC" and code.isascii() and code.isdigit() and int(code) in _BY_MDC_UNIT:
            found.append(_BY_MDC_UNIT[int(code)])
    if found:
        if len({u.lower() for u in found}) > 1:
            raise HL7ParseError(
                name, " / ".join(found), "the two units of this field disagree", DATA_TYPE_ERROR
            )
        return found[0]
    raw = field_text(msg, seg, number, 1)
    if not raw:
        return ""
    if not (raw.isascii() and raw.isdigit()) and _UNIT_TEXT.match(raw):
        return _pump_unit(raw)
    raise HL7ParseError(
        name, raw, "unit must be coded in UCUM (or a known MDC_DIM code)", DATA_TYPE_ERROR
    )


def _require_type(msg: Any) -> None:
    code, trigger, _ = message_type(msg)
    if code != "RGV":
        raise HL7ParseError(
            "MSH-9", code, "PCD-03 orders are RGV^O15 messages", UNSUPPORTED_MESSAGE_TYPE
        )
    if trigger != "O15":
        raise HL7ParseError(
            "MSH-9", f"{code}^{trigger}", "trigger must be O15", UNSUPPORTED_EVENT_CODE
        )


def _one(msg: Any, seg_id: str) -> Any:
    found = segments(msg, seg_id)
    if not found:
        raise HL7ParseError(seg_id, "", f"{seg_id} segment is required", SEGMENT_SEQUENCE_ERROR)
    if len(found) > 1:
        raise HL7ParseError(
            seg_id,
            f"{len(found)} segments",
            f"one order per message: a single {seg_id}",
            SEGMENT_SEQUENCE_ERROR,
        )
    return found[0]


def _nm(msg: Any, seg: Any, number: int) -> float | None:
    text = field_text(msg, seg, number, 1)
    return parse_nm(text, f"{seg[0]}-{number}") if text else None


def _text(value: float) -> str:
    return b.number(value)


def _agree(name: str, first: float | None, second: float | None) -> float | None:
    if (
        first is not None
        and second is not None
        and abs(first - second) > 1e-9 * max(1.0, abs(first))
    ):
        raise HL7ParseError(
            name, _text(second), f"disagrees with the RXG value {_text(first)}", DATA_TYPE_ERROR
        )
    return first if first is not None else second


def _is_pump(msg: Any, obx: Any) -> bool:
    refid = field_text(msg, obx, 3, 2)
    return refid.startswith("MDC_DEV_PUMP_INFUS") or field_text(msg, obx, 3, 1) in {
        str(t.code)
        for t in (
            mdc.PUMP_VMD,
            mdc.PUMP_MDS,
            mdc.LVP_VMD,
            mdc.LVP_MDS,
            mdc.SYRINGE_VMD,
            mdc.SYRINGE_MDS,
        )
    }


def parse_rgv_o15(msg: Any) -> OrderRequest:
    """Read a PCD-03 RGV^O15 into an OrderRequest (``source="hl7"``), judging nothing.

    Every missing or malformed field raises :class:`HL7ParseError` naming it.
    """
    _require_type(msg)
    patient = read_patient(msg, required=True)
    assert patient is not None
    orc = _one(msg, "ORC")
    rxg = _one(msg, "RXG")
    placer = field_text(msg, orc, 2, 1)
    if not placer:
        raise HL7ParseError("ORC-2", "", "placer order number is required", REQUIRED_FIELD_MISSING)
    drug_code = field_text(msg, rxg, 4, 1)
    drug_name = field_text(msg, rxg, 4, 2)
    if not drug_code and not drug_name:
        raise HL7ParseError(
            "RXG-4", "", "give code (drug identifier or name) is required", REQUIRED_FIELD_MISSING
        )

    vtbi = _nm(msg, rxg, 5)
    if vtbi is not None:
        unit = _unit(msg, rxg, 7, "RXG-7")
        if unit not in _ML_NAMES:
            raise HL7ParseError("RXG-7", unit, "give units of a volume to be infused must be mL")

    rate_ml_h: float | None = None
    dose: str | None = None
    rate_value = _nm(msg, rxg, 15)
    if rate_value is not None:
        unit = _unit(msg, rxg, 16, "RXG-16")
        if not unit:
            raise HL7ParseError(
                "RXG-16", "", "give rate units are required with RXG-15", REQUIRED_FIELD_MISSING
            )
        if unit in _ML_PER_H_NAMES:
            rate_ml_h = rate_value
        elif _VOLUME_RATE.match(unit):
            raise HL7ParseError(
                "RXG-16", unit, "a volume rate must be given in mL/h (not converted here)"
            )
        else:
            dose = f"{_text(rate_value)} {unit}"

    concentration: str | None = None
    strength = _nm(msg, rxg, 17)
    volume = _nm(msg, rxg, 23)
    if strength is not None:
        s_unit = _unit(msg, rxg, 18, "RXG-18")
        if not s_unit:
            raise HL7ParseError(
                "RXG-18", "", "strength units are required with RXG-17", REQUIRED_FIELD_MISSING
            )
        concentration = f"{_text(strength)} {s_unit}"
        if volume is not None:
            v_unit = _unit(msg, rxg, 24, "RXG-24")
            if v_unit not in _ML_NAMES:
                raise HL7ParseError("RXG-24", v_unit, "strength volume units must be mL")
            concentration += f"/{_text(volume)} mL"
    elif volume is not None:
        raise HL7ParseError(
            "RXG-17",
            "",
            "strength is required when a strength volume (RXG-23) is sent",
            REQUIRED_FIELD_MISSING,
        )

    pump_serial: str | None = None
    channel: int | None = None
    weight: float | None = None
    for obx in segments(msg, "OBX"):
        code = field_text(msg, obx, 3, 1)
        if _is_pump(msg, obx):
            if pump_serial is not None:
                raise HL7ParseError(
                    "OBX-3", code, "one target pump per order", SEGMENT_SEQUENCE_ERROR
                )
            pump_serial = field_text(msg, obx, 18, 1) or field_text(msg, obx, 18, 3)
            if not pump_serial:
                raise HL7ParseError(
                    "OBX-18",
                    "",
                    "the pump OBX needs its equipment instance identifier",
                    REQUIRED_FIELD_MISSING,
                )
            sub_id = field_text(msg, obx, 4)
            m = re.fullmatch(r"1\.([0-9]{1,6})(?:\.[0-9]{1,6})*", sub_id)
            if sub_id and m and int(m[1]) > 0:
                channel = int(m[1])
            elif sub_id and not m:
                raise HL7ParseError("OBX-4", sub_id, "sub-ID must be dotted numbers like 1.2.0.0")
            continue
        value_text = field_text(msg, obx, 5, 1)
        if code == str(mdc.PATIENT_WEIGHT.code):
            unit = _unit(msg, obx, 6, "OBX-6")
            if unit not in _WEIGHT_UNITS:
                raise HL7ParseError(
                    "OBX-6", unit, "patient weight must be sent in kg or g (TF-2 3.3.4.4.9)"
                )
            weight = parse_nm(value_text, "OBX-5") / _WEIGHT_UNITS[unit]
        elif code == str(mdc.VTBI.code):
            if _unit(msg, obx, 6, "OBX-6") not in _ML_NAMES:
                raise HL7ParseError("OBX-6", field_text(msg, obx, 6, 1), "VTBI must be in mL")
            vtbi = _agree("OBX-5", vtbi, parse_nm(value_text, "OBX-5"))
        elif code == str(mdc.FLOW_RATE.code):
            if _unit(msg, obx, 6, "OBX-6") not in _ML_PER_H_NAMES:
                raise HL7ParseError("OBX-6", field_text(msg, obx, 6, 1), "rate must be in mL/h")
            rate_ml_h = _agree("OBX-5", rate_ml_h, parse_nm(value_text, "OBX-5"))
        elif code == str(mdc.DOSE_RATE.code):
            unit = _unit(msg, obx, 6, "OBX-6")
            obx_dose = f"{_text(parse_nm(value_text, 'OBX-5'))} {unit}"
            if dose is not None and dose != obx_dose:
                raise HL7ParseError("OBX-5", obx_dose, f"disagrees with the RXG dose {dose}")
            dose = obx_dose

    if pump_serial is None:
        raise HL7ParseError(
            "OBX",
            "",
            "the order must name its pump: one OBX with OBX-3 69986^MDC_DEV_PUMP_INFUS_VMD^MDC "
            "and the pump in OBX-18 (IHE PCD TF-2 3.3.4.4.9)",
            SEGMENT_SEQUENCE_ERROR,
        )
    msh = msg[0]
    return OrderRequest(
        source="hl7",
        placer_order_id=placer,
        patient_mrn=patient.mrn,
        pump_serial=pump_serial,
        channel=channel,
        drug_code=drug_code or None,
        drug_name=drug_name or None,
        concentration=concentration,
        dose=dose,
        rate_ml_h=rate_ml_h,
        vtbi_ml=vtbi,
        patient_weight_kg=weight,
        ordered_by=field_text(msg, orc, 12, 1) or None,
        message_control_id=field_text(msg, msh, 10) or None,
        sending_application=field_text(msg, msh, 3, 1) or None,
        sending_facility=field_text(msg, msh, 4, 1) or None,
    )


def reencode_segment(segment: Any, source: Encoding, codec: str = "utf-8") -> str:
    """A segment of a parsed message rewritten with the default delimiters ``|^~\\&``.

    Every leaf value is unescaped with the sender's delimiters and escaped with ours, so
    an echoed segment means the same thing whatever delimiters the sender chose.
    """
    text = str(segment)
    if source == DEFAULT_ENCODING:
        return text
    fields = text.split(source.field)
    out = [fields[0]]
    for value in fields[1:]:
        reps = []
        for rep in value.split(source.repetition):
            comps = []
            for comp_text in rep.split(source.component):
                subs = [
                    escape(unescape(s, source, codec=codec), DEFAULT_ENCODING)
                    for s in comp_text.split(source.subcomponent)
                ]
                comps.append("&".join(subs))
            reps.append("^".join(comps))
        out.append("~".join(reps))
    return "|".join(out)


def build_rrg_o16(
    msg: Any,
    *,
    accepted: bool,
    errors: Sequence[FieldIssue] = (),
    now: datetime,
    control_id: str,
    sending_app: str = "OPENINFUSION",
    sending_facility: str = "",
) -> str:
    """RRG^O16 application acknowledgement of a PCD-03 order (TF-2 3.3.5, B.9.2).

    MSA-1 is AA when ``accepted``; otherwise AR when any issue is a message-level refusal
    (table 0357 code 200 and above, as the TF's "unable to match medication" example),
    else AE. One ERR per issue. The RESPONSE group carries what TF-2 table 3.3.5-1 allows
    (usage O): the order's PID and its ORC, ORC-1 ``OK`` (accepted) or ``UA`` (unable to
    accept), re-encoded with the default delimiters. RXG, RXR and TQ1 are usage X there
    and are not echoed.
    """
    if accepted:
        ack = "AA"
    elif any(issue_code(e) >= 200 for e in errors):
        ack = "AR"
    else:
        ack = "AE"
    if not accepted and not errors:
        raise ValueError("errors: a refused order must say why (at least one issue)")
    msh = msg[0]
    lines = [
        b.msh(
            sending_app=sending_app,
            sending_facility=sending_facility,
            receiving_app=hd(msg, msh, 3),
            receiving_facility=hd(msg, msh, 4),
            now=now,
            message_type=("RRG", "O16", "RRG_O16"),
            control_id=control_id,
            processing_id=field_text(msg, msh, 11) or "P",
            profile=PCD03_PROFILE,
        ),
        msa_segment(ack, field_text(msg, msh, 10)),
        *(err_segment(e) for e in errors),
    ]
    enc = encoding_of(msg)
    codec = charset(msg)
    pids = segments(msg, "PID")
    orcs = segments(msg, "ORC")
    if pids:
        lines.append(reencode_segment(pids[0], enc, codec))
    if orcs:
        orc = reencode_segment(orcs[0], enc, codec).split("|")
        while len(orc) < 2:
            orc.append("")
        orc[1] = "OK" if accepted else "UA"
        lines.append("|".join(orc))
    return b.message(lines)


__all__ = [
    "PCD03_PROFILE",
    "build_rrg_o16",
    "parse_rgv_o15",
    "reencode_segment",
]
