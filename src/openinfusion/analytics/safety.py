"""The three safety reports by name, for the CLI and the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from openinfusion.analytics.alarm_burden import alarm_report
from openinfusion.analytics.compliance import compliance_report
from openinfusion.analytics.overrides import overrides_report
from openinfusion.analytics.window import ReportWindow
from openinfusion.errors import InputError

REPORTS = ("compliance", "overrides", "alarms")


def run_report(
    name: str,
    session: Session,
    window: ReportWindow,
    options: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Compute report ``name`` with its own options (bucket; min_overrides; nuisance_s,
    repeat_min). A database without the server schema is bad input, not a crash."""
    opts = options or {}
    try:
        if name == "compliance":
            return compliance_report(session, window, opts.get("bucket", "day"))
        if name == "overrides":
            return overrides_report(session, window, **opts)
        if name == "alarms":
            return alarm_report(session, window, **opts, now=now)
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        url = session.get_bind().engine.url.render_as_string(hide_password=True)
        raise InputError("db", url, f"cannot be read as a server database: {first}") from None
    raise InputError("report", name, f"must be one of {', '.join(REPORTS)}")


__all__ = ["REPORTS", "run_report"]
