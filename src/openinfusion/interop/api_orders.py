"""EHR infusion orders on the REST API (``/api/orders``): list, read, and their status on the pump."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["orders"])
