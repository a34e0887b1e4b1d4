"""The clinicians' web dashboard: static files served by the management server.

``mount(app)`` adds two routes: ``/`` (the single-page app) and ``/dashboard/{name}`` (its
scripts, style sheet and icon). Only the files shipped in ``static/`` are served, each with
a fixed media type and the security headers in :data:`SECURITY_HEADERS`.
"""

from __future__ import annotations

from openinfusion.server.dashboard._files import SECURITY_HEADERS, mount

__all__ = ["SECURITY_HEADERS", "mount"]
