"""Serve the dashboard's files with a strict Content-Security-Policy.

The policy allows scripts, styles and images from this server only: no inline script, no
inline event handler attributes, no ``eval`` (CSP Level 3, W3C), no HTML strings written into
the page (Trusted Types), and no framing
(``frame-ancestors 'none'`` against click-jacking). Clinical text reaches the page through
``textContent`` only (see ``static/js/dom.js``), so the policy is a second wall, not the
first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI, HTTPException
from fastapi.responses import Response

STATIC_DIR: Final = Path(__file__).with_name("static")

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        # Trusted Types (W3C): the browser itself refuses any HTML string written into the
        # page (innerHTML, insertAdjacentHTML, document.write), so a slip in a future edit
        # fails loudly instead of opening C-14 again.
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)

SECURITY_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Older browsers that ignore frame-ancestors honour this one.
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    # A new release of the files must reach every open ward screen on its next load.
    "Cache-Control": "no-cache",
}

_MEDIA_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def _catalogue() -> dict[str, tuple[bytes, str]]:
    """Every servable file by its name relative to ``static/``, read once at mount time."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(STATIC_DIR.rglob("*")):
        media_type = _MEDIA_TYPES.get(path.suffix)
        if path.is_file() and media_type is not None:
            files[path.relative_to(STATIC_DIR).as_posix()] = (path.read_bytes(), media_type)
    return files


def mount(app: FastAPI) -> None:
    """Serve the dashboard at ``/`` and its assets under ``/dashboard/``."""
    files = _catalogue()
    if "index.html" not in files:
        raise RuntimeError(f"dashboard files are missing from {STATIC_DIR}")

    def _respond(name: str) -> Response:
        found = files.get(name)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no dashboard file {name!r}")
        body, media_type = found
        return Response(content=body, media_type=media_type, headers=SECURITY_HEADERS)

    @app.get("/", include_in_schema=False)
    def dashboard_index() -> Response:
        return _respond("index.html")

    @app.get("/dashboard/{name:path}", include_in_schema=False)
    def dashboard_file(name: str) -> Response:
        return _respond(name)
