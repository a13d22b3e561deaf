"""MongoDB access for the ``products`` collection: the only place that builds its filters.

Stored documents are :class:`~backend_app.products.documents.ProductDocument`
(what each size's numbers, ``price_cents`` and ``deleted_at`` mean is told there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, cast

from bson import Int64, ObjectId
from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from backend_app.core.db import MongoDatabase
from backend_app.core.key_windows import CREATED_AT_AXIS, ID_AXIS, KeyAxis, WindowReader
from backend_app.core.keyset import keyset_sort, read_window
from backend_app.core.pagination import PageWindow, Row
from backend_app.core.types import CENT, to_decimal128
from backend_app.products import catalog_meta
from backend_app.products.catalog_meta import record_extent
from backend_app.products.documents import (
    NewProductDocument,
    OrderableProduct,
    ProductContent,
    ProductDocument,
    ProductListRow,
    StoredSize,
)
from backend_app.products.schemas import ProductCreate, ProductUpdate, SizeStock

COLLECTION = "products"

#: Projection of list rows: never the sizes (brief: list items carry no ``sizes``);
#: ``created_at`` is read for the cursors of ``sort=created_at``.
LIST_PROJECTION = {"name": 1, "price": 1, "price_cents": 1, "category": 1, "created_at": 1}
#: The stored field ``sort=price`` and the price filters use (integer cents).
PRICE_KEY: Final = catalog_meta.PRICE_KEY


def to_cents(amount: Decimal) -> Int64:
    """``amount`` (currency units, at most 2 decimals) as integer cents, BSON int64."""
    return Int64(int(amount.quantize(CENT) * 100))


@dataclass(frozen=True, slots=True)
class ProductFilter:
    """Filters of ``GET /products``.

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
            # price ≤ max as cents < max + 1 cent (prices have at most 2 decimals): the
            # embedded server's compound-index range drops rows equal to a ``$lte`` bound
            # when more index fields follow (seen on SecantusDB 0.7.0b3); ``$lt`` is exact.
            price["$lt"] = to_cents(self.max_price + CENT)
        if price:
            query[PRICE_KEY] = price
        if self.name_pattern is not None:
            query["name"] = {"$regex": self.name_pattern, "$options": "i"}
        return query

    def fingerprint_fields(self) -> dict[str, Any]:
        """The filter values that a cursor is bound to."""
        return asdict(self)


def _collection(db: MongoDatabase) -> AsyncCollection[ProductDocument]:
    """The ``products`` collection, its documents typed as stored."""
    return cast("AsyncCollection[ProductDocument]", db[COLLECTION])


def _projected(db: MongoDatabase, row: type[Row]) -> AsyncCollection[Row]:
    """The ``products`` collection as read with a projection, its documents typed as ``row``."""
    return cast("AsyncCollection[Row]", db[COLLECTION])


def stored_size(size: str, *, quantity: int, allocated: int = 0) -> StoredSize:
    """A size as stored: ``{size, quantity, allocated, available}`` (``available = quantity − allocated``)."""
    return {"size": size, "quantity": quantity, "allocated": allocated, "available": quantity - allocated}


def _new_sizes(sizes: list[SizeStock]) -> list[StoredSize]:
    """The stored sizes of a product no order has allocated from yet."""
    return [stored_size(s.size, quantity=s.quantity) for s in sizes]


def _content(product: ProductCreate, *, sizes: list[StoredSize] | None = None) -> ProductContent:
    """The stored content fields of ``product``; ``sizes`` are the stored sizes (default: nothing allocated)."""
    return {
        "name": product.name,
        "price": to_decimal128(product.price),
        PRICE_KEY: to_cents(product.price),
        "sku": product.sku,
        "description": product.description,
        "category": product.category,
        "rating": product.rating,
        "sizes": sizes if sizes is not None else _new_sizes(product.sizes),
    }


def new_product_document(product: ProductCreate, *, now: datetime) -> NewProductDocument:
    """The document a new live ``product`` is stored as, created at ``now`` (``_id`` not set yet)."""
    return {**_content(product), "created_at": now, "updated_at": now, "deleted_at": None}


async def insert_product(
    db: MongoDatabase, *, product: ProductCreate, session: AsyncClientSession | None = None
) -> ObjectId:
    """Insert a new product (inside ``session`` if given) and return its ``_id``.

    The catalog extent (:func:`record_extent`) is widened outside ``session``:
    it only steers list speed, and keeping it out of the transaction keeps
    concurrent product creations from conflicting on the one meta document.
    """
    # The ``_id`` the driver would assign, set here so the document is whole from the start.
    document: ProductDocument = {"_id": ObjectId(), **new_product_document(product, now=datetime.now(UTC))}
    result = await _collection(db).insert_one(document, session=session)
    await record_extent(db, [document])
    return result.inserted_id


async def replace_product(
    db: MongoDatabase,
    *,
    product_id: ObjectId,
    product: ProductCreate,
    sizes: list[StoredSize],
    session: AsyncClientSession | None = None,
) -> ProductDocument | None:
    """Replace every editable field of a live product (``PUT``) with stored ``sizes``; the new document or ``None``.

    ``created_at`` and the soft-delete marker are kept.
    """
    return await _collection(db).find_one_and_update(
        {"_id": product_id, "deleted_at": None},
        {"$set": {**_content(product, sizes=sizes), "updated_at": datetime.now(UTC)}},
        return_document=ReturnDocument.AFTER,
        session=session,
    )


async def update_product(
    db: MongoDatabase,
    *,
    product_id: ObjectId,
    changes: ProductUpdate,
    sizes: list[StoredSize] | None = None,
    session: AsyncClientSession | None = None,
) -> ProductDocument | None:
    """Set the fields given in ``changes`` on a live product (``PATCH``); returns the new document or ``None``.

    ``sizes``: the stored sizes to write when ``changes`` sends ``sizes``.
    """
    values: dict[str, Any] = {"updated_at": datetime.now(UTC)}
    for field, value in changes.changes().items():
        if field == "price":
            values[PRICE_KEY] = to_cents(value)
            value = to_decimal128(value)
        elif field == "sizes":
            value = sizes if sizes is not None else _new_sizes(value)
        values[field] = value
    return await _collection(db).find_one_and_update(
        {"_id": product_id, "deleted_at": None}, {"$set": values}, return_document=ReturnDocument.AFTER, session=session
    )


async def soft_delete_product(
    db: MongoDatabase, *, product_id: ObjectId, session: AsyncClientSession | None = None
) -> bool:
    """Mark a live product deleted (``deleted_at`` = now); False when it was not live."""
    now = datetime.now(UTC)
    result = await _collection(db).update_one(
        {"_id": product_id, "deleted_at": None}, {"$set": {"deleted_at": now, "updated_at": now}}, session=session
    )
    return result.modified_count == 1


async def set_size_quantity(
    db: MongoDatabase,
    *,
    product_id: ObjectId,
    size: StoredSize,
    session: AsyncClientSession | None = None,
) -> ProductDocument | None:
    """Store ``size`` (a stored size) over the existing size of that name of a live product; the new document or ``None``.

    ``None`` when the product is not live or has no such size. The size is
    addressed with ``arrayFilters`` (the embedded server has no positional ``$``
    together with ``$elemMatch``).
    """
    fields = {f"sizes.$[s].{key}": value for key, value in size.items() if key != "size"}
    return await _collection(db).find_one_and_update(
        {"_id": product_id, "deleted_at": None, "sizes.size": size["size"]},
        {"$set": {**fields, "updated_at": datetime.now(UTC)}},
        array_filters=[{"s.size": size["size"]}],
        return_document=ReturnDocument.AFTER,
        session=session,
    )


# --- Key windows: how list queries stay index-narrow on the embedded server ----------------------------
#
# SecantusDB 0.7.0b3 materialises and sorts *every* document a query's index range selects
# before applying the limit (``Storage.find_matching``: no early stop, ``count`` scans the whole
# collection). So a list query costs what its index range holds, not what the page needs. Each
# keyset stage that is a range on the sort key (the first page, or "beyond the cursor") is
# therefore cut into consecutive *windows* of that key, run in scan order until the page is full;
# each window is an equality prefix plus one range on the sort key, one index range scan on both
# servers (``live_by_*``). See docs/architecture.md (Catalog at scale) ("Key windows").


#: The catalog's sort keys as window axes (prices: relative windows over integer cents).
AXES: dict[str, KeyAxis] = {
    PRICE_KEY: KeyAxis(PRICE_KEY, coord=lambda v: int(v), value=Int64, first_span=1, relative=True),
    "_id": ID_AXIS,
    "created_at": CREATED_AT_AXIS,
}
#: Prices in cents that valid products have, ``[1, 100,000,001)`` (a price is > 0 and ≤ 1,000,000).
PRICE_EXTENT = (1, 100_000_001)


async def key_extent(db: MongoDatabase, field: str) -> tuple[int, int] | None:
    """``(lowest, highest + 1)`` coordinates of ``field`` over the catalog, for ``core.key_windows``.

    Prices: the valid range. ``_id`` and ``created_at``: the oldest and newest
    products recorded in ``catalog_meta`` (``catalog_meta.record_extent``); ``None``
    when not recorded (no product yet).
    """
    if field == PRICE_KEY:
        return PRICE_EXTENT
    recorded = await catalog_meta.recorded_extent(db, field)
    if recorded is None:
        return None
    axis = AXES[field]
    return axis.coord(recorded[0]), axis.coord(recorded[1]) + 1


async def list_products(db: MongoDatabase, *, filters: ProductFilter, window: PageWindow) -> list[ProductListRow]:
    """Up to ``window.fetch`` live products matching ``filters``, in the window's order and position.

    Each keyset stage whose condition on the sort key is a range (or absent) is
    read window by window (``core.key_windows``) until the page is full: with
    ``sort``, ``limit`` and, in offset mode, the offset carried across windows
    (a window's rows count against it). A stage pinning the key to one value
    (a cursor's ties) is one ``find``. The caller bounds the whole read with a
    deadline (``core.db.query_deadline``).
    """
    coll = _projected(db, ProductListRow)
    sort = list(keyset_sort(window).items())
    axis = AXES[window.sort.field]
    extent = await key_extent(db, axis.field)
    windows = WindowReader(axis, window.scan_direction, extent, skip=window.skip)

    async def read(stage: dict[str, Any], limit: int) -> list[ProductListRow]:
        return await windows.read(
            stage,
            limit,
            lambda piece, want: coll.find(piece, LIST_PROJECTION).sort(sort).limit(want).to_list(length=want),
        )

    return await read_window(filters.to_query(), window, read)


async def find_holding_skus(
    db: MongoDatabase, *, skus: list[str], session: AsyncClientSession | None = None
) -> dict[str, ProductDocument]:
    """``{sku: product}`` of every product, live or soft-deleted, holding one of ``skus`` (index ``sku_unique``).

    A soft-deleted product keeps its ``sku`` (the unique index covers it), so
    it holds the SKU too. The query is one range on ``sku`` from the smallest
    to the largest of ``skus``, filtered here: the embedded server evaluates
    ``$in`` by scanning the whole collection (about 5 ms a product for 1,000
    values), while a range is one index scan on both servers.
    """
    if not skus:
        return {}
    wanted = set(skus)
    query = {"sku": {"$gte": min(wanted), "$lte": max(wanted)}}
    return {doc["sku"]: doc async for doc in _collection(db).find(query, session=session) if doc["sku"] in wanted}


async def insert_product_documents(
    db: MongoDatabase, *, documents: list[ProductDocument], session: AsyncClientSession
) -> None:
    """Insert new product documents (``_id`` set by the caller) in ``session``'s transaction: one ``insert_many``.

    The catalog extent is widened outside the transaction, as in :func:`insert_product`.

    Raises:
        pymongo.errors.BulkWriteError: e.g. a ``sku`` taken by a concurrent writer
            meanwhile; inside the transaction this aborts it whole.
    """
    if not documents:
        return
    await _collection(db).insert_many(documents, ordered=True, session=session)
    await record_extent(db, documents)


def replaced_document(
    current: ProductDocument, product: ProductCreate, *, sizes: list[StoredSize], now: datetime
) -> ProductDocument:
    """``current`` with every content field replaced by ``product``'s and stored ``sizes`` (``created_at`` kept)."""
    return {**current, **_content(product, sizes=sizes), "updated_at": now}


#: The fields a bulk upsert replaces: all but ``_id`` and the timestamps (created, updated, deleted).
CONTENT_FIELDS = ("name", "price", PRICE_KEY, "sku", "description", "category", "rating", "sizes")


def same_content(current: Mapping[str, Any], replacement: Mapping[str, Any]) -> bool:
    """Whether ``replacement`` (see :func:`replaced_document`) would store exactly what ``current`` holds.

    Compared field by field as stored (``price_cents`` and each size's
    ``quantity``/``allocated``), a missing field equal to ``None``.
    """
    return all(current.get(k) == replacement.get(k) for k in CONTENT_FIELDS)


async def replace_live_contents(
    db: MongoDatabase, *, replacements: list[ProductDocument], now: datetime, session: AsyncClientSession
) -> None:
    """Store the content fields of ``replacements`` (whole documents, see :func:`replaced_document`) over the
    live products of their ``_id`` s, in input order (one ordered ``bulk_write``), in ``session``."""
    if not replacements:
        return
    contents: list[Mapping[str, Any]] = list(replacements)  # read by field name: a loop over CONTENT_FIELDS
    await _collection(db).bulk_write(
        [
            UpdateOne(
                {"_id": content["_id"], "deleted_at": None},
                {"$set": {**{k: content[k] for k in CONTENT_FIELDS}, "updated_at": now}},
            )
            for content in contents
        ],
        ordered=True,
        session=session,
    )


async def get_live_product(
    db: MongoDatabase, *, product_id: ObjectId, session: AsyncClientSession | None = None
) -> ProductDocument | None:
    """The live (not soft-deleted) product with ``product_id`` (read inside ``session`` if given), or ``None``."""
    return await _collection(db).find_one({"_id": product_id, "deleted_at": None}, session=session)


async def find_live_by_ids(
    db: MongoDatabase, *, product_ids: list[ObjectId], session: AsyncClientSession | None = None
) -> dict[ObjectId, OrderableProduct]:
    """Live products among ``product_ids``, keyed by ``_id`` (read inside ``session`` if given)."""
    cursor = _projected(db, OrderableProduct).find(
        {"_id": {"$in": product_ids}, "deleted_at": None},
        {"name": 1, "price": 1, "sizes": 1},
        session=session,
    )
    return {doc["_id"]: doc async for doc in cursor}
