"""MongoDB access for the ``orders`` collection: the only place that builds its filters and pipelines.

Document shape::

    {_id: ObjectId, userId: str, status: "pending" | "completed" | "cancelled",
     items: [{productId: ObjectId, name: str, size: str | null, qty: int,
              unit_price: Decimal128, taken: [{size: str, qty: int}]}],
     total: Decimal128, created_at: datetime, updated_at: datetime}
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession

from backend_app.core.db import MongoDatabase
from backend_app.products.repository import COLLECTION as PRODUCTS

COLLECTION = "orders"


async def ensure_indexes(db: MongoDatabase) -> None:
    """Create the index behind ``GET /orders/{user_id}``: ``{userId, _id}`` (idempotent)."""
    await db[COLLECTION].create_index([("userId", ASCENDING), ("_id", ASCENDING)], name="by_user")


async def insert_order(db: MongoDatabase, *, order: dict[str, Any], session: AsyncClientSession) -> ObjectId:
    """Insert ``order`` inside ``session``'s transaction and return its ``_id``."""
    result = await db[COLLECTION].insert_one(order, session=session)
    return result.inserted_id


def _with_product_details(match: dict[str, Any], *, skip: int, limit: int) -> list[dict[str, Any]]:
    """Pipeline: page of orders matching ``match`` with each line's ``productDetails`` joined.

    ``productDetails`` comes from one ``$lookup`` on ``products`` (brief: no
    N+1 reads); a product that no longer exists falls back to the name and id
    captured at order time. Items are unwound first because the embedded
    server cannot ``$lookup`` on an array ``localField`` (spec §9), then
    regrouped in their original order.
    """
    return [
        {"$match": match},
        {"$sort": {"_id": ASCENDING}},
        {"$skip": skip},
        {"$limit": limit},
        {"$unwind": {"path": "$items", "includeArrayIndex": "line"}},
        {
            "$lookup": {
                "from": PRODUCTS,
                "localField": "items.productId",
                "foreignField": "_id",
                "pipeline": [{"$project": {"name": 1}}],
                "as": "joined",
            }
        },
        {
            "$set": {
                "items.productDetails": {
                    "$ifNull": [
                        {"$arrayElemAt": ["$joined", 0]},
                        {"_id": "$items.productId", "name": "$items.name"},
                    ]
                }
            }
        },
        {"$sort": {"_id": ASCENDING, "line": ASCENDING}},
        {
            "$group": {
                "_id": "$_id",
                "userId": {"$first": "$userId"},
                "status": {"$first": "$status"},
                "total": {"$first": "$total"},
                "created_at": {"$first": "$created_at"},
                "items": {"$push": "$items"},
            }
        },
        {"$sort": {"_id": ASCENDING}},
    ]


async def list_user_orders(db: MongoDatabase, *, user_id: str, skip: int, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` orders of ``user_id`` after ``skip``, ascending ``_id``, lines joined with products."""
    cursor = await db[COLLECTION].aggregate(_with_product_details({"userId": user_id}, skip=skip, limit=limit))
    return await cursor.to_list(length=limit)
