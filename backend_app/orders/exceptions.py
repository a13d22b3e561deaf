"""Errors raised by the order service (mapped to problem+json in ``core.errors``)."""

from __future__ import annotations

from typing import Any

from backend_app.core.errors import ConflictError, NotFoundError, UnprocessableError


class OrderedProductNotFoundError(NotFoundError):
    """An ordered product is unknown or soft-deleted: 404 naming each ``productId``."""

    code = "product_not_found"
    title = "Product not found"

    def __init__(self, product_ids: list[str]) -> None:
        super().__init__(
            f"Product {', '.join(product_ids)} does not exist.", productId=product_ids[0], productIds=product_ids
        )


class UnknownSizeError(UnprocessableError):
    """An order line names a size the product does not have: 422."""

    code = "unknown_size"
    title = "Unknown size"

    def __init__(self, product_id: str, size: str) -> None:
        super().__init__(f"Product {product_id} has no size {size!r}.", field=("body", "items"), productId=product_id)


class InsufficientStockError(ConflictError):
    """Some lines ask for more than is in stock: 409 ``insufficient_stock``.

    ``lines`` lists each short line as
    ``{"productId", "size", "requested", "available"}``.
    """

    code = "insufficient_stock"
    title = "Insufficient stock"

    def __init__(self, lines: list[dict[str, Any]]) -> None:
        parts = [
            f"{line['productId']}{'/' + line['size'] if line.get('size') else ''}: "
            f"requested {line['requested']}, available {line['available']}"
            for line in lines
        ]
        super().__init__("Not enough stock: " + "; ".join(parts) + ".", lines=lines)


class OrderNotFoundError(NotFoundError):
    """No order with this id belongs to this user: 404."""

    code = "order_not_found"
    title = "Order not found"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"Order {order_id} does not exist.", orderId=order_id)


class InvalidStatusTransitionError(ConflictError):
    """The order cannot move from its status to the requested one: 409."""

    code = "invalid_status_transition"
    title = "Invalid status transition"

    def __init__(self, current: str, requested: str) -> None:
        super().__init__(
            f"An order that is {current!r} cannot become {requested!r}.", current=current, requested=requested
        )


class TooManyPendingOrdersError(ConflictError):
    """The order's owner already holds ``ORDER_MAX_PENDING`` pending orders: 409."""

    code = "too_many_pending_orders"
    title = "Too many pending orders"

    def __init__(self, user_id: str, limit: int) -> None:
        super().__init__(
            f"User {user_id} already has {limit} pending orders; complete or cancel one first.",
            userId=user_id,
            limit=limit,
        )


class LineUnitsExceededError(UnprocessableError):
    """One product of an order, its lines merged, takes more than ``ORDER_MAX_UNITS_PER_LINE`` units: 422.

    Merged first, so thirty lines of one product count as one line of their sum.
    """

    code = "too_many_units_per_line"
    title = "Too many units of one product"

    def __init__(self, product_id: str, units: int, limit: int) -> None:
        super().__init__(
            f"Product {product_id}: {units} units in one order; at most {limit} per product.",
            field=("body", "items"),
            productId=product_id,
            units=units,
            limit=limit,
        )


class TooManyPendingUnitsError(ConflictError):
    """The order would make its owner hold more than ``ORDER_MAX_PENDING_UNITS`` units in pending orders: 409."""

    code = "too_many_pending_units"
    title = "Too many units reserved"

    def __init__(self, user_id: str, held: int, requested: int, limit: int) -> None:
        super().__init__(
            f"User {user_id} holds {held} units in pending orders; {requested} more would pass the limit of "
            f"{limit}. Complete or cancel a pending order first.",
            userId=user_id,
            held=held,
            requested=requested,
            limit=limit,
        )
