"""MongoDB access for the ``products`` collection: the only place that builds its filters.

Document shape::

    {_id: ObjectId, name: str, price: Decimal128, description, category, rating,
     sizes: [{size: str, quantity: int}], created_at, updated_at,
     deleted_at: datetime | null}

``deleted_at`` is the soft-delete marker (spec §4); live products have ``null``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession

from backend_app.core.db import MongoDatabase
from backend_app.core.types import to_decimal128
from backend_app.products.schemas import ProductCreate

COLLECTION = "products"

#: Projection of list rows: never the sizes (brief: list items carry no ``sizes``).
LIST_PROJECTION = {"name": 1, "price": 1, "category": 1}


@dataclass(frozen=True, slots=True)
class ProductFilter:
    """Filters of ``GET /products``.

    Attributes:
        name_pattern: a validated regular expression matched case-insensitively
            anywhere in ``name`` (brief: partial or regex).
        size: products having this size (exact match).
    """

    name_pattern: str | None = None
    size: str | None = None

    def to_query(self) -> dict[str, Any]:
        """The MongoDB filter document for these filters (live products only)."""
        query: dict[str, Any] = {"deleted_at": None}
        if self.name_pattern is not None:
            query["name"] = {"$regex": self.name_pattern, "$options": "i"}
        if self.size is not None:
            query["sizes.size"] = self.size
        return query


def _collection(db: MongoDatabase):  # noqa: ANN202 - AsyncCollection generic is noisy
    return db[COLLECTION]


async def ensure_indexes(db: MongoDatabase) -> None:
    """Create the indexes behind every catalog query (idempotent; spec §4).

    - ``{deleted_at, _id}``: the default listing, ``_id`` order.
    - ``{deleted_at, sizes.size, _id}``: the ``size`` filter.
    - ``{deleted_at, name}``: the ``name`` filter scans this index, not documents.
    """
    coll = _collection(db)
    await coll.create_index([("deleted_at", ASCENDING), ("_id", ASCENDING)], name="live_by_id")
    await coll.create_index(
        [("deleted_at", ASCENDING), ("sizes.size", ASCENDING), ("_id", ASCENDING)], name="live_by_size"
    )
    await coll.create_index([("deleted_at", ASCENDING), ("name", ASCENDING)], name="live_by_name")


async def insert_product(db: MongoDatabase, *, product: ProductCreate) -> ObjectId:
    """Insert a new product and return its ``_id``."""
    now = datetime.now(UTC)
    doc = {
        "name": product.name,
        "price": to_decimal128(product.price),
        "description": product.description,
        "category": product.category,
        "rating": product.rating,
        "sizes": [s.model_dump() for s in product.sizes],
        "created_at": now,
        "updated_at": now,
        "deleted_at": None,
    }
    result = await _collection(db).insert_one(doc)
    return result.inserted_id


async def list_products(
    db: MongoDatabase, *, filters: ProductFilter, skip: int, limit: int, max_time_ms: int
) -> list[dict[str, Any]]:
    """Return up to ``limit`` live products matching ``filters``, ascending ``_id``, after ``skip``.

    Raises:
        pymongo.errors.ExecutionTimeout: the query exceeded ``max_time_ms`` ms.
    """
    cursor = (
        _collection(db)
        .find(filters.to_query(), LIST_PROJECTION)
        .sort("_id", ASCENDING)
        .skip(skip)
        .limit(limit)
        .max_time_ms(max_time_ms)
    )
    return await cursor.to_list(length=limit)


async def get_live_product(db: MongoDatabase, *, product_id: ObjectId) -> dict[str, Any] | None:
    """The live (not soft-deleted) product with ``product_id``, or ``None``."""
    return await _collection(db).find_one({"_id": product_id, "deleted_at": None})


async def find_live_by_ids(
    db: MongoDatabase, *, product_ids: list[ObjectId], session: AsyncClientSession | None = None
) -> dict[ObjectId, dict[str, Any]]:
    """Live products among ``product_ids``, keyed by ``_id`` (read inside ``session`` if given)."""
    cursor = _collection(db).find(
        {"_id": {"$in": product_ids}, "deleted_at": None},
        {"name": 1, "price": 1, "sizes": 1},
        session=session,
    )
    return {doc["_id"]: doc async for doc in cursor}


async def take_stock(
    db: MongoDatabase, *, product_id: ObjectId, takes: dict[str, int], session: AsyncClientSession
) -> bool:
    """Decrement the given sizes of one live product, only if each still has enough.

    One conditional ``update_one``: the filter requires every size in ``takes``
    to hold at least the quantity taken, so stock can never go negative even
    without the surrounding transaction. Sizes are addressed with
    ``arrayFilters`` (spec §9: the embedded server lacks positional ``$`` with
    ``$elemMatch``).

    Args:
        takes: ``{size: units}`` to subtract, units > 0.
        session: the order's transaction.

    Returns:
        True when the product was updated, False when a size ran short.
    """
    conditions = [{"sizes": {"$elemMatch": {"size": size, "quantity": {"$gte": qty}}}} for size, qty in takes.items()]
    increments = {f"sizes.$[s{i}].quantity": -qty for i, qty in enumerate(takes.values())}
    array_filters = [{f"s{i}.size": size} for i, size in enumerate(takes)]
    result = await _collection(db).update_one(
        {"_id": product_id, "deleted_at": None, "$and": conditions},
        {"$inc": increments, "$set": {"updated_at": datetime.now(UTC)}},
        array_filters=array_filters,
        session=session,
    )
    return result.modified_count == 1


# --- Catalog version (read and bumped by products.cache) ------------------------------------------
#
# One document ``{_id: "catalog", version: int, epoch: ObjectId}`` in ``catalog_meta``. ``version``
# is incremented after every catalog write; ``epoch`` is set when the document is first created, so
# a dropped and re-created database never repeats a token that an older cache entry was stored under.

CATALOG_META_COLLECTION = "catalog_meta"
CATALOG_META_ID = "catalog"
#: Version token of a catalog that has never been written through the API.
INITIAL_CATALOG_VERSION = "0"


async def get_catalog_version(db: MongoDatabase) -> str:
    """The catalog's current version token, ``"<epoch>:<version>"``: one point read by ``_id``.

    Returns:
        :data:`INITIAL_CATALOG_VERSION` while no catalog write has been recorded.
    """
    doc = await db[CATALOG_META_COLLECTION].find_one({"_id": CATALOG_META_ID})
    if doc is None:
        return INITIAL_CATALOG_VERSION
    return f"{doc['epoch']}:{doc['version']}"


async def bump_catalog_version(db: MongoDatabase) -> None:
    """Atomically increment the catalog version: one ``$inc`` ``update_one``, upserting the document.

    Concurrent first bumps are safe: MongoDB (≥ 4.2) retries an upsert that
    loses an ``_id`` race itself, and the embedded server serialises them
    (16 concurrent first bumps always yield ``version`` 16).
    """
    await db[CATALOG_META_COLLECTION].update_one(
        {"_id": CATALOG_META_ID}, {"$inc": {"version": 1}, "$setOnInsert": {"epoch": ObjectId()}}, upsert=True
    )
