"""FHIR search parameters (R4 §3.1.1) and the searchset Bundle.

Only the parameters each resource lists in the CapabilityStatement are accepted; any other
is refused (400) rather than ignored, since an ignored typo (``paitent=``) would widen the
result to every patient. Paging: ``_count`` (default :data:`DEFAULT_COUNT`, capped at
:data:`MAX_COUNT`), ``_offset`` (the next link carries it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from openinfusion.interop.fhir.outcome import fail

DEFAULT_COUNT = 20
MAX_COUNT = 100
MAX_OFFSET = 10_000
COMMON = frozenset({"_count", "_offset", "_format"})
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})
_DATE = re.compile(
    r"^(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?"
    r"(?P<value>\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?)?)?)$"
)


@dataclass(frozen=True, slots=True)
class Paging:
    count: int
    offset: int


@dataclass(frozen=True, slots=True)
class Token:
    system: str | None  # None: any system; "": no system
    code: str


@dataclass(frozen=True, slots=True)
class DateBound:
    """``prefix`` applied to the instant range [start, end) the value covers."""

    prefix: str
    start: datetime
    end: datetime

    def admits(self, at: datetime) -> bool:
        p, s, e = self.prefix, self.start, self.end
        if p == "eq":
            return s <= at < e
        if p == "ne":
            return not s <= at < e
        if p in ("gt", "sa"):
            return at >= e
        if p == "ge":
            return at >= s
        if p in ("lt", "eb"):
            return at < s
        return at < e  # le


def check_params(params: QueryParams, allowed: frozenset[str]) -> None:
    """Refuse parameters this resource does not support, and non-JSON ``_format``."""
    for name in params:
        if name not in allowed and name not in COMMON:
            supported = ", ".join(sorted(allowed | COMMON))
            raise fail(
                400, name, params[name], f"is not a supported search parameter ({supported})"
            )
    fmt = params.get("_format")
    if fmt is not None and fmt.lower() not in JSON_FORMATS:
        raise fail(415, "_format", fmt, "only JSON is served (application/fhir+json)")


def one(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise fail(400, name, ",".join(values)[:80], "give this parameter once")
    if values and (not values[0] or "," in values[0]):
        raise fail(400, name, values[0], "one non-empty value (no comma lists)")
    return values[0] if values else None


def paging(params: QueryParams) -> Paging:
    def number(name: str, default: int, low: int, high: int | None) -> int:
        text = one(params, name)
        if text is None:
            return default
        if not text.isdigit() or len(text) > 9:
            raise fail(400, name, text, "must be a whole number")
        value = int(text)
        if value < low:
            raise fail(400, name, text, f"must be at least {low}")
        return value if high is None else min(value, high)

    count = number("_count", DEFAULT_COUNT, 0, MAX_COUNT)
    offset = number("_offset", 0, 0, None)
    if offset > MAX_OFFSET:
        raise fail(400, "_offset", offset, f"must be at most {MAX_OFFSET}; narrow the search")
    return Paging(count, offset)


def token(params: QueryParams, name: str) -> Token | None:
    text = one(params, name)
    if text is None:
        return None
    if "|" in text:
        system, _, code = text.partition("|")
        if not code:
            raise fail(400, name, text, "system|code needs a code")
        return Token(system, code)
    return Token(None, text)


def reference(params: QueryParams, name: str, kinds: tuple[str, ...]) -> tuple[str, str] | None:
    """(resource type, id) of a reference parameter (``Type/id`` or a bare id, then the
    first of ``kinds``)."""
    text = one(params, name)
    if text is None:
        return None
    if "/" in text:
        kind, _, ident = text.rpartition("/")
        kind = kind.rsplit("/", 1)[-1]  # an absolute URL ends in Type/id too
        if kind not in kinds:
            raise fail(400, name, text, f"must reference {' or '.join(kinds)}")
        return kind, ident
    return kinds[0], text


def dates(params: QueryParams, name: str) -> list[DateBound]:
    out = []
    for text in params.getlist(name):
        m = _DATE.match(text)
        if m is None:
            raise fail(400, name, text, "must be [prefix]YYYY[-MM[-DD[Thh:mm[:ss][Z|±hh:mm]]]]")
        prefix = m["prefix"] or "eq"
        if prefix == "ap":
            raise fail(400, name, text, "the 'ap' prefix is not supported")
        try:
            start, end = _range(m["value"])
        except ValueError as exc:
            raise fail(400, name, text, f"is not a valid date: {exc}") from exc
        out.append(DateBound(prefix, start, end))
    return out


def _range(value: str) -> tuple[datetime, datetime]:
    """The instants [start, end) a FHIR date or dateTime of some precision covers (UTC)."""
    if len(value) == 4:
        start = datetime(int(value), 1, 1, tzinfo=UTC)
        return start, start.replace(year=start.year + 1)
    if len(value) == 7:
        year, month = int(value[:4]), int(value[5:7])
        start = datetime(year, month, 1, tzinfo=UTC)
        nxt = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
        return start, nxt
    if len(value) == 10:
        start = datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        return start, start + timedelta(days=1)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    if value.count(":") == 1 or (len(value) > 16 and value[16] != ":"):
        step = timedelta(minutes=1)  # hh:mm precision
    elif "." in value:
        step = timedelta(microseconds=1)
    else:
        step = timedelta(seconds=1)
    return moment, moment + step


def bundle(
    base: str,
    kind: str,
    params: QueryParams,
    page: Paging,
    total: int,
    resources: list[dict[str, Any]],
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """A searchset Bundle: ``total`` matches, this page's ``resources``, self and next links."""
    query = [(k, v) for k, v in params.multi_items() if k not in ("_count", "_offset")]

    def link(offset: int) -> str:
        q = [*query, ("_count", str(page.count)), ("_offset", str(offset))]
        return f"{base}/{kind}?{urlencode(q)}"

    links = [{"relation": "self", "url": link(page.offset)}]
    if page.offset + len(resources) < total and page.count > 0:
        links.append({"relation": "next", "url": link(page.offset + page.count)})
    if page.offset > 0:
        links.append({"relation": "previous", "url": link(max(0, page.offset - page.count))})
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in resources
    ]
    for text in warnings or []:
        entries.append(
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "warning", "code": "incomplete", "diagnostics": text}],
                },
                "search": {"mode": "outcome"},
            }
        )
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
    }
    if entries:  # FHIR JSON has no empty arrays
        out["entry"] = entries
    return out
