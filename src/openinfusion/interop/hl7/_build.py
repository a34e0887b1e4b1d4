"""Writing HL7 v2 segments with the default delimiters (``|^~\\&``), escaping all data."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from openinfusion.interop.hl7.parse import escape


class Raw(str):
    """A field value already written in HL7 syntax (escaped, delimiters meant): kept as is."""


Part = str | None
Composite = tuple[Part, ...]
FieldValue = str | None | Composite | list[str | Composite]


def ts(moment: datetime) -> str:
    """An HL7 DTM in UTC to the second, with its offset: ``YYYYMMDDHHMMSS+0000``."""
    if moment.tzinfo is None:
        raise ValueError(f"time {moment.isoformat()}: must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S") + "+0000"


def number(value: float) -> str:
    """An HL7 NM: the shortest exact decimal, no exponent, no trailing zeros (``12.5``)."""
    if not math.isfinite(value):
        raise ValueError(f"number {value}: NaN and infinity cannot be sent in an NM field")
    text = format(Decimal(repr(float(value))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def comp(*parts: Part) -> tuple[Part, ...]:
    """A composite value (components, each escaped when written)."""
    return parts


def _field(value: FieldValue) -> str:
    if value is None:
        return ""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, list):  # repetitions
        return "~".join(_field(v) for v in value)
    items = [escape(p) if p else "" for p in value]
    while items and not items[-1]:
        items.pop()
    return "^".join(items)


def segment(seg_id: str, *fields: FieldValue) -> str:
    """One segment: its ID, then fields 1..n (trailing empty fields dropped)."""
    items = [_field(f) for f in fields]
    while items and not items[-1]:
        items.pop()
    return "|".join([seg_id, *items])


def _hd(value: str | Composite) -> FieldValue:
    """An HD field: a namespace ID alone, or (namespace, universal ID, universal ID type)."""
    if isinstance(value, tuple):
        return value if any(value) else None
    return comp(value) if value else None


def msh(
    *,
    sending_app: str,
    sending_facility: str,
    receiving_app: str | Composite,
    receiving_facility: str | Composite,
    now: datetime,
    message_type: tuple[str, str, str],
    control_id: str,
    processing_id: str = "P",
    accept_ack: str = "",
    application_ack: str = "",
    profile: tuple[str, str, str, str] | None = None,
) -> str:
    """MSH for HL7 v2.6 with UTF-8 (MSH-18) and an optional MSH-21 profile identifier."""
    fields: list[FieldValue] = [
        comp(sending_app) if sending_app else None,  # MSH-3
        comp(sending_facility) if sending_facility else None,  # MSH-4
        _hd(receiving_app),  # MSH-5
        _hd(receiving_facility),  # MSH-6
        ts(now),  # MSH-7
        None,  # MSH-8
        comp(*message_type),  # MSH-9
        control_id,  # MSH-10
        processing_id,  # MSH-11
        "2.6",  # MSH-12
        None,  # MSH-13
        None,  # MSH-14
        accept_ack or None,  # MSH-15
        application_ack or None,  # MSH-16
        None,  # MSH-17
        "UNICODE UTF-8",  # MSH-18
        None,  # MSH-19
        None,  # MSH-20
        comp(*profile) if profile else None,  # MSH-21
    ]
    body = [_field(f) for f in fields]
    while body and not body[-1]:
        body.pop()
    return "MSH|^~\\&|" + "|".join(body)


def message(lines: Iterable[str]) -> str:
    """Segments joined and terminated by CR, the HL7 segment terminator."""
    return "".join(line + "\r" for line in lines)
