"""One JSON error shape for every refusal: ``{"error": {"field", "value", "rule", "message"}}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from openinfusion.errors import InputError


class ApiError(Exception):
    """An HTTP refusal naming the field, the value and the rule."""

    def __init__(
        self,
        status: int,
        field: str,
        value: Any,
        rule: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(rule)
        self.status, self.field, self.value, self.rule = status, field, value, rule
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return error_body(self.field, self.value, self.rule)


def error_body(field: str, value: Any, rule: str) -> dict[str, Any]:
    shown = value if isinstance(value, str | int | float | bool | None) else str(value)
    if isinstance(shown, str) and len(shown) > 80:
        shown = shown[:80] + "…"
    message = f"{field}: {rule}" if shown in (None, "") else f"{field} {shown!r}: {rule}"
    return {"error": {"field": field, "value": shown, "rule": rule, "message": message}}


def not_found(what: str, ident: object) -> ApiError:
    """404 for an object that does not exist *or* that the caller may not see (C-11)."""
    return ApiError(404, what, ident, "not found")


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "authorization",
        None,
        "a valid bearer token is required",
        {"WWW-Authenticate": "Bearer"},
    )


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_r: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(InputError)
    async def _input_error(_r: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"error": exc.as_dict()}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _validation(_r: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            field = ".".join(loc) or "body"
            value = err.get("input")
            problems.append(
                error_body(
                    field,
                    value if not isinstance(value, dict) else None,
                    str(err.get("msg", "is invalid")),
                )["error"]
            )
        body = {
            "error": problems[0] if problems else error_body("body", None, "is invalid")["error"],
            "problems": problems,
        }
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body("request", None, str(exc.detail)),
            status_code=exc.status_code,
            headers=exc.headers,
        )
