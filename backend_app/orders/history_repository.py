"""MongoDB reads of the order history: pages of orders and one order, each line joined with its product.

Rows are :class:`~backend_app.orders.documents.DetailedOrder`. A page is found
in key windows of the ``_id``'s second (``core.key_windows``), so its cost
follows the page, not the length of the list; filters come from
``orders.repository.order_filter``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from bson import ObjectId
from pymongo import ASCENDING

from backend_app.core.db import MongoDatabase
from backend_app.core.key_windows import ID_AXIS, WindowReader
from backend_app.core.keyset import keyset_sort, read_window
from backend_app.core.pagination import PageWindow
from backend_app.orders.documents import DetailedLine, DetailedOrder
from backend_app.orders.repository import COLLECTION
from backend_app.products.repository import COLLECTION as PRODUCTS


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
