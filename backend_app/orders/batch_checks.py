"""The checks each order of a batch meets, and the order it becomes: pure, no database.

``orders.placement`` reads what a batch needs inside its transaction, runs
:func:`check_batch` over it, and writes what it returns.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bson import ObjectId

from backend_app.core.errors import DomainError
from backend_app.core.types import from_bson_money
from backend_app.idempotency import service as idempotency
from backend_app.orders import repository
from backend_app.orders.allocation import Line, allocate, units_by_product
from backend_app.orders.documents import OrderDocument
from backend_app.orders.exceptions import (
    InsufficientStockError,
    OrderedProductNotFoundError,
    TooManyPendingOrdersError,
    TooManyPendingUnitsError,
    UnknownSizeError,
)
from backend_app.products.documents import OrderableProduct

#: The refusals an order of a batch can meet on its own; the other orders go on.
REFUSALS = (
    OrderedProductNotFoundError,
    UnknownSizeError,
    InsufficientStockError,
    TooManyPendingOrdersError,
    TooManyPendingUnitsError,
)


@dataclass(frozen=True, slots=True)
class Limits:
    """The reservation limits an order is checked against (docs/architecture.md (Orders and stock), "Reservations").

    Attributes:
        max_pending: most pending orders of one owner (``ORDER_MAX_PENDING``).
        max_pending_units: most units one owner holds across pending orders (``ORDER_MAX_PENDING_UNITS``).
        max_units_per_line: most units of one product per order, lines merged (``ORDER_MAX_UNITS_PER_LINE``).
    """

    max_pending: int = 10
    max_pending_units: int = 500
    max_units_per_line: int = 100

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        """The limits configured in ``settings`` (a ``config.Settings``)."""
        return cls(
            max_pending=settings.order_max_pending,
            max_pending_units=settings.order_max_pending_units,
            max_units_per_line=settings.order_max_units_per_line,
        )


#: The limits of the default settings (the API passes the configured ones).
DEFAULT_LIMITS = Limits()


@dataclass(slots=True)
class OrderToPlace:
    """One validated order, with the ``_id`` it is stored under whichever process places it."""

    order_id: ObjectId
    user_id: str
    placed_by: str
    lines: list[Line]
    claim: idempotency.Claim | None
    limits: Limits


@dataclass(slots=True)
class PendingOrder(OrderToPlace):
    """One order waiting for its batch, and the future its caller awaits."""

    future: asyncio.Future[ObjectId]


@dataclass(slots=True)
class AcceptedOrder:
    """An order of a batch that passed every check: its document and the stock it allocates."""

    request: PendingOrder
    document: OrderDocument
    units: dict[ObjectId, dict[str, int]]


def check_batch(
    batch: list[PendingOrder],
    products: dict[ObjectId, OrderableProduct],
    holds: dict[str, tuple[int, int]],
    refusals: dict[int, DomainError],
) -> list[AcceptedOrder]:
    """Check each order of ``batch`` in turn against what was read and the orders accepted before it.

    An order is refused (its index → error in ``refusals``) when a product is
    missing, a size unknown, a line short of what earlier orders left, or its
    owner would pass ``max_pending`` orders or ``max_pending_units`` units
    counting the earlier orders of the batch.
    """
    remaining: dict[ObjectId, dict[str, Any]] = {
        pid: {**doc, "sizes": [dict(s) for s in doc.get("sizes", [])]} for pid, doc in products.items()
    }
    held = dict(holds)
    accepted: list[AcceptedOrder] = []
    for i, request in enumerate(batch):
        try:
            missing = list(
                dict.fromkeys(str(line.product_id) for line in request.lines if line.product_id not in remaining)
            )
            if missing:
                raise OrderedProductNotFoundError(missing)
            taken = allocate(request.lines, remaining)
            orders, units = held.get(request.user_id, (0, 0))
            requested = sum(line.qty for line in request.lines)
            if orders + 1 > request.limits.max_pending:
                raise TooManyPendingOrdersError(request.user_id, request.limits.max_pending)
            if units + requested > request.limits.max_pending_units:
                raise TooManyPendingUnitsError(request.user_id, units, requested, request.limits.max_pending_units)
        except REFUSALS as exc:
            refusals[i] = exc
            continue
        held[request.user_id] = (orders + 1, units + requested)
        order_units = units_by_product(
            (line.product_id, line_taken.items()) for line, line_taken in zip(request.lines, taken, strict=True)
        )
        for pid, per_size in order_units.items():
            for size in remaining[pid]["sizes"]:
                got = per_size.get(size["size"], 0)
                size["allocated"] = size.get("allocated", 0) + got
                size["available"] = size.get("available", size["quantity"]) - got
        document = order_document(request, taken=taken, products=products)
        accepted.append(AcceptedOrder(request, document, order_units))
    return accepted


def hold_changes(accepted: list[AcceptedOrder]) -> dict[str, tuple[int, int]]:
    """``{owner: (orders, units)}`` the accepted orders add to their owners' holds."""
    changes: dict[str, tuple[int, int]] = {}
    for a in accepted:
        orders, units = changes.get(a.request.user_id, (0, 0))
        changes[a.request.user_id] = (orders + 1, units + sum(line.qty for line in a.request.lines))
    return changes


def order_document(
    request: PendingOrder, *, taken: list[dict[str, int]], products: dict[ObjectId, OrderableProduct]
) -> OrderDocument:
    """The order to insert: unit prices and names captured now, ``total`` = Σ qty × unit price, exact.

    The rule is here; the stored shape is ``repository.new_order_document``'s.
    """
    total = Decimal(0)
    new_lines = []
    for line, line_taken in zip(request.lines, taken, strict=True):
        product = products[line.product_id]
        unit_price = from_bson_money(product["price"])
        total += unit_price * line.qty
        new_lines.append(
            repository.NewOrderLine(
                product_id=line.product_id,
                name=product["name"],
                size=line.size,
                qty=line.qty,
                unit_price=unit_price,
                taken=line_taken,
            )
        )
    return repository.new_order_document(
        order_id=request.order_id,
        user_id=request.user_id,
        placed_by=request.placed_by,
        lines=new_lines,
        total=total,
        now=datetime.now(UTC),
    )
