"""Health endpoints: ``GET /health`` and the probes ``GET /health/live`` and ``GET /health/ready``.

- ``/health/live``: the process answers (no database call). A liveness probe:
  failing it means "restart me", so it must not fail while only the database is down.
- ``/health/ready``: the database answers ``ping`` **and** the start-up index
  creation has finished, so every query is index-served. A readiness probe:
  failing it means "send me no traffic yet".
- ``/health``: the original contract, database reachability only.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from backend_app.core.db import Database, ping
from backend_app.core.middleware import mark_no_store

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """``{"status": "healthy", "database": "connected"}`` or the unhealthy pair."""

    status: Literal["healthy", "unhealthy"]
    database: Literal["connected", "disconnected"]


class Liveness(BaseModel):
    """``{"status": "alive"}``: the process serves requests."""

    status: Literal["alive"]


class Readiness(BaseModel):
    """``{"status": "ready", "database": "connected", "indexes": "ensured"}``, or which of the two is missing."""

    status: Literal["ready", "not_ready"]
    database: Literal["connected", "disconnected"]
    indexes: Literal["ensured", "pending"]


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database is unreachable."}},
    summary="Service health",
)
async def health(db: Database) -> Health | JSONResponse:
    """200 when the database answers ``ping`` within 2 s, else 503 ``unhealthy``."""
    if await ping(db):
        return Health(status="healthy", database="connected")
    return JSONResponse(Health(status="unhealthy", database="disconnected").model_dump(), status_code=503)


@router.get("/health/live", response_model=Liveness, summary="Liveness probe")
async def live() -> Liveness:
    """Always 200 while the process serves HTTP; never touches the database."""
    return Liveness(status="alive")


@router.get(
    "/health/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database is unreachable or indexes are not ensured yet."}},
    summary="Readiness probe",
)
async def ready(request: Request, db: Database) -> Readiness | JSONResponse:
    """200 when the database answers ``ping`` within 2 s and start-up indexes are ensured, else 503 ``not_ready``."""
    connected = await ping(db)
    indexed = bool(getattr(request.app.state, "indexes_ready", False))
    body = Readiness(
        status="ready" if connected and indexed else "not_ready",
        database="connected" if connected else "disconnected",
        indexes="ensured" if indexed else "pending",
    )
    if body.status == "ready":
        return body
    mark_no_store(request)
    return JSONResponse(body.model_dump(), status_code=503)
