"""HL7 v2 primitive values read strictly: NM numbers and DTM times (v2.6 chapter 2A)."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, timezone

from openinfusion.interop.hl7.errors import HL7ParseError

_NM = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")
_DTM = re.compile(
    r"(?P<y>[0-9]{4})(?:(?P<mo>[0-9]{2})(?:(?P<d>[0-9]{2})(?:(?P<h>[0-9]{2})(?:(?P<mi>[0-9]{2})"
    r"(?:(?P<s>[0-9]{2})(?:\.(?P<f>[0-9]{1,4}))?)?)?)?)?)?(?P<tz>[+-][0-9]{4})?\Z"
)


def parse_nm(text: str, field: str, *, negative: bool = False) -> float:
    """An NM value (optional sign, digits, optional decimal point; no exponent)."""
    value = text.strip()
    if not _NM.match(value):
        raise HL7ParseError(field, text, "must be a plain decimal number (HL7 NM), e.g. 12.5")
    number = float(value)
    if not math.isfinite(number):
        raise HL7ParseError(field, text, "must be a finite number")
    if number < 0 and not negative:
        raise HL7ParseError(field, text, "must not be negative")
    return number + 0.0  # -0.0 -> 0.0


def parse_dtm(text: str, field: str) -> datetime:
    """A DTM to at least the day, as an aware UTC datetime.

    A value without a UTC offset is refused: the time zone of a device or an EHR cannot be
    guessed safely (RELIABILITY B-17).
    """
    m = _DTM.match(text.strip())
    if not m or m["mo"] is None or m["d"] is None:
        raise HL7ParseError(
            field, text, "must be an HL7 DTM YYYYMMDD[HHMM[SS[.S]]]+ZZZZ, at least to the day"
        )
    if m["tz"] is None and m["h"] is not None:
        raise HL7ParseError(field, text, "a time of day needs its UTC offset (+ZZZZ)")
    tz = m["tz"] or "+0000"
    sign = 1 if tz[0] == "+" else -1
    hours, minutes = int(tz[1:3]), int(tz[3:5])
    if hours > 14 or minutes > 59:
        raise HL7ParseError(field, text, "UTC offset out of range")
    offset = timezone(sign * timedelta(hours=hours, minutes=minutes))
    fraction = (m["f"] or "").ljust(6, "0")
    try:
        moment = datetime(
            int(m["y"]),
            int(m["mo"]),
            int(m["d"]),
            int(m["h"] or 0),
            int(m["mi"] or 0),
            int(m["s"] or 0),
            int(fraction),
            tzinfo=offset,
        ).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise HL7ParseError(field, text, f"not a real date/time ({exc})") from None
    return moment


def parse_date(text: str, field: str) -> date:
    """The calendar date a DT or DTM names, as written (a birth date: no zone shift).

    A time part, if present, must be well formed but needs no UTC offset: the day of
    birth does not depend on it.
    """
    m = _DTM.match(text.strip())
    if not m or m["mo"] is None or m["d"] is None:
        raise HL7ParseError(field, text, "must be an HL7 date YYYYMMDD[HHMM[SS]][+ZZZZ]")
    try:
        return date(int(m["y"]), int(m["mo"]), int(m["d"]))
    except ValueError as exc:
        raise HL7ParseError(field, text, f"not a real date ({exc})") from None
