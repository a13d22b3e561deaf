"""The ``orders`` and ``order_holds`` collections' stored documents, as types.

``placed_by`` is the username that placed the order (the owner, or an admin
ordering for them); orders stored before it existed lack it. Money is stored
as ``Decimal128`` (``core.types.to_decimal128``).
"""

from __future__ import annotations

from datetime import datetime
from typing import NotRequired, TypedDict

from bson import Decimal128, ObjectId

from backend_app.orders.schemas import OrderStatus


class TakenUnits(TypedDict):
    """Units of one size an order line took from its product's stock."""

    size: str
    qty: int


class OrderLineDocument(TypedDict):
    """One line of a stored order: the product as it was when ordered, and what it took."""

    # The product: its id, and its name and price at order time.
    productId: ObjectId
    name: str
    unit_price: Decimal128

    # What was ordered: the size asked for (``None``: any), the units, and where they came from
    # (``taken`` sums to ``qty``).
    size: str | None
    qty: int
    taken: list[TakenUnits]


class OrderDocument(TypedDict):
    """A stored order."""

    # Identity and ownership: the owner's user id, and who placed it.
    _id: ObjectId
    userId: str
    placed_by: NotRequired[str]

    # Content and state.
    status: OrderStatus
    items: list[OrderLineDocument]
    total: Decimal128

    # Timestamps (UTC).
    created_at: datetime
    updated_at: datetime


class ProductDetails(TypedDict):
    """The product of an order line as stored now (or, once it is gone, as captured at order time)."""

    _id: ObjectId
    name: str | None


class DetailedLine(OrderLineDocument):
    """An order line with its product joined."""

    productDetails: ProductDetails


class DetailedOrder(TypedDict):
    """An order as the lists and ``GET /orders/{user_id}/{order_id}`` read it: lines joined with their products.

    ``placed_by`` is not read.
    """

    _id: ObjectId
    userId: str
    status: OrderStatus
    total: Decimal128
    created_at: datetime
    updated_at: datetime
    items: list[DetailedLine]


class HoldsDocument(TypedDict):
    """What one owner's pending orders hold (``_id`` is the owner's user id)."""

    _id: str
    orders: int
    units: int
