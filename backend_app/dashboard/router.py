"""HTTP route of the admin dashboard (docs/contract.md §3 table, §7)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend_app.auth.dependencies import AdminUser
from backend_app.core.db import Database
from backend_app.core.errors import problem_responses
from backend_app.dashboard import service
from backend_app.dashboard.schemas import DashboardSummary

router = APIRouter(prefix="/dashboard", tags=["dashboard"])


@router.get(
    "/summary",
    response_model=DashboardSummary,
    responses=problem_responses(401, 403, 422, 500),
    summary="Catalog and sales summary (admin)",
)
async def get_summary(
    db: Database,
    _admin: AdminUser,
    low_stock_threshold: Annotated[
        int, Query(ge=0, le=1_000_000, description="List products whose stock is at most this.")
    ] = service.DEFAULT_LOW_STOCK_THRESHOLD,
) -> DashboardSummary:
    """Totals, rating, prices, newest products, orders by status, revenue, best sellers and low stock."""
    return await service.summary(db, low_stock_threshold=low_stock_threshold)
