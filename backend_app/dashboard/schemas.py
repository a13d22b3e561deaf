"""Response model of ``GET /dashboard/summary``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from backend_app.core.types import Money


class ProductPriceBrief(BaseModel):
    """A product named with its price."""

    id: str
    name: str
    price: Money


class RecentProduct(ProductPriceBrief):
    """One of the newest products."""

    created_at: datetime


class LowStockProduct(BaseModel):
    """A product whose stock (Σ sizes) is at or below the threshold."""

    id: str
    name: str
    stock: int


class TopProduct(BaseModel):
    """A product by units sold (orders neither cancelled nor expired); ``name`` as captured at order time."""

    id: str
    name: str
    quantity_sold: int


class OrdersByStatus(BaseModel):
    """Order counts per status."""

    pending: int = 0
    completed: int = 0
    cancelled: int = 0
    expired: int = Field(default=0, description="Pending orders the expiry sweep released.")


class DashboardSummary(BaseModel):
    """Catalog and sales figures for admins."""

    total_products: int = Field(description="Live (not deleted) products.")
    average_rating: float | None = Field(description="Mean rating of rated live products, 2 decimals; null if none.")
    highest_priced_product: ProductPriceBrief | None
    recent_products: list[RecentProduct] = Field(description="The 5 newest live products, newest first.")
    total_orders: int
    orders_by_status: OrdersByStatus
    revenue: Money = Field(description="Σ total of completed orders.")
    top_products: list[TopProduct] = Field(
        description="The 5 products with the most units in orders neither cancelled nor expired."
    )
    low_stock: list[LowStockProduct] = Field(
        description="Live products with stock ≤ low_stock_threshold, lowest first."
    )
    low_stock_threshold: int
