"""The FHIR R4 REST face (``/fhir/...``), JSON only, errors as OperationOutcome."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["fhir"])
