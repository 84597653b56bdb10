"""Liveness and readiness, for load balancers and orchestrators (no key needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hashwatch.api.auth import get_state

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Indexes loaded and no staler than the configured limit (503 otherwise)",
    responses={503: {"description": "Not ready: loading, or the indexes are too stale"}},
)
def readyz(request: Request) -> Any:
    ready, detail = get_state(request).readiness()
    return JSONResponse(detail, status_code=200 if ready else 503)
