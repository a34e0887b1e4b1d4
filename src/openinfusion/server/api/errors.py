"""One JSON error shape for every refusal: ``{"error": {"field", "value", "rule", "message"}}``.

A part of the API under its own path prefix (the FHIR face, ``/fhir``) may register an
:class:`ErrorFace` that renders the same problems in its own format and names the media
types its bodies may have; the rest of the API keeps the shape above.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


# (status, problems) -> (body, content type); a problem is an "error" dict as above,
# possibly with extra keys of the face's own (e.g. a FHIR path).
FaceRenderer = Callable[[int, list[dict[str, Any]]], tuple[dict[str, Any], str]]


@dataclass(frozen=True, slots=True)
class ErrorFace:
    """Errors under ``prefix`` rendered by ``render``; bodies there may be ``media_types``."""

    prefix: str
    media_types: frozenset[str]
    render: FaceRenderer


_FACES: dict[str, ErrorFace] = {}


def register_face(face: ErrorFace) -> None:
    _FACES[face.prefix] = face


def face_for(path: str) -> ErrorFace | None:
    for prefix, face in _FACES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return face
    return None


def respond(
    path: str,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The error response for ``path``: ``body`` as is, or rendered by the path's face."""
    face = face_for(path)
    if face is None:
        return JSONResponse(body, status_code=status, headers=headers)
    problems = body.get("problems") or [body["error"]]
    rendered, media = face.render(status, problems)
    return JSONResponse(rendered, status_code=status, headers=headers, media_type=media)


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
    async def _api_error(r: Request, exc: ApiError) -> JSONResponse:
        return respond(r.url.path, exc.status, exc.body(), exc.headers)

    @app.exception_handler(InputError)
    async def _input_error(r: Request, exc: InputError) -> JSONResponse:
        return respond(r.url.path, 422, {"error": exc.as_dict()})

    @app.exception_handler(RequestValidationError)
    async def _validation(r: Request, exc: RequestValidationError) -> JSONResponse:
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
        return respond(r.url.path, 422, body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(r: Request, exc: StarletteHTTPException) -> JSONResponse:
        return respond(
            r.url.path,
            exc.status_code,
            error_body("request", None, str(exc.detail)),
            dict(exc.headers) if exc.headers else None,
        )
