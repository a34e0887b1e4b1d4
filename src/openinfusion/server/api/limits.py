"""Request size (413) and content type (415) limits, enforced before any handler runs."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openinfusion.server.api.errors import error_body, face_for

FORM_PATHS = frozenset({"/api/auth/token"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyLimits:
    """Pure ASGI middleware: refuse bodies over ``max_bytes`` and unexpected media types."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                await _reply(
                    send, 400, error_body("content-length", length, "must be a number"), path
                )
                return
            if int(length) > self.max_bytes:
                await _reply(
                    send,
                    413,
                    error_body(
                        "body", f"{length} bytes", f"is over the {self.max_bytes}-byte limit"
                    ),
                    path,
                )
                return
        has_body = length not in (None, "0") or "transfer-encoding" in headers
        if has_body:
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            face = face_for(path)
            expected = (
                face.media_types
                if face is not None
                else frozenset(
                    {
                        "application/x-www-form-urlencoded"
                        if path in FORM_PATHS
                        else "application/json"
                    }
                )
            )
            if media not in expected:
                rule = "must be " + " or ".join(sorted(expected))
                await _reply(send, 415, error_body("content-type", media, rule), path)
                return
        await self._limited(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count body bytes as they arrive (chunked bodies have no Content-Length); past
        the limit answer 413 and tell the application the client went away."""
        seen = 0
        responded = False
        limit = self.max_bytes

        async def limited() -> Message:
            nonlocal seen, responded
            if responded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    responded = True
                    await _reply(
                        send,
                        413,
                        error_body(
                            "body", f"over {limit} bytes", f"is over the {limit}-byte limit"
                        ),
                        scope["path"],
                    )
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not responded:
                await send(message)

        await self.app(scope, limited, guarded_send)


async def _reply(send: Send, status: int, body: dict[str, Any], path: str) -> None:
    media = "application/json"
    face = face_for(path)
    if face is not None:
        body, media = face.render(status, [body["error"]])
    data = json.dumps(body).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", media.encode("latin-1")),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
