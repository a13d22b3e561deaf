"""The ``products`` collection's stored documents, as types.

Per size, ``quantity`` is on hand, ``allocated`` held by pending orders and
``available = quantity − allocated`` (``products.stock`` keeps them; only
``products.stock_repository`` changes ``allocated``).

``price`` is the exact amount every reader uses (``core.types.from_bson_money``);
``price_cents`` is the same amount in integer minor units, kept beside it by every
write path of ``products.repository`` (and backfilled at start-up) only to filter
and sort by price: the embedded server sorts int64 about 12x faster than
``Decimal128`` (docs/architecture.md (Catalog at scale)). ``sku`` is unique when
present (partial unique index). ``deleted_at`` is the soft-delete marker;
live products have ``null``.
"""

from __future__ import annotations

from datetime import datetime
from typing import NotRequired, TypedDict

from bson import Decimal128, Int64, ObjectId


class StoredSize(TypedDict):
    """One size of a product and its stock.

    Sizes stored before the inventory model hold only ``size`` and
    ``quantity`` (then what was available) until ``products.stock.convert_legacy_stock``
    rewrites them at start-up.
    """

    size: str
    quantity: int
    allocated: NotRequired[int]
    available: NotRequired[int]


class ProductContent(TypedDict):
    """The fields an admin write sets: everything but the ``_id`` and the timestamps."""

    # What the catalog shows.
    name: str
    description: str | None
    category: str | None
    rating: float | None
    sku: str | None

    # The price, exact, and in cents for filters and sorts (absent until backfilled in older catalogs).
    price: Decimal128
    price_cents: NotRequired[Int64]

    # Stock, per size.
    sizes: list[StoredSize]


class NewProductDocument(ProductContent):
    """A product as first written, before its ``_id`` is set (by the caller or the driver)."""

    # Timestamps (UTC); ``deleted_at`` is ``None`` while the product is live.
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


class ProductDocument(NewProductDocument):
    """A stored product."""

    _id: ObjectId


class ProductListRow(TypedDict):
    """A product as the catalog list reads it (``products.repository.LIST_PROJECTION``: no sizes)."""

    _id: ObjectId
    name: str
    price: Decimal128
    price_cents: NotRequired[Int64]
    category: str | None
    created_at: datetime


class OrderableProduct(TypedDict):
    """A product as order placement reads it: what an order line captures, and the stock it takes from."""

    _id: ObjectId
    name: str
    price: Decimal128
    sizes: list[StoredSize]
