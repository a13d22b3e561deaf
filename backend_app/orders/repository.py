"""MongoDB access for the ``orders`` collection: the only place that builds its filters and pipelines.

Document shape::

    {_id: ObjectId, userId: str, status: "pending" | "completed" | "cancelled" | "expired",
     items: [{productId: ObjectId, name: str, size: str | null, qty: int,
              unit_price: Decimal128, taken: [{size: str, qty: int}]}],
     total: Decimal128, created_at: datetime, updated_at: datetime}

``order_holds`` holds one document per user with pending orders::

    {_id: str (username), pending: int}

``pending`` is the number of the user's orders in status ``pending``. It is
changed only inside the transactions that create pending orders or move one
out of ``pending``, so it always equals that count (issue 9: the cap on
pending orders is read and raised in the placing transaction, race-safe).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession

from backend_app.core.db import MongoDatabase
from backend_app.core.pagination import PageWindow, keyset_sort, read_window
from backend_app.products.repository import COLLECTION as PRODUCTS

COLLECTION = "orders"
HOLDS = "order_holds"


async def ensure_indexes(db: MongoDatabase) -> None:
    """Create the indexes behind the order lists (idempotent; spec §4).

    - ``by_user`` ``{userId, _id}``: ``GET /orders/{user_id}`` and a user's ``GET /orders``.
    - ``by_status`` ``{status, _id}``: the admin's ``status`` filter and the dashboard's revenue.
    - ``by_user_status`` ``{userId, status, _id}``: both filters together.
    - ``pending_by_age`` ``{status, created_at}``: the expiry sweep (pending orders older than the TTL).
    - the ``_id`` index serves the admin's unfiltered ``GET /orders``.
    """
    coll = db[COLLECTION]
    await coll.create_index([("status", ASCENDING), ("created_at", ASCENDING)], name="pending_by_age")
    await coll.create_index([("userId", ASCENDING), ("_id", ASCENDING)], name="by_user")
    await coll.create_index([("status", ASCENDING), ("_id", ASCENDING)], name="by_status")
    await coll.create_index([("userId", ASCENDING), ("status", ASCENDING), ("_id", ASCENDING)], name="by_user_status")


def order_filter(*, user_id: str | None = None, status: str | None = None) -> dict[str, Any]:
    """The filter document of an order list: by owner and/or status (both optional)."""
    query: dict[str, Any] = {}
    if user_id is not None:
        query["userId"] = user_id
    if status is not None:
        query["status"] = status
    return query


async def insert_orders(
    db: MongoDatabase, *, orders: list[dict[str, Any]], session: AsyncClientSession
) -> list[ObjectId]:
    """Insert ``orders`` inside ``session``'s transaction (one ``insert_many``); their ``_id`` s in order."""
    result = await db[COLLECTION].insert_many(orders, ordered=True, session=session)
    return list(result.inserted_ids)


async def pending_counts(
    db: MongoDatabase, *, user_ids: list[str], session: AsyncClientSession
) -> dict[str, int]:
    """The pending orders counted for each of ``user_ids`` (absent: 0), read inside ``session``."""
    cursor = db[HOLDS].find({"_id": {"$in": user_ids}}, session=session)
    return {doc["_id"]: int(doc["pending"]) async for doc in cursor}


async def add_pending(db: MongoDatabase, *, added: dict[str, int], session: AsyncClientSession) -> None:
    """Count ``added[user]`` more pending orders per user, inside ``session`` (one ``bulk_write``, upserts).

    Race-safe with :func:`pending_counts` read in the same transaction: two
    transactions that both raise one user's count write the same document,
    so one of them conflicts and is re-run against the other's result.
    """
    if added:
        operations = [UpdateOne({"_id": user}, {"$inc": {"pending": n}}, upsert=True) for user, n in added.items()]
        await db[HOLDS].bulk_write(operations, ordered=True, session=session)


async def release_pending(db: MongoDatabase, *, user_id: str, session: AsyncClientSession) -> None:
    """Count one pending order fewer for ``user_id`` (it was completed, cancelled or expired), inside ``session``."""
    await db[HOLDS].update_one({"_id": user_id, "pending": {"$gt": 0}}, {"$inc": {"pending": -1}}, session=session)


async def pending_count(db: MongoDatabase, *, user_id: str) -> int:
    """The number of pending orders counted for ``user_id`` (0 when none)."""
    doc = await db[HOLDS].find_one({"_id": user_id})
    return int(doc["pending"]) if doc else 0


async def find_expired_ids(db: MongoDatabase, *, older_than: datetime, limit: int) -> list[ObjectId]:
    """Ids of up to ``limit`` pending orders created before ``older_than``, oldest first (index ``pending_by_age``)."""
    cursor = (
        db[COLLECTION]
        .find({"status": "pending", "created_at": {"$lt": older_than}}, {"_id": 1})
        .sort([("created_at", ASCENDING)])
        .limit(limit)
    )
    return [doc["_id"] async for doc in cursor]


async def get_by_id(db: MongoDatabase, *, order_id: ObjectId, session: AsyncClientSession) -> dict[str, Any] | None:
    """The stored order ``order_id`` (no join, any owner), read inside ``session``."""
    return await db[COLLECTION].find_one({"_id": order_id}, session=session)


async def get_order(
    db: MongoDatabase, *, user_id: str, order_id: ObjectId, session: AsyncClientSession | None = None
) -> dict[str, Any] | None:
    """The stored order ``order_id`` of ``user_id`` (no join), or ``None``."""
    return await db[COLLECTION].find_one({"_id": order_id, "userId": user_id}, session=session)


async def set_status(
    db: MongoDatabase,
    *,
    order_id: ObjectId,
    current: str,
    status: str,
    session: AsyncClientSession,
) -> bool:
    """Move an order from ``current`` to ``status`` if it is still ``current``; False otherwise."""
    result = await db[COLLECTION].update_one(
        {"_id": order_id, "status": current},
        {"$set": {"status": status, "updated_at": datetime.now(UTC)}},
        session=session,
    )
    return result.modified_count == 1


def _with_product_details(
    match: dict[str, Any], *, sort: dict[str, int], skip: int, limit: int
) -> list[dict[str, Any]]:
    """Pipeline: up to ``limit`` orders matching ``match`` in ``sort`` order, each line's ``productDetails`` joined.

    ``productDetails`` comes from one ``$lookup`` on ``products`` (brief: no
    N+1 reads); a product that no longer exists falls back to the name and id
    captured at order time. Items are unwound first because the embedded
    server cannot ``$lookup`` on an array ``localField`` (spec §9), then
    regrouped in their original order.
    """
    return [
        {"$match": match},
        {"$sort": sort},
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
                "updated_at": {"$first": "$updated_at"},
                "items": {"$push": "$items"},
            }
        },
        {"$sort": sort},
    ]


async def list_orders(db: MongoDatabase, *, query: dict[str, Any], window: PageWindow) -> list[dict[str, Any]]:
    """Up to ``window.fetch`` orders matching ``query`` (see :func:`order_filter`), lines joined with products."""
    sort = keyset_sort(window)

    async def read(stage: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        cursor = await db[COLLECTION].aggregate(_with_product_details(stage, sort=sort, skip=window.skip, limit=limit))
        return await cursor.to_list(length=limit)

    return await read_window(query, window, read)


async def get_order_with_details(db: MongoDatabase, *, user_id: str, order_id: ObjectId) -> dict[str, Any] | None:
    """The order ``order_id`` of ``user_id`` with each line's ``productDetails`` joined, or ``None``."""
    pipeline = _with_product_details({"_id": order_id, "userId": user_id}, sort={"_id": ASCENDING}, skip=0, limit=1)
    cursor = await db[COLLECTION].aggregate(pipeline)
    rows = await cursor.to_list(length=1)
    return rows[0] if rows else None
