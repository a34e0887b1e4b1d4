"""SQL shared by the safety reports, portable between SQLite and PostgreSQL.

Timestamps are compared as stored (naive UTC) and turned into epoch seconds inside the
query (SQLite ``julianday``, PostgreSQL ``extract(epoch ...)``) so that durations and day
buckets are computed by the database, not row by row in Python. JSON fields of pump event
bodies are read with SQLAlchemy's JSON paths (``json_extract`` / ``->>``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    String,
    Text,
    and_,
    cast,
    func,
    select,
    true,
)
from sqlalchemy.orm import Session

from openinfusion.analytics.window import ReportWindow
from openinfusion.server.models import Pump, PumpMessage

PROGRAMMED = "programmed"
DERS_ALERT = "ders_alert"
NO_UNIT = "(no unit)"
# SQLite's julianday of 1970-01-01T00:00:00Z.
_UNIX_EPOCH_JD = 2440587.5


def is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def epoch_s(session: Session, column: Any) -> ColumnElement[float]:
    """Seconds since 1970-01-01 UTC of a stored (naive UTC) timestamp column."""
    if is_sqlite(session):
        return (func.julianday(column) - _UNIX_EPOCH_JD) * 86400.0
    return cast(func.extract("epoch", column), Float)


def day_number(session: Session, column: Any) -> ColumnElement[int]:
    """Whole UTC days since 1970-01-01 of a timestamp column (the day bucket)."""
    if is_sqlite(session):
        return cast(func.floor(func.julianday(column) - _UNIX_EPOCH_JD), Integer)
    return cast(func.floor(func.extract("epoch", column) / 86400.0), Integer)


def greatest(session: Session, a: Any, b: Any) -> ColumnElement[Any]:
    return func.max(a, b) if is_sqlite(session) else func.greatest(a, b)


def least(session: Session, a: Any, b: Any) -> ColumnElement[Any]:
    return func.min(a, b) if is_sqlite(session) else func.least(a, b)


def unit_label(column: Any) -> ColumnElement[str]:
    """The pump's care unit, or ``(no unit)``."""
    return func.coalesce(column, NO_UNIT)


def in_window(column: Any, window: ReportWindow) -> ColumnElement[bool]:
    """``since <= column < until`` (open ends are not tested)."""
    parts: list[ColumnElement[bool]] = []
    if window.since is not None:
        parts.append(column >= window.since)
    if window.until is not None:
        parts.append(column < window.until)
    return and_(true(), *parts)


def unit_filter(window: ReportWindow) -> ColumnElement[bool]:
    return Pump.unit == window.unit if window.unit is not None else true()


def json_fields(
    session: Session, paths: Sequence[tuple[str, ...]], whole: frozenset[int] = frozenset()
) -> ColumnElement[str]:
    """The event body's values at ``paths`` as the text of one JSON array, so that a row's
    body is parsed once (SQLite 3.40 re-parses it for each ``json_extract``) and rows with
    the same values group together. Indexes in ``whole`` keep their JSON value (a list,
    an object); the others are scalars."""
    if len(paths) < 2:
        raise ValueError("json_fields needs two paths or more (SQLite returns a bare scalar)")
    if is_sqlite(session):
        return func.json_extract(
            PumpMessage.body, *["$." + ".".join(p) for p in paths], type_=String
        )
    parts = [
        PumpMessage.body[p if len(p) > 1 else p[0]]
        if i in whole
        else PumpMessage.body[p if len(p) > 1 else p[0]].as_string()
        for i, p in enumerate(paths)
    ]
    return cast(func.json_build_array(*parts), Text)


def event_groups(
    session: Session,
    window: ReportWindow,
    paths: Sequence[tuple[str, ...]],
    *columns: Any,
    whole: frozenset[int] = frozenset(),
) -> Select[Any]:
    """Counts of ``event`` envelopes of the window and unit grouped by ``columns`` and the
    values at ``paths`` (:func:`json_fields`): one pass, one JSON parse per row."""
    key = json_fields(session, paths, whole)
    query: Select[Any] = select(*columns, key, func.count())
    return (
        query.select_from(PumpMessage)
        .join(Pump, Pump.id == PumpMessage.pump_id)
        .where(
            PumpMessage.type == "event",
            in_window(PumpMessage.received_at, window),
            unit_filter(window),
        )
        .group_by(*columns, key)
    )


def decode(key: str | None) -> list[Any]:
    """A :func:`json_fields` value back to a list."""
    value = json.loads(key) if key else []
    return value if isinstance(value, list) else []


def truthy(value: Any) -> bool | None:
    """A JSON boolean read as text: SQLite gives 1/0, PostgreSQL 'true'/'false'."""
    if value is None:
        return None
    return str(value).lower() in ("1", "true")


__all__ = [
    "DERS_ALERT",
    "NO_UNIT",
    "PROGRAMMED",
    "day_number",
    "decode",
    "epoch_s",
    "event_groups",
    "greatest",
    "in_window",
    "is_sqlite",
    "json_fields",
    "least",
    "truthy",
    "unit_filter",
    "unit_label",
]
