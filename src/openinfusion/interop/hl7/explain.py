"""A human reading of an HL7 v2 message, for hospital interface engineers.

Each segment is named, each populated field named (HL7 v2.6 field names), escape
sequences decoded, and the IEEE 11073 codes of OBX-3/OBX-6/OBX-5 translated with
:mod:`openinfusion.interop.hl7.nomenclature`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openinfusion.interop.hl7 import nomenclature as mdc
from openinfusion.interop.hl7.errors import HL7ParseError
from openinfusion.interop.hl7.fieldnames import SEGMENT_NAMES, field_name
from openinfusion.interop.hl7.parse import Encoding, charset, encoding_of, raw_field, unescape


@dataclass(frozen=True, slots=True)
class ExplainedField:
    """One populated field: where it is, its name, what was sent, and what it says."""

    segment: str  # segment ID, e.g. "OBX"
    segment_index: int  # 1-based position of the segment in the message
    occurrence: int  # 1-based count of this segment ID so far (OBX 3 = third OBX)
    number: int  # field number, e.g. 3 for OBX-3
    name: str  # HL7 field name ("" when not tabulated)
    raw: str  # as sent, escapes intact
    text: str  # escapes decoded, components joined by " ^ "
    meaning: str  # nomenclature reading of MDC codes, or ""

    @property
    def location(self) -> str:
        """``OBX-3`` style name of the field."""
        return f"{self.segment}-{self.number}"


def _decode(raw: str, enc: Encoding, codec: str) -> str:
    parts = []
    for rep in raw.split(enc.repetition):
        comps = []
        for comp_text in rep.split(enc.component):
            subs = comp_text.split(enc.subcomponent)
            try:
                comps.append(" & ".join(unescape(s, enc, codec=codec) for s in subs))
            except HL7ParseError:
                comps.append(comp_text)
        parts.append(" ^ ".join(comps))
    return " ~ ".join(parts)


def _meaning(seg_id: str, number: int, raw: str, enc: Encoding) -> str:
    if seg_id not in ("OBX", "OBR") or number not in (3, 4, 5, 6):
        return ""
    readings = []
    for rep in raw.split(enc.repetition):
        comps = rep.split(enc.component)
        for first in range(0, len(comps), 3):
            code = comps[first]
            refid = comps[first + 1] if first + 1 < len(comps) else ""
            system = comps[first + 2] if first + 2 < len(comps) else ""
            if system != "MDC" and not (
                (code.isascii() and code.isdigit()) and refid.startswith("MDC")
            ):
                continue
            term = mdc.lookup(code, refid)
            if term is not None:
                readings.append(f"{term.refid} ({term.code}): {term.label}")
            elif refid:
                readings.append(f"{refid} ({code}): not in this system's nomenclature table")
    return "; ".join(readings)


def explain(msg: Any) -> list[ExplainedField]:
    """Every populated field of a parsed message, named and decoded, in message order."""
    out: list[ExplainedField] = []
    seen: dict[str, int] = {}
    enc = encoding_of(msg)
    codec = charset(msg)
    for index, seg in enumerate(msg, start=1):
        seg_id = str(seg[0])
        seen[seg_id] = seen.get(seg_id, 0) + 1
        for number in range(1, len(seg)):
            raw = raw_field(seg, number)
            if not raw:
                continue
            text = raw if seg_id == "MSH" and number <= 2 else _decode(raw, enc, codec)
            out.append(
                ExplainedField(
                    segment=seg_id,
                    segment_index=index,
                    occurrence=seen[seg_id],
                    number=number,
                    name=field_name(seg_id, number),
                    raw=raw,
                    text=text,
                    meaning=_meaning(seg_id, number, raw, enc),
                )
            )
    return out


def render_text(msg: Any) -> str:
    """:func:`explain` as plain text: one heading per segment, one line per field."""
    lines: list[str] = []
    current = 0
    for item in explain(msg):
        if item.segment_index != current:
            current = item.segment_index
            title = SEGMENT_NAMES.get(item.segment, "segment not tabulated")
            lines.append(f"{item.segment} {item.occurrence}  {title}")
        name = item.name or "(field name not tabulated)"
        line = f"  {item.location:<7} {name:<36} {item.text}"
        if item.meaning:
            line += f"  = {item.meaning}"
        lines.append(line)
    return "\n".join(lines) + "\n"
