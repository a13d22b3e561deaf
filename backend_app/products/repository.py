"""MongoDB access for the ``products`` collection: the only place that builds its filters.

Document shape::

    {_id: ObjectId, name: str, price: Decimal128, price_cents: int64, sku: str | null,
     description, category, rating, sizes: [{size: str, quantity: int}], created_at,
     updated_at, deleted_at: datetime | null}

``deleted_at`` is the soft-delete marker (spec §4); live products have ``null``.
``price`` is the exact amount every reader uses (``core.types.from_bson_money``);
``price_cents`` is the same amount in integer minor units, kept beside it by every
write path here (and backfilled at start-up) only to filter and sort by price:
the embedded server sorts int64 about 12x faster than ``Decimal128``
(docs/catalog-at-scale.md). ``sku`` is unique when present (partial unique index).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bson import Int64, ObjectId
from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, OperationFailure

from backend_app.core.db import MongoDatabase
from backend_app.core.pagination import PageWindow, keyset_sort, merge_filters, read_window
from backend_app.core.types import CENT, to_decimal128
from backend_app.products.schemas import ProductCreate, ProductUpdate, SizeStock

COLLECTION = "products"

#: Projection of list rows: never the sizes (brief: list items carry no ``sizes``);
#: ``created_at`` is read for the cursors of ``sort=created_at``.
LIST_PROJECTION = {"name": 1, "price": 1, "price_cents": 1, "category": 1, "created_at": 1}
#: The stored field ``sort=price`` and the price filters use (integer cents).
PRICE_KEY = "price_cents"
#: MongoDB's duplicate-key error code (the ``sku`` unique index).
DUPLICATE_KEY = 11000


def to_cents(amount: Decimal) -> Int64:
    """``amount`` (currency units, at most 2 decimals) as integer cents, BSON int64."""
    return Int64(int(amount.quantize(CENT) * 100))


@dataclass(frozen=True, slots=True)
class ProductFilter:
    """Filters of ``GET /products`` (spec §1, §4).

    Attributes:
        name_pattern: a validated regular expression matched case-insensitively
            anywhere in ``name`` (brief: partial or regex).
        size: products having this size (exact match).
        category: products of this category (exact match).
        min_price: price ≥ this, in currency units.
        max_price: price ≤ this, in currency units.
    """

    name_pattern: str | None = None
    size: str | None = None
    category: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None

    def to_query(self) -> dict[str, Any]:
        """The MongoDB filter document for these filters (live products only).

        A flat AND of one condition per field, so each filter the indexes are
        meant to serve is a plain equality or range (see :func:`ensure_indexes`).
        """
        query: dict[str, Any] = {"deleted_at": None}
        if self.category is not None:
            query["category"] = self.category
        if self.size is not None:
            query["sizes.size"] = self.size
        price: dict[str, Any] = {}
        if self.min_price is not None:
            price["$gte"] = to_cents(self.min_price)
        if self.max_price is not None:
            # price ≤ max as cents < max + 1 cent (prices have at most 2 decimals, spec §4): the
            # embedded server's compound-index range drops rows equal to a ``$lte`` bound
            # when more index fields follow (seen on SecantusDB 0.7.0b3); ``$lt`` is exact.
            price["$lt"] = to_cents(self.max_price + CENT)
        if price:
            query[PRICE_KEY] = price
        if self.name_pattern is not None:
            query["name"] = {"$regex": self.name_pattern, "$options": "i"}
        return query

    def fingerprint_fields(self) -> dict[str, Any]:
        """The filter values that a cursor is bound to (spec §2)."""
        return asdict(self)


def _collection(db: MongoDatabase):  # noqa: ANN202 - AsyncCollection generic is noisy
    return db[COLLECTION]


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
]


async def ensure_indexes(db: MongoDatabase) -> None:
    """Create the indexes behind every catalog query (idempotent; spec §4).

    - ``live_by_id``: the default listing and ``_id`` cursors.
    - ``live_by_price`` / ``live_by_created``: ``sort=price|created_at`` (either
      direction) and the ``min_price``/``max_price`` range.
    - ``live_by_category`` / ``live_by_category_price``: ``category``, alone or
      with a price sort or range.
    - ``live_by_size``: the ``size`` filter.
    - ``live_by_name``: the ``name`` regex scans this index's keys, not documents
      (an unanchored, case-insensitive regex has no tighter bounds).
    - ``sku_unique``: ``sku`` unique among the products that have one (partial
      index on string ``sku``s), and the ``--upsert`` lookup by ``sku``.

    An index whose keys changed since an older release (``live_by_price`` was on
    ``price`` before ``price_cents``) is dropped and created again. Then
    :func:`backfill_price_cents` runs (idempotent).
    """
    coll = _collection(db)
    wanted = [(name, keys, {}) for name, keys in INDEXES]
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
    from backend_app.core.types import from_bson_money

    coll = _collection(db)
    updates = [
        UpdateOne({"_id": doc["_id"], "price": doc["price"]}, {"$set": {PRICE_KEY: to_cents(from_bson_money(doc["price"]))}})
        async for doc in coll.find({PRICE_KEY: {"$exists": False}}, {"price": 1})
        if doc.get("price") is not None
    ]
    if updates:
        await coll.bulk_write(updates, ordered=False)
    return len(updates)


def _sizes(sizes: list[SizeStock]) -> list[dict[str, Any]]:
    return [s.model_dump() for s in sizes]


def _content(product: ProductCreate) -> dict[str, Any]:
    return {
        "name": product.name,
        "price": to_decimal128(product.price),
        PRICE_KEY: to_cents(product.price),
        "sku": product.sku,
        "description": product.description,
        "category": product.category,
        "rating": product.rating,
        "sizes": _sizes(product.sizes),
    }


def new_product_document(product: ProductCreate, *, now: datetime) -> dict[str, Any]:
    """The document a new live ``product`` is stored as (see the module docstring), created at ``now``."""
    return {**_content(product), "created_at": now, "updated_at": now, "deleted_at": None}


async def insert_product(db: MongoDatabase, *, product: ProductCreate) -> ObjectId:
    """Insert a new product and return its ``_id``."""
    result = await _collection(db).insert_one(new_product_document(product, now=datetime.now(UTC)))
    return result.inserted_id


async def replace_product(db: MongoDatabase, *, product_id: ObjectId, product: ProductCreate) -> dict[str, Any] | None:
    """Replace every editable field of a live product (``PUT``); returns the new document or ``None``.

    ``created_at`` and the soft-delete marker are kept.
    """
    return await _collection(db).find_one_and_update(
        {"_id": product_id, "deleted_at": None},
        {"$set": {**_content(product), "updated_at": datetime.now(UTC)}},
        return_document=ReturnDocument.AFTER,
    )


async def update_product(db: MongoDatabase, *, product_id: ObjectId, changes: ProductUpdate) -> dict[str, Any] | None:
    """Set the fields given in ``changes`` on a live product (``PATCH``); returns the new document or ``None``."""
    values: dict[str, Any] = {"updated_at": datetime.now(UTC)}
    for field, value in changes.changes().items():
        if field == "price":
            values[PRICE_KEY] = to_cents(value)
            value = to_decimal128(value)
        elif field == "sizes":
            value = _sizes(value)
        values[field] = value
    return await _collection(db).find_one_and_update(
        {"_id": product_id, "deleted_at": None}, {"$set": values}, return_document=ReturnDocument.AFTER
    )


async def soft_delete_product(db: MongoDatabase, *, product_id: ObjectId) -> bool:
    """Mark a live product deleted (``deleted_at`` = now); False when it was not live."""
    now = datetime.now(UTC)
    result = await _collection(db).update_one(
        {"_id": product_id, "deleted_at": None}, {"$set": {"deleted_at": now, "updated_at": now}}
    )
    return result.modified_count == 1


async def set_size_quantity(
    db: MongoDatabase, *, product_id: ObjectId, size: str, quantity: int
) -> dict[str, Any] | None:
    """Set the stock of one existing size of a live product; returns the new document or ``None``.

    ``None`` when the product is not live or has no such size. The size is
    addressed with ``arrayFilters`` (spec §9).
    """
    return await _collection(db).find_one_and_update(
        {"_id": product_id, "deleted_at": None, "sizes.size": size},
        {"$set": {"sizes.$[s].quantity": quantity, "updated_at": datetime.now(UTC)}},
        array_filters=[{"s.size": size}],
        return_document=ReturnDocument.AFTER,
    )


#: Price windows of a price-ordered list (integer cents): the first is this wide, each next one
#: :data:`PRICE_WINDOW_GROWTH` times wider (docs/catalog-at-scale.md, "price windows").
PRICE_WINDOW_FIRST_CENTS = 1_000
PRICE_WINDOW_GROWTH = 8
#: Valid prices in cents, ``[1, 100,000,000]`` (spec §4: > 0, ≤ 1,000,000): windows walk this span.
PRICE_CENTS_MIN = 1
PRICE_CENTS_END = 100_000_001


def _price_bounds(condition: Any) -> tuple[int | None, int | None]:
    """``(low, high)`` of a ``price_cents`` condition: the tightest lower and upper bound values given."""
    if not isinstance(condition, dict):
        return None, None
    lows = [int(condition[op]) for op in ("$gt", "$gte") if op in condition]
    highs = [int(condition[op]) for op in ("$lt", "$lte") if op in condition]
    return (max(lows) if lows else None), (min(highs) if highs else None)


def price_windows(stage: dict[str, Any], direction: int) -> Iterator[dict[str, Any]]:
    """The filters to run, in order, for one price-ordered keyset stage: ``stage`` cut into price windows.

    Why: the embedded server materialises and sorts *every* document a query's
    index range selects before applying the limit (SecantusDB 0.7.0b3,
    ``Storage.find_matching``); an unbounded ``sort=price`` reads and sorts the
    whole catalog. A window ``price_cents ∈ [a, b)`` makes the index range
    small, so each query reads about the rows of one window. Windows start at
    the stage's own bound (or the valid price range's end), are
    :data:`PRICE_WINDOW_FIRST_CENTS` wide and grow :data:`PRICE_WINDOW_GROWTH`
    times per step, so a page needs a handful of windows whatever the price
    spread. They partition the stage and are yielded in scan order, so their
    rows, each sorted by ``(price_cents, _id)``, concatenate into the stage's
    order. The last window is open-ended (the stage's own bound), so a price
    outside the valid range (written behind the API) is still listed, and
    before the first window an open window beyond the valid range's end
    catches the same. On MongoDB each window is one index range seek on
    ``live_by_price`` / ``live_by_category_price``.

    Args:
        stage: a keyset stage (``core.pagination.keyset_stages``) whose
            ``price_cents`` condition is not an equality.
        direction: ``1`` ascending, ``-1`` descending (the scan direction).
    """
    low, high = _price_bounds(stage.get(PRICE_KEY))
    span = PRICE_WINDOW_FIRST_CENTS
    if direction == 1:
        if low is None:
            yield merge_filters(stage, {PRICE_KEY: {"$lt": PRICE_CENTS_MIN}})
        edge, first = (low if low is not None else PRICE_CENTS_MIN), low is not None
        while True:
            upper = edge + span
            if upper >= PRICE_CENTS_END or (high is not None and upper >= high):
                yield stage if first else merge_filters(stage, {PRICE_KEY: {"$gte": Int64(edge)}})
                return
            bounds = {"$lt": Int64(upper)} if first else {"$gte": Int64(edge), "$lt": Int64(upper)}
            yield merge_filters(stage, {PRICE_KEY: bounds})
            edge, span, first = upper, span * PRICE_WINDOW_GROWTH, False
    if high is None:
        yield merge_filters(stage, {PRICE_KEY: {"$gte": PRICE_CENTS_END}})
    edge, first = (high if high is not None else PRICE_CENTS_END), high is not None
    while True:
        lower = edge - span
        if lower <= PRICE_CENTS_MIN or (low is not None and lower <= low):
            yield stage if first else merge_filters(stage, {PRICE_KEY: {"$lt": Int64(edge)}})
            return
        bounds = {"$gte": Int64(lower)} if first else {"$gte": Int64(lower), "$lt": Int64(edge)}
        yield merge_filters(stage, {PRICE_KEY: bounds})
        edge, span, first = lower, span * PRICE_WINDOW_GROWTH, False


async def list_products(db: MongoDatabase, *, filters: ProductFilter, window: PageWindow) -> list[dict[str, Any]]:
    """Up to ``window.fetch`` live products matching ``filters``, in the window's order and position.

    Each keyset stage is one ``find`` with ``sort`` and ``limit``; a
    price-ordered stage without an offset is read window by window
    (:func:`price_windows`) until the page is full. The caller bounds the
    whole read with a deadline (``core.db.query_deadline``).
    """
    coll = _collection(db)
    sort = list(keyset_sort(window).items())
    by_price = window.sort.field == PRICE_KEY and window.skip == 0

    async def read(stage: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        pieces = (
            price_windows(stage, window.scan_direction)
            if by_price and (PRICE_KEY not in stage or isinstance(stage[PRICE_KEY], dict))
            else iter([stage])
        )
        rows: list[dict[str, Any]] = []
        for piece in pieces:
            need = limit - len(rows)
            cursor = coll.find(piece, LIST_PROJECTION).sort(sort).skip(window.skip).limit(need)
            rows.extend(await cursor.to_list(length=need))
            if len(rows) >= limit:
                break
        return rows

    return await read_window(filters.to_query(), window, read)


async def insert_products(db: MongoDatabase, *, documents: list[dict[str, Any]]) -> dict[int, str]:
    """``insert_many(ordered=False)`` of new product documents (each with its ``_id`` set by the caller).

    Every document the server accepts is stored even when others are refused.

    Returns:
        ``{position in documents: reason}`` of the refused ones (only a ``sku``
        already taken, the one error a valid document can meet).

    Raises:
        pymongo.errors.BulkWriteError: any other write error (nothing is hidden).
    """
    if not documents:
        return {}
    try:
        await _collection(db).insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(err.get("code") != DUPLICATE_KEY for err in errors):
            raise
        return {err["index"]: "sku already belongs to another product" for err in errors}
    return {}


async def upsert_products_by_sku(
    db: MongoDatabase, *, products: list[ProductCreate], now: datetime
) -> tuple[dict[int, ObjectId], dict[int, ObjectId], dict[int, str]]:
    """Create or update products by ``sku`` (each must have one): one unordered ``bulk_write`` of upserts.

    A live product with the ``sku`` gets every field of the new content
    (``created_at`` kept, as ``PUT``); otherwise a product is created. A
    ``sku`` held by a soft-deleted product is refused (the unique index).

    Returns:
        ``(created, updated, refused)``: ``{position: _id}``, ``{position: _id}``,
        ``{position: reason}``.
    """
    if not products:
        return {}, {}, {}
    coll = _collection(db)
    requests = [
        UpdateOne(
            {"sku": product.sku, "deleted_at": None},
            {"$set": {**_content(product), "updated_at": now}, "$setOnInsert": {"_id": ObjectId(), "created_at": now}},
            upsert=True,
        )
        for product in products
    ]
    refused: dict[int, str] = {}
    try:
        result = await coll.bulk_write(requests, ordered=False)
        upserted = dict(result.upserted_ids)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(err.get("code") != DUPLICATE_KEY for err in errors):
            raise
        refused = {err["index"]: "sku belongs to a deleted product" for err in errors}
        upserted = {item["index"]: item["_id"] for item in exc.details.get("upserted", [])}
    matched = [i for i in range(len(products)) if i not in upserted and i not in refused]
    ids = {
        doc["sku"]: doc["_id"]
        async for doc in coll.find(
            {"sku": {"$in": [products[i].sku for i in matched]}, "deleted_at": None}, {"sku": 1}
        )
    }
    updated = {i: ids[products[i].sku] for i in matched if products[i].sku in ids}
    return upserted, updated, refused


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
    # One ``$all`` of ``$elemMatch`` (every size must have enough) rather than a top-level
    # ``$and``: the embedded server plans any top-level ``$`` operator as a collection scan
    # (178 ms vs 3 ms per update on a 20,000-product catalog, measured).
    conditions = [{"$elemMatch": {"size": size, "quantity": {"$gte": qty}}} for size, qty in takes.items()]
    increments = {f"sizes.$[s{i}].quantity": -qty for i, qty in enumerate(takes.values())}
    array_filters = [{f"s{i}.size": size} for i, size in enumerate(takes)]
    result = await _collection(db).update_one(
        {"_id": product_id, "deleted_at": None, "sizes": {"$all": conditions}},
        {"$inc": increments, "$set": {"updated_at": datetime.now(UTC)}},
        array_filters=array_filters,
        session=session,
    )
    return result.modified_count == 1


async def return_stock(
    db: MongoDatabase, *, product_id: ObjectId, returns: dict[str, int], session: AsyncClientSession
) -> None:
    """Add ``returns`` (``{size: units}``) back to a product's sizes, inside ``session``'s transaction.

    Used when an order is cancelled (spec §5). Soft-deleted products get their
    stock back too (a later restore sees it); a size removed since the order
    was placed is skipped (its ``arrayFilters`` entry matches nothing).
    """
    increments = {f"sizes.$[s{i}].quantity": qty for i, qty in enumerate(returns.values())}
    array_filters = [{f"s{i}.size": size} for i, size in enumerate(returns)]
    await _collection(db).update_one(
        {"_id": product_id},
        {"$inc": increments, "$set": {"updated_at": datetime.now(UTC)}},
        array_filters=array_filters,
        session=session,
    )


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
