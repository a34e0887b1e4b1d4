"""``GET /api/analytics/library-verify/{version}``: a published library verified on virtual
populations (JSON, HTML page or the PNG chart), for pharmacists reviewing a version."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse, Response

from openinfusion.server.api.deps import Principal, get_ctx, require
from openinfusion.server.api.errors import not_found
from openinfusion.server.context import ServerContext
from openinfusion.server.permissions import Perm

router = APIRouter(prefix="/api/analytics", tags=["analytics"])
Version = Annotated[str, Path(pattern=r"^[0-9]+(\.[0-9]+){0,3}$")]
# The server simulates in a request thread: keep populations modest (the CLI allows more).
MAX_API_PATIENTS = 2000


@router.get("/library-verify/{version}", response_model=None)
def library_verify(
    version: Version,
    care_area: Annotated[str | None, Query(max_length=100)] = None,
    patients: Annotated[int, Query(ge=1, le=MAX_API_PATIENTS)] = 200,
    seed: Annotated[int, Query(ge=0, le=2**32 - 1)] = 0,
    format: Literal["json", "html", "png"] = "json",
    _p: Principal = Depends(require(Perm.ANALYTICS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any] | Response:
    """Verify published library ``version``: every entry's dose limits simulated on a seeded
    virtual population of its care area and judged against its therapeutic window."""
    # Imported here: the models (SciPy) and charts (matplotlib) cost seconds, and a server
    # restarting after a crash must take its pumps back without waiting for them.
    from openinfusion.analytics.library_verify import verify_library
    from openinfusion.analytics.library_verify_report import chart_png, report_html
    from openinfusion.analytics.library_verify_source import published_library
    from openinfusion.analytics.render import REPORT_CSP

    with ctx.db.read() as session:
        lib = published_library(session, version)
    if lib is None:
        raise not_found("version", version)
    report = verify_library(lib, care_area=care_area, patients=patients, seed=seed)
    if format == "html":
        return HTMLResponse(report_html(report), headers={"Content-Security-Policy": REPORT_CSP})
    if format == "png":
        return Response(chart_png(report), media_type="image/png")
    return report.as_dict()


__all__ = ["router"]
