"""MongoDB access for the ``orders`` collection: its indexes, filters and writes, and one order at a time.

Stored documents are :class:`~backend_app.orders.documents.OrderDocument`. The
order history (lists and one order joined with its products) is
``orders.history_repository``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from backend_app.core.db import MongoDatabase
from backend_app.core.types import to_decimal128
from backend_app.orders.documents import OrderDocument

COLLECTION = "orders"
#: One-off conversions already applied to this database (``{_id: name, applied_at}``).
MIGRATIONS = "schema_migrations"


def _orders(db: MongoDatabase) -> AsyncCollection[OrderDocument]:
    """The ``orders`` collection, its documents typed as stored."""
    return cast("AsyncCollection[OrderDocument]", db[COLLECTION])


async def ensure_indexes(db: MongoDatabase) -> None:
    """Create the indexes behind the order lists (idempotent: ``create_index`` of an existing index is a no-op).

    - ``by_user`` ``{userId, _id}``: ``GET /orders/{user_id}`` and a user's ``GET /orders``.
    - ``by_status`` ``{status, _id}``: the admin's ``status`` filter, the dashboard's revenue, and the
      expiry sweep (an ``_id`` holds its creation second, so "pending and older than" is a range on it).
    - ``by_user_status`` ``{userId, status, _id}``: both filters together.
    - ``window_by_id`` ``{_id, status}``: the key windows of the admin's unfiltered ``GET /orders`` (an ``_id``
      range); MongoDB serves those from its ``_id`` index, the embedded server only from a secondary index
      that starts with ``_id`` (docs/architecture.md (Catalog at scale), "Key windows").
    - the ``_id`` index serves the admin's unfiltered ``GET /orders``.

    ``order_holds`` is read and written by ``_id`` only.
    """
    coll = db[COLLECTION]
    await coll.create_index([("userId", ASCENDING), ("_id", ASCENDING)], name="by_user")
    await coll.create_index([("status", ASCENDING), ("_id", ASCENDING)], name="by_status")
    await coll.create_index([("userId", ASCENDING), ("status", ASCENDING), ("_id", ASCENDING)], name="by_user_status")
    await coll.create_index([("_id", ASCENDING), ("status", ASCENDING)], name="window_by_id")


@dataclass(frozen=True, slots=True)
class NewOrderLine:
    """One line of an order being placed, in plain values.

    Attributes:
        product_id: the product's ``_id``.
        name: the product's name at order time.
        size: the size asked for, or ``None``.
        qty: units ordered (>= 1).
        unit_price: the product's price at order time (exact decimal).
        taken: units taken from each size, ``{size: qty}`` (they sum to ``qty``).
    """

    product_id: ObjectId
    name: str
    size: str | None
    qty: int
    unit_price: Decimal
    taken: Mapping[str, int]


def new_order_document(
    *,
    order_id: ObjectId | None = None,
    user_id: str,
    placed_by: str,
    lines: Sequence[NewOrderLine],
    total: Decimal,
    now: datetime,
) -> OrderDocument:
    """The stored form of a new ``pending`` order of ``user_id`` placed by ``placed_by``.

    Money is stored as ``Decimal128``; ``created_at`` and ``updated_at`` are ``now`` (UTC).
    """
    return {
        "_id": order_id or ObjectId(),
        "userId": user_id,
        "placed_by": placed_by,
        "status": "pending",
        "items": [
            {
                "productId": line.product_id,
                "name": line.name,
                "size": line.size,
                "qty": line.qty,
                "unit_price": to_decimal128(line.unit_price),
                "taken": [{"size": size, "qty": qty} for size, qty in line.taken.items()],
            }
            for line in lines
        ],
        "total": to_decimal128(total),
        "created_at": now,
        "updated_at": now,
    }


def order_filter(*, user_id: str | None = None, status: str | None = None) -> dict[str, Any]:
    """The filter document of an order list: by owner and/or status (both optional)."""
    query: dict[str, Any] = {}
    if user_id is not None:
        query["userId"] = user_id
    if status is not None:
        query["status"] = status
    return query


async def insert_orders(
    db: MongoDatabase, *, orders: list[OrderDocument], session: AsyncClientSession
) -> list[ObjectId]:
    """Insert ``orders`` inside ``session``'s transaction (one ``insert_many``); their ``_id`` s in order."""
    result = await _orders(db).insert_many(orders, ordered=True, session=session)
    return list(result.inserted_ids)


async def existing_ids(db: MongoDatabase, *, order_ids: list[ObjectId]) -> set[ObjectId]:
    """Which of ``order_ids`` are stored (one ``find`` on ``_id``, outside any transaction)."""
    return {doc["_id"] async for doc in db[COLLECTION].find({"_id": {"$in": order_ids}}, {"_id": 1})}


async def pending_totals(db: MongoDatabase) -> tuple[dict[tuple[ObjectId, str], int], dict[str, tuple[int, int]]]:
    """What pending orders hold: units per ``(product_id, size)`` and ``(orders, units)`` per owner (two passes)."""
    by_size: dict[tuple[ObjectId, str], int] = {}
    per_size = await db[COLLECTION].aggregate(
        [
            {"$match": {"status": "pending"}},
            {"$unwind": "$items"},
            {"$unwind": "$items.taken"},
            {
                "$group": {
                    "_id": {"p": "$items.productId", "s": "$items.taken.size"},
                    "units": {"$sum": "$items.taken.qty"},
                }
            },
        ]
    )
    async for row in per_size:
        by_size[(row["_id"]["p"], row["_id"]["s"])] = int(row["units"])
    by_owner: dict[str, tuple[int, int]] = {}
    per_owner = await db[COLLECTION].aggregate(
        [
            {"$match": {"status": "pending"}},
            # ``$map``: the embedded server sums an array path (``$sum: "$items.qty"``) to 0.
            {"$project": {"userId": 1, "units": {"$sum": {"$map": {"input": "$items", "as": "i", "in": "$$i.qty"}}}}},
            {"$group": {"_id": "$userId", "orders": {"$sum": 1}, "units": {"$sum": "$units"}}},
        ]
    )
    async for row in per_owner:
        by_owner[row["_id"]] = (int(row["orders"]), int(row["units"]))
    return by_size, by_owner


async def migration_applied(db: MongoDatabase, *, name: str) -> bool:
    """Whether the one-off conversion ``name`` was recorded as applied to this database."""
    return await db[MIGRATIONS].find_one({"_id": name}) is not None


async def record_migration(db: MongoDatabase, *, name: str) -> None:
    """Record the conversion ``name`` as applied (idempotent)."""
    await db[MIGRATIONS].update_one({"_id": name}, {"$setOnInsert": {"applied_at": datetime.now(UTC)}}, upsert=True)


async def find_expired_ids(db: MongoDatabase, *, older_than: datetime, limit: int) -> list[ObjectId]:
    """Ids of up to ``limit`` pending orders created before ``older_than``, oldest first.

    The age is read from the ``_id`` (an ObjectId starts with its creation time in seconds, set by
    the driver when the order is inserted), so the query is one range on index ``by_status``
    ``{status, _id}`` and no extra index is maintained on every order write.
    """
    cursor = (
        db[COLLECTION]
        .find({"status": "pending", "_id": {"$lt": ObjectId.from_datetime(older_than)}}, {"_id": 1})
        .sort([("_id", ASCENDING)])
        .limit(limit)
    )
    return [doc["_id"] async for doc in cursor]


async def get_by_id(
    db: MongoDatabase, *, order_id: ObjectId, session: AsyncClientSession | None
) -> OrderDocument | None:
    """The stored order ``order_id`` (no join, any owner), read inside ``session`` (``None``: outside one)."""
    return await _orders(db).find_one({"_id": order_id}, session=session)


async def get_order(
    db: MongoDatabase, *, user_id: str, order_id: ObjectId, session: AsyncClientSession | None = None
) -> OrderDocument | None:
    """The stored order ``order_id`` of ``user_id`` (no join), or ``None``."""
    return await _orders(db).find_one({"_id": order_id, "userId": user_id}, session=session)


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
