"""Liveness and database health: ``GET /health`` (spec §8)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from backend_app.core.db import Database, ping

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """``{"status": "healthy", "database": "connected"}`` or the unhealthy pair."""

    status: Literal["healthy", "unhealthy"]
    database: Literal["connected", "disconnected"]


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
