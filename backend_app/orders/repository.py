"""MongoDB access for the ``orders`` collection: the only place that builds its filters and pipelines.

Stored documents are :class:`~backend_app.orders.documents.OrderDocument`; the
lists read them joined with their products
(:class:`~backend_app.orders.documents.DetailedOrder`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from backend_app.core.db import MongoDatabase
from backend_app.core.key_windows import ID_AXIS, WindowReader
from backend_app.core.keyset import keyset_sort, read_window
from backend_app.core.pagination import PageWindow
from backend_app.core.types import to_decimal128
from backend_app.orders.documents import DetailedLine, DetailedOrder, OrderDocument
from backend_app.products.repository import COLLECTION as PRODUCTS

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


def _with_product_details(
    match: dict[str, Any], *, sort: dict[str, int], skip: int, limit: int
) -> list[dict[str, Any]]:
    """Pipeline: up to ``limit`` orders matching ``match`` in ``sort`` order, one row per line, products joined.

    Each line's product comes from one ``$lookup`` on ``products`` (brief: a
    ``$lookup``, no N+1 reads) into ``joined``. Items are unwound first
    because the embedded server cannot ``$lookup`` on an array
    ``localField``; :func:`_regroup` puts the lines
    back together in this process. Regrouping here rather than with
    ``$sort``/``$group`` stages, and a plain ``localField``/``foreignField``
    join rather than a sub-pipeline, cut the database's work on a page to
    about a third on the embedded server (whose CPU is the bottleneck), and
    the result is the same.
    """
    return [
        {"$match": match},
        {"$sort": sort},
        {"$skip": skip},
        {"$limit": limit},
        {"$unwind": {"path": "$items"}},
        {"$lookup": {"from": PRODUCTS, "localField": "items.productId", "foreignField": "_id", "as": "joined"}},
    ]


def _regroup(rows: list[dict[str, Any]]) -> list[DetailedOrder]:
    """Orders from :func:`_with_product_details`'s rows (in order), each line with ``productDetails``.

    ``productDetails`` is ``{_id, name}`` of the product as stored now; a
    product that no longer exists falls back to the id and name captured at
    order time.
    """
    orders: dict[Any, DetailedOrder] = {}
    for row in rows:
        order = orders.get(row["_id"])
        if order is None:
            # The aggregation's rows are plain dicts; these are the fields a DetailedOrder names.
            fields: dict[str, Any] = {
                key: row.get(key) for key in ("_id", "userId", "status", "total", "created_at", "updated_at")
            }
            fields["items"] = []
            order = orders[row["_id"]] = cast(DetailedOrder, fields)
        line: dict[str, Any] = dict(row["items"])
        joined = row.get("joined") or []
        product = joined[0] if joined else {"_id": line.get("productId"), "name": line.get("name")}
        line["productDetails"] = {"_id": product["_id"], "name": product.get("name")}
        order["items"].append(cast(DetailedLine, line))
    return list(orders.values())


#: Most order lists (owner, status) whose shape one process remembers, least recently used dropped.
SHAPE_MEMO_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class _ListShape:
    """What a list's last first page showed.

    Attributes:
        oldest: the second of its oldest order.
        short: the list was under a page.
        span: seconds the page's rows spanned (first to last, + 1): the width of the next
            pages' first window, so a page of about the same density is one window.
        rows: how many rows that span held.
    """

    oldest: int
    short: bool
    span: int
    rows: int


_shapes: OrderedDict[tuple[str, str | None, str | None], _ListShape] = OrderedDict()


def _list_key(db: MongoDatabase, query: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    return db.name, query.get("userId"), query.get("status")


def _learn(db: MongoDatabase, query: Mapping[str, Any], window: PageWindow, ids: Sequence[ObjectId]) -> None:
    """Remember a list's shape from a first page (in ``_id`` order, no offset): its first row is the oldest."""
    if window.position is not None or window.skip or window.scan_direction != 1:
        return
    key = _list_key(db, query)
    if ids:
        first, last = ID_AXIS.coord(ids[0]), ID_AXIS.coord(ids[-1])
        shape = _ListShape(first, len(ids) < window.fetch, last - first + 1, len(ids))
    else:  # no order yet: every later one is newer than now
        shape = _ListShape(int(time.time()), True, 1, 0)
    _shapes[key] = shape
    _shapes.move_to_end(key)
    while len(_shapes) > SHAPE_MEMO_SIZE:
        _shapes.popitem(last=False)


def order_windows_extent(db: MongoDatabase, query: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(oldest, now + 2)`` seconds the list ``query`` spans, for ``core.key_windows``; ``None`` if not known yet.

    The oldest order's second is what this process saw on the list's last
    first page (orders are never deleted; one that left a ``status`` list
    makes the remembered second too early, which costs a few empty windows
    until the next first page corrects it). An order written behind the API
    with an older ``_id`` is still listed: the first window is open below.
    """
    shape = _shapes.get(_list_key(db, query))
    return None if shape is None else (shape.oldest, int(time.time()) + 2)


async def list_order_ids(db: MongoDatabase, *, query: dict[str, Any], window: PageWindow) -> list[ObjectId]:
    """The ``_id`` s of up to ``window.fetch`` orders matching ``query``, in the window's order and position.

    Read in key windows of the ``_id``'s second (``core.key_windows``), each
    one index range (``by_user``, ``by_status``, ``by_user_status``,
    ``window_by_id``), so a page reads about a page of orders however long
    the list is. Without a known extent (the first page this process serves
    for the list) the first stage is read whole once, and teaches the list's shape.
    """
    coll = db[COLLECTION]
    sort = list(keyset_sort(window).items())
    shape = _shapes.get(_list_key(db, query))
    extent = order_windows_extent(db, query)
    axis = ID_AXIS
    if shape is not None and shape.short:
        extent = None  # under a page last time: the rest of the list is one read
    elif shape is not None and shape.rows:
        # A first page starts where the last one did: its first window is as wide as that page was (25 %
        # spare), one window while the density holds. A cursor page lies elsewhere in the list, maybe
        # denser: a quarter of that, growing (or fitted) from there, bounds what a denser region costs.
        width = -(-shape.span * window.fetch * 5 // (shape.rows * 4))
        axis = replace(ID_AXIS, first_span=max(1, width if window.position is None else width // 4))
    if extent is None and window.position is not None and (shape is None or not shape.short):
        extent = (0, int(time.time()) + 2)  # a cursor page starts at its cursor: only the end matters
    reader = WindowReader(axis, window.scan_direction, extent, skip=window.skip)

    async def find(piece: dict[str, Any], want: int) -> list[dict[str, Any]]:
        return await coll.find(piece, {"_id": 1}).sort(sort).limit(want).to_list(length=want)

    async def read(stage: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        return await reader.read(stage, limit, find)

    ids = [row["_id"] for row in await read_window(query, window, read)]
    _learn(db, query, window, ids)
    return ids


async def _joined(db: MongoDatabase, match: dict[str, Any], window: PageWindow, limit: int) -> list[DetailedOrder]:
    pipeline = _with_product_details(match, sort=keyset_sort(window), skip=0, limit=limit)
    cursor = await db[COLLECTION].aggregate(pipeline)
    return _regroup(await cursor.to_list(length=None))


async def list_orders(db: MongoDatabase, *, query: dict[str, Any], window: PageWindow) -> list[DetailedOrder]:
    """Up to ``window.fetch`` orders matching ``query`` (see :func:`order_filter`), lines joined with products.

    A first page of a list that was under a page last time (or never seen by
    this process) is one aggregation over the whole list: cheapest while it
    is short, and it teaches the list's shape. Otherwise two reads:
    :func:`list_order_ids` finds the page in key windows, then one
    aggregation joins the product details of exactly those orders (looked up
    by ``_id``), so the ``$lookup`` runs on one page whatever the list's length.
    """
    shape = _shapes.get(_list_key(db, query))
    if window.position is None and window.skip == 0 and window.scan_direction == 1 and (shape is None or shape.short):
        rows = await _joined(db, dict(query), window, window.fetch)
        _learn(db, query, window, [row["_id"] for row in rows])
        return rows
    ids = await list_order_ids(db, query=query, window=window)
    return await _joined(db, {"_id": {"$in": ids}}, window, len(ids)) if ids else []


async def get_order_with_details(db: MongoDatabase, *, user_id: str, order_id: ObjectId) -> DetailedOrder | None:
    """The order ``order_id`` of ``user_id`` with each line's ``productDetails`` joined, or ``None``."""
    pipeline = _with_product_details({"_id": order_id, "userId": user_id}, sort={"_id": ASCENDING}, skip=0, limit=1)
    cursor = await db[COLLECTION].aggregate(pipeline)
    orders = _regroup(await cursor.to_list(length=None))
    return orders[0] if orders else None
