"""The HL7 link on the REST API (``/api/interop/...``): outbound queue state and last errors."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["interop"])
