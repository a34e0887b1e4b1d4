"""Analytics on the REST API (``/api/analytics/...``): compliance, overrides, alarm burden, library verification, maintenance."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["analytics"])
