"""Health check: the only unauthenticated REST endpoint; it reveals nothing (C-01)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()


@router.get("/api/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
