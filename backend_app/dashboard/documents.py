"""The rows the dashboard's two ``$facet`` aggregations return, as types.

Each aggregation returns one document whose fields are its facets, each a list
of rows; a collection with no documents returns none (read as every facet empty).
Prices and totals are ``Decimal128`` as stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from bson import Decimal128, ObjectId


class CountRow(TypedDict):
    n: int


class RatingRow(TypedDict):
    #: Mean rating of the rated live products (``None`` when no product is rated).
    average: float | None


class PricedProductRow(TypedDict):
    _id: ObjectId
    name: str
    price: Decimal128


class RecentProductRow(PricedProductRow):
    created_at: datetime


class LowStockRow(TypedDict):
    _id: ObjectId
    name: str
    #: Σ of the sizes' ``available`` units.
    stock: int


class CatalogFacets(TypedDict, total=False):
    """``dashboard.repository.catalog_pipeline``'s document over the live products."""

    count: list[CountRow]
    rating: list[RatingRow]
    highest: list[PricedProductRow]
    recent: list[RecentProductRow]
    low_stock: list[LowStockRow]


class StatusCountRow(TypedDict):
    #: An order status (``pending``, ``completed``, ``cancelled``, ``expired``).
    _id: str | None
    n: int


class RevenueRow(TypedDict):
    #: Σ ``total`` of the completed orders.
    total: Decimal128


class TopProductRow(TypedDict):
    #: The product's id as its order lines store it.
    _id: ObjectId
    name: str
    #: Units in orders neither cancelled nor expired.
    quantity: int


class SalesFacets(TypedDict, total=False):
    """``dashboard.repository.sales_pipeline``'s document over all orders."""

    by_status: list[StatusCountRow]
    revenue: list[RevenueRow]
    top: list[TopProductRow]
