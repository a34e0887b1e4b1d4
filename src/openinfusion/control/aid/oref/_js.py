"""JavaScript number semantics the reference algorithm depends on, for exact parity.

The oref0 reference (npm ``oref0`` 0.7.1) runs on JavaScript doubles. Python floats are
the same IEEE-754 doubles, so the arithmetic matches when it is done in the same order;
what differs, and lives here, is rounding (``Math.round`` rounds halves up, Python's
``round`` to even), ``Math.min``/``Math.max`` (any NaN wins), truthiness (NaN is false),
number-to-text conversion (``5`` not ``5.0``, ``1e-7`` not ``1e-07``; ECMA-262
Number::toString) and ``toFixed`` (halves away from zero on the exact binary value).
Undefined values of the reference are ``None`` here and NaN in arithmetic.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from math import isnan
from typing import Any

NAN = math.nan
_INF = math.inf
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TIME_MS = 8.64e15  # ECMA-262 TimeClip bound
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def num(value: Any) -> float:
    """ToNumber for JSON inputs: undefined/None -> NaN, booleans -> 0/1."""
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
    if value is None:
        return NAN
    if value is True:
        return 1.0
    if value is False:
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip()) if value.strip() else 0.0
        except ValueError:
            return NAN
    return NAN


def truthy(value: Any) -> bool:
    """JavaScript truthiness: None, False, 0, NaN and "" are false."""
    if value is None or value is False:
        return False
    if isinstance(value, float):
        return not math.isnan(value) and value != 0.0
    if isinstance(value, int | str):
        return bool(value)
    return True


def jround(x: float) -> float:
    """``Math.round``: nearest integer, halves toward +infinity; NaN and infinities pass."""
    if math.isnan(x) or x in (_INF, -_INF):
        return x
    whole = math.floor(x)
    return float(whole + 1 if x - whole >= 0.5 else whole)


def round_to(x: float, digits: int = 0) -> float:
    """The reference's ``round(value, digits)``: ``Math.round(value * 10^d) / 10^d``."""
    if digits == 0:
        return jround(x)
    scale = 10.0**digits
    return jround(x * scale) / scale


def jfloor(x: float) -> float:
    """``Math.floor`` that lets NaN and infinities through."""
    if math.isnan(x) or x in (_INF, -_INF):
        return x
    return float(math.floor(x))


def jmin(a: float, b: float, *more: float) -> float:
    """``Math.min``: NaN if any argument is NaN."""
    if isnan(a) or isnan(b):
        return NAN
    out = a if a < b else b
    for v in more:
        if isnan(v):
            return NAN
        out = min(out, v)
    return out


def jmax(a: float, b: float, *more: float) -> float:
    """``Math.max``: NaN if any argument is NaN."""
    if isnan(a) or isnan(b):
        return NAN
    out = a if a > b else b
    for v in more:
        if isnan(v):
            return NAN
        out = max(out, v)
    return out


def js_str(value: Any) -> str:
    """String concatenation form of a value (ECMA-262 ToString, Number::toString)."""
    if value is None:
        return "undefined"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number_to_string(value)
    return str(value)


def _number_to_string(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if x == _INF:
        return "Infinity"
    if x == -_INF:
        return "-Infinity"
    if x == 0.0:
        return "0"
    if x.is_integer() and abs(x) < 1e21:
        return str(int(x))
    sign = "-" if x < 0 else ""
    mantissa, _, exp_text = repr(abs(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    power = (int(exp_text) if exp_text else 0) - len(frac)
    stripped = digits.rstrip("0")
    power += len(digits) - len(stripped)
    digits = stripped
    k = len(digits)
    n = k + power  # value = 0.digits * 10^n
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        head = digits if k == 1 else digits[0] + "." + digits[1:]
        body = f"{head}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body


def to_fixed(x: float, digits: int) -> str:
    """``Number.prototype.toFixed``: exact binary value, halves away from zero."""
    if math.isnan(x):
        return "NaN"
    if abs(x) >= 1e21:
        return _number_to_string(x)
    quantum = Decimal(1).scaleb(-digits)
    text = str(Decimal(abs(x)).quantize(quantum, rounding=ROUND_HALF_UP))
    return ("-" + text) if x < 0 else text


def time_clip(ms: float) -> float:
    """A Date's time value: integer milliseconds (truncated), NaN when out of range."""
    if math.isnan(ms) or abs(ms) > _MAX_TIME_MS:
        return NAN
    return float(math.trunc(ms))


def _utc(ms: float) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def date_string(ms: float) -> str:
    """``String(new Date(ms))`` in UTC, e.g. ``Thu Dec 03 2026 07:21:31 GMT+0000 (...)``."""
    t = time_clip(ms)
    if math.isnan(t):
        return "Invalid Date"
    d = _utc(t)
    return (
        f"{_WEEKDAYS[d.weekday()]} {_MONTHS[d.month - 1]} {d.day:02d} {d.year:04d} "
        f"{d.hour:02d}:{d.minute:02d}:{d.second:02d} GMT+0000 (Coordinated Universal Time)"
    )


def iso_string(ms: float) -> str | None:
    """``JSON.stringify`` of a Date: ``2026-12-03T07:21:31.123Z`` (None if invalid)."""
    t = time_clip(ms)
    if math.isnan(t):
        return None
    d = _utc(t)
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:"
        f"{d.second:02d}.{d.microsecond // 1000:03d}Z"
    )


def utc_minutes(ms: float) -> float:
    """``Date.prototype.getMinutes`` in UTC."""
    t = time_clip(ms)
    return NAN if math.isnan(t) else float(_utc(t).minute)


def to_json_value(value: Any) -> Any:
    """What ``JSON.stringify`` makes of a value: NaN and infinities become None, whole
    floats become ints (``5`` not ``5.0``), recursively through dicts and lists."""
    if isinstance(value, float):
        if math.isnan(value) or value in (_INF, -_INF):
            return None
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    if isinstance(value, dict):
        return {k: to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    return value


def jdiv(a: float, b: float) -> float:
    """JavaScript division: by zero gives ±Infinity (NaN for 0/0) instead of raising."""
    if b == 0:
        if math.isnan(a) or a == 0:
            return NAN
        return math.copysign(_INF, a) * math.copysign(1.0, b)
    return a / b
