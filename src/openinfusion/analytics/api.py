"""Analytics on the REST API (``/api/analytics/...``): compliance, overrides, alarm burden, library verification, maintenance."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from openinfusion.analytics.alarm_burden import DEFAULT_NUISANCE_S, DEFAULT_REPEAT_MIN
from openinfusion.analytics.refinement import DEFAULT_MIN_OVERRIDES
from openinfusion.analytics.safety import run_report
from openinfusion.analytics.window import parse_window
from openinfusion.server.api.deps import Principal, get_ctx, require
from openinfusion.server.context import ServerContext
from openinfusion.server.permissions import Perm

router = APIRouter(tags=["analytics"])

Since = Annotated[str | None, Query(max_length=40, description="UTC date or ISO timestamp")]
Until = Annotated[str | None, Query(max_length=40, description="exclusive end, UTC")]
Unit = Annotated[str | None, Query(max_length=64, description="one care unit")]


def _report(
    p: Principal,
    ctx: ServerContext,
    name: str,
    since: str | None,
    until: str | None,
    unit: str | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    window = parse_window(since, until, unit)
    if p.unit_scope is not None:  # a unit-limited account sees its own unit only (C-11)
        window = replace(window, unit=p.unit_scope)
    with ctx.db.read() as session:
        return run_report(name, session, window, options, now=ctx.now())


@router.get("/api/analytics/compliance")
def compliance(
    since: Since = None,
    until: Until = None,
    unit: Unit = None,
    bucket: Annotated[str, Query(pattern="^(day|week)$")] = "day",
    p: Principal = Depends(require(Perm.ANALYTICS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    """DERS compliance: library programs vs basic infusions by care area, unit and time."""
    return _report(p, ctx, "compliance", since, until, unit, {"bucket": bucket})


@router.get("/api/analytics/overrides")
def overrides(
    since: Since = None,
    until: Until = None,
    unit: Unit = None,
    min_overrides: Annotated[int, Query(ge=1, le=100_000)] = DEFAULT_MIN_OVERRIDES,
    p: Principal = Depends(require(Perm.ANALYTICS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Soft alerts and overrides with reasons, hard blocks, reprograms; refinement."""
    return _report(p, ctx, "overrides", since, until, unit, {"min_overrides": min_overrides})


@router.get("/api/analytics/alarms")
def alarms(
    since: Since = None,
    until: Until = None,
    unit: Unit = None,
    nuisance_s: Annotated[float, Query(gt=0, le=3600)] = DEFAULT_NUISANCE_S,
    repeat_min: Annotated[float, Query(gt=0, le=1440)] = DEFAULT_REPEAT_MIN,
    p: Principal = Depends(require(Perm.ANALYTICS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Alarm burden: per 1,000 infusion-hours, time to acknowledge, nuisance, fatigue."""
    return _report(
        p, ctx, "alarms", since, until, unit, {"nuisance_s": nuisance_s, "repeat_min": repeat_min}
    )


from openinfusion.analytics import api_maintenance  # noqa: E402 (after the routes above)

router.include_router(api_maintenance.router)

from openinfusion.analytics import api_library  # noqa: E402 (after the routes above)

router.include_router(api_library.router)
