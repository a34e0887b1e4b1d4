"""Glucose status from a CGM record list, as oref0 derives it (``lib/glucose-get-last.js``,
npm ``oref0`` 0.7.1; behaviour re-expressed).

Records are newest first. Deltas are in mg/dL per 5 min:
- readings within 2.5 min of the newest are averaged into "now";
- ``delta`` averages the readings 2.5–7.5 min old, ``short_avgdelta`` 2.5–17.5 min,
  ``long_avgdelta`` 17.5–42.5 min;
- only readings above 38 mg/dL from the newest record's device count, and a calibration
  record ends the scan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from openinfusion.control.aid.oref._js import NAN, jdiv, jround, num, truthy

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_date_ms(text: Any) -> float:
    """Milliseconds since the epoch from an ISO-8601 string (NaN if it does not parse).

    A date without a zone is read as UTC (the reference reads it in the machine's local
    time, which is the same when the machine runs in UTC)."""
    if not isinstance(text, str) or not text:
        return NAN
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return NAN
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) / timedelta(milliseconds=1)


def entry_date_ms(entry: Mapping[str, Any]) -> float:
    """The record's time: ``date`` (ms), else ``display_time``, else ``dateString``."""
    date = entry.get("date")
    if truthy(date):
        return num(date)
    parsed = parse_date_ms(entry.get("display_time"))
    if not math.isnan(parsed) and parsed != 0:
        return parsed
    return parse_date_ms(entry.get("dateString"))


def _mean(values: list[float]) -> float:
    total = 0.0
    for v in values:
        total += v
    return total / len(values) if values else 0.0


def get_last_glucose(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Glucose status (``glucose`` mg/dL, ``delta``, ``short_avgdelta``, ``long_avgdelta``
    mg/dL/5 min, ``date`` ms, ``noise``, ``last_cal``, ``device``) of newest-first records.

    Raises ValueError when no record carries a glucose value (``glucose`` or ``sgv``)."""
    usable = [r for r in records if truthy(r.get("glucose")) or truthy(r.get("sgv"))]
    if not usable:
        raise ValueError("no record with a glucose or sgv value")
    now = usable[0]
    now_bg = num(now.get("glucose") if truthy(now.get("glucose")) else now.get("sgv"))
    now_ms = entry_date_ms(now)
    device = now.get("device")
    last: list[float] = []
    short: list[float] = []
    long: list[float] = []
    last_cal = 0
    for i in range(1, len(usable)):
        then = usable[i]
        if then.get("type") == "cal":
            last_cal = i
            break
        then_bg = num(then.get("glucose") if truthy(then.get("glucose")) else then.get("sgv"))
        if not (then_bg > 38 and then.get("device") == device):
            continue
        then_ms = entry_date_ms(then)
        minutes_ago = jround((now_ms - then_ms) / (1000 * 60))
        avg_delta = jdiv(now_bg - then_bg, minutes_ago) * 5
        if -2 < minutes_ago < 2.5:
            now_bg = (now_bg + then_bg) / 2
            now_ms = (now_ms + then_ms) / 2
        elif 2.5 < minutes_ago < 17.5:
            short.append(avg_delta)
            if 2.5 < minutes_ago < 7.5:
                last.append(avg_delta)
        elif 17.5 < minutes_ago < 42.5:
            long.append(avg_delta)
    return {
        "delta": jround(_mean(last) * 100) / 100,
        "glucose": jround(now_bg * 100) / 100,
        "noise": jround(num(now.get("noise"))),
        "short_avgdelta": jround(_mean(short) * 100) / 100,
        "long_avgdelta": jround(_mean(long) * 100) / 100,
        "date": now_ms,
        "last_cal": last_cal,
        "device": device,
    }
