"""The catalog's indexes, created at start-up, and the backfills that bring older catalogs up to date."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.errors import OperationFailure

from backend_app.core.db import MongoDatabase
from backend_app.core.types import from_bson_money
from backend_app.products.catalog_meta import CATALOG_META_COLLECTION, CATALOG_META_ID, EXTENT_KEYS, record_extent
from backend_app.products.repository import COLLECTION, PRICE_KEY, to_cents

#: ``(name, keys)`` of every catalog index. ``deleted_at`` leads (every query
#: reads live products), the sort key follows, ``_id`` breaks ties, so each
#: list query and each keyset stage is one equality prefix plus one range.
INDEXES: list[tuple[str, list[tuple[str, int]]]] = [
    ("live_by_id", [("deleted_at", ASCENDING), ("_id", ASCENDING)]),
    ("live_by_price", [("deleted_at", ASCENDING), (PRICE_KEY, ASCENDING), ("_id", ASCENDING)]),
    ("live_by_created", [("deleted_at", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)]),
    ("live_by_category", [("deleted_at", ASCENDING), ("category", ASCENDING), ("_id", ASCENDING)]),
    (
        "live_by_category_price",
        [("deleted_at", ASCENDING), ("category", ASCENDING), (PRICE_KEY, ASCENDING), ("_id", ASCENDING)],
    ),
    ("live_by_size", [("deleted_at", ASCENDING), ("sizes.size", ASCENDING), ("_id", ASCENDING)]),
    ("live_by_name", [("deleted_at", ASCENDING), ("name", ASCENDING)]),
    ("window_by_id", [("_id", ASCENDING), ("deleted_at", ASCENDING)]),
]


async def ensure_indexes(db: MongoDatabase) -> None:
    """Create the indexes behind every catalog query (idempotent).

    - ``live_by_id``: the default listing and ``_id`` cursors.
    - ``live_by_price`` / ``live_by_created``: ``sort=price|created_at`` (either
      direction) and the ``min_price``/``max_price`` range.
    - ``live_by_category`` / ``live_by_category_price``: ``category``, alone or
      with a price sort or range.
    - ``live_by_size``: the ``size`` filter.
    - ``live_by_name``: the ``name`` regex scans this index's keys, not documents
      (an unanchored, case-insensitive regex has no tighter bounds).
    - ``window_by_id``: an ``_id`` window with a second range or a regex beside
      it (``name``, a price range under ``sort=_id``): the embedded server plans
      only one range per compound index and then serves the first clause that
      leads an index (``core.key_windows.key_windows`` puts the window first).
    - ``sku_unique``: ``sku`` unique among the products that have one (partial
      index on string ``sku``s), and the ``--upsert`` lookup by ``sku``.

    An index whose keys changed since an older release (``live_by_price`` was on
    ``price`` before ``price_cents``) is dropped and created again. Then
    :func:`backfill_price_cents` and :func:`backfill_extent` run (idempotent).
    """
    coll = db[COLLECTION]
    wanted: list[tuple[str, list[tuple[str, int]], dict[str, Any]]] = [(name, keys, {}) for name, keys in INDEXES]
    wanted.append(("sku_unique", [("sku", ASCENDING)], {"unique": True, "partialFilterExpression": SKU_PRESENT}))
    for name, keys, options in wanted:
        try:
            await coll.create_index(keys, name=name, **options)
        except OperationFailure as exc:
            if exc.code not in INDEX_CONFLICT_CODES:
                raise
            await coll.drop_index(name)
            await coll.create_index(keys, name=name, **options)
    await backfill_price_cents(db)
    await backfill_extent(db)


#: ``IndexOptionsConflict``, ``IndexKeySpecsConflict``: an index of that name exists with other keys/options.
INDEX_CONFLICT_CODES = (85, 86)
#: Products covered by the ``sku`` unique index: those whose ``sku`` is a string.
SKU_PRESENT = {"sku": {"$type": "string"}}


async def backfill_price_cents(db: MongoDatabase) -> int:
    """Give every product lacking ``price_cents`` the value of its ``price`` (idempotent); returns how many.

    For catalogs written before ``price_cents`` existed. One pass over the
    products missing the field (none after the first run), written with one
    unordered ``bulk_write``; ``price_cents`` is computed from ``price`` in
    Python (exact ``Decimal``), never with floating point.
    """
    coll = db[COLLECTION]
    updates = [
        UpdateOne(
            {"_id": doc["_id"], "price": doc["price"]}, {"$set": {PRICE_KEY: to_cents(from_bson_money(doc["price"]))}}
        )
        async for doc in coll.find({PRICE_KEY: {"$exists": False}}, {"price": 1})
        if doc.get("price") is not None
    ]
    if updates:
        await coll.bulk_write(updates, ordered=False)
    return len(updates)


async def backfill_extent(db: MongoDatabase) -> bool:
    """Record the extent of a catalog written before extents existed (one ``$group`` pass, start-up only).

    Returns:
        Whether anything was recorded (False: already recorded, or no product).
    """
    meta = await db[CATALOG_META_COLLECTION].find_one({"_id": CATALOG_META_ID})
    if meta is not None and all(
        meta.get(end, {}).get(k) is not None for end in ("oldest", "newest") for k in EXTENT_KEYS
    ):
        return False
    group: dict[str, Any] = {"_id": None}
    for key in EXTENT_KEYS:
        group[f"lo_{key}"] = {"$min": f"${key}"}
        group[f"hi_{key}"] = {"$max": f"${key}"}
    found = await (await db[COLLECTION].aggregate([{"$group": group}])).to_list()
    if not found:
        return False
    await record_extent(
        db, [{k: found[0][f"lo_{k}"] for k in EXTENT_KEYS}, {k: found[0][f"hi_{k}"] for k in EXTENT_KEYS}]
    )
    return True
