"""Aggregation pipelines of the dashboard: one round trip per collection.

Each pipeline is one ``$facet``, so every section of a collection is computed
by the server in a single ``aggregate`` call; nothing loops over a whole
collection in Python.
"""

from __future__ import annotations

from typing import Any, cast

from backend_app.core.db import MongoDatabase
from backend_app.dashboard.documents import CatalogFacets, SalesFacets
from backend_app.orders.repository import COLLECTION as ORDERS
from backend_app.products.repository import COLLECTION as PRODUCTS
from backend_app.products.repository import PRICE_KEY

#: ``stock`` of a product, as ``GET /products/{id}`` shows it: Σ ``sizes.available`` (units an order
#: can take). Written with ``$map`` because the embedded server sums an array path
#: (``$sum: "$sizes.available"``) to 0.
STOCK_EXPRESSION: dict[str, Any] = {
    "$sum": {"$map": {"input": {"$ifNull": ["$sizes", []]}, "as": "s", "in": "$$s.available"}}
}


def catalog_pipeline(*, recent: int, low_stock_threshold: int, low_stock_limit: int) -> list[dict[str, Any]]:
    """Pipeline over live products → one document of facets.

    Facets: ``count`` ``[{n}]``; ``rating`` ``[{average}]`` over rated
    products; ``highest`` ``[{_id, name, price}]``; ``recent`` (``recent``
    newest, ``created_at`` descending); ``low_stock`` (stock ≤ threshold,
    lowest first, at most ``low_stock_limit``).
    """
    return [
        {"$match": {"deleted_at": None}},
        {
            "$facet": {
                "count": [{"$count": "n"}],
                "rating": [
                    {"$match": {"rating": {"$ne": None}}},
                    {"$group": {"_id": None, "average": {"$avg": "$rating"}}},
                ],
                "highest": [
                    # int64 price_cents, not Decimal128 price: the embedded server sorts Decimal128
                    # about 10x slower (docs/architecture.md (Catalog at scale), "Money").
                    {"$sort": {PRICE_KEY: -1, "_id": 1}},
                    {"$limit": 1},
                    {"$project": {"name": 1, "price": 1}},
                ],
                "recent": [
                    {"$sort": {"created_at": -1, "_id": -1}},
                    {"$limit": recent},
                    {"$project": {"name": 1, "price": 1, "created_at": 1}},
                ],
                "low_stock": [
                    {"$project": {"name": 1, "stock": STOCK_EXPRESSION}},
                    {"$match": {"stock": {"$lte": low_stock_threshold}}},
                    {"$sort": {"stock": 1, "_id": 1}},
                    {"$limit": low_stock_limit},
                ],
            }
        },
    ]


def sales_pipeline(*, top: int) -> list[dict[str, Any]]:
    """Pipeline over all orders → one document of facets.

    Facets: ``by_status`` ``[{_id: status, n}]``; ``revenue`` ``[{total}]``
    (Σ ``total`` of completed orders); ``top`` ``[{_id: productId, name,
    quantity}]`` (units in orders neither cancelled nor expired, most first, at most ``top``).
    """
    return [
        {
            "$facet": {
                "by_status": [{"$group": {"_id": "$status", "n": {"$sum": 1}}}],
                "revenue": [
                    {"$match": {"status": "completed"}},
                    {"$group": {"_id": None, "total": {"$sum": "$total"}}},
                ],
                "top": [
                    {"$match": {"status": {"$nin": ["cancelled", "expired"]}}},
                    {"$unwind": "$items"},
                    {
                        "$group": {
                            "_id": "$items.productId",
                            "name": {"$first": "$items.name"},
                            "quantity": {"$sum": "$items.qty"},
                        }
                    },
                    {"$sort": {"quantity": -1, "_id": 1}},
                    {"$limit": top},
                ],
            }
        }
    ]


async def _one(db: MongoDatabase, collection: str, pipeline: list[dict[str, Any]]) -> dict[str, Any]:
    cursor = await db[collection].aggregate(pipeline)
    rows = await cursor.to_list(length=1)
    return rows[0] if rows else {}


async def catalog_facets(
    db: MongoDatabase, *, recent: int, low_stock_threshold: int, low_stock_limit: int
) -> CatalogFacets:
    """Run :func:`catalog_pipeline` (one round trip) and return its facet document."""
    pipeline = catalog_pipeline(recent=recent, low_stock_threshold=low_stock_threshold, low_stock_limit=low_stock_limit)
    return cast(CatalogFacets, await _one(db, PRODUCTS, pipeline))


async def sales_facets(db: MongoDatabase, *, top: int) -> SalesFacets:
    """Run :func:`sales_pipeline` (one round trip) and return its facet document."""
    return cast(SalesFacets, await _one(db, ORDERS, sales_pipeline(top=top)))
