"""Request and response models of orders."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backend_app.core.types import Money, ObjectIdStr
from backend_app.users.schemas import Username as UserId

#: Every status an order can have. ``expired`` is set only by the expiry sweep, never through the API.
OrderStatus = Literal["pending", "completed", "cancelled", "expired"]
#: The statuses a ``PATCH`` may name (``expired`` → 422; illegal transitions among these → 409).
SettableStatus = Literal["pending", "completed", "cancelled"]


class OrderItemCreate(BaseModel):
    """One requested line: ``{"productId", "qty" (1..1000), "size" (optional)}``."""

    model_config = ConfigDict(extra="forbid")

    productId: ObjectIdStr
    qty: int = Field(ge=1, le=1000, examples=[3])
    size: str | None = Field(default=None, min_length=1, max_length=50)


class OrderCreate(BaseModel):
    """Body of ``POST /orders`` (brief): ``{"userId", "items": [{"productId", "qty"}]}``.

    ``userId`` may be omitted: the order is then the caller's; a user may name only themselves (403 otherwise).
    """

    model_config = ConfigDict(extra="forbid")

    userId: UserId | None = None
    items: list[OrderItemCreate] = Field(min_length=1, max_length=100)


class OrderCreated(BaseModel):
    """Response of ``POST /orders``: ``{"id": "<24-hex>"}`` (brief)."""

    id: str = Field(examples=["65f1c0ffee0000000000beef"])


class ProductDetails(BaseModel):
    """The product of an order line, joined from the catalog at read time (brief)."""

    name: str
    id: str


class SizeTaken(BaseModel):
    """How many units of a line were taken from one size."""

    size: str
    qty: int


class OrderLinePublic(BaseModel):
    """One line of a listed order: the brief's ``productDetails`` and ``qty``, plus what was taken."""

    productDetails: ProductDetails
    qty: int
    size: str | None = Field(default=None, description="The size asked for, if any.")
    unit_price: Money
    taken: list[SizeTaken] = Field(description="Units taken per size at order time.")


class OrderPublic(BaseModel):
    """One order in ``GET /orders/{user_id}``: ``id``, ``items``, ``total`` (brief) and more."""

    id: str
    userId: str
    items: list[OrderLinePublic]
    total: Money
    status: OrderStatus
    created_at: datetime
    updated_at: datetime


class OrderUpdate(BaseModel):
    """Body of ``PATCH /orders/{user_id}/{order_id}``: ``{"status": "completed" | "cancelled"}``.

    Legal transitions are ``pending → completed`` (admin) and
    ``pending → cancelled`` (owner or admin); anything else → 409.
    ``expired`` is the expiry sweep's alone: asking for it → 422.
    """

    model_config = ConfigDict(extra="forbid")

    status: SettableStatus
