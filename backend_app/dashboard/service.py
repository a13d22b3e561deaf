"""Dashboard figures: two aggregation round trips, shaped into :class:`DashboardSummary`."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TypeVar

from backend_app.core.db import MongoDatabase
from backend_app.core.types import from_bson_money
from backend_app.dashboard import repository
from backend_app.dashboard.schemas import (
    DashboardSummary,
    LowStockProduct,
    OrdersByStatus,
    ProductPriceBrief,
    RecentProduct,
    TopProduct,
)

RECENT_PRODUCTS = 5
TOP_PRODUCTS = 5
#: Most products listed under ``low_stock`` (the lowest first).
LOW_STOCK_LIMIT = 20
DEFAULT_LOW_STOCK_THRESHOLD = 5


_Row = TypeVar("_Row")


def _first(facet: list[_Row] | None) -> _Row | None:
    """The one row of a single-row facet, or ``None`` when the facet is empty."""
    return facet[0] if facet else None


async def summary(db: MongoDatabase, *, low_stock_threshold: int = DEFAULT_LOW_STOCK_THRESHOLD) -> DashboardSummary:
    """Compute the dashboard with one ``$facet`` aggregation on products and one on orders, run concurrently.

    Args:
        low_stock_threshold: products with stock ≤ this are listed under ``low_stock``.
    """
    catalog, sales = await asyncio.gather(
        repository.catalog_facets(
            db, recent=RECENT_PRODUCTS, low_stock_threshold=low_stock_threshold, low_stock_limit=LOW_STOCK_LIMIT
        ),
        repository.sales_facets(db, top=TOP_PRODUCTS),
    )
    count = _first(catalog.get("count"))
    rating = _first(catalog.get("rating"))
    highest = _first(catalog.get("highest"))
    revenue = _first(sales.get("revenue"))
    by_status = OrdersByStatus(**{row["_id"]: row["n"] for row in sales.get("by_status", []) if row["_id"]})
    average = rating.get("average") if rating else None
    return DashboardSummary(
        total_products=count["n"] if count else 0,
        average_rating=round(float(average), 2) if average is not None else None,
        highest_priced_product=ProductPriceBrief(
            id=str(highest["_id"]), name=highest["name"], price=from_bson_money(highest["price"])
        )
        if highest
        else None,
        recent_products=[
            RecentProduct(
                id=str(p["_id"]), name=p["name"], price=from_bson_money(p["price"]), created_at=p["created_at"]
            )
            for p in catalog.get("recent", [])
        ],
        total_orders=by_status.pending + by_status.completed + by_status.cancelled + by_status.expired,
        orders_by_status=by_status,
        revenue=from_bson_money(revenue["total"]) if revenue else Decimal("0.00"),
        top_products=[
            TopProduct(id=str(t["_id"]), name=t["name"], quantity_sold=t["quantity"]) for t in sales.get("top", [])
        ],
        low_stock=[
            LowStockProduct(id=str(p["_id"]), name=p["name"], stock=p["stock"]) for p in catalog.get("low_stock", [])
        ],
        low_stock_threshold=low_stock_threshold,
    )
